"""Signed checkpoints: each channel's log key, and its tree heads signed as C2SP notes.

- log_keys.py: the Ed25519 key pair per channel (`log/CHANNEL.key`, `log/CHANNEL.pub`),
  made by `network init` and `keys init`, loaded and checked when the server starts.
- signer.py: `CheckpointSigner.checkpoint(channel, size)`, the tree head of a channel's
  ledger (ledger_backends.proofs) as a signed note that witnesses keep.

Checking a note needs none of this: the verifier key line and any Ed25519 library will do.
"""

from .log_keys import (
    LogKey,
    LogKeyError,
    LogKeyFiles,
    key_id,
    key_paths,
    load_log_keys,
    log_origin,
    make_missing_log_keys,
    read_log_key,
    verifier_key,
)
from .signer import Checkpoint, CheckpointSigner, NoSuchLogError, checkpoint_body

__all__ = [
    "Checkpoint",
    "CheckpointSigner",
    "LogKey",
    "LogKeyError",
    "LogKeyFiles",
    "NoSuchLogError",
    "checkpoint_body",
    "key_id",
    "key_paths",
    "load_log_keys",
    "log_origin",
    "make_missing_log_keys",
    "read_log_key",
    "verifier_key",
]
