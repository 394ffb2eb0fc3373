"""A Lightning bridge between two chains: pay a beta invoice with alpha, atomically under one payment hash (sans-IO).

The bridge operator has a channeld on alpha and one on beta. A payer on alpha
who wants to pay a beta invoice asks the bridge for a *quote*; the bridge
answers with an alpha **hold invoice** (see :mod:`htlc.invoices`) under the
beta invoice's payment hash. The payer pays it as any invoice. When the alpha
HTLC is held (invoice ACCEPTED), the bridge pays the beta invoice; the beta
payee's preimage comes back to the bridge, which settles the alpha hold invoice
with it. If the beta payment fails, the alpha invoice is canceled and the payer
gets the HTLC back. Nobody can take the money of the other: the payer's alpha
HTLC can only be claimed with the preimage, which the bridge learns only by
paying the beta invoice (the same construction as Loop / Boltz swaps and
cross-chain HTLC atomic swaps).

This module decides, the daemon (:mod:`relay.bridged`) acts:

- :func:`quote`: from a beta invoice, the rate, the fee and both chains' block
  intervals, the alpha hold invoice to issue, or :class:`QuoteRefused` with a
  reason (expired, no amount, wrong chain, too large for the beta liquidity,
  a CLTV that cannot be covered);
- :func:`beta_payment_limits`: once the alpha HTLC is held, the ``cltv_limit``
  and ``fee_limit_msat`` of the beta payment (so the beta HTLC is resolved well
  before the alpha one can time out), or :class:`QuoteRefused` if there is no
  time left;
- :class:`SwapState` and :func:`next_state`: the swap's life, one durable state
  at a time, each a step the daemon can redo after a crash.

Time: alpha and beta blocks have different intervals (alpha 600 s, beta 150 s).
A beta route whose HTLC can stay pending for ``n`` beta blocks needs
``ceil(n * beta_s / alpha_s)`` alpha blocks, plus the configured safety margin
(blocks are not punctual), plus ``HOLD_EXPIRY_DELTA``: the alpha node cancels a
held HTLC that many blocks before its expiry (lnd's rule) and the bridge must be
done by then. No clock is read here: callers pass ``now`` and heights.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from fractions import Fraction

from htlc.invoice import Invoice, InvoiceError, decode_invoice, is_expired
from htlc.invoices import HOLD_EXPIRY_DELTA, MAX_CLTV_EXPIRY_DELTA, MIN_CLTV_EXPIRY_DELTA

__all__ = [
    "BETA_BLOCK_PADDING",
    "BridgeConfig",
    "Quote",
    "QuoteRefused",
    "SwapState",
    "alpha_blocks_for",
    "beta_blocks_within",
    "beta_payment_limits",
    "beta_route_cltv",
    "next_state",
    "quote",
]

BETA_BLOCK_PADDING = 3
"""Blocks a payer adds to the final CLTV (lnd's ``BlockPadding``; Canal's payer does the same)."""


class QuoteRefused(Exception):
    """The bridge will not (or can no longer) carry this payment; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class BridgeConfig:
    """The operator's terms. ``rate``: alpha sat per beta sat; the fee is in alpha msat."""

    alpha_prefix: str
    beta_prefix: str
    alpha_block_s: int
    beta_block_s: int
    rate: Fraction
    fee_base_msat: int = 1_000
    fee_ppm: int = 1_000
    #: Alpha blocks kept in reserve beyond the converted beta CLTV (block times vary).
    safety_margin_blocks: int = 6
    #: The largest min_final_cltv_expiry the bridge will ask of an alpha payer.
    max_alpha_cltv: int = 1_008
    #: Routing fees the bridge is ready to pay on beta, in ppm of the beta amount (plus 1 sat).
    beta_fee_budget_ppm: int = 5_000
    #: Seconds the payer needs at least to pay the alpha invoice before the beta invoice expires.
    min_payment_window_s: int = 60

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError("the exchange rate must be positive")
        if self.alpha_block_s <= 0 or self.beta_block_s <= 0:
            raise ValueError("block intervals must be positive")
        if self.fee_base_msat < 0 or self.fee_ppm < 0 or self.safety_margin_blocks < 0:
            raise ValueError("fees and the safety margin must not be negative")


@dataclass(frozen=True)
class Quote:
    """The alpha hold invoice to issue for a beta invoice (amounts in msat, CLTVs in blocks, expiry in seconds)."""

    payment_hash: bytes
    beta_payment_request: str
    beta_amount_msat: int
    beta_fee_limit_msat: int
    beta_cltv: int
    alpha_amount_msat: int
    fee_msat: int
    alpha_cltv_expiry: int
    alpha_expiry_s: int
    memo: str


def alpha_blocks_for(beta_blocks: int, config: BridgeConfig) -> int:
    """Alpha blocks that last at least as long as ``beta_blocks`` beta blocks (at the nominal intervals)."""
    return math.ceil(beta_blocks * config.beta_block_s / config.alpha_block_s)


def beta_blocks_within(alpha_blocks: int, config: BridgeConfig) -> int:
    """Beta blocks that surely fit in ``alpha_blocks`` alpha blocks (at the nominal intervals)."""
    return max(0, alpha_blocks * config.alpha_block_s // config.beta_block_s)


def beta_route_cltv(invoice: Invoice) -> int:
    """The CLTV delta the bridge's beta HTLC needs: the final delta, the hinted hops' deltas and the padding."""
    hints = max((sum(h.cltv_expiry_delta for h in hint) for hint in invoice.route_hints), default=0)
    return invoice.min_final_cltv_expiry_delta + hints + BETA_BLOCK_PADDING


def beta_fee_limit(beta_amount_msat: int, config: BridgeConfig) -> int:
    return 1_000 + beta_amount_msat * config.beta_fee_budget_ppm // 1_000_000


def quote(payment_request: str, *, config: BridgeConfig, now: int, beta_liquidity_msat: int) -> Quote:
    """The alpha hold invoice for a beta invoice, or QuoteRefused (see the module docstring)."""
    text = payment_request.strip().lower()
    if not text.startswith(config.beta_prefix):
        chain = "alpha" if text.startswith(config.alpha_prefix) else "an unknown chain"
        raise QuoteRefused(f"wrong chain: the invoice is for {chain}, the bridge pays {config.beta_prefix} invoices")
    try:
        invoice = decode_invoice(text, config.beta_prefix)
    except InvoiceError as e:
        raise QuoteRefused(f"invalid payment request: {e.reason}") from None
    if is_expired(invoice, now):
        raise QuoteRefused(f"invoice expired at {invoice.timestamp + invoice.expiry} (now {now})")
    window = invoice.timestamp + invoice.expiry - now
    if window < config.min_payment_window_s:
        raise QuoteRefused(f"invoice expires in {window} s, the bridge needs at least {config.min_payment_window_s} s")
    if not invoice.amount_msat:
        raise QuoteRefused("invoices without an amount are not bridged")
    beta_amount = invoice.amount_msat
    fee_limit = beta_fee_limit(beta_amount, config)
    if beta_amount + fee_limit > beta_liquidity_msat:
        raise QuoteRefused(f"too large: {beta_amount} msat (+ up to {fee_limit} msat fees) exceeds the bridge's "
                           f"beta liquidity of {beta_liquidity_msat} msat")
    beta_cltv = beta_route_cltv(invoice)
    alpha_cltv = max(MIN_CLTV_EXPIRY_DELTA,
                     alpha_blocks_for(beta_cltv, config) + config.safety_margin_blocks + HOLD_EXPIRY_DELTA)
    if alpha_cltv > min(config.max_alpha_cltv, MAX_CLTV_EXPIRY_DELTA):
        raise QuoteRefused(f"CLTV cannot be covered: the beta route needs {beta_cltv} beta blocks, i.e. {alpha_cltv} "
                           f"alpha blocks, above the bridge's maximum of {config.max_alpha_cltv}")
    converted = math.ceil(beta_amount * config.rate)
    fee = config.fee_base_msat + math.ceil(converted * config.fee_ppm / 1_000_000)
    description = invoice.description or ""
    memo = f"bridge to {config.beta_prefix}: {beta_amount // 1000} sat" + (f" ({description})" if description else "")
    return Quote(
        payment_hash=invoice.payment_hash, beta_payment_request=text, beta_amount_msat=beta_amount,
        beta_fee_limit_msat=fee_limit, beta_cltv=beta_cltv, alpha_amount_msat=converted + fee, fee_msat=fee,
        alpha_cltv_expiry=alpha_cltv, alpha_expiry_s=window - config.min_payment_window_s // 2,
        memo=memo[:200],
    )


def beta_payment_limits(
    *, alpha_htlc_expiry: int, alpha_height: int, beta_cltv: int, config: BridgeConfig
) -> int:
    """The ``cltv_limit`` (beta blocks) of the beta payment once the alpha HTLC (earliest expiry) is held.

    The beta HTLC must be resolved before the alpha node gives the held HTLC up (``HOLD_EXPIRY_DELTA``
    blocks before its expiry), with the safety margin. QuoteRefused when that leaves less than the
    beta route needs (the payer was too slow, or paid with too short a CLTV).
    """
    alpha_left = alpha_htlc_expiry - alpha_height - HOLD_EXPIRY_DELTA - config.safety_margin_blocks
    limit = beta_blocks_within(alpha_left, config)
    if limit < beta_cltv:
        raise QuoteRefused(f"the alpha HTLC expires at {alpha_htlc_expiry} (height {alpha_height}): {limit} beta "
                           f"blocks left, the beta route needs {beta_cltv}")
    return limit


class SwapState(enum.Enum):
    """A swap's durable states; each names the next step the daemon takes (and retakes after a restart)."""

    QUOTING = "QUOTING"  # persisted, alpha hold invoice being added
    QUOTED = "QUOTED"  # alpha hold invoice issued: waiting for the payer's HTLC
    PAYING = "PAYING"  # alpha HTLC held: the beta payment is started (or tracked after a restart)
    SETTLING = "SETTLING"  # beta paid, preimage persisted: settle the alpha invoice
    CANCELING = "CANCELING"  # beta failed or no time left: cancel the alpha invoice
    SETTLED = "SETTLED"  # done: both chains paid
    CANCELED = "CANCELED"  # done: nothing moved (the alpha HTLC, if any, went back)
    EXPIRED = "EXPIRED"  # done: the alpha invoice was never paid

    @property
    def is_final(self) -> bool:
        return self in (SwapState.SETTLED, SwapState.CANCELED, SwapState.EXPIRED)


class Event(enum.Enum):
    ALPHA_ADDED = "alpha hold invoice added"
    ALPHA_ACCEPTED = "alpha HTLC held"
    ALPHA_EXPIRED = "alpha invoice expired unpaid"
    NO_TIME = "no time left for the beta payment"
    BETA_SUCCEEDED = "beta payment succeeded"
    BETA_FAILED = "beta payment failed"
    ALPHA_SETTLED = "alpha invoice settled"
    ALPHA_CANCELED = "alpha invoice canceled"


_TRANSITIONS: dict[tuple[SwapState, Event], SwapState] = {
    (SwapState.QUOTING, Event.ALPHA_ADDED): SwapState.QUOTED,
    (SwapState.QUOTING, Event.ALPHA_CANCELED): SwapState.CANCELED,
    (SwapState.QUOTED, Event.ALPHA_ACCEPTED): SwapState.PAYING,
    (SwapState.QUOTED, Event.NO_TIME): SwapState.CANCELING,
    (SwapState.QUOTED, Event.ALPHA_EXPIRED): SwapState.EXPIRED,
    (SwapState.QUOTED, Event.ALPHA_CANCELED): SwapState.CANCELED,
    (SwapState.PAYING, Event.BETA_SUCCEEDED): SwapState.SETTLING,
    (SwapState.PAYING, Event.BETA_FAILED): SwapState.CANCELING,
    (SwapState.SETTLING, Event.ALPHA_SETTLED): SwapState.SETTLED,
    (SwapState.CANCELING, Event.ALPHA_CANCELED): SwapState.CANCELED,
}


def next_state(state: SwapState, event: Event) -> SwapState:
    """The state after ``event``; ValueError for an event that cannot happen in ``state``.

    Missing on purpose: PAYING + ALPHA_CANCELED. Once the beta payment is out, the bridge never
    gives up the alpha HTLC (it waits for the beta outcome); ``beta_payment_limits`` makes the beta
    HTLC resolve before the alpha node's hold deadline.
    """
    try:
        return _TRANSITIONS[(state, event)]
    except KeyError:
        raise ValueError(f"{event.value} cannot happen in state {state.value}") from None
