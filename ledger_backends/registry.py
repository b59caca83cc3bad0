"""Backends register under a URL scheme; `open_ledger(url)` picks one."""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlsplit

from .base import LedgerStore
from .errors import UnsupportedLedgerURLError
from .ledger import Ledger
from .urls import redacted_url

# scheme -> "module:factory"; modules are imported only when their scheme is used.
_BACKENDS: dict[str, str] = {
    "memory": "ledger_backends.memory:MemoryStore.from_url",
    "sqlite": "ledger_backends.sqlite:SQLiteStore.from_url",
    "postgresql": "ledger_backends.postgres:PostgresStore.from_url",
    "postgres": "ledger_backends.postgres:PostgresStore.from_url",
    "redis": "ledger_backends.redis_streams:RedisStore.from_url",
}


def supported_schemes() -> list[str]:
    return sorted(_BACKENDS)


def register_backend(scheme: str, factory_path: str) -> None:
    """Make `open_store` accept `scheme://...` URLs, built by "module:callable"."""
    _BACKENDS[scheme] = factory_path


def open_store(url: str) -> LedgerStore:
    """Open the backend a ledger URL names; raises UnsupportedLedgerURLError for an unknown one."""
    scheme = urlsplit(url).scheme.split("+", 1)[0].lower()
    target = _BACKENDS.get(scheme)
    if target is None:
        raise UnsupportedLedgerURLError(
            f"Unsupported ledger URL {redacted_url(url)!r}: use one of "
            + ", ".join(f"{name}://" for name in supported_schemes())
            + "."
        )
    module_name, _, attribute = target.partition(":")
    factory: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        factory = getattr(factory, part)
    store: LedgerStore = factory(url)
    return store


def open_ledger(url: str, **options: Any) -> Ledger:
    """Open the store for `url` and wrap it in a Ledger (options: batch_timeout_ms, max_batch)."""
    return Ledger(open_store(url), **options)
