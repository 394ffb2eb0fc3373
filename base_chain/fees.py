"""Fee estimation from the blocks the mempool has seen (estimatesmartfee, simplified).

A sans-IO helper owned by the :class:`~base_chain.mempool.Mempool`: for each block
connected, before the block's transactions leave the mempool, the mempool hands it to
:meth:`FeeEstimator.record_block` together with its entries; :meth:`FeeEstimator.estimate`
answers from the last ``FEE_HISTORY_BLOCKS`` blocks. Fee rates are integer sat/kvB.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Final, Protocol

from .block import Block

__all__ = ["FeeEstimator", "ScoredEntry", "FALLBACK_FEE", "FEE_HISTORY_BLOCKS"]

FALLBACK_FEE: Final = 1000
"""estimate_fee's answer (sat/kvB) before any block has been seen."""
FEE_HISTORY_BLOCKS: Final = 24


class ScoredEntry(Protocol):
    """What the estimator needs of a mempool entry (MempoolEntry has it)."""

    @property
    def fee_rate(self) -> int: ...

    @property
    def descendant_fee_rate(self) -> int: ...


class FeeEstimator:
    """The clearing rates of the last FEE_HISTORY_BLOCKS blocks, and estimates from them."""

    def __init__(self) -> None:
        self._clearing_rates: deque[int] = deque(maxlen=FEE_HISTORY_BLOCKS)

    def record_block(self, block: Block, entries: Mapping[bytes, ScoredEntry], min_relay_fee: int) -> None:
        """Note the block's clearing rate: the lowest mining score among the mempool
        transactions it confirmed (score = max(own rate, rate with mempool descendants),
        so a parent paid for by its child counts at the package's rate). A block that
        leaves nothing behind in the mempool cleared at the min relay fee; a block that
        confirmed none of our transactions but left some says nothing.

        ``entries`` is the mempool as it was before the block's transactions left it."""
        txids = {tx.txid for tx in block.transactions}
        scores = [
            max(e.fee_rate, e.descendant_fee_rate) for t, e in entries.items() if t in txids
        ]
        if len(scores) == len(entries):
            self._clearing_rates.append(min_relay_fee)
        elif scores:
            self._clearing_rates.append(min(scores))

    def estimate(self, conf_target: int, floor: Callable[[], int]) -> int:
        """A fee rate (sat/kvB) likely to confirm within `conf_target` blocks.

        From the clearing rates of the last 24 blocks seen: a rate at or above the
        clearing rate of at least 1/conf_target of them, i.e. one that would have made
        it into a block about every conf_target blocks. Never below ``floor()``, which
        is called only when there is data; FALLBACK_FEE (1000) with no data.
        """
        rates = sorted(self._clearing_rates)
        if not rates:
            return FALLBACK_FEE
        target = max(1, conf_target)
        need = -(-len(rates) // target)
        return max(rates[need - 1], floor())
