"""`canal demo` step: a Lightning payment from alpha to beta through a bridge (hold invoice, one payment hash).

:func:`bridge_demo` takes two running chain processes (alpha and beta) and a
directory; it starts four channelds (a payer on alpha, the bridge's nodes on
alpha and beta, a payee on beta) and `canal bridged`, opens a channel on each
chain, and pays a beta invoice from alpha: the payer pays the bridge's quoted
alpha hold invoice, the bridge pays the beta invoice with the alpha HTLC held,
and settles it with the beta payee's preimage. :func:`start_bridge_network`
(the setup alone) is shared with ``tests/test_bridge.py``.
"""

from __future__ import annotations

import functools
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proto import bridge_pb2 as br
from proto import chain_pb2 as pb
from proto import lightning_pb2 as ln
from proto import router_pb2 as router_pb

from .procs import BridgeProcess, ChainProcess, LightningProcess, in_parallel, wait_for

__all__ = ["BridgeNetwork", "bridge_demo", "start_bridge_network"]

DEFAULT_RATE = "5/2"
"""Alpha sat per beta sat in the demo (alpha blocks are 4x slower; the coins are worth more)."""


@dataclass
class BridgeNetwork:
    alpha: ChainProcess
    beta: ChainProcess
    payer: LightningProcess
    bridge_alpha: LightningProcess
    bridge_beta: LightningProcess
    payee: LightningProcess
    bridged: BridgeProcess
    procs: list[Any] = field(default_factory=list)

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()


def _ensure_coins(chain: ChainProcess, sat: int) -> None:
    if chain.rpc.GetBalance(pb.GetBalanceRequest()).confirmed_sat < sat:
        chain.generate(101)


def _fund_and_open(chain: ChainProcess, opener: LightningProcess, peer: LightningProcess, amount_sat: int) -> None:
    addr = opener.rpc.NewAddress(ln.NewAddressRequest()).address
    chain.rpc.SendToAddress(pb.SendToAddressRequest(address=addr, amount_sat=2 * amount_sat, fee_rate_sat_vb=2))
    chain.generate(1)
    wait_for(lambda: opener.rpc.WalletBalance(ln.WalletBalanceRequest()).confirmed_balance > 0, 30, "funded")
    opener.rpc.ConnectPeer(ln.ConnectPeerRequest(addr=ln.LightningAddress(
        pubkey=peer.pubkey, host=f"127.0.0.1:{peer.info['listen_port']}")))
    wait_for(lambda: any(p.pub_key == opener.pubkey for p in peer.rpc.ListPeers(ln.ListPeersRequest()).peers), 20,
             "connected")
    opener.rpc.OpenChannelSync(ln.OpenChannelRequest(node_pubkey=bytes.fromhex(peer.pubkey),
                                                     local_funding_amount=amount_sat, sat_per_vbyte=2))
    chain.generate(3)

    def active(node: LightningProcess) -> bool:
        chans = node.rpc.ListChannels(ln.ListChannelsRequest(active_only=True)).channels
        return any(c.remote_pubkey in (opener.pubkey, peer.pubkey) for c in chans)

    for node in (opener, peer):
        wait_for(functools.partial(active, node), 30, "channel active")


def start_bridge_network(root: Path, alpha: ChainProcess, beta: ChainProcess, *, alpha_channel_sat: int = 1_000_000,
                         beta_channel_sat: int = 400_000, bridge_args: list[str] | None = None) -> BridgeNetwork:
    """Four channelds, a channel payer->bridge on alpha and bridge->payee on beta, and a running bridged."""
    payer = LightningProcess(root / "payer", alpha, alias="payer")
    bridge_a = LightningProcess(root / "bridge-alpha", alpha, alias="bridge-alpha")
    bridge_b = LightningProcess(root / "bridge-beta", beta, alias="bridge-beta")
    payee = LightningProcess(root / "payee", beta, alias="payee")
    bridged = BridgeProcess(root / "bridged", bridge_a, bridge_b, bridge_args if bridge_args is not None else
                            ["--rate", DEFAULT_RATE, "--fee-base-msat", "2000", "--fee-ppm", "10000"])
    net = BridgeNetwork(alpha, beta, payer, bridge_a, bridge_b, payee, bridged, [payer, bridge_a, bridge_b, payee])
    try:
        in_parallel([p.start for p in (payer, bridge_a, bridge_b, payee)]
                  + [lambda: _ensure_coins(alpha, 3 * alpha_channel_sat),
                     lambda: _ensure_coins(beta, 3 * beta_channel_sat)])
        in_parallel([lambda: _fund_and_open(alpha, payer, bridge_a, alpha_channel_sat),
                   lambda: _fund_and_open(beta, bridge_b, payee, beta_channel_sat)])
        bridged.start()
        net.procs.append(bridged)
    except BaseException:
        net.stop()
        raise
    return net


def _local_msat(node: LightningProcess) -> int:
    return int(node.rpc.ChannelBalance(ln.ChannelBalanceRequest()).local_balance.msat)


def bridge_demo(root: Path, alpha: ChainProcess, beta: ChainProcess, procs: list[Any] | None = None,
                beta_amount_sat: int = 12_000) -> dict[str, Any]:
    """Set up the bridge network under ``root`` and pay one beta invoice from alpha; the result as a dict.

    Started processes are appended to ``procs`` (the caller stops them); without ``procs`` they are stopped here.
    """
    net = start_bridge_network(root, alpha, beta)
    if procs is not None:
        procs.extend(net.procs)
    try:
        nodes = {"payer": net.payer, "bridge_alpha": net.bridge_alpha, "bridge_beta": net.bridge_beta,
                 "payee": net.payee}
        before = {name: _local_msat(p) for name, p in nodes.items()}
        invoice = net.payee.rpc.AddInvoice(ln.Invoice(memo="beta coffee", value=beta_amount_sat))
        swap = net.bridged.rpc.Quote(br.QuoteRequest(payment_request=invoice.payment_request), timeout=60)
        start = time.perf_counter()
        final = None
        for update in net.payer.router.SendPaymentV2(router_pb.SendPaymentRequest(
                payment_request=swap.alpha_payment_request, timeout_seconds=60), timeout=90):
            final = update
        seconds = time.perf_counter() - start
        if final is None or final.status != ln.Payment.SUCCEEDED:
            raise RuntimeError(f"cross-chain payment failed: {final.failure_reason if final else 'no update'}")
        paid = net.payee.rpc.LookupInvoice(ln.PaymentHash(r_hash=invoice.r_hash))
        done = wait_for(lambda: [s for s in net.bridged.rpc.ListSwaps(br.ListSwapsRequest()).swaps
                                 if s.payment_hash == swap.payment_hash and s.state == br.Swap.SETTLED], 30,
                        "swap settled")[0]

        def moved() -> dict[str, int]:
            return {name: _local_msat(p) - before[name] for name, p in nodes.items()}

        wait_for(lambda: moved()["payer"] == -swap.alpha_amt_msat and moved()["payee"] == swap.beta_amt_msat,
                 30, "balances settled")
        preimage = bytes.fromhex(final.payment_preimage)
        return {
            "payment_hash": swap.payment_hash,
            "same_hash_on_both_chains": hashlib.sha256(preimage).hexdigest() == bytes(invoice.r_hash).hex(),
            "beta_invoice": invoice.payment_request,
            "alpha_hold_invoice": swap.alpha_payment_request,
            "rate_alpha_per_beta": DEFAULT_RATE,
            "beta_amount_msat": swap.beta_amt_msat,
            "alpha_amount_msat": swap.alpha_amt_msat,
            "bridge_fee_msat": swap.fee_msat,
            "alpha_min_final_cltv": swap.alpha_cltv_expiry,
            "beta_route_cltv": swap.beta_cltv,
            "payee_invoice_state": ln.Invoice.InvoiceState.Name(paid.state),
            "swap_state": br.Swap.State.Name(done.state),
            "balance_changes_msat": moved(),
            "payment_seconds": round(seconds, 3),
        }
    finally:
        if procs is None:
            net.stop()
