"""The healthledger ledger core: hash-chained blocks, MVCC, group commit and storage backends.

Open a ledger by URL (`memory://`, `sqlite:///path`, `postgresql://...`,
`redis://...`) with `open_ledger`; every backend implements `LedgerStore`
(base.py) and passes the conformance suite in `ledger_backends.testing`.
"""

from .base import LedgerStore
from .errors import (
    BackendUnavailableError,
    ChainIntegrityError,
    LedgerDamagedError,
    LedgerError,
    PagedReadInTransactionError,
    ReadConflictError,
    UnsupportedLedgerURLError,
)
from .ledger import ChannelLedger, Ledger
from .records import (
    Block,
    Creator,
    Event,
    ForeignReads,
    HistoryEntry,
    Proposal,
    Receipt,
    StateRecord,
    Tip,
    Transaction,
    Validation,
    Version,
)
from .registry import open_ledger, open_store, supported_schemes
from .simulation import TxSimulator
from .verify import Verification, verify_channel

__all__ = [
    "BackendUnavailableError",
    "Block",
    "ChainIntegrityError",
    "ChannelLedger",
    "Creator",
    "Event",
    "ForeignReads",
    "HistoryEntry",
    "Ledger",
    "LedgerDamagedError",
    "LedgerError",
    "LedgerStore",
    "PagedReadInTransactionError",
    "Proposal",
    "ReadConflictError",
    "Receipt",
    "StateRecord",
    "Tip",
    "Transaction",
    "TxSimulator",
    "UnsupportedLedgerURLError",
    "Validation",
    "Verification",
    "Version",
    "open_ledger",
    "open_store",
    "supported_schemes",
    "verify_channel",
]
