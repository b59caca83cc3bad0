"""Refusals of the identity and access layer, mapped to API error codes by the server."""

from __future__ import annotations


class Unauthenticated(Exception):
    """No usable client certificate (missing, unknown CA, expired, revoked): UNAUTHENTICATED."""


class Forbidden(Exception):
    """A known caller without the right to this channel or object: FORBIDDEN."""
