"""Ledger URLs never show their passwords: not in messages, not from a driver's error text."""

from __future__ import annotations

import pytest

from api.preflight import CannotServeError, check_ledgers
from ledger_backends.urls import redacted_url, scrubbed

SECRET = "s3cret-Pw"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            f"postgresql://ops:{SECRET}@db.example:5432/ledger",
            "postgresql://ops:***@db.example:5432/ledger",
        ),
        (f"redis://:{SECRET}@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("postgresql://ops@db.example/ledger", "postgresql://ops@db.example/ledger"),
        ("sqlite:////var/lib/healthledger/ledger.db", "sqlite:////var/lib/healthledger/ledger.db"),
        (f"redis://:{SECRET}@host:notaport/0", "redis://:***@host:notaport/0"),
        (f"redis://:{SECRET}@[::1/0", "redis://***"),
    ],
)
def test_a_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert redacted_url(url) == shown


def test_a_driver_message_repeating_the_password_is_scrubbed() -> None:
    url = f"postgresql://ops:{SECRET.replace('-', '%2D')}@db/ledger"
    message = f"connection to server failed for password {SECRET} ({SECRET.replace('-', '%2D')})"
    assert SECRET not in scrubbed(message, url)
    assert "%2D" not in scrubbed(message, url)


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://postgres:{SECRET}@127.0.0.1:1/test",
        f"redis://:{SECRET}@127.0.0.1:1/0",
    ],
)
def test_serve_s_refusal_of_an_unreachable_ledger_names_no_password(url: str) -> None:
    with pytest.raises(CannotServeError) as refused:
        check_ledgers([url])
    assert SECRET not in str(refused.value)
    assert ":***@127.0.0.1:1" in str(refused.value)


def test_verify_s_answer_about_an_unreachable_ledger_names_no_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from api.cli import main

    url = f"postgresql://postgres:{SECRET}@127.0.0.1:1/test"
    assert main(["verify", "--ledger", url]) != 0
    printed = capsys.readouterr()
    assert SECRET not in printed.out + printed.err
