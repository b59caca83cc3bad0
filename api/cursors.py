"""Cursors of paged lists: a position in one list, sealed to the caller and the arguments.

A cursor is base64url (unpadded) of the position the list gave, followed by an
HMAC-SHA256 tag over the list's name, the caller as ORG/UID, the list's
arguments (its filters) and that position. The request that brings a cursor
back states the list, the caller and the arguments again, so the cursor need
not carry them: the tag is checked against what this request states, and a
cursor of another list, another caller or other arguments, or one altered in
any byte, is refused with one sentence that tells nothing of other data.

The key is derived with HKDF-SHA256 from the server's TLS private key
(`[server] key` of network.toml), which every worker and host serving the
network already holds: a cursor one of them gave is good on all of them, and
no new secret file is needed. Replacing the TLS key ends the old cursors.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from domain.errors import BadInputError

CURSOR_REFUSED = "This cursor is not valid for this list."
HKDF_INFO = b"healthledger paged-list cursors v1"
TAG_BYTES = hashlib.sha256().digest_size
# Far above any position a list gives, far below what would cost the server to check.
MAX_CURSOR_CHARS = 1024

Arguments = Mapping[str, str | int | bool | None]


class CursorKey:
    """Seals positions into cursors and opens them, for one secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def seal(self, list_name: str, person: str, arguments: Arguments, position: str) -> str:
        """The cursor of `position` in the list `list_name` as `person` asked for it."""
        raw = position.encode()
        tag = self._tag(list_name, person, arguments, raw)
        return _encoded(raw + tag)

    def open(self, cursor: str, list_name: str, person: str, arguments: Arguments) -> str:
        """The position sealed in `cursor`, if this key sealed it for exactly this list,
        person and arguments; BadInputError (CURSOR_REFUSED) otherwise."""
        if len(cursor) > MAX_CURSOR_CHARS or not cursor.isascii():
            raise BadInputError(CURSOR_REFUSED)
        try:
            sealed = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raise BadInputError(CURSOR_REFUSED) from None
        raw, tag = sealed[:-TAG_BYTES], sealed[-TAG_BYTES:]
        # Decoding skips stray characters and spare bits: only the exact text sealed opens.
        if (
            _encoded(sealed) != cursor
            or len(sealed) <= TAG_BYTES
            or not hmac.compare_digest(tag, self._tag(list_name, person, arguments, raw))
        ):
            raise BadInputError(CURSOR_REFUSED)
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise BadInputError(CURSOR_REFUSED) from None

    def _tag(self, list_name: str, person: str, arguments: Arguments, position: bytes) -> bytes:
        # One JSON array, so no choice of names or values can make two inputs read alike.
        bound = json.dumps(
            [list_name, person, dict(sorted(arguments.items())), position.hex()],
            separators=(",", ":"),
        )
        return hmac.digest(self._secret, bound.encode(), "sha256")


def _encoded(sealed: bytes) -> str:
    return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")


@functools.cache
def cursor_key(tls_key: Path) -> CursorKey:
    """The cursor key of the server whose TLS private key (PEM, unencrypted) is at `tls_key`.

    Read once per process; the key is taken in its PKCS#8 DER form, so the same key
    written as PKCS#1 or PKCS#8 PEM on different hosts gives the same cursors.
    """
    private = serialization.load_pem_private_key(tls_key.read_bytes(), password=None)
    material = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    secret = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(material)
    return CursorKey(secret)
