"""The conformance suite every ledger backend must pass, written once.

A backend's test module subclasses `LedgerStoreConformance` once, naming the
backend (`backend`, a name in `BACKENDS`) and switching off with class
attributes the capabilities it lacks; a test of a capability switched off is
skipped, and so is every test of a backend this run does not select. Each
test gets an empty scratch ledger (`scratch.py`) and changes stored records
through `tampering.py`, so a backend supplies nothing else.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import nullcontext
from datetime import datetime
from multiprocessing import get_context

import pytest

from ..base import LedgerStore
from ..chain import ChainWriter
from ..errors import BackendUnavailableError, ChainIntegrityError, ReadConflictError
from ..hashing import block_hash, canonical_json, commitment, sha256_hex
from ..ledger import Ledger
from ..memory import MemoryStore
from ..merkle import CompactRange, NodeId, transaction_leaf
from ..records import Block, ForeignReads, Proposal, Tip, Validation
from ..registry import open_ledger, open_store
from ..verify import Verification, verify_channel_since
from .golden import (
    ALICE,
    DOCTOR,
    GOLDEN_BLOCK_HASHES,
    golden_clock,
    golden_proposals,
    proposal,
    submit_all,
)
from .scratch import scratch_url, unreachable_url
from .selection import SELECTION_VARIABLE, selected_backends
from .tampering import (
    BlockField,
    HistoryValue,
    StateValue,
    TransactionText,
    TreeNodeHash,
    WriteSetCommitment,
    commitment_changed,
    one_digit_changed,
    tamper,
)


def append_from_process(url: str, channel: str, writer: str, count: int) -> int:
    """Run in a separate OS process: submit `count` transactions, return how many committed."""
    ledger = open_ledger(url)
    proposals = [
        proposal(f"{writer}-{n}", channel=channel, writes={f"{writer}/{n}": {"n": n}})
        for n in range(count)
    ]

    async def run() -> int:
        target = ledger.channel(channel)
        committed = 0
        for start in range(0, count, 100):
            results = await asyncio.gather(
                *(target.submit(p) for p in proposals[start : start + 100])
            )
            committed += len(results)
        await target.close()
        return committed

    try:
        return asyncio.run(run())
    finally:
        ledger.close()


def recomputed_tree(blocks: Sequence[Block]) -> tuple[dict[NodeId, bytes], list[tuple[int, str]]]:
    """Every node of the tree over the blocks' transactions, computed in memory, and the
    tree's (size, root hex) after each block: what a store must hold and its headers say."""
    tree = CompactRange()
    nodes: dict[NodeId, bytes] = {}
    heads: list[tuple[int, str]] = []
    for block in blocks:
        for text in block.tx_texts:
            nodes.update((node.id, node.hash) for node in tree.append(transaction_leaf(text)))
        heads.append((tree.size, tree.root().hex()))
    return nodes, heads


def append_blocks_older_than_trees(
    store: LedgerStore, channel: str, batches: Sequence[Sequence[Proposal]]
) -> list[Block]:
    """Append one block per batch as a ledger did before the tree existed: headers without
    tree size and root, no tree node. Returns the blocks appended."""
    writer = ChainWriter(store, channel, clock=golden_clock())
    appended = []
    for batch in batches:
        tip = store.tip(channel)
        commit, _ = writer.build(tip, batch)
        block = Block.build(tip.height, tip.hash, commit.block.timestamp, commit.block.tx_texts)
        assert store.append_if_tip(
            channel, tip, dataclasses.replace(commit, block=block, tree_nodes=())
        )
        appended.append(block)
    return appended


class LedgerStoreConformance:
    """Behaviour every backend shares; subclass once per backend as `TestXxxStore`."""

    backend: str  # a name in BACKENDS
    persistent = True  # data survives closing and reopening the URL
    multiprocess = True  # several OS processes may append to one URL
    can_be_unreachable = True  # a URL can name a store that does not answer
    rolls_back = False  # a block the database refuses half-way is rolled back (SQL)

    url: str
    ledger: Ledger
    store: LedgerStore

    @pytest.fixture(autouse=True)
    def scratch_ledger(self) -> Iterator[None]:
        """An empty ledger on this backend for each test, removed afterwards."""
        if self.backend not in selected_backends():
            pytest.skip(f"{self.backend} is not in {SELECTION_VARIABLE}")
        with scratch_url(self.backend) as url:
            self.url = url
            self.ledger = open_ledger(url)
            self.store = self.ledger.store
            try:
                yield
            finally:
                self.ledger.close()

    def commit_golden(self, clock: Callable[[], datetime] | None = None) -> list[list[object]]:
        writer = ChainWriter(self.store, "medical", clock=clock or golden_clock())
        return [list(writer.commit(batch)) for batch in golden_proposals()]

    # -- the chain ---------------------------------------------------------------

    def test_empty_channel_has_no_blocks(self) -> None:
        assert self.store.tip("medical") == Tip.empty()
        assert self.store.read_blocks("medical", 0, 10) == []
        assert self.store.channels() == []
        verification = self.ledger.channel("medical").verify()
        assert verification.ok and verification.height == 0

    def test_same_inputs_give_golden_block_hashes(self) -> None:
        self.commit_golden()
        blocks = self.store.read_blocks("medical", 0, 10)
        assert [block.hash for block in blocks] == GOLDEN_BLOCK_HASHES
        assert blocks[1].previous_hash == blocks[0].hash
        assert self.store.tip("medical") == Tip(3, GOLDEN_BLOCK_HASHES[2])
        assert self.store.channels() == ["medical"]

    def test_stored_transactions_read_back_exactly(self) -> None:
        self.commit_golden()
        first = self.store.read_blocks("medical", 0, 1)[0].transactions()
        assert [tx.tx_id for tx in first] == ["tx-a", "tx-b", "tx-c"]
        assert first[0].write_set == {"child/1": {"fullName": "Émile Zola", "heightCm": 101.5}}
        assert first[0].events[0].name == "ChildRegistered"
        assert first[0].creator == ALICE
        assert [tx.validation for tx in first] == ["VALID", "VALID", "MVCC_READ_CONFLICT"]

    def test_read_blocks_pages_through_the_chain(self) -> None:
        self.commit_golden()
        assert [b.number for b in self.store.read_blocks("medical", 1, 1)] == [1]
        assert [b.number for b in self.store.read_blocks("medical", 1, 50)] == [1, 2]
        assert self.store.read_blocks("medical", 3, 5) == []

    def test_channels_are_independent(self) -> None:
        self.commit_golden()
        submit_all(self.ledger, "report", [proposal("r-1", channel="report", writes={"x": 1})])
        assert self.store.tip("report").height == 1
        assert self.store.tip("medical").height == 3
        assert self.store.read_state("report", "card/1") is None
        assert self.store.channels() == ["medical", "report"]

    # -- state, versions, MVCC ---------------------------------------------------

    def test_state_holds_last_valid_write_with_its_version(self) -> None:
        self.commit_golden()
        card = self.store.read_state("medical", "card/1")
        assert card is not None
        assert card.json() == {"allergies": ["pollen"], "version": 2}
        assert card.version == (1, 0)
        child = self.store.read_state("medical", "child/1")
        assert child is not None and child.json()["fullName"] == "Émile Zola"
        assert self.store.read_versions("medical", ["card/1", "child/1", "nope"]) == {
            "card/1": (1, 0),
            "child/1": (0, 0),
        }

    def test_conflicting_transaction_in_same_block_changes_nothing(self) -> None:
        results = self.commit_golden()
        assert results[0][2].validation == Validation.MVCC_READ_CONFLICT  # type: ignore[attr-defined]
        child = self.store.read_state("medical", "child/1")
        assert child is not None and child.json() != {"fullName": "x"}

    def test_stale_read_is_rejected_with_conflict_error(self) -> None:
        (first,) = submit_all(self.ledger, "medical", [proposal("t1", writes={"k": 1})])
        assert first.validation == Validation.VALID  # type: ignore[attr-defined]
        submit_all(self.ledger, "medical", [proposal("t2", reads={"k": (0, 0)}, writes={"k": 2})])
        (stale,) = submit_all(
            self.ledger, "medical", [proposal("t3", reads={"k": (0, 0)}, writes={"k": 3})]
        )
        assert isinstance(stale, ReadConflictError)
        record = self.store.read_state("medical", "k")
        assert record is not None and record.json() == 2
        last = self.store.read_blocks("medical", 2, 1)[0].transactions()[0]
        assert last.validation == "MVCC_READ_CONFLICT"

    def test_read_of_absent_key_conflicts_once_it_exists(self) -> None:
        submit_all(self.ledger, "medical", [proposal("t1", writes={"k": 1})])
        (late,) = submit_all(
            self.ledger, "medical", [proposal("t2", reads={"k": None}, writes={"k": 9})]
        )
        assert isinstance(late, ReadConflictError)

    def test_delete_removes_key_and_is_kept_in_history(self) -> None:
        self.commit_golden()
        assert self.store.read_state("medical", "tmp/ключ") is None
        history = self.store.read_history("medical", "tmp/ключ")
        assert [(e.block_number, e.tx_index, e.is_delete) for e in history] == [
            (1, 1, False),
            (2, 0, True),
        ]
        assert "tmp/ключ" not in [r.key for r in self.store.read_range("medical", "", "")]

    @pytest.mark.parametrize("pinned", [False, True], ids=["reads-alone", "reads-pinned"])
    def test_simulation_records_versions_and_commits(self, pinned: bool) -> None:
        self.commit_golden()
        channel = self.ledger.channel("medical")
        sim = channel.simulator()
        # As the gateway runs a contract: inside `reading()`, its reads on one connection.
        with sim.reading() if pinned else nullcontext():
            assert sim.get_state("card/1") == {"allergies": ["pollen"], "version": 2}
            assert sim.get_state("absent") is None
            sim.put_state("card/1", {"allergies": ["pollen", "nuts"], "version": 3})
            sim.set_event("CardUpdated", {"childId": "1"})
        prepared = sim.proposal(
            tx_id="sim-1",
            contract="medical",
            function="updateMedicalCard",
            args={"childId": "1"},
            creator=DOCTOR,
            timestamp="2026-01-02T00:00:00.000000Z",
        )
        assert prepared.read_set == {"card/1": (1, 0), "absent": None}
        (receipt,) = submit_all(self.ledger, "medical", [prepared])
        assert receipt.validation == Validation.VALID  # type: ignore[attr-defined]
        card = self.store.read_state("medical", "card/1")
        assert card is not None and card.version == (3, 0)

    def test_pinned_reads_read_what_reads_on_their_own_read(self) -> None:
        self.commit_golden()

        def everything() -> tuple[object, ...]:
            return (
                self.store.read_state("medical", "card/1"),
                self.store.read_state("medical", "absent"),
                self.store.read_versions("medical", ["card/1", "absent"]),
                self.store.read_range("medical", "", ""),
                self.store.read_history("medical", "card/1"),
                self.store.tip("medical"),
            )

        alone = everything()
        with self.store.pinned_reads():
            assert everything() == alone
            with self.store.pinned_reads():  # pinned further out: the same connection
                assert everything() == alone
            # The pin is this thread's: another thread reads on a connection of its own.
            with ThreadPoolExecutor(max_workers=1) as other:
                assert other.submit(everything).result() == alone
            assert everything() == alone
        with pytest.raises(RuntimeError), self.store.pinned_reads():
            self.store.read_state("medical", "card/1")
            raise RuntimeError("the simulation failed")
        assert everything() == alone  # the pinned connection went back whole

    # -- range reads and history ---------------------------------------------------

    def test_range_reads_are_in_code_point_order(self) -> None:
        keys = ["a/2", "a/10", "a/é", "a/Z", "a/ß", "b/1", "a/"]
        submit_all(self.ledger, "medical", [proposal(f"t{k}", writes={k: k}) for k in keys])
        found = [r.key for r in self.store.read_range("medical", "a/", "a0")]
        assert found == sorted(k for k in keys if k.startswith("a/"))
        assert [r.key for r in self.store.read_range("medical", "a/2", "a/é")] == [
            "a/2",
            "a/Z",
            "a/ß",
        ]
        everything = [r.key for r in self.store.read_range("medical", "", "")]
        assert everything == sorted(keys)
        prefix = self.ledger.channel("medical").simulator().get_prefix("a/")
        assert [key for key, _ in prefix] == sorted(k for k in keys if k.startswith("a/"))

    def test_range_reads_follow_later_writes_and_deletes(self) -> None:
        submit_all(self.ledger, "medical", [proposal("r1", writes={"k/b": 1, "k/d": 1})])
        assert [r.key for r in self.store.read_range("medical", "k/", "k0")] == ["k/b", "k/d"]
        submit_all(
            self.ledger, "medical", [proposal("r2", writes={"k/a": 1, "k/c": 1, "k/d": None})]
        )
        assert [r.key for r in self.store.read_range("medical", "k/", "k0")] == [
            "k/a",
            "k/b",
            "k/c",
        ]

    # -- paged prefix reads -----------------------------------------------------------

    PAGED_KEYS = (
        "p/a", "p/b", "p/Z", "p/10", "p/2", "p/é", "p/ß", "p/\ufffd", "p/\U0001f600",
        "p/\U0010ffff", "p/", "p", "p0", "o/9", "q/1",
    )  # fmt: skip

    def pages(self, prefix: str, *, limit: int, reverse: bool) -> list[list[str]]:
        """Every page of the prefix, each read after the last key of the one before."""
        pages: list[list[str]] = []
        after: str | None = None
        while True:
            found = self.store.read_prefix_page(
                "medical", prefix, after=after, limit=limit, reverse=reverse
            )
            assert len(found) <= limit
            if not found:
                return pages
            pages.append([record.key for record in found])
            after = found[-1].key

    def test_prefix_pages_are_in_code_point_order_both_ways(self) -> None:
        keys = self.PAGED_KEYS
        submit_all(self.ledger, "medical", [proposal(f"t{k}", writes={k: k}) for k in keys])
        expected = sorted(k for k in keys if k.startswith("p/"))
        # Code-point order: U+FFFD before U+1F600, which UTF-16 would put first.
        assert expected[-3:] == ["p/\ufffd", "p/\U0001f600", "p/\U0010ffff"]
        forward = self.pages("p/", limit=3, reverse=False)
        assert [key for page in forward for key in page] == expected
        assert [len(page) for page in forward] == [3, 3, 3, 2]
        backward = self.pages("p/", limit=4, reverse=True)
        assert [key for page in backward for key in page] == expected[::-1]
        (one,) = self.store.read_prefix_page("medical", "p/1", after=None, limit=5, reverse=True)
        assert (one.key, one.json()) == ("p/10", "p/10")
        assert self.ledger.channel("medical").simulator().get_prefix("p/") == [
            (k, k) for k in expected
        ]

    def test_prefix_pages_start_after_any_key_and_stop_at_the_limit(self) -> None:
        keys = ("k/a", "k/c", "k/e", "j/z", "l/a")
        submit_all(self.ledger, "medical", [proposal(f"t{k}", writes={k: k}) for k in keys])

        def page(after: str | None, limit: int, reverse: bool) -> list[str]:
            found = self.store.read_prefix_page(
                "medical", "k/", after=after, limit=limit, reverse=reverse
            )
            return [record.key for record in found]

        assert page("k/b", 10, True) == ["k/a"]
        assert page("k/b", 10, False) == ["k/c", "k/e"]
        assert page("k/c", 1, False) == ["k/e"]
        assert page("k/c", 1, True) == ["k/a"]
        assert page("k/", 10, False) == ["k/a", "k/c", "k/e"]
        assert page("a", 10, False) == page("z", 10, True)[::-1] == ["k/a", "k/c", "k/e"]
        assert page("z", 10, False) == page("a", 10, True) == []
        assert page(None, 2, True) == ["k/e", "k/c"]
        assert page(None, 0, True) == page(None, -1, False) == []
        assert self.store.read_prefix_page("report", "k/", after=None, limit=5, reverse=True) == []

    def test_prefix_pages_skip_deleted_keys_and_see_later_writes(self) -> None:
        submit_all(self.ledger, "medical", [proposal("w1", writes={"k/b": 1, "k/d": 1, "k/f": 1})])
        first = self.store.read_prefix_page("medical", "k/", after=None, limit=2, reverse=True)
        assert [record.key for record in first] == ["k/f", "k/d"]
        submit_all(
            self.ledger,
            "medical",
            [proposal("w2", writes={"k/a": 2, "k/b": None, "k/c": 2, "k/g": 2, "k/d": 2})],
        )
        rest = self.store.read_prefix_page("medical", "k/", after="k/d", limit=5, reverse=True)
        assert [(record.key, record.json()) for record in rest] == [("k/c", 2), ("k/a", 2)]
        again = self.store.read_prefix_page("medical", "k/", after=None, limit=2, reverse=True)
        assert [(record.key, record.json()) for record in again] == [("k/g", 2), ("k/f", 1)]
        assert again[0].version == self.store.read_versions("medical", ["k/g"])["k/g"]

    def test_history_lists_every_valid_write_oldest_first(self) -> None:
        self.commit_golden()
        history = self.ledger.channel("medical").history("card/1")
        assert [(e.block_number, e.tx_index, e.tx_id) for e in history] == [
            (0, 1, "tx-b"),
            (1, 0, "tx-d"),
        ]
        assert history[1].json() == {"allergies": ["pollen"], "version": 2}
        assert (history[1].creator_uid, history[1].creator_msp) == ("dr-house", "HospitalMSP")
        assert history[0].timestamp == "2026-01-01T00:00:00.000000Z"
        # The conflicting tx-c wrote child/1 too, but is not history.
        assert [e.tx_id for e in self.store.read_history("medical", "child/1")] == ["tx-a"]

    # -- group commit --------------------------------------------------------------

    def test_concurrent_submissions_share_blocks(self) -> None:
        proposals = [proposal(f"g{n}", writes={f"g/{n}": n}) for n in range(60)]
        receipts = submit_all(self.ledger, "medical", proposals)
        assert all(r.validation == Validation.VALID for r in receipts)  # type: ignore[attr-defined]
        positions = {(r.block_number, r.tx_index) for r in receipts}  # type: ignore[attr-defined]
        assert len(positions) == 60
        assert self.store.tip("medical").height < 60

    def test_max_batch_bounds_block_size(self) -> None:
        proposals = [proposal(f"m{n}", writes={f"m/{n}": n}) for n in range(30)]
        receipts = submit_all(self.ledger, "medical", proposals, max_batch=7)
        assert len(receipts) == 30
        sizes = [len(b.tx_texts) for b in self.store.read_blocks("medical", 0, 100)]
        assert max(sizes) <= 7 and sum(sizes) == 30

    # -- verify ----------------------------------------------------------------------

    def test_verify_accepts_an_intact_chain(self) -> None:
        self.commit_golden()
        verification = self.ledger.channel("medical").verify()
        assert (verification.ok, verification.height, verification.first_bad_block) == (
            True,
            3,
            None,
        )

    def test_verify_names_block_with_changed_hash(self) -> None:
        self.commit_golden()
        tamper(self.store, BlockField("medical", 1, "hash"), one_digit_changed)
        self.assert_damage_at(1)

    def test_verify_names_block_with_changed_transaction(self) -> None:
        self.commit_golden()
        tamper(
            self.store, TransactionText("medical", 1, 0), lambda t: t.replace("pollen", "pollen!")
        )
        self.assert_damage_at(1)

    def test_verify_names_block_that_wrote_changed_state(self) -> None:
        self.commit_golden()
        tamper(self.store, StateValue("medical", "card/1"), lambda t: t.replace("pollen", "pollan"))
        self.assert_damage_at(1)

    def test_verify_names_block_that_wrote_changed_history(self) -> None:
        self.commit_golden()
        # The first write of card/1: transaction 1 of block 0.
        tamper(
            self.store, HistoryValue("medical", "card/1", 0, 1), lambda t: t.replace("[]", "[1]")
        )
        self.assert_damage_at(0)

    def test_verify_stays_correct_while_another_writer_appends(self) -> None:
        self.commit_golden()
        stop = threading.Event()
        writer = ChainWriter(self.store, "medical")
        written = [0]

        def keep_writing() -> None:
            # Paced and bounded: an unpaced writer on a fast backend grows the chain faster
            # than a verification can read it, and each verification then takes longer.
            while not stop.is_set() and written[0] < 400:
                n = written[0] + 1
                writes: dict[str, object] = {f"hot/{k}": {"n": n} for k in range(20)}
                writes[f"hot/{n % 20}"] = None  # deletes race with the scan too
                writer.commit([proposal(f"w{n}", writes=writes)])
                written[0] = n
                time.sleep(0.002)

        def wait_for_blocks(count: int) -> None:
            deadline = time.monotonic() + 60
            while written[0] < count and thread.is_alive():
                assert time.monotonic() < deadline, "the writer made no progress"
                time.sleep(0.001)

        thread = threading.Thread(target=keep_writing)
        thread.start()
        results: list[Verification] = []
        try:
            wait_for_blocks(3)
            # Keep verifying until the writer has appended while verifications ran.
            first = written[0]
            while len(results) < 5 or written[0] < first + 10:
                results.append(self.ledger.channel("medical").verify())
                wait_for_blocks(written[0] + 1)
        finally:
            stop.set()
            thread.join()
        assert all(r.ok for r in results), [r.reason for r in results if not r.ok]
        assert results[-1].height > results[0].height > 3

    def test_verify_names_block_with_changed_commitment(self) -> None:
        self.commit_golden()
        tamper(self.store, WriteSetCommitment("medical", 1, 0), one_digit_changed)
        reason = self.assert_damage_at(1)
        assert reason.endswith(
            "The write-set commitment of transaction 0 does not match its write-set."
        )

    def test_verify_names_block_appended_with_a_false_commitment(self) -> None:
        # Hashes all consistent, commitment not: what a forger who re-hashed the chain leaves.
        self.commit_golden()
        tip = self.store.tip("medical")
        writer = ChainWriter(self.store, "medical", clock=golden_clock())
        commit, _ = writer.build(tip, [proposal("forged", writes={"card/1": {"version": 3}})])
        block = commit.block
        false_text = commitment_changed(block.tx_texts[0])
        forged = Block.build(block.number, block.previous_hash, block.timestamp, (false_text,))
        assert self.store.append_if_tip("medical", tip, dataclasses.replace(commit, block=forged))
        reason = self.assert_damage_at(3)
        assert reason == "the write-set commitment of transaction 0 does not match its write-set."

    # The golden chain's tree: block 0 holds leaves 0-2, block 1 leaves 3-4 (leaf 3 completes
    # node (2, 0), over leaves 0-3), block 2 leaf 5 (completing node (1, 2)).

    def test_verify_names_block_whose_stored_tree_node_was_changed(self) -> None:
        self.commit_golden()
        tamper(self.store, TreeNodeHash("medical", 2, 0), one_digit_changed)
        reason = self.assert_damage_at(1)
        assert reason == "its stored tree node (level 2, index 0) is changed."

    def test_verify_names_block_whose_tree_root_was_changed_and_rehashed(self) -> None:
        # A forger who rehashes the header after changing its root breaks only the next link.
        self.commit_golden()
        tamper(self.store, BlockField("medical", 1, "tree_root"), one_digit_changed)
        (block,) = self.store.read_blocks("medical", 1, 1)
        header = (block.previous_hash, block.data_hash, block.timestamp)
        rehashed = block_hash(1, *header, block.tree_size, block.tree_root)
        tamper(self.store, BlockField("medical", 1, "hash"), lambda _: rehashed)
        reason = self.assert_damage_at(1)
        assert reason == "its tree root does not match its transactions."

    def test_verify_since_names_a_later_block_whose_tree_node_was_changed(self) -> None:
        self.commit_golden()
        (first,) = self.store.read_blocks("medical", 0, 1)
        tamper(self.store, TreeNodeHash("medical", 1, 2), one_digit_changed)
        found = verify_channel_since(self.store, "medical", Tip(1, first.hash))
        assert (found.ok, found.first_bad_block, found.reason) == (
            False,
            2,
            "its stored tree node (level 1, index 2) is changed.",
        )

    def test_verify_since_names_the_anchor_whose_stored_tree_lost_its_root(self) -> None:
        # Block 1's tree of 5 leaves is extended from nodes (2, 0) and (0, 4).
        self.commit_golden()
        (anchor,) = self.store.read_blocks("medical", 1, 1)
        tamper(self.store, TreeNodeHash("medical", 0, 4), one_digit_changed)
        found = verify_channel_since(self.store, "medical", Tip(2, anchor.hash))
        assert (found.ok, found.first_bad_block, found.reason) == (
            False,
            1,
            "its tree root is not the root of the stored tree nodes.",
        )

    def assert_damage_at(self, number: int) -> str:
        verification = self.ledger.channel("medical").verify()
        assert not verification.ok
        assert verification.first_bad_block == number, verification.reason
        assert verification.reason
        return verification.reason

    # -- salted commitments ----------------------------------------------------------

    def test_transactions_keep_their_salt_and_commit_to_their_write_set(self) -> None:
        self.commit_golden()
        tx = self.store.read_blocks("medical", 1, 1)[0].transactions()[0]
        assert tx.salt == sha256_hex("salt:tx-d")
        assert tx.write_set_hash == commitment(tx.salt, canonical_json(tx.write_set))
        assert tx.write_set_hash != sha256_hex(canonical_json(tx.write_set))
        assert tx.commitment_holds

    # -- foreign reads ---------------------------------------------------------------

    def test_stale_foreign_read_is_a_conflict_and_changes_nothing(self) -> None:
        submit_all(self.ledger, "medical", [proposal("accept", writes={"active/1": "a-1"})])
        submit_all(self.ledger, "medical", [proposal("revoke", writes={"active/1": None})])
        late = proposal(
            "late-report",
            channel="report",
            writes={"report/1": {"status": "READY"}},
            foreign_reads={"medical": {"active/1": (0, 0)}},
        )
        (refused,) = submit_all(self.ledger, "report", [late])
        assert isinstance(refused, ReadConflictError)
        assert self.store.read_state("report", "report/1") is None
        (tx,) = self.store.read_blocks("report", 0, 1)[0].transactions()
        assert (tx.validation, tx.foreign_reads) == (
            "MVCC_READ_CONFLICT",
            {"medical": {"active/1": (0, 0)}},
        )
        current = dataclasses.replace(
            late, tx_id="report", foreign_reads={"medical": {"active/1": None}}
        )
        (receipt,) = submit_all(self.ledger, "report", [current])
        assert receipt.validation == Validation.VALID  # type: ignore[attr-defined]
        assert self.ledger.channel("report").verify().ok

    def test_append_checks_foreign_reads_in_the_same_store_atomically(self) -> None:
        submit_all(self.ledger, "medical", [proposal("accept", writes={"active/1": "a-1"})])
        report = proposal(
            "report",
            channel="report",
            writes={"report/1": {"status": "READY"}},
            foreign_reads={"medical": {"active/1": (0, 0)}},
        )
        writer = ChainWriter(self.store, "report")
        tip = self.store.tip("report")
        commit, receipts = writer.build(tip, [report])
        assert receipts[0].validation == Validation.VALID
        assert commit.foreign_reads == {"medical": {"active/1": (0, 0)}}
        # The revocation commits after the report was validated, before it is appended.
        submit_all(self.ledger, "medical", [proposal("revoke", writes={"active/1": None})])
        assert self.store.append_if_tip("report", tip, commit) is False
        assert self.store.tip("report") == tip
        assert self.store.read_state("report", "report/1") is None
        (receipt,) = writer.commit([report])
        assert receipt.validation == Validation.MVCC_READ_CONFLICT
        assert self.ledger.channel("report").verify().ok

    def test_foreign_reads_of_another_store_are_checked_before_the_append(self) -> None:
        elsewhere = MemoryStore()
        medical = ChainWriter(elsewhere, "medical")
        medical.commit([proposal("accept", writes={"active/1": "a-1"})])
        writer = ChainWriter(
            self.store,
            "report",
            store_of=lambda name: elsewhere if name == "medical" else self.store,
        )
        reads: ForeignReads = {"medical": {"active/1": (0, 0)}}
        first = proposal("r-1", channel="report", writes={"report/1": 1}, foreign_reads=reads)
        started = time.monotonic()
        commit, _ = writer.build(self.store.tip("report"), [first])
        assert commit.foreign_reads == {}  # nothing the report's store could check itself
        assert commit.not_after is not None
        assert started < commit.not_after <= time.monotonic() + writer.foreign_read_window_s
        assert writer.commit([first])[0].validation == Validation.VALID
        medical.commit([proposal("revoke", writes={"active/1": None})])
        second = proposal("r-2", channel="report", writes={"report/2": 1}, foreign_reads=reads)
        assert writer.commit([second])[0].validation == Validation.MVCC_READ_CONFLICT
        assert self.store.read_state("report", "report/2") is None

    def test_reads_of_another_store_too_old_at_the_append_append_nothing(self) -> None:
        elsewhere = MemoryStore()
        ChainWriter(elsewhere, "medical").commit([proposal("accept", writes={"active/1": 1})])
        writer = ChainWriter(
            self.store,
            "report",
            store_of=lambda name: elsewhere if name == "medical" else self.store,
            foreign_read_window_s=0,
            max_attempts=3,
        )
        report = proposal(
            "r", channel="report", writes={"r": 1}, foreign_reads={"medical": {"active/1": (0, 0)}}
        )
        with pytest.raises(ReadConflictError):
            writer.commit([report])
        assert self.store.tip("report") == Tip.empty()

    def test_nothing_is_appended_after_not_after(self) -> None:
        writer = ChainWriter(self.store, "medical", clock=golden_clock())
        commit, _ = writer.build(Tip.empty(), [proposal("late", writes={"q": 1})])
        expired = dataclasses.replace(commit, not_after=time.monotonic() - 0.001)
        assert self.store.append_if_tip("medical", Tip.empty(), expired) is False
        assert self.store.tip("medical") == Tip.empty()
        assert self.store.read_state("medical", "q") is None
        in_time = dataclasses.replace(commit, not_after=time.monotonic() + 10)
        assert self.store.append_if_tip("medical", Tip.empty(), in_time) is True

    # -- the Merkle tree --------------------------------------------------------------

    def commit_tree_chain(self) -> list[Block]:
        """The golden blocks, then blocks of 1 to 7 transactions: 34 leaves, so complete
        subtrees up to level 5 and a ragged right edge. Returns every block."""
        self.commit_golden()
        writer = ChainWriter(self.store, "medical", clock=golden_clock())
        for size in range(1, 8):
            writer.commit(
                [proposal(f"t{size}-{n}", writes={f"t/{size}/{n}": n}) for n in range(size)]
            )
        return self.store.read_blocks("medical", 0, 100)

    def assert_tree_matches(self, channel: str = "medical") -> list[Block]:
        """The stored nodes and every header's tree equal a recomputation from the texts."""
        blocks = self.store.read_blocks(channel, 0, 10_000)
        nodes, heads = recomputed_tree(blocks)
        assert [(block.tree_size, block.tree_root) for block in blocks] == heads
        assert self.store.read_tree_nodes(channel, nodes) == nodes
        return blocks

    def test_tree_holds_every_complete_subtree_and_headers_carry_its_head(self) -> None:
        blocks = self.commit_tree_chain()
        nodes, heads = recomputed_tree(blocks)
        assert heads[-1][0] == 34 and len(nodes) == 2 * 34 - (34).bit_count()
        assert [(b.tree_size, b.tree_root) for b in blocks] == heads
        assert [b.first_leaf for b in blocks[:4]] == [0, 3, 5, 6]
        assert self.store.read_tree_nodes("medical", nodes) == nodes
        # Nodes not stored are left out: beyond the tree, incomplete subtrees, other channels.
        absent = [(0, 34), (1, 17), (2, 8), (6, 0), (40, 0)]
        assert self.store.read_tree_nodes("medical", [*absent, *nodes, *absent]) == nodes
        assert self.store.read_tree_nodes("medical", absent) == {}
        assert self.store.read_tree_nodes("medical", []) == {}
        assert self.store.read_tree_nodes("report", nodes) == {}
        # More ids than one statement takes on SQL: the leaves among 600 candidates.
        leaves = {node: value for node, value in nodes.items() if node[0] == 0}
        assert self.store.read_tree_nodes("medical", [(0, n) for n in range(600)]) == leaves

    def test_transactions_are_located_by_id_first_one_if_repeated(self) -> None:
        blocks = self.commit_tree_chain()
        for block in blocks:
            assert self.store.read_first_leaf("medical", block.number) == block.first_leaf
            for index, tx in enumerate(block.transactions()):
                assert self.store.locate_transaction("medical", tx.tx_id) == (block.number, index)
        assert self.store.read_first_leaf("medical", len(blocks)) is None
        assert self.store.read_first_leaf("report", 0) is None
        ChainWriter(self.store, "medical").commit([proposal("tx-e", writes={"again": 1})])
        assert self.store.locate_transaction("medical", "tx-e") == (1, 1)
        assert self.store.locate_transaction("medical", "no-such-tx") is None
        assert self.store.locate_transaction("report", "tx-a") is None
        self.assert_tree_matches()

    def test_a_new_writer_extends_the_stored_tree(self) -> None:
        self.commit_tree_chain()
        for n in range(3):  # each writer reads the tree's right edge from the store
            writer = ChainWriter(self.store, "medical")
            writer.commit([proposal(f"next-{n}-{k}", writes={f"n/{k}": n}) for k in range(n + 2)])
        blocks = self.assert_tree_matches()
        assert blocks[-1].tree_size == 34 + 2 + 3 + 4

    def test_reopened_store_keeps_the_tree_and_extends_it(self) -> None:
        if not self.persistent:
            pytest.skip("this backend keeps nothing after close")
        blocks = self.commit_tree_chain()
        nodes, _ = recomputed_tree(blocks)
        self.ledger.close()
        self.ledger = open_ledger(self.url)
        self.store = self.ledger.store
        assert self.store.read_blocks("medical", 0, 100) == blocks
        assert self.store.read_tree_nodes("medical", nodes) == nodes
        assert self.store.locate_transaction("medical", "t7-6") == (9, 6)
        submit_all(self.ledger, "medical", [proposal("after", writes={"z": 1})])
        assert self.assert_tree_matches()[-1].tree_size == 35

    def test_a_refused_append_stores_no_tree_node(self) -> None:
        self.commit_golden()
        tip = self.store.tip("medical")
        late = ChainWriter(self.store, "medical", clock=golden_clock())
        stale, _ = late.build(tip, [proposal("late", writes={"q": 1})])
        expired, _ = late.build(tip, [proposal("expired", writes={"q": 2})])
        expired = dataclasses.replace(expired, not_after=time.monotonic() - 0.001)
        assert self.store.append_if_tip("medical", tip, expired) is False
        assert self.store.read_tree_nodes("medical", [n.id for n in expired.tree_nodes]) == {}
        ChainWriter(self.store, "medical").commit(
            [proposal("won", writes={"q": 3}), proposal("won-2", writes={"r": 3})]
        )
        assert self.store.append_if_tip("medical", tip, stale) is False
        # The winner's nodes sit where the stale block's would have: they must be the winner's.
        blocks = self.assert_tree_matches()
        assert blocks[-1].tree_size == 8
        assert self.store.locate_transaction("medical", "late") is None

    def test_a_chain_older_than_trees_gets_its_tree_with_the_next_block(self) -> None:
        legacy = append_blocks_older_than_trees(self.store, "medical", golden_proposals())
        assert self.store.read_blocks("medical", 0, 10) == legacy
        assert [(b.tree_size, b.tree_root) for b in legacy] == [(None, None)] * 3
        nodes, _ = recomputed_tree(legacy)
        assert self.store.read_tree_nodes("medical", nodes) == {}
        assert self.store.locate_transaction("medical", "tx-f") == (2, 0)
        writer = ChainWriter(self.store, "medical")
        writer.commit([proposal("first-with-tree", writes={"z": 1})])
        writer.commit([proposal("second-with-tree", writes={"z": 2})])
        ChainWriter(self.store, "medical").commit([proposal("third", writes={"z": 3})])
        blocks = self.store.read_blocks("medical", 0, 10)
        assert blocks[:3] == legacy
        nodes, heads = recomputed_tree(blocks)
        assert [(b.tree_size, b.tree_root) for b in blocks[3:]] == heads[3:]
        assert [b.tree_size for b in blocks[3:]] == [7, 8, 9]
        assert self.store.read_tree_nodes("medical", nodes) == nodes
        for tx_id, location in (("tx-a", (0, 0)), ("tx-e", (1, 1)), ("third", (5, 0))):
            assert self.store.locate_transaction("medical", tx_id) == location

    # -- durability and sharing ------------------------------------------------------

    def test_reopen_after_close_keeps_everything(self) -> None:
        if not self.persistent:
            pytest.skip("this backend keeps nothing after close")
        self.commit_golden()
        before = self.store.read_blocks("medical", 0, 10)
        self.ledger.close()
        self.ledger = open_ledger(self.url)
        self.store = self.ledger.store
        assert self.store.read_blocks("medical", 0, 10) == before
        assert self.store.read_history("medical", "card/1")[-1].tx_id == "tx-d"
        assert self.ledger.channel("medical").verify().ok
        receipts = submit_all(self.ledger, "medical", [proposal("after", writes={"z": 1})])
        assert receipts[0].block_number == 3  # type: ignore[attr-defined]

    def test_two_processes_append_to_one_chain_without_loss(self) -> None:
        if not self.multiprocess:
            pytest.skip("this backend lives inside one process")
        with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
            futures = [
                pool.submit(append_from_process, self.url, "medical", writer, 1000)
                for writer in ("p1", "p2")
            ]
            assert [f.result(timeout=240) for f in futures] == [1000, 1000]
        blocks = self.store.read_blocks("medical", 0, 10_000)
        tx_ids = [tx.tx_id for block in blocks for tx in block.transactions()]
        assert len(tx_ids) == 2000 and len(set(tx_ids)) == 2000
        assert [b.number for b in blocks] == list(range(len(blocks)))
        verification = self.ledger.channel("medical").verify()
        assert verification.ok, verification.reason
        assert len(self.store.read_range("medical", "p", "q")) == 2000
        assert self.assert_tree_matches()[-1].tree_size == 2000

    def test_unreachable_store_fails_fast_and_clearly(self) -> None:
        if not self.can_be_unreachable:
            pytest.skip("this backend is always reachable")
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError, match="cannot be"):
            store = open_store(unreachable_url(self.backend))
            store.tip("medical")
        assert time.monotonic() - started < 5

    def test_stale_tip_append_changes_nothing(self) -> None:
        self.commit_golden()
        writer = ChainWriter(self.store, "medical", clock=golden_clock())
        stale, _ = writer.build(Tip(1, GOLDEN_BLOCK_HASHES[0]), [proposal("late", writes={"q": 1})])
        assert self.store.append_if_tip("medical", Tip(1, GOLDEN_BLOCK_HASHES[0]), stale) is False
        assert self.store.tip("medical") == Tip(3, GOLDEN_BLOCK_HASHES[2])
        assert self.store.read_state("medical", "q") is None
        assert self.ledger.channel("medical").verify().ok

    def test_append_failing_halfway_rolls_back_everything(self) -> None:
        if not self.rolls_back:
            pytest.skip("this backend checks everything before its first write")
        writer = ChainWriter(self.store, "medical", clock=golden_clock())
        writer.commit([proposal("first", writes={"a": 1})])
        tip = self.store.tip("medical")
        commit, _ = writer.build(tip, [proposal("second", writes={"b": 2, "c": 3})])
        # The history rows go in last; a duplicate row makes the database refuse the block
        # after the block, transaction and state rows were already inserted.
        broken = dataclasses.replace(commit, history=commit.history + commit.history[:1])
        with pytest.raises(ChainIntegrityError, match="could not be stored"):
            self.store.append_if_tip("medical", tip, broken)
        assert self.store.tip("medical") == tip
        assert self.store.read_state("medical", "b") is None
        assert self.store.read_blocks("medical", 1, 5) == []
        assert self.store.read_history("medical", "b") == []
        assert self.store.read_tree_nodes("medical", [n.id for n in commit.tree_nodes]) == {}
        assert self.store.append_if_tip("medical", tip, commit)
