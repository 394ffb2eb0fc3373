"""`canal bridged`: the cross-chain Lightning bridge daemon, a trio shell around :mod:`relay.bridge`.

The operator runs one `canal channeld` on alpha and one on beta; bridged is a
gRPC *client* of both (their ``tls.cert`` and ``admin.macaroon`` from their data
dirs, as Loop or Boltz use lnd) and serves ``canalbridge.Bridge``
(``proto/bridge.proto``) with its own TLS certificate and macaroons.

- ``Quote``: :func:`relay.bridge.quote` against the beta node's spendable
  balance (less what pending swaps have promised), then the swap is stored
  QUOTING, the alpha node's ``AddHoldInvoice`` issues the hold invoice under
  the beta payment hash, and the swap is stored QUOTED.
- One task per pending swap drives it (:meth:`BridgeDaemon._step`), one durable
  state at a time: QUOTED waits (SubscribeSingleInvoice) for the alpha HTLC to
  be held; PAYING pays the beta invoice with SendPaymentV2 (``cltv_limit`` and
  ``fee_limit_msat`` from :func:`relay.bridge.beta_payment_limits`) -- after a
  restart it first asks TrackPaymentV2, so a payment is never sent twice;
  SETTLING (the preimage is stored first) settles the alpha hold invoice;
  CANCELING cancels it. A step that fails because a node is unreachable is
  retried; bridged killed at any point resumes every swap where it was.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import grpc
import trio

from base_chain.logs import setup_logging
from base_chain.params import chain_names, get_params
from base_chain.rpc import channel_for, make_server, write_rpc_endpoint
from htlc.invoice import invoice_prefix
from proto import bridge_pb2 as br
from proto import bridge_pb2_grpc as br_grpc
from proto import invoices_pb2 as inv_pb
from proto import invoices_pb2_grpc as inv_grpc
from proto import lightning_pb2 as ln
from proto import lightning_pb2_grpc as ln_grpc
from proto import router_pb2 as router_pb
from proto import router_pb2_grpc as router_grpc

from .bridge import BridgeConfig, Event, QuoteRefused, SwapState, beta_payment_limits, quote
from .bridge_store import BridgeStore, Swap, SwapExists
from base_chain.process import stop_on_signals, write_node_info

__all__ = ["BridgeDaemon", "LightningClient", "main", "swap_to_pb"]

log = logging.getLogger("canal.bridged")
T = TypeVar("T")

BRIDGE_PERMISSIONS: dict[str, set[str]] = {
    "/canalbridge.Bridge/Quote": {"swaps:write"},
    "/canalbridge.Bridge/ListSwaps": {"swaps:read"},
    "/canalbridge.Bridge/GetInfo": {"info:read"},
}
WAIT_SLICE_S = 5.0
RETRY_S = 0.5
PAYMENT_TIMEOUT_S = 60


class LightningClient:
    """Blocking lnd-API calls to one channeld (run them in a thread); reconnects from its rpc.json."""

    def __init__(self, datadir: Path) -> None:
        self.datadir = datadir
        self._channel: grpc.Channel | None = None

    def _ch(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = channel_for(self.datadir)
        return self._channel

    def reconnect(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = None

    @property
    def lightning(self) -> ln_grpc.LightningStub:
        return ln_grpc.LightningStub(self._ch())

    @property
    def invoices(self) -> inv_grpc.InvoicesStub:
        return inv_grpc.InvoicesStub(self._ch())

    @property
    def router(self) -> router_grpc.RouterStub:
        return router_grpc.RouterStub(self._ch())

    def spendable_msat(self) -> int:
        """What the node can send over its active channels (local balance above the reserve)."""
        chans = self.lightning.ListChannels(ln.ListChannelsRequest(active_only=True), timeout=10).channels
        return sum(max(0, c.local_balance - c.local_chan_reserve_sat) * 1000 for c in chans)

    def invoice(self, payment_hash: bytes) -> ln.Invoice | None:
        try:
            found: ln.Invoice = self.invoices.LookupInvoiceV2(inv_pb.LookupInvoiceMsg(payment_hash=payment_hash),
                                                              timeout=10)
            return found
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    def wait_invoice(self, payment_hash: bytes, seconds: float) -> ln.Invoice | None:
        """The invoice once it leaves OPEN, or its last state after ``seconds``."""
        last = None
        stream = self.invoices.SubscribeSingleInvoice(inv_pb.SubscribeSingleInvoiceRequest(r_hash=payment_hash),
                                                      timeout=seconds)
        try:
            for inv in stream:
                last = inv
                if inv.state != ln.Invoice.OPEN:
                    break
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
        finally:
            stream.cancel()
        return last

    def follow_payment(self, stream: Iterator[ln.Payment]) -> ln.Payment:
        last = None
        for p in stream:
            last = p
            if p.status in (ln.Payment.SUCCEEDED, ln.Payment.FAILED):
                return p
        if last is None:
            raise _StepError("payment stream ended without an update")
        return last

    def track(self, payment_hash: bytes) -> ln.Payment | None:
        """The payment's final state (waiting for it), or None if the node never started it."""
        stream = self.router.TrackPaymentV2(router_pb.TrackPaymentRequest(payment_hash=payment_hash,
                                                                          no_inflight_updates=True))
        try:
            return self.follow_payment(stream)
        except grpc.RpcError as e:
            if isinstance(e, grpc.Call) and e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    def pay(self, payment_request: str, fee_limit_msat: int, cltv_limit: int) -> ln.Payment:
        req = router_pb.SendPaymentRequest(payment_request=payment_request, fee_limit_msat=fee_limit_msat,
                                           cltv_limit=cltv_limit, timeout_seconds=PAYMENT_TIMEOUT_S,
                                           no_inflight_updates=True)
        return self.follow_payment(self.router.SendPaymentV2(req))


def swap_to_pb(s: Swap) -> br.Swap:
    q = s.quote
    return br.Swap(
        payment_hash=s.payment_hash.hex(), state=br.Swap.State.Value(s.state.value),
        alpha_payment_request=s.alpha_payment_request, beta_payment_request=q.beta_payment_request,
        beta_amt_msat=q.beta_amount_msat, alpha_amt_msat=q.alpha_amount_msat, fee_msat=q.fee_msat,
        alpha_cltv_expiry=q.alpha_cltv_expiry, beta_cltv=q.beta_cltv, beta_fee_limit_msat=q.beta_fee_limit_msat,
        creation_date=s.created, update_date=s.updated, preimage=s.preimage.hex() if s.preimage else "",
        reason=s.reason, beta_fee_msat=s.beta_fee_msat, alpha_expiry=q.alpha_expiry_s,
    )


class _StepError(grpc.RpcError):
    """A step cannot go on yet (retried like an unreachable node)."""

    def __init__(self, details: str) -> None:
        super().__init__(details)
        self._details = details

    def details(self) -> str:
        return self._details


class _BridgeError(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code, self.details = code, details


class BridgeDaemon:
    def __init__(self, datadir: Path, alpha_dir: Path, beta_dir: Path, config: BridgeConfig, rpc_port: int = 0,
                 clock: Callable[[], float] = time.time) -> None:
        self.datadir = datadir
        self.alpha = LightningClient(alpha_dir)
        self.beta = LightningClient(beta_dir)
        self.config = config
        self.want_rpc_port = rpc_port
        self.clock = clock
        self.store = BridgeStore(datadir / "bridge.sqlite")
        self._lock = trio.Lock()  # one quote at a time: the liquidity check and the reservation go together
        self._stop = trio.Event()

    def now(self) -> int:
        return int(self.clock())

    async def call(self, fn: Callable[[], T]) -> T:
        return await trio.to_thread.run_sync(fn, abandon_on_cancel=True)

    # --- life -----------------------------------------------------------------------------------------------

    async def run(self) -> None:
        self.trio_token = trio.lowlevel.current_trio_token()
        server, port = make_server(self.datadir, self.want_rpc_port, [], BRIDGE_PERMISSIONS, max_workers=16)
        br_grpc.add_BridgeServicer_to_server(BridgeServicer(self), server)
        server.start()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for swap in self.store.pending():
                    log.info("resuming swap %s in state %s", swap.payment_hash.hex(), swap.state.value)
                    nursery.start_soon(self._drive, swap)
                write_rpc_endpoint(self.datadir, port)
                write_node_info(self.datadir, rpc_port=port)
                nursery.start_soon(stop_on_signals, self._stop.set)
                log.info("bridge %s -> %s on rpc 127.0.0.1:%d", self.config.alpha_prefix, self.config.beta_prefix,
                         port)
                await self._stop.wait()
                nursery.cancel_scope.cancel()
        finally:
            await trio.to_thread.run_sync(lambda: server.stop(grace=0.5).wait())
            self.store.close()
            log.info("stopped")


    # --- quotes ---------------------------------------------------------------------------------------------

    async def liquidity(self) -> tuple[int, int]:
        return await self.call(self.beta.spendable_msat), self.store.reserved_beta_msat()

    async def quote(self, payment_request: str) -> Swap:
        async with self._lock:
            spendable, reserved = await self.liquidity()
            try:
                q = quote(payment_request, config=self.config, now=self.now(),
                          beta_liquidity_msat=spendable - reserved)
            except QuoteRefused as e:
                raise _BridgeError(grpc.StatusCode.FAILED_PRECONDITION, e.reason) from None
            existing = self.store.get(q.payment_hash)
            if existing is not None and existing.state is SwapState.CANCELED and not existing.alpha_payment_request:
                self.store.forget(existing)  # its alpha invoice was never issued: quote it afresh
                existing = None
            if existing is not None:
                if existing.state is SwapState.QUOTED:
                    return existing
                raise _BridgeError(grpc.StatusCode.ALREADY_EXISTS,
                                   f"this invoice was bridged already (swap {existing.state.value})")
            try:
                swap = self.store.add(q, self.now())
            except SwapExists as e:
                raise _BridgeError(grpc.StatusCode.ALREADY_EXISTS, str(e)) from None
        swap = await self._add_alpha_invoice(swap)
        if swap.state is not SwapState.QUOTED:
            raise _BridgeError(grpc.StatusCode.UNAVAILABLE, f"could not issue the alpha invoice: {swap.reason}")
        self._nursery.start_soon(self._drive, swap)
        return swap

    async def _add_alpha_invoice(self, swap: Swap) -> Swap:
        q = swap.quote
        req = inv_pb.AddHoldInvoiceRequest(hash=q.payment_hash, value_msat=q.alpha_amount_msat, memo=q.memo,
                                           expiry=q.alpha_expiry_s, cltv_expiry=q.alpha_cltv_expiry)
        try:
            added = await self.call(lambda: self.alpha.invoices.AddHoldInvoice(req, timeout=10))
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.ALREADY_EXISTS:
                log.warning("AddHoldInvoice failed: %s", e.details())
                return self.store.advance(swap, Event.ALPHA_CANCELED, self.now(), reason=f"alpha node: {e.details()}")
            existing = await self.call(lambda: self.alpha.invoice(q.payment_hash))
            assert existing is not None
            return self.store.advance(swap, Event.ALPHA_ADDED, self.now(),
                                      alpha_payment_request=existing.payment_request)
        log.info("swap %s quoted: %d msat on alpha for %d msat on beta", q.payment_hash.hex(), q.alpha_amount_msat,
                 q.beta_amount_msat)
        return self.store.advance(swap, Event.ALPHA_ADDED, self.now(), alpha_payment_request=added.payment_request)

    # --- driving a swap -------------------------------------------------------------------------------------

    async def _drive(self, swap: Swap) -> None:
        while not swap.state.is_final:
            try:
                before = swap
                swap = await self._step(swap)
                if swap == before:  # nothing new yet (an invoice still open, a payment still in flight)
                    await trio.sleep(RETRY_S)
            except grpc.RpcError as e:
                code = e.code() if isinstance(e, grpc.Call) else None
                details = e.details() if isinstance(e, (grpc.Call, _StepError)) else str(e)
                log.info("swap %s (%s): %s %s, retrying", swap.payment_hash.hex()[:16], swap.state.value, code,
                         details)
                self.alpha.reconnect()
                self.beta.reconnect()
                await trio.sleep(RETRY_S)
            except Exception:  # a bug must not stop the other swaps: log it and retry the step later
                log.exception("swap %s (%s): step failed, retrying", swap.payment_hash.hex(), swap.state.value)
                await trio.sleep(10 * RETRY_S)
        log.info("swap %s finished: %s %s", swap.payment_hash.hex(), swap.state.value, swap.reason)

    async def _step(self, swap: Swap) -> Swap:
        h = swap.payment_hash
        state = swap.state
        if state is SwapState.QUOTING:  # interrupted quote: keep the alpha invoice if it was made, else drop it
            existing = await self.call(lambda: self.alpha.invoice(h))
            if existing is None:
                return self.store.advance(swap, Event.ALPHA_CANCELED, self.now(), reason="quote interrupted")
            return self.store.advance(swap, Event.ALPHA_ADDED, self.now(),
                                      alpha_payment_request=existing.payment_request)
        if state is SwapState.QUOTED:
            return await self._await_alpha_htlc(swap)
        if state is SwapState.PAYING:
            return await self._pay_beta(swap)
        if state is SwapState.SETTLING:
            assert swap.preimage is not None
            preimage = swap.preimage
            await self.call(lambda: self.alpha.invoices.SettleInvoice(
                inv_pb.SettleInvoiceMsg(preimage=preimage), timeout=10))
            return self.store.advance(swap, Event.ALPHA_SETTLED, self.now())
        if state is SwapState.CANCELING:
            await self.call(lambda: self.alpha.invoices.CancelInvoice(
                inv_pb.CancelInvoiceMsg(payment_hash=h), timeout=10))
            return self.store.advance(swap, Event.ALPHA_CANCELED, self.now())
        raise AssertionError(state)

    async def _await_alpha_htlc(self, swap: Swap) -> Swap:
        h = swap.payment_hash
        inv = await self.call(lambda: self.alpha.wait_invoice(h, WAIT_SLICE_S))
        if inv is None:
            raise _StepError("alpha invoice not found")
        if inv.state == ln.Invoice.CANCELED:
            return self.store.advance(swap, Event.ALPHA_CANCELED, self.now(), reason="alpha invoice canceled")
        if inv.state == ln.Invoice.OPEN:
            if self.now() > inv.creation_date + inv.expiry:
                await self.call(lambda: self.alpha.invoices.CancelInvoice(
                    inv_pb.CancelInvoiceMsg(payment_hash=h), timeout=10))
                return self.store.advance(swap, Event.ALPHA_EXPIRED, self.now(), reason="alpha invoice expired unpaid")
            return swap
        if inv.state != ln.Invoice.ACCEPTED:
            log.error("swap %s: alpha invoice is %s before the bridge settled it", h.hex(), inv.state)
            raise _StepError("unexpected alpha invoice state")
        height = (await self.call(lambda: self.alpha.lightning.GetInfo(ln.GetInfoRequest(), timeout=10))
                  ).block_height
        expiry = min(x.expiry_height for x in inv.htlcs if x.state == ln.InvoiceHTLCState.Value("ACCEPTED"))
        try:
            beta_payment_limits(alpha_htlc_expiry=expiry, alpha_height=height, beta_cltv=swap.quote.beta_cltv,
                                config=self.config)
        except QuoteRefused as e:
            log.warning("swap %s: %s", h.hex(), e.reason)
            return self.store.advance(swap, Event.NO_TIME, self.now(), reason=e.reason)
        log.info("swap %s: alpha HTLC held (expiry %d, height %d): paying beta", h.hex(), expiry, height)
        return self.store.advance(swap, Event.ALPHA_ACCEPTED, self.now())  # durable before the beta payment

    async def _pay_beta(self, swap: Swap) -> Swap:
        h, q = swap.payment_hash, swap.quote
        payment = await self.call(lambda: self.beta.track(h))  # never pay twice
        if payment is None:
            inv = await self.call(lambda: self.alpha.invoice(h))
            info = await self.call(lambda: self.alpha.lightning.GetInfo(ln.GetInfoRequest(), timeout=10))
            accepted = ln.InvoiceHTLCState.Value("ACCEPTED")
            held = [x.expiry_height for x in (inv.htlcs if inv else []) if x.state == accepted]
            try:
                if not held:
                    raise QuoteRefused("the alpha HTLC is no longer held")
                cltv_limit = beta_payment_limits(alpha_htlc_expiry=min(held), alpha_height=info.block_height,
                                                 beta_cltv=q.beta_cltv, config=self.config)
            except QuoteRefused as e:
                return self.store.advance(swap, Event.BETA_FAILED, self.now(), reason=f"beta not paid: {e.reason}")
            try:
                payment = await self.call(lambda: self.beta.pay(q.beta_payment_request,
                                                                           q.beta_fee_limit_msat, cltv_limit))
            except grpc.RpcError as e:
                if not isinstance(e, grpc.Call):
                    raise
                if e.code() == grpc.StatusCode.ALREADY_EXISTS:
                    return swap  # started meanwhile: track it on the next step
                if e.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION):
                    return self.store.advance(swap, Event.BETA_FAILED, self.now(), reason=f"beta: {e.details()}")
                raise
        assert payment is not None
        if payment.status == ln.Payment.SUCCEEDED:
            preimage = bytes.fromhex(payment.payment_preimage)
            log.info("swap %s: beta paid (fee %d msat): settling alpha", h.hex(), payment.fee_msat)
            return self.store.advance(swap, Event.BETA_SUCCEEDED, self.now(), preimage=preimage,
                                      beta_fee_msat=payment.fee_msat)
        if payment.status == ln.Payment.FAILED:
            reason = ln.PaymentFailureReason.Name(payment.failure_reason)
            log.info("swap %s: beta payment failed (%s): canceling alpha", h.hex(), reason)
            return self.store.advance(swap, Event.BETA_FAILED, self.now(), reason=f"beta payment failed: {reason}")
        return swap  # still in flight (e.g. on chain): ask again


class BridgeServicer(br_grpc.BridgeServicer):
    def __init__(self, daemon: BridgeDaemon) -> None:
        self.daemon = daemon

    def _run(self, context: grpc.ServicerContext, fn: Callable[[], Any]) -> Any:
        try:
            return trio.from_thread.run(fn, trio_token=self.daemon.trio_token)
        except _BridgeError as e:
            context.abort(e.code, e.details)
        except grpc.RpcError as e:
            details = e.details() if isinstance(e, grpc.Call) else str(e)
            context.abort(grpc.StatusCode.UNAVAILABLE, f"a Lightning node did not answer: {details}")
        except trio.RunFinishedError:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the bridge is stopping")

    def Quote(self, request: br.QuoteRequest, context: grpc.ServicerContext) -> br.Swap:
        async def fn() -> br.Swap:
            if not request.payment_request.strip():
                raise _BridgeError(grpc.StatusCode.INVALID_ARGUMENT, "payment_request is required")
            return swap_to_pb(await self.daemon.quote(request.payment_request))
        result: br.Swap = self._run(context, fn)
        return result

    def ListSwaps(self, request: br.ListSwapsRequest, context: grpc.ServicerContext) -> br.ListSwapsResponse:
        store = self.daemon.store

        async def fn() -> br.ListSwapsResponse:
            swaps = store.pending() if request.pending_only else store.all()
            return br.ListSwapsResponse(swaps=[swap_to_pb(s) for s in swaps])
        result: br.ListSwapsResponse = self._run(context, fn)
        return result

    def GetInfo(self, request: br.GetInfoRequest, context: grpc.ServicerContext) -> br.GetInfoResponse:
        d = self.daemon

        async def fn() -> br.GetInfoResponse:
            spendable, reserved = await d.liquidity()
            alpha = await d.call(lambda: d.alpha.lightning.GetInfo(ln.GetInfoRequest(), timeout=10))
            beta = await d.call(lambda: d.beta.lightning.GetInfo(ln.GetInfoRequest(), timeout=10))
            c = d.config
            return br.GetInfoResponse(
                alpha_chain=c.alpha_prefix, beta_chain=c.beta_prefix, rate=str(c.rate), fee_base_msat=c.fee_base_msat,
                fee_ppm=c.fee_ppm, beta_liquidity_msat=spendable, beta_reserved_msat=reserved,
                safety_margin_blocks=c.safety_margin_blocks, alpha_pubkey=alpha.identity_pubkey,
                beta_pubkey=beta.identity_pubkey)
        result: br.GetInfoResponse = self._run(context, fn)
        return result


def _fraction(s: str) -> Fraction:
    try:
        f = Fraction(s)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a positive number or fraction, got {s!r}") from None
    if f <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive rate, got {s!r}")
    return f


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="canal bridged",
                                 description="Pay invoices of one chain's Lightning network from another's "
                                             "(a hold invoice under the same payment hash).")
    ap.add_argument("--datadir", type=Path, required=True, help="the bridge's data dir")
    ap.add_argument("--alpha-node", type=Path, required=True, help="data dir of the channeld the bridge is paid on")
    ap.add_argument("--beta-node", type=Path, required=True, help="data dir of the channeld the bridge pays from")
    ap.add_argument("--alpha-chain", choices=chain_names(), default="alpha")
    ap.add_argument("--beta-chain", choices=chain_names(), default="beta")
    ap.add_argument("--rate", type=_fraction, default=Fraction(1), help="alpha sat per beta sat (e.g. 0.25 or 1/4)")
    ap.add_argument("--fee-base-msat", type=int, default=1_000)
    ap.add_argument("--fee-ppm", type=int, default=1_000)
    ap.add_argument("--safety-margin-blocks", type=int, default=6, help="alpha blocks kept in reserve (default 6)")
    ap.add_argument("--max-alpha-cltv", type=int, default=1_008)
    ap.add_argument("--rpcport", type=int, default=0)
    ap.add_argument("--debug", action="store_true")
    ns = ap.parse_args(argv)
    setup_logging(ns.datadir, "canal.bridged", ns.debug)
    alpha, beta = get_params(ns.alpha_chain), get_params(ns.beta_chain)
    if alpha.name == beta.name:
        print("canal bridged: --alpha-chain and --beta-chain must differ", file=sys.stderr)
        return 2
    try:
        config = BridgeConfig(
            alpha_prefix=invoice_prefix(alpha), beta_prefix=invoice_prefix(beta),
            alpha_block_s=alpha.target_spacing_s, beta_block_s=beta.target_spacing_s, rate=ns.rate,
            fee_base_msat=ns.fee_base_msat, fee_ppm=ns.fee_ppm, safety_margin_blocks=ns.safety_margin_blocks,
            max_alpha_cltv=ns.max_alpha_cltv)
    except ValueError as e:
        print(f"canal bridged: {e}", file=sys.stderr)
        return 2
    trio.run(BridgeDaemon(ns.datadir, ns.alpha_node, ns.beta_node, config, ns.rpcport).run)
    return 0
