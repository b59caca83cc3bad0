"""`healthledger erase DIR --child ID`: an operator erases a child's records as the server.

The child is written through the gateway as a parent would; the command then destroys
its keys on every channel and records the erasure. Afterwards the child reads as erased
(for its guardians) and the chains still verify. A child the network does not have, a
ledger that is not there or a KEK that is missing change nothing.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.cli import main
from api.services import Services
from authz.network import load_network
from devkit.serve_process import CLI_SECONDS, ServeProcess, cli_command, cli_env
from domain.errors import NotFoundError
from ledger_backends import open_ledger
from ledger_backends.keystores import open_key_store
from tests.networks import NetworkFixture, make_network

ERASED_LINE = re.compile(
    r"Erased child (\S+) at (\S+): its data keys are destroyed and the erasure is recorded on "
    r"medical, report\.\n"
)
ERASED_ON = re.compile(r"This child's records were erased on \d{4}-\d\d-\d\d\.")
NO_SUCH_CHILD = "No such child is visible to you."


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("erase") / "network")


@pytest.fixture
def net(made: NetworkFixture, tmp_path: Path) -> NetworkFixture:
    return made.copy(tmp_path / "network")


@pytest.fixture
def ledger(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


async def _as(net: NetworkFixture, ledger: str, uid: str, function: str, **args: Any) -> Any:
    """One call through a gateway on the network's ledger and keys, as user `uid`."""
    services = Services.open(load_network(net.directory), ledger)
    try:
        identity = net.identities()[uid]
        if function in ("registerChild", "acceptGuardianship"):
            return await services.gateway.submit(identity, "medical", function, args)
        return await services.gateway.evaluate(identity, "medical", function, args)
    finally:
        await services.close()


def _call(net: NetworkFixture, ledger: str, uid: str, function: str, **args: Any) -> Any:
    return asyncio.run(_as(net, ledger, uid, function, **args))


def _register(net: NetworkFixture, ledger: str, name: str = "Cleo Martin") -> str:
    child = _call(
        net,
        ledger,
        "alice",
        "registerChild",
        fullName=name,
        birthDate="2019-04-02",
        sex=None,
        otherGuardians=["bob"],
    )
    _call(net, ledger, "bob", "acceptGuardianship", childId=child["id"])
    return str(child["id"])


def _heights(ledger: str) -> dict[str, int]:
    opened = open_ledger(ledger)
    try:
        return {name: opened.channel(name).tip().height for name in ("medical", "report")}
    finally:
        opened.close()


def _erase(net: NetworkFixture, *args: str) -> list[str]:
    return ["erase", str(net.directory), *args]


def test_erase_destroys_the_childs_keys_and_records_it(
    net: NetworkFixture, ledger: str, capsys: pytest.CaptureFixture[str]
) -> None:
    child = _register(net, ledger)
    other = _register(net, ledger, "Dora Martin")
    assert main(_erase(net, "--child", child, "--ledger", ledger)) == 0
    printed = ERASED_LINE.fullmatch(capsys.readouterr().out)
    assert printed is not None and printed[1] == child
    for guardian in ("alice", "bob"):
        with pytest.raises(NotFoundError, match=ERASED_ON):
            _call(net, ledger, guardian, "readChild", childId=child)
    with pytest.raises(NotFoundError, match=NO_SUCH_CHILD):
        _call(net, ledger, "dr-house", "readChild", childId=child)
    # The other child is untouched, and every chain still verifies: nothing was rewritten.
    assert _call(net, ledger, "alice", "readChild", childId=other)["fullName"] == "Dora Martin"
    assert main(["verify", "--network", str(net.directory), "--ledger", ledger]) == 0
    assert capsys.readouterr().out.count(": ok, ") == 2
    # The keys are tombstones on both channels, dated as the receipt says.
    store = open_key_store(ledger, same_database_as_ledger=True)
    try:
        for channel in ("medical", "report"):
            stored = store.get(channel, child)
            assert stored is not None and stored.destroyed and stored.erased_at == printed[2]
    finally:
        store.close()

    # Running it again finds it done, and keeps the first date.
    before = _heights(ledger)
    assert main(_erase(net, "--child", child, "--ledger", ledger)) == 0
    again = ERASED_LINE.fullmatch(capsys.readouterr().out)
    assert again is not None and again[2] == printed[2]
    assert _heights(ledger) == before


def test_a_child_the_network_does_not_have_is_one_line_and_nothing_changes(
    net: NetworkFixture, ledger: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _register(net, ledger)
    before = _heights(ledger)
    assert main(_erase(net, "--child", "child-0000", "--ledger", ledger)) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "healthledger: the network has no child 'child-0000': nothing was erased.\n"
    )
    assert _heights(ledger) == before
    store = open_key_store(ledger, same_database_as_ledger=True)
    try:
        assert store.get("medical", "child-0000") is None  # no tombstone either
    finally:
        store.close()


def test_a_ledger_that_is_not_there_is_not_created(
    net: NetworkFixture, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "ledgr.db"
    assert main(_erase(net, "--child", "child-1", "--ledger", f"sqlite:///{typo}")) == 2
    err = capsys.readouterr().err
    assert err == (
        f"healthledger: There is no ledger at {typo}: pass the --ledger that serve uses "
        "(or fix network.toml).\n"
    )
    assert not typo.exists()


def test_a_missing_kek_erases_nothing(
    net: NetworkFixture, ledger: str, capsys: pytest.CaptureFixture[str]
) -> None:
    child = _register(net, ledger)
    kek = net.directory / "keys" / "report.kek"
    saved = kek.read_bytes()
    kek.unlink()
    before = _heights(ledger)
    assert main(_erase(net, "--child", child, "--ledger", ledger)) == 2
    err = capsys.readouterr().err
    assert err == f"healthledger: channel report: its key-encryption key {kek} is missing.\n"
    assert _heights(ledger) == before
    kek.write_bytes(saved)
    kek.chmod(0o600)
    assert _call(net, ledger, "alice", "readChild", childId=child)["fullName"] == "Cleo Martin"


def test_a_running_server_honours_an_erasure_made_beside_it(
    net: NetworkFixture, ledger: str, tmp_path: Path
) -> None:
    child = _register(net, ledger)
    query = {"query": "query($id: ID!) { child(id: $id) { fullName } }", "variables": {"id": child}}
    with ServeProcess(net.directory, ledger, tmp_path / "serve.log").start() as server:
        with httpx.Client(base_url=server.base_url, verify=net.client_context("alice")) as alice:
            assert alice.post("/graphql", json=query).json() == {
                "data": {"child": {"fullName": "Cleo Martin"}}
            }
            erased = subprocess.run(
                cli_command("erase", str(net.directory), "--child", child, "--ledger", ledger),
                capture_output=True,
                text=True,
                env=cli_env(),
                timeout=CLI_SECONDS,
                check=False,
            )
            assert erased.returncode == 0, erased.stderr
            assert ERASED_LINE.fullmatch(erased.stdout)
            # The server keeps a child's key for a few seconds at most (encryption.keyring).
            deadline = time.monotonic() + 15
            while True:
                body = alice.post("/graphql", json=query).json()
                if body.get("errors"):
                    break
                assert body == {"data": {"child": {"fullName": "Cleo Martin"}}}
                assert time.monotonic() < deadline, "the server still reads an erased child"
                time.sleep(0.2)
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "NOT_FOUND"
        assert ERASED_ON.fullmatch(error["message"])
        assert server.terminate() in (0, -signal.SIGTERM)
