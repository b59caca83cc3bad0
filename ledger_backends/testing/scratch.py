"""Scratch ledgers: a fresh, empty ledger URL on any backend, and everything in it removed after.

SQLite gets a file in a new temporary directory, PostgreSQL a new schema
(`?schema=`), Redis a new key prefix (`?prefix=`), `memory://` a new store in
the process. The PostgreSQL and Redis servers are those of `selection.py`.
The ledger itself (file, schema, keys) is made when it is first opened, so a
test may also use the URL of a schema or prefix that does not exist yet.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import redis

from .selection import BACKENDS, POSTGRES_URL, REDIS_URL

UNLINK_BATCH = 1000

# Stores that cannot be reached: nothing listens on port 1, nothing can be created in /proc.
_UNREACHABLE = {
    "sqlite": "sqlite:////proc/healthledger-missing/ledger.db",
    "postgresql": "postgresql://postgres@127.0.0.1:1/test",
    "redis": "redis://127.0.0.1:1/0",
}


def scratch_url(backend: str, directory: Path | None = None) -> AbstractContextManager[str]:
    """A URL naming an empty ledger no one else uses; what it holds is removed when the block ends.

    A SQLite ledger is made in a new directory inside `directory` (default: the system's
    temporary directory); other backends ignore `directory`. Removal happens on error too; a
    removal that fails raises, with a note saying what to remove by hand. Raises ValueError
    for a backend not in `BACKENDS`.
    """
    scratch = _SCRATCH.get(backend)
    if scratch is None:
        raise ValueError(f"No backend called {backend!r}: use one of {', '.join(BACKENDS)}.")
    return scratch(directory)


def unreachable_url(backend: str) -> str:
    """A URL of `backend` whose store cannot be reached; ValueError for `memory`, always there."""
    if backend not in _UNREACHABLE:
        raise ValueError(f"A {backend} store cannot be unreachable.")
    return _UNREACHABLE[backend]


def query_option(url: str, name: str) -> str:
    """The value of one query option of a ledger URL, such as a scratch URL's `schema`."""
    return dict(parse_qsl(urlsplit(url).query))[name]


@contextmanager
def _memory(_: Path | None) -> Iterator[str]:
    yield "memory://"


@contextmanager
def _sqlite(directory: Path | None) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="healthledger-", dir=directory) as folder:
        yield f"sqlite:///{Path(folder) / 'ledger.db'}"


@contextmanager
def _postgresql(_: Path | None) -> Iterator[str]:
    schema = _unique_name()
    try:
        # The schema also names the ledger's connections, so a test can find and end them.
        yield _with_options(POSTGRES_URL, schema=schema, application_name=schema)
    finally:
        _drop_schema(schema)


@contextmanager
def _redis(_: Path | None) -> Iterator[str]:
    prefix = _unique_name()
    try:
        yield _with_options(REDIS_URL, prefix=prefix)
    finally:
        _delete_keys(prefix)


_SCRATCH: dict[str, Callable[[Path | None], AbstractContextManager[str]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "postgresql": _postgresql,
    "redis": _redis,
}


def _unique_name() -> str:
    """A name no other run uses, valid as a PostgreSQL schema and as a Redis key prefix."""
    return f"hl_{secrets.token_hex(6)}"


def _with_options(url: str, **options: str) -> str:
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query), *options.items()])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _drop_schema(schema: str) -> None:
    try:
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute("SET lock_timeout = '30s'")
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    except psycopg.Error as exc:
        exc.add_note(f'Drop the schema by hand: DROP SCHEMA "{schema}" CASCADE')
        raise


def _delete_keys(prefix: str) -> None:
    # The ledger names every key "PREFIX:..." and the prefix is unique, so the pattern is exact.
    try:
        with redis.Redis.from_url(REDIS_URL, socket_timeout=30) as client:
            batch: list[bytes] = []
            for key in client.scan_iter(match=f"{prefix}:*", count=UNLINK_BATCH):
                batch.append(key)
                if len(batch) >= UNLINK_BATCH:
                    client.unlink(*batch)
                    batch.clear()
            if batch:
                client.unlink(*batch)
    except redis.RedisError as exc:
        exc.add_note(f"Delete the keys {prefix}:* by hand.")
        raise
