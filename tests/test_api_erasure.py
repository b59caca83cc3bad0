"""eraseChild over mutual TLS: a guardian erases a child's records, confirming its full name.

Afterwards every read of the child answers NOT_FOUND: its guardians are told when the
records were erased, everyone else is answered as for a child that never existed. The
erasure itself stays in the access log (outcome ERASED). Nobody but a guardian can
erase, and the refusal says no more than for a missing child.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.api_client import (
    CARD,
    CHILD,
    HISTORY,
    Api,
    api_server,
    nodes,
    register,
    sign_and_accept,
    update_card,
)
from tests.networks import NetworkFixture, make_network

ERASE = """
mutation($child: ID!, $confirm: String!) {
  eraseChild(childId: $child, confirm: $confirm) { childId erasedAt channels }
}"""
ACCESS_LOG = """
query($child: ID!) {
  accessLog(childId: $child) {
    edges { node { readerUid readerRole what recordId purpose outcome version } }
  }
}"""
CHILDREN = "{ children { edges { node { id } } } }"
HEIGHTS = "{ channels { name height } }"
MISSING = "ch-does-not-exist"
NO_SUCH_CHILD = "No such child is visible to you."


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("api-erasure") / "network")


@pytest.fixture(scope="module")
def api(net: NetworkFixture) -> Iterator[Api]:
    with api_server(net, "memory://") as running:
        yield running


def _child_with_a_card(api: Api, name: str) -> str:
    """Alice's child, Bob its other guardian, Dr House treating it, a card written."""
    child = register(api, "alice", name, otherGuardians=["bob"])
    sign_and_accept(api, child)
    update_card(api, child, 1, allergies=["latex"])
    return child


def _heights(api: Api) -> list[tuple[str, int]]:
    return [(c["name"], c["height"]) for c in api("alice").data(HEIGHTS)["channels"]]


def test_a_guardian_erases_a_child_with_its_exact_name(api: Api) -> None:
    child = _child_with_a_card(api, "Cleo Martin")
    api("alice").data(CARD, {"child": child})
    api("dr-house").data(CHILD, {"id": child})
    before = nodes(api("alice").data(ACCESS_LOG, {"child": child})["accessLog"])
    assert {(e["readerUid"], e["what"], e["outcome"]) for e in before} >= {
        ("alice", "MEDICAL_CARD", "PERMITTED"),
        ("dr-house", "CHILD", "PERMITTED"),
    }
    receipt = api("alice").data(ERASE, {"child": child, "confirm": "Cleo Martin"})["eraseChild"]
    assert receipt["childId"] == child
    assert receipt["channels"] == ["medical", "report"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)", receipt["erasedAt"])
    erased_on = f"This child's records were erased on {receipt['erasedAt'][:10]}."

    # The guardians are told when; a doctor who treated the child, as anyone else, is
    # answered as for a child that never existed.
    for guardian in ("alice", "bob"):
        for query in (CHILD, CARD, HISTORY):
            error = api(guardian).error(query, {"id": child, "child": child})
            assert (error["extensions"]["code"], error["message"]) == ("NOT_FOUND", erased_on)
    for outsider in ("dr-house", "dr-quinn"):
        for query in (CHILD, CARD, HISTORY):
            error = api(outsider).error(query, {"id": child, "child": child})
            assert (error["extensions"]["code"], error["message"]) == ("NOT_FOUND", NO_SUCH_CHILD)
    for uid in ("alice", "bob", "dr-house"):
        assert child not in [c["id"] for c in nodes(api(uid).data(CHILDREN)["children"])]

    # The access log keeps the erasure, for the guardians only: one entry per channel it
    # was recorded on.
    entry = {
        "readerUid": "alice",
        "readerRole": "PARENT",
        "what": "CHILD",
        "recordId": child,
        "purpose": "GUARDIAN",
        "outcome": "ERASED",
        "version": None,
    }
    for guardian in ("alice", "bob"):
        log = nodes(api(guardian).data(ACCESS_LOG, {"child": child})["accessLog"])
        assert log[: len(receipt["channels"])] == [entry] * len(receipt["channels"])
        # The reads before the erasure were sealed with the child's keys: gone with them.
        assert [e for e in log if e["outcome"] != "ERASED"] == []
    assert api("dr-house").code(ACCESS_LOG, {"child": child}) == "NOT_FOUND"


def test_a_name_not_exactly_the_childs_erases_nothing(api: Api) -> None:
    child = _child_with_a_card(api, "Dora Martin")
    before = _heights(api)
    for confirm in ("dora martin", "Dora Martin ", "Dora", ""):
        error = api("alice").error(ERASE, {"child": child, "confirm": confirm})
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert "full name" in error["message"]
    assert _heights(api) == before
    assert api("alice").data(CHILD, {"id": child})["child"]["fullName"] == "Dora Martin"
    assert api("alice").data(CARD, {"child": child})["medicalCard"]["allergies"] == ["latex"]


@pytest.mark.parametrize(
    "uid", ["dr-house", "dr-quinn", "hospital-admin", "school-a-office", "bob-unrelated"]
)
def test_only_a_guardian_can_erase_and_others_learn_nothing(api: Api, uid: str) -> None:
    child = register(api, "alice", "Finn Martin")
    sign_and_accept(api, child)
    caller = "bob" if uid == "bob-unrelated" else uid
    before = _heights(api)
    refused = api(caller).error(ERASE, {"child": child, "confirm": "Finn Martin"})
    missing = api(caller).error(ERASE, {"child": MISSING, "confirm": "Finn Martin"})
    assert (refused["extensions"]["code"], refused["message"]) == ("NOT_FOUND", NO_SUCH_CHILD)
    assert (missing["extensions"]["code"], missing["message"]) == ("NOT_FOUND", NO_SUCH_CHILD)
    assert _heights(api) == before
    assert api("alice").data(CHILD, {"id": child})["child"]["fullName"] == "Finn Martin"
