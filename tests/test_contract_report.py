"""The `report` contract on its own: admissions, report requests, reports and permissions.

The contract trusts the transient data on its context because only the gateway
sets it. Here it is made the way the gateway makes it (chaincode/gateway.py):
by reading a `medical` harness as the same caller. Every refusal is checked for
its error class, its API code, and that the report ledger did not change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from chaincode.consent import SERVER
from chaincode.medical import MedicalContract
from chaincode.people import person_of
from chaincode.records import Transient
from chaincode.report import ReportContract
from chaincode.testing import ContractHarness, FakeCaller, directory_for
from domain.errors import BadInputError, ConflictError, ForbiddenError, NotFoundError, RefusalError
from ledger_backends.hashing import canonical_json, commitment
from ledger_backends.memory import MemoryStore
from ledger_backends.records import StateRecord
from tests.contract_checks import assert_no_leak as assert_no_leak_of
from tests.contract_checks import (
    assert_pages_hold,
    every_page,
    items,
    ledger_snapshot,
    refused_on,
)

PARENT = FakeCaller("parent-anna", "parents", "parent")
CO_GUARDIAN = FakeCaller("parent-boris", "parents", "parent")
OTHER_PARENT = FakeCaller("parent-olga", "parents", "parent")
DOCTOR = FakeCaller("doctor-ivanova", "hospital", "doctor")
OTHER_DOCTOR = FakeCaller("doctor-kolya", "hospital", "doctor")
DOCTOR_NONE = FakeCaller("doctor-none", "hospital", "doctor")
DOCTOR_PENDING = FakeCaller("doctor-pending", "hospital", "doctor")
DOCTOR_REVOKED = FakeCaller("doctor-revoked", "hospital", "doctor")
SCHOOL_A = FakeCaller("staff-a", "school-a", "school")
SCHOOL_B = FakeCaller("staff-b", "school-b", "school")
SCHOOL_C = FakeCaller("staff-c", "school-c", "school")
SCHOOL_A_ADMIN = FakeCaller("admin-a", "school-a", "admin")
PARENTS_ADMIN = FakeCaller("admin-parents", "parents", "admin")
EVERYONE = (
    PARENT,
    CO_GUARDIAN,
    OTHER_PARENT,
    DOCTOR,
    OTHER_DOCTOR,
    DOCTOR_NONE,
    DOCTOR_PENDING,
    DOCTOR_REVOKED,
    SCHOOL_A,
    SCHOOL_B,
    SCHOOL_C,
    SCHOOL_A_ADMIN,
    PARENTS_ADMIN,
)
ORGS = {
    "hospital": "hospital",
    "parents": "parents",
    "school-a": "school",
    "school-b": "school",
    "school-c": "school",
}

CHILD_NAME = "Alisa Smirnova"
CONCLUSION = "Fit for school; keep away from peanuts."
CARD_SALT = "5a" * 32


@dataclass
class World:
    """Both channels: `medical` only to derive what the gateway would verify."""

    medical: ContractHarness
    report: ContractHarness
    child_id: str
    other_child_id: str

    def call(
        self, caller: FakeCaller, function: str, transient: Transient | None = None, **args: Any
    ) -> Any:
        return self.report.call(caller, function, transient=transient, **args)

    # -- what the gateway reads on `medical` for the report contract (chaincode/gateway.py) --

    def child(self, caller: FakeCaller, child_id: str | None = None) -> Transient:
        return {
            "child": self.medical.call(caller, "readGuardians", childId=child_id or self.child_id)
        }

    def patients(self, caller: FakeCaller) -> Transient:
        if caller.role != "doctor":
            return {}
        return {"patients": self.medical.call(caller, "listPatientIds")}

    def patient_of(self, caller: FakeCaller, request_id: str) -> Transient:
        """What proves a doctor's access to one request: its child, if the doctor treats it."""
        if caller.role != "doctor":
            return {}
        child_id = self.report.call(SERVER, "reportRequestChild", id=request_id)
        treated = self.medical.call(caller, "isPatient", childId=child_id or "")
        return {"patients": [child_id]} if treated and child_id else {}

    def card(self, caller: FakeCaller, child_id: str) -> Transient:
        card = self.medical.call(caller, "readCard", childId=child_id)
        return {"card": card, "cardSalt": CARD_SALT}

    # -- the gateway's story steps --

    def apply(self, caller: FakeCaller, school: str = "school-a") -> dict[str, Any]:
        return self.call(caller, "createAdmissionRequest", self.child(caller), school=school)

    def read_request(self, caller: FakeCaller, request_id: str) -> dict[str, Any]:
        return self.call(
            caller, "readReportRequest", self.patient_of(caller, request_id), id=request_id
        )

    def list_requests(self, caller: FakeCaller, status: str | None = None) -> list[Any]:
        return items(self.call(caller, "listReportRequests", self.patients(caller), status=status))

    def write_report(
        self, doctor: FakeCaller, request_id: str, conclusion: str = CONCLUSION
    ) -> dict[str, Any]:
        request = self.read_request(doctor, request_id)
        return self.call(
            doctor,
            "createReport",
            {**self.patient_of(doctor, request_id), **self.card(doctor, request["childId"])},
            reportRequestId=request_id,
            conclusion=conclusion,
        )

    # -- shortcuts to a given point of the story --

    def accepted_admission(self, school: FakeCaller = SCHOOL_A) -> dict[str, Any]:
        admission = self.apply(PARENT, school.org)
        return self.call(school, "acceptAdmissionRequest", id=admission["id"])

    def pending_request(self) -> dict[str, Any]:
        admission = self.accepted_admission()
        return self.call(SCHOOL_A, "createReportRequest", admissionRequestId=admission["id"])

    def ready_report(self) -> dict[str, Any]:
        return self.write_report(DOCTOR, self.pending_request()["id"])

    def approved_report(self, *schools: str) -> dict[str, Any]:
        report = self.ready_report()
        return self.call(PARENT, "approveReport", id=report["id"], schools=list(schools))


@pytest.fixture
def world() -> World:
    directory = directory_for(*EVERYONE)
    directory = type(directory)(orgs=ORGS, users=directory.users)
    medical = ContractHarness(MedicalContract(), directory)
    report = ContractHarness(ReportContract(), directory)
    child = medical.call(
        PARENT,
        "registerChild",
        fullName=CHILD_NAME,
        birthDate="2019-03-04",
        otherGuardians=[CO_GUARDIAN.uid],
    )
    medical.call(CO_GUARDIAN, "acceptGuardianship", childId=child["id"])
    for doctor in (DOCTOR, OTHER_DOCTOR, DOCTOR_PENDING, DOCTOR_REVOKED):
        agreement = medical.call(PARENT, "signAgreement", childId=child["id"], doctorUid=doctor.uid)
        if doctor is not DOCTOR_PENDING:
            medical.call(doctor, "acceptAgreement", id=agreement["id"])
        if doctor is DOCTOR_REVOKED:
            medical.call(PARENT, "revokeAgreement", id=agreement["id"])
    medical.call(
        DOCTOR,
        "updateMedicalCard",
        childId=child["id"],
        expectedVersion=1,
        patch={
            "allergies": ["peanuts"],
            "chronicConditions": ["asthma"],
            "vaccinations": [{"vaccine": "MMR", "date": "2020-04-01", "dose": 1}],
            "healthGroup": 2,
            "physicalEducationGroup": "MAIN",
            "notes": "Not for the school.",
        },
    )
    other = medical.call(
        OTHER_PARENT, "registerChild", fullName="Pavel Orlov", birthDate="2018-05-06"
    )
    return World(medical, report, child["id"], other["id"])


def refused(
    world: World, caller: FakeCaller, function: str, error: type[RefusalError], **args: Any
) -> RefusalError:
    return refused_on(world.report, caller, function, error, **args)


def assert_no_leak(error: RefusalError) -> None:
    assert_no_leak_of(error, (CHILD_NAME, PARENT.uid, CO_GUARDIAN.uid, DOCTOR.uid))


GUARDIANS = [
    pytest.param(PARENT, id="guardian who applied"),
    pytest.param(CO_GUARDIAN, id="other guardian"),
]
ADMINS = [
    pytest.param(SCHOOL_A_ADMIN, id="admin of the addressed school"),
    pytest.param(PARENTS_ADMIN, id="parents admin"),
]


# -- createAdmissionRequest --------------------------------------------------------------


@pytest.mark.parametrize("caller", GUARDIANS)
def test_a_guardian_applies_to_a_school(world: World, caller: FakeCaller) -> None:
    admission = world.apply(caller, "school-a")
    assert admission["id"]
    assert admission["childId"] == world.child_id
    assert admission["childName"] == CHILD_NAME
    assert admission["school"] == "school-a"
    assert admission["status"] == "PENDING"
    assert admission["reason"] is None
    assert admission["createdAt"]
    assert "guardians" not in admission
    assert items(world.call(SCHOOL_A, "listAdmissionRequests")) == [admission]


def test_a_child_may_apply_to_several_schools(world: World) -> None:
    world.apply(PARENT, "school-a")
    world.apply(PARENT, "school-b")
    listed = items(world.call(CO_GUARDIAN, "listAdmissionRequests"))
    assert sorted(a["school"] for a in listed) == ["school-a", "school-b"]


def test_the_doctor_of_the_child_cannot_apply_to_schools(world: World) -> None:
    # The gateway cannot read the child's guardians as a doctor ...
    with pytest.raises(NotFoundError):
        world.child(DOCTOR)
    # ... and the contract refuses a doctor handed them all the same.
    error = refused(
        world,
        DOCTOR,
        "createAdmissionRequest",
        ForbiddenError,
        transient=world.child(PARENT),
        school="school-a",
    )
    assert_no_leak(error)


@pytest.mark.parametrize(
    "caller",
    [
        pytest.param(OTHER_PARENT, id="unrelated parent"),
        pytest.param(SCHOOL_A, id="school"),
        *ADMINS,
    ],
)
def test_a_non_guardian_is_refused_even_when_handed_the_child_s_details(
    world: World, caller: FakeCaller
) -> None:
    # Through the gateway these callers never get this far (medical says NOT_FOUND or the
    # channel is closed to them); the contract refuses them on its own as well.
    error = refused(
        world,
        caller,
        "createAdmissionRequest",
        ForbiddenError,
        transient=world.child(PARENT),
        school="school-a",
    )
    assert_no_leak(error)


def test_an_unrelated_parent_gets_no_child_from_the_gateway(world: World) -> None:
    with pytest.raises(NotFoundError) as caught:
        world.child(OTHER_PARENT)
    assert caught.value.code == "NOT_FOUND"


def test_a_guardian_applying_without_the_gateway_s_reading_of_medical_is_refused(
    world: World,
) -> None:
    refused(world, PARENT, "createAdmissionRequest", ForbiddenError, school="school-a")


@pytest.mark.parametrize(
    "school",
    [
        pytest.param("school-z", id="unknown school"),
        pytest.param("hospital", id="the hospital"),
        pytest.param("parents", id="the parents org"),
        pytest.param("", id="empty"),
        pytest.param(None, id="missing"),
        pytest.param(["school-a"], id="a list"),
    ],
)
def test_applying_to_something_that_is_not_a_school_is_bad_user_input(
    world: World, school: Any
) -> None:
    refused(
        world,
        PARENT,
        "createAdmissionRequest",
        BadInputError,
        transient=world.child(PARENT),
        school=school,
    )


def test_a_second_open_application_to_the_same_school_is_a_conflict(world: World) -> None:
    world.apply(PARENT, "school-a")
    refused(
        world,
        CO_GUARDIAN,
        "createAdmissionRequest",
        ConflictError,
        transient=world.child(CO_GUARDIAN),
        school="school-a",
    )


def test_applying_again_after_acceptance_is_a_conflict(world: World) -> None:
    world.accepted_admission()
    refused(
        world,
        PARENT,
        "createAdmissionRequest",
        ConflictError,
        transient=world.child(PARENT),
        school="school-a",
    )


def test_a_rejected_child_may_apply_to_the_same_school_again(world: World) -> None:
    first = world.apply(PARENT)
    world.call(SCHOOL_A, "rejectAdmissionRequest", id=first["id"], reason="No places left.")
    second = world.apply(PARENT)
    assert second["status"] == "PENDING" and second["id"] != first["id"]


# -- acceptAdmissionRequest / rejectAdmissionRequest ---------------------------------------

DECISIONS = [
    pytest.param("acceptAdmissionRequest", {}, id="accept"),
    pytest.param("rejectAdmissionRequest", {"reason": "No places left."}, id="reject"),
]


def _admission(world: World, admission_id: str) -> dict[str, Any]:
    (found,) = [
        a for a in items(world.call(PARENT, "listAdmissionRequests")) if a["id"] == admission_id
    ]
    return found


def test_the_addressed_school_accepts_an_admission(world: World) -> None:
    admission = world.apply(PARENT)
    accepted = world.call(SCHOOL_A, "acceptAdmissionRequest", id=admission["id"])
    assert accepted == {**admission, "status": "ACCEPTED"}
    assert _admission(world, admission["id"])["status"] == "ACCEPTED"


def test_the_addressed_school_rejects_an_admission_with_a_reason(world: World) -> None:
    admission = world.apply(PARENT)
    rejected = world.call(
        SCHOOL_A, "rejectAdmissionRequest", id=admission["id"], reason="  No places left. "
    )
    assert rejected == {**admission, "status": "REJECTED", "reason": "No places left."}
    assert _admission(world, admission["id"]) == rejected


@pytest.mark.parametrize(("function", "extra"), DECISIONS)
@pytest.mark.parametrize("caller", GUARDIANS)
def test_guardians_cannot_decide_their_own_admission(
    world: World, caller: FakeCaller, function: str, extra: dict[str, Any]
) -> None:
    admission = world.apply(PARENT)
    refused(world, caller, function, ForbiddenError, id=admission["id"], **extra)
    assert _admission(world, admission["id"])["status"] == "PENDING"


@pytest.mark.parametrize(("function", "extra"), DECISIONS)
@pytest.mark.parametrize(
    "caller",
    [
        pytest.param(SCHOOL_B, id="another school"),
        pytest.param(DOCTOR, id="the child's doctor"),
        pytest.param(OTHER_PARENT, id="unrelated parent"),
        *ADMINS,
    ],
)
def test_anyone_but_the_addressed_school_and_guardians_is_told_the_admission_does_not_exist(
    world: World, caller: FakeCaller, function: str, extra: dict[str, Any]
) -> None:
    admission = world.apply(PARENT)
    error = refused(world, caller, function, NotFoundError, id=admission["id"], **extra)
    assert_no_leak(error)
    assert _admission(world, admission["id"])["status"] == "PENDING"


@pytest.mark.parametrize(("function", "extra"), DECISIONS)
@pytest.mark.parametrize("decided", ["acceptAdmissionRequest", "rejectAdmissionRequest"])
def test_deciding_an_admission_twice_is_a_conflict(
    world: World, decided: str, function: str, extra: dict[str, Any]
) -> None:
    admission = world.apply(PARENT)
    reason = {"reason": "First decision."} if decided == "rejectAdmissionRequest" else {}
    first = world.call(SCHOOL_A, decided, id=admission["id"], **reason)
    refused(world, SCHOOL_A, function, ConflictError, id=admission["id"], **extra)
    assert _admission(world, admission["id"]) == first


@pytest.mark.parametrize(("function", "extra"), DECISIONS)
def test_deciding_an_unknown_admission_is_not_found(
    world: World, function: str, extra: dict[str, Any]
) -> None:
    refused(world, SCHOOL_A, function, NotFoundError, id="admission-0000000000000000", **extra)


@pytest.mark.parametrize(
    "reason",
    [
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param("x" * 1001, id="over 1000 characters"),
        pytest.param(None, id="missing"),
    ],
)
def test_rejecting_without_a_proper_reason_is_bad_user_input(world: World, reason: Any) -> None:
    admission = world.apply(PARENT)
    refused(
        world, SCHOOL_A, "rejectAdmissionRequest", BadInputError, id=admission["id"], reason=reason
    )
    assert _admission(world, admission["id"])["status"] == "PENDING"


# -- listAdmissionRequests ---------------------------------------------------------------


def test_guardians_and_the_addressed_school_list_the_admission(world: World) -> None:
    admission = world.apply(PARENT)
    for caller in (PARENT, CO_GUARDIAN, SCHOOL_A):
        assert items(world.call(caller, "listAdmissionRequests")) == [admission]


@pytest.mark.parametrize(
    "caller",
    [
        pytest.param(SCHOOL_B, id="another school"),
        pytest.param(DOCTOR, id="the child's doctor"),
        pytest.param(OTHER_PARENT, id="unrelated parent"),
        *ADMINS,
    ],
)
def test_others_list_no_admissions(world: World, caller: FakeCaller) -> None:
    world.apply(PARENT)
    assert items(world.call(caller, "listAdmissionRequests")) == []


def test_admissions_are_filtered_by_status(world: World) -> None:
    accepted = world.accepted_admission()
    pending = world.apply(PARENT, "school-b")
    assert items(world.call(PARENT, "listAdmissionRequests", status="ACCEPTED")) == [accepted]
    assert items(world.call(PARENT, "listAdmissionRequests", status="PENDING")) == [pending]
    assert items(world.call(PARENT, "listAdmissionRequests", status="REJECTED")) == []
    assert items(world.call(SCHOOL_B, "listAdmissionRequests", status="ACCEPTED")) == []


def test_listing_admissions_with_an_unknown_status_is_bad_user_input(world: World) -> None:
    refused(world, PARENT, "listAdmissionRequests", BadInputError, status="DONE")


# -- createReportRequest -----------------------------------------------------------------


def test_the_accepting_school_requests_a_report(world: World) -> None:
    admission = world.accepted_admission()
    request = world.call(SCHOOL_A, "createReportRequest", admissionRequestId=admission["id"])
    assert request["id"]
    assert request["admissionRequestId"] == admission["id"]
    assert request["childId"] == world.child_id
    assert request["school"] == "school-a"
    assert request["status"] == "PENDING"
    assert request["reportId"] is None
    assert "guardians" not in request
    assert world.list_requests(SCHOOL_A) == [request]


@pytest.mark.parametrize(
    "decide",
    [
        pytest.param(None, id="pending admission"),
        pytest.param("rejectAdmissionRequest", id="rejected admission"),
    ],
)
def test_a_report_is_requested_only_for_an_accepted_admission(
    world: World, decide: str | None
) -> None:
    admission = world.apply(PARENT)
    if decide:
        world.call(SCHOOL_A, decide, id=admission["id"], reason="No places left.")
    refused(
        world, SCHOOL_A, "createReportRequest", ConflictError, admissionRequestId=admission["id"]
    )
    assert world.list_requests(SCHOOL_A) == []


def test_a_second_open_report_request_for_one_admission_is_a_conflict(world: World) -> None:
    request = world.pending_request()
    refused(
        world,
        SCHOOL_A,
        "createReportRequest",
        ConflictError,
        admissionRequestId=request["admissionRequestId"],
    )
    assert world.list_requests(SCHOOL_A) == [request]


@pytest.mark.parametrize("caller", GUARDIANS)
def test_guardians_cannot_request_reports(world: World, caller: FakeCaller) -> None:
    admission = world.accepted_admission()
    refused(
        world, caller, "createReportRequest", ForbiddenError, admissionRequestId=admission["id"]
    )


@pytest.mark.parametrize(
    "caller",
    [
        pytest.param(SCHOOL_B, id="another school"),
        pytest.param(DOCTOR, id="the child's doctor"),
        pytest.param(OTHER_PARENT, id="unrelated parent"),
        *ADMINS,
    ],
)
def test_others_are_told_the_admission_to_request_for_does_not_exist(
    world: World, caller: FakeCaller
) -> None:
    admission = world.accepted_admission()
    error = refused(
        world, caller, "createReportRequest", NotFoundError, admissionRequestId=admission["id"]
    )
    assert_no_leak(error)


def test_requesting_a_report_for_an_unknown_admission_is_not_found(world: World) -> None:
    refused(
        world,
        SCHOOL_A,
        "createReportRequest",
        NotFoundError,
        admissionRequestId="admission-00000000",
    )


# -- readReportRequest -------------------------------------------------------------------


@pytest.mark.parametrize(
    "caller",
    [
        pytest.param(SCHOOL_A, id="requesting school"),
        *GUARDIANS,
        pytest.param(DOCTOR, id="doctor with active agreement"),
        pytest.param(OTHER_DOCTOR, id="second doctor with active agreement"),
    ],
)
def test_the_school_guardians_and_active_doctors_read_the_report_request(
    world: World, caller: FakeCaller
) -> None:
    request = world.pending_request()
    assert world.read_request(caller, request["id"]) == request


@pytest.mark.parametrize(
    "caller",
    [
        pytest.param(DOCTOR_NONE, id="doctor without agreement"),
        pytest.param(DOCTOR_PENDING, id="doctor with pending agreement"),
        pytest.param(DOCTOR_REVOKED, id="doctor with revoked agreement"),
        pytest.param(SCHOOL_B, id="another school"),
        pytest.param(OTHER_PARENT, id="unrelated parent"),
        *ADMINS,
    ],
)
def test_others_are_told_the_report_request_does_not_exist(
    world: World, caller: FakeCaller
) -> None:
    request = world.pending_request()
    with pytest.raises(NotFoundError) as caught:
        world.read_request(caller, request["id"])
    assert caught.value.code == "NOT_FOUND"
    assert_no_leak(caught.value)


def test_a_doctor_reads_only_the_requests_of_the_patients_the_gateway_found(
    world: World,
) -> None:
    request = world.pending_request()
    refused(
        world,
        OTHER_DOCTOR,
        "readReportRequest",
        NotFoundError,
        transient={"patients": [world.other_child_id]},
        id=request["id"],
    )


def test_a_caller_cannot_name_patients_as_an_argument(world: World) -> None:
    request = world.pending_request()
    refused(
        world,
        OTHER_DOCTOR,
        "readReportRequest",
        BadInputError,
        id=request["id"],
        patients=[world.child_id],
    )


def test_reading_an_unknown_report_request_is_not_found(world: World) -> None:
    refused(world, SCHOOL_A, "readReportRequest", NotFoundError, id="report-request-00000000")


def test_a_doctor_is_not_found_an_unknown_report_request(world: World) -> None:
    with pytest.raises(NotFoundError):
        world.read_request(DOCTOR, "report-request-00000000")


def test_the_server_learns_which_child_a_report_request_is_for(world: World) -> None:
    request = world.pending_request()
    assert world.call(SERVER, "reportRequestChild", id=request["id"]) == world.child_id
    assert world.call(SERVER, "reportRequestChild", id="report-request-00000000") is None


@pytest.mark.parametrize("caller", EVERYONE, ids=lambda caller: caller.uid)
def test_no_caller_but_the_server_learns_a_report_request_s_child(
    world: World, caller: FakeCaller
) -> None:
    request = world.pending_request()
    refused(world, caller, "reportRequestChild", ForbiddenError, id=request["id"])


# -- listReportRequests ------------------------------------------------------------------


@pytest.mark.parametrize(
    "caller",
    [pytest.param(SCHOOL_A, id="requesting school"), *GUARDIANS, pytest.param(DOCTOR, id="doctor")],
)
def test_the_school_guardians_and_active_doctors_list_the_report_request(
    world: World, caller: FakeCaller
) -> None:
    request = world.pending_request()
    assert world.list_requests(caller) == [request]


@pytest.mark.parametrize(
    "caller",
    [
        pytest.param(DOCTOR_NONE, id="doctor without agreement"),
        pytest.param(DOCTOR_PENDING, id="doctor with pending agreement"),
        pytest.param(DOCTOR_REVOKED, id="doctor with revoked agreement"),
        pytest.param(SCHOOL_B, id="another school"),
        pytest.param(OTHER_PARENT, id="unrelated parent"),
        *ADMINS,
    ],
)
def test_others_list_no_report_requests(world: World, caller: FakeCaller) -> None:
    world.pending_request()
    assert world.list_requests(caller) == []


def test_report_requests_are_filtered_by_status(world: World) -> None:
    request = world.pending_request()
    assert world.list_requests(PARENT, "PENDING") == [request]
    assert world.list_requests(PARENT, "FULFILLED") == []
    report = world.write_report(DOCTOR, request["id"])
    fulfilled = {**request, "status": "FULFILLED", "reportId": report["id"]}
    assert world.list_requests(DOCTOR, "FULFILLED") == [fulfilled]
    assert world.list_requests(SCHOOL_A, "PENDING") == []


def test_listing_report_requests_with_an_unknown_status_is_bad_user_input(world: World) -> None:
    refused(world, SCHOOL_A, "listReportRequests", BadInputError, status="READY")


# -- createReport ------------------------------------------------------------------------


def test_the_active_doctor_writes_a_ready_report_from_the_card(world: World) -> None:
    request = world.pending_request()
    card = world.medical.call(DOCTOR, "readCard", childId=world.child_id)
    stored = {key: value for key, value in card.items() if key != "childName"}
    card_hash = commitment(CARD_SALT, canonical_json(stored))
    report = world.write_report(DOCTOR, request["id"])
    assert report["id"]
    assert report["childId"] == world.child_id
    assert report["reportRequestId"] == request["id"]
    assert report["status"] == "READY"
    assert report["authorUid"] == DOCTOR.uid
    assert report["permittedSchools"] == []
    assert (report["cardVersion"], report["cardHash"]) == (2, card_hash)
    assert report["cardSalt"] == CARD_SALT
    school_view = world.call(SCHOOL_A, "readReport", id=report["id"])
    assert (school_view["cardHash"], school_view["cardSalt"]) == (card_hash, None)
    assert report["content"] == {
        "childName": CHILD_NAME,
        "healthGroup": 2,
        "physicalEducationGroup": "MAIN",
        "allergies": ["peanuts"],
        "chronicConditions": ["asthma"],
        "vaccinations": [{"vaccine": "MMR", "date": "2020-04-01", "dose": 1}],
        "conclusion": CONCLUSION,
    }
    assert "guardians" not in report and "requestingSchool" not in report


def test_writing_the_report_fulfils_the_request(world: World) -> None:
    request = world.pending_request()
    report = world.write_report(DOCTOR, request["id"])
    fulfilled = world.read_request(SCHOOL_A, request["id"])
    assert (fulfilled["status"], fulfilled["reportId"]) == ("FULFILLED", report["id"])


def test_a_second_report_for_a_fulfilled_request_is_a_conflict(world: World) -> None:
    request = world.pending_request()
    world.write_report(DOCTOR, request["id"])
    before = ledger_snapshot(world.report)
    with pytest.raises(ConflictError) as caught:
        world.write_report(OTHER_DOCTOR, request["id"])
    assert caught.value.code == "CONFLICT"
    assert ledger_snapshot(world.report) == before
    assert len(items(world.call(PARENT, "listReports"))) == 1


@pytest.mark.parametrize(
    "caller",
    [
        *GUARDIANS,
        pytest.param(SCHOOL_A, id="requesting school"),
        pytest.param(SCHOOL_A_ADMIN, id="school admin"),
    ],
)
def test_only_doctors_write_reports(world: World, caller: FakeCaller) -> None:
    request = world.pending_request()
    error = refused(
        world,
        caller,
        "createReport",
        ForbiddenError,
        transient={**world.patients(DOCTOR), **world.card(DOCTOR, world.child_id)},
        reportRequestId=request["id"],
        conclusion=CONCLUSION,
    )
    assert_no_leak(error)
    assert world.read_request(SCHOOL_A, request["id"])["status"] == "PENDING"


@pytest.mark.parametrize(
    "doctor",
    [
        pytest.param(DOCTOR_NONE, id="doctor without agreement"),
        pytest.param(DOCTOR_PENDING, id="doctor with pending agreement"),
        pytest.param(DOCTOR_REVOKED, id="doctor with revoked agreement"),
    ],
)
def test_a_doctor_without_an_active_agreement_cannot_write_the_report(
    world: World, doctor: FakeCaller
) -> None:
    request = world.pending_request()
    # The gateway stops at its first step (reading the request as the doctor) ...
    with pytest.raises(NotFoundError):
        world.write_report(doctor, request["id"])
    # ... and the contract refuses on its own with what the doctor's medical view gives.
    error = refused(
        world,
        doctor,
        "createReport",
        NotFoundError,
        transient=world.patients(doctor),
        reportRequestId=request["id"],
        conclusion=CONCLUSION,
    )
    assert_no_leak(error)
    assert world.read_request(SCHOOL_A, request["id"])["status"] == "PENDING"


def test_a_card_of_another_child_cannot_fulfil_the_request(world: World) -> None:
    request = world.pending_request()
    medical = world.medical
    agreement = medical.call(
        OTHER_PARENT, "signAgreement", childId=world.other_child_id, doctorUid=DOCTOR.uid
    )
    medical.call(DOCTOR, "acceptAgreement", id=agreement["id"])
    refused(
        world,
        DOCTOR,
        "createReport",
        NotFoundError,
        transient={**world.patients(DOCTOR), **world.card(DOCTOR, world.other_child_id)},
        reportRequestId=request["id"],
        conclusion=CONCLUSION,
    )


@pytest.mark.parametrize(
    "conclusion",
    [pytest.param("", id="empty"), pytest.param("x" * 2001, id="over 2000 characters")],
)
def test_a_report_without_a_proper_conclusion_is_bad_user_input(
    world: World, conclusion: str
) -> None:
    request = world.pending_request()
    refused(
        world,
        DOCTOR,
        "createReport",
        BadInputError,
        transient={**world.patients(DOCTOR), **world.card(DOCTOR, world.child_id)},
        reportRequestId=request["id"],
        conclusion=conclusion,
    )
    assert world.read_request(SCHOOL_A, request["id"])["status"] == "PENDING"


def test_a_report_with_proof_opens_the_version_shown_to_guardians_and_the_author_only(
    world: World,
) -> None:
    report = world.approved_report("school-a")
    key = f"report/{report['id']}"
    for caller in (PARENT, CO_GUARDIAN, DOCTOR):
        view = world.call(caller, "readReport", id=report["id"], withProof=True)
        opening = view.pop("opening")
        assert (opening["key"], opening["txId"]) == (key, view["txId"])
        stored = json.loads(opening["canonicalText"])
        assert (stored["id"], stored["content"]) == (report["id"], view["content"])
        assert opening["commitment"] == commitment(opening["salt"], opening["canonicalText"])
        assert view == world.call(caller, "readReport", id=report["id"])
        listed = items(world.call(caller, "listReports", withProof=True))
        assert [r["opening"] for r in listed if r["id"] == report["id"]] == [opening]
    # A school sees its own view; the stored record names every school's permission.
    view = world.call(SCHOOL_A, "readReport", id=report["id"], withProof=True)
    assert "opening" not in view and view["content"] is not None
    listed = items(world.call(SCHOOL_A, "listReports", withProof=True))
    assert listed and all("opening" not in r for r in listed)


# -- approveReport -----------------------------------------------------------------------


@pytest.mark.parametrize("caller", GUARDIANS)
def test_a_guardian_approves_the_report_for_schools(world: World, caller: FakeCaller) -> None:
    report = world.ready_report()
    approved = world.call(
        caller, "approveReport", id=report["id"], schools=["school-a", "school-b"]
    )
    assert approved["status"] == "APPROVED"
    assert approved["permittedSchools"] == ["school-a", "school-b"]
    assert approved["content"] == report["content"]
    assert world.call(CO_GUARDIAN, "readReport", id=report["id"]) == approved


def test_approving_again_adds_schools_and_keeps_the_others_permissions(world: World) -> None:
    report = world.approved_report("school-a")
    again = world.call(PARENT, "approveReport", id=report["id"], schools=["school-b"])
    assert again["permittedSchools"] == ["school-a", "school-b"]
    first, second = again["permissions"]
    assert first == report["permissions"][0]
    assert second["grantedAt"] > first["grantedAt"]


@pytest.mark.parametrize(
    "caller",
    [
        pytest.param(DOCTOR, id="the author"),
        pytest.param(SCHOOL_A, id="the requesting school"),
    ],
)
def test_those_who_see_the_report_but_are_not_guardians_cannot_approve_it(
    world: World, caller: FakeCaller
) -> None:
    report = world.ready_report()
    error = refused(
        world, caller, "approveReport", ForbiddenError, id=report["id"], schools=["school-a"]
    )
    assert_no_leak(error)
    assert world.call(PARENT, "readReport", id=report["id"])["status"] == "READY"


NOT_SEEING_THE_REPORT = [
    pytest.param(OTHER_DOCTOR, id="another doctor with active agreement"),
    pytest.param(DOCTOR_NONE, id="doctor without agreement"),
    pytest.param(SCHOOL_B, id="a school not asking and not permitted"),
    pytest.param(OTHER_PARENT, id="unrelated parent"),
    *ADMINS,
]


@pytest.mark.parametrize("caller", NOT_SEEING_THE_REPORT)
def test_others_are_told_the_report_to_approve_does_not_exist(
    world: World, caller: FakeCaller
) -> None:
    report = world.ready_report()
    error = refused(
        world, caller, "approveReport", NotFoundError, id=report["id"], schools=["school-b"]
    )
    assert_no_leak(error)
    assert world.call(PARENT, "readReport", id=report["id"])["status"] == "READY"


@pytest.mark.parametrize(
    "schools",
    [
        pytest.param([], id="no school"),
        pytest.param(["school-z"], id="unknown school"),
        pytest.param(["school-a", "hospital"], id="the hospital"),
        pytest.param([""], id="empty name"),
        pytest.param("school-a", id="not a list"),
        pytest.param([f"school-{n}" for n in range(21)], id="more than 20 schools"),
    ],
)
def test_approving_for_something_other_than_schools_is_bad_user_input(
    world: World, schools: Any
) -> None:
    report = world.ready_report()
    refused(world, PARENT, "approveReport", BadInputError, id=report["id"], schools=schools)
    assert world.call(PARENT, "readReport", id=report["id"])["status"] == "READY"


def test_approving_an_unknown_report_is_not_found(world: World) -> None:
    refused(world, PARENT, "approveReport", NotFoundError, id="report-0000", schools=["school-a"])


# -- revokeReportPermission ----------------------------------------------------------------


def test_withdrawing_one_of_two_permissions_keeps_the_report_approved(world: World) -> None:
    report = world.approved_report("school-a", "school-b")
    after = world.call(CO_GUARDIAN, "revokeReportPermission", id=report["id"], school="school-b")
    assert (after["status"], after["permittedSchools"]) == ("APPROVED", ["school-a"])
    assert after["content"] == report["content"]


def test_withdrawing_the_last_permission_returns_the_report_to_ready(world: World) -> None:
    report = world.approved_report("school-a")
    after = world.call(PARENT, "revokeReportPermission", id=report["id"], school="school-a")
    assert (after["status"], after["permittedSchools"]) == ("READY", [])
    assert items(world.call(PARENT, "listReports", status="READY")) == [after]


def test_a_report_back_at_ready_may_be_approved_again(world: World) -> None:
    report = world.approved_report("school-a")
    world.call(PARENT, "revokeReportPermission", id=report["id"], school="school-a")
    again = world.call(PARENT, "approveReport", id=report["id"], schools=["school-b"])
    assert (again["status"], again["permittedSchools"]) == ("APPROVED", ["school-b"])
    assert world.call(SCHOOL_B, "readReport", id=report["id"])["content"] is not None


def test_withdrawing_a_permission_not_granted_is_a_conflict(world: World) -> None:
    report = world.approved_report("school-a")
    refused(
        world, PARENT, "revokeReportPermission", ConflictError, id=report["id"], school="school-b"
    )
    assert world.call(PARENT, "readReport", id=report["id"])["permittedSchools"] == ["school-a"]


@pytest.mark.parametrize("school", ["school-z", "hospital", "", None])
def test_withdrawing_a_permission_from_something_that_is_not_a_school_is_bad_user_input(
    world: World, school: Any
) -> None:
    report = world.approved_report("school-a")
    refused(world, PARENT, "revokeReportPermission", BadInputError, id=report["id"], school=school)


def test_withdrawing_a_permission_twice_is_a_conflict(world: World) -> None:
    report = world.approved_report("school-a", "school-b")
    world.call(PARENT, "revokeReportPermission", id=report["id"], school="school-b")
    refused(
        world, PARENT, "revokeReportPermission", ConflictError, id=report["id"], school="school-b"
    )


def test_withdrawing_from_a_report_never_approved_is_a_conflict(world: World) -> None:
    report = world.ready_report()
    refused(
        world, PARENT, "revokeReportPermission", ConflictError, id=report["id"], school="school-a"
    )


@pytest.mark.parametrize(
    "caller",
    [
        pytest.param(DOCTOR, id="the author"),
        pytest.param(SCHOOL_A, id="the requesting school"),
        pytest.param(SCHOOL_B, id="the permitted school itself"),
    ],
)
def test_those_who_see_the_report_but_are_not_guardians_cannot_withdraw_permissions(
    world: World, caller: FakeCaller
) -> None:
    report = world.approved_report("school-a", "school-b")
    error = refused(
        world, caller, "revokeReportPermission", ForbiddenError, id=report["id"], school="school-b"
    )
    assert_no_leak(error)
    assert world.call(PARENT, "readReport", id=report["id"])["permittedSchools"] == [
        "school-a",
        "school-b",
    ]


@pytest.mark.parametrize(
    "caller",
    [
        pytest.param(OTHER_DOCTOR, id="another doctor with active agreement"),
        pytest.param(SCHOOL_C, id="a school not asking and not permitted"),
        pytest.param(OTHER_PARENT, id="unrelated parent"),
        *ADMINS,
    ],
)
def test_others_are_told_the_report_to_withdraw_from_does_not_exist(
    world: World, caller: FakeCaller
) -> None:
    report = world.approved_report("school-a")
    error = refused(
        world, caller, "revokeReportPermission", NotFoundError, id=report["id"], school="school-a"
    )
    assert_no_leak(error)


# -- readReport: who sees what -------------------------------------------------------------


@pytest.mark.parametrize("caller", [*GUARDIANS, pytest.param(DOCTOR, id="the author")])
def test_guardians_and_the_author_read_everything_at_any_status(
    world: World, caller: FakeCaller
) -> None:
    report = world.ready_report()
    ready = world.call(caller, "readReport", id=report["id"])
    assert ready["content"] == report["content"]
    world.call(PARENT, "approveReport", id=report["id"], schools=["school-a", "school-b"])
    approved = world.call(caller, "readReport", id=report["id"])
    assert approved["permittedSchools"] == ["school-a", "school-b"]
    assert approved["content"] == report["content"]


def test_the_requesting_school_sees_no_content_before_approval(world: World) -> None:
    report = world.ready_report()
    seen = world.call(SCHOOL_A, "readReport", id=report["id"])
    assert seen == {**report, "content": None, "cardSalt": None}


def test_a_permitted_school_reads_the_content_and_sees_only_itself_permitted(
    world: World,
) -> None:
    report = world.approved_report("school-a", "school-b")
    for school in (SCHOOL_A, SCHOOL_B):
        seen = world.call(school, "readReport", id=report["id"])
        assert seen["status"] == "APPROVED"
        assert seen["permittedSchools"] == [school.org]
        assert seen["content"] == report["content"]


def test_the_requesting_school_sees_no_content_when_only_another_school_is_permitted(
    world: World,
) -> None:
    report = world.approved_report("school-b")
    seen = world.call(SCHOOL_A, "readReport", id=report["id"])
    assert (seen["status"], seen["permittedSchools"], seen["content"]) == ("READY", [], None)


def test_withdrawing_a_school_s_permission_hides_the_content_from_it_again(world: World) -> None:
    report = world.approved_report("school-a", "school-b")
    world.call(PARENT, "revokeReportPermission", id=report["id"], school="school-a")
    seen = world.call(SCHOOL_A, "readReport", id=report["id"])
    assert (seen["status"], seen["permittedSchools"], seen["content"]) == ("READY", [], None)
    assert world.call(SCHOOL_B, "readReport", id=report["id"])["content"] == report["content"]


def _school_views(world: World, report_id: str) -> dict[str, Any]:
    views: dict[str, Any] = {}
    for school in (SCHOOL_A, SCHOOL_B, SCHOOL_C):
        try:
            views[school.org] = world.call(school, "readReport", id=report_id)
        except NotFoundError:
            views[school.org] = None
        listed = items(world.call(school, "listReports"))
        assert listed == ([] if views[school.org] is None else [views[school.org]])
    return views


def test_what_a_school_sees_never_depends_on_other_schools_permissions(world: World) -> None:
    """School A asked for the report; B and C are permitted and withdrawn in turn."""
    report = world.ready_report()
    alone = _school_views(world, report["id"])
    assert (alone["school-a"]["status"], alone["school-b"], alone["school-c"]) == (
        "READY",
        None,
        None,
    )
    world.call(PARENT, "approveReport", id=report["id"], schools=["school-b", "school-c"])
    both = _school_views(world, report["id"])
    assert both["school-a"] == alone["school-a"]
    assert both["school-b"]["status"] == both["school-c"]["status"] == "APPROVED"
    assert both["school-b"]["permittedSchools"] == ["school-b"]
    world.call(PARENT, "revokeReportPermission", id=report["id"], school="school-c")
    one = _school_views(world, report["id"])
    assert one["school-a"] == alone["school-a"]
    assert one["school-b"] == both["school-b"]
    assert one["school-c"] is None
    world.call(PARENT, "revokeReportPermission", id=report["id"], school="school-b")
    assert _school_views(world, report["id"]) == alone


def test_a_school_filters_reports_by_its_own_status(world: World) -> None:
    report = world.approved_report("school-b")
    assert items(world.call(SCHOOL_A, "listReports", status="APPROVED")) == []
    assert [r["id"] for r in items(world.call(SCHOOL_A, "listReports", status="READY"))] == [
        report["id"]
    ]
    assert [r["id"] for r in items(world.call(SCHOOL_B, "listReports", status="APPROVED"))] == [
        report["id"]
    ]


def test_a_school_whose_only_permission_is_withdrawn_no_longer_sees_the_report(
    world: World,
) -> None:
    report = world.approved_report("school-b")
    world.call(PARENT, "revokeReportPermission", id=report["id"], school="school-b")
    refused(world, SCHOOL_B, "readReport", NotFoundError, id=report["id"])
    assert items(world.call(SCHOOL_B, "listReports")) == []


@pytest.mark.parametrize("caller", NOT_SEEING_THE_REPORT)
def test_others_are_told_the_report_does_not_exist(world: World, caller: FakeCaller) -> None:
    report = world.approved_report("school-a")
    error = refused(world, caller, "readReport", NotFoundError, id=report["id"])
    assert_no_leak(error)


@pytest.mark.parametrize("report_id", ["report-0000000000000000", "", None])
def test_reading_an_unknown_report_is_not_found(world: World, report_id: Any) -> None:
    refused(world, PARENT, "readReport", NotFoundError, id=report_id)


# -- listReports -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "caller",
    [*GUARDIANS, pytest.param(DOCTOR, id="the author"), pytest.param(SCHOOL_A, id="requester")],
)
def test_those_who_may_see_the_report_list_it_as_they_would_read_it(
    world: World, caller: FakeCaller
) -> None:
    report = world.ready_report()
    assert items(world.call(caller, "listReports")) == [
        world.call(caller, "readReport", id=report["id"])
    ]


def test_a_permitted_school_lists_the_report_with_its_content(world: World) -> None:
    report = world.approved_report("school-b")
    (listed,) = items(world.call(SCHOOL_B, "listReports"))
    assert (listed["permittedSchools"], listed["content"]) == (["school-b"], report["content"])


@pytest.mark.parametrize("caller", NOT_SEEING_THE_REPORT)
def test_others_list_no_reports(world: World, caller: FakeCaller) -> None:
    world.approved_report("school-a")
    assert items(world.call(caller, "listReports")) == []


def test_reports_are_filtered_by_status(world: World) -> None:
    report = world.approved_report("school-a")
    assert [r["id"] for r in items(world.call(PARENT, "listReports", status="APPROVED"))] == [
        report["id"]
    ]
    assert items(world.call(PARENT, "listReports", status="READY")) == []
    assert items(world.call(SCHOOL_A, "listReports", status="READY")) == []


def test_listing_reports_with_an_unknown_status_is_bad_user_input(world: World) -> None:
    refused(world, PARENT, "listReports", BadInputError, status="PENDING")


def test_a_child_s_reports_are_listed_and_read_without_another_child_s(world: World) -> None:
    first = world.approved_report("school-a")
    sibling = world.medical.call(
        PARENT, "registerChild", fullName="Boris Smirnov", birthDate="2020-01-02"
    )
    agreement = world.medical.call(
        PARENT, "signAgreement", childId=sibling["id"], doctorUid=DOCTOR.uid
    )
    world.medical.call(DOCTOR, "acceptAgreement", id=agreement["id"])
    admission = world.call(
        PARENT, "createAdmissionRequest", world.child(PARENT, sibling["id"]), school="school-a"
    )
    world.call(SCHOOL_A, "acceptAdmissionRequest", id=admission["id"])
    request = world.call(SCHOOL_A, "createReportRequest", admissionRequestId=admission["id"])
    second = world.write_report(DOCTOR, request["id"])
    world.call(PARENT, "approveReport", id=second["id"], schools=["school-a"])
    for caller in (PARENT, SCHOOL_A):
        assert {r["id"] for r in items(world.call(caller, "listReports"))} == {
            first["id"],
            second["id"],
        }
        listed = items(world.call(caller, "listReports", childId=world.child_id))
        assert [(r["id"], r["content"]) for r in listed] == [(first["id"], first["content"])]
        # Only the listed report's content was read, so only it enters an access log.
        assert [read["recordId"] for read in world.report.reads.granted] == [first["id"]]
        assert world.report.reads.refused == []
        listed = items(world.call(caller, "listReports", childId=sibling["id"], withContent=False))
        assert [(r["id"], r["content"]) for r in listed] == [(second["id"], None)]
        assert world.report.reads.granted == []
    assert items(world.call(PARENT, "listReports", childId=world.other_child_id)) == []
    assert items(world.call(SCHOOL_B, "listReports", childId=world.child_id)) == []


# -- pages of lists --------------------------------------------------------------------


class CountingStore(MemoryStore):
    """Counts the keys simulations read: one by one, and in range and page reads."""

    def __init__(self) -> None:
        super().__init__()
        self.keys_read = 0

    def read_state(self, channel: str, key: str) -> StateRecord | None:
        self.keys_read += 1
        return super().read_state(channel, key)

    def read_range(self, channel: str, start: str, end: str) -> list[StateRecord]:
        found = super().read_range(channel, start, end)
        self.keys_read += len(found)
        return found

    def read_prefix_page(
        self, channel: str, prefix: str, *, after: str | None, limit: int, reverse: bool
    ) -> list[StateRecord]:
        found = super().read_prefix_page(channel, prefix, after=after, limit=limit, reverse=reverse)
        self.keys_read += len(found)
        return found


def _applications(school: ContractHarness, count: int) -> list[str]:
    """Ids of `count` admission requests to school-a, one per child of PARENT, oldest first."""
    guardians = [person_of(PARENT)]
    return [
        school.call(
            PARENT,
            "createAdmissionRequest",
            transient={
                "child": {"id": f"child-{n}", "fullName": f"Child {n}", "guardians": guardians}
            },
            school="school-a",
        )["id"]
        for n in range(count)
    ]


def test_1000_admission_requests_page_newest_first_at_the_cost_of_a_page() -> None:
    store = CountingStore()
    school = ContractHarness(ReportContract(), directory_for(*EVERYONE), store)
    made = _applications(school, 1000)
    costs: list[int] = []

    def page(after: str | None) -> Any:
        store.keys_read = 0
        found = school.call(SCHOOL_A, "listAdmissionRequests", first=200, after=after)
        costs.append(store.keys_read)
        return found

    pages = every_page(page)
    assert_pages_hold(pages, first=200, expected=made[::-1])
    # Each page: 201 index keys, and the 201 requests they name (the last one for hasMore).
    assert costs == [402, 402, 402, 402, 400]
    store.keys_read = 0
    first = school.call(PARENT, "listAdmissionRequests", first=10)
    assert [entry["item"]["id"] for entry in first["entries"]] == made[:-11:-1]
    assert store.keys_read == 22


def test_a_status_filter_reads_on_until_the_page_is_full(world: World) -> None:
    school = world.report
    made = _applications(school, 10)
    for admission_id in made[::2]:
        world.call(SCHOOL_A, "acceptAdmissionRequest", id=admission_id)
    pages = every_page(
        lambda after: world.call(
            SCHOOL_A, "listAdmissionRequests", status="ACCEPTED", first=2, after=after
        )
    )
    assert_pages_hold(pages, first=2, expected=made[::2][::-1])
    pending = every_page(
        lambda after: world.call(
            PARENT, "listAdmissionRequests", status="PENDING", first=5, after=after
        )
    )
    assert_pages_hold(pending, first=5, expected=made[1::2][::-1])


def _patient(world: World, name: str) -> str:
    """A new child of PARENT under an ACTIVE agreement with DOCTOR."""
    child = world.medical.call(PARENT, "registerChild", fullName=name, birthDate="2019-03-04")
    agreement = world.medical.call(
        PARENT, "signAgreement", childId=child["id"], doctorUid=DOCTOR.uid
    )
    world.medical.call(DOCTOR, "acceptAgreement", id=agreement["id"])
    return str(child["id"])


def test_a_doctor_s_report_requests_of_several_patients_are_merged_newest_first(
    world: World,
) -> None:
    children = [world.child_id, _patient(world, "Second"), _patient(world, "Third")]
    made = []
    for school in (SCHOOL_A, SCHOOL_B):
        for child_id in children:
            applied = world.call(
                PARENT, "createAdmissionRequest", world.child(PARENT, child_id), school=school.org
            )
            world.call(school, "acceptAdmissionRequest", id=applied["id"])
            made.append(
                world.call(school, "createReportRequest", admissionRequestId=applied["id"])["id"]
            )
    patients = world.patients(DOCTOR)
    pages = every_page(
        lambda after: world.call(DOCTOR, "listReportRequests", patients, first=4, after=after)
    )
    assert_pages_hold(pages, first=4, expected=made[::-1])
    by_school = every_page(
        lambda after: world.call(SCHOOL_B, "listReportRequests", first=2, after=after)
    )
    assert_pages_hold(by_school, first=2, expected=made[:2:-1])
    # A position under a child who is not the doctor's patient is refused.
    other = world.call(OTHER_DOCTOR, "listReportRequests", world.patients(OTHER_DOCTOR), first=1)
    refused(
        world,
        DOCTOR,
        "listReportRequests",
        BadInputError,
        transient={"patients": children[1:]},
        after=other["entries"][0]["position"],
    )


def test_reports_page_newest_first_with_the_status_each_caller_is_shown(world: World) -> None:
    made = [world.ready_report()["id"]]
    for name in ("Second", "Third"):
        child_id = _patient(world, name)
        applied = world.call(
            PARENT, "createAdmissionRequest", world.child(PARENT, child_id), school="school-a"
        )
        world.call(SCHOOL_A, "acceptAdmissionRequest", id=applied["id"])
        request = world.call(SCHOOL_A, "createReportRequest", admissionRequestId=applied["id"])
        made.append(world.write_report(DOCTOR, request["id"])["id"])
    world.call(PARENT, "approveReport", id=made[1], schools=["school-b"])
    by_author = every_page(lambda after: world.call(DOCTOR, "listReports", first=2, after=after))
    assert_pages_hold(by_author, first=2, expected=made[::-1])
    ready = every_page(
        lambda after: world.call(PARENT, "listReports", status="READY", first=1, after=after)
    )
    assert_pages_hold(ready, first=1, expected=[made[2], made[0]])
    # School-a asked for all three and sees each READY; school-b sees only the one permitted.
    assert [r["id"] for r in items(world.call(SCHOOL_A, "listReports", status="READY"))] == (
        made[::-1]
    )
    assert [r["id"] for r in items(world.call(SCHOOL_B, "listReports"))] == [made[1]]


def test_a_position_of_another_caller_s_list_is_refused(world: World) -> None:
    world.accepted_admission(SCHOOL_A)
    world.accepted_admission(SCHOOL_B)
    school_a = world.call(SCHOOL_A, "listAdmissionRequests", first=1)["entries"][0]["position"]
    parent = world.call(PARENT, "listAdmissionRequests", first=1)["entries"][0]["position"]
    assert world.call(SCHOOL_A, "listAdmissionRequests", after=school_a)["entries"] == []
    for caller, function, after in [
        (SCHOOL_B, "listAdmissionRequests", school_a),
        (PARENT, "listAdmissionRequests", school_a),
        (CO_GUARDIAN, "listAdmissionRequests", parent),
        (SCHOOL_A, "listAdmissionRequests", parent),
        (SCHOOL_A_ADMIN, "listAdmissionRequests", school_a),
        (SCHOOL_A, "listReports", school_a),
        (SCHOOL_A, "listReportRequests", school_a),
    ]:
        error = refused(world, caller, function, BadInputError, after=after)
        assert str(error) == "after is not a position in this list."


@pytest.mark.parametrize("first", [0, -1, 201, "50", True, 2.5, None])
@pytest.mark.parametrize("function", ["listAdmissionRequests", "listReportRequests", "listReports"])
def test_a_page_holds_1_to_200_entries(world: World, function: str, first: Any) -> None:
    error = refused(world, PARENT, function, BadInputError, first=first)
    assert str(error) == "first must be a whole number from 1 to 200."
