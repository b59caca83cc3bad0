"""A certificate revoked or expired while its connections stay open: nothing more is served.

A real server over mutual TLS; revocations are made by `authz.provision.revoke`, the code
behind `healthledger revoke`. A running server must refuse a revoked
certificate within 5 s, and that holds for connections opened before the revocation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from api.websocket import CertificateCheckedTransportWS
from authz import ca, provision
from tests.api_client import REGISTER_CHILD, WS_DEADLINE_SECONDS, Api, Subscriber, api_server
from tests.networks import NetworkFixture, make_network

REFUSED_WITHIN_SECONDS = 5.0
REFUSED_CLOSE = (4403, "certificate revoked")
EXPIRES_IN_SECONDS = 4
# The hub starts tailing the chain when the subscription starts; give it that moment.
SETTLE_SECONDS = 0.3
ME = "{ me { uid } }"
MEDICAL_EVENTS = 'subscription { events(channel: "medical") { name subjectId } }'
OPERATIONS: dict[str, tuple[str, dict[str, Any] | None]] = {
    "query": ("{ me { uid } children { edges { node { id fullName } } } }", None),
    "mutation": (
        REGISTER_CHILD,
        {"input": {"fullName": "Never Written", "birthDate": "2019-04-02"}},
    ),
    "subscription": (MEDICAL_EVENTS, None),
}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("revoked-connections") / "network")


@pytest.fixture(scope="module")
def api(net: NetworkFixture) -> Iterator[Api]:
    with api_server(net, "memory://") as running:
        yield running


@pytest.fixture
def without_watcher(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each socket's periodic check comes after the test: what refuses is the per-message one."""
    monkeypatch.setattr(CertificateCheckedTransportWS, "recheck_seconds", 600.0)


def parent(net: NetworkFixture, uid: str) -> str:
    provision.enroll(net.directory, org="parents", uid=uid, role="parent")
    return uid


def idle_socket(api: Api, uid: str) -> Subscriber:
    """A websocket that has answered one query as `uid` and runs nothing now."""
    subscriber = Subscriber(api, uid, ME)
    answer = subscriber.receive(10)
    assert answer["payload"] == {"data": {"me": {"uid": uid}}}, answer
    assert subscriber.receive(10)["type"] == "complete"
    return subscriber


def responses_until_refused(api: Api, uid: str, seconds: float) -> list[httpx.Response]:
    """`uid` asks `me` on its keep-alive client until refused: every response, the refusal last."""
    deadline = time.monotonic() + seconds
    responses = [api(uid).post(ME)]
    while responses[-1].status_code == 200:
        assert time.monotonic() < deadline, f"still answered after {seconds} s"
        time.sleep(0.05)
        responses.append(api(uid).post(ME))
    return responses


def connection_of(response: httpx.Response) -> tuple[str, int]:
    """The client's address and port: the same for requests over one keep-alive connection."""
    address: tuple[str, int] = response.extensions["network_stream"].get_extra_info("client_addr")
    return address


def until_closed(
    subscriber: Subscriber, seconds: float
) -> tuple[tuple[int, str] | None, list[Any]]:
    """The server's close code and reason, and every message the socket received before it."""
    deadline = time.monotonic() + seconds
    messages: list[Any] = []
    while True:
        try:
            messages.append(subscriber.receive(deadline - time.monotonic()))
        except ConnectionClosed as closed:
            close = closed.rcvd
            return (close.code, close.reason) if close else None, messages
        except TimeoutError:
            raise AssertionError(f"still open after {seconds} s, having sent {messages}") from None


def heights(api: Api) -> dict[str, int]:
    assert api.services is not None
    return {name: channel.tip().height for name, channel in api.services.channels.items()}


def test_a_keep_alive_connection_is_refused_on_its_next_request_after_revocation(
    api: Api, net: NetworkFixture
) -> None:
    first = api(parent(net, "kai")).post(ME)
    assert first.json() == {"data": {"me": {"uid": "kai"}}}
    provision.revoke(net.directory, org="parents", uid="kai")
    responses = responses_until_refused(api, "kai", REFUSED_WITHIN_SECONDS)
    assert {connection_of(response) for response in responses} == {connection_of(first)}
    refusal = responses[-1]
    assert refusal.status_code == 401
    assert [e["extensions"]["code"] for e in refusal.json()["errors"]] == ["UNAUTHENTICATED"]
    assert refusal.json()["data"] is None


@pytest.mark.usefixtures("without_watcher")
@pytest.mark.parametrize("kind", list(OPERATIONS))
def test_an_operation_sent_on_an_open_socket_after_revocation_never_runs(
    api: Api, net: NetworkFixture, kind: str
) -> None:
    uid = parent(net, f"late-{kind}")
    with idle_socket(api, uid) as subscriber:
        before = heights(api)
        provision.revoke(net.directory, org="parents", uid=uid)
        revoked_at = time.monotonic()
        responses_until_refused(api, uid, REFUSED_WITHIN_SECONDS)
        query, variables = OPERATIONS[kind]
        payload = {"query": query, "variables": variables}
        subscriber.send({"id": "2", "type": "subscribe", "payload": payload})
        close, messages = until_closed(subscriber, WS_DEADLINE_SECONDS)
        closed_after = time.monotonic() - revoked_at
    assert close == REFUSED_CLOSE
    assert messages == [], "a refused operation sends nothing"
    assert closed_after < REFUSED_WITHIN_SECONDS
    assert heights(api) == before, "nothing was written in the revoked caller's name"


@pytest.mark.usefixtures("without_watcher")
def test_an_event_committed_after_revocation_is_not_sent(api: Api, net: NetworkFixture) -> None:
    uid = parent(net, "ivy")
    with Subscriber(api, uid, MEDICAL_EVENTS) as subscriber:
        time.sleep(SETTLE_SECONDS)
        provision.revoke(net.directory, org="parents", uid=uid)
        responses_until_refused(api, uid, REFUSED_WITHIN_SECONDS)
        child = api("alice").data(
            REGISTER_CHILD,
            {
                "input": {
                    "fullName": "Ivy Junior",
                    "birthDate": "2020-01-02",
                    "otherGuardians": [uid],
                }
            },
        )["registerChild"]["id"]
        close, messages = until_closed(subscriber, WS_DEADLINE_SECONDS)
    assert close == REFUSED_CLOSE
    assert [(m["id"], m["type"]) for m in messages] == [("1", "error")]
    assert [e["extensions"]["code"] for e in messages[0]["payload"]] == ["UNAUTHENTICATED"]
    assert child not in str(messages)


@pytest.mark.parametrize("running", ["nothing", "a subscription"])
def test_an_idle_socket_is_closed_within_5_s_of_revocation(
    api: Api, net: NetworkFixture, running: str
) -> None:
    uid = parent(net, "quiet-" + running.replace(" ", "-"))
    if running == "nothing":
        subscriber = idle_socket(api, uid)
    else:
        subscriber = Subscriber(api, uid, MEDICAL_EVENTS)
    with subscriber:
        time.sleep(SETTLE_SECONDS)
        provision.revoke(net.directory, org="parents", uid=uid)
        revoked_at = time.monotonic()
        close, messages = until_closed(subscriber, WS_DEADLINE_SECONDS)
        closed_after = time.monotonic() - revoked_at
    assert close == REFUSED_CLOSE
    assert closed_after < REFUSED_WITHIN_SECONDS, f"closed {closed_after:.1f} s after revocation"
    expected = [("1", "error")] if running == "a subscription" else []
    assert [(m["id"], m["type"]) for m in messages] == expected


def test_connections_of_a_certificate_that_expires_are_refused_from_then_on(
    api: Api, net: NetworkFixture
) -> None:
    folder = net.directory / "orgs" / "parents"
    authority = ca.load_authority(
        (folder / "ca.pem").read_bytes(), (folder / "ca.key").read_bytes()
    )
    key, cert = ca.issue_client_certificate(
        authority,
        org="parents",
        uid="brief",
        role="parent",
        not_before=datetime.now(UTC) - timedelta(minutes=1),
        validity=timedelta(minutes=1, seconds=EXPIRES_IN_SECONDS),
    )
    users = net.directory / "users" / "parents"
    (users / "brief.key").write_bytes(ca.key_pem(key))
    (users / "brief.pem").write_bytes(ca.cert_pem(cert))
    with idle_socket(api, "brief") as subscriber:
        # Polling keeps the HTTP connection alive until the certificate expires, and beyond.
        responses = responses_until_refused(
            api, "brief", EXPIRES_IN_SECONDS + REFUSED_WITHIN_SECONDS
        )
        close, messages = until_closed(subscriber, REFUSED_WITHIN_SECONDS)
        closed_at = datetime.now(UTC)
    assert len({connection_of(response) for response in responses}) == 1
    refusal = responses[-1]
    assert refusal.status_code == 401
    assert refusal.json()["errors"][0]["message"] == "The client certificate has expired."
    assert close == REFUSED_CLOSE
    assert messages == []
    assert cert.not_valid_after_utc < closed_at
    assert closed_at - cert.not_valid_after_utc < timedelta(seconds=REFUSED_WITHIN_SECONDS)


def test_the_legacy_graphql_ws_protocol_is_not_served(api: Api) -> None:
    async def close_code() -> int | None:
        # The asyncio client: a stalled TLS read is cancelled by the timeout, not left hanging.
        async with asyncio.timeout(WS_DEADLINE_SECONDS):
            async with ws_connect(
                api.wss_url,
                ssl=api.net.client_context("alice"),
                subprotocols=["graphql-ws"],  # type: ignore[list-item]
            ) as legacy:
                with pytest.raises(ConnectionClosed) as closed:
                    await legacy.recv()
        return closed.value.rcvd.code if closed.value.rcvd else None

    assert asyncio.run(close_code()) == 4406
