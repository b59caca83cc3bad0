"""The key store of a `memory://` ledger: a dictionary that lives as long as the process."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from .base import KeyStore, Rewrap, StoredKey


class MemoryKeyStore(KeyStore):
    def __init__(self) -> None:
        self._keys: dict[tuple[str, str], StoredKey] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, *, same_database_as_ledger: bool = False) -> MemoryKeyStore:
        del url, same_database_as_ledger  # nothing outlives the process to be ordered with
        return cls()

    def get(self, channel: str, child: str) -> StoredKey | None:
        with self._lock:
            return self._keys.get((channel, child))

    def add(self, channel: str, child: str, kek_id: str, wrapped: bytes) -> StoredKey:
        with self._lock:
            return self._keys.setdefault((channel, child), StoredKey(child, kek_id, wrapped))

    def destroy(self, channel: str, child: str, erased_at: str) -> StoredKey:
        with self._lock:
            stored = self._keys.get((channel, child))
            if stored is not None and stored.destroyed:
                return stored
            tombstone = StoredKey(child, "", None, erased_at)
            self._keys[(channel, child)] = tombstone
            return tombstone

    def wrapped_by_other(self, channel: str, kek_id: str, limit: int) -> list[StoredKey]:
        with self._lock:
            found = sorted(
                (stored for (ch, _), stored in self._keys.items() if ch == channel),
                key=lambda stored: stored.child,
            )
        return [s for s in found if not s.destroyed and s.kek_id != kek_id][:limit]

    def rewrap(self, channel: str, rewraps: Sequence[Rewrap]) -> int:
        replaced = 0
        with self._lock:
            for change in rewraps:
                stored = self._keys.get((channel, change.child))
                if stored is None or stored.destroyed or stored.kek_id != change.old_kek_id:
                    continue
                self._keys[(channel, change.child)] = StoredKey(
                    change.child, change.new_kek_id, change.wrapped
                )
                replaced += 1
        return replaced

    def kek_ids(self, channel: str) -> set[str]:
        with self._lock:
            return {
                stored.kek_id
                for (ch, _), stored in self._keys.items()
                if ch == channel and not stored.destroyed
            }

    def close(self) -> None:
        with self._lock:
            self._keys.clear()
