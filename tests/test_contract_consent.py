"""Consent that ends, in the contracts on their own: agreements with an end, extending them,
emergency access, the server's announcement of ends (chaincode/consent.py), and the
permissions of reports approved before permissions carried dates.

The harness clock is set to put a call exactly where a rule changes: one second before an
end, at it, one second after. Every refusal is checked as in test_contract_medical.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from chaincode.consent import SERVER
from chaincode.medical import MedicalContract
from chaincode.report import ReportContract
from chaincode.testing import ContractHarness, FakeCaller, directory_for
from domain.consent import REPORT_PERMISSION_DAYS
from domain.errors import BadInputError, ConflictError, ForbiddenError, NotFoundError
from ledger_backends.records import Event, format_timestamp, parse_timestamp
from ledger_backends.testing import proposal
from tests.contract_checks import items, refused_on

PARENT = FakeCaller("parent-anna", "parents", "parent")
CO_GUARDIAN = FakeCaller("parent-boris", "parents", "parent")
OTHER_PARENT = FakeCaller("parent-olga", "parents", "parent")
DOCTOR = FakeCaller("doctor-ivanova", "hospital", "doctor")
ER_DOCTOR = FakeCaller("doctor-er", "hospital", "doctor")
OTHER_DOCTOR = FakeCaller("doctor-kolya", "hospital", "doctor")
SCHOOL = FakeCaller("staff-a", "school-a", "school")
HOSPITAL_ADMIN = FakeCaller("admin-hospital", "hospital", "admin")
PARENTS_ADMIN = FakeCaller("admin-parents", "parents", "admin")
EVERYONE = (
    PARENT,
    CO_GUARDIAN,
    OTHER_PARENT,
    DOCTOR,
    ER_DOCTOR,
    OTHER_DOCTOR,
    SCHOOL,
    HOSPITAL_ADMIN,
    PARENTS_ADMIN,
)
REASON = "Unconscious after a fall; allergies needed now."
EMERGENCY_MINUTES = 30
SECOND = timedelta(seconds=1)


@dataclass
class World:
    h: ContractHarness
    child_id: str
    # While set, every call runs at this moment; else each a second after the one before.
    frozen: datetime | None = None

    def call(self, caller: Any, function: str, **args: Any) -> Any:
        if self.frozen is not None:
            self.h.now = self.frozen - SECOND
        return self.h.call(caller, function, **args)

    def at(self, moment: str, delta: timedelta = timedelta(0)) -> None:
        """The calls from now on run at `moment` + `delta`."""
        self.frozen = parse_timestamp(moment) + delta

    def later(self, **delta: float) -> str:
        """A time so long after the harness clock's now."""
        return format_timestamp(self.h.now + timedelta(**delta))

    def events(self) -> list[Event]:
        """The events of the last transaction committed."""
        tip = self.h.store.tip("medical")
        block = self.h.store.read_blocks("medical", tip.height - 1, 1)[0]
        return list(block.transactions()[-1].events)

    def agreement(self, valid_until: str | None, doctor: FakeCaller = DOCTOR) -> dict[str, Any]:
        signed = self.call(
            PARENT,
            "signAgreement",
            childId=self.child_id,
            doctorUid=doctor.uid,
            validUntil=valid_until,
        )
        return dict(self.call(doctor, "acceptAgreement", id=signed["id"]))


@pytest.fixture
def world() -> World:
    h = ContractHarness(
        MedicalContract(emergency_minutes=EMERGENCY_MINUTES), directory_for(*EVERYONE)
    )
    child = h.call(
        PARENT,
        "registerChild",
        fullName="Alisa Smirnova",
        birthDate="2019-03-04",
        otherGuardians=[CO_GUARDIAN.uid],
    )
    h.call(CO_GUARDIAN, "acceptGuardianship", childId=child["id"])
    return World(h, child["id"])


def refused(world: World, caller: Any, function: str, error: type, **args: Any) -> None:
    if world.frozen is not None:
        world.h.now = world.frozen - SECOND
    refused_on(world.h, caller, function, error, **args)


def statuses(world: World, caller: FakeCaller) -> list[str]:
    return [
        a["status"] for a in items(world.call(caller, "listAgreements", childId=world.child_id))
    ]


def audience(event: Event) -> list[str]:
    people: list[str] = event.payload["people"]
    return people


# -- agreements with an end ------------------------------------------------------------------


def test_an_agreement_gives_its_doctor_the_card_until_one_second_before_its_end(
    world: World,
) -> None:
    end = world.later(days=30)
    agreement = world.agreement(end)
    assert (agreement["status"], agreement["validUntil"]) == ("ACTIVE", end)

    world.at(end, -SECOND)
    assert world.call(DOCTOR, "readCard", childId=world.child_id)["version"] == 1
    card = world.call(
        DOCTOR, "updateMedicalCard", childId=world.child_id, expectedVersion=1, patch={"notes": "x"}
    )
    assert card["version"] == 2
    assert statuses(world, DOCTOR) == ["ACTIVE"]
    assert world.call(DOCTOR, "listPatientIds") == [world.child_id]
    assert world.call(DOCTOR, "isPatient", childId=world.child_id) is True
    assert world.call(PARENT, "readChild", childId=world.child_id)["doctorUid"] == DOCTOR.uid

    world.at(end)  # at validUntil it has ended
    refused(world, DOCTOR, "readCard", NotFoundError, childId=world.child_id)
    world.at(end, SECOND)
    refused(world, DOCTOR, "readCard", NotFoundError, childId=world.child_id)
    refused(world, DOCTOR, "cardHistory", NotFoundError, childId=world.child_id)
    refused(world, DOCTOR, "readChild", NotFoundError, childId=world.child_id)
    refused(
        world,
        DOCTOR,
        "updateMedicalCard",
        NotFoundError,
        childId=world.child_id,
        expectedVersion=2,
        patch={"notes": "y"},
    )
    assert statuses(world, DOCTOR) == statuses(world, PARENT) == ["EXPIRED"]
    assert world.call(DOCTOR, "listPatientIds") == []
    assert world.call(DOCTOR, "isPatient", childId=world.child_id) is False
    assert items(world.call(DOCTOR, "listChildren")) == []
    assert world.call(PARENT, "readChild", childId=world.child_id)["doctorUid"] is None


def test_a_pending_agreement_past_its_end_is_expired_and_cannot_be_accepted(world: World) -> None:
    end = world.later(hours=1)
    signed = world.call(
        PARENT, "signAgreement", childId=world.child_id, doctorUid=DOCTOR.uid, validUntil=end
    )
    world.at(end, SECOND)
    assert statuses(world, PARENT) == ["EXPIRED"]
    refused(world, DOCTOR, "acceptAgreement", ConflictError, id=signed["id"])
    extended = world.call(
        PARENT, "extendAgreement", id=signed["id"], validUntil=world.later(days=1)
    )
    assert extended["status"] == "PENDING"
    assert world.call(DOCTOR, "acceptAgreement", id=signed["id"])["status"] == "ACTIVE"


@pytest.mark.parametrize("caller", [PARENT, CO_GUARDIAN], ids=["guardian", "other guardian"])
def test_a_guardian_extends_an_expired_agreement_and_the_doctor_reads_again(
    world: World, caller: FakeCaller
) -> None:
    end = world.later(days=1)
    agreement = world.agreement(end)
    world.at(end, SECOND)
    refused(world, DOCTOR, "readCard", NotFoundError, childId=world.child_id)
    new_end = world.later(days=7)
    extended = world.call(caller, "extendAgreement", id=agreement["id"], validUntil=new_end)
    assert (extended["status"], extended["validUntil"]) == ("ACTIVE", new_end)
    (event,) = world.events()
    assert event.name == "AgreementExtended"
    assert "hospital/doctor-ivanova" in audience(event)
    assert world.call(DOCTOR, "readCard", childId=world.child_id)["version"] == 1
    assert world.call(DOCTOR, "listPatientIds") == [world.child_id]
    world.at(new_end, SECOND)
    refused(world, DOCTOR, "readCard", NotFoundError, childId=world.child_id)


def test_an_agreement_without_an_end_can_be_given_one(world: World) -> None:
    agreement = world.agreement(None)
    assert agreement["validUntil"] is None
    end = world.later(hours=2)
    assert (
        world.call(PARENT, "extendAgreement", id=agreement["id"], validUntil=end)["validUntil"]
        == end
    )
    world.at(end, SECOND)
    assert statuses(world, PARENT) == ["EXPIRED"]


@pytest.mark.parametrize(
    ("caller", "error"),
    [
        pytest.param(DOCTOR, ForbiddenError, id="its doctor"),
        pytest.param(OTHER_PARENT, NotFoundError, id="another parent"),
        pytest.param(OTHER_DOCTOR, NotFoundError, id="another doctor"),
        pytest.param(HOSPITAL_ADMIN, NotFoundError, id="hospital admin"),
    ],
)
def test_only_guardians_extend_agreements(world: World, caller: FakeCaller, error: type) -> None:
    agreement = world.agreement(world.later(days=1))
    refused(
        world, caller, "extendAgreement", error, id=agreement["id"], validUntil=world.later(days=9)
    )


def test_a_revoked_agreement_is_not_extended(world: World) -> None:
    agreement = world.agreement(world.later(days=1))
    world.call(PARENT, "revokeAgreement", id=agreement["id"])
    refused(
        world,
        PARENT,
        "extendAgreement",
        ConflictError,
        id=agreement["id"],
        validUntil=world.later(days=9),
    )


@pytest.mark.parametrize(
    "valid_until",
    [
        pytest.param("now", id="now"),
        pytest.param("2020-01-01T00:00:00.000000Z", id="in the past"),
        pytest.param("2030-01-01T00:00:00Z", id="not the ledger's form"),
        pytest.param("next week", id="not a time"),
        pytest.param(17, id="a number"),
    ],
)
def test_a_valid_until_must_be_a_time_to_come(world: World, valid_until: Any) -> None:
    if valid_until == "now":
        valid_until = world.later(seconds=1)  # the next call's own time
    refused(
        world,
        PARENT,
        "signAgreement",
        BadInputError,
        childId=world.child_id,
        doctorUid=DOCTOR.uid,
        validUntil=valid_until,
    )
    agreement = world.agreement(None)
    refused(
        world, PARENT, "extendAgreement", BadInputError, id=agreement["id"], validUntil=valid_until
    )


def test_an_expired_agreement_blocks_a_new_one_with_the_same_doctor(world: World) -> None:
    end = world.later(hours=1)
    world.agreement(end)
    world.at(end, SECOND)
    with pytest.raises(ConflictError, match="extend or revoke"):
        world.call(PARENT, "signAgreement", childId=world.child_id, doctorUid=DOCTOR.uid)


def test_index_entries_from_before_agreements_could_end_hold_with_no_end(world: World) -> None:
    agreement = world.agreement(None)
    child, doctor = world.child_id, "hospital/doctor-ivanova"
    # Such entries held the agreement id alone.
    legacy = {
        f"active/{child}/{doctor}": agreement["id"],
        f"doctor-child/{doctor}/{child}": agreement["id"],
    }
    world.h.writer.commit([proposal("legacy", writes=legacy)])
    world.at(world.later(days=3650))
    assert world.call(DOCTOR, "readCard", childId=child)["childId"] == child
    assert world.call(DOCTOR, "listPatientIds") == [child]
    world.call(PARENT, "revokeAgreement", id=agreement["id"])
    refused(world, DOCTOR, "readCard", NotFoundError, childId=child)


# -- telling the doctor -----------------------------------------------------------------------


def test_revoking_tells_the_doctor_the_agreement_ended(world: World) -> None:
    agreement = world.agreement(world.later(days=1))
    world.call(PARENT, "revokeAgreement", id=agreement["id"])
    names = {event.name: audience(event) for event in world.events()}
    assert set(names) == {"AgreementRevoked", "AgreementEnded"}
    assert "hospital/doctor-ivanova" in names["AgreementEnded"]


def test_the_server_announces_an_agreement_end_once_and_a_later_revocation_does_not_again(
    world: World,
) -> None:
    end = world.later(hours=1)
    agreement = world.agreement(end)
    world.at(end, -SECOND)
    assert world.call(SERVER, "dueConsents") == []
    world.at(end)
    due = world.call(SERVER, "dueConsents")
    assert len(due) == 1
    assert world.call(SERVER, "expireConsents", keys=due) == 1
    (event,) = world.events()
    assert (event.name, event.payload["subjectId"]) == ("AgreementEnded", agreement["id"])
    assert audience(event) == [
        "hospital/doctor-ivanova",
        "parents/parent-anna",
        "parents/parent-boris",
    ]
    assert world.call(SERVER, "dueConsents") == []
    assert world.call(SERVER, "expireConsents", keys=due) == 0
    world.call(PARENT, "revokeAgreement", id=agreement["id"])
    assert [event.name for event in world.events()] == ["AgreementRevoked"]


def test_an_extended_agreement_is_not_announced_at_its_old_end(world: World) -> None:
    end = world.later(hours=1)
    agreement = world.agreement(end)
    world.call(PARENT, "extendAgreement", id=agreement["id"], validUntil=world.later(days=2))
    world.at(end, SECOND)
    assert world.call(SERVER, "dueConsents") == []


@pytest.mark.parametrize(
    "caller", [PARENT, DOCTOR, HOSPITAL_ADMIN], ids=["parent", "doctor", "admin"]
)
def test_only_the_server_asks_for_and_announces_ends(world: World, caller: FakeCaller) -> None:
    refused(world, caller, "dueConsents", ForbiddenError)
    refused(world, caller, "expireConsents", ForbiddenError, keys=[])
    refused(world, caller, "treatingDoctors", ForbiddenError, childId=world.child_id)


def test_the_doctors_told_of_a_report_request_are_those_of_agreements_in_force(
    world: World,
) -> None:
    end = world.later(hours=1)
    world.agreement(end)
    world.agreement(None, OTHER_DOCTOR)
    both = ["hospital/doctor-ivanova", "hospital/doctor-kolya"]
    assert world.call(SERVER, "treatingDoctors", childId=world.child_id) == both
    world.at(end, SECOND)
    assert world.call(SERVER, "treatingDoctors", childId=world.child_id) == both[1:]
    assert world.call(SERVER, "treatingDoctors", childId="child-missing") == []


# -- emergency access ------------------------------------------------------------------------


def opened(world: World, doctor: FakeCaller = ER_DOCTOR) -> dict[str, Any]:
    return dict(world.call(doctor, "openEmergencyAccess", childId=world.child_id, reason=REASON))


def test_an_emergency_access_lets_any_hospital_doctor_read_for_its_minutes(world: World) -> None:
    refused(world, ER_DOCTOR, "readCard", NotFoundError, childId=world.child_id)
    access = opened(world)
    assert access["validUntil"] == format_timestamp(
        parse_timestamp(access["openedAt"]) + timedelta(minutes=EMERGENCY_MINUTES)
    )
    assert (access["doctorUid"], access["reason"], access["endedAt"]) == (
        ER_DOCTOR.uid,
        REASON,
        None,
    )
    (event,) = world.events()
    assert (event.name, audience(event)) == (
        "EmergencyAccessOpened",
        ["parents/parent-anna", "parents/parent-boris"],
    )

    world.at(access["validUntil"], -SECOND)
    assert world.call(ER_DOCTOR, "readCard", childId=world.child_id)["version"] == 1
    assert items(world.call(ER_DOCTOR, "cardHistory", childId=world.child_id))[0]["version"] == 1
    assert world.call(ER_DOCTOR, "readChild", childId=world.child_id)["id"] == world.child_id
    world.at(access["validUntil"], SECOND)
    refused(world, ER_DOCTOR, "readCard", NotFoundError, childId=world.child_id)
    refused(world, ER_DOCTOR, "cardHistory", NotFoundError, childId=world.child_id)


def test_an_emergency_access_never_updates_the_card(world: World) -> None:
    opened(world)
    refused(
        world,
        ER_DOCTOR,
        "updateMedicalCard",
        ForbiddenError,
        childId=world.child_id,
        expectedVersion=1,
        patch={"notes": "x"},
    )


def test_a_doctor_with_an_agreement_may_open_one_too(world: World) -> None:
    world.agreement(None)
    assert opened(world, DOCTOR)["doctorUid"] == DOCTOR.uid


@pytest.mark.parametrize(
    "caller",
    [
        pytest.param(PARENT, id="guardian"),
        pytest.param(OTHER_PARENT, id="parent"),
        pytest.param(SCHOOL, id="school"),
        pytest.param(HOSPITAL_ADMIN, id="hospital admin"),
        pytest.param(PARENTS_ADMIN, id="parents admin"),
    ],
)
def test_only_doctors_open_emergency_access(world: World, caller: FakeCaller) -> None:
    refused(
        world, caller, "openEmergencyAccess", ForbiddenError, childId=world.child_id, reason=REASON
    )


@pytest.mark.parametrize(
    "reason",
    [
        pytest.param("x" * 19, id="19 characters"),
        pytest.param("   Needed now.        ", id="short once trimmed"),
        pytest.param("", id="empty"),
        pytest.param("x" * 1001, id="too long"),
        pytest.param("Unconscious\x00after a fall, needed", id="control character"),
    ],
)
def test_an_emergency_access_needs_a_reason_of_20_characters_or_more(
    world: World, reason: str
) -> None:
    refused(
        world,
        ER_DOCTOR,
        "openEmergencyAccess",
        BadInputError,
        childId=world.child_id,
        reason=reason,
    )


def test_a_reason_of_exactly_20_characters_is_enough(world: World) -> None:
    access = world.call(ER_DOCTOR, "openEmergencyAccess", childId=world.child_id, reason="y" * 20)
    assert access["reason"] == "y" * 20


def test_an_emergency_access_to_no_child_is_not_found(world: World) -> None:
    refused(
        world, ER_DOCTOR, "openEmergencyAccess", NotFoundError, childId="child-x", reason=REASON
    )


def test_one_open_emergency_access_per_doctor_and_child(world: World) -> None:
    access = opened(world)
    refused(
        world,
        ER_DOCTOR,
        "openEmergencyAccess",
        ConflictError,
        childId=world.child_id,
        reason=REASON,
    )
    world.at(access["validUntil"], SECOND)
    assert opened(world)["id"] != access["id"]


@pytest.mark.parametrize(
    "ender",
    [
        pytest.param(ER_DOCTOR, id="the doctor who opened it"),
        pytest.param(PARENT, id="a guardian"),
        pytest.param(CO_GUARDIAN, id="the other guardian"),
    ],
)
def test_an_emergency_access_is_ended_early_and_reads_stop(world: World, ender: FakeCaller) -> None:
    access = opened(world)
    ended = world.call(ender, "endEmergencyAccess", id=access["id"])
    assert ended["endedBy"] == ender.uid and ended["endedAt"] is not None
    (event,) = world.events()
    assert event.name == "EmergencyAccessEnded"
    assert "hospital/doctor-er" in audience(event)
    refused(world, ER_DOCTOR, "readCard", NotFoundError, childId=world.child_id)
    refused(world, ER_DOCTOR, "endEmergencyAccess", ConflictError, id=access["id"])
    refused(world, PARENT, "endEmergencyAccess", ConflictError, id=access["id"])
    assert world.call(SERVER, "dueConsents") == []


@pytest.mark.parametrize(
    ("caller", "error"),
    [
        pytest.param(OTHER_DOCTOR, NotFoundError, id="another doctor"),
        pytest.param(OTHER_PARENT, NotFoundError, id="another parent"),
        pytest.param(HOSPITAL_ADMIN, ForbiddenError, id="hospital admin"),
        pytest.param(PARENTS_ADMIN, NotFoundError, id="parents admin"),
    ],
)
def test_no_one_else_ends_an_emergency_access(
    world: World, caller: FakeCaller, error: type
) -> None:
    access = opened(world)
    refused(world, caller, "endEmergencyAccess", error, id=access["id"])


def test_an_emergency_access_that_ran_out_is_not_ended_and_is_announced_once(world: World) -> None:
    access = opened(world)
    world.at(access["validUntil"], SECOND)
    refused(world, PARENT, "endEmergencyAccess", ConflictError, id=access["id"])
    due = world.call(SERVER, "dueConsents")
    assert world.call(SERVER, "expireConsents", keys=due) == 1
    (event,) = world.events()
    assert (event.name, audience(event)) == (
        "EmergencyAccessEnded",
        ["hospital/doctor-er", "parents/parent-anna", "parents/parent-boris"],
    )
    assert world.call(SERVER, "dueConsents") == []


@pytest.mark.parametrize(
    "caller",
    [PARENT, CO_GUARDIAN, HOSPITAL_ADMIN],
    ids=["guardian", "co-guardian", "hospital admin"],
)
def test_guardians_and_the_hospital_admin_list_emergency_accesses_newest_first(
    world: World, caller: FakeCaller
) -> None:
    first = opened(world)
    world.call(ER_DOCTOR, "endEmergencyAccess", id=first["id"])
    second = opened(world, OTHER_DOCTOR)
    listed = world.call(caller, "listEmergencyAccesses", childId=world.child_id)
    assert [a["id"] for a in listed] == [second["id"], first["id"]]
    assert listed[1]["endedBy"] == ER_DOCTOR.uid


@pytest.mark.parametrize(
    ("caller", "error"),
    [
        pytest.param(ER_DOCTOR, ForbiddenError, id="the doctor"),
        pytest.param(OTHER_PARENT, NotFoundError, id="another parent"),
        pytest.param(PARENTS_ADMIN, ForbiddenError, id="parents admin"),
    ],
)
def test_no_one_else_lists_emergency_accesses(
    world: World, caller: FakeCaller, error: type
) -> None:
    opened(world)
    refused(world, caller, "listEmergencyAccesses", error, childId=world.child_id)


# -- reports approved before permissions carried dates ------------------------------------------

LEGACY_CREATED = "2026-01-05T09:00:00.000000Z"
LEGACY_APPROVED = "2026-01-10T09:00:00.000000Z"
SCHOOL_B = FakeCaller("staff-b", "school-b", "school")


def legacy_report(h: ContractHarness) -> str:
    """A report as stored before permissions had dates: READY, then APPROVED for school A,
    asked for by school B."""
    report_id = "report-legacy"
    report = {
        "id": report_id,
        "childId": "child-legacy",
        "reportRequestId": "report-request-legacy",
        "status": "READY",
        "authorUid": DOCTOR.uid,
        "author": "hospital/doctor-ivanova",
        "createdAt": LEGACY_CREATED,
        "permittedSchools": [],
        "requestingSchool": "school-b",
        "guardians": ["parents/parent-anna"],
        "cardVersion": 2,
        "cardHash": "ab" * 32,
        "cardSalt": "cd" * 32,
        "content": {
            "childName": "Alisa Smirnova",
            "healthGroup": 1,
            "physicalEducationGroup": "MAIN",
            "allergies": [],
            "chronicConditions": [],
            "vaccinations": [],
            "conclusion": "Fit.",
        },
    }
    approved = {**report, "status": "APPROVED", "permittedSchools": ["school-a"]}
    writes: list[tuple[str, dict[str, object]]] = [
        (
            LEGACY_CREATED,
            {f"report/{report_id}": report, f"school-report/school-b/{report_id}": report_id},
        ),
        (
            LEGACY_APPROVED,
            {f"report/{report_id}": approved, f"school-report/school-a/{report_id}": report_id},
        ),
    ]
    for n, (at, values) in enumerate(writes):
        made = dataclasses.replace(
            proposal(f"legacy-{n}", channel="report", writes=values), timestamp=at
        )
        h.writer.commit([made])
    return report_id


def test_a_legacy_permission_runs_the_default_days_from_its_approval() -> None:
    h = ContractHarness(
        ReportContract(report_permission_days=7), directory_for(*EVERYONE, SCHOOL_B)
    )
    report_id = legacy_report(h)
    end = format_timestamp(
        parse_timestamp(LEGACY_APPROVED) + timedelta(days=REPORT_PERMISSION_DAYS)
    )
    world = World(h, "child-legacy")

    world.at(end, -SECOND)
    assert world.call(SCHOOL, "readReport", id=report_id)["content"]["conclusion"] == "Fit."
    (permission,) = world.call(PARENT, "readReport", id=report_id)["permissions"]
    assert permission == {
        "school": "school-a",
        "grantedAt": LEGACY_APPROVED,
        "validUntil": end,
        "status": "ACTIVE",
        "revokedAt": None,
    }
    world.at(end, SECOND)
    refused(world, SCHOOL, "readReport", NotFoundError, id=report_id)
    seen = world.call(PARENT, "readReport", id=report_id)
    assert (seen["status"], seen["permittedSchools"]) == ("READY", [])
    assert [p["status"] for p in seen["permissions"]] == ["EXPIRED"]

    renewed = world.call(PARENT, "approveReport", id=report_id, schools=["school-b"])
    assert [(p["school"], p["status"]) for p in renewed["permissions"]] == [
        ("school-a", "EXPIRED"),
        ("school-b", "ACTIVE"),
    ]
    stored = dict(h.opened_state())[f"report/{report_id}"]
    assert isinstance(stored, dict) and stored["permissions"]
    assert {"status", "permittedSchools"}.isdisjoint(stored)
