"""Persisted operations over real mutual TLS: automatic persisted queries, and `--persisted-only`.

By default any document runs (GraphiQL's too) and a client may name one by its SHA-256
(`extensions.persistedQuery`), sending the text only when the server asks for it. With
`serve --persisted-only` only the operations of the manifest run, over HTTP and websocket.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.persisted_operations import PersistedOperations, RememberedOperations, sha256_hex
from devkit.serve_process import ServeProcess
from tests.api_client import (
    REGISTER_CHILD,
    Api,
    GraphQLClient,
    Subscriber,
    api_server,
    assert_nothing_leaks,
    register,
)
from tests.networks import NetworkFixture, make_network
from tests.test_cli_serve import serve_fails
from tests.web_app import built_web_app

ME = "query Me { me { uid role } }"
CHILDREN = "query Children { children { edges { node { id fullName } } } }"
MEDICAL_EVENTS = 'subscription Events { events(channel: "medical") { name subjectId } }'
INTROSPECTION = "query IntrospectionQuery { __schema { queryType { name } } }"
REMEMBERED_AT_MOST = 3


def persisted(text: str, version: object = 1) -> dict[str, Any]:
    return {"persistedQuery": {"version": version, "sha256Hash": sha256_hex(text)}}


def post(api: Api, body: dict[str, Any], uid: str = "alice") -> httpx.Response:
    response = api(uid).http.post(
        "/graphql", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    assert_nothing_leaks(response.text)
    return response


def refusal(response: httpx.Response, status: int, code: str) -> str:
    """The message of the one error of a refused request."""
    assert response.status_code == status, response.text
    errors = response.json()["errors"]
    assert len(errors) == 1, errors
    assert errors[0]["extensions"]["code"] == code, errors
    return str(errors[0]["message"])


def data(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert not body.get("errors"), body
    return body["data"]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("persisted") / "network")


@pytest.fixture(scope="module")
def api(net: NetworkFixture) -> Iterator[Api]:
    """The default mode, remembering at most a few operations so the bound shows."""
    operations = PersistedOperations(
        remembered=RememberedOperations(max_operations=REMEMBERED_AT_MOST)
    )
    with api_server(net, "memory://", persisted_operations=operations) as running:
        yield running


@pytest.fixture(scope="module")
def registered_only(net: NetworkFixture) -> Iterator[Api]:
    """`--persisted-only` with a manifest of a query, a mutation and a subscription."""
    manifest = {sha256_hex(text): text for text in (ME, REGISTER_CHILD, MEDICAL_EVENTS)}
    operations = PersistedOperations(manifest, registered_only=True)
    with api_server(net, "memory://", persisted_operations=operations) as running:
        yield running


# -- automatic persisted queries (the default) -------------------------------------------------


def test_a_hash_the_server_does_not_know_asks_for_the_text(api: Api) -> None:
    response = post(api, {"extensions": persisted("query Unknown { me { uid } }")})
    assert refusal(response, 404, "PERSISTED_QUERY_NOT_FOUND") == "PersistedQueryNotFound"
    assert response.json()["data"] is None


def test_the_text_sent_with_its_hash_runs_and_is_then_known_by_the_hash(api: Api) -> None:
    text = "query Mine { me { uid org } }"
    expected = {"me": {"uid": "alice", "org": "parents"}}
    assert data(post(api, {"query": text, "extensions": persisted(text)})) == expected
    assert data(post(api, {"extensions": persisted(text)})) == expected
    # Known to the server, not to the caller: another user's request by hash runs as them.
    assert data(post(api, {"extensions": persisted(text)}, uid="bob"))["me"]["uid"] == "bob"


def test_a_hash_that_is_not_the_texts_is_refused_and_nothing_is_kept(api: Api) -> None:
    text = "query Mismatch { me { uid } }"
    wrong = persisted("query Other { me { uid } }")
    response = post(api, {"query": text, "extensions": wrong})
    assert refusal(response, 400, "BAD_USER_INPUT") == "provided sha does not match query"
    refusal(post(api, {"extensions": wrong}), 404, "PERSISTED_QUERY_NOT_FOUND")


@pytest.mark.parametrize(
    ("extension", "says"),
    [
        ({"persistedQuery": {"version": 2, "sha256Hash": "0" * 64}}, "Only version 1"),
        ({"persistedQuery": {"version": True, "sha256Hash": "0" * 64}}, "Only version 1"),
        ({"persistedQuery": {"version": 1, "sha256Hash": "ABC"}}, "64 lowercase"),
        ({"persistedQuery": "0" * 64}, "must be an object"),
    ],
)
def test_a_malformed_extension_is_refused(api: Api, extension: object, says: str) -> None:
    response = post(api, {"query": ME, "extensions": extension})
    assert says in refusal(response, 400, "BAD_USER_INPUT")


def test_the_limits_apply_to_a_text_sent_with_its_hash_and_a_refused_text_is_not_kept(
    api: Api,
) -> None:
    too_long = "query Long { " + "__typename " * 600 + "}"
    body = post(api, {"query": too_long, "extensions": persisted(too_long)}).json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    invalid = "query Invalid { noSuchField }"
    body = post(api, {"query": invalid, "extensions": persisted(invalid)}).json()
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    for text in (too_long, invalid):
        refusal(post(api, {"extensions": persisted(text)}), 404, "PERSISTED_QUERY_NOT_FOUND")


def test_a_known_query_runs_over_get_by_its_hash(api: Api) -> None:
    text = "query OverGet { me { uid role } }"
    post(api, {"query": text, "extensions": persisted(text)})
    # A bare GET that accepts anything (curl's */*) gets the answer, not the GraphiQL page.
    response = api.get("/graphql", params={"extensions": json.dumps(persisted(text))})
    assert data(response) == {"me": {"uid": "alice", "role": "PARENT"}}


def test_a_mutation_by_hash_over_get_is_refused_and_writes_nothing(api: Api) -> None:
    mutation = (
        "mutation Register($input: RegisterChildInput!) { registerChild(input: $input) { id } }"
    )
    variables = {"input": {"fullName": "Gus Getter", "birthDate": "2019-04-02"}}
    post(api, {"query": mutation, "variables": variables, "extensions": persisted(mutation)})
    before = data(post(api, {"query": CHILDREN}))["children"]
    params = {"extensions": json.dumps(persisted(mutation)), "variables": json.dumps(variables)}
    response = api.get("/graphql", params=params)
    assert "POST" in refusal(response, 405, "BAD_REQUEST")
    assert data(post(api, {"query": CHILDREN}))["children"] == before


def test_the_server_remembers_a_bounded_number_of_operations(api: Api) -> None:
    texts = [f"query Bounded{n} {{ me {{ uid }} }}" for n in range(REMEMBERED_AT_MOST + 1)]
    for text in texts:
        data(post(api, {"query": text, "extensions": persisted(text)}))
    oldest, *kept = texts
    refusal(post(api, {"extensions": persisted(oldest)}), 404, "PERSISTED_QUERY_NOT_FOUND")
    for text in kept:
        assert data(post(api, {"extensions": persisted(text)}))["me"]["uid"] == "alice"


def test_remembered_texts_are_bounded_in_bytes_too() -> None:
    store = RememberedOperations(max_operations=100, max_bytes=100)
    texts = [f"query Q{n} {{ me {{ uid }} }}".ljust(40) for n in range(3)]
    for text in texts:
        store.put(sha256_hex(text), text)
    assert store.bytes <= 100 and len(store) == 2
    assert store.get(sha256_hex(texts[0])) is None
    store.put(sha256_hex("x" * 101), "x" * 101)  # larger than the whole store: not kept
    assert store.get(sha256_hex("x" * 101)) is None and len(store) == 2


def test_any_text_still_runs_as_graphiql_sends_it(api: Api) -> None:
    assert data(post(api, {"query": INTROSPECTION})) == {
        "__schema": {"queryType": {"name": "Query"}}
    }
    assert data(post(api, {"query": ME}))["me"]["uid"] == "alice"


# -- --persisted-only ----------------------------------------------------------------------------


def test_only_registered_a_manifest_operation_runs_by_its_hash(registered_only: Api) -> None:
    response = post(registered_only, {"operationName": "Me", "extensions": persisted(ME)})
    assert data(response) == {"me": {"uid": "alice", "role": "PARENT"}}


def test_only_registered_a_manifest_operation_runs_as_its_exact_text(
    registered_only: Api,
) -> None:
    child = register(registered_only)  # REGISTER_CHILD is in the manifest, sent as text
    assert child


@pytest.mark.parametrize("text", [CHILDREN, INTROSPECTION, ME.replace("role", "org")])
def test_only_registered_any_other_text_is_refused(registered_only: Api, text: str) -> None:
    for body in ({"query": text}, {"query": text, "extensions": persisted(text)}):
        message = refusal(post(registered_only, body), 403, "FORBIDDEN")
        assert "only the operations registered with it" in message


def test_only_registered_an_unknown_hash_is_not_found_and_stays_unknown(
    registered_only: Api,
) -> None:
    response = post(registered_only, {"extensions": persisted(CHILDREN)})
    refusal(response, 404, "PERSISTED_QUERY_NOT_FOUND")
    # The client's retry with the text does not register it.
    body = {"query": CHILDREN, "extensions": persisted(CHILDREN)}
    refusal(post(registered_only, body), 403, "FORBIDDEN")
    refusal(
        post(registered_only, {"extensions": persisted(CHILDREN)}), 404, "PERSISTED_QUERY_NOT_FOUND"
    )


def test_only_registered_a_websocket_runs_only_manifest_operations(registered_only: Api) -> None:
    arbitrary = 'subscription { events(channel: "medical") { name } }'
    with Subscriber(registered_only, "alice", arbitrary) as socket:
        refused = socket.receive(10)
        assert refused["type"] == "error" and refused["id"] == "1", refused
        assert refused["payload"][0]["extensions"]["code"] == "FORBIDDEN"
        unknown = {"query": "", "extensions": persisted(arbitrary)}
        socket.send({"id": "2", "type": "subscribe", "payload": unknown})
        not_found = socket.receive(10)
        assert not_found["payload"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
        # The same socket goes on: the manifest's subscription, by its hash.
        by_hash = {"query": "", "extensions": persisted(MEDICAL_EVENTS)}
        socket.send({"id": "3", "type": "subscribe", "payload": by_hash})
        child = register(registered_only, name="Sub Scriber")
        message = socket.receive(10)
        assert message["id"] == "3" and message["type"] == "next", message
        assert message["payload"]["data"]["events"] == {
            "name": "ChildRegistered",
            "subjectId": child,
        }


# -- healthledger serve ----------------------------------------------------------------------


def write_manifest(path: Path, manifest: object) -> Path:
    path.write_text(json.dumps(manifest))
    return path


@pytest.mark.parametrize(
    ("manifest", "says"),
    [
        (None, "does not exist"),
        ("not json", "is not a JSON manifest"),
        ({"0" * 64: ME}, "is not its text's sha256"),
        ({sha256_hex("{ nothing }"): "{ nothing }"}, "does not fit this server's schema"),
    ],
)
def test_serve_refuses_to_start_on_a_manifest_it_cannot_use(
    net: NetworkFixture, tmp_path: Path, manifest: object, says: str
) -> None:
    path = tmp_path / "operations.json"
    if isinstance(manifest, str):
        path.write_text(manifest)
    elif manifest is not None:
        write_manifest(path, manifest)
    args = ("--network", str(net.directory), "--port", "0")
    line = serve_fails(*args, "--persisted-only", "--persisted-operations", str(path))
    assert says in line and str(path) in line


def test_serve_persisted_only_runs_the_web_apps_operations(
    net: NetworkFixture, tmp_path: Path
) -> None:
    """The default manifest is the web app's build output; the setting reaches the workers."""
    manifest = json.loads((built_web_app() / "persisted-documents.json").read_text())
    me = next(sha for sha, text in manifest.items() if text.startswith("query Me "))
    flags = ["--persisted-only"]
    with ServeProcess(net.directory, "memory://", tmp_path / "serve.log", flags=flags) as server:
        server.start()
        client = GraphQLClient(server.base_url, net.client_context("alice"), "alice")
        try:
            by_hash = {"persistedQuery": {"version": 1, "sha256Hash": me}}
            response = client.http.post("/graphql", json={"extensions": by_hash})
            assert data(response)["me"]["uid"] == "alice"
            refusal(client.http.post("/graphql", json={"query": ME}), 403, "FORBIDDEN")
        finally:
            client.close()
