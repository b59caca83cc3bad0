"""The conformance suite on PostgreSQL (the real server, one schema per test), and what only
PostgreSQL does."""

from __future__ import annotations

import time

import psycopg

from ledger_backends.chain import ChainWriter
from ledger_backends.registry import open_ledger
from ledger_backends.testing import (
    POSTGRES_URL,
    LedgerStoreConformance,
    proposal,
    query_option,
    scratch_url,
    submit_all,
)
from tests.sql_store_checks import SqlStoreChecks


class TestPostgresStore(SqlStoreChecks, LedgerStoreConformance):
    backend = "postgresql"
    rolls_back = True

    def test_commits_survive_server_side_disconnects(self) -> None:
        submit_all(self.ledger, "medical", [proposal("before", writes={"k": 1})])
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            terminated = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (query_option(self.url, "application_name"),),
            ).fetchone()
        assert terminated is not None and terminated[0] >= 1
        (receipt,) = submit_all(self.ledger, "medical", [proposal("after", writes={"k": 2})])
        assert receipt.block_number == 1  # type: ignore[attr-defined]

    def test_two_ledgers_on_separate_schemas_do_not_see_each_other(self) -> None:
        submit_all(self.ledger, "medical", [proposal("mine", writes={"k": 1})])
        with scratch_url("postgresql") as other_url:
            other = open_ledger(other_url)
            try:
                assert other.store.tip("medical").height == 0
            finally:
                other.close()

    def test_a_foreign_read_being_changed_is_not_waited_for(self) -> None:
        # A revocation deleting the row right now: the append gives way at once, no lock wait.
        submit_all(self.ledger, "medical", [proposal("accept", writes={"active/1": "a-1"})])
        report = proposal(
            "report",
            channel="report",
            writes={"report/1": 1},
            foreign_reads={"medical": {"active/1": (0, 0)}},
        )
        tip = self.store.tip("report")
        commit, _ = ChainWriter(self.store, "report").build(tip, [report])
        with psycopg.connect(POSTGRES_URL) as revocation:
            revocation.execute(f'SET search_path TO "{query_option(self.url, "schema")}"')
            revocation.execute(
                "DELETE FROM ledger_state WHERE channel = 'medical' AND key = 'active/1'"
            )
            started = time.monotonic()
            assert self.store.append_if_tip("report", tip, commit) is False
            assert time.monotonic() - started < 1
            revocation.rollback()
        assert self.store.tip("report") == tip
        assert self.store.append_if_tip("report", tip, commit) is True
