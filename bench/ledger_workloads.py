"""The ledger benchmark's workloads: closed-loop commits, and the story through the Gateway.

`commits`: N asyncio submitters, each updating a key of its own. A submitter builds a
Proposal that reads its key at the version it last committed (None at first) and writes a
value, awaits `ChannelLedger.submit`, and keeps the version its receipt reports. Every key
has one writer, so no MVCC conflict is expected (the committers count any). A small value
on one channel is the ledger's own figure; a card-sized value over the story's channels,
in the story's proportion, is the "bare" figure the story is compared with.

`arrivals`: the open loop, one-key commits arriving at a fixed rate whether or not earlier
ones have returned, each timed from the instant it was due.

`story`: N concurrent families loop through the story via `chaincode.gateway.Gateway`
with FakeCaller identities, each operation awaited until its block is durable (STORY_OPS;
the queries of the cross-channel steps are part of their operation). The channel policy
lets hospital and parents into `medical` and everyone into `report`: ChannelAccess without
certificates.

Both count an operation when it returns inside the window (which opens after a warm-up),
with its latency from call to return, and the process's CPU time (all threads) over the
window.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from chaincode.gateway import Gateway
from chaincode.medical import MedicalContract
from chaincode.testing import DEFAULT_ORGS, ContractHarness, FakeCaller, directory_for
from domain.errors import ForbiddenError, RefusalError
from ledger_backends import Creator, Ledger, Proposal, ReadConflictError, Version
from ledger_backends.hashing import canonical_json, sha256_hex
from ledger_backends.records import format_timestamp, utc_now

from .harness import percentile

P = ParamSpec("P")
T = TypeVar("T")

CHANNEL = "bench"
ARRIVAL_TICK_S = 0.0005  # how often the open loop starts the arrivals that are due
CREATOR = Creator(uid="bench-doctor-0001", msp="HospitalMSP")
SMALL_VALUE = {"heightCm": 104, "note": "routine check"}
SCHOOL = "school-a"
SCHOOL_OFFICE = FakeCaller(uid="school-a-office", org=SCHOOL, role="school")
CARD_UPDATES = 3
STORY_OPS = (
    ("registerChild", "medical"),
    ("acceptGuardianship", "medical"),
    ("signAgreement", "medical"),
    ("acceptAgreement", "medical"),
    *((("updateMedicalCard", "medical"),) * CARD_UPDATES),
    ("createAdmissionRequest", "report"),
    ("acceptAdmissionRequest", "report"),
    ("createReportRequest", "report"),
    ("createReport", "report"),
    ("approveReport", "report"),
)
STORY_CHANNELS = tuple(channel for _, channel in STORY_OPS)
MEMBERS = {
    "medical": frozenset({"hospital", "parents"}),
    "report": frozenset(DEFAULT_ORGS.values()),
}


Seal = Callable[[str, str, str, dict[str, Any]], Any]
"""(channel, key, tx id, value) -> the value as stored: sealed with a child's data key."""


def update_proposal(
    channel: str,
    key: str,
    seen: Version | None,
    seq: int,
    value: dict[str, Any],
    prefix: str,
    seal: Seal | None = None,
) -> Proposal:
    """A transaction that read `key` at version `seen` and writes `value` (and `seq`) to it,
    sealed by `seal` when given, as the transaction context seals a child's values."""
    tx_id = f"{prefix}-{channel}-{key}-{seq}"
    written = {**value, "seq": seq}
    return Proposal(
        tx_id=tx_id,
        channel=channel,
        contract="bench",
        function="updateRecord",
        args_digest=sha256_hex(canonical_json([key, seq])),
        creator=CREATOR,
        timestamp=format_timestamp(utc_now()),
        read_set={key: seen},
        write_set={key: written if seal is None else seal(channel, key, tx_id, written)},
    )


# -- the window ---------------------------------------------------------------------------------


class WindowClosedError(Exception):
    """Raised instead of starting an operation once the window has ended."""


@dataclass(frozen=True)
class Sample:
    """One window of one workload; `transactions` also counts warm-up and tail."""

    concurrency: int
    seconds: float
    cpu_s: float
    latencies_ms: dict[str, list[float]]
    conflicts: int = 0
    failures: int = 0
    transactions: int = 0

    @property
    def committed(self) -> int:
        return sum(len(values) for values in self.latencies_ms.values())

    @property
    def ops_per_s(self) -> float:
        return self.committed / self.seconds

    @property
    def cpu_ms_per_op(self) -> float:
        return self.cpu_s * 1000 / self.committed if self.committed else math.nan

    def p50_ms(self, op: str | None = None) -> float:
        return percentile(self._latencies(op), 0.50)

    def p99_ms(self, op: str | None = None) -> float:
        return percentile(self._latencies(op), 0.99)

    def _latencies(self, op: str | None) -> list[float]:
        if op is not None:
            return self.latencies_ms.get(op, [])
        return [value for values in self.latencies_ms.values() for value in values]


@dataclass
class Window:
    start: float
    end: float
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    cpu_s: float = math.nan
    failures: int = 0
    done: int = 0

    @classmethod
    def after(cls, warmup_s: float, duration_s: float) -> Window:
        start = time.perf_counter() + warmup_s
        return cls(start=start, end=start + duration_s)

    async def timed(
        self, op: str, call: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await the call, recording its latency if it returns inside the window."""
        started = time.perf_counter()
        if started >= self.end:
            raise WindowClosedError
        result = await call(*args, **kwargs)
        finished = time.perf_counter()
        self.done += 1
        if self.start <= finished <= self.end:
            self.latencies_ms.setdefault(op, []).append((finished - started) * 1000)
        return result

    async def meter_cpu(self) -> None:
        await asyncio.sleep(max(0.0, self.start - time.perf_counter()))
        before = time.process_time()
        await asyncio.sleep(max(0.0, self.end - time.perf_counter()))
        self.cpu_s = time.process_time() - before

    def sample(self, concurrency: int, ledger: Ledger, channels: Sequence[str]) -> Sample:
        conflicts = sum(ledger.channel(name).committer.stats.conflicts for name in set(channels))
        return Sample(
            concurrency=concurrency,
            seconds=self.end - self.start,
            cpu_s=self.cpu_s,
            latencies_ms=self.latencies_ms,
            conflicts=conflicts,
            failures=self.failures,
            transactions=self.done,
        )


# -- commits ------------------------------------------------------------------------------------


async def commits(
    ledger: Ledger,
    submitters: int,
    *,
    warmup_s: float,
    duration_s: float,
    channels: Sequence[str] = (CHANNEL,),
    value: dict[str, Any] = SMALL_VALUE,
    prefix: str = "bench",
    seal: Seal | None = None,
) -> Sample:
    """`submitters` closed loops of one-key commits, cycling through `channels`; each value
    sealed by `seal` when given."""
    window = Window.after(warmup_s, duration_s)
    async with asyncio.TaskGroup() as group:
        group.create_task(window.meter_cpu())
        for index in range(submitters):
            key = f"{prefix}/record-{index:04d}"
            group.create_task(_commit_loop(ledger, key, channels, value, prefix, window, seal))
    return window.sample(submitters, ledger, channels)


async def _commit_loop(
    ledger: Ledger,
    key: str,
    channels: Sequence[str],
    value: dict[str, Any],
    prefix: str,
    window: Window,
    seal: Seal | None,
) -> None:
    seen: dict[str, Version | None] = {}
    for seq in itertools.count():
        channel = ledger.channel(channels[seq % len(channels)])
        proposal = update_proposal(
            channel.name, key, seen.get(channel.name), seq, value, prefix, seal
        )
        try:
            receipt = await window.timed("commit", channel.submit, proposal)
        except WindowClosedError:
            return
        except ReadConflictError:
            record = await asyncio.to_thread(channel.store.read_state, channel.name, key)
            seen[channel.name] = None if record is None else record.version
            continue
        seen[channel.name] = (receipt.block_number, receipt.tx_index)


# -- open loop ----------------------------------------------------------------------------------


async def arrivals(
    ledger: Ledger,
    rate: float,
    *,
    warmup_s: float,
    duration_s: float,
    value: dict[str, Any] = SMALL_VALUE,
    prefix: str = "open",
) -> Sample:
    """Submissions arriving at `rate` per second, however long earlier ones take (an open loop).

    Arrival i is due at start + i / rate; the generator wakes every ARRIVAL_TICK_S and starts
    every arrival that is due. Each arrival updates a key no pending transaction holds (taken
    from a pool of keys, a new key when none is free), reading it at the version it last
    committed. Its latency runs from the instant it was due, not from when the generator got
    to it, so a generator or event loop that falls behind shows in the figures instead of
    hiding the wait (coordinated omission). Counted like `commits`: returned inside the window.
    """
    window = Window.after(warmup_s, duration_s)
    channel = ledger.channel(CHANNEL)
    free: deque[tuple[str, Version | None]] = deque()
    started = time.perf_counter()

    async def arrival(seq: int, due: float) -> None:
        key, seen = free.popleft() if free else (f"{prefix}/record-{seq:07d}", None)
        proposal = update_proposal(channel.name, key, seen, seq, value, prefix)
        try:
            receipt = await channel.submit(proposal)
        except ReadConflictError:
            window.failures += 1
            return
        finished = time.perf_counter()
        window.done += 1
        if window.start <= finished <= window.end:
            window.latencies_ms.setdefault("commit", []).append((finished - due) * 1000)
        free.append((key, (receipt.block_number, receipt.tx_index)))

    async with asyncio.TaskGroup() as group:
        group.create_task(window.meter_cpu())
        seq = 0
        while (now := time.perf_counter()) < window.end:
            while started + seq / rate <= now:
                group.create_task(arrival(seq, started + seq / rate))
                seq += 1
            await asyncio.sleep(ARRIVAL_TICK_S)
    return window.sample(0, ledger, (CHANNEL,))


# -- the story ----------------------------------------------------------------------------------


class StoryPolicy:
    def require_member(self, caller: FakeCaller, channel: str) -> str:
        if caller.org_kind not in MEMBERS.get(channel, frozenset()):
            raise ForbiddenError(f"Your organisation has no access to channel {channel!r}.")
        return channel


class StoryDirectory:
    """Every "dr-*" is a hospital doctor, every "parent-*" a parent."""

    def org_kind(self, org: str) -> str | None:
        return DEFAULT_ORGS.get(org)

    def user(self, uid: str) -> tuple[str, str] | None:
        if uid.startswith("dr-"):
            return ("hospital", "doctor")
        return ("parents", "parent") if uid.startswith("parent-") else None


def card_patch(update: int) -> dict[str, Any]:
    """What the doctor writes at update number `update`: a realistic card."""
    return {
        "bloodType": "A+",
        "allergies": ["peanuts", "birch pollen"],
        "chronicConditions": ["mild asthma"],
        "vaccinations": [
            {"vaccine": "MMR", "date": "2020-05-12", "dose": 1},
            {"vaccine": "DTaP", "date": "2020-09-03", "dose": 3},
            {"vaccine": "Polio (IPV)", "date": "2021-02-17", "dose": 2},
        ],
        "examinations": [
            {"date": "2024-09-02", "heightCm": 110 + update, "weightKg": 19.5, "findings": "Well."}
        ],
        "healthGroup": 2,
        "physicalEducationGroup": "MAIN",
        "notes": f"Update {update}: inhaler on hand during sport; follow-up in six months.",
    }


def story_card() -> dict[str, Any]:
    """The card as the story leaves it, made by the medical contract in a serial harness."""
    parent = FakeCaller(uid="parent-0-a", org="parents", role="parent")
    doctor = FakeCaller(uid="dr-0-0", org="hospital", role="doctor")
    harness = ContractHarness(MedicalContract(), directory_for(parent, doctor))
    child = harness.call(parent, "registerChild", fullName="Ada Martin", birthDate="2019-04-02")
    agreement = harness.call(parent, "signAgreement", childId=child["id"], doctorUid=doctor.uid)
    harness.call(doctor, "acceptAgreement", id=agreement["id"])
    for version in range(1, CARD_UPDATES + 1):
        patch = card_patch(version)
        harness.call(
            doctor, "updateMedicalCard", childId=child["id"], expectedVersion=version, patch=patch
        )
    card = harness.call(parent, "readCard", childId=child["id"])
    return {key: value for key, value in card.items() if key != "childName"}


async def story(ledger: Ledger, families: int, *, warmup_s: float, duration_s: float) -> Sample:
    """`families` concurrent story loops through one Gateway on `ledger`."""
    channels = {name: ledger.channel(name) for name in set(STORY_CHANNELS)}
    gateway = Gateway(channels, StoryPolicy(), StoryDirectory())
    window = Window.after(warmup_s, duration_s)
    async with asyncio.TaskGroup() as group:
        group.create_task(window.meter_cpu())
        for family in range(families):
            group.create_task(_family(gateway, family, window))
    return window.sample(families, ledger, STORY_CHANNELS)


async def _family(gateway: Gateway, family: int, window: Window) -> None:
    for iteration in itertools.count():
        try:
            await _one_story(gateway, family, iteration, window)
        except WindowClosedError:
            return
        except RefusalError:  # e.g. CONFLICT after the gateway's retries: start a new story
            window.failures += 1


async def _one_story(gw: Gateway, family: int, iteration: int, w: Window) -> None:
    parent = FakeCaller(uid=f"parent-{family}-a", org="parents", role="parent")
    co_parent = FakeCaller(uid=f"parent-{family}-b", org="parents", role="parent")
    doctor = FakeCaller(uid=f"dr-{family}-{iteration}", org="hospital", role="doctor")

    async def submit(op: str, caller: FakeCaller, channel: str, **args: Any) -> Any:
        return await w.timed(op, gw.submit, caller, channel, op, args)

    born = {"fullName": "Ada Martin", "birthDate": "2019-04-02", "otherGuardians": [co_parent.uid]}
    child = (await submit("registerChild", parent, "medical", **born))["id"]
    await submit("acceptGuardianship", co_parent, "medical", childId=child)
    agreement = await submit(
        "signAgreement", parent, "medical", childId=child, doctorUid=doctor.uid
    )
    await submit("acceptAgreement", doctor, "medical", id=agreement["id"])
    for version in range(1, CARD_UPDATES + 1):
        patch = card_patch(version)
        await submit(
            "updateMedicalCard",
            doctor,
            "medical",
            childId=child,
            expectedVersion=version,
            patch=patch,
        )
    admission = await w.timed(
        "createAdmissionRequest", gw.create_admission_request, co_parent, child, SCHOOL
    )
    await submit("acceptAdmissionRequest", SCHOOL_OFFICE, "report", id=admission["id"])
    request = await submit(
        "createReportRequest", SCHOOL_OFFICE, "report", admissionRequestId=admission["id"]
    )
    report = await w.timed("createReport", gw.create_report, doctor, request["id"], "Fit.")
    await submit("approveReport", parent, "report", id=report["id"], schools=[SCHOOL])
