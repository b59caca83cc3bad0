"""Loopback ports for servers that tests and tools start, never bound once and let go.

Binding port 0, closing the socket and passing the number on leaves a moment in
which any other process may take the port. So a server in this process is
handed a socket that already listens (`listening_socket`, for uvicorn's
`sockets=`); `healthledger serve` is started on port 0 and reports the ports it
bound (devkit.serve_process); and a server that only takes a port number
(redis-server, the health port that several workers share) gets one that a
`ReservedPort` keeps bound, without listening, for as long as it is needed.
"""

from __future__ import annotations

import socket
from types import TracebackType

BACKLOG = 128


def listening_socket(host: str = "127.0.0.1") -> socket.socket:
    """A TCP socket bound to a free port on `host` and listening; the caller closes it."""
    # Named as TCP, so asyncio sets TCP_NODELAY on what it accepts (no 40 ms delayed-ACK waits).
    listening = socket.socket(_family(host), socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        listening.bind((host, 0))
        listening.listen(BACKLOG)
    except OSError:
        listening.close()
        raise
    return listening


class ReservedPort:
    """A free port on `host`, held bound but not listening until `close`.

    While it is held, the kernel gives the port to no `bind(0)` and no outgoing
    connection, yet a server that sets SO_REUSEADDR (uvicorn, asyncio,
    redis-server) or SO_REUSEPORT (each worker's health listener) may bind it and
    listen, as often as it is restarted. Connections reach only listening sockets.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._socket = socket.socket(_family(host), socket.SOCK_STREAM)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            self._socket.bind((host, 0))
        except OSError:
            self._socket.close()
            raise
        self.port: int = self._socket.getsockname()[1]

    def close(self) -> None:
        """Give the port up; closing twice is harmless."""
        self._socket.close()

    def __enter__(self) -> ReservedPort:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
