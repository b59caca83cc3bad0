"""Canonical JSON and the SHA-256 hashes that chain blocks together.

Every backend stores the exact canonical text produced here, so the same
inputs give byte-identical hashes on every backend.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

GENESIS_PREVIOUS_HASH = "0" * 64

_encoder = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 characters kept as they are; NaN and Infinity refused."""
    return _encoder.encode(value)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def data_hash(transaction_texts: list[str]) -> str:
    """Hash over every transaction's canonical text, validation code included."""
    return sha256_hex(canonical_json([sha256_hex(text) for text in transaction_texts]))


def block_hash(number: int, previous_hash: str, data_hash: str, timestamp: str) -> str:
    # The timestamp is hashed too, so a changed block time is as visible as a changed payload.
    return sha256_hex(
        canonical_json(
            {
                "data_hash": data_hash,
                "number": number,
                "previous_hash": previous_hash,
                "timestamp": timestamp,
            }
        )
    )
