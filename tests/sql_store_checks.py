"""Checks shared by the SQL backends' tests, of what `SqlStore` reads its own way: runs of
consecutive tree node ids (ranges of the primary key) and the state and history scans (pages
through the driver's cursor)."""

from __future__ import annotations

import pytest

from ledger_backends import sql
from ledger_backends.base import LedgerStore
from ledger_backends.chain import ChainWriter
from ledger_backends.merkle import NodeId
from ledger_backends.records import HistoryEntry
from ledger_backends.sql import TREE_RANGE_MIN
from ledger_backends.testing import golden_clock
from ledger_backends.testing.conformance import recomputed_tree
from ledger_backends.testing.golden import proposal


def assert_runs_read_as_single_ids(store: LedgerStore) -> None:
    writer = ChainWriter(store, "medical", clock=golden_clock())
    for block in range(5):
        writer.commit([proposal(f"t{block}-{n}", writes={f"k/{block}/{n}": n}) for n in range(30)])
    nodes, _ = recomputed_tree(store.read_blocks("medical", 0, 10))
    assert len([node for node in nodes if node[0] == 0]) == 150
    one_by_one = {
        node: found
        for level in range(9)
        for index in range(-1, 160)
        for node, found in store.read_tree_nodes("medical", [(level, index)]).items()
    }
    assert one_by_one == nodes  # what each kind of read below is compared with
    shortest = TREE_RANGE_MIN
    reads: list[list[NodeId]] = [
        [(0, n) for n in range(150)],  # one run, every node stored
        [(0, n) for n in range(100, 250)],  # one run, the stored nodes at its start
        [(0, n) for n in range(200, 200 + 2 * shortest)],  # one run, nothing stored
        [(0, n) for n in range(shortest - 1)],  # one short of a run
        [(0, n) for n in range(shortest)],  # the shortest run
        # Runs with gaps, the same ids twice, runs of several levels, out of order.
        [(0, n) for n in [*range(40, 120), *range(5, 30), 0, 2, 149, 150, 40, 41]],
        [(level, n) for n in range(150, -1, -1) for level in range(8)],
        [(1, n) for n in range(0, 80, 2)] + [(2, n) for n in range(-5, 40)],
    ]
    for ids in reads:
        expected = {node: nodes[node] for node in ids if node in nodes}
        assert store.read_tree_nodes("medical", ids) == expected
        assert store.read_tree_nodes("report", ids) == {}


def assert_scans_page_through(store: LedgerStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every page size gives every key's state row and every history entry, once each."""
    writer = ChainWriter(store, "medical", clock=golden_clock())
    for block in range(4):
        writes: dict[str, object] = {f"k/{n}": [block, n] for n in range(block, 6)}
        writes |= {"k/0": None, "z": {"block": block}}  # k/0 deleted, then written again
        writer.commit([proposal(f"t{block}", writes=writes)])
        writer.commit([proposal(f"u{block}", writes={"k/0": block, "z": block})])
    ChainWriter(store, "report", clock=golden_clock()).commit(
        [proposal("other", channel="report", writes={"k/1": "other"})]
    )
    state = store.read_range("medical", "", "")
    keys = [record.key for record in state]
    history = [entry for key in keys for entry in store.read_history("medical", key)]
    assert len(state) == 7 and len(history) == 33  # k/0 and z: 8 entries each
    for page in (1, 2, 3, 7, 8, sql.SCAN_PAGE):
        monkeypatch.setattr(sql, "SCAN_PAGE", page)
        assert list(store.scan_state("medical")) == state
        assert list(store.scan_history("medical")) == history
    rows = [(r.key, r.value, *r.version) for r in state]
    assert isinstance(store, sql.SqlStore) and list(store.scan_state_rows("medical")) == rows
    assert [HistoryEntry(*row) for row in store.scan_history_rows("medical")] == history


class SqlStoreChecks:
    """The checks above as tests of a SQL backend's test class, which gives `store`."""

    store: LedgerStore

    def test_tree_nodes_read_as_ranges_are_those_read_one_by_one(self) -> None:
        assert_runs_read_as_single_ids(self.store)

    def test_state_and_history_scans_page_through_them(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        assert_scans_page_through(self.store, monkeypatch)
