"""The payment node: the channel node with invoices, receiving and sending attached (what `canal channeld` runs).

``PaymentNode.setup`` opens ``invoices.sqlite`` and ``payments.sqlite``, takes
the channel manager's two hooks and settles the books of payments left in
flight by a crash (:meth:`htlc.send.Payer.reconcile`).

Incoming HTLCs: the manager calls ``on_incoming_htlc`` inside its lock while it
carries out a peer message's effects, so the hook only queues the HTLC. A task
of this node takes them in order: :func:`htlc.receive.decide`, then (for a
payment) the invoice is settled durably, then ``fulfill_htlc`` + ``sign`` go
through ``ChannelManager.command``. At start, HTLCs that are irrevocably
committed but unresolved (the node stopped in between) are queued again.
Parts of a multi-part payment are held (``InvoiceRegistry.accept_htlc``) until
the part that completes the set settles the invoice; then every held part is
decided again (and fulfilled). A task fails sets still incomplete after
``mpp_timeout_s`` (lnd's 120 s; ``canal channeld --mpp-timeout``) with
``mpp_timeout``, held parts restored after a restart included.

Outgoing HTLCs: ``on_htlc_settled`` is handled synchronously (a sqlite write
and a notification), so an outcome is on disk before the manager acts on the
next message.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import trio

from channels.dust import incoming_dust_refusal
from channels.effects import ChannelError, HtlcFailed, HtlcFulfilled, IncomingHtlc
from channels.manager import ManagedChannel
from channels.node import ChannelNode

from base_chain.rpc.tls import write_atomic
from channels.messages import UpdateAddHtlc
from channels.effects import SendMessage

from . import gossip as _gossip  # noqa: F401  (registers the BOLT 7 messages: a peer's gossip is decoded, not an unknown even type)
from .graph import ChannelGraph
from .gossip_node import DEFAULT_TRICKLE_S, GossipNode
from .chan_status import ChanStatusConfig
from .forwarding import (
    AlreadyForwarded,
    CircuitState,
    FailBack,
    Forward,
    Forwarder,
    GoOnChain,
    NotForwarding,
    Settle,
    peel_onion,
)
from .invoice import invoice_prefix
from .policy import outgoing_channels
from .invoices import DEFAULT_MPP_TIMEOUT_S, HOLD_EXPIRY_DELTA, InvoiceHtlc, InvoiceRecord, InvoiceRegistry, InvoiceRegistryError, InvoiceState
from .payments import PaymentStore
from .receive import Fail, FailMalformed, Fulfill, Hold, decide
from .send import Payer, Watchers

__all__ = ["PaymentNode"]

log = logging.getLogger("canal.payments")


class PaymentNode(ChannelNode):
    """A `ChannelNode` that issues invoices, gets paid, and pays (see the module docstring)."""

    invoices: InvoiceRegistry
    payments: PaymentStore
    payer: Payer
    #: Invoice updates: key None gets every added / settled / canceled invoice, a payment hash gets its own.
    invoice_updates: Watchers[bytes | None, InvoiceRecord]
    #: The public channel graph (BOLT 7), kept up to date by gossip; pathfinding reads it.
    graph: ChannelGraph
    #: BOLT 7 gossip: fills and keeps `graph`, announces our public channels, holds our forwarding policy.
    gossip: GossipNode
    #: Seconds an incomplete MPP set is held before its parts fail with mpp_timeout.
    mpp_timeout_s: float = DEFAULT_MPP_TIMEOUT_S
    #: A hold invoice is canceled when a held HTLC expires within this many blocks (``--hold-expiry-delta``).
    hold_expiry_delta: int = HOLD_EXPIRY_DELTA
    #: When to announce our channels disabled / enabled (lnd's --chan-disable-timeout etc.; None: lnd's defaults).
    chan_status: ChanStatusConfig | None = None

    def setup(self) -> None:
        super().setup()
        self.graph = ChannelGraph()
        self.gossip = GossipNode(self, self.graph, float(os.environ.get("CANAL_GOSSIP_TRICKLE_S", DEFAULT_TRICKLE_S)),
                                 self.chan_status)
        self.invoices = InvoiceRegistry(self.datadir / "invoices.sqlite", self.node_key, invoice_prefix(self.params))
        self.payments = PaymentStore(self.datadir / "payments.sqlite")
        self.payer = Payer(self, self.payments)
        self.channels.before_write += [self.payer.sync, self.invoices.sync]
        self.invoice_updates = Watchers()
        self.invoices.listeners.append(self._invoice_changed)
        self._incoming_send, self._incoming_recv = trio.open_memory_channel[tuple[ManagedChannel, IncomingHtlc]](
            math.inf)
        self.channels.on_incoming_htlc = self._on_incoming_htlc
        self.channels.on_htlc_settled = self._on_htlc_settled
        self.channels.on_htlc_onchain = self._on_htlc_onchain
        self.payer.reconcile()
        path = self.datadir / "forwarding.bin"
        self.forwarder = Forwarder.from_bytes(path.read_bytes()) if path.exists() else Forwarder()
        self._fail_lost_adds()
        self._upstream_send, self._upstream_recv = trio.open_memory_channel[Settle | FailBack](math.inf)
        self.block_handlers.append(self._forwarding_deadlines)
        self.block_handlers.append(self._hold_deadlines)

    def _fail_lost_adds(self) -> None:
        """At start: a forward whose outgoing add never reached its channel (decided, or the circuit written
        with the add's id, and the process killed before the channel's state) is failed back: the incoming
        HTLC, decided again by ``_requeue_unresolved``, replays the FailBack. Never a forward whose outgoing
        HTLC may exist (its id below the channel's next one): the downstream could still claim that."""
        lost = []
        for circuit in self.forwarder.circuits():
            mc = self.channels.find(circuit.outgoing_channel_id)
            c = None if mc is None else mc.channel.commitments
            if circuit.state is CircuitState.PENDING_ADD or (
                    circuit.state is CircuitState.FORWARDED and c is not None and circuit.outgoing_htlc_id is not None
                    and circuit.outgoing_htlc_id >= c.local_next_htlc_id):
                lost.append(circuit.incoming)
        for ref in lost:
            log.warning("forward of %s: its outgoing add did not survive the restart; failing it back", ref)
            self.forwarder.on_add_failed(ref, "the outgoing HTLC was not offered (restart)")
        if lost:
            self._save_forwarder()

    def _save_forwarder(self) -> None:
        """Circuits are durable before any decision about them is carried out."""
        write_atomic(self.datadir / "forwarding.bin", self.forwarder.to_bytes(), 0o600)

    def servicer_class(self) -> type[Any]:
        from .service import payment_servicer_class

        from .graph_service import graph_servicer_class

        return graph_servicer_class(payment_servicer_class(super().servicer_class()))

    def register_services(self, server: Any) -> None:
        super().register_services(server)
        from .service import register_payment_services

        register_payment_services(self, server)

    def permissions(self) -> dict[str, set[str]]:
        from .service import PAYMENT_PERMISSIONS

        from .graph_service import GRAPH_PERMISSIONS

        return {**super().permissions(), **PAYMENT_PERMISSIONS, **GRAPH_PERMISSIONS}

    async def started(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._resolve_incoming)
            nursery.start_soon(self._resolve_upstream)
            nursery.start_soon(self._mpp_timeouts)
            nursery.start_soon(self.gossip.run)
            self._requeue_unresolved()
            await super().started()

    def _invoice_changed(self, record: InvoiceRecord) -> None:
        self.invoice_updates.publish(None, record)
        self.invoice_updates.publish(record.payment_hash, record)
        if record.state is InvoiceState.CANCELED or (record.is_hold and record.state is InvoiceState.SETTLED):
            self._release_held(record.payment_hash)

    def _release_held(self, payment_hash: bytes) -> None:
        """A hold invoice was settled or canceled: decide its held HTLCs again (fulfill or fail them)."""
        for mc in list(self.channels.channels.values()):
            for add in mc.channel.unresolved_incoming_htlcs():
                if add.payment_hash == payment_hash:
                    path_key = None if add.path_key is None else add.path_key.to_bytes()
                    self._incoming_send.send_nowait((mc, IncomingHtlc(
                        mc.channel_id, add.id, add.amount_msat, add.payment_hash, add.cltv_expiry,
                        add.onion_routing_packet, path_key)))

    async def _mpp_timeouts(self) -> None:
        """Fail the parts of MPP sets still incomplete after ``mpp_timeout_s`` (the registry marks them, the
        re-decision fails them with mpp_timeout)."""
        while True:
            for payment_hash in self.invoices.expire_mpp_sets(self.now(), self.mpp_timeout_s):
                log.info("multi-part set of %s incomplete after %s s: failing its parts", payment_hash.hex(),
                         self.mpp_timeout_s)
                self._release_held(payment_hash)
            await trio.sleep(min(1.0, self.mpp_timeout_s / 4))

    async def _hold_deadlines(self, block: Any, height: int, connected: bool) -> None:
        """Cancel a hold invoice whose held HTLC expires within ``hold_expiry_delta`` blocks (lnd's
        invoices.holdexpirydelta); an incomplete set's parts are released (InvoiceRegistry.expire_held_htlcs)."""
        if not connected:
            return
        for payment_hash in self.invoices.expire_held_htlcs(height, self.hold_expiry_delta, self.now()):
            log.warning("hold invoice %s: a part of its incomplete set expires within %d blocks of %d: releasing "
                        "the parts", payment_hash.hex(), self.hold_expiry_delta, height)
            self._release_held(payment_hash)

    # --- hooks (inside the manager's lock) -------------------------------------------------------------

    async def _on_incoming_htlc(self, mc: ManagedChannel, htlc: IncomingHtlc) -> None:
        self._incoming_send.send_nowait((mc, htlc))

    async def _on_htlc_settled(self, mc: ManagedChannel, event: HtlcFulfilled | HtlcFailed) -> None:
        try:
            upstream = self.forwarder.on_downstream_resolved(event, self.now())
        except ValueError as e:  # a peer failing an HTLC it already fulfilled: nothing to undo (inside the lock)
            log.error("outcome of HTLC %d on %s: %s", event.htlc_id, mc.channel_id.hex(), e)
            return
        if upstream is None:
            self.payer.htlc_resolved(mc, event)  # one of our own payments
            return
        self._save_forwarder()
        self.payer.htlc_events.forward_resolved(self.forwarder.circuit(upstream.incoming), getattr(
            upstream, "payment_preimage", None), int(self.clock() * 1e9))
        self._upstream_send.send_nowait(upstream)  # settled outside the manager's lock

    async def _on_htlc_onchain(self, mc: ManagedChannel, event: HtlcFulfilled | HtlcFailed) -> None:
        """An outgoing HTLC settled on chain after a force close (the channel's on-chain monitor)."""
        try:
            upstream = self.forwarder.on_downstream_resolved_on_chain(event, self.now())
        except ValueError as e:  # e.g. a preimage on chain for a forward we already failed back
            log.error("on-chain outcome of HTLC %d on %s: %s", event.htlc_id, mc.channel_id.hex(), e)
            return
        if upstream is None:
            self.payer.htlc_resolved(mc, event)  # one of our own payments
            self.payer.sync()  # no channel state follows to sync it: the monitor moves on now
            return
        self._save_forwarder()
        self._upstream_send.send_nowait(upstream)

    # --- receiving ------------------------------------------------------------------------------------

    def _requeue_unresolved(self) -> None:
        for mc in list(self.channels.channels.values()):
            for add in mc.channel.unresolved_incoming_htlcs():
                path_key = None if add.path_key is None else add.path_key.to_bytes()
                htlc = IncomingHtlc(mc.channel_id, add.id, add.amount_msat, add.payment_hash, add.cltv_expiry,
                                    add.onion_routing_packet, path_key)
                log.info("incoming HTLC %d on %s unresolved at start: deciding it again", add.id, mc.channel_id.hex())
                self._incoming_send.send_nowait((mc, htlc))

    async def _resolve_incoming(self) -> None:
        async for mc, htlc in self._incoming_recv:
            try:
                await self._resolve(mc, htlc)
            except ChannelError as e:  # e.g. the channel closed meanwhile: the on-chain resolver takes over
                log.warning("cannot resolve incoming HTLC %d on %s: %s", htlc.htlc_id, mc.channel_id.hex(), e.reason)

    async def _resolve(self, mc: ManagedChannel, htlc: IncomingHtlc) -> None:
        c = mc.channel.commitments  # lnd's link: a dust HTLC over the exposure limit is failed back
        dust = None if c is None else incoming_dust_refusal(c, htlc.htlc_id)
        if await self._forward(mc, htlc, dust):
            return
        now = self.now()
        decision = decide(htlc, node_key=self.node_key, height=self.tip_height, now=now, lookup=self.invoices.lookup,
                          incoming_refusal=dust)
        if isinstance(decision, Fulfill):
            if not decision.replay:
                record = InvoiceHtlc(
                    channel_id=htlc.channel_id, short_channel_id=mc.channel.short_channel_id or 0,
                    htlc_id=htlc.htlc_id, amount_msat=htlc.amount_msat, accept_height=self.tip_height,
                    accept_time=now, expiry_height=htlc.cltv_expiry, resolve_time=now,
                    mpp_total_msat=decision.mpp_total_msat, custom_records=decision.custom_records,
                )
                try:  # committed before the preimage goes anywhere (fsync'd before the channel writes a state)
                    if decision.keysend:
                        self.invoices.add_keysend(decision.payment_preimage, record, now)
                    else:
                        self.invoices.settle(decision.payment_hash, record, now)
                except InvoiceRegistryError as e:  # lost a race with CancelInvoice or another HTLC
                    log.info("incoming HTLC %d: %s", htlc.htlc_id, e.reason)
                    decision = decide(htlc, node_key=self.node_key, height=self.tip_height, now=now,
                                      lookup=self.invoices.lookup, incoming_refusal=dust)
            if isinstance(decision, Fulfill):
                log.info("incoming HTLC %d on %s: fulfilling %s (%d msat%s)", htlc.htlc_id, mc.channel_id.hex(),
                         htlc.payment_hash.hex(), htlc.amount_msat, ", keysend" if decision.keysend else "")
                preimage = decision.payment_preimage
                try:  # the settled invoice is the durable record: a fulfill lost in a crash is made again at start
                    await self.channels.command(mc, lambda ch: [*ch.fulfill_htlc(htlc.htlc_id, preimage), *ch.sign()],
                                                own_updates_recoverable=True)
                except ChannelError:  # the channel is closing: its on-chain monitor claims the HTLC
                    self.invoices.sync()  # (no channel state follows to sync the settled invoice)
                    await self.channels.claim_onchain(mc.channel_id, preimage)
                    raise
                self.payer.htlc_events.received(mc.channel.short_channel_id or 0, htlc, preimage, 0, "",
                                                int(self.clock() * 1e9))
                return
        if isinstance(decision, Hold):
            if not decision.replay:
                try:  # durable before we count on it
                    accepted = self.invoices.accept_htlc(decision.payment_hash, InvoiceHtlc(
                        channel_id=htlc.channel_id, short_channel_id=mc.channel.short_channel_id or 0,
                        htlc_id=htlc.htlc_id, amount_msat=htlc.amount_msat, accept_height=self.tip_height,
                        accept_time=now, expiry_height=htlc.cltv_expiry, mpp_total_msat=decision.mpp_total_msat,
                        custom_records=decision.custom_records), now)
                    if accepted.state is InvoiceState.SETTLED:  # this part completed an MPP set: fulfill them all
                        log.info("incoming HTLC %d on %s completes the multi-part set of %s: settled",
                                 htlc.htlc_id, mc.channel_id.hex(), htlc.payment_hash.hex())
                        self._release_held(htlc.payment_hash)
                        return
                except InvoiceRegistryError as e:  # lost a race with CancelInvoice or another part
                    log.info("incoming HTLC %d: %s", htlc.htlc_id, e.reason)
                    decision = decide(htlc, node_key=self.node_key, height=self.tip_height, now=now,
                                      lookup=self.invoices.lookup, incoming_refusal=dust)
            if isinstance(decision, Hold):
                log.info("incoming HTLC %d on %s: held for invoice %s (%d msat)", htlc.htlc_id,
                         mc.channel_id.hex(), htlc.payment_hash.hex(), htlc.amount_msat)
                return
        if isinstance(decision, Fail):
            log.info("incoming HTLC %d on %s: failing with %s (%s)", htlc.htlc_id, mc.channel_id.hex(),
                     decision.failure.name, decision.why)
            reason = decision.reason
            await self.channels.command(mc, lambda ch: [*ch.fail_htlc(htlc.htlc_id, reason), *ch.sign()])
            self.payer.htlc_events.received(mc.channel.short_channel_id or 0, htlc, None, decision.failure.code,
                                            decision.why, int(self.clock() * 1e9))
        elif isinstance(decision, FailMalformed):
            log.info("incoming HTLC %d on %s: malformed onion (%s)", htlc.htlc_id, mc.channel_id.hex(), decision.why)
            sha, code = decision.sha256_of_onion, decision.failure_code
            await self.channels.command(mc, lambda ch: [*ch.fail_malformed_htlc(htlc.htlc_id, sha, code), *ch.sign()])

    # --- forwarding -------------------------------------------------------------------------------------

    async def _forward(self, mc: ManagedChannel, htlc: IncomingHtlc, dust: str | None = None) -> bool:
        """Forward, fail or replay an HTLC for another node; False when it is for us (the final hop)."""
        view = outgoing_channels(list(self.channels.channels.values()), set(self.peers), self.gossip.policies,
                                 self.gossip.channel_update_bytes)
        decision = self.forwarder.on_incoming(htlc, peel_onion(self.node_key, htlc), self.tip_height, view, dust)
        if isinstance(decision, NotForwarding):
            return False
        self._save_forwarder()
        if isinstance(decision, AlreadyForwarded):
            return True
        if isinstance(decision, Forward):
            await self._add_downstream(decision)
            return True
        if isinstance(decision, FailBack):
            self.payer.htlc_events.link_failed(mc.channel.short_channel_id or 0, htlc.htlc_id, htlc.amount_msat,
                                               htlc.cltv_expiry, decision, int(self.clock() * 1e9))
        await self._settle_upstream(decision)
        return True

    async def _add_downstream(self, fwd: Forward) -> None:
        out = self.channels.find(fwd.channel_id)
        if out is None:
            await self._settle_upstream(self.forwarder.on_add_failed(fwd.incoming, "outgoing channel gone"))
            return

        def add(ch: Any) -> list[Any]:
            effects = ch.add_htlc(fwd.amount_msat, fwd.payment_hash, fwd.cltv_expiry, fwd.onion_routing_packet)
            for e in effects:
                if isinstance(e, SendMessage) and isinstance(e.message, UpdateAddHtlc):
                    self.forwarder.on_forward_added(fwd.incoming, e.message.id)
            self._save_forwarder()
            return [*effects, *ch.sign()]

        try:
            await self.channels.command(out, add)
            log.info("forwarded HTLC %s -> %s (%d msat, fee %d msat)", fwd.incoming, fwd.channel_id.hex()[:16],
                     fwd.amount_msat, fwd.fee_msat)
            self.payer.htlc_events.forwarded(self.forwarder.circuit(fwd.incoming), int(self.clock() * 1e9))
        except ChannelError as e:
            circuit = self.forwarder.circuit(fwd.incoming)
            failback = self.forwarder.on_add_failed(fwd.incoming, e.reason)
            if circuit is not None:
                self.payer.htlc_events.link_failed(circuit.incoming_short_channel_id, fwd.incoming.htlc_id,
                                                   circuit.incoming_amount_msat, circuit.incoming_cltv_expiry,
                                                   failback, int(self.clock() * 1e9), circuit)
            self._save_forwarder()
            await self._settle_upstream(failback)

    async def _settle_upstream(self, decision: Settle | FailBack) -> None:
        """Fulfill or fail the incoming HTLC a forward came from."""
        ref = decision.incoming
        mc = self.channels.find(ref.channel_id)
        if mc is None:
            log.warning("upstream channel %s gone: the on-chain resolver takes over", ref.channel_id.hex())
            return
        if isinstance(decision, Settle):
            preimage = decision.payment_preimage
            try:
                await self.channels.command(mc, lambda ch: [*ch.fulfill_htlc(ref.htlc_id, preimage), *ch.sign()])
            except ChannelError:  # the upstream channel is closing: its on-chain monitor claims the HTLC
                await self.channels.claim_onchain(ref.channel_id, preimage)
                raise
        elif decision.is_malformed:
            assert decision.failure_code is not None
            code, sha = decision.failure_code, decision.sha256_of_onion or b"\0" * 32
            await self.channels.command(mc, lambda ch: [*ch.fail_malformed_htlc(ref.htlc_id, sha, code), *ch.sign()])
        else:
            reason = decision.reason
            await self.channels.command(mc, lambda ch: [*ch.fail_htlc(ref.htlc_id, reason), *ch.sign()])
        self.forwarder.upstream_resolved(ref)
        self._save_forwarder()

    async def _resolve_upstream(self) -> None:
        async for decision in self._upstream_recv:
            try:
                await self._settle_upstream(decision)
            except ChannelError as e:
                log.warning("cannot settle upstream HTLC %s: %s", decision.incoming, e.reason)

    async def _forwarding_deadlines(self, block: Any, height: int, connected: bool) -> None:
        """BOLT 2: go on chain before an unresolved downstream HTLC endangers the upstream one."""
        if not connected:
            return
        for action in self.forwarder.on_height(height):
            assert isinstance(action, GoOnChain)
            mc = self.channels.find(action.channel_id)
            if mc is not None and (mc.watch is None or mc.watch.spent_by is None):  # not yet closed on chain
                log.warning("forwarded HTLC deadline (%s): force-closing %s", action.reason, action.channel_id.hex())
                self.spawn(self._go_on_chain, mc)

    async def _go_on_chain(self, mc: ManagedChannel) -> None:
        try:
            await self.channels.command(mc, lambda ch: ch.force_close())
        except ChannelError as e:  # e.g. closed on chain meanwhile: its monitor resolves the HTLCs
            log.info("not force-closing %s: %s", mc.channel_id.hex(), e.reason)
