"""Benchmark of the ledger's commit path on every backend: throughput, latency, ceiling, growth.

What is measured, per backend (memory, sqlite, postgresql, redis):

1. Ledger throughput and latency. A fresh, empty store is opened with
   `open_ledger(url)` (group commit defaults: batch_timeout_ms=2,
   max_batch=500) and 1, 16 and 256 asyncio submitters run a closed loop on
   one channel: each builds a Proposal that reads a key of its own at the
   version it last saw and writes a small JSON value to it, then awaits
   `ChannelLedger.submit` (closed_loop.py). tx/s counts commits returned in
   the measurement window (after a warm-up); p50/p99 are submit-to-commit
   latencies in that window.
2. Raw ceiling. The same rows the ledger writes per transaction (block
   header, transaction record, state upsert, history entry), written straight
   into the same kind of store in one atomic write per 500 transactions with
   the ledger's durability settings (raw_ceiling.py). ratio = ledger tx/s at
   its best submitter count / ceiling tx/s.
3. Growth. One ledger is filled through ChainWriter.commit in blocks of 500
   transactions, each creating a new key (growth.py), up to 10%, 30% and 100%
   of --growth-tx (--growth-checkpoints); at each checkpoint the 256-submitter
   measurement runs on it, alternating with the same measurement on empty
   ledgers. Each of these runs is a fresh child process, so that the two start
   alike (except memory's grown runs, which must run where that ledger lives).
   Several sizes, because a slowdown can show at one size and not at another.
   A fill that would exceed --growth-budget seconds stops early, and the table
   says how far it got.

Every figure is the median of --repeats runs. Each run gets its own temporary
SQLite file, PostgreSQL schema or Redis key prefix, removed afterwards, also on
error, Ctrl-C or SIGTERM (scratch_stores.py). Progress goes to stderr, the
Markdown report to stdout.

Run from the repository root:
    .venv/bin/python bench/ledger_commit.py [--backends memory,sqlite] [--growth-tx 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import platform
import shlex
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

# Measure the ledger_backends next to this script, not whichever copy is installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
import redis
from arguments import names, positive_ints
from closed_loop import CHANNEL, LoadPoint, LoadSample, run_closed_loop
from growth import FILL_BLOCK_SIZE, FillResult, GrownLedgerProcess, serve_grown_ledger
from raw_ceiling import RAW_BLOCK_SIZE, RawRows, measure_ceiling, open_raw_writer
from report import (
    BackendResult,
    GrowthResult,
    growth_table,
    ledger_table,
    missed_targets,
)
from scratch_stores import BACKENDS, Servers, exit_on_sigterm, scratch_store

from ledger_backends import Ledger, LedgerStore, open_ledger

DEFAULT_SUBMITTERS = (1, 16, 256)
# A slowdown can show at one size and not at another (a query plan that flips), so
# the growth check measures at several sizes up to --growth-tx.
DEFAULT_GROWTH_CHECKPOINTS = (0.1, 0.3, 1.0)
GROWTH_SUBMITTERS = 256


@dataclass(frozen=True)
class Plan:
    """What to run, from the command line."""

    backends: list[str]
    submitters: list[int]
    warmup_s: float
    duration_s: float
    repeats: int
    growth_tx: int
    growth_checkpoints: list[float]
    growth_backends: list[str]
    growth_budget_s: float
    servers: Servers
    json_path: Path | None
    run_on: str | None
    run_tag: str
    grown_worker: str | None


def parse_args(argv: list[str] | None) -> Plan:
    parser = argparse.ArgumentParser(
        description="Measure committed tx/s and submit-to-commit latency of the ledger on "
        "each backend, against the store's raw ceiling, and after N transactions.",
    )
    parser.add_argument(
        "--backends",
        type=names(BACKENDS),
        default=list(BACKENDS),
        help=f"comma-separated subset of {','.join(BACKENDS)} (default: all)",
    )
    parser.add_argument(
        "--submitters",
        type=positive_ints("submitter counts", "1,16,256"),
        default=list(DEFAULT_SUBMITTERS),
        help="comma-separated concurrent submitter counts (default 1,16,256)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=5.0,
        help="seconds measured per run and per raw ceiling (default %(default)s)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=1.0,
        help="seconds of load before each measurement window (default %(default)s)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs per figure; the median is reported (default %(default)s)",
    )
    parser.add_argument(
        "--growth-tx",
        type=int,
        default=1_000_000,
        help="transactions committed before the growth measurement; 0 skips it "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--growth-checkpoints",
        type=_share_list,
        default=list(DEFAULT_GROWTH_CHECKPOINTS),
        help="also measure when the fill reaches these shares of --growth-tx (default 0.1,0.3,1)",
    )
    parser.add_argument(
        "--growth-backends",
        type=names(BACKENDS),
        default=None,
        help="backends for the growth check (default: --backends)",
    )
    parser.add_argument(
        "--growth-budget",
        type=float,
        default=600.0,
        help="seconds allowed for filling one backend (default %(default)s)",
    )
    parser.add_argument(
        "--postgres-url",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="PostgreSQL server; each run uses a new schema (default %(default)s)",
    )
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/0",
        help="Redis server; each run uses a new key prefix (default %(default)s)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        dest="json_path",
        help="also write the results as JSON to this file",
    )
    # Internal: one growth run on the ledger at this URL, printed as JSON (see _child_sample).
    parser.add_argument("--run-on", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--run-tag", default="bench", help=argparse.SUPPRESS)
    # Internal: serve the grown ledger at this URL on stdin/stdout (see growth.py).
    parser.add_argument("--grown-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.duration <= 0 or args.warmup < 0 or args.growth_tx < 0:
        parser.error("--repeats must be ≥ 1, --duration > 0, --warmup and --growth-tx ≥ 0.")
    return Plan(
        backends=args.backends,
        submitters=args.submitters,
        warmup_s=args.warmup,
        duration_s=args.duration,
        repeats=args.repeats,
        growth_tx=args.growth_tx,
        growth_checkpoints=args.growth_checkpoints,
        growth_backends=args.backends if args.growth_backends is None else args.growth_backends,
        growth_budget_s=args.growth_budget,
        servers=Servers(postgres_url=args.postgres_url, redis_url=args.redis_url),
        json_path=args.json_path,
        run_on=args.run_on,
        run_tag=args.run_tag,
        grown_worker=args.grown_worker,
    )


def _share_list(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected shares like 0.1,0.3,1, not {text!r}") from exc
    if any(not 0 < value <= 1 for value in values):
        raise argparse.ArgumentTypeError("checkpoint shares must be in (0, 1]")
    return values


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def describe(sample: LoadSample) -> str:
    text = f"{sample.tx_per_s:,.0f} tx/s, p50 {sample.p50_ms:.2f} ms, p99 {sample.p99_ms:.2f} ms"
    return text + (f", {sample.conflicts} conflicts" if sample.conflicts else "")


async def _window_on_url(url: str, submitters: int, plan: Plan, tx_prefix: str) -> LoadSample:
    ledger = open_ledger(url)
    try:
        return await run_closed_loop(
            ledger.channel(CHANNEL),
            submitters,
            warmup_s=plan.warmup_s,
            duration_s=plan.duration_s,
            tx_prefix=tx_prefix,
        )
    finally:
        await ledger.aclose()


async def _window_on_store(
    store: LedgerStore, submitters: int, plan: Plan, tx_prefix: str
) -> LoadSample:
    # A new Ledger per event loop: a committer belongs to the loop it first ran on.
    channel = Ledger(store).channel(CHANNEL)
    try:
        return await run_closed_loop(
            channel,
            submitters,
            warmup_s=plan.warmup_s,
            duration_s=plan.duration_s,
            tx_prefix=tx_prefix,
        )
    finally:
        await channel.close()


def ledger_sample(backend: str, submitters: int, plan: Plan) -> LoadSample:
    """One closed-loop run on a fresh, empty store."""
    with scratch_store(backend, plan.servers) as scratch:
        gc.collect()
        return asyncio.run(_window_on_url(scratch.url, submitters, plan, "bench"))


def ceiling_sample(backend: str, raw: RawRows, plan: Plan) -> float:
    """One raw-ceiling run on a fresh, empty store, in tx/s."""
    with scratch_store(backend, plan.servers) as scratch:
        writer = open_raw_writer(scratch, raw)
        try:
            gc.collect()
            return measure_ceiling(writer, raw, plan.duration_s)
        finally:
            writer.close()


def measure_backend(backend: str, raw: RawRows, plan: Plan) -> BackendResult:
    """Every submitter count, then the ceiling, per repeat (interleaved against drift)."""
    samples: dict[int, list[LoadSample]] = {n: [] for n in plan.submitters}
    ceilings: list[float] = []
    for repeat in range(1, plan.repeats + 1):
        for submitters in plan.submitters:
            sample = ledger_sample(backend, submitters, plan)
            samples[submitters].append(sample)
            log(
                f"[{backend}] run {repeat}/{plan.repeats}, {submitters} submitters: "
                f"{describe(sample)}"
            )
        ceilings.append(ceiling_sample(backend, raw, plan))
        log(f"[{backend}] run {repeat}/{plan.repeats}, raw ceiling: {ceilings[-1]:,.0f} tx/s")
    return BackendResult(
        backend=backend,
        points=[LoadPoint.median_of(samples[n]) for n in plan.submitters],
        ceiling_tx_per_s=statistics.median(ceilings),
    )


def measure_growth(backend: str, plan: Plan) -> list[GrowthResult]:
    """Runs on empty ledgers and on one ledger grown to each checkpoint in turn.

    Empty and grown runs alternate, so that load from other programs on a shared
    machine hits both alike; each side runs in a fresh process (see growth.py).
    """
    results = []
    with (
        scratch_store(backend, plan.servers) as scratch,
        GrownLedgerProcess(_worker_command(scratch.url, plan)) as grown,
    ):
        filled, measured_tx, fill_s = 0, 0, 0.0
        for target in growth_targets(plan):
            fill = _fill(backend, grown, plan, filled, target - filled, fill_s)
            filled, fill_s = filled + fill.committed, fill_s + fill.seconds
            in_ledger = filled + measured_tx
            empty, full = [], []
            for repeat in _runs(plan):
                empty.append(_empty_growth_sample(backend, plan, repeat))
                full.append(_grown_growth_sample(backend, grown, plan, repeat, in_ledger))
                measured_tx += full[-1].transactions
            results.append(
                GrowthResult(
                    backend=backend,
                    transactions=in_ledger,
                    fill=FillResult(target, filled, fill_s),
                    empty=LoadPoint.median_of(empty),
                    full=LoadPoint.median_of(full),
                )
            )
            if not fill.complete:
                break
    return results


def growth_targets(plan: Plan) -> list[int]:
    """How many fill transactions the ledger holds at each checkpoint, ascending."""
    return sorted({max(1, round(plan.growth_tx * share)) for share in plan.growth_checkpoints})


def _runs(plan: Plan) -> range:
    return range(1, plan.repeats + 1)


def _fill(
    backend: str,
    grown: GrownLedgerProcess,
    plan: Plan,
    first_key: int,
    count: int,
    spent_s: float,
) -> FillResult:
    budget_s = max(plan.growth_budget_s - spent_s, 0.0)
    log(f"[{backend} growth] filling {count:,} more transactions (budget left {budget_s:.0f} s)")
    fill = grown.fill(first_key, count, budget_s)
    log(
        f"[{backend} growth] filled {first_key + fill.committed:,} in total "
        f"({fill.tx_per_s:,.0f} tx/s for this part)"
    )
    return fill


def _empty_growth_sample(backend: str, plan: Plan, repeat: int) -> LoadSample:
    with scratch_store(backend, plan.servers) as scratch:
        sample = _child_sample(scratch.url, "bench", plan)
    log(f"[{backend} growth] empty ledger, run {repeat}/{plan.repeats}: {describe(sample)}")
    return sample


def _grown_growth_sample(
    backend: str, grown: GrownLedgerProcess, plan: Plan, repeat: int, in_ledger: int
) -> LoadSample:
    sample = grown.run(f"grown{in_ledger}r{repeat}")
    run = f"run {repeat}/{plan.repeats}"
    log(f"[{backend} growth] {in_ledger:,} in ledger, {run}: {describe(sample)}")
    return sample


def _child_sample(url: str, tag: str, plan: Plan) -> LoadSample:
    """A growth-check run on the ledger at `url` in a fresh Python process (see growth.py)."""
    command = [*_child_command(plan), f"--run-on={url}", f"--run-tag={tag}"]
    child = subprocess.run(command, capture_output=True, text=True)
    if child.returncode != 0:
        raise RuntimeError(f"A growth run on {url} failed:\n{child.stderr}")
    return LoadSample(**json.loads(child.stdout))


def _worker_command(url: str, plan: Plan) -> list[str]:
    return [*_child_command(plan), f"--grown-worker={url}"]


def _child_command(plan: Plan) -> list[str]:
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        f"--duration={plan.duration_s}",
        f"--warmup={plan.warmup_s}",
    ]


def _grown_run(store: LedgerStore, tag: str, plan: Plan) -> LoadSample:
    """In the growth worker: one run on the grown ledger it owns."""
    gc.collect()
    return asyncio.run(_window_on_store(store, GROWTH_SUBMITTERS, plan, tag))


def environment(plan: Plan) -> list[str]:
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    versions = [f"Python {platform.python_version()}", f"SQLite {sqlite3.sqlite_version}"]
    used = set(plan.backends) | set(plan.growth_backends if plan.growth_tx else [])
    if "postgresql" in used:
        versions.append(f"PostgreSQL {_postgres_version(plan.servers.postgres_url)}")
    if "redis" in used:
        versions.append(f"Redis {_redis_version(plan.servers.redis_url)}")
    return [
        f"- machine: {os.cpu_count()} CPUs ({platform.machine()}, {platform.system()}), "
        f"shared; load average at start {load}",
        f"- software: {', '.join(versions)}",
        f"- runs: {plan.repeats} per figure, {plan.duration_s:g} s measured after "
        f"{plan.warmup_s:g} s warm-up; medians; raw ceiling in blocks of {RAW_BLOCK_SIZE}, "
        f"growth fill in blocks of {FILL_BLOCK_SIZE}",
    ]


def _postgres_version(url: str) -> str:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            return str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    except psycopg.Error:
        return "(unreachable)"


def _redis_version(url: str) -> str:
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=3) as client:
            return str(client.info("server")["redis_version"])
    except redis.RedisError:
        return "(unreachable)"


def render(
    plan: Plan, header: list[str], ledger: list[BackendResult], growth: list[GrowthResult]
) -> str:
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    parts = ["# Ledger commit benchmark", "", f"`{command}`", "", *header, ""]
    if ledger:
        parts += ["## Throughput, latency and raw ceiling", "", ledger_table(ledger), ""]
    if growth:
        parts += ["## Growth", "", growth_table(growth), ""]
    missed = missed_targets(ledger, growth)
    parts += ["## Missed targets", ""]
    parts += [f"- {line}" for line in missed] if missed else ["- none"]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    plan = parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    if plan.run_on is not None:
        sample = asyncio.run(_window_on_url(plan.run_on, GROWTH_SUBMITTERS, plan, plan.run_tag))
        print(json.dumps(dataclasses.asdict(sample)))
        return 0
    if plan.grown_worker is not None:
        run = partial(_grown_run, plan=plan)
        serve_grown_ledger(plan.grown_worker, run, sys.stdin, sys.stdout)
        return 0
    header = environment(plan)
    header.insert(0, f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}")
    raw = RawRows()
    ledger = [measure_backend(backend, raw, plan) for backend in plan.backends]
    growth = (
        [point for backend in plan.growth_backends for point in measure_growth(backend, plan)]
        if plan.growth_tx
        else []
    )
    print(render(plan, header, ledger, growth))
    if plan.json_path is not None:
        results = {
            "ledger": [dataclasses.asdict(result) for result in ledger],
            "growth": [dataclasses.asdict(result) for result in growth],
        }
        plan.json_path.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
