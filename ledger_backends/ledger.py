"""One ledger store with its channels: simulation, group commit, reads and verification."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from .base import LedgerStore
from .chain import ChainWriter
from .committer import DEFAULT_BATCH_TIMEOUT_MS, DEFAULT_MAX_BATCH, GroupCommitter
from .records import Block, HistoryEntry, Proposal, Receipt, Tip, utc_now
from .simulation import TxSimulator
from .verify import Verification, verify_channel


class ChannelLedger:
    """A channel's chain on a store: simulate on current state, submit, read, verify.

    Methods without `async` do blocking I/O on the store; call them from a
    worker thread when on an event loop.
    """

    def __init__(
        self,
        store: LedgerStore,
        name: str,
        *,
        batch_timeout_ms: float = DEFAULT_BATCH_TIMEOUT_MS,
        max_batch: int = DEFAULT_MAX_BATCH,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.name = name
        self.writer = ChainWriter(store, name, clock=clock)
        self.committer = GroupCommitter(
            self.writer, batch_timeout_ms=batch_timeout_ms, max_batch=max_batch
        )

    def simulator(self) -> TxSimulator:
        return TxSimulator(self.store, self.name)

    async def submit(self, proposal: Proposal) -> Receipt:
        """Return once the proposal's block is durable (see GroupCommitter.submit)."""
        return await self.committer.submit(proposal)

    def tip(self) -> Tip:
        return self.store.tip(self.name)

    def history(self, key: str) -> list[HistoryEntry]:
        return self.store.read_history(self.name, key)

    def blocks(self, start: int = 0, limit: int = 50) -> list[Block]:
        return self.store.read_blocks(self.name, start, limit)

    def verify(self) -> Verification:
        return verify_channel(self.store, self.name)

    async def close(self) -> None:
        """Finish every submitted commit; the store stays open."""
        await self.committer.close()


class Ledger:
    """A store opened from a URL, handing out one ChannelLedger per channel name."""

    def __init__(
        self,
        store: LedgerStore,
        *,
        batch_timeout_ms: float = DEFAULT_BATCH_TIMEOUT_MS,
        max_batch: int = DEFAULT_MAX_BATCH,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self._batch_timeout_ms = batch_timeout_ms
        self._max_batch = max_batch
        self._clock = clock
        self._channels: dict[str, ChannelLedger] = {}

    def channel(self, name: str) -> ChannelLedger:
        if not name:
            raise ValueError("A channel needs a name.")
        if name not in self._channels:
            self._channels[name] = ChannelLedger(
                self.store,
                name,
                batch_timeout_ms=self._batch_timeout_ms,
                max_batch=self._max_batch,
                clock=self._clock,
            )
        return self._channels[name]

    def verify_all(self) -> list[Verification]:
        """Verify every channel that has blocks in this store."""
        return [verify_channel(self.store, name) for name in self.store.channels()]

    async def aclose(self) -> None:
        """Drain every channel's committer, then close the store."""
        for channel in self._channels.values():
            await channel.close()
        self.store.close()

    def close(self) -> None:
        """Close the store; use aclose when transactions may still be in flight."""
        self.store.close()
