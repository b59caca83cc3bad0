"""Tampering: one byte changed in the store is found, named, and never built upon.

A short story runs through the API on SQLite, PostgreSQL and Redis, leaving
blocks 0-4 on the medical channel (block 2 accepts the agreement, blocks 3
and 4 update the card after it). Then one byte of one record of block 2 is
changed with the database's own client: a header field, a transaction, a
value in a transaction's write-set or its salted commitment, the world-state
row or the history row the block wrote (values are sealed, so a changed value
is a changed byte of its ciphertext). `healthledger verify` must exit 1 naming block 2 and the
kind of damage, `verifyChannel` must say the same, and the server must then
refuse to commit on the channel (UNAVAILABLE, nothing appended) until the
byte is put back and a verification passes again. A server started on a chain
whose tip block was changed refuses to extend it without being asked to verify,
and a running chain writer notices a tip whose stored hash changed under it,
while re-reading the tip block no more often than before its first append.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from api.cli import main
from ledger_backends import Block, LedgerDamagedError, chain, open_ledger
from ledger_backends.chain import ChainWriter
from ledger_backends.memory import MemoryStore
from ledger_backends.testing import (
    BlockField,
    HistoryValue,
    Place,
    RawStore,
    StateValue,
    TransactionText,
    WriteSetCommitment,
    backend_params,
    one_digit_changed,
    proposal,
    raw_store,
    scratch_url,
    tamper,
)
from tests.api_client import Api, api_server, register, sign_and_accept, update_card
from tests.networks import NetworkFixture, make_network

# Backends a server in this process can serve while the test changes them with their own client.
BACKENDS = backend_params("sqlite", "postgresql", "redis")
STORY_BLOCKS = 5
DAMAGED = 2
VERIFY = """
query($channel: String!) { verifyChannel(channel: $channel) { ok height firstBadBlock reason } }"""
CHANNELS = "{ channels { name height } }"
UPDATE_CARD = """
mutation($child: ID!, $version: Int!) {
  updateMedicalCard(childId: $child, expectedVersion: $version, patch: {healthGroup: 3}) { version }
}"""


@dataclass(frozen=True)
class Damage:
    """One byte to change in a record of block 2, and the reason verification must give.

    `old` and `new` are the stored text around the byte; None means the stored
    hash itself, with one hex digit changed.
    """

    place: Callable[[str], Place]  # from the agreement's world-state key
    old: str | Ciphertext | None
    new: str | None
    reason: str


class Ciphertext:
    """The start of the agreement's sealed ciphertext where it is stored: the value itself
    (a world-state or history row) or its transaction's write-set. Values are stored
    sealed, so a byte changed in a value is a byte changed in its ciphertext."""

    def find(self, stored: str, agreement_key: str) -> str:
        value = json.loads(stored)
        sealed = value["write_set"][agreement_key] if "write_set" in value else value
        return str(sealed["sealed"]["data"][:12])


CIPHERTEXT = Ciphertext()


DAMAGES = {
    "block header": Damage(
        lambda _: BlockField("medical", DAMAGED, "data_hash"),
        None,
        None,
        "its hash does not match its header: the block header was changed.",
    ),
    "transaction": Damage(
        lambda _: TransactionText("medical", DAMAGED, 0),
        "acceptAgreement",
        "acceptAgreemenT",
        "its transactions do not match its data hash.",
    ),
    "write-set value": Damage(
        lambda _: TransactionText("medical", DAMAGED, 0),
        CIPHERTEXT,
        None,
        "its transactions do not match its data hash. "
        "The write-set of transaction 0 differs from the history it left.",
    ),
    "write-set commitment": Damage(
        lambda _: WriteSetCommitment("medical", DAMAGED, 0),
        None,
        None,
        "its transactions do not match its data hash. "
        "The write-set commitment of transaction 0 does not match its write-set.",
    ),
    "world-state row": Damage(
        lambda key: StateValue("medical", key),
        CIPHERTEXT,
        None,
        "the world state differs from what this block wrote.",
    ),
    "history row": Damage(
        lambda key: HistoryValue("medical", key, DAMAGED, 0),
        CIPHERTEXT,
        None,
        "the key history differs from what this block wrote.",
    ),
}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(Path(tmp_path_factory.mktemp("tampering")) / "network")


def _story(api: Api) -> tuple[str, str]:
    """Blocks 0-4 on medical; returns the child and the agreement's world-state key."""
    child = register(api)
    agreement = sign_and_accept(api, child)
    update_card(api, child, 1, healthGroup=1)
    update_card(api, child, 2, allergies=["pollen"])
    assert _height(api) == STORY_BLOCKS
    return child, f"agreement/{agreement}"


def _height(api: Api) -> int:
    channels = api("alice").data(CHANNELS)["channels"]
    return int(next(c["height"] for c in channels if c["name"] == "medical"))


def _change(raw: RawStore, damage: Damage, agreement_key: str) -> Callable[[], None]:
    """Change the byte; returns how to put it back."""
    place = damage.place(agreement_key)
    if isinstance(damage.old, Ciphertext):
        old = damage.old.find(raw.read(place), agreement_key)
        new = ("A" if old[0] != "A" else "B") + old[1:]
    else:
        old = damage.old or raw.read(place)
        new = damage.new or one_digit_changed(old)
    raw.change(place, old, new)
    return lambda: raw.change(place, new, old)


def _refusal(api: Api, child: str) -> dict[str, Any]:
    """The error of a card update, which would append block 5 to medical."""
    return api("dr-house").error(UPDATE_CARD, {"child": child, "version": 3})


def _refused_because(block: int, reason: str) -> str:
    return (
        f"The medical ledger failed verification at block {block}: {reason} "
        "Writes to it are refused until an operator restores it."
    )


@pytest.mark.parametrize("ledger_url", BACKENDS, indirect=True)
@pytest.mark.parametrize("kind", list(DAMAGES))
def test_one_changed_byte_is_named_and_the_chain_is_not_extended(
    net: NetworkFixture, ledger_url: str, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    damage = DAMAGES[kind]
    with api_server(net, ledger_url) as api, raw_store(ledger_url) as raw:
        child, agreement_key = _story(api)
        capsys.readouterr()
        put_back = _change(raw, damage, agreement_key)

        assert main(["verify", "--ledger", ledger_url]) == 1
        assert f"medical: DAMAGED at block {DAMAGED}: {damage.reason}\n" in capsys.readouterr().out

        verification = api("alice").data(VERIFY, {"channel": "medical"})["verifyChannel"]
        assert verification["ok"] is False
        assert (verification["firstBadBlock"], verification["reason"]) == (DAMAGED, damage.reason)

        refusal = _refusal(api, child)
        assert refusal["extensions"]["code"] == "UNAVAILABLE"
        assert refusal["message"] == _refused_because(DAMAGED, damage.reason)
        assert _height(api) == STORY_BLOCKS

        put_back()
        assert api("alice").data(VERIFY, {"channel": "medical"})["verifyChannel"]["ok"] is True
        assert update_card(api, child, 3, healthGroup=3)["version"] == 4
        assert _height(api) == STORY_BLOCKS + 1


@pytest.mark.parametrize("ledger_url", BACKENDS, indirect=True)
def test_a_server_started_on_a_changed_tip_block_does_not_extend_it(
    net: NetworkFixture, ledger_url: str
) -> None:
    with api_server(net, ledger_url) as api:
        child, _ = _story(api)
    tip = TransactionText("medical", STORY_BLOCKS - 1, 0)
    with raw_store(ledger_url) as raw:
        raw.change(tip, "updateMedicalCard", "updateMedicalCarD")
    with api_server(net, ledger_url) as api:
        for _ in range(2):
            refusal = _refusal(api, child)
            assert refusal["extensions"]["code"] == "UNAVAILABLE"
            assert refusal["message"] == _refused_because(
                STORY_BLOCKS - 1, "its transactions do not match its data hash."
            )
        assert _height(api) == STORY_BLOCKS


# Redis keeps the tip's hash apart from the block (`CH:tip`): a changed block hash is not the
# tip a writer reads there, and is left to verification.
@pytest.mark.parametrize("backend", backend_params("memory", "sqlite", "postgresql"))
def test_a_writer_refuses_a_tip_whose_stored_hash_changed_under_it(
    backend: str, tmp_path: Path
) -> None:
    with scratch_url(backend, tmp_path) as url:
        ledger = open_ledger(url)
        try:
            writer = ChainWriter(ledger.store, "medical")
            writer.commit([proposal("a", writes={"a": 1})])
            writer.commit([proposal("b", writes={"b": 1})])
            tamper(ledger.store, BlockField("medical", 1, "hash"), one_digit_changed)
            with pytest.raises(LedgerDamagedError, match="at block 1: its hash does not match"):
                writer.commit([proposal("c", writes={"c": 1})])
            assert ledger.store.tip("medical").height == 2
        finally:
            ledger.close()


class CountingStore(MemoryStore):
    """Counts block reads, to see when the chain writer reads the tip block."""

    block_reads = 0

    def read_blocks(self, channel: str, start: int, limit: int) -> list[Block]:
        self.block_reads += 1
        return super().read_blocks(channel, start, limit)


def test_a_writer_re_hashes_the_tip_block_only_before_its_first_append(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    re_hashed: list[int] = []
    original = chain.block_damage

    def counted(store: Any, channel: str, block: Block, *args: Any) -> str | None:
        re_hashed.append(block.number)
        return original(store, channel, block, *args)

    monkeypatch.setattr(chain, "block_damage", counted)
    store = CountingStore()
    first, second = ChainWriter(store, "medical"), ChainWriter(store, "medical")
    first.commit([proposal("a", writes={"a": 1})])
    assert store.block_reads == 0  # an empty chain has no tip block
    second.commit([proposal("b", writes={"b": 1})])
    assert (re_hashed, store.block_reads) == ([0], 1)  # one read serves the check and the tree
    for n in range(5):  # each builds on the block the other appended
        first.commit([proposal(f"c{n}", writes={"c": n})])
        second.commit([proposal(f"d{n}", writes={"d": n})])
    assert re_hashed == [0]
    # A tip another writer appended is trusted, but its header tells the tree's size: one read.
    assert store.block_reads == 1 + 10
    for n in range(5):  # its own tip: neither re-hashed nor read
        first.commit([proposal(f"e{n}", writes={"e": n})])
    assert store.block_reads == 1 + 10 + 1
