"""Key stores: where each channel's wrapped data keys are kept, picked by URL like ledgers.

`open_key_store(url, same_database_as_ledger=...)` opens the store a URL names:
`memory://`, `sqlite:///path`, `postgresql://` (also `postgres://` and
`postgresql+psycopg://`) or `redis://`. `same_database_as_ledger` says that the
URL is the channel's ledger URL, so the store may leave durability of a new key
to the ledger's next commit (see sql.py). Backends are imported only when
their scheme is used, as in ledger_backends/registry.py.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from urllib.parse import urlsplit

from ..errors import UnsupportedLedgerURLError
from ..urls import redacted_url
from .base import KeyStore, Rewrap, StoredKey

# scheme -> "module:class with from_url(url, *, same_database_as_ledger)".
_KEY_STORES: dict[str, str] = {
    "memory": "ledger_backends.keystores.memory:MemoryKeyStore",
    "sqlite": "ledger_backends.keystores.sql:SqlKeyStore",
    "postgresql": "ledger_backends.keystores.sql:SqlKeyStore",
    "postgres": "ledger_backends.keystores.sql:SqlKeyStore",
    "redis": "ledger_backends.keystores.redis:RedisKeyStore",
}


def open_key_store(url: str, *, same_database_as_ledger: bool) -> KeyStore:
    """Open the key store `url` names, creating its table, schema or file if need be.

    Raises UnsupportedLedgerURLError for a scheme no key store has, and
    BackendUnavailableError (naming the URL without its password) when the backend
    cannot be reached.
    """
    scheme = urlsplit(url).scheme.split("+", 1)[0].lower()
    target = _KEY_STORES.get(scheme)
    if target is None:
        raise UnsupportedLedgerURLError(
            f"Unsupported key store URL {redacted_url(url)!r}: use one of "
            + ", ".join(f"{name}://" for name in sorted(_KEY_STORES))
            + "."
        )
    module_name, _, class_name = target.partition(":")
    opener: Callable[..., KeyStore] = getattr(
        importlib.import_module(module_name), class_name
    ).from_url
    return opener(url, same_database_as_ledger=same_database_as_ledger)


__all__ = ["KeyStore", "Rewrap", "StoredKey", "open_key_store"]
