"""`canal ln` channel commands, with lncli's names, flags and JSON output."""

from __future__ import annotations

import argparse
from typing import Any

from proto import lightning_pb2 as ln

from .ln_cli import Command, _no_args, to_json

__all__ = ["CHANNEL_COMMANDS"]


def _openchannel(p: argparse.ArgumentParser) -> None:
    p.add_argument("--node_key", required=True, help="the peer's identity pubkey (hex)")
    p.add_argument("--local_amt", type=int, required=True, help="satoshis to commit to the channel")
    p.add_argument("--push_amt", type=int, default=0, help="satoshis to push to the peer")
    p.add_argument("--sat_per_vbyte", type=int, default=0)
    p.add_argument("--conf_target", type=int, default=0)
    p.add_argument("--block", action="store_true", help="wait until the channel is open")
    p.add_argument("--private", action="store_true", help="do not announce the channel to the network (BOLT 7)")


def _openchannel_run(stub: Any, a: argparse.Namespace) -> Any:
    req = ln.OpenChannelRequest(node_pubkey=bytes.fromhex(a.node_key), local_funding_amount=a.local_amt,
                                push_sat=a.push_amt, sat_per_vbyte=a.sat_per_vbyte, target_conf=a.conf_target,
                                private=a.private)
    stream = stub.OpenChannel(req)
    result: dict[str, Any] = {}
    for update in stream:
        if update.HasField("chan_pending"):
            result = {"funding_txid": bytes(update.chan_pending.txid)[::-1].hex(),
                      "output_index": update.chan_pending.output_index}
            if not a.block:
                stream.cancel()
                break
        elif update.HasField("chan_open"):
            cp = update.chan_open.channel_point
            result["channel_point"] = f"{bytes(cp.funding_txid_bytes)[::-1].hex()}:{cp.output_index}"
            break
    return result


def _channel_point(a: argparse.Namespace) -> ln.ChannelPoint:
    txid, output_index = a.funding_txid, a.output_index
    if a.chan_point:
        txid, _, idx = a.chan_point.partition(":")
        output_index = int(idx or 0)
    if not txid:
        raise SystemExit("[lncli] funding txid argument missing")
    return ln.ChannelPoint(funding_txid_str=txid, output_index=output_index)


def _closechannel(p: argparse.ArgumentParser) -> None:
    p.add_argument("chan_point", nargs="?", default="", help="funding_txid:output_index")
    p.add_argument("--funding_txid", default="")
    p.add_argument("--output_index", type=int, default=0)
    p.add_argument("--force", action="store_true")
    p.add_argument("--sat_per_vbyte", type=int, default=0)
    p.add_argument("--delivery_addr", default="")
    p.add_argument("--block", action="store_true", help="wait until the closing transaction confirms")


def _closechannel_run(stub: Any, a: argparse.Namespace) -> Any:
    req = ln.CloseChannelRequest(channel_point=_channel_point(a), force=a.force, sat_per_vbyte=a.sat_per_vbyte,
                                 delivery_address=a.delivery_addr)
    stream = stub.CloseChannel(req)
    result: dict[str, Any] = {}
    for update in stream:
        if update.HasField("close_pending"):
            result = {"closing_txid": bytes(update.close_pending.txid)[::-1].hex()}
            if not a.block:
                stream.cancel()
                break
        elif update.HasField("chan_close"):
            result = {"closing_txid": bytes(update.chan_close.closing_txid)[::-1].hex(), "success": True}
            break
    return result


def _listchannels(p: argparse.ArgumentParser) -> None:
    p.add_argument("--active_only", action="store_true")
    p.add_argument("--inactive_only", action="store_true")


CHANNEL_COMMANDS: list[Command] = [
    Command("openchannel", "Open a channel to a node.", _openchannel, _openchannel_run),
    Command("closechannel", "Close an existing channel.", _closechannel, _closechannel_run),
    Command("listchannels", "List all open channels.", _listchannels,
            lambda s, a: to_json(s.ListChannels(ln.ListChannelsRequest(active_only=a.active_only,
                                                                       inactive_only=a.inactive_only)))),
    Command("pendingchannels", "Display information pertaining to pending channels.", _no_args,
            lambda s, a: to_json(s.PendingChannels(ln.PendingChannelsRequest()))),
    Command("closedchannels", "List all closed channels.", _no_args,
            lambda s, a: to_json(s.ClosedChannels(ln.ClosedChannelsRequest()))),
]


def _exportchanbackup(p: argparse.ArgumentParser) -> None:
    p.add_argument("--all", action="store_true", required=True, help="export every channel (the multi backup)")
    p.add_argument("--output_file", default="", help="write the multi-channel backup to this file")


def _exportchanbackup_run(stub: Any, a: argparse.Namespace) -> Any:
    snap = stub.ExportAllChannelBackups(ln.ChanBackupExportRequest())
    blob = bytes(snap.multi_chan_backup.multi_chan_backup)
    if a.output_file:
        with open(a.output_file, "wb") as f:
            f.write(blob)
    return {"chan_points": [f"{bytes(cp.funding_txid_bytes)[::-1].hex()}:{cp.output_index}"
                            for cp in snap.multi_chan_backup.chan_points],
            "multi_chan_backup": blob.hex()}


def _restorechanbackup(p: argparse.ArgumentParser) -> None:
    p.add_argument("--multi_file", default="", help="a file written by exportchanbackup --output_file")
    p.add_argument("--multi_backup", default="", help="the multi-channel backup as hex")


def _restorechanbackup_run(stub: Any, a: argparse.Namespace) -> Any:
    if a.multi_file:
        with open(a.multi_file, "rb") as f:
            blob = f.read()
    elif a.multi_backup:
        blob = bytes.fromhex(a.multi_backup)
    else:
        raise SystemExit("[lncli] need --multi_file or --multi_backup")
    return to_json(stub.RestoreChannelBackups(ln.RestoreChanBackupRequest(multi_chan_backup=blob)))


CHANNEL_COMMANDS += [
    Command("exportchanbackup", "Obtain a static channel back up for all channels.", _exportchanbackup,
            _exportchanbackup_run),
    Command("restorechanbackup", "Restore an existing single or multi-channel static channel backup.",
            _restorechanbackup, _restorechanbackup_run),
]
