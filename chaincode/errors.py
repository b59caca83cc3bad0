"""Refusals a contract or the gateway gives; `code` is the API error code (docs/graphql.md)."""

from __future__ import annotations


class ContractError(Exception):
    """A refusal with a message for people; never names another person's data."""

    code = "INTERNAL"


class BadInput(ContractError):
    code = "BAD_USER_INPUT"


class NotFound(ContractError):
    """No such object visible to the caller (also where admitting it exists would leak)."""

    code = "NOT_FOUND"


class Forbidden(ContractError):
    """A caller who may see the object but not do this to it, or not touch this channel."""

    code = "FORBIDDEN"


class Conflict(ContractError):
    """A stale expected version, an illegal state transition, or MVCC conflicts beyond retries."""

    code = "CONFLICT"
