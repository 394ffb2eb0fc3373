"""Submarine swaps on one chain: a Lightning payment for an on-chain HTLC, and back (sans-IO checks and terms).

A *provider* with a Lightning node and a chain wallet trades with a *customer*
who uses decred atomicswap's commands (`canal swap`). Both directions use
:mod:`relay.contract`'s HTLC and one payment hash, so neither side can take the
other's coins:

- **Swap in** (on-chain -> Lightning; Boltz's "submarine swap"): the customer
  wants a Lightning invoice paid and locks coins on chain for the provider
  under the *invoice's* payment hash (``canal swap participate <provider
  address> <amount> <payment hash>``). :func:`check_swap_in` audits that
  contract; the provider pays the invoice, learns the preimage from the payee
  and redeems the contract with it. If the provider never pays, the customer
  refunds after the locktime. The provider pays only with a ``cltv_limit``
  that makes the Lightning HTLC resolve ``safety_margin_blocks`` before the
  customer can refund.
- **Swap out** (Lightning -> on-chain; a "reverse swap"): the customer keeps a
  secret and gives its hash; the provider issues a **hold invoice** for the
  amount plus its fee (:func:`plan_swap_out`). When the customer's HTLC is held,
  :func:`check_held_htlc` says whether it expires late enough, and the
  contract's locktime: the provider locks the coins for the customer. The
  customer redeems on chain (``canal swap redeem``) which reveals the secret;
  the provider settles the hold invoice with it. If the customer never redeems,
  the provider refunds after the locktime and cancels the invoice. The held
  HTLC must outlive the locktime by the margin plus ``HOLD_EXPIRY_DELTA`` (the
  node gives a held HTLC up that many blocks before it expires).

Heights and amounts in, plans or :class:`SubmarineRefused` (with a reason) out;
no I/O, no clock (callers pass ``now``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from htlc.invoice import Invoice, RouteHintHop, is_expired
from htlc.invoices import HOLD_EXPIRY_DELTA, MIN_CLTV_EXPIRY_DELTA

from .contract import ContractInfo

__all__ = [
    "LN_BLOCK_PADDING",
    "SubmarineRefused",
    "SubmarineTerms",
    "SwapInPlan",
    "SwapOutPlan",
    "check_held_htlc",
    "check_swap_in",
    "plan_swap_out",
]

LN_BLOCK_PADDING = 3
"""Blocks a payer adds to the final CLTV (lnd's ``BlockPadding``)."""


class SubmarineRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SubmarineTerms:
    """The provider's terms: a fee of ``fee_base_sat`` + ``fee_ppm`` of the amount, in both directions."""

    fee_base_sat: int = 1_000
    fee_ppm: int = 5_000
    min_confirmations: int = 1
    safety_margin_blocks: int = 6
    #: Swap out: blocks the provider's contract stays locked for the customer.
    out_lock_blocks: int = 40
    #: Lightning routing fees the provider is ready to pay for a swap in, in ppm (plus 1 sat).
    ln_fee_budget_ppm: int = 5_000

    def fee_sat(self, amount_sat: int) -> int:
        return self.fee_base_sat + math.ceil(amount_sat * self.fee_ppm / 1_000_000)


@dataclass(frozen=True)
class SwapInPlan:
    """Pay ``amount_msat`` with these limits, then redeem the contract with the preimage."""

    amount_msat: int
    fee_sat: int
    cltv_limit: int
    fee_limit_msat: int


@dataclass(frozen=True)
class SwapOutPlan:
    """The hold invoice to issue (value and ``cltv_expiry``) and the lock the contract will have."""

    amount_sat: int
    invoice_sat: int
    fee_sat: int
    invoice_cltv_expiry: int
    lock_blocks: int


def check_swap_in(
    *,
    contract: ContractInfo,
    contract_value_sat: int,
    confirmations: int,
    invoice: Invoice,
    provider_pkh: bytes,
    tip_height: int,
    now: int,
    terms: SubmarineTerms,
    payer: bytes | None = None,
) -> SwapInPlan:
    """Whether the customer's contract pays for ``invoice`` (see the module docstring), or SubmarineRefused.

    ``payer``: the provider's node id; a route hint through it costs no CLTV delta (the provider is its start).
    """
    if contract.secret_hash != invoice.payment_hash:
        raise SubmarineRefused("the contract's secret hash is not the invoice's payment hash")
    if contract.recipient_pkh != provider_pkh:
        raise SubmarineRefused("the contract does not pay the provider's address")
    if is_expired(invoice, now):
        raise SubmarineRefused("invoice expired")
    if not invoice.amount_msat:
        raise SubmarineRefused("invoices without an amount cannot be swapped")
    if confirmations < terms.min_confirmations:
        raise SubmarineRefused(f"contract transaction has {confirmations} confirmations, "
                               f"{terms.min_confirmations} needed")
    amount_sat = math.ceil(invoice.amount_msat / 1000)
    fee = terms.fee_sat(amount_sat)
    if contract_value_sat < amount_sat + fee:
        raise SubmarineRefused(f"underfunded: the contract holds {contract_value_sat} sat, the invoice needs "
                               f"{amount_sat} sat + {fee} sat fee")
    cltv_limit = contract.locktime - tip_height - terms.safety_margin_blocks
    hints = max((_hint_cltv(hint, payer) for hint in invoice.route_hints), default=0)
    needed = invoice.min_final_cltv_expiry_delta + LN_BLOCK_PADDING + hints
    if cltv_limit < needed:
        raise SubmarineRefused(f"locktime too soon: block {contract.locktime} leaves {max(cltv_limit, 0)} blocks for "
                               f"a payment that needs {needed}")
    fee_limit = 1_000 + invoice.amount_msat * terms.ln_fee_budget_ppm // 1_000_000
    return SwapInPlan(amount_msat=invoice.amount_msat, fee_sat=fee, cltv_limit=cltv_limit, fee_limit_msat=fee_limit)


def _hint_cltv(hint: tuple[RouteHintHop, ...], payer: bytes | None) -> int:
    start = max((i + 1 for i, h in enumerate(hint) if h.pubkey == payer), default=0)
    return sum(h.cltv_expiry_delta for h in hint[start:])


def plan_swap_out(amount_sat: int, terms: SubmarineTerms) -> SwapOutPlan:
    """The hold invoice for ``amount_sat`` on chain: the amount plus the fee, a CLTV covering the lock."""
    if amount_sat <= 0:
        raise SubmarineRefused("amount must be positive")
    fee = terms.fee_sat(amount_sat)
    cltv = max(MIN_CLTV_EXPIRY_DELTA, terms.out_lock_blocks + terms.safety_margin_blocks + HOLD_EXPIRY_DELTA)
    return SwapOutPlan(amount_sat=amount_sat, invoice_sat=amount_sat + fee, fee_sat=fee, invoice_cltv_expiry=cltv,
                       lock_blocks=terms.out_lock_blocks)


def check_held_htlc(*, htlc_expiry: int, tip_height: int, plan: SwapOutPlan, terms: SubmarineTerms) -> int:
    """The contract's locktime once the customer's HTLC is held, or SubmarineRefused if it expires too soon."""
    locktime = tip_height + plan.lock_blocks
    latest = htlc_expiry - HOLD_EXPIRY_DELTA - terms.safety_margin_blocks
    if locktime > latest:
        raise SubmarineRefused(f"the held HTLC expires at {htlc_expiry}: a contract locked until {locktime} would "
                               f"outlive it (latest {latest})")
    return locktime
