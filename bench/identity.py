"""What resolving the caller's Identity costs a uvicorn server over mutual TLS.

A fresh demo network (devkit.devnet) in a temporary directory; the client is the parent
`alice`. The servers are `python -m bench.servers` processes on the server core: the
identity app (`/plain` never resolves the identity, `/whoami` does, behind one route)
under uvicorn with healthledger's client-certificate protocol, httptools and h11; the
same app not asking for a client certificate; and a bare asyncio TLS server. The load
generator (https_load) runs here, on the other core.

1. Keep-alive requests/s of /plain and /whoami at each --connections count, one request in
   flight per connection. Per repeat the same connections run four windows A-B-B-A (A is
   /plain on even repeats, /whoami on odd ones). identity cost = 1 - whoami/plain, from
   the medians of req/s, per repeat, and from the server's CPU time per request, which
   other load on a shared machine disturbs much less.
2. The load generator's ceiling: the same client against the bare TLS server.
3. Full handshakes/s: a new TLS connection per request (`Connection: close`), with client
   certificates required and not requested, /whoami too, and the bare server.

Target: identity cost under 5% at keep-alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from devkit.devnet import ensure_dev_network, user_context

from . import harness
from .harness import Result, log, median
from .https_load import Get, Sample, close_quietly, connect, measure, read_response, request
from .servers import BenchServer

TARGET_COST = 0.05
BARE = "bare TLS server"
NO_CERT = ", no client certificate"
Key = tuple[str, str, str, int]  # kind, server, path, connections
FIGURES = ("rate", "server_us")
KEEP_ALIVE = (
    "server | conns | /plain req/s | /whoami req/s | cost (req/s)"
    " | paired per repeat: median (min … max) | server CPU µs/req /plain → /whoami"
    " | cost by server CPU | client core busy"
)
CEILING = "conns | bare server req/s | client CPU µs/req | client busy | fastest uvicorn req/s"
CEILING += " | ceiling ÷ it"
HANDSHAKES = "server | path | handshakes/s | server CPU ms each | client CPU ms each"


def arguments() -> Any:
    found = harness.parser(__doc__.splitlines()[0], repeats=5, duration=2.0, warmup=1.0)
    servers = harness.names(("httptools", "h11"))
    found.add_argument("--http", type=servers, default=["httptools", "h11"], help="httptools,h11")
    found.add_argument("--connections", type=harness.counts, default=[1, 8, 32], help="1,8,32")
    found.add_argument("--handshake-connections", type=int, default=16, help="16")
    harness.pinning_options(found)
    return found


class Bench:
    def __init__(self, servers: dict[str, BenchServer], context: ssl.SSLContext, args: Any):
        self.servers, self.context, self.args = servers, context, args
        self.samples: dict[Key, list[Sample]] = {}
        self.paired: dict[tuple[str, int], list[float]] = {}

    def run(self, kind: str, label: str, paths: Sequence[str], n: int) -> None:
        server, handshakes = self.servers[label], kind == "handshakes"
        flows = [(self.context, Get(close=handshakes)) for _ in range(n)]
        found = measure(server.port, flows, paths, self.args, server.cpu_seconds, handshakes)
        windows = asyncio.run(found)
        for path, sample in windows:
            self.samples.setdefault((kind, label, path, n), []).append(sample)
            log(
                f"{kind}, {label}, {path} x{n}: {sample.rate:,.0f}/s, "
                f"server {sample.server_us:,.0f} µs/req, refused {sample.refused}"
            )
        if kind == "keep-alive":
            plain = sum(s.rate for path, s in windows if path == "/plain")
            whoami = sum(s.rate for path, s in windows if path == "/whoami")
            self.paired.setdefault((label, n), []).append(1 - whoami / plain)

    def median(self, key: Key, figure: str) -> float:
        return median(getattr(sample, figure) for sample in self.samples[key])

    def repeat(self, repeat: int) -> None:
        for n in self.args.connections:
            for http in self.args.http:
                a, b = harness.alternating(("/plain", "/whoami"), repeat)
                self.run("keep-alive", http, [a, b, b, a], n)
            self.run("ceiling", BARE, ["/plain"], n)
        first, h = self.args.http[0], self.args.handshake_connections
        for label in [*harness.alternating([first, first + NO_CERT], repeat), BARE, BARE + NO_CERT]:
            self.run("handshakes", label, ["/plain"], h)
        self.run("handshakes", first, ["/whoami"], h)


async def whoami(server: BenchServer, context: ssl.SSLContext) -> tuple[int, bytes, str]:
    reader, writer = await connect(server.port, context)
    try:
        tls = writer.get_extra_info("ssl_object")
        writer.write(request("GET", "/whoami", server.port, close=True))
        status, body = await read_response(reader)
        return status, body, f"{tls.version()} {tls.cipher()[0]}"
    finally:
        await close_quietly(writer)


def measure_all(directory: Path, args: Any) -> tuple[Bench, str]:
    network = directory / "network"
    ensure_dev_network(network)
    context = user_context(network, "parents", "alice")
    first = args.http[0]
    specs = {http: ["identity", f"--http={http}"] for http in args.http}
    specs |= {first + NO_CERT: ["identity", f"--http={first}", "--verify=none"]}
    specs |= {BARE: ["bare"], BARE + NO_CERT: ["bare", "--verify=none"]}
    with contextlib.ExitStack() as stack:
        servers = {
            label: stack.enter_context(
                BenchServer([*spec, f"--network={network}"], args.server_core, directory / "log")
            )
            for label, spec in specs.items()
        }
        pinning = harness.pin([], args.server_core, args.client_core)
        status, body, tls = asyncio.run(whoami(servers[first], context))
        if status != 200 or b'"uid":"alice"' not in body:
            raise RuntimeError(f"/whoami over mutual TLS answered {status} {body!r}")
        if asyncio.run(whoami(servers[first + NO_CERT], context))[0] != 401:
            raise RuntimeError("/whoami without a client certificate was not refused")
        bench = Bench(servers, context, args)
        for repeat in range(args.repeats):
            bench.repeat(repeat)
    return bench, f"{tls}; {pinning}"


def report(bench: Bench, args: Any) -> tuple[list[str], list[Result]]:
    keep_alive, ceiling, handshakes, results = [], [], [], []
    for http in args.http:
        for n in args.connections:
            plain, who = (("keep-alive", http, path, n) for path in ("/plain", "/whoami"))
            rate, us = ([bench.median(k, figure) for k in (plain, who)] for figure in FIGURES)
            paired, busy = bench.paired[http, n], bench.median(plain, "client_busy")
            cost, cpu_cost = 1 - rate[1] / rate[0], 1 - us[0] / us[1]
            spread = f"{median(paired):.1%} ({min(paired):.1%} … {max(paired):.1%})"
            keep_alive.append(
                f"{http} | {n} | {rate[0]:,.0f} | {rate[1]:,.0f} | {cost:.1%} | {spread}"
                f" | {us[0]:.0f} → {us[1]:.0f} | {cpu_cost:.1%} | {busy:.0%}"
            )
            name, measured = f"identity cost, uvicorn {http}, {n} connections", f"{cpu_cost:.1%}"
            measured += f" by server CPU, {cost:.1%} by req/s"
            results.append(Result(name, f"< {TARGET_COST:.0%}", measured, cpu_cost < TARGET_COST))
    for n in args.connections:
        key = ("ceiling", BARE, "/plain", n)
        apps = [("keep-alive", h, p, n) for h in args.http for p in ("/plain", "/whoami")]
        fastest, bare = max(bench.median(k, "rate") for k in apps), bench.median(key, "rate")
        client = f"{bench.median(key, 'client_us'):.0f} | {bench.median(key, 'client_busy'):.0%}"
        ceiling.append(f"{n} | {bare:,.0f} | {client} | {fastest:,.0f} | {bare / fastest:.1f}x")
    for key in (key for key in bench.samples if key[0] == "handshakes"):
        ms = [bench.median(key, figure) / 1000 for figure in ("server_us", "client_us")]
        done = bench.median(key, "rate")
        handshakes.append(f"{key[1]} | {key[2]} | {done:,.0f} | {ms[0]:.2f} | {ms[1]:.2f}")
    return [
        "## Keep-alive requests/s: /plain vs /whoami",
        "",
        *harness.table(KEEP_ALIVE, keep_alive),
        "",
        "## Load generator ceiling (the same client against the bare TLS server)",
        "",
        *harness.table(CEILING, ceiling),
        "",
        "## Full handshakes/s (a new TLS connection per request)",
        "",
        *harness.table(HANDSHAKES, handshakes),
    ], results


def main(argv: Sequence[str] | None = None) -> int:
    args = harness.parse(arguments(), argv)
    harness.exit_on_sigterm()
    environment = harness.environment(args, software=harness.versions("uvicorn", "starlette"))
    with tempfile.TemporaryDirectory(prefix="bench-identity-") as directory:
        bench, where = measure_all(Path(directory), args)
    body, results = report(bench, args)
    environment.append(f"- TLS: {where}")
    return harness.publish(
        "Identity cost over mutual TLS", environment, body, results, args.summary
    )


if __name__ == "__main__":
    sys.exit(main())
