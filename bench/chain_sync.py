"""A fresh node syncing a chain from a peer over loopback: blocks per second.

    python bench/chain_sync.py [--blocks 2000] [--txs 3]

Builds a regtest chain in-process (every block after the first 100 carries a few
P2WPKH transactions), serves it from one `canal chaind`, starts a second, empty
`canal chaind --connect` to it, and times the second node's headers-first sync,
once per installed crypto backend.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))

from chainbuild import build_chain  # noqa: E402
from daemons import ChainProcess, wait_for  # noqa: E402
from machine import describe  # noqa: E402

from base_chain import crypto  # noqa: E402
from base_chain.chainstate import ChainState  # noqa: E402
from base_chain.params import get_params  # noqa: E402
from base_chain.store import ChainStore  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--blocks", type=int, default=2000)
    ap.add_argument("--txs", type=int, default=3, help="transactions per block once coins mature")
    args = ap.parse_args()
    print(f"machine: {describe()}")
    work = Path(tempfile.mkdtemp(prefix="canal-bench-sync-"))
    try:
        crypto.set_backend("coincurve" if "coincurve" in crypto.available_backends() else "ecdsa")
        source = work / "source"
        source.mkdir()
        t0 = time.perf_counter()
        store = ChainStore(source / "chain.sqlite")
        chain = ChainState(get_params("regtest"), store)
        build_chain(chain, args.blocks, args.txs)
        n_tx = sum(len(chain.get_block(i.hash).transactions) for i in chain.active[1:])  # type: ignore[union-attr]
        store.close()
        print(f"built {args.blocks} blocks with {n_tx} transactions in {time.perf_counter() - t0:.1f} s")
        print(f"{'backend':<10} {'blocks':>7} {'seconds':>8} {'blocks/s':>9} {'tx/s':>8}")
        for backend in crypto.available_backends():
            os.environ["CANAL_CRYPTO"] = backend
            a = ChainProcess(source).start(timeout=600)
            sink = work / f"sink-{backend}"
            b = ChainProcess(sink, connect=[a.p2p_addr]).start()
            try:
                t0 = time.perf_counter()
                wait_for(lambda: b.height() >= args.blocks, 3600, "sync")
                elapsed = time.perf_counter() - t0
            finally:
                b.stop()
                a.stop()
            print(f"{backend:<10} {args.blocks:>7} {elapsed:>8.1f} {args.blocks / elapsed:>9.1f} {n_tx / elapsed:>8.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
