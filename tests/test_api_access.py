"""The "who may do what" rules (docs/security.md), refusal by refusal, over outsiders.

The world: Alice's child Cleo with Dr House under an ACTIVE agreement, admitted
by school A, which asked for a report that Dr House wrote (READY, unapproved);
her child Dan, with a PENDING agreement and a PENDING application to school A;
her child Eve, whose report she approved for school A only. Bob is an unrelated
parent, Dr Quinn a doctor without agreement, school B the wrong school, and the
hospital admin has no relationship with any child.

Objects a caller may not see are NOT_FOUND (admitting they exist would leak);
callers whose role can never do a thing, or whose organisation is not on the
channel, are FORBIDDEN.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import pytest

from tests.api_client import (
    ACCEPT,
    ACCEPT_ADMISSION,
    APPROVE,
    CREATE_ADMISSION,
    CREATE_REPORT,
    CREATE_REPORT_REQUEST,
    REJECT_ADMISSION,
    REPORT,
    REPORT_META,
    REVOKE_AGREEMENT,
    REVOKE_PERMISSION,
    SIGN,
    UPDATE_CARD,
    Api,
    admission,
    api_server,
    nodes,
    ready_report,
    register,
    sign_and_accept,
    update_card,
)
from tests.networks import NetworkFixture, make_network

CHILD = "query($id: ID!) { child(id: $id) { id fullName } }"
CARD = "query($id: ID!) { medicalCard(childId: $id) { version allergies } }"
HISTORY = "query($id: ID!) { medicalCardHistory(childId: $id) { edges { node { version } } } }"
HEIGHTS = "{ channels { name height } }"

UNRELATED = ["bob", "dr-quinn", "school-a-office", "school-b-office", "hospital-admin"]


@dataclass(frozen=True)
class World:
    cleo: str
    agreement: str
    dan: str
    pending_agreement: str
    admission: str
    pending_admission: str
    request: str
    report: str
    eve: str
    approved: str
    heights: tuple[tuple[str, int], ...]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("api-access") / "network")


@pytest.fixture(scope="module")
def api(net: NetworkFixture) -> Iterator[Api]:
    with api_server(net, "memory://") as running:
        yield running


@pytest.fixture(scope="module")
def world(api: Api) -> World:
    cleo = register(api, "alice", "Cleo Martin")
    agreement = sign_and_accept(api, cleo)
    update_card(api, cleo, 1, allergies=["latex"])
    admitted = admission(api, cleo, "school-a")
    api("school-a-office").data(ACCEPT_ADMISSION, {"id": admitted})
    request = api("school-a-office").data(CREATE_REPORT_REQUEST, {"admission": admitted})[
        "createReportRequest"
    ]["id"]
    report = api("dr-house").data(CREATE_REPORT, {"request": request, "conclusion": "Fit."})[
        "createReport"
    ]["id"]
    dan = register(api, "alice", "Dan Martin")
    pending = api("alice").data(SIGN, {"child": dan, "doctor": "dr-house"})["signAgreement"]["id"]
    eve, approved = ready_report(api)
    api("alice").data(APPROVE, {"id": approved, "schools": ["school-a"]})
    pending_admission = admission(api, dan, "school-a")
    heights = api("alice").data(HEIGHTS)["channels"]
    return World(
        cleo=cleo,
        agreement=agreement,
        dan=dan,
        pending_agreement=pending,
        admission=admitted,
        pending_admission=pending_admission,
        request=request,
        report=report,
        eve=eve,
        approved=approved,
        heights=tuple((c["name"], c["height"]) for c in heights),
    )


def _fill(variables: dict[str, Any], world: World) -> dict[str, Any]:
    """Variables with "{name}" placeholders replaced by the world's ids."""
    ids = {f"{{{k}}}": v for k, v in asdict(world).items() if isinstance(v, str)}
    return {k: ids.get(v, v) if isinstance(v, str) else v for k, v in variables.items()}


def case(
    uid: str, query: str, variables: dict[str, Any], code: str, name: str
) -> Any:  # a pytest ParameterSet
    return pytest.param(uid, query, variables, code, id=f"{name}-by-{uid}")


# Child, MedicalCard, history: read by its guardians and the doctor of an ACTIVE agreement.
MEDICAL_READS = [
    case(uid, query, {"id": "{cleo}"}, code, name)
    for name, query in (("child", CHILD), ("card", CARD), ("history", HISTORY))
    for uid, code in (
        ("bob", "NOT_FOUND"),
        ("dr-quinn", "NOT_FOUND"),
        ("school-a-office", "FORBIDDEN"),
        ("school-b-office", "FORBIDDEN"),
        ("hospital-admin", "NOT_FOUND"),
    )
] + [
    case("dr-house", query, {"id": "{dan}"}, "NOT_FOUND", f"{name}-under-pending-agreement")
    for name, query in (("child", CHILD), ("card", CARD))
]

# The card is written by the doctor of an ACTIVE agreement only.
CARD_WRITES = [
    case(uid, UPDATE_CARD, {"child": child, "version": 2, "patch": {"notes": "x"}}, code, name)
    for uid, child, code, name in (
        ("alice", "{cleo}", "FORBIDDEN", "card-update"),
        ("bob", "{cleo}", "FORBIDDEN", "card-update"),
        ("dr-quinn", "{cleo}", "NOT_FOUND", "card-update"),
        ("school-a-office", "{cleo}", "FORBIDDEN", "card-update"),
        ("hospital-admin", "{cleo}", "FORBIDDEN", "card-update"),
        ("dr-house", "{dan}", "NOT_FOUND", "card-update-under-pending-agreement"),
    )
]

# Agreements: a guardian signs and revokes, the named doctor accepts.
AGREEMENT_WRITES = [
    case("bob", SIGN, {"child": "{cleo}", "doctor": "dr-quinn"}, "NOT_FOUND", "sign"),
    case("dr-quinn", SIGN, {"child": "{cleo}", "doctor": "dr-quinn"}, "FORBIDDEN", "sign"),
    case("school-a-office", SIGN, {"child": "{cleo}", "doctor": "dr-house"}, "FORBIDDEN", "sign"),
    case("hospital-admin", SIGN, {"child": "{cleo}", "doctor": "dr-house"}, "FORBIDDEN", "sign"),
    case("dr-quinn", ACCEPT, {"id": "{pending_agreement}"}, "NOT_FOUND", "accept"),
    case("alice", ACCEPT, {"id": "{pending_agreement}"}, "FORBIDDEN", "accept"),
    case("hospital-admin", ACCEPT, {"id": "{pending_agreement}"}, "FORBIDDEN", "accept"),
    case("school-a-office", ACCEPT, {"id": "{pending_agreement}"}, "FORBIDDEN", "accept"),
    case("dr-house", REVOKE_AGREEMENT, {"id": "{agreement}"}, "FORBIDDEN", "revoke"),
    case("bob", REVOKE_AGREEMENT, {"id": "{agreement}"}, "NOT_FOUND", "revoke"),
    case("school-b-office", REVOKE_AGREEMENT, {"id": "{agreement}"}, "FORBIDDEN", "revoke"),
]

# Admission requests: a guardian creates, the addressed school decides.
ADMISSION_WRITES = [
    case("bob", CREATE_ADMISSION, {"child": "{cleo}", "school": "school-b"}, "NOT_FOUND", "apply"),
    case(
        "dr-house",
        CREATE_ADMISSION,
        {"child": "{cleo}", "school": "school-b"},
        "FORBIDDEN",
        "apply",
    ),
    case(
        "school-b-office",
        CREATE_ADMISSION,
        {"child": "{cleo}", "school": "school-b"},
        "FORBIDDEN",
        "apply",
    ),
    case("school-b-office", ACCEPT_ADMISSION, {"id": "{pending_admission}"}, "NOT_FOUND", "admit"),
    case("alice", ACCEPT_ADMISSION, {"id": "{pending_admission}"}, "FORBIDDEN", "admit"),
    case("dr-house", ACCEPT_ADMISSION, {"id": "{pending_admission}"}, "FORBIDDEN", "admit"),
    case(
        "school-b-office",
        REJECT_ADMISSION,
        {"id": "{pending_admission}", "reason": "No."},
        "NOT_FOUND",
        "reject",
    ),
    case(
        "bob",
        REJECT_ADMISSION,
        {"id": "{pending_admission}", "reason": "No."},
        "FORBIDDEN",
        "reject",
    ),
]

# Report requests: the school of the ACCEPTED admission creates them.
REQUEST_WRITES = [
    case(
        "school-b-office", CREATE_REPORT_REQUEST, {"admission": "{admission}"}, "NOT_FOUND", "ask"
    ),
    case("alice", CREATE_REPORT_REQUEST, {"admission": "{admission}"}, "FORBIDDEN", "ask"),
    case("dr-house", CREATE_REPORT_REQUEST, {"admission": "{admission}"}, "FORBIDDEN", "ask"),
]

# Reports: a doctor with an ACTIVE agreement writes; guardians approve and withdraw.
REPORT_CASES = [
    case(
        "dr-quinn", CREATE_REPORT, {"request": "{request}", "conclusion": "x"}, "NOT_FOUND", "write"
    ),
    case("alice", CREATE_REPORT, {"request": "{request}", "conclusion": "x"}, "FORBIDDEN", "write"),
    case(
        "school-a-office",
        CREATE_REPORT,
        {"request": "{request}", "conclusion": "x"},
        "FORBIDDEN",
        "write",
    ),
    *[
        case(uid, REPORT_META, {"id": "{report}"}, "NOT_FOUND", "read-report")
        for uid in ("bob", "dr-quinn", "school-b-office", "hospital-admin")
    ],
    case("school-b-office", REPORT_META, {"id": "{approved}"}, "NOT_FOUND", "read-other-schools"),
    case("dr-house", APPROVE, {"id": "{report}", "schools": ["school-a"]}, "FORBIDDEN", "approve"),
    case("bob", APPROVE, {"id": "{report}", "schools": ["school-a"]}, "NOT_FOUND", "approve"),
    case(
        "school-a-office",
        APPROVE,
        {"id": "{report}", "schools": ["school-a"]},
        "FORBIDDEN",
        "approve",
    ),
    case(
        "bob",
        REVOKE_PERMISSION,
        {"id": "{approved}", "school": "school-a"},
        "NOT_FOUND",
        "withdraw",
    ),
    case(
        "dr-house",
        REVOKE_PERMISSION,
        {"id": "{approved}", "school": "school-a"},
        "FORBIDDEN",
        "withdraw",
    ),
    case(
        "school-a-office",
        REVOKE_PERMISSION,
        {"id": "{approved}", "school": "school-a"},
        "FORBIDDEN",
        "withdraw",
    ),
]

# Channels, blocks, verification: members of the channel's organisations only.
CHANNEL_CASES = [
    case(uid, query, {}, "FORBIDDEN", name)
    for uid in ("school-a-office", "school-b-office")
    for name, query in (
        ("medical-blocks", '{ blocks(channel: "medical") { edges { node { number } } } }'),
        ("medical-verify", '{ verifyChannel(channel: "medical") { ok } }'),
        ("children", "{ children { edges { node { id } } } }"),
        ("agreements", "{ agreements { edges { node { id } } } }"),
    )
]


@pytest.mark.parametrize(
    ("uid", "query", "variables", "code"),
    MEDICAL_READS
    + CARD_WRITES
    + AGREEMENT_WRITES
    + ADMISSION_WRITES
    + REQUEST_WRITES
    + REPORT_CASES
    + CHANNEL_CASES,
)
def test_a_caller_outside_the_relationship_is_refused(
    api: Api, world: World, uid: str, query: str, variables: dict[str, Any], code: str
) -> None:
    error = api(uid).error(query, _fill(variables, world))
    assert error["extensions"]["code"] == code, error


LISTS = {
    field: f"{{ {field} {{ edges {{ node {{ id }} }} pageInfo {{ hasNextPage endCursor }} }} }}"
    for field in ("children", "agreements", "admissionRequests", "reportRequests", "reports")
}
EMPTY_PAGE = {"edges": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}


@pytest.mark.parametrize(
    ("uid", "field"),
    [
        (uid, field)
        for uid in ("bob", "dr-quinn", "hospital-admin", "school-b-office")
        for field in LISTS
        # Schools are FORBIDDEN the medical channel's lists altogether (CHANNEL_CASES).
        if not (uid.startswith("school") and field in ("children", "agreements"))
    ],
)
def test_a_caller_outside_every_relationship_lists_nothing(
    api: Api, world: World, uid: str, field: str
) -> None:
    assert api(uid).data(LISTS[field]) == {field: EMPTY_PAGE}


def test_a_school_reads_report_content_only_while_approved_for_it(api: Api, world: World) -> None:
    before = api("school-a-office").execute(REPORT, {"id": world.report})
    assert before["data"]["report"]["content"] is None
    assert [(e["path"], e["extensions"]["code"]) for e in before["errors"]] == [
        (["report", "content"], "FORBIDDEN")
    ]
    approved = api("school-a-office").data(REPORT, {"id": world.approved})["report"]
    assert approved["content"]["allergies"] == ["pollen"]


def test_the_wrong_school_sees_none_of_another_schools_admissions(api: Api, world: World) -> None:
    listed = api("school-b-office").data(
        "{ admissionRequests { edges { node { id } } } reportRequests { edges { node { id } } } }"
    )
    assert listed == {"admissionRequests": {"edges": []}, "reportRequests": {"edges": []}}
    mine = api("school-a-office").data(LISTS["admissionRequests"])["admissionRequests"]
    assert {world.admission, world.pending_admission} <= {a["id"] for a in nodes(mine)}


def test_a_doctor_sees_report_requests_only_for_children_under_active_agreement(
    api: Api, world: World
) -> None:
    mine = api("dr-house").data(LISTS["reportRequests"])["reportRequests"]
    assert world.request in {r["id"] for r in nodes(mine)}
    assert api("dr-quinn").data(LISTS["reportRequests"]) == {"reportRequests": EMPTY_PAGE}


def test_no_refused_call_wrote_anything(api: Api, world: World) -> None:
    """Since the world was made, only reads were recorded (access-log entries, of reads
    permitted and refused): no refused call changed a record."""
    assert api.services is not None
    for channel, height in world.heights:
        added = api.services.channels[channel].blocks(height, 10_000)
        assert {tx.function for block in added for tx in block.transactions()} <= {"recordAccess"}


# -- Metrics: a caller sees its own channels; request series are for administrators ------------

BLOCK_HEIGHT = 'healthledger_block_height{{channel="{}"}}'


@pytest.mark.parametrize(
    ("uid", "channels", "requests"),
    [
        ("hospital-admin", {"medical", "report"}, True),
        ("alice", {"medical", "report"}, False),
        ("dr-house", {"medical", "report"}, False),
        ("school-b-office", {"report"}, False),
    ],
)
def test_metrics_show_only_the_callers_channels(
    api: Api, world: World, uid: str, channels: set[str], requests: bool
) -> None:
    metrics = api.get("/metrics", uid=uid)
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    for channel in ("medical", "report"):
        assert (BLOCK_HEIGHT.format(channel) in metrics.text) == (channel in channels)
        assert (f'channel="{channel}"' in metrics.text) == (channel in channels)
    assert ("healthledger_graphql_requests" in metrics.text) == requests
