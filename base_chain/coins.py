"""Unspent outputs ("coins") and the checks of a transaction against the coins it spends."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from .checks import TxCheckError, money_range
from .serialize import ByteReader, i64, ser_bytes, u32
from .tx import OutPoint, Transaction, TxOut

__all__ = ["Coin", "CoinsView", "DictCoinsView", "check_tx_inputs"]


@dataclass(frozen=True, slots=True)
class Coin:
    """An unspent output with the height of the block that created it."""

    output: TxOut
    height: int
    is_coinbase: bool

    def to_bytes(self) -> bytes:
        code = self.height * 2 + int(self.is_coinbase)
        return u32(code) + i64(self.output.amount_sat) + ser_bytes(self.output.script_pubkey)

    @classmethod
    def read(cls, r: ByteReader) -> Coin:
        code = r.u32()
        amount = r.i64()
        script = r.var_bytes()
        return cls(TxOut(amount, script), code >> 1, bool(code & 1))

    @classmethod
    def from_bytes(cls, data: bytes) -> Coin:
        r = ByteReader(data)
        coin = cls.read(r)
        r.expect_end()
        return coin


class CoinsView(Protocol):
    def get_coin(self, outpoint: OutPoint) -> Coin | None: ...


class DictCoinsView:
    """A coins view over a plain mapping (tests, mempool overlays)."""

    def __init__(self, coins: Mapping[OutPoint, Coin] | None = None) -> None:
        self.coins: dict[OutPoint, Coin] = dict(coins or {})

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        return self.coins.get(outpoint)


def check_tx_inputs(tx: Transaction, view: CoinsView, spend_height: int, coinbase_maturity: int) -> int:
    """Core's Consensus::CheckTxInputs: coins exist, are mature, and cover the outputs.

    Returns the fee in satoshis; raises TxCheckError with Core's reason.
    """
    coins: list[Coin] = []
    for txin in tx.inputs:
        coin = view.get_coin(txin.prevout)
        if coin is None:
            raise TxCheckError("bad-txns-inputs-missingorspent", f"{txin.prevout} not found")
        coins.append(coin)
    value_in = 0
    for coin in coins:
        if coin.is_coinbase and spend_height - coin.height < coinbase_maturity:
            raise TxCheckError(
                "bad-txns-premature-spend-of-coinbase",
                f"tried to spend coinbase at depth {spend_height - coin.height}",
            )
        value_in += coin.output.amount_sat
        if not money_range(coin.output.amount_sat) or not money_range(value_in):
            raise TxCheckError("bad-txns-inputvalues-outofrange")
    value_out = sum(o.amount_sat for o in tx.outputs)
    if value_in < value_out:
        raise TxCheckError("bad-txns-in-belowout", f"value in ({value_in}) < value out ({value_out})")
    fee = value_in - value_out
    if not money_range(fee):
        raise TxCheckError("bad-txns-fee-outofrange")
    return fee
