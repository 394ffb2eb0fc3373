"""The bridge's swaps, durable in sqlite (``bridge.sqlite``: WAL, synchronous=FULL).

One row per payment hash; every state change is one transaction, written
*before* the step it enables is taken (persist before you promise): a swap is
stored QUOTING before its alpha hold invoice exists, PAYING before the beta
payment is sent, SETTLING with the preimage before the alpha invoice is settled.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from base_chain.store import open_db, write_transaction

from .bridge import Event, Quote, SwapState, next_state

__all__ = ["BridgeStore", "Swap", "SwapExists"]


class SwapExists(Exception):
    pass


@dataclass(frozen=True)
class Swap:
    payment_hash: bytes
    state: SwapState
    quote: Quote
    created: int
    updated: int
    alpha_payment_request: str = ""
    preimage: bytes | None = None
    reason: str = ""
    beta_fee_msat: int = 0


_SCHEMA = """
CREATE TABLE IF NOT EXISTS swaps (
    payment_hash BLOB PRIMARY KEY,
    state TEXT NOT NULL,
    beta_payment_request TEXT NOT NULL,
    beta_amount_msat INTEGER NOT NULL,
    beta_fee_limit_msat INTEGER NOT NULL,
    beta_cltv INTEGER NOT NULL,
    alpha_amount_msat INTEGER NOT NULL,
    fee_msat INTEGER NOT NULL,
    alpha_cltv_expiry INTEGER NOT NULL,
    alpha_expiry_s INTEGER NOT NULL,
    memo TEXT NOT NULL,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    alpha_payment_request TEXT NOT NULL DEFAULT '',
    preimage BLOB,
    reason TEXT NOT NULL DEFAULT '',
    beta_fee_msat INTEGER NOT NULL DEFAULT 0
);
"""

_COLUMNS = ("payment_hash, state, beta_payment_request, beta_amount_msat, beta_fee_limit_msat, beta_cltv, "
            "alpha_amount_msat, fee_msat, alpha_cltv_expiry, alpha_expiry_s, memo, created, updated, "
            "alpha_payment_request, preimage, reason, beta_fee_msat")


def _swap(r: Any) -> Swap:
    q = Quote(payment_hash=bytes(r[0]), beta_payment_request=r[2], beta_amount_msat=r[3], beta_fee_limit_msat=r[4],
              beta_cltv=r[5], alpha_amount_msat=r[6], fee_msat=r[7], alpha_cltv_expiry=r[8], alpha_expiry_s=r[9],
              memo=r[10])
    return Swap(payment_hash=q.payment_hash, state=SwapState(r[1]), quote=q, created=r[11], updated=r[12],
                alpha_payment_request=r[13], preimage=None if r[14] is None else bytes(r[14]), reason=r[15],
                beta_fee_msat=r[16])


class BridgeStore:
    def __init__(self, path: Path | str) -> None:
        self.conn = open_db(path)
        self.conn.executescript(_SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def add(self, quote: Quote, now: int) -> Swap:
        """A new swap in state QUOTING; SwapExists if this payment hash was quoted before."""
        q = quote
        try:
            with write_transaction(self.conn) as db:
                db.execute(
                    f"INSERT INTO swaps ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,'',NULL,'',0)",
                    (q.payment_hash, SwapState.QUOTING.value, q.beta_payment_request, q.beta_amount_msat,
                     q.beta_fee_limit_msat, q.beta_cltv, q.alpha_amount_msat, q.fee_msat, q.alpha_cltv_expiry,
                     q.alpha_expiry_s, q.memo, now, now),
                )
        except sqlite3.IntegrityError:
            raise SwapExists("a swap for this payment hash exists already") from None
        swap = self.get(q.payment_hash)
        assert swap is not None
        return swap

    def get(self, payment_hash: bytes) -> Swap | None:
        row = self.conn.execute(f"SELECT {_COLUMNS} FROM swaps WHERE payment_hash = ?", (payment_hash,)).fetchone()
        return None if row is None else _swap(row)

    def all(self) -> list[Swap]:
        return [_swap(r) for r in self.conn.execute(f"SELECT {_COLUMNS} FROM swaps ORDER BY created, rowid")]

    def pending(self) -> list[Swap]:
        return [s for s in self.all() if not s.state.is_final]

    def reserved_beta_msat(self) -> int:
        """Beta amounts (with their fee limits) of swaps not finished yet: liquidity already promised."""
        return sum(s.quote.beta_amount_msat + s.quote.beta_fee_limit_msat for s in self.pending())

    def forget(self, swap: Swap) -> None:
        """Delete a swap that ended before its alpha invoice was issued (nothing was promised)."""
        if swap.alpha_payment_request or not swap.state.is_final:
            raise ValueError("only a finished swap without an alpha invoice can be forgotten")
        with write_transaction(self.conn) as db:
            db.execute("DELETE FROM swaps WHERE payment_hash = ? AND state = ?", (swap.payment_hash, swap.state.value))

    def advance(self, swap: Swap, event: Event, now: int, **changes: Any) -> Swap:
        """Apply ``event`` (see :func:`relay.bridge.next_state`) and ``changes`` in one durable transaction."""
        new = replace(swap, state=next_state(swap.state, event), updated=now, **changes)
        with write_transaction(self.conn) as db:
            cur = db.execute(
                "UPDATE swaps SET state = ?, updated = ?, alpha_payment_request = ?, preimage = ?, reason = ?,"
                " beta_fee_msat = ? WHERE payment_hash = ? AND state = ?",
                (new.state.value, now, new.alpha_payment_request, new.preimage, new.reason, new.beta_fee_msat,
                 swap.payment_hash, swap.state.value),
            )
            if cur.rowcount != 1:
                raise ValueError(f"swap {swap.payment_hash.hex()} is no longer {swap.state.value}")
        return new
