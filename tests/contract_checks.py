"""Checks shared by the contract unit tests: a refusal is the right error, code, and no change."""

from __future__ import annotations

from typing import Any

import pytest

from chaincode.testing import ContractHarness, FakeCaller
from domain.errors import BadInputError, ConflictError, ForbiddenError, NotFoundError, RefusalError

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
