"""Benchmark of the contracts and the gateway against bare ledger commits.

What is measured, per backend (memory://, and sqlite:/// on a fresh temporary
file removed afterwards), with the ledger's default group-commit settings
(`open_ledger(url)`: batch_timeout_ms=2, max_batch=500), on a fresh store per run:

1. story: N concurrent asyncio "families" (default 1, 16, 64) loop through
   the story via `chaincode.gateway.Gateway` (registerChild, signAgreement,
   acceptAgreement, updateMedicalCard x3, createAdmissionRequest,
   acceptAdmissionRequest, createReportRequest, createReport, approveReport).
   ops/s counts committed operations; the queries of the cross-channel steps
   (createAdmissionRequest, createReport) are part of their operation. p50/p99
   latency per operation type. The channel policy is a stand-in for
   authz.access.ChannelAccess that lets hospital and parents into `medical`
   and everyone into `report` (no certificates), with FakeCaller identities.
2. bare: as many concurrent submitters committing straight through
   `ChannelLedger.submit`, each proposal reading one key and writing a JSON
   value the size of the story's card, in the story's channel mix.
3. ledger: bench/ledger_commit.py's own closed loop (small values, one
   channel), for reference only.

overhead = 1 - story ops/s / bare commits/s at the same concurrency, computed
per repeat from runs made back to back, then the median of --repeats. The
target is overhead < 30% at every concurrency. CPU ms/op (process CPU time over
the window, every thread, per operation) is shown too: on a shared machine it
is less disturbed by other load than ops/s. Workloads are interleaved within a
repeat and their order alternates between repeats. See contracts_workloads.py
for the workloads. Progress goes to stderr, the Markdown report to stdout.

Run from the repository root:
    .venv/bin/python bench/contracts.py [--backends memory,sqlite] [--duration 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import platform
import shlex
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

# Measure the packages next to this script, not whichever copy is installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from arguments import names, positive_ints
from contracts_workloads import (
    OP_NAMES,
    Sample,
    run_bare,
    run_ledger_reference,
    run_story,
    template_card,
)
from scratch_stores import Servers, exit_on_sigterm, scratch_store

from ledger_backends import Ledger, open_ledger
from ledger_backends.hashing import canonical_json

BACKENDS = ("memory", "sqlite")
WORKLOADS = ("story", "bare", "ledger")
DEFAULT_FAMILIES = (1, 16, 64)
OVERHEAD_TARGET = 0.30
MEASURED_PACKAGES = ("chaincode", "ledger_backends", "authz")
NO_SERVERS = Servers(postgres_url="", redis_url="")

Runner = Callable[..., Coroutine[Any, Any, Sample]]


@dataclass(frozen=True)
class Plan:
    """What to run, from the command line."""

    backends: list[str]
    families: list[int]
    workloads: list[str]
    warmup_s: float
    duration_s: float
    repeats: int


@dataclass
class Cell:
    """Every sample of one backend at one concurrency, per workload, in repeat order."""

    backend: str
    concurrency: int
    samples: dict[str, list[Sample]] = field(default_factory=dict)

    def median(self, workload: str, measure: Callable[[Sample], float]) -> float:
        found = self.samples.get(workload, [])
        return statistics.median(measure(s) for s in found) if found else float("nan")

    def overheads(self) -> list[float]:
        """1 - story/bare ops/s per repeat (the two ran back to back)."""
        pairs = zip(self.samples.get("story", []), self.samples.get("bare", []), strict=False)
        return [1 - story.ops_per_s / bare.ops_per_s for story, bare in pairs if bare.ops_per_s]

    def overhead(self) -> float:
        values = self.overheads()
        return statistics.median(values) if values else float("nan")

    def cpu_overhead(self) -> float:
        """1 - bare CPU/op ÷ story CPU/op: the share of a story op's CPU that is not the commit."""
        story = self.median("story", lambda s: s.cpu_ms_per_op)
        return 1 - self.median("bare", lambda s: s.cpu_ms_per_op) / story

    def met(self) -> bool:
        return self.overhead() < OVERHEAD_TARGET


# -- command line -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> Plan:
    parser = argparse.ArgumentParser(
        description="Story operations/s through the Gateway beside bare ledger commits on the "
        "same backend; overhead = 1 - story/bare (target < 30%%).",
    )
    parser.add_argument(
        "--backends",
        type=names(BACKENDS),
        default=list(BACKENDS),
        help=f"comma-separated subset of {','.join(BACKENDS)} (default: all)",
    )
    parser.add_argument(
        "--families",
        type=positive_ints("concurrency levels", "1,16,64"),
        default=list(DEFAULT_FAMILIES),
        help="comma-separated concurrency levels: story families = bare submitters "
        "(default 1,16,64)",
    )
    parser.add_argument(
        "--workloads",
        type=names(WORKLOADS),
        default=list(WORKLOADS),
        help=f"comma-separated subset of {','.join(WORKLOADS)} (default: all; "
        "overhead needs story and bare)",
    )
    parser.add_argument(
        "--duration", type=float, default=3.0, help="seconds measured per run (default %(default)s)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=1.0,
        help="seconds of load before each measurement window (default %(default)s)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per cell; medians reported (default 3)"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.duration <= 0 or args.warmup < 0:
        parser.error("--repeats must be ≥ 1, --duration > 0 and --warmup ≥ 0.")
    return Plan(
        backends=args.backends,
        families=args.families,
        workloads=args.workloads,
        warmup_s=args.warmup,
        duration_s=args.duration,
        repeats=args.repeats,
    )


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- running ------------------------------------------------------------------------------------


def runners(card: dict[str, Any]) -> dict[str, Runner]:
    return {
        "story": run_story,
        "bare": partial(run_bare, value=card),
        "ledger": run_ledger_reference,
    }


async def _on_fresh_ledger(url: str, runner: Runner, concurrency: int, plan: Plan) -> Sample:
    ledger: Ledger = open_ledger(url)
    try:
        return await runner(ledger, concurrency, warmup_s=plan.warmup_s, duration_s=plan.duration_s)
    finally:
        await ledger.aclose()


def run_once(backend: str, runner: Runner, concurrency: int, plan: Plan) -> Sample:
    """One run on a fresh, empty store, removed afterwards."""
    with scratch_store(backend, NO_SERVERS) as scratch:
        gc.collect()
        return asyncio.run(_on_fresh_ledger(scratch.url, runner, concurrency, plan))


def describe(sample: Sample) -> str:
    text = (
        f"{sample.ops_per_s:,.0f} ops/s, {sample.cpu_ms_per_op:.3f} CPU ms/op, "
        f"p50 {sample.p50_ms():.2f} ms, p99 {sample.p99_ms():.2f} ms"
    )
    if sample.conflicts or sample.failures:
        text += f", {sample.conflicts} MVCC conflicts, {sample.failures} failed stories"
    return text


def measure_backend(backend: str, plan: Plan, table: dict[str, Runner]) -> list[Cell]:
    """Every concurrency and workload per repeat, interleaved against drift."""
    cells = [Cell(backend, n) for n in plan.families]
    for repeat in range(plan.repeats):
        order = plan.workloads if repeat % 2 == 0 else plan.workloads[::-1]
        for cell in cells:
            for workload in order:
                sample = run_once(backend, table[workload], cell.concurrency, plan)
                cell.samples.setdefault(workload, []).append(sample)
                log(
                    f"[{backend}] run {repeat + 1}/{plan.repeats}, {workload}, "
                    f"{cell.concurrency} concurrent: {describe(sample)}"
                )
    return cells


# -- the report ---------------------------------------------------------------------------------


def _fmt(value: float, spec: str) -> str:
    return "n/a" if math.isnan(value) else format(value, spec)  # NaN: workload skipped


def _latency(cell: Cell, workload: str, op: str | None = None) -> str:
    p50 = cell.median(workload, lambda s: s.p50_ms(op))
    p99 = cell.median(workload, lambda s: s.p99_ms(op))
    return f"{_fmt(p50, '.1f')} / {_fmt(p99, '.1f')}"


def _verdict(cell: Cell) -> str:
    overheads = cell.overheads()
    if not overheads:
        return "n/a"
    return "yes" if cell.met() else "**no**"


def summary_table(cells: list[Cell]) -> str:
    lines = [
        "| backend | concurrency | story ops/s | bare commits/s | overhead (range) "
        "| < 30%? | story CPU ms/op | bare CPU ms/op | CPU overhead | ledger_commit.py tx/s "
        "| story p50 / p99 ms | bare p50 / p99 ms | conflicts / failed stories |",
        "| --- | ---: | ---: | ---: | ---: | --- " + "| ---: " * 7 + "|",
    ]
    for cell in cells:
        overheads = cell.overheads()
        spread = f" ({min(overheads):.0%} to {max(overheads):.0%})" if overheads else ""
        stories = cell.samples.get("story", [])
        lines.append(
            f"| {cell.backend} | {cell.concurrency} "
            f"| {_fmt(cell.median('story', lambda s: s.ops_per_s), ',.0f')} "
            f"| {_fmt(cell.median('bare', lambda s: s.ops_per_s), ',.0f')} "
            f"| {_fmt(cell.overhead(), '.0%')}{spread} | {_verdict(cell)} "
            f"| {_fmt(cell.median('story', lambda s: s.cpu_ms_per_op), '.3f')} "
            f"| {_fmt(cell.median('bare', lambda s: s.cpu_ms_per_op), '.3f')} "
            f"| {_fmt(cell.cpu_overhead(), '.0%')} "
            f"| {_fmt(cell.median('ledger', lambda s: s.ops_per_s), ',.0f')} "
            f"| {_latency(cell, 'story')} | {_latency(cell, 'bare')} "
            f"| {sum(s.conflicts for s in stories)} / {sum(s.failures for s in stories)} |"
        )
    return "\n".join(lines)


def latency_table(backend: str, cells: list[Cell]) -> str:
    mine = [cell for cell in cells if cell.backend == backend]
    header = " | ".join(f"{cell.concurrency} concurrent" for cell in mine)
    lines = [f"| {backend}: operation | {header} |", "| --- |" + " ---: |" * len(mine)]
    rows = [*OP_NAMES, None]
    for op in rows:
        name = op or "all story operations"
        lines.append(f"| {name} | " + " | ".join(_latency(c, "story", op) for c in mine) + " |")
    lines.append("| bare commit | " + " | ".join(_latency(c, "bare") for c in mine) + " |")
    return "\n".join(lines)


def missed(cells: list[Cell]) -> list[str]:
    return [
        f"{cell.backend}, {cell.concurrency} concurrent: overhead {cell.overhead():.0%} "
        f"(story {cell.median('story', lambda s: s.ops_per_s):,.0f} ops/s vs bare "
        f"{cell.median('bare', lambda s: s.ops_per_s):,.0f} commits/s)"
        for cell in cells
        if cell.overheads() and not cell.met()
    ]


def _load() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def code_under_test() -> str:
    """The commit measured, and which measured packages differ from it (others edit them)."""
    repo = Path(__file__).resolve().parent.parent
    git = ["git", "-C", str(repo)]
    try:
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", *MEASURED_PACKAGES],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return "unknown (git unavailable)"
    changed = [line[3:] for line in dirty if line.strip()]
    return f"{head or 'unknown'}" + (
        f" + uncommitted changes to {', '.join(changed)}" if changed else ""
    )


def environment(plan: Plan, card: dict[str, Any]) -> list[str]:
    """What the run measured and where; taken before the first run."""
    return [
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}; code: {code_under_test()}",
        f"- machine: {os.cpu_count()} CPUs ({platform.machine()}, {platform.system()}), "
        f"shared; load average at start {_load()}",
        f"- software: Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
        f"- runs: {plan.repeats} per cell, {plan.duration_s:g} s measured after "
        f"{plan.warmup_s:g} s warm-up, fresh store each; medians; default group commit "
        "(batch_timeout_ms=2, max_batch=500)",
        f"- bare value: the story's final card, {len(canonical_json(card))} bytes of canonical "
        "JSON; story: 11 operations per iteration (updateMedicalCard x3)",
    ]


def render(plan: Plan, header: list[str], cells: list[Cell]) -> str:
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    parts = ["# Contract + gateway benchmark", "", f"`{command}`", "", *header]
    parts += [f"- load average at end {_load()}"]
    parts += ["", "## Story through the gateway vs bare commits", "", summary_table(cells)]
    if "story" in plan.workloads:
        parts += ["", "## Story latency per operation (p50 / p99 ms, medians of runs)", ""]
        for backend in plan.backends:
            parts += [latency_table(backend, cells), ""]
    lines = missed(cells)
    parts += ["## Missed targets (overhead < 30%)", ""]
    parts += [f"- {line}" for line in lines] if lines else ["- none"]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    plan = parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    card = template_card()
    header = environment(plan, card)
    table = runners(card)
    cells = [cell for backend in plan.backends for cell in measure_backend(backend, plan, table)]
    print(render(plan, header, cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
