"""`canal chaind`: run a chain node (bitcoind's role)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import trio

from base_chain.daemon import ChainDaemon
from base_chain.logs import setup_logging
from base_chain.params import chain_names, get_params

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="canal chaind", description="Run a Canal chain node.")
    ap.add_argument("--chain", choices=chain_names(), default="regtest")
    ap.add_argument("--datadir", type=Path, required=True)
    ap.add_argument("--p2pport", type=int, help="P2P port on 127.0.0.1 (0: any free port; default: the chain's)")
    ap.add_argument("--rpcport", type=int, help="gRPC port on 127.0.0.1 (0: any free port; default: the chain's)")
    ap.add_argument("--connect", action="append", default=[], metavar="HOST:PORT",
                    help="keep a connection to this peer (repeatable)")
    ap.add_argument("--debug", action="store_true")
    ns = ap.parse_args(argv)
    setup_logging(ns.datadir, "canal.chaind", ns.debug)
    daemon = ChainDaemon(get_params(ns.chain), ns.datadir, ns.p2pport, ns.rpcport, ns.connect)
    try:
        trio.run(daemon.run)
    except OSError as e:
        logging.getLogger("canal.chaind").error("cannot start: %s", e)
        return 1
    except RuntimeError as e:
        logging.getLogger("canal.chaind").error("%s", e)
        return 1
    return 0
