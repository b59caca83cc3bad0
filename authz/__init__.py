"""Who is calling and what they may reach: the network description, its certificate
authorities, client certificates from the TLS connection or a proxy, verified identities and
channel access."""
