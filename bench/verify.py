"""`healthledger verify` from block 0: transactions checked per second and the peak memory of
the check, on SQLite ledgers of one-key transactions, at several ledger sizes.

Each ledger (--transactions, and each of --sizes) holds one key written by every transaction,
--block transactions per block, committed straight through the chain writer
(`merkle_tree.filled`); it is made once per run, or kept in --ledger-dir and reused. Each
check runs `verify_channel` on the store opened read-only, as `healthledger verify` opens it,
in a fresh child process (`--check URL`) with the garbage collector set up as that command
sets it (`api.collector.settle`), which reports the seconds the check took and its
own peak RSS (`ru_maxrss`, the interpreter and its imports included). The sizes alternate
within each of --repeats; figures are medians.

Targets (issue 21): ≥ 100,000 transactions/s at --transactions (200,000 by default); a peak
RSS that does not grow with the ledger, ≤ 200 MB at 1,000,000 transactions.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from api import collector
from ledger_backends import open_ledger, open_store, verify_channel

from . import harness
from .harness import Result, log, median

RATE_TARGET = 100_000
RSS_TARGET_MB = 200
RSS_TARGET_SIZE = 1_000_000


def arguments() -> Any:
    found = harness.parser(__doc__.splitlines()[0], repeats=3, duration=1.0, warmup=0.0)
    found.add_argument(
        "--transactions", type=int, default=200_000, help="the rate target's ledger: 200,000"
    )
    found.add_argument(
        "--sizes", type=harness.counts, default=[], help="more ledger sizes, e.g. 1000000"
    )
    found.add_argument("--block", type=int, default=500, help="transactions per block: 500")
    found.add_argument("--ledger-dir", type=Path, help="keep the ledgers here and reuse them")
    found.add_argument("--no-steps", action="store_true", help="skip the check timed step by step")
    # The child that measures one check: ledger URL and channel (and --steps: step by step).
    found.add_argument("--check", nargs=2, help=argparse.SUPPRESS, metavar=("URL", "CHANNEL"))
    found.add_argument("--steps", action="store_true", help=argparse.SUPPRESS)
    return found


# What each step of a check is, by the function that does it: (object, attribute, step).
def _timed_functions(store: Any) -> list[tuple[Any, str, str]]:
    from ledger_backends import verify, verify_disk
    from ledger_backends.records import Block

    replay, tree = verify_disk.DiskReplay, verify._TreeCheck
    return [
        (store, "read_blocks", "read_blocks: headers and transaction texts"),
        (verify, "transaction_digests", "SHA-256 of each transaction text"),
        (verify, "block_damage", "data hash and header hash, link"),
        (Block, "transactions", "JSON parse into `Transaction`s"),
        (replay, "apply", "commitment, validation code, replay (Python)"),
        (replay, "begin_chunk", "replay: versions read, from the temporary database"),
        (replay, "end_chunk", "replay: writes to the temporary database"),
        (tree, "add", "tree: leaf hashes, appending, size and root"),
        (tree, "check_nodes", "tree nodes compared with the stored ones"),
        (store, "read_tree_nodes", "read_tree_nodes: the stored tree nodes"),
        (
            replay,
            "copy_stored",
            "stored state and history: copied by SQLite, the ledger attached",
        ),
        (
            replay,
            "load_stored",
            "stored state and history: scans, into the temporary database",
        ),
        (replay, "earliest_damage", "the comparison, in SQL"),
    ]


def timed_steps(store: Any, channel: str) -> dict[str, float]:
    """One check with the CPU time of each step (`_timed_functions`, each without the steps
    it calls), then the store's scans alone; seconds by step."""
    spent: dict[str, float] = {}
    calls: list[list[float]] = []  # the time each open call's inner steps took

    def timed(function: Any, step: str) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            started = time.process_time()
            calls.append([0.0])
            try:
                return function(*args, **kwargs)
            finally:
                took = time.process_time() - started
                inner = calls.pop()[0]
                spent[step] = spent.get(step, 0.0) + took - inner
                if calls:
                    calls[-1][0] += took

        return run

    for owner, name, step in _timed_functions(store):
        setattr(owner, name, timed(getattr(owner, name), step))
    started = time.process_time()
    if not verify_channel(store, channel).ok:
        raise RuntimeError("the ledger did not verify")
    spent["the rest: the walk's loop, chunking, sets of keys"] = (
        time.process_time() - started - sum(spent.values())
    )
    started = time.process_time()
    # As the check scans them: as rows.
    for _ in store.scan_state_rows(channel):
        pass
    for _ in store.scan_history_rows(channel):
        pass
    spent["of the stored state and history: the store's scans alone"] = (
        time.process_time() - started
    )
    return spent


def check(url: str, channel: str, steps: bool) -> None:
    """The child: one check of `channel` at `url`; print seconds, outcome and peak RSS (or,
    with `steps`, the seconds of each step)."""
    collector.settle()  # as `healthledger verify` does
    store = open_store(url, create=False)
    if steps:
        try:
            print(json.dumps(timed_steps(store, channel)), flush=True)
        finally:
            store.close()
        return
    try:
        started, cpu = time.perf_counter(), time.process_time()
        result = verify_channel(store, channel)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        store.close()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcome = {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "ok": result.ok,
        "height": result.height,
        "rss_kb": peak_kb,
    }
    print(json.dumps(outcome), flush=True)


def ledger(directory: Path, transactions: int, block: int) -> str:
    """The URL of a SQLite ledger of `transactions` one-key transactions, made if missing."""
    # Imported here: they bring the contracts, which the measured child need not hold.
    from .ledger_workloads import CHANNEL
    from .merkle_tree import filled

    path = directory / f"verify-{transactions}-{block}.db"
    url = f"sqlite:///{path}"
    made = open_ledger(url)
    try:
        filled(made.channel(CHANNEL), transactions, block)
    finally:
        made.close()
    return url


def run_check(url: str, blocks: int, steps: bool = False) -> dict[str, Any]:
    """One check in a child process; raise unless it found the `blocks` blocks intact."""
    from .ledger_workloads import CHANNEL

    command = [sys.executable, "-m", "bench.verify", "--check", url, CHANNEL]
    if steps:
        command.append("--steps")
        done = subprocess.run(command, capture_output=True, text=True, cwd=harness.ROOT)
        spent: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
        return spent
    done = subprocess.run(command, capture_output=True, text=True, cwd=harness.ROOT, check=True)
    outcome: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    if not outcome["ok"] or outcome["height"] != blocks:
        raise RuntimeError(f"the ledger at {url} did not verify as {blocks} blocks: {outcome}")
    return outcome


def report(args: Any, directory: Path) -> tuple[list[str], list[Result]]:
    sizes = sorted({args.transactions, *args.sizes})
    urls = {size: ledger(directory, size, args.block) for size in sizes}
    runs: dict[int, list[dict[str, Any]]] = {size: [] for size in sizes}
    for repeat in range(args.repeats):
        for size in harness.alternating(sizes, repeat):
            outcome = run_check(urls[size], -(-size // args.block))
            runs[size].append(outcome)
            rate = size / outcome["seconds"]
            log(
                f"{size:,} tx: {outcome['seconds']:.2f} s, {rate:,.0f} tx/s, "
                f"{outcome['rss_kb'] / 1024:.0f} MB peak RSS"
            )
    rows, rates, peaks = [], {}, {}
    for size in sizes:
        seconds = median(run["seconds"] for run in runs[size])
        cpu_us = median(run["cpu_seconds"] for run in runs[size]) / size * 1e6
        rates[size] = size / seconds
        peaks[size] = median(run["rss_kb"] / 1024 for run in runs[size])
        rows.append(
            f"{size:,} | {-(-size // args.block):,} | {seconds:.2f} | {rates[size]:,.0f} "
            f"| {1e6 / rates[size]:.1f} | {cpu_us:.1f} | {peaks[size]:.0f}"
        )
    header = "transactions | blocks | seconds | tx/s | µs/tx | CPU µs/tx | peak RSS MB"
    body = ["## `verify_channel`, SQLite, read-only, one child process per check", ""]
    body += harness.table(header, rows)
    rate = rates[args.transactions]
    results = [
        Result(
            f"verify, SQLite, {args.transactions:,} tx",
            f"≥ {RATE_TARGET:,} tx/s",
            f"{rate:,.0f} tx/s",
            rate >= RATE_TARGET,
        )
    ]
    largest, smallest = sizes[-1], sizes[0]
    measured = f"{peaks[largest]:.0f} MB at {largest:,} tx"
    if largest != smallest:
        measured += f" ({peaks[smallest]:.0f} MB at {smallest:,})"
    # A ledger smaller than the target's cannot fail it, nor show it met: no verdict then.
    met = peaks[largest] <= RSS_TARGET_MB if largest >= RSS_TARGET_SIZE else None
    target = f"≤ {RSS_TARGET_MB} MB at {RSS_TARGET_SIZE:,} tx"
    results.append(Result("verify peak RSS, SQLite", target, measured, met))
    if not args.no_steps:
        body += ["", *steps_table(urls[args.transactions], args)]
    return body, results


def steps_table(url: str, args: Any) -> list[str]:
    """Where the CPU time of one check goes, in µs per transaction."""
    size = args.transactions
    log(f"{size:,} tx: one more check, timed step by step")
    spent = run_check(url, -(-size // args.block), steps=True)
    scans = "of the stored state and history: the store's scans alone"
    total = sum(seconds for step, seconds in spent.items() if step != scans)
    rows = [
        f"{step} | {seconds / size * 1e6:.1f} | {seconds / total:.0%}"
        for step, seconds in sorted(spent.items(), key=lambda item: -item[1])
        if step != scans
    ]
    rows.append(f"{scans} | {spent[scans] / size * 1e6:.1f} | {spent[scans] / total:.0%}")
    rows.append(f"total (under the timers) | {total / size * 1e6:.1f} | 100%")
    title = f"## Where the CPU time of a check goes ({size:,} transactions, one check)"
    return [title, "", *harness.table("step | CPU µs/tx | share", rows)]


def main(argv: Sequence[str] | None = None) -> int:
    args = harness.parse(arguments(), argv)
    if args.check:
        url, channel = args.check
        check(url, channel, args.steps)
        return 0
    harness.exit_on_sigterm()
    notes = f"; {args.block} transactions per block"
    environment = harness.environment(
        args, notes, runs=f"{args.repeats} per size, sizes alternating, medians"
    )
    if args.ledger_dir is not None:
        args.ledger_dir.mkdir(parents=True, exist_ok=True)
        body, results = report(args, args.ledger_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-verify-") as temp:
            body, results = report(args, Path(temp))
    title = "`healthledger verify`: transactions checked per second, and its peak memory"
    return harness.publish(title, environment, body, results, args.summary)


if __name__ == "__main__":
    sys.exit(main())
