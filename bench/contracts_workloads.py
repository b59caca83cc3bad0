"""Workloads of bench/contracts.py: the story through the Gateway, and bare ledger commits.

Story: each "family" is an asyncio task looping through the story of
tests/test_gateway_story.py with FakeCaller identities, one operation after
another, each awaited until its block is durable:

    registerChild, signAgreement, acceptAgreement, updateMedicalCard (x3),
    createAdmissionRequest, acceptAdmissionRequest, createReportRequest,
    createReport, approveReport

`createAdmissionRequest` and `createReport` go through
`Gateway.create_admission_request` / `Gateway.create_report`, so the queries
they make on the other channel (readChild; listChildren, readReportRequest,
readCard) are part of those operations' latency. Every story iteration has a
fresh doctor, so `createReport`'s listChildren sees one patient and an
operation costs the same at the end of a run as at its start (with one doctor
per family the doctor's patient list, and so createReport, would grow with the
run). The channel policy is `StoryPolicy`, a stand-in for
authz.access.ChannelAccess (no network.toml, no certificates): hospital and
parents are members of `medical`, every organisation of `report`.

Bare: the same number of asyncio submitters commit proposals straight through
`ChannelLedger.submit`, each reading one key of its own at the version it last
committed and writing a card-sized JSON value to it (the card the story's
updates produce, from `template_card`). They use the story's channels in the
story's proportion (6 of 11 on `medical`, 5 on `report`), so both workloads
feed two group committers the same way.

An operation counts when it returns inside the measurement window (after a
warm-up); its latency is call to return. Process CPU time (all threads) is
taken over the window too.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from closed_loop import CHANNEL, LoadSample, percentile, run_closed_loop

from chaincode.base import Caller
from chaincode.errors import ContractError, Forbidden
from chaincode.gateway import Gateway
from chaincode.medical import MedicalContract
from chaincode.testing import DEFAULT_ORGS, ContractHarness, FakeCaller, directory_for
from ledger_backends import ConflictError, Creator, Ledger, Proposal, Version
from ledger_backends.hashing import canonical_json, sha256_hex
from ledger_backends.records import format_timestamp, utc_now

P = ParamSpec("P")
T = TypeVar("T")

SCHOOL = "school-a"
SCHOOL_OFFICE = FakeCaller(uid="school-a-office", org=SCHOOL, role="school")
CARD_UPDATES = 3
STORY_OPS: tuple[tuple[str, str], ...] = (
    ("registerChild", "medical"),
    ("signAgreement", "medical"),
    ("acceptAgreement", "medical"),
    *((("updateMedicalCard", "medical"),) * CARD_UPDATES),
    ("createAdmissionRequest", "report"),
    ("acceptAdmissionRequest", "report"),
    ("createReportRequest", "report"),
    ("createReport", "report"),
    ("approveReport", "report"),
)
OP_NAMES: tuple[str, ...] = tuple(dict.fromkeys(name for name, _ in STORY_OPS))
CHANNEL_MIX: tuple[str, ...] = tuple(channel for _, channel in STORY_OPS)
CHANNELS: tuple[str, ...] = tuple(dict.fromkeys(CHANNEL_MIX))
MEMBERS = {
    "medical": frozenset({"hospital", "parents"}),
    "report": frozenset(DEFAULT_ORGS.values()),
}
BARE_CREATOR = Creator(uid="bench-doctor-0001", msp="HospitalMSP")

# -- who is who -------------------------------------------------------------------------------


class StoryPolicy:
    """Stand-in for ChannelAccess: hospital and parents on `medical`, everyone on `report`."""

    def require_member(self, caller: Caller, channel: str) -> str:
        if caller.org_kind not in MEMBERS.get(channel, frozenset()):
            raise Forbidden(f"Your organisation has no access to channel {channel!r}.")
        return channel


class StoryDirectory:
    """The benchmark's network: every "dr-*" is a hospital doctor, every "parent-*" a parent."""

    def org_kind(self, org: str) -> str | None:
        return DEFAULT_ORGS.get(org)

    def user(self, uid: str) -> tuple[str, str] | None:
        if uid.startswith("dr-"):
            return ("hospital", "doctor")
        if uid.startswith("parent-"):
            return ("parents", "parent")
        return None


@dataclass(frozen=True)
class Cast:
    """The people of one story iteration of one family."""

    parent: FakeCaller
    co_parent: FakeCaller
    doctor: FakeCaller

    @classmethod
    def of(cls, family: int, iteration: int) -> Cast:
        return cls(
            parent=FakeCaller(uid=f"parent-{family}-a", org="parents", role="parent"),
            co_parent=FakeCaller(uid=f"parent-{family}-b", org="parents", role="parent"),
            doctor=FakeCaller(uid=f"dr-{family}-{iteration}", org="hospital", role="doctor"),
        )


def card_patch(update: int) -> dict[str, Any]:
    """What the doctor writes on the card at update number `update` (a realistic card)."""
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
            {
                "date": "2024-09-02",
                "heightCm": 110 + update,
                "weightKg": 19.5,
                "findings": "Healthy; routine check before starting school.",
            }
        ],
        "healthGroup": 2,
        "physicalEducationGroup": "MAIN",
        "notes": f"Update {update}: inhaler on hand during sport; follow-up in six months.",
    }


def template_card() -> dict[str, Any]:
    """The card as the story leaves it, made by the medical contract in a serial harness."""
    parent = FakeCaller(uid="parent-0-a", org="parents", role="parent")
    doctor = FakeCaller(uid="dr-0-0", org="hospital", role="doctor")
    harness = ContractHarness(MedicalContract(), directory_for(parent, doctor))
    child = harness.call(parent, "registerChild", fullName="Ada Martin", birthDate="2019-04-02")
    agreement = harness.call(parent, "signAgreement", childId=child["id"], doctorUid=doctor.uid)
    harness.call(doctor, "acceptAgreement", id=agreement["id"])
    for version in range(1, CARD_UPDATES + 1):
        harness.call(
            doctor,
            "updateMedicalCard",
            childId=child["id"],
            expectedVersion=version,
            patch=card_patch(version),
        )
    card = harness.call(parent, "readCard", childId=child["id"])
    return {k: v for k, v in card.items() if k != "childName"}


# -- the measurement window -------------------------------------------------------------------


class WindowClosed(Exception):
    """Raised instead of starting an operation once the window has ended."""


@dataclass(frozen=True)
class Sample:
    """One measurement window of one workload."""

    workload: str
    concurrency: int
    seconds: float
    cpu_s: float
    latencies_ms: dict[str, list[float]]
    conflicts: int = 0
    failures: int = 0

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
        return percentile(self._sorted(op), 0.50)

    def p99_ms(self, op: str | None = None) -> float:
        return percentile(self._sorted(op), 0.99)

    def _sorted(self, op: str | None) -> list[float]:
        if op is not None:
            return sorted(self.latencies_ms.get(op, []))
        return sorted(v for values in self.latencies_ms.values() for v in values)


@dataclass
class Window:
    """The measurement window: timestamps, per-operation latencies, CPU time."""

    start: float
    end: float
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    cpu_s: float = math.nan
    failures: int = 0

    @classmethod
    def after(cls, warmup_s: float, duration_s: float) -> Window:
        start = time.perf_counter() + warmup_s
        return cls(start=start, end=start + duration_s)

    async def timed(
        self, op: str, call: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await `call(*args, **kwargs)`, recording its latency if it returns in the window."""
        started = time.perf_counter()
        if started >= self.end:
            raise WindowClosed
        result = await call(*args, **kwargs)
        finished = time.perf_counter()
        if self.start <= finished <= self.end:
            self.latencies_ms.setdefault(op, []).append((finished - started) * 1000)
        return result

    async def meter_cpu(self) -> None:
        """Process CPU time (every thread) between the window's start and end."""
        await asyncio.sleep(max(0.0, self.start - time.perf_counter()))
        before = time.process_time()
        await asyncio.sleep(max(0.0, self.end - time.perf_counter()))
        self.cpu_s = time.process_time() - before

    def sample(self, workload: str, concurrency: int, conflicts: int) -> Sample:
        return Sample(
            workload=workload,
            concurrency=concurrency,
            seconds=self.end - self.start,
            cpu_s=self.cpu_s,
            latencies_ms=self.latencies_ms,
            conflicts=conflicts,
            failures=self.failures,
        )


def _committer_conflicts(ledger: Ledger, channels: tuple[str, ...]) -> int:
    return sum(ledger.channel(name).committer.stats.conflicts for name in channels)


# -- the story --------------------------------------------------------------------------------


async def run_story(ledger: Ledger, families: int, *, warmup_s: float, duration_s: float) -> Sample:
    """`families` concurrent story loops through one Gateway on `ledger`."""
    gateway = Gateway(
        {name: ledger.channel(name) for name in CHANNELS}, StoryPolicy(), StoryDirectory()
    )
    window = Window.after(warmup_s, duration_s)
    async with asyncio.TaskGroup() as group:
        group.create_task(window.meter_cpu())
        for family in range(families):
            group.create_task(_family(gateway, family, window))
    return window.sample("story", families, _committer_conflicts(ledger, CHANNELS))


async def _family(gateway: Gateway, family: int, window: Window) -> None:
    for iteration in itertools.count():
        try:
            await _one_story(gateway, Cast.of(family, iteration), window)
        except WindowClosed:
            return
        except ContractError:  # e.g. CONFLICT after the gateway's retries: start a new story
            window.failures += 1


async def _one_story(gw: Gateway, cast: Cast, w: Window) -> None:
    parent, co_parent, doctor = cast.parent, cast.co_parent, cast.doctor
    child = await w.timed(
        "registerChild",
        gw.submit,
        parent,
        "medical",
        "registerChild",
        {"fullName": "Ada Martin", "birthDate": "2019-04-02", "otherGuardians": [co_parent.uid]},
    )
    child_id = child["id"]
    await w.timed(
        "acceptGuardianship",
        gw.submit,
        co_parent,
        "medical",
        "acceptGuardianship",
        {"childId": child_id},
    )
    agreement = await w.timed(
        "signAgreement",
        gw.submit,
        parent,
        "medical",
        "signAgreement",
        {"childId": child_id, "doctorUid": doctor.uid},
    )
    await w.timed(
        "acceptAgreement", gw.submit, doctor, "medical", "acceptAgreement", {"id": agreement["id"]}
    )
    for version in range(1, CARD_UPDATES + 1):
        update = {"childId": child_id, "expectedVersion": version, "patch": card_patch(version)}
        await w.timed(
            "updateMedicalCard", gw.submit, doctor, "medical", "updateMedicalCard", update
        )
    admission = await w.timed(
        "createAdmissionRequest", gw.create_admission_request, co_parent, child_id, SCHOOL
    )
    admission_id = {"id": admission["id"]}
    await w.timed(
        "acceptAdmissionRequest",
        gw.submit,
        SCHOOL_OFFICE,
        "report",
        "acceptAdmissionRequest",
        admission_id,
    )
    request = await w.timed(
        "createReportRequest",
        gw.submit,
        SCHOOL_OFFICE,
        "report",
        "createReportRequest",
        {"admissionRequestId": admission["id"]},
    )
    report = await w.timed(
        "createReport", gw.create_report, doctor, request["id"], "Fit for school; avoid peanuts."
    )
    await w.timed(
        "approveReport",
        gw.submit,
        parent,
        "report",
        "approveReport",
        {"id": report["id"], "schools": [SCHOOL]},
    )


# -- bare commits -----------------------------------------------------------------------------


def bare_proposal(
    channel: str, key: str, seen: Version | None, seq: int, value: dict[str, Any]
) -> Proposal:
    """A transaction that read `key` at version `seen` and writes a card-sized value to it."""
    return Proposal(
        tx_id=f"bare-{channel}-{key}-{seq}",
        channel=channel,
        contract="bench",
        function="updateRecord",
        args_digest=sha256_hex(canonical_json([key, seq])),
        creator=BARE_CREATOR,
        timestamp=format_timestamp(utc_now()),
        read_set={key: seen},
        write_set={key: {**value, "version": seq}},
    )


async def run_bare(
    ledger: Ledger,
    submitters: int,
    *,
    warmup_s: float,
    duration_s: float,
    value: dict[str, Any],
) -> Sample:
    """`submitters` closed loops of card-sized one-key commits, in the story's channel mix."""
    window = Window.after(warmup_s, duration_s)
    async with asyncio.TaskGroup() as group:
        group.create_task(window.meter_cpu())
        for index in range(submitters):
            group.create_task(_bare_loop(ledger, f"record-{index:04d}", window, value))
    return window.sample("bare", submitters, _committer_conflicts(ledger, CHANNELS))


async def _bare_loop(ledger: Ledger, key: str, window: Window, value: dict[str, Any]) -> None:
    seen: dict[str, Version | None] = {}
    for seq in itertools.count():
        channel = ledger.channel(CHANNEL_MIX[seq % len(CHANNEL_MIX)])
        proposal = bare_proposal(channel.name, key, seen.get(channel.name), seq, value)
        try:
            receipt = await window.timed("commit", channel.submit, proposal)
        except WindowClosed:
            return
        except ConflictError:  # cannot happen with one writer per key; counted by the committer
            record = await asyncio.to_thread(channel.store.read_state, channel.name, key)
            seen[channel.name] = None if record is None else record.version
            continue
        seen[channel.name] = (receipt.block_number, receipt.tx_index)


# -- the ledger benchmark's own workload (bench/closed_loop.py), for reference ----------------


async def run_ledger_reference(
    ledger: Ledger, submitters: int, *, warmup_s: float, duration_s: float
) -> Sample:
    """bench/ledger_commit.py's closed loop: small values, one channel."""
    window = Window.after(warmup_s, duration_s)
    meter = asyncio.create_task(window.meter_cpu())
    loaded: LoadSample = await run_closed_loop(
        ledger.channel(CHANNEL),
        submitters,
        warmup_s=warmup_s,
        duration_s=duration_s,
        tx_prefix="ref",
    )
    await meter
    return Sample(
        workload="ledger",
        concurrency=submitters,
        seconds=loaded.seconds,
        cpu_s=window.cpu_s,
        latencies_ms={"commit": loaded.latencies_ms},
        conflicts=loaded.conflicts,
    )
