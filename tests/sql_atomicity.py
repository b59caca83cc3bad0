"""SQL backends: a block whose append fails part-way leaves no trace."""

from __future__ import annotations

import dataclasses

import pytest

from ledger_backends.errors import ChainIntegrityError
from ledger_backends.records import Tip
from ledger_backends.testing import ChainWriter, golden_clock, proposal


class SqlAtomicity:
    def test_append_failing_halfway_rolls_back_everything(self) -> None:
        store = self.store  # type: ignore[attr-defined]
        writer = ChainWriter(store, "medical", clock=golden_clock())
        writer.commit([proposal("first", writes={"a": 1})])
        tip = store.tip("medical")
        commit, _ = writer.build(tip, [proposal("second", writes={"b": 2, "c": 3})])
        # The history rows go in last; a duplicate row makes the database refuse the block
        # after the block, transaction and state rows were already inserted.
        broken = dataclasses.replace(commit, history=commit.history + commit.history[:1])
        with pytest.raises(ChainIntegrityError, match="could not be stored"):
            store.append_if_tip("medical", tip, broken)
        assert store.tip("medical") == tip
        assert store.read_state("medical", "b") is None
        assert store.read_blocks("medical", 1, 5) == []
        assert store.read_history("medical", "b") == []
        assert isinstance(tip, Tip) and store.append_if_tip("medical", tip, commit)
