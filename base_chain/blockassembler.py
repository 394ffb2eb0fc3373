"""Block assembly: Bitcoin Core's BlockAssembler::addPackageTxs over the mempool.

A pure function of the mempool's entries and its ancestor / descendant relation;
:meth:`base_chain.mempool.Mempool.block_template` calls it. Fee rates are integer
sat/kvB, sizes virtual sizes.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Final, Protocol

from .checks import MAX_BLOCK_WEIGHT
from .policy import fee_for
from .sigops import MAX_BLOCK_SIGOPS_COST
from .tx import Transaction

__all__ = [
    "PackageEntry",
    "assemble_block_txs",
    "DEFAULT_BLOCK_MAX_WEIGHT",
    "DEFAULT_BLOCK_MIN_TX_FEE",
    "COINBASE_RESERVED_WEIGHT",
    "COINBASE_RESERVED_SIGOPS",
    "MAX_CONSECUTIVE_FAILURES",
]

DEFAULT_BLOCK_MAX_WEIGHT: Final = MAX_BLOCK_WEIGHT - 4000
DEFAULT_BLOCK_MIN_TX_FEE: Final = 1000
COINBASE_RESERVED_WEIGHT: Final = 4000
COINBASE_RESERVED_SIGOPS: Final = 400
MAX_CONSECUTIVE_FAILURES: Final = 1000


class PackageEntry(Protocol):
    """What block assembly needs of a mempool entry (MempoolEntry has it)."""

    @property
    def tx(self) -> Transaction: ...

    @property
    def fee(self) -> int: ...

    @property
    def vsize(self) -> int: ...

    @property
    def weight(self) -> int: ...

    @property
    def sigop_cost(self) -> int: ...

    @property
    def ancestor_count(self) -> int: ...

    @property
    def ancestor_fees(self) -> int: ...

    @property
    def ancestor_size(self) -> int: ...


def assemble_block_txs(
    entries: Mapping[bytes, PackageEntry],
    ancestors: Callable[[bytes], set[bytes]],
    descendants: Callable[[bytes], set[bytes]],
    max_weight: int = DEFAULT_BLOCK_MAX_WEIGHT,
    *,
    min_fee_rate: int = DEFAULT_BLOCK_MIN_TX_FEE,
) -> list[Transaction]:
    """Core's BlockAssembler::addPackageTxs: transactions for the next block, in block order.

    ``entries`` maps txid to entry; ``ancestors`` / ``descendants`` give a txid's in-mempool
    relatives (not itself). Repeatedly takes the transaction whose package (itself plus its
    ancestors not yet chosen) has the highest fee rate, adding the package parents first; so
    a child paying for its parent (CPFP) brings the parent in. `max_weight` is the whole
    block's (-blockmaxweight); 4000 weight units and 400 sigops are kept for the coinbase.
    Packages below `min_fee_rate` (sat/kvB) are left out.
    """
    package = {t: (e.ancestor_fees, e.ancestor_size) for t, e in entries.items()}
    heap = [(-Fraction(f, s), t) for t, (f, s) in package.items()]
    heapq.heapify(heap)
    chosen: list[bytes] = []
    included: set[bytes] = set()
    weight, sigops, failures = COINBASE_RESERVED_WEIGHT, COINBASE_RESERVED_SIGOPS, 0
    while heap:
        neg_rate, txid = heapq.heappop(heap)
        if txid in included:
            continue
        fees, size = package[txid]
        if -neg_rate != Fraction(fees, size):
            continue  # superseded by a newer heap item
        if fees < fee_for(min_fee_rate, size):
            break
        members = (ancestors(txid) - included) | {txid}
        add_weight = sum(entries[t].weight for t in members)
        add_sigops = sum(entries[t].sigop_cost for t in members)
        if weight + add_weight >= max_weight or sigops + add_sigops >= MAX_BLOCK_SIGOPS_COST:
            failures += 1
            if failures > MAX_CONSECUTIVE_FAILURES and weight > max_weight - 4000:
                break
            continue
        failures = 0
        for t in sorted(members, key=lambda t: (entries[t].ancestor_count, t)):
            included.add(t)
            chosen.append(t)
        weight += add_weight
        sigops += add_sigops
        touched: set[bytes] = set()
        for t in members:
            touched |= descendants(t)
        for d in touched - included:
            rest = (ancestors(d) - included) | {d}
            f, s = sum(entries[t].fee for t in rest), sum(entries[t].vsize for t in rest)
            package[d] = (f, s)
            heapq.heappush(heap, (-Fraction(f, s), d))
    return [entries[t].tx for t in chosen]
