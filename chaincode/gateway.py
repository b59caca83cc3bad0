"""The gateway: one call from the API, routed to a channel's contract, simulated and committed.

Every call first passes the channel check (the caller's organisation must be a
member), then the contract's own rules. Transactions are simulated on current
state and submitted; an MVCC conflict re-runs the simulation, a bounded number
of times, before the caller gets CONFLICT.

Two story steps need both channels (the story in README.md). The gateway reads
`medical` as the same caller — which proves the caller's relationship to the
child — and passes only what the report needs into the `report` contract as
`verified*` arguments. Those arguments are the gateway's alone: a caller who
supplies one through `submit` or `evaluate` is refused.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from ledger_backends import ChannelLedger, ConflictError
from ledger_backends.hashing import canonical_json, commitment, new_salt
from ledger_backends.records import Creator, ForeignReads, format_timestamp, utc_now

from .base import JSON, Caller, Contract, Directory, TxContext
from .errors import BadInput, Conflict, Forbidden
from .medical import MedicalContract
from .report import ReportContract

MAX_ATTEMPTS = 5


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
        self, caller: Caller, channel: str, function: str, args: Mapping[str, JSON]
    ) -> JSON:
        """Run a transaction and return its result once its block is durable."""
        _refuse_verified(args)
        return await self._submit(caller, channel, function, dict(args))

    async def evaluate(
        self, caller: Caller, channel: str, function: str, args: Mapping[str, JSON]
    ) -> JSON:
        """Run a query on the latest committed state; nothing is written."""
        _refuse_verified(args)
        return await self._evaluate(caller, channel, function, dict(args))

    # -- story steps that span both channels ----------------------------------------------

    async def create_admission_request(self, caller: Caller, child_id: str, school: str) -> JSON:
        """Guardianship and the child's name come from `medical`, read as the caller."""
        verified = await self._evaluate(caller, "medical", "readGuardians", {"childId": child_id})
        return await self._submit(
            caller,
            "report",
            "createAdmissionRequest",
            {"verifiedChild": verified, "school": school},
        )

    async def create_report(self, caller: Caller, report_request_id: str, conclusion: str) -> JSON:
        """The doctor's card, read on `medical` as the doctor, becomes the report's content.

        The report depends on that read: it records the versions read on `medical`
        (the child, the doctor's ACTIVE agreement, the card) as foreign reads and is
        committed only if they are still current (see ChainWriter). A revocation that
        commits first wins: the report becomes a conflict, and the card is read again
        for the next attempt, which the doctor then finds not found.
        """
        children = await self._doctor_children(caller)
        request = await self._evaluate(
            caller,
            "report",
            "readReportRequest",
            {"id": report_request_id, "verifiedChildren": children},
        )
        medical, medical_ledger = self._route(caller, "medical")

        async def read_card() -> tuple[dict[str, JSON], ForeignReads]:
            read, card = await asyncio.to_thread(
                self._simulate,
                medical,
                medical_ledger,
                caller,
                "readCard",
                {"childId": request["childId"]},
            )
            stored_card = {k: v for k, v in card.items() if k != "childName"}
            # A salted commitment: those who see the report but not the card cannot test
            # guesses of the card against it; those who may read the card get the salt.
            salt = new_salt()
            verified_card = {
                "childId": card["childId"],
                "version": card["version"],
                "hash": commitment(salt, canonical_json(stored_card)),
                "salt": salt,
                "childName": card["childName"],
                "healthGroup": card["healthGroup"],
                "physicalEducationGroup": card["physicalEducationGroup"],
                "allergies": card["allergies"],
                "chronicConditions": card["chronicConditions"],
                "vaccinations": card["vaccinations"],
            }
            return {"verifiedCard": verified_card}, {"medical": read.read_set}

        return await self._submit(
            caller,
            "report",
            "createReport",
            {
                "reportRequestId": report_request_id,
                "conclusion": conclusion,
                "verifiedChildren": [request["childId"]],
            },
            depends_on=read_card,
        )

    async def list_report_requests(self, caller: Caller, status: str | None = None) -> JSON:
        """A doctor sees the requests for the children of their ACTIVE agreements."""
        args: dict[str, JSON] = {"status": status}
        if caller.role == "doctor":
            args["verifiedChildren"] = await self._doctor_children(caller)
        return await self._evaluate(caller, "report", "listReportRequests", args)

    async def read_report_request(self, caller: Caller, request_id: str) -> JSON:
        args: dict[str, JSON] = {"id": request_id}
        if caller.role == "doctor":
            args["verifiedChildren"] = await self._doctor_children(caller)
        return await self._evaluate(caller, "report", "readReportRequest", args)

    async def _doctor_children(self, caller: Caller) -> list[str]:
        if caller.role != "doctor":
            return []
        ids: list[str] = await self._evaluate(caller, "medical", "listPatientIds", {})
        return ids

    # -- machinery -------------------------------------------------------------------------

    def _route(self, caller: Caller, channel: str) -> tuple[Contract, ChannelLedger]:
        self.policy.require_member(caller, channel)
        contract, ledger = self.contracts.get(channel), self.ledgers.get(channel)
        if contract is None or ledger is None:
            raise Forbidden(f"Your organisation has no access to channel {channel!r}.")
        return contract, ledger

    async def _submit(
        self,
        caller: Caller,
        channel: str,
        function: str,
        args: dict[str, JSON],
        *,
        depends_on: Callable[[], Awaitable[tuple[dict[str, JSON], ForeignReads]]] | None = None,
    ) -> JSON:
        """Simulate and commit, again on a conflict; `depends_on` reads other channels
        afresh for each attempt, giving more arguments and the foreign reads they rest on."""
        contract, ledger = self._route(caller, channel)
        _refuse_unstorable(args)
        if not contract.is_transaction(function):
            raise BadInput(f"{function} is a query; evaluate it instead.")
        for _ in range(self.max_attempts):
            more, foreign_reads = await depends_on() if depends_on else ({}, {})
            proposal, result = await asyncio.to_thread(
                self._simulate, contract, ledger, caller, function, {**args, **more}, foreign_reads
            )
            if not proposal.write_set:
                return result
            try:
                await ledger.submit(proposal)
            except ConflictError:
                continue
            return result
        raise Conflict(
            "Others changed the same records at the same moment; the change was not made. "
            "Please try again."
        )

    async def _evaluate(
        self, caller: Caller, channel: str, function: str, args: dict[str, JSON]
    ) -> JSON:
        contract, ledger = self._route(caller, channel)
        _refuse_unstorable(args)
        if contract.is_transaction(function):
            raise BadInput(f"{function} changes the ledger; submit it instead.")
        _, result = await asyncio.to_thread(
            self._simulate, contract, ledger, caller, function, args
        )
        return result

    def _simulate(
        self,
        contract: Contract,
        ledger: ChannelLedger,
        caller: Caller,
        function: str,
        args: dict[str, JSON],
        foreign_reads: ForeignReads | None = None,
    ) -> tuple[Any, JSON]:
        simulator = ledger.simulator()
        tx_id = uuid.uuid4().hex
        timestamp = format_timestamp(self.clock())
        # Record ids come from 128 random bits, kept with the transaction's arguments.
        id_seed = secrets.token_hex(16)
        ctx = TxContext(
            simulator,
            caller=caller,
            tx_id=tx_id,
            timestamp=timestamp,
            directory=self.directory,
            id_seed=id_seed,
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


def _refuse_unstorable(value: JSON) -> None:
    """Text every backend stores alike: no NUL (PostgreSQL refuses it), no unpaired surrogate."""
    if isinstance(value, str):
        if _UNSTORABLE_TEXT.search(value):
            raise BadInput("Text must be valid Unicode without NUL characters.")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _refuse_unstorable(key)
            _refuse_unstorable(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_unstorable(item)


def _refuse_verified(args: Mapping[str, JSON]) -> None:
    if any(name.startswith("verified") for name in args):
        raise BadInput("Arguments starting with 'verified' are set by the gateway only.")
