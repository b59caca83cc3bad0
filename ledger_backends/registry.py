"""Backends register under a URL scheme; `open_store(url)` and `open_ledger(url)` pick one."""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlsplit

from .base import LedgerStore
from .errors import UnsupportedLedgerURLError
from .ledger import Ledger
from .urls import redacted_url

# scheme -> "module:LedgerStore class"; modules are imported only when their scheme is used.
_BACKENDS: dict[str, str] = {
    "memory": "ledger_backends.memory:MemoryStore",
    "sqlite": "ledger_backends.sqlite:SQLiteStore",
    "postgresql": "ledger_backends.postgres:PostgresStore",
    "postgres": "ledger_backends.postgres:PostgresStore",
    "redis": "ledger_backends.redis_streams:RedisStore",
}


def supported_schemes() -> list[str]:
    return sorted(_BACKENDS)


def open_store(url: str, *, create: bool = True) -> LedgerStore:
    """Open the backend a ledger URL names; raises UnsupportedLedgerURLError for an unknown one.

    With `create` False nothing is created or changed: the store is opened to be read, and
    one that holds no ledger is refused (see `LedgerStore.from_url`).
    """
    scheme = urlsplit(url).scheme.split("+", 1)[0].lower()
    target = _BACKENDS.get(scheme)
    if target is None:
        raise UnsupportedLedgerURLError(
            f"Unsupported ledger URL {redacted_url(url)!r}: use one of "
            + ", ".join(f"{name}://" for name in supported_schemes())
            + "."
        )
    module_name, _, class_name = target.partition(":")
    store_class: type[LedgerStore] = getattr(importlib.import_module(module_name), class_name)
    return store_class.from_url(url, create=create)


def open_ledger(url: str, **options: Any) -> Ledger:
    """Open the store for `url` and wrap it in a Ledger (options: batch_timeout_ms, max_batch)."""
    return Ledger(open_store(url), **options)
