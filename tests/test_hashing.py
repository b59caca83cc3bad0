"""The hash format, pinned by recomputing the golden vector without the ledger's own code."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import cast

import pytest

from ledger_backends.chain import ChainWriter
from ledger_backends.hashing import canonical_json, is_salt
from ledger_backends.memory import MemoryStore
from ledger_backends.records import (
    Creator,
    Event,
    Proposal,
    Validation,
    format_timestamp,
    parse_timestamp,
)
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


def test_canonical_json_refuses_a_value_that_contains_itself_every_time() -> None:
    loop: list[object] = []
    loop.append(loop)
    for _ in range(2):
        with pytest.raises(ValueError, match="Circular"):
            canonical_json({"x": loop})
    shared = [1]
    assert canonical_json({"a": shared, "b": shared, "s": "é\n"}) == _canonical(
        {"a": [1], "b": [1], "s": "é\n"}
    )


def test_timestamps_are_utc_microseconds_with_z() -> None:
    moment = parse_timestamp("2026-11-27T01:02:03.000004Z")
    assert format_timestamp(moment) == "2026-11-27T01:02:03.000004Z"


def test_timestamps_keep_their_form_whatever_the_zone_or_year() -> None:
    east = timezone(timedelta(hours=5, minutes=30))
    for moment in (
        datetime(2026, 12, 7, 23, 59, 59, 999999, tzinfo=east),
        datetime(2027, 1, 1, 0, 0, 0, 0, tzinfo=UTC),
        datetime(999, 3, 4, 5, 6, 7, 8, tzinfo=UTC),
    ):
        assert format_timestamp(moment) == moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


WRITE_SETS = [
    {"k": {"b": [1, 2.5, None], "a": 'é ✓ \u2028 "quoted" \\ \n'}},
    {"z": None, "a": 1, "é": {"nested": {"y": True, "x": False}}, "A": [], "": ""},
    {},
    {"card/1": "x" * 300, "card/0": None},
]


@pytest.mark.parametrize("writes", WRITE_SETS)
@pytest.mark.parametrize("extras", [True, False])
def test_a_transaction_text_is_the_canonical_json_of_its_whole_record(
    writes: dict[str, object], extras: bool
) -> None:
    events = (Event("Changed", {"id": "é", "n": [1, None]}), Event("Seen")) if extras else ()
    foreign = {"report": {"r": (1, 0), "s": None}, "a": {"x": (0, 0)}} if extras else {}
    proposal = Proposal(
        tx_id="tx-é",
        channel="medical",
        contract="medical",
        function="update",
        args_digest="0" * 64,
        creator=Creator(uid="dr-ü", msp="HospitalMSP"),
        timestamp="2026-12-07T21:00:00.000001Z",
        read_set={"k": (3, 1), "gone": None, "Ω": (12345678901, 0)},
        write_set=writes,
        events=events,
        foreign_reads=foreign,
        salt="ab" * 32,
    )
    text, values = proposal.canonical_parts(Validation.MVCC_READ_CONFLICT)
    record = {
        "args_digest": "0" * 64,
        "channel": "medical",
        "contract": "medical",
        "creator": {"msp": "HospitalMSP", "uid": "dr-ü"},
        "events": [{"name": e.name, "payload": e.payload} for e in events],
        "foreign_reads": {
            c: {k: None if v is None else list(v) for k, v in r.items()} for c, r in foreign.items()
        },
        "function": "update",
        "read_set": {"gone": None, "k": [3, 1], "Ω": [12345678901, 0]},
        "salt": "ab" * 32,
        "timestamp": "2026-12-07T21:00:00.000001Z",
        "tx_id": "tx-é",
        "validation": "MVCC_READ_CONFLICT",
        "write_set": writes,
        "write_set_commitment": hashlib.sha256(
            bytes.fromhex("ab" * 32) + _canonical(writes).encode()
        ).hexdigest(),
    }
    assert text == _canonical(record) == proposal.canonical_text(Validation.MVCC_READ_CONFLICT)
    assert values == {k: None if v is None else _canonical(v) for k, v in writes.items()}


def test_a_record_with_a_key_that_is_not_a_string_is_refused_not_hashed() -> None:
    proposal = Proposal(
        tx_id="tx",
        channel="medical",
        contract="medical",
        function="update",
        args_digest="0" * 64,
        creator=Creator(uid="dr", msp="HospitalMSP"),
        timestamp="2026-12-07T21:00:00.000001Z",
        write_set=cast(dict[str, object], {1: "one"}),
    )
    with pytest.raises(TypeError):
        proposal.canonical_text(Validation.VALID)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("0123456789abcdef" * 4, True),
        ("a" * 63 + "g", False),
        ("a" * 31 + "F" + "a" * 32, False),
        ("a" * 31 + " " + "a" * 32, False),
        ("a" * 62, False),
        ("a" * 66, False),
        (None, False),
    ],
)
def test_a_salt_is_64_lower_case_hex_digits_anywhere_in_it(text: object, ok: bool) -> None:
    assert is_salt(text) is ok
