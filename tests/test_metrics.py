"""/metrics over real mutual TLS: request series carry no client-chosen string, and an
administrator outside the hospital sees only its own organisation's requests on its channels."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from graphql import build_schema
from prometheus_client.parser import text_string_to_metric_families

from api.metrics import CHANNEL_ARGUMENT_FIELDS, FIELD_CHANNELS, NEUTRAL_FIELDS
from api.schema import schema
from authz import provision
from tests.api_client import Api, api_server, register, sign_and_accept
from tests.networks import NetworkFixture, make_network

Labels = tuple[str, str, str, str]  # org, channel, field, outcome
CHOSEN = "zqxChosen"  # in every client-chosen string below: it must never reach /metrics
CARD_BY_NAME = "query MedicalCard($c: ID!) { medicalCard(childId: $c) { version } }"
HISTORY_BY_NAME = "query CardHistory($c: ID!) { medicalCardHistory(childId: $c) { version } }"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    net = make_network(tmp_path_factory.mktemp("metrics") / "network")
    for org in ("school-a", "parents"):
        provision.enroll(net.directory, org=org, uid=f"{org}-admin", role="admin")
    return net


@pytest.fixture(scope="module")
def api(net: NetworkFixture) -> Iterator[Api]:
    with api_server(net, "memory://") as running:
        yield running


@pytest.fixture(scope="module")
def child(api: Api) -> str:
    """Alice's child under an ACTIVE agreement with Dr House."""
    child = register(api)
    sign_and_accept(api, child)
    return child


def requests_seen(api: Api, uid: str) -> dict[Labels, float]:
    """The GraphQL request counts `uid` is shown on /metrics."""
    response = api.get("/metrics", uid=uid)
    assert response.status_code == 200
    counts: dict[Labels, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "healthledger_graphql_requests_total":
                labels = sample.labels
                key = (labels["org"], labels["channel"], labels["field"], labels["outcome"])
                counts[key] = sample.value
    return counts


def test_a_school_admin_sees_nothing_of_a_doctors_named_medical_reads(api: Api, child: str) -> None:
    api("dr-house").data(CARD_BY_NAME, {"c": child})
    api("dr-house").data(HISTORY_BY_NAME, {"c": child})
    school = api.get("/metrics", uid="school-a-admin").text
    for trace in ("MedicalCard", "CardHistory", "medicalCard", 'channel="medical"', "hospital"):
        assert trace not in school
    hospital = requests_seen(api, "hospital-admin")
    assert hospital[("hospital", "medical", "medicalCard", "ok")] >= 1
    assert hospital[("hospital", "medical", "medicalCardHistory", "ok")] >= 1
    text = api.get("/metrics", uid="hospital-admin").text
    assert '"MedicalCard"' not in text and '"CardHistory"' not in text


def test_client_chosen_strings_never_become_labels(api: Api) -> None:
    alice = api("alice")
    before = requests_seen(api, "hospital-admin")
    alice.data(f"query {CHOSEN}Operation {{ me {{ uid }} }}")
    alice.data(f"{{ {CHOSEN}Alias: me {{ uid }} }}")
    alice.post(f"{{ {CHOSEN}Field }}")
    alice.post(f"{{ not graphql {CHOSEN}")
    alice.post(f'{{ blocks(channel: "{CHOSEN}Channel") {{ number }} }}')
    alice.post("query($c: String!) { verifyChannel(channel: $c) { ok } }", {"c": f"{CHOSEN}Var"})
    two = f"query {CHOSEN}A {{ me {{ uid }} }} query {CHOSEN}B {{ channels {{ name }} }}"
    alice.http.post("/graphql", json={"query": two, "operationName": f"{CHOSEN}B"})
    text = api.get("/metrics", uid="hospital-admin").text
    assert CHOSEN not in text
    after = requests_seen(api, "hospital-admin")
    grew = {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key)}
    assert grew == {
        ("parents", "", "me", "ok"): 2,
        ("parents", "", "unknown", "error"): 2,
        ("parents", "", "blocks", "error"): 1,
        ("parents", "", "verifyChannel", "error"): 1,
        ("parents", "", "channels", "ok"): 1,
    }


def test_each_root_field_counts_once_with_its_own_outcome(api: Api, child: str) -> None:
    before = requests_seen(api, "hospital-admin")
    document = """
        query($c: ID!) { me { uid } ...Card again: me { org } refused: report(id: "none") { id } }
        fragment Card on Query { medicalCard(childId: $c) { version } }
    """
    body = api("alice").execute(document, {"c": child})
    assert [error["path"] for error in body["errors"]] == [["refused"]]
    after = requests_seen(api, "hospital-admin")
    grew = {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key)}
    assert grew == {
        ("parents", "", "me", "ok"): 1,
        ("parents", "medical", "medicalCard", "ok"): 1,
        ("parents", "report", "report", "error"): 1,
    }


def test_an_admin_outside_the_hospital_sees_its_own_organisation_only(api: Api, child: str) -> None:
    api("alice").data("query($c: ID!) { medicalCard(childId: $c) { version } }", {"c": child})
    for school in ("school-a-office", "school-b-office"):
        api(school).data("{ admissionRequests { id } reports { id } }")
    api("school-a-office").post('{ blocks(channel: "medical") { number } }')

    school = requests_seen(api, "school-a-admin")
    assert school[("school-a", "report", "reports", "ok")] >= 1
    assert {(org, channel) for org, channel, _, _ in school} <= {
        ("school-a", "report"),
        ("school-a", ""),
    }
    parents = requests_seen(api, "parents-admin")
    assert parents[("parents", "medical", "medicalCard", "ok")] >= 1
    assert {org for org, _, _, _ in parents} == {"parents"}
    hospital = requests_seen(api, "hospital-admin")
    assert {org for org, _, _, _ in hospital} == {"hospital", "parents", "school-a", "school-b"}
    # The hospital runs the service: it sees a school knocking on the medical channel.
    assert hospital[("school-a", "medical", "blocks", "error")] >= 1
    for user in ("alice", "dr-house", "school-a-office"):
        assert requests_seen(api, user) == {}


def test_every_root_field_of_the_schema_has_a_channel_or_none() -> None:
    sdl = build_schema(schema.as_str())
    roots = [t for t in (sdl.query_type, sdl.mutation_type, sdl.subscription_type) if t]
    fields = {name: field for root in roots for name, field in root.fields.items()}
    attributed = set(FIELD_CHANNELS) | CHANNEL_ARGUMENT_FIELDS | NEUTRAL_FIELDS
    assert set(fields) == attributed - {"__typename", "__schema", "__type"}
    assert {name for name, field in fields.items() if "channel" in field.args} == (
        CHANNEL_ARGUMENT_FIELDS
    )
    assert set(FIELD_CHANNELS.values()) == {"medical", "report"}
