"""The floor of `healthledger verify`: each piece a check from block 0 cannot do without, timed
alone over every transaction of `bench.verify`'s own ledger; their sum is the least CPU time a
transaction can cost any check of that ledger in one Python process.

The ledger is bench.verify's (--transactions one-key transactions, --block per block, made once
or kept in --ledger-dir). Each run goes over the whole ledger in the chunks a check reads
(about 2,000 transactions), doing each piece for a chunk the cheapest way this Python has and
nothing else, timed alone between two readings of time.process_time, its data as fresh in
the caches as in a check, with the cyclic garbage collector off (its passes over every object
of the process are avoidable: a check's objects hold no cycles and go with their chunk);
figures are medians over --repeats runs of the CPU µs per transaction. The pieces:

- the blocks' headers and transaction texts read from the store (`read_blocks`, in the chunks
  a check reads);
- the JSON parse of each text, by the fastest parser installed: json's scanner (which
  `records._parsed` runs), msgspec's and orjson's decoders when they are installed (orjson's
  reads an integer beyond 64 bits as a float: a check would need a guard, not timed here);
- SHA-256 of each text;
- the Merkle tree: each leaf's hash and the nodes it completes;
- each write-set commitment's SHA-256 (of the salt and the write-set's text);
- one replay write per key into the check's temporary database (its world-state row and its
  history entry, with `DiskReplay.end_chunk`'s statements, a chunk at a time);
- the stored world state and history read into that database (`DiskReplay.copy_stored`:
  SQLite copies them, the ledger file attached).

The same check needs more, timed here as well and added in a second sum: each block's data
hash and header hash, the canonical text of each write-set (what its commitment is over,
encoded from the parsed values), the stored tree nodes read and compared with the rebuilt
ones, and the comparison of stored and replayed rows in SQL. A check of the ledger as
`verify_channel` makes it, in a child process as bench.verify runs it, is timed beside them.

Two processes on 2 cores could at best halve the wall time of either sum, each checking part
of the blocks (the second from the tree's right edge and the versions stored at the split,
as `verify_channel_since` starts from an earlier tip): the CPU time does not shrink, and
the second process's start (its interpreter and imports, timed here too) is half paid for.
"""

from __future__ import annotations

import gc
import hashlib
import importlib.util
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ledger_backends import open_store
from ledger_backends.hashing import block_hash, commitment, data_hash_of, parsed_canonical_json
from ledger_backends.merkle import CompactRange, NodeId, leaf_hash
from ledger_backends.records import Block, _scan_once, object_text, value_texts
from ledger_backends.sqlite import SQLiteStore
from ledger_backends.verify import VERIFY_CHUNK_TRANSACTIONS, _TreeCheck
from ledger_backends.verify_disk import REPLAY_HISTORY_WRITE, REPLAY_STATE_WRITE, DiskReplay

from . import harness
from .harness import Result, log, median
from .verify import ledger, run_check

FLOOR = (
    "read_blocks: headers and transaction texts",
    "JSON parse, the fastest parser",
    "SHA-256 of each text",
    "Merkle leaf and nodes",
    "write-set commitment: SHA-256",
    "replay writes: one state row and one history entry per key",
    "stored state and history: copied by SQLite",
)
CHECK_NEEDS = (
    "data hash and header hash, per block",
    "write-set canonical text, from the parsed values",
    "stored tree nodes: read and compared",
    "the comparison, in SQL",
)


def arguments() -> Any:
    found = harness.parser(__doc__.splitlines()[0], repeats=5, duration=1.0, warmup=0.0)
    found.add_argument("--transactions", type=int, default=200_000, help="bench.verify's ledger")
    found.add_argument("--block", type=int, default=500, help="transactions per block: 500")
    found.add_argument("--ledger-dir", type=Path, required=True, help="where the ledger is kept")
    return found


class Spent:
    """CPU seconds by piece, each timed between two readings of time.process_time."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.last = time.process_time()

    def start(self) -> None:
        self.last = time.process_time()

    def took(self, piece: str) -> None:
        now = time.process_time()
        self.seconds[piece] = self.seconds.get(piece, 0.0) + now - self.last
        self.last = now


def json_parsers() -> dict[str, Callable[[str], Any]]:
    """The JSON parsers to time: json's scanner, as `records._parsed` reads stored texts, and
    msgspec's and orjson's when they are installed."""
    parsers: dict[str, Callable[[str], Any]] = {"JSON parse: json's scanner": _scanned}
    if importlib.util.find_spec("msgspec") is not None:
        import msgspec

        parsers["JSON parse: msgspec"] = msgspec.json.Decoder().decode
    if importlib.util.find_spec("orjson") is not None:
        import orjson

        parsers["JSON parse: orjson"] = orjson.loads
    return parsers


def _scanned(text: str) -> Any:
    return _scan_once(text, 0)[0]


def one_run(store: SQLiteStore, channel: str, per_read: int) -> tuple[int, dict[str, float]]:
    """Every piece over the whole ledger, a chunk of `per_read` blocks at a time as a check
    reads them, each piece's data as fresh as it is in a check; the transactions seen and the
    CPU seconds of each piece."""
    spent = Spent()
    parsers = json_parsers()
    height = store.tip(channel).height
    edge = CompactRange()
    size = 0
    with DiskReplay() as replay:
        db = replay._db  # the check's temporary database, written as `end_chunk` writes it
        for first in range(0, height, per_read):
            spent.start()
            blocks = store.read_blocks(channel, first, per_read)
            spent.took("read_blocks: headers and transaction texts")
            texts = [text for block in blocks for text in block.tx_texts]
            size += len(texts)
            spent.start()
            digests = [hashlib.sha256(text.encode()).digest() for text in texts]
            spent.took("SHA-256 of each text")
            start = 0
            for block in blocks:
                data_hash_of(digests[start : start + len(block.tx_texts)])
                start += len(block.tx_texts)
                block_hash(
                    block.number,
                    block.previous_hash,
                    block.data_hash,
                    block.timestamp,
                    block.tree_size,
                    block.tree_root,
                )
            spent.took("data hash and header hash, per block")
            for piece, decode in parsers.items():
                spent.start()
                raws = [decode(text) for text in texts]
                spent.took(piece)
            spent.start()
            values = [value_texts(raw["write_set"], parsed_canonical_json) for raw in raws]
            write_texts = [object_text(written) for written in values]
            spent.took("write-set canonical text, from the parsed values")
            for raw, text in zip(raws, write_texts, strict=True):
                commitment(raw["salt"], text)
            spent.took("write-set commitment: SHA-256")
            nodes: dict[NodeId, bytes] = {}
            start = 0
            for block in blocks:
                leaves = [leaf_hash(d) for d in digests[start : start + len(block.tx_texts)]]
                nodes |= _TreeCheck._append(edge, leaves)
                start += len(block.tx_texts)
            spent.took("Merkle leaf and nodes")
            stored = store.read_tree_nodes(channel, nodes)
            if any(stored.get(node) != digest for node, digest in nodes.items()):
                raise RuntimeError("a stored tree node differs from the rebuilt one")
            spent.took("stored tree nodes: read and compared")
            rows = []
            for block, index, raw, written in _placed(blocks, raws, values):
                tx_id, creator, stamp = raw["tx_id"], raw["creator"], raw["timestamp"]
                uid, msp = creator["uid"], creator["msp"]
                for key, value in written.items():
                    rows.append((key, block.number, index, tx_id, value, uid, msp, stamp))
            db.execute("BEGIN")
            db.executemany(REPLAY_STATE_WRITE, ((r[0], r[4], r[1], r[2]) for r in rows))
            db.executemany(REPLAY_HISTORY_WRITE, rows)
            db.execute("COMMIT")
            spent.took("replay writes: one state row and one history entry per key")
        spent.start()
        if not replay.copy_stored(store.sqlite_file_uri(), channel):
            raise RuntimeError("the stored rows could not be copied")
        spent.took("stored state and history: copied by SQLite")
        if replay.earliest_damage(set()) is not None:
            raise RuntimeError("the stored rows differ from the replayed ones")
        spent.took("the comparison, in SQL")
    return size, spent.seconds


def _placed(
    blocks: list[Block], raws: list[Any], values: list[dict[str, str | None]]
) -> Iterator[tuple[Block, int, Any, dict[str, str | None]]]:
    """Each transaction's block, index in it, parsed text and written values' texts."""
    position = 0
    for block in blocks:
        for index in range(len(block.tx_texts)):
            yield block, index, raws[position], values[position]
            position += 1


def process_start() -> float:
    """Wall seconds for a child interpreter to start and import what a check imports."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import ledger_backends.verify"], check=True)
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    args = harness.parse(arguments(), argv)
    from .ledger_workloads import CHANNEL

    args.ledger_dir.mkdir(parents=True, exist_ok=True)
    url = ledger(args.ledger_dir, args.transactions, args.block)
    environment = harness.environment(
        args,
        f"; {args.block} transactions per block",
        runs=f"{args.repeats}, each piece over the whole ledger once a run, medians",
    )
    store = open_store(url, create=False)
    assert isinstance(store, SQLiteStore)
    per_read = max(1, VERIFY_CHUNK_TRANSACTIONS // args.block)
    runs: dict[str, list[float]] = {}
    check: list[float] = []
    starts: list[float] = []
    try:
        for repeat in range(args.repeats):
            log(f"run {repeat + 1} of {args.repeats}")
            gc.disable()
            try:
                size, spent = one_run(store, CHANNEL, per_read)
            finally:
                gc.enable()
            for name, seconds in spent.items():
                runs.setdefault(name, []).append(seconds)
            outcome = run_check(url, -(-size // args.block))
            check.append(outcome["cpu_seconds"])
            starts.append(process_start())
    finally:
        store.close()
    us = {name: median(values) / size * 1e6 for name, values in runs.items()}
    parsers = [name for name in us if name.startswith("JSON parse: ")]
    us["JSON parse, the fastest parser"] = min(us[name] for name in parsers)
    floor = sum(us[name] for name in FLOOR)
    needed = floor + sum(us[name] for name in CHECK_NEEDS)
    actual = median(check) / size * 1e6
    start_us = median(starts) / size * 1e6
    rows = [f"{name} | {us[name]:.2f} | floor" for name in FLOOR if name in us]
    rows[1:2] = [f"{name} | {us[name]:.2f} | floor (the least of them)" for name in parsers]
    rows += [f"{name} | {us[name]:.2f} | the check needs it too" for name in CHECK_NEEDS]
    rows += [
        f"**floor: the pieces above marked floor** | **{floor:.2f}** | {1e6 / floor:,.0f} tx/s",
        f"**with what the check needs too** | **{needed:.2f}** | {1e6 / needed:,.0f} tx/s",
        f"the check as it is (`verify_channel`, a child process) | {actual:.2f} "
        f"| {1e6 / actual:,.0f} tx/s",
    ]
    # The second process starts while the first already checks: splitting the blocks so that
    # both end together, the wall time is (the work + the start) / 2.
    two = [
        f"{name} | {(us_tx + start_us) / 2:.2f} | {2e6 / (us_tx + start_us):,.0f}"
        for name, us_tx in (
            ("floor", floor),
            ("with what the check needs too", needed),
            ("the check as it is", actual),
        )
    ]
    body = [
        f"## Each piece alone, CPU µs per transaction ({size:,} transactions, one process)",
        "",
        *harness.table("piece | CPU µs/tx (median) | counted in", rows),
        "",
        "## Two processes on 2 cores, at best: each checks half the blocks",
        "",
        "The CPU time is the same or more. The second process starts (interpreter and imports: "
        f"{median(starts) * 1000:.0f} ms, {start_us:.2f} µs per transaction of this ledger) "
        "while the first already checks; with the blocks split so that both end together, the "
        "wall time per transaction is at best (CPU µs/tx + that start) / 2, nothing counted "
        "for handing over the tree's edge, the keys written and the comparison of the halves.",
        "",
        *harness.table("of | wall µs/tx, at best | tx/s, at best", two),
    ]
    results = [
        Result(
            "verify floor, one process, SQLite",
            "≥ 100,000 tx/s (≤ 10 µs/tx)",
            f"{floor:.1f} µs/tx floor ({needed:.1f} with the rest the check needs)",
            needed <= 10,
        )
    ]
    return harness.publish(
        "`healthledger verify`: the floor", environment, body, results, args.summary
    )


if __name__ == "__main__":
    sys.exit(main())
