from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

import trio

from base_chain.crypto import PrivateKey, PublicKey
from base_chain.hashes import sha256
from base_chain.rpc.tls import write_atomic
from channels.effects import ChannelError, Effect, HtlcFailed, HtlcFulfilled
from channels.manager import ManagedChannel
from channels.messages import UpdateAddHtlc
from channels.state import Channel, ChannelState
from channels.transactions import HtlcDirection

from . import pathfind
from .failure import FailureCode, FailureDecodeError, FailureMessage, decode_failure
from .gossip import ChannelUpdate, GossipError
from .gossip_sign import verify_channel_update
from .graph import ChannelGraph
from .htlc_events import HtlcEventHub
from .invoice import RouteHintHop
from .lifecycle import (
    BLOCK_PADDING,
    DEFAULT_FINAL_CLTV_DELTA,
    KEYSEND_RECORD,
    ChannelPolicyUpdate,
    Finished,
    PaymentIntent,
    PaymentLifecycle,
    Shard,
    last_hop_exclusions,
)
from .onion import HopPayload, PaymentData, create_onion
from .payments import (
    UNREADABLE_FAILURE,
    Attempt,
    AttemptFailure,
    AttemptStatus,
    FailureReason,
    Payment,
    PaymentStore,
    Route,
    RouteHop,
)
from .scoring import Scorer

if TYPE_CHECKING:
    from channels.node import ChannelNode

__all__ = [
    "BLOCK_PADDING",
    "DEFAULT_FINAL_CLTV_DELTA",
    "KEYSEND_RECORD",
    "Payer",
    "PaymentIntent",
    "RouteQuery",
    "Watchers",
    "decode_htlc_failure",
    "failure_channel_update",
    "failure_reason_for",
    "final_hop_payload",
    "htlc_pending",
    "stored_route",
]

log = logging.getLogger("canal.payments")

T = TypeVar("T")
K = TypeVar("K")


@dataclass(frozen=True)
class RouteQuery:
    """lnd's QueryRoutes: a route for ``amount_msat`` to ``destination`` (from us unless ``source``)."""

    destination: bytes
    amount_msat: int
    final_cltv_delta: int = DEFAULT_FINAL_CLTV_DELTA
    fee_limit_msat: int | None = None
    excluded: tuple[bytes | int | tuple[int, int], ...] = ()
    ignored_pairs: tuple[tuple[bytes, bytes], ...] = ()
    source: bytes | None = None
    cltv_limit: int = 0
    last_hop: bytes | None = None
    route_hints: tuple[tuple[RouteHintHop, ...], ...] = ()
    outgoing_chan_ids: tuple[int, ...] = ()
    use_mission_control: bool = False


# --- pure helpers ------------------------------------------------------------------------------------------


def final_hop_payload(intent: PaymentIntent, cltv: int) -> HopPayload:
    """The final hop's TLV payload: amount, CLTV, and ``payment_data`` or the keysend preimage."""
    data = None
    if intent.payment_secret is not None:
        data = PaymentData(intent.payment_secret, intent.amount_msat)
    return HopPayload(amt_to_forward=intent.amount_msat, outgoing_cltv_value=cltv, payment_data=data,
                      keysend_preimage=intent.keysend_preimage, custom_records=intent.custom_records)


def stored_route(route: pathfind.Route, intent: PaymentIntent) -> Route:
    """A found route as lnd's ``Route`` stores it (per hop: the fee it keeps and the expiry in its payload)."""
    hops = []
    for i, h in enumerate(route.hops):
        last = i == len(route.hops) - 1
        hops.append(RouteHop(
            pubkey=h.node_id, short_channel_id=h.short_channel_id, amt_to_forward_msat=h.amount_to_forward,
            fee_msat=h.fee_msat, expiry=h.outgoing_cltv_value, chan_capacity_sat=h.capacity_sat,
            payment_addr=intent.payment_secret if last else None,
            total_msat=intent.amount_msat if last and intent.payment_secret else 0,
            custom_records=intent.final_records() if last else ()))
    return Route(total_time_lock=route.total_timelock, total_amt_msat=route.total_amount_msat,
                 total_fees_msat=route.total_fee_msat, hops=tuple(hops))


def failure_reason_for(failure: AttemptFailure) -> FailureReason:
    """The payment's failure reason once its only route failed this way (lnd's final-hop outcomes)."""
    if failure.code == FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS:
        return FailureReason.INCORRECT_PAYMENT_DETAILS
    if failure.code in (FailureCode.FINAL_INCORRECT_CLTV_EXPIRY, FailureCode.FINAL_INCORRECT_HTLC_AMOUNT):
        return FailureReason.ERROR
    return FailureReason.NO_ROUTE  # no other route is left to try


def stored_failure_update(attempt: Attempt) -> ChannelPolicyUpdate | None:
    """The checked policy in a failed attempt's stored ``channel_update`` (None: none, or not the erring node's)."""
    f = attempt.failure
    if f is None or not 0 < f.source_index <= len(attempt.route.hops):
        return None
    return failure_channel_update(f.channel_update, attempt.route.hops[f.source_index - 1].pubkey)


def attempt_failure(message: FailureMessage, source_index: int) -> AttemptFailure:
    return AttemptFailure(
        code=message.code, source_index=source_index, message=str(message), htlc_msat=message.htlc_msat or 0,
        cltv_expiry=message.cltv_expiry or 0, height=message.height or 0, flags=message.disabled_flags or 0,
        onion_sha256=message.sha256_of_onion or b"", channel_update=message.channel_update or b"",
    )


def failure_channel_update(raw: bytes, erring_node: bytes) -> ChannelPolicyUpdate | None:
    """The policy in a failure's ``channel_update`` if it is one the erring node signed (else None: ignored)."""
    if not raw:
        return None
    if raw[:2] == ChannelUpdate.TYPE.to_bytes(2, "big"):
        raw = raw[2:]  # lnd sends it with its type prefix
    try:
        update = ChannelUpdate.decode_payload(raw)
        key = PublicKey.from_bytes(erring_node)
        verify_channel_update(update, key, key)
    except (ValueError, GossipError):
        return None
    return ChannelPolicyUpdate(
        short_channel_id=update.short_channel_id, direction=update.direction, timestamp=update.timestamp,
        fee_base_msat=update.fee_base_msat, fee_proportional_millionths=update.fee_proportional_millionths,
        cltv_expiry_delta=update.cltv_expiry_delta, htlc_minimum_msat=update.htlc_minimum_msat,
        htlc_maximum_msat=update.htlc_maximum_msat, disabled=update.disabled)


def decode_htlc_failure(attempt: Attempt, event: HtlcFailed) -> AttemptFailure:
    """What the failing node said: a malformed-onion code from the first hop, or the decoded error onion."""
    if event.failure_code is not None:
        return attempt_failure(FailureMessage.from_malformed(event.failure_code, event.sha256_of_onion or bytes(32)), 1)
    pubkeys = [hop.pubkey for hop in attempt.route.hops]
    try:
        index, message = decode_failure(attempt.session_key, pubkeys, event.reason)
    except FailureDecodeError as e:
        return AttemptFailure(UNREADABLE_FAILURE, 0 if e.hop_index is None else e.hop_index + 1, e.reason)
    return attempt_failure(message, index + 1)


def htlc_pending(channel: Channel, htlc_id: int) -> bool:
    """Whether our HTLC ``htlc_id`` is still in the channel (proposed, in a commitment, or awaiting removal)."""
    c = channel.commitments
    if c is None or htlc_id >= c.local_next_htlc_id:
        return False
    if any(isinstance(u, UpdateAddHtlc) and u.id == htlc_id for u in c.local_changes.all()):
        return True
    if c.local_commit.spec.find(HtlcDirection.OFFERED, htlc_id) is not None:
        return True
    if c.remote_commit.spec.find(HtlcDirection.RECEIVED, htlc_id) is not None:
        return True
    return c.next_remote is not None and c.next_remote.commit.spec.find(HtlcDirection.RECEIVED, htlc_id) is not None


# --- subscriptions -------------------------------------------------------------------------------------------


class Watchers(Generic[K, T]):
    """Streams of updates by key (a payment hash, or None for "everything") on the trio thread.

    A subscriber that falls ``buffer`` updates behind is closed rather than silently skipped.
    """

    def __init__(self, buffer: int = 1000) -> None:
        self.buffer = buffer
        self._subs: dict[K, list[trio.MemorySendChannel[T]]] = {}

    def subscribe(self, key: K) -> trio.MemoryReceiveChannel[T]:
        send, recv = trio.open_memory_channel[T](self.buffer)
        self._subs.setdefault(key, []).append(send)
        return recv

    def publish(self, key: K, value: T) -> None:
        subs = self._subs.get(key)
        if not subs:
            return
        for ch in list(subs):
            try:
                ch.send_nowait(value)
            except trio.WouldBlock:
                ch.close()
                subs.remove(ch)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                subs.remove(ch)
        if not subs:
            del self._subs[key]


# --- the shell ---------------------------------------------------------------------------------------------


# --- the shell ---------------------------------------------------------------------------------------------

_Outcome = tuple[int, bytes | None, AttemptFailure | None]
"""What the driver of a payment hears: (attempt id, preimage, or the failure)."""

RESUME_GRACE_S = 10.0
#: The scorer is written this long after a payment ends (one write for all that end meanwhile).
SCORER_SAVE_DELAY_S = 1.0
#: A payment that succeeded is announced once its preimage is fsync'd: with the next channel write
#: (PaymentNode registers :meth:`Payer.sync` before them), or after this long at the latest.
ANNOUNCE_DELAY_S = 0.1
"""How long a payment resumed at start waits for our channels to be reestablished before its next step."""


class Payer:
    """Pays intents over routes and follows their HTLCs (see the module docstring)."""

    def __init__(self, node: ChannelNode, store: PaymentStore, graph: ChannelGraph | None = None,
                 scorer: Scorer | None = None) -> None:
        self.node = node
        self.store = store
        self._graph = graph
        self._scorer_path = node.datadir / "mission_control.json"
        self.scorer = scorer if scorer is not None else self._load_scorer()
        self._scorer_dirty = False
        self._announce: list[Payment] = []  # succeeded, waiting for their preimage to be fsync'd
        self.updates: Watchers[bytes, Payment] = Watchers()
        self._drivers: dict[bytes, trio.MemorySendChannel[_Outcome]] = {}
        #: Payments rebuilt at start, waiting for the node to have a peer again (see `reconcile`).
        self._resumed: list[tuple[PaymentLifecycle, trio.MemoryReceiveChannel[_Outcome], dict[int, int]]] = []
        #: HTLC events (SubscribeHtlcEvents): our sends here, the node's forwards too.
        self.htlc_events = HtlcEventHub()

    def _load_scorer(self) -> Scorer:
        """What earlier payments taught (lnd keeps mission control across restarts too); fresh if unreadable."""
        try:
            return Scorer.from_dict(json.loads(self._scorer_path.read_text()))
        except FileNotFoundError:
            return Scorer()
        except (ValueError, KeyError, TypeError) as e:
            log.warning("ignoring %s: %s", self._scorer_path, e)
            return Scorer()

    def _write_scorer(self, data: bytes) -> None:
        """Persist the scorer's learnings (best effort: losing them costs retries, never money)."""
        try:
            write_atomic(self._scorer_path, data, 0o600)
        except OSError as e:
            log.warning("cannot save %s: %s", self._scorer_path, e)

    def scorer_changed(self) -> None:
        """Save the scorer SCORER_SAVE_DELAY_S from now, off the event loop, with whatever else changes it
        meanwhile (a node paying many invoices a second writes it once a second, not once a payment)."""
        if self._scorer_dirty:
            return
        self._scorer_dirty = True

        async def save_later() -> None:
            await trio.sleep(SCORER_SAVE_DELAY_S)
            self._scorer_dirty = False
            data = json.dumps(self.scorer.to_dict()).encode()
            await trio.to_thread.run_sync(self._write_scorer, data)

        self.node.spawn(save_later)

    @property
    def graph(self) -> ChannelGraph:
        """The public graph routes are found in: the node's (``PaymentNode.graph``, filled by gossip)."""
        if self._graph is None:
            graph = getattr(self.node, "graph", None)
            self._graph = graph if isinstance(graph, ChannelGraph) else ChannelGraph()
        return self._graph

    def _now_ns(self) -> int:
        return int(self.node.clock() * 1_000_000_000)

    @property
    def source(self) -> bytes:
        return self.node.node_key.public_key().to_bytes()

    def _publish(self, payment: Payment) -> None:
        self.updates.publish(payment.payment_hash, payment)

    def sync(self) -> None:
        """Make the payments written so far durable (one fsync), then announce the ones that succeeded."""
        self.store.sync()
        announce, self._announce = self._announce, []
        for payment in announce:
            self._publish(payment)

    def _publish_when_durable(self, payment: Payment) -> None:
        if not self._announce:
            async def fallback() -> None:  # no channel write came to sync it
                await trio.sleep(ANNOUNCE_DELAY_S)
                if self._announce:
                    self.sync()

            self.node.spawn(fallback)
        self._announce.append(payment)

    def track(self, payment_hash: bytes) -> tuple[Payment | None, trio.MemoryReceiveChannel[Payment]]:
        """The payment as stored now and a stream of its later states (subscribe before reading: nothing lost)."""
        recv = self.updates.subscribe(payment_hash)
        return self.store.get(payment_hash), recv

    def first_hops(self) -> tuple[list[pathfind.FirstHop], dict[int, ManagedChannel]]:
        """Our channels a payment can start on now (NORMAL, peer online) and what each can send."""
        hops, by_scid = [], {}
        for mc in self.node.channels.channels.values():
            c = mc.channel.commitments
            scid = mc.channel.short_channel_id
            if mc.channel.state is not ChannelState.NORMAL or c is None or not scid or mc.peer.hex() not in \
                    self.node.peers:
                continue
            spendable = c.sendable_msat()
            hops.append(pathfind.FirstHop(mc.peer, scid, c.params.funding_sat * 1000, spendable))
            by_scid[scid] = mc
        return hops, by_scid

    def query_route(self, q: RouteQuery) -> pathfind.Route:
        """QueryRoutes: the best route now (no block padding, as lnd), or ``pathfind.NoRouteError``."""
        graph = self.graph
        excluded: set[int | tuple[int, int] | bytes] = set(q.excluded)
        excluded |= last_hop_exclusions(graph, q.destination, q.last_hop)
        for a, b in q.ignored_pairs:
            excluded |= {(p.short_channel_id, p.direction) for p in graph.outgoing(a) if p.target == b}
        ours = q.source is None or q.source == self.source
        first_hops = None
        if ours:
            first_hops = [fh for fh in self.first_hops()[0]
                          if not q.outgoing_chan_ids or fh.short_channel_id in q.outgoing_chan_ids]
        return pathfind.find_route(
            graph, self.source if q.source is None else q.source, q.destination, q.amount_msat,
            final_cltv_delta=q.final_cltv_delta, max_fee_msat=q.fee_limit_msat,
            max_cltv=q.cltv_limit or pathfind.DEFAULT_MAX_CLTV, route_hints=q.route_hints,
            scorer=self.scorer if q.use_mission_control else None, excluded=excluded, now=self.node.clock(),
            current_height=self.node.tip_height, first_hops=first_hops)

    def new_lifecycle(self, intent: PaymentIntent) -> PaymentLifecycle:
        return PaymentLifecycle(intent, self.source, self.graph, self.scorer, self.node.clock())

    async def send(self, intent: PaymentIntent) -> tuple[Payment, trio.MemoryReceiveChannel[Payment]]:
        """Start paying: the payment once its first HTLCs are offered (or it FAILED) and its update stream.

        Raises ``payments.PaymentExists`` if this hash is paid or being paid.
        """
        self.store.init_payment(intent.payment_hash, intent.amount_msat, intent.destination, intent.payment_request,
                                self._now_ns(), intent.to_json())
        recv = self.updates.subscribe(intent.payment_hash)
        events_send, events_recv = trio.open_memory_channel[_Outcome](math.inf)
        self._drivers[intent.payment_hash] = events_send
        lc = self.new_lifecycle(intent)
        shards: dict[int, int] = {}  # attempt id -> shard id
        try:  # (no update published for the first launch: the caller gets the payment as it is then)
            done = await self._advance(lc, shards, publish=False)
        except Exception:
            self._drivers.pop(intent.payment_hash, None)
            payment = self.store.get(intent.payment_hash)
            if payment is not None:  # fail it unless an HTLC did reach a channel
                self._settle_books(payment, "offering the HTLC failed")
                self._publish(self.store.get(intent.payment_hash) or payment)
            recv.close()
            raise
        if done:
            self._drivers.pop(intent.payment_hash, None)
        else:
            self.node.spawn(self._drive, lc, events_recv, shards)
        payment = self.store.get(intent.payment_hash)
        assert payment is not None
        return payment, recv

    async def _advance(self, lc: PaymentLifecycle, shards: dict[int, int], publish: bool = True) -> bool:
        """Launch what the lifecycle asks for until it waits (False) or is finished (True, recorded);
        ``publish``: tell the payment's watchers of each launch."""
        payment_hash = lc.intent.payment_hash
        while True:
            hops: list[tuple[list[pathfind.FirstHop], dict[int, ManagedChannel]]] = []

            def first_hops(memo: list[tuple[list[pathfind.FirstHop], dict[int, ManagedChannel]]] = hops,
                           ) -> list[pathfind.FirstHop]:  # only when the lifecycle routes (a scan of our channels)
                if not memo:
                    memo.append(self.first_hops())
                return memo[0][0]

            decision = lc.step(self.node.clock(), self.node.tip_height, first_hops)
            if decision is None:
                return False
            if isinstance(decision, Finished):
                if lc.s.attempts:
                    self.scorer_changed()
                if decision.preimage is None:
                    log.info("payment %s failed: %s (%s)", payment_hash.hex(), decision.reason.name, decision.message)
                    self._publish(self.store.fail_payment(payment_hash, decision.reason))
                return True
            by_scid = hops[0][1] if hops else self.first_hops()[1]
            for shard in decision:
                attempt_id = await self._launch(lc, shard, by_scid.get(shard.first_hop), publish)
                if attempt_id is not None:
                    shards[attempt_id] = shard.shard_id

    async def _launch(self, lc: PaymentLifecycle, shard: Shard, mc: ManagedChannel | None,
                      publish: bool = True) -> int | None:
        """Persist the attempt and offer its HTLC; the attempt id, or None (the lifecycle was told why)."""
        intent = lc.intent
        if mc is None:
            lc.launch_failed(shard.shard_id, "channel gone")
            return None
        route = shard.route
        stored = stored_route(route, intent)
        session_key = PrivateKey.generate()
        hops = [(h.node_id, p.encode()) for h, p in zip(route.hops, shard.payloads)]
        onion = create_onion(session_key, hops, intent.payment_hash)
        amount, cltv = route.total_amount_msat, route.total_timelock
        attempt: Attempt | None = None

        def offer(ch: Channel) -> list[Effect]:
            nonlocal attempt
            assert ch.commitments is not None
            attempt = self.store.add_attempt(intent.payment_hash, stored, session_key.to_bytes(), ch.channel_id,
                                             ch.commitments.local_next_htlc_id, self._now_ns())
            try:
                return [*ch.add_htlc(amount, intent.payment_hash, cltv, onion), *ch.sign()]
            except ChannelError:
                self.store.forget_attempt(attempt.attempt_id)
                raise

        try:
            # A crash before the add is signed loses it; `reconcile` then fails the attempt (its HTLC id is
            # not below the channel's next one), so the add alone need not be written.
            await self.node.channels.command(mc, offer, own_updates_recoverable=True)
        except ChannelError as e:
            log.info("channel %s refused the HTLC: %s", mc.channel_id.hex(), e.reason)
            lc.launch_failed(shard.shard_id, e.reason)
            return None
        assert attempt is not None
        log.info("payment %s: HTLC %d offered on %s (%d msat incl. %d fee, cltv %d, %d hops)",
                 intent.payment_hash.hex(), attempt.htlc_id, mc.channel_id.hex(), amount, route.total_fee_msat, cltv,
                 len(route.hops))
        self.htlc_events.sent(mc.channel.short_channel_id or 0, attempt.htlc_id, amount, cltv, self._now_ns())
        if publish:
            payment = self.store.get(intent.payment_hash)
            assert payment is not None
            self._publish(payment)
        return attempt.attempt_id

    async def _drive(self, lc: PaymentLifecycle, events: trio.MemoryReceiveChannel[_Outcome],
                     shards: dict[int, int], resumed: bool = False) -> None:
        """The rest of a payment's life: outcomes in, retries out, until it is decided.

        ``resumed``: a payment carried over a restart; once our channels are back (or RESUME_GRACE_S
        passed) it takes its next step before waiting for outcomes.
        """
        payment_hash = lc.intent.payment_hash
        try:
            if resumed:
                with trio.move_on_after(RESUME_GRACE_S):
                    while not self._channels_back():
                        await trio.sleep(0.1)
                if await self._advance(lc, shards):
                    return
            while True:
                now = self.node.clock()
                wait = lc.deadline - now if now < lc.deadline else math.inf
                outcome = None
                with trio.move_on_after(wait):
                    outcome = await events.receive()
                if outcome is not None:
                    attempt_id, preimage, failure = outcome
                    shard_id = shards.pop(attempt_id, None)
                    if shard_id is not None:
                        if preimage is not None:
                            lc.shard_succeeded(shard_id, preimage, self.node.clock())
                        elif failure is not None:
                            shard = lc.s.in_flight.get(shard_id)
                            update = None
                            if shard is not None and 0 < failure.source_index <= len(shard.route.hops):
                                erring = shard.route.hops[failure.source_index - 1].node_id
                                update = failure_channel_update(failure.channel_update, erring)
                            lc.shard_failed(shard_id, failure.source_index, failure.code, self.node.clock(),
                                            update, message=failure.message)
                if await self._advance(lc, shards):
                    return
        except Exception:  # never take the daemon down: the HTLCs out are still followed, without retries
            log.exception("payment %s: the payment loop failed", payment_hash.hex())
            self._drivers.pop(payment_hash, None)
            payment = self.store.get(payment_hash)
            if payment is not None and not payment.is_final:
                self._settle_books(payment, "the payment loop failed")
                self._publish(self.store.get(payment_hash) or payment)
        finally:
            self._drivers.pop(payment_hash, None)

    # --- outcomes (called inside the channel manager's lock: no channel commands here) -------------------

    def htlc_resolved(self, mc: ManagedChannel, event: HtlcFulfilled | HtlcFailed) -> None:
        attempt = self.store.attempt_for_htlc(event.channel_id, event.htlc_id)
        if attempt is None or attempt.status is not AttemptStatus.IN_FLIGHT:
            return  # not ours (a forward) or a retransmission after a reconnection
        now = self._now_ns()
        driver = self._drivers.get(attempt.payment_hash)
        self.htlc_events.send_resolved(mc.channel.short_channel_id or 0, event.htlc_id,
                                       event.payment_preimage if isinstance(event, HtlcFulfilled) else None, now)
        if isinstance(event, HtlcFulfilled):
            if sha256(event.payment_preimage) != attempt.payment_hash:  # the channel checked it already
                log.error("preimage for HTLC %d does not match its payment hash", event.htlc_id)
                return
            payment = self.store.settle_attempt(attempt.attempt_id, event.payment_preimage, now)
            log.info("payment %s: attempt %d succeeded", attempt.payment_hash.hex(), attempt.attempt_id)
            if driver is not None:
                driver.send_nowait((attempt.attempt_id, event.payment_preimage, None))
            self._publish_when_durable(payment)  # (its preimage is committed, not yet fsync'd)
            return
        else:
            failure = decode_htlc_failure(attempt, event)
            self.store.fail_attempt(attempt.attempt_id, failure, now)
            log.info("payment %s: attempt %d failed: %s (from hop %d)", attempt.payment_hash.hex(),
                     attempt.attempt_id, failure.message or failure.code, failure.source_index)
            payment = self.store.get(attempt.payment_hash) or self.store.fail_payment(attempt.payment_hash,
                                                                                      FailureReason.ERROR)
            if driver is not None:
                driver.send_nowait((attempt.attempt_id, None, failure))
            elif not any(a.status is AttemptStatus.IN_FLIGHT for a in payment.attempts):
                # No driver (the node restarted since): no retries, the payment ends with its last attempt.
                payment = self.store.fail_payment(attempt.payment_hash, failure_reason_for(failure))
        self._publish(payment)

    def reconcile(self) -> None:
        """At start: settle the books of IN_FLIGHT payments whose HTLC is no longer (or never was) in a channel.

        A fulfilled HTLC is always recorded before the channel can drop it (``htlc_resolved`` runs
        before the next peer message), so an HTLC that is gone without a recorded preimage failed.
        A payment stored with its settings is then resumed (as lnd does): its lifecycle is rebuilt
        from them and its attempts, outcomes of its HTLCs in flight are queued for it from now on,
        and its driver starts once the node has a peer again or sees a block (the first hook the
        running node calls: the drivers need its nursery). A payment
        stored without settings (made before they were kept) is followed to the end, no retries.
        """
        for payment in self.store.in_flight():
            intent = self._stored_intent(payment)
            if intent is None:
                self._settle_books(payment, "the HTLC left the channel while the node was down (no preimage)")
                continue
            self._settle_books(payment, "the HTLC left the channel while the node was down (no preimage)",
                               keep_payment=True)
            payment = self.store.get(payment.payment_hash) or payment
            try:
                lc, shards = PaymentLifecycle.resume(intent, self.source, self.graph, self.scorer,
                                                     payment.creation_time_ns / 1e9, payment.attempts,
                                                     stored_failure_update)
            except (ValueError, KeyError, IndexError) as e:  # never keep the node from starting
                log.warning("payment %s cannot be resumed (%s): followed to the end, no retries",
                            payment.payment_hash.hex(), e)
                self._settle_books(payment, "the HTLC left the channel while the node was down (no preimage)")
                continue
            events_send, events_recv = trio.open_memory_channel[_Outcome](math.inf)
            self._drivers[intent.payment_hash] = events_send
            self._resumed.append((lc, events_recv, shards))
            log.info("payment %s will be resumed: %d attempts, %d in flight", payment.payment_hash.hex(),
                     len(payment.attempts), len(shards))
        if self._resumed:
            self.node.peer_handlers.append(self._peer_changed)
            self.node.block_handlers.append(self._block_changed)

    def _stored_intent(self, payment: Payment) -> PaymentIntent | None:
        settings = self.store.settings(payment.payment_hash)
        if settings is None:
            return None
        try:
            return PaymentIntent.from_json(settings)
        except (ValueError, KeyError, TypeError) as e:
            log.warning("payment %s: unreadable settings (%s): followed to the end, no retries",
                        payment.payment_hash.hex(), e)
            return None

    def _peer_changed(self, peer: object, connected: bool) -> None:
        """The first peer is back after a start: resumed payments go on (their drivers wait for the rest)."""
        if connected:
            self._start_resumed()

    def _block_changed(self, block: object, height: int, connected: bool) -> None:
        """A block with no peer back yet: resumed payments go on too (their deadlines pass without peers)."""
        self._start_resumed()

    def _start_resumed(self) -> None:
        resumed, self._resumed = self._resumed, []
        for lc, events, shards in resumed:
            self.node.spawn(self._drive, lc, events, shards, True)

    def _channels_back(self) -> bool:
        """Every NORMAL channel of ours has its peer online and reestablished (the routes a resumed payment may need)."""
        for mc in self.node.channels.channels.values():
            ch = mc.channel
            if ch.state is ChannelState.NORMAL and (mc.peer.hex() not in self.node.peers or not ch.connected
                                                    or ch.awaiting_reestablish):
                return False
        return True

    def _settle_books(self, payment: Payment, why: str, keep_payment: bool = False) -> None:
        """Fail the IN_FLIGHT attempts whose HTLC is not in its channel; the payment too if none is left
        (unless ``keep_payment``: it is resumed)."""
        pending = False
        for attempt in payment.attempts:
            if attempt.status is not AttemptStatus.IN_FLIGHT:
                continue
            mc = self.node.channels.find(attempt.channel_id)
            if mc is not None and htlc_pending(mc.channel, attempt.htlc_id):
                pending = True
                continue
            c = None if mc is None else mc.channel.commitments
            if c is not None and attempt.htlc_id >= c.local_next_htlc_id:
                reason = "the HTLC never reached the channel"
            else:
                reason = why
            self.store.fail_attempt(attempt.attempt_id, AttemptFailure(UNREADABLE_FAILURE, 0, reason), self._now_ns())
        if not pending and not keep_payment:
            self.store.fail_payment(payment.payment_hash, FailureReason.ERROR)
            log.info("payment %s settled: no HTLC in flight (%s)", payment.payment_hash.hex(), why)
