"""Who is calling: the network's organisations and channels, certificates and identities."""
