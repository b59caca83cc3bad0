"""`healthledger network init`, `enroll` and `revoke`: files, modes, refusals."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from api.cli import main
from authz.network import load_network
from authz.provision import (
    ProvisionError,
    enroll,
    init_network,
    make_missing_kek_files,
    msp_id,
)
from encryption.keks import Kek, write_kek_file


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_lays_out_the_network_from_the_contract(tmp_path: Path) -> None:
    target = init_network(tmp_path / "net", ["north", "south-hill"])
    network = load_network(target)
    assert [o.id for o in network.orgs] == ["hospital", "parents", "north", "south-hill"]
    assert [o.msp for o in network.orgs][-1] == "SouthHillMSP"
    assert [c.members for c in network.channels] == [
        ("hospital", "parents"),
        ("hospital", "parents", "north", "south-hill"),
    ]
    for org in network.orgs:
        for name in ("ca.pem", "ca.key", "crl.pem"):
            assert (target / "orgs" / org.id / name).exists()
        assert _mode(target / "orgs" / org.id / "ca.key") == 0o600
        ca_cert = x509.load_pem_x509_certificate((target / "orgs" / org.id / "ca.pem").read_bytes())
        assert ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        crl = x509.load_pem_x509_crl((target / "orgs" / org.id / "crl.pem").read_bytes())
        assert len(list(crl)) == 0 and crl.is_signature_valid(ca_cert.public_key())  # type: ignore[arg-type]
    server = x509.load_pem_x509_certificate((target / "tls" / "server.pem").read_bytes())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert _mode(target / "tls" / "server.key") == 0o600
    assert network.ledger.url == f"sqlite:///{target}/ledger.db"


def test_default_schools_are_school_a_and_b(tmp_path: Path) -> None:
    network = load_network(init_network(tmp_path / "net"))
    assert [(o.id, o.msp, o.kind) for o in network.orgs][2:] == [
        ("school-a", "SchoolAMSP", "school"),
        ("school-b", "SchoolBMSP", "school"),
    ]


def test_init_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    init_network(tmp_path / "net")
    before = (tmp_path / "net" / "orgs" / "hospital" / "ca.key").read_bytes()
    assert main(["network", "init", str(tmp_path / "net")]) == 2
    assert "never overwritten" in capsys.readouterr().err
    assert (tmp_path / "net" / "orgs" / "hospital" / "ca.key").read_bytes() == before


def test_init_fills_an_existing_empty_directory(tmp_path: Path) -> None:
    # A container volume is an empty mount point: it cannot be renamed onto, only filled.
    (tmp_path / "volume").mkdir()
    target = init_network(tmp_path / "volume")
    assert sorted(p.name for p in target.iterdir()) == [
        "keys",
        "log",
        "network.toml",
        "orgs",
        "tls",
        "users",
    ]
    assert load_network(target).orgs[0].ca.exists()
    assert _mode(target / "tls" / "server.key") == 0o600


def test_init_where_nothing_can_be_written_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("not a directory")
    assert main(["network", "init", str(tmp_path / "file" / "net")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("healthledger: Cannot create a network in ") and err.count("\n") == 1


@pytest.mark.parametrize("school", ["School A", "hospital", "-x", ""])
def test_bad_school_ids_are_refused(tmp_path: Path, school: str) -> None:
    with pytest.raises(ProvisionError):
        init_network(tmp_path / "net", [school])
    assert not (tmp_path / "net").exists()


def test_enroll_writes_certificate_key_and_p12(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = init_network(tmp_path / "net")
    args = ["enroll", str(target), "--org", "parents", "--uid", "alice", "--role", "parent"]
    assert main([*args, "--name", "Alice Martin", "--p12", "s3cret"]) == 0
    assert "alice.p12" in capsys.readouterr().out
    folder = target / "users" / "parents"
    cert = x509.load_pem_x509_certificate((folder / "alice.pem").read_bytes())
    assert cert.subject.rfc4514_string() == "CN=Alice Martin,UID=alice,O=parents"
    assert _mode(folder / "alice.key") == 0o600 and _mode(folder / "alice.p12") == 0o600
    bundle = pkcs12.load_pkcs12((folder / "alice.p12").read_bytes(), b"s3cret")
    assert bundle.cert is not None and bundle.cert.certificate == cert


@pytest.mark.parametrize(
    ("org", "uid", "role", "message"),
    [
        ("school-a", "x", "doctor", "cannot belong to 'school-a'"),
        ("parents", "x", "school", "cannot belong to 'parents'"),
        ("mars", "x", "parent", "no organisation 'mars'"),
        ("parents", "../evil", "parent", "cannot be a UID"),
        ("hospital", "alice", "doctor", "already enrolled"),
    ],
)
def test_enroll_refusals(tmp_path: Path, org: str, uid: str, role: str, message: str) -> None:
    target = init_network(tmp_path / "net")
    enroll(target, org="parents", uid="alice", role="parent")
    with pytest.raises(ProvisionError, match=message):
        enroll(target, org=org, uid=uid, role=role)


def test_enroll_with_a_role_outside_the_org_kind_exits_two(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = init_network(tmp_path / "net")
    assert main(["enroll", str(target), "--org", "school-a", "--uid", "z", "--role", "doctor"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_revoke_lists_the_serial_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = init_network(tmp_path / "net")
    paths = enroll(target, org="parents", uid="alice", role="parent")
    serial = x509.load_pem_x509_certificate(paths.cert.read_bytes()).serial_number
    assert main(["revoke", str(target), "--org", "parents", "--uid", "alice"]) == 0
    assert main(["revoke", str(target), "--org", "parents", "--uid", "alice"]) == 0
    assert "already revoked" in capsys.readouterr().out
    crl = x509.load_pem_x509_crl((target / "orgs" / "parents" / "crl.pem").read_bytes())
    assert [entry.serial_number for entry in crl] == [serial]
    assert crl.next_update_utc is not None
    assert main(["revoke", str(target), "--org", "parents", "--uid", "nobody"]) == 2


def test_msp_ids_follow_the_org_id() -> None:
    assert [msp_id(o) for o in ("hospital", "parents", "school-a")] == [
        "HospitalMSP",
        "ParentsMSP",
        "SchoolAMSP",
    ]


def test_init_writes_a_key_encryption_key_per_channel(tmp_path: Path) -> None:
    target = init_network(tmp_path / "net")
    network = load_network(target)
    assert _mode(target / "keys") == 0o700
    keks = {}
    for channel in network.channels:
        path = target / "keys" / f"{channel.name}.kek"
        assert network.kek_source(channel.name).path == path
        assert _mode(path) == 0o600
        (keks[channel.name],) = network.kek_source(channel.name).load()
    assert keks["medical"].id != keks["report"].id


def test_missing_kek_files_are_made_and_present_ones_never_overwritten(tmp_path: Path) -> None:
    target = init_network(tmp_path / "net")
    network = load_network(target)
    report = (target / "keys" / "report.kek").read_bytes()
    (target / "keys" / "medical.kek").unlink()
    found = make_missing_kek_files(target)
    assert found.made == {"medical": target / "keys" / "medical.kek"}
    assert found.present == {"report": target / "keys" / "report.kek"}
    assert found.from_env == {}
    assert (target / "keys" / "report.kek").read_bytes() == report
    assert _mode(target / "keys" / "medical.kek") == 0o600
    assert len(network.kek_source("medical").load()) == 1
    # Run again: nothing to make, nothing changed.
    medical = (target / "keys" / "medical.kek").read_bytes()
    again = make_missing_kek_files(target)
    assert again.made == {} and set(again.present) == {"medical", "report"}
    assert (target / "keys" / "medical.kek").read_bytes() == medical


def test_a_network_older_than_its_keys_gets_a_keys_directory(tmp_path: Path) -> None:
    target = init_network(tmp_path / "net")
    for path in (target / "keys").iterdir():
        path.unlink()
    (target / "keys").rmdir()
    assert set(make_missing_kek_files(target).made) == {"medical", "report"}
    assert _mode(target / "keys") == 0o700


def test_an_interrupted_rotation_is_not_given_a_new_kek(tmp_path: Path) -> None:
    # PATH gone, PATH.next there: the data keys may be wrapped by that next KEK alone.
    target = init_network(tmp_path / "net")
    medical = target / "keys" / "medical.kek"
    medical.unlink()
    write_kek_file(medical.with_name("medical.kek.next"), Kek.generate())
    found = make_missing_kek_files(target)
    assert "medical" in found.present and not medical.exists()


def test_a_kek_from_a_variable_needs_no_file(tmp_path: Path) -> None:
    target = init_network(tmp_path / "net")
    toml = (target / "network.toml").read_text()
    medical = 'name = "medical"\nmembers = ["hospital", "parents"]\n'
    assert medical in toml
    toml = toml.replace(medical, f'{medical}[channels.keys]\nkek_env = "MEDICAL_KEK"\n')
    (target / "network.toml").write_text(toml)
    (target / "keys" / "report.kek").unlink()
    found = make_missing_kek_files(target)
    assert found.from_env == {"medical": "$MEDICAL_KEK"}
    assert set(found.made) == {"report"}


def test_network_init_says_where_the_keks_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["network", "init", str(tmp_path / "net")]) == 0
    out = capsys.readouterr().out
    assert f"  channel KEKs       {tmp_path / 'net' / 'keys'} (without them nothing" in out
    assert sorted(p.name for p in (tmp_path / "net" / "keys").iterdir()) == [
        "medical.kek",
        "report.kek",
    ]
