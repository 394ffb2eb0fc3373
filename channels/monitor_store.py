"""What the channel layer must remember after a close: monitors, pending sweeps, chain position (sqlite).

Lives in the channel store's database (``channels.sqlite``, WAL, synchronous=FULL)
so that a close's record, its monitor and its sweeps land in one transaction.

* ``monitors``: one :meth:`channels.watcher.ChannelMonitor.to_dict` per force-closed
  channel handed to a monitor, rewritten after every call that changed it; the
  channel secrets are left out (re-derived from the node seed and the channel's
  key index on load).
* ``sweeps``: signed transactions of the resolver paths (justice, our delayed
  ``to_local``, ``to_remote``, restored-backup sweeps) with the height from
  which they are valid; ``done`` once mined (or their input was taken).
* ``preimages``: preimages of HTLCs we received on a channel that had already
  left the normal state (the monitor claims them on chain); keyed by channel.
* ``scanned_height`` / ``scanned_hash`` (meta): the last block whose
  transactions the channel layer fully handled. On start, blocks after it are
  handled again (every handler is idempotent), so a kill between the wallet's
  block write and the channel layer's never loses a close.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from base_chain.store import write_transaction
from base_chain.tx import Transaction

__all__ = ["MonitorStore", "StoredMonitor", "StoredSweep", "RECOVERY"]

#: The channel id under which restored-backup sweeps are kept (they belong to no live channel).
RECOVERY = b"recovery"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS monitors (
    channel_id BLOB PRIMARY KEY,
    channel_index INTEGER NOT NULL,
    state TEXT NOT NULL,
    retired INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sweeps (
    txid BLOB PRIMARY KEY,
    channel_id BLOB NOT NULL,
    valid_from INTEGER NOT NULL,
    tx BLOB NOT NULL,
    done INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS monitor_preimages (
    channel_id BLOB NOT NULL,
    payment_hash BLOB NOT NULL,
    preimage BLOB NOT NULL,
    PRIMARY KEY (channel_id, payment_hash)
);
CREATE TABLE IF NOT EXISTS monitor_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class StoredMonitor:
    channel_id: bytes
    channel_index: int
    state: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredSweep:
    channel_id: bytes
    valid_from: int
    tx: Transaction


class MonitorStore:
    """The tables above on an open connection (the channel store's); every method is one transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.conn.executescript(_SCHEMA)

    # --- monitors -----------------------------------------------------------------------------------

    def save_monitor(self, channel_id: bytes, channel_index: int, state: dict[str, Any],
                     retired: bool = False) -> None:
        with write_transaction(self.conn):
            self.conn.execute(
                "INSERT INTO monitors (channel_id, channel_index, state, retired) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(channel_id) DO UPDATE SET state = excluded.state, retired = excluded.retired",
                (channel_id, channel_index, json.dumps(state), int(retired)),
            )

    def monitors(self) -> list[StoredMonitor]:
        """The monitors still resolving outputs (retired ones are kept for the record only)."""
        rows = self.conn.execute(
            "SELECT channel_id, channel_index, state FROM monitors WHERE retired = 0 ORDER BY rowid").fetchall()
        return [StoredMonitor(bytes(c), int(i), json.loads(s)) for c, i, s in rows]

    def monitor_state(self, channel_id: bytes) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT state FROM monitors WHERE channel_id = ?", (channel_id,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    # --- sweeps -------------------------------------------------------------------------------------

    def add_sweep(self, channel_id: bytes, valid_from: int, tx: Transaction) -> None:
        with write_transaction(self.conn):
            self.conn.execute("INSERT OR IGNORE INTO sweeps (txid, channel_id, valid_from, tx) VALUES (?, ?, ?, ?)",
                              (tx.txid, channel_id, valid_from, tx.to_bytes()))

    def sweep_done(self, txid: bytes) -> None:
        with write_transaction(self.conn):
            self.conn.execute("UPDATE sweeps SET done = 1 WHERE txid = ?", (txid,))

    def pending_sweeps(self) -> list[StoredSweep]:
        rows = self.conn.execute(
            "SELECT channel_id, valid_from, tx FROM sweeps WHERE done = 0 ORDER BY rowid").fetchall()
        return [StoredSweep(bytes(c), int(v), Transaction.from_bytes(bytes(t))) for c, v, t in rows]

    # --- preimages for closed channels --------------------------------------------------------------

    def add_preimage(self, channel_id: bytes, payment_hash: bytes, preimage: bytes) -> None:
        with write_transaction(self.conn):
            self.conn.execute("INSERT OR IGNORE INTO monitor_preimages VALUES (?, ?, ?)",
                              (channel_id, payment_hash, preimage))

    def preimages(self, channel_id: bytes) -> dict[bytes, bytes]:
        rows = self.conn.execute("SELECT payment_hash, preimage FROM monitor_preimages WHERE channel_id = ?",
                                 (channel_id,)).fetchall()
        return {bytes(h): bytes(p) for h, p in rows}

    # --- how far the channel layer has handled the chain -------------------------------------------

    def scanned(self) -> tuple[int, bytes] | None:
        row = self.conn.execute("SELECT value FROM monitor_meta WHERE key = 'scanned'").fetchone()
        if row is None:
            return None
        height, block_hash = json.loads(row[0])
        return int(height), bytes.fromhex(block_hash)

    def set_scanned(self, height: int, block_hash: bytes) -> None:
        with write_transaction(self.conn):
            self.conn.execute("INSERT OR REPLACE INTO monitor_meta VALUES ('scanned', ?)",
                              (json.dumps([height, block_hash.hex()]),))
