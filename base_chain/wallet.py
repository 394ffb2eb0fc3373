"""The wallet: BIP84 keys, coins, balances, coin selection, signing, fee bumping and watches.

A sans-IO core over one sqlite database (WAL, synchronous=FULL): no sockets, no
clock. The node drives it with chain events, in order::

    block_connected(block, height)      block_disconnected(block, height)
    mempool_added(tx)                   mempool_removed(txid)

Each event is applied in one sqlite transaction together with the new
:meth:`Wallet.best_block`, so after a crash the node resumes from there (and
replays from the fork point with ``block_disconnected`` / ``block_connected``).

Spending is two steps, as "persist before you promise" wants: ``create_transaction``
/ ``send_to_address`` / ``bump_fee`` build and sign a transaction without
recording anything; the node hands it to its mempool and, once accepted, calls
:meth:`Wallet.commit` (``mempool_added`` of the same transaction has the same
effect). Until then the coins it spends are not reserved, and nothing needs undoing
if the mempool rejects it.

Transaction states: ``confirmed``; ``mempool`` (unconfirmed, in the node's
mempool as far as the wallet knows -- also what a block disconnection leaves
behind; the node calls ``mempool_removed`` for what its mempool did not take
back); ``inactive`` (unconfirmed, not in the mempool: its outputs do not count,
but the coins it spends stay reserved until :meth:`Wallet.abandon`, as in
Bitcoin Core); and the dead states ``abandoned``, ``conflicted`` (double-spent by
a block, or a descendant of a dead transaction) and ``replaced`` (by a BIP125
replacement). Dead transactions release the coins they spent and their own
outputs disappear, recursively.

Error strings are Bitcoin Core's where it has one.

Coin selection and the layout of outputs live in :mod:`base_chain.coinselect`, the
sqlite schema and its data-access helpers in :mod:`base_chain.walletdb`.
"""

from __future__ import annotations

import math
import random
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .address import AddressError, address_to_script, script_to_address
from .block import Block
from .checks import MAX_MONEY
from .coinselect import FundingError, Plan, bnb, estimate_vsize, fund
from .keychain import CHANGE, COIN_TYPE_TEST, RECEIVE, Keychain
from .params import ChainParams
from .policy import DEFAULT_INCREMENTAL_RELAY_FEE, DEFAULT_MIN_RELAY_TX_FEE, dust_threshold, fee_for, format_money
from .signing import sign_p2wpkh
from .store import open_db
from .tx import OutPoint, Transaction, TxIn, TxOut
from .walletdb import (
    ABANDONED,
    CONFIRMED,
    CONFLICTED,
    INACTIVE,
    LIVE_STATES,
    MEMPOOL,
    REPLACED,
    StoredCoin,
    get_meta,
    init_db,
    kill_tx,
    load_coins,
    query,
    set_meta,
)

__all__ = [
    "Wallet",
    "WalletError",
    "ChainSyncError",
    "Balances",
    "WalletCoin",
    "WalletTransaction",
    "GAP_LIMIT",
    "DEFAULT_MAX_TX_FEE_SAT",
    "SEQUENCE_RBF",
    "SEQUENCE_NO_RBF",
    "CONFIRMED",
    "MEMPOOL",
    "INACTIVE",
    "ABANDONED",
    "CONFLICTED",
    "REPLACED",
]

GAP_LIMIT = 20
"""Scripts watched beyond the highest used (or handed-out) index of each keychain."""
DEFAULT_MAX_TX_FEE_SAT = 10_000_000
"""Core's -maxtxfee default (0.1 coin)."""
SEQUENCE_RBF = 0xFFFFFFFD
"""nSequence that signals BIP125 replaceability (and enables nLockTime)."""
SEQUENCE_NO_RBF = 0xFFFFFFFE
"""nSequence that enables nLockTime without signalling replaceability."""

_MAX_FEE_RATE_SAT_VB = 1e7
_rng = random.SystemRandom()


class WalletError(Exception):
    """A request the wallet refuses; the message is Bitcoin Core's wording where it has one."""


class ChainSyncError(ValueError):
    """The node sent a chain event that does not follow the wallet's best block."""


@dataclass(frozen=True, slots=True)
class Balances:
    """Like getbalances, by depth: ``confirmed_sat`` is mature with >= 1 confirmation,
    ``unconfirmed_sat`` is in unconfirmed transactions (our own change included),
    ``immature_sat`` is coinbase outputs not yet spendable, ``watch_only_sat`` every
    unspent watch-only coin."""

    confirmed_sat: int
    unconfirmed_sat: int
    immature_sat: int
    watch_only_sat: int

    @property
    def total_sat(self) -> int:
        return self.confirmed_sat + self.unconfirmed_sat + self.immature_sat


@dataclass(frozen=True, slots=True)
class WalletCoin:
    """One entry of listunspent. ``txid`` in internal byte order."""

    txid: bytes
    vout: int
    address: str | None
    script_pubkey: bytes
    amount_sat: int
    confirmations: int
    spendable: bool
    solvable: bool
    safe: bool
    label: str = ""

    @property
    def outpoint(self) -> OutPoint:
        return OutPoint(self.txid, self.vout)

    def txid_hex(self) -> str:
        return self.txid[::-1].hex()


@dataclass(frozen=True, slots=True)
class WalletTransaction:
    """One entry of a listtransactions-like view.

    ``amount_sat`` is the net change of the wallet's balance (fee included, as
    lnd's Transaction.amount); ``fee_sat`` is set when every input was ours.
    ``category`` is send / receive / generate / immature / orphan.
    """

    txid: bytes
    amount_sat: int
    fee_sat: int | None
    height: int | None
    confirmations: int
    category: str
    state: str
    watch_only: bool
    replaces: bytes | None
    replaced_by: bytes | None

    def txid_hex(self) -> str:
        return self.txid[::-1].hex()


_Coin = StoredCoin  # older names of walletdb.StoredCoin and coinselect.bnb, still importable from here
_bnb = bnb


def _signals_rbf(tx: Transaction) -> bool:
    return any(txin.sequence < SEQUENCE_NO_RBF for txin in tx.inputs)


class Wallet:
    """A BIP84 (P2WPKH) wallet over one sqlite file. Open it with :meth:`Wallet.open`."""

    def __init__(self, conn: sqlite3.Connection, params: ChainParams, seed: bytes, max_tx_fee_sat: int) -> None:
        self._conn = conn
        self.params = params
        self.max_tx_fee_sat = max_tx_fee_sat
        self._seed = seed
        self._keychain = Keychain(seed, COIN_TYPE_TEST)
        self._derived = [0, 0]
        self._in_tx = False
        self._next = [0, 0]
        self._watched: dict[bytes, str] = {}
        self._load_caches()

    # --- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: Path | str,
        params: ChainParams,
        seed: bytes | None = None,
        *,
        max_tx_fee_sat: int = DEFAULT_MAX_TX_FEE_SAT,
    ) -> Wallet:
        """Open the wallet at ``path``, creating it (with ``seed``, or 32 random bytes) on first start.

        Reopening with a ``seed`` that differs from the stored one, or with another chain's
        parameters, raises WalletError.
        """
        if seed is not None and not 16 <= len(seed) <= 64:
            raise WalletError("Invalid seed: BIP32 seeds are 16 to 64 bytes")
        conn = open_db(path)
        try:
            stored = init_db(conn, params.name, seed)
            if seed is not None and seed != stored:
                raise WalletError(f"Wallet file {path} holds a different seed")
            chain = get_meta(conn, "chain")
            if chain != params.name:
                raise WalletError(f"Wallet file {path} belongs to chain {chain!r}, not {params.name!r}")
        except BaseException:
            conn.close()
            raise
        return cls(conn, params, stored, max_tx_fee_sat)

    def close(self) -> None:
        self._conn.close()

    def seed_hex(self) -> str:
        """The wallet's seed (for backups and tests; never log it)."""
        return self._seed.hex()

    def __repr__(self) -> str:
        return f"Wallet(chain={self.params.name!r}, <secret>)"

    # --- persistence helpers --------------------------------------------------------------------

    def _load_caches(self) -> None:
        for chain in (RECEIVE, CHANGE):
            self._next[chain] = int(get_meta(self._conn, f"next_{chain}") or 0)
            self._extend_window(chain)
        self._watched = {bytes(s): str(lbl) for s, lbl in self._conn.execute("SELECT * FROM watched_scripts")}

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._in_tx:
            yield
            return
        self._conn.execute("BEGIN IMMEDIATE")
        self._in_tx = True
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            self._load_caches()
            raise
        else:
            self._conn.execute("COMMIT")
        finally:
            self._in_tx = False

    def _set_meta(self, key: str, value: Any) -> None:
        set_meta(self._conn, key, value)

    def _q(self, sql: str, *args: Any) -> list[Any]:
        return query(self._conn, sql, *args)

    # --- addresses ------------------------------------------------------------------------------

    def _extend_window(self, chain: int) -> None:
        want = self._next[chain] + GAP_LIMIT
        while self._derived[chain] < want:
            self._keychain.script_pubkey(chain, self._derived[chain])
            self._derived[chain] += 1

    def _note_used(self, chain: int, index: int) -> None:
        if index >= self._next[chain]:
            self._next[chain] = index + 1
            self._set_meta(f"next_{chain}", index + 1)
            self._extend_window(chain)

    def _reserve(self, chain: int) -> bytes:
        with self._transaction():
            index = self._next[chain]
            self._note_used(chain, index)
        return self._keychain.script_pubkey(chain, index)

    def get_new_address(self) -> str:
        """A receive address never handed out (nor seen paid) before; persisted before it is returned."""
        address = script_to_address(self._reserve(RECEIVE), self.params.address_prefixes)
        assert address is not None
        return address

    def get_change_script(self) -> bytes:
        """A fresh change script (getrawchangeaddress), persisted before it is returned."""
        return self._reserve(CHANGE)

    def _peek_change_script(self) -> bytes:
        return self._keychain.script_pubkey(CHANGE, self._next[CHANGE])

    def is_mine(self, script_pubkey: bytes) -> bool:
        """True for a script of this wallet's keys (within the gap-limit window)."""
        return self._keychain.index_of(script_pubkey) is not None

    def watch_script(self, script_pubkey: bytes, label: str = "") -> None:
        """Track outputs paying ``script_pubkey`` from now on, as watch-only coins."""
        with self._transaction():
            self._conn.execute("INSERT OR REPLACE INTO watched_scripts VALUES (?, ?)", (script_pubkey, label))
        self._watched[bytes(script_pubkey)] = label

    def watch_outpoint(self, outpoint: OutPoint) -> None:
        """Record spends of ``outpoint`` (see :meth:`spender_of`) from now on; a spend the wallet
        already holds is found too."""
        spender = None
        for txid, raw in self._q("SELECT txid, raw FROM txs WHERE state IN (?, ?, ?)", *LIVE_STATES):
            if any(txin.prevout == outpoint for txin in Transaction.from_bytes(raw).inputs):
                spender = bytes(txid)
        with self._transaction():
            self._conn.execute(
                "INSERT OR IGNORE INTO watched_outpoints VALUES (?, ?, ?)", (outpoint.txid, outpoint.index, spender)
            )

    def spender_of(self, outpoint: OutPoint) -> tuple[bytes, int | None] | None:
        """(txid, height or None if unconfirmed) of the transaction spending a watched outpoint or one
        of our coins, if it is confirmed or in the mempool."""
        rows = self._q(
            "SELECT t.txid, t.state, t.height FROM txs t WHERE t.txid IN ("
            " SELECT spender FROM watched_outpoints WHERE txid = ? AND vout = ?"
            " UNION SELECT spent_by FROM coins WHERE txid = ? AND vout = ?)",
            outpoint.txid, outpoint.index, outpoint.txid, outpoint.index,
        )
        for txid, state, height in rows:
            if state in (CONFIRMED, MEMPOOL):
                return bytes(txid), height
        return None

    # --- chain events ----------------------------------------------------------------------------

    def best_block(self) -> tuple[bytes, int] | None:
        """(hash, height) of the last block processed, or None before the first."""
        block_hash = get_meta(self._conn, "best_hash")
        height = get_meta(self._conn, "best_height")
        return None if block_hash is None else (bytes(block_hash), int(height))

    def _set_best(self, block_hash: bytes | None, height: int) -> None:
        if block_hash is None:
            self._conn.execute("DELETE FROM meta WHERE key IN ('best_hash', 'best_height')")
        else:
            self._set_meta("best_hash", block_hash)
            self._set_meta("best_height", height)

    def block_connected(self, block: Block, height: int) -> None:
        """Apply a block that extends the wallet's best block (any block, when there is none yet)."""
        best = self.best_block()
        if best is not None:
            if best == (block.hash, height):
                return
            if block.header.prev_block != best[0] or height != best[1] + 1:
                raise ChainSyncError(
                    f"block {block.hash_hex()} at height {height} does not extend the wallet's best block "
                    f"{best[0][::-1].hex()} at height {best[1]}"
                )
        with self._transaction():
            window = -1
            while window != sum(self._derived):  # a used key widens the window: look at the block again
                window = sum(self._derived)
                for tx in block.transactions:
                    self._record(tx, height, block.hash)
            self._set_best(block.hash, height)

    def block_disconnected(self, block: Block, height: int) -> None:
        """Undo the wallet's best block: its transactions become unconfirmed, its coinbase disappears."""
        best = self.best_block()
        if best != (block.hash, height):
            raise ChainSyncError(f"block {block.hash_hex()} at height {height} is not the wallet's best block")
        with self._transaction():
            for tx in reversed(block.transactions):
                txid = tx.txid
                row = self._q("SELECT state, block_hash FROM txs WHERE txid = ?", txid)
                if not row or row[0][0] != CONFIRMED or bytes(row[0][1]) != block.hash:
                    continue
                if tx.is_coinbase():
                    self._kill(txid, CONFLICTED, CONFLICTED)
                else:
                    self._conn.execute(
                        "UPDATE txs SET state = ?, height = NULL, block_hash = NULL WHERE txid = ?", (MEMPOOL, txid)
                    )
            self._set_best(block.header.prev_block if height > 0 else None, height - 1)

    def mempool_added(self, tx: Transaction) -> None:
        """A transaction entered the node's mempool (recorded if it concerns the wallet)."""
        with self._transaction():
            self._record(tx, None, None)

    def mempool_removed(self, txid: bytes) -> None:
        """A transaction left the mempool without being mined (evicted, expired, replaced)."""
        with self._transaction():
            work = [txid]
            while work:  # its unconfirmed descendants cannot stay in the mempool either
                victim = work.pop()
                if self._conn.execute(
                    "UPDATE txs SET state = ? WHERE txid = ? AND state = ?", (INACTIVE, victim, MEMPOOL)
                ).rowcount:
                    work += [bytes(c) for (c,) in self._q(
                        "SELECT DISTINCT spent_by FROM coins WHERE txid = ? AND spent_by IS NOT NULL", victim
                    )]

    def commit(self, tx: Transaction) -> None:
        """Record a transaction of ours that the node's mempool accepted."""
        with self._transaction():
            if not self._record(tx, None, None):
                raise WalletError("Transaction does not concern this wallet")

    def abandon(self, txid: bytes) -> None:
        """Forget an unconfirmed transaction: release its inputs, drop its outputs and descendants.

        Unlike Bitcoin Core this also works while the node's mempool may still hold it; if it
        confirms anyway, the block brings it back.
        """
        rows = self._q("SELECT state FROM txs WHERE txid = ?", txid)
        if not rows:
            raise WalletError("Invalid or non-wallet transaction id")
        if rows[0][0] == CONFIRMED:
            raise WalletError("Transaction not eligible for abandonment")
        with self._transaction():
            self._kill(txid, ABANDONED, ABANDONED)

    def _record(self, tx: Transaction, height: int | None, block_hash: bytes | None) -> bool:
        """Store a transaction that concerns us (its effects on coins and watches); False if it does not."""
        txid = tx.txid
        known = self._q("SELECT state, debit_sat, from_me, fee_sat, seq FROM txs WHERE txid = ?", txid)
        if known and known[0][0] == CONFIRMED and height is None:
            return True  # a stale mempool event for a mined transaction
        coin_spends: list[OutPoint] = []
        watched_spends: list[OutPoint] = []
        conflicts: set[bytes] = set()
        debit = ours = 0
        if not tx.is_coinbase():
            for txin in tx.inputs:
                op = txin.prevout
                for amount, chain, spent_by in self._q(
                    "SELECT amount_sat, keychain, spent_by FROM coins WHERE txid = ? AND vout = ?", op.txid, op.index
                ):
                    coin_spends.append(op)
                    if chain is not None:
                        debit += amount
                        ours += 1
                    if spent_by is not None and bytes(spent_by) != txid:
                        conflicts.add(bytes(spent_by))
                for (spender,) in self._q(
                    "SELECT spender FROM watched_outpoints WHERE txid = ? AND vout = ?", op.txid, op.index
                ):
                    watched_spends.append(op)
                    if spender is not None and bytes(spender) != txid:
                        conflicts.add(bytes(spender))
        new_coins: list[tuple[int, TxOut, int | None, int | None]] = []
        for n, out in enumerate(tx.outputs):
            found = self._keychain.index_of(out.script_pubkey)
            if found is not None:
                self._note_used(*found)
                new_coins.append((n, out, found[0], found[1]))
            elif out.script_pubkey in self._watched:
                new_coins.append((n, out, None, None))
        if not (known or coin_spends or watched_spends or new_coins):
            return False
        states = {c: self._q("SELECT state FROM txs WHERE txid = ?", c)[0][0] for c in conflicts}
        if height is None and CONFIRMED in states.values():
            return True  # double-spends a mined transaction: it cannot be in the mempool
        replaces = None
        for other in conflicts:
            if height is None:
                replaces = other
                self._kill(other, REPLACED, CONFLICTED, replaced_by=txid)
            else:
                self._kill(other, CONFLICTED, CONFLICTED)
        from_me = ours > 0 and ours == len(tx.inputs)
        fee = debit - sum(o.amount_sat for o in tx.outputs) if from_me else None
        state = MEMPOOL if height is None else CONFIRMED
        if known:
            _, old_debit, old_from_me, old_fee, _ = known[0]
            self._conn.execute(
                "UPDATE txs SET state = ?, height = ?, block_hash = ?, from_me = ?, debit_sat = ?, fee_sat = ?,"
                " replaces = COALESCE(?, replaces) WHERE txid = ?",
                (state, height, block_hash, int(from_me or bool(old_from_me)), max(debit, old_debit),
                 fee if fee is not None else old_fee, replaces, txid),
            )
        else:
            seq = int(get_meta(self._conn, "seq") or 0) + 1
            self._set_meta("seq", seq)
            self._conn.execute(
                "INSERT INTO txs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                (txid, seq, tx.to_bytes(), state, height, block_hash, int(tx.is_coinbase()), int(from_me),
                 debit, fee, replaces),
            )
        self._conn.executemany(
            "UPDATE coins SET spent_by = ? WHERE txid = ? AND vout = ?", [(txid, o.txid, o.index) for o in coin_spends]
        )
        self._conn.executemany(
            "UPDATE watched_outpoints SET spender = ? WHERE txid = ? AND vout = ?",
            [(txid, o.txid, o.index) for o in watched_spends],
        )
        self._conn.executemany(
            "INSERT OR IGNORE INTO coins VALUES (?, ?, ?, ?, ?, ?, NULL)",
            [(txid, n, out.script_pubkey, out.amount_sat, chain, index) for n, out, chain, index in new_coins],
        )
        return True

    def _kill(self, txid: bytes, state: str, descendant_state: str, replaced_by: bytes | None = None) -> None:
        """Move a live transaction to a dead state: free what it spent, drop its outputs and descendants."""
        kill_tx(self._conn, txid, state, descendant_state, replaced_by)

    # --- coins and balances -----------------------------------------------------------------------

    def _coins(self, where: str, *args: Any) -> list[StoredCoin]:
        return load_coins(self._conn, where, *args)

    def _unspent(self) -> list[StoredCoin]:
        return self._coins("t.state IN (?, ?) AND c.spent_by IS NULL", CONFIRMED, MEMPOOL)

    def _mature(self, coin: StoredCoin, tip_height: int) -> bool:
        # Core's wallet (GetBlocksToMaturity) waits for coinbase_maturity + 1 confirmations.
        return not coin.is_coinbase or coin.confirmations(tip_height) > self.params.coinbase_maturity

    def balances(self, tip_height: int) -> Balances:
        confirmed = unconfirmed = immature = watch_only = 0
        for coin in self._unspent():
            if coin.chain is None:
                watch_only += coin.amount_sat
            elif not self._mature(coin, tip_height):
                immature += coin.amount_sat
            elif coin.height is None:
                unconfirmed += coin.amount_sat
            else:
                confirmed += coin.amount_sat
        return Balances(confirmed, unconfirmed, immature, watch_only)

    def list_unspent(self, tip_height: int, min_conf: int = 1, max_conf: int = 9_999_999) -> list[WalletCoin]:
        """Like listunspent (watch-only coins included, not spendable); immature coinbases left out."""
        out: list[WalletCoin] = []
        for coin in self._unspent():
            confs = coin.confirmations(tip_height)
            if not min_conf <= confs <= max_conf or not self._mature(coin, tip_height):
                continue
            mine = coin.chain is not None
            out.append(
                WalletCoin(
                    coin.outpoint.txid, coin.outpoint.index,
                    script_to_address(coin.script_pubkey, self.params.address_prefixes),
                    coin.script_pubkey, coin.amount_sat, confs, mine, mine, confs > 0 or coin.trusted,
                    "" if mine else self._watched.get(coin.script_pubkey, ""),
                )
            )
        return out

    def _spendable_tiers(self, tip_height: int, exclude_txid: bytes | None = None) -> list[list[StoredCoin]]:
        """Coins we may spend: the confirmed ones, then also our own unconfirmed change."""
        usable = [
            c for c in self._unspent()
            if c.chain is not None and self._mature(c, tip_height) and c.outpoint.txid != exclude_txid
        ]
        confirmed = [c for c in usable if c.height is not None]
        return [confirmed, [c for c in usable if c.height is not None or c.trusted]]

    # --- transactions view ---------------------------------------------------------------------------

    def get_transaction(self, txid: bytes) -> Transaction | None:
        rows = self._q("SELECT raw FROM txs WHERE txid = ?", txid)
        return Transaction.from_bytes(bytes(rows[0][0])) if rows else None

    def unconfirmed_transactions(self) -> list[Transaction]:
        """Our own unconfirmed, not abandoned transactions, parents first (to rebroadcast after a restart)."""
        rows = self._q("SELECT raw FROM txs WHERE state IN (?, ?) AND debit_sat > 0 ORDER BY seq", MEMPOOL, INACTIVE)
        return [Transaction.from_bytes(bytes(raw)) for (raw,) in rows]

    def transactions(self, tip_height: int | None = None) -> list[WalletTransaction]:
        """Every transaction the wallet holds, oldest first (tip_height defaults to the best block's)."""
        if tip_height is None:
            best = self.best_block()
            tip_height = best[1] if best else 0
        out: list[WalletTransaction] = []
        for txid, raw, state, height, cb, debit, fee, replaces, replaced_by in self._q(
            "SELECT txid, raw, state, height, is_coinbase, debit_sat, fee_sat, replaces, replaced_by"
            " FROM txs ORDER BY seq"
        ):
            tx = Transaction.from_bytes(bytes(raw))
            credit = sum(o.amount_sat for o in tx.outputs if self.is_mine(o.script_pubkey))
            watch = any(o.script_pubkey in self._watched for o in tx.outputs) or bool(
                self._q("SELECT 1 FROM watched_outpoints WHERE spender = ?", txid)
            )
            confs = 0 if height is None else max(tip_height - height + 1, 1)
            if cb:
                if state not in LIVE_STATES:
                    category = "orphan"
                else:
                    category = "generate" if confs > self.params.coinbase_maturity else "immature"
            else:
                category = "send" if debit > 0 else "receive"
            out.append(
                WalletTransaction(
                    bytes(txid), credit - debit, fee, height, confs, category, state, watch,
                    None if replaces is None else bytes(replaces),
                    None if replaced_by is None else bytes(replaced_by),
                )
            )
        return out

    # --- spending ---------------------------------------------------------------------------------

    def send_to_address(
        self, address: str, amount_sat: int, fee_rate_sat_vb: float, tip_height: int, subtract_fee: bool = False
    ) -> Transaction:
        """Build and sign a payment of ``amount_sat`` to ``address`` (commit it once the mempool takes it)."""
        try:
            script_pubkey = address_to_script(address, self.params.address_prefixes)
        except AddressError as e:
            raise WalletError(f"Invalid address: {e}") from None
        return self.create_transaction(
            [TxOut(amount_sat, script_pubkey)], fee_rate_sat_vb, tip_height, subtract_fee_from_outputs=subtract_fee
        )

    def create_transaction(
        self,
        outputs: list[TxOut],
        fee_rate_sat_vb: float,
        tip_height: int,
        subtract_fee_from_outputs: bool = False,
        replaceable: bool = True,
        locktime: int | None = None,
    ) -> Transaction:
        """A signed P2WPKH transaction paying ``outputs`` at ``fee_rate_sat_vb``, with change back to us.

        nLockTime is ``locktime`` (default: ``tip_height``, anti fee sniping). Nothing is recorded:
        call :meth:`commit` once the node's mempool has accepted it.
        """
        if not outputs:
            raise WalletError("Transaction must have at least one recipient")
        rate = self._fee_rate(fee_rate_sat_vb)
        for out in outputs:
            self._check_output(out)
        recipients = [TxOut(o.amount_sat, o.script_pubkey) for o in outputs]
        plan = self._fund(
            recipients, [], self._spendable_tiers(tip_height), rate, self._peek_change_script(),
            subtract_fee_from_outputs, None,
        )
        if plan.fee_sat > self.max_tx_fee_sat:
            raise WalletError("Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)")
        _rng.shuffle(plan.inputs)
        sequence = SEQUENCE_RBF if replaceable else SEQUENCE_NO_RBF
        return self._sign(plan, 2, tip_height if locktime is None else locktime, [sequence] * len(plan.inputs))

    def bump_fee(self, txid: bytes, new_fee_rate_sat_vb: float, tip_height: int) -> Transaction:
        """A BIP125 replacement of our unconfirmed ``txid`` paying ``new_fee_rate_sat_vb`` (bumpfee).

        Same inputs (more if needed), same recipients, less change; commit it once the mempool takes it.
        """
        rows = self._q("SELECT raw, state, from_me, fee_sat, replaced_by FROM txs WHERE txid = ?", txid)
        if not rows:
            raise WalletError("Invalid or non-wallet transaction id")
        raw, state, from_me, old_fee, replaced_by = rows[0]
        old = Transaction.from_bytes(bytes(raw))
        if self._q("SELECT 1 FROM coins WHERE txid = ? AND spent_by IS NOT NULL", txid):
            raise WalletError("Transaction has descendants in the wallet")
        if state in (CONFIRMED, CONFLICTED):
            raise WalletError("Transaction has been mined, or is conflicted with a mined transaction")
        if not _signals_rbf(old):
            raise WalletError("Transaction is not BIP 125 replaceable")
        if state == REPLACED:
            by = bytes(replaced_by)[::-1].hex() if replaced_by is not None else "?"
            raise WalletError(f"Cannot bump transaction {old.txid_hex()} which was already bumped by transaction {by}")
        if not from_me:
            raise WalletError("Transaction contains inputs that don't belong to this wallet")
        if state == ABANDONED:
            raise WalletError(f"Cannot bump transaction {old.txid_hex()}: it was abandoned")
        rate = self._fee_rate(new_fee_rate_sat_vb)
        old_vsize = old.vsize
        min_fee = old_fee + fee_for(DEFAULT_INCREMENTAL_RELAY_FEE, old_vsize)
        if rate * old_vsize < old_fee * 1000 + DEFAULT_INCREMENTAL_RELAY_FEE * old_vsize:
            self._insufficient_bump(fee_for(rate, old_vsize), min_fee, old_fee, old_vsize)
        spent = {c.outpoint: c for c in self._coins("c.spent_by = ? AND c.keychain IS NOT NULL", txid)}
        if any(txin.prevout not in spent for txin in old.inputs):
            raise WalletError("Transaction contains inputs that don't belong to this wallet")
        preset = [spent[txin.prevout] for txin in old.inputs]
        recipients: list[TxOut] = []
        change_spk, change_pos = self._peek_change_script(), None
        for n, out in enumerate(old.outputs):
            found = self._keychain.index_of(out.script_pubkey)
            if found is not None and found[0] == CHANGE and change_pos is None:
                change_spk, change_pos = out.script_pubkey, n
            else:
                recipients.append(TxOut(out.amount_sat, out.script_pubkey))
        plan = self._fund(
            recipients, preset, self._spendable_tiers(tip_height, exclude_txid=txid), rate, change_spk,
            False, change_pos,
        )
        new_vsize = estimate_vsize(len(plan.inputs), plan.outputs)
        if plan.fee_sat < old_fee + fee_for(DEFAULT_INCREMENTAL_RELAY_FEE, new_vsize):
            self._insufficient_bump(plan.fee_sat, old_fee + fee_for(DEFAULT_INCREMENTAL_RELAY_FEE, new_vsize),
                                    old_fee, new_vsize)
        if plan.fee_sat > self.max_tx_fee_sat:
            raise WalletError(
                f"Specified or calculated fee {format_money(plan.fee_sat)} is too high "
                f"(cannot be higher than -maxtxfee {format_money(self.max_tx_fee_sat)})"
            )
        sequences = [txin.sequence for txin in old.inputs] + [SEQUENCE_RBF] * (len(plan.inputs) - len(preset))
        return self._sign(plan, old.version, old.locktime, sequences)

    def add_fee_inputs(
        self, tx: Transaction, foreign_weight: int, foreign_in_sat: int, fee_rate_sat_kw: int, tip_height: int,
        extra_fee_sat: int = 0,
    ) -> Transaction:
        """Append our coins (and a change output) to ``tx``, whose inputs spend coins that are not ours.

        For a transaction signed SIGHASH_SINGLE|ANYONECANPAY (an anchors HTLC transaction) or a CPFP
        child: ``foreign_weight`` is ``tx``'s weight once its own inputs are signed, ``foreign_in_sat``
        their value. Our inputs are signed (SIGHASH_ALL; the foreign witnesses are added after, which
        BIP143 does not commit to). The result pays ``fee_rate_sat_kw`` for its weight, plus
        ``extra_fee_sat`` (a CPFP parent's shortfall); largest coins first. Commit it once broadcast.
        """
        input_weight, output_weight = 272, 124  # P2WPKH: 41 bytes + 108 witness bytes; 31-byte output
        change_spk = self._peek_change_script()
        base_out = sum(o.amount_sat for o in tx.outputs)
        coins = sorted(self._spendable_tiers(tip_height)[0], key=lambda c: -c.amount_sat)
        chosen: list[StoredCoin] = []
        for coin in coins:
            chosen.append(coin)
            weight = foreign_weight + input_weight * len(chosen) + output_weight
            fee = -(-fee_rate_sat_kw * weight // 1000) + extra_fee_sat
            change = foreign_in_sat + sum(c.amount_sat for c in chosen) - base_out - fee
            if change >= dust_threshold(TxOut(0, change_spk)):
                break
        else:
            raise WalletError("Insufficient funds")
        if fee > self.max_tx_fee_sat:
            raise WalletError("Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)")
        base = tx.copy()
        funded = Transaction(base.version, [*base.inputs, *(TxIn(c.outpoint, b"", SEQUENCE_RBF) for c in chosen)],
                             [*base.outputs, TxOut(change, change_spk)], base.locktime)
        first = len(tx.inputs)
        for i, coin in enumerate(chosen):
            assert coin.chain is not None and coin.index is not None
            sign_p2wpkh(funded, first + i, self._keychain.key(coin.chain, coin.index), coin.amount_sat)
        return funded

    @staticmethod
    def _insufficient_bump(new_fee: int, min_fee: int, old_fee: int, vsize: int) -> None:
        raise WalletError(
            f"Insufficient total fee {format_money(new_fee)}, must be at least {format_money(min_fee)} "
            f"(oldFee {format_money(old_fee)} + incrementalFee "
            f"{format_money(fee_for(DEFAULT_INCREMENTAL_RELAY_FEE, vsize))})"
        )

    @staticmethod
    def _fee_rate(fee_rate_sat_vb: float) -> int:
        """A fee rate in sat/vB as an integer sat/kvB, checked against the relay minimum."""
        if not isinstance(fee_rate_sat_vb, (int, float)) or not math.isfinite(fee_rate_sat_vb):
            raise WalletError("Invalid fee rate")
        if fee_rate_sat_vb > _MAX_FEE_RATE_SAT_VB:
            raise WalletError("Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)")
        rate = round(fee_rate_sat_vb * 1000)
        if rate < DEFAULT_MIN_RELAY_TX_FEE:
            raise WalletError(
                f"Fee rate ({fee_rate_sat_vb:.3f} sat/vB) is lower than the minimum fee rate setting "
                f"({DEFAULT_MIN_RELAY_TX_FEE / 1000:.3f} sat/vB)"
            )
        return rate

    @staticmethod
    def _check_output(out: TxOut) -> None:
        data = out.script_pubkey[:1] == b"\x6a"
        if not isinstance(out.amount_sat, int) or out.amount_sat > MAX_MONEY or out.amount_sat < (0 if data else 1):
            raise WalletError("Invalid amount")
        dust = dust_threshold(out)
        if out.amount_sat < dust:
            raise WalletError(
                f"Invalid amount: Transaction amount too small ({out.amount_sat} sat is below the dust "
                f"threshold of {dust} sat)"
            )

    def _fund(
        self,
        recipients: list[TxOut],
        preset: list[StoredCoin],
        tiers: list[list[StoredCoin]],
        rate: int,
        change_spk: bytes,
        subtract_fee: bool,
        change_pos: int | None,
    ) -> Plan[StoredCoin]:
        """Select coins (``preset`` always spent) and lay out the outputs, change included."""
        try:
            return fund(recipients, preset, tiers, rate, change_spk, subtract_fee, change_pos, _rng)
        except FundingError as e:
            raise WalletError(str(e)) from None

    def _sign(self, plan: Plan[StoredCoin], version: int, locktime: int, sequences: list[int]) -> Transaction:
        tx = Transaction(
            version, [TxIn(c.outpoint, b"", seq) for c, seq in zip(plan.inputs, sequences)], plan.outputs, locktime
        )
        for i, coin in enumerate(plan.inputs):
            assert coin.chain is not None and coin.index is not None
            sign_p2wpkh(tx, i, self._keychain.key(coin.chain, coin.index), coin.amount_sat)
        return tx

