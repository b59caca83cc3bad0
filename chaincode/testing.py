"""Running contract functions without a server: a harness over an in-memory ledger.

`ContractHarness.call` simulates a function as a given caller (with the
transient data the gateway would give it) and, for a transaction, commits it at
once, so a test reads like the story it checks. What the last call noted of
protected data it read or refused is in `ContractHarness.reads`.

Values are sealed as the gateway seals them, with a keyring over an in-memory key
store and a fresh key-encryption key (`ContractHarness.keyring`: tests destroy a
child's keys there and look at the raw store); `encrypted=False` stores them in clear.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from encryption.envelope import Erased, Sealer
from encryption.keks import Kek
from encryption.keyring import Keyring
from ledger_backends.base import LedgerStore
from ledger_backends.chain import ChainWriter
from ledger_backends.keystores.base import KeyStore
from ledger_backends.keystores.memory import MemoryKeyStore
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


def fresh_keyrings(*channels: str, store: KeyStore | None = None) -> dict[str, Keyring]:
    """A keyring per channel over one key store (in memory unless given), each with a fresh
    KEK: what a gateway in a test seals with."""
    shared = MemoryKeyStore() if store is None else store
    return {channel: Keyring(channel, [Kek.generate()], shared) for channel in channels}


class ContractHarness:
    """One contract on its own channel (in memory unless a store is given); calls commit
    immediately. Values are sealed with `keyring` (a fresh one unless given), or stored in
    clear with `encrypted=False`."""

    def __init__(
        self,
        contract: Contract,
        directory: StaticDirectory,
        store: LedgerStore | None = None,
        *,
        keyring: Keyring | None = None,
        encrypted: bool = True,
    ) -> None:
        self.contract = contract
        self.directory = directory
        self.store = MemoryStore() if store is None else store
        if encrypted and keyring is None:
            keyring = Keyring(contract.channel, [Kek.generate()], MemoryKeyStore())
        self.keyring = keyring if encrypted else None
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
            tx_id=tx_id,
            caller=caller,
            timestamp=timestamp,
            directory=self.directory,
            id_seed=tx_id,
            transient=transient,
            reads=self.reads,
            sealer=None if self.keyring is None else Sealer(self.keyring, tx_id),
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

    def opened_state(self) -> list[tuple[str, JSONValue]]:
        """Every state row of the channel, in key order, with its value opened as a contract
        reads it: None for a value whose child was erased."""
        channel = self.contract.channel
        rows = [(record.key, record.json()) for record in self.store.scan_state(channel)]
        if self.keyring is None:
            return sorted(rows, key=lambda row: row[0])
        sealer = Sealer(self.keyring, "")
        opened: list[tuple[str, JSONValue]] = []
        for key, value in sorted(rows, key=lambda row: row[0]):
            plain = sealer.open(key, value)
            opened.append((key, None if isinstance(plain, Erased) else plain))
        return opened
