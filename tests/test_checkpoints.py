"""Signed checkpoints over real mutual TLS: `GET /checkpoint/CHANNEL` and GraphQL `checkpoint`.

Each note is parsed and its signature checked here, with `cryptography` and the channel's
published `log/CHANNEL.pub` only (no server code verifies it), and its origin, size and
root are compared with the channel's tree head as the ledger itself gives it. Only members
of a channel get its checkpoint; anyone else gets the answer an unknown channel gets.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from authz import provision
from authz.network import load_network
from ledger_backends import open_store
from ledger_backends.proofs import TreeNotAvailableError
from ledger_backends.testing import golden_proposals
from ledger_backends.testing.conformance import append_blocks_older_than_trees
from tests.api_client import Api, api_server, register, sign_and_accept, update_card
from tests.networks import NetworkFixture, make_network

CHECKPOINT = """
query($channel: String!) { checkpoint(channel: $channel) { origin treeSize rootHash note } }"""
NOTE_MEDIA_TYPE = "text/plain; charset=utf-8"
REVOKED_WITHIN_SECONDS = 5.0


@dataclass(frozen=True)
class Note:
    """A checkpoint note as a client reads it: the signed body's three lines, the signer's
    name and the 4-byte key id and 64-byte signature of its one signature line."""

    origin: str
    size: int
    root: bytes
    body: bytes
    signer: str
    key_id: bytes
    signature: bytes


def parse_note(text: str) -> Note:
    body, separator, signatures = text.partition("\n\n")
    assert separator and text.endswith("\n"), repr(text)
    origin, size, root = body.split("\n")
    (line,) = signatures.removesuffix("\n").split("\n")
    dash, signer, stamp = line.split(" ")
    assert dash == "\u2014"
    raw = base64.b64decode(stamp, validate=True)
    assert len(raw) == 4 + 64
    return Note(
        origin=origin,
        size=int(size),
        root=base64.b64decode(root, validate=True),
        body=(body + "\n").encode("utf-8"),
        signer=signer,
        key_id=raw[:4],
        signature=raw[4:],
    )


def verifier(network_dir: Path, channel: str) -> tuple[str, bytes, Ed25519PublicKey]:
    """The channel's published verifier key: its name, key id and Ed25519 public key, with
    the key id checked against the C2SP signed-note rule."""
    line = (network_dir / "log" / f"{channel}.pub").read_text()
    assert line.endswith("\n") and line.count("\n") == 1
    name, key_id_hex, material = line.strip().split("+", 2)  # base64 may hold "+"
    decoded = base64.b64decode(material, validate=True)
    assert decoded[0] == 1 and len(decoded) == 33  # signature type Ed25519, then the key
    key_id = bytes.fromhex(key_id_hex)
    assert key_id == hashlib.sha256(name.encode() + b"\n" + decoded).digest()[:4]
    return name, key_id, Ed25519PublicKey.from_public_bytes(decoded[1:])


def verified(network_dir: Path, channel: str, text: str) -> Note:
    """The note, once its signature has checked out against the channel's public key."""
    note = parse_note(text)
    name, key_id, public_key = verifier(network_dir, channel)
    assert (note.signer, note.key_id) == (name, key_id)
    public_key.verify(note.signature, note.body)  # raises InvalidSignature
    return note


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    net = make_network(tmp_path_factory.mktemp("checkpoints") / "network")
    provision.enroll(net.directory, org="parents", uid="carol", role="parent", name="Carol")
    return net


@pytest.fixture(scope="module")
def api(net: NetworkFixture) -> Iterator[Api]:
    with api_server(net, "memory://") as running:
        child = register(running, "alice", "Ada Martin")
        sign_and_accept(running, child)
        update_card(running, child, 1, healthGroup=2)
        yield running


def head(api: Api, channel: str) -> tuple[int, bytes]:
    assert api.services is not None
    found = api.services.channels[channel].proofs.head()
    return found.size, found.root


def origin(net: NetworkFixture, channel: str) -> str:
    return f"healthledger/{load_network(net.directory).network_id}/{channel}"


def test_a_member_gets_the_signed_checkpoint_of_the_ledgers_tree(
    api: Api, net: NetworkFixture
) -> None:
    for uid, channel in (("alice", "medical"), ("dr-house", "medical"), ("alice", "report")):
        response = api.get(f"/checkpoint/{channel}", uid=uid)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == NOTE_MEDIA_TYPE
        assert response.headers["cache-control"] == "no-store"
        note = verified(net.directory, channel, response.text)
        assert note.origin == note.signer == origin(net, channel)
        assert (note.size, note.root) == head(api, channel)
    assert head(api, "medical")[0] >= 4  # the child, the agreement, its acceptance, the card


def test_graphql_gives_the_same_checkpoint(api: Api, net: NetworkFixture) -> None:
    found = api("dr-house").data(CHECKPOINT, {"channel": "medical"})["checkpoint"]
    size, root = head(api, "medical")
    assert found["origin"] == origin(net, "medical")
    assert (found["treeSize"], found["rootHash"]) == (size, root.hex())
    assert found["note"] == api.get("/checkpoint/medical", uid="dr-house").text
    note = verified(net.directory, "medical", found["note"])
    assert (note.size, note.root) == (size, root)


def test_the_note_is_signed_once_per_tree_and_anew_when_it_grows(
    api: Api, net: NetworkFixture
) -> None:
    before = api.get("/checkpoint/medical").text
    assert api.get("/checkpoint/medical", uid="bob").text == before
    register(api, "alice", "Bo Martin")
    after = verified(net.directory, "medical", api.get("/checkpoint/medical").text)
    assert after.size > parse_note(before).size
    assert (after.size, after.root) == head(api, "medical")


def test_a_checkpoint_of_an_earlier_tree_size_verifies_and_has_that_trees_root(
    api: Api, net: NetworkFixture
) -> None:
    assert api.services is not None
    proofs = api.services.channels["medical"].proofs
    current = proofs.head().size
    for size in (1, current - 1, current):
        signed = api.services.checkpoints.checkpoint("medical", size)
        note = verified(net.directory, "medical", signed.note)
        assert (note.size, note.root) == (size, proofs.head_at(size).root)
        assert (signed.tree_size, signed.root, signed.origin) == (size, note.root, note.origin)
    with pytest.raises(TreeNotAvailableError):
        api.services.checkpoints.checkpoint("medical", current + 1)


def test_a_note_altered_in_any_line_fails_its_signature(api: Api, net: NetworkFixture) -> None:
    note = verified(net.directory, "medical", api.get("/checkpoint/medical").text)
    _, _, public_key = verifier(net.directory, "medical")
    lines = note.body.decode().split("\n")[:3]
    other_root = base64.b64encode(hashlib.sha256(note.root).digest()).decode()
    for index, changed in enumerate((origin(net, "report"), str(note.size + 1), other_root)):
        body = [changed if at == index else line for at, line in enumerate(lines)]
        with pytest.raises(InvalidSignature):
            public_key.verify(note.signature, ("\n".join(body) + "\n").encode())


@pytest.mark.parametrize("channel", ["medical", "nosuch", "keys", "MEDICAL"])
def test_a_school_gets_for_the_medical_channel_what_an_unknown_channel_gets(
    api: Api, channel: str
) -> None:
    response = api.get(f"/checkpoint/{channel}", uid="school-a-office")
    assert response.status_code == 404
    assert response.headers["content-type"] == NOTE_MEDIA_TYPE
    assert response.text == f"No channel {channel!r} is open to your organisation.\n"
    error = api("school-a-office").error(CHECKPOINT, {"channel": channel})
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert error["message"] == f"No channel {channel!r} is open to your organisation."
    assert api.get(f"/checkpoint/{channel}", uid="alice").status_code == (
        200 if channel == "medical" else 404
    )


def test_only_get_is_answered(api: Api) -> None:
    assert api("alice").http.post("/checkpoint/medical").status_code == 405
    assert api.get("/checkpoint").status_code == 404
    assert api.get("/checkpoint/medical/extra").status_code == 404


def test_a_revoked_certificate_is_refused_like_everywhere_else(
    api: Api, net: NetworkFixture
) -> None:
    assert api.get("/checkpoint/medical", uid="carol").status_code == 200
    provision.revoke(net.directory, org="parents", uid="carol")
    deadline = time.monotonic() + REVOKED_WITHIN_SECONDS
    while (response := api.get("/checkpoint/medical", uid="carol")).status_code == 200:
        assert time.monotonic() < deadline, "still answered after revocation"
        time.sleep(0.1)
    assert response.status_code == 401
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert "-----BEGIN" not in response.text and "\u2014" not in response.text


def test_without_a_client_certificate_there_is_no_connection(api: Api) -> None:
    with pytest.raises(httpx.TransportError):
        api(None).http.get("/checkpoint/medical")


def test_every_backend_signs_its_own_tree_head(ledger_url: str, tmp_path: Path) -> None:
    net = make_network(tmp_path / "network")
    with api_server(net, ledger_url) as api:
        register(api, "alice", "Kim Lee")
        register(api, "bob", "Lee Kim")
        note = verified(net.directory, "medical", api.get("/checkpoint/medical").text)
        assert (note.size, note.root) == head(api, "medical")
        assert note.size >= 2


def test_a_channel_whose_blocks_all_predate_trees_says_it_has_no_tree_yet(
    net: NetworkFixture, tmp_path: Path
) -> None:
    ledger = f"sqlite:///{tmp_path / 'legacy.db'}"
    store = open_store(ledger)
    try:
        append_blocks_older_than_trees(store, "report", golden_proposals())
    finally:
        store.close()
    with api_server(net, ledger) as api:
        response = api.get("/checkpoint/report")
        assert response.status_code == 503
        assert response.text == (
            "Channel 'report' has no tree yet: its blocks are older than trees, and the tree "
            "is built with the next block appended.\n"
        )
        assert api.get("/checkpoint/report", uid="school-a-office").status_code == 503
        assert api.get("/checkpoint/medical").status_code == 200


def test_a_member_gets_the_logs_verifier_key_as_published(api: Api, net: NetworkFixture) -> None:
    for uid, channel in (
        ("alice", "medical"),
        ("dr-house", "medical"),
        ("school-a-office", "report"),
    ):
        response = api.get(f"/log/{channel}.pub", uid=uid)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == NOTE_MEDIA_TYPE
        assert response.headers["cache-control"] == "no-store"
        assert response.text == (net.directory / "log" / f"{channel}.pub").read_text()
    for channel in ("medical", "nosuch"):
        refused = api.get(f"/log/{channel}.pub", uid="school-a-office")
        assert refused.status_code == 404
        assert refused.text == f"No channel {channel!r} is open to your organisation.\n"
    private = api.get("/log/medical.key", uid="alice")
    assert private.status_code == 404 and "PRIVATE KEY" not in private.text
    assert api("alice").http.post("/log/medical.pub").status_code == 405
