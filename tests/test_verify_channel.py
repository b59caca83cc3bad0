"""`verifyChannel`: checks from where the last passing check ended, once per operation.

On a ledger: `verify_channel_since` agrees with a check from block 0 at every point of
a chain with writes, deletes and conflicts; it finds a byte changed in a block added
since (its transaction, the history or world-state row it wrote) and in the block it
starts from, and, as its docstring says, not a change further back. A chain whose first
blocks are older than Merkle trees verifies, from block 0 and from any tip, once later
blocks carry a tree; a changed tree node is named at the block that stored it (the nodes
of those first blocks at the first block with a tree), and a block without a tree after
one with a tree is damage.

Through the API, over mutual TLS on SQLite: a member's check reads only the blocks added
since this server's last passing check, thirty aliases of it in one operation run one
check, damage in a new block is named and stops writes until repaired, and `full: true`
(a check from block 0) is for administrators only.
"""

from __future__ import annotations

import dataclasses
import random
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import api.chain_checks
import ledger_backends.verify
from ledger_backends import (
    ChannelLedger,
    LedgerError,
    Tip,
    Validation,
    Version,
    open_ledger,
    open_store,
    verify_channel,
)
from ledger_backends.chain import ChainWriter
from ledger_backends.errors import BackendUnavailableError
from ledger_backends.memory import MemoryStore
from ledger_backends.records import Block
from ledger_backends.sqlite import SQLiteStore
from ledger_backends.testing import (
    BlockField,
    HistoryValue,
    Place,
    StateValue,
    TransactionText,
    TreeNodeHash,
    one_digit_changed,
    proposal,
    raw_store,
    tamper,
)
from ledger_backends.verify import verify_channel_since
from ledger_backends.verify_disk import DiskReplay, ScratchSpaceError
from tests.api_client import Api, api_server, register, sign_and_accept, update_card
from tests.networks import NetworkFixture, make_network

CHANNEL = "medical"
VERIFY = """
query($channel: String!, $full: Boolean) {
  verifyChannel(channel: $channel, full: $full) { ok height firstBadBlock reason }
}"""


# -- on a ledger ------------------------------------------------------------------------------


def _grow(writer: ChainWriter, blocks: int) -> list[Tip]:
    """Blocks 0 to `blocks - 1`, writing, deleting and conflicting on three keys.

    Block n writes n to key k(n % 3); returns the tip after each block.
    """
    versions: dict[str, Version | None] = {}
    tips = []
    for number in range(blocks):
        key, other = f"k{number % 3}", f"k{(number + 1) % 3}"
        proposals = [
            proposal(f"write-{number}", reads={key: versions.get(key)}, writes={key: number}),
            proposal(f"stale-{number}", reads={other: (0, 9)}, writes={other: -1}),
        ]
        if number % 4 == 3:
            proposals.append(
                proposal(
                    f"delete-{number}", reads={other: versions.get(other)}, writes={other: None}
                )
            )
        for receipt, sent in zip(writer.commit(proposals), proposals, strict=True):
            if receipt.validation == Validation.VALID:
                for written, value in sent.write_set.items():
                    versions[written] = None if value is None else (number, receipt.tx_index)
        tips.append(writer.store.tip(CHANNEL))
    return tips


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[tuple[str, ChainWriter]]:
    url = f"sqlite:///{tmp_path}/ledger.db"
    opened = open_ledger(url)
    try:
        yield url, ChainWriter(opened.store, CHANNEL)
    finally:
        opened.close()


def test_a_check_from_any_earlier_tip_agrees_with_one_from_block_zero(
    ledger: tuple[str, ChainWriter],
) -> None:
    _, writer = ledger
    tips = _grow(writer, 12)
    outcomes = {
        tx.validation for b in writer.store.read_blocks(CHANNEL, 0, 12) for tx in b.transactions()
    }
    assert outcomes == {Validation.VALID, Validation.MVCC_READ_CONFLICT}
    full = verify_channel(writer.store, CHANNEL)
    assert full.ok and full.tip == tips[-1]
    for tip in tips:
        assert verify_channel_since(writer.store, CHANNEL, tip) == full


# After a check at height 8, block 8 writes 8 to k2; block 7 is where the next check starts.
NEW_BLOCK_DAMAGE: dict[str, tuple[Place, str | None, str | None]] = {
    "transaction": (TransactionText(CHANNEL, 8, 0), "write-8", "writE-8"),
    "history row": (HistoryValue(CHANNEL, "k2", 8, 0), "8", "9"),
    "world-state row": (StateValue(CHANNEL, "k2"), "8", "9"),
    "the block checked last": (BlockField(CHANNEL, 7, "data_hash"), None, None),
}


@pytest.mark.parametrize("kind", list(NEW_BLOCK_DAMAGE))
def test_a_change_since_the_earlier_tip_is_found_as_a_check_from_block_zero_finds_it(
    ledger: tuple[str, ChainWriter], kind: str
) -> None:
    url, writer = ledger
    verified = _grow(writer, 9)[7]
    place, old, new = NEW_BLOCK_DAMAGE[kind]
    with raw_store(url) as raw:
        old = old or raw.read(place)
        raw.change(place, old, new or one_digit_changed(old))
    found = verify_channel_since(writer.store, CHANNEL, verified)
    full = verify_channel(writer.store, CHANNEL)
    assert not found.ok and found.first_bad_block in (7, 8)
    assert (found.first_bad_block, found.reason) == (full.first_bad_block, full.reason)


def test_a_change_before_the_earlier_tip_is_left_to_a_check_from_block_zero(
    ledger: tuple[str, ChainWriter],
) -> None:
    url, writer = ledger
    verified = _grow(writer, 9)[7]
    with raw_store(url) as raw:
        raw.change(TransactionText(CHANNEL, 2, 0), "write-2", "write-3")
    assert verify_channel_since(writer.store, CHANNEL, verified).ok
    full = verify_channel(writer.store, CHANNEL)
    assert (full.ok, full.first_bad_block) == (False, 2)


# -- chains older than Merkle trees -----------------------------------------------------------


def _append_without_tree(store: MemoryStore, name: str) -> None:
    """A block as stored before trees existed: no tree fields in its header, no tree nodes."""
    tip = store.tip(CHANNEL)
    commit, _ = ChainWriter(store, CHANNEL).build(tip, [proposal(name, writes={name: 1})])
    built = commit.block
    block = Block.build(built.number, built.previous_hash, built.timestamp, built.tx_texts)
    assert store.append_if_tip(
        CHANNEL, tip, dataclasses.replace(commit, block=block, tree_nodes=())
    )


def _legacy_then_tree(
    blocks_without: int = 3, blocks_with: int = 3
) -> tuple[MemoryStore, list[Tip]]:
    """Blocks without a tree, then blocks a chain writer appended; the tip after each."""
    store = MemoryStore()
    tips = []
    for number in range(blocks_without):
        _append_without_tree(store, f"old-{number}")
        tips.append(store.tip(CHANNEL))
    writer = ChainWriter(store, CHANNEL)
    for number in range(blocks_with):
        writer.commit(
            [proposal(f"new-{number}-{n}", writes={f"new/{n}": number}) for n in range(2)]
        )
        tips.append(store.tip(CHANNEL))
    return store, tips


def test_a_chain_older_than_trees_verifies_once_later_blocks_carry_one() -> None:
    store, tips = _legacy_then_tree()
    first_with_tree = store.read_blocks(CHANNEL, 3, 1)[0]
    assert (first_with_tree.tree_size, first_with_tree.first_leaf) == (5, 3)
    full = verify_channel(store, CHANNEL)
    assert full.ok and full.tip == tips[-1]
    for tip in tips:
        assert verify_channel_since(store, CHANNEL, tip) == full


def test_a_changed_tree_node_of_blocks_older_than_trees_is_named_at_the_first_with_a_tree() -> None:
    # Leaf 1 is in block 0, leaf 2 in block 2, after the tip a check from height 2 starts at.
    store, tips = _legacy_then_tree()
    tamper(store, TreeNodeHash(CHANNEL, 0, 1), one_digit_changed)
    full = verify_channel(store, CHANNEL)
    assert (full.ok, full.first_bad_block, full.reason) == (
        False,
        3,
        "its stored tree node (level 0, index 1) is changed.",
    )
    tamper(store, TreeNodeHash(CHANNEL, 0, 2), one_digit_changed)
    since = verify_channel_since(store, CHANNEL, tips[1])
    assert (since.ok, since.first_bad_block, since.reason) == (
        False,
        3,
        "its stored tree node (level 0, index 2) is changed.",
    )


@pytest.mark.parametrize(("blocks_per_read", "nodes_per_check"), [(500, 20_000), (2, 3)])
def test_a_changed_tree_node_is_named_at_the_block_that_stored_it_however_checks_are_cut(
    monkeypatch: pytest.MonkeyPatch, blocks_per_read: int, nodes_per_check: int
) -> None:
    monkeypatch.setattr(ledger_backends.verify, "VERIFY_CHUNK", blocks_per_read)
    monkeypatch.setattr(ledger_backends.verify, "TREE_NODES_PER_CHECK", nodes_per_check)
    store, _ = _legacy_then_tree()
    # The block holding each leaf; the first block with a tree (3) stored the older ones.
    leaf_blocks = [
        max(block.number, 3) for block in store.read_blocks(CHANNEL, 0, 10) for _ in block.tx_texts
    ]
    nodes = list(
        store.read_tree_nodes(CHANNEL, [(level, i) for level in range(4) for i in range(9)])
    )
    assert len(nodes) == 9 + 4 + 2 + 1  # every complete subtree of the 9 leaves
    for level, index in nodes:
        place = TreeNodeHash(CHANNEL, level, index)
        with raw_store(store) as raw:
            stored = raw.read(place)
            raw.write(place, one_digit_changed(stored))
            found = verify_channel(store, CHANNEL)
            raw.write(place, stored)
        last_leaf = ((index + 1) << level) - 1  # whose block completed the node
        assert (found.first_bad_block, found.reason) == (
            leaf_blocks[last_leaf],
            f"its stored tree node (level {level}, index {index}) is changed.",
        )
    assert verify_channel(store, CHANNEL).ok


def test_a_first_block_with_a_tree_stored_without_the_older_blocks_nodes_is_damage() -> None:
    store, _ = _legacy_then_tree(blocks_with=0)
    tip = store.tip(CHANNEL)
    commit, _ = ChainWriter(store, CHANNEL).build(tip, [proposal("new", writes={"new": 1})])
    assert commit.tree_nodes[0].id == (0, 0)
    assert store.append_if_tip(
        CHANNEL, tip, dataclasses.replace(commit, tree_nodes=commit.tree_nodes[1:])
    )
    found = verify_channel(store, CHANNEL)
    assert (found.ok, found.first_bad_block, found.reason) == (
        False,
        3,
        "its stored tree node (level 0, index 0) is missing.",
    )


def test_a_block_without_a_tree_after_one_with_a_tree_is_damage() -> None:
    store, tips = _legacy_then_tree(blocks_without=0, blocks_with=2)
    _append_without_tree(store, "late")
    reason = "it has no tree root, though the block before it has one."
    found = verify_channel(store, CHANNEL)
    assert (found.ok, found.first_bad_block, found.reason) == (False, 2, reason)
    since = verify_channel_since(store, CHANNEL, tips[1])
    assert (since.ok, since.first_bad_block, since.reason) == (False, 2, reason)


# -- a check from block 0 in bounded memory ----------------------------------------------------

# _grow(writer, 12) leaves k1 at (10, 0) and k2 at (11, 0); k0 was deleted by block 11.
STORED_DAMAGE: dict[str, tuple[Callable[[MemoryStore], None], int, str]] = {
    "a changed world-state row": (
        lambda store: tamper(store, StateValue(CHANNEL, "k1"), lambda _: "9"),
        10,
        "the world state differs from what this block wrote.",
    ),
    "a world-state row no transaction wrote": (
        lambda store: _stored(store).state.update(ghost=("1", (4, 0))),
        4,
        "the world state holds a key no valid transaction wrote.",
    ),
    "a missing world-state row": (
        lambda store: _stored(store).state.pop("k2"),
        11,
        "a key this block wrote is missing from the world state.",
    ),
    "a changed history entry": (
        lambda store: tamper(store, HistoryValue(CHANNEL, "k0", 3, 0), lambda _: "4"),
        3,
        "the key history differs from what this block wrote.",
    ),
    "a missing history entry": (
        lambda store: _stored(store).history["k1"].pop(2),  # block 4's (3 deleted it)
        4,
        "the key history differs from what this block wrote.",
    ),
    "a history entry stored twice": (
        lambda store: _stored(store).history["k2"].insert(1, _stored(store).history["k2"][1]),
        5,
        "the key history differs from what this block wrote.",
    ),
    "a history no transaction wrote": (
        lambda store: _stored(store).history.update(
            ghost=[dataclasses.replace(_stored(store).history["k0"][2], key="ghost")]
        ),
        6,
        "the key history differs from what this block wrote.",
    ),
    "the earliest of two": (
        lambda store: (
            tamper(store, StateValue(CHANNEL, "k1"), lambda _: "9"),
            _stored(store).history["k1"].pop(2),
        ),
        4,
        "the key history differs from what this block wrote.",
    ),
    "a world-state row before a history entry of the same block": (
        lambda store: (
            _stored(store).state.update(ghost=("1", (5, 0))),
            _stored(store).history["k2"].insert(1, _stored(store).history["k2"][1]),
        ),
        5,
        "the world state holds a key no valid transaction wrote.",
    ),
}

SCAN_ORDERS: dict[str, Callable[[list[Any]], list[Any]]] = {
    "as stored": lambda rows: rows,
    "reversed": lambda rows: rows[::-1],
    "shuffled": lambda rows: random.Random(21).sample(rows, len(rows)),
}


def _stored(store: MemoryStore) -> Any:
    return store._channel(CHANNEL)


def _scanned_in_order(
    monkeypatch: pytest.MonkeyPatch, store: MemoryStore, order: Callable[[list[Any]], list[Any]]
) -> None:
    """Make the store's state and history scans come in `order`, as Redis scans may."""
    state, history = store.scan_state, store.scan_history
    monkeypatch.setattr(store, "scan_state", lambda channel: iter(order(list(state(channel)))))
    monkeypatch.setattr(store, "scan_history", lambda channel: iter(order(list(history(channel)))))


@pytest.mark.parametrize("order", list(SCAN_ORDERS))
@pytest.mark.parametrize("kind", list(STORED_DAMAGE))
def test_stored_state_and_history_damage_is_named_whatever_order_the_scans_come_in(
    monkeypatch: pytest.MonkeyPatch, kind: str, order: str
) -> None:
    writer = ChainWriter(MemoryStore(), CHANNEL)
    _grow(writer, 12)
    store = writer.store
    assert isinstance(store, MemoryStore)
    damage, block, reason = STORED_DAMAGE[kind]
    damage(store)
    _scanned_in_order(monkeypatch, store, SCAN_ORDERS[order])
    found = verify_channel(store, CHANNEL)
    assert (found.ok, found.first_bad_block, found.reason) == (False, block, reason)


@pytest.mark.parametrize("transactions_per_read", [1, 7, 2_000])
def test_a_ledger_of_many_chunks_verifies_and_its_damage_is_named_as_in_one(
    monkeypatch: pytest.MonkeyPatch, ledger: tuple[str, ChainWriter], transactions_per_read: int
) -> None:
    # Blocks hold 2 or 3 transactions: 1 reads a block at a time, 7 two or three blocks.
    monkeypatch.setattr(ledger_backends.verify, "VERIFY_CHUNK_TRANSACTIONS", transactions_per_read)
    url, writer = ledger
    tips = _grow(writer, 12)
    intact = verify_channel(writer.store, CHANNEL)
    assert (intact.ok, intact.tip) == (True, tips[-1])
    with raw_store(url) as raw:
        raw.change(HistoryValue(CHANNEL, "k1", 7, 0), "7", "8")
        raw.change(StateValue(CHANNEL, "k2"), "11", "12")
    found = verify_channel(writer.store, CHANNEL)
    assert (found.ok, found.first_bad_block, found.reason) == (
        False,
        7,
        "the key history differs from what this block wrote.",
    )
    with raw_store(url) as raw:
        raw.change(TransactionText(CHANNEL, 9, 1), "stale-9", "stalE-9")
    found = verify_channel(writer.store, CHANNEL)
    # The walk stops at the first bad block, before the stored rows are compared.
    assert (found.ok, found.first_bad_block, found.reason) == (
        False,
        9,
        "its transactions do not match its data hash.",
    )


def test_a_check_without_room_for_its_temporary_database_says_so_and_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    writer = ChainWriter(MemoryStore(), CHANNEL)
    writer.commit([proposal(f"big-{n}", writes={f"big/{n}": "x" * 3000}) for n in range(8)])
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "nowhere"))
    with pytest.raises(ScratchSpaceError, match=r"could not be made: .* Set TMPDIR"):
        verify_channel(writer.store, CHANNEL)
    (tmp_path / "nowhere").mkdir()
    create = DiskReplay._create

    def full(path: Path) -> sqlite3.Connection:
        db = create(path)
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")  # no room beyond the empty tables
        return db

    monkeypatch.setattr(DiskReplay, "_create", staticmethod(full))
    with pytest.raises(ScratchSpaceError, match="could not be written: database or disk is full"):
        verify_channel(writer.store, CHANNEL)
    assert list((tmp_path / "nowhere").iterdir()) == []


def test_write_sets_of_every_shape_verify_and_a_changed_one_is_found() -> None:
    writer = ChainWriter(MemoryStore(), CHANNEL)
    odd = {
        "日本/ключ": {"b": [1, 2.5, None, True], "a": '\u00e9"\\'},
        'a"b': "",
        "z": [],
        "Z": {},
        "emoji/🙂": -0.0,
    }
    writer.commit([proposal("odd", writes=odd)])
    writer.commit([proposal("delete", reads={"z": (0, 0)}, writes={"z": None, "Z": 1})])
    assert verify_channel(writer.store, CHANNEL).ok
    tamper(writer.store, StateValue(CHANNEL, "Z"), lambda _: "2")
    found = verify_channel(writer.store, CHANNEL)
    assert (found.ok, found.first_bad_block) == (False, 1)


def test_a_check_leaves_no_temporary_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ledger: tuple[str, ChainWriter]
) -> None:
    _, writer = ledger
    _grow(writer, 3)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temp"))
    (tmp_path / "temp").mkdir()
    assert verify_channel(writer.store, CHANNEL).ok
    with raw_store(writer.store) as raw:
        raw.change(StateValue(CHANNEL, "k2"), "2", "3")
    assert not verify_channel(writer.store, CHANNEL).ok
    assert list((tmp_path / "temp").iterdir()) == []


# -- a SQLite ledger's stored rows, copied by SQLite --------------------------------------------
#
# On SQLite the check copies the stored state and history with SQL (the ledger file attached
# read-only) instead of scanning them; whatever the copy does not find intact is decided on
# the scans, as before. So every outcome is the scans': each change below, made to the file
# with SQL as only a hand at it could, is named (or reported as a ledger that cannot be read)
# alike with the copy and without it. _grow(writer, 12) leaves k1 at (10, 0), k2 at (11, 0).

RAW_CHANGES = {
    "nothing": [],
    "a state value that is not UTF-8": [
        "UPDATE ledger_state SET value = CAST(x'7b22ff' AS TEXT) WHERE key = 'k1'"
    ],
    "a history creator that is not UTF-8": [
        "UPDATE ledger_history SET creator_uid = CAST(x'ff' AS TEXT)"
        " WHERE key = 'k2' AND block_number = 5"
    ],
    "a state key that is not UTF-8": [
        "UPDATE ledger_state SET key = CAST(x'6bff' AS TEXT) WHERE key = 'k1'"
    ],
    "a state value stored as bytes": [
        "UPDATE ledger_state SET value = CAST(value AS BLOB) WHERE key = 'k1'"
    ],
    "a state version stored as text": [
        "UPDATE ledger_state SET block_number = 'ten' WHERE key = 'k1'"
    ],
    "a history value stored as a number": [
        "UPDATE ledger_history SET value = 7.5 WHERE key = 'k1' AND block_number = 7"
    ],
    "a history key stored as bytes": [
        "UPDATE ledger_history SET key = CAST(key AS BLOB) WHERE key = 'k2' AND block_number = 2"
    ],
    "a history value stored as NULL": [
        "UPDATE ledger_history SET value = NULL WHERE key = 'k0' AND block_number = 6"
    ],
    "a history entry deleted": ["DELETE FROM ledger_history WHERE key = 'k1' AND block_number = 4"],
    "a state row added": [
        "INSERT INTO ledger_state (channel, key, value, block_number, tx_index)"
        " VALUES ('medical', 'ghost', '1', 4, 0)"
    ],
    "a state row of another channel": [
        "INSERT INTO ledger_state (channel, key, value, block_number, tx_index)"
        " VALUES ('other', 'k1', '1', 4, 0)"
    ],
}


def _changed(url: str, statements: list[str]) -> None:
    with sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None) as db:
        for statement in statements:
            db.execute(statement)


def _check_outcome(url: str) -> tuple[Any, ...]:
    """A check from block 0 of the ledger opened read-only, as `healthledger verify` opens it:
    its verdict, or the error it raised."""
    store = open_store(url, create=False)
    try:
        found = verify_channel(store, CHANNEL)
    except LedgerError as exc:
        return ("raised", type(exc), str(exc))
    finally:
        store.close()
    return ("checked", found.ok, found.first_bad_block, found.reason)


def _without_the_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DiskReplay, "copy_stored", lambda replay, ledger, channel: False)


class Scans:
    """Counts the times a check took the store's scans."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.taken = 0
        load = DiskReplay.load_stored

        def counted(replay: DiskReplay, *rows: Any) -> None:
            self.taken += 1
            load(replay, *rows)

        monkeypatch.setattr(DiskReplay, "load_stored", counted)


@pytest.mark.parametrize("kind", list(RAW_CHANGES))
def test_a_sqlite_ledgers_rows_are_judged_as_the_scans_judge_them(
    monkeypatch: pytest.MonkeyPatch, ledger: tuple[str, ChainWriter], kind: str
) -> None:
    url, writer = ledger
    _grow(writer, 12)
    _changed(url, RAW_CHANGES[kind])
    scans = Scans(monkeypatch)
    copied = _check_outcome(url)
    assert scans.taken == (0 if kind in ("nothing", "a state row of another channel") else 1)
    with monkeypatch.context() as scans_only:
        _without_the_copy(scans_only)
        assert _check_outcome(url) == copied


def test_rows_that_are_not_utf_8_are_reported_as_a_ledger_that_cannot_be_read(
    ledger: tuple[str, ChainWriter],
) -> None:
    url, writer = ledger
    _grow(writer, 12)
    _changed(url, RAW_CHANGES["a history creator that is not UTF-8"])
    assert _check_outcome(url) == (
        "raised",
        BackendUnavailableError,
        "The SQLite ledger cannot be reached: Could not decode to UTF-8 column 'creator_uid'"
        " with text '\ufffd'. Nothing was written.",
    )
    _changed(url, ["UPDATE ledger_history SET creator_uid = 'ghost' WHERE key = 'k2'"])
    assert _check_outcome(url) == (
        "checked",
        False,
        2,
        "the key history differs from what this block wrote.",
    )


def _appending_before_the_copy(
    monkeypatch: pytest.MonkeyPatch, url: str, writer: ChainWriter, statements: list[str]
) -> None:
    """Make a check's walk end before a block writing k1 is appended, and the ledger file
    changed by `statements`, just before the stored rows are copied."""
    copy = DiskReplay.copy_stored

    def after_a_write(replay: DiskReplay, ledger: str, channel: str) -> bool:
        writer.commit([proposal("meanwhile", writes={"k1": "late"})])
        _changed(url, statements)
        return copy(replay, ledger, channel)

    monkeypatch.setattr(DiskReplay, "copy_stored", after_a_write)


def test_a_block_appended_before_the_copy_is_walked_and_its_keys_left_out(
    monkeypatch: pytest.MonkeyPatch, ledger: tuple[str, ChainWriter]
) -> None:
    url, writer = ledger
    _grow(writer, 12)
    _appending_before_the_copy(monkeypatch, url, writer, [])
    scans = Scans(monkeypatch)
    assert _check_outcome(url)[:3] == ("checked", True, None)
    assert scans.taken == 0


@pytest.mark.parametrize("copy", [True, False])
def test_a_row_left_out_that_is_not_utf_8_is_reported_as_the_scans_report_it(
    monkeypatch: pytest.MonkeyPatch, ledger: tuple[str, ChainWriter], copy: bool
) -> None:
    url, writer = ledger
    _grow(writer, 12)
    # k1 is written by the block appended meanwhile, so left out of the comparison.
    not_utf_8 = "UPDATE ledger_history SET tx_id = CAST(x'ff' AS TEXT) WHERE key = 'k1'"
    if not copy:
        _without_the_copy(monkeypatch)
    _appending_before_the_copy(monkeypatch, url, writer, [not_utf_8])
    raised, kind, message = _check_outcome(url)
    assert (raised, kind) == ("raised", BackendUnavailableError)
    assert "Could not decode to UTF-8 column 'tx_id'" in message


@pytest.mark.parametrize("copy", [True, False])
def test_a_block_appended_before_the_scans_is_walked_and_its_keys_left_out(
    monkeypatch: pytest.MonkeyPatch, ledger: tuple[str, ChainWriter], copy: bool
) -> None:
    url, writer = ledger
    _grow(writer, 12)
    with raw_store(url) as raw:
        raw.change(HistoryValue(CHANNEL, "k2", 11, 0), "11", "12")
    if not copy:
        _without_the_copy(monkeypatch)
    load = DiskReplay.load_stored

    def after_a_write(replay: DiskReplay, *rows: Any) -> None:
        # k1, last written by block 10, is written again: its new row must not be damage.
        writer.commit([proposal("meanwhile", reads={"k1": (10, 0)}, writes={"k1": "late"})])
        load(replay, *rows)

    monkeypatch.setattr(DiskReplay, "load_stored", after_a_write)
    assert _check_outcome(url) == (
        "checked",
        False,
        11,
        "the key history differs from what this block wrote.",
    )


def test_a_copy_that_fails_halfway_is_rolled_back_and_the_scans_decide(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ledger: tuple[str, ChainWriter]
) -> None:
    url, writer = ledger
    _grow(writer, 12)
    # What the copy reads: the ledger with a key no transaction wrote, and no history table,
    # so that its state is copied and its history is not.
    other = tmp_path / "other.db"
    with sqlite3.connect(url.removeprefix("sqlite:///")) as source, sqlite3.connect(other) as db:
        source.backup(db)
    _changed(f"sqlite:///{other}", [*RAW_CHANGES["a state row added"], "DROP TABLE ledger_history"])
    monkeypatch.setattr(SQLiteStore, "sqlite_file_uri", lambda _: f"file:{other}?mode=ro")
    scans = Scans(monkeypatch)
    assert _check_outcome(url)[:3] == ("checked", True, None)
    assert scans.taken == 1
    missing = f"file:{tmp_path}/missing.db?mode=ro"
    monkeypatch.setattr(SQLiteStore, "sqlite_file_uri", lambda _: missing)
    assert _check_outcome(url)[:3] == ("checked", True, None)
    assert scans.taken == 2
    assert not (tmp_path / "missing.db").exists()


def test_a_check_leaves_the_sqlite_ledger_free_to_append_to(
    ledger: tuple[str, ChainWriter],
) -> None:
    url, writer = ledger
    _grow(writer, 3)
    store = open_store(url, create=False)
    try:
        assert verify_channel(store, CHANNEL).ok
        writer.commit([proposal("after", writes={"k9": 9})])  # no lock of the check's is held
        assert verify_channel(store, CHANNEL).ok
    finally:
        store.close()


# -- through the API --------------------------------------------------------------------------


class Checks:
    """Counts the checks ChainChecks runs, from block 0 and from an earlier tip."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full = 0
        self.since = 0
        full, since = ChannelLedger.verify, api.chain_checks.verify_channel_since

        def counted_full(channel: ChannelLedger) -> Any:
            self.full += 1
            return full(channel)

        def counted_since(*args: Any) -> Any:
            self.since += 1
            return since(*args)

        monkeypatch.setattr(ChannelLedger, "verify", counted_full)
        monkeypatch.setattr(api.chain_checks, "verify_channel_since", counted_since)

    def taken(self) -> tuple[int, int]:
        counts = (self.full, self.since)
        self.full = self.since = 0
        return counts


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("verify-channel") / "network")


@pytest.fixture
def served(net: NetworkFixture, tmp_path: Path) -> Iterator[tuple[Api, str]]:
    url = f"sqlite:///{tmp_path}/ledger.db"
    with api_server(net, url) as running:
        yield running, url


def _verify(api: Api, uid: str, full: bool | None = None) -> dict[str, Any]:
    return dict(api(uid).data(VERIFY, {"channel": CHANNEL, "full": full})["verifyChannel"])


def _story(api: Api) -> str:
    """A child whose card dr-house updated once: blocks 0-3 on medical."""
    child = register(api)
    sign_and_accept(api, child)
    update_card(api, child, 1, healthGroup=3)
    return child


def test_a_member_checks_only_the_blocks_added_since_the_last_check(
    served: tuple[Api, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, _ = served
    child = _story(api)
    checks = Checks(monkeypatch)
    first = _verify(api, "alice")
    assert first == {"ok": True, "height": 4, "firstBadBlock": None, "reason": None}
    assert checks.taken() == (1, 0)  # nothing passed before in this process: from block 0
    assert _verify(api, "dr-house") == first
    assert checks.taken() == (0, 1)  # the same tip: its last block is read again, no other
    update_card(api, child, 2, healthGroup=4)
    assert _verify(api, "alice")["height"] == 5
    assert checks.taken() == (0, 1)


def test_thirty_aliases_in_one_operation_run_one_check(
    served: tuple[Api, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, _ = served
    child = _story(api)
    checks = Checks(monkeypatch)
    aliases = " ".join(
        f'v{i}: verifyChannel(channel: "{CHANNEL}") {{ ok height }}' for i in range(30)
    )
    assert set(map(str, api("alice").data(f"{{ {aliases} }}").values())) == {
        str({"ok": True, "height": 4})
    }
    assert checks.taken() == (1, 0)
    update_card(api, child, 2, healthGroup=4)
    assert len(api("dr-house").data(f"{{ {aliases} }}")) == 30
    assert checks.taken() == (0, 1)


def test_a_changed_block_added_since_the_last_check_is_named_and_not_built_upon(
    served: tuple[Api, str],
) -> None:
    api, url = served
    child = _story(api)
    assert _verify(api, "alice")["ok"]
    update_card(api, child, 2, healthGroup=4)  # block 4
    with raw_store(url) as raw:
        raw.change(TransactionText(CHANNEL, 4, 0), "updateMedicalCard", "updateMedicalCarD")
        verification = _verify(api, "alice")
        assert (verification["ok"], verification["firstBadBlock"]) == (False, 4)
        assert verification["reason"] == "its transactions do not match its data hash."
        refusal = api("dr-house").error(
            "mutation($c: ID!) { updateMedicalCard(childId: $c, expectedVersion: 3, "
            "patch: {healthGroup: 2}) { version } }",
            {"c": child},
        )
        assert refusal["extensions"]["code"] == "UNAVAILABLE"
        raw.change(TransactionText(CHANNEL, 4, 0), "updateMedicalCarD", "updateMedicalCard")
    assert _verify(api, "alice") == {"ok": True, "height": 5, "firstBadBlock": None, "reason": None}
    assert update_card(api, child, 3, healthGroup=2)["version"] == 4


def test_a_check_from_block_zero_is_for_administrators_and_finds_older_damage(
    served: tuple[Api, str],
) -> None:
    api, url = served
    child = _story(api)
    assert _verify(api, "alice")["ok"]
    update_card(api, child, 2, healthGroup=4)
    with raw_store(url) as raw:  # the agreement's acceptance, checked before
        raw.change(TransactionText(CHANNEL, 2, 0), "acceptAgreement", "acceptAgreemenT")
    assert _verify(api, "alice")["ok"]  # only block 4 is new: older damage is not looked for
    for uid in ("alice", "dr-house", "school-a-office"):
        assert api(uid).code(VERIFY, {"channel": CHANNEL, "full": True}) == "FORBIDDEN"
    assert (
        "administrators"
        in api("alice").error(VERIFY, {"channel": CHANNEL, "full": True})["message"]
    )
    full = _verify(api, "hospital-admin", full=True)
    assert (full["ok"], full["firstBadBlock"]) == (False, 2)
    assert _verify(api, "alice")["firstBadBlock"] == 2  # after damage, checks start at 0
