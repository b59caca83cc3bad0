"""The `healthledger` command line (API.md, "Command line").

Exit codes: 0 ok, 1 a check failed, 2 bad usage or configuration (one line, no traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from authz.network import NetworkConfigError, load_network
from ledger_backends import LedgerError, UnsupportedLedgerURLError, open_store, verify_channel

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad usage or configuration: printed as one line, exit code 2."""


@dataclass(frozen=True)
class ChannelTarget:
    name: str
    url: str


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except (UsageError, NetworkConfigError, UnsupportedLedgerURLError) as exc:
        print(f"healthledger: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except LedgerError as exc:
        print(f"healthledger: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="healthledger",
        description="Children's health records on tamper-evident, hash-chained ledgers.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    verify = commands.add_parser(
        "verify",
        help="check every chain: hashes, links, world state and history",
        description="Recompute every hash from the first block and replay the world state. "
        "Exit 0 if every chain is intact, 1 naming the first bad block otherwise.",
    )
    verify.add_argument(
        "--network",
        default=os.environ.get("HEALTHLEDGER_NETWORK"),
        help="network directory holding network.toml (env HEALTHLEDGER_NETWORK)",
    )
    verify.add_argument(
        "--ledger",
        default=os.environ.get("HEALTHLEDGER_LEDGER_URL"),
        help="ledger URL overriding every channel's (env HEALTHLEDGER_LEDGER_URL)",
    )
    verify.add_argument("--channel", help="verify only this channel")
    verify.set_defaults(run=_verify)
    return parser


def _verify(args: argparse.Namespace) -> int:
    targets = _verify_targets(args.network, args.ledger, args.channel)
    failed = False
    for target in targets:
        try:
            store = open_store(target.url)
            try:
                result = verify_channel(store, target.name)
            finally:
                store.close()
        except LedgerError as exc:
            print(f"{target.name}: cannot be checked: {exc}")
            failed = True
            continue
        if result.ok:
            print(
                f"{target.name}: ok, {result.height} blocks, every hash and the world state match"
            )
        else:
            print(f"{target.name}: DAMAGED at block {result.first_bad_block}: {result.reason}")
            failed = True
    return EXIT_FAILED if failed else EXIT_OK


def _verify_targets(
    network_dir: str | None, ledger_url: str | None, only: str | None
) -> list[ChannelTarget]:
    """The channels to check and where each one's ledger lives."""
    if network_dir:
        network = load_network(network_dir)
        channels = [network.channel(only)] if only else list(network.channels)
        return [
            ChannelTarget(channel.name, ledger_url or network.ledger_url(channel))
            for channel in channels
        ]
    if not ledger_url:
        raise UsageError(
            "Say which ledger to verify: --network DIR or --ledger URL "
            "(or HEALTHLEDGER_NETWORK / HEALTHLEDGER_LEDGER_URL)."
        )
    if only:
        return [ChannelTarget(only, ledger_url)]
    store = open_store(ledger_url)
    try:
        names = store.channels()
    finally:
        store.close()
    if not names:
        print(f"The ledger at {ledger_url} has no channels yet: nothing to verify.")
    return [ChannelTarget(name, ledger_url) for name in names]


if __name__ == "__main__":
    sys.exit(main())
