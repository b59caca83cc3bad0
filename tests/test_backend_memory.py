"""The conformance suite on the in-memory backend."""

from __future__ import annotations

import dataclasses

from ledger_backends.base import LedgerStore
from ledger_backends.memory import MemoryStore
from ledger_backends.testing import LedgerStoreConformance, Mutation


class TestMemoryStore(LedgerStoreConformance):
    persistent = False
    multiprocess = False

    def fresh_url(self) -> str:
        return "memory://"

    def unreachable_url(self) -> str:
        raise NotImplementedError

    def test_unreachable_store_fails_fast_and_clearly(self) -> None:
        """An in-memory store is always reachable: nothing to test."""

    def _channel(self, store: LedgerStore, channel: str):  # type: ignore[no-untyped-def]
        assert isinstance(store, MemoryStore)
        return store._channels[channel]

    def tamper_block(self, store: LedgerStore, channel: str, number: int, mutate: Mutation) -> None:
        blocks = self._channel(store, channel).blocks
        blocks[number] = dataclasses.replace(blocks[number], hash=mutate(blocks[number].hash))

    def tamper_transaction(
        self, store: LedgerStore, channel: str, number: int, index: int, mutate: Mutation
    ) -> None:
        blocks = self._channel(store, channel).blocks
        texts = list(blocks[number].tx_texts)
        texts[index] = mutate(texts[index])
        blocks[number] = dataclasses.replace(blocks[number], tx_texts=tuple(texts))

    def tamper_state(self, store: LedgerStore, channel: str, key: str, mutate: Mutation) -> None:
        state = self._channel(store, channel).state
        value, version = state[key]
        state[key] = (mutate(value), version)

    def tamper_history(
        self, store: LedgerStore, channel: str, key: str, position: int, mutate: Mutation
    ) -> None:
        entries = self._channel(store, channel).history[key]
        entry = entries[position]
        entries[position] = dataclasses.replace(entry, value=mutate(entry.value or ""))
