"""The per-request GraphQL context: who is calling, and the server's services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strawberry.types import Info

from authz.identity import Identity

from .services import Services


@dataclass
class Context:
    identity: Identity
    services: Services
    request: Any = None
    # Child.fhir answered so far: one whole record a request (api.types).
    fhir_exports: int = 0


def context_of(info: Info) -> Context:
    context: Context = info.context
    return context
