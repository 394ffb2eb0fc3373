"""The cross-chain Lightning bridge: a beta invoice paid from alpha through `canal bridged`.

Unit tests of the sans-IO core (relay/bridge.py) and its store, then real
processes: alpha and beta chainds, a payer channeld on alpha, the bridge's
channelds on alpha and beta, a payee channeld on beta, and bridged.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import grpc
import pytest
from daemons import ChainProcess, LightningProcess, wait_for

from base_chain.crypto import PrivateKey
from base_chain.params import get_params
from canal.procs import BridgeProcess
from htlc.invoice import Invoice, RouteHintHop, encode_invoice, invoice_prefix
from htlc.invoices import HOLD_EXPIRY_DELTA, MIN_CLTV_EXPIRY_DELTA
from proto import bridge_pb2 as br
from proto import chain_pb2 as pb
from proto import invoices_pb2 as inv_pb
from proto import invoices_pb2_grpc as inv_grpc
from proto import lightning_pb2 as ln
from proto import router_pb2 as router_pb
from proto import router_pb2_grpc as router_grpc
from relay.bridge import (
    BETA_BLOCK_PADDING,
    BridgeConfig,
    Event,
    QuoteRefused,
    SwapState,
    beta_payment_limits,
    next_state,
    quote,
)
from relay.bridge_store import BridgeStore, SwapExists

ALPHA, BETA = get_params("alpha"), get_params("beta")
NOW = 1_750_000_000
KEY = PrivateKey(hashlib.sha256(b"payee").digest())
CONFIG = BridgeConfig(alpha_prefix=invoice_prefix(ALPHA), beta_prefix=invoice_prefix(BETA),
                      alpha_block_s=ALPHA.target_spacing_s, beta_block_s=BETA.target_spacing_s, rate=Fraction(5, 2),
                      fee_base_msat=2_000, fee_ppm=10_000, safety_margin_blocks=6)


def _invoice(amount_msat: int | None = 10_000_000, prefix: str = CONFIG.beta_prefix, expiry: int = 3600,
             cltv: int = 80, hints: tuple[tuple[RouteHintHop, ...], ...] = (), timestamp: int = NOW) -> str:
    inv = Invoice(prefix=prefix, amount_msat=amount_msat, timestamp=timestamp, payment_hash=os.urandom(32),
                  payment_secret=os.urandom(32), description="tea", expiry=expiry, min_final_cltv_expiry_delta=cltv,
                  features=(1 << 8) | (1 << 14), route_hints=hints)
    return encode_invoice(inv, KEY)


# --- unit: quotes, limits, states ------------------------------------------------------------------------------


def test_quote_converts_amount_adds_fee_and_covers_the_beta_cltv() -> None:
    hint = (RouteHintHop(KEY.public_key().to_bytes(), 1 << 40, 1000, 1, 40),)
    q = quote(_invoice(hints=(hint,)), config=CONFIG, now=NOW + 100, beta_liquidity_msat=50_000_000)
    assert q.beta_amount_msat == 10_000_000
    converted = 25_000_000  # 2.5 alpha sat per beta sat
    assert q.fee_msat == 2_000 + converted // 100 and q.alpha_amount_msat == converted + q.fee_msat
    assert q.beta_cltv == 80 + 40 + BETA_BLOCK_PADDING
    # 123 beta blocks of 150 s = 18450 s = 30.75 alpha blocks of 600 s -> 31, + margin 6 + hold delta 12
    assert q.alpha_cltv_expiry == 31 + 6 + HOLD_EXPIRY_DELTA
    assert q.alpha_expiry_s == 3600 - 100 - CONFIG.min_payment_window_s // 2
    short = quote(_invoice(cltv=18), config=CONFIG, now=NOW, beta_liquidity_msat=50_000_000)
    assert short.alpha_cltv_expiry == max(MIN_CLTV_EXPIRY_DELTA, math.ceil(21 / 4) + 6 + HOLD_EXPIRY_DELTA)


@pytest.mark.parametrize("case,reason", [
    ("expired", "invoice expired"),
    ("closing", "the bridge needs at least"),
    ("no_amount", "without an amount"),
    ("too_large", "too large"),
    ("wrong_chain", "wrong chain: the invoice is for alpha"),
    ("regtest", "wrong chain: the invoice is for an unknown chain"),
    ("garbage", "invalid payment request"),
    ("cltv", "CLTV cannot be covered"),
])
def test_quote_refusals_say_why(case: str, reason: str) -> None:
    text = {
        "expired": lambda: _invoice(expiry=60, timestamp=NOW - 61),
        "closing": lambda: _invoice(expiry=90, timestamp=NOW - 60),
        "no_amount": lambda: _invoice(amount_msat=None),
        "too_large": lambda: _invoice(amount_msat=49_900_000),
        "wrong_chain": lambda: _invoice(prefix=CONFIG.alpha_prefix),
        "regtest": lambda: _invoice(prefix="lnbcrt"),
        "garbage": lambda: CONFIG.beta_prefix + "1qqqqqq",
        "cltv": lambda: _invoice(cltv=4000),
    }[case]()
    with pytest.raises(QuoteRefused) as e:
        quote(text, config=CONFIG, now=NOW, beta_liquidity_msat=50_000_000)
    assert reason in e.value.reason


def test_beta_payment_limit_keeps_the_beta_htlc_inside_the_alpha_deadline() -> None:
    # alpha HTLC expires at 1000, tip 958: 42 - 12 - 6 = 24 alpha blocks = 96 beta blocks
    assert beta_payment_limits(alpha_htlc_expiry=1000, alpha_height=958, beta_cltv=83, config=CONFIG) == 96
    with pytest.raises(QuoteRefused, match="beta route needs 83"):
        beta_payment_limits(alpha_htlc_expiry=1000, alpha_height=962, beta_cltv=83, config=CONFIG)


def test_swap_states_and_store_survive_a_restart(tmp_path: Path) -> None:
    assert next_state(SwapState.QUOTED, Event.ALPHA_ACCEPTED) is SwapState.PAYING
    with pytest.raises(ValueError, match="cannot happen"):
        next_state(SwapState.PAYING, Event.ALPHA_CANCELED)  # never give up the alpha HTLC with beta in flight
    q = quote(_invoice(), config=CONFIG, now=NOW, beta_liquidity_msat=50_000_000)
    store = BridgeStore(tmp_path / "bridge.sqlite")
    swap = store.add(q, NOW)
    with pytest.raises(SwapExists):
        store.add(q, NOW)
    assert store.reserved_beta_msat() == q.beta_amount_msat + q.beta_fee_limit_msat
    swap = store.advance(swap, Event.ALPHA_ADDED, NOW + 1, alpha_payment_request="lnalpha1x")
    swap = store.advance(swap, Event.ALPHA_ACCEPTED, NOW + 2)
    with pytest.raises(ValueError):
        store.advance(swap, Event.ALPHA_SETTLED, NOW + 3)
    store.close()
    store = BridgeStore(tmp_path / "bridge.sqlite")
    [again] = store.pending()
    assert again == swap and again.state is SwapState.PAYING and again.quote == q
    done = store.advance(store.advance(again, Event.BETA_SUCCEEDED, NOW + 4, preimage=b"\7" * 32),
                         Event.ALPHA_SETTLED, NOW + 5)
    assert done.state.is_final and store.pending() == [] and store.reserved_beta_msat() == 0
    assert store.get(q.payment_hash) == done and done.preimage == b"\7" * 32
    store.close()


# --- integration ------------------------------------------------------------------------------------------------

RATE = "5/2"


class Net:
    def __init__(self, tmp: Path) -> None:
        self.procs: list[Any] = []
        self.alpha = self._start(ChainProcess(tmp / "alpha", chain="alpha"))
        self.beta = self._start(ChainProcess(tmp / "beta", chain="beta"))
        self.payer = self._start(LightningProcess(tmp / "payer", self.alpha))
        self.bridge_a = self._start(LightningProcess(tmp / "bridge-alpha", self.alpha))
        self.bridge_b = self._start(LightningProcess(tmp / "bridge-beta", self.beta))
        self.payee = self._start(LightningProcess(tmp / "payee", self.beta))
        self.bridged = BridgeProcess(tmp / "bridged", self.bridge_a, self.bridge_b,
                                     ["--rate", RATE, "--fee-base-msat", "2000", "--fee-ppm", "10000"])

    def _start(self, p: Any) -> Any:
        self.procs.append(p)
        return p.start()

    def stop(self) -> None:
        for p in reversed(self.procs + [self.bridged]):
            p.stop()


def _fund_and_open(chain: ChainProcess, opener: LightningProcess, peer: LightningProcess, amount_sat: int) -> None:
    addr = opener.rpc.NewAddress(ln.NewAddressRequest()).address
    chain.rpc.SendToAddress(pb.SendToAddressRequest(address=addr, amount_sat=2 * amount_sat, fee_rate_sat_vb=2))
    chain.generate(1)
    wait_for(lambda: opener.rpc.WalletBalance(ln.WalletBalanceRequest()).confirmed_balance > 0, 30, "funded")
    opener.rpc.ConnectPeer(ln.ConnectPeerRequest(addr=ln.LightningAddress(
        pubkey=peer.pubkey, host=f"127.0.0.1:{peer.info['listen_port']}")))
    wait_for(lambda: peer.rpc.ListPeers(ln.ListPeersRequest()).peers, 20, "connected")
    opener.rpc.OpenChannelSync(ln.OpenChannelRequest(node_pubkey=bytes.fromhex(peer.pubkey),
                                                     local_funding_amount=amount_sat, sat_per_vbyte=2))
    chain.generate(3)
    for n in (opener, peer):
        wait_for(lambda n=n: len(n.rpc.ListChannels(ln.ListChannelsRequest(active_only=True)).channels) == 1,
                 30, "channel active")


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    n = Net(tmp_path_factory.mktemp("bridge"))
    try:
        n.alpha.generate(101)
        n.beta.generate(101)
        _fund_and_open(n.alpha, n.payer, n.bridge_a, 1_000_000)
        _fund_and_open(n.beta, n.bridge_b, n.payee, 400_000)
        n.bridged.start()
        yield n
    finally:
        n.stop()


def _local_msat(node: LightningProcess) -> int:
    return int(node.rpc.ChannelBalance(ln.ChannelBalanceRequest()).local_balance.msat)


def _bridge_cli(n: Net, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "canal", "bridge", "--datadir", str(n.bridged.datadir), *args],
                          capture_output=True, text=True, timeout=60)


def _pay(payer: LightningProcess, payment_request: str) -> ln.Payment:
    updates = list(payer.router.SendPaymentV2(router_pb.SendPaymentRequest(
        payment_request=payment_request, timeout_seconds=60), timeout=90))
    return updates[-1]


def _settled(*nodes: LightningProcess) -> bool:
    def idle(node: LightningProcess) -> bool:
        try:
            chans = node.rpc.ListChannels(ln.ListChannelsRequest(active_only=True)).channels
        except grpc.RpcError:
            return False
        return len(chans) == 1 and not chans[0].pending_htlcs
    return all(idle(n) for n in nodes)


def test_cross_chain_payment_settles_on_both_chains(net: Net) -> None:
    n = net
    before = {name: _local_msat(p) for name, p in
              [("payer", n.payer), ("bridge_a", n.bridge_a), ("bridge_b", n.bridge_b), ("payee", n.payee)]}
    invoice = n.payee.rpc.AddInvoice(ln.Invoice(memo="beta coffee", value=12_000))
    out = _bridge_cli(n, "quote", invoice.payment_request)
    assert out.returncode == 0, out.stderr
    swap = json.loads(out.stdout)
    assert swap["state"] == "QUOTED" and swap["payment_hash"] == bytes(invoice.r_hash).hex()
    fee = 2_000 + 30_000_000 // 100
    assert swap["beta_amt_msat"] == 12_000_000 and swap["alpha_amt_msat"] == 30_000_000 + fee
    alpha_inv = n.payer.rpc.DecodePayReq(ln.PayReqString(pay_req=swap["alpha_payment_request"]))
    assert alpha_inv.payment_hash == bytes(invoice.r_hash).hex() and alpha_inv.num_msat == 30_000_000 + fee
    assert alpha_inv.destination == n.bridge_a.pubkey and alpha_inv.cltv_expiry == swap["alpha_cltv_expiry"]
    again = n.bridged.rpc.Quote(br.QuoteRequest(payment_request=invoice.payment_request))
    assert again.alpha_payment_request == swap["alpha_payment_request"]  # quoting twice: the same quote

    payment = _pay(n.payer, swap["alpha_payment_request"])
    assert payment.status == ln.Payment.SUCCEEDED, payment
    preimage = bytes.fromhex(payment.payment_preimage)
    assert hashlib.sha256(preimage).digest() == bytes(invoice.r_hash)
    paid = n.payee.rpc.LookupInvoice(ln.PaymentHash(r_hash=invoice.r_hash))
    assert paid.state == ln.Invoice.SETTLED and paid.amt_paid_sat == 12_000
    listed = wait_for(lambda: [s for s in n.bridged.rpc.ListSwaps(br.ListSwapsRequest()).swaps
                               if s.payment_hash == swap["payment_hash"] and s.state == br.Swap.SETTLED], 20,
                      "swap settled")
    assert listed[0].preimage == preimage.hex()
    wait_for(lambda: _settled(n.payer, n.bridge_a, n.bridge_b, n.payee), 30, "HTLCs resolved")
    assert before["payer"] - _local_msat(n.payer) == 30_000_000 + fee
    assert _local_msat(n.bridge_a) - before["bridge_a"] == 30_000_000 + fee
    assert before["bridge_b"] - _local_msat(n.bridge_b) == 12_000_000
    assert _local_msat(n.payee) - before["payee"] == 12_000_000


def test_quotes_are_refused_with_a_reason(net: Net) -> None:
    n = net
    expired = n.payee.rpc.AddInvoice(ln.Invoice(value=1_000, expiry=1))
    big = n.payee.rpc.AddInvoice(ln.Invoice(value=2_000_000))
    alpha = n.bridge_a.rpc.AddInvoice(ln.Invoice(value=1_000))
    wait_for(lambda: time.time() > expired_at(n, expired.payment_request) + 1, 5, "invoice expired")
    for req, reason in [(expired.payment_request, "invoice expired"), (big.payment_request, "too large"),
                        (alpha.payment_request, "wrong chain")]:
        with pytest.raises(grpc.RpcError) as e:
            n.bridged.rpc.Quote(br.QuoteRequest(payment_request=req))
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and reason in (e.value.details() or "")
    out = _bridge_cli(n, "quote", big.payment_request)
    assert out.returncode == 1 and "too large" in out.stderr


def expired_at(n: Net, payment_request: str) -> int:
    d = n.payee.rpc.DecodePayReq(ln.PayReqString(pay_req=payment_request))
    return int(d.timestamp + d.expiry)


def test_failed_beta_payment_cancels_the_alpha_htlc(net: Net) -> None:
    n = net
    invoice = n.payee.rpc.AddInvoice(ln.Invoice(value=5_000))
    swap = n.bridged.rpc.Quote(br.QuoteRequest(payment_request=invoice.payment_request))
    n.bridged.kill()  # a bridge killed between the quote and the payment resumes the swap
    n.bridged.start()
    inv_grpc.InvoicesStub(n.payee.channel()).CancelInvoice(inv_pb.CancelInvoiceMsg(payment_hash=invoice.r_hash))
    payer_before = _local_msat(n.payer)
    payment = _pay(n.payer, swap.alpha_payment_request)
    assert payment.status == ln.Payment.FAILED
    assert payment.failure_reason == ln.FAILURE_REASON_INCORRECT_PAYMENT_DETAILS
    done = wait_for(lambda: [s for s in n.bridged.rpc.ListSwaps(br.ListSwapsRequest()).swaps
                             if s.payment_hash == swap.payment_hash and s.state == br.Swap.CANCELED], 20, "canceled")
    assert "beta payment failed" in done[0].reason
    held = n.bridge_a.rpc.LookupInvoice(ln.PaymentHash(r_hash=invoice.r_hash))
    assert held.state == ln.Invoice.CANCELED
    wait_for(lambda: _settled(n.payer, n.bridge_a), 30, "HTLC failed back")
    assert _local_msat(n.payer) == payer_before  # nothing lost
    listed = json.loads(_bridge_cli(n, "list", "--pending_only").stdout)
    assert listed["swaps"] == []
