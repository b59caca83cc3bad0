"""The closed-loop workload: N asyncio submitters, each updating a key of its own.

Each submitter loops: build a Proposal that reads its key at the version it
last saw (None the first time) and writes a small JSON value to it, await
`ChannelLedger.submit`, and remember the version the receipt reports. As every
key has one writer, no transaction should end in an MVCC conflict; conflicts
are counted all the same. A transaction counts when its commit returns inside
the measurement window, which opens after a warm-up; its latency is the time
from calling `submit` to its return.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ledger_backends import ChannelLedger, ConflictError, Creator, Proposal, Version
from ledger_backends.hashing import canonical_json, sha256_hex
from ledger_backends.records import format_timestamp, utc_now

CHANNEL = "bench"
CREATOR = Creator(uid="bench-doctor-0001", msp="HospitalMSP")


def update_proposal(key: str, seen: Version | None, seq: int, tx_prefix: str) -> Proposal:
    """A transaction that read `key` at version `seen` and writes a small record to it."""
    return Proposal(
        tx_id=f"{tx_prefix}-{key}-{seq}",
        channel=CHANNEL,
        contract="bench",
        function="updateRecord",
        args_digest=sha256_hex(canonical_json([key, seq])),
        creator=CREATOR,
        timestamp=format_timestamp(utc_now()),
        read_set={key: seen},
        write_set={key: {"seq": seq, "height_cm": 100 + seq % 50, "note": "routine check"}},
    )


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending sequence; NaN when it is empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class LoadSample:
    """One measurement window of a closed-loop run."""

    submitters: int
    seconds: float
    committed: int = 0
    conflicts: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    transactions: int = 0
    """Every transaction the run committed, warm-up and tail included."""

    @property
    def tx_per_s(self) -> float:
        return self.committed / self.seconds

    @property
    def p50_ms(self) -> float:
        return percentile(sorted(self.latencies_ms), 0.50)

    @property
    def p99_ms(self) -> float:
        return percentile(sorted(self.latencies_ms), 0.99)


@dataclass(frozen=True)
class LoadPoint:
    """The median of several samples at one submitter count."""

    submitters: int
    tx_per_s: float
    p50_ms: float
    p99_ms: float
    conflicts: int
    runs: int

    @classmethod
    def median_of(cls, samples: Sequence[LoadSample]) -> LoadPoint:
        return cls(
            submitters=samples[0].submitters,
            tx_per_s=statistics.median(s.tx_per_s for s in samples),
            p50_ms=statistics.median(s.p50_ms for s in samples),
            p99_ms=statistics.median(s.p99_ms for s in samples),
            conflicts=sum(s.conflicts for s in samples),
            runs=len(samples),
        )


@dataclass
class _Window:
    start: float
    end: float
    sample: LoadSample

    def record(self, started: float, finished: float) -> None:
        self.sample.transactions += 1
        if self.start <= finished <= self.end:
            self.sample.committed += 1
            self.sample.latencies_ms.append((finished - started) * 1000)


async def run_closed_loop(
    channel: ChannelLedger,
    submitters: int,
    *,
    warmup_s: float,
    duration_s: float,
    tx_prefix: str,
) -> LoadSample:
    """Run `submitters` closed loops on `channel` for warm-up plus window; return the window."""
    sample = LoadSample(submitters=submitters, seconds=duration_s)
    opened = time.perf_counter() + warmup_s
    window = _Window(start=opened, end=opened + duration_s, sample=sample)
    async with asyncio.TaskGroup() as group:
        for index in range(submitters):
            key = f"{tx_prefix}/record-{index:04d}"
            group.create_task(_submit_loop(channel, key, tx_prefix, window))
    return sample


async def _submit_loop(channel: ChannelLedger, key: str, tx_prefix: str, window: _Window) -> None:
    seen: Version | None = None
    seq = 0
    while time.perf_counter() < window.end:
        proposal = update_proposal(key, seen, seq, tx_prefix)
        seq += 1
        started = time.perf_counter()
        try:
            receipt = await channel.submit(proposal)
        except ConflictError:
            window.sample.conflicts += 1
            seen = await asyncio.to_thread(_committed_version, channel, key)
            continue
        window.record(started, time.perf_counter())
        seen = (receipt.block_number, receipt.tx_index)


def _committed_version(channel: ChannelLedger, key: str) -> Version | None:
    record = channel.store.read_state(channel.name, key)
    return None if record is None else record.version
