"""Verified reads: a version of a record with everything needed to check it against the log.

Whoever reads a medical card's history, and the guardians and the author of a report, may
ask for a version's `proof`. The contract decides who gets what, as for the read itself:
asked with `withProof`, it hands those readers the opening of the version's commitment
(its RFC 8785 text and salt, `chaincode.records.RecordOpening`) and notes the same reads
as without; nothing here decides who may read. This adds what the log holds: the stored
text of the transaction that wrote the version, whose write-set holds the sealed value
and its commitment, and the inclusion proof of that transaction in the channel's current
tree, with the checkpoint signed for that tree. The client then recomputes value →
commitment → transaction → leaf → root itself (docs/transparency.md, "Verified reads").

It is done only for a `proof` field asked for (a field resolver); the store is read, and
the checkpoint signed, in a worker thread.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from authz.identity import Identity
from chaincode.records import RecordOpening
from domain.errors import BadInputError, ForbiddenError
from ledger_backends import ChannelLedger
from ledger_backends.proofs import TreeNotAvailableError
from ledger_backends.records import Transaction

from .events import may_see_transaction
from .proofs import SignedInclusion
from .services import Services

WRITTEN_BEFORE_COMMITMENTS = (
    "This version was written before records carried commitments, so it has no verified read."
)
TRANSACTION_NOT_YOURS = (
    "This version's transaction also concerns people you may not see, so its proof is given "
    "only to its author and those it was addressed to; a guardian can check it."
)
PROOF_COMES_WITH_A_READ = (
    "A report's proof comes with reading it: the change was made; ask report(id) for the "
    "proof of the version it wrote."
)


@dataclass(frozen=True, slots=True)
class VerifiedRead:
    """A version's opening, the stored text of the transaction that wrote it, and the signed
    proof that this transaction is in the channel's tree."""

    opening: RecordOpening
    tx_text: str
    inclusion: SignedInclusion


async def verified_read(
    services: Services,
    channel: str,
    opening: RecordOpening | None,
    viewer: Identity,
    *,
    asked: bool,
) -> VerifiedRead:
    """The verified read of the version whose opening the contract gave (`asked`: the read
    asked for it). UNAVAILABLE (TreeNotAvailableError) for a version without a commitment,
    written before values carried them, or in a block from before the tree; BAD_USER_INPUT
    for a report a mutation returns, which was not read with its proof; FORBIDDEN when the
    transaction's text would show `viewer` more than the explorer shows them of it."""
    if not asked:
        raise BadInputError(PROOF_COMES_WITH_A_READ)
    if opening is None:
        raise TreeNotAvailableError(WRITTEN_BEFORE_COMMITMENTS)
    ledger = services.channels[channel]
    return await asyncio.to_thread(_verified_read, services, ledger, opening, viewer)


def _verified_read(
    services: Services, ledger: ChannelLedger, opening: RecordOpening, viewer: Identity
) -> VerifiedRead:
    found = ledger.proofs.leaf_index(opening["txId"])
    if found is None:
        raise TreeNotAvailableError(WRITTEN_BEFORE_COMMITMENTS)
    leaf, tx_text = found
    # The whole text is hashed into the leaf, so it is handed out whole: its keys, reads and
    # event audiences too. Only to those the ledger explorer shows the transaction's header:
    # its creator and those its events were addressed to (a doctor reading version 1 of a
    # card would otherwise learn whom the parent offered guardianship).
    if not may_see_transaction(Transaction.from_text(tx_text, 0, 0), viewer):
        raise ForbiddenError(TRANSACTION_NOT_YOURS)
    proof = ledger.proofs.inclusion_at(leaf)
    signed = services.checkpoints.checkpoint(ledger.name, proof.tree_size)
    return VerifiedRead(opening, tx_text, SignedInclusion(proof, signed))
