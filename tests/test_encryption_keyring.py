"""A channel's keyring: data keys made once per child, wrapped, cached, destroyed, rotated."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from encryption import (
    ChildErasedError,
    Erased,
    Kek,
    KekError,
    KekSource,
    Keyring,
    Sealer,
    begin_rotation,
    finish_rotation,
    write_kek_file,
)
from ledger_backends.keystores import open_key_store
from ledger_backends.keystores.base import KeyStore, Rewrap, StoredKey
from ledger_backends.keystores.memory import MemoryKeyStore
from ledger_backends.testing import scratch_url
from ledger_backends.testing.selection import needs_backend

ERASED_AT = "2025-03-04T05:06:07.000000Z"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _roundtrip(writer: Keyring, reader: Keyring, child: str, value: object) -> object:
    sealed = Sealer(writer, "tx-1").seal(f"cards/{child}", value, child)
    return Sealer(reader, "tx-2").open(f"cards/{child}", sealed)


@pytest.fixture
def kek_file(tmp_path: Path) -> Iterator[KekSource]:
    source = KekSource("medical", path=tmp_path / "keys" / "medical.kek")
    assert source.path is not None
    write_kek_file(source.path, Kek.generate())
    yield source


# --- keys made, found, destroyed ----------------------------------------------------------


def test_a_child_key_is_made_once_wrapped_and_found_again() -> None:
    kek = Kek.generate()
    store = MemoryKeyStore()
    keyring = Keyring("medical", [kek], store)
    assert keyring.opening_key("c1") is None
    assert store.get("medical", "c1") is None
    keyring.sealing_key("c1")
    stored = store.get("medical", "c1")
    assert stored is not None and stored.kek_id == kek.id and stored.wrapped is not None
    assert len(stored.wrapped) == 12 + 32 + 16  # nonce, key, tag
    assert keyring.opening_key("c1") is not None
    # Another keyring (another process) on the same store and KEK uses the same key.
    other = Keyring("medical", [kek], store)
    assert _roundtrip(keyring, other, "c1", {"allergy": "peanuts"}) == {"allergy": "peanuts"}
    assert store.get("medical", "c1") == stored


def test_each_child_and_channel_gets_its_own_key() -> None:
    kek = Kek.generate()
    store = MemoryKeyStore()
    medical = Keyring("medical", [kek], store)
    report = Keyring("report", [kek], store)
    medical.sealing_key("c1")
    medical.sealing_key("c2")
    report.sealing_key("c1")
    wrapped = {
        store.get(channel, child).wrapped  # type: ignore[union-attr]
        for channel, child in [("medical", "c1"), ("medical", "c2"), ("report", "c1")]
    }
    assert len(wrapped) == 3


def test_a_wrapped_key_moved_to_another_child_does_not_unwrap() -> None:
    kek = Kek.generate()
    store = MemoryKeyStore()
    keyring = Keyring("medical", [kek], store)
    keyring.sealing_key("c1")
    stored = store.get("medical", "c1")
    assert stored is not None and stored.wrapped is not None
    store.add("medical", "c2", kek.id, stored.wrapped)
    with pytest.raises(KekError, match=r"^channel medical: a data key does not unwrap"):
        keyring.opening_key("c2")


def test_destroy_tombstones_the_key_for_good() -> None:
    store = MemoryKeyStore()
    keyring = Keyring("medical", [Kek.generate()], store)
    keyring.sealing_key("c1")
    tombstone = keyring.destroy("c1", ERASED_AT)
    assert tombstone.destroyed and tombstone.erased_at == ERASED_AT
    assert keyring.opening_key("c1") is None
    assert keyring.erased_at("c1") == ERASED_AT
    with pytest.raises(ChildErasedError) as refused:
        keyring.sealing_key("c1")
    assert refused.value.child == "c1" and refused.value.erased_at == ERASED_AT
    assert "c1" in str(refused.value) and "medical" in str(refused.value)
    # Idempotent: the first date stays; never made again, also in a fresh keyring.
    assert keyring.destroy("c1", "2030-01-01T00:00:00.000000Z").erased_at == ERASED_AT
    fresh = Keyring("medical", [Kek.generate()], store)
    with pytest.raises(ChildErasedError):
        fresh.sealing_key("c1")
    assert fresh.erased_at("c1") == ERASED_AT


def test_a_child_never_seen_can_be_destroyed_and_is_then_never_keyed() -> None:
    keyring = Keyring("medical", [Kek.generate()], MemoryKeyStore())
    assert keyring.erased_at("c9") is None
    keyring.destroy("c9", ERASED_AT)
    assert keyring.opening_key("c9") is None
    with pytest.raises(ChildErasedError):
        keyring.sealing_key("c9")


def test_a_keyring_needs_a_kek_of_its_own_channel(kek_file: KekSource) -> None:
    with pytest.raises(ValueError, match="needs a key-encryption key"):
        Keyring("medical", [], MemoryKeyStore())
    with pytest.raises(ValueError, match="not channel report's"):
        Keyring("report", kek_file, MemoryKeyStore())


def test_a_missing_kek_file_fails_when_the_keyring_is_made(tmp_path: Path) -> None:
    source = KekSource("medical", path=tmp_path / "nothing.kek")
    with pytest.raises(KekError, match=r"^channel medical: .* is missing"):
        Keyring("medical", source, MemoryKeyStore())


# --- check() ------------------------------------------------------------------------------


def test_check_passes_with_the_right_kek_and_on_an_empty_store() -> None:
    kek = Kek.generate()
    store = MemoryKeyStore()
    Keyring("medical", [kek], store).check()
    Keyring("medical", [kek], store).sealing_key("c1")
    Keyring("medical", [kek], store).check()


def test_check_refuses_a_wrong_kek_naming_the_channel(kek_file: KekSource) -> None:
    store = MemoryKeyStore()
    right = Kek.generate()
    Keyring("medical", [right], store).sealing_key("c1")
    with pytest.raises(KekError) as refused:
        Keyring("medical", kek_file, store).check()
    message = str(refused.value)
    assert message.startswith("channel medical: ")
    assert right.id in message and str(kek_file.path) in message
    assert right.to_text() not in message


def test_check_unwraps_a_key_of_every_kek_in_use() -> None:
    old, new = Kek.generate(), Kek.generate()
    store = MemoryKeyStore()
    Keyring("medical", [old], store).sealing_key("c1")
    both = Keyring("medical", [old, new], store)
    both.sealing_key("c2")  # new keys are wrapped by the last KEK
    assert store.kek_ids("medical") == {old.id, new.id}
    both.check()
    # A damaged key wrapped by the second KEK, first in child order, is found.
    store.add("medical", "c0", new.id, b"\x00" * 60)
    with pytest.raises(KekError, match=f"^channel medical: .*{new.id}.*damaged"):
        Keyring("medical", [old, new], store).check()


def test_check_finds_a_damaged_key_among_three_keks() -> None:
    keks = [Kek.generate() for _ in range(3)]
    store = MemoryKeyStore()
    for number, kek in enumerate(keks):
        for child in range(5):
            Keyring("medical", [kek], store).sealing_key(f"c{number}-{child}")
    Keyring("medical", keks, store).check()
    store.add("medical", "c2-9", keks[2].id, b"\x00" * 60)
    for child in range(5):
        store.destroy("medical", f"c2-{child}", ERASED_AT)
    with pytest.raises(KekError, match="damaged"):
        Keyring("medical", keks, store).check()


# --- KEKs that come and go ----------------------------------------------------------------


def test_an_unknown_kek_reloads_the_source_once(kek_file: KekSource) -> None:
    store = MemoryKeyStore()
    stale = Keyring("medical", kek_file, store, cache_seconds=0)
    stale.sealing_key("c1")
    sealed = Sealer(stale, "tx-1").seal("cards/c1", {"n": 1}, "c1")
    # Another process rotates the file and the keys.
    old, new = begin_rotation(kek_file)
    assert Keyring("medical", kek_file, store).rotate(new) == 1
    finish_rotation(kek_file, old)
    assert store.kek_ids("medical") == {new.id}
    assert Sealer(stale, "tx-2").open("cards/c1", sealed) == {"n": 1}
    stale.check()
    # Keys made from now on are wrapped by the KEK the reload found.
    stale.sealing_key("c2")
    assert store.kek_ids("medical") == {new.id}


def test_an_unknown_kek_without_a_source_to_reload_is_an_error() -> None:
    store = MemoryKeyStore()
    Keyring("medical", [Kek.generate()], store).sealing_key("c1")
    keyring = Keyring("medical", [Kek.generate()], store)
    with pytest.raises(KekError, match=r"^channel medical: a data key is wrapped by"):
        keyring.opening_key("c1")


# --- rotation -----------------------------------------------------------------------------


def test_rotate_rewraps_every_live_key_in_batches() -> None:
    old, new = Kek.generate(), Kek.generate()
    store = MemoryKeyStore()
    keyring = Keyring("medical", [old], store, cache_seconds=0)
    sealed = {
        f"c{n}": Sealer(keyring, "tx-1").seal(f"cards/c{n}", {"n": n}, f"c{n}") for n in range(7)
    }
    keyring.destroy("c3", ERASED_AT)
    assert keyring.rotate(new, batch=2) == 6
    assert store.kek_ids("medical") == {new.id}
    assert keyring.rotate(new, batch=2) == 0
    only_new = Keyring("medical", [new], store)
    only_new.check()
    for n in range(7):
        opened = Sealer(only_new, "tx-2").open(f"cards/c{n}", sealed[f"c{n}"])
        assert opened == ({"n": n} if n != 3 else Erased("c3"))
    # The rotating keyring knows the new KEK from then on: it reads the rewrapped keys.
    for n in (0, 6):
        assert Sealer(keyring, "tx-2").open(f"cards/c{n}", sealed[f"c{n}"]) == {"n": n}
    # Keys made after the rotation began are wrapped by the new KEK.
    keyring.sealing_key("c8")
    assert store.get("medical", "c8").kek_id == new.id  # type: ignore[union-attr]


class _ObservedStore(MemoryKeyStore):
    """A memory store that tells when a rotation is between its first and last rewrap."""

    def __init__(self) -> None:
        super().__init__()
        self.rewraps_started = threading.Event()
        self.rotation_done = threading.Event()

    def rewrap(self, channel: str, rewraps: Sequence[Rewrap]) -> int:
        self.rewraps_started.set()
        replaced = super().rewrap(channel, rewraps)
        threading.Event().wait(0.002)  # give the reader turns between batches
        return replaced


def test_keys_stay_readable_from_another_thread_while_rotating(kek_file: KekSource) -> None:
    store = _ObservedStore()
    children = [f"c{n:03}" for n in range(120)]
    writer = Keyring("medical", kek_file, store)
    sealed = {c: Sealer(writer, "tx-1").seal(f"cards/{c}", {"c": c}, c) for c in children}
    _, new = begin_rotation(kek_file)
    # Another process's keyring, loaded while the rotation is under way: it knows both KEKs.
    reader = Keyring("medical", kek_file, store, cache_seconds=0)
    rotating = Keyring("medical", kek_file, store, cache_seconds=0)
    failures: list[BaseException] = []
    reads_during = 0

    def read_loop() -> None:
        nonlocal reads_during
        try:
            while not store.rotation_done.is_set():
                for child in children:
                    for keyring in (reader, rotating):
                        opened = Sealer(keyring, "tx-2").open(f"cards/{child}", sealed[child])
                        assert opened == {"c": child}
                    if store.rewraps_started.is_set() and not store.rotation_done.is_set():
                        reads_during += 1
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=read_loop)
    thread.start()
    try:
        assert rotating.rotate(new, batch=3) == len(children)
    finally:
        store.rotation_done.set()
        thread.join(timeout=30)
    assert not failures, failures
    assert reads_during > 0
    assert store.kek_ids("medical") == {new.id}


class _FailingStore(MemoryKeyStore):
    """A memory store whose rewrap fails after `allowed` calls: a rotation cut short."""

    def __init__(self, allowed: int) -> None:
        super().__init__()
        self.allowed = allowed

    def rewrap(self, channel: str, rewraps: Sequence[Rewrap]) -> int:
        if self.allowed == 0:
            raise ConnectionError("the store went away")
        self.allowed -= 1
        return super().rewrap(channel, rewraps)


def test_an_interrupted_rotation_resumes_with_the_same_next_key(kek_file: KekSource) -> None:
    store = _FailingStore(allowed=2)
    writer = Keyring("medical", kek_file, store)
    sealed = {f"c{n}": Sealer(writer, "t").seal(f"k/c{n}", n, f"c{n}") for n in range(10)}
    old, new = begin_rotation(kek_file)
    with pytest.raises(ConnectionError):
        Keyring("medical", kek_file, store).rotate(new, batch=3)
    assert store.kek_ids("medical") == {old.id, new.id}  # half rewrapped
    # The rotation is run again, by a new process.
    store.allowed = 100
    resumed_old, resumed_new = begin_rotation(kek_file)
    assert (resumed_old, resumed_new) == (old, new)
    assert Keyring("medical", kek_file, store).rotate(resumed_new, batch=3) == 4
    finish_rotation(kek_file, old)
    assert store.kek_ids("medical") == {new.id}
    after = Keyring("medical", kek_file, store)
    after.check()
    for n in range(10):
        assert Sealer(after, "t").open(f"k/c{n}", sealed[f"c{n}"]) == n


def test_a_rotation_leaves_a_key_destroyed_meanwhile_destroyed() -> None:
    old, new = Kek.generate(), Kek.generate()
    store = MemoryKeyStore()
    keyring = Keyring("medical", [old], store)
    keyring.sealing_key("c1")
    stale = store.wrapped_by_other("medical", new.id, 10)
    keyring.destroy("c1", ERASED_AT)
    rewrapped_wrong = [Rewrap(s.child, s.kek_id, new.id, b"x" * 60) for s in stale]
    assert store.rewrap("medical", rewrapped_wrong) == 0
    assert keyring.rotate(new) == 0
    assert store.get("medical", "c1") == StoredKey("c1", "", None, ERASED_AT)


# --- the cache ----------------------------------------------------------------------------


def test_a_destroy_through_this_keyring_is_seen_at_once() -> None:
    keyring = Keyring("medical", [Kek.generate()], MemoryKeyStore(), cache_seconds=3600)
    keyring.sealing_key("c1")
    assert keyring.opening_key("c1") is not None
    keyring.destroy("c1", ERASED_AT)
    assert keyring.opening_key("c1") is None
    with pytest.raises(ChildErasedError):
        keyring.sealing_key("c1")


def test_a_destroy_through_another_keyring_is_seen_after_cache_seconds() -> None:
    kek = Kek.generate()
    store = MemoryKeyStore()
    clock = FakeClock()
    here = Keyring("medical", [kek], store, cache_seconds=5.0, clock=clock)
    elsewhere = Keyring("medical", [kek], store)
    here.sealing_key("c1")
    elsewhere.destroy("c1", ERASED_AT)
    clock.now += 4.9
    assert here.opening_key("c1") is not None  # still cached
    assert here.erased_at("c1") is None
    clock.now += 0.2
    assert here.opening_key("c1") is None
    assert here.erased_at("c1") == ERASED_AT
    clock.now += 10**9  # a tombstone is cached for good, and stays one
    with pytest.raises(ChildErasedError):
        here.sealing_key("c1")


class _CountingStore(MemoryKeyStore):
    def __init__(self) -> None:
        super().__init__()
        self.gets = 0

    def get(self, channel: str, child: str) -> StoredKey | None:
        self.gets += 1
        return super().get(channel, child)


def test_a_cached_key_is_not_read_again_until_it_expires() -> None:
    store = _CountingStore()
    clock = FakeClock()
    keyring = Keyring("medical", [Kek.generate()], store, cache_seconds=5.0, clock=clock)
    keyring.sealing_key("c1")
    before = store.gets
    for _ in range(10):
        keyring.opening_key("c1")
    assert store.gets == before
    clock.now += 6
    keyring.opening_key("c1")
    assert store.gets == before + 1


# --- threads ------------------------------------------------------------------------------


class _GatheringStore(MemoryKeyStore):
    """Holds the first `parties` offers of a key until all have offered one: every thread
    found no key in its keyring's cache, and each makes one."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(parties, timeout=10)
        self.waiting = parties
        self.added: list[bytes] = []
        self._count = threading.Lock()

    def add(self, channel: str, child: str, kek_id: str, wrapped: bytes) -> StoredKey:
        with self._count:
            self.added.append(wrapped)
            wait = self.waiting > 0
            self.waiting -= 1
        if wait:
            self.barrier.wait()
        return super().add(channel, child, kek_id, wrapped)


def test_eight_threads_making_the_first_key_of_a_child_end_with_one_key() -> None:
    threads = 8
    store = _GatheringStore(threads)
    kek = Kek.generate()
    keyring = Keyring("medical", [kek], store)
    sealed: list[object] = [None] * threads
    failures: list[BaseException] = []

    def make(number: int) -> None:
        try:
            sealed[number] = Sealer(keyring, f"tx-{number}").seal("cards/c1", number, "c1")
        except BaseException as exc:
            failures.append(exc)

    workers = [threading.Thread(target=make, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert not failures, failures
    assert len(store.added) == threads  # each made a key; the store kept one
    stored = store.get("medical", "c1")
    assert stored is not None and stored.wrapped in store.added
    fresh = Keyring("medical", [kek], MemoryKeyStore())
    fresh.store.add("medical", "c1", stored.kek_id, stored.wrapped)
    for number, value in enumerate(sealed):
        assert Sealer(fresh, f"tx-{number}").open("cards/c1", value) == number


# --- over a SQL key store -----------------------------------------------------------------


@needs_backend("sqlite")
def test_keyring_over_a_sqlite_key_store(tmp_path: Path, kek_file: KekSource) -> None:
    with scratch_url("sqlite", tmp_path) as url:
        store: KeyStore = open_key_store(url, same_database_as_ledger=False)
        try:
            keyring = Keyring("medical", kek_file, store)
            keyring.check()
            sealed = {
                f"c{n}": Sealer(keyring, "tx-1").seal(f"cards/c{n}", {"n": n}, f"c{n}")
                for n in range(5)
            }
            keyring.destroy("c4", ERASED_AT)
            old, new = begin_rotation(kek_file)
            assert keyring.rotate(new, batch=2) == 4
            finish_rotation(kek_file, old)
        finally:
            store.close()
        reopened = open_key_store(url, same_database_as_ledger=False)
        try:
            again = Keyring("medical", kek_file, reopened)
            again.check()
            assert reopened.kek_ids("medical") == {new.id}
            for n in range(4):
                assert Sealer(again, "tx-2").open(f"cards/c{n}", sealed[f"c{n}"]) == {"n": n}
            assert again.erased_at("c4") == ERASED_AT
            with pytest.raises(ChildErasedError):
                again.sealing_key("c4")
        finally:
            reopened.close()


def test_a_running_keyring_wraps_new_keys_with_the_next_kek_once_a_rotation_begins(
    kek_file: KekSource,
) -> None:
    # A server started before the rotation: within cache_seconds of `PATH.next` appearing it
    # wraps new keys with it, so the rotation's rewrap leaves no key on the old KEK behind.
    store = MemoryKeyStore()
    clock = FakeClock()
    running = Keyring("medical", kek_file, store, cache_seconds=5.0, clock=clock)
    running.sealing_key("before")
    old, new = begin_rotation(kek_file)
    running.sealing_key("just-after")  # not looked at the files yet: the old KEK
    clock.now += 5.0
    running.sealing_key("later")
    wrapped_by = {child: store.get("medical", child) for child in ("before", "just-after", "later")}
    assert {child: s.kek_id for child, s in wrapped_by.items() if s} == {
        "before": old.id,
        "just-after": old.id,
        "later": new.id,
    }
    assert Keyring("medical", kek_file, store).rotate(new) == 2
    finish_rotation(kek_file, old)
    running.sealing_key("after-finish")
    assert store.kek_ids("medical") == {new.id}


def test_expired_keys_leave_the_cache_and_tombstones_stay() -> None:
    """A server that ran for long holds the keys of the children it used lately only."""
    store = _CountingStore()
    clock = FakeClock()
    keyring = Keyring("medical", [Kek.generate()], store, cache_seconds=5.0, clock=clock)
    for child in ("c1", "c2", "gone"):
        keyring.sealing_key(child)
    keyring.destroy("gone", "2026-12-07T00:00:00.000000Z")
    clock.now += 6
    keyring.sealing_key("c3")  # cached after the sweep was due: the expired keys go
    assert set(keyring._cache) == {"c3", "gone"}
    assert keyring.erased_at("gone") == "2026-12-07T00:00:00.000000Z"
    before = store.gets
    assert keyring.opening_key("c1") is not None  # read again from the store
    assert store.gets == before + 1
