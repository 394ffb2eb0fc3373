"""`canal swapcli`: talk to a swap daemon (`canal swapd`), as loop talks to loopd.

    canal swapcli --datadir DIR [--rpcserver HOST:PORT] [--json] COMMAND [ARGS]

    getinfo
    initiate --peer HOST:PORT --send CHAIN:AMOUNT --receive CHAIN:AMOUNT
             [--initiator-lock SECONDS] [--participant-lock SECONDS]
    accept SWAP_ID
    list                          (alias: listswaps)
    status SWAP_ID                (alias: swapinfo)

Amounts are satoshis. ``--json`` prints the daemon's answer as JSON with the
proto's field names (as lncli and loop do); without it, a short summary.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from base_chain.rpc import channel_for
from proto import swap_pb2 as spb
from proto import swap_pb2_grpc as spb_grpc

__all__ = ["main"]


def _chain_amount(text: str) -> tuple[str, int]:
    chain, sep, amount = text.partition(":")
    if not sep or not chain or not amount.isdigit() or int(amount) <= 0:
        raise argparse.ArgumentTypeError(f"expected CHAIN:AMOUNT_SAT (e.g. alpha:150000000), got {text!r}")
    return chain, int(amount)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="canal swapcli", description="Control a swap daemon (canal swapd).")
    ap.add_argument("--datadir", type=Path, required=True, help="the swap daemon's data dir (tls.cert, macaroons)")
    ap.add_argument("--rpcserver", metavar="HOST:PORT", help="the daemon's RPC address (default: its rpc.json)")
    ap.add_argument("--macaroon", choices=("admin", "readonly"), default="admin")
    ap.add_argument("--json", action="store_true", help="print JSON")
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("getinfo", help="the daemon's chains, peer address and swap counts")
    ini = sub.add_parser("initiate", help="offer a swap to another swap daemon (we lock first)")
    ini.add_argument("--peer", required=True, metavar="HOST:PORT", help="the other daemon's --listen address")
    ini.add_argument("--send", required=True, type=_chain_amount, metavar="CHAIN:AMOUNT")
    ini.add_argument("--receive", required=True, type=_chain_amount, metavar="CHAIN:AMOUNT")
    ini.add_argument("--initiator-lock", type=int, default=0, metavar="SECONDS", help="our lock (default 48 h)")
    ini.add_argument("--participant-lock", type=int, default=0, metavar="SECONDS", help="theirs (default 24 h)")
    acc = sub.add_parser("accept", help="accept an offer waiting for us")
    acc.add_argument("swap_id")
    sub.add_parser("list", aliases=["listswaps"], help="all swaps")
    st = sub.add_parser("status", aliases=["swapinfo"], help="one swap: state, contracts, heights, time to refund")
    st.add_argument("swap_id")
    return ap


def _duration(seconds: int) -> str:
    sign = "-" if seconds < 0 else ""
    h, rest = divmod(abs(seconds), 3600)
    return f"{sign}{h}h{rest // 60:02d}m"


def _summary(s: Any) -> str:
    lines = [f"swap {s.swap_id}  {s.role}  {s.state}",
             f"  send    {s.send_amount_sat} sat on {s.send_chain}",
             f"  receive {s.receive_amount_sat} sat on {s.receive_chain}",
             f"  peer    {s.peer}"]
    for label, c in (("our contract", s.our_contract), ("their contract", s.their_contract)):
        if c.contract:
            mined = f"mined at {c.mined_height}" if c.mined_height else "not mined"
            left = "" if s.finished else (f", {c.blocks_to_refund} blocks (~{_duration(c.seconds_to_refund)}) "
                                          "to refund")
            lines.append(f"  {label}: {c.address} txid {c.txid or '-'} ({mined}), locktime {c.locktime}{left}")
    if s.heights:
        lines.append("  heights " + ", ".join(f"{k}={v}" for k, v in sorted(s.heights.items())))
    if s.redeem_txid:
        lines.append(f"  redeemed in {s.redeem_txid}")
    if s.refund_txid:
        lines.append(f"  refunded in {s.refund_txid}")
    if s.reason:
        lines.append(f"  reason: {s.reason}")
    return "\n".join(lines)


def _print(message: Any, as_json: bool, text: str) -> None:
    if as_json:
        print(json.dumps(MessageToDict(message, preserving_proto_field_name=True,
                                       always_print_fields_with_no_presence=True), indent=4))
    else:
        print(text)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `canal swapcli ... | head`
        return 0


def _main(argv: Sequence[str] | None) -> int:
    ns = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    port = None
    host = None
    if ns.rpcserver:
        host, _, p = ns.rpcserver.rpartition(":")
        if not p.isdigit():
            print(f"error: --rpcserver must be HOST:PORT, got {ns.rpcserver!r}", file=sys.stderr)
            return 2
        port = int(p)
    try:
        channel = channel_for(ns.datadir, host=host or None, port=port, macaroon=ns.macaroon)
    except (OSError, ValueError) as e:
        print(f"error: cannot find a swap daemon in {ns.datadir}: {e}", file=sys.stderr)
        return 1
    stub = spb_grpc.SwapClientStub(channel)  # type: ignore[no-untyped-call]
    try:
        cmd = ns.command
        if cmd == "getinfo":
            r = stub.GetInfo(spb.GetInfoRequest(), timeout=30)
            _print(r, ns.json, "\n".join([f"peer address {r.peer_address}", f"swaps {r.active_swaps} active, "
                                          f"{r.total_swaps} in all"] +
                                         [f"{c.chain}: height {c.height}, min_conf {c.min_conf}" for c in r.chains]))
        elif cmd == "initiate":
            (send_chain, send_amt), (recv_chain, recv_amt) = ns.send, ns.receive
            r = stub.InitiateSwap(spb.InitiateSwapRequest(
                peer=ns.peer, send_chain=send_chain, send_amount_sat=send_amt, receive_chain=recv_chain,
                receive_amount_sat=recv_amt, initiator_lock_s=ns.initiator_lock,
                participant_lock_s=ns.participant_lock), timeout=60)
            _print(r, ns.json, _summary(r))
        elif cmd == "accept":
            r = stub.AcceptSwap(spb.AcceptSwapRequest(swap_id=ns.swap_id), timeout=60)
            _print(r, ns.json, _summary(r))
        elif cmd in ("list", "listswaps"):
            r = stub.ListSwaps(spb.ListSwapsRequest(), timeout=30)
            _print(r, ns.json, "\n".join(_summary(s) for s in r.swaps) or "no swaps")
        else:
            r = stub.SwapInfo(spb.SwapInfoRequest(swap_id=ns.swap_id), timeout=30)
            _print(r, ns.json, _summary(r))
    except grpc.RpcError as e:
        print(f"[canal swapcli] rpc error: {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    finally:
        channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
