"""`healthledger verify` from block 0: transactions checked per second and the peak memory of
the check, on SQLite ledgers of one-key transactions, at several ledger sizes.

Each ledger (--transactions, and each of --sizes) holds one key written by every transaction,
--block transactions per block, committed straight through the chain writer
(`merkle_tree.filled`); it is made once per run, or kept in --ledger-dir and reused. Each
check runs `verify_channel` on the store opened read-only, as `healthledger verify` opens it,
in a fresh child process (`--check URL`), which reports the seconds the check took and its
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
    # The child that measures one check: ledger URL and channel.
    found.add_argument("--check", nargs=2, help=argparse.SUPPRESS, metavar=("URL", "CHANNEL"))
    return found


def check(url: str, channel: str) -> None:
    """The child: one check of `channel` at `url`; print seconds, outcome and peak RSS."""
    store = open_store(url, create=False)
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


def run_check(url: str, blocks: int) -> dict[str, Any]:
    """One check in a child process; raise unless it found the `blocks` blocks intact."""
    from .ledger_workloads import CHANNEL

    command = [sys.executable, "-m", "bench.verify", "--check", url, CHANNEL]
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
    met = peaks[largest] <= RSS_TARGET_MB and largest >= RSS_TARGET_SIZE
    target = f"≤ {RSS_TARGET_MB} MB at {RSS_TARGET_SIZE:,} tx"
    results.append(Result("verify peak RSS, SQLite", target, measured, met))
    return body, results


def main(argv: Sequence[str] | None = None) -> int:
    args = harness.parse(arguments(), argv)
    if args.check:
        check(*args.check)
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
