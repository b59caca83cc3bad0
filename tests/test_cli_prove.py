"""`healthledger prove`, as a user runs it: the installed command on files, no server.

The proofs come from a real ledger's tree (ChannelLedger.proofs), written as the GraphQL
InclusionProof and ConsistencyProof objects; the checkpoints are signed by the test itself
(tests/checkpoint_notes.py) and, once, by the server's own signer. Exit 0 prints what was
verified, 1 why not, 2 a usage error; each is one line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from checkpoints import CheckpointSigner, LogKey
from ledger_backends import open_ledger
from ledger_backends.proofs import Consistency, Inclusion, TreeProofs
from ledger_backends.testing import proposal, submit_all
from tests.checkpoint_notes import ORIGIN, NoteSigner

HEALTHLEDGER = Path(sys.executable).parent / "healthledger"
NETWORK_ID = "hl-0123456789ab"  # ORIGIN's network


@dataclass
class Log:
    """A channel with a history, its proofs, and the key that signs its checkpoints."""

    proofs: TreeProofs
    old_size: int
    signer: NoteSigner


@pytest.fixture(scope="module")
def log() -> Iterator[Log]:
    ledger = open_ledger("memory://")
    first = [proposal(f"tx-{n}", writes={f"card/{n}": {"version": 1}}) for n in range(5)]
    submit_all(ledger, "medical", first)
    old_size = ledger.channel("medical").proofs.head().size
    later = [proposal(f"tx-{n}", writes={f"card/{n}": {"version": 2}}) for n in range(5, 12)]
    submit_all(ledger, "medical", later)
    yield Log(ledger.channel("medical").proofs, old_size, NoteSigner(ORIGIN))
    ledger.close()


def prove(*arguments: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HEALTHLEDGER, "prove", *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def inclusion_file(path: Path, proof: Inclusion, **changes: object) -> Path:
    document = {
        "leafIndex": proof.leaf_index,
        "treeSize": proof.tree_size,
        "leafHash": proof.leaf_hash.hex(),
        "hashes": [x.hex() for x in proof.hashes],
        "checkpoint": {"treeSize": proof.tree_size, "note": "(as GraphQL gives it; ignored)"},
    }
    return write(path, json.dumps(document | changes))


def consistency_file(path: Path, proof: Consistency, **changes: object) -> Path:
    document = {
        "fromSize": proof.from_size,
        "toSize": proof.to_size,
        "fromRoot": proof.from_root.hex(),
        "toRoot": proof.to_root.hex(),
        "hashes": [x.hex() for x in proof.hashes],
    }
    return write(path, json.dumps(document | changes))


def signed(path: Path, signer: NoteSigner, size: int, root: bytes) -> Path:
    return write(path, signer.checkpoint(size, root))


def pubkey(path: Path, signer: NoteSigner) -> Path:
    return write(path, signer.verifier_key() + "\n")


def assert_refused(run: subprocess.CompletedProcess[str], reason: str) -> None:
    assert run.returncode == 1, run
    assert run.stdout.startswith(f"not verified: {reason}"), run.stdout
    assert run.stdout.count("\n") == 1 and run.stderr == ""


def test_a_transactions_inclusion_proof_verifies(log: Log, tmp_path: Path) -> None:
    proof = log.proofs.inclusion("tx-3")
    run = prove(
        "--checkpoint",
        signed(tmp_path / "checkpoint", log.signer, proof.tree_size, proof.root),
        "--proof",
        inclusion_file(tmp_path / "proof.json", proof),
        "--pubkey",
        pubkey(tmp_path / "medical.pub", log.signer),
    )
    assert (run.returncode, run.stderr) == (0, "")
    assert run.stdout == (
        f"verified: transaction leaf {proof.leaf_index} is in the tree of "
        f"{proof.tree_size} leaves of {ORIGIN}\n"
    )


def test_an_inclusion_proof_for_an_older_tree_verifies_against_its_checkpoint(
    log: Log, tmp_path: Path
) -> None:
    proof = log.proofs.inclusion("tx-1", log.old_size)
    run = prove(
        "--checkpoint",
        signed(tmp_path / "checkpoint", log.signer, log.old_size, proof.root),
        "--proof",
        inclusion_file(tmp_path / "proof.json", proof),
        "--pubkey",
        pubkey(tmp_path / "medical.pub", log.signer),
    )
    assert run.returncode == 0, run
    assert f"in the tree of {log.old_size} leaves" in run.stdout


def test_a_tampered_inclusion_proof_is_refused(log: Log, tmp_path: Path) -> None:
    proof = log.proofs.inclusion("tx-3")
    first, *rest = (x.hex() for x in proof.hashes)
    flipped = ("0" if first[0] != "0" else "1") + first[1:]
    run = prove(
        "--checkpoint",
        signed(tmp_path / "checkpoint", log.signer, proof.tree_size, proof.root),
        "--proof",
        inclusion_file(tmp_path / "proof.json", proof, hashes=[flipped, *rest]),
        "--pubkey",
        pubkey(tmp_path / "medical.pub", log.signer),
    )
    assert_refused(run, "root mismatch: the inclusion proof leads to root ")


def test_an_inclusion_proof_for_another_tree_size_is_refused(log: Log, tmp_path: Path) -> None:
    proof = log.proofs.inclusion("tx-3")
    old = log.proofs.head_at(log.old_size)
    run = prove(
        "--checkpoint",
        signed(tmp_path / "checkpoint", log.signer, old.size, old.root),
        "--proof",
        inclusion_file(tmp_path / "proof.json", proof),
        "--pubkey",
        pubkey(tmp_path / "medical.pub", log.signer),
    )
    assert_refused(
        run,
        f"size mismatch: the proof is for a tree of {proof.tree_size} leaves, "
        f"the checkpoint is of {old.size}",
    )


def test_a_checkpoint_signed_by_another_key_is_refused(log: Log, tmp_path: Path) -> None:
    proof = log.proofs.inclusion("tx-3")
    impostor = NoteSigner(ORIGIN)  # the same log's name, another key
    run = prove(
        "--checkpoint",
        signed(tmp_path / "checkpoint", impostor, proof.tree_size, proof.root),
        "--proof",
        inclusion_file(tmp_path / "proof.json", proof),
        "--pubkey",
        pubkey(tmp_path / "medical.pub", log.signer),
    )
    assert_refused(
        run,
        f"wrong key: the checkpoint is signed by {ORIGIN}+{impostor.key_id.hex()}, "
        f"not by {ORIGIN}+{log.signer.key_id.hex()}",
    )


def test_the_tree_extends_an_older_checkpoint(log: Log, tmp_path: Path) -> None:
    proof = log.proofs.consistency(log.old_size, log.proofs.head().size)
    run = prove(
        "--old-checkpoint",
        signed(tmp_path / "old", log.signer, proof.from_size, proof.from_root),
        "--checkpoint",
        signed(tmp_path / "new", log.signer, proof.to_size, proof.to_root),
        "--proof",
        consistency_file(tmp_path / "proof.json", proof),
        "--pubkey",
        pubkey(tmp_path / "medical.pub", log.signer),
    )
    assert (run.returncode, run.stderr) == (0, "")
    assert run.stdout == (
        f"verified: the tree of {proof.to_size} leaves of {ORIGIN} extends the one of "
        f"{proof.from_size} leaves\n"
    )


def test_a_consistency_proof_against_a_forged_old_checkpoint_is_refused(
    log: Log, tmp_path: Path
) -> None:
    """The operator rewrote history and re-signed an old checkpoint for it: the proof of the
    real tree does not start from the forged root, and no proof from the forged root leads
    to the real one."""
    proof = log.proofs.consistency(log.old_size, log.proofs.head().size)
    forged_root = log.proofs.head_at(log.old_size - 1).root  # any other tree's root
    arguments = [
        "--old-checkpoint",
        signed(tmp_path / "old", log.signer, proof.from_size, forged_root),
        "--checkpoint",
        signed(tmp_path / "new", log.signer, proof.to_size, proof.to_root),
        "--pubkey",
        pubkey(tmp_path / "medical.pub", log.signer),
    ]
    as_served = consistency_file(tmp_path / "served.json", proof)
    assert_refused(
        prove(*arguments, "--proof", as_served),
        "root mismatch: the proof's old root is not the old checkpoint's",
    )
    from_forged = consistency_file(tmp_path / "forged.json", proof, fromRoot=forged_root.hex())
    assert_refused(
        prove(*arguments, "--proof", from_forged),
        "root mismatch: the consistency proof leads to old root ",
    )


def test_the_servers_own_checkpoint_verifies(log: Log, tmp_path: Path) -> None:
    """The verifier and the server's signer (checkpoints/signer.py) agree on the format."""
    keys = {"medical": LogKey.generate("medical")}
    signer = CheckpointSigner(NETWORK_ID, keys, lambda _: log.proofs)
    proof = log.proofs.inclusion("tx-7")
    run = prove(
        "--checkpoint",
        write(tmp_path / "checkpoint", signer.checkpoint("medical").note),
        "--proof",
        inclusion_file(tmp_path / "proof.json", proof),
        "--pubkey",
        write(tmp_path / "medical.pub", signer.verifier_key("medical") + "\n"),
    )
    assert run.returncode == 0, run
    assert run.stdout == (
        f"verified: transaction leaf {proof.leaf_index} is in the tree of {proof.tree_size} "
        f"leaves of healthledger/{NETWORK_ID}/medical\n"
    )


def test_usage_errors_exit_two_with_one_line(log: Log, tmp_path: Path) -> None:
    proof = log.proofs.consistency(log.old_size, log.proofs.head().size)
    files = [
        "--checkpoint",
        signed(tmp_path / "new", log.signer, proof.to_size, proof.to_root),
        "--pubkey",
        pubkey(tmp_path / "medical.pub", log.signer),
    ]
    without_old = prove(*files, "--proof", consistency_file(tmp_path / "proof.json", proof))
    assert (without_old.returncode, without_old.stdout) == (2, "")
    assert without_old.stderr == (
        "healthledger: A consistency proof is checked against two checkpoints: "
        "give the old one too.\n"
    )
    missing = prove(*files, "--proof", tmp_path / "nowhere.json")
    assert (missing.returncode, missing.stdout) == (2, "")
    assert missing.stderr == (
        f"healthledger: {tmp_path / 'nowhere.json'} cannot be read: No such file or directory.\n"
    )
    no_proof = prove(*files)
    assert no_proof.returncode == 2
    assert "the following arguments are required: --proof" in no_proof.stderr
