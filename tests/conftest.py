"""Shared fixtures: a fresh ledger URL on each selected backend, removed afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger_backends.testing import backend_params, scratch_url


@pytest.fixture(params=backend_params())
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, isolated ledger on each backend in turn (real PostgreSQL and Redis)."""
    with scratch_url(request.param, tmp_path) as url:
        yield url
