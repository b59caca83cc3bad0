"""Refused reads, recorded in the background: at most one transaction per reader, channel
and delay.

A caller refused a read is answered at once, exactly as for a record that does not exist;
the refusal is recorded later. Each reader's refusals on a channel gather for `delay`
seconds and are then written by one `recordAccess` transaction as that reader, whether
the records refused exist or not (access_log.py): the refused caller's answer, its timing
and what the chain shows afterwards are the same either way, and a flood of refused reads
costs one commit per reader and delay.

Refusals still gathering when the process dies are lost; `settle` writes them at once
(the server does so when it stops).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from domain.errors import RefusalError
from ledger_backends import LedgerError

from .base import Caller
from .records import AccessFacts

DELAY_SECONDS = 1.0

logger = logging.getLogger("healthledger.access")

# Writes one reader's refusals on a channel: (reader, channel, refused reads of records).
RefusalWriter = Callable[[Caller, str, list[AccessFacts]], Awaitable[object]]


@dataclass
class _Gathering:
    """One reader's refusals on one channel, waiting to be written."""

    reader: Caller
    facts: list[AccessFacts] = field(default_factory=list)
    due: bool = False
    sleeping: bool = False
    task: asyncio.Task[None] | None = None


class RefusalRecorder:
    """Gathers refused reads per reader and channel and has `write` record them."""

    def __init__(self, write: RefusalWriter, *, delay: float = DELAY_SECONDS) -> None:
        self._write = write
        self._delay = delay
        self._gathering: dict[tuple[str, str, str], _Gathering] = {}
        self._settling = False

    def add(self, reader: Caller, channel: str, refused: list[AccessFacts | None]) -> None:
        """Refusals of `reader` on `channel` (facts of records that exist, None for others),
        to be written within `delay` seconds; returns at once. Call on the event loop."""
        key = (channel, reader.org, reader.uid)
        gathering = self._gathering.setdefault(key, _Gathering(reader))
        gathering.facts.extend(facts for facts in refused if facts is not None)
        gathering.due = True
        if gathering.task is None or gathering.task.done():
            gathering.task = asyncio.get_running_loop().create_task(
                self._write_later(key, gathering)
            )

    async def settle(self) -> None:
        """Write every refusal gathered so far now, without waiting out the delay."""
        self._settling = True
        try:
            waiting = []
            for gathering in self._gathering.values():
                task = gathering.task
                if task is not None and not task.done():
                    if gathering.sleeping:
                        task.cancel()
                    waiting.append(task)
            for task in waiting:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for key, gathering in list(self._gathering.items()):
                if gathering.due:
                    await self._write_now(key, gathering)
                self._gathering.pop(key, None)
        finally:
            self._settling = False

    async def _write_later(self, key: tuple[str, str, str], gathering: _Gathering) -> None:
        try:
            while gathering.due and not self._settling:
                gathering.sleeping = True
                try:
                    await asyncio.sleep(self._delay)
                finally:
                    gathering.sleeping = False
                await self._write_now(key, gathering)
        finally:
            # Cancelled while refusals wait (a loop that ended), they stay for the next.
            if not gathering.due and self._gathering.get(key) is gathering:
                del self._gathering[key]

    async def _write_now(self, key: tuple[str, str, str], gathering: _Gathering) -> None:
        facts, gathering.facts, gathering.due = gathering.facts, [], False
        try:
            await self._write(gathering.reader, key[0], facts)
        except (RefusalError, LedgerError) as error:
            logger.warning(
                "Refused reads of %s/%s on %s were not recorded: %s",
                gathering.reader.org,
                gathering.reader.uid,
                key[0],
                error,
            )
