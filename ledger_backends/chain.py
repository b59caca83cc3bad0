"""Cutting blocks: MVCC validation, hashing and the compare-and-append commit protocol."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from .base import LedgerStore
from .errors import BackendUnavailableError, ConflictError
from .hashing import canonical_json
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

MAX_APPEND_ATTEMPTS = 100


class ChainWriter:
    """Appends blocks to one channel; safe when other processes append to the same store.

    Each attempt reads the tip, validates every proposal's read-set against the
    current versions (and the writes of earlier transactions in the same
    block), hashes the block and calls `append_if_tip`. If another process
    moved the tip meanwhile, it validates again on the new state and retries.
    """

    def __init__(
        self,
        store: LedgerStore,
        channel: str,
        *,
        clock: Callable[[], datetime] = utc_now,
        max_attempts: int = MAX_APPEND_ATTEMPTS,
    ) -> None:
        self.store = store
        self.channel = channel
        self.clock = clock
        self.max_attempts = max_attempts

    def commit(self, proposals: Sequence[Proposal]) -> list[Receipt]:
        """Put the proposals into one durable block, in order; one receipt per proposal.

        Raises ConflictError if the tip kept moving for `max_attempts` attempts,
        and BackendUnavailableError if the store cannot be reached; in both
        cases nothing was appended.
        """
        for proposal in proposals:
            if proposal.channel != self.channel:
                raise ValueError(
                    f"A proposal for channel {proposal.channel!r} cannot be committed "
                    f"on channel {self.channel!r}."
                )
        for attempt in range(self.max_attempts):
            tip = self.store.tip(self.channel)
            commit, receipts = self.build(tip, proposals)
            try:
                appended = self.store.append_if_tip(self.channel, tip, commit)
            except BackendUnavailableError:
                # The connection may have died after the store committed: look before failing.
                if self._landed(commit):
                    return receipts
                raise
            # A transparent client retry can report a moved tip that is our own block.
            if appended or self._landed(commit):
                return receipts
            # Another process extended the chain; back off a little so both make progress.
            time.sleep(random.uniform(0, 0.001 * min(attempt + 1, 20)))
        raise ConflictError(
            f"Channel {self.channel!r} kept changing under {self.max_attempts} attempts "
            "to append a block; nothing was committed."
        )

    def _landed(self, commit: BlockCommit) -> bool:
        try:
            return self.store.tip(self.channel).hash == commit.block.hash
        except BackendUnavailableError as exc:
            raise BackendUnavailableError(
                f"The ledger of channel {self.channel!r} went away while block "
                f"{commit.block.number} was being stored; whether it was stored is known "
                "once the store is back (run verify)."
            ) from exc

    def build(self, tip: Tip, proposals: Sequence[Proposal]) -> tuple[BlockCommit, list[Receipt]]:
        """Validate and hash the next block on top of `tip` without storing anything."""
        number = tip.height
        read_keys = {key for proposal in proposals for key in proposal.read_set}
        committed = self.store.read_versions(self.channel, read_keys) if read_keys else {}
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
            )
            validation = Validation.VALID if valid else Validation.MVCC_READ_CONFLICT
            texts.append(proposal.canonical_text(validation))
            receipts.append(Receipt(proposal.tx_id, number, index, validation))
            if not valid:
                continue
            for key, value in proposal.write_set.items():
                value_text = None if value is None else canonical_json(value)
                version = (number, index)
                written_in_block[key] = None if value is None else version
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
        block = Block.build(number, tip.hash, format_timestamp(self.clock()), tuple(texts))
        tx_ids = tuple(proposal.tx_id for proposal in proposals)
        return BlockCommit(block, tx_ids, tuple(writes.values()), tuple(history)), receipts
