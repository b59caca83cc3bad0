"""The FHIR endpoints and Child.fhir over real mutual TLS.

Every answer under /fhir is FHIR JSON and never stored; a refusal is an OperationOutcome
carrying the sentence GraphQL gives for the same read, at the status of its code. Each
endpoint is asked by every role it answers and by every role it refuses. An export is in
the child's access log as the reads it is made of; the access log itself pages as
AuditEvents, with cursors sealed to the caller and the child.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome

from api.cursors import CURSOR_REFUSED
from authz import provision
from ledger_backends import BackendUnavailableError
from tests.api_client import (
    ACCEPT_GUARDIANSHIP,
    APPROVE,
    CHILD,
    CREATE_REPORT,
    REGISTER_CHILD,
    Api,
    accepted_request,
    api_server,
    api_server_behind_proxy,
    assert_nothing_leaks,
    nodes,
    sign_and_accept,
    update_card,
)
from tests.networks import NetworkFixture, make_network

FHIR_JSON = "application/fhir+json; charset=utf-8"
NOT_VISIBLE = "No such child is visible to you."
ACCESS_LOG = """
query($child: ID!) {
  accessLog(childId: $child, first: 200) {
    edges { node { id readerUid what recordId purpose outcome } }
  }
}"""
CHILD_FHIR = "query($id: ID!) { child(id: $id) { id fhir } }"
PENDING_FHIR = "{ pendingGuardianships { id fhir } }"
CARD_TYPES = {"Immunization", "AllergyIntolerance", "Condition", "Observation"}


@dataclass(frozen=True)
class Story:
    child: str
    report: str


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    made = make_network(tmp_path_factory.mktemp("fhir-api") / "network")
    for uid in ("carol", "dave", "erin"):
        provision.enroll(made.directory, org="parents", uid=uid, role="parent", name=uid.title())
    provision.enroll(made.directory, org="school-a", uid="school-a-admin", role="admin")
    return made


@pytest.fixture(scope="module")
def api(net: NetworkFixture) -> Iterator[Api]:
    with api_server(net, "memory://") as running:
        yield running


@pytest.fixture(scope="module")
def story(api: Api) -> Story:
    """Ada: guardians alice and bob, carol offered guardianship and not accepting it; dr-house's
    agreement ACTIVE; a card; a report school-a asked for and alice permitted to it."""
    child = api("alice").data(
        REGISTER_CHILD,
        {
            "input": {
                "fullName": "Ada Martin",
                "birthDate": "2019-04-02",
                "sex": "F",
                "otherGuardians": ["bob", "carol"],
            }
        },
    )["registerChild"]["id"]
    api("bob").data(ACCEPT_GUARDIANSHIP, {"child": child})
    sign_and_accept(api, child)
    update_card(
        api,
        child,
        1,
        allergies=["peanuts"],
        chronicConditions=["asthma"],
        healthGroup=2,
        vaccinations=[{"vaccine": "MMR", "date": "2020-04-01", "dose": 1}],
    )
    request = accepted_request(api, child)
    report = api("dr-house").data(CREATE_REPORT, {"request": request, "conclusion": "Fit."})
    report_id = report["createReport"]["id"]
    api("alice").data(APPROVE, {"id": report_id, "schools": ["school-a"]})
    return Story(child, report_id)


def fhir(api: Api, uid: str, path: str, **params: Any) -> httpx.Response:
    """GET a FHIR path as `uid`; every answer is FHIR JSON, never stored, leaking nothing."""
    response = api.get(path, uid=uid, params=params)
    return checked(response)


def checked(response: httpx.Response) -> httpx.Response:
    assert_nothing_leaks(response.text)
    assert response.headers["content-type"] == FHIR_JSON
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    return response


def bundle_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    bundle: dict[str, Any] = response.json()
    Bundle.model_validate(bundle)
    assert bundle["type"] == "searchset"
    return bundle


def types_in(bundle: dict[str, Any]) -> set[str]:
    return {entry["resource"]["resourceType"] for entry in bundle.get("entry", [])}


def refusal(response: httpx.Response, status: int, issue: str) -> str:
    """The sentence of an OperationOutcome refusal with this status and issue type."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    OperationOutcome.model_validate(body)
    (found,) = body["issue"]
    assert (found["severity"], found["code"]) == ("error", issue)
    sentence: str = found["diagnostics"]
    return sentence


def graphql_refusal(api: Api, uid: str, query: str, variables: dict[str, Any]) -> str:
    return str(api(uid).error(query, variables)["message"])


def access_log(api: Api, child: str) -> list[dict[str, Any]]:
    return nodes(api("alice").data(ACCESS_LOG, {"child": child})["accessLog"])


# -- /fhir/metadata ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uid", ["alice", "dr-house", "school-a-office", "hospital-admin", "school-a-admin"]
)
def test_metadata_states_exactly_the_interactions_answered(api: Api, uid: str) -> None:
    response = fhir(api, uid, "/fhir/metadata")
    assert response.status_code == 200
    statement = response.json()
    CapabilityStatement.model_validate(statement)
    assert (statement["fhirVersion"], statement["kind"], statement["format"]) == (
        "4.3.0",
        "instance",
        ["application/fhir+json"],
    )
    assert statement["implementation"]["url"] == f"{api.base_url}/fhir"
    (rest,) = statement["rest"]
    answered = {
        resource["type"]: (
            [i["code"] for i in resource.get("interaction", [])],
            [o["name"] for o in resource.get("operation", [])],
            [p["name"] for p in resource.get("searchParam", [])],
        )
        for resource in rest["resource"]
    }
    assert answered == {
        "Patient": ([], ["everything"], []),
        "Consent": (["search-type"], [], ["patient"]),
        "AuditEvent": (["search-type"], [], ["patient", "_count"]),
    }


# -- Patient/ID/$everything -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uid", "types"),
    [
        ("alice", {"Patient", *CARD_TYPES, "Consent", "DocumentReference"}),
        ("bob", {"Patient", *CARD_TYPES, "Consent", "DocumentReference"}),
        ("dr-house", {"Patient", *CARD_TYPES, "Consent", "DocumentReference"}),
        ("school-a-office", {"Patient", "Consent", "DocumentReference"}),
    ],
)
def test_everything_is_what_each_reader_may_read(
    api: Api, story: Story, uid: str, types: set[str]
) -> None:
    bundle = bundle_of(fhir(api, uid, f"/fhir/Patient/{story.child}/$everything"))
    assert types_in(bundle) == types
    first = bundle["entry"][0]
    assert first["resource"]["resourceType"] == "Patient"
    assert first["fullUrl"] == f"{api.base_url}/fhir/Patient/{story.child}"
    assert bundle["link"] == [
        {"relation": "self", "url": f"{api.base_url}/fhir/Patient/{story.child}/$everything"}
    ]
    if uid == "school-a-office":
        assert set(first["resource"]) == {"resourceType", "id", "identifier", "name"}


# Another family's parent, a parent offered guardianship who has not accepted it, a doctor
# without an agreement, the hospital's administrator: told the child does not exist, as
# child(id) tells them; a school's administrator, outside the medical channel: forbidden.
NOT_READING_THE_CHILD = [
    ("dave", 404, "not-found"),
    ("carol", 404, "not-found"),
    ("dr-quinn", 404, "not-found"),
    ("hospital-admin", 404, "not-found"),
    ("school-a-admin", 403, "forbidden"),
]


@pytest.mark.parametrize(("uid", "status", "issue"), NOT_READING_THE_CHILD)
def test_everything_is_refused_with_graphql_s_sentence_for_the_child(
    api: Api, story: Story, uid: str, status: int, issue: str
) -> None:
    response = fhir(api, uid, f"/fhir/Patient/{story.child}/$everything")
    sentence = refusal(response, status, issue)
    assert sentence == graphql_refusal(api, uid, CHILD, {"id": story.child})


def test_a_school_not_permitted_is_told_the_child_does_not_exist(api: Api, story: Story) -> None:
    for child in (story.child, "child-unknown"):
        response = fhir(api, "school-b-office", f"/fhir/Patient/{child}/$everything")
        assert refusal(response, 404, "not-found") == NOT_VISIBLE


# -- Consent?patient=ID -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uid", "count"),
    [("alice", 2), ("bob", 2), ("dr-house", 2), ("school-a-office", 1), ("school-b-office", 0)],
)
def test_consents_are_those_each_reader_may_see(
    api: Api, story: Story, uid: str, count: int
) -> None:
    for patient in (story.child, f"Patient/{story.child}"):
        bundle = bundle_of(fhir(api, uid, "/fhir/Consent", patient=patient))
        assert bundle["total"] == len(bundle.get("entry", [])) == count
        assert types_in(bundle) <= {"Consent"}
        assert bundle["link"][0]["url"] == f"{api.base_url}/fhir/Consent?patient={story.child}"


@pytest.mark.parametrize(("uid", "status", "issue"), NOT_READING_THE_CHILD)
def test_consents_are_refused_with_graphql_s_sentence_for_the_child(
    api: Api, story: Story, uid: str, status: int, issue: str
) -> None:
    response = fhir(api, uid, "/fhir/Consent", patient=story.child)
    sentence = refusal(response, status, issue)
    assert sentence == graphql_refusal(api, uid, CHILD, {"id": story.child})


@pytest.mark.parametrize(
    "params",
    [{}, {"patient": ""}, {"patient": "Patient/"}, {"patient": "no such id!"}],
    ids=["missing", "empty", "no-id", "not-an-id"],
)
def test_a_search_without_a_proper_patient_is_invalid(api: Api, params: dict[str, str]) -> None:
    for path in ("/fhir/Consent", "/fhir/AuditEvent"):
        refusal(fhir(api, "alice", path, **params), 400, "invalid")
    repeated = api.get("/fhir/Consent?patient=a&patient=b")
    assert refusal(checked(repeated), 400, "invalid") == "Give patient once."


# -- AuditEvent?patient=ID --------------------------------------------------------------------


@pytest.mark.parametrize("uid", ["alice", "bob"])
def test_guardians_list_the_access_log_as_audit_events(api: Api, story: Story, uid: str) -> None:
    bundle = bundle_of(fhir(api, uid, "/fhir/AuditEvent", patient=story.child, _count=200))
    assert types_in(bundle) == {"AuditEvent"}
    listed = [entry["resource"]["id"] for entry in bundle["entry"]]
    # Newest first: a refused read recorded since (in the background) would come first.
    logged = [entry["id"] for entry in access_log(api, story.child)]
    assert listed and logged[len(logged) - len(listed) :] == listed


@pytest.mark.parametrize(
    ("uid", "status", "issue"),
    [
        ("dr-house", 404, "not-found"),
        ("dave", 404, "not-found"),
        ("carol", 404, "not-found"),
        ("hospital-admin", 404, "not-found"),
        ("school-a-office", 403, "forbidden"),
        ("school-a-admin", 403, "forbidden"),
    ],
)
def test_the_access_log_is_refused_with_graphql_s_sentence(
    api: Api, story: Story, uid: str, status: int, issue: str
) -> None:
    response = fhir(api, uid, "/fhir/AuditEvent", patient=story.child)
    sentence = refusal(response, status, issue)
    assert sentence == graphql_refusal(api, uid, ACCESS_LOG, {"child": story.child})


@pytest.mark.parametrize("count", ["0", "201", "ten", "-1", "1" * 5000])
def test_a_page_holds_1_to_200_audit_events(api: Api, story: Story, count: str) -> None:
    response = fhir(api, "alice", "/fhir/AuditEvent", patient=story.child, _count=count)
    assert refusal(response, 400, "invalid") == "_count must be a whole number from 1 to 200."


def test_audit_events_page_with_cursors_sealed_to_the_caller_and_the_child(
    api: Api, story: Story
) -> None:
    child = api("alice").data(
        REGISTER_CHILD, {"input": {"fullName": "Leo Martin", "birthDate": "2020-02-02"}}
    )["registerChild"]["id"]
    for _ in range(3):  # each a read of the child and of its card
        bundle_of(fhir(api, "alice", f"/fhir/Patient/{child}/$everything"))
    logged = [entry["id"] for entry in access_log(api, child)]
    assert len(logged) == 6

    first = bundle_of(fhir(api, "alice", "/fhir/AuditEvent", patient=child, _count=4))
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert links["self"] == f"{api.base_url}/fhir/AuditEvent?patient={child}&_count=4"
    following = links["next"]
    assert following.startswith(f"{api.base_url}/fhir/AuditEvent?patient={child}&_count=4&_cursor=")
    second = bundle_of(checked(api("alice").http.get(following)))
    assert [link["relation"] for link in second["link"]] == ["self"]
    assert second["link"][0]["url"] == following
    paged = [entry["resource"]["id"] for entry in [*first["entry"], *second["entry"]]]
    assert paged == logged

    cursor = httpx.URL(following).params["_cursor"]
    refused = [
        # Another guardian of the child, with alice's cursor.
        checked(api("bob").http.get(following)),
        # Alice's cursor, for another child.
        fhir(api, "alice", "/fhir/AuditEvent", patient=story.child, _count=4, _cursor=cursor),
        fhir(api, "alice", "/fhir/AuditEvent", patient=child, _count=4, _cursor=cursor + "A"),
        fhir(api, "alice", "/fhir/AuditEvent", patient=child, _cursor="not a cursor"),
    ]
    for response in refused:
        assert refusal(response, 400, "invalid") == CURSOR_REFUSED


# -- what an export leaves in the access log --------------------------------------------------


def test_an_export_is_in_the_access_log_and_so_is_a_refused_one(api: Api, story: Story) -> None:
    before = {entry["id"] for entry in access_log(api, story.child)}
    bundle_of(fhir(api, "dr-house", f"/fhir/Patient/{story.child}/$everything"))
    bundle_of(fhir(api, "school-a-office", f"/fhir/Patient/{story.child}/$everything"))
    # erin is refused nothing else: a second refusal of a record in a minute is not logged.
    refusal(fhir(api, "erin", f"/fhir/Patient/{story.child}/$everything"), 404, "not-found")
    expected = {
        ("dr-house", "CHILD", story.child, "TREATMENT", "PERMITTED"),
        ("dr-house", "MEDICAL_CARD", story.child, "TREATMENT", "PERMITTED"),
        ("dr-house", "REPORT_CONTENT", story.report, "TREATMENT", "PERMITTED"),
        ("school-a-office", "REPORT_CONTENT", story.report, "SCHOOL_ADMISSION", "PERMITTED"),
        ("erin", "CHILD", story.child, "GUARDIAN", "REFUSED"),
    }
    readers = {reader for reader, *_ in expected}
    # A refused read is recorded in the background, within a few seconds.
    deadline = time.monotonic() + 10
    while True:
        added = {
            (e["readerUid"], e["what"], e["recordId"], e["purpose"], e["outcome"])
            for e in access_log(api, story.child)
            if e["id"] not in before and e["readerUid"] in readers
        }
        if added == expected or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert added == expected


# -- the HTTP surface -------------------------------------------------------------------------


def test_only_get_is_answered_and_unknown_paths_are_not_found(api: Api) -> None:
    alice = api("alice").http
    for path in ("/fhir/metadata", "/fhir/Consent?patient=x", "/fhir/Patient/x/$everything"):
        response = checked(alice.post(path))
        refusal(response, 405, "not-supported")
        assert response.headers["allow"] == "GET"
    for path in ("/fhir", "/fhir/", "/fhir/Observation", "/fhir/Patient/x", "/fhir/metadata/x"):
        sentence = refusal(checked(alice.get(path)), 404, "not-found")
        assert sentence == f"This server answers no FHIR request at {path}."


def test_a_failure_is_a_logged_500_that_tells_nothing_of_it(
    api: Api, story: Story, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*_: object) -> None:
        raise RuntimeError("SELECT * FROM cards WHERE child = 'Ada Martin'")

    assert api.services is not None
    monkeypatch.setattr(api.services.gateway, "evaluate", broken)
    with caplog.at_level(logging.ERROR, logger="healthledger.api"):
        response = fhir(api, "alice", f"/fhir/Patient/{story.child}/$everything")
    sentence = refusal(response, 500, "exception")
    assert sentence == "The server could not answer; the error was logged."
    assert "Ada Martin" not in response.text
    assert "RuntimeError: SELECT * FROM cards" in caplog.text


def test_a_ledger_that_does_not_answer_is_a_503_to_ask_again(
    api: Api, story: Story, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def down(*_: object) -> None:
        raise BackendUnavailableError("connection to 10.0.0.7:5432 refused")

    assert api.services is not None
    monkeypatch.setattr(api.services.gateway, "evaluate", down)
    with caplog.at_level(logging.WARNING, logger="healthledger.api"):
        response = fhir(api, "alice", "/fhir/Consent", patient=story.child)
    sentence = refusal(response, 503, "transient")
    assert sentence == "The ledger is unavailable right now. Try again shortly."
    assert "10.0.0.7" not in response.text
    assert "UNAVAILABLE: connection to 10.0.0.7:5432 refused" in caplog.text
    assert "Traceback" not in caplog.text


@pytest.fixture(scope="module")
def behind_proxy(net: NetworkFixture) -> Iterator[Api]:
    with api_server_behind_proxy(net) as running:
        yield running


def test_without_an_identity_the_answer_is_an_operation_outcome_401(behind_proxy: Api) -> None:
    nobody = behind_proxy(None).http
    graphql = nobody.post("/graphql", json={"query": "{ me { uid } }"})
    assert graphql.status_code == 401
    (error,) = graphql.json()["errors"]
    for path in ("/fhir/metadata", "/fhir/Patient/x/$everything", "/fhir/Observation"):
        response = checked(nobody.get(path))
        assert refusal(response, 401, "login") == error["message"]


# -- Child.fhir ----------------------------------------------------------------------------------


def test_a_guardian_gets_the_child_s_record_as_a_bundle_in_graphql(api: Api, story: Story) -> None:
    found = api("bob").data(CHILD_FHIR, {"id": story.child})["child"]["fhir"]
    Bundle.model_validate(found)
    served = bundle_of(fhir(api, "bob", f"/fhir/Patient/{story.child}/$everything"))
    assert [entry["fullUrl"] for entry in found["entry"]] == [
        entry["fullUrl"] for entry in served["entry"]
    ]
    assert [entry["resource"] for entry in found["entry"]] == [
        entry["resource"] for entry in served["entry"]
    ]
    assert found["link"] == served["link"]


def test_only_guardians_get_child_fhir(api: Api, story: Story) -> None:
    answer = api("dr-house").execute(CHILD_FHIR, {"id": story.child})
    (error,) = answer["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["message"] == "Only the child's guardians can export its record."
    assert answer["data"]["child"] == {"id": story.child, "fhir": None}


def test_a_parent_offered_guardianship_is_told_the_child_does_not_exist(
    api: Api, story: Story
) -> None:
    answer = api("carol").execute(PENDING_FHIR)
    (error,) = answer["errors"]
    assert (error["extensions"]["code"], error["message"]) == ("NOT_FOUND", NOT_VISIBLE)
    assert {"id": story.child, "fhir": None} in answer["data"]["pendingGuardianships"]


def test_a_request_exports_one_child_s_record_at_most(api: Api, story: Story) -> None:
    second = api("alice").data(
        REGISTER_CHILD, {"input": {"fullName": "Leo Martin", "birthDate": "2021-09-09"}}
    )["registerChild"]["id"]
    answer = api("alice").execute(
        "query($a: ID!, $b: ID!) { a: child(id: $a) { fhir } b: child(id: $b) { fhir } }",
        {"a": story.child, "b": second},
    )
    (error,) = answer["errors"]
    assert (error["extensions"]["code"], error["message"]) == (
        "BAD_USER_INPUT",
        "Ask for one child's FHIR record a request.",
    )
    exported = [answer["data"][alias]["fhir"] for alias in ("a", "b")]
    assert exported.count(None) == 1
    (bundle,) = [found for found in exported if found is not None]
    Bundle.model_validate(bundle)
