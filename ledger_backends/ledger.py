"""One ledger store with its channels: simulation, group commit, reads and verification."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from .base import LedgerStore
from .chain import ChainWriter
from .committer import DEFAULT_BATCH_TIMEOUT_MS, DEFAULT_MAX_BATCH, GroupCommitter
from .errors import LedgerDamagedError
from .proofs import TreeProofs
from .records import Block, HistoryEntry, Proposal, Receipt, Tip, utc_now
from .simulation import TxSimulator
from .verify import Verification, verify_channel


class ChannelLedger:
    """A channel's chain on a store: simulate on current state, submit, read, verify.

    Once this object knows the chain is damaged, it refuses every submission
    with LedgerDamagedError, before anything is written, until a verification
    of the channel passes again. It knows when its own `verify` failed, or when
    its chain writer refused a tip block that no longer matches its hashes (see
    ChainWriter). Damage it has not been shown is not refused: run `verify`
    (the `verifyChannel` query, `healthledger verify`) to find it. The
    knowledge is this process's own; other processes on the same store learn
    it from their own checks. Reads are served either way.

    Methods without `async` do blocking I/O on the store; call them from a
    worker thread when on an event loop. `store_of` tells where other channels
    live, for transactions with foreign reads (see ChainWriter).
    """

    def __init__(
        self,
        store: LedgerStore,
        name: str,
        *,
        batch_timeout_ms: float = DEFAULT_BATCH_TIMEOUT_MS,
        max_batch: int = DEFAULT_MAX_BATCH,
        clock: Callable[[], datetime] = utc_now,
        store_of: Callable[[str], LedgerStore] | None = None,
    ) -> None:
        self.store = store
        self.name = name
        self.writer = ChainWriter(store, name, clock=clock, store_of=store_of)
        self.committer = GroupCommitter(
            self.writer, batch_timeout_ms=batch_timeout_ms, max_batch=max_batch
        )
        self._damage: tuple[int, str] | None = None  # (first bad block, reason) last found
        self.proofs = TreeProofs(store, name)

    def simulator(self) -> TxSimulator:
        return TxSimulator(self.store, self.name)

    async def submit(self, proposal: Proposal) -> Receipt:
        """Return once the proposal's block is durable (see GroupCommitter.submit).

        Raises LedgerDamagedError, having written nothing, while the chain is known damaged.
        """
        if self._damage is not None:
            raise LedgerDamagedError(self.name, *self._damage)
        try:
            return await self.committer.submit(proposal)
        except LedgerDamagedError as exc:
            self._damage = (exc.first_bad_block, exc.reason)
            raise

    def tip(self) -> Tip:
        return self.store.tip(self.name)

    def history(self, key: str) -> list[HistoryEntry]:
        return self.store.read_history(self.name, key)

    def blocks(self, start: int = 0, limit: int = 50) -> list[Block]:
        return self.store.read_blocks(self.name, start, limit)

    def verify(self) -> Verification:
        """Verify the whole chain (verify_channel); a failure refuses writes, a pass allows them."""
        result = verify_channel(self.store, self.name)
        if result.ok:
            self._damage = None
        else:
            assert result.first_bad_block is not None and result.reason is not None
            self._damage = (result.first_bad_block, result.reason)
        return result

    async def close(self) -> None:
        """Finish every submitted commit; the store stays open."""
        await self.committer.close()


class Ledger:
    """A store opened from a URL, handing out one ChannelLedger per channel name.

    A transaction on one of its channels may depend on reads of another
    channel (foreign reads). That channel is taken to live in this store
    unless `locate` says otherwise; reads of a channel looked for in the wrong
    store find nothing, so such transactions fail as conflicts, never pass.
    """

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
        self._elsewhere: dict[str, LedgerStore] = {}

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
                store_of=self.store_of,
            )
        return self._channels[name]

    def locate(self, channels: Mapping[str, ChannelLedger]) -> None:
        """Learn which store holds each of `channels` (a server opens one Ledger per URL)."""
        for name, channel in channels.items():
            if channel.store is self.store:
                self._elsewhere.pop(name, None)
            else:
                self._elsewhere[name] = channel.store

    def store_of(self, channel: str) -> LedgerStore:
        """The store that holds `channel`: this ledger's own unless `locate` named another."""
        return self._elsewhere.get(channel, self.store)

    async def aclose(self) -> None:
        """Drain every channel's committer, then close the store."""
        for channel in self._channels.values():
            await channel.close()
        self.store.close()

    def close(self) -> None:
        """Close the store; use aclose when transactions may still be in flight."""
        self.store.close()
