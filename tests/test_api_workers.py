"""Two `healthledger serve` processes on one PostgreSQL ledger: one chain, no lost updates."""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from devkit.serve_process import ServeProcess
from ledger_backends.testing import needs_backend, scratch_url
from tests.api_client import HISTORY, GraphQLClient, nodes, register, sign_and_accept
from tests.networks import NetworkFixture, make_network

pytestmark = needs_backend("postgresql")

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


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("workers") / "network")


@pytest.fixture(scope="module")
def servers(net: NetworkFixture) -> Iterator[list[ServeProcess]]:
    logs = net.directory.parent
    with (
        scratch_url("postgresql") as url,
        ServeProcess(net.directory, url, logs / "serve-1.log") as first,
        ServeProcess(net.directory, url, logs / "serve-2.log") as second,
    ):
        started = [first, second]
        for server in started:
            server.launch()
        for server in started:
            server.wait_ready()
        yield started
        for server in started:
            assert server.terminate() in (0, -signal.SIGTERM), server.log_text()
            assert "Application shutdown complete" in server.log_text()


class Api:
    """The `Api` shape the story helpers expect, over one server per call."""

    def __init__(self, net: NetworkFixture, servers: list[ServeProcess]) -> None:
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
def api(net: NetworkFixture, servers: list[ServeProcess]) -> Iterator[Api]:
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
        newest = api.on("alice", server).data(HISTORY, {"child": child})["medicalCardHistory"]
        history = nodes(newest)[::-1]
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
