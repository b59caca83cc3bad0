"""`healthledger keys init` and `keys rotate`: KEK files made once, data keys rewrapped.

Rotation is checked on the stored keys themselves (every one rewrapped, each child's
data key the same before and after, the old KEK kept owner-only beside the new one)
and against a running `healthledger serve`: readers and writers see no failure while
`keys rotate` runs, and the server starts again afterwards.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from api import cli
from api.cli import main
from authz.network import load_network
from devkit.devnet import ensure_dev_network
from devkit.serve_process import CLI_SECONDS, ServeProcess, cli_command, cli_env
from encryption.keks import Kek, begin_rotation, write_kek_file
from encryption.keyring import Keyring
from ledger_backends import open_ledger
from ledger_backends.keystores import KeyStore, open_key_store
from tests.api_client import CARD, CHILD, REGISTER_CHILD, GraphQLClient, sign_and_accept
from tests.networks import NetworkFixture, make_network

NONCE = b"\0" * 12


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def _no_settling(monkeypatch: pytest.MonkeyPatch) -> None:
    """No server runs beside the rotations run in this process: nothing to wait for. (The
    test with a running server runs the command in a process of its own, waiting.)"""
    monkeypatch.setattr(cli, "ROTATION_SETTLE_SECONDS", 0)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("keys") / "network")


@pytest.fixture
def net(made: NetworkFixture, tmp_path: Path) -> NetworkFixture:
    """A copy of the network of its own: rotations change its KEK files."""
    return made.copy(tmp_path / "network")


@pytest.fixture
def ledger(tmp_path: Path) -> str:
    """A new SQLite ledger, which is also where the channels' keys are kept."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    open_ledger(url).close()
    return url


@pytest.fixture
def store(ledger: str) -> Iterator[KeyStore]:
    opened = open_key_store(ledger, same_database_as_ledger=True)
    yield opened
    opened.close()


def _keyring(net: NetworkFixture, store: KeyStore, channel: str = "medical") -> Keyring:
    return Keyring(channel, load_network(net.directory).kek_source(channel), store, cache_seconds=0)


def _sealed(keyring: Keyring, children: list[str]) -> dict[str, bytes]:
    """One sealed value per child under its data key (made now)."""
    return {
        child: keyring.sealing_key(child).encrypt(NONCE, child.encode(), None) for child in children
    }


def _rotate(net: NetworkFixture, ledger: str, *extra: str) -> list[str]:
    return ["keys", "rotate", str(net.directory), "--ledger", ledger, *extra]


# -- keys init -------------------------------------------------------------------------------


def test_keys_init_makes_missing_kek_files_only(
    net: NetworkFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = net.directory / "keys"
    report = (keys / "report.kek").read_bytes()
    (keys / "medical.kek").unlink()
    assert main(["keys", "init", str(net.directory)]) == 0
    out = capsys.readouterr().out.splitlines()
    log = net.directory / "log"
    assert out == [
        f"medical: made {keys / 'medical.kek'} (mode 0600); back it up apart from the ledger",
        f"report: {keys / 'report.kek'} is there already; left as it is",
        f"medical: the log key {log / 'medical.key'} is there already; left as it is",
        f"report: the log key {log / 'report.key'} is there already; left as it is",
    ]
    assert _mode(keys / "medical.kek") == 0o600
    assert (keys / "report.kek").read_bytes() == report
    medical = (keys / "medical.kek").read_bytes()
    assert main(["keys", "init", str(net.directory)]) == 0
    assert "made" not in capsys.readouterr().out
    assert (keys / "medical.kek").read_bytes() == medical


def test_keys_init_without_a_network_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "init", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "network.toml is missing" in err
    assert not (tmp_path / "keys").exists()


def test_an_older_dev_network_gets_its_kek_files(
    net: NetworkFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.rmtree(net.directory / "keys")
    assert ensure_dev_network(net.directory) is False
    assert "Made the key-encryption key of channel medical" in capsys.readouterr().out
    network = load_network(net.directory)
    for channel in ("medical", "report"):
        assert len(network.kek_source(channel).load()) == 1


# -- keys rotate -----------------------------------------------------------------------------


def test_rotate_rewraps_every_key_and_keeps_the_old_kek(
    net: NetworkFixture, ledger: str, store: KeyStore, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = net.directory / "keys"
    before = _keyring(net, store)
    (old,) = load_network(net.directory).kek_source("medical").load()
    children = [f"child-{n}" for n in range(1203)]  # more than two batches of 500
    sealed = _sealed(before, children)
    before.destroy("child-7", "2026-01-01T00:00:00.000000Z")
    _keyring(net, store, "report").sealing_key("other")
    report_ids = store.kek_ids("report")

    assert main(_rotate(net, ledger, "--channel", "medical")) == 0
    out = capsys.readouterr().out.splitlines()
    (new,) = load_network(net.directory).kek_source("medical").load()
    kept = keys / f"medical.kek.{old.id}.old"
    assert out == [
        f"medical: the new key-encryption key is {keys / 'medical.kek.next'}; waiting 0 s for "
        "running servers to wrap new keys with it.",
        f"medical: rewrapped 1202 data keys under the new key-encryption key {new.id}, "
        f"now {keys / 'medical.kek'}.",
        f"The old key-encryption key {old.id} is kept in {kept} (mode 0600): it opens key "
        "store backups made before this rotation; delete it when they are gone.",
    ]
    assert new.id != old.id
    assert _mode(kept) == 0o600 and _mode(keys / "medical.kek") == 0o600
    assert Kek.from_text(kept.read_text(), "kept") == old
    assert not (keys / "medical.kek.next").exists()
    assert store.kek_ids("medical") == {new.id}
    # Each child's data key is the one it had: what was sealed opens.
    after = _keyring(net, store)
    for child, value in sealed.items():
        if child == "child-7":
            assert after.opening_key(child) is None  # destroyed stays destroyed
            continue
        opener = after.opening_key(child)
        assert opener is not None and opener.decrypt(NONCE, value, None) == child.encode()
    # The other channel was not touched.
    assert store.kek_ids("report") == report_ids


def test_rotate_again_rewraps_under_yet_another_kek(
    net: NetworkFixture, ledger: str, store: KeyStore, capsys: pytest.CaptureFixture[str]
) -> None:
    sealed = _sealed(_keyring(net, store), ["a", "b"])
    assert main(_rotate(net, ledger, "--channel", "medical")) == 0
    assert main(_rotate(net, ledger, "--channel", "medical")) == 0
    out = capsys.readouterr().out
    assert out.count("rewrapped 2 data keys") == 2
    assert len(list((net.directory / "keys").glob("medical.kek.*.old"))) == 2
    keyring = _keyring(net, store)
    for child, value in sealed.items():
        opener = keyring.opening_key(child)
        assert opener is not None and opener.decrypt(NONCE, value, None) == child.encode()


def test_an_interrupted_rotation_is_finished_with_the_same_new_kek(
    net: NetworkFixture, ledger: str, store: KeyStore, capsys: pytest.CaptureFixture[str]
) -> None:
    sealed = _sealed(_keyring(net, store), [f"c{n}" for n in range(10)])
    source = load_network(net.directory).kek_source("medical")
    _, new = begin_rotation(source)  # then the operator's terminal closed
    assert main(_rotate(net, ledger, "--channel", "medical")) == 0
    assert "rewrapped 10 data keys" in capsys.readouterr().out
    assert source.load() == [new]
    keyring = _keyring(net, store)
    for child, value in sealed.items():
        opener = keyring.opening_key(child)
        assert opener is not None and opener.decrypt(NONCE, value, None) == child.encode()


def test_a_kek_from_a_variable_cannot_be_rotated(
    net: NetworkFixture, ledger: str, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = net.directory / "network.toml"
    medical = 'name = "medical"\nmembers = ["hospital", "parents"]\n'
    toml.write_text(
        toml.read_text().replace(medical, f'{medical}[channels.keys]\nkek_env = "MEDICAL_KEK"\n')
    )
    before = sorted(p.name for p in (net.directory / "keys").iterdir())
    assert main(_rotate(net, ledger, "--channel", "medical")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(
        "healthledger: channel medical: its key-encryption key comes from "
        "$MEDICAL_KEK, which healthledger cannot rotate"
    )
    assert sorted(p.name for p in (net.directory / "keys").iterdir()) == before


def test_a_kek_that_does_not_open_the_stored_keys_is_not_rotated(
    net: NetworkFixture, ledger: str, store: KeyStore, capsys: pytest.CaptureFixture[str]
) -> None:
    _sealed(_keyring(net, store), ["a"])
    medical = net.directory / "keys" / "medical.kek"
    medical.unlink()
    write_kek_file(medical, Kek.generate())  # someone "restored" the wrong file
    assert main(_rotate(net, ledger, "--channel", "medical")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("healthledger: channel medical: ")
    assert not medical.with_name("medical.kek.next").exists()
    assert not list(medical.parent.glob("*.old"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--channel", "dental"], "The network has no channel 'dental'"),
        (["--channel", "medical", "--ledger", "sqlite:///{tmp}/typo.db"], "There is no ledger at"),
        (["--channel", "medical", "--ledger", "mongodb://h/x"], "mongodb"),
    ],
)
def test_rotate_mistakes_are_one_line_and_change_nothing(
    net: NetworkFixture,
    tmp_path: Path,
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = sorted(p.name for p in (net.directory / "keys").iterdir())
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(["keys", "rotate", str(net.directory), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert sorted(p.name for p in (net.directory / "keys").iterdir()) == before
    assert not (tmp_path / "typo.db").exists()


# -- rotation under a running server ----------------------------------------------------------


class _Users:
    """GraphQL clients of one running server, one per user (tests.api_client.Users)."""

    def __init__(self, net: NetworkFixture, base_url: str) -> None:
        self.net = net
        self.base_url = base_url
        self.clients: dict[str, GraphQLClient] = {}

    def __call__(self, uid: str) -> GraphQLClient:
        if uid not in self.clients:
            context = self.net.client_context(uid)
            self.clients[uid] = GraphQLClient(self.base_url, context, uid)
        return self.clients[uid]

    def fresh(self, uid: str) -> GraphQLClient:
        """A client of its own, for a thread."""
        return GraphQLClient(self.base_url, self.net.client_context(uid), uid)

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


def _register(client: GraphQLClient, name: str) -> str:
    found = client.data(REGISTER_CHILD, {"input": {"fullName": name, "birthDate": "2019-04-02"}})
    return str(found["registerChild"]["id"])


def test_a_running_server_reads_and_writes_throughout_a_rotation(
    net: NetworkFixture, ledger: str, store: KeyStore, tmp_path: Path
) -> None:
    # Keys enough for several batches, so that the rotation takes a while.
    seeded = _keyring(net, store)
    for n in range(2000):
        seeded.sealing_key(f"seed-{n}")
    (old,) = load_network(net.directory).kek_source("medical").load()
    log = tmp_path / "serve.log"
    with ServeProcess(net.directory, ledger, log).start() as server:
        users = _Users(net, server.base_url)
        try:
            children = [_register(users("alice"), f"Kid {n}") for n in range(3)]
            for child in children:
                sign_and_accept(users, child)
            stop = threading.Event()
            failures: list[str] = []
            reads: list[str] = []
            written: list[str] = []

            def read() -> None:
                client = users.fresh("alice")
                try:
                    while not stop.is_set():
                        for child in children:
                            for query in (CHILD, CARD):
                                body = client.execute(query, {"id": child, "child": child})
                                if body.get("errors"):
                                    failures.append(f"read {child}: {body['errors']}")
                                reads.append(child)
                finally:
                    client.close()

            def write() -> None:
                client = users.fresh("bob")
                try:
                    while not stop.is_set():
                        name = f"Rota {secrets.token_hex(4)}"
                        try:
                            written.append(_register(client, name))
                        except AssertionError as exc:
                            failures.append(f"write {name}: {exc}")
                finally:
                    client.close()

            workers = [threading.Thread(target=read) for _ in range(2)]
            workers.append(threading.Thread(target=write))
            for worker in workers:
                worker.start()
            try:
                before = len(reads)
                rotated = subprocess.run(
                    cli_command(*_rotate(net, ledger, "--channel", "medical")),
                    capture_output=True,
                    text=True,
                    env=cli_env(),
                    timeout=CLI_SECONDS,
                    check=False,
                )
                during = len(reads)
                # Reads and writes go on once the new KEK is the channel's.
                deadline = len(reads) + 30
                while len(reads) < deadline and all(w.is_alive() for w in workers):
                    stop.wait(0.05)
            finally:
                stop.set()
                for worker in workers:
                    worker.join(timeout=60)
            assert rotated.returncode == 0, rotated.stderr
            assert "rewrapped " in rotated.stdout
            assert failures == []
            # Reads went on while the command ran, and after it.
            assert before < during < len(reads) and written
        finally:
            users.close()
        assert server.terminate() in (0, -signal.SIGTERM)

        (new,) = load_network(net.directory).kek_source("medical").load()
        assert new.id != old.id
        # Started again on the new KEK alone, it reads everything: what was written before,
        # during and after the rotation.
        server.restart()
        users = _Users(net, server.base_url)
        try:
            for child in children:
                assert users("alice").data(CHILD, {"id": child})["child"]["id"] == child
            for child in written:
                assert users("bob").data(CHILD, {"id": child})["child"]["id"] == child
        finally:
            users.close()
        assert server.terminate() in (0, -signal.SIGTERM)
