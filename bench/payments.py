"""Payments per second between two `canal channeld` daemons over one channel.

    python bench/payments.py [--payments 1000] [--inflight 60] [--max-htlcs 483] [--backend NAME] [--profile DIR]

For each crypto backend (or the one given), it starts a regtest `canal chaind` and
two `canal channeld` (alice, bob) on 127.0.0.1 with CANAL_CRYPTO set, opens one
1,000,000 sat channel alice -> bob, and sends `--payments` keysend payments of
1 sat (+ a few msat) from alice to bob through the Router `SendPaymentV2` gRPC
API, with `--inflight` calls in flight at any time (one client thread each).
Both daemons run with `--default-remote-max-htlcs` = `--max-htlcs` (lnd's
default, 483; Canal's is 30 like Core Lightning and eclair): an HTLC being
settled still counts against it, so 30 allows only ~12 payments in flight. A warm-up of
`--inflight` payments runs first and is not counted.

It prints payments/s (wall time of the measured payments), the p50/p99 latency
of one SendPaymentV2 call (request to the SUCCEEDED update), and, per payment
and summed over both daemons: ECDSA signatures made and verified and durable
sqlite commits (each one fsync of the WAL under synchronous=FULL), counted
inside the daemons by bench/hooks/sitecustomize.py; and the machine. Every
payment must succeed and both balances must add up, or the benchmark fails.

`--profile DIR` runs `py-spy record` on both daemons during the measured
payments (if py-spy is installed) and writes DIR/<backend>-<node>.txt
(collapsed stacks of the thread holding the GIL: where the CPU goes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from machine import describe  # noqa: E402

from base_chain import crypto  # noqa: E402
from canal.procs import ChainProcess, LightningProcess, wait_for  # noqa: E402
from proto import chain_pb2 as pb  # noqa: E402
from proto import lightning_pb2 as ln  # noqa: E402
from proto import router_pb2 as router_pb  # noqa: E402
from proto import router_pb2_grpc as router_grpc  # noqa: E402

KEYSEND = 5482373484
CHANNEL_SAT = 1_000_000


class Net:
    """chaind + alice + bob with one active channel alice -> bob."""

    def __init__(self, root: Path, backend: str, max_htlcs: int) -> None:
        self.counters = root / "counters"
        self.counters.mkdir(parents=True)
        os.environ["CANAL_CRYPTO"] = backend
        os.environ["CANAL_BENCH_COUNTERS"] = str(self.counters)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [str(HERE / "hooks"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])
        self.chain = ChainProcess(root / "chain")
        limit = ["--default-remote-max-htlcs", str(max_htlcs)]
        self.alice = LightningProcess(root / "alice", self.chain, alias="alice", extra_args=limit)
        self.bob = LightningProcess(root / "bob", self.chain, alias="bob", extra_args=limit)
        self.procs: list[Any] = []

    def start(self) -> None:
        chain, alice, bob = self.chain, self.alice, self.bob
        for p in (chain, alice, bob):
            p.start()
            self.procs.append(p)
        chain.generate(101)
        addr = alice.rpc.NewAddress(ln.NewAddressRequest()).address
        chain.rpc.SendToAddress(pb.SendToAddressRequest(address=addr, amount_sat=5 * 100_000_000, fee_rate_sat_vb=2))
        chain.generate(1)
        wait_for(lambda: alice.rpc.WalletBalance(ln.WalletBalanceRequest()).confirmed_balance > 0, 60, "funded")
        alice.rpc.ConnectPeer(ln.ConnectPeerRequest(addr=ln.LightningAddress(
            pubkey=bob.pubkey, host=f"127.0.0.1:{bob.info['listen_port']}")))
        wait_for(lambda: bob.rpc.ListPeers(ln.ListPeersRequest()).peers, 30, "connected")
        alice.rpc.OpenChannelSync(ln.OpenChannelRequest(node_pubkey=bytes.fromhex(bob.pubkey),
                                                        local_funding_amount=CHANNEL_SAT, push_sat=0, sat_per_vbyte=2))
        chain.generate(3)
        for n in (alice, bob):
            wait_for(lambda n=n: len(n.rpc.ListChannels(ln.ListChannelsRequest(active_only=True)).channels) == 1,
                     60, "channel active")

    def pids(self) -> dict[str, int]:
        out = {}
        for name, p in (("alice", self.alice), ("bob", self.bob)):
            assert p.proc is not None
            out[name] = p.proc.pid
        return out

    def counts(self) -> dict[str, int]:
        """The counters of both Lightning daemons, summed (read after they have been written)."""
        time.sleep(0.5)
        total: dict[str, int] = {}
        for pid in self.pids().values():
            data = json.loads((self.counters / f"{pid}.json").read_text())
            for k, v in data.items():
                total[k] = total.get(k, 0) + v
        return total

    def cpu_seconds(self) -> dict[str, tuple[float, float]]:
        """User and system CPU time of each Lightning daemon so far (all its threads)."""
        tick = os.sysconf("SC_CLK_TCK")
        out = {}
        for name, pid in self.pids().items():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[name] = int(fields[11]) / tick, int(fields[12]) / tick  # utime, stime: fields 14, 15 of proc(5)
        return out

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()


def settled(node: LightningProcess) -> bool:
    chans = node.rpc.ListChannels(ln.ListChannelsRequest(active_only=True)).channels
    return len(chans) == 1 and not chans[0].pending_htlcs


def local_msat(node: LightningProcess) -> int:
    return int(node.rpc.ChannelBalance(ln.ChannelBalanceRequest()).local_balance.msat)


def pay_all(net: Net, amounts: list[int], inflight: int) -> tuple[float, list[float]]:
    """Send keysend payments of `amounts` msat with `inflight` calls at once; (seconds, latencies)."""
    channel = net.alice.channel()
    router = router_grpc.RouterStub(channel)
    dest = bytes.fromhex(net.bob.pubkey)
    failures: list[str] = []
    lock = threading.Lock()

    def one(amount_msat: int) -> float:
        preimage = os.urandom(32)
        req = router_pb.SendPaymentRequest(
            dest=dest, amt_msat=amount_msat, payment_hash=hashlib.sha256(preimage).digest(),
            dest_custom_records={KEYSEND: preimage}, timeout_seconds=60, no_inflight_updates=True)
        start = time.perf_counter()
        last = None
        for last in router.SendPaymentV2(req, timeout=120):
            pass
        took = time.perf_counter() - start
        if last is None or last.status != ln.Payment.SUCCEEDED:
            with lock:
                failures.append(str(last))
        return took

    try:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=inflight) as pool:
            latencies = list(pool.map(one, amounts))
        elapsed = time.perf_counter() - t0
    finally:
        channel.close()
    if failures:
        refusals = [line for line in net.alice.stderr().splitlines() if "refused" in line]
        raise SystemExit(f"{len(failures)} payments failed, e.g. {failures[0]}\n" + "\n".join(refusals[-3:]))
    return elapsed, latencies


def start_profilers(net: Net, directory: Path, backend: str) -> list[subprocess.Popen[bytes]]:
    spy = shutil.which("py-spy")
    if spy is None:
        print("py-spy is not installed: no profile")
        return []
    directory.mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen([spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "200", "--nonblocking", "--gil",
                          "--output", str(directory / f"{backend}-{name}.txt")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for name, pid in net.pids().items()
    ]


def stop_profilers(spies: list[subprocess.Popen[bytes]]) -> None:
    for p in spies:
        p.send_signal(signal.SIGINT)
    for p in spies:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def run(backend: str, payments: int, inflight: int, max_htlcs: int, profile: Path | None) -> None:
    root = Path(tempfile.mkdtemp(prefix=f"canal-bench-pay-{backend}-"))
    net = Net(root, backend, max_htlcs)
    try:
        net.start()
        alice_before, bob_before = local_msat(net.alice), local_msat(net.bob)
        warm = [1_000 + i for i in range(inflight)]
        pay_all(net, warm, inflight)
        wait_for(lambda: settled(net.alice) and settled(net.bob), 60, "warm-up settled")
        before = net.counts()
        cpu_before = net.cpu_seconds()
        spies = start_profilers(net, profile, backend) if profile is not None else []
        amounts = [1_000 + (i % 997) for i in range(payments)]
        try:
            elapsed, latencies = pay_all(net, amounts, inflight)
        finally:
            stop_profilers(spies)
        wait_for(lambda: settled(net.alice) and settled(net.bob), 60, "payments settled")
        after = net.counts()
        cpu_after = net.cpu_seconds()
        sent = sum(warm) + sum(amounts)
        if local_msat(net.alice) != alice_before - sent or local_msat(net.bob) != bob_before + sent:
            raise SystemExit("balances do not add up")
        lat = sorted(latencies)
        p50 = statistics.median(lat) * 1000
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
        per = {k: (after[k] - before.get(k, 0)) / payments for k in after}
        spent = {name: sum(cpu_after[name]) - sum(cpu_before[name]) for name in cpu_after}
        user, system = (sum(cpu_after[n][i] - cpu_before[n][i] for n in cpu_after) / payments * 1000 for i in (0, 1))
        cpu = user + system
        busy = ", ".join(f"{name} {seconds / elapsed:.0%} of a core" for name, seconds in spent.items())
        print(f"{backend:<10} {payments / elapsed:>10,.1f} {p50:>8.1f} {p99:>8.1f} {per['sign']:>8.2f} "
              f"{per['verify']:>8.2f} {per['commits']:>9.2f} {cpu:>8.1f}   {payments} payments, {inflight} in flight (max {max_htlcs} HTLCs), "
              f"{elapsed:.1f} s; cpu {user:.1f} ms user + {system:.1f} ms system; {busy}")
        for k in sorted(per, key=lambda k: -per[k]):
            if k.startswith("commit: ") and per[k] >= 0.05:
                print(f"{'':<10} {per[k]:>6.2f} fsync/pay  {k[8:]}")
    finally:
        net.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--payments", type=int, default=1000)
    ap.add_argument("--inflight", type=int, default=60, help="SendPaymentV2 calls in flight")
    ap.add_argument("--max-htlcs", type=int, default=483,
                    help="--default-remote-max-htlcs of both daemons (HTLCs being removed still count)")
    ap.add_argument("--backend", choices=["ecdsa", "coincurve"], help="default: every installed backend")
    ap.add_argument("--profile", type=Path, help="write py-spy profiles of both daemons here")
    args = ap.parse_args()
    print(f"machine: {describe()}")
    print(f"load average before: {os.getloadavg()[0]:.2f} (other work on this machine slows the daemons)")
    print(f"{'backend':<10} {'payments/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'sigs/pay':>8} {'vrfy/pay':>8} "
          f"{'fsync/pay':>9} {'cpu ms/pay':>8}")
    print("(signatures, durable sqlite commits (one WAL fsync each) and CPU time summed over both daemons;\n"
          " on 2 free cores the CPU alone would allow at most 2000 / (cpu ms/pay) payments/s)")
    backends = [args.backend] if args.backend else crypto.available_backends()
    for backend in backends:
        run(backend, args.payments, args.inflight, args.max_htlcs, args.profile)
    print("anchor (issue 6): eclair ~89 payments/s on 8 vCPUs; goal here >= 100/s (ecdsa), >= 500/s (coincurve)")


if __name__ == "__main__":
    main()
