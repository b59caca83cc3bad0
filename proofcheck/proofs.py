"""RFC 9162 Merkle tree proofs, checked as section 2.1 says, with nothing but SHA-256.

A leaf hash is SHA-256(0x00 ‖ data), an inner node SHA-256(0x01 ‖ left ‖ right). Proof
lengths are checked first, so a proof with a hash too many or too few is refused as such
rather than as a wrong root.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(Exception):
    """A proof, checkpoint or key that does not verify; the message says why, in one line."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def inclusion_proof_length(index: int, size: int) -> int:
    """How many hashes the audit path of leaf `index` in a tree of `size` leaves has."""
    inner = (index ^ (size - 1)).bit_length()  # below where the paths to index and size-1 part
    return inner + (index >> inner).bit_count()


def consistency_proof_length(old_size: int, new_size: int) -> int:
    """How many hashes RFC 9162 SUBPROOF(old, D[new], true) has (0 < old < new)."""
    count, whole = 0, True
    while old_size != new_size:
        half = 1 << ((new_size - 1).bit_length() - 1)
        if old_size <= half:
            new_size = half
        else:
            old_size, new_size, whole = old_size - half, new_size - half, False
        count += 1
    return count if whole else count + 1


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Leaf hash `leaf` is leaf `index` of the tree of `size` leaves whose root is `root`
    (RFC 9162, 2.1.3.2); raises ProofError saying why not."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} cannot be in a tree of {size} leaves")
    _check_hashes([leaf, root, *proof])
    wanted = inclusion_proof_length(index, size)
    if len(proof) != wanted:
        case = f"leaf {index} of a tree of {size} leaves"
        raise ProofError(_length_reason("inclusion", len(proof), wanted, case))
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or r != root:
        raise ProofError(
            f"root mismatch: the inclusion proof leads to root {r.hex()}, "
            f"not to {root.hex()}, the root of the tree of {size} leaves"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """The tree of `new_size` leaves with root `new_root` extends the one of `old_size`
    leaves with root `old_root` (RFC 9162, 2.1.4.2); raises ProofError saying why not."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"a tree of {new_size} leaves cannot extend one of {old_size} leaves")
    _check_hashes([old_root, new_root, *proof])
    wanted = 0 if old_size in (0, new_size) else consistency_proof_length(old_size, new_size)
    if len(proof) != wanted:
        case = f"a tree of {new_size} leaves extending one of {old_size}"
        raise ProofError(_length_reason("consistency", len(proof), wanted, case))
    if old_size == 0 and old_root != EMPTY_ROOT:
        raise ProofError(f"root mismatch: the empty tree's root is {EMPTY_ROOT.hex()}")
    if old_size == new_size and old_root != new_root:
        raise ProofError(f"the log has two different trees of {new_size} leaves")
    if old_size in (0, new_size):
        return  # every tree extends the empty one, and itself
    path = [old_root, *proof] if old_size & (old_size - 1) == 0 else list(proof)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if fr != old_root:
        raise ProofError(
            f"root mismatch: the consistency proof leads to old root {fr.hex()}, "
            f"not to {old_root.hex()}, the root of the tree of {old_size} leaves"
        )
    if sn != 0 or sr != new_root:
        raise ProofError(
            f"root mismatch: the consistency proof leads to new root {sr.hex()}, "
            f"not to {new_root.hex()}, the root of the tree of {new_size} leaves"
        )


def _check_hashes(hashes: Sequence[bytes]) -> None:
    if any(len(h) != HASH_SIZE for h in hashes):
        raise ProofError(f"malformed input: a hash is not {HASH_SIZE} bytes long")


def _length_reason(kind: str, got: int, wanted: int, case: str) -> str:
    verdict = "too long" if got > wanted else "too short"
    return f"proof {verdict}: the {kind} proof has {_count(got)}; {case} needs {wanted}"


def _count(hashes: int) -> str:
    return "1 hash" if hashes == 1 else f"{hashes} hashes"
