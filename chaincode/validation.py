"""Checks on arguments: each refusal is a BadInput naming the field, never echoing data back."""

from __future__ import annotations

from datetime import date
from typing import Any

from .errors import BadInput

NAME_MAX = 200
TEXT_MAX = 2_000
NOTES_MAX = 4_000
LIST_MAX = 50
RECORDS_MAX = 200
EARLIEST_DATE = date(1900, 1, 1)


def text(value: Any, field: str, *, max_length: int = NAME_MAX) -> str:
    """A required string, trimmed, between 1 and `max_length` characters."""
    if not isinstance(value, str) or not value.strip():
        raise BadInput(f"{field} must not be empty.")
    value = value.strip()
    if len(value) > max_length:
        raise BadInput(f"{field} must be at most {max_length} characters.")
    return value


def optional_text(value: Any, field: str, *, max_length: int = NAME_MAX) -> str | None:
    return None if value is None else text(value, field, max_length=max_length)


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
