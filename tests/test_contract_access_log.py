"""The access log in the contracts: what each read rule notes, and what `recordAccess` and
`listAccessLog` make of it, on both channels.

A query notes each read of protected data it returns, with the purpose its rule granted,
and each read it refused; `recordAccess`, given those notes as transient data, writes
entries that hold no content, tells the guardians of reads by others, and coalesces
refusals per reader, record and minute; the guardians alone list the entries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import pytest

from chaincode.access_log import OBJECTS, OUTCOMES, PURPOSES
from chaincode.medical import MedicalContract
from chaincode.records import AccessFacts, Transient
from chaincode.report import ReportContract
from chaincode.testing import ContractHarness, FakeCaller, directory_for
from domain.errors import BadInputError, ForbiddenError, NotFoundError
from tests.contract_checks import ENTRY_FIELDS, every_page, items, refused_on

PARENT = FakeCaller("parent-anna", "parents", "parent")
CO_GUARDIAN = FakeCaller("parent-boris", "parents", "parent")
OTHER_PARENT = FakeCaller("parent-olga", "parents", "parent")
DOCTOR = FakeCaller("doctor-ivanova", "hospital", "doctor")
DOCTOR_NONE = FakeCaller("doctor-none", "hospital", "doctor")
SCHOOL_A = FakeCaller("staff-a", "school-a", "school")
SCHOOL_B = FakeCaller("staff-b", "school-b", "school")
HOSPITAL_ADMIN = FakeCaller("admin-hospital", "hospital", "admin")
EVERYONE = (
    PARENT,
    CO_GUARDIAN,
    OTHER_PARENT,
    DOCTOR,
    DOCTOR_NONE,
    SCHOOL_A,
    SCHOOL_B,
    HOSPITAL_ADMIN,
)
GUARDIANS = ["parents/parent-anna", "parents/parent-boris"]
# Words of the card and the report that no entry may hold.
CONTENT = ("Alisa", "peanuts", "asthma", "MMR", "Not for the school", "Fit for school")


@dataclass
class World:
    medical: ContractHarness
    report: ContractHarness
    child_id: str
    report_id: str

    def granted(self, h: ContractHarness) -> list[AccessFacts]:
        return list(h.reads.granted)

    def record(self, h: ContractHarness, caller: FakeCaller, **transient: Any) -> Any:
        return h.call(caller, "recordAccess", transient=cast(Transient, transient))

    def read_and_record(
        self, h: ContractHarness, caller: FakeCaller, function: str, **args: Any
    ) -> Any:
        """A read as the gateway does it: the query, then its notes recorded as the reader."""
        result = h.call(caller, function, **args)
        self.record(h, caller, access=self.granted(h))
        return result

    def guardians_transient(self, caller: FakeCaller) -> Transient:
        return {"child": self.medical.call(caller, "readGuardians", childId=self.child_id)}

    def log(self, channel: str, caller: FakeCaller = PARENT, **args: Any) -> list[Any]:
        """Every entry of the child's log on `channel`, as `caller` lists it."""
        h = self.medical if channel == "medical" else self.report
        transient = self.guardians_transient(caller) if channel == "report" else None

        def page(after: str | None) -> Any:
            return h.call(
                caller,
                "listAccessLog",
                transient=transient,
                childId=self.child_id,
                first=args.get("first", 50),
                after=after,
            )

        return [entry["item"] for p in every_page(page) for entry in p["entries"]]


@pytest.fixture
def world() -> World:
    directory = directory_for(*EVERYONE)
    medical = ContractHarness(MedicalContract(), directory)
    report = ContractHarness(ReportContract(), directory)
    child = medical.call(
        PARENT,
        "registerChild",
        fullName="Alisa Smirnova",
        birthDate="2019-03-04",
        otherGuardians=[CO_GUARDIAN.uid],
    )
    medical.call(CO_GUARDIAN, "acceptGuardianship", childId=child["id"])
    agreement = medical.call(PARENT, "signAgreement", childId=child["id"], doctorUid=DOCTOR.uid)
    medical.call(DOCTOR, "acceptAgreement", id=agreement["id"])
    medical.call(
        DOCTOR,
        "updateMedicalCard",
        childId=child["id"],
        expectedVersion=1,
        patch={
            "allergies": ["peanuts"],
            "chronicConditions": ["asthma"],
            "notes": "Not for the school",
        },
    )
    guardians: Transient = {"child": medical.call(PARENT, "readGuardians", childId=child["id"])}
    admission = report.call(
        PARENT, "createAdmissionRequest", transient=guardians, school="school-a"
    )
    report.call(SCHOOL_A, "acceptAdmissionRequest", id=admission["id"])
    request = report.call(SCHOOL_A, "createReportRequest", admissionRequestId=admission["id"])
    card = medical.call(DOCTOR, "readCard", childId=child["id"])
    made = report.call(
        DOCTOR,
        "createReport",
        transient={"patients": [child["id"]], "card": card, "cardSalt": "5a" * 32},
        reportRequestId=request["id"],
        conclusion="Fit for school",
    )
    return World(medical, report, child["id"], made["id"])


def _facts(world: World, what: str, purpose: str, version: int | None, record: str = "") -> Any:
    return {
        "childId": world.child_id,
        "what": what,
        "recordId": record or world.child_id,
        "version": version,
        "purpose": purpose,
        "guardians": GUARDIANS,
    }


# -- what the read rules note ------------------------------------------------------------


@pytest.mark.parametrize(
    ("reader", "purpose"), [(PARENT, "GUARDIAN"), (CO_GUARDIAN, "GUARDIAN"), (DOCTOR, "TREATMENT")]
)
def test_each_medical_read_notes_what_it_returned_and_under_which_purpose(
    world: World, reader: FakeCaller, purpose: str
) -> None:
    h = world.medical
    h.call(reader, "readChild", childId=world.child_id)
    assert h.reads.granted == [_facts(world, "CHILD", purpose, None)]
    h.call(reader, "readCard", childId=world.child_id)
    assert h.reads.granted == [_facts(world, "MEDICAL_CARD", purpose, 2)]
    # The history up to the current version, whichever page is asked for.
    h.call(reader, "cardHistory", childId=world.child_id, first=1, after="2")
    assert h.reads.granted == [_facts(world, "CARD_HISTORY", purpose, 2)]
    h.call(reader, "listChildren")
    assert h.reads.granted == [_facts(world, "CHILD", purpose, None)]
    assert h.reads.refused == []


def test_a_listed_child_is_a_read_only_when_it_is_on_the_page(world: World) -> None:
    h = world.medical
    second = h.call(PARENT, "registerChild", fullName="Second Child", birthDate="2020-01-01")
    first_page = h.call(PARENT, "listChildren", first=1)
    (listed,) = items(first_page)
    assert first_page["hasMore"]
    assert [facts["childId"] for facts in h.reads.granted] == [listed["id"]]
    assert {listed["id"]} < {world.child_id, second["id"]}


@pytest.mark.parametrize(
    ("reader", "claimed"),
    [(OTHER_PARENT, "GUARDIAN"), (DOCTOR_NONE, "TREATMENT"), (HOSPITAL_ADMIN, "ADMINISTRATION")],
)
@pytest.mark.parametrize(
    ("function", "what"),
    [("readChild", "CHILD"), ("readCard", "MEDICAL_CARD"), ("cardHistory", "CARD_HISTORY")],
)
def test_a_refused_read_of_an_existing_child_is_noted_with_the_claimed_purpose(
    world: World, reader: FakeCaller, claimed: str, function: str, what: str
) -> None:
    h = world.medical
    existing = refused_on(h, reader, function, NotFoundError, childId=world.child_id)
    assert h.reads.refused == [_facts(world, what, claimed, None)]
    missing = refused_on(h, reader, function, NotFoundError, childId="child-missing")
    # Alike for the caller; the contract tells only the gateway that one exists.
    assert str(existing) == str(missing)
    assert h.reads.refused == [None]
    assert h.reads.granted == []


@pytest.mark.parametrize(
    ("reader", "purpose"),
    [(PARENT, "GUARDIAN"), (DOCTOR, "TREATMENT"), (SCHOOL_A, "SCHOOL_ADMISSION")],
)
def test_report_content_is_a_read_only_when_it_is_returned(
    world: World, reader: FakeCaller, purpose: str
) -> None:
    world.report.call(PARENT, "approveReport", id=world.report_id, schools=["school-a"])
    h = world.report
    expected = [_facts(world, "REPORT_CONTENT", purpose, None, world.report_id)]
    assert h.call(reader, "readReport", id=world.report_id)["content"] is not None
    assert h.reads.granted == expected
    assert h.call(reader, "readReport", id=world.report_id, withContent=False)["content"] is None
    assert h.reads.granted == []
    listed = items(h.call(reader, "listReports"))
    assert [r["content"] is not None for r in listed] == [True]
    assert h.reads.granted == expected
    h.call(reader, "listReports", withContent=False)
    assert h.reads.granted == h.reads.refused == []


def test_a_school_refused_the_content_it_asked_for_is_noted_refused(world: World) -> None:
    h = world.report
    # School A asked for the report but holds no permission: it sees it, not its content.
    assert h.call(SCHOOL_A, "readReport", id=world.report_id)["content"] is None
    assert h.reads.refused == [
        _facts(world, "REPORT_CONTENT", "SCHOOL_ADMISSION", None, world.report_id)
    ]
    refused_on(h, SCHOOL_B, "readReport", NotFoundError, id=world.report_id)
    assert h.reads.refused == [
        _facts(world, "REPORT_CONTENT", "SCHOOL_ADMISSION", None, world.report_id)
    ]
    refused_on(h, SCHOOL_B, "readReport", NotFoundError, id="report-missing")
    assert h.reads.refused == [None]


def test_writes_and_internal_reads_note_nothing(world: World) -> None:
    h = world.medical
    h.call(PARENT, "readGuardians", childId=world.child_id)
    assert h.reads.granted == h.reads.refused == []
    h.call(DOCTOR, "listPatientIds")
    assert h.reads.granted == h.reads.refused == []


# -- recordAccess ------------------------------------------------------------------------


def test_only_the_gateway_records_reads(world: World) -> None:
    for h in (world.medical, world.report):
        refused_on(h, PARENT, "recordAccess", ForbiddenError)


def test_recorded_entries_are_who_read_what_when_and_why_and_nothing_read(world: World) -> None:
    card = world.read_and_record(world.medical, DOCTOR, "readCard", childId=world.child_id)
    world.read_and_record(world.medical, PARENT, "readChild", childId=world.child_id)
    doctor_read, parent_read = reversed(world.log("medical"))
    assert doctor_read == {
        "id": doctor_read["id"],
        "at": doctor_read["at"],
        "childId": world.child_id,
        "readerUid": DOCTOR.uid,
        "readerOrg": "hospital",
        "readerRole": "doctor",
        "what": "MEDICAL_CARD",
        "recordId": world.child_id,
        "version": card["version"],
        "purpose": "TREATMENT",
        "outcome": "PERMITTED",
        "blockNumber": doctor_read["blockNumber"],
    }
    assert parent_read["what"] == "CHILD" and parent_read["purpose"] == "GUARDIAN"
    assert parent_read["blockNumber"] == doctor_read["blockNumber"] + 1
    assert doctor_read["id"].startswith("access-t")
    for entry in (doctor_read, parent_read):
        assert set(entry) == ENTRY_FIELDS
        assert entry["what"] in OBJECTS and entry["purpose"] in PURPOSES
        assert entry["outcome"] in OUTCOMES
        assert not any(word in json.dumps(entry) for word in CONTENT)


def test_the_block_number_is_the_block_of_the_recording_transaction(world: World) -> None:
    world.read_and_record(world.medical, DOCTOR, "readCard", childId=world.child_id)
    (entry,) = world.log("medical")
    tip = world.medical.store.tip("medical")
    assert entry["blockNumber"] == tip.height - 1
    (block,) = world.medical.store.read_blocks("medical", entry["blockNumber"], 1)
    assert [tx.function for tx in block.transactions()] == ["recordAccess"]


def test_guardians_are_told_of_reads_by_anyone_but_themselves(world: World) -> None:
    h = world.medical
    world.read_and_record(h, DOCTOR, "readCard", childId=world.child_id)
    world.read_and_record(h, PARENT, "readCard", childId=world.child_id)
    doctor_block, parent_block = h.store.read_blocks(
        "medical", h.store.tip("medical").height - 2, 2
    )
    (doctor_tx,) = doctor_block.transactions()
    (parent_tx,) = parent_block.transactions()
    assert [(e.name, e.payload) for e in doctor_tx.events] == [
        ("AccessRecorded", {"subjectId": world.child_id, "people": GUARDIANS, "orgs": []})
    ]
    assert parent_tx.events == ()


def test_refusals_are_coalesced_per_reader_record_and_minute(world: World) -> None:
    h = world.medical
    refusal = _facts(world, "MEDICAL_CARD", "TREATMENT", None)
    history = _facts(world, "CARD_HISTORY", "TREATMENT", None)
    # One batch naming a record twice, then the same minute again: one entry per record.
    world.record(h, DOCTOR_NONE, refusals=[refusal, refusal, history])
    world.record(h, DOCTOR_NONE, refusals=[refusal])
    entries = world.log("medical")
    assert sorted((e["what"], e["outcome"]) for e in entries) == [
        ("CARD_HISTORY", "REFUSED"),
        ("MEDICAL_CARD", "REFUSED"),
    ]
    assert all(e["readerUid"] == DOCTOR_NONE.uid and e["version"] is None for e in entries)
    # The next minute, the same record is recorded again.
    h.now += timedelta(minutes=1)
    world.record(h, DOCTOR_NONE, refusals=[refusal])
    assert len(world.log("medical")) == 3


def test_a_reader_refused_only_missing_records_writes_alike(world: World) -> None:
    """A transaction is written either way: the chain does not tell which records exist."""
    h = world.medical
    height = h.store.tip("medical").height
    world.record(h, DOCTOR_NONE, refusals=[])
    assert h.store.tip("medical").height == height + 1
    (block,) = h.store.read_blocks("medical", height, 1)
    (tx,) = block.transactions()
    assert (tx.function, tx.events) == ("recordAccess", ())
    assert list(tx.write_set) == ["refusals/hospital/doctor-none"]
    assert world.log("medical") == []


# -- listAccessLog -------------------------------------------------------------------------


def test_both_channels_keep_their_own_reads(world: World) -> None:
    world.report.call(PARENT, "approveReport", id=world.report_id, schools=["school-a"])
    world.read_and_record(world.medical, DOCTOR, "readCard", childId=world.child_id)
    world.read_and_record(world.report, SCHOOL_A, "readReport", id=world.report_id)
    assert [e["what"] for e in world.log("medical")] == ["MEDICAL_CARD"]
    (school_read,) = world.log("report")
    assert (school_read["what"], school_read["purpose"], school_read["recordId"]) == (
        "REPORT_CONTENT",
        "SCHOOL_ADMISSION",
        world.report_id,
    )
    # The school's read is on `report` only; `medical` never holds a trace of it, sealed
    # or opened.
    medical_state = [r.value for r in world.medical.store.scan_state("medical")]
    medical_state += [json.dumps(value) for _, value in world.medical.opened_state()]
    assert not any(SCHOOL_A.uid in value for value in medical_state)
    assert any(SCHOOL_A.uid in json.dumps(value) for _, value in world.report.opened_state())


def test_entries_are_listed_newest_first_a_page_at_a_time(world: World) -> None:
    for _ in range(5):
        world.read_and_record(world.medical, PARENT, "readCard", childId=world.child_id)
    entries = world.log("medical", first=2)
    assert len(entries) == 5
    assert [e["at"] for e in entries] == sorted((e["at"] for e in entries), reverse=True)
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)


@pytest.mark.parametrize("reader", [OTHER_PARENT, DOCTOR, DOCTOR_NONE, HOSPITAL_ADMIN])
def test_only_guardians_list_the_medical_log(world: World, reader: FakeCaller) -> None:
    world.read_and_record(world.medical, DOCTOR, "readCard", childId=world.child_id)
    for child_id in (world.child_id, "child-missing"):
        error = refused_on(world.medical, reader, "listAccessLog", NotFoundError, childId=child_id)
        assert str(error) == "No such child is visible to you."


@pytest.mark.parametrize("reader", [OTHER_PARENT, DOCTOR, SCHOOL_A])
def test_only_guardians_the_gateway_vouches_for_list_the_report_log(
    world: World, reader: FakeCaller
) -> None:
    h = world.report
    refused_on(h, reader, "listAccessLog", NotFoundError, childId=world.child_id)
    # Transient data naming the child's guardians does not make anyone else one of them.
    vouched = world.guardians_transient(PARENT)
    with pytest.raises(NotFoundError):
        h.call(reader, "listAccessLog", transient=vouched, childId=world.child_id)
    with pytest.raises(NotFoundError):
        h.call(PARENT, "listAccessLog", transient=vouched, childId="child-other")


def test_a_position_from_another_child_is_refused(world: World) -> None:
    world.read_and_record(world.medical, PARENT, "readCard", childId=world.child_id)
    world.read_and_record(world.medical, PARENT, "readCard", childId=world.child_id)
    first = world.medical.call(PARENT, "listAccessLog", childId=world.child_id, first=1)
    other = world.medical.call(PARENT, "registerChild", fullName="Other", birthDate="2020-01-01")
    refused_on(
        world.medical,
        PARENT,
        "listAccessLog",
        BadInputError,
        childId=other["id"],
        after=first["entries"][0]["position"],
    )
