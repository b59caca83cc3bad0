"""The conformance suite on Redis streams (the real server, one key prefix per test), and what
only Redis does."""

from __future__ import annotations

import time

import pytest

from ledger_backends.chain import ChainWriter
from ledger_backends.redis_streams import RedisStore
from ledger_backends.testing import (
    LedgerStoreConformance,
    golden_clock,
    golden_proposals,
    needs_backend,
    proposal,
    query_option,
    scratch_url,
)
from ledger_backends.testing.conformance import append_blocks_older_than_trees

pytestmark = needs_backend("redis")


class TestRedisStore(LedgerStoreConformance):
    backend = "redis"


@pytest.mark.parametrize("skew_s", [-30.0, 30.0], ids=["host-behind", "host-ahead"])
def test_appends_work_whatever_the_offset_between_host_and_redis_clocks(
    monkeypatch: pytest.MonkeyPatch, skew_s: float
) -> None:
    # The append's give-up deadline is compared with Redis's TIME: it must be on Redis's clock.
    # A host clock that is off cannot be produced here, so time.time is shifted for this test.
    with scratch_url("redis") as url:
        store = RedisStore.from_url(url)
        try:
            real_time = time.time
            monkeypatch.setattr(time, "time", lambda: real_time() + skew_s)
            writer = ChainWriter(store, "medical", clock=golden_clock())
            for batch in golden_proposals():
                writer.commit(batch)
            assert store.tip("medical").height == len(golden_proposals())
        finally:
            store.close()


def test_a_chain_stored_before_trees_gets_its_transaction_locations_with_its_tree() -> None:
    with scratch_url("redis") as url:
        store = RedisStore.from_url(url)
        try:
            legacy = append_blocks_older_than_trees(store, "medical", golden_proposals())
            # A store of that time had no CH:txs at all.
            prefix = f"{query_option(url, 'prefix')}:medical"
            store.client.delete(f"{prefix}:txs")
            assert store.locate_transaction("medical", "tx-a") is None
            ChainWriter(store, "medical").commit([proposal("with-tree", writes={"z": 1})])
            for block in legacy:
                for index, tx in enumerate(block.transactions()):
                    assert store.locate_transaction("medical", tx.tx_id) == (block.number, index)
            assert store.locate_transaction("medical", "with-tree") == (3, 0)
            entries = store.client.xrange(f"{prefix}:blocks", "-", "+")
            assert ["tree_size" in fields for _, fields in entries] == [False] * 3 + [True]
            assert store.client.hlen(f"{prefix}:tree") == 2 * 7 - (7).bit_count()
        finally:
            store.close()
