"""Verification: recompute every hash and the Merkle tree from the first block, and replay
the world state.

`verify_channel_since` checks only what was appended after a tip an earlier
check found intact; its docstring says what that leaves to `verify_channel`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from .base import LedgerStore
from .hashing import GENESIS_PREVIOUS_HASH, block_hash, canonical_json, data_hash
from .merkle import CompactRange, NodeId, edge_ids, transaction_leaf
from .records import Block, HistoryEntry, StateRecord, Tip, Transaction, Validation, Version

VERIFY_CHUNK = 500
# Completed tree nodes held before they are compared with the stored ones (one read), at
# the latest: however large the blocks, that bounds the memory a check holds.
TREE_NODES_PER_CHECK = 20_000

_Nodes = dict[NodeId, bytes]


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of verifying one channel; `first_bad_block` names where damage starts.

    `tip` is the end of the chain a passing check reached (None when damage was found):
    the point a later `verify_channel_since` may start from.
    """

    channel: str
    ok: bool
    height: int
    first_bad_block: int | None = None
    reason: str | None = None
    tip: Tip | None = None


class _DamageFoundError(Exception):
    def __init__(self, block_number: int, reason: str) -> None:
        super().__init__(reason)
        self.block_number = block_number
        self.reason = reason


def verify_channel(store: LedgerStore, channel: str) -> Verification:
    """Check links, hashes, write-set commitments, validation codes, the Merkle tree, world
    state and history.

    The chain is walked from block 0; the first block whose link, hashes,
    transactions or tree are wrong ends the walk. The tree is rebuilt from the
    transactions: each block's tree size and root must be the rebuilt ones, and
    the nodes its transactions completed must be stored as rebuilt. Then the
    stored world state and history are compared with the replay of every valid
    write-set, and the earliest block whose effect was altered is named. The
    reason tells the kind of damage: a changed header, link or transaction (see
    `block_damage`), tree root or tree node, a world-state row, or a key's
    history. Writers may keep appending meanwhile: keys that blocks appended
    during the scan touched are left out of the comparison rather than
    reported as damage.
    """
    walk = _ChainWalk(store, channel)
    try:
        walk.advance()
        state = list(store.scan_state(channel))
        history = list(store.scan_history(channel))
        damages = walk.replay.state_damage(state) + walk.replay.history_damage(history)
        _finish(walk, damages)
    except _DamageFoundError as damage:
        return Verification(channel, False, walk.height, damage.block_number, damage.reason)
    return Verification(channel, True, walk.height, tip=walk.tip)


def _finish(walk: _ChainWalk, damages: list[tuple[str, _DamageFoundError]]) -> None:
    """Walk the blocks appended meanwhile, then raise the earliest damage to a key they left
    alone (keys they touched may differ from the scan for good reason)."""
    touched = walk.advance()
    walk.check_tip()
    relevant = [damage for key, damage in damages if key not in touched]
    if relevant:
        raise min(relevant, key=lambda d: d.block_number)


def verify_channel_since(store: LedgerStore, channel: str, verified: Tip) -> Verification:
    """Check what was appended after `verified`, a tip an earlier check found intact.

    Checked, as `verify_channel` checks them: that block `verified.height - 1`
    is still there with the hash `verified.hash` and a header that hashes to it,
    and that the stored nodes its tree is extended from (O(log n) of them) give
    its tree root; every later block's number, link, header and data hashes,
    transactions, tree size and root, and the tree nodes it completed; each
    later transaction's commitment and validation code, replayed against the
    versions its keys had before (read from their history); and, for every key
    a later block wrote, its history entries from those blocks and its
    world-state row. Blocks appended during the check are checked too, and keys
    they touch are left out of the comparison, as in `verify_channel`. When
    `verified` ends at a block older than trees, the tree up to it is read from
    the stored nodes at the first later block that has a tree.

    Left to `verify_channel` (from block 0): blocks before the anchor, which may
    have been altered after they were checked; history entries older than
    `verified`, taken here as the keys' starting versions; the stored tree nodes
    older than the anchor's tree, but for those it is extended from; and the
    world state and history of keys no later block wrote, such as a row changed
    or added directly in the store. A damaged result names the first bad block
    found after the anchor (or the anchor itself); damage before it is not
    looked for.
    """
    if verified.height == 0:
        return verify_channel(store, channel)
    walk = _ChainWalk(
        store,
        channel,
        start=verified,
        replay=_Replay(_HistoryBefore(store, channel, verified.height)),
    )
    try:
        walk.check_anchor()
        written = walk.advance()
        end = walk.height
        history = [
            entry
            for key in written
            for entry in store.read_history(channel, key)
            if verified.height <= entry.block_number < end
        ]
        state = {key: store.read_state(channel, key) for key in written}
        damages = walk.replay.history_damage(history) + walk.replay.written_state_damage(state)
        _finish(walk, damages)
    except _DamageFoundError as damage:
        return Verification(channel, False, walk.height, damage.block_number, damage.reason)
    return Verification(channel, True, walk.height, tip=walk.tip)


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
    header_hash = block_hash(
        number,
        block.previous_hash,
        block.data_hash,
        block.timestamp,
        block.tree_size,
        block.tree_root,
    )
    if header_hash != block.hash:
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
        if not tx.commitment_holds:
            return f"The write-set commitment of transaction {index} does not match its write-set."
    return None


class _ChainWalk:
    """Walks a channel's blocks in order, checking each and replaying its valid writes."""

    def __init__(
        self,
        store: LedgerStore,
        channel: str,
        start: Tip | None = None,
        replay: _Replay | None = None,
    ) -> None:
        """Start after `start` (a tip checked before), or at block 0."""
        self.store = store
        self.channel = channel
        self.height = 0 if start is None else start.height
        self.previous_hash = GENESIS_PREVIOUS_HASH if start is None else start.hash
        self.replay = _Replay() if replay is None else replay
        self.tree = _TreeCheck(store, channel)

    @property
    def tip(self) -> Tip:
        return Tip(self.height, self.previous_hash)

    def check_anchor(self) -> None:
        """Check that the last block before the start is still the one with the start's hash."""
        number = self.height - 1
        found = self.store.read_blocks(self.channel, number, 1)
        if not found:
            raise _DamageFoundError(number, f"block {number} is missing.")
        reason = block_damage(self.store, self.channel, found[0], number, None)
        if reason is None and found[0].hash != self.previous_hash:
            reason = "its hash differs from the one an earlier verification found."
        if reason is not None:
            raise _DamageFoundError(number, reason)
        self.tree.start_after(found[0])

    def advance(self) -> set[str]:
        """Check and replay every block not yet seen; return the keys they wrote.

        The tree nodes a chunk of blocks completed are compared once the chunk is
        walked, or, when a block of it is damaged, those of the blocks before it.
        """
        touched: set[str] = set()
        while True:
            blocks = self.store.read_blocks(self.channel, self.height, VERIFY_CHUNK)
            try:
                for block in blocks:
                    touched.update(self._check(block))
            except _DamageFoundError as damage:
                self.tree.check_nodes(before=damage.block_number)
                raise
            self.tree.check_nodes()
            if len(blocks) < VERIFY_CHUNK:
                return touched

    def _check(self, block: Block) -> Iterable[str]:
        """Check and replay the next block; return the keys it wrote."""
        number = self.height
        reason = block_damage(self.store, self.channel, block, number, self.previous_hash)
        if reason is not None:
            raise _DamageFoundError(number, reason)
        try:
            transactions = block.transactions()
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise _DamageFoundError(number, "a transaction in it cannot be read.") from exc
        written: set[str] = set()
        for tx in transactions:
            written.update(self.replay.apply(tx))
        self.tree.add(block)
        self.previous_hash = block.hash
        self.height += 1
        return written

    def check_tip(self) -> None:
        tip = self.store.tip(self.channel)
        if tip.height > self.height:
            self.advance()
            tip = self.store.tip(self.channel)
        if tip.height < self.height or (
            tip.height == self.height and tip.hash != self.previous_hash
        ):
            raise _DamageFoundError(
                max(self.height - 1, 0), "the recorded chain tip does not match the last block."
            )


class _TreeCheck:
    """The channel's Merkle tree rebuilt from the transactions, compared with what is stored.

    Each block's tree size and root must be those of the rebuilt tree after its
    transactions, and each node its transactions completed must be stored with
    the rebuilt hash. Nodes are compared a chunk of blocks at a time, or sooner
    when TREE_NODES_PER_CHECK are waiting (`check_nodes`), so memory holds that
    many nodes and the tree's right edge (and, after an anchor older than trees,
    the leaves of the blocks without a tree that follow it).

    Blocks stored before trees existed (legacy) have no tree fields and may only
    come before the first block that has them; their transactions' nodes were
    stored with that block, so a wrong one is named there.
    """

    def __init__(self, store: LedgerStore, channel: str) -> None:
        """Rebuild from block 0."""
        self.store = store
        self.channel = channel
        # None while the leaves before the walk are unknown: after an anchor older than trees.
        self.tree: CompactRange | None = CompactRange()
        self.first_tree_block: int | None = None  # the first block with a tree the walk saw
        self.unplaced: list[bytes] = []  # leaves walked while `tree` is None
        # This chunk's completed nodes, by the block that completed them (None: a legacy one).
        self.created: list[tuple[int | None, _Nodes]] = []
        self.waiting = 0  # how many nodes `created` holds
        self.legacy_damage: str | None = None  # a wrong node of legacy blocks, named later

    def start_after(self, anchor: Block) -> None:
        """Rebuild from after `anchor`, the block an earlier check ended at, from the stored
        nodes of its tree; raise if they are missing or do not give its tree root."""
        if anchor.tree_size is None:
            self.tree = None  # placed once a block with a tree tells how many leaves came before
            return
        self.first_tree_block = anchor.number
        self.tree = self._load(anchor.number, anchor.tree_size)
        if self.tree.root().hex() != anchor.tree_root:
            raise _DamageFoundError(
                anchor.number, "its tree root is not the root of the stored tree nodes."
            )

    def add(self, block: Block) -> None:
        """Extend the tree by the block's transactions; raise if its tree fields disagree."""
        leaves = [transaction_leaf(text) for text in block.tx_texts]
        if block.tree_size is None:
            self._add_legacy(block.number, leaves)
        else:
            self._add_with_tree(block, leaves)
        if self.waiting >= TREE_NODES_PER_CHECK:
            self.check_nodes()

    def _add_legacy(self, number: int, leaves: list[bytes]) -> None:
        if self.first_tree_block is not None:
            # The block before it has a tree, or the walk would have stopped there.
            raise _DamageFoundError(
                number, "it has no tree root, though the block before it has one."
            )
        if self.tree is None:
            self.unplaced.extend(leaves)
        else:
            self._created(None, self._append(self.tree, leaves))

    def _add_with_tree(self, block: Block, leaves: list[bytes]) -> None:
        number = block.number
        tree = self.tree if self.first_tree_block is not None else self._start(block, len(leaves))
        assert tree is not None  # placed by _start
        self._created(number, self._append(tree, leaves))
        if block.tree_size != tree.size:
            raise _DamageFoundError(
                number, "its tree size does not match the number of transactions up to it."
            )
        if block.tree_root != tree.root().hex():
            raise _DamageFoundError(number, "its tree root does not match its transactions.")

    def check_nodes(self, before: int | None = None) -> None:
        """Compare the waiting nodes with the stored ones in one read, and forget them; raise
        at the first block (earlier than `before`) whose node is wrong."""
        created, self.created, self.waiting = self.created, [], 0
        if self.legacy_damage is not None:  # already known wrong: reading more tells nothing
            created = [(owner, nodes) for owner, nodes in created if owner is not None]
        ids = [node for _, nodes in created for node in nodes]
        stored = self.store.read_tree_nodes(self.channel, ids) if ids else {}
        for owner, nodes in created:
            number = self.first_tree_block if owner is None else owner
            if number is not None and before is not None and number >= before:
                return
            wrong = next(
                (node for node, digest in nodes.items() if stored.get(node) != digest), None
            )
            if wrong is None:
                continue
            state = "missing" if wrong not in stored else "changed"
            reason = f"its stored tree node (level {wrong[0]}, index {wrong[1]}) is {state}."
            if number is not None:
                raise _DamageFoundError(number, reason)
            # Stored with the first block that has a tree, which is still ahead, if any is.
            self.legacy_damage = self.legacy_damage or reason

    def _start(self, block: Block, leaf_count: int) -> CompactRange:
        """Make `block` the first with a tree: a wrong node of the legacy blocks before it is
        its damage, and leaves walked while the ones before them were unknown are placed."""
        number = block.number
        self.first_tree_block = number
        if self.legacy_damage is not None:
            raise _DamageFoundError(number, self.legacy_damage)
        if self.tree is None:
            assert block.tree_size is not None
            before = block.tree_size - leaf_count - len(self.unplaced)
            if before < 0:
                raise _DamageFoundError(
                    number, "its tree size is smaller than the number of transactions up to it."
                )
            self.tree = self._load(number, before)
            self._created(None, self._append(self.tree, self.unplaced))
            self.unplaced = []
        return self.tree

    def _created(self, owner: int | None, nodes: _Nodes) -> None:
        self.created.append((owner, nodes))
        self.waiting += len(nodes)

    def _load(self, number: int, size: int) -> CompactRange:
        """The stored right edge of the tree of `size` leaves, which block `number` ends or
        extends; raise naming that block if a node of it is not stored."""
        ids = edge_ids(size)
        found = self.store.read_tree_nodes(self.channel, ids)
        for level, index in ids:
            if (level, index) not in found:
                raise _DamageFoundError(
                    number, f"its stored tree node (level {level}, index {index}) is missing."
                )
        return CompactRange(size, (found[node] for node in ids))

    @staticmethod
    def _append(tree: CompactRange, leaves: Iterable[bytes]) -> _Nodes:
        # Kept as plain ids and hashes: a chunk's worth of node objects slows the collector.
        return {(n.level, n.index): n.hash for leaf in leaves for n in tree.append(leaf)}


class _Replay:
    """The world state and history rebuilt from the valid write-sets alone."""

    def __init__(self, prior: Callable[[str], tuple[str, Version] | None] | None = None) -> None:
        """Replay from block 0, or from later on with `prior` giving a key's value before then."""
        self.state: dict[str, tuple[str, Version]] = {}
        self.history: dict[str, list[HistoryEntry]] = {}
        self._prior = prior
        self._looked_up: set[str] = set()

    def apply(self, tx: Transaction) -> Iterable[str]:
        """Check one transaction's commitment and validation code, then replay its writes.

        Returns the keys it wrote. A conflict is recomputed from the channel's own
        reads. Foreign reads are another channel's, whose order relative to this
        one the chain does not record, so a transaction that has some may also be
        a conflict because of them.
        """
        if not tx.commitment_holds:
            raise _DamageFoundError(
                tx.block_number,
                f"the write-set commitment of transaction {tx.tx_index} "
                "does not match its write-set.",
            )
        self._look_up(tx.read_set)
        conflict = any(
            (self.state[key][1] if key in self.state else None) != version
            for key, version in tx.read_set.items()
        )
        marked = tx.validation == Validation.MVCC_READ_CONFLICT
        if tx.validation not in (Validation.VALID, Validation.MVCC_READ_CONFLICT) or (
            conflict != marked and not (marked and tx.foreign_reads)
        ):
            raise _DamageFoundError(
                tx.block_number,
                f"transaction {tx.tx_index} is marked {tx.validation} but replay disagrees.",
            )
        if marked:
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

    def _look_up(self, keys: Iterable[str]) -> None:
        """Learn the value before the replay's first block of keys it has not seen yet."""
        if self._prior is None:
            return
        for key in keys:
            if key not in self.state and key not in self.history and key not in self._looked_up:
                self._looked_up.add(key)
                found = self._prior(key)
                if found is not None:
                    self.state[key] = found

    def written_state_damage(
        self, stored: Mapping[str, StateRecord | None]
    ) -> list[tuple[str, _DamageFoundError]]:
        """Compare the stored rows of keys the replay wrote with what it wrote last."""
        damages: list[tuple[str, _DamageFoundError]] = []
        for key, record in stored.items():
            expected = self.state.get(key)
            if record is None and expected is not None:
                reason = "a key this block wrote is missing from the world state."
                damages.append((key, _DamageFoundError(expected[1][0], reason)))
            elif record is not None and expected is None:
                reason = "the world state holds a key no valid transaction wrote."
                damages.append((key, _DamageFoundError(record.version[0], reason)))
            elif record is not None and expected != (record.value, record.version):
                reason = "the world state differs from what this block wrote."
                damages.append((key, _DamageFoundError(self.history[key][-1].block_number, reason)))
        return damages

    def state_damage(self, stored: Iterable[StateRecord]) -> list[tuple[str, _DamageFoundError]]:
        damages: list[tuple[str, _DamageFoundError]] = []
        seen: set[str] = set()
        for record in stored:
            seen.add(record.key)
            expected = self.state.get(record.key)
            if expected is None:
                reason = "the world state holds a key no valid transaction wrote."
                damages.append((record.key, _DamageFoundError(record.version[0], reason)))
            elif expected != (record.value, record.version):
                reason = "the world state differs from what this block wrote."
                damages.append((record.key, _DamageFoundError(expected[1][0], reason)))
        for key, (_, version) in self.state.items():
            if key not in seen:
                reason = "a key this block wrote is missing from the world state."
                damages.append((key, _DamageFoundError(version[0], reason)))
        return damages

    def history_damage(self, stored: Iterable[HistoryEntry]) -> list[tuple[str, _DamageFoundError]]:
        stored_by_key: dict[str, list[HistoryEntry]] = {}
        for entry in stored:
            stored_by_key.setdefault(entry.key, []).append(entry)
        damages: list[tuple[str, _DamageFoundError]] = []
        for key in self.history.keys() | stored_by_key.keys():
            expected = self.history.get(key, [])
            actual = sorted(stored_by_key.get(key, []), key=lambda e: (e.block_number, e.tx_index))
            for position in range(max(len(expected), len(actual))):
                want = expected[position] if position < len(expected) else None
                got = actual[position] if position < len(actual) else None
                if want != got:
                    block = min(e.block_number for e in (want, got) if e is not None)
                    reason = "the key history differs from what this block wrote."
                    damages.append((key, _DamageFoundError(block, reason)))
                    break
        return damages


class _HistoryBefore:
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
