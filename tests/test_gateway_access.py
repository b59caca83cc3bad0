"""The "who may do what" refusals (docs/security.md) through the gateway, on every backend.

One family's story is set up (alice's child, dr-house under an ACTIVE agreement,
an admission to school-a, a READY report), then everyone outside each
relationship tries each operation. The allowed paths are the story itself
(test_gateway_story.py); the per-function detail is in test_contract_*.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from authz.identity import Identity
from domain.errors import ForbiddenError, NotFoundError, RefusalError
from tests.test_gateway_story import World

# The story tests' fixtures: a network of enrolled users and a gateway over `ledger_url`.
from tests.test_gateway_story import net as net
from tests.test_gateway_story import world as world

Attempt = Callable[[World, dict[str, str]], Awaitable[Any]]


def _fill(args: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    return {k: v.format(**ids) if isinstance(v, str) else v for k, v in args.items()}


def _submit(uid: str, channel: str, function: str, **args: Any) -> Attempt:
    def call(w: World, ids: dict[str, str]) -> Awaitable[Any]:
        filled = _fill(args, ids)
        return w.gateway.submit(w[uid], channel, function, filled)

    return call


def _evaluate(uid: str, channel: str, function: str, **args: Any) -> Attempt:
    def call(w: World, ids: dict[str, str]) -> Awaitable[Any]:
        filled = _fill(args, ids)
        return w.gateway.evaluate(w[uid], channel, function, filled)

    return call


REFUSALS: list[tuple[str, Attempt, str]] = [
    # child, card and history: guardians and the ACTIVE doctor only; schools never
    (
        "unrelated parent reads the child",
        _evaluate("bob", "medical", "readChild", childId="{child}"),
        "NOT_FOUND",
    ),
    (
        "doctor without agreement reads the card",
        _evaluate("dr-quinn", "medical", "readCard", childId="{child}"),
        "NOT_FOUND",
    ),
    (
        "admin reads the card",
        _evaluate("hospital-admin", "medical", "readCard", childId="{child}"),
        "NOT_FOUND",
    ),
    (
        "school reads the card",
        _evaluate("school-a-office", "medical", "readCard", childId="{child}"),
        "FORBIDDEN",
    ),
    (
        "unrelated parent reads the history",
        _evaluate("bob", "medical", "cardHistory", childId="{child}"),
        "NOT_FOUND",
    ),
    (
        "school reads the history",
        _evaluate("school-b-office", "medical", "cardHistory", childId="{child}"),
        "FORBIDDEN",
    ),
    (
        "guardian updates the card",
        _submit(
            "alice",
            "medical",
            "updateMedicalCard",
            childId="{child}",
            expectedVersion=1,
            patch={"notes": "x"},
        ),
        "FORBIDDEN",
    ),
    (
        "doctor without agreement updates the card",
        _submit(
            "dr-quinn",
            "medical",
            "updateMedicalCard",
            childId="{child}",
            expectedVersion=1,
            patch={"notes": "x"},
        ),
        "NOT_FOUND",
    ),
    # agreements: parent signs/revokes, the named doctor accepts
    (
        "unrelated parent signs",
        _submit("bob", "medical", "signAgreement", childId="{child}", doctorUid="dr-quinn"),
        "NOT_FOUND",
    ),
    (
        "another doctor accepts",
        _submit("dr-house", "medical", "acceptAgreement", id="{pending}"),
        "NOT_FOUND",
    ),
    (
        "the parent accepts for the doctor",
        _submit("alice", "medical", "acceptAgreement", id="{pending}"),
        "FORBIDDEN",
    ),
    (
        "the doctor revokes",
        _submit("dr-house", "medical", "revokeAgreement", id="{agreement}"),
        "FORBIDDEN",
    ),
    (
        "unrelated parent revokes",
        _submit("bob", "medical", "revokeAgreement", id="{agreement}"),
        "NOT_FOUND",
    ),
    # admissions: a guardian creates, that school decides
    (
        "wrong school accepts",
        _submit("school-b-office", "report", "acceptAdmissionRequest", id="{admission}"),
        "NOT_FOUND",
    ),
    (
        "guardian accepts for the school",
        _submit("alice", "report", "acceptAdmissionRequest", id="{admission}"),
        "FORBIDDEN",
    ),
    (
        "wrong school requests a report",
        _submit(
            "school-b-office", "report", "createReportRequest", admissionRequestId="{admission}"
        ),
        "NOT_FOUND",
    ),
    # reports: guardians approve and revoke; content only for permitted schools
    (
        "unrelated parent reads the report",
        _evaluate("bob", "report", "readReport", id="{report}"),
        "NOT_FOUND",
    ),
    (
        "unrelated school reads the report",
        _evaluate("school-b-office", "report", "readReport", id="{report}"),
        "NOT_FOUND",
    ),
    (
        "unrelated parent approves",
        _submit("bob", "report", "approveReport", id="{report}", schools=["school-a"]),
        "NOT_FOUND",
    ),
    (
        "the author approves",
        _submit("dr-house", "report", "approveReport", id="{report}", schools=["school-a"]),
        "FORBIDDEN",
    ),
    (
        "the requesting school approves",
        _submit("school-a-office", "report", "approveReport", id="{report}", schools=["school-a"]),
        "FORBIDDEN",
    ),
    (
        "the school withdraws a permission",
        _submit(
            "school-a-office", "report", "revokeReportPermission", id="{report}", school="school-a"
        ),
        "FORBIDDEN",
    ),
]


def _story(w: World) -> dict[str, str]:
    gw, alice, house, school_a = w.gateway, w["alice"], w["dr-house"], w["school-a-office"]

    async def run() -> dict[str, str]:
        child = await gw.submit(
            alice, "medical", "registerChild", {"fullName": "Cleo", "birthDate": "2019-06-01"}
        )
        agreement = await gw.submit(
            alice, "medical", "signAgreement", {"childId": child["id"], "doctorUid": "dr-house"}
        )
        await gw.submit(house, "medical", "acceptAgreement", {"id": agreement["id"]})
        pending = await gw.submit(
            alice, "medical", "signAgreement", {"childId": child["id"], "doctorUid": "dr-quinn"}
        )
        admission = await gw.create_admission_request(alice, child["id"], "school-a")
        await gw.submit(school_a, "report", "acceptAdmissionRequest", {"id": admission["id"]})
        request = await gw.submit(
            school_a, "report", "createReportRequest", {"admissionRequestId": admission["id"]}
        )
        report = await gw.create_report(house, request["id"], "Fit.")
        return {
            "child": child["id"],
            "agreement": agreement["id"],
            "pending": pending["id"],
            "admission": admission["id"],
            "request": request["id"],
            "report": report["id"],
        }

    return asyncio.run(run())


def test_every_refusal_of_the_access_table_holds(world: World) -> None:
    ids = _story(world)
    height_before = {
        name: world.ledger.channel(name).tip().height for name in ("medical", "report")
    }
    wrong: list[str] = []
    for description, attempt, code in REFUSALS:
        try:
            outcome = asyncio.run(attempt(world, ids))
        except RefusalError as refusal:
            if refusal.code != code:
                wrong.append(f"{description}: {refusal.code}, expected {code}")
            if "Cleo" in str(refusal) or "alice" in str(refusal):
                wrong.append(f"{description}: the refusal names the family")
        else:
            wrong.append(f"{description}: allowed ({outcome!r:.80}), expected {code}")
    assert not wrong, "\n".join(wrong)
    assert {n: world.ledger.channel(n).tip().height for n in height_before} == height_before


@pytest.mark.parametrize("uid", ["alice", "school-a-office"])
def test_a_report_by_anyone_but_a_doctor_is_refused_without_a_read_of_the_card(
    world: World, uid: str
) -> None:
    """The guardian and the requesting school see the request, but only a doctor writes its
    report: their attempt is FORBIDDEN, the card is not read for it, and nothing is written
    (the guardian's attempt used to leave a PERMITTED read of the card in the log)."""
    ids = _story(world)
    gw, alice = world.gateway, world["alice"]

    async def log() -> list[Any]:
        await gw.settle()
        return list((await gw.list_access_log(alice, ids["child"], 200))["entries"])

    async def attempt() -> tuple[list[Any], list[Any]]:
        before = await log()
        with pytest.raises(ForbiddenError, match="Only doctors write health reports"):
            await gw.create_report(world[uid], ids["request"], "Fit.")
        return before, await log()

    heights = {name: world.ledger.channel(name).tip().height for name in ("medical", "report")}
    before, after = asyncio.run(attempt())
    assert after == before
    assert {name: world.ledger.channel(name).tip().height for name in heights} == heights


@pytest.mark.parametrize("uid", ["bob", "dr-quinn", "school-b-office", "hospital-admin"])
def test_outsiders_list_nothing_of_the_family(world: World, uid: str) -> None:
    _story(world)
    caller, gw = world[uid], world.gateway

    async def lists() -> list[Any]:
        found = [
            await gw.evaluate(caller, "report", "listAdmissionRequests", {}),
            await gw.evaluate(caller, "report", "listReports", {}),
            await gw.list_report_requests(caller),
        ]
        if caller.org in ("hospital", "parents"):
            found.append(await gw.evaluate(caller, "medical", "listChildren", {}))
        if caller.role == "parent":  # dr-quinn is named in a pending agreement: he may see it
            found.append(await gw.evaluate(caller, "medical", "listAgreements", {}))
        return found

    assert all(page["entries"] == [] for page in asyncio.run(lists()))


def test_a_doctor_reaches_a_report_request_only_while_treating_its_child(world: World) -> None:
    """The gateway proves a doctor's access to one request by a point read of the request's
    child on `medical` (not by listing every patient): a doctor of other children, an admin
    and a doctor whose agreement was revoked are told it does not exist, as for an unknown id."""
    gw, alice, bob, house, quinn = (
        world.gateway,
        world["alice"],
        world["bob"],
        world["dr-house"],
        world["dr-quinn"],
    )
    school_a = world["school-a-office"]

    async def run() -> list[str]:
        child = await gw.submit(
            alice, "medical", "registerChild", {"fullName": "Cleo", "birthDate": "2019-06-01"}
        )
        # dr-quinn treats another family's child: he has patients, but not Cleo.
        other = await gw.submit(
            bob, "medical", "registerChild", {"fullName": "Dan", "birthDate": "2018-02-03"}
        )
        for parent, doctor, child_id in ((alice, house, child["id"]), (bob, quinn, other["id"])):
            signed = await gw.submit(
                parent, "medical", "signAgreement", {"childId": child_id, "doctorUid": doctor.uid}
            )
            await gw.submit(doctor, "medical", "acceptAgreement", {"id": signed["id"]})
        admission = await gw.create_admission_request(alice, child["id"], "school-a")
        await gw.submit(school_a, "report", "acceptAdmissionRequest", {"id": admission["id"]})
        request = await gw.submit(
            school_a, "report", "createReportRequest", {"admissionRequestId": admission["id"]}
        )
        assert (await gw.read_report_request(house, request["id"]))["childId"] == child["id"]
        messages = []
        for caller in (quinn, world["hospital-admin"]):
            messages += await refusals(caller, request["id"])
        messages += await refusals(house, "report-request-0123456789abcdef")
        agreements = await gw.evaluate(alice, "medical", "listAgreements", {})
        (active,) = [a for a in agreements["entries"] if a["item"]["doctorUid"] == "dr-house"]
        await gw.submit(alice, "medical", "revokeAgreement", {"id": active["item"]["id"]})
        return messages + await refusals(house, request["id"])

    async def refusals(caller: Identity, request_id: str) -> list[str]:
        """What reading the request and writing its report answer `caller`: NOT_FOUND."""
        messages = []
        for step in (
            gw.read_report_request(caller, request_id),
            gw.create_report(caller, request_id, "Fit."),
        ):
            with pytest.raises(NotFoundError) as refused:
                await step
            messages.append(str(refused.value))
        return messages

    messages = asyncio.run(run())
    assert set(messages) == {"No such report request is visible to you."}
