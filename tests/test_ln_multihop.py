"""Integration: a payment over two hops (alice -> bob -> carol) through bob's forwarding, with route hints."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemons import ChainProcess, LightningProcess, connect_nodes, fund_node, wait_for
from proto import lightning_pb2 as ln
from proto import router_pb2 as router


def _pay(sender: LightningProcess, payment_request: str) -> ln.Payment:
    final = None
    for update in sender.router.SendPaymentV2(router.SendPaymentRequest(
            payment_request=payment_request, timeout_seconds=30, fee_limit_sat=100)):
        final = update
    assert final is not None
    return final


@pytest.fixture
def line(tmp_path: Path):
    chain = ChainProcess(tmp_path / "chain").start()
    nodes = [LightningProcess(tmp_path / n, chain, alias=n).start() for n in ("alice", "bob", "carol")]
    try:
        chain.generate(101)
        alice, bob, carol = nodes
        fund_node(chain, alice, 100_000_000)
        fund_node(chain, bob, 100_000_000)
        chain.generate(1)
        for n in (alice, bob):
            wait_for(lambda n=n: n.rpc.WalletBalance(ln.WalletBalanceRequest()).confirmed_balance > 0, 30, "funded")
        connect_nodes(alice, bob)
        connect_nodes(bob, carol)
        alice.rpc.OpenChannelSync(ln.OpenChannelRequest(node_pubkey=bytes.fromhex(bob.pubkey),
                                                        local_funding_amount=1_000_000, sat_per_vbyte=2))
        bob.rpc.OpenChannelSync(ln.OpenChannelRequest(node_pubkey=bytes.fromhex(carol.pubkey),
                                                      local_funding_amount=1_000_000, sat_per_vbyte=2))
        chain.generate(3)
        wait_for(lambda: len(bob.rpc.ListChannels(ln.ListChannelsRequest(active_only=True)).channels) == 2, 30,
                 "both channels active")
        wait_for(lambda: carol.rpc.ListChannels(ln.ListChannelsRequest(active_only=True)).channels, 30, "carol's")
        yield chain, alice, bob, carol
    finally:
        for p in [*nodes, chain]:
            p.stop()


def test_two_hop_payment_through_bob(line) -> None:
    chain, alice, bob, carol = line
    invoice = carol.rpc.AddInvoice(ln.Invoice(value=20_000, memo="two hops"))
    decoded = alice.rpc.DecodePayReq(ln.PayReqString(pay_req=invoice.payment_request))
    assert decoded.destination == carol.pubkey and decoded.route_hints[0].hop_hints[0].node_id == bob.pubkey
    before = {n: n.rpc.ChannelBalance(ln.ChannelBalanceRequest()).local_balance.msat for n in (alice, bob, carol)}
    payment = _pay(alice, invoice.payment_request)
    assert payment.status == ln.Payment.SUCCEEDED, payment.failure_reason
    fee_msat = 1000 + 20_000_000 // 1_000_000  # bob's policy: 1 sat base + 1 ppm
    assert payment.fee_msat == fee_msat and len(payment.htlcs[0].route.hops) == 2
    wait_for(lambda: carol.rpc.LookupInvoice(ln.PaymentHash(r_hash=invoice.r_hash)).state == ln.Invoice.SETTLED,
             20, "settled")

    def balances() -> dict[LightningProcess, int]:
        return {n: n.rpc.ChannelBalance(ln.ChannelBalanceRequest()).local_balance.msat for n in (alice, bob, carol)}

    # The payer learns the preimage as soon as bob fulfills; the fulfill is in both commitments a dance later.
    after = wait_for(lambda: (b := balances())[bob] - before[bob] == fee_msat and b, 20,
                     "bob's balance to settle at exactly his fee")
    assert before[alice] - after[alice] == 20_000_000 + fee_msat
    assert after[bob] - before[bob] == fee_msat  # bob earned exactly his fee
    assert after[carol] - before[carol] == 20_000_000

    # A payment carol cannot take fails at carol; the failure reaches alice through bob's wrapping.
    bogus = carol.rpc.AddInvoice(ln.Invoice(value=5_000))
    carol.rpc.ListInvoices(ln.ListInvoiceRequest())
    from proto import invoices_pb2 as inv
    from proto import invoices_pb2_grpc as inv_grpc

    inv_grpc.InvoicesStub(carol._channel).CancelInvoice(inv.CancelInvoiceMsg(payment_hash=bogus.r_hash))
    failed = _pay(alice, bogus.payment_request)
    assert failed.status == ln.Payment.FAILED
    assert failed.failure_reason == ln.PaymentFailureReason.FAILURE_REASON_INCORRECT_PAYMENT_DETAILS
    # Channels still work afterwards.
    again = carol.rpc.AddInvoice(ln.Invoice(value=1_000))
    assert _pay(alice, again.payment_request).status == ln.Payment.SUCCEEDED

    # Bob's forwarding log has exactly the two settled forwards (the failed one is not a forward), alice's none.
    def scid(node: LightningProcess, peer: LightningProcess) -> int:
        chans = node.rpc.ListChannels(ln.ListChannelsRequest(peer=bytes.fromhex(peer.pubkey))).channels
        return chans[0].chan_id

    fees = [fee_msat, 1000 + 1_000_000 // 1_000_000]  # 1,020 and 1,001 msat
    wait_for(lambda: len(bob.rpc.ForwardingHistory(ln.ForwardingHistoryRequest()).forwarding_events) == 2, 20,
             "bob's forwards logged")
    history = bob.rpc.ForwardingHistory(ln.ForwardingHistoryRequest())
    assert history.last_offset_index == 2
    for event, amount, fee in zip(history.forwarding_events, [20_000_000, 1_000_000], fees, strict=True):
        assert (event.chan_id_in, event.chan_id_out) == (scid(bob, alice), scid(bob, carol))
        assert (event.amt_in_msat, event.amt_out_msat, event.fee_msat) == (amount + fee, amount, fee)
        assert (event.amt_in, event.amt_out, event.fee) == ((amount + fee) // 1000, amount // 1000, fee // 1000)
        assert event.timestamp_ns == event.timestamp * 10**9 > 0
    report = bob.rpc.FeeReport(ln.FeeReportRequest())
    assert report.day_fee_sum == report.week_fee_sum == report.month_fee_sum == sum(fees) // 1000 == 2
    assert {(c.chan_id, c.base_fee_msat, c.fee_per_mil) for c in report.channel_fees} == {
        (scid(bob, alice), 1000, 1), (scid(bob, carol), 1000, 1)}
    assert alice.rpc.ForwardingHistory(ln.ForwardingHistoryRequest()).forwarding_events == []
    assert alice.rpc.FeeReport(ln.FeeReportRequest()).day_fee_sum == 0
