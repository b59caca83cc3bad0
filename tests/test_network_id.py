"""The network id, the middle of every checkpoint origin (`healthledger/ID/CHANNEL`):
`[network] id` as `network init` writes it, checked when given, and otherwise derived
from the organisations' CA certificates, the same for every copy and order of the file."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from authz.network import NetworkConfigError, load_network
from authz.provision import init_network

ORG_TABLE = re.compile(r"\n\[\[orgs\]\]\n(?:[^\[\n].*\n)+")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return init_network(tmp_path_factory.mktemp("network-id") / "net")


def _without_id(directory: Path) -> Path:
    toml = directory / "network.toml"
    toml.write_text(re.sub(r"\[network\]\nid = .*\n", "", toml.read_text()))
    return directory


def _copy(made: Path, target: Path) -> Path:
    """network.toml and the CA certificates: all the id depends on."""
    for org in load_network(made).orgs:
        (target / "orgs" / org.id).mkdir(parents=True)
        (target / "orgs" / org.id / "ca.pem").write_bytes(org.ca.read_bytes())
    (target / "network.toml").write_text((made / "network.toml").read_text())
    return target


def test_network_init_writes_a_random_id(made: Path, tmp_path: Path) -> None:
    network_id = load_network(made).network_id
    assert re.fullmatch(r"hl-[0-9a-f]{12}", network_id)
    assert f'[network]\nid = "{network_id}"' in (made / "network.toml").read_text()
    assert load_network(init_network(tmp_path / "other")).network_id != network_id


def test_without_an_id_the_network_is_named_after_its_ca_certificates(
    made: Path, tmp_path: Path
) -> None:
    directory = _without_id(_copy(made, tmp_path / "net"))
    network = load_network(directory)
    assert network.configured_id is None
    ders = b"".join(
        x509.load_pem_x509_certificate(org.ca.read_bytes()).public_bytes(Encoding.DER)
        for org in sorted(network.orgs, key=lambda org: org.id)
    )
    expected = "hl-" + hashlib.sha256(ders).hexdigest()[:12]
    assert network.network_id == expected
    # Another copy, with the organisations listed in another order: the same id.
    other = _copy(directory, tmp_path / "moved")
    toml = (other / "network.toml").read_text()
    tables = ORG_TABLE.findall(toml)
    assert len(tables) == 4
    reordered = ORG_TABLE.sub("", toml) + "".join(reversed(tables))
    (other / "network.toml").write_text(reordered)
    assert load_network(other).orgs[0].id == "school-b"
    assert load_network(other).network_id == expected
    # Another CA, another network.
    (other / "orgs" / "school-b" / "ca.pem").write_bytes(
        (other / "orgs" / "school-a" / "ca.pem").read_bytes()
    )
    assert load_network(other).network_id != expected


def test_a_derived_id_needs_every_ca_certificate(made: Path, tmp_path: Path) -> None:
    directory = _without_id(_copy(made, tmp_path / "net"))
    missing = directory / "orgs" / "parents" / "ca.pem"
    missing.unlink()
    network = load_network(directory)  # the rest of the file still loads
    with pytest.raises(NetworkConfigError) as refused:
        _ = network.network_id
    assert str(refused.value) == (
        "The network id is derived from the organisations' CA certificates, and "
        f"{missing} cannot be read as one: restore it, or set [network] id."
    )


@pytest.mark.parametrize("given", ["clinic-north", "A.b_c-9", "x" * 64])
def test_a_given_id_is_used_as_it_is(made: Path, tmp_path: Path, given: str) -> None:
    directory = _copy(made, tmp_path / "net")
    toml = directory / "network.toml"
    toml.write_text(re.sub(r'\nid = ".*"', f'\nid = "{given}"', toml.read_text(), count=1))
    assert load_network(directory).network_id == given


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ('""', "''"),
        ('"two words"', "'two words'"),
        ('"a/b"', "'a/b'"),
        ('"a+b"', "'a+b'"),
        ('"caf\u00e9"', "'caf\u00e9'"),
        (f'"{"x" * 65}"', repr("x" * 65)),
        ("7", "7"),
    ],
)
def test_an_id_that_cannot_name_a_log_is_refused(
    made: Path, tmp_path: Path, value: str, shown: str
) -> None:
    directory = _copy(made, tmp_path / "net")
    toml = directory / "network.toml"
    toml.write_text(re.sub(r'\nid = ".*"', f"\nid = {value}", toml.read_text(), count=1))
    with pytest.raises(NetworkConfigError) as refused:
        load_network(directory)
    assert str(refused.value) == (
        f"network.id must be 1 to 64 letters, digits, '-', '.' and '_', not {shown}."
    )
