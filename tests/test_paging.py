"""Paged lists over real mutual TLS: a school with 1,000 admission requests reads them page by
page, newest first, each exactly once; cursors work only for the list, caller and arguments
they were given for, on any server holding the network's TLS key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from api.cursors import CURSOR_REFUSED
from api.services import Services
from authz.network import load_network
from tests.api_client import (
    ACCEPT_ADMISSION,
    Api,
    GraphQLClient,
    api_server,
    nodes,
)
from tests.networks import NetworkFixture, make_network

ADMISSIONS = 1_000
WRITERS = 16
ACCEPTED = 10

PAGE = """
query($first: Int!, $after: String, $status: AdmissionStatus) {
  admissionRequests(first: $first, after: $after, status: $status) {
    edges { cursor node { id childId createdAt status } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""
BLOCKS = """
query($first: Int!, $after: String) {
  blocks(channel: "report", first: $first, after: $after) {
    edges { node { number } }
    pageInfo { hasNextPage endCursor }
  }
}"""
CHILDREN_AFTER = "query($after: String) { children(after: $after) { edges { cursor } } }"
REPORTS_AFTER = "query($after: String) { reports(after: $after) { edges { cursor } } }"
HEIGHTS = "{ channels { name height } }"


@dataclass(frozen=True)
class School:
    """A network where alice applied to school-a for 1,000 children; ACCEPTED of them accepted."""

    api: Api
    net: NetworkFixture
    ledger_url: str
    admissions: frozenset[str]
    accepted: frozenset[str]


async def _applications(net: NetworkFixture, ledger_url: str) -> list[str]:
    """ADMISSIONS children registered by alice and applied to school-a, through the gateway
    before the server starts: the tests read them over mutual TLS, and writing them as 2,000
    HTTPS requests took most of this module's time. The children are registered WRITERS at a
    time; the applications one at a time, so that each is a block of its own and the report
    channel's block list has several pages."""
    alice = net.identities()["alice"]
    services = Services.open(load_network(net.directory), ledger_url)
    gateway = services.gateway
    writers = asyncio.Semaphore(WRITERS)

    async def register(n: int) -> str:
        birth = {"fullName": f"Pupil {n}", "birthDate": "2019-04-02", "sex": None}
        async with writers:
            child = await gateway.submit(
                alice, "medical", "registerChild", {**birth, "otherGuardians": None}
            )
        return str(child["id"])

    try:
        children = await asyncio.gather(*(register(n) for n in range(ADMISSIONS)))
        made = []
        for child in children:
            admission = await gateway.create_admission_request(alice, child, "school-a")
            made.append(str(admission["id"]))
        return made
    finally:
        await services.close()


@pytest.fixture(scope="module")
def school(tmp_path_factory: pytest.TempPathFactory) -> Iterator[School]:
    directory = tmp_path_factory.mktemp("paging")
    net = make_network(directory / "net")
    ledger_url = f"sqlite:///{directory / 'ledger.db'}"
    admissions = frozenset(asyncio.run(_applications(net, ledger_url)))
    assert len(admissions) == ADMISSIONS
    with api_server(net, ledger_url) as api:
        accepted = frozenset(sorted(admissions)[:ACCEPTED])
        for admission in accepted:
            api("school-a-office").data(ACCEPT_ADMISSION, {"id": admission})
        yield School(api, net, ledger_url, admissions, accepted)


def _pages(client: GraphQLClient, first: int, **variables: Any) -> list[dict[str, Any]]:
    """Every page of school-a's admission requests, `first` at a time, in order."""
    pages = []
    after = None
    while True:
        page = client.data(PAGE, {"first": first, "after": after, **variables})
        pages.append(page["admissionRequests"])
        info = page["admissionRequests"]["pageInfo"]
        if not info["hasNextPage"]:
            return pages
        after = info["endCursor"]


@pytest.mark.parametrize("first", [200, 137])
def test_every_admission_request_is_on_exactly_one_page_newest_first(
    school: School, first: int
) -> None:
    pages = _pages(school.api("school-a-office"), first)
    assert len(pages) == -(-ADMISSIONS // first)
    assert all(len(page["edges"]) == first for page in pages[:-1])
    assert 0 < len(pages[-1]["edges"]) <= first
    listed = [node for page in pages for node in nodes(page)]
    ids = [node["id"] for node in listed]
    assert len(ids) == len(set(ids)) == ADMISSIONS, "no duplicates"
    assert set(ids) == school.admissions, "exactly the set"
    created = [node["createdAt"] for node in listed]
    assert created == sorted(created, reverse=True), "newest first"
    for page in pages:
        edges, info = page["edges"], page["pageInfo"]
        assert (info["startCursor"], info["endCursor"]) == (edges[0]["cursor"], edges[-1]["cursor"])
        assert info["hasPreviousPage"] is False


def test_a_page_is_fifty_unless_asked_and_two_hundred_at_most(school: School) -> None:
    office = school.api("school-a-office")
    default = office.data("{ admissionRequests { edges { cursor } } }")["admissionRequests"]
    assert len(default["edges"]) == 50
    assert len(office.data(PAGE, {"first": 200})["admissionRequests"]["edges"]) == 200
    for first in (201, 0, -1, 10_000):
        error = office.error(PAGE, {"first": first})
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert error["message"] == "first must be a whole number from 1 to 200."


def test_a_filtered_list_pages_through_its_own_items_only(school: School) -> None:
    pages = _pages(school.api("school-a-office"), 3, status="ACCEPTED")
    assert [len(page["edges"]) for page in pages] == [3, 3, 3, 1]
    listed = [node for page in pages for node in nodes(page)]
    assert {node["id"] for node in listed} == school.accepted
    assert {node["status"] for node in listed} == {"ACCEPTED"}


def _refused(client: GraphQLClient, query: str, variables: dict[str, Any]) -> None:
    body = client.execute(query, variables)
    assert body["data"] is None
    assert [(e["message"], e["extensions"]) for e in body["errors"]] == [
        (CURSOR_REFUSED, {"code": "BAD_USER_INPUT"})
    ]


def test_a_cursor_altered_anywhere_is_refused(school: School) -> None:
    office = school.api("school-a-office")
    cursor = office.data(PAGE, {"first": 5})["admissionRequests"]["pageInfo"]["endCursor"]
    for index in (0, len(cursor) // 2, len(cursor) - 1):
        flipped = "A" if cursor[index] != "A" else "B"
        altered = cursor[:index] + flipped + cursor[index + 1 :]
        _refused(office, PAGE, {"first": 5, "after": altered})
    for altered in (cursor[:-4], cursor + "AAAA", "", "not a cursor"):
        _refused(office, PAGE, {"first": 5, "after": altered})


def test_a_cursor_is_refused_to_another_caller_list_or_filter(school: School) -> None:
    office = school.api("school-a-office")
    cursor = office.data(PAGE, {"first": 5})["admissionRequests"]["pageInfo"]["endCursor"]
    # Another school, with the same cursor: refused alike, never told the list is not its own.
    _refused(school.api("school-b-office"), PAGE, {"first": 5, "after": cursor})
    # The same school, another list or the same list filtered.
    _refused(office, REPORTS_AFTER, {"after": cursor})
    _refused(office, PAGE, {"first": 5, "after": cursor, "status": "PENDING"})
    # A parent's own list: another parent, or another of her lists, cannot continue it.
    alice = school.api("alice")
    mine = alice.data(PAGE, {"first": 5})["admissionRequests"]["pageInfo"]["endCursor"]
    _refused(school.api("bob"), PAGE, {"first": 5, "after": mine})
    _refused(alice, CHILDREN_AFTER, {"after": mine})
    assert len(alice.data(PAGE, {"first": 5, "after": mine})["admissionRequests"]["edges"]) == 5


def test_another_server_on_the_same_network_continues_a_list(school: School) -> None:
    office = school.api("school-a-office")
    first = office.data(PAGE, {"first": 100})["admissionRequests"]
    after = first["pageInfo"]["endCursor"]
    here = office.data(PAGE, {"first": 100, "after": after})
    with api_server(school.net, school.ledger_url) as another:
        there = another("school-a-office").data(PAGE, {"first": 100, "after": after})
    assert there == here
    assert not {n["id"] for n in nodes(first)} & {
        n["id"] for n in nodes(there["admissionRequests"])
    }


def test_the_block_list_pages_newest_first_through_every_block(school: School) -> None:
    office = school.api("school-a-office")
    height = {c["name"]: c["height"] for c in office.data(HEIGHTS)["channels"]}["report"]
    numbers: list[int] = []
    after = None
    while True:
        page = office.data(BLOCKS, {"first": 200, "after": after})["blocks"]
        assert 0 < len(page["edges"]) <= 200
        numbers += [node["number"] for node in nodes(page)]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert numbers == list(range(height - 1, -1, -1))
