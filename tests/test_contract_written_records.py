"""`writtenRecordPurpose` on the `medical` contract: who may have the proof of a transaction.

Without a server: the contract is given the keys a transaction wrote and answers with the
purpose its own read rule for the card grants (`card_purpose`), or NOT_FOUND. It notes no
read, granted or refused: an inclusion proof shows nothing of the card. The API's side of
it (every refusal worded as for an unknown transaction) is tests/test_api_proofs.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from chaincode.medical import MedicalContract
from chaincode.testing import ContractHarness, FakeCaller, directory_for
from chaincode.writes import written_ids
from domain.errors import BadInputError, NotFoundError

PARENT = FakeCaller("parent-anna", "parents", "parent")
OTHER_PARENT = FakeCaller("parent-olga", "parents", "parent")
DOCTOR = FakeCaller("doctor-ivanova", "hospital", "doctor")
ER_DOCTOR = FakeCaller("doctor-er", "hospital", "doctor")
HOSPITAL_ADMIN = FakeCaller("admin-hospital", "hospital", "admin")
SCHOOL = FakeCaller("staff-a", "school-a", "school")
EVERYONE = (PARENT, OTHER_PARENT, DOCTOR, ER_DOCTOR, HOSPITAL_ADMIN, SCHOOL)
REASON = "Brought in unconscious; allergies needed now."


def purpose(h: ContractHarness, caller: FakeCaller, keys: Any) -> Any:
    """The answer, checking that the call noted no read at all."""
    try:
        return h.call(caller, "writtenRecordPurpose", keys=keys)
    finally:
        assert (h.reads.granted, h.reads.refused) == ([], [])


@pytest.fixture
def h() -> ContractHarness:
    return ContractHarness(MedicalContract(), directory_for(*EVERYONE))


def _child(h: ContractHarness) -> tuple[str, str]:
    """A child with an ACTIVE agreement with DOCTOR: (child id, agreement id)."""
    child = h.call(PARENT, "registerChild", fullName="Alisa Smirnova", birthDate="2019-03-04")
    agreement = h.call(PARENT, "signAgreement", childId=child["id"], doctorUid=DOCTOR.uid)
    h.call(DOCTOR, "acceptAgreement", id=agreement["id"])
    return child["id"], agreement["id"]


def test_the_card_readers_get_the_purpose_they_read_it_under(h: ContractHarness) -> None:
    child, _ = _child(h)
    keys = [f"child/{child}", f"card/{child}"]
    assert purpose(h, PARENT, keys) == "GUARDIAN"
    assert purpose(h, DOCTOR, keys) == "TREATMENT"
    h.call(ER_DOCTOR, "openEmergencyAccess", childId=child, reason=REASON)
    assert purpose(h, ER_DOCTOR, keys) == "EMERGENCY"


def test_everyone_else_is_told_not_found(h: ContractHarness) -> None:
    child, agreement = _child(h)
    keys = [f"card/{child}"]
    for caller in (OTHER_PARENT, ER_DOCTOR, HOSPITAL_ADMIN, SCHOOL):
        with pytest.raises(NotFoundError):
            purpose(h, caller, keys)
    h.call(PARENT, "revokeAgreement", id=agreement)
    with pytest.raises(NotFoundError):
        purpose(h, DOCTOR, keys)


def test_only_a_card_counts(h: ContractHarness) -> None:
    child, agreement = _child(h)
    for keys in ([f"child/{child}"], [f"agreement/{agreement}"], ["card/"], ["card/nobody"], []):
        with pytest.raises(NotFoundError):
            purpose(h, PARENT, keys)
    with pytest.raises(BadInputError):
        purpose(h, PARENT, f"card/{child}")


def test_written_ids_finds_the_records_of_one_kind() -> None:
    keys = ["card/c1", "child/c1", "card-x/c2", "card/", "report/r1", "card/c3"]
    assert written_ids(keys, "card") == ["c1", "c3"]
    assert written_ids(keys, "report") == ["r1"]
