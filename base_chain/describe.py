"""JSON views of transactions in the shape of bitcoin-cli's decoderawtransaction."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .address import AddressPrefixes, script_to_address
from .templates import classify
from .tx import COIN, Transaction

__all__ = ["format_amount", "decode_transaction"]


def format_amount(sat: int) -> Decimal:
    """Satoshis as coins with 8 decimals, as bitcoin-cli prints them."""
    return (Decimal(sat) / COIN).quantize(Decimal("0.00000001"))


def decode_transaction(tx: Transaction, prefixes: AddressPrefixes) -> dict[str, Any]:
    from .script import to_asm

    vin: list[dict[str, Any]] = []
    for txin in tx.inputs:
        if tx.is_coinbase():
            entry: dict[str, Any] = {"coinbase": txin.script_sig.hex()}
        else:
            entry = {
                "txid": txin.prevout.txid[::-1].hex(),
                "vout": txin.prevout.index,
                "scriptSig": {"asm": to_asm(txin.script_sig, True), "hex": txin.script_sig.hex()},
            }
        if txin.witness:
            entry["txinwitness"] = [w.hex() for w in txin.witness]
        entry["sequence"] = txin.sequence
        vin.append(entry)
    vout: list[dict[str, Any]] = []
    for n, txout in enumerate(tx.outputs):
        spk: dict[str, Any] = {"asm": to_asm(txout.script_pubkey), "hex": txout.script_pubkey.hex()}
        address = script_to_address(txout.script_pubkey, prefixes)
        if address is not None:
            spk["address"] = address
        spk["type"] = classify(txout.script_pubkey)
        vout.append({"value": format_amount(txout.amount_sat), "n": n, "scriptPubKey": spk})
    return {
        "txid": tx.txid[::-1].hex(),
        "hash": tx.wtxid[::-1].hex(),
        "version": tx.version,
        "size": len(tx.to_bytes()),
        "vsize": tx.vsize,
        "weight": tx.weight,
        "locktime": tx.locktime,
        "vin": vin,
        "vout": vout,
    }
