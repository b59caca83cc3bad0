"""The Redis backend (`redis://host:port/db[?prefix=NAME]`): one stream per channel.

Layout per channel (names under the prefix, default "healthledger:"):
`CH:blocks` a stream with one entry per block (id "NUMBER-1"; header fields,
`tree_size` and `tree_root` unless the block is older than the Merkle tree, and
the transactions' canonical texts), `CH:tip` a hash (height, hash),
`CH:state` and `CH:versions` hashes, `CH:keys` a sorted set for range reads,
`CH:history:KEY` a list per key and `CH:history-keys` the set of such keys,
`CH:tree` a hash of the tree's nodes ("LEVEL:INDEX" -> 64 hex digits) and
`CH:txs` a hash locating each transaction id ("BLOCK:INDEX", the first wins).

The compare-and-append is one Lua script, so it is atomic and two processes
can never fork a chain; the versions of foreign reads are compared in the same
script, and the block's tree nodes and transaction locations are written by it.
The script checks everything it can before its first write, because Redis does
not roll a script back. It also writes nothing once its caller has stopped
waiting for the answer (a deadline on Redis's clock, from this host's clock
plus the offset between the two measured with TIME): a script held up in a
frozen or partitioned Redis would otherwise store a block after the caller
reported it unstored. A commit's `not_after` is turned into Redis's clock the
same way.

Durability is Redis's own: with `appendonly yes` and `appendfsync always` an
acknowledged block survives a crash; with the defaults, the last second (or
everything, without AOF) may be lost. See docs/BACKENDS.md.

An unreachable Redis costs a call at most SOCKET_TIMEOUT_S: a refused or
broken connection is retried once on a new one (so a restarted Redis is picked
up without an error), a silent one is not, and either ends in
BackendUnavailableError.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from .base import LedgerStore, prefix_end
from .errors import BackendUnavailableError, UnsupportedLedgerURLError
from .hashing import canonical_json
from .merkle import NodeId
from .records import Block, BlockCommit, HistoryEntry, StateRecord, Tip, Version

CONNECT_TIMEOUT_S = 1.5
SOCKET_TIMEOUT_S = 1.5
SCAN_PAGE = 1000

_APPEND_IF_TIP = """#!lua
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if now_ms > tonumber(ARGV[12]) then
  return -1
end
local tip = redis.call('HMGET', KEYS[1], 'height', 'hash')
local height = tonumber(tip[1]) or 0
local hash = tip[2] or string.rep('0', 64)
if height ~= tonumber(ARGV[1]) or hash ~= ARGV[2] then
  return 0
end
local not_after = tonumber(ARGV[13])
if not_after > 0 and now_ms > not_after then
  return 0
end
local foreign = tonumber(ARGV[18])
local i = 19
for f = 1, foreign do
  local count = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, count do
    if (redis.call('HGET', KEYS[9 + f], ARGV[i]) or '') ~= ARGV[i + 1] then
      return 0
    end
    i = i + 2
  end
end
local header = {'number', ARGV[4], 'previous_hash', ARGV[5], 'data_hash', ARGV[6],
  'hash', ARGV[7], 'timestamp', ARGV[8]}
if ARGV[14] ~= '' then
  table.insert(header, 'tree_size')
  table.insert(header, ARGV[14])
  table.insert(header, 'tree_root')
  table.insert(header, ARGV[15])
end
table.insert(header, 'txs')
table.insert(header, ARGV[9])
redis.call('XADD', KEYS[2], ARGV[3], unpack(header))
local writes = tonumber(ARGV[11])
for _ = 1, writes do
  local key, value, version = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if value == '' then
    redis.call('HDEL', KEYS[3], key)
    redis.call('HDEL', KEYS[4], key)
    redis.call('ZREM', KEYS[5], key)
  else
    redis.call('HSET', KEYS[3], key, value)
    redis.call('HSET', KEYS[4], key, version)
    redis.call('ZADD', KEYS[5], 0, key)
  end
  i = i + 3
end
for k = 10 + foreign, #KEYS do
  redis.call('RPUSH', KEYS[k], ARGV[i + 1])
  redis.call('SADD', KEYS[6], ARGV[i])
  i = i + 2
end
local locations = cjson.decode(ARGV[17])
local located = {}
for j = 1, #locations, 2000 do
  local last = math.min(j + 1999, #locations)
  local ids = {}
  for k = j, last, 2 do
    ids[#ids + 1] = locations[k]
  end
  local known = redis.call('HMGET', KEYS[8], unpack(ids))
  local fresh = {}
  for n, id in ipairs(ids) do
    if not known[n] and not located[id] then
      located[id] = true
      fresh[#fresh + 1] = id
      fresh[#fresh + 1] = locations[j + 2 * n - 1]
    end
  end
  if #fresh > 0 then
    redis.call('HSET', KEYS[8], unpack(fresh))
  end
end
local nodes = cjson.decode(ARGV[16])
for j = 1, #nodes, 2000 do
  redis.call('HSET', KEYS[7], unpack(nodes, j, math.min(j + 1999, #nodes)))
end
redis.call('HSET', KEYS[1], 'height', tonumber(ARGV[4]) + 1, 'hash', ARGV[7])
redis.call('SADD', KEYS[9], ARGV[10])
return 1
"""


# A page of keys and their values and versions, read in one script so it is one state.
_PREFIX_PAGE = """#!lua
local keys
if ARGV[4] == '1' then
  keys = redis.call('ZREVRANGEBYLEX', KEYS[1], ARGV[2], ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
else
  keys = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
end
local found = {}
for _, key in ipairs(keys) do
  local value = redis.call('HGET', KEYS[2], key)
  local version = redis.call('HGET', KEYS[3], key)
  if value and version then
    found[#found + 1] = key
    found[#found + 1] = value
    found[#found + 1] = version
  end
end
return found
"""


class RedisStore(LedgerStore):
    """A LedgerStore on Redis streams and hashes; appends are one Lua script."""

    def __init__(self, url: str, client: redis.Redis, prefix: str) -> None:
        self.url = url
        # Any: redis-py's annotations cannot express that decode_responses=True returns str.
        self.client: Any = client
        self.prefix = prefix
        self._append = client.register_script(_APPEND_IF_TIP)
        self._prefix_page = client.register_script(_PREFIX_PAGE)
        self._redis_clock_offset_ms: float | None = None

    @classmethod
    def from_url(cls, url: str, *, create: bool = True) -> RedisStore:
        """The ledger under the URL's prefix; opening it writes nothing, whatever `create` says.

        The append script is registered client-side, and a prefix with no keys is an empty ledger.
        """
        client, prefix = redis_client(url)
        store = cls(url, client, prefix)
        store.ping()
        return store

    def _key(self, channel: str, part: str) -> str:
        return f"{self.prefix}{channel}:{part}"

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise BackendUnavailableError(
                f"The Redis ledger cannot be reached: {str(exc).rstrip('.')}. Nothing was written."
            ) from exc

    def channels(self) -> list[str]:
        with self._guard():
            return sorted(self.client.smembers(f"{self.prefix}channels"))

    def tip(self, channel: str) -> Tip:
        with self._guard():
            height, hash_ = self.client.hmget(self._key(channel, "tip"), ["height", "hash"])
        return Tip.empty() if height is None else Tip(int(height), hash_)

    def read_state(self, channel: str, key: str) -> StateRecord | None:
        with self._guard():
            pipe = self.client.pipeline(transaction=True)
            pipe.hget(self._key(channel, "state"), key)
            pipe.hget(self._key(channel, "versions"), key)
            value, version = pipe.execute()
        return None if value is None else StateRecord(key, value, _version(version))

    def read_versions(self, channel: str, keys: Iterable[str]) -> dict[str, Version]:
        wanted = list(keys)
        if not wanted:
            return {}
        with self._guard():
            found = self.client.hmget(self._key(channel, "versions"), wanted)
        return {key: _version(v) for key, v in zip(wanted, found, strict=True) if v is not None}

    def read_range(self, channel: str, start: str, end: str) -> list[StateRecord]:
        with self._guard():
            keys: list[str] = self.client.zrangebylex(
                self._key(channel, "keys"), f"[{start}", f"({end}" if end else "+"
            )
            return self._records(channel, keys)

    def read_prefix_page(
        self, channel: str, prefix: str, *, after: str | None, limit: int, reverse: bool
    ) -> list[StateRecord]:
        """ZRANGEBYLEX or ZREVRANGEBYLEX with LIMIT on the sorted set of keys: O(log n + limit).

        Redis compares members byte by byte, and UTF-8 byte order is code-point order.
        """
        if limit <= 0:
            return []
        end = prefix_end(prefix)
        low, high = f"[{prefix}", f"({end}" if end else "+"
        if after is not None:
            if reverse and (not end or after < end):
                high = f"({after}"
            elif not reverse and after >= prefix:
                low = f"({after}"
        keys = [self._key(channel, part) for part in ("keys", "state", "versions")]
        with self._guard():
            flat: list[str] = self._prefix_page(
                keys=keys, args=[low, high, limit, "1" if reverse else "0"]
            )
        return [
            StateRecord(flat[i], flat[i + 1], _version(flat[i + 2])) for i in range(0, len(flat), 3)
        ]

    def _records(self, channel: str, keys: list[str]) -> list[StateRecord]:
        if not keys:
            return []
        pipe = self.client.pipeline(transaction=True)
        pipe.hmget(self._key(channel, "state"), keys)
        pipe.hmget(self._key(channel, "versions"), keys)
        values, versions = pipe.execute()
        return [
            StateRecord(key, value, _version(version))
            for key, value, version in zip(keys, values, versions, strict=True)
            if value is not None and version is not None
        ]

    def read_history(self, channel: str, key: str) -> list[HistoryEntry]:
        with self._guard():
            raw: list[str] = self.client.lrange(self._key(channel, f"history:{key}"), 0, -1)
        return [_history_entry(key, text) for text in raw]

    def read_blocks(self, channel: str, start: int, limit: int) -> list[Block]:
        start = max(start, 0)
        if limit <= 0:
            return []
        with self._guard():
            entries = self.client.xrange(
                self._key(channel, "blocks"), f"{start}-0", "+", count=limit
            )
        return [_block(fields) for _, fields in entries]

    def read_tree_nodes(self, channel: str, ids: Iterable[NodeId]) -> dict[NodeId, bytes]:
        """One HMGET of the "LEVEL:INDEX" fields of `CH:tree`."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        with self._guard():
            found = self.client.hmget(
                self._key(channel, "tree"), [f"{level}:{index}" for level, index in wanted]
            )
        return {
            node: bytes.fromhex(value)
            for node, value in zip(wanted, found, strict=True)
            if value is not None
        }

    def locate_transaction(self, channel: str, tx_id: str) -> tuple[int, int] | None:
        """One HGET of `CH:txs`, which the append script fills with HSETNX (the first wins).

        A chain stored before `CH:txs` existed has its transactions added with its first
        block that carries a tree; until then they are not found.
        """
        with self._guard():
            location = self.client.hget(self._key(channel, "txs"), tx_id)
        return None if location is None else _version(location)

    def append_if_tip(self, channel: str, expected: Tip, commit: BlockCommit) -> bool:
        block = commit.block
        not_after_ms = 0  # none
        if commit.not_after is not None:
            left_s = commit.not_after - time.monotonic()
            if left_s <= 0:
                return False
            not_after_ms = self._redis_deadline_ms(left_s)
        keys = [self._key(channel, part) for part in _FIXED_KEYS]
        keys.append(f"{self.prefix}channels")
        locations = [(tx_id, f"{block.number}:{n}") for n, tx_id in enumerate(commit.tx_ids)]
        if block.first_leaf and any(node.id == (0, 0) for node in commit.tree_nodes):
            # The commit brings the tree of earlier blocks, stored before trees (and CH:txs).
            locations = self._locations_before(channel, block.number) + locations
        nodes = [f for n in commit.tree_nodes for f in (f"{n.level}:{n.index}", n.hash.hex())]
        args: list[Any] = [
            expected.height,
            expected.hash,
            f"{block.number}-1",
            block.number,
            block.previous_hash,
            block.data_hash,
            block.hash,
            block.timestamp,
            json.dumps(list(block.tx_texts), ensure_ascii=False),
            channel,
            len(commit.state_writes),
            # After this instant (ms, Redis's clock) the caller has given up: write nothing.
            self._redis_deadline_ms(SOCKET_TIMEOUT_S),
            not_after_ms,
            "" if block.tree_size is None else block.tree_size,
            block.tree_root or "",
            # Two arguments, not two per node or location: redis-py encodes each argument.
            json.dumps(nodes),
            json.dumps([field for location in locations for field in location]),
            len(commit.foreign_reads),
        ]
        for foreign_channel, reads in commit.foreign_reads.items():
            keys.append(self._key(foreign_channel, "versions"))
            args.append(len(reads))
            for key, version in reads.items():
                args.extend((key, "" if version is None else f"{version[0]}:{version[1]}"))
        for write in commit.state_writes:
            args.extend((write.key, write.value or "", f"{write.version[0]}:{write.version[1]}"))
        for entry in commit.history:
            keys.append(self._key(channel, f"history:{entry.key}"))
            args.extend((entry.key, _history_text(entry)))
        with self._guard():
            appended = self._append(keys=keys, args=args)
        if appended == -1:
            self._redis_clock_offset_ms = None  # measure again: Redis's clock may have jumped
            raise BackendUnavailableError(
                f"The Redis ledger took longer than {SOCKET_TIMEOUT_S:g} s to run the append of "
                f"block {block.number}. Nothing was written."
            )
        return bool(appended)

    def _locations_before(self, channel: str, end: int) -> list[tuple[str, str]]:
        """("tx id", "BLOCK:INDEX") of each transaction of blocks [0, end) that parses."""
        locations: list[tuple[str, str]] = []
        start = 0
        while start < end:
            with self._guard():
                entries = self.client.xrange(
                    self._key(channel, "blocks"), f"{start}-0", f"{end - 1}-1", count=SCAN_PAGE
                )
            if not entries:
                break
            for _, fields in entries:
                number = int(fields["number"])
                for index, text in enumerate(json.loads(fields["txs"])):
                    try:
                        locations.append((json.loads(text)["tx_id"], f"{number}:{index}"))
                    except (ValueError, KeyError, TypeError):
                        continue  # damage for verify to name; the text has no id to index
            start = number + 1
        return locations

    def _redis_deadline_ms(self, seconds: float) -> int:
        """Now plus `seconds`, on Redis's clock (however far this host's is off)."""
        if self._redis_clock_offset_ms is None:
            before = time.time()
            with self._guard():
                seconds, micros = self.client.time()
            after = time.time()
            self._redis_clock_offset_ms = (
                seconds * 1000 + micros / 1000 - (before + after) / 2 * 1000
            )
        return int((time.time() + seconds) * 1000 + self._redis_clock_offset_ms)

    def scan_state(self, channel: str) -> Iterator[StateRecord]:
        cursor = 0
        while True:
            with self._guard():
                cursor, values = self.client.hscan(
                    self._key(channel, "state"), cursor, count=SCAN_PAGE
                )
                keys = list(values)
                versions = self.client.hmget(self._key(channel, "versions"), keys) if keys else []
            for key, version in zip(keys, versions, strict=True):
                yield StateRecord(key, values[key], _version(version or "-1:-1"))
            if cursor == 0:
                return

    def scan_history(self, channel: str) -> Iterator[HistoryEntry]:
        cursor = 0
        while True:
            with self._guard():
                cursor, keys = self.client.sscan(
                    self._key(channel, "history-keys"), cursor, count=SCAN_PAGE
                )
                pipe = self.client.pipeline(transaction=False)
                for key in keys:
                    pipe.lrange(self._key(channel, f"history:{key}"), 0, -1)
                lists = pipe.execute()
            for key, texts in zip(keys, lists, strict=True):
                yield from (_history_entry(key, text) for text in texts)
            if cursor == 0:
                return

    def ping(self) -> None:
        with self._guard():
            self.client.ping()

    def close(self) -> None:
        self.client.close()


def redis_client(url: str) -> tuple[redis.Redis, str]:
    """A client for the Redis a URL names (bounded in time, one retry of a broken connection,
    answers decoded as text) and the URL's key prefix, ending in ":" (default "healthledger:").

    Raises UnsupportedLedgerURLError for a prefix that is not a plain name or a malformed URL.
    """
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    prefix = query.pop("prefix", "healthledger")
    if not prefix or any(c in prefix for c in "*?[]{} "):
        raise UnsupportedLedgerURLError(
            "The prefix in a Redis ledger URL must be a plain non-empty name."
        )
    client_url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
    try:
        client = redis.Redis.from_url(
            client_url,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=SOCKET_TIMEOUT_S,
            # A timeout is not retried: a Redis that stopped answering would double the wait.
            retry=Retry(
                ExponentialBackoff(cap=0.2, base=0.05),
                1,
                supported_errors=(redis.ConnectionError,),
            ),
            decode_responses=True,
        )
    except ValueError as exc:
        raise UnsupportedLedgerURLError(f"Bad Redis ledger URL: {exc}.") from exc
    return client, prefix + ":"


_FIXED_KEYS = ("tip", "blocks", "state", "versions", "keys", "history-keys", "tree", "txs")


def _version(text: str) -> Version:
    block, _, index = text.partition(":")
    return (int(block), int(index))


def _history_text(entry: HistoryEntry) -> str:
    return canonical_json(
        [
            entry.block_number,
            entry.tx_index,
            entry.tx_id,
            entry.value,
            entry.creator_uid,
            entry.creator_msp,
            entry.timestamp,
        ]
    )


def _history_entry(key: str, text: str) -> HistoryEntry:
    block, index, tx_id, value, uid, msp, timestamp = json.loads(text)
    return HistoryEntry(key, block, index, tx_id, value, uid, msp, timestamp)


def _block(fields: dict[str, str]) -> Block:
    return Block(
        number=int(fields["number"]),
        previous_hash=fields["previous_hash"],
        data_hash=fields["data_hash"],
        timestamp=fields["timestamp"],
        hash=fields["hash"],
        tx_texts=tuple(json.loads(fields["txs"])),
        tree_size=int(fields["tree_size"]) if "tree_size" in fields else None,
        tree_root=fields.get("tree_root"),
    )
