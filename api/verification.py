"""Verifying channels and saying the outcome in one line each (`verify` and the demo).

Checking never changes a ledger: each store is opened with `open_store(url, create=False)`,
which creates nothing and reads only. A store that holds something other than a ledger
raises NotALedgerError, which the command line reports with exit 2; a place where nothing
is stored (a SQLite file that does not exist) fails the check of its channels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ledger_backends import LedgerError, open_store, verify_channel
from ledger_backends.errors import LedgerNotFoundError, NotALedgerError
from ledger_backends.urls import scrubbed


@dataclass(frozen=True)
class ChannelTarget:
    name: str
    url: str


def verify_and_report(targets: Iterable[ChannelTarget]) -> bool:
    """Verify each channel's chain, print one line per channel; True if every chain is intact.

    Raises NotALedgerError for a store that is not a ledger at all: that is a configuration
    mistake, not a damaged chain.
    """
    intact = True
    for target in targets:
        try:
            store = open_store(target.url, create=False)
            try:
                result = verify_channel(store, target.name)
            finally:
                store.close()
        except LedgerNotFoundError as exc:
            print(f"{target.name}: {no_ledger_at(exc.where)}")
            intact = False
            continue
        except NotALedgerError:
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


def stored_channels(url: str) -> list[str]:
    """The channels with blocks in the ledger at `url`, read without changing anything.

    Raises LedgerError when nothing is stored there, NotALedgerError when it is not a ledger.
    """
    try:
        store = open_store(url, create=False)
    except LedgerNotFoundError as exc:
        raise LedgerError(no_ledger_at(exc.where)) from exc
    try:
        return store.channels()
    finally:
        store.close()


def no_ledger_at(where: str) -> str:
    # Typically a --ledger other than serve's: an empty new file must not pass for an intact chain.
    return f"no ledger at {where}: pass the --ledger that serve uses (or fix network.toml)"
