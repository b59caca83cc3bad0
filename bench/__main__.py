"""`python -m bench` (`make bench`): a short run of every benchmark, then one table of targets.

Each benchmark runs in a process of its own with the arguments in SHORT; its full report goes
to --reports DIR when given, its progress to stderr. A benchmark that fails gets a row that
says so, and the others still run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from . import harness
from .harness import Result, log

SHORT = {
    "ledger_commit": "--repeats 3 --duration 1 --warmup 0.5 --submitters 1,256 --growth-tx 20000 "
    "--growth-checkpoints 1 --growth-backends sqlite,postgresql --families 16",
    "api_throughput": "--repeats 3 --duration 1 --warmup 0.5 "
    "--configs sqlite:1,postgresql:2,redis:2 --connections 32",
    "identity": "--repeats 3 --duration 1 --warmup 0.5 --http httptools --connections 8 "
    "--handshake-connections 8",
    "attacker_latency": "--repeats 2 --duration 1 --warmup 0.3 --blocks 40",
    "soak": "--repeats 3 --duration 10",
    "paging": "--repeats 3 --duration 1 --warmup 0.3",
    "read_log": "--repeats 3 --duration 1 --warmup 0.5 --connections 32",
    "encryption": "--repeats 3 --duration 1 --warmup 0.5 --backends memory,sqlite,postgresql "
    "--configs sqlite:1 --connections 32",
    "merkle_tree": "--repeats 3 --duration 1 --warmup 0.5 --backends memory,sqlite "
    "--transactions 100000",
    "verify": "--repeats 3 --transactions 20000 --sizes 5000",
    "graphql_floor": "--repeats 5 --duration 0.5 --warmup 0.2",
}


def main(argv: Sequence[str] | None = None) -> int:
    found = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    only = f"some of {','.join(SHORT)}"
    found.add_argument("--only", type=harness.names(list(SHORT)), default=list(SHORT), help=only)
    found.add_argument("--reports", type=Path, help="write each benchmark's report here")
    args = found.parse_args(argv)
    if args.reports:
        args.reports.mkdir(parents=True, exist_ok=True)
    load, began = harness.load_average(), time.perf_counter()
    results: list[Result] = []
    times = []
    with tempfile.TemporaryDirectory(prefix="bench-") as temp:
        for name in args.only:
            summary = Path(temp) / f"{name}.json"
            command = [sys.executable, "-m", f"bench.{name}", *SHORT[name].split()]
            log(f"== {' '.join(command[1:])}")
            started = time.perf_counter()
            report = args.reports / f"{name}.md" if args.reports else Path(temp) / f"{name}.md"
            with report.open("w") as output:
                run = subprocess.run(
                    [*command, f"--summary={summary}"], stdout=output, cwd=harness.ROOT
                )
            times.append(f"{name} {time.perf_counter() - started:.0f} s")
            if run.returncode != 0 or not summary.exists():
                results.append(Result(name, "runs", f"failed (exit code {run.returncode})", False))
                continue
            results += [Result(**row) for row in json.loads(summary.read_text())]
    took = f"{(time.perf_counter() - began) / 60:.1f} min ({', '.join(times)})"
    print(
        f"`make bench`, {time.strftime('%Y-%m-%d %H:%M %Z')}: {took}; load average at start "
        f"{load}, at end {harness.load_average()}\n"
    )
    print("\n".join(harness.results_table(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
