"""Where a committed transaction's time goes: each step of the commit path, timed alone.

Each step is timed over blocks of --block transactions shaped as the closed-loop benchmark
makes them (ledger_workloads.update_proposal: one key read and written, a small value), in
one thread, with nothing else in the process; per step, the median over --repeats of the
microseconds per transaction. Together the steps are the least CPU time a transaction of
`ledger_commit`'s 256-submitter run can cost in this Python, whatever the batching: the floor
a rate target has to fit under (1,000,000 / floor µs = the most transactions per second one
core can commit). The steps:

- client: the benchmark's submitter makes its proposal (salt from `secrets`, timestamp,
  args digest, the Proposal's own checks), measured as a whole and in its parts;
- asyncio: a task awaits a future that a block's completion resolves, and the committer
  queues the proposal (create_future, append, set_result, the task's wake-up);
- ChainWriter.build: MVCC validation, canonical JSON and write-set commitment
  (`Proposal.canonical_parts`), transaction digests, Merkle leaves and nodes, state, history
  and receipts, the block's hashes; measured whole and in its parts;
- memory store: MemoryStore.append_if_tip of the built block;
- thread hand-off: `asyncio.to_thread` of one block, divided by the block's size.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from ledger_backends import Proposal, Receipt, Tip, Validation
from ledger_backends.chain import ChainWriter
from ledger_backends.hashing import canonical_json, new_salt, sha256_hex, transaction_digests
from ledger_backends.memory import MemoryStore
from ledger_backends.merkle import CompactRange, leaf_hash
from ledger_backends.records import Block, format_timestamp, utc_now

from . import harness
from .harness import Result, median
from .ledger_workloads import CHANNEL, CREATOR, SMALL_VALUE, update_proposal


def arguments() -> Any:
    found = harness.parser(__doc__.splitlines()[0], repeats=5, duration=0.3, warmup=0.0)
    found.add_argument("--block", type=int, default=256, help="transactions a block: 256")
    return found


def per_tx_us(step: Callable[[], object], size: int, duration_s: float) -> float:
    """Microseconds per transaction of `step`, which handles `size` transactions a call."""
    calls, started = 0, time.process_time()
    while calls == 0 or time.process_time() - started < duration_s:
        step()
        calls += 1
    return (time.process_time() - started) * 1e6 / (calls * size)


def proposals(size: int, seq: int = 0) -> list[Proposal]:
    keys = [f"bench/record-{i:04d}" for i in range(size)]
    return [update_proposal(CHANNEL, key, None, seq, SMALL_VALUE, "bench") for key in keys]


def asyncio_round(size: int) -> Callable[[], object]:
    """One block's worth of submitter wake-ups: futures queued, resolved, awaited by tasks."""

    async def block() -> None:
        loop = asyncio.get_running_loop()
        pending: list[tuple[int, asyncio.Future[Receipt]]] = []

        async def submitter(n: int) -> Receipt:
            future: asyncio.Future[Receipt] = loop.create_future()
            pending.append((n, future))
            return await future

        tasks = [asyncio.ensure_future(submitter(n)) for n in range(size)]
        await asyncio.sleep(0)
        for n, future in pending:
            future.set_result(Receipt(f"tx-{n}", 0, n, Validation.VALID))
        await asyncio.gather(*tasks)

    return lambda: asyncio.run(block())


def steps(size: int) -> dict[str, Callable[[], object]]:
    """Each measured step, as a call that handles `size` transactions."""
    batch = proposals(size)
    store, writer = MemoryStore(), ChainWriter(MemoryStore(), CHANNEL)
    commit, _ = writer.build(Tip.empty(), batch)
    texts = list(commit.block.tx_texts)
    digests = transaction_digests(texts)
    stamp = format_timestamp(utc_now())
    salts = [new_salt() for _ in range(size)]
    fields: dict[str, Any] = {
        "channel": CHANNEL,
        "contract": "bench",
        "function": "updateRecord",
        "creator": CREATOR,
        "timestamp": stamp,
    }

    def tree() -> object:
        edge = CompactRange()
        return [edge.append(leaf_hash(digest)) for digest in digests]

    def append() -> object:
        nonlocal store
        store = MemoryStore()
        return store.append_if_tip(CHANNEL, Tip.empty(), commit)

    async def hand_off() -> None:
        await asyncio.to_thread(len, batch)

    async def hand_offs() -> None:
        for _ in range(50):
            await hand_off()

    return {
        "client: update_proposal, whole": lambda: proposals(size),
        "client: new_salt (secrets)": lambda: [new_salt() for _ in range(size)],
        "client: format_timestamp(utc_now())": lambda: [
            format_timestamp(utc_now()) for _ in range(size)
        ],
        "client: args digest (canonical JSON + SHA-256)": lambda: [
            sha256_hex(canonical_json(["k", n])) for n in range(size)
        ],
        "client: Proposal(...) with its salt check": lambda: [
            Proposal(
                tx_id=f"t{n}",
                args_digest=stamp,
                salt=salts[n],
                read_set={"k": None},
                write_set={"k": SMALL_VALUE},
                **fields,
            )
            for n in range(size)
        ],
        "asyncio: queue, resolve and wake a submitter": asyncio_round(size),
        "build: ChainWriter.build, whole": lambda: writer.build(Tip.empty(), batch),
        "build: canonical_parts (JSON, commitment)": lambda: [
            p.canonical_parts(Validation.VALID) for p in batch
        ],
        "build: transaction digests": lambda: transaction_digests(texts),
        "build: Merkle leaves and nodes": tree,
        "build: block header hashes": lambda: Block.build(
            0, "0" * 64, stamp, tuple(texts), (size, "0" * 64), digests
        ),
        "store: MemoryStore.append_if_tip": append,
        "thread hand-off (asyncio.to_thread), per block ÷ size": lambda: asyncio.run(hand_offs()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = harness.parse(arguments(), argv)
    found = steps(args.block)
    sizes = {name: args.block for name in found}
    sizes["thread hand-off (asyncio.to_thread), per block ÷ size"] = 50 * args.block
    runs: dict[str, list[float]] = {name: [] for name in found}
    for _ in range(args.repeats):
        for name, step in found.items():
            runs[name].append(per_tx_us(step, sizes[name], args.duration))
    us = {name: median(values) for name, values in runs.items()}
    rows = [f"{name} | {value:.2f}" for name, value in us.items()]
    wholes = (
        "client: update_proposal, whole",
        "asyncio: queue, resolve and wake a submitter",
        "build: ChainWriter.build, whole",
        "store: MemoryStore.append_if_tip",
        "thread hand-off (asyncio.to_thread), per block ÷ size",
    )
    floor = sum(us[name] for name in wholes)
    rows.append(f"**floor: client + asyncio + build + store + hand-off** | **{floor:.2f}**")
    rate = 1e6 / floor
    body = [
        "## Per-transaction cost of each step",
        "",
        *harness.table("step | µs per transaction (median)", rows),
        "",
        f"One core at this floor commits at most {rate:,.0f} tx/s on memory.",
    ]
    environment = harness.environment(args, f"; blocks of {args.block} transactions")
    results = [Result("commit floor, memory", "≤ 20 µs/tx", f"{floor:.1f} µs/tx", floor <= 20)]
    return harness.publish("Commit path floor", environment, body, results, args.summary)


if __name__ == "__main__":
    sys.exit(main())
