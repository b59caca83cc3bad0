"""Changing one byte of a SQL ledger behind its back, as a database administrator could."""

from __future__ import annotations

from sqlalchemy import select, update

from ledger_backends.base import LedgerStore
from ledger_backends.sql import SqlStore, blocks_t, history_t, state_t, transactions_t
from ledger_backends.testing import Mutation


class SqlTampering:
    def tamper_block(self, store: LedgerStore, channel: str, number: int, mutate: Mutation) -> None:
        assert isinstance(store, SqlStore)
        where = (blocks_t.c.channel == channel) & (blocks_t.c.number == number)
        with store.engine.begin() as conn:
            old = conn.execute(select(blocks_t.c.hash).where(where)).scalar_one()
            conn.execute(update(blocks_t).where(where).values(hash=mutate(old)))

    def tamper_transaction(
        self, store: LedgerStore, channel: str, number: int, index: int, mutate: Mutation
    ) -> None:
        assert isinstance(store, SqlStore)
        where = (
            (transactions_t.c.channel == channel)
            & (transactions_t.c.block_number == number)
            & (transactions_t.c.tx_index == index)
        )
        with store.engine.begin() as conn:
            old = conn.execute(select(transactions_t.c.record).where(where)).scalar_one()
            conn.execute(update(transactions_t).where(where).values(record=mutate(old)))

    def tamper_state(self, store: LedgerStore, channel: str, key: str, mutate: Mutation) -> None:
        assert isinstance(store, SqlStore)
        where = (state_t.c.channel == channel) & (state_t.c.key == key)
        with store.engine.begin() as conn:
            old = conn.execute(select(state_t.c.value).where(where)).scalar_one()
            conn.execute(update(state_t).where(where).values(value=mutate(old)))

    def tamper_history(
        self, store: LedgerStore, channel: str, key: str, position: int, mutate: Mutation
    ) -> None:
        assert isinstance(store, SqlStore)
        where = (history_t.c.channel == channel) & (history_t.c.key == key)
        with store.engine.begin() as conn:
            rows = conn.execute(
                select(history_t.c.block_number, history_t.c.tx_index, history_t.c.value)
                .where(where)
                .order_by(history_t.c.block_number, history_t.c.tx_index)
            ).all()
            row = rows[position]
            conn.execute(
                update(history_t)
                .where(where)
                .where(history_t.c.block_number == row.block_number)
                .where(history_t.c.tx_index == row.tx_index)
                .values(value=mutate(row.value))
            )
