"""The records a committed transaction wrote, named by the keys of its write-set.

An inclusion proof of a transaction is shown only to those who may read a record it
wrote (api/proofs.py): the API hands each contract the keys the transaction wrote, and
the contract finds its records among them and applies its own read rule.
"""

from __future__ import annotations

from typing import Any

from domain.errors import BadInputError


def written_ids(keys: Any, kind: str) -> list[str]:
    """The ids of the `kind` records (keys `KIND/ID`) among `keys`, in their order."""
    if not isinstance(keys, list):
        raise BadInputError("keys must be a list of the keys a transaction wrote.")
    prefix = f"{kind}/"
    return [
        key[len(prefix) :]
        for key in keys
        if isinstance(key, str) and key.startswith(prefix) and len(key) > len(prefix)
    ]
