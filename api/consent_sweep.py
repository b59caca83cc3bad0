"""Telling people of consents that ended by time: the server's sweep, once a minute.

Time passing writes nothing, so an agreement, a school's permission or an emergency
access whose `validUntil` has come ends without a transaction (chaincode.consent). The
sweep has the gateway announce every such end (`Gateway.expire_consents`): a
transaction per channel that emits the events — AgreementEnded, ReportPermissionEnded,
EmergencyAccessEnded — to the party who lost access and to the guardians. The access
itself ended at `validUntil` whatever the sweep does; the event comes within a minute.

Every worker process runs a sweep; they race harmlessly, since each end is announced by
one committed transaction and the others find it gone. A failed sweep (a ledger away) is
logged and tried again a minute later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from chaincode.gateway import Gateway

SWEEP_SECONDS = 60.0

log = logging.getLogger("healthledger.consent")


class ConsentSweep:
    """Runs `gateway.expire_consents` at start and every `interval_seconds` after."""

    def __init__(self, gateway: Gateway, *, interval_seconds: float = SWEEP_SECONDS) -> None:
        self.gateway = gateway
        self.interval_seconds = interval_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="consent-sweep")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                announced = await self.gateway.expire_consents()
            except Exception:
                # Whatever went wrong, the next sweep tries again: ends must not go untold.
                log.exception("Announcing the consents that ended failed; retrying later.")
            else:
                if announced:
                    log.info("Announced %d consents that ended.", announced)
            await asyncio.sleep(self.interval_seconds)
