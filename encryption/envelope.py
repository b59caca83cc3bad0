"""Sealed values: a ledger value encrypted with its child's data key, bound to where it lives,
with a commitment to it that a reader of the value can open.

A sealed value is plain JSON, stored in state, history and the transaction's
write-set like any value, so the ledger core hashes and verifies it unchanged:

    {"sealed": {"alg": "A256GCM", "child": CHILD, "tx": TX, "nonce": B64, "data": B64,
                "commitment": HEX}}

Each seal draws a fresh random 32-byte salt. The commitment, in clear, is
SHA-256(salt ‖ UTF-8(RFC 8785 text of the value)): RFC 8785 (JSON Canonicalization
Scheme) so that a browser, or any language, recomputes the text byte for byte. It
is part of the transaction the value is written by, so it is in that transaction's
leaf of the channel's Merkle tree; whoever may read the value is given its opening
(`Opening`: the text and the salt) and recomputes value → commitment → transaction
→ leaf → root (docs/transparency.md, "Verified reads"). Without the salt the
commitment tells nothing, not even to someone guessing among a few values.

The plaintext is the canonical JSON of {"salt": SALT_HEX, "value": VALUE} (UTF-8),
encrypted with AES-256-GCM under the child's data key on the channel (keyring.py)
and a fresh random 96-bit nonce (a child's key seals far fewer than the 2**32
values random nonces allow). The associated data is the canonical JSON of
["healthledger value", channel, key, child, tx, commitment]: a sealed value copied
to another key, channel, child or transaction, or given another commitment, does
not open, and the history keeps each version's writing transaction, so a version
cannot pose as another. The child, the transaction and the commitment show in
clear, and the value's length to within PAD_BYTES (the plaintext is padded with
spaces, which JSON ignores); its content does not, nor does the salt.

Envelopes sealed before commitments existed have no "commitment": their plaintext
is the value's canonical JSON and their associated data ends with the transaction.
They open as before, with no opening to give (`opening` is None).

Opening fails with BrokenSealError (an integrity failure, naming channel and
key only) when the envelope is malformed, does not authenticate, or holds a salt
and value whose commitment is not the stored one. A value whose child's key is
gone is not an integrity failure but an erasure: `Sealer.open` returns
`Erased(child)` for it; the salts went with the key, so its commitments stay closed.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from dataclasses import dataclass
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger_backends.hashing import SALT_BYTES, canonical_json, is_salt
from ledger_backends.hashing import commitment as salted_commitment
from ledger_backends.records import JSONValue

from .keyring import Keyring

ALG = "A256GCM"
NONCE_BYTES = 12
TAG_BYTES = 16
PAD_BYTES = 64
_LEGACY_FIELDS = frozenset({"alg", "child", "tx", "nonce", "data"})
_FIELDS = _LEGACY_FIELDS | {"commitment"}
_PLAINTEXT_FIELDS = frozenset({"salt", "value"})
_HEX = frozenset("0123456789abcdef")


class BrokenSealError(Exception):
    """A sealed value does not open: it was changed, moved or damaged (never erased)."""

    def __init__(self, channel: str, key: str) -> None:
        super().__init__(
            f"The sealed value of {key} on channel {channel} does not open: "
            "it was changed, moved or damaged."
        )
        self.channel = channel
        self.key = key


@dataclass(frozen=True)
class Erased:
    """A value that cannot be opened because its child's data key was destroyed (or is unknown)."""

    child: str


@dataclass(frozen=True)
class Opening:
    """A sealed value with what opens its commitment: `canonical_text`, the value's RFC 8785
    text, and `salt` (64 hex digits), where `commitment` (64 hex digits) is
    SHA-256(the salt's 32 bytes ‖ UTF-8 of the text)."""

    value: JSONValue
    canonical_text: str
    salt: str
    commitment: str


@dataclass(frozen=True)
class _Envelope:
    child: str
    tx: str
    nonce: bytes
    data: bytes
    commitment: str | None  # None: sealed before values carried commitments


def canonical_text(value: JSONValue) -> str:
    """The value's RFC 8785 (JSON Canonicalization Scheme) text, which its commitment is over.

    ValueError (rfc8785.CanonicalizationError) for what JCS cannot state: integers beyond
    ±(2**53 - 1), NaN or infinities, strings that are not Unicode text.

    A value whose JCS text is its `canonical_json` text (`_jcs_as_json`: most records) is
    written by the C encoder, several times faster; any other by `rfc8785`.
    """
    if _jcs_as_json(value):
        return canonical_json(value)
    return rfc8785.dumps(value).decode("utf-8")


_JCS_INT_MAX = 2**53 - 1
# Code points from here on sort differently by code point (Python) and by UTF-16 code unit
# (JCS), or are surrogates, which JCS refuses.
_UTF16_ORDER_ENDS = "\ud800"


def _jcs_as_json(value: object) -> bool:
    """Whether RFC 8785 writes `value` exactly as `canonical_json` does.

    Both write null, true, false, integers, strings (the same escapes: \\b \\f \\n \\r \\t,
    \\" and \\\\, other control characters as lower-case \\u00XX; everything else as it
    is), arrays, and objects without spaces in sorted key order. They differ on floats
    (JCS writes ECMAScript's shortest form: 120.0 is 120), on integers beyond ±(2**53 - 1)
    and lone surrogates (JCS refuses them), and on keys holding code points from U+D800
    (JCS sorts by UTF-16 code unit); such values go to `rfc8785`, as do any types but
    dict, list, str, int, bool and None.
    """
    if type(value) is str:
        return value.isascii() or _is_unicode(value)
    if type(value) is dict:
        return all(
            type(key) is str
            and (key.isascii() or max(key) < _UTF16_ORDER_ENDS)
            and _jcs_as_json(item)
            for key, item in value.items()
        )
    if type(value) is list:
        return all(_jcs_as_json(item) for item in value)
    if type(value) is int:
        return -_JCS_INT_MAX <= value <= _JCS_INT_MAX
    return value is None or type(value) is bool


def _is_unicode(text: str) -> bool:
    """Whether `text` holds no lone surrogates (UTF-8 refuses them)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_sealed(value: object) -> bool:
    """Whether `value` has the shape of a sealed value (it may still fail to open)."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("sealed"), dict)


def sealed_child(value: JSONValue) -> str:
    """The child a sealed value belongs to; ValueError if `value` is not one."""
    inner = value.get("sealed") if is_sealed(value) else None
    child = inner.get("child") if isinstance(inner, dict) else None
    if not isinstance(child, str):
        raise ValueError("The value is not sealed for a child.")
    return child


def seal(
    aead: AESGCM, *, channel: str, key: str, child: str, tx_id: str, value: JSONValue
) -> dict[str, Any]:
    """`value` sealed with `aead` (the child's data key) for `key` on `channel` by `tx_id`,
    committed to under a fresh salt. ValueError for a value RFC 8785 cannot state
    (`canonical_text`)."""
    salt = secrets.token_hex(SALT_BYTES)
    commitment = salted_commitment(salt, canonical_text(value))
    nonce = secrets.token_bytes(NONCE_BYTES)
    plaintext = canonical_json({"salt": salt, "value": value}).encode("utf-8")
    # Padded with spaces (which JSON ignores) to a whole number of blocks: the stored
    # length tells the size of a value only to within PAD_BYTES, not a name's length.
    plaintext += b" " * (-len(plaintext) % PAD_BYTES)
    data = aead.encrypt(nonce, plaintext, _aad(channel, key, child, tx_id, commitment))
    return {
        "sealed": {
            "alg": ALG,
            "child": child,
            "tx": tx_id,
            "nonce": _b64(nonce),
            "data": _b64(data),
            "commitment": commitment,
        }
    }


def open_value(
    aead: AESGCM, *, channel: str, key: str, sealed: JSONValue, tx_id: str | None = None
) -> JSONValue:
    """The value in `sealed` (as `seal` made it, or as it sealed before commitments), stored
    at `key` on `channel`; raises as `open_with_opening` does."""
    value, _ = open_with_opening(aead, channel=channel, key=key, sealed=sealed, tx_id=tx_id)
    return value


def open_with_opening(
    aead: AESGCM, *, channel: str, key: str, sealed: JSONValue, tx_id: str | None = None
) -> tuple[JSONValue, Opening | None]:
    """The value in `sealed` and the opening of its commitment (None for an envelope sealed
    before commitments, which has none).

    BrokenSealError if the envelope is malformed, does not authenticate under `aead`
    for this channel and key, (with `tx_id`) was written by another transaction, or
    holds a salt and value whose commitment is not the envelope's.
    """
    envelope = _parse(sealed, channel, key)
    if tx_id is not None and tx_id != envelope.tx:
        raise BrokenSealError(channel, key)
    aad = _aad(channel, key, envelope.child, envelope.tx, envelope.commitment)
    try:
        content = json.loads(aead.decrypt(envelope.nonce, envelope.data, aad).decode("utf-8"))
    except (InvalidTag, ValueError):
        raise BrokenSealError(channel, key) from None
    if envelope.commitment is None:
        return content, None
    opening = _opening(content, envelope.commitment)
    if opening is None:
        raise BrokenSealError(channel, key)
    return opening.value, opening


class Sealer:
    """One transaction's view of a channel's keyring: seals what it writes, opens what it reads."""

    def __init__(self, keyring: Keyring, tx_id: str) -> None:
        self.keyring = keyring
        self.tx_id = tx_id

    @property
    def channel(self) -> str:
        return self.keyring.channel

    def seal(self, key: str, value: JSONValue, child: str) -> dict[str, Any]:
        """`value` sealed with `child`'s key for `key`; ChildErasedError if the child was erased."""
        aead = self.keyring.sealing_key(child)
        return seal(aead, channel=self.channel, key=key, child=child, tx_id=self.tx_id, value=value)

    def open(self, key: str, stored: JSONValue, *, tx_id: str | None = None) -> JSONValue | Erased:
        """The plaintext of `stored` (the value at `key`); a value that is not sealed as it is.

        `Erased(child)` when the child's key was destroyed or never made here;
        BrokenSealError when the seal does not open (see `open_with_opening`; `tx_id` is
        the transaction that wrote this version, when known).
        """
        opened = self.open_with_opening(key, stored, tx_id=tx_id)
        return opened if isinstance(opened, Erased) else opened[0]

    def opening(self, key: str, stored: JSONValue, *, tx_id: str | None = None) -> Opening | None:
        """The opening of the commitment in `stored` (the value at `key`): None for a value
        sealed before commitments, one stored in clear, or one whose child was erased.
        BrokenSealError as `open`."""
        opened = self.open_with_opening(key, stored, tx_id=tx_id)
        return None if isinstance(opened, Erased) else opened[1]

    def open_with_opening(
        self, key: str, stored: JSONValue, *, tx_id: str | None = None
    ) -> tuple[JSONValue, Opening | None] | Erased:
        """What `open` and `opening` give, with one decryption: the value and its opening
        (None when it has none), or `Erased(child)`."""
        if not is_sealed(stored):
            return stored, None
        child = _parse(stored, self.channel, key).child
        aead = self.keyring.opening_key(child)
        if aead is None:
            return Erased(child)
        return open_with_opening(aead, channel=self.channel, key=key, sealed=stored, tx_id=tx_id)


def _aad(channel: str, key: str, child: str, tx_id: str, commitment: str | None) -> bytes:
    bound = ["healthledger value", channel, key, child, tx_id]
    if commitment is not None:  # an envelope sealed before commitments binds no commitment
        bound.append(commitment)
    return canonical_json(bound).encode("utf-8")


def _opening(content: JSONValue, commitment: str) -> Opening | None:
    """The opening a new envelope's plaintext holds, if its salt and value make `commitment`."""
    if not isinstance(content, dict) or set(content) != _PLAINTEXT_FIELDS:
        return None
    salt, value = content["salt"], content["value"]
    if not is_salt(salt):
        return None
    try:
        text = canonical_text(value)
    except ValueError:
        return None
    if salted_commitment(salt, text) != commitment:
        return None
    return Opening(value, text, salt, commitment)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _is_digest(text: object) -> bool:
    """Whether `text` is a SHA-256 digest as envelopes state it: 64 lower-case hex digits."""
    return isinstance(text, str) and len(text) == 64 and set(text) <= _HEX


def _parse(sealed: JSONValue, channel: str, key: str) -> _Envelope:
    """The envelope's parts; BrokenSealError if anything is missing, extra or malformed."""
    inner = sealed.get("sealed") if is_sealed(sealed) else None
    if not isinstance(inner, dict) or set(inner) not in (_FIELDS, _LEGACY_FIELDS):
        raise BrokenSealError(channel, key)
    if inner["alg"] != ALG:
        raise BrokenSealError(channel, key)
    child, tx, nonce, data = inner["child"], inner["tx"], inner["nonce"], inner["data"]
    if not all(isinstance(part, str) for part in (child, tx, nonce, data)):
        raise BrokenSealError(channel, key)
    commitment = inner.get("commitment")
    if "commitment" in inner and not _is_digest(commitment):
        raise BrokenSealError(channel, key)
    try:
        raw_nonce = base64.b64decode(nonce, validate=True)
        raw_data = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BrokenSealError(channel, key) from None
    if len(raw_nonce) != NONCE_BYTES or len(raw_data) < TAG_BYTES:
        raise BrokenSealError(channel, key)
    return _Envelope(child, tx, raw_nonce, raw_data, commitment)
