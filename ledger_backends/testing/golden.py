"""Reproducible proposals, the golden chain every backend must hash byte for byte, and a
way to submit proposals concurrently from a test."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ..hashing import sha256_hex
from ..ledger import ChannelLedger, Ledger
from ..records import Creator, Event, ForeignReads, Proposal, Version

# Block hashes of `golden_proposals()` committed as three blocks with `golden_clock()`.
# Every backend must reproduce them byte for byte; change them only with the hash format.
GOLDEN_BLOCK_HASHES = [
    "6e1f56206ade846a70d7fbdbe07766d44f596ceb205d77a16e63f1033d019d6b",
    "34f0cdf43adc62b3099d4bbb758cfc4fe90287b22d2fe3a7e1be884e277c9ae1",
    "f4b9b4c2f7d415cf469d81c9a9b992959141d864774b87167f3f399200fb7dc6",
]

ALICE = Creator(uid="alice", msp="ParentsMSP")
DOCTOR = Creator(uid="dr-house", msp="HospitalMSP")


def golden_clock() -> Callable[[], datetime]:
    """A clock that starts at a fixed instant and ticks one second per call."""
    moments = iter(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=n) for n in range(10**6))
    return lambda: next(moments)


def proposal(
    tx_id: str,
    *,
    channel: str = "medical",
    reads: dict[str, Version | None] | None = None,
    writes: dict[str, object] | None = None,
    creator: Creator = ALICE,
    events: tuple[Event, ...] = (),
    foreign_reads: ForeignReads | None = None,
    salt: str | None = None,
) -> Proposal:
    """A proposal with a fixed salt derived from `tx_id`, so its hashes are reproducible."""
    return Proposal(
        tx_id=tx_id,
        channel=channel,
        contract="medical",
        function="test",
        args_digest="0" * 64,
        creator=creator,
        timestamp="2026-01-01T00:00:00.000000Z",
        read_set=reads or {},
        write_set=writes or {},
        events=events,
        foreign_reads=foreign_reads or {},
        salt=sha256_hex(f"salt:{tx_id}") if salt is None else salt,
    )


def golden_proposals() -> list[list[Proposal]]:
    """Three blocks exercising writes, deletes, conflicts, events, Unicode, floats and a
    foreign read."""
    return [
        [
            proposal(
                "tx-a",
                reads={"child/1": None},
                writes={"child/1": {"fullName": "Émile Zola", "heightCm": 101.5}},
                events=(Event("ChildRegistered", {"childId": "1"}),),
            ),
            proposal("tx-b", writes={"card/1": {"version": 1, "allergies": []}}),
            proposal("tx-c", reads={"child/1": None}, writes={"child/1": {"fullName": "x"}}),
        ],
        [
            proposal(
                "tx-d",
                reads={"card/1": (0, 1)},
                writes={"card/1": {"version": 2, "allergies": ["pollen"]}},
                creator=DOCTOR,
                foreign_reads={"report": {"request/1": None}},
            ),
            proposal("tx-e", writes={"tmp/ключ": {"n": 1}}),
        ],
        [proposal("tx-f", reads={"tmp/ключ": (1, 1)}, writes={"tmp/ключ": None})],
    ]


def submit_all(
    ledger: Ledger, channel: str, proposals: list[Proposal], **options: Any
) -> list[object]:
    """Submit concurrently through a group committer on a new event loop.

    Results are receipts or the exceptions raised; options go to ChannelLedger.
    """

    async def run() -> list[object]:
        target = ChannelLedger(ledger.store, channel, **options)
        results = await asyncio.gather(
            *(target.submit(p) for p in proposals), return_exceptions=True
        )
        await target.close()
        return list(results)

    return asyncio.run(run())
