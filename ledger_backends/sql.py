"""The SQL hash chain shared by the SQLite and PostgreSQL backends.

`append_if_tip` is one database transaction: read the channel's last block,
compare it with the expected tip, check the foreign reads, insert the block,
its transactions and history, and upsert the state. The primary key (channel,
number) makes a concurrent append of the same block number fail, so two
processes can never fork a chain; the loser rolls back and the chain writer
retries.

Foreign reads are read again inside that transaction. On SQLite the write
transaction holds the database's write lock from BEGIN, so no other write can
commit until it ends. On PostgreSQL the rows read are locked FOR SHARE
NOWAIT: a transaction that changes one of them afterwards waits until the
block is committed, and one that is changing it already makes the append
return False at once (never a wait, so never a deadlock) for the writer to
build again. A commit's `not_after` is checked last, just before COMMIT.

The channel's Merkle tree nodes go into `ledger_tree_nodes` in the same
transaction, and the block header carries the tree's size and root. A ledger
made before the tree gains that table and those columns when it is opened to
be written (`create_tables`); opened to be read, it reads as one whose blocks
have no tree.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Executable,
    TextClause,
    and_,
    bindparam,
    delete,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError, IntegrityError

from .base import LedgerStore, prefix_end
from .errors import BackendUnavailableError, ChainIntegrityError, NotALedgerError
from .merkle import NodeId, TreeNode
from .records import Block, BlockCommit, ForeignReads, HistoryEntry, StateRecord, Tip, Version
from .sql_models import (
    LEDGER_TABLES,
    TREE_COLUMNS,
    TREE_TABLE,
    BlockRow,
    HistoryRow,
    StateRow,
    TransactionRow,
)

blocks_t = BlockRow.__table__  # type: ignore[attr-defined]
transactions_t = TransactionRow.__table__  # type: ignore[attr-defined]
state_t = StateRow.__table__  # type: ignore[attr-defined]
history_t = HistoryRow.__table__  # type: ignore[attr-defined]
tree_t = TREE_TABLE

SCAN_PAGE = 5000
IN_LIST_CHUNK = 500
# Node ids per tree read: two bound values each, within SQLite's oldest limit of 999.
TREE_READ_CHUNK = 256
# Consecutive ids of one level read as one range of the primary key, at least: a proof's ids
# are never as many, the nodes a verification compares (those blocks completed) mostly are.
TREE_RANGE_MIN = 32
# Runs one query with its values and gives its rows, as tuples.
RunQuery = Callable[[TextClause, dict[str, Any]], Iterable[Sequence[Any]]]


# The columns of a block's rows, in the order `BlockRows` gives their values.
BLOCK_COLUMNS = (
    "channel",
    "number",
    "previous_hash",
    "data_hash",
    "hash",
    "timestamp",
    "tx_count",
    "tree_size",
    "tree_root",
)
TRANSACTION_COLUMNS = ("channel", "block_number", "tx_index", "tx_id", "record")
STATE_COLUMNS = ("channel", "key", "value", "block_number", "tx_index")
HISTORY_COLUMNS = (
    "channel",
    "key",
    "block_number",
    "tx_index",
    "tx_id",
    "value",
    "creator_uid",
    "creator_msp",
    "timestamp",
)
Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class BlockRows:
    """The rows one block adds to each ledger table, as tuples in the column order above;
    `deletes` are the (channel, key) of state rows it removes."""

    blocks: list[Row]
    transactions: list[Row]
    upserts: list[Row]
    deletes: list[Row]
    history: list[Row]

    @classmethod
    def of(cls, channel: str, commit: BlockCommit) -> BlockRows:
        block = commit.block
        header = (
            channel,
            block.number,
            block.previous_hash,
            block.data_hash,
            block.hash,
            block.timestamp,
            len(block.tx_texts),
            block.tree_size,
            block.tree_root,
        )
        texts = zip(commit.tx_ids, block.tx_texts, strict=True)
        writes = commit.state_writes
        return cls(
            blocks=[header],
            transactions=[
                (channel, block.number, index, tx_id, text)
                for index, (tx_id, text) in enumerate(texts)
            ],
            upserts=[
                (channel, w.key, w.value, w.version[0], w.version[1])
                for w in writes
                if w.value is not None
            ],
            deletes=[(channel, w.key) for w in writes if w.value is None],
            history=[
                (
                    channel,
                    e.key,
                    e.block_number,
                    e.tx_index,
                    e.tx_id,
                    e.value,
                    e.creator_uid,
                    e.creator_msp,
                    e.timestamp,
                )
                for e in commit.history
            ],
        )


def _named(columns: Sequence[str], rows: list[Row]) -> list[dict[str, Any]]:
    return [dict(zip(columns, row, strict=True)) for row in rows]


class _NotAppendedError(Exception):
    """Leave the append's transaction, rolling it back: the block is to be built again."""


class SqlStore(LedgerStore):
    """A LedgerStore over an SQLAlchemy engine; subclasses choose the engine and upsert."""

    backend_name = "SQL"
    add_column = "ADD COLUMN"  # how this dialect's ALTER TABLE adds a column

    def __init__(self, url: str, engine: Engine, upsert_state: Any) -> None:
        self.url = url
        self.engine = engine
        self._upsert_state = upsert_state
        self._stores_tree = True  # False: a ledger made before trees, opened to be read
        self._tip_query = (
            select(blocks_t.c.number, blocks_t.c.hash)
            .where(blocks_t.c.channel == bindparam("channel"))
            .order_by(blocks_t.c.number.desc())
            .limit(1)
        )
        # The hottest read, a simulation's point read, as the driver takes it: SQLAlchemy's
        # statement execution around it cost several times the query itself.
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._state_sql = (
            f"SELECT value, block_number, tx_index FROM {state_t.name} "
            f"WHERE channel = {mark} AND key = {mark}"
        )
        self._driver_error: Any = engine.dialect.loaded_dbapi.Error  # the DB-API Error class
        self._blocks_sql = {name: read.format(m=mark) for name, read in _BLOCK_READS.items()}
        self._scan_sql = {
            name: page.format(after=after.format(m=mark), m=mark)
            for name, (page, after) in _SCAN_PAGES.items()
        }
        # This thread's pinned reads: .held closes .connection (None until the first read).
        self._pinned = threading.local()
        # Each takes `channel` and a list of `keys` (PostgreSQL's store has its own).
        versions = select(state_t.c.key, state_t.c.block_number, state_t.c.tx_index).where(
            state_t.c.channel == bindparam("channel"),
            state_t.c.key.in_(bindparam("keys", expanding=True)),
        )
        self._versions_query: Executable = versions
        # SQLite has no row locks and renders nothing (PostgreSQL's store locks in its own).
        self._locked_versions_query: Executable = versions.with_for_update(read=True, nowait=True)
        self._locate_query = select(
            transactions_t.c.channel, transactions_t.c.block_number, transactions_t.c.tx_index
        ).where(transactions_t.c.tx_id == bindparam("tx_id"))
        self._tree_queries: dict[int, TextClause] = {}
        self._first_leaf_query = select(blocks_t.c.tree_size, blocks_t.c.tx_count).where(
            blocks_t.c.channel == bindparam("channel"), blocks_t.c.number == bindparam("number")
        )

    def create_tables(self, connection: Connection) -> None:
        """Make the ledger's missing tables, and the tree's columns in a ledger made before it.

        The caller holds the lock that serialises this between processes (SQLite's write
        lock, PostgreSQL's advisory lock), so the columns are looked for and added once.
        """
        for table in LEDGER_TABLES:
            table.create(connection, checkfirst=True)
        present = {column["name"] for column in inspect(connection).get_columns(blocks_t.name)}
        for name in TREE_COLUMNS:
            if name not in present:
                column_type = blocks_t.c[name].type.compile(dialect=connection.dialect)
                connection.exec_driver_sql(
                    f"ALTER TABLE {blocks_t.name} {self.add_column} {name} {column_type}"
                )

    def read_as_made_before_trees(self) -> None:
        """Read a ledger that lacks the tree's table and columns (opened without `create`):
        its blocks read with no tree, and it stores no tree node."""
        self._stores_tree = False

    @contextmanager
    def pinned_reads(self) -> Iterator[None]:
        """This thread's reads share one pooled connection until the block ends, checked out
        at the first read: one checkout (on PostgreSQL, one liveness ping) per simulation
        that reads, not one per read, and none for a simulation that reads nothing."""
        if getattr(self._pinned, "held", None) is not None:
            yield  # pinned further out
            return
        with ExitStack() as held:
            self._pinned.held, self._pinned.connection = held, None
            try:
                yield
            finally:
                self._pinned.held = self._pinned.connection = None

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        held: ExitStack | None = getattr(self._pinned, "held", None)
        with self._unavailable_guard():
            if held is None:
                with self.engine.connect() as connection:
                    yield connection
                return
            if self._pinned.connection is None:
                self._pinned.connection = held.enter_context(self.engine.connect())
            yield self._pinned.connection

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        """A driver cursor of the reading connection (this thread's pinned one, if any)."""
        with self._reading() as conn, self._driver_cursor(conn) as cursor:
            yield cursor

    @contextmanager
    def _driver_cursor(self, conn: Connection) -> Iterator[Any]:
        """A cursor of `conn`'s driver connection, for statements around which SQLAlchemy's
        execution would cost several times the statement; the driver's errors come out as
        SQLAlchemy's (a lost connection invalidated first), as if `conn` had run them."""
        raw = conn.connection
        cursor = raw.cursor()
        try:
            yield cursor
        except self._driver_error as exc:
            lost = self.engine.dialect.is_disconnect(exc, raw.dbapi_connection, cursor)
            if lost:
                conn.invalidate(exc)
            raise DBAPIError.instance(
                None,
                None,
                exc,
                self._driver_error,
                connection_invalidated=lost,
                dialect=self.engine.dialect,
            ) from exc
        finally:
            cursor.close()

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A write transaction; SQLite takes its write lock at BEGIN (see sqlite.py)."""
        with (
            self._unavailable_guard(),
            self.engine.connect() as connection,
            connection.execution_options(ledger_write=True).begin(),
        ):
            yield connection

    @contextmanager
    def _unavailable_guard(self) -> Iterator[None]:
        try:
            yield
        except IntegrityError:
            raise
        except DBAPIError as exc:
            if self.is_unavailable(exc):
                raise BackendUnavailableError(
                    f"The {self.backend_name} ledger cannot be reached: "
                    f"{self.describe_unavailable(exc)}. Nothing was written."
                ) from exc
            raise

    def is_unavailable(self, exc: DBAPIError) -> bool:
        """Whether a database error means the store is unreachable (not a bug in a query)."""
        return bool(exc.connection_invalidated) or exc.__class__.__name__ in {
            "OperationalError",
            "InterfaceError",
        }

    def describe_unavailable(self, exc: DBAPIError) -> str:
        return str(exc.orig).strip().splitlines()[0] if exc.orig else "connection failed"

    def channels(self) -> list[str]:
        with self._reading() as conn:
            rows = conn.execute(
                select(blocks_t.c.channel).distinct().order_by(blocks_t.c.channel)
            ).all()
        return [row.channel for row in rows]

    def tip(self, channel: str) -> Tip:
        with self._reading() as conn:
            return self._tip(conn, channel)

    def _tip(self, conn: Connection, channel: str) -> Tip:
        row = conn.execute(self._tip_query, {"channel": channel}).first()
        return Tip.empty() if row is None else Tip(row.number + 1, row.hash)

    def read_state(self, channel: str, key: str) -> StateRecord | None:
        with self._cursor() as cursor:
            cursor.execute(self._state_sql, (channel, key))
            row = cursor.fetchone()
        return None if row is None else StateRecord(key, row[0], (row[1], row[2]))

    def read_versions(self, channel: str, keys: Iterable[str]) -> dict[str, Version]:
        with self._reading() as conn:
            return self._versions(conn, self._versions_query, channel, list(keys))

    def _versions(
        self, conn: Connection, query: Executable, channel: str, keys: list[str]
    ) -> dict[str, Version]:
        versions: dict[str, Version] = {}
        for offset in range(0, len(keys), IN_LIST_CHUNK):
            chunk = keys[offset : offset + IN_LIST_CHUNK]
            for row in conn.execute(query, {"channel": channel, "keys": chunk}):
                versions[row.key] = (row.block_number, row.tx_index)
        return versions

    def is_lock_busy(self, exc: DBAPIError) -> bool:
        """Whether a locking read failed because another transaction is writing the row."""
        return False

    def read_range(self, channel: str, start: str, end: str) -> list[StateRecord]:
        query = select(state_t).where(state_t.c.channel == channel, state_t.c.key >= start)
        if end:
            query = query.where(state_t.c.key < end)
        with self._reading() as conn:
            rows = conn.execute(query.order_by(state_t.c.key)).all()
        return [_state_record(row) for row in rows]

    def read_prefix_page(
        self, channel: str, prefix: str, *, after: str | None, limit: int, reverse: bool
    ) -> list[StateRecord]:
        """One indexed scan of the primary key (channel, key), in either direction."""
        if limit <= 0:
            return []
        key = state_t.c.key
        query = select(state_t).where(state_t.c.channel == channel, key >= prefix)
        end = prefix_end(prefix)
        if end:
            query = query.where(key < end)
        if after is not None:
            query = query.where(key < after if reverse else key > after)
        ordered = query.order_by(key.desc() if reverse else key).limit(limit)
        with self._reading() as conn:
            rows = conn.execute(ordered).all()
        return [_state_record(row) for row in rows]

    def read_history(self, channel: str, key: str) -> list[HistoryEntry]:
        query = (
            select(history_t)
            .where(history_t.c.channel == channel, history_t.c.key == key)
            .order_by(history_t.c.block_number, history_t.c.tx_index)
        )
        with self._reading() as conn:
            return [_history_entry(row) for row in conn.execute(query)]

    def read_blocks(self, channel: str, start: int, limit: int) -> list[Block]:
        """The headers, then the transactions of the blocks found, through a driver cursor
        (each read sees every block it asks for whole: a block's rows commit together)."""
        start = max(start, 0)
        if limit <= 0:
            return []
        headers = self._blocks_sql["trees" if self._stores_tree else "no trees"]
        with self._cursor() as cursor:
            cursor.execute(headers, (channel, start, start + limit))
            rows = cursor.fetchall()
            if not rows:
                return []
            cursor.execute(self._blocks_sql["transactions"], (channel, rows[0][0], rows[-1][0]))
            records = cursor.fetchall()
        texts: dict[int, list[str]] = {row[0]: [] for row in rows}
        for number, record in records:
            texts.setdefault(number, []).append(record)
        return [
            Block(
                number,
                previous_hash,
                data_hash,
                timestamp,
                block_hash,
                tuple(texts[number]),
                size,
                root,
            )
            for number, previous_hash, data_hash, timestamp, block_hash, size, root in rows
        ]

    def insert_tree_nodes(self, conn: Connection, channel: str, nodes: Sequence[TreeNode]) -> None:
        """Store a block's new tree nodes (the caller's transaction is the append's)."""
        conn.execute(
            insert(tree_t),
            [
                {"channel": channel, "level": node.level, "idx": node.index, "hash": node.hash}
                for node in nodes
            ],
        )

    def read_tree_nodes(self, channel: str, ids: Iterable[NodeId]) -> dict[NodeId, bytes]:
        """One range read of the primary key per run of TREE_RANGE_MIN or more consecutive
        ids of a level; for the other ids one query per TREE_READ_CHUNK of them (so one for
        any proof), one primary-key lookup per id. Ids not stored are left out."""
        wanted = list(dict.fromkeys(ids))
        if not wanted or not self._stores_tree:
            return {}
        runs, scattered = _runs(wanted)
        found: dict[NodeId, bytes] = {}
        with self._tree_rows() as run:
            for level, low, high in runs:
                values = {"channel": channel, "level": level, "low": low, "high": high}
                for index, node_hash in run(_TREE_RANGE, values):
                    found[(level, index)] = bytes(node_hash)
            for offset in range(0, len(scattered), TREE_READ_CHUNK):
                query, values = self.tree_nodes_query(scattered[offset : offset + TREE_READ_CHUNK])
                for level, index, node_hash in run(query, {"channel": channel, **values}):
                    if node_hash is not None:
                        found[(level, index)] = bytes(node_hash)
        return found

    @contextmanager
    def _tree_rows(self) -> Iterator[RunQuery]:
        """What runs read_tree_nodes' queries (a range read, or one of `tree_nodes_query`)
        and gives their rows, through a pooled connection."""
        with self._reading() as conn:
            yield lambda query, values: conn.execute(query, values)

    def tree_nodes_query(self, ids: list[NodeId]) -> tuple[TextClause, dict[str, Any]]:
        """The read of the nodes `ids` of channel :channel, and its values besides the channel.

        Rows (level, idx, hash) come from a VALUES list with the hash looked up per row by
        a subquery on the whole primary key: a join would let the planner of a table without
        statistics scan the channel's tree, and SQLite scans the table for
        `(level, idx) IN (...)`. The list is padded with the last id to a power of two, so
        a few statement texts serve every count.
        """
        size = min(1 << (len(ids) - 1).bit_length(), TREE_READ_CHUNK)
        padded = ids + ids[-1:] * (size - len(ids))
        query = self._tree_queries.get(size)
        if query is None:
            pairs = ", ".join(f"(:level{n}, :idx{n})" for n in range(size))
            query = text(
                "SELECT wanted.column1 AS level, wanted.column2 AS idx, "
                f"(SELECT node.hash FROM {tree_t.name} AS node WHERE node.channel = :channel "
                "AND node.level = wanted.column1 AND node.idx = wanted.column2) AS hash "
                f"FROM (VALUES {pairs}) AS wanted"
            )
            self._tree_queries[size] = query
        values: dict[str, Any] = {}
        for n, (level, index) in enumerate(padded):
            values[f"level{n}"] = level
            values[f"idx{n}"] = index
        return query, values

    def read_first_leaf(self, channel: str, number: int) -> int | None:
        """From the header alone: its tree size less its transaction count."""
        if not self._stores_tree:
            return None
        with self._reading() as conn:
            row = conn.execute(
                self._first_leaf_query, {"channel": channel, "number": number}
            ).first()
        return None if row is None or row.tree_size is None else row.tree_size - row.tx_count

    def locate_transaction(self, channel: str, tx_id: str) -> tuple[int, int] | None:
        """The lowest (block, index) with that id in the channel.

        Looked up by tx_id alone, the channel compared here: with the channel in the query,
        SQLite without statistics walks the channel's primary key instead of the tx_id index.
        """
        with self._reading() as conn:
            rows = conn.execute(self._locate_query, {"tx_id": tx_id}).all()
        found = [(row.block_number, row.tx_index) for row in rows if row.channel == channel]
        return min(found) if found else None

    def append_if_tip(self, channel: str, expected: Tip, commit: BlockCommit) -> bool:
        block = commit.block
        try:
            with self._writing() as conn:
                if self._tip(conn, channel) != expected:
                    return False
                if not self._current(conn, commit.foreign_reads):
                    return False
                self._insert_block(conn, channel, commit)
                if commit.not_after is not None and time.monotonic() > commit.not_after:
                    raise _NotAppendedError
        except _NotAppendedError:
            return False
        except IntegrityError as exc:
            # Another process inserted this block number first: a lost race, not damage.
            if self.tip(channel) != expected:
                return False
            raise ChainIntegrityError(
                f"Block {block.number} of channel {channel!r} could not be stored: {exc.orig}",
                channel=channel,
                block_number=block.number,
            ) from exc
        return True

    def _current(self, conn: Connection, foreign_reads: ForeignReads) -> bool:
        """Whether every foreign read still has the version seen, read inside this transaction.

        Raises _NotAppendedError when PostgreSQL finds a row read being written right now.
        """
        for channel, reads in foreign_reads.items():
            try:
                found = self._versions(conn, self._locked_versions_query, channel, list(reads))
            except DBAPIError as exc:
                if self.is_lock_busy(exc):
                    raise _NotAppendedError from exc
                raise
            if any(found.get(key) != version for key, version in reads.items()):
                return False
        return True

    def _insert_block(self, conn: Connection, channel: str, commit: BlockCommit) -> None:
        """Insert the block's rows through SQLAlchemy (a dialect may take them more directly)."""
        rows = BlockRows.of(channel, commit)
        conn.execute(insert(blocks_t), _named(BLOCK_COLUMNS, rows.blocks))
        conn.execute(insert(transactions_t), _named(TRANSACTION_COLUMNS, rows.transactions))
        if rows.upserts:
            conn.execute(self._upsert_state, _named(STATE_COLUMNS, rows.upserts))
        if rows.deletes:
            conn.execute(
                delete(state_t).where(
                    and_(state_t.c.channel == channel, state_t.c.key == bindparam("del_key"))
                ),
                [{"del_key": key} for _, key in rows.deletes],
            )
        if commit.tree_nodes:
            self.insert_tree_nodes(conn, channel, commit.tree_nodes)
        if rows.history:
            conn.execute(insert(history_t), _named(HISTORY_COLUMNS, rows.history))

    def scan_state(self, channel: str) -> Iterator[StateRecord]:
        for key, value, number, index in self.scan_state_rows(channel):
            yield StateRecord(key, value, (number, index))

    def scan_history(self, channel: str) -> Iterator[HistoryEntry]:
        for row in self.scan_history_rows(channel):
            yield HistoryEntry(*row)

    def scan_state_rows(self, channel: str) -> Iterator[tuple[Any, ...]]:
        """`scan_state` as rows (key, value, block, transaction), as the driver gives them: a
        page of SCAN_PAGE keys per query, each through a driver cursor of its own."""
        return self._scan_rows(channel, "state", position_width=1)

    def scan_history_rows(self, channel: str) -> Iterator[tuple[Any, ...]]:
        """`scan_history` as rows, HistoryEntry's fields in its order, as the driver gives
        them: a page of SCAN_PAGE entries per query, each through a driver cursor of its own."""
        return self._scan_rows(channel, "history", position_width=3)

    def _scan_rows(
        self, channel: str, scan: str, *, position_width: int
    ) -> Iterator[tuple[Any, ...]]:
        """The rows of `_scan_sql[scan]` page by page; the next page starts after the last
        row's first `position_width` columns (its place in the scan's order)."""
        after: tuple[Any, ...] | None = None
        while True:
            with self._cursor() as cursor:
                if after is None:
                    cursor.execute(self._scan_sql[scan], (channel, SCAN_PAGE))
                else:
                    cursor.execute(self._scan_sql[f"{scan} after"], (channel, *after, SCAN_PAGE))
                rows = cursor.fetchall()
            yield from rows
            if len(rows) < SCAN_PAGE:
                return
            after = tuple(rows[-1][:position_width])

    def ping(self) -> None:
        with self._reading() as conn:
            conn.exec_driver_sql("SELECT 1")

    def close(self) -> None:
        self.engine.dispose()


# The pages of `scan_state` and `scan_history`, from the channel's start and after a page's
# last row, for the driver ({m}: its placeholder); the columns in the order of StateRecord
# (its version's two apart) and of HistoryEntry.
_STATE_PAGE = (
    "SELECT key, value, block_number, tx_index FROM ledger_state WHERE channel = {m}{after}"
    " ORDER BY key LIMIT {m}"
)
_HISTORY_PAGE = (
    "SELECT key, block_number, tx_index, tx_id, value, creator_uid, creator_msp, timestamp"
    " FROM ledger_history WHERE channel = {m}{after}"
    " ORDER BY key, block_number, tx_index LIMIT {m}"
)
_SCAN_PAGES = {
    "state": (_STATE_PAGE, ""),
    "state after": (_STATE_PAGE, " AND key > {m}"),
    "history": (_HISTORY_PAGE, ""),
    "history after": (_HISTORY_PAGE, " AND (key, block_number, tx_index) > ({m}, {m}, {m})"),
}


# read_blocks' reads ({m}: the driver's placeholder): headers in the order of Block's fields
# (with the tree's, or nulls in a ledger made before trees), then their transactions' texts.
_BLOCKS_PAGE = (
    "SELECT number, previous_hash, data_hash, timestamp, hash, {tree} FROM ledger_blocks"
    " WHERE channel = {m} AND number >= {m} AND number < {m} ORDER BY number"
)
_BLOCK_READS = {
    "trees": _BLOCKS_PAGE.format(tree=", ".join(TREE_COLUMNS), m="{m}"),
    "no trees": _BLOCKS_PAGE.format(tree="NULL, NULL", m="{m}"),
    "transactions": "SELECT block_number, record FROM ledger_transactions WHERE channel = {m}"
    " AND block_number >= {m} AND block_number <= {m} ORDER BY block_number, tx_index",
}


_TREE_RANGE = text(
    f"SELECT idx, hash FROM {tree_t.name} WHERE channel = :channel AND level = :level"
    " AND idx >= :low AND idx <= :high"
)


def _runs(ids: list[NodeId]) -> tuple[list[tuple[int, int, int]], list[NodeId]]:
    """`ids` (distinct) as (level, lowest, highest index) of each run of TREE_RANGE_MIN or
    more consecutive indexes of a level, and the ids in no such run."""
    by_level: dict[int, list[int]] = {}
    for level, index in ids:
        by_level.setdefault(level, []).append(index)
    runs: list[tuple[int, int, int]] = []
    scattered: list[NodeId] = []
    for level, indexes in by_level.items():
        if len(indexes) < TREE_RANGE_MIN:
            scattered.extend((level, index) for index in indexes)
            continue
        indexes.sort()
        if indexes[-1] - indexes[0] + 1 == len(indexes):  # distinct: all one run
            runs.append((level, indexes[0], indexes[-1]))
            continue
        start = 0
        for end in range(1, len(indexes) + 1):
            if end < len(indexes) and indexes[end] == indexes[end - 1] + 1:
                continue
            if end - start >= TREE_RANGE_MIN:
                runs.append((level, indexes[start], indexes[end - 1]))
            else:
                scattered.extend((level, index) for index in indexes[start:end])
            start = end
    return runs, scattered


def _state_record(row: Any) -> StateRecord:
    return StateRecord(row.key, row.value, (row.block_number, row.tx_index))


def _history_entry(row: Any) -> HistoryEntry:
    return HistoryEntry(
        key=row.key,
        block_number=row.block_number,
        tx_index=row.tx_index,
        tx_id=row.tx_id,
        value=row.value,
        creator_uid=row.creator_uid,
        creator_msp=row.creator_msp,
        timestamp=row.timestamp,
    )


def state_upsert(dialect_insert: Any) -> Any:
    """INSERT ... ON CONFLICT (channel, key) DO UPDATE, in the dialect's own form."""
    statement = dialect_insert(state_t)
    return statement.on_conflict_do_update(
        index_elements=[state_t.c.channel, state_t.c.key],
        set_={
            "value": statement.excluded.value,
            "block_number": statement.excluded.block_number,
            "tx_index": statement.excluded.tx_index,
        },
    )


def require_ledger_tables(
    where: str,
    kinds: Mapping[str, str],
    columns: Mapping[str, set[str]],
    *,
    table_kind: str,
) -> bool:
    """Raise NotALedgerError unless each ledger table is there, as a table, with its columns.

    `kinds` maps the names the database's catalogue lists to their kind (`table_kind` for a
    real table: a view may run anything when read); `columns` the columns of each table.
    A ledger made before the Merkle tree has neither the tree's table nor its columns of
    ledger_blocks, and is a ledger too: returns whether the tree is there (all of it).
    """
    has_tree = tree_t.name in kinds or bool(set(TREE_COLUMNS) & columns.get(blocks_t.name, set()))
    for table in LEDGER_TABLES:
        if table is tree_t and not has_tree:
            continue
        kind = kinds.get(table.name)
        if kind is None:
            raise NotALedgerError(f"{where} is not a ledger: it has no {table.name} table.")
        if kind != table_kind:
            raise NotALedgerError(
                f"{where} is not a ledger: its {table.name} is a {kind.lower()}, not a table."
            )
        expected = set(table.columns.keys())
        if table is blocks_t and not has_tree:
            expected -= set(TREE_COLUMNS)
        missing = sorted(expected - columns.get(table.name, set()))
        if missing:
            raise NotALedgerError(
                f"{where} is not a ledger: {table.name} lacks {', '.join(missing)}."
            )
    return has_tree
