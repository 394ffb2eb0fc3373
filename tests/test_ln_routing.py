"""Integration: pathfinding, retries and MPP over real daemons (six `canal channeld` on one regtest chaind).

    A ── B ── C ── D ── E          every channel public; A learns the graph by BOLT 7 gossip
          └── F ──┘                F charges more (5 sat base fee), so routes prefer C

A queries a 4-hop route to E; B pays E an MPP payment larger than any of its channels (split over C
and F); C then drains its side of C–D, and A's next payment fails at C (temporary_channel_failure) and
is retried through F (the SendPaymentV2 stream shows both attempts); an expired invoice and an already
paid one are refused with lnd's errors, and a second payer of a paid invoice gets INCORRECT_PAYMENT_DETAILS;
A killed (SIGKILL) with a payment in flight refuses to pay it again after its restart and tracks it to SUCCEEDED.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest

from daemons import ChainProcess, LightningProcess, connect_nodes, fund_node, graph_complete, in_parallel, wait_for
from proto import invoices_pb2 as inv_pb
from proto import invoices_pb2_grpc as inv_grpc
from proto import lightning_pb2 as ln
from proto import router_pb2 as router

pytestmark = pytest.mark.slow  # six daemons: ~40 s on an idle 2-core machine, ~90 s when it is shared

MIDDLE = 1_000_000  # sat: B–C, C–D, B–F, F–D
F_BASE_FEE_MSAT = 5_000


def _open(a: LightningProcess, b: LightningProcess, sat: int) -> None:
    connect_nodes(a, b)
    a.rpc.OpenChannelSync(ln.OpenChannelRequest(node_pubkey=bytes.fromhex(b.pubkey), local_funding_amount=sat,
                                                sat_per_vbyte=2))


def _pay(sender: LightningProcess, payment_request: str, **kw: Any) -> list[ln.Payment]:
    req = router.SendPaymentRequest(payment_request=payment_request, timeout_seconds=30, fee_limit_sat=50_000, **kw)
    return list(sender.router.SendPaymentV2(req))


class _HtlcEvents:
    """A SubscribeHtlcEvents stream read in a thread (subscribed before this returns)."""

    def __init__(self, node: LightningProcess) -> None:
        self.events: list[Any] = []
        self.call = node.router.SubscribeHtlcEvents(router.SubscribeHtlcEventsRequest())
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        wait_for(lambda: bool(self.events), 10, "subscribed")

    def _read(self) -> None:
        try:
            for event in self.call:
                self.events.append(event)
        except grpc.RpcError:
            pass

    def until(self, ok: Any) -> list[Any]:
        wait_for(lambda: ok(list(self.events)), 10, "HTLC events")
        return list(self.events)

    def close(self) -> None:
        self.call.cancel()
        self.thread.join(5)



@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    tmp: Path = tmp_path_factory.mktemp("routing")
    old = os.environ.get("CANAL_GOSSIP_TRICKLE_S")
    os.environ["CANAL_GOSSIP_TRICKLE_S"] = "0.3"
    chain = ChainProcess(tmp / "chain").start()
    nodes = [LightningProcess(tmp / n, chain, alias=n) for n in "ABCDEF"]
    try:
        in_parallel([n.start for n in nodes])
        a, b, c, d, e, f = nodes
        chain.generate(101)
        for n in (a, b, c, d, f):
            fund_node(chain, n, 5_000_000)
        chain.generate(1)
        for n in (a, b, c, d, f):
            wait_for(lambda n=n: n.rpc.WalletBalance(ln.WalletBalanceRequest()).confirmed_balance > 0, 30, "funded")
        f.rpc.UpdateChannelPolicy(ln.PolicyUpdateRequest(**{"global": True}, base_fee_msat=F_BASE_FEE_MSAT,
                                                         fee_rate_ppm=1, time_lock_delta=80))
        in_parallel([lambda: _open(a, b, 2_500_000), lambda: (_open(b, c, MIDDLE), _open(b, f, MIDDLE)),
                   lambda: _open(c, d, MIDDLE), lambda: _open(f, d, MIDDLE), lambda: _open(d, e, 3_000_000)])
        chain.generate(6)  # public channels are announced at 6 confirmations
        for n, count in ((a, 1), (b, 3), (c, 2), (d, 3), (e, 1), (f, 2)):
            wait_for(lambda n=n, count=count: len(n.rpc.ListChannels(
                ln.ListChannelsRequest(active_only=True)).channels) == count, 30, "channels active")
        wait_for(lambda: graph_complete(a, 6), 60, "A's graph has all six channels and both policies")
        yield chain, a, b, c, d, e, f
    finally:
        in_parallel([p.stop for p in nodes])
        chain.stop()
        if old is None:
            os.environ.pop("CANAL_GOSSIP_TRICKLE_S", None)
        else:
            os.environ["CANAL_GOSSIP_TRICKLE_S"] = old


def test_queryroutes_four_hops(net) -> None:
    chain, a, b, c, d, e, f = net
    resp = a.rpc.QueryRoutes(ln.QueryRoutesRequest(pub_key=e.pubkey, amt=100_000))
    [route] = resp.routes
    assert [h.pub_key for h in route.hops] == [b.pubkey, c.pubkey, d.pubkey, e.pubkey]
    assert route.hops[-1].amt_to_forward_msat == 100_000_000 and route.total_amt_msat == 100_000_000 + \
        route.total_fees_msat
    assert route.total_fees_msat == 3 * (1000 + 100)  # B, C and D: 1 sat + 1 ppm each (our own hop is free)
    assert 0 < resp.success_prob <= 1
    avoid_c = a.rpc.QueryRoutes(ln.QueryRoutesRequest(pub_key=e.pubkey, amt=100_000,
                                                      ignored_nodes=[bytes.fromhex(c.pubkey)]))
    assert [h.pub_key for h in avoid_c.routes[0].hops] == [b.pubkey, f.pubkey, d.pubkey, e.pubkey]
    pair = ln.NodePair(to=bytes.fromhex(c.pubkey))
    setattr(pair, "from", bytes.fromhex(b.pubkey))
    avoid_bc = a.rpc.QueryRoutes(ln.QueryRoutesRequest(pub_key=e.pubkey, amt=100_000, ignored_pairs=[pair]))
    assert avoid_bc.routes[0].hops[1].pub_key == f.pubkey
    from_b = a.rpc.QueryRoutes(ln.QueryRoutesRequest(pub_key=e.pubkey, amt=100_000, source_pub_key=b.pubkey))
    assert [h.pub_key for h in from_b.routes[0].hops] == [c.pubkey, d.pubkey, e.pubkey]
    for impossible in (ln.QueryRoutesRequest(pub_key=e.pubkey, amt=5_000_000),  # more than any channel
                       ln.QueryRoutesRequest(pub_key=e.pubkey, amt=100_000, fee_limit=ln.FeeLimit(fixed=0)),
                       ln.QueryRoutesRequest(pub_key=e.pubkey, amt=100_000, cltv_limit=100),
                       ln.QueryRoutesRequest(pub_key=e.pubkey, amt=100_000, outgoing_chan_ids=[12345])):
        with pytest.raises(grpc.RpcError) as err:
            a.rpc.QueryRoutes(impossible)
        assert err.value.code() == grpc.StatusCode.UNKNOWN and "unable to find a path" in (err.value.details() or "")
    with pytest.raises(grpc.RpcError) as err:
        a.rpc.QueryRoutes(ln.QueryRoutesRequest(pub_key="nothex", amt=1))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_mpp_larger_than_any_middle_channel(net) -> None:
    chain, a, b, c, d, e, f = net
    amount = 1_500_000  # sat: more than any of B's channels (or C–D, F–D) can carry
    # B pays (a payer that knows only the a-priori odds, A, keeps them for the retry below).
    # E's invoice offers basic_mpp, as lnd's: E holds the parts until they add up, then settles them all.
    preimage = os.urandom(32)
    plain = e.rpc.AddInvoice(ln.Invoice(value=amount, r_preimage=preimage))
    assert ln.FeatureBit.MPP_OPT in e.rpc.DecodePayReq(ln.PayReqString(pay_req=plain.payment_request)).features
    updates = _pay(b, plain.payment_request)
    final = updates[-1]
    assert final.status == ln.Payment.SUCCEEDED, ln.PaymentFailureReason.Name(final.failure_reason)
    assert final.payment_preimage == preimage.hex()
    settled = [h for h in final.htlcs if h.status == ln.HTLCAttempt.SUCCEEDED]
    assert len(settled) >= 2
    assert sum(h.route.hops[-1].amt_to_forward_msat for h in settled) == amount * 1000
    assert {h.route.hops[0].pub_key for h in settled} == {c.pubkey, f.pubkey}  # both of B's channels
    for h in settled:
        assert h.route.hops[-1].mpp_record.total_amt_msat == amount * 1000
        assert h.route.hops[-1].mpp_record.payment_addr == plain.payment_addr
    assert final.fee_msat == sum(h.route.total_fees_msat for h in settled) > 0
    settled_inv = e.rpc.LookupInvoice(ln.PaymentHash(r_hash=hashlib.sha256(preimage).digest()))
    assert settled_inv.state == ln.Invoice.SETTLED and settled_inv.amt_paid_msat == amount * 1000
    assert len(settled_inv.htlcs) == len(settled) and {h.state for h in settled_inv.htlcs} == {ln.InvoiceHTLCState.SETTLED}


def test_retry_through_f_after_c_is_drained(net) -> None:
    chain, a, b, c, d, e, f = net
    [cd] = c.rpc.ListChannels(ln.ListChannelsRequest(peer=bytes.fromhex(d.pubkey))).channels
    drain = cd.local_balance - cd.local_constraints.chan_reserve_sat - 20_000
    inv = d.rpc.AddInvoice(ln.Invoice(value=drain))
    assert _pay(c, inv.payment_request)[-1].status == ln.Payment.SUCCEEDED
    [cd] = c.rpc.ListChannels(ln.ListChannelsRequest(peer=bytes.fromhex(d.pubkey))).channels
    assert cd.local_balance < 30_000

    inv = e.rpc.AddInvoice(ln.Invoice(value=100_000, memo="retry"))
    watched = {n: _HtlcEvents(n) for n in (a, c, e, f)}
    updates = _pay(a, inv.payment_request)
    final = updates[-1]
    assert final.status == ln.Payment.SUCCEEDED, ln.PaymentFailureReason.Name(final.failure_reason)
    first, second = final.htlcs
    assert first.status == ln.HTLCAttempt.FAILED and second.status == ln.HTLCAttempt.SUCCEEDED
    assert [h.pub_key for h in first.route.hops] == [b.pubkey, c.pubkey, d.pubkey, e.pubkey]
    assert first.failure.code == ln.Failure.TEMPORARY_CHANNEL_FAILURE and first.failure.failure_source_index == 2
    assert [h.pub_key for h in second.route.hops] == [b.pubkey, f.pubkey, d.pubkey, e.pubkey]
    assert final.fee_msat == second.route.total_fees_msat == (1000 + 100) + (F_BASE_FEE_MSAT + 100) + (1000 + 100)
    # the stream showed the attempts as they went: one in flight, then failed while the payment went on
    states = [(u.status, [h.status for h in u.htlcs]) for u in updates]
    assert (ln.Payment.IN_FLIGHT, [ln.HTLCAttempt.IN_FLIGHT]) in states
    assert (ln.Payment.IN_FLIGHT, [ln.HTLCAttempt.FAILED, ln.HTLCAttempt.IN_FLIGHT]) in states

    # A's scorer learnt that C–D does not carry it, and keeps that on disk (mission control)
    mission_control = a.datadir / "mission_control.json"  # written within a second of the payment's end
    wait_for(lambda: mission_control.exists() and str(first.route.hops[2].chan_id) in json.loads(
        mission_control.read_text())["channels"], 10, "mission control saved")

    # SubscribeHtlcEvents: A saw its two sends, C refused the forward, F forwarded and settled
    sends = watched[a].until(lambda ev: [x.WhichOneof("event") for x in ev] == [
        "subscribed_event", "forward_event", "forward_fail_event", "forward_event", "settle_event"])
    assert all(x.event_type == router.HtlcEvent.SEND for x in sends[1:])
    assert sends[2].outgoing_htlc_id == sends[1].outgoing_htlc_id and sends[4].settle_event.preimage.hex() == \
        final.payment_preimage
    refused = watched[c].until(lambda ev: any(x.HasField("link_fail_event") for x in ev))
    [link_fail] = [x for x in refused if x.HasField("link_fail_event")]
    assert link_fail.event_type == router.HtlcEvent.FORWARD
    assert link_fail.link_fail_event.wire_failure == ln.Failure.TEMPORARY_CHANNEL_FAILURE
    assert link_fail.incoming_channel_id == first.route.hops[1].chan_id
    assert link_fail.link_fail_event.info.incoming_amt_msat == first.route.hops[1].amt_to_forward_msat + \
        first.route.hops[2].fee_msat
    forwarded = watched[f].until(lambda ev: [x.WhichOneof("event") for x in ev] == [
        "subscribed_event", "forward_event", "settle_event"])
    fwd = forwarded[1]
    assert (fwd.incoming_channel_id, fwd.outgoing_channel_id) == (second.route.hops[1].chan_id,
                                                                  second.route.hops[2].chan_id)
    assert fwd.forward_event.info.incoming_amt_msat - fwd.forward_event.info.outgoing_amt_msat == F_BASE_FEE_MSAT + 100
    assert forwarded[2].incoming_htlc_id == fwd.incoming_htlc_id
    got = watched[e].until(lambda ev: any(x.HasField("settle_event") for x in ev))
    [received] = [x for x in got if x.HasField("settle_event")]
    assert received.event_type == router.HtlcEvent.RECEIVE and received.incoming_channel_id == second.route.hops[-1].chan_id
    assert received.settle_event.preimage.hex() == final.payment_preimage

    # paying it again is refused (lnd: ALREADY_EXISTS), and so is a second payer at the payee
    with pytest.raises(grpc.RpcError) as err:
        _pay(a, inv.payment_request)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS and "already paid" in (err.value.details() or "")
    again = _pay(b, inv.payment_request)[-1]
    assert again.status == ln.Payment.FAILED
    assert again.failure_reason == ln.PaymentFailureReason.FAILURE_REASON_INCORRECT_PAYMENT_DETAILS
    refused_at_e = watched[e].until(lambda ev: any(x.HasField("link_fail_event") for x in ev))
    [fail] = [x for x in refused_at_e if x.HasField("link_fail_event")]
    assert fail.event_type == router.HtlcEvent.RECEIVE
    assert fail.link_fail_event.wire_failure == ln.Failure.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS
    for w in watched.values():
        w.close()


def test_payer_killed_mid_payment_keeps_tracking_it(net) -> None:
    chain, a, b, c, d, e, f = net
    preimage = os.urandom(32)
    payment_hash = hashlib.sha256(preimage).digest()
    invoices = inv_grpc.InvoicesStub(e._channel)
    hold = invoices.AddHoldInvoice(inv_pb.AddHoldInvoiceRequest(hash=payment_hash, value=50_000))

    def pay() -> None:
        try:
            _pay(a, hold.payment_request)
        except grpc.RpcError:
            pass  # the payer dies under it

    with ThreadPoolExecutor(1) as pool:
        pool.submit(pay)
        wait_for(lambda: e.rpc.LookupInvoice(ln.PaymentHash(r_hash=payment_hash)).state == ln.Invoice.ACCEPTED, 30,
                 "the HTLC held at E")
        a.kill()  # SIGKILL with the HTLC in flight
    a.start()
    wait_for(lambda: a.rpc.ListChannels(ln.ListChannelsRequest(active_only=True)).channels, 30, "A reconnected")
    with pytest.raises(grpc.RpcError) as err:  # never paid twice
        _pay(a, hold.payment_request)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS and "in transition" in (err.value.details() or "")
    tracked = a.router.TrackPaymentV2(router.TrackPaymentRequest(payment_hash=payment_hash))
    first = next(tracked)
    assert first.status == ln.Payment.IN_FLIGHT and [h.status for h in first.htlcs] == [ln.HTLCAttempt.IN_FLIGHT]
    invoices.SettleInvoice(inv_pb.SettleInvoiceMsg(preimage=preimage))
    final = list(tracked)[-1]
    assert final.status == ln.Payment.SUCCEEDED and final.payment_preimage == preimage.hex()
    assert final.fee_msat == final.htlcs[0].route.total_fees_msat > 0


def _lncli(node: LightningProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "canal", "ln", "--datadir", str(node.datadir), "--json", *args],
                          capture_output=True, text=True, timeout=120)


def test_cli_queryroutes_and_payinvoice(net) -> None:
    chain, a, b, c, d, e, f = net
    out = _lncli(a, "queryroutes", "--dest", e.pubkey, "--amt", "2000", "--ignore_pair", f"{b.pubkey}:{c.pubkey}")
    assert out.returncode == 0, out.stderr
    [route] = json.loads(out.stdout)["routes"]
    assert [h["pub_key"] for h in route["hops"]] == [b.pubkey, f.pubkey, d.pubkey, e.pubkey]
    assert route["total_amt_msat"] == str(2_000_000 + int(route["total_fees_msat"]))  # lncli: int64 as strings
    inv = e.rpc.AddInvoice(ln.Invoice(value=2_000))
    out = _lncli(a, "payinvoice", inv.payment_request, "--timeout", "30s", "--max_parts", "1", "--last_hop", d.pubkey)
    assert out.returncode == 0, out.stderr
    paid = json.loads(out.stdout)
    assert paid["status"] == "SUCCEEDED" and paid["htlcs"][-1]["route"]["hops"][-1]["pub_key"] == e.pubkey
    table = out.stderr.splitlines()
    assert table[0].split()[:2] == ["STATUS", "HTLC_STATUS"]
    assert any(row.startswith("SUCCEEDED") and "SUCCEEDED" in row.split()[1] for row in table[1:])
    assert "Payment status: SUCCEEDED" in out.stderr
    out = _lncli(a, "payinvoice", inv.payment_request)
    assert out.returncode == 1 and "ALREADY_EXISTS" in out.stderr and "invoice is already paid" in out.stderr


def test_expired_invoice_is_refused(net) -> None:
    chain, a, b, c, d, e, f = net
    inv = e.rpc.AddInvoice(ln.Invoice(value=1_000, expiry=1))
    time.sleep(2.5)  # whole seconds: expired once a full second has passed the expiry
    with pytest.raises(grpc.RpcError) as err:
        _pay(a, inv.payment_request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "invoice expired" in (err.value.details() or "")
    payments = a.rpc.ListPayments(ln.ListPaymentsRequest(include_incomplete=True)).payments
    assert inv.r_hash.hex() not in {p.payment_hash for p in payments}  # refused before any payment is recorded
