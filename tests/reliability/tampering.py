"""Changing one byte of a stored ledger behind the server's back, as a database administrator could.

Each change goes straight to the store with the database's own client (plain
SQL through sqlite3 or psycopg, plain Redis commands), never through
`ledger_backends`, and is checked to alter exactly one byte of what is stored.
"""

from __future__ import annotations

import json
import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import psycopg
import redis


@dataclass(frozen=True)
class BlockField:
    """One header field of a block: hash, data_hash, previous_hash or timestamp."""

    channel: str
    number: int
    field: str


@dataclass(frozen=True)
class TransactionText:
    """The stored canonical text of one transaction (Redis keeps a block's texts in one field)."""

    channel: str
    number: int
    index: int


@dataclass(frozen=True)
class WriteSetCommitment:
    """The salted write-set commitment (64 hex digits) inside one stored transaction text."""

    channel: str
    number: int
    index: int

    @property
    def text(self) -> TransactionText:
        return TransactionText(self.channel, self.number, self.index)


@dataclass(frozen=True)
class StateValue:
    """The value of one world-state row."""

    channel: str
    key: str


@dataclass(frozen=True)
class HistoryValue:
    """One row of a key's history: the write of transaction `index` in block `number`."""

    channel: str
    key: str
    number: int
    index: int


StoredText = BlockField | TransactionText | StateValue | HistoryValue
Place = StoredText | WriteSetCommitment

# Inside a transaction's canonical text, or that text again as a JSON string (Redis).
_COMMITMENT = re.compile(r'write_set_commitment\\?":\\?"([0-9a-f]{64})')


class RawStore(ABC):
    """Reads and overwrites stored texts without the ledger's code."""

    block_texts_together = False  # one stored text holds every transaction of a block

    def read(self, place: Place) -> str:
        """The text stored at `place`, exactly as stored."""
        if isinstance(place, WriteSetCommitment):
            stored, start = self._commitment_at(place)
            return stored[start : start + 64]
        return self.read_text(place)

    def write(self, place: Place, text: str) -> None:
        """Overwrite the text stored at `place`."""
        if isinstance(place, WriteSetCommitment):
            stored, start = self._commitment_at(place)
            text = stored[:start] + text + stored[start + 64 :]
            place = place.text
        self.write_text(place, text)

    def _commitment_at(self, place: WriteSetCommitment) -> tuple[str, int]:
        """The stored text holding the commitment, and where in it the commitment starts."""
        stored = self.read_text(place.text)
        found = list(_COMMITMENT.finditer(stored))
        return stored, found[place.index if self.block_texts_together else 0].start(1)

    @abstractmethod
    def read_text(self, place: StoredText) -> str:
        """One whole stored text."""

    @abstractmethod
    def write_text(self, place: StoredText, text: str) -> None:
        """Overwrite one whole stored text."""

    def change(self, place: Place, old: str, new: str) -> None:
        """Replace the one occurrence of `old` at `place` by `new`, one byte apart."""
        stored = self.read(place)
        assert stored.count(old) == 1, f"{old!r} is not stored exactly once at {place}"
        changed = stored.replace(old, new)
        before, after = stored.encode(), changed.encode()
        assert len(before) == len(after)
        assert sum(a != b for a, b in zip(before, after, strict=True)) == 1
        self.write(place, changed)


def one_digit_changed(hex_text: str) -> str:
    """The same hash with its first hex digit changed: one byte, still well-formed."""
    return ("1" if hex_text[0] != "1" else "2") + hex_text[1:]


@contextmanager
def raw_store(ledger_url: str) -> Iterator[RawStore]:
    """Direct access to the store behind a sqlite, postgresql or redis ledger URL."""
    parts = urlsplit(ledger_url)
    query = dict(parse_qsl(parts.query))
    if parts.scheme == "sqlite":
        sqlite_db = sqlite3.connect(parts.path.removeprefix("/"), isolation_level=None)
        try:
            yield SqlRawStore(sqlite_db, "?")
        finally:
            sqlite_db.close()
    elif parts.scheme == "postgresql":
        dsn = ledger_url.split("?", 1)[0]
        with psycopg.connect(dsn, autocommit=True) as postgres_db:
            postgres_db.execute(f'SET search_path TO "{query["schema"]}"')
            yield SqlRawStore(postgres_db, "%s")
    elif parts.scheme == "redis":
        client = redis.Redis.from_url(ledger_url.split("?", 1)[0], decode_responses=True)
        try:
            yield RedisRawStore(client, query.get("prefix", "healthledger") + ":")
        finally:
            client.close()
    else:
        raise ValueError(f"no raw access to {ledger_url}")


class SqlRawStore(RawStore):
    """The four ledger tables of SQLite and PostgreSQL, by plain SQL."""

    def __init__(self, connection: Any, mark: str) -> None:
        self.connection = connection
        self.mark = mark  # the driver's parameter marker

    def _where(self, place: StoredText) -> tuple[str, str, tuple[object, ...]]:
        """Table, column and the condition's parameters of one stored text."""
        if isinstance(place, BlockField):
            assert place.field in {"hash", "data_hash", "previous_hash", "timestamp"}
            return "ledger_blocks", place.field, (place.channel, place.number)
        if isinstance(place, TransactionText):
            return "ledger_transactions", "record", (place.channel, place.number, place.index)
        if isinstance(place, StateValue):
            return "ledger_state", "value", (place.channel, place.key)
        return "ledger_history", "value", (place.channel, place.key, place.number, place.index)

    def _condition(self, table: str) -> str:
        columns = {
            "ledger_blocks": ("channel", "number"),
            "ledger_transactions": ("channel", "block_number", "tx_index"),
            "ledger_state": ("channel", "key"),
            "ledger_history": ("channel", "key", "block_number", "tx_index"),
        }[table]
        return " AND ".join(f"{column} = {self.mark}" for column in columns)

    def read_text(self, place: StoredText) -> str:
        table, column, params = self._where(place)
        rows = self.connection.execute(
            f"SELECT {column} FROM {table} WHERE {self._condition(table)}", params
        ).fetchall()
        assert len(rows) == 1, f"{place} is not stored exactly once"
        return str(rows[0][0])

    def write_text(self, place: StoredText, text: str) -> None:
        table, column, params = self._where(place)
        self.connection.execute(
            f"UPDATE {table} SET {column} = {self.mark} WHERE {self._condition(table)}",
            (text, *params),
        )


class RedisRawStore(RawStore):
    """The Redis layout of redis_streams.py, by plain Redis commands."""

    block_texts_together = True

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def _name(self, channel: str, part: str) -> str:
        return f"{self.prefix}{channel}:{part}"

    def read_text(self, place: StoredText) -> str:
        if isinstance(place, BlockField | TransactionText):
            return str(self._block_entry(place)[1][_stream_field(place)])
        if isinstance(place, StateValue):
            return str(self.client.hget(self._name(place.channel, "state"), place.key))
        return self._history_position(place)[1]

    def write_text(self, place: StoredText, text: str) -> None:
        if isinstance(place, BlockField | TransactionText):
            self._rewrite_block(place, text)
        elif isinstance(place, StateValue):
            self.client.hset(self._name(place.channel, "state"), place.key, text)
        else:
            position, _ = self._history_position(place)
            self.client.lset(self._name(place.channel, f"history:{place.key}"), position, text)

    def _block_entry(self, place: BlockField | TransactionText) -> tuple[str, dict[str, str]]:
        stream = self._name(place.channel, "blocks")
        entry_id = f"{place.number}-1"
        (entry,) = self.client.xrange(stream, entry_id, entry_id)
        return entry  # type: ignore[no-any-return]

    def _rewrite_block(self, place: BlockField | TransactionText, text: str) -> None:
        """A stream entry cannot be edited in place: write the stream again, one field changed."""
        stream = self._name(place.channel, "blocks")
        entries = self.client.xrange(stream)
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(stream)
        for entry_id, fields in entries:
            if entry_id == f"{place.number}-1":
                fields = {**fields, _stream_field(place): text}
            pipe.xadd(stream, fields, id=entry_id)
        pipe.execute()

    def _history_position(self, place: HistoryValue) -> tuple[int, str]:
        entries = self.client.lrange(self._name(place.channel, f"history:{place.key}"), 0, -1)
        for position, text in enumerate(entries):
            if json.loads(text)[:2] == [place.number, place.index]:
                return position, str(text)
        raise AssertionError(f"{place} is not stored")


def _stream_field(place: BlockField | TransactionText) -> str:
    return place.field if isinstance(place, BlockField) else "txs"
