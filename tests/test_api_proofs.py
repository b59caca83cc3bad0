"""inclusionProof, consistencyProof and Report.txId over mutual TLS.

An inclusion proof goes only to those who may read, now, the medical card or report the
transaction wrote; everyone else — another parent, a school, a doctor without an
agreement, a doctor whose agreement ended, a school whose permission was withdrawn — gets
exactly the answer an unknown transaction id gets. A consistency proof goes to every
member of the channel. Every proof is checked here by a small RFC 9162 verifier of the
test's own, against a checkpoint whose signature is checked with the log's public key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from api.checkpoint_access import unseen_channel
from api.proofs import NO_SUCH_TRANSACTION
from tests.api_client import (
    APPROVE,
    HISTORY,
    REVOKE_AGREEMENT,
    REVOKE_PERMISSION,
    Api,
    api_server,
    nodes,
    ready_report,
    register,
    sign_and_accept,
    update_card,
)
from tests.networks import NetworkFixture, make_network

INCLUSION = """
query($channel: String!, $tx: String!, $size: Int) {
  inclusionProof(channel: $channel, txId: $tx, treeSize: $size) {
    leafIndex treeSize leafHash hashes checkpoint { origin treeSize rootHash note }
  }
}"""
CONSISTENCY = """
query($channel: String!, $from: Int!, $to: Int!) {
  consistencyProof(channel: $channel, fromSize: $from, toSize: $to) {
    fromSize toSize fromRoot toRoot hashes checkpoint { origin treeSize rootHash note }
  }
}"""
CHECKPOINT = "query($channel: String!) { checkpoint(channel: $channel) { treeSize rootHash } }"
REPORT_TX = "query($id: ID!) { report(id: $id) { id txId status } }"
REPORTS_TX = "{ reports(first: 200) { edges { node { id txId } } } }"
APPROVE_TX = """
mutation($id: ID!, $schools: [String!]!) { approveReport(id: $id, schools: $schools) { txId } }"""
HEADERS = """
query($channel: String!) {
  blocks(channel: $channel, first: 200) { edges { node { transactions { txId function } } } }
}"""
ACCESS_LOG = "query($child: ID!) { accessLog(childId: $child) { edges { node { id } } } }"
HEIGHTS = "{ channels { name height } }"
OPEN_EMERGENCY = """
mutation($child: ID!) {
  openEmergencyAccess(childId: $child, reason: "Unconscious at the ER, allergies needed now.") {
    id
  }
}"""
UNKNOWN_TX = "0" * 32
# Every error the API sends for a transaction the caller may not have a proof of.
REFUSED = {"message": NO_SUCH_TRANSACTION, "extensions": {"code": "NOT_FOUND"}}


# -- an RFC 9162 verifier of the test's own -----------------------------------------------------


def _sha256(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01", left, right)


def root_from_inclusion(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes | None:
    """RFC 9162 2.1.3.2: the root the audit path leads to, None if it cannot be one."""
    if index >= size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = _node(r, p)
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None


def consistent(first: int, second: int, old: bytes, new: bytes, path: list[bytes]) -> bool:
    """RFC 9162 2.1.4.2: whether `path` shows the tree of `second` leaves extends `first`'s."""
    if first == second:
        return not path and old == new
    if first == 0 or first > second or (not path and first & (first - 1)):
        return False
    if first & (first - 1) == 0:
        path = [old, *path]
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = _node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old and sr == new


def signed_head(net: NetworkFixture, channel: str, note: str) -> tuple[int, bytes]:
    """The tree size and root a checkpoint note states, once its signature verifies with
    the log's public key (log/CHANNEL.pub)."""
    origin, key_id_hex, material = (
        (net.directory / "log" / f"{channel}.pub").read_text().strip().split("+", 2)
    )
    body, signature_line = note.split("\n\n")
    dash, signer, stamp = signature_line.strip("\n").split(" ")
    assert (dash, signer) == ("\u2014", origin)
    signed = base64.b64decode(stamp)
    assert signed[:4].hex() == key_id_hex
    key = base64.b64decode(material)
    assert key[0] == 1
    Ed25519PublicKey.from_public_bytes(key[1:]).verify(signed[4:], f"{body}\n".encode())
    name, size, root = body.split("\n")
    assert name == origin
    return int(size), base64.b64decode(root)


def tx_text(api: Api, channel: str, tx_id: str) -> str:
    """The transaction's canonical text as stored (what its leaf is the hash of)."""
    assert api.services is not None
    store = api.services.channels[channel].store
    located = store.locate_transaction(channel, tx_id)
    assert located is not None
    (block,) = store.read_blocks(channel, located[0], 1)
    return block.tx_texts[located[1]]


def verified(api: Api, channel: str, tx_id: str, proof: dict[str, Any]) -> int:
    """Check an inclusion proof from end to end: the leaf is the transaction's, the path
    leads to the root of the checkpoint signed for the proof's size. Returns that size."""
    leaf = bytes.fromhex(proof["leafHash"])
    assert leaf == _sha256(b"\x00", _sha256(tx_text(api, channel, tx_id).encode()))
    size, root = signed_head(api.net, channel, proof["checkpoint"]["note"])
    assert size == proof["treeSize"] == proof["checkpoint"]["treeSize"]
    assert root.hex() == proof["checkpoint"]["rootHash"]
    path = [bytes.fromhex(h) for h in proof["hashes"]]
    assert root_from_inclusion(proof["leafIndex"], size, leaf, path) == root
    return size


# -- fixtures and steps ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("api-proofs") / "network")


@pytest.fixture(scope="module")
def api(net: NetworkFixture) -> Iterator[Api]:
    with api_server(net, "memory://") as running:
        yield running


def inclusion(api: Api, uid: str, channel: str, tx_id: str, size: int | None = None) -> Any:
    return api(uid).data(INCLUSION, {"channel": channel, "tx": tx_id, "size": size})[
        "inclusionProof"
    ]


def refusal(api: Api, uid: str, channel: str, tx_id: str, size: int | None = None) -> Any:
    """The error of a refused inclusionProof, without where it was (the same for all)."""
    error = api(uid).error(INCLUSION, {"channel": channel, "tx": tx_id, "size": size})
    return {key: value for key, value in error.items() if key not in ("locations", "path")}


def revisions(api: Api, child: str, uid: str = "alice") -> list[str]:
    """The txId of each version of the child's card, newest first."""
    found = nodes(api(uid).data(HISTORY, {"child": child})["medicalCardHistory"])
    return [revision["txId"] for revision in found]


def tx_of(api: Api, uid: str, channel: str, function: str) -> list[str]:
    """The ids of the transactions calling `function` whose headers `uid` may see."""
    edges = api(uid).data(HEADERS, {"channel": channel})["blocks"]["edges"]
    return [
        tx["txId"]
        for edge in edges
        for tx in edge["node"]["transactions"]
        if tx["function"] == function
    ]


def tree_size(api: Api, channel: str, uid: str = "alice") -> int:
    return int(api(uid).data(CHECKPOINT, {"channel": channel})["checkpoint"]["treeSize"])


def test_a_guardian_proves_every_version_of_the_card_is_in_the_log(api: Api) -> None:
    child = register(api, "alice", "Ada Proof")
    sign_and_accept(api, child)
    update_card(api, child, 1, allergies=["latex"])
    update_card(api, child, 2, healthGroup=2)
    tx_ids = revisions(api, child)
    assert len(tx_ids) == 3
    for tx_id in tx_ids:
        assert f"card/{child}" in json.loads(tx_text(api, "medical", tx_id))["write_set"]
        proof = inclusion(api, "alice", "medical", tx_id)
        assert verified(api, "medical", tx_id, proof) == tree_size(api, "medical")
        assert proof["checkpoint"]["origin"].endswith("/medical")
    # The verifier is no rubber stamp: one changed hash and the path leads elsewhere.
    proof = inclusion(api, "alice", "medical", tx_ids[0])
    leaf, path = bytes.fromhex(proof["leafHash"]), [bytes.fromhex(h) for h in proof["hashes"]]
    assert path, "a tree of several transactions has an audit path"
    forged = [bytes(32), *path[1:]]
    root = bytes.fromhex(proof["checkpoint"]["rootHash"])
    assert root_from_inclusion(proof["leafIndex"], proof["treeSize"], leaf, forged) != root


def test_the_childs_doctor_gets_it_until_the_agreement_ends(api: Api) -> None:
    child = register(api, "alice", "Ben Proof")
    agreement = sign_and_accept(api, child)
    update_card(api, child, 1, allergies=["pollen"])
    newest = revisions(api, child)[0]
    verified(api, "medical", newest, inclusion(api, "dr-house", "medical", newest))
    unknown = refusal(api, "dr-house", "medical", UNKNOWN_TX)
    assert unknown == REFUSED
    api("alice").data(REVOKE_AGREEMENT, {"id": agreement})
    assert refusal(api, "dr-house", "medical", newest) == unknown


def test_strangers_to_the_card_are_answered_as_for_an_unknown_transaction(api: Api) -> None:
    child = register(api, "alice", "Cal Proof")
    sign_and_accept(api, child)
    update_card(api, child, 1, healthGroup=1)
    newest = revisions(api, child)[0]
    for uid in ("bob", "dr-quinn", "hospital-admin", "school-a-office"):
        assert refusal(api, uid, "medical", newest) == REFUSED, uid
        assert refusal(api, uid, "medical", UNKNOWN_TX) == REFUSED, uid
    # A transaction of another kind of record, an unknown channel, a txId no store holds.
    signed = tx_of(api, "alice", "medical", "signAgreement")[-1]
    assert refusal(api, "alice", "medical", signed) == REFUSED
    assert refusal(api, "alice", "no-such-channel", newest) == REFUSED
    assert refusal(api, "alice", "medical", "x" * 4000) == REFUSED
    assert refusal(api, "alice", "report", newest) == REFUSED


def test_an_emergency_doctor_gets_it_while_the_access_is_open(api: Api) -> None:
    child = register(api, "alice", "Dee Proof")
    newest = revisions(api, child)[0]
    assert refusal(api, "dr-quinn", "medical", newest) == REFUSED
    api("dr-quinn").data(OPEN_EMERGENCY, {"child": child})
    verified(api, "medical", newest, inclusion(api, "dr-quinn", "medical", newest))


def test_asking_for_a_proof_writes_nothing(api: Api) -> None:
    child = register(api, "alice", "Eve Proof")
    sign_and_accept(api, child)
    newest = revisions(api, child)[0]
    logged = api("alice").data(ACCESS_LOG, {"child": child})
    heights = api("alice").data(HEIGHTS)
    inclusion(api, "alice", "medical", newest)
    inclusion(api, "dr-house", "medical", newest)
    refusal(api, "bob", "medical", newest)
    time.sleep(1.5)  # refused reads are recorded a second later, in the background
    assert api("alice").data(HEIGHTS) == heights
    assert api("alice").data(ACCESS_LOG, {"child": child}) == logged


def test_a_tree_size_is_checked_only_for_those_who_may_have_the_proof(api: Api) -> None:
    child = register(api, "alice", "Fay Proof")
    first = revisions(api, child)[0]
    proof = inclusion(api, "alice", "medical", first)
    index, current = proof["leafIndex"], proof["treeSize"]
    smallest = inclusion(api, "alice", "medical", first, index + 1)
    assert verified(api, "medical", first, smallest) == index + 1
    for size in (index, 0, -1, current + 1_000):
        error = api("alice").error(INCLUSION, {"channel": "medical", "tx": first, "size": size})
        assert error["extensions"]["code"] == "BAD_USER_INPUT", size
        assert "treeSize" in error["message"]
    assert refusal(api, "bob", "medical", first, current + 1_000) == REFUSED
    assert refusal(api, "alice", "medical", UNKNOWN_TX, current + 1_000) == REFUSED


def test_a_report_proof_goes_to_those_who_may_read_the_report(api: Api) -> None:
    _, report = ready_report(api)
    made = api("alice").data(REPORT_TX, {"id": report})["report"]["txId"]
    assert made in tx_of(api, "dr-house", "report", "createReport")
    assert f"report/{report}" in json.loads(tx_text(api, "report", made))["write_set"]
    for uid in ("alice", "dr-house"):
        assert api(uid).data(REPORT_TX, {"id": report})["report"]["txId"] == made
        verified(api, "report", made, inclusion(api, uid, "report", made))
    # The school that asked for it sees the report, not its content: no proof.
    assert api("school-a-office").data(REPORT_TX, {"id": report})["report"]["txId"] == made
    assert refusal(api, "school-a-office", "report", made) == REFUSED
    assert refusal(api, "school-b-office", "report", made) == REFUSED
    assert refusal(api, "bob", "report", made) == REFUSED

    # The version a mutation returns is the one its own transaction wrote.
    approved = api("alice").data(APPROVE_TX, {"id": report, "schools": ["school-b"]})
    granted = approved["approveReport"]["txId"]
    assert granted == tx_of(api, "alice", "report", "approveReport")[0]
    for uid in ("alice", "dr-house", "school-b-office"):
        assert api(uid).data(REPORT_TX, {"id": report})["report"]["txId"] == granted
        listed = nodes(api(uid).data(REPORTS_TX)["reports"])
        assert {"id": report, "txId": granted} in listed
        verified(api, "report", granted, inclusion(api, uid, "report", granted))
    # Another school's permission changes nothing the requesting school is shown.
    assert api("school-a-office").data(REPORT_TX, {"id": report})["report"]["txId"] == made
    assert refusal(api, "school-a-office", "report", granted) == REFUSED

    api("alice").data(REVOKE_PERMISSION, {"id": report, "school": "school-b"})
    for tx_id in (made, granted):
        assert refusal(api, "school-b-office", "report", tx_id) == REFUSED


def test_the_requesting_school_loses_the_proof_with_its_permission(api: Api) -> None:
    _, report = ready_report(api)
    api("alice").data(APPROVE, {"id": report, "schools": ["school-a"]})
    shown = api("school-a-office").data(REPORT_TX, {"id": report})["report"]
    assert shown["status"] == "APPROVED"
    verified(
        api, "report", shown["txId"], inclusion(api, "school-a-office", "report", shown["txId"])
    )
    revoked = api("alice").data(REVOKE_PERMISSION, {"id": report, "school": "school-a"})
    assert revoked["revokeReportPermission"]["status"] == "READY"
    now = api("school-a-office").data(REPORT_TX, {"id": report})["report"]["txId"]
    assert now == tx_of(api, "alice", "report", "revokeReportPermission")[0]
    for tx_id in (shown["txId"], now):
        assert refusal(api, "school-a-office", "report", tx_id) == REFUSED


def test_members_prove_a_later_tree_extends_an_earlier_one(api: Api) -> None:
    register(api, "alice", "Gus Proof")
    old = api("bob").data(CHECKPOINT, {"channel": "medical"})["checkpoint"]
    register(api, "bob", "Hal Proof")
    register(api, "alice", "Ivy Proof")
    new_size = tree_size(api, "medical")
    for uid in ("bob", "dr-quinn", "hospital-admin"):
        proof = api(uid).data(
            CONSISTENCY, {"channel": "medical", "from": old["treeSize"], "to": new_size}
        )["consistencyProof"]
        assert (proof["fromSize"], proof["toSize"]) == (old["treeSize"], new_size)
        assert proof["fromRoot"] == old["rootHash"]
        size, root = signed_head(api.net, "medical", proof["checkpoint"]["note"])
        assert (size, root.hex()) == (new_size, proof["toRoot"])
        path = [bytes.fromhex(h) for h in proof["hashes"]]
        old_root = bytes.fromhex(old["rootHash"])
        assert consistent(old["treeSize"], new_size, old_root, root, path)
        assert not consistent(old["treeSize"], new_size, bytes(32), root, path)
    same = api("alice").data(CONSISTENCY, {"channel": "medical", "from": new_size, "to": new_size})
    assert same["consistencyProof"]["hashes"] == []


def test_a_consistency_proof_is_only_for_members_and_within_the_tree(api: Api) -> None:
    size = tree_size(api, "report", "school-a-office")
    asked = {"channel": "medical", "from": 1, "to": 2}
    refused = api("school-a-office").error(CONSISTENCY, asked)
    assert (refused["message"], refused["extensions"]["code"]) == (
        unseen_channel("medical"),
        "NOT_FOUND",
    )
    unknown = api("alice").error(CONSISTENCY, {**asked, "channel": "no-such-channel"})
    assert (unknown["message"], unknown["extensions"]["code"]) == (
        unseen_channel("no-such-channel"),
        "NOT_FOUND",
    )
    for low, high in ((2, 1), (-1, 1), (1, size + 1)):
        error = api("school-a-office").error(
            CONSISTENCY, {"channel": "report", "from": low, "to": high}
        )
        assert error["extensions"]["code"] == "BAD_USER_INPUT", (low, high)
    api("school-a-office").data(CONSISTENCY, {"channel": "report", "from": 1, "to": size})
