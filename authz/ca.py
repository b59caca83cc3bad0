"""Certificate authorities made with `cryptography` alone: CA, server and client certificates, CRLs.

Client certificates follow Fabric CA: the subject carries the user's UID
(OID 0.9.2342.19200300.100.1.1) and the organisation, and the attribute
extension (OID 1.2.3.4.5.6.7.8.1) holds JSON `{"attrs": {"role": ...}}`.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

FABRIC_ATTRS_OID = x509.ObjectIdentifier("1.2.3.4.5.6.7.8.1")
CA_VALIDITY = timedelta(days=3650)
LEAF_VALIDITY = timedelta(days=365)
CRL_VALIDITY = timedelta(days=30)
# Certificates start a little in the past so that a client whose clock is behind accepts them.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class Authority:
    """A CA's key and self-signed certificate."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    def sign(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        return builder.issuer_name(self.cert.subject).sign(self.key, hashes.SHA256())


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def create_authority(org: str, common_name: str, *, now: datetime | None = None) -> Authority:
    """A self-signed CA allowed to sign leaf certificates and CRLs (not other CAs)."""
    key = new_key()
    start = (now or datetime.now(UTC)) - CLOCK_SKEW
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    cert = builder.issuer_name(subject).sign(key, hashes.SHA256())
    return Authority(key, cert)


def issue_server_certificate(
    authority: Authority, hosts: list[str], ips: list[str], *, now: datetime | None = None
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A TLS server certificate (EKU serverAuth) for the given DNS names and IP addresses."""
    key = new_key()
    start = (now or datetime.now(UTC)) - CLOCK_SKEW
    names: list[x509.GeneralName] = [x509.DNSName(host) for host in hosts]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    builder = (
        _leaf_builder(key, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .not_valid_before(start)
        .not_valid_after(start + LEAF_VALIDITY)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_authority_key_id(authority), critical=False)
    )
    return key, authority.sign(builder)


def issue_client_certificate(
    authority: Authority,
    *,
    org: str,
    uid: str,
    role: str,
    name: str | None = None,
    not_before: datetime | None = None,
    validity: timedelta = LEAF_VALIDITY,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A client certificate (EKU clientAuth) naming the user's UID, organisation and role."""
    key = key or new_key()
    start = not_before or (datetime.now(UTC) - CLOCK_SKEW)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.USER_ID, uid),
            x509.NameAttribute(NameOID.COMMON_NAME, name or uid),
        ]
    )
    attributes = json.dumps({"attrs": {"role": role}}, separators=(",", ":")).encode()
    builder = (
        _leaf_builder(key, subject)
        .not_valid_before(start)
        .not_valid_after(start + validity)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.UnrecognizedExtension(FABRIC_ATTRS_OID, attributes), critical=False)
        .add_extension(_authority_key_id(authority), critical=False)
    )
    return key, authority.sign(builder)


def empty_crl(
    authority: Authority, *, now: datetime | None = None
) -> x509.CertificateRevocationList:
    """CRL number 1, listing nothing."""
    return revoke_serials(authority, [], now=now)


def revoke_serials(
    authority: Authority,
    serials: list[int],
    *,
    previous: x509.CertificateRevocationList | None = None,
    now: datetime | None = None,
) -> x509.CertificateRevocationList:
    """A freshly signed CRL listing the previous CRL's entries plus `serials`.

    Its CRL Number is one more than the previous CRL's (1 without one): servers refuse a CRL
    numbered below the newest they have accepted, so an old list cannot be put back.
    """
    moment = now or datetime.now(UTC)
    number = 1 if previous is None else crl_number(previous) + 1
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(authority.cert.subject)
        .last_update(moment)
        .next_update(moment + CRL_VALIDITY)
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    listed: set[int] = set()
    for entry in previous or []:
        listed.add(entry.serial_number)
        builder = builder.add_revoked_certificate(entry)
    for serial in serials:
        if serial in listed:
            continue
        listed.add(serial)
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(moment).build()
        )
    return builder.sign(authority.key, hashes.SHA256())


def crl_number(crl: x509.CertificateRevocationList) -> int:
    """The CRL Number extension's value; 0 for a CRL made before CRLs were numbered."""
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return 0


def pkcs12_bundle(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    cert: x509.Certificate,
    authority_cert: x509.Certificate,
    password: str,
) -> bytes:
    """A password-protected PKCS#12 file for importing into a browser."""
    return pkcs12.serialize_key_and_certificates(
        name.encode(),
        key,
        cert,
        [authority_cert],
        serialization.BestAvailableEncryption(password.encode()),
    )


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def crl_pem(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.PEM)


def load_authority(cert_pem_bytes: bytes, key_pem_bytes: bytes) -> Authority:
    key = serialization.load_pem_private_key(key_pem_bytes, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("A healthledger CA key must be an EC key.")
    return Authority(key, x509.load_pem_x509_certificate(cert_pem_bytes))


def _leaf_builder(key: ec.EllipticCurvePrivateKey, subject: x509.Name) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not cert_sign,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _authority_key_id(authority: Authority) -> x509.AuthorityKeyIdentifier:
    ski = authority.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
