"""`healthledger witness`: what it keeps, what it accepts, and the one line it exits 1 with.

A real server over mutual TLS (memory ledger); the witness is the parents' association,
with an admin certificate of its own. Logs that misbehave are played by the state
directory: a checkpoint kept there that the log's current tree does not extend, signed
with the log's own key, is what a witness holds after the operator rewrote history
(tests/test_witness_forgery.py does that rewrite for real).
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.cli import main
from authz import provision
from authz.network import load_network
from checkpoints import LogKey, checkpoint_body, key_id, log_origin, read_log_key
from checkpoints.signer import SIGNATURE_DASH
from ledger_backends.proofs import TreeHead
from proofcheck.witness import WitnessConfig, run
from tests.api_client import Api, api_server, register, sign_and_accept, update_card
from tests.networks import NetworkFixture, make_network

WITNESS_UID = "parents-witness"
FIRST = re.compile(r"witness: channel (\S+): tree of (\d+) leaves, its first checkpoint kept")
LATER = re.compile(r"witness: channel (\S+): tree of (\d+) leaves, consistent with (\d+)")


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    fixture = make_network(tmp_path_factory.mktemp("witness") / "network")
    provision.enroll(fixture.directory, org="parents", uid=WITNESS_UID, role="admin")
    return fixture


@pytest.fixture(scope="module")
def api(net: NetworkFixture) -> Iterator[Api]:
    with api_server(net, "memory://") as running:
        child = register(running)
        sign_and_accept(running, child)
        yield running


def witness(
    api: Api, state: Path, *channels: str, network: Path | None = None, server: str = ""
) -> int:
    return main(
        [
            *("witness", "--network", str(network or api.net.directory)),
            *("--org", "parents", "--uid", WITNESS_UID, "--once"),
            *("--server", server or api.base_url, "--state", str(state)),
            *(arg for channel in channels for arg in ("--channel", channel)),
        ]
    )


def current(api: Api, channel: str = "medical") -> tuple[int, bytes]:
    """The size and root of the log's current checkpoint."""
    lines = api.get(f"/checkpoint/{channel}").text.split("\n")
    return int(lines[1]), base64.b64decode(lines[2])


def signed_note(net: NetworkFixture, size: int, root: bytes) -> str:
    """A checkpoint note of the medical log of `size` leaves and `root`, signed by its key."""
    origin = log_origin(load_network(net.directory).network_id, "medical")
    signer = read_log_key(net.directory, "medical")
    body = checkpoint_body(origin, TreeHead(size, root))
    stamp = key_id(origin, signer.public_key) + signer.sign(body.encode())
    return f"{body}\n{SIGNATURE_DASH} {origin} {base64.b64encode(stamp).decode()}\n"


def keep(net: NetworkFixture, state: Path, note: str) -> None:
    """A witness state that pinned the network's log key and kept `note`."""
    state.mkdir()
    shutil.copy(net.directory / "log" / "medical.pub", state / "medical.pub")
    (state / "medical.checkpoint").write_text(note)


def test_the_first_round_pins_the_key_then_each_round_checks_the_log_grew(
    api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    assert witness(api, state) == 0
    first = [FIRST.fullmatch(line) for line in capsys.readouterr().out.splitlines()]
    # Every channel the parents' association is a member of, by default.
    assert all(first)
    assert [match[1] for match in first if match] == ["medical", "report"]
    for channel in ("medical", "report"):
        pinned = (state / f"{channel}.pub").read_text()
        assert pinned == (api.net.directory / "log" / f"{channel}.pub").read_text()
    kept = int(next(match[2] for match in first if match and match[1] == "medical"))

    child = register(api, name="Tom Martin")
    sign_and_accept(api, child)
    update_card(api, child, 1, allergies=["pollen"])
    assert witness(api, state, "medical") == 0
    [line] = capsys.readouterr().out.splitlines()
    later = LATER.fullmatch(line)
    assert later is not None, line
    assert int(later[3]) == kept and int(later[2]) == current(api)[0] > kept
    assert (state / "medical.checkpoint").read_text() == api.get("/checkpoint/medical").text


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (+3, "is smaller than the one of {kept} leaves the witness kept: the log shrank"),
        (0, "is not the one of {kept} leaves the witness kept: the roots differ"),
        (
            -1,
            "does not extend the one of {kept} leaves the witness kept: the consistency "
            "proof fails (root mismatch)",
        ),
    ],
    ids=["shrunk", "same-size", "rewritten"],
)
def test_a_tree_that_does_not_extend_the_kept_one_is_one_line_and_exit_1(
    api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str], change: int, reason: str
) -> None:
    size, _ = current(api)
    kept = size + change
    note = signed_note(api.net, kept, hashlib.sha256(b"another history").digest())
    state = tmp_path / "state"
    keep(api.net, state, note)

    assert witness(api, state, "medical") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    now = current(api)[0]
    assert captured.err == (
        f"witness: channel medical: the log's tree of {now} leaves "
        + reason.format(kept=kept)
        + "\n"
    )
    assert (state / "medical.checkpoint").read_text() == note  # kept, so the next round fails too


def test_a_checkpoint_the_pinned_key_did_not_sign_is_exit_1(
    api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The witness pinned another key for the same log; its copy of the network has no .pub.
    network = api.net.copy(tmp_path / "network").directory
    (network / "log" / "medical.pub").unlink()
    origin = log_origin(load_network(network).network_id, "medical")
    state = tmp_path / "state"
    state.mkdir()
    (state / "medical.pub").write_text(LogKey.generate("medical").verifier_key(origin) + "\n")

    assert witness(api, state, "medical", network=network) == 1
    size, _ = current(api)
    assert capsys.readouterr().err == (
        f"witness: channel medical: the log's checkpoint of {size} leaves does not verify with "
        "the pinned log key (wrong key); the witness kept no checkpoint yet\n"
    )
    assert not (state / "medical.checkpoint").exists()


def test_a_log_key_other_than_the_pinned_one_is_exit_1(
    api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    assert witness(api, state, "medical") == 0
    network = api.net.copy(tmp_path / "network").directory
    origin = log_origin(load_network(network).network_id, "medical")
    (network / "log" / "medical.pub").write_text(
        LogKey.generate("medical").verifier_key(origin) + "\n"
    )
    capsys.readouterr()

    assert witness(api, state, "medical", network=network) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(
        f"witness: channel medical: the log key in {network / 'log' / 'medical.pub'} is not the "
        "one pinned at the first run"
    )


def test_a_kept_checkpoint_that_was_changed_is_exit_2(
    api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    size, root = current(api)
    state = tmp_path / "state"
    note = signed_note(api.net, size, root).replace(f"\n{size}\n", f"\n{size + 1}\n", 1)
    keep(api.net, state, note)

    assert witness(api, state, "medical") == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"witness: the kept checkpoint {state / 'medical.checkpoint'} does not")
    assert line.endswith("the state directory was changed; restore it from a backup.")
    assert (state / "medical.checkpoint").read_text() == note


def test_an_unreachable_server_is_exit_2_and_changes_nothing(
    api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    assert witness(api, state, "medical", server="https://127.0.0.1:1") == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(
        "witness: the server https://127.0.0.1:1 cannot be reached for the checkpoint of medical"
    )
    assert not state.exists()


def looping(api: Api, state: Path, server: str) -> tuple[int, list[str], list[str], list[float]]:
    """Run the witness without --once, every 7 s, interrupted in its third pause: the exit
    code, the lines said and warned, and the pauses."""
    config = WitnessConfig.from_network(
        api.net.directory,
        org="parents",
        uid=WITNESS_UID,
        server=server,
        state=state,
        channels=["medical"],
    )
    said: list[str] = []
    warned: list[str] = []
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 3:
            raise KeyboardInterrupt

    code = run(config, once=False, interval=7, say=said.append, warn=warned.append, sleep=sleep)
    return code, said, warned, pauses


def test_without_once_it_checks_every_interval_until_interrupted(api: Api, tmp_path: Path) -> None:
    code, said, warned, pauses = looping(api, tmp_path / "state", api.base_url)
    assert (code, warned, pauses) == (0, [], [7, 7, 7])
    assert FIRST.fullmatch(said[0])
    assert all(LATER.fullmatch(line) for line in said[1:]) and len(said) == 3


def test_without_once_a_round_that_cannot_check_is_reported_and_the_next_tries_again(
    api: Api, tmp_path: Path
) -> None:
    code, said, warned, pauses = looping(api, tmp_path / "state", "https://127.0.0.1:1")
    assert (code, said, pauses) == (0, [], [7, 7, 7])
    assert len(warned) == 3 and all("cannot be reached" in line for line in warned)
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(
    ("org", "channel", "message"),
    [
        ("school-a", "medical", "Organisation 'school-a' is not a member of channel 'medical'."),
        ("parents", "dental", "The network has no channel 'dental' (it has: medical, report)."),
        ("dentists", "medical", "The network has no organisation 'dentists'"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(
    api: Api,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    org: str,
    channel: str,
    message: str,
) -> None:
    code = main(
        [
            *("witness", "--network", str(api.net.directory), "--org", org),
            *("--uid", WITNESS_UID, "--server", api.base_url, "--state", str(tmp_path)),
            *("--channel", channel, "--once"),
        ]
    )
    assert code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"healthledger: {message}")
