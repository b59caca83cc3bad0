"""Crash: kill -9 `healthledger serve` in the middle of concurrent reads of a medical card.

A child has a doctor; eight clients (the guardian and the doctor, each four times) read the
card and the child as fast as the server answers while the doctor keeps updating the card,
so reads see many versions. After some reads were answered the server is killed with
SIGKILL and started again on the same ledger. Every read a client got an answer for must
then be in the child's access log: for each reader, object and version at least as many
PERMITTED entries as answers (more is allowed: an entry committed for an answer the kill
cut off). The ledger must verify.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from devkit.serve_process import ServeProcess, verify_ledger
from tests.api_client import (
    REGISTER_CHILD,
    SIGN,
    UPDATE_CARD,
    GraphQLClient,
    every_page,
)
from tests.networks import NetworkFixture, make_network

READERS = ("alice", "dr-house") * 4
ANSWERED_BEFORE_CRASH = 150
LOAD_SECONDS = 30
READ = "query($child: ID!) { medicalCard(childId: $child) { version } child(id: $child) { id } }"
ACCESS_LOG = """
query($child: ID!, $after: String) {
  accessLog(childId: $child, first: 200, after: $after) {
    edges { node { readerUid what recordId version outcome } }
    pageInfo { hasNextPage endCursor }
  }
}"""
ACCEPT = "mutation($id: ID!) { acceptAgreement(id: $id) { id } }"

Read = tuple[str, str, int | None]  # reader, what, version


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("crash-reads") / "network")


class ReadLoad:
    """Reader threads and one card-updating thread, each on its own HTTPS connection.

    A read counts as answered only when the server answered it with data and no error:
    then the card version it carried is counted for its reader (both objects of the
    request: the card and the child).
    """

    def __init__(self, net: NetworkFixture, server: ServeProcess, child: str) -> None:
        self.net = net
        self.server = server
        self.child = child
        self.answered: Counter[Read] = Counter()
        self.cut_off = 0
        self.errors: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(len(READERS) + 1, thread_name_prefix="client")
        self._clients: list[Future[None]] = []

    def __enter__(self) -> ReadLoad:
        self._clients = [self._pool.submit(self._read, uid) for uid in READERS]
        self._clients.append(self._pool.submit(self._update))
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=True)
        for client in self._clients:
            client.result()

    def _client(self, uid: str) -> GraphQLClient:
        return GraphQLClient(self.server.base_url, self.net.client_context(uid), uid)

    def _read(self, uid: str) -> None:
        client = self._client(uid)
        try:
            while not self._stop.is_set():
                body = self._post(client, READ, {"child": self.child})
                if body is None:
                    continue
                version = body["data"]["medicalCard"]["version"]
                with self._lock:
                    self.answered[(uid, "MEDICAL_CARD", version)] += 1
                    self.answered[(uid, "CHILD", None)] += 1
        finally:
            client.close()

    def _update(self) -> None:
        client = self._client("dr-house")
        try:
            version = 1
            while not self._stop.is_set():
                variables = {"child": self.child, "version": version, "patch": {"notes": "n"}}
                body = self._post(client, UPDATE_CARD, variables)
                if body is not None:
                    version = body["data"]["updateMedicalCard"]["version"]
                time.sleep(0.02)
        finally:
            client.close()

    def _post(
        self, client: GraphQLClient, query: str, variables: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The answer's body if it carries data and no error; None if cut off or refused."""
        try:
            response = client.post(query, variables)
        except httpx.ConnectError:
            time.sleep(0.02)  # the server is down: do not spin on refused connections
            return None
        except httpx.TransportError:
            with self._lock:
                self.cut_off += 1
            return None
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body.get("errors"):
            with self._lock:
                self.errors[body["errors"][0]["extensions"]["code"]] += 1
            return None
        return body

    def answered_count(self) -> int:
        with self._lock:
            return sum(n for (_, what, _), n in self.answered.items() if what == "MEDICAL_CARD")

    def wait_until(self, what: str, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + LOAD_SECONDS
        while not condition():
            for client in self._clients:
                if client.done():
                    client.result()
            assert time.monotonic() < deadline, (
                f"{what} did not happen within {LOAD_SECONDS} s: {self.answered_count()} "
                f"answered, {self.cut_off} cut off, errors {dict(self.errors)}\n"
                f"{self.server.log_text()[-3000:]}"
            )
            time.sleep(0.01)


def _child_with_a_doctor(net: NetworkFixture, server: ServeProcess) -> str:
    alice = GraphQLClient(server.base_url, net.client_context("alice"), "alice")
    house = GraphQLClient(server.base_url, net.client_context("dr-house"), "dr-house")
    try:
        variables = {"input": {"fullName": "Ada Martin", "birthDate": "2019-04-02"}}
        child = str(alice.data(REGISTER_CHILD, variables)["registerChild"]["id"])
        agreement = alice.data(SIGN, {"child": child, "doctor": "dr-house"})["signAgreement"]
        house.data(ACCEPT, {"id": agreement["id"]})
    finally:
        alice.close()
        house.close()
    return child


def _recorded(net: NetworkFixture, server: ServeProcess, child: str) -> Counter[Read]:
    """The PERMITTED entries of the child's access log, counted by reader, object, version."""
    alice = GraphQLClient(server.base_url, net.client_context("alice"), "alice")
    try:
        entries = every_page(alice, ACCESS_LOG, {"child": child})
    finally:
        alice.close()
    return Counter(
        (e["readerUid"], e["what"], e["version"])
        for e in entries
        if e["outcome"] == "PERMITTED" and e["recordId"] == child
    )


# As in test_crash.py: httpcore leaves a connection the kill cut off mid-handshake to the
# garbage collector, which warns from whichever thread it runs in.
@pytest.mark.filterwarnings("ignore:unclosed <ssl.SSLSocket:ResourceWarning")
def test_every_answered_read_is_in_the_access_log_after_kill_9(
    net: NetworkFixture,
    durable_ledger: str,
    tmp_path: Path,
) -> None:
    with ServeProcess(net.directory, durable_ledger, tmp_path / "serve.log") as server:
        server.start()
        child = _child_with_a_doctor(net, server)
        with ReadLoad(net, server, child) as load:
            load.wait_until(
                f"{ANSWERED_BEFORE_CRASH} answered reads",
                lambda: load.answered_count() >= ANSWERED_BEFORE_CRASH,
            )
            server.kill()
        assert load.cut_off > 0, "the kill should have cut off requests in flight"
        assert not load.errors, f"no GraphQL error expected: {dict(load.errors)}"

        server.restart()
        recorded = _recorded(net, server, child)
        missing = {
            read: n - recorded[read] for read, n in load.answered.items() if recorded[read] < n
        }
        assert not missing, f"answered reads without their entry: {missing}"
        versions = {version for (_, what, version) in load.answered if what == "MEDICAL_CARD"}
        assert len(versions) > 1, "the reads should have seen the card change"

    verified = verify_ledger(net.directory, durable_ledger)
    assert verified.returncode == 0, verified.stdout + verified.stderr
