"""The `healthledger` command line (docs/operations.md, "The command line").

Exit codes: 0 ok, 1 a check failed, 2 bad usage or configuration (one line, no traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from authz import provision
from authz.network import NetworkConfig, NetworkConfigError, load_network, resolve_ledger_url
from authz.provision import ProvisionError
from authz.roles import Role
from checkpoints.log_keys import LogKeyError
from domain.errors import NotFoundError, RefusalError
from encryption.keks import KekError, begin_rotation, finish_rotation
from encryption.keyring import DEFAULT_CACHE_SECONDS, Keyring
from ledger_backends import LedgerError, UnsupportedLedgerURLError, open_store
from ledger_backends.errors import LedgerNotFoundError, NotALedgerError
from ledger_backends.keystores import open_key_store
from ledger_backends.urls import redacted_url
from proofcheck import ProofError, ProofInputsError, verify_proof
from proofcheck.witness import DEFAULT_INTERVAL_SECONDS as DEFAULT_WITNESS_INTERVAL
from proofcheck.witness import CannotWitnessError, WitnessConfig
from proofcheck.witness import run as run_witness

from . import collector, preflight
from .health import HealthAddress
from .verification import ChannelTarget, stored_channels, verify_and_report

if TYPE_CHECKING:
    from chaincode.records import ErasureReceipt

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# How long `keys rotate` waits, once the new KEK file is there, before it rewraps: a
# running server's keyring looks at its KEK files this often (encryption.keyring).
ROTATION_SETTLE_SECONDS = DEFAULT_CACHE_SECONDS + 1


class UsageError(Exception):
    """Bad usage or configuration: printed as one line, exit code 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except (
        UsageError,
        NetworkConfigError,
        ProvisionError,
        UnsupportedLedgerURLError,
        NotALedgerError,
        KekError,
        LogKeyError,
        preflight.CannotServeError,
    ) as exc:
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

    witness = commands.add_parser(
        "witness",
        help="keep each channel's signed checkpoint and check that the log only ever grows",
        description="As a user of ORG, fetch each channel's signed checkpoint, check it with "
        "the log key pinned at the first run, and check with a consistency proof that the "
        "log's tree extends the checkpoint kept last time; then keep the new one. Exit 0 if "
        "every channel passed, 1 with one line per channel if a log broke its promise (a "
        "signature that does not verify, a tree that shrank or does not extend the kept "
        "one), 2 if it could not check (nothing kept changes).",
    )
    witness.add_argument(
        "--network",
        required=True,
        metavar="DIR",
        help="the network directory: network.toml, tls/ca.pem, the user's certificate and "
        "key (users/ORG/UID.pem, .key) and, at the first run, log/CHANNEL.pub",
    )
    witness.add_argument("--org", required=True, help="the witnessing organisation")
    witness.add_argument("--uid", required=True, help="the enrolled user whose certificate it uses")
    witness.add_argument("--server", required=True, metavar="URL", help="https://HOST:PORT")
    witness.add_argument(
        "--state",
        required=True,
        metavar="DIR",
        help="where the pinned log keys and kept checkpoints are (one per network)",
    )
    witness.add_argument(
        "--channel",
        action="append",
        metavar="NAME",
        help="witness this channel (repeatable; default: every channel ORG is a member of)",
    )
    witness.add_argument(
        "--interval",
        type=float,
        default=DEFAULT_WITNESS_INTERVAL,
        metavar="S",
        help=f"seconds between rounds (default {DEFAULT_WITNESS_INTERVAL:g})",
    )
    witness.add_argument("--once", action="store_true", help="run one round and exit (for cron)")
    witness.set_defaults(run=_witness)

    prove = commands.add_parser(
        "prove",
        help="check a transaction's inclusion proof, or a consistency proof, offline",
        description="Check a proof file (the JSON of a GraphQL InclusionProof or "
        "ConsistencyProof) against the log's signed checkpoint and public key, without the "
        "server. Exit 0 printing what was verified, 1 printing why it does not verify.",
    )
    prove.add_argument(
        "--checkpoint",
        required=True,
        metavar="FILE",
        help="the signed checkpoint of the proof's tree (for a consistency proof: the newer)",
    )
    prove.add_argument("--proof", required=True, metavar="FILE", help="the proof, JSON")
    prove.add_argument(
        "--pubkey", required=True, metavar="FILE", help="the log's public key, log/CHANNEL.pub"
    )
    prove.add_argument(
        "--old-checkpoint",
        metavar="FILE",
        help="for a consistency proof: the signed checkpoint of the older tree",
    )
    prove.set_defaults(run=_prove)

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
    renew = network_commands.add_parser(
        "renew-crl",
        help="sign each organisation's CRL anew (next number, next-update in 30 days)",
    )
    renew.add_argument("directory", metavar="DIR")
    renew.add_argument("--org", help="only this organisation's CRL")
    renew.set_defaults(run=_network_renew_crl)

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
    serve.add_argument("--port", type=int, help="port, 0 for any free one (default: network.toml)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument(
        "--health-port",
        type=int,
        help="also answer /healthz and /readyz over plain HTTP on this port, for probes "
        "that have no client certificate; 0 for any free one "
        "(env HEALTHLEDGER_HEALTH_PORT; default: off)",
    )
    serve.add_argument(
        "--health-host",
        default=os.environ.get("HEALTHLEDGER_HEALTH_HOST") or "127.0.0.1",
        help="address of the health port (env HEALTHLEDGER_HEALTH_HOST; default 127.0.0.1)",
    )
    serve.add_argument(
        "--persisted-only",
        action="store_true",
        default=os.environ.get("HEALTHLEDGER_PERSISTED_ONLY") == "1",
        help="run only the operations registered at start (the web app's, from the "
        "manifest), named by their sha256 hash; refuse any other document "
        "(env HEALTHLEDGER_PERSISTED_ONLY=1)",
    )
    serve.add_argument(
        "--persisted-operations",
        metavar="FILE",
        default=os.environ.get("HEALTHLEDGER_PERSISTED_OPERATIONS"),
        help="the manifest of registered operations, JSON {sha256: document} "
        "(env HEALTHLEDGER_PERSISTED_OPERATIONS; default: the web app's "
        "web/dist/persisted-documents.json, if built)",
    )
    serve.set_defaults(run=_serve)

    demo = commands.add_parser(
        "demo",
        help="run the whole story over mutual TLS on a fresh network and show who sees what",
        description="Create a temporary network with demo users, serve it on an embedded "
        "SQLite ledger, and run the five-step story through the GraphQL API over mutual TLS: "
        "each step, what each party could see, then verify both channels. Exit 0 if every "
        "step and check went as the access rules say, 1 otherwise.",
    )
    demo.add_argument(
        "--keep", action="store_true", help="keep the temporary network and ledger afterwards"
    )
    demo.set_defaults(run=_demo)

    schema = commands.add_parser("schema", help="print the GraphQL SDL")
    schema.set_defaults(run=_schema)

    revoke = commands.add_parser("revoke", help="add a user's certificate to its CA's CRL")
    revoke.add_argument("directory", metavar="DIR")
    revoke.add_argument("--org", required=True)
    revoke.add_argument("--uid", required=True)
    revoke.set_defaults(run=_revoke)

    erase = commands.add_parser(
        "erase",
        help="erase a child's records: destroy its data keys on every channel",
        description="Destroy the child's data keys on every channel and record the erasure "
        "there, as the server (an operator acting on a request the guardians could not "
        "make themselves). The chain keeps every block; what was sealed with those keys can "
        "never be read again. Exit 0 once erased (also when it was already), 1 if the "
        "network has no such child.",
    )
    erase.add_argument("directory", metavar="DIR")
    erase.add_argument("--child", required=True, metavar="ID", help="the child's id")
    _ledger_flag(erase)
    erase.set_defaults(run=_erase)

    keys = commands.add_parser("keys", help="the channels' key-encryption keys and log keys")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    keys_init = keys_commands.add_parser(
        "init",
        help="make the key-encryption key file and the log key pair of each channel that has "
        "none (never overwrites)",
    )
    keys_init.add_argument("directory", metavar="DIR")
    keys_init.set_defaults(run=_keys_init)
    rotate = keys_commands.add_parser(
        "rotate",
        help="wrap a channel's data keys under a new key-encryption key, while serving",
        description="Make a new key-encryption key (KEK) for the channel, rewrap every data "
        "key under it, then make it the channel's KEK file; the old one is kept beside it "
        "(FILE.ID.old) until you delete it. A running server keeps serving throughout. An "
        "interrupted rotation is finished by running it again.",
    )
    rotate.add_argument("directory", metavar="DIR")
    rotate.add_argument("--channel", required=True, metavar="NAME")
    _ledger_flag(rotate)
    rotate.set_defaults(run=_keys_rotate)
    return parser


def _ledger_flag(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--ledger",
        default=os.environ.get("HEALTHLEDGER_LEDGER_URL"),
        help="the ledger URL serve uses for every channel, if it is given --ledger "
        "(env HEALTHLEDGER_LEDGER_URL)",
    )


def _serve(args: argparse.Namespace) -> int:
    if not args.network:
        raise UsageError("Say which network to serve: --network DIR (or HEALTHLEDGER_NETWORK).")
    if args.workers < 1:
        raise UsageError("--workers must be at least 1.")
    health_port = (
        args.health_port
        if args.health_port is not None
        else _int_from_environment("HEALTHLEDGER_HEALTH_PORT")
    )
    for flag, port in (("--port", args.port), ("--health-port", health_port)):
        if port is not None and not 0 <= port < 65536:
            raise UsageError(f"{flag} must be between 0 (any free port) and 65535.")
    if health_port == 0 and args.workers > 1:
        raise UsageError(
            "--health-port 0 needs --workers 1: each worker binds the health port itself, "
            "so each would get a different one. Give a port number."
        )
    network = load_network(args.network)
    ledger_url = resolve_ledger_url(args.ledger, Path.cwd()) if args.ledger else None
    host = args.host or network.server.host
    port = args.port if args.port is not None else network.server.port
    health = HealthAddress(args.health_host, health_port) if health_port is not None else None
    manifest = Path(args.persisted_operations).resolve() if args.persisted_operations else None
    # Found here, a bad setting is one line and exit 2, not a traceback in a worker.
    preflight.check_serve(
        network,
        [ledger_url or network.ledger_url(channel) for channel in network.channels],
        host,
        port,
        health,
        ledger_url=ledger_url,
        persisted_only=args.persisted_only,
        persisted_operations=manifest,
    )
    from .server import serve

    serve(
        args.network,
        ledger_url=ledger_url,
        host=host,
        port=port,
        workers=args.workers,
        health=health,
        persisted_only=args.persisted_only,
        persisted_operations=manifest,
    )
    return EXIT_OK


def _int_from_environment(name: str) -> int | None:
    value = os.environ.get(name)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{name} must be a port number, not {value!r}.") from None


def _demo(args: argparse.Namespace) -> int:
    from devkit.demo import run_demo

    return EXIT_OK if run_demo(keep=args.keep) else EXIT_FAILED


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
        f"  channel KEKs       {target / 'keys'} (without them nothing stored can be read: "
        "back them up apart from the ledger)"
    )
    print(
        f"  channel log keys   {target / 'log'} (they sign the channels' checkpoints: back up "
        "the .key files; give the .pub files to whoever checks them)"
    )
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


def _network_renew_crl(args: argparse.Namespace) -> int:
    orgs = [args.org] if args.org else [org.id for org in load_network(args.directory).orgs]
    for org in orgs:
        number = provision.renew_crl(args.directory, org=org)
        print(f"Renewed the CRL of {org} (number {number}); copy it to every serving host.")
    return EXIT_OK


def _revoke(args: argparse.Namespace) -> int:
    if provision.revoke(args.directory, org=args.org, uid=args.uid):
        print(f"Revoked {args.uid} of {args.org}; a running server refuses it within 5 seconds.")
    else:
        print(f"{args.uid} of {args.org} was already revoked.")
    return EXIT_OK


def _erase(args: argparse.Namespace) -> int:
    network = load_network(args.directory)
    ledger_url = resolve_ledger_url(args.ledger, Path.cwd()) if args.ledger else None
    # Nothing is created or changed before every ledger is found and every KEK opens them.
    _require_ledgers(network, ledger_url)
    preflight.check_keys(network, ledger_url)
    try:
        receipt = asyncio.run(_erase_as_server(network, ledger_url, args.child))
    except NotFoundError:
        print(
            f"healthledger: the network has no child {args.child!r}: nothing was erased.",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except RefusalError as exc:
        raise UsageError(str(exc)) from None
    channels = ", ".join(receipt["channels"])
    print(
        f"Erased child {receipt['childId']} at {receipt['erasedAt']}: its data keys are "
        f"destroyed and the erasure is recorded on {channels}."
    )
    return EXIT_OK


async def _erase_as_server(
    network: NetworkConfig, ledger_url: str | None, child: str
) -> ErasureReceipt:
    from chaincode.consent import SERVER

    from .services import Services

    services = Services.open(network, ledger_url)
    try:
        return await services.gateway.erase_child(SERVER, child, None)
    finally:
        await services.close()


def _require_ledgers(network: NetworkConfig, ledger_url: str | None) -> None:
    """Each channel's ledger exists (a mistyped --ledger must not become a new, empty one)."""
    for url in dict.fromkeys(ledger_url or network.ledger_url(c) for c in network.channels):
        try:
            open_store(url, create=False).close()
        except LedgerNotFoundError as exc:
            raise UsageError(
                f"There is no ledger at {exc.where}: pass the --ledger that serve uses "
                "(or fix network.toml)."
            ) from None


def _keys_init(args: argparse.Namespace) -> int:
    found = provision.make_missing_kek_files(args.directory)
    for channel, path in found.made.items():
        print(f"{channel}: made {path} (mode 0600); back it up apart from the ledger")
    for channel, path in found.present.items():
        print(f"{channel}: {path} is there already; left as it is")
    for channel, where in found.from_env.items():
        print(f"{channel}: its key-encryption key comes from {where}; nothing to write")
    logs = provision.make_missing_log_keys(args.directory)
    for channel, path in logs.made.items():
        print(
            f"{channel}: made the log key {path} (mode 0600) and its public key "
            f"{path.with_suffix('.pub')}; back the key up"
        )
    for channel, path in logs.present.items():
        print(f"{channel}: the log key {path} is there already; left as it is")
    for channel, path in logs.republished.items():
        print(f"{channel}: wrote the log public key {path} anew from the log key")
    return EXIT_OK


def _keys_rotate(args: argparse.Namespace) -> int:
    network = load_network(args.directory)
    channel = network.channel(args.channel).name
    ledger_url = resolve_ledger_url(args.ledger, Path.cwd()) if args.ledger else None
    source = network.kek_source(channel)
    if source.path is None:
        begin_rotation(source)  # refuses a KEK from a variable, saying what to do instead
    url, same_database = network.key_store_url(channel, ledger_url)
    if same_database:
        # A mistyped --ledger would be a new, empty key store: nothing rewrapped there, and
        # the real keys left to a KEK that the rotation then retires.
        _require_ledgers(network, url)
    store = open_key_store(url, same_database_as_ledger=same_database)
    try:
        # The KEKs at hand must open the stored keys before a new one is made.
        keyring = Keyring(channel, source, store)
        keyring.check()
        current, new = begin_rotation(source)
        # A running server looks for a new KEK file at most every DEFAULT_CACHE_SECONDS
        # before it makes a key: once it has, no new key is wrapped by the old KEK.
        print(
            f"{channel}: the new key-encryption key is {source.next_path}; waiting "
            f"{ROTATION_SETTLE_SECONDS:g} s for running servers to wrap new keys with it.",
            flush=True,
        )
        time.sleep(ROTATION_SETTLE_SECONDS)
        rewrapped = keyring.rotate(new)  # `new` joins the KEKs the keyring holds first
        kept = finish_rotation(source, current)
        # A key a server wrapped with the old KEK just before it saw the new one.
        rewrapped += keyring.rotate(new)
    finally:
        store.close()
    print(
        f"{channel}: rewrapped {rewrapped} data keys under the new key-encryption key "
        f"{new.id}, now {source.describe()}."
    )
    print(
        f"The old key-encryption key {current.id} is kept in {kept} (mode 0600): it opens "
        "key store backups made before this rotation; delete it when they are gone."
    )
    return EXIT_OK


def _prove(args: argparse.Namespace) -> int:
    old = args.old_checkpoint
    try:
        verified = verify_proof(
            proof=_read_file(args.proof),
            checkpoint=_read_file(args.checkpoint),
            key=_read_file(args.pubkey),
            old_checkpoint=None if old is None else _read_file(old),
        )
    except ProofInputsError as exc:
        raise UsageError(str(exc)) from None
    except ProofError as exc:
        print(f"not verified: {exc}")
        return EXIT_FAILED
    print(verified)
    return EXIT_OK


def _read_file(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{path} cannot be read: {exc.strerror}.") from None


def _verify(args: argparse.Namespace) -> int:
    collector.settle()  # a check makes objects by the million, most of them short-lived
    ok = verify_and_report(_verify_targets(args.network, args.ledger, args.channel))
    return EXIT_OK if ok else EXIT_FAILED


def _witness(args: argparse.Namespace) -> int:
    if args.interval <= 0:
        raise UsageError("--interval must be a positive number of seconds.")
    try:
        config = WitnessConfig.from_network(
            Path(args.network),
            org=args.org,
            uid=args.uid,
            server=args.server,
            state=Path(args.state),
            channels=args.channel or (),
        )
        return run_witness(
            config,
            once=args.once,
            interval=args.interval,
            say=lambda line: print(line, flush=True),
            warn=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except CannotWitnessError as exc:
        raise UsageError(str(exc)) from None


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
    names = stored_channels(ledger_url)
    if not names:
        shown = redacted_url(ledger_url)
        print(f"The ledger at {shown} has no channels yet: nothing to verify.")
    return [ChannelTarget(name, ledger_url) for name in names]


if __name__ == "__main__":
    sys.exit(main())
