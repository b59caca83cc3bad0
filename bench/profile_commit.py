"""Where a closed-loop run spends its time: pyinstrument on the event loop and the commit thread.

`pyinstrument bench/ledger_commit.py` sees only the main thread, where the
submitters and the group committer's event loop run; ChainWriter.commit runs in
a worker thread (asyncio.to_thread). This script runs one closed-loop
measurement (closed_loop.py) on a fresh store of one backend, profiles both
threads with pyinstrument, and reports how a block's cycle divides between
the commit thread and everything else.

    .venv/bin/python bench/profile_commit.py --backend sqlite --submitters 256
    .venv/bin/python bench/profile_commit.py --backend sqlite --timing-only
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Profile the ledger_backends next to this script, not whichever copy is installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from closed_loop import CHANNEL, LoadSample, run_closed_loop
from pyinstrument import Profiler
from scratch_stores import BACKENDS, Servers, scratch_store

from ledger_backends import Proposal, Receipt, open_ledger
from ledger_backends.chain import ChainWriter

SAMPLE_INTERVAL_S = 0.0005


@dataclass
class CommitThreadProfile:
    """Wraps a ChainWriter's commit so that its thread is timed and, with a profiler, profiled."""

    writer: ChainWriter
    profiler: Profiler | None
    busy_s: float = 0.0
    blocks: int = 0
    transactions: int = 0

    def install(self) -> None:
        commit: Callable[[Sequence[Proposal]], list[Receipt]] = self.writer.commit

        def profiled_commit(proposals: Sequence[Proposal]) -> list[Receipt]:
            started = time.perf_counter()
            if self.profiler is not None:
                self.profiler.start()
            try:
                return commit(proposals)
            finally:
                if self.profiler is not None:
                    self.profiler.stop()
                self.busy_s += time.perf_counter() - started
                self.blocks += 1
                self.transactions += len(proposals)

        # An instance attribute shadows the method, for this ledger only.
        self.writer.commit = profiled_commit


def new_profiler() -> Profiler:
    return Profiler(interval=SAMPLE_INTERVAL_S, async_mode="disabled")


async def profiled_run(
    url: str, submitters: int, duration_s: float, loop_profiler: Profiler | None
) -> tuple[LoadSample, CommitThreadProfile]:
    """One closed-loop run; without a loop profiler, nothing is profiled, only timed."""
    ledger = open_ledger(url)
    channel = ledger.channel(CHANNEL)
    commits = CommitThreadProfile(channel.writer, new_profiler() if loop_profiler else None)
    commits.install()
    try:
        if loop_profiler is not None:
            loop_profiler.start()
        sample = await run_closed_loop(
            channel, submitters, warmup_s=0.0, duration_s=duration_s, tx_prefix="profile"
        )
        if loop_profiler is not None:
            loop_profiler.stop()
    finally:
        await ledger.aclose()
    return sample, commits


def summary(sample: LoadSample, commits: CommitThreadProfile, duration_s: float) -> str:
    blocks = max(commits.blocks, 1)
    cycle_ms = duration_s / blocks * 1000
    commit_ms = commits.busy_s / blocks * 1000
    return (
        f"{sample.tx_per_s:,.0f} tx/s, p50 {sample.p50_ms:.2f} ms, "
        f"p99 {sample.p99_ms:.2f} ms\n"
        f"{commits.blocks} blocks, {commits.transactions / blocks:.0f} tx per block; "
        f"a block every {cycle_ms:.2f} ms, of which {commit_ms:.2f} ms in ChainWriter.commit "
        f"(commit thread busy {commits.busy_s / duration_s:.0%} of the run)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backend", choices=BACKENDS, default="sqlite")
    parser.add_argument("--submitters", type=int, default=256)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--show-all", action="store_true", help="keep library frames")
    parser.add_argument(
        "--timing-only",
        action="store_true",
        help="no profiler: only how a block's cycle divides, without profiling overhead",
    )
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    servers = Servers(postgres_url=args.postgres_url, redis_url=args.redis_url)
    loop_profiler = None if args.timing_only else new_profiler()
    with scratch_store(args.backend, servers) as scratch:
        sample, commits = asyncio.run(
            profiled_run(scratch.url, args.submitters, args.duration, loop_profiler)
        )
    print(f"# {args.backend}, {args.submitters} submitters, {args.duration:g} s")
    print(summary(sample, commits, args.duration))
    for title, profiler in (("event loop", loop_profiler), ("commit thread", commits.profiler)):
        if profiler is not None:
            print(f"\n## {title}\n")
            print(profiler.output_text(unicode=True, color=False, show_all=args.show_all))
    return 0


if __name__ == "__main__":
    sys.exit(main())
