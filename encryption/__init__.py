"""Encryption at rest: key-encryption keys, per-child data keys and sealed ledger values.

The layout, from the outside in:

- keks.py: one key-encryption key (KEK) per channel, in a file (0600) or an
  environment variable; never in a ledger or a key store.
- keyring.py: a data key per child per channel, made on first use and kept in a
  key store beside the chain (ledger_backends.keystores), wrapped by the KEK.
- envelope.py: values sealed with the child's data key (AES-256-GCM) where the
  transaction context writes them, bound to channel, key, child and transaction, each
  with a salted commitment (RFC 8785) that its readers can open (verified reads).

Erasing a child destroys its data keys: the chain keeps every block and hash,
but the child's sealed values can never be opened again.
"""

from .envelope import (
    BrokenSealError,
    Erased,
    Opening,
    Sealer,
    canonical_text,
    is_sealed,
    open_value,
    open_with_opening,
    seal,
    sealed_child,
)
from .keks import (
    Kek,
    KekError,
    KekSource,
    begin_rotation,
    finish_rotation,
    write_kek_file,
)
from .keyring import ChildErasedError, Keyring

__all__ = [
    "BrokenSealError",
    "ChildErasedError",
    "Erased",
    "Kek",
    "KekError",
    "KekSource",
    "Keyring",
    "Opening",
    "Sealer",
    "begin_rotation",
    "canonical_text",
    "finish_rotation",
    "is_sealed",
    "open_value",
    "open_with_opening",
    "seal",
    "sealed_child",
    "write_kek_file",
]
