"""lnd's payment RPCs on `canal channeld`: invoices and payments in ``lnrpc.Lightning``, ``routerrpc.Router``
and ``invoicesrpc.Invoices`` (lnd's names, fields, enums and macaroon permissions).

- ``lnrpc.Lightning``: AddInvoice, LookupInvoice, ListInvoices, SubscribeInvoices, DecodePayReq,
  ListPayments, QueryRoutes, FeeReport, ForwardingHistory (a mixin composed onto the channel node's servicer:
  :func:`payment_servicer_class`);
- ``routerrpc.Router``: SendPaymentV2 and TrackPaymentV2 (server streams of ``lnrpc.Payment``),
  SubscribeHtlcEvents (:mod:`htlc.htlc_events`);
- ``invoicesrpc.Invoices``: SubscribeSingleInvoice, LookupInvoiceV2, CancelInvoice, AddHoldInvoice,
  SettleInvoice (hold invoices: see :mod:`htlc.invoices`).

Handlers run on grpcio's thread pool and enter the node's trio loop for each step
(``LightningServicer.run``); a stream waits for the next update in short slices so a
cancelled client frees its thread.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import trio

from base_chain.hashes import sha256
from channels.features import Feature
from channels.service import FEATURE_NAMES, LightningServicer, LnRpcError, invalid
from channels.state import ChannelState
from proto import invoices_pb2 as inv_pb
from proto import invoices_pb2_grpc as inv_grpc
from proto import lightning_pb2 as ln
from proto import router_pb2 as router_pb
from proto import router_pb2_grpc as router_grpc

from .failure import FailureCode
from .forwarding import ForwardingEvent
from .invoice import Invoice, InvoiceError, RouteHintHop, decode_invoice, invoice_prefix, is_expired
from .invoices import (
    DuplicateInvoice,
    InvoiceHtlc,
    InvoiceNotFound,
    InvoiceRecord,
    InvoiceRegistryError,
    InvoiceState,
)
from .payments import (
    UNREADABLE_FAILURE,
    Attempt,
    AttemptFailure,
    Payment,
    PaymentExists,
    Route,
)
from .policy import route_hints_to_us
from .htlc_events import HtlcEvent
from .lifecycle import DEFAULT_MAX_PARTS, DEFAULT_TIMEOUT_S
from .pathfind import NoRouteError
from .send import DEFAULT_FINAL_CLTV_DELTA, KEYSEND_RECORD, PaymentIntent, RouteQuery, stored_route

if TYPE_CHECKING:
    from .node import PaymentNode

__all__ = [
    "PAYMENT_PERMISSIONS",
    "InvoicesServicer",
    "PaymentLightningMixin",
    "RouterServicer",
    "forwarding_event_to_pb",
    "invoice_to_pb",
    "pay_req_to_pb",
    "payment_servicer_class",
    "payment_to_pb",
    "register_payment_services",
]

T = TypeVar("T")

_LN = "/lnrpc.Lightning/"
_ROUTER = "/routerrpc.Router/"
_INVOICES = "/invoicesrpc.Invoices/"
PAYMENT_PERMISSIONS: dict[str, set[str]] = {
    _LN + "AddInvoice": {"invoices:write"},
    _LN + "LookupInvoice": {"invoices:read"},
    _LN + "ListInvoices": {"invoices:read"},
    _LN + "SubscribeInvoices": {"invoices:read"},
    _LN + "DecodePayReq": {"offchain:read"},
    _LN + "ListPayments": {"offchain:read"},
    _LN + "FeeReport": {"offchain:read"},
    _LN + "ForwardingHistory": {"offchain:read"},
    _LN + "QueryRoutes": {"offchain:read"},
    _ROUTER + "SendPaymentV2": {"offchain:write"},
    _ROUTER + "TrackPaymentV2": {"offchain:read"},
    _ROUTER + "EstimateRouteFee": {"offchain:read"},
    _ROUTER + "QueryMissionControl": {"offchain:read"},
    _ROUTER + "SubscribeHtlcEvents": {"offchain:read"},
    _ROUTER + "UpdateChanStatus": {"offchain:write"},
    _INVOICES + "SubscribeSingleInvoice": {"invoices:read"},
    _INVOICES + "CancelInvoice": {"invoices:write"},
    _INVOICES + "AddHoldInvoice": {"invoices:write"},
    _INVOICES + "SettleInvoice": {"invoices:write"},
    _INVOICES + "LookupInvoiceV2": {"invoices:read"},
}
"""lnd's permissions for these methods (the unimplemented ones answer UNIMPLEMENTED, not PERMISSION_DENIED)."""

DEFAULT_MAX_INVOICES = 100
DEFAULT_MAX_FORWARDING_EVENTS = 100
FORWARDING_HISTORY_DEFAULT_SPAN_S = 24 * 3600
STREAM_POLL_S = 1.0

# --- protobuf views ---------------------------------------------------------------------------------------

_FEATURE_BY_PAIR = {int(f): name for f, name in FEATURE_NAMES.items()}
_FEATURE_BY_PAIR[int(Feature.option_payment_metadata)] = "payment-metadata"


def feature_bits_to_pb(features: int) -> dict[int, ln.Feature]:
    out: dict[int, ln.Feature] = {}
    for bit in range(features.bit_length()):
        if features >> bit & 1:
            name = _FEATURE_BY_PAIR.get(bit & ~1)
            out[bit] = ln.Feature(name=name or "unknown", is_required=bit % 2 == 0, is_known=name is not None)
    return out


def _invoice_htlc_to_pb(h: InvoiceHtlc) -> ln.InvoiceHTLC:
    return ln.InvoiceHTLC(
        chan_id=h.short_channel_id, htlc_index=h.htlc_id, amt_msat=h.amount_msat, accept_height=h.accept_height,
        accept_time=h.accept_time, resolve_time=h.resolve_time, expiry_height=h.expiry_height, state=h.state.name,
        custom_records=dict(h.custom_records), mpp_total_amt_msat=h.mpp_total_msat,
    )


def invoice_to_pb(r: InvoiceRecord) -> ln.Invoice:
    """As lnd's ``CreateRPCInvoice`` fills it (``amt_paid``, deprecated, is in msat there too)."""
    return ln.Invoice(
        memo=r.memo, r_preimage=r.preimage or b"", r_hash=r.payment_hash, value=r.value_msat // 1000,
        value_msat=r.value_msat, settled=r.state is InvoiceState.SETTLED, creation_date=r.creation_date,
        settle_date=r.settle_date, payment_request=r.payment_request, description_hash=r.description_hash or b"",
        expiry=r.expiry, cltv_expiry=r.cltv_expiry, private=r.private, add_index=r.add_index,
        settle_index=r.settle_index, amt_paid=r.amt_paid_msat, amt_paid_sat=r.amt_paid_msat // 1000,
        amt_paid_msat=r.amt_paid_msat, state=r.state.name, htlcs=[_invoice_htlc_to_pb(h) for h in r.htlcs],
        features=feature_bits_to_pb(r.features), is_keysend=r.is_keysend, payment_addr=r.payment_secret,
    )


def route_hints_from_pb(hints: Iterable[ln.RouteHint]) -> tuple[tuple[RouteHintHop, ...], ...]:
    """lnd's ``RouteHint`` messages as BOLT 11 route hints (bad keys: INVALID_ARGUMENT)."""
    try:
        return tuple(tuple(RouteHintHop(bytes.fromhex(h.node_id), h.chan_id, h.fee_base_msat,
                                        h.fee_proportional_millionths, h.cltv_expiry_delta) for h in hint.hop_hints)
                     for hint in hints if hint.hop_hints)
    except (ValueError, InvoiceError) as e:
        raise invalid(f"invalid route hint: {e}") from None


def htlc_event_to_pb(e: HtlcEvent) -> router_pb.HtlcEvent:
    """lnd's ``HtlcEvent``: ids, time, type and the one event of the ``event`` oneof."""
    info = router_pb.HtlcInfo(incoming_timelock=e.incoming_timelock, outgoing_timelock=e.outgoing_timelock,
                              incoming_amt_msat=e.incoming_amt_msat, outgoing_amt_msat=e.outgoing_amt_msat)
    out = router_pb.HtlcEvent(
        incoming_channel_id=e.incoming_channel_id, outgoing_channel_id=e.outgoing_channel_id,
        incoming_htlc_id=e.incoming_htlc_id, outgoing_htlc_id=e.outgoing_htlc_id, timestamp_ns=e.timestamp_ns,
        event_type=router_pb.HtlcEvent.EventType.Name(int(e.event_type)))
    if e.kind == "forward":
        out.forward_event.CopyFrom(router_pb.ForwardEvent(info=info))
    elif e.kind == "settle":
        out.settle_event.CopyFrom(router_pb.SettleEvent(preimage=e.preimage))
    elif e.kind == "forward_fail":
        out.forward_fail_event.CopyFrom(router_pb.ForwardFailEvent())
    else:
        try:
            wire = ln.Failure.FailureCode.Value(FailureCode(e.wire_failure).name)
        except ValueError:
            wire = ln.Failure.UNKNOWN_FAILURE
        out.link_fail_event.CopyFrom(router_pb.LinkFailEvent(
            info=info, wire_failure=wire, failure_detail=router_pb.NO_DETAIL, failure_string=e.failure_string))
    return out


def default_fee_limit_msat(amount_msat: int) -> int:
    """lnd's ``DefaultRoutingFeeLimitForAmount``: 100% up to 1,000 sat, 5% above."""
    return amount_msat if amount_msat <= 1_000_000 else amount_msat * 5 // 100


def pay_req_to_pb(inv: Invoice) -> ln.PayReq:
    try:
        fallbacks = inv.fallback_addresses()
    except InvoiceError:
        fallbacks = []
    hints = [ln.RouteHint(hop_hints=[ln.HopHint(
        node_id=h.pubkey.hex(), chan_id=h.short_channel_id, fee_base_msat=h.fee_base_msat,
        fee_proportional_millionths=h.fee_proportional_millionths, cltv_expiry_delta=h.cltv_expiry_delta)
        for h in hint]) for hint in inv.route_hints]
    amount = inv.amount_msat or 0
    return ln.PayReq(
        destination=(inv.payee or b"").hex(), payment_hash=inv.payment_hash.hex(), num_satoshis=amount // 1000,
        timestamp=inv.timestamp, expiry=inv.expiry, description=inv.description or "",
        description_hash=inv.description_hash.hex() if inv.description_hash else "",
        fallback_addr=fallbacks[0] if fallbacks else "", cltv_expiry=inv.min_final_cltv_expiry_delta,
        route_hints=hints, payment_addr=inv.payment_secret, num_msat=amount, features=feature_bits_to_pb(inv.features),
    )


def _route_to_pb(route: Route) -> ln.Route:
    hops = []
    for h in route.hops:
        mpp = None
        if h.payment_addr is not None:
            mpp = ln.MPPRecord(payment_addr=h.payment_addr, total_amt_msat=h.total_msat)
        hops.append(ln.Hop(
            chan_id=h.short_channel_id, chan_capacity=h.chan_capacity_sat, amt_to_forward=h.amt_to_forward_msat // 1000,
            fee=h.fee_msat // 1000, expiry=h.expiry, amt_to_forward_msat=h.amt_to_forward_msat, fee_msat=h.fee_msat,
            pub_key=h.pubkey.hex(), tlv_payload=True, mpp_record=mpp, custom_records=dict(h.custom_records),
        ))
    return ln.Route(total_time_lock=route.total_time_lock, total_fees=route.total_fees_msat // 1000,
                    total_amt=route.total_amt_msat // 1000, hops=hops, total_fees_msat=route.total_fees_msat,
                    total_amt_msat=route.total_amt_msat)


def _failure_to_pb(f: AttemptFailure) -> ln.Failure:
    if f.code == UNREADABLE_FAILURE:
        code = ln.Failure.UNREADABLE_FAILURE
    else:
        try:
            code = ln.Failure.FailureCode.Value(FailureCode(f.code).name)
        except ValueError:
            code = ln.Failure.UNKNOWN_FAILURE
    return ln.Failure(code=code, htlc_msat=f.htlc_msat, onion_sha_256=f.onion_sha256, cltv_expiry=f.cltv_expiry,
                      flags=f.flags, failure_source_index=f.source_index, height=f.height)


def _attempt_to_pb(a: Attempt) -> ln.HTLCAttempt:
    return ln.HTLCAttempt(
        attempt_id=a.attempt_id, status=a.status.name, route=_route_to_pb(a.route), attempt_time_ns=a.attempt_time_ns,
        resolve_time_ns=a.resolve_time_ns, failure=None if a.failure is None else _failure_to_pb(a.failure),
        preimage=a.preimage or b"",
    )


def payment_to_pb(p: Payment) -> ln.Payment:
    """As lnd's ``marshallPayment`` (an unknown preimage is 32 zero bytes in hex)."""
    return ln.Payment(
        payment_hash=p.payment_hash.hex(), value=p.value_msat // 1000, creation_date=p.creation_time_ns // 10**9,
        fee=p.fee_msat // 1000, payment_preimage=(p.preimage or bytes(32)).hex(), value_sat=p.value_msat // 1000,
        value_msat=p.value_msat, payment_request=p.payment_request, status=p.status.name, fee_sat=p.fee_msat // 1000,
        fee_msat=p.fee_msat, creation_time_ns=p.creation_time_ns, htlcs=[_attempt_to_pb(a) for a in p.attempts],
        payment_index=p.payment_index, failure_reason="FAILURE_REASON_" + p.failure_reason.name,
    )


def forwarding_event_to_pb(e: ForwardingEvent) -> ln.ForwardingEvent:
    """As lnd's ``ForwardingHistory`` fills it (sat amounts rounded down; our timestamps are whole seconds)."""
    return ln.ForwardingEvent(
        timestamp=e.timestamp, timestamp_ns=e.timestamp * 10**9, chan_id_in=e.chan_id_in, chan_id_out=e.chan_id_out,
        amt_in=e.amt_in_msat // 1000, amt_out=e.amt_out_msat // 1000, amt_in_msat=e.amt_in_msat,
        amt_out_msat=e.amt_out_msat, fee=e.fee_msat // 1000, fee_msat=e.fee_msat,
        incoming_htlc_id=e.incoming_htlc_id, outgoing_htlc_id=e.outgoing_htlc_id,
    )


# --- plumbing -----------------------------------------------------------------------------------------------

_END = object()


def _registry_error(e: InvoiceRegistryError) -> LnRpcError:
    if isinstance(e, DuplicateInvoice):
        return LnRpcError(grpc.StatusCode.ALREADY_EXISTS, e.reason)
    if isinstance(e, InvoiceNotFound):
        return LnRpcError(grpc.StatusCode.NOT_FOUND, e.reason)
    return invalid(e.reason)


def _hash_arg(raw: bytes, text: str = "") -> bytes:
    if not raw and text:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise invalid("r_hash_str is not hex") from None
    if len(raw) != 32:
        raise invalid(f"payment hash must be exactly 32 bytes, is {len(raw)}")
    return bytes(raw)


class _Streams:
    """Server-streaming helpers shared by the three servicers."""

    node: PaymentNode
    _ln: LightningServicer

    def run(self, context: grpc.ServicerContext, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` on the node's trio loop; errors become gRPC statuses (``LightningServicer.run``)."""
        return self._ln.run(context, fn)

    def stream(self, context: grpc.ServicerContext, recv: trio.MemoryReceiveChannel[T]) -> Iterator[T]:
        """Yield what ``recv`` delivers until the client leaves or the channel ends; close it afterwards."""

        async def next_item() -> Any:
            with trio.move_on_after(STREAM_POLL_S):
                try:
                    return await recv.receive()
                except (trio.EndOfChannel, trio.ClosedResourceError):
                    return _END
            return None

        try:
            while context.is_active():
                item = self.run(context, next_item)
                if item is _END:
                    return
                if item is not None:
                    yield item
        finally:
            self.close(recv)

    def close(self, recv: trio.MemoryReceiveChannel[Any]) -> None:
        """Unsubscribe (on the trio thread; nothing to do if the node has stopped)."""
        try:
            trio.from_thread.run_sync(recv.close, trio_token=self.node.trio_token)
        except trio.RunFinishedError:
            pass

    def follow_payment(self, context: grpc.ServicerContext, first: Payment, recv: trio.MemoryReceiveChannel[Payment],
                       no_inflight_updates: bool) -> Iterator[ln.Payment]:
        """lnd's payment stream: each new state of the payment, ending with SUCCEEDED or FAILED."""
        last = first
        if first.is_final or not no_inflight_updates:
            yield payment_to_pb(first)
        if first.is_final:
            self.close(recv)
            return
        for payment in self.stream(context, recv):
            if payment == last:
                continue
            last = payment
            if payment.is_final or not no_inflight_updates:
                yield payment_to_pb(payment)
            if payment.is_final:
                return


# --- lnrpc.Lightning -----------------------------------------------------------------------------------------


class PaymentLightningMixin(LightningServicer, _Streams):
    """lnd's invoice and payment RPCs of ``lnrpc.Lightning``; composed onto the channel node's servicer."""

    node: PaymentNode

    def __init__(self, daemon: Any) -> None:
        super().__init__(daemon)
        self.node = daemon

    def AddInvoice(self, request: ln.Invoice, context: grpc.ServicerContext) -> ln.AddInvoiceResponse:
        async def fn() -> ln.AddInvoiceResponse:
            if request.value and request.value_msat and request.value * 1000 != request.value_msat:
                raise invalid("value and value_msat are mutually exclusive")
            if request.fallback_addr:
                raise LnRpcError(grpc.StatusCode.UNIMPLEMENTED, "fallback addresses are not supported yet")
            if request.is_amp or request.is_blinded:
                raise LnRpcError(grpc.StatusCode.UNIMPLEMENTED, "AMP and blinded invoices are not supported")
            try:
                record = self.node.invoices.add(
                    now=self.node.now(), value_msat=request.value_msat or request.value * 1000, memo=request.memo,
                    description_hash=bytes(request.description_hash) or None, expiry=request.expiry,
                    cltv_expiry=request.cltv_expiry, preimage=bytes(request.r_preimage) or None,
                    private=request.private,
                    # Canal's channels are unannounced, so invoices always carry hints to reach them.
                    route_hints=route_hints_to_us(list(self.node.channels.channels.values()), self.node.graph),
                )
            except InvoiceRegistryError as e:
                raise _registry_error(e) from None
            return ln.AddInvoiceResponse(r_hash=record.payment_hash, payment_request=record.payment_request,
                                         add_index=record.add_index, payment_addr=record.payment_secret)
        return self.run(context, fn)

    def LookupInvoice(self, request: ln.PaymentHash, context: grpc.ServicerContext) -> ln.Invoice:
        async def fn() -> ln.Invoice:
            record = self.node.invoices.lookup(_hash_arg(bytes(request.r_hash), request.r_hash_str))
            if record is None:
                raise LnRpcError(grpc.StatusCode.NOT_FOUND, "unable to locate invoice")
            return invoice_to_pb(record)
        return self.run(context, fn)

    def ListInvoices(self, request: ln.ListInvoiceRequest, context: grpc.ServicerContext) -> ln.ListInvoiceResponse:
        async def fn() -> ln.ListInvoiceResponse:
            records = self.node.invoices.list_invoices(
                pending_only=request.pending_only, index_offset=request.index_offset,
                max_invoices=request.num_max_invoices or DEFAULT_MAX_INVOICES, reversed=request.reversed,
                creation_date_start=request.creation_date_start, creation_date_end=request.creation_date_end,
            )
            return ln.ListInvoiceResponse(
                invoices=[invoice_to_pb(r) for r in records],
                first_index_offset=records[0].add_index if records else 0,
                last_index_offset=records[-1].add_index if records else 0,
            )
        return self.run(context, fn)

    def SubscribeInvoices(self, request: ln.InvoiceSubscription, context: grpc.ServicerContext) -> Iterator[ln.Invoice]:
        async def start() -> tuple[list[InvoiceRecord], trio.MemoryReceiveChannel[InvoiceRecord]]:
            recv = self.node.invoice_updates.subscribe(None)  # first, so nothing falls between backlog and live
            backlog: list[InvoiceRecord] = []
            if request.add_index:
                backlog += self.node.invoices.added_since(request.add_index)
            if request.settle_index:
                backlog += self.node.invoices.settled_since(request.settle_index)
            return backlog, recv

        backlog, recv = self.run(context, start)
        for record in backlog:
            yield invoice_to_pb(record)
        for record in self.stream(context, recv):
            if record.state in (InvoiceState.OPEN, InvoiceState.SETTLED):  # lnd: adds and settles only
                yield invoice_to_pb(record)

    def DecodePayReq(self, request: ln.PayReqString, context: grpc.ServicerContext) -> ln.PayReq:
        async def fn() -> ln.PayReq:
            try:
                return pay_req_to_pb(decode_invoice(request.pay_req.strip(), invoice_prefix(self.node.params)))
            except InvoiceError as e:
                raise invalid(f"invalid payment request: {e.reason}") from None
        return self.run(context, fn)

    def ListPayments(self, request: ln.ListPaymentsRequest, context: grpc.ServicerContext) -> ln.ListPaymentsResponse:
        async def fn() -> ln.ListPaymentsResponse:
            store = self.node.payments
            payments = store.list_payments(
                include_incomplete=request.include_incomplete, index_offset=request.index_offset,
                max_payments=request.max_payments, reversed=request.reversed,
                creation_date_start=request.creation_date_start, creation_date_end=request.creation_date_end,
            )
            out = [payment_to_pb(p) for p in payments]
            if request.omit_hops:
                for p in out:
                    for h in p.htlcs:
                        del h.route.hops[:]
            return ln.ListPaymentsResponse(
                payments=out, first_index_offset=payments[0].payment_index if payments else 0,
                last_index_offset=payments[-1].payment_index if payments else 0,
                total_num_payments=store.count() if request.count_total_payments else 0,
            )
        return self.run(context, fn)

    def QueryRoutes(self, request: ln.QueryRoutesRequest, context: grpc.ServicerContext) -> ln.QueryRoutesResponse:
        async def fn() -> ln.QueryRoutesResponse:
            r = request
            try:
                dest = bytes.fromhex(r.pub_key)
                source = bytes.fromhex(r.source_pub_key) if r.source_pub_key else None
                ignored: list[bytes | int | tuple[int, int]] = [bytes(n) for n in r.ignored_nodes]
                pairs = [(bytes(getattr(p, "from")), bytes(p.to)) for p in r.ignored_pairs]
            except ValueError:
                raise invalid("pub_key and source_pub_key must be hex public keys") from None
            if len(dest) != 33 or (source is not None and len(source) != 33):
                raise invalid("invalid vertex length, want 33")
            if r.amt and r.amt_msat:
                raise invalid("amt and amt_msat are mutually exclusive")
            amount = r.amt * 1000 if r.amt else r.amt_msat
            if amount <= 0:
                raise invalid("amount must be greater than zero")
            limit = r.fee_limit
            kind = limit.WhichOneof("limit")
            fee_limit = (limit.fixed * 1000 if kind == "fixed" else limit.fixed_msat if kind == "fixed_msat"
                         else amount * limit.percent // 100 if kind == "percent" else default_fee_limit_msat(amount))
            ignored += [(e.channel_id, int(e.direction_reverse)) for e in r.ignored_edges]
            records = tuple(sorted((int(t), bytes(v)) for t, v in r.dest_custom_records.items()))
            if any(t < 65536 for t, _ in records):
                raise invalid("no custom records with types below 65536 allowed")
            query = RouteQuery(
                destination=dest, amount_msat=amount, final_cltv_delta=r.final_cltv_delta or DEFAULT_FINAL_CLTV_DELTA,
                fee_limit_msat=fee_limit, excluded=tuple(ignored), ignored_pairs=tuple(pairs), source=source,
                cltv_limit=r.cltv_limit, last_hop=bytes(r.last_hop_pubkey) or None,
                route_hints=route_hints_from_pb(r.route_hints), outgoing_chan_ids=tuple(r.outgoing_chan_ids),
                use_mission_control=r.use_mission_control)
            try:
                route = self.node.payer.query_route(query)
            except NoRouteError as e:
                raise LnRpcError(grpc.StatusCode.UNKNOWN, f"unable to find a path to destination: {e.reason}") from None
            intent = PaymentIntent(destination=dest, amount_msat=amount, payment_hash=bytes(32), custom_records=records)
            return ln.QueryRoutesResponse(routes=[_route_to_pb(stored_route(route, intent))],
                                          success_prob=route.probability)
        return self.run(context, fn)

    def FeeReport(self, request: ln.FeeReportRequest, context: grpc.ServicerContext) -> ln.FeeReportResponse:
        async def fn() -> ln.FeeReportResponse:
            fees = []
            for mc in self.node.channels.channels.values():
                c = mc.channel.commitments
                if mc.channel.state is not ChannelState.NORMAL or c is None or not mc.channel.short_channel_id:
                    continue  # lnd reports its open channels (those ListChannels lists)
                op = c.params.funding_outpoint
                policy = self.node.gossip.policies.policy(f"{op.txid[::-1].hex()}:{op.index}")  # what we forward at
                fees.append(ln.ChannelFeeReport(
                    chan_id=mc.channel.short_channel_id, channel_point=f"{op.txid[::-1].hex()}:{op.index}",
                    base_fee_msat=policy.fee_base_msat, fee_per_mil=policy.fee_rate_ppm,
                    fee_rate=policy.fee_rate_ppm / 1e6,
                ))
            sums = self.node.forwarder.fee_report(self.node.now())
            return ln.FeeReportResponse(  # lnd: the msat sums, then rounded down to sat
                channel_fees=fees, day_fee_sum=sums.day_fee_sum_msat // 1000,
                week_fee_sum=sums.week_fee_sum_msat // 1000, month_fee_sum=sums.month_fee_sum_msat // 1000,
            )
        return self.run(context, fn)

    def ForwardingHistory(self, request: ln.ForwardingHistoryRequest,
                          context: grpc.ServicerContext) -> ln.ForwardingHistoryResponse:
        async def fn() -> ln.ForwardingHistoryResponse:
            if request.incoming_chan_ids or request.outgoing_chan_ids:
                raise LnRpcError(grpc.StatusCode.UNIMPLEMENTED, "filtering by channel ids is not supported")
            now = self.node.now()
            end_time = request.end_time or now
            start_time = request.start_time or now - FORWARDING_HISTORY_DEFAULT_SPAN_S
            if start_time > end_time:
                raise invalid("start time is greater than end time")
            page = self.node.forwarder.forwarding_history(
                start_time, end_time, request.index_offset, request.num_max_events or DEFAULT_MAX_FORWARDING_EVENTS)
            return ln.ForwardingHistoryResponse(
                forwarding_events=[forwarding_event_to_pb(e) for e in page.forwarding_events],
                last_offset_index=page.last_offset_index,
            )
        return self.run(context, fn)


def payment_servicer_class(base: type[Any]) -> type[Any]:
    """The node's ``lnrpc.Lightning`` servicer: ``base`` (the channel node's) with the payment RPCs added."""
    return type("PaymentLightningServicer", (PaymentLightningMixin, base), {})


# --- routerrpc.Router ------------------------------------------------------------------------------------------


class RouterServicer(router_grpc.RouterServicer, _Streams):
    def __init__(self, node: PaymentNode) -> None:
        self.node = node
        self._ln = LightningServicer(node)

    def _intent(self, r: router_pb.SendPaymentRequest) -> PaymentIntent:
        node = self.node
        if r.amt and r.amt_msat:
            raise invalid("amt and amt_msat are mutually exclusive")
        amount = r.amt * 1000 if r.amt else r.amt_msat
        if amount < 0:
            raise invalid("amount must not be negative")
        if r.amp:
            raise LnRpcError(grpc.StatusCode.UNIMPLEMENTED, "AMP payments are not supported")
        records = dict(r.dest_custom_records)
        keysend = records.pop(KEYSEND_RECORD, None)
        if any(t < 65536 for t in records):
            raise invalid("no custom records with types below 65536 allowed")
        custom = tuple(sorted(records.items()))
        if r.payment_request:
            if keysend is not None:
                raise invalid("keysend is not possible with a payment request")
            try:
                inv = decode_invoice(r.payment_request.strip(), invoice_prefix(node.params))
            except InvoiceError as e:
                raise invalid(f"invalid payment request: {e.reason}") from None
            if inv.amount_msat:
                if amount:
                    raise invalid("amount must not be specified when paying a non-zero amount invoice")
                amount = inv.amount_msat
            elif not amount:
                raise invalid("amount must be specified when paying a zero amount invoice")
            if is_expired(inv, node.now()):
                until = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(inv.expires_at))
                raise invalid(f"invoice expired. Valid until {until} UTC")
            assert inv.payee is not None
            secret: bytes | None = inv.payment_secret
            destination, payment_hash = inv.payee, inv.payment_hash
            final_delta = inv.min_final_cltv_expiry_delta
            mpp = bool(inv.features >> int(Feature.basic_mpp) & 0b11)  # lnd splits only for a payee that says so
            hints = inv.route_hints
        else:
            hints = ()
            destination = bytes(r.dest)
            if len(destination) != 33:
                raise invalid(f"invalid vertex length of {len(destination)}, want 33")
            payment_hash = bytes(r.payment_hash)
            if keysend is not None:
                if len(keysend) != 32:
                    raise invalid("keysend preimage must be 32 bytes")
                payment_hash = payment_hash or sha256(keysend)
            if len(payment_hash) != 32:
                raise invalid(f"payment hash must be exactly 32 bytes, is {len(payment_hash)}")
            secret = bytes(r.payment_addr) if r.payment_addr else None
            if secret is not None and len(secret) != 32:
                raise invalid("payment_addr must be 32 bytes")
            final_delta = r.final_cltv_delta or DEFAULT_FINAL_CLTV_DELTA
            mpp = bool({int(Feature.basic_mpp), int(Feature.basic_mpp) + 1} & set(r.dest_features))
            if not amount:
                raise invalid("amount must be specified")
        if amount <= 0:
            raise invalid("amount must be greater than zero")
        if destination.hex() == node.identity_pubkey and not r.allow_self_payment:
            raise invalid("self-payments not allowed")
        if not r.payment_request and r.route_hints:
            hints = route_hints_from_pb(r.route_hints)
        if r.fee_limit_sat and r.fee_limit_msat:
            raise invalid("sat and msat arguments are mutually exclusive")
        fee_limit = r.fee_limit_sat * 1000 if r.fee_limit_sat else r.fee_limit_msat
        if fee_limit < 0 or r.timeout_seconds < 0 or r.cltv_limit < 0:
            raise invalid("fee_limit, timeout_seconds and cltv_limit must not be negative")
        last_hop = bytes(r.last_hop_pubkey) or None
        if last_hop is not None and len(last_hop) != 33:
            raise invalid(f"invalid vertex length of {len(last_hop)}, want 33")
        return PaymentIntent(
            destination=destination, amount_msat=amount, payment_hash=payment_hash, final_cltv_delta=final_delta,
            payment_secret=secret, keysend_preimage=keysend, payment_request=r.payment_request.strip(),
            custom_records=custom, outgoing_chan_ids=tuple(r.outgoing_chan_ids), cltv_limit=r.cltv_limit,
            route_hints=hints, fee_limit_msat=fee_limit, timeout_s=float(r.timeout_seconds or DEFAULT_TIMEOUT_S),
            max_parts=(r.max_parts or DEFAULT_MAX_PARTS) if mpp else 1, last_hop=last_hop,
            max_shard_msat=r.max_shard_size_msat, allow_self_payment=r.allow_self_payment,
        )

    def SendPaymentV2(self, request: router_pb.SendPaymentRequest,
                      context: grpc.ServicerContext) -> Iterator[ln.Payment]:
        async def start() -> tuple[Payment, trio.MemoryReceiveChannel[Payment]]:
            intent = self._intent(request)
            try:
                return await self.node.payer.send(intent)
            except PaymentExists as e:
                raise LnRpcError(grpc.StatusCode.ALREADY_EXISTS, e.reason) from None

        first, recv = self.run(context, start)
        yield from self.follow_payment(context, first, recv, request.no_inflight_updates)

    def SubscribeHtlcEvents(self, request: router_pb.SubscribeHtlcEventsRequest,
                            context: grpc.ServicerContext) -> Iterator[router_pb.HtlcEvent]:
        async def start() -> trio.MemoryReceiveChannel[HtlcEvent]:
            return self.node.payer.htlc_events.subscribe()

        recv = self.run(context, start)
        yield router_pb.HtlcEvent(subscribed_event=router_pb.SubscribedEvent())  # lnd's first message
        for event in self.stream(context, recv):
            yield htlc_event_to_pb(event)

    def TrackPaymentV2(self, request: router_pb.TrackPaymentRequest,
                       context: grpc.ServicerContext) -> Iterator[ln.Payment]:
        async def start() -> tuple[Payment, trio.MemoryReceiveChannel[Payment]]:
            payment, recv = self.node.payer.track(_hash_arg(bytes(request.payment_hash)))
            if payment is None:
                recv.close()
                raise LnRpcError(grpc.StatusCode.NOT_FOUND, "payment isn't initiated")
            return payment, recv

        first, recv = self.run(context, start)
        yield from self.follow_payment(context, first, recv, request.no_inflight_updates)

    def UpdateChanStatus(self, request: router_pb.UpdateChanStatusRequest,
                         context: grpc.ServicerContext) -> router_pb.UpdateChanStatusResponse:
        from .chan_status import ChanStatusAction, ChanStatusError, NotTracked

        async def fn() -> router_pb.UpdateChanStatusResponse:
            cp = request.chan_point
            txid = bytes(cp.funding_txid_bytes)[::-1].hex() if cp.funding_txid_bytes else cp.funding_txid_str
            if len(txid) != 64 or request.action not in (a.value for a in ChanStatusAction):
                raise invalid("chan_point with a funding txid and a known action are required")
            try:
                await self.node.gossip.update_chan_status(f"{txid}:{cp.output_index}",
                                                          ChanStatusAction(request.action))
            except NotTracked as e:
                raise LnRpcError(grpc.StatusCode.NOT_FOUND, e.reason) from None
            except ChanStatusError as e:
                raise LnRpcError(grpc.StatusCode.FAILED_PRECONDITION, e.reason) from None
            return router_pb.UpdateChanStatusResponse()
        return self.run(context, fn)


# --- invoicesrpc.Invoices ------------------------------------------------------------------------------------


class InvoicesServicer(inv_grpc.InvoicesServicer, _Streams):
    def __init__(self, node: PaymentNode) -> None:
        self.node = node
        self._ln = LightningServicer(node)

    def SubscribeSingleInvoice(self, request: inv_pb.SubscribeSingleInvoiceRequest,
                               context: grpc.ServicerContext) -> Iterator[ln.Invoice]:
        async def start() -> tuple[InvoiceRecord, trio.MemoryReceiveChannel[InvoiceRecord]]:
            payment_hash = _hash_arg(bytes(request.r_hash))
            recv = self.node.invoice_updates.subscribe(payment_hash)
            record = self.node.invoices.lookup(payment_hash)
            if record is None:
                recv.close()
                raise LnRpcError(grpc.StatusCode.NOT_FOUND, "unable to locate invoice")
            return record, recv

        record, recv = self.run(context, start)
        terminal = (InvoiceState.SETTLED, InvoiceState.CANCELED)
        yield invoice_to_pb(record)
        if record.state in terminal:
            self.close(recv)
            return
        for update in self.stream(context, recv):
            yield invoice_to_pb(update)
            if update.state in terminal:  # as lnd: no update can follow, the stream ends
                return

    def LookupInvoiceV2(self, request: inv_pb.LookupInvoiceMsg, context: grpc.ServicerContext) -> ln.Invoice:
        async def fn() -> ln.Invoice:
            which = request.WhichOneof("invoice_ref")
            if which == "payment_hash":
                record = self.node.invoices.lookup(_hash_arg(bytes(request.payment_hash)))
            elif which == "payment_addr":
                record = self.node.invoices.lookup_by_payment_addr(bytes(request.payment_addr))
            elif which == "set_id":
                raise LnRpcError(grpc.StatusCode.UNIMPLEMENTED, "AMP set ids are not supported")
            else:
                raise invalid("no invoice reference given")
            if record is None:
                raise LnRpcError(grpc.StatusCode.NOT_FOUND, "unable to locate invoice")
            return invoice_to_pb(record)
        return self.run(context, fn)

    def CancelInvoice(self, request: inv_pb.CancelInvoiceMsg, context: grpc.ServicerContext) -> inv_pb.CancelInvoiceResp:
        async def fn() -> inv_pb.CancelInvoiceResp:
            try:
                self.node.invoices.cancel(_hash_arg(bytes(request.payment_hash)), self.node.now())
            except InvoiceNotFound as e:
                raise LnRpcError(grpc.StatusCode.NOT_FOUND, e.reason) from None
            except InvoiceRegistryError as e:
                raise LnRpcError(grpc.StatusCode.FAILED_PRECONDITION, e.reason) from None
            return inv_pb.CancelInvoiceResp()
        return self.run(context, fn)


    def AddHoldInvoice(self, request: inv_pb.AddHoldInvoiceRequest,
                       context: grpc.ServicerContext) -> inv_pb.AddHoldInvoiceResp:
        async def fn() -> inv_pb.AddHoldInvoiceResp:
            if request.value and request.value_msat and request.value * 1000 != request.value_msat:
                raise invalid("value and value_msat are mutually exclusive")
            if len(request.hash) != 32:
                raise invalid(f"invalid hash length of {len(request.hash)}, want 32")
            if request.fallback_addr:
                raise LnRpcError(grpc.StatusCode.UNIMPLEMENTED, "fallback addresses are not supported yet")
            if request.route_hints:
                raise LnRpcError(grpc.StatusCode.UNIMPLEMENTED, "explicit route hints are not supported yet")
            try:
                record = self.node.invoices.add_hold(
                    now=self.node.now(), payment_hash=bytes(request.hash),
                    value_msat=request.value_msat or request.value * 1000, memo=request.memo,
                    description_hash=bytes(request.description_hash) or None, expiry=request.expiry,
                    cltv_expiry=request.cltv_expiry, private=request.private,
                    route_hints=route_hints_to_us(list(self.node.channels.channels.values()), self.node.graph),
                )
            except InvoiceRegistryError as e:
                raise _registry_error(e) from None
            return inv_pb.AddHoldInvoiceResp(payment_request=record.payment_request, add_index=record.add_index,
                                             payment_addr=record.payment_secret)
        return self.run(context, fn)

    def SettleInvoice(self, request: inv_pb.SettleInvoiceMsg, context: grpc.ServicerContext) -> inv_pb.SettleInvoiceResp:
        async def fn() -> inv_pb.SettleInvoiceResp:
            if len(request.preimage) != 32:
                raise invalid(f"invalid preimage length of {len(request.preimage)}, want 32")
            try:  # the preimage is on disk before the held HTLCs are fulfilled (the node's invoice listener)
                self.node.invoices.settle_hold(bytes(request.preimage), self.node.now())
            except InvoiceNotFound as e:
                raise LnRpcError(grpc.StatusCode.NOT_FOUND, e.reason) from None
            except InvoiceRegistryError as e:
                raise LnRpcError(grpc.StatusCode.FAILED_PRECONDITION, e.reason) from None
            return inv_pb.SettleInvoiceResp()
        return self.run(context, fn)


def register_payment_services(node: PaymentNode, server: grpc.Server) -> None:
    router_grpc.add_RouterServicer_to_server(RouterServicer(node), server)
    inv_grpc.add_InvoicesServicer_to_server(InvoicesServicer(node), server)
