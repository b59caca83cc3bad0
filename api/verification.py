"""Verifying channels and saying the outcome in one line each (`verify` and `demo`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ledger_backends import LedgerError, open_store, verify_channel


@dataclass(frozen=True)
class ChannelTarget:
    name: str
    url: str


def verify_and_report(targets: Iterable[ChannelTarget]) -> bool:
    """Verify each channel's chain, print one line per channel; True if every chain is intact."""
    intact = True
    for target in targets:
        try:
            store = open_store(target.url)
            try:
                result = verify_channel(store, target.name)
            finally:
                store.close()
        except LedgerError as exc:
            print(f"{target.name}: cannot be checked: {exc}")
            intact = False
            continue
        if result.ok:
            blocks = "1 block" if result.height == 1 else f"{result.height} blocks"
            print(f"{target.name}: ok, {blocks}; hashes, state and history match")
        else:
            print(f"{target.name}: DAMAGED at block {result.first_bad_block}: {result.reason}")
            intact = False
    return intact
