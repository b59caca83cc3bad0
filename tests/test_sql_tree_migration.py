"""SQL ledgers made before the Merkle tree: read as they are, given the tree when opened to write.

Their tables are made here with the DDL of that time (what the models made then, as plain
SQL) and filled with a chain whose blocks have no tree, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from ledger_backends.chain import ChainWriter
from ledger_backends.errors import NotALedgerError
from ledger_backends.memory import MemoryStore
from ledger_backends.records import Block
from ledger_backends.registry import open_store
from ledger_backends.sqlite import sqlite_path
from ledger_backends.testing import (
    POSTGRES_URL,
    backend_params,
    golden_proposals,
    proposal,
    query_option,
    scratch_url,
)
from ledger_backends.testing.conformance import append_blocks_older_than_trees, recomputed_tree
from ledger_backends.verify import verify_channel

# The ledger's tables before the tree; {C} is PostgreSQL's code-point collation.
OLD_TABLES = (
    "CREATE TABLE ledger_blocks (channel VARCHAR{C} NOT NULL, number BIGINT NOT NULL, "
    "previous_hash VARCHAR(64) NOT NULL, data_hash VARCHAR(64) NOT NULL, "
    "hash VARCHAR(64) NOT NULL, timestamp VARCHAR(32) NOT NULL, tx_count INTEGER NOT NULL, "
    "PRIMARY KEY (channel, number))",
    "CREATE TABLE ledger_transactions (channel VARCHAR{C} NOT NULL, "
    "block_number BIGINT NOT NULL, tx_index INTEGER NOT NULL, tx_id VARCHAR(128) NOT NULL, "
    "record TEXT NOT NULL, PRIMARY KEY (channel, block_number, tx_index))",
    "CREATE INDEX ix_ledger_transactions_tx_id ON ledger_transactions (tx_id)",
    'CREATE TABLE ledger_state (channel VARCHAR{C} NOT NULL, "key" VARCHAR{C} NOT NULL, '
    "value TEXT NOT NULL, block_number BIGINT NOT NULL, tx_index INTEGER NOT NULL, "
    'PRIMARY KEY (channel, "key"))',
    'CREATE TABLE ledger_history (channel VARCHAR{C} NOT NULL, "key" VARCHAR{C} NOT NULL, '
    "block_number BIGINT NOT NULL, tx_index INTEGER NOT NULL, tx_id VARCHAR(128) NOT NULL, "
    "value TEXT, creator_uid TEXT NOT NULL, creator_msp TEXT NOT NULL, "
    'timestamp VARCHAR(32) NOT NULL, PRIMARY KEY (channel, "key", block_number, tx_index))',
)
TREE_COLUMNS = {"tree_size", "tree_root"}


@pytest.fixture(params=backend_params("sqlite", "postgresql"))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextmanager
def database(url: str) -> Iterator[tuple[Any, str]]:
    """A plain client connection to the ledger's database (autocommit) and its placeholder."""
    if url.startswith("sqlite"):
        sqlite_db = sqlite3.connect(sqlite_path(url), isolation_level=None)
        # As the ledger's own engine made every ledger file: in WAL mode.
        sqlite_db.execute("PRAGMA journal_mode=WAL")
        try:
            yield sqlite_db, "?"
        finally:
            sqlite_db.close()
        return
    schema = query_option(url, "schema")
    with psycopg.connect(POSTGRES_URL, autocommit=True) as postgres_db:
        postgres_db.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        postgres_db.execute(f'SET search_path TO "{schema}"')
        yield postgres_db, "%s"


def layout(url: str) -> tuple[set[str], set[str]]:
    """The ledger's table names and the columns of ledger_blocks."""
    with database(url) as (db, mark):
        if mark == "?":
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            columns = {row[1] for row in db.execute("PRAGMA table_info(ledger_blocks)")}
        else:
            tables = {
                row[0]
                for row in db.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema()"
                )
            }
            columns = {
                row[0]
                for row in db.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name = 'ledger_blocks'"
                )
            }
    return {name for name in tables if name.startswith("ledger_")}, columns


@contextmanager
def ledger_made_before_trees(backend: str) -> Iterator[tuple[str, list[Block]]]:
    """The URL of a ledger in the old tables holding the golden chain without tree, and its
    blocks; the rows are those a MemoryStore holds for that chain."""
    source = MemoryStore()
    blocks = append_blocks_older_than_trees(source, "medical", golden_proposals())
    with scratch_url(backend) as url:
        with database(url) as (db, mark):
            for statement in OLD_TABLES:
                db.execute(statement.format(C=' COLLATE "C"' if mark == "%s" else ""))

            def insert(table: str, rows: list[tuple[Any, ...]]) -> None:
                marks = ", ".join([mark] * len(rows[0]))
                for row in rows:
                    db.execute(f"INSERT INTO {table} VALUES ({marks})", row)

            insert(
                "ledger_blocks",
                [
                    (
                        "medical",
                        b.number,
                        b.previous_hash,
                        b.data_hash,
                        b.hash,
                        b.timestamp,
                        len(b.tx_texts),
                    )
                    for b in blocks
                ],
            )
            insert(
                "ledger_transactions",
                [
                    ("medical", b.number, tx.tx_index, tx.tx_id, tx.text)
                    for b in blocks
                    for tx in b.transactions()
                ],
            )
            insert(
                "ledger_state",
                [("medical", r.key, r.value, *r.version) for r in source.scan_state("medical")],
            )
            insert(
                "ledger_history",
                [
                    (
                        "medical",
                        e.key,
                        e.block_number,
                        e.tx_index,
                        e.tx_id,
                        e.value,
                        e.creator_uid,
                        e.creator_msp,
                        e.timestamp,
                    )
                    for e in source.scan_history("medical")
                ],
            )
        yield url, blocks


def test_an_old_ledger_opened_to_be_read_reads_as_blocks_without_tree(backend: str) -> None:
    with ledger_made_before_trees(backend) as (url, blocks):
        before = layout(url)
        assert before[0] == {
            "ledger_blocks",
            "ledger_transactions",
            "ledger_state",
            "ledger_history",
        }
        store = open_store(url, create=False)
        try:
            assert store.read_blocks("medical", 0, 10) == blocks
            assert store.tip("medical").hash == blocks[-1].hash
            assert store.read_tree_nodes("medical", [(0, 0), (1, 0)]) == {}
            assert store.locate_transaction("medical", "tx-e") == (1, 1)
            assert verify_channel(store, "medical").ok
        finally:
            store.close()
        assert layout(url) == before


def test_an_old_ledger_opened_to_be_written_gains_the_tree(backend: str) -> None:
    with ledger_made_before_trees(backend) as (url, blocks):
        store = open_store(url)
        try:
            tables, columns = layout(url)
            assert "ledger_tree_nodes" in tables and columns >= TREE_COLUMNS
            assert store.read_blocks("medical", 0, 10) == blocks
            ChainWriter(store, "medical").commit([proposal("after", writes={"z": 1})])
            chain = store.read_blocks("medical", 0, 10)
            nodes, heads = recomputed_tree(chain)
            assert (chain[-1].tree_size, chain[-1].tree_root) == heads[-1]
            assert chain[-1].tree_size == 7
            assert store.read_tree_nodes("medical", nodes) == nodes
        finally:
            store.close()
        reader = open_store(url, create=False)
        try:
            assert reader.read_blocks("medical", 0, 10) == chain
            assert reader.read_tree_nodes("medical", nodes) == nodes
            assert verify_channel(reader, "medical").ok
        finally:
            reader.close()


def test_workers_opening_an_old_ledger_at_once_all_start_and_share_one_tree(
    backend: str,
) -> None:
    with ledger_made_before_trees(backend) as (url, _):

        def start_and_commit(worker: int) -> None:
            store = open_store(url)
            try:
                ChainWriter(store, "medical").commit(
                    [proposal(f"w{worker}", writes={f"w/{worker}": worker})]
                )
            finally:
                store.close()

        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(start_and_commit, range(6)))
        store = open_store(url, create=False)
        try:
            chain = store.read_blocks("medical", 0, 20)
            nodes, heads = recomputed_tree(chain)
            assert [(b.tree_size, b.tree_root) for b in chain[3:]] == heads[3:]
            assert heads[-1][0] == 6 + 6
            assert store.read_tree_nodes("medical", nodes) == nodes
        finally:
            store.close()


def test_a_tree_table_without_the_block_columns_is_not_a_ledger(backend: str) -> None:
    with ledger_made_before_trees(backend) as (url, _):
        with database(url) as (db, _mark):
            db.execute(
                "CREATE TABLE ledger_tree_nodes (channel VARCHAR NOT NULL, level INTEGER NOT NULL, "
                "idx BIGINT NOT NULL, hash BYTEA NOT NULL, PRIMARY KEY (channel, level, idx))"
            )
        with pytest.raises(NotALedgerError, match="ledger_blocks lacks tree_root, tree_size"):
            open_store(url, create=False)
