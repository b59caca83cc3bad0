"""CRLs only move forward, and a CRL past its next-update fails closed unless given a grace.

Real CAs and CRLs made by authz/ca.py, read by the verifier from the network directory.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from api.cli import main
from authz import ca, provision
from authz.identity import IdentityVerifier
from authz.network import NetworkConfigError, load_network
from devkit.devnet import ensure_dev_network
from domain.errors import UnauthenticatedError
from tests.networks import NetworkFixture, make_network


def _crl_path(net: NetworkFixture, org: str) -> Path:
    return net.directory / "orgs" / org / "crl.pem"


def _der(net: NetworkFixture, uid: str) -> bytes:
    cert = x509.load_pem_x509_certificate(net.user(uid)[0].read_bytes())
    return cert.public_bytes(serialization.Encoding.DER)


def _authority(net: NetworkFixture, org: str) -> ca.Authority:
    folder = net.directory / "orgs" / org
    return ca.load_authority((folder / "ca.pem").read_bytes(), (folder / "ca.key").read_bytes())


def _crl(net: NetworkFixture, org: str) -> x509.CertificateRevocationList:
    return x509.load_pem_x509_crl(_crl_path(net, org).read_bytes())


def _put(net: NetworkFixture, org: str, pem: bytes) -> None:
    """Replace the CRL file as a careless copy would (a new inode, so the verifier re-reads)."""
    path = _crl_path(net, org)
    staged = path.with_name("crl.new")
    staged.write_bytes(pem)
    staged.replace(path)


def test_network_init_numbers_crls_from_one_and_revoke_counts_up(tmp_path: Path) -> None:
    net = make_network(tmp_path / "network")
    assert ca.crl_number(_crl(net, "parents")) == 1
    assert provision.revoke(net.directory, org="parents", uid="bob") is True
    assert ca.crl_number(_crl(net, "parents")) == 2
    # Revoking again re-signs the list (a renewal) without listing the serial twice.
    assert provision.revoke(net.directory, org="parents", uid="bob") is False
    assert ca.crl_number(_crl(net, "parents")) == 3
    assert len(list(_crl(net, "parents"))) == 1


def test_an_older_crl_put_back_does_not_undo_a_revocation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    net = make_network(tmp_path / "network")
    before = _crl_path(net, "parents").read_bytes()
    verifier = IdentityVerifier.from_network(load_network(net.directory), crl_recheck_seconds=0)
    bob = _der(net, "bob")
    assert verifier.identify(bob).uid == "bob"
    assert provision.revoke(net.directory, org="parents", uid="bob") is True
    with pytest.raises(UnauthenticatedError, match="revoked"):
        verifier.identify(bob)
    with caplog.at_level(logging.ERROR, logger="healthledger.identity"):
        _put(net, "parents", before)
        with pytest.raises(UnauthenticatedError, match="revoked"):
            verifier.identify(bob)
    assert "has number 1, older than number 2 already in force" in caplog.text
    assert verifier.identify(_der(net, "alice")).uid == "alice"  # the newer list still works


def test_a_crl_without_a_number_is_taken_as_number_zero(tmp_path: Path) -> None:
    net = make_network(tmp_path / "network")
    authority = _authority(net, "parents")
    serial = x509.load_pem_x509_certificate(net.user("bob")[0].read_bytes()).serial_number
    now = datetime.now(UTC)
    unnumbered = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(authority.cert.subject)
        .last_update(now)
        .next_update(now + timedelta(days=30))
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
        .sign(authority.key, hashes.SHA256())
    )
    assert ca.crl_number(unnumbered) == 0
    _put(net, "parents", ca.crl_pem(unnumbered))
    verifier = IdentityVerifier.from_network(load_network(net.directory), crl_recheck_seconds=0)
    with pytest.raises(UnauthenticatedError, match="revoked"):
        verifier.identify(_der(net, "bob"))  # accepted when nothing newer was seen
    assert provision.revoke(net.directory, org="parents", uid="alice") is True
    assert ca.crl_number(_crl(net, "parents")) == 1
    with pytest.raises(UnauthenticatedError, match="revoked"):
        verifier.identify(_der(net, "alice"))
    _put(net, "parents", ca.crl_pem(unnumbered))
    with pytest.raises(UnauthenticatedError, match="revoked"):
        verifier.identify(_der(net, "alice"))  # once numbered lists came, number 0 is old


def _stale(net: NetworkFixture, org: str, days_past: int) -> None:
    """Sign `org`'s next CRL so that its next-update lies `days_past` days ago."""
    signed = datetime.now(UTC) - ca.CRL_VALIDITY - timedelta(days=days_past)
    crl = ca.revoke_serials(_authority(net, org), [], previous=_crl(net, org), now=signed)
    _put(net, org, ca.crl_pem(crl))


def test_a_crl_past_its_next_update_refuses_its_organisation(tmp_path: Path) -> None:
    net = make_network(tmp_path / "network")
    _stale(net, "parents", days_past=400)
    verifier = IdentityVerifier.from_network(load_network(net.directory), crl_recheck_seconds=0)
    with pytest.raises(UnauthenticatedError, match=r"past its next-update.*re-signed"):
        verifier.identify(_der(net, "alice"))
    assert verifier.identify(_der(net, "dr-house")).uid == "dr-house"  # other orgs unaffected
    # Re-signing (revoking an already revoked user, or a new one) lets the organisation in again.
    assert provision.revoke(net.directory, org="parents", uid="bob") is True
    assert verifier.identify(_der(net, "alice")).uid == "alice"


def test_a_crl_expiring_while_the_server_runs_refuses_its_organisation(tmp_path: Path) -> None:
    net = make_network(tmp_path / "network")
    later = datetime.now(UTC) + ca.CRL_VALIDITY + timedelta(days=1)
    verifier = IdentityVerifier(load_network(net.directory).orgs, clock=lambda: later)
    with pytest.raises(UnauthenticatedError, match="past its next-update"):
        verifier.identify(_der(net, "alice"))


def test_a_configured_grace_admits_a_stale_crl_until_it_runs_out(tmp_path: Path) -> None:
    net = make_network(tmp_path / "network")
    _stale(net, "parents", days_past=3)
    config = net.directory / "network.toml"
    config.write_text(config.read_text().replace("[server]\n", "[server]\ncrl_grace_days = 5\n", 1))
    network = load_network(net.directory)
    assert network.server.crl_grace_days == 5
    assert IdentityVerifier.from_network(network).identify(_der(net, "alice")).uid == "alice"
    beyond = datetime.now(UTC) + timedelta(days=3)
    verifier = IdentityVerifier(network.orgs, clock=lambda: beyond, crl_grace=timedelta(days=5))
    with pytest.raises(UnauthenticatedError, match="past its next-update"):
        verifier.identify(_der(net, "alice"))


@pytest.mark.parametrize("value", ["-1", "366", '"7"'])
def test_the_grace_setting_is_range_checked(tmp_path: Path, value: str) -> None:
    net = make_network(tmp_path / "network")
    config = net.directory / "network.toml"
    config.write_text(
        config.read_text().replace("[server]\n", f"[server]\ncrl_grace_days = {value}\n", 1)
    )
    with pytest.raises(NetworkConfigError, match="crl_grace_days"):
        load_network(net.directory)


def test_network_renew_crl_signs_each_list_anew_and_make_run_renews_lists_running_out(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "net"
    assert ensure_dev_network(directory)
    network = load_network(directory)
    before = {
        org.id: ca.crl_number(x509.load_pem_x509_crl(org.crl.read_bytes())) for org in network.orgs
    }
    assert main(["network", "renew-crl", str(directory), "--org", "parents"]) == 0
    after = {
        org.id: ca.crl_number(x509.load_pem_x509_crl(org.crl.read_bytes())) for org in network.orgs
    }
    assert after == {**before, "parents": before["parents"] + 1}

    hospital = next(org for org in network.orgs if org.id == "hospital")
    authority = ca.load_authority(
        hospital.ca.read_bytes(), hospital.ca.with_name("ca.key").read_bytes()
    )
    stale = ca.revoke_serials(
        authority, [], previous=None, now=datetime.now(UTC) - timedelta(days=29)
    )
    hospital.crl.write_bytes(ca.crl_pem(stale))
    assert not ensure_dev_network(directory)  # the network exists: only lists running out change
    renewed = x509.load_pem_x509_crl(hospital.crl.read_bytes())
    assert renewed.next_update_utc is not None
    assert renewed.next_update_utc > datetime.now(UTC) + timedelta(days=29)
    parents = next(org for org in network.orgs if org.id == "parents")
    assert ca.crl_number(x509.load_pem_x509_crl(parents.crl.read_bytes())) == after["parents"]
