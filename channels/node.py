"""The Lightning node: the daemon shell with the channel layer attached."""

from __future__ import annotations

import logging
from typing import Any

import trio

from .daemon import LightningDaemon
from .manager import ChannelManager
from .peer import PeerLinkError
from .state import ChannelState
from .store import ChannelStore

__all__ = ["ChannelNode"]

log = logging.getLogger("canal.channeld")

_PENDING = {ChannelState.WAIT_FOR_FUNDING_CREATED, ChannelState.WAIT_FOR_FUNDING_SIGNED,
            ChannelState.AWAITING_CHANNEL_READY}


class ChannelNode(LightningDaemon):
    """A `LightningDaemon` that runs payment channels with its peers."""

    channels: ChannelManager
    #: ``max_accepted_htlcs`` we offer in new channels (``--default-remote-max-htlcs``).
    max_accepted_htlcs: int = 30

    def setup(self) -> None:
        self.channel_store = ChannelStore(self.datadir / "channels.sqlite")
        self.channels = ChannelManager(self, self.channel_store, bytes.fromhex(self.wallet.seed_hex()))
        self.channels.max_accepted_htlcs = self.max_accepted_htlcs
        self.channels.load()
        self.message_handlers.append(self.channels.peer_message)
        self.peer_handlers.append(self.channels.peer_changed)
        self.peer_handlers.append(self._reconnect_if_channels)
        self.block_handlers.append(self.channels.block_changed)

    def servicer_class(self) -> type[Any]:
        from .channel_service import BackupLightningServicer

        return BackupLightningServicer

    async def started(self) -> None:
        """Reconnect to every peer we have an open channel with, as lnd does, until it answers."""
        await self.channels.resume()  # blocks missed before a restart; restored on-chain monitors
        known = self.channel_store.peers()
        wanted = {mc.peer for mc in self.channels.channels.values()
                  if mc.channel.state not in (ChannelState.ABANDONED, ChannelState.FAILED)}
        async with trio.open_nursery() as nursery:
            for peer in wanted:
                address = known.get(peer)
                if address is not None:
                    nursery.start_soon(self._keep_connected, peer.hex(), address)

    def _reconnect_if_channels(self, peer: Any, connected: bool) -> None:
        """A peer we have channels with went away: dial it again (with backoff), as lnd does."""
        if connected:
            return
        key = peer.link.remote_node_id.to_bytes()
        address = self.channel_store.peers().get(key)
        live = [mc for mc in self.channels.for_peer(key)
                if mc.channel.state not in (ChannelState.ABANDONED, ChannelState.FAILED)]
        if address is not None and live:
            self.spawn(self._keep_connected, key.hex(), address)

    async def _keep_connected(self, pubkey_hex: str, address: str) -> None:
        host, _, port = address.rpartition(":")
        delay = 0.5
        await trio.sleep(delay)
        for _ in range(60):
            if pubkey_hex in self.peers:
                return
            try:
                await self.connect_peer(pubkey_hex, host, int(port))
                return
            except (PeerLinkError, OSError, trio.TooSlowError) as e:
                log.debug("reconnect to %s failed: %s", pubkey_hex, e)
            await trio.sleep(delay)
            delay = min(delay * 2, 10)

    def channel_counts(self) -> tuple[int, int, int]:
        """(pending, active, inactive) channels, for GetInfo."""
        pending = active = inactive = 0
        for mc in self.channels.channels.values():
            state = mc.channel.state
            if state in _PENDING:
                pending += 1
            elif state is ChannelState.NORMAL:
                if mc.peer.hex() in self.peers:
                    active += 1
                else:
                    inactive += 1
        return pending, active, inactive
