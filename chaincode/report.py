"""The `report` contract (channel `report`): admissions, report requests, reports, permissions.

Who may do what: an admission request is read by the child's
guardians and the addressed school, created by a guardian and decided by that
school. A report request is created by the school of an ACCEPTED admission
and read by it, the guardians and doctors with an ACTIVE agreement for the
child. A report is created READY by such a doctor; guardians approve it for
particular schools (APPROVED) and withdraw permission. Its content is read by
guardians, the author, and a school only while APPROVED and named.

What a school sees of a report never depends on other schools' permissions:
the status it is shown is its own — APPROVED while the report is permitted to
it, READY otherwise (the requesting school keeps seeing the report it asked
for) — and the permitted schools it is shown are itself or none. A school that
neither asked for a report nor holds a permission is told it does not exist.
Event audiences follow the same rule. People are (organisation, UID) pairs
(`people.py`).

This channel never sees the medical channel. Facts that need it — who the
child's guardians are, which children a doctor cares for, the card a report is
built from — are read on `medical` by the gateway as the same caller and given
to this contract as the context's transient data (`ctx.transient`), which
callers cannot set and no transaction records. Which of the card's fields a
report carries is this contract's rule (`_report_content`).
"""

from __future__ import annotations

from typing import Any

from domain.errors import BadInputError, ConflictError, ForbiddenError, NotFoundError
from ledger_backends.hashing import canonical_json, commitment

from . import paging
from . import validation as check
from .base import Contract, TxContext, query, transaction
from .paging import DEFAULT_FIRST
from .people import person_of
from .records import (
    AdmissionRequest,
    AdmissionRequestView,
    Audience,
    CardView,
    Page,
    Report,
    ReportContent,
    ReportRequest,
    ReportRequestView,
    ReportView,
)

ADMISSION_STATUSES = ("PENDING", "ACCEPTED", "REJECTED")
REQUEST_STATUSES = ("PENDING", "FULFILLED")
REPORT_STATUSES = ("READY", "APPROVED")
REASON_MAX = 1_000


class ReportContract(Contract):
    name = "report"
    channel = "report"

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
        ctx.put_state(f"admission/{admission_id}", admission)
        ctx.put_state(open_key, admission_id)
        ctx.put_state(f"school-admission/{school}/{admission_id}", admission_id)
        for parent in admission["guardians"]:
            ctx.put_state(f"guardian-admission/{parent}/{admission_id}", admission_id)
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
        ctx.put_state(f"admission/{admission['id']}", admission)
        if status == "REJECTED":
            ctx.del_state(f"open-admission/{admission['childId']}/{admission['school']}")
        event = "AdmissionAccepted" if status == "ACCEPTED" else "AdmissionRejected"
        ctx.set_event(event, _audience(admission["id"], admission))
        return _admission_view(admission)

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
        """The school of an ACCEPTED admission asks the pediatrician for a health report."""
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
        ctx.put_state(f"report-request/{request_id}", request)
        ctx.put_state(open_key, request_id)
        ctx.put_state(f"child-report-request/{request['childId']}/{request_id}", request_id)
        ctx.put_state(f"school-report-request/{request['school']}/{request_id}", request_id)
        for parent in request["guardians"]:
            ctx.put_state(f"guardian-report-request/{parent}/{request_id}", request_id)
        ctx.set_event("ReportRequested", _audience(request_id, request))
        return _request_view(request)

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
            "permittedSchools": [],
            "requestingSchool": request["school"],
            "guardians": request["guardians"],
            "cardVersion": card["version"],
            "cardHash": _card_commitment(card, salt),
            "cardSalt": salt,
            "content": _report_content(card, conclusion),
        }
        ctx.put_state(f"report/{report_id}", report)
        ctx.put_state(
            f"report-request/{request['id']}",
            {**request, "status": "FULFILLED", "reportId": report_id},
        )
        ctx.del_state(f"open-report-request/{request['admissionRequestId']}")
        for parent in report["guardians"]:
            ctx.put_state(f"guardian-report/{parent}/{report_id}", report_id)
        ctx.put_state(f"author-report/{report['author']}/{report_id}", report_id)
        ctx.put_state(f"school-report/{request['school']}/{report_id}", report_id)
        ctx.set_event("ReportReady", _report_audience(report, [report["requestingSchool"]]))
        return _report_view(ctx, report)

    @transaction("approveReport")
    def approve_report(self, ctx: TxContext, id: str, schools: list[str]) -> ReportView:
        """A guardian lets particular schools read the report: APPROVED."""
        report = _guardian_report(ctx, id)
        if report["status"] == "APPROVED":
            raise ConflictError(
                "The report is already approved; withdraw a permission to change it."
            )
        permitted = check.text_list(schools, "schools", max_items=20)
        if not permitted:
            raise BadInputError("Name at least one school to approve the report for.")
        for school in permitted:
            _require_school(ctx, school)
        report = {**report, "status": "APPROVED", "permittedSchools": permitted}
        ctx.put_state(f"report/{report['id']}", report)
        for school in permitted:
            ctx.put_state(f"school-report/{school}/{report['id']}", report["id"])
        ctx.set_event("ReportApproved", _report_audience(report, permitted))
        return _report_view(ctx, report)

    @transaction("revokeReportPermission")
    def revoke_report_permission(self, ctx: TxContext, id: str, school: str) -> ReportView:
        """A guardian withdraws one school's permission; with none left, the report is READY."""
        report = _guardian_report(ctx, id)
        _require_school(ctx, school)
        if school not in report["permittedSchools"]:
            raise ConflictError("That school has no permission to withdraw.")
        remaining = [s for s in report["permittedSchools"] if s != school]
        report = {
            **report,
            "permittedSchools": remaining,
            "status": "APPROVED" if remaining else "READY",
        }
        ctx.put_state(f"report/{report['id']}", report)
        if school != report["requestingSchool"]:
            ctx.del_state(f"school-report/{school}/{report['id']}")
        # Told: the insiders and the school whose permission ended, never the other schools.
        ctx.set_event("ReportPermissionRevoked", _report_audience(report, [school]))
        return _report_view(ctx, report)

    @query("readReport")
    def read_report(self, ctx: TxContext, id: str) -> ReportView:
        return _report_view(ctx, _visible_report(ctx, id))

    @query("listReports")
    def list_reports(
        self,
        ctx: TxContext,
        status: str | None = None,
        first: int = DEFAULT_FIRST,
        after: str | None = None,
    ) -> Page[ReportView]:
        """Reports the caller may see: guardians', the author's, a school's (asked or
        permitted); newest first. `status` is the status the caller is shown."""
        _check_status(status, REPORT_STATUSES)
        if ctx.caller.role == "parent":
            prefixes = [f"guardian-report/{person_of(ctx.caller)}/"]
        elif ctx.caller.role == "doctor":
            prefixes = [f"author-report/{person_of(ctx.caller)}/"]
        elif ctx.caller.role == "school":
            prefixes = [f"school-report/{ctx.caller.org}/"]
        else:
            prefixes = []

        def load(report_id: str) -> ReportView | None:
            report: Report | None = ctx.get_state(f"report/{report_id}")
            if report is None or not _may_see_report(ctx, report):
                return None
            view = _report_view(ctx, report)
            return view if status in (None, view["status"]) else None

        return paging.newest_first(ctx, prefixes, first=first, after=after, load=load)


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
    return ctx.caller.role == "school" and ctx.caller.org in report["permittedSchools"]


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


def _report_view(ctx: TxContext, report: Report) -> ReportView:
    """Metadata for everyone who may see the report; content only for those who may read it.

    A school's view is its own: APPROVED and itself as the permitted school while it holds
    a permission, READY and none otherwise; it never depends on other schools' permissions.
    """
    insider = _is_insider(ctx, report)
    permitted_here = _is_permitted_school(ctx, report)
    if insider:
        status, permitted = report["status"], list(report["permittedSchools"])
    else:
        status = "APPROVED" if permitted_here else "READY"
        permitted = [ctx.caller.org] if permitted_here else []
    return {
        "id": report["id"],
        "childId": report["childId"],
        "reportRequestId": report["reportRequestId"],
        "authorUid": report["authorUid"],
        "createdAt": report["createdAt"],
        "cardVersion": report["cardVersion"],
        "cardHash": report["cardHash"],
        "status": status,
        "permittedSchools": permitted,
        "content": report["content"] if insider or permitted_here else None,
        # The salt opens the card commitment: for those who may read the card only.
        "cardSalt": report["cardSalt"] if insider else None,
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
