"""A child as a FHIR Patient: whole for those who may read the child, by name for a school."""

from __future__ import annotations

from fhir.resources.R4B.patient import Patient

from chaincode.records import ChildView

from . import codes
from .naming import Naming
from .validated import JsonResource, validated

# Sex as the card may write it (free text), by what FHIR's administrative gender says.
_MALE = frozenset({"m", "male", "boy"})
_FEMALE = frozenset({"f", "female", "girl"})


def gender_of(sex: str | None) -> str | None:
    """male or female for the usual words (any case), unknown for other text, None for none."""
    if sex is None:
        return None
    word = sex.strip().casefold()
    if word in _MALE:
        return "male"
    if word in _FEMALE:
        return "female"
    return "unknown"


def patient_of(child: ChildView, naming: Naming) -> JsonResource:
    """The child as a Patient: its one full name as text (never split), birth date, gender,
    its current doctor as general practitioner, and one contact per guardian."""
    resource = _named(child["id"], child["fullName"], naming)
    resource["active"] = True
    gender = gender_of(child["sex"])
    if gender is not None:
        resource["gender"] = gender
    resource["birthDate"] = child["birthDate"]
    if child["doctorUid"] is not None:
        resource["generalPractitioner"] = [naming.person(child["doctorUid"], "doctor")]
    if child["guardians"]:
        resource["contact"] = [
            {
                "relationship": [codes.concept(codes.GUARDIAN)],
                "name": {"text": naming.person(uid, "parent")["display"]},
            }
            for uid in child["guardians"]
        ]
    return validated(Patient, resource)


def patient_named(child_id: str, full_name: str, naming: Naming) -> JsonResource:
    """What a school may know of a child, from a report's content: its id and name."""
    return validated(Patient, _named(child_id, full_name, naming))


def _named(child_id: str, full_name: str, naming: Naming) -> JsonResource:
    return {
        "resourceType": "Patient",
        "id": child_id,
        "identifier": [naming.child_identifier(child_id)],
        "name": [{"text": full_name}],
    }
