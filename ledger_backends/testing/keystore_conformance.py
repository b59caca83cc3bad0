"""The conformance suite every key store passes, written once (see keystores/base.py).

A backend's test module subclasses `KeyStoreConformance` once, naming the
backend (`backend`, a name in `BACKENDS`) and switching off with class
attributes what it cannot do; a test of a capability switched off is skipped,
and so is every test of a backend this run does not select. Each test gets a
key store opened on an empty scratch URL (`scratch.py`), closed afterwards.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest

from ..keystores import KeyStore, Rewrap, StoredKey, open_key_store
from .scratch import scratch_url
from .selection import SELECTION_VARIABLE, selected_backends

T = TypeVar("T")

OLD_KEK = "0123456789abcdef"
NEW_KEK = "fedcba9876543210"
THIRD_KEK = "00112233445566aa"
ERASED_AT = "2025-03-01T10:00:00.000000Z"
LATER = "2025-04-01T10:00:00.000000Z"
THREADS = 8


def wrapped(n: int) -> bytes:
    """A distinct wrapped key of the usual size (12-byte nonce, 32-byte key, 16-byte tag),
    with zero and high bytes in it, as real ciphertext has."""
    return bytes([n % 256, 0, 255]) + bytes((n * 7 + i) % 256 for i in range(57))


class KeyStoreConformance:
    """Behaviour every key store shares; subclass once per backend as `TestXxxKeyStore`."""

    backend: str  # a name in BACKENDS
    same_database_as_ledger = True  # how the store is opened (the default configuration)
    persistent = True  # keys survive closing the store and opening the URL again
    shared = True  # two stores opened on one URL see each other's keys

    url: str
    store: KeyStore

    @pytest.fixture(autouse=True)
    def scratch_key_store(self) -> Iterator[None]:
        """A key store on an empty scratch URL of this backend for each test, closed after."""
        if self.backend not in selected_backends():
            pytest.skip(f"{self.backend} is not in {SELECTION_VARIABLE}")
        with scratch_url(self.backend) as url:
            self.url = url
            self.store = self.open()
            try:
                yield
            finally:
                self.store.close()

    def open(self) -> KeyStore:
        return open_key_store(self.url, same_database_as_ledger=self.same_database_as_ledger)

    def in_threads(self, task: Callable[[int], T]) -> list[T]:
        """`task(n)` for n in range(THREADS), all started together on their own threads."""
        start = threading.Barrier(THREADS)

        def run(n: int) -> T:
            start.wait(timeout=30)
            return task(n)

        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            return list(pool.map(run, range(THREADS)))

    # -- one key -------------------------------------------------------------------------

    def test_a_key_added_reads_back_exactly(self) -> None:
        assert self.store.get("medical", "child-1") is None
        added = self.store.add("medical", "child-1", OLD_KEK, wrapped(1))
        assert added == StoredKey("child-1", OLD_KEK, wrapped(1), None)
        assert not added.destroyed
        assert self.store.get("medical", "child-1") == added

    def test_adding_when_a_key_is_there_returns_the_earlier_key(self) -> None:
        first = self.store.add("medical", "child-1", OLD_KEK, wrapped(1))
        again = self.store.add("medical", "child-1", NEW_KEK, wrapped(2))
        assert again == first
        assert self.store.get("medical", "child-1") == first

    def test_destroy_leaves_a_tombstone_with_the_first_date_and_is_idempotent(self) -> None:
        self.store.add("medical", "child-1", OLD_KEK, wrapped(1))
        tombstone = self.store.destroy("medical", "child-1", ERASED_AT)
        assert tombstone == StoredKey("child-1", "", None, ERASED_AT)
        assert tombstone.destroyed
        assert self.store.destroy("medical", "child-1", LATER) == tombstone
        assert self.store.get("medical", "child-1") == tombstone

    def test_a_destroyed_key_is_never_made_again(self) -> None:
        self.store.add("medical", "child-1", OLD_KEK, wrapped(1))
        tombstone = self.store.destroy("medical", "child-1", ERASED_AT)
        assert self.store.add("medical", "child-1", OLD_KEK, wrapped(2)) == tombstone
        assert self.store.get("medical", "child-1") == tombstone

    def test_destroying_a_key_never_made_leaves_a_tombstone(self) -> None:
        tombstone = self.store.destroy("medical", "never-made", ERASED_AT)
        assert tombstone == StoredKey("never-made", "", None, ERASED_AT)
        assert self.store.get("medical", "never-made") == tombstone
        assert self.store.add("medical", "never-made", OLD_KEK, wrapped(1)) == tombstone

    def test_children_ids_and_wrapped_bytes_of_any_kind_are_kept_exactly(self) -> None:
        every_byte = bytes(range(256))
        for child in ("Zoë", "child/with:colons", "名前", "x" * 200):
            added = self.store.add("medical", child, OLD_KEK, every_byte)
            assert self.store.get("medical", child) == added
            assert added.child == child and added.wrapped == every_byte

    # -- channels ------------------------------------------------------------------------

    def test_channels_are_separate(self) -> None:
        medical = self.store.add("medical", "child-1", OLD_KEK, wrapped(1))
        report = self.store.add("report", "child-1", NEW_KEK, wrapped(2))
        assert report == StoredKey("child-1", NEW_KEK, wrapped(2), None)
        self.store.destroy("medical", "child-1", ERASED_AT)
        assert self.store.get("report", "child-1") == report
        assert self.store.get("medical", "child-1") != medical
        assert self.store.get("other", "child-1") is None
        assert self.store.kek_ids("medical") == set()
        assert self.store.kek_ids("report") == {NEW_KEK}
        assert self.store.wrapped_by_other("report", OLD_KEK, 10) == [report]
        assert self.store.wrapped_by_other("medical", NEW_KEK, 10) == []

    # -- rotation ------------------------------------------------------------------------

    def test_kek_ids_name_the_keks_of_live_keys_only(self) -> None:
        assert self.store.kek_ids("medical") == set()
        self.store.add("medical", "a", OLD_KEK, wrapped(1))
        self.store.add("medical", "b", NEW_KEK, wrapped(2))
        self.store.add("medical", "c", THIRD_KEK, wrapped(3))
        self.store.destroy("medical", "c", ERASED_AT)
        self.store.destroy("medical", "d", ERASED_AT)
        assert self.store.kek_ids("medical") == {OLD_KEK, NEW_KEK}

    def test_wrapped_by_other_lists_live_keys_of_other_keks_in_child_order(self) -> None:
        for n, child in enumerate(["é", "b", "Z", "a", "c"]):
            self.store.add("medical", child, OLD_KEK, wrapped(n))
        self.store.add("medical", "done", NEW_KEK, wrapped(9))
        self.store.destroy("medical", "c", ERASED_AT)
        children = [s.child for s in self.store.wrapped_by_other("medical", NEW_KEK, 10)]
        assert children == ["Z", "a", "b", "é"]  # code-point order, "c" destroyed, "done" new
        page = self.store.wrapped_by_other("medical", NEW_KEK, 2)
        assert page == [self.store.get("medical", "Z"), self.store.get("medical", "a")]
        assert self.store.wrapped_by_other("medical", NEW_KEK, 0) == []

    def test_rewrap_replaces_only_keys_still_wrapped_by_the_old_kek(self) -> None:
        self.store.add("medical", "a", OLD_KEK, wrapped(1))
        self.store.add("medical", "b", OLD_KEK, wrapped(2))
        self.store.add("medical", "moved", THIRD_KEK, wrapped(3))  # rewrapped by someone else
        self.store.add("medical", "gone", OLD_KEK, wrapped(4))
        tombstone = self.store.destroy("medical", "gone", ERASED_AT)
        moved = self.store.get("medical", "moved")
        replaced = self.store.rewrap(
            "medical",
            [
                Rewrap("a", OLD_KEK, NEW_KEK, wrapped(11)),
                Rewrap("b", OLD_KEK, NEW_KEK, wrapped(12)),
                Rewrap("moved", OLD_KEK, NEW_KEK, wrapped(13)),
                Rewrap("gone", OLD_KEK, NEW_KEK, wrapped(14)),
                Rewrap("never-made", OLD_KEK, NEW_KEK, wrapped(15)),
            ],
        )
        assert replaced == 2
        assert self.store.get("medical", "a") == StoredKey("a", NEW_KEK, wrapped(11))
        assert self.store.get("medical", "b") == StoredKey("b", NEW_KEK, wrapped(12))
        assert self.store.get("medical", "moved") == moved
        assert self.store.get("medical", "gone") == tombstone
        assert self.store.get("medical", "never-made") is None
        assert self.store.kek_ids("medical") == {NEW_KEK, THIRD_KEK}
        assert [s.child for s in self.store.wrapped_by_other("medical", NEW_KEK, 10)] == ["moved"]
        # Run again, as a second rotating process would: nothing matches any more.
        assert self.store.rewrap("medical", [Rewrap("a", OLD_KEK, NEW_KEK, wrapped(21))]) == 0
        assert self.store.get("medical", "a") == StoredKey("a", NEW_KEK, wrapped(11))
        assert self.store.rewrap("medical", []) == 0

    def test_rewrap_is_on_one_channel_only(self) -> None:
        self.store.add("medical", "a", OLD_KEK, wrapped(1))
        report = self.store.add("report", "a", OLD_KEK, wrapped(2))
        assert self.store.rewrap("medical", [Rewrap("a", OLD_KEK, NEW_KEK, wrapped(3))]) == 1
        assert self.store.get("report", "a") == report

    # -- concurrency and sharing -----------------------------------------------------------

    def test_concurrent_adds_of_one_child_all_get_the_same_key(self) -> None:
        results = self.in_threads(
            lambda n: self.store.add("medical", "child-1", f"{n:016x}", wrapped(n))
        )
        stored = self.store.get("medical", "child-1")
        assert stored is not None and not stored.destroyed
        assert results == [stored] * THREADS
        assert stored.wrapped == wrapped(int(stored.kek_id, 16))

    def test_concurrent_destroys_all_get_one_tombstone(self) -> None:
        self.store.add("medical", "child-1", OLD_KEK, wrapped(1))
        results = self.in_threads(
            lambda n: self.store.destroy("medical", "child-1", f"2025-03-0{n + 1}T00:00:00Z")
        )
        tombstone = self.store.get("medical", "child-1")
        assert tombstone is not None and tombstone.destroyed
        assert results == [tombstone] * THREADS

    def test_concurrent_rewraps_of_one_key_replace_it_once(self) -> None:
        self.store.add("medical", "child-1", OLD_KEK, wrapped(1))
        counts = self.in_threads(
            lambda n: self.store.rewrap(
                "medical", [Rewrap("child-1", OLD_KEK, f"{n:016x}", wrapped(n))]
            )
        )
        assert sorted(counts) == [0] * (THREADS - 1) + [1]
        stored = self.store.get("medical", "child-1")
        assert stored is not None and stored.kek_id == f"{counts.index(1):016x}"

    def test_two_stores_on_one_url_see_each_others_keys(self) -> None:
        if not self.shared:
            pytest.skip("every store of this backend is its own")
        other = self.open()
        try:
            added = self.store.add("medical", "child-1", OLD_KEK, wrapped(1))
            assert other.get("medical", "child-1") == added
            assert other.add("medical", "child-1", NEW_KEK, wrapped(2)) == added
            tombstone = other.destroy("medical", "child-1", ERASED_AT)
            assert self.store.get("medical", "child-1") == tombstone
            assert self.store.add("medical", "child-1", OLD_KEK, wrapped(3)) == tombstone
        finally:
            other.close()

    def test_reopening_keeps_every_key_and_tombstone(self) -> None:
        if not self.persistent:
            pytest.skip("this backend keeps nothing after close")
        live = self.store.add("medical", "a", OLD_KEK, wrapped(1))
        tombstone = self.store.destroy("report", "b", ERASED_AT)
        self.store.close()
        self.store = self.open()
        assert self.store.get("medical", "a") == live
        assert self.store.get("report", "b") == tombstone
        assert self.store.kek_ids("medical") == {OLD_KEK}
