"""The swap daemon's durable state: ``swapd.sqlite`` (WAL, synchronous=FULL).

* ``swaps`` -- one row per swap: the offer (the terms both parties see), our role,
  the peer's address, a status for the stages before the state machine exists
  (``proposed``, ``pending_accept``, ``rejected``), then :meth:`relay.swap.Swap.to_dict`
  (which holds the swap key and the secret: keep the file like a wallet) and a few
  notes for the user (redeem / refund txids, the funding search hint).
* ``outbox`` -- messages to the peer not yet acknowledged; a sender retries them.

Every write is one transaction; a daemon killed at any instant restarts from a
consistent state.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from base_chain.store import open_db, write_transaction

__all__ = ["SwapStore", "SwapRow", "OutboxMessage", "SWAP_DB_FILE"]

SWAP_DB_FILE = "swapd.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS swaps (
    swap_id TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    peer TEXT NOT NULL,
    status TEXT NOT NULL,
    offer TEXT NOT NULL,
    record TEXT,
    notes TEXT NOT NULL DEFAULT '{}',
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    swap_id TEXT NOT NULL,
    peer TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    UNIQUE (swap_id, kind, payload)
);
"""


@dataclass(slots=True)
class SwapRow:
    swap_id: str
    role: str
    peer: str
    status: str
    offer: dict[str, Any]
    record: dict[str, Any] | None
    notes: dict[str, Any] = field(default_factory=dict)
    created: int = 0
    updated: int = 0


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: int
    swap_id: str
    peer: str
    kind: str
    payload: dict[str, Any]


class SwapStore:
    def __init__(self, path: Path) -> None:
        self._db: sqlite3.Connection = open_db(path)
        with write_transaction(self._db) as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)

    def close(self) -> None:
        self._db.close()

    # --- swaps -------------------------------------------------------------------------------------

    def insert(self, row: SwapRow) -> None:
        with write_transaction(self._db) as db:
            db.execute(
                "INSERT INTO swaps (swap_id, role, peer, status, offer, record, notes, created, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (row.swap_id, row.role, row.peer, row.status, json.dumps(row.offer),
                 None if row.record is None else json.dumps(row.record), json.dumps(row.notes),
                 row.created, row.updated),
            )

    def update(self, row: SwapRow, now: int, outbox: list[tuple[str, dict[str, Any]]] | None = None) -> None:
        """Store `row` (status, record, notes) and queue `outbox` messages, in one transaction."""
        row.updated = now
        with write_transaction(self._db) as db:
            db.execute(
                "UPDATE swaps SET status = ?, record = ?, notes = ?, updated = ? WHERE swap_id = ?",
                (row.status, None if row.record is None else json.dumps(row.record), json.dumps(row.notes),
                 now, row.swap_id),
            )
            for kind, payload in outbox or ():
                db.execute("INSERT OR IGNORE INTO outbox (swap_id, peer, kind, payload) VALUES (?, ?, ?, ?)",
                           (row.swap_id, row.peer, kind, json.dumps(payload, sort_keys=True)))

    def get(self, swap_id: str) -> SwapRow | None:
        r = self._db.execute(
            "SELECT swap_id, role, peer, status, offer, record, notes, created, updated FROM swaps WHERE swap_id = ?",
            (swap_id,),
        ).fetchone()
        return None if r is None else _row(r)

    def all(self) -> list[SwapRow]:
        rows = self._db.execute(
            "SELECT swap_id, role, peer, status, offer, record, notes, created, updated FROM swaps "
            "ORDER BY created, swap_id"
        ).fetchall()
        return [_row(r) for r in rows]

    # --- outbox ------------------------------------------------------------------------------------

    def outbox(self) -> list[OutboxMessage]:
        rows = self._db.execute("SELECT id, swap_id, peer, kind, payload FROM outbox ORDER BY id").fetchall()
        return [OutboxMessage(int(r[0]), str(r[1]), str(r[2]), str(r[3]), json.loads(r[4])) for r in rows]

    def acknowledged(self, message_id: int) -> None:
        with write_transaction(self._db) as db:
            db.execute("DELETE FROM outbox WHERE id = ?", (message_id,))


def _row(r: Any) -> SwapRow:
    return SwapRow(str(r[0]), str(r[1]), str(r[2]), str(r[3]), json.loads(r[4]),
                   None if r[5] is None else json.loads(r[5]), json.loads(r[6]), int(r[7]), int(r[8]))
