"""Erasure: a child's records made unreadable for good, by destroying the child's keys.

Every value that belongs to a child is sealed with that child's data key on its
channel (encryption/). The chain itself never forgets — its blocks are hashed
and chained — so erasing a child means destroying its keys in every channel's
key store: the sealed values stay where they are, and the ledger still
verifies, but no one can open them again. Reads find nothing: the child, its
card and history, agreements, emergency accesses, admissions, report requests,
reports and access-log entries read as absent, and lists leave them out.

What is left in clear is the erasure itself, written by `recordErasure` on each
channel once the keys are gone: `erased/CHILD` (when, by whom, and the
guardians, so that they — and only they — are told "erased on DATE" instead of
"not found"), an access-log entry with outcome ERASED, and the ChildErased
event for the guardians. Anyone else is answered exactly as for a child that
never existed.

Who erases: a guardian, confirming with the child's full name exactly as
registered, or the server on an operator's request (`healthledger erase`). The
gateway reads who the guardians are, destroys the keys, then records the
erasure on every channel (Gateway.erase_child); each step may be repeated, so
running the erasure again completes one that stopped half-way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.errors import BadInputError, ForbiddenError, NotFoundError
from encryption.keyring import Keyring

from . import access_log
from .base import TxContext, transaction
from .consent import SERVER_ROLE
from .people import person_of
from .records import ChildGuardians, ErasureFacts, ErasureReceipt, ErasureRecord

ERASED = "erased/"
# The server as the author of an erasure an operator asked for.
SERVER_AUTHOR = "healthledger"
# Index keys read at a time when the guardians of a half-erased child are looked up.
INDEX_BATCH = 500


def erased_key(child_id: str) -> str:
    return f"{ERASED}{child_id}"


def erasure_of(ctx: TxContext, child_id: Any) -> ErasureRecord | None:
    """The child's erasure record, None if it was not erased (or the id is no id)."""
    if not isinstance(child_id, str) or not child_id:
        return None
    found: ErasureRecord | None = ctx.get_state(erased_key(child_id))
    return found


def names_caller(ctx: TxContext, erasure: ErasureRecord) -> bool:
    """Whether the caller is one of the guardians the erasure names."""
    return ctx.caller.role == "parent" and person_of(ctx.caller) in erasure["guardians"]


def record(ctx: TxContext) -> ErasureRecord:
    """`recordErasure`: records the erasure the gateway gives as transient data (`erasure`),
    once; a second call returns the first record and writes nothing. ForbiddenError
    without it: only the gateway records an erasure, after destroying the keys."""
    facts = ctx.transient.get("erasure")
    if facts is None:
        raise ForbiddenError("Only the server records an erasure.")
    child_id = facts["childId"]
    recorded = erasure_of(ctx, child_id)
    if recorded is not None:
        return recorded
    guardians = sorted(set(facts["guardians"]))
    by_guardian = ctx.caller.role == "parent" and person_of(ctx.caller) in guardians
    erasure: ErasureRecord = {
        "childId": child_id,
        "erasedAt": facts["erasedAt"],
        "guardians": guardians,
        "erasedBy": person_of(ctx.caller) if ctx.caller.role != SERVER_ROLE else SERVER_AUTHOR,
    }
    # In clear: these outlive the child's keys, and name no one but its guardians.
    ctx.put_state(erased_key(child_id), erasure, child=None)
    access_log.put_entry(
        ctx,
        access_log.read_of(
            child_id,
            "CHILD",
            child_id,
            version=None,
            purpose="GUARDIAN" if by_guardian else "ADMINISTRATION",
            guardians=guardians,
        ),
        "ERASED",
        sealed=False,
    )
    ctx.set_event("ChildErased", {"subjectId": child_id, "people": guardians, "orgs": []})
    return erasure


def read(ctx: TxContext, child_id: Any) -> ErasureRecord:
    """`readErasure`: the erasure record for a guardian it names, or for the server;
    NOT_FOUND, as for a child that does not exist, for everyone else."""
    erasure = erasure_of(ctx, child_id)
    if erasure is None or not (ctx.caller.role == SERVER_ROLE or names_caller(ctx, erasure)):
        raise NotFoundError("No such child is visible to you.")
    return erasure


def indexed_guardians(ctx: TxContext, child_id: Any) -> list[str]:
    """The guardians (ORG/UID) the guardian index names for the child.

    Its keys, `guardian-child/ORG/UID/CHILD`, are in clear and never removed, so they
    still say who the guardians were when the child's records are already unreadable:
    an erasure that destroyed the keys and stopped before recording itself is completed
    with them. The whole index is read (keys only): an operator's repair, not a request.
    """
    if not isinstance(child_id, str) or not child_id:
        return []
    prefix, suffix = "guardian-child/", f"/{child_id}"
    found: list[str] = []
    after: str | None = None
    while True:
        keys = ctx.get_keys_page(prefix, after=after, limit=INDEX_BATCH, reverse=False)
        found.extend(key[len(prefix) : -len(suffix)] for key in keys if key.endswith(suffix))
        if len(keys) < INDEX_BATCH:
            return sorted(found)
        after = keys[-1]


class RecordsErasure:
    """Gives a contract `recordErasure`, and tells an erased child's guardians why a record
    they ask for is gone (Contract.invoke)."""

    @transaction("recordErasure")
    def record_erasure(self, ctx: TxContext) -> ErasureRecord:
        """The server's own: records an erasure on this channel (`record`)."""
        return record(ctx)

    def erased_refusal(self, ctx: TxContext) -> NotFoundError | None:
        """For a guardian named in the erasure of a child this call met erased values of:
        NOT_FOUND saying when the records were erased. None (the refusal unchanged) for
        everyone else, and before the erasure is recorded."""
        for child_id in sorted(ctx.erased):
            erasure = erasure_of(ctx, child_id)
            if erasure is not None and names_caller(ctx, erasure):
                return NotFoundError(
                    f"This child's records were erased on {erasure['erasedAt'][:10]}."
                )
        return None


# -- what the gateway does around the transactions -----------------------------------------


def check_confirmation(child: ChildGuardians, confirm: str | None) -> None:
    """A guardian confirms an erasure by typing the child's full name exactly."""
    if confirm != child["fullName"]:
        raise BadInputError(
            "confirm must be the child's full name exactly as registered; nothing was erased."
        )


def destroy_keys(keyrings: Mapping[str, Keyring], child_id: str, at: str) -> str:
    """Destroy the child's keys on every channel; returns when the child was erased: the
    earliest time a key store keeps, so that repeating an erasure keeps its first date."""
    return min(keyring.destroy(child_id, at).erased_at or at for keyring in keyrings.values())


def facts(child_id: str, guardians: list[str], erased_at: str) -> ErasureFacts:
    return {"childId": child_id, "guardians": sorted(set(guardians)), "erasedAt": erased_at}


def facts_of(erasure: ErasureRecord) -> ErasureFacts:
    """The facts a recorded erasure rests on, as the gateway gives them to a contract."""
    return facts(erasure["childId"], erasure["guardians"], erasure["erasedAt"])


def receipt(erasure: ErasureRecord, channels: list[str]) -> ErasureReceipt:
    return {"childId": erasure["childId"], "erasedAt": erasure["erasedAt"], "channels": channels}
