"""The growth check's grown ledger: filled fast, measured in a process of its own.

Every fill transaction creates a new key (reading it as absent), so after N
transactions the channel holds N/500 blocks, N transaction records, N state
keys and N history entries: every table, hash and index the commit path
touches has grown by N. The group committer and asyncio are skipped; the same
ChainWriter.commit the committer calls does the validation, hashing and
compare-and-append.

The grown ledger lives in a worker process (`serve_grown_ledger`) that the
benchmark drives line by line (`GrownLedgerProcess`). The empty-ledger runs it
is compared with are fresh processes too, so both sides start alike: a
long-running benchmark process, carrying the heap of everything it ran before,
is several per cent slower than a fresh one, enough to blur a 10% target. For
memory:// the worker's heap holds the grown ledger itself, as a server's would.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any

from closed_loop import CHANNEL, LoadSample, update_proposal

from ledger_backends import LedgerStore, Validation, open_store
from ledger_backends.chain import ChainWriter

FILL_BLOCK_SIZE = 500
PROGRESS_EVERY_S = 15.0


@dataclass(frozen=True)
class FillResult:
    """How many transactions were committed, and whether the time budget cut the fill short."""

    requested: int
    committed: int
    seconds: float

    @property
    def complete(self) -> bool:
        return self.committed >= self.requested

    @property
    def tx_per_s(self) -> float:
        return self.committed / self.seconds if self.seconds else 0.0


def fill_ledger(
    store: LedgerStore,
    total: int,
    *,
    budget_s: float,
    progress: Callable[[int, float], None],
    first_key: int = 0,
) -> FillResult:
    """Commit `total` one-key transactions in blocks of FILL_BLOCK_SIZE, or stop after budget_s.

    Keys are numbered from `first_key`, so a later fill of the same ledger continues
    with new keys.
    """
    writer = ChainWriter(store, CHANNEL)
    committed = 0
    started = last_report = time.perf_counter()
    while committed < total and time.perf_counter() - started < budget_s:
        size = min(FILL_BLOCK_SIZE, total - committed)
        _commit_block(writer, first_key + committed, size)
        committed += size
        now = time.perf_counter()
        if now - last_report >= PROGRESS_EVERY_S:
            progress(committed, now - started)
            last_report = now
    return FillResult(total, committed, time.perf_counter() - started)


def _commit_block(writer: ChainWriter, first: int, size: int) -> None:
    proposals = [
        update_proposal(f"fill/record-{n:08d}", None, n, "fill") for n in range(first, first + size)
    ]
    receipts = writer.commit(proposals)
    if any(receipt.validation is not Validation.VALID for receipt in receipts):
        raise RuntimeError("A fill transaction was marked as a conflict; the fill keys collide.")


def serve_grown_ledger(
    url: str, run: Callable[[LedgerStore, str], LoadSample], commands: Iterable[str], out: IO[str]
) -> None:
    """Own the ledger at `url`; answer each command line with one JSON line.

    `fill FIRST_KEY COUNT BUDGET_S` answers a FillResult, `run TAG` a LoadSample
    of `run(store, TAG)`; the worker ends when its input does.
    """
    store = open_store(url)
    try:
        for line in commands:
            command, *args = line.split()
            answer: FillResult | LoadSample
            if command == "fill":
                answer = _fill_for_command(store, int(args[0]), int(args[1]), float(args[2]))
            elif command == "run":
                answer = run(store, args[0])
            else:
                raise ValueError(f"Unknown growth worker command {command!r}.")
            print(json.dumps(dataclasses.asdict(answer)), file=out, flush=True)
    finally:
        store.close()


def _fill_for_command(
    store: LedgerStore, first_key: int, count: int, budget_s: float
) -> FillResult:
    def report(done: int, seconds: float) -> None:
        print(
            f"[growth worker] {first_key + done:,} filled, {seconds:.0f} s into this fill",
            file=sys.stderr,
            flush=True,
        )

    return fill_ledger(store, count, budget_s=budget_s, first_key=first_key, progress=report)


class GrownLedgerProcess:
    """Drives a `serve_grown_ledger` worker started with `command`; a context manager."""

    def __init__(self, command: list[str]) -> None:
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def fill(self, first_key: int, count: int, budget_s: float) -> FillResult:
        return FillResult(**self._ask(f"fill {first_key} {count} {budget_s}"))

    def run(self, tag: str) -> LoadSample:
        return LoadSample(**self._ask(f"run {tag}"))

    def _ask(self, command: str) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(command + "\n")
        self._process.stdin.flush()
        answer = self._process.stdout.readline()
        if not answer:
            raise RuntimeError(f"The growth worker stopped while asked {command!r} (see above).")
        result: dict[str, Any] = json.loads(answer)
        return result

    def close(self) -> None:
        """End the worker and wait, so that its store is closed before it is removed.

        An idle worker ends at the end of its input; a busy one (the benchmark is
        being interrupted) gets SIGTERM, which unwinds it through its clean-up.
        """
        if self._process.stdin is not None:
            self._process.stdin.close()
        if self._ended_within(10):
            return
        self._process.terminate()
        if self._ended_within(30):
            return
        self._process.kill()
        self._process.wait()

    def _ended_within(self, seconds: float) -> bool:
        try:
            self._process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return False
        return True

    def __enter__(self) -> GrownLedgerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
