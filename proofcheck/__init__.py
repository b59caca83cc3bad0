"""The independent verifier of healthledger's transparency log, for anyone to run offline.

It checks signed checkpoints (C2SP signed-note with Ed25519 around a C2SP tlog-checkpoint,
`notes`), RFC 9162 inclusion and consistency proofs (`proofs`) and proof files against
checkpoints (`verify`, what `healthledger prove` runs), with hashlib and an Ed25519 public
key only. It shares no code with the server that makes the tree and its proofs
(ledger_backends.merkle), so a mistake there is not repeated here.
"""

from .notes import NoteError, SignedCheckpoint, VerifierKey, parse_verifier_key, verify_checkpoint
from .proofs import (
    EMPTY_ROOT,
    ProofError,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)
from .verify import (
    ConsistencyClaim,
    InclusionClaim,
    ProofInputsError,
    check_consistency,
    check_inclusion,
    read_proof,
    verify_proof,
)

__all__ = [
    "EMPTY_ROOT",
    "ConsistencyClaim",
    "InclusionClaim",
    "NoteError",
    "ProofError",
    "ProofInputsError",
    "SignedCheckpoint",
    "VerifierKey",
    "check_consistency",
    "check_inclusion",
    "leaf_hash",
    "node_hash",
    "parse_verifier_key",
    "read_proof",
    "verify_checkpoint",
    "verify_consistency",
    "verify_inclusion",
    "verify_proof",
]
