"""The forwarding policy of this node's channels: what the forwarder enforces and our channel_updates announce.

Every channel starts with lnd's defaults (1 sat base, 1 ppm, 80 blocks, 1 msat
minimum, the capacity as maximum). ``UpdateChannelPolicy`` changes them for all
channels (the default for new ones too) or for one channel point; a
:class:`PolicyBook` holds the result, and :mod:`htlc.graph_store` keeps it on
disk. The forwarder (:func:`outgoing_channels`), FeeReport and our
``channel_update`` messages all read the same book.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from channels.manager import ManagedChannel
from channels.state import ChannelState

from .forwarding import ChannelPolicy, OutgoingChannel
from .graph import ChannelGraph
from .invoice import RouteHintHop

__all__ = [
    "DEFAULT_CLTV_EXPIRY_DELTA",
    "DEFAULT_FEE_BASE_MSAT",
    "DEFAULT_FEE_PPM",
    "MIN_CLTV_EXPIRY_DELTA",
    "ForwardingPolicy",
    "PolicyBook",
    "PolicyError",
    "channel_point_of",
    "default_policy",
    "outgoing_channels",
    "replace_fields",
    "route_hints_to_us",
]

DEFAULT_FEE_BASE_MSAT = 1000
DEFAULT_FEE_PPM = 1
DEFAULT_CLTV_EXPIRY_DELTA = 80
MIN_CLTV_EXPIRY_DELTA = 18
"""lnd refuses a smaller time_lock_delta ("time lock delta of N is too small, minimum supported is 18")."""


class PolicyError(ValueError):
    """A policy update lnd would refuse (the message says why)."""


@dataclass(frozen=True)
class ForwardingPolicy:
    """Our policy for one channel; ``max_htlc_msat`` None means the channel's capacity."""

    fee_base_msat: int = DEFAULT_FEE_BASE_MSAT
    fee_rate_ppm: int = DEFAULT_FEE_PPM
    time_lock_delta: int = DEFAULT_CLTV_EXPIRY_DELTA
    min_htlc_msat: int = 1
    max_htlc_msat: int | None = None

    def check(self) -> None:
        if not 0 <= self.fee_base_msat < 1 << 32:
            raise PolicyError(f"base fee {self.fee_base_msat} msat is out of range")
        if not 0 <= self.fee_rate_ppm < 1 << 32:
            raise PolicyError(f"fee rate {self.fee_rate_ppm} ppm is out of range")
        if self.time_lock_delta < MIN_CLTV_EXPIRY_DELTA or self.time_lock_delta >= 1 << 16:
            raise PolicyError(f"time lock delta of {self.time_lock_delta} is too small, minimum supported is "
                              f"{MIN_CLTV_EXPIRY_DELTA}" if self.time_lock_delta < MIN_CLTV_EXPIRY_DELTA
                              else f"time lock delta of {self.time_lock_delta} is too large")
        # graph.sqlite keeps them as signed 64-bit integers (far above any amount of bitcoin in msat)
        if not 0 <= self.min_htlc_msat < 1 << 63:
            raise PolicyError(f"min_htlc_msat {self.min_htlc_msat} is out of range")
        if self.max_htlc_msat is not None and self.max_htlc_msat >= 1 << 63:
            raise PolicyError(f"max_htlc_msat {self.max_htlc_msat} is out of range")
        if self.max_htlc_msat is not None and not self.min_htlc_msat <= self.max_htlc_msat:
            raise PolicyError(f"max_htlc_msat {self.max_htlc_msat} is below min_htlc_msat {self.min_htlc_msat}")

    def for_capacity(self, capacity_sat: int) -> ChannelPolicy:
        """The forwarder's view for a channel of ``capacity_sat`` (the maximum is capped at the capacity)."""
        cap = capacity_sat * 1000
        maximum = cap if self.max_htlc_msat is None else min(self.max_htlc_msat, cap)
        return ChannelPolicy(self.fee_base_msat, self.fee_rate_ppm, self.time_lock_delta,
                             min(self.min_htlc_msat, maximum), maximum)

    def to_row(self) -> tuple[int, int, int, int, int | None]:
        return (self.fee_base_msat, self.fee_rate_ppm, self.time_lock_delta, self.min_htlc_msat, self.max_htlc_msat)


class PolicyBook:
    """The default policy and per-channel ones (keyed by channel point ``txid:index``)."""

    def __init__(self, default: ForwardingPolicy | None = None,
                 channels: dict[str, ForwardingPolicy] | None = None) -> None:
        self.default = default or ForwardingPolicy()
        self.channels: dict[str, ForwardingPolicy] = dict(channels or {})

    def policy(self, channel_point: str) -> ForwardingPolicy:
        return self.channels.get(channel_point, self.default)

    def update(self, channel_points: list[str], change: Callable[[ForwardingPolicy], ForwardingPolicy],
               everything: bool = False) -> dict[str, ForwardingPolicy]:
        """Apply ``change`` to each named channel (and to the default when ``everything``); returns the changed.

        Every new policy is checked before any is stored (:class:`PolicyError`), so a refused update changes nothing.
        """
        new = {cp: change(self.policy(cp)) for cp in channel_points}
        default = change(self.default) if everything else None
        for p in [*new.values(), *([default] if default else [])]:
            p.check()
        if default is not None:
            self.default = default
        self.channels.update(new)
        return new


def default_policy(capacity_sat: int) -> ChannelPolicy:
    return ForwardingPolicy().for_capacity(capacity_sat)


def channel_point_of(mc: ManagedChannel) -> str:
    c = mc.channel.commitments
    if c is None:
        return ""
    op = c.params.funding_outpoint
    return f"{op.txid[::-1].hex()}:{op.index}"


def _usable(mc: ManagedChannel) -> bool:
    return mc.channel.state is ChannelState.NORMAL and mc.channel.commitments is not None and bool(
        mc.channel.short_channel_id)


def outgoing_channels(channels: list[ManagedChannel], online: set[str], policies: PolicyBook | None = None,
                      channel_update: Callable[[int], bytes] | None = None) -> list[OutgoingChannel]:
    """Our channels as the forwarder sees them: policy, liveness, what we can still send, our channel_update.

    What a channel can take is the channel's own check (``Commitments.add_refusal``, the one ``send_add``
    applies: reserve, commitment fee with the new HTLC and the fee spike buffer, anchors, the peer's
    ``max_accepted_htlcs`` and ``max_htlc_value_in_flight_msat``, dust exposure), so the forwarder refuses
    up front with ``temporary_channel_failure`` what the channel would refuse. A channel shutting down is
    inactive (it takes no new HTLC), as is one whose link is not re-established.
    """
    book = policies or PolicyBook()
    out = []
    for mc in channels:
        if not _usable(mc):
            continue
        ch = mc.channel
        c = ch.commitments
        assert c is not None and ch.short_channel_id is not None
        scid = ch.short_channel_id
        closing = ch.local_shutdown_script is not None or ch.remote_shutdown_script is not None
        linked = ch.connected and not ch.awaiting_reestablish  # else Channel.add_htlc refuses
        out.append(OutgoingChannel(
            short_channel_id=scid, channel_id=mc.channel_id, node_id=mc.peer,
            is_active=mc.peer.hex() in online and linked and not closing, available_msat=c.sendable_msat(),
            policy=book.policy(channel_point_of(mc)).for_capacity(c.params.funding_sat),
            channel_update=b"" if channel_update is None else channel_update(scid),
            add_refusal=c.add_refusal,
        ))
    return out


def route_hints_to_us(channels: list[ManagedChannel],
                      graph: ChannelGraph | None = None) -> tuple[tuple[RouteHintHop, ...], ...]:
    """One single-hop hint per usable channel: the peer's channel to us, with the peer's policy.

    The policy is the one the peer announced (its channel_update, in ``graph``) when we have it,
    else lnd's defaults (what a Canal peer that never changed its policy charges).
    """
    hints = []
    for mc in channels:
        if not _usable(mc):
            continue
        scid = mc.channel.short_channel_id or 0
        known = None if graph is None else graph.policy(scid, mc.peer)
        if known is None:
            hop = RouteHintHop(mc.peer, scid, DEFAULT_FEE_BASE_MSAT, DEFAULT_FEE_PPM, DEFAULT_CLTV_EXPIRY_DELTA)
        else:
            hop = RouteHintHop(mc.peer, scid, known.fee_base_msat, known.fee_proportional_millionths,
                               known.cltv_expiry_delta)
        hints.append((hop,))
    return tuple(hints)


def replace_fields(policy: ForwardingPolicy, **fields: int | None) -> ForwardingPolicy:
    """``policy`` with the given fields replaced (None values are left unchanged)."""
    return replace(policy, **{k: v for k, v in fields.items() if v is not None})
