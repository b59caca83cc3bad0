"""Liveness and readiness probes, on the API port and optionally on a plain-HTTP health port.

The API port demands a client certificate during the TLS handshake, which a
container `HEALTHCHECK`, a kubelet or a load balancer's probe does not have.
`serve --health-port P` therefore also opens a plain-HTTP listener that answers
only `GET /healthz` and `GET /readyz`: nothing on it reads or writes records.
Every worker process binds it with SO_REUSEPORT, so the kernel spreads probes
over the workers the way it spreads API connections. The listener logs the
address it bound, so with port 0 the port the system picked can be read.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from .services import Services

PROBE_CONNECTION_SECONDS = 10.0
MAX_PROBE_CONNECTIONS = 32

log = logging.getLogger("healthledger.health")


def probe_routes(services: Services) -> list[Route]:
    """`/healthz`: 200 while the process serves; `/readyz`: 200 only when every ledger answers."""

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(_: Request) -> Response:
        if await services.ready():
            return PlainTextResponse("ready\n")
        return PlainTextResponse("a ledger is unreachable\n", status_code=503)

    return [Route("/healthz", healthz), Route("/readyz", readyz)]


@dataclass(frozen=True)
class HealthAddress:
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


class HealthListener:
    """The plain-HTTP probe listener of one worker; start it in the app's lifespan."""

    def __init__(self, services: Services, address: HealthAddress) -> None:
        self.address = address
        self._config = uvicorn.Config(
            Starlette(routes=probe_routes(services)),
            lifespan="off",
            http="h11",
            # access_log=False would empty the process-wide "uvicorn.access" logger, and with
            # it the API port's access log; probes are kept out of it by _ProbeProtocol.
            log_config=None,
            proxy_headers=False,
            server_header=False,
        )
        self._config.load()
        self._state = ServerState()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Bind, listen and log the address; raises OSError if it cannot be bound.

        With port 0 the system picks a free port, which `address` holds from then on.
        """
        listening = _reuse_port_socket(self.address)
        self.address = HealthAddress(self.address.host, listening.getsockname()[1])
        log.info("Health probes on %s (plain HTTP)", self.address.url)
        config, state = self._config, self._state
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _ProbeProtocol(config=config, server_state=state, app_state={}),
            sock=listening,
        )

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for connection in list(self._state.connections):
            connection.shutdown()
        await self._server.wait_closed()
        self._server = None


class _ProbeProtocol(H11Protocol):
    """HTTP for probes, which are not written to the access log (a container health check
    every few seconds would drown it).

    Anyone who can reach the health port may connect, with no certificate: a connection
    is closed PROBE_CONNECTION_SECONDS after it opened, whatever it is doing (a probe takes
    milliseconds; idle and trickling clients used to stay for minutes), and one beyond
    MAX_PROBE_CONNECTIONS open at once is closed at once.
    """

    lifetime_seconds = PROBE_CONNECTION_SECONDS
    max_connections = MAX_PROBE_CONNECTIONS
    _lifetime: asyncio.TimerHandle | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.access_log = False

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if len(self.server_state.connections) > self.max_connections:
            transport.close()
            return
        self._lifetime = self.loop.call_later(self.lifetime_seconds, transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lifetime is not None:
            self._lifetime.cancel()
        super().connection_lost(exc)


def _reuse_port_socket(address: HealthAddress) -> socket.socket:
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    listening = socket.socket(family, socket.SOCK_STREAM)
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listening.bind((address.host, address.port))
        listening.listen(128)
        listening.setblocking(False)
    except OSError:
        listening.close()
        raise
    return listening
