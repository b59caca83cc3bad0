"""Cutting blocks: MVCC validation, hashing and the compare-and-append commit protocol."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from .base import LedgerStore
from .errors import BackendUnavailableError, LedgerDamagedError, ReadConflictError
from .hashing import transaction_digests
from .merkle import CompactRange, TreeDamagedError, TreeNode, leaf_hash, transaction_leaf
from .records import (
    Block,
    BlockCommit,
    HistoryEntry,
    Proposal,
    Receipt,
    StateWrite,
    Tip,
    Validation,
    Version,
    format_timestamp,
    utc_now,
)
from .verify import block_damage

MAX_APPEND_ATTEMPTS = 100
LEGACY_TREE_CHUNK = 500  # blocks read at a time when a chain older than trees gets its tree
# How old reads of a channel in another store may be when the block holding them is appended.
FOREIGN_READ_WINDOW_S = 0.05


class ChainWriter:
    """Appends blocks to one channel; safe when other processes append to the same store.

    Each attempt reads the tip, validates every proposal's read-set against the
    current versions (and the writes of earlier transactions in the same
    block), hashes the block and calls `append_if_tip`. If another process
    moved the tip meanwhile, it validates again on the new state and retries.

    Before its first append, and whenever the stored tip is no longer ahead of
    the block it appended last (its hash changed, or the chain got shorter),
    it reads the tip block back and re-hashes its header and transactions; it
    refuses to build on a block that does not match them. Otherwise the tip
    read every attempt makes anyway is compared with memory, so the usual
    commit costs no extra read; tips other writers appended are trusted like
    its own. Damage elsewhere in the chain, or to the world state and
    history, is found by verification (`verify.py`).

    Foreign reads (a proposal's reads of other channels) are validated like
    the read-set: a stale one makes the transaction MVCC_READ_CONFLICT. Which
    store holds another channel is asked of `store_of` (by default, this
    writer's store). When it is this writer's store, the backend checks the
    reads again atomically with the append (`LedgerStore.append_if_tip`), so
    a write to a key read is committed either before the block (and the
    transaction is a conflict) or after it: never in between. When it is
    another store, no transaction spans both: the reads are checked right
    before the append, and the block is appended only within
    `foreign_read_window_s` of that check. A write to a key read that commits
    in that window, or while the append commits, goes unnoticed: the window
    is that bound plus the append's own commit.

    Each block also extends the channel's Merkle tree (`merkle.py`) by its
    transactions, in order: the header gets the tree's size and root after
    them, and the nodes they complete go into the same `append_if_tip`. The
    writer keeps the tree's right edge for the tip it appended last and reads
    it from the store (O(log n) nodes) when another writer moved the tip. A
    chain whose blocks are older than trees gets a tree over all their
    transactions, stored with its first new block.
    """

    def __init__(
        self,
        store: LedgerStore,
        channel: str,
        *,
        clock: Callable[[], datetime] = utc_now,
        max_attempts: int = MAX_APPEND_ATTEMPTS,
        store_of: Callable[[str], LedgerStore] | None = None,
        foreign_read_window_s: float = FOREIGN_READ_WINDOW_S,
    ) -> None:
        self.store = store
        self.channel = channel
        self.clock = clock
        self.max_attempts = max_attempts
        self.store_of: Callable[[str], LedgerStore] = store_of or (lambda _: store)
        self.foreign_read_window_s = foreign_read_window_s
        self._trusted_tip: Tip | None = None  # appended or re-hashed by this writer
        self._tree: tuple[Tip, CompactRange] | None = None  # the tree after this writer's tip
        # Only bench/ turns this off, to measure what the tree costs: blocks then have none.
        self.keep_tree = True
        self._built_tree: CompactRange | None = None  # the tree after the block last built
        self._tip_block: Block | None = None  # the tip block _check_tip last re-hashed

    def commit(self, proposals: Sequence[Proposal]) -> list[Receipt]:
        """Put the proposals into one durable block, in order; one receipt per proposal.

        Raises ReadConflictError if the tip kept moving for `max_attempts` attempts,
        BackendUnavailableError if the store cannot be reached, and
        LedgerDamagedError if the tip block does not match its own hashes; in
        every case nothing was appended.
        """
        for proposal in proposals:
            if proposal.channel != self.channel:
                raise ValueError(
                    f"A proposal for channel {proposal.channel!r} cannot be committed "
                    f"on channel {self.channel!r}."
                )
            if self.channel in proposal.foreign_reads:
                raise ValueError(
                    f"A proposal's reads of channel {self.channel!r} belong in its read-set, "
                    "not among its foreign reads."
                )
        for attempt in range(self.max_attempts):
            tip = self.store.tip(self.channel)
            self._check_tip(tip)
            commit, receipts = self.build(tip, proposals)
            try:
                appended = self.store.append_if_tip(self.channel, tip, commit)
            except BackendUnavailableError:
                # The connection may have died after the store committed: look before failing.
                if not self._landed(commit):
                    raise
                appended = True
            # A transparent client retry can report a moved tip that is our own block.
            if appended or self._landed(commit):
                self._trusted_tip = Tip(commit.block.number + 1, commit.block.hash)
                if self._built_tree is not None:
                    self._tree = (self._trusted_tip, self._built_tree)
                return receipts
            # Another process extended the chain, or a foreign read went stale: build again,
            # after a short back-off so both writers make progress.
            time.sleep(random.uniform(0, 0.001 * min(attempt + 1, 20)))
        raise ReadConflictError(
            f"Channel {self.channel!r} kept changing under {self.max_attempts} attempts "
            "to append a block; nothing was committed."
        )

    def _check_tip(self, tip: Tip) -> None:
        """Raise LedgerDamagedError if the tip needs re-hashing and its block does not match."""
        trusted = self._trusted_tip
        if tip.height == 0 or (
            trusted is not None and (tip == trusted or tip.height > trusted.height)
        ):
            return
        number = tip.height - 1
        found = self.store.read_blocks(self.channel, number, 1)
        if not found:
            reason: str | None = "the recorded chain tip names a block that is not stored."
        else:
            reason = block_damage(self.store, self.channel, found[0], number, None)
            if reason is None and found[0].hash != tip.hash:
                reason = "the recorded chain tip does not match the last block."
        if reason is not None:
            raise LedgerDamagedError(self.channel, number, reason)
        self._trusted_tip = tip
        self._tip_block = found[0]

    def _landed(self, commit: BlockCommit) -> bool:
        try:
            return self.store.tip(self.channel).hash == commit.block.hash
        except BackendUnavailableError as exc:
            raise BackendUnavailableError(
                f"The ledger of channel {self.channel!r} went away while block "
                f"{commit.block.number} was being stored; whether it was stored is known "
                "once the store is back (run verify).",
                outcome_known=False,
            ) from exc

    def build(self, tip: Tip, proposals: Sequence[Proposal]) -> tuple[BlockCommit, list[Receipt]]:
        """Validate and hash the next block on top of `tip` without storing anything."""
        number = tip.height
        read_keys = {key for proposal in proposals for key in proposal.read_set}
        committed = self.store.read_versions(self.channel, read_keys) if read_keys else {}
        foreign, read_elsewhere_at = self._foreign_versions(proposals)
        same_store_reads: dict[str, dict[str, Version | None]] = {}
        reads_elsewhere = False
        written_in_block: dict[str, Version | None] = {}
        texts: list[str] = []
        writes: dict[str, StateWrite] = {}
        history: list[HistoryEntry] = []
        receipts: list[Receipt] = []
        for index, proposal in enumerate(proposals):
            valid = all(
                (written_in_block[key] if key in written_in_block else committed.get(key))
                == version
                for key, version in proposal.read_set.items()
            ) and all(
                foreign[channel].get(key) == version
                for channel, reads in proposal.foreign_reads.items()
                for key, version in reads.items()
            )
            validation = Validation.VALID if valid else Validation.MVCC_READ_CONFLICT
            text, value_texts = proposal.canonical_parts(validation)
            texts.append(text)
            receipts.append(Receipt(proposal.tx_id, number, index, validation))
            if not valid:
                continue
            for channel, reads in proposal.foreign_reads.items():
                if self.store_of(channel) is self.store:
                    same_store_reads.setdefault(channel, {}).update(reads)
                else:
                    reads_elsewhere = True
            version = (number, index)
            for key, value_text in value_texts.items():
                written_in_block[key] = None if value_text is None else version
                writes[key] = StateWrite(key, value_text, version)
                history.append(
                    HistoryEntry(
                        key=key,
                        block_number=number,
                        tx_index=index,
                        tx_id=proposal.tx_id,
                        value=value_text,
                        creator_uid=proposal.creator.uid,
                        creator_msp=proposal.creator.msp,
                        timestamp=proposal.timestamp,
                    )
                )
        tree_nodes: list[TreeNode] = []
        tree_head = None
        self._built_tree = None
        digests = transaction_digests(texts)
        if self.keep_tree:
            tree, tree_nodes = self._tree_at(tip)
            for digest in digests:
                tree_nodes.extend(tree.append(leaf_hash(digest)))
            self._built_tree = tree
            tree_head = (tree.size, tree.root().hex())
        timestamp = format_timestamp(self.clock())
        block = Block.build(number, tip.hash, timestamp, tuple(texts), tree_head, digests)
        tx_ids = tuple(proposal.tx_id for proposal in proposals)
        not_after = None
        if reads_elsewhere and read_elsewhere_at is not None:
            not_after = read_elsewhere_at + self.foreign_read_window_s
        commit = BlockCommit(
            block,
            tx_ids,
            tuple(writes.values()),
            tuple(history),
            foreign_reads=same_store_reads,
            not_after=not_after,
            tree_nodes=tuple(tree_nodes),
        )
        return commit, receipts

    def _tree_at(self, tip: Tip) -> tuple[CompactRange, list[TreeNode]]:
        """The tree after the tip's block, to extend, and nodes of it not stored yet.

        Raises LedgerDamagedError when the tree's stored nodes or headers do not fit.
        """
        if self._tree is not None and self._tree[0] == tip:
            return self._tree[1].copy(), []
        if tip.height == 0:
            return CompactRange(), []
        last = tip.height - 1
        checked = self._tip_block
        if checked is not None and checked.number == last and checked.hash == tip.hash:
            found = [checked]  # just read and re-hashed by _check_tip
        else:
            found = self.store.read_blocks(self.channel, last, 1)
        if not found:
            raise LedgerDamagedError(
                self.channel, last, "the recorded chain tip names a block that is not stored."
            )
        if found[0].tree_size is not None:
            try:
                tree = CompactRange.load(
                    found[0].tree_size, lambda ids: self.store.read_tree_nodes(self.channel, ids)
                )
            except TreeDamagedError as exc:
                raise LedgerDamagedError(self.channel, last, str(exc)) from exc
            if tree.root().hex() != found[0].tree_root:
                raise LedgerDamagedError(
                    self.channel, last, "the stored tree's root is not the one in its header."
                )
            self._tree = (tip, tree)
            return tree.copy(), []
        return self._legacy_tree(tip)

    def _legacy_tree(self, tip: Tip) -> tuple[CompactRange, list[TreeNode]]:
        """A tree over the transactions of a chain stored before trees, with all its nodes."""
        tree = CompactRange()
        nodes: list[TreeNode] = []
        for start in range(0, tip.height, LEGACY_TREE_CHUNK):
            # Up to the tip only: blocks another writer appended since are not in this tree.
            chunk = min(LEGACY_TREE_CHUNK, tip.height - start)
            for block in self.store.read_blocks(self.channel, start, chunk):
                if block.tree_size is not None:
                    raise LedgerDamagedError(
                        self.channel,
                        block.number,
                        "a block with a tree comes before the chain's last block, which has none.",
                    )
                for text in block.tx_texts:
                    nodes.extend(tree.append(transaction_leaf(text)))
        return tree, nodes

    def _foreign_versions(
        self, proposals: Sequence[Proposal]
    ) -> tuple[dict[str, dict[str, Version]], float | None]:
        """Current versions of the keys the proposals read on other channels, per channel.

        Also when the first read of another store began (None if there was none):
        the reads are vouched for from that instant.
        """
        wanted: dict[str, set[str]] = {}
        for proposal in proposals:
            for channel, reads in proposal.foreign_reads.items():
                wanted.setdefault(channel, set()).update(reads)
        versions: dict[str, dict[str, Version]] = {}
        read_elsewhere_at: float | None = None
        for channel, keys in wanted.items():
            store = self.store_of(channel)
            if store is not self.store and read_elsewhere_at is None:
                read_elsewhere_at = time.monotonic()
            versions[channel] = store.read_versions(channel, keys)
        return versions, read_elsewhere_at
