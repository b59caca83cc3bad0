"""What resolving the caller's Identity costs a uvicorn server over mutual TLS.

Set-up: a fresh network is made in a temporary directory by the same code as
`healthledger network init` and `enroll` (tests/networks.py); the parent user
`alice` is the client. The servers run as separate processes pinned to one core
(bench/identity_server.py); the load generator runs in this process, pinned to
the other core. Everything is on 127.0.0.1.

Servers: uvicorn (asyncio loop) with `server_ssl_context(network)` and the
client-certificate protocol class (httptools, and h11), serving a Starlette app
with `/plain` (a fixed JSON body; the identity is never resolved) and `/whoami`
(`CallerIdentifier(IdentityVerifier.from_network(network),
ProxySettings.from_network(network)).identify(request.scope)`, answered as JSON
of the same shape) behind one route, so the two differ only in the identity
work. Also running: the same app with a server context that does not ask for
client certificates (CERT_NONE), and a bare asyncio TLS server that answers
every request with one fixed response.

Load generator: a minimal asyncio HTTP/1.1 client, `asyncio.open_connection`
with an `ssl` context holding alice's certificate, `GET /path HTTP/1.1` with a
Host header, then the response head and its Content-Length body; any status
other than 200 stops the benchmark. Each window counts completed requests and
reads both processes' CPU time (this process's, and the server's from
/proc/PID/stat).

Measured:

1. Keep-alive requests/s for /plain and /whoami with 1, 8 and 32 connections,
   one request in flight on each. Per repeat, the same connections run four
   windows, A-B-B-A (A is /plain on even repeats, /whoami on odd ones), so a
   pair is measured seconds apart. identity cost = 1 - whoami/plain, from the
   medians of all windows and per repeat; the same from the server's CPU time
   per request, which other load on a shared machine disturbs much less.
2. The load generator's ceiling: the same client against the bare TLS server
   (mutual TLS too) on the server core, with the client's CPU per request.
3. Full handshakes/s: a new TLS connection per request (`Connection: close`,
   no session resumption), `--handshake-connections` at a time, against uvicorn
   with client certificates required (mutual TLS) and not requested (CERT_NONE),
   same endpoint /plain; also /whoami over mutual TLS, and the bare server as
   the client's own handshake ceiling. CPU per handshake shows which side limits.
4. In process, no network: the Starlette app's time per /plain and /whoami
   request, and each step of `identify()`, to show what the identity cost is.

All servers start once; every figure is taken once per repeat, interleaved,
so slow drift on a noisy machine hits all of them alike. Figures are medians of
`--repeats`. Progress goes to stderr, the Markdown report to stdout. The
temporary network and the server processes are removed at the end, also on
error, Ctrl-C or SIGTERM (servers also stop when this process dies: they exit
on EOF on stdin).

Run from the repository root:
    .venv/bin/python bench/identity.py [--repeats 5] [--duration 2] [--http httptools,h11]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
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
import timeit
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

# Measure the authz package next to this script, not whichever copy is installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import starlette
import uvicorn
from arguments import names, positive_ints
from identity_server import build_app

from authz.identity import IdentityVerifier
from authz.mtls import CallerIdentifier, ProxySettings, client_certificate_der
from authz.network import load_network
from tests.networks import NetworkFixture, make_network

ROOT = Path(__file__).resolve().parent.parent
SERVER_SCRIPT = ROOT / "bench" / "identity_server.py"
CLIENT_UID = "alice"
HOST = "127.0.0.1"
PATHS = ("/plain", "/whoami")
TARGET_COST = 0.05
NOISE_SPREAD = 0.10
CLK_TCK = os.sysconf("SC_CLK_TCK")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
DRAIN_TIMEOUT_S = 10.0
SETTLE_S = 0.2
BREAKDOWN_REPEATS = 7
APP_PLAIN_LABEL = "Starlette app /plain (routing, endpoint, JSONResponse, send)"
IDENTIFY_LABEL = "CallerIdentifier.identify(scope)"
PEM_LABEL = "· · ssl.PEM_cert_to_DER_cert(pem)"
T = TypeVar("T")


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class Plan:
    """What to run, from the command line."""

    http: list[str]
    connections: list[int]
    handshake_connections: int
    warmup_s: float
    duration_s: float
    repeats: int
    server_core: int
    client_core: int


def parse_args(argv: list[str] | None) -> Plan:
    parser = argparse.ArgumentParser(
        description="Requests/s of uvicorn over mutual TLS with and without resolving the "
        "caller's Identity, the load generator's ceiling, and full handshakes/s.",
    )
    parser.add_argument("--http", type=names(("httptools", "h11")), default=["httptools", "h11"])
    parser.add_argument(
        "--connections", type=positive_ints("connection counts", "1,8,32"), default=[1, 8, 32]
    )
    parser.add_argument("--handshake-connections", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before each window")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per window")
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--client-core", type=int, default=1)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.duration <= 0 or args.warmup < 0:
        parser.error("--repeats must be ≥ 1, --duration > 0 and --warmup ≥ 0.")
    if args.handshake_connections < 1:
        parser.error("--handshake-connections must be at least 1.")
    usable = os.sched_getaffinity(0)
    if {args.server_core, args.client_core} - usable or args.server_core == args.client_core:
        parser.error(f"--server-core and --client-core must be two of the CPUs {sorted(usable)}.")
    return Plan(
        http=args.http,
        connections=args.connections,
        handshake_connections=args.handshake_connections,
        warmup_s=args.warmup,
        duration_s=args.duration,
        repeats=args.repeats,
        server_core=args.server_core,
        client_core=args.client_core,
    )


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------ servers


@dataclass(frozen=True)
class Server:
    """A running server process: what it is, where it listens, its pid for CPU time."""

    label: str
    port: int
    pid: int


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (10 ms resolution)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


@contextlib.contextmanager
def server_process(
    label: str, network_dir: Path, core: int, *, kind: str, http: str, verify: str
) -> Iterator[Server]:
    """Start bench/identity_server.py pinned to `core`; stop it on exit, whatever happens."""
    command = [
        sys.executable,
        str(SERVER_SCRIPT),
        f"--network={network_dir}",
        f"--kind={kind}",
        f"--http={http}",
        f"--verify={verify}",
    ]
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT, text=True
    )
    try:
        os.sched_setaffinity(process.pid, {core})
        port = _await_ready(process, label)
        yield Server(label, port, process.pid)
    finally:
        _stop(process)


def _await_ready(process: subprocess.Popen[str], label: str) -> int:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT_S)
    line = process.stdout.readline() if ready else ""
    if not line.startswith("READY "):
        raise RuntimeError(f"server {label!r} did not start (exit code {process.poll()})")
    return int(line.split()[1])


def _stop(process: subprocess.Popen[str]) -> None:
    """EOF on stdin asks the server to stop; SIGTERM, then SIGKILL, if it does not."""
    with contextlib.suppress(OSError):
        if process.stdin is not None:
            process.stdin.close()
    for action in (None, process.terminate, process.kill):
        if action is not None:
            with contextlib.suppress(ProcessLookupError):
                action()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
            break
        except subprocess.TimeoutExpired:
            continue
    if process.stdout is not None:
        process.stdout.close()


# ------------------------------------------------------------------------- client


class ResponseError(RuntimeError):
    """The server answered something other than what the benchmark expects."""


@dataclass(frozen=True)
class Target:
    server: Server
    context: ssl.SSLContext

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(
            HOST, self.server.port, ssl=self.context, server_hostname=HOST
        )

    def request(self, path: str, *, close: bool = False) -> bytes:
        extra = "Connection: close\r\n" if close else ""
        return f"GET {path} HTTP/1.1\r\nHost: {HOST}:{self.server.port}\r\n{extra}\r\n".encode()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.1 response with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    start = lower.find(b"\r\ncontent-length:")
    if start < 0:
        raise ResponseError(f"no Content-Length in {head!r}")
    end = lower.index(b"\r\n", start + 2)
    length = int(head[start + 17 : end])
    body = await reader.readexactly(length) if length else b""
    return status, body


async def close_quietly(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), 2.0)


@dataclass
class LoadState:
    """Shared by the workers of one run: keep going?, what to send, how many completed."""

    request: bytes
    running: bool = True
    completed: int = 0


@dataclass(frozen=True)
class Sample:
    """One measurement window."""

    requests: int
    seconds: float
    client_cpu_s: float
    server_cpu_s: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def client_busy(self) -> float:
        return self.client_cpu_s / self.seconds

    @property
    def server_busy(self) -> float:
        return self.server_cpu_s / self.seconds

    @property
    def server_us_per_request(self) -> float:
        return self.server_cpu_s / self.requests * 1e6 if self.requests else float("nan")

    @property
    def client_us_per_request(self) -> float:
        return self.client_cpu_s / self.requests * 1e6 if self.requests else float("nan")


def _check(status: int, body: bytes) -> None:
    if status != 200:
        raise ResponseError(f"status {status}: {body[:200]!r}")


async def keepalive_worker(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: LoadState
) -> None:
    while state.running:
        writer.write(state.request)
        _check(*await read_response(reader))
        state.completed += 1


async def handshake_worker(target: Target, state: LoadState) -> None:
    while state.running:
        reader, writer = await target.connect()
        try:
            writer.write(state.request)
            status, body = await read_response(reader)
        finally:
            await close_quietly(writer)
        _check(status, body)
        state.completed += 1


async def window(state: LoadState, server_pid: int, seconds: float) -> Sample:
    """Count completions and both processes' CPU time over `seconds` of load."""
    begin = (time.perf_counter(), state.completed, time.process_time())
    server_begin = process_cpu_seconds(server_pid)
    await asyncio.sleep(seconds)
    end = (time.perf_counter(), state.completed, time.process_time())
    server_end = process_cpu_seconds(server_pid)
    return Sample(
        requests=end[1] - begin[1],
        seconds=end[0] - begin[0],
        client_cpu_s=end[2] - begin[2],
        server_cpu_s=server_end - server_begin,
    )


async def path_windows(
    state: LoadState, target: Target, order: Sequence[str], plan: Plan
) -> list[tuple[str, Sample]]:
    """After the warm-up, one window per entry of `order`, switching the path in between."""
    await asyncio.sleep(plan.warmup_s)
    samples = []
    current = order[0]
    for path in order:
        if path != current:
            state.request, current = target.request(path), path
            await asyncio.sleep(SETTLE_S)
        samples.append((path, await window(state, target.server.pid, plan.duration_s)))
    return samples


async def drive(
    workers: list[asyncio.Task[None]], state: LoadState, measurement: Coroutine[Any, Any, T]
) -> T:
    """Run `measurement` while the workers load the server; a worker's failure ends it."""
    measuring = asyncio.create_task(measurement)
    try:
        # Workers return only by failing while `state.running`, so this waits for the windows.
        await asyncio.wait([measuring, *workers], return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not measuring.done():
            measuring.cancel()
        await _finish(workers, state)
    return measuring.result()


async def _finish(workers: list[asyncio.Task[None]], state: LoadState) -> None:
    """Stop the workers after their request in flight; re-raise the first failure."""
    state.running = False
    done, pending = await asyncio.wait(workers, timeout=DRAIN_TIMEOUT_S)
    for task in pending:
        task.cancel()
    for task in done:
        task.result()
    if pending:
        raise ResponseError(f"{len(pending)} connections did not finish their last request")


async def keepalive_run(
    target: Target, order: Sequence[str], connections: int, plan: Plan
) -> list[tuple[str, Sample]]:
    """Keep-alive connections opened before the warm-up, one request in flight on each."""
    streams = [await target.connect() for _ in range(connections)]
    state = LoadState(target.request(order[0]))
    workers = [
        asyncio.create_task(keepalive_worker(reader, writer, state)) for reader, writer in streams
    ]
    try:
        return await drive(workers, state, path_windows(state, target, order, plan))
    finally:
        for _, writer in streams:
            await close_quietly(writer)


async def handshake_run(target: Target, path: str, plan: Plan) -> Sample:
    """`plan.handshake_connections` loops of connect, one request, close; one window."""
    state = LoadState(target.request(path, close=True))
    workers = [
        asyncio.create_task(handshake_worker(target, state))
        for _ in range(plan.handshake_connections)
    ]
    [(_, sample)] = await drive(workers, state, path_windows(state, target, [path], plan))
    return sample


async def fetch_once(target: Target, path: str) -> tuple[int, bytes, str]:
    """One request on a new connection: status, body, and the TLS version and cipher."""
    reader, writer = await target.connect()
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        tls = f"{ssl_object.version()} {ssl_object.cipher()[0]}"
        writer.write(target.request(path, close=True))
        status, body = await read_response(reader)
    finally:
        await close_quietly(writer)
    return status, body, tls


# ---------------------------------------------------------------------- the cells


@dataclass(frozen=True)
class Cell:
    """One figure: which server, which kind of load, which path, how many connections."""

    group: str  # "keepalive", "ceiling" or "handshake"
    server: str
    path: str
    connections: int


@dataclass
class Results:
    samples: dict[Cell, list[Sample]] = field(default_factory=dict)
    # Per repeat, 1 - whoami/plain from that repeat's A-B-B-A windows, by (server, conns).
    paired: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    breakdown: list[tuple[str, float]] = field(default_factory=list)
    tls: str = ""

    def add(self, cell: Cell, sample: Sample) -> None:
        self.samples.setdefault(cell, []).append(sample)

    def median(self, cell: Cell, what: str) -> float:
        return float(statistics.median(getattr(sample, what) for sample in self.samples[cell]))


def app_label(http: str, verify: str = "required") -> str:
    return f"uvicorn {http}" + (NO_CERT if verify == "none" else "")


NO_CERT = ", no client cert requested"
RAW_MTLS = "bare asyncio TLS server"
RAW_NONE = RAW_MTLS + NO_CERT


def start_servers(stack: contextlib.ExitStack, network_dir: Path, plan: Plan) -> dict[str, Server]:
    specs = [(app_label(http), "app", http, "required") for http in plan.http]
    specs += [
        (app_label(plan.http[0], "none"), "app", plan.http[0], "none"),
        (RAW_MTLS, "raw", "httptools", "required"),
        (RAW_NONE, "raw", "httptools", "none"),
    ]
    servers = {}
    for label, kind, http, verify in specs:
        servers[label] = stack.enter_context(
            server_process(
                label, network_dir, plan.server_core, kind=kind, http=http, verify=verify
            )
        )
        log(f"started {label} on port {servers[label].port} (pid {servers[label].pid})")
    return servers


def check_servers(servers: dict[str, Server], context: ssl.SSLContext, plan: Plan) -> str:
    """Before timing: /whoami names alice over mutual TLS and refuses without a certificate."""
    tls = ""
    for http in plan.http:
        target = Target(servers[app_label(http)], context)
        status, body, tls = asyncio.run(fetch_once(target, "/whoami"))
        if status != 200 or f'"uid":"{CLIENT_UID}"' not in body.decode():
            raise ResponseError(f"{app_label(http)} /whoami: {status} {body!r}")
    no_cert = Target(servers[app_label(plan.http[0], "none")], context)
    status, body, _ = asyncio.run(fetch_once(no_cert, "/whoami"))
    if status != 401:
        raise ResponseError(f"without a client certificate /whoami answered {status} {body!r}")
    return tls


def _describe(repeat: int, plan: Plan, cell: Cell, sample: Sample) -> str:
    return (
        f"run {repeat + 1}/{plan.repeats} {cell.group:9} {cell.server:50} {cell.path:7} "
        f"x{cell.connections:<3} {sample.rate:9,.0f}/s  server {sample.server_busy:4.0%} "
        f"({sample.server_us_per_request:6.0f} µs/req)  client {sample.client_busy:4.0%}"
    )


def measure_keepalive(
    results: Results, target: Target, connections: int, plan: Plan, repeat: int
) -> None:
    """A-B-B-A windows on the same connections; which path is A alternates by repeat."""
    first, second = PATHS if repeat % 2 == 0 else PATHS[::-1]
    gc.collect()
    runs = asyncio.run(keepalive_run(target, [first, second, second, first], connections, plan))
    rates: dict[str, list[float]] = {path: [] for path in PATHS}
    for path, sample in runs:
        cell = Cell("keepalive", target.server.label, path, connections)
        results.add(cell, sample)
        rates[path].append(sample.rate)
        log(_describe(repeat, plan, cell, sample))
    cost = 1 - statistics.fmean(rates["/whoami"]) / statistics.fmean(rates["/plain"])
    results.paired.setdefault((target.server.label, connections), []).append(cost)


def measure_single(results: Results, cell: Cell, target: Target, plan: Plan, repeat: int) -> None:
    gc.collect()
    if cell.group == "handshake":
        sample = asyncio.run(handshake_run(target, cell.path, plan))
    else:
        [(_, sample)] = asyncio.run(keepalive_run(target, [cell.path], cell.connections, plan))
    results.add(cell, sample)
    log(_describe(repeat, plan, cell, sample))


def handshake_cells(plan: Plan, repeat: int) -> list[Cell]:
    n = plan.handshake_connections
    first = plan.http[0]
    pair = [
        Cell("handshake", app_label(first), "/plain", n),
        Cell("handshake", app_label(first, "none"), "/plain", n),
    ]
    return [
        *(pair if repeat % 2 == 0 else pair[::-1]),
        Cell("handshake", app_label(first), "/whoami", n),
        Cell("handshake", RAW_MTLS, "/plain", n),
        Cell("handshake", RAW_NONE, "/plain", n),
    ]


def run_repeat(
    results: Results, servers: dict[str, Server], context: ssl.SSLContext, plan: Plan, repeat: int
) -> None:
    """Every figure once: keep-alive pairs and the ceiling per connection count, handshakes."""
    for connections in plan.connections:
        for http in plan.http:
            target = Target(servers[app_label(http)], context)
            measure_keepalive(results, target, connections, plan, repeat)
        ceiling = Cell("ceiling", RAW_MTLS, "/plain", connections)
        measure_single(results, ceiling, Target(servers[RAW_MTLS], context), plan, repeat)
    for cell in handshake_cells(plan, repeat):
        measure_single(results, cell, Target(servers[cell.server], context), plan, repeat)


def run_all(fixture: NetworkFixture, plan: Plan) -> Results:
    context = fixture.client_context(CLIENT_UID)
    results = Results()
    with contextlib.ExitStack() as stack:
        servers = start_servers(stack, fixture.directory, plan)
        os.sched_setaffinity(0, {plan.client_core})
        results.tls = check_servers(servers, context, plan)
        results.breakdown = identify_breakdown(fixture)
        for repeat in range(plan.repeats):
            run_repeat(results, servers, context, plan, repeat)
    return results


# -------------------------------------------------------- in-process breakdown


def _asgi_scope(path: str, tls: dict[str, Any]) -> dict[str, Any]:
    """The scope uvicorn's httptools protocol and authz.mtls make for `GET path`."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": (HOST, 8443),
        "client": (HOST, 50000),
        "scheme": "https",
        "method": "GET",
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", f"{HOST}:8443".encode())],
        "state": {},
        "extensions": {"tls": tls},
    }


def _time_per_call(function: Callable[[], object], number: int) -> float:
    """Best of BREAKDOWN_REPEATS batches, in µs per call."""
    timings = timeit.repeat(function, number=number, repeat=BREAKDOWN_REPEATS)
    return min(timings) / number * 1e6


async def _time_asgi(app: Any, path: str, tls: dict[str, Any], number: int) -> float:
    """Best of BREAKDOWN_REPEATS batches of in-process ASGI calls, in µs per request."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: dict[str, Any]) -> None:
        return None

    best = float("inf")
    for _ in range(BREAKDOWN_REPEATS):
        start = time.perf_counter()
        for _ in range(number):
            await app(_asgi_scope(path, tls), receive, send)
        best = min(best, time.perf_counter() - start)
    return best / number * 1e6


def identify_breakdown(fixture: NetworkFixture) -> list[tuple[str, float]]:
    """µs per call of the app and of each step of identify(), in this process (no network)."""
    network = load_network(fixture.directory)
    der = ssl.PEM_cert_to_DER_cert(fixture.user(CLIENT_UID)[0].read_text())
    pem = ssl.DER_cert_to_PEM_cert(der)  # what the protocol class puts in the scope
    # The ASGI TLS extension as authz.mtls adds it to every scope of a connection.
    tls = {"client_cert_chain": [pem], "server_cert": None, "tls_version": "TLSv1.3"}
    app = build_app(network)
    identifier = CallerIdentifier(
        IdentityVerifier.from_network(network), ProxySettings.from_network(network)
    )
    scope = _asgi_scope("/whoami", tls)
    number = 20_000
    plain = asyncio.run(_time_asgi(app, "/plain", tls, number))
    whoami = asyncio.run(_time_asgi(app, "/whoami", tls, number))
    steps: list[tuple[str, Callable[[], object]]] = [
        (IDENTIFY_LABEL, lambda: identifier.identify(scope)),
        ("· client_certificate_der(scope)", lambda: client_certificate_der(scope)),
        (PEM_LABEL, lambda: ssl.PEM_cert_to_DER_cert(pem)),
        ("· IdentityVerifier.identify(der), cached", lambda: identifier.verifier.identify(der)),
        ("· · hashlib.sha256(der).hexdigest()", lambda: hashlib.sha256(der).hexdigest()),
    ]
    rows = [
        (APP_PLAIN_LABEL, plain),
        ("Starlette app /whoami", whoami),
        ("difference /whoami - /plain", whoami - plain),
    ]
    rows += [(label, _time_per_call(function, 10 * number)) for label, function in steps]
    log(
        "in-process breakdown: "
        + ", ".join(f"{label.strip('· ')} {us:.2f} µs" for label, us in rows)
    )
    return rows


# ------------------------------------------------------------------------- report


def _pct(value: float) -> str:
    return f"{value:.1%}"


@dataclass(frozen=True)
class CostFigures:
    """/plain against /whoami for one server and connection count."""

    http: str
    connections: int
    plain_rate: float
    whoami_rate: float
    paired: list[float]
    plain_us: float
    whoami_us: float
    server_busy: float
    client_busy: float

    @classmethod
    def of(cls, results: Results, http: str, connections: int) -> CostFigures:
        plain = Cell("keepalive", app_label(http), "/plain", connections)
        whoami = Cell("keepalive", app_label(http), "/whoami", connections)
        return cls(
            http=http,
            connections=connections,
            plain_rate=results.median(plain, "rate"),
            whoami_rate=results.median(whoami, "rate"),
            paired=results.paired[(app_label(http), connections)],
            plain_us=results.median(plain, "server_us_per_request"),
            whoami_us=results.median(whoami, "server_us_per_request"),
            server_busy=max(results.median(c, "server_busy") for c in (plain, whoami)),
            client_busy=max(results.median(c, "client_busy") for c in (plain, whoami)),
        )

    @property
    def cost(self) -> float:
        return 1 - self.whoami_rate / self.plain_rate

    @property
    def cpu_cost(self) -> float:
        return 1 - self.plain_us / self.whoami_us

    @property
    def spread(self) -> float:
        return max(self.paired) - min(self.paired)

    def row(self) -> str:
        paired = self.paired
        return (
            f"| {self.http} | {self.connections} | {self.plain_rate:,.0f} "
            f"| {self.whoami_rate:,.0f} | {_pct(self.cost)} "
            f"| {_pct(statistics.median(paired))} ({_pct(min(paired))} … {_pct(max(paired))}) "
            f"| {self.plain_us:.0f} → {self.whoami_us:.0f} | **{_pct(self.cpu_cost)}** "
            f"| {self.server_busy:.0%} | {self.client_busy:.0%} |"
        )

    def verdict(self) -> str:
        text = (
            f"{self.http}, {self.connections} conns: by server CPU per request "
            f"{_pct(self.cpu_cost)} ({_met(self.cpu_cost)}); by req/s medians "
            f"{_pct(self.cost)} ({_met(self.cost)})"
        )
        if self.spread > NOISE_SPREAD:
            text += (
                f"; the req/s figure cannot resolve 5% here (per-repeat costs spread over "
                f"{self.spread * 100:.0f} points)"
            )
        return text


def _met(cost: float) -> str:
    return "met" if cost < TARGET_COST else "NOT met"


def keepalive_table(results: Results, plan: Plan) -> tuple[str, list[str]]:
    rows = [
        "| server | conns | /plain req/s | /whoami req/s | identity cost (req/s medians) "
        "| paired per repeat: median (min … max) | server CPU µs/req /plain → /whoami "
        "| identity cost by server CPU | server core busy | client core busy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    figures = [CostFigures.of(results, h, n) for h in plan.http for n in plan.connections]
    rows += [figure.row() for figure in figures]
    return "\n".join(rows), [figure.verdict() for figure in figures]


def ceiling_table(results: Results, plan: Plan) -> str:
    rows = [
        "| conns | bare TLS server req/s | client core busy | client CPU µs/req "
        "| client-only limit (1 / CPU per req) | fastest uvicorn req/s "
        "| ceiling ÷ fastest uvicorn | client core busy in uvicorn runs (max) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for connections in plan.connections:
        ceiling = Cell("ceiling", RAW_MTLS, "/plain", connections)
        app_cells = [
            Cell("keepalive", app_label(http), path, connections)
            for http in plan.http
            for path in PATHS
        ]
        fastest = max(results.median(cell, "rate") for cell in app_cells)
        app_client_busy = max(results.median(cell, "client_busy") for cell in app_cells)
        rate = results.median(ceiling, "rate")
        client_us = results.median(ceiling, "client_us_per_request")
        rows.append(
            f"| {connections} | {rate:,.0f} | {results.median(ceiling, 'client_busy'):.0%} "
            f"| {client_us:.0f} | {1e6 / client_us:,.0f} | {fastest:,.0f} "
            f"| {rate / fastest:.1f}x | {app_client_busy:.0%} |"
        )
    return "\n".join(rows)


def handshake_table(results: Results, plan: Plan) -> tuple[str, str]:
    rows = [
        "| server | client certificate | endpoint | handshakes/s | server CPU ms/handshake "
        "| client CPU ms/handshake | server core busy | client core busy "
        "| costlier side per handshake |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for cell in (cell for cell in results.samples if cell.group == "handshake"):
        requested = NO_CERT not in cell.server
        server_ms = results.median(cell, "server_us_per_request") / 1000
        client_ms = results.median(cell, "client_us_per_request") / 1000
        rows.append(
            f"| {cell.server.replace(NO_CERT, '')} "
            f"| {'required (mTLS)' if requested else 'not requested'} | {cell.path} "
            f"| {results.median(cell, 'rate'):,.0f} | {server_ms:.2f} | {client_ms:.2f} "
            f"| {results.median(cell, 'server_busy'):.0%} "
            f"| {results.median(cell, 'client_busy'):.0%} "
            f"| {'server' if server_ms >= client_ms else '**client**'} |"
        )
    n = plan.handshake_connections
    mtls = Cell("handshake", app_label(plan.http[0]), "/plain", n)
    none = Cell("handshake", app_label(plan.http[0], "none"), "/plain", n)
    ratio = results.median(mtls, "rate") / results.median(none, "rate")
    cpu_ratio = results.median(none, "server_us_per_request") / results.median(
        mtls, "server_us_per_request"
    )
    summary = (
        f"mutual TLS ÷ no client certificate, uvicorn {plan.http[0]} /plain: **{ratio:.2f}** "
        f"of the measured handshakes/s; by server CPU per handshake **{cpu_ratio:.2f}**, i.e. "
        f"a saturated server core does {_pct(1 - cpu_ratio)} fewer full handshakes with "
        "mutual TLS. Where the client spends more CPU per handshake than the server, the "
        "measured rate is bounded by the load generator, not the server, and the "
        "server-CPU ratio is the figure to use."
    )
    return "\n".join(rows), summary


def breakdown_table(results: Results) -> str:
    rows = ["| in process, one core, best of 7 | µs per call |", "|---|---:|"]
    rows += [f"| {label} | {us:.2f} |" for label, us in results.breakdown]
    return "\n".join(rows)


def breakdown_summary(results: Results) -> str:
    us = dict(results.breakdown)
    app_plain, identify, pem = us[APP_PLAIN_LABEL], us[IDENTIFY_LABEL], us[PEM_LABEL]
    return (
        f"in process with hot caches, identify() takes {identify:.1f} µs "
        f"({_pct(pem / identify)} of it ssl.PEM_cert_to_DER_cert) against {app_plain:.1f} µs "
        "for the whole /plain app call; the live server's extra CPU per /whoami request "
        "above is what it costs among TLS, HTTP parsing and other processes' cache traffic"
    )


def environment(plan: Plan, tls: str, started: str, load: str) -> list[str]:
    return [
        f"- date: {started}; machine: {os.cpu_count()} CPUs ({platform.machine()}, "
        f"{platform.system()}), shared; load average at start {load}, at end {load_average()}",
        f"- software: Python {platform.python_version()}, {ssl.OPENSSL_VERSION}, "
        f"uvicorn {uvicorn.__version__} (asyncio loop), Starlette {starlette.__version__}",
        f"- TLS: {tls}, ECDSA P-256 certificates from `healthledger network init`/`enroll`; "
        f"client `{CLIENT_UID}` (parents)",
        f"- pinning: servers on CPU {plan.server_core}, load generator on CPU "
        f"{plan.client_core}; loopback 127.0.0.1",
        f"- runs: {plan.repeats} repeats, every figure once per repeat, {plan.duration_s:g} s "
        f"windows after {plan.warmup_s:g} s warm-up; medians. Keep-alive: /plain and /whoami "
        "in A-B-B-A windows on the same connections. Handshakes: "
        f"{plan.handshake_connections} concurrent connect → GET → close loops, no session "
        "resumption",
        "- core busy = CPU time of the process ÷ window. identity cost = 1 - whoami/plain "
        "(req/s); by server CPU = 1 - (µs/req /plain ÷ µs/req /whoami), which is what the "
        "req/s ratio would be on a saturated, undisturbed server core",
    ]


def render(plan: Plan, results: Results, header: list[str]) -> str:
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    keepalive, verdicts = keepalive_table(results, plan)
    handshakes, summary = handshake_table(results, plan)
    return "\n".join(
        [
            "# Identity cost over mutual TLS",
            "",
            f"`{command}`",
            "",
            *header,
            "",
            "## Keep-alive requests/s: /plain vs /whoami",
            "",
            keepalive,
            "",
            "## Load generator ceiling (same client, bare asyncio TLS server, mutual TLS)",
            "",
            ceiling_table(results, plan),
            "",
            "## Full handshakes/s (a new TLS connection per request)",
            "",
            handshakes,
            "",
            f"- {summary}",
            "",
            "## What /whoami adds per request",
            "",
            breakdown_table(results),
            "",
            "## Target: identity cost under 5%",
            "",
            *[f"- {line}" for line in verdicts],
            f"- {breakdown_summary(results)}",
        ]
    )


# --------------------------------------------------------------------------- main


def load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    # SystemExit unwinds through every `finally`: servers stop, temp dirs go.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    plan = parse_args(list(argv) if argv is not None else None)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    load = load_average()
    with tempfile.TemporaryDirectory(prefix="bench-identity-") as temp:
        log(f"making a network in {temp}")
        fixture = make_network(Path(temp) / "network")
        results = run_all(fixture, plan)
    print(render(plan, results, environment(plan, results.tls, started, load)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
