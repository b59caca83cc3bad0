"""The SQL hash chain on PostgreSQL via psycopg 3 (`postgresql://user@host:port/db`).

Several API processes, on one machine or many, may share one database: the
primary key (channel, number) rejects a second block with the same number, and
the expected previous hash is checked inside the same transaction. Durability
is PostgreSQL's own (`synchronous_commit=on`, the default, means an
acknowledged block is on disk). An optional `?schema=NAME` keeps the ledger's
tables in their own schema.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import create_engine
from sqlalchemy.dialects.postgresql import insert as pg_insert

from .errors import UnsupportedLedgerURLError
from .sql import SqlStore, state_upsert

CONNECT_TIMEOUT_S = 3
# Serialises table creation when several processes open an empty database at once.
_SCHEMA_LOCK_ID = 0x4845_4C47


class PostgresStore(SqlStore):
    backend_name = "PostgreSQL"

    @classmethod
    def from_url(cls, url: str) -> PostgresStore:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        schema = query.pop("schema", None)
        if schema is not None and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
            raise UnsupportedLedgerURLError(
                "The schema in a PostgreSQL ledger URL must be lower-case letters, digits and _."
            )
        connect_args: dict[str, object] = {"connect_timeout": CONNECT_TIMEOUT_S}
        if schema:
            connect_args["options"] = f"-c search_path={schema}"
        engine_url = urlunsplit(
            ("postgresql+psycopg", parts.netloc, parts.path, urlencode(query), "")
        )
        engine = create_engine(
            engine_url, connect_args=connect_args, pool_pre_ping=True, pool_size=8
        )
        store = cls(url, engine, state_upsert(pg_insert))
        with store._writing() as conn:
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK_ID})")
            if schema:
                conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            store.create_tables(conn)
        return store
