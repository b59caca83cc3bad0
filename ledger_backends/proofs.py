"""Tree heads and proofs of a channel's Merkle tree, read from its store.

What a checkpoint signs (`TreeHead`) and what a client checks against it: that a
transaction is in the tree (`inclusion`) and that a larger tree extends a smaller one
(`consistency`). Each costs one read of the tip block and one batched read of O(log n)
stored nodes. Who may ask for which proof is decided by the callers (the API), not here.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from .base import LedgerStore
from .errors import LedgerError
from .merkle import (
    NodeId,
    TreeDamagedError,
    consistency_proof,
    inclusion_proof,
    root_at,
)
from .records import Tip

FIRST_LEAVES_KEPT = 100_000
KEPT_LEVEL = 8  # nodes over 256 leaves and more are kept in memory once read...
UPPER_NODES_KEPT = 1 << 18  # ...up to this many (a tree of 64 million leaves has that many)


class TreeNotAvailableError(LedgerError):
    """The tree cannot answer: a size beyond it, an unknown transaction, or no tree yet."""


@dataclass(frozen=True, slots=True)
class TreeHead:
    """The tree's size and root (32 bytes) after some block."""

    size: int
    root: bytes


@dataclass(frozen=True, slots=True)
class Inclusion:
    """That leaf `leaf_index` (a transaction) is in the tree of `tree_size` leaves."""

    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    hashes: tuple[bytes, ...]
    root: bytes


@dataclass(frozen=True, slots=True)
class Consistency:
    """That the tree of `to_size` leaves extends the one of `from_size` leaves."""

    from_size: int
    to_size: int
    from_root: bytes
    to_root: bytes
    hashes: tuple[bytes, ...]


class TreeProofs:
    """The proofs of one channel's tree. Blocking: every method reads the store.

    Blocks never change once appended, so where each block's leaves begin is remembered
    (up to FIRST_LEAVES_KEPT blocks); the head is re-read when the tip moved.
    """

    def __init__(self, store: LedgerStore, channel: str) -> None:
        self.store = store
        self.channel = channel
        self._head: tuple[Tip, TreeHead] | None = None  # the head last read, and its tip
        self._first_leaves: OrderedDict[int, int] = OrderedDict()  # block number -> first leaf
        self._upper: dict[NodeId, bytes] = {}  # stored nodes of level >= KEPT_LEVEL, once read

    def _read(self, ids: Iterable[NodeId]) -> dict[NodeId, bytes]:
        """Stored nodes, the upper ones (level >= KEPT_LEVEL) from memory once read.

        A stored node never changes (only whole subtrees are stored), and every proof
        of a tree of n leaves passes the same n / 2^KEPT_LEVEL upper nodes, while its lower
        ones are its own.
        """
        found: dict[NodeId, bytes] = {}
        missing: list[NodeId] = []
        for node in ids:
            kept = self._upper.get(node)
            if kept is None:
                missing.append(node)
            else:
                found[node] = kept
        if missing:
            read = self.store.read_tree_nodes(self.channel, missing)
            found.update(read)
            if len(self._upper) < UPPER_NODES_KEPT:
                self._upper.update((node, h) for node, h in read.items() if node[0] >= KEPT_LEVEL)
        return found

    def head(self) -> TreeHead:
        """The tree after the tip block (size 0 for a channel with no block)."""
        tip = self.store.tip(self.channel)
        if self._head is not None and self._head[0] == tip:
            return self._head[1]
        if tip.height == 0:
            return TreeHead(0, root_at(0, self._read))
        (last,) = self.store.read_blocks(self.channel, tip.height - 1, 1)
        if last.tree_size is None or last.tree_root is None:
            raise TreeNotAvailableError(
                f"Channel {self.channel!r} has no tree yet: its blocks are older than trees, "
                "and the tree is built with the next block appended."
            )
        head = TreeHead(last.tree_size, bytes.fromhex(last.tree_root))
        self._head = (tip, head)
        return head

    def head_at(self, size: int | None) -> TreeHead:
        """The tree of `size` leaves (the current one when None), up to the current size."""
        current = self.head()
        if size is None or size == current.size:
            return current
        if not 0 <= size <= current.size:
            raise TreeNotAvailableError(
                f"Channel {self.channel!r} has a tree of {current.size} leaves; "
                f"there is no tree of {size}."
            )
        return TreeHead(size, root_at(size, self._read))

    def leaf_index(self, tx_id: str) -> tuple[int, str] | None:
        """The leaf index and canonical text of the transaction with that id, or None."""
        found = self.store.locate_transaction(self.channel, tx_id)
        if found is None:
            return None
        number, index = found
        blocks = self.store.read_blocks(self.channel, number, 1)
        if not blocks or blocks[0].first_leaf is None or index >= len(blocks[0].tx_texts):
            return None
        self._remember(number, blocks[0].first_leaf)
        return blocks[0].first_leaf + index, blocks[0].tx_texts[index]

    def _leaf(self, tx_id: str) -> int | None:
        """The leaf index of the transaction with that id, or None; no block read once known."""
        found = self.store.locate_transaction(self.channel, tx_id)
        if found is None:
            return None
        number, index = found
        first = self._first_leaves.get(number)
        if first is None:
            first = self.store.read_first_leaf(self.channel, number)
            if first is None:
                return None
            self._remember(number, first)
        else:
            self._first_leaves.move_to_end(number)
        return first + index

    def _remember(self, number: int, first_leaf: int) -> None:
        self._first_leaves[number] = first_leaf
        if len(self._first_leaves) > FIRST_LEAVES_KEPT:
            self._first_leaves.popitem(last=False)

    def inclusion(self, tx_id: str, size: int | None = None) -> Inclusion:
        """The proof that the transaction is in the tree of `size` leaves (the current one).

        The leaf hash is the stored leaf node, read in the same batch as the proof's nodes.
        """
        index = self._leaf(tx_id)
        if index is None:
            raise TreeNotAvailableError(f"Channel {self.channel!r} has no such transaction.")
        return self.inclusion_at(index, size)

    def inclusion_at(self, index: int, size: int | None = None) -> Inclusion:
        """As `inclusion`, for the transaction at leaf `index` (as `leaf_index` found it)."""
        head = self.head_at(size)
        if index >= head.size:
            raise TreeNotAvailableError(
                f"The transaction is leaf {index}, after the tree of {head.size} leaves."
            )
        leaf: dict[NodeId, bytes] = {}

        def read_with_leaf(ids: Iterable[NodeId]) -> dict[NodeId, bytes]:
            found = self._read([*ids, (0, index)])
            leaf.update((node, found[node]) for node in [(0, index)] if node in found)
            return found

        hashes = inclusion_proof(index, head.size, read_with_leaf)
        if (0, index) not in leaf:
            raise TreeDamagedError(f"The tree lacks its stored leaf {index}.")
        return Inclusion(index, head.size, leaf[(0, index)], tuple(hashes), head.root)

    def consistency(self, from_size: int, to_size: int) -> Consistency:
        """The proof that the tree of `to_size` leaves extends the one of `from_size`."""
        if from_size < 0 or from_size > to_size:
            raise TreeNotAvailableError(
                f"A tree of {to_size} leaves cannot extend one of {from_size}."
            )
        new = self.head_at(to_size)
        old = self.head_at(from_size)
        hashes = consistency_proof(from_size, to_size, self._read)
        return Consistency(from_size, to_size, old.root, new.root, tuple(hashes))
