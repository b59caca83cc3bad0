"""The five-step story through the gateway, on every backend, with real enrolled identities."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from authz.access import ChannelAccess
from authz.directory import NetworkDirectory
from authz.identity import Identity
from authz.network import load_network
from chaincode.gateway import Gateway
from chaincode.testing import fresh_keyrings
from domain.errors import BadInputError, ConflictError, ForbiddenError, NotFoundError, RefusalError
from ledger_backends import Ledger, Proposal, ReadConflictError, Receipt, open_ledger
from ledger_backends.hashing import canonical_json, commitment, sha256_hex
from ledger_backends.keystores import open_key_store
from tests.networks import NetworkFixture, make_network


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("story") / "network")


@dataclass
class World:
    gateway: Gateway
    ledger: Ledger
    people: dict[str, Identity]

    def __getitem__(self, uid: str) -> Identity:
        return self.people[uid]


@pytest.fixture
def world(net: NetworkFixture, ledger_url: str) -> Iterator[World]:
    network = load_network(net.directory)
    people = net.identities()
    ledger = open_ledger(ledger_url, batch_timeout_ms=1)
    # The data keys beside the ledger, in its own database, as a network keeps them by default.
    keys = open_key_store(ledger_url, same_database_as_ledger=True)
    gateway = Gateway(
        {name: ledger.channel(name) for name in ("medical", "report")},
        ChannelAccess(network),
        NetworkDirectory(network),
        keyrings=fresh_keyrings("medical", "report", store=keys),
    )
    yield World(gateway, ledger, people)
    keys.close()
    ledger.close()


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


def test_the_whole_story_and_who_sees_what(world: World) -> None:
    gw, alice, bob, doctor = world.gateway, world["alice"], world["bob"], world["dr-house"]
    school_a, school_b = world["school-a-office"], world["school-b-office"]

    async def story() -> None:
        child = await gw.submit(
            alice,
            "medical",
            "registerChild",
            {"fullName": "Ada Martin", "birthDate": "2019-04-02", "otherGuardians": ["bob"]},
        )
        assert (child["guardians"], child["pendingGuardians"]) == (["alice"], ["bob"])
        with pytest.raises(NotFoundError):
            await gw.evaluate(bob, "medical", "readChild", {"childId": child["id"]})
        child = await gw.submit(bob, "medical", "acceptGuardianship", {"childId": child["id"]})
        assert child["guardians"] == ["alice", "bob"]
        agreement = await gw.submit(
            alice, "medical", "signAgreement", {"childId": child["id"], "doctorUid": "dr-house"}
        )
        assert agreement["status"] == "PENDING"
        with pytest.raises(NotFoundError):
            await gw.evaluate(doctor, "medical", "readCard", {"childId": child["id"]})
        accepted = await gw.submit(doctor, "medical", "acceptAgreement", {"id": agreement["id"]})
        assert accepted["status"] == "ACTIVE"
        card = await gw.submit(
            doctor,
            "medical",
            "updateMedicalCard",
            {
                "childId": child["id"],
                "expectedVersion": 1,
                "patch": {
                    "allergies": ["peanuts"],
                    "healthGroup": 2,
                    "physicalEducationGroup": "MAIN",
                },
            },
        )
        assert card["version"] == 2

        admission = await gw.create_admission_request(bob, child["id"], "school-a")
        assert (admission["status"], admission["childName"]) == ("PENDING", "Ada Martin")
        await gw.submit(school_a, "report", "acceptAdmissionRequest", {"id": admission["id"]})
        request = await gw.submit(
            school_a, "report", "createReportRequest", {"admissionRequestId": admission["id"]}
        )
        requests = (await gw.list_report_requests(doctor))["entries"]
        assert [entry["item"]["id"] for entry in requests] == [request["id"]]
        assert (await gw.list_report_requests(world["dr-quinn"]))["entries"] == []

        report = await gw.create_report(doctor, request["id"], "Fit for school; avoid peanuts.")
        assert (report["status"], report["cardVersion"]) == ("READY", 2)
        stored = await gw.evaluate(alice, "medical", "readCard", {"childId": child["id"]})
        stored.pop("childName")
        assert report["cardHash"] == commitment(report["cardSalt"], canonical_json(stored))
        assert report["cardHash"] != sha256_hex(canonical_json(stored))

        before = await gw.evaluate(school_a, "report", "readReport", {"id": report["id"]})
        assert (before["status"], before["content"]) == ("READY", None)
        approved = await gw.submit(
            alice, "report", "approveReport", {"id": report["id"], "schools": ["school-a"]}
        )
        assert approved["permittedSchools"] == ["school-a"]
        after = await gw.evaluate(school_a, "report", "readReport", {"id": report["id"]})
        assert after["content"]["allergies"] == ["peanuts"]
        assert after["content"]["conclusion"] == "Fit for school; avoid peanuts."
        with pytest.raises(NotFoundError):
            await gw.evaluate(school_b, "report", "readReport", {"id": report["id"]})
        assert (await gw.evaluate(school_b, "report", "listReports", {}))["entries"] == []
        with pytest.raises(ForbiddenError):
            await gw.evaluate(school_a, "medical", "readCard", {"childId": child["id"]})
        with pytest.raises(ForbiddenError):
            await gw.evaluate(school_a, "medical", "listChildren", {})

        await gw.submit(alice, "medical", "revokeAgreement", {"id": agreement["id"]})
        with pytest.raises(NotFoundError):
            await gw.evaluate(doctor, "medical", "readCard", {"childId": child["id"]})

    run(story())
    for name in ("medical", "report"):
        verification = world.ledger.channel(name).verify()
        assert verification.ok, verification.reason


def _registered_child_with_doctor(world: World) -> str:
    gw, alice, doctor = world.gateway, world["alice"], world["dr-house"]

    async def setup() -> str:
        child = await gw.submit(
            alice, "medical", "registerChild", {"fullName": "Leo", "birthDate": "2018-01-01"}
        )
        agreement = await gw.submit(
            alice, "medical", "signAgreement", {"childId": child["id"], "doctorUid": "dr-house"}
        )
        await gw.submit(doctor, "medical", "acceptAgreement", {"id": agreement["id"]})
        return str(child["id"])

    return run(setup())


def test_concurrent_updates_with_one_expected_version_have_exactly_one_winner(
    world: World,
) -> None:
    child_id = _registered_child_with_doctor(world)
    doctor = world["dr-house"]

    async def race() -> list[object]:
        return await asyncio.gather(
            *(
                world.gateway.submit(
                    doctor,
                    "medical",
                    "updateMedicalCard",
                    {"childId": child_id, "expectedVersion": 1, "patch": {"notes": f"note {n}"}},
                )
                for n in range(8)
            ),
            return_exceptions=True,
        )

    results = run(race())
    winners = [r for r in results if isinstance(r, dict)]
    assert len(winners) == 1 and winners[0]["version"] == 2
    assert all(isinstance(r, ConflictError) for r in results if not isinstance(r, dict))
    history = run(world.gateway.evaluate(doctor, "medical", "cardHistory", {"childId": child_id}))
    assert [entry["item"]["version"] for entry in history["entries"]] == [2, 1]


def test_successive_updates_each_add_one_version(world: World) -> None:
    child_id = _registered_child_with_doctor(world)
    doctor = world["dr-house"]

    async def updates() -> list[int]:
        versions = []
        for expected in range(1, 6):
            card = await world.gateway.submit(
                doctor,
                "medical",
                "updateMedicalCard",
                {"childId": child_id, "expectedVersion": expected, "patch": {"healthGroup": 1}},
            )
            versions.append(card["version"])
        return versions

    assert run(updates()) == [2, 3, 4, 5, 6]


def test_a_read_s_access_entry_that_meets_a_conflict_is_made_again_and_recorded_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The entry is simulated beside the read; if its block cannot be appended (here: the
    tip kept moving, a fault made by hand), it is simulated again and committed before the
    read is answered, and only the second one is in the log."""
    child_id = _registered_child_with_doctor(world)
    doctor, alice = world["dr-house"], world["alice"]
    medical = world.gateway.ledgers["medical"]
    submit, refused = medical.submit, []

    async def conflict_once(proposal: Proposal) -> Receipt:
        if proposal.function == "recordAccess" and not refused:
            refused.append(proposal.tx_id)
            raise ReadConflictError("The channel kept changing.")
        return await submit(proposal)

    monkeypatch.setattr(medical, "submit", conflict_once)
    card = run(world.gateway.evaluate(doctor, "medical", "readCard", {"childId": child_id}))
    assert card["version"] == 1 and len(refused) == 1
    log = run(world.gateway.list_access_log(alice, child_id))
    reads = [e["item"] for e in log["entries"] if e["item"]["readerUid"] == "dr-house"]
    assert [(r["what"], r["outcome"]) for r in reads] == [("MEDICAL_CARD", "PERMITTED")]


def test_callers_cannot_hand_the_report_contract_what_the_gateway_reads_on_medical(
    world: World,
) -> None:
    alice = world["alice"]
    child = {"id": "x", "fullName": "x", "guardians": ["parents/alice"]}
    forged = {"child": child, "school": "school-a"}
    with pytest.raises(BadInputError, match="missing or unknown arguments"):
        run(world.gateway.submit(alice, "report", "createAdmissionRequest", forged))
    # Called directly, the contract has no child read on `medical` and refuses.
    with pytest.raises(ForbiddenError, match="guardians"):
        run(world.gateway.submit(alice, "report", "createAdmissionRequest", {"school": "school-a"}))


def test_admission_for_someone_elses_child_is_not_found(world: World) -> None:
    child_id = _registered_child_with_doctor(world)
    stranger = world["bob"]  # a parent, but not this child's guardian
    with pytest.raises(NotFoundError) as refused:
        run(world.gateway.create_admission_request(stranger, child_id, "school-a"))
    assert "Leo" not in str(refused.value) and "alice" not in str(refused.value)


@pytest.mark.parametrize("uid", ["school-a-office", "school-b-office"])
def test_schools_never_reach_the_medical_channel(world: World, uid: str) -> None:
    with pytest.raises(ForbiddenError, match="no access to channel 'medical'"):
        run(world.gateway.evaluate(world[uid], "medical", "listChildren", {}))


def test_queries_and_transactions_are_not_interchangeable(world: World) -> None:
    alice = world["alice"]
    with pytest.raises(BadInputError):
        run(world.gateway.submit(alice, "medical", "listChildren", {}))
    with pytest.raises(BadInputError):
        run(
            world.gateway.evaluate(
                alice, "medical", "registerChild", {"fullName": "x", "birthDate": "2019-01-01"}
            )
        )
    with pytest.raises(RefusalError):
        run(world.gateway.submit(alice, "medical", "noSuchFunction", {}))
