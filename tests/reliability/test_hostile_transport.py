"""Hostile HTTP and TLS clients against a real `healthledger serve` process.

Bodies too large, not UTF-8, not JSON objects, of the wrong content type or
batched; a mutation over GET and a subscription over POST; slowloris clients
and oversized request heads; websocket messages that are not protocol messages;
a flood of websocket upgrades without a client certificate; a client that never
reads its response. `serve` runs as a
subprocess because its uvicorn protocol (httptools) and timeouts are part of
what is tested. Every refusal is a 4xx with a short sentence (or a coded GraphQL
error), the server never logs an unhandled exception, and it keeps answering.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import request_response
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import connect as ws_connect

from api.app import MAX_BODY_BYTES, BodyLimit
from api.server import KEEP_ALIVE_SECONDS
from authz import write_timeout
from authz.network import load_network
from authz.request_head import MAX_REQUEST_HEAD_BYTES, REQUEST_HEAD_SECONDS
from devkit.serve_process import ServeProcess
from tests.api_client import (
    REGISTER_CHILD,
    WS_PROTOCOL,
    Api,
    GraphQLClient,
    Subscriber,
    assert_nothing_leaks,
    register,
)
from tests.networks import NetworkFixture, make_network
from tests.tls_server import serving as serving_app

ME = "{ me { uid } }"
CHILDREN = "{ children(first: 200) { edges { cursor } } }"
EVENTS = 'subscription { events(channel: "medical") { name subjectId channel } }'
UNHANDLED = "Exception in ASGI application"  # what uvicorn logs when the app raised (HTTP 500)
FLOOD = 200
ANSWER_SECONDS = 2
LEEWAY_SECONDS = 3


@dataclass
class Serving:
    net: NetworkFixture
    server: ServeProcess
    alice: GraphQLClient

    def connect(self, uid: str | None = "alice") -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
        return self.net.client_context(uid).wrap_socket(raw, server_hostname="127.0.0.1")

    def post(self, body: bytes | Iterator[bytes], content_type: str | None) -> httpx.Response:
        headers = {} if content_type is None else {"content-type": content_type}
        return self.alice.http.post("/graphql", content=body, headers=headers)

    def children(self) -> int:
        return len(self.alice.data(CHILDREN)["children"]["edges"])

    def still_answers(self) -> None:
        """A new connection gets a normal query answered at once; nothing unhandled was logged."""
        client = GraphQLClient(self.server.base_url, self.net.client_context("alice"), "alice")
        try:
            started = time.monotonic()
            assert client.data(ME) == {"me": {"uid": "alice"}}
            assert time.monotonic() - started < ANSWER_SECONDS
        finally:
            client.close()
        assert UNHANDLED not in self.server.log.read_text()


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serving]:
    root = tmp_path_factory.mktemp("hostile-transport")
    net = make_network(root / "network")
    with ServeProcess(net.directory, f"sqlite:///{root}/ledger.db", root / "serve.log") as server:
        server.start()
        alice = GraphQLClient(server.base_url, net.client_context("alice"), "alice")
        try:
            yield Serving(net, server, alice)
        finally:
            alice.close()
            server.terminate()


def _refused(response: httpx.Response, status: int = 400) -> str:
    """A 4xx whose body is a GraphQL response of one short sentence, not a fault."""
    assert response.status_code == status, response.text[:300]
    assert_nothing_leaks(response.text)
    [error] = response.json()["errors"]
    message = str(error["message"])
    assert len(message) < 200 and "\n" not in message, message
    return message


# -- bodies ---------------------------------------------------------------------------------------


def _padded(size: int) -> bytes:
    """A valid request body of exactly `size` bytes (the query padded with spaces)."""
    body = json.dumps({"query": ME}).encode()
    return body[:-1] + b" " * (size - len(body)) + b"}"


def test_a_body_of_exactly_one_mebibyte_is_answered(serving: Serving) -> None:
    response = serving.post(_padded(MAX_BODY_BYTES), "application/json")
    assert response.status_code == 200
    assert response.json() == {"data": {"me": {"uid": "alice"}}}


@pytest.mark.parametrize("streamed", [False, True], ids=["declared-length", "chunked"])
def test_a_body_over_one_mebibyte_gets_413(serving: Serving, streamed: bool) -> None:
    body = _padded(MAX_BODY_BYTES + 1)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    response = serving.post(chunks() if streamed else body, "application/json")
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    serving.still_answers()


def test_a_declared_ten_gibibyte_body_gets_413_before_it_is_sent(serving: Serving) -> None:
    with serving.connect() as tls:
        tls.sendall(
            b"POST /graphql HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"content-length: 10737418240\r\n\r\n"
        )
        assert tls.recv(100).startswith(b"HTTP/1.1 413 ")
    serving.still_answers()


NOT_JSON_OBJECTS = {
    "invalid-utf8": b'{"query": "{ me { uid } } # \xff\xfe"}',
    "utf16-with-bom": '{"query": "{ me { uid } }"}'.encode("utf-16"),
    "latin1": '{"query": "{ me { uid } } # café"}'.encode("latin-1"),
    "truncated": b'{"query": "{ me',
    "empty": b"",
    "number": b"5",
    "string": b'"{ me { uid } }"',
    "null": b"null",
    "deep-nesting": b"[" * 100_000 + b"]" * 100_000,
    "5000-digit-number": b'{"query": "{ me { uid } }", "variables": {"n": 1' + b"0" * 5_000 + b"}}",
}


@pytest.mark.parametrize("body", NOT_JSON_OBJECTS.values(), ids=NOT_JSON_OBJECTS.keys())
def test_a_body_that_is_not_a_utf8_json_object_gets_400(serving: Serving, body: bytes) -> None:
    _refused(serving.post(body, "application/json"))
    serving.still_answers()


WRONG_CONTENT_TYPES = {
    "text-plain": "text/plain",
    "form-urlencoded": "application/x-www-form-urlencoded",
    "multipart-junk": "multipart/form-data; boundary=xx",
    "graphql": "application/graphql",
    "xml": "application/xml",
    "none": None,
}


@pytest.mark.parametrize(
    "content_type", WRONG_CONTENT_TYPES.values(), ids=WRONG_CONTENT_TYPES.keys()
)
def test_a_body_of_another_content_type_gets_415(
    serving: Serving, content_type: str | None
) -> None:
    body = b"--xx\r\ngarbage" if content_type and "multipart" in content_type else b"query=%7Bme%7D"
    assert "Content-Type: application/json" in _refused(serving.post(body, content_type), 415)
    serving.still_answers()


# -- what a request may ask for -------------------------------------------------------------------

REGISTER = json.dumps(
    {
        "query": REGISTER_CHILD,
        "variables": {"input": {"fullName": "Get Smart", "birthDate": "2019-01-01"}},
    }
)


def test_a_mutation_over_get_is_refused_and_writes_nothing(serving: Serving) -> None:
    before = serving.children()
    body = json.loads(REGISTER)
    url = f"/graphql?query={quote(body['query'])}&variables={quote(json.dumps(body['variables']))}"
    response = serving.alice.http.get(url, headers={"accept": "application/json"})
    assert _refused(response, 405) == "A mutation is sent by POST, never by GET."
    hidden = f"query A {{ me {{ uid }} }} {body['query'].replace('mutation', 'mutation B', 1)}"
    url = f"/graphql?query={quote(hidden)}&variables={quote(json.dumps(body['variables']))}"
    assert _refused(serving.alice.http.get(url + "&operationName=B"), 405).startswith("A mutation")
    unnamed = serving.alice.http.get(url).json()  # several operations, none named: none runs
    assert unnamed["data"] is None
    assert [e["extensions"]["code"] for e in unnamed["errors"]] == ["BAD_REQUEST"]
    assert serving.children() == before
    query = serving.alice.http.get(f"/graphql?query={quote(ME)}")
    assert query.json() == {"data": {"me": {"uid": "alice"}}}, "queries over GET are answered"


def test_a_batch_is_refused_and_none_of_it_runs(serving: Serving) -> None:
    before = serving.children()
    batch = f"[{REGISTER}, {REGISTER}]".encode()
    assert _refused(serving.post(batch, "application/json"), 400) == "Batching is not enabled"
    assert serving.children() == before
    serving.still_answers()


def test_a_subscription_over_post_is_refused_with_bad_user_input(serving: Serving) -> None:
    body = json.dumps({"query": 'subscription { events(channel: "medical") { name } }'})
    response = serving.post(body.encode(), "application/json")
    assert response.status_code == 200
    assert response.json() == {
        "data": None,
        "errors": [
            {
                "message": "Subscriptions are served over the websocket at /graphql.",
                "extensions": {"code": "BAD_USER_INPUT"},
            }
        ],
    }
    serving.still_answers()


MALFORMED_ENVELOPES: dict[str, dict[str, Any]] = {
    "query-not-a-string": {"query": 5},
    "no-query": {"variables": {}},
    "variables-a-list": {"query": ME, "variables": [1]},
    "extensions-a-string": {"query": ME, "extensions": "x"},
    "unknown-operation": {"query": "query A { me { uid } }", "operationName": "B"},
}


@pytest.mark.parametrize("envelope", MALFORMED_ENVELOPES.values(), ids=MALFORMED_ENVELOPES.keys())
def test_a_malformed_graphql_request_gets_400(serving: Serving, envelope: dict[str, Any]) -> None:
    response = serving.post(json.dumps(envelope).encode(), "application/json")
    _refused(response, 400)
    serving.still_answers()


# -- slow and oversized request heads -------------------------------------------------------------

HEAD = b"POST /graphql HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"


def _seconds_until_closed(tls: ssl.SSLSocket, head: bytes, pause: float, limit: float) -> float:
    """Sends `head` a byte per `pause` seconds (then waits); returns when the server hung up."""
    started = time.monotonic()
    tls.settimeout(pause)
    sent = 0
    while time.monotonic() - started < limit:
        try:
            if sent < len(head):
                tls.send(head[sent : sent + 1])
                sent += 1
            if tls.recv(1024) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except OSError:  # a reset or a TLS close without close_notify
            return time.monotonic() - started
    raise AssertionError(f"the connection was still open after {limit} s")


def test_slow_and_idle_clients_are_cut_off_and_the_others_answered(serving: Serving) -> None:
    limit = REQUEST_HEAD_SECONDS + LEEWAY_SECONDS
    body = json.dumps({"query": ME}).encode()
    steady = HEAD + b"content-length: %d\r\n\r\n" % len(body)

    def slowloris() -> float:
        with serving.connect() as tls:
            return _seconds_until_closed(tls, HEAD + b"x-slow: " + b"a" * 100, 1.0, limit)

    def idle_after_handshake() -> float:
        with serving.connect() as tls:
            return _seconds_until_closed(tls, b"", 0.5, limit)

    def idle_after_a_response() -> float:
        with serving.connect() as tls:
            tls.sendall(steady + body)
            assert tls.recv(1024).startswith(b"HTTP/1.1 200 ")
            return _seconds_until_closed(tls, b"", 0.5, limit)

    def head_over_three_seconds() -> bytes:
        with serving.connect() as tls:
            for byte in range(len(steady)):
                tls.send(steady[byte : byte + 1])
                time.sleep(3 / len(steady))
            tls.sendall(body)
            return tls.recv(1024)

    def websocket_past_the_deadline() -> dict[str, Any]:
        api = Api(serving.server.base_url, serving.net)
        try:
            with Subscriber(api, "alice", EVENTS) as subscriber:
                time.sleep(REQUEST_HEAD_SECONDS + 1)
                return subscriber.event("ChildRegistered", register(api, "alice", "Wes Socket"))
        finally:
            api.close()

    with ThreadPoolExecutor(5) as pool:
        upgraded = pool.submit(websocket_past_the_deadline)
        slow = pool.submit(slowloris)
        idle = pool.submit(idle_after_handshake)
        kept_alive = pool.submit(idle_after_a_response)
        steady_answer = pool.submit(head_over_three_seconds)
        assert steady_answer.result().startswith(b"HTTP/1.1 200 ")
        assert REQUEST_HEAD_SECONDS - 1 < slow.result() < limit
        assert REQUEST_HEAD_SECONDS - 1 < idle.result() < limit
        assert KEEP_ALIVE_SECONDS - 1 < kept_alive.result() < KEEP_ALIVE_SECONDS + LEEWAY_SECONDS
        assert upgraded.result()["channel"] == "medical", "the deadline spares upgraded connections"
    serving.still_answers()


def test_a_request_head_over_64_kib_gets_400_and_is_cut_off(serving: Serving) -> None:
    chunk = MAX_REQUEST_HEAD_BYTES // 16
    with serving.connect() as tls:
        tls.sendall(HEAD + b"x-big: ")
        with contextlib.suppress(OSError):  # the server hangs up while the header keeps coming
            for _ in range(32 * 16):
                tls.sendall(b"a" * chunk)
        answer = tls.recv(1024)
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert answer.endswith(b"The request head is too large.")
    serving.still_answers()


@pytest.mark.parametrize(("size", "status"), [(100_000, b"400"), (60 * 1024, b"200")])
def test_a_request_head_sent_in_one_write_is_bounded_the_same(
    serving: Serving, size: int, status: bytes
) -> None:
    body = json.dumps({"query": ME}).encode()
    head = HEAD + b"x-big: " + b"a" * size + b"\r\ncontent-length: %d\r\n\r\n" % len(body)
    with serving.connect() as tls:
        tls.sendall(head + body)
        answer = _read_until_closed(tls)
    assert answer.startswith(b"HTTP/1.1 " + status + b" "), answer[:200]
    if status == b"400":
        assert answer.endswith(b"The request head is too large.")
        assert b"HTTP/1.1 " not in answer[1:], "one refusal, and the request was never run"
    serving.still_answers()


def _read_until_closed(tls: ssl.SSLSocket) -> bytes:
    """Everything the server sends until it hangs up (or stays quiet for a second)."""
    tls.settimeout(1)
    received = b""
    with contextlib.suppress(TimeoutError, OSError):
        while chunk := tls.recv(65536):
            received += chunk
    return received


def test_a_body_trickled_in_past_the_deadline_gets_408_and_is_cut_off(tmp_path: Path) -> None:
    # serve's bound is MAX_BODY_SECONDS (30 s); the same middleware with 1 s keeps this short.
    net = make_network(tmp_path / "network")

    async def echo(request: Request) -> Response:
        return Response(await request.body())

    app = BodyLimit(request_response(echo), MAX_BODY_BYTES, seconds=1.0)
    with serving_app(app, load_network(net.directory), lifespan="off") as url:
        port = int(url.rsplit(":", 1)[1])
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        with net.client_context("alice").wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            started = time.monotonic()
            tls.sendall(HEAD + b"content-length: 100\r\n\r\n")
            answer = b""
            with contextlib.suppress(OSError):  # the server hangs up while bytes keep coming
                for _ in range(100):
                    tls.send(b"x")
                    time.sleep(0.1)
                    tls.settimeout(0.01)
                    with contextlib.suppress(TimeoutError):
                        answer += tls.recv(1024)
                    if answer:
                        break
            tls.settimeout(5)
            with contextlib.suppress(OSError):
                while chunk := tls.recv(1024):
                    answer += chunk
            elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"The request body was not sent within 1 s." in answer
    assert b"connection: close" in answer.lower()
    assert 1.0 <= elapsed < 1.0 + LEEWAY_SECONDS


# -- clients that do not read ----------------------------------------------------------------------

LARGE_BODY_BYTES = 8 * 1024 * 1024  # far more than the kernel buffers on both sides hold
CHUNK_BYTES = 64 * 1024  # sent in pieces, as StaticFiles sends the web app's assets


class _LargeResponse:
    """An ASGI app answering every GET with LARGE_BODY_BYTES; records how long sending took."""

    def __init__(self) -> None:
        self.send_seconds: list[float] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"content-length", str(LARGE_BODY_BYTES).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        started = time.monotonic()
        # Each send waits, without a limit of uvicorn's own, until the peer has read enough.
        chunk = {"type": "http.response.body", "body": b"x" * CHUNK_BYTES, "more_body": True}
        for _ in range(LARGE_BODY_BYTES // CHUNK_BYTES - 1):
            await send(chunk)
        await send({**chunk, "more_body": False})
        self.send_seconds.append(time.monotonic() - started)


def _large_response_client(
    url: str, net: NetworkFixture, request: bytes = b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"
) -> ssl.SSLSocket:
    """A client with a tiny receive buffer that has sent `request` (a GET of the response)."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    raw.settimeout(5)
    raw.connect(("127.0.0.1", int(url.rsplit(":", 1)[1])))
    tls = net.client_context("alice").wrap_socket(raw, server_hostname="127.0.0.1")
    tls.sendall(request)
    return tls


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_a_client_that_never_reads_its_response_is_cut_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, http: str
) -> None:
    # serve's bound is WRITE_TIMEOUT_SECONDS (30 s); the same protocol with 1 s keeps this short.
    monkeypatch.setattr(write_timeout, "WRITE_TIMEOUT_SECONDS", 1.0)
    net = make_network(tmp_path / "network")
    app = _LargeResponse()
    with serving_app(app, load_network(net.directory), http=http, lifespan="off") as url:
        with _large_response_client(url, net) as silent:
            time.sleep(1.0 + LEEWAY_SECONDS)
            assert len(app.send_seconds) == 1, "the server still waits for the silent client"
            assert 1.0 <= app.send_seconds[0] < 1.0 + LEEWAY_SECONDS
            received = _read_until_closed(silent)
        assert len(received) < LARGE_BODY_BYTES, "what the server still held was dropped"
        aborted = [r for r in caplog.records if r.name == write_timeout.log.name]
        assert [r.getMessage() for r in aborted] == [
            f"Aborted a connection to {aborted[0].args[0]}: "  # type: ignore[index]
            "it read nothing of what was sent for 1.0 s."
        ]


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_a_client_that_reads_slowly_but_steadily_gets_the_whole_response(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, http: str
) -> None:
    monkeypatch.setattr(write_timeout, "WRITE_TIMEOUT_SECONDS", 1.0)
    net = make_network(tmp_path / "network")
    with (
        serving_app(
            _LargeResponse(), load_network(net.directory), http=http, lifespan="off"
        ) as url,
        _large_response_client(url, net) as reader,
    ):
        started = time.monotonic()
        head, _, body = reader.recv(65536).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        while len(body) < LARGE_BODY_BYTES:
            chunk = reader.recv(256 * 1024)
            assert chunk, f"cut off after {len(body)} bytes"
            body += chunk
            time.sleep(0.002)  # reads at its own pace, never pausing as long as the timeout
        assert time.monotonic() - started > 1.0, "the response outlasted one timeout"
    assert not [r for r in caplog.records if r.name == write_timeout.log.name]


class _LargeStream:
    """An ASGI app streaming LARGE_BODY_BYTES over a websocket; records when sending ended."""

    def __init__(self) -> None:
        self.send_seconds: list[float] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        started = time.monotonic()
        with contextlib.suppress(OSError):  # uvicorn's ClientDisconnected once it is cut off
            for _ in range(LARGE_BODY_BYTES // CHUNK_BYTES):
                await send({"type": "websocket.send", "bytes": b"x" * CHUNK_BYTES})
        self.send_seconds.append(time.monotonic() - started)


def test_a_websocket_client_that_never_reads_is_cut_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(write_timeout, "WRITE_TIMEOUT_SECONDS", 1.0)
    net = make_network(tmp_path / "network")
    app = _LargeStream()
    with (
        serving_app(app, load_network(net.directory), lifespan="off") as url,
        _large_response_client(url, net, UPGRADE),
    ):
        time.sleep(1.0 + LEEWAY_SECONDS)
        assert len(app.send_seconds) == 1, "the server still waits for the silent client"
        assert 1.0 <= app.send_seconds[0] < 1.0 + LEEWAY_SECONDS
    assert [r.levelname for r in caplog.records if r.name == write_timeout.log.name] == ["WARNING"]


# -- websockets -----------------------------------------------------------------------------------

NOT_WS_MESSAGES = {
    "array": "[1, 2]",
    "number": "5",
    "null": "null",
    "deep-nesting": "[" * 100_000 + "]" * 100_000,
    "5000-digit-number": '{"type": "connection_init", "payload": 1' + "0" * 5_000 + "}",
    "not-json": "{type: connection_init}",
    "unknown-type": '{"type": 5}',
}


@pytest.mark.parametrize("message", NOT_WS_MESSAGES.values(), ids=NOT_WS_MESSAGES.keys())
def test_a_websocket_message_that_is_not_a_protocol_message_closes_with_4400(
    serving: Serving, message: str
) -> None:
    with ws_connect(
        serving.server.base_url.replace("https://", "wss://") + "/graphql",
        ssl=serving.net.client_context("alice"),
        subprotocols=[WS_PROTOCOL],  # type: ignore[list-item]
        open_timeout=5,
        close_timeout=2,
    ) as websocket:
        websocket.send(message)
        with pytest.raises(ConnectionClosedError) as closed:
            websocket.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400
    serving.still_answers()


# -- websocket upgrades without a certificate -----------------------------------------------------

UPGRADE = (
    b"GET /graphql HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
    b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n"
    b"sec-websocket-protocol: graphql-transport-ws\r\n\r\n"
)


def test_a_flood_of_websocket_upgrades_without_certificates_is_refused_at_the_handshake(
    serving: Serving,
) -> None:
    def upgrade_without_certificate(_: int) -> bytes:
        try:
            with serving.connect(None) as tls:  # TLS 1.3: the server checks the cert after this
                tls.sendall(UPGRADE)
                return tls.recv(1024)
        except (ssl.SSLError, OSError) as refused:
            return repr(refused).encode()

    started = time.monotonic()
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(upgrade_without_certificate, range(FLOOD)))
    flood_seconds = time.monotonic() - started
    upgraded = [answer for answer in answers if answer.startswith(b"HTTP/1.1 101")]
    assert not upgraded, f"{len(upgraded)} of {FLOOD} upgraded without a certificate"
    assert all(b"HTTP/" not in answer for answer in answers), {a[:60] for a in answers}
    assert flood_seconds < 30
    serving.still_answers()
