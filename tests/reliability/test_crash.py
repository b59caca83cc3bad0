"""Crash: kill -9 `healthledger serve`, or Redis itself, in the middle of concurrent writes.

Eight clients register children as fast as the server answers. After some
writes were acknowledged the server (or Redis) is killed with SIGKILL and
started again on the same ledger. Every registration that got a successful
response must then be listed, `healthledger verify` must pass, and the server
must accept writes again. Writes cut off by the crash may or may not be there:
the client was never told either way.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devkit.serve_process import ServeProcess, verify_ledger
from ledger_backends.testing import needs_backend
from tests.api_client import REGISTER_CHILD, GraphQLClient, RedisServer, every_page
from tests.networks import NetworkFixture, make_network

CLIENTS = 8
PARENTS = ("alice", "bob")
ACKED_BEFORE_CRASH = 60
LOAD_SECONDS = 30
CHILDREN = """
query($after: String) {
  children(first: 200, after: $after) {
    edges { node { id fullName } }
    pageInfo { hasNextPage endCursor }
  }
}"""


@dataclass(frozen=True)
class Registration:
    parent: str
    child_id: str
    name: str


class RegistrationLoad:
    """CLIENTS threads, each a parent's own HTTPS connection, registering children until stopped.

    A registration counts as acknowledged only when the server answered it with
    data and no error. Requests cut off without an answer, connections refused
    and GraphQL errors are counted; the clients keep trying, so they carry on
    once the server is back.
    """

    def __init__(self, net: NetworkFixture, server: ServeProcess, tag: str) -> None:
        self.net = net
        self.server = server
        self.tag = tag
        self.acknowledged: list[Registration] = []
        self.cut_off = 0
        self.refused = 0
        self.error_codes: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(CLIENTS, thread_name_prefix="client")
        self._clients: list[Future[None]] = []

    def __enter__(self) -> RegistrationLoad:
        self._clients = [self._pool.submit(self._register, n) for n in range(CLIENTS)]
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop every client; re-raises the first failure of a client thread."""
        self._stop.set()
        self._pool.shutdown(wait=True)
        for client in self._clients:
            client.result()

    def _register(self, n: int) -> None:
        parent = PARENTS[n % len(PARENTS)]
        client = GraphQLClient(self.server.base_url, self.net.client_context(parent), parent)
        try:
            attempt = 0
            while not self._stop.is_set():
                attempt += 1
                name = f"{self.tag} c{n} n{attempt}"
                variables = {"input": {"fullName": name, "birthDate": "2019-04-02"}}
                try:
                    response = client.post(REGISTER_CHILD, variables)
                except httpx.ConnectError:
                    with self._lock:
                        self.refused += 1
                    time.sleep(0.02)  # the server is down: do not spin on refused connections
                    continue
                except httpx.TransportError:
                    with self._lock:
                        self.cut_off += 1
                    continue
                assert response.status_code == 200, response.text
                body = response.json()
                with self._lock:
                    if body.get("errors"):
                        self.error_codes[body["errors"][0]["extensions"]["code"]] += 1
                    else:
                        child = body["data"]["registerChild"]
                        self.acknowledged.append(Registration(parent, child["id"], name))
        finally:
            client.close()

    def acknowledged_count(self) -> int:
        with self._lock:
            return len(self.acknowledged)

    def wait_until(
        self, what: str, condition: Callable[[], bool], seconds: float = LOAD_SECONDS
    ) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            for client in self._clients:
                if client.done():
                    client.result()  # a client thread failed: show why
            assert time.monotonic() < deadline, (
                f"{what} did not happen within {seconds} s: {self.acknowledged_count()} "
                f"acknowledged, {self.cut_off} cut off, {self.refused} refused, "
                f"errors {dict(self.error_codes)}\n"
                f"{self.server.log_text()[-3000:]}"
            )
            time.sleep(0.01)

    def wait_for_acknowledged(self, count: int) -> None:
        self.wait_until(f"{count} acknowledged writes", lambda: self.acknowledged_count() >= count)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("crash") / "network")


# A connection the kill cuts off mid-handshake is left to the garbage collector by httpcore,
# which then warns from whichever thread it runs in; the server side is what is tested here.
@pytest.mark.filterwarnings("ignore:unclosed <ssl.SSLSocket:ResourceWarning")
def test_acknowledged_writes_survive_kill_9_of_the_server(
    net: NetworkFixture, durable_ledger: str, tmp_path: Path
) -> None:
    with ServeProcess(net.directory, durable_ledger, tmp_path / "serve.log") as server:
        server.start()
        with RegistrationLoad(net, server, "crash") as load:
            load.wait_for_acknowledged(ACKED_BEFORE_CRASH)
            server.kill()
        assert load.cut_off > 0, "the kill should have cut off requests in flight"
        assert not load.error_codes, f"no GraphQL error expected: {dict(load.error_codes)}"

        server.restart()
        assert_all_listed(net, server, load.acknowledged)
        assert_verified(net, durable_ledger)
        assert_accepts_writes(net, server)


@needs_backend("redis")
def test_acknowledged_writes_survive_kill_9_of_redis_with_aof_always(
    net: NetworkFixture, redis_with_aof: RedisServer, tmp_path: Path
) -> None:
    ledger = redis_with_aof.url
    with ServeProcess(net.directory, ledger, tmp_path / "serve.log") as server:
        server.start()
        with RegistrationLoad(net, server, "redis-crash") as load:
            load.wait_for_acknowledged(ACKED_BEFORE_CRASH)
            redis_with_aof.kill()
            before_outage = load.acknowledged_count()
            load.wait_until(
                "an UNAVAILABLE answer", lambda: load.error_codes["UNAVAILABLE"] > 0, seconds=15
            )
            assert not server.ready(), "/readyz must say the ledger is unreachable"

            redis_with_aof.start()
            # The same server process recovers: no restart, writes are acknowledged again.
            server.wait_ready(seconds=15)
            load.wait_for_acknowledged(before_outage + CLIENTS * 2)
        assert load.cut_off == load.refused == 0, "the server itself kept every connection"
        assert set(load.error_codes) == {"UNAVAILABLE"}, dict(load.error_codes)

        assert_all_listed(net, server, load.acknowledged)
        assert_verified(net, ledger)
        assert_accepts_writes(net, server)


def assert_all_listed(
    net: NetworkFixture, server: ServeProcess, acknowledged: list[Registration]
) -> None:
    """Every acknowledged child is listed to its parent, under the name it was given."""
    assert acknowledged
    for parent in PARENTS:
        client = GraphQLClient(server.base_url, net.client_context(parent), parent)
        try:
            listed = {c["id"]: c["fullName"] for c in every_page(client, CHILDREN)}
        finally:
            client.close()
        mine = {r.child_id: r.name for r in acknowledged if r.parent == parent}
        lost = {child: name for child, name in mine.items() if listed.get(child) != name}
        assert not lost, f"{len(lost)} of {len(mine)} acknowledged registrations are gone: {lost}"


def assert_verified(net: NetworkFixture, ledger_url: str) -> None:
    verified = verify_ledger(net.directory, ledger_url)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def assert_accepts_writes(net: NetworkFixture, server: ServeProcess) -> None:
    client = GraphQLClient(server.base_url, net.client_context("alice"), "alice")
    try:
        variables = {"input": {"fullName": "After the crash", "birthDate": "2020-01-01"}}
        child = client.data(REGISTER_CHILD, variables)["registerChild"]
        listed = every_page(client, CHILDREN)
    finally:
        client.close()
    assert {"id": child["id"], "fullName": "After the crash"} in listed
