"""From a client certificate to an Identity, or a refusal with the reason.

A certificate is accepted only if it is a leaf directly issued by exactly one
organisation CA of the network, is inside its validity period, has EKU
clientAuth, carries a UID and a role that fits its organisation's kind, and is
not on that CA's CRL. CRL files are re-read when they change (checked at most
once a second), so a revocation takes effect on a running server without a
restart. Verified certificates are cached by their bytes: the per-request cost
is a dictionary lookup, a clock comparison and a set lookup for revocation.
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
from datetime import UTC, datetime
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .ca import FABRIC_ATTRS_OID
from .errors import Unauthenticated
from .network import NetworkConfig, OrgConfig
from .roles import Role, role_fits

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
    """One organisation's CA certificate and the serials its CRL revokes."""

    org: OrgConfig
    ca: x509.Certificate
    revoked: frozenset[int] = frozenset()
    crl_usable: bool = True
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
    ) -> None:
        self._clock = clock
        self._recheck = crl_recheck_seconds
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
        return cls(network.orgs, crl_recheck_seconds=crl_recheck_seconds)

    @property
    def ca_certificates(self) -> list[x509.Certificate]:
        return [trust.ca for trust in self._trusts]

    def identify(self, der: bytes) -> Identity:
        """The Identity a DER certificate proves; raises Unauthenticated with the reason."""
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
            raise Unauthenticated("The client certificate is not valid yet.")
        if now > verified.not_after:
            raise Unauthenticated("The client certificate has expired.")
        if not verified.trust.crl_usable:
            raise Unauthenticated(
                f"The revocation list of {verified.trust.org.id!r} cannot be trusted; "
                "its certificates are refused until it is fixed."
            )
        if verified.serial in verified.trust.revoked:
            raise Unauthenticated("The client certificate has been revoked.")
        return verified.identity

    def _verify(self, der: bytes, fingerprint: str) -> _Verified:
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            raise Unauthenticated("The client certificate cannot be read.") from None
        issuers = [trust for trust in self._trusts if _issued_by(cert, trust.ca)]
        if len(issuers) != 1:
            raise Unauthenticated(
                "The client certificate was not issued by an organisation of this network."
            )
        trust = issuers[0]
        extensions = cert.extensions
        constraints = _extension(extensions, x509.BasicConstraints)
        if constraints is not None and constraints.ca:
            raise Unauthenticated("A CA certificate cannot be used as a client certificate.")
        usages = _extension(extensions, x509.ExtendedKeyUsage)
        if usages is None or ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
            raise Unauthenticated("The certificate is not meant for client authentication.")
        uid = _single_attribute(cert.subject, NameOID.USER_ID)
        if not uid:
            raise Unauthenticated("The client certificate carries no UID.")
        attributes = fabric_attributes(cert)
        role = attributes.get("role", "")
        if not role_fits(role, trust.org.kind):
            raise Unauthenticated(
                f"The role {role or '(none)'!r} does not fit organisation {trust.org.id!r}."
            )
        identity = Identity(
            uid=uid,
            msp=trust.org.msp,
            org=trust.org.id,
            org_kind=trust.org.kind,
            role=Role(role),
            name=_single_attribute(cert.subject, NameOID.COMMON_NAME),
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
                trust.revoked, trust.crl_usable = _read_crl(trust)


def _read_crl(trust: _Trust) -> tuple[frozenset[int], bool]:
    """The revoked serials, and whether the CRL can be trusted (fail closed if not)."""
    try:
        crl = x509.load_pem_x509_crl(trust.org.crl.read_bytes())
    except (OSError, ValueError) as exc:
        log.error(
            "The CRL of %s cannot be read (%s); refusing its certificates.", trust.org.id, exc
        )
        return frozenset(), False
    public_key = trust.ca.public_key()
    if crl.issuer != trust.ca.subject or not crl.is_signature_valid(public_key):  # type: ignore[arg-type]
        log.error("The CRL of %s is not signed by its CA; refusing its certificates.", trust.org.id)
        return frozenset(), False
    next_update = crl.next_update_utc
    if next_update is not None and next_update < datetime.now(UTC):
        log.warning("The CRL of %s is past its next-update time; re-sign it.", trust.org.id)
    return frozenset(entry.serial_number for entry in crl), True


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
        attrs = json.loads(raw.value)["attrs"]  # type: ignore[attr-defined]
    except (ValueError, KeyError, TypeError):
        return {}
    if not isinstance(attrs, dict):
        return {}
    return {str(k): v for k, v in attrs.items() if isinstance(v, str)}
