"""The Lightning node: the daemon shell plus the channel layer wired to it."""

from __future__ import annotations

from .daemon import LightningDaemon

__all__ = ["ChannelNode"]


class ChannelNode(LightningDaemon):
    """A `LightningDaemon` that runs payment channels with its peers."""

    def channel_counts(self) -> tuple[int, int, int]:
        """(pending, active, inactive) channels, for GetInfo."""
        return 0, 0, 0
