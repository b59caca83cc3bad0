"""Sealed values: a ledger value encrypted with its child's data key, bound to where it lives.

A sealed value is plain JSON, stored in state, history and the transaction's
write-set like any value, so the ledger core hashes and verifies it unchanged:

    {"sealed": {"alg": "A256GCM", "child": CHILD, "tx": TX, "nonce": B64, "data": B64}}

The plaintext is the value's canonical JSON (UTF-8), encrypted with AES-256-GCM
under the child's data key on the channel (keyring.py) and a fresh random 96-bit
nonce (a child's key seals far fewer than the 2**32 values random nonces allow).
The associated data is the canonical JSON of ["healthledger value", channel,
key, child, tx]: a sealed value copied to another key, channel, child or
transaction does not open, and the history keeps each version's writing
transaction, so a version cannot pose as another. The child and the transaction
show in clear, and the value's length to within PAD_BYTES (the plaintext is
padded with spaces, which JSON ignores); its content does not.

Opening fails with BrokenSealError (an integrity failure, naming channel and
key only) when the envelope is malformed or does not authenticate. A value whose
child's key is gone is not an integrity failure but an erasure: `Sealer.open`
returns `Erased(child)` for it.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger_backends.hashing import canonical_json
from ledger_backends.records import JSONValue

from .keyring import Keyring

ALG = "A256GCM"
NONCE_BYTES = 12
TAG_BYTES = 16
PAD_BYTES = 64
_FIELDS = frozenset({"alg", "child", "tx", "nonce", "data"})


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
class _Envelope:
    child: str
    tx: str
    nonce: bytes
    data: bytes


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
    """`value` sealed with `aead` (the child's data key) for `key` on `channel` by `tx_id`."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    plaintext = canonical_json(value).encode("utf-8")
    # Padded with spaces (which JSON ignores) to a whole number of blocks: the stored
    # length tells the size of a value only to within PAD_BYTES, not a name's length.
    plaintext += b" " * (-len(plaintext) % PAD_BYTES)
    data = aead.encrypt(nonce, plaintext, _aad(channel, key, child, tx_id))
    return {
        "sealed": {
            "alg": ALG,
            "child": child,
            "tx": tx_id,
            "nonce": _b64(nonce),
            "data": _b64(data),
        }
    }


def open_value(
    aead: AESGCM, *, channel: str, key: str, sealed: JSONValue, tx_id: str | None = None
) -> JSONValue:
    """The value in `sealed` (as `seal` made it), stored at `key` on `channel`.

    BrokenSealError if the envelope is malformed, does not authenticate under `aead`
    for this channel and key, or (with `tx_id`) was written by another transaction.
    """
    envelope = _parse(sealed, channel, key)
    if tx_id is not None and tx_id != envelope.tx:
        raise BrokenSealError(channel, key)
    try:
        plaintext = aead.decrypt(
            envelope.nonce, envelope.data, _aad(channel, key, envelope.child, envelope.tx)
        )
        return json.loads(plaintext.decode("utf-8"))
    except (InvalidTag, ValueError):
        raise BrokenSealError(channel, key) from None


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
        BrokenSealError when the seal does not open (see `open_value`; `tx_id` is the
        transaction that wrote this version, when known).
        """
        if not is_sealed(stored):
            return stored
        child = _parse(stored, self.channel, key).child
        aead = self.keyring.opening_key(child)
        if aead is None:
            return Erased(child)
        return open_value(aead, channel=self.channel, key=key, sealed=stored, tx_id=tx_id)


def _aad(channel: str, key: str, child: str, tx_id: str) -> bytes:
    return canonical_json(["healthledger value", channel, key, child, tx_id]).encode("utf-8")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _parse(sealed: JSONValue, channel: str, key: str) -> _Envelope:
    """The envelope's parts; BrokenSealError if anything is missing, extra or malformed."""
    inner = sealed.get("sealed") if is_sealed(sealed) else None
    if not isinstance(inner, dict) or set(inner) != _FIELDS or inner["alg"] != ALG:
        raise BrokenSealError(channel, key)
    child, tx, nonce, data = inner["child"], inner["tx"], inner["nonce"], inner["data"]
    if not all(isinstance(part, str) for part in (child, tx, nonce, data)):
        raise BrokenSealError(channel, key)
    try:
        raw_nonce = base64.b64decode(nonce, validate=True)
        raw_data = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BrokenSealError(channel, key) from None
    if len(raw_nonce) != NONCE_BYTES or len(raw_data) < TAG_BYTES:
        raise BrokenSealError(channel, key)
    return _Envelope(child, tx, raw_nonce, raw_data)
