"""Signed checkpoints: C2SP signed-note (Ed25519) around a C2SP tlog-checkpoint body.

A checkpoint is the log's origin, its tree size and its root (base64), each on a line,
then a blank line and signature lines "— NAME BASE64(key id ‖ signature)". Only the
signature of the key given is checked; others (a witness's cosignature) are ignored, as
the signed-note spec asks. The text is read only once that signature verifies.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .proofs import ProofError

ED25519 = b"\x01"  # the signed-note signature type of Ed25519
MAX_SIGNATURES = 64
_SIZE = re.compile(r"0|[1-9][0-9]*")
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")


class NoteError(ProofError):
    """A checkpoint or key that is malformed, or whose signature does not verify."""


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """A log's public key, as the signed-note verifier key line NAME+KEYID+BASE64 gives it."""

    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    def __str__(self) -> str:
        return f"{self.name}+{self.key_id.hex()}"


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint whose signature verified: the tree of `tree_size` leaves of `origin`."""

    origin: str
    tree_size: int
    root: bytes


def parse_verifier_key(line: str | bytes) -> VerifierKey:
    """The key of `NAME+KEYID8HEX+BASE64(0x01 ‖ 32-byte Ed25519 key)` (surrounding blanks
    allowed); the key id must be SHA-256(NAME ‖ "\\n" ‖ 0x01 ‖ key)[:4]."""
    text = _text(line, "the key").strip()
    parts = text.split("+", 2)  # the name has no "+", the base64 key may
    if len(parts) != 3 or not parts[0] or any(c.isspace() for c in text):
        raise NoteError("malformed input: the key is not a verifier key NAME+KEYID+KEY")
    name, key_id, encoded = parts
    if not _HEX8.fullmatch(key_id):
        raise NoteError(f"malformed input: the key id {key_id!r} is not 8 hex digits")
    key = _base64(encoded, "the key")
    if len(key) != 33 or key[:1] != ED25519:
        raise NoteError("malformed input: the key is not an Ed25519 signed-note key")
    if hashlib.sha256(name.encode() + b"\n" + key).digest()[:4] != bytes.fromhex(key_id):
        raise NoteError(f"malformed input: the key id {key_id} does not fit its name and key")
    return VerifierKey(name, bytes.fromhex(key_id), Ed25519PublicKey.from_public_bytes(key[1:]))


def verify_checkpoint(
    note: str | bytes, key: VerifierKey, what: str = "the checkpoint"
) -> SignedCheckpoint:
    """The checkpoint in `note`, once its signature by `key` verifies and its origin is the
    key's name; raises NoteError naming `what` and saying why not."""
    # A blank line after the signatures (as `jq -r` or an editor adds) is not signed text.
    text = _text(note, what).rstrip("\n") + "\n"
    if any(c < " " and c != "\n" for c in text):
        raise NoteError(f"malformed input: {what} holds control characters")
    end = text.rfind("\n\n")
    if end < 0 or end + 2 == len(text):
        raise NoteError(f"malformed input: {what} is not a signed note (no signature lines)")
    body, lines = text[: end + 1], text[end + 2 : -1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"malformed input: {what} has more than {MAX_SIGNATURES} signatures")
    signers = [_signature(line, what) for line in lines]
    mine = [sig for name, sig in signers if name == key.name and sig[:4] == key.key_id]
    if not mine:
        found = ", ".join(f"{name}+{sig[:4].hex()}" for name, sig in signers)
        raise NoteError(f"wrong key: {what} is signed by {found}, not by {key}")
    for signature in mine:
        try:
            key.public_key.verify(signature[4:], body.encode())
        except InvalidSignature:
            raise NoteError(
                f"bad signature: the signature of {what} by {key} does not verify"
            ) from None
    return _checkpoint(body, key, what)


def _checkpoint(body: str, key: VerifierKey, what: str) -> SignedCheckpoint:
    lines = body[:-1].split("\n")
    if len(lines) < 3 or not all(lines):
        raise NoteError(f"malformed input: {what} is not an origin, a size and a root hash")
    origin, size, root = lines[:3]
    if origin != key.name:
        raise NoteError(f"wrong key: {what} is of the log {origin!r}, the key of {key.name!r}")
    if not _SIZE.fullmatch(size):
        raise NoteError(f"malformed input: the tree size {size!r} of {what} is not a number")
    digest = _base64(root, f"the root hash of {what}")
    if len(digest) != 32:
        raise NoteError(f"malformed input: the root hash of {what} is not 32 bytes")
    return SignedCheckpoint(origin, int(size), digest)


def _signature(line: str, what: str) -> tuple[str, bytes]:
    parts = line.split(" ")
    if len(parts) != 3 or parts[0] != "\u2014" or not parts[1]:
        raise NoteError(f"malformed input: {what} has a bad signature line {line[:40]!r}")
    signature = _base64(parts[2], f"a signature of {what}")
    if len(signature) < 5:
        raise NoteError(f"malformed input: a signature of {what} is too short")
    return parts[1], signature


def _text(data: str | bytes, what: str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError(f"malformed input: {what} is not UTF-8 text") from None


def _base64(encoded: str, what: str) -> bytes:
    try:
        return base64.b64decode(encoded, validate=True)
    except ValueError:  # binascii.Error, or a str that is not ASCII
        raise NoteError(f"malformed input: {what} is not base64") from None
