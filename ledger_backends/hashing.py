"""Canonical JSON, the SHA-256 hashes that chain blocks together, and salted commitments.

Every backend stores the exact canonical text produced here, so the same
inputs give byte-identical hashes on every backend.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

GENESIS_PREVIOUS_HASH = "0" * 64
SALT_BYTES = 32

_encoder = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


# A string as canonical_json writes it (the encoder's own function, in C); TypeError for
# anything that is not a string.
json_string: Callable[[str], str] = encode_basestring


def _c_encoder(markers: dict[int, Any] | None) -> Any:
    """The C encoder with `_encoder`'s options (what `_encoder.encode` builds on every call);
    `markers`, a dict to find circular values with, or None for values that cannot be."""
    return c_make_encoder(
        markers, _encoder.default, encode_basestring, None, ":", ",", True, False, False
    )


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 characters kept as they are; NaN and Infinity refused."""
    if isinstance(value, str):
        return encode_basestring(value)
    if c_make_encoder is None:
        return _encoder.encode(value)
    # A new marker dict each time, so circular values are still refused.
    return "".join(_c_encoder({})(value, 0))


_ACYCLIC_ENCODER = None if c_make_encoder is None else _c_encoder(None)


def parsed_canonical_json(value: Any) -> str:
    """`canonical_json` of a value parsed from JSON text, which cannot be circular: one
    encoder made once, without the marker dict that looks for cycles (a verification's
    replay encodes every written value of the ledger)."""
    if _ACYCLIC_ENCODER is None:
        return canonical_json(value)
    return "".join(_ACYCLIC_ENCODER(value, 0))


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def new_salt() -> str:
    """A transaction's secret salt: SALT_BYTES random bytes from `secrets`, as hex."""
    return secrets.token_hex(SALT_BYTES)


def is_salt(text: object) -> bool:
    """Whether `text` is a salt as `new_salt` makes them: 64 lower-case hex digits."""
    # Stripping every lower-case hex digit off the ends leaves nothing only if there is no other.
    return (
        isinstance(text, str) and len(text) == 2 * SALT_BYTES and not text.strip("0123456789abcdef")
    )


def commitment(salt: str, text: str) -> str:
    """SHA-256(salt ‖ text), the salt as its raw bytes: binds `text` without showing it.

    Without the salt, testing a guess of `text` against the commitment means
    guessing 256 random bits as well, so small value spaces (a blood type, a
    yes/no) cannot be searched offline.
    """
    return hashlib.sha256(bytes.fromhex(salt) + text.encode("utf-8")).hexdigest()


def data_hash(transaction_texts: list[str]) -> str:
    """Hash over every transaction's canonical text, validation code included."""
    return data_hash_of(transaction_digests(transaction_texts))


def transaction_digests(transaction_texts: list[str]) -> list[bytes]:
    """Each transaction's SHA-256: what the data hash lists and each tree leaf hashes."""
    return [hashlib.sha256(text.encode("utf-8")).digest() for text in transaction_texts]


def data_hash_of(digests: list[bytes]) -> str:
    """The data hash from the transactions' digests (`transaction_digests`)."""
    return sha256_hex(canonical_json([digest.hex() for digest in digests]))


def block_hash(
    number: int,
    previous_hash: str,
    data_hash: str,
    timestamp: str,
    tree_size: int | None = None,
    tree_root: str | None = None,
) -> str:
    """The header's hash; a block stored before trees existed has no tree fields to cover."""
    # The timestamp is hashed too, so a changed block time is as visible as a changed payload.
    header: dict[str, object] = {
        "data_hash": data_hash,
        "number": number,
        "previous_hash": previous_hash,
        "timestamp": timestamp,
    }
    if tree_size is not None:
        header["tree_root"] = tree_root
        header["tree_size"] = tree_size
    return sha256_hex(canonical_json(header))
