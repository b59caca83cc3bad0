"""Consents as FHIR Consent resources: a guardian's agreement with a doctor, and a school's
permission to read a report."""

from __future__ import annotations

import hashlib

from fhir.resources.R4B.consent import Consent

from chaincode.records import AgreementView, ReportPermissionView, ReportView

from . import codes
from .naming import Naming
from .validated import JsonResource, validated

AGREEMENT_STATUSES = {
    "PENDING": "proposed",
    "ACTIVE": "active",
    "EXPIRED": "inactive",
    "REVOKED": "inactive",
}
PERMISSION_STATUSES = {"ACTIVE": "active", "EXPIRED": "inactive", "REVOKED": "inactive"}


def _status(statuses: dict[str, str], status: str, what: str) -> str:
    if status not in statuses:
        raise ValueError(f"{status!r} is not a status {what} can have.")
    return statuses[status]


def _privacy_consent(consent_id: str, status: str, child_id: str, naming: Naming) -> JsonResource:
    """The elements every consent here has: a patient-privacy opt-in of the child's record."""
    return {
        "resourceType": "Consent",
        "id": consent_id,
        "status": status,
        "scope": codes.concept(codes.PATIENT_PRIVACY),
        "category": [codes.concept(codes.CONSENT_DOCUMENT)],
        "patient": naming.patient_reference(child_id),
        "policyRule": codes.concept(codes.OPT_IN),
    }


def agreement_end(agreement: AgreementView) -> str | None:
    """When an agreement stops permitting: its validUntil, or for a REVOKED one the moment
    it was withdrawn (updatedAt) if that came first; None when it has no end."""
    valid_until = agreement["validUntil"]
    if agreement["status"] == "REVOKED":
        withdrawn = agreement["updatedAt"]
        if valid_until is None or withdrawn < valid_until:
            return withdrawn
    return valid_until


def agreement_consent(agreement: AgreementView, naming: Naming) -> JsonResource:
    """A guardian's agreement with a doctor: the guardian who signed grants the doctor
    access for treatment from createdAt until `agreement_end`. ValueError for a status
    an agreement cannot have."""
    status = _status(AGREEMENT_STATUSES, agreement["status"], "an agreement")
    consent = _privacy_consent(agreement["id"], status, agreement["childId"], naming)
    period = {"start": agreement["createdAt"]}
    end = agreement_end(agreement)
    if end is not None:
        period["end"] = end
    consent.update(
        {
            "identifier": [naming.record_identifier(agreement["id"])],
            "dateTime": agreement["createdAt"],
            "performer": [naming.person(agreement["parentUid"], "parent")],
            "provision": {
                "type": "permit",
                "period": period,
                "actor": [
                    {
                        "role": codes.concept(codes.INFORMATION_RECIPIENT),
                        "reference": naming.person(agreement["doctorUid"], "doctor"),
                    }
                ],
                "purpose": [dict(codes.TREATMENT)],
            },
        }
    )
    return validated(Consent, consent)


def permission_id(report_id: str, school: str) -> str:
    """The id of a school's permission to read a report, the same for every grant of it."""
    return "permission-" + hashlib.sha256(f"{report_id}/{school}".encode()).hexdigest()[:32]


def _permission_end(permission: ReportPermissionView) -> str:
    """When the permission ends: its validUntil, or the moment it was withdrawn if earlier."""
    revoked = permission["revokedAt"]
    return (
        revoked
        if revoked is not None and revoked < permission["validUntil"]
        else permission["validUntil"]
    )


def permission_consent(
    report: ReportView,
    permission: ReportPermissionView,
    grantors: list[str] | None,
    naming: Naming,
) -> JsonResource:
    """A school's permission to read a report (the DocumentReference of the same id), from
    grantedAt until validUntil (a withdrawn one: until revokedAt), for school admission.
    `grantors` are the child's guardians (bare UIDs), named as performers when given; a school
    is not told them (None).
    ValueError for a status a permission cannot have."""
    status = _status(PERMISSION_STATUSES, permission["status"], "a permission")
    consent = _privacy_consent(
        permission_id(report["id"], permission["school"]), status, report["childId"], naming
    )
    consent.update(
        {
            "identifier": [naming.record_identifier(report["id"])],
            "dateTime": permission["grantedAt"],
        }
    )
    if grantors:
        consent["performer"] = [naming.person(uid, "parent") for uid in grantors]
    consent["provision"] = {
        "type": "permit",
        "period": {"start": permission["grantedAt"], "end": _permission_end(permission)},
        "actor": [
            {
                "role": codes.concept(codes.INFORMATION_RECIPIENT),
                "reference": naming.organization(permission["school"]),
            }
        ],
        "purpose": [codes.local_purpose("SCHOOL_ADMISSION")],
        "data": [
            {"meaning": "instance", "reference": {"reference": f"DocumentReference/{report['id']}"}}
        ],
    }
    return validated(Consent, consent)
