"""Throwaway stores for the benchmark: a fresh, empty place per run, removed afterwards.

SQLite gets a file in a new temporary directory, PostgreSQL a new schema,
Redis a new key prefix, memory:// a new process-local store. Whatever a run
leaves there is deleted when the `scratch_store` block ends, also on error or
Ctrl-C; a clean-up failure is reported with what to remove by hand.
"""

from __future__ import annotations

import secrets
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import psycopg
import redis

BACKENDS = ("memory", "sqlite", "postgresql", "redis")
UNLINK_BATCH = 1000


@dataclass(frozen=True)
class Servers:
    """Where the shared database servers run (URLs without a schema or prefix)."""

    postgres_url: str
    redis_url: str


@dataclass(frozen=True)
class ScratchStore:
    """A ledger URL naming an empty store, and where that store lives.

    `location` is the SQLite file path, the PostgreSQL schema or the Redis key
    prefix; `server_url` the PostgreSQL or Redis server it is on.
    """

    backend: str
    url: str
    location: str = ""
    server_url: str = ""


@contextmanager
def scratch_store(backend: str, servers: Servers) -> Iterator[ScratchStore]:
    """Yield a fresh store of `backend`; remove everything in it when the block ends."""
    if backend == "memory":
        yield ScratchStore(backend, "memory://")
    elif backend == "sqlite":
        with _sqlite_scratch() as scratch:
            yield scratch
    elif backend == "postgresql":
        with _postgres_scratch(servers.postgres_url) as scratch:
            yield scratch
    elif backend == "redis":
        with _redis_scratch(servers.redis_url) as scratch:
            yield scratch
    else:
        raise ValueError(f"Unknown backend {backend!r}; use one of {', '.join(BACKENDS)}.")


def unique_name(prefix: str) -> str:
    """A name no other run uses: lower-case letters, digits and _ (valid as a schema)."""
    return f"{prefix}_{secrets.token_hex(6)}"


@contextmanager
def _sqlite_scratch() -> Iterator[ScratchStore]:
    with tempfile.TemporaryDirectory(prefix="healthledger-bench-") as directory:
        path = Path(directory) / "bench.db"
        yield ScratchStore("sqlite", f"sqlite:///{path}", location=str(path))


@contextmanager
def _postgres_scratch(server_url: str) -> Iterator[ScratchStore]:
    schema = unique_name("hlbench")
    separator = "&" if "?" in server_url else "?"
    url = f"{server_url}{separator}schema={schema}"
    try:
        yield ScratchStore("postgresql", url, location=schema, server_url=server_url)
    finally:
        _drop_schema(server_url, schema)


def _drop_schema(server_url: str, schema: str) -> None:
    try:
        with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute("SET lock_timeout = '30s'")
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    except psycopg.Error as exc:
        print(
            f"warning: could not drop PostgreSQL schema {schema!r} ({exc}); "
            f'drop it by hand: DROP SCHEMA "{schema}" CASCADE',
            file=sys.stderr,
        )


@contextmanager
def _redis_scratch(server_url: str) -> Iterator[ScratchStore]:
    prefix = unique_name("hlbench")
    separator = "&" if "?" in server_url else "?"
    url = f"{server_url}{separator}prefix={prefix}"
    try:
        yield ScratchStore("redis", url, location=prefix, server_url=server_url)
    finally:
        _delete_redis_keys(server_url, prefix)


def _delete_redis_keys(server_url: str, prefix: str) -> None:
    # The ledger names every key "PREFIX:..." and the prefix is unique, so the pattern is exact.
    try:
        client = redis.Redis.from_url(server_url, socket_timeout=30)
        with client:
            batch: list[bytes] = []
            for key in client.scan_iter(match=f"{prefix}:*", count=UNLINK_BATCH):
                batch.append(key)
                if len(batch) >= UNLINK_BATCH:
                    client.unlink(*batch)
                    batch.clear()
            if batch:
                client.unlink(*batch)
    except redis.RedisError as exc:
        print(
            f"warning: could not delete Redis keys {prefix}:* ({exc}); delete them by hand",
            file=sys.stderr,
        )


def exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    """A SIGTERM handler: SystemExit unwinds through every `finally`, so scratch stores go."""
    raise SystemExit(128 + signum)
