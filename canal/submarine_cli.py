"""`canal submarine`: the provider's side of submarine swaps on one chain (see :mod:`relay.submarine`).

The provider runs a `canal channeld` and a chain node wallet; the customer uses
`canal swap` (decred atomicswap's commands) for the on-chain half::

  swap in (customer's on-chain coins pay a Lightning invoice):
    provider  canal submarine getnewaddress                    -> ADDRESS
    customer  canal swap participate ADDRESS COINS PAYMENT_HASH  (the invoice's hash; refund after 24 h)
    provider  canal submarine payinvoice CONTRACT CONTRACT_TX INVOICE
              (audits the contract, pays the invoice, redeems the contract with the preimage)

  swap out (customer's Lightning payment buys on-chain coins):
    customer  canal swap getnewaddress -> ADDRESS; keeps a SECRET, gives sha256(SECRET)
    provider  canal submarine holdinvoice AMOUNT_SAT SECRET_HASH ADDRESS   -> a hold invoice
    customer  pays it (canal ln payinvoice: stays in flight)
    provider  canal submarine fundcontract SECRET_HASH   (once the HTLC is held) -> CONTRACT, CONTRACT_TX
    customer  canal swap redeem CONTRACT CONTRACT_TX SECRET
    provider  canal submarine settle SECRET_HASH  (finds the redemption on chain, settles the invoice)
              or, if the customer never redeems: canal submarine refund SECRET_HASH (after the locktime)

Keys and swaps are saved in the swap dir (default ``<ln datadir>/submarine``)
before anything is paid or published. Output is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from base_chain.address import address_to_script
from base_chain.crypto import PrivateKey
from base_chain.hashes import hash160
from base_chain.params import chain_names, get_params
from base_chain.policy import DEFAULT_MIN_RELAY_TX_FEE
from base_chain.rpc import channel_for
from base_chain.rpc.tls import write_atomic
from base_chain.tx import OutPoint, Transaction
from htlc.invoice import InvoiceError, decode_invoice, invoice_prefix
from proto import chain_pb2 as pb
from proto import chain_pb2_grpc as pb_grpc
from proto import invoices_pb2 as inv_pb
from proto import invoices_pb2_grpc as inv_grpc
from proto import lightning_pb2 as ln
from proto import lightning_pb2_grpc as ln_grpc
from proto import router_pb2 as router_pb
from proto import router_pb2_grpc as router_grpc
from relay.contract import (
    ContractError,
    ContractInfo,
    contract_address,
    extract_secret,
    find_contract_output,
    p2wpkh_address,
    parse_contract,
    pkh_from_address,
    redeem_tx,
    refund_tx,
)
from relay.submarine import SubmarineRefused, SubmarineTerms, SwapOutPlan, check_held_htlc, check_swap_in, plan_swap_out

__all__ = ["main"]


class CliError(Exception):
    pass


class Provider:
    def __init__(self, ns: argparse.Namespace) -> None:
        self.params = get_params(ns.chain)
        self.prefixes = self.params.address_prefixes
        self.swapdir: Path = ns.swapdir or ns.ln_datadir / "submarine"
        self.terms = SubmarineTerms(fee_base_sat=ns.fee_base_sat, fee_ppm=ns.fee_ppm,
                                    out_lock_blocks=ns.lock_blocks)
        self._chain_ch = channel_for(ns.chain_datadir)
        self._ln_ch = channel_for(ns.ln_datadir)
        self.chain = pb_grpc.ChainServiceStub(self._chain_ch)  # type: ignore[no-untyped-call]
        self.ln = ln_grpc.LightningStub(self._ln_ch)  # type: ignore[no-untyped-call]
        self.invoices = inv_grpc.InvoicesStub(self._ln_ch)  # type: ignore[no-untyped-call]
        self.router = router_grpc.RouterStub(self._ln_ch)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self._chain_ch.close()
        self._ln_ch.close()

    # --- storage ---------------------------------------------------------------------------------------

    def _write(self, sub: str, name: str, record: dict[str, Any]) -> None:
        folder = self.swapdir / sub
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(folder / f"{name}.json", (json.dumps(record, indent=2) + "\n").encode(), 0o600)

    def new_key(self) -> tuple[PrivateKey, str]:
        key = PrivateKey.generate()
        pkh = hash160(key.public_key().to_bytes())
        address = p2wpkh_address(pkh, self.prefixes)
        self._write("keys", pkh.hex(), {"private_key": key.to_bytes().hex(), "address": address})
        return key, address

    def key_for(self, pkh: bytes) -> PrivateKey | None:
        path = self.swapdir / "keys" / f"{pkh.hex()}.json"
        if not path.exists():
            return None
        return PrivateKey(bytes.fromhex(json.loads(path.read_text())["private_key"]))

    def swap(self, payment_hash: bytes) -> dict[str, Any]:
        path = self.swapdir / "swaps" / f"{payment_hash.hex()}.json"
        if not path.exists():
            raise CliError(f"no swap with hash {payment_hash.hex()} in {self.swapdir}")
        record: dict[str, Any] = json.loads(path.read_text())
        return record

    def save_swap(self, payment_hash: bytes, record: dict[str, Any]) -> None:
        path = self.swapdir / "swaps" / f"{payment_hash.hex()}.json"
        old = json.loads(path.read_text()) if path.exists() else {}
        self._write("swaps", payment_hash.hex(), {**old, **record})

    # --- chain -----------------------------------------------------------------------------------------

    def height(self) -> int:
        return int(self.chain.GetBlockCount(pb.GetBlockCountRequest()).count)

    def fee_rate(self) -> int:
        estimate = self.chain.EstimateFee(pb.EstimateFeeRequest(conf_target=6))
        return max(DEFAULT_MIN_RELAY_TX_FEE, int(round(estimate.feerate_sat_vb * 1000)))

    def wallet_script(self) -> bytes:
        address = self.chain.GetNewAddress(pb.GetNewAddressRequest(label="submarine")).address
        return address_to_script(address, self.prefixes)

    def publish(self, tx: Transaction) -> str:
        return str(self.chain.SendRawTransaction(pb.SendRawTransactionRequest(hexstring=tx.hex())).txid)


def _hex(text: str, what: str, size: int | None = None) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise CliError(f"{what} is not hex") from None
    if size is not None and len(raw) != size:
        raise CliError(f"{what} must be {size} bytes, is {len(raw)}")
    return raw


# --- swap in -----------------------------------------------------------------------------------------------


def _payinvoice(p: Provider, a: argparse.Namespace) -> dict[str, Any]:
    contract = _hex(a.contract, "contract")
    try:
        info = parse_contract(contract)
        contract_tx = Transaction.from_hex(a.contract_tx)
        index = find_contract_output(contract, contract_tx)
        invoice = decode_invoice(a.invoice.strip(), invoice_prefix(p.params))
    except (ContractError, InvoiceError, ValueError) as e:
        raise CliError(getattr(e, "reason", str(e))) from None
    value = contract_tx.outputs[index].amount_sat
    try:
        raw = p.chain.GetRawTransaction(pb.GetRawTransactionRequest(txid=contract_tx.txid_hex()))
        confirmations = int(raw.confirmations)
    except grpc.RpcError:
        confirmations = 0
    key = p.key_for(info.recipient_pkh)
    if key is None:
        raise CliError("the contract does not pay an address of this swap dir (canal submarine getnewaddress)")
    try:
        plan = check_swap_in(contract=info, contract_value_sat=value, confirmations=confirmations, invoice=invoice,
                             provider_pkh=info.recipient_pkh, tip_height=p.height(), now=int(time.time()),
                             terms=p.terms, payer=bytes.fromhex(p.ln.GetInfo(ln.GetInfoRequest()).identity_pubkey))
    except SubmarineRefused as e:
        raise CliError(f"refused: {e.reason}") from None
    h = info.secret_hash
    p.save_swap(h, {"direction": "in", "contract": contract.hex(), "contract_tx": contract_tx.hex(),
                    "invoice": a.invoice.strip(), "fee_sat": plan.fee_sat})
    final = None
    for update in p.router.SendPaymentV2(router_pb.SendPaymentRequest(
            payment_request=a.invoice.strip(), timeout_seconds=60, cltv_limit=plan.cltv_limit,
            fee_limit_msat=plan.fee_limit_msat)):
        final = update
    if final is None or final.status != ln.Payment.SUCCEEDED:
        reason = ln.PaymentFailureReason.Name(final.failure_reason) if final else "no update"
        raise CliError(f"payment failed ({reason}): nothing was redeemed; the customer can refund after block "
                       f"{info.locktime}")
    secret = bytes.fromhex(final.payment_preimage)
    p.save_swap(h, {"preimage": secret.hex()})  # before the redeem is published
    tx = redeem_tx(contract, OutPoint(contract_tx.txid, index), value, secret, key, p.wallet_script(), p.fee_rate())
    p.save_swap(h, {"redeem_tx": tx.hex()})
    txid = p.publish(tx)
    return {"payment_hash": h.hex(), "payment_preimage": secret.hex(), "paid_msat": final.value_msat,
            "routing_fee_msat": final.fee_msat, "contract_value_sat": value, "swap_fee_sat": plan.fee_sat,
            "redeem_txid": txid, "redeemed_sat": tx.outputs[0].amount_sat}


# --- swap out ----------------------------------------------------------------------------------------------


def _plan(record: dict[str, Any]) -> SwapOutPlan:
    return SwapOutPlan(**record["plan"])


def _holdinvoice(p: Provider, a: argparse.Namespace) -> dict[str, Any]:
    h = _hex(a.secret_hash, "secret hash", 32)
    try:
        customer_pkh = pkh_from_address(a.address, p.prefixes)
        plan = plan_swap_out(a.amount_sat, p.terms)
    except ContractError as e:
        raise CliError(f"bad customer address: {e}") from None
    except SubmarineRefused as e:
        raise CliError(e.reason) from None
    p.save_swap(h, {"direction": "out", "customer_pkh": customer_pkh.hex(), "plan": plan.__dict__})
    added = p.invoices.AddHoldInvoice(inv_pb.AddHoldInvoiceRequest(
        hash=h, value=plan.invoice_sat, cltv_expiry=plan.invoice_cltv_expiry,
        memo=f"submarine swap out: {plan.amount_sat} sat on chain"))
    return {"payment_request": added.payment_request, "amount_sat": plan.amount_sat, "invoice_sat": plan.invoice_sat,
            "fee_sat": plan.fee_sat, "lock_blocks": plan.lock_blocks}


def _fundcontract(p: Provider, a: argparse.Namespace) -> dict[str, Any]:
    h = _hex(a.secret_hash, "secret hash", 32)
    record = p.swap(h)
    if record.get("contract_tx"):
        raise CliError("the contract is funded already")
    plan = _plan(record)
    inv = p.invoices.LookupInvoiceV2(inv_pb.LookupInvoiceMsg(payment_hash=h))
    if inv.state != ln.Invoice.ACCEPTED:
        raise CliError(f"the invoice is {ln.Invoice.InvoiceState.Name(inv.state)}: wait for the customer's payment")
    expiry = min(x.expiry_height for x in inv.htlcs if x.state == ln.InvoiceHTLCState.Value("ACCEPTED"))
    try:
        locktime = check_held_htlc(htlc_expiry=expiry, tip_height=p.height(), plan=plan, terms=p.terms)
    except SubmarineRefused as e:
        p.invoices.CancelInvoice(inv_pb.CancelInvoiceMsg(payment_hash=h))
        raise CliError(f"refused (invoice canceled): {e.reason}") from None
    refund_key, refund_address = p.new_key()
    info = ContractInfo(h, bytes.fromhex(record["customer_pkh"]), hash160(refund_key.public_key().to_bytes()),
                        locktime)
    contract = info.script()
    address = contract_address(contract, p.prefixes)
    p.save_swap(h, {"contract": contract.hex(), "refund_address": refund_address, "locktime": locktime})
    sent = p.chain.SendToAddress(pb.SendToAddressRequest(address=address, amount_sat=plan.amount_sat))
    raw = p.chain.GetRawTransaction(pb.GetRawTransactionRequest(txid=sent.txid))
    p.save_swap(h, {"contract_tx": raw.hex})
    return {"contract": contract.hex(), "contract_address": address, "contract_tx": raw.hex,
            "contract_txid": sent.txid, "amount_sat": plan.amount_sat, "locktime": locktime}


def _funded(p: Provider, h: bytes) -> tuple[dict[str, Any], bytes, Transaction, int]:
    record = p.swap(h)
    if not record.get("contract_tx"):
        raise CliError("no contract funded for this swap")
    contract = bytes.fromhex(record["contract"])
    tx = Transaction.from_hex(record["contract_tx"])
    return record, contract, tx, find_contract_output(contract, tx)


def _settle(p: Provider, a: argparse.Namespace) -> dict[str, Any]:
    h = _hex(a.secret_hash, "secret hash", 32)
    record, contract, tx, index = _funded(p, h)
    req = pb.SpendRequest(txid=tx.txid_hex(), vout=index, include_mempool=True,
                          height_hint=max(0, p.height() - 10))
    spend = None
    try:
        for event in p.chain.RegisterSpend(req, timeout=a.timeout):
            if event.kind in (pb.SpendEvent.SPENT, pb.SpendEvent.MEMPOOL):
                spend = event
                break
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
    if spend is None:
        raise CliError(f"the contract is not spent yet (locktime {record['locktime']})")
    try:
        secret = extract_secret(Transaction.from_hex(spend.spending_tx), h)
    except ContractError:
        raise CliError("the contract was refunded, not redeemed: cancel the invoice") from None
    p.save_swap(h, {"preimage": secret.hex(), "redemption_txid": spend.spending_txid})
    p.invoices.SettleInvoice(inv_pb.SettleInvoiceMsg(preimage=secret))
    return {"payment_hash": h.hex(), "payment_preimage": secret.hex(), "redemption_txid": spend.spending_txid,
            "state": "SETTLED"}


def _refund(p: Provider, a: argparse.Namespace) -> dict[str, Any]:
    h = _hex(a.secret_hash, "secret hash", 32)
    record, contract, tx, index = _funded(p, h)
    info = parse_contract(contract)
    key = p.key_for(info.refund_pkh)
    assert key is not None
    height = p.height()
    if height < info.locktime:
        raise CliError(f"contract locked until block {info.locktime} ({info.locktime - height} blocks to go)")
    refund = refund_tx(contract, OutPoint(tx.txid, index), tx.outputs[index].amount_sat, key, p.wallet_script(),
                       p.fee_rate())
    txid = p.publish(refund)
    p.invoices.CancelInvoice(inv_pb.CancelInvoiceMsg(payment_hash=h))
    p.save_swap(h, {"refund_txid": txid})
    return {"payment_hash": h.hex(), "refund_txid": txid, "state": "CANCELED"}


def _getnewaddress(p: Provider, a: argparse.Namespace) -> dict[str, Any]:
    return {"address": p.new_key()[1]}


COMMANDS = {
    "getnewaddress": _getnewaddress,
    "payinvoice": _payinvoice,
    "holdinvoice": _holdinvoice,
    "fundcontract": _fundcontract,
    "settle": _settle,
    "refund": _refund,
}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="canal submarine", description="Submarine swaps (provider side)")
    ap.add_argument("--chain", choices=chain_names(), default="regtest")
    ap.add_argument("--chain-datadir", type=Path, required=True, help="the chain node's data dir (its wallet)")
    ap.add_argument("--ln-datadir", type=Path, required=True, help="the provider's channeld data dir")
    ap.add_argument("--swapdir", type=Path, help="keys and swaps (default <ln datadir>/submarine)")
    ap.add_argument("--fee-base-sat", type=int, default=1_000)
    ap.add_argument("--fee-ppm", type=int, default=5_000)
    ap.add_argument("--lock-blocks", type=int, default=40, help="swap out: blocks the contract stays locked")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sub.add_parser("getnewaddress", help="an address for the customer's swap-in contract")
    s = sub.add_parser("payinvoice", help="swap in: audit the contract, pay the invoice, redeem the contract")
    s.add_argument("contract")
    s.add_argument("contract_tx")
    s.add_argument("invoice")
    s = sub.add_parser("holdinvoice", help="swap out: a hold invoice for AMOUNT_SAT on chain plus the fee")
    s.add_argument("amount_sat", type=int)
    s.add_argument("secret_hash")
    s.add_argument("address", help="the customer's address (canal swap getnewaddress)")
    s = sub.add_parser("fundcontract", help="swap out: lock the coins for the customer once the HTLC is held")
    s.add_argument("secret_hash")
    s = sub.add_parser("settle", help="swap out: settle the invoice with the secret the customer's redeem revealed")
    s.add_argument("secret_hash")
    s.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the redemption")
    s = sub.add_parser("refund", help="swap out: after the locktime, take the coins back and cancel the invoice")
    s.add_argument("secret_hash")
    ns = ap.parse_args(argv)
    try:
        provider = Provider(ns)
    except (OSError, ValueError) as e:
        print(f"[submarine] {e}", file=sys.stderr)
        return 1
    try:
        result = COMMANDS[ns.command](provider, ns)
    except CliError as e:
        print(f"[submarine] {e}", file=sys.stderr)
        return 1
    except grpc.RpcError as e:
        print(f"[submarine] rpc error: code = {e.code().name} desc = {e.details()}", file=sys.stderr)
        return 1
    finally:
        provider.close()
    print(json.dumps(result, indent=4))
    return 0
