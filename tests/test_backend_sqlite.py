"""The conformance suite on the embedded SQLite backend."""

from __future__ import annotations

import pathlib
import tempfile

import pytest

from ledger_backends.errors import UnsupportedLedgerURLError
from ledger_backends.registry import open_store
from ledger_backends.testing import LedgerStoreConformance
from tests.sql_atomicity import SqlAtomicity
from tests.sql_tampering import SqlTampering


class TestSQLiteStore(SqlTampering, SqlAtomicity, LedgerStoreConformance):
    def fresh_url(self) -> str:
        self._dir = tempfile.TemporaryDirectory(prefix="healthledger-test-")
        return f"sqlite:///{self._dir.name}/ledger.db"

    def cleanup(self, url: str) -> None:
        self._dir.cleanup()

    def unreachable_url(self) -> str:
        # A directory cannot be created inside /proc: the file can never be opened.
        return "sqlite:////proc/healthledger-missing/ledger.db"

    def test_database_runs_durable_wal(self) -> None:
        store = self.store
        with store.engine.connect() as conn:  # type: ignore[attr-defined]
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
