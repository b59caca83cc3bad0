"""The conformance suite on Redis streams (the real server, one key prefix per test)."""

from __future__ import annotations

import json
import time

import pytest
import redis

from ledger_backends import redis_streams
from ledger_backends.base import LedgerStore
from ledger_backends.redis_streams import RedisStore
from ledger_backends.testing import (
    ChainWriter,
    LedgerStoreConformance,
    Mutation,
    golden_clock,
    golden_proposals,
)
from tests.services import REDIS_URL, delete_redis_prefix, unique_name


class TestRedisStore(LedgerStoreConformance):
    def fresh_url(self) -> str:
        self.prefix = unique_name("hltest")
        return f"{REDIS_URL}?prefix={self.prefix}"

    def cleanup(self, url: str) -> None:
        delete_redis_prefix(self.prefix)

    def unreachable_url(self) -> str:
        return "redis://127.0.0.1:1/0"

    def _client(self, store: LedgerStore) -> redis.Redis:
        assert isinstance(store, RedisStore)
        return store.client  # type: ignore[no-any-return]

    def _rewrite_block(
        self, store: LedgerStore, channel: str, number: int, change: dict[str, Mutation]
    ) -> None:
        """Streams cannot be edited in place: rebuild the stream with one field changed."""
        client = self._client(store)
        stream = f"{self.prefix}:{channel}:blocks"
        entries = client.xrange(stream)
        client.delete(stream)
        for entry_id, fields in entries:
            if entry_id == f"{number}-1":
                fields = {**fields, **{name: fn(fields[name]) for name, fn in change.items()}}
            client.xadd(stream, fields, id=entry_id)

    def tamper_block(self, store: LedgerStore, channel: str, number: int, mutate: Mutation) -> None:
        self._rewrite_block(store, channel, number, {"hash": mutate})

    def tamper_transaction(
        self, store: LedgerStore, channel: str, number: int, index: int, mutate: Mutation
    ) -> None:
        def change(txs: str) -> str:
            texts = json.loads(txs)
            texts[index] = mutate(texts[index])
            return json.dumps(texts, ensure_ascii=False)

        self._rewrite_block(store, channel, number, {"txs": change})

    def tamper_state(self, store: LedgerStore, channel: str, key: str, mutate: Mutation) -> None:
        client = self._client(store)
        name = f"{self.prefix}:{channel}:state"
        client.hset(name, key, mutate(client.hget(name, key)))

    def tamper_history(
        self, store: LedgerStore, channel: str, key: str, position: int, mutate: Mutation
    ) -> None:
        client = self._client(store)
        name = f"{self.prefix}:{channel}:history:{key}"
        client.lset(name, position, mutate(client.lindex(name, position)))


@pytest.mark.parametrize("skew_s", [-30.0, 30.0], ids=["host-behind", "host-ahead"])
def test_appends_work_whatever_the_offset_between_host_and_redis_clocks(
    monkeypatch: pytest.MonkeyPatch, skew_s: float
) -> None:
    # The append's give-up deadline is compared with Redis's TIME: it must be on Redis's clock.
    # A host clock that is off cannot be produced here, so this one function's clock is shifted.
    prefix = unique_name("hlskew")
    store = RedisStore.from_url(f"{REDIS_URL}?prefix={prefix}")
    try:
        real_time = time.time
        monkeypatch.setattr(redis_streams.time, "time", lambda: real_time() + skew_s)
        writer = ChainWriter(store, "medical", clock=golden_clock())
        for batch in golden_proposals():
            writer.commit(batch)
        assert store.tip("medical").height == len(golden_proposals())
    finally:
        store.close()
        delete_redis_prefix(prefix)
