"""Simulating a transaction: reads record versions, writes are only collected.

As in Fabric, a simulation reads committed state only: it does not see its own
writes. Reads need not come from one snapshot: the committer re-checks every
version read, so a transaction that saw a mix of old and new state is marked
MVCC_READ_CONFLICT and changes nothing. Range reads record the version of each
key returned; keys inserted into the range later are not detected (no phantom
protection), so contracts keep uniqueness rules on point keys.

A paged read (`get_prefix_page`) is for queries, as Fabric's paginated queries
are: it is not recorded in the read-set, so a simulation that paged may not
write, and one that wrote may not page (PagedReadInTransactionError). No
committed transaction ever depends on a page.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from typing import Any

from .base import LedgerStore, prefix_end
from .errors import PagedReadInTransactionError
from .hashing import canonical_json, commitment, new_salt
from .records import (
    Creator,
    Event,
    ForeignReads,
    HistoryEntry,
    JSONValue,
    Proposal,
    StateRecord,
    Version,
)


class TxSimulator:
    """Collects one transaction's read-set, write-set and events against a store."""

    def __init__(self, store: LedgerStore, channel: str) -> None:
        self._store = store
        self.channel = channel
        self._reads: dict[str, Version | None] = {}
        self._seen: dict[str, StateRecord | None] = {}
        self._writes: dict[str, JSONValue | None] = {}
        self._events: list[Event] = []
        self._paged = False

    def reading(self) -> AbstractContextManager[None]:
        """Run the simulation inside this block: its reads then share one connection of the
        store (`LedgerStore.pinned_reads`). Reads outside it work too, each on its own."""
        return self._store.pinned_reads()

    def get_state(self, key: str) -> JSONValue | None:
        """The committed value of `key`, or None if it does not exist."""
        record = self._read(key)
        return None if record is None else record.json()

    def get_version(self, key: str) -> Version | None:
        """The version of `key`'s committed value, None if it does not exist; read as
        `get_state` reads (once per simulation, recorded in the read-set)."""
        record = self._read(key)
        return None if record is None else record.version

    def _read(self, key: str) -> StateRecord | None:
        _check_key(key)
        # A key is read from the store once per simulation: a second read answers from the
        # first, which is also the version the read-set records and the committer checks.
        if key in self._seen:
            record = self._seen[key]
        else:
            record = self._seen[key] = self._store.read_state(self.channel, key)
        self._reads.setdefault(key, None if record is None else record.version)
        return record

    def get_range(self, start: str, end: str = "") -> list[tuple[str, JSONValue]]:
        """Committed (key, value) pairs with start <= key < end, in key order."""
        records = self._store.read_range(self.channel, start, end)
        for record in records:
            self._reads.setdefault(record.key, record.version)
        return [(record.key, record.json()) for record in records]

    def get_prefix(self, prefix: str) -> list[tuple[str, JSONValue]]:
        """Committed (key, value) pairs whose key starts with `prefix`."""
        _check_key(prefix)
        return self.get_range(prefix, prefix_end(prefix))

    def get_prefix_page(
        self, prefix: str, *, after: str | None, limit: int, reverse: bool = True
    ) -> list[tuple[str, JSONValue]]:
        """Up to `limit` committed (key, value) pairs whose key starts with `prefix`, strictly
        after `after` in key order (descending when `reverse`, the default): O(limit) reads.

        For queries only: nothing is recorded in the read-set, and after a paged read the
        simulation refuses writes (PagedReadInTransactionError), as it refuses a paged read
        once it has written.
        """
        _check_key(prefix)
        if self._writes:
            raise PagedReadInTransactionError(
                "A transaction that writes cannot page through a range; page in a query."
            )
        self._paged = True
        records = self._store.read_prefix_page(
            self.channel, prefix, after=after, limit=limit, reverse=reverse
        )
        return [(record.key, record.json()) for record in records]

    def get_history(self, key: str) -> list[HistoryEntry]:
        """Every committed write of `key`, oldest first (not part of the read-set, as in Fabric)."""
        _check_key(key)
        return self._store.read_history(self.channel, key)

    def put_state(self, key: str, value: JSONValue) -> None:
        """Write a JSON value; raises ValueError for None, NaN or values JSON cannot hold."""
        _check_key(key)
        self._refuse_write_after_page()
        if value is None:
            raise ValueError("A state value cannot be empty; use del_state to delete a key.")
        try:
            # A copy through canonical JSON: later changes by the caller cannot leak in.
            self._writes[key] = json.loads(canonical_json(value))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"The value for {key!r} cannot be stored as JSON: {exc}") from exc

    def del_state(self, key: str) -> None:
        _check_key(key)
        self._refuse_write_after_page()
        self._writes[key] = None

    def _refuse_write_after_page(self) -> None:
        if self._paged:
            raise PagedReadInTransactionError(
                "A simulation that paged through a range cannot write: pages are for queries."
            )

    def set_event(self, name: str, payload: JSONValue = None) -> None:
        if not name:
            raise ValueError("An event needs a name.")
        canonical_json(payload)
        self._events.append(Event(name, payload))

    def proposal(
        self,
        *,
        tx_id: str,
        contract: str,
        function: str,
        args: Any,
        creator: Creator,
        timestamp: str,
        foreign_reads: ForeignReads | None = None,
        salt: str | None = None,
    ) -> Proposal:
        """The simulated transaction, ready for the committer.

        It gets a new secret salt (32 random bytes) unless `salt` is given, for
        reproducible hashes in tests; the arguments are kept only as their
        salted digest. `foreign_reads` are reads of other channels it depends on.
        """
        salt = new_salt() if salt is None else salt
        return Proposal(
            tx_id=tx_id,
            channel=self.channel,
            contract=contract,
            function=function,
            args_digest=commitment(salt, canonical_json(args)),
            creator=creator,
            timestamp=timestamp,
            read_set=dict(self._reads),
            write_set=dict(self._writes),
            events=tuple(self._events),
            foreign_reads={name: dict(reads) for name, reads in (foreign_reads or {}).items()},
            salt=salt,
        )


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError("A state key must be a non-empty string.")
