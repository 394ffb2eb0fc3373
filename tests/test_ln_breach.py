"""A cheating peer broadcasts a revoked commitment and loses its whole balance to our justice transaction.

The cheater is a test harness: it keeps an old copy of its node's channel store, rebuilds
that old (revoked) commitment offline from the snapshot and the seed, and broadcasts it.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from base_chain.params import get_params
from canal.cheat import old_commitment
from daemons import ChainProcess, LightningProcess, wait_for
from proto import chain_pb2 as pb
from proto import lightning_pb2 as ln
from proto import router_pb2 as router


def _pay(sender: LightningProcess, receiver: LightningProcess, amount_sat: int) -> None:
    invoice = receiver.rpc.AddInvoice(ln.Invoice(value=amount_sat, memo="breach test"))
    stub = sender.router
    final = None
    for update in stub.SendPaymentV2(router.SendPaymentRequest(payment_request=invoice.payment_request,
                                                               timeout_seconds=30, fee_limit_sat=1000)):
        final = update
    assert final is not None and final.status == ln.Payment.SUCCEEDED, final


def test_cheater_loses_everything(tmp_path: Path) -> None:
    chain = ChainProcess(tmp_path / "chain").start()
    alice = bob = None
    try:
        chain.generate(101)
        alice = LightningProcess(tmp_path / "alice", chain).start()
        bob = LightningProcess(tmp_path / "bob", chain).start()
        addr = alice.rpc.NewAddress(ln.NewAddressRequest()).address
        chain.rpc.SendToAddress(pb.SendToAddressRequest(address=addr, amount_sat=200_000_000, fee_rate_sat_vb=2))
        chain.generate(1)
        wait_for(lambda: alice.rpc.WalletBalance(ln.WalletBalanceRequest()).confirmed_balance > 0, 30, "funded")
        alice.rpc.ConnectPeer(ln.ConnectPeerRequest(addr=ln.LightningAddress(
            pubkey=bob.pubkey, host=f"127.0.0.1:{bob.info['listen_port']}")))
        wait_for(lambda: bob.rpc.ListPeers(ln.ListPeersRequest()).peers, 20, "connected")
        alice.rpc.OpenChannelSync(ln.OpenChannelRequest(node_pubkey=bytes.fromhex(bob.pubkey),
                                                        local_funding_amount=1_000_000, sat_per_vbyte=2))
        chain.generate(3)
        wait_for(lambda: alice.rpc.ListChannels(ln.ListChannelsRequest(active_only=True)).channels, 30, "active")
        _pay(alice, bob, 50_000)
        # The cheater keeps a copy of this state, then pays on: the copy becomes a revoked state.
        alice.stop()
        shutil.copy(alice.datadir / "channels.sqlite", alice.datadir / "old-channels.sqlite")
        alice.start()
        wait_for(lambda: alice.rpc.ListChannels(ln.ListChannelsRequest(active_only=True)).channels, 30, "reconnected")
        _pay(alice, bob, 400_000)
        old = old_commitment(alice.datadir, alice.datadir / "old-channels.sqlite", get_params("regtest"))
        alice.stop()  # the cheater goes quiet and broadcasts the old state
        bob_before = bob.rpc.WalletBalance(ln.WalletBalanceRequest()).total_balance
        chain.rpc.SendRawTransaction(pb.SendRawTransactionRequest(hexstring=old.hex()))
        chain.generate(1)
        # bob is SIGKILLed around the breach block (before or after handling it): after a restart the
        # block is handled again or the stored justice transaction comes back (channels/monitor_store.py)
        time.sleep(0.3)
        bob.kill()
        try:
            bob.start()
        except RuntimeError as e:  # the kept peer port was taken meanwhile (a shared machine)
            if "Address already in use" not in str(e):
                raise
            bob.info.pop("listen_port", None)
            bob.start()
        wait_for(lambda: len(chain.rpc.GetRawMempool(pb.GetRawMempoolRequest()).txids) >= 1, 30, "justice tx")
        chain.generate(1)
        closed = wait_for(lambda: bob.rpc.ClosedChannels(ln.ClosedChannelsRequest()).channels, 30, "closed")
        assert closed[0].close_type == ln.ChannelCloseSummary.BREACH_CLOSE
        # Bob takes the whole channel (less fees): his 450,000 and the cheater's balance.
        wait_for(lambda: bob.rpc.WalletBalance(ln.WalletBalanceRequest()).total_balance - bob_before > 990_000, 30,
                 "bob swept the cheater's funds")
    finally:
        for p in (alice, bob, chain):
            if p is not None:
                p.stop()
