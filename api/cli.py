"""The `healthledger` command line (API.md, "Command line").

Exit codes: 0 ok, 1 a check failed, 2 bad usage or configuration (one line, no traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from authz import provision
from authz.network import NetworkConfigError, load_network, resolve_ledger_url
from authz.provision import ProvisionError
from authz.roles import Role
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
    except (UsageError, NetworkConfigError, ProvisionError, UnsupportedLedgerURLError) as exc:
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

    network = commands.add_parser("network", help="create a network directory")
    network_commands = network.add_subparsers(dest="network_command", required=True)
    init = network_commands.add_parser(
        "init",
        help="new network: network.toml, a CA and CRL per organisation, a server certificate",
    )
    init.add_argument("directory", metavar="DIR")
    init.add_argument(
        "--school",
        action="append",
        metavar="ID",
        help="a school organisation (repeatable; default: school-a, school-b)",
    )
    init.set_defaults(run=_network_init)

    enroll = commands.add_parser("enroll", help="issue a client certificate for a user")
    enroll.add_argument("directory", metavar="DIR")
    enroll.add_argument("--org", required=True)
    enroll.add_argument("--uid", required=True)
    enroll.add_argument("--role", required=True, choices=[role.value for role in Role])
    enroll.add_argument("--name", help="display name (the certificate's CN)")
    enroll.add_argument("--p12", metavar="PASSWORD", help="also write a PKCS#12 file for browsers")
    enroll.set_defaults(run=_enroll)

    serve = commands.add_parser("serve", help="run the GraphQL API over mutual TLS")
    serve.add_argument(
        "--network",
        default=os.environ.get("HEALTHLEDGER_NETWORK"),
        help="network directory (env HEALTHLEDGER_NETWORK)",
    )
    serve.add_argument(
        "--ledger",
        default=os.environ.get("HEALTHLEDGER_LEDGER_URL"),
        help="ledger URL for every channel (env HEALTHLEDGER_LEDGER_URL)",
    )
    serve.add_argument("--host", help="address to listen on (default: network.toml)")
    serve.add_argument("--port", type=int, help="port (default: network.toml)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.set_defaults(run=_serve)

    schema = commands.add_parser("schema", help="print the GraphQL SDL")
    schema.set_defaults(run=_schema)

    revoke = commands.add_parser("revoke", help="add a user's certificate to its CA's CRL")
    revoke.add_argument("directory", metavar="DIR")
    revoke.add_argument("--org", required=True)
    revoke.add_argument("--uid", required=True)
    revoke.set_defaults(run=_revoke)
    return parser


def _serve(args: argparse.Namespace) -> int:
    if not args.network:
        raise UsageError("Say which network to serve: --network DIR (or HEALTHLEDGER_NETWORK).")
    if args.workers < 1:
        raise UsageError("--workers must be at least 1.")
    if args.port is not None and not 0 < args.port < 65536:
        raise UsageError("--port must be between 1 and 65535.")
    load_network(args.network)
    ledger_url = resolve_ledger_url(args.ledger, Path.cwd()) if args.ledger else None
    if ledger_url:
        open_store(ledger_url).close()  # a wrong URL fails here with one line, not in a worker
    from .server import serve

    serve(args.network, ledger_url=ledger_url, host=args.host, port=args.port, workers=args.workers)
    return EXIT_OK


def _schema(_: argparse.Namespace) -> int:
    from .schema import schema

    print(schema.as_str())
    return EXIT_OK


def _network_init(args: argparse.Namespace) -> int:
    target = provision.init_network(args.directory, args.school)
    print(f"Created a network in {target}:")
    print(f"  configuration      {target / 'network.toml'}")
    print(f"  organisation CAs   {target / 'orgs'}")
    print(
        f"  server TLS         {target / 'tls/server.pem'} (clients trust {target / 'tls/ca.pem'})"
    )
    print(f"Next: healthledger enroll {target} --org parents --uid alice --role parent")
    return EXIT_OK


def _enroll(args: argparse.Namespace) -> int:
    paths = provision.enroll(
        args.directory,
        org=args.org,
        uid=args.uid,
        role=args.role,
        name=args.name,
        p12_password=args.p12,
    )
    print(f"Enrolled {args.uid} ({args.role}) in {args.org}:")
    print(f"  certificate  {paths.cert}")
    print(f"  key          {paths.key}")
    if paths.p12 is not None:
        print(f"  PKCS#12      {paths.p12} (import into a browser with the password given)")
    return EXIT_OK


def _revoke(args: argparse.Namespace) -> int:
    if provision.revoke(args.directory, org=args.org, uid=args.uid):
        print(f"Revoked {args.uid} of {args.org}; a running server refuses it within 5 seconds.")
    else:
        print(f"{args.uid} of {args.org} was already revoked.")
    return EXIT_OK


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
            blocks = "1 block" if result.height == 1 else f"{result.height} blocks"
            print(f"{target.name}: ok, {blocks}; hashes, state and history match")
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
