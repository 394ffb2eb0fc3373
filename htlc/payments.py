"""The node's outgoing payments and their HTLC attempts, durable in sqlite (lnd's payments database).

``payments.sqlite`` in the node's data dir (WAL, synchronous=FULL). The rule
that keeps a restart from paying twice: a payment is created
(:meth:`PaymentStore.init_payment`) and each attempt is written
(:meth:`PaymentStore.add_attempt`, with its route, session key and the
channel HTLC id it will get) *before* the HTLC is offered to the channel. A
payment hash is paid at most once: a SUCCEEDED or IN_FLIGHT payment refuses a
second :meth:`init_payment`; a FAILED one may be tried again (its old attempts
are dropped, as lnd does). The request's settings are stored with the payment
(column ``settings``, added to older files on open) so that a restarted payer
goes on with a payment that was in flight.

Statuses and failure reasons use lnd's enum numbers (``lnrpc.Payment.PaymentStatus``,
``lnrpc.PaymentFailureReason``, ``lnrpc.HTLCAttempt.HTLCStatus``). Times are unix
nanoseconds passed in by the caller: no clock is read here.
"""

from __future__ import annotations

import enum
import json
import sqlite3
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from base_chain.store import GroupCommit, open_db

__all__ = [
    "UNREADABLE_FAILURE",
    "Attempt",
    "AttemptFailure",
    "AttemptStatus",
    "FailureReason",
    "Payment",
    "PaymentExists",
    "PaymentStatus",
    "PaymentStore",
    "Route",
    "RouteHop",
]


class PaymentStatus(enum.IntEnum):
    """lnd's ``lnrpc.Payment.PaymentStatus``."""

    IN_FLIGHT = 1
    SUCCEEDED = 2
    FAILED = 3
    INITIATED = 4


class FailureReason(enum.IntEnum):
    """lnd's ``lnrpc.PaymentFailureReason``."""

    NONE = 0
    TIMEOUT = 1
    NO_ROUTE = 2
    ERROR = 3
    INCORRECT_PAYMENT_DETAILS = 4
    INSUFFICIENT_BALANCE = 5
    CANCELED = 6


class AttemptStatus(enum.IntEnum):
    """lnd's ``lnrpc.HTLCAttempt.HTLCStatus``."""

    IN_FLIGHT = 0
    SUCCEEDED = 1
    FAILED = 2


UNREADABLE_FAILURE = -1
"""``AttemptFailure.code`` when the error onion could not be attributed to any hop."""


class PaymentExists(Exception):
    """:meth:`PaymentStore.init_payment` refused: the hash is paid or being paid (lnd's wording in ``reason``)."""

    def __init__(self, reason: str, status: PaymentStatus) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class RouteHop:
    pubkey: bytes
    short_channel_id: int
    amt_to_forward_msat: int
    fee_msat: int
    expiry: int
    chan_capacity_sat: int = 0
    payment_addr: bytes | None = None
    total_msat: int = 0
    custom_records: tuple[tuple[int, bytes], ...] = ()


@dataclass(frozen=True)
class Route:
    total_time_lock: int
    total_amt_msat: int
    total_fees_msat: int
    hops: tuple[RouteHop, ...]

    def to_json(self) -> str:
        def plain(v: Any) -> Any:
            if isinstance(v, bytes):
                return v.hex()
            if isinstance(v, (list, tuple)):
                return [plain(x) for x in v]
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            return v

        return json.dumps(plain(asdict(self)))

    @classmethod
    def from_json(cls, text: str) -> Route:
        d = json.loads(text)
        hops = tuple(
            RouteHop(
                pubkey=bytes.fromhex(h["pubkey"]), short_channel_id=h["short_channel_id"],
                amt_to_forward_msat=h["amt_to_forward_msat"], fee_msat=h["fee_msat"], expiry=h["expiry"],
                chan_capacity_sat=h["chan_capacity_sat"],
                payment_addr=None if h["payment_addr"] is None else bytes.fromhex(h["payment_addr"]),
                total_msat=h["total_msat"],
                custom_records=tuple((int(t), bytes.fromhex(v)) for t, v in h["custom_records"]),
            )
            for h in d["hops"]
        )
        return cls(d["total_time_lock"], d["total_amt_msat"], d["total_fees_msat"], hops)


@dataclass(frozen=True)
class AttemptFailure:
    """Why an attempt failed: the BOLT 4 failure ``code`` (or UNREADABLE_FAILURE) and what it said.

    ``source_index`` is lnd's ``failure_source_index``: 0 is us, 1 the first hop.
    """

    code: int
    source_index: int
    message: str = ""
    htlc_msat: int = 0
    cltv_expiry: int = 0
    height: int = 0
    flags: int = 0
    onion_sha256: bytes = b""
    channel_update: bytes = b""
    """The raw ``channel_update`` the failure carried (its type prefix included when the sender put one)."""

    def to_json(self) -> str:
        d = asdict(self)
        d["onion_sha256"] = self.onion_sha256.hex()
        d["channel_update"] = self.channel_update.hex()
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> AttemptFailure:
        d = json.loads(text)
        d["onion_sha256"] = bytes.fromhex(d["onion_sha256"])
        d["channel_update"] = bytes.fromhex(d.get("channel_update", ""))
        return cls(**d)


@dataclass(frozen=True)
class Attempt:
    attempt_id: int
    payment_hash: bytes
    status: AttemptStatus
    route: Route
    session_key: bytes
    channel_id: bytes
    htlc_id: int
    attempt_time_ns: int
    resolve_time_ns: int = 0
    failure: AttemptFailure | None = None
    preimage: bytes | None = None


@dataclass(frozen=True)
class Payment:
    payment_index: int
    payment_hash: bytes
    value_msat: int
    fee_msat: int
    status: PaymentStatus
    failure_reason: FailureReason
    creation_time_ns: int
    payment_request: str
    destination: bytes
    preimage: bytes | None
    attempts: tuple[Attempt, ...]

    @property
    def is_final(self) -> bool:
        return self.status in (PaymentStatus.SUCCEEDED, PaymentStatus.FAILED)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
    payment_index INTEGER PRIMARY KEY AUTOINCREMENT,
    payment_hash BLOB NOT NULL UNIQUE,
    value_msat INTEGER NOT NULL,
    fee_msat INTEGER NOT NULL DEFAULT 0,
    status INTEGER NOT NULL,
    failure_reason INTEGER NOT NULL DEFAULT 0,
    creation_time_ns INTEGER NOT NULL,
    payment_request TEXT NOT NULL,
    destination BLOB NOT NULL,
    preimage BLOB
);
CREATE TABLE IF NOT EXISTS attempts (
    attempt_id INTEGER PRIMARY KEY AUTOINCREMENT,
    payment_hash BLOB NOT NULL REFERENCES payments (payment_hash),
    status INTEGER NOT NULL,
    route TEXT NOT NULL,
    session_key BLOB NOT NULL,
    channel_id BLOB NOT NULL,
    htlc_id INTEGER NOT NULL,
    attempt_time_ns INTEGER NOT NULL,
    resolve_time_ns INTEGER NOT NULL DEFAULT 0,
    failure TEXT,
    preimage BLOB
);
CREATE INDEX IF NOT EXISTS attempts_by_payment ON attempts (payment_hash);
-- A channel never reuses an HTLC id it offered, but an attempt whose HTLC never reached the channel
-- (a crash between the two writes) is FAILED at start and its id is offered again: unique among the rest.
CREATE UNIQUE INDEX IF NOT EXISTS attempts_by_htlc ON attempts (channel_id, htlc_id) WHERE status != 2;
-- attempt_for_htlc looks at every status (the newest attempt of the id).
CREATE INDEX IF NOT EXISTS attempts_by_channel_htlc ON attempts (channel_id, htlc_id, attempt_id);
"""

_P_COLUMNS = ("payment_index, payment_hash, value_msat, fee_msat, status, failure_reason, creation_time_ns, "
              "payment_request, destination, preimage")
_A_COLUMNS = ("attempt_id, payment_hash, status, route, session_key, channel_id, htlc_id, attempt_time_ns, "
              "resolve_time_ns, failure, preimage")


@lru_cache(maxsize=4096)
def _parse_route(text: str) -> Route:
    """A stored route, parsed once (routes never change; a payment's are read back at every update)."""
    return Route.from_json(text)


class PaymentStore:
    """Payments and attempts in sqlite (see the module docstring); every write is durable on return."""

    def __init__(self, path: Path | str) -> None:
        self.conn = open_db(path)
        self._commits = GroupCommit(self.conn, path)
        self.conn.executescript(_SCHEMA)
        columns = {r[1] for r in self.conn.execute("PRAGMA table_info(payments)")}
        if "settings" not in columns:  # a payments.sqlite from before payments were resumed: its rows get NULL
            with self._tx() as db:
                db.execute("ALTER TABLE payments ADD COLUMN settings TEXT")

    def close(self) -> None:
        self.conn.close()

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._commits.durable()

    def _lazy_tx(self) -> AbstractContextManager[sqlite3.Connection]:
        """A commit whose fsync waits for :meth:`sync` (see there)."""
        return self._commits.lazy()

    def sync(self) -> None:
        """Make the attempts and preimages written so far survive a power cut: one fsync for all.

        The channel node calls it before it writes any channel state (``ChannelManager.before_write``),
        so an attempt is durable before its HTLC is signed for, and a preimage before the channel
        forgets the HTLC it settled; until then a crash of the process loses nothing (the writes are
        committed) and a power cut loses nothing the channel has not also lost (the peer re-sends it)."""
        self._commits.sync()

    # --- writing ----------------------------------------------------------------------------------------

    def init_payment(self, payment_hash: bytes, value_msat: int, destination: bytes, payment_request: str,
                     now_ns: int, settings: str | None = None) -> Payment:
        """Create the IN_FLIGHT payment; PaymentExists if this hash succeeded or is in flight.

        ``settings`` (opaque text, the payer's request) is kept with it: see :meth:`settings`.
        Durable at the next :meth:`sync` or durable commit (:meth:`fail_payment`): nothing is promised on
        it before (a power cut before either leaves no payment, or one IN_FLIGHT without attempts, as a
        crash does: the restart resumes or fails it).
        """
        with self._lazy_tx() as db:
            row = db.execute("SELECT status FROM payments WHERE payment_hash = ?", (payment_hash,)).fetchone()
            if row is not None:
                status = PaymentStatus(row[0])
                if status is PaymentStatus.SUCCEEDED:
                    raise PaymentExists("invoice is already paid", status)
                if status is not PaymentStatus.FAILED:
                    raise PaymentExists("payment is in transition", status)
                db.execute("DELETE FROM attempts WHERE payment_hash = ?", (payment_hash,))
                db.execute("DELETE FROM payments WHERE payment_hash = ?", (payment_hash,))
            cur = db.execute(
                "INSERT INTO payments (payment_hash, value_msat, status, creation_time_ns, payment_request,"
                " destination, settings) VALUES (?,?,?,?,?,?,?)",
                (payment_hash, value_msat, int(PaymentStatus.IN_FLIGHT), now_ns, payment_request, destination,
                 settings),
            )
            index = cur.lastrowid
        assert index is not None
        return Payment(payment_index=index, payment_hash=payment_hash, value_msat=value_msat, fee_msat=0,
                       status=PaymentStatus.IN_FLIGHT, failure_reason=FailureReason.NONE, creation_time_ns=now_ns,
                       payment_request=payment_request, destination=destination, preimage=None, attempts=())

    def add_attempt(self, payment_hash: bytes, route: Route, session_key: bytes, channel_id: bytes, htlc_id: int,
                    now_ns: int) -> Attempt:
        """Record an attempt before its HTLC is offered (``htlc_id``: the id the channel will give it);
        durable at the next :meth:`sync`, which comes before the channel signs for the HTLC."""
        with self._lazy_tx() as db:
            cur = db.execute(
                "INSERT INTO attempts (payment_hash, status, route, session_key, channel_id, htlc_id, attempt_time_ns)"
                " VALUES (?,?,?,?,?,?,?)",
                (payment_hash, int(AttemptStatus.IN_FLIGHT), route.to_json(), session_key, channel_id, htlc_id,
                 now_ns),
            )
            attempt_id = cur.lastrowid
        assert attempt_id is not None
        return Attempt(attempt_id=attempt_id, payment_hash=payment_hash, status=AttemptStatus.IN_FLIGHT, route=route,
                       session_key=session_key, channel_id=channel_id, htlc_id=htlc_id, attempt_time_ns=now_ns)

    def forget_attempt(self, attempt_id: int) -> None:
        """Drop an attempt whose HTLC the channel refused to offer (it never left this node)."""
        with self._tx() as db:
            db.execute("DELETE FROM attempts WHERE attempt_id = ? AND status = ?",
                       (attempt_id, int(AttemptStatus.IN_FLIGHT)))

    def settle_attempt(self, attempt_id: int, preimage: bytes, now_ns: int) -> Payment:
        """The attempt's HTLC was fulfilled (idempotent): the payment has its preimage, and is SUCCEEDED
        once no other attempt (MPP shard) is in flight; its fee is that of the settled attempts.
        Durable at the next :meth:`sync`, which comes before the channel forgets the HTLC."""
        with self._lazy_tx() as db:
            row = db.execute("SELECT payment_hash FROM attempts WHERE attempt_id = ?", (attempt_id,)).fetchone()
            assert row is not None, f"no attempt {attempt_id}"
            payment_hash = bytes(row[0])
            db.execute("UPDATE attempts SET status = ?, resolve_time_ns = ?, preimage = ? WHERE attempt_id = ?"
                       " AND status != ?",
                       (int(AttemptStatus.SUCCEEDED), now_ns, preimage, attempt_id, int(AttemptStatus.SUCCEEDED)))
            db.execute("UPDATE payments SET preimage = ?, failure_reason = 0 WHERE payment_hash = ?",
                       (preimage, payment_hash))
            self._decide(db, payment_hash)
        payment = self.get(payment_hash)
        assert payment is not None
        return payment

    def _decide(self, db: sqlite3.Connection, payment_hash: bytes) -> None:
        """A payment with a preimage and nothing in flight SUCCEEDED; its fee is what its settled attempts paid."""
        rows = db.execute("SELECT status, route FROM attempts WHERE payment_hash = ?", (payment_hash,)).fetchall()
        if any(AttemptStatus(r[0]) is AttemptStatus.IN_FLIGHT for r in rows):
            return
        fee = sum(_parse_route(r[1]).total_fees_msat for r in rows if AttemptStatus(r[0]) is AttemptStatus.SUCCEEDED)
        db.execute("UPDATE payments SET status = ?, fee_msat = ? WHERE payment_hash = ? AND preimage IS NOT NULL",
                   (int(PaymentStatus.SUCCEEDED), fee, payment_hash))

    def fail_attempt(self, attempt_id: int, failure: AttemptFailure, now_ns: int) -> Attempt:
        with self._tx() as db:
            db.execute("UPDATE attempts SET status = ?, resolve_time_ns = ?, failure = ? WHERE attempt_id = ?"
                       " AND status = ?",
                       (int(AttemptStatus.FAILED), now_ns, failure.to_json(), attempt_id,
                        int(AttemptStatus.IN_FLIGHT)))
            row = db.execute("SELECT payment_hash FROM attempts WHERE attempt_id = ?", (attempt_id,)).fetchone()
            if row is not None:
                self._decide(db, bytes(row[0]))
        attempt = self._attempt("attempt_id = ?", (attempt_id,))
        assert attempt is not None
        return attempt

    def fail_payment(self, payment_hash: bytes, reason: FailureReason) -> Payment:
        """The payment FAILED with ``reason`` (unless it has a preimage: a preimage wins, it SUCCEEDED)."""
        with self._tx() as db:
            db.execute("UPDATE payments SET status = ?, failure_reason = ? WHERE payment_hash = ? AND status != ?"
                       " AND preimage IS NULL",
                       (int(PaymentStatus.FAILED), int(reason), payment_hash, int(PaymentStatus.SUCCEEDED)))
            self._decide(db, payment_hash)
        payment = self.get(payment_hash)
        assert payment is not None
        return payment

    # --- reading ----------------------------------------------------------------------------------------

    @staticmethod
    def _attempt_of(r: Any) -> Attempt:
        return Attempt(
            attempt_id=int(r[0]), payment_hash=bytes(r[1]), status=AttemptStatus(r[2]), route=_parse_route(r[3]),
            session_key=bytes(r[4]), channel_id=bytes(r[5]), htlc_id=int(r[6]), attempt_time_ns=int(r[7]),
            resolve_time_ns=int(r[8]), failure=None if r[9] is None else AttemptFailure.from_json(r[9]),
            preimage=None if r[10] is None else bytes(r[10]),
        )

    def _attempt(self, where: str, args: tuple[object, ...]) -> Attempt | None:
        row = self.conn.execute(f"SELECT {_A_COLUMNS} FROM attempts WHERE {where}", args).fetchone()
        return None if row is None else self._attempt_of(row)

    def _payment_of(self, r: Any) -> Payment:
        payment_hash = bytes(r[1])
        attempts = tuple(self._attempt_of(a) for a in self.conn.execute(
            f"SELECT {_A_COLUMNS} FROM attempts WHERE payment_hash = ? ORDER BY attempt_id", (payment_hash,)))
        return Payment(
            payment_index=int(r[0]), payment_hash=payment_hash, value_msat=int(r[2]), fee_msat=int(r[3]),
            status=PaymentStatus(r[4]), failure_reason=FailureReason(r[5]), creation_time_ns=int(r[6]),
            payment_request=str(r[7]), destination=bytes(r[8]), preimage=None if r[9] is None else bytes(r[9]),
            attempts=attempts,
        )

    def get(self, payment_hash: bytes) -> Payment | None:
        row = self.conn.execute(f"SELECT {_P_COLUMNS} FROM payments WHERE payment_hash = ?",
                                (bytes(payment_hash),)).fetchone()
        return None if row is None else self._payment_of(row)

    def settings(self, payment_hash: bytes) -> str | None:
        """The settings stored with the payment (None: none were, e.g. a payment made before they were kept)."""
        row = self.conn.execute("SELECT settings FROM payments WHERE payment_hash = ?", (bytes(payment_hash),)).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def attempt_for_htlc(self, channel_id: bytes, htlc_id: int) -> Attempt | None:
        """The attempt of this channel HTLC (the newest, should a never-offered attempt have had its id)."""
        return self._attempt("channel_id = ? AND htlc_id = ? ORDER BY attempt_id DESC LIMIT 1", (channel_id, htlc_id))

    def in_flight(self) -> list[Payment]:
        rows = self.conn.execute(f"SELECT {_P_COLUMNS} FROM payments WHERE status = ? ORDER BY payment_index",
                                 (int(PaymentStatus.IN_FLIGHT),)).fetchall()
        return [self._payment_of(r) for r in rows]

    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM payments").fetchone()[0])

    def list_payments(
        self,
        *,
        include_incomplete: bool = False,
        index_offset: int = 0,
        max_payments: int = 0,
        reversed: bool = False,
        creation_date_start: int = 0,
        creation_date_end: int = 0,
    ) -> list[Payment]:
        """lnd's ListPayments: ``index_offset`` exclusive; ``reversed`` seeks back from it; ascending order out.

        Without ``include_incomplete`` only SUCCEEDED payments are listed. ``max_payments`` 0: no limit.
        """
        where = ["1"]
        args: list[object] = []
        if not include_incomplete:
            where.append("status = ?")
            args.append(int(PaymentStatus.SUCCEEDED))
        if creation_date_start:
            where.append("creation_time_ns >= ?")
            args.append(creation_date_start * 1_000_000_000)
        if creation_date_end:
            where.append("creation_time_ns <= ?")
            args.append(creation_date_end * 1_000_000_000 + 999_999_999)
        if reversed:
            if index_offset:
                where.append("payment_index < ?")
                args.append(index_offset)
            order = "payment_index DESC"
        else:
            where.append("payment_index > ?")
            args.append(index_offset)
            order = "payment_index ASC"
        sql = f"SELECT {_P_COLUMNS} FROM payments WHERE {' AND '.join(where)} ORDER BY {order}"
        if max_payments > 0:
            sql += f" LIMIT {int(max_payments)}"
        payments = [self._payment_of(r) for r in self.conn.execute(sql, tuple(args)).fetchall()]
        if reversed:
            payments.reverse()
        return payments
