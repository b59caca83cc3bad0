"""A real uvicorn over mutual TLS on a free loopback port, in a background thread.

It runs what `healthledger serve` runs: the httptools protocol that passes the
client certificate on, and the app's lifespan, which starts and closes what the
app holds (so a served app's Services are closed by the server, not the test).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import uvicorn

from authz.client_cert_protocols import (
    H11ClientCertProtocol,
    HttpToolsClientCertProtocol,
    WebSocketClientCertProtocol,
)
from authz.network import NetworkConfig
from authz.tls_context import server_ssl_context
from devkit.ports import listening_socket


@contextmanager
def serving(
    app: Any,
    network: NetworkConfig,
    *,
    http: Literal["httptools", "h11"] = "httptools",
    lifespan: Literal["on", "off"] = "on",
) -> Iterator[str]:
    """Serve `app` with the network's TLS settings until the block ends; yields the base URL.

    `lifespan="off"` is for bare ASGI test apps that do not speak the lifespan protocol.
    """
    http_class = H11ClientCertProtocol if http == "h11" else HttpToolsClientCertProtocol
    config = uvicorn.Config(
        app,
        http=http_class,
        ws=WebSocketClientCertProtocol,
        lifespan=lifespan,
        proxy_headers=False,
        server_header=False,
        log_level="warning",
        ssl_context_factory=lambda _config, _default: server_ssl_context(network),
    )
    server = uvicorn.Server(config)
    with listening_socket() as listening:
        port = listening.getsockname()[1]
        thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        try:
            while not server.started:
                if time.monotonic() > deadline or not thread.is_alive():
                    raise RuntimeError("uvicorn did not start")
                time.sleep(0.01)
            yield f"https://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=10)
