"""GraphQL over real mutual TLS for the API tests: servers, per-user clients, story steps.

Every request goes through uvicorn over HTTPS with the user's enrolled client
certificate; every response body is checked for things no client may ever see
(tracebacks, SQL, driver names).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from api.app import create_app
from api.persisted_operations import PersistedOperations
from api.services import Services
from authz.network import NetworkConfig, load_network
from devkit.ports import ReservedPort
from tests.networks import DEMO_USERS, NetworkFixture
from tests.tls_server import serving

ALL_UIDS = [uid for _, uid, _ in DEMO_USERS]
LEAKS = re.compile(
    r"Traceback|File \"|sqlalchemy|psycopg|sqlite3|redis\.|SELECT |INSERT INTO|UPDATE \w+ SET|"
    r"DELETE FROM|WHERE |\bFROM \w+\.",
)
WS_PROTOCOL = "graphql-transport-ws"
WS_DEADLINE_SECONDS = 10


def assert_nothing_leaks(text: str) -> None:
    """No stack trace, SQL text or driver internals in what a client receives."""
    found = LEAKS.search(text)
    assert found is None, f"the response leaks {found.group(0)!r}: {text[:500]}"


class GraphQLClient:
    """One user's HTTPS client for /graphql."""

    def __init__(self, base_url: str, context: ssl.SSLContext, uid: str | None) -> None:
        self.uid = uid
        self.http = httpx.Client(base_url=base_url, verify=context, timeout=20)

    def post(self, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        # json.dumps escapes to ASCII, so even unpaired surrogates reach the server as sent.
        response = self.http.post(
            "/graphql", content=json.dumps(body), headers={"content-type": "application/json"}
        )
        assert_nothing_leaks(response.text)
        return response

    def execute(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The response body of a request that reached GraphQL (HTTP 200)."""
        response = self.post(query, variables)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        for error in body.get("errors") or []:
            assert "code" in (error.get("extensions") or {}), f"an error without a code: {error}"
        return body

    def data(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        """The data of a request that must succeed without errors."""
        body = self.execute(query, variables)
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def errors(self, query: str, variables: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        body = self.execute(query, variables)
        assert body.get("errors"), f"expected errors, got {body}"
        errors: list[dict[str, Any]] = body["errors"]
        return errors

    def error(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The single error of a refused request; checks the message leaks no other user."""
        errors = self.errors(query, variables)
        assert len(errors) == 1, errors
        error = errors[0]
        others = [uid for uid in ALL_UIDS if uid != self.uid]
        named = [uid for uid in others if re.search(rf"\b{re.escape(uid)}\b", error["message"])]
        assert not named, f"the refusal names other users {named}: {error['message']}"
        return error

    def code(self, query: str, variables: dict[str, Any] | None = None) -> str:
        return str(self.error(query, variables)["extensions"]["code"])

    def close(self) -> None:
        self.http.close()


class Users(Protocol):
    """Anything giving a user's client: the story steps below run on any server(s)."""

    def __call__(self, uid: str) -> GraphQLClient: ...


@dataclass
class Api:
    """A running server and a client per user."""

    base_url: str
    net: NetworkFixture
    services: Services | None = None
    _clients: dict[str | None, GraphQLClient] = field(default_factory=dict)

    def __call__(self, uid: str | None) -> GraphQLClient:
        if uid not in self._clients:
            self._clients[uid] = GraphQLClient(self.base_url, self.net.client_context(uid), uid)
        return self._clients[uid]

    @property
    def wss_url(self) -> str:
        return self.base_url.replace("https://", "wss://") + "/graphql"

    def get(self, path: str, uid: str = "alice", **kwargs: Any) -> httpx.Response:
        return self(uid).http.get(path, **kwargs)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()


@contextlib.contextmanager
def api_server(
    net: NetworkFixture,
    ledger_url: str,
    network: NetworkConfig | None = None,
    persisted_operations: PersistedOperations | None = None,
) -> Iterator[Api]:
    """The healthledger app over mutual TLS on a free port, on the given ledger.

    The server's lifespan closes the services when it stops, as `healthledger serve`'s does.
    """
    network = network or load_network(net.directory)
    services = Services.open(network, ledger_url)
    app = create_app(services, persisted_operations=persisted_operations)
    with serving(app, network) as url:
        api = Api(url, net, services)
        try:
            yield api
        finally:
            api.close()


@contextlib.contextmanager
def api_server_behind_proxy(net: NetworkFixture) -> Iterator[Api]:
    """The app on `memory://` behind a TLS-terminating proxy at 127.0.0.1 that forwards the
    client certificate in `x-forwarded-client-cert`."""
    network = load_network(net.directory)
    server = dataclasses.replace(
        network.server, client_cert_header="x-forwarded-client-cert", trusted_proxies=("127.0.0.1",)
    )
    with api_server(net, "memory://", dataclasses.replace(network, server=server)) as running:
        yield running


class RedisServer:
    """A private redis-server on a free port: no persistence, or an AOF synced on every write.

    The port stays reserved until `close`, so a killed server restarts on it.
    """

    def __init__(self, data_dir: Path | None = None) -> None:
        self._reserved = ReservedPort()
        self.port = self._reserved.port
        self.data_dir = data_dir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        if self.data_dir is None:
            command += ["--appendonly", "no"]
        else:
            command += [
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.data_dir),
            ]
        command += ["--daemonize", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                assert self.process.poll() is None, "redis-server exited"
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.02)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        """Kill the server and give its port up."""
        self.kill()
        self._reserved.close()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


# -- GraphQL documents ------------------------------------------------------------------------

REGISTER_CHILD = """
mutation($input: RegisterChildInput!) {
  registerChild(input: $input) { id fullName birthDate guardians doctorUid }
}"""
SIGN = """
mutation($child: ID!, $doctor: String!) {
  signAgreement(childId: $child, doctorUid: $doctor) { id childId parentUid doctorUid status }
}"""
ACCEPT = "mutation($id: ID!) { acceptAgreement(id: $id) { id status } }"
ACCEPT_GUARDIANSHIP = """
mutation($child: ID!) { acceptGuardianship(childId: $child) { id guardians pendingGuardians } }"""
PENDING_GUARDIANSHIPS = "{ pendingGuardianships { id fullName guardians } }"
REVOKE_AGREEMENT = "mutation($id: ID!) { revokeAgreement(id: $id) { id status } }"
UPDATE_CARD = """
mutation($child: ID!, $version: Int!, $patch: MedicalCardPatch!) {
  updateMedicalCard(childId: $child, expectedVersion: $version, patch: $patch) {
    childId version updatedBy healthGroup physicalEducationGroup allergies
  }
}"""
CARD = "query($child: ID!) { medicalCard(childId: $child) { version healthGroup allergies } }"
CHILD = "query($id: ID!) { child(id: $id) { id fullName guardians doctorUid } }"
HISTORY = """
query($child: ID!) {
  medicalCardHistory(childId: $child) { edges { node { version txId blockNumber author } } }
}"""
AGREEMENTS = """
query($child: ID) { agreements(childId: $child) { edges { node { id status doctorUid } } } }"""
CREATE_ADMISSION = """
mutation($child: ID!, $school: String!) {
  createAdmissionRequest(childId: $child, school: $school) { id childId childName school status }
}"""
ACCEPT_ADMISSION = "mutation($id: ID!) { acceptAdmissionRequest(id: $id) { id status } }"
REJECT_ADMISSION = """
mutation($id: ID!, $reason: String!) {
  rejectAdmissionRequest(id: $id, reason: $reason) { id status reason }
}"""
CREATE_REPORT_REQUEST = """
mutation($admission: ID!) {
  createReportRequest(admissionRequestId: $admission) {
    id admissionRequestId childId school status reportId
  }
}"""
CREATE_REPORT = """
mutation($request: ID!, $conclusion: String!) {
  createReport(reportRequestId: $request, conclusion: $conclusion) {
    id childId reportRequestId status authorUid permittedSchools cardVersion cardHash
  }
}"""
APPROVE = """
mutation($id: ID!, $schools: [String!]!) {
  approveReport(id: $id, schools: $schools) { id status permittedSchools }
}"""
REVOKE_PERMISSION = """
mutation($id: ID!, $school: String!) {
  revokeReportPermission(id: $id, school: $school) { id status permittedSchools }
}"""
REPORT = """
query($id: ID!) {
  report(id: $id) {
    id status permittedSchools
    content { childName healthGroup allergies conclusion }
  }
}"""
REPORT_META = "query($id: ID!) { report(id: $id) { id status permittedSchools } }"


def nodes(connection: dict[str, Any]) -> list[Any]:
    """The items of one page of a list: its edges' nodes, in the list's order."""
    return [edge["node"] for edge in connection["edges"]]


def every_page(
    client: GraphQLClient, query: str, variables: dict[str, Any] | None = None
) -> list[Any]:
    """Every item of the one list `query` reads, a page at a time: the query takes `$after`
    and selects `pageInfo { hasNextPage endCursor }`."""
    found: list[Any] = []
    after = None
    while True:
        (connection,) = client.data(query, {**(variables or {}), "after": after}).values()
        found += nodes(connection)
        if not connection["pageInfo"]["hasNextPage"]:
            return found
        after = connection["pageInfo"]["endCursor"]


# -- story steps ------------------------------------------------------------------------------


def register(api: Users, parent: str = "alice", name: str = "Ada Martin", **extra: Any) -> str:
    """A child registered by `parent`; the otherGuardians given accept their guardianship."""
    child = api(parent).data(
        REGISTER_CHILD, {"input": {"fullName": name, "birthDate": "2019-04-02", **extra}}
    )["registerChild"]
    for other in extra.get("otherGuardians") or ():
        api(other).data(ACCEPT_GUARDIANSHIP, {"child": child["id"]})
    return str(child["id"])


def sign_and_accept(api: Users, child: str, parent: str = "alice", doctor: str = "dr-house") -> str:
    agreement = api(parent).data(SIGN, {"child": child, "doctor": doctor})["signAgreement"]
    assert api(doctor).data(ACCEPT, {"id": agreement["id"]})["acceptAgreement"]["status"] == (
        "ACTIVE"
    )
    return str(agreement["id"])


def update_card(
    api: Users, child: str, version: int, doctor: str = "dr-house", **patch: Any
) -> Any:
    patch = patch or {"healthGroup": 2}
    return api(doctor).data(UPDATE_CARD, {"child": child, "version": version, "patch": patch})[
        "updateMedicalCard"
    ]


def admission(api: Users, child: str, school: str = "school-a", parent: str = "alice") -> str:
    created = api(parent).data(CREATE_ADMISSION, {"child": child, "school": school})
    return str(created["createAdmissionRequest"]["id"])


def accepted_request(
    api: Users, child: str, school: str = "school-a", parent: str = "alice"
) -> str:
    """An admission accepted by the school and its report request; returns the request id."""
    admission_id = admission(api, child, school, parent)
    staff = f"{school}-office"
    api(staff).data(ACCEPT_ADMISSION, {"id": admission_id})
    request = api(staff).data(CREATE_REPORT_REQUEST, {"admission": admission_id})
    return str(request["createReportRequest"]["id"])


def ready_report(
    api: Users, *, parent: str = "alice", doctor: str = "dr-house", school: str = "school-a"
) -> tuple[str, str]:
    """A child with an ACTIVE agreement, an updated card and a READY report: (child, report)."""
    child = register(api, parent, "Rory Pond")
    sign_and_accept(api, child, parent, doctor)
    update_card(api, child, 1, doctor, healthGroup=1, allergies=["pollen"])
    request = accepted_request(api, child, school, parent)
    report = api(doctor).data(CREATE_REPORT, {"request": request, "conclusion": "Fit for school."})
    return child, str(report["createReport"]["id"])


# -- graphql-transport-ws ---------------------------------------------------------------------


class _StalledError(AssertionError):
    """The websocket client did not get through a step in time."""


class Subscriber:
    """One graphql-transport-ws connection with one subscription."""

    def __init__(
        self, api: Api, uid: str | None, query: str, headers: dict[str, str] | None = None
    ) -> None:
        self._stack = contextlib.ExitStack()
        try:
            self.connection = self._open(api, uid, headers)
            self.send({"type": "connection_init", "payload": {}})
            assert self.receive(10)["type"] == "connection_ack"
            self.send({"id": "1", "type": "subscribe", "payload": {"query": query}})
        except BaseException:
            self.close()
            raise

    def _open(self, api: Api, uid: str | None, headers: dict[str, str] | None) -> ClientConnection:
        """The websocket, on a fresh connection once more if the client stalls opening it.

        Now and then the websockets client sends no upgrade request after the TLS handshake
        (the server sees the handshake, then nothing): a client stall, not what any test
        checks, so one more connection is tried before the test fails.
        """
        try:
            return self._connect(api, uid, headers)
        except _StalledError:
            return self._connect(api, uid, headers)

    def _connect(
        self, api: Api, uid: str | None, headers: dict[str, str] | None
    ) -> ClientConnection:
        url = urlsplit(api.wss_url)
        sock = socket.create_connection((url.hostname, url.port), timeout=WS_DEADLINE_SECONDS)
        # A second handle on the socket, to shut it down if the client gets stuck (see _deadline).
        self._watchdog = sock.dup()
        self._stack.callback(self._watchdog.close)
        self._stack.callback(sock.close)
        with self._deadline("open the websocket"):
            connection: ClientConnection = self._stack.enter_context(
                ws_connect(
                    api.wss_url,
                    sock=sock,
                    ssl=api.net.client_context(uid),
                    subprotocols=[WS_PROTOCOL],  # type: ignore[list-item]
                    additional_headers=headers,
                    open_timeout=WS_DEADLINE_SECONDS / 2,
                    close_timeout=2,
                )
            )
        return connection

    @contextlib.contextmanager
    def _deadline(self, doing: str) -> Iterator[None]:
        """Shut the socket down if `doing` overruns.

        The websockets client reads TLS in a thread with a blocking read: after a TLS 1.3
        session ticket it can wait forever for a server that never answers, and closing the
        socket does not wake it (shutting it down does). Without this, such a server would
        stall the suite until pytest's timeout instead of failing the test.
        """
        stalled = threading.Event()

        def shut_down() -> None:
            stalled.set()
            with contextlib.suppress(OSError):
                self._watchdog.shutdown(socket.SHUT_RDWR)

        timer = threading.Timer(WS_DEADLINE_SECONDS, shut_down)
        timer.start()
        try:
            yield
        except Exception as exc:
            if stalled.is_set():
                raise _StalledError(f"could not {doing} within {WS_DEADLINE_SECONDS} s") from exc
            raise
        finally:
            timer.cancel()
        if stalled.is_set():
            raise _StalledError(f"could not {doing} within {WS_DEADLINE_SECONDS} s")

    def send(self, message: dict[str, Any]) -> None:
        self.connection.send(json.dumps(message))

    def receive(self, timeout: float) -> dict[str, Any]:
        """The next message other than a keep-alive ping; raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            raw = self.connection.recv(timeout=max(deadline - time.monotonic(), 0.001))
            assert_nothing_leaks(str(raw))
            message: dict[str, Any] = json.loads(raw)
            if message["type"] == "ping":
                self.send({"type": "pong"})
                continue
            return message

    def event(self, name: str, subject: str, timeout: float = 10) -> dict[str, Any]:
        """The first `name` event about `subject`, skipping other events."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.receive(max(deadline - time.monotonic(), 0.001))
            assert message["type"] == "next", message
            assert not message["payload"].get("errors"), message
            event: dict[str, Any] = message["payload"]["data"]["events"]
            if (event["name"], event["subjectId"]) == (name, subject):
                return event

    def silent_for(self, seconds: float) -> bool:
        try:
            message = self.receive(seconds)
        except TimeoutError:
            return True
        raise AssertionError(f"expected nothing, received {message}")

    def close(self) -> None:
        with self._deadline("close the websocket"):
            self._stack.close()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
