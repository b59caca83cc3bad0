"""The contract API, modelled on Fabric's: a Contract's functions run against a TxContext.

Contracts do no I/O of their own and are deterministic: state comes through the
context, and so do time (`ctx.timestamp`), fresh ids (`ctx.new_id`, the
transaction time followed by bits drawn from a random seed the gateway chose
and records with the transaction) and what the gateway verified on another
channel (`ctx.transient`). A function is marked `@transaction` (its writes are
committed) or `@query` (read-only, evaluated without a block); only a query
pages through a range (`ctx.get_prefix_page`). A query that returns a child's
protected data notes each read on the context (`ctx.read_granted`), and each
read it refused (`ctx.read_refused`), for the gateway to record in the child's
access log (access_log.py).

Values are sealed at rest (encryption/envelope.py): `put_state` names the child a
value belongs to, and the context seals it with that child's data key for this
transaction (`sealer`); reads open what they find. A value whose child's keys were
destroyed (erasure.py) reads as absent, and the child is noted in `ctx.erased`, so
that `Contract.invoke` can tell that child's guardians why their records are gone.
Each sealed value carries a salted commitment; the context keeps the openings of the
versions it read (`opening_of`), for a query to hand a reader of a version what proves
it is the one in the log (a verified read).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

from domain.errors import BadInputError, NotFoundError
from encryption.envelope import Erased, Opening, Sealer, is_sealed
from encryption.keyring import ChildErasedError
from ledger_backends import HistoryEntry, TxSimulator, Version
from ledger_backends.hashing import canonical_json
from ledger_backends.records import JSONValue, parse_timestamp

from .records import AccessFacts, RecordOpening, Transient


class Caller(Protocol):
    """Who invokes a function: what a verified certificate proves (authz.identity.Identity)."""

    @property
    def uid(self) -> str: ...
    @property
    def msp(self) -> str: ...
    @property
    def org(self) -> str: ...
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


@dataclass
class ReadLog:
    """What one invocation read of children's protected data: the reads it granted, and
    the reads it refused (the facts of a record that exists, None for one that does not)."""

    granted: list[AccessFacts] = field(default_factory=list)
    refused: list[AccessFacts | None] = field(default_factory=list)


class TxContext:
    """One invocation's view of the ledger, the caller and the network (Fabric's ctx.stub).

    `tx_id` is the id the invocation's proposal gets (Fabric's GetTxID).
    `transient` holds what the gateway verified on another channel for this invocation
    (Fabric's transient data): callers cannot set it, and no transaction records it.
    `sealer` seals and opens values for this transaction (its tx id is the one the
    proposal gets); None stores values in clear, a benchmark switch only.
    """

    def __init__(
        self,
        simulator: TxSimulator,
        *,
        tx_id: str,
        caller: Caller,
        timestamp: str,
        directory: Directory,
        id_seed: str,
        transient: Transient | None = None,
        reads: ReadLog | None = None,
        sealer: Sealer | None = None,
    ) -> None:
        self._sim = simulator
        self.tx_id = tx_id
        self.sealer = sealer
        # Keys this invocation wrote (True) or deleted (False): `writer_of` answers for them.
        self._written: dict[str, bool] = {}
        # Children whose erased values this invocation met (read as absent).
        self.erased: set[str] = set()
        # The openings of the committed versions it read, by (key, writing transaction).
        self._openings: dict[tuple[str, str], Opening] = {}
        self.caller = caller
        self.timestamp = timestamp
        self.directory = directory
        self.id_seed = id_seed
        self.transient: Transient = {} if transient is None else transient
        self.reads = ReadLog() if reads is None else reads
        self._ids = 0

    def get_state(self, key: str) -> JSONValue | None:
        """The value of `key` opened, None if there is none or its child was erased."""
        return self._open(key, self._sim.get_state(key))

    def version_of(self, key: str) -> Version | None:
        """(block number, transaction index) of the last write of `key`, None if absent
        (an erased value has a version all the same)."""
        return self._sim.get_version(key)

    def put_state(self, key: str, value: JSONValue, *, child: str | None) -> None:
        """Write `value`, sealed with the key of `child`, the child it belongs to; None for
        a value that belongs to no child (stored as it is). Writing for an erased child is
        refused as for a child that does not exist."""
        if child is not None and value is not None and self.sealer is not None:
            try:
                value = self.sealer.seal(key, value, child)
            except ChildErasedError as erased:
                self.erased.add(erased.child)
                raise NotFoundError("No such child is visible to you.") from None
        self._sim.put_state(key, value)
        self._written[key] = True

    def del_state(self, key: str) -> None:
        self._sim.del_state(key)
        self._written[key] = False

    def writer_of(self, key: str) -> str | None:
        """The id of the transaction whose write `key` holds as this invocation sees it:
        this one's (`tx_id`) once it wrote the key, else the committed write of the value
        `version_of` reads (found in the key's history); None when the key holds nothing.
        Raises LookupError if the history lacks that write (a damaged store)."""
        if key in self._written:
            return self.tx_id if self._written[key] else None
        version = self._sim.get_version(key)
        if version is None:
            return None
        for entry in reversed(self._sim.get_history(key)):
            if (entry.block_number, entry.tx_index) == version:
                return entry.tx_id
        raise LookupError(f"The history of {key!r} lacks the write its value comes from.")

    def get_prefix(self, prefix: str) -> list[tuple[str, JSONValue]]:
        """Every (key, value) under `prefix`; a value is None when its child was erased."""
        return [(key, self._open(key, value)) for key, value in self._sim.get_prefix(prefix)]

    def get_prefix_page(
        self, prefix: str, *, after: str | None, limit: int, reverse: bool = True
    ) -> list[tuple[str, JSONValue]]:
        """Up to `limit` (key, value) pairs under `prefix` after `after`, in descending key
        order (newest id first) by default; in queries only (TxSimulator.get_prefix_page).
        A value is None when its child was erased."""
        found = self._sim.get_prefix_page(prefix, after=after, limit=limit, reverse=reverse)
        return [(key, self._open(key, value)) for key, value in found]

    def get_keys_page(
        self, prefix: str, *, after: str | None, limit: int, reverse: bool = True
    ) -> list[str]:
        """The keys `get_prefix_page` would return, without opening their values: what an
        index walk needs (keys are never sealed)."""
        found = self._sim.get_prefix_page(prefix, after=after, limit=limit, reverse=reverse)
        return [key for key, _ in found]

    def get_history(self, key: str) -> list[HistoryEntry]:
        """Every committed write of `key`, oldest first, values opened; a sealed value must
        name the transaction that wrote it. Writes of an erased child are left out."""
        opened: list[HistoryEntry] = []
        for entry in self._sim.get_history(key):
            stored = entry.json()
            if stored is None or not is_sealed(stored):
                opened.append(entry)
                continue
            value = self._open(key, stored, tx_id=entry.tx_id)
            if value is not None:
                opened.append(dataclasses.replace(entry, value=canonical_json(value)))
        return opened

    def opening_of(self, key: str, tx_id: str) -> RecordOpening | None:
        """The opening of the commitment of the version of `key` that transaction `tx_id`
        wrote, as this invocation read it (get_state, get_history, a prefix read): its
        value's RFC 8785 text, the salt and the commitment. None when this invocation did
        not read that version, or it carries no commitment (sealed before commitments
        existed, or stored in clear); an erased version is never read. Reads nothing."""
        opening = self._openings.get((key, tx_id))
        if opening is None:
            return None
        return {
            "key": key,
            "txId": tx_id,
            "canonicalText": opening.canonical_text,
            "salt": opening.salt,
            "commitment": opening.commitment,
        }

    def _open(self, key: str, stored: JSONValue | None, *, tx_id: str | None = None) -> JSONValue:
        if stored is None:
            return None
        if self.sealer is None:
            if is_sealed(stored):
                raise SealedValueError(
                    f"{key!r} is sealed, and this context was given no keys to open it."
                )
            return stored
        opened = self.sealer.open_with_opening(key, stored, tx_id=tx_id)
        if isinstance(opened, Erased):
            self.erased.add(opened.child)
            return None
        value, opening = opened
        if opening is not None:
            # The seal authenticated its transaction, the one that wrote this version.
            self._openings[(key, stored["sealed"]["tx"])] = opening
        return value

    def set_event(self, name: str, payload: JSONValue) -> None:
        self._sim.set_event(name, payload)

    def read_granted(self, facts: AccessFacts) -> None:
        """This invocation returns protected data: the gateway records the read before the
        caller is given it."""
        self.reads.granted.append(facts)

    def read_refused(self, facts: AccessFacts | None) -> None:
        """This invocation refuses a read of protected data, of a record that exists
        (`facts`) or of none (None): the gateway records it in the background."""
        self.reads.refused.append(facts)

    def new_id(self, prefix: str, *, in_time_order: bool = True) -> str:
        """A fresh id: `PREFIX-`, then (in time order) `t`, the transaction time in
        microseconds since 1970 (14 hex digits) and `-`, then 128 bits derived from the
        id seed (32 hex digits).

        Unique per call, and as unguessable as the seed (the gateway's are 128 random
        bits): no id can be computed from a transaction id or anything else a header
        shows. Ids in time order sort by transaction time, so index keys ending in them
        scan in time order; give `in_time_order=False` for a record whose id is shown to
        someone who may not learn when it was made. Ids without a time (`PREFIX-` and 32
        hex digits) all sort below those with one ("t" > "f").
        """
        self._ids += 1
        digest = hashlib.sha256(f"{self.id_seed}:{self._ids}".encode()).hexdigest()[:32]
        if not in_time_order:
            return f"{prefix}-{digest}"
        micros = _micros_since_1970(self.timestamp)
        return f"{prefix}-t{micros:014x}-{digest}"


class SealedValueError(RuntimeError):
    """A sealed value met by a context that stores in clear: a gateway or harness built
    without keyrings over a ledger written with them (a configuration mistake)."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros_since_1970(timestamp: str) -> int:
    return (parse_timestamp(timestamp) - _EPOCH) // timedelta(microseconds=1)


ContractFunction = Callable[..., JSONValue]
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

    def invoke(self, ctx: TxContext, function: str, args: Mapping[str, JSONValue]) -> JSONValue:
        """Run a function; RefusalError subclasses are refusals, anything else is a bug.

        A NOT_FOUND raised after the function met erased values is told to the erased
        child's guardians as an erasure (`erased_refusal`); anyone else gets it unchanged,
        as for a record that never existed.
        """
        target, _ = self._lookup(function)
        try:
            self._signatures[function].bind(ctx, **args)
        except TypeError:
            raise BadInputError(
                f"{function} was called with missing or unknown arguments."
            ) from None
        try:
            return target(ctx, **args)
        except NotFoundError:
            told = self.erased_refusal(ctx) if ctx.erased else None
            if told is None:
                raise
            raise told from None

    def erased_refusal(self, ctx: TxContext) -> NotFoundError | None:
        """What a NOT_FOUND becomes for the caller when `ctx.erased` names children whose
        records were erased: None (unchanged) unless a contract records erasures
        (erasure.RecordsErasure)."""
        del ctx
        return None

    def _lookup(self, function: str) -> tuple[ContractFunction, bool]:
        found = self._functions.get(function)
        if found is None:
            raise BadInputError(f"The {self.name} contract has no function {function!r}.")
        return found


__all__ = [
    "Caller",
    "Contract",
    "Directory",
    "ReadLog",
    "SealedValueError",
    "StaticDirectory",
    "TxContext",
    "query",
    "transaction",
]
