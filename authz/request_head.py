"""Bounds on an HTTP request head (request line and headers), which uvicorn does not bound.

A client that has not sent a whole head within REQUEST_HEAD_SECONDS of connecting or of
the previous response is disconnected (slowloris), and one that sends more than
MAX_REQUEST_HEAD_BYTES without finishing it (counted from the first read after the one that
ended the previous request) gets HTTP 400 and is disconnected. The same refusal holds when
a head that large arrives whole in one read, or begins in the read that ended the previous
request: its parsed request line and headers are counted as the parser reports them. Idle
time between requests stays bounded by uvicorn's shorter timeout_keep_alive.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("healthledger.transport")

REQUEST_HEAD_SECONDS = 10.0
MAX_REQUEST_HEAD_BYTES = 64 * 1024
HEAD_TOO_LARGE = "The request head is too large."


class HeadLimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools HTTP protocol with the request head bounded in time and size."""

    _head_deadline: asyncio.TimerHandle | None = None
    _head_bytes = 0
    _head_parsed = 0
    _request_received = True  # no request in progress: what arrives next is a head

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_arrived()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        awaiting_head = self._head_deadline is not None
        super().data_received(data)
        # Only data that came in while a head was awaited, and did not complete it, counts:
        # data that ended a request also holds that request's body (after an early 413, up
        # to a whole read of it), and a head begun within it is counted by the parser.
        if awaiting_head and self._head_deadline is not None:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_REQUEST_HEAD_BYTES and not self.transport.is_closing():
                self._head_arrived()
                self.send_400_response(HEAD_TOO_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_parsed = 0
        self._request_received = False

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._request_received = True
        # An upgrade (websocket) has no HTTP cycle; other requests may have been answered
        # early (413) while their body was still arriving.
        if self.cycle is not None and self.cycle.response_complete:
            self._await_head()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._count_parsed_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._count_parsed_head(len(name) + len(value) + len(b": \r\n"))

    def on_headers_complete(self) -> None:
        self._head_arrived()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        # A refused head already got its answer; the parser's own refusal then follows it.
        if not self.transport.is_closing():
            super().send_400_response(msg)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Await the next head only once this request's body is all in (an early answer, such
        # as 413, leaves the rest of the body to arrive first) and no pipelined one started.
        if self.cycle.response_complete and self._request_received:
            self._await_head()

    def _count_parsed_head(self, size: int) -> None:
        self._head_parsed += size
        if self._head_parsed > MAX_REQUEST_HEAD_BYTES:
            self._head_arrived()
            self.send_400_response(HEAD_TOO_LARGE)
            raise _HeadTooLargeError  # stops the parser before any application sees the request

    def _await_head(self) -> None:
        self._head_arrived()
        self._head_bytes = 0
        if not self.transport.is_closing():
            self._head_deadline = self.loop.call_later(REQUEST_HEAD_SECONDS, self._head_too_slow)

    def _head_arrived(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        log.warning(
            "Closed a connection from %s: no complete request head within %s s.",
            self.client,
            REQUEST_HEAD_SECONDS,
        )
        self.transport.close()


class _HeadTooLargeError(Exception):
    """Raised from a parser callback: the parser turns it into its own error and stops."""
