"""Backend outages: the ledger goes away under a running server and comes back.

Every outage is real: a private redis-server killed (connections refused) or
frozen with SIGSTOP (connections accepted, nothing answered); PostgreSQL
behind a proxy that refuses or blackholes; PostgreSQL connections ended with
pg_terminate_backend, once idle and once in the middle of an append. While the
store is away, every request ends within 5 s: GraphQL errors with code
UNAVAILABLE, /readyz 503, /healthz 200. When it is back the same server
process answers again, without a restart. Nothing is half-written: every
acknowledged write is there, every write that got UNAVAILABLE is not, and
`healthledger verify` passes.
"""

from __future__ import annotations

import contextlib
import io
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import psycopg
import pytest

from api import cli
from ledger_backends import BackendUnavailableError, open_ledger
from ledger_backends.chain import ChainWriter
from ledger_backends.testing import (
    POSTGRES_URL,
    needs_backend,
    proposal,
    query_option,
    scratch_url,
    submit_all,
)
from tests.api_client import (
    REGISTER_CHILD,
    UPDATE_CARD,
    Api,
    GraphQLClient,
    RedisServer,
    Subscriber,
    api_server,
    every_page,
    register,
    sign_and_accept,
    update_card,
)
from tests.networks import NetworkFixture, make_network
from tests.reliability.tcp_proxy import TcpProxy

# What "quickly" means for a request while the ledger is unreachable.
WITHIN_SECONDS = 5.0
# Long enough for every in-flight commit to have run into the outage.
OUTAGE_SECONDS = 3.0
CHILDREN = """
query($after: String) {
  children(first: 200, after: $after) {
    edges { node { id fullName } }
    pageInfo { hasNextPage endCursor }
  }
}"""
MEDICAL_EVENTS = 'subscription { events(channel: "medical") { name subjectId } }'


@dataclass
class Outage:
    """A ledger URL and a way to take its store away and to bring it back."""

    ledger_url: str
    begin: Callable[[], None]
    end: Callable[[], None]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("outages") / "network")


@pytest.fixture
def postgres_ledger() -> Iterator[str]:
    """A ledger in its own schema; the schema also names the app's connections."""
    with scratch_url("postgresql") as url:
        yield url


def through_proxy(url: str, proxy: TcpProxy) -> str:
    """The same ledger, reached through `proxy`."""
    return url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")


@pytest.fixture(
    params=[
        pytest.param(kind, marks=needs_backend(kind.split("-")[0]))
        for kind in ("redis-killed", "redis-frozen", "postgresql-refused", "postgresql-blackholed")
    ]
)
def outage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outage]:
    kind: str = request.param
    if kind.startswith("redis"):
        redis = RedisServer(data_dir=tmp_path)  # an AOF: the restarted server has every block
        redis.start()
        try:
            if kind == "redis-killed":
                yield Outage(redis.url, redis.kill, redis.start)
            else:
                yield Outage(
                    redis.url, _signal(redis, signal.SIGSTOP), _signal(redis, signal.SIGCONT)
                )
        finally:
            _signal(redis, signal.SIGCONT)()
            redis.close()
    else:
        proxy = TcpProxy(("127.0.0.1", 5432))
        proxy.start()
        mode = "refuse" if kind == "postgresql-refused" else "blackhole"
        try:
            yield Outage(
                through_proxy(request.getfixturevalue("postgres_ledger"), proxy),
                lambda: proxy.cut(mode),
                proxy.restore,
            )
        finally:
            proxy.close()


def _signal(redis: RedisServer, number: signal.Signals) -> Callable[[], None]:
    def send() -> None:
        if redis.process is not None and redis.process.poll() is None:
            redis.process.send_signal(number)

    return send


@dataclass(frozen=True)
class Outcome:
    """What one request got ("OK", an error code, an HTTP status) and how long it took."""

    label: str
    result: str
    seconds: float
    started: float


def timed(label: str, request: Callable[[], str]) -> Outcome:
    started = time.monotonic()
    try:
        result = request()
    except Exception as exc:  # a client timeout or a broken connection is an outcome too
        result = type(exc).__name__
    return Outcome(label, result, time.monotonic() - started, started)


def code_of(body: dict[str, Any]) -> str:
    errors = body.get("errors")
    return str(errors[0]["extensions"]["code"]) if errors else "OK"


@dataclass
class Traffic:
    """Parents registering children, one after another per writer, until stopped."""

    api: Api
    writers: int = 2
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> Traffic:
        self._pool = ThreadPoolExecutor(self.writers)
        for writer in range(self.writers):
            self._pool.submit(self._write, writer)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        assert self._pool is not None
        self._pool.shutdown()

    def _write(self, writer: int) -> None:
        client = GraphQLClient(self.api.base_url, self.api.net.client_context("alice"), "alice")
        try:
            for number in range(10**6):
                if self._stop.is_set():
                    return
                name = f"Writer {writer} Child {number}"
                variables = {"input": {"fullName": name, "birthDate": "2019-01-01"}}
                self.outcomes.append(
                    timed(name, lambda v=variables: code_of(client.execute(REGISTER_CHILD, v)))
                )
                time.sleep(0.02)
        finally:
            client.close()

    def count(self, result: str, since: float = 0.0) -> int:
        return sum(o.result == result and o.started >= since for o in list(self.outcomes))

    def wait_for(self, result: str, count: int, since: float = 0.0, seconds: float = 15) -> None:
        deadline = time.monotonic() + seconds
        while self.count(result, since) < count:
            assert time.monotonic() < deadline, f"fewer than {count} {result} in {seconds} s"
            time.sleep(0.02)

    def names(self, result: str) -> set[str]:
        return {o.label for o in self.outcomes if o.result == result}


def probe_during_outage(api: Api, child: str) -> list[Outcome]:
    """A mutation creating, a mutation changing, a query and /readyz, at once (one user each)."""

    new_child = {"input": {"fullName": "During Outage", "birthDate": "2019-01-01"}}
    patch = {"child": child, "version": 2, "patch": {"notes": "during the outage"}}
    probes: dict[str, Callable[[], str]] = {
        "registerChild": lambda: code_of(api("bob").execute(REGISTER_CHILD, new_child)),
        "updateMedicalCard": lambda: code_of(api("dr-house").execute(UPDATE_CARD, patch)),
        "children": lambda: code_of(api("alice").execute(CHILDREN)),
        "/readyz": lambda: str(api.get("/readyz", uid="hospital-admin").status_code),
    }
    with ThreadPoolExecutor(len(probes)) as pool:
        return list(pool.map(lambda item: timed(*item), probes.items()))


def verify(net: NetworkFixture, ledger_url: str) -> tuple[int, str]:
    """`healthledger verify --network DIR --ledger URL`: exit code and what it printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = cli.main(["verify", "--network", str(net.directory), "--ledger", ledger_url])
    return code, printed.getvalue()


def test_an_outage_fails_requests_fast_and_the_same_server_recovers(
    net: NetworkFixture, outage: Outage
) -> None:
    with api_server(net, outage.ledger_url) as api:
        child = register(api, "alice", "Before Outage")
        sign_and_accept(api, child)
        update_card(api, child, 1, healthGroup=2)
        assert api.get("/readyz").status_code == 200
        with Traffic(api) as traffic:
            traffic.wait_for("OK", 4)
            outage.begin()
            cut = time.monotonic()
            probes = probe_during_outage(api, child)
            healthz = api.get("/healthz").status_code
            time.sleep(max(0.0, cut + OUTAGE_SECONDS - time.monotonic()))
            outage.end()
            restored = time.monotonic()
            traffic.wait_for("OK", 4, since=restored)
        assert [(p.label, p.result) for p in probes] == [
            ("registerChild", "UNAVAILABLE"),
            ("updateMedicalCard", "UNAVAILABLE"),
            ("children", "UNAVAILABLE"),
            ("/readyz", "503"),
        ]
        assert healthz == 200
        slow = [o for o in probes + traffic.outcomes if o.seconds >= WITHIN_SECONDS]
        assert not slow, f"requests took {WITHIN_SECONDS} s or more: {slow}"
        results = {o.result for o in traffic.outcomes}
        assert results <= {"OK", "UNAVAILABLE"}, results
        assert traffic.count("UNAVAILABLE") >= 1, "the writers never ran into the outage"
        assert traffic.count("OK", since=restored) == len(
            [o for o in traffic.outcomes if o.started >= restored]
        ), "a request failed after the store was back"

        # The same process, never restarted, serves again.
        assert api.get("/readyz").status_code == 200
        assert update_card(api, child, 2, notes="after the outage")["version"] == 3
        stored = {c["fullName"] for c in every_page(api("alice"), CHILDREN)}
        assert traffic.names("OK") <= stored, "an acknowledged write is missing"
        assert not traffic.names("UNAVAILABLE") & stored, "a write reported UNAVAILABLE was stored"
        assert "During Outage" not in {c["fullName"] for c in every_page(api("bob"), CHILDREN)}
    assert verify(net, outage.ledger_url) == (0, ANY)


def terminate_connections(application_name: str) -> int:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s",
            (application_name,),
        ).fetchone()
    return int(row[0]) if row else 0


@needs_backend("postgresql")
def test_terminated_database_connections_are_replaced_and_nothing_is_half_written(
    net: NetworkFixture, postgres_ledger: str
) -> None:
    url = postgres_ledger
    postgres_schema = query_option(url, "schema")
    with api_server(net, url) as api:
        child = register(api, "alice", "Before Termination")
        sign_and_accept(api, child)

        # Idle connections killed by the server: the pool notices, nobody else does.
        assert terminate_connections(postgres_schema) >= 1
        assert update_card(api, child, 1, healthGroup=1)["version"] == 2
        assert api.get("/readyz").status_code == 200

        # A connection killed while its append waits for a lock: the block is not stored.
        with psycopg.connect(POSTGRES_URL) as blocker:
            blocker.execute(f'LOCK TABLE "{postgres_schema}".ledger_blocks IN EXCLUSIVE MODE')
            with ThreadPoolExecutor(1) as pool:
                interrupted = {"input": {"fullName": "Interrupted", "birthDate": "2019-01-01"}}
                pending = pool.submit(
                    timed,
                    "registerChild",
                    lambda: code_of(api("alice").execute(REGISTER_CHILD, interrupted)),
                )
                wait_until_appender_waits_for_a_lock(postgres_schema)
                assert terminate_connections(postgres_schema) >= 1
                outcome = pending.result()
            blocker.rollback()
        assert (outcome.result, outcome.seconds < WITHIN_SECONDS) == ("UNAVAILABLE", True)

        assert register(api, "alice", "After Termination")
        names = {c["fullName"] for c in every_page(api("alice"), CHILDREN)}
        assert names == {"Before Termination", "After Termination"}
    assert verify(net, url) == (0, ANY)


def wait_until_appender_waits_for_a_lock(application_name: str) -> None:
    deadline = time.monotonic() + 5
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        while not admin.execute(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = %s "
            "AND wait_event_type = 'Lock'",
            (application_name,),
        ).fetchone():
            assert time.monotonic() < deadline, "the append never waited for the lock"
            time.sleep(0.01)


@needs_backend("postgresql")
def test_a_subscriber_hears_new_events_after_the_database_stopped_answering(
    net: NetworkFixture, postgres_ledger: str
) -> None:
    proxy = TcpProxy(("127.0.0.1", 5432))
    proxy.start()
    try:
        with (
            api_server(net, through_proxy(postgres_ledger, proxy)) as api,
            Subscriber(api, "alice", MEDICAL_EVENTS) as alice,
        ):
            before = register(api, "alice", "Heard Before")
            alice.event("ChildRegistered", before)
            proxy.cut("blackhole")
            time.sleep(OUTAGE_SECONDS)  # the event tail runs into the outage and keeps retrying
            proxy.restore()
            after = register(api, "alice", "Heard After")
            assert alice.event("ChildRegistered", after)["subjectId"] == after
    finally:
        proxy.close()


@needs_backend("redis")
def test_an_append_that_timed_out_on_a_frozen_redis_is_not_stored_when_it_thaws(
    tmp_path: Path,
) -> None:
    """The append reaches Redis, which is frozen; the caller gives up and says nothing was written.

    When Redis runs again it finds the script in its socket: the script must not store the
    block, or a write reported UNAVAILABLE would appear later.
    """
    redis = RedisServer(data_dir=tmp_path)
    redis.start()
    ledger = open_ledger(redis.url)
    try:
        submit_all(ledger, "medical", [proposal("before", writes={"k": 1})])
        tip = ledger.store.tip("medical")
        late, _ = ChainWriter(ledger.store, "medical").build(
            tip, [proposal("late", writes={"k": 2})]
        )
        _signal(redis, signal.SIGSTOP)()
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError, match="Nothing was written"):
            ledger.store.append_if_tip("medical", tip, late)
        assert time.monotonic() - started < WITHIN_SECONDS
        _signal(redis, signal.SIGCONT)()
        assert ledger.store.tip("medical") == tip
        assert ledger.store.read_state("medical", "k").value == "1"  # type: ignore[union-attr]
        (receipt,) = submit_all(ledger, "medical", [proposal("after", writes={"k": 3})])
        assert receipt.block_number == 1  # type: ignore[attr-defined]
        assert ledger.channel("medical").verify().ok
    finally:
        ledger.close()
        _signal(redis, signal.SIGCONT)()
        redis.close()
