"""The client certificate as a TLS-terminating proxy passes it, in a header, from trusted peers.

The header may hold nginx's URL-encoded PEM (`$ssl_client_escaped_cert`) or Envoy's
`x-forwarded-client-cert`, whose last element's `Cert="..."` is taken. It is believed only
when the TCP peer is one of the trusted proxies; from anyone else it is ignored and logged.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from .network import NetworkConfig

log = logging.getLogger("healthledger.proxy")

Scope = MutableMapping[str, Any]


@dataclass(frozen=True)
class ProxySettings:
    """Which header carries the client certificate, and from which peers it is believed."""

    header: str
    trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    @classmethod
    def from_network(cls, network: NetworkConfig) -> ProxySettings:
        server = network.server
        return cls(
            server.client_cert_header.lower(),
            tuple(ipaddress.ip_network(entry, strict=False) for entry in server.trusted_proxies),
        )

    def trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)


def proxied_certificate_der(scope: Scope, proxy: ProxySettings) -> bytes | None:
    """The certificate (DER) in the proxy's header, if a trusted proxy sent a readable one."""
    if not proxy.header:
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
