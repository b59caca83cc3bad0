"""How much one caller may hold open at once: websockets and operations per identity, handshakes
per address.

Each worker process counts its own: with `--workers N` an identity may hold up to N times each
cap, one share per process the kernel hands its connections to.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import defaultdict
from collections.abc import Callable, Sized
from typing import Any, Protocol

from authz.identity import Identity

# asyncio waits 60 s for a TLS handshake by default; a client that has finished it needs
# a round trip or two, so ten seconds is generous even on a slow mobile link.
HANDSHAKE_TIMEOUT_SECONDS = 10.0


class Connection(Protocol):
    """An open websocket as the limits see it: the operations now running over it."""

    @property
    def operations(self) -> Sized: ...


class IdentityLimits:
    """Websockets open and operations running per (organisation, UID), in this process.

    Guarantees: `admit` never lets an identity hold more than `max_websockets` sockets, and
    `may_start` is false once its sockets together run `max_operations` operations. The
    operation count is read from the sockets themselves, so it cannot drift: a socket's
    operations stop counting the moment it is `release`d, however it ended.
    """

    def __init__(self, max_websockets: int, max_operations: int) -> None:
        self.max_websockets = max_websockets
        self.max_operations = max_operations
        self._open: defaultdict[tuple[str, str], set[Connection]] = defaultdict(set)

    def admit(self, identity: Identity, connection: Connection) -> bool:
        """Count `connection` against `identity`, unless its websockets are at the cap."""
        held = self._open[_key(identity)]
        if len(held) >= self.max_websockets:
            return False
        held.add(connection)
        return True

    def release(self, identity: Identity, connection: Connection) -> None:
        """Stop counting `connection` (and its operations); idempotent."""
        key = _key(identity)
        held = self._open.get(key)
        if held is not None:
            held.discard(connection)
            if not held:
                del self._open[key]  # an identity that went away holds no memory here

    def may_start(self, identity: Identity) -> bool:
        """Whether one more operation keeps `identity` within `max_operations`."""
        running = sum(
            len(connection.operations) for connection in self._open.get(_key(identity), ())
        )
        return running < self.max_operations


def _key(identity: Identity) -> tuple[str, str]:
    # A person is (organisation, UID): the same UID in another organisation is someone else.
    return (identity.org, identity.uid)


class HandshakeLimitedLoop(asyncio.SelectorEventLoop):
    """An event loop whose TLS servers bound handshakes: in time, and in number per address.

    uvicorn creates its server with asyncio's defaults, which let a client that never finishes
    a TLS handshake hold its connection for 60 s, as many times over as it likes. On this loop
    a handshake is abandoned after `handshake_timeout` seconds, and a client address with
    `max_per_address` handshakes under way has further connections closed at once, before
    any TLS work is done for them.
    """

    def __init__(
        self,
        max_per_address: int,
        handshake_timeout: float = HANDSHAKE_TIMEOUT_SECONDS,
    ) -> None:
        super().__init__()
        self.max_per_address = max_per_address
        self.handshake_timeout = handshake_timeout
        self._handshaking: defaultdict[str, int] = defaultdict(int)

    async def create_server(
        self, protocol_factory: Callable[[], asyncio.BaseProtocol], *args: Any, **kwargs: Any
    ) -> asyncio.Server:
        if kwargs.get("ssl") is not None and kwargs.get("ssl_handshake_timeout") is None:
            kwargs["ssl_handshake_timeout"] = self.handshake_timeout
        return await super().create_server(protocol_factory, *args, **kwargs)

    def handshakes(self, address: str) -> int:
        return self._handshaking.get(address, 0)

    # asyncio's accept path (selector_events) awaits this coroutine until the TLS handshake
    # has finished, failed or timed out: the only place that sees both the peer's address
    # and the end of its handshake, hence the override of a private method.
    async def _accept_connection2(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        conn: socket.socket,
        extra: dict[str, Any],
        sslcontext: ssl.SSLContext | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        peer = extra.get("peername")
        if sslcontext is None or not isinstance(peer, tuple):
            await super()._accept_connection2(  # type: ignore[misc]
                protocol_factory, conn, extra, sslcontext, *args, **kwargs
            )
            return
        address = str(peer[0])
        if self._handshaking.get(address, 0) >= self.max_per_address:
            conn.close()
            return
        self._handshaking[address] += 1
        try:
            await super()._accept_connection2(  # type: ignore[misc]
                protocol_factory, conn, extra, sslcontext, *args, **kwargs
            )
        finally:
            self._handshaking[address] -= 1
            if not self._handshaking[address]:
                del self._handshaking[address]
