"""Verified reads over mutual TLS: MedicalCardRevision.proof and Report.proof.

A reader of a record gets, with the version shown, everything needed to check it against
the log without trusting the server, and the test checks it as a client would, with
hashlib, json, rfc8785 and proofcheck only (and the log's public key from the network
directory): (1) canonicalText is RFC 8785 and holds the data shown, (2) SHA-256(salt ‖
canonicalText) is the commitment, (3) the transaction's write-set holds that commitment
for the key, (4) the transaction's text hashes to the inclusion's leaf, (5) the proof
leads to the root of a checkpoint the log's key signed. A changed text or salt fails
step 2, and each later step fails on what it checks.

Who gets a proof is who reads the record: a card's guardians and doctor; a report's
guardians and author, never a school (its view is its own, the stored record names other
schools). Asking for a proof notes no read of its own: the access log gets what the same
read without it gets. Once a child is erased there is nothing left to prove. A version
written before values carried commitments has no verified read, and says so.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import proofcheck
from api.services import Keyrings
from api.verified_reads import PROOF_COMES_WITH_A_READ, WRITTEN_BEFORE_COMMITMENTS
from authz.network import load_network
from ledger_backends import open_store
from ledger_backends.chain import ChainWriter
from ledger_backends.hashing import canonical_json, sha256_hex
from ledger_backends.records import Creator, Proposal, format_timestamp, utc_now
from ledger_backends.testing import scratch_url
from tests.api_client import (
    APPROVE,
    Api,
    api_server,
    nodes,
    ready_report,
    register,
    sign_and_accept,
    update_card,
)
from tests.networks import NetworkFixture, make_network

VERIFIED = """
  key canonicalText salt commitment txHashInputs
  inclusion { leafIndex treeSize leafHash hashes checkpoint { origin treeSize rootHash note } }
"""
CARD_SHOWN = "card { childId version allergies healthGroup notes }"
HISTORY = f"""
query($child: ID!) {{
  medicalCardHistory(childId: $child) {{ edges {{ node {{ version txId {CARD_SHOWN} }} }} }}
}}"""
HISTORY_PROOF = f"""
query($child: ID!) {{
  medicalCardHistory(childId: $child) {{
    edges {{ node {{ version txId {CARD_SHOWN} proof {{ {VERIFIED} }} }} }}
  }}
}}"""
NEWEST_PROOF = f"""
query($child: ID!) {{
  medicalCardHistory(childId: $child, first: 1) {{
    edges {{ node {{ version {CARD_SHOWN} proof {{ {VERIFIED} }} }} }}
  }}
}}"""
NEWEST = f"""
query($child: ID!) {{
  medicalCardHistory(childId: $child, first: 1) {{ edges {{ node {{ version {CARD_SHOWN} }} }} }}
}}"""
REPORT_SHOWN = "id txId status content { conclusion allergies healthGroup }"
REPORT = f"query($id: ID!) {{ report(id: $id) {{ {REPORT_SHOWN} }} }}"
REPORT_PROOF = f"query($id: ID!) {{ report(id: $id) {{ {REPORT_SHOWN} proof {{ {VERIFIED} }} }} }}"
REPORT_META_PROOF = f"query($id: ID!) {{ report(id: $id) {{ id status proof {{ {VERIFIED} }} }} }}"
REPORTS_PROOF = (
    f"{{ reports(first: 200) {{ edges {{ node {{ id txId proof {{ {VERIFIED} }} }} }} }} }}"
)
APPROVE_PROOF = """
mutation($id: ID!, $schools: [String!]!) {
  approveReport(id: $id, schools: $schools) { id proof { key } }
}"""
ERASE = """
mutation($child: ID!, $confirm: String!) {
  eraseChild(childId: $child, confirm: $confirm) { erasedAt }
}"""
ACCESS_LOG = """
query($child: ID!) {
  accessLog(childId: $child, first: 200) {
    edges { node { id readerUid what recordId version purpose outcome } }
  }
}"""
HEIGHTS = "{ channels { name height } }"
SCHOOL_REFUSAL = (
    "A school is not shown the report's stored record, which names other schools' permissions."
)


# -- the client's check: hashlib, json, rfc8785 and proofcheck only ------------------------------


def failed_step(
    net: NetworkFixture, channel: str, record: dict[str, Any], shown: dict[str, Any]
) -> int | None:
    """The first of the five steps of the client check `record` (a VerifiedRecord) fails
    against the data `shown` of it, None when it passes them all."""
    text = record["canonicalText"]
    # 1. The text is RFC 8785 of what it says, and says what was shown.
    value = json.loads(text)
    if rfc8785.dumps(value).decode("utf-8") != text or not _holds(value, shown):
        return 1
    # 2. The salt opens the commitment to that text.
    opened = hashlib.sha256(bytes.fromhex(record["salt"]) + text.encode("utf-8")).hexdigest()
    if opened != record["commitment"]:
        return 2
    # 3. The transaction wrote that commitment to the key.
    written = json.loads(record["txHashInputs"])["write_set"].get(record["key"])
    if not isinstance(written, dict) or written["sealed"].get("commitment") != opened:
        return 3
    # 4. The transaction is the inclusion proof's leaf.
    inclusion = record["inclusion"]
    tx_hash = hashlib.sha256(record["txHashInputs"].encode("utf-8")).digest()
    leaf = proofcheck.leaf_hash(tx_hash)
    if leaf.hex() != inclusion["leafHash"]:
        return 4
    # 5. The leaf is in the tree whose root the log's key signed.
    key = proofcheck.parse_verifier_key((net.directory / "log" / f"{channel}.pub").read_text())
    try:
        signed = proofcheck.verify_checkpoint(inclusion["checkpoint"]["note"], key)
        if signed.tree_size != inclusion["treeSize"]:
            return 5
        path = [bytes.fromhex(h) for h in inclusion["hashes"]]
        proofcheck.verify_inclusion(
            inclusion["leafIndex"], inclusion["treeSize"], leaf, path, signed.root
        )
    except proofcheck.ProofError:
        return 5
    return None


def _holds(value: Any, shown: Any) -> bool:
    """Whether the stored value holds every field shown, as shown (nested objects too)."""
    if isinstance(shown, dict):
        return isinstance(value, dict) and all(
            name in value and _holds(value[name], part) for name, part in shown.items()
        )
    return bool(value == shown)


def verified(net: NetworkFixture, channel: str, record: dict[str, Any], shown: Any) -> None:
    assert failed_step(net, channel, record, shown) is None, record


# -- fixtures and steps -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("api-verified-reads") / "network")


@pytest.fixture(scope="module")
def api(net: NetworkFixture) -> Iterator[Api]:
    with api_server(net, "memory://") as running:
        yield running


def history(api: Api, uid: str, child: str, query: str = HISTORY_PROOF) -> list[dict[str, Any]]:
    return nodes(api(uid).data(query, {"child": child})["medicalCardHistory"])


def tree_size(api: Api, channel: str) -> int:
    query = "query($c: String!) { checkpoint(channel: $c) { treeSize } }"
    return int(api("alice").data(query, {"c": channel})["checkpoint"]["treeSize"])


def access_log(api: Api, child: str) -> list[dict[str, Any]]:
    return nodes(api("alice").data(ACCESS_LOG, {"child": child})["accessLog"])


def _without_ids(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in entry.items() if k != "id"} for entry in entries]


# -- medical cards ----------------------------------------------------------------------------


HISTORY_TWO_PROOFS = HISTORY_PROOF.replace("(childId: $child)", "(childId: $child, first: 2)")


def test_a_guardian_verifies_every_version_and_the_doctor_those_it_wrote(api: Api) -> None:
    child = register(api, "alice", "Vera Proof")
    sign_and_accept(api, child)
    update_card(api, child, 1, allergies=["latex"], healthGroup=2)
    update_card(api, child, 2, notes="Seen for a sore throat.")
    revisions = history(api, "alice", child)
    assert [r["version"] for r in revisions] == [3, 2, 1]
    for revision in revisions:
        proof = revision["proof"]
        assert proof["key"] == f"card/{child}"
        assert json.loads(proof["txHashInputs"])["tx_id"] == revision["txId"]
        assert proof["inclusion"]["treeSize"] == tree_size(api, "medical")
        verified(api.net, "medical", proof, revision["card"])
    assert len({r["proof"]["commitment"] for r in revisions}) == 3
    assert len({r["proof"]["salt"] for r in revisions}) == 3
    # The doctor wrote versions 3 and 2, and is shown the same commitments.
    written = history(api, "dr-house", child, HISTORY_TWO_PROOFS)
    assert [r["version"] for r in written] == [3, 2]
    for revision in written:
        verified(api.net, "medical", revision["proof"], revision["card"])
    assert [r["proof"]["commitment"] for r in written] == [
        r["proof"]["commitment"] for r in revisions[:2]
    ]
    # Version 1 is the parent's registration, whose text names whom guardianship was offered
    # to (the contract shows that to guardians only): its proof is a guardian's to check.
    error = api("dr-house").error(HISTORY_PROOF, {"child": child})
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["path"][-3:] == [2, "node", "proof"]


def test_a_changed_text_or_salt_fails_the_check(api: Api) -> None:
    child = register(api, "alice", "Walt Proof")
    sign_and_accept(api, child)
    update_card(api, child, 1, allergies=["penicillin"])
    newest, oldest = history(api, "alice", child)
    record, shown = newest["proof"], newest["card"]
    assert failed_step(api.net, "medical", record, shown) is None

    # The text changed, still canonical and agreeing with what a forger would show.
    edited = json.loads(record["canonicalText"]) | {"allergies": []}
    forged_text = rfc8785.dumps(edited).decode()
    forged = {**record, "canonicalText": forged_text}
    assert failed_step(api.net, "medical", forged, {**shown, "allergies": []}) == 2
    other_salt = {**record, "salt": secrets.token_hex(32)}
    assert failed_step(api.net, "medical", other_salt, shown) == 2
    # A forger who commits to the new text anew, with a salt of their own, meets step 3.
    salt = secrets.token_hex(32)
    recommitted = {
        **forged,
        "salt": salt,
        "commitment": hashlib.sha256(bytes.fromhex(salt) + forged_text.encode()).hexdigest(),
    }
    assert failed_step(api.net, "medical", recommitted, {**shown, "allergies": []}) == 3

    # Text that is not RFC 8785, or that does not hold what is shown, fails step 1.
    spaced = {**record, "canonicalText": json.dumps(json.loads(record["canonicalText"]))}
    assert failed_step(api.net, "medical", spaced, shown) == 1
    assert failed_step(api.net, "medical", record, {**shown, "allergies": ["latex"]}) == 1
    # Another version's transaction holds another commitment; an edited one another leaf.
    elsewhere = {**record, "txHashInputs": oldest["proof"]["txHashInputs"]}
    assert failed_step(api.net, "medical", elsewhere, shown) == 3
    tx = json.loads(record["txHashInputs"])
    tx["timestamp"] = "2020-01-01T00:00:00.000000Z"
    retimed = {**record, "txHashInputs": canonical_json(tx)}
    assert failed_step(api.net, "medical", retimed, shown) == 4
    # A path that leads elsewhere, or a checkpoint not signed by the log's key.
    inclusion = record["inclusion"]
    bent = {**inclusion, "hashes": ["00" * 32, *inclusion["hashes"][1:]]}
    assert failed_step(api.net, "medical", {**record, "inclusion": bent}, shown) == 5
    origin, size, rest = inclusion["checkpoint"]["note"].split("\n", 2)
    resized = "\n".join([origin, str(int(size) + 1), rest])
    unsigned = {**inclusion, "checkpoint": {**inclusion["checkpoint"], "note": resized}}
    assert failed_step(api.net, "medical", {**record, "inclusion": unsigned}, shown) == 5


def test_an_emergency_doctor_reads_the_card_but_not_others_transactions(api: Api) -> None:
    child = register(api, "alice", "Xena Proof")
    sign_and_accept(api, child)
    update_card(api, child, 1, allergies=["peanuts"])
    emergency = """
    mutation($child: ID!) {
      openEmergencyAccess(childId: $child, reason: "Unconscious at the ER, allergies needed.") {
        id
      }
    }"""
    assert api("dr-quinn").code(HISTORY_PROOF, {"child": child}) == "NOT_FOUND"
    api("dr-quinn").data(emergency, {"child": child})
    assert [r["version"] for r in history(api, "dr-quinn", child, HISTORY)] == [2, 1]
    # Both versions were written by others and addressed to others (the guardian, the
    # treating doctor): their texts are not this doctor's to see, so neither are their proofs.
    for query in (NEWEST_PROOF, HISTORY_PROOF):
        assert api("dr-quinn").code(query, {"child": child}) == "FORBIDDEN"
    (newest,) = history(api, "alice", child, NEWEST_PROOF)
    verified(api.net, "medical", newest["proof"], newest["card"])


# -- reports ----------------------------------------------------------------------------------


def test_guardians_and_the_author_verify_the_report_they_are_shown(api: Api) -> None:
    _, report = ready_report(api)
    for uid in ("alice", "dr-house"):
        shown = api(uid).data(REPORT_PROOF, {"id": report})["report"]
        proof = shown["proof"]
        assert proof["key"] == f"report/{report}"
        assert json.loads(proof["txHashInputs"])["function"] == "createReport"
        verified(api.net, "report", proof, {"id": report, "content": shown["content"]})

    # Approved for a school: the version shown, and proved, is the approval's.
    api("alice").data(APPROVE, {"id": report, "schools": ["school-b"]})
    for uid in ("alice", "dr-house"):
        shown = api(uid).data(REPORT_PROOF, {"id": report})["report"]
        proof = shown["proof"]
        assert json.loads(proof["txHashInputs"])["tx_id"] == shown["txId"]
        assert json.loads(proof["txHashInputs"])["function"] == "approveReport"
        stored = json.loads(proof["canonicalText"])
        assert [p["school"] for p in stored["permissions"]] == ["school-b"]
        verified(api.net, "report", proof, {"id": report, "content": shown["content"]})
        listed = nodes(api(uid).data(REPORTS_PROOF)["reports"])
        (entry,) = [r for r in listed if r["id"] == report]
        assert entry["txId"] == shown["txId"]
        verified(api.net, "report", entry["proof"], {"id": report})


def test_a_school_is_refused_the_report_proof_and_shown_nothing_else(api: Api) -> None:
    _, report = ready_report(api)
    api("alice").data(APPROVE, {"id": report, "schools": ["school-a", "school-b"]})
    for school in ("school-a-office", "school-b-office"):
        # Without the proof the school reads its own view of the report...
        assert api(school).data(REPORT, {"id": report})["report"]["status"] == "APPROVED"
        # ...with it, it is refused, and the whole answer is withheld.
        for query in (REPORT_PROOF, REPORT_META_PROOF, REPORTS_PROOF):
            body = api(school).execute(query, {"id": report})
            assert body["data"] is None, body
            (error,) = body["errors"]
            assert (error["message"], error["extensions"]) == (
                SCHOOL_REFUSAL,
                {"code": "NOT_FOUND"},
            )


def test_a_report_a_mutation_returns_is_proved_by_reading_it(api: Api) -> None:
    _, report = ready_report(api)
    error = api("alice").error(APPROVE_PROOF, {"id": report, "schools": ["school-a"]})
    assert (error["message"], error["extensions"]["code"]) == (
        PROOF_COMES_WITH_A_READ,
        "BAD_USER_INPUT",
    )
    shown = api("alice").data(REPORT_PROOF, {"id": report})["report"]
    assert shown["status"] == "APPROVED", "the change was made all the same"
    verified(api.net, "report", shown["proof"], {"id": report})


# -- what asking for a proof costs the access log -------------------------------------------------


def test_a_proof_adds_and_drops_no_access_log_entry(api: Api) -> None:
    child, report = ready_report(api)
    cases = [
        (NEWEST, NEWEST_PROOF, {"child": child}, "CARD_HISTORY"),  # a version dr-house wrote
        (REPORT, REPORT_PROOF, {"id": report}, "REPORT_CONTENT"),
    ]
    for plain, with_proof, variables, what in cases:
        for uid in ("alice", "dr-house"):
            before = access_log(api, child)
            api(uid).data(plain, variables)
            after_plain = access_log(api, child)
            api(uid).data(with_proof, variables)
            after_proof = access_log(api, child)
            added_plain = after_plain[: len(after_plain) - len(before)]
            added_proof = after_proof[: len(after_proof) - len(after_plain)]
            assert len(added_plain) == len(added_proof) == 1, (uid, what)
            assert _without_ids(added_plain) == _without_ids(added_proof)
            assert added_proof[0]["what"] == what and added_proof[0]["readerUid"] == uid


# -- erasure and versions without commitments ------------------------------------------------------


def test_an_erased_child_leaves_nothing_to_prove(api: Api) -> None:
    child, report = ready_report(api)
    revisions = history(api, "alice", child)
    proved = api("alice").data(REPORT_PROOF, {"id": report})["report"]["proof"]
    erased = api("alice").data(ERASE, {"child": child, "confirm": "Rory Pond"})["eraseChild"]
    erased_on = f"This child's records were erased on {erased['erasedAt'][:10]}."
    for query, variables in ((HISTORY_PROOF, {"child": child}), (REPORT_PROOF, {"id": report})):
        error = api("alice").error(query, variables)
        assert (error["extensions"]["code"], error["message"]) == ("NOT_FOUND", erased_on)
        assert api("dr-house").code(query, variables) == "NOT_FOUND"
    # What was verified before stays verifiable: the log keeps the commitment, the salt is
    # gone from the store with the child's key, and only a reader who kept it can open it.
    verified(api.net, "medical", revisions[0]["proof"], revisions[0]["card"])
    verified(api.net, "report", proved, {"id": report})


def test_a_version_written_before_commitments_has_no_verified_read(
    net: NetworkFixture, tmp_path: Path
) -> None:
    with scratch_url("sqlite", tmp_path) as url:
        with api_server(net, url) as api:
            child = register(api, "alice", "Yuri Proof")
            sign_and_accept(api, child)
        _append_card_sealed_before_commitments(net, url, child)
        with api_server(net, url) as api:
            old, first = history(api, "alice", child, HISTORY)
            assert (old["version"], first["version"]) == (2, 1)
            assert old["card"]["notes"] == "Written before commitments."
            body = api("alice").execute(HISTORY_PROOF, {"child": child})
            assert body["data"] is None
            (error,) = body["errors"]
            assert (error["message"], error["extensions"]["code"]) == (
                WRITTEN_BEFORE_COMMITMENTS,
                "UNAVAILABLE",
            )
            assert error["path"][-1] == "proof"
            # Versions sealed since carry commitments, and have their verified reads.
            update_card(api, child, 2, healthGroup=1)
            (newest,) = nodes(
                api("alice").data(NEWEST_PROOF, {"child": child})["medicalCardHistory"]
            )
            assert newest["version"] == 3
            verified(net, "medical", newest["proof"], newest["card"])


def _append_card_sealed_before_commitments(net: NetworkFixture, url: str, child: str) -> None:
    """Version 2 of the child's card as a server sealed values before they carried
    commitments (AES-GCM over the card's canonical JSON, bound to channel, key, child and
    transaction only), appended to the stopped server's ledger with its own chain writer."""
    network = load_network(net.directory)
    keyrings = Keyrings.open(network, url)
    store = open_store(url)
    try:
        key = f"card/{child}"
        (current,) = [r for r in store.scan_state("medical") if r.key == key]
        sealer_key = keyrings.by_channel["medical"].opening_key(child)
        assert sealer_key is not None
        card = _opened(sealer_key, current.json(), key)
        card = {**card, "version": 2, "notes": "Written before commitments."}
        tx_id = secrets.token_hex(16)
        nonce = secrets.token_bytes(12)
        aad = canonical_json(["healthledger value", "medical", key, child, tx_id]).encode()
        data = sealer_key.encrypt(nonce, canonical_json(card).encode(), aad)
        envelope = {
            "alg": "A256GCM",
            "child": child,
            "tx": tx_id,
            "nonce": base64.b64encode(nonce).decode(),
            "data": base64.b64encode(data).decode(),
        }
        proposal = Proposal(
            tx_id=tx_id,
            channel="medical",
            contract="medical",
            function="updateMedicalCard",
            args_digest=sha256_hex(tx_id),
            creator=Creator(uid="dr-house", msp=net.identities()["dr-house"].msp),
            timestamp=format_timestamp(utc_now()),
            read_set={key: current.version},
            write_set={key: {"sealed": envelope}},
        )
        (receipt,) = ChainWriter(store, "medical").commit([proposal])
        assert receipt.validation == "VALID"
    finally:
        store.close()
        keyrings.close()


def _opened(aead: AESGCM, stored: dict[str, Any], key: str) -> dict[str, Any]:
    """A sealed value with a commitment, opened as the envelope describes (the AAD ends with
    the commitment; the plaintext holds the salt and the value)."""
    inner = stored["sealed"]
    bound = ["healthledger value", "medical", key, inner["child"], inner["tx"]]
    aad = canonical_json([*bound, inner["commitment"]]).encode()
    plaintext = aead.decrypt(base64.b64decode(inner["nonce"]), base64.b64decode(inner["data"]), aad)
    content: dict[str, Any] = json.loads(plaintext)
    return dict(content["value"])
