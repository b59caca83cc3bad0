"""The backend test kit: everything a test needs to run on every ledger backend.

- `selection`: `BACKENDS`, the ones a run covers (`HEALTHLEDGER_TEST_BACKENDS`)
  and the PostgreSQL and Redis servers the tests use;
- `scratch`: `scratch_url(backend)`, an empty isolated ledger removed afterwards;
- `tampering`: one place per stored record kind, changed behind the ledger's back;
- `golden`: reproducible proposals and the golden chain;
- `conformance`: `LedgerStoreConformance`, the suite every backend passes;
- `keystore_conformance`: `KeyStoreConformance`, the suite every key store passes.
"""

from .conformance import LedgerStoreConformance
from .golden import (
    ALICE,
    DOCTOR,
    GOLDEN_BLOCK_HASHES,
    golden_clock,
    golden_proposals,
    proposal,
    submit_all,
)
from .keystore_conformance import KeyStoreConformance
from .scratch import query_option, scratch_url, unreachable_url
from .selection import (
    BACKENDS,
    POSTGRES_URL,
    REDIS_URL,
    SELECTION_VARIABLE,
    backend_params,
    needs_backend,
    selected_backends,
)
from .tampering import (
    BlockField,
    HistoryValue,
    Mutation,
    Place,
    RawStore,
    StateValue,
    TransactionText,
    TreeNodeHash,
    WriteSetCommitment,
    commitment_changed,
    one_digit_changed,
    raw_store,
    tamper,
)

__all__ = [
    "ALICE",
    "BACKENDS",
    "DOCTOR",
    "GOLDEN_BLOCK_HASHES",
    "POSTGRES_URL",
    "REDIS_URL",
    "SELECTION_VARIABLE",
    "BlockField",
    "HistoryValue",
    "KeyStoreConformance",
    "LedgerStoreConformance",
    "Mutation",
    "Place",
    "RawStore",
    "StateValue",
    "TransactionText",
    "TreeNodeHash",
    "WriteSetCommitment",
    "backend_params",
    "commitment_changed",
    "golden_clock",
    "golden_proposals",
    "needs_backend",
    "one_digit_changed",
    "proposal",
    "query_option",
    "raw_store",
    "scratch_url",
    "selected_backends",
    "submit_all",
    "tamper",
    "unreachable_url",
]
