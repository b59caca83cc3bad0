"""Making and changing a network directory: `network init`, `enroll` and `revoke`.

Layout (relative to DIR): network.toml; orgs/ORG/{ca.pem, ca.key, crl.pem};
tls/{ca.pem, ca.key, server.pem, server.key}; users/ORG/UID.{pem, key, p12};
keys/CHANNEL.kek (each channel's key-encryption key, in a directory of mode 0700);
log/CHANNEL.{key, pub} (each channel's log signing key and its verifier key, checkpoints
package; the directory mode 0700). Private keys are written with mode 0600.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from checkpoints import log_keys
from domain.consent import EMERGENCY_MINUTES, REPORT_PERMISSION_DAYS
from encryption.keks import Kek, KekError, write_kek_file

from . import ca
from .network import CONFIG_FILE, NetworkConfig, OrgConfig, load_network
from .roles import Role, role_fits
from .uids import UID_RULE, display_name_problem, is_uid

DEFAULT_SCHOOLS = ("school-a", "school-b")
NETWORK_ID_HEX_DIGITS = 12
_ORG_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


class ProvisionError(ValueError):
    """The network directory cannot be made or changed as asked; the message says why."""


@dataclass(frozen=True)
class Enrollment:
    cert: Path
    key: Path
    p12: Path | None


def msp_id(org_id: str) -> str:
    """`school-a` -> `SchoolAMSP`, `hospital` -> `HospitalMSP`."""
    return "".join(part.capitalize() for part in org_id.split("-")) + "MSP"


def init_network(directory: str | Path, schools: list[str] | None = None) -> Path:
    """Create a complete new network in `directory`; refuses to touch an existing one."""
    target = Path(directory).resolve()
    school_ids = list(schools or DEFAULT_SCHOOLS)
    for school in school_ids:
        if not _ORG_ID.fullmatch(school) or school in ("hospital", "parents"):
            raise ProvisionError(
                f"{school!r} cannot be a school id: use lower-case letters, digits and '-', "
                "other than 'hospital' and 'parents'."
            )
    if len(set(school_ids)) != len(school_ids):
        raise ProvisionError("Each school id may be given only once.")
    if (target / CONFIG_FILE).exists() or (target.exists() and any(target.iterdir())):
        raise ProvisionError(f"{target} already holds files; a network is never overwritten.")
    # An existing empty directory may be a mount point (a container volume), which cannot be
    # renamed onto: then the files are made in a hidden folder inside it and moved up.
    into_existing = target.is_dir()
    try:
        if not into_existing:
            target.parent.mkdir(parents=True, exist_ok=True)
        parent = target if into_existing else target.parent
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=parent))
    except OSError as exc:
        raise ProvisionError(f"Cannot create a network in {target}: {exc.strerror}.") from None
    moved: list[Path] = []
    try:
        _write_network(staging, school_ids)
        if into_existing:
            # network.toml goes last: a directory without it is never taken for a network.
            for name in ("orgs", "tls", "users", "keys", log_keys.LOG_DIRECTORY, CONFIG_FILE):
                os.replace(staging / name, target / name)
                moved.append(target / name)
            staging.rmdir()
        else:
            # rename(2) succeeds only onto a missing or empty directory: no overwrite race.
            os.replace(staging, target)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        for path in moved:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink()
        if isinstance(exc, OSError):
            raise ProvisionError(f"Cannot create a network in {target}: {exc}.") from None
        raise
    return target


def _write_network(staging: Path, school_ids: list[str]) -> None:
    """Every file of a new network (CAs, CRLs, server TLS, network.toml) under `staging`."""
    orgs = [("hospital", "hospital"), ("parents", "parents")]
    orgs += [(school, "school") for school in school_ids]
    for org_id, _ in orgs:
        authority = ca.create_authority(org_id, f"{org_id} CA")
        folder = staging / "orgs" / org_id
        _write(folder / "ca.pem", ca.cert_pem(authority.cert))
        _write(folder / "ca.key", ca.key_pem(authority.key), private=True)
        _write(folder / "crl.pem", ca.crl_pem(ca.empty_crl(authority)))
    tls = ca.create_authority("healthledger", "healthledger TLS CA")
    server_key, server_cert = ca.issue_server_certificate(tls, ["localhost"], ["127.0.0.1"])
    _write(staging / "tls" / "ca.pem", ca.cert_pem(tls.cert))
    _write(staging / "tls" / "ca.key", ca.key_pem(tls.key), private=True)
    _write(staging / "tls" / "server.pem", ca.cert_pem(server_cert))
    _write(staging / "tls" / "server.key", ca.key_pem(server_key), private=True)
    (staging / "users").mkdir()
    _write(staging / CONFIG_FILE, _network_toml(orgs).encode())
    make_missing_kek_files(staging)
    make_missing_log_keys(staging)
    staging.chmod(0o755)


@dataclass(frozen=True)
class KekFiles:
    """What `make_missing_kek_files` found, per channel: KEK files made, those already there,
    and channels whose KEK comes from an environment variable (nothing to write)."""

    made: dict[str, Path]
    present: dict[str, Path]
    from_env: dict[str, str]


def make_missing_kek_files(directory: str | Path) -> KekFiles:
    """Write a new random key-encryption key for each channel whose KEK file is missing.

    An existing KEK file is never overwritten, and neither is a missing one replaced while
    its `.next` file is there: a rotation was interrupted there, and its keys are wrapped
    by that next KEK (`healthledger keys rotate` finishes it).
    """
    network = load_network(directory)
    made: dict[str, Path] = {}
    present: dict[str, Path] = {}
    from_env: dict[str, str] = {}
    for channel in network.channels:
        source = network.kek_source(channel.name)
        if source.path is None:
            from_env[channel.name] = source.describe()
            continue
        pending = source.path.with_name(source.path.name + ".next")
        if source.path.exists() or pending.exists():
            present[channel.name] = source.path
            continue
        try:
            write_kek_file(source.path, Kek.generate())
        except KekError as exc:
            if source.path.exists():  # another process made it a moment ago: it stays
                present[channel.name] = source.path
                continue
            raise ProvisionError(str(exc)) from None
        except OSError as exc:
            raise ProvisionError(f"Cannot write {source.path}: {exc.strerror}.") from None
        made[channel.name] = source.path
    return KekFiles(made=made, present=present, from_env=from_env)


def make_missing_log_keys(directory: str | Path) -> log_keys.LogKeyFiles:
    """Make the log signing key pair of each channel that has none (never overwriting one),
    and write anew a channel's `log/CHANNEL.pub` that is missing or does not match its key
    and the network's id (checkpoints.log_keys)."""
    network = load_network(directory)
    try:
        return log_keys.make_missing_log_keys(
            network.directory, network.network_id, [channel.name for channel in network.channels]
        )
    except log_keys.LogKeyError as exc:
        raise ProvisionError(str(exc)) from None


def enroll(
    directory: str | Path,
    *,
    org: str,
    uid: str,
    role: str,
    name: str | None = None,
    p12_password: str | None = None,
) -> Enrollment:
    """Issue a client certificate for a new user of `org` and write it under users/ORG/."""
    network = load_network(directory)
    org_config = _org(network, org)
    if not is_uid(uid):
        raise ProvisionError(f"{uid!r} cannot be a UID: use {UID_RULE}.")
    if role not in {r.value for r in Role}:
        raise ProvisionError(f"Unknown role {role!r}; use one of doctor, parent, school, admin.")
    if not role_fits(role, org_config.kind):
        raise ProvisionError(
            f"A {role} cannot belong to {org!r}, which is a {org_config.kind} organisation."
        )
    taken = sorted(network.directory.glob(f"users/*/{uid}.pem"))
    if taken:
        raise ProvisionError(f"UID {uid!r} is already enrolled ({taken[0].parent.name}).")
    if name is not None:
        name = _display_name(name)
    authority = _authority(org_config)
    key, cert = ca.issue_client_certificate(authority, org=org, uid=uid, role=role, name=name)
    folder = network.directory / "users" / org
    paths = Enrollment(folder / f"{uid}.pem", folder / f"{uid}.key", None)
    _write(paths.key, ca.key_pem(key), private=True)
    _write(paths.cert, ca.cert_pem(cert))
    if p12_password is not None:
        p12 = folder / f"{uid}.p12"
        _write(p12, ca.pkcs12_bundle(uid, key, cert, authority.cert, p12_password), private=True)
        paths = Enrollment(paths.cert, paths.key, p12)
    return paths


def revoke(directory: str | Path, *, org: str, uid: str) -> bool:
    """Add the user's certificate to `org`'s CRL; False if it was revoked already.

    Either way the CRL is signed anew with the next CRL Number and a next-update 30 days
    ahead, so revoking an already revoked user is how a CRL near its next-update is renewed.
    """
    network = load_network(directory)
    org_config = _org(network, org)
    cert_path = network.directory / "users" / org / f"{uid}.pem"
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except FileNotFoundError:
        raise ProvisionError(f"No user {uid!r} is enrolled in {org!r}.") from None
    previous = x509.load_pem_x509_crl(org_config.crl.read_bytes())
    listed = previous.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    crl = ca.revoke_serials(_authority(org_config), [cert.serial_number], previous=previous)
    _write(org_config.crl, ca.crl_pem(crl))
    return not listed


def renew_crl(directory: str | Path, *, org: str) -> int:
    """Sign `org`'s CRL anew (same entries, the next CRL Number, next-update 30 days ahead).

    A server refuses every certificate of an organisation whose CRL is past its
    next-update, so each CRL is renewed before then (a cron job, or `make run` for the
    development network). Returns the new CRL Number.
    """
    org_config = _org(load_network(directory), org)
    previous = x509.load_pem_x509_crl(org_config.crl.read_bytes())
    crl = ca.revoke_serials(_authority(org_config), [], previous=previous)
    _write(org_config.crl, ca.crl_pem(crl))
    return ca.crl_number(crl)


def _display_name(name: str) -> str:
    """The name trimmed, if it is one line of 1 to 64 characters without control characters
    or bidirectional formatting characters (the rule for names in the contracts)."""
    trimmed = name.strip()
    problem = display_name_problem(trimmed)
    if problem is not None:
        raise ProvisionError(f"The name {problem}.")
    return trimmed


def _org(network: NetworkConfig, org: str) -> OrgConfig:
    for candidate in network.orgs:
        if candidate.id == org:
            return candidate
    known = ", ".join(o.id for o in network.orgs)
    raise ProvisionError(f"The network has no organisation {org!r} (it has: {known}).")


def _authority(org: OrgConfig) -> ca.Authority:
    try:
        return ca.load_authority(org.ca.read_bytes(), org.ca.with_name("ca.key").read_bytes())
    except FileNotFoundError as exc:
        raise ProvisionError(f"The CA of {org.id!r} is missing: {exc.filename}.") from None


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        os.fchmod(fd, 0o600 if private else 0o644)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _network_toml(orgs: list[tuple[str, str]]) -> str:
    network_id = "hl-" + secrets.token_hex(NETWORK_ID_HEX_DIGITS // 2)
    members = ", ".join(f'"{org_id}"' for org_id, _ in orgs)
    org_tables = "".join(
        f"""
[[orgs]]
id = "{org_id}"
msp = "{msp_id(org_id)}"
kind = "{kind}"
ca = "orgs/{org_id}/ca.pem"
crl = "orgs/{org_id}/crl.pem"
"""
        for org_id, kind in orgs
    )
    return f"""# healthledger network: organisations, channels and where their ledgers live.

[network]
id = "{network_id}"  # names the network in its checkpoints (healthledger/ID/CHANNEL); keep it

[server]
host = "127.0.0.1"
port = 8443
cert = "tls/server.pem"
key = "tls/server.key"
client_cert_header = ""      # e.g. "x-forwarded-client-cert" behind nginx/Envoy
trusted_proxies = []         # only these peer addresses may send that header

[ledger]
url = "sqlite:///ledger.db"  # relative paths are relative to this file
batch_timeout_ms = 2
max_batch = 500

[consent]
report_permission_days = {REPORT_PERMISSION_DAYS}  # unless the approving guardian names an end
emergency_minutes = {EMERGENCY_MINUTES}
{org_tables}
[[channels]]
name = "medical"
members = ["hospital", "parents"]
# [channels.keys]                # where the channel's data keys are, and what wraps them:
# url = "sqlite:///keys.db"      # the key store (default: the channel's ledger)
# kek_file = "keys/medical.kek"  # its key-encryption key (the default), or instead
# kek_env = "MEDICAL_KEK"        # from an environment variable

[[channels]]
name = "report"
members = [{members}]
"""
