"""Sealed values and erasure in the contracts on their own (chaincode/erasure.py).

One family's whole story is played on both channels — a child with two guardians
and a third parent only offered guardianship, a card with content, agreements
that end, an emergency access, an admission, a report request, a report a
school may read, access-log entries — beside another child of the same parents
with its own story. Then the first child is erased as the gateway erases it:
its keys destroyed on both channels' keyrings, then `recordErasure` on each.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from chaincode.base import SealedValueError
from chaincode.consent import SERVER
from chaincode.medical import MedicalContract
from chaincode.people import person_of
from chaincode.records import AccessFacts, ErasureFacts, Transient
from chaincode.report import ReportContract
from chaincode.testing import ContractHarness, FakeCaller, directory_for
from domain.errors import ForbiddenError, NotFoundError, RefusalError
from encryption.envelope import BrokenSealError, is_sealed, sealed_child
from ledger_backends.records import format_timestamp
from ledger_backends.testing.tampering import HistoryValue, StateValue, raw_store
from ledger_backends.verify import verify_channel
from tests.contract_checks import items, ledger_snapshot

PARENT = FakeCaller("parent-anna", "parents", "parent")
CO_GUARDIAN = FakeCaller("parent-boris", "parents", "parent")
INVITED = FakeCaller("parent-vera", "parents", "parent")
OTHER_PARENT = FakeCaller("parent-olga", "parents", "parent")
DOCTOR = FakeCaller("doctor-ivanova", "hospital", "doctor")
ER_DOCTOR = FakeCaller("doctor-er", "hospital", "doctor")
HOSPITAL_ADMIN = FakeCaller("admin-h", "hospital", "admin")
SCHOOL_A = FakeCaller("staff-a", "school-a", "school")
SCHOOL_B = FakeCaller("staff-b", "school-b", "school")
EVERYONE = (
    PARENT,
    CO_GUARDIAN,
    INVITED,
    OTHER_PARENT,
    DOCTOR,
    ER_DOCTOR,
    HOSPITAL_ADMIN,
    SCHOOL_A,
    SCHOOL_B,
)
GUARDIANS = sorted([person_of(PARENT), person_of(CO_GUARDIAN)])
MISSING = "child-0123456789abcdef0123456789abcdef"

# What only the family's records hold: none of it may be stored in clear anywhere.
CHILD_NAME = "Alisa Smirnova"
BIRTH_DATE = "2019-03-04"
ALLERGY = "hazelnut pollen"
CONDITION = "exercise-induced asthma"
VACCINE = "MMR-VaxPro"
NOTES = "Prefers the left arm for injections."
REASON = "Unconscious after a fall at the playground, parents unreachable."
CONCLUSION = "Fit for school; carries an inhaler for sports."
SECRETS = (CHILD_NAME, BIRTH_DATE, ALLERGY, CONDITION, VACCINE, NOTES, REASON, CONCLUSION)
# Stored in clear: what belongs to no child, and what an erasure leaves behind.
CLEAR_PREFIXES = ("refusals/", "erased/")


@dataclass
class World:
    medical: ContractHarness
    report: ContractHarness
    child_id: str
    other_id: str
    ids: dict[str, str]

    def harness(self, channel: str) -> ContractHarness:
        return self.medical if channel == "medical" else self.report

    def patients(self, caller: FakeCaller) -> Transient:
        """What the gateway reads on `medical` for a doctor's report calls."""
        if caller.role != "doctor":
            return {}
        return {"patients": self.medical.call(caller, "listPatientIds")}

    def facts(self, child_id: str | None = None) -> ErasureFacts:
        at = format_timestamp(self.medical.now)
        return {"childId": child_id or self.child_id, "guardians": GUARDIANS, "erasedAt": at}

    def destroy_keys(self, facts: ErasureFacts) -> None:
        for h in (self.medical, self.report):
            assert h.keyring is not None
            h.keyring.destroy(facts["childId"], facts["erasedAt"])

    def erase(self, by: Any = PARENT) -> list[dict[str, Any]]:
        """Erase the child as the gateway does: keys first, then the record on each channel."""
        facts = self.facts()
        self.destroy_keys(facts)
        return [
            h.call(by, "recordErasure", transient={"erasure": facts})
            for h in (self.medical, self.report)
        ]

    def log(self, channel: str, caller: FakeCaller, child_id: str | None = None) -> list[Any]:
        child = child_id or self.child_id
        transient: Transient = {}
        if channel == "report":
            transient = {"erasure": self.facts(child)}
        return items(
            self.harness(channel).call(caller, "listAccessLog", transient=transient, childId=child)
        )


def _later(h: ContractHarness, days: int) -> str:
    return format_timestamp(h.now + timedelta(days=days))


def _family(medical: ContractHarness, report: ContractHarness, name: str) -> dict[str, str]:
    """One child of PARENT and CO_GUARDIAN and its story on both channels; the ids made."""
    child = medical.call(
        PARENT,
        "registerChild",
        fullName=name,
        birthDate=BIRTH_DATE if name == CHILD_NAME else "2017-11-12",
        otherGuardians=[CO_GUARDIAN.uid, INVITED.uid],
    )
    child_id = child["id"]
    medical.call(CO_GUARDIAN, "acceptGuardianship", childId=child_id)
    days = 30 if name == CHILD_NAME else 31
    agreement = medical.call(
        PARENT,
        "signAgreement",
        childId=child_id,
        doctorUid=DOCTOR.uid,
        validUntil=_later(medical, days),
    )
    medical.call(DOCTOR, "acceptAgreement", id=agreement["id"])
    patch = {"healthGroup": 2, "physicalEducationGroup": "MAIN"}
    if name == CHILD_NAME:
        patch |= {
            "allergies": [ALLERGY],
            "chronicConditions": [CONDITION],
            "vaccinations": [{"vaccine": VACCINE, "date": "2020-04-01", "dose": 1}],
            "notes": NOTES,
        }
    medical.call(DOCTOR, "updateMedicalCard", childId=child_id, expectedVersion=1, patch=patch)
    emergency = medical.call(ER_DOCTOR, "openEmergencyAccess", childId=child_id, reason=REASON)
    # A read of the card, as the gateway records it, and a refused one.
    card = medical.call(DOCTOR, "readCard", childId=child_id)
    medical.call(DOCTOR, "recordAccess", transient={"access": medical.reads.granted})
    _refused(medical, OTHER_PARENT, "readChild", childId=child_id)
    medical.call(OTHER_PARENT, "recordAccess", transient={"refusals": _facts(medical)})

    guardians = {"child": medical.call(PARENT, "readGuardians", childId=child_id)}
    admission = report.call(
        PARENT, "createAdmissionRequest", transient=guardians, school="school-a"
    )
    report.call(SCHOOL_A, "acceptAdmissionRequest", id=admission["id"])
    request = report.call(SCHOOL_A, "createReportRequest", admissionRequestId=admission["id"])
    patients = {"patients": medical.call(DOCTOR, "listPatientIds")}
    made = report.call(
        DOCTOR,
        "createReport",
        transient={**patients, "card": card, "cardSalt": "ab" * 16},
        reportRequestId=request["id"],
        conclusion=CONCLUSION if name == CHILD_NAME else "Fit.",
    )
    report.call(
        PARENT,
        "approveReport",
        id=made["id"],
        schools=["school-a"],
        validUntil=_later(report, days),
    )
    report.call(SCHOOL_A, "readReport", id=made["id"])
    report.call(SCHOOL_A, "recordAccess", transient={"access": report.reads.granted})
    return {
        "child": child_id,
        "agreement": agreement["id"],
        "emergency": emergency["id"],
        "admission": admission["id"],
        "request": request["id"],
        "report": made["id"],
    }


def _refused(h: ContractHarness, caller: FakeCaller, function: str, **args: Any) -> RefusalError:
    with pytest.raises(RefusalError) as caught:
        h.call(caller, function, **args)
    return caught.value


def _facts(h: ContractHarness) -> list[AccessFacts]:
    return [facts for facts in h.reads.refused if facts is not None]


@pytest.fixture
def world() -> World:
    directory = directory_for(*EVERYONE)
    medical = ContractHarness(MedicalContract(), directory)
    report = ContractHarness(ReportContract(), directory)
    ids = _family(medical, report, CHILD_NAME)
    other = _family(medical, report, "Mark Smirnov")
    return World(medical, report, ids["child"], other["child"], ids)


def _raw_texts(h: ContractHarness) -> list[str]:
    """Everything the channel's store holds as text: state, history and transactions."""
    channel = h.contract.channel
    texts = [record.value for record in h.store.scan_state(channel)]
    texts += [entry.value for entry in h.store.scan_history(channel) if entry.value is not None]
    for block in h.store.read_blocks(channel, 0, h.store.tip(channel).height):
        texts += list(block.tx_texts)
    return texts


def _is_clear_by_design(key: str, value: Any) -> bool:
    return key.startswith(CLEAR_PREFIXES) or (
        key.startswith("access/") and isinstance(value, dict) and value.get("outcome") == "ERASED"
    )


# -- sealed at rest -------------------------------------------------------------------------


def test_no_plaintext_of_a_child_is_stored_in_state_history_or_transactions(
    world: World,
) -> None:
    world.erase()
    for h in (world.medical, world.report):
        for text in _raw_texts(h):
            assert not [secret for secret in SECRETS if secret in text]
    # Not vacuous: the other child's records, sealed alike, open to what was stored.
    assert "Mark Smirnov" in json.dumps(world.medical.opened_state())
    assert '"conclusion": "Fit."' in json.dumps(world.report.opened_state())


def test_every_value_is_sealed_for_its_child_but_those_of_no_child(world: World) -> None:
    world.erase()
    children = {world.child_id, world.other_id}
    clear: dict[str, list[str]] = {"medical": [], "report": []}
    for h in (world.medical, world.report):
        for record in h.store.scan_state(h.contract.channel):
            value = record.json()
            if _is_clear_by_design(record.key, value):
                assert not is_sealed(value)
                clear[h.contract.channel].append(record.key.split("/")[0])
                continue
            assert is_sealed(value), record.key
            owner = sealed_child(value)
            assert owner in children
            named = [child for child in children if child in record.key]
            assert named in ([], [owner]), record.key
    # The erasure and its access entry on each channel; the reader refused on `medical`.
    assert sorted(clear["medical"]) == ["access", "erased", "refusals"]
    assert sorted(clear["report"]) == ["access", "erased"]


def test_a_harness_in_clear_stores_plain_values() -> None:
    h = ContractHarness(MedicalContract(), directory_for(PARENT), encrypted=False)
    child = h.call(PARENT, "registerChild", fullName=CHILD_NAME, birthDate=BIRTH_DATE)
    stored = h.store.read_state("medical", f"child/{child['id']}")
    assert stored is not None and stored.json()["fullName"] == CHILD_NAME
    assert h.keyring is None


def test_a_context_without_keys_refuses_to_read_a_sealed_value(world: World) -> None:
    clear = ContractHarness(
        MedicalContract(), world.medical.directory, world.medical.store, encrypted=False
    )
    with pytest.raises(SealedValueError):
        clear.call(PARENT, "readChild", childId=world.child_id)


def test_a_sealed_value_moved_to_another_key_does_not_open(world: World) -> None:
    h = world.medical
    with raw_store(h.store) as raw:
        other_card = raw.read(StateValue("medical", f"card/{world.other_id}"))
        raw.write(StateValue("medical", f"card/{world.child_id}"), other_card)
    with pytest.raises(BrokenSealError, match=f"card/{world.child_id} on channel medical"):
        h.call(PARENT, "readCard", childId=world.child_id)
    # The other child's card, where it belongs, still opens.
    assert h.call(PARENT, "readCard", childId=world.other_id)["childId"] == world.other_id


def test_a_sealed_version_moved_to_another_version_does_not_open(world: World) -> None:
    h = world.medical
    key = f"card/{world.child_id}"
    first, second = h.store.read_history("medical", key)
    with raw_store(h.store) as raw:
        place = HistoryValue("medical", key, first.block_number, first.tx_index)
        raw.write(place, second.value or "")
    with pytest.raises(BrokenSealError):
        h.call(PARENT, "cardHistory", childId=world.child_id)


# -- recordErasure ----------------------------------------------------------------------------


def test_record_erasure_is_the_gateway_s_own(world: World) -> None:
    for h in (world.medical, world.report):
        before = ledger_snapshot(h)
        with pytest.raises(ForbiddenError):
            h.call(PARENT, "recordErasure")
        assert ledger_snapshot(h) == before


def test_an_erasure_is_recorded_in_clear_once_and_told_to_the_guardians(world: World) -> None:
    medical, report = world.erase(by=PARENT)
    assert (
        medical
        == report
        == {
            "childId": world.child_id,
            "erasedAt": medical["erasedAt"],
            "guardians": GUARDIANS,
            "erasedBy": person_of(PARENT),
        }
    )
    for h in (world.medical, world.report):
        channel = h.contract.channel
        stored = h.store.read_state(channel, f"erased/{world.child_id}")
        assert stored is not None and stored.json() == medical
        (block,) = h.store.read_blocks(channel, h.store.tip(channel).height - 1, 1)
        (tx,) = block.transactions()
        assert [(e.name, e.payload) for e in tx.events] == [
            ("ChildErased", {"subjectId": world.child_id, "people": GUARDIANS, "orgs": []})
        ]
        # Again: the first record, and nothing written (the gateway commits no empty write).
        before = ledger_snapshot(h)[1]
        again = h.call(SERVER, "recordErasure", transient={"erasure": world.facts()})
        assert again == medical
        assert ledger_snapshot(h)[1] == before
        (block,) = h.store.read_blocks(channel, h.store.tip(channel).height - 1, 1)
        assert [tx.write_set for tx in block.transactions()] == [{}]


def test_an_operator_s_erasure_names_the_server(world: World) -> None:
    records = world.erase(by=SERVER)
    assert {record["erasedBy"] for record in records} == {"healthledger"}
    (entry,) = world.log("medical", PARENT)
    assert (entry["purpose"], entry["readerUid"], entry["readerRole"]) == (
        "ADMINISTRATION",
        "healthledger",
        "server",
    )


# -- reads after an erasure -------------------------------------------------------------------


def _erased_message(world: World) -> str:
    at = world.medical.call(PARENT, "readErasure", childId=world.child_id)["erasedAt"]
    return f"This child's records were erased on {at[:10]}."


# (caller, channel, function, args with placeholders, the same call on a record never made)
READS: list[tuple[FakeCaller, str, str, dict[str, Any]]] = [
    (PARENT, "medical", "readChild", {"childId": "{child}"}),
    (CO_GUARDIAN, "medical", "readGuardians", {"childId": "{child}"}),
    (PARENT, "medical", "readCard", {"childId": "{child}"}),
    (CO_GUARDIAN, "medical", "cardHistory", {"childId": "{child}"}),
    (PARENT, "medical", "listEmergencyAccesses", {"childId": "{child}"}),
    (PARENT, "medical", "extendAgreement", {"id": "{agreement}", "validUntil": "{later}"}),
    (PARENT, "medical", "revokeAgreement", {"id": "{agreement}"}),
    (PARENT, "medical", "endEmergencyAccess", {"id": "{emergency}"}),
    (PARENT, "medical", "signAgreement", {"childId": "{child}", "doctorUid": DOCTOR.uid}),
    (PARENT, "report", "readAdmissionRequest", {"id": "{admission}"}),
    (CO_GUARDIAN, "report", "readReportRequest", {"id": "{request}"}),
    (PARENT, "report", "readReport", {"id": "{report}"}),
    (PARENT, "report", "approveReport", {"id": "{report}", "schools": ["school-b"]}),
    (PARENT, "report", "revokeReportPermission", {"id": "{report}", "school": "school-a"}),
]
OTHERS: list[tuple[FakeCaller, str, str, dict[str, Any]]] = [
    (DOCTOR, "medical", "readChild", {"childId": "{child}"}),
    (DOCTOR, "medical", "readCard", {"childId": "{child}"}),
    (ER_DOCTOR, "medical", "cardHistory", {"childId": "{child}"}),
    (INVITED, "medical", "readChild", {"childId": "{child}"}),
    (INVITED, "medical", "acceptGuardianship", {"childId": "{child}"}),
    (OTHER_PARENT, "medical", "readGuardians", {"childId": "{child}"}),
    (OTHER_PARENT, "medical", "readErasure", {"childId": "{child}"}),
    (HOSPITAL_ADMIN, "medical", "listEmergencyAccesses", {"childId": "{child}"}),
    (DOCTOR, "medical", "acceptAgreement", {"id": "{agreement}"}),
    (DOCTOR, "medical", "readErasure", {"childId": "{child}"}),
    (ER_DOCTOR, "medical", "endEmergencyAccess", {"id": "{emergency}"}),
    (
        DOCTOR,
        "medical",
        "updateMedicalCard",
        {"childId": "{child}", "expectedVersion": 2, "patch": {"notes": "x"}},
    ),
    (ER_DOCTOR, "medical", "openEmergencyAccess", {"childId": "{child}", "reason": REASON}),
    (SCHOOL_A, "report", "readAdmissionRequest", {"id": "{admission}"}),
    (SCHOOL_A, "report", "acceptAdmissionRequest", {"id": "{admission}"}),
    (SCHOOL_A, "report", "readReportRequest", {"id": "{request}"}),
    (SCHOOL_A, "report", "readReport", {"id": "{report}"}),
    (DOCTOR, "report", "readReport", {"id": "{report}"}),
]


def _fill(world: World, args: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    values = {**ids, "later": _later(world.medical, 90)}
    return {k: v.format(**values) if isinstance(v, str) else v for k, v in args.items()}


def _refusal(
    world: World, caller: FakeCaller, channel: str, function: str, args: dict[str, Any]
) -> RefusalError:
    """The refusal of the call, checking it changed nothing."""
    h = world.harness(channel)
    transient = world.patients(caller) if channel == "report" else {}
    before = ledger_snapshot(h)
    with pytest.raises(RefusalError) as caught:
        h.call(caller, function, transient=transient, **args)
    assert ledger_snapshot(h) == before
    return caught.value


MISSING_IDS = {
    "child": MISSING,
    "agreement": "agreement-t0000000000000-00000000000000000000000000000000",
    "emergency": "emergency-t0000000000000-00000000000000000000000000000000",
    "admission": "admission-t0000000000000-00000000000000000000000000000000",
    "request": "report-request-t0000000000000-00000000000000000000000000000000",
    "report": "report-t0000000000000-00000000000000000000000000000000",
}


@pytest.mark.parametrize(
    ("caller", "channel", "function", "args"),
    [pytest.param(*read, id=f"{read[0].uid} {read[2]}") for read in READS],
)
def test_guardians_are_told_when_their_child_s_records_were_erased(
    world: World, caller: FakeCaller, channel: str, function: str, args: dict[str, Any]
) -> None:
    world.erase()
    refusal = _refusal(world, caller, channel, function, _fill(world, args, world.ids))
    assert type(refusal) is NotFoundError
    assert str(refusal) == _erased_message(world)


@pytest.mark.parametrize(
    ("caller", "channel", "function", "args"),
    [pytest.param(*read, id=f"{read[0].uid} {read[2]}") for read in OTHERS],
)
def test_everyone_else_is_refused_as_for_a_record_never_made(
    world: World, caller: FakeCaller, channel: str, function: str, args: dict[str, Any]
) -> None:
    world.erase()
    erased = _refusal(world, caller, channel, function, _fill(world, args, world.ids))
    missing = _refusal(world, caller, channel, function, _fill(world, args, MISSING_IDS))
    assert (type(erased), str(erased)) == (type(missing), str(missing))
    assert type(erased) is NotFoundError


def test_until_the_erasure_is_recorded_guardians_get_the_usual_refusal(world: World) -> None:
    world.destroy_keys(world.facts())
    refusal = _refusal(world, PARENT, "medical", "readChild", {"childId": world.child_id})
    assert str(refusal) == "No such child is visible to you."
    with pytest.raises(NotFoundError, match="No such child is visible to you"):
        world.medical.call(PARENT, "readErasure", childId=world.child_id)


def test_the_erasure_record_is_read_by_its_guardians_and_the_server(world: World) -> None:
    (record, _) = world.erase()
    for caller in (PARENT, CO_GUARDIAN, SERVER):
        assert world.medical.call(caller, "readErasure", childId=world.child_id) == record
    with pytest.raises(NotFoundError):
        world.medical.call(PARENT, "readErasure", childId=world.other_id)


def test_the_server_reads_guardians_and_finds_them_in_the_index_after_an_erasure(
    world: World,
) -> None:
    h = world.medical
    found = h.call(SERVER, "childGuardians", childId=world.child_id)
    assert found == {"id": world.child_id, "fullName": CHILD_NAME, "guardians": GUARDIANS}
    world.destroy_keys(world.facts())
    assert h.call(SERVER, "childGuardians", childId=world.child_id) is None
    # The index keys are in clear; the parent only offered guardianship is not in it.
    assert h.call(SERVER, "indexedGuardians", childId=world.child_id) == GUARDIANS
    assert h.call(SERVER, "indexedGuardians", childId=MISSING) == []
    for function in ("childGuardians", "indexedGuardians"):
        with pytest.raises(ForbiddenError):
            h.call(PARENT, function, childId=world.child_id)


# -- lists ------------------------------------------------------------------------------------


def _ids(page: Any, field: str = "id") -> list[str]:
    return [item[field] for item in items(page)]


def test_lists_leave_the_erased_child_out_and_keep_the_other(world: World) -> None:
    m, r, other = world.medical, world.report, world.other_id
    before = {
        "children": _ids(m.call(PARENT, "listChildren")),
        "patients": m.call(DOCTOR, "listPatientIds"),
    }
    assert world.child_id in before["children"] and world.child_id in before["patients"]
    assert [c["id"] for c in m.call(INVITED, "pendingGuardianships")] == sorted(
        [world.child_id, other]
    )
    world.erase()
    assert _ids(m.call(PARENT, "listChildren")) == [other]
    assert _ids(m.call(DOCTOR, "listChildren")) == [other]
    assert m.call(DOCTOR, "listPatientIds") == [other]
    assert [c["id"] for c in m.call(INVITED, "pendingGuardianships")] == [other]
    for caller in (PARENT, DOCTOR):
        assert _ids(m.call(caller, "listAgreements"), "childId") == [other]
    assert items(m.call(PARENT, "listAgreements", childId=world.child_id)) == []
    assert m.call(SERVER, "treatingDoctors", childId=world.child_id) == []
    for caller in (PARENT, SCHOOL_A):
        assert _ids(r.call(caller, "listAdmissionRequests"), "childId") == [other]
        assert _ids(r.call(caller, "listReports"), "childId") == [other]
    for caller in (PARENT, SCHOOL_A, DOCTOR):
        found = r.call(caller, "listReportRequests", transient=world.patients(caller))
        assert _ids(found, "childId") == [other]
    assert _ids(r.call(DOCTOR, "listReports"), "childId") == [other]


def test_the_other_child_is_untouched(world: World) -> None:
    m, r = world.medical, world.report
    before_card = m.call(DOCTOR, "readCard", childId=world.other_id)
    before_history = m.call(PARENT, "cardHistory", childId=world.other_id)
    world.erase()
    assert m.call(DOCTOR, "readCard", childId=world.other_id) == before_card
    assert m.call(PARENT, "cardHistory", childId=world.other_id) == before_history
    other = _family_ids(world)
    assert r.call(SCHOOL_A, "readReport", id=other["report"])["content"]["conclusion"] == "Fit."
    updated = m.call(
        DOCTOR,
        "updateMedicalCard",
        childId=world.other_id,
        expectedVersion=2,
        patch={"notes": "Still fine."},
    )
    assert updated["version"] == 3


def _family_ids(world: World) -> dict[str, str]:
    (report,) = items(world.report.call(PARENT, "listReports"))
    return {"report": report["id"]}


# -- the access log ---------------------------------------------------------------------------


def test_the_guardians_list_the_erasure_in_the_access_log(world: World) -> None:
    assert len(world.log("medical", PARENT)) == 2  # the doctor's read, the refusal
    world.erase(by=CO_GUARDIAN)
    for channel in ("medical", "report"):
        for guardian in (PARENT, CO_GUARDIAN):
            (entry,) = world.log(channel, guardian)
            assert entry["outcome"] == "ERASED"
            assert (entry["what"], entry["recordId"], entry["childId"]) == (
                "CHILD",
                world.child_id,
                world.child_id,
            )
            assert (entry["readerUid"], entry["purpose"]) == (CO_GUARDIAN.uid, "GUARDIAN")
    for caller in (OTHER_PARENT, INVITED, DOCTOR):
        erased = _refused(world.medical, caller, "listAccessLog", childId=world.child_id)
        missing = _refused(world.medical, caller, "listAccessLog", childId=MISSING)
        assert str(erased) == str(missing)
    with pytest.raises(NotFoundError):
        world.log("report", OTHER_PARENT)


def test_a_refusal_recorded_after_the_erasure_is_left_out_and_a_read_refused(
    world: World,
) -> None:
    h = world.medical
    _refused(h, OTHER_PARENT, "readChild", childId=world.child_id)
    h.now += timedelta(minutes=1)  # not coalesced with the refusal recorded before
    refused_before = _facts(h)
    h.call(DOCTOR, "readCard", childId=world.child_id)
    granted_before = h.reads.granted
    assert refused_before and granted_before
    world.erase()
    entries = h.call(OTHER_PARENT, "recordAccess", transient={"refusals": refused_before})
    assert entries == []
    (block,) = h.store.read_blocks("medical", h.store.tip("medical").height - 1, 1)
    (tx,) = block.transactions()
    assert list(tx.write_set) == [f"refusals/{person_of(OTHER_PARENT)}"]
    assert not is_sealed(tx.write_set[f"refusals/{person_of(OTHER_PARENT)}"])
    erased = _refused(h, DOCTOR, "recordAccess", transient={"access": granted_before})
    assert str(erased) == "No such child is visible to you."


def test_a_write_sealed_for_the_erased_child_is_refused(world: World) -> None:
    """The report contract reads nothing of the child before it writes an application: the
    seal itself refuses, told to a guardian as the erasure, before and after it is recorded."""
    stale: Transient = {
        "child": world.medical.call(PARENT, "readGuardians", childId=world.child_id)
    }
    h = world.report
    facts = world.facts()
    world.destroy_keys(facts)
    before = ledger_snapshot(h)
    with pytest.raises(NotFoundError, match=r"^No such child is visible to you\.$"):
        h.call(PARENT, "createAdmissionRequest", transient=stale, school="school-b")
    for channel in (world.medical, world.report):
        channel.call(PARENT, "recordErasure", transient={"erasure": facts})
    before = ledger_snapshot(h)
    with pytest.raises(NotFoundError) as caught:
        h.call(PARENT, "createAdmissionRequest", transient=stale, school="school-b")
    assert str(caught.value) == _erased_message(world)
    assert ledger_snapshot(h) == before


# -- ends of consent --------------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["medical", "report"])
def test_the_sweep_removes_the_erased_child_s_ends_without_telling_anyone(
    world: World, channel: str
) -> None:
    h = world.harness(channel)
    world.erase()
    h.now += timedelta(days=40)
    due = h.call(SERVER, "dueConsents")
    # Each child's ends (its emergency access, then its agreement or its report's permission):
    # the erased child's agreement and permission end a day before the other child's.
    erased = [key for key in due if _sealed_for(h, key) == world.child_id]
    others = [key for key in due if _sealed_for(h, key) == world.other_id]
    assert sorted(erased + others) == sorted(due)
    assert len(erased) == len(others) == (2 if channel == "medical" else 1)
    assert h.call(SERVER, "expireConsents", keys=due) == len(others)
    (block,) = h.store.read_blocks(channel, h.store.tip(channel).height - 1, 1)
    (tx,) = block.transactions()
    subjects = {event.payload["subjectId"] for event in tx.events}
    assert len(subjects) == len(others)
    assert not subjects & set(world.ids.values())
    assert all(h.store.read_state(channel, key) is None for key in due)
    assert h.call(SERVER, "dueConsents") == []


def _sealed_for(h: ContractHarness, key: str) -> str:
    stored = h.store.read_state(h.contract.channel, key)
    assert stored is not None
    return sealed_child(stored.json())


# -- the ledger -------------------------------------------------------------------------------


def test_the_ledger_verifies_after_an_erasure(world: World) -> None:
    world.erase()
    for h in (world.medical, world.report):
        verification = verify_channel(h.store, h.contract.channel)
        assert verification.ok, verification.reason
