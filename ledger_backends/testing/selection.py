"""Which backends a test run covers, and where the PostgreSQL and Redis servers it uses are.

`HEALTHLEDGER_TEST_BACKENDS` selects the backends: a comma-separated list of
names from `BACKENDS`, all four when unset or empty. A test of a backend left
out is skipped, with the reason shown by `pytest -ra`. `HEALTHLEDGER_TEST_POSTGRES`
and `HEALTHLEDGER_TEST_REDIS` are the servers' addresses (no schema, no prefix).
"""

from __future__ import annotations

import os

import pytest

BACKENDS = ("memory", "sqlite", "postgresql", "redis")
SELECTION_VARIABLE = "HEALTHLEDGER_TEST_BACKENDS"
POSTGRES_URL = os.environ.get(
    "HEALTHLEDGER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("HEALTHLEDGER_TEST_REDIS", "redis://127.0.0.1:6379/0")


def selected_backends() -> tuple[str, ...]:
    """The backends this run covers, in the order of `BACKENDS`.

    Raises ValueError when HEALTHLEDGER_TEST_BACKENDS names a backend that does not exist.
    """
    names = {name.strip() for name in os.environ.get(SELECTION_VARIABLE, "").split(",")}
    names.discard("")
    unknown = sorted(names - set(BACKENDS))
    if unknown:
        raise ValueError(
            f"{SELECTION_VARIABLE} names no backend called {', '.join(map(repr, unknown))}: "
            f"use a comma-separated list of {', '.join(BACKENDS)}."
        )
    return tuple(name for name in BACKENDS if name in names) if names else BACKENDS


def needs_backend(backend: str) -> pytest.MarkDecorator:
    """A mark that skips a test when `backend` is not selected for this run."""
    if backend not in BACKENDS:
        raise ValueError(f"No backend called {backend!r}: use one of {', '.join(BACKENDS)}.")
    return pytest.mark.skipif(
        backend not in selected_backends(), reason=f"{backend} is not in {SELECTION_VARIABLE}"
    )


def backend_params(*backends: str) -> list[pytest.ParameterSet]:
    """Parameters naming `backends` (all of `BACKENDS` if none), each skipped unless selected.

    For `pytest.fixture(params=...)` and `pytest.mark.parametrize`, direct or indirect.
    """
    return [pytest.param(name, marks=needs_backend(name), id=name) for name in backends or BACKENDS]
