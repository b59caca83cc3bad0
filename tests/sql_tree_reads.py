"""A check shared by the SQL backends' tests: runs of consecutive tree node ids, which
`SqlStore.read_tree_nodes` reads as ranges of the primary key, read as the ids one at a time."""

from __future__ import annotations

from ledger_backends.base import LedgerStore
from ledger_backends.chain import ChainWriter
from ledger_backends.merkle import NodeId
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
