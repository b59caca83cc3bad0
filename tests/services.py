"""Addresses of the real PostgreSQL and Redis the tests use (overridable by environment)."""

from __future__ import annotations

import os
import uuid

POSTGRES_URL = os.environ.get(
    "HEALTHLEDGER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("HEALTHLEDGER_TEST_REDIS", "redis://127.0.0.1:6379/0")


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"
