"""What the ledger is made of: proposals, transactions, blocks, state and history records."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from .hashing import (
    GENESIS_PREVIOUS_HASH,
    block_hash,
    canonical_json,
    commitment,
    data_hash,
    data_hash_of,
    is_salt,
    json_string,
    new_salt,
)
from .merkle import TreeNode

Version = tuple[int, int]
"""A key's version: (block number, transaction index) of its last valid write."""

LEGACY_SALT = ""
"""The salt a transaction stored before salts existed reads with."""

ForeignReads = Mapping[str, Mapping[str, Version | None]]
"""Reads of other channels: channel -> key -> the version seen, or None if the key was absent."""

JSONValue = Any
"""A JSON-compatible value (dict, list, str, int, float, bool); None in a write-set means delete."""


class Validation(StrEnum):
    VALID = "VALID"
    MVCC_READ_CONFLICT = "MVCC_READ_CONFLICT"


def format_timestamp(moment: datetime) -> str:
    """UTC, microsecond precision, ISO 8601 with a Z: the only timestamp form the ledger hashes."""
    utc = moment.astimezone(UTC)
    if utc.year < 1000:  # strftime writes such a year without leading zeros
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # The same text as that strftime, from C code several times faster.
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


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
    `foreign_reads` are reads of other channels the transaction depends on: it is
    committed only if each is still current when its block is appended (see
    ChainWriter for when that check is atomic).

    `salt` is the transaction's secret: 32 random bytes (hex), new for every
    proposal unless a caller that needs reproducible hashes passes one. The
    stored transaction commits to its write-set as SHA-256(salt ‖ canonical
    write-set), and `args_digest` is made the same way by the simulator, so
    neither can be tested against guesses by anyone who sees only hashes.
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
    foreign_reads: ForeignReads = field(default_factory=dict)
    salt: str = field(default_factory=new_salt)

    def __post_init__(self) -> None:
        if not is_salt(self.salt):
            raise ValueError("A transaction's salt is 32 bytes as 64 lower-case hex digits.")

    def canonical_text(self, validation: Validation) -> str:
        """The transaction as stored and hashed, once the committer has validated it."""
        return self.canonical_parts(validation)[0]

    def canonical_parts(self, validation: Validation) -> tuple[str, dict[str, str | None]]:
        """The canonical text, and each written value as canonical JSON (None: a delete).

        The text is the canonical JSON of the whole record, byte for byte as `canonical_json`
        would write it (tests/test_hashing.py holds the two side by side), put together from
        its parts: the fixed keys are already in sorted order, every string goes through the
        encoder's own string encoding, and every written value is encoded once, for both
        the write-set in the text and the commitment to it. Keys and text fields are strings,
        as typed; anything else raises TypeError instead of being hashed some other way.
        """
        values = value_texts(self.write_set)
        write_text = object_text(values)
        events = "[]"
        if self.events:
            events = canonical_json([{"name": e.name, "payload": e.payload} for e in self.events])
        foreign = "{}"
        if self.foreign_reads:
            foreign = object_text(
                {channel: _versions_text(reads) for channel, reads in self.foreign_reads.items()}
            )
        text = (
            f'{{"args_digest":{json_string(self.args_digest)}'
            f',"channel":{json_string(self.channel)}'
            f',"contract":{json_string(self.contract)}'
            f',"creator":{{"msp":{json_string(self.creator.msp)}'
            f',"uid":{json_string(self.creator.uid)}}}'
            f',"events":{events},"foreign_reads":{foreign}'
            f',"function":{json_string(self.function)}'
            f',"read_set":{_versions_text(self.read_set)}'
            f',"salt":{json_string(self.salt)}'
            f',"timestamp":{json_string(self.timestamp)}'
            f',"tx_id":{json_string(self.tx_id)}'
            f',"validation":{json_string(str(validation))}'
            f',"write_set":{write_text}'
            f',"write_set_commitment":"{commitment(self.salt, write_text)}"}}'
        )
        return text, values


def value_texts(
    write_set: Mapping[str, JSONValue | None],
    encode: Callable[[JSONValue], str] = canonical_json,
) -> dict[str, str | None]:
    """Each written value as canonical JSON, by key (None: the key is deleted); `encode`:
    `hashing.parsed_canonical_json` for a write-set read from a stored text."""
    return {key: None if value is None else encode(value) for key, value in write_set.items()}


def object_text(values: Mapping[str, str | None]) -> str:
    """The canonical JSON of an object with string keys whose values are already encoded
    (None: null), as `canonical_json` would write the object of the decoded values."""
    if len(values) == 1:  # as most write-sets are: nothing to sort
        for key, value in values.items():
            return f"{{{json_string(key)}:{'null' if value is None else value}}}"
    members = [
        f"{json_string(key)}:{'null' if values[key] is None else values[key]}"
        for key in sorted(values)
    ]
    return "{" + ",".join(members) + "}"


def _versions_text(reads: Mapping[str, Version | None]) -> str:
    """The reads as canonical JSON: key -> [block, tx] of the version seen, null if absent."""
    texts: dict[str, str | None] = {}
    for key, version in reads.items():
        if version is None:
            texts[key] = "null"
        elif len(version) == 2 and type(version[0]) is int and type(version[1]) is int:
            texts[key] = f"[{version[0]},{version[1]}]"
        else:  # not a version as the ledger makes them: leave its form to the encoder
            texts[key] = canonical_json(list(version))
    return object_text(texts)


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
    foreign_reads: ForeignReads
    salt: str
    write_set_commitment: str

    @classmethod
    def from_text(cls, text: str, block_number: int, tx_index: int) -> Transaction:
        """Parse a stored transaction; raises ValueError (or KeyError) if it is malformed.

        A transaction stored before commitments existed has no salt, commitment or
        foreign reads: it reads with an empty salt and commitment, and its write-set
        stays covered by its block's data hash as before.
        """
        raw = _parsed(text)
        creator = raw["creator"]
        events = raw["events"]
        foreign = raw.get("foreign_reads", _NONE)
        return cls(
            block_number,
            tx_index,
            raw["tx_id"],
            raw["channel"],
            raw["contract"],
            raw["function"],
            raw["args_digest"],
            Creator(creator["uid"], creator["msp"]),
            raw["timestamp"],
            _versions_from_json(raw["read_set"]),
            raw["write_set"],
            () if events == [] else tuple(Event(e["name"], e["payload"]) for e in events),
            raw["validation"],
            text,
            {} if foreign == _NONE else {c: _versions_from_json(r) for c, r in foreign.items()},
            raw.get("salt", LEGACY_SALT),
            raw.get("write_set_commitment", ""),
        )

    @property
    def is_valid(self) -> bool:
        return self.validation == Validation.VALID

    @property
    def is_legacy(self) -> bool:
        """Stored before transactions carried a salt and a write-set commitment."""
        return self.salt == LEGACY_SALT and self.write_set_commitment == ""

    @property
    def write_set_hash(self) -> str | None:
        """The stored, salted commitment to the write-set; the salt itself is never shown.

        None for a legacy transaction: an unsalted hash of its writes could be tested
        against guesses, so none is offered.
        """
        return None if self.is_legacy else self.write_set_commitment

    @property
    def commitment_holds(self) -> bool:
        """Whether the stored commitment is SHA-256(salt ‖ canonical write-set), recomputed.

        A legacy transaction has none to check (its block's data hash still covers it).
        """
        return self.commits_to(canonical_json(self.write_set))

    def commits_to(self, write_set_text: str) -> bool:
        """`commitment_holds`, given the write-set's canonical text (made however is
        quickest: a verification's replay puts it together from its values' texts)."""
        if self.is_legacy:
            return True
        return is_salt(self.salt) and self.write_set_commitment == commitment(
            self.salt, write_set_text
        )


@dataclass(frozen=True, slots=True)
class Block:
    """A block as stored: header fields and the canonical text of each transaction.

    `data_hash` and `hash` cover each transaction's whole canonical text, its
    secret salt included, so they reveal nothing that can be tested against
    guesses of the records written: every transaction hash that enters them
    is over 32 random bytes besides the contents.

    `tree_size` and `tree_root` (hex) are the channel's Merkle tree (`merkle.py`)
    after the block's last transaction, covered by `hash`; None only in blocks
    stored before the tree existed.
    """

    number: int
    previous_hash: str
    data_hash: str
    timestamp: str
    hash: str
    tx_texts: tuple[str, ...]
    tree_size: int | None = None
    tree_root: str | None = None

    @classmethod
    def build(
        cls,
        number: int,
        previous_hash: str,
        timestamp: str,
        tx_texts: tuple[str, ...],
        tree: tuple[int, str] | None = None,
        digests: list[bytes] | None = None,
    ) -> Block:
        """A block and its hashes; `tree` = (size, root hex) of the tree after its transactions,
        `digests` their SHA-256s when the caller has them (`transaction_digests`)."""
        digest = data_hash(list(tx_texts)) if digests is None else data_hash_of(digests)
        tree_size, tree_root = tree if tree is not None else (None, None)
        return cls(
            number=number,
            previous_hash=previous_hash,
            data_hash=digest,
            timestamp=timestamp,
            hash=block_hash(number, previous_hash, digest, timestamp, tree_size, tree_root),
            tx_texts=tx_texts,
            tree_size=tree_size,
            tree_root=tree_root,
        )

    @property
    def first_leaf(self) -> int | None:
        """The tree leaf index of the block's first transaction (None before trees existed)."""
        return None if self.tree_size is None else self.tree_size - len(self.tx_texts)

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
    """Everything one block changes, appended by a backend in one atomic step.

    `foreign_reads` are the reads of other channels *in the same store* that
    the block's valid transactions depend on: the backend appends the block
    only if each is still current, checked atomically with the append.
    `not_after` (a `time.monotonic()` instant) is set when valid transactions
    read channels of another store: the backend appends nothing after it, which
    bounds how old those reads can be when the block becomes visible.
    `tree_nodes` are the channel tree's nodes the block's transactions completed
    (every leaf among them), stored in the same atomic step.
    """

    block: Block
    tx_ids: tuple[str, ...]
    state_writes: tuple[StateWrite, ...]
    history: tuple[HistoryEntry, ...]
    foreign_reads: ForeignReads = field(default_factory=dict)
    not_after: float | None = None
    tree_nodes: tuple[TreeNode, ...] = ()


@dataclass(frozen=True, slots=True)
class Receipt:
    """Where a transaction landed once its block is durable."""

    tx_id: str
    block_number: int
    tx_index: int
    validation: Validation


_NONE: dict[str, Any] = {}  # read only: an empty object, as read


def _versions_from_json(raw: Mapping[str, Any]) -> dict[str, Version | None]:
    if raw == _NONE:
        return {}
    return {key: None if v is None else (int(v[0]), int(v[1])) for key, v in raw.items()}


# What json.loads runs after checking its argument and skipping whitespace, in C: one JSON
# value from an index, and the index after it.
_ScanOnce = Callable[[str, int], tuple[Any, int]]
_scan_once: _ScanOnce = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _parsed(text: str) -> Any:
    """`json.loads(text)`: the decoder's own scanner straight, for a string that is one JSON
    value from its first character to its last, as stored texts are; json.loads for any
    other (which it parses or refuses as ever)."""
    if type(text) is str:
        try:
            value, end = _scan_once(text, 0)
        except StopIteration:
            pass
        else:
            if end == len(text):
                return value
    return json.loads(text)
