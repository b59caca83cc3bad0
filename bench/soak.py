"""Soak: mixed story traffic at a fixed rate against a real `healthledger serve`, minute by minute.

What runs: a fresh network with the demo users (api/devnet.py) and
`healthledger serve` on it as a subprocess (1 worker unless --workers), on an
embedded SQLite ledger in a temporary directory unless --ledger names another.
`--families` concurrent families each walk the whole story over and over
(register a child, sign, accept, three card updates, read the card and its
history, apply to school-a, accept, request a report, write it, approve it,
then school-a reads the content), each as its own user over HTTPS with that
user's client certificate. A shared token bucket lets at most `--rate`
operations per second start, so the offered load is fixed and the families only
have to be enough to keep up with it.

What is reported, per minute: operations completed, errors, p50 and p99
latency (request sent to response read), and the server's resident memory (sum
of VmRSS over the serve process tree, read from /proc at the end of the
minute). An error is anything other than HTTP 200 with the expected data and no
GraphQL errors. Memory growth is the last minute's RSS minus the first
minute's (so start-up and warm-up allocations are not counted).

Targets (issue 8): 0 errors, memory growth < 50 MB over 10 minutes. Exit code 0
when both hold, 1 otherwise. Latency has no target; p99 per minute shows drift.

    .venv/bin/python bench/soak.py                      # 10 minutes, 20 ops/s, SQLite
    .venv/bin/python bench/soak.py --minutes 1 --rate 40 --ledger postgresql://...
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.devnet import DEMO_USERS, ensure_dev_network, user_context  # noqa: E402

GROWTH_TARGET_MB = 50.0
START_TIMEOUT_S = 60

REGISTER = "mutation($input: RegisterChildInput!) { registerChild(input: $input) { id } }"
SIGN = """mutation($child: ID!) {
  signAgreement(childId: $child, doctorUid: "dr-house") { id status } }"""
ACCEPT = "mutation($id: ID!) { acceptAgreement(id: $id) { id status } }"
UPDATE = """mutation($child: ID!, $version: Int!, $patch: MedicalCardPatch!) {
  updateMedicalCard(childId: $child, expectedVersion: $version, patch: $patch) { version } }"""
CARD = "query($child: ID!) { medicalCard(childId: $child) { version allergies } }"
HISTORY = "query($child: ID!) { medicalCardHistory(childId: $child) { version blockNumber } }"
APPLY = """mutation($child: ID!) {
  createAdmissionRequest(childId: $child, school: "school-a") { id status } }"""
ACCEPT_ADMISSION = "mutation($id: ID!) { acceptAdmissionRequest(id: $id) { id status } }"
REQUEST_REPORT = """mutation($admission: ID!) {
  createReportRequest(admissionRequestId: $admission) { id status } }"""
CREATE_REPORT = """mutation($request: ID!) {
  createReport(reportRequestId: $request, conclusion: "Fit for school.") { id status } }"""
APPROVE = """mutation($id: ID!) {
  approveReport(id: $id, schools: ["school-a"]) { id status } }"""
READ_REPORT = "query($id: ID!) { report(id: $id) { status content { conclusion } } }"


class UnexpectedAnswer(Exception):
    pass


@dataclass
class Minute:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    rss_mb: float = 0.0


class Traffic:
    """The clients, the rate limit and the per-minute tallies."""

    def __init__(self, clients: dict[str, httpx.AsyncClient], rate: float) -> None:
        self.clients = clients
        self.interval = 1.0 / rate
        self.next_start = time.monotonic()
        self.lock = asyncio.Lock()
        self.minutes: list[Minute] = [Minute()]

    async def slot(self) -> None:
        """Wait for this operation's start time: one every 1/rate seconds."""
        async with self.lock:
            self.next_start = max(self.next_start + self.interval, time.monotonic())
            start = self.next_start
        await asyncio.sleep(max(0.0, start - time.monotonic()))

    async def call(self, uid: str, document: str, **variables: Any) -> Any:
        await self.slot()
        minute = self.minutes[-1]
        started = time.perf_counter()
        try:
            response = await self.clients[uid].post(
                "/graphql", json={"query": document, "variables": variables}
            )
            body = response.json() if response.status_code == 200 else None
            if body is None or body.get("errors") or not body.get("data"):
                raise UnexpectedAnswer(f"HTTP {response.status_code}: {response.text[:200]}")
        except (httpx.HTTPError, UnexpectedAnswer) as exc:
            minute.errors += 1
            if len(minute.error_samples) < 3:
                minute.error_samples.append(f"{uid}: {exc}")
            raise UnexpectedAnswer(str(exc)) from None
        minute.latencies.append(time.perf_counter() - started)
        return body["data"]


async def family(traffic: Traffic, number: int, stop: asyncio.Event) -> None:
    """One family's story, again and again until told to stop; an error restarts the story."""
    for round_ in itertools.count():
        if stop.is_set():
            return
        try:
            await story(traffic, f"Soak Child {number}-{round_}")
        except UnexpectedAnswer:
            continue


async def story(traffic: Traffic, name: str) -> None:
    call = traffic.call
    birth = {"fullName": name, "birthDate": "2019-05-14"}
    child = (await call("alice", REGISTER, input=birth))["registerChild"]["id"]
    agreement = (await call("alice", SIGN, child=child))["signAgreement"]["id"]
    await call("dr-house", ACCEPT, id=agreement)
    for version in (1, 2, 3):
        patch = {"allergies": [f"pollen-{version}"], "healthGroup": version}
        await call("dr-house", UPDATE, child=child, version=version, patch=patch)
    card = (await call("alice", CARD, child=child))["medicalCard"]
    history = (await call("alice", HISTORY, child=child))["medicalCardHistory"]
    if card["version"] != 4 or [entry["version"] for entry in history] != [1, 2, 3, 4]:
        traffic.minutes[-1].errors += 1
        raise UnexpectedAnswer(f"card {card} history {history}")
    admission = (await call("alice", APPLY, child=child))["createAdmissionRequest"]["id"]
    await call("school-a-office", ACCEPT_ADMISSION, id=admission)
    request = (await call("school-a-office", REQUEST_REPORT, admission=admission))[
        "createReportRequest"
    ]["id"]
    report = (await call("dr-house", CREATE_REPORT, request=request))["createReport"]["id"]
    await call("alice", APPROVE, id=report)
    seen = (await call("school-a-office", READ_REPORT, id=report))["report"]
    if seen["content"] is None:
        traffic.minutes[-1].errors += 1
        raise UnexpectedAnswer(f"school-a could not read the approved report: {seen}")


def tree_rss_mb(pid: int) -> float:
    """Resident memory of the process and its children (uvicorn workers), in MB."""
    total_kb = 0
    for each in [pid, *_children(pid)]:
        try:
            status = Path(f"/proc/{each}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total_kb += int(line.split()[1])
    return total_kb / 1024


def _children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(child) for child in found]


async def soak(args: argparse.Namespace, directory: Path, port: int, server: int) -> list[Minute]:
    clients = {
        uid: httpx.AsyncClient(
            base_url=f"https://127.0.0.1:{port}",
            verify=user_context(directory, org, uid),
            timeout=30,
            limits=httpx.Limits(max_connections=args.families),
        )
        for org, uid, _, _ in DEMO_USERS
    }
    traffic = Traffic(clients, args.rate)
    stop = asyncio.Event()
    families = [asyncio.create_task(family(traffic, n, stop)) for n in range(args.families)]
    try:
        for minute in range(args.minutes):
            await asyncio.sleep(60)
            traffic.minutes[-1].rss_mb = tree_rss_mb(server)
            report_minute(minute + 1, traffic.minutes[-1])
            if minute + 1 < args.minutes:
                traffic.minutes.append(Minute())
        stop.set()
        # Stories under way finish; their operations count in the totals, not in a minute row.
        await asyncio.wait_for(asyncio.gather(*families), timeout=120)
    finally:
        for task in families:
            task.cancel()
        for client in clients.values():
            await client.aclose()
    return traffic.minutes


def report_minute(number: int, minute: Minute) -> None:
    print(
        f"| {number:>6} | {len(minute.latencies):>10} | {minute.errors:>6} | "
        f"{_ms(minute.latencies, 50):>8} | {_ms(minute.latencies, 99):>8} | "
        f"{minute.rss_mb:>13.1f} |",
        flush=True,
    )
    for sample in minute.error_samples:
        print(f"  error: {sample}", flush=True)


def _ms(latencies: list[float], percentile: int) -> str:
    if len(latencies) < 2:
        return "-"
    return f"{statistics.quantiles(latencies, n=100)[percentile - 1] * 1000:.1f}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(
    directory: Path, ledger: str, port: int, workers: int, log: Path
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "api.cli", "serve", "--network", str(directory),
        "--ledger", ledger, "--port", str(port), "--workers", str(workers),
        "--health-port", str(health := _free_port()),
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise SystemExit(f"serve exited with {process.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{health}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("serve did not become ready")
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--rate", type=float, default=20.0, help="operations started per second")
    parser.add_argument("--families", type=int, default=16, help="concurrent story walkers")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--ledger", help="ledger URL (default: SQLite file in a temp dir)")
    args = parser.parse_args(argv)

    directory = Path(tempfile.mkdtemp(prefix="healthledger-soak-"))
    server: subprocess.Popen[bytes] | None = None
    try:
        ensure_dev_network(directory / "network")
        ledger = args.ledger or f"sqlite:///{directory / 'ledger.db'}"
        port = _free_port()
        server = start_server(directory / "network", ledger, port, args.workers, directory / "log")
        print(
            f"soak: {args.minutes} min, {args.rate:g} ops/s offered, {args.families} families, "
            f"{args.workers} worker(s), ledger {ledger.split('?')[0]}"
        )
        print("| minute | operations | errors | p50 ms   | p99 ms   | server RSS MB |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: |")
        minutes = asyncio.run(soak(args, directory / "network", port, server.pid))
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
        shutil.rmtree(directory, ignore_errors=True)

    errors = sum(minute.errors for minute in minutes)
    operations = sum(len(minute.latencies) for minute in minutes)
    growth = minutes[-1].rss_mb - minutes[0].rss_mb
    print(
        f"\ntotal: {operations} operations ({operations / (60 * len(minutes)):.1f}/s), "
        f"{errors} errors; server RSS {minutes[0].rss_mb:.1f} MB after minute 1, "
        f"{minutes[-1].rss_mb:.1f} MB after minute {len(minutes)}: growth {growth:+.1f} MB "
        f"(target < {GROWTH_TARGET_MB:g} MB)"
    )
    ok = errors == 0 and growth < GROWTH_TARGET_MB
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
