"""The network description (`network.toml`): server, ledger, consent, organisations, channels.

Relative paths and relative SQLite ledger URLs are resolved against the
directory holding the file, so a network directory can be moved whole.

Each channel may say where its data keys live and which key-encryption key (KEK) wraps
them, in a `[channels.keys]` table right after its `[[channels]]` entry:

    [channels.keys]
    url = "sqlite:///keys.db"     # the key store; default: the channel's ledger URL
    kek_file = "keys/medical.kek"  # default keys/CHANNEL.kek; or instead:
    kek_env = "MEDICAL_KEK"        # the KEK from this environment variable

The network's id (`[network] id`) names it in its logs' checkpoints
(`healthledger/ID/CHANNEL`); a network without one is named after its CA certificates.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from domain.consent import EMERGENCY_MINUTES, REPORT_PERMISSION_DAYS
from encryption.keks import KekSource

CONFIG_FILE = "network.toml"
DEFAULT_LEDGER_URL = "sqlite:///ledger.db"
ORG_KINDS = ("hospital", "parents", "school")
# Inclusive ranges: a batch window beyond one second (or NaN) would stall every write, and a
# batch beyond 10,000 transactions would hold the write lock for longer than that.
PORT_RANGE = (1, 65535)
BATCH_TIMEOUT_MS_RANGE = (0, 1000)
MAX_BATCH_RANGE = (1, 10_000)
CRL_GRACE_DAYS_RANGE = (0, 365)
# Per certificate identity, per worker process: enough for a family's tabs and devices, and
# far below the 20,000 subscriptions one parent once opened.
MAX_WEBSOCKETS_PER_IDENTITY_RANGE = (1, 1000)
MAX_SUBSCRIPTIONS_PER_IDENTITY_RANGE = (1, 10_000)
# TLS handshakes not yet finished, per client address and worker (a proxy in front is one address).
MAX_HANDSHAKES_PER_ADDRESS_RANGE = (1, 10_000)
# A permission from one day to ten years; an emergency access from one minute to one day.
REPORT_PERMISSION_DAYS_RANGE = (1, 3650)
EMERGENCY_MINUTES_RANGE = (1, 1440)
# Where a channel's KEK file is unless [channels.keys] says otherwise (NAME: the channel's).
DEFAULT_KEK_FILE = "keys/{name}.kek"
KEYS_SETTINGS = frozenset({"url", "kek_file", "kek_env"})
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A network id is the middle of every checkpoint origin, `healthledger/ID/CHANNEL`.
NETWORK_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
DERIVED_ID_PREFIX = "hl-"
DERIVED_ID_HEX_DIGITS = 12


# A channel name is part of store keys (Redis: PREFIX:CHANNEL:state); the key store's hashes
# are PREFIX:keys:CHANNEL, so no channel may be called "keys".
CHANNEL_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")
RESERVED_CHANNEL_NAMES = frozenset({"keys"})


class NetworkConfigError(ValueError):
    """network.toml is missing or says something that cannot work; the message says what."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str
    port: int
    cert: Path
    key: Path
    client_cert_header: str
    trusted_proxies: tuple[str, ...]
    # Days a CRL past its next-update is still used; 0 refuses its organisation at once.
    crl_grace_days: int = 0
    # Open websockets, and operations running over them, per (organisation, UID) and worker.
    max_websockets_per_identity: int = 8
    max_subscriptions_per_identity: int = 32
    # TLS handshakes under way per client address and worker; more are dropped unanswered.
    max_handshakes_per_address: int = 16


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    url: str
    batch_timeout_ms: float
    max_batch: int


@dataclass(frozen=True, slots=True)
class ConsentConfig:
    """How long consents last; the contracts are built with these (api.services)."""

    # A school's permission to read a report, when the guardian approving it names no end.
    report_permission_days: int = REPORT_PERMISSION_DAYS
    # An emergency access to a child's card.
    emergency_minutes: int = EMERGENCY_MINUTES


@dataclass(frozen=True, slots=True)
class OrgConfig:
    id: str
    msp: str
    kind: str
    ca: Path
    crl: Path


@dataclass(frozen=True, slots=True)
class KeysConfig:
    """Where a channel's data keys are stored and where its key-encryption key comes from.

    `url` None: the key store is the channel's ledger (its database, its durability).
    Exactly one of `kek_file` (absolute) and `kek_env` is set.
    """

    url: str | None
    kek_file: Path | None
    kek_env: str | None


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    name: str
    members: tuple[str, ...]
    ledger_url: str | None
    keys: KeysConfig


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    directory: Path
    server: ServerConfig
    ledger: LedgerConfig
    orgs: tuple[OrgConfig, ...]
    channels: tuple[ChannelConfig, ...]
    consent: ConsentConfig
    # `[network] id`; None for a network made before `network init` wrote one.
    configured_id: str | None = None

    @property
    def network_id(self) -> str:
        """`[network] id`, or else "hl-" and the first 12 hex digits of SHA-256 over the
        organisations' CA certificates (DER, in order of organisation id, concatenated):
        the same for every copy of the network, and stable while its CAs are.

        NetworkConfigError if it must be derived and a CA certificate cannot be read.
        """
        if self.configured_id is not None:
            return self.configured_id
        digest = hashlib.sha256()
        for org in sorted(self.orgs, key=lambda org: org.id):
            try:
                cert = x509.load_pem_x509_certificate(org.ca.read_bytes())
            except (OSError, ValueError):
                raise NetworkConfigError(
                    f"The network id is derived from the organisations' CA certificates, and "
                    f"{org.ca} cannot be read as one: restore it, or set [network] id."
                ) from None
            digest.update(cert.public_bytes(Encoding.DER))
        return DERIVED_ID_PREFIX + digest.hexdigest()[:DERIVED_ID_HEX_DIGITS]

    def channel(self, name: str) -> ChannelConfig:
        for channel in self.channels:
            if channel.name == name:
                return channel
        known = ", ".join(c.name for c in self.channels)
        raise NetworkConfigError(f"The network has no channel {name!r} (it has: {known}).")

    def ledger_url(self, channel: ChannelConfig) -> str:
        """The channel's own ledger URL if it names one, else the network's default."""
        return channel.ledger_url or self.ledger.url

    def kek_source(self, channel: str) -> KekSource:
        """Where the channel's key-encryption key is read from (a file or a variable)."""
        keys = self.channel(channel).keys
        if keys.kek_env is not None:
            return KekSource(channel=channel, env=keys.kek_env)
        return KekSource(channel=channel, path=keys.kek_file)

    def key_store_url(
        self, channel: str, ledger_url_override: str | None = None
    ) -> tuple[str, bool]:
        """The channel's key store URL, and whether it is the channel's ledger database.

        Without a `[channels.keys] url` the keys live beside the chain in the channel's
        ledger (`ledger_url_override`, like serve's --ledger, if given): then
        `same_database_as_ledger` is True, and the key store may leave flushing a new key
        to the ledger's next commit (ledger_backends.keystores).
        """
        config = self.channel(channel)
        ledger = ledger_url_override or self.ledger_url(config)
        url = config.keys.url or ledger
        return url, url == ledger


def load_network(directory: str | Path) -> NetworkConfig:
    """Read DIR/network.toml; raises NetworkConfigError with one clear sentence."""
    root = Path(directory).resolve()
    path = root / CONFIG_FILE
    try:
        with path.open("rb") as file:
            raw = tomllib.load(file)
    except FileNotFoundError:
        raise NetworkConfigError(
            f"No network at {str(root)!r}: {CONFIG_FILE} is missing "
            "(create one with 'healthledger network init DIR')."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise NetworkConfigError(f"{path} is not valid TOML: {exc}.") from None
    except OSError as exc:
        raise NetworkConfigError(f"{path} cannot be read: {exc.strerror}.") from None
    return _parse(root, raw)


def resolve_ledger_url(url: str, base: Path) -> str:
    """Make a relative `sqlite:///file.db` URL absolute against `base`; others are unchanged."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        relative = url[len(prefix) :]
        if relative and relative != ":memory:":
            return prefix + str(base / relative)
    return url


def _parse(root: Path, raw: dict[str, Any]) -> NetworkConfig:
    network_id = _table(raw, "network").get("id")
    if network_id is not None and (
        not isinstance(network_id, str) or not NETWORK_ID.fullmatch(network_id)
    ):
        raise NetworkConfigError(
            f"network.id must be 1 to 64 letters, digits, '-', '.' and '_', not {network_id!r}."
        )
    server = _table(raw, "server")
    ledger = _table(raw, "ledger")
    consent = _table(raw, "consent")
    orgs = tuple(_org(root, entry) for entry in _array(raw, "orgs"))
    _unique("organisation id", [org.id for org in orgs])
    _unique("MSP id", [org.msp for org in orgs])
    org_ids = {org.id for org in orgs}
    channels = tuple(_channel(root, entry, org_ids) for entry in _array(raw, "channels"))
    _unique("channel name", [channel.name for channel in channels])
    port = _number(server, "server.port", int, 8443, PORT_RANGE)
    batch_timeout = _number(
        ledger, "ledger.batch_timeout_ms", (int, float), 2, BATCH_TIMEOUT_MS_RANGE
    )
    max_batch = _number(ledger, "ledger.max_batch", int, 500, MAX_BATCH_RANGE)
    return NetworkConfig(
        directory=root,
        server=ServerConfig(
            host=_get(server, "server.host", str, "127.0.0.1"),
            port=port,
            cert=root / _get(server, "server.cert", str, "tls/server.pem"),
            key=root / _get(server, "server.key", str, "tls/server.key"),
            client_cert_header=_get(server, "server.client_cert_header", str, ""),
            trusted_proxies=tuple(_strings(server, "server.trusted_proxies")),
            crl_grace_days=_number(server, "server.crl_grace_days", int, 0, CRL_GRACE_DAYS_RANGE),
            max_websockets_per_identity=_number(
                server,
                "server.max_websockets_per_identity",
                int,
                8,
                MAX_WEBSOCKETS_PER_IDENTITY_RANGE,
            ),
            max_subscriptions_per_identity=_number(
                server,
                "server.max_subscriptions_per_identity",
                int,
                32,
                MAX_SUBSCRIPTIONS_PER_IDENTITY_RANGE,
            ),
            max_handshakes_per_address=_number(
                server,
                "server.max_handshakes_per_address",
                int,
                16,
                MAX_HANDSHAKES_PER_ADDRESS_RANGE,
            ),
        ),
        ledger=LedgerConfig(
            url=resolve_ledger_url(_get(ledger, "ledger.url", str, DEFAULT_LEDGER_URL), root),
            batch_timeout_ms=float(batch_timeout),
            max_batch=max_batch,
        ),
        orgs=orgs,
        channels=channels,
        consent=ConsentConfig(
            report_permission_days=_number(
                consent,
                "consent.report_permission_days",
                int,
                REPORT_PERMISSION_DAYS,
                REPORT_PERMISSION_DAYS_RANGE,
            ),
            emergency_minutes=_number(
                consent,
                "consent.emergency_minutes",
                int,
                EMERGENCY_MINUTES,
                EMERGENCY_MINUTES_RANGE,
            ),
        ),
        configured_id=network_id,
    )


def _org(root: Path, entry: dict[str, Any]) -> OrgConfig:
    org_id = _get(entry, "orgs.id", str, None)
    kind = _get(entry, f"orgs[{org_id}].kind", str, None)
    if kind not in ORG_KINDS:
        raise NetworkConfigError(
            f"Organisation {org_id!r} has kind {kind!r}; use one of {', '.join(ORG_KINDS)}."
        )
    return OrgConfig(
        id=org_id,
        msp=_get(entry, f"orgs[{org_id}].msp", str, None),
        kind=kind,
        ca=root / _get(entry, f"orgs[{org_id}].ca", str, f"orgs/{org_id}/ca.pem"),
        crl=root / _get(entry, f"orgs[{org_id}].crl", str, f"orgs/{org_id}/crl.pem"),
    )


def _channel(root: Path, entry: dict[str, Any], org_ids: set[str]) -> ChannelConfig:
    name = _get(entry, "channels.name", str, None)
    if not CHANNEL_NAME.fullmatch(name) or name in RESERVED_CHANNEL_NAMES:
        raise NetworkConfigError(
            f"Channel name {name!r} must be lower-case letters, digits and hyphens, starting "
            f"with a letter, and not {', '.join(sorted(RESERVED_CHANNEL_NAMES))}."
        )
    members = tuple(_strings(entry, f"channels[{name}].members"))
    unknown = [member for member in members if member not in org_ids]
    if unknown or not members:
        raise NetworkConfigError(
            f"Channel {name!r} must list known organisations as members; "
            f"unknown: {', '.join(unknown) or 'none given'}."
        )
    override = entry.get("ledger")
    if override is not None and not isinstance(override, str):
        raise NetworkConfigError(f"channels[{name}].ledger must be a ledger URL string.")
    return ChannelConfig(
        name=name,
        members=members,
        ledger_url=resolve_ledger_url(override, root) if override else None,
        keys=_keys(root, name, entry.get("keys", {})),
    )


def _keys(root: Path, channel: str, table: Any) -> KeysConfig:
    """The channel's `[channels.keys]`; an unknown setting is refused, as a misspelt
    kek_env would otherwise leave the channel on a KEK file nobody meant."""
    label = f"channels[{channel}].keys"
    if not isinstance(table, dict):
        raise NetworkConfigError(f"{label} must be a table ([channels.keys]).")
    unknown = sorted(set(table) - KEYS_SETTINGS)
    if unknown:
        raise NetworkConfigError(
            f"{label} has unknown settings: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(KEYS_SETTINGS))})."
        )
    if "kek_file" in table and "kek_env" in table:
        raise NetworkConfigError(
            f"{label} gives both kek_file and kek_env: the key-encryption key comes from one."
        )
    url = table.get("url")
    if url is not None:
        url = resolve_ledger_url(_get(table, f"{label}.url", str, None), root)
    if "kek_env" in table:
        env = _get(table, f"{label}.kek_env", str, None)
        if not _ENV_NAME.fullmatch(env):
            raise NetworkConfigError(
                f"{label}.kek_env must name an environment variable "
                f"(letters, digits and _), not {env!r}."
            )
        return KeysConfig(url=url, kek_file=None, kek_env=env)
    kek_file = _get(table, f"{label}.kek_file", str, DEFAULT_KEK_FILE.format(name=channel))
    if not kek_file:
        raise NetworkConfigError(f"{label}.kek_file must name a file.")
    return KeysConfig(url=url, kek_file=root / kek_file, kek_env=None)


def _table(raw: dict[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise NetworkConfigError(f"[{name}] must be a table.")
    return value


def _array(raw: dict[str, Any], name: str) -> list[dict[str, Any]]:
    value = raw.get(name)
    if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
        raise NetworkConfigError(f"network.toml needs at least one [[{name}]] entry.")
    return value


def _get(table: dict[str, Any], label: str, kind: Any, default: Any) -> Any:
    name = label.rsplit(".", 1)[-1]
    value = table.get(name, default)
    if value is None:
        raise NetworkConfigError(f"{label} is required.")
    if not isinstance(value, kind) or isinstance(value, bool) or (value == "" and default is None):
        raise NetworkConfigError(f"{label} has the wrong type or is empty: {value!r}.")
    return value


def _number(
    table: dict[str, Any], label: str, kind: Any, default: Any, bounds: tuple[int, int]
) -> Any:
    """A numeric setting inside `bounds` (inclusive); NaN and infinities are outside any range."""
    value = _get(table, label, kind, default)
    low, high = bounds
    if not low <= value <= high:
        raise NetworkConfigError(f"{label} must be between {low} and {high}, not {value!r}.")
    return value


def _strings(table: dict[str, Any], label: str) -> list[str]:
    value = table.get(label.rsplit(".", 1)[-1], [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise NetworkConfigError(f"{label} must be a list of names.")
    return value


def _unique(what: str, values: list[str]) -> None:
    duplicates = sorted({v for v in values if values.count(v) > 1})
    if duplicates:
        raise NetworkConfigError(f"Each {what} must be unique; repeated: {', '.join(duplicates)}.")
