"""The ledger's small tree of errors; every message is a sentence for people."""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every failure the ledger reports."""


class ReadConflictError(LedgerError):
    """A transaction read a key that another transaction changed first (MVCC_READ_CONFLICT).

    Nothing of the transaction changed the world state. Simulating it again on
    fresh state and resubmitting is the usual answer.
    """

    def __init__(self, message: str, *, block_number: int | None = None) -> None:
        super().__init__(message)
        self.block_number = block_number


class PagedReadInTransactionError(LedgerError):
    """A simulation both paged through a range and wrote: a bug in the contract.

    A page is not part of the read-set (a later insert into the range could not be
    detected), so paged reads are for queries, as in Fabric.
    """


class ChainIntegrityError(LedgerError):
    """The stored chain does not verify: a hash, a link or the world state is wrong."""

    def __init__(self, message: str, *, channel: str, block_number: int | None) -> None:
        super().__init__(message)
        self.channel = channel
        self.block_number = block_number


class LedgerDamagedError(ChainIntegrityError):
    """A channel's chain is known to be damaged, so nothing more is appended to it.

    Raised before anything is written. Known means: a verification in this
    process failed, or the chain writer found the tip block it was about to
    build on no longer matching its own hashes. Writes stay refused until a
    verification of the channel passes again.
    """

    def __init__(self, channel: str, block_number: int, reason: str) -> None:
        super().__init__(
            f"The {channel} ledger failed verification at block {block_number}: {reason} "
            "Writes to it are refused until an operator restores it.",
            channel=channel,
            block_number=block_number,
        )
        self.first_bad_block = block_number
        self.reason = reason


class NotALedgerError(LedgerError):
    """The store answers, but is not a healthledger ledger (not its tables, or not SQLite)."""


class LedgerNotFoundError(LedgerError):
    """Nothing is stored where a ledger URL points, and opening it to read created nothing."""

    def __init__(self, where: str) -> None:
        super().__init__(f"There is no ledger at {where}.")
        self.where = where


class BackendUnavailableError(LedgerError):
    """The storage backend cannot be reached; nothing was half-written.

    `outcome_known` is False in the one case where the store went away after an
    append was sent and before it could be read back: the block is then either
    wholly stored or not at all, and which is known once the store answers.
    """

    def __init__(self, message: str, *, outcome_known: bool = True) -> None:
        super().__init__(message)
        self.outcome_known = outcome_known


class UnsupportedLedgerURLError(LedgerError, ValueError):
    """A ledger URL names a scheme no backend is registered for, or is malformed."""
