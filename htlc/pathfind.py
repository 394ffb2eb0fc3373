"""Route finding over the channel graph: one route (`find_route`) or a multi-part split (`split_payment`).

Sans-IO: the graph, the scorer, the block height and the time are inputs.

The search runs Dijkstra *backwards*, from the recipient to the payer, as lnd
and LDK do: the amount a node must receive depends on what it must forward,
so walking from the target lets every hop's fee be computed on the exact
amount it forwards (BOLT 7: `fee_base_msat + amount_to_forward *
fee_proportional_millionths / 1_000_000`, rounded down). Each node keeps one
label (cost, amount it must receive, CLTV delta to its HTLC, hop count).
To settle fewer nodes it is an A*: a cheap forward search from the payer,
costing every hop at the delivered amount, gives lower bounds on the
payer-side cost of each node, grown as the backward search proceeds (see
`_Forward`); the answer is the plain Dijkstra's.

The cost of a hop is the scorer's (`htlc.scoring`): the fee, lnd's time-lock
risk `amount * cltv_expiry_delta * risk_factor`, a per-hop attempt cost and
`-ln(success probability)` times a penalty, so the route found balances fees
against the chance that it works. The payer's own first hop charges no fee,
adds no CLTV delta and counts as certain (a payer knows its balances: pass
them as `local_liquidity_msat` to rule out channels that cannot carry the
amount), unless the scorer has learnt otherwise about it.

Hard constraints: disabled and excluded channels and nodes are skipped; the
amount a channel carries must lie in `[htlc_minimum_msat, htlc_maximum_msat]`
and not exceed the capacity (minus what other parts of the same payment
already put on it); the total fee must stay within `max_fee_msat`; the total
CLTV delta (final delta included) within `max_cltv`; at most `max_hops` hops.

A `Route` lists its hops as BOLT 4 needs them: for hop `i`, `node_id` and the
`short_channel_id` that reaches it, the HTLC (`amount_msat`, `cltv_expiry`)
it receives, and its onion payload values `amount_to_forward` and
`outgoing_cltv_value` (for the recipient: the amount and the final expiry).
`Route.onion_payloads()` gives the `htlc.onion.HopPayload`s.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Collection, Iterable, Mapping, Sequence

from .graph import ChannelGraph, SearchEdge
from .routes import FirstHop, NoRouteError, Route, RouteHintHopLike, RouteHop
from .scoring import (
    MAX_NEG_LOG_PROBABILITY,
    PROBABILITY_LOWER_BOUND,
    UNKNOWN_CAPACITY_MSAT,
    Scorer,
)

__all__ = [
    "DEFAULT_FINAL_CLTV_DELTA",
    "DEFAULT_MAX_CLTV",
    "DEFAULT_MAX_HOPS",
    "FirstHop",
    "NoRouteError",
    "Route",
    "RouteHintHopLike",
    "RouteHop",
    "find_route",
    "split_payment",
]

DEFAULT_FINAL_CLTV_DELTA = 18
"""BOLT 11's default `min_final_cltv_expiry_delta`."""
DEFAULT_MAX_CLTV = 2016
"""lnd's default limit on a route's total CLTV delta (two weeks of blocks)."""
DEFAULT_MAX_HOPS = 20
"""Hops that fit in a 1300-byte onion with plain TLV payloads (LDK's limit is 19-20)."""

_U64 = (1 << 64) - 1



_FORWARD_START = 300
"""Edges the payer-side search scans before the backward search starts."""
_BALANCE = 2
"""The payer side doubles when the backward side has listed this many times its edges."""


def _by_max_htlc(edge: SearchEdge) -> int:
    return -edge[6]


# A path as the search returns it: (source index, target index, edge), payer first.
_Path = list[tuple[int, int, SearchEdge]]


class _Forward:
    """Lower bounds on the cost from the payer to each node: the potentials of the A* in `search`.

    A forward Dijkstra from the payer in which every hop is costed as if it
    carried only the amount delivered (what it really carries is at least
    that, and every cost term grows with the amount), so its distances `f`
    are lower bounds on the true cost of reaching a node from the payer. It
    runs in steps (`advance`); after each, every node it has not settled is
    at least `radius` away, so `min(f[u], radius)` is a consistent potential
    (inf for a node the payer cannot reach at all, once it has run out).
    """

    def __init__(self, ctx: _Context, amount_msat: int, in_flight: Mapping[int, int]) -> None:
        self.ctx = ctx
        self.amount_msat = amount_msat
        self.in_flight = in_flight
        self.f = [math.inf] * ctx.size
        self.f[ctx.src] = 0.0
        self.done = bytearray(ctx.size)
        self.heap: list[tuple[float, int]] = [(0.0, ctx.src)]
        self.scanned = 0
        self.radius = 0.0
        self.exhausted = False

    def advance(self, budget: int) -> None:
        """Scan about `budget` more edges."""
        ctx = self.ctx
        amount_msat, in_flight = self.amount_msat, self.in_flight
        src = ctx.src
        inf = math.inf
        f, done, heap = self.f, self.done, self.heap
        pop, push = heapq.heappop, heapq.heappush
        graph_n = ctx.graph.node_count
        forward_edges = ctx.graph.forward_edges
        hint_out = ctx.hint_out
        excluded_keys, excluded_nodes = ctx.excluded_keys, ctx.excluded_nodes
        known = ctx.scorer.known_channels()
        node_nlp, local = ctx.node_nlp, ctx.local
        p = ctx.scorer.params
        floor = p.base_penalty_msat + amount_msat * p.base_penalty_ppm / 1e6
        liq = p.liquidity_penalty_msat + amount_msat * p.liquidity_penalty_ppm / 1e6
        risk = amount_msat * p.risk_factor_billionths / 1e9
        flat = 1 - PROBABILITY_LOWER_BOUND
        max_nlp = MAX_NEG_LOG_PROBABILITY
        log1p = math.log1p
        unknown_cap = UNKNOWN_CAPACITY_MSAT
        stop = self.scanned + budget
        scanned = self.scanned
        while heap:
            d, w = heap[0]
            if done[w]:
                pop(heap)
                continue
            if scanned >= stop:
                break
            pop(heap)
            done[w] = 1
            if excluded_nodes and w in excluded_nodes:
                continue
            edges = forward_edges(w) if w < graph_n and not (w == src and ctx.first_hops_only) else []
            if hint_out and w in hint_out:
                edges = sorted(edges + hint_out[w], key=_by_max_htlc)
            is_src = w == src
            slow = is_src or bool(node_nlp and w in node_nlp)
            scanned += len(edges)
            for x, key, base, prop, delta, _, hmax, cap in edges:
                if amount_msat > hmax:
                    break
                if done[x]:
                    continue
                flow = amount_msat + in_flight.get(key, 0) if in_flight else amount_msat
                if flow > hmax or (excluded_keys and key in excluded_keys):
                    continue
                if is_src:
                    if local is not None and flow > local.get(key >> 1, flow):
                        continue
                    c = floor
                else:
                    c = d + floor + base + amount_msat * prop // 1_000_000 + risk * delta
                if slow or (known and (key >> 1) in known):
                    nlp, extra = ctx.hop_nlp(w, key, flow, cap)
                    c += extra + nlp * liq
                else:
                    x_ = flow / (cap or unknown_cap)
                    c += (-log1p(-x_) if x_ < flat else max_nlp) * liq
                if c < f[x]:
                    f[x] = c
                    push(heap, (c, x))
        self.scanned = scanned
        if heap:
            self.radius = heap[0][0]
        else:
            self.radius = inf
            self.exhausted = True


class _Context:
    """Everything about one request that does not change between the searches of a split."""

    def __init__(
        self,
        graph: ChannelGraph,
        source: bytes,
        target: bytes,
        *,
        final_cltv_delta: int,
        max_cltv: int,
        max_hops: int,
        route_hints: Iterable[Sequence[RouteHintHopLike]],
        scorer: Scorer | None,
        excluded: Collection[int | tuple[int, int] | bytes],
        now: float,
        current_height: int,
        local_liquidity_msat: Mapping[int, int] | None,
        first_hops: Sequence[FirstHop] | None = None,
    ) -> None:
        self.graph = graph
        self.scorer = scorer if scorer is not None else Scorer()
        self.now = now
        self.final_cltv_delta = final_cltv_delta
        self.max_cltv = max_cltv
        self.max_hops = max_hops
        self.current_height = current_height
        self.local = local_liquidity_msat
        self.extra_ids: list[bytes] = []
        self._extra_index: dict[bytes, int] = {}
        if source == target:
            raise NoRouteError("same_node", "source and target are the same node")
        if final_cltv_delta > max_cltv:
            raise NoRouteError(
                "cltv_limit", f"final_cltv_delta {final_cltv_delta} alone exceeds max_cltv {max_cltv}"
            )
        # Route hints: extra edges (their policy replaces the graph's for the same direction).
        hint_edges: dict[int, list[SearchEdge]] = {}
        self.hint_out: dict[int, list[SearchEdge]] = {}  # the same, by source (target first)
        for hint in route_hints:
            chain = [h.pubkey for h in hint] + [target]
            for j, h in enumerate(hint):
                u, v = self._index(chain[j]), self._index(chain[j + 1])
                key = h.short_channel_id << 1 | (0 if chain[j] < chain[j + 1] else 1)
                hint_edges.setdefault(v, []).append(
                    (u, key, h.fee_base_msat, h.fee_proportional_millionths, h.cltv_expiry_delta, 0, _U64, 0)
                )
                self.hint_out.setdefault(u, []).append(
                    (v, key, h.fee_base_msat, h.fee_proportional_millionths, h.cltv_expiry_delta, 0, _U64, 0)
                )
        first_in: dict[int, list[SearchEdge]] = {}
        if first_hops is not None:
            # Our own channels replace the graph's view of the payer's edges: the payer knows them exactly.
            s_idx = self._index(source)
            local = dict(local_liquidity_msat or {})
            for fh in first_hops:
                v = self._index(fh.peer)
                key = fh.short_channel_id << 1 | (0 if source < fh.peer else 1)
                first_in.setdefault(v, []).append((s_idx, key, 0, 0, 0, 0, fh.spendable_msat, fh.capacity_msat))
                local[fh.short_channel_id] = min(local.get(fh.short_channel_id, fh.spendable_msat), fh.spendable_msat)
            self.local = local
            self.hint_out[s_idx] = [(v, e[1], e[2], e[3], e[4], e[5], e[6], e[7])
                                    for v, es in first_in.items() for e in es] + self.hint_out.get(s_idx, [])
        src, dst = graph.node_index(source), graph.node_index(target)
        if src is None:
            src = self._extra_index.get(source)
        if dst is None:
            dst = self._extra_index.get(target)
        if src is None:
            raise NoRouteError("unknown_source", f"source {source.hex()} is not in the graph")
        if dst is None:
            raise NoRouteError("unknown_target", f"target {target.hex()} is not in the graph and no route hint reaches it")
        self.src, self.dst = src, dst
        self.size = graph.node_count + len(self.extra_ids)
        # The payer's own channels that the graph's search view leaves out (it cannot forward
        # through them), plus the hint edges; a hint replaces the graph's policy of its direction.
        extra_in: dict[int, list[SearchEdge]] = hint_edges
        if first_hops is not None:
            for v, edges in first_in.items():
                extra_in.setdefault(v, []).extend(edges)
                if v < graph.node_count:  # the peer forwards what we send it, even with no other channel in
                    for w, edge in graph.endpoint_edges(v):
                        if w != src:
                            extra_in.setdefault(w, []).append(edge)
            if src < graph.node_count:  # the graph's edges out of the payer are replaced, not added to
                for policy in graph.outgoing(source):
                    t = graph.node_index(policy.target)
                    assert t is not None
                    extra_in.setdefault(t, [])
        elif src < graph.node_count:
            for w, edge in graph.endpoint_edges(src):
                extra_in.setdefault(w, []).append(edge)
        self.override: dict[int, list[SearchEdge]] = {}
        for v, extra in extra_in.items():
            keys = {e[1] for e in extra}
            base = graph.search_edges(v) if v < graph.node_count else []
            if first_hops is not None:
                base = [e for e in base if e[0] != src]
            self.override[v] = sorted([e for e in base if e[1] not in keys] + extra, key=_by_max_htlc)
        self.first_hops_only = first_hops is not None
        # Exclusions: a short_channel_id (both directions), (short_channel_id, direction), or a node id.
        self.excluded_keys: set[int] = set()
        self.excluded_nodes: set[int] = set()
        for item in excluded:
            if isinstance(item, bytes):
                idx = self.node_index(item)
                if idx is not None:
                    self.excluded_nodes.add(idx)
            elif isinstance(item, tuple):
                self.excluded_keys.add(item[0] << 1 | item[1])
            else:
                self.excluded_keys.update((item << 1, item << 1 | 1))
        if src in self.excluded_nodes or dst in self.excluded_nodes:
            raise NoRouteError("excluded", "the source or the target is excluded")
        node_nlp = self.scorer.node_neg_log_probabilities(now)
        self.node_nlp: dict[int, float] = {}
        for node, nlp in node_nlp.items():
            idx = self.node_index(node)
            if idx is not None and idx != src and nlp > 0:
                self.node_nlp[idx] = nlp

    def _index(self, node_id: bytes) -> int:
        idx = self.graph.node_index(node_id)
        if idx is None:
            idx = self._extra_index.get(node_id)
            if idx is None:
                idx = self.graph.node_count + len(self.extra_ids)
                self.extra_ids.append(node_id)
                self._extra_index[node_id] = idx
        return idx

    def node_index(self, node_id: bytes) -> int | None:
        idx = self.graph.node_index(node_id)
        return self._extra_index.get(node_id) if idx is None else idx

    def node_id(self, index: int) -> bytes:
        n = self.graph.node_count
        return self.graph.node_id(index) if index < n else self.extra_ids[index - n]

    # -- the search ------------------------------------------------------------

    def hop_nlp(self, u: int, key: int, flow: int, cap: int) -> tuple[float, float]:
        """(-ln P, impossible penalty) of the hop u -> over `key` carrying `flow` (as the search counts it)."""
        scorer, local = self.scorer, self.local
        scid = key >> 1
        if u == self.src:
            if scorer.knows_channel(scid) and (local is None or scid not in local):
                nlp = scorer.neg_log_probability(scid, key & 1, flow, cap, self.now)
            else:
                nlp = 0.0
        elif scorer.knows_channel(scid):
            nlp = scorer.neg_log_probability(scid, key & 1, flow, cap, self.now)
        else:
            nlp = scorer.apriori_neg_log_probability(flow, cap)
        extra = 0.0
        n_nlp = self.node_nlp.get(u)
        if n_nlp is not None:
            if n_nlp == math.inf:
                n_nlp = MAX_NEG_LOG_PROBABILITY
                extra = self.scorer.params.considered_impossible_penalty_msat
            nlp += n_nlp
        if nlp == math.inf:
            nlp = MAX_NEG_LOG_PROBABILITY
            extra = self.scorer.params.considered_impossible_penalty_msat
        return nlp, extra

    def search(
        self,
        amount_msat: int,
        fee_limit: float,
        in_flight: Mapping[int, int],
        forward_budget: int | None = None,
        balance: bool = True,
    ) -> _Path:
        """The cheapest path by the scorer's cost, payer first.

        A backward Dijkstra from the target (exact amounts: each hop's fee on
        what it forwards), made an A* by the payer-side lower bounds of
        `_Forward`: that search first scans `forward_budget` edges (default
        `_FORWARD_START`), then, with `balance`, doubles whenever the
        backward side has listed twice as many edges, and the heap is
        re-keyed with the stronger potentials. Any consistent potential
        leaves the result that of plain Dijkstra; these just let it settle
        far fewer nodes. `forward_budget=0, balance=False` is plain Dijkstra.
        """
        size, src, dst = self.size, self.src, self.dst
        inf = math.inf
        forward = _Forward(self, amount_msat, in_flight)
        forward.advance(_FORWARD_START if forward_budget is None else forward_budget)
        fpot, radius = forward.f, forward.radius
        adaptive = balance
        scanned = 0  # edges the backward search listed
        labeled: list[int] = []
        dist = [inf] * size
        amt = [0] * size
        cltv = [0] * size
        hops = [0] * size
        nxt: list[tuple[int, SearchEdge] | None] = [None] * size
        done = bytearray(size)
        dist[dst] = 0.0
        amt[dst] = amount_msat
        cltv[dst] = self.final_cltv_delta
        heap: list[tuple[float, int]] = [(0.0, dst)]
        pop, push = heapq.heappop, heapq.heappush
        graph_n = self.graph.node_count
        search_edges = self.graph.search_edges
        override = self.override
        excluded_keys, excluded_nodes = self.excluded_keys, self.excluded_nodes
        max_cltv, max_hops = self.max_cltv, self.max_hops
        scorer = self.scorer
        known = scorer.known_channels()
        hop_nlp = self.hop_nlp
        node_nlp = self.node_nlp
        local = self.local
        p = scorer.params
        risk = p.risk_factor_billionths / 1e9
        base_pen = p.base_penalty_msat
        base_ppm = p.base_penalty_ppm / 1e6
        liq_pen = p.liquidity_penalty_msat
        liq_ppm = p.liquidity_penalty_ppm / 1e6
        impossible = p.considered_impossible_penalty_msat
        max_nlp = MAX_NEG_LOG_PROBABILITY
        flat = 1 - PROBABILITY_LOWER_BOUND
        log1p = math.log1p
        unknown_cap = UNKNOWN_CAPACITY_MSAT
        rej_min = rej_max = rej_fee = rej_cltv = rej_hops = 0
        empty: list[SearchEdge] = []
        while heap:
            _, v = pop(heap)
            if done[v]:
                continue
            done[v] = 1
            if v == src:
                break
            d = dist[v]
            a_v, c_v, h = amt[v], cltv[v], hops[v] + 1
            if h > max_hops:
                rej_hops += 1
                continue
            edges = override.get(v) if override else None
            if edges is None:
                edges = search_edges(v) if v < graph_n else empty
            scanned += len(edges)
            if adaptive and scanned > _BALANCE * forward.scanned and not forward.exhausted:
                # Keep the two sides balanced: extend the payer side, then re-key the heap
                # with the stronger potentials (any consistent potential keeps A* exact).
                forward.advance(forward.scanned)
                radius = forward.radius
                heap = [
                    (dist[u] + (fpot[u] if fpot[u] < radius else radius), u) for u in labeled if not done[u]
                ]
                heap = [item for item in heap if item[0] < inf]
                heapq.heapify(heap)
            floor = d + base_pen + a_v * base_ppm  # what any hop into v costs at least
            for edge in edges:
                u, key, base, prop, delta, hmin, hmax, cap = edge
                if a_v > hmax:  # edges come largest htlc maximum first: none further fits
                    rej_max += len(edges) - edges.index(edge)
                    break
                if done[u] or floor >= dist[u]:
                    continue
                if a_v < hmin:
                    rej_min += 1
                    continue
                if in_flight:
                    flow = a_v + in_flight.get(key, 0)
                    if flow > hmax:
                        rej_max += 1
                        continue
                else:
                    flow = a_v
                if excluded_keys and key in excluded_keys:
                    continue
                if u == src:
                    fee = dl = 0
                    if local is not None:
                        room = local.get(key >> 1)
                        if room is not None and flow > room:
                            rej_max += 1
                            continue
                else:
                    if excluded_nodes and u in excluded_nodes:
                        continue
                    fee = base + a_v * prop // 1_000_000
                    dl = delta
                if fee > fee_limit - (a_v - amount_msat):
                    rej_fee += 1
                    continue
                c_u = c_v + dl
                if c_u > max_cltv:
                    rej_cltv += 1
                    continue
                # -ln P of this hop: the scorer's, inlined for channels it knows nothing about
                if u == src or (known and (key >> 1) in known) or (node_nlp and u in node_nlp):
                    nlp, extra = hop_nlp(u, key, flow, cap)
                else:
                    x = flow / (cap or unknown_cap)
                    if x < flat:
                        nlp, extra = -log1p(-x), 0.0
                    else:
                        nlp, extra = max_nlp, (0.0 if x < 1 else impossible)
                nd = floor + fee + a_v * dl * risk + extra + nlp * (liq_pen + a_v * liq_ppm)
                if nd < dist[u]:
                    pot = fpot[u]
                    key_u = nd + (pot if pot < radius else radius)
                    if key_u == inf:
                        continue  # the payer cannot reach u at all
                    if dist[u] == inf:
                        labeled.append(u)
                    dist[u] = nd
                    amt[u] = a_v + fee
                    cltv[u] = c_u
                    hops[u] = h
                    nxt[u] = (v, edge)
                    push(heap, (key_u, u))
        if not done[src]:
            rejected = {
                "htlc_minimum": rej_min,
                "htlc_maximum_or_capacity": rej_max,
                "fee_limit": rej_fee,
                "cltv_limit": rej_cltv,
                "max_hops": rej_hops,
            }
            cuts = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in rejected.items() if n)
            reason = (
                f"no route from {self.node_id(src).hex()} to {self.node_id(dst).hex()} for {amount_msat} msat"
                + (f" (channels cut by: {cuts})" if cuts else " (not connected by usable channels)")
            )
            raise NoRouteError("no_path", reason, rejected)
        path: _Path = []
        u = src
        while u != dst:
            step = nxt[u]
            assert step is not None
            path.append((u, step[0], step[1]))
            u = step[0]
        return path

    # -- building routes -------------------------------------------------------

    def htlc_amounts(self, path: _Path, amount_msat: int) -> list[int]:
        """The HTLC amount on each channel of `path` when the recipient gets `amount_msat`."""
        out = [0] * len(path)
        a = amount_msat
        for k in range(len(path) - 1, -1, -1):
            out[k] = a
            _, _, base, prop, _, _, _, _ = path[k][2]
            a += base + a * prop // 1_000_000
        return out

    def build(self, path: _Path, amount_msat: int, in_flight: Mapping[int, int] | None = None) -> Route:
        """The route along `path` delivering `amount_msat` (amounts and expiries from the recipient back)."""
        n = len(path)
        amounts = self.htlc_amounts(path, amount_msat)
        expiries = [0] * n
        e = self.current_height + self.final_cltv_delta
        for k in range(n - 1, -1, -1):
            expiries[k] = e
            e += path[k][2][4]
        hops = []
        probability = 1.0
        for k, (u, v, edge) in enumerate(path):
            key, cap = edge[1], edge[7]
            last = k == n - 1
            hops.append(
                RouteHop(
                    node_id=self.node_id(v),
                    short_channel_id=key >> 1,
                    amount_msat=amounts[k],
                    cltv_expiry=expiries[k],
                    amount_to_forward=amount_msat if last else amounts[k + 1],
                    outgoing_cltv_value=expiries[k] if last else expiries[k + 1],
                    capacity_sat=cap // 1000,
                )
            )
            flow = amounts[k] + (in_flight.get(key, 0) if in_flight else 0)
            if k == 0 and (
                (self.local is not None and (key >> 1) in self.local) or not self.scorer.knows_channel(key >> 1)
            ):
                hop_p = 1.0  # the payer's own channel (as the search counts it)
            else:
                hop_p = self.scorer.channel_probability(key >> 1, key & 1, flow, cap, self.now)
            if k > 0:
                hop_p *= self.scorer.node_probability(self.node_id(u), self.now)
            probability *= hop_p
        return Route(self.node_id(self.src), tuple(hops), probability)

    def max_part(
        self,
        path: _Path,
        low: int,
        high: int,
        in_flight: Mapping[int, int],
        fee_left: float,
        remaining: int,
        saturation: float,
    ) -> int:
        """The largest amount in [low, high] the path carries within the limits (at least `low`)."""
        limits: list[float] = []
        for k, (u, v, edge) in enumerate(path):
            key, hmax, cap = edge[1], edge[6], edge[7]
            used = in_flight.get(key, 0)
            hard: float = hmax - used
            if k == 0 and self.local is not None and (key >> 1) in self.local:
                hard = min(hard, self.local[key >> 1] - used)
            else:
                _, upper = self.scorer.liquidity_bounds(key >> 1, key & 1, cap, self.now)
                hard = min(hard, max(upper * saturation - used, 0.0))
            limits.append(hard)

        def fits(amount: int) -> bool:
            amounts = self.htlc_amounts(path, amount)
            if any(a > lim for a, lim in zip(amounts, limits)):
                return False
            fee = amounts[0] - amount
            return fee <= fee_left * amount / remaining

        if not fits(high):
            lo, hi = low, high  # fits(lo) is assumed: the search found the path for `low`
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if fits(mid):
                    lo = mid
                else:
                    hi = mid
            return lo
        return high


def find_route(
    graph: ChannelGraph,
    source: bytes,
    target: bytes,
    amount_msat: int,
    *,
    final_cltv_delta: int = DEFAULT_FINAL_CLTV_DELTA,
    max_fee_msat: int | None = None,
    max_cltv: int = DEFAULT_MAX_CLTV,
    route_hints: Iterable[Sequence[RouteHintHopLike]] = (),
    scorer: Scorer | None = None,
    excluded: Collection[int | tuple[int, int] | bytes] = (),
    now: float = 0.0,
    current_height: int = 0,
    max_hops: int = DEFAULT_MAX_HOPS,
    local_liquidity_msat: Mapping[int, int] | None = None,
    first_hops: Sequence[FirstHop] | None = None,
) -> Route:
    """The best route from `source` to `target` delivering `amount_msat`, or NoRouteError.

    `max_fee_msat` (None: no limit) bounds the total fee; `max_cltv` bounds the
    route's total CLTV delta, `final_cltv_delta` included. Expiries in the
    route are `current_height` + deltas. `route_hints` are BOLT 11 `r` fields
    (each a sequence of hops ending at `target`), which may reach a target the
    graph does not know. `excluded` holds short_channel_ids (both directions),
    `(short_channel_id, direction)` pairs and node ids. `scorer` (default: a
    fresh one, a-priori probabilities only) weighs success probability
    against fees at time `now`. `local_liquidity_msat` (short_channel_id ->
    spendable msat) gives the payer's known balances on its own channels.
    `first_hops` (when given) are the payer's own channels, announced or not:
    the only ones a route may start with (the graph's edges out of the payer
    are ignored), limited to what each can spend now.
    """
    if amount_msat <= 0:
        raise ValueError(f"amount_msat must be positive, not {amount_msat}")
    ctx = _Context(
        graph, source, target,
        final_cltv_delta=final_cltv_delta, max_cltv=max_cltv, max_hops=max_hops,
        route_hints=route_hints, scorer=scorer, excluded=excluded, now=now,
        current_height=current_height, local_liquidity_msat=local_liquidity_msat, first_hops=first_hops,
    )  # fmt: skip
    fee_limit = math.inf if max_fee_msat is None else max_fee_msat
    return ctx.build(ctx.search(amount_msat, fee_limit, {}), amount_msat)


def split_payment(
    graph: ChannelGraph,
    source: bytes,
    target: bytes,
    amount_msat: int,
    *,
    max_parts: int = 16,
    min_part_msat: int = 10_000_000,
    max_part_msat: int | None = None,
    max_channel_saturation: float = 0.5,
    final_cltv_delta: int = DEFAULT_FINAL_CLTV_DELTA,
    max_fee_msat: int | None = None,
    max_cltv: int = DEFAULT_MAX_CLTV,
    route_hints: Iterable[Sequence[RouteHintHopLike]] = (),
    scorer: Scorer | None = None,
    excluded: Collection[int | tuple[int, int] | bytes] = (),
    now: float = 0.0,
    current_height: int = 0,
    max_hops: int = DEFAULT_MAX_HOPS,
    local_liquidity_msat: Mapping[int, int] | None = None,
    first_hops: Sequence[FirstHop] | None = None,
) -> list[Route]:
    """Routes whose amounts sum exactly to `amount_msat` (one route when one suffices).

    Paths are found one after the other, LDK-style: each search asks for what
    is left (halving the request, down to `min_part_msat`, while no path
    carries it), then the part on the path found grows to its bottleneck: the
    largest amount every channel takes within htlc_maximum_msat / capacity
    minus what earlier parts already put on it, and within
    `max_channel_saturation` of the scorer's upper liquidity bound. Later
    searches see earlier parts as in flight (both in the limits and in the
    success probabilities). `max_fee_msat` bounds the fees of all parts
    together (each part gets a share in proportion to its amount). Other
    arguments as `find_route`. NoRouteError when `max_parts` do not suffice.
    `max_part_msat` (lnd's max_shard_size_msat) caps every part.
    """
    if amount_msat <= 0:
        raise ValueError(f"amount_msat must be positive, not {amount_msat}")
    if max_parts < 1:
        raise ValueError("max_parts must be at least 1")
    if not 0 < max_channel_saturation <= 1:
        raise ValueError("max_channel_saturation must be in (0, 1]")
    ctx = _Context(
        graph, source, target,
        final_cltv_delta=final_cltv_delta, max_cltv=max_cltv, max_hops=max_hops,
        route_hints=route_hints, scorer=scorer, excluded=excluded, now=now,
        current_height=current_height, local_liquidity_msat=local_liquidity_msat, first_hops=first_hops,
    )  # fmt: skip
    in_flight: dict[int, int] = {}
    parts: list[Route] = []
    remaining = amount_msat
    fee_left: float = math.inf if max_fee_msat is None else max_fee_msat
    while remaining > 0:
        if len(parts) == max_parts:
            raise NoRouteError(
                "too_many_parts",
                f"{max_parts} parts carry only {amount_msat - remaining} of {amount_msat} msat",
            )
        request = remaining if max_part_msat is None else min(remaining, max(max_part_msat, 1))
        path: _Path | None = None
        error: NoRouteError | None = None
        while True:
            try:
                path = ctx.search(request, fee_left * request / remaining, in_flight)
                break
            except NoRouteError as e:
                error = e
            if request <= min_part_msat:
                break
            request = max(min_part_msat, request // 2)
        if path is None:
            assert error is not None
            placed = amount_msat - remaining
            raise NoRouteError(
                error.kind,
                f"{error.reason}; {placed} of {amount_msat} msat placed in {len(parts)} parts",
                error.rejected,
            )
        part = request
        if request < remaining:
            high = remaining if max_part_msat is None else max(min(remaining, max_part_msat), request)
            part = ctx.max_part(path, request, high, in_flight, fee_left, remaining, max_channel_saturation)
            if 0 < remaining - part < min_part_msat and high >= remaining - min_part_msat >= request:
                part = remaining - min_part_msat  # leave a last part worth a search
        route = ctx.build(path, part, in_flight)
        for (_, _, edge), hop in zip(path, route.hops):
            in_flight[edge[1]] = in_flight.get(edge[1], 0) + hop.amount_msat
        parts.append(route)
        remaining -= part
        fee_left -= route.total_fee_msat
    return parts
