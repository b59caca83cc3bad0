"""Running contract functions without a server: a harness over an in-memory ledger.

`ContractHarness.call` simulates a function as a given caller (with the
transient data the gateway would give it) and, for a transaction, commits it at
once, so a test reads like the story it checks. What the last call noted of
protected data it read or refused is in `ContractHarness.reads`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger_backends.base import LedgerStore
from ledger_backends.chain import ChainWriter
from ledger_backends.memory import MemoryStore
from ledger_backends.records import Creator, JSONValue, format_timestamp
from ledger_backends.simulation import TxSimulator

from .base import Contract, ReadLog, StaticDirectory, TxContext
from .records import Transient

DEFAULT_ORGS = {
    "hospital": "hospital",
    "parents": "parents",
    "school-a": "school",
    "school-b": "school",
}


@dataclass(frozen=True)
class FakeCaller:
    """A caller as a certificate would prove it."""

    uid: str
    org: str
    role: str
    org_kind: str = ""
    msp: str = ""

    def __post_init__(self) -> None:
        if not self.org_kind:
            object.__setattr__(self, "org_kind", DEFAULT_ORGS.get(self.org, "school"))
        if not self.msp:
            msp = "".join(part.capitalize() for part in self.org.split("-")) + "MSP"
            object.__setattr__(self, "msp", msp)


def directory_for(*callers: FakeCaller) -> StaticDirectory:
    return StaticDirectory(orgs=DEFAULT_ORGS, users={c.uid: (c.org, c.role) for c in callers})


class ContractHarness:
    """One contract on its own channel (in memory unless a store is given); calls commit
    immediately."""

    def __init__(
        self, contract: Contract, directory: StaticDirectory, store: LedgerStore | None = None
    ) -> None:
        self.contract = contract
        self.directory = directory
        self.store = MemoryStore() if store is None else store
        self.writer = ChainWriter(self.store, contract.channel)
        self._ids = itertools.count()
        self.now = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
        self.reads = ReadLog()

    def call(
        self,
        caller: FakeCaller,
        function: str,
        *,
        transient: Transient | None = None,
        **args: JSONValue,
    ) -> Any:
        simulator = TxSimulator(self.store, self.contract.channel)
        tx_id = f"tx-{next(self._ids)}"
        self.now += timedelta(seconds=1)
        timestamp = format_timestamp(self.now)
        self.reads = ReadLog()
        ctx = TxContext(
            simulator,
            caller=caller,
            timestamp=timestamp,
            directory=self.directory,
            id_seed=tx_id,
            transient=transient,
            reads=self.reads,
        )
        result = self.contract.invoke(ctx, function, args)
        if self.contract.is_transaction(function):
            proposal = simulator.proposal(
                tx_id=tx_id,
                contract=self.contract.name,
                function=function,
                args=args,
                creator=Creator(caller.uid, caller.msp),
                timestamp=timestamp,
            )
            (receipt,) = self.writer.commit([proposal])
            assert receipt.validation == "VALID", f"{function} conflicted in a serial harness"
        return result
