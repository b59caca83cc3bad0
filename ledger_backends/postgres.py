"""The SQL hash chain on PostgreSQL via psycopg 3 (`postgresql://user@host:port/db`).

Several API processes, on one machine or many, may share one database: the
primary key (channel, number) rejects a second block with the same number, and
the expected previous hash is checked inside the same transaction. Durability
is PostgreSQL's own (`synchronous_commit=on`, the default, means an
acknowledged block is on disk). An optional `?schema=NAME` keeps the ledger's
tables in their own schema.

Reading only (`create=False`, as `verify` opens it): no schema or table is
created, every transaction is read-only (default_transaction_read_only), and a
database or schema without the ledger's tables is refused with NotALedgerError.
Tables made before the Merkle tree read as a ledger whose blocks have no tree;
opened to be written, they gain the tree's table and columns, under the same
advisory lock as table creation, so workers starting together add them once.

A store call gives up on an unreachable server within about 3.5 s: every
wait for a reply ends after REPLY_TIMEOUT_S (psycopg alone would wait forever
on a server that stops answering, e.g. behind a partition) and every new
connection after CONNECT_TIMEOUT_S; a dead pooled connection costs one of each.
Either ends in BackendUnavailableError. A connection that gave up is closed and
leaves the pool, the others are pre-pinged on checkout, so the store recovers
by itself when the server is back.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import pq
from psycopg.abc import PQGen
from sqlalchemy import Connection, Engine, TextClause, bindparam, create_engine, event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError

from .errors import UnsupportedLedgerURLError
from .merkle import NodeId, TreeNode
from .sql import SqlStore, require_ledger_tables, state_upsert
from .sql_models import LEDGER_TABLES
from .urls import redacted_url

CONNECT_TIMEOUT_S = 2  # libpq's smallest
REPLY_TIMEOUT_S = 1.5
# Serialises table creation when several processes open an empty database at once.
_SCHEMA_LOCK_ID = 0x4845_4C47


# The versions of a list of keys, one primary-key probe per key. `key IN (...)` is planned
# as a bitmap scan of the channel's whole state while the table has no statistics (before
# autovacuum's first ANALYZE), and its commits then slow as the ledger grows.
_VERSIONS = """
SELECT k.key, s.block_number, s.tx_index
FROM unnest(CAST(:keys AS text[])) AS k(key)
CROSS JOIN LATERAL (
    SELECT block_number, tx_index FROM ledger_state
    WHERE channel = :channel AND key = k.key {lock}
) AS s
"""


class PostgresStore(SqlStore):
    backend_name = "PostgreSQL"
    add_column = "ADD COLUMN IF NOT EXISTS"

    def __init__(self, url: str, engine: Engine, upsert_state: Any) -> None:
        super().__init__(url, engine, upsert_state)
        self._versions_query = text(_VERSIONS.format(lock=""))
        self._locked_versions_query = text(_VERSIONS.format(lock="FOR SHARE NOWAIT"))

    @classmethod
    def from_url(cls, url: str, *, create: bool = True) -> PostgresStore:
        """The ledger at `url`, its schema and tables made if need be; read-only without `create`.

        Without `create`: NotALedgerError (before any ledger query runs) unless each ledger
        table is a table, not a view, with the ledger's columns, in the URL's schema.
        """
        return cls._create(url) if create else cls._open_read_only(url)

    @classmethod
    def _create(cls, url: str) -> PostgresStore:
        store, schema = cls._connect(url, read_only=False)
        try:
            with store._writing() as conn:
                prepare_schema(conn, schema)
                store.create_tables(conn)
        except BaseException:
            store.close()  # its pooled connections with it
            raise
        return store

    @classmethod
    def _open_read_only(cls, url: str) -> PostgresStore:
        store, _ = cls._connect(url, read_only=True)
        try:
            with store._reading() as conn:
                if not _check_ledger_schema(conn, redacted_url(url)):
                    store.read_as_made_before_trees()
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def _connect(cls, url: str, *, read_only: bool) -> tuple[PostgresStore, str | None]:
        """The store over a new engine for `url`, and the schema the URL names."""
        engine, schema = postgres_engine(url, read_only=read_only)
        return cls(url, engine, state_upsert(pg_insert)), schema

    def is_lock_busy(self, exc: DBAPIError) -> bool:
        return isinstance(exc.orig, psycopg.errors.LockNotAvailable)

    def insert_tree_nodes(self, conn: Connection, channel: str, nodes: Sequence[TreeNode]) -> None:
        """One statement over three arrays: psycopg's executemany sends a statement per row,
        which cost more than everything else the tree adds to a commit."""
        conn.execute(
            _INSERT_TREE_NODES,
            {
                "channel": channel,
                "levels": [node.level for node in nodes],
                "indexes": [node.index for node in nodes],
                "hashes": [node.hash for node in nodes],
            },
        )

    def tree_nodes_query(self, ids: list[NodeId]) -> tuple[TextClause, dict[str, Any]]:
        """As SqlStore's, the ids passed as two arrays: one statement for every count, and
        half the time of binding a VALUES list of 64 pairs."""
        return _TREE_NODES, {
            "levels": [level for level, _ in ids],
            "indexes": [index for _, index in ids],
        }


def postgres_engine(
    url: str, *, read_only: bool, settings: Sequence[str] = ()
) -> tuple[Engine, str | None]:
    """A new engine for `url` (its connections in the URL's schema, bounded in time, with the
    server `settings` given as NAME=VALUE), and that schema; UnsupportedLedgerURLError for a
    schema name that is not plain."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    schema = query.pop("schema", None)
    if schema is not None and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise UnsupportedLedgerURLError(
            "The schema in a PostgreSQL ledger URL must be lower-case letters, digits and _."
        )
    options = [f"-c search_path={schema}"] if schema else []
    if read_only:
        # The server itself refuses any write in any transaction of these connections.
        options.append("-c default_transaction_read_only=on")
    options.extend(f"-c {setting}" for setting in settings)
    connect_args: dict[str, object] = {"connect_timeout": CONNECT_TIMEOUT_S}
    if options:
        connect_args["options"] = " ".join(options)
    engine_url = urlunsplit(("postgresql+psycopg", parts.netloc, parts.path, urlencode(query), ""))
    engine = create_engine(engine_url, connect_args=connect_args, pool_pre_ping=True, pool_size=8)
    event.listen(engine, "do_connect", _connect_bounded)
    return engine, schema


def prepare_schema(conn: Connection, schema: str | None) -> None:
    """Make the URL's schema if it is missing, holding, until `conn`'s transaction ends, the
    lock that serialises table creation when several processes open an empty database."""
    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK_ID})")
    if schema:
        conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')


_INSERT_TREE_NODES = text(
    "INSERT INTO ledger_tree_nodes (channel, level, idx, hash) "
    "SELECT :channel, node.level, node.idx, node.hash FROM unnest("
    "CAST(:levels AS integer[]), CAST(:indexes AS bigint[]), CAST(:hashes AS bytea[])"
    ") AS node(level, idx, hash)"
)

_TREE_NODES = text(
    "SELECT wanted.level, wanted.idx, (SELECT node.hash FROM ledger_tree_nodes AS node "
    "WHERE node.channel = :channel AND node.level = wanted.level AND node.idx = wanted.idx) "
    "AS hash FROM unnest(CAST(:levels AS INTEGER[]), CAST(:indexes AS BIGINT[])) "
    "AS wanted(level, idx)"
)

_LEDGER_COLUMNS = text(
    "SELECT t.table_name, t.table_type, c.column_name FROM information_schema.tables t "
    "LEFT JOIN information_schema.columns c USING (table_schema, table_name) "
    "WHERE t.table_schema = current_schema() AND t.table_name IN :names"
).bindparams(bindparam("names", expanding=True))


def _check_ledger_schema(conn: Connection, where: str) -> bool:
    """Raise NotALedgerError unless each ledger table exists as a table with its columns;
    whether the ledger has its Merkle tree (see `require_ledger_tables`).

    A schema that does not exist has no current_schema(), so no tables: it is refused too.
    """
    kinds: dict[str, str] = {}
    columns: dict[str, set[str]] = {}
    names = [table.name for table in LEDGER_TABLES]
    for name, kind, column in conn.execute(_LEDGER_COLUMNS, {"names": names}):
        kinds[name] = kind
        columns.setdefault(name, set()).add(column)
    return require_ledger_tables(where, kinds, columns, table_kind="BASE TABLE")


class BoundedConnection(psycopg.Connection[Any]):
    """A psycopg connection that stops waiting for a reply after REPLY_TIMEOUT_S.

    The bound is on each round trip (a statement with its whole result, a commit).
    A connection that gave up mid-command is closed: its state is unknown, and a
    closed connection is what SQLAlchemy recognises as a disconnect.
    """

    def wait(self, gen: PQGen[Any], interval: float = 0.1, timeout: float | None = None) -> Any:
        try:
            return super().wait(gen, interval, REPLY_TIMEOUT_S if timeout is None else timeout)
        except psycopg.OperationalError as exc:
            if self.pgconn.transaction_status != pq.TransactionStatus.ACTIVE:
                raise
            self.pgconn.finish()
            raise psycopg.OperationalError(
                f"the server did not answer within {REPLY_TIMEOUT_S:g} s"
            ) from exc


def _connect_bounded(
    _dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]
) -> BoundedConnection:
    return BoundedConnection.connect(*cargs, **cparams)
