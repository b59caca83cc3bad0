"""Ledgers that survive a crash: the fixtures of the kill -9 tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger_backends.testing import backend_params, scratch_url
from tests.api_client import RedisServer


@pytest.fixture
def redis_with_aof(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server on a free port, appendonly yes + appendfsync always."""
    data = tmp_path / "redis"
    data.mkdir()
    server = RedisServer(data_dir=data)
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(params=backend_params("sqlite", "postgresql", "redis"))
def durable_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh ledger URL on a backend configured to be durable (Redis: a private AOF server)."""
    if request.param == "redis":
        yield request.getfixturevalue("redis_with_aof").url
    else:
        with scratch_url(request.param, tmp_path) as url:
            yield url
