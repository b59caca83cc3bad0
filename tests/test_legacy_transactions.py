"""Chains stored before transactions carried salts still read and verify.

Such a transaction has no salt, write-set commitment or foreign reads. It reads
with an empty salt, its block's data hash still covers it, and the explorer
offers no hash of its writes (an unsalted one could be tested against guesses).
"""

from __future__ import annotations

import dataclasses
import json

from ledger_backends.chain import ChainWriter
from ledger_backends.hashing import canonical_json
from ledger_backends.memory import MemoryStore
from ledger_backends.records import Block, Tip, Transaction, Validation
from ledger_backends.testing import proposal
from ledger_backends.verify import verify_channel

LEGACY_ONLY = ("salt", "write_set_commitment", "foreign_reads")


def _legacy_text(text: str) -> str:
    raw = json.loads(text)
    return canonical_json({k: v for k, v in raw.items() if k not in LEGACY_ONLY})


def test_a_legacy_chain_reads_and_verifies_and_shows_no_write_set_hash() -> None:
    store = MemoryStore()
    writer = ChainWriter(store, "medical")
    tip = Tip.empty()
    for number, writes in enumerate(({"card/1": {"bloodType": "A+"}}, {"card/1": None})):
        commit, _ = writer.build(tip, [proposal(f"tx-{number}", writes=writes)])
        texts = tuple(_legacy_text(text) for text in commit.block.tx_texts)
        block = Block.build(commit.block.number, tip.hash, commit.block.timestamp, texts)
        assert store.append_if_tip("medical", tip, dataclasses.replace(commit, block=block))
        tip = Tip(block.number + 1, block.hash)

    (tx,) = store.read_blocks("medical", 0, 1)[0].transactions()
    assert tx.is_legacy and tx.commitment_holds
    assert tx.write_set_hash is None
    assert tx.validation == Validation.VALID
    assert verify_channel(store, "medical").ok


def test_a_salted_transaction_is_not_legacy() -> None:
    text = proposal("tx-new", writes={"k": 1}).canonical_text(Validation.VALID)
    tx = Transaction.from_text(text, 0, 0)
    assert not tx.is_legacy and tx.commitment_holds
    assert tx.write_set_hash is not None and len(tx.write_set_hash) == 64
