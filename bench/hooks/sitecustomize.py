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

    def counted_open_db(path: Any) -> sqlite3.Connection:
        conn = open_db(path)

        first_write: list[str] = []

        def trace(sql: str) -> None:
            counts["statements"] += 1
            text = " ".join(sql.split())
            word = text[:7].upper()
            is_write = word.startswith(("INSERT", "UPDATE", "DELETE", "REPLACE"))
            if is_write and not first_write:
                first_write.append(text[:48])
            if word.startswith("COMMIT") or (is_write and not conn.in_transaction):
                counts["commits"] += 1
                what = "commit: " + (first_write[0] if first_write else "(no write)")
                by_statement[what] = by_statement.get(what, 0) + 1
            if word.startswith(("COMMIT", "ROLLBACK")) or (is_write and not conn.in_transaction):
                first_write.clear()

        conn.set_trace_callback(trace)
        return conn

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
