"""Automatic swaps alpha <-> beta between two `canal swapd`: wall time and blocks as required confirmations vary.

    python bench/swap.py [--confs 1,3,6] [--rounds 2] [--alpha-block-ms 400]

Starts an alpha and a beta node (both parties share them) and two swap daemons
requiring N confirmations on both chains, then runs swaps of 1 alpha for 2 beta
while a miner makes blocks at a fixed cadence: one alpha block every
``--alpha-block-ms`` and four beta blocks in the same time (beta's 150 s interval
against alpha's 600 s). For each N it prints the wall time from InitiateSwap until
both daemons report ``redeemed`` and the blocks mined on each chain meanwhile
(best and worst of the rounds), and the machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import describe  # noqa: E402

from canal.demo_swapd import burn_address, start_swapd, swap_state  # noqa: E402
from canal.procs import ChainProcess  # noqa: E402
from proto import swap_pb2 as spb  # noqa: E402

COIN = 100_000_000


class Miner(threading.Thread):
    """One alpha block, then four beta blocks, every `period_s`, to an address nobody owns."""

    def __init__(self, alpha: ChainProcess, beta: ChainProcess, period_s: float) -> None:
        super().__init__(daemon=True)
        self.alpha, self.beta, self.period_s = alpha, beta, period_s
        self.burn = {"alpha": burn_address("alpha"), "beta": burn_address("beta")}
        self.stop_flag = threading.Event()
        self.counts = {"alpha": 0, "beta": 0}

    def run(self) -> None:
        while not self.stop_flag.is_set():
            self.alpha.generate(1, self.burn["alpha"])
            self.counts["alpha"] += 1
            for _ in range(4):
                if self.stop_flag.wait(self.period_s / 4):
                    return
                self.beta.generate(1, self.burn["beta"])
                self.counts["beta"] += 1


def one_swap(alice_rpc: object, bob_addr: str, procs: list[object], alpha: ChainProcess, beta: ChainProcess,
             period_s: float) -> tuple[float, dict[str, int]]:
    miner = Miner(alpha, beta, period_s)
    t0 = time.monotonic()
    status = alice_rpc.InitiateSwap(spb.InitiateSwapRequest(  # type: ignore[attr-defined]
        peer=bob_addr, send_chain="alpha", send_amount_sat=COIN, receive_chain="beta", receive_amount_sat=2 * COIN,
        initiator_lock_s=16 * 3600, participant_lock_s=8 * 3600), timeout=60)
    miner.start()
    try:
        deadline = t0 + 300
        while not all(swap_state(p, status.swap_id) == "redeemed" for p in procs):  # type: ignore[arg-type]
            if time.monotonic() > deadline:
                raise TimeoutError(f"swap {status.swap_id} did not finish")
            time.sleep(0.05)
        elapsed = time.monotonic() - t0
    finally:
        miner.stop_flag.set()
        miner.join()
    return elapsed, dict(miner.counts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--confs", default="1,3,6")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--alpha-block-ms", type=int, default=400)
    ns = ap.parse_args()
    confs = [int(c) for c in ns.confs.split(",")]
    period = ns.alpha_block_ms / 1000
    print(f"machine: {describe()}")
    print(f"cadence: 1 alpha block + 4 beta blocks every {ns.alpha_block_ms} ms; swap 1 ALPHA for 2 BETA; "
          f"{ns.rounds} rounds per setting")
    with tempfile.TemporaryDirectory(prefix="canal-bench-swap-") as tmp:
        root = Path(tmp)
        alpha, beta = ChainProcess(root / "alpha", "alpha"), ChainProcess(root / "beta", "beta")
        try:
            alpha.start()
            beta.start()
            alpha.generate(101 + 2 * ns.rounds * len(confs))
            beta.generate(101 + 2 * ns.rounds * len(confs))
            print(f"{'confs':>5} {'wall s (best)':>14} {'wall s (worst)':>15} {'alpha blocks':>13} {'beta blocks':>12}")
            for n in confs:
                spec = f"alpha={n},beta={n}"
                alice = start_swapd(root / f"alice-{n}", alpha, beta, spec)
                bob = start_swapd(root / f"bob-{n}", alpha, beta, spec)
                try:
                    results = [one_swap(alice.rpc, bob.peer_addr, [alice, bob], alpha, beta, period)
                               for _ in range(ns.rounds)]
                finally:
                    alice.stop()
                    bob.stop()
                walls = sorted(r[0] for r in results)
                a_blocks = "/".join(str(r[1]["alpha"]) for r in results)
                b_blocks = "/".join(str(r[1]["beta"]) for r in results)
                print(f"{n:>5} {walls[0]:>14.2f} {walls[-1]:>15.2f} {a_blocks:>13} {b_blocks:>12}", flush=True)
        finally:
            alpha.stop()
            beta.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
