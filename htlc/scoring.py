"""How likely a channel is to carry an HTLC, learned from past payment attempts, and what that costs a route.

The model is LDK's liquidity bounds. For each channel the scorer may hold a
lower and an upper bound on the liquidity of direction 0 (the side of
node_id_1); direction 1 sees the complement (`capacity - liquidity`), so a
failure in one direction teaches something about the other. With no history
the bounds are `[0, capacity]` and the liquidity is taken as uniform between
them (the "random balance" model): the success probability of sending `a` is

    P(a) = 1                              if a <= min
         = (max - a) / (max - min)        if min < a < max
         = 0  ("considered impossible")   if a >= max

Learning (all of it takes an explicit `now`, in seconds; no clock is read):

* `channel_failed` (a `temporary_channel_failure` at that channel): the upper
  bound drops to the amount;
* `channel_forwarded` (the channel carried the HTLC, whatever happened later):
  the lower bound rises to the amount;
* `node_failed` (a failure with BOLT 4's NODE flag): every channel out of that
  node is penalised, recovering with `node_half_life_s`, like lnd's mission
  control;
* learnt bounds decay back towards `[0, capacity]`: each offset halves every
  `liquidity_half_life_s` (LDK's `liquidity_offset_half_life`).

`payment_failed` / `payment_succeeded` turn the outcome of a whole route (the
erring hop index and the BOLT 4 failure code, as `htlc.failure.decode_failure`
reports them) into those calls.

The cost of a hop is additive, so the path search minimises it exactly:

    fee + amount * cltv_expiry_delta * risk_factor_billionths / 1e9     (lnd's time-lock risk)
        + base_penalty_msat + amount * base_penalty_ppm / 1e6           (per-hop attempt cost)
        + -ln(P) * (liquidity_penalty_msat + amount * liquidity_penalty_ppm / 1e6)

`-ln P` is capped at `-ln(0.01)` (LDK's PROB_LOWER_BOUND) and an impossible
hop also pays `considered_impossible_penalty_msat`, so such a hop is only
used when no other route exists. Summing `-ln P` over a route maximises the
product of the hop probabilities.

The scorer is plain data: `to_dict` / `from_dict` give a JSON-ready form for
persistence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from .failure import BADONION, NODE, PERM, UPDATE, FailureCode

if TYPE_CHECKING:
    from .pathfind import Route

__all__ = [
    "MAX_NEG_LOG_PROBABILITY",
    "PROBABILITY_LOWER_BOUND",
    "UNKNOWN_CAPACITY_MSAT",
    "Scorer",
    "ScoringParams",
    "success_probability",
]

PROBABILITY_LOWER_BOUND = 0.01
"""Probabilities are floored here before taking the log (LDK's PROB_LOWER_BOUND)."""
MAX_NEG_LOG_PROBABILITY = -math.log(PROBABILITY_LOWER_BOUND)
UNKNOWN_CAPACITY_MSAT = 1 << 40
"""Capacity assumed for channels of unknown size (route hints): about 11 BTC."""


@dataclass(frozen=True, slots=True)
class ScoringParams:
    """What a route costs beyond its fees, and how fast learnt knowledge fades."""

    risk_factor_billionths: int = 15
    """lnd's RiskFactorBillionths: the cost of locking `amount` for `cltv_expiry_delta` blocks."""
    base_penalty_msat: int = 1_000
    """Flat cost of every hop (prefers shorter routes)."""
    base_penalty_ppm: int = 10
    """Cost of every hop proportional to the amount it carries."""
    liquidity_penalty_msat: int = 100_000
    """Cost per unit of -ln(success probability) of a hop (lnd's attempt cost is 100 sat)."""
    liquidity_penalty_ppm: int = 1_000
    """Cost per unit of -ln(success probability), proportional to the amount (lnd: 1000 ppm)."""
    considered_impossible_penalty_msat: int = 100_000_000
    """Added when a hop is believed unable to carry the amount (LDK's considered_impossible_penalty)."""
    liquidity_half_life_s: float = 6 * 3600.0
    """Learnt liquidity bounds halve their distance to [0, capacity] in this time."""
    node_half_life_s: float = 3600.0
    """A blamed node's penalty halves in this time (lnd's PenaltyHalfLife)."""

    @classmethod
    def fees_only(cls) -> ScoringParams:
        """No penalties at all: the path search then looks for the cheapest fee."""
        return cls(0, 0, 0, 0, 0, 0, liquidity_half_life_s=6 * 3600.0, node_half_life_s=3600.0)


def success_probability(amount_msat: int, min_msat: float, max_msat: float) -> float:
    """P(liquidity >= amount) for liquidity uniform in [min, max]."""
    if amount_msat <= min_msat:
        return 1.0
    if amount_msat >= max_msat:
        return 0.0
    return (max_msat - amount_msat) / (max_msat - min_msat)


@dataclass(slots=True)
class _Liquidity:
    """What is known of one channel: bounds on direction 0's liquidity, as offsets that decay."""

    capacity_msat: int
    min_offset_msat: int  # direction 0's liquidity is >= min_offset
    max_offset_msat: int  # direction 0's liquidity is <= capacity - max_offset
    updated: float

    def bounds(self, now: float, half_life_s: float) -> tuple[float, float]:
        """(min, max) of direction 0's liquidity at `now`."""
        age = now - self.updated
        decay = math.exp2(-age / half_life_s) if age > 0 and half_life_s > 0 else (1.0 if half_life_s > 0 else 0.0)
        return self.min_offset_msat * decay, self.capacity_msat - self.max_offset_msat * decay

    def settle(self, now: float, half_life_s: float) -> None:
        """Fold the decay so far into the offsets (before they change)."""
        low, high = self.bounds(now, half_life_s)
        self.min_offset_msat = int(low)
        self.max_offset_msat = int(self.capacity_msat - high)
        self.updated = max(self.updated, now)


class Scorer:
    """Success probabilities and hop penalties, learnt from payment outcomes (sans-IO: `now` is passed in)."""

    def __init__(self, params: ScoringParams | None = None) -> None:
        self.params = params or ScoringParams()
        self._channels: dict[int, _Liquidity] = {}  # short_channel_id -> knowledge
        self._nodes: dict[bytes, float] = {}  # node_id -> time of its last blamed failure

    # -- reading ---------------------------------------------------------------

    def knows_channel(self, short_channel_id: int) -> bool:
        return short_channel_id in self._channels

    def known_channels(self) -> Mapping[int, object]:
        """The short_channel_ids with history (a live read-only view, for fast membership tests)."""
        return self._channels

    def liquidity_bounds(
        self, short_channel_id: int, direction: int, capacity_msat: int, now: float
    ) -> tuple[float, float]:
        """(min, max) liquidity of one direction at `now` ([0, capacity] with no history)."""
        rec = self._channels.get(short_channel_id)
        if rec is None:
            return 0.0, float(capacity_msat or UNKNOWN_CAPACITY_MSAT)
        low, high = rec.bounds(now, self.params.liquidity_half_life_s)
        if direction == 0:
            return low, high
        return rec.capacity_msat - high, rec.capacity_msat - low

    def channel_probability(
        self, short_channel_id: int, direction: int, amount_msat: int, capacity_msat: int, now: float
    ) -> float:
        """P(the direction can carry `amount_msat` now) from the liquidity bounds."""
        low, high = self.liquidity_bounds(short_channel_id, direction, capacity_msat, now)
        return success_probability(amount_msat, low, high)

    def node_probability(self, node_id: bytes, now: float) -> float:
        """P(a node blamed for a failure forwards now): 0 when fresh, back towards 1 by half-lives."""
        failed = self._nodes.get(node_id)
        if failed is None:
            return 1.0
        age = now - failed
        if age <= 0:
            return 0.0
        return 1.0 - math.exp2(-age / self.params.node_half_life_s)

    def node_neg_log_probabilities(self, now: float) -> dict[bytes, float]:
        """-ln P of every blamed node at `now` (floored like hop probabilities; inf = impossible)."""
        out: dict[bytes, float] = {}
        for node in self._nodes:
            p = self.node_probability(node, now)
            out[node] = math.inf if p < PROBABILITY_LOWER_BOUND else -math.log(p)
        return out

    def neg_log_probability(
        self, short_channel_id: int, direction: int, amount_msat: int, capacity_msat: int, now: float
    ) -> float:
        """-ln P for the channel alone, floored at PROBABILITY_LOWER_BOUND; inf when impossible."""
        low, high = self.liquidity_bounds(short_channel_id, direction, capacity_msat, now)
        if amount_msat <= low:
            return 0.0
        if amount_msat >= high:
            return math.inf
        q = (amount_msat - low) / (high - low)  # 1 - P, computed so that no history gives a/capacity
        return -math.log1p(-q) if q < 1 - PROBABILITY_LOWER_BOUND else MAX_NEG_LOG_PROBABILITY

    def apriori_neg_log_probability(self, amount_msat: int, capacity_msat: int) -> float:
        """-ln P for a channel without history (what `neg_log_probability` gives then)."""
        cap = capacity_msat or UNKNOWN_CAPACITY_MSAT
        if amount_msat >= cap:
            return math.inf
        if amount_msat <= 0:
            return 0.0
        x = amount_msat / cap
        return -math.log1p(-x) if x < 1 - PROBABILITY_LOWER_BOUND else MAX_NEG_LOG_PROBABILITY

    def hop_cost_msat(self, fee_msat: int, amount_msat: int, cltv_expiry_delta: int, neg_log_p: float) -> float:
        """The additive cost of one hop (see the module docstring); `neg_log_p` may be inf."""
        p = self.params
        cost = (
            fee_msat
            + amount_msat * cltv_expiry_delta * p.risk_factor_billionths / 1e9
            + p.base_penalty_msat
            + amount_msat * p.base_penalty_ppm / 1e6
        )
        if neg_log_p:
            if neg_log_p == math.inf:
                neg_log_p = MAX_NEG_LOG_PROBABILITY
                cost += p.considered_impossible_penalty_msat
            cost += neg_log_p * (p.liquidity_penalty_msat + amount_msat * p.liquidity_penalty_ppm / 1e6)
        return cost

    # -- learning --------------------------------------------------------------

    def _record(self, short_channel_id: int, capacity_msat: int, now: float) -> _Liquidity:
        rec = self._channels.get(short_channel_id)
        capacity_msat = capacity_msat or UNKNOWN_CAPACITY_MSAT
        if rec is None:
            rec = self._channels[short_channel_id] = _Liquidity(capacity_msat, 0, 0, now)
        else:
            rec.settle(now, self.params.liquidity_half_life_s)
            if rec.capacity_msat != capacity_msat:  # re-announced: keep the bounds inside it
                rec.capacity_msat = capacity_msat
                rec.min_offset_msat = min(rec.min_offset_msat, capacity_msat)
                rec.max_offset_msat = min(rec.max_offset_msat, capacity_msat - rec.min_offset_msat)
        return rec

    def _set_bounds(self, rec: _Liquidity, direction: int, low: int | None, high: int | None) -> None:
        """Tighten direction `direction`'s bounds; a contradicting bound resets the other one."""
        cap = rec.capacity_msat
        if direction == 1:  # direction 1's liquidity l1 = cap - l0
            low, high = (None if high is None else cap - high), (None if low is None else cap - low)
        if high is not None:
            high = max(0, min(cap, high))
            rec.max_offset_msat = cap - high
            if rec.min_offset_msat > high:
                rec.min_offset_msat = 0
        if low is not None:
            low = max(0, min(cap, low))
            rec.min_offset_msat = low
            if cap - rec.max_offset_msat < low:
                rec.max_offset_msat = 0

    def channel_failed(
        self, short_channel_id: int, direction: int, amount_msat: int, capacity_msat: int, now: float
    ) -> None:
        """The direction could not carry `amount_msat`: its liquidity is below it."""
        rec = self._record(short_channel_id, capacity_msat, now)
        _, high = self.liquidity_bounds(short_channel_id, direction, capacity_msat, now)
        if amount_msat < high:
            self._set_bounds(rec, direction, None, amount_msat)
        rec.updated = now

    def channel_forwarded(
        self, short_channel_id: int, direction: int, amount_msat: int, capacity_msat: int, now: float
    ) -> None:
        """The direction carried `amount_msat`: its liquidity was at least that."""
        rec = self._record(short_channel_id, capacity_msat, now)
        low, _ = self.liquidity_bounds(short_channel_id, direction, capacity_msat, now)
        if amount_msat > low:
            self._set_bounds(rec, direction, amount_msat, None)
        rec.updated = now

    def node_failed(self, node_id: bytes, now: float) -> None:
        """Blame `node_id` for a failure: its outgoing channels are avoided for a while."""
        self._nodes[node_id] = max(now, self._nodes.get(node_id, now))

    def payment_succeeded(self, route: Route, now: float) -> None:
        """Every channel of the route carried its HTLC."""
        self._forwarded_upto(route, len(route.hops) - 1, now)

    def payment_failed(self, route: Route, erring_index: int | None, failure_code: int, now: float) -> None:
        """Learn from a failed attempt: the hop at `erring_index` (0 = first hop) returned `failure_code`.

        `erring_index` is the index `htlc.failure.decode_failure` returns (None
        when no hop authenticated the error: nothing is learnt then). The
        channels up to the erring node carried the HTLC; the erring node's
        outgoing channel or the node itself is blamed depending on the code.
        """
        hops = route.hops
        if erring_index is None or not 0 <= erring_index < len(hops):
            return
        self._forwarded_upto(route, erring_index, now)
        if erring_index == len(hops) - 1:
            return  # the recipient answered: the route worked
        code = failure_code
        if code & NODE or code & BADONION or code == FailureCode.INVALID_ONION_PAYLOAD:
            self.node_failed(hops[erring_index].node_id, now)
            return
        nxt = hops[erring_index + 1]
        prev = hops[erring_index].node_id
        direction = 0 if prev < nxt.node_id else 1
        capacity_msat = nxt.capacity_sat * 1000
        if code == FailureCode.TEMPORARY_CHANNEL_FAILURE or (code & UPDATE and code != FailureCode.CHANNEL_DISABLED):
            # Liquidity, or a policy the sender's graph had stale (the caller applies the
            # channel_update it carries): either way this amount does not pass for now.
            self.channel_failed(nxt.short_channel_id, direction, nxt.amount_msat, capacity_msat, now)
        elif code & PERM or code == FailureCode.CHANNEL_DISABLED:
            # unknown_next_peer, permanent_channel_failure, channel_disabled: nothing passes.
            self.channel_failed(nxt.short_channel_id, direction, 0, capacity_msat, now)
        else:
            self.node_failed(hops[erring_index].node_id, now)

    def _forwarded_upto(self, route: Route, last: int, now: float) -> None:
        prev = route.source
        for hop in route.hops[: last + 1]:
            direction = 0 if prev < hop.node_id else 1
            self.channel_forwarded(hop.short_channel_id, direction, hop.amount_msat, hop.capacity_sat * 1000, now)
            prev = hop.node_id

    def forget(self, now: float | None = None) -> None:
        """Drop all history (or, with `now`, only what has decayed to nothing)."""
        if now is None:
            self._channels.clear()
            self._nodes.clear()
            return
        hl, nhl = self.params.liquidity_half_life_s, self.params.node_half_life_s
        for scid, rec in list(self._channels.items()):
            low, high = rec.bounds(now, hl)
            if low < 1 and rec.capacity_msat - high < 1:
                del self._channels[scid]
        for node, t in list(self._nodes.items()):
            if now - t > 20 * nhl:
                del self._nodes[node]

    # -- persistence -----------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready snapshot: parameters, channel bounds and blamed nodes."""
        return {
            "params": asdict(self.params),
            "channels": {
                str(scid): [r.capacity_msat, r.min_offset_msat, r.max_offset_msat, r.updated]
                for scid, r in self._channels.items()
            },
            "nodes": {node.hex(): t for node, t in self._nodes.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scorer:
        """The scorer `to_dict` described (ValueError on a malformed snapshot)."""
        try:
            names = {f.name for f in fields(ScoringParams)}
            raw = data.get("params", {})
            params = ScoringParams(**{k: v for k, v in raw.items() if k in names})
            scorer = cls(params)
            for scid, rec in data.get("channels", {}).items():
                cap, low, high, updated = rec
                scorer._channels[int(scid)] = _Liquidity(int(cap), int(low), int(high), float(updated))
            for node, t in data.get("nodes", {}).items():
                scorer._nodes[bytes.fromhex(node)] = float(t)
        except (TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"malformed scorer snapshot: {e}") from e
        return scorer

    def __repr__(self) -> str:
        return f"Scorer({len(self._channels)} channels, {len(self._nodes)} nodes with history)"

