"""Two `healthledger serve` processes on one PostgreSQL ledger: one chain, no lost updates."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.api_client import HISTORY, GraphQLClient, register, sign_and_accept
from tests.networks import NetworkFixture, make_network
from tests.services import POSTGRES_URL, unique_name
from tests.tls_server import free_port

HEALTHLEDGER = Path(sys.executable).with_name("healthledger")
ROUNDS = 4
WRITERS_PER_SERVER = 3
UPDATE = """
mutation($child: ID!, $version: Int!, $notes: String!) {
  updateMedicalCard(childId: $child, expectedVersion: $version, patch: {notes: $notes}) {
    version notes
  }
}"""
CHAIN = """
{ channels { name height tipHash }
  medical: verifyChannel(channel: "medical") { ok height firstBadBlock reason }
  report: verifyChannel(channel: "report") { ok height } }"""


class Server:
    """One `healthledger serve` process."""

    def __init__(self, net: NetworkFixture, ledger_url: str, log: Path) -> None:
        self.port = free_port()
        self.base_url = f"https://127.0.0.1:{self.port}"
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHLEDGER_")}
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                [
                    str(HEALTHLEDGER),
                    "serve",
                    "--network",
                    str(net.directory),
                    "--ledger",
                    ledger_url,
                    "--port",
                    str(self.port),
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def wait_ready(self, net: NetworkFixture, seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        with httpx.Client(verify=net.client_context("alice"), timeout=2) as client:
            while True:
                assert self.process.poll() is None, self.log.read_text()
                try:
                    if client.get(f"{self.base_url}/readyz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the server did not start:\n" + (
                    self.log.read_text()
                )
                time.sleep(0.05)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("workers") / "network")


@pytest.fixture(scope="module")
def servers(net: NetworkFixture) -> Iterator[list[Server]]:
    schema = unique_name("hl_workers")
    base = POSTGRES_URL.split("?", 1)[0]
    url = f"{base}?schema={schema}"
    started = [Server(net, url, net.directory.parent / f"serve-{n}.log") for n in (1, 2)]
    try:
        for server in started:
            server.wait_ready(net)
        yield started
        for server in started:
            assert server.stop() in (0, -signal.SIGTERM), server.log.read_text()
            assert "Application shutdown complete" in server.log.read_text()
    finally:
        for server in started:
            if server.process.poll() is None:
                server.process.kill()
                server.process.wait()
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


class Api:
    """The `Api` shape the story helpers expect, over one server per call."""

    def __init__(self, net: NetworkFixture, servers: list[Server]) -> None:
        self.net = net
        self.servers = servers
        self.turn = 0
        self.clients: dict[tuple[str, int], GraphQLClient] = {}

    def on(self, uid: str, server: int) -> GraphQLClient:
        key = (uid, server)
        if key not in self.clients:
            self.clients[key] = GraphQLClient(
                self.servers[server].base_url, self.net.client_context(uid), uid
            )
        return self.clients[key]

    def __call__(self, uid: str) -> GraphQLClient:
        """Alternates between the servers, so a story's steps run on both."""
        self.turn += 1
        return self.on(uid, self.turn % len(self.servers))

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


@pytest.fixture(scope="module")
def api(net: NetworkFixture, servers: list[Server]) -> Iterator[Api]:
    both = Api(net, servers)
    yield both
    both.close()


def test_concurrent_card_updates_on_two_servers_have_exactly_one_winner_per_version(
    api: Api,
) -> None:
    child = register(api)
    sign_and_accept(api, child)
    writers = [(server, n) for server in range(len(api.servers)) for n in range(WRITERS_PER_SERVER)]
    winners: list[str] = []
    with ThreadPoolExecutor(len(writers)) as pool:
        for version in range(1, ROUNDS + 1):
            barrier = threading.Barrier(len(writers))
            write = functools.partial(_update, api, child, version, barrier)
            answers = list(pool.map(write, writers))
            won = [a["data"]["updateMedicalCard"] for a in answers if not a.get("errors")]
            lost = [a["errors"][0]["extensions"]["code"] for a in answers if a.get("errors")]
            assert len(won) == 1, answers
            assert won[0]["version"] == version + 1
            assert lost == ["CONFLICT"] * (len(writers) - 1), answers
            winners.append(str(won[0]["notes"]))

    for server in range(len(api.servers)):
        history = api.on("alice", server).data(HISTORY, {"child": child})["medicalCardHistory"]
        assert [r["version"] for r in history] == list(range(1, ROUNDS + 2))
        blocks = [r["blockNumber"] for r in history]
        assert blocks == sorted(set(blocks)), "each version has its own, later block"
        assert len({r["txId"] for r in history}) == len(history)
        assert {r["author"] for r in history[1:]} == {"dr-house"}
    card = api.on("bob", 0).errors(
        "query($c: ID!) { medicalCard(childId: $c) { notes } }", {"c": child}
    )
    assert card[0]["extensions"]["code"] == "NOT_FOUND", "bob is no guardian of this child"
    notes = api.on("alice", 1).data(
        "query($c: ID!) { medicalCard(childId: $c) { version notes } }", {"c": child}
    )["medicalCard"]
    assert notes == {"version": ROUNDS + 1, "notes": winners[-1]}


def _update(
    api: Api, child: str, version: int, barrier: threading.Barrier, writer: tuple[int, int]
) -> dict[str, Any]:
    """One doctor's update through its own connection, released with the others at once."""
    server, n = writer
    client = GraphQLClient(api.servers[server].base_url, api.net.client_context("dr-house"), None)
    try:
        variables = {"child": child, "version": version, "notes": f"v{version} s{server} w{n}"}
        barrier.wait(timeout=10)
        return client.execute(UPDATE, variables)
    finally:
        client.close()


def test_both_servers_see_one_intact_chain(api: Api) -> None:
    for n in range(4):  # the helper alternates servers: both append to the same chain
        sign_and_accept(api, register(api, "alice", f"Child {n}"))
    views = [api.on("alice", server).data(CHAIN) for server in range(len(api.servers))]
    assert views[0]["channels"] == views[1]["channels"]
    for view in views:
        assert view["medical"]["ok"] is True, view["medical"]
        assert view["report"]["ok"] is True
        heights = {c["name"]: c["height"] for c in view["channels"]}
        assert view["medical"]["height"] == heights["medical"] >= 12
