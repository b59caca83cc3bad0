"""Verifying channels and saying the outcome in one line each (`verify` and `demo`).

Checking never changes a ledger. A SQLite file is opened read-only and a PostgreSQL database
in read-only transactions; either must already hold the ledger's tables (NotALedgerError
otherwise, which the command line reports with exit 2). A Redis ledger is only read: its
store sends no write command when opened (the append script is registered client-side)
nor while a chain is checked, so no key is created.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ledger_backends import LedgerError, LedgerStore, open_store, verify_channel
from ledger_backends.errors import NotALedgerError
from ledger_backends.postgres import PostgresStore
from ledger_backends.sqlite import SQLiteStore, sqlite_path
from ledger_backends.urls import scrubbed


@dataclass(frozen=True)
class ChannelTarget:
    name: str
    url: str


def verify_and_report(targets: Iterable[ChannelTarget]) -> bool:
    """Verify each channel's chain, print one line per channel; True if every chain is intact."""
    intact = True
    for target in targets:
        missing = missing_sqlite_file(target.url)
        if missing is not None:
            print(f"{target.name}: {no_ledger_at(missing)}")
            intact = False
            continue
        try:
            store = open_for_checking(target.url)
            try:
                result = verify_channel(store, target.name)
            finally:
                store.close()
        except NotALedgerError:
            # A file that is no ledger at all is a configuration mistake, not a damaged chain.
            raise
        except LedgerError as exc:
            print(f"{target.name}: cannot be checked: {scrubbed(str(exc), target.url)}")
            intact = False
            continue
        if result.ok:
            blocks = "1 block" if result.height == 1 else f"{result.height} blocks"
            print(f"{target.name}: ok, {blocks}; hashes, state and history match")
        else:
            print(f"{target.name}: DAMAGED at block {result.first_bad_block}: {result.reason}")
            intact = False
    return intact


def open_for_checking(url: str) -> LedgerStore:
    """The store at `url`, opened read-only when it is a SQLite or PostgreSQL ledger."""
    scheme = urlsplit(url).scheme.split("+", 1)[0].lower()  # as open_store reads it
    if scheme == "sqlite":
        return SQLiteStore.open_read_only(url)
    if scheme in ("postgresql", "postgres"):
        return PostgresStore.open_read_only(url)
    return open_store(url)


def missing_sqlite_file(url: str) -> Path | None:
    """The path of a SQLite ledger URL whose file does not exist (opening it would create one)."""
    if not url.startswith("sqlite:"):
        return None
    path = sqlite_path(url)
    return None if str(path) == ":memory:" or path.exists() else path


def no_ledger_at(path: Path) -> str:
    # Typically a --ledger other than serve's: an empty new file must not pass for an intact chain.
    return f"no ledger at {path}: pass the --ledger that serve uses (or fix network.toml)"
