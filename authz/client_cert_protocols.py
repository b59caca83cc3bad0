"""uvicorn's protocol classes, passing the client certificate to the application.

uvicorn verifies the client certificate during the handshake but does not pass
it to the application. These protocols read it from the connection's SSL object
when the connection is made and put it into every ASGI scope of that connection
as the ASGI TLS extension: `scope["extensions"]["tls"]["client_cert_chain"] =
[PEM]`. The same happens for websocket connections, whose protocol uvicorn
creates on the upgrade from the HTTP connection's transport. Pass the classes to
`uvicorn.Config(http=..., ws=...)`. The certificate is then verified by
`authz.callers.CallerIdentifier`; the TLS layer is not trusted alone.

Each protocol also cuts off a peer that reads nothing of what it is sent
(`authz.write_timeout`); the httptools protocol bounds the request head
(`authz.request_head`) and the websocket protocol the size of a message.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from .request_head import HeadLimitedHttpToolsProtocol
from .write_timeout import WriteTimeout

# A websocket message is bounded like a request body (api.app.MAX_BODY_BYTES), unpacked.
MAX_MESSAGE_BYTES = 1024 * 1024

Scope = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]
]


class _WithTLSExtension:
    """An ASGI app wrapper that adds one connection's TLS details to each scope."""

    def __init__(self, app: ASGIApp, tls: dict[str, Any]) -> None:
        self.app = app
        self.tls = tls

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = dict(scope)
            scope["extensions"] = {**(scope.get("extensions") or {}), "tls": self.tls}
        await self.app(scope, receive, send)


def _tls_extension(transport: Any) -> dict[str, Any] | None:
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    cipher = ssl_object.cipher()
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": ssl_object.version(),
        "cipher_suite": cipher[0] if cipher else None,
    }


class _ClientCertificate:
    """A mixin for uvicorn's protocol classes: the ASGI TLS extension in every scope."""

    app: Any

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        tls = _tls_extension(transport)
        if tls is not None:
            self.app = _WithTLSExtension(self.app, tls)


class H11ClientCertProtocol(_ClientCertificate, WriteTimeout, H11Protocol):
    """uvicorn's h11 HTTP protocol, passing the client certificate to the app.

    A peer that reads nothing for WRITE_TIMEOUT_SECONDS while a response waits is cut off.
    """


class HttpToolsClientCertProtocol(_ClientCertificate, WriteTimeout, HeadLimitedHttpToolsProtocol):
    """uvicorn's httptools HTTP protocol, passing the client certificate to the app.

    The request head is bounded in time and size (REQUEST_HEAD_SECONDS,
    MAX_REQUEST_HEAD_BYTES). A client that reads nothing of a response for
    WRITE_TIMEOUT_SECONDS is disconnected.
    """


class WebSocketClientCertProtocol(_ClientCertificate, WriteTimeout, WebSocketsSansIOProtocol):
    """uvicorn's websockets (sans-I/O) protocol, passing the client certificate to the app.

    A message may hold at most MAX_MESSAGE_BYTES once unpacked (permessage-deflate stays
    on; the websockets library stops inflating at the limit), whatever uvicorn's
    `ws_max_size` says: larger ones close the socket with 1009 before any of it is parsed.
    A peer that reads nothing sent to it for WRITE_TIMEOUT_SECONDS is disconnected.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn.max_message_size = MAX_MESSAGE_BYTES
