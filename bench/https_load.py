"""A minimal HTTP/1.1 load generator over mutual TLS, measured in windows.

A connection is `asyncio.open_connection` with an `ssl` context holding one user's
certificate, with one request in flight: the request is written, then the response head
and its Content-Length body are read. What a connection sends, and whether an answer
counts, is its `Flow`'s to say. `measure` opens the connections to one server, warms up on
the first path, then takes one window per path, in order: answers counted and refused in
it (with the reasons), the latency of each counted one (request written to last body
byte), and the CPU time of this process and of the server's processes. With `handshakes`,
every request is a new connection (`Connection: close`, no session resumption).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .harness import percentile

HOST = "127.0.0.1"
SETTLE_S = 0.2
DRAIN_TIMEOUT_S = 15.0
RECONNECTS = 3
Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def request(method: str, path: str, port: int, body: bytes = b"", *, close: bool = False) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    if close:
        head += "Connection: close\r\n"
    return (head + "\r\n").encode() + body


def graphql_body(query: str, variables: dict[str, Any] | None = None) -> bytes:
    document = {"query": query, "variables": variables or {}}
    return json.dumps(document, separators=(",", ":")).encode()


async def connect(port: int, context: ssl.SSLContext) -> Streams:
    return await asyncio.open_connection(HOST, port, ssl=context, server_hostname=HOST)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.1 response with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    lower = head.lower()
    start = lower.find(b"\r\ncontent-length:")
    if start < 0:
        raise ValueError(f"no Content-Length in {head!r}")
    length = int(head[start + 17 : lower.index(b"\r\n", start + 2)])
    return int(head[9:12]), await reader.readexactly(length) if length else b""


async def close_quietly(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), 2.0)


def outcome(status: int, body: bytes) -> str:
    """`ok` for HTTP 200 with a JSON object and no "errors"; else the first error's code."""
    if status != 200:
        return f"HTTP {status}"
    try:
        answer = json.loads(body)
    except ValueError:
        return "unparsable body"
    if not isinstance(answer, dict):
        return "not a JSON object"
    if not (errors := answer.get("errors")):
        return "ok"
    first = errors[0] if isinstance(errors, list) and isinstance(errors[0], dict) else {}
    return str((first.get("extensions") or {}).get("code") or first.get("message"))[:60]


class Flow(Protocol):
    """What one connection sends next, and whether an answer counts."""

    def request(self, path: str, port: int) -> bytes: ...

    def refusal(self, path: str, status: int, body: bytes) -> str | None:
        """None when the answer counts, else why not."""
        ...

    async def recover(self, streams: Streams, port: int) -> None:
        """Called before every request; puts right what a refused answer left wrong."""
        ...


@dataclass
class Get:
    """`GET path`, counted when the answer is HTTP 200."""

    close: bool = False
    cache: dict[tuple[str, int], bytes] = field(default_factory=dict)

    def request(self, path: str, port: int) -> bytes:
        if (path, port) not in self.cache:
            self.cache[path, port] = request("GET", path, port, close=self.close)
        return self.cache[path, port]

    def refusal(self, path: str, status: int, body: bytes) -> str | None:
        return None if status == 200 else f"HTTP {status}"

    async def recover(self, streams: Streams, port: int) -> None:
        return None


@dataclass
class Post:
    """POST of the same JSON body to any path, counted when `outcome` is ok."""

    body: bytes

    def request(self, path: str, port: int) -> bytes:
        return request("POST", path, port, self.body)

    def refusal(self, path: str, status: int, body: bytes) -> str | None:
        found = outcome(status, body)
        return None if found == "ok" else found

    async def recover(self, streams: Streams, port: int) -> None:
        return None


@dataclass(frozen=True)
class Sample:
    """One measurement window."""

    counted: int
    refused: int
    seconds: float
    latencies_ms: tuple[float, ...]
    client_cpu_s: float
    server_cpu_s: float
    reasons: dict[str, int]

    @property
    def rate(self) -> float:
        return self.counted / self.seconds

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies_ms, 0.50)

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies_ms, 0.99)

    @property
    def server_us(self) -> float:
        return self.server_cpu_s / self.counted * 1e6 if self.counted else float("nan")

    @property
    def client_us(self) -> float:
        return self.client_cpu_s / self.counted * 1e6 if self.counted else float("nan")

    @property
    def server_busy(self) -> float:
        return self.server_cpu_s / self.seconds

    @property
    def client_busy(self) -> float:
        return self.client_cpu_s / self.seconds


@dataclass
class _Load:
    """Shared by the connections of one `measure`."""

    path: str
    running: bool = True
    recording: bool = False
    counted: int = 0
    latencies: list[float] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)

    def refuse(self, reason: str) -> None:
        if self.recording:
            self.reasons[reason] = self.reasons.get(reason, 0) + 1


async def _connection(
    port: int, context: ssl.SSLContext, flow: Flow, load: _Load, streams: Streams | None
) -> None:
    handshakes, failures = streams is None, 0
    try:
        while load.running:
            path = load.path
            try:
                streams = streams or await connect(port, context)
                await flow.recover(streams, port)
                data = flow.request(path, port)
                started = time.perf_counter()
                streams[1].write(data)
                status, body = await read_response(streams[0])
                finished = time.perf_counter()
            except (
                OSError,
                EOFError,
                asyncio.IncompleteReadError,
                ssl.SSLError,
                ValueError,
            ) as exc:
                load.refuse(type(exc).__name__)
                failures += 1
                if failures > RECONNECTS:
                    raise
                if streams is not None:
                    await close_quietly(streams[1])
                streams = None
                continue
            failures = 0
            if handshakes:
                await close_quietly(streams[1])
                streams = None
            reason = flow.refusal(path, status, body)
            if reason is not None:
                load.refuse(reason)
            elif load.recording:
                load.counted += 1
                load.latencies.append((finished - started) * 1000)
    finally:
        if streams is not None:
            await close_quietly(streams[1])


async def _window(load: _Load, seconds: float, server_cpu: Callable[[], float]) -> Sample:
    load.counted, load.latencies, load.reasons = 0, [], {}
    begin = (time.perf_counter(), time.process_time(), server_cpu())
    load.recording = True
    await asyncio.sleep(seconds)
    load.recording = False
    end = (time.perf_counter(), time.process_time(), server_cpu())
    return Sample(
        counted=load.counted,
        refused=sum(load.reasons.values()),
        seconds=end[0] - begin[0],
        latencies_ms=tuple(sorted(load.latencies)),
        client_cpu_s=end[1] - begin[1],
        server_cpu_s=end[2] - begin[2],
        reasons=dict(load.reasons),
    )


async def measure(
    port: int,
    connections: Sequence[tuple[ssl.SSLContext, Flow]],
    paths: Sequence[str],
    args: Any,
    server_cpu: Callable[[], float],
    handshakes: bool = False,
) -> list[tuple[str, Sample]]:
    """After `args.warmup` s on the first path, one window of `args.duration` s per path, in order;
    a connection failing more than RECONNECTS times in a row ends it."""
    load = _Load(paths[0])
    # Opened one at a time: the API's event loop closes an address's 17th concurrent handshake.
    opened = [None if handshakes else await connect(port, c) for c, _ in connections]
    workers = [
        asyncio.create_task(_connection(port, context, flow, load, streams))
        for (context, flow), streams in zip(connections, opened, strict=True)
    ]

    async def windows() -> list[tuple[str, Sample]]:
        await asyncio.sleep(args.warmup)
        found = []
        for path in paths:
            if path != load.path:
                load.path = path
                await asyncio.sleep(SETTLE_S)
            found.append((path, await _window(load, args.duration, server_cpu)))
        return found

    measuring = asyncio.create_task(windows())
    try:
        # Connections return only by failing while `load.running`, so this waits for the windows.
        await asyncio.wait([measuring, *workers], return_when=asyncio.FIRST_COMPLETED)
    finally:
        measuring.cancel()
        load.running = False
        done, pending = await asyncio.wait(workers, timeout=DRAIN_TIMEOUT_S)
        for task in pending:
            task.cancel()
    for task in done:
        task.result()
    return measuring.result()
