"""A forwarding node recovers a forwarded HTLC on chain when its downstream peer vanishes (BOLT 2 deadlines, BOLT 5).

Real processes on one regtest chaind: alice pays a hold invoice through carol, the payee holds
the HTLC and is SIGKILLed.

* dave never comes back: carol force-closes carol–dave at her forwarding deadline, times the
  HTLC out on chain (a zero-fee anchors HTLC-timeout funded from her wallet; she is SIGKILLed
  while it confirms) and fails the alice–carol HTLC back OFF chain long before alice's own
  deadline: alice's payment fails,
  her channel to carol stays open and carries the next payment, carol's wallet gets the HTLC.
* erin settles on chain only: carol force-closes carol–erin while erin is down; erin comes
  back, settles her hold invoice, her monitor claims the HTLC with the preimage on carol's
  commitment; carol learns the preimage from the chain and fulfills alice–carol off chain.

One module fixture: chaind, alice, carol, dave, erin; channels alice–carol, carol–dave, carol–erin.
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any

import grpc
import pytest
from daemons import ChainProcess, LightningProcess, connect_nodes, fund_node, wait_for

from proto import chain_pb2 as pb
from proto import invoices_pb2 as inv_pb
from proto import invoices_pb2_grpc as inv_grpc
from proto import lightning_pb2 as ln
from proto import router_pb2 as router

HTLC_SAT = 50_000


def _channel(node: LightningProcess, peer: LightningProcess) -> ln.Channel | None:
    chans = node.rpc.ListChannels(ln.ListChannelsRequest(peer=bytes.fromhex(peer.pubkey))).channels
    return chans[0] if chans else None


def _at_tip(chain: ChainProcess, *nodes: LightningProcess) -> None:
    tip = chain.height()
    for n in nodes:
        wait_for(lambda n=n: n.rpc.GetInfo(ln.GetInfoRequest()).block_height >= tip, 30, f"{n.alias} at the tip")


def _mine(chain: ChainProcess, n: int, *nodes: LightningProcess) -> None:
    """One block at a time, each seen by `nodes` before the next (deadlines are checked per block)."""
    for _ in range(n):
        chain.generate(1)
        _at_tip(chain, *nodes)


def _mempool(chain: ChainProcess) -> list[str]:
    return list(chain.rpc.GetRawMempool(pb.GetRawMempoolRequest()).txids)


class _Payment:
    """SendPaymentV2 in a thread (the HTLC stays in flight for many blocks)."""

    def __init__(self, payer: LightningProcess, payment_request: str) -> None:
        self.updates: list[Any] = []
        self.error: Exception | None = None
        stream = payer.router.SendPaymentV2(router.SendPaymentRequest(
            payment_request=payment_request, timeout_seconds=600, fee_limit_sat=100), timeout=900)

        def run() -> None:
            try:
                for u in stream:
                    self.updates.append(u)
            except grpc.RpcError as e:
                self.error = e

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def final(self) -> Any:
        self.thread.join(60)
        assert self.error is None, self.error
        assert self.updates and self.updates[-1].status in (ln.Payment.SUCCEEDED, ln.Payment.FAILED), self.updates
        return self.updates[-1]


def _hold_invoice(node: LightningProcess, preimage: bytes) -> str:
    stub = inv_grpc.InvoicesStub(node.channel())
    added = stub.AddHoldInvoice(inv_pb.AddHoldInvoiceRequest(hash=hashlib.sha256(preimage).digest(), value=HTLC_SAT))
    return str(added.payment_request)


def _invoice_state(node: LightningProcess, preimage: bytes) -> int:
    inv = node.rpc.LookupInvoice(ln.PaymentHash(r_hash=hashlib.sha256(preimage).digest()))
    return int(inv.state)


def _held(payer: LightningProcess, forwarder: LightningProcess, payee: LightningProcess, preimage: bytes
          ) -> tuple[_Payment, ln.Channel, ln.Channel]:
    """Pay the payee's hold invoice; once it is ACCEPTED, SIGKILL the payee. Returns the payment and the
    payer's and the forwarder's channels as they carry the HTLC."""
    payment = _Payment(payer, _hold_invoice(payee, preimage))
    wait_for(lambda: _invoice_state(payee, preimage) == ln.Invoice.ACCEPTED, 30, "the payee holds the HTLC")
    payee.kill()
    upstream = wait_for(lambda: (c := _channel(payer, forwarder)) is not None and c.pending_htlcs and c, 30,
                        "the payer's HTLC")
    downstream = wait_for(lambda: (c := _channel(forwarder, payee)) is not None and c.pending_htlcs and c, 30,
                          "the forwarded HTLC")
    assert payment.updates and payment.updates[-1].status == ln.Payment.IN_FLIGHT
    return payment, upstream, downstream


def _restart(proc: LightningProcess) -> None:
    """Start again; a kept peer port another process took meanwhile (a shared machine) is given up."""
    try:
        proc.start()
    except RuntimeError as e:
        if "Address already in use" not in str(e):
            raise
        proc.info.pop("listen_port", None)
        proc.start()


def _wallet(node: LightningProcess) -> Any:
    return node.rpc.WalletBalance(ln.WalletBalanceRequest())


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("fwd_onchain")
    chain = ChainProcess(tmp / "chain").start()
    nodes = [LightningProcess(tmp / n, chain, alias=n) for n in ("alice", "carol", "dave", "erin")]
    try:
        for n in nodes:
            n.start()
        chain.generate(101)
        alice, carol, dave, erin = nodes
        fund_node(chain, alice, 100_000_000)
        fund_node(chain, carol, 100_000_000)
        chain.generate(1)
        for n in (alice, carol):
            wait_for(lambda n=n: _wallet(n).confirmed_balance > 0, 30, "funded")
        connect_nodes(alice, carol)
        connect_nodes(carol, dave)
        connect_nodes(carol, erin)
        alice.rpc.OpenChannelSync(ln.OpenChannelRequest(node_pubkey=bytes.fromhex(carol.pubkey),
                                                        local_funding_amount=1_000_000, sat_per_vbyte=2))
        for peer in (dave, erin):
            carol.rpc.OpenChannelSync(ln.OpenChannelRequest(node_pubkey=bytes.fromhex(peer.pubkey),
                                                            local_funding_amount=1_000_000, sat_per_vbyte=2))
        chain.generate(3)
        wait_for(lambda: len(carol.rpc.ListChannels(ln.ListChannelsRequest(active_only=True)).channels) == 3, 30,
                 "carol's channels active")
        for n in (alice, dave, erin):
            wait_for(lambda n=n: n.rpc.ListChannels(ln.ListChannelsRequest(active_only=True)).channels, 30, "active")
        yield chain, alice, carol, dave, erin
    finally:
        for p in [*nodes, chain]:
            p.stop()


def test_adopting_a_confirmed_close_past_the_htlc_expiry_asks_only_for_the_htlc_timeout() -> None:
    """The monitor adopts our anchors commitment already in a block, past the outgoing HTLC's expiry:
    no rebroadcast of the commitment and no CPFP child (it would take the wallet coin the zero-fee
    HTLC-timeout needs); the HTLC-timeout asks for wallet inputs at once."""
    from test_ln_htlc_onchain import CLTV, DEST, _force_close, _pair

    from channels.monitor_host import (
        BroadcastTx,
        BumpCommitment,
        FundHtlcTx,
        MonitorHost,
        monitor_data_for_channel,
    )

    pair = _pair(anchors=True)
    a = pair.a
    data = monitor_data_for_channel(a.channel, DEST)
    closing = _force_close(a.channel)
    actions = MonitorHost().adopt(a.channel.channel_id, data, closing, CLTV + 10)
    assert not [x for x in actions if isinstance(x, BumpCommitment | BroadcastTx)], actions
    funds = [x for x in actions if isinstance(x, FundHtlcTx)]
    assert len(funds) == 1 and funds[0].need.htlc_outpoint.txid == closing.txid


def test_downstream_gone_htlc_times_out_on_chain_and_fails_back_off_chain(line) -> None:
    chain, alice, carol, dave, _erin = line
    preimage = os.urandom(32)
    alice_before = alice.rpc.ChannelBalance(ln.ChannelBalanceRequest()).local_balance.msat
    payment, upstream, downstream = _held(alice, carol, dave, preimage)
    incoming_expiry = upstream.pending_htlcs[0].expiration_height
    outgoing_expiry = downstream.pending_htlcs[0].expiration_height
    assert downstream.commitment_type == ln.CommitmentType.ANCHORS
    assert incoming_expiry - outgoing_expiry >= 18  # carol's cltv_expiry_delta
    carol_wallet = _wallet(carol).total_balance
    carol_local = downstream.local_balance

    # up to carol's deadline (3 blocks past the outgoing expiry): her commitment goes out, no block earlier
    _mine(chain, outgoing_expiry + 2 - chain.height(), carol)
    assert not _mempool(chain) and _channel(carol, dave) is not None
    _mine(chain, 1, carol)
    wait_for(lambda: "forwarded HTLC deadline" in carol.stderr(), 30, "carol's deadline")
    wait_for(lambda: _mempool(chain), 30, "carol's commitment")
    _mine(chain, 1, carol)  # the commitment confirms: the HTLC-timeout is valid at once
    # funded from her wallet at once (no CPFP of the confirmed commitment takes her coin first)
    wait_for(lambda: "(HTLC-timeout of outgoing HTLC 0)" in carol.stderr(), 30, "carol funds her HTLC-timeout")
    assert "CPFP of our commitment" not in carol.stderr()
    wait_for(lambda: _mempool(chain), 30, "the HTLC-timeout")
    carol.kill()  # the timeout confirms while she is down: her circuit and her monitor are on disk
    _mine(chain, 1, alice)
    _restart(carol)
    _mine(chain, 1, carol, alice)
    # the timeout must be final (reorg_safety_depth) before carol fails alice's HTLC back

    def failed_back() -> bool:
        c = _channel(alice, carol)
        return c is not None and not c.pending_htlcs

    for _ in range(12):
        if failed_back():
            break
        _mine(chain, 1, carol, alice)
    wait_for(failed_back, 30, "carol fails alice's HTLC back off chain")
    assert chain.height() < incoming_expiry - 18, (chain.height(), incoming_expiry)
    final = payment.final()
    assert final.status == ln.Payment.FAILED
    failure = final.htlcs[0].failure  # carol's own failure, as lnd's timeout resolver sends it
    assert failure.code == ln.Failure.PERMANENT_CHANNEL_FAILURE and failure.failure_source_index == 1, failure
    up = _channel(alice, carol)
    assert up is not None and up.active and not up.pending_htlcs
    assert alice.rpc.ClosedChannels(ln.ClosedChannelsRequest()).channels == []
    assert alice.rpc.ChannelBalance(ln.ChannelBalanceRequest()).local_balance.msat == alice_before
    assert _channel(carol, dave) is None  # closed

    # alice–carol still carries payments
    wait_for(lambda: (c := _channel(alice, carol)) is not None and c.active, 30, "alice–carol active again")
    invoice = carol.rpc.AddInvoice(ln.Invoice(value=1_000, memo="after"))
    again = _Payment(alice, invoice.payment_request).final()
    assert again.status == ln.Payment.SUCCEEDED, again.failure_reason

    # carol's wallet gets her balance and the HTLC back once the CSV delays pass (two sweeps, maybe a block apart)
    _mine(chain, 146, carol)
    # fees: the CPFP of her commitment, the HTLC-timeout's wallet input and change, two sweeps (~16,000 sat
    # at regtest's urgent rate); the allowance is well below the HTLC, so the HTLC's value came back
    target = carol_wallet + carol_local + HTLC_SAT - 20_000
    for _ in range(4):
        if _wallet(carol).confirmed_balance > target:
            break
        if not _mempool(chain):
            break
        _mine(chain, 1, carol)
    balance = _wallet(carol)
    assert balance.confirmed_balance > target and balance.unconfirmed_balance == 0, (carol_wallet, carol_local,
                                                                                      balance)


def test_downstream_settles_on_chain_upstream_fulfilled_off_chain(line) -> None:
    chain, alice, carol, _dave, erin = line
    preimage = os.urandom(32)
    alice_before = alice.rpc.ChannelBalance(ln.ChannelBalanceRequest()).local_balance.msat
    payment, _upstream, downstream = _held(alice, carol, erin, preimage)
    assert chain.height() < downstream.pending_htlcs[0].expiration_height - 20
    txid, _, index = downstream.channel_point.partition(":")
    close = carol.rpc.CloseChannel(ln.CloseChannelRequest(
        channel_point=ln.ChannelPoint(funding_txid_str=txid, output_index=int(index)), force=True))
    next(iter(close))
    wait_for(lambda: _mempool(chain), 30, "carol's commitment")
    _mine(chain, 1, carol)
    wait_for(lambda: "on-chain monitor took over" in carol.stderr(), 30, "carol's monitor")

    erin.start()  # she learns of the close from the chain, then her operator settles
    stub = inv_grpc.InvoicesStub(erin.channel())
    stub.SettleInvoice(inv_pb.SettleInvoiceMsg(preimage=preimage))
    wait_for(lambda: _mempool(chain), 30, "erin's preimage claim")
    _mine(chain, 1, carol, erin)
    final = payment.final()
    assert final.status == ln.Payment.SUCCEEDED, final.failure_reason
    assert bytes.fromhex(final.payment_preimage) == preimage
    up = _channel(alice, carol)
    assert up is not None and up.active
    wait_for(lambda: not _channel(alice, carol).pending_htlcs, 30, "the upstream HTLC fulfilled off chain")
    spent = alice_before - alice.rpc.ChannelBalance(ln.ChannelBalanceRequest()).local_balance.msat
    assert spent == HTLC_SAT * 1000 + final.fee_msat
    assert alice.rpc.ClosedChannels(ln.ClosedChannelsRequest()).channels == []
