"""`canal demo` step: a 2-of-3 notary committee pegs coins from alpha to beta and back.

:func:`peg_demo` is given running alpha and beta chain processes and a directory.
It starts three ``canal notaryd`` (one follows beta by SPV headers only, one
alpha, one trusts both nodes), sets the committee up with ``canal peg``'s
coordinator, funds its reserves from the nodes' wallets, then makes a peg-in
(alpha -> beta) and a peg-out (beta -> alpha), each deposit k blocks deep, and
checks that the user received exactly the amount less the published fee. The
notaries are stopped before it returns. Also used by ``bench/peg.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from proto import chain_pb2 as pb
from relay.peg import PegCoordinator, setup_peg

from .procs import ChainProcess, NotaryProcess

__all__ = ["peg_demo", "peg_once", "running_committee"]

DEMO_CONFIRMATIONS = {"alpha": 6, "beta": 24}
DEMO_FEES = {"alpha": 2_000, "beta": 1_000}
COIN = 100_000_000


def _ensure_funds(node: ChainProcess, need_sat: int) -> None:
    balance = node.rpc.GetBalance(pb.GetBalanceRequest()).confirmed_sat
    if balance < need_sat:
        node.generate(101)


@contextmanager
def running_committee(
    root: Path,
    alpha: ChainProcess,
    beta: ChainProcess,
    confirmations: Mapping[str, int],
    fees: Mapping[str, int] = DEMO_FEES,
    reserve_sat: int = 20 * COIN,
) -> Iterator[PegCoordinator]:
    """Three notaryds (2-of-3) with funded reserves on both chains; yields the coordinator, stops them after."""
    notary_dirs = [root / f"notary{i}" for i in range(3)]
    pegdir = root / "peg"
    setup_peg(pegdir, notary_dirs, 2, {"alpha": alpha.datadir, "beta": beta.datadir}, confirmations, fees)
    notaries = [NotaryProcess(d, pegdir / "committee.json", alpha, beta, spv)
                for d, spv in zip(notary_dirs, ["beta", "alpha", None])]
    try:
        for n in notaries:
            n.start()
        with PegCoordinator(pegdir) as coordinator:
            for node in (alpha, beta):
                _ensure_funds(node, reserve_sat + COIN)
                coordinator.fund_reserve(node.chain, reserve_sat)
                node.generate(1)
            yield coordinator
    finally:
        for n in notaries:
            n.stop()


def peg_once(
    coordinator: PegCoordinator, source: ChainProcess, destination: ChainProcess, amount_sat: int
) -> dict[str, Any]:
    """Deposit on ``source``, mine it k deep, claim, mine the release: what happened and how long it took."""
    k = coordinator.config.policy.min_confirmations[source.chain]
    user = str(destination.rpc.GetNewAddress(pb.GetNewAddressRequest()).address)
    t0 = time.perf_counter()
    address = coordinator.deposit_address(destination.chain, user)
    txid = source.rpc.SendToAddress(pb.SendToAddressRequest(address=address, amount_sat=amount_sat)).txid
    tx = source.rpc.GetRawTransaction(pb.GetRawTransactionRequest(txid=txid, verbose=True))
    vout = next(o.n for o in tx.decoded.vout if o.script_pub_key.address == address)
    source.generate(k)
    t_claim = time.perf_counter()
    result = coordinator.claim(source.chain, bytes.fromhex(txid)[::-1], vout)
    t_claimed = time.perf_counter()
    if result.txid is None:
        raise RuntimeError(f"peg claim failed: {result.to_dict(coordinator.committee_of(result.request.epoch))}")
    destination.generate(1)
    t1 = time.perf_counter()
    received = sum(u.amount_sat for u in destination.rpc.ListUnspent(
        pb.ListUnspentRequest(minconf=1, addresses=[user])).unspent)
    fee = coordinator.config.policy.release_fee_sat[destination.chain]
    if received != amount_sat - fee:
        raise RuntimeError(f"received {received} sat, expected {amount_sat - fee}")
    info = result.to_dict(coordinator.committee_of(result.request.epoch))
    return {
        "from": source.chain, "to": destination.chain, "amount_sat": amount_sat, "fee_sat": fee,
        "received_sat": received, "deposit_txid": txid, "release_txid": result.txid,
        "signers": info["signers"], "confirmations": k,
        "source_blocks": k, "destination_blocks": 1,
        "claim_seconds": round(t_claimed - t_claim, 3), "total_seconds": round(t1 - t0, 3),
    }


def peg_demo(root: Path, alpha: ChainProcess, beta: ChainProcess) -> dict[str, Any]:
    """Start a 2-of-3 committee, peg 1.5 alpha in to beta and 0.7 beta out to alpha; the results."""
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with running_committee(root, alpha, beta, DEMO_CONFIRMATIONS) as coordinator:
        committee = coordinator.committee
        setup_s = time.perf_counter() - t0
        peg_in = peg_once(coordinator, alpha, beta, 150_000_000)
        peg_out = peg_once(coordinator, beta, alpha, 70_000_000)
        status = coordinator.status()
    return {
        "committee": {"epoch": committee.epoch, "threshold": committee.threshold, "n": len(committee.pubkeys),
                      "reserve_addresses": {c: committee.reserve_address(c) for c in ("alpha", "beta")}},
        "setup_seconds": round(setup_s, 3),
        "peg_in": peg_in,
        "peg_out": peg_out,
        "reserves_sat": {c: status["chains"][c]["reserve_sat"] for c in ("alpha", "beta")},
    }
