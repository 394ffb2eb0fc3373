"""Channel graph, route finding, scoring and MPP splitting (htlc.graph, htlc.pathfind, htlc.scoring).

Small hand-made graphs check each rule; the real graphs of ../shared/vectors/graph
check the loaders and that routes are found at scale.
"""

from __future__ import annotations

import json
import lzma
import math
import random
from functools import cache

import pytest

import vectors
from base_chain.crypto import PrivateKey
from htlc.failure import FailureCode
from htlc.graph import (
    ChannelGraph,
    GraphError,
    channel_direction,
    format_short_channel_id,
    load_gossmap,
    load_listchannels_json,
    parse_short_channel_id,
    short_channel_id_from_parts,
    short_channel_id_parts,
)
from htlc.invoice import RouteHintHop
from htlc.pathfind import NoRouteError, Route, find_route, split_payment
from htlc.scoring import Scorer, ScoringParams


@cache
def node(i: int) -> bytes:
    """A real compressed public key per small int (route hints check them)."""
    return PrivateKey(1000 + i).public_key().to_bytes()


S, A, B, C, D, T = (node(i) for i in range(6))
SAT = 1000  # msat


def scid(n: int) -> int:
    return short_channel_id_from_parts(700_000 + n, 1, 0)


def channel(
    g: ChannelGraph,
    n: int,
    a: bytes,
    b: bytes,
    *,
    capacity_sat: int = 10_000_000,
    both: bool = True,
    **policy: int,
) -> int:
    """Add channel `n` between a and b; `policy` applies to the a -> b direction (b -> a gets defaults)."""
    g.add_channel(a, b, scid(n), capacity_sat=capacity_sat, **policy)  # type: ignore[arg-type]
    if both:
        g.add_channel(b, a, scid(n), capacity_sat=capacity_sat)
    return scid(n)


def fees_only() -> Scorer:
    return Scorer(ScoringParams.fees_only())


def diamond(**b_policy: int) -> ChannelGraph:
    """S -> A -> T and S -> B -> T; A charges 5000 msat base, B 1000 msat + 1000 ppm (changeable)."""
    g = ChannelGraph()
    channel(g, 1, S, A)
    channel(g, 2, A, T, fee_base_msat=5000, fee_proportional_millionths=0, cltv_expiry_delta=40)
    channel(g, 3, S, B)
    policy = {"fee_base_msat": 1000, "fee_proportional_millionths": 1000, "cltv_expiry_delta": 40} | b_policy
    channel(g, 4, B, T, **policy)
    return g


# --------------------------------------------------------------------------
# short channel ids and the graph
# --------------------------------------------------------------------------


def test_short_channel_id_helpers() -> None:
    x = parse_short_channel_id("505149x622x0")
    assert x == (505149 << 40) | (622 << 16)
    assert format_short_channel_id(x) == "505149x622x0"
    assert short_channel_id_parts(x) == (505149, 622, 0)
    assert short_channel_id_from_parts(505149, 622, 0) == x
    with pytest.raises(GraphError):
        short_channel_id_from_parts(1 << 24, 0, 0)
    with pytest.raises(ValueError):
        parse_short_channel_id("1x2")


def test_graph_add_update_disable_remove() -> None:
    g = ChannelGraph()
    x = channel(g, 1, S, A, fee_base_msat=1000, last_update=100)
    assert (g.node_count, g.channel_count, g.edge_count) == (2, 1, 2)
    p = g.policy(x, S)
    assert p is not None and p.target == A and p.direction == channel_direction(S, A)
    assert p.htlc_maximum_msat == 10_000_000 * SAT  # defaults to the capacity
    assert p.fee_msat(1_000_000) == 1000 + 1
    # BOLT 7: an update not newer than the stored one is ignored
    assert not g.update_policy(x, S, fee_base_msat=7, last_update=100)
    assert g.update_policy(x, S, fee_base_msat=7, last_update=101)
    assert g.policy(x, S).fee_base_msat == 7  # type: ignore[union-attr]
    assert not g.update_policy(scid(99), S, fee_base_msat=1)
    assert g.disable(x, S) == 1 and g.policy(x, S).disabled  # type: ignore[union-attr]
    assert g.disable(x) == 1  # the other direction
    assert g.disable(x, disabled=False) == 2
    with pytest.raises(GraphError, match="fee_base_msat"):
        g.update_policy(x, S, fee_base_msat=1 << 32, last_update=200)
    with pytest.raises(GraphError, match="cltv_expiry_delta"):
        g.add_channel(S, B, scid(2), capacity_sat=1, cltv_expiry_delta=70_000)
    with pytest.raises(GraphError, match="other nodes"):
        g.add_channel(S, B, x, capacity_sat=1)
    assert g.remove_channel(x, S) == 1 and g.policy(x, S) is None and g.channel_count == 1
    assert g.remove_channel(x) == 1 and g.channel_count == 0 and g.edge_count == 0
    # a removed slot is reused, and the search sees the new channel
    channel(g, 5, S, T)
    assert find_route(g, S, T, 1000).short_channel_ids == [scid(5)]


def test_search_views_follow_graph_changes() -> None:
    # A can forward to T only once it has a channel in from someone other than T.
    g = ChannelGraph()
    channel(g, 1, A, T)
    g.add_channel(A, S, scid(2), capacity_sat=10_000_000)  # only A -> S is announced
    channel(g, 3, S, B)
    with pytest.raises(NoRouteError):
        find_route(g, S, T, 1000)
    with pytest.raises(NoRouteError):
        find_route(g, B, T, 1000)
    g.add_channel(S, A, scid(2), capacity_sat=10_000_000)
    assert find_route(g, S, T, 1000).node_ids == [A, T]
    assert find_route(g, B, T, 1000).node_ids == [S, A, T]
    g.disable(scid(2), S)
    with pytest.raises(NoRouteError):
        find_route(g, B, T, 1000)
    g.update_policy(scid(2), S, disabled=False, last_update=5)
    assert find_route(g, B, T, 1000).node_ids == [S, A, T]
    g.update_policy(scid(1), A, fee_base_msat=1234, last_update=5)
    assert find_route(g, B, T, 1000).hops[1].fee_msat == 1234 + 0  # 1 ppm of 1000 rounds down
    g.remove_channel(scid(1))
    with pytest.raises(NoRouteError):
        find_route(g, S, T, 1000)


# --------------------------------------------------------------------------
# route finding rules
# --------------------------------------------------------------------------


def test_cheapest_path() -> None:
    g = diamond()
    r = find_route(g, S, T, 1_000_000, scorer=fees_only())
    assert r.node_ids == [B, T] and r.short_channel_ids == [scid(3), scid(4)]
    assert r.total_fee_msat == 1000 + 1000  # B: 1000 base + 1000 ppm of 1,000,000
    # the payer's own first hop pays no fee: S -> T direct beats both
    channel(g, 9, S, T, fee_base_msat=100_000)
    assert find_route(g, S, T, 1_000_000, scorer=fees_only()).node_ids == [T]


def test_hop_amounts_and_cltvs_as_bolt4_needs_them() -> None:
    g = ChannelGraph()
    channel(g, 1, S, A, fee_base_msat=999_999, cltv_expiry_delta=999)  # the payer's own policy: unused
    channel(g, 2, A, B, fee_base_msat=2000, fee_proportional_millionths=1000, cltv_expiry_delta=40)
    channel(g, 3, B, T, fee_base_msat=1000, fee_proportional_millionths=100, cltv_expiry_delta=144)
    r = find_route(g, S, T, 1_000_000, final_cltv_delta=18, current_height=800_000)
    a, b, t = r.hops
    # recipient: receives the amount at current_height + final_cltv_delta
    assert (t.node_id, t.amount_msat, t.amount_to_forward) == (T, 1_000_000, 1_000_000)
    assert t.cltv_expiry == t.outgoing_cltv_value == 800_018
    # B forwards 1,000,000 over B->T and charges 1000 + 1,000,000 * 100 / 1e6 = 1100
    assert (b.amount_to_forward, b.amount_msat, b.fee_msat) == (1_000_000, 1_001_100, 1100)
    assert (b.outgoing_cltv_value, b.cltv_expiry) == (800_018, 800_018 + 144)
    # A charges on what *it* forwards: 2000 + floor(1,001,100 * 1000 / 1e6) = 2000 + 1001
    assert (a.amount_to_forward, a.amount_msat, a.fee_msat) == (1_001_100, 1_004_101, 3001)
    assert (a.outgoing_cltv_value, a.cltv_expiry) == (800_162, 800_202)
    assert r.total_amount_msat == 1_004_101 and r.total_fee_msat == 4101
    assert r.total_timelock == 800_202 and r.amount_msat == 1_000_000
    assert [h.short_channel_id for h in r.hops] == [scid(1), scid(2), scid(3)]
    payloads = r.onion_payloads(payment_secret=b"\x11" * 32)
    assert [(p.amt_to_forward, p.outgoing_cltv_value, p.short_channel_id) for p in payloads] == [
        (1_001_100, 800_162, scid(2)),
        (1_000_000, 800_018, scid(3)),
        (1_000_000, 800_018, None),
    ]
    assert payloads[-1].payment_data is not None and payloads[-1].payment_data.total_msat == 1_000_000
    assert payloads[0].payment_data is None


def test_fee_limit() -> None:
    g = diamond()
    with pytest.raises(NoRouteError, match="fee limit") as e:
        find_route(g, S, T, 1_000_000, max_fee_msat=1999, scorer=fees_only())
    assert e.value.kind == "no_path" and e.value.rejected["fee_limit"] >= 2
    assert find_route(g, S, T, 1_000_000, max_fee_msat=2000, scorer=fees_only()).total_fee_msat == 2000
    # the cheaper path breaks the limit once its proportional fee grows: A's flat 5000 wins
    r = find_route(g, S, T, 10_000_000, max_fee_msat=6000, scorer=fees_only())
    assert r.node_ids == [A, T] and r.total_fee_msat == 5000


def test_cltv_limit() -> None:
    g = diamond(cltv_expiry_delta=500)  # the cheap path through B is slow
    assert find_route(g, S, T, 1_000_000, scorer=fees_only()).node_ids == [B, T]
    r = find_route(g, S, T, 1_000_000, max_cltv=100, scorer=fees_only(), current_height=1000)
    assert r.node_ids == [A, T] and r.total_timelock == 1000 + 18 + 40
    with pytest.raises(NoRouteError, match="cltv limit"):
        find_route(g, S, T, 1_000_000, max_cltv=50)
    with pytest.raises(NoRouteError) as e:
        find_route(g, S, T, 1_000_000, final_cltv_delta=200, max_cltv=100)
    assert e.value.kind == "cltv_limit"


def test_cltv_risk_term_prefers_shorter_timelocks() -> None:
    g = diamond(fee_base_msat=5000, fee_proportional_millionths=0, cltv_expiry_delta=2000)
    scorer = Scorer(ScoringParams(risk_factor_billionths=15, base_penalty_msat=0, base_penalty_ppm=0,
                                  liquidity_penalty_msat=0, liquidity_penalty_ppm=0))  # fmt: skip
    assert find_route(g, S, T, 10_000_000, scorer=scorer, max_cltv=5000).node_ids == [A, T]


def test_disabled_channels() -> None:
    g = diamond()
    g.disable(scid(4), B)
    assert find_route(g, S, T, 1_000_000, scorer=fees_only()).node_ids == [A, T]
    g.disable(scid(2))
    with pytest.raises(NoRouteError):
        find_route(g, S, T, 1_000_000)
    g.disable(scid(4), B, disabled=False)
    assert find_route(g, S, T, 1_000_000).node_ids == [B, T]


def test_htlc_maximum_and_minimum() -> None:
    g = diamond(htlc_maximum_msat=500_000)
    assert find_route(g, S, T, 400_000, scorer=fees_only()).node_ids == [B, T]
    assert find_route(g, S, T, 600_000, scorer=fees_only()).node_ids == [A, T]
    g = diamond(htlc_minimum_msat=2_000_000)
    assert find_route(g, S, T, 1_000_000, scorer=fees_only()).node_ids == [A, T]
    assert find_route(g, S, T, 2_000_000, scorer=fees_only()).node_ids == [B, T]
    # the minimum applies to what the channel carries, fees of later hops included
    g = diamond(htlc_minimum_msat=2_000_000)
    channel(g, 7, B, C, htlc_minimum_msat=0)
    g.disable(scid(2))
    with pytest.raises(NoRouteError, match="htlc minimum"):
        find_route(g, S, T, 1_000_000)


def test_capacity() -> None:
    g = ChannelGraph()
    channel(g, 1, S, A, capacity_sat=2_000_000)
    channel(g, 2, A, T, capacity_sat=1_000_000, fee_base_msat=0, fee_proportional_millionths=0,
            htlc_maximum_msat=10**12)  # fmt: skip  (a maximum above the capacity: the capacity rules)
    channel(g, 3, S, B, capacity_sat=2_000_000)
    channel(g, 4, B, T, capacity_sat=3_000_000, fee_base_msat=10_000, fee_proportional_millionths=10)
    assert find_route(g, S, T, 900_000 * SAT, scorer=fees_only()).node_ids == [A, T]
    assert find_route(g, S, T, 1_500_000 * SAT, scorer=fees_only()).node_ids == [B, T]
    with pytest.raises(NoRouteError, match="capacity"):
        find_route(g, S, T, 2_500_000 * SAT)  # more than the payer's channels hold


def test_unknown_endpoints_and_exclusions() -> None:
    g = diamond()
    with pytest.raises(NoRouteError) as e:
        find_route(g, S, node(50), 1000)
    assert e.value.kind == "unknown_target"
    with pytest.raises(NoRouteError) as e:
        find_route(g, node(50), T, 1000)
    assert e.value.kind == "unknown_source"
    with pytest.raises(NoRouteError) as e:
        find_route(g, S, S, 1000)
    assert e.value.kind == "same_node"
    with pytest.raises(ValueError):
        find_route(g, S, T, 0)
    assert find_route(g, S, T, 1000, excluded=[B], scorer=fees_only()).node_ids == [A, T]
    assert find_route(g, S, T, 1000, excluded=[scid(4)], scorer=fees_only()).node_ids == [A, T]
    d = channel_direction(B, T)
    assert find_route(g, S, T, 1000, excluded=[(scid(4), d)], scorer=fees_only()).node_ids == [A, T]
    assert find_route(g, S, T, 1000, excluded=[(scid(4), 1 - d)], scorer=fees_only()).node_ids == [B, T]
    with pytest.raises(NoRouteError) as e:
        find_route(g, S, T, 1000, excluded=[T])
    assert e.value.kind == "excluded"


def test_max_hops() -> None:
    g = ChannelGraph()
    chain = [S] + [node(10 + i) for i in range(5)] + [T]
    for i in range(len(chain) - 1):
        channel(g, 10 + i, chain[i], chain[i + 1])
    assert len(find_route(g, S, T, 1000).hops) == 6
    with pytest.raises(NoRouteError, match="max hops"):
        find_route(g, S, T, 1000, max_hops=5)


def test_route_hints_reach_an_unannounced_target() -> None:
    g = ChannelGraph()
    channel(g, 1, S, A)
    channel(g, 2, A, B, fee_base_msat=1000, fee_proportional_millionths=0, cltv_expiry_delta=40)
    assert T not in g
    with pytest.raises(NoRouteError):
        find_route(g, S, T, 1_000_000)
    # a private channel B -> T, announced only in the invoice
    hint = (RouteHintHop(B, scid(50), 500, 100, 30),)
    r = find_route(g, S, T, 1_000_000, route_hints=[hint], current_height=100)
    assert r.node_ids == [A, B, T] and r.short_channel_ids[-1] == scid(50)
    assert r.hops[1].fee_msat == 500 + 100  # the hint's policy, on 1,000,000
    assert r.hops[0].fee_msat == 1000
    assert r.total_timelock == 100 + 18 + 30 + 40
    # a two-hop hint through an unannounced node D
    hint2 = (RouteHintHop(A, scid(60), 0, 0, 10), RouteHintHop(D, scid(61), 0, 0, 10))
    r = find_route(g, S, T, 1_000_000, route_hints=[hint, hint2], scorer=fees_only())
    assert r.node_ids == [A, D, T] and r.total_fee_msat == 0
    # a hint's policy replaces the graph's for the same channel direction
    hint3 = (RouteHintHop(A, scid(2), 0, 0, 40), RouteHintHop(B, scid(50), 0, 0, 30))
    r = find_route(g, S, T, 1_000_000, route_hints=[hint3], scorer=fees_only())
    assert r.node_ids == [A, B, T] and r.total_fee_msat == 0


def test_local_liquidity_rules_out_first_hops() -> None:
    g = diamond()
    local = {scid(1): 10**9, scid(3): 500_000}
    assert find_route(g, S, T, 1_000_000, scorer=fees_only(), local_liquidity_msat=local).node_ids == [A, T]
    assert find_route(g, S, T, 400_000, scorer=fees_only(), local_liquidity_msat=local).node_ids == [B, T]


# --------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------


def test_apriori_probability_prefers_big_channels() -> None:
    g = ChannelGraph()
    channel(g, 1, S, A)
    channel(g, 2, A, T, capacity_sat=200_000, fee_base_msat=0, fee_proportional_millionths=0)
    channel(g, 3, S, B)
    channel(g, 4, B, T, capacity_sat=20_000_000, fee_base_msat=1000, fee_proportional_millionths=10)
    r = find_route(g, S, T, 150_000 * SAT)  # 75% of A's channel: unlikely to pass
    assert r.node_ids == [B, T] and r.probability > 0.99
    assert find_route(g, S, T, 150_000 * SAT, scorer=fees_only()).node_ids == [A, T]
    s = Scorer()
    assert s.channel_probability(scid(2), 0, 150_000 * SAT, 200_000 * SAT, 0) == pytest.approx(0.25)
    # the search's inlined a-priori term is the scorer's
    for amount in (1, 10**6, 10**8, 199_000 * SAT, 200_000 * SAT):
        assert s.apriori_neg_log_probability(amount, 200_000 * SAT) == s.neg_log_probability(
            scid(2), 0, amount, 200_000 * SAT, 0
        )


def test_scorer_moves_the_next_route_away_from_a_failed_channel() -> None:
    g = diamond(fee_base_msat=1000, fee_proportional_millionths=0)
    g.update_policy(scid(2), A, fee_base_msat=1000)  # both paths cost the same
    scorer = Scorer()
    now = 1_700_000_000.0
    amount = 2_000_000 * SAT
    first = find_route(g, S, T, amount, scorer=scorer, now=now)
    middle = first.hops[0].node_id
    other = A if middle == B else B
    # the middle node reports temporary_channel_failure for its channel to T
    scorer.payment_failed(first, 0, FailureCode.TEMPORARY_CHANNEL_FAILURE, now)
    d = channel_direction(middle, T)
    failed = first.hops[1].short_channel_id
    assert scorer.channel_probability(failed, d, amount, 10_000_000 * SAT, now) == 0.0
    assert scorer.channel_probability(failed, d, amount // 2, 10_000_000 * SAT, now) == pytest.approx(0.5, abs=1e-3)
    # the reverse direction learnt the complement: at least capacity - amount there
    assert scorer.channel_probability(failed, 1 - d, 8_000_000 * SAT, 10_000_000 * SAT, now) == 1.0
    # the first channel carried it: its lower bound rose
    assert scorer.channel_probability(first.hops[0].short_channel_id, channel_direction(S, middle), amount,
                                      10_000_000 * SAT, now) == 1.0  # fmt: skip
    second = find_route(g, S, T, amount, scorer=scorer, now=now)
    assert second.hops[0].node_id == other
    # the knowledge decays: six half-lives later the failed channel looks nearly untried
    later = now + 6 * scorer.params.liquidity_half_life_s
    p = scorer.channel_probability(failed, d, amount, 10_000_000 * SAT, later)
    assert 0.75 < p < 0.8
    # a node failure (NODE flag) steers away from the node itself, recovering with its own half-life
    scorer2 = Scorer()
    scorer2.payment_failed(first, 0, FailureCode.TEMPORARY_NODE_FAILURE, now)
    assert scorer2.node_probability(middle, now) == 0.0
    assert find_route(g, S, T, amount, scorer=scorer2, now=now).hops[0].node_id == other
    assert scorer2.node_probability(middle, now + 3600) == pytest.approx(0.5)
    # unknown_next_peer: nothing passes that channel, whatever the amount
    scorer3 = Scorer()
    scorer3.payment_failed(first, 0, FailureCode.UNKNOWN_NEXT_PEER, now)
    assert scorer3.channel_probability(failed, d, 1, 10_000_000 * SAT, now) == 0.0
    # a failure at the recipient, or an undecodable one, blames no channel
    scorer4 = Scorer()
    scorer4.payment_failed(first, 1, FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, now)
    scorer4.payment_failed(first, None, FailureCode.TEMPORARY_CHANNEL_FAILURE, now)
    assert scorer4.channel_probability(failed, d, amount, 10_000_000 * SAT, now) == 1.0


def test_scorer_success_and_persistence() -> None:
    g = diamond()
    scorer = Scorer()
    route = find_route(g, S, T, 1_000_000 * SAT, scorer=scorer, now=0)
    scorer.payment_succeeded(route, now=10)
    for hop, prev in zip(route.hops, [S] + route.node_ids):
        assert scorer.liquidity_bounds(hop.short_channel_id, channel_direction(prev, hop.node_id),
                                       10_000_000 * SAT, 10)[0] == hop.amount_msat  # fmt: skip
    scorer.node_failed(A, now=20)
    scorer.channel_failed(scid(2), 1, 123_456, 10_000_000 * SAT, now=30)
    restored = Scorer.from_dict(json.loads(json.dumps(scorer.to_dict())))
    assert restored.to_dict() == scorer.to_dict()
    for args in [(scid(2), 0, 5 * 10**9, 10**10, 100.0), (scid(4), 1, 10**6, 10**10, 50.0)]:
        assert restored.channel_probability(*args) == scorer.channel_probability(*args)
    assert restored.node_probability(A, 100) == scorer.node_probability(A, 100)
    with pytest.raises(ValueError):
        Scorer.from_dict({"channels": {"1": [1, 2]}})
    scorer.forget()
    assert not scorer.knows_channel(scid(2))


# --------------------------------------------------------------------------
# multi-part payments
# --------------------------------------------------------------------------


def parallel_paths(n: int, capacity_sat: int) -> ChannelGraph:
    g = ChannelGraph()
    for i in range(n):
        mid = node(20 + i)
        channel(g, 100 + 2 * i, S, mid, capacity_sat=capacity_sat * 2)
        channel(g, 101 + 2 * i, mid, T, capacity_sat=capacity_sat, fee_base_msat=1000 + i,
                fee_proportional_millionths=100)  # fmt: skip
    return g


def test_split_payment_larger_than_any_channel() -> None:
    g = parallel_paths(3, 1_000_000)
    amount = 2_500_000 * SAT + 7  # more than any single channel to T holds
    with pytest.raises(NoRouteError):
        find_route(g, S, T, amount)
    parts = split_payment(g, S, T, amount, max_fee_msat=300_000)
    assert sum(r.amount_msat for r in parts) == amount
    assert len(parts) >= 3
    used: dict[int, int] = {}
    for r in parts:
        assert r.source == S and r.target == T
        for hop in r.hops:
            used[hop.short_channel_id] = used.get(hop.short_channel_id, 0) + hop.amount_msat
            assert hop.amount_msat <= hop.capacity_sat * SAT
    assert all(used[scid(101 + 2 * i)] <= 1_000_000 * SAT for i in range(3))
    assert sum(r.total_fee_msat for r in parts) <= 300_000
    # each part's hops are consistent BOLT 4 values
    for r in parts:
        mid, last = r.hops
        assert mid.amount_to_forward == last.amount_msat == last.amount_to_forward == r.amount_msat
    # an amount one route can carry stays in one part
    assert len(split_payment(g, S, T, 300_000 * SAT)) == 1
    # too much for the graph, or for the parts allowed
    with pytest.raises(NoRouteError):
        split_payment(g, S, T, 3_100_000 * SAT)
    with pytest.raises(NoRouteError, match="parts"):
        split_payment(g, S, T, amount, max_parts=2)


def test_split_payment_fees_follow_each_part() -> None:
    g = parallel_paths(4, 1_000_000)
    parts = split_payment(g, S, T, 3_000_000 * SAT, max_channel_saturation=1.0)
    for r in parts:
        mid = r.hops[0]
        i = [node(20 + k) for k in range(4)].index(mid.node_id)
        assert mid.fee_msat == 1000 + i + r.amount_msat * 100 // 1_000_000
    assert sum(r.amount_msat for r in parts) == 3_000_000 * SAT


# --------------------------------------------------------------------------
# the real graphs
# --------------------------------------------------------------------------

G2019 = ("graph", "million-channels-2019-05-14")
G2026 = ("graph", "cln-gossmap-2026-02-03")


@cache
def graph_2019() -> ChannelGraph:
    return load_listchannels_json(vectors.path(*G2019, "channels_5-14-19.json.xz"))


def test_2019_graph_counts_and_a_route_between_hubs() -> None:
    g = graph_2019()
    assert g.edge_count == 68_794  # the README's directed entries
    assert g.channel_count == 37_497
    assert g.node_count == 4_275  # nodes with at least one channel
    nodes = json.loads(lzma.decompress(vectors.path(*G2019, "nodes_5-14-19.json.xz").read_bytes()))["nodes"]
    assert len(nodes) == 4_306  # the node file also lists 31 nodes without channels
    assert set(g.nodes()) <= {bytes.fromhex(n["nodeid"]) for n in nodes}
    assert sum(1 for p in g if not p.disabled) == 54_994
    hubs = sorted(g.nodes(), key=g.degree, reverse=True)
    route = find_route(g, hubs[0], hubs[1], 100_000 * SAT, current_height=575_000)
    assert route.target == hubs[1] and route.amount_msat == 100_000 * SAT
    prev = hubs[0]
    for hop in route.hops:  # every hop is a real, enabled channel between the right nodes
        policy = g.policy(hop.short_channel_id, prev)
        assert policy is not None and policy.target == hop.node_id and not policy.disabled
        prev = hop.node_id
    for hop, nxt in zip(route.hops, route.hops[1:]):
        policy = g.policy(nxt.short_channel_id, hop.node_id)
        assert policy is not None
        assert hop.fee_msat == policy.fee_msat(hop.amount_to_forward)
        assert hop.cltv_expiry - hop.outgoing_cltv_value == policy.cltv_expiry_delta


def test_astar_matches_plain_dijkstra_on_the_2019_graph() -> None:
    """The payer-side potentials speed the search up without changing its answer."""
    from htlc.pathfind import _Context  # the internals under test

    g = graph_2019()
    payers = sorted({p.source for p in g if not p.disabled})
    payees = sorted({p.target for p in g if not p.disabled})
    rng = random.Random(7)
    found = 0
    for _ in range(25):
        s, t = rng.choice(payers), rng.choice(payees)
        amount = rng.randint(10_000, 1_000_000) * SAT
        if s == t:
            continue
        answers = []
        for budget, balance in ((0, False), (None, True), (50, True)):
            ctx = _Context(g, s, t, final_cltv_delta=18, max_cltv=2016, max_hops=20, route_hints=(),
                           scorer=None, excluded=(), now=0, current_height=0,
                           local_liquidity_msat=None)  # fmt: skip
            try:
                path = ctx.search(amount, math.inf, {}, budget, balance)
                answers.append([e[2][1] for e in path])
            except NoRouteError:
                answers.append(None)
        assert answers[0] == answers[1] == answers[2]
        found += answers[0] is not None
    assert found >= 5


@pytest.mark.slow
def test_gossmap_reader_matches_the_decoded_json() -> None:
    binary = load_gossmap(
        vectors.path(*G2026, "gossip-store-2026-02-03.compressed"),
        vectors.path(*G2026, "gossip-store-2026-02-03-node-map.xz"),
    )
    decoded = load_listchannels_json(vectors.path(*G2026, "channels-2026-02-03.json.xz"))
    assert (binary.channel_count, binary.node_count, binary.edge_count) == (50_808, 17_324, 101_616)
    assert sum(1 for p in binary if not p.disabled) == 65_810

    def rows(g: ChannelGraph) -> list[tuple[object, ...]]:
        fields = ("short_channel_id", "source", "target", "capacity_sat", "fee_base_msat",
                  "fee_proportional_millionths", "cltv_expiry_delta", "htlc_minimum_msat",
                  "htlc_maximum_msat", "disabled")  # fmt: skip
        return sorted(tuple(getattr(p, f) for f in fields) for p in g)

    assert rows(binary) == rows(decoded)


def test_gossmap_reader_rejects_other_files(tmp_path: object) -> None:
    import gzip
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    bad = tmp_path / "x.compressed"
    bad.write_bytes(gzip.compress(b"GOSSMAP_COMPRESSv2\x00"))
    nm = tmp_path / "map"
    nm.write_text("0:" + S.hex() + ":x\n")
    with pytest.raises(GraphError, match="GOSSMAP_COMPRESSv1"):
        load_gossmap(bad, nm)
    bad.write_bytes(gzip.compress(b"GOSSMAP_COMPRESSv1\x00\x02\x00"))
    with pytest.raises(GraphError, match="truncated"):
        load_gossmap(bad, nm)


def test_route_type_is_frozen() -> None:
    r = find_route(diamond(), S, T, 1000)
    assert isinstance(r, Route)
    with pytest.raises(AttributeError):
        r.hops = ()  # type: ignore[misc]
