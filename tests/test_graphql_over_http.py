"""GraphQL over HTTP as the draft's server section reads it (api/graphql_over_http.py), case
by case, over real mutual TLS.

Each answer is checked for its status, its Content-Type and its body's shape: with
`application/graphql-response+json`, a request error has no `data` and a 4xx status, an
executed operation 200 (with or without field errors); with `application/json`, a
well-formed request gets 200 and `data`, as it always did. Requests the HTTP layer refuses
get one status in both media types.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import request_response

from api.app import MAX_BODY_BYTES, BodyLimit
from api.graphql_over_http import graphql_answer, negotiated_media_type
from authz.network import load_network
from tests.api_client import (
    REGISTER_CHILD,
    Api,
    api_server,
    api_server_behind_proxy,
    assert_nothing_leaks,
)
from tests.networks import NetworkFixture, make_network
from tests.tls_server import serving

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
CONTENT_TYPE = {GRAPHQL_RESPONSE: f"{GRAPHQL_RESPONSE}; charset=utf-8", JSON: JSON}
ME = "{ me { uid } }"
REGISTER = {
    "query": REGISTER_CHILD,
    "variables": {"input": {"fullName": "Ada Martin", "birthDate": "2019-04-02"}},
}
SKIP_ME = "query($skip: Boolean!) { me @skip(if: $skip) { uid } }"
HEIGHTS = "{ channels { name height } }"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("graphql-over-http") / "network")


@pytest.fixture(scope="module")
def api(net: NetworkFixture) -> Iterator[Api]:
    with api_server(net, "memory://") as running:
        yield running


def send(
    api: Api,
    method: str = "POST",
    body: object = None,
    *,
    raw: bytes | None = None,
    accept: str | None = GRAPHQL_RESPONSE,
    content_type: str | None = JSON,
    params: dict[str, str] | None = None,
    uid: str = "alice",
) -> httpx.Response:
    """One request to /graphql; a header given as None is not sent at all."""
    http = api(uid).http
    content = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = http.build_request(method, "/graphql", content=content, params=params)
    for name, value in (("accept", accept), ("content-type", content_type)):
        if value is None:
            request.headers.pop(name, None)
        else:
            request.headers[name] = value
    response = http.send(request)
    assert_nothing_leaks(response.text)
    return response


def answer(response: httpx.Response, status: int, media_type: str) -> dict[str, Any]:
    """The body of a GraphQL response with this status and media type."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == CONTENT_TYPE[media_type]
    body: dict[str, Any] = response.json()
    return body


def request_error(response: httpx.Response, status: int, media_type: str = GRAPHQL_RESPONSE) -> str:
    """The one code of a request error: no `data` under graphql-response+json, `data` null
    under application/json."""
    body = answer(response, status, media_type)
    if media_type == GRAPHQL_RESPONSE:
        assert "data" not in body, body
    else:
        assert body["data"] is None, body
    codes = {str(error["extensions"]["code"]) for error in body["errors"]}
    assert len(codes) == 1, body
    assert all("path" not in error for error in body["errors"]), body
    return codes.pop()


def heights(api: Api) -> dict[str, int]:
    data = answer(send(api, body={"query": HEIGHTS}), 200, GRAPHQL_RESPONSE)["data"]
    return {channel["name"]: channel["height"] for channel in data["channels"]}


# -- Accept: which media type answers ----------------------------------------------------------

ACCEPTED = {
    "graphql-response": (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
    "with-charset": (f"{GRAPHQL_RESPONSE}; charset=utf-8", GRAPHQL_RESPONSE),
    "json": (JSON, JSON),
    "as-the-spec-advises": (f"{GRAPHQL_RESPONSE}, {JSON};q=0.9", GRAPHQL_RESPONSE),
    "both-named": (f"{JSON}, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
    "json-preferred": (f"{JSON}, {GRAPHQL_RESPONSE};q=0.5", JSON),
    "urql": (
        f"{GRAPHQL_RESPONSE}, application/graphql+json, {JSON}, text/event-stream",
        GRAPHQL_RESPONSE,
    ),
    "any": ("*/*", JSON),
    "any-application": ("application/*", JSON),
    "browser": ("text/html,application/xhtml+xml,*/*;q=0.8", JSON),
    "absent": (None, JSON),
    "named-beats-wildcard": (f"*/*, {JSON};q=0", GRAPHQL_RESPONSE),
}


@pytest.mark.parametrize(("accept", "media_type"), ACCEPTED.values(), ids=ACCEPTED.keys())
def test_the_answer_takes_the_media_type_accept_prefers(
    api: Api, accept: str | None, media_type: str
) -> None:
    body = answer(send(api, body={"query": ME}, accept=accept), 200, media_type)
    assert body == {"data": {"me": {"uid": "alice"}}}


@pytest.mark.parametrize(
    "accept",
    ["text/html", "application/xml, text/plain", f"{GRAPHQL_RESPONSE};q=0, {JSON};q=0"],
    ids=["html", "xml-or-text", "both-refused"],
)
def test_an_accept_allowing_neither_media_type_gets_406_and_nothing_runs(
    api: Api, accept: str
) -> None:
    before = heights(api)
    assert request_error(send(api, body=REGISTER, accept=accept), 406, JSON) == "BAD_REQUEST"
    assert heights(api) == before


def test_malformed_quality_values_leave_their_range_out() -> None:
    assert negotiated_media_type(f"{GRAPHQL_RESPONSE};q=2, {JSON}") == JSON
    assert negotiated_media_type(f"{GRAPHQL_RESPONSE};q=high") is None
    assert negotiated_media_type(f"{JSON};q=0.001") == JSON


# -- POST: the request body --------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", f"{JSON}; charset=latin-1"],
    ids=["absent", "text", "form", "not-utf-8"],
)
@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE, JSON])
def test_a_post_body_that_is_not_json_in_utf8_gets_415(
    api: Api, content_type: str | None, accept: str
) -> None:
    response = send(api, body={"query": ME}, content_type=content_type, accept=accept)
    assert request_error(response, 415, accept) == "BAD_REQUEST"


def test_json_with_a_utf8_charset_is_json(api: Api) -> None:
    response = send(api, body={"query": ME}, content_type=f"{JSON}; charset=UTF-8")
    assert answer(response, 200, GRAPHQL_RESPONSE) == {"data": {"me": {"uid": "alice"}}}


def test_a_body_without_a_charset_is_read_as_utf8(api: Api) -> None:
    body = json.dumps({"query": SKIP_ME, "variables": {"skip": "Ωmega"}}, ensure_ascii=False)
    response = send(api, raw=body.encode("utf-8"))
    assert request_error(response, 400) == "BAD_USER_INPUT"
    assert "Ωmega" in response.json()["errors"][0]["message"]


def test_properties_the_server_does_not_know_are_ignored_and_null_is_absent(api: Api) -> None:
    body = {
        "query": ME,
        "operationName": None,
        "variables": None,
        "extensions": None,
        "somethingNew": {"x": 1},
    }
    assert answer(send(api, body=body), 200, GRAPHQL_RESPONSE)["data"] == {"me": {"uid": "alice"}}


def test_a_mutation_by_post_runs(api: Api) -> None:
    body = answer(send(api, body=REGISTER), 200, GRAPHQL_RESPONSE)
    assert body["data"]["registerChild"]["fullName"] == "Ada Martin"


# -- GET ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE, JSON])
def test_a_query_by_get_runs(api: Api, accept: str) -> None:
    params = {"query": SKIP_ME, "variables": json.dumps({"skip": False})}
    response = send(api, "GET", params=params, accept=accept, content_type=None)
    assert answer(response, 200, accept) == {"data": {"me": {"uid": "alice"}}}


def test_empty_optional_get_parameters_are_absent(api: Api) -> None:
    params = {"query": ME, "operationName": "", "variables": "", "extensions": ""}
    response = send(api, "GET", params=params, content_type=None)
    assert answer(response, 200, GRAPHQL_RESPONSE) == {"data": {"me": {"uid": "alice"}}}


@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE, JSON])
@pytest.mark.parametrize(
    ("query", "operation"),
    [
        (REGISTER_CHILD, None),
        (f"query Me {ME} {REGISTER_CHILD.replace('mutation', 'mutation Register')}", "Register"),
    ],
    ids=["mutation", "mutation-named-in-a-document-with-a-query"],
)
def test_a_mutation_by_get_gets_405_allowing_post_and_never_runs(
    api: Api, accept: str, query: str, operation: str | None
) -> None:
    before = heights(api)
    params = {"query": query, "variables": json.dumps(REGISTER["variables"])}
    if operation:
        params["operationName"] = operation
    response = send(api, "GET", params=params, accept=accept, content_type=None)
    assert request_error(response, 405, accept) == "BAD_REQUEST"
    assert response.headers["allow"] == "POST"
    assert heights(api) == before


def test_the_query_of_a_document_that_also_holds_a_mutation_runs_by_get(api: Api) -> None:
    query = f"query Me {ME} {REGISTER_CHILD.replace('mutation', 'mutation Register')}"
    response = send(api, "GET", params={"query": query, "operationName": "Me"}, content_type=None)
    assert answer(response, 200, GRAPHQL_RESPONSE) == {"data": {"me": {"uid": "alice"}}}


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
def test_a_method_other_than_get_and_post_gets_405(api: Api, method: str) -> None:
    response = send(api, method, body={"query": ME})
    assert request_error(response, 405) == "BAD_REQUEST"
    assert response.headers["allow"] == "GET, POST"


def test_a_get_without_a_query_is_not_a_graphql_request(api: Api) -> None:
    response = send(api, "GET", content_type=None)
    assert request_error(response, 400) == "BAD_REQUEST"


def test_get_variables_that_are_not_json_get_400(api: Api) -> None:
    params = {"query": SKIP_ME, "variables": "{skip: false}"}
    response = send(api, "GET", params=params, content_type=None)
    assert request_error(response, 400) == "BAD_REQUEST"


def test_a_browser_asking_for_html_gets_graphiql_not_406(api: Api) -> None:
    response = send(api, "GET", accept="text/html", content_type=None)
    assert response.headers["content-type"].startswith("text/html")
    assert response.status_code in (200, 404), "the page, or the page saying it is not built"


# -- Status codes, error class by error class ---------------------------------------------------

# (request, status and code with graphql-response+json); application/json answers 200.
REQUEST_ERRORS: dict[str, tuple[dict[str, Any], int, str]] = {
    "document-does-not-parse": ({"query": "{"}, 400, "GRAPHQL_PARSE_FAILED"),
    "document-over-the-token-limit": (
        {"query": "{ me { " + "uid " * 500 + "} }"},
        400,
        "GRAPHQL_VALIDATION_FAILED",
    ),
    "unknown-field": ({"query": "{ me { password } }"}, 400, "GRAPHQL_VALIDATION_FAILED"),
    "depth-limit": (
        {"query": "{ me " + "{ f " * 10 + "{ uid }" + " }" * 11},
        400,
        "GRAPHQL_VALIDATION_FAILED",
    ),
    "cost-bound": ({"query": "{ " + "me { uid } " * 6 + "}"}, 400, "BAD_USER_INPUT"),
    "variable-missing": ({"query": SKIP_ME}, 400, "BAD_USER_INPUT"),
    "variable-does-not-coerce": (
        {"query": SKIP_ME, "variables": {"skip": "yes"}},
        400,
        "BAD_USER_INPUT",
    ),
    "variables-over-their-bounds": (
        {
            "query": 'mutation($s: [String!]!) { approveReport(id: "r", schools: $s) { id } }',
            "variables": {"s": ["school-a"] * 201},
        },
        400,
        "BAD_USER_INPUT",
    ),
    "subscription-over-http": (
        {"query": 'subscription { events(channel: "medical") { name } }'},
        400,
        "BAD_USER_INPUT",
    ),
}


@pytest.mark.parametrize(
    ("request_body", "status", "code"), REQUEST_ERRORS.values(), ids=REQUEST_ERRORS.keys()
)
def test_a_request_error_gets_a_4xx_without_data_or_200_with_null_data_as_json(
    api: Api, request_body: dict[str, Any], status: int, code: str
) -> None:
    assert request_error(send(api, body=request_body), status) == code
    legacy = send(api, body=request_body, accept=JSON)
    assert request_error(legacy, 200, JSON) == code


# Refused before GraphQL runs: (body, status), the same status in both media types.
NOT_GRAPHQL_REQUESTS: dict[str, tuple[bytes, int]] = {
    "nonsense": (b"NONSENSE", 400),
    "json-cut-short": (b'{"query":', 400),
    "not-utf-8": (b'{"query": "\xff"}', 400),
    "query-misspelt": (b'{"qeury": "{ __typename }"}', 400),
    "query-not-a-string": (b'{"query": 7}', 400),
    "variables-not-a-map": (
        b'{"query": "query Q($i: Int!) { me { uid } }", "variables": [7]}',
        400,
    ),
    "operation-name-not-a-string": (b'{"query": "{ me { uid } }", "operationName": 5}', 400),
    "extensions-not-a-map": (b'{"query": "{ me { uid } }", "extensions": "x"}', 400),
    "a-batch": (b'[{"query": "{ me { uid } }"}]', 400),
    "no-operation-of-that-name": (
        json.dumps({"query": f"query A {ME}", "operationName": "B"}).encode(),
        400,
    ),
}


@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE, JSON])
@pytest.mark.parametrize(
    ("raw", "status"), NOT_GRAPHQL_REQUESTS.values(), ids=NOT_GRAPHQL_REQUESTS.keys()
)
def test_a_request_that_is_not_a_well_formed_graphql_request_gets_400(
    api: Api, raw: bytes, status: int, accept: str
) -> None:
    assert request_error(send(api, raw=raw, accept=accept), status, accept) == "BAD_REQUEST"


@pytest.mark.parametrize(("accept", "status"), [(GRAPHQL_RESPONSE, 400), (JSON, 200)])
def test_several_operations_without_an_operation_name_run_none(
    api: Api, accept: str, status: int
) -> None:
    document = (
        "query A { me { uid } } "
        'mutation B { registerChild(input: {fullName: "Nope", birthDate: "2020-01-01"}) { id } }'
    )
    before = heights(api)
    response = send(api, body={"query": document}, accept=accept)
    assert request_error(response, status, accept) == "BAD_REQUEST"
    assert "name the one to run in operationName" in response.json()["errors"][0]["message"]
    named = answer(send(api, body={"query": document, "operationName": "A"}), 200, GRAPHQL_RESPONSE)
    assert named["data"] == {"me": {"uid": "alice"}}
    assert heights(api) == before


def test_a_refusal_at_a_nullable_field_answers_200_with_the_rest_of_the_data(api: Api) -> None:
    query = '{ me { uid } child(id: "child-nope") { id } }'
    body = answer(send(api, body={"query": query}), 200, GRAPHQL_RESPONSE)
    assert body["data"] == {"me": {"uid": "alice"}, "child": None}
    [error] = body["errors"]
    assert error["extensions"]["code"] == "NOT_FOUND" and error["path"] == ["child"]
    legacy = answer(send(api, body={"query": query}, accept=JSON), 200, JSON)
    assert legacy == body


def test_a_refusal_at_a_non_null_field_answers_200_with_null_data(api: Api) -> None:
    body = answer(send(api, body=REGISTER, uid="dr-house"), 200, GRAPHQL_RESPONSE)
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN" and error["path"] == ["registerChild"]


def test_a_fault_before_execution_answers_500_without_data() -> None:
    # Strawberry turns an exception in an extension into an error without a path.
    error = {"message": "An unexpected error occurred.", "extensions": {"code": "INTERNAL"}}
    fault = graphql_answer({"data": None, "errors": [error]}, GRAPHQL_RESPONSE)
    assert (fault.status, dict(fault.body)) == (500, {"errors": [error]})


# -- Refusals before the GraphQL view, in the negotiated media type ------------------------------


@pytest.fixture(scope="module")
def behind_proxy(net: NetworkFixture) -> Iterator[Api]:
    with api_server_behind_proxy(net) as running:
        yield running


@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE, JSON])
def test_a_caller_without_an_identity_gets_401(behind_proxy: Api, accept: str) -> None:
    response = behind_proxy(None).http.post(
        "/graphql", json={"query": ME}, headers={"accept": accept}
    )
    assert request_error(response, 401, accept) == "UNAUTHENTICATED"


@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE, JSON])
def test_a_body_over_one_mebibyte_gets_413(api: Api, accept: str) -> None:
    raw = b'{"query": "{ me { uid } }", "padding": "' + b"x" * MAX_BODY_BYTES + b'"}'
    assert request_error(send(api, raw=raw, accept=accept), 413, accept) == "BAD_USER_INPUT"


def test_a_body_too_slow_gets_408(net: NetworkFixture) -> None:
    async def echo(request: Request) -> Response:
        return Response(await request.body())

    # serve's bound is 30 s; the same middleware with 0.5 s keeps this short.
    app = BodyLimit(request_response(echo), MAX_BODY_BYTES, seconds=0.5)
    with serving(app, load_network(net.directory), lifespan="off") as url:
        port = int(url.rsplit(":", 1)[1])
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        with net.client_context("alice").wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(
                b"POST /graphql HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                b"accept: application/graphql-response+json\r\ncontent-length: 100\r\n\r\n{"
            )
            time.sleep(1)
            answer_bytes = b""
            with contextlib.suppress(OSError):
                while chunk := tls.recv(65536):
                    answer_bytes += chunk
    head, _, body = answer_bytes.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer_bytes
    assert f"content-type: {CONTENT_TYPE[GRAPHQL_RESPONSE]}".encode() in head.lower()
    refusal = json.loads(body)
    assert "data" not in refusal
    assert refusal["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
