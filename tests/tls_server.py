"""A real uvicorn over mutual TLS on a free loopback port, in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from authz.mtls import (
    H11ClientCertProtocol,
    HttpToolsClientCertProtocol,
    WebSocketClientCertProtocol,
    server_ssl_context,
)
from authz.network import NetworkConfig


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(app: Any, network: NetworkConfig, *, http: str = "h11") -> Iterator[str]:
    """Serve `app` with the network's TLS settings; yields the base URL."""
    port = free_port()
    http_class = H11ClientCertProtocol if http == "h11" else HttpToolsClientCertProtocol
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=http_class,
        ws=WebSocketClientCertProtocol,
        lifespan="off",
        log_level="warning",
        ssl_context_factory=lambda _config, _default: server_ssl_context(network),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
