"""Checks shared by the contract unit tests: a refusal is the right error, code, and no change."""

from __future__ import annotations

from typing import Any

import pytest

from chaincode.errors import BadInput, Conflict, ContractError, Forbidden, NotFound
from chaincode.testing import ContractHarness, FakeCaller

CODES = {
    BadInput: "BAD_USER_INPUT",
    NotFound: "NOT_FOUND",
    Forbidden: "FORBIDDEN",
    Conflict: "CONFLICT",
}


def ledger_snapshot(h: ContractHarness) -> tuple[Any, list[tuple[str, str]]]:
    """The channel's tip and every state row: equal before and after means nothing changed."""
    channel = h.contract.channel
    return h.store.tip(channel), sorted((r.key, r.value) for r in h.store.scan_state(channel))


def refused_on(
    h: ContractHarness, caller: FakeCaller, function: str, error: type[ContractError], **args: Any
) -> ContractError:
    """Calls, expects exactly `error` with its API code, and checks nothing changed."""
    before = ledger_snapshot(h)
    with pytest.raises(ContractError) as caught:
        h.call(caller, function, **args)
    assert type(caught.value) is error
    assert caught.value.code == CODES[error]
    assert ledger_snapshot(h) == before
    return caught.value


def assert_no_leak(error: ContractError, secrets: tuple[str, ...]) -> None:
    """A refusal names none of another family's data."""
    message = str(error)
    for secret in secrets:
        assert secret not in message
