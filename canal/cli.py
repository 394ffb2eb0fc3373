"""The `canal` command: one entry point for the daemons, the client CLIs and the demo."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

__all__ = ["main"]

USAGE = """usage: canal COMMAND [ARGS]

Canal: payment channels, multi-hop HTLCs and cross-chain swaps on a Bitcoin-compatible chain.

commands:
  demo      run the end-to-end demonstration in a temporary directory
  chaind    run a chain node (like bitcoind)
  chain     talk to a chain node (like bitcoin-cli)
  channeld  run a Lightning node (like lnd)
  ln        talk to a Lightning node (like lncli)
  swap      cross-chain atomic swaps, command for command like decred's atomicswap
  relayd    run an SPV header relay of one chain
  swapd     run a swap daemon: automatic cross-chain atomic swaps with another swapd
  swapcli   talk to a swap daemon (initiate, accept, list, status)
  relay     query an SPV relay (status, getheader, verifytxproof)
  bridged   run a cross-chain Lightning bridge (pay beta invoices with alpha)
  bridge    talk to a bridge (quote, list, getinfo)
  submarine submarine swaps on one chain, the provider's side (Lightning <-> on-chain HTLC)
  notaryd   run one notary of the alpha <-> beta peg committee
  peg       peg coins between alpha and beta (setup, depositaddress, claim, status)

Run `canal COMMAND --help` for a command's options.
"""


def _demo(argv: list[str]) -> int:
    import argparse

    from .demo import run_demo

    ap = argparse.ArgumentParser(prog="canal demo", description="Run the demonstration.")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--keep", action="store_true", help="leave the network running and print commands to explore it")
    ns = ap.parse_args(argv)
    return run_demo(as_json=ns.json, keep=ns.keep)


def _lazy(module: str) -> Callable[[list[str]], int]:
    """A command whose module is imported only when it runs (keeps `canal` quick to start)."""

    def run(argv: list[str]) -> int:
        main_fn: Callable[[list[str]], int] = getattr(importlib.import_module(module), "main")
        return main_fn(argv)

    return run


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "demo": _demo,
    "chaind": _lazy("canal.chaind"),
    "chain": _lazy("canal.chain_cli"),
    "channeld": _lazy("canal.channeld"),
    "ln": _lazy("canal.ln_cli"),
    "swap": _lazy("canal.swap_cli"),
    "relayd": _lazy("relay.relayd"),
    "relay": _lazy("canal.relay_cli"),
    "bridged": _lazy("relay.bridged"),
    "bridge": _lazy("canal.bridge_cli"),
    "submarine": _lazy("canal.submarine_cli"),
    "swapd": _lazy("relay.swapd"),
    "swapcli": _lazy("canal.swapd_cli"),
    "notaryd": _lazy("canal.notaryd"),
    "peg": _lazy("canal.peg_cli"),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0 if args else 2
    handler = COMMANDS.get(args[0])
    if handler is None:
        print(f"canal: unknown command '{args[0]}'\n\n{USAGE}", end="", file=sys.stderr)
        return 2
    return handler(args[1:])


if __name__ == "__main__":
    sys.exit(main())
