"""The embedded default backend: the SQL hash chain on SQLite in WAL mode (`sqlite:///path`).

Durability: `synchronous=FULL` makes every commit fsync the write-ahead log, so
a block acknowledged by `append_if_tip` survives a crash or power loss (WAL's
`NORMAL` would be faster but can lose the last commits on power loss). Write
transactions start with BEGIN IMMEDIATE, so two processes appending to one
file queue on SQLite's lock instead of failing halfway through.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .errors import BackendUnavailableError, UnsupportedLedgerURLError
from .sql import SqlStore, state_upsert

BUSY_TIMEOUT_MS = 10_000


class SQLiteStore(SqlStore):
    backend_name = "SQLite"

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        path = sqlite_path(url)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendUnavailableError(
                f"The SQLite ledger cannot be created at {str(path)!r}: {exc.strerror}."
            ) from exc
        engine = create_engine(
            f"sqlite:///{path}",
            connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
        )
        event.listen(engine, "connect", _configure_connection)
        event.listen(engine, "begin", _begin)
        store = cls(url, engine, state_upsert(sqlite_insert))
        with store._writing() as conn:
            store.create_tables(conn)
        return store


def sqlite_path(url: str) -> Path:
    """`sqlite:///relative.db` is relative to the working directory; `sqlite:////abs.db` is not."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise UnsupportedLedgerURLError(
            f"A SQLite ledger URL looks like sqlite:///relative.db or sqlite:////abs/path.db, "
            f"not {url!r}."
        )
    raw = url[len(prefix) :]
    if raw == ":memory:" or "?" in raw:
        raise UnsupportedLedgerURLError(
            "A SQLite ledger must be a file (use memory:// for a ledger that lives in memory)."
        )
    return Path(raw)


def _configure_connection(dbapi_connection: Any, _record: Any) -> None:
    # Leave transaction control to the "begin" hook below instead of pysqlite.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.close()


def _begin(connection: Any) -> None:
    write = connection.get_execution_options().get("ledger_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
