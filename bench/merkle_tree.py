"""The cost of the Merkle tree: ledger commits/s with the tree against without, and inclusion
proofs/s served from a large ledger, each against a baseline measured in the same run.

1. Commits (--backends): --submitters closed loops of one-key commits
   (ledger_workloads.commits) on a fresh scratch store per run, with the chain writer keeping
   the tree (as the server does) or not (`ChainWriter.keep_tree = False`, blocks without tree
   fields or nodes). The two alternate per repeat; tx/s counts commits returned in the window.
2. Proofs: a SQLite ledger of --transactions transactions (one key written each, --block
   transactions per block, committed straight through the chain writer; made once and kept
   at --ledger-file when given), then, in this one process and thread, inclusion proofs of
   random transactions (`ChannelLedger.proofs.inclusion`, as the GraphQL resolver asks for
   them) for --duration seconds, against point reads of random keys of the same ledger
   (`read_state`) in the same run. Proof sizes are printed too.

Targets: with the tree ≥ 90% of the commit rate without, on every backend; ≥ 10,000 inclusion
proofs/s from a ledger of 1,000,000 transactions (SQLite, one worker, in-process).
"""

from __future__ import annotations

import asyncio
import gc
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ledger_backends import ChannelLedger, Creator, Proposal, open_ledger
from ledger_backends.testing import scratch_url

from . import harness
from .harness import Result, log, median
from .ledger_workloads import CHANNEL, Sample, commits

COMMIT_TARGET = 0.90
PROOFS_TARGET = 10_000
CREATOR = Creator(uid="bench", msp="HospitalMSP")


def arguments() -> Any:
    found = harness.parser(__doc__.splitlines()[0], repeats=5, duration=2.0, warmup=0.5)
    backends = harness.names(harness.BACKENDS)
    every = ",".join(harness.BACKENDS)
    found.add_argument("--backends", type=backends, default=harness.BACKENDS, help=every)
    found.add_argument("--submitters", type=int, default=256, help="commits: 256")
    found.add_argument("--transactions", type=int, default=1_000_000, help="proofs: 1,000,000")
    found.add_argument("--block", type=int, default=1000, help="proofs: transactions per block")
    found.add_argument("--ledger-file", type=Path, help="proofs: keep the ledger here")
    return found


# -- commits ------------------------------------------------------------------------------------


def commit_run(backend: str, tree: bool, args: Any) -> Sample:
    """One window of closed-loop commits on a fresh store, keeping the tree or not."""
    with scratch_url(backend) as url:
        gc.collect()
        ledger = open_ledger(url)
        ledger.channel(CHANNEL).writer.keep_tree = tree

        async def run() -> Sample:
            try:
                window = {"warmup_s": args.warmup, "duration_s": args.duration}
                return await commits(ledger, args.submitters, **window)
            finally:
                await ledger.aclose()

        return asyncio.run(run())


def commit_report(args: Any) -> tuple[list[str], list[Result]]:
    samples: dict[tuple[str, bool], list[Sample]] = {}
    for backend in args.backends:
        for repeat in range(args.repeats):
            for tree in harness.alternating((True, False), repeat):
                sample = commit_run(backend, tree, args)
                samples.setdefault((backend, tree), []).append(sample)
                how = "with" if tree else "without"
                log(f"[{backend}] commits {how} the tree: {sample.ops_per_s:,.0f} tx/s")
    rows, results = [], []
    for backend in args.backends:
        runs = [samples[backend, tree] for tree in (True, False)]
        with_tree, without = (median(s.ops_per_s for s in side) for side in runs)
        cpu = [median(s.cpu_ms_per_op * 1000 for s in side) for side in runs]
        ratio = with_tree / without
        rows.append(
            f"{backend} | {args.submitters} | {with_tree:,.0f} | {without:,.0f} | {ratio:.0%}"
            f" | {cpu[0]:,.0f} · {cpu[1]:,.0f}"
        )
        label = f"commits with the tree ÷ without, {backend}"
        measured = f"{ratio:.0%} of {without:,.0f} tx/s"
        results.append(Result(label, f"≥ {COMMIT_TARGET:.0%}", measured, ratio >= COMMIT_TARGET))
    header = (
        "backend | submitters | with tree tx/s | without tx/s | with ÷ without"
        " | CPU µs/tx: with · without"
    )
    return ["## Commits with and without the tree", "", *harness.table(header, rows)], results


# -- proofs -------------------------------------------------------------------------------------


def tx_id(number: int) -> str:
    return f"bench-tx-{number:08d}"


def proposal(number: int) -> Proposal:
    return Proposal(
        tx_id=tx_id(number),
        channel=CHANNEL,
        contract="bench",
        function="write",
        args_digest="0" * 64,
        creator=CREATOR,
        timestamp="2026-12-07T00:00:00.000000Z",
        write_set={f"bench/key-{number:08d}": {"n": number}},
    )


def filled(channel: ChannelLedger, transactions: int, block: int) -> None:
    """Append blocks of `block` transactions until the channel holds `transactions`."""
    head = channel.proofs.head().size if channel.tip().height else 0
    started = time.perf_counter()
    for first in range(head, transactions, block):
        channel.writer.commit([proposal(n) for n in range(first, min(first + block, transactions))])
        if first // block % 100 == 0:
            log(f"ledger: {first + block:,} transactions ({time.perf_counter() - started:.0f} s)")


def rate(operation: Any, seconds: float) -> float:
    """Calls of `operation` per second over `seconds`, one after another."""
    calls, started = 0, time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for _ in range(100):
            operation()
        calls += 100
    return calls / (time.perf_counter() - started)


def proof_report(args: Any) -> tuple[list[str], list[Result]]:
    if args.ledger_file is not None:
        return _proof_report(args, f"sqlite:///{args.ledger_file}")
    with scratch_url("sqlite") as url:
        return _proof_report(args, url)


def _proof_report(args: Any, url: str) -> tuple[list[str], list[Result]]:
    ledger = open_ledger(url)
    try:
        channel = ledger.channel(CHANNEL)
        filled(channel, args.transactions, args.block)
        size = channel.proofs.head().size
        pick = random.Random(7)

        def prove() -> None:
            channel.proofs.inclusion(tx_id(pick.randrange(size)))

        def read() -> None:
            channel.store.read_state(CHANNEL, f"bench/key-{pick.randrange(size):08d}")

        proofs: list[float] = []
        reads: list[float] = []
        for repeat in range(args.repeats):
            for name in harness.alternating(("proofs", "reads"), repeat):
                measured = rate(prove if name == "proofs" else read, args.duration)
                (proofs if name == "proofs" else reads).append(measured)
                log(f"{name}: {measured:,.0f}/s")
        lengths = [len(channel.proofs.inclusion(tx_id(pick.randrange(size))).hashes)]
        lengths += [len(channel.proofs.consistency(size // 3, size).hashes)]
    finally:
        ledger.close()
    proof_rate, read_rate = median(proofs), median(reads)
    rows = [
        f"{size:,} | {proof_rate:,.0f} | {read_rate:,.0f} | {proof_rate / read_rate:.0%}"
        f" | {lengths[0]} · {lengths[1]}"
    ]
    header = (
        "transactions | inclusion proofs/s | point reads/s | proofs ÷ reads"
        " | hashes per proof: inclusion · consistency"
    )
    label = f"inclusion proofs/s, SQLite, {size:,} transactions, one thread"
    met = proof_rate >= PROOFS_TARGET and size >= 1_000_000
    result = Result(label, f"≥ {PROOFS_TARGET:,} at 1,000,000", f"{proof_rate:,.0f}/s", met)
    body = ["## Inclusion proofs from a large ledger", "", *harness.table(header, rows)]
    return body, [result]


def main(argv: Sequence[str] | None = None) -> int:
    args = harness.parse(arguments(), argv)
    harness.exit_on_sigterm()
    environment = harness.environment(args, software=harness.versions("SQLAlchemy"))
    commit_body, results = commit_report(args)
    proof_body, proof_results = proof_report(args)
    title = "The Merkle tree: commits with and without it, proofs from a large ledger"
    body = [*commit_body, "", *proof_body]
    return harness.publish(title, environment, body, [*results, *proof_results], args.summary)


if __name__ == "__main__":
    sys.exit(main())
