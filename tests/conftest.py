"""Shared fixtures: a fresh ledger URL on each backend, cleaned up afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from tests.services import POSTGRES_URL, REDIS_URL, unique_name

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
        base = POSTGRES_URL.split("?", 1)[0]
        yield f"{base}?schema={schema}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    else:
        prefix = unique_name("hlstory")
        yield f"{REDIS_URL}?prefix={prefix}"
        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
