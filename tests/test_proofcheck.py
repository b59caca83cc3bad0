"""The tree's proofs, checked three independent ways: the RFC 6962/9162 reference vectors,
pymerkle, and tampering.

Both sides are held to the vectors: the maker (ledger_backends.merkle, what the server
serves) and the verifier (proofcheck, what `healthledger prove` runs), which share no code.
pymerkle is a third implementation: same roots and the same audit paths for random trees up
to 10,000 leaves, and each side's proofs verify on the other's roots. Every tampered proof,
checkpoint or key is refused with its reason.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Mapping

import pytest
from pymerkle import InmemoryTree
from pymerkle import verify_consistency as pymerkle_verify_consistency
from pymerkle import verify_inclusion as pymerkle_verify_inclusion

from ledger_backends import merkle
from ledger_backends.merkle import NodeId
from proofcheck import (
    EMPTY_ROOT,
    InclusionClaim,
    NoteError,
    ProofError,
    ProofInputsError,
    leaf_hash,
    parse_verifier_key,
    read_proof,
    verify_checkpoint,
    verify_consistency,
    verify_inclusion,
    verify_proof,
)
from tests.checkpoint_notes import ORIGIN, NoteSigner

# The RFC 6962 reference tree, as github.com/transparency-dev/merkle (commit 417fb0c3)
# holds it: the leaf inputs, every complete subtree's hash (level, index) and the root of each
# size 0..8 from testonly/constants.go; audit paths and consistency proofs from
# testonly/reference_test.go (TestRefInclusionProof, TestRefConsistencyProof) and the
# happy-path probes of testdata/inclusion and testdata/consistency.
LEAF_INPUTS = [
    bytes.fromhex(data)
    for data in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
NODE_HASHES = {
    (0, 0): "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    (0, 1): "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    (0, 2): "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    (0, 3): "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    (0, 4): "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    (0, 5): "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    (0, 6): "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    (0, 7): "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    (1, 0): "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    (1, 1): "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    (1, 2): "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    (1, 3): "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    (2, 0): "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    (2, 1): "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    (3, 0): "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf index, tree size, audit path)
INCLUSION_VECTORS = [
    (0, 1, []),
    (0, 2, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"]),
    (1, 2, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
# (old size, new size, consistency proof)
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
# A checkpoint of the Go checksum database, fetched from https://sum.golang.org/latest on
# 2024-09-23 (as sigsum/sigsum-go's tests quote it), and that log's key, from golang/go
# src/cmd/go/internal/modfetch/key.go: a note signed by a signer other than ours.
GO_SUMDB_KEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
GO_SUMDB_CHECKPOINT = (
    "go.sum database tree\n30055305\nmXfgRcJ0bG0j3CPdKwgGWtUzBUbX67saZGRmFuJGGsM=\n\n"
    "\u2014 sum.golang.org Az3grpgEild5qw7+5dtV13Kf1C2Xurm8q4fhdxvcsDHnqNTaxL2AFjBY+2TyGKevu"
    "cFcAAlWFJJYle3EJlDCrQ+y3A8=\n"
)


def h(hexes: Iterable[str]) -> list[bytes]:
    return [bytes.fromhex(x) for x in hexes]


class MadeTree:
    """A tree made by the maker (ledger_backends.merkle), every node kept in a dict."""

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self.edge = merkle.CompactRange()
        self.nodes: dict[NodeId, bytes] = {}
        for leaf in leaves:
            self.append(leaf)

    def append(self, leaf: bytes) -> None:
        for node in self.edge.append(leaf):
            self.nodes[node.id] = node.hash

    def read(self, ids: Iterable[NodeId]) -> Mapping[NodeId, bytes]:
        return {node: self.nodes[node] for node in ids if node in self.nodes}

    def root(self, size: int) -> bytes:
        return merkle.root_at(size, self.read)

    def inclusion(self, index: int, size: int) -> list[bytes]:
        return merkle.inclusion_proof(index, size, self.read)

    def consistency(self, old: int, new: int) -> list[bytes]:
        return merkle.consistency_proof(old, new, self.read)


REFERENCE = MadeTree(merkle.leaf_hash(data) for data in LEAF_INPUTS)


# The reference vectors: the maker


def test_the_maker_stores_every_complete_subtree_of_the_reference_tree() -> None:
    assert [merkle.leaf_hash(data) for data in LEAF_INPUTS] == h(
        NODE_HASHES[(0, n)] for n in range(8)
    )
    assert {node: hash.hex() for node, hash in REFERENCE.nodes.items()} == NODE_HASHES


def test_the_maker_gives_the_reference_root_of_every_size() -> None:
    edge = merkle.CompactRange()
    assert edge.root() == bytes.fromhex(ROOTS[0]) == merkle.EMPTY_ROOT
    for size, data in enumerate(LEAF_INPUTS, start=1):
        edge.append(merkle.leaf_hash(data))
        assert edge.root() == bytes.fromhex(ROOTS[size])
    assert [REFERENCE.root(size).hex() for size in range(9)] == ROOTS


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION_VECTORS)
def test_the_maker_gives_the_reference_audit_paths(index: int, size: int, path: list[str]) -> None:
    assert REFERENCE.inclusion(index, size) == h(path)


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_VECTORS)
def test_the_maker_gives_the_reference_consistency_proofs(
    old: int, new: int, proof: list[str]
) -> None:
    assert REFERENCE.consistency(old, new) == h(proof)


# The reference vectors: the verifier


def test_the_verifier_hashes_leaves_as_the_reference_does() -> None:
    assert [leaf_hash(data).hex() for data in LEAF_INPUTS] == [
        NODE_HASHES[(0, n)] for n in range(8)
    ]
    assert EMPTY_ROOT.hex() == ROOTS[0]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION_VECTORS)
def test_the_verifier_accepts_the_reference_audit_paths(
    index: int, size: int, path: list[str]
) -> None:
    leaf = bytes.fromhex(NODE_HASHES[(0, index)])
    verify_inclusion(index, size, leaf, h(path), bytes.fromhex(ROOTS[size]))


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_VECTORS)
def test_the_verifier_accepts_the_reference_consistency_proofs(
    old: int, new: int, proof: list[str]
) -> None:
    verify_consistency(old, new, bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new]), h(proof))


def test_every_proof_the_maker_gives_for_the_reference_tree_verifies() -> None:
    roots = h(ROOTS)
    for size in range(1, 9):
        for index in range(size):
            leaf = bytes.fromhex(NODE_HASHES[(0, index)])
            verify_inclusion(index, size, leaf, REFERENCE.inclusion(index, size), roots[size])
        for old in range(size + 1):
            verify_consistency(old, size, roots[old], roots[size], REFERENCE.consistency(old, size))


# Tampered proofs of the reference tree, as transparency-dev/merkle's probes tamper them
# (testdata/inclusion/*/ and testdata/consistency/*/): each is refused.


def _inclusion_tamperings(
    index: int, size: int, path: list[bytes], leaf: bytes, root: bytes
) -> dict[str, tuple[int, int, bytes, list[bytes], bytes]]:
    flipped = [bytes([path[n][0] ^ 8]) + path[n][1:] for n in range(len(path))]
    cases = {
        "leafIdx-plus-1": (index + 1, size, leaf, path, root),
        "leafIdx-XOR-2": (index ^ 2, size, leaf, path, root),
        "treeSize-mul-2": (index, size * 2, leaf, path, root),
        "treeSize-div-2": (index, size // 2, leaf, path, root),
        "wrong-leaf": (index, size, hashlib.sha256(b"wrong").digest(), path, root),
        "empty-root": (index, size, leaf, path, EMPTY_ROOT),
        "random-root": (index, size, leaf, path, hashlib.sha256(b"random").digest()),
        "inserted-component": (index, size, leaf, [*path, leaf], root),
        "preceding-garbage": (index, size, leaf, [root, *path], root),
        "trailing-garbage": (index, size, leaf, [*path, root], root),
    }
    if index > 0:
        cases["leafIdx-sub-1"] = (index - 1, size, leaf, path, root)
    for n, hashed in enumerate(flipped):
        cases[f"modified-proof[{n}]"] = (
            index,
            size,
            leaf,
            [*path[:n], hashed, *path[n + 1 :]],
            root,
        )
    if path:
        cases["removed-component"] = (index, size, leaf, path[:-1], root)
    return cases


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION_VECTORS)
def test_every_tampered_reference_audit_path_is_refused(
    index: int, size: int, path: list[str]
) -> None:
    leaf, root = bytes.fromhex(NODE_HASHES[(0, index)]), bytes.fromhex(ROOTS[size])
    for name, case in _inclusion_tamperings(index, size, h(path), leaf, root).items():
        with pytest.raises(ProofError):
            verify_inclusion(*case)
            pytest.fail(f"the tampered proof {name} verified")


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_VECTORS[1:])
def test_every_tampered_reference_consistency_proof_is_refused(
    old: int, new: int, proof: list[str]
) -> None:
    path, old_root, new_root = h(proof), bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new])
    wrong = hashlib.sha256(b"wrong").digest()
    cases = {
        "size1-plus-1": (old + 1, new, old_root, new_root, path),
        "size1-sub-1": (old - 1, new, old_root, new_root, path),
        "size1-XOR-2": (old ^ 2, new, old_root, new_root, path),
        "size2-mul-2": (old, new * 2, old_root, new_root, path),
        "size2-div-2": (old, new // 2, old_root, new_root, path),
        "swapped-roots": (old, new, new_root, old_root, path),
        "wrong-root1": (old, new, wrong, new_root, path),
        "wrong-root2": (old, new, old_root, wrong, path),
        "empty-proof": (old, new, old_root, new_root, []),
        "truncated-proof": (old, new, old_root, new_root, path[:-1]),
        "preceding-garbage": (old, new, old_root, new_root, [wrong, *path]),
        "trailing-garbage": (old, new, old_root, new_root, [*path, wrong]),
        "preceding-root1": (old, new, old_root, new_root, [old_root, *path]),
        "trailing-root2": (old, new, old_root, new_root, [*path, new_root]),
    }
    for n in range(len(path)):
        changed = bytes([path[n][0] ^ 16]) + path[n][1:]
        cases[f"modified-proof@{n}"] = (
            old,
            new,
            old_root,
            new_root,
            [*path[:n], changed, *path[n + 1 :]],
        )
    for name, case in cases.items():
        with pytest.raises(ProofError):
            verify_consistency(*case)
            pytest.fail(f"the tampered proof {name} verified")


def test_inclusion_reasons_name_what_is_wrong() -> None:
    path, leaf, root = REFERENCE.inclusion(5, 8), REFERENCE.nodes[(0, 5)], REFERENCE.root(8)
    refusals = {
        "leaf 8 cannot be in a tree of 8 leaves": (8, 8, leaf, path, root),
        "proof too long: the inclusion proof has 4 hashes; leaf 5 of a tree of 8 leaves needs 3": (
            5,
            8,
            leaf,
            [*path, path[0]],
            root,
        ),
        "proof too short: the inclusion proof has 2 hashes; leaf 5 of a tree of 8 leaves needs 3": (
            5,
            8,
            leaf,
            path[:2],
            root,
        ),
        "root mismatch: the inclusion proof leads to root ": (5, 8, leaf, path[::-1], root),
        "malformed input: a hash is not 32 bytes long": (5, 8, leaf, [*path[:2], root[1:]], root),
    }
    for reason, case in refusals.items():
        with pytest.raises(ProofError) as refused:
            verify_inclusion(*case)
        assert str(refused.value).startswith(reason)


def test_consistency_reasons_name_what_is_wrong() -> None:
    roots = [REFERENCE.root(size) for size in range(9)]
    proof = REFERENCE.consistency(6, 8)
    refusals = {
        "a tree of 6 leaves cannot extend one of 8 leaves": (8, 6, roots[8], roots[6], proof),
        "proof too short: the consistency proof has 2 hashes; a tree of 8 leaves extending one "
        "of 6 needs 3": (6, 8, roots[6], roots[8], proof[:2]),
        "proof too long: the consistency proof has 1 hash; a tree of 8 leaves extending one "
        "of 8 needs 0": (8, 8, roots[8], roots[8], proof[:1]),
        "the log has two different trees of 8 leaves": (8, 8, roots[8], roots[7], []),
        "root mismatch: the empty tree's root is": (0, 8, roots[1], roots[8], []),
        "root mismatch: the consistency proof leads to old root": (6, 8, roots[5], roots[8], proof),
        "root mismatch: the consistency proof leads to new root": (6, 8, roots[6], roots[7], proof),
    }
    for reason, case in refusals.items():
        with pytest.raises(ProofError) as refused:
            verify_consistency(*case)
        assert str(refused.value).startswith(reason)
    verify_consistency(0, 8, EMPTY_ROOT, roots[8], [])  # every tree extends the empty one
    with pytest.raises(ProofError, match="two different trees of 0 leaves"):
        verify_consistency(0, 0, EMPTY_ROOT, roots[1], [])


# pymerkle: a third implementation, with its own proofs


def _pymerkle_tree(data: list[bytes]) -> InmemoryTree:
    """pymerkle hashes each entry as SHA-256(0x00 ‖ entry) and nodes with 0x01: RFC 9162."""
    tree = InmemoryTree(algorithm="sha256")
    tree.append_entries(data)
    return tree


def _transaction_digests(count: int, rng: random.Random) -> list[bytes]:
    """Leaf data as the ledger has it: the SHA-256 of a transaction's canonical text."""
    return [hashlib.sha256(rng.randbytes(rng.randrange(1, 64))).digest() for _ in range(count)]


def _cross_check(
    ours: MadeTree, theirs: InmemoryTree, data: list[bytes], index: int, old: int, size: int
) -> None:
    root, old_root = ours.root(size), ours.root(old)
    assert root == theirs.get_root(size) and old_root == theirs.get_root(old)
    leaf = ours.nodes[(0, index)]
    # Their audit path is the leaf, then RFC 9162's PATH; it verifies on our roots...
    their_path = theirs.prove_inclusion(index + 1, size)
    assert their_path.path[0] == leaf == merkle.leaf_hash(data[index])
    assert their_path.path[1:] == ours.inclusion(index, size)
    pymerkle_verify_inclusion(leaf, root, their_path, index=index + 1, size=size)
    pymerkle_verify_consistency(
        old_root, root, theirs.prove_consistency(old, size), prior_size=old, later_size=size
    )
    # ...and ours verify on their roots, with the independent verifier.
    verify_inclusion(index, size, leaf, ours.inclusion(index, size), theirs.get_root(size))
    verify_consistency(
        old, size, theirs.get_root(old), theirs.get_root(size), ours.consistency(old, size)
    )


def test_every_small_tree_agrees_with_pymerkle() -> None:
    data = _transaction_digests(40, random.Random(9162))
    ours, theirs = MadeTree(merkle.leaf_hash(d) for d in data), _pymerkle_tree(data)
    for size in range(1, 41):
        for index in range(size):
            _cross_check(ours, theirs, data, index, old=index + 1, size=size)


@pytest.mark.parametrize("size", [10_000, 8192, 4097, 1000, 777])
def test_large_random_trees_agree_with_pymerkle(size: int) -> None:
    rng = random.Random(size)
    data = _transaction_digests(size, rng)
    ours, theirs = MadeTree(merkle.leaf_hash(d) for d in data), _pymerkle_tree(data)
    assert ours.edge.root() == theirs.get_root()
    for _ in range(300):
        later = rng.randint(1, size)
        _cross_check(ours, theirs, data, rng.randrange(later), rng.randint(1, later), later)


def test_a_transaction_leaf_is_the_leaf_pymerkle_makes_of_its_digest() -> None:
    text = '{"txId":"tx-a","writes":{"card/1":{"allergies":["pollen"]}}}'
    digest = hashlib.sha256(text.encode()).digest()
    assert merkle.transaction_leaf(text) == _pymerkle_tree([digest]).get_leaf(1)


# Signed checkpoints and proof files: each tampered element refused with its reason


LOG = NoteSigner()
OTHER_LOG = NoteSigner()  # another key under the same origin


def _inclusion_file(index: int, size: int, **changes: object) -> str:
    document: dict[str, object] = {
        "leafIndex": index,
        "treeSize": size,
        "leafHash": REFERENCE.nodes[(0, index)].hex(),
        "hashes": [x.hex() for x in REFERENCE.inclusion(index, size)],
        "checkpoint": {"note": "ignored"},
        "__typename": "InclusionProof",
    }
    return json.dumps(document | changes)


def _consistency_file(old: int, new: int, **changes: object) -> str:
    document: dict[str, object] = {
        "fromSize": old,
        "toSize": new,
        "fromRoot": REFERENCE.root(old).hex(),
        "toRoot": REFERENCE.root(new).hex(),
        "hashes": [x.hex() for x in REFERENCE.consistency(old, new)],
    }
    return json.dumps(document | changes)


def _checkpoint(size: int, signer: NoteSigner = LOG) -> str:
    return signer.checkpoint(size, REFERENCE.root(size))


def test_a_signed_checkpoint_opens_with_its_log_key() -> None:
    checkpoint = verify_checkpoint(_checkpoint(7), parse_verifier_key(LOG.verifier_key() + "\n"))
    assert (checkpoint.origin, checkpoint.tree_size, checkpoint.root) == (
        ORIGIN,
        7,
        REFERENCE.root(7),
    )


def test_a_checkpoint_saved_with_a_blank_line_after_it_opens() -> None:
    """`jq -r .checkpoint.note` adds a newline after the note's own: no part of the text."""
    key = parse_verifier_key(LOG.verifier_key())
    assert verify_checkpoint(_checkpoint(7) + "\n\n", key).tree_size == 7


def test_a_witness_cosignature_is_ignored() -> None:
    witness = NoteSigner(origin="witness.example/hospital")
    key = parse_verifier_key(LOG.verifier_key())
    assert verify_checkpoint(witness.cosign(_checkpoint(7)), key).tree_size == 7


def test_a_note_signed_by_another_signer_verifies() -> None:
    """Go's signed-note code signed this one: its signature verifies (the refusal comes
    after, because healthledger asks that the origin be the key's name; Go's is not)."""
    key = parse_verifier_key(GO_SUMDB_KEY)
    with pytest.raises(NoteError, match=r"is of the log 'go\.sum database tree'"):
        verify_checkpoint(GO_SUMDB_CHECKPOINT, key)
    with pytest.raises(NoteError, match=r"^bad signature"):
        verify_checkpoint(GO_SUMDB_CHECKPOINT.replace("30055305", "30055306"), key)


def test_a_good_inclusion_proof_file_verifies() -> None:
    verified = verify_proof(_inclusion_file(5, 8), _checkpoint(8), LOG.verifier_key())
    assert verified == f"verified: transaction leaf 5 is in the tree of 8 leaves of {ORIGIN}"


def test_a_good_consistency_proof_file_verifies() -> None:
    verified = verify_proof(
        _consistency_file(6, 8), _checkpoint(8), LOG.verifier_key(), old_checkpoint=_checkpoint(6)
    )
    assert verified == f"verified: the tree of 8 leaves of {ORIGIN} extends the one of 6 leaves"


def _flip(hex_hash: str) -> str:
    return f"{int(hex_hash[0], 16) ^ 1:x}{hex_hash[1:]}"


def _tampered_inclusions() -> dict[str, tuple[str, str, str, str]]:
    """name: (proof file, checkpoint, key, the reason's start)."""
    key, good = LOG.verifier_key(), _checkpoint(8)
    hashes = [x.hex() for x in REFERENCE.inclusion(5, 8)]
    body = good[: good.index("\n\n") + 1]
    return {
        "one hash flipped": (
            _inclusion_file(5, 8, hashes=[_flip(hashes[0]), *hashes[1:]]),
            good,
            key,
            "root mismatch: the inclusion proof leads to root",
        ),
        "the leaf hash flipped": (
            _inclusion_file(5, 8, leafHash=_flip(REFERENCE.nodes[(0, 5)].hex())),
            good,
            key,
            "root mismatch",
        ),
        "a wrong leaf index": (
            _inclusion_file(5, 8, leafIndex=4),
            good,
            key,
            "root mismatch",
        ),
        "a wrong tree size": (
            _inclusion_file(5, 8, treeSize=7),
            good,
            key,
            "size mismatch: the proof is for a tree of 7 leaves, the checkpoint is of 8",
        ),
        "the checkpoint of another size": (
            _inclusion_file(5, 8),
            _checkpoint(7),
            key,
            "size mismatch: the proof is for a tree of 8 leaves, the checkpoint is of 7",
        ),
        "an extra hash": (
            _inclusion_file(5, 8, hashes=[*hashes, hashes[0]]),
            good,
            key,
            "proof too long",
        ),
        "a missing hash": (
            _inclusion_file(5, 8, hashes=hashes[:-1]),
            good,
            key,
            "proof too short",
        ),
        "a bad signature": (
            _inclusion_file(5, 8),
            good.replace(body, body.replace("\n8\n", "\n9\n")),
            key,
            f"bad signature: the signature of the checkpoint by {ORIGIN}+{LOG.key_id.hex()} "
            "does not verify",
        ),
        "another key's checkpoint": (
            _inclusion_file(5, 8),
            _checkpoint(8, OTHER_LOG),
            key,
            f"wrong key: the checkpoint is signed by {ORIGIN}+{OTHER_LOG.key_id.hex()}, not by "
            f"{ORIGIN}+{LOG.key_id.hex()}",
        ),
        "the checkpoint of another log": (
            _inclusion_file(5, 8),
            LOG.checkpoint(8, REFERENCE.root(8), origin="healthledger/hl-0123456789ab/report"),
            key,
            "wrong key: the checkpoint is of the log 'healthledger/hl-0123456789ab/report'",
        ),
        "an unsigned checkpoint": (
            _inclusion_file(5, 8),
            body,
            key,
            "malformed input: the checkpoint is not a signed note",
        ),
        "a checkpoint with CRLF line ends": (
            _inclusion_file(5, 8),
            good.replace("\n", "\r\n"),
            key,
            "malformed input: the checkpoint holds control characters",
        ),
        "a size with a leading zero": (
            _inclusion_file(5, 8),
            LOG.sign(body.replace("\n8\n", "\n08\n")),
            key,
            "malformed input: the tree size '08' of the checkpoint is not a number",
        ),
        "a root that is not base64": (
            _inclusion_file(5, 8),
            LOG.sign(f"{ORIGIN}\n8\nnot base64!\n"),
            key,
            "malformed input: the root hash of the checkpoint is not base64",
        ),
        "a root of 31 bytes": (
            _inclusion_file(5, 8),
            LOG.sign(f"{ORIGIN}\n8\n{'A' * 40}\n"),
            key,
            "malformed input: the root hash of the checkpoint is not 32 bytes",
        ),
        "a key line with a wrong key id": (
            _inclusion_file(5, 8),
            good,
            key.replace(LOG.key_id.hex(), "00000000"),
            "malformed input: the key id 00000000 does not fit its name and key",
        ),
        "a private key instead of the key line": (
            _inclusion_file(5, 8),
            good,
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
            "malformed input: the key is not a verifier key NAME+KEYID+KEY",
        ),
        "upper-case hex": (
            _inclusion_file(5, 8, leafHash=REFERENCE.nodes[(0, 5)].hex().upper()),
            good,
            key,
            "malformed input: the proof's leafHash is not 64 lower-case hex digits",
        ),
        "a negative leaf index": (
            _inclusion_file(5, 8, leafIndex=-1),
            good,
            key,
            "malformed input: the proof's leafIndex is not a number of leaves",
        ),
        "a tree size of true": (
            _inclusion_file(5, 8, treeSize=True),
            good,
            key,
            "malformed input: the proof's treeSize is not a number of leaves",
        ),
        "hashes that are not a list": (
            _inclusion_file(5, 8, hashes=hashes[0]),
            good,
            key,
            "malformed input: the proof's hashes are not a list",
        ),
        "a proof file that is not JSON": (
            "leafIndex: 5",
            good,
            key,
            "malformed input: the proof file is not JSON",
        ),
        "the whole GraphQL response": (
            json.dumps({"data": {"inclusionProof": json.loads(_inclusion_file(5, 8))}}),
            good,
            key,
            "malformed input: the proof file is neither an inclusion proof",
        ),
    }


@pytest.mark.parametrize("name", list(_tampered_inclusions()))
def test_a_tampered_inclusion_proof_file_is_refused_with_its_reason(name: str) -> None:
    proof, checkpoint, key, reason = _tampered_inclusions()[name]
    with pytest.raises(ProofError) as refused:
        verify_proof(proof, checkpoint, key)
    assert str(refused.value).startswith(reason), str(refused.value)
    assert "\n" not in str(refused.value)


def _tampered_consistencies() -> dict[str, tuple[str, str, str, str]]:
    """name: (proof file, old checkpoint, new checkpoint, the reason's start)."""
    old, new = _checkpoint(6), _checkpoint(8)
    hashes = [x.hex() for x in REFERENCE.consistency(6, 8)]
    forged_root = hashlib.sha256(b"an edited history").digest()
    return {
        "one hash flipped": (
            _consistency_file(6, 8, hashes=[hashes[0], _flip(hashes[1]), hashes[2]]),
            old,
            new,
            "root mismatch: the consistency proof leads to new root",
        ),
        "the first hash flipped": (
            _consistency_file(6, 8, hashes=[_flip(hashes[0]), *hashes[1:]]),
            old,
            new,
            "root mismatch: the consistency proof leads to old root",
        ),
        "an extra hash": (
            _consistency_file(6, 8, hashes=[*hashes, hashes[0]]),
            old,
            new,
            "proof too long",
        ),
        "a missing hash": (
            _consistency_file(6, 8, hashes=hashes[1:]),
            old,
            new,
            "proof too short",
        ),
        "a forged old checkpoint": (
            _consistency_file(6, 8),
            LOG.checkpoint(6, forged_root),
            new,
            "root mismatch: the proof's old root is not the old checkpoint's",
        ),
        "a proof from the forged old root": (
            _consistency_file(6, 8, fromRoot=forged_root.hex()),
            LOG.checkpoint(6, forged_root),
            new,
            "root mismatch: the consistency proof leads to old root",
        ),
        "an old checkpoint signed by another key": (
            _consistency_file(6, 8),
            _checkpoint(6, OTHER_LOG),
            new,
            "wrong key: the old checkpoint is signed by",
        ),
        "the old checkpoint of another size": (
            _consistency_file(6, 8),
            _checkpoint(5),
            new,
            "size mismatch: the proof's old tree has 6 leaves, the old checkpoint's 5",
        ),
        "the checkpoints swapped": (
            _consistency_file(6, 8),
            new,
            old,
            "size mismatch: the proof's old tree has 6 leaves, the old checkpoint's 8",
        ),
        "a shrinking log": (
            json.dumps(
                {
                    "fromSize": 8,
                    "toSize": 6,
                    "fromRoot": REFERENCE.root(8).hex(),
                    "toRoot": REFERENCE.root(6).hex(),
                    "hashes": [],
                }
            ),
            new,
            old,
            "a tree of 6 leaves cannot extend one of 8 leaves",
        ),
    }


@pytest.mark.parametrize("name", list(_tampered_consistencies()))
def test_a_tampered_consistency_proof_file_is_refused_with_its_reason(name: str) -> None:
    proof, old, new, reason = _tampered_consistencies()[name]
    with pytest.raises(ProofError) as refused:
        verify_proof(proof, new, LOG.verifier_key(), old_checkpoint=old)
    assert str(refused.value).startswith(reason), str(refused.value)


def test_the_old_checkpoint_goes_with_a_consistency_proof_only() -> None:
    key = LOG.verifier_key()
    with pytest.raises(ProofInputsError, match="give the old one too"):
        verify_proof(_consistency_file(6, 8), _checkpoint(8), key)
    with pytest.raises(ProofInputsError, match="consistency proof only"):
        verify_proof(_inclusion_file(5, 8), _checkpoint(8), key, old_checkpoint=_checkpoint(6))


def test_a_proof_file_reads_as_its_claim() -> None:
    claim = read_proof(_inclusion_file(5, 8).encode())
    assert isinstance(claim, InclusionClaim)
    assert (claim.leaf_index, claim.tree_size, claim.leaf_hash) == (5, 8, REFERENCE.nodes[(0, 5)])
    assert claim.hashes == tuple(REFERENCE.inclusion(5, 8))
