"""Route finding on real Lightning graphs: load time, query latency, success rate, memory.

    python bench/pathfind.py [--queries 1000] [--seed 1] [--graphs 2019,2026-json,2026-gossmap]

For each graph it prints the load time, the retained size of the graph
(tracemalloc, measured in a second load), then runs `--queries` route queries
between random node pairs (fixed seed; the payer drawn among nodes with an
enabled channel out, the payee among nodes with an enabled channel in) for
amounts drawn uniformly in 10k-1M sat, and prints the share that found a
route, latency percentiles over all queries and over the successful ones, and
the mean route length and fee. Queries without a single route are then
tried with `split_payment` (MPP, at most 16 parts).
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import describe  # noqa: E402

from htlc.graph import ChannelGraph, load_gossmap, load_listchannels_json  # noqa: E402
from htlc.pathfind import NoRouteError, find_route, split_payment  # noqa: E402

GRAPHS = Path(__file__).resolve().parents[2] / "shared" / "vectors" / "graph"
G2019 = GRAPHS / "million-channels-2019-05-14" / "channels_5-14-19.json.xz"
G2026 = GRAPHS / "cln-gossmap-2026-02-03"

LOADERS: dict[str, Callable[[], ChannelGraph]] = {
    "2019": lambda: load_listchannels_json(G2019),
    "2026-json": lambda: load_listchannels_json(G2026 / "channels-2026-02-03.json.xz"),
    "2026-gossmap": lambda: load_gossmap(
        G2026 / "gossip-store-2026-02-03.compressed", G2026 / "gossip-store-2026-02-03-node-map.xz"
    ),
}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def endpoints(graph: ChannelGraph) -> tuple[list[bytes], list[bytes]]:
    """Nodes with an enabled channel out (payers) and with one in (payees)."""
    out_ok, in_ok = set(), set()
    for p in graph:
        if not p.disabled:
            out_ok.add(p.source)
            in_ok.add(p.target)
    return sorted(out_ok), sorted(in_ok)


def run(name: str, queries: int, seed: int) -> None:
    gc.collect()
    t0 = time.perf_counter()
    graph = LOADERS[name]()
    load_s = time.perf_counter() - t0
    gc.collect()
    tracemalloc.start()
    again = LOADERS[name]()
    gc.collect()
    retained, peak = tracemalloc.get_traced_memory()
    for v in range(again.node_count):
        again.search_edges(v)
        again.forward_edges(v)
    with_views, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del again
    gc.collect()
    print(
        f"\n[{name}] {graph.node_count:,} nodes, {graph.channel_count:,} channels, "
        f"{graph.edge_count:,} directed entries "
        f"({sum(1 for p in graph if not p.disabled):,} enabled)"
    )
    print(
        f"  load {load_s:.2f} s; graph retains {retained / 2**20:.1f} MiB, "
        f"{with_views / 2**20:.1f} MiB with the search views (peak while loading {peak / 2**20:.1f} MiB; tracemalloc)"
    )
    payers, payees = endpoints(graph)
    rng = random.Random(seed)
    pairs: list[tuple[bytes, bytes, int]] = []
    while len(pairs) < queries:
        s, t = rng.choice(payers), rng.choice(payees)
        if s != t:
            pairs.append((s, t, rng.randint(10_000, 1_000_000) * 1000))
    # Warm the per-node search views once (a daemon keeps them between queries).
    t0 = time.perf_counter()
    for v in range(graph.node_count):
        graph.search_edges(v)
        graph.forward_edges(v)
    warm_s = time.perf_counter() - t0
    all_ms: list[float] = []
    ok_ms: list[float] = []
    fail_ms: list[float] = []
    hops = fees_ppm = 0.0
    failed: list[tuple[bytes, bytes, int]] = []
    for s, t, amount in pairs:
        t0 = time.perf_counter()
        try:
            route = find_route(graph, s, t, amount)
        except NoRouteError:
            fail_ms.append((time.perf_counter() - t0) * 1000)
            all_ms.append(fail_ms[-1])
            failed.append((s, t, amount))
            continue
        ok_ms.append((time.perf_counter() - t0) * 1000)
        all_ms.append(ok_ms[-1])
        hops += len(route.hops)
        fees_ppm += route.total_fee_msat * 1e6 / amount
    n_ok = len(ok_ms)
    print(f"  search views built in {warm_s:.2f} s")
    print(
        f"  {queries} queries, 10k-1M sat: {n_ok} routes found ({100 * n_ok / queries:.1f}%), "
        f"mean {hops / max(n_ok, 1):.2f} hops, mean fee {fees_ppm / max(n_ok, 1):.0f} ppm"
    )
    print(
        f"  latency all     p50 {pct(all_ms, 0.5):7.2f} ms  p90 {pct(all_ms, 0.9):7.2f} ms  "
        f"p99 {pct(all_ms, 0.99):7.2f} ms  mean {sum(all_ms) / len(all_ms):6.2f} ms"
    )
    print(
        f"  latency found   p50 {pct(ok_ms, 0.5):7.2f} ms  p90 {pct(ok_ms, 0.9):7.2f} ms  "
        f"p99 {pct(ok_ms, 0.99):7.2f} ms"
    )
    if fail_ms:
        print(
            f"  latency no-route p50 {pct(fail_ms, 0.5):7.2f} ms  p99 {pct(fail_ms, 0.99):7.2f} ms"
        )
        split_ms: list[float] = []
        parts = 0
        for s, t, amount in failed:
            t0 = time.perf_counter()
            try:
                routes = split_payment(graph, s, t, amount, max_parts=16)
            except NoRouteError:
                continue
            finally:
                elapsed = (time.perf_counter() - t0) * 1000
            split_ms.append(elapsed)
            parts += len(routes)
        print(
            f"  no single route: {len(failed)}; split_payment (max 16 parts) places {len(split_ms)} of them "
            f"(mean {parts / max(len(split_ms), 1):.1f} parts, p50 {pct(split_ms, 0.5):.1f} ms, "
            f"p99 {pct(split_ms, 0.99):.1f} ms)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--graphs", default=",".join(LOADERS))
    args = ap.parse_args()
    print(f"machine: {describe()}")
    for name in args.graphs.split(","):
        run(name, args.queries, args.seed)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"\nprocess max RSS {rss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
