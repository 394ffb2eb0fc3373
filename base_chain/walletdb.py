"""The wallet's sqlite database: its schema, the transaction states it stores, and the
data-access helpers the :class:`~base_chain.wallet.Wallet` builds on.

Tables: ``meta`` (seed, chain, schema version, next key indexes, best block, sequence
counter), ``txs`` (every transaction that concerns the wallet, with its state), ``coins``
(outputs paying our keys or watched scripts, and what spends them), ``watched_scripts`` and
``watched_outpoints``. The helpers take the connection and run inside whatever sqlite
transaction the wallet has open; none of them commits.

Transaction states are described in :mod:`base_chain.wallet`; ``LIVE_STATES`` are those
whose coins count.
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass
from typing import Any

from .store import write_transaction
from .tx import OutPoint

__all__ = [
    "CONFIRMED",
    "MEMPOOL",
    "INACTIVE",
    "ABANDONED",
    "CONFLICTED",
    "REPLACED",
    "LIVE_STATES",
    "SCHEMA",
    "SCHEMA_VERSION",
    "StoredCoin",
    "init_db",
    "query",
    "get_meta",
    "set_meta",
    "load_coins",
    "kill_tx",
]

CONFIRMED = "confirmed"
MEMPOOL = "mempool"
INACTIVE = "inactive"
ABANDONED = "abandoned"
CONFLICTED = "conflicted"
REPLACED = "replaced"
LIVE_STATES = (CONFIRMED, MEMPOOL, INACTIVE)

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value NOT NULL);
CREATE TABLE IF NOT EXISTS txs (
    txid BLOB PRIMARY KEY,
    seq INTEGER NOT NULL,
    raw BLOB NOT NULL,
    state TEXT NOT NULL,
    height INTEGER,
    block_hash BLOB,
    is_coinbase INTEGER NOT NULL,
    from_me INTEGER NOT NULL,
    debit_sat INTEGER NOT NULL,
    fee_sat INTEGER,
    replaces BLOB,
    replaced_by BLOB
);
CREATE TABLE IF NOT EXISTS coins (
    txid BLOB NOT NULL,
    vout INTEGER NOT NULL,
    script_pubkey BLOB NOT NULL,
    amount_sat INTEGER NOT NULL,
    keychain INTEGER,
    key_index INTEGER,
    spent_by BLOB,
    PRIMARY KEY (txid, vout)
);
CREATE INDEX IF NOT EXISTS coins_spent_by ON coins (spent_by);
CREATE TABLE IF NOT EXISTS watched_scripts (script_pubkey BLOB PRIMARY KEY, label TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS watched_outpoints (
    txid BLOB NOT NULL, vout INTEGER NOT NULL, spender BLOB, PRIMARY KEY (txid, vout)
);
"""


@dataclass(frozen=True, slots=True)
class StoredCoin:
    """A row of ``coins`` joined with the transaction that created it."""

    outpoint: OutPoint
    script_pubkey: bytes
    amount_sat: int
    chain: int | None  # None: watch-only
    index: int | None
    height: int | None
    is_coinbase: bool
    trusted: bool  # unconfirmed, but ours all the way (in the mempool, all inputs ours, not a replacement)

    def confirmations(self, tip_height: int) -> int:
        return 0 if self.height is None else max(tip_height - self.height + 1, 1)


def query(conn: sqlite3.Connection, sql: str, *args: Any) -> list[Any]:
    return conn.execute(sql, args).fetchall()


def get_meta(conn: sqlite3.Connection, key: str) -> Any:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else row[0]


def set_meta(conn: sqlite3.Connection, key: str, value: Any) -> None:
    conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))


def init_db(conn: sqlite3.Connection, chain: str, seed: bytes | None) -> bytes:
    """Create the tables if needed and, on first start, the meta rows for ``chain`` with ``seed``
    (or 32 random bytes), in one sqlite transaction. Returns the stored seed."""
    conn.executescript(SCHEMA)
    with write_transaction(conn):
        stored = get_meta(conn, "seed")
        if stored is None:
            stored = seed if seed is not None else secrets.token_bytes(32)
            for key, value in (
                ("seed", stored), ("chain", chain), ("version", SCHEMA_VERSION),
                ("next_0", 0), ("next_1", 0), ("seq", 0),
            ):
                conn.execute("INSERT INTO meta VALUES (?, ?)", (key, value))
    return bytes(stored)


def load_coins(conn: sqlite3.Connection, where: str, *args: Any) -> list[StoredCoin]:
    """The coins matching ``where`` (over ``c``, coins, and ``t``, txs), oldest transaction first."""
    rows = query(
        conn,
        "SELECT c.txid, c.vout, c.script_pubkey, c.amount_sat, c.keychain, c.key_index, t.height,"
        " t.is_coinbase, t.state, t.from_me, t.replaces FROM coins c JOIN txs t ON t.txid = c.txid"
        " WHERE " + where + " ORDER BY t.seq, c.vout",
        *args,
    )
    return [
        StoredCoin(
            OutPoint(bytes(txid), vout), bytes(spk), amount, chain, index, height, bool(cb),
            state == MEMPOOL and bool(from_me) and replaces is None,
        )
        for txid, vout, spk, amount, chain, index, height, cb, state, from_me, replaces in rows
    ]


def kill_tx(
    conn: sqlite3.Connection, txid: bytes, state: str, descendant_state: str, replaced_by: bytes | None = None
) -> None:
    """Move a live transaction to a dead state: free what it spent, drop its outputs and descendants."""
    work = [(txid, state, replaced_by)]
    while work:
        victim, new_state, by = work.pop()
        rows = query(conn, "SELECT state FROM txs WHERE txid = ?", victim)
        if not rows or rows[0][0] not in LIVE_STATES:
            continue
        conn.execute(
            "UPDATE txs SET state = ?, height = NULL, block_hash = NULL, replaced_by = ? WHERE txid = ?",
            (new_state, by, victim),
        )
        conn.execute("UPDATE coins SET spent_by = NULL WHERE spent_by = ?", (victim,))
        conn.execute("UPDATE watched_outpoints SET spender = NULL WHERE spender = ?", (victim,))
        for (child,) in query(
            conn, "SELECT DISTINCT spent_by FROM coins WHERE txid = ? AND spent_by IS NOT NULL", victim
        ):
            work.append((bytes(child), descendant_state, None))
        conn.execute("DELETE FROM coins WHERE txid = ?", (victim,))
