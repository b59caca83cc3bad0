"""Consent that ends, emergency access and who is told, through HTTPS with real certificates.

The server runs under a clock the test moves (the gateway's): an end is passed by moving
the clock, never by sleeping. Its consent sweep runs every tenth of a second, so the
events of ends that came by time arrive as the sweep announces them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from api.app import create_app
from api.services import Services
from authz.network import load_network
from tests.api_client import (
    ACCEPT,
    ACCEPT_ADMISSION,
    CARD,
    CREATE_ADMISSION,
    CREATE_REPORT,
    CREATE_REPORT_REQUEST,
    REVOKE_AGREEMENT,
    REVOKE_PERMISSION,
    Api,
    Subscriber,
    nodes,
    register,
    sign_and_accept,
    update_card,
)
from tests.networks import NetworkFixture, make_network
from tests.tls_server import serving

SETTLE_SECONDS = 0.3
EVENTS = "subscription {{ events(channel: {channel}) {{ name subjectId }} }}"
MEDICAL_EVENTS = EVENTS.format(channel='"medical"')
REPORT_EVENTS = EVENTS.format(channel='"report"')
REASON = "Arrived unconscious; checking allergies before treatment."

SIGN_UNTIL = """
mutation($child: ID!, $doctor: String!, $until: DateTime) {
  signAgreement(childId: $child, doctorUid: $doctor, validUntil: $until) {
    id status validUntil
  }
}"""
EXTEND = """
mutation($id: ID!, $until: DateTime!) {
  extendAgreement(id: $id, validUntil: $until) { id status validUntil }
}"""
AGREEMENT_STATUS = """
query($child: ID) { agreements(childId: $child) { edges { node { id status validUntil } } } }"""
APPROVE_UNTIL = """
mutation($id: ID!, $schools: [String!]!, $until: DateTime) {
  approveReport(id: $id, schools: $schools, validUntil: $until) {
    status permittedSchools permissions { school grantedAt validUntil status }
  }
}"""
PERMISSIONS = """
query($id: ID!) {
  report(id: $id) {
    status permittedSchools permissions { school grantedAt validUntil status }
    content { conclusion }
  }
}"""
OPEN = """
mutation($child: ID!, $reason: String!) {
  openEmergencyAccess(childId: $child, reason: $reason) {
    id childId doctorUid reason openedAt validUntil endedAt endedBy
  }
}"""
UPDATE = """
mutation($child: ID!, $version: Int!, $patch: MedicalCardPatch!) {
  updateMedicalCard(childId: $child, expectedVersion: $version, patch: $patch) { version }
}"""
END = "mutation($id: ID!) { endEmergencyAccess(id: $id) { id endedAt endedBy } }"
ACCESSES = """
query($child: ID!) { emergencyAccesses(childId: $child) { id doctorUid endedBy } }"""
ACCESS_LOG = """
query($child: ID!) {
  accessLog(childId: $child) { edges { node { readerUid what purpose outcome } } }
}"""


@dataclass
class Clock:
    """The server's clock for the contracts: it stands still until the test moves it."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def later(self, **delta: float) -> str:
        """A time so long from now, as a GraphQL DateTime."""
        return (self.now + timedelta(**delta)).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("api-consent") / "network")


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture(scope="module")
def api(net: NetworkFixture, clock: Clock) -> Iterator[Api]:
    network = load_network(net.directory)
    services = Services.open(network, f"sqlite:///{net.directory.parent}/ledger.db")
    services.gateway.clock = clock
    services.consent_sweep.interval_seconds = 0.1
    with serving(create_app(services), network) as url:
        api = Api(url, net, services)
        try:
            yield api
        finally:
            api.close()


@pytest.fixture
def listeners(api: Api) -> Iterator[dict[str, Subscriber]]:
    opened: dict[str, Subscriber] = {}
    yield opened
    for subscriber in opened.values():
        subscriber.close()


def subscribe(api: Api, opened: dict[str, Subscriber], query: str, *uids: str) -> None:
    for uid in uids:
        opened[uid] = Subscriber(api, uid, query)
    time.sleep(SETTLE_SECONDS)  # the hub starts tailing the chain when the subscription starts


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value)


def report_for(api: Api, child: str, school: str = "school-a") -> tuple[str, str]:
    """(report request, READY report) for the child, asked for by `school`."""
    staff = f"{school}-office"
    admission = api("alice").data(CREATE_ADMISSION, {"child": child, "school": school})
    admission_id = admission["createAdmissionRequest"]["id"]
    api(staff).data(ACCEPT_ADMISSION, {"id": admission_id})
    request = api(staff).data(CREATE_REPORT_REQUEST, {"admission": admission_id})
    request_id = request["createReportRequest"]["id"]
    made = api("dr-house").data(CREATE_REPORT, {"request": request_id, "conclusion": "Fit."})
    return request_id, made["createReport"]["id"]


# -- agreements --------------------------------------------------------------------------------


def test_an_agreement_with_an_end_expires_and_a_guardian_extends_it(api: Api, clock: Clock) -> None:
    child = register(api, "alice", "Ines Ortiz")
    until = clock.later(days=3)
    signed = api("alice").data(SIGN_UNTIL, {"child": child, "doctor": "dr-house", "until": until})
    agreement = signed["signAgreement"]
    assert moment(agreement["validUntil"]) == moment(until)
    api("dr-house").data(ACCEPT, {"id": agreement["id"]})
    assert api("dr-house").data(CARD, {"child": child})["medicalCard"]["version"] == 1

    clock.advance(days=3, seconds=1)
    (seen,) = nodes(api("alice").data(AGREEMENT_STATUS, {"child": child})["agreements"])
    assert seen["status"] == "EXPIRED"
    assert api("dr-house").code(CARD, {"child": child}) == "NOT_FOUND"
    assert api("dr-house").code(EXTEND, {"id": agreement["id"], "until": until}) == "FORBIDDEN"
    assert api("alice").code(EXTEND, {"id": agreement["id"], "until": until}) == "BAD_USER_INPUT"

    extended = api("alice").data(EXTEND, {"id": agreement["id"], "until": clock.later(days=30)})
    assert extended["extendAgreement"]["status"] == "ACTIVE"
    assert api("dr-house").data(CARD, {"child": child})["medicalCard"]["version"] == 1


@pytest.mark.parametrize(
    "until",
    [
        pytest.param("2020-01-01T00:00:00Z", id="in the past"),
        pytest.param("2099-01-01T00:00:00", id="without a time zone"),
    ],
)
def test_a_valid_until_in_the_past_or_without_a_time_zone_is_refused(api: Api, until: str) -> None:
    child = register(api, "alice", "Jon Ortiz")
    variables = {"child": child, "doctor": "dr-house", "until": until}
    assert api("alice").code(SIGN_UNTIL, variables) == "BAD_USER_INPUT"


# -- report permissions ------------------------------------------------------------------------


def test_each_school_sees_its_own_permission_and_reads_until_its_end(
    api: Api, clock: Clock
) -> None:
    child = register(api, "alice", "Kai Ortiz")
    sign_and_accept(api, child)
    _, report = report_for(api, child)
    until = clock.later(days=2)
    approved = api("alice").data(
        APPROVE_UNTIL, {"id": report, "schools": ["school-a", "school-b"], "until": until}
    )["approveReport"]
    assert approved["permittedSchools"] == ["school-a", "school-b"]
    assert [(p["school"], p["status"]) for p in approved["permissions"]] == [
        ("school-a", "ACTIVE"),
        ("school-b", "ACTIVE"),
    ]
    assert all(moment(p["validUntil"]) == moment(until) for p in approved["permissions"])
    seen = api("school-b-office").data(PERMISSIONS, {"id": report})["report"]
    assert [p["school"] for p in seen["permissions"]] == ["school-b"]
    assert seen["content"] == {"conclusion": "Fit."}

    api("alice").data(REVOKE_PERMISSION, {"id": report, "school": "school-a"})
    clock.advance(days=2, seconds=1)
    assert api("school-b-office").code(PERMISSIONS, {"id": report}) == "NOT_FOUND"
    mine = api("alice").data(PERMISSIONS, {"id": report})["report"]
    assert (mine["status"], mine["permittedSchools"]) == ("READY", [])
    assert [(p["school"], p["status"]) for p in mine["permissions"]] == [
        ("school-a", "REVOKED"),
        ("school-b", "EXPIRED"),
    ]
    # School A asked for the report: it still sees it, with its own permission and no content.
    body = api("school-a-office").execute(PERMISSIONS, {"id": report})
    assert body["data"]["report"]["content"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert [p["status"] for p in body["data"]["report"]["permissions"]] == ["REVOKED"]

    renewed = api("alice").data(APPROVE_UNTIL, {"id": report, "schools": ["school-b"]})
    (_, school_b) = renewed["approveReport"]["permissions"]
    granted, ends = moment(school_b["grantedAt"]), moment(school_b["validUntil"])
    assert ends - granted == timedelta(days=90)  # [consent] report_permission_days


# -- emergency access --------------------------------------------------------------------------


def test_a_doctor_opens_an_emergency_access_reads_and_a_guardian_ends_it(
    api: Api, clock: Clock
) -> None:
    child = register(api, "alice", "Lia Ortiz")
    opened = api("dr-quinn").data(OPEN, {"child": child, "reason": REASON})["openEmergencyAccess"]
    assert (opened["childId"], opened["doctorUid"], opened["reason"]) == (
        child,
        "dr-quinn",
        REASON,
    )
    assert moment(opened["validUntil"]) - moment(opened["openedAt"]) == timedelta(minutes=60)
    assert api("dr-quinn").data(CARD, {"child": child})["medicalCard"]["version"] == 1
    patch = {"child": child, "version": 1, "patch": {"notes": "x"}}
    assert api("dr-quinn").code(UPDATE, patch) == "FORBIDDEN"

    for uid in ("alice", "hospital-admin"):
        (listed,) = api(uid).data(ACCESSES, {"child": child})["emergencyAccesses"]
        assert listed == {"id": opened["id"], "doctorUid": "dr-quinn", "endedBy": None}
    assert api("dr-quinn").code(ACCESSES, {"child": child}) == "FORBIDDEN"
    assert api("school-a-office").code(ACCESSES, {"child": child}) == "FORBIDDEN"
    assert api("dr-house").code(END, {"id": opened["id"]}) == "NOT_FOUND"
    assert api("hospital-admin").code(END, {"id": opened["id"]}) == "FORBIDDEN"

    ended = api("alice").data(END, {"id": opened["id"]})["endEmergencyAccess"]
    assert ended["endedBy"] == "alice" and ended["endedAt"] is not None
    assert api("dr-quinn").code(CARD, {"child": child}) == "NOT_FOUND"
    assert api("dr-quinn").code(END, {"id": opened["id"]}) == "CONFLICT"
    log = nodes(api("alice").data(ACCESS_LOG, {"child": child})["accessLog"])
    assert {"readerUid": "dr-quinn", "what": "MEDICAL_CARD", "purpose": "EMERGENCY"} in [
        {k: entry[k] for k in ("readerUid", "what", "purpose")}
        for entry in log
        if entry["outcome"] == "PERMITTED"
    ]


@pytest.mark.parametrize(
    ("uid", "reason", "code"),
    [
        pytest.param("alice", REASON, "FORBIDDEN", id="a parent"),
        pytest.param("school-a-office", REASON, "FORBIDDEN", id="a school"),
        pytest.param("hospital-admin", REASON, "FORBIDDEN", id="an admin"),
        pytest.param("dr-quinn", "Needs it.", "BAD_USER_INPUT", id="a short reason"),
    ],
)
def test_who_cannot_open_an_emergency_access(api: Api, uid: str, reason: str, code: str) -> None:
    child = register(api, "alice", "Mo Ortiz")
    assert api(uid).code(OPEN, {"child": child, "reason": reason}) == code


# -- who is told -------------------------------------------------------------------------------


def test_the_doctor_hears_of_a_report_request_and_that_the_agreement_ended(
    api: Api, clock: Clock, listeners: dict[str, Subscriber]
) -> None:
    subscribe(api, listeners, REPORT_EVENTS, "dr-house")
    subscribe(api, listeners, MEDICAL_EVENTS, "alice", "dr-quinn")
    child = register(api, "alice", "Noa Ortiz")
    agreement = sign_and_accept(api, child)
    request, _ = report_for(api, child)
    listeners["dr-house"].event("ReportRequested", request)

    opened = api("dr-quinn").data(OPEN, {"child": child, "reason": REASON})["openEmergencyAccess"]
    listeners["alice"].event("EmergencyAccessOpened", opened["id"])
    api("alice").data(END, {"id": opened["id"]})
    listeners["dr-quinn"].event("EmergencyAccessEnded", opened["id"])

    listeners["dr-house-medical"] = Subscriber(api, "dr-house", MEDICAL_EVENTS)
    time.sleep(SETTLE_SECONDS)
    api("alice").data(REVOKE_AGREEMENT, {"id": agreement})
    listeners["dr-house-medical"].event("AgreementEnded", agreement)
    # Nothing of the child reaches the doctor once the agreement ended.
    sign_and_accept(api, child, doctor="dr-quinn")
    update_card(api, child, 1, "dr-quinn")
    assert listeners["dr-house-medical"].silent_for(1.0)


def test_ends_that_come_by_time_are_announced_by_the_sweep(
    api: Api, clock: Clock, listeners: dict[str, Subscriber]
) -> None:
    subscribe(api, listeners, MEDICAL_EVENTS, "dr-house")
    subscribe(api, listeners, REPORT_EVENTS, "school-b-office")
    child = register(api, "alice", "Ola Ortiz")
    until = clock.later(hours=5)
    signed = api("alice").data(SIGN_UNTIL, {"child": child, "doctor": "dr-house", "until": until})
    agreement = signed["signAgreement"]["id"]
    api("dr-house").data(ACCEPT, {"id": agreement})
    _, report = report_for(api, child)
    api("alice").data(APPROVE_UNTIL, {"id": report, "schools": ["school-b"], "until": until})
    listeners["school-b-office"].event("ReportApproved", report)

    clock.advance(hours=5, seconds=1)
    listeners["dr-house"].event("AgreementEnded", agreement)
    listeners["school-b-office"].event("ReportPermissionEnded", report)
