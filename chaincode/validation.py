"""Checks on arguments: each refusal is a BadInputError that names the field, never the data."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from domain.errors import BadInputError
from domain.names import BIDI_AND_SEPARATORS, NAME_REFUSED, UID_PATTERN

NAME_MAX = 200
TEXT_MAX = 2_000
NOTES_MAX = 4_000
LIST_MAX = 50
RECORDS_MAX = 200
EARLIEST_DATE = date(1900, 1, 1)

# Multi-line text keeps line feeds and tabs; every other control character is refused.
_FREE_TEXT_REFUSED = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{BIDI_AND_SEPARATORS}]")


def text(value: Any, field: str, *, max_length: int = NAME_MAX) -> str:
    """A one-line string (a name, an entry of a list), trimmed, of 1 to `max_length` characters.

    Refuses control characters (line breaks and tabs included), U+2028/U+2029 and the
    bidirectional overrides, embeddings and isolates.
    """
    name = _trimmed(value, field, max_length)
    if NAME_REFUSED.search(name):
        raise BadInputError(
            f"{field} must not contain control characters, line breaks or bidirectional "
            "formatting characters."
        )
    return name


def uid_list(values: Any, field: str, *, max_items: int) -> list[str]:
    """Distinct UIDs as `enroll` makes them (up to 64 letters, digits and . _ @ -)."""
    uids = text_list(values, field, max_items=max_items)
    if not all(UID_PATTERN.fullmatch(uid) for uid in uids):
        raise BadInputError(f"Each entry of {field} must be a UID: letters, digits and . _ @ -.")
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
        raise BadInputError(
            f"{field} must not contain control characters other than line breaks and tabs, "
            "or bidirectional formatting characters."
        )
    return lines


def optional_free_text(value: Any, field: str, *, max_length: int = TEXT_MAX) -> str | None:
    return None if value is None else free_text(value, field, max_length=max_length)


def _trimmed(value: Any, field: str, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadInputError(f"{field} must not be empty.")
    trimmed = value.strip()
    if len(trimmed) > max_length:
        raise BadInputError(f"{field} must be at most {max_length} characters.")
    return trimmed


def past_date(value: Any, field: str, *, today: date) -> str:
    """An ISO date (YYYY-MM-DD) that exists, is not before 1900 and not after `today`."""
    if not isinstance(value, str):
        raise BadInputError(f"{field} must be a date (YYYY-MM-DD).")
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise BadInputError(f"{field} must be a real date (YYYY-MM-DD).") from None
    if parsed > today:
        raise BadInputError(f"{field} cannot be in the future.")
    if parsed < EARLIEST_DATE:
        raise BadInputError(f"{field} cannot be before 1900.")
    return parsed.isoformat()


def integer(value: Any, field: str, *, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise BadInputError(f"{field} must be a whole number from {low} to {high}.")
    return value


def number(value: Any, field: str, *, low: float, high: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise BadInputError(f"{field} must be a number from {low:g} to {high:g}.")
    return float(value)


def choice(value: Any, field: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise BadInputError(f"{field} must be one of {', '.join(options)}.")
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
        raise BadInputError(f"{field} must be a list.")
    if len(values) > max_items:
        raise BadInputError(f"{field} can hold at most {max_items} entries.")
    return values


def mapping(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadInputError(f"{field} must be an object.")
    return value
