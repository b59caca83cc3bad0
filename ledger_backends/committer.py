"""Group commit: many concurrent submissions, one durable block per batch.

A transaction that finds the committer idle is written at once, alone unless
others arrive in the same event-loop pass: a lone caller never waits for a
timer (as PostgreSQL's group commit with `commit_delay = 0`). Under load,
batches form by themselves: while one block is being written the next one
gathers, and it is cut as soon as that block is durable and an event-loop pass
brings no new transaction, when `max_batch` transactions are waiting, or when
`batch_timeout` has passed since the first of them arrived (Fabric's
BatchTimeout), whichever comes first. One durable write per block, not per
transaction.

Blocks are written on threads of their own (`COMMIT_THREADS`, shared by every committer
of the process; each committer writes one block at a time), not on asyncio's default
pool: there a block ready to be written queued behind the simulations waiting for a
thread, and every transaction in it waited with it.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .chain import ChainWriter
from .errors import BackendUnavailableError, LedgerError, ReadConflictError
from .records import Proposal, Receipt, Validation

DEFAULT_BATCH_TIMEOUT_MS = 2.0
COMMIT_THREADS = 8
_commit_threads = ThreadPoolExecutor(COMMIT_THREADS, thread_name_prefix="healthledger-commit")


@dataclass
class CommitStats:
    """What this committer has written, for metrics."""

    blocks: int = 0
    valid: int = 0
    conflicts: int = 0


DEFAULT_MAX_BATCH = 500


class GroupCommitter:
    """Batches proposals for one channel into blocks on an asyncio event loop."""

    def __init__(
        self,
        writer: ChainWriter,
        *,
        batch_timeout_ms: float = DEFAULT_BATCH_TIMEOUT_MS,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1.")
        if batch_timeout_ms < 0:
            raise ValueError("batch_timeout_ms cannot be negative.")
        self.writer = writer
        self.batch_timeout = batch_timeout_ms / 1000
        self.max_batch = max_batch
        self._pending: list[tuple[Proposal, asyncio.Future[Receipt]]] = []
        # When the first transaction now waiting arrived (the loop's clock); for what is left
        # over after a full block, earlier than it arrived, so it is cut without more waiting.
        self._first_arrival = 0.0
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self.stats = CommitStats()

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serve `loop`; a committer last used on a loop that has since ended starts afresh."""
        if self._loop is loop:
            return
        self._loop = loop
        self._pending = []
        self._arrived = asyncio.Event()
        self._task = None

    async def submit(self, proposal: Proposal) -> Receipt:
        """Return once the block holding the proposal is durable.

        Raises ReadConflictError if the transaction was committed as
        MVCC_READ_CONFLICT (it changed nothing), and the store's LedgerError if
        the block could not be appended (nothing was written).
        """
        if self._closing:
            raise LedgerError("The ledger is shutting down and accepts no more transactions.")
        loop = asyncio.get_running_loop()
        self._bind(loop)
        future: asyncio.Future[Receipt] = loop.create_future()
        if not self._pending:
            self._first_arrival = loop.time()
        self._pending.append((proposal, future))
        self._arrived.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"committer:{self.writer.channel}")
        receipt = await future
        if receipt.validation is not Validation.VALID:
            raise ReadConflictError(
                "The transaction read data that another transaction changed first; "
                "it was recorded as a conflict and changed nothing.",
                block_number=receipt.block_number,
            )
        return receipt

    async def close(self) -> None:
        """Commit everything already submitted, then stop."""
        self._closing = True
        if self._task is not None:
            self._arrived.set()
            await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._arrived.clear()
                await self._arrived.wait()
                continue
            deadline = self._first_arrival + self.batch_timeout
            while len(self._pending) < self.max_batch and not self._closing:
                waiting = len(self._pending)
                # One event-loop pass: callers that are ready to submit do so now.
                await asyncio.sleep(0)
                if len(self._pending) == waiting or loop.time() >= deadline:
                    break
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            await self._commit(batch)

    def _fail_waiting(self, cause: BackendUnavailableError) -> None:
        """Fail what queued up while a block failed for want of the store; it was never tried.

        Each of them would otherwise wait its turn and then its own timeout against the
        same unreachable store, so a request's wait would grow with the queue ahead of it.
        Whatever arrives after this is tried afresh, which is how a store that is back
        is noticed.
        """
        waiting, self._pending = self._pending, []
        for _, future in waiting:
            if not future.done():
                future.set_exception(
                    BackendUnavailableError(
                        f"The ledger of channel {self.writer.channel!r} could not be reached "
                        f"({cause}); this transaction was not tried. Nothing was written."
                    )
                )

    async def _commit(self, batch: list[tuple[Proposal, asyncio.Future[Receipt]]]) -> None:
        proposals = [proposal for proposal, _ in batch]
        try:
            write = functools.partial(contextvars.copy_context().run, self.writer.commit, proposals)
            receipts = await asyncio.get_running_loop().run_in_executor(_commit_threads, write)
        except Exception as exc:  # every waiter learns why its block failed
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, BackendUnavailableError):
                self._fail_waiting(exc)
            return
        self.stats.blocks += 1
        valid = sum(receipt.validation is Validation.VALID for receipt in receipts)
        self.stats.valid += valid
        self.stats.conflicts += len(receipts) - valid
        for (_, future), receipt in zip(batch, receipts, strict=True):
            if not future.done():
                future.set_result(receipt)
