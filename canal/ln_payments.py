"""`canal ln` invoice and payment commands, with lncli's names, flags and JSON output (bytes in hex, as lncli)."""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.json_format import MessageToDict

from base_chain.rpc import channel_for
from proto import lightning_pb2 as ln
from proto import router_pb2 as router_pb
from proto import router_pb2_grpc as router_grpc

from .ln_cli import Command

__all__ = ["PAYMENT_COMMANDS", "to_lncli_json"]

KEYSEND_RECORD = 5482373484


def _hex(b64: str) -> str:
    import base64

    return base64.b64decode(b64).hex()


def _hexify(desc: Descriptor, d: dict[str, Any]) -> dict[str, Any]:
    for f in desc.fields:
        if f.name not in d:
            continue
        v = d[f.name]
        repeated = f.is_repeated if hasattr(f, "is_repeated") else f.label == FieldDescriptor.LABEL_REPEATED
        if f.type == FieldDescriptor.TYPE_BYTES:
            d[f.name] = [_hex(x) for x in v] if repeated else _hex(v)
        elif f.type == FieldDescriptor.TYPE_MESSAGE:
            sub = f.message_type
            if sub.GetOptions().map_entry:
                value = sub.fields_by_name["value"]
                if value.type == FieldDescriptor.TYPE_BYTES:
                    d[f.name] = {k: _hex(x) for k, x in v.items()}
                elif value.type == FieldDescriptor.TYPE_MESSAGE:
                    d[f.name] = {k: _hexify(value.message_type, x) for k, x in v.items()}
            elif repeated:
                d[f.name] = [_hexify(sub, x) for x in v]
            elif isinstance(v, dict):
                d[f.name] = _hexify(sub, v)
    return d


def to_lncli_json(message: Any) -> Any:
    """lncli's JSON: proto field names, defaults included, 64-bit integers as strings, bytes as hex."""
    d = MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    return _hexify(message.DESCRIPTOR, d)


def _router(a: argparse.Namespace) -> tuple[grpc.Channel, router_grpc.RouterStub]:
    """A Router stub on the node `canal ln` talks to (same data dir, server and macaroon choice)."""
    host = port = None
    if a.rpcserver:
        host, _, port_s = a.rpcserver.rpartition(":")
        port = int(port_s)
    channel = channel_for(a.datadir, host=host, port=port, macaroon="readonly" if a.readonly else "admin")
    return channel, router_grpc.RouterStub(channel)


def _bytes_arg(text: str, what: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise SystemExit(f"[lncli] {what} is not hex: {text!r}") from None


# --- invoices ------------------------------------------------------------------------------------------------


def _addinvoice(p: argparse.ArgumentParser) -> None:
    p.add_argument("value", nargs="?", type=int, default=0, help="the amount in satoshis (or --amt)")
    p.add_argument("preimage_pos", nargs="?", default="", metavar="preimage")
    p.add_argument("--memo", default="", help="a description of the payment")
    p.add_argument("--amt", type=int, default=0, help="the amount in satoshis")
    p.add_argument("--amt_msat", type=int, default=0, help="the amount in millisatoshis")
    p.add_argument("--preimage", default="", help="the hex preimage (default: random)")
    p.add_argument("--description_hash", default="", help="the hex SHA-256 of a long description")
    p.add_argument("--expiry", type=int, default=0, help="seconds the invoice is valid (default 86400)")
    p.add_argument("--cltv_expiry_delta", type=int, default=0, help="the final CLTV delta (default 80)")
    p.add_argument("--private", action="store_true")


def _addinvoice_run(stub: Any, a: argparse.Namespace) -> Any:
    preimage = a.preimage or a.preimage_pos
    req = ln.Invoice(memo=a.memo, value=a.amt or a.value, value_msat=a.amt_msat,
                     r_preimage=_bytes_arg(preimage, "preimage") if preimage else b"",
                     description_hash=_bytes_arg(a.description_hash, "description_hash") if a.description_hash else b"",
                     expiry=a.expiry, cltv_expiry=a.cltv_expiry_delta, private=a.private)
    return to_lncli_json(stub.AddInvoice(req))


def _lookupinvoice(p: argparse.ArgumentParser) -> None:
    p.add_argument("rhash_pos", nargs="?", default="", metavar="rhash")
    p.add_argument("--rhash", default="", help="the hex payment hash")


def _lookupinvoice_run(stub: Any, a: argparse.Namespace) -> Any:
    text = a.rhash or a.rhash_pos
    if not text:
        raise SystemExit("[lncli] rhash argument missing")
    return to_lncli_json(stub.LookupInvoice(ln.PaymentHash(r_hash=_bytes_arg(text, "rhash"))))


def _listinvoices(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pending_only", action="store_true")
    p.add_argument("--index_offset", type=int, default=0)
    p.add_argument("--max_invoices", type=int, default=100)
    p.add_argument("--paginate-forwards", dest="paginate_forwards", action="store_true")


def _listinvoices_run(stub: Any, a: argparse.Namespace) -> Any:
    req = ln.ListInvoiceRequest(pending_only=a.pending_only, index_offset=a.index_offset,
                                num_max_invoices=a.max_invoices, reversed=not a.paginate_forwards)
    return to_lncli_json(stub.ListInvoices(req))


def _decodepayreq(p: argparse.ArgumentParser) -> None:
    p.add_argument("pay_req_pos", nargs="?", default="", metavar="pay_req")
    p.add_argument("--pay_req", default="")


def _pay_req(a: argparse.Namespace) -> str:
    text: str = a.pay_req or a.pay_req_pos
    if not text:
        raise SystemExit("[lncli] pay_req argument missing")
    return text.strip()


def _decodepayreq_run(stub: Any, a: argparse.Namespace) -> Any:
    return to_lncli_json(stub.DecodePayReq(ln.PayReqString(pay_req=_pay_req(a))))


# --- paying ----------------------------------------------------------------------------------------------------


def _payment_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fee_limit", type=int, default=None, help="maximum fee in satoshis (default: lnd's, 5%%, or "
                   "100%% up to 1,000 sat)")
    p.add_argument("--fee_limit_percent", type=int, default=None, help="maximum fee as a percentage of the amount")
    p.add_argument("--timeout", default="60s", help="how long to keep trying (a duration: 60s, 2m; or seconds)")
    p.add_argument("--timeout_seconds", type=int, default=0, help="the same in seconds")
    p.add_argument("--cltv_limit", type=int, default=0, help="the maximum time lock of the route")
    p.add_argument("--outgoing_chan_id", type=int, action="append", default=[],
                   help="the short channel id of a first hop to use (repeatable)")
    p.add_argument("--last_hop", default="", help="the pubkey of the node before the destination")
    p.add_argument("--max_parts", type=int, default=16, help="the maximum number of partial payments (MPP)")
    p.add_argument("--max_shard_size_sat", type=int, default=0, help="the largest part when splitting (sat)")
    p.add_argument("--max_shard_size_msat", type=int, default=0, help="the largest part when splitting (msat)")
    p.add_argument("--force", "-f", action="store_true", help="do not ask for confirmation (never asked here)")
    p.add_argument("--allow_self_payment", action="store_true", help="allow sending a circular payment to self")


_DURATION = {"s": 1, "m": 60, "h": 3600}


def _seconds(a: argparse.Namespace) -> int:
    if a.timeout_seconds:
        return int(a.timeout_seconds)
    text = str(a.timeout).strip()
    try:
        return int(text[:-1]) * _DURATION[text[-1]] if text[-1:] in _DURATION else int(text)
    except ValueError:
        raise SystemExit(f"[lncli] invalid timeout: {text!r}") from None


def default_fee_limit_msat(amount_msat: int) -> int:
    """lnd's DefaultRoutingFeeLimitForAmount: 100% up to 1,000 sat, 5% above."""
    return amount_msat if amount_msat <= 1_000_000 else amount_msat * 5 // 100


def _payinvoice(p: argparse.ArgumentParser) -> None:
    p.add_argument("pay_req_pos", nargs="?", default="", metavar="pay_req")
    p.add_argument("--pay_req", default="")
    p.add_argument("--amt", type=int, default=0, help="satoshis to pay a zero-amount invoice")
    _payment_flags(p)


_STATUS = {v: k for k, v in ln.Payment.PaymentStatus.items()}
_HTLC_STATUS = {v: k for k, v in ln.HTLCAttempt.HTLCStatus.items()}


def _progress(updates: Iterator[ln.Payment]) -> ln.Payment:
    """Show each update's attempts as lncli's live table does (on stderr, so stdout stays the result).

    Times are seconds since the payment was created.
    """
    out = sys.stderr
    last: ln.Payment | None = None
    for update in updates:
        if last is None:
            print(f"{'STATUS':<10} {'HTLC_STATUS':<12} {'ATTEMPT_TIME':>12} {'RESOLVE_TIME':>12} {'RECEIVER_AMT':>12} "
                  f"{'FEE':>6} {'TIMELOCK':>8} {'CHAN_OUT':>18}  ROUTE", file=out)
        last = update
        started = update.creation_time_ns / 1e9
        for h in update.htlcs or [None]:
            if h is None:
                print(f"{_STATUS[update.status]:<10} {'-':<12}", file=out)
                continue
            failure = ""
            if h.status == ln.HTLCAttempt.FAILED and h.HasField("failure"):
                failure = f"  {ln.Failure.FailureCode.Name(h.failure.code)} @{h.failure.failure_source_index}"
            hops = h.route.hops
            attempt_s = max(h.attempt_time_ns / 1e9 - started, 0.0)
            resolve_s = max(h.resolve_time_ns / 1e9 - started, 0.0) if h.resolve_time_ns else 0.0
            receiver = hops[-1].amt_to_forward_msat / 1000 if hops else 0
            chan = hops[0].chan_id if hops else 0
            chan_s = f"{chan >> 40}x{chan >> 16 & 0xFFFFFF}x{chan & 0xFFFF}"
            route = "->".join(hop.pub_key[:10] for hop in hops)
            print(f"{_STATUS[update.status]:<10} {_HTLC_STATUS[h.status]:<12} {attempt_s:>12.3f} {resolve_s:>12.3f} "
                  f"{receiver:>12.3f} {h.route.total_fees_msat / 1000:>6.3f} {h.route.total_time_lock:>8} "
                  f"{chan_s:>18}  {route}{failure}", file=out)
        out.flush()
    if last is None:
        raise SystemExit("[lncli] the payment stream ended without an update")
    print(f"Payment hash: {last.payment_hash}", file=out)
    print(f"Payment status: {_STATUS[last.status]}, preimage: {last.payment_preimage}", file=out)
    if last.status == ln.Payment.FAILED:
        print(f"Failure reason: {ln.PaymentFailureReason.Name(last.failure_reason)}", file=out)
    return last


def _send(a: argparse.Namespace, req: router_pb.SendPaymentRequest, amount_msat: int) -> Any:
    """SendPaymentV2 with lncli's flags; ``amount_msat`` (0: unknown) sets the default fee limit."""
    req.timeout_seconds = _seconds(a)
    if a.fee_limit is not None and a.fee_limit_percent is not None:
        raise SystemExit("[lncli] only one of --fee_limit and --fee_limit_percent can be set")
    if a.fee_limit is not None:
        req.fee_limit_sat = a.fee_limit
    elif a.fee_limit_percent is not None:
        req.fee_limit_msat = amount_msat * a.fee_limit_percent // 100
    else:
        req.fee_limit_msat = default_fee_limit_msat(amount_msat)
    req.cltv_limit = a.cltv_limit
    req.max_parts = a.max_parts
    if a.max_shard_size_sat and a.max_shard_size_msat:
        raise SystemExit("[lncli] only one of --max_shard_size_sat and --max_shard_size_msat can be set")
    req.max_shard_size_msat = a.max_shard_size_msat or a.max_shard_size_sat * 1000
    if a.last_hop:
        req.last_hop_pubkey = _bytes_arg(a.last_hop, "last_hop")
    req.outgoing_chan_ids.extend(a.outgoing_chan_id)
    req.allow_self_payment = a.allow_self_payment
    channel, router = _router(a)
    with channel:
        return to_lncli_json(_progress(router.SendPaymentV2(req)))


def _invoice_amount_msat(stub: Any, pay_req: str, amt_sat: int) -> int:
    if amt_sat:
        return amt_sat * 1000
    try:
        return int(stub.DecodePayReq(ln.PayReqString(pay_req=pay_req)).num_msat)
    except grpc.RpcError:
        return 0  # SendPaymentV2 says what is wrong with it


def _payinvoice_run(stub: Any, a: argparse.Namespace) -> Any:
    pay_req = _pay_req(a)
    return _send(a, router_pb.SendPaymentRequest(payment_request=pay_req, amt=a.amt),
                 _invoice_amount_msat(stub, pay_req, a.amt))


def _sendpayment(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dest", "-d", default="", help="the destination node's pubkey (hex)")
    p.add_argument("--amt", "-a", type=int, default=0, help="satoshis to send")
    p.add_argument("--payment_hash", "-r", default="", help="the hex payment hash")
    p.add_argument("--final_cltv_delta", type=int, default=0)
    p.add_argument("--pay_req", default="", help="a BOLT 11 invoice (instead of dest/amt/payment_hash)")
    p.add_argument("--keysend", action="store_true", help="spontaneous payment: a random preimage goes in the onion")
    p.add_argument("--data", default="", help="custom records: type=hexvalue,type=hexvalue")
    _payment_flags(p)


def _sendpayment_run(stub: Any, a: argparse.Namespace) -> Any:
    if a.pay_req:
        pay_req = a.pay_req.strip()
        return _send(a, router_pb.SendPaymentRequest(payment_request=pay_req, amt=a.amt),
                     _invoice_amount_msat(stub, pay_req, a.amt))
    if not a.dest:
        raise SystemExit("[lncli] destination txid argument missing")
    records: dict[int, bytes] = {}
    for item in filter(None, a.data.split(",")):
        t, _, v = item.partition("=")
        records[int(t)] = _bytes_arg(v, f"record {t}")
    payment_hash = _bytes_arg(a.payment_hash, "payment_hash") if a.payment_hash else b""
    if a.keysend:
        if payment_hash:
            raise SystemExit("[lncli] keysend payments do not take a payment hash")
        preimage = os.urandom(32)
        records[KEYSEND_RECORD] = preimage
        payment_hash = hashlib.sha256(preimage).digest()
    elif not payment_hash:
        raise SystemExit("[lncli] payment hash argument missing")
    req = router_pb.SendPaymentRequest(dest=_bytes_arg(a.dest, "dest"), amt=a.amt, payment_hash=payment_hash,
                                       final_cltv_delta=a.final_cltv_delta, dest_custom_records=records)
    return _send(a, req, a.amt * 1000)


def _trackpayment(p: argparse.ArgumentParser) -> None:
    p.add_argument("hash", help="the hex payment hash")


def _trackpayment_run(stub: Any, a: argparse.Namespace) -> Any:
    channel, router = _router(a)
    with channel:
        req = router_pb.TrackPaymentRequest(payment_hash=_bytes_arg(a.hash, "hash"))
        return to_lncli_json(_progress(router.TrackPaymentV2(req)))


def _queryroutes(p: argparse.ArgumentParser) -> None:
    p.add_argument("dest_pos", nargs="?", default="", metavar="dest")
    p.add_argument("amt_pos", nargs="?", type=int, default=0, metavar="amt")
    p.add_argument("--dest", default="", help="the 33-byte hex public key of the destination")
    p.add_argument("--amt", type=int, default=0, help="the amount to send in satoshis")
    p.add_argument("--fee_limit", type=int, default=None, help="maximum fee in satoshis")
    p.add_argument("--fee_limit_percent", type=int, default=None, help="maximum fee as a percentage of the amount")
    p.add_argument("--final_cltv_delta", type=int, default=0, help="the final CLTV delta (default 80)")
    p.add_argument("--use_mc", action="store_true", help="use mission control probabilities")
    p.add_argument("--outgoing_chan_id", type=int, action="append", default=[])
    p.add_argument("--last_hop", default="")
    p.add_argument("--cltv_limit", type=int, default=0)
    p.add_argument("--ignore_pair", action="append", default=[], help="a directed pair to ignore: from:to (hex)")


def _queryroutes_run(stub: Any, a: argparse.Namespace) -> Any:
    dest, amt = a.dest or a.dest_pos, a.amt or a.amt_pos
    if not dest:
        raise SystemExit("[lncli] dest argument missing")
    if not amt:
        raise SystemExit("[lncli] amt argument missing")
    req = ln.QueryRoutesRequest(pub_key=dest, amt=amt, final_cltv_delta=a.final_cltv_delta, use_mission_control=a.use_mc,
                                cltv_limit=a.cltv_limit, outgoing_chan_ids=a.outgoing_chan_id)
    if a.fee_limit is not None:
        req.fee_limit.fixed = a.fee_limit
    elif a.fee_limit_percent is not None:
        req.fee_limit.percent = a.fee_limit_percent
    if a.last_hop:
        req.last_hop_pubkey = _bytes_arg(a.last_hop, "last_hop")
    for pair in a.ignore_pair:
        frm, _, to = pair.partition(":")
        np = req.ignored_pairs.add()
        setattr(np, "from", _bytes_arg(frm, "ignore_pair"))
        np.to = _bytes_arg(to, "ignore_pair")
    return to_lncli_json(stub.QueryRoutes(req))


def _listpayments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--include_incomplete", action="store_true")
    p.add_argument("--index_offset", type=int, default=0)
    p.add_argument("--max_payments", type=int, default=100)
    p.add_argument("--paginate_backwards", action="store_true")
    p.add_argument("--count_total_payments", action="store_true")


def _listpayments_run(stub: Any, a: argparse.Namespace) -> Any:
    req = ln.ListPaymentsRequest(include_incomplete=a.include_incomplete, index_offset=a.index_offset,
                                 max_payments=a.max_payments, reversed=a.paginate_backwards,
                                 count_total_payments=a.count_total_payments)
    return to_lncli_json(stub.ListPayments(req))


def _feereport(p: argparse.ArgumentParser) -> None:
    pass


def _feereport_run(stub: Any, a: argparse.Namespace) -> Any:
    return to_lncli_json(stub.FeeReport(ln.FeeReportRequest()))


_TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2630016, "y": 31557600}


def _time_arg(text: str) -> int:
    """lncli's times: a unix timestamp, "now", or relative to now such as -1d, -3h, -2w (0 = the server's default)."""
    text = text.strip()
    if text == "now":
        return int(time.time())
    if text.startswith("-") and len(text) > 2 and text[-1] in _TIME_UNITS and text[1:-1].isdigit():
        return max(int(time.time()) - int(text[1:-1]) * _TIME_UNITS[text[-1]], 0)
    try:
        value = int(text)
    except ValueError:
        raise SystemExit(f"[lncli] invalid time: {text!r}") from None
    if value < 0:
        raise SystemExit(f"[lncli] invalid time: {text!r}")
    return value


def _fwdinghistory(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start_time", default="-1d",
                   help="the start time for the query, as a unix timestamp or relative to now (e.g. -1w)")
    p.add_argument("--end_time", default="now", help="the end time for the query, as for start_time")
    p.add_argument("--index_offset", type=int, default=0, help="the number of events to skip")
    p.add_argument("--max_events", type=int, default=0, help="the max number of events to return (server: 100)")


def _fwdinghistory_run(stub: Any, a: argparse.Namespace) -> Any:
    req = ln.ForwardingHistoryRequest(start_time=_time_arg(a.start_time), end_time=_time_arg(a.end_time),
                                      index_offset=a.index_offset, num_max_events=a.max_events)
    return to_lncli_json(stub.ForwardingHistory(req))


PAYMENT_COMMANDS: list[Command] = [
    Command("addinvoice", "Add a new invoice.", _addinvoice, _addinvoice_run),
    Command("lookupinvoice", "Lookup an existing invoice by its payment hash.", _lookupinvoice, _lookupinvoice_run),
    Command("listinvoices", "List all invoices currently stored within the database. Any active debug invoices "
            "are ignored.", _listinvoices, _listinvoices_run),
    Command("decodepayreq", "Decode a payment request.", _decodepayreq, _decodepayreq_run),
    Command("payinvoice", "Pay an invoice over lightning.", _payinvoice, _payinvoice_run),
    Command("sendpayment", "Send a payment over lightning.", _sendpayment, _sendpayment_run),
    Command("trackpayment", "Track progress of an existing payment.", _trackpayment, _trackpayment_run),
    Command("listpayments", "List all outgoing payments.", _listpayments, _listpayments_run),
    Command("queryroutes", "Query a route to a destination.", _queryroutes, _queryroutes_run),
    Command("feereport", "Display the current fee policies of all active channels.", _feereport, _feereport_run),
    Command("fwdinghistory", "Query the history of all forwarded HTLCs.", _fwdinghistory, _fwdinghistory_run),
]
