"""`Transaction.from_text` reads a stored text, or refuses it, as `json.loads` and the record's
fields always did: the same Transaction from every readable text, the same kind of error from
every other, whatever is malformed (the text, a field missing, a field of another type).

And what the replay checks a read transaction with: the texts of its write-set's values,
written by `hashing.parsed_canonical_json`, are the commit path's; a salt is 64 lower-case
hex digits and nothing else."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger_backends.hashing import is_salt, parsed_canonical_json
from ledger_backends.records import (
    LEGACY_SALT,
    Creator,
    Event,
    Transaction,
    Validation,
    value_texts,
)
from ledger_backends.testing import proposal


def _as_before(text: Any, block_number: int, tx_index: int) -> Transaction:
    """The parse `from_text` made before it took the scanner's shortcuts, word for word."""
    raw = json.loads(text)

    def versions(reads: Any) -> dict[str, tuple[int, int] | None]:
        return {key: None if v is None else (int(v[0]), int(v[1])) for key, v in reads.items()}

    return Transaction(
        block_number=block_number,
        tx_index=tx_index,
        tx_id=raw["tx_id"],
        channel=raw["channel"],
        contract=raw["contract"],
        function=raw["function"],
        args_digest=raw["args_digest"],
        creator=Creator(uid=raw["creator"]["uid"], msp=raw["creator"]["msp"]),
        timestamp=raw["timestamp"],
        read_set=versions(raw["read_set"]),
        write_set=raw["write_set"],
        events=tuple(Event(e["name"], e["payload"]) for e in raw["events"]),
        validation=raw["validation"],
        text=text,
        foreign_reads={
            channel: versions(reads) for channel, reads in raw.get("foreign_reads", {}).items()
        },
        salt=raw.get("salt", LEGACY_SALT),
        write_set_commitment=raw.get("write_set_commitment", ""),
    )


def _outcome(parse: Any, text: Any) -> tuple[str, Any]:
    try:
        return "read", parse(text, 7, 3)
    except Exception as exc:  # the kind of error is what is compared
        return "refused", type(exc)


def _stored_texts() -> list[str]:
    plain = proposal("plain", writes={"k": {"a": [1, 2.5, None, True]}, "gone": None})
    rich = proposal(
        "rich",
        reads={"k": (1, 0), "absent": None},
        writes={"k": "v", "é/\u2028": ["\U0001f600", "\u0000"]},
        events=(Event("made", {"n": 1}), Event("empty")),
        foreign_reads={"report": {"r/1": (2, 1), "r/2": None}},
    )
    return [p.canonical_text(v) for p in (plain, rich) for v in Validation]


ODD_VALUES: list[Any] = [None, 0, 1.5, "", "x", [], [1, 2], {}, {"uid": "u"}, {"0": 1, "1": 2}]


def _variants() -> Iterator[Any]:
    """Each stored text, and it changed in every way this can think of."""
    for text in _stored_texts():
        yield text
        yield from (f" {text}", f"{text}\n", f"\ufeff{text}", f"[{text}]", f"{text}{text}")
        yield text[:-1]
        yield text.encode()
        yield text.replace('"validation"', '"validation":"X","validation"')  # a key twice
        raw = json.loads(text)
        for key in raw:
            yield json.dumps({k: v for k, v in raw.items() if k != key})
            for value in ODD_VALUES:
                yield json.dumps(raw | {key: value})
        for value in ODD_VALUES:
            yield json.dumps(raw | {"read_set": {"k": value}})
            yield json.dumps(raw | {"foreign_reads": {"report": value}})
            yield json.dumps(raw | {"events": [value]})
            yield json.dumps(raw | {"creator": {"uid": value, "msp": "m"}})
        yield json.dumps(raw | {"read_set": {"k": ["1", "2"]}, "write_set": {"n": float("nan")}})
    yield from ('"\\ud800"', '"text"', "[]", "{}", "null", "1", "", " ", "NaN", "{", '{"a":1} x')


@pytest.mark.parametrize("text", list(_variants()))
def test_every_text_reads_or_is_refused_as_it_always_was(text: Any) -> None:
    assert _outcome(Transaction.from_text, text) == _outcome(_as_before, text)


def test_the_variants_hold_both_readable_and_refused_texts() -> None:
    outcomes = [_outcome(Transaction.from_text, text)[0] for text in _variants()]
    assert outcomes.count("read") > 50 and outcomes.count("refused") > 50


VALUES: list[Any] = [
    0,
    -1,
    2**70,
    1.5,
    -0.0,
    1e300,
    True,
    None,
    "",
    'é\u2028\U0001f600\u0000"\\/',
    [],
    [1, "a", None, [{}]],
    {},
    {"b": 1, "a": {"é": [True, False]}, "A": None, "\u00e9": 2},
]


@pytest.mark.parametrize("value", VALUES)
def test_a_read_write_sets_value_texts_are_those_of_the_commit_path(value: Any) -> None:
    write_set = json.loads(json.dumps({"k": value, "gone": None, "é": [value]}))
    assert value_texts(write_set, parsed_canonical_json) == value_texts(write_set)


def test_a_value_canonical_json_refuses_is_refused_when_read_too() -> None:
    write_set = json.loads('{"k": [1, NaN]}')
    with pytest.raises(ValueError):
        value_texts(write_set)
    with pytest.raises(ValueError):
        value_texts(write_set, parsed_canonical_json)


SALT = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    "text",
    [
        SALT,
        SALT.upper(),
        SALT[:-1],
        SALT + "0",
        SALT[:-2] + " 0",
        SALT[:-1] + "g",
        SALT[:-1] + "\u0660",  # an Arabic-Indic zero: a digit, not a hex one
        SALT[:-2] + "\uff10\uff10",  # full-width zeros
        "",
        "00" * 31 + " ",
        None,
        7,
        SALT.encode(),
    ],
)
def test_only_64_lower_case_hex_digits_are_a_salt(text: Any) -> None:
    assert is_salt(text) is (text == SALT)


@given(st.text(alphabet="0123456789abcdefABCDEF g\u0660", min_size=62, max_size=66))
def test_only_64_lower_case_hex_digits_are_a_salt_among_near_salts(text: str) -> None:
    assert is_salt(text) is (len(text) == 64 and set(text) <= set("0123456789abcdef"))
