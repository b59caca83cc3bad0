"""The server's TLS context: TLS 1.2 or newer, clients verified against the organisation CAs."""

from __future__ import annotations

import ssl

from .network import NetworkConfig


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
