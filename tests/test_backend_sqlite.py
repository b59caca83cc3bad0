"""The conformance suite on the embedded SQLite backend, and what only SQLite files do."""

from __future__ import annotations

import os
import pathlib
import stat
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

import pytest
from sqlalchemy.pool import QueuePool

from ledger_backends.chain import ChainWriter
from ledger_backends.errors import BackendUnavailableError, UnsupportedLedgerURLError
from ledger_backends.keystores import open_key_store
from ledger_backends.registry import open_store
from ledger_backends.sqlite import SQLiteStore, write_lock
from ledger_backends.testing import (
    LedgerStoreConformance,
    golden_clock,
    golden_proposals,
    needs_backend,
)
from ledger_backends.testing.golden import proposal
from tests.sql_store_checks import SqlStoreChecks

pytestmark = needs_backend("sqlite")


class TestSQLiteStore(SqlStoreChecks, LedgerStoreConformance):
    backend = "sqlite"
    rolls_back = True

    def test_database_runs_durable_wal(self) -> None:
        assert isinstance(self.store, SQLiteStore)
        with self.store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_relative_path_is_relative_to_working_directory(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:///var/nested/ledger.db")
    store.close()
    assert (tmp_path / "var" / "nested" / "ledger.db").exists()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_non_file_sqlite_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsupportedLedgerURLError, match=r"sqlite|file"):
        open_store(url)


@pytest.fixture
def usual_umask() -> Iterator[None]:
    # The common default, which leaves new files readable by every local user.
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path: pathlib.Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("usual_umask")
def test_ledger_files_and_new_directory_are_private_to_the_owner(tmp_path: pathlib.Path) -> None:
    directory = tmp_path / "ledgers"
    path = directory / "ledger.db"
    store = open_store(f"sqlite:///{path}")
    try:
        ChainWriter(store, "medical", clock=golden_clock()).commit(golden_proposals()[0])
        files = [path, path.with_name("ledger.db-wal"), path.with_name("ledger.db-shm")]
        assert {file.name: _mode(file) for file in files} == {file.name: 0o600 for file in files}
        assert _mode(directory) == 0o700
    finally:
        store.close()


def test_a_read_only_store_reads_but_cannot_write(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    writer_store = open_store(url)
    ChainWriter(writer_store, "medical", clock=golden_clock()).commit(golden_proposals()[0])
    writer_store.close()
    reader = open_store(url, create=False)
    try:
        assert reader.channels() == ["medical"] and reader.tip("medical").height == 1
        with pytest.raises(BackendUnavailableError, match="readonly"):
            ChainWriter(reader, "medical", clock=golden_clock()).commit(golden_proposals()[1])
    finally:
        reader.close()


def test_pinned_reads_check_out_one_connection_at_the_first_read_and_give_it_back(
    tmp_path: pathlib.Path,
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    assert isinstance(store, SQLiteStore)
    pool = store.engine.pool
    assert isinstance(pool, QueuePool)
    try:
        with store.pinned_reads():
            assert pool.checkedout() == 0  # a simulation that reads nothing checks out nothing
            store.read_state("medical", "child/1")
            store.read_range("medical", "", "")
            store.tip("medical")
            assert pool.checkedout() == 1  # every read on the one connection
        assert pool.checkedout() == 0
    finally:
        store.close()


def test_the_ledger_and_its_key_store_queue_on_one_lock_per_file(tmp_path: pathlib.Path) -> None:
    """While this process writes the file (holds its write lock), the key store's new key
    and the ledger's next block wait for it, and are written as soon as it is let go."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = open_store(url)
    keys = open_key_store(url, same_database_as_ledger=True)
    assert isinstance(store, SQLiteStore)
    lock = write_lock(tmp_path / "ledger.db")
    assert write_lock(tmp_path / "." / "ledger.db") is lock  # one lock for the file
    writer = ChainWriter(store, "medical")
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            with lock:
                key = pool.submit(keys.add, "medical", "child-1", "kek-1", b"wrapped")
                block = pool.submit(writer.commit, [proposal("queued", writes={"k": 1})])
                queued: list[Future[Any]] = [key, block]
                done, _ = wait(queued, timeout=0.3)
                assert not done  # both queued behind this writer, neither failed
            assert key.result(timeout=5).child == "child-1"
            assert block.result(timeout=5)[0].block_number == 0
    finally:
        store.close()
        keys.close()
