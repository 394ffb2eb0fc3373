"""Peg-in latency as the required deposit depth varies: wall time and blocks per peg-in.

    python bench/peg.py [--depths 1,3,6] [--runs 3]

Starts alpha and beta `canal chaind`, and for each depth k a fresh 2-of-3
committee of `canal notaryd` (one SPV notary per chain); each run deposits on
alpha, mines k blocks, claims (three notaries asked, 2 signatures assembled),
broadcasts on beta and mines 1 block. Blocks are mined on demand here, so the
wall time is the software's; on a live chain add k alpha blocks (600 s each) and
one beta block (150 s), printed as "chain time".
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from machine import describe  # noqa: E402

from base_chain.params import get_params  # noqa: E402
from canal.demo_peg import peg_once, running_committee  # noqa: E402
from canal.procs import ChainProcess  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--depths", default="1,3,6")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    depths = [int(d) for d in args.depths.split(",")]
    print(f"machine: {describe()}")
    alpha_s, beta_s = get_params("alpha").target_spacing_s, get_params("beta").target_spacing_s
    with tempfile.TemporaryDirectory(prefix="canal-bench-peg-") as tmp:
        root = Path(tmp)
        alpha, beta = ChainProcess(root / "alpha", "alpha"), ChainProcess(root / "beta", "beta")
        try:
            alpha.start()
            beta.start()
            alpha.generate(101)
            beta.generate(101)
            print(f"{'k':>3} {'runs':>4} {'alpha blocks':>12} {'beta blocks':>11} {'claim s (median)':>16} "
                  f"{'peg-in s (median)':>17} {'chain time':>10}")
            for k in depths:
                with running_committee(root / f"k{k}", alpha, beta, {"alpha": k, "beta": 4 * k}) as coordinator:
                    runs = [peg_once(coordinator, alpha, beta, 100_000_000) for _ in range(args.runs)]
                claim = statistics.median(r["claim_seconds"] for r in runs)
                total = statistics.median(r["total_seconds"] for r in runs)
                chain_time = k * alpha_s + beta_s
                print(f"{k:>3} {args.runs:>4} {runs[0]['source_blocks']:>12} {runs[0]['destination_blocks']:>11} "
                      f"{claim:>16.3f} {total:>17.3f} {chain_time / 60:>8.1f} m")
        finally:
            alpha.stop()
            beta.stop()


if __name__ == "__main__":
    main()
