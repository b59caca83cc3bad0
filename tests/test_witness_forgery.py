"""Why witnesses exist: the operator rewrites history, `verify` passes, a witness does not.

A family's card gets a history through the real server; a witness of the parents'
association keeps the `medical` checkpoint, and alice saves the inclusion proof of the
card revision that recorded an allergy. Then the operator, who holds the database and
the key-encryption keys, rebuilds the channel into a fresh store from an edited history:
that revision no longer lists the allergy, re-sealed with the child's own data key for
the same key and transaction under a fresh salt and commitment (as the server seals), its
write-set commitment recomputed, every block appended
again with its original time by a fresh chain writer. The forgery is consistent with
itself, so `healthledger verify` passes and the server serves it as the truth. What the
witness kept, and what alice saved, do not fit it: the witness exits 1 with one line
naming the channel and both tree sizes, and alice's proof does not verify against the
forged log's checkpoint for the same tree size; the forged log's verified read of that
revision checks out against the forged log alone, under another commitment than the one
alice was shown.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from authz import provision
from authz.network import NetworkConfig, load_network
from devkit.serve_process import CLI_SECONDS, ServeProcess, cli_command, cli_env, verify_ledger
from encryption import Keyring, open_with_opening, seal
from ledger_backends import open_store
from ledger_backends.base import LedgerStore
from ledger_backends.chain import ChainWriter
from ledger_backends.keystores import open_key_store
from ledger_backends.records import Block, Proposal, Transaction, Validation, parse_timestamp
from ledger_backends.testing import backend_params, scratch_url
from tests.api_client import Api, register, sign_and_accept, update_card
from tests.networks import NetworkFixture, make_network

MEDICAL = "medical"
WITNESS = ("parents", "parents-witness")
KEYS_PER_CHANNEL = 10_000
HISTORY = """
query($child: ID!) {
  medicalCardHistory(childId: $child) {
    edges { node { version txId card { allergies } proof { commitment } } }
  }
}"""
INCLUSION = """
query($tx: String!, $size: Int) {
  inclusionProof(channel: "medical", txId: $tx, treeSize: $size) {
    leafIndex treeSize leafHash hashes checkpoint { treeSize note }
  }
}"""


@dataclass(frozen=True)
class CardEdit:
    """What the forger changes: the card value written by one transaction."""

    tx_id: str
    child: str
    change: Callable[[dict[str, Any]], dict[str, Any]]

    @property
    def key(self) -> str:
        return f"card/{self.child}"


class ReplayClock:
    """The chain writer's clock during a replay: each block gets its original time."""

    def __init__(self) -> None:
        self.now = datetime.min

    def __call__(self) -> datetime:
        return self.now


def forge(network: NetworkConfig, original: str, forged: str, edit: CardEdit) -> None:
    """Rebuild every channel of `original` into the empty ledger `forged`, with `edit` made.

    What the operator needs is all at hand: the stored blocks, the data keys (copied
    wrapped, as they are) and the channel's key-encryption key to open the child's.
    Blocks of all channels are appended in their original order (by time), so what one
    channel read of another is as current as it was; each block is built by a fresh
    `ChainWriter` with its original timestamp, so every transaction validates as it did,
    and every block but the edited one and those after it on `medical` is the same.
    """
    _copy_data_keys(network, original, forged)
    data_key = _data_key(network, original, edit.child)
    source = open_store(original, create=False)
    target = open_store(forged)
    try:
        clock = ReplayClock()
        writers = {
            channel.name: ChainWriter(target, channel.name, clock=clock)
            for channel in network.channels
        }
        edited = False
        for channel, block in _blocks_in_commit_order(source, list(writers)):
            clock.now = parse_timestamp(block.timestamp)
            transactions = block.transactions()
            receipts = writers[channel].commit(
                [_replayed(tx, edit, data_key) for tx in transactions]
            )
            assert [str(r.validation) for r in receipts] == [tx.validation for tx in transactions]
            edited = edited or edit.tx_id in (tx.tx_id for tx in transactions)
            same = target.tip(channel).hash == block.hash
            assert same == (channel != MEDICAL or not edited), f"{channel} block {block.number}"
        assert edited, "the forger found the transaction to edit"
    finally:
        source.close()
        target.close()


def _blocks_in_commit_order(store: LedgerStore, channels: list[str]) -> list[tuple[str, Block]]:
    blocks = [
        (channel, block)
        for channel in channels
        for block in store.read_blocks(channel, 0, store.tip(channel).height)
    ]
    return sorted(blocks, key=lambda found: (found[1].timestamp, channels.index(found[0])))


def _replayed(tx: Transaction, edit: CardEdit, data_key: AESGCM) -> Proposal:
    """The proposal `tx` was made from; for the edited transaction, with the card changed."""
    write_set = dict(tx.write_set)
    if tx.tx_id == edit.tx_id:
        where = {"channel": tx.channel, "key": edit.key, "tx_id": tx.tx_id}
        card, kept = open_with_opening(data_key, sealed=write_set[edit.key], **where)
        write_set[edit.key] = seal(data_key, child=edit.child, value=edit.change(card), **where)
        # Consistent in itself: the new envelope opens, and its salt and text make its
        # commitment, which is another than the original's.
        _, made = open_with_opening(data_key, sealed=write_set[edit.key], **where)
        assert kept is not None and made is not None
        assert made.value == edit.change(card) and made.commitment != kept.commitment
    proposal = Proposal(
        tx_id=tx.tx_id,
        channel=tx.channel,
        contract=tx.contract,
        function=tx.function,
        args_digest=tx.args_digest,
        creator=tx.creator,
        timestamp=tx.timestamp,
        read_set=tx.read_set,
        write_set=write_set,
        events=tx.events,
        foreign_reads=tx.foreign_reads,
        salt=tx.salt,
    )
    same = proposal.canonical_text(Validation(tx.validation)) == tx.text
    assert same == (tx.tx_id != edit.tx_id), "only the edited transaction may differ"
    return proposal


def _copy_data_keys(network: NetworkConfig, original: str, forged: str) -> None:
    """Every channel's data keys, still wrapped by its KEK, into the forged ledger's key store
    (both key stores are in their ledger's database, as network init configures)."""
    source = open_key_store(original, same_database_as_ledger=False)
    target = open_key_store(forged, same_database_as_ledger=False)
    try:
        for channel in network.channels:
            for stored in source.wrapped_by_other(channel.name, "", KEYS_PER_CHANNEL):
                assert stored.wrapped is not None
                target.add(channel.name, stored.child, stored.kek_id, stored.wrapped)
    finally:
        source.close()
        target.close()


def _data_key(network: NetworkConfig, ledger: str, child: str) -> AESGCM:
    store = open_key_store(ledger, same_database_as_ledger=False)
    try:
        key = Keyring(MEDICAL, network.kek_source(MEDICAL), store).opening_key(child)
    finally:
        store.close()
    assert key is not None
    return key


def tree_size(note: str) -> int:
    """The tree size a checkpoint note states (its second line)."""
    return int(note.split("\n")[1])


def _without_penicillin(card: dict[str, Any]) -> dict[str, Any]:
    return {**card, "allergies": [a for a in card["allergies"] if a != "penicillin"]}


# -- the commands -------------------------------------------------------------------------------


def healthledger(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_command(*args),
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=CLI_SECONDS,
        check=False,
    )


def witness(
    net: NetworkFixture, server: ServeProcess, state: Path
) -> subprocess.CompletedProcess[str]:
    org, uid = WITNESS
    return healthledger(
        "witness",
        *("--network", str(net.directory), "--org", org, "--uid", uid),
        *("--server", server.base_url, "--state", str(state), "--channel", MEDICAL, "--once"),
    )


def prove(net: NetworkFixture, checkpoint: Path, proof: Path) -> subprocess.CompletedProcess[str]:
    return healthledger(
        "prove",
        *("--checkpoint", str(checkpoint), "--proof", str(proof)),
        *("--pubkey", str(net.directory / "log" / f"{MEDICAL}.pub")),
    )


@pytest.fixture
def net(tmp_path: Path) -> NetworkFixture:
    fixture = make_network(tmp_path / "network")
    org, uid = WITNESS
    provision.enroll(fixture.directory, org=org, uid=uid, role="admin", name="Parents witness")
    return fixture


@pytest.fixture(params=backend_params("sqlite", "postgresql"))
def ledgers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The operator's ledger and the fresh one the forgery goes into, on one backend."""
    with (
        scratch_url(request.param, tmp_path) as original,
        scratch_url(request.param, tmp_path) as forged,
    ):
        yield original, forged


def test_a_rewritten_history_passes_verify_and_fails_the_witness(
    net: NetworkFixture, ledgers: tuple[str, str], tmp_path: Path
) -> None:
    original, forged = ledgers
    state = tmp_path / "witness"
    saved_checkpoint, saved_proof = tmp_path / "checkpoint.txt", tmp_path / "proof.json"

    with ServeProcess(net.directory, original, tmp_path / "serve.log") as server:
        server.start()
        api = Api(server.base_url, net)
        child = register(api)
        sign_and_accept(api, child)
        update_card(api, child, 1, allergies=["penicillin"], healthGroup=2)
        update_card(api, child, 2, notes="Seen for a sore throat.")
        update_card(api, child, 3, healthGroup=1)

        kept = witness(net, server, state)
        assert kept.returncode == 0, kept.stderr
        [line] = kept.stdout.splitlines()
        first = re.fullmatch(rf"witness: channel {MEDICAL}: tree of (\d+) leaves, .*", line)
        assert first is not None, line
        kept_size = int(first[1])

        # alice keeps the proof that the revision recording the allergy is in the log.
        revisions = api("alice").data(HISTORY, {"child": child})["medicalCardHistory"]["edges"]
        [allergy] = [r["node"] for r in revisions if r["node"]["version"] == 2]
        assert allergy["card"]["allergies"] == ["penicillin"]
        proof = api("alice").data(INCLUSION, {"tx": allergy["txId"], "size": None})
        proof = proof["inclusionProof"]
        saved_checkpoint.write_text(proof["checkpoint"]["note"])
        saved_proof.write_text(json.dumps(proof))
        checked = prove(net, saved_checkpoint, saved_proof)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        api.close()
        assert server.terminate() in (0, -signal.SIGTERM), server.log_text()

    forge(
        load_network(net.directory),
        original,
        forged,
        CardEdit(allergy["txId"], child, _without_penicillin),
    )

    verified = verify_ledger(net.directory, forged)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith(f"{MEDICAL}: ok, ")
    with ServeProcess(net.directory, forged, tmp_path / "forged.log") as server:
        server.start()
        api = Api(server.base_url, net)
        revisions = api("alice").data(HISTORY, {"child": child})["medicalCardHistory"]["edges"]
        [edited] = [r["node"] for r in revisions if r["node"]["version"] == 2]
        assert edited == {**allergy, "card": {"allergies": []}, "proof": edited["proof"]}
        # The forged revision has a verified read of its own, under another commitment.
        assert edited["proof"]["commitment"] != allergy["proof"]["commitment"]

        # The forged log signs a checkpoint for the tree size alice's proof is for.
        forged_proof = api("alice").data(
            INCLUSION, {"tx": allergy["txId"], "size": proof["treeSize"]}
        )
        forged_note = forged_proof["inclusionProof"]["checkpoint"]["note"]
        assert tree_size(forged_note) == tree_size(proof["checkpoint"]["note"]) == proof["treeSize"]
        forged_checkpoint = tmp_path / "forged-checkpoint.txt"
        forged_checkpoint.write_text(forged_note)
        refused = prove(net, forged_checkpoint, saved_proof)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "root mismatch" in refused.stdout + refused.stderr

        # The operator keeps serving the forgery: the doctor writes on.
        update_card(api, child, 4, notes="Checked again.")
        alarm = witness(net, server, state)
        grown = tree_size(api.get(f"/checkpoint/{MEDICAL}").text)
        api.close()
    assert alarm.returncode == 1, alarm.stdout + alarm.stderr
    [line] = alarm.stderr.splitlines()
    assert line == (
        f"witness: channel {MEDICAL}: the log's tree of {grown} leaves does not extend the one "
        f"of {kept_size} leaves the witness kept: the consistency proof fails (root mismatch)"
    )
    # The witness still holds the checkpoint it kept, so every later round fails as well.
    assert (state / f"{MEDICAL}.checkpoint").read_text().split("\n")[1] == str(kept_size)
