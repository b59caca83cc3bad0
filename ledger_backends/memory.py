"""The in-memory backend (`memory://`): for tests and demos; nothing survives the process."""

from __future__ import annotations

import threading
import time
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .base import LedgerStore, prefix_end
from .merkle import NodeId
from .records import Block, BlockCommit, ForeignReads, HistoryEntry, StateRecord, Tip, Version


@dataclass
class _Channel:
    blocks: list[Block] = field(default_factory=list)
    state: dict[str, tuple[str, Version]] = field(default_factory=dict)
    history: dict[str, list[HistoryEntry]] = field(default_factory=dict)
    sorted_keys: list[str] | None = None  # built on the first range read, then kept in order
    tree: dict[NodeId, bytes] = field(default_factory=dict)
    tx_locations: dict[str, tuple[int, int]] = field(default_factory=dict)


class MemoryStore(LedgerStore):
    """Dictionaries behind one lock; `append_if_tip` (foreign reads included) is atomic."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._lock = threading.Lock()
        self._channels: dict[str, _Channel] = {}

    @classmethod
    def from_url(cls, url: str, *, create: bool = True) -> MemoryStore:
        """A new, empty store: there is nothing to create, so `create` changes nothing."""
        return cls(url)

    def _channel(self, name: str) -> _Channel:
        channel = self._channels.get(name)
        return channel if channel is not None else _Channel()

    def channels(self) -> list[str]:
        with self._lock:
            return sorted(name for name, channel in self._channels.items() if channel.blocks)

    def tip(self, channel: str) -> Tip:
        with self._lock:
            blocks = self._channel(channel).blocks
            return Tip(len(blocks), blocks[-1].hash) if blocks else Tip.empty()

    def read_state(self, channel: str, key: str) -> StateRecord | None:
        with self._lock:
            found = self._channel(channel).state.get(key)
        return None if found is None else StateRecord(key, found[0], found[1])

    def read_versions(self, channel: str, keys: Iterable[str]) -> dict[str, Version]:
        with self._lock:
            state = self._channel(channel).state
            return {key: state[key][1] for key in keys if key in state}

    def read_range(self, channel: str, start: str, end: str) -> list[StateRecord]:
        with self._lock:
            data = self._channel(channel)
            keys = _sorted_keys(data)
            records = []
            for index in range(bisect_left(keys, start), len(keys)):
                key = keys[index]
                if end and key >= end:
                    break
                value, version = data.state[key]
                records.append(StateRecord(key, value, version))
            return records

    def read_prefix_page(
        self, channel: str, prefix: str, *, after: str | None, limit: int, reverse: bool
    ) -> list[StateRecord]:
        """Bisections of the sorted keys, then a slice of at most `limit`."""
        if limit <= 0:
            return []
        end = prefix_end(prefix)
        with self._lock:
            data = self._channel(channel)
            keys = _sorted_keys(data)
            low = bisect_left(keys, prefix)
            high = bisect_left(keys, end) if end else len(keys)
            if reverse:
                if after is not None:
                    high = min(high, bisect_left(keys, after))
                chosen = keys[max(low, high - limit) : high][::-1]
            else:
                if after is not None:
                    low = max(low, bisect_right(keys, after))
                chosen = keys[low : min(high, low + limit)]
            return [StateRecord(key, *data.state[key]) for key in chosen]

    def read_history(self, channel: str, key: str) -> list[HistoryEntry]:
        with self._lock:
            return list(self._channel(channel).history.get(key, ()))

    def read_blocks(self, channel: str, start: int, limit: int) -> list[Block]:
        with self._lock:
            return self._channel(channel).blocks[max(start, 0) : max(start, 0) + max(limit, 0)]

    def read_tree_nodes(self, channel: str, ids: Iterable[NodeId]) -> dict[NodeId, bytes]:
        with self._lock:
            tree = self._channel(channel).tree
            return {node: tree[node] for node in ids if node in tree}

    def locate_transaction(self, channel: str, tx_id: str) -> tuple[int, int] | None:
        with self._lock:
            return self._channel(channel).tx_locations.get(tx_id)

    def append_if_tip(self, channel: str, expected: Tip, commit: BlockCommit) -> bool:
        with self._lock:
            data = self._channels.setdefault(channel, _Channel())
            blocks = data.blocks
            current = Tip(len(blocks), blocks[-1].hash) if blocks else Tip.empty()
            if current != expected or not self._current(commit.foreign_reads):
                return False
            if commit.not_after is not None and time.monotonic() > commit.not_after:
                return False
            blocks.append(commit.block)
            keys = data.sorted_keys
            for write in commit.state_writes:
                if write.value is None:
                    if data.state.pop(write.key, None) is not None and keys is not None:
                        del keys[bisect_left(keys, write.key)]
                else:
                    if write.key not in data.state and keys is not None:
                        insort(keys, write.key)
                    data.state[write.key] = (write.value, write.version)
            for entry in commit.history:
                data.history.setdefault(entry.key, []).append(entry)
            for node in commit.tree_nodes:
                data.tree[node.id] = node.hash
            for index, tx_id in enumerate(commit.tx_ids):
                data.tx_locations.setdefault(tx_id, (commit.block.number, index))
            return True

    def _current(self, foreign_reads: ForeignReads) -> bool:
        """Whether every foreign read still has the version seen; the caller holds the lock."""
        for channel, reads in foreign_reads.items():
            state = self._channel(channel).state
            for key, version in reads.items():
                found = state.get(key)
                if (None if found is None else found[1]) != version:
                    return False
        return True

    def scan_state(self, channel: str) -> Iterator[StateRecord]:
        with self._lock:
            items = list(self._channel(channel).state.items())
        return (StateRecord(key, value, version) for key, (value, version) in items)

    def scan_history(self, channel: str) -> Iterator[HistoryEntry]:
        with self._lock:
            entries = [e for history in self._channel(channel).history.values() for e in history]
        return iter(entries)

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None


def _sorted_keys(channel: _Channel) -> list[str]:
    """The channel's keys in order, sorted on first use; the caller holds the lock."""
    if channel.sorted_keys is None:
        channel.sorted_keys = sorted(channel.state)
    return channel.sorted_keys
