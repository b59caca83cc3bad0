"""The backend test kit itself: which backends a run covers, and scratch ledgers leave nothing."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import redis

from ledger_backends import open_ledger
from ledger_backends.chain import ChainWriter
from ledger_backends.testing import (
    BACKENDS,
    POSTGRES_URL,
    REDIS_URL,
    SELECTION_VARIABLE,
    backend_params,
    golden_clock,
    golden_proposals,
    query_option,
    scratch_url,
    selected_backends,
)


@pytest.mark.parametrize(
    ("value", "selected"),
    [
        (None, BACKENDS),
        ("", BACKENDS),
        ("redis, memory", ("memory", "redis")),
        ("sqlite,sqlite,", ("sqlite",)),
    ],
)
def test_the_variable_selects_backends_in_a_fixed_order(
    monkeypatch: pytest.MonkeyPatch, value: str | None, selected: tuple[str, ...]
) -> None:
    if value is None:
        monkeypatch.delenv(SELECTION_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(SELECTION_VARIABLE, value)
    assert selected_backends() == selected


def test_an_unknown_backend_name_is_refused_with_the_names_to_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SELECTION_VARIABLE, "sqlite,mysql")
    with pytest.raises(ValueError, match=r"'mysql': use .* memory, sqlite, postgresql, redis"):
        selected_backends()


def test_an_unknown_backend_has_no_scratch_ledger() -> None:
    with pytest.raises(ValueError, match="No backend called 'mysql'"):
        scratch_url("mysql")


@pytest.mark.parametrize("backend", backend_params())
def test_a_scratch_ledger_starts_empty_and_leaves_nothing_behind(
    backend: str, tmp_path: Path
) -> None:
    with scratch_url(backend, tmp_path) as url:
        ledger = open_ledger(url)
        try:
            assert ledger.store.channels() == []
            writer = ChainWriter(ledger.store, "medical", clock=golden_clock())
            for batch in golden_proposals():
                writer.commit(batch)
        finally:
            ledger.close()
    assert list(tmp_path.iterdir()) == []
    if backend == "postgresql":
        with psycopg.connect(POSTGRES_URL) as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", [query_option(url, "schema")]
            )
            assert found.fetchone() is None
    elif backend == "redis":
        with redis.Redis.from_url(REDIS_URL) as client:
            assert list(client.scan_iter(match=f"{query_option(url, 'prefix')}*")) == []
