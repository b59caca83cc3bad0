"""The hash format, pinned by recomputing the golden vector without the ledger's own code."""

from __future__ import annotations

import hashlib
import json
import math

import pytest

from ledger_backends.chain import ChainWriter
from ledger_backends.hashing import canonical_json
from ledger_backends.memory import MemoryStore
from ledger_backends.records import format_timestamp, parse_timestamp
from ledger_backends.testing import GOLDEN_BLOCK_HASHES, golden_clock, golden_proposals


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_golden_vector_follows_the_documented_format() -> None:
    store = MemoryStore()
    writer = ChainWriter(store, "medical", clock=golden_clock())
    for batch in golden_proposals():
        writer.commit(batch)
    previous = "0" * 64
    leaves: list[bytes] = []
    for block, expected in zip(
        store.read_blocks("medical", 0, 10), GOLDEN_BLOCK_HASHES, strict=True
    ):
        # The tree's leaves are every transaction so far: SHA-256(0x00 ‖ SHA-256(text)).
        leaves += [
            hashlib.sha256(b"\x00" + hashlib.sha256(text.encode()).digest()).digest()
            for text in block.tx_texts
        ]
        for text in block.tx_texts:
            # Each stored transaction is canonical JSON: sorted keys, no spaces, raw UTF-8.
            raw = json.loads(text)
            assert text == _canonical(raw)
            # Its write-set commitment is SHA-256 of the salt's 32 bytes, then the write-set.
            salted = bytes.fromhex(raw["salt"]) + _canonical(raw["write_set"]).encode()
            assert len(bytes.fromhex(raw["salt"])) == 32
            assert raw["write_set_commitment"] == hashlib.sha256(salted).hexdigest()
        data = _sha(json.dumps([_sha(t) for t in block.tx_texts], separators=(",", ":")))
        header = json.dumps(
            {
                "data_hash": data,
                "number": block.number,
                "previous_hash": previous,
                "timestamp": block.timestamp,
                "tree_root": _tree_root(leaves).hex(),
                "tree_size": len(leaves),
            },
            sort_keys=True,
            separators=(",", ":"),
        )
        assert _sha(header) == expected == block.hash
        previous = block.hash


def _tree_root(leaves: list[bytes]) -> bytes:
    """RFC 9162's MTH over leaf hashes: split at the largest power of two below the size."""
    if len(leaves) == 1:
        return leaves[0]
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    left, right = _tree_root(leaves[:split]), _tree_root(leaves[split:])
    return hashlib.sha256(b"\x01" + left + right).digest()


def test_canonical_json_is_compact_sorted_and_keeps_unicode() -> None:
    assert (
        canonical_json({"b": 1, "a": ["é", 1.5, None, True]}) == '{"a":["é",1.5,null,true],"b":1}'
    )


@pytest.mark.parametrize("bad", [math.nan, math.inf, {1, 2}])
def test_canonical_json_refuses_values_without_one_json_form(bad: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        canonical_json({"x": bad})


def test_timestamps_are_utc_microseconds_with_z() -> None:
    moment = parse_timestamp("2026-11-27T01:02:03.000004Z")
    assert format_timestamp(moment) == "2026-11-27T01:02:03.000004Z"
