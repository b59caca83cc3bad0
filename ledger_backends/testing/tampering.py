"""Changing stored ledger records behind the ledger's back, as a database administrator could.

A place names one stored text of one record kind, the same on every backend:
a block header field, a transaction's canonical text, the write-set commitment
inside it, a world-state value, a history value, a tree node's hash (as hex,
whichever way it is stored). `tamper(target, place,
mutate)` rewrites it; `raw_store(target)` reads, writes and changes it by one
byte. A target is a ledger URL (SQLite, PostgreSQL, Redis: reached with the
database's own client, never through the backend's code, so a server in
another process sees the change) or an open store (any backend, `memory://`
included).

A backend with a new storage layout needs one `RawStore` subclass here and a
line in `raw_store`.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import psycopg
import redis

from ..base import LedgerStore
from ..hashing import canonical_json
from ..memory import MemoryStore
from ..records import HistoryEntry

Mutation = Callable[[str], str]


@dataclass(frozen=True)
class BlockField:
    """One header field of a block: hash, data_hash, previous_hash, timestamp, tree_size or
    tree_root (the last two only in blocks that have a tree)."""

    channel: str
    number: int
    field: str


@dataclass(frozen=True)
class TransactionText:
    """The stored canonical text of transaction `index` of block `number`."""

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
    def transaction(self) -> TransactionText:
        return TransactionText(self.channel, self.number, self.index)


@dataclass(frozen=True)
class StateValue:
    """The value text of one world-state key."""

    channel: str
    key: str


@dataclass(frozen=True)
class HistoryValue:
    """The value text of one history entry: the write of transaction `index` in block `number`."""

    channel: str
    key: str
    number: int
    index: int


@dataclass(frozen=True)
class TreeNodeHash:
    """The stored hash of node (`level`, `index`) of a channel's Merkle tree, as 64 hex
    digits (SQL stores the 32 bytes, read and written here as hex)."""

    channel: str
    level: int
    index: int


StoredText = BlockField | TransactionText | StateValue | HistoryValue | TreeNodeHash
Place = StoredText | WriteSetCommitment

_HEADER_FIELDS = {"hash", "data_hash", "previous_hash", "timestamp", "tree_size", "tree_root"}
# The columns that pick out one row of each SQL ledger table.
_SQL_KEYS = {
    "ledger_blocks": ("channel", "number"),
    "ledger_transactions": ("channel", "block_number", "tx_index"),
    "ledger_state": ("channel", "key"),
    "ledger_history": ("channel", "key", "block_number", "tx_index"),
    "ledger_tree_nodes": ("channel", "level", "idx"),
}
_COMMITMENT = re.compile(r'"write_set_commitment":"([0-9a-f]{64})"')


def one_digit_changed(hex_text: str) -> str:
    """The same hash with its first hex digit changed: one byte, still well-formed."""
    return ("1" if hex_text[0] != "1" else "2") + hex_text[1:]


def commitment_changed(transaction_text: str) -> str:
    """A transaction's canonical text with one digit of its write-set commitment changed."""
    start = _commitment_start(transaction_text)
    return transaction_text[:start] + one_digit_changed(transaction_text[start:])


def tamper(target: str | LedgerStore, place: Place, mutate: Mutation) -> None:
    """Replace the text stored at `place` by `mutate` of it."""
    with raw_store(target) as raw:
        raw.write(place, mutate(raw.read(place)))


@contextmanager
def raw_store(target: str | LedgerStore) -> Iterator[RawStore]:
    """Direct access to the stored texts of a ledger, by URL or by open store.

    Raises ValueError for a URL without raw access: `memory://` names no store another
    connection could reach, so pass the open MemoryStore.
    """
    if isinstance(target, MemoryStore):
        yield MemoryRawStore(target)
        return
    url = target if isinstance(target, str) else target.url
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    server = url.split("?", 1)[0]
    if parts.scheme == "sqlite":
        sqlite_db = sqlite3.connect(parts.path.removeprefix("/"), isolation_level=None)
        try:
            yield SqlRawStore(sqlite_db, "?")
        finally:
            sqlite_db.close()
    elif parts.scheme in ("postgresql", "postgres"):
        with psycopg.connect(server, autocommit=True) as postgres_db:
            if "schema" in query:
                postgres_db.execute(f'SET search_path TO "{query["schema"]}"')
            yield SqlRawStore(postgres_db, "%s")
    elif parts.scheme == "redis":
        with redis.Redis.from_url(server, decode_responses=True) as client:
            yield RedisRawStore(client, query.get("prefix", "healthledger") + ":")
    else:
        raise ValueError(f"No raw access to the ledger at {url}.")


class RawStore(ABC):
    """Reads and overwrites the texts a backend stores, without the backend's code."""

    def read(self, place: Place) -> str:
        """The text stored at `place`, exactly as stored."""
        if isinstance(place, WriteSetCommitment):
            stored = self.read_text(place.transaction)
            start = _commitment_start(stored)
            return stored[start : start + 64]
        return self.read_text(place)

    def write(self, place: Place, text: str) -> None:
        """Overwrite the text stored at `place`."""
        if isinstance(place, WriteSetCommitment):
            stored = self.read_text(place.transaction)
            start = _commitment_start(stored)
            self.write_text(place.transaction, stored[:start] + text + stored[start + 64 :])
        else:
            self.write_text(place, text)

    def change(self, place: Place, old: str, new: str) -> None:
        """Replace the one occurrence of `old` at `place` by `new`, one byte apart."""
        stored = self.read(place)
        assert stored.count(old) == 1, f"{old!r} is not stored exactly once at {place}"
        changed = stored.replace(old, new)
        before, after = stored.encode(), changed.encode()
        assert len(before) == len(after)
        assert sum(a != b for a, b in zip(before, after, strict=True)) == 1
        self.write(place, changed)

    @abstractmethod
    def read_text(self, place: StoredText) -> str:
        """One whole stored text."""

    @abstractmethod
    def write_text(self, place: StoredText, text: str) -> None:
        """Overwrite one whole stored text."""


class SqlRawStore(RawStore):
    """The ledger tables of SQLite and PostgreSQL, by plain SQL on a DB-API connection."""

    def __init__(self, connection: Any, mark: str) -> None:
        self.connection = connection
        self.mark = mark  # the driver's parameter marker

    def read_text(self, place: StoredText) -> str:
        table, column, params = _row(place)
        rows = self.connection.execute(
            f"SELECT {column} FROM {table} WHERE {self._condition(table)}", params
        ).fetchall()
        assert len(rows) == 1 and rows[0][0] is not None, f"{place} is not stored exactly once"
        if isinstance(place, TreeNodeHash):
            return bytes(rows[0][0]).hex()
        return str(rows[0][0])

    def write_text(self, place: StoredText, text: str) -> None:
        table, column, params = _row(place)
        self.connection.execute(
            f"UPDATE {table} SET {column} = {self.mark} WHERE {self._condition(table)}",
            (_sql_value(place, text), *params),
        )

    def _condition(self, table: str) -> str:
        return " AND ".join(f"{column} = {self.mark}" for column in _SQL_KEYS[table])


def _row(place: StoredText) -> tuple[str, str, tuple[object, ...]]:
    """Table, column and key values of the SQL row holding `place`."""
    if isinstance(place, BlockField):
        assert place.field in _HEADER_FIELDS, place
        return "ledger_blocks", place.field, (place.channel, place.number)
    if isinstance(place, TransactionText):
        return "ledger_transactions", "record", (place.channel, place.number, place.index)
    if isinstance(place, StateValue):
        return "ledger_state", "value", (place.channel, place.key)
    if isinstance(place, TreeNodeHash):
        return "ledger_tree_nodes", "hash", (place.channel, place.level, place.index)
    return "ledger_history", "value", (place.channel, place.key, place.number, place.index)


def _sql_value(place: StoredText, text: str) -> object:
    """The column value that stores `text` at `place`: bytes for a node hash, an integer
    for a tree size, else the text."""
    if isinstance(place, TreeNodeHash):
        return bytes.fromhex(text)
    if isinstance(place, BlockField) and place.field == "tree_size":
        return int(text)
    return text


class RedisRawStore(RawStore):
    """The layout of redis_streams.py, by plain Redis commands.

    A block's transaction texts share one stream field (a JSON list) and a history
    entry is a JSON list holding the value; only the text at the place is rewritten.
    A channel's tree nodes are one hash, field "LEVEL:INDEX", value the hash in hex.
    """

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def read_text(self, place: StoredText) -> str:
        if isinstance(place, BlockField):
            assert place.field in _HEADER_FIELDS, place
            return str(self._block_fields(place.channel, place.number)[place.field])
        if isinstance(place, TransactionText):
            return self._transactions(place)[place.index]
        if isinstance(place, StateValue):
            found = self.client.hget(self._name(place.channel, "state"), place.key)
            assert found is not None, f"{place} is not stored"
            return str(found)
        if isinstance(place, TreeNodeHash):
            found = self.client.hget(self._name(place.channel, "tree"), _node_field(place))
            assert found is not None, f"{place} is not stored"
            return str(found)
        value = self._history_entry(place)[1][3]
        assert value is not None, f"{place} is a delete: it stores no value"
        return str(value)

    def write_text(self, place: StoredText, text: str) -> None:
        if isinstance(place, BlockField):
            self._rewrite_block(place.channel, place.number, place.field, text)
        elif isinstance(place, TransactionText):
            texts = self._transactions(place)
            texts[place.index] = text
            self._rewrite_block(place.channel, place.number, "txs", _stream_json(texts))
        elif isinstance(place, StateValue):
            self.client.hset(self._name(place.channel, "state"), place.key, text)
        elif isinstance(place, TreeNodeHash):
            self.client.hset(self._name(place.channel, "tree"), _node_field(place), text)
        else:
            position, entry = self._history_entry(place)
            entry[3] = text
            name = self._name(place.channel, f"history:{place.key}")
            self.client.lset(name, position, canonical_json(entry))

    def _name(self, channel: str, part: str) -> str:
        return f"{self.prefix}{channel}:{part}"

    def _block_fields(self, channel: str, number: int) -> dict[str, str]:
        entry_id = f"{number}-1"
        (entry,) = self.client.xrange(self._name(channel, "blocks"), entry_id, entry_id)
        return dict(entry[1])

    def _transactions(self, place: TransactionText) -> list[str]:
        stored = self._block_fields(place.channel, place.number)["txs"]
        texts: list[str] = json.loads(stored)
        assert _stream_json(texts) == stored, "the transactions are not encoded as expected"
        return texts

    def _rewrite_block(self, channel: str, number: int, field: str, text: str) -> None:
        """A stream entry cannot be edited in place: write the stream again, one field changed."""
        stream = self._name(channel, "blocks")
        entries = self.client.xrange(stream)
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(stream)
        for entry_id, fields in entries:
            if entry_id == f"{number}-1":
                fields = {**fields, field: text}
            pipe.xadd(stream, fields, id=entry_id)
        pipe.execute()

    def _history_entry(self, place: HistoryValue) -> tuple[int, list[Any]]:
        """The position of the entry in the key's list, and the entry's fields."""
        entries = self.client.lrange(self._name(place.channel, f"history:{place.key}"), 0, -1)
        for position, stored in enumerate(entries):
            entry: list[Any] = json.loads(stored)
            if entry[:2] == [place.number, place.index]:
                assert canonical_json(entry) == stored, "the entry is not encoded as expected"
                return position, entry
        raise AssertionError(f"{place} is not stored")


def _stream_json(texts: list[str]) -> str:
    return json.dumps(texts, ensure_ascii=False)


def _node_field(place: TreeNodeHash) -> str:
    return f"{place.level}:{place.index}"


class MemoryRawStore(RawStore):
    """The dictionaries of an open MemoryStore."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def read_text(self, place: StoredText) -> str:
        data = self.store._channels[place.channel]
        if isinstance(place, BlockField):
            assert place.field in _HEADER_FIELDS, place
            field = getattr(data.blocks[place.number], place.field)
            assert field is not None, f"{place} is not stored: the block has no tree"
            return str(field)
        if isinstance(place, TransactionText):
            return data.blocks[place.number].tx_texts[place.index]
        if isinstance(place, StateValue):
            return data.state[place.key][0]
        if isinstance(place, TreeNodeHash):
            return data.tree[(place.level, place.index)].hex()
        value = self._history_entry(place)[1].value
        assert value is not None, f"{place} is a delete: it stores no value"
        return value

    def write_text(self, place: StoredText, text: str) -> None:
        data = self.store._channels[place.channel]
        if isinstance(place, BlockField):
            header: dict[str, Any] = {
                place.field: int(text) if place.field == "tree_size" else text
            }
            data.blocks[place.number] = dataclasses.replace(data.blocks[place.number], **header)
        elif isinstance(place, TransactionText):
            block = data.blocks[place.number]
            texts = list(block.tx_texts)
            texts[place.index] = text
            data.blocks[place.number] = dataclasses.replace(block, tx_texts=tuple(texts))
        elif isinstance(place, StateValue):
            data.state[place.key] = (text, data.state[place.key][1])
        elif isinstance(place, TreeNodeHash):
            data.tree[(place.level, place.index)] = bytes.fromhex(text)
        else:
            position, entry = self._history_entry(place)
            data.history[place.key][position] = dataclasses.replace(entry, value=text)

    def _history_entry(self, place: HistoryValue) -> tuple[int, HistoryEntry]:
        entries = self.store._channels[place.channel].history[place.key]
        for position, entry in enumerate(entries):
            if (entry.block_number, entry.tx_index) == (place.number, place.index):
                return position, entry
        raise AssertionError(f"{place} is not stored")


def _commitment_start(transaction_text: str) -> int:
    found = _COMMITMENT.search(transaction_text)
    assert found is not None, "the transaction text holds no write-set commitment"
    return found.start(1)
