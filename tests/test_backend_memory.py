"""The conformance suite on the in-memory backend."""

from __future__ import annotations

from ledger_backends.testing import LedgerStoreConformance


class TestMemoryStore(LedgerStoreConformance):
    backend = "memory"
    persistent = False
    multiprocess = False
    can_be_unreachable = False
