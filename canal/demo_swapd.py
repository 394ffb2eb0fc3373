"""A demo step: two swap daemons (`canal swapd`) run one automatic atomic swap between alpha and beta.

:func:`swapd_demo` starts Alice's and Bob's swapd on the given chain nodes, has Alice
offer alpha for Bob's beta (Bob's daemon accepts within its policy), mines blocks
whenever a chain's mempool holds a transaction, and returns what happened.
The helpers (:func:`mine_while_pending`, :func:`wait_swap`) are shared with the
tests and ``bench/swap.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from base_chain.address import encode_segwit_address
from base_chain.crypto import PrivateKey
from base_chain.hashes import hash160
from base_chain.params import get_params
from proto import chain_pb2 as pb
from proto import swap_pb2 as spb

from .procs import ChainProcess, SwapProcess

__all__ = ["swapd_demo", "burn_address", "mine_while_pending", "wait_swap", "start_swapd", "SWAP_TERMINAL"]

SWAP_TERMINAL = frozenset({"redeemed", "refunded", "aborted", "failed", "rejected"})
TEST_POLICY = ["--safety-margin", "3600", "--redeem-window", "1200"]
"""Short locks for demos and tests: 4 h initiator / 2 h participant (24 alpha blocks, 48 beta blocks)."""
INITIATOR_LOCK_S = 4 * 3600
PARTICIPANT_LOCK_S = 2 * 3600


def burn_address(chain: str) -> str:
    """An address nobody in the demo owns (block rewards go there, so wallet balances show only the swap)."""
    return encode_segwit_address(get_params(chain).hrp, 0, hash160(PrivateKey.generate().public_key().to_bytes()))


def start_swapd(datadir: Path, alpha: ChainProcess, beta: ChainProcess, min_conf: str = "alpha=1,beta=1",
                auto_accept: str = "alpha=10000000000,beta=10000000000", extra: Sequence[str] = ()) -> SwapProcess:
    proc = SwapProcess(datadir, alpha, beta, ["--min-conf", min_conf, "--auto-accept-max", auto_accept,
                                              *TEST_POLICY, *extra])
    proc.start()
    return proc


def mine_while_pending(nodes: Sequence[ChainProcess], burn: dict[str, str], done: Callable[[], bool],
                       timeout: float = 120.0, counts: dict[str, int] | None = None, pause: float = 0.2) -> None:
    """Until `done()`: mine one block on any node whose mempool is not empty (to `burn[chain]`)."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError("the swap did not finish in time")
        for node in nodes:
            if node.alive() and node.rpc.GetRawMempool(pb.GetRawMempoolRequest()).txids:
                node.generate(1, burn[node.chain])
                if counts is not None:
                    counts[node.chain] = counts.get(node.chain, 0) + 1
        time.sleep(pause)


def swap_state(proc: SwapProcess, swap_id: str) -> str:
    if not proc.alive():
        return "down"
    try:
        return str(proc.rpc.SwapInfo(spb.SwapInfoRequest(swap_id=swap_id), timeout=10).state)
    except Exception:  # noqa: BLE001 - a daemon restarting or not knowing the swap yet
        return "unknown"


def wait_swap(nodes: Sequence[ChainProcess], burn: dict[str, str], procs: Sequence[SwapProcess], swap_id: str,
              timeout: float = 120.0, counts: dict[str, int] | None = None) -> list[str]:
    """Mine as needed until the swap is finished on every daemon in `procs`; their final states."""
    mine_while_pending(nodes, burn, lambda: all(swap_state(p, swap_id) in SWAP_TERMINAL for p in procs),
                       timeout, counts)
    return [swap_state(p, swap_id) for p in procs]


def _balance(node: ChainProcess) -> int:
    return int(node.rpc.GetBalance(pb.GetBalanceRequest(minconf=1)).confirmed_sat)


def swapd_demo(alpha: ChainProcess, beta: ChainProcess, workdir: Path, send_alpha_sat: int = 100_000_000,
               receive_beta_sat: int = 200_000_000, min_conf: str = "alpha=1,beta=1") -> dict[str, Any]:
    """Run one automatic swap (Alice: alpha -> Bob, Bob: beta -> Alice) with two swapds on these nodes.

    Both nodes' wallets must hold enough confirmed coins (both parties use the same nodes here,
    so balances do not show the swap; the result has the contracts' and redeems' txids).
    """
    burn = {"alpha": burn_address("alpha"), "beta": burn_address("beta")}
    alice = start_swapd(workdir / "alice-swapd", alpha, beta, min_conf)
    bob = start_swapd(workdir / "bob-swapd", alpha, beta, min_conf)
    counts: dict[str, int] = {}
    try:
        t0 = time.monotonic()
        status = alice.rpc.InitiateSwap(spb.InitiateSwapRequest(
            peer=bob.peer_addr, send_chain="alpha", send_amount_sat=send_alpha_sat, receive_chain="beta",
            receive_amount_sat=receive_beta_sat, initiator_lock_s=INITIATOR_LOCK_S,
            participant_lock_s=PARTICIPANT_LOCK_S), timeout=60)
        states = wait_swap([alpha, beta], burn, [alice, bob], status.swap_id, counts=counts)
        elapsed = time.monotonic() - t0
        a = alice.rpc.SwapInfo(spb.SwapInfoRequest(swap_id=status.swap_id))
        b = bob.rpc.SwapInfo(spb.SwapInfoRequest(swap_id=status.swap_id))
        return {
            "swap_id": status.swap_id, "alice_state": states[0], "bob_state": states[1],
            "seconds": round(elapsed, 2), "blocks": counts,
            "alpha_sent_sat": send_alpha_sat, "beta_sent_sat": receive_beta_sat,
            "alice_contract_txid": a.our_contract.txid, "bob_contract_txid": b.our_contract.txid,
            "alice_redeem_txid": a.redeem_txid, "bob_redeem_txid": b.redeem_txid,
        }
    finally:
        alice.stop()
        bob.stop()
