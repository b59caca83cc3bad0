"""Who may call a field, stated next to it; the contracts then check the relationship."""

from __future__ import annotations

from typing import Any, ClassVar

from strawberry.permission import BasePermission
from strawberry.types import Info


class _RolePermission(BasePermission):
    roles: ClassVar[frozenset[str]] = frozenset()
    error_extensions: ClassVar[dict[str, Any]] = {"code": "FORBIDDEN"}  # type: ignore[misc]

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return str(info.context.identity.role) in self.roles


class ParentsOnly(_RolePermission):
    roles = frozenset({"parent"})
    message = "Only parents can do this."


class DoctorsOnly(_RolePermission):
    roles = frozenset({"doctor"})
    message = "Only doctors can do this."


class SchoolsOnly(_RolePermission):
    roles = frozenset({"school"})
    message = "Only school staff can do this."


class MedicalChannelMembers(BasePermission):
    """Hospital and parents only: schools never reach the medical channel."""

    message = "Your organisation has no access to channel 'medical'."
    error_extensions: ClassVar[dict[str, Any]] = {"code": "FORBIDDEN"}  # type: ignore[misc]

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return bool(info.context.services.access.is_member(info.context.identity, "medical"))


class ReportRecordReaders(BasePermission):
    """Guardians and the author: a report's proof opens the stored record, whose text names
    every school's permission, so a school (shown its own view only) never gets one."""

    message = (
        "A school is not shown the report's stored record, which names other schools' permissions."
    )
    error_extensions: ClassVar[dict[str, Any]] = {"code": "NOT_FOUND"}  # type: ignore[misc]

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return str(info.context.identity.role) != "school"
