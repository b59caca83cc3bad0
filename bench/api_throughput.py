"""Committed GraphQL mutations/s of `healthledger serve` over mutual TLS, beside its baselines.

The server is the real command (`devkit.serve_process.ServeProcess`: `healthledger serve
--workers N` on a scratch ledger of the backend), on a fresh demo network with one more
parent per connection (`bench-parent-NN`). Its baselines are a `python -m bench.servers
baselines` process, served as `healthledger serve` serves the API: `/plain`, a Starlette
route answering fixed JSON, and `/nop-graphql`, the real mutations' signatures and
permission classes returning constants in a schema made by `api.schema.build_schema`,
with exactly the API's extensions (checked as it starts). Servers run on --server-core,
this load generator (https_load) on --client-core.

Operations, at each --connections count, one request in flight per connection:
registerChild as the connection's own parent, and updateMedicalCard as dr-house on the
connection's own child (with an ACTIVE agreement made beforehand), sending the
expectedVersion the previous answer returned, so nothing conflicts. Committed/s counts
HTTP 200 answers without "errors" (the API answers once the block is durable); anything
else is refused, with its reason. Per repeat the API and the baselines are measured back
to back, in alternating order. Server CPU per request is what an undisturbed core would
turn into a rate.

With --profile, one more API window per operation, at the most connections, runs while
py-spy samples the server (bench/server_profile.py): a table per operation of where its CPU
per request goes, the floor a target has to be judged against.

Targets (issue 21): with one worker on SQLite, 1,500 registerChild/s and 1,000
updateMedicalCard/s; with two workers, 2,500 registerChild/s on PostgreSQL or Redis and
1,200 updateMedicalCard/s on PostgreSQL; and at least 60% of the no-ledger Strawberry rate.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from authz import provision
from devkit.devnet import ensure_dev_network, user_context
from devkit.serve_process import ServeProcess
from ledger_backends.testing import scratch_url

from . import harness, server_profile
from .harness import Result, log, median
from .https_load import (
    Flow,
    Post,
    Sample,
    Streams,
    graphql_body,
    measure,
    outcome,
    read_response,
    request,
)
from .server_profile import ServerProfile
from .servers import BenchServer

RATIO_TARGET = 0.60
# Committed mutations/s per (backend, workers, operation), issue 21's.
TARGETS = {
    ("sqlite", 1, "registerChild"): 1_500,
    ("sqlite", 1, "updateMedicalCard"): 1_000,
    ("postgresql", 2, "registerChild"): 2_500,
    ("redis", 2, "registerChild"): 2_500,
    ("postgresql", 2, "updateMedicalCard"): 1_200,
}
REGISTER, UPDATE = "registerChild", "updateMedicalCard"
API, NOP, PLAIN = "/graphql", "/nop-graphql", "/plain"
BASELINES = {REGISTER: [PLAIN, NOP], UPDATE: [NOP]}
REGISTER_CHILD = (
    "mutation($input: RegisterChildInput!) "
    "{ registerChild(input: $input) { id fullName birthDate guardians doctorUid } }"
)
UPDATE_CARD = (
    "mutation($child: ID!, $version: Int!, $patch: MedicalCardPatch!) "
    "{ updateMedicalCard(childId: $child, expectedVersion: $version, patch: $patch) "
    "{ childId version updatedBy healthGroup physicalEducationGroup allergies } }"
)
READ_CARD = "query($child: ID!) { medicalCard(childId: $child) { version } }"
SIGN = 'mutation($c: ID!) { signAgreement(childId: $c, doctorUid: "dr-house") { id } }'
FIGURES = ("p50_ms", "p99_ms", "client_busy")
Key = tuple[str, str, str, int]  # configuration, operation, path, connections
Connection = tuple[ssl.SSLContext, Flow]
Server = tuple[int, list[str], Callable[[], float]]  # port, paths, its CPU seconds so far


def arguments() -> Any:
    found = harness.parser(__doc__.splitlines()[0], repeats=3, duration=1.5, warmup=0.5)
    default = "sqlite:1,postgresql:1,postgresql:2,redis:1,redis:2"
    configs = harness.configs
    found.add_argument("--configs", type=configs, default=configs(default), help=default)
    found.add_argument(
        "--connections", type=harness.counts, default=[1, 8, 32, 64], help="1,8,32,64"
    )
    harness.pinning_options(found)
    found.add_argument(
        "--profile",
        action="store_true",
        help="after the repeats, one more API window per operation at the most connections, "
        "sampled with py-spy: where the server's CPU per request goes (bench/server_profile.py)",
    )
    return found


@dataclass
class UpdateFlow:
    """dr-house updates one child's card; the expected version is kept per path."""

    child: str
    versions: dict[str, int] = field(default_factory=dict)
    seq: int = 0
    stale: bool = False

    def request(self, path: str, port: int) -> bytes:
        self.seq += 1
        patch = {"healthGroup": 1 + self.seq % 5, "notes": f"bench update {self.seq}"}
        variables = {"child": self.child, "version": self.versions.setdefault(path, 1)}
        return request("POST", path, port, graphql_body(UPDATE_CARD, variables | {"patch": patch}))

    def refusal(self, path: str, status: int, body: bytes) -> str | None:
        found = outcome(status, body)
        if found == "ok":
            self.versions[path] = json.loads(body)["data"]["updateMedicalCard"]["version"]
            return None
        self.stale = path == API
        return found

    async def recover(self, streams: Streams, port: int) -> None:
        if self.stale:
            streams[1].write(
                request("POST", API, port, graphql_body(READ_CARD, {"child": self.child}))
            )
            _, body = await read_response(streams[0])
            self.versions[API] = json.loads(body)["data"]["medicalCard"]["version"]
            self.stale = False


class Bench:
    def __init__(self, network: Path, args: Any) -> None:
        self.network, self.args = network, args
        self.parents = [f"bench-parent-{i:02d}" for i in range(max(args.connections))]
        for uid in self.parents:
            provision.enroll(network, org="parents", uid=uid, role="parent", name=uid.title())
        self.contexts = {uid: user_context(network, "parents", uid) for uid in self.parents}
        self.doctor = user_context(network, "hospital", "dr-house")
        self.samples: dict[Key, list[Sample]] = {}
        # (configuration, operation): samples per part of a request, server µs per request
        self.profiles: dict[tuple[str, str], tuple[Counter[str], float]] = {}

    def children(self, port: int) -> list[UpdateFlow]:
        """Per parent, a child with an ACTIVE agreement with dr-house, and its update flow."""
        found, url = [], f"https://127.0.0.1:{port}/graphql"
        with httpx.Client(verify=self.doctor) as doctor:
            for uid in self.parents:
                with httpx.Client(verify=self.contexts[uid]) as parent:
                    born = {"fullName": "Card Child", "birthDate": "2018-09-01", "sex": "M"}
                    child = _call(parent, url, REGISTER_CHILD, input=born)["registerChild"]["id"]
                    agreement = _call(parent, url, SIGN, c=child)["signAgreement"]["id"]
                _call(
                    doctor, url, "mutation($i: ID!) { acceptAgreement(id: $i) { id } }", i=agreement
                )
                found.append(UpdateFlow(child))
        return found

    def connections(self, operation: str, n: int, updates: list[UpdateFlow]) -> list[Connection]:
        if operation == UPDATE:
            return [(self.doctor, flow) for flow in updates[:n]]
        born = {"fullName": "Bench Child", "birthDate": "2019-04-02", "sex": "F"}
        body = graphql_body(REGISTER_CHILD, {"input": born})
        return [(self.contexts[uid], Post(body)) for uid in self.parents[:n]]

    def run(self, cell: tuple[str, str, int], server: Server, flows: list[Connection]) -> None:
        (port, paths, cpu), (label, operation, n) = server, cell
        for path, sample in asyncio.run(measure(port, flows, paths, self.args, cpu)):
            self.samples.setdefault((label, operation, path, n), []).append(sample)
            refused = f", refused {sample.reasons}" if sample.refused else ""
            log(
                f"{label} {operation} {path} x{n}: {sample.rate:,.0f}/s, p99 {sample.p99_ms:.1f} "
                f"ms, server {sample.server_us:,.0f} µs/req{refused}"
            )

    def profile(
        self, label: str, operation: str, server: Server, pid: int, flows: list[Connection]
    ) -> None:
        """One more API window with py-spy sampling the server process `pid` and its workers."""
        port, _, cpu = server
        output = self.network.parent / f"profile-{len(self.profiles)}.txt"
        seconds = self.args.warmup + self.args.duration
        with ServerProfile(pid, seconds, output) as recording:
            ((_, sample),) = asyncio.run(measure(port, flows, [API], self.args, cpu))
        self.profiles[label, operation] = (recording.shares(), sample.server_us)
        log(f"{label} {operation} profiled: {sample.rate:,.0f}/s, {sample.server_us:,.0f} µs/req")

    def median(self, label: str, operation: str, path: str, n: int, figure: str = "rate") -> float:
        return median(getattr(s, figure) for s in self.samples.get((label, operation, path, n), []))


def _call(client: httpx.Client, url: str, query: str, **variables: Any) -> Any:
    answer = client.post(url, json={"query": query, "variables": variables}).json()
    if answer.get("errors"):
        raise RuntimeError(f"set-up failed: {answer['errors']}")
    return answer["data"]


def measure_config(bench: Bench, backend: str, workers: int, baselines: BenchServer) -> str:
    label = f"{backend}, {workers} worker(s)"
    log_file = bench.network.parent / f"{backend}-{workers}.log"
    with (
        scratch_url(backend) as url,
        ServeProcess(bench.network, url, log_file, workers=workers) as serve,
    ):
        serve.start()
        assert serve.process is not None
        pids = harness.process_tree(serve.process.pid)
        cores = bench.args.server_core, bench.args.client_core
        pinning = harness.pin([*pids, baselines.process.pid], *cores)
        updates = bench.children(serve.port)
        for repeat in range(bench.args.repeats):
            for n in bench.args.connections:
                for operation in (REGISTER, UPDATE):
                    flows = bench.connections(operation, n, updates)
                    api: Server = (serve.port, [API], lambda: harness.cpu_seconds(pids))
                    nop: Server = (baselines.port, BASELINES[operation], baselines.cpu_seconds)
                    for server in harness.alternating([api, nop], repeat):
                        bench.run((label, operation, n), server, flows)
        if bench.args.profile:
            api = (serve.port, [API], lambda: harness.cpu_seconds(pids))
            n = max(bench.args.connections)
            for operation in (REGISTER, UPDATE):
                flows = bench.connections(operation, n, updates)
                bench.profile(label, operation, api, serve.process.pid, flows)
        serve.terminate()
    return pinning


def report(bench: Bench, args: Any) -> tuple[list[str], list[Result]]:
    rows, results = [], []
    for backend, workers in args.configs:
        label = f"{backend}, {workers} worker(s)"
        for operation in (REGISTER, UPDATE):
            for n in args.connections:
                rate, nop = (bench.median(label, operation, p, n) for p in (API, NOP))
                plain = bench.median(label, REGISTER, PLAIN, n)  # the same for either operation
                us = [bench.median(label, operation, p, n, "server_us") for p in (API, NOP)]
                us.append(bench.median(label, REGISTER, PLAIN, n, "server_us"))
                p50, p99, busy = (bench.median(label, operation, API, n, f) for f in FIGURES)
                refused = sum(s.refused for s in bench.samples[label, operation, API, n])
                rows.append(
                    f"{backend} | {workers} | {operation} | {n} | {rate:,.0f} | {p50:.1f}"
                    f" | {p99:.1f} | {refused} | {plain:,.0f} | {nop:,.0f} | {rate / nop:.0%}"
                    f" | {us[1] / us[0]:.0%} | {' · '.join(f'{u:,.0f}' for u in us)} | {busy:.0%}"
                )
            best = max(args.connections, key=lambda n: bench.median(label, operation, API, n))
            rate, nop = (bench.median(label, operation, path, best) for path in (API, NOP))
            us = [bench.median(label, operation, p, best, "server_us") for p in (API, NOP)]
            name, target = f"API {operation}, {label}", TARGETS.get((backend, workers, operation))
            at = f"{rate:,.0f}/s at {best} connections"
            met = rate >= target if target else None
            results.append(Result(name, f"≥ {target:,}/s" if target else "none", at, met))
            ratio = f"{rate / nop:.0%} ({us[1] / us[0]:.0%} by server CPU)"
            goal = f"≥ {RATIO_TARGET:.0%}"
            results.append(Result(f"{name} ÷ nop-graphql", goal, ratio, rate / nop >= RATIO_TARGET))
    header = (
        "backend | workers | operation | conns | committed/s | p50 ms | p99 ms | refused"
        " | plain /s | nop-graphql /s | ratio to nop | ratio by server CPU"
        " | server CPU µs/req: API · nop · plain | client busy"
    )
    body = ["## Committed mutations/s and the baselines", "", *harness.table(header, rows)]
    for (label, operation), (counted, cpu_us) in bench.profiles.items():
        body += [
            "",
            f"## Where the server's CPU goes: {operation}, {label}, {max(args.connections)} "
            "connections (py-spy)",
            "",
            *harness.table(
                "part of the request | share of samples | µs per request",
                server_profile.table_rows(counted, cpu_us),
            ),
        ]
    return body, results


def main(argv: Sequence[str] | None = None) -> int:
    args = harness.parse(arguments(), argv)
    harness.exit_on_sigterm()
    software = harness.versions("uvicorn", "starlette", "strawberry-graphql", "graphql-core")
    environment = harness.environment(args, software=software)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as temp:
        directory = Path(temp)
        ensure_dev_network(directory / "network")
        bench = Bench(directory / "network", args)
        server = ["baselines", f"--network={directory / 'network'}"]
        with BenchServer(server, args.server_core, directory / "baselines.log") as baselines:
            pinning = ""
            for backend, workers in args.configs:
                pinning = measure_config(bench, backend, workers, baselines)
    environment += [
        f"- {pinning}; nop-graphql's extensions (the API's): {', '.join(baselines.announced)}"
    ]
    body, results = report(bench, args)
    return harness.publish(
        "GraphQL API: committed mutations/s over mutual TLS",
        environment,
        body,
        results,
        args.summary,
    )


if __name__ == "__main__":
    sys.exit(main())
