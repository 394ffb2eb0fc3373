"""Channel update throughput: payments per second through two channel state machines with durable stores.

    python bench/channel_updates.py [--n 200] [--batches 50] [--batch-size 10] [--backend NAME] [--dir PATH]

Two `Channel` cores (A funds, B accepts) are wired back to back in memory, as
tests/test_channel_state.py does it: each message goes through the wire
encoding (encode, decode; no BOLT 8 encryption) into the other side's queue.
Each side has its own `ChannelStore` (sqlite, WAL, synchronous=FULL) in a
temporary directory, and its effects are carried out strictly in order as
`channels/manager.py` does: a `Persist` is written with `save_channel` (and
`add_revoked` when it carries a revocation) before any later effect.

The channel is opened and funded in memory (a funding transaction spending a
made-up outpoint; it never goes on a chain), then A pays B in cycles:

* single:  add_htlc, sign -> commitment_signed / revoke_and_ack both ways ->
           B fulfill_htlc, sign -> the dance again. One HTLC per commitment.
* batched: --batch-size adds, one sign, the dance; as many fulfills, one sign,
           the dance.

A payment is one HTLC added and fulfilled. For each installed crypto backend it
prints payments/s, Persist effects and fsync'd sqlite commits per payment
(add_revoked is a commit of its own), signatures created and verified per
payment (counted by wrapping `PrivateKey.sign` / `PublicKey.verify`), the share
of wall time spent in sqlite, and the mean snapshot size. Both nodes run in this
one process on one core, so a payment costs the CPU of both ends.

For context it also measures this machine's durable sqlite commits/s (tiny
synchronous=FULL commits for 1 s in the same directory) and prints the anchor
from the issue: eclair ~89 payments/s and lnd ~33 payments/s on 8 vCPUs.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import describe  # noqa: E402

from base_chain import crypto  # noqa: E402
from base_chain.store import open_db  # noqa: E402
from base_chain.tx import OutPoint, Transaction, TxIn, TxOut  # noqa: E402
from channels.effects import (  # noqa: E402
    Effect,
    FailChannel,
    FundingGenerationReady,
    HtlcFulfilled,
    IncomingHtlc,
    Persist,
    SendMessage,
    persist_to_write,
)
from channels.features import Feature, Features  # noqa: E402
from channels.keys import ChannelSecrets, derive_channel_keys  # noqa: E402
from channels.manager import _revoked_dict  # noqa: E402
from channels.state import Channel, ChannelState  # noqa: E402
from channels.store import ChannelStore  # noqa: E402
from channels.wire import ErrorMessage, Message, WarningMessage, decode_message  # noqa: E402

CHAIN = bytes.fromhex("06226e46111a0b59caaf126043eb5bbf28c34f3a5e332a1fc7b2b73cf188910f")
FEATURES = Features.of(
    optional=[
        Feature.option_data_loss_protect,
        Feature.option_upfront_shutdown_script,
        Feature.option_static_remotekey,
        Feature.option_channel_type,
        Feature.option_shutdown_anysegwit,
        Feature.option_anchors_zero_fee_htlc_tx,
    ]
)
SCRIPT_A = bytes([0, 20]) + b"\xaa" * 20
SCRIPT_B = bytes([0, 32]) + b"\xbb" * 32
ONION = bytes(range(256)) * 5 + bytes(86)  # 1366 bytes, the size of a real onion
FUNDING_SAT = 16_000_000  # just under 2^24: no option_support_large_channel needed
AMOUNT_MSAT = 2_000_000  # 2,000 sat: above the dust limit, so every HTLC has an output and a signature
CLTV = 800_000

ANCHORS = "eclair ~89 payments/s, lnd ~33 payments/s on 8 vCPUs (the anchor from the issue)"


# ---------------------------------------------------------------------------------------------
# counting signatures


@dataclass
class Counters:
    signs: int = 0
    verifies: int = 0


COUNT = Counters()


def _install_counters() -> None:
    """Wrap the two entry points every channel signature goes through (sign_der calls sign)."""
    sign, verify = crypto.PrivateKey.sign, crypto.PublicKey.verify

    def counted_sign(self: crypto.PrivateKey, msg32: bytes) -> tuple[int, int]:
        COUNT.signs += 1
        return sign(self, msg32)

    def counted_verify(self: crypto.PublicKey, r: int, s: int, msg32: bytes) -> bool:
        COUNT.verifies += 1
        return verify(self, r, s, msg32)

    crypto.PrivateKey.sign = counted_sign  # type: ignore[method-assign]
    crypto.PublicKey.verify = counted_verify  # type: ignore[method-assign]


# ---------------------------------------------------------------------------------------------
# two nodes back to back, each with a durable store


@dataclass
class Node:
    name: str
    secrets: ChannelSecrets
    channel: Channel
    store: ChannelStore
    peer: bytes
    inbox: deque[Message] = field(default_factory=deque)
    events: list[Effect] = field(default_factory=list)
    persists: int = 0
    commits: int = 0
    snapshot_bytes: int = 0
    db_seconds: float = 0.0
    last_state: bytes = b""


class Harness:
    def __init__(self, directory: Path) -> None:
        sa, sb = derive_channel_keys(b"\x01" * 32, 0), derive_channel_keys(b"\x02" * 32, 0)
        a, effects = Channel.open(
            secrets=sa, keys_id=0, chain_hash=CHAIN, temporary_channel_id=b"\x07" * 32,
            funding_sat=FUNDING_SAT, feerate_per_kw=2500, push_msat=0,
            local_features=FEATURES, remote_features=FEATURES, shutdown_scriptpubkey=SCRIPT_A,
        )  # fmt: skip
        b = Channel.inbound(
            secrets=sb, keys_id=0, chain_hash=CHAIN, local_features=FEATURES, remote_features=FEATURES,
            shutdown_scriptpubkey=SCRIPT_B,
        )  # fmt: skip
        node_a, node_b = b"\x02" + b"\xaa" * 32, b"\x03" + b"\xbb" * 32
        self.a = Node("a", sa, a, ChannelStore(directory / "a.sqlite"), peer=node_b)
        self.b = Node("b", sb, b, ChannelStore(directory / "b.sqlite"), peer=node_a)
        self.failures: list[str] = []
        self.run(self.a, effects)
        self.settle()
        ev = next(e for e in self.a.events if isinstance(e, FundingGenerationReady))
        funding = Transaction(
            2,
            [TxIn(OutPoint(hashlib.sha256(b"fake utxo").digest(), 0))],
            [TxOut(50_000, SCRIPT_A), TxOut(ev.funding_sat, ev.script_pubkey)],
            0,
        )
        self.run(self.a, self.a.channel.funding_transaction_generated(funding))
        self.settle()
        scid = (800_000 << 40) | (1 << 16) | 1
        self.run(self.a, self.a.channel.funding_confirmed(3, scid))
        self.run(self.b, self.b.channel.funding_confirmed(3, scid))
        self.settle()
        if not (self.a.channel.state is self.b.channel.state is ChannelState.NORMAL):
            raise SystemExit(f"channel did not open: {self.a.channel.state}, {self.b.channel.state}")
        self.check()

    def other(self, node: Node) -> Node:
        return self.b if node is self.a else self.a

    def run(self, node: Node, effects: list[Effect]) -> None:
        """Carry out effects in order, as ChannelManager._apply does: Persist is durable before what follows."""
        queue = list(effects)
        while queue:
            e = queue.pop(0)
            if isinstance(e, Persist):
                written = persist_to_write(e, queue)
                if written is None:
                    continue
                e = written
                t0 = time.perf_counter()
                old = node.channel.temporary_channel_id
                state, blobs = e.parts
                node.store.save_channel(e.channel_id, node.peer, node.channel.keys_id, state, old_id=old,
                                        blobs=blobs)
                node.commits += 1
                if e.revoked is not None:
                    node.store.add_revoked(e.channel_id, e.revoked.commitment_number, _revoked_dict(e.revoked))
                    node.commits += 1
                node.db_seconds += time.perf_counter() - t0
                node.persists += 1
                node.snapshot_bytes += len(e.state)
                node.last_state = e.state
            elif isinstance(e, SendMessage):
                msg = decode_message(e.message.encode())
                assert isinstance(msg, Message)
                if isinstance(msg, (ErrorMessage, WarningMessage)):
                    self.failures.append(f"{node.name} sent {msg.printable_data()}")
                self.other(node).inbox.append(msg)
            else:
                if isinstance(e, FailChannel):
                    self.failures.append(f"{node.name} failed: {e.reason}")
                node.events.append(e)

    def settle(self) -> None:
        for _ in range(100_000):
            if not (self.a.inbox or self.b.inbox):
                return
            for node in (self.a, self.b):
                if node.inbox:
                    self.run(node, node.channel.receive(node.inbox.popleft()))
        raise SystemExit("messages never settled")

    def check(self) -> None:
        if self.failures:
            raise SystemExit("channel error: " + "; ".join(self.failures))

    def take(self, node: Node, kind: type) -> list[Any]:
        found = [e for e in node.events if isinstance(e, kind)]
        node.events = [e for e in node.events if not isinstance(e, kind)]
        return found

    # --- payments ------------------------------------------------------------------------

    def pay(self, first: int, count: int) -> None:
        """A offers `count` HTLCs in one commitment, B fulfills them all in one commitment."""
        a, b = self.a, self.b
        preimages = {}
        for n in range(first, first + count):
            preimage = hashlib.sha256(b"preimage %d" % n).digest()
            payment_hash = hashlib.sha256(preimage).digest()
            preimages[payment_hash] = preimage
            self.run(a, a.channel.add_htlc(AMOUNT_MSAT, payment_hash, CLTV, ONION))
        self.run(a, a.channel.sign())
        self.settle()
        incoming = self.take(b, IncomingHtlc)
        if len(incoming) != count:
            raise SystemExit(f"B saw {len(incoming)} incoming HTLCs, expected {count}")
        for ev in incoming:
            self.run(b, b.channel.fulfill_htlc(ev.htlc_id, preimages[ev.payment_hash]))
        self.run(b, b.channel.sign())
        self.settle()
        fulfilled = self.take(a, HtlcFulfilled)
        if len(fulfilled) != count:
            raise SystemExit(f"A saw {len(fulfilled)} fulfills, expected {count}")
        self.check()

    def close(self) -> None:
        self.a.store.close()
        self.b.store.close()


@dataclass
class Result:
    payments: int
    seconds: float
    persists: int
    commits: int
    signs: int
    verifies: int
    db_seconds: float
    snapshot_bytes: int

    @property
    def per_second(self) -> float:
        return self.payments / self.seconds


def run_mode(directory: Path, payments: int, batch: int) -> Result:
    h = Harness(directory)
    a, b = h.a, h.b
    nodes = (a, b)
    for node in nodes:
        node.persists = node.commits = node.snapshot_bytes = 0
        node.db_seconds = 0.0
    COUNT.signs = COUNT.verifies = 0
    balance_b = b.channel.local_balance_msat
    t0 = time.perf_counter()
    done = 0
    while done < payments:
        count = min(batch, payments - done)
        h.pay(done, count)
        done += count
    seconds = time.perf_counter() - t0
    # sanity: the money moved, nothing is left in flight, and the stores hold the last state
    if b.channel.local_balance_msat - balance_b != payments * AMOUNT_MSAT:
        raise SystemExit("balances do not add up")
    if not (a.channel._c.is_quiescent() and b.channel._c.is_quiescent()):
        raise SystemExit("channel not quiescent after the run")
    for node in nodes:
        stored = list(node.store.channels())
        if len(stored) != 1 or stored[0].state != node.last_state:
            raise SystemExit(f"{node.name}'s store does not hold its last snapshot")
        restored = Channel.from_bytes(stored[0].state, node.secrets)
        if restored.local_balance_msat != node.channel.local_balance_msat:
            raise SystemExit(f"{node.name}'s snapshot does not restore its balance")
    persists = sum(n.persists for n in nodes)
    result = Result(
        payments=payments,
        seconds=seconds,
        persists=persists,
        commits=sum(n.commits for n in nodes),
        signs=COUNT.signs,
        verifies=COUNT.verifies,
        db_seconds=sum(n.db_seconds for n in nodes),
        snapshot_bytes=sum(n.snapshot_bytes for n in nodes) // max(persists, 1),
    )
    h.close()
    return result


def durable_commits_per_second(directory: Path, seconds: float = 1.0) -> float:
    """Tiny synchronous=FULL commits (WAL) in a loop: the fsync ceiling of this disk."""
    conn = open_db(directory / "commits.sqlite")
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB NOT NULL)")
    n = 0
    row = b"\x00" * 32
    t0 = time.perf_counter()
    end = t0 + seconds
    while True:
        conn.execute("INSERT INTO t VALUES (?, ?)", (n, row))  # autocommit: one durable transaction
        n += 1
        now = time.perf_counter()
        if now >= end:
            break
    conn.close()
    return n / (now - t0)


def filesystem_of(path: Path) -> str:
    """The mount point and filesystem type holding `path` (fsync cost depends on it)."""
    best, kind = "", "?"
    target = str(path.resolve())
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    mnt = parts[1]
                    inside = target == mnt or target.startswith(mnt.rstrip("/") + "/")
                    if inside and len(mnt) > len(best):
                        best, kind = mnt, parts[2]
    except OSError:
        pass
    return f"{kind} on {best or '?'}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="payments in single mode (one HTLC per commitment)")
    ap.add_argument("--batches", type=int, default=50, help="batches in batched mode")
    ap.add_argument("--batch-size", type=int, default=10, help="HTLCs per commitment in batched mode")
    ap.add_argument("--backend", action="append", help="crypto backend(s) to run (default: all installed)")
    ap.add_argument("--dir", type=Path, default=None, help="where the temporary stores go (default: $TMPDIR)")
    args = ap.parse_args()
    if args.n < 1 or args.batches < 1 or args.batch_size < 1:
        ap.error("--n, --batches and --batch-size must be >= 1")
    most = max(args.n, args.batches * args.batch_size)
    if most * AMOUNT_MSAT > FUNDING_SAT * 1000 * 9 // 10:
        ap.error(f"at most {FUNDING_SAT * 1000 * 9 // 10 // AMOUNT_MSAT} payments fit in the channel")
    if args.batch_size > 30:
        ap.error("--batch-size is limited by max_accepted_htlcs (30)")
    backends = args.backend or crypto.available_backends()
    for name in backends:
        if name not in crypto.available_backends():
            ap.error(f"backend {name!r} is not installed (have: {', '.join(crypto.available_backends())})")
    _install_counters()
    previous = crypto.get_backend()

    print(f"machine: {describe()}")
    print(f"load average (1 min) at start: {_load():.2f} on {os.cpu_count()} cores (other work skews the figures)")
    with tempfile.TemporaryDirectory(prefix="canal-bench-", dir=args.dir) as tmp:
        directory = Path(tmp)
        commits_s = durable_commits_per_second(directory)
        print(f"store: sqlite WAL synchronous=FULL in {directory} ({filesystem_of(directory)})")
        print(f"durable sqlite commits/s on this machine: {commits_s:,.0f} (tiny commits, 1 s loop)")
        print(f"anchor: {ANCHORS}")
        print(f"payment = 1 HTLC of {AMOUNT_MSAT // 1000:,} sat A->B, added and fulfilled; "
              f"anchors channel of {FUNDING_SAT:,} sat; both ends in this process")
        print()
        header = (
            f"{'backend':<10} {'mode':<14} {'payments':>8} {'payments/s':>11} {'persist/pay':>12} "
            f"{'fsyncs/pay':>11} {'fsync cap/s':>12} {'signs/pay':>10} {'verifies/pay':>13} "
            f"{'sqlite time':>12} {'snapshot B':>11}"
        )
        print(header)
        modes: list[tuple[str, int, int]] = [
            ("single", args.n, 1),
            (f"batched x{args.batch_size}", args.batches * args.batch_size, args.batch_size),
        ]
        run_id = 0
        try:
            for backend in backends:
                crypto.set_backend(backend)
                for label, payments, batch in modes:
                    run_id += 1
                    sub = directory / f"run{run_id}"
                    sub.mkdir()
                    r = run_mode(sub, payments, batch)
                    fsyncs = r.commits / r.payments
                    print(
                        f"{backend:<10} {label:<14} {r.payments:>8} {r.per_second:>11,.1f} "
                        f"{r.persists / r.payments:>12.2f} {fsyncs:>11.2f} {commits_s / fsyncs:>12,.0f} "
                        f"{r.signs / r.payments:>10.2f} {r.verifies / r.payments:>13.2f} "
                        f"{r.db_seconds / r.seconds:>11.0%} {r.snapshot_bytes:>11,}",
                        flush=True,
                    )
        finally:
            _restore_backend(previous)
    print()
    print(f"load average (1 min) at end: {_load():.2f}")
    print("fsyncs/pay: durable sqlite commits (save_channel, plus add_revoked with a revocation), both nodes;")
    print("fsync cap/s: durable commits/s / fsyncs per payment, the ceiling the disk alone would set;")
    print("signs, verifies: PrivateKey.sign and PublicKey.verify calls, both nodes; sqlite time: share of wall time.")


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def _restore_backend(previous: crypto.Backend) -> None:
    for name in crypto.available_backends():
        if crypto._load(name) is previous:
            crypto.set_backend(name)


if __name__ == "__main__":
    main()
