"""Raw ceilings: the rows the ledger writes per block, written straight into each store.

The ceiling is how fast a store takes the same data the ledger gives it — the
block header, every transaction's canonical text, the state upserts and the
history entries — in one atomic write per RAW_BLOCK_SIZE transactions, with
the ledger's durability settings, but without the ledger's own work (MVCC
validation, canonical JSON, hashing, SQLAlchemy, asyncio, the tip check).

- memory: the same rows appended to Python lists and dicts behind a lock.
- SQLite: plain sqlite3, WAL and synchronous=FULL, one BEGIN IMMEDIATE ...
  COMMIT with executemany per table, on the ledger's own tables.
- PostgreSQL: psycopg `executemany` per table in one transaction, on the
  ledger's own tables.
- Redis: one MULTI/EXEC pipeline per block in the ledger's layout (XADD,
  HSET state and versions, ZADD keys, RPUSH per history list, SADD, tip).

The rows come from a real block that ChainWriter builds once before timing;
from block to block only the block number, versions and tx ids change. Making
those tuples is inside the timed loop, as any writer has to make them.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
import redis
from closed_loop import CHANNEL, update_proposal
from scratch_stores import ScratchStore

from ledger_backends import Tip, open_store
from ledger_backends.chain import ChainWriter
from ledger_backends.hashing import canonical_json
from ledger_backends.memory import MemoryStore
from ledger_backends.records import BlockCommit

RAW_BLOCK_SIZE = 500

Row = tuple[Any, ...]

BLOCK_COLUMNS = ("channel", "number", "previous_hash", "data_hash", "hash", "timestamp", "tx_count")
TRANSACTION_COLUMNS = ("channel", "block_number", "tx_index", "tx_id", "record")
STATE_COLUMNS = ("channel", "key", "value", "block_number", "tx_index")
HISTORY_COLUMNS = (
    "channel",
    "key",
    "block_number",
    "tx_index",
    "tx_id",
    "value",
    "creator_uid",
    "creator_msp",
    "timestamp",
)


@dataclass(frozen=True)
class RawBlock:
    """One block's rows, in the column order of the ledger's SQL tables."""

    header: Row
    transactions: list[Row]
    state: list[Row]
    history: list[Row]


class RawRows:
    """Rows shaped like a real RAW_BLOCK_SIZE-transaction block, renumbered per block."""

    def __init__(self, size: int = RAW_BLOCK_SIZE) -> None:
        commit = sample_commit(size)
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
        block = self.block
        return RawBlock(
            header=(
                CHANNEL,
                number,
                block.previous_hash,
                block.data_hash,
                block.hash,
                block.timestamp,
                self.size,
            ),
            transactions=[
                (CHANNEL, number, index, f"{tx_id}@{number}", text)
                for index, (tx_id, text) in enumerate(zip(self.tx_ids, self.tx_texts, strict=True))
            ],
            state=[(CHANNEL, key, value, number, index) for key, value, index in self.writes],
            history=[
                (CHANNEL, key, number, index, f"{tx_id}@{number}", value, uid, msp, stamp)
                for key, index, tx_id, value, uid, msp, stamp in self.history
            ],
        )


def sample_commit(size: int) -> BlockCommit:
    """What ChainWriter hands a backend for `size` submitters' first transactions."""
    proposals = [update_proposal(f"raw/record-{i:04d}", None, 0, "raw") for i in range(size)]
    commit, _ = ChainWriter(MemoryStore(), CHANNEL).build(Tip.empty(), proposals)
    return commit


class RawWriter(Protocol):
    def write(self, rows: RawBlock) -> None: ...

    def close(self) -> None: ...


def measure_ceiling(writer: RawWriter, raw: RawRows, duration_s: float) -> float:
    """Write blocks back to back for `duration_s` (at least one); return transactions per second."""
    number = 0
    started = time.perf_counter()
    deadline = started + duration_s
    while number == 0 or time.perf_counter() < deadline:
        writer.write(raw.rows(number))
        number += 1
    return number * raw.size / (time.perf_counter() - started)


def open_raw_writer(scratch: ScratchStore, raw: RawRows) -> RawWriter:
    """A writer into the scratch store; SQL stores get the ledger's tables first."""
    if scratch.backend == "memory":
        return MemoryRawWriter()
    if scratch.backend in ("sqlite", "postgresql"):
        open_store(scratch.url).close()
    if scratch.backend == "sqlite":
        return SQLiteRawWriter(scratch.location)
    if scratch.backend == "postgresql":
        return PostgresRawWriter(scratch.server_url, scratch.location)
    if scratch.backend == "redis":
        return RedisRawWriter(scratch.server_url, scratch.location, raw)
    raise ValueError(f"No raw writer for backend {scratch.backend!r}.")


class MemoryRawWriter:
    """The memory store's structures, filled without the Block/HistoryEntry objects."""

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


def _insert_sql(table: str, columns: tuple[str, ...], mark: str) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"


def _upsert_state_sql(mark: str) -> str:
    return (
        _insert_sql("ledger_state", STATE_COLUMNS, mark)
        + " ON CONFLICT (channel, key) DO UPDATE SET value = excluded.value,"
        " block_number = excluded.block_number, tx_index = excluded.tx_index"
    )


@dataclass(frozen=True)
class _SqlStatements:
    block: str
    transactions: str
    state: str
    history: str

    @classmethod
    def with_mark(cls, mark: str) -> _SqlStatements:
        return cls(
            block=_insert_sql("ledger_blocks", BLOCK_COLUMNS, mark),
            transactions=_insert_sql("ledger_transactions", TRANSACTION_COLUMNS, mark),
            state=_upsert_state_sql(mark),
            history=_insert_sql("ledger_history", HISTORY_COLUMNS, mark),
        )


class SQLiteRawWriter:
    """Plain sqlite3 with the ledger's pragmas: WAL, synchronous=FULL."""

    def __init__(self, path: str) -> None:
        self._sql = _SqlStatements.with_mark("?")
        self._conn = sqlite3.connect(path, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")

    def write(self, rows: RawBlock) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(self._sql.block, rows.header)
            conn.executemany(self._sql.transactions, rows.transactions)
            conn.executemany(self._sql.state, rows.state)
            conn.executemany(self._sql.history, rows.history)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()


class PostgresRawWriter:
    """psycopg 3 executemany (pipelined) in one transaction per block."""

    def __init__(self, server_url: str, schema: str) -> None:
        self._sql = _SqlStatements.with_mark("%s")
        self._conn = psycopg.connect(
            server_url, autocommit=True, options=f"-c search_path={schema}"
        )

    def write(self, rows: RawBlock) -> None:
        with self._conn.transaction(), self._conn.cursor() as cursor:
            cursor.execute(self._sql.block, rows.header)
            cursor.executemany(self._sql.transactions, rows.transactions)
            cursor.executemany(self._sql.state, rows.state)
            cursor.executemany(self._sql.history, rows.history)

    def close(self) -> None:
        self._conn.close()


class RedisRawWriter:
    """One MULTI/EXEC pipeline per block, in the Redis backend's key layout."""

    def __init__(self, server_url: str, prefix: str, raw: RawRows) -> None:
        self._client = redis.Redis.from_url(server_url, decode_responses=True)
        self._keys = {
            part: f"{prefix}:{CHANNEL}:{part}"
            for part in ("tip", "blocks", "state", "versions", "keys", "history-keys")
        }
        self._history_prefix = f"{prefix}:{CHANNEL}:history:"
        self._channels_key = f"{prefix}:channels"
        # The stream entry holds the transactions' texts as one JSON list, as the backend does.
        self._tx_blob = json.dumps(list(raw.tx_texts), ensure_ascii=False)
        # A history text is canonical JSON [block, tx, tx_id, value, uid, msp, timestamp];
        # everything after the tx id is the same in every block, so it is encoded once.
        self._history_tails = {
            (key, index): canonical_json([value, uid, msp, stamp])[1:]
            for key, index, _, value, uid, msp, stamp in raw.history
        }

    def write(self, rows: RawBlock) -> None:
        channel, number, previous_hash, data_hash, block_hash, stamp, _ = rows.header
        keys = self._keys
        pipe = self._client.pipeline(transaction=True)
        pipe.xadd(
            keys["blocks"],
            {
                "number": number,
                "previous_hash": previous_hash,
                "data_hash": data_hash,
                "hash": block_hash,
                "timestamp": stamp,
                "txs": self._tx_blob,
            },
            id=f"{number}-1",
        )
        pipe.hset(keys["state"], mapping={row[1]: row[2] for row in rows.state})
        pipe.hset(keys["versions"], mapping={row[1]: f"{row[3]}:{row[4]}" for row in rows.state})
        pipe.zadd(keys["keys"], {row[1]: 0 for row in rows.state})
        tails = self._history_tails
        for _, key, _, index, tx_id, *_ in rows.history:
            text = f'[{number},{index},"{tx_id}",{tails[key, index]}'
            pipe.rpush(self._history_prefix + key, text)
        pipe.sadd(keys["history-keys"], *(entry[1] for entry in rows.history))
        pipe.hset(keys["tip"], mapping={"height": number + 1, "hash": block_hash})
        pipe.sadd(self._channels_key, channel)
        pipe.execute()

    def close(self) -> None:
        self._client.close()
