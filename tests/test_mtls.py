"""Mutual TLS with real handshakes: who gets through, with which identity, and who does not."""

from __future__ import annotations

import dataclasses
import json
import ssl
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.sync.client import connect as ws_connect

from authz import ca, provision
from authz.callers import CallerIdentifier
from authz.identity import Identity, IdentityVerifier
from authz.network import NetworkConfig, load_network
from authz.proxy_headers import ProxySettings
from domain.errors import UnauthenticatedError
from tests.networks import DEMO_USERS, NetworkFixture, make_network
from tests.tls_server import serving


def _identity_json(identity: Identity) -> dict[str, object]:
    return {
        "uid": identity.uid,
        "msp": identity.msp,
        "org": identity.org,
        "role": identity.role.value,
        "name": identity.name,
    }


def echo_app(network: NetworkConfig) -> Starlette:
    """A test endpoint that answers with the caller's Identity, over HTTP and websocket."""
    identifier = CallerIdentifier(
        IdentityVerifier.from_network(network), ProxySettings.from_network(network)
    )

    async def whoami(request: Request) -> JSONResponse:
        try:
            identity = identifier.identify(request.scope)
        except UnauthenticatedError as exc:
            body = {"errors": [{"message": str(exc), "extensions": {"code": "UNAUTHENTICATED"}}]}
            return JSONResponse(body, status_code=401)
        return JSONResponse(_identity_json(identity))

    async def whoami_ws(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await websocket.send_json(_identity_json(identifier.identify(websocket.scope)))
        except UnauthenticatedError as exc:
            await websocket.send_json({"error": str(exc)})
        await websocket.close()

    return Starlette(routes=[Route("/whoami", whoami), WebSocketRoute("/ws", whoami_ws)])


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("mtls") / "network")


@pytest.fixture(scope="module")
def base_url(net: NetworkFixture) -> Iterator[str]:
    network = load_network(net.directory)
    with serving(echo_app(network), network) as url:
        yield url


def _get(url: str, context: ssl.SSLContext, **kwargs: object) -> httpx.Response:
    with httpx.Client(verify=context, timeout=10) as client:
        return client.get(f"{url}/whoami", **kwargs)  # type: ignore[arg-type]


def _refused(url: str, context: ssl.SSLContext) -> str:
    """Refused either in the handshake or with 401 UNAUTHENTICATED; returns how."""
    try:
        response = _get(url, context)
    except httpx.TransportError:
        return "handshake"
    assert response.status_code == 401, response.text
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    return str(response.json()["errors"][0]["message"])


@pytest.mark.parametrize(("org", "uid", "role"), DEMO_USERS)
def test_each_enrolled_user_reaches_the_server_as_themselves(
    net: NetworkFixture, base_url: str, org: str, uid: str, role: str
) -> None:
    response = _get(base_url, net.client_context(uid))
    assert response.status_code == 200
    assert response.json() == {
        "uid": uid,
        "msp": provision.msp_id(org),
        "org": org,
        "role": role,
        "name": uid.replace("-", " ").title(),
    }


def test_h11_protocol_passes_the_certificate_too(net: NetworkFixture) -> None:
    network = load_network(net.directory)
    with serving(echo_app(network), network, http="h11") as url:
        assert _get(url, net.client_context("alice")).json()["uid"] == "alice"


def test_websocket_sees_the_same_identity_as_http(net: NetworkFixture, base_url: str) -> None:
    wss = base_url.replace("https://", "wss://") + "/ws"
    with ws_connect(wss, ssl=net.client_context("dr-house")) as websocket:
        assert (
            json.loads(websocket.recv(timeout=10))
            == _get(base_url, net.client_context("dr-house")).json()
        )


def test_no_certificate_fails_the_handshake(net: NetworkFixture, base_url: str) -> None:
    assert _refused(base_url, net.client_context()) == "handshake"


def _context_with(
    net: NetworkFixture, tmp_path: Path, key: object, cert: x509.Certificate
) -> ssl.SSLContext:
    cert_path, key_path = tmp_path / "client.pem", tmp_path / "client.key"
    cert_path.write_bytes(ca.cert_pem(cert))
    key_path.write_bytes(ca.key_pem(key))  # type: ignore[arg-type]
    context = net.client_context()
    context.load_cert_chain(cert_path, key_path)
    return context


def _org_authority(net: NetworkFixture, org: str) -> ca.Authority:
    folder = net.directory / "orgs" / org
    return ca.load_authority((folder / "ca.pem").read_bytes(), (folder / "ca.key").read_bytes())


def test_certificate_from_a_ca_outside_the_network_is_refused(
    net: NetworkFixture, base_url: str, tmp_path: Path
) -> None:
    stranger = ca.create_authority("hospital", "hospital CA")
    key, cert = ca.issue_client_certificate(stranger, org="hospital", uid="mallory", role="doctor")
    assert _refused(base_url, _context_with(net, tmp_path, key, cert)) == "handshake"


@pytest.mark.parametrize(
    ("start", "validity"),
    [
        (datetime.now(UTC) - timedelta(days=3), timedelta(days=1)),  # expired
        (datetime.now(UTC) + timedelta(days=1), timedelta(days=30)),  # not yet valid
    ],
    ids=["expired", "not-yet-valid"],
)
def test_certificate_outside_its_validity_is_refused(
    net: NetworkFixture, base_url: str, tmp_path: Path, start: datetime, validity: timedelta
) -> None:
    key, cert = ca.issue_client_certificate(
        _org_authority(net, "parents"),
        org="parents",
        uid="late",
        role="parent",
        not_before=start,
        validity=validity,
    )
    assert _refused(base_url, _context_with(net, tmp_path, key, cert)) == "handshake"
    with pytest.raises(UnauthenticatedError, match=r"expired|not valid yet"):
        IdentityVerifier.from_network(load_network(net.directory)).identify(
            cert.public_bytes(ca.serialization.Encoding.DER)
        )


def _custom_leaf(
    authority: ca.Authority, *, is_ca: bool, usage: x509.ObjectIdentifier
) -> tuple[object, x509.Certificate]:
    key = ca.new_key()
    start = datetime.now(UTC) - timedelta(minutes=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hospital"),
                    x509.NameAttribute(NameOID.USER_ID, "odd"),
                ]
            )
        )
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.UnrecognizedExtension(ca.FABRIC_ATTRS_OID, b'{"attrs":{"role":"doctor"}}'),
            critical=False,
        )
    )
    return key, builder.issuer_name(authority.cert.subject).sign(authority.key, hashes.SHA256())


@pytest.mark.parametrize(
    ("is_ca", "usage", "reason"),
    [
        (True, ExtendedKeyUsageOID.CLIENT_AUTH, "CA certificate"),
        (False, ExtendedKeyUsageOID.SERVER_AUTH, "not meant for client authentication"),
    ],
    ids=["leaf-marked-ca", "server-auth-only"],
)
def test_certificates_not_meant_for_clients_are_refused(
    net: NetworkFixture,
    base_url: str,
    tmp_path: Path,
    is_ca: bool,
    usage: x509.ObjectIdentifier,
    reason: str,
) -> None:
    key, cert = _custom_leaf(_org_authority(net, "hospital"), is_ca=is_ca, usage=usage)
    how = _refused(base_url, _context_with(net, tmp_path, key, cert))
    assert how == "handshake" or reason in how
    with pytest.raises(UnauthenticatedError, match=reason):
        IdentityVerifier.from_network(load_network(net.directory)).identify(
            cert.public_bytes(ca.serialization.Encoding.DER)
        )


def test_school_certificate_claiming_doctor_is_refused(
    net: NetworkFixture, base_url: str, tmp_path: Path
) -> None:
    key, cert = ca.issue_client_certificate(
        _org_authority(net, "school-a"), org="school-a", uid="fake-doc", role="doctor"
    )
    assert "does not fit" in _refused(base_url, _context_with(net, tmp_path, key, cert))


def test_revoked_certificate_is_refused_within_five_seconds_and_for_good(
    tmp_path: Path,
) -> None:
    net = make_network(tmp_path / "network")
    network = load_network(net.directory)
    with serving(echo_app(network), network) as url:
        assert _get(url, net.client_context("bob")).status_code == 200
        provision.revoke(net.directory, org="parents", uid="bob")
        revoked_at = time.monotonic()
        while _get(url, net.client_context("bob")).status_code == 200:
            assert time.monotonic() - revoked_at < 5, "still accepted 5 s after revocation"
            time.sleep(0.2)
        for _ in range(3):
            assert "revoked" in _refused(url, net.client_context("bob"))
        assert _get(url, net.client_context("alice")).status_code == 200


@pytest.fixture(scope="module")
def proxied(net: NetworkFixture) -> Iterator[tuple[str, NetworkConfig]]:
    """The server behind a proxy: 127.0.0.1 is the trusted proxy, and sends the header."""
    network = load_network(net.directory)
    behind_proxy = dataclasses.replace(
        network,
        server=dataclasses.replace(
            network.server,
            client_cert_header="x-forwarded-client-cert",
            trusted_proxies=("127.0.0.1",),
        ),
    )
    with serving(echo_app(behind_proxy), behind_proxy) as url:
        yield url, behind_proxy


def _pem(net: NetworkFixture, uid: str) -> str:
    return net.user(uid)[0].read_text()


def test_header_from_a_trusted_proxy_is_accepted(
    net: NetworkFixture, proxied: tuple[str, NetworkConfig]
) -> None:
    url, _ = proxied
    nginx = {"x-forwarded-client-cert": quote(_pem(net, "alice"))}
    assert _get(url, net.client_context(), headers=nginx).json()["uid"] == "alice"
    envoy = {
        "x-forwarded-client-cert": 'By=spiffe://edge;Hash=ab;Cert="'
        + quote(_pem(net, "dr-house"))
        + '";Subject="CN=Dr House"'
    }
    assert _get(url, net.client_context(), headers=envoy).json()["uid"] == "dr-house"


def test_header_from_an_untrusted_peer_is_ignored(
    net: NetworkFixture, proxied: tuple[str, NetworkConfig]
) -> None:
    _, network = proxied
    untrusted = dataclasses.replace(
        network, server=dataclasses.replace(network.server, trusted_proxies=("10.9.9.9",))
    )
    with serving(echo_app(untrusted), untrusted) as url:
        forged = {"x-forwarded-client-cert": quote(_pem(net, "dr-house"))}
        response = _get(url, net.client_context(), headers=forged)
        assert response.status_code == 401
        assert "No client certificate" in response.json()["errors"][0]["message"]


def test_header_with_a_certificate_from_outside_the_network_is_refused(
    net: NetworkFixture, proxied: tuple[str, NetworkConfig]
) -> None:
    url, _ = proxied
    stranger = ca.create_authority("parents", "parents CA")
    _, cert = ca.issue_client_certificate(stranger, org="parents", uid="alice", role="parent")
    header = {"x-forwarded-client-cert": quote(ca.cert_pem(cert).decode())}
    response = _get(url, net.client_context(), headers=header)
    assert response.status_code == 401
    assert "not issued by an organisation" in response.json()["errors"][0]["message"]
