"""`healthledger verify`: exit codes and what it prints for intact and damaged chains.

Checking creates nothing: no SQLite file, no PostgreSQL schema or table, no Redis key.
"""

from __future__ import annotations

import pathlib
import sqlite3
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest
import redis
from sqlalchemy.exc import DBAPIError

from api.cli import main
from ledger_backends import open_ledger, open_store
from ledger_backends.chain import ChainWriter
from ledger_backends.testing import (
    POSTGRES_URL,
    REDIS_URL,
    golden_clock,
    golden_proposals,
    needs_backend,
    query_option,
    scratch_url,
)

NETWORK_TOML = """
[ledger]
url = "sqlite:///ledger.db"

[[orgs]]
id = "hospital"
msp = "HospitalMSP"
kind = "hospital"

[[orgs]]
id = "parents"
msp = "ParentsMSP"
kind = "parents"

[[channels]]
name = "medical"
members = ["hospital", "parents"]

[[channels]]
name = "report"
members = ["hospital", "parents"]
ledger = "sqlite:///report.db"
"""


def _ledger_with_blocks(path: pathlib.Path) -> str:
    return _write_blocks(f"sqlite:///{path}")


def _write_blocks(url: str) -> str:
    ledger = open_ledger(url)
    writer = ChainWriter(ledger.store, "medical", clock=golden_clock())
    for batch in golden_proposals():
        writer.commit(batch)
    ledger.close()
    return url


def test_intact_ledger_exits_zero(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _ledger_with_blocks(tmp_path / "ledger.db")
    assert main(["verify", "--ledger", url]) == 0
    assert "medical: ok, 3 blocks" in capsys.readouterr().out


def test_damaged_ledger_exits_one_naming_the_block(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _ledger_with_blocks(tmp_path / "ledger.db")
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        db.execute(
            "UPDATE ledger_transactions SET record = replace(record, 'pollen', 'pollem') "
            "WHERE block_number = 1"
        )
    assert main(["verify", "--ledger", url]) == 1
    assert "medical: DAMAGED at block 1: its transactions do not match its data hash." in (
        capsys.readouterr().out
    )


def test_network_directory_verifies_each_channel_on_its_own_ledger(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "network.toml").write_text(NETWORK_TOML)
    _ledger_with_blocks(tmp_path / "ledger.db")
    open_ledger(f"sqlite:///{tmp_path / 'report.db'}").close()  # opened by serve, no block yet
    assert main(["verify", "--network", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "medical: ok, 3 blocks" in out and "report: ok, 0 blocks" in out
    assert main(["verify", "--network", str(tmp_path), "--channel", "report"]) == 0


def test_a_sqlite_ledger_that_does_not_exist_is_not_created_and_fails(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "elsewhere.db"
    assert main(["verify", "--ledger", f"sqlite:///{missing}", "--channel", "medical"]) == 1
    assert f"medical: no ledger at {missing}: pass the --ledger that serve uses" in (
        capsys.readouterr().out
    )
    assert main(["verify", "--ledger", f"sqlite:///{missing}"]) == 1
    assert f"no ledger at {missing}" in capsys.readouterr().err
    assert not missing.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["verify"], "Say which ledger to verify"),
        (["verify", "--ledger", "ftp://nowhere"], "Unsupported ledger URL"),
        (["verify", "--network", "/nonexistent-network"], "network.toml is missing"),
    ],
)
def test_bad_usage_exits_two_with_one_line(
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HEALTHLEDGER_NETWORK", raising=False)
    monkeypatch.delenv("HEALTHLEDGER_LEDGER_URL", raising=False)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_unknown_channel_in_network_is_bad_usage(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "network.toml").write_text(NETWORK_TOML)
    assert main(["verify", "--network", str(tmp_path), "--channel", "gossip"]) == 2
    assert "no channel 'gossip'" in capsys.readouterr().err


def test_unreachable_ledger_exits_one_without_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "verify", "--ledger", "redis://127.0.0.1:1/0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "cannot be reached" in result.stderr and "Traceback" not in result.stderr


def test_environment_names_the_ledger(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HEALTHLEDGER_LEDGER_URL", _ledger_with_blocks(tmp_path / "env.db"))
    assert main(["verify"]) == 0
    assert "medical: ok" in capsys.readouterr().out


def _run_verify(path: pathlib.Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "verify", "--ledger", f"sqlite:///{path}", *extra],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_file_that_is_not_sqlite_is_refused_in_one_line(tmp_path: pathlib.Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database, just words\n" * 200)
    for extra in ((), ("--channel", "medical")):
        result = _run_verify(notes, *extra)
        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr == (
            f"healthledger: {notes} is not a ledger: file is not a database.\n"
        )
    assert notes.read_text() == "not a database, just words\n" * 200


def test_an_unrelated_sqlite_file_is_refused_and_left_unchanged(tmp_path: pathlib.Path) -> None:
    other = tmp_path / "shop.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)")
    before = other.read_bytes()
    result = _run_verify(other)
    assert result.returncode == 2
    assert (
        result.stderr == f"healthledger: {other} is not a ledger: it has no ledger_blocks table.\n"
    )
    assert other.read_bytes() == before
    with sqlite3.connect(other) as db:
        names = [row[0] for row in db.execute("SELECT name FROM sqlite_master")]
        assert names == ["orders"]
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_a_delete_journal_ledger_is_verified_without_switching_it_to_wal(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "ledger.db"
    _ledger_with_blocks(path)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=DELETE")
    before = path.read_bytes()
    result = _run_verify(path)
    assert result.returncode == 0, result.stderr
    assert "medical: ok, 3 blocks" in result.stdout
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.db"]


def test_a_view_posing_as_a_ledger_table_is_refused_at_once(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "trap.db"
    _ledger_with_blocks(path)
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE ledger_blocks")
        # Reading this view never ends: an endless recursive query.
        db.execute(
            "CREATE VIEW ledger_blocks AS WITH RECURSIVE n(i) AS "
            "(SELECT 0 UNION ALL SELECT i + 1 FROM n) "
            "SELECT 'medical' AS channel, i AS number, '' AS previous_hash, '' AS data_hash, "
            "'' AS hash, '' AS timestamp, 0 AS tx_count FROM n"
        )
    for extra in ((), ("--channel", "medical")):
        result = _run_verify(path, *extra)
        assert result.returncode == 2
        assert result.stderr == (
            f"healthledger: {path} is not a ledger: its ledger_blocks is a view, not a table.\n"
        )


def test_a_ledger_table_missing_columns_is_refused(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "odd.db"
    _ledger_with_blocks(path)
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE ledger_state RENAME TO old_state")
        db.execute("CREATE TABLE ledger_state (channel TEXT, key TEXT, value TEXT)")
    result = _run_verify(path)
    assert result.returncode == 2
    assert result.stderr == (
        f"healthledger: {path} is not a ledger: ledger_state lacks block_number, tx_index.\n"
    )


# -- PostgreSQL and Redis -------------------------------------------------------------------------


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL ledger URL whose schema does not exist yet."""
    with scratch_url("postgresql") as url:
        yield url


def _tables_in(schema: str) -> list[str]:
    with psycopg.connect(POSTGRES_URL) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [schema]
        )
        return [row[0] for row in rows]


def _schema_exists(schema: str) -> bool:
    with psycopg.connect(POSTGRES_URL) as conn:
        found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema])
        return found.fetchone() is not None


@needs_backend("postgresql")
@pytest.mark.parametrize("channel", [(), ("--channel", "medical")], ids=["all", "one"])
def test_an_empty_postgres_schema_is_refused_and_left_empty(
    postgres_url: str, channel: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    url, schema = postgres_url, query_option(postgres_url, "schema")
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    assert main(["verify", "--ledger", url, *channel]) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == (
        "",
        f"healthledger: {url} is not a ledger: it has no ledger_blocks table.\n",
    )
    assert _tables_in(schema) == []


@needs_backend("postgresql")
def test_a_postgres_schema_that_does_not_exist_is_refused_and_not_created(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", "--ledger", postgres_url]) == 2
    assert "is not a ledger: it has no ledger_blocks table." in capsys.readouterr().err
    assert not _schema_exists(query_option(postgres_url, "schema"))


@needs_backend("postgresql")
def test_a_postgres_view_posing_as_a_ledger_table_is_refused(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url, schema = _write_blocks(postgres_url), query_option(postgres_url, "schema")
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'ALTER TABLE "{schema}".ledger_state RENAME TO old_state')
        conn.execute(f'CREATE VIEW "{schema}".ledger_state AS SELECT * FROM "{schema}".old_state')
    assert main(["verify", "--ledger", url]) == 2
    assert capsys.readouterr().err == (
        f"healthledger: {url} is not a ledger: its ledger_state is a view, not a table.\n"
    )


@needs_backend("postgresql")
def test_a_postgres_ledger_is_verified_in_read_only_transactions(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _write_blocks(postgres_url)
    assert main(["verify", "--ledger", url]) == 0
    assert "medical: ok, 3 blocks" in capsys.readouterr().out
    store = open_store(url, create=False)
    try:
        with pytest.raises(DBAPIError, match="read-only transaction"), store.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM ledger_blocks")
    finally:
        store.close()


@needs_backend("redis")
def test_verifying_redis_creates_no_key(capsys: pytest.CaptureFixture[str]) -> None:
    with scratch_url("redis") as url:
        assert main(["verify", "--ledger", url]) == 0
        assert main(["verify", "--ledger", url, "--channel", "medical"]) == 0
        assert "medical: ok, 0 blocks" in capsys.readouterr().out
        client = redis.Redis.from_url(REDIS_URL)
        try:
            assert list(client.scan_iter(match=f"{query_option(url, 'prefix')}*")) == []
        finally:
            client.close()
