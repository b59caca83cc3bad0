"""Serving over mutual TLS with uvicorn, in one process or several sharing the ledger.

Worker processes are started by uvicorn, so they find the network and ledger
through the environment (HEALTHLEDGER_NETWORK, HEALTHLEDGER_LEDGER_URL) and
build the app with `app_from_environment`. On SIGTERM or Ctrl-C uvicorn stops
accepting connections, lets requests in flight finish, and the app's lifespan
then drains every channel's committer before closing the stores.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

import uvicorn
from starlette.applications import Starlette

from authz.mtls import HttpToolsClientCertProtocol, WebSocketClientCertProtocol, server_ssl_context
from authz.network import load_network

from .app import create_app
from .services import Services

NETWORK_ENV = "HEALTHLEDGER_NETWORK"
LEDGER_ENV = "HEALTHLEDGER_LEDGER_URL"
GRACEFUL_SHUTDOWN_SECONDS = 30
KEEP_ALIVE_SECONDS = 5


def app_from_environment() -> Starlette:
    network = load_network(os.environ[NETWORK_ENV])
    return create_app(Services.open(network, os.environ.get(LEDGER_ENV) or None))


def ssl_context_from_environment(_config: Any, _default: Any) -> ssl.SSLContext:
    return server_ssl_context(load_network(os.environ[NETWORK_ENV]))


def serve(
    network_dir: str,
    *,
    ledger_url: str | None = None,
    host: str | None = None,
    port: int | None = None,
    workers: int = 1,
) -> None:
    """Run the API until interrupted; returns after a graceful shutdown."""
    network = load_network(network_dir)
    os.environ[NETWORK_ENV] = str(network.directory)
    if ledger_url:
        os.environ[LEDGER_ENV] = ledger_url
    else:
        os.environ.pop(LEDGER_ENV, None)
    uvicorn.run(
        "api.server:app_from_environment",
        factory=True,
        host=host or network.server.host,
        port=port or network.server.port,
        workers=workers,
        http=HttpToolsClientCertProtocol,
        ws=WebSocketClientCertProtocol,
        ssl_context_factory=ssl_context_from_environment,
        lifespan="on",
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        proxy_headers=False,
        server_header=False,
        log_level="info",
    )
