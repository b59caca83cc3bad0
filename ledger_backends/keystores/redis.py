"""The key store of a Redis ledger (`RedisKeyStore`): one hash per channel.

The hash `{prefix}keys:{channel}` (the prefix as the ledger reads it from the
URL, default "healthledger:") maps each child to a JSON text:
`{"kek_id": ..., "wrapped": "<base64>"}` for a live key, `{"erased_at": ...}`
for a tombstone. `add` is HSETNX (the first key stored wins); `destroy` and
`rewrap` are small Lua scripts, so each compare-and-set is atomic.

Ordering with the ledger needs nothing here: Redis runs one command at a time
and persists them in that order, so a key added before a block is appended is
never lost while the block is kept. Durability is Redis's own, as for the
ledger (docs/BACKENDS.md). Forgetting is Redis's own too: a destroyed key's
text is freed at once, but an append-only file or a snapshot written before
keeps it until the next rewrite (BGREWRITEAOF) or snapshot.

Timeouts and retries are the ledger's (`redis_streams.redis_client`): a call
to an unreachable Redis ends in BackendUnavailableError within about 1.5 s.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis

from ..errors import BackendUnavailableError
from ..redis_streams import redis_client
from ..urls import redacted_url, scrubbed
from .base import KeyStore, Rewrap, StoredKey

# KEYS[1] the channel's hash; ARGV child, tombstone text. Returns what is stored afterwards.
_DESTROY = """#!lua
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and cjson.decode(current)['erased_at'] then
  return current
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return ARGV[2]
"""

# KEYS[1] the channel's hash; ARGV triples: child, old kek id, new text. Returns how many.
_REWRAP = """#!lua
local replaced = 0
for i = 1, #ARGV, 3 do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  if current then
    local stored = cjson.decode(current)
    if not stored['erased_at'] and stored['kek_id'] == ARGV[i + 1] then
      redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
      replaced = replaced + 1
    end
  end
end
return replaced
"""


class RedisKeyStore(KeyStore):
    """Wrapped data keys in one Redis hash per channel; thread-safe through redis-py's pool."""

    def __init__(self, url: str, client: redis.Redis, prefix: str) -> None:
        self.url = url
        # Any: redis-py's annotations cannot express that decode_responses=True returns str.
        self.client: Any = client
        self.prefix = prefix
        self._destroy = client.register_script(_DESTROY)
        self._rewrap = client.register_script(_REWRAP)

    @classmethod
    def from_url(cls, url: str, *, same_database_as_ledger: bool) -> RedisKeyStore:
        """The key store under the URL's prefix; opening it writes nothing."""
        del same_database_as_ledger  # one command stream: nothing to order (see above)
        client, prefix = redis_client(url)
        store = cls(url, client, prefix)
        with store._guard():
            client.ping()
        return store

    def _hash(self, channel: str) -> str:
        return f"{self.prefix}keys:{channel}"

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as exc:
            reason = scrubbed(str(exc), self.url).rstrip(".")
            raise BackendUnavailableError(
                f"The Redis key store at {redacted_url(self.url)} cannot be used: {reason}."
            ) from exc

    def get(self, channel: str, child: str) -> StoredKey | None:
        with self._guard():
            text = self.client.hget(self._hash(channel), child)
        return None if text is None else _stored(child, text)

    def add(self, channel: str, child: str, kek_id: str, wrapped: bytes) -> StoredKey:
        live = _json({"kek_id": kek_id, "wrapped": base64.b64encode(wrapped).decode("ascii")})
        with self._guard():
            pipe = self.client.pipeline(transaction=True)
            pipe.hsetnx(self._hash(channel), child, live)
            pipe.hget(self._hash(channel), child)
            _, text = pipe.execute()
        return _stored(child, text)

    def destroy(self, channel: str, child: str, erased_at: str) -> StoredKey:
        with self._guard():
            text = self._destroy(
                keys=[self._hash(channel)], args=[child, _json({"erased_at": erased_at})]
            )
        return _stored(child, text)

    def wrapped_by_other(self, channel: str, kek_id: str, limit: int) -> list[StoredKey]:
        if limit <= 0:
            return []
        live = (s for s in self._all(channel) if not s.destroyed and s.kek_id != kek_id)
        return sorted(live, key=lambda stored: stored.child)[:limit]

    def rewrap(self, channel: str, rewraps: Sequence[Rewrap]) -> int:
        if not rewraps:
            return 0
        args: list[str] = []
        for change in rewraps:
            wrapped = base64.b64encode(change.wrapped).decode("ascii")
            args.extend(
                (
                    change.child,
                    change.old_kek_id,
                    _json({"kek_id": change.new_kek_id, "wrapped": wrapped}),
                )
            )
        with self._guard():
            return int(self._rewrap(keys=[self._hash(channel)], args=args))

    def kek_ids(self, channel: str) -> set[str]:
        return {stored.kek_id for stored in self._all(channel) if not stored.destroyed}

    def _all(self, channel: str) -> Iterator[StoredKey]:
        with self._guard():
            texts: dict[str, str] = self.client.hgetall(self._hash(channel))
        return (_stored(child, text) for child, text in texts.items())

    def close(self) -> None:
        self.client.close()


def _json(value: dict[str, str]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _stored(child: str, text: str) -> StoredKey:
    fields = json.loads(text)
    if "erased_at" in fields:
        return StoredKey(child, "", None, fields["erased_at"])
    return StoredKey(child, fields["kek_id"], base64.b64decode(fields["wrapped"]))
