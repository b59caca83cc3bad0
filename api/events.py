"""Contract events for subscribers, read from the committed chain.

The hub tails each channel's blocks (polling the store while anyone listens),
so events committed by any API process sharing the ledger reach every
subscriber. While the ledger is unreachable the tail keeps retrying, so subscriptions
resume when it is back. Only events of VALID transactions are published. Who may see an
event is decided by `visible_to`, from the audience the contract recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from authz.identity import Identity
from chaincode.people import person
from ledger_backends import ChannelLedger, LedgerError
from ledger_backends.records import Transaction

POLL_SECONDS = 0.1
RETRY_SECONDS = 0.5
QUEUE_LIMIT = 1_000


@dataclass(frozen=True)
class CommittedEvent:
    channel: str
    name: str
    block_number: int
    tx_id: str
    payload: dict[str, Any]

    @property
    def subject_id(self) -> str:
        return str(self.payload.get("subjectId", ""))

    def visible_to(self, uid: str, org: str, role: str) -> bool:
        """Parents and doctors named (as ORG/UID) in the audience; staff of a named school.

        A UID alone never matches: `alice` of another organisation is someone else.
        """
        return audience_includes(self.payload, uid=uid, org=org, role=role)


def audience_includes(payload: Any, *, uid: str, org: str, role: str) -> bool:
    """Whether an event audience recorded by a contract names this caller."""
    if not isinstance(payload, dict):
        return False
    if role in ("parent", "doctor") and person(org, uid) in payload.get("people", ()):
        return True
    return role == "school" and org in payload.get("orgs", ())


class EventHub:
    """Fans committed contract events out to subscribers, per channel."""

    def __init__(self, channels: dict[str, ChannelLedger], *, poll_seconds: float = POLL_SECONDS):
        self._channels = channels
        self._poll = poll_seconds
        self._subscribers: dict[str, set[asyncio.Queue[CommittedEvent]]] = {}
        self._tails: dict[str, asyncio.Task[None]] = {}
        self._starting: dict[str, asyncio.Lock] = {}

    async def subscribe(self, channel: str) -> AsyncIterator[CommittedEvent]:
        """Events committed on `channel` from now on, until the subscriber goes away.

        Each event comes once, however many subscribers start at the same moment: a
        channel has one tail at a time.
        """
        queue: asyncio.Queue[CommittedEvent] = asyncio.Queue(QUEUE_LIMIT)
        listeners = self._subscribers.setdefault(channel, set())
        # Reading the tip awaits: without the lock, subscribers arriving meanwhile each
        # started a tail of their own, and every event reached every subscriber once per tail.
        async with self._starting.setdefault(channel, asyncio.Lock()):
            if channel not in self._tails or self._tails[channel].done():
                start = (await asyncio.to_thread(self._channels[channel].tip)).height
                self._tails[channel] = asyncio.create_task(self._tail(channel, start))
            listeners.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            listeners.discard(queue)

    def subscriber_count(self, channel: str) -> int:
        """How many subscribers are listening to `channel` now."""
        return len(self._subscribers.get(channel, ()))

    async def _tail(self, channel: str, next_block: int) -> None:
        ledger = self._channels[channel]
        while self._subscribers.get(channel):
            try:
                blocks = await asyncio.to_thread(ledger.blocks, next_block, 100)
            except LedgerError:
                # The ledger is unreachable for now: keep the subscribers, look again shortly.
                await asyncio.sleep(RETRY_SECONDS)
                continue
            for block in blocks:
                for tx in block.transactions():
                    if not tx.is_valid:
                        continue
                    for event in tx.events:
                        self._publish(
                            CommittedEvent(
                                channel, event.name, block.number, tx.tx_id, event.payload
                            )
                        )
                next_block = block.number + 1
            if not blocks:
                await asyncio.sleep(self._poll)

    def _publish(self, event: CommittedEvent) -> None:
        for queue in list(self._subscribers.get(event.channel, ())):
            with contextlib.suppress(asyncio.QueueFull):  # a subscriber that stopped reading
                queue.put_nowait(event)

    async def close(self) -> None:
        for task in self._tails.values():
            task.cancel()
        for task in self._tails.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tails.clear()


def may_see_transaction(tx: Transaction, viewer: Identity) -> bool:
    """The creator, and those named in the audience of the transaction's events."""
    if tx.creator.msp == viewer.msp and tx.creator.uid == viewer.uid:
        return True
    return any(
        audience_includes(event.payload, uid=viewer.uid, org=viewer.org, role=viewer.role.value)
        for event in tx.events
    )
