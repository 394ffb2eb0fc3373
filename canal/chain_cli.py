"""`canal chain`: bitcoin-cli for a Canal chain node (same command names and argument order).

It finds the node's port, TLS certificate and macaroon in the data dir, as
lncli does. Amounts are in coins, as bitcoin-cli prints them; output is a table
by default and JSON with --json.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import grpc

from base_chain.rpc import channel_for
from proto import chain_pb2 as pb
from proto import chain_pb2_grpc as pb_grpc

from .output import print_result

__all__ = ["main", "COMMANDS"]

COIN = Decimal(100_000_000)


class UsageError(Exception):
    pass


def _coins_to_sat(s: str) -> int:
    try:
        value = Decimal(s)
    except InvalidOperation:
        raise UsageError(f"Invalid amount: '{s}'") from None
    sat = value * COIN
    if sat != sat.to_integral_value():
        raise UsageError("Invalid amount: more than 8 decimal places")
    return int(sat)


def _bool(s: str) -> bool:
    if s.lower() in ("true", "1", "yes"):
        return True
    if s.lower() in ("false", "0", "no"):
        return False
    raise UsageError(f"Expected true or false, got '{s}'")


def _int(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        raise UsageError(f"Expected an integer, got '{s}'") from None


def _json_list(s: str) -> list[str]:
    try:
        value = json.loads(s)
    except json.JSONDecodeError:
        value = [s]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise UsageError("Expected a JSON array of strings")
    return [str(v) for v in value]


def message_to_dict(message: Any) -> dict[str, Any]:
    """Every field of a protobuf message (defaults included), integers kept as numbers."""
    out: dict[str, Any] = {}
    for fd in message.DESCRIPTOR.fields:
        value = getattr(message, fd.name)
        if fd.message_type is not None:
            out[fd.name] = [message_to_dict(v) for v in value] if _repeated(fd) else message_to_dict(value)
        elif fd.enum_type is not None:
            names = fd.enum_type.values_by_number
            out[fd.name] = [names[v].name for v in value] if _repeated(fd) else names[value].name
        elif fd.type == fd.TYPE_BYTES:
            out[fd.name] = [v.hex() for v in value] if _repeated(fd) else value.hex()
        else:
            out[fd.name] = list(value) if _repeated(fd) else value
    return out


def _repeated(fd: Any) -> bool:
    return bool(fd.is_repeated)


def to_view(message: Any) -> Any:
    """A protobuf message as bitcoin-cli shows it: amounts in coins under their plain names."""
    return _convert(message_to_dict(message))


def _convert(value: Any) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k.endswith("_sat_kvb"):
                out[k[: -len("_sat_kvb")]] = (Decimal(int(v)) / COIN).quantize(Decimal("0.00000001"))
            elif k.endswith("_sat_vb"):
                out[k[: -len("_sat_vb")]] = (Decimal(str(v)) * 1000 / COIN).quantize(Decimal("0.00000001"))
            elif k.endswith("_sat"):
                out[k[: -len("_sat")]] = (Decimal(int(v)) / COIN).quantize(Decimal("0.00000001"))
            else:
                out[k] = _convert(v)
        return out
    if isinstance(value, list):
        return [_convert(v) for v in value]
    return value


Handler = Callable[[pb_grpc.ChainServiceStub, list[str]], Any]


def _args(args: list[str], lo: int, hi: int, usage: str) -> list[str]:
    if not lo <= len(args) <= hi:
        raise UsageError(f"usage: {usage}")
    return args


def _getblock(stub: pb_grpc.ChainServiceStub, a: list[str]) -> Any:
    a = _args(a, 1, 2, "getblock \"blockhash\" ( verbosity )")
    verbosity = _int(a[1]) if len(a) > 1 else 1
    info = stub.GetBlock(pb.GetBlockRequest(blockhash=a[0], verbosity=verbosity))
    if verbosity == 0:
        return info.hex
    view = to_view(info)
    flat = {**view.pop("header"), **view}
    flat.pop("hex", None)
    if verbosity < 2:
        flat.pop("transactions", None)
    else:
        flat["tx"] = flat.pop("transactions")
    return flat


def _getblockheader(stub: pb_grpc.ChainServiceStub, a: list[str]) -> Any:
    a = _args(a, 1, 2, "getblockheader \"blockhash\" ( verbose )")
    info = stub.GetBlockHeader(pb.GetBlockHeaderRequest(blockhash=a[0], verbose=True))
    if len(a) > 1 and not _bool(a[1]):
        return info.hex
    view = to_view(info)
    view.pop("hex", None)
    view["nTx"] = view.pop("n_tx")
    return view


def _getrawtransaction(stub: pb_grpc.ChainServiceStub, a: list[str]) -> Any:
    a = _args(a, 1, 3, "getrawtransaction \"txid\" ( verbose \"blockhash\" )")
    verbose = len(a) > 1 and (a[1] not in ("0", "false"))
    r = stub.GetRawTransaction(pb.GetRawTransactionRequest(txid=a[0], verbose=verbose,
                                                           blockhash=a[2] if len(a) > 2 else ""))
    if not verbose:
        return r.hex
    view = to_view(r.decoded)
    view["hex"] = r.hex
    if r.blockhash:
        view.update(blockhash=r.blockhash, confirmations=r.confirmations, blocktime=r.blocktime)
    return view


def _sendtoaddress(stub: pb_grpc.ChainServiceStub, a: list[str]) -> Any:
    a = _args(a, 2, 10, "sendtoaddress \"address\" amount ( \"comment\" \"comment_to\" subtractfeefromamount "
                        "replaceable conf_target \"estimate_mode\" avoid_reuse fee_rate )")
    amount = _coins_to_sat(a[1])
    subtract = _bool(a[4]) if len(a) > 4 and a[4] else False
    replaceable = _bool(a[5]) if len(a) > 5 and a[5] else True
    fee_rate = float(a[9]) if len(a) > 9 and a[9] else 0.0
    r = stub.SendToAddress(pb.SendToAddressRequest(address=a[0], amount_sat=amount, subtractfeefromamount=subtract,
                                                   replaceable=replaceable, fee_rate_sat_vb=fee_rate))
    return r.txid


def _generate(stub: pb_grpc.ChainServiceStub, a: list[str]) -> Any:
    a = _args(a, 0, 1, "generate ( nblocks )")
    address = stub.GetNewAddress(pb.GetNewAddressRequest()).address
    r = stub.GenerateToAddress(pb.GenerateToAddressRequest(nblocks=_int(a[0]) if a else 1, address=address))
    return list(r.blockhashes)


def _estimatesmartfee(stub: pb_grpc.ChainServiceStub, a: list[str]) -> Any:
    a = _args(a, 1, 2, "estimatesmartfee conf_target ( \"estimate_mode\" )")
    r = stub.EstimateFee(pb.EstimateFeeRequest(conf_target=_int(a[0])))
    return {"feerate": (Decimal(str(r.feerate_sat_vb)) * 1000 / COIN).quantize(Decimal("0.00000001")),
            "blocks": r.blocks}


def _listunspent(stub: pb_grpc.ChainServiceStub, a: list[str]) -> Any:
    a = _args(a, 0, 3, "listunspent ( minconf maxconf [\"address\",...] )")
    req = pb.ListUnspentRequest(minconf=_int(a[0]) if a else 1, maxconf=_int(a[1]) if len(a) > 1 else 9_999_999,
                                addresses=_json_list(a[2]) if len(a) > 2 else [])
    return [to_view(u) for u in stub.ListUnspent(req).unspent]


def _getbalance(stub: pb_grpc.ChainServiceStub, a: list[str]) -> Any:
    _args(a, 0, 3, "getbalance ( \"dummy\" minconf include_watchonly )")
    b = stub.GetBalance(pb.GetBalanceRequest())
    return (Decimal(b.confirmed_sat) / COIN).quantize(Decimal("0.00000001"))


COMMANDS: dict[str, tuple[str, Handler]] = {
    "getblockchaininfo": ("", lambda s, a: to_view(s.GetBlockchainInfo(pb.GetBlockchainInfoRequest()))),
    "getblockcount": ("", lambda s, a: s.GetBlockCount(pb.GetBlockCountRequest()).count),
    "getbestblockhash": ("", lambda s, a: s.GetBestBlockHash(pb.GetBestBlockHashRequest()).hash),
    "getblockhash": ("height", lambda s, a: s.GetBlockHash(
        pb.GetBlockHashRequest(height=_int(_args(a, 1, 1, "getblockhash height")[0]))).hash),
    "getblock": ("\"blockhash\" ( verbosity )", _getblock),
    "getblockheader": ("\"blockhash\" ( verbose )", _getblockheader),
    "getrawtransaction": ("\"txid\" ( verbose \"blockhash\" )", _getrawtransaction),
    "decoderawtransaction": ("\"hexstring\"", lambda s, a: to_view(s.DecodeRawTransaction(
        pb.DecodeRawTransactionRequest(hexstring=_args(a, 1, 1, "decoderawtransaction \"hexstring\"")[0])))),
    "sendrawtransaction": ("\"hexstring\" ( maxfeerate )", lambda s, a: s.SendRawTransaction(
        pb.SendRawTransactionRequest(hexstring=_args(a, 1, 2, "sendrawtransaction \"hexstring\"")[0])).txid),
    "testmempoolaccept": ("[\"rawtx\",...]", lambda s, a: [to_view(r) for r in s.TestMempoolAccept(
        pb.TestMempoolAcceptRequest(rawtxs=_json_list(_args(a, 1, 2, "testmempoolaccept [\"rawtx\",...]")[0]))).results]),
    "getmempoolinfo": ("", lambda s, a: to_view(s.GetMempoolInfo(pb.GetMempoolInfoRequest()))),
    "getrawmempool": ("", lambda s, a: list(s.GetRawMempool(pb.GetRawMempoolRequest()).txids)),
    "getnewaddress": ("( \"label\" )", lambda s, a: s.GetNewAddress(pb.GetNewAddressRequest()).address),
    "getbalance": ("", _getbalance),
    "getbalances": ("", lambda s, a: to_view(s.GetBalance(pb.GetBalanceRequest()))),
    "listunspent": ("( minconf maxconf [\"address\",...] )", _listunspent),
    "sendtoaddress": ("\"address\" amount ( ... fee_rate )", _sendtoaddress),
    "bumpfee": ("\"txid\"", lambda s, a: to_view(s.BumpFee(pb.BumpFeeRequest(
        txid=_args(a, 1, 2, "bumpfee \"txid\"")[0])))),
    "generatetoaddress": ("nblocks \"address\"", lambda s, a: list(s.GenerateToAddress(pb.GenerateToAddressRequest(
        nblocks=_int(_args(a, 2, 3, "generatetoaddress nblocks \"address\"")[0]), address=a[1])).blockhashes)),
    "generate": ("( nblocks )", _generate),
    "estimatesmartfee": ("conf_target", _estimatesmartfee),
    "addnode": ("\"node\" \"command\"", lambda s, a: (s.AddNode(pb.AddNodeRequest(
        node=_args(a, 2, 2, "addnode \"node\" \"add|remove|onetry\"")[0], command=a[1])), None)[1]),
    "getpeerinfo": ("", lambda s, a: [to_view(p) for p in s.GetPeerInfo(pb.GetPeerInfoRequest()).peers]),
    "gettxoutproof": ("[\"txid\",...] ( \"blockhash\" )", lambda s, a: s.GetTxOutProof(pb.GetTxOutProofRequest(
        txids=_json_list(_args(a, 1, 2, "gettxoutproof [\"txid\",...] ( \"blockhash\" )")[0]),
        blockhash=a[1] if len(a) > 1 else "")).proof),
    "gettxout": ("\"txid\" n ( include_mempool )", lambda s, a: _gettxout(s, a)),
    "stop": ("", lambda s, a: s.Stop(pb.StopRequest()).message),
}


def _gettxout(stub: pb_grpc.ChainServiceStub, a: list[str]) -> Any:
    a = _args(a, 2, 3, "gettxout \"txid\" n ( include_mempool )")
    r = stub.GetTxOut(pb.GetTxOutRequest(txid=a[0], n=_int(a[1]), include_mempool=_bool(a[2]) if len(a) > 2 else True))
    if not r.found:
        return None
    view = to_view(r)
    view.pop("found")
    view["scriptPubKey"] = view.pop("script_pub_key")
    return view


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="canal chain", description="bitcoin-cli for a Canal chain node")
    ap.add_argument("--datadir", required=True, type=Path, help="the node's data directory")
    ap.add_argument("--rpcport", type=int, help="override the port found in the data dir")
    ap.add_argument("--readonly", action="store_true", help="use readonly.macaroon")
    ap.add_argument("--json", action="store_true", help="print JSON instead of tables")
    ap.add_argument("command", help="one of: " + ", ".join(COMMANDS))
    ap.add_argument("args", nargs="*")
    ns = ap.parse_args(argv)
    entry = COMMANDS.get(ns.command)
    if entry is None:
        print(f"error: Method not found: {ns.command}", file=sys.stderr)
        return 1
    try:
        channel = channel_for(ns.datadir, port=ns.rpcport, macaroon="readonly" if ns.readonly else "admin")
    except (OSError, ValueError) as e:
        print(f"error: cannot find a node in {ns.datadir}: {e}", file=sys.stderr)
        return 1
    with channel:
        stub = pb_grpc.ChainServiceStub(channel)
        try:
            result = entry[1](stub, list(ns.args))
        except UsageError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        except grpc.RpcError as e:
            print(f"error: {e.details()} ({e.code().name})", file=sys.stderr)  # type: ignore[attr-defined]
            return 1
    print_result(result, as_json=ns.json)
    return 0
