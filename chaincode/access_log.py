"""Access logs: each child's record of who read its protected data, under which purpose.

What is protected: the child record (CHILD), the medical card (MEDICAL_CARD), the
card's history (CARD_HISTORY) and a report's content (REPORT_CONTENT). A query
that returns any of them asks its contract's read rule for the purpose the read
is granted under (`medical.card_purpose`, `report.report_purpose`) and notes the
read on its context (`TxContext.read_granted`); a query that refuses one notes
the refusal (`TxContext.read_refused`). The gateway then records the notes with
`recordAccess` on the channel of the record read, giving them as transient data:
no caller can name a purpose, a record or a reader, since the reader is the
transaction's caller and the time its timestamp.

Entries are kept under `access/CHILD/ENTRY` (entry ids in time order) and hold
ids, names and a version, never anything that was read. A refused read of a
record that exists is recorded once per reader, record and minute
(`refused/READER/WHAT/RECORD/MINUTE` says it was); a transaction recording a
reader's refusals also writes `refusals/READER`, so that it is written alike
whether the records the reader was refused exist or not. The child's guardians
are told of every entry of a reader who is not one of them (`AccessRecorded`).

Entries belong to their child and are sealed with its key, so an erasure takes
them along; the one entry that records the erasure itself (outcome ERASED,
erasure.py) is kept in clear, as is `refusals/READER`, which names no child.
"""

from __future__ import annotations

from typing import Any

from domain.errors import ForbiddenError, NotFoundError

from . import paging
from .base import TxContext, transaction
from .people import person_of
from .records import AccessEntry, AccessEntryView, AccessFacts, Page

OBJECTS = ("MEDICAL_CARD", "CARD_HISTORY", "REPORT_CONTENT", "CHILD")
PURPOSES = ("GUARDIAN", "TREATMENT", "SCHOOL_ADMISSION", "EMERGENCY", "ADMINISTRATION")
OUTCOMES = ("PERMITTED", "REFUSED", "ERASED")
# The purpose a refused reader of each role would have read under.
CLAIMED_PURPOSES = {"parent": "GUARDIAN", "doctor": "TREATMENT", "school": "SCHOOL_ADMISSION"}


def read_of(
    child_id: str,
    what: str,
    record_id: str,
    *,
    version: int | None,
    purpose: str,
    guardians: list[str],
) -> AccessFacts:
    """The facts of one read, as a contract notes them."""
    return {
        "childId": child_id,
        "what": what,
        "recordId": record_id,
        "version": version,
        "purpose": purpose,
        "guardians": list(guardians),
    }


def claimed_purpose(ctx: TxContext) -> str:
    """What a REFUSED entry names as its purpose: the one the caller's role reads under
    (an administrator's is ADMINISTRATION), since no rule granted any."""
    return CLAIMED_PURPOSES.get(ctx.caller.role, "ADMINISTRATION")


def record(ctx: TxContext) -> list[AccessEntry]:
    """`recordAccess`: the entries of the reads the gateway gives as transient data.

    `access` are recorded PERMITTED. `refusals` are recorded REFUSED unless the reader was
    already refused the same record this minute. Raises ForbiddenError when the gateway
    gave neither: only it records reads.
    """
    granted, refusals = ctx.transient.get("access"), ctx.transient.get("refusals")
    if granted is None and refusals is None:
        raise ForbiddenError("Only the server records reads in an access log.")
    recorded = list(granted or [])
    # A read of a child erased since is refused (NOT_FOUND): what was read is gone.
    entries = [put_entry(ctx, facts, "PERMITTED") for facts in recorded]
    if refusals is not None:
        reader = person_of(ctx.caller)
        minute = ctx.timestamp[:16]
        marked: set[str] = set()
        for facts in refusals:
            mark = f"refused/{reader}/{facts['what']}/{facts['recordId']}/{minute}"
            # A simulation does not see its own writes: one batch may name a record twice.
            if mark in marked or ctx.get_state(mark) is not None:
                continue
            marked.add(mark)
            try:
                entry = put_entry(ctx, facts, "REFUSED")
            except NotFoundError:
                # The child was erased since the refusal: its log went with it.
                continue
            ctx.put_state(mark, {"entryId": entry["id"]}, child=facts["childId"])
            entries.append(entry)
            recorded.append(facts)
        ctx.put_state(f"refusals/{reader}", {"at": ctx.timestamp}, child=None)
    _tell_guardians(ctx, recorded)
    return entries


def page(ctx: TxContext, child_id: str, first: Any, after: Any) -> Page[AccessEntryView]:
    """A page of the child's entries on this channel, newest first, each with the number of
    the block that holds it (its key's version). A position is an entry's key, alike on
    both channels, so the gateway goes on after one on both (Gateway.list_access_log)."""
    prefix = f"access/{child_id}/"

    def load(entry_id: str) -> AccessEntryView | None:
        key = prefix + entry_id
        entry: AccessEntry | None = ctx.get_state(key)
        version = ctx.version_of(key)
        if entry is None or version is None:
            return None
        return {**entry, "blockNumber": version[0]}

    return paging.newest_first(ctx, [prefix], first=first, after=after, load=load)


def put_entry(
    ctx: TxContext, facts: AccessFacts, outcome: str, *, sealed: bool = True
) -> AccessEntry:
    """Write an entry of the caller's read, sealed with its child's key unless `sealed` is
    False (only the entry of an erasure, which must outlive the child's key)."""
    entry_id = ctx.new_id("access")
    entry: AccessEntry = {
        "id": entry_id,
        "at": ctx.timestamp,
        "childId": facts["childId"],
        "readerUid": ctx.caller.uid,
        "readerOrg": ctx.caller.org,
        "readerRole": ctx.caller.role,
        "what": facts["what"],
        "recordId": facts["recordId"],
        "version": facts["version"],
        "purpose": facts["purpose"],
        "outcome": outcome,
    }
    child = facts["childId"] if sealed else None
    ctx.put_state(f"access/{facts['childId']}/{entry_id}", entry, child=child)
    return entry


def _tell_guardians(ctx: TxContext, reads: list[AccessFacts]) -> None:
    """One AccessRecorded per child to its guardians, unless the reader is one of them."""
    reader = person_of(ctx.caller)
    guardians: dict[str, set[str]] = {}
    for facts in reads:
        guardians.setdefault(facts["childId"], set()).update(facts["guardians"])
    for child_id, people in guardians.items():
        if reader not in people:
            ctx.set_event(
                "AccessRecorded", {"subjectId": child_id, "people": sorted(people), "orgs": []}
            )


class RecordsAccess:
    """Gives a contract `recordAccess`, the one function that writes its channel's entries."""

    @transaction("recordAccess")
    def record_access(self, ctx: TxContext) -> list[AccessEntry]:
        """The server's own: records the reads of this channel it gives (`record`)."""
        return record(ctx)
