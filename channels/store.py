"""The Lightning node's durable state: channel snapshots, revoked commitments, closes, peers (sqlite).

A snapshot is stored in two parts (channels/snapshot.py): its JSON without the long strings
in ``channels.state``, and each long string (an HTLC's update_add_htlc with its onion) once in
``channel_blobs`` while the snapshot refers to it. :meth:`ChannelStore.channels` joins them.

Every write is its own sqlite transaction with synchronous=FULL, so when a
method returns the data is on disk: the host calls it for a `Persist` effect
before it carries out the effects that follow (persist before you promise).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from base_chain.store import open_db, write_transaction

from .effects import join_snapshot

__all__ = ["ChannelStore", "StoredChannel", "ClosedChannel"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS channels (
    channel_id BLOB PRIMARY KEY,
    peer BLOB NOT NULL,
    channel_index INTEGER NOT NULL,
    state BLOB NOT NULL,
    opened_at INTEGER NOT NULL,
    closing_txid BLOB,
    close_type TEXT
);
CREATE TABLE IF NOT EXISTS revoked (
    channel_id BLOB NOT NULL,
    commitment_number INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (channel_id, commitment_number)
);
CREATE TABLE IF NOT EXISTS closed (
    channel_id BLOB PRIMARY KEY,
    summary TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS peers (pubkey BLOB PRIMARY KEY, address TEXT NOT NULL, last_seen INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS recoveries (channel_point TEXT PRIMARY KEY, record TEXT NOT NULL, swept_by TEXT);
CREATE TABLE IF NOT EXISTS channel_blobs (
    channel_id BLOB NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (channel_id, key)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class StoredChannel:
    channel_id: bytes
    peer: bytes
    channel_index: int
    state: bytes
    opened_at: int


@dataclass(frozen=True, slots=True)
class ClosedChannel:
    channel_id: bytes
    summary: dict[str, Any]


class ChannelStore:
    def __init__(self, path: Path | str) -> None:
        self.conn = open_db(path)
        self.conn.executescript(_SCHEMA)
        self._blob_keys: dict[bytes, set[str]] = {}  # channel -> keys in channel_blobs (read on first save)

    def close(self) -> None:
        self.conn.close()

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self.conn)

    def next_channel_index(self) -> int:
        """A fresh key-derivation index for a new channel, reserved durably before use."""
        with self._transaction():
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'next_channel_index'").fetchone()
            index = int(row[0]) if row else 0
            self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('next_channel_index', ?)", (str(index + 1),))
        return index

    def reserve_indices_through(self, index: int) -> None:
        """Never hand out key index `index` or below again (after restoring channels that used them)."""
        with self._transaction():
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'next_channel_index'").fetchone()
            current = int(row[0]) if row else 0
            if current <= index:
                self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('next_channel_index', ?)", (str(index + 1),))

    def save_channel(self, channel_id: bytes, peer: bytes, channel_index: int, state: bytes,
                     old_id: bytes | None = None, revoked: tuple[int, dict[str, Any]] | None = None,
                     blobs: Mapping[str, str] | None = None) -> None:
        """Write a channel's snapshot (renaming it from its temporary id when the real one is known).

        `revoked` (commitment number, watcher data) is stored in the same transaction, so a state
        that has accepted a revocation is never on disk without what punishes that commitment.
        `blobs`: the snapshot is stored in parts (``Persist.parts``): its blobs are written when new
        and dropped when no longer referred to, in the same transaction.
        """
        stored = self._stored_blobs(channel_id) if blobs is not None else None
        with self._transaction():
            if revoked is not None:
                self.conn.execute("INSERT OR IGNORE INTO revoked VALUES (?, ?, ?)",
                                  (channel_id, revoked[0], json.dumps(revoked[1])))
            if old_id is not None and old_id != channel_id:
                self.conn.execute("DELETE FROM channels WHERE channel_id = ?", (old_id,))
                self.conn.execute("DELETE FROM channel_blobs WHERE channel_id = ?", (old_id,))
            if blobs is None:  # a whole snapshot: its blobs are inside it
                self.conn.execute("DELETE FROM channel_blobs WHERE channel_id = ?", (channel_id,))
            elif stored is not None:
                gone = [(channel_id, k) for k in stored if k not in blobs]
                if gone:
                    self.conn.executemany("DELETE FROM channel_blobs WHERE channel_id = ? AND key = ?", gone)
                new = [(channel_id, k, v) for k, v in blobs.items() if k not in stored]
                if new:
                    self.conn.executemany("INSERT OR REPLACE INTO channel_blobs VALUES (?, ?, ?)", new)
            self.conn.execute(
                "INSERT INTO channels (channel_id, peer, channel_index, state, opened_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(channel_id) DO UPDATE SET state = excluded.state",
                (channel_id, peer, channel_index, state, int(time.time())),
            )
        self._blob_keys[channel_id] = set() if blobs is None else set(blobs)
        if old_id is not None and old_id != channel_id:
            self._blob_keys.pop(old_id, None)  # its rows went with the rename

    def _stored_blobs(self, channel_id: bytes) -> set[str]:
        keys = self._blob_keys.get(channel_id)
        if keys is None:
            keys = self._blob_keys[channel_id] = {str(r[0]) for r in self.conn.execute(
                "SELECT key FROM channel_blobs WHERE channel_id = ?", (channel_id,))}
        return keys

    def delete_channel(self, channel_id: bytes) -> None:
        with self._transaction():
            self.conn.execute("DELETE FROM channels WHERE channel_id = ?", (channel_id,))
            self.conn.execute("DELETE FROM channel_blobs WHERE channel_id = ?", (channel_id,))
        self._blob_keys.pop(channel_id, None)

    def channels(self) -> Iterator[StoredChannel]:
        """Every stored channel, its snapshot in one piece (blobs joined back in)."""
        for cid, peer, index, state, opened in self.conn.execute(
            "SELECT channel_id, peer, channel_index, state, opened_at FROM channels ORDER BY opened_at, rowid"
        ).fetchall():
            blobs = self.conn.execute("SELECT key, value FROM channel_blobs WHERE channel_id = ?", (cid,)).fetchall()
            data = bytes(state)
            if blobs:
                data = join_snapshot(data, {str(k): str(v) for k, v in blobs})
            yield StoredChannel(bytes(cid), bytes(peer), int(index), data, int(opened))

    def add_revoked(self, channel_id: bytes, commitment_number: int, data: dict[str, Any]) -> None:
        self.conn.execute("INSERT OR IGNORE INTO revoked VALUES (?, ?, ?)",
                          (channel_id, commitment_number, json.dumps(data)))

    def revoked(self, channel_id: bytes) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT data FROM revoked WHERE channel_id = ? ORDER BY commitment_number",
                                 (channel_id,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def record_closed(self, channel_id: bytes, summary: dict[str, Any]) -> None:
        self.conn.execute("INSERT OR REPLACE INTO closed VALUES (?, ?)", (channel_id, json.dumps(summary)))

    def closed_channels(self) -> list[ClosedChannel]:
        return [ClosedChannel(bytes(c), json.loads(s)) for c, s in self.conn.execute("SELECT * FROM closed")]

    def remember_peer(self, pubkey: bytes, address: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO peers VALUES (?, ?, ?)", (pubkey, address, int(time.time())))

    def peers(self) -> dict[bytes, str]:
        return {bytes(k): str(a) for k, a in self.conn.execute("SELECT pubkey, address FROM peers")}

    # --- channels restored from a static backup ---------------------------------------------------

    def add_recovery(self, channel_point: str, record: dict[str, Any]) -> bool:
        cur = self.conn.execute("INSERT OR IGNORE INTO recoveries (channel_point, record) VALUES (?, ?)",
                                (channel_point, json.dumps(record)))
        return cur.rowcount == 1

    def recoveries(self) -> list[tuple[dict[str, Any], str | None]]:
        rows = self.conn.execute("SELECT record, swept_by FROM recoveries").fetchall()
        return [(json.loads(r), s) for r, s in rows]

    def recovery_swept(self, channel_point: str, txid: str) -> None:
        self.conn.execute("UPDATE recoveries SET swept_by = ? WHERE channel_point = ?", (txid, channel_point))
