"""Coin selection for the wallet: size estimation, Bitcoin Core's branch and bound, largest
first, and laying out the outputs (change included) of a funded transaction.

Pure functions over (selection value, coin) pools: no database, no keys, no clock. A coin
is anything with an ``outpoint`` and an ``amount_sat`` (the wallet's
:class:`~base_chain.walletdb.StoredCoin`); the only randomness (where change goes) comes
from the ``rng`` the caller passes. Fee rates are integer sat/kvB. A request that cannot be
funded raises :class:`FundingError`, with Bitcoin Core's message; the wallet re-raises it as
its WalletError.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from .policy import dust_threshold, fee_for
from .tx import OutPoint, Transaction, TxIn, TxOut

__all__ = [
    "FundingError",
    "SpendableCoin",
    "Plan",
    "P2WPKH_INPUT_VBYTES",
    "BNB_TRIES",
    "estimate_vsize",
    "bnb",
    "select_coins",
    "fund",
    "lay_out",
]

P2WPKH_INPUT_VBYTES = 68  # 41 bytes + (1 + 73 + 34) witness bytes / 4, with a 72-byte signature
BNB_TRIES = 100_000
_DUMMY_WITNESS = (b"\x00" * 72, b"\x00" * 33)


class FundingError(Exception):
    """The coins cannot pay for the request; the message is Bitcoin Core's wording."""


class SpendableCoin(Protocol):
    """What coin selection needs of a coin."""

    @property
    def outpoint(self) -> OutPoint: ...

    @property
    def amount_sat(self) -> int: ...


T = TypeVar("T")
C = TypeVar("C", bound=SpendableCoin)


@dataclass(slots=True)
class Plan(Generic[C]):
    """A funded transaction before signing: the inputs, the outputs (change included), the fee."""

    inputs: list[C]
    outputs: list[TxOut]
    fee_sat: int


def estimate_vsize(n_inputs: int, outputs: Sequence[TxOut]) -> int:
    """The vsize of a transaction spending n P2WPKH inputs, with worst-case (72-byte) signatures."""
    dummy = TxIn(OutPoint(b"\x00" * 32, 0), b"", 0, list(_DUMMY_WITNESS))
    return Transaction(2, [dummy] * n_inputs, list(outputs), 0).vsize


def bnb(pool: Sequence[tuple[int, T]], target: int, cost_of_change: int) -> list[T] | None:
    """Core's branch and bound: a changeless selection whose value is in [target, target + cost_of_change].

    ``pool`` holds (selection value, coin) sorted by value, largest first. Minimises the excess.
    """
    available = sum(v for v, _ in pool)
    if available < target:
        return None
    value = 0
    selection: list[int] = []
    best: list[int] | None = None
    best_excess = cost_of_change + 1
    i = 0
    for _ in range(BNB_TRIES):
        if value + available < target or value > target + cost_of_change:
            backtrack = True
        elif value >= target:
            if value - target < best_excess:
                best, best_excess = list(selection), value - target
                if best_excess == 0:
                    break
            backtrack = True
        else:
            backtrack = False
        if backtrack:
            if not selection:
                break
            i -= 1
            while i > selection[-1]:
                available += pool[i][0]
                i -= 1
            value -= pool[i][0]
            selection.pop()
        else:
            v = pool[i][0]
            available -= v
            # Skip an equal-valued coin when its twin was just left out: that branch is already explored.
            if not selection or i - 1 == selection[-1] or v != pool[i - 1][0]:
                selection.append(i)
                value += v
        i += 1
    return None if best is None else [pool[j][1] for j in best]


def select_coins(pool: Sequence[tuple[int, T]], target: int, cost_of_change: int) -> tuple[list[T], bool] | None:
    """(coins, changeless) covering ``target``: branch and bound first, else largest first."""
    if target <= 0:
        return [], False
    ordered = sorted((p for p in pool if p[0] > 0), key=lambda p: -p[0])
    found = bnb(ordered, target, cost_of_change)
    if found is not None:
        return found, True
    chosen: list[T] = []
    total = 0
    for value, coin in ordered:
        chosen.append(coin)
        total += value
        if total >= target:
            return chosen, False
    return None


def fund(
    recipients: list[TxOut],
    preset: list[C],
    tiers: Sequence[Sequence[C]],
    rate: int,
    change_spk: bytes,
    subtract_fee: bool,
    change_pos: int | None,
    rng: random.Random,
) -> Plan[C]:
    """Select coins (``preset`` always spent) and lay out the outputs, change included.

    ``tiers`` are tried in order (e.g. confirmed coins, then also our unconfirmed change);
    ``rate`` is sat/kvB. Change goes at ``change_pos``, or at a random position drawn from ``rng``.
    """
    input_fee = fee_for(rate, P2WPKH_INPUT_VBYTES)
    change_fee = fee_for(rate, len(TxOut(0, change_spk).to_bytes()))
    cost_of_change = change_fee + input_fee
    base_vsize = estimate_vsize(1, recipients) - P2WPKH_INPUT_VBYTES  # overhead, outputs, segwit marker
    out_total = sum(o.amount_sat for o in recipients)
    if subtract_fee:
        target = out_total - sum(c.amount_sat for c in preset)
    else:
        target = out_total + fee_for(rate, base_vsize) - sum(c.amount_sat - input_fee for c in preset)
    taken = {c.outpoint for c in preset}
    for tier in tiers:
        margin = 0
        for _ in range(4):
            pool = [
                (c.amount_sat if subtract_fee else c.amount_sat - input_fee, c)
                for c in tier if c.outpoint not in taken
            ]
            selected = select_coins(pool, target + margin, cost_of_change)
            if selected is None:
                break
            coins, changeless = selected
            plan, shortfall = lay_out(
                preset + coins, recipients, rate, change_spk, subtract_fee, changeless, change_pos, rng
            )
            if plan is not None:
                return plan
            margin += shortfall + input_fee
    raise FundingError("Insufficient funds")


def lay_out(
    inputs: list[C],
    recipients: list[TxOut],
    rate: int,
    change_spk: bytes,
    subtract_fee: bool,
    changeless: bool,
    change_pos: int | None,
    rng: random.Random,
) -> tuple[Plan[C] | None, int]:
    """The outputs and fee for these inputs; (None, shortfall) when they do not cover the fee."""
    change = TxOut(0, change_spk)
    fee_without = fee_for(rate, estimate_vsize(len(inputs), recipients))
    fee_with = fee_for(rate, estimate_vsize(len(inputs), [*recipients, change]))
    excess = sum(c.amount_sat for c in inputs) - sum(o.amount_sat for o in recipients)
    outputs = [TxOut(o.amount_sat, o.script_pubkey) for o in recipients]
    dust = dust_threshold(TxOut(0, change_spk))
    if subtract_fee:
        if excess < 0:
            return None, -excess
        if not changeless and excess >= dust:
            change.amount_sat, to_subtract, fee = excess, fee_with, fee_with
        else:
            to_subtract = max(0, fee_without - excess)
            fee = excess + to_subtract
        share, rest = divmod(to_subtract, len(outputs))
        for i, out in enumerate(outputs):
            out.amount_sat -= share + (rest if i == 0 else 0)
            if out.amount_sat <= 0:
                raise FundingError("The transaction amount is too small to pay the fee")
            if out.amount_sat < dust_threshold(out):
                raise FundingError("The transaction amount is too small to send after the fee has been deducted")
    elif not changeless and excess - fee_with >= dust:
        change.amount_sat, fee = excess - fee_with, fee_with
    elif excess >= fee_without:
        fee = excess
    else:
        return None, fee_without - excess
    if not outputs and not change.amount_sat:
        raise FundingError("Insufficient funds")
    if change.amount_sat:
        pos = change_pos if change_pos is not None else rng.randrange(len(outputs) + 1)
        outputs.insert(min(pos, len(outputs)), change)
    return Plan(list(inputs), outputs, fee), 0
