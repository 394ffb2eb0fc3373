"""`canal demo`: Lightning nodes on alpha — channels, a two-hop payment, a cheater punished."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from base_chain.params import get_params
from proto import chain_pb2 as pb
from proto import lightning_pb2 as ln
from proto import router_pb2 as router

from .cheat import old_commitment
from .procs import ChainProcess, LightningProcess, wait_for

__all__ = ["lightning_demo"]

COIN = 100_000_000


def _pay(sender: LightningProcess, receiver: LightningProcess, sat: int, memo: str) -> Any:
    invoice = receiver.rpc.AddInvoice(ln.Invoice(value=sat, memo=memo))
    final = None
    for update in sender.router.SendPaymentV2(router.SendPaymentRequest(
            payment_request=invoice.payment_request, timeout_seconds=30, fee_limit_sat=100)):
        final = update
    if final is None or final.status != ln.Payment.SUCCEEDED:
        raise RuntimeError(f"payment failed: {final.failure_reason if final else 'no update'}")
    return final


def _connect(a: LightningProcess, b: LightningProcess) -> None:
    a.rpc.ConnectPeer(ln.ConnectPeerRequest(addr=ln.LightningAddress(
        pubkey=b.pubkey, host=f"127.0.0.1:{b.info['listen_port']}")))
    wait_for(lambda: any(p.pub_key == a.pubkey for p in b.rpc.ListPeers(ln.ListPeersRequest()).peers), 20, "peer")


def _open(a: LightningProcess, b: LightningProcess, sat: int) -> Any:
    return a.rpc.OpenChannelSync(ln.OpenChannelRequest(node_pubkey=bytes.fromhex(b.pubkey), local_funding_amount=sat,
                                                       sat_per_vbyte=2))


def _sat(node: LightningProcess) -> int:
    return int(node.rpc.WalletBalance(ln.WalletBalanceRequest()).total_balance)


def lightning_demo(n: Any, console: Any, root: Path, chain: ChainProcess, procs: list[Any],
                   balances: dict[str, str]) -> None:
    nodes: dict[str, LightningProcess] = {}

    def start(name: str) -> LightningProcess:
        p = LightningProcess(root / name, chain, alias=name).start()
        procs.append(p)
        nodes[name] = p
        return p

    for name in ("alice", "bob", "carol"):
        if n.step(f"start Lightning node {name} on alpha (canal channeld)", lambda name=name: start(name)) is None:
            return
    alice, bob, carol = nodes["alice"], nodes["bob"], nodes["carol"]

    def fund() -> None:
        for node in (alice, bob):
            addr = node.rpc.NewAddress(ln.NewAddressRequest(type=ln.WITNESS_PUBKEY_HASH)).address
            chain.rpc.SendToAddress(pb.SendToAddressRequest(address=addr, amount_sat=5 * COIN, fee_rate_sat_vb=2))
        chain.generate(1)
        for node in (alice, bob):
            wait_for(lambda node=node: _sat(node) == 5 * COIN, 30, "funded")

    n.step("fund alice and bob on chain (5 coins each)", fund)
    n.step("connect alice-bob and bob-carol (BOLT 8 handshake, init)", lambda: (_connect(alice, bob),
                                                                                _connect(bob, carol)))
    n.step("open channels alice->bob and bob->carol (1,000,000 sat each; BOLT 2 funding)", lambda: (
        _open(alice, bob, 1_000_000), _open(bob, carol, 1_000_000)))
    n.step("mine 3 blocks: channel_ready both ways", lambda: (chain.generate(3), wait_for(
        lambda: len(bob.rpc.ListChannels(ln.ListChannelsRequest(active_only=True)).channels) == 2, 30, "active")))
    payment = n.step("alice pays carol's invoice over two hops (bob forwards for a fee)",
                     lambda: _pay(alice, carol, 25_000, "two hops"))
    if payment is not None:
        console.print(f"   preimage {payment.payment_preimage[:16]}…, {len(payment.htlcs[0].route.hops)} hops, "
                      f"fee {payment.fee_msat} msat")
    n.step("alice pays bob 10 times directly", lambda: [_pay(alice, bob, 1_000 + i, f"#{i}") for i in range(10)])

    # Alice keeps a copy of her channel state, pays on, then broadcasts the old (revoked) commitment.
    def cheat() -> None:
        alice.stop()
        shutil.copy(alice.datadir / "channels.sqlite", root / "alice-old-channels.sqlite")
        alice.start()
        wait_for(lambda: len(alice.rpc.ListChannels(ln.ListChannelsRequest(active_only=True)).channels) == 1, 30,
                 "reconnected")
        _pay(alice, bob, 300_000, "after the copy")
        tx = old_commitment(alice.datadir, root / "alice-old-channels.sqlite", get_params(chain.chain))
        alice.stop()
        chain.rpc.SendRawTransaction(pb.SendRawTransactionRequest(hexstring=tx.hex()))
        chain.generate(1)

    bob_before = _sat(bob)
    n.step("alice cheats: she broadcasts a revoked commitment of her channel with bob", cheat)

    def punish() -> None:
        wait_for(lambda: len(chain.rpc.GetRawMempool(pb.GetRawMempoolRequest()).txids) >= 1, 30, "justice tx")
        chain.generate(1)
        wait_for(lambda: bob.rpc.ClosedChannels(ln.ClosedChannelsRequest(breach=True)).channels, 30, "breach")
        wait_for(lambda: _sat(bob) - bob_before > 990_000, 30, "bob took everything")

    n.step("bob's node sees the breach and its justice transaction takes the whole channel", punish)
    console.print(f"   bob gained {(_sat(bob) - bob_before):,} sat on chain from a 1,000,000 sat channel")
    for name in ("bob", "carol"):
        balances[f"{name} (on-chain)"] = f"{_sat(nodes[name]) / COIN:.8f}"
    balances["carol (channel)"] = f"{carol.rpc.ChannelBalance(ln.ChannelBalanceRequest()).local_balance.sat / COIN:.8f}"
