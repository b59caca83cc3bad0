"""A TCP forwarder on a loopback port that a test can cut and restore, to take a store away.

`cut("refuse")` is a store that is down: every connection is closed and new ones are
refused. `cut("blackhole")` is a store that stops answering (a partition, a frozen
server): connections stay open, new ones are accepted, and nothing comes back from
either. `restore()` ends the outage: connections held during a blackhole are closed
(as a partition's connections end in a reset) and new ones reach the store again.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Literal

from devkit.ports import ReservedPort

Outage = Literal["refuse", "blackhole"]
CHUNK = 65536


class TcpProxy:
    """Forwards 127.0.0.1:`port` to `upstream`, one pair of pump threads per connection.

    The port stays reserved until `close`, so the proxy listens on it again after a refusal.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._reserved = ReservedPort()
        self.port = self._reserved.port
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._outage: Outage | None = None

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self, outage: Outage) -> None:
        with self._lock:
            self._outage = outage
            if outage == "refuse":
                listener, self._listener = self._listener, None
                if listener is not None:
                    _drop(listener)
                self._drop_all()

    def restore(self) -> None:
        with self._lock:
            self._outage = None
            self._drop_all()
            relisten = self._listener is None
        if relisten:
            self.start()

    def close(self) -> None:
        self.cut("refuse")
        self._reserved.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed by cut("refuse") or close()
            if not self._register(client):
                continue
            if self._outage == "blackhole":
                self._pump(client, None)
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=2)
            except OSError:
                _drop(client)
                continue
            upstream.settimeout(None)
            if self._register(upstream):
                self._pump(client, upstream)
                self._pump(upstream, client)
            else:
                _drop(client)

    def _register(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._outage == "refuse":
                _drop(sock)
                return False
            self._open.add(sock)
            return True

    def _pump(self, source: socket.socket, sink: socket.socket | None) -> None:
        """Copy source to sink until either ends; during a blackhole the bytes are swallowed."""

        def run() -> None:
            try:
                while data := source.recv(CHUNK):
                    if sink is not None and self._outage is None:
                        sink.sendall(data)
            except OSError:
                pass
            with self._lock:
                for sock in (source, sink):
                    if sock is not None and sock in self._open:
                        self._open.discard(sock)
                        _drop(sock)

        threading.Thread(target=run, daemon=True).start()

    def _drop_all(self) -> None:
        for sock in self._open:
            _drop(sock)
        self._open.clear()


def _drop(sock: socket.socket) -> None:
    # shutdown wakes a pump blocked in recv on this socket; close alone would not.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
