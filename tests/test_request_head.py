"""The request-head bound at the level of single reads, which a real socket cannot pin down.

Which bytes arrive together in one read depends on the kernel and the load: after an early
413 the rest of the refused body may come in reads of any size, and CI once saw the read
that ended such a body counted as the start of the next head. These tests feed the
protocol chosen reads through a transport that records what the server writes (as
uvicorn's own protocol tests do); the same bounds over real TLS connections are tested in
tests/reliability/test_hostile_transport.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.lifespan.off import LifespanOff
from uvicorn.server import ServerState

from authz.request_head import HEAD_TOO_LARGE, MAX_REQUEST_HEAD_BYTES, HeadLimitedHttpToolsProtocol

CHUNKED_POST = b"POST /graphql HTTP/1.1\r\nhost: example\r\ntransfer-encoding: chunked\r\n\r\n"
GET = b"GET /graphql HTTP/1.1\r\nhost: example\r\n\r\n"


class RecordingTransport(asyncio.Transport):
    """Keeps what the server writes; reading is controlled by the test's calls."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8443)}.get(
            name, default
        )

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def refuse_posts(scope: Any, receive: Any, send: Any) -> None:
    """413 for a POST at once, without reading its body (as the body limit does); 200 else."""
    status, body = (413, b"too large") if scope["method"] == "POST" else (200, b"ok")
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _connected() -> tuple[HeadLimitedHttpToolsProtocol, RecordingTransport]:
    config = Config(app=refuse_posts, lifespan="off")
    config.load()
    protocol = HeadLimitedHttpToolsProtocol(
        config=config,
        server_state=ServerState(),
        app_state=LifespanOff(config).state,
        _loop=asyncio.get_running_loop(),
    )
    transport = RecordingTransport()
    protocol.connection_made(transport)
    return protocol, transport


async def _answered(transport: RecordingTransport) -> bytes:
    """What the server wrote once its running requests had their turn; then forgotten."""
    for _ in range(20):
        await asyncio.sleep(0)
    written, transport.written = transport.written, b""
    return written


def test_the_read_that_ends_a_refused_body_is_not_counted_as_a_head() -> None:
    async def run() -> None:
        protocol, transport = await _connected()
        protocol.data_received(CHUNKED_POST + b"10\r\n" + b" " * 16 + b"\r\n")
        assert (await _answered(transport)).startswith(b"HTTP/1.1 413 ")
        rest = 4 * MAX_REQUEST_HEAD_BYTES
        protocol.data_received(b"%x\r\n" % rest + b" " * rest + b"\r\n0\r\n\r\n")
        assert await _answered(transport) == b""
        assert not transport.closed
        protocol.data_received(GET)
        answer = await _answered(transport)
        assert answer.startswith(b"HTTP/1.1 200 "), answer
        assert answer.endswith(b"ok")
        protocol.connection_lost(None)

    asyncio.run(run())


def test_a_head_begun_in_the_read_that_ended_a_request_is_still_bounded() -> None:
    async def run() -> None:
        protocol, transport = await _connected()
        protocol.data_received(CHUNKED_POST + b"10\r\n" + b" " * 16 + b"\r\n")
        assert (await _answered(transport)).startswith(b"HTTP/1.1 413 ")
        protocol.data_received(b"0\r\n\r\n" + b"GET /graphql HTTP/1.1\r\nx-big: ")
        chunk = b"a" * (MAX_REQUEST_HEAD_BYTES // 4)
        for _ in range(4):
            protocol.data_received(chunk)
            assert not transport.closed
        protocol.data_received(chunk)
        answer = await _answered(transport)
        assert answer.startswith(b"HTTP/1.1 400 "), answer
        assert answer.endswith(HEAD_TOO_LARGE.encode())
        assert transport.closed
        protocol.connection_lost(None)

    asyncio.run(run())
