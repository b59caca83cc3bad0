"""Group commit: batching by time and size, durability before return, draining on close."""

from __future__ import annotations

import asyncio
import time

import pytest

from ledger_backends import (
    BackendUnavailableError,
    ChannelLedger,
    Ledger,
    LedgerError,
    ReadConflictError,
    Validation,
)
from ledger_backends.chain import ChainWriter
from ledger_backends.memory import MemoryStore
from ledger_backends.records import BlockCommit, Tip
from ledger_backends.testing import proposal


def test_a_lone_submission_is_committed_at_once_not_after_the_batch_timeout() -> None:
    async def run() -> float:
        channel = ChannelLedger(MemoryStore(), "medical", batch_timeout_ms=500)
        await channel.submit(proposal("warm-up", writes={"w": 1}))
        started = time.monotonic()
        await channel.submit(proposal("t", writes={"k": 1}))
        elapsed = time.monotonic() - started
        await channel.close()
        return elapsed

    assert asyncio.run(run()) < 0.25


def test_submissions_that_arrive_together_share_a_block() -> None:
    async def run() -> list[int]:
        channel = ChannelLedger(MemoryStore(), "medical", batch_timeout_ms=500)
        receipts = await asyncio.gather(
            *(channel.submit(proposal(f"t{n}", writes={f"k{n}": n})) for n in range(20))
        )
        await channel.close()
        return [receipt.block_number for receipt in receipts]

    assert asyncio.run(run()) == [0] * 20


def test_under_load_blocks_gather_while_one_is_written_and_never_wait_long() -> None:
    """Submitters that go on submitting as their receipts come: each block but the first
    holds those who came back while it was being written, and no submission waits anywhere
    near the batch timeout for others."""

    async def run() -> tuple[int, int, float]:
        store = MemoryStore()
        channel = ChannelLedger(store, "medical", batch_timeout_ms=1_000)
        slowest = 0.0

        async def submitter(n: int) -> None:
            nonlocal slowest
            for round_ in range(10):
                started = time.monotonic()
                await channel.submit(proposal(f"s{n}-{round_}", writes={f"s{n}-{round_}": 1}))
                slowest = max(slowest, time.monotonic() - started)

        await asyncio.gather(*(submitter(n) for n in range(50)))
        await channel.close()
        return store.tip("medical").height, channel.committer.stats.valid, slowest

    blocks, committed, slowest = asyncio.run(run())
    assert committed == 500
    assert blocks <= 50  # about one block per round of the 50 submitters, never one per tx
    assert slowest < 0.5


def test_a_full_batch_is_cut_without_waiting_for_the_timeout() -> None:
    async def run() -> tuple[float, int]:
        store = MemoryStore()
        channel = ChannelLedger(store, "medical", batch_timeout_ms=5_000, max_batch=10)
        started = time.monotonic()
        await asyncio.gather(
            *(channel.submit(proposal(f"t{n}", writes={f"k{n}": n})) for n in range(10))
        )
        elapsed = time.monotonic() - started
        await channel.close()
        return elapsed, store.tip("medical").height

    elapsed, height = asyncio.run(run())
    assert elapsed < 2 and height == 1


def test_submit_returns_only_once_the_block_is_stored() -> None:
    async def run() -> None:
        store = MemoryStore()
        channel = ChannelLedger(store, "medical")
        receipt = await channel.submit(proposal("t", writes={"k": 1}))
        assert store.tip("medical").height == receipt.block_number + 1
        await channel.close()

    asyncio.run(run())


def test_conflicts_inside_one_block_fail_only_the_later_transaction() -> None:
    async def run() -> list[object]:
        channel = ChannelLedger(MemoryStore(), "medical", batch_timeout_ms=20)
        results = await asyncio.gather(
            channel.submit(proposal("first", reads={"k": None}, writes={"k": 1})),
            channel.submit(proposal("second", reads={"k": None}, writes={"k": 2})),
            return_exceptions=True,
        )
        await channel.close()
        return list(results)

    first, second = asyncio.run(run())
    assert not isinstance(first, Exception)
    assert isinstance(second, ReadConflictError) and second.block_number == 0


def test_close_commits_what_was_submitted_then_refuses_more() -> None:
    async def run() -> None:
        store = MemoryStore()
        channel = ChannelLedger(store, "medical", batch_timeout_ms=1_000)
        pending = asyncio.ensure_future(channel.submit(proposal("t", writes={"k": 1})))
        await asyncio.sleep(0)
        await channel.close()
        assert (await pending).block_number == 0
        with pytest.raises(LedgerError, match="shutting down"):
            await channel.submit(proposal("late", writes={"k": 2}))

    asyncio.run(run())


class _FailingStore(MemoryStore):
    """A store whose appends fail: the fault a lost disk or network would cause."""

    def append_if_tip(self, channel: str, expected: Tip, commit: BlockCommit) -> bool:
        raise OSError("disk on fire")


def test_a_failed_append_fails_every_waiter_and_stores_nothing() -> None:
    async def run() -> list[object]:
        channel = ChannelLedger(_FailingStore(), "medical")
        results = await asyncio.gather(
            *(channel.submit(proposal(f"t{n}", writes={f"k{n}": n})) for n in range(5)),
            return_exceptions=True,
        )
        await channel.close()
        assert channel.tip().height == 0
        return list(results)

    assert all(isinstance(r, OSError) for r in asyncio.run(run()))


class _UnreachableStore(MemoryStore):
    """Every append waits out a timeout, then finds the store unreachable."""

    def __init__(self) -> None:
        super().__init__()
        self.appends = 0

    def append_if_tip(self, channel: str, expected: Tip, commit: BlockCommit) -> bool:
        self.appends += 1
        time.sleep(0.3)
        raise BackendUnavailableError("The store did not answer in time.")


def test_what_queued_behind_a_block_that_found_the_store_unreachable_fails_with_it() -> None:
    # Otherwise each queued batch waits its turn and then its own timeout: waits would add up.
    async def run() -> tuple[list[object], float]:
        store = _UnreachableStore()
        channel = ChannelLedger(store, "medical", batch_timeout_ms=1)
        first = asyncio.ensure_future(channel.submit(proposal("t0", writes={"k0": 0})))
        await asyncio.sleep(0.1)  # t0's block is being appended
        started = time.monotonic()
        queued = [channel.submit(proposal(f"t{n}", writes={f"k{n}": n})) for n in (1, 2)]
        results = await asyncio.gather(first, *queued, return_exceptions=True)
        waited = time.monotonic() - started
        assert store.appends == 1 and channel.tip().height == 0
        await channel.close()
        return list(results), waited

    results, waited = asyncio.run(run())
    assert all(isinstance(r, BackendUnavailableError) for r in results)
    assert "was not tried. Nothing was written." in str(results[1])
    assert waited < 0.3  # only the rest of t0's attempt, not attempts of their own


class _GoneAfterAppendStore(MemoryStore):
    """A store that takes a block, then stops answering before it can be read back."""

    def __init__(self) -> None:
        super().__init__()
        self.gone = False

    def append_if_tip(self, channel: str, expected: Tip, commit: BlockCommit) -> bool:
        super().append_if_tip(channel, expected, commit)
        self.gone = True
        raise BackendUnavailableError("The connection broke before the answer came.")

    def tip(self, channel: str) -> Tip:
        if self.gone:
            raise BackendUnavailableError("The store does not answer.")
        return super().tip(channel)


def test_a_store_lost_between_append_and_read_back_says_the_outcome_is_unknown() -> None:
    store = _GoneAfterAppendStore()
    with pytest.raises(BackendUnavailableError, match="whether it was stored") as raised:
        ChainWriter(store, "medical").commit([proposal("t1", writes={"k": 1})])
    assert raised.value.outcome_known is False
    store.gone = False
    assert store.tip("medical").height == 1  # here it had been stored: unknown was the truth


@pytest.mark.parametrize(("timeout", "batch"), [(-1, 10), (2, 0)])
def test_nonsense_batch_settings_are_refused(timeout: float, batch: int) -> None:
    with pytest.raises(ValueError):
        ChannelLedger(MemoryStore(), "medical", batch_timeout_ms=timeout, max_batch=batch)


def test_one_channel_ledger_serves_successive_event_loops() -> None:
    channel = ChannelLedger(MemoryStore(), "medical")

    async def submit(n: int) -> int:
        return (await channel.submit(proposal(f"t{n}", writes={"k": n}))).block_number

    assert [asyncio.run(submit(n)) for n in range(3)] == [0, 1, 2]


def test_foreign_reads_are_checked_where_the_ledger_was_told_the_channel_lives() -> None:
    medical, report = Ledger(MemoryStore()), Ledger(MemoryStore())
    ChainWriter(medical.store, "medical").commit([proposal("accept", writes={"active/1": 1})])
    depends = proposal(
        "r", channel="report", writes={"r": 1}, foreign_reads={"medical": {"active/1": (0, 0)}}
    )

    async def submit() -> object:
        try:
            return await report.channel("report").submit(depends)
        except ReadConflictError as refused:
            return refused

    # Not told: medical is looked for in report's own store, found empty: refused, not let through.
    assert isinstance(asyncio.run(submit()), ReadConflictError)
    channels = {"medical": medical.channel("medical"), "report": report.channel("report")}
    report.locate(channels)
    assert report.store_of("medical") is medical.store
    assert report.store_of("report") is report.store
    receipt = asyncio.run(submit())
    assert receipt.validation == Validation.VALID  # type: ignore[attr-defined]
