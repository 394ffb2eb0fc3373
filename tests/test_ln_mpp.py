"""Integration: multi-part payments to a regular (AddInvoice) invoice, receiver side, over real daemons.

    P ── Q          P pays Q; no channel carries INVOICE_SAT alone, so P splits it
    └─ M ─┘         (Q's invoice offers basic_mpp and hints at M's channel to Q)

Q runs with ``--mpp-timeout 8``. First a payment whose second part cannot reach Q (P is given a
route hint through M over a channel M does not have): Q holds the direct part, its set never
completes, and after 8 s Q fails it with ``mpp_timeout``; P ends FAILED (NO_ROUTE, as lnd) with
that failure on its attempt, and Q's invoice is still OPEN. The same again with Q SIGKILLed and
restarted while it holds the part: the part is restored from sqlite and still times out. Then P
pays Q's invoice in parts over both paths and every part settles.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from daemons import ChainProcess, LightningProcess, connect_nodes, wait_for

from proto import chain_pb2 as pb
from proto import lightning_pb2 as ln
from proto import router_pb2 as router_pb
from proto import router_pb2_grpc as router_grpc

CHANNEL_SAT = 600_000
INVOICE_SAT = 800_000  # more than any channel carries
MPP_TIMEOUT_S = 8  # long enough to SIGKILL and restart Q while a part is held


def _router(node: LightningProcess) -> router_grpc.RouterStub:
    return router_grpc.RouterStub(node._channel)


def _active(node: LightningProcess, count: int) -> bool:
    return len(node.rpc.ListChannels(ln.ListChannelsRequest(active_only=True)).channels) == count


def _no_htlcs(node: LightningProcess) -> bool:
    try:
        return not any(c.pending_htlcs for c in node.rpc.ListChannels(ln.ListChannelsRequest()).channels)
    except grpc.RpcError:  # ListChannels can fail while an HTLC is pending: that means "not yet" too
        return False


def _pay(payer: LightningProcess, **kw: Any) -> ln.Payment:
    req = router_pb.SendPaymentRequest(timeout_seconds=60, fee_limit_sat=10_000, **kw)
    return list(_router(payer).SendPaymentV2(req, timeout=90))[-1]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("mpp")
    chain = ChainProcess(tmp / "chain").start()
    nodes: list[LightningProcess] = []
    try:
        p = LightningProcess(tmp / "P", chain, alias="P").start()
        nodes.append(p)
        m = LightningProcess(tmp / "M", chain, alias="M").start()
        nodes.append(m)
        q = LightningProcess(tmp / "Q", chain, alias="Q", extra_args=["--mpp-timeout", str(MPP_TIMEOUT_S)]).start()
        nodes.append(q)
        chain.generate(101)
        for node, outputs in ((p, 2), (m, 1)):
            for _ in range(outputs):  # one confirmed output per channel to fund
                addr = node.rpc.NewAddress(ln.NewAddressRequest()).address
                chain.rpc.SendToAddress(pb.SendToAddressRequest(address=addr, amount_sat=2 * CHANNEL_SAT,
                                                                fee_rate_sat_vb=2))
        chain.generate(1)
        for node in (p, m):
            wait_for(lambda node=node: node.rpc.WalletBalance(ln.WalletBalanceRequest()).confirmed_balance > 0, 30,
                     "funded")
        for a, b in ((p, q), (p, m), (m, q)):
            connect_nodes(a, b)
            a.rpc.OpenChannelSync(ln.OpenChannelRequest(node_pubkey=bytes.fromhex(b.pubkey),
                                                        local_funding_amount=CHANNEL_SAT, sat_per_vbyte=2))
        chain.generate(3)
        for node, count in ((p, 2), (m, 2), (q, 2)):
            wait_for(lambda node=node, count=count: _active(node, count), 30, "channels active")
        yield p, m, q
    finally:
        for node in nodes:
            node.stop()
        chain.stop()


def _pay_with_fake_hint(p: LightningProcess, m: LightningProcess, q: LightningProcess,
                        inv: ln.AddInvoiceResponse) -> ln.Payment:
    """Pay ``inv`` by its fields, with a hint through M over a channel M does not have: that part fails at M."""
    fake_hint = ln.RouteHint(hop_hints=[ln.HopHint(node_id=m.pubkey, chan_id=(999_999 << 40) | 1,
                                                   fee_base_msat=1000, fee_proportional_millionths=1,
                                                   cltv_expiry_delta=40)])
    return _pay(p, dest=bytes.fromhex(q.pubkey), amt=INVOICE_SAT, payment_hash=inv.r_hash,
                payment_addr=inv.payment_addr, final_cltv_delta=80,
                dest_features=[ln.FeatureBit.TLV_ONION_REQ, ln.FeatureBit.PAYMENT_ADDR_REQ, ln.FeatureBit.MPP_OPT],
                route_hints=[fake_hint])


def _log(node: LightningProcess) -> str:
    return "".join(f.read_text(errors="replace") for f in node.datadir.glob("*.log"))


def test_incomplete_set_times_out_with_mpp_timeout(net) -> None:
    p, m, q = net
    inv = q.rpc.AddInvoice(ln.Invoice(value=INVOICE_SAT, memo="never completes"))
    decoded = q.rpc.DecodePayReq(ln.PayReqString(pay_req=inv.payment_request))
    assert ln.FeatureBit.MPP_OPT in decoded.features  # basic_mpp optional, as lnd's invoices
    started = time.monotonic()
    final = _pay_with_fake_hint(p, m, q, inv)
    elapsed = time.monotonic() - started
    assert final.status == ln.Payment.FAILED
    assert final.failure_reason == ln.PaymentFailureReason.FAILURE_REASON_NO_ROUTE, \
        ln.PaymentFailureReason.Name(final.failure_reason)
    timed_out = [h for h in final.htlcs if h.failure.code == ln.Failure.MPP_TIMEOUT]
    assert timed_out, [ln.Failure.FailureCode.Name(h.failure.code) for h in final.htlcs]
    for h in timed_out:  # the direct part, failed by Q itself
        assert [hop.pub_key for hop in h.route.hops] == [q.pubkey]
        assert h.failure.failure_source_index == 1 and h.status == ln.HTLCAttempt.FAILED
        assert h.route.hops[-1].mpp_record.total_amt_msat == INVOICE_SAT * 1000
    assert any(h.failure.code == ln.Failure.UNKNOWN_NEXT_PEER for h in final.htlcs)  # the part through M
    assert elapsed >= MPP_TIMEOUT_S  # Q waited for the rest of the set before it gave up
    # Q: the invoice is still OPEN, nothing paid, its parts canceled; no HTLC is left in any channel.
    after = q.rpc.LookupInvoice(ln.PaymentHash(r_hash=inv.r_hash))
    assert after.state == ln.Invoice.OPEN and after.amt_paid_msat == 0
    assert after.htlcs and {h.state for h in after.htlcs} == {ln.InvoiceHTLCState.CANCELED}
    wait_for(lambda: _no_htlcs(q), 20, "no HTLC left at Q")


def test_held_part_survives_a_sigkill_and_still_times_out(net) -> None:
    p, m, q = net
    inv = q.rpc.AddInvoice(ln.Invoice(value=INVOICE_SAT, memo="held across a crash"))
    with ThreadPoolExecutor(1) as pool:
        paying = pool.submit(_pay_with_fake_hint, p, m, q, inv)

        def held() -> bool:
            return any(h.state == ln.InvoiceHTLCState.ACCEPTED
                       for h in q.rpc.LookupInvoice(ln.PaymentHash(r_hash=inv.r_hash)).htlcs)
        wait_for(held, 30, "Q holds the direct part")
        q.kill()  # SIGKILL while the part is held (its set is at most 8 s old)
        q.start()
        final = paying.result(timeout=90)
    assert final.status == ln.Payment.FAILED
    assert any(h.failure.code == ln.Failure.MPP_TIMEOUT for h in final.htlcs), \
        [ln.Failure.FailureCode.Name(h.failure.code) for h in final.htlcs]
    after = q.rpc.LookupInvoice(ln.PaymentHash(r_hash=inv.r_hash))
    assert after.state == ln.Invoice.OPEN and {h.state for h in after.htlcs} == {ln.InvoiceHTLCState.CANCELED}
    assert "unresolved at start: deciding it again" in _log(q)  # the held part was restored and decided again
    wait_for(lambda: _active(q, 2), 30, "Q's channels active again")


def test_invoice_larger_than_any_channel_is_paid_in_parts(net) -> None:
    p, m, q = net
    inv = q.rpc.AddInvoice(ln.Invoice(value=INVOICE_SAT, memo="in parts"))
    q_before = sum(c.local_balance for c in q.rpc.ListChannels(ln.ListChannelsRequest()).channels)
    final = _pay(p, payment_request=inv.payment_request)
    assert final.status == ln.Payment.SUCCEEDED, ln.PaymentFailureReason.Name(final.failure_reason)
    settled = [h for h in final.htlcs if h.status == ln.HTLCAttempt.SUCCEEDED]
    assert len(settled) >= 2 and {h.route.hops[0].pub_key for h in settled} == {q.pubkey, m.pubkey}
    assert sum(h.route.hops[-1].amt_to_forward_msat for h in settled) == INVOICE_SAT * 1000
    invoice = q.rpc.LookupInvoice(ln.PaymentHash(r_hash=inv.r_hash))
    assert invoice.state == ln.Invoice.SETTLED and invoice.amt_paid_msat == INVOICE_SAT * 1000
    assert invoice.r_preimage.hex() == final.payment_preimage
    assert len(invoice.htlcs) == len(settled)
    assert {h.state for h in invoice.htlcs} == {ln.InvoiceHTLCState.SETTLED}
    assert {h.mpp_total_amt_msat for h in invoice.htlcs} == {INVOICE_SAT * 1000}
    wait_for(lambda: sum(c.local_balance for c in q.rpc.ListChannels(ln.ListChannelsRequest()).channels)
             == q_before + INVOICE_SAT, 20, "Q's channels hold the payment")
