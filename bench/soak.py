"""Soak: the whole story at a fixed rate against a real `healthledger serve`, interval by interval.

A fresh demo network (devkit.devnet) and `healthledger serve` on it (devkit.serve_process,
--workers, an SQLite ledger in a temporary directory unless --ledger names another).
--families concurrent families each walk the whole story over and over (register a child,
sign, accept, three card updates, read the card and its history, apply to school-a, accept,
request a report, write it, approve it, school-a reads the content), each operation as its
user over HTTPS with that user's client certificate. A shared token bucket starts at most
--rate operations a second, so the offered load is fixed.

Per interval (--repeats intervals of --duration seconds; --warmup is not used):
operations completed, errors, p50 and p99 latency, and the resident memory of the serve
process tree at the interval's end; then each operation's p99 in the first and the last
third of the intervals, so that one whose latency grows with the data stands out. An error
is anything but HTTP 200 with the expected data and no GraphQL errors. Memory growth is the
last interval's RSS minus the first's.

Targets (issue 21): 0 errors; memory growth under 20 MB over 10 minutes (the defaults: 10 x
60 s); a flat p99: the median p99 of the last third of the intervals at most 1.5 times that of
the first third (a server that slows as its ledger grows fails it).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devkit.devnet import DEMO_USERS, ensure_dev_network, user_context
from devkit.serve_process import ServeProcess

from . import harness
from .harness import Result, log, median, percentile

GROWTH_TARGET_MB, GROWTH_SPAN_S = 20.0, 600.0
FLAT_P99 = 1.5  # the last third's median p99 over the first third's, at most
REGISTER = "mutation($input: RegisterChildInput!) { registerChild(input: $input) { id } }"
SIGN = 'mutation($c: ID!) { signAgreement(childId: $c, doctorUid: "dr-house") { id } }'
ACCEPT = "mutation($id: ID!) { acceptAgreement(id: $id) { id } }"
UPDATE = """mutation($c: ID!, $version: Int!, $patch: MedicalCardPatch!) {
  updateMedicalCard(childId: $c, expectedVersion: $version, patch: $patch) { version } }"""
CARD = "query($c: ID!) { medicalCard(childId: $c) { version allergies } }"
HISTORY = """
query($c: ID!) { medicalCardHistory(childId: $c) { edges { node { version blockNumber } } } }"""
APPLY = 'mutation($c: ID!) { createAdmissionRequest(childId: $c, school: "school-a") { id } }'
ACCEPT_ADMISSION = "mutation($id: ID!) { acceptAdmissionRequest(id: $id) { id } }"
REQUEST = "mutation($a: ID!) { createReportRequest(admissionRequestId: $a) { id } }"
WRITE = 'mutation($r: ID!) { createReport(reportRequestId: $r, conclusion: "Fit.") { id } }'
APPROVE = 'mutation($id: ID!) { approveReport(id: $id, schools: ["school-a"]) { id } }'
READ = "query($id: ID!) { report(id: $id) { status content { conclusion } } }"


def arguments() -> Any:
    found = harness.parser(__doc__.splitlines()[0], repeats=10, duration=60.0, warmup=0.0)
    found.add_argument("--rate", type=float, default=20.0, help="operations started per second")
    found.add_argument("--families", type=int, default=16, help="concurrent story walkers")
    found.add_argument("--workers", type=int, default=1, help="serve's worker processes")
    found.add_argument("--ledger", help="ledger URL (default: SQLite in a temporary directory)")
    return found


class UnexpectedAnswerError(Exception):
    pass


@dataclass
class Interval:
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    rss_mb: float = 0.0
    by_operation: dict[str, list[float]] = field(default_factory=dict)


class Traffic:
    """The clients, the token bucket and the tallies of the current interval."""

    def __init__(self, clients: dict[str, httpx.AsyncClient], rate: float) -> None:
        self.clients, self.interval = clients, 1.0 / rate
        self.next_start = time.monotonic()
        self.intervals = [Interval()]

    async def call(self, uid: str, document: str, **variables: Any) -> Any:
        self.next_start = max(self.next_start + self.interval, time.monotonic())
        await asyncio.sleep(self.next_start - time.monotonic())
        interval, started = self.intervals[-1], time.perf_counter()
        try:
            answer = await self.clients[uid].post(
                "/graphql", json={"query": document, "variables": variables}
            )
            body = answer.json() if answer.status_code == 200 else {}
            if body.get("errors") or not body.get("data"):
                raise UnexpectedAnswerError(f"HTTP {answer.status_code}: {answer.text[:200]}")
        except (httpx.HTTPError, UnexpectedAnswerError) as exc:
            interval.errors.append(f"{uid}: {exc}")
            raise UnexpectedAnswerError(str(exc)) from None
        elapsed_ms = (time.perf_counter() - started) * 1000
        interval.latencies_ms.append(elapsed_ms)
        interval.by_operation.setdefault(operation_of(document), []).append(elapsed_ms)
        return body["data"]

    def wrong(self, what: str) -> UnexpectedAnswerError:
        self.intervals[-1].errors.append(what)
        return UnexpectedAnswerError(what)


def operation_of(document: str) -> str:
    """The document's first field: the operation's name (`registerChild`, `report`, ...)."""
    found = re.search(r"\{\s*(\w+)", document)
    return found.group(1) if found else document


async def story(traffic: Traffic, name: str) -> None:
    call = traffic.call
    child = (await call("alice", REGISTER, input={"fullName": name, "birthDate": "2019-05-14"}))[
        "registerChild"
    ]["id"]
    agreement = (await call("alice", SIGN, c=child))["signAgreement"]["id"]
    await call("dr-house", ACCEPT, id=agreement)
    for version in (1, 2, 3):
        patch = {"allergies": [f"pollen-{version}"], "healthGroup": version}
        await call("dr-house", UPDATE, c=child, version=version, patch=patch)
    card = (await call("alice", CARD, c=child))["medicalCard"]
    history = (await call("alice", HISTORY, c=child))["medicalCardHistory"]["edges"]
    if card["version"] != 4 or [edge["node"]["version"] for edge in history] != [4, 3, 2, 1]:
        raise traffic.wrong(f"card {card}, history {history}")
    admission = (await call("alice", APPLY, c=child))["createAdmissionRequest"]["id"]
    await call("school-a-office", ACCEPT_ADMISSION, id=admission)
    request = (await call("school-a-office", REQUEST, a=admission))["createReportRequest"]["id"]
    report = (await call("dr-house", WRITE, r=request))["createReport"]["id"]
    await call("alice", APPROVE, id=report)
    if (await call("school-a-office", READ, id=report))["report"]["content"] is None:
        raise traffic.wrong("school-a could not read the approved report")


async def family(traffic: Traffic, number: int, stop: asyncio.Event) -> None:
    """One family's story again and again until told to stop; an error restarts the story."""
    for round_ in itertools.count():
        if stop.is_set():
            return
        try:
            await story(traffic, f"Soak Child {number}-{round_}")
        except UnexpectedAnswerError:
            continue


async def soak(network: Path, serve: ServeProcess, args: Any) -> list[Interval]:
    assert serve.process is not None
    clients = {
        uid: httpx.AsyncClient(
            base_url=serve.base_url,
            verify=user_context(network, org, uid),
            timeout=30,
            limits=httpx.Limits(max_connections=args.families),
        )
        for org, uid, _, _ in DEMO_USERS
    }
    traffic = Traffic(clients, args.rate)
    stop = asyncio.Event()
    families = [asyncio.create_task(family(traffic, n, stop)) for n in range(args.families)]
    try:
        for number in range(1, args.repeats + 1):
            await asyncio.sleep(args.duration)
            interval = traffic.intervals[-1]
            interval.rss_mb = harness.rss_mb(harness.process_tree(serve.process.pid))
            p99 = percentile(interval.latencies_ms, 0.99)
            log(
                f"interval {number}: {len(interval.latencies_ms)} operations, "
                f"{len(interval.errors)} errors, p99 {p99:.1f} ms, RSS {interval.rss_mb:.1f} MB"
            )
            log("\n".join(f"  error: {error}" for error in interval.errors[:3]))
            if number < args.repeats:
                traffic.intervals.append(Interval())
        stop.set()
        # Stories under way finish; their operations count in the last interval's totals.
        await asyncio.wait_for(asyncio.gather(*families), timeout=120)
    finally:
        for task in families:
            task.cancel()
        for client in clients.values():
            await client.aclose()
    return traffic.intervals


def report(intervals: list[Interval], args: Any) -> tuple[list[str], list[Result]]:
    rows = [
        f"{n} | {len(i.latencies_ms)} | {len(i.errors)} | {percentile(i.latencies_ms, 0.5):.1f}"
        f" | {percentile(i.latencies_ms, 0.99):.1f} | {i.rss_mb:.1f}"
        for n, i in enumerate(intervals, 1)
    ]
    errors = sum(len(i.errors) for i in intervals)
    operations = sum(len(i.latencies_ms) for i in intervals)
    growth = intervals[-1].rss_mb - intervals[0].rss_mb
    span = f"over {args.repeats * args.duration:g} s"
    total = f"{operations:,} operations ({operations / (args.repeats * args.duration):.1f}/s)"
    p99 = median(percentile(i.latencies_ms, 0.99) for i in intervals)
    results = [
        Result("soak: errors", "0", f"{errors} in {total}", errors == 0),
        Result(
            "soak: server RSS growth",
            f"< {GROWTH_TARGET_MB:g} MB over {GROWTH_SPAN_S:g} s",
            f"{growth:+.1f} MB {span} (p99 median {p99:.0f} ms)",
            # A shorter run cannot tell whether memory grows for ten minutes.
            growth < GROWTH_TARGET_MB if args.repeats * args.duration >= GROWTH_SPAN_S else None,
        ),
        flat_p99(intervals),
    ]
    header = "interval | operations | errors | p50 ms | p99 ms | server RSS MB"
    body = [f"## {args.duration:g} s intervals", "", *harness.table(header, rows)]
    return [*body, *per_operation(intervals)], results


def per_operation(intervals: list[Interval]) -> list[str]:
    """Each operation's median p99 in the first and the last third of the intervals."""
    third = len(intervals) // 3
    if third == 0:
        return []
    first, last = intervals[:third], intervals[-third:]
    names = sorted({name for i in intervals for name in i.by_operation})

    def p99(part: list[Interval], name: str) -> float:
        return median(percentile(i.by_operation.get(name, []), 0.99) for i in part)

    def row(name: str) -> str:
        before, after = p99(first, name), p99(last, name)
        ratio = "—" if math.isnan(before) or math.isnan(after) else f"{after / before:.2f}x"
        return f"{name} | {before:.1f} | {after:.1f} | {ratio}"

    rows = [row(name) for name in names]
    header = "operation | p99 ms, first third | p99 ms, last third | ratio"
    return ["", "## p99 per operation", "", *harness.table(header, rows)]


def flat_p99(intervals: list[Interval]) -> Result:
    """The last third's median p99 against the first third's; needs three intervals."""
    third = len(intervals) // 3
    if third == 0:
        return Result("soak: p99 stays flat", f"last third ≤ {FLAT_P99:g}x the first", "—", None)
    first, last = (
        median(percentile(i.latencies_ms, 0.99) for i in part)
        for part in (intervals[:third], intervals[-third:])
    )
    return Result(
        "soak: p99 stays flat",
        f"last third ≤ {FLAT_P99:g}x the first",
        f"{last:.0f} ms vs {first:.0f} ms ({last / first:.2f}x)",
        last <= FLAT_P99 * first,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = harness.parse(arguments(), argv)
    harness.exit_on_sigterm()
    runs = f"{args.repeats} intervals of {args.duration:g} s, {args.rate:g} operations/s offered"
    notes = f", {args.families} families, {args.workers} worker(s)"
    environment = harness.environment(args, notes, runs=runs)
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as temp:
        network = Path(temp) / "network"
        ensure_dev_network(network)
        ledger = args.ledger or f"sqlite:///{temp}/ledger.db"
        with ServeProcess(network, ledger, Path(temp) / "serve.log", workers=args.workers) as serve:
            serve.start()
            intervals = asyncio.run(soak(network, serve, args))
            serve.terminate()
    environment.append(f"- ledger: {ledger.split('?')[0]}")
    body, results = report(intervals, args)
    return harness.publish("Soak", environment, body, results, args.summary)


if __name__ == "__main__":
    sys.exit(main())
