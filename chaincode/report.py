"""The `report` contract (channel `report`): admissions, report requests, reports, permissions.

Who may do what: an admission request is read by the child's
guardians and the addressed school, created by a guardian and decided by that
school. A report request is created by the school of an ACCEPTED admission
and read by it, the guardians and doctors with an ACTIVE agreement for the
child, who are told of it. A report is created READY by such a doctor;
guardians permit particular schools to read it, each until a date
(`validUntil`, by default `report_permission_days` after approving), and
withdraw permissions. A permission is ACTIVE until its date, EXPIRED from then
on (consent.py), REVOKED once withdrawn; the report is APPROVED while any is
ACTIVE, READY otherwise. Its content is read by guardians, the author, and a
school while its permission is ACTIVE.

What a school sees of a report never depends on other schools' permissions:
the status it is shown is its own — APPROVED while the report is permitted to
it, READY otherwise (the requesting school keeps seeing the report it asked
for) — the permitted schools it is shown are itself or none, and the
permissions its own. A school that neither asked for a report nor holds an
ACTIVE permission is told it does not exist.
Event audiences follow the same rule. People are (organisation, UID) pairs
(`people.py`).

This channel never sees the medical channel. Facts that need it — who the
child's guardians are, which children a doctor cares for, the card a report is
built from — are read on `medical` by the gateway as the same caller and given
to this contract as the context's transient data (`ctx.transient`), which
callers cannot set and no transaction records. Which of the card's fields a
report carries is this contract's rule (`_report_content`).

A report's content is protected data: the purpose it is read under is
`report_purpose`'s, and every read and refusal of it is noted for the report's
child's access log on this channel (access_log.py). The child's guardians list
that log; this channel learns who they are from the gateway, as above.

Every record here belongs to one child and is sealed with that child's key on
this channel; an erasure (erasure.py) destroys it, and the child's admissions,
requests and reports read as absent from then on.
"""

from __future__ import annotations

from typing import Any

from domain.consent import REPORT_PERMISSION_DAYS
from domain.errors import BadInputError, ConflictError, ForbiddenError, NotFoundError
from ledger_backends.hashing import canonical_json, commitment

from . import access_log, consent, erasure, paging
from . import validation as check
from .base import Contract, TxContext, query, transaction
from .consent import in_force
from .paging import DEFAULT_FIRST
from .people import person_of
from .records import (
    AccessEntryView,
    AccessFacts,
    AdmissionRequest,
    AdmissionRequestView,
    Audience,
    CardView,
    ConsentEnd,
    Page,
    Report,
    ReportContent,
    ReportPermission,
    ReportPermissionView,
    ReportRequest,
    ReportRequestView,
    ReportView,
)
from .writes import written_ids

ADMISSION_STATUSES = ("PENDING", "ACCEPTED", "REJECTED")
REQUEST_STATUSES = ("PENDING", "FULFILLED")
REPORT_STATUSES = ("READY", "APPROVED")
REASON_MAX = 1_000


class ReportContract(access_log.RecordsAccess, erasure.RecordsErasure, Contract):
    name = "report"
    channel = "report"

    def __init__(self, *, report_permission_days: int = REPORT_PERMISSION_DAYS) -> None:
        super().__init__()
        self.report_permission_days = report_permission_days

    # -- admission requests ------------------------------------------------------------

    @transaction("createAdmissionRequest")
    def create_admission_request(self, ctx: TxContext, school: str) -> AdmissionRequestView:
        """A guardian applies to one school for the child the gateway read as `child`: PENDING."""
        guardian = person_of(ctx.caller)
        child = ctx.transient.get("child")
        if ctx.caller.role != "parent" or child is None or guardian not in child["guardians"]:
            raise ForbiddenError("Only the child's guardians apply to schools.")
        _require_school(ctx, school)
        child_id = child["id"]
        open_key = f"open-admission/{child_id}/{school}"
        if ctx.get_state(open_key) is not None:
            raise ConflictError("The child already has an open admission request to this school.")
        admission_id = ctx.new_id("admission")
        admission: AdmissionRequest = {
            "id": admission_id,
            "childId": child_id,
            "childName": child["fullName"],
            "school": school,
            "status": "PENDING",
            "reason": None,
            "guardians": list(child["guardians"]),
            "createdAt": ctx.timestamp,
            "createdBy": guardian,
        }
        ctx.put_state(f"admission/{admission_id}", admission, child=child_id)
        ctx.put_state(open_key, admission_id, child=child_id)
        ctx.put_state(f"school-admission/{school}/{admission_id}", admission_id, child=child_id)
        for parent in admission["guardians"]:
            ctx.put_state(
                f"guardian-admission/{parent}/{admission_id}", admission_id, child=child_id
            )
        ctx.set_event("AdmissionRequested", _audience(admission_id, admission))
        return _admission_view(admission)

    @transaction("acceptAdmissionRequest")
    def accept_admission_request(self, ctx: TxContext, id: str) -> AdmissionRequestView:
        return self._decide(ctx, id, "ACCEPTED", None)

    @transaction("rejectAdmissionRequest")
    def reject_admission_request(
        self, ctx: TxContext, id: str, reason: str
    ) -> AdmissionRequestView:
        return self._decide(
            ctx, id, "REJECTED", check.free_text(reason, "reason", max_length=REASON_MAX)
        )

    def _decide(
        self, ctx: TxContext, admission_id: str, status: str, reason: str | None
    ) -> AdmissionRequestView:
        admission = _visible_admission(ctx, admission_id)
        if not _is_school_staff(ctx, admission["school"]):
            raise ForbiddenError("Only the school the request is addressed to decides it.")
        if admission["status"] != "PENDING":
            raise ConflictError(f"The admission request is already {admission['status']}.")
        admission = {**admission, "status": status, "reason": reason}
        ctx.put_state(f"admission/{admission['id']}", admission, child=admission["childId"])
        if status == "REJECTED":
            ctx.del_state(f"open-admission/{admission['childId']}/{admission['school']}")
        event = "AdmissionAccepted" if status == "ACCEPTED" else "AdmissionRejected"
        ctx.set_event(event, _audience(admission["id"], admission))
        return _admission_view(admission)

    @query("readAdmissionRequest")
    def read_admission_request(self, ctx: TxContext, id: str) -> AdmissionRequestView:
        return _admission_view(_visible_admission(ctx, id))

    @query("listAdmissionRequests")
    def list_admission_requests(
        self,
        ctx: TxContext,
        status: str | None = None,
        first: int = DEFAULT_FIRST,
        after: str | None = None,
    ) -> Page[AdmissionRequestView]:
        """Guardians: their children's requests; a school: requests addressed to it; newest
        first."""
        _check_status(status, ADMISSION_STATUSES)
        if ctx.caller.role == "parent":
            prefixes = [f"guardian-admission/{person_of(ctx.caller)}/"]
        elif ctx.caller.role == "school":
            prefixes = [f"school-admission/{ctx.caller.org}/"]
        else:
            prefixes = []

        def load(admission_id: str) -> AdmissionRequestView | None:
            admission: AdmissionRequest | None = ctx.get_state(f"admission/{admission_id}")
            if admission is None or status not in (None, admission["status"]):
                return None
            return _admission_view(admission)

        return paging.newest_first(ctx, prefixes, first=first, after=after, load=load)

    # -- report requests ----------------------------------------------------------------

    @transaction("createReportRequest")
    def create_report_request(self, ctx: TxContext, admissionRequestId: str) -> ReportRequestView:
        """The school of an ACCEPTED admission asks the pediatrician for a health report; the
        doctors the server found caring for the child (`doctors`) are told."""
        admission = _visible_admission(ctx, admissionRequestId)
        if not _is_school_staff(ctx, admission["school"]):
            raise ForbiddenError("Only the school that accepted the child requests its report.")
        if admission["status"] != "ACCEPTED":
            raise ConflictError(
                f"The admission request is {admission['status']}; "
                "a report is requested only after accepting it."
            )
        open_key = f"open-report-request/{admission['id']}"
        if ctx.get_state(open_key) is not None:
            raise ConflictError("A report for this admission is already requested.")
        request_id = ctx.new_id("report-request")
        request: ReportRequest = {
            "id": request_id,
            "admissionRequestId": admission["id"],
            "childId": admission["childId"],
            "school": admission["school"],
            "status": "PENDING",
            "reportId": None,
            "guardians": admission["guardians"],
            "createdAt": ctx.timestamp,
        }
        child_id, school = request["childId"], request["school"]
        ctx.put_state(f"report-request/{request_id}", request, child=child_id)
        ctx.put_state(open_key, request_id, child=child_id)
        ctx.put_state(f"child-report-request/{child_id}/{request_id}", request_id, child=child_id)
        ctx.put_state(f"school-report-request/{school}/{request_id}", request_id, child=child_id)
        for parent in request["guardians"]:
            ctx.put_state(
                f"guardian-report-request/{parent}/{request_id}", request_id, child=child_id
            )
        audience = _audience(request_id, request)
        audience["people"] = sorted({*audience["people"], *ctx.transient.get("doctors", [])})
        ctx.set_event("ReportRequested", audience)
        return _request_view(request)

    @query("reportRequestChild")
    def report_request_child(self, ctx: TxContext, id: str) -> str | None:
        """For the server: the child a report request is for, None if there is none; what
        the gateway asks `medical` whether a doctor treats (never shown to the caller)."""
        consent.require_server(ctx)
        request: ReportRequest | None = _get(ctx, "report-request", id)
        return None if request is None else request["childId"]

    @query("readReportRequest")
    def read_report_request(self, ctx: TxContext, id: str) -> ReportRequestView:
        return _request_view(_visible_request(ctx, id))

    @query("listReportRequests")
    def list_report_requests(
        self,
        ctx: TxContext,
        status: str | None = None,
        first: int = DEFAULT_FIRST,
        after: str | None = None,
    ) -> Page[ReportRequestView]:
        """The requesting school's, the guardians', and those of a doctor's patients (merged:
        O(patients * first) reads); newest first."""
        _check_status(status, REQUEST_STATUSES)
        if ctx.caller.role == "parent":
            prefixes = [f"guardian-report-request/{person_of(ctx.caller)}/"]
        elif ctx.caller.role == "school":
            prefixes = [f"school-report-request/{ctx.caller.org}/"]
        elif ctx.caller.role == "doctor":
            patients = ctx.transient.get("patients", [])
            prefixes = [f"child-report-request/{child_id}/" for child_id in patients]
        else:
            prefixes = []

        def load(request_id: str) -> ReportRequestView | None:
            request: ReportRequest | None = ctx.get_state(f"report-request/{request_id}")
            if request is None or status not in (None, request["status"]):
                return None
            return _request_view(request)

        return paging.newest_first(ctx, prefixes, first=first, after=after, load=load)

    # -- reports ------------------------------------------------------------------------

    @transaction("createReport")
    def create_report(self, ctx: TxContext, reportRequestId: str, conclusion: str) -> ReportView:
        """A doctor with an ACTIVE agreement writes the report from the card the gateway read
        as that doctor (`card`, with a fresh `cardSalt`): READY."""
        if ctx.caller.role != "doctor":
            raise ForbiddenError("Only doctors write health reports.")
        request = _visible_request(ctx, reportRequestId)
        card, salt = ctx.transient.get("card"), ctx.transient.get("cardSalt")
        if card is None or salt is None or card["childId"] != request["childId"]:
            raise NotFoundError("No such report request is visible to you.")
        if request["status"] != "PENDING":
            raise ConflictError("The report request is already fulfilled.")
        report_id = ctx.new_id("report")
        report: Report = {
            "id": report_id,
            "childId": request["childId"],
            "reportRequestId": request["id"],
            "status": "READY",
            "authorUid": ctx.caller.uid,
            "author": person_of(ctx.caller),
            "createdAt": ctx.timestamp,
            "permissions": [],
            "requestingSchool": request["school"],
            "guardians": request["guardians"],
            "cardVersion": card["version"],
            "cardHash": _card_commitment(card, salt),
            "cardSalt": salt,
            "content": _report_content(card, conclusion),
        }
        child_id = report["childId"]
        ctx.put_state(f"report/{report_id}", report, child=child_id)
        ctx.put_state(
            f"report-request/{request['id']}",
            {**request, "status": "FULFILLED", "reportId": report_id},
            child=child_id,
        )
        ctx.del_state(f"open-report-request/{request['admissionRequestId']}")
        for parent in report["guardians"]:
            ctx.put_state(f"guardian-report/{parent}/{report_id}", report_id, child=child_id)
        ctx.put_state(f"author-report/{report['author']}/{report_id}", report_id, child=child_id)
        ctx.put_state(f"school-report/{request['school']}/{report_id}", report_id, child=child_id)
        ctx.set_event("ReportReady", _report_audience(report, [report["requestingSchool"]]))
        return _report_view(ctx, report)

    @transaction("approveReport")
    def approve_report(
        self, ctx: TxContext, id: str, schools: list[str], validUntil: str | None = None
    ) -> ReportView:
        """A guardian lets particular schools read the report until `validUntil` (a time to
        come; by default `report_permission_days` from now): APPROVED. Approving a school
        again renews its permission: granted now, until the new end."""
        report = _guardian_report(ctx, id)
        permitted = check.text_list(schools, "schools", max_items=20)
        if not permitted:
            raise BadInputError("Name at least one school to approve the report for.")
        for school in permitted:
            _require_school(ctx, school)
        until = (
            consent.after(ctx.timestamp, days=self.report_permission_days)
            if validUntil is None
            else consent.valid_until(ctx, validUntil)
        )
        permissions = {p["school"]: p for p in _permissions(ctx, report)}
        for school in permitted:
            old = permissions.get(school)
            if old is not None and old["revokedAt"] is None:
                consent.forget_end(ctx, _permission_end(report["id"], school), old["validUntil"])
            permissions[school] = {
                "school": school,
                "grantedAt": ctx.timestamp,
                "validUntil": until,
                "revokedAt": None,
            }
            consent.index_end(
                ctx, _permission_end(report["id"], school), until, child=report["childId"]
            )
            ctx.put_state(
                f"school-report/{school}/{report['id']}", report["id"], child=report["childId"]
            )
        report = _with_permissions(report, list(permissions.values()))
        ctx.put_state(f"report/{report['id']}", report, child=report["childId"])
        ctx.set_event("ReportApproved", _report_audience(report, permitted))
        return _report_view(ctx, report)

    @transaction("revokeReportPermission")
    def revoke_report_permission(self, ctx: TxContext, id: str, school: str) -> ReportView:
        """A guardian withdraws one school's ACTIVE permission: REVOKED, and the school is told
        (ReportPermissionEnded); with none left ACTIVE, the report is READY."""
        report = _guardian_report(ctx, id)
        _require_school(ctx, school)
        permissions = _permissions(ctx, report)
        current = next((p for p in permissions if p["school"] == school), None)
        if current is None or _permission_status(ctx, current) != "ACTIVE":
            raise ConflictError("That school has no active permission to withdraw.")
        consent.forget_end(ctx, _permission_end(report["id"], school), current["validUntil"])
        revoked: ReportPermission = {**current, "revokedAt": ctx.timestamp}
        report = _with_permissions(
            report, [revoked if p["school"] == school else p for p in permissions]
        )
        ctx.put_state(f"report/{report['id']}", report, child=report["childId"])
        if school != report["requestingSchool"]:
            ctx.del_state(f"school-report/{school}/{report['id']}")
        # Told: the insiders and the school whose permission ended, never the other schools.
        audience = _report_audience(report, [school])
        ctx.set_event("ReportPermissionRevoked", audience)
        ctx.set_event("ReportPermissionEnded", audience)
        return _report_view(ctx, report)

    @query("readReport")
    def read_report(
        self, ctx: TxContext, id: str, withContent: bool = True, withProof: bool = False
    ) -> ReportView:
        """The report as the caller sees it; its content only `withContent` (a read of it,
        or a refused one), for those `report_purpose` lets read it. `withProof`: for
        guardians and the author, with the opening of the commitment of the version shown
        (`opening`); it notes no read of its own."""
        report = _get(ctx, "report", id)
        if report is None or not _may_see_report(ctx, report):
            refused = None if report is None else _content_read(ctx, report, None)
            ctx.read_refused(refused)
            raise NotFoundError("No such report is visible to you.")
        view = _report_view(ctx, report, with_content=withContent, with_proof=withProof)
        if withContent:
            _note_content_read(ctx, report)
        return view

    @query("listReports")
    def list_reports(
        self,
        ctx: TxContext,
        status: str | None = None,
        first: int = DEFAULT_FIRST,
        after: str | None = None,
        withContent: bool = True,
        withProof: bool = False,
        childId: str | None = None,
    ) -> Page[ReportView]:
        """Reports the caller may see: guardians', the author's, a school's (asked or
        permitted); newest first. `status` is the status the caller is shown; `childId`, when
        given, keeps that child's reports only, and no other report's content is read. Content
        as in readReport: only `withContent`, each a read of it; openings as in readReport."""
        _check_status(status, REPORT_STATUSES)
        if ctx.caller.role == "parent":
            prefixes = [f"guardian-report/{person_of(ctx.caller)}/"]
        elif ctx.caller.role == "doctor":
            prefixes = [f"author-report/{person_of(ctx.caller)}/"]
        elif ctx.caller.role == "school":
            prefixes = [f"school-report/{ctx.caller.org}/"]
        else:
            prefixes = []

        listed: dict[str, Report] = {}

        def load(report_id: str) -> ReportView | None:
            report: Report | None = ctx.get_state(f"report/{report_id}")
            if report is None or childId not in (None, report["childId"]):
                return None
            if not _may_see_report(ctx, report):
                return None
            view = _report_view(ctx, report, with_content=withContent, with_proof=withProof)
            listed[report_id] = report
            return view if status in (None, view["status"]) else None

        found = paging.newest_first(ctx, prefixes, first=first, after=after, load=load)
        if withContent:
            # The page's reports only: one more is loaded to tell whether more follow.
            for entry in found["entries"]:
                _note_content_read(ctx, listed[entry["item"]["id"]])
        return found

    @query("writtenRecordPurpose")
    def written_record_purpose(self, ctx: TxContext, keys: list[str]) -> str:
        """Whether the caller may, now, read a report a transaction wrote, given the keys it
        wrote: the purpose `report_purpose` grants (who may read the report's content),
        NOT_FOUND when it wrote no report the caller may read. What an inclusion proof of the
        transaction is shown under (api/proofs.py); no read is noted, as nothing of the
        report is returned."""
        if ctx.caller.role in ("parent", "doctor", "school"):
            for report_id in written_ids(keys, "report"):
                report: Report | None = _get(ctx, "report", report_id)
                purpose = None if report is None else report_purpose(ctx, report)
                if purpose is not None:
                    return purpose
        raise NotFoundError("No such report is visible to you.")

    # -- ends of permissions (the server's) ------------------------------------------------

    @query("dueConsents")
    def due_consents(self, ctx: TxContext) -> list[str]:
        """For the server: the ends of schools' permissions to announce now."""
        return consent.due(ctx)

    @transaction("expireConsents")
    def expire_consents(self, ctx: TxContext, keys: list[str]) -> int:
        """For the server: announce the ends that `dueConsents` named and that are still due.

        The school whose permission ended, the guardians and the author get
        ReportPermissionEnded; a school that did not ask for the report no longer finds it
        in its list. Returns how many ends were announced.
        """
        ends = consent.take_due(ctx, keys)
        for end in ends:
            report: Report | None = _get(ctx, "report", end["id"])
            school = end.get("school")
            if report is None or school is None:
                continue
            held = [p for p in _permissions(ctx, report) if p["school"] == school]
            if not held or _permission_status(ctx, held[0]) != "EXPIRED":
                continue
            if school != report["requestingSchool"]:
                ctx.del_state(f"school-report/{school}/{report['id']}")
            ctx.set_event("ReportPermissionEnded", _report_audience(report, [school]))
        return len(ends)

    # -- the access log ----------------------------------------------------------------

    @query("listAccessLog")
    def list_access_log(
        self,
        ctx: TxContext,
        childId: str,
        first: int = DEFAULT_FIRST,
        after: str | None = None,
    ) -> Page[AccessEntryView]:
        """For the guardians of the child the gateway read as the caller on `medical`
        (`child`), or of the erased child whose erasure it read there (`erasure`): who read
        the content of its reports, and who was refused, newest first."""
        child, erased = ctx.transient.get("child"), ctx.transient.get("erasure")
        if child is not None and child["id"] == childId:
            guardians = child["guardians"]
        elif erased is not None and erased["childId"] == childId:
            guardians = erased["guardians"]
        else:
            guardians = []
        if ctx.caller.role != "parent" or person_of(ctx.caller) not in guardians:
            raise NotFoundError("No such child is visible to you.")
        return access_log.page(ctx, childId, first, after)


# -- rules ---------------------------------------------------------------------------------


def _is_school_staff(ctx: TxContext, school: str) -> bool:
    return ctx.caller.role == "school" and ctx.caller.org == school


def _require_school(ctx: TxContext, school: Any) -> None:
    if not isinstance(school, str) or ctx.directory.org_kind(school) != "school":
        raise BadInputError("Each school must be a school organisation of this network.")


def _check_status(status: str | None, allowed: tuple[str, ...]) -> None:
    if status is not None:
        check.choice(status, "status", allowed)


def _get(ctx: TxContext, kind: str, object_id: Any) -> Any:
    """A copy of the stored record of `kind` with that id, None if there is none."""
    if not isinstance(object_id, str) or not object_id:
        return None
    found = ctx.get_state(f"{kind}/{object_id}")
    return None if found is None else dict(found)


def _visible_admission(ctx: TxContext, admission_id: Any) -> AdmissionRequest:
    admission: AdmissionRequest | None = _get(ctx, "admission", admission_id)
    if admission is None or not (
        _is_school_staff(ctx, admission["school"]) or _is_guardian_of(ctx, admission)
    ):
        raise NotFoundError("No such admission request is visible to you.")
    return admission


def _visible_request(ctx: TxContext, request_id: Any) -> ReportRequest:
    """The request if the caller is its school, a guardian, or a doctor whose patient the
    gateway found the child to be (`patients`)."""
    request: ReportRequest | None = _get(ctx, "report-request", request_id)
    if request is None or not (
        _is_school_staff(ctx, request["school"])
        or _is_guardian_of(ctx, request)
        or (ctx.caller.role == "doctor" and request["childId"] in ctx.transient.get("patients", []))
    ):
        raise NotFoundError("No such report request is visible to you.")
    return request


def _is_guardian_of(ctx: TxContext, item: AdmissionRequest | ReportRequest | Report) -> bool:
    """Whether the caller is a guardian named in an admission, request or report."""
    return ctx.caller.role == "parent" and person_of(ctx.caller) in item["guardians"]


def _is_insider(ctx: TxContext, report: Report) -> bool:
    """Guardians and the author: they see and read the whole report at any status."""
    author = ctx.caller.role == "doctor" and person_of(ctx.caller) == report["author"]
    return author or _is_guardian_of(ctx, report)


def _is_permitted_school(ctx: TxContext, report: Report) -> bool:
    """Whether the caller is staff of a school whose permission is ACTIVE now."""
    return ctx.caller.role == "school" and any(
        p["school"] == ctx.caller.org and _permission_status(ctx, p) == "ACTIVE"
        for p in _permissions(ctx, report)
    )


def _permissions(ctx: TxContext, report: Report) -> list[ReportPermission]:
    """The report's permissions.

    A report approved before permissions carried dates names its schools only
    (`permittedSchools`): each is taken as granted when the report's history first names
    it in the run of versions that goes on to now, with the default validity
    (REPORT_PERMISSION_DAYS, not `[consent]`'s: the end of a permission never moves once
    granted), and a later approval or withdrawal writes the dated permissions.
    """
    if "permissions" in report:
        return report["permissions"]
    since: dict[str, str] = {}
    for entry in ctx.get_history(f"report/{report['id']}"):
        value = entry.json()
        named = value.get("permittedSchools", []) if isinstance(value, dict) else []
        since = {school: since.get(school, entry.timestamp) for school in named}
    granted = {
        school: since.get(school, report["createdAt"])
        for school in report.get("permittedSchools", [])
    }
    return [
        {
            "school": school,
            "grantedAt": at,
            "validUntil": consent.after(at, days=REPORT_PERMISSION_DAYS),
            "revokedAt": None,
        }
        for school, at in granted.items()
    ]


def _permission_status(ctx: TxContext, permission: ReportPermission) -> str:
    if permission["revokedAt"] is not None:
        return "REVOKED"
    return "ACTIVE" if in_force(ctx, permission["validUntil"]) else "EXPIRED"


def _permission_end(report_id: str, school: str) -> ConsentEnd:
    return {"kind": "permission", "id": report_id, "school": school}


def _with_permissions(report: Report, permissions: list[ReportPermission]) -> Report:
    """The report holding these dated permissions (instead of a legacy report's schools)."""
    updated: Report = {**report, "permissions": permissions}
    updated.pop("status", None)
    updated.pop("permittedSchools", None)
    return updated


def report_purpose(ctx: TxContext, report: Report) -> str | None:
    """The purpose under which the caller may read the report's content: GUARDIAN for the
    child's guardians, TREATMENT for its author, SCHOOL_ADMISSION for a school it is
    permitted to; None (refused) for everyone else."""
    if _is_guardian_of(ctx, report):
        return "GUARDIAN"
    if ctx.caller.role == "doctor" and person_of(ctx.caller) == report["author"]:
        return "TREATMENT"
    if _is_permitted_school(ctx, report):
        return "SCHOOL_ADMISSION"
    return None


def _content_read(ctx: TxContext, report: Report, purpose: str | None) -> AccessFacts:
    """A read of the report's content under `purpose` (None: refused, the claimed one)."""
    return access_log.read_of(
        report["childId"],
        "REPORT_CONTENT",
        report["id"],
        version=None,
        purpose=access_log.claimed_purpose(ctx) if purpose is None else purpose,
        guardians=report["guardians"],
    )


def _note_content_read(ctx: TxContext, report: Report) -> None:
    """Note the content read `_report_view` granted, or the one it refused."""
    purpose = report_purpose(ctx, report)
    if purpose is None:
        ctx.read_refused(_content_read(ctx, report, None))
    else:
        ctx.read_granted(_content_read(ctx, report, purpose))


def _may_see_report(ctx: TxContext, report: Report) -> bool:
    requester = _is_school_staff(ctx, report["requestingSchool"])
    return _is_insider(ctx, report) or requester or _is_permitted_school(ctx, report)


def _visible_report(ctx: TxContext, report_id: Any) -> Report:
    report: Report | None = _get(ctx, "report", report_id)
    if report is None or not _may_see_report(ctx, report):
        raise NotFoundError("No such report is visible to you.")
    return report


def _guardian_report(ctx: TxContext, report_id: Any) -> Report:
    report = _visible_report(ctx, report_id)
    if not _is_guardian_of(ctx, report):
        raise ForbiddenError("Only the child's guardians decide who may read the report.")
    return report


# -- what a report carries of the card -----------------------------------------------------


def _report_content(card: CardView, conclusion: str) -> ReportContent:
    """What a school needs of the card, and the doctor's conclusion: never the blood type,
    the examinations or the doctor's notes."""
    return {
        "childName": card["childName"],
        "healthGroup": card["healthGroup"],
        "physicalEducationGroup": card["physicalEducationGroup"],
        "allergies": card["allergies"],
        "chronicConditions": card["chronicConditions"],
        "vaccinations": card["vaccinations"],
        "conclusion": check.free_text(conclusion, "conclusion", max_length=check.TEXT_MAX),
    }


def _card_commitment(card: CardView, salt: str) -> str:
    """A salted commitment to the card as stored (without the child's name): those who see
    the report but not the card cannot test guesses of the card against it."""
    stored = {key: value for key, value in card.items() if key != "childName"}
    return commitment(salt, canonical_json(stored))


# -- views: what leaves the contract ------------------------------------------------------


def _admission_view(admission: AdmissionRequest) -> AdmissionRequestView:
    return {
        "id": admission["id"],
        "childId": admission["childId"],
        "childName": admission["childName"],
        "school": admission["school"],
        "status": admission["status"],
        "reason": admission["reason"],
        "createdAt": admission["createdAt"],
    }


def _request_view(request: ReportRequest) -> ReportRequestView:
    return {
        "id": request["id"],
        "admissionRequestId": request["admissionRequestId"],
        "childId": request["childId"],
        "school": request["school"],
        "status": request["status"],
        "reportId": request["reportId"],
        "createdAt": request["createdAt"],
    }


def _report_view(
    ctx: TxContext, report: Report, *, with_content: bool = True, with_proof: bool = False
) -> ReportView:
    """Metadata for everyone who may see the report; content, `with_content`, only for those
    `report_purpose` lets read it; with `with_proof`, the opening of the version shown, for
    insiders only.

    Insiders see every permission; a school sees its own only, and its own view of the
    status and the permitted schools: APPROVED and itself while its permission is ACTIVE,
    READY and none otherwise; it never depends on other schools' permissions. So a school
    is never given the stored record's opening: its text names every school's permission.
    """
    insider = _is_insider(ctx, report)
    permissions = _permissions(ctx, report)
    if not insider:
        permissions = [p for p in permissions if _is_school_staff(ctx, p["school"])]
    permitted = [p["school"] for p in permissions if _permission_status(ctx, p) == "ACTIVE"]
    tx_id = _version_shown(ctx, report, insider=insider)
    view: ReportView = {
        "id": report["id"],
        "txId": tx_id,
        "childId": report["childId"],
        "reportRequestId": report["reportRequestId"],
        "authorUid": report["authorUid"],
        "createdAt": report["createdAt"],
        "cardVersion": report["cardVersion"],
        "cardHash": report["cardHash"],
        "status": "APPROVED" if permitted else "READY",
        "permittedSchools": permitted,
        "permissions": [_permission_view(ctx, p) for p in permissions],
        "content": report["content"] if with_content and report_purpose(ctx, report) else None,
        # The salt opens the card commitment: for those who may read the card only.
        "cardSalt": report["cardSalt"] if insider else None,
    }
    if with_proof and insider:
        view["opening"] = ctx.opening_of(f"report/{report['id']}", tx_id)
    return view


def _version_shown(ctx: TxContext, report: Report, *, insider: bool) -> str:
    """The transaction that wrote the version of the report the caller is shown.

    Guardians and the author are shown every change: the report's last write. A school is
    shown the report as its own permission leaves it: the last write that changed that
    permission (granted, renewed, withdrawn), else the report's making, so that what it
    is shown never moves with other schools' permissions.
    """
    key = f"report/{report['id']}"
    writer = ctx.writer_of(key) if insider else _school_version(ctx, key)
    if writer is None:  # the report was just read from this key
        raise LookupError(f"{key!r} holds no report to name the writer of.")
    return writer


def _school_version(ctx: TxContext, key: str) -> str | None:
    """The last write of the report, up to the version read, that changed the calling
    school's own permission, or the report's first write."""
    version = ctx.version_of(key)
    writer: str | None = None
    shown: Any = None
    for entry in ctx.get_history(key):
        if version is None or (entry.block_number, entry.tx_index) > version:
            break
        own = _own_permission(ctx, entry.json())
        if writer is None or own != shown:
            writer, shown = entry.tx_id, own
    return writer


def _own_permission(ctx: TxContext, stored: Any) -> Any:
    """What a version of the report holds of the calling school's permission: its dated
    permission (None if none), or, in a report from before permissions had dates, whether
    it names the school."""
    if not isinstance(stored, dict):
        return None
    if "permissions" not in stored:
        return ctx.caller.org in stored.get("permittedSchools", [])
    return next((p for p in stored["permissions"] if p["school"] == ctx.caller.org), None)


def _permission_view(ctx: TxContext, permission: ReportPermission) -> ReportPermissionView:
    return {
        "school": permission["school"],
        "grantedAt": permission["grantedAt"],
        "validUntil": permission["validUntil"],
        "status": _permission_status(ctx, permission),
        "revokedAt": permission["revokedAt"],
    }


def _audience(subject_id: str, item: AdmissionRequest | ReportRequest) -> Audience:
    """Event payload: the guardians (ORG/UID) and the school the item is addressed to."""
    return {"subjectId": subject_id, "people": sorted(item["guardians"]), "orgs": [item["school"]]}


def _report_audience(report: Report, schools: list[str]) -> Audience:
    """Event payload: guardians, author, and only the schools the change itself concerns."""
    return {
        "subjectId": report["id"],
        "people": sorted({*report["guardians"], report["author"]}),
        "orgs": sorted(set(schools)),
    }
