"""`canal bridge`: talk to a `canal bridged` (quote a beta invoice, list swaps, show the bridge's terms).

    canal bridge --datadir BRIDGE_DIR quote BETA_INVOICE   # the alpha hold invoice to pay, as JSON
    canal bridge --datadir BRIDGE_DIR list [--pending_only]
    canal bridge --datadir BRIDGE_DIR getinfo

Output is JSON with the proto field names (``proto/bridge.proto``), 64-bit integers as numbers.
A refused quote prints the bridge's reason and exits 1.
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
from proto import bridge_pb2 as br
from proto import bridge_pb2_grpc as br_grpc

__all__ = ["main"]


def _json(message: Any) -> Any:
    d = MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    return _ints(d)


def _ints(v: Any) -> Any:
    """MessageToDict writes int64 as strings (proto3 JSON); the bridge's amounts read better as numbers."""
    if isinstance(v, dict):
        return {k: _ints(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_ints(x) for x in v]
    if isinstance(v, str) and v.lstrip("-").isdigit() and len(v) < 20:
        return int(v)
    return v


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="canal bridge", description="Talk to a cross-chain Lightning bridge")
    ap.add_argument("--datadir", type=Path, required=True, help="the bridge's data dir")
    ap.add_argument("--rpcserver", help="host:port (default: found in the data dir)")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)
    q = sub.add_parser("quote", help="quote the alpha hold invoice that pays a beta invoice")
    q.add_argument("payment_request", help="the beta invoice (BOLT 11)")
    ls = sub.add_parser("list", help="list the bridge's swaps")
    ls.add_argument("--pending_only", action="store_true")
    sub.add_parser("getinfo", help="the bridge's chains, rate, fees and liquidity")
    ns = ap.parse_args(argv)
    host = port = None
    if ns.rpcserver:
        host, _, port_s = ns.rpcserver.rpartition(":")
        port = int(port_s)
    try:
        channel = channel_for(ns.datadir, host=host, port=port)
    except (OSError, ValueError) as e:
        print(f"[bridge] cannot find a bridge in {ns.datadir}: {e}", file=sys.stderr)
        return 1
    with channel:
        stub = br_grpc.BridgeStub(channel)  # type: ignore[no-untyped-call]
        try:
            if ns.command == "quote":
                result = _json(stub.Quote(br.QuoteRequest(payment_request=ns.payment_request), timeout=60))
            elif ns.command == "list":
                result = _json(stub.ListSwaps(br.ListSwapsRequest(pending_only=ns.pending_only), timeout=30))
            else:
                result = _json(stub.GetInfo(br.GetInfoRequest(), timeout=30))
        except grpc.RpcError as e:
            print(f"[bridge] rpc error: code = {e.code().name} desc = {e.details()}", file=sys.stderr)
            return 1
    print(json.dumps(result, indent=4))
    return 0
