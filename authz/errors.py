"""Refusals of the identity and access layer; `code` is the API error code."""

from __future__ import annotations

from chaincode.errors import Forbidden


class Unauthenticated(Exception):
    """No usable client certificate (missing, unknown CA, expired, revoked): UNAUTHENTICATED."""

    code = "UNAUTHENTICATED"


__all__ = ["Forbidden", "Unauthenticated"]
