"""Refusals: a small typed tree; `code` is the error code the API answers with.

The identity layer, the contracts and the gateway raise them; the API sends each
with its code and its message, a sentence for people that never names another
person's data.
"""

from __future__ import annotations


class RefusalError(Exception):
    """A request refused for a reason its caller can act on."""

    code = "INTERNAL"


class UnauthenticatedError(RefusalError):
    """No usable client certificate (missing, unknown CA, expired, revoked)."""

    code = "UNAUTHENTICATED"


class ForbiddenError(RefusalError):
    """A caller who may see the object but not do this to it, or not touch this channel."""

    code = "FORBIDDEN"


class NotFoundError(RefusalError):
    """No such object visible to the caller (also where admitting it exists would leak)."""

    code = "NOT_FOUND"


class BadInputError(RefusalError):
    """An argument that breaks a rule the message names."""

    code = "BAD_USER_INPUT"


class ConflictError(RefusalError):
    """A stale expected version, an illegal state transition, or MVCC conflicts beyond retries."""

    code = "CONFLICT"
