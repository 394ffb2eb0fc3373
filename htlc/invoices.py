"""The node's invoice registry: invoices it issued (and keysends it received), durable in sqlite.

``invoices.sqlite`` in the node's data dir (WAL, see :func:`base_chain.store.open_db`).
Every method that changes an invoice is one sqlite transaction, durable (fsync'd)
when it returns, except the two the receiving path runs for every payment:
:meth:`InvoiceRegistry.settle` and :meth:`InvoiceRegistry.add_keysend` commit
before the preimage goes to the channel (a killed process loses nothing) and are
fsync'd, many at a time, by :meth:`InvoiceRegistry.sync`, which the channel node
calls before it writes channel state (``ChannelManager.before_write``). A crash
or power cut before that leaves the HTLC unresolved in the channel: it is decided
again at restart, its invoice settled again (see :mod:`htlc.receive`).

States and their numbers are lnd's (``lnrpc.Invoice.InvoiceState``):
``OPEN`` 0 -> ``SETTLED`` 1 (paid) or ``CANCELED`` 2; ``ACCEPTED`` 3 is a
hold invoice's "HTLCs held, not settled yet".

Hold invoices (lnd's invoicesrpc ``AddHoldInvoice``): :meth:`InvoiceRegistry.add_hold`
stores the payment hash without a preimage. Each HTLC that pays it is recorded
by :meth:`InvoiceRegistry.accept_htlc` in HTLC state ``ACCEPTED`` (held in the
channel, neither fulfilled nor failed); when the held parts add up to the
payment's ``total_msat`` (and at least the invoice amount: multi-part is
accepted here) the invoice goes ``OPEN -> ACCEPTED``. Then
:meth:`InvoiceRegistry.settle_hold` stores the preimage and marks the invoice and
its HTLCs settled (durable before the node fulfills them), or
:meth:`InvoiceRegistry.cancel` marks them canceled (the node fails them back).
A hold invoice's set still incomplete after the MPP timeout fails exactly as a
regular invoice's does (below); a complete held set (``ACCEPTED``) does not: it
waits for settle or cancel, or for its CLTV deadline. At each block
:meth:`InvoiceRegistry.expire_held_htlcs` applies that deadline (lnd's
``invoices.holdexpirydelta``, :data:`HOLD_EXPIRY_DELTA` blocks; the decision is
:func:`hold_deadlines`): an ``ACCEPTED`` hold invoice with a held HTLC expiring
within it is canceled (its HTLCs failed back: better than the peer
force-closing the channel at the expiry), an incomplete set's parts are
released as at the MPP timeout.

Choices, as lnd makes them:

- default expiry 86400 s (lnd's AddInvoice default; BOLT 11's absent-``x``
  default is 3600, so the ``x`` field is always written);
- default ``min_final_cltv_expiry_delta`` 80 blocks (lnd's
  ``DefaultBitcoinTimeLockDelta``; BOLT 11's absent-``c`` default, 18, is the
  smallest value accepted and the one used for keysend);
- features: ``var_onion_optin`` (8) and ``payment_secret`` (14), both
  required, and ``basic_mpp`` (17) optional, as lnd's invoices.

Multi-part payments to regular invoices (BOLT 4 "basic multi-part payments",
lnd's invoice registry): a part smaller than the payment's ``total_msat`` is
held (:meth:`InvoiceRegistry.accept_htlc`, HTLC state ``ACCEPTED``, invoice
still ``OPEN``); the part that makes the held parts add up settles the invoice
and every held part in the same transaction (``OPEN -> SETTLED``), so the node
then fulfills them all. A set still incomplete :data:`DEFAULT_MPP_TIMEOUT_S`
after its first part was accepted is failed by
:meth:`InvoiceRegistry.expire_mpp_sets`: its parts become ``CANCELED`` (failed
back with ``mpp_timeout``) and the invoice stays ``OPEN`` for another try. The
same holds for a hold invoice's incomplete set (lnd's registry times out any
incomplete set).

No clock is read here: callers pass ``now`` (unix seconds).
"""

from __future__ import annotations

import enum
import json
import os
import sqlite3
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from base_chain.crypto import PrivateKey
from base_chain.hashes import sha256
from base_chain.store import GroupCommit, open_db

from .invoice import Invoice, InvoiceError, RouteHintHop, encode_invoice

__all__ = [
    "DEFAULT_CLTV_EXPIRY_DELTA",
    "HOLD_EXPIRY_DELTA",
    "HOLD_INVOICE_FEATURES",
    "HeldHtlc",
    "DEFAULT_INVOICE_EXPIRY",
    "DEFAULT_MPP_TIMEOUT_S",
    "INVOICE_FEATURES",
    "MAX_CLTV_EXPIRY_DELTA",
    "MAX_MEMO_BYTES",
    "MIN_CLTV_EXPIRY_DELTA",
    "DuplicateInvoice",
    "InvoiceHtlc",
    "InvoiceHtlcState",
    "InvoiceNotFound",
    "InvoiceRecord",
    "InvoiceRegistry",
    "InvoiceRegistryError",
    "InvoiceState",
    "hold_deadlines",
]

DEFAULT_INVOICE_EXPIRY = 86400
"""Seconds an invoice is payable when AddInvoice gives no expiry (lnd's default)."""
DEFAULT_CLTV_EXPIRY_DELTA = 80
"""The ``c`` field written when AddInvoice gives none (lnd's ``DefaultBitcoinTimeLockDelta``)."""
MIN_CLTV_EXPIRY_DELTA = 18
"""The smallest final CLTV delta accepted (BOLT 11's default; lnd's ``routing.MinCLTVDelta``)."""
MAX_CLTV_EXPIRY_DELTA = 0xFFFF
MAX_MEMO_BYTES = 639
"""A ``d`` field holds at most 639 bytes (10-bit length of 5-bit words)."""
MAX_EXPIRY = 365 * 24 * 3600
INVOICE_FEATURES = (1 << 8) | (1 << 14) | (1 << 17)
"""var_onion_optin and payment_secret, both required, and basic_mpp optional (lnd's invoice features)."""
HOLD_INVOICE_FEATURES = INVOICE_FEATURES
"""A hold invoice offers the same (its parts are held until they add up, then until it is settled)."""
DEFAULT_MPP_TIMEOUT_S = 120
"""Seconds an incomplete multi-part set is held after its first part before it fails with mpp_timeout (lnd's)."""
HOLD_EXPIRY_DELTA = 12
"""A held HTLC expiring within this many blocks of the tip is failed back (lnd's
``DefaultHoldInvoiceExpiryDelta`` = ``DefaultIncomingBroadcastDelta`` 10 + 2)."""


class InvoiceState(enum.IntEnum):
    """lnd's ``lnrpc.Invoice.InvoiceState``."""

    OPEN = 0
    SETTLED = 1
    CANCELED = 2
    ACCEPTED = 3


class InvoiceHtlcState(enum.IntEnum):
    """lnd's ``lnrpc.InvoiceHTLCState``."""

    ACCEPTED = 0
    SETTLED = 1
    CANCELED = 2


class InvoiceRegistryError(Exception):
    """An invoice operation was refused; ``reason`` says why (lnd's wording where lnd has one)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DuplicateInvoice(InvoiceRegistryError):
    pass


class InvoiceNotFound(InvoiceRegistryError):
    pass


@dataclass(frozen=True, slots=True)
class InvoiceHtlc:
    """An HTLC that paid (part of) an invoice; ``(channel_id, htlc_id)`` identifies it."""

    channel_id: bytes
    short_channel_id: int
    htlc_id: int
    amount_msat: int
    accept_height: int
    accept_time: int
    expiry_height: int
    state: InvoiceHtlcState = InvoiceHtlcState.SETTLED
    resolve_time: int = 0
    mpp_total_msat: int = 0
    custom_records: tuple[tuple[int, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class InvoiceRecord:
    """One stored invoice. ``value_msat`` 0 means "any amount"; keysends have no payment request."""

    add_index: int
    payment_hash: bytes
    preimage: bytes | None
    payment_secret: bytes
    value_msat: int
    memo: str
    description_hash: bytes | None
    payment_request: str
    creation_date: int
    expiry: int
    cltv_expiry: int
    state: InvoiceState
    settle_index: int = 0
    settle_date: int = 0
    amt_paid_msat: int = 0
    is_keysend: bool = False
    private: bool = False
    features: int = INVOICE_FEATURES
    htlcs: tuple[InvoiceHtlc, ...] = field(default=())
    is_hold: bool = False

    def is_expired(self, now: int) -> bool:
        return now > self.creation_date + self.expiry

    def htlc(self, channel_id: bytes, htlc_id: int) -> InvoiceHtlc | None:
        return next((h for h in self.htlcs if h.channel_id == channel_id and h.htlc_id == htlc_id), None)

    def paid_by(self, channel_id: bytes, htlc_id: int) -> bool:
        """Whether this HTLC is one that settled the invoice (a replay after a restart)."""
        h = self.htlc(channel_id, htlc_id)
        return h is not None and h.state is InvoiceHtlcState.SETTLED

    def holds(self, channel_id: bytes, htlc_id: int) -> bool:
        """Whether this HTLC is held by this invoice (a hold invoice or an incomplete MPP set), not resolved yet."""
        h = self.htlc(channel_id, htlc_id)
        return h is not None and h.state is InvoiceHtlcState.ACCEPTED

    def released(self, channel_id: bytes, htlc_id: int) -> bool:
        """Whether this HTLC was held and then canceled (its invoice canceled, or its MPP set timed out)."""
        h = self.htlc(channel_id, htlc_id)
        return h is not None and h.state is InvoiceHtlcState.CANCELED

    @property
    def held_total_msat(self) -> int:
        """The ``total_msat`` of the parts held now (0 when none is held)."""
        return next((h.mpp_total_msat or h.amount_msat for h in self.htlcs if h.state is InvoiceHtlcState.ACCEPTED), 0)

    @property
    def held_msat(self) -> int:
        return sum(h.amount_msat for h in self.htlcs if h.state is InvoiceHtlcState.ACCEPTED)


@dataclass(frozen=True, slots=True)
class HeldHtlc:
    """An HTLC a hold invoice holds (see :meth:`InvoiceRegistry.held_htlcs`)."""

    payment_hash: bytes
    channel_id: bytes
    htlc_id: int
    expiry_height: int


def hold_deadlines(held: Iterable[HeldHtlc], height: int, delta: int = HOLD_EXPIRY_DELTA) -> list[bytes]:
    """The hold invoices (payment hashes, first seen first) with a held HTLC expiring within ``delta`` blocks of
    ``height``: lnd's height expiry, ``height + delta >= expiry_height``. A sans-IO decision."""
    due: dict[bytes, None] = {}
    for h in held:
        if height + delta >= h.expiry_height:
            due.setdefault(h.payment_hash)
    return list(due)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS invoices (
    add_index INTEGER PRIMARY KEY AUTOINCREMENT,
    payment_hash BLOB NOT NULL UNIQUE,
    preimage BLOB,
    payment_secret BLOB NOT NULL,
    value_msat INTEGER NOT NULL,
    memo TEXT NOT NULL,
    description_hash BLOB,
    payment_request TEXT NOT NULL,
    creation_date INTEGER NOT NULL,
    expiry INTEGER NOT NULL,
    cltv_expiry INTEGER NOT NULL,
    state INTEGER NOT NULL,
    settle_index INTEGER UNIQUE,
    settle_date INTEGER NOT NULL DEFAULT 0,
    amt_paid_msat INTEGER NOT NULL DEFAULT 0,
    is_keysend INTEGER NOT NULL DEFAULT 0,
    private INTEGER NOT NULL DEFAULT 0,
    features INTEGER NOT NULL,
    is_hold INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS invoices_by_secret ON invoices (payment_secret);
CREATE TABLE IF NOT EXISTS invoice_htlcs (
    payment_hash BLOB NOT NULL REFERENCES invoices (payment_hash),
    channel_id BLOB NOT NULL,
    short_channel_id INTEGER NOT NULL,
    htlc_id INTEGER NOT NULL,
    amount_msat INTEGER NOT NULL,
    accept_height INTEGER NOT NULL,
    accept_time INTEGER NOT NULL,
    expiry_height INTEGER NOT NULL,
    state INTEGER NOT NULL,
    resolve_time INTEGER NOT NULL,
    mpp_total_msat INTEGER NOT NULL,
    custom_records TEXT NOT NULL,
    PRIMARY KEY (channel_id, htlc_id)
);
"""

_COLUMNS = (
    "add_index, payment_hash, preimage, payment_secret, value_msat, memo, description_hash, payment_request, "
    "creation_date, expiry, cltv_expiry, state, settle_index, settle_date, amt_paid_msat, is_keysend, private,"
    " features, is_hold"
)


class InvoiceRegistry:
    """Invoices in sqlite (see the module docstring). ``listeners`` hear every added or changed invoice."""

    def __init__(self, path: Path | str, node_key: PrivateKey, prefix: str) -> None:
        self.conn = open_db(path)
        self._commits = GroupCommit(self.conn, path)
        self.conn.executescript(_SCHEMA)
        columns = {row[1] for row in self.conn.execute("PRAGMA table_info(invoices)")}
        if "is_hold" not in columns:  # a registry made before hold invoices
            with self._tx() as db:
                db.execute("ALTER TABLE invoices ADD COLUMN is_hold INTEGER NOT NULL DEFAULT 0")
        self.node_key = node_key
        self.prefix = prefix
        #: Called (on the caller's thread) with the new state of an invoice after each durable change.
        self.listeners: list[Callable[[InvoiceRecord], None]] = []

    def close(self) -> None:
        self.conn.close()

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._commits.durable()

    def sync(self) -> None:
        """Make the settles and keysends written so far survive a power cut (one fsync for all)."""
        self._commits.sync()

    def _notify(self, record: InvoiceRecord) -> None:
        for listener in list(self.listeners):
            listener(record)

    # --- adding --------------------------------------------------------------------------------------

    def add(
        self,
        *,
        now: int,
        value_msat: int = 0,
        memo: str = "",
        description_hash: bytes | None = None,
        expiry: int = 0,
        cltv_expiry: int = 0,
        preimage: bytes | None = None,
        private: bool = False,
        route_hints: tuple[tuple[RouteHintHop, ...], ...] = (),
    ) -> InvoiceRecord:
        """Issue an invoice: random preimage (unless given) and payment secret, signed with the node key.

        ``expiry`` / ``cltv_expiry`` 0 take the defaults. InvoiceRegistryError for a bad argument,
        DuplicateInvoice when the payment hash is already used.
        """
        cltv = self._check_args(value_msat, memo, description_hash, expiry, cltv_expiry)
        if preimage is not None and len(preimage) != 32:
            raise InvoiceRegistryError(f"payment preimage must be exactly 32 bytes, is {len(preimage)}")
        preimage = os.urandom(32) if preimage is None else preimage
        return self._insert(now, sha256(preimage), preimage, value_msat, memo, description_hash, expiry, cltv, private,
                            route_hints)

    def add_hold(
        self,
        *,
        now: int,
        payment_hash: bytes,
        value_msat: int = 0,
        memo: str = "",
        description_hash: bytes | None = None,
        expiry: int = 0,
        cltv_expiry: int = 0,
        private: bool = False,
        route_hints: tuple[tuple[RouteHintHop, ...], ...] = (),
    ) -> InvoiceRecord:
        """Issue a hold invoice for ``payment_hash`` (no preimage: :meth:`settle_hold` brings it later)."""
        if len(payment_hash) != 32:
            raise InvoiceRegistryError(f"payment hash must be exactly 32 bytes, is {len(payment_hash)}")
        cltv = self._check_args(value_msat, memo, description_hash, expiry, cltv_expiry)
        return self._insert(now, payment_hash, None, value_msat, memo, description_hash, expiry, cltv, private,
                            route_hints)

    @staticmethod
    def _check_args(value_msat: int, memo: str, description_hash: bytes | None, expiry: int, cltv_expiry: int) -> int:
        """AddInvoice's argument checks (lnd's wording); the CLTV delta to use."""
        if value_msat < 0:
            raise InvoiceRegistryError("payment of negative value is not allowed")
        memo_bytes = len(memo.encode("utf-8"))
        if memo_bytes > MAX_MEMO_BYTES:
            raise InvoiceRegistryError(f"memo too large: {memo_bytes} bytes (maxsize={MAX_MEMO_BYTES})")
        if description_hash is not None and len(description_hash) != 32:
            raise InvoiceRegistryError(f"description hash is {len(description_hash)} bytes, must be 32")
        if expiry < 0 or expiry > MAX_EXPIRY:
            raise InvoiceRegistryError(f"expiry of {expiry} seconds is outside 0..{MAX_EXPIRY}")
        cltv = cltv_expiry or DEFAULT_CLTV_EXPIRY_DELTA
        if cltv < MIN_CLTV_EXPIRY_DELTA:
            raise InvoiceRegistryError(f"CLTV delta of {cltv} must be greater than minimum of {MIN_CLTV_EXPIRY_DELTA}")
        if cltv > MAX_CLTV_EXPIRY_DELTA:
            raise InvoiceRegistryError(f"CLTV delta of {cltv} is too large, max accepted is: {MAX_CLTV_EXPIRY_DELTA}")
        return cltv

    def _insert(
        self, now: int, payment_hash: bytes, preimage: bytes | None, value_msat: int, memo: str,
        description_hash: bytes | None, expiry: int, cltv: int, private: bool,
        route_hints: tuple[tuple[RouteHintHop, ...], ...],
    ) -> InvoiceRecord:
        hold = preimage is None
        features = HOLD_INVOICE_FEATURES if hold else INVOICE_FEATURES
        secret = os.urandom(32)
        expiry = expiry or DEFAULT_INVOICE_EXPIRY
        try:
            invoice = Invoice(
                prefix=self.prefix, amount_msat=value_msat or None, timestamp=now, payment_hash=payment_hash,
                payment_secret=secret, description=None if description_hash is not None else memo,
                description_hash=description_hash, expiry=expiry, min_final_cltv_expiry_delta=cltv,
                features=features, route_hints=route_hints,
            )
            payment_request = encode_invoice(invoice, self.node_key)
        except InvoiceError as e:
            raise InvoiceRegistryError(e.reason) from None
        try:
            with self._tx() as db:
                cur = db.execute(
                    "INSERT INTO invoices (payment_hash, preimage, payment_secret, value_msat, memo, description_hash,"
                    " payment_request, creation_date, expiry, cltv_expiry, state, private, features, is_hold)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (payment_hash, preimage, secret, value_msat, memo, description_hash, payment_request, now, expiry,
                     cltv, int(InvoiceState.OPEN), int(private), features, int(hold)),
                )
                add_index = cur.lastrowid
        except sqlite3.IntegrityError:
            raise DuplicateInvoice("invoice with payment hash already exists") from None
        assert add_index is not None
        record = self._get("payment_hash = ?", (payment_hash,))
        assert record is not None
        self._notify(record)
        return record

    def add_keysend(self, preimage: bytes, htlc: InvoiceHtlc, now: int) -> InvoiceRecord:
        """Record a spontaneous (keysend) payment as a settled invoice before it is fulfilled (fsync'd by
        :meth:`sync`)."""
        payment_hash = sha256(preimage)
        try:
            with self._commits.lazy() as db:
                cur = db.execute(
                    "INSERT INTO invoices (payment_hash, preimage, payment_secret, value_msat, memo, payment_request,"
                    " creation_date, expiry, cltv_expiry, state, settle_index, settle_date, amt_paid_msat, is_keysend,"
                    " features) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,1,?)",
                    (payment_hash, preimage, b"", htlc.amount_msat, "", "", now, DEFAULT_INVOICE_EXPIRY,
                     MIN_CLTV_EXPIRY_DELTA, int(InvoiceState.SETTLED), self._next_settle_index(db), now,
                     htlc.amount_msat, INVOICE_FEATURES),
                )
                assert cur.lastrowid is not None
                self._insert_htlc(db, payment_hash, htlc)
        except sqlite3.IntegrityError:
            raise DuplicateInvoice("invoice with payment hash already exists") from None
        record = self.lookup(payment_hash)
        assert record is not None
        self._notify(record)
        return record

    # --- state changes --------------------------------------------------------------------------------

    @staticmethod
    def _next_settle_index(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT COALESCE(MAX(settle_index), 0) + 1 FROM invoices").fetchone()
        return int(row[0])

    @staticmethod
    def _insert_htlc(db: sqlite3.Connection, payment_hash: bytes, h: InvoiceHtlc) -> None:
        db.execute(
            "INSERT INTO invoice_htlcs (payment_hash, channel_id, short_channel_id, htlc_id, amount_msat, accept_height,"
            " accept_time, expiry_height, state, resolve_time, mpp_total_msat, custom_records)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (payment_hash, h.channel_id, h.short_channel_id, h.htlc_id, h.amount_msat, h.accept_height, h.accept_time,
             h.expiry_height, int(h.state), h.resolve_time, h.mpp_total_msat,
             json.dumps([[t, v.hex()] for t, v in h.custom_records])),
        )

    def settle(self, payment_hash: bytes, htlc: InvoiceHtlc, now: int) -> InvoiceRecord:
        """OPEN -> SETTLED, paid by ``htlc``, in one transaction (call before releasing the preimage; fsync'd
        by :meth:`sync`)."""
        with self._commits.lazy() as db:
            row = db.execute("SELECT state FROM invoices WHERE payment_hash = ?", (payment_hash,)).fetchone()
            if row is None:
                raise InvoiceNotFound("unable to locate invoice")
            state = InvoiceState(row[0])
            if state not in (InvoiceState.OPEN, InvoiceState.ACCEPTED):
                raise InvoiceRegistryError(f"invoice is {state.name.lower()}, cannot settle it")
            db.execute(
                "UPDATE invoices SET state = ?, settle_index = ?, settle_date = ?, amt_paid_msat = ?"
                " WHERE payment_hash = ?",
                (int(InvoiceState.SETTLED), self._next_settle_index(db), now, htlc.amount_msat, payment_hash),
            )
            self._insert_htlc(db, payment_hash, htlc)
        record = self.lookup(payment_hash)
        assert record is not None
        self._notify(record)
        return record

    def accept_htlc(self, payment_hash: bytes, htlc: InvoiceHtlc, now: int | None = None) -> InvoiceRecord:
        """Hold ``htlc`` (state ACCEPTED); once the held parts add up, a hold invoice goes OPEN -> ACCEPTED and
        a regular one OPEN -> SETTLED with all its held parts (the host then fulfills every one).

        The parts add up when they reach the payment's ``total_msat`` (the HTLC's ``mpp_total_msat``, or its
        amount for a single-part payment) and the invoice's amount. ``now`` (default: the HTLC's
        ``accept_time``) dates a settlement. Durable when it returns.
        """
        now = htlc.accept_time if now is None else now
        with self._tx() as db:
            row = db.execute("SELECT state, is_hold, value_msat FROM invoices WHERE payment_hash = ?",
                             (payment_hash,)).fetchone()
            if row is None:
                raise InvoiceNotFound("unable to locate invoice")
            state = InvoiceState(row[0])
            if state is not InvoiceState.OPEN:
                raise InvoiceRegistryError(f"invoice is {state.name.lower()}, cannot accept another HTLC")
            held = db.execute("SELECT COALESCE(SUM(amount_msat), 0) FROM invoice_htlcs WHERE payment_hash = ?"
                              " AND state = ?", (payment_hash, int(InvoiceHtlcState.ACCEPTED))).fetchone()[0]
            self._insert_htlc(db, payment_hash, replace(htlc, state=InvoiceHtlcState.ACCEPTED, resolve_time=0))
            total = int(held) + htlc.amount_msat
            if total >= max(htlc.mpp_total_msat or htlc.amount_msat, int(row[2])):
                if row[1]:
                    db.execute("UPDATE invoices SET state = ?, amt_paid_msat = ? WHERE payment_hash = ?",
                               (int(InvoiceState.ACCEPTED), total, payment_hash))
                else:  # the set of a regular invoice is complete: settled with all its parts, durably
                    db.execute(
                        "UPDATE invoices SET state = ?, settle_index = ?, settle_date = ?, amt_paid_msat = ?"
                        " WHERE payment_hash = ?",
                        (int(InvoiceState.SETTLED), self._next_settle_index(db), now, total, payment_hash))
                    db.execute("UPDATE invoice_htlcs SET state = ?, resolve_time = ? WHERE payment_hash = ?"
                               " AND state = ?",
                               (int(InvoiceHtlcState.SETTLED), now, payment_hash, int(InvoiceHtlcState.ACCEPTED)))
        record = self.lookup(payment_hash)
        assert record is not None
        self._notify(record)
        return record

    def settle_hold(self, preimage: bytes, now: int) -> InvoiceRecord:
        """ACCEPTED -> SETTLED with ``preimage``: stored, with the held HTLCs marked settled, before any is fulfilled.

        Settling a settled invoice succeeds (as lnd); an open one ("invoice still open") or a canceled one fails.
        """
        if len(preimage) != 32:
            raise InvoiceRegistryError(f"payment preimage must be exactly 32 bytes, is {len(preimage)}")
        payment_hash = sha256(preimage)
        with self._tx() as db:
            row = db.execute("SELECT state FROM invoices WHERE payment_hash = ?", (payment_hash,)).fetchone()
            if row is None:
                raise InvoiceNotFound("unable to locate invoice")
            state = InvoiceState(row[0])
            if state is InvoiceState.OPEN:
                raise InvoiceRegistryError("invoice still open")
            if state is InvoiceState.CANCELED:
                raise InvoiceRegistryError("invoice already canceled")
            changed = state is InvoiceState.ACCEPTED
            if changed:
                db.execute(
                    "UPDATE invoices SET state = ?, preimage = ?, settle_index = ?, settle_date = ?"
                    " WHERE payment_hash = ?",
                    (int(InvoiceState.SETTLED), preimage, self._next_settle_index(db), now, payment_hash))
                db.execute("UPDATE invoice_htlcs SET state = ?, resolve_time = ? WHERE payment_hash = ? AND state = ?",
                           (int(InvoiceHtlcState.SETTLED), now, payment_hash, int(InvoiceHtlcState.ACCEPTED)))
        record = self.lookup(payment_hash)
        assert record is not None
        if changed:
            self._notify(record)
        return record

    def expire_mpp_sets(self, now: int, timeout_s: float = DEFAULT_MPP_TIMEOUT_S) -> list[bytes]:
        """Fail every incomplete MPP set (of a regular or a hold invoice: the invoice is still OPEN) whose first
        held part is more than ``timeout_s`` old. A hold invoice's complete set (ACCEPTED) is not touched.

        ``now`` and ``accept_time`` are whole seconds, so "more than" makes the wait at least ``timeout_s``.

        Its held parts become CANCELED (the host fails them back with ``mpp_timeout``); the invoice stays
        OPEN. Durable when it returns; the payment hashes of the sets failed.
        """
        query = ("SELECT h.payment_hash FROM invoice_htlcs h JOIN invoices i ON i.payment_hash = h.payment_hash"
                 " WHERE h.state = ? AND i.state = ? GROUP BY h.payment_hash"
                 " HAVING MIN(h.accept_time) + ? < ? ORDER BY MIN(h.rowid)")
        args = (int(InvoiceHtlcState.ACCEPTED), int(InvoiceState.OPEN), timeout_s, now)
        if not self.conn.execute(query, args).fetchone():  # the usual case (called every second): no write
            return []
        with self._tx() as db:
            hashes = [bytes(r[0]) for r in db.execute(query, args).fetchall()]
            for payment_hash in hashes:
                db.execute("UPDATE invoice_htlcs SET state = ?, resolve_time = ? WHERE payment_hash = ? AND state = ?",
                           (int(InvoiceHtlcState.CANCELED), now, payment_hash, int(InvoiceHtlcState.ACCEPTED)))
        return hashes

    def expire_held_htlcs(self, height: int, delta: int = HOLD_EXPIRY_DELTA, now: int = 0) -> list[bytes]:
        """Apply the hold invoices' CLTV deadline at ``height`` (:func:`hold_deadlines`), durably.

        An ACCEPTED hold invoice with a held HTLC expiring within ``delta`` blocks is canceled with its HTLCs
        (the listeners hear it, as for :meth:`cancel`, and the host fails them back); an incomplete set of an
        OPEN one has its parts released (CANCELED, the invoice stays OPEN, as at the MPP timeout): their
        payment hashes are returned, for the host to fail those parts back (``mpp_timeout``).
        """
        due = hold_deadlines(self.held_htlcs(), height, delta)
        released = []
        for payment_hash in due:
            record = self.lookup(payment_hash)
            if record is None:
                continue
            if record.state is InvoiceState.ACCEPTED:
                self.cancel(payment_hash, now)
            elif record.state is InvoiceState.OPEN:
                with self._tx() as db:
                    db.execute("UPDATE invoice_htlcs SET state = ?, resolve_time = ? WHERE payment_hash = ?"
                               " AND state = ?", (int(InvoiceHtlcState.CANCELED), now, payment_hash,
                                                  int(InvoiceHtlcState.ACCEPTED)))
                released.append(payment_hash)
        return released

    def held_htlcs(self) -> list[HeldHtlc]:
        """Every HTLC held by an OPEN or ACCEPTED hold invoice."""
        rows = self.conn.execute(
            "SELECT h.payment_hash, h.channel_id, h.htlc_id, h.expiry_height FROM invoice_htlcs h"
            " JOIN invoices i ON i.payment_hash = h.payment_hash WHERE h.state = ? AND i.state IN (?, ?)"
            " AND i.is_hold = 1 ORDER BY h.rowid",
            (int(InvoiceHtlcState.ACCEPTED), int(InvoiceState.OPEN), int(InvoiceState.ACCEPTED)),
        ).fetchall()
        return [HeldHtlc(bytes(r[0]), bytes(r[1]), int(r[2]), int(r[3])) for r in rows]

    def cancel(self, payment_hash: bytes, now: int = 0) -> InvoiceRecord:
        """OPEN/ACCEPTED -> CANCELED, held HTLCs too (as lnd: canceling twice succeeds, a settled invoice fails)."""
        with self._tx() as db:
            row = db.execute("SELECT state FROM invoices WHERE payment_hash = ?", (payment_hash,)).fetchone()
            if row is None:
                raise InvoiceNotFound("unable to locate invoice")
            state = InvoiceState(row[0])
            if state is InvoiceState.SETTLED:
                raise InvoiceRegistryError("invoice already settled")
            changed = state is not InvoiceState.CANCELED
            if changed:
                db.execute("UPDATE invoices SET state = ? WHERE payment_hash = ?",
                           (int(InvoiceState.CANCELED), payment_hash))
                db.execute("UPDATE invoice_htlcs SET state = ?, resolve_time = ? WHERE payment_hash = ? AND state = ?",
                           (int(InvoiceHtlcState.CANCELED), now, payment_hash, int(InvoiceHtlcState.ACCEPTED)))
        record = self.lookup(payment_hash)
        assert record is not None
        if changed:
            self._notify(record)
        return record

    # --- reading ----------------------------------------------------------------------------------------

    def _htlcs(self, payment_hash: bytes) -> tuple[InvoiceHtlc, ...]:
        rows = self.conn.execute(
            "SELECT channel_id, short_channel_id, htlc_id, amount_msat, accept_height, accept_time, expiry_height,"
            " state, resolve_time, mpp_total_msat, custom_records FROM invoice_htlcs WHERE payment_hash = ?"
            " ORDER BY rowid",
            (payment_hash,),
        ).fetchall()
        return tuple(
            InvoiceHtlc(bytes(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], InvoiceHtlcState(r[7]), r[8], r[9],
                        tuple((int(t), bytes.fromhex(v)) for t, v in json.loads(r[10])))
            for r in rows
        )

    def _record(self, r: Any) -> InvoiceRecord:
        payment_hash = bytes(r[1])
        return InvoiceRecord(
            add_index=int(r[0]),
            payment_hash=payment_hash,
            preimage=None if r[2] is None else bytes(r[2]),
            payment_secret=bytes(r[3]),
            value_msat=int(r[4]),
            memo=str(r[5]),
            description_hash=None if r[6] is None else bytes(r[6]),
            payment_request=str(r[7]),
            creation_date=int(r[8]),
            expiry=int(r[9]),
            cltv_expiry=int(r[10]),
            state=InvoiceState(r[11]),
            settle_index=int(r[12] or 0),
            settle_date=int(r[13]),
            amt_paid_msat=int(r[14]),
            is_keysend=bool(r[15]),
            private=bool(r[16]),
            features=int(r[17]),
            is_hold=bool(r[18]),
            htlcs=self._htlcs(payment_hash),
        )

    def _get(self, where: str, args: tuple[object, ...]) -> InvoiceRecord | None:
        row = self.conn.execute(f"SELECT {_COLUMNS} FROM invoices WHERE {where}", args).fetchone()
        return None if row is None else self._record(row)

    def _many(self, where: str, args: tuple[object, ...], order: str, limit: int) -> list[InvoiceRecord]:
        sql = f"SELECT {_COLUMNS} FROM invoices WHERE {where} ORDER BY {order}"
        if limit > 0:
            sql += f" LIMIT {int(limit)}"
        return [self._record(r) for r in self.conn.execute(sql, args).fetchall()]

    def lookup(self, payment_hash: bytes) -> InvoiceRecord | None:
        return self._get("payment_hash = ?", (bytes(payment_hash),))

    def lookup_by_payment_addr(self, payment_addr: bytes) -> InvoiceRecord | None:
        if len(payment_addr) != 32:
            return None
        return self._get("payment_secret = ?", (bytes(payment_addr),))

    def list_invoices(
        self,
        *,
        pending_only: bool = False,
        index_offset: int = 0,
        max_invoices: int = 0,
        reversed: bool = False,
        creation_date_start: int = 0,
        creation_date_end: int = 0,
    ) -> list[InvoiceRecord]:
        """lnd's ListInvoices: ``index_offset`` is exclusive; ``reversed`` seeks back from it (0: from the end).

        The result is always in ascending ``add_index`` order; ``max_invoices`` 0 means no limit.
        """
        where = ["1"]
        args: list[object] = []
        if pending_only:
            where.append("state IN (?, ?)")
            args += [int(InvoiceState.OPEN), int(InvoiceState.ACCEPTED)]
        if creation_date_start:
            where.append("creation_date >= ?")
            args.append(creation_date_start)
        if creation_date_end:
            where.append("creation_date <= ?")
            args.append(creation_date_end)
        if reversed:
            if index_offset:
                where.append("add_index < ?")
                args.append(index_offset)
            rows = self._many(" AND ".join(where), tuple(args), "add_index DESC", max_invoices)
            rows.reverse()
            return rows
        where.append("add_index > ?")
        args.append(index_offset)
        return self._many(" AND ".join(where), tuple(args), "add_index ASC", max_invoices)

    def added_since(self, add_index: int) -> list[InvoiceRecord]:
        """Invoices with an ``add_index`` above this one (SubscribeInvoices' backlog)."""
        return self._many("add_index > ?", (add_index,), "add_index ASC", 0)

    def settled_since(self, settle_index: int) -> list[InvoiceRecord]:
        """Settled invoices with a ``settle_index`` above this one (SubscribeInvoices' backlog)."""
        return self._many("settle_index > ?", (settle_index,), "settle_index ASC", 0)
