"""The ledger explorer's view of blocks: headers a caller may see, the rest redacted.

A channel member sees every block's own fields (number, hashes, time, how many
transactions it holds). A transaction's header — txId, function, creator and
the commitment to its writes — is shown only to those who may read the records
it wrote: its creator, and the people (or the school) its contract named as
the audience of its events when it was committed. Everyone else gets the
header redacted, so the explorer never tells who did what to records they
cannot read.

Blocks are listed newest first, a page at a time; a block's position in that
list is its number, and the next page holds the blocks numbered below it.
"""

from __future__ import annotations

from authz.identity import Identity
from chaincode.records import Page
from domain.errors import BadInputError
from ledger_backends import ChannelLedger
from ledger_backends.records import Block as LedgerBlock
from ledger_backends.records import Transaction, parse_timestamp

from .cursors import CURSOR_REFUSED
from .events import may_see_transaction
from .types import Block, TxHeader


def block_page(channel: ChannelLedger, first: int, below: str | None) -> Page[LedgerBlock]:
    """Up to `first` blocks, newest first, numbered below `below` (from the tip when None).

    Blocking: reads the store.
    """
    height = channel.tip().height
    if below is None:
        end = height
    elif below.isdigit() and below.isascii():
        # A chain begun again since (a memory:// ledger after a restart) is read from its tip.
        end = min(int(below), height)
    else:
        raise BadInputError(CURSOR_REFUSED)
    start = max(0, end - first)
    found = channel.blocks(start, end - start) if end > start else []
    return {
        "entries": [{"position": str(b.number), "item": b} for b in reversed(found)],
        "hasMore": start > 0,
    }


def block_view(block: LedgerBlock, viewer: Identity) -> Block:
    transactions = block.transactions()
    return Block(
        number=block.number,
        hash=block.hash,
        previous_hash=block.previous_hash,
        data_hash=block.data_hash,
        timestamp=parse_timestamp(block.timestamp),
        transaction_count=len(transactions),
        transactions=[_header(tx, viewer) for tx in transactions],
    )


def _header(tx: Transaction, viewer: Identity) -> TxHeader:
    if not may_see_transaction(tx, viewer):
        return TxHeader(
            index=tx.tx_index,
            redacted=True,
            tx_id=None,
            contract=tx.contract,
            function=None,
            creator=None,
            creator_msp=None,
            validation=tx.validation,
            write_set_hash=None,
        )
    return TxHeader(
        index=tx.tx_index,
        redacted=False,
        tx_id=tx.tx_id,
        contract=tx.contract,
        function=tx.function,
        creator=tx.creator.uid,
        creator_msp=tx.creator.msp,
        validation=tx.validation,
        write_set_hash=tx.write_set_hash,
    )
