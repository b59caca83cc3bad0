"""Certificate -> Identity without a server: each acceptance rule, and a property over forgeries."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authz import ca, provision
from authz.identity import IdentityVerifier, fabric_attributes
from authz.network import load_network
from authz.roles import Role
from domain.errors import UnauthenticatedError
from tests.networks import NetworkFixture, make_network

ORG_KINDS = {
    "hospital": "hospital",
    "parents": "parents",
    "school-a": "school",
    "school-b": "school",
}
FITS = {"doctor": {"hospital"}, "parent": {"parents"}, "school": {"school"}}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("identity") / "network")


@pytest.fixture(scope="module")
def verifier(net: NetworkFixture) -> IdentityVerifier:
    return IdentityVerifier.from_network(load_network(net.directory))


def _authority(net: NetworkFixture, org: str) -> ca.Authority:
    folder = net.directory / "orgs" / org
    return ca.load_authority((folder / "ca.pem").read_bytes(), (folder / "ca.key").read_bytes())


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def test_enrolled_certificate_gives_uid_msp_org_role_and_name(
    net: NetworkFixture, verifier: IdentityVerifier
) -> None:
    cert = x509.load_pem_x509_certificate(net.user("dr-house")[0].read_bytes())
    identity = verifier.identify(_der(cert))
    assert (identity.uid, identity.msp, identity.org, identity.role, identity.name) == (
        "dr-house",
        "HospitalMSP",
        "hospital",
        Role.DOCTOR,
        "Dr House",
    )
    assert identity.fingerprint == cert.fingerprint(hashes.SHA256()).hex()
    assert verifier.identify(_der(cert)) is identity  # cached


def test_garbage_is_not_a_certificate(verifier: IdentityVerifier) -> None:
    with pytest.raises(UnauthenticatedError, match="cannot be read"):
        verifier.identify(b"\x30\x03garbage")


def test_certificate_without_uid_is_refused(
    net: NetworkFixture, verifier: IdentityVerifier
) -> None:
    authority = _authority(net, "parents")
    key = ca.new_key()
    start = datetime.now(UTC) - timedelta(minutes=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nobody")]))
        .issuer_name(authority.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.UnrecognizedExtension(ca.FABRIC_ATTRS_OID, b'{"attrs":{"role":"parent"}}'),
            critical=False,
        )
        .sign(authority.key, hashes.SHA256())
    )
    with pytest.raises(UnauthenticatedError, match="no UID"):
        verifier.identify(_der(cert))


def test_admin_fits_every_organisation(net: NetworkFixture, verifier: IdentityVerifier) -> None:
    for org in ORG_KINDS:
        _, cert = ca.issue_client_certificate(
            _authority(net, org), org=org, uid=f"adm-{org}", role="admin"
        )
        assert verifier.identify(_der(cert)).role == Role.ADMIN


def test_a_crl_not_signed_by_its_ca_refuses_that_organisation(tmp_path: Path) -> None:
    net = make_network(tmp_path / "network")
    stranger = ca.create_authority("parents", "parents CA")
    (net.directory / "orgs" / "parents" / "crl.pem").write_bytes(ca.crl_pem(ca.empty_crl(stranger)))
    verifier = IdentityVerifier.from_network(load_network(net.directory))
    alice = x509.load_pem_x509_certificate(net.user("alice")[0].read_bytes())
    with pytest.raises(UnauthenticatedError, match="revocation list"):
        verifier.identify(_der(alice))
    doctor = x509.load_pem_x509_certificate(net.user("dr-house")[0].read_bytes())
    assert verifier.identify(_der(doctor)).uid == "dr-house"


def test_revocation_reaches_a_cached_identity(tmp_path: Path) -> None:
    net = make_network(tmp_path / "network")
    verifier = IdentityVerifier.from_network(load_network(net.directory), crl_recheck_seconds=0)
    bob = _der(x509.load_pem_x509_certificate(net.user("bob")[0].read_bytes()))
    assert verifier.identify(bob).uid == "bob"
    assert provision.revoke(net.directory, org="parents", uid="bob") is True
    with pytest.raises(UnauthenticatedError, match="revoked"):
        verifier.identify(bob)
    assert provision.revoke(net.directory, org="parents", uid="bob") is False


@pytest.mark.parametrize(
    "uid",
    [
        " dr-house",
        "dr-house ",
        "dr-h\u043euse",  # Cyrillic o
        "dr-\u200bhouse",  # zero-width space
        "dr-house\nrole: admin",
        "a" * 5_000,
        "a" * 65,
        "../hospital/dr-house",
        "hospital/dr-house",
        "-dr-house",
        ".",
    ],
)
def test_a_uid_enroll_would_refuse_is_refused_whoever_signed_it(
    net: NetworkFixture, verifier: IdentityVerifier, uid: str
) -> None:
    _, cert = ca.issue_client_certificate(
        _authority(net, "hospital"), org="hospital", uid=uid, role="doctor", name="Dr House"
    )
    with pytest.raises(UnauthenticatedError, match="UID is not a valid UID"):
        verifier.identify(_der(cert))


@pytest.mark.parametrize(
    "name",
    [
        "Dr\nHouse",
        "Dr\x00House",
        "Dr \u202eesuoH",  # right-to-left override
        "Dr\u2028House",
        "\x85Dr House",
        " Dr House",
    ],
)
def test_a_display_name_enroll_would_refuse_is_refused(
    net: NetworkFixture, verifier: IdentityVerifier, name: str
) -> None:
    _, cert = ca.issue_client_certificate(
        _authority(net, "hospital"), org="hospital", uid="dr-name", role="doctor", name=name
    )
    with pytest.raises(UnauthenticatedError, match="not a valid display name"):
        verifier.identify(_der(cert))


def test_attribute_json_with_a_repeated_role_key_is_refused(
    net: NetworkFixture, verifier: IdentityVerifier
) -> None:
    authority = _authority(net, "parents")
    key = ca.new_key()
    start = datetime.now(UTC) - timedelta(minutes=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "parents"),
                    x509.NameAttribute(NameOID.USER_ID, "carol"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "Carol"),
                ]
            )
        )
        .issuer_name(authority.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.UnrecognizedExtension(
                ca.FABRIC_ATTRS_OID, b'{"attrs":{"role":"doctor","role":"admin"}}'
            ),
            critical=False,
        )
        .sign(authority.key, hashes.SHA256())
    )
    with pytest.raises(UnauthenticatedError, match="role"):
        verifier.identify(_der(cert))
    assert fabric_attributes(cert) == {}  # malformed, as if there were no attributes


# -- property: only what the network's CAs issued for a fitting role gets in ------------

_STRANGER = ca.create_authority("hospital", "hospital CA")
_LEAF_KEY = ca.new_key()


@st.composite
def certificates(draw: st.DrawFn) -> tuple[str, str, bool, bool, bool, bool, str | None]:
    issuer = draw(st.sampled_from([*ORG_KINDS, "stranger", "self"]))
    claimed_org = draw(st.sampled_from(list(ORG_KINDS)))
    role = draw(st.sampled_from(["doctor", "parent", "school", "admin", "nurse", ""]))
    client_eku = draw(st.booleans())
    is_ca = draw(st.booleans())
    with_uid = draw(st.booleans())
    with_role_ext = draw(st.booleans())
    uid = draw(st.text(alphabet="abcxyz019-", min_size=1, max_size=8)) if with_uid else None
    return issuer, claimed_org, client_eku, is_ca, with_uid, with_role_ext, role + "|" + (uid or "")


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spec=certificates())
def test_only_certificates_the_network_issued_for_a_fitting_role_are_accepted(
    net: NetworkFixture,
    verifier: IdentityVerifier,
    spec: tuple[str, str, bool, bool, bool, bool, str],
) -> None:
    issuer, claimed_org, client_eku, is_ca, with_uid, with_role_ext, packed = spec
    role, _, uid = packed.partition("|")
    if issuer == "stranger":
        signer_key, signer_name = _STRANGER.key, _STRANGER.cert.subject
    elif issuer == "self":
        signer_key, signer_name = (
            _LEAF_KEY,
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "me")]),
        )
    else:
        authority = _authority(net, issuer)
        signer_key, signer_name = authority.key, authority.cert.subject
    names = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, claimed_org)]
    if with_uid:
        names.append(x509.NameAttribute(NameOID.USER_ID, uid))
    start = datetime.now(UTC) - timedelta(minutes=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(names))
        .issuer_name(signer_name)
        .public_key(_LEAF_KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH if client_eku else ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
    )
    if with_role_ext:
        payload = json.dumps({"attrs": {"role": role}}).encode()
        builder = builder.add_extension(
            x509.UnrecognizedExtension(ca.FABRIC_ATTRS_OID, payload), critical=False
        )
    cert = builder.sign(signer_key, hashes.SHA256())
    issued_by_network = issuer in ORG_KINDS
    kind = ORG_KINDS.get(issuer, "")
    role_fits = with_role_ext and (role == "admin" or kind in FITS.get(role, set()))
    valid_uid = with_uid and not uid.startswith("-")  # enroll's syntax: a letter or digit first
    should_accept = issued_by_network and client_eku and not is_ca and valid_uid and role_fits
    try:
        identity = verifier.identify(_der(cert))
    except UnauthenticatedError:
        assert not should_accept
    else:
        assert should_accept
        assert identity.org == issuer and identity.uid == uid  # the CA decides the org, not O=
