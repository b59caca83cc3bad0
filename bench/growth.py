"""Filling a ledger fast for the growth check: full blocks straight through ChainWriter.

Every fill transaction creates a new key (reading it as absent), so after N
transactions the channel holds N/500 blocks, N transaction records, N state
keys and N history entries: every table, hash and index the commit path
touches has grown by N. The group committer and asyncio are skipped; the same
ChainWriter.commit the committer calls does the validation, hashing and
compare-and-append.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from closed_loop import CHANNEL, update_proposal

from ledger_backends import LedgerStore, Validation
from ledger_backends.chain import ChainWriter

FILL_BLOCK_SIZE = 500
PROGRESS_EVERY_S = 15.0


@dataclass(frozen=True)
class FillResult:
    """How many transactions were committed, and whether the time budget cut the fill short."""

    requested: int
    committed: int
    seconds: float

    @property
    def complete(self) -> bool:
        return self.committed >= self.requested

    @property
    def tx_per_s(self) -> float:
        return self.committed / self.seconds if self.seconds else 0.0


def fill_ledger(
    store: LedgerStore,
    total: int,
    *,
    budget_s: float,
    progress: Callable[[int, float], None],
    first_key: int = 0,
) -> FillResult:
    """Commit `total` one-key transactions in blocks of FILL_BLOCK_SIZE, or stop after budget_s.

    Keys are numbered from `first_key`, so a later fill of the same ledger continues
    with new keys.
    """
    writer = ChainWriter(store, CHANNEL)
    committed = 0
    started = last_report = time.perf_counter()
    while committed < total and time.perf_counter() - started < budget_s:
        size = min(FILL_BLOCK_SIZE, total - committed)
        _commit_block(writer, first_key + committed, size)
        committed += size
        now = time.perf_counter()
        if now - last_report >= PROGRESS_EVERY_S:
            progress(committed, now - started)
            last_report = now
    return FillResult(total, committed, time.perf_counter() - started)


def _commit_block(writer: ChainWriter, first: int, size: int) -> None:
    proposals = [
        update_proposal(f"fill/record-{n:08d}", None, n, "fill") for n in range(first, first + size)
    ]
    receipts = writer.commit(proposals)
    if any(receipt.validation is not Validation.VALID for receipt in receipts):
        raise RuntimeError("A fill transaction was marked as a conflict; the fill keys collide.")
