"""Simulating transactions: what is recorded in read- and write-sets, and what is refused."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import pytest

from ledger_backends import (
    Creator,
    PagedReadInTransactionError,
    Proposal,
    TxSimulator,
    Validation,
)
from ledger_backends.base import prefix_end
from ledger_backends.chain import ChainWriter
from ledger_backends.memory import MemoryStore
from ledger_backends.testing import proposal


def _store_with(**values: object) -> MemoryStore:
    store = MemoryStore()
    ChainWriter(store, "medical").commit([proposal("seed", writes=dict(values))])
    return store


def test_reads_record_versions_and_absent_keys() -> None:
    sim = TxSimulator(_store_with(a=1), "medical")
    assert sim.get_state("a") == 1
    assert sim.get_state("b") is None
    made = sim.proposal(
        tx_id="t", contract="c", function="f", args=[1], creator=Creator("u", "M"), timestamp="x"
    )
    assert made.read_set == {"a": (0, 0), "b": None}
    assert made.write_set == {}


def test_simulation_does_not_see_its_own_writes_as_in_fabric() -> None:
    sim = TxSimulator(_store_with(a=1), "medical")
    sim.put_state("a", 2)
    assert sim.get_state("a") == 1


def test_written_values_are_copied_when_put() -> None:
    sim = TxSimulator(MemoryStore(), "medical")
    card = {"allergies": ["nuts"]}
    sim.put_state("card", card)
    card["allergies"].append("pollen")
    made = sim.proposal(
        tx_id="t", contract="c", function="f", args={}, creator=Creator("u", "M"), timestamp="x"
    )
    assert made.write_set == {"card": {"allergies": ["nuts"]}}


@pytest.mark.parametrize("value", [None, math.nan, {"when": object()}])
def test_values_without_a_json_form_are_refused(value: object) -> None:
    sim = TxSimulator(MemoryStore(), "medical")
    with pytest.raises(ValueError):
        sim.put_state("k", value)


@pytest.mark.parametrize("key", ["", None, 5])
def test_keys_must_be_non_empty_strings(key: object) -> None:
    sim = TxSimulator(MemoryStore(), "medical")
    with pytest.raises(ValueError, match="non-empty string"):
        sim.put_state(key, 1)  # type: ignore[arg-type]


def _propose(sim: TxSimulator, args: object, **options: Any) -> Proposal:
    return sim.proposal(
        tx_id="t",
        contract="c",
        function="f",
        args=args,
        creator=Creator("u", "M"),
        timestamp="x",
        **options,
    )


def test_args_are_recorded_only_as_a_salted_digest() -> None:
    made = _propose(TxSimulator(MemoryStore(), "medical"), {"fullName": "Ada"})
    clear = b'{"fullName":"Ada"}'
    assert made.args_digest == hashlib.sha256(bytes.fromhex(made.salt) + clear).hexdigest()
    assert made.args_digest != hashlib.sha256(clear).hexdigest()


def test_each_proposal_gets_its_own_secret_salt() -> None:
    sim = TxSimulator(MemoryStore(), "medical")
    sim.put_state("bloodType", "A+")
    first, second = _propose(sim, {"x": 1}), _propose(sim, {"x": 1})
    assert len(bytes.fromhex(first.salt)) == 32 and first.salt != second.salt
    assert first.args_digest != second.args_digest
    # One write-set, two commitments: a guess of the value cannot be checked against either.
    commitments = {
        json.loads(p.canonical_text(Validation.VALID))["write_set_commitment"]
        for p in (first, second)
    }
    assert len(commitments) == 2


def test_a_given_salt_makes_digests_reproducible() -> None:
    sim = TxSimulator(MemoryStore(), "medical")
    made = [_propose(sim, {"x": 1}, salt="ab" * 32) for _ in range(2)]
    assert made[0].args_digest == made[1].args_digest
    with pytest.raises(ValueError, match="salt"):
        _propose(sim, {"x": 1}, salt="AB" * 32)


def test_foreign_reads_are_kept_with_the_proposal() -> None:
    sim = TxSimulator(MemoryStore(), "report")
    made = _propose(sim, {}, foreign_reads={"medical": {"card/1": (3, 0), "active/1": None}})
    assert made.foreign_reads == {"medical": {"card/1": (3, 0), "active/1": None}}
    text = json.loads(made.canonical_text(Validation.VALID))
    assert text["foreign_reads"] == {"medical": {"active/1": None, "card/1": [3, 0]}}


class _CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.point_reads = 0

    def read_state(self, channel: str, key: str):  # type: ignore[no-untyped-def]
        self.point_reads += 1
        return super().read_state(channel, key)


def test_a_key_is_read_from_the_store_once_per_simulation() -> None:
    store = _CountingStore()
    ChainWriter(store, "medical").commit([proposal("seed", writes={"a": {"n": 1}})])
    sim = TxSimulator(store, "medical")
    first = sim.get_state("a")
    first["n"] = 99  # the caller's copy; a second read is not affected
    assert sim.get_state("a") == {"n": 1}
    assert sim.get_state("absent") is None and sim.get_state("absent") is None
    assert store.point_reads == 2


def test_a_paged_read_is_not_recorded_in_the_read_set() -> None:
    sim = TxSimulator(_store_with(**{"k/1": 1, "k/2": 2, "k/3": 3}), "medical")
    assert sim.get_prefix_page("k/", after=None, limit=2) == [("k/3", 3), ("k/2", 2)]
    assert sim.get_prefix_page("k/", after="k/2", limit=2) == [("k/1", 1)]
    assert sim.get_prefix_page("k/", after=None, limit=5, reverse=False) == [
        ("k/1", 1),
        ("k/2", 2),
        ("k/3", 3),
    ]
    assert _propose(sim, {}).read_set == {}


def test_a_simulation_that_paged_cannot_write() -> None:
    sim = TxSimulator(_store_with(**{"k/1": 1}), "medical")
    sim.get_prefix_page("k/", after=None, limit=1)
    with pytest.raises(PagedReadInTransactionError, match="pages are for queries"):
        sim.put_state("k/2", 2)
    with pytest.raises(PagedReadInTransactionError):
        sim.del_state("k/1")
    assert _propose(sim, {}).write_set == {}


def test_a_simulation_that_wrote_cannot_page() -> None:
    sim = TxSimulator(_store_with(**{"k/1": 1}), "medical")
    sim.put_state("k/2", 2)
    with pytest.raises(PagedReadInTransactionError, match="cannot page"):
        sim.get_prefix_page("k/", after=None, limit=1)
    # A whole-range read is recorded, so a transaction may make one.
    assert sim.get_prefix("k/") == [("k/1", 1)]
    assert _propose(sim, {}).read_set == {"k/1": (0, 0)}


@pytest.mark.parametrize(
    ("prefix", "end"),
    [
        ("a/", "a0"),
        ("", ""),
        ("\U0010ffff", ""),
        ("a\U0010ffff\U0010ffff", "b"),
        ("a\ud7ff", "a\ue000"),
    ],
)
def test_a_prefix_ends_at_the_least_key_above_all_keys_with_it(prefix: str, end: str) -> None:
    assert prefix_end(prefix) == end
