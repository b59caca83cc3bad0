"""Checks shared by the contract unit tests: a refusal is the right error, code, and no change;
what a page of a list holds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chaincode.testing import ContractHarness, FakeCaller
from domain.errors import BadInputError, ConflictError, ForbiddenError, NotFoundError, RefusalError

# Every field of an access-log entry as its guardians list it: who, when, what and why, and
# nothing of what was read.
ENTRY_FIELDS = {
    "id",
    "at",
    "childId",
    "readerUid",
    "readerOrg",
    "readerRole",
    "what",
    "recordId",
    "version",
    "purpose",
    "outcome",
    "blockNumber",
}

CODES = {
    BadInputError: "BAD_USER_INPUT",
    NotFoundError: "NOT_FOUND",
    ForbiddenError: "FORBIDDEN",
    ConflictError: "CONFLICT",
}


def ledger_snapshot(h: ContractHarness) -> tuple[Any, list[tuple[str, str]]]:
    """The channel's tip and every state row: equal before and after means nothing changed."""
    channel = h.contract.channel
    return h.store.tip(channel), sorted((r.key, r.value) for r in h.store.scan_state(channel))


def refused_on(
    h: ContractHarness, caller: FakeCaller, function: str, error: type[RefusalError], **args: Any
) -> RefusalError:
    """Calls, expects exactly `error` with its API code, and checks nothing changed."""
    before = ledger_snapshot(h)
    with pytest.raises(RefusalError) as caught:
        h.call(caller, function, **args)
    assert type(caught.value) is error
    assert caught.value.code == CODES[error]
    assert ledger_snapshot(h) == before
    return caught.value


def assert_no_leak(error: RefusalError, secrets: tuple[str, ...]) -> None:
    """A refusal names none of another family's data."""
    message = str(error)
    for secret in secrets:
        assert secret not in message


def items(page: Any) -> list[Any]:
    """The items of a page of a list, in its order."""
    assert set(page) == {"entries", "hasMore"}
    return [entry["item"] for entry in page["entries"]]


def every_page(list_page: Callable[[str | None], Any]) -> list[Any]:
    """Every page of a list, each asked for after the last position of the one before."""
    pages = [list_page(None)]
    while pages[-1]["hasMore"]:
        pages.append(list_page(pages[-1]["entries"][-1]["position"]))
    return pages


def assert_pages_hold(
    pages: list[Any], *, first: int, expected: list[Any], key: str = "id"
) -> None:
    """The pages hold exactly `expected` (the items' `key`s), in that order and each once: every
    page full but the last, which is the only one without `hasMore`."""
    assert [len(page["entries"]) for page in pages[:-1]] == [first] * (len(pages) - 1)
    assert len(pages[-1]["entries"]) <= first
    assert [page["hasMore"] for page in pages] == [True] * (len(pages) - 1) + [False]
    listed = [entry["item"][key] for page in pages for entry in page["entries"]]
    assert len(set(listed)) == len(listed)
    assert listed == expected
