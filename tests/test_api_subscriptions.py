"""Subscriptions over graphql-transport-ws with real client certificates: who hears what."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from websockets.exceptions import InvalidStatus, WebSocketException

from authz import provision
from ledger_backends.testing import needs_backend
from tests.api_client import (
    APPROVE,
    CREATE_ADMISSION,
    REGISTER_CHILD,
    Api,
    RedisServer,
    Subscriber,
    api_server,
    api_server_behind_proxy,
    ready_report,
    register,
    sign_and_accept,
    update_card,
)
from tests.networks import NetworkFixture, make_network

# The hub starts tailing the chain when the subscription starts; give it that moment.
SETTLE_SECONDS = 0.3
SILENCE_SECONDS = 2.0
EVENTS = "subscription {{ events(channel: {channel}) {{ name subjectId blockNumber txId }} }}"
REPORT_EVENTS = EVENTS.format(channel='"report"')
MEDICAL_EVENTS = EVENTS.format(channel='"medical"')


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    net = make_network(tmp_path_factory.mktemp("api-subscriptions") / "network")
    for uid in ("dave", "erin", "gina"):
        provision.enroll(net.directory, org="parents", uid=uid, role="parent", name=uid.title())
    return net


@pytest.fixture(scope="module")
def api(net: NetworkFixture) -> Iterator[Api]:
    with api_server(net, f"sqlite:///{net.directory.parent}/ledger.db") as running:
        yield running


@pytest.fixture
def listeners(api: Api) -> Iterator[dict[str, Subscriber]]:
    """Opens subscriptions on demand; closes them after the test."""
    opened: dict[str, Subscriber] = {}
    yield opened
    for subscriber in opened.values():
        subscriber.close()


def subscribe(api: Api, opened: dict[str, Subscriber], query: str, *uids: str) -> None:
    for uid in uids:
        opened[uid] = Subscriber(api, uid, query)
    time.sleep(SETTLE_SECONDS)


def test_a_guardian_hears_that_the_report_was_approved(
    api: Api, listeners: dict[str, Subscriber]
) -> None:
    subscribe(api, listeners, REPORT_EVENTS, "alice")
    _, report = ready_report(api)
    assert listeners["alice"].event("ReportReady", report)["blockNumber"] >= 0
    approved = api("alice").data(APPROVE, {"id": report, "schools": ["school-a"]})
    assert approved["approveReport"]["status"] == "APPROVED"
    event = listeners["alice"].event("ReportApproved", report)
    assert isinstance(event["blockNumber"], int) and len(event["txId"]) == 32


def test_a_school_hears_nothing_of_a_report_permitted_only_to_another_school(
    api: Api, listeners: dict[str, Subscriber]
) -> None:
    subscribe(api, listeners, REPORT_EVENTS, "school-a-office", "school-b-office")
    child, report = ready_report(api, school="school-a")
    api("alice").data(APPROVE, {"id": report, "schools": ["school-a"]})
    listeners["school-a-office"].event("ReportApproved", report)
    assert listeners["school-b-office"].silent_for(SILENCE_SECONDS)

    # School B's subscription works: its own news reaches it, and is the first thing it hears.
    applied = api("alice").data(CREATE_ADMISSION, {"child": child, "school": "school-b"})
    admission = applied["createAdmissionRequest"]["id"]
    first = listeners["school-b-office"].receive(10)
    assert first["payload"]["data"]["events"]["name"] == "AdmissionRequested"
    assert first["payload"]["data"]["events"]["subjectId"] == admission


def test_on_the_medical_channel_only_the_guardians_and_the_doctor_hear_of_a_card_update(
    api: Api, listeners: dict[str, Subscriber]
) -> None:
    subscribe(api, listeners, MEDICAL_EVENTS, "alice", "dr-house", "bob", "dr-quinn")
    child = register(api, "alice", "Cara Lee")
    sign_and_accept(api, child)
    version = update_card(api, child, 1, healthGroup=1)["version"]
    for uid in ("alice", "dr-house"):
        assert listeners[uid].event("CardUpdated", child)["blockNumber"] >= 0
    assert listeners["bob"].silent_for(SILENCE_SECONDS / 2)
    assert listeners["dr-quinn"].silent_for(SILENCE_SECONDS / 2)
    assert version == 2
    bobs = register(api, "bob", "Bo Bell")
    assert listeners["bob"].event("ChildRegistered", bobs)["subjectId"] == bobs


@needs_backend("redis")
def test_a_subscription_resumes_when_the_ledger_comes_back(
    net: NetworkFixture, tmp_path: Path
) -> None:
    redis = RedisServer(data_dir=tmp_path)
    redis.start()
    try:
        with api_server(net, redis.url) as api, Subscriber(api, "alice", MEDICAL_EVENTS) as alice:
            time.sleep(SETTLE_SECONDS)
            before = register(api, "alice", "Before Outage")
            alice.event("ChildRegistered", before)
            redis.kill()
            time.sleep(1)  # the hub polls an absent ledger for a while
            redis.start()  # same port, same data
            after = register(api, "alice", "After Outage")
            assert alice.event("ChildRegistered", after)["subjectId"] == after
    finally:
        redis.close()


@pytest.mark.parametrize("uid", ["school-a-office", "school-b-office"])
@pytest.mark.parametrize("channel", ["medical", "no-such-channel"])
def test_a_school_subscribing_outside_its_channels_gets_forbidden(
    api: Api, uid: str, channel: str
) -> None:
    with Subscriber(api, uid, EVENTS.format(channel=f'"{channel}"')) as subscriber:
        message = subscriber.receive(10)
    assert message["type"] in ("next", "error"), message
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert [e["extensions"]["code"] for e in errors] == ["FORBIDDEN"]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ('subscription { events(channel: "report") { name ', "GRAPHQL_PARSE_FAILED"),
        ('subscription { events(channel: "report") { name secret } }', "GRAPHQL_VALIDATION_FAILED"),
        ("subscription { events { name } }", "GRAPHQL_VALIDATION_FAILED"),
    ],
    ids=["parse", "unknown-field", "missing-argument"],
)
def test_a_bad_subscription_document_gets_an_error_with_its_code(
    api: Api, query: str, code: str
) -> None:
    with Subscriber(api, "alice", query) as subscriber:
        message = subscriber.receive(10)
    assert message["type"] == "error", message
    assert {e["extensions"]["code"] for e in message["payload"]} == {code}


def test_a_websocket_without_a_client_certificate_fails_the_handshake(api: Api) -> None:
    # The server's TLS alert reaches the client during the upgrade or just after it was sent.
    with pytest.raises((WebSocketException, OSError)):
        Subscriber(api, None, REPORT_EVENTS)


def test_a_websocket_with_a_revoked_certificate_is_refused(api: Api, net: NetworkFixture) -> None:
    assert api("dave").data("{ me { uid } }") == {"me": {"uid": "dave"}}
    provision.revoke(net.directory, org="parents", uid="dave")
    deadline = time.monotonic() + 5
    while api("dave").post("{ me { uid } }").status_code != 401:
        assert time.monotonic() < deadline, "still accepted 5 s after revocation"
        time.sleep(0.1)
    with pytest.raises(InvalidStatus) as refused:
        Subscriber(api, "dave", REPORT_EVENTS)
    assert refused.value.response.status_code == 403


def test_a_subscription_opened_before_a_revocation_gets_no_more_events(
    api: Api, net: NetworkFixture
) -> None:
    with Subscriber(api, "erin", MEDICAL_EVENTS) as erin:
        time.sleep(SETTLE_SECONDS)
        provision.revoke(net.directory, org="parents", uid="erin")
        deadline = time.monotonic() + 5
        while api("erin").post("{ me { uid } }").status_code != 401:
            assert time.monotonic() < deadline, "still accepted 5 s after revocation"
            time.sleep(0.1)
        offer = {"fullName": "Fay Lee", "birthDate": "2019-04-02", "otherGuardians": ["erin"]}
        child = api("alice").data(REGISTER_CHILD, {"input": offer})["registerChild"]["id"]
        message = erin.receive(10)
    assert message["type"] in ("next", "error"), message
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert [e["extensions"]["code"] for e in errors] == ["UNAUTHENTICATED"]
    assert child not in str(message), "nothing about the event reaches the revoked certificate"


def test_an_idle_subscription_of_a_revoked_certificate_ends_within_seconds(
    api: Api, net: NetworkFixture
) -> None:
    with Subscriber(api, "gina", MEDICAL_EVENTS) as gina:
        time.sleep(SETTLE_SECONDS)
        provision.revoke(net.directory, org="parents", uid="gina")
        revoked_at = time.monotonic()
        message = gina.receive(10)  # no event is committed meanwhile
        ended_after = time.monotonic() - revoked_at
    assert message["type"] in ("next", "error"), message
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert [e["extensions"]["code"] for e in errors] == ["UNAUTHENTICATED"]
    assert ended_after < 5, f"the revoked subscription stayed open {ended_after:.1f} s"


@pytest.fixture(scope="module")
def behind_proxy(net: NetworkFixture) -> Iterator[Api]:
    with api_server_behind_proxy(net) as running:
        yield running


def test_behind_a_proxy_a_websocket_without_a_forwarded_certificate_is_refused(
    behind_proxy: Api,
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        Subscriber(behind_proxy, None, REPORT_EVENTS)
    assert refused.value.response.status_code == 403


def test_behind_a_proxy_a_websocket_with_a_forwarded_certificate_subscribes(
    behind_proxy: Api, net: NetworkFixture
) -> None:
    header = {"x-forwarded-client-cert": quote(net.user("alice")[0].read_text())}
    with Subscriber(behind_proxy, None, REPORT_EVENTS, header) as subscriber:
        time.sleep(SETTLE_SECONDS)
        child = register(behind_proxy, "alice", "Pia Proxy")
        applied = behind_proxy("alice").data(
            CREATE_ADMISSION, {"child": child, "school": "school-a"}
        )
        admission = applied["createAdmissionRequest"]["id"]
        assert subscriber.event("AdmissionRequested", admission)["subjectId"] == admission
