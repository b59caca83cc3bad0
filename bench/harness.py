"""The benchmarks' harness: command line, repeats and medians, processes, environment, report.

A benchmark is a module of this package run as `python -m bench.NAME`. It builds its command
line on `parser()` (every benchmark has --repeats, --duration, --warmup and --summary),
takes each figure once per repeat, interleaved with the figures it is compared with, and
reports medians. Its Markdown report goes to stdout through `publish`: the command, the
`environment()` it ran in, its tables, and its targets as `Result` rows (benchmark, target,
measured, met), which `--summary FILE` also writes as JSON for `python -m bench`. Progress
goes to stderr. SIGTERM unwinds like Ctrl-C, so servers and scratch stores are removed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shlex
import signal
import sqlite3
import ssl
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

BACKENDS = ("memory", "sqlite", "postgresql", "redis")
CLK_TCK = os.sysconf("SC_CLK_TCK")
# The CPUs this benchmark may use, taken before `pin` narrows its own to the client's.
USABLE_CPUS = frozenset(os.sched_getaffinity(0))
ROOT = Path(__file__).resolve().parent.parent
NUMERIC = re.compile(r"^[-+]?[\d.,]+|^nan$|^—$")
T = TypeVar("T")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- command line -------------------------------------------------------------------------------


def names(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    """An argparse type: a non-empty comma-separated list, each one of `allowed`."""

    def parse(text: str) -> list[str]:
        found = [name.strip() for name in text.split(",") if name.strip()]
        if not found or any(name not in allowed for name in found):
            raise argparse.ArgumentTypeError(f"choose from {','.join(allowed)}, not {text!r}")
        return found

    return parse


def counts(text: str) -> list[int]:
    """An argparse type: comma-separated whole numbers of at least 1 ("1,8,32")."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,8,32, not {text!r}") from exc
    if any(value < 1 for value in values):
        raise argparse.ArgumentTypeError("every count must be at least 1")
    return values


def configs(text: str) -> list[tuple[str, int]]:
    """An argparse type: comma-separated BACKEND:WORKERS of servers ("sqlite:1,postgresql:2")."""
    found = [part.strip().partition(":") for part in text.split(",")]
    if any(b not in BACKENDS[1:] or not n.isdigit() or n == "0" for b, _, n in found):
        raise ValueError(text)
    return [(backend, int(workers)) for backend, _, workers in found]


def parser(
    description: str, *, repeats: int, duration: float, warmup: float
) -> argparse.ArgumentParser:
    """A command line with the options every benchmark has, and these defaults."""
    module = f"python -m bench.{Path(sys.argv[0]).stem}"
    found = argparse.ArgumentParser(prog=module, description=description)
    found.add_argument(
        "--repeats",
        type=int,
        default=repeats,
        help="runs per figure, medians (default %(default)s)",
    )
    found.add_argument(
        "--duration", type=float, default=duration, help="seconds per window (default %(default)s)"
    )
    found.add_argument(
        "--warmup", type=float, default=warmup, help="seconds before a window (default %(default)s)"
    )
    found.add_argument("--summary", type=Path, help="also write the target rows here as JSON")
    return found


def pinning_options(found: argparse.ArgumentParser) -> None:
    found.add_argument("--server-core", type=int, default=0, help="CPU for the server processes")
    found.add_argument("--client-core", type=int, default=1, help="CPU for the load generator")


def parse(found: argparse.ArgumentParser, argv: Sequence[str] | None) -> Any:
    args = found.parse_args(argv)
    if args.repeats < 1 or args.duration <= 0 or args.warmup < 0:
        found.error("--repeats must be at least 1, --duration above 0 and --warmup 0 or more.")
    return args


# -- repeats and medians ------------------------------------------------------------------------


def percentile(values: Iterable[float], fraction: float) -> float:
    """Nearest-rank percentile; NaN when there are no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def median(values: Iterable[float]) -> float:
    found = list(values)
    return statistics.median(found) if found else math.nan


def alternating(items: Sequence[T], repeat: int) -> list[T]:
    """`items` on even repeats, reversed on odd ones, so drift hits every item alike."""
    return list(items) if repeat % 2 == 0 else list(items)[::-1]


# -- processes ----------------------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """The process and its descendants (uvicorn's workers), from /proc."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [pid, *(each for child in children for each in process_tree(int(child)))]


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU time of the processes so far (10 ms resolution)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def rss_mb(pids: Iterable[int]) -> float:
    total_kb = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total_kb += sum(int(line.split()[1]) for line in status.splitlines() if "VmRSS" in line)
    return total_kb / 1024


def pin(server_pids: Iterable[int], server_core: int, client_core: int) -> str:
    """Server processes on one CPU, this process on another; says what it did."""
    if not {server_core, client_core} <= USABLE_CPUS or server_core == client_core:
        return "not pinned (needs two usable CPUs)"
    for pid in server_pids:
        os.sched_setaffinity(pid, {server_core})
    os.sched_setaffinity(0, {client_core})
    return f"servers on CPU {server_core}, load generator on CPU {client_core}"


def exit_on_sigterm() -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


# -- environment --------------------------------------------------------------------------------


def load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def code_under_test() -> str:
    """The commit measured, and which files of the measured packages differ from it."""
    git = ["git", "-C", str(ROOT)]
    packages = ["api", "authz", "chaincode", "ledger_backends", "domain", "devkit"]
    try:
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True)
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", *packages], capture_output=True
        )
    except OSError:
        return "unknown (no git)"
    changed = [line[3:] for line in dirty.stdout.decode().splitlines() if line.strip()]
    dirty_files = f" + uncommitted changes to {len(changed)} files" if changed else ""
    return head.stdout.decode().strip() + dirty_files


def environment(
    args: Any, notes: str = "", software: Sequence[str] = (), runs: str | None = None
) -> list[str]:
    """Where and how the benchmark runs, as report lines; call it before measuring."""
    windows = f"{args.duration:g} s windows after {args.warmup:g} s warm-up"
    runs = runs or f"{args.repeats} per figure, {windows}, medians"
    return [
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}; code: {code_under_test()}",
        f"- machine: {os.cpu_count()} CPUs ({platform.machine()}), shared with other work; "
        f"load average at start {load_average()}",
        f"- software: Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        + ", ".join([ssl.OPENSSL_VERSION, *software]),
        f"- runs: {runs}{notes}",
    ]


def versions(*distributions: str) -> list[str]:
    return [f"{name} {version(name)}" for name in distributions]


# -- the report ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """One target of one benchmark; `met` is None where the figure has no target."""

    benchmark: str
    target: str
    measured: str
    met: bool | None


def table(header: str, rows: Iterable[str]) -> list[str]:
    """A Markdown table of "a | b | c" rows; columns whose every cell is a number go right."""
    cells = [row.split(" | ") for row in rows]
    names = header.split(" | ")
    right = [bool(cells) and all(NUMERIC.match(row[i]) for row in cells) for i in range(len(names))]
    return [
        f"| {header} |",
        "|" + "|".join(" ---: " if numeric else " --- " for numeric in right) + "|",
        *(f"| {' | '.join(row)} |" for row in cells),
    ]


def verdict(met: bool | None) -> str:
    return "—" if met is None else "yes" if met else "**no**"


def results_table(results: Iterable[Result]) -> list[str]:
    rows = (f"{r.benchmark} | {r.target} | {r.measured} | {verdict(r.met)}" for r in results)
    return table("benchmark | target | measured | met", rows)


def publish(
    title: str, environment: list[str], body: list[str], results: list[Result], summary: Path | None
) -> int:
    """Print the report; write the target rows to `summary` when asked."""
    command = shlex.join(["python", "-m", f"bench.{Path(sys.argv[0]).stem}", *sys.argv[1:]])
    lines = [f"# {title}", "", f"`{command}`", "", *environment]
    lines += [f"- load average at end {load_average()}", "", *body, "", "## Targets", ""]
    print("\n".join([*lines, *results_table(results)]), flush=True)
    if summary is not None:
        summary.write_text(json.dumps([asdict(result) for result in results]))
    return 0
