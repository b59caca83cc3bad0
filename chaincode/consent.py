"""Consent that ends: when a consent is in force, the `validUntil` argument, and the ends
still to be announced.

A consent with a `validUntil` — an agreement, a school's permission to read a report, an
emergency access — is in force while the time of the transaction (for a query, the
server's clock) is before it, and has ended from that instant on, whether or not anyone
has been told. Telling is a transaction of its own, since time passing writes nothing:
each end still to be announced is indexed under `consent-ends/VALIDUNTIL/...`, and the
server, as `SERVER`, asks each contract for the ends that are due (`dueConsents`) and has
them announced (`expireConsents`), which emits the events and removes the index entries.
An index entry belongs to the consent's child (sealed with its key): once the child is
erased, its entries are removed when due, without an announcement.

Times are the ledger's canonical timestamps (`format_timestamp`): fixed width, so they
compare as text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from domain.errors import BadInputError, ForbiddenError
from ledger_backends.records import format_timestamp, parse_timestamp

from .base import TxContext
from .records import ConsentEnd

ENDS = "consent-ends/"
# Ends announced by one transaction; the server asks again while a batch comes back full.
DUE_MAX = 100
SERVER_ROLE = "server"


@dataclass(frozen=True)
class ServerCaller:
    """The server itself, for what it does on no user's behalf: announcing ends that are due
    and reading whom to tell of a report request. No certificate carries its role (a role
    outside authz.roles is refused), so no user can call as it."""

    uid: str = "healthledger"
    msp: str = ""
    org: str = ""
    role: str = SERVER_ROLE


SERVER = ServerCaller()


def require_server(ctx: TxContext) -> None:
    if ctx.caller.role != SERVER_ROLE:
        raise ForbiddenError("Only the server itself does this.")


def in_force(ctx: TxContext, valid_until: str | None) -> bool:
    """Whether a consent ending at `valid_until` (None: no end) still holds now."""
    return valid_until is None or ctx.timestamp < valid_until


def after(at: str, *, days: int = 0, minutes: int = 0) -> str:
    """The time so long after `at`."""
    return format_timestamp(parse_timestamp(at) + timedelta(days=days, minutes=minutes))


def valid_until(ctx: TxContext, value: Any) -> str:
    """A `validUntil` argument: a canonical timestamp after the transaction's time."""
    text = value if isinstance(value, str) else ""
    try:
        canonical = format_timestamp(parse_timestamp(text)) == text
    except ValueError:
        canonical = False
    if not canonical:
        raise BadInputError("validUntil must be a time in UTC like 2026-10-01T08:00:00.000000Z.")
    if text <= ctx.timestamp:
        raise BadInputError("validUntil must lie in the future.")
    return text


def end_key(end: ConsentEnd, at: str) -> str:
    suffix = f"/{end['school']}" if "school" in end else ""
    return f"{ENDS}{at}/{end['kind']}/{end['id']}{suffix}"


def index_end(ctx: TxContext, end: ConsentEnd, at: str | None, *, child: str) -> None:
    """Index the end at `at` (None: the consent has no end) to be announced when it comes;
    the entry belongs to `child`, the child the consent is about."""
    if at is not None:
        ctx.put_state(end_key(end, at), end, child=child)


def forget_end(ctx: TxContext, end: ConsentEnd, at: str | None) -> bool:
    """Remove the end at `at` from the index; whether it was still to be announced."""
    if at is None:
        return False
    key = end_key(end, at)
    waiting = ctx.get_state(key) is not None
    if waiting:
        ctx.del_state(key)
    return waiting


def due(ctx: TxContext) -> list[str]:
    """For the server: the index keys of up to DUE_MAX ends that have come and are not yet
    announced, earliest first."""
    require_server(ctx)
    found = ctx.get_keys_page(ENDS, after=None, limit=DUE_MAX, reverse=False)
    return [key for key in found if key[len(ENDS) :].split("/", 1)[0] <= ctx.timestamp]


def take_due(ctx: TxContext, keys: Any) -> list[ConsentEnd]:
    """For the server: the ends the `due` keys name that are still to be announced and have
    come, each removed from the index; keys announced meanwhile are skipped, and those of
    an erased child removed and not returned (nothing is left to announce to)."""
    require_server(ctx)
    if not isinstance(keys, list) or len(keys) > DUE_MAX:
        raise BadInputError(f"keys must be a list of at most {DUE_MAX} index keys.")
    if not all(isinstance(key, str) and key.startswith(ENDS) for key in keys):
        raise BadInputError("Each key must be a key of the consent-ends index.")
    ends: list[ConsentEnd] = []
    for key in dict.fromkeys(keys):
        if key[len(ENDS) :].split("/", 1)[0] > ctx.timestamp:
            continue
        end: ConsentEnd | None = ctx.get_state(key)
        if end is not None:
            ctx.del_state(key)
            ends.append(end)
        elif ctx.version_of(key) is not None:
            ctx.del_state(key)
    return ends
