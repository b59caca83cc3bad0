"""Concurrency: two `healthledger serve` processes on one PostgreSQL ledger, and two on one Redis.

Fifty doctors' clients, alternating between the two servers, update the same
medical card with the version they just read; a stale version is CONFLICT and
the client reads again. No acknowledged update may be lost: the versions go up
by exactly one per acknowledged update, each update is exactly one revision,
and both servers see one intact chain.

Then guardians revoke report permissions and an agreement while, at the same
moment, the report is approved again and the card updated. Whatever the
interleaving, the answers each caller got and the final state must be those of
the operations run one after another in some order.
"""

from __future__ import annotations

import itertools
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import pytest

from devkit.serve_process import ServeProcess, verify_ledger
from ledger_backends.testing import backend_params, scratch_url
from tests.api_client import (
    AGREEMENTS,
    APPROVE,
    REPORT,
    REPORT_META,
    REVOKE_AGREEMENT,
    REVOKE_PERMISSION,
    UPDATE_CARD,
    GraphQLClient,
    every_page,
    nodes,
    ready_report,
    register,
    sign_and_accept,
)
from tests.networks import NetworkFixture, make_network

CLIENTS = 50
UPDATES_PER_CLIENT = 1
RACE_ROUNDS = 12
SETUP_THREADS = 4
JITTER_SECONDS = 0.01
LAG_SECONDS = 0.3
DEADLINE_SECONDS = 60
BACKOFF_SECONDS = 0.005
CARD_VERSION = "query($child: ID!) { medicalCard(childId: $child) { version } }"
CARD_HISTORY = """
query($child: ID!, $after: String) {
  medicalCardHistory(childId: $child, first: 200, after: $after) {
    edges { node { version txId blockNumber card { notes } } }
    pageInfo { hasNextPage endCursor }
  }
}"""
CHANNELS = "{ channels { name height tipHash } }"


class TwoServers:
    """Clients per (user, server); as a story's `Users`, alternates servers call by call."""

    def __init__(self, net: NetworkFixture, servers: list[ServeProcess], ledger_url: str) -> None:
        self.net = net
        self.servers = servers
        self.ledger_url = ledger_url
        self._turn = itertools.count()
        self._clients: dict[tuple[str, int], GraphQLClient] = {}

    def on(self, uid: str, server: int) -> GraphQLClient:
        key = (uid, server)
        if key not in self._clients:
            self._clients[key] = self.client(uid, server)
        return self._clients[key]

    def client(self, uid: str, server: int) -> GraphQLClient:
        """A new connection of its own, for a thread."""
        return GraphQLClient(self.servers[server].base_url, self.net.client_context(uid), uid)

    def __call__(self, uid: str) -> GraphQLClient:
        return self.on(uid, next(self._turn) % len(self.servers))

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("concurrency") / "network")


@pytest.fixture(scope="module", params=backend_params("postgresql", "redis"))
def shared_ledger(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh ledger on the shared PostgreSQL (own schema) or Redis (own prefix)."""
    with scratch_url(request.param) as url:
        yield url


@pytest.fixture(scope="module")
def api(
    net: NetworkFixture, shared_ledger: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TwoServers]:
    logs = tmp_path_factory.mktemp("serve-logs")
    with (
        ServeProcess(net.directory, shared_ledger, logs / "serve-0.log") as first,
        ServeProcess(net.directory, shared_ledger, logs / "serve-1.log") as second,
    ):
        for server in (first, second):
            server.launch()
        for server in (first, second):
            server.wait_ready()
        both = TwoServers(net, [first, second], shared_ledger)
        try:
            yield both
        finally:
            both.close()
        for server in (first, second):
            assert server.terminate() in (0, -signal.SIGTERM), server.log_text()


# -- fifty clients, one card ------------------------------------------------------------------


@dataclass(frozen=True)
class Acknowledged:
    notes: str
    version: int


def test_fifty_clients_on_two_servers_lose_no_card_update(api: TwoServers) -> None:
    child = register(api, "alice", "Concurrent Card")
    sign_and_accept(api, child)
    deadline = time.monotonic() + DEADLINE_SECONDS
    with ThreadPoolExecutor(CLIENTS, thread_name_prefix="doctor") as pool:
        runs = [
            pool.submit(_update_until_acknowledged, api, child, n, deadline) for n in range(CLIENTS)
        ]
        acknowledged = [update for run in runs for update in run.result()]

    total = CLIENTS * UPDATES_PER_CLIENT
    assert len(acknowledged) == total
    # Each acknowledged update got its own version, one above the version its client read.
    assert sorted(u.version for u in acknowledged) == list(range(2, total + 2))
    for server in (0, 1):
        alice = api.on("alice", server)
        assert alice.data(CARD_VERSION, {"child": child})["medicalCard"]["version"] == total + 1
        history = every_page(alice, CARD_HISTORY, {"child": child})[::-1]
        assert [r["version"] for r in history] == list(range(1, total + 2))
        assert len({r["txId"] for r in history}) == len(history)
        blocks = [r["blockNumber"] for r in history]
        assert blocks == sorted(blocks), "revisions follow the chain's order"
        revisions = {r["card"]["notes"]: r["version"] for r in history[1:]}
        assert len(revisions) == total, "each update is exactly one revision"
        assert revisions == {u.notes: u.version for u in acknowledged}
    assert_one_intact_chain(api)


def _update_until_acknowledged(
    api: TwoServers, child: str, n: int, deadline: float
) -> list[Acknowledged]:
    """Client n: read the version and update with it until UPDATES_PER_CLIENT are acknowledged.

    A CONFLICT (someone else was first) is retried with a fresh read.
    """
    doctor = api.client("dr-house", n % 2)
    acknowledged: list[Acknowledged] = []
    conflicts = 0
    try:
        while len(acknowledged) < UPDATES_PER_CLIENT:
            assert time.monotonic() < deadline, f"client {n} starved after {conflicts} conflicts"
            version = doctor.data(CARD_VERSION, {"child": child})["medicalCard"]["version"]
            notes = f"client {n} update {len(acknowledged)}"
            variables = {"child": child, "version": version, "patch": {"notes": notes}}
            body = doctor.execute(UPDATE_CARD, variables)
            if body.get("errors"):
                assert body["errors"][0]["extensions"]["code"] == "CONFLICT", body
                conflicts += 1
                # Exponential backoff with jitter: fifty clients retrying at once mostly conflict.
                time.sleep(random.uniform(0, BACKOFF_SECONDS * 2 ** min(conflicts, 8)))
                continue
            updated = body["data"]["updateMedicalCard"]
            assert updated["version"] == version + 1, (version, updated)
            acknowledged.append(Acknowledged(notes, updated["version"]))
    finally:
        doctor.close()
    return acknowledged


def assert_one_intact_chain(api: TwoServers) -> None:
    views = [api.on("alice", server).data(CHANNELS)["channels"] for server in (0, 1)]
    assert views[0] == views[1], "both servers see the same heights and tips"
    verified = verify_ledger(api.net.directory, api.ledger_url)
    assert verified.returncode == 0, verified.stdout + verified.stderr


# -- revocation racing with approval ------------------------------------------------------


@dataclass(frozen=True)
class Story:
    """The part of the state the racing operations read and write."""

    permitted: tuple[str, ...]
    agreement_active: bool
    card_version: int


@dataclass(frozen=True)
class Operation:
    """One racing call: who sends what to which server, and its effect when run alone."""

    name: str
    uid: str
    server: int
    query: str
    variables: Callable[[dict[str, str]], dict[str, Any]]
    apply: Callable[[Story], Story | None]  # None: refused, nothing changes
    lags: bool = False  # sent after the round's random lag, so it may find the revocations done


def _approve(school: str) -> Operation:
    def approve(story: Story) -> Story | None:
        # Approving adds (or renews) the school; the report lists schools in the order of
        # their first permission, which START gives as school-a, school-b.
        permitted = {*story.permitted, school}
        return replace(story, permitted=tuple(s for s in START.permitted if s in permitted))

    return Operation(
        f"approve {school}",
        "alice",
        school == "school-a",
        APPROVE,
        lambda ids: {"id": ids["report"], "schools": [school]},
        approve,
        lags=True,
    )


def _revoke_permission(school: str) -> Operation:
    def revoke(story: Story) -> Story | None:
        if school not in story.permitted:
            return None
        return replace(story, permitted=tuple(s for s in story.permitted if s != school))

    return Operation(
        f"revoke {school}",
        "alice",
        school == "school-b",
        REVOKE_PERMISSION,
        lambda ids: {"id": ids["report"], "school": school},
        revoke,
    )


def _revoke_agreement(story: Story) -> Story | None:
    return replace(story, agreement_active=False) if story.agreement_active else None


def _update_card(story: Story) -> Story | None:
    if not story.agreement_active:
        return None
    return replace(story, card_version=story.card_version + 1)


RACE = [
    _revoke_permission("school-a"),
    _revoke_permission("school-b"),
    _approve("school-a"),
    _approve("school-b"),
    Operation(
        "revoke agreement",
        "alice",
        0,
        REVOKE_AGREEMENT,
        lambda ids: {"id": ids["agreement"]},
        _revoke_agreement,
    ),
    Operation(
        "update card",
        "dr-house",
        1,
        UPDATE_CARD,
        lambda ids: {"child": ids["child"], "version": 2, "patch": {"notes": "raced"}},
        _update_card,
    ),
]
START = Story(permitted=("school-a", "school-b"), agreement_active=True, card_version=2)
Outcome = tuple[tuple[bool, ...], Story]


def serial_outcomes(start: Story) -> set[Outcome]:
    """Every (which calls succeeded, final state) that running RACE one by one can give."""
    outcomes = set()
    for order in itertools.permutations(range(len(RACE))):
        story, succeeded = start, [False] * len(RACE)
        for index in order:
            after = RACE[index].apply(story)
            if after is not None:
                story, succeeded[index] = after, True
        outcomes.add((tuple(succeeded), story))
    return outcomes


def test_revocations_racing_approvals_and_a_card_update_end_as_some_serial_order(
    api: TwoServers,
) -> None:
    possible = serial_outcomes(START)
    clients = [api.client(op.uid, op.server) for op in RACE]
    try:
        with ThreadPoolExecutor(SETUP_THREADS, thread_name_prefix="setup") as pool:
            rounds = list(pool.map(lambda _: _approved_report(api), range(RACE_ROUNDS)))
        with ThreadPoolExecutor(len(RACE), thread_name_prefix="racer") as pool:
            for ids in rounds:
                barrier = threading.Barrier(len(RACE))
                lag = random.uniform(0, LAG_SECONDS)

                def call(
                    index: int,
                    ids: dict[str, str] = ids,
                    barrier: threading.Barrier = barrier,
                    lag: float = lag,
                ) -> bool:
                    op = RACE[index]
                    barrier.wait(timeout=10)
                    time.sleep(random.uniform(0, JITTER_SECONDS) + (lag if op.lags else 0))
                    body = clients[index].execute(op.query, op.variables(ids))
                    if body.get("errors"):
                        code = body["errors"][0]["extensions"]["code"]
                        assert code in ("CONFLICT", "NOT_FOUND"), (op.name, body)
                        return False
                    return True

                succeeded = tuple(pool.map(call, range(len(RACE))))
                final = _final_story(api, ids)
                named = dict(zip([op.name for op in RACE], succeeded, strict=True))
                assert (succeeded, final) in possible, f"no serial order: {named} ended in {final}"
    finally:
        for client in clients:
            client.close()
    assert_one_intact_chain(api)


def _approved_report(api: TwoServers) -> dict[str, str]:
    """A child whose card is at version 2 and whose report is APPROVED for both schools.

    Safe to call from several threads: each call uses connections of its own.
    """
    own = TwoServers(api.net, api.servers, api.ledger_url)
    try:
        child, report = ready_report(own)
        agreement = nodes(own("alice").data(AGREEMENTS, {"child": child})["agreements"])[0]["id"]
        approved = own("alice").data(APPROVE, {"id": report, "schools": ["school-a", "school-b"]})
    finally:
        own.close()
    assert approved["approveReport"]["status"] == "APPROVED"
    return {"child": child, "report": report, "agreement": agreement}


def _final_story(api: TwoServers, ids: dict[str, str]) -> Story:
    """The state after the race, the same on both servers; content visible exactly as permitted."""
    stories = []
    for server in (0, 1):
        alice = api.on("alice", server)
        report = alice.data(REPORT_META, {"id": ids["report"]})["report"]
        permitted = tuple(report["permittedSchools"])
        assert report["status"] == ("APPROVED" if permitted else "READY"), report
        agreement = nodes(alice.data(AGREEMENTS, {"child": ids["child"]})["agreements"])[0]
        card = alice.data(CARD_VERSION, {"child": ids["child"]})["medicalCard"]
        stories.append(Story(permitted, agreement["status"] == "ACTIVE", card["version"]))
        for school in ("school-a", "school-b"):
            assert_content_visible_iff_permitted(api.on(f"{school}-office", server), ids, school)
    assert stories[0] == stories[1], "both servers see the same state"
    return stories[0]


def assert_content_visible_iff_permitted(
    staff: GraphQLClient, ids: dict[str, str], school: str
) -> None:
    body = staff.execute(REPORT, {"id": ids["report"]})
    report = (body.get("data") or {}).get("report")
    permitted = report is not None and school in report["permittedSchools"]
    content = report is not None and report["content"] is not None
    assert content == permitted, (school, body)
