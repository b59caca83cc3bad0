"""The `medical` contract on its own: children, agreements, the card and its history.

Every refusal is checked three ways: the error class, its API code, and that the
ledger (world state and chain height) is exactly as it was before the call.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
import rfc8785

from chaincode.medical import MedicalContract
from chaincode.testing import ContractHarness, FakeCaller, directory_for
from domain.errors import BadInputError, ConflictError, ForbiddenError, NotFoundError, RefusalError
from ledger_backends.hashing import commitment
from tests.contract_checks import assert_no_leak as assert_no_leak_of
from tests.contract_checks import assert_pages_hold, every_page, items, refused_on

PARENT = FakeCaller("parent-anna", "parents", "parent")
CO_GUARDIAN = FakeCaller("parent-boris", "parents", "parent")
OTHER_PARENT = FakeCaller("parent-olga", "parents", "parent")
DOCTOR = FakeCaller("doctor-ivanova", "hospital", "doctor")
DOCTOR_NONE = FakeCaller("doctor-none", "hospital", "doctor")
DOCTOR_PENDING = FakeCaller("doctor-pending", "hospital", "doctor")
DOCTOR_REVOKED = FakeCaller("doctor-revoked", "hospital", "doctor")
DOCTOR_SPARE = FakeCaller("doctor-spare", "hospital", "doctor")
SCHOOL = FakeCaller("staff-a", "school-a", "school")
HOSPITAL_ADMIN = FakeCaller("admin-hospital", "hospital", "admin")
PARENTS_ADMIN = FakeCaller("admin-parents", "parents", "admin")
EVERYONE = (
    PARENT,
    CO_GUARDIAN,
    OTHER_PARENT,
    DOCTOR,
    DOCTOR_NONE,
    DOCTOR_PENDING,
    DOCTOR_REVOKED,
    DOCTOR_SPARE,
    SCHOOL,
    HOSPITAL_ADMIN,
    PARENTS_ADMIN,
)

CHILD_NAME = "Alisa Smirnova"
BIRTH_DATE = "2019-03-04"
TODAY = "2026-09-01"  # the harness clock's date


@dataclass
class World:
    """One family with a doctor in every agreement state, and another family."""

    h: ContractHarness
    child_id: str
    active: dict[str, Any]
    pending: dict[str, Any]
    revoked: dict[str, Any]
    other_child_id: str

    def call(self, caller: FakeCaller, function: str, **args: Any) -> Any:
        return self.h.call(caller, function, **args)


@pytest.fixture
def h() -> ContractHarness:
    return ContractHarness(MedicalContract(), directory_for(*EVERYONE))


@pytest.fixture
def world(h: ContractHarness) -> World:
    child = h.call(
        PARENT,
        "registerChild",
        fullName=CHILD_NAME,
        birthDate=BIRTH_DATE,
        otherGuardians=[CO_GUARDIAN.uid],
    )
    child_id = child["id"]
    h.call(CO_GUARDIAN, "acceptGuardianship", childId=child_id)
    active = _signed(h, child_id, DOCTOR)
    active = h.call(DOCTOR, "acceptAgreement", id=active["id"])
    pending = _signed(h, child_id, DOCTOR_PENDING)
    revoked = _signed(h, child_id, DOCTOR_REVOKED)
    h.call(DOCTOR_REVOKED, "acceptAgreement", id=revoked["id"])
    revoked = h.call(PARENT, "revokeAgreement", id=revoked["id"])
    other = h.call(OTHER_PARENT, "registerChild", fullName="Pavel Orlov", birthDate="2018-05-06")
    return World(h, child_id, active, pending, revoked, other["id"])


def _signed(h: ContractHarness, child_id: str, doctor: FakeCaller) -> dict[str, Any]:
    return h.call(PARENT, "signAgreement", childId=child_id, doctorUid=doctor.uid)


def refused(
    h: ContractHarness, caller: FakeCaller, function: str, error: type[RefusalError], **args: Any
) -> RefusalError:
    return refused_on(h, caller, function, error, **args)


def assert_no_leak(error: RefusalError) -> None:
    assert_no_leak_of(error, (CHILD_NAME, PARENT.uid, CO_GUARDIAN.uid, DOCTOR.uid))


# Callers outside the family and outside any ACTIVE agreement: the child does not exist for them.
OUTSIDERS = [
    pytest.param(OTHER_PARENT, id="unrelated parent"),
    pytest.param(DOCTOR_NONE, id="doctor without agreement"),
    pytest.param(DOCTOR_PENDING, id="doctor with pending agreement"),
    pytest.param(DOCTOR_REVOKED, id="doctor with revoked agreement"),
    pytest.param(SCHOOL, id="school"),
    pytest.param(HOSPITAL_ADMIN, id="hospital admin"),
    pytest.param(PARENTS_ADMIN, id="parents admin"),
]
GUARDIANS = [
    pytest.param(PARENT, id="guardian who registered"),
    pytest.param(CO_GUARDIAN, id="other guardian"),
]
READERS = [*GUARDIANS, pytest.param(DOCTOR, id="doctor with active agreement")]


# -- registerChild ---------------------------------------------------------------------


def test_a_parent_registers_a_child_and_becomes_its_first_guardian(h: ContractHarness) -> None:
    child = h.call(
        PARENT,
        "registerChild",
        fullName="  Alisa Smirnova ",
        birthDate=BIRTH_DATE,
        sex="F",
        otherGuardians=[CO_GUARDIAN.uid],
    )
    assert child["id"]
    assert child["fullName"] == CHILD_NAME
    assert child["birthDate"] == BIRTH_DATE
    assert child["sex"] == "F"
    assert child["guardians"] == [PARENT.uid]
    assert child["pendingGuardians"] == [CO_GUARDIAN.uid]
    assert child["doctorUid"] is None
    assert h.call(PARENT, "readChild", childId=child["id"]) == child


def test_a_new_child_s_card_is_empty_at_version_1(h: ContractHarness) -> None:
    child = h.call(PARENT, "registerChild", fullName=CHILD_NAME, birthDate=BIRTH_DATE)
    card = h.call(PARENT, "readCard", childId=child["id"])
    assert card["version"] == 1
    assert card["childId"] == child["id"]
    assert card["updatedBy"] == PARENT.uid
    assert card["bloodType"] is None and card["healthGroup"] is None
    assert card["allergies"] == card["chronicConditions"] == []
    assert card["vaccinations"] == card["examinations"] == []


def test_a_name_of_exactly_200_characters_and_a_birth_date_of_today_are_accepted(
    h: ContractHarness,
) -> None:
    child = h.call(PARENT, "registerChild", fullName="x" * 200, birthDate=TODAY)
    assert (len(child["fullName"]), child["birthDate"]) == (200, TODAY)


def test_duplicate_other_guardians_are_listed_once(h: ContractHarness) -> None:
    child = h.call(
        PARENT,
        "registerChild",
        fullName=CHILD_NAME,
        birthDate=BIRTH_DATE,
        otherGuardians=[CO_GUARDIAN.uid, CO_GUARDIAN.uid],
    )
    assert child["pendingGuardians"] == [CO_GUARDIAN.uid]


@pytest.mark.parametrize(
    "caller",
    [
        pytest.param(DOCTOR, id="doctor"),
        pytest.param(SCHOOL, id="school"),
        pytest.param(HOSPITAL_ADMIN, id="hospital admin"),
        pytest.param(PARENTS_ADMIN, id="parents admin"),
    ],
)
def test_only_parents_register_children(h: ContractHarness, caller: FakeCaller) -> None:
    refused(h, caller, "registerChild", ForbiddenError, fullName=CHILD_NAME, birthDate=BIRTH_DATE)
    assert items(h.call(caller, "listChildren")) == []


@pytest.mark.parametrize(
    "args",
    [
        pytest.param({"fullName": ""}, id="empty name"),
        pytest.param({"fullName": "   "}, id="blank name"),
        pytest.param({"fullName": "x" * 201}, id="name over 200"),
        pytest.param({"fullName": None}, id="missing name"),
        pytest.param({"birthDate": "2026-09-02"}, id="birth date tomorrow"),
        pytest.param({"birthDate": "2031-01-01"}, id="birth date in future"),
        pytest.param({"birthDate": "2019-02-30"}, id="birth date that does not exist"),
        pytest.param({"birthDate": "yesterday"}, id="birth date not a date"),
        pytest.param({"birthDate": "1899-12-31"}, id="birth date before 1900"),
        pytest.param({"birthDate": 20190304}, id="birth date not a string"),
        pytest.param({"sex": "x" * 21}, id="sex too long"),
        pytest.param({"otherGuardians": [PARENT.uid]}, id="oneself as other guardian"),
        pytest.param({"otherGuardians": [""]}, id="empty other guardian"),
        pytest.param({"otherGuardians": [f"{CO_GUARDIAN.uid}/x"]}, id="a slash in a uid"),
        pytest.param({"otherGuardians": ["has space"]}, id="a space in a uid"),
        pytest.param({"otherGuardians": "parent-boris"}, id="other guardians not a list"),
        pytest.param(
            {"otherGuardians": [CO_GUARDIAN.uid, OTHER_PARENT.uid, "p3", "p4"]},
            id="too many other guardians",
        ),
    ],
)
def test_invalid_registration_is_bad_user_input(h: ContractHarness, args: dict[str, Any]) -> None:
    valid = {"fullName": CHILD_NAME, "birthDate": BIRTH_DATE}
    refused(h, PARENT, "registerChild", BadInputError, **{**valid, **args})
    assert items(h.call(PARENT, "listChildren")) == []


# -- guardianship offers -----------------------------------------------------------------


def _offered(h: ContractHarness, *others: str) -> str:
    child = h.call(
        PARENT,
        "registerChild",
        fullName=CHILD_NAME,
        birthDate=BIRTH_DATE,
        otherGuardians=list(others),
    )
    return str(child["id"])


def test_another_parent_becomes_a_guardian_only_by_accepting(h: ContractHarness) -> None:
    child_id = _offered(h, CO_GUARDIAN.uid)
    refused(h, CO_GUARDIAN, "readChild", NotFoundError, childId=child_id)
    refused(h, CO_GUARDIAN, "readCard", NotFoundError, childId=child_id)
    assert items(h.call(CO_GUARDIAN, "listChildren")) == []
    assert h.call(CO_GUARDIAN, "pendingGuardianships") == [
        {
            "id": child_id,
            "fullName": CHILD_NAME,
            "birthDate": BIRTH_DATE,
            "sex": None,
            "guardians": [],
            "pendingGuardians": [],
            "doctorUid": None,
        }
    ]
    child = h.call(CO_GUARDIAN, "acceptGuardianship", childId=child_id)
    assert (child["guardians"], child["pendingGuardians"]) == ([PARENT.uid, CO_GUARDIAN.uid], [])
    assert h.call(CO_GUARDIAN, "pendingGuardianships") == []
    assert [c["id"] for c in items(h.call(CO_GUARDIAN, "listChildren"))] == [child_id]
    assert h.call(CO_GUARDIAN, "readCard", childId=child_id)["version"] == 1
    refused(h, CO_GUARDIAN, "acceptGuardianship", NotFoundError, childId=child_id)


@pytest.mark.parametrize(
    "caller",
    [
        pytest.param(OTHER_PARENT, id="parent not offered"),
        pytest.param(PARENT, id="the registering guardian"),
        pytest.param(DOCTOR, id="doctor"),
        pytest.param(PARENTS_ADMIN, id="parents admin"),
        pytest.param(FakeCaller(CO_GUARDIAN.uid, "school-b", "school"), id="same uid, a school"),
        pytest.param(
            FakeCaller(CO_GUARDIAN.uid, "parents-2", "parent", org_kind="parents"),
            id="same uid, another parents organisation",
        ),
    ],
)
def test_only_the_parent_offered_guardianship_accepts_it(
    h: ContractHarness, caller: FakeCaller
) -> None:
    child_id = _offered(h, CO_GUARDIAN.uid)
    error = refused(h, caller, "acceptGuardianship", NotFoundError, childId=child_id)
    assert_no_leak(error)
    assert h.call(caller, "pendingGuardianships") == []


def test_an_offer_to_an_unknown_uid_reads_like_an_offer_to_a_parent(h: ContractHarness) -> None:
    known = h.call(
        PARENT,
        "registerChild",
        fullName=CHILD_NAME,
        birthDate=BIRTH_DATE,
        otherGuardians=[CO_GUARDIAN.uid],
    )
    for uid in ("nobody", DOCTOR.uid, PARENTS_ADMIN.uid):
        unknown = h.call(
            PARENT,
            "registerChild",
            fullName=CHILD_NAME,
            birthDate=BIRTH_DATE,
            otherGuardians=[uid],
        )
        assert unknown["pendingGuardians"] == [uid]
        assert {k: v for k, v in unknown.items() if k not in ("id", "pendingGuardians")} == {
            k: v for k, v in known.items() if k not in ("id", "pendingGuardians")
        }
    refused(h, DOCTOR, "acceptGuardianship", NotFoundError, childId=unknown["id"])


def test_offers_are_shown_to_the_guardians_only(world: World) -> None:
    child_id = _offered(world.h, OTHER_PARENT.uid)
    assert world.call(PARENT, "readChild", childId=child_id)["pendingGuardians"] == [
        OTHER_PARENT.uid
    ]
    agreement = world.call(PARENT, "signAgreement", childId=child_id, doctorUid=DOCTOR_SPARE.uid)
    world.call(DOCTOR_SPARE, "acceptAgreement", id=agreement["id"])
    assert world.call(DOCTOR_SPARE, "readChild", childId=child_id)["pendingGuardians"] == []


# -- readChild -------------------------------------------------------------------------


@pytest.mark.parametrize("caller", READERS)
def test_guardians_and_the_active_doctor_read_the_child(world: World, caller: FakeCaller) -> None:
    child = world.call(caller, "readChild", childId=world.child_id)
    assert child == {
        "id": world.child_id,
        "fullName": CHILD_NAME,
        "birthDate": BIRTH_DATE,
        "sex": None,
        "guardians": [PARENT.uid, CO_GUARDIAN.uid],
        "pendingGuardians": [],
        "doctorUid": DOCTOR.uid,
    }


@pytest.mark.parametrize("caller", OUTSIDERS)
def test_anyone_else_is_told_the_child_does_not_exist(world: World, caller: FakeCaller) -> None:
    error = refused(world.h, caller, "readChild", NotFoundError, childId=world.child_id)
    assert_no_leak(error)


@pytest.mark.parametrize("child_id", ["child-0000000000000000", "", None, 42])
def test_reading_an_unknown_child_is_not_found(world: World, child_id: Any) -> None:
    refused(world.h, PARENT, "readChild", NotFoundError, childId=child_id)


def test_a_guardian_is_told_another_family_s_child_does_not_exist(world: World) -> None:
    error = refused(world.h, PARENT, "readChild", NotFoundError, childId=world.other_child_id)
    assert "Pavel" not in str(error) and OTHER_PARENT.uid not in str(error)


# -- listChildren ------------------------------------------------------------------------


@pytest.mark.parametrize("caller", GUARDIANS)
def test_a_parent_lists_only_their_own_children(world: World, caller: FakeCaller) -> None:
    listed = items(world.call(caller, "listChildren"))
    assert [c["id"] for c in listed] == [world.child_id]
    assert listed[0]["doctorUid"] == DOCTOR.uid


def test_the_other_family_lists_only_its_child(world: World) -> None:
    listed = items(world.call(OTHER_PARENT, "listChildren"))
    assert [c["id"] for c in listed] == [world.other_child_id]


def test_a_doctor_lists_the_children_of_active_agreements(world: World) -> None:
    listed = items(world.call(DOCTOR, "listChildren"))
    assert [(c["id"], c["fullName"]) for c in listed] == [(world.child_id, CHILD_NAME)]


@pytest.mark.parametrize(
    "caller",
    [p for p in OUTSIDERS if p.id != "unrelated parent"],
)
def test_callers_without_a_relationship_list_no_children(world: World, caller: FakeCaller) -> None:
    assert items(world.call(caller, "listChildren")) == []


# -- listPatientIds ----------------------------------------------------------------------


def test_a_doctor_s_patient_ids_are_the_children_of_active_agreements(world: World) -> None:
    assert world.call(DOCTOR, "listPatientIds") == [world.child_id]


@pytest.mark.parametrize(
    "caller", [DOCTOR_NONE, DOCTOR_PENDING, DOCTOR_REVOKED, PARENT, SCHOOL, PARENTS_ADMIN]
)
def test_no_one_else_has_patient_ids(world: World, caller: FakeCaller) -> None:
    assert world.call(caller, "listPatientIds") == []


# -- isPatient ---------------------------------------------------------------------------


def test_a_doctor_of_an_active_agreement_is_told_the_child_is_a_patient(world: World) -> None:
    assert world.call(DOCTOR, "isPatient", childId=world.child_id) is True


@pytest.mark.parametrize("caller", [p for p in OUTSIDERS if p.id != "unrelated parent"])
def test_no_one_outside_an_active_agreement_is_told_the_child_is_a_patient(
    world: World, caller: FakeCaller
) -> None:
    assert world.call(caller, "isPatient", childId=world.child_id) is False


@pytest.mark.parametrize("caller", [*GUARDIANS, pytest.param(OTHER_PARENT, id="unrelated parent")])
def test_parents_are_never_told_a_child_is_a_patient(world: World, caller: FakeCaller) -> None:
    assert world.call(caller, "isPatient", childId=world.child_id) is False


@pytest.mark.parametrize("child_id", ["", "child-missing", "other"])
def test_a_doctor_is_not_told_of_a_child_outside_the_agreement(world: World, child_id: str) -> None:
    named = world.other_child_id if child_id == "other" else child_id
    assert world.call(DOCTOR, "isPatient", childId=named) is False


# -- signAgreement -----------------------------------------------------------------------


@pytest.mark.parametrize("caller", GUARDIANS)
def test_a_guardian_signs_a_pending_agreement_with_a_doctor(
    world: World, caller: FakeCaller
) -> None:
    signed = world.call(caller, "signAgreement", childId=world.child_id, doctorUid=DOCTOR_NONE.uid)
    assert signed["id"]
    assert signed["childId"] == world.child_id
    assert signed["parentUid"] == caller.uid
    assert signed["doctorUid"] == DOCTOR_NONE.uid
    assert signed["status"] == "PENDING"
    assert signed["createdAt"] == signed["updatedAt"]
    assert signed in items(world.call(DOCTOR_NONE, "listAgreements"))


def test_a_pending_agreement_gives_the_doctor_no_access_yet(world: World) -> None:
    world.call(PARENT, "signAgreement", childId=world.child_id, doctorUid=DOCTOR_NONE.uid)
    refused(world.h, DOCTOR_NONE, "readCard", NotFoundError, childId=world.child_id)
    assert items(world.call(DOCTOR_NONE, "listChildren")) == []


@pytest.mark.parametrize("caller", OUTSIDERS)
def test_outsiders_cannot_sign_agreements_for_the_child(world: World, caller: FakeCaller) -> None:
    error = refused(
        world.h,
        caller,
        "signAgreement",
        NotFoundError,
        childId=world.child_id,
        doctorUid=DOCTOR_SPARE.uid,
    )
    assert_no_leak(error)


def test_the_active_doctor_cannot_sign_agreements(world: World) -> None:
    error = refused(
        world.h,
        DOCTOR,
        "signAgreement",
        ForbiddenError,
        childId=world.child_id,
        doctorUid=DOCTOR_SPARE.uid,
    )
    assert_no_leak(error)


@pytest.mark.parametrize(
    "doctor_uid",
    [
        pytest.param(OTHER_PARENT.uid, id="a parent"),
        pytest.param(SCHOOL.uid, id="school staff"),
        pytest.param(HOSPITAL_ADMIN.uid, id="hospital admin"),
        pytest.param("doctor-unknown", id="not enrolled"),
        pytest.param("", id="empty"),
        pytest.param(None, id="missing"),
    ],
)
def test_signing_with_someone_who_is_not_an_enrolled_hospital_doctor_is_bad_user_input(
    world: World, doctor_uid: Any
) -> None:
    refused(
        world.h,
        PARENT,
        "signAgreement",
        BadInputError,
        childId=world.child_id,
        doctorUid=doctor_uid,
    )


def test_a_doctor_enrolled_outside_the_hospital_cannot_be_signed() -> None:
    stray = FakeCaller("doctor-at-school", "school-a", "doctor")
    h = ContractHarness(MedicalContract(), directory_for(*EVERYONE, stray))
    child = h.call(PARENT, "registerChild", fullName=CHILD_NAME, birthDate=BIRTH_DATE)
    refused(h, PARENT, "signAgreement", BadInputError, childId=child["id"], doctorUid=stray.uid)


@pytest.mark.parametrize(
    "doctor",
    [pytest.param(DOCTOR, id="active"), pytest.param(DOCTOR_PENDING, id="pending")],
)
def test_a_second_open_agreement_with_the_same_doctor_is_a_conflict(
    world: World, doctor: FakeCaller
) -> None:
    refused(
        world.h,
        CO_GUARDIAN,
        "signAgreement",
        ConflictError,
        childId=world.child_id,
        doctorUid=doctor.uid,
    )


def test_a_doctor_whose_agreement_was_revoked_can_be_signed_again(world: World) -> None:
    again = world.call(
        PARENT, "signAgreement", childId=world.child_id, doctorUid=DOCTOR_REVOKED.uid
    )
    assert again["status"] == "PENDING" and again["id"] != world.revoked["id"]


# -- acceptAgreement ---------------------------------------------------------------------


def test_the_named_doctor_accepts_a_pending_agreement_and_gains_access(world: World) -> None:
    accepted = world.call(DOCTOR_PENDING, "acceptAgreement", id=world.pending["id"])
    assert accepted["status"] == "ACTIVE"
    assert accepted["id"] == world.pending["id"]
    assert accepted["createdAt"] == world.pending["createdAt"]
    assert accepted["updatedAt"] > world.pending["updatedAt"]
    assert world.call(DOCTOR_PENDING, "readCard", childId=world.child_id)["version"] == 1
    assert [c["id"] for c in items(world.call(DOCTOR_PENDING, "listChildren"))] == [world.child_id]


@pytest.mark.parametrize("caller", GUARDIANS)
def test_guardians_cannot_accept_an_agreement_for_the_doctor(
    world: World, caller: FakeCaller
) -> None:
    refused(world.h, caller, "acceptAgreement", ForbiddenError, id=world.pending["id"])
    assert _agreement(world, world.pending["id"])["status"] == "PENDING"


@pytest.mark.parametrize(
    "caller",
    [
        pytest.param(DOCTOR, id="another doctor with active agreement"),
        pytest.param(DOCTOR_NONE, id="doctor without agreement"),
        pytest.param(OTHER_PARENT, id="unrelated parent"),
        pytest.param(SCHOOL, id="school"),
        pytest.param(HOSPITAL_ADMIN, id="hospital admin"),
    ],
)
def test_anyone_but_the_named_doctor_and_guardians_is_told_the_agreement_does_not_exist(
    world: World, caller: FakeCaller
) -> None:
    error = refused(world.h, caller, "acceptAgreement", NotFoundError, id=world.pending["id"])
    assert_no_leak(error)
    assert DOCTOR_PENDING.uid not in str(error)
    assert _agreement(world, world.pending["id"])["status"] == "PENDING"


def test_accepting_an_agreement_twice_is_a_conflict(world: World) -> None:
    refused(world.h, DOCTOR, "acceptAgreement", ConflictError, id=world.active["id"])


def test_accepting_a_revoked_agreement_is_a_conflict(world: World) -> None:
    refused(world.h, DOCTOR_REVOKED, "acceptAgreement", ConflictError, id=world.revoked["id"])
    refused(world.h, DOCTOR_REVOKED, "readCard", NotFoundError, childId=world.child_id)


def test_accepting_a_pending_agreement_that_was_revoked_is_a_conflict(world: World) -> None:
    world.call(PARENT, "revokeAgreement", id=world.pending["id"])
    refused(world.h, DOCTOR_PENDING, "acceptAgreement", ConflictError, id=world.pending["id"])


@pytest.mark.parametrize("agreement_id", ["agreement-0000000000000000", "", None])
def test_accepting_an_unknown_agreement_is_not_found(world: World, agreement_id: Any) -> None:
    refused(world.h, DOCTOR, "acceptAgreement", NotFoundError, id=agreement_id)


# -- revokeAgreement ---------------------------------------------------------------------


@pytest.mark.parametrize("caller", GUARDIANS)
def test_a_guardian_revokes_an_active_agreement(world: World, caller: FakeCaller) -> None:
    revoked = world.call(caller, "revokeAgreement", id=world.active["id"])
    assert revoked["status"] == "REVOKED"
    assert revoked["id"] == world.active["id"]
    assert revoked["updatedAt"] > world.active["updatedAt"]
    assert _agreement(world, world.active["id"])["status"] == "REVOKED"


def test_revoking_ends_the_doctor_s_access_at_once(world: World) -> None:
    assert world.call(DOCTOR, "readCard", childId=world.child_id)["version"] == 1
    world.call(PARENT, "revokeAgreement", id=world.active["id"])
    refused(world.h, DOCTOR, "readCard", NotFoundError, childId=world.child_id)
    refused(world.h, DOCTOR, "readChild", NotFoundError, childId=world.child_id)
    refused(world.h, DOCTOR, "cardHistory", NotFoundError, childId=world.child_id)
    refused(
        world.h,
        DOCTOR,
        "updateMedicalCard",
        NotFoundError,
        childId=world.child_id,
        expectedVersion=1,
        patch={"notes": "after revocation"},
    )
    assert items(world.call(DOCTOR, "listChildren")) == []
    assert world.call(PARENT, "readChild", childId=world.child_id)["doctorUid"] is None


def test_a_guardian_revokes_a_pending_agreement_before_it_is_accepted(world: World) -> None:
    revoked = world.call(CO_GUARDIAN, "revokeAgreement", id=world.pending["id"])
    assert revoked["status"] == "REVOKED"
    assert items(world.call(DOCTOR_PENDING, "listChildren")) == []


def test_the_named_doctor_cannot_revoke_an_agreement(world: World) -> None:
    refused(world.h, DOCTOR, "revokeAgreement", ForbiddenError, id=world.active["id"])
    assert world.call(DOCTOR, "readCard", childId=world.child_id)["version"] == 1


@pytest.mark.parametrize(
    "caller",
    [
        pytest.param(OTHER_PARENT, id="unrelated parent"),
        pytest.param(DOCTOR_NONE, id="doctor without agreement"),
        pytest.param(DOCTOR_PENDING, id="another doctor with pending agreement"),
        pytest.param(SCHOOL, id="school"),
        pytest.param(PARENTS_ADMIN, id="parents admin"),
    ],
)
def test_outsiders_are_told_the_agreement_to_revoke_does_not_exist(
    world: World, caller: FakeCaller
) -> None:
    error = refused(world.h, caller, "revokeAgreement", NotFoundError, id=world.active["id"])
    assert_no_leak(error)
    assert _agreement(world, world.active["id"])["status"] == "ACTIVE"


def test_revoking_an_agreement_twice_is_a_conflict(world: World) -> None:
    refused(world.h, PARENT, "revokeAgreement", ConflictError, id=world.revoked["id"])


def test_revoking_an_unknown_agreement_is_not_found(world: World) -> None:
    refused(world.h, PARENT, "revokeAgreement", NotFoundError, id="agreement-0000000000000000")


# -- listAgreements ----------------------------------------------------------------------


def _agreement(world: World, agreement_id: str) -> dict[str, Any]:
    (found,) = [a for a in items(world.call(PARENT, "listAgreements")) if a["id"] == agreement_id]
    return found


@pytest.mark.parametrize("caller", GUARDIANS)
def test_guardians_list_every_agreement_of_their_children(world: World, caller: FakeCaller) -> None:
    listed = items(world.call(caller, "listAgreements"))
    assert {(a["doctorUid"], a["status"]) for a in listed} == {
        (DOCTOR.uid, "ACTIVE"),
        (DOCTOR_PENDING.uid, "PENDING"),
        (DOCTOR_REVOKED.uid, "REVOKED"),
    }
    assert items(world.call(caller, "listAgreements", childId=world.child_id)) == listed


def test_a_doctor_lists_only_the_agreements_naming_them(world: World) -> None:
    assert items(world.call(DOCTOR, "listAgreements")) == [world.active]
    assert items(world.call(DOCTOR_PENDING, "listAgreements")) == [world.pending]
    assert items(world.call(DOCTOR_REVOKED, "listAgreements", childId=world.child_id)) == [
        world.revoked
    ]
    assert items(world.call(DOCTOR_NONE, "listAgreements")) == []


def test_a_parent_sees_no_agreements_of_another_family(world: World) -> None:
    assert items(world.call(OTHER_PARENT, "listAgreements")) == []
    assert items(world.call(OTHER_PARENT, "listAgreements", childId=world.child_id)) == []
    assert items(world.call(PARENT, "listAgreements", childId=world.other_child_id)) == []


@pytest.mark.parametrize(
    "caller",
    [
        pytest.param(SCHOOL, id="school"),
        pytest.param(HOSPITAL_ADMIN, id="hospital admin"),
        pytest.param(PARENTS_ADMIN, id="parents admin"),
    ],
)
def test_schools_and_admins_list_no_agreements(world: World, caller: FakeCaller) -> None:
    assert items(world.call(caller, "listAgreements")) == []
    assert items(world.call(caller, "listAgreements", childId=world.child_id)) == []


# -- readCard ----------------------------------------------------------------------------


@pytest.mark.parametrize("caller", READERS)
def test_guardians_and_the_active_doctor_read_the_card(world: World, caller: FakeCaller) -> None:
    card = world.call(caller, "readCard", childId=world.child_id)
    assert (card["childId"], card["version"], card["childName"]) == (
        world.child_id,
        1,
        CHILD_NAME,
    )


@pytest.mark.parametrize("caller", OUTSIDERS)
def test_anyone_else_is_told_the_card_does_not_exist(world: World, caller: FakeCaller) -> None:
    error = refused(world.h, caller, "readCard", NotFoundError, childId=world.child_id)
    assert_no_leak(error)


def test_reading_the_card_of_an_unknown_child_is_not_found(world: World) -> None:
    refused(world.h, DOCTOR, "readCard", NotFoundError, childId="child-0000000000000000")


# -- updateMedicalCard -------------------------------------------------------------------

FULL_PATCH = {
    "bloodType": "AB-",
    "allergies": ["peanuts", "pollen"],
    "chronicConditions": ["asthma"],
    "vaccinations": [{"vaccine": "MMR", "date": "2020-04-01", "dose": 1}],
    "examinations": [
        {"date": "2026-08-20", "heightCm": 121.5, "weightKg": 23, "findings": "healthy"}
    ],
    "healthGroup": 2,
    "physicalEducationGroup": "PREPARATORY",
    "notes": "Carries an inhaler.",
}


def _update(world: World, version: int, patch: dict[str, Any]) -> dict[str, Any]:
    return world.call(
        DOCTOR, "updateMedicalCard", childId=world.child_id, expectedVersion=version, patch=patch
    )


def test_the_active_doctor_updates_the_card_to_the_next_version(world: World) -> None:
    card = _update(world, 1, FULL_PATCH)
    assert card["version"] == 2
    assert card["updatedBy"] == DOCTOR.uid
    assert card["childName"] == CHILD_NAME
    assert card["bloodType"] == "AB-"
    assert card["allergies"] == ["peanuts", "pollen"]
    assert card["chronicConditions"] == ["asthma"]
    assert card["vaccinations"] == [{"vaccine": "MMR", "date": "2020-04-01", "dose": 1}]
    assert card["examinations"] == [
        {
            "date": "2026-08-20",
            "doctorUid": DOCTOR.uid,
            "heightCm": 121.5,
            "weightKg": 23.0,
            "findings": "healthy",
        }
    ]
    assert (card["healthGroup"], card["physicalEducationGroup"]) == (2, "PREPARATORY")
    assert card["notes"] == "Carries an inhaler."
    assert world.call(PARENT, "readCard", childId=world.child_id) == card


def test_each_update_adds_exactly_one_version(world: World) -> None:
    versions = [_update(world, v, {"healthGroup": 1 + v % 5})["version"] for v in range(1, 6)]
    assert versions == [2, 3, 4, 5, 6]


def test_omitted_fields_stay_and_a_given_list_replaces_the_list(world: World) -> None:
    _update(world, 1, FULL_PATCH)
    card = _update(world, 2, {"allergies": ["dust"], "notes": None})
    assert card["allergies"] == ["dust"]
    assert card["notes"] is None
    assert card["bloodType"] == "AB-"
    assert card["chronicConditions"] == ["asthma"]
    assert card["healthGroup"] == 2


@pytest.mark.parametrize("named", [DOCTOR_SPARE.uid, "nobody"], ids=["another doctor", "unknown"])
def test_a_new_examination_is_attributed_to_the_caller_and_naming_another_is_refused(
    world: World, named: str
) -> None:
    refused(
        world.h,
        DOCTOR,
        "updateMedicalCard",
        BadInputError,
        childId=world.child_id,
        expectedVersion=1,
        patch={"examinations": [{"date": "2026-01-10", "doctorUid": named}]},
    )
    card = _update(world, 1, {"examinations": [{"date": "2026-01-10", "heightCm": 110}]})
    assert card["examinations"][0]["doctorUid"] == DOCTOR.uid


def test_examinations_already_on_the_card_keep_their_doctor_when_another_doctor_edits(
    world: World,
) -> None:
    first = _update(world, 1, {"examinations": [{"date": "2026-01-10", "heightCm": 110}]})
    spare = world.call(PARENT, "signAgreement", childId=world.child_id, doctorUid=DOCTOR_SPARE.uid)
    world.call(DOCTOR_SPARE, "acceptAgreement", id=spare["id"])
    kept = first["examinations"][0]
    card = world.call(
        DOCTOR_SPARE,
        "updateMedicalCard",
        childId=world.child_id,
        expectedVersion=2,
        patch={"examinations": [kept, {"date": "2026-02-01"}]},
    )
    assert [e["doctorUid"] for e in card["examinations"]] == [DOCTOR.uid, DOCTOR_SPARE.uid]
    changed = {**kept, "heightCm": 150}
    refused(
        world.h,
        DOCTOR_SPARE,
        "updateMedicalCard",
        BadInputError,
        childId=world.child_id,
        expectedVersion=3,
        patch={"examinations": [changed]},
    )


@pytest.mark.parametrize("group", [1, 5])
def test_health_groups_1_and_5_are_accepted(world: World, group: int) -> None:
    assert _update(world, 1, {"healthGroup": group})["healthGroup"] == group


@pytest.mark.parametrize("caller", GUARDIANS)
def test_guardians_cannot_write_the_card(world: World, caller: FakeCaller) -> None:
    error = refused(
        world.h,
        caller,
        "updateMedicalCard",
        ForbiddenError,
        childId=world.child_id,
        expectedVersion=1,
        patch={"notes": "written by a parent"},
    )
    assert_no_leak(error)
    assert world.call(caller, "readCard", childId=world.child_id)["version"] == 1


@pytest.mark.parametrize("caller", OUTSIDERS)
def test_outsiders_are_told_the_card_to_update_does_not_exist(
    world: World, caller: FakeCaller
) -> None:
    error = refused(
        world.h,
        caller,
        "updateMedicalCard",
        NotFoundError,
        childId=world.child_id,
        expectedVersion=1,
        patch={"notes": "intruder"},
    )
    assert_no_leak(error)
    card = world.call(PARENT, "readCard", childId=world.child_id)
    assert (card["version"], card["notes"]) == (1, None)


@pytest.mark.parametrize("stale", [1, 3, 99])
def test_an_expected_version_other_than_the_current_one_is_a_conflict(
    world: World, stale: int
) -> None:
    _update(world, 1, {"notes": "first"})
    refused(
        world.h,
        DOCTOR,
        "updateMedicalCard",
        ConflictError,
        childId=world.child_id,
        expectedVersion=stale,
        patch={"notes": "second"},
    )
    card = world.call(PARENT, "readCard", childId=world.child_id)
    assert (card["version"], card["notes"]) == (2, "first")


@pytest.mark.parametrize(
    "patch",
    [
        pytest.param({}, id="empty patch"),
        pytest.param({"eyeColour": "blue"}, id="unknown field"),
        pytest.param({"notes": "ok", "version": 7}, id="version in patch"),
        pytest.param({"healthGroup": 0}, id="health group 0"),
        pytest.param({"healthGroup": 6}, id="health group 6"),
        pytest.param({"healthGroup": "2"}, id="health group as text"),
        pytest.param({"healthGroup": True}, id="health group boolean"),
        pytest.param({"bloodType": "C+"}, id="unknown blood type"),
        pytest.param({"bloodType": "a+"}, id="blood type lowercase"),
        pytest.param({"physicalEducationGroup": "ELITE"}, id="unknown PE group"),
        pytest.param({"allergies": [f"a{n}" for n in range(51)]}, id="too many allergies"),
        pytest.param({"allergies": [""]}, id="empty allergy"),
        pytest.param({"allergies": ["x" * 201]}, id="allergy too long"),
        pytest.param({"allergies": "peanuts"}, id="allergies not a list"),
        pytest.param({"notes": ""}, id="empty notes"),
        pytest.param({"notes": "x" * 4001}, id="notes too long"),
        pytest.param(
            {"vaccinations": [{"vaccine": "MMR", "date": "2027-01-01", "dose": 1}]},
            id="vaccination in future",
        ),
        pytest.param(
            {"vaccinations": [{"vaccine": "MMR", "date": "2020-13-01", "dose": 1}]},
            id="vaccination invalid date",
        ),
        pytest.param(
            {"vaccinations": [{"vaccine": "MMR", "date": "2020-01-01", "dose": 0}]},
            id="vaccination dose 0",
        ),
        pytest.param(
            {"vaccinations": [{"vaccine": "", "date": "2020-01-01", "dose": 1}]},
            id="vaccination without vaccine",
        ),
        pytest.param(
            {"vaccinations": [{"vaccine": "MMR", "date": "2020-01-01", "dose": 1}] * 201},
            id="too many vaccinations",
        ),
        pytest.param({"vaccinations": ["MMR"]}, id="vaccination not an object"),
        pytest.param(
            {"examinations": [{"date": "2026-01-01", "doctorUid": PARENT.uid}]},
            id="examination by a parent",
        ),
        pytest.param(
            {"examinations": [{"date": "2026-01-01", "doctorUid": "doctor-unknown"}]},
            id="examination by an unknown doctor",
        ),
        pytest.param(
            {"examinations": [{"date": "2026-01-01", "heightCm": 500}]},
            id="examination height out of range",
        ),
        pytest.param(
            {"examinations": [{"date": "2026-01-01", "weightKg": 0}]},
            id="examination weight out of range",
        ),
        pytest.param({"examinations": [{"date": "2026-12-01"}]}, id="examination in future"),
        pytest.param({"examinations": [{"heightCm": 120}]}, id="examination without date"),
    ],
)
def test_an_invalid_patch_is_bad_user_input(world: World, patch: dict[str, Any]) -> None:
    refused(
        world.h,
        DOCTOR,
        "updateMedicalCard",
        BadInputError,
        childId=world.child_id,
        expectedVersion=1,
        patch=patch,
    )
    assert world.call(PARENT, "readCard", childId=world.child_id)["version"] == 1


@pytest.mark.parametrize(
    "args",
    [
        pytest.param({"expectedVersion": 0}, id="version 0"),
        pytest.param({"expectedVersion": "1"}, id="version as text"),
        pytest.param({"expectedVersion": True}, id="version boolean"),
        pytest.param({"patch": ["notes"]}, id="patch not an object"),
    ],
)
def test_an_invalid_version_or_patch_shape_is_bad_user_input(
    world: World, args: dict[str, Any]
) -> None:
    valid = {"childId": world.child_id, "expectedVersion": 1, "patch": {"notes": "n"}}
    refused(world.h, DOCTOR, "updateMedicalCard", BadInputError, **{**valid, **args})


# -- cardHistory -------------------------------------------------------------------------


def test_card_history_lists_every_version_with_its_transaction_newest_first(
    world: World,
) -> None:
    _update(world, 1, {"bloodType": "O+"})
    _update(world, 2, {"healthGroup": 3})
    history = items(world.call(PARENT, "cardHistory", childId=world.child_id))
    assert [r["version"] for r in history] == [3, 2, 1]
    assert [r["author"] for r in history] == [DOCTOR.uid, DOCTOR.uid, PARENT.uid]
    assert [r["card"]["version"] for r in history] == [3, 2, 1]
    assert history[1]["card"]["bloodType"] == "O+" and history[1]["card"]["healthGroup"] is None
    assert history[0]["card"]["healthGroup"] == 3
    numbers = [r["blockNumber"] for r in history]
    assert numbers == sorted(set(numbers), reverse=True)
    for revision in history:
        (block,) = world.h.store.read_blocks("medical", revision["blockNumber"], 1)
        txs = [json.loads(text) for text in block.tx_texts]
        (tx,) = [t for t in txs if t["tx_id"] == revision["txId"]]
        assert tx["creator"]["uid"] == revision["author"]
        assert tx["timestamp"] == revision["timestamp"] == revision["card"]["updatedAt"]
        assert tx["function"] == (
            "registerChild" if revision["version"] == 1 else "updateMedicalCard"
        )


@pytest.mark.parametrize("caller", READERS)
def test_guardians_and_the_active_doctor_read_the_card_history(
    world: World, caller: FakeCaller
) -> None:
    _update(world, 1, {"notes": "seen"})
    history = items(world.call(caller, "cardHistory", childId=world.child_id))
    assert [r["version"] for r in history] == [2, 1]


@pytest.mark.parametrize("caller", OUTSIDERS)
def test_anyone_else_is_told_the_card_history_does_not_exist(
    world: World, caller: FakeCaller
) -> None:
    error = refused(world.h, caller, "cardHistory", NotFoundError, childId=world.child_id)
    assert_no_leak(error)


def test_card_history_of_an_unknown_child_is_not_found(world: World) -> None:
    refused(world.h, PARENT, "cardHistory", NotFoundError, childId="child-0000000000000000")


@pytest.mark.parametrize("caller", READERS)
def test_card_history_with_proof_opens_each_version_s_commitment(
    world: World, caller: FakeCaller
) -> None:
    _update(world, 1, {"notes": "seen"})
    plain = items(world.call(caller, "cardHistory", childId=world.child_id))
    noted = world.h.reads
    proved = items(world.call(caller, "cardHistory", childId=world.child_id, withProof=True))
    assert world.h.reads == noted, "asking for the openings notes the same read"
    key = f"card/{world.child_id}"
    for revision in proved:
        opening = revision.pop("opening")
        assert (opening["key"], opening["txId"]) == (key, revision["txId"])
        assert opening["canonicalText"] == rfc8785.dumps(revision["card"]).decode()
        assert opening["commitment"] == commitment(opening["salt"], opening["canonicalText"])
        (block,) = world.h.store.read_blocks("medical", revision["blockNumber"], 1)
        txs = [json.loads(text) for text in block.tx_texts]
        (tx,) = [t for t in txs if t["tx_id"] == revision["txId"]]
        assert tx["write_set"][key]["sealed"]["commitment"] == opening["commitment"]
    assert proved == plain


# -- the contract itself -------------------------------------------------------------------


def test_an_unknown_function_is_bad_user_input(world: World) -> None:
    refused(world.h, PARENT, "deleteChild", BadInputError, childId=world.child_id)


def test_a_doctor_sees_only_themselves_as_the_childs_doctor(world: World) -> None:
    """With two ACTIVE agreements, neither doctor learns the other's uid from the child."""
    second = world.call(PARENT, "signAgreement", childId=world.child_id, doctorUid=DOCTOR_SPARE.uid)
    world.call(DOCTOR_SPARE, "acceptAgreement", id=second["id"])
    assert (
        world.call(DOCTOR_SPARE, "readChild", childId=world.child_id)["doctorUid"]
        == DOCTOR_SPARE.uid
    )
    assert world.call(DOCTOR, "readChild", childId=world.child_id)["doctorUid"] == DOCTOR.uid


def test_missing_or_unknown_arguments_are_bad_input_not_a_crash(h: ContractHarness) -> None:
    with pytest.raises(BadInputError, match="missing or unknown arguments"):
        h.call(PARENT, "registerChild", fullName="Ada")
    with pytest.raises(BadInputError, match="missing or unknown arguments"):
        h.call(PARENT, "registerChild", fullName="Ada", birthDate=BIRTH_DATE, nickname="A")


# -- pages of lists --------------------------------------------------------------------


def _children(h: ContractHarness, count: int) -> list[str]:
    """Ids of `count` children PARENT registers, oldest first."""
    return [
        h.call(PARENT, "registerChild", fullName=f"Child {n}", birthDate=BIRTH_DATE)["id"]
        for n in range(count)
    ]


def test_new_ids_sort_by_the_time_they_were_made_except_a_childs(h: ContractHarness) -> None:
    children = _children(h, 2)
    assert all(re.fullmatch(r"child-[0-9a-f]{32}", child_id) for child_id in children)
    ids = [_signed(h, child_id, DOCTOR)["id"] for child_id in children]
    assert ids == sorted(ids)
    assert all(re.fullmatch(r"agreement-t[0-9a-f]{14}-[0-9a-f]{32}", i) for i in ids)
    # The harness clock: 2026-09-01 08:00:01 UTC, one second per call.
    assert int(ids[0][len("agreement-t") :][:14], 16) == 1_788_249_603_000_000


def test_a_parent_pages_through_their_children_in_id_order(h: ContractHarness) -> None:
    ids = sorted(_children(h, 7), reverse=True)
    pages = every_page(lambda after: h.call(PARENT, "listChildren", first=3, after=after))
    assert_pages_hold(pages, first=3, expected=ids)
    positions = [entry["position"] for page in pages for entry in page["entries"]]
    assert positions == [f"guardian-child/parents/{PARENT.uid}/{i}" for i in ids]


def test_a_doctor_pages_through_the_children_of_active_agreements(h: ContractHarness) -> None:
    ids = _children(h, 5)
    for child_id in ids:
        agreement = _signed(h, child_id, DOCTOR)
        h.call(DOCTOR, "acceptAgreement", id=agreement["id"])
    pages = every_page(lambda after: h.call(DOCTOR, "listChildren", first=2, after=after))
    assert_pages_hold(pages, first=2, expected=sorted(ids, reverse=True))


def test_agreements_of_several_children_are_merged_newest_first(h: ContractHarness) -> None:
    children = _children(h, 3)
    doctors = (DOCTOR, DOCTOR_NONE, DOCTOR_PENDING, DOCTOR_REVOKED, DOCTOR_SPARE)
    made = [_signed(h, child_id, doctor) for doctor in doctors for child_id in children]
    h.call(OTHER_PARENT, "registerChild", fullName="Not mine", birthDate=BIRTH_DATE)
    pages = every_page(lambda after: h.call(PARENT, "listAgreements", first=4, after=after))
    assert_pages_hold(pages, first=4, expected=[a["id"] for a in reversed(made)])
    one_child = every_page(
        lambda after: h.call(PARENT, "listAgreements", childId=children[1], first=2, after=after)
    )
    expected = [a["id"] for a in reversed(made) if a["childId"] == children[1]]
    assert_pages_hold(one_child, first=2, expected=expected)
    doctor = every_page(lambda after: h.call(DOCTOR, "listAgreements", first=2, after=after))
    assert_pages_hold(doctor, first=2, expected=[a["id"] for a in reversed(made[:3])])
    # A doctor asking for one child reads that child's list and keeps their own agreements.
    doctor_one_child = every_page(
        lambda after: h.call(
            DOCTOR_SPARE, "listAgreements", childId=children[1], first=1, after=after
        )
    )
    assert_pages_hold(doctor_one_child, first=1, expected=[made[13]["id"]])


def test_the_card_history_pages_newest_first_by_version(world: World) -> None:
    for version in range(1, 6):
        _update(world, version, {"notes": f"visit {version}"})
    pages = every_page(
        lambda after: world.call(
            PARENT, "cardHistory", childId=world.child_id, first=4, after=after
        )
    )
    assert_pages_hold(pages, first=4, expected=[6, 5, 4, 3, 2, 1], key="version")
    assert [entry["position"] for entry in pages[1]["entries"]] == ["2", "1"]


def _position(h: ContractHarness, caller: FakeCaller, function: str, **args: Any) -> str:
    position: str = h.call(caller, function, first=1, **args)["entries"][0]["position"]
    return position


def test_a_position_outside_the_caller_s_own_list_is_refused(world: World) -> None:
    h = world.h
    mine = _position(h, PARENT, "listChildren")
    co_guardian = _position(h, CO_GUARDIAN, "listChildren")
    agreement = _position(h, PARENT, "listAgreements")
    patient = _position(h, DOCTOR, "listChildren")
    assert items(h.call(PARENT, "listChildren", after=mine)) == []
    for caller, function, args, after in [
        (OTHER_PARENT, "listChildren", {}, mine),
        (PARENT, "listChildren", {}, co_guardian),
        (PARENT, "listChildren", {}, agreement),
        (PARENT, "listChildren", {}, patient),
        (PARENT, "listChildren", {}, f"guardian-child/parents/{PARENT.uid}/"),
        (PARENT, "listChildren", {}, 7),
        (DOCTOR_NONE, "listChildren", {}, patient),
        (SCHOOL, "listChildren", {}, mine),
        (OTHER_PARENT, "listAgreements", {}, agreement),
        (PARENT, "listAgreements", {"childId": world.other_child_id}, agreement),
        (DOCTOR_SPARE, "listAgreements", {}, _position(h, DOCTOR, "listAgreements")),
    ]:
        error = refused(h, caller, function, BadInputError, after=after, **args)
        assert str(error) == "after is not a position in this list."


@pytest.mark.parametrize("after", ["abc", "0", "01", "", "-1", "1.0", "²", "9" * 11, 3])
def test_a_card_history_position_is_a_version_number(world: World, after: Any) -> None:
    refused(world.h, PARENT, "cardHistory", BadInputError, childId=world.child_id, after=after)


@pytest.mark.parametrize("first", [0, -1, 201, "50", True, 2.5, None])
@pytest.mark.parametrize(
    ("function", "needs_child"),
    [("listChildren", False), ("listAgreements", False), ("cardHistory", True)],
)
def test_a_page_holds_1_to_200_entries(
    world: World, function: str, needs_child: bool, first: Any
) -> None:
    args = {"childId": world.child_id} if needs_child else {}
    error = refused(world.h, PARENT, function, BadInputError, first=first, **args)
    assert str(error) == "first must be a whole number from 1 to 200."
    assert world.call(PARENT, function, first=200, **args)["hasMore"] is False
