"""The forwarding policy of this node's channels (until `updatechanpolicy` and gossip carry real ones).

Every Canal node applies these defaults to the HTLCs it forwards, and puts them in the
route hints of its invoices, so a payer reaching us through a private channel pays
exactly what our peer will ask (lnd's defaults: 1 sat base, 1 ppm, 80 blocks).
"""

from __future__ import annotations

from channels.manager import ManagedChannel
from channels.state import ChannelState

from .forwarding import ChannelPolicy, OutgoingChannel
from .invoice import RouteHintHop

__all__ = ["DEFAULT_FEE_BASE_MSAT", "DEFAULT_FEE_PPM", "DEFAULT_CLTV_EXPIRY_DELTA", "default_policy",
           "outgoing_channels", "route_hints_to_us"]

DEFAULT_FEE_BASE_MSAT = 1000
DEFAULT_FEE_PPM = 1
DEFAULT_CLTV_EXPIRY_DELTA = 80


def default_policy(capacity_sat: int) -> ChannelPolicy:
    return ChannelPolicy(DEFAULT_FEE_BASE_MSAT, DEFAULT_FEE_PPM, DEFAULT_CLTV_EXPIRY_DELTA, 1, capacity_sat * 1000)


def _usable(mc: ManagedChannel) -> bool:
    return mc.channel.state is ChannelState.NORMAL and mc.channel.commitments is not None and bool(
        mc.channel.short_channel_id)


def outgoing_channels(channels: list[ManagedChannel], online: set[str]) -> list[OutgoingChannel]:
    """Our channels as the forwarder sees them: policy, liveness and what we can still send."""
    out = []
    for mc in channels:
        if not _usable(mc):
            continue
        c = mc.channel.commitments
        assert c is not None and mc.channel.short_channel_id is not None
        reserve_msat = c.params.remote.channel_reserve_sat * 1000
        out.append(OutgoingChannel(
            short_channel_id=mc.channel.short_channel_id, channel_id=mc.channel_id, node_id=mc.peer,
            is_active=mc.peer.hex() in online, available_msat=max(mc.channel.local_balance_msat - reserve_msat, 0),
            policy=default_policy(c.params.funding_sat),
        ))
    return out


def route_hints_to_us(channels: list[ManagedChannel]) -> tuple[tuple[RouteHintHop, ...], ...]:
    """One single-hop hint per usable channel: the peer's channel to us, with the peer's (default) policy."""
    return tuple(
        (RouteHintHop(mc.peer, mc.channel.short_channel_id or 0, DEFAULT_FEE_BASE_MSAT, DEFAULT_FEE_PPM,
                      DEFAULT_CLTV_EXPIRY_DELTA),)
        for mc in channels if _usable(mc)
    )
