"""Refused reads recorded in the background (chaincode/refusals.py): one write per reader,
channel and delay, never before the delay unless settled, and a failed write only logged."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from chaincode.base import Caller
from chaincode.records import AccessFacts
from chaincode.refusals import RefusalRecorder
from chaincode.testing import FakeCaller
from ledger_backends import BackendUnavailableError

DOCTOR = FakeCaller("doctor-none", "hospital", "doctor")
OTHER = FakeCaller("admin-hospital", "hospital", "admin")
DELAY = 0.2


def _facts(record: str) -> AccessFacts:
    return {
        "childId": record,
        "what": "MEDICAL_CARD",
        "recordId": record,
        "version": None,
        "purpose": "TREATMENT",
        "guardians": ["parents/anna"],
    }


class Writes:
    """What the recorder asked to write, and when."""

    def __init__(self, *, fail: bool = False) -> None:
        self.done: list[tuple[str, str, list[str], float]] = []
        self.fail = fail

    async def __call__(self, reader: Caller, channel: str, facts: list[AccessFacts]) -> None:
        self.done.append((reader.uid, channel, [f["recordId"] for f in facts], time.monotonic()))
        if self.fail:
            raise BackendUnavailableError("The ledger store is unreachable.")


def test_one_readers_refusals_gather_into_one_write_after_the_delay() -> None:
    writes = Writes()

    async def story() -> float:
        recorder = RefusalRecorder(writes, delay=DELAY)
        started = time.monotonic()
        recorder.add(DOCTOR, "medical", [_facts("child-1"), None])
        recorder.add(DOCTOR, "medical", [None])
        recorder.add(DOCTOR, "medical", [_facts("child-2")])
        recorder.add(OTHER, "medical", [None])
        recorder.add(DOCTOR, "report", [_facts("report-1")])
        assert writes.done == []  # nothing is written while the caller is answered
        await asyncio.sleep(DELAY * 3)
        return started

    started = asyncio.run(story())
    assert sorted(w[:3] for w in writes.done) == [
        ("admin-hospital", "medical", []),
        ("doctor-none", "medical", ["child-1", "child-2"]),
        ("doctor-none", "report", ["report-1"]),
    ]
    assert all(at - started >= DELAY for *_, at in writes.done)


def test_refusals_while_a_write_is_due_wait_for_the_next_delay() -> None:
    writes = Writes()

    async def story() -> None:
        recorder = RefusalRecorder(writes, delay=DELAY)
        recorder.add(DOCTOR, "medical", [_facts("child-1")])
        await asyncio.sleep(DELAY * 1.5)
        recorder.add(DOCTOR, "medical", [_facts("child-2")])
        await asyncio.sleep(DELAY * 2)

    asyncio.run(story())
    assert [w[2] for w in writes.done] == [["child-1"], ["child-2"]]
    assert writes.done[1][3] - writes.done[0][3] >= DELAY


def test_settle_writes_what_is_gathering_at_once() -> None:
    writes = Writes()

    async def story() -> None:
        recorder = RefusalRecorder(writes, delay=60)
        recorder.add(DOCTOR, "medical", [_facts("child-1")])
        await recorder.settle()
        assert [w[2] for w in writes.done] == [["child-1"]]
        await recorder.settle()  # nothing left
        assert len(writes.done) == 1

    asyncio.run(asyncio.wait_for(story(), 5))


def test_refusals_left_by_a_loop_that_ended_are_written_by_the_next() -> None:
    writes = Writes()
    recorder = RefusalRecorder(writes, delay=60)

    async def refuse() -> None:
        recorder.add(DOCTOR, "medical", [_facts("child-1")])

    asyncio.run(refuse())  # the loop ends while the refusal gathers
    asyncio.run(recorder.settle())
    assert [w[2] for w in writes.done] == [["child-1"]]


def test_a_write_that_fails_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    writes = Writes(fail=True)

    async def story() -> None:
        recorder = RefusalRecorder(writes, delay=0)
        recorder.add(DOCTOR, "medical", [_facts("child-1")])
        await asyncio.sleep(0.1)
        recorder.add(DOCTOR, "medical", [_facts("child-2")])
        await recorder.settle()

    with caplog.at_level(logging.WARNING, logger="healthledger.access"):
        asyncio.run(story())
    assert [w[2] for w in writes.done] == [["child-1"], ["child-2"]]
    assert len([r for r in caplog.records if "were not recorded" in r.getMessage()]) == 2
