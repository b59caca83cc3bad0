"""Caps on what one caller holds open: websockets and subscriptions per identity, TLS handshakes
per address; over real mutual TLS."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from api.connection_limits import HandshakeLimitedLoop
from authz.network import CONFIG_FILE, NetworkConfigError, load_network
from authz.tls_context import server_ssl_context
from tests.api_client import Api, Subscriber, api_server
from tests.networks import NetworkFixture, make_network

MAX_WEBSOCKETS = 3
MAX_SUBSCRIPTIONS = 5
EVENTS = 'subscription { events(channel: "medical") { name subjectId } }'
ME = "{ me { uid } }"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("identity-caps") / "network")


@pytest.fixture(scope="module")
def api(net: NetworkFixture) -> Iterator[Api]:
    network = load_network(net.directory)
    server = dataclasses.replace(
        network.server,
        max_websockets_per_identity=MAX_WEBSOCKETS,
        max_subscriptions_per_identity=MAX_SUBSCRIPTIONS,
    )
    network = dataclasses.replace(network, server=server)
    with api_server(net, f"sqlite:///{net.directory.parent}/ledger.db", network) as running:
        yield running


@pytest.fixture
def sockets() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def open_socket(api: Api, uid: str, stack: ExitStack) -> Subscriber:
    subscriber = Subscriber(api, uid, EVENTS)
    stack.callback(subscriber.close)
    return subscriber


def refused_socket(api: Api, uid: str) -> ConnectionClosed:
    """The close a websocket over the cap receives."""
    with pytest.raises(ConnectionClosed) as closed:
        Subscriber(api, uid, EVENTS)
    return closed.value


def subscribe(subscriber: Subscriber, operation_id: str) -> None:
    subscriber.send({"id": operation_id, "type": "subscribe", "payload": {"query": EVENTS}})


def settled(condition: Any, seconds: float = 5) -> bool:
    """Whether `condition()` holds within `seconds` (the server learns of a drop a moment later)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_websockets_beyond_the_cap_are_closed_with_4429_for_that_identity_only(
    api: Api, sockets: ExitStack
) -> None:
    for _ in range(MAX_WEBSOCKETS):
        open_socket(api, "alice", sockets)
    closed = refused_socket(api, "alice")
    assert closed.rcvd is not None
    assert (closed.rcvd.code, closed.rcvd.reason) == (
        4429,
        "too many websockets for this certificate",
    )
    # Another person, even of the same organisation, is not held to alice's count.
    bob = open_socket(api, "bob", sockets)
    subscribe(bob, "2")
    assert bob.silent_for(0.3)


def test_closed_and_dropped_websockets_free_their_slots(api: Api) -> None:
    with ExitStack() as stack:
        opened = [open_socket(api, "alice", stack) for _ in range(MAX_WEBSOCKETS)]
        refused_socket(api, "alice")
        opened[0].close()  # a clean close
        assert settled(lambda: admitted(api, "alice", stack))
        refused_socket(api, "alice")
        # A dropped connection: no close frame, the TCP connection just ends.
        opened[1]._watchdog.shutdown(socket.SHUT_RDWR)
        assert settled(lambda: admitted(api, "alice", stack))
    # Every socket closed: the whole allowance is there again.
    with ExitStack() as stack:
        assert settled(lambda: admitted(api, "alice", stack))
        for _ in range(MAX_WEBSOCKETS - 1):
            open_socket(api, "alice", stack)


def admitted(api: Api, uid: str, stack: ExitStack) -> bool:
    """Whether one more websocket of `uid` is accepted (kept open on `stack` if so)."""
    try:
        open_socket(api, uid, stack)
    except ConnectionClosed:
        return False
    return True


def test_subscriptions_beyond_the_cap_are_refused_across_the_identitys_sockets(
    api: Api, sockets: ExitStack
) -> None:
    first = open_socket(api, "alice", sockets)  # subscription "1"
    second = open_socket(api, "alice", sockets)  # subscription "1" on another socket
    for operation_id in range(2, MAX_SUBSCRIPTIONS):  # up to the cap, over both sockets
        subscribe(first, str(operation_id))
    assert first.silent_for(0.3)
    subscribe(second, "over")
    refusal = second.receive(5)
    assert refusal["type"] == "error" and refusal["id"] == "over", refusal
    [error] = refusal["payload"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"] == (
        f"too many subscriptions for this certificate (at most {MAX_SUBSCRIPTIONS} at once)"
    )
    # The socket stays open, and a completed subscription frees its slot.
    first.send({"id": "2", "type": "complete"})
    assert settled(lambda: _subscribes(second, "again"))
    # bob has his own count.
    bob = open_socket(api, "bob", sockets)
    subscribe(bob, "2")
    assert bob.silent_for(0.3)


def _subscribes(subscriber: Subscriber, operation_id: str) -> bool:
    subscribe(subscriber, operation_id)
    try:
        message = subscriber.receive(0.3)
    except TimeoutError:
        return True
    assert message["type"] == "error", message
    return False


def test_a_person_is_served_quickly_while_another_holds_everything_they_may(
    api: Api,
) -> None:
    """One parent tries for 40 sockets with 40 subscriptions each; alice's query stays quick."""
    bob = api("bob")
    accepted: list[Subscriber] = []
    done = threading.Event()

    def flood() -> None:
        try:
            for _ in range(40):
                try:
                    subscriber = Subscriber(api, "alice", EVENTS)
                except ConnectionClosed:
                    continue
                accepted.append(subscriber)
                for operation_id in range(2, 41):
                    subscribe(subscriber, str(operation_id))
        finally:
            done.set()

    flooder = threading.Thread(target=flood, daemon=True)
    timings: list[float] = []
    try:
        flooder.start()
        while not done.is_set() or len(timings) < 20:
            started = time.perf_counter()
            assert bob.data(ME) == {"me": {"uid": "bob"}}
            timings.append(time.perf_counter() - started)
        flooder.join(10)
        assert len(accepted) == MAX_WEBSOCKETS
        assert statistics.median(timings) < 0.05, sorted(timings)
    finally:
        done.wait(30)
        for subscriber in accepted:
            subscriber.close()


def test_the_caps_are_settings_with_defaults_and_ranges(
    net: NetworkFixture, tmp_path: Path
) -> None:
    server = load_network(net.directory).server
    assert (
        server.max_websockets_per_identity,
        server.max_subscriptions_per_identity,
        server.max_handshakes_per_address,
    ) == (8, 32, 16)
    text = (net.directory / CONFIG_FILE).read_text()
    for setting, value, message in [
        ("max_websockets_per_identity", "0", "between 1 and 1000"),
        ("max_subscriptions_per_identity", "10001", "between 1 and 10000"),
        ("max_handshakes_per_address", "2.5", "wrong type"),
    ]:
        directory = tmp_path / setting
        directory.mkdir()
        (directory / CONFIG_FILE).write_text(
            text.replace("[server]\n", f"[server]\n{setting} = {value}\n", 1)
        )
        with pytest.raises(NetworkConfigError, match=f"server.{setting}.*{message}"):
            load_network(directory)


# -- TLS handshakes per address ---------------------------------------------------------------


class _Handshaken(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


@pytest.fixture
def handshake_server(net: NetworkFixture) -> Iterator[tuple[int, HandshakeLimitedLoop]]:
    """A TLS server on a HandshakeLimitedLoop (2 per address, 1 s) in a thread."""
    loop = HandshakeLimitedLoop(max_per_address=2, handshake_timeout=1.0)
    context = server_ssl_context(load_network(net.directory))
    server = loop.run_until_complete(loop.create_server(_Handshaken, "127.0.0.1", 0, ssl=context))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield port, loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_connections_that_never_finish_the_handshake_are_bounded_per_address(
    handshake_server: tuple[int, HandshakeLimitedLoop], net: NetworkFixture
) -> None:
    port, loop = handshake_server
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    try:
        time.sleep(0.3)  # the server has accepted both and is waiting for their ClientHello
        # The third silent connection from the same address is closed at once ...
        third = socket.create_connection(("127.0.0.1", port))
        with third:
            assert _closed_by_server(third, 0.5)
        # ... and the two waiting ones are dropped once the handshake timeout passes.
        started = time.monotonic()
        for sock in silent:
            assert _closed_by_server(sock, 3)
        assert time.monotonic() - started < 2.5
        assert settled(lambda: loop.handshakes("127.0.0.1") == 0)
        # A client that does finish the handshake is served again.
        context = net.client_context("alice")
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.version() is not None
    finally:
        for sock in silent:
            sock.close()
