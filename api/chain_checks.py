"""`verifyChannel`'s work: one check per channel at a time, from where the last one passed.

Verifying from block 0 costs time in proportion to the whole chain, and any member of a
channel may ask: thirty aliases of `verifyChannel` on a 143-block chain took a second.
So this process remembers, per channel, the tip its last passing check reached, and a
check checks only the blocks appended since (`verify_channel_since`, whose docstring
says what that covers and what only a check from block 0 does). A chain that has not
grown since costs a read of its last block and its tip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from ledger_backends import ChannelLedger, Tip, Verification
from ledger_backends.verify import verify_channel_since


@dataclass(frozen=True)
class _Check:
    full: bool
    task: asyncio.Task[Verification]


class ChainChecks:
    """Verifications of this process's channels, shared by every caller.

    - A caller that asks while a check of the channel is running gets that check's
      result (a full check also answers callers who did not ask for one), so the
      aliases of one operation, or many callers at once, cause one check.
    - Otherwise a new check starts, after any running one ends: from block 0 when
      `full` is asked for, when no check has passed in this process yet, or when the
      last one found damage (so a repair is seen at once); else from the tip the last
      passing check reached.
    - A check from block 0 goes through `ChannelLedger.verify`, so damage it finds
      makes the channel refuse writes and a pass lets them resume. Damage a check
      from a tip finds is confirmed by one from block 0 before it is reported.
    """

    def __init__(self, channels: Mapping[str, ChannelLedger]) -> None:
        self._channels = channels
        self._verified: dict[str, Tip] = {}
        self._running: dict[str, _Check] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def verify(self, channel: str, *, full: bool = False) -> Verification:
        """The channel's verification, as the class docstring describes; `channel` must exist."""
        running = self._running.get(channel)
        if running is None or (full and not running.full):
            running = _Check(full, asyncio.create_task(self._check(channel, full)))
            self._running[channel] = running
            running.task.add_done_callback(lambda _: self._finished(channel, running))
        # Shielded: a caller that goes away must not cancel the check others wait for.
        return await asyncio.shield(running.task)

    def _finished(self, channel: str, check: _Check) -> None:
        if self._running.get(channel) is check:
            del self._running[channel]

    async def _check(self, channel: str, full: bool) -> Verification:
        ledger = self._channels[channel]
        async with self._locks.setdefault(channel, asyncio.Lock()):
            verified = self._verified.get(channel)
            if full or verified is None:
                result = await asyncio.to_thread(ledger.verify)
            else:
                result = await asyncio.to_thread(
                    verify_channel_since, ledger.store, ledger.name, verified
                )
                if not result.ok:
                    result = await asyncio.to_thread(ledger.verify)
            if result.tip is None:
                self._verified.pop(channel, None)
            else:
                self._verified[channel] = result.tip
            return result
