"""The server side of bench/identity.py, run as its own process on its own core.

Two kinds of server, both over TLS with `authz.mtls.server_ssl_context`:

- `app`: uvicorn (asyncio loop) with a client-certificate protocol class and a
  Starlette app with `/plain` (a fixed JSON body, identity never resolved) and
  `/whoami` (the caller's Identity from `CallerIdentifier.identify`, as JSON of
  the same shape and about the same size as `/plain`). Both go through the same
  route, so they differ only in the identity work.
- `raw`: a bare asyncio TLS server that answers every request with one fixed
  response, used to measure the load generator's own ceiling.

`--verify none` turns off the client-certificate request (CERT_NONE) for the
handshake comparison. The server binds a free loopback port, prints
`READY <port>` on stdout once it accepts connections, and exits when its stdin
reaches EOF (so it also goes away if the benchmark process dies) or on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Serve the authz package next to this script, not whichever copy is installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from authz.errors import Unauthenticated
from authz.identity import Identity, IdentityVerifier
from authz.mtls import (
    CallerIdentifier,
    H11ClientCertProtocol,
    HttpToolsClientCertProtocol,
    ProxySettings,
    server_ssl_context,
)
from authz.network import NetworkConfig, load_network

PLAIN_BODY = {"uid": "anonymous", "msp": "NoMSP", "org": "none", "role": "none", "name": "Nobody"}
HTTP_CLASSES: dict[str, type[asyncio.Protocol]] = {
    "httptools": HttpToolsClientCertProtocol,
    "h11": H11ClientCertProtocol,
}


def identity_json(identity: Identity) -> dict[str, object]:
    return {
        "uid": identity.uid,
        "msp": identity.msp,
        "org": identity.org,
        "role": identity.role.value,
        "name": identity.name,
    }


def build_app(network: NetworkConfig) -> Starlette:
    """`/plain` never looks at the certificate; `/whoami` verifies it and names the caller."""
    identifier = CallerIdentifier(
        IdentityVerifier.from_network(network), ProxySettings.from_network(network)
    )

    def plain(_request: Request) -> JSONResponse:
        return JSONResponse(PLAIN_BODY)

    def whoami(request: Request) -> JSONResponse:
        try:
            identity = identifier.identify(request.scope)
        except Unauthenticated as exc:
            return JSONResponse({"error": str(exc)}, status_code=401)
        return JSONResponse(identity_json(identity))

    endpoints = {"plain": plain, "whoami": whoami}

    async def dispatch(request: Request) -> JSONResponse:
        # One route for both, so /whoami does not pay for a failed /plain match first.
        endpoint = endpoints.get(request.path_params["endpoint"])
        if endpoint is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return endpoint(request)

    return Starlette(routes=[Route("/{endpoint}", dispatch)])


def ssl_context(network: NetworkConfig, verify: str) -> ssl.SSLContext:
    context = server_ssl_context(network)
    if verify == "none":
        context.verify_mode = ssl.CERT_NONE
    return context


def fixed_response() -> bytes:
    body = json.dumps(PLAIN_BODY, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class FixedResponseProtocol(asyncio.Protocol):
    """Answers each request (headers only, no body) with the same bytes."""

    response = fixed_response()

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            request, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            self.transport.write(self.response)
            if b"\r\nconnection: close" in request.lower():
                self.transport.close()
                return


def bind_loopback() -> socket.socket:
    """A listening socket on a free loopback port.

    The protocol must be IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on
    sockets whose `proto` says TCP, and without it uvicorn's separate header
    and body writes meet Nagle + delayed ACK (about 40 ms per response).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


def announce(sock: socket.socket) -> None:
    print(f"READY {sock.getsockname()[1]}", flush=True)


def on_stdin_eof(callback: Callable[[], None]) -> None:
    """Call `callback` when the parent closes our stdin (or dies)."""
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()

    def readable() -> None:
        if not os.read(fd, 4096):
            loop.remove_reader(fd)
            callback()

    loop.add_reader(fd, readable)


async def serve_until_stdin_eof(
    config: uvicorn.Config, on_started: Callable[[socket.socket], None]
) -> None:
    """Serve on a fresh loopback socket; `on_started` once listening; stop when stdin closes."""
    server = uvicorn.Server(config)
    sock = bind_loopback()

    def stop() -> None:
        server.should_exit = True

    on_stdin_eof(stop)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.01)
    on_started(sock)
    await task


async def serve_app(network: NetworkConfig, http: str, verify: str) -> None:
    config = uvicorn.Config(
        build_app(network),
        loop="asyncio",
        http=HTTP_CLASSES[http],
        lifespan="off",
        log_level="warning",
        access_log=False,
        ssl_context_factory=lambda _config, _default: ssl_context(network, verify),
    )
    await serve_until_stdin_eof(config, announce)


async def serve_raw(network: NetworkConfig, verify: str) -> None:
    loop = asyncio.get_running_loop()
    sock = bind_loopback()
    done = asyncio.Event()
    on_stdin_eof(done.set)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, done.set)
    server = await loop.create_server(
        FixedResponseProtocol, sock=sock, ssl=ssl_context(network, verify)
    )
    announce(sock)
    await done.wait()
    server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", type=Path, required=True)
    parser.add_argument("--kind", choices=("app", "raw"), default="app")
    parser.add_argument("--http", choices=tuple(HTTP_CLASSES), default="httptools")
    parser.add_argument("--verify", choices=("required", "none"), default="required")
    args: Any = parser.parse_args(argv)
    network = load_network(args.network)
    if args.kind == "app":
        asyncio.run(serve_app(network, args.http, args.verify))
    else:
        asyncio.run(serve_raw(network, args.verify))
    return 0


if __name__ == "__main__":
    sys.exit(main())
