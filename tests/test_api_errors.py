"""Every error code produced through the API, the request limits, and the HTTP surface.

Each refusal is checked for its `extensions.code`; every response is checked by
the client for tracebacks, SQL and driver names, and each refusal's message for
the uids of other users.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest
from graphql import GraphQLError

from api.errors import CHECK_NOT_RUN, with_code
from authz import ca, provision
from ledger_backends import BackendUnavailableError
from ledger_backends.testing import POSTGRES_URL, needs_backend, query_option, scratch_url
from ledger_backends.verify_disk import ScratchSpaceError
from tests.api_client import (
    ACCEPT,
    ACCEPT_ADMISSION,
    AGREEMENTS,
    APPROVE,
    CREATE_ADMISSION,
    HISTORY,
    REGISTER_CHILD,
    REPORT,
    REVOKE_PERMISSION,
    SIGN,
    UPDATE_CARD,
    Api,
    RedisServer,
    api_server,
    api_server_behind_proxy,
    assert_nothing_leaks,
    nodes,
    ready_report,
    register,
    sign_and_accept,
    update_card,
)
from tests.networks import NetworkFixture, make_network
from tests.web_app import built_web_app

ME = "{ me { uid } }"
CHILD = "query($id: ID!) { child(id: $id) { id } }"
REGISTER_WITH_DATE = """
mutation($date: Date!) {
  registerChild(input: {fullName: "Dot Date", birthDate: $date}) { id }
}"""


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    net = make_network(tmp_path_factory.mktemp("api-errors") / "network")
    provision.enroll(net.directory, org="parents", uid="carol", role="parent", name="Carol")
    return net


@pytest.fixture(scope="module")
def api(net: NetworkFixture) -> Iterator[Api]:
    with api_server(net, f"sqlite:///{net.directory.parent}/ledger.db") as running:
        yield running


@pytest.fixture(scope="module")
def patient(api: Api) -> str:
    """Alice's child, with Dr House under an ACTIVE agreement and the card at version 2."""
    child = register(api, "alice", "Pat Ient")
    sign_and_accept(api, child)
    update_card(api, child, 1, healthGroup=3)
    return child


def still_answers(api: Api) -> None:
    assert api("alice").data(ME) == {"me": {"uid": "alice"}}


# -- UNAUTHENTICATED ----------------------------------------------------------------------------


def test_a_revoked_certificate_gets_401_unauthenticated_within_five_seconds(
    api: Api, net: NetworkFixture
) -> None:
    carol = api("carol")
    assert carol.data(ME) == {"me": {"uid": "carol"}}
    provision.revoke(net.directory, org="parents", uid="carol")
    revoked_at = time.monotonic()
    while (response := carol.post(ME)).status_code == 200:
        assert time.monotonic() - revoked_at < 5, "still accepted 5 s after revocation"
        time.sleep(0.1)
    assert response.status_code == 401
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert "revoked" in error["message"]
    assert carol.http.get("/metrics").status_code == 401
    still_answers(api)


def test_without_a_client_certificate_the_tls_handshake_fails(api: Api) -> None:
    with pytest.raises(httpx.TransportError):
        api(None).post(ME)


@pytest.fixture(scope="module")
def behind_proxy(net: NetworkFixture) -> Iterator[Api]:
    with api_server_behind_proxy(net) as running:
        yield running


def _stranger_pem() -> str:
    stranger = ca.create_authority("parents", "parents CA")
    _, cert = ca.issue_client_certificate(stranger, org="parents", uid="alice", role="parent")
    return ca.cert_pem(cert).decode()


@pytest.mark.parametrize(
    "header",
    [None, "not a certificate", "stranger"],
    ids=["no-header", "garbage-header", "certificate-from-outside-the-network"],
)
def test_behind_a_proxy_a_request_without_a_valid_forwarded_certificate_gets_401(
    behind_proxy: Api, header: str | None
) -> None:
    headers = {} if header is None else {"x-forwarded-client-cert": header}
    if header == "stranger":
        headers["x-forwarded-client-cert"] = quote(_stranger_pem())
    response = behind_proxy(None).http.post("/graphql", json={"query": ME}, headers=headers)
    assert response.status_code == 401
    assert_nothing_leaks(response.text)
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"


def test_behind_a_proxy_the_forwarded_certificate_is_the_caller(
    behind_proxy: Api, net: NetworkFixture
) -> None:
    pem = net.user("dr-house")[0].read_text()
    response = behind_proxy(None).http.post(
        "/graphql", json={"query": ME}, headers={"x-forwarded-client-cert": quote(pem)}
    )
    assert response.json() == {"data": {"me": {"uid": "dr-house"}}}


# -- FORBIDDEN, NOT_FOUND, CONFLICT --------------------------------------------------------------


@pytest.mark.parametrize(
    ("uid", "query", "variables"),
    [
        ("school-a-office", "{ children { edges { node { id } } } }", {}),
        ("alice", ACCEPT, {"id": "agreement-0"}),
        ("dr-house", REGISTER_CHILD, {"input": {"fullName": "X", "birthDate": "2020-01-01"}}),
        ("school-b-office", '{ blocks(channel: "medical") { edges { node { number } } } }', {}),
        ("alice", '{ verifyChannel(channel: "no-such-channel") { ok } }', {}),
    ],
    ids=["school-lists-children", "parent-accepts", "doctor-registers", "school-blocks", "unknown"],
)
def test_a_known_caller_without_the_right_gets_forbidden(
    api: Api, uid: str, query: str, variables: dict[str, Any]
) -> None:
    assert api(uid).code(query, variables) == "FORBIDDEN"


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (CHILD, {"id": "child-does-not-exist"}),
        (REPORT, {"id": "report-does-not-exist"}),
        ('mutation { revokeAgreement(id: "agreement-nope") { id } }', {}),
        (CREATE_ADMISSION, {"child": "child-nope", "school": "school-a"}),
    ],
    ids=["child", "report", "agreement", "admission-for-unknown-child"],
)
def test_an_object_that_does_not_exist_gets_not_found(
    api: Api, query: str, variables: dict[str, Any]
) -> None:
    assert api("alice").code(query, variables) == "NOT_FOUND"


def test_a_stale_expected_version_gets_conflict_and_changes_nothing(api: Api, patient: str) -> None:
    newest = nodes(api("alice").data(HISTORY, {"child": patient})["medicalCardHistory"])[0]
    version = newest["version"]
    update_card(api, patient, version, notes="First.")
    error = api("dr-house").error(
        UPDATE_CARD, {"child": patient, "version": version, "patch": {"notes": "Second."}}
    )
    assert error["extensions"]["code"] == "CONFLICT"
    assert f"version {version + 1}" in error["message"], "it says which version is current"
    card = api("alice").data(
        "query($c: ID!) { medicalCard(childId: $c) { version notes } }", {"c": patient}
    )
    assert card["medicalCard"] == {"version": version + 1, "notes": "First."}


def test_illegal_state_transitions_get_conflict(api: Api) -> None:
    child, report = ready_report(api)
    api("alice").data(APPROVE, {"id": report, "schools": ["school-a"]})
    assert api("alice").code(REVOKE_PERMISSION, {"id": report, "school": "school-b"}) == "CONFLICT"
    agreement = nodes(api("alice").data(AGREEMENTS, {"child": child})["agreements"])[0]["id"]
    assert api("dr-house").code(ACCEPT, {"id": agreement}) == "CONFLICT"
    assert api("alice").code(SIGN, {"child": child, "doctor": "dr-house"}) == "CONFLICT"
    admission = api("alice").data(CREATE_ADMISSION, {"child": child, "school": "school-b"})
    admission_id = admission["createAdmissionRequest"]["id"]
    api("school-b-office").data(ACCEPT_ADMISSION, {"id": admission_id})
    assert api("school-b-office").code(ACCEPT_ADMISSION, {"id": admission_id}) == "CONFLICT"


# -- BAD_USER_INPUT -------------------------------------------------------------------------------


def _register(**fields: Any) -> tuple[str, str, dict[str, Any]]:
    child = {"fullName": "Kim Doe", "birthDate": "2019-01-01", **fields}
    return ("alice", REGISTER_CHILD, {"input": child})


def _patch(**patch: Any) -> tuple[str, str, dict[str, Any]]:
    return ("dr-house", UPDATE_CARD, {"child": "{patient}", "version": 2, "patch": patch})


BAD_INPUT = {
    "empty-name": _register(fullName="   "),
    "name-too-long": _register(fullName="K" * 201),
    "birth-date-in-the-future": _register(birthDate="2999-01-01"),
    "bad-date-literal-in-a-variable": ("alice", REGISTER_WITH_DATE, {"date": "2020-13-45"}),
    "date-variable-of-the-wrong-type": ("alice", REGISTER_WITH_DATE, {"date": 20200101}),
    "oneself-as-other-guardian": _register(otherGuardians=["alice"]),
    "name-with-nul": _register(fullName="Kim\u0000Doe"),
    "name-with-unpaired-surrogate": _register(fullName="Kim \ud800"),
    "id-with-nul": ("alice", CHILD, {"id": "child-\u0000"}),
    "health-group-7": _patch(healthGroup=7),
    "unknown-blood-type": _patch(bloodType="Z+"),
    "vaccination-dose-0": _patch(
        vaccinations=[{"vaccine": "MMR", "date": "2020-01-01", "dose": 0}]
    ),
    "empty-patch": _patch(),
    "unknown-school": ("alice", CREATE_ADMISSION, {"child": "{patient}", "school": "school-z"}),
    "page-of-201": ("alice", "{ admissionRequests(first: 201) { edges { node { id } } } }", {}),
    "page-of-0-blocks": (
        "alice",
        '{ blocks(channel: "report", first: 0) { edges { cursor } } }',
        {},
    ),
    "made-up-cursor": ("alice", '{ children(after: "bm90LWEtY3Vyc29y") { edges { cursor } } }', {}),
}


def _fill(value: Any, patient: str) -> Any:
    if isinstance(value, str):
        return value.replace("{patient}", patient)
    if isinstance(value, dict):
        return {k: _fill(v, patient) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, patient) for v in value]
    return value


@pytest.mark.parametrize(("uid", "query", "variables"), BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_invalid_arguments_get_bad_user_input(
    api: Api, patient: str, uid: str, query: str, variables: dict[str, Any]
) -> None:
    error = api(uid).error(query, _fill(variables, patient))
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert "\x00" not in error["message"] and "\ud800" not in error["message"]


# -- GraphQL documents: parse and validation failures, and the limits ------------------------------


@pytest.mark.parametrize(
    "query",
    ["{ me { uid ", "query {", "hello", "{ me { uid } } }"],
    ids=["eof", "empty", "word", "brace"],
)
def test_a_document_that_is_not_graphql_gets_parse_failed(api: Api, query: str) -> None:
    assert api("alice").code(query) == "GRAPHQL_PARSE_FAILED"


@pytest.mark.parametrize(
    "query",
    [
        "{ me { uid password } }",
        "{ blocks(channel: 1) { number } }",
        "{ child { id } }",
        '{ child(id: "x", deep: true) { id } }',
        'mutation { registerChild(input: {fullName: "X", birthDate: "2020-13-45"}) { id } }',
        "subscription { me { uid } }",
    ],
    ids=[
        "unknown-field",
        "wrong-argument-type",
        "missing-argument",
        "unknown-argument",
        "bad-date-literal",
        "not-a-subscription-field",
    ],
)
def test_a_document_that_does_not_fit_the_schema_gets_validation_failed(
    api: Api, query: str
) -> None:
    errors = api("alice").errors(query)
    assert {e["extensions"]["code"] for e in errors} == {"GRAPHQL_VALIDATION_FAILED"}


def _nested(depth: int) -> str:
    return "{ me " + "{ f " * (depth - 1) + "{ uid }" + " }" * depth


LIMITS = {
    "depth-11": (_nested(11), "exceeds maximum operation depth of 10"),
    "31-aliases": ("{ " + " ".join(f"a{i}: me {{ uid }}" for i in range(31)) + " }", "aliases"),
    "501-tokens": ("{ me { " + "uid " * 500 + "} }", "more than 500 tokens"),
}


@pytest.mark.parametrize(("query", "says"), LIMITS.values(), ids=LIMITS.keys())
def test_a_document_over_a_limit_gets_validation_failed_and_the_server_keeps_answering(
    api: Api, query: str, says: str
) -> None:
    errors = api("alice").errors(query)
    assert {e["extensions"]["code"] for e in errors} == {"GRAPHQL_VALIDATION_FAILED"}
    assert any(says in e["message"] for e in errors), errors
    still_answers(api)


def test_thirty_aliases_are_within_the_limit(api: Api) -> None:
    query = "{ " + " ".join(f"a{i}: me {{ uid }}" for i in range(30)) + " }"
    assert len(api("alice").data(query)) == 30


@pytest.mark.parametrize("streamed", [False, True], ids=["declared-length", "chunked"])
def test_a_two_mebibyte_body_gets_413_and_the_server_keeps_answering(
    api: Api, streamed: bool
) -> None:
    body = b'{"query": "{ me { uid } }", "padding": "' + b"x" * (2 * 1024 * 1024) + b'"}'

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    response = api("alice").http.post(
        "/graphql",
        content=chunks() if streamed else body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    still_answers(api)


# -- The HTTP surface ----------------------------------------------------------------------------


def test_a_browser_asking_for_graphql_gets_graphiql(api: Api) -> None:
    built_web_app()  # GraphiQL's page is in web/dist, which another test may have built
    response = api.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()


def test_health_readiness_and_metrics_answer(api: Api) -> None:
    still_answers(api)
    assert api.get("/healthz").status_code == 200
    assert api.get("/readyz").status_code == 200
    metrics = api.get("/metrics", uid="hospital-admin")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "healthledger_graphql_requests" in metrics.text
    assert re.search(r'healthledger_block_height\{channel="medical"\} \d', metrics.text)


# -- UNAVAILABLE ---------------------------------------------------------------------------------


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


def timed(action: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = action()
    return result, time.monotonic() - started


@needs_backend("redis")
def test_with_the_ledger_down_requests_get_unavailable_and_it_recovers_without_restart(
    net: NetworkFixture, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with api_server(net, f"redis://127.0.0.1:{redis_server.port}/0") as api:
        register(api, "alice", "Before Outage")
        assert api.get("/readyz").status_code == 200

        redis_server.kill()
        new_child = {"input": {"fullName": "During Outage", "birthDate": "2019-01-01"}}
        error, seconds = timed(lambda: api("alice").error(REGISTER_CHILD, new_child))
        assert error["extensions"]["code"] == "UNAVAILABLE"
        assert "nothing was written" in error["message"]
        assert seconds < 5
        children = "{ children { edges { node { id } } } }"
        query_error, seconds = timed(lambda: api("bob").error(children))
        assert (query_error["extensions"]["code"], seconds < 5) == ("UNAVAILABLE", True)
        ready, seconds = timed(lambda: api.get("/readyz"))
        assert (ready.status_code, seconds < 5) == (503, True)
        assert api.get("/healthz").status_code == 200
        assert api.get("/metrics", uid="hospital-admin").status_code == 200
        still_answers(api)
        # An outage is one fault that many requests meet: one line each, no traceback.
        outage_lines = [r for r in caplog.records if r.getMessage().startswith("UNAVAILABLE: ")]
        assert len(outage_lines) >= 2
        assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"

        redis_server.start()  # same port, empty: this Redis keeps nothing across restarts
        assert api.get("/readyz").status_code == 200
        child = api("alice").data(REGISTER_CHILD, new_child)["registerChild"]
        assert child["fullName"] == "During Outage"
        verify = '{ verifyChannel(channel: "medical") { ok height } }'
        assert api("alice").data(verify)["verifyChannel"] == {"ok": True, "height": 1}


# -- INTERNAL ------------------------------------------------------------------------------------


@needs_backend("postgresql")
def test_an_unexpected_fault_gets_internal_with_a_request_id_found_in_the_server_log(
    net: NetworkFixture, caplog: pytest.LogCaptureFixture
) -> None:
    with scratch_url("postgresql") as url, api_server(net, url) as api:
        child = register(api, "alice", "Faulty Table")
        schema = query_option(url, "schema")
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:  # what a careless DBA could do
            conn.execute(f'DROP TABLE "{schema}".ledger_history')
        with caplog.at_level(logging.ERROR, logger="healthledger.api"):
            error = api("alice").error(HISTORY, {"child": child})
        assert error["extensions"]["code"] == "INTERNAL"
        request_id = error["extensions"]["requestId"]
        assert request_id in error["message"]
        assert "ledger_history" not in error["message"]
        logged = [r for r in caplog.records if request_id in r.getMessage()]
        assert logged and logged[0].exc_info is not None, "the log has the traceback"
        # The server still serves; a read of the child needs its access-log entry written,
        # which the damaged store refuses, so that read fails too.
        assert api("alice").data(ME) == {"me": {"uid": "alice"}}
        assert api("alice").error(CHILD, {"id": child})["extensions"]["code"] == "INTERNAL"


def test_the_client_helper_flags_a_leak() -> None:
    """The check every response here passes through notices SQL and tracebacks."""
    for leaked in ("Traceback (most recent call last):", "[SQL: SELECT value FROM x]"):
        with pytest.raises(AssertionError):
            assert_nothing_leaks(leaked)


def test_refusals_name_no_other_user(api: Api, patient: str) -> None:
    for uid in ("bob", "dr-quinn", "school-a-office", "hospital-admin"):
        for query, variables in [
            (CHILD, {"id": patient}),
            (UPDATE_CARD, {"child": patient, "version": 2, "patch": {"notes": "x"}}),
            (SIGN, {"child": patient, "doctor": "dr-quinn"}),
        ]:
            api(uid).error(query, variables)  # checks the message for other users' uids


@pytest.mark.parametrize(
    ("outcome_known", "message"),
    [
        (True, "The ledger is unavailable right now; nothing was written. Try again shortly."),
        (False, "it is either wholly stored or not at all. Read it back before trying again."),
    ],
)
def test_unavailable_says_nothing_was_written_only_when_that_is_known(
    outcome_known: bool, message: str
) -> None:
    cause = BackendUnavailableError("socket closed", outcome_known=outcome_known)
    coded = with_code(GraphQLError("socket closed", original_error=cause))
    assert coded.extensions == {"code": "UNAVAILABLE"}
    assert message in coded.message and "socket" not in coded.message


def test_a_check_without_room_for_its_scratch_file_is_unavailable_and_names_no_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cause = ScratchSpaceError("The check's temporary database could not be made: /tmp/x full.")
    with caplog.at_level(logging.ERROR, logger="healthledger.api"):
        coded = with_code(GraphQLError("full", original_error=cause))
    assert coded.extensions == {"code": "UNAVAILABLE"}
    assert coded.message == CHECK_NOT_RUN and "/tmp" not in coded.message
    assert any("/tmp/x full" in record.getMessage() for record in caplog.records)
