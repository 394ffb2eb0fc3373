"""Integration: payments between two `canal channeld` over one channel (lnd's Lightning, Router and Invoices APIs)."""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import grpc
import pytest
from daemons import ChainProcess, LightningProcess, wait_for

from proto import chain_pb2 as pb
from proto import invoices_pb2 as inv_pb
from proto import invoices_pb2_grpc as inv_grpc
from proto import lightning_pb2 as ln
from proto import router_pb2 as router_pb
from proto import router_pb2_grpc as router_grpc

KEYSEND = 5482373484
SUCCEEDED, FAILED, IN_FLIGHT = ln.Payment.SUCCEEDED, ln.Payment.FAILED, ln.Payment.IN_FLIGHT


class Node:
    """A LightningProcess with Router and Invoices stubs (made again after a restart)."""

    def __init__(self, proc: LightningProcess) -> None:
        self.proc = proc
        self._channel: grpc.Channel | None = None

    @property
    def rpc(self) -> Any:
        return self.proc.rpc

    def _ch(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = self.proc.channel()
        return self._channel

    @property
    def router(self) -> router_grpc.RouterStub:
        return router_grpc.RouterStub(self._ch())

    @property
    def invoices(self) -> inv_grpc.InvoicesStub:
        return inv_grpc.InvoicesStub(self._ch())

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def restart(self) -> None:
        self.close()
        self.proc.stop()
        self.proc.start()

    def local_msat(self) -> int:
        return int(self.rpc.ChannelBalance(ln.ChannelBalanceRequest()).local_balance.msat)

    def settled(self) -> bool:
        """One active channel and no HTLC in it.

        ListChannels fails while a channel has an HTLC (channels/channel_service.py reads
        ``Htlc.payment_hash`` instead of ``Htlc.add.payment_hash``): that also means "not yet".
        """
        try:
            chans = self.rpc.ListChannels(ln.ListChannelsRequest(active_only=True)).channels
        except grpc.RpcError:
            return False
        return len(chans) == 1 and not chans[0].pending_htlcs


def pay(node: Node, **kw: Any) -> tuple[list[ln.Payment], float]:
    start = time.perf_counter()
    updates = list(node.router.SendPaymentV2(router_pb.SendPaymentRequest(timeout_seconds=30, **kw), timeout=30))
    return updates, time.perf_counter() - start


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("payments")
    chain = ChainProcess(tmp / "chain").start()
    chain.generate(101)
    alice_p = LightningProcess(tmp / "alice", chain).start()
    bob_p = LightningProcess(tmp / "bob", chain).start()
    alice, bob = Node(alice_p), Node(bob_p)
    try:
        addr = alice.rpc.NewAddress(ln.NewAddressRequest()).address
        chain.rpc.SendToAddress(pb.SendToAddressRequest(address=addr, amount_sat=5 * 100_000_000, fee_rate_sat_vb=2))
        chain.generate(1)
        wait_for(lambda: alice.rpc.WalletBalance(ln.WalletBalanceRequest()).confirmed_balance > 0, 30, "funded")
        alice.rpc.ConnectPeer(ln.ConnectPeerRequest(addr=ln.LightningAddress(
            pubkey=bob_p.pubkey, host=f"127.0.0.1:{bob_p.info['listen_port']}")))
        wait_for(lambda: bob.rpc.ListPeers(ln.ListPeersRequest()).peers, 20, "connected")
        alice.rpc.OpenChannelSync(ln.OpenChannelRequest(node_pubkey=bytes.fromhex(bob_p.pubkey),
                                                        local_funding_amount=1_000_000, push_sat=0, sat_per_vbyte=2))
        chain.generate(3)
        for n in (alice, bob):
            wait_for(lambda n=n: len(n.rpc.ListChannels(ln.ListChannelsRequest(active_only=True)).channels) == 1,
                     30, "channel active")
        yield chain, alice, bob
    finally:
        for n in (alice, bob):
            n.close()
        for p in (alice_p, bob_p, chain):
            p.stop()


def test_twenty_invoice_payments(net) -> None:
    _chain, alice, bob = net
    alice_before, bob_before = alice.local_msat(), bob.local_msat()
    amounts = [1_000 + 737 * i for i in range(20)]
    latencies = []
    hashes = []
    for i, amt in enumerate(amounts):
        added = bob.rpc.AddInvoice(ln.Invoice(memo=f"coffee #{i}", value=amt))
        assert added.add_index == i + 1 and len(added.payment_addr) == 32
        decoded = alice.rpc.DecodePayReq(ln.PayReqString(pay_req=added.payment_request))
        assert decoded.destination == bob.proc.pubkey and decoded.num_satoshis == amt
        assert decoded.description == f"coffee #{i}" and decoded.cltv_expiry == 80
        updates, seconds = pay(alice, payment_request=added.payment_request)
        latencies.append(seconds)
        assert [u.status for u in updates] == [IN_FLIGHT, SUCCEEDED], updates
        final = updates[-1]
        assert hashlib.sha256(bytes.fromhex(final.payment_preimage)).digest() == bytes(added.r_hash)
        assert final.value_sat == amt and final.fee_msat == 0 and final.htlcs[0].status == ln.HTLCAttempt.SUCCEEDED
        assert final.htlcs[0].route.hops[0].pub_key == bob.proc.pubkey
        hashes.append(bytes(added.r_hash))
    print(f"\n20 invoice payments: median {statistics.median(latencies) * 1000:.0f} ms, "
          f"max {max(latencies) * 1000:.0f} ms, total {sum(latencies):.2f} s")

    for i, h in enumerate(hashes):
        invoice = bob.rpc.LookupInvoice(ln.PaymentHash(r_hash=h))
        assert invoice.state == ln.Invoice.SETTLED and invoice.amt_paid_sat == amounts[i]
        assert invoice.settle_index == i + 1 and len(invoice.htlcs) == 1
    listed = bob.rpc.ListInvoices(ln.ListInvoiceRequest(num_max_invoices=5, reversed=True))
    assert [i.add_index for i in listed.invoices] == [16, 17, 18, 19, 20]
    payments = alice.rpc.ListPayments(ln.ListPaymentsRequest(count_total_payments=True)).payments
    assert [bytes.fromhex(p.payment_hash) for p in payments] == hashes

    total = sum(amounts) * 1000
    wait_for(lambda: alice.settled() and bob.settled(), 20, "HTLCs settled")
    assert alice_before - alice.local_msat() == total
    assert bob.local_msat() - bob_before == total

    # Paying the same invoice again is refused; the node keeps its books.
    added = bob.rpc.AddInvoice(ln.Invoice(memo="once", value=1_000))
    assert pay(alice, payment_request=added.payment_request)[0][-1].status == SUCCEEDED
    with pytest.raises(grpc.RpcError) as e:
        pay(alice, payment_request=added.payment_request)
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS and "already paid" in e.value.details()


def test_keysend_unknown_hash_and_invoice_streams(net) -> None:
    chain, alice, bob = net
    before = bob.local_msat()
    for amt in (2_000, 3_000, 4_000):
        preimage = os.urandom(32)
        updates, _ = pay(alice, dest=bytes.fromhex(bob.proc.pubkey), amt=amt,
                         payment_hash=hashlib.sha256(preimage).digest(), dest_custom_records={KEYSEND: preimage})
        assert updates[-1].status == SUCCEEDED and updates[-1].payment_preimage == preimage.hex()
        invoice = bob.rpc.LookupInvoice(ln.PaymentHash(r_hash=hashlib.sha256(preimage).digest()))
        assert invoice.is_keysend and invoice.state == ln.Invoice.SETTLED and invoice.amt_paid_sat == amt

    # A hash bob has no invoice for: FAILED with INCORRECT_PAYMENT_DETAILS, reported by bob (hop 1).
    updates, _ = pay(alice, dest=bytes.fromhex(bob.proc.pubkey), amt=1_500, payment_hash=os.urandom(32),
                     payment_addr=os.urandom(32))
    final = updates[-1]
    assert final.status == FAILED
    assert final.failure_reason == ln.FAILURE_REASON_INCORRECT_PAYMENT_DETAILS
    failure = final.htlcs[0].failure
    assert failure.code == ln.Failure.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS and failure.failure_source_index == 1
    assert failure.htlc_msat == 1_500_000 and failure.height == chain.height()
    # Not a direct peer: no route (until pathfinding is wired in).
    updates, _ = pay(alice, dest=bytes.fromhex("02" + "11" * 32), amt=1_000, payment_hash=os.urandom(32))
    assert updates[-1].status == FAILED and updates[-1].failure_reason == ln.FAILURE_REASON_NO_ROUTE

    # The channel keeps working. SubscribeInvoices: the backlog after add_index, then adds and settles;
    # SubscribeSingleInvoice: OPEN then SETTLED, and the stream ends. A canceled invoice is refused.
    last = bob.rpc.ListInvoices(ln.ListInvoiceRequest(reversed=True, num_max_invoices=1)).invoices[-1].add_index
    every = bob.rpc.SubscribeInvoices(ln.InvoiceSubscription(add_index=last - 1), timeout=30)
    assert next(every).add_index == last
    added = bob.rpc.AddInvoice(ln.Invoice(memo="watched", value_msat=5_555_000))
    stream = bob.invoices.SubscribeSingleInvoice(inv_pb.SubscribeSingleInvoiceRequest(r_hash=added.r_hash),
                                                 timeout=30)
    assert next(stream).state == ln.Invoice.OPEN
    assert pay(alice, payment_request=added.payment_request)[0][-1].status == SUCCEEDED
    assert [u.state for u in stream] == [ln.Invoice.SETTLED]
    seen = [next(every), next(every)]
    assert [(i.add_index, i.state) for i in seen] == [(added.add_index, ln.Invoice.OPEN),
                                                      (added.add_index, ln.Invoice.SETTLED)]
    every.cancel()
    canceled = bob.rpc.AddInvoice(ln.Invoice(memo="canceled", value=1_000))
    bob.invoices.CancelInvoice(inv_pb.CancelInvoiceMsg(payment_hash=canceled.r_hash))
    updates, _ = pay(alice, payment_request=canceled.payment_request)
    assert updates[-1].failure_reason == ln.FAILURE_REASON_INCORRECT_PAYMENT_DETAILS
    assert bob.invoices.LookupInvoiceV2(inv_pb.LookupInvoiceMsg(payment_addr=canceled.payment_addr)).state == \
        ln.Invoice.CANCELED
    wait_for(lambda: alice.settled() and bob.settled(), 20, "HTLCs settled")
    assert bob.local_msat() - before == (2_000 + 3_000 + 4_000) * 1000 + 5_555_000


def test_payments_back_restart_and_cli(net) -> None:
    _chain, alice, bob = net
    # Bob has balance now: pay alice back.
    for amt in (5_000, 6_000):
        added = alice.rpc.AddInvoice(ln.Invoice(memo="refund", value=amt))
        assert pay(bob, payment_request=added.payment_request)[0][-1].status == SUCCEEDED
        assert alice.rpc.LookupInvoice(ln.PaymentHash(r_hash=added.r_hash)).state == ln.Invoice.SETTLED

    # Alice stops (SIGTERM) with nothing in flight and comes back: channel_reestablish, then payments again.
    wait_for(lambda: alice.settled() and bob.settled(), 20, "HTLCs settled")
    alice.restart()
    wait_for(lambda: alice.settled() and bob.settled(), 30, "channel active again")
    added = bob.rpc.AddInvoice(ln.Invoice(memo="after restart", value=7_000))
    track_hash = bytes(added.r_hash)
    assert pay(alice, payment_request=added.payment_request)[0][-1].status == SUCCEEDED
    tracked = list(alice.router.TrackPaymentV2(router_pb.TrackPaymentRequest(payment_hash=track_hash), timeout=10))
    assert [t.status for t in tracked] == [SUCCEEDED]
    added = alice.rpc.AddInvoice(ln.Invoice(memo="back after restart", value=1_000))
    assert pay(bob, payment_request=added.payment_request)[0][-1].status == SUCCEEDED

    # lncli's payinvoice through `canal ln`.
    added = bob.rpc.AddInvoice(ln.Invoice(memo="cli", value=2_500))
    out = subprocess.run([sys.executable, "-m", "canal", "ln", "--datadir", str(alice.proc.datadir), "--json",
                          "payinvoice", added.payment_request, "--force"], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["status"] == "SUCCEEDED" and result["payment_hash"] == bytes(added.r_hash).hex()
    assert "IN_FLIGHT" in out.stderr  # the live progress
