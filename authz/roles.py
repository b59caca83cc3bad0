"""The four roles and which kind of organisation each may belong to."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    DOCTOR = "doctor"
    PARENT = "parent"
    SCHOOL = "school"
    ADMIN = "admin"


ROLE_ORG_KINDS: dict[Role, frozenset[str]] = {
    Role.DOCTOR: frozenset({"hospital"}),
    Role.PARENT: frozenset({"parents"}),
    Role.SCHOOL: frozenset({"school"}),
    Role.ADMIN: frozenset({"hospital", "parents", "school"}),
}


def role_fits(role: str, org_kind: str) -> bool:
    """Whether a user with `role` may belong to an organisation of `org_kind`."""
    try:
        return org_kind in ROLE_ORG_KINDS[Role(role)]
    except ValueError:
        return False
