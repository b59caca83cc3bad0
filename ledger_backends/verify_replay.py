"""What verification replays: each transaction's commitment and validation code checked, and
its valid writes applied, in memory (`MemoryReplay`, for the blocks after a checked tip).

A full check from block 0 replays into a temporary database instead (`verify_disk.py`); both
check a transaction with `check_transaction`, so they agree on what is damage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from .base import LedgerStore
from .hashing import canonical_json, parsed_canonical_json
from .records import (
    HistoryEntry,
    StateRecord,
    Transaction,
    Validation,
    Version,
    object_text,
    value_texts,
)

HISTORY_DIFFERS = "the key history differs from what this block wrote."
STATE_EXTRA = "the world state holds a key no valid transaction wrote."
STATE_DIFFERS = "the world state differs from what this block wrote."
STATE_MISSING = "a key this block wrote is missing from the world state."


class DamageFoundError(Exception):
    """Damage at block `block_number`; `reason` is the sentence a verification reports."""

    def __init__(self, block_number: int, reason: str) -> None:
        super().__init__(reason)
        self.block_number = block_number
        self.reason = reason


Written = dict[str, str | None]
"""The canonical text of each value a write-set writes (None: the key is deleted)."""


def write_set_text(write_set: object, written: Written) -> str:
    """`canonical_json(write_set)`, put together from its values' texts, `written`, when it is
    a mapping (as every readable transaction's is): sorted keys, each value's text (never
    empty: the text of "" is two quotes), null for a delete."""
    if not isinstance(write_set, dict):
        return canonical_json(write_set)
    return object_text(written)


_VALID = str(Validation.VALID)
_CONFLICT = str(Validation.MVCC_READ_CONFLICT)


def check_transaction(
    tx: Transaction, version_of: Callable[[str], Version | None]
) -> Written | None:
    """Check one transaction's commitment and validation code; return the texts of the
    values it writes, or None if it is a marked conflict (which writes nothing).

    `version_of` gives a key's version just before the transaction (None: absent). A
    conflict is recomputed from the channel's own reads. Foreign reads are another
    channel's, whose order relative to this one the chain does not record, so a
    transaction that has some may also be a conflict because of them.
    """
    written = value_texts(tx.write_set, parsed_canonical_json)
    if not tx.commits_to(write_set_text(tx.write_set, written)):
        raise DamageFoundError(
            tx.block_number,
            f"the write-set commitment of transaction {tx.tx_index} does not match its write-set.",
        )
    reads = tx.read_set
    conflict = bool(reads) and any(version_of(key) != version for key, version in reads.items())
    validation = tx.validation
    marked = validation == _CONFLICT
    if (validation != _VALID and not marked) or (
        conflict != marked and not (marked and tx.foreign_reads)
    ):
        raise DamageFoundError(
            tx.block_number,
            f"transaction {tx.tx_index} is marked {tx.validation} but replay disagrees.",
        )
    return None if marked else written


def earliest(damages: Iterable[tuple[str, DamageFoundError]], left_out: set[str]) -> None:
    """Raise the earliest of `damages` (the first listed among equals) to a key not left out."""
    relevant = [damage for key, damage in damages if key not in left_out]
    if relevant:
        raise min(relevant, key=lambda d: d.block_number)


class MemoryReplay:
    """The world state and history written by the valid write-sets of a run of blocks, in
    memory: for `verify_channel_since`, which replays only the blocks after a checked tip."""

    def __init__(self, prior: Callable[[str], tuple[str, Version] | None]) -> None:
        """`prior` gives a key's value and version before the replay's first block."""
        self.state: dict[str, tuple[str, Version]] = {}
        self.history: dict[str, list[HistoryEntry]] = {}
        self._prior = prior
        self._looked_up: set[str] = set()

    def begin_chunk(self, transactions: list[Transaction]) -> None:
        """Nothing to read ahead: keys are looked up one by one, as transactions read them."""

    def end_chunk(self) -> None:
        """Nothing to write: the replay is in memory."""

    def apply(self, tx: Transaction) -> Iterable[str]:
        """Check the transaction (`check_transaction`), replay its writes if it is valid;
        return the keys it wrote."""
        self._look_up(tx.read_set)
        written = check_transaction(tx, self._version_of)
        if written is None:
            return ()
        version = (tx.block_number, tx.tx_index)
        for key, text in written.items():
            if text is None:
                self.state.pop(key, None)
            else:
                self.state[key] = (text, version)
            self.history.setdefault(key, []).append(
                HistoryEntry(
                    key=key,
                    block_number=tx.block_number,
                    tx_index=tx.tx_index,
                    tx_id=tx.tx_id,
                    value=text,
                    creator_uid=tx.creator.uid,
                    creator_msp=tx.creator.msp,
                    timestamp=tx.timestamp,
                )
            )
        return written.keys()

    def _version_of(self, key: str) -> Version | None:
        found = self.state.get(key)
        return None if found is None else found[1]

    def _look_up(self, keys: Iterable[str]) -> None:
        """Learn the value before the replay's first block of keys it has not seen yet."""
        for key in keys:
            if key not in self.state and key not in self.history and key not in self._looked_up:
                self._looked_up.add(key)
                found = self._prior(key)
                if found is not None:
                    self.state[key] = found

    def written_state_damage(
        self, stored: Mapping[str, StateRecord | None]
    ) -> list[tuple[str, DamageFoundError]]:
        """Compare the stored rows of keys the replay wrote with what it wrote last."""
        damages: list[tuple[str, DamageFoundError]] = []
        for key, record in stored.items():
            expected = self.state.get(key)
            if record is None and expected is not None:
                damages.append((key, DamageFoundError(expected[1][0], STATE_MISSING)))
            elif record is not None and expected is None:
                damages.append((key, DamageFoundError(record.version[0], STATE_EXTRA)))
            elif record is not None and expected != (record.value, record.version):
                block = self.history[key][-1].block_number
                damages.append((key, DamageFoundError(block, STATE_DIFFERS)))
        return damages

    def history_damage(self, stored: Iterable[HistoryEntry]) -> list[tuple[str, DamageFoundError]]:
        """Compare the stored entries of each key with the replayed ones, oldest first; a
        key's damage is at the first entry where they part."""
        stored_by_key: dict[str, list[HistoryEntry]] = {}
        for entry in stored:
            stored_by_key.setdefault(entry.key, []).append(entry)
        damages: list[tuple[str, DamageFoundError]] = []
        for key in self.history.keys() | stored_by_key.keys():
            expected = self.history.get(key, [])
            actual = sorted(stored_by_key.get(key, []), key=lambda e: (e.block_number, e.tx_index))
            for position in range(max(len(expected), len(actual))):
                want = expected[position] if position < len(expected) else None
                got = actual[position] if position < len(actual) else None
                if want != got:
                    block = min(e.block_number for e in (want, got) if e is not None)
                    damages.append((key, DamageFoundError(block, HISTORY_DIFFERS)))
                    break
        return damages


class HistoryBefore:
    """A key's value and version before block `start`, from its stored history."""

    def __init__(self, store: LedgerStore, channel: str, start: int) -> None:
        self.store = store
        self.channel = channel
        self.start = start

    def __call__(self, key: str) -> tuple[str, Version] | None:
        earlier = [
            e for e in self.store.read_history(self.channel, key) if e.block_number < self.start
        ]
        last = earlier[-1] if earlier else None
        if last is None or last.value is None:
            return None  # never written before `start`, or deleted
        return last.value, (last.block_number, last.tx_index)
