"""Where a channel's data keys are kept: a key store, beside the chain and never in it.

A child's data key for a channel is stored wrapped (encrypted by the channel's
key-encryption key, see encryption/keyring.py); the store never sees a key in
clear. Unlike the chain, a key store can forget: `destroy` removes the wrapped
key for good and leaves a tombstone with the time of erasure, so the key is
never made again and every value sealed with it stays unreadable.

Every backend (memory, SQLite, PostgreSQL, Redis) implements `KeyStore` and
passes one conformance suite (ledger_backends/testing/keystore_conformance.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A child's key on one channel as stored: wrapped, or destroyed (a tombstone).

    `kek_id` names the key-encryption key that wrapped it (empty for a tombstone);
    `wrapped` is None once destroyed, and `erased_at` is then the canonical
    timestamp of the erasure.
    """

    child: str
    kek_id: str
    wrapped: bytes | None
    erased_at: str | None = None

    @property
    def destroyed(self) -> bool:
        return self.wrapped is None


@dataclass(frozen=True, slots=True)
class Rewrap:
    """One key wrapped anew: replaces `child`'s key only while it is still wrapped by
    `old_kek_id` (so a concurrent destroy or rewrap wins)."""

    child: str
    old_kek_id: str
    new_kek_id: str
    wrapped: bytes


class KeyStore(ABC):
    """Wrapped data keys per (channel, child). Thread-safe; every method is one atomic step."""

    @abstractmethod
    def get(self, channel: str, child: str) -> StoredKey | None:
        """The stored key (or tombstone) of `child` on `channel`; None if there never was one."""

    @abstractmethod
    def add(self, channel: str, child: str, kek_id: str, wrapped: bytes) -> StoredKey:
        """Store `wrapped` as the child's key unless one (or a tombstone) is there already;
        returns what is stored afterwards: the new key, or the earlier key or tombstone,
        which wins. Durable before it returns, at the latest with the next block the
        channel's ledger commits when the store shares the ledger's database."""

    @abstractmethod
    def destroy(self, channel: str, child: str, erased_at: str) -> StoredKey:
        """Remove the child's wrapped key for good, leaving a tombstone (also when there was
        no key); returns the tombstone, the earlier one if it was destroyed already. What
        the backend can do to keep the removed bytes from lingering, it does (SQLite's
        secure_delete and a WAL checkpoint, PostgreSQL's VACUUM)."""

    @abstractmethod
    def wrapped_by_other(self, channel: str, kek_id: str, limit: int) -> list[StoredKey]:
        """Up to `limit` live keys on `channel` wrapped by any key-encryption key but
        `kek_id`, in child order: what a rotation still has to rewrap."""

    @abstractmethod
    def rewrap(self, channel: str, rewraps: Sequence[Rewrap]) -> int:
        """Replace each key still wrapped by its `old_kek_id`, in one atomic step; returns
        how many were replaced."""

    @abstractmethod
    def kek_ids(self, channel: str) -> set[str]:
        """The ids of the key-encryption keys that wrap the live keys of `channel`."""

    @abstractmethod
    def close(self) -> None:
        """Release connections; the store is not used afterwards."""
