"""Erasing a child through the gateway, on every backend, with the key store beside the ledger.

Alice's child goes through the whole story (agreement with dr-house, a card with
notes, an admission to school-a, a report school-a may read); alice has another
child with an agreement of its own. Then the first child is erased: by alice,
who confirms with its name, or by the server on an operator's request, also
after an erasure that stopped half-way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from chaincode.consent import SERVER
from chaincode.gateway import Gateway
from domain.errors import BadInputError, ForbiddenError, NotFoundError, RefusalError
from encryption.envelope import BrokenSealError, is_sealed
from ledger_backends import open_ledger
from ledger_backends.errors import BackendUnavailableError
from ledger_backends.records import parse_timestamp
from ledger_backends.testing.tampering import StateValue, raw_store
from tests.test_gateway_story import World, run

# The story tests' fixtures: a network of enrolled users and a gateway over `ledger_url`.
from tests.test_gateway_story import net as net
from tests.test_gateway_story import world as world

NAME = "Cleo Martin"
NOTES = "Scar on the left knee from a bicycle fall."
CONCLUSION = "Fit for school; inhaler before sport."
SECRETS = (NAME, NOTES, CONCLUSION)
CHANNELS = ("medical", "report")
MISSING_IDS = {
    "child": "child-0123456789abcdef0123456789abcdef",
    "admission": "admission-t0000000000000-00000000000000000000000000000000",
    "request": "report-request-t0000000000000-00000000000000000000000000000000",
    "report": "report-t0000000000000-00000000000000000000000000000000",
}


@dataclass(frozen=True)
class Family:
    child: str
    admission: str
    request: str
    report: str
    other: str

    def ids(self) -> dict[str, str]:
        return {
            "child": self.child,
            "admission": self.admission,
            "request": self.request,
            "report": self.report,
        }


def _story(w: World) -> Family:
    gw, alice, house, school_a = w.gateway, w["alice"], w["dr-house"], w["school-a-office"]

    async def child_with_doctor(name: str) -> str:
        child = await gw.submit(
            alice, "medical", "registerChild", {"fullName": name, "birthDate": "2019-06-01"}
        )
        agreement = await gw.submit(
            alice, "medical", "signAgreement", {"childId": child["id"], "doctorUid": "dr-house"}
        )
        await gw.submit(house, "medical", "acceptAgreement", {"id": agreement["id"]})
        return str(child["id"])

    async def play() -> Family:
        child_id = await child_with_doctor(NAME)
        await gw.submit(
            house,
            "medical",
            "updateMedicalCard",
            {"childId": child_id, "expectedVersion": 1, "patch": {"notes": NOTES}},
        )
        admission = await gw.create_admission_request(alice, child_id, "school-a")
        await gw.submit(school_a, "report", "acceptAdmissionRequest", {"id": admission["id"]})
        request = await gw.create_report_request(school_a, admission["id"])
        report = await gw.create_report(house, request["id"], CONCLUSION)
        await gw.submit(
            alice, "report", "approveReport", {"id": report["id"], "schools": ["school-a"]}
        )
        read = await gw.evaluate(school_a, "report", "readReport", {"id": report["id"]})
        assert read["content"]["conclusion"] == CONCLUSION
        other = await child_with_doctor("Noah Martin")
        return Family(child_id, admission["id"], request["id"], report["id"], other)

    return run(play())


def _tips(w: World) -> dict[str, int]:
    return {name: w.ledger.channel(name).tip().height for name in CHANNELS}


def _destroyed(w: World, child_id: str) -> list[bool]:
    keyrings = w.gateway.keyrings
    assert keyrings is not None
    found = [keyrings[name].store.get(name, child_id) for name in CHANNELS]
    return [stored is not None and stored.destroyed for stored in found]


def _refusal(call: Awaitable[Any]) -> RefusalError:
    async def attempt() -> RefusalError:
        try:
            outcome = await call
        except RefusalError as refusal:
            return refusal
        raise AssertionError(f"allowed: {outcome!r:.80}")

    return run(attempt())


def _erase(w: World, uid: str, child_id: str, confirm: str | None) -> Any:
    return run(w.gateway.erase_child(w[uid], child_id, confirm))


# -- sealed at rest -------------------------------------------------------------------------


def test_the_backend_stores_no_plaintext_of_the_child(world: World) -> None:
    family = _story(world)
    store = world.ledger.store
    for name in CHANNELS:
        texts = [record.value for record in store.scan_state(name)]
        texts += [e.value for e in store.scan_history(name) if e.value is not None]
        for block in store.read_blocks(name, 0, store.tip(name).height):
            texts += list(block.tx_texts)
        assert not [secret for secret in SECRETS if any(secret in text for text in texts)]
        for record in store.scan_state(name):
            assert is_sealed(record.json()) or record.key.startswith("refusals/"), record.key
    card = run(
        world.gateway.evaluate(world["alice"], "medical", "readCard", {"childId": family.child})
    )
    assert card["notes"] == NOTES


def test_a_value_moved_by_a_raw_tamper_does_not_open(world: World) -> None:
    family = _story(world)
    with raw_store(world.ledger.store) as raw:
        other = raw.read(StateValue("medical", f"card/{family.other}"))
        raw.write(StateValue("medical", f"card/{family.child}"), other)
    alice = world["alice"]
    with pytest.raises(BrokenSealError):
        run(world.gateway.evaluate(alice, "medical", "readCard", {"childId": family.child}))
    found = run(world.gateway.evaluate(alice, "medical", "readCard", {"childId": family.other}))
    assert found["childId"] == family.other


# -- who erases -------------------------------------------------------------------------------


@pytest.mark.parametrize("confirm", ["cleo martin", f"{NAME} ", "Cleo", "", None])
def test_a_wrong_confirmation_erases_nothing(world: World, confirm: str | None) -> None:
    family = _story(world)
    tips = _tips(world)
    with pytest.raises(BadInputError, match="full name exactly"):
        _erase(world, "alice", family.child, confirm)
    assert _destroyed(world, family.child) == [False, False]
    assert _tips(world) == tips


@pytest.mark.parametrize("uid", ["bob", "dr-house", "school-a-office", "hospital-admin"])
def test_anyone_but_a_guardian_is_refused_as_for_a_missing_child(world: World, uid: str) -> None:
    family = _story(world)
    tips = _tips(world)
    refused = _refusal(world.gateway.erase_child(world[uid], family.child, NAME))
    missing = _refusal(world.gateway.erase_child(world[uid], MISSING_IDS["child"], NAME))
    assert type(refused) is type(missing) is NotFoundError
    assert str(refused) == str(missing)
    assert _destroyed(world, family.child) == [False, False]
    assert _tips(world) == tips


def test_a_guardian_erases_with_the_child_s_exact_name(world: World) -> None:
    family = _story(world)
    receipt = _erase(world, "alice", family.child, NAME)
    assert receipt == {
        "childId": family.child,
        "erasedAt": receipt["erasedAt"],
        "channels": ["medical", "report"],
    }
    parse_timestamp(receipt["erasedAt"])
    assert _destroyed(world, family.child) == [True, True]
    assert _destroyed(world, family.other) == [False, False]
    for name in CHANNELS:
        verification = world.ledger.channel(name).verify()
        assert verification.ok, verification.reason


# -- after an erasure -------------------------------------------------------------------------

Call = Callable[[World, dict[str, str]], Awaitable[Any]]


def _evaluate(uid: str, channel: str, function: str, **args: str) -> Call:
    def call(w: World, ids: dict[str, str]) -> Awaitable[Any]:
        filled = {k: v.format(**ids) for k, v in args.items()}
        return w.gateway.evaluate(w[uid], channel, function, filled)

    return call


GUARDIAN_CALLS: list[tuple[str, Call]] = [
    ("readChild", _evaluate("alice", "medical", "readChild", childId="{child}")),
    ("readCard", _evaluate("alice", "medical", "readCard", childId="{child}")),
    ("cardHistory", _evaluate("alice", "medical", "cardHistory", childId="{child}")),
    ("readGuardians", _evaluate("alice", "medical", "readGuardians", childId="{child}")),
    (
        "signAgreement",
        lambda w, ids: w.gateway.submit(
            w["alice"],
            "medical",
            "signAgreement",
            {"childId": ids["child"], "doctorUid": "dr-quinn"},
        ),
    ),
    (
        "readAdmissionRequest",
        _evaluate("alice", "report", "readAdmissionRequest", id="{admission}"),
    ),
    ("readReport", _evaluate("alice", "report", "readReport", id="{report}")),
    (
        "read_report_request",
        lambda w, ids: w.gateway.read_report_request(w["alice"], ids["request"]),
    ),
    (
        "create_admission_request",
        lambda w, ids: w.gateway.create_admission_request(w["alice"], ids["child"], "school-b"),
    ),
    ("erase_child again", lambda w, ids: w.gateway.erase_child(w["alice"], ids["child"], NAME)),
]
OTHER_CALLS: list[tuple[str, Call]] = [
    ("bob readChild", _evaluate("bob", "medical", "readChild", childId="{child}")),
    ("doctor readCard", _evaluate("dr-house", "medical", "readCard", childId="{child}")),
    ("doctor cardHistory", _evaluate("dr-house", "medical", "cardHistory", childId="{child}")),
    ("doctor readReport", _evaluate("dr-house", "report", "readReport", id="{report}")),
    (
        "doctor create_report",
        lambda w, ids: w.gateway.create_report(w["dr-house"], ids["request"], "Again."),
    ),
    ("school readReport", _evaluate("school-a-office", "report", "readReport", id="{report}")),
    (
        "school readAdmissionRequest",
        _evaluate("school-a-office", "report", "readAdmissionRequest", id="{admission}"),
    ),
    (
        "school read_report_request",
        lambda w, ids: w.gateway.read_report_request(w["school-a-office"], ids["request"]),
    ),
    ("bob access log", lambda w, ids: w.gateway.list_access_log(w["bob"], ids["child"])),
    ("doctor access log", lambda w, ids: w.gateway.list_access_log(w["dr-house"], ids["child"])),
]


def test_guardians_are_told_of_the_erasure_and_others_refused_as_for_nothing(
    world: World,
) -> None:
    family = _story(world)
    receipt = _erase(world, "alice", family.child, NAME)
    told = f"This child's records were erased on {receipt['erasedAt'][:10]}."
    wrong: list[str] = []
    for description, call in GUARDIAN_CALLS:
        refusal = _refusal(call(world, family.ids()))
        if (type(refusal), str(refusal)) != (NotFoundError, told):
            wrong.append(f"{description}: {type(refusal).__name__} {refusal}")
    for description, call in OTHER_CALLS:
        erased = _refusal(call(world, family.ids()))
        missing = _refusal(call(world, MISSING_IDS))
        if (type(erased), str(erased)) != (type(missing), str(missing)):
            wrong.append(f"{description}: {erased!r}, for a missing record {missing!r}")
        elif type(erased) is not NotFoundError:
            wrong.append(f"{description}: {erased!r}")
    assert not wrong, "\n".join(wrong)
    run(world.gateway.settle())


def test_lists_leave_the_erased_child_out(world: World) -> None:
    family = _story(world)
    _erase(world, "alice", family.child, NAME)
    gw, alice, house, school = (
        world.gateway,
        world["alice"],
        world["dr-house"],
        world["school-a-office"],
    )

    async def lists() -> dict[str, list[str]]:
        return {
            "alice children": _children(await gw.evaluate(alice, "medical", "listChildren", {})),
            "doctor children": _children(await gw.evaluate(house, "medical", "listChildren", {})),
            "alice agreements": _children(
                await gw.evaluate(alice, "medical", "listAgreements", {})
            ),
            "doctor requests": _children(await gw.list_report_requests(house)),
            "school admissions": _children(
                await gw.evaluate(school, "report", "listAdmissionRequests", {})
            ),
            "school reports": _children(await gw.evaluate(school, "report", "listReports", {})),
            "alice reports": _children(await gw.evaluate(alice, "report", "listReports", {})),
        }

    found = run(lists())
    assert found == {
        "alice children": [family.other],
        "doctor children": [family.other],
        "alice agreements": [family.other],
        "doctor requests": [],
        "school admissions": [],
        "school reports": [],
        "alice reports": [],
    }
    card = run(gw.evaluate(house, "medical", "readCard", {"childId": family.other}))
    assert card["childName"] == "Noah Martin"


def _children(page: Any) -> list[str]:
    return [entry["item"].get("childId", entry["item"]["id"]) for entry in page["entries"]]


def test_the_guardian_lists_the_erasure_in_the_access_log(world: World) -> None:
    family = _story(world)
    alice = world["alice"]
    before = run(world.gateway.list_access_log(alice, family.child))
    assert {entry["item"]["outcome"] for entry in before["entries"]} == {"PERMITTED"}
    _erase(world, "alice", family.child, NAME)
    after = run(world.gateway.list_access_log(alice, family.child))
    entries = [entry["item"] for entry in after["entries"]]
    assert len(entries) == 2 and not after["hasMore"]  # one on each channel
    for entry in entries:
        assert (entry["outcome"], entry["what"], entry["recordId"]) == (
            "ERASED",
            "CHILD",
            family.child,
        )
        assert (entry["readerUid"], entry["purpose"]) == ("alice", "GUARDIAN")


# -- the server's erasure ---------------------------------------------------------------------


def test_the_operator_completes_an_erasure_that_destroyed_the_keys_only(world: World) -> None:
    family = _story(world)
    keyrings = world.gateway.keyrings
    assert keyrings is not None
    first = "2026-01-02T03:04:05.000000Z"
    for name in CHANNELS:  # a run that stopped after destroying the keys
        keyrings[name].destroy(family.child, first)
    alice = world["alice"]
    refusal = _refusal(
        world.gateway.evaluate(alice, "medical", "readChild", {"childId": family.child})
    )
    assert str(refusal) == "No such child is visible to you."

    receipt = run(world.gateway.erase_child(SERVER, family.child, None))
    assert receipt == {
        "childId": family.child,
        "erasedAt": first,
        "channels": ["medical", "report"],
    }
    record = run(world.gateway.evaluate(alice, "medical", "readErasure", {"childId": family.child}))
    assert record == {
        "childId": family.child,
        "erasedAt": first,
        "guardians": ["parents/alice"],
        "erasedBy": "healthledger",
    }
    refusal = _refusal(world.gateway.evaluate(alice, "report", "readReport", {"id": family.report}))
    assert str(refusal) == "This child's records were erased on 2026-01-02."
    # Once more: the same receipt, and nothing written.
    tips = _tips(world)
    assert run(world.gateway.erase_child(SERVER, family.child, None)) == receipt
    assert _tips(world) == tips


def test_the_operator_completes_an_erasure_recorded_on_one_channel(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    family = _story(world)
    gw = world.gateway
    submit = gw._submit

    async def stops_on_report(
        caller: Any, channel: str, function: str, *args: Any, **kw: Any
    ) -> Any:
        if (channel, function) == ("report", "recordErasure"):
            raise BackendUnavailableError("The report channel's ledger went away.")
        return await submit(caller, channel, function, *args, **kw)

    monkeypatch.setattr(gw, "_submit", stops_on_report)
    with pytest.raises(BackendUnavailableError):
        _erase(world, "alice", family.child, NAME)
    monkeypatch.undo()
    alice = world["alice"]
    told = _refusal(gw.evaluate(alice, "medical", "readChild", {"childId": family.child}))
    assert "erased on" in str(told)
    not_yet = _refusal(gw.evaluate(alice, "report", "readReport", {"id": family.report}))
    assert str(not_yet) == "No such report is visible to you."

    receipt = run(gw.erase_child(SERVER, family.child, None))
    assert receipt["channels"] == ["medical", "report"]
    now_told = _refusal(gw.evaluate(alice, "report", "readReport", {"id": family.report}))
    assert str(now_told) == str(told)
    # The record keeps who erased it first, on the channel where it was recorded.
    record = run(gw.evaluate(alice, "medical", "readErasure", {"childId": family.child}))
    assert (record["erasedBy"], record["erasedAt"]) == ("parents/alice", receipt["erasedAt"])


def test_the_operator_erasing_an_unknown_child_changes_nothing(world: World) -> None:
    _story(world)
    tips = _tips(world)
    missing = MISSING_IDS["child"]
    with pytest.raises(NotFoundError):
        run(world.gateway.erase_child(SERVER, missing, None))
    keyrings = world.gateway.keyrings
    assert keyrings is not None
    assert [keyrings[name].store.get(name, missing) for name in CHANNELS] == [None, None]
    assert _tips(world) == tips


def test_a_gateway_in_clear_cannot_erase(world: World) -> None:
    ledger = open_ledger("memory://", batch_timeout_ms=1)
    try:
        channels = {name: ledger.channel(name) for name in CHANNELS}
        clear = Gateway(channels, world.gateway.policy, world.gateway.directory)
        with pytest.raises(ForbiddenError, match="in clear"):
            run(clear.erase_child(SERVER, MISSING_IDS["child"], None))
        with pytest.raises(ValueError, match="channel report"):
            Gateway(
                channels,
                world.gateway.policy,
                world.gateway.directory,
                keyrings={"medical": (world.gateway.keyrings or {})["medical"]},
            )
    finally:
        ledger.close()


def test_concurrent_erasures_by_both_paths_record_one_erasure(world: World) -> None:
    family = _story(world)
    gw = world.gateway

    async def both() -> list[Any]:
        return await asyncio.gather(
            gw.erase_child(world["alice"], family.child, NAME),
            gw.erase_child(SERVER, family.child, None),
            return_exceptions=True,
        )

    outcomes = run(both())
    receipts = [o for o in outcomes if isinstance(o, dict)]
    assert receipts, outcomes
    assert all(isinstance(o, dict | NotFoundError) for o in outcomes), outcomes
    assert len({r["erasedAt"] for r in receipts}) == 1
    for name in CHANNELS:
        erased = world.ledger.store.read_state(name, f"erased/{family.child}")
        assert erased is not None and erased.json()["erasedAt"] == receipts[0]["erasedAt"]
