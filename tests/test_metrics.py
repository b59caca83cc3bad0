"""/metrics over real mutual TLS: request series carry no client-chosen string, an
administrator outside the hospital sees only its own organisation's requests on its channels,
and a scrape waiting on a store that stopped answering holds up no other request."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar
from urllib.parse import urlsplit

import httpx
import pytest
from graphql import build_schema
from prometheus_client.parser import text_string_to_metric_families

from api.metrics import CHANNEL_ARGUMENT_FIELDS, FIELD_CHANNELS, HEIGHT_WAIT_SECONDS, NEUTRAL_FIELDS
from api.schema import schema
from authz import provision
from ledger_backends.testing import needs_backend, scratch_url
from tests.api_client import Api, api_server, register, sign_and_accept
from tests.networks import NetworkFixture, make_network
from tests.reliability.tcp_proxy import TcpProxy

Labels = tuple[str, str, str, str]  # org, channel, field, outcome
CHOSEN = "zqxChosen"  # in every client-chosen string below: it must never reach /metrics
CARD_BY_NAME = "query MedicalCard($c: ID!) { medicalCard(childId: $c) { version } }"
HISTORY_BY_NAME = """
query CardHistory($c: ID!) { medicalCardHistory(childId: $c) { edges { node { version } } } }"""
# A request that needs no store, answered in milliseconds by a worker whose loop is free.
PROMPTLY_SECONDS = 0.5
# A store call gives up within about 3.5 s (ledger_backends.postgres), so reads recover by then.
RECOVERY_SECONDS = 10.0
T = TypeVar("T")


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
    alice.post(f'{{ blocks(channel: "{CHOSEN}Channel") {{ edges {{ cursor }} }} }}')
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
        api(school).data("{ admissionRequests { edges { cursor } } reports { edges { cursor } } }")
    api("school-a-office").post('{ blocks(channel: "medical") { edges { cursor } } }')

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


def heights_seen(response: httpx.Response) -> dict[str, float]:
    """The block height of each channel in a /metrics answer."""
    assert response.status_code == 200
    return {
        sample.labels["channel"]: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == "healthledger_block_height"
    }


def timed(call: Callable[[], T]) -> tuple[T, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def through_proxy(url: str, proxy: TcpProxy) -> str:
    """The PostgreSQL ledger URL `url`, reaching its server through `proxy`."""
    parts = urlsplit(url)
    user, at, _ = parts.netloc.rpartition("@")
    return parts._replace(netloc=f"{user}{at}127.0.0.1:{proxy.port}").geturl()


@needs_backend("postgresql")
def test_a_scrape_waiting_on_a_silent_store_holds_up_no_other_request(net: NetworkFixture) -> None:
    with scratch_url("postgresql") as url:
        server = urlsplit(url)
        proxy = TcpProxy((server.hostname or "127.0.0.1", server.port or 5432))
        proxy.start()
        try:
            with api_server(net, through_proxy(url, proxy)) as api:

                def scrape() -> httpx.Response:
                    return api.get("/metrics", uid="hospital-admin")

                assert heights_seen(scrape()) == {"medical": 0, "report": 0}
                proxy.cut("blackhole")  # PostgreSQL stops answering, as behind a partition
                with ThreadPoolExecutor(max_workers=1) as pool:
                    waiting = pool.submit(timed, scrape)
                    time.sleep(0.3)
                    assert not waiting.done(), "the scrape did not wait for the store"
                    _, seconds = timed(lambda: api("alice").data("{ me { uid } }"))
                    response, scrape_seconds = waiting.result()
                assert seconds < PROMPTLY_SECONDS
                assert heights_seen(response) == {}
                assert HEIGHT_WAIT_SECONDS <= scrape_seconds < HEIGHT_WAIT_SECONDS + 1
                proxy.restore()
                # A read begun during the outage may still be failing; later scrapes read anew.
                deadline = time.monotonic() + RECOVERY_SECONDS
                while (heights := heights_seen(scrape())) != {"medical": 0, "report": 0}:
                    assert time.monotonic() < deadline, f"heights after the outage: {heights}"
                    time.sleep(0.1)
        finally:
            proxy.close()
