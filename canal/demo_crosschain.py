"""`canal demo`, parts 5 to 7: the cross-chain layer with its daemons — an automatic swap, a peg, a bridge payment.

Each part is a step module shared with the tests and benchmarks
(:mod:`canal.demo_swapd`, :mod:`canal.demo_peg`, :mod:`canal.demo_bridge`);
this module narrates them and puts their results in the demo's summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from .procs import ChainProcess

__all__ = ["crosschain_demo"]

COIN = 100_000_000


def _coins(sat: int) -> str:
    return f"{sat / COIN:.8f}"


def crosschain_demo(n: Any, console: Console, root: Path, alpha: ChainProcess, beta: ChainProcess,
                    procs: list[Any]) -> dict[str, Any]:
    """Run the three cross-chain parts on running alpha and beta nodes; what each one did."""
    results: dict[str, Any] = {}

    console.rule("[bold]5. An automatic atomic swap: two swap daemons (canal swapd), either may crash and resume")
    from .demo_swapd import swapd_demo

    swap = n.step("alice's swapd offers 1 alpha for 2 beta; bob's accepts; contracts, redeems, secret revealed",
                  lambda: swapd_demo(alpha, beta, root / "swapd"))
    if swap is not None:
        results["swapd"] = swap
        console.print(f"  alice: [green]{swap['alice_state']}[/], bob: [green]{swap['bob_state']}[/]; "
                      f"redeems {swap['alice_redeem_txid'][:16]}… (beta), {swap['bob_redeem_txid'][:16]}… (alpha); "
                      f"blocks mined {swap['blocks']}")

    console.rule("[bold]6. A peg through a 2-of-3 notary committee (canal notaryd), with SPV proofs")
    from .demo_peg import peg_demo

    peg = n.step("3 notaries (one follows beta by SPV headers only): peg 1.5 alpha in to beta, 0.7 beta out",
                 lambda: peg_demo(root / "peg", alpha, beta))
    if peg is not None:
        results["peg"] = peg
        for leg in (peg["peg_in"], peg["peg_out"]):
            console.print(f"  {leg['from']} -> {leg['to']}: deposit {_coins(leg['amount_sat'])}, "
                          f"{leg['confirmations']} blocks deep, released {_coins(leg['received_sat'])} "
                          f"(fee {leg['fee_sat']} sat) signed by {', '.join(map(str, leg['signers']))}")

    console.rule("[bold]7. A cross-chain Lightning payment: alpha channel -> bridge -> beta channel, one hash")
    from .demo_bridge import bridge_demo

    bridge = n.step("payer on alpha pays a beta invoice through the bridge (hold invoice on alpha, same hash)",
                    lambda: bridge_demo(root / "bridge", alpha, beta, procs))
    if bridge is not None:
        results["bridge"] = bridge
        console.print(f"  beta invoice {bridge['beta_amount_msat'] // 1000} sat paid with "
                      f"{bridge['alpha_amount_msat'] // 1000} alpha sat (bridge fee {bridge['bridge_fee_msat']} msat); "
                      f"same hash on both chains: {bridge['same_hash_on_both_chains']}; "
                      f"invoice {bridge['payee_invoice_state']}")
    return results
