"""Submarine swaps on one chain (relay/submarine.py, `canal submarine` for the provider, `canal swap` for the customer).

Unit tests of the checks, then a regtest chaind with a provider and a customer
channeld (one channel provider -> customer): a swap in (the customer's on-chain
contract pays the provider for paying the customer's own invoice) and a swap out
(the customer's Lightning payment, held, buys coins it redeems on chain).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from daemons import ChainProcess, LightningProcess, wait_for

from base_chain.crypto import PrivateKey
from base_chain.hashes import hash160
from htlc.invoice import Invoice, RouteHintHop, decode_invoice, encode_invoice
from htlc.invoices import HOLD_EXPIRY_DELTA
from proto import chain_pb2 as pb
from proto import invoices_pb2 as inv_pb
from proto import invoices_pb2_grpc as inv_grpc
from proto import lightning_pb2 as ln
from proto import router_pb2 as router_pb
from relay.contract import ContractInfo
from relay.submarine import (
    LN_BLOCK_PADDING,
    SubmarineRefused,
    SubmarineTerms,
    check_held_htlc,
    check_swap_in,
    plan_swap_out,
)

TERMS = SubmarineTerms(fee_base_sat=1_000, fee_ppm=5_000, safety_margin_blocks=6, out_lock_blocks=40)
KEY = PrivateKey(hashlib.sha256(b"payee").digest())
PROVIDER_PKH = hash160(PrivateKey(hashlib.sha256(b"provider").digest()).public_key().to_bytes())
NOW = 1_750_000_000


def _invoice(amount_msat: int | None = 200_000_000, payment_hash: bytes = b"\1" * 32, cltv: int = 80,
             expiry: int = 3600) -> Invoice:
    inv = Invoice(prefix="lnbcrt", amount_msat=amount_msat, timestamp=NOW, payment_hash=payment_hash,
                  payment_secret=os.urandom(32), description="x", expiry=expiry, min_final_cltv_expiry_delta=cltv,
                  features=(1 << 8) | (1 << 14),
                  route_hints=((RouteHintHop(KEY.public_key().to_bytes(), 1 << 40, 0, 0, 40),),))
    return decode_invoice(encode_invoice(inv, KEY), "lnbcrt")


def _check(**kw: Any) -> Any:
    args: dict[str, Any] = dict(contract=ContractInfo(b"\1" * 32, PROVIDER_PKH, b"\2" * 20, 1_144),
                                contract_value_sat=202_000, confirmations=1, invoice=_invoice(),
                                provider_pkh=PROVIDER_PKH, tip_height=1_000, now=NOW + 10, terms=TERMS)
    args.update(kw)
    return check_swap_in(**args)


def test_swap_in_checks() -> None:
    plan = _check()
    assert plan.fee_sat == 1_000 + 1_000 and plan.amount_msat == 200_000_000
    assert plan.cltv_limit == 144 - 6  # the payment resolves 6 blocks before the customer can refund
    for kw, reason in [
        (dict(contract=ContractInfo(b"\3" * 32, PROVIDER_PKH, b"\2" * 20, 1_144)), "not the invoice's payment hash"),
        (dict(contract=ContractInfo(b"\1" * 32, b"\4" * 20, b"\2" * 20, 1_144)), "does not pay the provider"),
        (dict(contract_value_sat=201_999), "underfunded"),
        (dict(confirmations=0), "confirmations"),
        (dict(now=NOW + 3601), "expired"),
        (dict(invoice=_invoice(amount_msat=None)), "without an amount"),
        (dict(tip_height=1_144 - 6 - (80 + 40 + LN_BLOCK_PADDING) + 1), "locktime too soon"),
    ]:
        with pytest.raises(SubmarineRefused, match=reason):
            _check(**kw)
    assert _check(tip_height=1_144 - 6 - (80 + 40 + LN_BLOCK_PADDING)).cltv_limit == 80 + 40 + LN_BLOCK_PADDING
    # a hint that starts at the paying node costs it no delta
    assert _check(tip_height=1_144 - 6 - 83, payer=KEY.public_key().to_bytes()).cltv_limit == 83


def test_swap_out_plan_and_held_htlc_check() -> None:
    plan = plan_swap_out(100_000, TERMS)
    assert plan.invoice_sat == 100_000 + 1_500 and plan.invoice_cltv_expiry == 40 + 6 + HOLD_EXPIRY_DELTA
    # the customer's HTLC expires at tip + 58 + 3: the contract (tip + 40) ends 6 + 12 blocks before the hold limit
    assert check_held_htlc(htlc_expiry=1_061, tip_height=1_000, plan=plan, terms=TERMS) == 1_040
    assert check_held_htlc(htlc_expiry=1_058, tip_height=1_000, plan=plan, terms=TERMS) == 1_040
    with pytest.raises(SubmarineRefused, match="outlive"):
        check_held_htlc(htlc_expiry=1_057, tip_height=1_000, plan=plan, terms=TERMS)
    with pytest.raises(SubmarineRefused):
        plan_swap_out(0, TERMS)


# --- integration ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("submarine")
    chain = ChainProcess(tmp / "chain").start()
    procs: list[Any] = [chain]
    try:
        chain.generate(101)
        provider = LightningProcess(tmp / "provider", chain)
        customer = LightningProcess(tmp / "customer", chain)
        procs += [provider, customer]
        starting = [threading.Thread(target=p.start) for p in (provider, customer)]
        for t in starting:
            t.start()
        for t in starting:
            t.join()
        assert provider.alive() and customer.alive()
        addr = provider.rpc.NewAddress(ln.NewAddressRequest()).address
        chain.rpc.SendToAddress(pb.SendToAddressRequest(address=addr, amount_sat=3_000_000, fee_rate_sat_vb=2))
        chain.generate(1)
        wait_for(lambda: provider.rpc.WalletBalance(ln.WalletBalanceRequest()).confirmed_balance > 0, 30, "funded")
        provider.rpc.ConnectPeer(ln.ConnectPeerRequest(addr=ln.LightningAddress(
            pubkey=customer.pubkey, host=f"127.0.0.1:{customer.info['listen_port']}")))
        wait_for(lambda: customer.rpc.ListPeers(ln.ListPeersRequest()).peers, 20, "connected")
        provider.rpc.OpenChannelSync(ln.OpenChannelRequest(node_pubkey=bytes.fromhex(customer.pubkey),
                                                           local_funding_amount=1_000_000, sat_per_vbyte=2))
        chain.generate(3)
        for n in (provider, customer):
            wait_for(lambda n=n: len(n.rpc.ListChannels(ln.ListChannelsRequest(active_only=True)).channels) == 1,
                     30, "channel active")
        yield chain, provider, customer, tmp
    finally:
        for p in reversed(procs):
            p.stop()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "canal", *args], capture_output=True, text=True, timeout=60)


def _submarine(chain: ChainProcess, provider: LightningProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return _run("submarine", "--chain-datadir", str(chain.datadir), "--ln-datadir", str(provider.datadir), *args)


def _swap(chain: ChainProcess, swapdir: Path, *args: str) -> str:
    out = _run("swap", "--chain", "regtest", "--chain-datadir", str(chain.datadir), "--swapdir", str(swapdir), *args)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def _block(out: str, title: str) -> str:
    m = re.search(rf"^{re.escape(title)} \(\w+\):\n([0-9a-f]+)$", out, re.M)
    assert m, out
    return m.group(1)


def _local_msat(node: LightningProcess) -> int:
    return int(node.rpc.ChannelBalance(ln.ChannelBalanceRequest()).local_balance.msat)


def test_swap_in_pays_the_invoice_and_redeems_the_contract(net) -> None:
    chain, provider, customer, tmp = net
    address = json.loads(_submarine(chain, provider, "getnewaddress").stdout)["address"]
    invoice = customer.rpc.AddInvoice(ln.Invoice(value=200_000, memo="inbound liquidity"))
    hash_hex = bytes(invoice.r_hash).hex()
    out = _swap(chain, tmp / "customer-swap", "participate", address, "0.00202000", hash_hex, "--yes")
    contract, contract_tx = _block(out, "Contract"), _block(out, "Contract transaction")
    unconfirmed = _submarine(chain, provider, "payinvoice", contract, contract_tx, invoice.payment_request)
    assert unconfirmed.returncode == 1 and "confirmations" in unconfirmed.stderr
    chain.generate(1)
    other = customer.rpc.AddInvoice(ln.Invoice(value=200_000))
    wrong = _submarine(chain, provider, "payinvoice", contract, contract_tx, other.payment_request)
    assert wrong.returncode == 1 and "not the invoice's payment hash" in wrong.stderr
    before = _local_msat(customer)
    done = _submarine(chain, provider, "payinvoice", contract, contract_tx, invoice.payment_request)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert hashlib.sha256(bytes.fromhex(result["payment_preimage"])).hexdigest() == hash_hex
    assert result["contract_value_sat"] == 202_000 and result["swap_fee_sat"] == 2_000
    assert customer.rpc.LookupInvoice(ln.PaymentHash(r_hash=invoice.r_hash)).state == ln.Invoice.SETTLED
    wait_for(lambda: _local_msat(customer) - before == 200_000_000, 20, "customer paid")
    chain.generate(1)
    redeem = chain.rpc.GetRawTransaction(pb.GetRawTransactionRequest(txid=result["redeem_txid"]))
    assert redeem.confirmations == 1


def test_swap_out_sells_on_chain_coins_for_a_held_payment(net) -> None:
    chain, provider, customer, tmp = net
    swapdir = tmp / "customer-swap"
    address = _swap(chain, swapdir, "getnewaddress").strip()
    secret = os.urandom(32)
    h = hashlib.sha256(secret).hexdigest()
    out = _submarine(chain, provider, "holdinvoice", "100000", h, address)
    assert out.returncode == 0, out.stderr
    offer = json.loads(out.stdout)
    assert offer["invoice_sat"] == 101_500
    early = _submarine(chain, provider, "fundcontract", h)
    assert early.returncode == 1 and "OPEN" in early.stderr
    customer_before = _local_msat(customer)
    updates: list[ln.Payment] = []
    payer = threading.Thread(target=lambda: updates.extend(customer.router.SendPaymentV2(
        router_pb.SendPaymentRequest(payment_request=offer["payment_request"], timeout_seconds=60), timeout=120)),
        daemon=True)
    payer.start()
    invoices = inv_grpc.InvoicesStub(provider.channel())
    wait_for(lambda: invoices.LookupInvoiceV2(inv_pb.LookupInvoiceMsg(payment_hash=bytes.fromhex(h))).state
             == ln.Invoice.ACCEPTED, 30, "HTLC held")
    funded = _submarine(chain, provider, "fundcontract", h)
    assert funded.returncode == 0, funded.stderr
    contract = json.loads(funded.stdout)
    assert contract["amount_sat"] == 100_000 and contract["locktime"] == chain.height() + 40
    not_yet = _submarine(chain, provider, "settle", h, "--timeout", "1")
    assert not_yet.returncode == 1 and "not spent" in not_yet.stderr
    chain.generate(1)
    redeemed = _swap(chain, swapdir, "redeem", contract["contract"], contract["contract_tx"], secret.hex(), "--yes")
    assert "Published redeem transaction" in redeemed
    settled = _submarine(chain, provider, "settle", h)
    assert settled.returncode == 0, settled.stderr
    assert json.loads(settled.stdout)["payment_preimage"] == secret.hex()
    payer.join(60)
    assert updates and updates[-1].status == ln.Payment.SUCCEEDED and updates[-1].payment_preimage == secret.hex()
    wait_for(lambda: customer_before - _local_msat(customer) == 101_500_000, 20, "customer's payment settled")


def test_swap_out_refunded_when_the_customer_never_redeems(net) -> None:
    chain, provider, customer, tmp = net
    address = _swap(chain, tmp / "customer-swap", "getnewaddress").strip()
    h = hashlib.sha256(os.urandom(32)).hexdigest()
    offer = json.loads(_submarine(chain, provider, "holdinvoice", "50000", h, address).stdout)
    updates: list[ln.Payment] = []
    payer = threading.Thread(target=lambda: updates.extend(customer.router.SendPaymentV2(
        router_pb.SendPaymentRequest(payment_request=offer["payment_request"], timeout_seconds=60), timeout=120)),
        daemon=True)
    payer.start()
    invoices = inv_grpc.InvoicesStub(provider.channel())
    wait_for(lambda: invoices.LookupInvoiceV2(inv_pb.LookupInvoiceMsg(payment_hash=bytes.fromhex(h))).state
             == ln.Invoice.ACCEPTED, 30, "HTLC held")
    contract = json.loads(_submarine(chain, provider, "fundcontract", h).stdout)
    early = _submarine(chain, provider, "refund", h)
    assert early.returncode == 1 and "locked until" in early.stderr
    chain.generate(contract["locktime"] - chain.height())
    refunded = _submarine(chain, provider, "refund", h)
    assert refunded.returncode == 0, refunded.stderr
    payer.join(60)
    assert updates and updates[-1].status == ln.Payment.FAILED
    assert updates[-1].failure_reason == ln.FAILURE_REASON_INCORRECT_PAYMENT_DETAILS
    chain.generate(1)
    tx = chain.rpc.GetRawTransaction(pb.GetRawTransactionRequest(txid=json.loads(refunded.stdout)["refund_txid"]))
    assert tx.confirmations == 1
