"""What one caller may read of a child for an export, read through the gateway as that caller.

Nothing here decides who may read what. Every read is a contract query the gateway runs as
the caller (chaincode/gateway.py): the contracts' rules answer, refusals included, and each
read of protected data enters the child's access log exactly as the same GraphQL read does.
A list is read whole, FIRST_MAX entries a page.

A school reads the `report` channel only: what it may know of a child is what the reports
permitted to it say. It is never told whether a child exists beyond that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chaincode.base import Caller
from chaincode.gateway import Gateway
from chaincode.medical import NO_CARD
from chaincode.paging import FIRST_MAX
from chaincode.records import AccessEntryView, AgreementView, CardView, ChildView, Page, ReportView
from domain.errors import NotFoundError
from ledger_backends.records import JSONValue

# readChild's refusal, which a school gets too when no report of the child is readable to it.
NOT_VISIBLE = "No such child is visible to you."


@dataclass(frozen=True)
class ChildRecord:
    """What one caller may read of a child, as the contracts gave it.

    `child` is None for a school, which reads only the `report` channel; `card` is None when
    the child has no card, and in a record of consents, which does not read it. `reports`
    hold their content in a record for an export, and not in a record of consents.
    """

    child_id: str
    child: ChildView | None
    card: CardView | None
    agreements: list[AgreementView]
    reports: list[ReportView]


async def everything(gateway: Gateway, caller: Caller, child_id: str) -> ChildRecord:
    """Whatever the caller may read of the child, each read logged as the contracts note it.

    A school gets the child's reports whose content it may read, with it; when there is
    none, the refusal readChild gives (NotFoundError, NOT_VISIBLE). Anyone else gets the
    child (readChild: its refusal passes unchanged), its card (None when it has none), and
    the agreements and the reports (with content) the caller may see of it.
    """
    if caller.role == "school":
        permitted = await _readable_reports(gateway, caller, child_id)
        if not permitted:
            raise NotFoundError(NOT_VISIBLE)
        return ChildRecord(permitted[0]["childId"], None, None, [], permitted)
    child: ChildView = await gateway.evaluate(caller, "medical", "readChild", {"childId": child_id})
    card = await _card(gateway, caller, child["id"])
    agreements: list[AgreementView] = await _every(
        gateway, caller, "medical", "listAgreements", {"childId": child["id"]}
    )
    reports = await _readable_reports(gateway, caller, child["id"])
    return ChildRecord(child["id"], child, card, agreements, reports)


async def consents(gateway: Gateway, caller: Caller, child_id: str) -> ChildRecord:
    """The agreements and reports (without content) the caller may see of the child.

    A school gets the child's reports it may see, with its own permissions only; none at
    all is no refusal, so a school learns nothing of whether the child exists. Anyone else
    reads the child first (readChild: its refusal passes unchanged).
    """
    if caller.role == "school":
        reports = await _reports(gateway, caller, child_id, with_content=False)
        return ChildRecord(child_id, None, None, [], reports)
    child: ChildView = await gateway.evaluate(caller, "medical", "readChild", {"childId": child_id})
    agreements: list[AgreementView] = await _every(
        gateway, caller, "medical", "listAgreements", {"childId": child["id"]}
    )
    reports = await _reports(gateway, caller, child["id"], with_content=False)
    return ChildRecord(child["id"], child, None, agreements, reports)


async def access_log(
    gateway: Gateway, caller: Caller, child_id: str, first: int, after: str | None
) -> Page[AccessEntryView]:
    """A page of the child's access log, for its guardians only (everyone else is refused
    as the GraphQL accessLog refuses them: NotFoundError, or ForbiddenError outside the
    `medical` channel); BadInputError for a `first` out of 1..FIRST_MAX or an `after` that
    is no position of this list."""
    return await gateway.list_access_log(caller, child_id, first, after)


async def _card(gateway: Gateway, caller: Caller, child_id: str) -> CardView | None:
    try:
        card: CardView = await gateway.evaluate(
            caller, "medical", "readCard", {"childId": child_id}
        )
    except NotFoundError as refused:
        if str(refused) == NO_CARD:
            return None
        raise
    return card


async def _readable_reports(gateway: Gateway, caller: Caller, child_id: str) -> list[ReportView]:
    """The child's reports whose content the caller may read, with it."""
    reports = await _reports(gateway, caller, child_id, with_content=True)
    return [report for report in reports if report["content"] is not None]


async def _reports(
    gateway: Gateway, caller: Caller, child_id: str, *, with_content: bool
) -> list[ReportView]:
    found: list[ReportView] = await _every(
        gateway,
        caller,
        "report",
        "listReports",
        {"childId": child_id, "withContent": with_content},
    )
    return found


async def _every(
    gateway: Gateway, caller: Caller, channel: str, function: str, args: dict[str, JSONValue]
) -> list[Any]:
    """Every item of a paged list, read FIRST_MAX at a time from where the last page ended."""
    items: list[Any] = []
    after: str | None = None
    while True:
        page: Page[Any] = await gateway.evaluate(
            caller, channel, function, {**args, "first": FIRST_MAX, "after": after}
        )
        items += [entry["item"] for entry in page["entries"]]
        if not page["hasMore"] or not page["entries"]:
            return items
        after = page["entries"][-1]["position"]
