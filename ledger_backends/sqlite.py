"""The embedded default backend: the SQL hash chain on SQLite in WAL mode (`sqlite:///path`).

Durability: `synchronous=FULL` makes every commit fsync the write-ahead log, so
a block acknowledged by `append_if_tip` survives a crash or power loss (WAL's
`NORMAL` would be faster but can lose the last commits on power loss). Write
transactions start with BEGIN IMMEDIATE, so two processes appending to one
file queue on SQLite's lock instead of failing halfway through.

Writers in one process queue on that process's lock on the file (`write_lock`) before
BEGIN IMMEDIATE: the ledger's block writes and the key store's new keys share one file,
and a writer that met SQLite's lock held would poll it with the sleeps of SQLite's busy
handler (1, 2, 5, 10 ms and longer), while a writer queued on the process's lock starts
the moment the one before it is done. Writers in other processes still meet at SQLite's
lock and its busy timeout.

Privacy: a new ledger file is created 0600 (its directory 0700 when this
creates it); SQLite gives the `-wal` and `-shm` files the database file's
mode, so no other local user can read a record from them either.

Reading only (`create=False`, as `verify` opens it): an existing file is opened
without changing it (no journal-mode switch, no table creation); a file that
does not exist is refused with LedgerNotFoundError, one that does not hold the
ledger's tables with NotALedgerError. A file made before the Merkle tree reads
as a ledger whose blocks have no tree; opened to be written, it gains the
tree's table and columns (`SqlStore.create_tables`, under the write lock).
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError

from .errors import (
    BackendUnavailableError,
    LedgerNotFoundError,
    NotALedgerError,
    UnsupportedLedgerURLError,
)
from .records import BlockCommit, Tip
from .sql import (
    BLOCK_COLUMNS,
    HISTORY_COLUMNS,
    STATE_COLUMNS,
    TRANSACTION_COLUMNS,
    BlockRows,
    RunQuery,
    SqlStore,
    require_ledger_tables,
    state_upsert,
)
from .sql_models import LEDGER_TABLES

BUSY_TIMEOUT_MS = 10_000
LEDGER_FILE_MODE = 0o600
LEDGER_DIRECTORY_MODE = 0o700


def _insert(table: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


_INSERT_BLOCK = _insert("ledger_blocks", BLOCK_COLUMNS)
_INSERT_TRANSACTION = _insert("ledger_transactions", TRANSACTION_COLUMNS)
_UPSERT_STATE = _insert("ledger_state", STATE_COLUMNS) + (
    " ON CONFLICT (channel, key) DO UPDATE SET value = excluded.value, "
    "block_number = excluded.block_number, tx_index = excluded.tx_index"
)
_DELETE_STATE = "DELETE FROM ledger_state WHERE channel = ? AND key = ?"
_INSERT_TREE_NODE = _insert("ledger_tree_nodes", ("channel", "level", "idx", "hash"))
_INSERT_HISTORY = _insert("ledger_history", HISTORY_COLUMNS)


class SQLiteStore(SqlStore):
    backend_name = "SQLite"

    @functools.cached_property
    def _write_lock(self) -> threading.RLock:
        return write_lock(sqlite_path(self.url))

    # The reads every proof makes go through a pooled connection's own cursor: for point
    # reads of a local file, SQLAlchemy's statement handling costs several times the query.

    def tip(self, channel: str) -> Tip:
        with self._cursor() as cursor:
            row = cursor.execute(_TIP, (channel,)).fetchone()
        return Tip.empty() if row is None else Tip(row[0] + 1, row[1])

    def locate_transaction(self, channel: str, tx_id: str) -> tuple[int, int] | None:
        """As SqlStore's: by tx_id alone (its index), the channel compared here."""
        with self._cursor() as cursor:
            rows = cursor.execute(_LOCATE, (tx_id,)).fetchall()
        found = [(number, index) for row_channel, number, index in rows if row_channel == channel]
        return min(found) if found else None

    def read_first_leaf(self, channel: str, number: int) -> int | None:
        if not self._stores_tree:
            return None
        with self._cursor() as cursor:
            row = cursor.execute(_FIRST_LEAF, (channel, number)).fetchone()
        return None if row is None or row[0] is None else int(row[0] - row[1])

    @contextmanager
    def _tree_rows(self) -> Iterator[RunQuery]:
        """As SqlStore's (the same statements), through the connection's own cursor."""
        with self._cursor() as cursor:
            yield lambda query, values: cursor.execute(query.text, values)

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """SqlStore's write transaction, begun once this process's writers of the file before
        it are done (`write_lock`)."""
        with holding(self._write_lock), super()._writing() as connection:
            yield connection

    def _insert_block(self, conn: Connection, channel: str, commit: BlockCommit) -> None:
        """SqlStore's rows straight to the driver's executemany: building SQLAlchemy's
        parameters for each row cost more than the inserts themselves."""
        rows = BlockRows.of(channel, commit)
        nodes = [(channel, node.level, node.index, node.hash) for node in commit.tree_nodes]
        with self._driver_cursor(conn) as cursor:
            cursor.executemany(_INSERT_BLOCK, rows.blocks)
            cursor.executemany(_INSERT_TRANSACTION, rows.transactions)
            cursor.executemany(_UPSERT_STATE, rows.upserts)
            cursor.executemany(_DELETE_STATE, rows.deletes)
            cursor.executemany(_INSERT_TREE_NODE, nodes)
            cursor.executemany(_INSERT_HISTORY, rows.history)

    @classmethod
    def from_url(cls, url: str, *, create: bool = True) -> SQLiteStore:
        """The ledger file at `url`, made with its tables if need be; read-only without `create`.

        Without `create`: LedgerNotFoundError if the file does not exist, NotALedgerError
        (before any ledger query runs) unless each ledger table is a table, not a view, with
        the ledger's columns; so a hostile view cannot make reads hang.
        """
        path = sqlite_path(url)
        return cls._create(url, path) if create else cls._open_read_only(url, path)

    @classmethod
    def _create(cls, url: str, path: Path) -> SQLiteStore:
        create_private_file(path, "ledger")
        store = cls(url, wal_engine(path, synchronous="FULL"), state_upsert(sqlite_insert))
        try:
            with store._writing() as conn:
                store.create_tables(conn)
        except BaseException:
            store.close()  # its pooled connections with it
            raise
        return store

    def sqlite_file_uri(self) -> str:
        """The ledger file as SQLite opens it to read only (as `create=False` opens it)."""
        return read_only_uri(sqlite_path(self.url))

    @classmethod
    def _open_read_only(cls, url: str, path: Path) -> SQLiteStore:
        if not path.exists():
            raise LedgerNotFoundError(str(path))
        uri = read_only_uri(path)
        engine = create_engine(
            "sqlite://",
            creator=lambda: sqlite3.connect(
                uri, uri=True, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
            ),
        )
        event.listen(engine, "connect", _configure_reader)
        event.listen(engine, "begin", _begin)
        store = cls(url, engine, state_upsert(sqlite_insert))
        try:
            if not _check_ledger_schema(engine, path):
                store.read_as_made_before_trees()
        except BaseException:
            store.close()
            raise
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


def read_only_uri(path: Path) -> str:
    """The URI that opens the SQLite file at `path` to read only."""
    return f"file:{quote(str(path.resolve()))}?mode=ro"


def create_private_file(path: Path, what: str) -> None:
    """Make the file at `path` owner-only (0600; a new directory 0700) before SQLite writes a
    byte; an existing file keeps its mode. `what` names the file in the error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=LEDGER_DIRECTORY_MODE)
        # O_EXCL: an existing file is never opened here. This process may already hold it
        # open through SQLite (a key store beside the ledger), and closing any descriptor of
        # a file drops every POSIX lock the process holds on it: another process would then
        # take SQLite's connections here for gone, and reset the write-ahead log under them.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, LEDGER_FILE_MODE))
    except FileExistsError:
        return
    except OSError as exc:
        raise BackendUnavailableError(
            f"The SQLite {what} cannot be created at {str(path)!r}: {exc.strerror}."
        ) from exc


_WRITE_LOCKS: dict[Path, threading.RLock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def write_lock(path: Path) -> threading.RLock:
    """This process's lock on writing the SQLite file at `path` (one per file, reentrant).

    Every engine of this process that writes the file (the ledger's, the key store's) holds
    it around its write transactions (`holding`), so they queue here and each starts as
    soon as the one before it ends.
    """
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(path.resolve(), threading.RLock())


@contextmanager
def holding(lock: threading.RLock) -> Iterator[None]:
    """Hold a `write_lock` until the block ends. A writer that waited BUSY_TIMEOUT_MS for it
    goes on without it, to SQLite's own lock, which then decides as it would without this
    one (by its busy timeout)."""
    held = lock.acquire(timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        yield
    finally:
        if held:
            lock.release()


def wal_engine(path: Path, *, synchronous: str, pragmas: Sequence[str] = ()) -> Engine:
    """An engine on the file at `path` in WAL mode with the given `synchronous` level, a busy
    timeout and the extra `pragmas`; a connection run with the `ledger_write` execution option
    begins IMMEDIATE, taking the write lock at BEGIN."""
    engine = create_engine(
        f"sqlite:///{path}",
        connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
    )

    def configure(dbapi_connection: Any, _record: Any) -> None:
        # Leave transaction control to the "begin" hook below instead of pysqlite.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        for pragma in pragmas:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    event.listen(engine, "connect", configure)
    event.listen(engine, "begin", _begin)
    return engine


def _configure_reader(dbapi_connection: Any, _record: Any) -> None:
    # Read-only twice over: the file is opened mode=ro and the connection refuses writes.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.close()


def _check_ledger_schema(engine: Engine, path: Path) -> bool:
    """Raise NotALedgerError unless each ledger table exists as a table with its columns;
    whether the ledger has its Merkle tree (see `require_ledger_tables`)."""
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT name, type FROM sqlite_master WHERE name LIKE 'ledger_%'"
            )
            kinds: dict[str, str] = {name: kind for name, kind in rows}
            columns = {
                table.name: {
                    row[1] for row in conn.exec_driver_sql(f"PRAGMA table_info({table.name})")
                }
                for table in LEDGER_TABLES
                if kinds.get(table.name) == "table"
            }
            return require_ledger_tables(str(path), kinds, columns, table_kind="table")
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "it cannot be read"
        raise NotALedgerError(f"{path} is not a ledger: {reason}.") from exc


def _begin(connection: Any) -> None:
    write = connection.get_execution_options().get("ledger_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


_TIP = "SELECT number, hash FROM ledger_blocks WHERE channel = ? ORDER BY number DESC LIMIT 1"
_LOCATE = "SELECT channel, block_number, tx_index FROM ledger_transactions WHERE tx_id = ?"
_FIRST_LEAF = "SELECT tree_size, tx_count FROM ledger_blocks WHERE channel = ? AND number = ?"
