"""`canal peg`: the alpha <-> beta peg's coordinator (see relay.peg), for operators and users.

Commands (all print JSON, as bitcoin-cli does)::

    canal peg --pegdir DIR setup --notary-datadir D1 --notary-datadir D2 --notary-datadir D3 --threshold 2 \\
              --alpha-datadir A --beta-datadir B [--confirmations alpha=6] [--fee beta=1000]
    canal peg --pegdir DIR fundreserve --chain beta --amount 10        # from that node's wallet
    canal peg --pegdir DIR depositaddress --to beta --dest BETA_ADDRESS   # an address on alpha
    canal peg --pegdir DIR claim --from alpha --txid TXID --vout N [--dest ADDRESS]
    canal peg --pegdir DIR status
    canal peg --pegdir DIR rotate --new-notary-datadir D4 ... --threshold 2 [--grace alpha=BLOCKS]
    canal peg --pegdir DIR sweep --chain alpha       # after restarting the notaryds with the new file

``setup`` makes each notary's key in its data dir (if it has none) and writes
``DIR/committee.json``, the file every ``canal notaryd`` is started with.
``claim`` prints the release txid, which notaries signed and which refused
(with their reasons); it exits 1 if the release could not be assembled or
broadcast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path

import grpc

from relay.attestation import AssemblyError
from relay.committee import CommitteeError
from relay.notary_wire import WireError, parse_txid
from relay.peg import CHAINS, PegCoordinator, PegError, setup_peg

from .output import to_json

__all__ = ["main"]

DEFAULT_CONFIRMATIONS = {"alpha": 6, "beta": 24}
"""Equal wall-clock depth: 6 alpha blocks (600 s) = 24 beta blocks (150 s) = one hour."""
DEFAULT_FEES = {"alpha": 2_000, "beta": 1_000}


def _per_chain(values: list[str], defaults: dict[str, int], what: str) -> dict[str, int]:
    out = dict(defaults)
    for v in values:
        chain, _, n = v.partition("=")
        if chain not in CHAINS or not n.isdigit():
            raise ValueError(f"--{what} expects CHAIN=N with CHAIN one of {', '.join(CHAINS)}, got {v!r}")
        out[chain] = int(n)
    return out


def _amount_sat(s: str) -> int:
    try:
        d = Decimal(s)
    except InvalidOperation:
        raise ValueError(f"Invalid amount {s!r}") from None
    sat = d * 100_000_000
    if sat != sat.to_integral_value() or sat <= 0:
        raise ValueError(f"Invalid amount {s!r}")
    return int(sat)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="canal peg", description="Move coins between alpha and beta through the "
                                 "notary committee (peg-in and peg-out).")
    ap.add_argument("--pegdir", type=Path, required=True, help="the coordinator's directory (peg.json, committee.json)")
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("setup", help="create the committee file from the notaries' data dirs")
    s.add_argument("--notary-datadir", type=Path, action="append", required=True, help="repeat for each notary")
    s.add_argument("--threshold", type=int, required=True, help="M: signatures needed for a release")
    s.add_argument("--alpha-datadir", type=Path, required=True)
    s.add_argument("--beta-datadir", type=Path, required=True)
    s.add_argument("--confirmations", action="append", default=[], metavar="CHAIN=N",
                   help=f"deposit depth required per source chain (default {DEFAULT_CONFIRMATIONS})")
    s.add_argument("--fee", action="append", default=[], metavar="CHAIN=SAT",
                   help=f"published release fee per destination chain (default {DEFAULT_FEES})")
    s.add_argument("--epoch", type=int, default=0)
    f = sub.add_parser("fundreserve", help="pay the committee's reserve on a chain from that node's wallet")
    f.add_argument("--chain", choices=CHAINS, required=True)
    f.add_argument("--amount", required=True, help="in coins")
    d = sub.add_parser("depositaddress", help="the address to pay on the other chain to receive at --dest")
    d.add_argument("--to", choices=CHAINS, required=True, help="the destination chain")
    d.add_argument("--dest", required=True, help="the address on the destination chain")
    c = sub.add_parser("claim", help="have the committee release a deposit on the other chain")
    c.add_argument("--from", dest="source", choices=CHAINS, required=True, help="the chain the deposit is on")
    c.add_argument("--txid", required=True)
    c.add_argument("--vout", type=int, required=True)
    c.add_argument("--dest", help="the destination address (default: as recorded by depositaddress)")
    sub.add_parser("status", help="the committee, its reserves and its notaries")
    r = sub.add_parser("rotate", help="plan the next committee epoch and the sweeps of the old one's coins")
    r.add_argument("--new-notary-datadir", type=Path, action="append", required=True, help="repeat for each notary")
    r.add_argument("--threshold", type=int, required=True)
    r.add_argument("--grace", action="append", default=[], metavar="CHAIN=BLOCKS",
                   help="blocks the old key set may still release its deposits (default: one day of blocks)")
    r.add_argument("--keep-reserve", action="append", default=[], metavar="CHAIN=SAT",
                   help="leave this much reserve to the old committee for its deposits in flight (default 0)")
    w = sub.add_parser("sweep", help="have the old committee sign and broadcast a chain's rotation sweep "
                       "(after its expiry: the sweep of the reserve it kept)")
    w.add_argument("--chain", choices=CHAINS, required=True)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    ns = _parser().parse_args(argv)
    try:
        return _run(ns)
    except (PegError, CommitteeError, WireError, AssemblyError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except grpc.RpcError as e:
        details = e.details() if hasattr(e, "details") else str(e)
        print(f"error: {details}", file=sys.stderr)
        return 1


def _run(ns: argparse.Namespace) -> int:
    if ns.command == "setup":
        config = setup_peg(ns.pegdir, ns.notary_datadir, ns.threshold,
                           {"alpha": ns.alpha_datadir, "beta": ns.beta_datadir},
                           _per_chain(ns.confirmations, DEFAULT_CONFIRMATIONS, "confirmations"),
                           _per_chain(ns.fee, DEFAULT_FEES, "fee"), epoch=ns.epoch)
        committee = config.current
        print(to_json({"committee_file": str(ns.pegdir / "committee.json"), "epoch": committee.epoch,
                       "threshold": committee.threshold, "pubkeys": [pk.hex() for pk in committee.pubkeys],
                       "reserve_addresses": {c: committee.reserve_address(c) for c in CHAINS}}))
        return 0
    with PegCoordinator(ns.pegdir) as peg:
        if ns.command == "fundreserve":
            op = peg.fund_reserve(ns.chain, _amount_sat(ns.amount))
            print(to_json({"chain": ns.chain, "address": peg.committee.reserve_address(ns.chain),
                           "txid": op.txid[::-1].hex(), "vout": op.index}))
            return 0
        if ns.command == "depositaddress":
            address = peg.deposit_address(ns.to, ns.dest)
            print(to_json({"deposit_address": address, "source_chain": "alpha" if ns.to == "beta" else "beta",
                           "destination_chain": ns.to, "destination_address": ns.dest,
                           "epoch": peg.committee.epoch,
                           "min_confirmations": peg.config.policy.min_confirmations.get(
                               "alpha" if ns.to == "beta" else "beta"),
                           "fee_sat": peg.config.policy.release_fee_sat.get(ns.to)}))
            return 0
        if ns.command == "rotate":
            from relay.committee import blocks_for_duration
            from relay.peg_rotation import plan_rotation

            grace = _per_chain(ns.grace, {c: blocks_for_duration(c, 86_400) for c in CHAINS}, "grace")
            keep = _per_chain(ns.keep_reserve, {c: 0 for c in CHAINS}, "keep-reserve")
            plan = plan_rotation(peg, ns.new_notary_datadir, ns.threshold, grace, keep)
            windows = {w.chain: w for w in plan.old.windows}
            print(to_json({
                "committee_file": str(peg.committee_file), "old_epoch": plan.old.epoch, "new_epoch": plan.new.epoch,
                "threshold": plan.new.threshold, "pubkeys": [pk.hex() for pk in plan.new.pubkeys],
                "retire_heights": {c: w.retire_height for c, w in windows.items()},
                "expiry_heights": {c: w.expiry_height for c, w in windows.items()},
                "sweeps": {sw.chain: {"txid": sw.tx.txid_hex(), "inputs": len(sw.tx.inputs),
                                      "amount_sat": sw.tx.outputs[0].amount_sat} for sw in plan.sweeps},
                "next": "restart every canal notaryd (old and new) with the committee file, "
                        "then run `canal peg sweep --chain CHAIN` for each sweep",
            }))
            return 0
        if ns.command == "sweep":
            from relay.peg_rotation import sweep

            swept = sweep(peg, ns.chain)
            print(to_json(swept.to_dict()))
            return 0 if swept.txid is not None else 1
        if ns.command == "claim":
            result = peg.claim(ns.source, parse_txid(ns.txid), ns.vout, ns.dest)
            print(to_json(result.to_dict(peg.committee_of(result.request.epoch))))
            return 0 if result.txid is not None else 1
        print(to_json(peg.status()))
        return 0
