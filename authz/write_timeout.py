"""A bound on how long a connection may hold a response that its peer does not read.

uvicorn pauses writing when the transport's buffer is full and waits, without limit, for
the peer to read. A peer that never reads would otherwise hold the connection, its
buffered response and the task sending it for ever.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("healthledger.transport")

# How long writing may stay paused (the peer reads none of what is sent) before the connection
# is aborted; a slow reader that drains its buffer now and then resumes writing and is spared.
WRITE_TIMEOUT_SECONDS = 30.0


class WriteTimeout:
    """Aborts a connection whose writing stays paused for more than WRITE_TIMEOUT_SECONDS.

    A mixin for uvicorn's protocol classes (HTTP and websockets): put it before the protocol.
    """

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    client: tuple[str, int] | None
    _write_deadline: asyncio.TimerHandle | None = None

    def pause_writing(self) -> None:
        super().pause_writing()  # type: ignore[misc]
        if self._write_deadline is None:
            self._write_deadline = self.loop.call_later(WRITE_TIMEOUT_SECONDS, self._write_too_slow)

    def resume_writing(self) -> None:
        self._write_resumed()
        super().resume_writing()  # type: ignore[misc]

    def connection_lost(self, exc: Exception | None) -> None:
        self._write_resumed()
        super().connection_lost(exc)  # type: ignore[misc]

    def _write_resumed(self) -> None:
        if self._write_deadline is not None:
            self._write_deadline.cancel()
            self._write_deadline = None

    def _write_too_slow(self) -> None:
        self._write_deadline = None
        log.warning(
            "Aborted a connection to %s: it read nothing of what was sent for %s s.",
            self.client,
            WRITE_TIMEOUT_SECONDS,
        )
        self.transport.abort()  # close() would wait for the unread buffer to be flushed
