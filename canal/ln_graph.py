"""`canal ln` graph commands: describegraph, getchaninfo, getnodeinfo, getnetworkinfo, updatechanpolicy,
updatechanstatus (lncli's names, flags and JSON output)."""

from __future__ import annotations

import argparse
from typing import Any

from proto import lightning_pb2 as ln
from proto import router_pb2 as router_pb

from .ln_cli import Command
from .ln_payments import _router, to_lncli_json

__all__ = ["GRAPH_COMMANDS"]


def _describegraph(p: argparse.ArgumentParser) -> None:
    p.add_argument("--include_unannounced", action="store_true",
                   help="include unannounced channels (private ones and public ones not yet announced)")
    _auth_proof(p)


def _auth_proof(p: argparse.ArgumentParser) -> None:
    p.add_argument("--include_auth_proof", action="store_true", help="include the announcements' signatures")


def _getchaninfo(p: argparse.ArgumentParser) -> None:
    p.add_argument("chan_id_arg", nargs="?", type=int, metavar="chan_id")
    p.add_argument("--chan_id", type=int, default=0, help="the 8-byte compact channel ID")
    p.add_argument("--chan_point", default="", help="the channel point (funding_txid:output_index)")
    _auth_proof(p)


def _getchaninfo_run(stub: Any, a: argparse.Namespace) -> Any:
    chan_id = a.chan_id or a.chan_id_arg or 0
    if not chan_id and not a.chan_point:
        raise SystemExit("[lncli] chan_id or chan_point argument missing")
    return to_lncli_json(stub.GetChanInfo(ln.ChanInfoRequest(chan_id=chan_id, chan_point=a.chan_point,
                                                            include_auth_proof=a.include_auth_proof)))


def _getnodeinfo(p: argparse.ArgumentParser) -> None:
    p.add_argument("pub_key_arg", nargs="?", metavar="pub_key")
    p.add_argument("--pub_key", default="", help="the 33-byte hex-encoded compressed public key of the node")
    p.add_argument("--include_channels", action="store_true", help="include the node's channels")
    _auth_proof(p)


def _getnodeinfo_run(stub: Any, a: argparse.Namespace) -> Any:
    pub_key = a.pub_key or a.pub_key_arg
    if not pub_key:
        raise SystemExit("[lncli] pub_key argument missing")
    return to_lncli_json(stub.GetNodeInfo(ln.NodeInfoRequest(pub_key=pub_key, include_channels=a.include_channels,
                                                            include_auth_proof=a.include_auth_proof)))


def _updatechanpolicy(p: argparse.ArgumentParser) -> None:
    p.add_argument("positional", nargs="*", metavar="base_fee_msat fee_rate time_lock_delta [channel_point]")
    p.add_argument("--base_fee_msat", type=int, help="the base fee in milli-satoshis")
    p.add_argument("--fee_rate", type=float, help="the fee rate (decimal, e.g. 0.000001 for 1 ppm)")
    p.add_argument("--fee_rate_ppm", type=int, help="the fee rate in parts per million")
    p.add_argument("--time_lock_delta", type=int, help="the CLTV delta for HTLCs forwarded over the channel")
    p.add_argument("--min_htlc_msat", type=int, help="the minimum HTLC (unchanged if not given)")
    p.add_argument("--max_htlc_msat", type=int, default=0, help="the maximum HTLC (0: unchanged)")
    p.add_argument("--chan_point", default="", help="the channel to update (txid:index); all channels if absent")


def _updatechanpolicy_run(stub: Any, a: argparse.Namespace) -> Any:
    pos = list(a.positional)
    base_fee = a.base_fee_msat if a.base_fee_msat is not None else (int(pos.pop(0)) if pos else None)
    fee_rate = a.fee_rate
    if fee_rate is None and a.fee_rate_ppm is None and pos:
        fee_rate = float(pos.pop(0))
    delta = a.time_lock_delta if a.time_lock_delta is not None else (int(pos.pop(0)) if pos else None)
    chan_point = a.chan_point or (pos.pop(0) if pos else "")
    if base_fee is None:
        raise SystemExit("[lncli] base_fee_msat argument missing")
    if fee_rate is None and a.fee_rate_ppm is None:
        raise SystemExit("[lncli] fee_rate or fee_rate_ppm argument missing")
    if fee_rate is not None and a.fee_rate_ppm is not None:
        raise SystemExit("[lncli] fee_rate or fee_rate_ppm can not both be set")
    if delta is None:
        raise SystemExit("[lncli] time_lock_delta argument missing")
    req = ln.PolicyUpdateRequest(base_fee_msat=base_fee, fee_rate=fee_rate or 0.0, fee_rate_ppm=a.fee_rate_ppm or 0,
                                 time_lock_delta=delta, max_htlc_msat=a.max_htlc_msat)
    if a.min_htlc_msat is not None:
        req.min_htlc_msat, req.min_htlc_msat_specified = a.min_htlc_msat, True
    if chan_point:
        txid, sep, index = chan_point.partition(":")
        if not sep or not index.isdigit():
            raise SystemExit("[lncli] expecting chan_point to be in format of: txid:index")
        req.chan_point.CopyFrom(ln.ChannelPoint(funding_txid_str=txid, output_index=int(index)))
    else:
        setattr(req, "global", True)  # a Python keyword
    return to_lncli_json(stub.UpdateChannelPolicy(req))


def _updatechanstatus(p: argparse.ArgumentParser) -> None:
    p.add_argument("positional", nargs="*", metavar="funding_txid [output_index] action")
    p.add_argument("--funding_txid", default="", help="the txid of the channel's funding transaction")
    p.add_argument("--output_index", type=int, help="the output index for the funding output of the funding transaction")
    p.add_argument("--chan_point", default="", help="the channel whose status should be updated (txid:output_index)")
    p.add_argument("--action", default="", help='the action to take: must be one of "enable", "disable", or "auto"')


_ACTIONS = {"enable": router_pb.ENABLE, "disable": router_pb.DISABLE, "auto": router_pb.AUTO}


def _updatechanstatus_run(stub: Any, a: argparse.Namespace) -> Any:
    pos = list(a.positional)
    if a.chan_point:
        txid, sep, index = a.chan_point.partition(":")
        if not sep or not index.isdigit():
            raise SystemExit("[lncli] expecting chan_point to be in format of: txid:index")
        output_index = int(index)
    else:
        txid = a.funding_txid or (pos.pop(0) if pos else "")
        if not txid:
            raise SystemExit("[lncli] funding txid argument missing")
        if a.output_index is not None:
            output_index = a.output_index
        elif pos and pos[0].isdigit():
            output_index = int(pos.pop(0))
        else:
            output_index = 0
    action = a.action or (pos.pop(0) if pos else "")
    if action not in _ACTIONS:
        raise SystemExit('[lncli] action must be one of "enable", "disable", or "auto"')
    req = router_pb.UpdateChanStatusRequest(chan_point=ln.ChannelPoint(funding_txid_str=txid, output_index=output_index),
                                            action=_ACTIONS[action])
    channel, router = _router(a)
    with channel:
        return to_lncli_json(router.UpdateChanStatus(req))


GRAPH_COMMANDS: list[Command] = [
    Command("describegraph", "Describe the network graph.", _describegraph,
            lambda s, a: to_lncli_json(s.DescribeGraph(ln.ChannelGraphRequest(
                include_unannounced=a.include_unannounced, include_auth_proof=a.include_auth_proof)))),
    Command("getchaninfo", "Get the state of a channel.", _getchaninfo, _getchaninfo_run),
    Command("getnodeinfo", "Get information on a specific node.", _getnodeinfo, _getnodeinfo_run),
    Command("getnetworkinfo", "Get statistical information about the current state of the network.",
            lambda p: None, lambda s, a: to_lncli_json(s.GetNetworkInfo(ln.NetworkInfoRequest()))),
    Command("updatechanpolicy", "Update the channel policy for all channels, or a single channel.",
            _updatechanpolicy, _updatechanpolicy_run),
    Command("updatechanstatus", "Set the status of an existing channel on the network.",
            _updatechanstatus, _updatechanstatus_run),
]
