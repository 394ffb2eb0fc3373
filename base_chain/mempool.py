"""The transaction memory pool: Bitcoin Core's MemPoolAccept (validation.cpp), CTxMemPool
(txmempool.cpp), BIP125 replacement (policy/rbf.cpp) and the miner's ancestor-feerate selection.

A sans-IO core: no clock reads (`now`, UNIX seconds, is passed in; calls that take
it optionally fall back to the last `now` seen), no threads, no I/O. It reads the
chain through the `ChainState` it is given and learns of blocks from the caller:
:meth:`Mempool.remove_for_block` for each block connected and
:meth:`Mempool.readd_disconnected` for blocks disconnected in a reorg (or
:meth:`Mempool.on_chain_events` with the events `ChainState.accept_block` returns).

Acceptance runs Core's checks in Core's order and rejects with :class:`MempoolReject`,
whose ``reason`` is Core's string. Coins seen by a new transaction are the chain's
UTXO set plus the outputs of mempool transactions; an input also spent by a mempool
transaction is a conflict, allowed only as a BIP125 replacement.

Sizes are virtual sizes adjusted for signature operations (policy.virtual_size), as
Core's ``GetTxSize``; fee rates are integer sat/kvB.

Block assembly (:meth:`Mempool.block_template`) is in :mod:`base_chain.blockassembler`,
fee estimation (:meth:`Mempool.estimate_fee`) in :mod:`base_chain.fees`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Final

from .block import Block
from .blockassembler import (  # the constants stay importable from here
    COINBASE_RESERVED_SIGOPS as COINBASE_RESERVED_SIGOPS,
    COINBASE_RESERVED_WEIGHT as COINBASE_RESERVED_WEIGHT,
    DEFAULT_BLOCK_MAX_WEIGHT,
    DEFAULT_BLOCK_MIN_TX_FEE,
    MAX_CONSECUTIVE_FAILURES as MAX_CONSECUTIVE_FAILURES,
    assemble_block_txs,
)
from .chainstate import BlockDisconnected, ChainEvent, ChainState
from .checks import TxCheckError, check_transaction, verify_input_scripts
from .coins import Coin, DictCoinsView, check_tx_inputs
from .fees import FALLBACK_FEE, FeeEstimator
from .fees import FEE_HISTORY_BLOCKS as FEE_HISTORY_BLOCKS  # stays importable from here
from .locks import (
    SEQUENCE_LOCKTIME_DISABLE_FLAG,
    SEQUENCE_LOCKTIME_TYPE_FLAG,
    calculate_sequence_locks,
    evaluate_sequence_locks,
    is_final_tx,
)
from .policy import (
    DEFAULT_INCREMENTAL_RELAY_FEE,
    DEFAULT_MIN_RELAY_TX_FEE,
    DEFAULT_PERMIT_BAREMULTISIG,
    DUST_RELAY_TX_FEE,
    MAX_OP_RETURN_RELAY,
    check_inputs_standard,
    check_min_relay_fee,
    check_min_tx_size,
    check_sigops,
    check_standard_tx,
    fee_for,
    fee_rate,
    format_fee_rate,
    format_money,
    virtual_size,
)
from .script import MANDATORY_FLAGS, STANDARD_FLAGS
from .sigops import transaction_sigop_cost
from .tx import OutPoint, Transaction

__all__ = [
    "Mempool",
    "MempoolEntry",
    "MempoolInfo",
    "MempoolLimits",
    "MempoolReject",
    "MAX_REPLACEMENT_CANDIDATES",
    "MAX_BIP125_RBF_SEQUENCE",
    "DEFAULT_MAX_MEMPOOL_BYTES",
    "DEFAULT_MEMPOOL_EXPIRY_S",
    "DEFAULT_BLOCK_MAX_WEIGHT",
    "DEFAULT_BLOCK_MIN_TX_FEE",
    "FALLBACK_FEE",
    "signals_rbf",
]

MEMPOOL_HEIGHT: Final = 0x7FFFFFFF  # the height of a coin created by a mempool transaction
MAX_BIP125_RBF_SEQUENCE: Final = 0xFFFFFFFD
MAX_REPLACEMENT_CANDIDATES: Final = 100
DEFAULT_MAX_MEMPOOL_BYTES: Final = 300_000_000
DEFAULT_MEMPOOL_EXPIRY_S: Final = 336 * 3600
ROLLING_FEE_HALFLIFE_S: Final = 12 * 3600
ENTRY_OVERHEAD_BYTES: Final = 500
"""Bookkeeping per entry counted in `usage`, beside the transaction's serialized size."""


class MempoolReject(TxCheckError):
    """A transaction was not accepted; `reason` is Core's reject reason, `debug` its detail."""


def signals_rbf(tx: Transaction) -> bool:
    """BIP125 opt-in: some input has nSequence below 0xfffffffe."""
    return any(txin.sequence <= MAX_BIP125_RBF_SEQUENCE for txin in tx.inputs)


@dataclass(frozen=True, slots=True)
class MempoolLimits:
    """Core's -limitancestorcount/-limitancestorsize/-limitdescendantcount/-limitdescendantsize."""

    ancestor_count: int = 25
    ancestor_size_vbytes: int = 101_000
    descendant_count: int = 25
    descendant_size_vbytes: int = 101_000


@dataclass(eq=False, slots=True)
class MempoolEntry:
    """A transaction in the mempool with what it costs and pays, alone and with its relatives.

    The ancestor_* and descendant_* figures include the entry itself and are kept up
    to date by the mempool; treat an entry as read-only. `replaced` lists the txids
    this transaction evicted when it was accepted.
    """

    tx: Transaction
    txid: bytes
    wtxid: bytes
    fee: int
    vsize: int
    weight: int
    size: int
    time: int
    height: int
    sigop_cost: int
    spends_coinbase: bool
    replaced: tuple[bytes, ...] = ()
    parents: set[bytes] = field(default_factory=set)
    children: set[bytes] = field(default_factory=set)
    ancestor_count: int = 1
    ancestor_size: int = 0
    ancestor_fees: int = 0
    ancestor_sigops: int = 0
    descendant_count: int = 1
    descendant_size: int = 0
    descendant_fees: int = 0

    @property
    def fee_rate(self) -> int:
        return fee_rate(self.fee, self.vsize)

    @property
    def ancestor_fee_rate(self) -> int:
        return fee_rate(self.ancestor_fees, self.ancestor_size)

    @property
    def descendant_fee_rate(self) -> int:
        return fee_rate(self.descendant_fees, self.descendant_size)


@dataclass(frozen=True, slots=True)
class MempoolInfo:
    """getmempoolinfo: fee rates in sat/kvB; `bytes` sums vsizes; `usage` is the trimmed figure."""

    size: int
    bytes: int
    usage: int
    total_fee: int
    max_bytes: int
    min_fee_rate: int
    min_relay_fee_rate: int
    incremental_relay_fee_rate: int
    full_rbf: bool


@dataclass(slots=True)
class _Workspace:
    entry: MempoolEntry
    conflicts: set[bytes]
    all_conflicts: set[bytes]
    ancestors: set[bytes]


def _hex(txid: bytes) -> str:
    return txid[::-1].hex()


class Mempool:
    def __init__(
        self,
        chain: ChainState,
        *,
        max_bytes: int = DEFAULT_MAX_MEMPOOL_BYTES,
        expiry_s: int = DEFAULT_MEMPOOL_EXPIRY_S,
        limits: MempoolLimits = MempoolLimits(),
        min_relay_fee: int = DEFAULT_MIN_RELAY_TX_FEE,
        incremental_relay_fee: int = DEFAULT_INCREMENTAL_RELAY_FEE,
        dust_relay_fee: int = DUST_RELAY_TX_FEE,
        permit_bare_multisig: bool = DEFAULT_PERMIT_BAREMULTISIG,
        max_datacarrier_bytes: int | None = MAX_OP_RETURN_RELAY,
        full_rbf: bool = False,
    ) -> None:
        """Fee rates are sat/kvB; `max_bytes` bounds `usage`; `expiry_s` is the entry lifetime.

        `full_rbf` False honours BIP125 opt-in, inherited from unconfirmed ancestors as the
        BIP words it (Core looks only at the conflicting transaction itself, see
        CVE-2021-31876, and since v28 replaces regardless: Canal's full_rbf=True).
        """
        self.chain = chain
        self.max_bytes = max_bytes
        self.expiry_s = expiry_s
        self.limits = limits
        self.min_relay_fee = min_relay_fee
        self.incremental_relay_fee = incremental_relay_fee
        self.dust_relay_fee = dust_relay_fee
        self.permit_bare_multisig = permit_bare_multisig
        self.max_datacarrier_bytes = max_datacarrier_bytes
        self.full_rbf = full_rbf
        self._entries: dict[bytes, MempoolEntry] = {}
        self._by_wtxid: dict[bytes, bytes] = {}
        self._spends: dict[OutPoint, bytes] = {}
        self._usage = 0
        self._clock = 0
        self._rolling_min_fee = 0.0
        self._last_rolling_update = 0
        self._block_since_bump = False
        self._reorg_pending: list[Transaction] = []
        self._fees = FeeEstimator()

    # --- queries ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, txid: object) -> bool:
        return txid in self._entries

    def get(self, txid: bytes) -> MempoolEntry | None:
        return self._entries.get(txid)

    def txids(self) -> list[bytes]:
        """Txids in the order they were accepted."""
        return list(self._entries)

    def spends(self, outpoint: OutPoint) -> bytes | None:
        """The txid of the mempool transaction spending `outpoint`, if any."""
        return self._spends.get(outpoint)

    def is_replaceable(self, txid: bytes) -> bool:
        """BIP125 replaceability of a mempool transaction: it or an unconfirmed ancestor signals."""
        entry = self._entries[txid]
        return signals_rbf(entry.tx) or any(signals_rbf(self._entries[a].tx) for a in self.ancestors(txid))

    def ancestors(self, txid: bytes) -> set[bytes]:
        """Txids of the in-mempool ancestors of a mempool transaction (not itself)."""
        seen: set[bytes] = set()
        todo = list(self._entries[txid].parents)
        while todo:
            t = todo.pop()
            if t not in seen:
                seen.add(t)
                todo.extend(self._entries[t].parents)
        return seen

    def descendants(self, txid: bytes) -> set[bytes]:
        """Txids of the in-mempool descendants of a mempool transaction (not itself)."""
        seen: set[bytes] = set()
        todo = list(self._entries[txid].children)
        while todo:
            t = todo.pop()
            if t not in seen:
                seen.add(t)
                todo.extend(self._entries[t].children)
        return seen

    def info(self, now: int | None = None) -> MempoolInfo:
        """getmempoolinfo. `min_fee_rate` is max(mempool minimum fee, min relay fee)."""
        entries = self._entries.values()
        return MempoolInfo(
            size=len(self._entries),
            bytes=sum(e.vsize for e in entries),
            usage=self._usage,
            total_fee=sum(e.fee for e in entries),
            max_bytes=self.max_bytes,
            min_fee_rate=max(self.min_fee(now), self.min_relay_fee),
            min_relay_fee_rate=self.min_relay_fee,
            incremental_relay_fee_rate=self.incremental_relay_fee,
            full_rbf=self.full_rbf,
        )

    def min_fee(self, now: int | None = None) -> int:
        """Core's GetMinFee: the rolling floor (sat/kvB) raised by trimming, decaying after blocks."""
        return self._min_fee(self._time(now), commit=True)

    def _time(self, now: int | None) -> int:
        """`now` if given (and remembered); else the latest time seen, or the tip's timestamp."""
        if now is not None:
            self._clock = now
            return now
        return max(self._clock, self.chain.tip.header.time)

    # --- acceptance -------------------------------------------------------------------------

    def accept(self, tx: Transaction, now: int) -> MempoolEntry:
        """AcceptToMemoryPool: validate `tx` and add it, evicting what it replaces.

        Raises MempoolReject. After adding, expired and (if over `max_bytes`) the lowest
        descendant-score packages are removed; if that removes `tx`: "mempool full".
        """
        self._time(now)
        ws = self._checked(tx, now, bypass_limits=False, commit_fee=True)
        self._commit(ws)
        self._limit_size(now)
        if ws.entry.txid not in self._entries:
            raise MempoolReject("mempool full")
        return ws.entry

    def test_accept(self, tx: Transaction, now: int) -> MempoolEntry:
        """testmempoolaccept: every check of `accept`, no change; returns the would-be entry."""
        return self._checked(tx, now, bypass_limits=False, commit_fee=False).entry

    def _checked(self, tx: Transaction, now: int, bypass_limits: bool, commit_fee: bool) -> _Workspace:
        try:
            return self._validate(tx, now, bypass_limits, commit_fee)
        except TxCheckError as e:
            raise MempoolReject(e.reason, e.debug) from e

    def _coin(self, outpoint: OutPoint) -> Coin | None:
        """Core's CCoinsViewMemPool: a mempool transaction's output, else the chain's UTXO."""
        parent = self._entries.get(outpoint.txid)
        if parent is not None:
            outputs = parent.tx.outputs
            return Coin(outputs[outpoint.index], MEMPOOL_HEIGHT, False) if outpoint.index < len(outputs) else None
        return self.chain.get_coin(outpoint)

    def _sequence_locks_ok(self, tx: Transaction, coins: Sequence[Coin]) -> bool:
        """CheckSequenceLocksAtTip: could tx (BIP68) be in the next block?"""
        tip = self.chain.tip
        next_height = tip.height + 1
        heights = [next_height if c.height == MEMPOOL_HEIGHT else c.height for c in coins]
        mtps = [0] * len(heights)
        for i, txin in enumerate(tx.inputs):
            if txin.sequence & SEQUENCE_LOCKTIME_TYPE_FLAG and not txin.sequence & SEQUENCE_LOCKTIME_DISABLE_FLAG:
                mtps[i] = self.chain.active[max(heights[i] - 1, 0)].median_time_past()
        locks = calculate_sequence_locks(tx, True, heights, mtps)
        return evaluate_sequence_locks(next_height, tip.median_time_past(), locks)

    def _validate(self, tx: Transaction, now: int, bypass_limits: bool, commit_fee: bool) -> _Workspace:
        """PreChecks, ReplacementChecks and PolicyScriptChecks, in Core's order."""
        check_transaction(tx)
        if tx.is_coinbase():
            raise TxCheckError("coinbase")
        check_standard_tx(
            tx,
            permit_bare_multisig=self.permit_bare_multisig,
            dust_relay_fee=self.dust_relay_fee,
            max_datacarrier_bytes=self.max_datacarrier_bytes,
        )
        check_min_tx_size(tx)
        tip = self.chain.tip
        if not is_final_tx(tx, tip.height + 1, tip.median_time_past()):
            raise TxCheckError("non-final")
        txid, wtxid = tx.txid, tx.wtxid
        if wtxid in self._by_wtxid:
            raise TxCheckError("txn-already-in-mempool")
        if txid in self._entries:
            raise TxCheckError("txn-same-nonwitness-data-in-mempool")

        conflicts: set[bytes] = set()
        for txin in tx.inputs:
            spender = self._spends.get(txin.prevout)
            if spender is not None and spender not in conflicts:
                if not self.full_rbf and not self.is_replaceable(spender):
                    raise TxCheckError("txn-mempool-conflict")
                conflicts.add(spender)

        coins: list[Coin] = []
        for txin in tx.inputs:
            coin = self._coin(txin.prevout)
            if coin is None:
                if any(self.chain.get_coin(OutPoint(txid, n)) for n in range(len(tx.outputs))):
                    raise TxCheckError("txn-already-known")
                raise TxCheckError("bad-txns-inputs-missingorspent", f"{txin.prevout} not found")
            coins.append(coin)
        if not self._sequence_locks_ok(tx, coins):
            raise TxCheckError("non-BIP68-final")
        view = DictCoinsView({txin.prevout: c for txin, c in zip(tx.inputs, coins)})
        fee = check_tx_inputs(tx, view, tip.height + 1, self.chain.params.coinbase_maturity)
        spent_outputs = [c.output for c in coins]
        check_inputs_standard(tx, spent_outputs)

        sigop_cost = transaction_sigop_cost(tx, spent_outputs, True, True)
        weight = tx.weight
        vsize = virtual_size(weight, sigop_cost)
        check_sigops(sigop_cost)
        if not bypass_limits:
            check_min_relay_fee(fee, vsize, self.min_relay_fee)
            floor = fee_for(self._min_fee(now, commit_fee), vsize)
            if floor > 0 and fee < floor:
                raise TxCheckError("mempool min fee not met", f"{fee} < {floor}")

        all_conflicts: set[bytes] = set()
        for c in conflicts:
            all_conflicts |= self.descendants(c) | {c}
        parents = {txin.prevout.txid for txin in tx.inputs if txin.prevout.txid in self._entries}
        ancestors = self._ancestors_within_limits(parents, vsize, all_conflicts)
        for a in ancestors & conflicts:
            raise TxCheckError("bad-txns-spends-conflicting-tx", f"{_hex(txid)} spends conflicting transaction {_hex(a)}")

        entry = MempoolEntry(
            tx, txid, wtxid, fee, vsize, weight, len(tx.to_bytes()), now, tip.height, sigop_cost,
            any(c.is_coinbase for c in coins),
        )
        entry.ancestor_count = 1 + len(ancestors)
        entry.ancestor_size = vsize + sum(self._entries[a].vsize for a in ancestors)
        entry.ancestor_fees = fee + sum(self._entries[a].fee for a in ancestors)
        entry.ancestor_sigops = sigop_cost + sum(self._entries[a].sigop_cost for a in ancestors)
        entry.descendant_size, entry.descendant_fees = vsize, fee
        if conflicts:
            self._replacement_checks(entry, conflicts, all_conflicts)
            entry.replaced = tuple(sorted(all_conflicts))

        verify_input_scripts(tx, spent_outputs, STANDARD_FLAGS, MANDATORY_FLAGS)
        return _Workspace(entry, conflicts, all_conflicts, ancestors)

    def _ancestors_within_limits(self, parents: set[bytes], vsize: int, leaving: set[bytes]) -> set[bytes]:
        """Core's CalculateMemPoolAncestors with the package limits.

        `leaving` (what a replacement evicts) is left out of its ancestors' descendant
        counts and sizes: a replacement is judged against the mempool it leaves behind.
        """
        lim = self.limits

        def fail(msg: str) -> TxCheckError:
            return TxCheckError("too-long-mempool-chain", msg)

        if len(parents) + 1 > lim.ancestor_count:
            raise fail(f"too many unconfirmed parents [limit: {lim.ancestor_count}]")
        gone: dict[bytes, list[int]] = {}
        for t in leaving:
            size = self._entries[t].vsize
            for a in self.ancestors(t):
                counts = gone.setdefault(a, [0, 0])
                counts[0] += 1
                counts[1] += size
        ancestors: set[bytes] = set()
        staged = set(parents)
        total_size = vsize
        while staged:
            t = min(staged)
            staged.discard(t)
            ancestors.add(t)
            e = self._entries[t]
            total_size += e.vsize
            less_count, less_size = gone.get(t, (0, 0))
            if e.descendant_size - less_size + vsize > lim.descendant_size_vbytes:
                raise fail(f"exceeds descendant size limit for tx {_hex(t)} [limit: {lim.descendant_size_vbytes}]")
            if e.descendant_count - less_count + 1 > lim.descendant_count:
                raise fail(f"too many descendants for tx {_hex(t)} [limit: {lim.descendant_count}]")
            if total_size > lim.ancestor_size_vbytes:
                raise fail(f"exceeds ancestor size limit [limit: {lim.ancestor_size_vbytes}]")
            for p in e.parents:
                if p not in ancestors:
                    staged.add(p)
                if len(staged) + len(ancestors) + 1 > lim.ancestor_count:
                    raise fail(f"too many unconfirmed ancestors [limit: {lim.ancestor_count}]")
        return ancestors

    def _replacement_checks(self, entry: MempoolEntry, conflicts: set[bytes], all_conflicts: set[bytes]) -> None:
        """BIP125 rules 2-6 as Core's ReplacementChecks applies them."""
        txid = _hex(entry.txid)
        new_rate = entry.fee_rate
        for c in sorted(conflicts):
            old_rate = self._entries[c].fee_rate
            if new_rate <= old_rate:  # rule 6
                raise TxCheckError(
                    "insufficient fee",
                    f"rejecting replacement {txid}; new feerate {format_fee_rate(new_rate)} <= "
                    f"old feerate {format_fee_rate(old_rate)}",
                )
        candidates = sum(self._entries[c].descendant_count for c in conflicts)
        if candidates > MAX_REPLACEMENT_CANDIDATES:  # rule 5
            raise TxCheckError(
                "too many potential replacements",
                f"rejecting replacement {txid}; too many potential replacements "
                f"({candidates} > {MAX_REPLACEMENT_CANDIDATES})",
            )
        parents_of_conflicts = {txin.prevout.txid for c in conflicts for txin in self._entries[c].tx.inputs}
        for j, txin in enumerate(entry.tx.inputs):  # rule 2
            if txin.prevout.txid not in parents_of_conflicts and txin.prevout.txid in self._entries:
                raise TxCheckError("replacement-adds-unconfirmed", f"replacement {txid} adds unconfirmed input, idx {j}")
        old_fees = sum(self._entries[c].fee for c in all_conflicts)
        if entry.fee < old_fees:  # rule 3
            raise TxCheckError(
                "insufficient fee",
                f"rejecting replacement {txid}, less fees than conflicting txs; "
                f"{format_money(entry.fee)} < {format_money(old_fees)}",
            )
        relay = fee_for(self.incremental_relay_fee, entry.vsize)
        if entry.fee - old_fees < relay:  # rule 4
            raise TxCheckError(
                "insufficient fee",
                f"rejecting replacement {txid}, not enough additional fees to relay; "
                f"{format_money(entry.fee - old_fees)} < {format_money(relay)}",
            )

    # --- state changes ----------------------------------------------------------------------

    def _commit(self, ws: _Workspace) -> None:
        if ws.all_conflicts:
            self._remove_set(ws.all_conflicts)
        self._add(ws.entry, ws.ancestors)

    def _add(self, entry: MempoolEntry, ancestors: set[bytes]) -> None:
        txid = entry.txid
        self._entries[txid] = entry
        self._by_wtxid[entry.wtxid] = txid
        self._usage += entry.size + ENTRY_OVERHEAD_BYTES
        for txin in entry.tx.inputs:
            self._spends[txin.prevout] = txid
            if txin.prevout.txid in self._entries:
                entry.parents.add(txin.prevout.txid)
                self._entries[txin.prevout.txid].children.add(txid)
        for a in ancestors:
            e = self._entries[a]
            e.descendant_count += 1
            e.descendant_size += entry.vsize
            e.descendant_fees += entry.fee
        # A transaction back from a disconnected block may already have children here.
        for n in range(len(entry.tx.outputs)):
            child = self._spends.get(OutPoint(txid, n))
            if child is not None:
                entry.children.add(child)
                self._entries[child].parents.add(txid)
        if entry.children:
            self._recompute_stats()

    def _remove_set(self, doomed: set[bytes]) -> None:
        """Core's RemoveStaged: drop `doomed` and fix the aggregates of what stays."""
        entries = self._entries
        for t in doomed:
            e = entries[t]
            for a in self.ancestors(t) - doomed:
                ea = entries[a]
                ea.descendant_count -= 1
                ea.descendant_size -= e.vsize
                ea.descendant_fees -= e.fee
            for d in self.descendants(t) - doomed:
                ed = entries[d]
                ed.ancestor_count -= 1
                ed.ancestor_size -= e.vsize
                ed.ancestor_fees -= e.fee
                ed.ancestor_sigops -= e.sigop_cost
        for t in doomed:
            e = entries.pop(t)
            for p in e.parents - doomed:
                entries[p].children.discard(t)
            for c in e.children - doomed:
                entries[c].parents.discard(t)
            del self._by_wtxid[e.wtxid]
            for txin in e.tx.inputs:
                if self._spends.get(txin.prevout) == t:
                    del self._spends[txin.prevout]
            self._usage -= e.size + ENTRY_OVERHEAD_BYTES

    def _with_descendants(self, txids: Iterable[bytes]) -> set[bytes]:
        out: set[bytes] = set()
        for t in txids:
            if t in self._entries and t not in out:
                out |= self.descendants(t) | {t}
        return out

    def _recompute_stats(self) -> None:
        for t, e in self._entries.items():
            anc = [self._entries[a] for a in self.ancestors(t)]
            desc = [self._entries[d] for d in self.descendants(t)]
            e.ancestor_count = 1 + len(anc)
            e.ancestor_size = e.vsize + sum(a.vsize for a in anc)
            e.ancestor_fees = e.fee + sum(a.fee for a in anc)
            e.ancestor_sigops = e.sigop_cost + sum(a.sigop_cost for a in anc)
            e.descendant_count = 1 + len(desc)
            e.descendant_size = e.vsize + sum(d.vsize for d in desc)
            e.descendant_fees = e.fee + sum(d.fee for d in desc)

    # --- size limits ------------------------------------------------------------------------

    def expire(self, now: int) -> list[bytes]:
        """Core's Expire: drop entries older than `expiry_s`, with their descendants."""
        cutoff = now - self.expiry_s
        doomed = self._with_descendants(t for t, e in self._entries.items() if e.time < cutoff)
        self._remove_set(doomed)
        return sorted(doomed)

    def trim_to_size(self, max_bytes: int) -> list[bytes]:
        """Core's TrimToSize: evict lowest descendant-score packages until usage <= max_bytes.

        Each eviction raises the mempool minimum fee to the evicted package's rate plus
        the incremental relay fee.
        """
        removed: list[bytes] = []
        while self._entries and self._usage > max_bytes:
            worst = min(
                self._entries.values(),
                key=lambda e: (
                    max(Fraction(e.fee, e.vsize), Fraction(e.descendant_fees, e.descendant_size)),
                    -e.time,
                    e.txid,
                ),
            )
            rate = fee_rate(worst.descendant_fees, worst.descendant_size) + self.incremental_relay_fee
            if rate > self._rolling_min_fee:
                self._rolling_min_fee = float(rate)
                self._block_since_bump = False
            doomed = self._with_descendants([worst.txid])
            self._remove_set(doomed)
            removed += sorted(doomed)
        return removed

    def _limit_size(self, now: int) -> None:
        self.expire(now)
        self.trim_to_size(self.max_bytes)

    def _min_fee(self, now: int, commit: bool) -> int:
        rolling = self._rolling_min_fee
        if not self._block_since_bump or rolling == 0:
            return int(rolling + 0.5)
        if now > self._last_rolling_update + 10:
            halflife = float(ROLLING_FEE_HALFLIFE_S)
            if self._usage < self.max_bytes / 4:
                halflife /= 4
            elif self._usage < self.max_bytes / 2:
                halflife /= 2
            rolling /= 2 ** ((now - self._last_rolling_update) / halflife)
            if rolling < self.incremental_relay_fee / 2:
                rolling = 0.0
            if commit:
                self._rolling_min_fee = rolling
                self._last_rolling_update = now
            if rolling == 0:
                return 0
        return max(int(rolling + 0.5), self.incremental_relay_fee)

    # --- blocks -----------------------------------------------------------------------------

    def remove_for_block(self, block: Block, now: int | None = None) -> list[bytes]:
        """Core's removeForBlock: drop the block's transactions and whatever conflicts with them.

        Returns the txids removed because they (or an ancestor) conflicted with the block.
        Call it for each block connected, in order.
        """
        when = self._time(now)
        self._fees.record_block(block, self._entries, self.min_relay_fee)
        confirmed = {tx.txid for tx in block.transactions} & self._entries.keys()
        self._remove_set(confirmed)
        conflicted: set[bytes] = set()
        for tx in block.transactions:
            if tx.is_coinbase():
                continue
            spenders = {self._spends.get(txin.prevout) for txin in tx.inputs} - {None, tx.txid}
            doomed = self._with_descendants(s for s in spenders if s is not None)
            self._remove_set(doomed)
            conflicted |= doomed
        self._last_rolling_update = when
        self._block_since_bump = True
        if self._reorg_pending:  # the reorg is over: what did not come back is gone
            self._reorg_pending = []
            self._revalidate(lambda outpoint: True)
        return sorted(conflicted)

    def readd_disconnected(self, blocks: Block | Sequence[Block], now: int | None = None) -> None:
        """Put the transactions of disconnected blocks back (Core's MaybeUpdateMempoolForReorg).

        Pass blocks in the order the chain disconnected them (tip first), all at once or
        one call each. Transactions that are no longer valid are dropped silently, with
        their mempool descendants; so are mempool transactions that the reorg made
        non-final, premature (BIP68, coinbase maturity) or unfunded. A transaction
        whose parent is in a block not yet handed back waits for it until the next
        remove_for_block. Fee floors and size limits do not apply to re-added
        transactions (they paid them once); the mempool is trimmed afterwards.
        """
        when = self._time(now)
        if isinstance(blocks, Block):
            blocks = [blocks]
        candidates = [tx for b in reversed(blocks) for tx in b.transactions] + self._reorg_pending
        pending: list[Transaction] = []
        dropped: set[bytes] = set()
        for tx in candidates:
            if tx.is_coinbase():
                dropped.add(tx.txid)
                continue
            if tx.txid in self._entries:
                continue
            try:
                self._commit(self._validate(tx, when, bypass_limits=True, commit_fee=False))
            except TxCheckError as e:
                if e.reason == "bad-txns-inputs-missingorspent":
                    pending.append(tx)
                else:
                    dropped.add(tx.txid)
        self._reorg_pending = pending
        self._revalidate(lambda outpoint: outpoint.txid in dropped)
        self.trim_to_size(self.max_bytes)

    def on_chain_events(self, events: Sequence[ChainEvent], now: int | None = None) -> list[bytes]:
        """Apply ChainState events in order; returns the txids removed as conflicts."""
        removed: list[bytes] = []
        disconnected: list[Block] = []
        for event in [*events, None]:
            if isinstance(event, BlockDisconnected):
                disconnected.append(event.block)
                continue
            if disconnected:
                self.readd_disconnected(disconnected, now)
                disconnected = []
            if event is not None:
                removed += self.remove_for_block(event.block, now)
        return removed

    def _revalidate(self, missing_is_fatal: Callable[[OutPoint], bool]) -> None:
        """Core's removeForReorg: drop entries the new tip makes invalid, with descendants."""
        tip = self.chain.tip
        height, mtp = tip.height + 1, tip.median_time_past()
        maturity = self.chain.params.coinbase_maturity
        doomed: list[bytes] = []
        for txid, e in self._entries.items():
            if not is_final_tx(e.tx, height, mtp):
                doomed.append(txid)
                continue
            coins: list[Coin] = []
            for txin in e.tx.inputs:
                coin = self._coin(txin.prevout)
                if coin is None:
                    if missing_is_fatal(txin.prevout):
                        doomed.append(txid)
                    break
                if coin.is_coinbase and height - coin.height < maturity:
                    doomed.append(txid)
                    break
                coins.append(coin)
            else:
                if not self._sequence_locks_ok(e.tx, coins):
                    doomed.append(txid)
        self._remove_set(self._with_descendants(doomed))

    # --- block templates and fee estimation -----------------------------------------------

    def block_template(
        self, max_weight: int = DEFAULT_BLOCK_MAX_WEIGHT, *, min_fee_rate: int = DEFAULT_BLOCK_MIN_TX_FEE
    ) -> list[Transaction]:
        """Core's BlockAssembler::addPackageTxs: transactions for the next block, in block order.

        Repeatedly takes the transaction whose package (itself plus its ancestors not yet
        chosen) has the highest fee rate, adding the package parents first; so a child
        paying for its parent (CPFP) brings the parent in. `max_weight` is the whole
        block's (-blockmaxweight); 4000 weight units and 400 sigops are kept for the
        coinbase. Packages below `min_fee_rate` (sat/kvB) are left out. See blockassembler.
        """
        return assemble_block_txs(
            self._entries, self.ancestors, self.descendants, max_weight, min_fee_rate=min_fee_rate
        )

    def estimate_fee(self, conf_target: int) -> int:
        """A fee rate (sat/kvB) likely to confirm within `conf_target` blocks.

        From the clearing rates of the last 24 blocks seen (see remove_for_block): a
        rate at or above the clearing rate of at least 1/conf_target of them, i.e. one
        that would have made it into a block about every conf_target blocks. Never below
        the min relay fee or the mempool's minimum; FALLBACK_FEE (1000) with no data.
        See fees.FeeEstimator.
        """
        return self._fees.estimate(conf_target, lambda: max(self.min_relay_fee, self.min_fee()))
