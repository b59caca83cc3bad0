"""Checks on arguments: each refusal is a BadInput naming the field, never echoing data back."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from .errors import BadInput

NAME_MAX = 200
TEXT_MAX = 2_000
NOTES_MAX = 4_000
LIST_MAX = 50
RECORDS_MAX = 200
EARLIEST_DATE = date(1900, 1, 1)

# The bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069) make a
# reader see text in another order than it is stored; U+2028 and U+2029 break lines.
_BIDI_AND_SEPARATORS = "\u202a-\u202e\u2066-\u2069\u2028\u2029"
# What `healthledger enroll` accepts as a UID (authz.uids checks it at every handshake too):
# letters, digits and . _ @ - only, so a UID never holds the "/" of ORG/UID keys.
UID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
# C0, DEL and C1 controls (line breaks included): they forge lines in logs and terminals.
NAME_REFUSED = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI_AND_SEPARATORS}]")
# Multi-line text keeps line feeds and tabs; every other control character is refused.
_FREE_TEXT_REFUSED = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI_AND_SEPARATORS}]")


def text(value: Any, field: str, *, max_length: int = NAME_MAX) -> str:
    """A one-line string (a name, an entry of a list), trimmed, of 1 to `max_length` characters.

    Refuses control characters (line breaks and tabs included), U+2028/U+2029 and the
    bidirectional overrides, embeddings and isolates.
    """
    name = _trimmed(value, field, max_length)
    if NAME_REFUSED.search(name):
        raise BadInput(
            f"{field} must not contain control characters, line breaks or bidirectional "
            "formatting characters."
        )
    return name


def uid_list(values: Any, field: str, *, max_items: int) -> list[str]:
    """Distinct UIDs as `enroll` makes them (up to 64 letters, digits and . _ @ -)."""
    uids = text_list(values, field, max_items=max_items)
    if not all(UID_PATTERN.fullmatch(uid) for uid in uids):
        raise BadInput(f"Each entry of {field} must be a UID: letters, digits and . _ @ -.")
    return uids


def optional_text(value: Any, field: str, *, max_length: int = NAME_MAX) -> str | None:
    return None if value is None else text(value, field, max_length=max_length)


def free_text(value: Any, field: str, *, max_length: int = TEXT_MAX) -> str:
    """A multi-line string (notes, findings, a conclusion, a reason), trimmed, 1 to `max_length`.

    Keeps line feeds and tabs (CR LF becomes LF); refuses every other control character,
    U+2028/U+2029 and the bidirectional overrides, embeddings and isolates.
    """
    lines = _trimmed(value, field, max_length).replace("\r\n", "\n")
    if _FREE_TEXT_REFUSED.search(lines):
        raise BadInput(
            f"{field} must not contain control characters other than line breaks and tabs, "
            "or bidirectional formatting characters."
        )
    return lines


def optional_free_text(value: Any, field: str, *, max_length: int = TEXT_MAX) -> str | None:
    return None if value is None else free_text(value, field, max_length=max_length)


def _trimmed(value: Any, field: str, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadInput(f"{field} must not be empty.")
    trimmed = value.strip()
    if len(trimmed) > max_length:
        raise BadInput(f"{field} must be at most {max_length} characters.")
    return trimmed


def past_date(value: Any, field: str, *, today: date) -> str:
    """An ISO date (YYYY-MM-DD) that exists, is not before 1900 and not after `today`."""
    if not isinstance(value, str):
        raise BadInput(f"{field} must be a date (YYYY-MM-DD).")
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise BadInput(f"{field} must be a real date (YYYY-MM-DD).") from None
    if parsed > today:
        raise BadInput(f"{field} cannot be in the future.")
    if parsed < EARLIEST_DATE:
        raise BadInput(f"{field} cannot be before 1900.")
    return parsed.isoformat()


def integer(value: Any, field: str, *, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise BadInput(f"{field} must be a whole number from {low} to {high}.")
    return value


def number(value: Any, field: str, *, low: float, high: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise BadInput(f"{field} must be a number from {low:g} to {high:g}.")
    return float(value)


def choice(value: Any, field: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise BadInput(f"{field} must be one of {', '.join(options)}.")
    return str(value)


def text_list(
    values: Any, field: str, *, max_items: int = LIST_MAX, max_length: int = NAME_MAX
) -> list[str]:
    """A list of distinct non-empty strings, in the order given."""
    items = records(values, field, max_items=max_items)
    cleaned: list[str] = []
    for item in items:
        entry = text(item, f"Each entry of {field}", max_length=max_length)
        if entry not in cleaned:
            cleaned.append(entry)
    return cleaned


def records(values: Any, field: str, *, max_items: int = RECORDS_MAX) -> list[Any]:
    if not isinstance(values, list):
        raise BadInput(f"{field} must be a list.")
    if len(values) > max_items:
        raise BadInput(f"{field} can hold at most {max_items} entries.")
    return values


def mapping(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadInput(f"{field} must be an object.")
    return value
