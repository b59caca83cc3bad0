"""The access log through HTTPS: every read of a child's protected data leaves an entry its
guardians list, on every backend.

One family per backend: Alice and Bob are the guardians, Dr House the doctor of an ACTIVE
agreement who wrote a report school A may read; Dr Quinn has no agreement. Each kind of
read, by each kind of reader, must add exactly one PERMITTED entry with the right object,
record, version and purpose; refused reads answer exactly as for a missing record and are
recorded later, once per reader, record and minute; only the guardians list the log; and
the guardians hear of reads by anyone else.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from api.services import Services
from authz.network import load_network
from domain.errors import NotFoundError
from ledger_backends.testing import backend_params, scratch_url
from tests.api_client import (
    APPROVE,
    CARD,
    CREATE_REPORT,
    Api,
    Subscriber,
    accepted_request,
    api_server,
    every_page,
    register,
    sign_and_accept,
    update_card,
)
from tests.networks import NetworkFixture, make_network

ACCESS_LOG = """
query($child: ID!, $first: Int! = 50, $after: String) {
  accessLog(childId: $child, first: $first, after: $after) {
    edges {
      cursor
      node {
        id at childId readerUid readerOrg readerRole what recordId version purpose outcome
        blockNumber
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}"""
CHILD = "query($id: ID!) { child(id: $id) { id fullName } }"
CHILDREN = "{ children { edges { node { id } } } }"
HISTORY = """
query($child: ID!, $first: Int! = 50) {
  medicalCardHistory(childId: $child, first: $first) { edges { node { version } } }
}"""
REPORT_CONTENT = "query($id: ID!) { report(id: $id) { id content { conclusion } } }"
REPORT_CONTENT_IN_FRAGMENT = """
query($id: ID!) { report(id: $id) { id ...Content } }
fragment Content on Report { content { allergies } }"""
REPORT_META = "query($id: ID!) { report(id: $id) { id status cardVersion } }"
REPORTS_CONTENT = "{ reports { edges { node { id content { conclusion } } } } }"
REPORTS_META = "{ reports { edges { node { id status } } } }"
MEDICAL_EVENTS = 'subscription { events(channel: "medical") { name subjectId } }'
REPORT_EVENTS = 'subscription { events(channel: "report") { name subjectId } }'
NOT_FOUND_CHILD = "No such child is visible to you."
# Time for a refused read's entry: the gathering delay (chaincode.refusals) and a commit.
REFUSAL_SECONDS = 10
SUBSCRIPTION_SETTLE_SECONDS = 0.3


@dataclass(frozen=True)
class Family:
    child: str
    report: str


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("read-log") / "network")


@pytest.fixture(scope="module", params=backend_params())
def api(
    request: pytest.FixtureRequest, net: NetworkFixture, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    with (
        scratch_url(request.param, tmp_path_factory.mktemp("ledger")) as url,
        api_server(net, url) as running,
    ):
        yield running


@pytest.fixture(scope="module")
def family(api: Api) -> Family:
    """Alice and Bob's child; Dr House's agreement, card version 2 and a report school A may
    read."""
    child = register(api, "alice", "Ada Martin", otherGuardians=["bob"])
    sign_and_accept(api, child)
    update_card(api, child, 1, healthGroup=2, allergies=["peanuts"])
    request = accepted_request(api, child, "school-a")
    made = api("dr-house").data(CREATE_REPORT, {"request": request, "conclusion": "Fit."})
    report = made["createReport"]["id"]
    api("alice").data(APPROVE, {"id": report, "schools": ["school-a"]})
    return Family(child, report)


def log(api: Api, family: Family, uid: str = "alice", first: int = 200) -> list[dict[str, Any]]:
    """Every entry of the child's access log, as `uid` lists it."""
    return every_page(api(uid), ACCESS_LOG, {"child": family.child, "first": first})


def new_entries(api: Api, family: Family, before: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen = {entry["id"] for entry in before}
    return [entry for entry in log(api, family) if entry["id"] not in seen]


def permitted(entries: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (e["readerUid"], e["what"], e["recordId"], e["version"], e["purpose"])
        for e in entries
        if e["outcome"] == "PERMITTED"
    ]


def wait_for(condition: Any, what: str, seconds: float = REFUSAL_SECONDS) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := condition()):
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds} s"
        time.sleep(0.1)
    return found


def test_the_doctors_card_read_for_a_report_is_recorded(api: Api, family: Family) -> None:
    assert ("dr-house", "MEDICAL_CARD", family.child, 2, "TREATMENT") in permitted(log(api, family))


CASES = [
    ("alice", CARD, "child", ("MEDICAL_CARD", "child", 2, "GUARDIAN")),
    ("bob", CARD, "child", ("MEDICAL_CARD", "child", 2, "GUARDIAN")),
    ("dr-house", CARD, "child", ("MEDICAL_CARD", "child", 2, "TREATMENT")),
    ("alice", HISTORY, "child", ("CARD_HISTORY", "child", 2, "GUARDIAN")),
    ("dr-house", HISTORY, "child", ("CARD_HISTORY", "child", 2, "TREATMENT")),
    ("bob", CHILD, "id", ("CHILD", "child", None, "GUARDIAN")),
    ("dr-house", CHILD, "id", ("CHILD", "child", None, "TREATMENT")),
    ("alice", CHILDREN, None, ("CHILD", "child", None, "GUARDIAN")),
    ("dr-house", CHILDREN, None, ("CHILD", "child", None, "TREATMENT")),
    ("alice", REPORT_CONTENT, "id", ("REPORT_CONTENT", "report", None, "GUARDIAN")),
    ("dr-house", REPORT_CONTENT, "id", ("REPORT_CONTENT", "report", None, "TREATMENT")),
    (
        "school-a-office",
        REPORT_CONTENT,
        "id",
        ("REPORT_CONTENT", "report", None, "SCHOOL_ADMISSION"),
    ),
    (
        "school-a-office",
        REPORT_CONTENT_IN_FRAGMENT,
        "id",
        ("REPORT_CONTENT", "report", None, "SCHOOL_ADMISSION"),
    ),
    ("bob", REPORTS_CONTENT, None, ("REPORT_CONTENT", "report", None, "GUARDIAN")),
    (
        "school-a-office",
        REPORTS_CONTENT,
        None,
        ("REPORT_CONTENT", "report", None, "SCHOOL_ADMISSION"),
    ),
]


@pytest.mark.parametrize(("reader", "query", "argument", "expected"), CASES)
def test_each_read_adds_one_entry_with_its_object_record_version_and_purpose(
    api: Api,
    family: Family,
    reader: str,
    query: str,
    argument: str | None,
    expected: tuple[str, str, int | None, str],
) -> None:
    what, record, version, purpose = expected
    record_id = family.child if record == "child" else family.report
    subject = family.report if what == "REPORT_CONTENT" else family.child
    before = log(api, family)
    api(reader).data(query, None if argument is None else {argument: subject})
    added = new_entries(api, family, before)
    assert permitted(added) == [(reader, what, record_id, version, purpose)]
    (entry,) = (e for e in added if e["outcome"] == "PERMITTED")
    org = {"dr-house": "hospital", "school-a-office": "school-a"}.get(reader, "parents")
    role = {"dr-house": "DOCTOR", "school-a-office": "SCHOOL"}.get(reader, "PARENT")
    assert (entry["readerOrg"], entry["readerRole"], entry["childId"]) == (org, role, family.child)
    assert entry["blockNumber"] >= 0


@pytest.mark.parametrize(("reader", "query"), [("alice", REPORT_META), ("dr-house", REPORTS_META)])
def test_a_report_read_without_its_content_is_no_read_of_the_content(
    api: Api, family: Family, reader: str, query: str
) -> None:
    before = log(api, family)
    api(reader).data(query, {"id": family.report} if "$id" in query else None)
    assert permitted(new_entries(api, family, before)) == []


def test_the_log_pages_newest_first_over_both_channels(api: Api, family: Family) -> None:
    api("dr-house").data(CARD, {"child": family.child})
    api("school-a-office").data(REPORT_CONTENT, {"id": family.report})
    whole = log(api, family)
    assert {e["what"] for e in whole} >= {"MEDICAL_CARD", "REPORT_CONTENT"}
    assert [e["id"] for e in whole] == sorted((e["id"] for e in whole), reverse=True)
    assert [e["at"] for e in whole] == sorted((e["at"] for e in whole), reverse=True)
    in_pairs = log(api, family, first=2)
    assert [e["id"] for e in in_pairs] == [e["id"] for e in whole]


def test_first_may_be_null_for_the_default_page(api: Api, family: Family) -> None:
    query = "query($child: ID!) { accessLog(childId: $child, first: null) { edges { cursor } } }"
    edges = api("alice").data(query, {"child": family.child})["accessLog"]["edges"]
    assert 0 < len(edges) <= 50


def test_a_cursor_is_good_only_for_its_own_list_and_caller(api: Api, family: Family) -> None:
    page = api("alice").data(ACCESS_LOG, {"child": family.child, "first": 1})["accessLog"]
    cursor = page["pageInfo"]["endCursor"]
    error = api("bob").error(ACCESS_LOG, {"child": family.child, "after": cursor})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize("uid", ["dr-house", "dr-quinn", "hospital-admin"])
def test_only_guardians_list_the_log_others_are_told_there_is_no_such_child(
    api: Api, family: Family, uid: str
) -> None:
    for child in (family.child, "child-00000000000000000000000000000000"):
        error = api(uid).error(ACCESS_LOG, {"child": child})
        assert (error["extensions"]["code"], error["message"]) == ("NOT_FOUND", NOT_FOUND_CHILD)


def test_a_school_gets_the_answer_it_gets_for_the_child_itself(api: Api, family: Family) -> None:
    log_error = api("school-a-office").error(ACCESS_LOG, {"child": family.child})
    child_error = api("school-a-office").error(CHILD, {"id": family.child})
    assert log_error["extensions"] == child_error["extensions"] == {"code": "FORBIDDEN"}
    assert log_error["message"] == child_error["message"]


def test_bob_lists_the_same_log_as_alice(api: Api, family: Family) -> None:
    assert [e["id"] for e in log(api, family, "bob")] == [e["id"] for e in log(api, family)]


def test_no_entry_carries_anything_that_was_read(api: Api, family: Family) -> None:
    text = str(log(api, family))
    for word in ("Ada Martin", "peanuts", "Fit.", "2019-04-02"):
        assert word not in text


def test_a_refused_read_answers_as_for_a_missing_child_and_is_recorded_once_a_minute(
    api: Api, family: Family
) -> None:
    quinn = api("dr-quinn")
    missing = "child-00000000000000000000000000000000"
    for _ in range(5):
        assert quinn.error(CARD, {"child": family.child}) == quinn.error(CARD, {"child": missing})

    def refusals() -> list[dict[str, Any]]:
        return [
            e
            for e in log(api, family)
            if e["outcome"] == "REFUSED" and e["readerUid"] == "dr-quinn"
        ]

    (entry,) = wait_for(refusals, "the refused read's entry")
    assert (entry["what"], entry["recordId"], entry["version"], entry["purpose"]) == (
        "MEDICAL_CARD",
        family.child,
        None,
        "TREATMENT",
    )
    # Again within the minute: recorded (the chain grows) but no further entry, unless the
    # minute has just turned.
    assert api.services is not None
    medical = api.services.channels["medical"]
    height = medical.tip().height
    quinn.error(CARD, {"child": family.child})
    wait_for(lambda: medical.tip().height > height, "the second refusal's transaction")
    again = refusals()
    minutes = {e["at"][:16] for e in again}
    assert len(again) == len(minutes) <= 2


def test_a_refused_report_content_read_of_a_school_is_recorded(api: Api, family: Family) -> None:
    errors = api("school-b-office").error(REPORT_CONTENT, {"id": family.report})
    assert errors["extensions"]["code"] == "NOT_FOUND"

    def found() -> list[dict[str, Any]]:
        return [
            e
            for e in log(api, family)
            if (e["readerUid"], e["outcome"], e["what"])
            == ("school-b-office", "REFUSED", "REPORT_CONTENT")
        ]

    (entry,) = wait_for(found, "the school's refused read")
    assert (entry["recordId"], entry["purpose"], entry["readerOrg"]) == (
        family.report,
        "SCHOOL_ADMISSION",
        "school-b",
    )


def test_guardians_hear_of_reads_by_others_not_by_themselves(api: Api, family: Family) -> None:
    with (
        Subscriber(api, "alice", MEDICAL_EVENTS) as medical,
        Subscriber(api, "bob", REPORT_EVENTS) as report,
    ):
        time.sleep(SUBSCRIPTION_SETTLE_SECONDS)
        api("alice").data(CARD, {"child": family.child})
        api("bob").data(CARD, {"child": family.child})
        assert medical.silent_for(1.0)
        api("dr-house").data(CARD, {"child": family.child})
        assert medical.event("AccessRecorded", family.child)["subjectId"] == family.child
        api("school-a-office").data(REPORT_CONTENT, {"id": family.report})
        assert report.event("AccessRecorded", family.child)["name"] == "AccessRecorded"


# -- what a refused caller can measure ------------------------------------------------------

SLOW_COMMIT_MS = 300


@pytest.fixture(scope="module")
def slow_commits(net: NetworkFixture) -> Iterator[Api]:
    """A server whose every block takes SLOW_COMMIT_MS longer to write (as a slow disk would)."""
    with api_server(net, "memory://") as running:
        assert running.services is not None
        for channel in running.services.channels.values():
            writer = channel.committer.writer
            write = writer.commit

            def slow_write(proposals: Any, write: Any = write) -> Any:
                time.sleep(SLOW_COMMIT_MS / 1000)  # in the committer's thread
                return write(proposals)

            writer.commit = slow_write  # type: ignore[method-assign]
        yield running


def _median_seconds(api: Api, uid: str, child: str, tries: int = 7) -> float:
    times = []
    for _ in range(tries):
        started = time.perf_counter()
        api(uid).execute(CARD, {"child": child})
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def test_a_refused_read_does_not_wait_for_its_entry(slow_commits: Api) -> None:
    """A permitted read waits for its entry's commit; a refused one answers at once, whether
    the child exists or not."""
    api = slow_commits
    child = register(api, "alice", "Ada Martin")
    permitted_read = _median_seconds(api, "alice", child, tries=3)
    refused_existing = _median_seconds(api, "dr-quinn", child)
    refused_missing = _median_seconds(api, "dr-quinn", "child-00000000000000000000000000000000")
    assert permitted_read >= SLOW_COMMIT_MS / 1000
    assert refused_existing < SLOW_COMMIT_MS / 3000
    assert refused_missing < SLOW_COMMIT_MS / 3000


def test_the_benchmarks_switch_leaves_reads_unrecorded(net: NetworkFixture) -> None:
    """`Services.open(..., access_log=False)`, for benchmarks only: reads write nothing."""
    people = net.identities()
    services = Services.open(load_network(net.directory), "memory://", access_log=False)
    gateway, medical = services.gateway, services.channels["medical"]

    async def story() -> None:
        alice = people["alice"]
        child = await gateway.submit(
            alice, "medical", "registerChild", {"fullName": "Ada", "birthDate": "2019-04-02"}
        )
        height = medical.tip().height
        await gateway.evaluate(alice, "medical", "readCard", {"childId": child["id"]})
        with pytest.raises(NotFoundError):
            quinn = people["dr-quinn"]
            await gateway.evaluate(quinn, "medical", "readCard", {"childId": child["id"]})
        await gateway.settle()
        assert medical.tip().height == height
        assert (await gateway.list_access_log(alice, child["id"]))["entries"] == []
        await services.close()

    asyncio.run(story())
