"""The SQL hash chain's tables (SQLite and PostgreSQL share them).

Keys sort in code-point order on both databases: SQLite compares bytes, and
PostgreSQL is told to with the "C" collation.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, LargeBinary, String, Text
from sqlmodel import Field, SQLModel

KeyText = String().with_variant(String(collation="C"), "postgresql")


class BlockRow(SQLModel, table=True):
    """A block header; the primary key (channel, number) is the guard against forks.

    `tree_size` and `tree_root` are null in blocks stored before the Merkle tree existed;
    a ledger made then gains the two columns when it is next opened to be written.
    """

    __tablename__ = "ledger_blocks"

    channel: str = Field(primary_key=True, sa_type=KeyText)
    number: int = Field(primary_key=True, sa_type=BigInteger)
    previous_hash: str = Field(sa_type=String(64))
    data_hash: str = Field(sa_type=String(64))
    hash: str = Field(sa_type=String(64))
    timestamp: str = Field(sa_type=String(32))
    tx_count: int = Field(sa_type=Integer)
    tree_size: int | None = Field(default=None, sa_type=BigInteger, nullable=True)
    tree_root: str | None = Field(default=None, sa_type=String(64), nullable=True)


class TransactionRow(SQLModel, table=True):
    """A transaction's canonical text, exactly as hashed into its block's data hash."""

    __tablename__ = "ledger_transactions"

    channel: str = Field(primary_key=True, sa_type=KeyText)
    block_number: int = Field(primary_key=True, sa_type=BigInteger)
    tx_index: int = Field(primary_key=True, sa_type=Integer)
    tx_id: str = Field(index=True, sa_type=String(128))
    record: str = Field(sa_type=Text)


class StateRow(SQLModel, table=True):
    """The current value of a key and the version (block, tx) that wrote it."""

    __tablename__ = "ledger_state"

    channel: str = Field(primary_key=True, sa_type=KeyText)
    key: str = Field(primary_key=True, sa_type=KeyText)
    value: str = Field(sa_type=Text)
    block_number: int = Field(sa_type=BigInteger)
    tx_index: int = Field(sa_type=Integer)


class HistoryRow(SQLModel, table=True):
    """One valid write of a key; a null value records a delete."""

    __tablename__ = "ledger_history"

    channel: str = Field(primary_key=True, sa_type=KeyText)
    key: str = Field(primary_key=True, sa_type=KeyText)
    block_number: int = Field(primary_key=True, sa_type=BigInteger)
    tx_index: int = Field(primary_key=True, sa_type=Integer)
    tx_id: str = Field(sa_type=String(128))
    value: str | None = Field(default=None, sa_type=Text, nullable=True)
    creator_uid: str = Field(sa_type=Text)
    creator_msp: str = Field(sa_type=Text)
    timestamp: str = Field(sa_type=String(32))


class TreeNodeRow(SQLModel, table=True):
    """A stored node of a channel's Merkle tree: the hash of the complete subtree over
    leaves [idx · 2^level, (idx + 1) · 2^level); level 0 holds the leaf hashes."""

    __tablename__ = "ledger_tree_nodes"

    channel: str = Field(primary_key=True, sa_type=KeyText)
    level: int = Field(primary_key=True, sa_type=Integer)
    idx: int = Field(primary_key=True, sa_type=BigInteger)
    hash: bytes = Field(sa_type=LargeBinary(32))


LEDGER_TABLES = [
    BlockRow.__table__,  # type: ignore[attr-defined]
    TransactionRow.__table__,  # type: ignore[attr-defined]
    StateRow.__table__,  # type: ignore[attr-defined]
    HistoryRow.__table__,  # type: ignore[attr-defined]
    TreeNodeRow.__table__,  # type: ignore[attr-defined]
]

TREE_TABLE = TreeNodeRow.__table__  # type: ignore[attr-defined]
TREE_COLUMNS = ("tree_size", "tree_root")
"""The columns of ledger_blocks that ledgers made before the tree lack, like its table."""
