"""What a certificate subject may say: the UID syntax and the display-name rule.

`healthledger enroll` issues only what these allow, and the server refuses at every handshake
any certificate that says something else, whoever signed it. The patterns (domain.names) are
those the contracts check their arguments with.
"""

from __future__ import annotations

from domain.names import NAME_REFUSED, UID_PATTERN

UID_RULE = "up to 64 letters, digits and . _ @ -, starting with a letter or digit"

# A display name is the certificate's common name, which X.509 bounds at 64 characters.
DISPLAY_NAME_MAX = 64


def is_uid(value: str) -> bool:
    """Whether `value` is a UID as `enroll` makes them (see UID_RULE)."""
    return UID_PATTERN.fullmatch(value) is not None


def display_name_problem(value: str) -> str | None:
    """Why `value` cannot be a display name, or None if it is one trimmed line of 1 to 64
    characters without control characters or bidirectional formatting characters."""
    if not value.strip():
        return "must not be empty"
    if value != value.strip():
        return "must not start or end with spaces"
    if len(value) > DISPLAY_NAME_MAX:
        return f"must be at most {DISPLAY_NAME_MAX} characters"
    if NAME_REFUSED.search(value):
        return (
            "must not contain control characters, line breaks or bidirectional "
            "formatting characters"
        )
    return None
