"""Consent that ends, through the gateway on every backend, under a clock the test moves.

Each end is checked one second before and one second after it: an agreement's, a school's
permission to read a report, an emergency access. The server's sweep (`expire_consents`)
then announces each end once, to the party who lost access, and no later event of the
child reaches that party.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from api.events import audience_includes
from authz.access import ChannelAccess
from authz.directory import NetworkDirectory
from authz.identity import Identity
from authz.network import load_network
from chaincode.gateway import Gateway
from chaincode.medical import MedicalContract
from chaincode.report import ReportContract
from chaincode.testing import fresh_keyrings
from domain.errors import ConflictError, ForbiddenError, NotFoundError
from ledger_backends import Ledger, open_ledger
from ledger_backends.records import format_timestamp, parse_timestamp
from tests.networks import NetworkFixture, make_network

T = TypeVar("T")
SECOND = timedelta(seconds=1)
EMERGENCY_MINUTES = 45
PERMISSION_DAYS = 30
REASON = "Brought in unconscious; need allergies and conditions."


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("consent") / "network")


@dataclass
class Clock:
    """The gateway's clock: it stands still until the test moves it."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def set(self, moment: str, delta: timedelta = timedelta(0)) -> None:
        self.now = parse_timestamp(moment) + delta

    def later(self, **delta: float) -> str:
        return format_timestamp(self.now + timedelta(**delta))


@dataclass
class World:
    gateway: Gateway
    ledger: Ledger
    clock: Clock
    people: dict[str, Identity]

    def __getitem__(self, uid: str) -> Identity:
        return self.people[uid]

    def submit(self, uid: str, channel: str, function: str, **args: Any) -> Any:
        return run(self.gateway.submit(self[uid], channel, function, args))

    def evaluate(self, uid: str, channel: str, function: str, **args: Any) -> Any:
        return run(self.gateway.evaluate(self[uid], channel, function, args))

    def read_card(self, uid: str, child: str) -> Any:
        return self.evaluate(uid, "medical", "readCard", childId=child)

    def events(self, channel: str, since: int = 0) -> list[tuple[str, dict[str, Any]]]:
        """(name, payload) of every event committed on `channel` from block `since`."""
        ledger = self.ledger.channel(channel)
        return [
            (event.name, event.payload)
            for block in ledger.blocks(since, ledger.tip().height)
            for tx in block.transactions()
            if tx.is_valid
            for event in tx.events
        ]

    def height(self, channel: str) -> int:
        return self.ledger.channel(channel).tip().height

    def told(self, uid: str, channel: str, since: int = 0) -> list[tuple[str, str]]:
        """(name, subject) of the events on `channel` from block `since` that `uid` may hear."""
        who = self[uid]
        return [
            (name, payload["subjectId"])
            for name, payload in self.events(channel, since)
            if audience_includes(payload, uid=who.uid, org=who.org, role=who.role.value)
        ]


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


@pytest.fixture
def world(net: NetworkFixture, ledger_url: str) -> Iterator[World]:
    network = load_network(net.directory)
    ledger = open_ledger(ledger_url, batch_timeout_ms=1)
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    gateway = Gateway(
        {name: ledger.channel(name) for name in ("medical", "report")},
        ChannelAccess(network),
        NetworkDirectory(network),
        contracts=(
            MedicalContract(emergency_minutes=EMERGENCY_MINUTES),
            ReportContract(report_permission_days=PERMISSION_DAYS),
        ),
        clock=clock,
        keyrings=fresh_keyrings("medical", "report"),
    )
    yield World(gateway, ledger, clock, net.identities())
    run(gateway.settle())
    ledger.close()


def child_with_doctor(world: World, valid_until: str | None = None) -> tuple[str, str]:
    """Alice's child and her agreement with Dr House (ACTIVE, until `valid_until`)."""
    child = world.submit(
        "alice", "medical", "registerChild", fullName="Ada Martin", birthDate="2019-04-02"
    )
    signed = world.submit(
        "alice",
        "medical",
        "signAgreement",
        childId=child["id"],
        doctorUid="dr-house",
        validUntil=valid_until,
    )
    world.submit("dr-house", "medical", "acceptAgreement", id=signed["id"])
    return child["id"], signed["id"]


def report_for(world: World, child: str, school: str = "school-a") -> str:
    """A READY report on the child, asked for by `school`."""
    admission = run(world.gateway.create_admission_request(world["alice"], child, school))
    staff = world[f"{school}-office"]
    run(world.gateway.submit(staff, "report", "acceptAdmissionRequest", {"id": admission["id"]}))
    request = run(world.gateway.create_report_request(staff, admission["id"]))
    report = run(world.gateway.create_report(world["dr-house"], request["id"], "Fit for school."))
    return str(report["id"])


def test_an_agreement_ends_one_second_after_its_last_and_a_guardian_extends_it(
    world: World,
) -> None:
    end = world.clock.later(days=10)
    child, agreement = child_with_doctor(world, end)

    world.clock.set(end, -SECOND)
    assert world.read_card("dr-house", child)["version"] == 1
    updated = world.submit(
        "dr-house",
        "medical",
        "updateMedicalCard",
        childId=child,
        expectedVersion=1,
        patch={"notes": "Seen."},
    )
    assert updated["version"] == 2
    assert world.evaluate("alice", "medical", "listAgreements")["entries"][0]["item"]["status"] == (
        "ACTIVE"
    )

    world.clock.set(end, SECOND)
    with pytest.raises(NotFoundError):
        world.read_card("dr-house", child)
    with pytest.raises(NotFoundError):
        world.submit(
            "dr-house",
            "medical",
            "updateMedicalCard",
            childId=child,
            expectedVersion=2,
            patch={"notes": "Too late."},
        )
    (entry,) = world.evaluate("dr-house", "medical", "listAgreements")["entries"]
    assert (entry["item"]["status"], entry["item"]["validUntil"]) == ("EXPIRED", end)
    assert world.evaluate("dr-house", "medical", "listChildren")["entries"] == []

    new_end = world.clock.later(days=30)
    extended = world.submit("alice", "medical", "extendAgreement", id=agreement, validUntil=new_end)
    assert (extended["status"], extended["validUntil"]) == ("ACTIVE", new_end)
    assert world.read_card("dr-house", child)["version"] == 2


def test_a_schools_permission_ends_one_second_after_its_last(world: World) -> None:
    child, _ = child_with_doctor(world)
    report = report_for(world, child)
    end = world.clock.later(days=5)
    approved = world.submit(
        "alice", "report", "approveReport", id=report, schools=["school-b"], validUntil=end
    )
    (permission,) = approved["permissions"]
    assert (permission["school"], permission["validUntil"], permission["status"]) == (
        "school-b",
        end,
        "ACTIVE",
    )

    world.clock.set(end, -SECOND)
    seen = world.evaluate("school-b-office", "report", "readReport", id=report)
    assert seen["content"]["conclusion"] == "Fit for school."
    assert (seen["status"], seen["permittedSchools"]) == ("APPROVED", ["school-b"])

    world.clock.set(end, SECOND)
    with pytest.raises(NotFoundError):
        world.evaluate("school-b-office", "report", "readReport", id=report)
    assert world.evaluate("school-b-office", "report", "listReports")["entries"] == []
    mine = world.evaluate("alice", "report", "readReport", id=report)
    assert (mine["status"], mine["permittedSchools"]) == ("READY", [])
    assert [p["status"] for p in mine["permissions"]] == ["EXPIRED"]
    with pytest.raises(ConflictError):
        world.submit("alice", "report", "revokeReportPermission", id=report, school="school-b")

    renewed = world.submit("alice", "report", "approveReport", id=report, schools=["school-b"])
    (permission,) = renewed["permissions"]
    assert permission["validUntil"] == world.clock.later(days=PERMISSION_DAYS)
    seen = world.evaluate("school-b-office", "report", "readReport", id=report)
    assert seen["content"] is not None


def test_the_requesting_schools_expired_permission_leaves_it_the_report_without_content(
    world: World,
) -> None:
    child, _ = child_with_doctor(world)
    report = report_for(world, child)
    end = world.clock.later(hours=1)
    world.submit(
        "alice", "report", "approveReport", id=report, schools=["school-a"], validUntil=end
    )
    world.clock.set(end, SECOND)
    seen = world.evaluate("school-a-office", "report", "readReport", id=report)
    assert (seen["status"], seen["content"]) == ("READY", None)
    assert [p["status"] for p in seen["permissions"]] == ["EXPIRED"]


def test_an_emergency_access_reads_for_its_minutes_and_a_guardian_ends_it(world: World) -> None:
    child, _ = child_with_doctor(world)
    with pytest.raises(NotFoundError):
        world.read_card("dr-quinn", child)
    access = world.submit(
        "dr-quinn", "medical", "openEmergencyAccess", childId=child, reason=REASON
    )
    assert access["validUntil"] == world.clock.later(minutes=EMERGENCY_MINUTES)

    world.clock.set(access["validUntil"], -SECOND)
    assert world.read_card("dr-quinn", child)["version"] == 1
    history = world.evaluate("dr-quinn", "medical", "cardHistory", childId=child)
    assert [e["item"]["version"] for e in history["entries"]] == [1]
    with pytest.raises(ForbiddenError):
        world.submit(
            "dr-quinn",
            "medical",
            "updateMedicalCard",
            childId=child,
            expectedVersion=1,
            patch={"notes": "No."},
        )
    world.clock.set(access["validUntil"], SECOND)
    with pytest.raises(NotFoundError):
        world.read_card("dr-quinn", child)

    again = world.submit("dr-quinn", "medical", "openEmergencyAccess", childId=child, reason=REASON)
    assert world.read_card("dr-quinn", child)["version"] == 1
    ended = world.submit("alice", "medical", "endEmergencyAccess", id=again["id"])
    assert ended["endedBy"] == "alice"
    with pytest.raises(NotFoundError):
        world.read_card("dr-quinn", child)
    listed = world.evaluate("hospital-admin", "medical", "listEmergencyAccesses", childId=child)
    assert [a["id"] for a in listed] == [again["id"], access["id"]]

    log = run(world.gateway.list_access_log(world["alice"], child))["entries"]
    emergency = [e["item"] for e in log if e["item"]["purpose"] == "EMERGENCY"]
    assert {(e["readerUid"], e["what"], e["outcome"]) for e in emergency} == {
        ("dr-quinn", "MEDICAL_CARD", "PERMITTED"),
        ("dr-quinn", "CARD_HISTORY", "PERMITTED"),
    }


def test_the_sweep_announces_each_end_once_to_the_party_who_lost_access(world: World) -> None:
    end = world.clock.later(hours=2)
    child, agreement = child_with_doctor(world, end)
    report = report_for(world, child)
    world.submit(
        "alice", "report", "approveReport", id=report, schools=["school-b"], validUntil=end
    )
    access = world.submit(
        "dr-quinn", "medical", "openEmergencyAccess", childId=child, reason=REASON
    )
    medical, reports = world.height("medical"), world.height("report")

    assert run(world.gateway.expire_consents()) == 0
    world.clock.set(end, SECOND)
    assert run(world.gateway.expire_consents()) == 3
    assert run(world.gateway.expire_consents()) == 0

    agreement_ended, access_ended = (
        ("AgreementEnded", agreement),
        ("EmergencyAccessEnded", access["id"]),
    )
    assert world.told("dr-house", "medical", medical) == [agreement_ended]
    assert world.told("dr-quinn", "medical", medical) == [access_ended]
    assert world.told("school-b-office", "report", reports) == [("ReportPermissionEnded", report)]
    assert world.told("school-a-office", "report", reports) == []
    # The guardians are told too, earliest end first; school B no longer lists the report.
    assert world.told("alice", "medical", medical) == [access_ended, agreement_ended]
    assert world.evaluate("school-b-office", "report", "listReports")["entries"] == []


def test_the_doctors_of_agreements_in_force_hear_of_a_report_request(world: World) -> None:
    end = world.clock.later(hours=1)
    child, _ = child_with_doctor(world, end)
    quinn = world.submit("alice", "medical", "signAgreement", childId=child, doctorUid="dr-quinn")
    world.submit("dr-quinn", "medical", "acceptAgreement", id=quinn["id"])
    start = world.height("report")
    report_for(world, child)
    (request,) = world.evaluate("school-a-office", "report", "listReportRequests")["entries"]
    assert ("ReportRequested", request["item"]["id"]) in world.told("dr-house", "report", start)
    assert ("ReportRequested", request["item"]["id"]) in world.told("dr-quinn", "report", start)

    world.clock.set(end, SECOND)
    start = world.height("report")
    admission = run(world.gateway.create_admission_request(world["alice"], child, "school-b"))
    staff = world["school-b-office"]
    run(world.gateway.submit(staff, "report", "acceptAdmissionRequest", {"id": admission["id"]}))
    request = run(world.gateway.create_report_request(staff, admission["id"]))
    assert world.told("dr-house", "report", start) == []
    assert world.told("dr-quinn", "report", start) == [("ReportRequested", request["id"])]


def test_after_a_revocation_no_event_of_the_child_reaches_the_doctor_or_the_school(
    world: World,
) -> None:
    child, agreement = child_with_doctor(world)
    report = report_for(world, child)
    world.submit("alice", "report", "approveReport", id=report, schools=["school-b"])
    world.submit("alice", "medical", "revokeAgreement", id=agreement)
    world.submit("alice", "report", "revokeReportPermission", id=report, school="school-b")
    medical, reports = world.height("medical"), world.height("report")

    quinn = world.submit("alice", "medical", "signAgreement", childId=child, doctorUid="dr-quinn")
    world.submit("dr-quinn", "medical", "acceptAgreement", id=quinn["id"])
    world.submit(
        "dr-quinn",
        "medical",
        "updateMedicalCard",
        childId=child,
        expectedVersion=1,
        patch={"notes": "New doctor."},
    )
    world.submit("dr-quinn", "medical", "openEmergencyAccess", childId=child, reason=REASON)
    world.submit("alice", "report", "approveReport", id=report, schools=["school-a"])
    admission = run(world.gateway.create_admission_request(world["alice"], child, "school-b"))
    run(
        world.gateway.submit(
            world["school-b-office"], "report", "acceptAdmissionRequest", {"id": admission["id"]}
        )
    )
    request = run(world.gateway.create_report_request(world["school-b-office"], admission["id"]))

    assert world.told("dr-house", "medical", medical) == []
    # The author of a report stays one of its insiders (its reader, told of it): of the
    # report only, its approval for school A; nothing of the child's new request.
    assert world.told("dr-house", "report", reports) == [("ReportApproved", report)]
    # School B hears of its own new admission, nothing of the report it may no longer read.
    assert world.told("school-b-office", "report", reports) == [
        ("AdmissionRequested", admission["id"]),
        ("AdmissionAccepted", admission["id"]),
        ("ReportRequested", request["id"]),
    ]
    assert ("ReportRequested", request["id"]) in world.told("dr-quinn", "report", reports)
