"""One channel's data keys: a key per child, made on first use, wrapped by the channel's KEK.

A data key is 32 random bytes (AES-256-GCM). The key store beside the chain holds
it only wrapped: AES-256-GCM under a key-encryption key (keks.py), a random 96-bit
nonce, and as associated data the canonical JSON of ["healthledger data key",
channel, child], so a wrapped key moved to another child or channel does not
unwrap. Stored bytes are nonce ‖ ciphertext+tag, beside the id of the KEK.

Erasing a child destroys its data key (`destroy` leaves a tombstone in the store):
every value sealed with it, in state, history and blocks alike, is then
unreadable for good, and no new key is ever made for that child on that channel.

Unwrapped keys are cached per child for `cache_seconds`, so an erasure through
another process is honoured within that time and one through this keyring at
once; tombstones are cached for good (they never come back to life). Expired keys
are dropped from the cache at the next key cached at least `cache_seconds` after the
last sweep, so a long-running server holds the keys of the children it used lately,
not of every child it ever served. The keyring
is thread-safe: simulations run in worker threads. Its lock guards only the cache
and the KEKs it knows; store calls and unwrapping happen outside it, and when two
threads or processes make a child's first key at once, the store's
insert-if-absent picks the one everybody uses.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger_backends.hashing import canonical_json
from ledger_backends.keystores.base import KeyStore, Rewrap, StoredKey

from .keks import Kek, KekError, KekSource

DATA_KEY_BYTES = 32
WRAP_NONCE_BYTES = 12
DEFAULT_CACHE_SECONDS = 5.0
_CHECK_FIRST_PAGE = 1
_CHECK_PAGE_GROWTH = 4


class ChildErasedError(Exception):
    """Nothing can be sealed for a child whose keys were destroyed (an erased child)."""

    def __init__(self, child: str, erased_at: str | None = None, *, channel: str = "") -> None:
        where = f" on channel {channel}" if channel else ""
        when = f" on {erased_at}" if erased_at else ""
        super().__init__(f"The keys of child {child}{where} were destroyed{when}.")
        self.child = child
        self.erased_at = erased_at
        self.channel = channel


@dataclass(frozen=True, slots=True)
class _Cached:
    """A child's key as last read: `aead` None for a tombstone (then `erased_at` is set)."""

    aead: AESGCM | None
    erased_at: str | None
    expires: float


class Keyring:
    """The data keys of one channel, kept wrapped in `store` and cached unwrapped."""

    def __init__(
        self,
        channel: str,
        keks: KekSource | Sequence[Kek],
        store: KeyStore,
        *,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Loads a KekSource at once (KekError if it cannot be loaded). New keys are wrapped
        by the last KEK: `PATH.next` while a rotation is under way, so they need no rewrap."""
        self.channel = channel
        self.store = store
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, _Cached] = {}
        self._next_sweep = clock() + cache_seconds  # when expired keys are dropped next
        if isinstance(keks, KekSource):
            if keks.channel != channel:
                raise ValueError(
                    f"The key-encryption key of channel {keks.channel} is not channel {channel}'s."
                )
            self._source: KekSource | None = keks
            self._describe = keks.describe()
            loaded = keks.load()
        else:
            self._source = None
            self._describe = "the keys it was given"
            loaded = list(keks)
            if not loaded:
                raise ValueError(f"Channel {channel}'s keyring needs a key-encryption key.")
        self._keks: dict[str, Kek] = {kek.id: kek for kek in loaded}
        self._newest = loaded[-1]
        self._stamp = keks.stamp() if isinstance(keks, KekSource) else ()
        self._stamp_checked = clock()

    def check(self) -> None:
        """Serve's preflight: KekError unless every KEK wrapping a key in the store is one
        this keyring holds and, per KEK, a key it wraps unwraps (catches a damaged store)."""
        ids = self.store.kek_ids(self.channel)
        missing = ids - self._known_ids()
        if missing and self._reload():
            missing = ids - self._known_ids()
        if missing:
            raise KekError(
                f"channel {self.channel}: its data keys are wrapped by key-encryption key "
                f"{', '.join(sorted(missing))}, which {self._describe} does not hold."
            )
        pending = set(ids)
        limit = _CHECK_FIRST_PAGE
        while pending:
            # The first live keys not wrapped by another KEK: with one or two KEKs (at most a
            # rotation under way) the first such key is wrapped by `target`.
            target = min(pending)
            other = next((kek_id for kek_id in sorted(ids) if kek_id != target), "")
            page = self.store.wrapped_by_other(self.channel, other, limit)
            for stored in page:
                if stored.kek_id in pending:
                    self._unwrap(stored)
                    pending.discard(stored.kek_id)
            if target in pending:
                if len(page) < limit:
                    pending.discard(target)  # its keys were destroyed or rewrapped meanwhile
                else:
                    limit *= _CHECK_PAGE_GROWTH

    def sealing_key(self, child: str) -> AESGCM:
        """The child's data key, made if it has none; ChildErasedError if it was destroyed."""
        cached = self._fresh(child)
        if cached is None:
            # One step of the store, not two: a key offered is stored only if the child has
            # none (nor a tombstone), and what the store holds afterwards comes back, so an
            # earlier key, another thread's or process's, or a tombstone wins.
            key = secrets.token_bytes(DATA_KEY_BYTES)
            kek = self._newest_kek()
            wrapped = self._wrap(kek, child, key)
            stored = self.store.add(self.channel, child, kek.id, wrapped)
            cached = self._remember(child, stored, (key, wrapped))
        if cached.aead is None:
            raise ChildErasedError(child, cached.erased_at, channel=self.channel)
        return cached.aead

    def opening_key(self, child: str) -> AESGCM | None:
        """The child's data key; None if it was destroyed or never made."""
        cached = self._lookup(child)
        return None if cached is None else cached.aead

    def erased_at(self, child: str) -> str | None:
        """When the child's keys were destroyed; None if they were not."""
        cached = self._lookup(child)
        return None if cached is None else cached.erased_at

    def destroy(self, child: str, erased_at: str) -> StoredKey:
        """Destroy the child's data key for good (idempotent: the first date stays) and
        forget it here at once; returns the tombstone."""
        tombstone = self.store.destroy(self.channel, child, erased_at)
        with self._lock:
            self._cache[child] = _Cached(None, tombstone.erased_at, math.inf)
        return tombstone

    def rotate(self, new: Kek, *, batch: int = 500) -> int:
        """Rewrap every live key not wrapped by `new`, `batch` at a time; returns how many.

        `new` becomes a KEK of this keyring (and the one new keys are wrapped by) before
        the first rewrap, so every key stays readable throughout. Each batch is a
        compare-and-set on the old KEK id: a key destroyed or rewrapped meanwhile is
        left as it is.
        """
        if batch < 1:
            raise ValueError("A rotation rewraps at least one key at a time.")
        with self._lock:
            self._keks[new.id] = new
            self._newest = new
        rewrapped = 0
        while True:
            page = self.store.wrapped_by_other(self.channel, new.id, batch)
            if not page:
                return rewrapped
            rewraps = [
                Rewrap(
                    stored.child,
                    stored.kek_id,
                    new.id,
                    self._wrap(new, stored.child, self._unwrap(stored)),
                )
                for stored in page
            ]
            rewrapped += self.store.rewrap(self.channel, rewraps)

    def _fresh(self, child: str) -> _Cached | None:
        """The child's key from the cache, if it is there and fresh."""
        with self._lock:
            cached = self._cache.get(child)
        return cached if cached is not None and cached.expires > self._clock() else None

    def _lookup(self, child: str) -> _Cached | None:
        """The child's key from the cache while fresh, else from the store; None if none."""
        cached = self._fresh(child)
        if cached is not None:
            return cached
        stored = self.store.get(self.channel, child)
        if stored is None:
            return None
        return self._remember(child, stored)

    def _remember(
        self, child: str, stored: StoredKey, offered: tuple[bytes, bytes] | None = None
    ) -> _Cached:
        """Cache what the store holds for `child`. `offered` is the key just offered to the
        store, in clear and wrapped: when the store kept it, it needs no unwrapping."""
        now = self._clock()
        if stored.wrapped is None:
            fresh = _Cached(None, stored.erased_at, math.inf)
        else:
            if offered is not None and stored.wrapped == offered[1]:
                key = offered[0]
            else:
                key = self._unwrap(stored)
            aead = AESGCM(key)
            fresh = _Cached(aead, None, now + self._cache_seconds)
        with self._lock:
            cached = self._cache.get(child)
            if cached is not None and cached.aead is None:
                return cached  # destroyed here while this thread read the store: stays destroyed
            self._cache[child] = fresh
            if now >= self._next_sweep:
                self._drop_expired(now)
        return fresh

    def _drop_expired(self, now: float) -> None:
        """Forget the keys that expired (tombstones never do); the caller holds the lock."""
        for child in [child for child, cached in self._cache.items() if cached.expires <= now]:
            del self._cache[child]
        self._next_sweep = now + self._cache_seconds

    def _wrap(self, kek: Kek, child: str, key: bytes) -> bytes:
        nonce = secrets.token_bytes(WRAP_NONCE_BYTES)
        return nonce + AESGCM(kek.key).encrypt(nonce, key, self._wrapping_aad(child))

    def _unwrap(self, stored: StoredKey) -> bytes:
        """The data key in clear; KekError if its KEK is unknown or it does not unwrap."""
        kek = self._kek(stored.kek_id)
        wrapped = stored.wrapped or b""
        try:
            key = AESGCM(kek.key).decrypt(
                wrapped[:WRAP_NONCE_BYTES],
                wrapped[WRAP_NONCE_BYTES:],
                self._wrapping_aad(stored.child),
            )
        except (InvalidTag, ValueError):
            key = b""
        if len(key) != DATA_KEY_BYTES:
            raise KekError(
                f"channel {self.channel}: a data key does not unwrap with key-encryption key "
                f"{kek.id} from {self._describe}: the key store is damaged."
            )
        return key

    def _wrapping_aad(self, child: str) -> bytes:
        return canonical_json(["healthledger data key", self.channel, child]).encode("utf-8")

    def _kek(self, kek_id: str) -> Kek:
        """The KEK with this id; the source is reloaded once if it is not known (another
        process rotated), then KekError."""
        with self._lock:
            kek = self._keks.get(kek_id)
        if kek is None and self._reload():
            with self._lock:
                kek = self._keks.get(kek_id)
        if kek is None:
            raise KekError(
                f"channel {self.channel}: a data key is wrapped by key-encryption key {kek_id}, "
                f"which {self._describe} does not hold."
            )
        return kek

    def _reload(self) -> bool:
        """Load the KEK source again and add what it holds; False if there is no source.

        KEKs already known are kept: keys another process has not rewrapped yet may still
        need them."""
        if self._source is None:
            return False
        loaded = self._source.load()
        with self._lock:
            for kek in loaded:
                if kek.id not in self._keks:
                    self._keks[kek.id] = kek
                    self._newest = kek
        return True

    def _known_ids(self) -> set[str]:
        with self._lock:
            return set(self._keks)

    def _newest_kek(self) -> Kek:
        """The KEK new keys are wrapped by. The key files are looked at again (a stat)
        every `cache_seconds`: a rotation begun by another process writes `PATH.next`, and
        from then on this keyring wraps new keys with it, so a rotation that waits that
        long before rewrapping leaves no key wrapped by the old KEK behind."""
        now = self._clock()
        if self._source is not None and now - self._stamp_checked >= self._cache_seconds:
            stamp = self._source.stamp()
            self._stamp_checked = now
            if stamp != self._stamp:
                self._stamp = stamp
                self._reload()
        with self._lock:
            return self._newest
