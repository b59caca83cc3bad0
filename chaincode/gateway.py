"""The gateway: one call from the API, routed to a channel's contract, simulated and committed.

Every call first passes the channel check (the caller's organisation must be a
member), then the contract's own rules. Transactions are simulated on current
state and submitted; an MVCC conflict re-runs the simulation, a bounded number
of times, before the caller gets CONFLICT.

Steps of the story that need both channels (README.md) are the gateway's own
methods. It reads `medical` as the same caller — which proves the caller's
relationship to the child — and gives what it read to the `report` contract as
the context's transient data (`TxContext.transient`, as Fabric passes transient
data): only these methods set it, and no transaction records it.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from domain.errors import BadInputError, ConflictError, ForbiddenError
from ledger_backends import ChannelLedger, Proposal, ReadConflictError
from ledger_backends.hashing import new_salt
from ledger_backends.records import Creator, ForeignReads, JSONValue, format_timestamp, utc_now

from .base import Caller, Contract, Directory, TxContext
from .medical import MedicalContract
from .paging import DEFAULT_FIRST
from .records import (
    AdmissionRequestView,
    ChildGuardians,
    Page,
    ReportRequestView,
    ReportView,
    Transient,
)
from .report import ReportContract

MAX_ATTEMPTS = 5

# Reads another channel afresh for one attempt: what it found, and the versions it rests on.
ForeignRead = Callable[[], Awaitable[tuple[Transient, ForeignReads]]]


class ChannelPolicy(Protocol):
    """The channel ACL (authz.access.ChannelAccess): raises unless the caller's org is a member."""

    def require_member(self, caller: Any, channel: str) -> object: ...


class Gateway:
    """Routes calls to the contracts of the channels it was given."""

    def __init__(
        self,
        ledgers: Mapping[str, ChannelLedger],
        policy: ChannelPolicy,
        directory: Directory,
        *,
        contracts: Sequence[Contract] | None = None,
        clock: Callable[[], datetime] = utc_now,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.ledgers = dict(ledgers)
        self.policy = policy
        self.directory = directory
        self.contracts = {
            c.channel: c for c in (contracts or (MedicalContract(), ReportContract()))
        }
        self.clock = clock
        self.max_attempts = max_attempts

    # -- generic calls ------------------------------------------------------------------

    async def submit(
        self, caller: Caller, channel: str, function: str, args: Mapping[str, JSONValue]
    ) -> Any:
        """Run a transaction and return its result once its block is durable."""
        return await self._submit(caller, channel, function, dict(args))

    async def evaluate(
        self, caller: Caller, channel: str, function: str, args: Mapping[str, JSONValue]
    ) -> Any:
        """Run a query on the latest committed state; nothing is written."""
        return await self._evaluate(caller, channel, function, dict(args))

    # -- story steps that span both channels ----------------------------------------------

    async def create_admission_request(
        self, caller: Caller, child_id: str, school: str
    ) -> AdmissionRequestView:
        """Guardianship and the child's name come from `medical`, read as the caller."""
        child: ChildGuardians = await self._evaluate(
            caller, "medical", "readGuardians", {"childId": child_id}
        )
        admission: AdmissionRequestView = await self._submit(
            caller, "report", "createAdmissionRequest", {"school": school}, {"child": child}
        )
        return admission

    async def create_report(
        self, caller: Caller, report_request_id: str, conclusion: str
    ) -> ReportView:
        """The doctor's card, read on `medical` as the doctor, is what the report is made from.

        The report depends on that read: it records the versions read on `medical`
        (the child, the doctor's ACTIVE agreement, the card) as foreign reads and is
        committed only if they are still current (see ChainWriter). A revocation that
        commits first wins: the report becomes a conflict, and the card is read again
        for the next attempt, which the doctor then finds not found.
        """
        patients = await self._patients(caller)
        request: ReportRequestView = await self._evaluate(
            caller, "report", "readReportRequest", {"id": report_request_id}, patients
        )
        medical, medical_ledger = self._route(caller, "medical")

        async def read_card() -> tuple[Transient, ForeignReads]:
            read, card = await asyncio.to_thread(
                self._simulate,
                medical,
                medical_ledger,
                caller,
                "readCard",
                {"childId": request["childId"]},
            )
            # Fresh for each attempt: a salted commitment shows nothing of the card.
            return {"card": card, "cardSalt": new_salt()}, {"medical": read.read_set}

        report: ReportView = await self._submit(
            caller,
            "report",
            "createReport",
            {"reportRequestId": report_request_id, "conclusion": conclusion},
            patients,
            depends_on=read_card,
        )
        return report

    async def list_report_requests(
        self,
        caller: Caller,
        status: str | None = None,
        first: int = DEFAULT_FIRST,
        after: str | None = None,
    ) -> Page[ReportRequestView]:
        """A page of listReportRequests; a doctor sees the requests for the children of
        their ACTIVE agreements."""
        patients = await self._patients(caller)
        found: Page[ReportRequestView] = await self._evaluate(
            caller,
            "report",
            "listReportRequests",
            {"status": status, "first": first, "after": after},
            patients,
        )
        return found

    async def read_report_request(self, caller: Caller, request_id: str) -> ReportRequestView:
        patients = await self._patients(caller)
        found: ReportRequestView = await self._evaluate(
            caller, "report", "readReportRequest", {"id": request_id}, patients
        )
        return found

    async def _patients(self, caller: Caller) -> Transient:
        """A doctor's children under ACTIVE agreements, read on `medical`; none for others."""
        if caller.role != "doctor":
            return {}
        ids: list[str] = await self._evaluate(caller, "medical", "listPatientIds", {})
        return {"patients": ids}

    # -- machinery -------------------------------------------------------------------------

    def _route(self, caller: Caller, channel: str) -> tuple[Contract, ChannelLedger]:
        self.policy.require_member(caller, channel)
        contract, ledger = self.contracts.get(channel), self.ledgers.get(channel)
        if contract is None or ledger is None:
            raise ForbiddenError(f"Your organisation has no access to channel {channel!r}.")
        return contract, ledger

    async def _submit(
        self,
        caller: Caller,
        channel: str,
        function: str,
        args: dict[str, JSONValue],
        transient: Transient | None = None,
        *,
        depends_on: ForeignRead | None = None,
    ) -> Any:
        """Simulate and commit, again on a conflict; `depends_on` reads other channels
        afresh for each attempt, giving more transient data and the foreign reads it rests on."""
        contract, ledger = self._route(caller, channel)
        _refuse_unstorable(args)
        if not contract.is_transaction(function):
            raise BadInputError(f"{function} is a query; evaluate it instead.")
        for _ in range(self.max_attempts):
            more, foreign_reads = await depends_on() if depends_on else ({}, {})
            proposal, result = await asyncio.to_thread(
                self._simulate,
                contract,
                ledger,
                caller,
                function,
                args,
                {**(transient or {}), **more},
                foreign_reads,
            )
            if not proposal.write_set:
                return result
            try:
                await ledger.submit(proposal)
            except ReadConflictError:
                continue
            return result
        raise ConflictError(
            "Others changed the same records at the same moment; the change was not made. "
            "Please try again."
        )

    async def _evaluate(
        self,
        caller: Caller,
        channel: str,
        function: str,
        args: dict[str, JSONValue],
        transient: Transient | None = None,
    ) -> Any:
        contract, ledger = self._route(caller, channel)
        _refuse_unstorable(args)
        if contract.is_transaction(function):
            raise BadInputError(f"{function} changes the ledger; submit it instead.")
        _, result = await asyncio.to_thread(
            self._simulate, contract, ledger, caller, function, args, transient
        )
        return result

    def _simulate(
        self,
        contract: Contract,
        ledger: ChannelLedger,
        caller: Caller,
        function: str,
        args: dict[str, JSONValue],
        transient: Transient | None = None,
        foreign_reads: ForeignReads | None = None,
    ) -> tuple[Proposal, Any]:
        simulator = ledger.simulator()
        tx_id = uuid.uuid4().hex
        timestamp = format_timestamp(self.clock())
        # Record ids take 128 random bits after the time, kept with the transaction's arguments.
        id_seed = secrets.token_hex(16)
        ctx = TxContext(
            simulator,
            caller=caller,
            timestamp=timestamp,
            directory=self.directory,
            id_seed=id_seed,
            transient=transient,
        )
        result = contract.invoke(ctx, function, args)
        proposal = simulator.proposal(
            tx_id=tx_id,
            contract=contract.name,
            function=function,
            args={**args, "idSeed": id_seed},
            creator=Creator(uid=caller.uid, msp=caller.msp),
            timestamp=timestamp,
            foreign_reads=foreign_reads,
        )
        return proposal, result


_UNSTORABLE_TEXT = re.compile("[\x00\ud800-\udfff]")


def _refuse_unstorable(value: JSONValue) -> None:
    """Text every backend stores alike: no NUL (PostgreSQL refuses it), no unpaired surrogate."""
    if isinstance(value, str):
        if _UNSTORABLE_TEXT.search(value):
            raise BadInputError("Text must be valid Unicode without NUL characters.")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _refuse_unstorable(key)
            _refuse_unstorable(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_unstorable(item)
