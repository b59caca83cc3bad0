"""Paged lists: a page costs O(page) reads, however long the list has grown.

A list is read from index keys, each an index prefix followed by a record id
(`school-admission/ORG/ID`). Most ids sort by creation time (`TxContext.new_id`),
so reading a prefix's keys in descending order gives the newest records first.
Child ids carry no time (schools see them), and records made before ids carried
a time come after all newer ones: those are in descending id order, and every
record is still listed exactly once.

An entry's position is its index key; the next page starts strictly after it.
Positions come back from callers (the API signs them into cursors), so each is
checked to lie under one of the caller's own prefixes before it is used.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from domain.errors import BadInputError

from . import validation as check
from .base import TxContext
from .records import Page, PageEntry

DEFAULT_FIRST = 50
FIRST_MAX = 200

Item = TypeVar("Item")


def page_size(first: Any) -> int:
    """How many entries a page holds: `first`, a whole number from 1 to FIRST_MAX."""
    return check.integer(first, "first", low=1, high=FIRST_MAX)


def newest_first(
    ctx: TxContext,
    prefixes: Sequence[str],
    *,
    first: Any,
    after: Any,
    load: Callable[[str], Item | None],
) -> Page[Item]:
    """A page of the records that the index keys under `prefixes` name, newest id first.

    `load` turns a record id into the listed item, or None to leave it out (a filter, a
    visibility rule). With several prefixes, their keys are merged by record id, which
    is unique across them. Each prefix is read `first` + 1 keys at a time, and reading
    goes on until `first` + 1 items are kept or the prefixes end: O(prefixes * first)
    reads when nothing is left out. No prefix, no item (a caller the list is not for).
    Raises BadInputError for a `first` out of range or an `after` that is not a position
    under one of `prefixes`.
    """
    size = page_size(first)
    start = _record_id_after(after, prefixes)
    batch = size + 1
    walks = [_walk(ctx, prefix, start, batch) for prefix in dict.fromkeys(prefixes)]
    entries: list[PageEntry[Item]] = []
    for record_id, key in heapq.merge(*walks, reverse=True):
        item = load(record_id)
        if item is None:
            continue
        if len(entries) == size:
            return {"entries": entries, "hasMore": True}
        entries.append({"position": key, "item": item})
    return {"entries": entries, "hasMore": False}


def _record_id_after(after: Any, prefixes: Sequence[str]) -> str | None:
    """The record id a position names, if it lies under one of `prefixes`."""
    if after is None:
        return None
    if isinstance(after, str):
        for prefix in prefixes:
            if after.startswith(prefix) and len(after) > len(prefix):
                return after[len(prefix) :]
    raise BadInputError("after is not a position in this list.")


def _walk(ctx: TxContext, prefix: str, start: str | None, batch: int) -> Iterator[tuple[str, str]]:
    """(record id, index key) under `prefix`, newest first, below the id `start` if given."""
    after = None if start is None else prefix + start
    while True:
        found = ctx.get_keys_page(prefix, after=after, limit=batch)
        for key in found:
            yield key[len(prefix) :], key
        if len(found) < batch:
            return
        after = found[-1]
