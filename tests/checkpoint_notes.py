"""Signed checkpoints made by the tests themselves, to the letter of C2SP signed-note and
tlog-checkpoint (docs/transparency.md), with no code of the server's signer: a checkpoint the
verifier accepts here is one any correct signer could have made."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ORIGIN = "healthledger/hl-0123456789ab/medical"


@dataclass
class NoteSigner:
    """A log's Ed25519 key under the name `origin`, signing checkpoints of its tree."""

    origin: str = ORIGIN
    private_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def public_key(self) -> bytes:
        return self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def key_id(self) -> bytes:
        return hashlib.sha256(self.origin.encode() + b"\n\x01" + self.public_key).digest()[:4]

    def verifier_key(self) -> str:
        """The line of log/CHANNEL.pub: NAME+KEYID8HEX+BASE64(0x01 ‖ public key)."""
        encoded = base64.b64encode(b"\x01" + self.public_key).decode()
        return f"{self.origin}+{self.key_id.hex()}+{encoded}"

    def checkpoint(self, size: int, root: bytes, *, origin: str | None = None) -> str:
        """The signed note of the tree of `size` leaves with that root (`origin` in its body
        instead of the key's name, to forge one)."""
        body = f"{origin or self.origin}\n{size}\n{base64.b64encode(root).decode()}\n"
        return self.sign(body)

    def sign(self, body: str) -> str:
        """`body` (its lines, each ending in a newline) with this key's signature line."""
        signature = self.private_key.sign(body.encode())
        stamp = base64.b64encode(self.key_id + signature).decode()
        return f"{body}\n\u2014 {self.origin} {stamp}\n"

    def cosign(self, note: str) -> str:
        """`note` with this key's signature line added, as a witness cosigns a checkpoint."""
        body = note[: note.rindex("\n\n") + 1]
        return note + self.sign(body).rsplit("\n", 2)[-2] + "\n"
