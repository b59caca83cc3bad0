"""What every ledger backend must guarantee.

A backend stores, per channel, a chain of blocks, the world state and the key
history. It never decides what goes into a block: the chain writer
(`chain.py`) validates and hashes, the backend only reads and appends. Every
backend is proved by the same conformance suite (`ledger_backends.testing`).

Guarantees every implementation gives:

- `append_if_tip` is atomic and exclusive: the block, its transactions, its
  state writes, its history entries and its tree nodes become visible together or not at all,
  and only if the channel's tip is still the expected one. Two appenders in
  different OS processes can never both extend the same tip.
- `append_if_tip` also appends only if every foreign read the commit carries
  (keys of other channels of this store, with the versions its transactions
  saw) is still current, checked in the same atomic step: a change to such a
  key commits either before the append (which then returns False) or after
  the appended block, never in between. One exception, on PostgreSQL only: a
  key read as absent cannot be locked, so an insert of it racing with the
  append may commit first; the block is then as if it had come before it.
- Nothing is appended after the commit's `not_after` instant, if it has one.
- An append that returned True is durable as far as the backend's settings
  allow (documented per backend in docs/BACKENDS.md).
- Reads return exactly the canonical texts that were appended.
- `read_prefix_page` reads one consistent state and costs O(limit) on an
  ordered index of the channel's keys, however many keys the prefix holds.
- A store that cannot be reached, or stops answering, raises
  `BackendUnavailableError` within a few seconds (per call: PostgreSQL at most
  about 3.5 s, Redis about 1.5 s; see each backend); no method blocks
  indefinitely on a dead or silent connection.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import astuple
from typing import Any

from .merkle import NodeId
from .records import Block, BlockCommit, HistoryEntry, StateRecord, Tip, Version


class LedgerStore(ABC):
    """Storage of blocks, world state and history for any number of channels."""

    url: str

    @classmethod
    @abstractmethod
    def from_url(cls, url: str, *, create: bool = True) -> LedgerStore:
        """Open the store a ledger URL names (`registry.open_store` calls this for its scheme).

        With `create`, whatever the ledger needs and lacks is made, so that it can be served.
        Without, nothing is created or changed and the store is opened to be read: it raises
        LedgerNotFoundError when nothing is stored at the URL and NotALedgerError when what
        is stored there is not a ledger, as far as the backend can tell the two apart from an
        empty ledger.
        """

    @abstractmethod
    def channels(self) -> list[str]:
        """Names of the channels that have at least one block, sorted."""

    @abstractmethod
    def tip(self, channel: str) -> Tip:
        """The channel's height and last block hash; `Tip.empty()` if it has no block."""

    @abstractmethod
    def read_state(self, channel: str, key: str) -> StateRecord | None:
        """The key's current value and version, read together; None if absent."""

    def pinned_reads(self) -> AbstractContextManager[None]:
        """Until the block ends, the reads this thread makes may share one connection.

        A simulation's reads run inside it: a store that checks a connection out of a pool
        per read checks one out per simulation instead. Every read still returns committed
        state, though on some stores the reads inside one block share a snapshot (SQLite's
        read transaction). This default pins nothing.
        """
        return nullcontext()

    @abstractmethod
    def read_versions(self, channel: str, keys: Iterable[str]) -> dict[str, Version]:
        """Current versions of those keys that exist (absent keys are left out)."""

    @abstractmethod
    def read_range(self, channel: str, start: str, end: str) -> list[StateRecord]:
        """Keys with start <= key < end in code-point order; an empty end means no upper bound."""

    @abstractmethod
    def read_prefix_page(
        self, channel: str, prefix: str, *, after: str | None, limit: int, reverse: bool
    ) -> list[StateRecord]:
        """Up to `limit` keys starting with `prefix`, in code-point order (descending if `reverse`).

        With `after`, only keys strictly after it in that direction: below it when
        `reverse`, above it otherwise (it need not exist nor start with `prefix`). Deleted
        keys are never returned; a key written after an earlier page was read is found by
        the next page if it lies beyond that page's last key. No key when `limit` <= 0.
        """

    @abstractmethod
    def read_history(self, channel: str, key: str) -> list[HistoryEntry]:
        """Every valid write of the key, oldest first."""

    @abstractmethod
    def read_blocks(self, channel: str, start: int, limit: int) -> list[Block]:
        """Up to `limit` consecutive blocks from number `start`, in order."""

    @abstractmethod
    def read_tree_nodes(self, channel: str, ids: Iterable[NodeId]) -> dict[NodeId, bytes]:
        """The stored nodes of the channel's Merkle tree among `ids`, read in one round trip.

        Nodes that are not stored are left out.
        """

    @abstractmethod
    def locate_transaction(self, channel: str, tx_id: str) -> tuple[int, int] | None:
        """(block number, index in the block) of the first transaction with that id, or None."""

    def read_first_leaf(self, channel: str, number: int) -> int | None:
        """The tree leaf of block `number`'s first transaction; None for a block older than
        trees or no such block. Backends that can read a header alone do so."""
        found = self.read_blocks(channel, number, 1)
        return found[0].first_leaf if found else None

    @abstractmethod
    def append_if_tip(self, channel: str, expected: Tip, commit: BlockCommit) -> bool:
        """Append the block and apply its changes atomically if the tip is still `expected`.

        Returns False, having changed nothing, when another appender moved the
        tip, a read in `commit.foreign_reads` is no longer current (on
        PostgreSQL also while a transaction not yet committed is writing it),
        or `commit.not_after` has passed; the chain writer then builds again.
        """

    @abstractmethod
    def scan_state(self, channel: str) -> Iterator[StateRecord]:
        """Every key of the world state, for verification."""

    @abstractmethod
    def scan_history(self, channel: str) -> Iterator[HistoryEntry]:
        """Every history entry of every key, for verification (any order)."""

    def scan_state_rows(self, channel: str) -> Iterator[tuple[Any, ...]]:
        """`scan_state` as rows (key, value, block number, transaction index): what a
        verification loads into its temporary database. A store that reads rows (the SQL
        ones) gives them as it reads them, without making a record of each."""
        for record in self.scan_state(channel):
            yield (record.key, record.value, *record.version)

    def scan_history_rows(self, channel: str) -> Iterator[tuple[Any, ...]]:
        """`scan_history` as rows, HistoryEntry's fields in their order."""
        for entry in self.scan_history(channel):
            yield astuple(entry)

    def sqlite_file_uri(self) -> str | None:
        """The URI that opens this store's SQLite file to read only, for a verification to
        attach and copy the stored rows from with SQL; None for a store that is no such file."""
        return None

    @abstractmethod
    def ping(self) -> None:
        """Raise `BackendUnavailableError` unless the store answers now."""

    @abstractmethod
    def close(self) -> None:
        """Release connections; a closed store may be opened again from its URL."""


def prefix_end(prefix: str) -> str:
    """The least key above every key that starts with `prefix`; "" (no bound) if there is none.

    The keys with the prefix are those with `prefix <= key < prefix_end(prefix)`.
    """
    stem = prefix.rstrip("\U0010ffff")
    if not stem:
        return ""
    following = ord(stem[-1]) + 1
    # No stored key holds a surrogate (the gateway refuses them), and a bound must encode.
    if 0xD800 <= following <= 0xDFFF:
        following = 0xE000
    return stem[:-1] + chr(following)
