"""A channel's Merkle tree (RFC 9162, section 2.1): hashing, appending, stored nodes, proofs.

The leaves are the channel's transactions in commit order, every transaction of every
block (MVCC conflicts too, since they are in the block): a leaf's data is the 32-byte
SHA-256 of the transaction's canonical text, so its leaf hash is
SHA-256(0x00 ‖ SHA-256(text)), and an inner node is SHA-256(0x01 ‖ left ‖ right).

What is stored: every complete subtree the tree has, as a node (level, index) covering the
leaves [index · 2^level, (index + 1) · 2^level); level 0 holds the leaf hashes. Appending
a leaf stores it and each subtree it completes, two nodes per leaf on average, at most
1 + log2(n). Every hash the RFC's algorithms ask for, for any tree size up to the stored
one, is then a stored node or a fold of at most log2(n) of them along the tree's right
edge, so a root, an inclusion proof or a consistency proof costs O(log n) node reads,
made in one batch (`NodeReader`).

This module makes trees and proofs; the verifier that checks them (`proofcheck`) is
written separately and shares no code with it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

NodeId = tuple[int, int]
"""(level, index): the complete subtree over leaves [index · 2^level, (index + 1) · 2^level)."""

NodeReader = Callable[[Iterable[NodeId]], Mapping[NodeId, bytes]]
"""Reads stored nodes in one batch; a node that is not stored is left out."""

EMPTY_ROOT = hashlib.sha256(b"").digest()


@dataclass(frozen=True, slots=True)
class TreeNode:
    """A stored node of a channel's tree."""

    level: int
    index: int
    hash: bytes

    @property
    def id(self) -> NodeId:
        return (self.level, self.index)


class TreeDamagedError(Exception):
    """A node that the tree's size says must be stored is missing."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def transaction_leaf(tx_text: str) -> bytes:
    """The leaf hash of a transaction: SHA-256(0x00 ‖ SHA-256(canonical text))."""
    return leaf_hash(hashlib.sha256(tx_text.encode("utf-8")).digest())


class CompactRange:
    """The right edge of a tree: what appending and computing its root need, nothing more.

    Holds the hashes of the complete subtrees [0, size) splits into, largest first
    (`pieces`); appending a leaf returns the nodes it stored, to be written with the block.
    """

    def __init__(self, size: int = 0, pieces: Iterable[bytes] = ()) -> None:
        self.size = size
        self.pieces = list(pieces)
        if len(self.pieces) != size.bit_count():
            raise ValueError(f"A tree of {size} leaves has {size.bit_count()} edge pieces.")

    @classmethod
    def load(cls, size: int, read: NodeReader) -> CompactRange:
        """The right edge of the stored tree of `size` leaves (one batched read)."""
        ids = edge_ids(size)
        found = read(ids)
        missing = [node for node in ids if node not in found]
        if missing:
            raise TreeDamagedError(
                f"The tree of {size} leaves lacks its stored node (level, index) {missing[0]}."
            )
        return cls(size, (found[node] for node in ids))

    def copy(self) -> CompactRange:
        return CompactRange(self.size, self.pieces)

    def append(self, leaf: bytes) -> list[TreeNode]:
        """Add a leaf hash; returns the leaf and every subtree it completes, as nodes."""
        index = self.size
        created = [TreeNode(0, index, leaf)]
        current = leaf
        level = 0
        while (index >> level) & 1:  # the subtree at this level is now complete
            current = node_hash(self.pieces.pop(), current)
            level += 1
            created.append(TreeNode(level, index >> level, current))
        self.pieces.append(current)
        self.size += 1
        return created

    def root(self) -> bytes:
        if not self.pieces:
            return EMPTY_ROOT
        root = self.pieces[-1]
        for piece in reversed(self.pieces[:-1]):
            root = node_hash(piece, root)
        return root


def edge_ids(size: int) -> list[NodeId]:
    """The complete subtrees [0, size) splits into, largest first."""
    ids: list[NodeId] = []
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            ids.append((level, start >> level))
            start += 1 << level
    return ids


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1), where RFC 9162 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


def _is_node(start: int, end: int) -> bool:
    width = end - start
    return width & (width - 1) == 0 and start % width == 0


def _node_id(start: int, end: int) -> NodeId:
    level = (end - start).bit_length() - 1
    return (level, start >> level)


def _range_nodes(start: int, end: int) -> list[NodeId]:
    """The stored nodes the hash of the subtree [start, end) is folded from."""
    if _is_node(start, end):
        return [_node_id(start, end)]
    k = _split(end - start)
    return _range_nodes(start, start + k) + _range_nodes(start + k, end)


def _range_hash(start: int, end: int, nodes: Mapping[NodeId, bytes]) -> bytes:
    if _is_node(start, end):
        return nodes[_node_id(start, end)]
    k = _split(end - start)
    return node_hash(_range_hash(start, start + k, nodes), _range_hash(start + k, end, nodes))


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """RFC 9162 PATH(index, D[0:size]) as the subtree ranges whose hashes it lists."""
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    ranges.reverse()
    return ranges


def _consistency_ranges(old: int, size: int) -> list[tuple[int, int]]:
    """RFC 9162 SUBPROOF(old, D[0:size], true) as subtree ranges (0 < old < size)."""
    ranges: list[tuple[int, int]] = []
    start, end, whole = 0, size, True
    while old != end - start:
        k = _split(end - start)
        if old <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            old -= k
            start += k
            whole = False
    if not whole:
        ranges.append((start, end))
    ranges.reverse()
    return ranges


def _hashes(ranges: list[tuple[int, int]], read: NodeReader) -> list[bytes]:
    wanted = sorted({node for start, end in ranges for node in _range_nodes(start, end)})
    found = read(wanted)
    missing = [node for node in wanted if node not in found]
    if missing:
        raise TreeDamagedError(f"The tree lacks its stored node (level, index) {missing[0]}.")
    return [_range_hash(start, end, found) for start, end in ranges]


def root_at(size: int, read: NodeReader) -> bytes:
    """The root of the tree's first `size` leaves (EMPTY_ROOT for none)."""
    if size == 0:
        return EMPTY_ROOT
    return _hashes([(0, size)], read)[0]


def inclusion_proof(index: int, size: int, read: NodeReader) -> list[bytes]:
    """The audit path of leaf `index` in the tree of `size` leaves, leaf side first."""
    if not 0 <= index < size:
        raise ValueError(f"Leaf {index} is not in a tree of {size} leaves.")
    return _hashes(_inclusion_ranges(index, size), read)


def consistency_proof(old_size: int, new_size: int, read: NodeReader) -> list[bytes]:
    """The proof that the tree of `new_size` leaves extends the one of `old_size` leaves."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"A tree of {new_size} leaves cannot extend one of {old_size}.")
    if old_size in (0, new_size):
        return []
    return _hashes(_consistency_ranges(old_size, new_size), read)
