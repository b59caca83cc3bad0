"""What the ledger is made of: proposals, transactions, blocks, state and history records."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from .hashing import GENESIS_PREVIOUS_HASH, block_hash, canonical_json, data_hash, sha256_hex

Version = tuple[int, int]
"""A key's version: (block number, transaction index) of its last valid write."""

JSONValue = Any
"""A JSON-compatible value (dict, list, str, int, float, bool); None in a write-set means delete."""


class Validation(StrEnum):
    VALID = "VALID"
    MVCC_READ_CONFLICT = "MVCC_READ_CONFLICT"


def format_timestamp(moment: datetime) -> str:
    """UTC, microsecond precision, ISO 8601 with a Z: the only timestamp form the ledger hashes."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Creator:
    uid: str
    msp: str


@dataclass(frozen=True, slots=True)
class Event:
    name: str
    payload: JSONValue = None


@dataclass(frozen=True, slots=True)
class Proposal:
    """A simulated transaction: what it read (with versions) and what it wants to write.

    `read_set` maps each key read to the version seen, or None if the key was absent.
    `write_set` maps each key to its new JSON value, or None to delete it.
    """

    tx_id: str
    channel: str
    contract: str
    function: str
    args_digest: str
    creator: Creator
    timestamp: str
    read_set: Mapping[str, Version | None] = field(default_factory=dict)
    write_set: Mapping[str, JSONValue | None] = field(default_factory=dict)
    events: tuple[Event, ...] = ()

    def canonical_text(self, validation: Validation) -> str:
        """The transaction as stored and hashed, once the committer has validated it."""
        return canonical_json(
            {
                "args_digest": self.args_digest,
                "channel": self.channel,
                "contract": self.contract,
                "creator": {"msp": self.creator.msp, "uid": self.creator.uid},
                "events": [{"name": e.name, "payload": e.payload} for e in self.events],
                "function": self.function,
                "read_set": {
                    key: None if version is None else list(version)
                    for key, version in self.read_set.items()
                },
                "timestamp": self.timestamp,
                "tx_id": self.tx_id,
                "validation": str(validation),
                "write_set": dict(self.write_set),
            }
        )


@dataclass(frozen=True, slots=True)
class Transaction:
    """A committed transaction, read back from its canonical text."""

    block_number: int
    tx_index: int
    tx_id: str
    channel: str
    contract: str
    function: str
    args_digest: str
    creator: Creator
    timestamp: str
    read_set: Mapping[str, Version | None]
    write_set: Mapping[str, JSONValue | None]
    events: tuple[Event, ...]
    validation: str
    text: str

    @classmethod
    def from_text(cls, text: str, block_number: int, tx_index: int) -> Transaction:
        """Parse a stored transaction; raises ValueError (or KeyError) if it is malformed."""
        raw = json.loads(text)
        return cls(
            block_number=block_number,
            tx_index=tx_index,
            tx_id=raw["tx_id"],
            channel=raw["channel"],
            contract=raw["contract"],
            function=raw["function"],
            args_digest=raw["args_digest"],
            creator=Creator(uid=raw["creator"]["uid"], msp=raw["creator"]["msp"]),
            timestamp=raw["timestamp"],
            read_set={
                key: None if v is None else (int(v[0]), int(v[1]))
                for key, v in raw["read_set"].items()
            },
            write_set=raw["write_set"],
            events=tuple(Event(e["name"], e["payload"]) for e in raw["events"]),
            validation=raw["validation"],
            text=text,
        )

    @property
    def is_valid(self) -> bool:
        return self.validation == Validation.VALID

    @property
    def write_set_hash(self) -> str:
        return sha256_hex(canonical_json(self.write_set))


@dataclass(frozen=True, slots=True)
class Block:
    """A block as stored: header fields and the canonical text of each transaction."""

    number: int
    previous_hash: str
    data_hash: str
    timestamp: str
    hash: str
    tx_texts: tuple[str, ...]

    @classmethod
    def build(
        cls, number: int, previous_hash: str, timestamp: str, tx_texts: tuple[str, ...]
    ) -> Block:
        digest = data_hash(list(tx_texts))
        return cls(
            number=number,
            previous_hash=previous_hash,
            data_hash=digest,
            timestamp=timestamp,
            hash=block_hash(number, previous_hash, digest, timestamp),
            tx_texts=tx_texts,
        )

    def transactions(self) -> list[Transaction]:
        return [
            Transaction.from_text(text, self.number, index)
            for index, text in enumerate(self.tx_texts)
        ]


@dataclass(frozen=True, slots=True)
class Tip:
    """The end of a channel's chain: how many blocks it has and the hash of the last one."""

    height: int
    hash: str

    @classmethod
    def empty(cls) -> Tip:
        return cls(0, GENESIS_PREVIOUS_HASH)


@dataclass(frozen=True, slots=True)
class StateRecord:
    """One key of the world state: its value as canonical JSON text and its version."""

    key: str
    value: str
    version: Version

    def json(self) -> JSONValue:
        return json.loads(self.value)


@dataclass(frozen=True, slots=True)
class StateWrite:
    """A change a block makes to the world state; value None deletes the key."""

    key: str
    value: str | None
    version: Version


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One valid write of a key (Fabric's GetHistoryForKey); value None marks a delete."""

    key: str
    block_number: int
    tx_index: int
    tx_id: str
    value: str | None
    creator_uid: str
    creator_msp: str
    timestamp: str

    @property
    def is_delete(self) -> bool:
        return self.value is None

    def json(self) -> JSONValue:
        return None if self.value is None else json.loads(self.value)


@dataclass(frozen=True, slots=True)
class BlockCommit:
    """Everything one block changes, appended by a backend in one atomic step."""

    block: Block
    tx_ids: tuple[str, ...]
    state_writes: tuple[StateWrite, ...]
    history: tuple[HistoryEntry, ...]


@dataclass(frozen=True, slots=True)
class Receipt:
    """Where a transaction landed once its block is durable."""

    tx_id: str
    block_number: int
    tx_index: int
    validation: Validation
