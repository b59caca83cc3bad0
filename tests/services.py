"""Addresses of the real PostgreSQL and Redis the tests use (overridable by environment)."""

from __future__ import annotations

import os
import uuid

import psycopg
import redis

POSTGRES_URL = os.environ.get(
    "HEALTHLEDGER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("HEALTHLEDGER_TEST_REDIS", "redis://127.0.0.1:6379/0")


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def postgres_admin_dsn() -> str:
    return POSTGRES_URL.split("?", 1)[0]


def drop_postgres_schema(schema: str) -> None:
    """Remove a test's PostgreSQL schema and everything in it."""
    with psycopg.connect(postgres_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def delete_redis_prefix(prefix: str) -> None:
    """Remove every Redis key a test wrote under its prefix."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
