"""Serving over mutual TLS with uvicorn, in one process or several sharing the ledger.

Worker processes are started by uvicorn, so they find the network, the ledger and the
persisted operations through the environment (HEALTHLEDGER_NETWORK, HEALTHLEDGER_LEDGER_URL,
HEALTHLEDGER_PERSISTED_ONLY, HEALTHLEDGER_PERSISTED_OPERATIONS) and build the app with
`app_from_environment`. On SIGTERM or Ctrl-C uvicorn stops
accepting connections, lets requests in flight finish, and the app's lifespan
then drains every channel's committer before closing the stores.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette

from authz.client_cert_protocols import HttpToolsClientCertProtocol, WebSocketClientCertProtocol
from authz.network import load_network
from authz.tls_context import server_ssl_context

from . import allocator, collector
from .access_log import configure_logging
from .app import create_app
from .connection_limits import HandshakeLimitedLoop
from .health import HealthAddress
from .persisted_operations import PersistedOperations
from .schema import schema
from .services import Services

NETWORK_ENV = "HEALTHLEDGER_NETWORK"
LEDGER_ENV = "HEALTHLEDGER_LEDGER_URL"
HEALTH_PORT_ENV = "HEALTHLEDGER_HEALTH_PORT"
HEALTH_HOST_ENV = "HEALTHLEDGER_HEALTH_HOST"
PERSISTED_ONLY_ENV = "HEALTHLEDGER_PERSISTED_ONLY"
PERSISTED_OPERATIONS_ENV = "HEALTHLEDGER_PERSISTED_OPERATIONS"
DEFAULT_HEALTH_HOST = "127.0.0.1"
GRACEFUL_SHUTDOWN_SECONDS = 30
KEEP_ALIVE_SECONDS = 5


def app_from_environment() -> Starlette:
    # Before the stores, pools and committers start their threads: each would take an arena.
    allocator.configure()
    network = load_network(os.environ[NETWORK_ENV])
    health = None
    if os.environ.get(HEALTH_PORT_ENV):
        health = HealthAddress(
            os.environ.get(HEALTH_HOST_ENV) or DEFAULT_HEALTH_HOST, int(os.environ[HEALTH_PORT_ENV])
        )
    configure_logging()
    operations = persisted_operations_from_environment()
    app = create_app(Services.open(network, os.environ.get(LEDGER_ENV) or None), health, operations)
    collector.settle()
    return app


def persisted_operations_from_environment() -> PersistedOperations:
    """The operations registered at start, and whether only those run."""
    manifest = os.environ.get(PERSISTED_OPERATIONS_ENV)
    return PersistedOperations.from_manifest(
        Path(manifest) if manifest else None,
        registered_only=os.environ.get(PERSISTED_ONLY_ENV) == "1",
        schema=schema._schema,
    )


def loop_from_environment() -> asyncio.AbstractEventLoop:
    """Each worker's event loop: TLS handshakes bounded in time and in number per address."""
    network = load_network(os.environ[NETWORK_ENV])
    return HandshakeLimitedLoop(network.server.max_handshakes_per_address)


def ssl_context_from_environment(_config: Any, _default: Any) -> ssl.SSLContext:
    return server_ssl_context(load_network(os.environ[NETWORK_ENV]))


def serve(
    network_dir: str,
    *,
    ledger_url: str | None = None,
    host: str | None = None,
    port: int | None = None,
    workers: int = 1,
    health: HealthAddress | None = None,
    persisted_only: bool = False,
    persisted_operations: Path | None = None,
) -> None:
    """Run the API until interrupted; returns after a graceful shutdown.

    Port 0 (API or health) takes any free port; uvicorn logs the API port it bound
    and the health listener its own. `persisted_only` runs only the operations of the
    manifest `persisted_operations` (default: the web app's; api.persisted_operations).
    """
    network = load_network(network_dir)
    _set_environment(NETWORK_ENV, str(network.directory))
    _set_environment(LEDGER_ENV, ledger_url)
    _set_environment(HEALTH_HOST_ENV, health.host if health else None)
    _set_environment(HEALTH_PORT_ENV, str(health.port) if health else None)
    _set_environment(PERSISTED_ONLY_ENV, "1" if persisted_only else None)
    _set_environment(
        PERSISTED_OPERATIONS_ENV, str(persisted_operations) if persisted_operations else None
    )
    uvicorn.run(
        "api.server:app_from_environment",
        factory=True,
        host=host or network.server.host,
        port=port if port is not None else network.server.port,
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


def _set_environment(name: str, value: str | None) -> None:
    """Worker processes read their settings from the environment they inherit."""
    if value:
        os.environ[name] = value
    else:
        os.environ.pop(name, None)
