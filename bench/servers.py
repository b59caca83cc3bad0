"""The benchmarks' own servers, each a process of its own: `python -m bench.servers KIND`.

- `identity`: uvicorn with healthledger's client-certificate protocol (`--http httptools`
  or `h11`) and a Starlette app with `/plain` (fixed JSON, the identity never resolved) and
  `/whoami` (the caller from `CallerIdentifier.identify`, as JSON of the same shape) behind
  one route, so they differ only in the identity work. `--verify none` asks for no
  client certificate.
- `bare`: an asyncio TLS server answering every request with one fixed response: the load
  generator's own ceiling.
- `baselines`: the API benchmark's baselines, served as `healthledger serve` serves the API
  (uvicorn with its protocol class, TLS context, event loop, logging and frozen heap; the
  body limit, identity gate and GraphQL view of `api.app`): `/plain`, a Starlette route
  answering fixed JSON, and `/nop-graphql`, root types with the real mutations' signatures
  and permission classes that return constants, in a schema made by the production
  builder `api.schema.build_schema`. Before serving, it checks that this schema's
  extensions are those of the schema the API serves, and names them on its READY line.
- `api`: the API as `healthledger serve --workers N` serves it on `--ledger` (the app of
  `api.app.create_app`, the same uvicorn settings as `api.server.serve`), with the ledger's
  access log on or off (`--access-log`; off is `Services.open(..., access_log=False)`, a
  switch only benchmarks have), and values sealed or in clear (`--encryption`; off is
  `Services.open(..., encryption=False)`, likewise for benchmarks only). Several workers
  run under uvicorn's own supervisor.

Each listens on a `devkit.ports.listening_socket()`, prints `READY <port> [...]` once it
accepts connections, and stops at EOF on stdin (also when the benchmark dies) or on
SIGTERM. `BenchServer` starts one from a benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import strawberry
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from strawberry.types import Info
from uvicorn.supervisors import Multiprocess

from api import allocator, collector
from api import schema as production
from api.access_log import configure_logging
from api.app import MAX_BODY_BYTES, BodyLimit, HealthLedgerGraphQL, IdentityGate, create_app
from api.permissions import DoctorsOnly, ParentsOnly
from api.server import (
    GRACEFUL_SHUTDOWN_SECONDS,
    KEEP_ALIVE_SECONDS,
    LEDGER_ENV,
    NETWORK_ENV,
    loop_from_environment,
    persisted_operations_from_environment,
    ssl_context_from_environment,
)
from api.services import Services
from api.types import Child, MedicalCard, MedicalCardPatch, RegisterChildInput
from authz.callers import CallerIdentifier
from authz.client_cert_protocols import (
    H11ClientCertProtocol,
    HttpToolsClientCertProtocol,
    WebSocketClientCertProtocol,
)
from authz.identity import IdentityVerifier
from authz.network import NetworkConfig, load_network
from authz.proxy_headers import ProxySettings
from authz.tls_context import server_ssl_context
from chaincode import records
from devkit.ports import listening_socket
from domain.errors import UnauthenticatedError

from . import harness

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
ACCESS_LOG_ENV = "HEALTHLEDGER_BENCH_ACCESS_LOG"
ENCRYPTION_ENV = "HEALTHLEDGER_BENCH_ENCRYPTION"
PLAIN = {"uid": "anonymous", "msp": "NoMSP", "org": "none", "role": "none", "name": "Nobody"}
NOP_CHILD: records.ChildView = {
    "id": "child-0123456789abcdef",
    "fullName": "Nop Child",
    "birthDate": "2019-04-02",
    "guardians": ["nobody"],
    "pendingGuardians": [],
    "doctorUid": None,
    "sex": "F",
}
NOP_CARD: records.MedicalCard = {
    "childId": "child-0123456789abcdef",
    "version": 1,
    "updatedAt": "2026-01-01T00:00:00.000000Z",
    "updatedBy": "dr-nop",
    "bloodType": None,
    "allergies": [],
    "chronicConditions": [],
    "vaccinations": [],
    "examinations": [],
    "healthGroup": 1,
    "physicalEducationGroup": "MAIN",
    "notes": "nop",
}


# -- the identity app -----------------------------------------------------------------------------


def identity_app(network: NetworkConfig) -> Starlette:
    identifier = CallerIdentifier(
        IdentityVerifier.from_network(network), ProxySettings.from_network(network)
    )

    async def endpoint(request: Request) -> JSONResponse:
        # One route for both, so /whoami does not pay for a failed /plain match first.
        if request.path_params["name"] == "plain":
            return JSONResponse(PLAIN)
        try:
            caller = identifier.identify(request.scope)
        except UnauthenticatedError as exc:
            return JSONResponse({"error": str(exc)}, status_code=401)
        found = {"uid": caller.uid, "msp": caller.msp, "org": caller.org}
        return JSONResponse(found | {"role": caller.role.value, "name": caller.name})

    return Starlette(routes=[Route("/{name}", endpoint)])


class FixedResponse(asyncio.Protocol):
    """Answers each request (a head without a body) with the same bytes."""

    body = json.dumps(PLAIN).encode()
    response = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport, self.buffer = transport, b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            self.transport.write(self.response)
            if b"connection: close" in head.lower():
                self.transport.close()


# -- the API baselines --------------------------------------------------------------------------


@strawberry.type
class NopQuery:
    @strawberry.field
    def nop(self) -> bool:
        return True


@strawberry.type
class NopMutation:
    """The real mutations' signatures and permission classes; constant answers, no gateway."""

    @production.mutation(permission_classes=[ParentsOnly])
    async def register_child(self, info: Info, input: RegisterChildInput) -> Child:
        return Child.of(NOP_CHILD)

    @production.mutation(permission_classes=[DoctorsOnly])
    async def update_medical_card(
        self, info: Info, child_id: strawberry.ID, expected_version: int, patch: MedicalCardPatch
    ) -> MedicalCard:
        patch.to_record()  # as the real resolver does
        card = NOP_CARD.copy()
        card["childId"], card["version"] = str(child_id), expected_version + 1
        return MedicalCard.of(card)


def nop_schema() -> tuple[strawberry.Schema, list[str]]:
    """The no-ledger schema, and its extensions' class names, checked against the API's."""
    nop = production.build_schema(NopQuery, NopMutation, None)
    extensions = [type(extension) for extension in nop.get_extensions()]
    served = [type(extension) for extension in production.schema.get_extensions()]
    if extensions != served:
        raise RuntimeError(f"nop-graphql's extensions {extensions} are not the API's {served}")
    return nop, [kind.__name__ for kind in extensions]


class NopView(HealthLedgerGraphQL):
    """The API's view class (context, JSON decoding, headers) over another schema."""

    def __init__(self, services: Services, schema: strawberry.Schema) -> None:
        super().__init__(services, persisted_operations_from_environment())
        self.schema = schema


def baselines_app(network: NetworkConfig, schema: strawberry.Schema) -> Starlette:
    services = Services.open(network, "memory://")
    nop = BodyLimit(IdentityGate(NopView(services, schema), services), MAX_BODY_BYTES)

    async def plain(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"data": {"plain": PLAIN}})

    routes = [
        Route("/plain", plain, methods=["POST"]),
        Route("/nop-graphql", nop, methods=["POST"]),
    ]
    return Starlette(routes=routes)


# -- the API, its access log on or off -----------------------------------------------------------


def api_from_environment() -> Starlette:
    """Each worker's app: `api.server.app_from_environment`'s, on HEALTHLEDGER_LEDGER_URL, with
    the access log as HEALTHLEDGER_BENCH_ACCESS_LOG says (`on` or `off`) and no health port."""
    allocator.configure()  # as api.server does, before the stores start their threads
    configure_logging()
    services = Services.open(
        load_network(os.environ[NETWORK_ENV]),
        os.environ[LEDGER_ENV],
        access_log=os.environ[ACCESS_LOG_ENV] == "on",
        encryption=os.environ[ENCRYPTION_ENV] == "on",
    )
    app = create_app(services, None, persisted_operations_from_environment())
    collector.settle()  # as api.server does once the app is built
    return app


class Workers(Multiprocess):
    """uvicorn's supervisor of `config.workers` processes on `sock`: READY once all of them
    serve, stopped at EOF on stdin or on SIGTERM."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket) -> None:
        super().__init__(config, [sock])
        self.port = sock.getsockname()[1]
        self.announce = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)  # the workers inherit stdout: their access log goes to the log
        threading.Thread(target=self.stop_at_eof, daemon=True).start()

    def init_processes(self) -> None:
        super().init_processes()
        if all(p.wait_until_ready(START_TIMEOUT_S, self.should_exit) for p in self.processes):
            print("READY", self.port, file=self.announce, flush=True)
        self.announce.close()

    def stop_at_eof(self) -> None:
        while os.read(0, 4096):
            pass
        self.should_exit.set()


def api_config(workers: int) -> uvicorn.Config:
    """`api.server.serve`'s uvicorn settings, for `api_from_environment`."""
    return uvicorn.Config(
        "bench.servers:api_from_environment",
        factory=True,
        workers=workers,
        http=HttpToolsClientCertProtocol,
        ws=WebSocketClientCertProtocol,
        ssl_context_factory=ssl_context_from_environment,
        loop="api.server:loop_from_environment",
        lifespan="on",
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        proxy_headers=False,
        server_header=False,
        log_level="info",
    )


# -- serving ------------------------------------------------------------------------------------


def on_stdin_eof(callback: Callable[[], object]) -> None:
    loop = asyncio.get_running_loop()

    def readable() -> None:
        if not os.read(0, 4096):
            loop.remove_reader(0)
            callback()

    loop.add_reader(0, readable)


async def serve(config: uvicorn.Config, *announce: str) -> None:
    """Serve on a listening socket; READY once it accepts; stop at EOF on stdin."""
    server = uvicorn.Server(config)
    sock = listening_socket()
    on_stdin_eof(lambda: setattr(server, "should_exit", True))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.01)
    ready(sock, *announce)
    await task


def ready(sock: socket.socket, *announce: str) -> None:
    print("READY", sock.getsockname()[1], *announce, flush=True)
    os.dup2(2, 1)  # later output (uvicorn's access log) goes to the log, not the unread pipe


async def serve_bare(network: NetworkConfig, verify: str) -> None:
    sock = listening_socket()
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    on_stdin_eof(done.set)
    loop.add_signal_handler(signal.SIGTERM, done.set)
    server = await loop.create_server(FixedResponse, sock=sock, ssl=context(network, verify))
    ready(sock)
    await done.wait()
    server.close()


def context(network: NetworkConfig, verify: str) -> ssl.SSLContext:
    found = server_ssl_context(network)
    if verify == "none":
        found.verify_mode = ssl.CERT_NONE
    return found


def main(argv: Sequence[str] | None = None) -> int:
    found = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    found.add_argument("kind", choices=("identity", "bare", "baselines", "api"))
    found.add_argument("--network", type=Path, required=True)
    found.add_argument("--http", choices=("httptools", "h11"), default="httptools")
    found.add_argument("--verify", choices=("required", "none"), default="required")
    found.add_argument("--ledger", help="api: the ledger URL")
    found.add_argument("--workers", type=int, default=1, help="api: worker processes")
    found.add_argument("--access-log", choices=("on", "off"), default="on", help="api")
    found.add_argument("--encryption", choices=("on", "off"), default="on", help="api")
    args = found.parse_args(argv)
    network = load_network(args.network)
    if args.kind == "bare":
        asyncio.run(serve_bare(network, args.verify))
        return 0
    if args.kind == "api":
        os.environ |= {NETWORK_ENV: str(args.network), LEDGER_ENV: args.ledger}
        os.environ[ACCESS_LOG_ENV] = args.access_log
        os.environ[ENCRYPTION_ENV] = args.encryption
        if args.workers > 1:
            Workers(api_config(args.workers), listening_socket()).run()
            return 0
        with asyncio.Runner(loop_factory=loop_from_environment) as runner:
            runner.run(serve(api_config(1)))
        return 0
    options: dict[str, Any] = {"lifespan": "off", "log_level": "warning", "access_log": False}
    announce: list[str] = []
    loop: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    if args.kind == "identity":
        app = identity_app(network)
        protocol = (
            HttpToolsClientCertProtocol if args.http == "httptools" else H11ClientCertProtocol
        )
        options |= {
            "http": protocol,
            "ssl_context_factory": lambda *_: context(network, args.verify),
        }
    else:
        os.environ[NETWORK_ENV] = str(args.network)
        allocator.configure()  # as api.server does
        configure_logging()
        schema, announce = nop_schema()
        app = baselines_app(network, schema)
        collector.settle()  # as api.server does once the app is built
        loop = loop_from_environment
        options = {
            "http": HttpToolsClientCertProtocol,
            "ssl_context_factory": ssl_context_from_environment,
            "lifespan": "on",
            "log_level": "info",
        }
    config = uvicorn.Config(app, server_header=False, proxy_headers=False, **options)
    with asyncio.Runner(loop_factory=loop) as runner:
        runner.run(serve(config, *announce))
    return 0


class BenchServer:
    """A `python -m bench.servers` process pinned to `core`; a context manager that stops it."""

    def __init__(self, arguments: Sequence[str], core: int | None, log: Path) -> None:
        command = [sys.executable, "-m", "bench.servers", *arguments]
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=output
            )
        if core is not None and core in harness.USABLE_CPUS:
            os.sched_setaffinity(self.process.pid, {core})
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], START_TIMEOUT_S)
        words = self.process.stdout.readline().decode().split() if ready else []
        if words[:1] != ["READY"]:
            self.close()
            raise RuntimeError(f"bench.servers {' '.join(arguments)} did not start; see {log}")
        self.port, self.announced = int(words[1]), words[2:]

    def cpu_seconds(self) -> float:
        return harness.cpu_seconds([self.process.pid])

    def close(self) -> None:
        """EOF on stdin asks it to stop; SIGTERM, then SIGKILL, if it does not."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        stop: list[Callable[[], None]] = [self.process.terminate, self.process.kill]
        while True:
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
                return
            except subprocess.TimeoutExpired:
                stop.pop(0)()

    def __enter__(self) -> BenchServer:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


if __name__ == "__main__":
    sys.exit(main())
