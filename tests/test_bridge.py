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
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import grpc
import pytest
from daemons import ChainProcess, LightningProcess, wait_for

from base_chain.crypto import PrivateKey
from base_chain.params import get_params
from canal.demo_bridge import BridgeNetwork as Net
from canal.demo_bridge import start_bridge_network
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
    with pytest.raises(ValueError, match="forgotten"):
        store.forget(done)  # it had an alpha invoice: kept forever
    q2 = quote(_invoice(), config=CONFIG, now=NOW, beta_liquidity_msat=50_000_000)
    failed = store.advance(store.add(q2, NOW), Event.ALPHA_CANCELED, NOW + 1, reason="alpha node: unavailable")
    store.forget(failed)
    assert store.get(q2.payment_hash) is None and store.add(q2, NOW + 2).state is SwapState.QUOTING
    store.close()


# --- integration ------------------------------------------------------------------------------------------------

RATE = "5/2"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("bridge")
    chains: list[ChainProcess] = []
    try:
        for name in ("alpha", "beta"):
            chains.append(ChainProcess(tmp / name, chain=name).start())
        n = start_bridge_network(tmp, chains[0], chains[1],
                                 bridge_args=["--rate", RATE, "--fee-base-msat", "2000", "--fee-ppm", "10000"])
        try:
            yield n
        finally:
            n.stop()
    finally:
        for c in chains:
            c.stop()


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
              [("payer", n.payer), ("bridge_a", n.bridge_alpha), ("bridge_b", n.bridge_beta), ("payee", n.payee)]}
    invoice = n.payee.rpc.AddInvoice(ln.Invoice(memo="beta coffee", value=12_000))
    out = _bridge_cli(n, "quote", invoice.payment_request)
    assert out.returncode == 0, out.stderr
    swap = json.loads(out.stdout)
    assert swap["state"] == "QUOTED" and swap["payment_hash"] == bytes(invoice.r_hash).hex()
    fee = 2_000 + 30_000_000 // 100
    assert swap["beta_amt_msat"] == 12_000_000 and swap["alpha_amt_msat"] == 30_000_000 + fee
    alpha_inv = n.payer.rpc.DecodePayReq(ln.PayReqString(pay_req=swap["alpha_payment_request"]))
    assert alpha_inv.payment_hash == bytes(invoice.r_hash).hex() and alpha_inv.num_msat == 30_000_000 + fee
    assert alpha_inv.destination == n.bridge_alpha.pubkey and alpha_inv.cltv_expiry == swap["alpha_cltv_expiry"]
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
    wait_for(lambda: _settled(n.payer, n.bridge_alpha, n.bridge_beta, n.payee), 30, "HTLCs resolved")
    assert before["payer"] - _local_msat(n.payer) == 30_000_000 + fee
    assert _local_msat(n.bridge_alpha) - before["bridge_a"] == 30_000_000 + fee
    assert before["bridge_b"] - _local_msat(n.bridge_beta) == 12_000_000
    assert _local_msat(n.payee) - before["payee"] == 12_000_000


def test_quotes_are_refused_with_a_reason(net: Net) -> None:
    n = net
    expired = n.payee.rpc.AddInvoice(ln.Invoice(value=1_000, expiry=1))
    big = n.payee.rpc.AddInvoice(ln.Invoice(value=2_000_000))
    alpha = n.bridge_alpha.rpc.AddInvoice(ln.Invoice(value=1_000))
    wait_for(lambda: time.time() > expired_at(n, expired.payment_request) + 1, 5, "invoice expired")
    for req, reason in [(expired.payment_request, "invoice expired"), (big.payment_request, "too large"),
                        (alpha.payment_request, "wrong chain")]:
        with pytest.raises(grpc.RpcError) as e:
            n.bridged.rpc.Quote(br.QuoteRequest(payment_request=req))
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and reason in (e.value.details() or "")
    out = _bridge_cli(n, "quote", big.payment_request)
    assert out.returncode == 1 and "too large" in out.stderr
    info = json.loads(_bridge_cli(n, "getinfo").stdout)
    assert info["alpha_chain"] == "lnalpha" and info["beta_chain"] == "lnbeta" and info["rate"] == RATE
    assert info["beta_pubkey"] == n.bridge_beta.pubkey and 0 < info["beta_liquidity_msat"] < 400_000_000


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
    held = n.bridge_alpha.rpc.LookupInvoice(ln.PaymentHash(r_hash=invoice.r_hash))
    assert held.state == ln.Invoice.CANCELED
    wait_for(lambda: _settled(n.payer, n.bridge_alpha), 30, "HTLC failed back")
    assert _local_msat(n.payer) == payer_before  # nothing lost
    listed = json.loads(_bridge_cli(n, "list", "--pending_only").stdout)
    assert listed["swaps"] == []


def test_bridge_killed_while_beta_payment_in_flight_tracks_it_and_never_pays_twice(net: Net) -> None:
    n = net
    preimage = os.urandom(32)
    payment_hash = hashlib.sha256(preimage).digest()
    payee_invoices = inv_grpc.InvoicesStub(n.payee.channel())
    beta_inv = payee_invoices.AddHoldInvoice(inv_pb.AddHoldInvoiceRequest(hash=payment_hash, value=7_000))
    swap = n.bridged.rpc.Quote(br.QuoteRequest(payment_request=beta_inv.payment_request))
    result: list[ln.Payment] = []
    payer = threading.Thread(target=lambda: result.append(_pay(n.payer, swap.alpha_payment_request)), daemon=True)
    payer.start()
    # the beta HTLC is held by the payee: the bridge is PAYING, its payment IN_FLIGHT
    wait_for(lambda: payee_invoices.LookupInvoiceV2(inv_pb.LookupInvoiceMsg(payment_hash=payment_hash)).state
             == ln.Invoice.ACCEPTED, 30, "beta HTLC held")
    assert [s.state for s in n.bridged.rpc.ListSwaps(br.ListSwapsRequest(pending_only=True)).swaps] == [br.Swap.PAYING]
    n.bridged.kill()
    n.bridged.start()
    payee_invoices.SettleInvoice(inv_pb.SettleInvoiceMsg(preimage=preimage))
    payer.join(60)
    assert result and result[0].status == ln.Payment.SUCCEEDED and result[0].payment_preimage == preimage.hex()
    done = wait_for(lambda: [s for s in n.bridged.rpc.ListSwaps(br.ListSwapsRequest()).swaps
                             if s.payment_hash == payment_hash.hex() and s.state == br.Swap.SETTLED], 20, "settled")
    assert done[0].preimage == preimage.hex()
    beta_payments = [p for p in n.bridge_beta.rpc.ListPayments(ln.ListPaymentsRequest(include_incomplete=True)).payments
                     if p.payment_hash == payment_hash.hex()]
    assert len(beta_payments) == 1 and len(beta_payments[0].htlcs) == 1  # tracked after the restart, not resent
