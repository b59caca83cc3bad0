"""The server side of bench/api.py: the real healthledger app plus two baselines, under uvicorn.

One process tree per ledger configuration, started by bench/api.py and pinned
by it (`--cores`, set here before any worker exists, so every worker inherits
it). What it serves, over mutual TLS with `authz.mtls.server_ssl_context` and
uvicorn's httptools protocol with the client-certificate mixin
(`HttpToolsClientCertProtocol`), as `healthledger serve` does:

- `/graphql` and everything else: `api.app.create_app(Services.open(network,
  ledger_url))`, the real app, untouched;
- `/plain`: a Starlette app with one route whose endpoint reads the request
  body and answers a fixed JSONResponse (no identity, no GraphQL);
- `/nop-graphql`: a Starlette app with one route to a Strawberry view over a
  tiny schema whose `registerChild` and `updateMedicalCard` mutations take the
  same arguments, have the same permission classes and return the same types as
  the real ones, but return a constant object (the card's version is
  `expectedVersion + 1`) and never call the gateway. It runs behind the same
  `BodyLimit` and `IdentityGate` as /graphql, with the same Strawberry view
  class (`HealthLedgerGraphQL.get_context`), with only Strawberry's
  ParserCache and ValidationCache as extensions (parse and validation happen
  once per distinct document, as Strawberry recommends): the no-ledger
  Strawberry ceiling.
- `/nop-graphql-ext`: the same, plus the real schema's extension list as
  `api.schema.build_schema` has it (error codes, operation metrics,
  depth/alias/token limits, parser and validation caches, all as per-request
  factories), so it differs from /graphql only by the ledger work.

- `/graphql-stable-limits` (a what-if, used only where a target is missed):
  the real Query/Mutation/Subscription types and extension list, except that
  the depth and alias validators are built once instead of per request
  (`stable_limits_schema`), behind the same gate and view: what /graphql would
  do with that one change in api/schema.py.

A path dispatcher in front picks the app (one dict lookup; lifespan
goes to the real app, which closes the services on shutdown).

Workers: `--workers 1` runs `uvicorn.Server` in this process, like `healthledger
serve`; `--workers N` runs uvicorn's own `Multiprocess` supervisor, exactly as
`uvicorn.run(..., workers=N)` inside `healthledger serve --workers N` does: N
spawned processes accept on one shared listening socket and build the app from
the environment (HEALTHLEDGER_NETWORK, HEALTHLEDGER_LEDGER_URL). Each worker
drops a file named by its pid into `--ready-dir` once its lifespan start-up is
done; when all N are there this prints `READY <port> <pid>,<pid>...` on stdout.
Everything stops on EOF on stdin (the benchmark closed it or died) or SIGTERM.
The access log is off (`healthledger serve` logs each request at info level).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

# Serve the packages next to this script, not whichever copy is installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import strawberry
import uvicorn
from identity_server import bind_loopback, serve_until_stdin_eof
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from strawberry.asgi import GraphQL
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as alias_validator
from strawberry.extensions.query_depth_limiter import create_validator as depth_validator
from strawberry.types import Info
from uvicorn.supervisors import Multiprocess

from api.app import MAX_BODY_BYTES, BodyLimit, HealthLedgerGraphQL, IdentityGate, create_app
from api.errors import ErrorCodes
from api.metrics import OperationMetrics
from api.permissions import DoctorsOnly, ParentsOnly
from api.schema import (
    MAX_ALIASES,
    MAX_DEPTH,
    MAX_TOKENS,
    Mutation,
    Query,
    Subscription,
    _ParserCache,
)
from api.server import LEDGER_ENV, NETWORK_ENV, ssl_context_from_environment
from api.services import Services
from api.types import Child, MedicalCard, MedicalCardPatch, RegisterChildInput
from authz.mtls import HttpToolsClientCertProtocol, WebSocketClientCertProtocol
from authz.network import load_network

READY_DIR_ENV = "HEALTHLEDGER_BENCH_READY_DIR"
PLAIN_BODY = {"data": {"plain": {"id": "child-0000000000000000", "ok": True}}}
READY_POLL_S = 0.05
ORPHAN_POLL_S = 0.5
START_TIMEOUT_S = 60.0
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# ----------------------------------------------------------------- no-ledger GraphQL

_CHILD = Child.of(
    {
        "id": "child-0123456789abcdef",
        "fullName": "Nop Child",
        "birthDate": "2019-04-02",
        "guardians": ["nobody"],
        "doctorUid": None,
        "sex": "F",
    }
)
_CARD = {
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


@strawberry.type
class NopQuery:
    @strawberry.field
    def nop(self) -> bool:
        return True


@strawberry.type
class NopMutation:
    """The real mutations' signatures and permission classes; constant answers, no gateway."""

    @strawberry.mutation(permission_classes=[ParentsOnly])
    async def register_child(self, info: Info, input: RegisterChildInput) -> Child:
        return _CHILD

    @strawberry.mutation(permission_classes=[DoctorsOnly])
    async def update_medical_card(
        self, info: Info, child_id: strawberry.ID, expected_version: int, patch: MedicalCardPatch
    ) -> MedicalCard:
        patch.to_record()  # the real resolver converts the patch too
        return MedicalCard.of({**_CARD, "childId": child_id, "version": expected_version + 1})


def build_nop_schema(with_api_extensions: bool) -> strawberry.Schema:
    """Strawberry's parser and validation caches only, or api.schema's extension list."""
    if not with_api_extensions:
        return strawberry.Schema(
            query=NopQuery,
            mutation=NopMutation,
            extensions=[lambda: ParserCache(maxsize=1_000), lambda: ValidationCache(maxsize=1_000)],
        )
    return strawberry.Schema(
        query=NopQuery,
        mutation=NopMutation,
        extensions=[
            ErrorCodes,
            OperationMetrics,
            lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
            lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: _ParserCache(maxsize=1_000),
            lambda: ValidationCache(maxsize=1_000),
        ],
    )


def stable_limits_schema() -> strawberry.Schema:
    """A what-if: api.schema's schema with its depth and alias validators built once.

    QueryDepthLimiter and MaxAliasesLimiter make a new ValidationRule class in every
    __init__, and api.schema passes them as per-request factories, so the
    validation_rules tuple, part of ValidationCache's key, is new on every request and
    graphql-core validates every document again. Here one AddValidationRules subclass
    adds the same two rule classes (made once, with the same limits) to every request.
    Same Query/Mutation/Subscription types, same other extensions, same order.
    """
    rules = [depth_validator(MAX_DEPTH, None, None), alias_validator(MAX_ALIASES)]

    class StableLimits(AddValidationRules):
        def __init__(self) -> None:
            super().__init__(rules)

    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[
            ErrorCodes,
            OperationMetrics,
            StableLimits,
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: _ParserCache(maxsize=1_000),
            lambda: ValidationCache(maxsize=1_000),
        ],
    )


class SchemaView(HealthLedgerGraphQL):
    """HealthLedgerGraphQL (same view, same context) over another schema."""

    def __init__(self, services: Services, schema: strawberry.Schema) -> None:
        GraphQL.__init__(  # type: ignore[misc]
            self, schema, graphql_ide=None, keep_alive=True, keep_alive_interval=15
        )
        self.services = services


# --------------------------------------------------------------------------- the app


def build_bench_app(services: Services, ready_dir: Path | None = None) -> ASGIApp:
    """The real app at every path but the baselines and the what-if."""
    real = create_app(services)

    async def plain(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse(PLAIN_BODY)

    others: dict[str, ASGIApp] = {
        "/plain": Starlette(routes=[Route("/plain", plain, methods=["GET", "POST"])]),
    }
    schemas = {
        "/nop-graphql": build_nop_schema(False),
        "/nop-graphql-ext": build_nop_schema(True),
        "/graphql-stable-limits": stable_limits_schema(),
    }
    for path, schema in schemas.items():
        view = SchemaView(services, schema)
        gated = BodyLimit(IdentityGate(view, services), MAX_BODY_BYTES)
        others[path] = Starlette(routes=[Route(path, gated, methods=["GET", "POST"])])

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" and ready_dir is not None:
            await real(scope, receive, _announce_startup(send, ready_dir))
            return
        await others.get(scope.get("path", ""), real)(scope, receive, send)

    return app


def _announce_startup(send: Send, ready_dir: Path) -> Send:
    async def wrapped(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            (ready_dir / str(os.getpid())).touch()
        await send(message)

    return wrapped


def bench_app_from_environment() -> ASGIApp:
    """Uvicorn's factory, in each worker: like api.server.app_from_environment, plus baselines."""
    network = load_network(os.environ[NETWORK_ENV])
    services = Services.open(network, os.environ.get(LEDGER_ENV) or None)
    ready = os.environ.get(READY_DIR_ENV)
    if os.getpid() != _SUPERVISOR_PID:
        # A spawned worker (multiprocessing gives it /dev/null as stdin): stop if orphaned.
        threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    return build_bench_app(services, Path(ready) if ready else None)


_SUPERVISOR_PID = int(os.environ.get("HEALTHLEDGER_BENCH_SUPERVISOR_PID", "0"))


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(ORPHAN_POLL_S)
    os.kill(os.getpid(), signal.SIGTERM)


# ------------------------------------------------------------------------ processes


def make_config(workers: int) -> uvicorn.Config:
    return uvicorn.Config(
        "api_server:bench_app_from_environment",
        factory=True,
        workers=workers,
        loop="asyncio",
        http=HttpToolsClientCertProtocol,
        ws=WebSocketClientCertProtocol,
        ssl_context_factory=ssl_context_from_environment,
        lifespan="on",
        timeout_keep_alive=30,
        timeout_graceful_shutdown=5,
        proxy_headers=False,
        server_header=False,
        log_level="warning",
        access_log=False,
    )


def ready_pids(ready_dir: Path) -> list[int]:
    return sorted(int(path.name) for path in ready_dir.iterdir() if path.name.isdigit())


async def serve_one(config: uvicorn.Config, ready_dir: Path) -> None:
    def announce_ready(sock: socket.socket) -> None:
        print(f"READY {sock.getsockname()[1]} {os.getpid()}", flush=True)

    await serve_until_stdin_eof(config, announce_ready)


def serve_many(config: uvicorn.Config, ready_dir: Path) -> None:
    sock = bind_loopback()
    supervisor = Multiprocess(config, sockets=[sock])

    def watch_ready() -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(ready_pids(ready_dir)) < config.workers:
            if time.monotonic() > deadline or supervisor.should_exit.is_set():
                supervisor.should_exit.set()
                return
            time.sleep(READY_POLL_S)
        pids = ",".join(str(pid) for pid in ready_pids(ready_dir))
        print(f"READY {sock.getsockname()[1]} {pids}", flush=True)

    def watch_stdin() -> None:
        try:
            while os.read(sys.stdin.fileno(), 4096):
                pass
        finally:
            supervisor.should_exit.set()

    threading.Thread(target=watch_ready, daemon=True).start()
    threading.Thread(target=watch_stdin, daemon=True).start()
    supervisor.run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", type=Path, required=True)
    parser.add_argument("--ledger", required=True, help="ledger URL for every channel")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cores", default="", help="CPUs to pin to, e.g. 0 or 0,1")
    parser.add_argument("--ready-dir", type=Path, required=True)
    args: Any = parser.parse_args(argv)
    if args.cores:
        os.sched_setaffinity(0, {int(core) for core in args.cores.split(",")})
    os.environ[NETWORK_ENV] = str(args.network)
    os.environ[LEDGER_ENV] = args.ledger
    os.environ[READY_DIR_ENV] = str(args.ready_dir)
    os.environ["HEALTHLEDGER_BENCH_SUPERVISOR_PID"] = str(os.getpid())
    config = make_config(args.workers)
    if args.workers == 1:
        asyncio.run(serve_one(config, args.ready_dir))
    else:
        serve_many(config, args.ready_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
