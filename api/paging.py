"""Paged lists as Relay connections: `first` checked, cursors in, edges and cursors out.

A list's resolver names the list and its arguments (`PagedList.of`), turns the
client's `after` into the position the list gave (`position_after`), asks the
contract (or the explorer) for `first` items from there, and turns the page it
gets back into a Connection (`connection`), sealing each item's position into
its cursor (api.cursors).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

import strawberry
from strawberry.types import Info

from chaincode.paging import DEFAULT_FIRST, FIRST_MAX, page_size
from chaincode.people import person_of
from chaincode.records import Page

from .context import context_of
from .cursors import Arguments, CursorKey, cursor_key
from .types import Connection, Edge, PageInfo

First = Annotated[int, strawberry.argument(description=f"How many items: 1 to {FIRST_MAX}.")]
# `accessLog` takes `first: Int = 50` as its binding signature reads: null means the default.
FirstOrDefault = Annotated[
    int | None,
    strawberry.argument(description=f"How many items: 1 to {FIRST_MAX}; null for {DEFAULT_FIRST}."),
]
After = Annotated[
    str | None,
    strawberry.argument(description="Where to go on: the endCursor of the page before."),
]

Item = TypeVar("Item")
Node = TypeVar("Node")


@dataclass(frozen=True, slots=True)
class PagedList:
    """One request for a page: which list, as whom, with which arguments."""

    name: str
    person: str
    arguments: Arguments
    key: CursorKey

    @classmethod
    def of(
        cls, info: Info, name: str, first: int, **arguments: str | int | bool | None
    ) -> PagedList:
        """The page request of this resolver; BAD_USER_INPUT unless 1 <= first <= FIRST_MAX,
        the bound every list keeps (chaincode.paging)."""
        page_size(first)
        c = context_of(info)
        key = cursor_key(c.services.network.server.key)
        return cls(name, person_of(c.identity), arguments, key)

    def position_after(self, after: str | None) -> str | None:
        """The list's own position sealed in `after`; None for the first page."""
        if after is None:
            return None
        return self.key.open(after, self.name, self.person, self.arguments)

    def connection(self, page: Page[Item], node_of: Callable[[Item], Node]) -> Connection[Node]:
        """The page a list gave as a Connection whose cursors are its entries' positions,
        sealed for this request."""
        edges = [
            Edge(
                cursor=self.key.seal(self.name, self.person, self.arguments, entry["position"]),
                node=node_of(entry["item"]),
            )
            for entry in page["entries"]
        ]
        return Connection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page["hasMore"],
                has_previous_page=False,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )
