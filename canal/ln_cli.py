"""`canal ln`: lncli for a Canal Lightning node (lncli's command names, flags and JSON field names)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from base_chain.rpc import channel_for
from proto import lightning_pb2 as ln
from proto import lightning_pb2_grpc as ln_grpc

from .output import print_result

__all__ = ["main"]


def to_json(message: Any) -> Any:
    """lncli's JSON: original field names, defaults included, 64-bit integers as strings."""
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


class Command:
    def __init__(self, name: str, help: str, build: Callable[[argparse.ArgumentParser], None],
                 run: Callable[[Any, argparse.Namespace], Any]) -> None:
        self.name, self.help, self.build, self.run = name, help, build, run


def _no_args(p: argparse.ArgumentParser) -> None:
    return None


def _newaddress(p: argparse.ArgumentParser) -> None:
    p.add_argument("type", nargs="?", default="p2wkh", choices=["p2wkh", "np2wkh", "p2tr"])


ADDRESS_TYPES = {"p2wkh": ln.WITNESS_PUBKEY_HASH, "np2wkh": ln.NESTED_PUBKEY_HASH, "p2tr": ln.TAPROOT_PUBKEY}


def _sendcoins(p: argparse.ArgumentParser) -> None:
    p.add_argument("--addr", required=True)
    p.add_argument("--amt", type=int, required=True, help="amount in satoshis")
    p.add_argument("--sat_per_vbyte", type=int, default=0)
    p.add_argument("--conf_target", type=int, default=0)


def _listunspent(p: argparse.ArgumentParser) -> None:
    p.add_argument("--min_confs", type=int, default=1)
    p.add_argument("--max_confs", type=int, default=0)


def _connect(p: argparse.ArgumentParser) -> None:
    p.add_argument("node", help="<pubkey>@host:port")
    p.add_argument("--perm", action="store_true")
    p.add_argument("--timeout", type=int, default=0)


def _connect_run(stub: Any, a: argparse.Namespace) -> Any:
    pubkey, sep, host = a.node.partition("@")
    if not sep:
        raise SystemExit("error: target address expected in format: pubkey@host:port")
    return to_json(stub.ConnectPeer(ln.ConnectPeerRequest(addr=ln.LightningAddress(pubkey=pubkey, host=host),
                                                          perm=a.perm, timeout=a.timeout)))


def _disconnect(p: argparse.ArgumentParser) -> None:
    p.add_argument("node_key")


COMMANDS: list[Command] = [
    Command("getinfo", "Returns basic information related to the active daemon.", _no_args,
            lambda s, a: to_json(s.GetInfo(ln.GetInfoRequest()))),
    Command("newaddress", "Generates a new address.", _newaddress,
            lambda s, a: to_json(s.NewAddress(ln.NewAddressRequest(type=ADDRESS_TYPES[a.type])))),
    Command("walletbalance", "Compute and display the wallet's current balance.", _no_args,
            lambda s, a: to_json(s.WalletBalance(ln.WalletBalanceRequest()))),
    Command("channelbalance", "Returns the sum of the total available channel balance.", _no_args,
            lambda s, a: to_json(s.ChannelBalance(ln.ChannelBalanceRequest()))),
    Command("sendcoins", "Send bitcoin on-chain to an address.", _sendcoins,
            lambda s, a: to_json(s.SendCoins(ln.SendCoinsRequest(addr=a.addr, amount=a.amt,
                                                                 sat_per_vbyte=a.sat_per_vbyte,
                                                                 target_conf=a.conf_target)))),
    Command("listunspent", "List utxos available for spending.", _listunspent,
            lambda s, a: to_json(s.ListUnspent(ln.ListUnspentRequest(min_confs=a.min_confs, max_confs=a.max_confs)))),
    Command("connect", "Connect to a remote lightning peer.", _connect, _connect_run),
    Command("disconnect", "Disconnect a remote lightning peer identified by public key.", _disconnect,
            lambda s, a: to_json(s.DisconnectPeer(ln.DisconnectPeerRequest(pub_key=a.node_key)))),
    Command("listpeers", "List all active, currently connected peers.", _no_args,
            lambda s, a: to_json(s.ListPeers(ln.ListPeersRequest()))),
]


def extra_commands() -> list[Command]:
    """Channel and payment commands live beside their services."""
    commands: list[Command] = []
    try:
        from .ln_channels import CHANNEL_COMMANDS

        commands += CHANNEL_COMMANDS
    except ImportError:
        pass
    try:
        from .ln_payments import PAYMENT_COMMANDS

        commands += PAYMENT_COMMANDS
    except ImportError:
        pass
    try:
        from .ln_graph import GRAPH_COMMANDS

        commands += GRAPH_COMMANDS
    except ImportError:
        pass
    try:
        from .ln_invoices import INVOICE_COMMANDS

        commands += INVOICE_COMMANDS
    except ImportError:
        pass
    return commands


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="canal ln", description="lncli for a Canal Lightning node")
    ap.add_argument("--datadir", type=Path, required=True, help="the node's data directory")
    ap.add_argument("--rpcserver", help="host:port (default: found in the data dir)")
    ap.add_argument("--readonly", action="store_true", help="use readonly.macaroon")
    ap.add_argument("--json", action="store_true", help="print lncli's JSON (default: tables)")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands = {c.name: c for c in COMMANDS + extra_commands()}
    for c in commands.values():
        c.build(sub.add_parser(c.name, help=c.help, description=c.help))
    ns = ap.parse_args(argv)
    port = None
    host = None
    if ns.rpcserver:
        host, _, port_s = ns.rpcserver.rpartition(":")
        port = int(port_s)
    try:
        channel = channel_for(ns.datadir, host=host, port=port, macaroon="readonly" if ns.readonly else "admin")
    except (OSError, ValueError) as e:
        print(f"[lncli] cannot find a node in {ns.datadir}: {e}", file=sys.stderr)
        return 1
    with channel:
        stub = ln_grpc.LightningStub(channel)
        try:
            result = commands[ns.command].run(stub, ns)
        except grpc.RpcError as e:
            print(f"[lncli] rpc error: code = {e.code().name} desc = {e.details()}", file=sys.stderr)
            return 1
    if ns.json:
        print(json.dumps(result, indent=4))
    else:
        print_result(result)
    return 0
