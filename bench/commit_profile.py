"""Where a closed-loop commit run spends its time, sampled by py-spy and sorted into steps.

`python -m bench.commit_profile --backend sqlite --submitters 256` runs one window of
`ledger_commit`'s closed loop (fresh scratch store, default group commit) in a child process
under `py-spy record --threads` (--rate samples a second), then files every sample under
the first step, from the innermost frame out, whose function it is in (STEPS). A sample of
a thread waiting for work (the idle worker threads, the event loop's epoll wait) is counted
as idle and left out of the shares, as are imports and the printing of the result. Each
step's µs per transaction is its share of the busy samples times the CPU time per committed
transaction the run measured itself: py-spy sees which code a thread is in, the run's CPU
clock how much CPU it had, since on a shared machine a sampled thread may be waiting for a
core. With --gil only the thread holding the GIL is sampled: a thread waiting to take it back
(after a socket write, a queue put, a SQLite call) is then not counted as working, while
CPU that C code spends without the GIL (SQLite's own work) is in no sample at all.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ledger_backends import open_ledger
from ledger_backends.testing import scratch_url

from . import harness
from .ledger_workloads import Sample, commits
from .server_profile import py_spy, tally

# (step, functions that mark it), matched from the innermost frame outwards; first hit wins.
STEPS = (
    ("idle: worker thread waiting for a block", ("_worker",)),
    ("idle: event loop waiting (epoll)", ("EpollSelector.select",)),
    ("outside the run: imports, the result's repr", ("_find_and_load", "_task_repr")),
    ("client: the benchmark builds its proposal", ("update_proposal",)),
    ("build: canonical JSON and write-set commitment", ("Proposal.canonical_parts",)),
    ("store: reads of the tip and the read keys' versions", ("_check_tip", "tip", "read_versions")),
    ("build: transaction digests and block header hashes", ("transaction_digests", "Block.build")),
    ("build: Merkle leaves and nodes", ("CompactRange.append", "CompactRange.root", "_tree_at")),
    ("build: MVCC validation, state, history, receipts", ("ChainWriter.build",)),
    ("store: append_if_tip (the block's one atomic write)", ("append_if_tip",)),
    ("asyncio: to_thread hand-off of the block", ("to_thread", "_WorkItem.run", "_chain_future")),
    (
        "asyncio: futures, tasks and the committer's passes",
        ("GroupCommitter", "ChannelLedger.submit", "Window.timed", "_commit_loop", "_run_once"),
    ),
)
OTHER = "other (scratch store, harness)"
LEFT_OUT = ("idle", "outside")  # steps not in the shares


def arguments() -> argparse.ArgumentParser:
    found = harness.parser(__doc__.splitlines()[0], repeats=1, duration=5.0, warmup=1.0)
    found.add_argument("--backend", choices=harness.BACKENDS, default="memory")
    found.add_argument("--submitters", type=int, default=256)
    found.add_argument("--rate", type=int, default=250, help="py-spy samples a second: 250")
    found.add_argument(
        "--gil", action="store_true", help="sample only the thread holding the GIL (py-spy --gil)"
    )
    found.add_argument("--run", type=Path, help=argparse.SUPPRESS)  # the child: Sample to here
    return found


def step_of(frames: Sequence[str]) -> str:
    """The step a sample belongs to, from its frames (outermost first)."""
    for frame in reversed(frames):
        function = frame.split(" (", 1)[0]
        for step, marks in STEPS:
            if any(function == mark or mark in function.split(".") for mark in marks):
                return step
    return OTHER


async def _one_run(url: str, args: argparse.Namespace) -> Sample:
    ledger = open_ledger(url)
    try:
        window = {"warmup_s": args.warmup, "duration_s": args.duration}
        return await commits(ledger, args.submitters, **window)
    finally:
        await ledger.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    args = harness.parse(arguments(), argv)
    if args.run is not None:
        with scratch_url(args.backend) as url:
            sample = asyncio.run(_one_run(url, args))
        args.run.write_text(json.dumps(dataclasses.asdict(sample)))
        return 0
    spy = py_spy()
    with tempfile.TemporaryDirectory(prefix="commit-profile-") as temp:
        raw, result = Path(temp) / "samples.txt", Path(temp) / "sample.json"
        own = list(sys.argv[1:] if argv is None else argv)
        child = [sys.executable, "-m", "bench.commit_profile", *own, f"--run={result}"]
        record = [spy, "record", "--threads", "--format", "raw", "-r", str(args.rate)]
        record += ["--gil"] if args.gil else []
        run = subprocess.run(
            [*record, "-o", str(raw), "--", *child],
            capture_output=True,
            text=True,
            cwd=harness.ROOT,
        )
        if run.returncode:
            raise SystemExit(f"The profiled run failed:\n{run.stderr}")
        sample = Sample(**json.loads(result.read_text()))
        counted = tally(raw.read_text().splitlines(), step_of)
    busy = {step: n for step, n in counted.items() if not step.startswith(LEFT_OUT)}
    total = sum(busy.values())
    cpu_us = sample.cpu_ms_per_op * 1000
    rows = [
        f"{step} | {busy.get(step, 0) / total:.1%} | {busy.get(step, 0) / total * cpu_us:.1f}"
        for step in [name for name, _ in STEPS if not name.startswith(LEFT_OUT)] + [OTHER]
    ]
    rows.append(f"**all busy samples** | 100% | **{cpu_us:.1f}**")
    idle = sum(counted.values()) - total
    body = [
        f"## {args.backend}, {args.submitters} submitters: {sample.ops_per_s:,.0f} tx/s, "
        f"{cpu_us:.1f} CPU µs/tx" + (" (GIL holder only)" if args.gil else ""),
        "",
        *harness.table("step | share of busy samples | CPU µs per transaction", rows),
        "",
        f"{total:,} busy samples, {idle:,} idle or outside the run left out, at {args.rate}"
        " a second.",
    ]
    environment = harness.environment(args, f"; py-spy at {args.rate} samples a second")
    return harness.publish("Commit path profile", environment, body, [], args.summary)


if __name__ == "__main__":
    sys.exit(main())
