"""The contract API, modelled on Fabric's: a Contract's functions run against a TxContext.

Contracts do no I/O of their own and are deterministic: state comes through the
context, and so do time (`ctx.timestamp`) and fresh ids (`ctx.new_id`, drawn
from a random seed the gateway chose and records with the transaction). A
function is marked `@transaction` (its writes are committed) or `@query`
(read-only, evaluated without a block).
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from ledger_backends import HistoryEntry, TxSimulator

from .errors import BadInput, ContractError

JSON = Any


class Caller(Protocol):
    """Who invokes a function: what a verified certificate proves (authz.identity.Identity)."""

    @property
    def uid(self) -> str: ...
    @property
    def msp(self) -> str: ...
    @property
    def org(self) -> str: ...
    @property
    def org_kind(self) -> str: ...
    @property
    def role(self) -> str: ...


class Directory(Protocol):
    """Read-only facts about the network: organisations and enrolled users."""

    def org_kind(self, org: str) -> str | None:
        """The kind (hospital, parents, school) of an organisation, None if unknown."""
        ...

    def user(self, uid: str) -> tuple[str, str] | None:
        """(organisation, role) of an enrolled user, None if unknown."""
        ...


@dataclass(frozen=True)
class StaticDirectory:
    """A Directory from fixed tables, for tests and tools."""

    orgs: Mapping[str, str]
    users: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    def org_kind(self, org: str) -> str | None:
        return self.orgs.get(org)

    def user(self, uid: str) -> tuple[str, str] | None:
        return self.users.get(uid)


class TxContext:
    """One invocation's view of the ledger, the caller and the network (Fabric's ctx.stub)."""

    def __init__(
        self,
        simulator: TxSimulator,
        *,
        caller: Caller,
        tx_id: str,
        timestamp: str,
        directory: Directory,
        id_seed: str | None = None,
    ) -> None:
        self._sim = simulator
        self.caller = caller
        self.tx_id = tx_id
        self.timestamp = timestamp
        self.directory = directory
        self.id_seed = tx_id if id_seed is None else id_seed
        self._ids = 0

    @property
    def channel(self) -> str:
        return self._sim.channel

    def get_state(self, key: str) -> JSON | None:
        return self._sim.get_state(key)

    def put_state(self, key: str, value: JSON) -> None:
        self._sim.put_state(key, value)

    def del_state(self, key: str) -> None:
        self._sim.del_state(key)

    def get_prefix(self, prefix: str) -> list[tuple[str, JSON]]:
        return self._sim.get_prefix(prefix)

    def get_range(self, start: str, end: str) -> list[tuple[str, JSON]]:
        return self._sim.get_range(start, end)

    def get_history(self, key: str) -> list[HistoryEntry]:
        return self._sim.get_history(key)

    def set_event(self, name: str, payload: JSON) -> None:
        self._sim.set_event(name, payload)

    def new_id(self, prefix: str) -> str:
        """A fresh id of 128 bits derived from the id seed: unique per call, and as
        unguessable as the seed (the gateway's are 128 random bits), so no id can be
        computed from a transaction id or anything else a header shows."""
        self._ids += 1
        digest = hashlib.sha256(f"{self.id_seed}:{self._ids}".encode()).hexdigest()[:32]
        return f"{prefix}-{digest}"


ContractFunction = Callable[..., JSON]
_F = TypeVar("_F", bound=ContractFunction)


def transaction(name: str) -> Callable[[_F], _F]:
    """Mark a method as a transaction called `name`: its writes are committed in a block."""
    return _mark(name, submit=True)


def query(name: str) -> Callable[[_F], _F]:
    """Mark a method as a read-only query called `name`: evaluated without a block."""
    return _mark(name, submit=False)


def _mark(name: str, *, submit: bool) -> Callable[[_F], _F]:
    def decorate(function: _F) -> _F:
        function.__contract_function__ = (name, submit)  # type: ignore[attr-defined]
        return function

    return decorate


class Contract:
    """Base of a channel's contract; subclasses declare functions with @transaction / @query."""

    name: str = ""
    channel: str = ""

    def __init__(self) -> None:
        self._functions: dict[str, tuple[ContractFunction, bool]] = {}
        self._signatures: dict[str, inspect.Signature] = {}
        for attribute in dir(type(self)):
            marked = getattr(getattr(type(self), attribute), "__contract_function__", None)
            if marked is not None:
                function_name, submit = marked
                method = getattr(self, attribute)
                self._functions[function_name] = (method, submit)
                self._signatures[function_name] = inspect.signature(method)

    def is_transaction(self, function: str) -> bool:
        return self._lookup(function)[1]

    def invoke(self, ctx: TxContext, function: str, args: Mapping[str, JSON]) -> JSON:
        """Run a function; ContractError subclasses are refusals, anything else is a bug."""
        target, _ = self._lookup(function)
        try:
            self._signatures[function].bind(ctx, **args)
        except TypeError:
            raise BadInput(f"{function} was called with missing or unknown arguments.") from None
        return target(ctx, **args)

    def _lookup(self, function: str) -> tuple[ContractFunction, bool]:
        found = self._functions.get(function)
        if found is None:
            raise BadInput(f"The {self.name} contract has no function {function!r}.")
        return found


__all__ = [
    "JSON",
    "BadInput",
    "Caller",
    "Contract",
    "ContractError",
    "Directory",
    "StaticDirectory",
    "TxContext",
    "query",
    "transaction",
]
