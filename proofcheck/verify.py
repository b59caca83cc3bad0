"""A proof file checked against signed checkpoints: what `healthledger prove` does.

A proof file is the JSON object of a GraphQL InclusionProof (leafIndex, treeSize, leafHash,
hashes) or ConsistencyProof (fromSize, toSize, fromRoot, toRoot, hashes), hashes in
lower-case hex. Whatever else it holds (its `checkpoint`, a `__typename`) is ignored: only
checkpoints whose signature verifies against the log's key are believed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .notes import SignedCheckpoint, parse_verifier_key, verify_checkpoint
from .proofs import ProofError, verify_consistency, verify_inclusion

_HEX_HASH = re.compile(r"[0-9a-f]{64}")


class ProofInputsError(Exception):
    """The files given do not fit together (a consistency proof without its old checkpoint,
    an old checkpoint with an inclusion proof): bad usage, not a failed check."""


@dataclass(frozen=True, slots=True)
class InclusionClaim:
    """What an inclusion proof file says: leaf `leaf_index` is in the tree of `tree_size`."""

    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    hashes: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ConsistencyClaim:
    """What a consistency proof file says: the tree of `to_size` extends that of `from_size`."""

    from_size: int
    to_size: int
    from_root: bytes
    to_root: bytes
    hashes: tuple[bytes, ...]


def read_proof(document: str | bytes) -> InclusionClaim | ConsistencyClaim:
    """The claim of a proof file; raises ProofError for anything but a well-formed one."""
    try:
        data = json.loads(document)
    except ValueError:
        raise ProofError("malformed input: the proof file is not JSON") from None
    if isinstance(data, dict) and "leafIndex" in data:
        return InclusionClaim(
            _count(data, "leafIndex"),
            _count(data, "treeSize"),
            _hash(data, "leafHash"),
            _hashes(data),
        )
    if isinstance(data, dict) and "fromSize" in data:
        return ConsistencyClaim(
            _count(data, "fromSize"),
            _count(data, "toSize"),
            _hash(data, "fromRoot"),
            _hash(data, "toRoot"),
            _hashes(data),
        )
    raise ProofError(
        "malformed input: the proof file is neither an inclusion proof (leafIndex, treeSize, "
        "leafHash, hashes) nor a consistency proof (fromSize, toSize, fromRoot, toRoot, hashes)"
    )


def check_inclusion(claim: InclusionClaim, checkpoint: SignedCheckpoint) -> str:
    """The line saying what was verified; raises ProofError if the proof does not lead from
    the leaf to the checkpoint's root."""
    if claim.tree_size != checkpoint.tree_size:
        raise ProofError(
            f"size mismatch: the proof is for a tree of {claim.tree_size} leaves, "
            f"the checkpoint is of {checkpoint.tree_size}"
        )
    verify_inclusion(
        claim.leaf_index, claim.tree_size, claim.leaf_hash, claim.hashes, checkpoint.root
    )
    return (
        f"verified: transaction leaf {claim.leaf_index} is in the tree of "
        f"{checkpoint.tree_size} leaves of {checkpoint.origin}"
    )


def check_consistency(claim: ConsistencyClaim, old: SignedCheckpoint, new: SignedCheckpoint) -> str:
    """The line saying what was verified; raises ProofError unless the proof shows that the
    tree of `new` extends the tree of `old`."""
    for size, root, checkpoint, which in (
        (claim.from_size, claim.from_root, old, "old"),
        (claim.to_size, claim.to_root, new, "new"),
    ):
        if size != checkpoint.tree_size:
            raise ProofError(
                f"size mismatch: the proof's {which} tree has {size} leaves, "
                f"the {which} checkpoint's {checkpoint.tree_size}"
            )
        if root != checkpoint.root:
            raise ProofError(
                f"root mismatch: the proof's {which} root is not the {which} checkpoint's"
            )
    verify_consistency(old.tree_size, new.tree_size, old.root, new.root, claim.hashes)
    return (
        f"verified: the tree of {new.tree_size} leaves of {new.origin} extends the one of "
        f"{old.tree_size} leaves"
    )


def verify_proof(
    proof: str | bytes,
    checkpoint: str | bytes,
    key: str | bytes,
    old_checkpoint: str | bytes | None = None,
) -> str:
    """Check a proof file against the log's signed checkpoint(s) and verifier key line.

    Returns the one line saying what was verified. Raises ProofError with the reason when
    anything does not verify or is malformed, ProofInputsError when a consistency proof
    comes without its old checkpoint or an inclusion proof with one.
    """
    claim = read_proof(proof)
    if isinstance(claim, ConsistencyClaim):
        if old_checkpoint is None:
            raise ProofInputsError(
                "A consistency proof is checked against two checkpoints: give the old one too."
            )
        log_key = parse_verifier_key(key)
        old = verify_checkpoint(old_checkpoint, log_key, "the old checkpoint")
        return check_consistency(claim, old, verify_checkpoint(checkpoint, log_key))
    if old_checkpoint is not None:
        raise ProofInputsError("An old checkpoint goes with a consistency proof only.")
    return check_inclusion(claim, verify_checkpoint(checkpoint, parse_verifier_key(key)))


def _count(data: dict[str, Any], field: str) -> int:
    value = data.get(field)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProofError(f"malformed input: the proof's {field} is not a number of leaves")
    return value


def _hash(data: dict[str, Any], field: str) -> bytes:
    return _hex_hash(data.get(field), field)


def _hashes(data: dict[str, Any]) -> tuple[bytes, ...]:
    values = data.get("hashes")
    if not isinstance(values, list):
        raise ProofError("malformed input: the proof's hashes are not a list")
    return tuple(_hex_hash(value, f"hashes[{n}]") for n, value in enumerate(values))


def _hex_hash(value: object, field: str) -> bytes:
    if not isinstance(value, str) or not _HEX_HASH.fullmatch(value):
        raise ProofError(f"malformed input: the proof's {field} is not 64 lower-case hex digits")
    return bytes.fromhex(value)
