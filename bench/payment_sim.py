"""Payment success against amount: scored pathfinding with retries against cheapest-fee Dijkstra with retries.

    python bench/payment_sim.py [--graph 2019|2026-json] [--payments 100] [--attempts 10] [--seed 1]

Every channel of the graph gets a random balance (seeded): the side of
node_id_1 holds a uniform share of the capacity, the other side the rest. A
hop fails when the balance on its side is below the HTLC it must carry. The
payer knows its own balances (passed as `local_liquidity_msat`, as lnd's
bandwidth hints and LDK's first hops do). Balances do not move between
payments, so every payment faces the same network.

For each amount, the same random (payer, payee) pairs are paid by:

* cheapest fee   - Dijkstra on fees only; after a failure the failed channel
                   direction is excluded for the rest of that payment;
* scored         - the default scorer, fresh for each payment: failures feed
                   `Scorer.payment_failed` (upper bounds, decay), successes
                   `payment_succeeded`;
* scored+memory  - the same, with one scorer kept across all payments (mission
                   control), the clock moving 60 s per payment;
* scored+MPP     - the shared-memory scorer with `split_payment`: parts that
                   arrive stay locked in, only what failed is split again;
* lifecycle      - `htlc.lifecycle.PaymentLifecycle`, what `canal channeld`
                   runs (shared scorer, MPP, failed channel directions excluded
                   for the payment, our channels as exact first hops): each
                   `step` that launches shards counts as one try.

Each payment has `--attempts` tries (an MPP try counts once however many parts
it sends). The table shows the success rate, the mean tries of successful
payments, and the mean fee (ppm of the amount) they paid.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import describe  # noqa: E402

from htlc.failure import FailureCode  # noqa: E402
from htlc.graph import ChannelGraph, channel_direction, load_listchannels_json  # noqa: E402
from htlc.lifecycle import Finished, PaymentIntent, PaymentLifecycle  # noqa: E402
from htlc.pathfind import FirstHop, NoRouteError, Route, find_route, split_payment  # noqa: E402
from htlc.scoring import Scorer, ScoringParams  # noqa: E402

GRAPHS = Path(__file__).resolve().parents[2] / "shared" / "vectors" / "graph"
PATHS = {
    "2019": GRAPHS / "million-channels-2019-05-14" / "channels_5-14-19.json.xz",
    "2026-json": GRAPHS / "cln-gossmap-2026-02-03" / "channels-2026-02-03.json.xz",
}
AMOUNTS_SAT = [10_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_000_000]


class Network:
    """The hidden truth: a balance per channel side."""

    def __init__(self, graph: ChannelGraph, rng: random.Random) -> None:
        self.graph = graph
        self.balance: dict[tuple[int, int], int] = {}
        seen: set[int] = set()
        for p in graph:
            if p.short_channel_id in seen:
                continue
            seen.add(p.short_channel_id)
            cap = p.capacity_sat * 1000
            side0 = rng.randint(0, cap)
            self.balance[(p.short_channel_id, 0)] = side0
            self.balance[(p.short_channel_id, 1)] = cap - side0

    def local(self, node: bytes, locked: dict[tuple[int, int], int]) -> dict[int, int]:
        return {
            p.short_channel_id: self.balance[(p.short_channel_id, p.direction)]
            - locked.get((p.short_channel_id, p.direction), 0)
            for p in self.graph.outgoing(node)
        }

    def send(self, route: Route, locked: dict[tuple[int, int], int]) -> int | None:
        """None when every hop has the balance; else the index of the first hop that does not."""
        prev = route.source
        for k, hop in enumerate(route.hops):
            side = (hop.short_channel_id, channel_direction(prev, hop.node_id))
            if self.balance[side] - locked.get(side, 0) < hop.amount_msat:
                return k
            prev = hop.node_id
        return None

    def lock(self, route: Route, locked: dict[tuple[int, int], int]) -> None:
        prev = route.source
        for hop in route.hops:
            side = (hop.short_channel_id, channel_direction(prev, hop.node_id))
            locked[side] = locked.get(side, 0) + hop.amount_msat
            prev = hop.node_id


@dataclass
class Tally:
    ok: int = 0
    tries: int = 0
    fee_ppm: float = 0.0
    searches: int = 0
    search_s: float = 0.0
    rows: dict[int, tuple[int, int, int, float]] = field(default_factory=dict)


Strategy = Callable[[bytes, bytes, int, float], tuple[bool, int, int]]


def single_path(net: Network, scorer_for: Callable[[], Scorer], learn: bool, attempts: int, tally: Tally) -> Strategy:
    def pay(src: bytes, dst: bytes, amount: int, now: float) -> tuple[bool, int, int]:
        scorer = scorer_for()
        excluded: set[tuple[int, int]] = set()
        local = net.local(src, {})
        for attempt in range(1, attempts + 1):
            t0 = time.perf_counter()
            try:
                route = find_route(net.graph, src, dst, amount, scorer=scorer, excluded=excluded, now=now,
                                   local_liquidity_msat=local)  # fmt: skip
            except NoRouteError:
                return False, attempt, 0
            finally:
                tally.searches += 1
                tally.search_s += time.perf_counter() - t0
            k = net.send(route, {})
            if k is None:
                if learn:
                    scorer.payment_succeeded(route, now)
                return True, attempt, route.total_fee_msat
            prev = route.source if k == 0 else route.hops[k - 1].node_id
            if learn:
                scorer.payment_failed(route, k - 1 if k else None, FailureCode.TEMPORARY_CHANNEL_FAILURE, now)
            else:
                excluded.add((route.hops[k].short_channel_id, channel_direction(prev, route.hops[k].node_id)))
            now += 1
        return False, attempts, 0

    return pay


def multi_path(net: Network, scorer: Scorer, attempts: int, tally: Tally) -> Strategy:
    def pay(src: bytes, dst: bytes, amount: int, now: float) -> tuple[bool, int, int]:
        locked: dict[tuple[int, int], int] = {}
        remaining, fees = amount, 0
        for attempt in range(1, attempts + 1):
            t0 = time.perf_counter()
            try:
                parts = split_payment(net.graph, src, dst, remaining, scorer=scorer, now=now,
                                      local_liquidity_msat=net.local(src, locked))  # fmt: skip
            except NoRouteError:
                return False, attempt, 0
            finally:
                tally.searches += 1
                tally.search_s += time.perf_counter() - t0
            for route in parts:
                k = net.send(route, locked)
                if k is None:
                    net.lock(route, locked)  # the part is held at the payee
                    scorer.payment_succeeded(route, now)
                    remaining -= route.amount_msat
                    fees += route.total_fee_msat
                else:
                    scorer.payment_failed(route, k - 1 if k else None, FailureCode.TEMPORARY_CHANNEL_FAILURE, now)
            if remaining == 0:
                return True, attempt, fees
            now += 1
        return False, attempts, 0

    return pay


def lifecycle(net: Network, scorer: Scorer, attempts: int, tally: Tally) -> Strategy:
    def pay(src: bytes, dst: bytes, amount: int, now: float) -> tuple[bool, int, int]:
        intent = PaymentIntent(destination=dst, amount_msat=amount, payment_hash=bytes(32), final_cltv_delta=18,
                               payment_secret=bytes(32), timeout_s=attempts * 10)
        lc = PaymentLifecycle(intent, src, net.graph, scorer, now)
        locked: dict[tuple[int, int], int] = {}
        held: list[int] = []  # shards the payee holds until the parts add up
        fees = tries = 0
        while True:
            first = [FirstHop(p.target, p.short_channel_id, p.capacity_sat * 1000, bal)
                     for p, bal in ((p, net.balance[(p.short_channel_id, p.direction)]
                                     - locked.get((p.short_channel_id, p.direction), 0))
                                    for p in net.graph.outgoing(src) if not p.disabled)]
            t0 = time.perf_counter()
            decision = lc.step(now, 0, first)
            tally.searches += 1
            tally.search_s += time.perf_counter() - t0
            if isinstance(decision, Finished):
                return decision.preimage is not None, max(tries, 1), fees
            if decision is None or tries == attempts:
                return False, max(tries, 1), 0
            tries += 1
            for shard in decision:
                k = net.send(shard.route, locked)
                if k is None:
                    net.lock(shard.route, locked)
                    held.append(shard.shard_id)
                    fees += shard.route.total_fee_msat
                else:  # hop k's sender (0: us) could not pass it on
                    lc.shard_failed(shard.shard_id, k, FailureCode.TEMPORARY_CHANNEL_FAILURE, now)
            if lc.in_flight_msat == amount:
                for shard_id in held:
                    lc.shard_succeeded(shard_id, bytes(32), now)
            now += 1

    return pay


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graph", default="2019", choices=sorted(PATHS))
    ap.add_argument("--payments", type=int, default=100, help="payments per amount")
    ap.add_argument("--attempts", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    print(f"machine: {describe()}")
    t0 = time.perf_counter()
    graph = load_listchannels_json(PATHS[args.graph])
    print(
        f"graph {args.graph}: {graph.node_count:,} nodes, {graph.channel_count:,} channels "
        f"(loaded in {time.perf_counter() - t0:.1f} s); {args.payments} payments per amount, "
        f"{args.attempts} tries each, seed {args.seed}"
    )
    rng = random.Random(args.seed)
    net = Network(graph, rng)
    payers = sorted({p.source for p in graph if not p.disabled})
    payees = sorted({p.target for p in graph if not p.disabled})
    plans: dict[int, list[tuple[bytes, bytes]]] = {}
    for amount_sat in AMOUNTS_SAT:
        pairs: list[tuple[bytes, bytes]] = []
        while len(pairs) < args.payments:
            s, t = rng.choice(payers), rng.choice(payees)
            if s != t:
                pairs.append((s, t))
        plans[amount_sat] = pairs

    fees_only = Scorer(ScoringParams.fees_only())
    shared = Scorer()
    shared_mpp = Scorer()
    shared_lc = Scorer()
    tallies = {name: Tally() for name in ("cheapest fee", "scored", "scored+memory", "scored+MPP", "lifecycle")}
    strategies: dict[str, Strategy] = {
        "cheapest fee": single_path(net, lambda: fees_only, False, args.attempts, tallies["cheapest fee"]),
        "scored": single_path(net, Scorer, True, args.attempts, tallies["scored"]),
        "scored+memory": single_path(net, lambda: shared, True, args.attempts, tallies["scored+memory"]),
        "scored+MPP": multi_path(net, shared_mpp, args.attempts, tallies["scored+MPP"]),
        "lifecycle": lifecycle(net, shared_lc, args.attempts, tallies["lifecycle"]),
    }
    now0 = 1_700_000_000.0
    for name, pay in strategies.items():
        tally = tallies[name]
        now = now0
        for amount_sat in AMOUNTS_SAT:
            ok = first = tries = 0
            fee_ppm = 0.0
            for src, dst in plans[amount_sat]:
                done, used, fee = pay(src, dst, amount_sat * 1000, now)
                now += 60
                if done:
                    ok += 1
                    first += used == 1
                    tries += used
                    fee_ppm += fee * 1e6 / (amount_sat * 1000)
            tally.rows[amount_sat] = (ok, first, tries, fee_ppm)

    names = list(strategies)
    w = 30
    print()
    header = f"{'amount (sat)':>12} | " + " | ".join(f"{n:^{w}}" for n in names)
    print(header)
    print(f"{'':>12} | " + " | ".join(f"{'success 1st try  tries  fee ppm':^{w}}" for _ in names))
    print("-" * len(header))
    for amount_sat in AMOUNTS_SAT:
        cells = []
        for n in names:
            ok, first, tries, fee_ppm = tallies[n].rows[amount_sat]
            cells.append(
                f"{100 * ok / args.payments:5.1f}%  {100 * first / args.payments:5.1f}%  "
                f"{tries / ok if ok else 0:5.2f}  {fee_ppm / ok if ok else 0:7.0f}"
            )
        print(f"{amount_sat:>12,} | " + " | ".join(f"{c:^{w}}" for c in cells))
    print("-" * len(header))
    totals = []
    for n in names:
        tally = tallies[n]
        ok = sum(r[0] for r in tally.rows.values())
        first = sum(r[1] for r in tally.rows.values())
        n_pay = args.payments * len(AMOUNTS_SAT)
        totals.append(
            f"{100 * ok / n_pay:5.1f}%  {100 * first / n_pay:5.1f}%  {1000 * tally.search_s / max(tally.searches, 1):5.1f} ms/search"
        )
    print(f"{'all':>12} | " + " | ".join(f"{c:^{w}}" for c in totals))
    print(
        "\nsuccess: paid within the tries; 1st try: paid by the first route; tries and fee ppm: means over "
        "the paid ones; ms/search: mean time of one find_route (one split_payment for MPP, one step for the "
        "lifecycle)"
    )


if __name__ == "__main__":
    main()
