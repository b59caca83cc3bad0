"""From a client certificate to an Identity, or a refusal with the reason.

A certificate is accepted only if it is a leaf directly issued by exactly one
organisation CA of the network, is inside its validity period, has EKU
clientAuth, carries a UID and a role that fits its organisation's kind, and is
not on that CA's CRL. Its UID must have the syntax `enroll` gives UIDs and its
display name (the common name) must be one clean line, whoever signed it.

CRL files are re-read when they change (checked at most once a second), so a
revocation takes effect on a running server without a restart. CRLs only move
forward: one numbered below the newest accepted for its organisation is refused
and the newer list stays in force, so an old list put back undoes no revocation.
A CRL past its next-update (plus the configured grace) refuses its
organisation's certificates, as does an unreadable or wrongly signed one.
Verified certificates are cached by their bytes: the per-request cost is a
dictionary lookup, clock comparisons and a set lookup for revocation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from domain.errors import UnauthenticatedError

from .ca import FABRIC_ATTRS_OID, crl_number
from .network import NetworkConfig, OrgConfig
from .roles import Role, role_fits
from .uids import display_name_problem, is_uid

log = logging.getLogger("healthledger.identity")

CRL_RECHECK_SECONDS = 1.0
CACHE_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling, as proved by a verified client certificate."""

    uid: str
    msp: str
    org: str
    org_kind: str
    role: Role
    name: str | None
    fingerprint: str
    attributes: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


@dataclass
class _Trust:
    """One organisation's CA certificate and the newest CRL accepted for it."""

    org: OrgConfig
    ca: x509.Certificate
    revoked: frozenset[int] = frozenset()
    # Why the organisation's certificates are refused whatever they are (a damaged CRL).
    crl_problem: str | None = None
    # The newest CRL Number accepted; -1 before any, so a CRL without a number (0) passes once.
    crl_number: int = -1
    # The CRL's next-update plus the grace period; after it, the organisation is refused.
    crl_expires: datetime | None = None
    expiry_logged: bool = False
    crl_stamp: tuple[int, int, int] | None = None


@dataclass(frozen=True, slots=True)
class _Verified:
    identity: Identity
    trust: _Trust
    serial: int
    not_before: datetime
    not_after: datetime


class IdentityVerifier:
    """Verifies client certificates against the network's organisation CAs and CRLs."""

    def __init__(
        self,
        orgs: Sequence[OrgConfig],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        crl_recheck_seconds: float = CRL_RECHECK_SECONDS,
        crl_grace: timedelta = timedelta(0),
    ) -> None:
        self._clock = clock
        self._recheck = crl_recheck_seconds
        self._grace = crl_grace
        self._trusts = [
            _Trust(org, x509.load_pem_x509_certificate(org.ca.read_bytes())) for org in orgs
        ]
        self._cache: dict[bytes, _Verified] = {}
        self._lock = threading.Lock()
        self._next_crl_check = 0.0
        self._refresh_crls(force=True)

    @classmethod
    def from_network(
        cls, network: NetworkConfig, *, crl_recheck_seconds: float = CRL_RECHECK_SECONDS
    ) -> IdentityVerifier:
        return cls(
            network.orgs,
            crl_recheck_seconds=crl_recheck_seconds,
            crl_grace=timedelta(days=network.server.crl_grace_days),
        )

    def identify(self, der: bytes) -> Identity:
        """The Identity a DER certificate proves; raises UnauthenticatedError with the reason."""
        if time.monotonic() >= self._next_crl_check:
            self._refresh_crls()
        # Keyed by the certificate bytes: a connection hands the same object to each request,
        # and bytes cache their hash, so a hit costs no hashing of the certificate at all.
        verified = self._cache.get(der)
        if verified is None:
            verified = self._verify(der, hashlib.sha256(der).hexdigest())
            with self._lock:
                if len(self._cache) >= CACHE_LIMIT:
                    self._cache.clear()
                self._cache[der] = verified
        now = self._clock()
        if now < verified.not_before:
            raise UnauthenticatedError("The client certificate is not valid yet.")
        if now > verified.not_after:
            raise UnauthenticatedError("The client certificate has expired.")
        trust = verified.trust
        if trust.crl_problem is not None:
            raise UnauthenticatedError(trust.crl_problem)
        if trust.crl_expires is not None and now > trust.crl_expires:
            self._refuse_expired(trust)
        if verified.serial in trust.revoked:
            raise UnauthenticatedError("The client certificate has been revoked.")
        return verified.identity

    def _verify(self, der: bytes, fingerprint: str) -> _Verified:
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            raise UnauthenticatedError("The client certificate cannot be read.") from None
        issuers = [trust for trust in self._trusts if _issued_by(cert, trust.ca)]
        if len(issuers) != 1:
            raise UnauthenticatedError(
                "The client certificate was not issued by an organisation of this network."
            )
        trust = issuers[0]
        extensions = cert.extensions
        constraints = _extension(extensions, x509.BasicConstraints)
        if constraints is not None and constraints.ca:
            raise UnauthenticatedError("A CA certificate cannot be used as a client certificate.")
        usages = _extension(extensions, x509.ExtendedKeyUsage)
        if usages is None or ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
            raise UnauthenticatedError("The certificate is not meant for client authentication.")
        uid = _single_attribute(cert.subject, NameOID.USER_ID)
        if not uid:
            raise UnauthenticatedError("The client certificate carries no UID.")
        if not is_uid(uid):
            raise UnauthenticatedError("The client certificate's UID is not a valid UID.")
        name = _single_attribute(cert.subject, NameOID.COMMON_NAME)
        if name is not None and display_name_problem(name) is not None:
            raise UnauthenticatedError("The client certificate's name is not a valid display name.")
        attributes = fabric_attributes(cert)
        role = attributes.get("role", "")
        if not role_fits(role, trust.org.kind):
            raise UnauthenticatedError(
                f"The role {role or '(none)'!r} does not fit organisation {trust.org.id!r}."
            )
        identity = Identity(
            uid=uid,
            msp=trust.org.msp,
            org=trust.org.id,
            org_kind=trust.org.kind,
            role=Role(role),
            name=name,
            fingerprint=fingerprint,
            attributes=attributes,
        )
        return _Verified(
            identity, trust, cert.serial_number, cert.not_valid_before_utc, cert.not_valid_after_utc
        )

    def _refresh_crls(self, *, force: bool = False) -> None:
        with self._lock:
            if not force and time.monotonic() < self._next_crl_check:
                return
            self._next_crl_check = time.monotonic() + self._recheck
            for trust in self._trusts:
                try:
                    stat = os.stat(trust.org.crl)
                except OSError:
                    stamp = None
                else:
                    stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
                if stamp == trust.crl_stamp and not force:
                    continue
                trust.crl_stamp = stamp
                self._read_crl(trust)

    def _read_crl(self, trust: _Trust) -> None:
        """Take the CRL file into `trust` if it is sound and not older than the one in force."""
        org = trust.org.id
        damaged = (
            f"The revocation list of {org!r} cannot be trusted; "
            "its certificates are refused until it is fixed."
        )
        try:
            crl = x509.load_pem_x509_crl(trust.org.crl.read_bytes())
        except (OSError, ValueError) as exc:
            log.error("The CRL of %s cannot be read (%s); refusing its certificates.", org, exc)
            trust.crl_problem = damaged
            return
        public_key = trust.ca.public_key()
        if crl.issuer != trust.ca.subject or not crl.is_signature_valid(public_key):  # type: ignore[arg-type]
            log.error("The CRL of %s is not signed by its CA; refusing its certificates.", org)
            trust.crl_problem = damaged
            return
        number = crl_number(crl)
        # The newest list accepted stays in force, even over a damaged file read meanwhile.
        trust.crl_problem = None
        if number < trust.crl_number:
            log.error(
                "The CRL of %s has number %d, older than number %d already in force; "
                "refused, the newer list stays in force.",
                org,
                number,
                trust.crl_number,
            )
            return
        trust.crl_number = number
        trust.revoked = frozenset(entry.serial_number for entry in crl)
        next_update = crl.next_update_utc
        trust.crl_expires = None if next_update is None else next_update + self._grace
        trust.expiry_logged = False

    def _refuse_expired(self, trust: _Trust) -> None:
        org = trust.org.id
        if not trust.expiry_logged:
            trust.expiry_logged = True
            log.error(
                "The CRL of %s is past its next-update time (and any grace); refusing its "
                "certificates until it is re-signed.",
                org,
            )
        raise UnauthenticatedError(
            f"The revocation list of {org!r} is past its next-update time; its certificates "
            "are refused until it is re-signed (healthledger network renew-crl)."
        )


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    if cert.issuer != ca.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


_E = TypeVar("_E", bound=x509.ExtensionType)


def _extension(extensions: x509.Extensions, kind: type[_E]) -> _E | None:
    try:
        return extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _single_attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    if len(values) != 1:
        return None
    value = values[0].value
    return value if isinstance(value, str) and value else None


def fabric_attributes(cert: x509.Certificate) -> dict[str, str]:
    try:
        raw = cert.extensions.get_extension_for_oid(FABRIC_ATTRS_OID).value
    except x509.ExtensionNotFound:
        return {}
    try:
        attrs = json.loads(raw.value, object_pairs_hook=_unique_keys)["attrs"]  # type: ignore[attr-defined]
    except (ValueError, KeyError, TypeError):
        return {}
    if not isinstance(attrs, dict):
        return {}
    return {str(k): v for k, v in attrs.items() if isinstance(v, str)}


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object, refused (as malformed) if a key repeats: readers may differ on which wins."""
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("A key repeats in the attribute JSON.")
    return dict(pairs)
