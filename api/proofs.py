"""Inclusion and consistency proofs of a channel's Merkle tree, for those who may have them.

A consistency proof says nothing about any record: every member of the channel gets it,
as every member sees the explorer's blocks; anyone else is answered as for a channel
that does not exist. An inclusion proof names a transaction, so it goes only to those
who may read, now, a record the transaction wrote, as the contract's own read rule
decides (`writtenRecordPurpose`, which notes no read): on `medical` a medical card (as
its history), on `report` a report (as its content). An unknown transaction id, a
transaction that wrote no such record, and a record the caller may not read all get
the same NOT_FOUND, so the answer never tells that a transaction exists; sizes are
checked only once access is granted, for the same reason.

Each proof comes with the checkpoint signed for the size of the tree it proves against.
The store is read, and the checkpoint signed, in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from authz.identity import Identity
from checkpoints.signer import Checkpoint
from domain.errors import BadInputError, NotFoundError
from ledger_backends import ChannelLedger
from ledger_backends.proofs import Consistency, Inclusion
from ledger_backends.records import Validation

from .checkpoint_access import unseen_channel
from .services import Services

NO_SUCH_TRANSACTION = "No such transaction is visible to you."
# Transaction ids are 32 hex digits; anything much longer names none.
MAX_TX_ID_LENGTH = 128


@dataclass(frozen=True, slots=True)
class SignedInclusion:
    proof: Inclusion
    checkpoint: Checkpoint


@dataclass(frozen=True, slots=True)
class SignedConsistency:
    proof: Consistency
    checkpoint: Checkpoint


async def inclusion_proof(
    services: Services, caller: Identity, channel: str, tx_id: str, tree_size: int | None
) -> SignedInclusion:
    """The proof that the transaction is in the channel's tree of `tree_size` leaves (the
    current tree when None), for a caller who may read a record it wrote; NOT_FOUND,
    always worded alike, for everyone else. BAD_USER_INPUT for a tree size beyond the
    tree or one that ends before the transaction."""
    ledger = services.channels.get(channel)
    if ledger is None or not services.access.is_member(caller, channel) or not _may_name(tx_id):
        raise NotFoundError(NO_SUCH_TRANSACTION)
    found = await asyncio.to_thread(ledger.proofs.leaf_index, tx_id)
    if found is None:
        raise NotFoundError(NO_SUCH_TRANSACTION)
    leaf_index, tx_text = found
    keys = _written_keys(tx_text)
    if not keys:
        raise NotFoundError(NO_SUCH_TRANSACTION)
    try:
        await services.gateway.evaluate(caller, channel, "writtenRecordPurpose", {"keys": keys})
    except NotFoundError:
        raise NotFoundError(NO_SUCH_TRANSACTION) from None
    return await asyncio.to_thread(_signed_inclusion, services, ledger, leaf_index, tree_size)


async def consistency_proof(
    services: Services, caller: Identity, channel: str, from_size: int, to_size: int
) -> SignedConsistency:
    """The proof that the channel's tree of `to_size` leaves extends the one of
    `from_size`, for members of the channel (NOT_FOUND for others, as for an unknown
    channel, `unseen_channel`). BAD_USER_INPUT unless 0 <= fromSize <= toSize <= the tree's size."""
    ledger = services.channels.get(channel)
    if ledger is None or not services.access.is_member(caller, channel):
        raise NotFoundError(unseen_channel(channel))
    return await asyncio.to_thread(_signed_consistency, services, ledger, from_size, to_size)


def _may_name(tx_id: str) -> bool:
    """Whether `tx_id` could be a transaction's id: what no store need be asked about."""
    return 0 < len(tx_id) <= MAX_TX_ID_LENGTH and tx_id.isascii() and tx_id.isprintable()


def _written_keys(tx_text: str) -> list[str]:
    """The keys a transaction wrote a value to; none for a transaction that was not valid
    (its writes were never applied)."""
    stored = json.loads(tx_text)
    if stored.get("validation") != Validation.VALID:
        return []
    return [key for key, value in stored["write_set"].items() if value is not None]


def _signed_inclusion(
    services: Services, ledger: ChannelLedger, leaf_index: int, tree_size: int | None
) -> SignedInclusion:
    if tree_size is not None:
        current = ledger.proofs.head().size
        if tree_size > current:
            raise BadInputError(
                f"treeSize {tree_size} is beyond the channel's tree of {current} transactions."
            )
        if tree_size <= leaf_index:
            raise BadInputError(
                f"treeSize {tree_size} ends before the transaction, which is leaf "
                f"{leaf_index}: ask for a tree of at least {leaf_index + 1} transactions."
            )
    proof = ledger.proofs.inclusion_at(leaf_index, tree_size)
    return SignedInclusion(proof, services.checkpoints.checkpoint(ledger.name, proof.tree_size))


def _signed_consistency(
    services: Services, ledger: ChannelLedger, from_size: int, to_size: int
) -> SignedConsistency:
    current = ledger.proofs.head().size
    if from_size < 0:
        raise BadInputError("fromSize must be 0 or more.")
    if from_size > to_size:
        raise BadInputError(
            f"fromSize {from_size} is larger than toSize {to_size}: a tree only grows."
        )
    if to_size > current:
        raise BadInputError(
            f"toSize {to_size} is beyond the channel's tree of {current} transactions."
        )
    proof = ledger.proofs.consistency(from_size, to_size)
    return SignedConsistency(proof, services.checkpoints.checkpoint(ledger.name, to_size))
