"""What a certificate subject may say: the UID syntax and the display-name rule.

`healthledger enroll` issues only what these allow, and the server refuses at every handshake
any certificate that says something else, whoever signed it.
"""

from __future__ import annotations

import re

# Letters, digits and . _ @ - only: no "/" that could reach into ORG/UID keys, no spaces,
# homoglyphs, zero-width or line-breaking characters that make two UIDs look alike.
_UID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
UID_RULE = "up to 64 letters, digits and . _ @ -, starting with a letter or digit"

# A display name is the certificate's common name, which X.509 bounds at 64 characters.
DISPLAY_NAME_MAX = 64
# C0, DEL and C1 controls forge lines in logs and terminals; the bidirectional embeddings,
# overrides and isolates make a reader see another order than is stored; U+2028/U+2029 break
# lines. The same class as the contracts' rule for names, kept here so authz stands alone.
_NAME_REFUSED = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def is_uid(value: str) -> bool:
    """Whether `value` is a UID as `enroll` makes them (see UID_RULE)."""
    return _UID.fullmatch(value) is not None


def display_name_problem(value: str) -> str | None:
    """Why `value` cannot be a display name, or None if it is one trimmed line of 1 to 64
    characters without control characters or bidirectional formatting characters."""
    if not value.strip():
        return "must not be empty"
    if value != value.strip():
        return "must not start or end with spaces"
    if len(value) > DISPLAY_NAME_MAX:
        return f"must be at most {DISPLAY_NAME_MAX} characters"
    if _NAME_REFUSED.search(value):
        return (
            "must not contain control characters, line breaks or bidirectional "
            "formatting characters"
        )
    return None
