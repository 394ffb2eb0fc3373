"""The sans-IO payment lifecycle (htlc.lifecycle) on hand-made graphs: retries, node failures, limits, MPP, time."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from base_chain.crypto import PrivateKey

from htlc.failure import FailureCode
from htlc.graph import ChannelGraph, channel_direction
from htlc.invoice import RouteHintHop
from htlc.lifecycle import (
    BLOCK_PADDING,
    KEYSEND_RECORD,
    ChannelPolicyUpdate,
    Finished,
    PaymentIntent,
    PaymentLifecycle,
    Shard,
)
from htlc.onion import HopPayload
from htlc.pathfind import FirstHop
from htlc.payments import UNREADABLE_FAILURE, FailureReason
from htlc.scoring import Scorer

A, B, C, D, E, F, G = (PrivateKey(hashlib.sha256(n.encode()).digest()).public_key().to_bytes() for n in "ABCDEFG")
NAMES = {A: "A", B: "B", C: "C", D: "D", E: "E", F: "F", G: "G"}
HASH = bytes(range(32))
SECRET = bytes(range(32, 64))
HEIGHT = 1000
T0 = 1_700_000_000.0


def _both(g: ChannelGraph, x: bytes, y: bytes, scid: int, cap_sat: int = 1_000_000, **policy: Any) -> None:
    g.add_channel(x, y, scid, capacity_sat=cap_sat, **policy)
    g.add_channel(y, x, scid, capacity_sat=cap_sat, **policy)


def network(detour_fee_base: int = 1000) -> ChannelGraph:
    """A's view: A–B (ours, given as a first hop), B–C–D–E and the detour B–F–D."""
    g = ChannelGraph()
    _both(g, B, C, 2)
    _both(g, C, D, 3)
    _both(g, D, E, 4)
    _both(g, B, F, 5, fee_base_msat=detour_fee_base)
    _both(g, F, D, 6, fee_base_msat=detour_fee_base)
    return g


FIRST = [FirstHop(B, 1, 2_000_000_000, 1_500_000_000)]


def lifecycle(intent: PaymentIntent, graph: ChannelGraph | None = None) -> PaymentLifecycle:
    return PaymentLifecycle(intent, A, graph or network(), Scorer(), T0)


def intent(amount_msat: int = 50_000_000, **kw: object) -> PaymentIntent:
    args: dict[str, object] = dict(destination=E, amount_msat=amount_msat, payment_hash=HASH, final_cltv_delta=40,
                                   payment_secret=SECRET, fee_limit_msat=1_000_000, timeout_s=60)
    args.update(kw)
    return PaymentIntent(**args)  # type: ignore[arg-type]


def shards(decision: list[Shard] | Finished | None) -> list[Shard]:
    assert isinstance(decision, list), decision
    return decision


def path(shard: Shard) -> str:
    return "".join(NAMES[h.node_id] for h in shard.route.hops)


def test_first_route_payloads_and_expiries() -> None:
    lc = lifecycle(intent())
    [s] = shards(lc.step(T0, HEIGHT, FIRST))
    assert path(s) == "BCDE" and s.route.source == A
    hops = s.route.hops
    assert hops[0].short_channel_id == 1 and hops[0].fee_msat == 1000 + 50  # B's fee; our own hop is free
    final = hops[-1]
    assert final.amount_to_forward == 50_000_000 and final.outgoing_cltv_value == HEIGHT + 40 + BLOCK_PADDING
    last = s.payloads[-1]
    assert last.payment_data is not None and last.payment_data.payment_secret == SECRET
    assert last.payment_data.total_msat == 50_000_000
    assert s.payloads[0].short_channel_id == 2  # B forwards over B–C
    # nothing more to launch while the whole amount is in flight
    assert lc.step(T0, HEIGHT, FIRST) is None and lc.in_flight_msat == 50_000_000


def test_retry_after_temporary_channel_failure_goes_elsewhere() -> None:
    lc = lifecycle(intent())
    [s] = shards(lc.step(T0, HEIGHT, FIRST))
    assert path(s) == "BCDE"
    lc.shard_failed(s.shard_id, 2, FailureCode.TEMPORARY_CHANNEL_FAILURE, T0 + 1)  # C could not pass it to D
    [retry] = shards(lc.step(T0 + 1, HEIGHT, FIRST))
    assert path(retry) == "BFDE"
    assert (3, channel_direction(C, D)) in lc.s.excluded
    lc.shard_succeeded(retry.shard_id, b"\x11" * 32, T0 + 2)
    done = lc.step(T0 + 2, HEIGHT, FIRST)
    assert isinstance(done, Finished) and done.reason is FailureReason.NONE and done.preimage == b"\x11" * 32


def test_node_failure_avoids_the_node() -> None:
    lc = lifecycle(intent())
    [s] = shards(lc.step(T0, HEIGHT, FIRST))
    lc.shard_failed(s.shard_id, 2, FailureCode.TEMPORARY_NODE_FAILURE, T0 + 1)
    [retry] = shards(lc.step(T0 + 1, HEIGHT, FIRST))
    assert C not in retry.route.node_ids and path(retry) == "BFDE"
    lc.shard_failed(retry.shard_id, 2, FailureCode.PERMANENT_NODE_FAILURE, T0 + 2)  # F too
    done = lc.step(T0 + 2, HEIGHT, FIRST)
    assert isinstance(done, Finished) and done.reason is FailureReason.NO_ROUTE
    assert "permanent_node_failure" in done.message


def test_fee_limit_rules_out_the_expensive_detour() -> None:
    lc = lifecycle(intent(fee_limit_msat=5_000), network(detour_fee_base=50_000))
    [s] = shards(lc.step(T0, HEIGHT, FIRST))
    assert path(s) == "BCDE" and s.route.total_fee_msat <= 5_000
    lc.shard_failed(s.shard_id, 2, FailureCode.TEMPORARY_CHANNEL_FAILURE, T0 + 1)
    done = lc.step(T0 + 1, HEIGHT, FIRST)
    assert isinstance(done, Finished) and done.reason is FailureReason.NO_ROUTE
    # with a limit that covers it, the same failure leads to the detour
    lc2 = lifecycle(intent(fee_limit_msat=500_000), network(detour_fee_base=50_000))
    [s2] = shards(lc2.step(T0, HEIGHT, FIRST))
    lc2.shard_failed(s2.shard_id, 2, FailureCode.TEMPORARY_CHANNEL_FAILURE, T0 + 1)
    assert path(shards(lc2.step(T0 + 1, HEIGHT, FIRST))[0]) == "BFDE"


def test_mpp_when_no_single_channel_carries_the_amount() -> None:
    g = ChannelGraph()  # two disjoint paths of 100k sat each from B to E
    _both(g, B, C, 2, cap_sat=100_000)
    _both(g, C, E, 3, cap_sat=100_000)
    _both(g, B, F, 5, cap_sat=100_000)
    _both(g, F, E, 6, cap_sat=100_000)
    amount = 150_000_000
    lc = lifecycle(intent(amount), g)
    parts = shards(lc.step(T0, HEIGHT, FIRST))
    assert len(parts) >= 2 and sum(p.route.amount_msat for p in parts) == amount
    for p in parts:
        data = p.payloads[-1].payment_data
        assert data is not None and data.payment_secret == SECRET and data.total_msat == amount
        assert p.route.amount_msat <= 100_000_000
    assert lc.step(T0, HEIGHT, FIRST) is None
    # a part fails: the payment goes on (another part is in flight), then that amount is routed again
    lc.shard_failed(parts[0].shard_id, 3, FailureCode.MPP_TIMEOUT, T0 + 1)
    again = shards(lc.step(T0 + 1, HEIGHT, FIRST))
    assert sum(p.route.amount_msat for p in again) == parts[0].route.amount_msat
    # without a payment secret (keysend) there is no splitting
    ks = lifecycle(intent(amount, payment_secret=None, keysend_preimage=b"\x22" * 32), g)
    done = ks.step(T0, HEIGHT, FIRST)
    assert isinstance(done, Finished) and done.reason is FailureReason.NO_ROUTE


def test_max_parts_bounds_the_split() -> None:
    g = ChannelGraph()
    _both(g, B, E, 2, cap_sat=100_000)
    _both(g, B, C, 3, cap_sat=100_000)
    _both(g, C, E, 4, cap_sat=100_000)
    done = lifecycle(intent(150_000_000, max_parts=1), g).step(T0, HEIGHT, FIRST)
    assert isinstance(done, Finished) and done.reason is FailureReason.NO_ROUTE


def test_timeout() -> None:
    lc = lifecycle(intent(timeout_s=30))
    [s] = shards(lc.step(T0, HEIGHT, FIRST))
    lc.shard_failed(s.shard_id, 2, FailureCode.TEMPORARY_CHANNEL_FAILURE, T0 + 31)
    done = lc.step(T0 + 31, HEIGHT, FIRST)
    assert isinstance(done, Finished) and done.reason is FailureReason.TIMEOUT
    assert "temporary_channel_failure" in done.message
    # in flight at the deadline: wait for it, no new attempt
    lc2 = lifecycle(intent(100_000_000, timeout_s=30))
    [s2] = shards(lc2.step(T0, HEIGHT, FIRST))
    assert lc2.step(T0 + 40, HEIGHT, FIRST) is None
    lc2.shard_failed(s2.shard_id, 2, FailureCode.TEMPORARY_CHANNEL_FAILURE, T0 + 41)
    done2 = lc2.step(T0 + 41, HEIGHT, FIRST)
    assert isinstance(done2, Finished) and done2.reason is FailureReason.TIMEOUT


@pytest.mark.parametrize(("code", "reason"), [
    (FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, FailureReason.INCORRECT_PAYMENT_DETAILS),
    (FailureCode.FINAL_INCORRECT_HTLC_AMOUNT, FailureReason.ERROR),
    (FailureCode.FINAL_INCORRECT_CLTV_EXPIRY, FailureReason.ERROR),
])
def test_final_failure_reasons_from_the_recipient(code: FailureCode, reason: FailureReason) -> None:
    lc = lifecycle(intent())
    [s] = shards(lc.step(T0, HEIGHT, FIRST))
    lc.shard_failed(s.shard_id, 4, code, T0 + 1)
    done = lc.step(T0 + 1, HEIGHT, FIRST)
    assert isinstance(done, Finished) and done.reason is reason


def test_terminal_failure_waits_for_the_other_parts() -> None:
    g = ChannelGraph()
    _both(g, B, C, 2, cap_sat=100_000)
    _both(g, C, E, 3, cap_sat=100_000)
    _both(g, B, F, 5, cap_sat=100_000)
    _both(g, F, E, 6, cap_sat=100_000)
    lc = lifecycle(intent(150_000_000), g)
    first, *rest = shards(lc.step(T0, HEIGHT, FIRST))
    lc.shard_failed(first.shard_id, 3, FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, T0 + 1)
    assert lc.step(T0 + 1, HEIGHT, FIRST) is None  # the others are still out
    for s in rest:
        lc.shard_failed(s.shard_id, 3, FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, T0 + 1)
    done = lc.step(T0 + 1, HEIGHT, FIRST)
    assert isinstance(done, Finished) and done.reason is FailureReason.INCORRECT_PAYMENT_DETAILS


def test_insufficient_balance_and_unknown_destination() -> None:
    poor = [FirstHop(B, 1, 2_000_000_000, 10_000_000)]
    done = lifecycle(intent()).step(T0, HEIGHT, poor)
    assert isinstance(done, Finished) and done.reason is FailureReason.INSUFFICIENT_BALANCE
    assert lifecycle(intent()).step(T0, HEIGHT, []) == Finished(
        FailureReason.INSUFFICIENT_BALANCE, "insufficient local balance: can send 0 of 50000000 msat")
    done = lifecycle(intent(destination=G)).step(T0, HEIGHT, FIRST)
    assert isinstance(done, Finished) and done.reason is FailureReason.NO_ROUTE and "not in the graph" in done.message


def test_our_channel_refusing_and_outgoing_chan_ids() -> None:
    two = [*FIRST, FirstHop(F, 7, 2_000_000_000, 1_500_000_000)]
    lc = lifecycle(intent(), network())
    [s] = shards(lc.step(T0, HEIGHT, two))
    lc.launch_failed(s.shard_id, "peer offline")
    [s2] = shards(lc.step(T0, HEIGHT, two))
    assert s2.first_hop != s.first_hop
    only = lifecycle(intent(outgoing_chan_ids=(7,)))
    assert shards(only.step(T0, HEIGHT, two))[0].first_hop == 7


def test_last_hop_and_route_hints() -> None:
    g = network()
    _both(g, C, E, 8, fee_base_msat=0)
    assert path(shards(lifecycle(intent(), g).step(T0, HEIGHT, FIRST))[0]) == "BCE"
    assert path(shards(lifecycle(intent(last_hop=D), g).step(T0, HEIGHT, FIRST))[0]) == "BCDE"
    # a payee the graph does not know, behind a private channel D–G: reached through the hint from D
    hint = (RouteHintHop(D, 9, 1000, 1, 40),)
    lc = lifecycle(intent(destination=G, route_hints=(hint,)), g)
    [s] = shards(lc.step(T0, HEIGHT, FIRST))
    assert s.route.node_ids[-2:] == [D, G] and s.route.hops[-1].short_channel_id == 9


def test_keysend_final_payload() -> None:
    preimage = b"\x33" * 32
    lc = lifecycle(intent(payment_secret=None, keysend_preimage=preimage, custom_records=((65537, b"hi"),)))
    [s] = shards(lc.step(T0, HEIGHT, FIRST))
    final = HopPayload.decode(s.payloads[-1].encode(), is_final=True)
    assert final.keysend_preimage == preimage and dict(final.custom_records)[65537] == b"hi"
    assert lc.intent.final_records() == ((65537, b"hi"), (KEYSEND_RECORD, preimage))


def test_channel_update_in_a_failure_is_applied_and_retried() -> None:
    g = network()
    lc = lifecycle(intent(), g)
    [s] = shards(lc.step(T0, HEIGHT, FIRST))
    assert path(s) == "BCDE"
    update = ChannelPolicyUpdate(3, channel_direction(C, D), 100, fee_base_msat=5000, fee_proportional_millionths=1,
                                 cltv_expiry_delta=40, htlc_minimum_msat=0, htlc_maximum_msat=1_000_000_000,
                                 disabled=False)
    lc.shard_failed(s.shard_id, 2, FailureCode.FEE_INSUFFICIENT, T0 + 1, update)
    policy = g.policy(3, C)
    assert policy is not None and policy.fee_base_msat == 5000 and policy.last_update == 100
    [retry] = shards(lc.step(T0 + 1, HEIGHT, FIRST))
    hop_c = retry.route.hops[1]
    assert path(retry) != "BCDE" or hop_c.fee_msat >= 5000


def test_a_failure_cannot_change_the_policy_of_another_nodes_channel() -> None:
    """C's error carries an update (signed by C) for D's direction of D–E: not C's to change, ignored."""
    g = network()
    lc = lifecycle(intent(), g)
    [s] = shards(lc.step(T0, HEIGHT, FIRST))
    assert path(s) == "BCDE"
    update = ChannelPolicyUpdate(4, channel_direction(D, E), 100, fee_base_msat=0, fee_proportional_millionths=0,
                                 cltv_expiry_delta=40, htlc_minimum_msat=0, htlc_maximum_msat=1, disabled=True)
    lc.shard_failed(s.shard_id, 2, FailureCode.FEE_INSUFFICIENT, T0 + 1, update)
    policy = g.policy(4, D)
    assert policy is not None and not policy.disabled and policy.last_update != 100


def test_unreadable_failure_on_a_direct_route_is_final() -> None:
    g = ChannelGraph()
    lc = lifecycle(intent(destination=B), g)
    [s] = shards(lc.step(T0, HEIGHT, FIRST))
    assert path(s) == "B" and s.route.total_fee_msat == 0
    lc.shard_failed(s.shard_id, 0, UNREADABLE_FAILURE, T0 + 1)
    done = lc.step(T0 + 1, HEIGHT, FIRST)
    assert isinstance(done, Finished) and done.reason is FailureReason.ERROR


def test_max_shard_size_caps_every_part() -> None:
    lc = lifecycle(intent(50_000_000, max_shard_msat=20_000_000))
    parts = shards(lc.step(T0, HEIGHT, FIRST))
    assert len(parts) == 3 and sum(p.route.amount_msat for p in parts) == 50_000_000
    assert all(p.route.amount_msat <= 20_000_000 for p in parts)
    done = lifecycle(intent(50_000_000, max_shard_msat=20_000_000, max_parts=2)).step(T0, HEIGHT, FIRST)
    assert isinstance(done, Finished) and done.reason is FailureReason.NO_ROUTE


def _triangle() -> tuple[ChannelGraph, list[FirstHop]]:
    """A's channels A–B (1) and A–C (10), both in the graph, and B–C (2): B→C is cheaper than C→B."""
    g = ChannelGraph()
    _both(g, A, B, 1)
    _both(g, A, C, 10)
    g.add_channel(B, C, 2, capacity_sat=1_000_000, fee_base_msat=1000)
    g.add_channel(C, B, 2, capacity_sat=1_000_000, fee_base_msat=9000)
    return g, [FirstHop(B, 1, 2_000_000_000, 1_500_000_000), FirstHop(C, 10, 2_000_000_000, 1_500_000_000)]


def test_self_payment_goes_out_one_channel_and_back_through_another() -> None:
    g, first = _triangle()
    lc = lifecycle(intent(destination=A, allow_self_payment=True), g)
    [s] = shards(lc.step(T0, HEIGHT, first))
    assert path(s) == "BCA" and s.route.short_channel_ids == [1, 2, 10]
    hops = s.route.hops
    fee_c = 1000 + 50_000_000 * 1 // 1_000_000  # C forwards to A over 10
    fee_b = 1000 + (50_000_000 + fee_c) * 1 // 1_000_000  # B forwards to C over 2
    assert [h.fee_msat for h in hops] == [fee_b, fee_c, 0] and s.route.total_fee_msat == fee_b + fee_c
    assert hops[-1].amount_to_forward == 50_000_000 and hops[-1].outgoing_cltv_value == HEIGHT + 40 + BLOCK_PADDING
    assert hops[1].cltv_expiry == hops[2].cltv_expiry + 40 and hops[0].cltv_expiry == hops[1].cltv_expiry + 40
    assert [p.short_channel_id for p in s.payloads[:-1]] == [2, 10]  # B forwards over 2, C back to us over 10
    data = s.payloads[-1].payment_data
    assert data is not None and data.payment_secret == SECRET and data.total_msat == 50_000_000
    # C cannot pass it back to us: the retry goes the other way round, still never back over its first hop
    lc.shard_failed(s.shard_id, 2, FailureCode.TEMPORARY_CHANNEL_FAILURE, T0 + 1)
    [retry] = shards(lc.step(T0 + 1, HEIGHT, first))
    assert path(retry) == "CBA" and retry.route.short_channel_ids == [10, 2, 1]
    lc.shard_failed(retry.shard_id, 2, FailureCode.TEMPORARY_CHANNEL_FAILURE, T0 + 2)
    done = lc.step(T0 + 2, HEIGHT, first)
    assert isinstance(done, Finished) and done.reason is FailureReason.NO_ROUTE


def test_self_payment_needs_the_flag_and_a_second_channel() -> None:
    g, first = _triangle()
    refused = lifecycle(intent(destination=A), g).step(T0, HEIGHT, first)
    assert isinstance(refused, Finished) and refused.reason is FailureReason.NO_ROUTE
    assert "same" in refused.message
    # out over the only channel we can send on, back over the other; with one channel, no way back (lnd)
    [one] = shards(lifecycle(intent(destination=A, allow_self_payment=True), g).step(T0, HEIGHT, first[:1]))
    assert path(one) == "BCA"
    lone = ChannelGraph()
    _both(lone, A, B, 1)
    alone = lifecycle(intent(destination=A, allow_self_payment=True), lone).step(T0, HEIGHT, first[:1])
    assert isinstance(alone, Finished) and alone.reason is FailureReason.NO_ROUTE
    # the fee limit and the first hop's balance hold for the circular route too
    cheap = lifecycle(intent(destination=A, allow_self_payment=True, fee_limit_msat=1500), g).step(T0, HEIGHT, first)
    assert isinstance(cheap, Finished) and cheap.reason is FailureReason.NO_ROUTE
    poor = [FirstHop(B, 1, 2_000_000_000, 50_001_000), FirstHop(C, 10, 2_000_000_000, 1_500_000_000)]
    [s] = shards(lifecycle(intent(destination=A, allow_self_payment=True), g).step(T0, HEIGHT, poor))
    assert path(s) == "CBA"  # B's way needs more than channel 1 can send
    [out10] = shards(lifecycle(intent(destination=A, allow_self_payment=True, outgoing_chan_ids=(10,)), g).step(
        T0, HEIGHT, first))
    assert out10.first_hop == 10 and path(out10) == "CBA"
