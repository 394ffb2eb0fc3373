"""The payment lifecycle, sans-IO: from an intent to the attempts to make, their outcomes, and the end.

lnd's payment loop (``routing/payment_lifecycle.go``) as a plain object. A
:class:`PaymentLifecycle` is given the intent (amount, destination, hash and
secret, final CLTV delta, route hints, limits) and, at every step, what the
payer knows *now*: the time, the block height and its own channels
(:class:`~htlc.pathfind.FirstHop`, exact balances). It reads the public graph
(:class:`~htlc.graph.ChannelGraph`) and a :class:`~htlc.scoring.Scorer`:

* :meth:`PaymentLifecycle.step` returns the :class:`Shard` s to launch now (one
  route, or several MPP parts whose amounts sum to what is not yet in
  flight; every part's final payload carries ``payment_secret`` and the total),
  or a :class:`Finished` once the payment is decided, or nothing (wait);
* :meth:`~PaymentLifecycle.shard_succeeded` (the preimage) ends the payment;
* :meth:`~PaymentLifecycle.shard_failed` takes the erring hop (lnd's
  ``failure_source_index``: 0 is us, 1 the first hop), the BOLT 4 code and the
  ``channel_update`` the failure carried, if any. The scorer learns from it,
  the update is applied to the graph, and the failure is classified as lnd
  does: an error from the recipient is final (INCORRECT_PAYMENT_DETAILS, or
  ERROR for a wrong amount / CLTV; ``mpp_timeout`` is retried); a channel
  failure excludes that channel direction for the rest of this payment, a
  node failure (NODE or BADONION flags, or an unreadable error onion) that
  node; then the next step tries another route or a finer split.

The payment ends FAILED with lnd's reasons: TIMEOUT when the deadline passed
with nothing in flight; NO_ROUTE when no route is left within the fee and
CLTV limits; INSUFFICIENT_BALANCE when our channels together cannot send the
amount; INCORRECT_PAYMENT_DETAILS / ERROR from the recipient. A failed
attempt never ends the payment while other shards are in flight: it ends
once they resolve. No clock is read: ``now`` (seconds) is an argument.

A payment under way when the payer stopped is rebuilt by
:meth:`PaymentLifecycle.resume` from its stored intent
(:meth:`PaymentIntent.to_json`) and attempts: the shards in flight count again,
failures are replayed, the deadline is the original one. A self-payment
(``allow_self_payment``, lnd's circular rebalancing) leaves by one of our
channels and comes back by another, never the same one.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .failure import BADONION, NODE, PERM, FailureCode
from .graph import ChannelGraph, channel_direction
from .invoice import RouteHintHop
from .onion import HopPayload, HopPayloadType
from .pathfind import DEFAULT_MAX_CLTV, FirstHop, NoRouteError, Route, RouteHop, find_route, split_payment
from .payments import UNREADABLE_FAILURE, Attempt, AttemptStatus, FailureReason
from .payments import Route as StoredRoute
from .scoring import Scorer

__all__ = [
    "BLOCK_PADDING",
    "DEFAULT_FINAL_CLTV_DELTA",
    "DEFAULT_MAX_PARTS",
    "DEFAULT_TIMEOUT_S",
    "KEYSEND_RECORD",
    "ChannelPolicyUpdate",
    "Finished",
    "PaymentIntent",
    "PaymentLifecycle",
    "Shard",
    "last_hop_exclusions",
    "route_of",
]

KEYSEND_RECORD = int(HopPayloadType.KEYSEND_PREIMAGE)
"""lnd's keysend custom record (5482373484): the preimage, chosen by the payer."""
BLOCK_PADDING = 3
"""Blocks added to the final CLTV (lnd's ``BlockPadding``)."""
DEFAULT_FINAL_CLTV_DELTA = 80
"""The final CLTV delta of a payment without an invoice (keysend), as lnd's router defaults it."""
DEFAULT_TIMEOUT_S = 60.0
"""lnd's payment timeout when ``timeout_seconds`` is 0."""
DEFAULT_MAX_PARTS = 16
"""lnd's ``DefaultMaxParts``."""
MIN_SHARD_MSAT = 10_000_000
"""The smallest MPP part looked for (lnd's 10,000 sat minimum shard), unless the amount is smaller."""


@dataclass(frozen=True)
class PaymentIntent:
    """What to pay: ``payment_secret`` for an invoice, ``keysend_preimage`` for a spontaneous payment.

    ``fee_limit_msat`` None: no limit. ``max_parts`` 1: no MPP (always 1 without a payment secret).
    """

    destination: bytes
    amount_msat: int
    payment_hash: bytes
    final_cltv_delta: int = DEFAULT_FINAL_CLTV_DELTA
    payment_secret: bytes | None = None
    keysend_preimage: bytes | None = None
    payment_request: str = ""
    custom_records: tuple[tuple[int, bytes], ...] = ()
    outgoing_chan_ids: tuple[int, ...] = ()
    cltv_limit: int = 0
    #: The invoice's route hints (BOLT 11 `r`): the last hops to reach a payee behind private channels.
    route_hints: tuple[tuple[RouteHintHop, ...], ...] = ()
    fee_limit_msat: int | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_parts: int = DEFAULT_MAX_PARTS
    last_hop: bytes | None = None
    #: lnd's max_shard_size_msat: the largest part when splitting (0: no limit).
    max_shard_msat: int = 0
    #: lnd's allow_self_payment: a payment to ourselves goes out one channel and back in through another.
    allow_self_payment: bool = False

    def to_json(self) -> str:
        """The intent as stored with its payment, so that a restarted payer can go on with it."""
        d: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "route_hints":
                v = [[[h.pubkey.hex(), h.short_channel_id, h.fee_base_msat, h.fee_proportional_millionths,
                       h.cltv_expiry_delta] for h in hint] for hint in v]
            elif f.name == "custom_records":
                v = [[t, r.hex()] for t, r in v]
            elif isinstance(v, bytes):
                v = v.hex()
            elif isinstance(v, tuple):
                v = list(v)
            d[f.name] = v
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> PaymentIntent:
        """The stored intent (fields a newer version added and this one lacks get their defaults)."""
        d = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        for name in ("destination", "payment_hash", "payment_secret", "keysend_preimage", "last_hop"):
            if d.get(name) is not None:
                d[name] = bytes.fromhex(d[name])
        d["route_hints"] = tuple(tuple(RouteHintHop(bytes.fromhex(h[0]), *h[1:]) for h in hint)
                                 for hint in d.get("route_hints", ()))
        d["custom_records"] = tuple((int(t), bytes.fromhex(r)) for t, r in d.get("custom_records", ()))
        d["outgoing_chan_ids"] = tuple(d.get("outgoing_chan_ids", ()))
        return cls(**d)

    def final_records(self) -> tuple[tuple[int, bytes], ...]:
        """The custom records of the final payload (the keysend preimage among them)."""
        records = self.custom_records
        if self.keysend_preimage is not None:
            records = tuple(sorted(records + ((KEYSEND_RECORD, self.keysend_preimage),)))
        return records


@dataclass(frozen=True)
class ChannelPolicyUpdate:
    """The policy a failure's ``channel_update`` carried (already checked by the caller), for the graph."""

    short_channel_id: int
    direction: int
    timestamp: int
    fee_base_msat: int
    fee_proportional_millionths: int
    cltv_expiry_delta: int
    htlc_minimum_msat: int
    htlc_maximum_msat: int
    disabled: bool


@dataclass(frozen=True)
class Shard:
    """One attempt to launch: the route (payer first) and every hop's onion payload."""

    shard_id: int
    route: Route
    payloads: tuple[HopPayload, ...]
    total_msat: int

    @property
    def first_hop(self) -> int:
        return self.route.hops[0].short_channel_id


@dataclass(frozen=True)
class Finished:
    """The payment is decided: ``reason`` NONE means SUCCEEDED (``preimage`` set)."""

    reason: FailureReason
    message: str
    preimage: bytes | None = None


@dataclass
class _State:
    in_flight: dict[int, Shard] = field(default_factory=dict)
    excluded: set[int | tuple[int, int] | bytes] = field(default_factory=set)
    preimage: bytes | None = None
    terminal: tuple[FailureReason, str] | None = None
    last_error: str = ""
    attempts: int = 0
    next_id: int = 1


def last_hop_exclusions(graph: ChannelGraph, destination: bytes, last_hop: bytes | None) -> set[tuple[int, int]]:
    """The channel directions into ``destination`` that do not come from ``last_hop`` (none without one)."""
    if last_hop is None:
        return set()
    return {(p.short_channel_id, p.direction) for p in graph.incoming(destination) if p.source != last_hop}


def route_of(source: bytes, stored: StoredRoute) -> Route:
    """A stored attempt's route (lnd's ``Route``) as the route search gives it."""
    hops = []
    cltv = stored.total_time_lock
    for h in stored.hops:
        hops.append(RouteHop(
            node_id=h.pubkey, short_channel_id=h.short_channel_id, amount_msat=h.amt_to_forward_msat + h.fee_msat,
            cltv_expiry=cltv, amount_to_forward=h.amt_to_forward_msat, outgoing_cltv_value=h.expiry,
            capacity_sat=h.chan_capacity_sat))
        cltv = h.expiry
    return Route(source, tuple(hops))


class PaymentLifecycle:
    """One payment's decisions (see the module docstring)."""

    def __init__(self, intent: PaymentIntent, source: bytes, graph: ChannelGraph, scorer: Scorer,
                 start_time: float) -> None:
        if intent.amount_msat <= 0:
            raise ValueError("amount must be positive")
        self.intent = intent
        self.source = source
        self.graph = graph
        self.scorer = scorer
        self.deadline = start_time + (intent.timeout_s or DEFAULT_TIMEOUT_S)
        self.s = _State()
        self.s.excluded.update(last_hop_exclusions(graph, intent.destination, intent.last_hop))

    @classmethod
    def resume(cls, intent: PaymentIntent, source: bytes, graph: ChannelGraph, scorer: Scorer, start_time: float,
               attempts: Sequence[Attempt],
               channel_update: Callable[[Attempt], ChannelPolicyUpdate | None] | None = None,
               ) -> tuple[PaymentLifecycle, dict[int, int]]:
        """A payment under way when the payer stopped, rebuilt from its stored attempts (lnd resumes them too).

        ``start_time`` is the payment's original start: the deadline stays where it was. An attempt in
        flight is a shard in flight again (its amount counts: nothing is paid twice); a settled one
        brings the preimage; a failed one is replayed (its exclusions; the scorer learns it again, at
        the time it failed). An attempt the payer itself failed at start because its HTLC never reached
        the channel (an unreadable failure from us) excludes nothing. ``channel_update`` gives the
        checked policy a failed attempt's ``channel_update`` carried (as for a live failure). Returns the lifecycle and the
        shard id of every attempt in flight (by attempt id).
        """
        lc = cls(intent, source, graph, scorer, start_time)
        s = lc.s
        in_flight: dict[int, int] = {}
        for a in attempts:
            route = route_of(source, a.route)
            shard = Shard(s.next_id, route, lc._payloads(route), intent.amount_msat)
            s.next_id += 1
            s.attempts += 1
            if a.status is AttemptStatus.IN_FLIGHT:
                s.in_flight[shard.shard_id] = shard
                in_flight[a.attempt_id] = shard.shard_id
            elif a.status is AttemptStatus.SUCCEEDED:
                s.preimage = a.preimage if a.preimage is not None else s.preimage
            elif a.failure is None or (a.failure.code == UNREADABLE_FAILURE and a.failure.source_index == 0):
                s.last_error = a.failure.message if a.failure is not None else "attempt failed"
            else:
                s.in_flight[shard.shard_id] = shard
                f = a.failure
                update = None if channel_update is None else channel_update(a)
                lc.shard_failed(shard.shard_id, f.source_index, f.code, a.resolve_time_ns / 1e9, update, f.message)
        return lc, in_flight

    # --- what is known --------------------------------------------------------------------------------

    @property
    def in_flight_msat(self) -> int:
        return sum(sh.route.amount_msat for sh in self.s.in_flight.values())

    @property
    def in_flight_fees_msat(self) -> int:
        return sum(sh.route.total_fee_msat for sh in self.s.in_flight.values())

    @property
    def max_parts(self) -> int:
        return max(1, self.intent.max_parts) if self.intent.payment_secret is not None else 1

    # --- the next step ----------------------------------------------------------------------------------

    def step(self, now: float, height: int,
             first_hops: Sequence[FirstHop] | Callable[[], Sequence[FirstHop]]) -> list[Shard] | Finished | None:
        """Shards to launch, the end of the payment, or None (wait for the shards in flight).

        ``first_hops``: our channels now, or a function giving them (called only if a route is needed).
        """
        s, intent = self.s, self.intent
        if s.preimage is not None:
            return Finished(FailureReason.NONE, "succeeded", s.preimage)
        if s.terminal is not None:
            return None if s.in_flight else Finished(*s.terminal)
        remaining = intent.amount_msat - self.in_flight_msat
        if remaining <= 0:
            return None
        if now >= self.deadline:
            if s.in_flight:
                return None
            return Finished(FailureReason.TIMEOUT, "payment timed out" + (
                f" (last error: {s.last_error})" if s.last_error else ""))
        parts_left = self.max_parts - len(s.in_flight)
        if callable(first_hops):
            first_hops = first_hops()
        hops = [fh for fh in first_hops if not intent.outgoing_chan_ids
                or fh.short_channel_id in intent.outgoing_chan_ids]
        usable = [fh for fh in hops if fh.short_channel_id not in s.excluded]
        if sum(fh.spendable_msat for fh in usable) < remaining:
            reason = FailureReason.INSUFFICIENT_BALANCE if s.attempts == 0 else FailureReason.NO_ROUTE
            return self._give_up(reason, f"insufficient local balance: can send "
                                 f"{sum(fh.spendable_msat for fh in usable)} of {remaining} msat")
        if parts_left <= 0:
            return None
        fee_limit = None if intent.fee_limit_msat is None else intent.fee_limit_msat - self.in_flight_fees_msat
        final_delta = intent.final_cltv_delta + BLOCK_PADDING
        try:
            if intent.allow_self_payment and intent.destination == self.source:
                routes = [self._circular_route(remaining, fee_limit, final_delta, now, height, usable)]
            else:
                routes = split_payment(
                    self.graph, self.source, intent.destination, remaining, max_parts=parts_left,
                    min_part_msat=min(MIN_SHARD_MSAT, remaining, intent.max_shard_msat or remaining),
                    max_part_msat=intent.max_shard_msat or None, final_cltv_delta=final_delta,
                    max_fee_msat=fee_limit, max_cltv=intent.cltv_limit or DEFAULT_MAX_CLTV,
                    route_hints=intent.route_hints, scorer=self.scorer, excluded=s.excluded, now=now,
                    current_height=height, first_hops=usable)
        except NoRouteError as e:
            why = e.reason if not s.last_error else f"{e.reason}; last error: {s.last_error}"
            return self._give_up(FailureReason.NO_ROUTE, why)
        shards = []
        for route in routes:
            shard = Shard(s.next_id, route, self._payloads(route), intent.amount_msat)
            s.next_id += 1
            s.in_flight[shard.shard_id] = shard
            s.attempts += 1
            shards.append(shard)
        return shards

    def _circular_route(self, amount_msat: int, fee_limit: int | None, final_delta: int, now: float, height: int,
                        first_hops: Sequence[FirstHop]) -> Route:
        """A self-payment's route (one part): out over one of our channels, back in over another.

        As lnd, the channel a route leaves by is never the one it comes back by. For every first hop,
        the cheapest path from that peer back to us (that channel excluded) is found in the graph,
        and the peer's fee and CLTV delta for forwarding onto it are added; the cheapest whole route wins.
        """
        intent, s = self.intent, self.s
        max_cltv = intent.cltv_limit or DEFAULT_MAX_CLTV
        best: Route | None = None
        why = NoRouteError("no_path", "no circular route back to ourselves")
        for fh in first_hops:
            if fh.peer in s.excluded:
                continue
            try:
                back = find_route(
                    self.graph, fh.peer, self.source, amount_msat, final_cltv_delta=final_delta,
                    max_fee_msat=fee_limit, max_cltv=max_cltv, route_hints=intent.route_hints, scorer=self.scorer,
                    excluded={*s.excluded, fh.short_channel_id}, now=now, current_height=height)
            except NoRouteError as e:
                why = e
                continue
            nxt = back.hops[0]
            policy = next((p for p in self.graph.policies(nxt.short_channel_id) if p.source == fh.peer), None)
            if policy is None or policy.disabled:
                continue
            first = RouteHop(
                node_id=fh.peer, short_channel_id=fh.short_channel_id,
                amount_msat=nxt.amount_msat + policy.fee_msat(nxt.amount_msat),
                cltv_expiry=nxt.cltv_expiry + policy.cltv_expiry_delta, amount_to_forward=nxt.amount_msat,
                outgoing_cltv_value=nxt.cltv_expiry, capacity_sat=fh.capacity_msat // 1000)
            route = Route(self.source, (first, *back.hops), back.probability)
            if first.amount_msat > fh.spendable_msat or not policy.htlc_minimum_msat <= nxt.amount_msat <= \
                    policy.htlc_maximum_msat:
                why = NoRouteError("no_path", f"channel {fh.short_channel_id} cannot carry the circular route")
                continue
            if fee_limit is not None and route.total_fee_msat > fee_limit:
                why = NoRouteError("no_path", f"the circular route's fee {route.total_fee_msat} msat exceeds the "
                                   f"limit of {fee_limit} msat")
                continue
            if route.total_timelock - height > max_cltv:
                why = NoRouteError("no_path", "the circular route exceeds the CLTV limit")
                continue
            if best is None or route.total_fee_msat < best.total_fee_msat:
                best = route
        if best is None:
            raise why
        return best

    def _give_up(self, reason: FailureReason, message: str) -> Finished | None:
        if self.s.in_flight:
            return None  # the shards in flight may still succeed, or bring news
        return Finished(reason, message)

    def _payloads(self, route: Route) -> tuple[HopPayload, ...]:
        intent = self.intent
        payloads = route.onion_payloads(intent.payment_secret, intent.amount_msat)
        final = dataclasses.replace(payloads[-1], keysend_preimage=intent.keysend_preimage,
                                    custom_records=intent.custom_records)
        return (*payloads[:-1], final)

    # --- outcomes --------------------------------------------------------------------------------------

    def launch_failed(self, shard_id: int, reason: str) -> None:
        """Our own channel refused the HTLC (it never left this node): that channel is out for this payment."""
        shard = self.s.in_flight.pop(shard_id)
        self.s.excluded.add(shard.first_hop)
        self.s.last_error = f"channel {shard.first_hop} refused the HTLC: {reason}"

    def shard_succeeded(self, shard_id: int, preimage: bytes, now: float) -> None:
        shard = self.s.in_flight.pop(shard_id, None)
        if shard is not None:
            self.scorer.payment_succeeded(shard.route, now)
        self.s.preimage = preimage

    def shard_failed(self, shard_id: int, source_index: int, code: int, now: float,
                     update: ChannelPolicyUpdate | None = None, message: str = "") -> None:
        """A shard failed at hop ``source_index`` (0: us) with BOLT 4 ``code`` (UNREADABLE_FAILURE: unknown)."""
        s = self.s
        shard = s.in_flight.pop(shard_id, None)
        if shard is None:
            return
        hops = shard.route.hops
        try:
            name = FailureCode(code).bolt_name
        except ValueError:
            name = "unreadable failure" if code == UNREADABLE_FAILURE else f"failure {code:#06x}"
        where = "us" if source_index == 0 else hops[source_index - 1].node_id.hex()[:16] if source_index <= len(
            hops) else f"hop {source_index}"
        s.last_error = f"{name} at {where}" + (f": {message}" if message else "")
        erring_node = hops[source_index - 1].node_id if 0 < source_index <= len(hops) else None
        applied = update is not None and erring_node is not None and self._apply_update(update, erring_node)
        if code == UNREADABLE_FAILURE or not 0 <= source_index <= len(hops):
            for hop in hops[:-1]:  # somebody on the route garbled it: avoid its forwarding nodes for a while
                self.scorer.node_failed(hop.node_id, now)
            if len(hops) == 1:
                s.terminal = (FailureReason.ERROR, s.last_error)
            return
        if source_index == len(hops):  # the recipient
            self.scorer.payment_failed(shard.route, source_index - 1, code, now)
            if code == FailureCode.MPP_TIMEOUT:
                return
            if code == FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS:
                s.terminal = (FailureReason.INCORRECT_PAYMENT_DETAILS, s.last_error)
            else:
                s.terminal = (FailureReason.ERROR, s.last_error)
            return
        if source_index == 0:
            s.excluded.add(shard.first_hop)
            return
        self.scorer.payment_failed(shard.route, source_index - 1, code, now)
        erring = hops[source_index - 1].node_id
        nxt = hops[source_index]
        if code & NODE or code & BADONION or code == FailureCode.INVALID_ONION_PAYLOAD:
            s.excluded.add(erring)
        elif code & PERM or code == FailureCode.CHANNEL_DISABLED:
            s.excluded.add(nxt.short_channel_id)
        elif not applied or code == FailureCode.TEMPORARY_CHANNEL_FAILURE:
            s.excluded.add((nxt.short_channel_id, channel_direction(erring, nxt.node_id)))

    def _apply_update(self, u: ChannelPolicyUpdate, erring_node: bytes) -> bool:
        """Apply a failure's channel_update to the graph: False when it is unknown, not newer (BOLT 7), or
        for a channel direction that is not the erring node's (it signed the update: its own channels only)."""
        for policy in self.graph.policies(u.short_channel_id):
            if policy.direction == u.direction:
                if policy.source != erring_node:
                    return False
                return self.graph.update_policy(
                    u.short_channel_id, policy.source, fee_base_msat=u.fee_base_msat,
                    fee_proportional_millionths=u.fee_proportional_millionths,
                    cltv_expiry_delta=u.cltv_expiry_delta, htlc_minimum_msat=u.htlc_minimum_msat,
                    htlc_maximum_msat=u.htlc_maximum_msat, disabled=u.disabled, last_update=u.timestamp)
        return False
