"""`canal demo`, part 2 onwards: real daemons on loopback in a temporary directory, narrated."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from proto import chain_pb2 as pb

from .procs import BridgeProcess, ChainProcess, LightningProcess, wait_for

__all__ = ["network_demo"]

COIN = 100_000_000


class Narrator:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.rows: list[tuple[str, str, float]] = []
        self.ok = True

    def step(self, text: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        with self.console.status(text):
            try:
                result = fn()
            except Exception as e:  # a failed step is reported, the demo goes on to clean up
                self.ok = False
                self.rows.append((text, f"FAILED: {e}", time.perf_counter() - t0))
                self.console.print(f"[red]✗[/] {text}: {e}")
                return None
        dt = time.perf_counter() - t0
        self.rows.append((text, "ok", dt))
        self.console.print(f"[green]✓[/] {text} [dim]({dt:.1f} s)[/]")
        return result


def _coins(sat: int) -> str:
    return f"{sat / COIN:.8f}"


def network_demo(console: Console, keep: bool = False) -> tuple[bool, dict[str, Any]]:
    console.rule("[bold]2. Chain nodes: two independent chains on loopback")
    root = Path(tempfile.mkdtemp(prefix="canal-demo-"))
    procs: list[Any] = []
    n = Narrator(console)
    balances: dict[str, str] = {}

    def start_chain(name: str, chain: str, connect: list[str] | None = None) -> ChainProcess:
        p = ChainProcess(root / name, chain, connect).start()
        procs.append(p)
        return p

    try:
        a1 = n.step("start alpha node 1 (canal chaind --chain alpha)", lambda: start_chain("alpha-1", "alpha"))
        a2 = n.step("start alpha node 2, connected to node 1", lambda: start_chain("alpha-2", "alpha", [a1.p2p_addr]))
        b1 = n.step("start beta node 1 (another chain), told to connect to alpha", lambda: start_chain(
            "beta-1", "beta", [a1.p2p_addr]))
        if not (a1 and a2 and b1):
            return False, {"steps": n.rows}
        n.step("mine 101 alpha blocks on node 1 (coinbase maturity is 100)", lambda: a1.generate(101))
        n.step("node 2 syncs them over P2P (headers first)", lambda: wait_for(
            lambda: a2.height() == 101 and a2.best() == a1.best(), 60, "sync"))
        dest = a2.rpc.GetNewAddress(pb.GetNewAddressRequest()).address
        sent = n.step(f"node 1 pays 12.5 coins to node 2's wallet ({dest[:14]}…)", lambda: a1.rpc.SendToAddress(
            pb.SendToAddressRequest(address=dest, amount_sat=int(12.5 * COIN), fee_rate_sat_vb=2)))
        n.step("the payment is relayed to node 2's mempool", lambda: wait_for(
            lambda: sent is not None and sent.txid in a2.rpc.GetRawMempool(pb.GetRawMempoolRequest()).txids, 30, "relay"))
        n.step("mine a block; node 2 sees the payment confirmed", lambda: (a1.generate(1), wait_for(
            lambda: a2.rpc.GetBalance(pb.GetBalanceRequest()).confirmed_sat == int(12.5 * COIN), 30, "balance")))
        n.step("beta refuses the alpha peer (wrong network magic) and alpha addresses", lambda: (
            wait_for(lambda: "wrong network magic" in (b1.stderr() + a1.stderr()), 20, "refusal"),
            _expect_refusal(lambda: b1.generate(1, dest))))
        n.step("mine 101 beta blocks", lambda: b1.generate(101))
        for name, p in (("alpha-1", a1), ("alpha-2", a2), ("beta-1", b1)):
            bal = p.rpc.GetBalance(pb.GetBalanceRequest())
            balances[name] = _coins(bal.confirmed_sat)

        console.rule("[bold]3. An atomic swap between alpha and beta (canal swap, like decred's atomicswap)")
        from .demo_swap import swap_demo

        swap_demo(n, root, a1, a2, b1)

        console.rule("[bold]4. Lightning nodes on alpha: lnd's API, a two-hop payment, a cheater punished")
        from .demo_lightning import lightning_demo

        lightning_demo(n, console, root, a1, procs, balances)

        from .demo_crosschain import crosschain_demo

        crosschain = crosschain_demo(n, console, root, a1, b1, procs)
        for name, p in (("alpha-1", a1), ("beta-1", b1)):
            balances[f"{name} (end)"] = _coins(p.rpc.GetBalance(pb.GetBalanceRequest()).confirmed_sat)

        times = Table(title="steps and times")
        times.add_column("step")
        times.add_column("result")
        times.add_column("s", justify="right")
        for text, result, dt in n.rows:
            times.add_row(text, result if result == "ok" else f"[red]{result}[/]", f"{dt:.1f}")
        console.print(times)

        table = Table(title="balances (coins)")
        table.add_column("wallet")
        table.add_column("confirmed", justify="right")
        for k, v in balances.items():
            table.add_row(k, v)
        console.print(table)
        if keep:
            console.print(f"[bold]The network keeps running in {root}. Explore it:[/]")
            for name, p in (("alpha-1", a1), ("alpha-2", a2), ("beta-1", b1)):
                console.print(f"  canal chain --datadir {p.datadir} getblockchaininfo")
            for p in procs:
                if isinstance(p, LightningProcess):
                    console.print(f"  canal ln --datadir {p.datadir} getinfo")
                elif isinstance(p, BridgeProcess):
                    console.print(f"  canal bridge --datadir {p.datadir} list")
            console.print(f"  canal peg --pegdir {root / 'peg' / 'peg'} status   (the committee and its reserves)")
            console.print(f"Stop everything with: pkill -f {root}")
        return n.ok, {"steps": [{"step": s, "result": r, "seconds": round(t, 2)} for s, r, t in n.rows],
                      "balances": balances, "crosschain": crosschain, "datadir": str(root)}
    finally:
        if not keep:
            for p in reversed(procs):
                p.stop()
            shutil.rmtree(root, ignore_errors=True)


def _expect_refusal(call: Callable[[], Any]) -> None:
    import grpc

    try:
        call()
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.INVALID_ARGUMENT:
            return
        raise
    raise AssertionError("the beta node accepted an alpha address")


