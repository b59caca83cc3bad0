"""Committed GraphQL mutations/s and latency of the healthledger API over mutual TLS.

What is measured: `registerChild` (as a parent) and `updateMedicalCard` (as
dr-house) sent to the real app (`api.app.create_app(Services.open(network,
ledger_url))`) under uvicorn with the client-certificate httptools protocol and
the network's server TLS context, as `healthledger serve` runs it, over HTTPS
keep-alive with 1, 8, 32 and 64 concurrent connections, one request in flight
on each. Committed/s counts answers with HTTP 200 and no "errors" (the gateway
answers once the transaction's block is durable); anything else is counted as
an error. p50/p99 are the client-side latencies (request written to last body
byte) of the committed ones. Beside them, in the same server process and
on the same connections, window after window:

- `/plain`: a Starlette route answering fixed JSON (TLS + HTTP + Starlette);
- `/nop-graphql`: a Strawberry mutation with the same name, arguments,
  permission class and return type, behind the same IdentityGate and view
  class, that returns a constant and touches no ledger, without schema
  extensions: the no-ledger Strawberry ceiling, which the ≥ 60% target uses;
- `/nop-graphql-ext`: the same with the real schema's extension list, to split
  the gap into "GraphQL extensions" and "ledger".

(bench/api_server.py builds this app; the real app is not modified.)

Set-up: a fresh network from the code behind `healthledger network init` and
`enroll` (tests/networks.py) plus one enrolled parent per connection
(`bench-parent-NN`), so each registerChild connection is a different parent.
For updateMedicalCard each connection has its own child, registered by its own
parent with an ACTIVE agreement with dr-house made beforehand; the connection
sends the expectedVersion the previous answer returned, so nothing conflicts.

Servers, one process tree per configuration, all started once:
sqlite (fresh file, 1 worker), postgresql (fresh `?schema=`, 1 and 2 workers),
redis (fresh `?prefix=`, 1 and 2 workers) — all removed at the end, also on
error, Ctrl-C or SIGTERM (bench/scratch_stores.py; server processes stop on EOF
on stdin, and 2-worker servers are uvicorn's own Multiprocess supervisor, as
`healthledger serve --workers 2` runs it).

Pinning (taskset): every server process on CPU `--server-core` (0), the load
generator on `--client-core` (1). With two workers both share CPU 0, so the
client keeps its own core and 1-/2-worker figures are comparable; a 2-core
machine cannot give two server cores and a clean client core at once. The
"unpinned" rows (2 workers, at `--unpinned-connections`) rerun the same
servers with workers and client allowed on both CPUs: what two cores give
when the client competes for them. PostgreSQL and Redis are shared system
services and not pinned; their CPU per request is reported.

The load generator's ceiling: the same client (same bodies, same JSON checks)
against bench/identity_server.py's bare asyncio TLS server (mutual TLS, fixed
answer) on the server core, at each connection count, once per repeat. A rate
counts as trustworthy only where that ceiling is ≥ 5x above it.

Every figure is the median of `--repeats` windows of `--duration` s; within a
repeat, the order of paths alternates (A-B-C-D, then D-C-B-A) so slow drift on a
noisy machine hits all alike. Server CPU µs per request (from /proc) is also
reported: it is what an undisturbed core would turn into a rate. Where a target
is missed (bench/api_profile.py):

- what-if, in process: CPU per registerChild `schema.execute` on a memory://
  ledger with api.schema's schema as it is, and with its depth/alias validators
  built once (so Strawberry's ValidationCache can hit), beside the nop schemas;
- what-if, over HTTPS, on each 1-worker server that missed: `/graphql-stable-
  limits` (that schema, same gate and view) interleaved with /graphql and
  /nop-graphql, at the connection count of the best /graphql rate;
- py-spy (`--gil`) on the server worker(s) while the client drives /graphql for
  each miss, and the what-if on the first of those servers: where the time goes.

Progress goes to stderr, the Markdown report to stdout. Run from the repository
root (about 18 minutes with the defaults):

    .venv/bin/python bench/api.py [--repeats 3] [--duration 1.5] [--backends sqlite,redis]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import select
import shlex
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Measure the packages next to this script, not whichever copy is installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import api_profile
import psycopg
import redis
import starlette
import uvicorn
from api_load import (
    REGISTER_CHILD,
    Flow,
    Group,
    RegisterFlow,
    Sample,
    UpdateFlow,
    drive_for,
    make_update_children,
    run_group,
)
from arguments import positive_ints
from identity import Server, _exit_on_sigterm, _stop, load_average, log, server_process
from scratch_stores import Servers, scratch_store

from authz import provision
from tests.networks import NetworkFixture, make_network

ROOT = Path(__file__).resolve().parent.parent
SERVER_SCRIPT = ROOT / "bench" / "api_server.py"
DOCTOR = "dr-house"
PARENT_PREFIX = "bench-parent-"
START_TIMEOUT_S = 90.0
RATIO_TARGET = 0.60
CLIENT_HEADROOM = 5.0
TARGETS: dict[tuple[str, int], float] = {
    ("sqlite", 1): 1_500.0,
    ("postgresql", 2): 2_500.0,
    ("redis", 2): 2_500.0,
}
DEFAULT_CONFIGS = "sqlite:1,postgresql:1,postgresql:2,redis:1,redis:2"
REGISTER = "registerChild"
UPDATE = "updateMedicalCard"
API, NOP, NOP_EXT, PLAIN = "/graphql", "/nop-graphql", "/nop-graphql-ext", "/plain"
WHAT_IF = "/graphql-stable-limits"
PATHS = {REGISTER: (PLAIN, NOP, NOP_EXT, API), UPDATE: (NOP, NOP_EXT, API)}
CEILING = "client ceiling"


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class Config:
    backend: str
    workers: int

    @property
    def label(self) -> str:
        return f"{self.backend} x{self.workers}"


@dataclass(frozen=True)
class Plan:
    configs: list[Config]
    connections: list[int]
    unpinned_connections: list[int]
    warmup_s: float
    duration_s: float
    repeats: int
    server_core: int
    client_core: int
    profile: bool
    profile_s: float
    profile_rate: int
    servers: Servers
    json_path: Path | None


def parse_args(argv: list[str] | None) -> Plan:
    parser = argparse.ArgumentParser(
        description="Committed GraphQL mutations/s and p50/p99 latency of the healthledger API "
        "over HTTPS keep-alive (mutual TLS), beside a plain Starlette endpoint and a no-ledger "
        "Strawberry mutation on the same server, with the load generator's own ceiling.",
    )
    parser.add_argument(
        "--configs",
        default=DEFAULT_CONFIGS,
        help="backend:workers list (default %(default)s)",
    )
    parser.add_argument(
        "--backends", default="", help="keep only these backends, e.g. sqlite,redis"
    )
    parser.add_argument("--workers", default="", help="keep only these worker counts, e.g. 1")
    parser.add_argument(
        "--connections", type=CONNECTION_COUNTS, default=[1, 8, 32, 64], help="default 1,8,32,64"
    )
    parser.add_argument(
        "--unpinned-connections",
        type=_int_list_or_none,
        default=[64],
        help="connection counts for the unpinned 2-worker rows ('' for none; default 64)",
    )
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds before the windows")
    parser.add_argument("--duration", type=float, default=1.5, help="seconds per window")
    parser.add_argument("--repeats", type=int, default=3, help="windows per figure (median)")
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--client-core", type=int, default=1)
    parser.add_argument("--no-profile", action="store_true", help="skip py-spy on missed targets")
    parser.add_argument("--profile-seconds", type=float, default=4.0)
    parser.add_argument("--profile-rate", type=int, default=250, help="py-spy samples/s")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--json", type=Path, default=None, help="also write every window here")
    args = parser.parse_args(argv)
    configs = _configs(parser, args.configs, args.backends, args.workers)
    if args.repeats < 1 or args.duration <= 0 or args.warmup < 0:
        parser.error("--repeats must be ≥ 1, --duration > 0 and --warmup ≥ 0.")
    usable = os.sched_getaffinity(0)
    if {args.server_core, args.client_core} - usable or args.server_core == args.client_core:
        parser.error(f"--server-core and --client-core must be two of the CPUs {sorted(usable)}.")
    return Plan(
        configs=configs,
        connections=args.connections,
        unpinned_connections=args.unpinned_connections,
        warmup_s=args.warmup,
        duration_s=args.duration,
        repeats=args.repeats,
        server_core=args.server_core,
        client_core=args.client_core,
        profile=not args.no_profile,
        profile_s=args.profile_seconds,
        profile_rate=args.profile_rate,
        servers=Servers(postgres_url=args.postgres_url, redis_url=args.redis_url),
        json_path=args.json,
    )


def _configs(
    parser: argparse.ArgumentParser, text: str, backends: str, workers: str
) -> list[Config]:
    configs = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        backend, _, count = part.partition(":")
        if backend not in ("sqlite", "postgresql", "redis") or not count.isdigit():
            parser.error(f"--configs: expected sqlite|postgresql|redis:N, not {part!r}")
        configs.append(Config(backend, int(count)))
    if backends:
        keep = {b.strip() for b in backends.split(",")}
        configs = [c for c in configs if c.backend in keep]
    if workers:
        counts = {int(w) for w in workers.split(",")}
        configs = [c for c in configs if c.workers in counts]
    if not configs or any(c.workers < 1 for c in configs):
        parser.error("no server configuration left to run")
    return configs


CONNECTION_COUNTS = positive_ints("connection counts", "1,8,32")


def _int_list_or_none(text: str) -> list[int]:
    return CONNECTION_COUNTS(text) if text.strip() else []


# ------------------------------------------------------------------------ servers


@dataclass(frozen=True)
class ApiServer:
    config: Config
    server: Server
    pids: tuple[int, ...]  # workers, and the supervisor when there are several
    worker_pids: tuple[int, ...]
    ledger_url: str


@contextlib.contextmanager
def api_server_process(
    config: Config, network_dir: Path, ledger_url: str, core: int, ready_dir: Path
) -> Iterator[ApiServer]:
    """bench/api_server.py pinned to `core` (it pins itself before starting workers)."""
    ready_dir.mkdir(parents=True)
    command = [
        sys.executable,
        str(SERVER_SCRIPT),
        f"--network={network_dir}",
        f"--ledger={ledger_url}",
        f"--workers={config.workers}",
        f"--cores={core}",
        f"--ready-dir={ready_dir}",
    ]
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT, text=True
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT_S)
        line = process.stdout.readline() if ready else ""
        if not line.startswith("READY "):
            raise RuntimeError(f"{config.label} did not start (exit code {process.poll()})")
        _, port, pids = line.split()
        workers = tuple(int(pid) for pid in pids.split(","))
        every = workers if config.workers == 1 else (process.pid, *workers)
        yield ApiServer(
            config, Server(config.label, int(port), process.pid), every, workers, ledger_url
        )
    finally:
        _stop(process)


def set_affinity(pids: Sequence[int], cores: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(pid, cores)


# ---------------------------------------------------------------------- identities


class Identities:
    """Client TLS contexts by user, and the benchmark's extra parents."""

    def __init__(self, fixture: NetworkFixture, parents: int) -> None:
        self.fixture = fixture
        self.parents = [f"{PARENT_PREFIX}{i:02d}" for i in range(parents)]
        for uid in self.parents:
            provision.enroll(
                fixture.directory, org="parents", uid=uid, role="parent", name=uid.title()
            )
        self._contexts: dict[str, ssl.SSLContext] = {}

    def context(self, uid: str) -> ssl.SSLContext:
        if uid not in self._contexts:
            self._contexts[uid] = self.fixture.client_context(uid)
        return self._contexts[uid]

    def parent_contexts(self, count: int) -> list[ssl.SSLContext]:
        return [self.context(uid) for uid in self.parents[:count]]


# --------------------------------------------------------------------------- cells


@dataclass(frozen=True)
class Cell:
    variant: str  # config label, "... unpinned", or CEILING
    operation: str
    path: str
    connections: int


@dataclass
class Results:
    samples: dict[Cell, list[Sample]] = field(default_factory=dict)
    profiles: list[tuple[str, api_profile.Profile, float]] = field(default_factory=list)
    profile_notes: list[str] = field(default_factory=list)
    what_if: list[tuple[str, float]] = field(default_factory=list)
    what_if_http: list[tuple[Config, str, int]] = field(default_factory=list)
    tls: str = ""

    def add(self, cell: Cell, sample: Sample) -> None:
        self.samples.setdefault(cell, []).append(sample)

    def has(self, cell: Cell) -> bool:
        return cell in self.samples

    def median(self, cell: Cell, what: str) -> float:
        values = [getattr(sample, what) for sample in self.samples[cell]]
        return float(statistics.median(values))

    def errors(self, cell: Cell) -> int:
        return sum(sample.errors for sample in self.samples[cell])

    def reasons(self, cell: Cell) -> dict[str, int]:
        found: dict[str, int] = {}
        for sample in self.samples[cell]:
            for reason, count in sample.reasons.items():
                found[reason] = found.get(reason, 0) + count
        return found


@dataclass
class Bench:
    """Everything running: servers, identities, per-child card versions."""

    plan: Plan
    identities: Identities
    raw: Server
    servers: list[ApiServer]
    children: dict[str, list[str]] = field(default_factory=dict)  # config label -> child ids
    versions: dict[str, dict[str, int]] = field(default_factory=dict)  # child -> path -> version

    def flows(self, api: ApiServer, operation: str, connections: int) -> list[Flow]:
        if operation == REGISTER:
            return [
                RegisterFlow(uid, i) for i, uid in enumerate(self.identities.parents[:connections])
            ]
        children = self.children[api.config.label][:connections]
        return [UpdateFlow(child, self.versions.setdefault(child, {})) for child in children]

    def contexts(self, operation: str, connections: int) -> list[ssl.SSLContext]:
        if operation == REGISTER:
            return self.identities.parent_contexts(connections)
        return [self.identities.context(DOCTOR)] * connections

    def group(
        self, api: ApiServer, operation: str, connections: int, paths: Sequence[str]
    ) -> Group:
        return Group(
            server=api.server,
            server_pids=api.pids,
            contexts=self.contexts(operation, connections),
            flows=self.flows(api, operation, connections),
            paths=list(paths),
        )


def describe(repeat: int, plan: Plan, cell: Cell, sample: Sample) -> str:
    return (
        f"run {repeat + 1}/{plan.repeats} {cell.variant:26} {cell.operation:17} "
        f"{cell.path:16} x{cell.connections:<3} {sample.rate:8,.0f}/s err {sample.errors:<3} "
        f"p50 {sample.p50_ms:7.1f} p99 {sample.p99_ms:7.1f} ms  server {sample.server_us:6,.0f} "
        f"µs/req ({sample.server_busy:4.0%})  client {sample.client_us:4.0f} µs/req "
        f"({sample.client_busy:4.0%})  cores "
        + " ".join(f"{core}:{busy:.0%}" for core, busy in sorted(sample.core_busy.items()))
    )


def measure_group(
    bench: Bench, results: Results, variant: str, group: Group, operation: str, repeat: int
) -> None:
    gc.collect()
    cores = sorted({bench.plan.server_core, bench.plan.client_core})
    runs = asyncio.run(run_group(group, bench.plan.warmup_s, bench.plan.duration_s, cores))
    for path, sample in runs:
        cell = Cell(variant, operation, path, len(group.flows))
        results.add(cell, sample)
        log(describe(repeat, bench.plan, cell, sample))


def measure_ceiling(bench: Bench, results: Results, connections: int, repeat: int) -> None:
    group = Group(
        server=bench.raw,
        server_pids=(bench.raw.pid,),
        contexts=bench.identities.parent_contexts(connections),
        flows=[
            RegisterFlow(uid, i) for i, uid in enumerate(bench.identities.parents[:connections])
        ],
        paths=[API],
    )
    measure_group(bench, results, CEILING, group, REGISTER, repeat)


def ordered(paths: Sequence[str], repeat: int) -> list[str]:
    return list(paths) if repeat % 2 == 0 else list(paths)[::-1]


def run_repeat(bench: Bench, results: Results, repeat: int) -> None:
    plan = bench.plan
    for connections in plan.connections:
        measure_ceiling(bench, results, connections, repeat)
        for api in bench.servers:
            for operation in (REGISTER, UPDATE):
                paths = ordered(PATHS[operation], repeat)
                group = bench.group(api, operation, connections, paths)
                measure_group(bench, results, api.config.label, group, operation, repeat)
            if api.config.workers > 1 and connections in plan.unpinned_connections:
                measure_unpinned(bench, results, api, connections, repeat)


def measure_unpinned(
    bench: Bench, results: Results, api: ApiServer, connections: int, repeat: int
) -> None:
    both = {bench.plan.server_core, bench.plan.client_core}
    set_affinity(api.pids, both)
    os.sched_setaffinity(0, both)
    try:
        for operation in (REGISTER, UPDATE):
            paths = ordered(PATHS[operation], repeat)
            group = bench.group(api, operation, connections, paths)
            measure_group(bench, results, unpinned(api.config), group, operation, repeat)
    finally:
        set_affinity(api.pids, {bench.plan.server_core})
        os.sched_setaffinity(0, {bench.plan.client_core})


def unpinned(config: Config) -> str:
    return f"{config.label} unpinned"


def check_servers(bench: Bench) -> str:
    """Before timing: every path answers a registerChild; returns the TLS version and cipher."""

    async def probe(api: ApiServer) -> str:
        group = bench.group(api, REGISTER, 1, [PLAIN, NOP, NOP_EXT, API])
        runs = await run_group(group, 0.0, 0.2, [bench.plan.server_core])
        for path, sample in runs:
            if sample.errors or not sample.committed:
                raise RuntimeError(f"{api.config.label} {path}: {sample.reasons or 'no answer'}")
        context = bench.identities.context(bench.identities.parents[0])
        _, writer = await asyncio.open_connection(
            "127.0.0.1", api.server.port, ssl=context, server_hostname="127.0.0.1"
        )
        ssl_object = writer.get_extra_info("ssl_object")
        tls = f"{ssl_object.version()} {ssl_object.cipher()[0]}"
        writer.close()
        return tls

    tls = ""
    for api in bench.servers:
        tls = asyncio.run(probe(api))
    return tls


def setup_children(bench: Bench) -> None:
    count = max(bench.plan.connections + bench.plan.unpinned_connections)
    for api in bench.servers:
        started = time.perf_counter()
        children = asyncio.run(
            make_update_children(
                api.server,
                bench.identities.parent_contexts(count),
                bench.identities.context(DOCTOR),
                DOCTOR,
            )
        )
        bench.children[api.config.label] = children
        log(
            f"{api.config.label}: {len(children)} children with ACTIVE agreements with {DOCTOR} "
            f"in {time.perf_counter() - started:.1f} s"
        )


# ----------------------------------------------------------------------- profiling


def missed(results: Results, plan: Plan) -> list[tuple[Config, str, int]]:
    """(config, operation, connections of its best rate) for every missed target."""
    found = []
    for config in plan.configs:
        for operation in (REGISTER, UPDATE):
            best = best_row(results, config.label, operation, plan)
            if best is None:
                continue
            verdict = Verdict.of(results, config, config.label, operation, best, plan)
            if not verdict.met:
                found.append((config, operation, best))
    return found


def what_if_variant(config: Config) -> str:
    return f"{config.label} what-if phase"


def analyse_misses(bench: Bench, results: Results) -> None:
    """Where a target is missed: the what-ifs, then py-spy on /graphql and on the what-if."""
    plan = bench.plan
    if not plan.profile:
        return
    misses = missed(results, plan)
    if not misses:
        return
    log("in process: CPU per registerChild execute, as it is and with stable validators")
    variables = {"input": {"fullName": "What If", "birthDate": "2019-04-02", "sex": "F"}}
    results.what_if = api_profile.what_if(
        bench.identities.fixture.directory,
        bench.identities.fixture.user(bench.identities.parents[0])[0],
        REGISTER_CHILD,
        variables,
    )
    by_label = {api.config.label: api for api in bench.servers}
    single = [c for c in dict.fromkeys(config for config, _, _ in misses) if c.workers == 1]
    for config in single:
        for operation in (REGISTER, UPDATE):
            n = best_row(results, config.label, operation, plan)
            if n is None:
                continue
            results.what_if_http.append((config, operation, n))
            for repeat in range(plan.repeats):
                paths = ordered([API, WHAT_IF, NOP], repeat)
                group = bench.group(by_label[config.label], operation, n, paths)
                measure_group(bench, results, what_if_variant(config), group, operation, repeat)
    if not api_profile.available():
        results.profile_notes.append(
            "py-spy is not installed (`.venv/bin/pip install py-spy`); no profile was taken."
        )
        return
    targets = [(config, operation, n, API) for config, operation, n in misses]
    if single:
        targets += [
            (config, operation, n, WHAT_IF)
            for config, operation, n in results.what_if_http
            if config == single[0]
        ]
    with tempfile.TemporaryDirectory(prefix="bench-api-profile-") as temp:
        for config, operation, connections, path in targets:
            profile_one(bench, results, by_label[config.label], operation, connections, path, temp)


def profile_one(
    bench: Bench,
    results: Results,
    api: ApiServer,
    operation: str,
    connections: int,
    path: str,
    temp: str,
) -> None:
    plan = bench.plan
    group = bench.group(api, operation, connections, [path])
    label = f"{api.config.label} {operation} x{connections} {path}"
    log(f"profiling {label} with py-spy for {plan.profile_s:g} s")

    def spy() -> api_profile.Profile:
        return api_profile.record(
            api.worker_pids, plan.profile_s, plan.profile_rate, Path(temp), label
        )

    holder: list[api_profile.Profile] = []
    try:
        asyncio.run(drive_for(group, plan.profile_s, lambda: holder.append(spy())))
    except RuntimeError as exc:
        results.profile_notes.append(f"{label}: {exc}")
        return
    variant = api.config.label if path == API else what_if_variant(api.config)
    server_us = results.median(Cell(variant, operation, path, connections), "server_us")
    results.profiles.append((label, holder[0], server_us))


# -------------------------------------------------------------------------- report


def best_row(results: Results, variant: str, operation: str, plan: Plan) -> int | None:
    rows = [n for n in plan.connections if results.has(Cell(variant, operation, API, n))]
    if not rows:
        return None
    return max(rows, key=lambda n: results.median(Cell(variant, operation, API, n), "rate"))


@dataclass(frozen=True)
class Verdict:
    rate: float
    ratio: float
    target: float | None
    client_ok: bool

    @classmethod
    def of(
        cls, results: Results, config: Config, variant: str, operation: str, n: int, plan: Plan
    ) -> Verdict:
        rate = results.median(Cell(variant, operation, API, n), "rate")
        nop = results.median(Cell(variant, operation, NOP, n), "rate")
        ceiling = results.median(Cell(CEILING, REGISTER, API, n), "rate")
        return cls(
            rate=rate,
            ratio=rate / nop if nop else float("nan"),
            target=TARGETS.get((config.backend, config.workers)),
            client_ok=ceiling >= CLIENT_HEADROOM * rate,
        )

    @property
    def rate_ok(self) -> bool:
        return self.target is None or self.rate >= self.target

    @property
    def ratio_ok(self) -> bool:
        return self.ratio >= RATIO_TARGET

    @property
    def met(self) -> bool:
        return self.rate_ok and self.ratio_ok

    def target_text(self) -> str:
        parts = [f"≥ {self.target:,.0f}/s"] if self.target else []
        return " & ".join([*parts, f"≥ {RATIO_TARGET:.0%} of nop"])

    def met_text(self) -> str:
        misses = []
        if not self.rate_ok:
            misses.append("rate")
        if not self.ratio_ok:
            misses.append("ratio")
        text = "yes" if not misses else "**no** (" + ", ".join(misses) + ")"
        return text if self.client_ok else text + ", client < 5x"


def variants(plan: Plan) -> list[tuple[Config, str, list[int]]]:
    rows = []
    for config in plan.configs:
        rows.append((config, config.label, plan.connections))
        if config.workers > 1 and plan.unpinned_connections:
            rows.append((config, unpinned(config), plan.unpinned_connections))
    return rows


def main_table(results: Results, plan: Plan) -> str:
    rows = [
        "| backend | workers | operation | conns | committed/s | p50 ms | p99 ms | errors "
        "| plain /s | nop-graphql /s | nop + API extensions /s | ratio to nop-graphql "
        "| client ceiling /s | target | met? |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for config, variant, connections in variants(plan):
        workers = str(config.workers) + (" unpinned" if variant.endswith("unpinned") else "")
        for operation in (REGISTER, UPDATE):
            for n in connections:
                cell = Cell(variant, operation, API, n)
                if not results.has(cell):
                    continue
                verdict = Verdict.of(results, config, variant, operation, n, plan)
                plain = results.median(Cell(variant, REGISTER, PLAIN, n), "rate")
                nop = results.median(Cell(variant, operation, NOP, n), "rate")
                nop_ext = results.median(Cell(variant, operation, NOP_EXT, n), "rate")
                ceiling = results.median(Cell(CEILING, REGISTER, API, n), "rate")
                rows.append(
                    f"| {config.backend} | {workers} | {operation} | {n} "
                    f"| {verdict.rate:,.0f} | {results.median(cell, 'p50_ms'):.1f} "
                    f"| {results.median(cell, 'p99_ms'):.1f} | {results.errors(cell)} "
                    f"| {plain:,.0f} | {nop:,.0f} | {nop_ext:,.0f} | {verdict.ratio:.0%} "
                    f"| {ceiling:,.0f} | {verdict.target_text()} | {verdict.met_text()} |"
                )
    return "\n".join(rows)


def cpu_table(results: Results, plan: Plan) -> str:
    rows = [
        "| backend xworkers | operation | conns | server CPU µs/req: API · nop+ext · nop · plain "
        "| → API /s on free server core(s) | ratio to nop by server CPU | client CPU µs/req "
        "| server CPU busy | client process busy | core busy (server · client) |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for config, variant, connections in variants(plan):
        for operation in (REGISTER, UPDATE):
            for n in connections:
                cell = Cell(variant, operation, API, n)
                if not results.has(cell):
                    continue
                us = [
                    results.median(Cell(variant, operation, path, n), "server_us")
                    for path in (API, NOP_EXT, NOP)
                ]
                us.append(results.median(Cell(variant, REGISTER, PLAIN, n), "server_us"))
                busy = [
                    statistics.median(
                        s.core_busy.get(core, float("nan")) for s in results.samples[cell]
                    )
                    for core in (plan.server_core, plan.client_core)
                ]
                cores = config.workers if variant.endswith("unpinned") else 1
                rows.append(
                    f"| {variant} | {operation} | {n} | {' · '.join(f'{u:,.0f}' for u in us)} "
                    f"| {cores * 1e6 / us[0]:,.0f} | {us[2] / us[0]:.0%} "
                    f"| {results.median(cell, 'client_us'):.0f} "
                    f"| {results.median(cell, 'server_busy'):.0%} "
                    f"| {results.median(cell, 'client_busy'):.0%} "
                    f"| {busy[0]:.0%} · {busy[1]:.0%} |"
                )
    return "\n".join(rows)


def ceiling_table(results: Results, plan: Plan) -> tuple[str, list[str]]:
    rows = [
        "| conns | client ceiling /s | client CPU µs/req | client core busy "
        "| highest committed/s reported | ceiling ÷ it | highest baseline /s (plain, nop) "
        "| ceiling ÷ it |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for n in plan.connections:
        cell = Cell(CEILING, REGISTER, API, n)
        ceiling = results.median(cell, "rate")
        api_rates = [
            results.median(c, "rate")
            for c in results.samples
            if c.connections == n and c.path == API and c.variant != CEILING
        ]
        base_rates = [
            results.median(c, "rate")
            for c in results.samples
            if c.connections == n and c.path in (PLAIN, NOP, NOP_EXT)
        ]
        top_api, top_base = max(api_rates, default=0.0), max(base_rates, default=0.0)
        rows.append(
            f"| {n} | {ceiling:,.0f} | {results.median(cell, 'client_us'):.0f} "
            f"| {results.median(cell, 'client_busy'):.0%} | {top_api:,.0f} "
            f"| {ceiling / top_api if top_api else float('nan'):.1f}x | {top_base:,.0f} "
            f"| {ceiling / top_base if top_base else float('nan'):.1f}x |"
        )
        if top_api and ceiling < CLIENT_HEADROOM * top_api:
            notes.append(
                f"{n} conns: the client ceiling is under {CLIENT_HEADROOM:g}x the committed "
                "rates: treat them as lower bounds"
            )
        if top_base and ceiling < CLIENT_HEADROOM * top_base:
            notes.append(
                f"{n} conns: the ceiling is only {ceiling / top_base:.1f}x the fastest baseline "
                f"({top_base:,.0f}/s): /plain (and a fast nop) there are partly client-bound, "
                "so they are lower bounds; server CPU µs/req is the client-independent figure"
            )
    return "\n".join(rows), notes


def verdict_lines(results: Results, plan: Plan) -> list[str]:
    lines = []
    for config, variant, _ in variants(plan):
        for operation in (REGISTER, UPDATE):
            n = best_row(results, variant, operation, plan)
            if n is None:
                continue
            verdict = Verdict.of(results, config, variant, operation, n, plan)
            target = f"target {verdict.target:,.0f}/s" if verdict.target else ""
            us = results.median(Cell(variant, operation, API, n), "server_us")
            nop_us = results.median(Cell(variant, operation, NOP, n), "server_us")
            cores = config.workers if variant.endswith("unpinned") else 1
            lines.append(
                f"{variant}, {operation}: best {verdict.rate:,.0f}/s at {n} conns "
                + (
                    f"({target}: {'met' if verdict.rate_ok else '**missed**'})"
                    if target
                    else "(no absolute target)"
                )
                + f"; {verdict.ratio:.0%} of "
                f"nop-graphql ({'met' if verdict.ratio_ok else '**missed**'}); by server CPU "
                f"{us:,.0f} µs per commit against {nop_us:,.0f} µs per nop ({nop_us / us:.0%}), "
                f"i.e. at most {cores * 1e6 / us:,.0f}/s on {cores} undisturbed core(s)"
                + ("" if verdict.client_ok else "; client ceiling under 5x this rate")
            )
    return lines


def what_if_section(results: Results, plan: Plan) -> list[str]:
    lines: list[str] = []
    if results.what_if:
        lines += [
            "",
            "### In process: CPU per registerChild `schema.execute` (no TLS/HTTP/Starlette)",
            "",
            "64 concurrent executes at a time on the client core, on a memory:// ledger, the "
            "ledger's commit thread included; best of 3 runs of 1,024.",
            "",
            "| schema | CPU µs per execute | → executes/s on one core |",
            "|---|---:|---:|",
            *[f"| {label} | {us:,.0f} | {1e6 / us:,.0f} |" for label, us in results.what_if],
        ]
    if results.what_if_http:
        lines += [
            "",
            f"### Over HTTPS: `{WHAT_IF}` (the real schema, limit validators built once)",
            "",
            "Same server, same connections, windows interleaved with /graphql and "
            f"/nop-graphql, {plan.repeats} repeats at the connection count of the best "
            "/graphql rate.",
            "",
            "| backend x workers | operation | conns | /graphql /s (µs/req) "
            "| what-if /s (µs/req) | nop-graphql /s (µs/req) | what-if ÷ nop: rate · CPU "
            "| what-if /s on a free core | target | met with the what-if? |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
        ]
        for config, operation, n in results.what_if_http:
            variant = what_if_variant(config)
            figures = {
                path: (
                    results.median(Cell(variant, operation, path, n), "rate"),
                    results.median(Cell(variant, operation, path, n), "server_us"),
                )
                for path in (API, WHAT_IF, NOP)
            }
            (api_rate, api_us), (wi_rate, wi_us), (nop_rate, nop_us) = figures.values()
            target = TARGETS.get((config.backend, config.workers))
            ratio, cpu_ratio = wi_rate / nop_rate, nop_us / wi_us
            rate_ok = target is None or wi_rate >= target
            misses = [
                m for m, ok in (("rate", rate_ok), ("ratio", ratio >= RATIO_TARGET)) if not ok
            ]
            lines.append(
                f"| {config.label} | {operation} | {n} | {api_rate:,.0f} ({api_us:,.0f}) "
                f"| {wi_rate:,.0f} ({wi_us:,.0f}) | {nop_rate:,.0f} ({nop_us:,.0f}) "
                f"| {ratio:.0%} · {cpu_ratio:.0%} | {1e6 / wi_us:,.0f} "
                f"| {(f'≥ {target:,.0f}/s & ' if target else '')}≥ {RATIO_TARGET:.0%} of nop "
                f"| {'yes' if not misses else 'no (' + ', '.join(misses) + ')'} |"
            )
    return lines


def profile_section(results: Results) -> list[str]:
    lines: list[str] = []
    for note in results.profile_notes:
        lines.append(f"- {note}")
    for label, profile, server_us in results.profiles:
        lines += [
            "",
            f"### {label}",
            "",
            f"py-spy --gil, {profile.seconds:g} s at {profile.rate} Hz on "
            f"{profile.processes} worker process(es): {profile.total:,} samples, the GIL was "
            f"held in {profile.coverage:.0%} of sampled time; server CPU {server_us:,.0f} µs per "
            "committed request in the timed windows.",
            "",
            *api_profile.render(profile, server_us),
        ]
    return lines


def environment(plan: Plan, results: Results, started: str, load: str) -> list[str]:
    versions = [
        f"Python {platform.python_version()}",
        ssl.OPENSSL_VERSION,
        f"uvicorn {uvicorn.__version__}",
        f"Starlette {starlette.__version__}",
        f"Strawberry {_version('strawberry-graphql')}",
        f"graphql-core {_version('graphql-core')}",
    ]
    backends = {c.backend for c in plan.configs}
    if "postgresql" in backends:
        versions.append(f"PostgreSQL {_postgres_version(plan.servers.postgres_url)}")
    if "redis" in backends:
        versions.append(_redis_settings(plan.servers.redis_url))
    if "sqlite" in backends:
        import sqlite3

        versions.append(f"SQLite {sqlite3.sqlite_version}")
    return [
        f"- date: {started}; machine: {os.cpu_count()} CPUs ({platform.machine()}), shared "
        f"and noisy; load average at start {load}, at end {load_average()}",
        "- software: " + ", ".join(versions),
        f"- TLS: {results.tls}, ECDSA P-256 certificates from `healthledger network init`/"
        "`enroll`; every request over HTTPS keep-alive with a client certificate",
        f"- pinning: server processes on CPU {plan.server_core} (both workers of a 2-worker "
        f"server too), load generator on CPU {plan.client_core}; 'unpinned' rows: workers and "
        "client on both CPUs; PostgreSQL and Redis are shared services, not pinned",
        f"- windows: {plan.repeats} repeats x {plan.duration_s:g} s per figure after "
        f"{plan.warmup_s:g} s warm-up on fresh connections; medians; ledger group commit as "
        "network.toml sets it (batch_timeout_ms = 2, max_batch = 500)",
    ]


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


def _postgres_version(url: str) -> str:
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            sync = conn.execute("SHOW synchronous_commit").fetchone()
        return f"{row[0] if row else '?'} (synchronous_commit={sync[0] if sync else '?'})"
    except psycopg.Error:
        return "(unknown)"


def _redis_settings(url: str) -> str:
    try:
        client = redis.Redis.from_url(url, socket_timeout=5)
        with client:
            info = client.info("server")
            aof = client.config_get("appendonly").get("appendonly")
            fsync = client.config_get("appendfsync").get("appendfsync")
        return f"Redis {info.get('redis_version')} (appendonly={aof}, appendfsync={fsync})"
    except redis.RedisError:
        return "Redis (unknown)"


def render(plan: Plan, results: Results, header: list[str]) -> str:
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    ceiling, ceiling_notes = ceiling_table(results, plan)
    return "\n".join(
        [
            "# healthledger API: committed mutations/s over mutual TLS",
            "",
            f"`{command}`",
            "",
            *header,
            "",
            "## Committed mutations/s, latency, baselines on the same server",
            "",
            "plain = Starlette JSON route; nop-graphql = the same mutation in Strawberry "
            "without a ledger, behind the same identity gate, with only Strawberry's parser "
            "and validation caches; nop + API extensions = the same with the real schema's "
            "extension list. Ratio = committed/s ÷ nop-graphql/s at the same connection "
            "count. Rates are disturbed by other tenants of this machine (see core busy "
            "below); server CPU per request is the steadier figure.",
            "",
            main_table(results, plan),
            "",
            "## Server CPU per request (what an undisturbed core would turn into a rate)",
            "",
            cpu_table(results, plan),
            "",
            "## Load generator ceiling (same client, bare asyncio TLS server, mutual TLS)",
            "",
            ceiling,
            "",
            *[f"- {note}" for note in ceiling_notes],
            "",
            "## Targets",
            "",
            *[f"- {line}" for line in verdict_lines(results, plan)],
            "",
            "## What would close it: what-ifs (bench only; api/ is unchanged)",
            *what_if_section(results, plan),
            "",
            "## Profiles of missed targets (py-spy on the server workers)",
            *profile_section(results),
        ]
    )


def dump_json(path: Path, results: Results) -> None:
    rows = [
        {
            "variant": cell.variant,
            "operation": cell.operation,
            "path": cell.path,
            "connections": cell.connections,
            "windows": [
                {
                    "committed": s.committed,
                    "errors": s.errors,
                    "seconds": s.seconds,
                    "rate": s.rate,
                    "p50_ms": s.p50_ms,
                    "p99_ms": s.p99_ms,
                    "server_us": s.server_us,
                    "client_us": s.client_us,
                    "core_busy": s.core_busy,
                    "reasons": s.reasons,
                }
                for s in samples
            ],
        }
        for cell, samples in results.samples.items()
    ]
    path.write_text(json.dumps(rows, indent=1))


# ---------------------------------------------------------------------------- main


def run_all(plan: Plan, temp: Path) -> Results:
    results = Results()
    parents = max(plan.connections + plan.unpinned_connections)
    log(f"making a network with {parents} extra parents in {temp}")
    fixture = make_network(temp / "network")
    identities = Identities(fixture, parents)
    with contextlib.ExitStack() as stack:
        raw = stack.enter_context(
            server_process(
                CEILING,
                fixture.directory,
                plan.server_core,
                kind="raw",
                http="httptools",
                verify="required",
            )
        )
        servers = []
        for config in plan.configs:
            store = stack.enter_context(scratch_store(config.backend, plan.servers))
            api = stack.enter_context(
                api_server_process(
                    config,
                    fixture.directory,
                    store.url,
                    plan.server_core,
                    temp / f"ready-{config.backend}-{config.workers}",
                )
            )
            log(f"started {config.label} on port {api.server.port}, pids {api.pids}, {store.url}")
            servers.append(api)
        os.sched_setaffinity(0, {plan.client_core})
        bench = Bench(plan, identities, raw, servers)
        results.tls = check_servers(bench)
        setup_children(bench)
        for repeat in range(plan.repeats):
            run_repeat(bench, results, repeat)
        analyse_misses(bench, results)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    plan = parse_args(list(argv) if argv is not None else None)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    load = load_average()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-api-") as temp:
        results = run_all(plan, Path(temp))
    if plan.json_path is not None:
        dump_json(plan.json_path, results)
    print(render(plan, results, environment(plan, results, started, load)))
    log(f"done in {(time.perf_counter() - began) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
