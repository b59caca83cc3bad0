"""Who is calling: the client certificate of an ASGI scope, verified into an Identity.

The certificate comes from the TLS connection (`authz.client_cert_protocols` puts it in
the scope) or, when none was presented there, from a trusted proxy's header
(`authz.proxy_headers`). Either way `IdentityVerifier` checks it before anything in it is
believed.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import MutableMapping
from typing import Any

from domain.errors import UnauthenticatedError

from .identity import Identity, IdentityVerifier
from .proxy_headers import ProxySettings, proxied_certificate_der

Scope = MutableMapping[str, Any]


def client_certificate_der(scope: Scope, proxy: ProxySettings | None = None) -> bytes | None:
    """The caller's certificate (DER) from the TLS connection or a trusted proxy's header."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    if chain:
        return _der_of(chain[0])
    if proxy is None:
        return None
    return proxied_certificate_der(scope, proxy)


# Each connection passes the same PEM string to every request; decode it once.
_der_of = functools.lru_cache(maxsize=4_096)(ssl.PEM_cert_to_DER_cert)


class CallerIdentifier:
    """The Identity behind an ASGI scope: certificate from TLS or proxy, then full verification."""

    def __init__(self, verifier: IdentityVerifier, proxy: ProxySettings | None = None) -> None:
        self.verifier = verifier
        self.proxy = proxy

    def identify(self, scope: Scope) -> Identity:
        """Raises UnauthenticatedError when there is no certificate or it is not acceptable."""
        der = client_certificate_der(scope, self.proxy)
        if der is None:
            raise UnauthenticatedError("No client certificate was presented.")
        return self.verifier.identify(der)
