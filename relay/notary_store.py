"""A notary's durable memory in sqlite (WAL, synchronous=FULL): the deposits it attested.

The :class:`~relay.notary.NotaryState` of :mod:`relay.notary` is kept here one
row per record, so that persisting a new attestation writes a handful of rows,
not the whole history. ``NotaryStore.record`` is called by ``canal notaryd``
after :meth:`~relay.notary.Notary.review_deposit` returned a signature and
*before* that signature leaves the process: a notaryd killed at any instant
either never sent the signature or remembers it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from base_chain.store import open_db, write_transaction
from base_chain.tx import OutPoint

from .notary import NotaryState

__all__ = ["STATE_DB_FILE", "NotaryStore"]

STATE_DB_FILE = "notary.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS redeemed (
    chain TEXT NOT NULL,
    deposit TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (chain, deposit)
);
CREATE TABLE IF NOT EXISTS committed (
    chain TEXT NOT NULL,
    coin TEXT NOT NULL,
    claim_id TEXT NOT NULL,
    PRIMARY KEY (chain, coin)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class NotaryStore:
    """The rows of a NotaryState; ``load`` rebuilds it (checked by NotaryState.from_dict)."""

    def __init__(self, path: Path | str) -> None:
        self.conn = open_db(path)
        self.conn.executescript(_SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def load(self) -> NotaryState:
        """The state as last committed; raises NotaryStateError if a row is malformed."""
        redeemed = [
            {"chain": chain, "deposit": deposit, **json.loads(record)}
            for chain, deposit, record in self.conn.execute("SELECT chain, deposit, record FROM redeemed")
        ]
        committed = [
            {"chain": chain, "coin": coin, "claim_id": claim_id}
            for chain, coin, claim_id in self.conn.execute("SELECT chain, coin, claim_id FROM committed")
        ]
        return NotaryState.from_dict({"version": 1, "redeemed": redeemed, "committed": committed})

    def record(self, state: NotaryState, keys: Iterable[tuple[str, OutPoint]]) -> None:
        """Write the redeemed records of ``keys`` and the reserve coins they commit, in one transaction."""
        rows = state.to_dict()
        wanted = {(chain, str(op)) for chain, op in keys}
        with write_transaction(self.conn):
            for r in rows["redeemed"]:
                if (r["chain"], r["deposit"]) in wanted:
                    body = {k: v for k, v in r.items() if k not in ("chain", "deposit")}
                    self.conn.execute(
                        "INSERT OR REPLACE INTO redeemed (chain, deposit, record) VALUES (?, ?, ?)",
                        (r["chain"], r["deposit"], json.dumps(body, sort_keys=True)),
                    )
                    claim_id = r["claim_id"]
                    dest_rows = [c for c in rows["committed"] if c["claim_id"] == claim_id]
                    for c in dest_rows:
                        self.conn.execute(
                            "INSERT OR REPLACE INTO committed (chain, coin, claim_id) VALUES (?, ?, ?)",
                            (c["chain"], c["coin"], c["claim_id"]),
                        )

    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM redeemed").fetchone()[0])

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with write_transaction(self.conn):
            self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
