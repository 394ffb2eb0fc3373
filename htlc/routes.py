"""What a route search works with and returns: routes and their hops, the payer's first hops, route hints.

A `Route` lists its hops as BOLT 4 needs them: for hop `i`, `node_id` and the
`short_channel_id` that reaches it, the HTLC (`amount_msat`, `cltv_expiry`)
it receives, and its onion payload values `amount_to_forward` and
`outgoing_cltv_value` (for the recipient: the amount and the final expiry).
`Route.onion_payloads()` gives the `htlc.onion.HopPayload`s. Plain data;
`htlc.pathfind` finds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from .onion import HopPayload, PaymentData

__all__ = ["FirstHop", "NoRouteError", "Route", "RouteHintHopLike", "RouteHop"]


class RouteHintHopLike(Protocol):
    """One hop of a BOLT 11 route hint (`htlc.invoice.RouteHintHop` is one)."""

    @property
    def pubkey(self) -> bytes: ...
    @property
    def short_channel_id(self) -> int: ...
    @property
    def fee_base_msat(self) -> int: ...
    @property
    def fee_proportional_millionths(self) -> int: ...
    @property
    def cltv_expiry_delta(self) -> int: ...


@dataclass(frozen=True, slots=True)
class FirstHop:
    """One of the payer's own channels, announced or not: the only first hops a search with `first_hops` uses."""

    peer: bytes
    short_channel_id: int
    capacity_msat: int
    spendable_msat: int
    """What the channel can send now (our balance less reserve, fees and HTLCs in flight)."""


class NoRouteError(Exception):
    """No route satisfies the request. `kind` is a short tag, `reason` says why in words.

    Kinds: `same_node`, `unknown_source`, `unknown_target`, `excluded`,
    `cltv_limit`, `no_path`, `too_many_parts`. `rejected` counts the channels
    each constraint cut during the search (keys `htlc_minimum`,
    `htlc_maximum_or_capacity`, `fee_limit`, `cltv_limit`, `max_hops`).
    """

    def __init__(self, kind: str, reason: str, rejected: Mapping[str, int] | None = None) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.rejected = dict(rejected or {})


@dataclass(frozen=True, slots=True)
class RouteHop:
    """One hop: the node reached, the channel that reaches it, and its HTLC and onion payload values."""

    node_id: bytes
    short_channel_id: int
    """The channel from the previous node (or the payer) to `node_id`."""
    amount_msat: int
    """The HTLC amount `node_id` receives over `short_channel_id`."""
    cltv_expiry: int
    """That HTLC's cltv_expiry (absolute when the route was found with `current_height`)."""
    amount_to_forward: int
    """BOLT 4 `amt_to_forward` of this hop's payload (the recipient's: the amount paid)."""
    outgoing_cltv_value: int
    """BOLT 4 `outgoing_cltv_value` of this hop's payload (the recipient's: the final expiry)."""
    capacity_sat: int = 0
    """Capacity of `short_channel_id` (0: unknown, e.g. a route hint)."""

    @property
    def fee_msat(self) -> int:
        """What `node_id` keeps for forwarding (0 for the recipient)."""
        return self.amount_msat - self.amount_to_forward


@dataclass(frozen=True, slots=True)
class Route:
    """A path from `source` with the amounts and expiries of every hop."""

    source: bytes
    hops: tuple[RouteHop, ...]
    probability: float = 1.0
    """The scorer's estimate that every hop succeeds."""

    @property
    def target(self) -> bytes:
        return self.hops[-1].node_id

    @property
    def amount_msat(self) -> int:
        """What the recipient receives."""
        return self.hops[-1].amount_to_forward

    @property
    def total_amount_msat(self) -> int:
        """The amount of the HTLC the payer offers on the first channel."""
        return self.hops[0].amount_msat

    @property
    def total_fee_msat(self) -> int:
        return self.total_amount_msat - self.amount_msat

    @property
    def total_timelock(self) -> int:
        """The cltv_expiry of the HTLC the payer offers on the first channel."""
        return self.hops[0].cltv_expiry

    @property
    def node_ids(self) -> list[bytes]:
        return [h.node_id for h in self.hops]

    @property
    def short_channel_ids(self) -> list[int]:
        return [h.short_channel_id for h in self.hops]

    def onion_payloads(self, payment_secret: bytes | None = None, total_msat: int | None = None) -> list[HopPayload]:
        """The BOLT 4 TLV payload of every hop, first hop first.

        A forwarding hop gets `amt_to_forward`, `outgoing_cltv_value` and the
        `short_channel_id` of its outgoing channel; the recipient gets the
        amount and final expiry, plus `payment_data` when `payment_secret` is
        given (`total_msat` defaults to this route's amount; set it for MPP).
        """
        out = []
        for i, hop in enumerate(self.hops):
            if i + 1 < len(self.hops):
                out.append(
                    HopPayload(
                        amt_to_forward=hop.amount_to_forward,
                        outgoing_cltv_value=hop.outgoing_cltv_value,
                        short_channel_id=self.hops[i + 1].short_channel_id,
                    )
                )
            else:
                data = None
                if payment_secret is not None:
                    data = PaymentData(payment_secret, self.amount_msat if total_msat is None else total_msat)
                out.append(
                    HopPayload(
                        amt_to_forward=hop.amount_to_forward,
                        outgoing_cltv_value=hop.outgoing_cltv_value,
                        payment_data=data,
                    )
                )
        return out
