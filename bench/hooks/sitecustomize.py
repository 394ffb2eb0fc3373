"""Counters for bench/payments.py, loaded into the daemons it starts (PYTHONPATH=bench/hooks).

Active only when CANAL_BENCH_COUNTERS names a directory: it counts ECDSA signatures
made (PrivateKey.sign) and verified (PublicKey.verify), and durable sqlite commits
(COMMIT statements plus writes run in autocommit mode: each one is an fsync'd WAL
commit under synchronous=FULL), and writes them to <dir>/<pid>.json every 0.2 s.
With CANAL_BENCH_CPROFILE=1 as well, it also runs cProfile on the main (trio) thread
and writes <dir>/<pid>.prof when the daemon exits. Nothing in the daemons changes otherwise.
"""

from __future__ import annotations

import json
import os
import threading
import time

_DIR = os.environ.get("CANAL_BENCH_COUNTERS")


def _install(directory: str) -> None:
    import sqlite3
    from typing import Any

    from base_chain import crypto, store

    counts = {"sign": 0, "verify": 0, "commits": 0, "statements": 0}
    by_statement: dict[str, int] = {}
    sign, verify, open_db = crypto.PrivateKey.sign, crypto.PublicKey.verify, store.open_db

    def counted_sign(self: Any, msg32: bytes) -> Any:
        counts["sign"] += 1
        return sign(self, msg32)

    def counted_verify(self: Any, r: int, s: int, msg32: bytes, der: bytes | None = None) -> bool:
        counts["verify"] += 1
        return verify(self, r, s, msg32, der)

    class CountedConnection:
        """Counts statements and durable commits as they are executed.

        (Not sqlite's trace callback: that expands every bound blob into SQL text,
        which costs the daemons more than the writes themselves.)
        """

        def __init__(self, conn: sqlite3.Connection) -> None:
            self._conn = conn
            self._first_write = ""
            self._synced = True  # PRAGMA synchronous=NORMAL: commits without an fsync until it is FULL again

        def _count(self, sql: str) -> None:
            counts["statements"] += 1
            text = sql.lstrip()[:64]
            word = text[:7].upper()
            is_write = word.startswith(("INSERT", "UPDATE", "DELETE", "REPLACE"))
            if is_write and not self._first_write:
                self._first_write = " ".join(text.split())[:48]
            if text.upper().startswith("PRAGMA SYNCHRONOUS"):
                self._synced = text.upper().replace(" ", "").endswith("=FULL")
            if self._synced and (word.startswith("COMMIT") or (is_write and not self._conn.in_transaction)):
                counts["commits"] += 1
                what = "commit: " + (self._first_write or "(no write)")
                by_statement[what] = by_statement.get(what, 0) + 1
            if word.startswith(("COMMIT", "ROLLBACK")) or (is_write and not self._conn.in_transaction):
                self._first_write = ""

        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
            self._count(sql)
            return self._conn.execute(sql, *args)

        def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
            self._count(sql)
            return self._conn.executemany(sql, *args)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._conn, name)

    def counted_open_db(path: Any) -> Any:
        return CountedConnection(open_db(path))

    fsync_wal = store.fsync_wal

    def counted_fsync_wal(path: Any) -> None:  # group commits: one fsync for several lazy commits
        counts["commits"] += 1
        by_statement["commit: (fsync of the WAL)"] = by_statement.get("commit: (fsync of the WAL)", 0) + 1
        fsync_wal(path)

    store.fsync_wal = counted_fsync_wal
    crypto.PrivateKey.sign = counted_sign  # type: ignore[method-assign]
    crypto.PublicKey.verify = counted_verify  # type: ignore[method-assign]
    store.open_db = counted_open_db

    path = os.path.join(directory, f"{os.getpid()}.json")

    def dump() -> None:
        while True:
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                json.dump({**counts, **by_statement}, f)
            os.replace(tmp, path)
            time.sleep(0.2)

    threading.Thread(target=dump, name="bench-counters", daemon=True).start()


def _profile(directory: str) -> None:
    """cProfile the main (trio) thread until the daemon exits; stats in <dir>/<pid>.prof."""
    import atexit
    import cProfile

    profiler = cProfile.Profile()
    atexit.register(lambda: (profiler.disable(), profiler.dump_stats(os.path.join(directory, f"{os.getpid()}.prof"))))
    profiler.enable()


if _DIR:
    _install(_DIR)
    if os.environ.get("CANAL_BENCH_CPROFILE"):
        _profile(_DIR)
