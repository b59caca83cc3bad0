"""Verification: recompute every hash from the first block, and replay the world state."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .base import LedgerStore
from .hashing import GENESIS_PREVIOUS_HASH, block_hash, canonical_json, data_hash
from .records import HistoryEntry, StateRecord, Transaction, Validation, Version

VERIFY_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of verifying one channel; `first_bad_block` names where damage starts."""

    channel: str
    ok: bool
    height: int
    first_bad_block: int | None = None
    reason: str | None = None


class _Damage(Exception):
    def __init__(self, block_number: int, reason: str) -> None:
        super().__init__(reason)
        self.block_number = block_number
        self.reason = reason


def verify_channel(store: LedgerStore, channel: str) -> Verification:
    """Check links, data and header hashes, validation codes, world state and history.

    The chain is walked from block 0; the first block whose link, hashes or
    transactions are wrong ends the walk. Then the stored world state and
    history are compared with the replay of every valid write-set, and the
    earliest block whose effect was altered is named. Writers may keep
    appending meanwhile: keys that blocks appended during the scan touched are
    left out of the comparison rather than reported as damage.
    """
    walk = _ChainWalk(store, channel)
    try:
        walk.advance()
        state = list(store.scan_state(channel))
        history = list(store.scan_history(channel))
        damages = walk.replay.state_damage(state) + walk.replay.history_damage(history)
        touched = walk.advance()
        walk.check_tip()
        relevant = [damage for key, damage in damages if key not in touched]
        if relevant:
            raise min(relevant, key=lambda d: d.block_number)
    except _Damage as damage:
        return Verification(channel, False, walk.height, damage.block_number, damage.reason)
    return Verification(channel, True, walk.height)


class _ChainWalk:
    """Walks a channel's blocks in order, checking each and replaying its valid writes."""

    def __init__(self, store: LedgerStore, channel: str) -> None:
        self.store = store
        self.channel = channel
        self.height = 0
        self.previous_hash = GENESIS_PREVIOUS_HASH
        self.replay = _Replay()

    def advance(self) -> set[str]:
        """Check and replay every block not yet seen; return the keys they wrote."""
        touched: set[str] = set()
        while True:
            blocks = self.store.read_blocks(self.channel, self.height, VERIFY_CHUNK)
            for block in blocks:
                number = self.height
                if block.number != number:
                    raise _Damage(number, f"block {number} is missing; found block {block.number}.")
                if block.previous_hash != self.previous_hash:
                    raise _Damage(number, f"its previous hash does not match block {number - 1}.")
                if data_hash(list(block.tx_texts)) != block.data_hash:
                    raise _Damage(number, "its transactions do not match its data hash.")
                expected = block_hash(number, block.previous_hash, block.data_hash, block.timestamp)
                if expected != block.hash:
                    raise _Damage(number, "its header does not match its hash.")
                try:
                    transactions = block.transactions()
                except (ValueError, KeyError, TypeError, IndexError) as exc:
                    raise _Damage(number, "a transaction in it cannot be read.") from exc
                for tx in transactions:
                    touched.update(self.replay.apply(tx))
                self.previous_hash = block.hash
                self.height += 1
            if len(blocks) < VERIFY_CHUNK:
                return touched

    def check_tip(self) -> None:
        tip = self.store.tip(self.channel)
        if tip.height > self.height:
            self.advance()
            tip = self.store.tip(self.channel)
        if tip.height < self.height or (
            tip.height == self.height and tip.hash != self.previous_hash
        ):
            raise _Damage(
                max(self.height - 1, 0), "the recorded chain tip does not match the last block."
            )


class _Replay:
    """The world state and history rebuilt from the valid write-sets alone."""

    def __init__(self) -> None:
        self.state: dict[str, tuple[str, Version]] = {}
        self.history: dict[str, list[HistoryEntry]] = {}

    def apply(self, tx: Transaction) -> Iterable[str]:
        """Replay one transaction, checking its validation code; return the keys it wrote."""
        conflict = any(
            (self.state[key][1] if key in self.state else None) != version
            for key, version in tx.read_set.items()
        )
        if tx.validation not in (Validation.VALID, Validation.MVCC_READ_CONFLICT) or (
            conflict != (tx.validation == Validation.MVCC_READ_CONFLICT)
        ):
            raise _Damage(
                tx.block_number,
                f"transaction {tx.tx_index} is marked {tx.validation} but replay disagrees.",
            )
        if conflict:
            return ()
        version = (tx.block_number, tx.tx_index)
        for key, value in tx.write_set.items():
            text = None if value is None else canonical_json(value)
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
        return tx.write_set.keys()

    def state_damage(self, stored: Iterable[StateRecord]) -> list[tuple[str, _Damage]]:
        damages: list[tuple[str, _Damage]] = []
        seen: set[str] = set()
        for record in stored:
            seen.add(record.key)
            expected = self.state.get(record.key)
            if expected is None:
                reason = "the world state holds a key no valid transaction wrote."
                damages.append((record.key, _Damage(record.version[0], reason)))
            elif expected != (record.value, record.version):
                reason = "the world state differs from what this block wrote."
                damages.append((record.key, _Damage(expected[1][0], reason)))
        for key, (_, version) in self.state.items():
            if key not in seen:
                reason = "a key this block wrote is missing from the world state."
                damages.append((key, _Damage(version[0], reason)))
        return damages

    def history_damage(self, stored: Iterable[HistoryEntry]) -> list[tuple[str, _Damage]]:
        stored_by_key: dict[str, list[HistoryEntry]] = {}
        for entry in stored:
            stored_by_key.setdefault(entry.key, []).append(entry)
        damages: list[tuple[str, _Damage]] = []
        for key in self.history.keys() | stored_by_key.keys():
            expected = self.history.get(key, [])
            actual = sorted(stored_by_key.get(key, []), key=lambda e: (e.block_number, e.tx_index))
            for position in range(max(len(expected), len(actual))):
                want = expected[position] if position < len(expected) else None
                got = actual[position] if position < len(actual) else None
                if want != got:
                    block = min(e.block_number for e in (want, got) if e is not None)
                    reason = "the key history differs from what this block wrote."
                    damages.append((key, _Damage(block, reason)))
                    break
        return damages
