"""The chain node's durable storage: one sqlite database (WAL, synchronous=FULL).

Everything that changes together is written in one sqlite transaction: a block
connection writes its UTXO changes, its undo data and the new tip at once, so a
process killed at any instant restarts on a consistent state.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["StoredIndexEntry", "ChainStore", "open_db", "write_transaction", "fsync_wal", "GroupCommit"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS block_index (
    hash BLOB PRIMARY KEY,
    height INTEGER NOT NULL,
    header BLOB NOT NULL,
    chain_work BLOB NOT NULL,
    status INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS blocks (hash BLOB PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS undo (hash BLOB PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS utxo (outpoint BLOB PRIMARY KEY, coin BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS active_chain (height INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tx_index (txid BLOB PRIMARY KEY, block_hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


def open_db(path: Path | str) -> sqlite3.Connection:
    """A sqlite connection configured for durability: WAL journal, fsync on every commit."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT on an autocommit connection: everything inside lands together or not at all."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def fsync_wal(db_path: Path | str) -> None:
    """Make every commit of the database so far survive a power cut: one fsync of its WAL file covers
    all the commits made under ``PRAGMA synchronous=NORMAL`` (a checkpoint has already synced what it
    moved to the database file). Nothing to do without a WAL file (":memory:", nothing written)."""
    try:
        fd = os.open(f"{db_path}-wal", os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class GroupCommit:
    """Write transactions on a database whose durability is an fsync of its WAL, at once or for several.

    The connection runs with ``synchronous=NORMAL``: :meth:`durable` transactions are followed by
    an fsync of the WAL (as ``synchronous=FULL`` would do), :meth:`lazy` ones are committed (a
    killed process loses nothing) and wait for the next :meth:`sync` or durable transaction to
    survive a power cut too: a host that does many small writes a dependent step needs on disk
    (a channel state written after the payments it settles) pays one fsync for all of them.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path | str) -> None:
        self.conn = conn
        self.path = path
        conn.execute("PRAGMA synchronous=NORMAL")
        self._unsynced = False

    @contextmanager
    def durable(self) -> Iterator[sqlite3.Connection]:
        with write_transaction(self.conn) as db:
            yield db
        self._unsynced = False
        fsync_wal(self.path)

    def lazy(self) -> AbstractContextManager[sqlite3.Connection]:
        self._unsynced = True
        return write_transaction(self.conn)

    def sync(self) -> None:
        """Make every lazy transaction so far durable (one fsync; nothing to do if there was none)."""
        if self._unsynced:
            self._unsynced = False
            fsync_wal(self.path)


@dataclass(frozen=True, slots=True)
class StoredIndexEntry:
    hash: bytes
    height: int
    header: bytes
    chain_work: int
    status: int


class ChainStore:
    """Blocks, the block index, undo data, the UTXO set and the active chain in sqlite.

    `path=":memory:"` gives a throwaway store for tests with the same behaviour.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self.conn = open_db(self.path)
        self.conn.executescript(_SCHEMA)
        self._in_tx = False

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together (BEGIN IMMEDIATE ... COMMIT) or not at all."""
        if self._in_tx:
            yield
            return
        self._in_tx = True
        try:
            with write_transaction(self.conn):
                yield
        finally:
            self._in_tx = False

    # --- block index and block data ---------------------------------------------

    def put_index(self, entry: StoredIndexEntry) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO block_index VALUES (?, ?, ?, ?, ?)",
            (entry.hash, entry.height, entry.header, entry.chain_work.to_bytes(32, "big"), entry.status),
        )

    def set_status(self, block_hash: bytes, status: int) -> None:
        self.conn.execute("UPDATE block_index SET status = ? WHERE hash = ?", (status, block_hash))

    def load_index(self) -> list[StoredIndexEntry]:
        rows = self.conn.execute(
            "SELECT hash, height, header, chain_work, status FROM block_index ORDER BY height, rowid"
        ).fetchall()
        return [StoredIndexEntry(h, ht, hd, int.from_bytes(w, "big"), st) for h, ht, hd, w, st in rows]

    def put_block(self, block_hash: bytes, data: bytes) -> None:
        self.conn.execute("INSERT OR REPLACE INTO blocks VALUES (?, ?)", (block_hash, data))

    def get_block(self, block_hash: bytes) -> bytes | None:
        row = self.conn.execute("SELECT data FROM blocks WHERE hash = ?", (block_hash,)).fetchone()
        return None if row is None else bytes(row[0])

    def has_block(self, block_hash: bytes) -> bool:
        return self.conn.execute("SELECT 1 FROM blocks WHERE hash = ?", (block_hash,)).fetchone() is not None

    def put_undo(self, block_hash: bytes, data: bytes) -> None:
        self.conn.execute("INSERT OR REPLACE INTO undo VALUES (?, ?)", (block_hash, data))

    def get_undo(self, block_hash: bytes) -> bytes | None:
        row = self.conn.execute("SELECT data FROM undo WHERE hash = ?", (block_hash,)).fetchone()
        return None if row is None else bytes(row[0])

    # --- UTXO set ------------------------------------------------------------------

    def get_coin(self, outpoint_key: bytes) -> bytes | None:
        row = self.conn.execute("SELECT coin FROM utxo WHERE outpoint = ?", (outpoint_key,)).fetchone()
        return None if row is None else bytes(row[0])

    def add_coins(self, coins: Iterable[tuple[bytes, bytes]]) -> None:
        self.conn.executemany("INSERT OR REPLACE INTO utxo VALUES (?, ?)", coins)

    def remove_coins(self, keys: Iterable[bytes]) -> None:
        self.conn.executemany("DELETE FROM utxo WHERE outpoint = ?", ((k,) for k in keys))

    def coin_count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM utxo").fetchone()[0])

    def iter_coins(self) -> Iterator[tuple[bytes, bytes]]:
        for key, coin in self.conn.execute("SELECT outpoint, coin FROM utxo"):
            yield bytes(key), bytes(coin)

    # --- active chain and transaction index ------------------------------------------

    def set_active(self, height: int, block_hash: bytes) -> None:
        self.conn.execute("INSERT OR REPLACE INTO active_chain VALUES (?, ?)", (height, block_hash))

    def truncate_active(self, above_height: int) -> None:
        self.conn.execute("DELETE FROM active_chain WHERE height > ?", (above_height,))

    def load_active(self) -> list[bytes]:
        rows = self.conn.execute("SELECT height, hash FROM active_chain ORDER BY height").fetchall()
        for expected, (height, _) in enumerate(rows):
            if height != expected:
                raise RuntimeError(f"active chain table has a gap at height {expected}")
        return [bytes(h) for _, h in rows]

    def index_txids(self, block_hash: bytes, txids: Iterable[bytes]) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO tx_index VALUES (?, ?)", ((t, block_hash) for t in txids)
        )

    def unindex_txids(self, txids: Iterable[bytes]) -> None:
        self.conn.executemany("DELETE FROM tx_index WHERE txid = ?", ((t,) for t in txids))

    def find_tx_block(self, txid: bytes) -> bytes | None:
        row = self.conn.execute("SELECT block_hash FROM tx_index WHERE txid = ?", (txid,)).fetchone()
        return None if row is None else bytes(row[0])

    # --- small values --------------------------------------------------------------

    def get_meta(self, key: str) -> bytes | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def set_meta(self, key: str, value: bytes) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
