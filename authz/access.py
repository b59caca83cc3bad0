"""Channel access: one check that every read and write path calls before touching a channel."""

from __future__ import annotations

from domain.errors import ForbiddenError

from .identity import Identity
from .network import ChannelConfig, NetworkConfig


class ChannelAccess:
    """Which organisations are members of which channel (from network.toml)."""

    def __init__(self, network: NetworkConfig) -> None:
        self._channels = {channel.name: channel for channel in network.channels}

    def channels_for(self, identity: Identity) -> list[ChannelConfig]:
        """The channels the caller's organisation belongs to, in configuration order."""
        return [c for c in self._channels.values() if identity.org in c.members]

    def is_member(self, identity: Identity, channel: str) -> bool:
        config = self._channels.get(channel)
        return config is not None and identity.org in config.members

    def require_member(self, identity: Identity, channel: str) -> ChannelConfig:
        """The channel if the caller's organisation is a member; else ForbiddenError.

        An unknown channel gets the same answer as a forbidden one, so a
        caller learns nothing about channels outside its reach.
        """
        config = self._channels.get(channel)
        if config is None or not self.is_member(identity, channel):
            raise ForbiddenError(f"Your organisation has no access to channel {channel!r}.")
        return config
