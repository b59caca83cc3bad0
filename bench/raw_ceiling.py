"""Raw ceilings: the rows the ledger writes per block, written straight into each store.

The ceiling is how fast a store takes the data the ledger gives it — the block header,
every transaction's canonical text, the state upserts and the history entries — in one
atomic write per RAW_BLOCK_SIZE transactions with the ledger's durability settings, but
without the ledger's own work (MVCC validation, canonical JSON, hashing, SQLAlchemy,
asyncio, the tip check):

- memory: the same rows put in Python lists and dicts behind a lock;
- SQLite: plain sqlite3, WAL and synchronous=FULL, BEGIN IMMEDIATE and executemany per
  table, on the ledger's own tables;
- PostgreSQL: psycopg executemany per table in one transaction, on the ledger's tables;
- Redis: one MULTI/EXEC pipeline per block in the ledger's key layout.

The rows come from a real block that ChainWriter builds once before timing; from block to
block only the block number, versions and transaction ids change. Making those tuples is
inside the timed loop, as any writer has to make them.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit

import psycopg
import redis
from redis.typing import EncodableT, FieldT

from ledger_backends import Tip, open_store
from ledger_backends.chain import ChainWriter
from ledger_backends.hashing import canonical_json
from ledger_backends.memory import MemoryStore

from .ledger_workloads import CHANNEL, SMALL_VALUE, update_proposal

RAW_BLOCK_SIZE = 500
Row = tuple[Any, ...]
COLUMNS = {
    "ledger_blocks": "channel number previous_hash data_hash hash timestamp tx_count",
    "ledger_transactions": "channel block_number tx_index tx_id record",
    "ledger_state": "channel key value block_number tx_index",
    "ledger_history": "channel key block_number tx_index tx_id value creator_uid creator_msp "
    "timestamp",
}


@dataclass(frozen=True)
class RawBlock:
    """One block's rows, in the column order of the ledger's SQL tables."""

    header: Row
    transactions: list[Row]
    state: list[Row]
    history: list[Row]


class RawRows:
    """Rows shaped like a real RAW_BLOCK_SIZE-transaction block, renumbered per block."""

    def __init__(self) -> None:
        size = RAW_BLOCK_SIZE
        proposals = [
            update_proposal(CHANNEL, f"raw/record-{i:04d}", None, 0, SMALL_VALUE, "raw")
            for i in range(size)
        ]
        commit, _ = ChainWriter(MemoryStore(), CHANNEL).build(Tip.empty(), proposals)
        self.size = size
        self.block = commit.block
        self.tx_texts = commit.block.tx_texts
        self.tx_ids = commit.tx_ids
        self.writes = [(w.key, w.value, w.version[1]) for w in commit.state_writes]
        self.history = [
            (e.key, e.tx_index, e.tx_id, e.value, e.creator_uid, e.creator_msp, e.timestamp)
            for e in commit.history
        ]

    def rows(self, number: int) -> RawBlock:
        b = self.block
        ids = [f"{tx_id}@{number}" for tx_id in self.tx_ids]
        return RawBlock(
            header=(CHANNEL, number, b.previous_hash, b.data_hash, b.hash, b.timestamp, self.size),
            transactions=[
                (CHANNEL, number, index, ids[index], text)
                for index, text in enumerate(self.tx_texts)
            ],
            state=[(CHANNEL, key, value, number, index) for key, value, index in self.writes],
            history=[
                (CHANNEL, key, number, index, ids[index], value, uid, msp, stamp)
                for key, index, _, value, uid, msp, stamp in self.history
            ],
        )


class RawWriter(Protocol):
    def write(self, rows: RawBlock) -> None: ...

    def close(self) -> None: ...


def measure_ceiling(backend: str, url: str, raw: RawRows, duration_s: float) -> float:
    """Blocks written back to back into the empty store at `url` for `duration_s`: tx/s."""
    writer = open_raw_writer(backend, url, raw)
    try:
        number = 0
        started = time.perf_counter()
        while number == 0 or time.perf_counter() < started + duration_s:
            writer.write(raw.rows(number))
            number += 1
        return number * raw.size / (time.perf_counter() - started)
    finally:
        writer.close()


def open_raw_writer(backend: str, url: str, raw: RawRows) -> RawWriter:
    """A writer into the store at `url`; SQL stores get the ledger's tables first."""
    if backend == "memory":
        return MemoryRawWriter()
    if backend == "redis":
        return RedisRawWriter(*_without(url, "prefix"), raw)
    open_store(url).close()
    if backend == "sqlite":
        return SQLiteRawWriter(url.removeprefix("sqlite:///").split("?")[0])
    return PostgresRawWriter(*_without(url, "schema"))


def _without(url: str, parameter: str) -> tuple[str, str]:
    """The URL without one query parameter, and that parameter's value."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    value = query.pop(parameter)
    return parts._replace(query=urlencode(query)).geturl(), value


class MemoryRawWriter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blocks: list[tuple[Row, list[str]]] = []
        self._state: dict[str, tuple[str, tuple[int, int]]] = {}
        self._history: dict[str, list[Row]] = {}

    def write(self, rows: RawBlock) -> None:
        with self._lock:
            self._blocks.append((rows.header, [row[4] for row in rows.transactions]))
            for _, key, value, number, index in rows.state:
                self._state[key] = (value, (number, index))
            for entry in rows.history:
                self._history.setdefault(entry[1], []).append(entry)

    def close(self) -> None:
        self._blocks.clear()


def _statements(mark: str) -> list[str]:
    found = []
    for table, columns in COLUMNS.items():
        names = columns.split()
        found.append(
            f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join([mark] * len(names))})"
        )
    found[2] += (
        " ON CONFLICT (channel, key) DO UPDATE SET value = excluded.value,"
        " block_number = excluded.block_number, tx_index = excluded.tx_index"
    )
    return found


class SQLiteRawWriter:
    def __init__(self, path: str) -> None:
        self._block, self._txs, self._state, self._history = _statements("?")
        self._conn = sqlite3.connect(path, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")

    def write(self, rows: RawBlock) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(self._block, rows.header)
            conn.executemany(self._txs, rows.transactions)
            conn.executemany(self._state, rows.state)
            conn.executemany(self._history, rows.history)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()


class PostgresRawWriter:
    def __init__(self, server_url: str, schema: str) -> None:
        self._block, self._txs, self._state, self._history = _statements("%s")
        options = f"-c search_path={schema}"
        self._conn = psycopg.connect(server_url, autocommit=True, options=options)

    def write(self, rows: RawBlock) -> None:
        with self._conn.transaction(), self._conn.cursor() as cursor:
            cursor.execute(self._block, rows.header)
            cursor.executemany(self._txs, rows.transactions)
            cursor.executemany(self._state, rows.state)
            cursor.executemany(self._history, rows.history)

    def close(self) -> None:
        self._conn.close()


class RedisRawWriter:
    def __init__(self, server_url: str, prefix: str, raw: RawRows) -> None:
        self._client = redis.Redis.from_url(server_url, decode_responses=True)
        parts = ("tip", "blocks", "state", "versions", "keys", "history-keys", "history:")
        self._keys = {part: f"{prefix}:{CHANNEL}:{part}" for part in parts}
        self._channels_key = f"{prefix}:channels"
        # The stream entry holds the transactions' texts as one JSON list, as the backend does.
        self._tx_blob = json.dumps(list(raw.tx_texts), ensure_ascii=False)
        # A history text is canonical JSON [block, tx, tx_id, value, uid, msp, timestamp];
        # all after the tx id is the same in every block, so it is encoded once.
        self._tails = {
            (key, index): canonical_json([value, uid, msp, stamp])[1:]
            for key, index, _, value, uid, msp, stamp in raw.history
        }

    def write(self, rows: RawBlock) -> None:
        channel, number, previous_hash, data_hash, block_hash, stamp, _ = rows.header
        keys = self._keys
        pipe = self._client.pipeline(transaction=True)
        fields: dict[FieldT, EncodableT] = {
            "number": number,
            "previous_hash": previous_hash,
            "data_hash": data_hash,
        }
        fields |= {"hash": block_hash, "timestamp": stamp, "txs": self._tx_blob}
        pipe.xadd(keys["blocks"], fields, id=f"{number}-1")
        pipe.hset(keys["state"], mapping={row[1]: row[2] for row in rows.state})
        pipe.hset(keys["versions"], mapping={row[1]: f"{row[3]}:{row[4]}" for row in rows.state})
        pipe.zadd(keys["keys"], {row[1]: 0 for row in rows.state})
        for _, key, _, index, tx_id, *_ in rows.history:
            text = f'[{number},{index},"{tx_id}",{self._tails[key, index]}'
            pipe.rpush(keys["history:"] + key, text)
        pipe.sadd(keys["history-keys"], *(entry[1] for entry in rows.history))
        pipe.hset(keys["tip"], mapping={"height": number + 1, "hash": block_hash})
        pipe.sadd(self._channels_key, channel)
        pipe.execute()

    def close(self) -> None:
        self._client.close()
