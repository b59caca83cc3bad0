"""The key store conformance suite on every backend, and what only one backend does:
SQLite forgets a destroyed key's bytes in its files, PostgreSQL keeps to the URL's schema,
Redis to the URL's prefix; bad and unreachable URLs are refused without their password."""

from __future__ import annotations

import os
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis
from sqlalchemy import event

from ledger_backends.chain import ChainWriter
from ledger_backends.errors import BackendUnavailableError, UnsupportedLedgerURLError
from ledger_backends.keystores import open_key_store
from ledger_backends.keystores.memory import MemoryKeyStore
from ledger_backends.keystores.redis import RedisKeyStore
from ledger_backends.keystores.sql import SqlKeyStore
from ledger_backends.registry import open_ledger, open_store
from ledger_backends.testing import (
    POSTGRES_URL,
    REDIS_URL,
    KeyStoreConformance,
    golden_clock,
    golden_proposals,
    needs_backend,
    proposal,
    query_option,
    scratch_url,
    submit_all,
    unreachable_url,
)

PASSWORD = "n0t-in-any-Message"


class TestMemoryKeyStore(KeyStoreConformance):
    backend = "memory"
    persistent = False
    shared = False


class TestSQLiteKeyStore(KeyStoreConformance):
    backend = "sqlite"


class TestSQLiteKeyStoreOfItsOwn(KeyStoreConformance):
    backend = "sqlite"
    same_database_as_ledger = False


class TestPostgresKeyStore(KeyStoreConformance):
    backend = "postgresql"


class TestPostgresKeyStoreOfItsOwn(KeyStoreConformance):
    backend = "postgresql"
    same_database_as_ledger = False


class TestRedisKeyStore(KeyStoreConformance):
    backend = "redis"


# -- opening by URL -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "kind"),
    [
        pytest.param("memory", MemoryKeyStore, id="memory"),
        pytest.param("sqlite", SqlKeyStore, marks=needs_backend("sqlite"), id="sqlite"),
        pytest.param("postgresql", SqlKeyStore, marks=needs_backend("postgresql"), id="postgres"),
        pytest.param("redis", RedisKeyStore, marks=needs_backend("redis"), id="redis"),
    ],
)
def test_the_url_scheme_picks_the_key_store(backend: str, kind: type) -> None:
    with scratch_url(backend) as url:
        store = open_key_store(url, same_database_as_ledger=True)
        try:
            assert type(store) is kind
        finally:
            store.close()


@needs_backend("postgresql")
@pytest.mark.parametrize("scheme", ["postgres", "postgresql+psycopg"])
def test_postgres_url_spellings_open_the_same_store(scheme: str) -> None:
    with scratch_url("postgresql") as url:
        first = open_key_store(url, same_database_as_ledger=True)
        second = open_key_store(
            urlsplit(url)._replace(scheme=scheme).geturl(), same_database_as_ledger=True
        )
        try:
            added = first.add("medical", "child-1", "0123456789abcdef", b"k" * 60)
            assert second.get("medical", "child-1") == added
        finally:
            first.close()
            second.close()


@pytest.mark.parametrize(
    "url", [f"mysql://root:{PASSWORD}@127.0.0.1/keys", "file:///tmp/keys.db", "keys.db"]
)
def test_an_unknown_scheme_is_refused_without_the_password(url: str) -> None:
    with pytest.raises(UnsupportedLedgerURLError, match="Unsupported key store URL") as caught:
        open_key_store(url, same_database_as_ledger=False)
    assert PASSWORD not in str(caught.value)


def _with_password(url: str) -> str:
    parts = urlsplit(url)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:{PASSWORD}@{parts.hostname}:{parts.port}"))


@pytest.mark.parametrize("backend", ["postgresql", "redis"])
def test_an_unreachable_store_fails_fast_without_the_password(backend: str) -> None:
    url = _with_password(unreachable_url(backend))
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError, match=r"key store at .*\*\*\*") as caught:
        store = open_key_store(url, same_database_as_ledger=True)
        store.get("medical", "child-1")
    assert time.monotonic() - started < 5
    assert PASSWORD not in str(caught.value)


def test_a_sqlite_file_that_cannot_be_made_is_unavailable() -> None:
    with pytest.raises(BackendUnavailableError, match="SQLite key store cannot be created"):
        open_key_store(unreachable_url("sqlite"), same_database_as_ledger=True)


# -- SQLite ---------------------------------------------------------------------------------


@pytest.fixture
def usual_umask() -> Iterator[None]:
    # The common default, which leaves new files readable by every local user.
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _file_bytes(database: Path) -> bytes:
    """The database file and its write-ahead log, as a thief copying them would see them."""
    wal = database.with_name(database.name + "-wal")
    return database.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


@needs_backend("sqlite")
@pytest.mark.parametrize("same_database_as_ledger", [True, False], ids=["ledger-db", "own-db"])
def test_sqlite_files_keep_no_trace_of_a_destroyed_key(
    tmp_path: Path, same_database_as_ledger: bool
) -> None:
    path = tmp_path / "ledger.db"
    url = f"sqlite:///{path}"
    marker = b"healthledger-destroy-me-" + secrets.token_bytes(8)
    assert len(marker) == 32
    ledger = open_ledger(url) if same_database_as_ledger else None
    store = open_key_store(url, same_database_as_ledger=same_database_as_ledger)
    try:
        for n in range(20):
            store.add("medical", f"before-{n:02}", "0123456789abcdef", bytes([n]) * 60)
        store.add("medical", "child-1", "0123456789abcdef", marker)
        for n in range(20):
            store.add("medical", f"neighbour-{n:02}", "0123456789abcdef", bytes([n]) * 60)
        if ledger is not None:
            submit_all(ledger, "medical", [proposal("uses-the-key", writes={"card/1": 1})])
        assert marker in _file_bytes(path)
        store.destroy("medical", "child-1", "2025-03-01T10:00:00.000000Z")
        assert marker not in _file_bytes(path)
        assert store.get("medical", "neighbour-19") is not None
        if ledger is not None:
            assert ledger.channel("medical").verify().ok
    finally:
        store.close()
        if ledger is not None:
            ledger.close()
    assert marker not in _file_bytes(path)


@needs_backend("sqlite")
@pytest.mark.usefixtures("usual_umask")
def test_sqlite_key_store_files_are_private_to_the_owner(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    path = directory / "keys.db"
    store = open_key_store(f"sqlite:///{path}", same_database_as_ledger=False)
    try:
        store.add("medical", "child-1", "0123456789abcdef", b"k" * 60)
        files = [path, path.with_name("keys.db-wal"), path.with_name("keys.db-shm")]
        assert {file.name: _mode(file) for file in files} == {file.name: 0o600 for file in files}
        assert _mode(directory) == 0o700
    finally:
        store.close()


@needs_backend("sqlite")
@pytest.mark.parametrize(
    ("same_database_as_ledger", "synchronous"), [(True, 1), (False, 2)], ids=["NORMAL", "FULL"]
)
def test_sqlite_key_store_syncs_as_its_place_requires(
    tmp_path: Path, same_database_as_ledger: bool, synchronous: int
) -> None:
    store = open_key_store(
        f"sqlite:///{tmp_path / 'ledger.db'}", same_database_as_ledger=same_database_as_ledger
    )
    try:
        assert isinstance(store, SqlKeyStore)
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == synchronous
            assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
    finally:
        store.close()


@needs_backend("sqlite")
def test_a_ledger_beside_its_key_store_still_opens_to_be_read(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    writer = open_store(url)
    ChainWriter(writer, "medical", clock=golden_clock()).commit(golden_proposals()[0])
    store = open_key_store(url, same_database_as_ledger=True)
    store.add("medical", "child-1", "0123456789abcdef", b"k" * 60)
    store.close()
    writer.close()
    reader = open_store(url, create=False)
    try:
        assert reader.tip("medical").height == 1
    finally:
        reader.close()


# -- PostgreSQL -----------------------------------------------------------------------------


@needs_backend("postgresql")
def test_postgres_key_store_keeps_to_the_urls_schema_beside_the_ledger() -> None:
    with scratch_url("postgresql") as url:
        schema = query_option(url, "schema")
        store = open_key_store(url, same_database_as_ledger=True)  # the schema does not exist yet
        ledger = open_ledger(url)
        try:
            store.add("medical", "child-1", "0123456789abcdef", b"k" * 60)
            submit_all(ledger, "medical", [proposal("uses-the-key", writes={"card/1": 1})])
            with psycopg.connect(POSTGRES_URL) as admin:
                found = admin.execute(
                    "SELECT table_schema FROM information_schema.tables "
                    "WHERE table_name = 'data_keys' AND table_schema = ANY(%s)",
                    ([schema, "public"],),
                ).fetchall()
                assert found == [(schema,)]
                rows = admin.execute(
                    f'SELECT channel, child, kek_id FROM "{schema}".data_keys'
                ).fetchall()
                assert rows == [("medical", "child-1", "0123456789abcdef")]
            reader = open_store(url, create=False)
            try:
                assert reader.tip("medical").height == 1
            finally:
                reader.close()
        finally:
            ledger.close()
            store.close()


@needs_backend("postgresql")
@pytest.mark.parametrize("same_database_as_ledger", [True, False], ids=["ledger-db", "own-db"])
def test_postgres_add_leaves_the_flush_to_the_ledgers_commit_only_in_its_database(
    same_database_as_ledger: bool,
) -> None:
    with scratch_url("postgresql") as url:
        store = open_key_store(url, same_database_as_ledger=same_database_as_ledger)
        assert isinstance(store, SqlKeyStore)
        seen: list[str] = []

        def remember(_conn: object, _cursor: object, statement: str, *_: object) -> None:
            seen.append(statement)

        event.listen(store.engine, "before_cursor_execute", remember)
        try:
            with store.engine.connect() as conn:
                setting = conn.exec_driver_sql("SHOW synchronous_commit").scalar()
            store.add("medical", "child-1", "0123456789abcdef", b"k" * 60)
            store.destroy("medical", "child-1", "2025-03-01T10:00:00.000000Z")
        finally:
            store.close()
        # New keys commit without waiting for the WAL only in the ledger's own database...
        assert setting == ("off" if same_database_as_ledger else "on")
        # ...and a destroyed key is durable before destroy returns, wherever it is kept.
        durable = [statement for statement in seen if statement.startswith("SET LOCAL")]
        assert durable == (["SET LOCAL synchronous_commit = on"] if same_database_as_ledger else [])


@needs_backend("postgresql")
def test_postgres_destroy_vacuums_the_key_table() -> None:
    with scratch_url("postgresql") as url:
        schema = query_option(url, "schema")
        store = open_key_store(url, same_database_as_ledger=True)
        try:
            store.add("medical", "child-1", "0123456789abcdef", b"k" * 60)
            store.destroy("medical", "child-1", "2025-03-01T10:00:00.000000Z")
            with psycopg.connect(POSTGRES_URL) as admin:
                row = admin.execute(
                    "SELECT vacuum_count FROM pg_stat_user_tables "
                    "WHERE schemaname = %s AND relname = 'data_keys'",
                    (schema,),
                ).fetchone()
            assert row is not None and row[0] >= 1
        finally:
            store.close()


# -- Redis ----------------------------------------------------------------------------------


@needs_backend("redis")
def test_redis_key_store_keeps_to_the_urls_prefix() -> None:
    with scratch_url("redis") as url:
        prefix = query_option(url, "prefix")
        channel = f"channel-{secrets.token_hex(4)}"
        store = open_key_store(url, same_database_as_ledger=True)
        try:
            store.add(channel, "child-1", "0123456789abcdef", b"k" * 60)
            store.add(channel, "child-2", "0123456789abcdef", b"j" * 60)
            store.destroy(channel, "child-2", "2025-03-01T10:00:00.000000Z")
            store.destroy("report", "child-3", "2025-03-01T10:00:00.000000Z")
            with redis.Redis.from_url(REDIS_URL, decode_responses=True) as client:
                mine = set(client.scan_iter(match=f"*{prefix}*"))
                assert mine == {f"{prefix}:keys:{channel}", f"{prefix}:keys:report"}
                assert set(client.scan_iter(match=f"*{channel}*")) == {f"{prefix}:keys:{channel}"}
                assert set(client.hkeys(f"{prefix}:keys:{channel}")) == {"child-1", "child-2"}
        finally:
            store.close()
