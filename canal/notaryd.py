"""`canal notaryd`: run one notary of the peg committee (see relay.notaryd)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import trio

from base_chain.logs import setup_logging
from relay.committee import CommitteeError
from relay.notaryd import NotaryDaemon

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="canal notaryd",
                                 description="Run one notary of the alpha <-> beta peg committee.")
    ap.add_argument("--datadir", type=Path, required=True, help="the notary's data dir (its key, state, TLS, macaroons)")
    ap.add_argument("--committee", type=Path, required=True, help="the committee file from the operators (canal peg setup)")
    ap.add_argument("--alpha-datadir", type=Path, required=True, help="the alpha chain node's data dir")
    ap.add_argument("--beta-datadir", type=Path, required=True, help="the beta chain node's data dir")
    ap.add_argument("--spv", choices=["alpha", "beta"],
                    help="follow this chain by its headers only (deposits proven by merkle proofs) instead of "
                         "trusting its node's answers")
    ap.add_argument("--rpcport", type=int, default=0, help="gRPC port on 127.0.0.1 (default: any free port)")
    ap.add_argument("--poll-interval", type=float, default=1.0, metavar="SECONDS",
                    help="how often the SPV view asks its node for new headers (default 1)")
    ap.add_argument("--debug", action="store_true")
    ns = ap.parse_args(argv)
    setup_logging(ns.datadir, "canal.notaryd", ns.debug)
    daemon = NotaryDaemon(ns.datadir, ns.committee, {"alpha": ns.alpha_datadir, "beta": ns.beta_datadir}, ns.spv,
                          rpc_port=ns.rpcport, poll_interval_s=ns.poll_interval)
    try:
        trio.run(daemon.run)
    except (OSError, CommitteeError, ValueError) as e:
        logging.getLogger("canal.notaryd").error("cannot run: %s", e)
        return 1
    return 0
