"""Verification: recompute every hash and the Merkle tree from the first block, and replay
the world state.

`verify_channel_since` checks only what was appended after a tip an earlier
check found intact; its docstring says what that leaves to `verify_channel`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from .base import LedgerStore
from .hashing import (
    GENESIS_PREVIOUS_HASH,
    block_hash,
    canonical_json,
    data_hash_of,
    transaction_digests,
)
from .merkle import CompactRange, NodeId, edge_ids, leaf_hash, node_hash
from .records import Block, Tip, Transaction
from .verify_disk import DiskReplay
from .verify_replay import DamageFoundError as _DamageFoundError
from .verify_replay import HistoryBefore, MemoryReplay, earliest

VERIFY_CHUNK = 500  # blocks per read, at most
# Transactions per read, about: the blocks of a read are held, parsed, while it is checked.
VERIFY_CHUNK_TRANSACTIONS = 2_000
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


class _Replay(Protocol):
    """What the chain walk replays into: `MemoryReplay` or `DiskReplay`."""

    def begin_chunk(self, transactions: list[Transaction]) -> None: ...

    def apply(self, tx: Transaction) -> Iterable[str]: ...

    def end_chunk(self) -> None: ...


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

    Memory holds about VERIFY_CHUNK_TRANSACTIONS transactions, however long the
    chain: the replay, and the stored state and history it is compared with, are
    kept in a temporary database (`verify_disk.DiskReplay`), deleted when the check
    ends. Raises `verify_disk.ScratchSpaceError` (a LedgerError) when that database
    cannot be made or written: the chain was then not checked.
    """
    with DiskReplay() as replay:
        walk = _ChainWalk(store, channel, replay)
        try:
            walk.advance(keys=False)
            damage = _stored_damage(store, channel, walk, replay)
            if damage is not None:
                raise damage
        except _DamageFoundError as damage:
            return Verification(channel, False, walk.height, damage.block_number, damage.reason)
        return Verification(channel, True, walk.height, tip=walk.tip)


def _stored_damage(
    store: LedgerStore, channel: str, walk: _ChainWalk, replay: DiskReplay
) -> _DamageFoundError | None:
    """The earliest damage to the stored world state and history, compared with the replay of
    the walked blocks and of those appended since (`_appended_meanwhile`, whose keys are left
    out), or None.

    A SQLite ledger's rows are first copied by SQLite itself (`DiskReplay.copy_stored`); what
    that copy finds intact is intact (`DiskReplay.copy_matches`). Anything else, and any
    other store's rows, is decided on the store's scans, as every store's rows once were:
    damage named as they name it, a row they cannot read reported as their failure.
    """
    left_out: set[str] = set()
    ledger_file = store.sqlite_file_uri()
    if ledger_file is not None and replay.copy_stored(ledger_file, channel):
        left_out = _appended_meanwhile(walk)
        if replay.copy_matches(left_out):
            return None
        replay.forget_stored()
    replay.load_stored(store.scan_state_rows(channel), store.scan_history_rows(channel))
    # Taken after the copy's walk, the scans may hold rows of blocks appended since: those
    # blocks are walked too, as after a first scan.
    return replay.earliest_damage(left_out | _appended_meanwhile(walk))


def _appended_meanwhile(walk: _ChainWalk) -> set[str]:
    """Walk the blocks appended since the walk ended, and check the tip; return the keys they
    wrote, which may differ from what was scanned for good reason."""
    touched = walk.advance()
    touched |= walk.check_tip()
    return touched


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
    replay = MemoryReplay(HistoryBefore(store, channel, verified.height))
    walk = _ChainWalk(store, channel, replay, start=verified)
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
        damages = replay.history_damage(history) + replay.written_state_damage(state)
        touched = walk.advance()
        walk.check_tip()
        earliest(damages, touched)
    except _DamageFoundError as damage:
        return Verification(channel, False, walk.height, damage.block_number, damage.reason)
    return Verification(channel, True, walk.height, tip=walk.tip)


def block_damage(
    store: LedgerStore,
    channel: str,
    block: Block,
    number: int,
    previous_hash: str | None,
    digests: list[bytes] | None = None,
) -> str | None:
    """Why `block`, read as block `number`, is not what was appended; None if it is intact.

    The checks run in the order that tells the kinds of damage apart: its
    position, its header against its hash (any header field changed), its link
    to `previous_hash` (skipped when None), then its transactions against its
    data hash. For changed transactions the stored key history, written in the
    same append, is consulted to name the transaction when it can. `digests` are the
    transactions' SHA-256s (`transaction_digests`) when the caller has them.
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
    if digests is None:
        digests = transaction_digests(list(block.tx_texts))
    if data_hash_of(digests) != block.data_hash:
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
        self, store: LedgerStore, channel: str, replay: _Replay, start: Tip | None = None
    ) -> None:
        """Start after `start` (a tip checked before), or at block 0."""
        self.store = store
        self.channel = channel
        self.height = 0 if start is None else start.height
        self.previous_hash = GENESIS_PREVIOUS_HASH if start is None else start.hash
        self.replay = replay
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

    def advance(self, *, keys: bool = True) -> set[str]:
        """Check and replay every block not yet seen; return the keys they wrote (none
        unless `keys`: from block 0 they are every key, as many as the ledger holds).

        Blocks are read a chunk at a time: up to VERIFY_CHUNK blocks, and about
        VERIFY_CHUNK_TRANSACTIONS transactions, going by the largest block of the
        chunk before. The tree nodes a chunk completed are compared once it is
        walked, or, when a block of it is damaged, those of the blocks before it.
        """
        touched: set[str] = set()
        limit = 1
        while True:
            blocks = self.store.read_blocks(self.channel, self.height, limit)
            try:
                written = self._check_chunk(blocks)
            except _DamageFoundError as damage:
                self.tree.check_nodes(before=damage.block_number)
                raise
            self.tree.check_nodes()
            if keys:
                touched |= written
            if len(blocks) < limit:
                return touched
            largest = max(len(block.tx_texts) for block in blocks)
            limit = max(1, min(VERIFY_CHUNK, VERIFY_CHUNK_TRANSACTIONS // max(largest, 1)))

    def _check_chunk(self, blocks: list[Block]) -> set[str]:
        """Check and replay the next blocks; return the keys they wrote.

        Each block is checked as `block_damage` checks it and its transactions are
        read, until one fails; the replay then looks up the versions the readable
        blocks' transactions read in one go, and checks and replays them block by
        block, each block's tree after its transactions. The failed block's damage
        is raised once the blocks before it passed, so the first damage is named.
        """
        readable: list[tuple[Block, list[bytes], list[Transaction]]] = []
        damage: _DamageFoundError | None = None
        previous_hash = self.previous_hash
        for offset, block in enumerate(blocks):
            number = self.height + offset
            digests = transaction_digests(list(block.tx_texts))
            reason = block_damage(self.store, self.channel, block, number, previous_hash, digests)
            if reason is not None:
                damage = _DamageFoundError(number, reason)
                break
            try:
                transactions = block.transactions()
            except (ValueError, KeyError, TypeError, IndexError):
                damage = _DamageFoundError(number, "a transaction in it cannot be read.")
                break
            readable.append((block, digests, transactions))
            previous_hash = block.hash
        self.replay.begin_chunk([tx for _, _, transactions in readable for tx in transactions])
        written: set[str] = set()
        for block, digests, transactions in readable:
            for tx in transactions:
                written.update(self.replay.apply(tx))
            self.tree.add(block, digests)
            self.previous_hash = block.hash
            self.height += 1
        self.replay.end_chunk()
        if damage is not None:
            raise damage
        return written

    def check_tip(self) -> set[str]:
        """Check that the recorded tip is the last block walked, walking blocks appended
        since; return the keys those wrote."""
        touched: set[str] = set()
        tip = self.store.tip(self.channel)
        if tip.height > self.height:
            touched = self.advance()
            tip = self.store.tip(self.channel)
        if tip.height < self.height or (
            tip.height == self.height and tip.hash != self.previous_hash
        ):
            raise _DamageFoundError(
                max(self.height - 1, 0), "the recorded chain tip does not match the last block."
            )
        return touched


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

    def add(self, block: Block, digests: list[bytes]) -> None:
        """Extend the tree by the block's transactions, whose SHA-256s are `digests`; raise
        if its tree fields disagree."""
        leaves = [leaf_hash(digest) for digest in digests]
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
        """Append the leaves as `CompactRange.append` does; return the nodes they completed
        as plain ids and hashes (node objects cost more than the hashing)."""
        nodes: _Nodes = {}
        pieces = tree.pieces
        for leaf in leaves:
            index = tree.size
            nodes[(0, index)] = current = leaf
            level = 0
            while (index >> level) & 1:  # the subtree at this level is now complete
                current = node_hash(pieces.pop(), current)
                level += 1
                nodes[(level, index >> level)] = current
            pieces.append(current)
            tree.size += 1
        return nodes
