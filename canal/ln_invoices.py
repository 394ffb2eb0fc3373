"""`canal ln` hold-invoice commands (lncli's ``addholdinvoice``, ``settleinvoice``, ``cancelinvoice``).

They talk to ``invoicesrpc.Invoices`` on the node `canal ln` points at, with lncli's
flags and JSON (bytes in hex). See :mod:`htlc.invoices` for what a hold invoice is.
"""

from __future__ import annotations

import argparse
from typing import Any

import grpc

from base_chain.rpc import channel_for
from proto import invoices_pb2 as inv_pb
from proto import invoices_pb2_grpc as inv_grpc

from .ln_cli import Command
from .ln_payments import to_lncli_json

__all__ = ["INVOICE_COMMANDS"]


def _invoices(a: argparse.Namespace) -> tuple[grpc.Channel, inv_grpc.InvoicesStub]:
    host = port = None
    if a.rpcserver:
        host, _, port_s = a.rpcserver.rpartition(":")
        port = int(port_s)
    channel = channel_for(a.datadir, host=host, port=port, macaroon="readonly" if a.readonly else "admin")
    return channel, inv_grpc.InvoicesStub(channel)


def _hex32(text: str, what: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise SystemExit(f"[lncli] {what} is not hex: {text!r}") from None
    if len(raw) != 32:
        raise SystemExit(f"[lncli] {what} must be 32 bytes, is {len(raw)}")
    return raw


def _addholdinvoice(p: argparse.ArgumentParser) -> None:
    p.add_argument("hash", help="the hex payment hash (sha256 of a preimage only you know)")
    p.add_argument("value", nargs="?", type=int, default=0, help="the amount in satoshis (or --amt)")
    p.add_argument("--memo", default="", help="a description of the payment")
    p.add_argument("--amt", type=int, default=0, help="the amount in satoshis")
    p.add_argument("--amt_msat", type=int, default=0, help="the amount in millisatoshis")
    p.add_argument("--description_hash", default="", help="the hex SHA-256 of a long description")
    p.add_argument("--expiry", type=int, default=0, help="seconds the invoice is valid (default 86400)")
    p.add_argument("--cltv_expiry_delta", type=int, default=0, help="the final CLTV delta (default 80)")
    p.add_argument("--private", action="store_true")


def _addholdinvoice_run(stub: Any, a: argparse.Namespace) -> Any:
    req = inv_pb.AddHoldInvoiceRequest(
        hash=_hex32(a.hash, "hash"), memo=a.memo, value=a.amt or a.value, value_msat=a.amt_msat,
        description_hash=_hex32(a.description_hash, "description_hash") if a.description_hash else b"",
        expiry=a.expiry, cltv_expiry=a.cltv_expiry_delta, private=a.private)
    channel, invoices = _invoices(a)
    with channel:
        return to_lncli_json(invoices.AddHoldInvoice(req))


def _settleinvoice(p: argparse.ArgumentParser) -> None:
    p.add_argument("preimage_pos", nargs="?", default="", metavar="preimage")
    p.add_argument("--preimage", default="", help="the hex preimage of the hold invoice's hash")


def _settleinvoice_run(stub: Any, a: argparse.Namespace) -> Any:
    text = a.preimage or a.preimage_pos
    if not text:
        raise SystemExit("[lncli] preimage argument missing")
    channel, invoices = _invoices(a)
    with channel:
        return to_lncli_json(invoices.SettleInvoice(inv_pb.SettleInvoiceMsg(preimage=_hex32(text, "preimage"))))


def _cancelinvoice(p: argparse.ArgumentParser) -> None:
    p.add_argument("paymenthash_pos", nargs="?", default="", metavar="paymenthash")
    p.add_argument("--paymenthash", default="", help="the hex payment hash of the invoice to cancel")


def _cancelinvoice_run(stub: Any, a: argparse.Namespace) -> Any:
    text = a.paymenthash or a.paymenthash_pos
    if not text:
        raise SystemExit("[lncli] paymenthash argument missing")
    channel, invoices = _invoices(a)
    with channel:
        return to_lncli_json(invoices.CancelInvoice(inv_pb.CancelInvoiceMsg(payment_hash=_hex32(text, "paymenthash"))))


INVOICE_COMMANDS: list[Command] = [
    Command("addholdinvoice", "Add a new hold invoice.", _addholdinvoice, _addholdinvoice_run),
    Command("settleinvoice", "Reveal a preimage and use it to settle the corresponding invoice.", _settleinvoice,
            _settleinvoice_run),
    Command("cancelinvoice", "Cancels a (hold) invoice.", _cancelinvoice, _cancelinvoice_run),
]
