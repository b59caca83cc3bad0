"""The channels' log keys: made by `network init`, `keys init` and the development network,
never overwritten, owner-only on disk, published as signed-note verifier keys; and `serve`
refusing to start without a usable one (exit 2, one line naming the channel).
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

from api.cli import main
from authz import provision
from authz.network import load_network
from devkit.devnet import ensure_dev_network
from devkit.serve_process import CLI_SECONDS, cli_command, cli_env
from tests.networks import NetworkFixture, make_network

CHANNELS = ("medical", "report")
VERIFIER_KEY = re.compile(r"healthledger/hl-[0-9a-f]{12}/(medical|report)\+[0-9a-f]{8}\+\S+")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _public_key(key_file: Path) -> bytes:
    private = load_pem_private_key(key_file.read_bytes(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _expected_pub(network_dir: Path, channel: str) -> str:
    """The verifier key line for the channel's key, by the C2SP signed-note rule."""
    name = f"healthledger/{load_network(network_dir).network_id}/{channel}"
    material = b"\x01" + _public_key(network_dir / "log" / f"{channel}.key")
    key_id = hashlib.sha256(name.encode() + b"\n" + material).digest()[:4]
    return f"{name}+{key_id.hex()}+{base64.b64encode(material).decode()}\n"


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("log-keys") / "network")


@pytest.fixture
def net(made: NetworkFixture, tmp_path: Path) -> NetworkFixture:
    """A copy of its own: these tests remove and change key files."""
    return made.copy(tmp_path / "network")


def _older_network(net: NetworkFixture) -> Path:
    """The network as `network init` made it before checkpoints: no log/, no [network] id."""
    shutil.rmtree(net.directory / "log")
    toml = net.directory / "network.toml"
    toml.write_text(re.sub(r"\[network\]\nid = .*\n\n", "", toml.read_text()))
    assert load_network(net.directory).configured_id is None
    return net.directory


def test_network_init_makes_an_owner_only_key_pair_per_channel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["network", "init", str(tmp_path / "net")]) == 0
    target = tmp_path / "net"
    assert f"  channel log keys   {target / 'log'} (they sign" in capsys.readouterr().out
    assert _mode(target / "log") == 0o700
    assert sorted(p.name for p in (target / "log").iterdir()) == [
        "medical.key",
        "medical.pub",
        "report.key",
        "report.pub",
    ]
    for channel in CHANNELS:
        key = target / "log" / f"{channel}.key"
        assert _mode(key) == 0o600
        assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----\n")  # PKCS#8, clear
        pub = (target / "log" / f"{channel}.pub").read_text()
        assert VERIFIER_KEY.fullmatch(pub.strip()), pub
        assert pub == _expected_pub(target, channel)
    assert _public_key(target / "log" / "medical.key") != _public_key(target / "log" / "report.key")


def test_keys_init_gives_an_older_network_its_log_keys_and_keeps_them(
    net: NetworkFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = _older_network(net)
    assert main(["keys", "init", str(directory)]) == 0
    out = capsys.readouterr().out.splitlines()
    log = directory / "log"
    for channel in CHANNELS:
        assert (
            f"{channel}: made the log key {log / f'{channel}.key'} (mode 0600) and its public "
            f"key {log / f'{channel}.pub'}; back the key up"
        ) in out
        assert _mode(log / f"{channel}.key") == 0o600
        # Without [network] id, the origin names the network after its CA certificates.
        assert (log / f"{channel}.pub").read_text() == _expected_pub(directory, channel)
    assert _mode(log) == 0o700
    keys = {channel: (log / f"{channel}.key").read_bytes() for channel in CHANNELS}
    assert main(["keys", "init", str(directory)]) == 0
    assert capsys.readouterr().out.splitlines()[-2:] == [
        f"medical: the log key {log / 'medical.key'} is there already; left as it is",
        f"report: the log key {log / 'report.key'} is there already; left as it is",
    ]
    assert {channel: (log / f"{channel}.key").read_bytes() for channel in CHANNELS} == keys


def test_only_the_missing_key_is_made(net: NetworkFixture) -> None:
    log = net.directory / "log"
    report = (log / "report.key").read_bytes()
    (log / "medical.key").unlink()
    (log / "medical.pub").unlink()
    found = provision.make_missing_log_keys(net.directory)
    assert found.made == {"medical": log / "medical.key"}
    assert found.present == {"report": log / "report.key"}
    assert found.republished == {}
    assert (log / "report.key").read_bytes() == report
    assert (log / "medical.pub").read_text() == _expected_pub(net.directory, "medical")


def test_a_public_file_that_no_longer_matches_is_written_anew(
    net: NetworkFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    log = net.directory / "log"
    key = (log / "medical.key").read_bytes()
    toml = net.directory / "network.toml"
    toml.write_text(re.sub(r'\nid = ".*"', '\nid = "clinic-north"', toml.read_text(), count=1))
    (log / "report.pub").unlink()
    assert main(["keys", "init", str(net.directory)]) == 0
    out = capsys.readouterr().out.splitlines()
    for channel in CHANNELS:
        pub = log / f"{channel}.pub"
        assert f"{channel}: wrote the log public key {pub} anew from the log key" in out
        assert pub.read_text().startswith(f"healthledger/clinic-north/{channel}+")
        assert pub.read_text() == _expected_pub(net.directory, channel)
    assert (log / "medical.key").read_bytes() == key


def test_an_older_dev_network_gets_its_log_keys(
    net: NetworkFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = _older_network(net)
    assert ensure_dev_network(directory) is False
    out = capsys.readouterr().out
    for channel in CHANNELS:
        assert f"Made the log key of channel {channel}: {directory / 'log' / channel}.key" in out
        assert (directory / "log" / f"{channel}.pub").read_text() == _expected_pub(
            directory, channel
        )


# -- serve refuses to start without a usable log key ----------------------------------------


def serve_fails(directory: Path) -> str:
    """Run serve on `directory`, which must refuse to start; the one line it printed."""
    result = subprocess.run(
        cli_command("serve", "--network", str(directory), "--ledger", "memory://", "--port", "0"),
        capture_output=True,
        text=True,
        timeout=CLI_SECONDS,
        env=cli_env(),
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_serve_refuses_a_missing_log_key(net: NetworkFixture) -> None:
    key = net.directory / "log" / "report.key"
    key.unlink()
    assert serve_fails(net.directory) == (
        f"healthledger: channel report: its log key {key} is missing: make it with "
        f"'healthledger keys init {net.directory}' (or restore it from a backup: a new key is "
        "a new log identity)."
    )


def test_serve_refuses_a_log_key_open_to_others(net: NetworkFixture) -> None:
    key = net.directory / "log" / "medical.key"
    key.chmod(0o644)
    assert serve_fails(net.directory) == (
        f"healthledger: channel medical: its log key {key} must be readable by its owner only "
        "(chmod 600)."
    )


def test_serve_refuses_a_log_key_it_cannot_read_as_one(net: NetworkFixture) -> None:
    key = net.directory / "log" / "medical.key"
    key.write_text("not a key\n")
    assert serve_fails(net.directory) == (
        f"healthledger: channel medical: its log key {key} is not an unencrypted PKCS#8 PEM "
        "private key."
    )


def test_serve_refuses_a_public_file_of_another_key(net: NetworkFixture) -> None:
    log = net.directory / "log"
    (log / "medical.pub").write_bytes((log / "report.pub").read_bytes())
    line = serve_fails(net.directory)
    assert line.startswith(f"healthledger: channel medical: its log public key {log}/medical.pub")
    assert line.endswith(f"write it anew with 'healthledger keys init {net.directory}'.")
