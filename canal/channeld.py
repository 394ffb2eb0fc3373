"""`canal channeld`: run a Lightning node (lnd's role) against a `canal chaind`."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import trio

from base_chain.params import chain_names, get_params
from base_chain.rpc.client import read_rpc_endpoint

from base_chain.logs import setup_logging

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    from htlc.node import PaymentNode

    ap = argparse.ArgumentParser(prog="canal channeld", description="Run a Canal Lightning node.")
    ap.add_argument("--chain", choices=chain_names(), default="regtest")
    ap.add_argument("--datadir", type=Path, required=True)
    ap.add_argument("--chain-datadir", type=Path, required=True,
                    help="the chain node's data dir (its tls.cert and admin.macaroon; its port if --chain-rpc is not given)")
    ap.add_argument("--chain-rpc", metavar="HOST:PORT", help="the chain node's gRPC address")
    ap.add_argument("--listen", type=int, default=0, help="peer port on 127.0.0.1 (0: any free port)")
    ap.add_argument("--rpcport", type=int, default=0, help="gRPC port on 127.0.0.1 (0: any free port)")
    ap.add_argument("--alias", default="")
    ap.add_argument("--restore-seed", metavar="HEX",
                    help="first start only: restore the node (wallet, node id, channel keys) from this seed")
    ap.add_argument("--mpp-timeout", type=float, default=120.0, metavar="SECONDS",
                    help="fail an incomplete multi-part payment's parts with mpp_timeout after this long (lnd: 120)")
    ap.add_argument("--hold-expiry-delta", type=int, default=12, metavar="BLOCKS",
                    help="cancel a hold invoice when a held HTLC expires within this many blocks "
                         "(lnd's invoices.holdexpirydelta: 12)")
    ap.add_argument("--dust-threshold", type=int, default=500_000, metavar="SAT",
                    help="max dust HTLC exposure of a channel: a dust HTLC that would pass it is not offered, and "
                         "an incoming one is failed back (lnd's dust-threshold: 500000)")
    ap.add_argument("--chan-disable-timeout", default="20m", metavar="DURATION",
                    help="announce a public channel disabled once its peer has been away this long (lnd: 20m)")
    ap.add_argument("--chan-enable-timeout", default="19m", metavar="DURATION",
                    help="announce it enabled again once the peer has been back this long (lnd: 19m)")
    ap.add_argument("--chan-status-sample-interval", default="1m", metavar="DURATION",
                    help="how often channel statuses are checked (lnd: 1m)")
    ap.add_argument("--default-remote-max-htlcs", type=int, default=30, metavar="N",
                    help="HTLCs the peer of a new channel may have pending on our commitment (1..483; lnd's flag)")
    ap.add_argument("--debug", action="store_true")
    ns = ap.parse_args(argv)
    setup_logging(ns.datadir, "canal.channeld", ns.debug)
    log = logging.getLogger("canal.channeld")
    if ns.chain_rpc:
        host, _, port_s = ns.chain_rpc.rpartition(":")
        if not host or not port_s.isdigit():
            ap.error("--chain-rpc must be HOST:PORT")
        chain_rpc = (host, int(port_s))
    else:
        try:
            chain_rpc = read_rpc_endpoint(ns.chain_datadir)
        except (OSError, ValueError) as e:
            ap.error(f"cannot find the chain node's port in {ns.chain_datadir}: {e}")
    node = PaymentNode(get_params(ns.chain), ns.datadir, ns.chain_datadir, chain_rpc, ns.listen, ns.rpcport, ns.alias,
                restore_seed=bytes.fromhex(ns.restore_seed) if ns.restore_seed else None)
    if ns.mpp_timeout <= 0:
        ap.error("--mpp-timeout must be positive")
    node.mpp_timeout_s = ns.mpp_timeout
    if ns.hold_expiry_delta < 0:
        ap.error("--hold-expiry-delta must not be negative")
    node.hold_expiry_delta = ns.hold_expiry_delta
    if ns.dust_threshold < 0:
        ap.error("--dust-threshold must not be negative")
    from channels import dust

    dust.MAX_DUST_HTLC_EXPOSURE_MSAT = ns.dust_threshold * 1000
    if not 1 <= ns.default_remote_max_htlcs <= 483:
        ap.error("--default-remote-max-htlcs must be between 1 and 483 (BOLT 2)")
    node.max_accepted_htlcs = ns.default_remote_max_htlcs
    from htlc.chan_status import ChanStatusConfig, ChanStatusError, parse_duration

    try:
        node.chan_status = ChanStatusConfig(parse_duration(ns.chan_disable_timeout), parse_duration(
            ns.chan_enable_timeout), parse_duration(ns.chan_status_sample_interval))
    except (ValueError, ChanStatusError) as e:
        ap.error(str(e))
    try:
        trio.run(node.run)
    except (OSError, RuntimeError) as e:
        log.error("cannot run: %s", e)
        return 1
    return 0
