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

Every query is a read in the sense of the access log (access_log.py): what it
returns of a child's protected data, the gateway records with `recordAccess` on
the same channel, as the reader, and hands back only once that entry is
committed; what it refused, it records in the background (refusals.py). A
gateway built with `access_log=False` records nothing, for benchmarks only.

Values are sealed with per-child keys (encryption/): each simulation gets a Sealer
over its channel's keyring, for the transaction id its proposal will carry. A
gateway built without `keyrings` stores values in clear, for benchmarks only, and
cannot erase. An erasure (`erase_child`, erasure.py) destroys a child's keys on
every channel, then records itself on each.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from domain.errors import BadInputError, ConflictError, ForbiddenError, NotFoundError
from encryption.envelope import Sealer
from encryption.keyring import Keyring
from ledger_backends import ChannelLedger, Proposal, ReadConflictError
from ledger_backends.hashing import new_salt
from ledger_backends.records import Creator, ForeignReads, JSONValue, format_timestamp, utc_now

from . import erasure
from .base import Caller, Contract, Directory, ReadLog, TxContext
from .consent import DUE_MAX, SERVER
from .medical import MedicalContract
from .paging import DEFAULT_FIRST, page_size
from .records import (
    AccessEntryView,
    AccessFacts,
    AdmissionRequestView,
    ChildGuardians,
    ErasureReceipt,
    ErasureRecord,
    Page,
    ReportRequestView,
    ReportView,
    Transient,
)
from .refusals import DELAY_SECONDS, RefusalRecorder
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
        access_log: bool = True,
        refusal_delay: float = DELAY_SECONDS,
        keyrings: Mapping[str, Keyring] | None = None,
    ) -> None:
        self.ledgers = dict(ledgers)
        if keyrings is not None and not set(self.ledgers) <= set(keyrings):
            missing = ", ".join(sorted(set(self.ledgers) - set(keyrings)))
            raise ValueError(f"No keyring was given for channel {missing}.")
        # None: values in clear (benchmarks only).
        self.keyrings = None if keyrings is None else dict(keyrings)
        self.policy = policy
        self.directory = directory
        self.contracts = {
            c.channel: c for c in (contracts or (MedicalContract(), ReportContract()))
        }
        self.clock = clock
        self.max_attempts = max_attempts
        self.access_log = access_log
        self._refusals = RefusalRecorder(self._record_refusals, delay=refusal_delay)

    # -- generic calls ------------------------------------------------------------------

    async def submit(
        self, caller: Caller, channel: str, function: str, args: Mapping[str, JSONValue]
    ) -> Any:
        """Run a transaction and return its result once its block is durable."""
        return await self._submit(caller, channel, function, dict(args))

    async def evaluate(
        self, caller: Caller, channel: str, function: str, args: Mapping[str, JSONValue]
    ) -> Any:
        """Run a query on the latest committed state; it writes nothing but the access-log
        entries of what it read (committed before it returns) and refused."""
        return await self._evaluate(caller, channel, function, dict(args))

    async def settle(self) -> None:
        """Record every refused read still gathering (see refusals.py) now."""
        await self._refusals.settle()

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

        Only a doctor's call reads the card: the contract refuses anyone else before it
        looks at one, and a read no report could be made from would stand in the child's
        access log as a read by a caller who was given nothing.
        """
        patients = await self._patient_of_request(caller, report_request_id)
        request: ReportRequestView = await self._evaluate(
            caller, "report", "readReportRequest", {"id": report_request_id}, patients
        )

        async def read_card() -> tuple[Transient, ForeignReads]:
            # A read of the card by the doctor, recorded before the report is made from it.
            read, card = await self._read(
                caller, "medical", "readCard", {"childId": request["childId"]}
            )
            # Fresh for each attempt: a salted commitment shows nothing of the card.
            return {"card": card, "cardSalt": new_salt()}, {"medical": read.read_set}

        report: ReportView = await self._submit(
            caller,
            "report",
            "createReport",
            {"reportRequestId": report_request_id, "conclusion": conclusion},
            patients,
            depends_on=read_card if caller.role == "doctor" else None,
        )
        return report

    async def create_report_request(
        self, caller: Caller, admission_request_id: str
    ) -> ReportRequestView:
        """A school asks for a report; the doctors of the child's agreements in force are
        told. A school may not read `medical`: the server reads them there itself
        (`treatingDoctors`) for the report contract, which names them only in the event."""
        admission: AdmissionRequestView = await self._evaluate(
            caller, "report", "readAdmissionRequest", {"id": admission_request_id}
        )
        doctors: list[str] = await self._evaluate(
            SERVER, "medical", "treatingDoctors", {"childId": admission["childId"]}
        )
        request: ReportRequestView = await self._submit(
            caller,
            "report",
            "createReportRequest",
            {"admissionRequestId": admission_request_id},
            {"doctors": doctors},
        )
        return request

    async def expire_consents(self) -> int:
        """As the server: announce every end of consent that has come and is not yet
        announced (consent.py), on each channel; returns how many this call announced."""
        announced = 0
        for channel in self.contracts:
            if channel not in self.ledgers:
                continue
            while True:
                due: list[str] = await self._evaluate(SERVER, channel, "dueConsents", {})
                if due:
                    count: int = await self._submit(
                        SERVER, channel, "expireConsents", {"keys": due}
                    )
                    announced += count
                if len(due) < DUE_MAX:
                    break
        return announced

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
        patients = await self._patient_of_request(caller, request_id)
        found: ReportRequestView = await self._evaluate(
            caller, "report", "readReportRequest", {"id": request_id}, patients
        )
        return found

    async def list_access_log(
        self,
        caller: Caller,
        child_id: str,
        first: int = DEFAULT_FIRST,
        after: str | None = None,
    ) -> Page[AccessEntryView]:
        """For the child's guardians: a page of its access log, both channels' entries
        merged newest first.

        Guardianship is read on `medical` as the caller (NOT_FOUND, as for a child one
        cannot see, for everyone else) and given to the `report` contract. Once the child
        is erased, its guardians are those its erasure names (`readErasure`), and what they
        list is what is left in clear: the entries of the erasure."""
        size = page_size(first)
        try:
            child: ChildGuardians = await self._evaluate(
                caller, "medical", "readGuardians", {"childId": child_id}
            )
        except NotFoundError as refused:
            erased = await self._erasure_as(caller, child_id, refused)
            known: Transient = {"erasure": erasure.facts_of(erased)}
            child_id = erased["childId"]
        else:
            known = {"child": child}
            child_id = child["id"]
        args: dict[str, JSONValue] = {"childId": child_id, "first": size, "after": after}
        pages: list[Page[AccessEntryView]] = await asyncio.gather(
            self._evaluate(caller, "medical", "listAccessLog", args),
            self._evaluate(caller, "report", "listAccessLog", args, known),
        )
        return _newest_of(pages, size)

    async def erase_child(
        self, caller: Caller, child_id: str, confirm: str | None
    ) -> ErasureReceipt:
        """Erase a child's records on every channel: destroy its keys, then record the
        erasure on each channel (erasure.py); repeating it completes one that stopped.

        A guardian confirms with the child's full name exactly (`confirm`; BAD_USER_INPUT
        and nothing erased otherwise); anyone else is answered NOT_FOUND as for a missing
        child. The server (SERVER, on an operator's request) needs no confirmation: it
        reads the guardians itself, or takes them from an erasure that stopped half-way.
        """
        keyrings = self._keyrings_to_erase()
        if caller is SERVER:
            child_id, guardians = await self._guardians_to_erase(child_id, confirm)
        else:
            if caller.role != "parent":  # no one else is ever a guardian
                raise NotFoundError("No such child is visible to you.")
            child: ChildGuardians = await self._evaluate(
                caller, "medical", "readGuardians", {"childId": child_id}
            )
            erasure.check_confirmation(child, confirm)
            child_id, guardians = child["id"], child["guardians"]
        at = format_timestamp(self.clock())
        erased_at = await asyncio.to_thread(erasure.destroy_keys, keyrings, child_id, at)
        facts = erasure.facts(child_id, guardians, erased_at)
        recorded: list[ErasureRecord] = [
            await self._submit(caller, channel, "recordErasure", {}, {"erasure": facts})
            for channel in keyrings
        ]
        # An earlier, half-done run may have recorded it already, with its own date.
        first = min(recorded, key=lambda record: record["erasedAt"])
        return erasure.receipt(first, list(keyrings))

    def _keyrings_to_erase(self) -> dict[str, Keyring]:
        """The keyrings of every channel a contract is on; an erasure must reach them all."""
        if self.keyrings is None:
            raise ForbiddenError("This server keeps records in clear: they cannot be erased.")
        missing = [channel for channel in self.contracts if channel not in self.ledgers]
        if missing:
            raise ForbiddenError(
                f"This server does not serve channel {missing[0]!r}: erase from one that "
                "serves every channel."
            )
        return {channel: self.keyrings[channel] for channel in self.contracts}

    async def _guardians_to_erase(
        self, child_id: str, confirm: str | None
    ) -> tuple[str, list[str]]:
        """For the server: the child and its guardians, from an erasure recorded before,
        from the child as it reads it, or, for a child whose keys are gone but whose
        erasure is not recorded, from the guardian index; NOT_FOUND if none knows the child."""
        try:
            erased: ErasureRecord = await self._evaluate(
                SERVER, "medical", "readErasure", {"childId": child_id}
            )
        except NotFoundError:
            pass
        else:
            return erased["childId"], erased["guardians"]
        child: ChildGuardians | None = await self._evaluate(
            SERVER, "medical", "childGuardians", {"childId": child_id}
        )
        if child is not None:
            if confirm is not None:
                erasure.check_confirmation(child, confirm)
            return child["id"], child["guardians"]
        guardians: list[str] = await self._evaluate(
            SERVER, "medical", "indexedGuardians", {"childId": child_id}
        )
        if not guardians:
            raise NotFoundError("No such child is visible to you.")
        return child_id, guardians

    async def _erasure_as(
        self, caller: Caller, child_id: str, refused: NotFoundError
    ) -> ErasureRecord:
        """The child's erasure as `caller` may read it (a guardian it names); `refused`, the
        refusal that asked, for everyone else."""
        try:
            found: ErasureRecord = await self._evaluate(
                caller, "medical", "readErasure", {"childId": child_id}
            )
        except NotFoundError:
            raise refused from None
        return found

    async def _patients(self, caller: Caller) -> Transient:
        """A doctor's children under ACTIVE agreements, read on `medical`; none for others.
        It opens every patient's index entry: for lists only (see _patient_of_request)."""
        if caller.role != "doctor":
            return {}
        ids: list[str] = await self._evaluate(caller, "medical", "listPatientIds", {})
        return {"patients": ids}

    async def _patient_of_request(self, caller: Caller, request_id: str) -> Transient:
        """The `patients` that prove a doctor's access to one report request: its child, if
        `medical` says the doctor treats it now (one point read on each channel, however
        many patients the doctor has); none for others.

        The child is looked up as the server and only ever given to the doctor's own
        `isPatient`, which is asked for an id that names no request too, so a refusal reads
        as much as an answer."""
        if caller.role != "doctor":
            return {}
        child_id: str | None = await self._evaluate(
            SERVER, "report", "reportRequestChild", {"id": request_id}
        )
        treated: bool = await self._evaluate(
            caller, "medical", "isPatient", {"childId": child_id or ""}
        )
        return {"patients": [child_id]} if treated and child_id else {}

    # -- machinery -------------------------------------------------------------------------

    def _route(self, caller: Caller, channel: str) -> tuple[Contract, ChannelLedger]:
        if caller is not SERVER:  # the server itself acts on every channel it serves
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
        contract, _ = self._route(caller, channel)
        _refuse_unstorable(args)
        if contract.is_transaction(function):
            raise BadInputError(f"{function} changes the ledger; submit it instead.")
        _, result = await self._read(caller, channel, function, args, transient)
        return result

    async def _read(
        self,
        caller: Caller,
        channel: str,
        function: str,
        args: dict[str, JSONValue],
        transient: Transient | None = None,
    ) -> tuple[Proposal, Any]:
        """Simulate a query; the protected data it read is recorded, and the entry
        committed, before its result is handed back; the reads it refused are recorded in
        the background, so that the caller's refusal comes as fast as it would have."""
        contract, ledger = self._route(caller, channel)
        reads = ReadLog()
        try:
            simulated = await asyncio.to_thread(
                self._simulate, contract, ledger, caller, function, args, transient, reads=reads
            )
        finally:
            if self.access_log and reads.refused:
                self._refusals.add(caller, channel, reads.refused)
        if self.access_log and reads.granted:
            await self._submit(caller, channel, "recordAccess", {}, {"access": reads.granted})
        return simulated

    async def _record_refusals(
        self, caller: Caller, channel: str, refused: list[AccessFacts]
    ) -> None:
        await self._submit(caller, channel, "recordAccess", {}, {"refusals": refused})

    def _simulate(
        self,
        contract: Contract,
        ledger: ChannelLedger,
        caller: Caller,
        function: str,
        args: dict[str, JSONValue],
        transient: Transient | None = None,
        foreign_reads: ForeignReads | None = None,
        *,
        reads: ReadLog | None = None,
    ) -> tuple[Proposal, Any]:
        simulator = ledger.simulator()
        # The proposal carries this tx id, and every value sealed in it names the same one.
        tx_id = uuid.uuid4().hex
        keyring = None if self.keyrings is None else self.keyrings[contract.channel]
        timestamp = format_timestamp(self.clock())
        # Record ids take 128 random bits after the time, kept with the transaction's arguments.
        id_seed = secrets.token_hex(16)
        ctx = TxContext(
            simulator,
            tx_id=tx_id,
            caller=caller,
            timestamp=timestamp,
            directory=self.directory,
            id_seed=id_seed,
            transient=transient,
            reads=reads,
            sealer=None if keyring is None else Sealer(keyring, tx_id),
        )
        with simulator.reading():
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


def _newest_of(pages: Sequence[Page[AccessEntryView]], first: int) -> Page[AccessEntryView]:
    """The `first` newest entries of both channels' pages. Entry ids are in time order on
    both, and an entry's position is its key, `access/CHILD/ENTRY` on either channel
    (access_log.page): the next page of both goes on after it on each."""
    merged = heapq.merge(
        *(page["entries"] for page in pages), key=lambda entry: entry["item"]["id"], reverse=True
    )
    entries = list(itertools.islice(merged, first))
    left = sum(len(page["entries"]) for page in pages) - len(entries)
    return {"entries": entries, "hasMore": left > 0 or any(page["hasMore"] for page in pages)}


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
