"""Verification: recompute every hash from the first block, and replay the world state."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .base import LedgerStore
from .hashing import GENESIS_PREVIOUS_HASH, block_hash, canonical_json, data_hash
from .records import Block, HistoryEntry, StateRecord, Transaction, Validation, Version

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
    earliest block whose effect was altered is named. The reason tells the
    kind of damage: a changed header, link or transaction (see `block_damage`),
    a world-state row, or a key's history. Writers may keep
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


def block_damage(
    store: LedgerStore, channel: str, block: Block, number: int, previous_hash: str | None
) -> str | None:
    """Why `block`, read as block `number`, is not what was appended; None if it is intact.

    The checks run in the order that tells the kinds of damage apart: its
    position, its header against its hash (any header field changed), its link
    to `previous_hash` (skipped when None), then its transactions against its
    data hash. For changed transactions the stored key history, written in the
    same append, is consulted to name the transaction when it can.
    """
    if block.number != number:
        return f"block {number} is missing; found block {block.number}."
    if block_hash(number, block.previous_hash, block.data_hash, block.timestamp) != block.hash:
        return "its hash does not match its header: the block header was changed."
    if previous_hash is not None and block.previous_hash != previous_hash:
        return f"its previous hash does not match block {number - 1}."
    if data_hash(list(block.tx_texts)) != block.data_hash:
        culprit = _changed_transaction(store, channel, block)
        return "its transactions do not match its data hash." + (f" {culprit}" if culprit else "")
    return None


def _changed_transaction(store: LedgerStore, channel: str, block: Block) -> str | None:
    """Name the changed transaction of a block whose data hash failed, if the history can tell."""
    for index, text in enumerate(block.tx_texts):
        try:
            tx = Transaction.from_text(text, block.number, index)
            written = {
                key: None if value is None else canonical_json(value)
                for key, value in tx.write_set.items()
            }
        except (ValueError, KeyError, TypeError, IndexError):
            return f"Transaction {index} cannot be read."
        if not tx.is_valid:
            continue
        for key, value in written.items():
            recorded = [
                entry
                for entry in store.read_history(channel, key)
                if (entry.block_number, entry.tx_index) == (block.number, index)
            ]
            if not recorded or recorded[0].value != value:
                return f"The write-set of transaction {index} differs from the history it left."
            entry = recorded[0]
            if (entry.tx_id, entry.creator_uid, entry.creator_msp, entry.timestamp) != (
                tx.tx_id,
                tx.creator.uid,
                tx.creator.msp,
                tx.timestamp,
            ):
                return f"Transaction {index} differs from the history it left."
    return None


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
                reason = block_damage(self.store, self.channel, block, number, self.previous_hash)
                if reason is not None:
                    raise _Damage(number, reason)
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
