"""The gossip node's durable state: ``graph.sqlite`` in the data dir (WAL, synchronous=FULL).

* ``gossip``: the accepted BOLT 7 messages as :class:`htlc.gossip_sync.GossipRow` s
  (the graph is rebuilt from them at start with ``GossipStore.from_rows``);
* ``funding``: the funding outpoint of each announced channel (to see it spent);
* ``peer_signatures``: our channel peers' ``announcement_signatures``, so a
  restart can rebuild and re-announce our channels without asking again;
* ``policy``: our forwarding policy, the default (``scope`` "") and per channel point;
* ``manually_disabled``: the channel points disabled by ``UpdateChanStatus`` (they stay
  disabled across restarts until enabled or set to auto).

Each change lands in one sqlite transaction before anything depending on it
is sent to a peer.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from base_chain.store import open_db, write_transaction
from base_chain.tx import OutPoint

from .gossip import AnnouncementSignatures
from .gossip_sync import GossipResult, GossipRow
from .policy import ForwardingPolicy, PolicyBook

__all__ = ["GraphStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gossip (
    kind TEXT NOT NULL, key BLOB NOT NULL, message BLOB NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE TABLE IF NOT EXISTS funding (scid INTEGER PRIMARY KEY, txid BLOB NOT NULL, vout INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS peer_signatures (channel_id BLOB PRIMARY KEY, message BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS policy (
    scope TEXT PRIMARY KEY, fee_base_msat INTEGER NOT NULL, fee_rate_ppm INTEGER NOT NULL,
    time_lock_delta INTEGER NOT NULL, min_htlc_msat INTEGER NOT NULL, max_htlc_msat INTEGER
);
CREATE TABLE IF NOT EXISTS manually_disabled (channel_point TEXT PRIMARY KEY);
"""


class GraphStore:
    def __init__(self, path: Path | str) -> None:
        self.conn = open_db(path)
        self.conn.executescript(_SCHEMA)

    def close(self) -> None:
        self.conn.close()

    # --- gossip ---------------------------------------------------------------------------------------------

    def rows(self) -> list[GossipRow]:
        return [GossipRow(k, bytes(key), bytes(m), v)
                for k, key, m, v in self.conn.execute("SELECT kind, key, message, value FROM gossip")]

    def apply(self, result: GossipResult, funding: Iterable[tuple[int, OutPoint]] = ()) -> None:
        """Write a result's ``persist`` and ``forget`` rows (and funding outpoints) in one transaction."""
        if not result.persist and not result.forget and not funding:
            return
        with write_transaction(self.conn) as c:
            for scid, op in funding:
                c.execute("INSERT OR REPLACE INTO funding VALUES (?, ?, ?)", (_i64(scid), op.txid, op.index))
            for row in result.persist:
                c.execute("INSERT OR REPLACE INTO gossip VALUES (?, ?, ?, ?)", tuple(row))
            for kind, key in result.forget:
                c.execute("DELETE FROM gossip WHERE kind = ? AND key = ?", (kind, key))
                if kind == "channel_announcement":
                    c.execute("DELETE FROM funding WHERE scid = ?", (_i64(int.from_bytes(key, "big")),))

    def fundings(self) -> dict[int, OutPoint]:
        return {_u64(scid): OutPoint(bytes(txid), vout)
                for scid, txid, vout in self.conn.execute("SELECT scid, txid, vout FROM funding")}

    # --- our channels' announcement signatures ------------------------------------------------------------

    def save_peer_signatures(self, sigs: AnnouncementSignatures) -> None:
        with write_transaction(self.conn) as c:
            c.execute("INSERT OR REPLACE INTO peer_signatures VALUES (?, ?)", (sigs.channel_id, sigs.encode()))

    def peer_signatures(self, channel_id: bytes) -> AnnouncementSignatures | None:
        from channels.wire import decode_message

        row = self.conn.execute("SELECT message FROM peer_signatures WHERE channel_id = ?", (channel_id,)).fetchone()
        if row is None:
            return None
        msg = decode_message(bytes(row[0]))
        return msg if isinstance(msg, AnnouncementSignatures) else None

    # --- our forwarding policy ------------------------------------------------------------------------------

    def policies(self) -> PolicyBook:
        book = PolicyBook()
        for scope, *fields in self.conn.execute("SELECT * FROM policy"):
            policy = ForwardingPolicy(*fields)
            if scope:
                book.channels[scope] = policy
            else:
                book.default = policy
        return book

    def save_policies(self, changed: dict[str, ForwardingPolicy], default: ForwardingPolicy | None = None) -> None:
        with write_transaction(self.conn) as c:
            for scope, policy in [*changed.items(), *([("", default)] if default is not None else [])]:
                c.execute("INSERT OR REPLACE INTO policy VALUES (?, ?, ?, ?, ?, ?)", (scope, *policy.to_row()))

    # --- channels disabled by hand (UpdateChanStatus) --------------------------------------------------------

    def manually_disabled(self) -> set[str]:
        return {cp for (cp,) in self.conn.execute("SELECT channel_point FROM manually_disabled")}

    def save_manually_disabled(self, channel_point: str, disabled: bool) -> None:
        with write_transaction(self.conn) as c:
            if disabled:
                c.execute("INSERT OR IGNORE INTO manually_disabled VALUES (?)", (channel_point,))
            else:
                c.execute("DELETE FROM manually_disabled WHERE channel_point = ?", (channel_point,))


def _i64(v: int) -> int:
    """sqlite integers are signed 64-bit: store a u64 as its two's complement."""
    return v - (1 << 64) if v >= 1 << 63 else v


def _u64(v: int) -> int:
    return v + (1 << 64) if v < 0 else v
