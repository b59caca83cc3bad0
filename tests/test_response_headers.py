"""Protective headers over real mutual TLS: GraphiQL is never framed or prefilled, and no
response carrying records (every /graphql answer, its websocket handshake, /metrics, every
/fhir answer) is stored."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest

from tests.api_client import Api, Subscriber, api_server, register
from tests.networks import NetworkFixture, make_network

HTML = {"Accept": "text/html"}
ME = "{ me { uid } }"
EVENTS = 'subscription { events(channel: "medical") { name subjectId channel } }'
PREFILLED_MUTATION = (
    'mutation { registerChild(input: {fullName: "Mallory", birthDate: "2019-04-02"}) { id } }'
)
FORGED_HEADERS = '{"x-forwarded-client-cert": "Cert=forged"}'


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    net: NetworkFixture = make_network(tmp_path_factory.mktemp("headers") / "network")
    with api_server(net, "memory://") as running:
        yield running


def _policy(header: str) -> dict[str, list[str]]:
    directives = (part.split() for part in header.split(";") if part.strip())
    return {name: sources for name, *sources in directives}


def test_graphiql_cannot_be_framed_sniffed_or_stored(api: Api) -> None:
    page = api.get("/graphql", headers=HTML)
    assert page.status_code == 200
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    policy = _policy(page.headers["content-security-policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    # 'self' covers the wss:// subscriptions to the same host.
    assert policy["connect-src"] == ["'self'"]


@pytest.mark.parametrize(
    "prefill",
    [
        f"q={quote(PREFILLED_MUTATION)}",
        f"q={quote(ME)}&variables={quote('{}')}",
        f"headers={quote(FORGED_HEADERS)}",
    ],
    ids=["mutation", "query", "headers"],
)
def test_graphiql_is_never_prefilled_from_the_url(api: Api, prefill: str) -> None:
    response = api.get(f"/graphql?{prefill}", headers=HTML)
    assert response.status_code == 303
    assert response.headers["location"] == "/graphql"
    assert response.headers["cache-control"] == "no-store"
    assert PREFILLED_MUTATION not in response.text
    followed = api.get(response.headers["location"], headers=HTML)
    assert followed.status_code == 200 and "graphiql" in followed.text.lower()


def test_every_graphql_answer_is_never_stored(api: Api) -> None:
    alice = api("alice")
    answers = {
        "POST": alice.post(ME),
        "GET": alice.http.get("/graphql", params={"query": ME}),
        "GET mutation": alice.http.get("/graphql", params={"query": PREFILLED_MUTATION}),
        "POST bad JSON": alice.http.post(
            "/graphql", content=b"{", headers={"content-type": "application/json"}
        ),
        "POST error": alice.post("{ nothingLikeThis }"),
    }
    for name, response in answers.items():
        assert response.headers.get("cache-control") == "no-store", name
        assert response.headers.get("pragma") == "no-cache", name
    assert answers["POST"].status_code == answers["GET"].status_code == 200


def test_the_websocket_handshake_answer_is_never_stored(api: Api) -> None:
    with Subscriber(api, "alice", EVENTS) as subscriber:
        assert subscriber.connection.response is not None
        assert subscriber.connection.response.headers["cache-control"] == "no-store"
        child = register(api)
        assert subscriber.event("ChildRegistered", child)["channel"] == "medical"


def test_metrics_are_never_stored(api: Api) -> None:
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"


def test_fhir_answers_are_never_stored(api: Api) -> None:
    child = register(api)
    for path in (
        f"/fhir/Patient/{child}/$everything",
        f"/fhir/Consent?patient={child}",
        "/fhir/metadata",
        "/fhir/Consent",
        "/fhir/Observation",
    ):
        response = api.get(path)
        assert response.headers["content-type"] == "application/fhir+json; charset=utf-8", path
        assert response.headers["cache-control"] == "no-store", path
        assert response.headers["pragma"] == "no-cache", path
