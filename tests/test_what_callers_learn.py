"""What a caller can learn beyond the records it may read: nothing (docs/security.md).

The whole story runs through the gateway with real certificates. Then, for every
caller, everything the explorer and the event stream would show it is checked by
inference: each event and each unredacted transaction header must concern a
record the caller can read through the API, a header's commitment cannot be
recomputed from the values it stands for, and no record id appears in a header.

A person is (organisation, UID): certificates that other organisations' CAs
issued for the same UIDs must learn exactly what a stranger of their
organisation and role learns — for every event, header and read.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from api.events import audience_includes, may_see_transaction
from authz import ca
from authz.access import ChannelAccess
from authz.directory import NetworkDirectory
from authz.identity import Identity, IdentityVerifier
from authz.network import NetworkConfig, load_network
from authz.roles import role_fits
from chaincode.gateway import Gateway
from domain.errors import RefusalError
from ledger_backends import Ledger, open_ledger
from ledger_backends.hashing import canonical_json, sha256_hex
from ledger_backends.records import Transaction
from tests.networks import DEMO_USERS, NetworkFixture, make_network

CHANNELS = ("medical", "report")


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("learn") / "network")


def _certified(network: NetworkConfig, verifier: IdentityVerifier, org: str, uid: str, role: str):  # type: ignore[no-untyped-def]
    """An identity issued directly by `org`'s CA: what a rogue or careless CA can do."""
    config = next(o for o in network.orgs if o.id == org)
    authority = ca.load_authority(
        config.ca.read_bytes(), config.ca.with_name("ca.key").read_bytes()
    )
    _, cert = ca.issue_client_certificate(authority, org=org, uid=uid, role=role, name=None)
    return verifier.identify(cert.public_bytes(Encoding.DER))


@dataclass
class Story:
    gateway: Gateway
    ledger: Ledger
    network: NetworkConfig
    verifier: IdentityVerifier
    people: dict[str, Identity]
    ids: dict[str, str]

    def transactions(self) -> list[Transaction]:
        return [
            tx
            for channel in CHANNELS
            for block in self.ledger.channel(channel).blocks(0, 1_000)
            for tx in block.transactions()
        ]


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


@pytest.fixture(scope="module")
def story(net: NetworkFixture) -> Iterator[Story]:
    """Alice and Bob's child with Dr House, school A asking, A and B permitted, then B withdrawn."""
    network = load_network(net.directory)
    verifier = IdentityVerifier.from_network(network)
    people = {uid: _certified(network, verifier, org, uid, role) for org, uid, role in DEMO_USERS}
    ledger = open_ledger("memory://", batch_timeout_ms=1)
    gw = Gateway(
        {name: ledger.channel(name) for name in CHANNELS},
        ChannelAccess(network),
        NetworkDirectory(network),
    )
    alice, bob, house = people["alice"], people["bob"], people["dr-house"]
    school_a = people["school-a-office"]

    async def play() -> dict[str, str]:
        child = await gw.submit(
            alice,
            "medical",
            "registerChild",
            {"fullName": "Ada Martin", "birthDate": "2019-04-02", "otherGuardians": ["bob"]},
        )
        await gw.submit(bob, "medical", "acceptGuardianship", {"childId": child["id"]})
        agreement = await gw.submit(
            alice, "medical", "signAgreement", {"childId": child["id"], "doctorUid": "dr-house"}
        )
        await gw.submit(house, "medical", "acceptAgreement", {"id": agreement["id"]})
        await gw.submit(
            house,
            "medical",
            "updateMedicalCard",
            {"childId": child["id"], "expectedVersion": 1, "patch": {"bloodType": "AB-"}},
        )
        admission = await gw.create_admission_request(alice, child["id"], "school-a")
        await gw.submit(school_a, "report", "acceptAdmissionRequest", {"id": admission["id"]})
        request = await gw.submit(
            school_a, "report", "createReportRequest", {"admissionRequestId": admission["id"]}
        )
        report = await gw.create_report(house, request["id"], "Fit for school.")
        await gw.submit(
            alice,
            "report",
            "approveReport",
            {"id": report["id"], "schools": ["school-a", "school-b"]},
        )
        await gw.submit(
            alice, "report", "revokeReportPermission", {"id": report["id"], "school": "school-b"}
        )
        return {
            "child": child["id"],
            "agreement": agreement["id"],
            "admission": admission["id"],
            "request": request["id"],
            "report": report["id"],
        }

    ids = run(play())
    yield Story(gw, ledger, network, verifier, people, ids)
    ledger.close()


def _events_seen(story: Story, who: Identity) -> list[tuple[str, str, str]]:
    return [
        (tx.channel, event.name, str(event.payload.get("subjectId")))
        for tx in story.transactions()
        if tx.is_valid
        for event in tx.events
        if audience_includes(event.payload, uid=who.uid, org=who.org, role=who.role.value)
    ]


def _headers_seen(story: Story, who: Identity, *, own: bool = True) -> list[str]:
    """The transactions whose headers `who` sees; without those it made if not `own`."""
    return [
        tx.tx_id
        for tx in story.transactions()
        if may_see_transaction(tx, who)
        and (own or (tx.creator.uid, tx.creator.msp) != (who.uid, who.msp))
    ]


async def _attempt(coroutine: Any) -> Any:
    try:
        return await coroutine
    except RefusalError as error:
        return error.code


def _reads(story: Story, who: Identity) -> list[Any]:
    """Everything the API lets `who` read about the story's records, refusals included."""
    gw, ids = story.gateway, story.ids

    async def read_all() -> list[Any]:
        found: list[Any] = []
        medical = story.network.channel("medical").members
        if who.org in medical:
            for function, args in (
                ("listChildren", {}),
                ("pendingGuardianships", {}),
                ("listAgreements", {}),
                ("readChild", {"childId": ids["child"]}),
                ("readCard", {"childId": ids["child"]}),
                ("cardHistory", {"childId": ids["child"]}),
                ("readGuardians", {"childId": ids["child"]}),
            ):
                found.append(await _attempt(gw.evaluate(who, "medical", function, args)))
        for function, args in (
            ("listAdmissionRequests", {}),
            ("listReports", {}),
            ("readReport", {"id": ids["report"]}),
        ):
            found.append(await _attempt(gw.evaluate(who, "report", function, args)))
        found.append(await _attempt(gw.list_report_requests(who)))
        found.append(await _attempt(gw.read_report_request(who, ids["request"])))
        return found

    return list(run(read_all()))


def _readable_subjects(story: Story, who: Identity) -> set[str]:
    """Ids of the story's records that `who` can read through the API right now."""
    readable: set[str] = set()
    for result in _reads(story, who):
        if isinstance(result, list):
            items = result
        elif isinstance(result, dict) and "entries" in result:  # a page of a list
            items = [entry["item"] for entry in result["entries"]]
        else:
            items = [result]
        for item in items:
            if isinstance(item, dict):
                readable |= {str(item[k]) for k in ("id", "childId") if k in item}
    return readable


def _impostors(story: Story) -> Iterator[tuple[Identity, Identity]]:
    """(same UID in another organisation, a stranger with that organisation and role).

    One stranger per UID, in every role the impostor takes: reads leave access-log entries
    whose headers their reader sees, in whichever role that person read."""
    for org_id, uid, _ in DEMO_USERS:
        for org in story.network.orgs:
            if org.id == org_id:
                continue
            for role in ("parent", "doctor", "school", "admin"):
                if role_fits(role, org.kind):
                    yield (
                        _certified(story.network, story.verifier, org.id, uid, role),
                        _certified(story.network, story.verifier, org.id, f"stranger-{uid}", role),
                    )


def test_a_uid_from_another_organisation_learns_what_a_stranger_there_learns(story: Story) -> None:
    checked = 0
    for impostor, stranger in _impostors(story):
        assert _events_seen(story, impostor) == _events_seen(story, stranger), impostor
        # Each sees the headers of its own reads' access-log entries, and no other.
        seen = _headers_seen(story, impostor, own=False)
        assert seen == _headers_seen(story, stranger, own=False), impostor
        assert _reads(story, impostor) == _reads(story, stranger), impostor
        checked += 1
    assert checked >= 30  # every demo UID in every other organisation, in every role it fits


@pytest.mark.parametrize("uid", [uid for _, uid, _ in DEMO_USERS])
def test_every_event_and_header_a_caller_sees_concerns_a_record_it_can_read(
    story: Story, uid: str
) -> None:
    who = story.people[uid]
    readable = _readable_subjects(story, who)
    if who.org == "school-b":
        # B read the report until its permission was withdrawn, and is told that it was.
        readable.add(story.ids["report"])
    for channel, name, subject in _events_seen(story, who):
        assert subject in readable, f"{uid} hears {name} about {subject} on {channel}"
    seen = set(_headers_seen(story, who))
    for tx in story.transactions():
        if tx.tx_id in seen:
            subjects = {str(e.payload.get("subjectId")) for e in tx.events}
            mine = (tx.creator.uid, tx.creator.msp) == (who.uid, who.msp)
            assert mine or subjects & readable, f"{uid} sees {tx.function}"


def test_schools_hear_only_of_their_own_admissions_and_permissions(story: Story) -> None:
    heard = {
        uid: {name for _, name, _ in _events_seen(story, story.people[uid])}
        for uid in ("school-a-office", "school-b-office")
    }
    assert heard["school-a-office"] >= {"AdmissionAccepted", "ReportReady", "ReportApproved"}
    assert "ReportPermissionRevoked" not in heard["school-a-office"]  # B's ending is B's business
    assert heard["school-b-office"] == {
        "ReportApproved",
        "ReportPermissionRevoked",
        "ReportPermissionEnded",
    }
    assert _events_seen(story, story.people["hospital-admin"]) == []
    assert _headers_seen(story, story.people["hospital-admin"]) == []


def test_no_header_shows_a_record_id_or_a_recomputable_hash(story: Story) -> None:
    ids = set(story.ids.values())
    for tx in story.transactions():
        header = [tx.tx_id, tx.function, tx.creator.uid, tx.creator.msp, tx.write_set_hash]
        assert not ids & set(header)
        assert tx.write_set_hash != sha256_hex(canonical_json(tx.write_set))
        assert not any(record_id in tx.tx_id for record_id in ids)


def test_record_ids_carry_128_random_bits(story: Story) -> None:
    for record_id in story.ids.values():
        prefix, _, digits = record_id.rpartition("-")
        assert prefix and len(digits) == 32 and int(digits, 16) >= 0
    tx_ids = [tx.tx_id for tx in story.transactions()]
    for record_id, tx_id in itertools.product(story.ids.values(), tx_ids):
        for index in range(1, 4):
            guess = sha256_hex(f"{tx_id}:{index}")
            assert guess[:32] not in record_id and guess[:16] not in record_id
