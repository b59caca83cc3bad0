"""Medical-card reads/s of the API with the ledger's access log, against the same reads without it.

Per --configs entry (BACKEND:WORKERS) one scratch ledger on a fresh demo network
(devkit.devnet): the parent alice registers a child and signs an agreement that dr-house
accepts (ACTIVE). Two `python -m bench.servers api` processes serve that ledger as
`healthledger serve --workers N` does: one records every read in the access log (an answer
waits until its entry's block is durable), the other is built with the bench-only
`Services.open(..., access_log=False)` and records none. At each --connections count, one
request in flight per connection, dr-house reads the child's `medicalCard`; a read counts
when it is HTTP 200 without "errors". Per repeat both servers are measured back to back, in
alternating order; figures are medians. Servers run on --server-core, this load generator
(https_load) on --client-core. Server CPU per read is what an undisturbed core would turn
into a rate.

Targets: 1,500 logged reads/s on SQLite with one worker; logged reads at least 50% of the
unlogged rate.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from devkit.devnet import ensure_dev_network, user_context
from ledger_backends.testing import scratch_url

from . import harness
from .harness import Result, log, median
from .https_load import Post, Sample, graphql_body, measure
from .servers import BenchServer

RATE_TARGETS = {("sqlite", 1): 1_500}  # issue 21 (issue 17 asked for 1,000)
RATIO_TARGET = 0.50
LOGGED, UNLOGGED = "on", "off"  # the server's --access-log
READ_CARD = (
    "query($child: ID!) { medicalCard(childId: $child) "
    "{ childId version updatedAt updatedBy allergies healthGroup physicalEducationGroup } }"
)
REGISTER_CHILD = "mutation($input: RegisterChildInput!) { registerChild(input: $input) { id } }"
SIGN = 'mutation($c: ID!) { signAgreement(childId: $c, doctorUid: "dr-house") { id } }'
ACCEPT = "mutation($i: ID!) { acceptAgreement(id: $i) { status } }"
Key = tuple[str, int, str, int]  # backend, workers, access log, connections


def arguments() -> Any:
    found = harness.parser(__doc__.splitlines()[0], repeats=5, duration=2.0, warmup=0.5)
    default = "sqlite:1,postgresql:2"
    configs = harness.configs
    found.add_argument("--configs", type=configs, default=configs(default), help=default)
    found.add_argument("--connections", type=harness.counts, default=[8, 32, 64], help="8,32,64")
    harness.pinning_options(found)
    return found


def child_in_care(network: Path, port: int) -> str:
    """A new child of alice's, with an ACTIVE agreement with dr-house."""
    url = f"https://127.0.0.1:{port}/graphql"

    def call(uid: str, org: str, query: str, **variables: Any) -> Any:
        with httpx.Client(verify=user_context(network, org, uid)) as client:
            answer = client.post(url, json={"query": query, "variables": variables}).json()
        if answer.get("errors"):
            raise RuntimeError(f"set-up failed: {answer['errors']}")
        return answer["data"]

    born = {"fullName": "Read Child", "birthDate": "2018-09-01", "sex": "M"}
    child: str = call("alice", "parents", REGISTER_CHILD, input=born)["registerChild"]["id"]
    agreement = call("alice", "parents", SIGN, c=child)["signAgreement"]["id"]
    call("dr-house", "hospital", ACCEPT, i=agreement)
    return child


def measure_config(
    directory: Path, args: Any, config: tuple[str, int], samples: dict[Key, list[Sample]]
) -> str:
    """Both servers on one scratch ledger of the backend, measured; says how they were pinned."""
    (backend, workers), network = config, directory / "network"
    with scratch_url(backend) as url, ExitStack() as servers:
        started = {}
        for switch in (LOGGED, UNLOGGED):
            command = ["api", f"--network={network}", f"--ledger={url}", f"--workers={workers}"]
            log_file = directory / f"{backend}-{workers}-{switch}.log"
            started[switch] = servers.enter_context(
                BenchServer([*command, f"--access-log={switch}"], args.server_core, log_file)
            )
        trees = {switch: harness.process_tree(s.process.pid) for switch, s in started.items()}
        pinning = harness.pin(
            [*trees[LOGGED], *trees[UNLOGGED]], args.server_core, args.client_core
        )
        body = graphql_body(READ_CARD, {"child": child_in_care(network, started[LOGGED].port)})
        doctor = user_context(network, "hospital", "dr-house")
        for repeat in range(args.repeats):
            for n in args.connections:
                for switch in harness.alternating((LOGGED, UNLOGGED), repeat):
                    found = measure(
                        started[switch].port,
                        [(doctor, Post(body)) for _ in range(n)],
                        ["/graphql"],
                        args,
                        partial(harness.cpu_seconds, trees[switch]),
                    )
                    [(_, sample)] = asyncio.run(found)
                    samples.setdefault((backend, workers, switch, n), []).append(sample)
                    refused = f", refused {sample.reasons}" if sample.refused else ""
                    log(
                        f"{backend} x{workers} access log {switch}, {n} conns: "
                        f"{sample.rate:,.0f} reads/s, p99 {sample.p99_ms:.1f} ms, "
                        f"server {sample.server_us:,.0f} µs/read{refused}"
                    )
    return pinning


def report(args: Any, samples: dict[Key, list[Sample]]) -> tuple[list[str], list[Result]]:
    def figure(key: Key, name: str = "rate") -> float:
        return median(getattr(sample, name) for sample in samples[key])

    rows, results = [], []
    for config in args.configs:
        backend, workers = config
        for n in args.connections:
            on, off = (backend, workers, LOGGED, n), (backend, workers, UNLOGGED, n)
            us = figure(on, "server_us"), figure(off, "server_us")
            refused = sum(sample.refused for key in (on, off) for sample in samples[key])
            rows.append(
                f"{backend} | {workers} | {n} | {figure(on):,.0f} | {figure(off):,.0f}"
                f" | {figure(on) / figure(off):.0%} | {figure(on, 'p50_ms'):.1f}"
                f" | {figure(on, 'p99_ms'):.1f} | {figure(off, 'p99_ms'):.1f}"
                f" | {us[0]:,.0f} · {us[1]:,.0f} | {us[1] / us[0]:.0%} | {refused}"
            )
        best = max(args.connections, key=lambda n: figure((backend, workers, LOGGED, n)))
        on, off = (backend, workers, LOGGED, best), (backend, workers, UNLOGGED, best)
        name, target = f"logged reads, {backend}, {workers} worker(s)", RATE_TARGETS.get(config)
        rate = figure(on)
        measured = f"{rate:,.0f}/s at {best} connections"
        goal = f"≥ {target:,}/s" if target else "none"
        results.append(Result(name, goal, measured, rate >= target if target else None))
        ratio = rate / figure(off)
        by_cpu = figure(off, "server_us") / figure(on, "server_us")
        measured = f"{ratio:.0%} of {figure(off):,.0f}/s ({by_cpu:.0%} by server CPU)"
        met = ratio >= RATIO_TARGET
        results.append(Result(f"{name} ÷ unlogged", f"≥ {RATIO_TARGET:.0%}", measured, met))
    header = (
        "backend | workers | conns | logged reads/s | unlogged reads/s | logged ÷ unlogged"
        " | logged p50 ms | logged p99 ms | unlogged p99 ms"
        " | server CPU µs/read: logged · unlogged | ratio by server CPU | refused"
    )
    title = "## medicalCard reads/s, access log on and off"
    return [title, "", *harness.table(header, rows)], results


def main(argv: Sequence[str] | None = None) -> int:
    args = harness.parse(arguments(), argv)
    harness.exit_on_sigterm()
    software = harness.versions("uvicorn", "starlette", "strawberry-graphql", "graphql-core")
    environment = harness.environment(args, software=software)
    samples: dict[Key, list[Sample]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-read-log-") as temp:
        ensure_dev_network(Path(temp) / "network")
        pinning = [measure_config(Path(temp), args, config, samples) for config in args.configs]
    environment.append(f"- {pinning[-1]}")
    body, results = report(args, samples)
    title = "medicalCard reads/s over mutual TLS, with the access log and without"
    return harness.publish(title, environment, body, results, args.summary)


if __name__ == "__main__":
    sys.exit(main())
