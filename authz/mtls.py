"""Getting the client certificate from the connection: uvicorn over mutual TLS, or a trusted proxy.

uvicorn verifies the client certificate during the handshake but does not pass
it to the application (uvicorn issue #745). The protocol classes made here read
it from the connection's SSL object when the connection is made and put it into
every ASGI scope of that connection as the ASGI TLS extension:
`scope["extensions"]["tls"]["client_cert_chain"] = [PEM]`. The same happens for
websocket connections, whose protocol uvicorn creates on the upgrade from the
HTTP connection's transport. Pass the classes to `uvicorn.Config(http=..., ws=...)`.

Behind a TLS-terminating proxy, `client_certificate_der` takes the PEM from the
configured header (nginx `$ssl_client_escaped_cert`, or Envoy's
`x-forwarded-client-cert` with `Cert="..."`), but only when the TCP peer is one
of the trusted proxies. Either way the certificate is then verified by
`IdentityVerifier`; the TLS layer is not trusted alone.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import ssl
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from .errors import Unauthenticated
from .identity import Identity, IdentityVerifier
from .network import NetworkConfig

log = logging.getLogger("healthledger.mtls")

REQUEST_HEAD_SECONDS = 10.0
# How long writing may stay paused (the peer reads none of what is sent) before the connection
# is aborted; a slow reader that drains its buffer now and then resumes writing and is spared.
WRITE_TIMEOUT_SECONDS = 30.0
MAX_REQUEST_HEAD_BYTES = 64 * 1024
# A websocket message is bounded like a request body (api.app.MAX_BODY_BYTES), unpacked.
MAX_MESSAGE_BYTES = 1024 * 1024
HEAD_TOO_LARGE = "The request head is too large."

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


class _ClientCertificateMixin:
    app: Any

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        tls = _tls_extension(transport)
        if tls is not None:
            self.app = _WithTLSExtension(self.app, tls)


class _WriteTimeoutMixin:
    """Aborts a connection whose writing stays paused for more than WRITE_TIMEOUT_SECONDS.

    uvicorn pauses writing when the transport's buffer is full and waits, without limit, for
    the peer to read. A peer that never reads would otherwise hold the connection, its
    buffered response and the task sending it for ever.
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


class H11ClientCertProtocol(_ClientCertificateMixin, _WriteTimeoutMixin, H11Protocol):
    """uvicorn's h11 HTTP protocol, passing the client certificate to the app.

    A peer that reads nothing for WRITE_TIMEOUT_SECONDS while a response waits is cut off.
    """


class HttpToolsClientCertProtocol(_ClientCertificateMixin, _WriteTimeoutMixin, HttpToolsProtocol):
    """uvicorn's httptools HTTP protocol, passing the client certificate to the app.

    It also bounds the request head (request line and headers), which uvicorn does not: a
    client that has not sent a whole head within REQUEST_HEAD_SECONDS of connecting or of
    the previous response is disconnected (slowloris), and one that sends more than
    MAX_REQUEST_HEAD_BYTES without finishing it gets HTTP 400 and is disconnected. The same
    refusal holds when a head that large arrives whole in one read: its parsed request line
    and headers are counted as the parser reports them. Idle time between requests stays
    bounded by uvicorn's shorter timeout_keep_alive. A client that reads nothing of a
    response for WRITE_TIMEOUT_SECONDS is disconnected too.
    """

    _head_deadline: asyncio.TimerHandle | None = None
    _head_bytes = 0
    _head_parsed = 0

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_arrived()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_deadline is not None:  # this data did not complete the head
            self._head_bytes += len(data)
            if self._head_bytes > MAX_REQUEST_HEAD_BYTES and not self.transport.is_closing():
                self._head_arrived()
                self.send_400_response(HEAD_TOO_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_parsed = 0

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

    def _count_parsed_head(self, size: int) -> None:
        self._head_parsed += size
        if self._head_parsed > MAX_REQUEST_HEAD_BYTES:
            self._head_arrived()
            self.send_400_response(HEAD_TOO_LARGE)
            raise _HeadTooLarge  # stops the parser before any application sees the request

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.cycle.response_complete:  # no pipelined request started: await the next head
            self._await_head()

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


class _HeadTooLarge(Exception):
    """Raised from a parser callback: the parser turns it into its own error and stops."""


class WebSocketClientCertProtocol(
    _ClientCertificateMixin, _WriteTimeoutMixin, WebSocketsSansIOProtocol
):
    """uvicorn's websockets (sans-I/O) protocol, passing the client certificate to the app.

    A message may hold at most MAX_MESSAGE_BYTES once unpacked (permessage-deflate stays
    on; the websockets library stops inflating at the limit), whatever uvicorn's
    `ws_max_size` says: larger ones close the socket with 1009 before any of it is parsed.
    A peer that reads nothing sent to it for WRITE_TIMEOUT_SECONDS is disconnected.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn.max_message_size = MAX_MESSAGE_BYTES


def server_ssl_context(network: NetworkConfig) -> ssl.SSLContext:
    """TLS 1.2 or newer; clients must present a certificate from an organisation CA.

    Behind a proxy (client_cert_header set) a certificate is optional at the TLS
    layer, since the proxy may not present one; the header then carries it.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(network.server.cert, network.server.key)
    context.load_verify_locations(cadata="".join(org.ca.read_text() for org in network.orgs))
    context.verify_mode = (
        ssl.CERT_OPTIONAL if network.server.client_cert_header else ssl.CERT_REQUIRED
    )
    return context


@dataclass(frozen=True)
class ProxySettings:
    """Which header carries the client certificate, and from which peers it is believed."""

    header: str
    trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    @classmethod
    def from_network(cls, network: NetworkConfig) -> ProxySettings:
        return cls.create(network.server.client_cert_header, network.server.trusted_proxies)

    @classmethod
    def create(cls, header: str, trusted: Sequence[str]) -> ProxySettings:
        return cls(
            header.lower(),
            tuple(ipaddress.ip_network(entry, strict=False) for entry in trusted),
        )

    def trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)


def client_certificate_der(scope: Scope, proxy: ProxySettings | None = None) -> bytes | None:
    """The caller's certificate (DER) from the TLS connection or a trusted proxy's header."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    if chain:
        return _der_of(chain[0])
    if proxy is None or not proxy.header:
        return None
    header_value = _header(scope, proxy.header)
    if header_value is None:
        return None
    peer = (scope.get("client") or ("", 0))[0]
    if not proxy.trusts(peer):
        log.warning(
            "Ignored a %s header from %s, which is not a trusted proxy.", proxy.header, peer
        )
        return None
    pem = _pem_from_header(header_value)
    if pem is None:
        return None
    try:
        return ssl.PEM_cert_to_DER_cert(pem)
    except ValueError:
        return None


# Each connection passes the same PEM string to every request; decode it once.
_der_of = functools.lru_cache(maxsize=4_096)(ssl.PEM_cert_to_DER_cert)


def _header(scope: Scope, name: str) -> str | None:
    wanted = name.encode("latin-1")
    for key, value in scope.get("headers") or []:
        if key.lower() == wanted:
            return str(value.decode("latin-1"))
    return None


def _pem_from_header(value: str) -> str | None:
    """nginx: the URL-encoded PEM; Envoy XFCC: the last element's Cert="..." field."""
    value = value.strip()
    if "Cert=" in value or "cert=" in value:
        element = _split_outside_quotes(value, ",")[-1]
        for pair in _split_outside_quotes(element, ";"):
            key, _, raw = pair.partition("=")
            if key.strip().lower() == "cert":
                return unquote(raw.strip().strip('"'))
        return None
    pem = unquote(value)
    return pem if "-----BEGIN CERTIFICATE-----" in pem else None


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


class CallerIdentifier:
    """The Identity behind an ASGI scope: certificate from TLS or proxy, then full verification."""

    def __init__(self, verifier: IdentityVerifier, proxy: ProxySettings | None = None) -> None:
        self.verifier = verifier
        self.proxy = proxy

    def identify(self, scope: Scope) -> Identity:
        """Raises Unauthenticated when there is no certificate or it is not acceptable."""
        der = client_certificate_der(scope, self.proxy)
        if der is None:
            raise Unauthenticated("No client certificate was presented.")
        return self.verifier.identify(der)
