"""`healthledger serve`: configuration mistakes end it with exit 2 and one sentence; probes.

Each mistake an operator can make before the server starts (no network, bad
TOML, a missing CA, an unreachable ledger, a missing or wrong key-encryption key,
a port in use) is run through the
real command in a subprocess: exit code 2, one line on stderr naming what to
fix, no traceback, and no server left listening.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.cli import main
from api.services import Services
from authz.network import load_network
from devkit.ports import listening_socket
from devkit.serve_process import ServeProcess, cli_command, cli_env
from tests.api_client import RedisServer
from tests.networks import NetworkFixture, make_network


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("serve") / "network")


def serve_fails(*args: str, env: dict[str, str] | None = None) -> str:
    """Run serve, which must refuse to start; the one line it printed."""
    result = subprocess.run(
        cli_command("serve", *args),
        capture_output=True,
        text=True,
        timeout=60,
        env={**cli_env(), **(env or {})},
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return lines[0]


def test_no_network_toml(tmp_path: Path) -> None:
    line = serve_fails("--network", str(tmp_path))
    assert "network.toml is missing" in line
    assert "healthledger network init" in line


def test_no_network_given() -> None:
    assert "--network DIR" in serve_fails()  # and no HEALTHLEDGER_NETWORK either


def test_malformed_network_toml(net: NetworkFixture, tmp_path: Path) -> None:
    directory = net.copy(tmp_path / "network").directory
    (directory / "network.toml").write_text("[server\nport = 8443\n")
    line = serve_fails("--network", str(directory))
    assert "network.toml is not valid TOML" in line


def test_wrong_value_in_network_toml(net: NetworkFixture, tmp_path: Path) -> None:
    directory = net.copy(tmp_path / "network").directory
    toml = (directory / "network.toml").read_text()
    (directory / "network.toml").write_text(toml.replace("port = 8443", 'port = "eighty"'))
    assert "server.port has the wrong type" in serve_fails("--network", str(directory))


def test_missing_ca_file(net: NetworkFixture, tmp_path: Path) -> None:
    directory = net.copy(tmp_path / "network").directory
    (directory / "orgs" / "school-b" / "ca.pem").unlink()
    line = serve_fails("--network", str(directory))
    assert "orgs/school-b/ca.pem does not exist" in line
    assert "CA certificate of organisation 'school-b'" in line


def test_ca_file_that_is_not_a_certificate(net: NetworkFixture, tmp_path: Path) -> None:
    directory = net.copy(tmp_path / "network").directory
    (directory / "orgs" / "parents" / "ca.pem").write_text("not a certificate\n")
    assert "is not a PEM certificate" in serve_fails("--network", str(directory))


def test_server_key_that_does_not_match(net: NetworkFixture, tmp_path: Path) -> None:
    directory = net.copy(tmp_path / "network").directory
    (directory / "tls" / "server.key").write_bytes(
        (directory / "orgs/hospital/ca.key").read_bytes()
    )
    line = serve_fails("--network", str(directory))
    assert "cannot be used for TLS" in line


@pytest.mark.parametrize(
    "url",
    ["postgresql://postgres@127.0.0.1:1/test", "redis://127.0.0.1:1/0"],
    ids=["postgresql", "redis"],
)
def test_unreachable_ledger(net: NetworkFixture, url: str) -> None:
    started = time.monotonic()
    line = serve_fails("--network", str(net.directory), "--ledger", url)
    assert f"The ledger at {url} cannot be used" in line
    assert "start it, or fix the URL" in line
    assert time.monotonic() - started < 30


def test_unreachable_ledger_named_in_network_toml(net: NetworkFixture, tmp_path: Path) -> None:
    directory = net.copy(tmp_path / "network").directory
    toml = (directory / "network.toml").read_text()
    url = "redis://127.0.0.1:1/0"
    (directory / "network.toml").write_text(
        toml.replace('name = "report"', f'name = "report"\nledger = "{url}"')
    )
    assert f"The ledger at {url} cannot be used" in serve_fails("--network", str(directory))


def test_unknown_ledger_scheme(net: NetworkFixture) -> None:
    line = serve_fails("--network", str(net.directory), "--ledger", "mongodb://127.0.0.1/x")
    assert "mongodb" in line


@pytest.fixture
def occupied_port() -> Iterator[int]:
    with listening_socket() as listener:
        yield listener.getsockname()[1]


def test_port_in_use(net: NetworkFixture, occupied_port: int) -> None:
    line = serve_fails("--network", str(net.directory), "--port", str(occupied_port))
    assert f"Port {occupied_port} on 127.0.0.1 (the API) is already in use" in line


def test_health_port_in_use(net: NetworkFixture, occupied_port: int) -> None:
    line = serve_fails(
        "--network",
        str(net.directory),
        "--port",
        "0",
        "--health-port",
        str(occupied_port),
    )
    assert f"Port {occupied_port} on 127.0.0.1 (the health port) is already in use" in line


def test_port_out_of_range(net: NetworkFixture) -> None:
    line = serve_fails("--network", str(net.directory), "--port", "70000")
    assert "--port must be between 0 (any free port) and 65535" in line


def test_a_health_port_left_to_the_system_needs_one_worker(net: NetworkFixture) -> None:
    line = serve_fails(
        "--network", str(net.directory), "--workers", "2", "--port", "0", "--health-port", "0"
    )
    assert "--health-port 0 needs --workers 1" in line


def test_health_port_from_environment_must_be_a_number(net: NetworkFixture) -> None:
    line = serve_fails("--network", str(net.directory), env={"HEALTHLEDGER_HEALTH_PORT": "healthz"})
    assert "HEALTHLEDGER_HEALTH_PORT must be a port number" in line


def test_health_port_answers_probes_without_a_certificate(
    net: NetworkFixture, tmp_path: Path
) -> None:
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    with ServeProcess(net.directory, ledger, tmp_path / "serve.log").start() as server:
        # Started on port 0 for both, it says which ports it bound.
        assert f"Uvicorn running on {server.base_url} " in server.log_text()
        assert f"Health probes on {server.health_url} " in server.log_text()
        health = server.health_url
        assert httpx.get(f"{health}/healthz").text == "ok\n"
        ready = httpx.get(f"{health}/readyz")
        assert (ready.status_code, ready.text) == (200, "ready\n")
        # Only the probes: nothing else of the API is reachable without a certificate.
        for path in ("/graphql", "/metrics"):
            assert httpx.get(f"{health}{path}").status_code == 404
        assert httpx.post(f"{health}/graphql", json={"query": "{ me { uid } }"}).status_code in (
            404,
            405,
        )
        # The API port itself still demands a client certificate at the handshake.
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.base_url}/healthz", verify=net.client_context(None))
        authenticated = httpx.get(f"{server.base_url}/healthz", verify=net.client_context("alice"))
        assert authenticated.status_code == 200
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert server.terminate() in (0, -signal.SIGTERM)


def test_workers_share_the_api_port_and_the_health_port(
    net: NetworkFixture, tmp_path: Path
) -> None:
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    log = tmp_path / "serve.log"
    with ServeProcess(net.directory, ledger, log, workers=2).start() as server:
        with httpx.Client(base_url=server.base_url, verify=net.client_context("alice")) as alice:
            for _ in range(4):
                assert alice.post("/graphql", json={"query": "{ me { uid } }"}).json() == {
                    "data": {"me": {"uid": "alice"}}
                }
        assert httpx.get(f"{server.health_url}/readyz").status_code == 200
        assert server.terminate() in (0, -signal.SIGTERM)
    assert server.log_text().count(f"Health probes on {server.health_url} ") == 2
    assert server.log_text().count("Application shutdown complete") == 2


# -- key-encryption keys ---------------------------------------------------------------------

REGISTER = """
mutation { registerChild(input: {fullName: "Kim Lee", birthDate: "2019-04-02"}) { id } }"""


def _ledger_with_a_child(net: NetworkFixture, directory: Path, ledger: str, log: Path) -> str:
    """Serve `directory` on `ledger` long enough for alice to register a child: its data keys
    are then in the key store, wrapped by the channels' KEKs. Returns the child's id."""
    with ServeProcess(directory, ledger, log).start() as server:
        with httpx.Client(base_url=server.base_url, verify=net.client_context("alice")) as alice:
            body = alice.post("/graphql", json={"query": REGISTER}).json()
        assert "errors" not in body, body
        assert server.terminate() in (0, -signal.SIGTERM)
    return str(body["data"]["registerChild"]["id"])


def test_missing_kek_file(net: NetworkFixture, tmp_path: Path) -> None:
    directory = net.copy(tmp_path / "network").directory
    (directory / "keys" / "report.kek").unlink()
    line = serve_fails("--network", str(directory), "--ledger", "memory://")
    assert line.startswith("healthledger: channel report: ")
    assert f"{directory / 'keys' / 'report.kek'} is missing" in line


def test_kek_file_open_to_others(net: NetworkFixture, tmp_path: Path) -> None:
    directory = net.copy(tmp_path / "network").directory
    (directory / "keys" / "medical.kek").chmod(0o644)
    line = serve_fails("--network", str(directory), "--ledger", "memory://")
    assert line.startswith("healthledger: channel medical: ")
    assert "must be readable by its owner only (chmod 600)" in line


def test_kek_file_that_is_not_a_key(net: NetworkFixture, tmp_path: Path) -> None:
    directory = net.copy(tmp_path / "network").directory
    (directory / "keys" / "medical.kek").write_text("not a key\n")
    line = serve_fails("--network", str(directory), "--ledger", "memory://")
    assert line.startswith("healthledger: channel medical: ") and "base64" in line


def test_kek_variable_not_set(net: NetworkFixture, tmp_path: Path) -> None:
    directory = net.copy(tmp_path / "network").directory
    toml = (directory / "network.toml").read_text()
    medical = 'name = "medical"\nmembers = ["hospital", "parents"]\n'
    (directory / "network.toml").write_text(
        toml.replace(medical, f'{medical}[channels.keys]\nkek_env = "HL_TEST_MEDICAL_KEK"\n')
    )
    line = serve_fails("--network", str(directory), "--ledger", "memory://")
    assert line == (
        "healthledger: channel medical: its key-encryption key comes from "
        "$HL_TEST_MEDICAL_KEK, which is not set."
    )


def test_kek_replaced_after_data_was_written(net: NetworkFixture, tmp_path: Path) -> None:
    directory = net.copy(tmp_path / "network").directory
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    _ledger_with_a_child(net, directory, ledger, tmp_path / "serve.log")
    medical = directory / "keys" / "medical.kek"
    medical.unlink()
    assert main(["keys", "init", str(directory)]) == 0  # a new, other KEK under the old name
    line = serve_fails("--network", str(directory), "--ledger", ledger)
    assert line.startswith("healthledger: channel medical: its data keys are wrapped by ")
    assert str(medical) in line


def test_kek_deleted_after_data_was_written_and_restored(
    net: NetworkFixture, tmp_path: Path
) -> None:
    directory = net.copy(tmp_path / "network").directory
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    child = _ledger_with_a_child(net, directory, ledger, tmp_path / "serve.log")
    medical = directory / "keys" / "medical.kek"
    saved = medical.read_bytes()
    medical.unlink()
    line = serve_fails("--network", str(directory), "--ledger", ledger)
    assert line == f"healthledger: channel medical: its key-encryption key {medical} is missing."
    # With the KEK back, the server starts and reads what was written.
    medical.write_bytes(saved)
    medical.chmod(0o600)
    with ServeProcess(directory, ledger, tmp_path / "serve.log").start() as server:
        with httpx.Client(base_url=server.base_url, verify=net.client_context("alice")) as alice:
            query = "query($id: ID!) { child(id: $id) { fullName } }"
            body = alice.post("/graphql", json={"query": query, "variables": {"id": child}})
        assert body.json() == {"data": {"child": {"fullName": "Kim Lee"}}}
        assert server.terminate() in (0, -signal.SIGTERM)


def test_unreachable_key_store(net: NetworkFixture, tmp_path: Path) -> None:
    directory = net.copy(tmp_path / "network").directory
    toml = (directory / "network.toml").read_text()
    medical = 'name = "medical"\nmembers = ["hospital", "parents"]\n'
    url = "redis://127.0.0.1:1/0"
    (directory / "network.toml").write_text(
        toml.replace(medical, f'{medical}[channels.keys]\nurl = "{url}"\n')
    )
    line = serve_fails("--network", str(directory), "--ledger", "memory://")
    assert line.startswith(f"healthledger: The key store of channel medical at {url} cannot be")
    assert "fix [channels.keys] url" in line


def test_readiness_asks_a_key_store_of_its_own_too(net: NetworkFixture, tmp_path: Path) -> None:
    directory = net.copy(tmp_path / "network").directory
    redis = RedisServer()
    redis.start()
    try:
        toml = (directory / "network.toml").read_text()
        medical = 'name = "medical"\nmembers = ["hospital", "parents"]\n'
        (directory / "network.toml").write_text(
            toml.replace(medical, f'{medical}[channels.keys]\nurl = "{redis.url}"\n')
        )
        services = Services.open(load_network(directory), f"sqlite:///{tmp_path / 'ledger.db'}")
        try:
            assert len(services.keyrings.stores) == 2
            assert asyncio.run(services.ready())
            redis.kill()  # the ledger still answers; the medical channel's keys do not
            assert not asyncio.run(services.ready())
        finally:
            asyncio.run(services.close())
    finally:
        redis.close()
