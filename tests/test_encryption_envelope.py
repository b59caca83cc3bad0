"""Sealed values: what they show, what they bind and commit to, how their commitments open,
and how opening fails or finds an erasure."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import secrets
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import example, given, settings
from hypothesis import strategies as st

from encryption import (
    BrokenSealError,
    ChildErasedError,
    Erased,
    Kek,
    Keyring,
    Opening,
    Sealer,
    canonical_text,
    is_sealed,
    open_value,
    open_with_opening,
    seal,
    sealed_child,
)
from encryption.envelope import PAD_BYTES
from ledger_backends.hashing import canonical_json
from ledger_backends.keystores.memory import MemoryKeyStore

ERASED_AT = "2025-03-04T05:06:07.000000Z"
SECRET = {"bloodType": "AB-", "notes": "Allergie aux arachides — sévère", "visits": [1, 2.5]}


@pytest.fixture
def keyrings() -> dict[str, Keyring]:
    """A keyring per channel, one store and one KEK for both."""
    kek = Kek.generate()
    store = MemoryKeyStore()
    return {channel: Keyring(channel, [kek], store) for channel in ("medical", "report")}


def _flip(text: str, index: int) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _with(sealed: dict[str, Any], **changes: object) -> dict[str, Any]:
    changed = copy.deepcopy(sealed)
    changed["sealed"].update(changes)
    return changed


def _crafted(
    aead: AESGCM, plaintext: str, bound: list[str], *, tx: str = "tx-1", commitment: str | None
) -> dict[str, Any]:
    """An envelope made here, not by `seal`: `plaintext` encrypted with `aead`, bound to
    ["healthledger value", *bound], with a commitment field when one is given."""
    nonce = secrets.token_bytes(12)
    aad = canonical_json(["healthledger value", *bound]).encode()
    inner = {
        "alg": "A256GCM",
        "child": "c1",
        "tx": tx,
        "nonce": base64.b64encode(nonce).decode(),
        "data": base64.b64encode(aead.encrypt(nonce, plaintext.encode(), aad)).decode(),
    }
    if commitment is not None:
        inner["commitment"] = commitment
    return {"sealed": inner}


def _sealed_before_commitments(aead: AESGCM, value: object) -> dict[str, Any]:
    """`cards/c1` on medical as envelopes were sealed before commitments existed."""
    bound = ["medical", "cards/c1", "c1", "tx-1"]
    return _crafted(aead, canonical_json(value), bound, commitment=None)


def _jcs_commitment(salt: str, value: object) -> str:
    """SHA-256(salt bytes ‖ RFC 8785 text), computed with rfc8785 and hashlib directly."""
    return hashlib.sha256(bytes.fromhex(salt) + rfc8785.dumps(value)).hexdigest()


# --- round trip and what shows ------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [SECRET, "a string", 42, 3.25, True, None, [], {}, ["x", {"y": [None]}]]
)
def test_seal_then_open_gives_the_value_back(keyrings: dict[str, Keyring], value: object) -> None:
    sealer = Sealer(keyrings["medical"], "tx-1")
    sealed = sealer.seal("cards/c1", value, "c1")
    assert is_sealed(sealed)
    assert sealer.open("cards/c1", sealed) == value
    # As stored: plain JSON, through a text round trip.
    stored = json.loads(canonical_json(sealed))
    assert Sealer(keyrings["medical"], "tx-2").open("cards/c1", stored, tx_id="tx-1") == value


def test_the_envelope_shows_child_transaction_and_commitment_but_not_value_or_salt(
    keyrings: dict[str, Keyring],
) -> None:
    sealer = Sealer(keyrings["medical"], "tx-7")
    sealed = sealer.seal("cards/c1", SECRET, "c1")
    assert set(sealed) == {"sealed"}
    inner = sealed["sealed"]
    assert set(inner) == {"alg", "child", "tx", "nonce", "data", "commitment"}
    assert (inner["alg"], inner["child"], inner["tx"]) == ("A256GCM", "c1", "tx-7")
    assert len(base64.b64decode(inner["nonce"])) == 12
    # The plaintext is {"salt": 64 hex digits, "value": ...}, padded.
    salted = canonical_json({"salt": "0" * 64, "value": SECRET}).encode()
    padded = -(-len(salted) // PAD_BYTES) * PAD_BYTES
    assert len(base64.b64decode(inner["data"])) == padded + 16
    opening = sealer.opening("cards/c1", sealed)
    assert opening is not None
    text = canonical_json(sealed)
    for word in ("AB-", "arachides", "bloodType", "visits", opening.salt):
        assert word not in text
    assert inner["commitment"] == opening.commitment
    assert sealed_child(sealed) == "c1"


# --- the commitment and its opening -------------------------------------------------------


def test_the_opening_recomputes_to_the_stored_commitment(keyrings: dict[str, Keyring]) -> None:
    sealer = Sealer(keyrings["medical"], "tx-1")
    sealed = sealer.seal("cards/c1", SECRET, "c1")
    opening = sealer.opening("cards/c1", sealed, tx_id="tx-1")
    assert isinstance(opening, Opening)
    assert opening.value == SECRET
    assert opening.canonical_text == rfc8785.dumps(SECRET).decode()
    assert opening.canonical_text == (
        '{"bloodType":"AB-","notes":"Allergie aux arachides — sévère","visits":[1,2.5]}'
    )
    assert len(opening.salt) == 64 and bytes.fromhex(opening.salt)
    assert opening.commitment == _jcs_commitment(opening.salt, SECRET)
    assert opening.commitment == sealed["sealed"]["commitment"]
    assert sealer.open_with_opening("cards/c1", sealed) == (SECRET, opening)
    aead = keyrings["medical"].sealing_key("c1")
    assert open_with_opening(aead, channel="medical", key="cards/c1", sealed=sealed) == (
        SECRET,
        opening,
    )


def test_the_committed_text_is_rfc_8785_not_python_json() -> None:
    # Where the two differ: a float with nothing after the point, and exponents.
    value = {"heightCm": 120.0, "big": 1e21, "small": 1e-7, "b": [True, None]}
    assert canonical_json(value) != canonical_text(value)
    assert canonical_text(value) == '{"b":[true,null],"big":1e+21,"heightCm":120,"small":1e-7}'
    with pytest.raises(ValueError):
        canonical_text(2**60)  # beyond what a JSON number holds exactly


# Text from every plane, with what JCS and Python JSON might write differently: control
# characters, quotes and backslashes, U+007F, U+2028, the private use area above U+E000,
# characters beyond U+FFFF (two UTF-16 code units) and lone surrogates.
_TEXT = st.text(
    st.one_of(
        st.characters(codec=None, exclude_categories=()),
        st.sampled_from(
            ["\x00", "\x1f", '"', "\\", "\x7f", "\u2028", "\ue000", "\U0001f600", "\ud83d"]
        ),
    ),
    max_size=6,
)
_NUMBERS = st.one_of(
    st.integers(min_value=-(2**53) - 2, max_value=2**53 + 2),
    st.sampled_from([2**53 - 1, -(2**53 - 1), 2**53, 0]),
    st.floats(allow_nan=False, allow_infinity=False),
)
_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), _NUMBERS, _TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_TEXT, inner, max_size=4)),
    max_leaves=12,
)


@settings(max_examples=1000, deadline=None)
@given(_JSON)
@example({"note": "a\ud83d"})
@example({"\ud83d": 1})
@example([2**53, 1.0])
def test_the_committed_text_is_rfc8785_s_for_every_value(value: Any) -> None:
    """canonical_text writes most values with the C encoder: always what rfc8785 writes,
    and a refusal (ValueError) exactly where rfc8785 refuses."""
    try:
        expected = rfc8785.dumps(value).decode("utf-8")
    except ValueError:
        with pytest.raises(ValueError):
            canonical_text(value)
    else:
        assert canonical_text(value) == expected


def test_keys_sort_by_utf16_code_unit_not_by_code_point() -> None:
    # U+E000 is one code unit (0xE000); U+1F600 is two (0xD83D 0xDE00), so it sorts first.
    value = {"\ue000": 1, "\U0001f600": 2, "a": 3}
    assert canonical_text(value) == '{"a":3,"\U0001f600":2,"\ue000":1}'
    assert canonical_text(value) == rfc8785.dumps(value).decode()


def test_every_seal_draws_a_new_salt(keyrings: dict[str, Keyring]) -> None:
    sealer = Sealer(keyrings["medical"], "tx-1")
    openings = [sealer.opening("cards/c1", sealer.seal("cards/c1", "O+", "c1")) for _ in range(20)]
    assert all(o is not None for o in openings)
    assert len({o.salt for o in openings if o is not None}) == 20
    # So the same small value commits differently each time: no guess can be checked.
    assert len({o.commitment for o in openings if o is not None}) == 20


def test_a_changed_commitment_does_not_open(keyrings: dict[str, Keyring]) -> None:
    sealer = Sealer(keyrings["medical"], "tx-1")
    sealed = sealer.seal("cards/c1", SECRET, "c1")
    other = sealer.seal("cards/c1", {"bloodType": "O+"}, "c1")["sealed"]["commitment"]
    commitment = sealed["sealed"]["commitment"]
    flipped = ("1" if commitment[0] == "0" else "0") + commitment[1:]
    for changed in (flipped, other, _jcs_commitment("00" * 32, SECRET)):
        with pytest.raises(BrokenSealError):
            sealer.open("cards/c1", _with(sealed, commitment=changed))
        with pytest.raises(BrokenSealError):
            sealer.opening("cards/c1", _with(sealed, commitment=changed))
    # Nor does a new envelope with its commitment taken away, posing as an old one.
    stripped = copy.deepcopy(sealed)
    del stripped["sealed"]["commitment"]
    with pytest.raises(BrokenSealError):
        sealer.open("cards/c1", stripped)


def test_a_salt_and_value_that_do_not_make_the_commitment_do_not_open() -> None:
    # Whoever holds the data key could seal a plaintext whose salt and value do not fit
    # the commitment it binds: opening recomputes the commitment, and refuses.
    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    salt = secrets.token_hex(32)
    right = _jcs_commitment(salt, SECRET)
    bound = ["medical", "cards/c1", "c1", "tx-1"]

    def sealed_with(content: object, commitment: str) -> dict[str, Any]:
        return _crafted(aead, canonical_json(content), [*bound, commitment], commitment=commitment)

    fitting = sealed_with({"salt": salt, "value": SECRET}, right)
    assert open_value(aead, channel="medical", key="cards/c1", sealed=fitting) == SECRET
    for content in (
        {"salt": salt, "value": {**SECRET, "bloodType": "O+"}},
        {"salt": secrets.token_hex(32), "value": SECRET},
        {"salt": salt.upper(), "value": SECRET},
        {"salt": salt, "value": SECRET, "more": 1},
        SECRET,
    ):
        with pytest.raises(BrokenSealError):
            open_value(aead, channel="medical", key="cards/c1", sealed=sealed_with(content, right))


@pytest.mark.parametrize("commitment", ["ab" * 31, "AB" * 32, "g" * 64, None, 7])
def test_a_malformed_commitment_is_a_broken_seal(
    keyrings: dict[str, Keyring], commitment: object
) -> None:
    sealer = Sealer(keyrings["medical"], "tx-1")
    sealed = sealer.seal("cards/c1", SECRET, "c1")
    with pytest.raises(BrokenSealError):
        sealer.open("cards/c1", _with(sealed, commitment=commitment))


def test_a_value_sealed_before_commitments_opens_without_an_opening(
    keyrings: dict[str, Keyring],
) -> None:
    medical = keyrings["medical"]
    sealer = Sealer(medical, "tx-2")
    old = _sealed_before_commitments(medical.sealing_key("c1"), SECRET)
    assert sealer.open("cards/c1", old, tx_id="tx-1") == SECRET
    assert sealer.opening("cards/c1", old, tx_id="tx-1") is None
    assert sealer.open_with_opening("cards/c1", old) == (SECRET, None)
    # A commitment added to it does not make it a new one: the seal bound none.
    forged = _with(old, commitment=_jcs_commitment("00" * 32, SECRET))
    with pytest.raises(BrokenSealError):
        sealer.open("cards/c1", forged)


def test_values_in_clear_and_erased_values_have_no_opening(keyrings: dict[str, Keyring]) -> None:
    medical = keyrings["medical"]
    sealer = Sealer(medical, "tx-1")
    assert sealer.opening("erased/c1", {"childId": "c1"}) is None
    assert sealer.open_with_opening("erased/c1", "text") == ("text", None)
    sealed = sealer.seal("cards/c1", SECRET, "c1")
    medical.destroy("c1", ERASED_AT)
    assert sealer.opening("cards/c1", sealed) is None
    assert sealer.open_with_opening("cards/c1", sealed) == Erased("c1")


def test_every_seal_has_a_new_nonce(keyrings: dict[str, Keyring]) -> None:
    sealer = Sealer(keyrings["medical"], "tx-1")
    seals = [sealer.seal("cards/c1", SECRET, "c1")["sealed"] for _ in range(50)]
    assert len({s["nonce"] for s in seals}) == 50
    assert len({s["data"] for s in seals}) == 50


def test_values_that_are_not_sealed_come_back_unchanged(keyrings: dict[str, Keyring]) -> None:
    sealer = Sealer(keyrings["medical"], "tx-1")
    for plain in (
        None,
        "text",
        7,
        [1, 2],
        {"childId": "c1", "erasedAt": ERASED_AT},
        {"sealed": "a plain field called sealed"},
        {"sealed": {"alg": "A256GCM"}, "other": 1},
    ):
        assert not is_sealed(plain)
        assert sealer.open("erased/c1", plain) is plain
    with pytest.raises(ValueError):
        sealed_child({"childId": "c1"})


# --- what a seal binds --------------------------------------------------------------------


def test_a_value_moved_to_another_key_does_not_open(keyrings: dict[str, Keyring]) -> None:
    sealer = Sealer(keyrings["medical"], "tx-1")
    sealed = sealer.seal("cards/c1/a", SECRET, "c1")
    with pytest.raises(BrokenSealError) as broken:
        sealer.open("cards/c1/b", sealed)
    assert str(broken.value) == (
        "The sealed value of cards/c1/b on channel medical does not open: "
        "it was changed, moved or damaged."
    )
    assert (broken.value.channel, broken.value.key) == ("medical", "cards/c1/b")


def test_a_value_moved_to_another_channel_does_not_open(keyrings: dict[str, Keyring]) -> None:
    sealed = Sealer(keyrings["medical"], "tx-1").seal("cards/c1", SECRET, "c1")
    report = Sealer(keyrings["report"], "tx-2")
    report.seal("admissions/c1", "c1 has a key on report too", "c1")
    with pytest.raises(BrokenSealError, match="on channel report"):
        report.open("cards/c1", sealed)


def test_a_value_moved_to_a_channel_where_the_child_has_no_key_is_erased(
    keyrings: dict[str, Keyring],
) -> None:
    sealed = Sealer(keyrings["medical"], "tx-1").seal("cards/c1", SECRET, "c1")
    assert Sealer(keyrings["report"], "tx-2").open("cards/c1", sealed) == Erased("c1")


def test_a_value_paired_with_another_transaction_does_not_open(
    keyrings: dict[str, Keyring],
) -> None:
    sealer = Sealer(keyrings["medical"], "tx-1")
    sealed = sealer.seal("cards/c1", SECRET, "c1")
    assert sealer.open("cards/c1", sealed, tx_id="tx-1") == SECRET
    with pytest.raises(BrokenSealError):
        sealer.open("cards/c1", sealed, tx_id="tx-2")  # a version posing as another
    with pytest.raises(BrokenSealError):
        sealer.open("cards/c1", _with(sealed, tx="tx-2"))  # the envelope's tx rewritten
    with pytest.raises(BrokenSealError):
        sealer.open("cards/c1", _with(sealed, tx="tx-2"), tx_id="tx-2")


def test_a_value_relabelled_for_another_child_does_not_open(keyrings: dict[str, Keyring]) -> None:
    sealer = Sealer(keyrings["medical"], "tx-1")
    sealed = sealer.seal("cards/c1", SECRET, "c1")
    sealer.seal("cards/c2", "c2 has a key", "c2")
    with pytest.raises(BrokenSealError):
        sealer.open("cards/c1", _with(sealed, child="c2"))


@pytest.mark.parametrize("index", [0, 5, -17, -1])
def test_one_flipped_ciphertext_byte_does_not_open(
    keyrings: dict[str, Keyring], index: int
) -> None:
    sealer = Sealer(keyrings["medical"], "tx-1")
    sealed = sealer.seal("cards/c1", SECRET, "c1")
    changed = _with(sealed, data=_flip(sealed["sealed"]["data"], index))
    with pytest.raises(BrokenSealError) as broken:
        sealer.open("cards/c1", changed)
    assert "AB-" not in str(broken.value)


def test_a_flipped_nonce_byte_does_not_open(keyrings: dict[str, Keyring]) -> None:
    sealer = Sealer(keyrings["medical"], "tx-1")
    sealed = sealer.seal("cards/c1", SECRET, "c1")
    with pytest.raises(BrokenSealError):
        sealer.open("cards/c1", _with(sealed, nonce=_flip(sealed["sealed"]["nonce"], 3)))


@pytest.mark.parametrize(
    "change",
    [
        {"alg": "A128GCM"},
        {"nonce": "not base64!"},
        {"nonce": base64.b64encode(b"short").decode()},
        {"data": base64.b64encode(b"tiny").decode()},
        {"data": 12},
        {"child": None},
        {"extra": "field"},
    ],
)
def test_a_malformed_envelope_is_a_broken_seal(
    keyrings: dict[str, Keyring], change: dict[str, object]
) -> None:
    sealer = Sealer(keyrings["medical"], "tx-1")
    sealed = sealer.seal("cards/c1", SECRET, "c1")
    with pytest.raises(BrokenSealError):
        sealer.open("cards/c1", _with(sealed, **change))
    missing = copy.deepcopy(sealed)
    del missing["sealed"]["nonce"]
    with pytest.raises(BrokenSealError):
        sealer.open("cards/c1", missing)


def test_open_value_with_another_childs_key_does_not_open(keyrings: dict[str, Keyring]) -> None:
    medical = keyrings["medical"]
    sealed = seal(
        medical.sealing_key("c1"), channel="medical", key="k", child="c1", tx_id="t", value=SECRET
    )
    assert open_value(medical.sealing_key("c1"), channel="medical", key="k", sealed=sealed) == (
        SECRET
    )
    with pytest.raises(BrokenSealError):
        open_value(medical.sealing_key("c2"), channel="medical", key="k", sealed=sealed)


# --- erasure ------------------------------------------------------------------------------


def test_a_value_of_a_destroyed_key_is_erased(keyrings: dict[str, Keyring]) -> None:
    medical = keyrings["medical"]
    sealer = Sealer(medical, "tx-1")
    sealed = sealer.seal("cards/c1", SECRET, "c1")
    other = sealer.seal("cards/c2", SECRET, "c2")
    medical.destroy("c1", ERASED_AT)
    assert sealer.open("cards/c1", sealed) == Erased("c1")
    assert sealer.open("cards/c1", sealed, tx_id="tx-1") == Erased("c1")
    assert sealer.open("cards/c2", other) == SECRET
    with pytest.raises(ChildErasedError) as refused:
        sealer.seal("cards/c1", SECRET, "c1")
    assert refused.value.erased_at == ERASED_AT


def test_a_value_whose_child_key_is_unknown_is_erased() -> None:
    kek = Kek.generate()
    sealed = Sealer(Keyring("medical", [kek], MemoryKeyStore()), "tx-1").seal("k", 1, "c1")
    elsewhere = Sealer(Keyring("medical", [kek], MemoryKeyStore()), "tx-2")
    assert elsewhere.open("k", sealed) == Erased("c1")
    assert elsewhere.channel == "medical"


def test_the_stored_length_hides_a_value_s_exact_size() -> None:
    # Names of 3 and 40 letters seal to ciphertexts of one length: padded to PAD_BYTES.
    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    lengths = {
        len(
            seal(aead, channel="medical", key="child/c1", child="c1", tx_id="t", value=name)[
                "sealed"
            ]["data"]
        )
        for name in ("Ann", "A" * 40)
    }
    assert len(lengths) == 1
    sealed = seal(aead, channel="medical", key="child/c1", child="c1", tx_id="t", value="Ann")
    assert open_value(aead, channel="medical", key="child/c1", sealed=sealed) == "Ann"
