"""What `serve` checks before it starts: certificates, ledgers, keys, log keys, persisted
operations, ports.

Each check raises `CannotServeError` with one sentence that says what to fix, so a
misconfigured server ends with exit code 2 and that line instead of a
traceback from inside uvicorn or a worker process.
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509

from authz.network import NetworkConfig
from authz.tls_context import server_ssl_context
from checkpoints.log_keys import LogKeyError, load_log_keys
from encryption.keks import KekError
from encryption.keyring import Keyring
from ledger_backends import LedgerError, open_store
from ledger_backends.keystores import KeyStore, open_key_store
from ledger_backends.urls import redacted_url, scrubbed

from .health import HealthAddress
from .persisted_operations import ManifestError, PersistedOperations


class CannotServeError(Exception):
    """The server cannot start as configured; the message says what to fix."""


def check_certificates(network: NetworkConfig) -> None:
    """Every organisation CA and CRL file exists and parses; the server certificate loads."""
    for org in network.orgs:
        for path, load, kind, what in (
            (org.ca, x509.load_pem_x509_certificate, "certificate", "CA certificate"),
            (org.crl, x509.load_pem_x509_crl, "CRL", "CRL"),
        ):
            _require_file(path, f"the {what} of organisation {org.id!r}")
            try:
                load(path.read_bytes())
            except ValueError:
                raise CannotServeError(
                    f"{path} is not a PEM {kind}: restore the {what} of {org.id!r}."
                ) from None
    _require_file(network.server.cert, "the server TLS certificate (server.cert)")
    _require_file(network.server.key, "the server TLS key (server.key)")
    try:
        server_ssl_context(network)
    except (ssl.SSLError, ValueError) as exc:
        raise CannotServeError(
            f"The server certificate {network.server.cert} and key {network.server.key} "
            f"cannot be used for TLS ({exc}): give a matching PEM certificate and key."
        ) from None


def check_ledgers(urls: Iterable[str]) -> None:
    """Each distinct ledger URL opens and answers."""
    for url in dict.fromkeys(urls):
        try:
            store = open_store(url)
            try:
                store.ping()
            finally:
                store.close()
        except LedgerError as exc:
            # Credentials never reach the message, whether from the URL or the driver's text.
            raise CannotServeError(
                f"The ledger at {redacted_url(url)} cannot be used ({scrubbed(str(exc), url)}): "
                "start it, or fix the URL in network.toml [ledger] url / the channel's ledger, "
                "or --ledger."
            ) from None


def check_keys(network: NetworkConfig, ledger_url: str | None = None) -> None:
    """Each channel's key-encryption key loads and opens the data keys already stored.

    A server started without its KEK, or with another one, could neither read what is
    stored nor should it seal anything new: it would answer every read with garbage or
    errors. `ledger_url` is serve's --ledger, where the keys live unless network.toml
    names a key store.
    """
    stores: dict[str, KeyStore] = {}
    try:
        for channel in network.channels:
            url, same_database = network.key_store_url(channel.name, ledger_url)
            try:
                if url not in stores:
                    stores[url] = open_key_store(url, same_database_as_ledger=same_database)
                # The keyring loads the KEK at once; check() opens the keys stored.
                Keyring(channel.name, network.kek_source(channel.name), stores[url]).check()
            except KekError as exc:
                raise CannotServeError(str(exc)) from None
            except LedgerError as exc:
                raise CannotServeError(
                    f"The key store of channel {channel.name} at {redacted_url(url)} cannot be "
                    f"used ({scrubbed(str(exc), url)}): start it, or fix [channels.keys] url "
                    "in network.toml."
                ) from None
    finally:
        for store in stores.values():
            store.close()


def check_log_keys(network: NetworkConfig) -> None:
    """Each channel's log key loads and matches its published `log/CHANNEL.pub`.

    A server without its log keys could not sign a checkpoint; one with a key other than
    the published one would sign checkpoints no witness accepts.
    """
    try:
        load_log_keys(network.directory, network.network_id, [c.name for c in network.channels])
    except LogKeyError as exc:
        raise CannotServeError(str(exc)) from None


def check_persisted_operations(path: Path | None, *, registered_only: bool) -> None:
    """The manifest the server will load (if any) is usable; in registered-only mode it
    exists and every operation in it fits the schema."""
    from .schema import schema  # built only when serve starts, not for every command

    try:
        PersistedOperations.from_manifest(
            path, registered_only=registered_only, schema=schema._schema
        )
    except ManifestError as exc:
        raise CannotServeError(str(exc)) from None


def check_port_free(host: str, port: int, what: str) -> None:
    """The address can be bound now (it is released again at once)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except socket.gaierror:
        raise CannotServeError(f"{host!r} is not an address this machine can listen on.") from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise CannotServeError(
                f"Port {port} on {host} ({what}) is already in use: stop the other "
                "server or choose another port."
            ) from None
        raise CannotServeError(
            f"Cannot listen on {host}:{port} ({what}): {exc.strerror}."
        ) from None


def check_serve(
    network: NetworkConfig,
    ledger_urls: Iterable[str],
    host: str,
    port: int,
    health: HealthAddress | None,
    *,
    ledger_url: str | None = None,
    persisted_only: bool = False,
    persisted_operations: Path | None = None,
) -> None:
    """All of the above, in the order an operator would fix them (`ledger_url`: --ledger)."""
    check_certificates(network)
    check_ledgers(ledger_urls)
    check_keys(network, ledger_url)
    check_log_keys(network)
    check_persisted_operations(persisted_operations, registered_only=persisted_only)
    check_port_free(host, port, "the API")
    if health is not None:
        if health.port == port != 0:
            raise CannotServeError("The health port must differ from the API port.")
        check_port_free(health.host, health.port, "the health port")


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise CannotServeError(f"{path} does not exist: it should hold {what}; check network.toml.")
