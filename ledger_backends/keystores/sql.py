"""The key store of a SQL ledger: table `data_keys` on SQLite or PostgreSQL (`SqlKeyStore`).

One row per (channel, child): the id of the key-encryption key, the wrapped
key, and, once destroyed, no wrapped key but the time of erasure. The store has
its own engine, so it may live in the ledger's database (the default: the
channel's ledger URL) or in a database of its own.

Ordering with the ledger. A key must be durable before a block holding a value
sealed with it is. In the ledger's own database it is for free, as long as the
key's commit comes first: SQLite has one write-ahead log, and the ledger's next
commit (synchronous=FULL) fsyncs it, the key's frames included, so the key
store's commits need only `synchronous=NORMAL`; PostgreSQL has one WAL stream,
and the block's synchronous commit flushes it up to and past the key's
commit, which may therefore be `synchronous_commit = off` (set on the key
store's connections; a destroy or a rewrap still commits synchronously). In a
database of its own, every commit is made durable before it returns (FULL /
the server's default).

Forgetting. `destroy` overwrites the row with a tombstone, then does what the
database offers against the old bytes lingering: SQLite runs with
`secure_delete=ON` (freed space is zeroed) and is checkpointed with
`wal_checkpoint(TRUNCATE)`, which copies the zeroed page over the old one in
the database file and empties the write-ahead log; PostgreSQL's old row
version is removed by `VACUUM data_keys`. Both are best effort: a reader
holding an old snapshot or a VACUUM already running leaves the work to the
next destroy. (PostgreSQL keeps the old row in its WAL segments until they are
recycled, and backups keep what they copied.)

Files and schemas are those of the ledger backends: a SQLite file is created
0600 (`sqlite.create_private_file`), a PostgreSQL URL's `?schema=` is the
search path of every connection and is created if missing
(`postgres.postgres_engine`, `postgres.prepare_schema`). Any database error
becomes BackendUnavailableError naming the store by its URL without password.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, closing, contextmanager
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    LargeBinary,
    MetaData,
    String,
    Table,
    and_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError

from ..errors import BackendUnavailableError, UnsupportedLedgerURLError
from ..postgres import postgres_engine, prepare_schema
from ..sql_models import KeyText
from ..sqlite import (
    BUSY_TIMEOUT_MS,
    create_private_file,
    holding,
    sqlite_path,
    wal_engine,
    write_lock,
)
from ..urls import redacted_url, scrubbed
from .base import KeyStore, Rewrap, StoredKey

CHECKPOINT_WAIT_MS = 500

metadata = MetaData()
data_keys = Table(
    "data_keys",
    metadata,
    Column("channel", KeyText, primary_key=True),
    Column("child", KeyText, primary_key=True),
    Column("kek_id", String(64), nullable=False),  # "" once destroyed
    Column("wrapped", LargeBinary, nullable=True),  # NULL once destroyed
    Column("erased_at", String(32), nullable=True),
)


class SqlKeyStore(KeyStore):
    """Wrapped data keys in table `data_keys`; every method is one database transaction."""

    def __init__(
        self,
        url: str,
        engine: Engine,
        dialect_insert: Callable[..., Any],
        *,
        backend_name: str,
        lazy_commit: bool = False,
        after_destroy: Callable[[Engine], None] | None = None,
        write_lock: threading.RLock | None = None,
    ) -> None:
        self.url = url
        # SQLite: this process's lock on writing the file, shared with a ledger in it.
        self._write_lock = write_lock
        self.engine = engine
        self.backend_name = backend_name
        self._insert = dialect_insert
        # The two statements every new child costs, as the driver takes them: building them
        # with SQLAlchemy's expression language cost more than running them.
        self._is_sqlite = engine.dialect.name == "sqlite"
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._select_one = (
            f"SELECT child, kek_id, wrapped, erased_at FROM data_keys "
            f"WHERE channel = {mark} AND child = {mark}"
        )
        # PostgreSQL returns the row it inserted (one round trip fewer); SQLite is local.
        self._returns_inserted = not self._is_sqlite
        self._insert_new = (
            f"INSERT INTO data_keys (channel, child, kek_id, wrapped) "
            f"VALUES ({mark}, {mark}, {mark}, {mark}) ON CONFLICT DO NOTHING"
        ) + (" RETURNING child, kek_id, wrapped, erased_at" if self._returns_inserted else "")
        self._lazy_commit = lazy_commit
        self._after_destroy = after_destroy

    @classmethod
    def from_url(cls, url: str, *, same_database_as_ledger: bool) -> SqlKeyStore:
        """The key store in the database `url` names (sqlite:/// or postgresql://), its table
        (and PostgreSQL schema) made if need be."""
        scheme = urlsplit(url).scheme.split("+", 1)[0].lower()
        if scheme == "sqlite":
            return cls._sqlite(url, same_database_as_ledger=same_database_as_ledger)
        if scheme in {"postgresql", "postgres"}:
            return cls._postgres(url, same_database_as_ledger=same_database_as_ledger)
        raise UnsupportedLedgerURLError(
            f"A SQL key store needs a sqlite:// or postgresql:// URL, not {redacted_url(url)!r}."
        )

    @classmethod
    def _sqlite(cls, url: str, *, same_database_as_ledger: bool) -> SqlKeyStore:
        path = sqlite_path(url)
        create_private_file(path, "key store")
        engine = wal_engine(
            path,
            synchronous="NORMAL" if same_database_as_ledger else "FULL",
            pragmas=["secure_delete=ON"],
        )
        store = cls(
            url,
            engine,
            sqlite_insert,
            backend_name="SQLite",
            after_destroy=_checkpoint_sqlite,
            write_lock=write_lock(path),
        )
        store._create_table(schema=None)
        return store

    @classmethod
    def _postgres(cls, url: str, *, same_database_as_ledger: bool) -> SqlKeyStore:
        # In the ledger's database a new key's commit need not wait for its WAL flush: the
        # block that first uses it commits synchronously after it, flushing both.
        settings = ["synchronous_commit=off"] if same_database_as_ledger else []
        engine, schema = postgres_engine(url, read_only=False, settings=settings)
        store = cls(
            url,
            engine,
            pg_insert,
            backend_name="PostgreSQL",
            lazy_commit=same_database_as_ledger,
            after_destroy=_vacuum_postgres,
        )
        store._create_table(schema=schema, postgres=True)
        return store

    def _create_table(self, *, schema: str | None, postgres: bool = False) -> None:
        try:
            with self._writing() as conn:
                if postgres:
                    prepare_schema(conn, schema)
                data_keys.create(conn, checkfirst=True)
        except BaseException:
            self.engine.dispose()
            raise

    # -- transactions ----------------------------------------------------------------

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except DBAPIError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "connection failed"
            raise self._unavailable(reason) from exc

    def _unavailable(self, reason: str) -> BackendUnavailableError:
        return BackendUnavailableError(
            f"The {self.backend_name} key store at {redacted_url(self.url)} cannot be used: "
            f"{scrubbed(reason, self.url).rstrip('.')}."
        )

    @contextmanager
    def _driver(self, *, write: bool) -> Iterator[Any]:
        """A DB-API cursor in one transaction (a write takes SQLite's write lock at BEGIN),
        for the two statements every new child costs: SQLAlchemy's Connection layer around
        them cost several times the statements themselves."""
        queue = self._writer_queue() if write else contextlib.nullcontext()
        with queue, self._driver_transaction(write=write) as cursor:
            yield cursor

    @contextmanager
    def _driver_transaction(self, *, write: bool) -> Iterator[Any]:
        """`_driver`'s cursor in its own transaction, driver errors raised as unavailable."""
        driver_error = self.engine.dialect.loaded_dbapi.Error
        try:
            with self._guard():
                # The pool may hand up the driver's own error for a connection it cannot make.
                raw = self.engine.raw_connection()
        except driver_error as exc:
            raise self._unavailable(_first_line(exc)) from exc
        try:
            cursor = raw.cursor()
            if self._is_sqlite:
                cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            yield cursor
            if self._is_sqlite:
                cursor.execute("COMMIT")
            else:
                raw.commit()
        except driver_error as exc:
            with contextlib.suppress(driver_error):
                if self._is_sqlite:
                    raw.cursor().execute("ROLLBACK")
                else:
                    raw.rollback()
            raise self._unavailable(_first_line(exc)) from exc
        finally:
            raw.close()

    def _writer_queue(self) -> AbstractContextManager[None]:
        """On SQLite, wait for this process's writers of the file before this one (see
        `sqlite.write_lock`); elsewhere nothing."""
        return contextlib.nullcontext() if self._write_lock is None else holding(self._write_lock)

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self._guard(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def _writing(self, *, durable: bool = False) -> Iterator[Connection]:
        """A write transaction; SQLite takes its write lock at BEGIN (see sqlite.wal_engine).
        `durable`: committed synchronously even where new keys are not (a destroyed or
        rewrapped key must not wait for the ledger's next commit to be on disk)."""
        with (
            self._writer_queue(),
            self._guard(),
            self.engine.connect() as conn,
            conn.execution_options(ledger_write=True).begin(),
        ):
            if durable and self._lazy_commit:
                conn.exec_driver_sql("SET LOCAL synchronous_commit = on")
            yield conn

    # -- KeyStore ----------------------------------------------------------------------

    def get(self, channel: str, child: str) -> StoredKey | None:
        with self._driver(write=False) as cursor:
            return self._read_one(cursor, channel, child)

    def add(self, channel: str, child: str, kek_id: str, wrapped: bytes) -> StoredKey:
        with self._driver(write=True) as cursor:
            cursor.execute(self._insert_new, (channel, child, kek_id, wrapped))
            # The row offered, or (nothing inserted) the one there already.
            row = cursor.fetchone() if self._returns_inserted else None
            stored = _stored_row(row) if row else self._read_one(cursor, channel, child)
        assert stored is not None  # inserted now or earlier, and never deleted
        return stored

    def _read_one(self, cursor: Any, channel: str, child: str) -> StoredKey | None:
        cursor.execute(self._select_one, (channel, child))
        row = cursor.fetchone()
        return None if row is None else _stored_row(row)

    def destroy(self, channel: str, child: str, erased_at: str) -> StoredKey:
        tombstone = {
            "channel": channel,
            "child": child,
            "kek_id": "",
            "wrapped": None,
            "erased_at": erased_at,
        }
        with self._writing(durable=True) as conn:
            conn.execute(self._insert(data_keys).values(tombstone).on_conflict_do_nothing())
            # Only a live key is overwritten: an earlier tombstone keeps its date.
            conn.execute(
                update(data_keys)
                .where(_is(channel, child), data_keys.c.erased_at.is_(None))
                .values(kek_id="", wrapped=None, erased_at=erased_at)
            )
            row = conn.exec_driver_sql(self._select_one, (channel, child)).first()
        stored = None if row is None else _stored_row(tuple(row))
        assert stored is not None and stored.destroyed
        if self._after_destroy is not None:
            self._after_destroy(self.engine)
        return stored

    def wrapped_by_other(self, channel: str, kek_id: str, limit: int) -> list[StoredKey]:
        if limit <= 0:
            return []
        c = data_keys.c
        query = (
            select(c.child, c.kek_id, c.wrapped, c.erased_at)
            .where(
                data_keys.c.channel == channel,
                data_keys.c.wrapped.is_not(None),
                data_keys.c.kek_id != kek_id,
            )
            .order_by(data_keys.c.child)
            .limit(limit)
        )
        with self._reading() as conn:
            return [_stored_row(tuple(row)) for row in conn.execute(query)]

    def rewrap(self, channel: str, rewraps: Sequence[Rewrap]) -> int:
        replaced = 0
        with self._writing(durable=True) as conn:
            for change in rewraps:
                result = conn.execute(
                    update(data_keys)
                    .where(
                        _is(channel, change.child),
                        data_keys.c.kek_id == change.old_kek_id,
                        data_keys.c.wrapped.is_not(None),
                    )
                    .values(kek_id=change.new_kek_id, wrapped=change.wrapped)
                )
                replaced += result.rowcount
        return replaced

    def kek_ids(self, channel: str) -> set[str]:
        query = (
            select(data_keys.c.kek_id)
            .distinct()
            .where(data_keys.c.channel == channel, data_keys.c.wrapped.is_not(None))
        )
        with self._reading() as conn:
            return set(conn.execute(query).scalars())

    def close(self) -> None:
        self.engine.dispose()


def _is(channel: str, child: str) -> Any:
    return and_(data_keys.c.channel == channel, data_keys.c.child == child)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "it failed"


def _stored_row(row: tuple[Any, ...]) -> StoredKey:
    """A StoredKey from the columns child, kek_id, wrapped, erased_at (`_select_one`'s)."""
    child, kek_id, wrapped, erased_at = row
    return StoredKey(child, kek_id, None if wrapped is None else bytes(wrapped), erased_at)


def _checkpoint_sqlite(engine: Engine) -> None:
    """Copy the tombstone's page into the database file and empty the write-ahead log, so
    neither keeps the destroyed key's bytes. Best effort: a reader holding an older snapshot
    makes the checkpoint stop short, and the next one finishes the work.

    A pending TRUNCATE checkpoint holds up the ledger's writers, so it waits for readers
    CHECKPOINT_WAIT_MS at most, not the usual busy timeout.
    """
    try:
        # The raw connection runs the PRAGMA outside any transaction, as a checkpoint must.
        with closing(engine.raw_connection()) as raw:
            cursor = raw.cursor()
            try:
                cursor.execute(f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS}")
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                cursor.close()
    except (DBAPIError, sqlite3.Error):
        pass


def _vacuum_postgres(engine: Engine) -> None:
    """Remove the destroyed key's old row version from the table's pages. Best effort:
    SKIP_LOCKED leaves it to the next destroy while another VACUUM runs on the table."""
    try:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM (SKIP_LOCKED) data_keys"
            )
    except DBAPIError:
        pass
