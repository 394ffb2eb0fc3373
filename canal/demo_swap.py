"""`canal demo`: an atomic swap between alpha and beta with `canal swap` (decred atomicswap's commands)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any

from proto import chain_pb2 as pb

from .procs import ChainProcess

__all__ = ["swap_demo"]


def _swap(node: ChainProcess, swapdir: Path, *args: str) -> str:
    from .cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        rc = main(["swap", "--chain", node.chain, "--chain-datadir", str(node.datadir), "--swapdir", str(swapdir),
                   *args])
    if rc != 0:
        raise RuntimeError(f"canal swap {args[0]} failed: {out.getvalue()[-500:]}")
    return out.getvalue()


def _field(out: str, label: str) -> str:
    m = re.search(rf"^{re.escape(label)}\s*(\S+)", out, re.M)
    if not m:
        raise RuntimeError(f"{label} missing in swap output")
    return m.group(1)


def _block(out: str, title: str) -> tuple[str, str]:
    m = re.search(rf"^{re.escape(title)} \((\w+)\):\n([0-9a-f]+)$", out, re.M)
    if not m:
        raise RuntimeError(f"{title} missing in swap output")
    return m.group(1), m.group(2)


def swap_demo(n: Any, root: Path, alice_alpha: ChainProcess, bob_alpha: ChainProcess, beta: ChainProcess) -> None:
    """Alice sells 1.5 alpha for Bob's 3 beta; neither can cheat the other."""
    alice_dir, bob_dir = root / "alice-swap", root / "bob-swap"
    state: dict[str, str] = {}

    def keys() -> None:
        state["bob_alpha"] = _swap(bob_alpha, bob_dir, "getnewaddress").strip()
        state["alice_beta"] = _swap(beta, alice_dir, "getnewaddress").strip()

    def initiate() -> None:
        out = _swap(alice_alpha, alice_dir, "initiate", state["bob_alpha"], "1.5", "--yes")
        state["secret"], state["hash"] = _field(out, "Secret:"), _field(out, "Secret hash:")
        _, state["contract_a"] = _block(out, "Contract")
        _, state["tx_a"] = _block(out, "Contract transaction")
        alice_alpha.generate(1)

    def participate() -> None:
        _swap(bob_alpha, bob_dir, "auditcontract", state["contract_a"], state["tx_a"])
        out = _swap(beta, bob_dir, "participate", state["alice_beta"], "3", state["hash"], "--yes")
        _, state["contract_b"] = _block(out, "Contract")
        _, state["tx_b"] = _block(out, "Contract transaction")
        beta.generate(1)

    def alice_redeems() -> None:
        _swap(beta, alice_dir, "auditcontract", state["contract_b"], state["tx_b"])
        out = _swap(beta, alice_dir, "redeem", state["contract_b"], state["tx_b"], state["secret"], "--yes")
        state["redeem_b"] = re.search(r"Published redeem transaction \((\w+)\)", out).group(1)  # type: ignore[union-attr]
        beta.generate(1)

    def bob_redeems() -> None:
        raw = beta.rpc.GetRawTransaction(pb.GetRawTransactionRequest(txid=state["redeem_b"])).hex
        out = _swap(beta, bob_dir, "extractsecret", raw, state["hash"])
        secret = _field(out, "Secret:")
        if secret != state["secret"]:
            raise RuntimeError("extracted the wrong secret")
        _swap(bob_alpha, bob_dir, "redeem", state["contract_a"], state["tx_a"], secret, "--yes")
        bob_alpha.generate(1)

    n.step("swap keys: bob gets an alpha address, alice a beta address (canal swap getnewaddress)", keys)
    n.step("alice initiates on alpha: 1.5 coins locked to hash(secret) for 48 h", initiate)
    n.step("bob audits alice's contract and participates on beta: 3 coins, same hash, 24 h", participate)
    n.step("alice redeems on beta, revealing the secret on chain", alice_redeems)
    n.step("bob extracts the secret from beta and redeems on alpha", bob_redeems)
