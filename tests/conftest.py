"""Shared fixtures: a fresh ledger URL on each backend, cleaned up afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import (
    REDIS_URL,
    delete_redis_prefix,
    drop_postgres_schema,
    postgres_admin_dsn,
    unique_name,
)

BACKENDS = ["memory", "sqlite", "postgresql", "redis"]


@pytest.fixture(params=BACKENDS)
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, isolated ledger on each backend in turn (real PostgreSQL and Redis)."""
    backend = request.param
    if backend == "memory":
        yield "memory://"
    elif backend == "sqlite":
        yield f"sqlite:///{tmp_path}/ledger.db"
    elif backend == "postgresql":
        schema = unique_name("hl_story")
        yield f"{postgres_admin_dsn()}?schema={schema}"
        drop_postgres_schema(schema)
    else:
        prefix = unique_name("hlstory")
        yield f"{REDIS_URL}?prefix={prefix}"
        delete_redis_prefix(prefix)
