"""Comma-separated lists on the bench scripts' command lines, as argparse `type=` functions."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence


def names(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    """A non-empty list of names, each one of `allowed` ("sqlite,redis")."""

    def parse(text: str) -> list[str]:
        found = [name.strip() for name in text.split(",") if name.strip()]
        if not found or any(name not in allowed for name in found):
            raise argparse.ArgumentTypeError(f"choose from {','.join(allowed)}, not {text!r}")
        return found

    return parse


def positive_ints(what: str, example: str) -> Callable[[str], list[int]]:
    """A list of whole numbers of at least 1 ("1,8,32"); `what` names them in the error."""

    def parse(text: str) -> list[int]:
        try:
            values = [int(part) for part in text.split(",")]
        except ValueError as exc:
            raise argparse.ArgumentTypeError(
                f"expected numbers like {example}, not {text!r}"
            ) from exc
        if any(value < 1 for value in values):
            raise argparse.ArgumentTypeError(f"{what} must be at least 1")
        return values

    return parse
