"""Sending payments: the lifecycle from an intent to SUCCEEDED / FAILED (lnd's router, single hop for now).

A :class:`PaymentIntent` (from a BOLT 11 invoice or a keysend) is paid over a
channel *directly to the destination*: :class:`Payer` picks a NORMAL channel
with the destination whose peer is online and whose local balance covers the
amount (largest first), builds a one-hop onion (a fresh random session key;
``amt_to_forward``, ``outgoing_cltv_value`` and ``payment_data`` or the keysend
record) and offers the HTLC. The CLTV is ``tip + final_cltv_delta + 3`` (lnd's
block padding, so a payee one or two blocks ahead still accepts it).

Persist before you promise: the payment and the attempt (route, session key,
the channel's next HTLC id) are written to :class:`~htlc.payments.PaymentStore`
inside the same channel-manager critical section that calls
``Channel.add_htlc`` and before any of its effects go out, so after a crash
every HTLC on the wire has its attempt on disk and a payment hash is never
offered twice. :meth:`Payer.reconcile` (at start) fails the attempts whose
HTLC never reached the channel or has left it without a preimage.

Outcomes arrive through the channel manager's ``on_htlc_settled`` hook
(:meth:`Payer.htlc_resolved`, synchronous: it writes the outcome before the
manager carries out the next effect): ``HtlcFulfilled`` with a preimage that
hashes to the payment hash -> SUCCEEDED; ``HtlcFailed`` -> the error onion is
decoded with the attempt's session key -> FAILED with lnd's reason
(``incorrect_or_unknown_payment_details`` -> FAILURE_REASON_INCORRECT_PAYMENT_DETAILS).

Not yet: multi-hop routes (a destination that is not a direct peer fails
with FAILURE_REASON_NO_ROUTE until ``htlc.pathfind`` is wired in), retries
over other routes, MPP. Payments whose HTLC went on chain stay IN_FLIGHT.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

import trio

from base_chain.crypto import PrivateKey
from base_chain.hashes import sha256
from channels.effects import ChannelError, Effect, HtlcFailed, HtlcFulfilled
from channels.manager import ManagedChannel
from channels.messages import UpdateAddHtlc
from channels.state import Channel, ChannelState
from channels.transactions import HtlcDirection

from .failure import FailureCode, FailureDecodeError, FailureMessage, decode_failure
from .invoice import RouteHintHop
from .onion import HopPayload, HopPayloadType, PaymentData, create_onion
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

if TYPE_CHECKING:
    from channels.node import ChannelNode

__all__ = [
    "BLOCK_PADDING",
    "DEFAULT_FINAL_CLTV_DELTA",
    "KEYSEND_RECORD",
    "NoRoute",
    "Payer",
    "PaymentIntent",
    "Watchers",
    "failure_reason_for",
    "final_hop_payload",
    "htlc_pending",
]

log = logging.getLogger("canal.payments")

KEYSEND_RECORD = int(HopPayloadType.KEYSEND_PREIMAGE)
"""lnd's keysend custom record (5482373484): the preimage, chosen by the payer."""
BLOCK_PADDING = 3
"""Blocks added to the final CLTV (lnd's ``BlockPadding``)."""
DEFAULT_FINAL_CLTV_DELTA = 80
"""The final CLTV delta of a payment without an invoice (keysend), as lnd's router defaults it."""

T = TypeVar("T")
K = TypeVar("K")


@dataclass(frozen=True)
class PaymentIntent:
    """What to pay: ``payment_secret`` for an invoice, ``keysend_preimage`` for a spontaneous payment."""

    destination: bytes
    amount_msat: int
    payment_hash: bytes
    final_cltv_delta: int = DEFAULT_FINAL_CLTV_DELTA
    payment_secret: bytes | None = None
    keysend_preimage: bytes | None = None
    payment_request: str = ""
    custom_records: tuple[tuple[int, bytes], ...] = ()
    outgoing_chan_ids: tuple[int, ...] = ()
    cltv_limit: int = 0
    #: The invoice's route hints (BOLT 11 `r`): the last hops to reach a payee behind private channels.
    route_hints: tuple[tuple[RouteHintHop, ...], ...] = ()


class NoRoute(Exception):
    """The payment cannot be attempted; ``reason`` is the payment's failure reason."""

    def __init__(self, reason: FailureReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# --- pure helpers ------------------------------------------------------------------------------------------


def final_hop_payload(intent: PaymentIntent, cltv: int) -> HopPayload:
    """The final hop's TLV payload: amount, CLTV, and ``payment_data`` or the keysend preimage."""
    data = None
    if intent.payment_secret is not None:
        data = PaymentData(intent.payment_secret, intent.amount_msat)
    return HopPayload(amt_to_forward=intent.amount_msat, outgoing_cltv_value=cltv, payment_data=data,
                      keysend_preimage=intent.keysend_preimage, custom_records=intent.custom_records)


def single_hop_route(intent: PaymentIntent, mc: ManagedChannel, cltv: int) -> Route:
    c = mc.channel.commitments
    capacity = c.params.funding_sat if c is not None else 0
    records = intent.custom_records
    if intent.keysend_preimage is not None:
        records = tuple(sorted(records + ((KEYSEND_RECORD, intent.keysend_preimage),)))
    hop = RouteHop(pubkey=intent.destination, short_channel_id=mc.channel.short_channel_id or 0,
                   amt_to_forward_msat=intent.amount_msat, fee_msat=0, expiry=cltv, chan_capacity_sat=capacity,
                   payment_addr=intent.payment_secret, total_msat=intent.amount_msat if intent.payment_secret else 0,
                   custom_records=records)
    return Route(total_time_lock=cltv, total_amt_msat=intent.amount_msat, total_fees_msat=0, hops=(hop,))


def hinted_route(intent: PaymentIntent, mc: ManagedChannel, hint: RouteHintHop, cltv: int) -> tuple[Route, list[
        tuple[bytes, bytes]], int, int]:
    """us -> hint.pubkey (our channel) -> destination (the hinted channel): the route, the onion hops,
    and the amount and CLTV of the HTLC we offer (the hint node's fee and delta added)."""
    fee = hint.fee_base_msat + intent.amount_msat * hint.fee_proportional_millionths // 1_000_000
    first_cltv = cltv + hint.cltv_expiry_delta
    c = mc.channel.commitments
    capacity = c.params.funding_sat if c is not None else 0
    final = single_hop_route(intent, mc, cltv).hops[0]
    final = RouteHop(pubkey=intent.destination, short_channel_id=hint.short_channel_id,
                     amt_to_forward_msat=intent.amount_msat, fee_msat=0, expiry=cltv, chan_capacity_sat=0,
                     payment_addr=final.payment_addr, total_msat=final.total_msat, custom_records=final.custom_records)
    first = RouteHop(pubkey=hint.pubkey, short_channel_id=mc.channel.short_channel_id or 0,
                     amt_to_forward_msat=intent.amount_msat, fee_msat=fee, expiry=cltv, chan_capacity_sat=capacity)
    route = Route(total_time_lock=first_cltv, total_amt_msat=intent.amount_msat + fee, total_fees_msat=fee,
                  hops=(first, final))
    forward = HopPayload(amt_to_forward=intent.amount_msat, outgoing_cltv_value=cltv,
                         short_channel_id=hint.short_channel_id)
    hops = [(hint.pubkey, forward.encode()), (intent.destination, final_hop_payload(intent, cltv).encode())]
    return route, hops, intent.amount_msat + fee, first_cltv


def failure_reason_for(failure: AttemptFailure) -> FailureReason:
    """The payment's failure reason once its only route failed this way (lnd's final-hop outcomes)."""
    if failure.code == FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS:
        return FailureReason.INCORRECT_PAYMENT_DETAILS
    if failure.code in (FailureCode.FINAL_INCORRECT_CLTV_EXPIRY, FailureCode.FINAL_INCORRECT_HTLC_AMOUNT):
        return FailureReason.ERROR
    return FailureReason.NO_ROUTE  # no other route is left to try


def attempt_failure(message: FailureMessage, source_index: int) -> AttemptFailure:
    return AttemptFailure(
        code=message.code, source_index=source_index, message=str(message), htlc_msat=message.htlc_msat or 0,
        cltv_expiry=message.cltv_expiry or 0, height=message.height or 0, flags=message.disabled_flags or 0,
        onion_sha256=message.sha256_of_onion or b"",
    )


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


class Payer:
    """Pays intents over direct channels and follows their HTLCs (see the module docstring)."""

    def __init__(self, node: ChannelNode, store: PaymentStore) -> None:
        self.node = node
        self.store = store
        self.updates: Watchers[bytes, Payment] = Watchers()

    def _now_ns(self) -> int:
        return int(self.node.clock() * 1_000_000_000)

    def _publish(self, payment: Payment) -> None:
        self.updates.publish(payment.payment_hash, payment)

    def track(self, payment_hash: bytes) -> tuple[Payment | None, trio.MemoryReceiveChannel[Payment]]:
        """The payment as stored now and a stream of its later states (subscribe before reading: nothing lost)."""
        recv = self.updates.subscribe(payment_hash)
        return self.store.get(payment_hash), recv

    def _candidates(self, intent: PaymentIntent) -> list[ManagedChannel]:
        node = self.node
        mine = [mc for mc in node.channels.for_peer(intent.destination)
                if mc.channel.state is ChannelState.NORMAL and mc.channel.commitments is not None]
        if intent.outgoing_chan_ids:
            mine = [mc for mc in mine if mc.channel.short_channel_id in intent.outgoing_chan_ids]
        online = [mc for mc in mine if mc.peer.hex() in node.peers]
        if not online:
            what = "no channel" if not mine else "no active channel"
            raise NoRoute(FailureReason.NO_ROUTE, f"{what} with {intent.destination.hex()} (multi-hop routes are "
                                                  "not supported yet)")
        enough = [mc for mc in online if mc.channel.local_balance_msat >= intent.amount_msat]
        if not enough:
            raise NoRoute(FailureReason.INSUFFICIENT_BALANCE,
                          f"insufficient local balance for {intent.amount_msat} msat")
        return sorted(enough, key=lambda mc: mc.channel.local_balance_msat, reverse=True)

    async def send(self, intent: PaymentIntent) -> tuple[Payment, trio.MemoryReceiveChannel[Payment]]:
        """Start paying: the payment as it stands once its HTLC is offered (or FAILED) and its update stream.

        Raises ``payments.PaymentExists`` if this hash is paid or being paid.
        """
        self.store.init_payment(intent.payment_hash, intent.amount_msat, intent.destination, intent.payment_request,
                                self._now_ns())
        recv = self.updates.subscribe(intent.payment_hash)
        try:
            await self._offer(intent)
        except NoRoute as e:
            log.info("payment %s failed before any HTLC: %s", intent.payment_hash.hex(), e.message)
            self._publish(self.store.fail_payment(intent.payment_hash, e.reason))
        except Exception:
            payment = self.store.get(intent.payment_hash)
            if payment is not None:  # fail it unless its HTLC did reach the channel
                self._settle_books(payment, "offering the HTLC failed")
                self._publish(self.store.get(intent.payment_hash) or payment)
            recv.close()
            raise
        payment = self.store.get(intent.payment_hash)
        assert payment is not None
        return payment, recv

    def _via_hints(self, intent: PaymentIntent) -> list[tuple[ManagedChannel, RouteHintHop]]:
        """Channels to a peer that an invoice's single-hop route hint names as the payee's neighbour."""
        node = self.node
        out = []
        for hint_route in intent.route_hints:
            if len(hint_route) != 1:
                continue  # longer hints need the channel graph (gossip): not yet
            hint = hint_route[0]
            for mc in node.channels.for_peer(hint.pubkey):
                if (mc.channel.state is ChannelState.NORMAL and mc.channel.commitments is not None
                        and mc.peer.hex() in node.peers and mc.channel.local_balance_msat > intent.amount_msat):
                    out.append((mc, hint))
        return sorted(out, key=lambda x: x[0].channel.local_balance_msat, reverse=True)

    async def _offer(self, intent: PaymentIntent) -> None:
        try:
            candidates = self._candidates(intent)
        except NoRoute:
            hinted = self._via_hints(intent)
            if not hinted:
                raise
            await self._offer_hinted(intent, hinted)
            return
        padding = intent.final_cltv_delta + BLOCK_PADDING
        if intent.cltv_limit and padding > intent.cltv_limit:
            raise NoRoute(FailureReason.NO_ROUTE, f"final CLTV delta {padding} exceeds the cltv_limit")
        cltv = self.node.tip_height + padding
        session_key = PrivateKey.generate()
        payload = final_hop_payload(intent, cltv).encode()
        onion = create_onion(session_key, [(intent.destination, payload)], intent.payment_hash)
        refusals = []
        for mc in candidates:
            route = single_hop_route(intent, mc, cltv)
            attempt: Attempt | None = None

            def offer(ch: Channel, route: Route = route) -> list[Effect]:
                nonlocal attempt
                assert ch.commitments is not None
                htlc_id = ch.commitments.local_next_htlc_id
                attempt = self.store.add_attempt(intent.payment_hash, route, session_key.to_bytes(), ch.channel_id,
                                                 htlc_id, self._now_ns())
                try:
                    return [*ch.add_htlc(intent.amount_msat, intent.payment_hash, cltv, onion), *ch.sign()]
                except ChannelError:
                    self.store.forget_attempt(attempt.attempt_id)
                    raise

            try:
                await self.node.channels.command(mc, offer)
            except ChannelError as e:
                refusals.append(e.reason)
                log.info("channel %s refused the HTLC: %s", mc.channel_id.hex(), e.reason)
                continue
            assert attempt is not None
            log.info("payment %s: HTLC %d offered on %s (%d msat, cltv %d)", intent.payment_hash.hex(),
                     attempt.htlc_id, mc.channel_id.hex(), intent.amount_msat, cltv)
            payment = self.store.get(intent.payment_hash)
            assert payment is not None
            self._publish(payment)
            return
        raise NoRoute(FailureReason.INSUFFICIENT_BALANCE, "; ".join(refusals) or "no channel took the HTLC")

    async def _offer_hinted(self, intent: PaymentIntent, hinted: list[tuple[ManagedChannel, RouteHintHop]]) -> None:
        """Pay through the payee's neighbour named in a route hint (a two-hop route)."""
        cltv = self.node.tip_height + intent.final_cltv_delta + BLOCK_PADDING
        refusals = []
        for mc, hint in hinted:
            route, hops, amount, first_cltv = hinted_route(intent, mc, hint, cltv)
            if intent.cltv_limit and first_cltv - self.node.tip_height > intent.cltv_limit:
                refusals.append("route exceeds the cltv_limit")
                continue
            session_key = PrivateKey.generate()
            onion = create_onion(session_key, hops, intent.payment_hash)
            attempt: Attempt | None = None

            def offer(ch: Channel, route: Route = route, amount: int = amount, first_cltv: int = first_cltv,
                      onion: bytes = onion, session_key: PrivateKey = session_key) -> list[Effect]:
                nonlocal attempt
                assert ch.commitments is not None
                attempt = self.store.add_attempt(intent.payment_hash, route, session_key.to_bytes(), ch.channel_id,
                                                 ch.commitments.local_next_htlc_id, self._now_ns())
                try:
                    return [*ch.add_htlc(amount, intent.payment_hash, first_cltv, onion), *ch.sign()]
                except ChannelError:
                    self.store.forget_attempt(attempt.attempt_id)
                    raise

            try:
                await self.node.channels.command(mc, offer)
            except ChannelError as e:
                refusals.append(e.reason)
                continue
            assert attempt is not None
            log.info("payment %s: HTLC %d offered on %s via %s (%d msat incl. %d fee, cltv %d)",
                     intent.payment_hash.hex(), attempt.htlc_id, mc.channel_id.hex(), hint.pubkey.hex(), amount,
                     amount - intent.amount_msat, first_cltv)
            payment = self.store.get(intent.payment_hash)
            assert payment is not None
            self._publish(payment)
            return
        raise NoRoute(FailureReason.NO_ROUTE, "; ".join(refusals) or "no usable route hint")

    # --- outcomes (called inside the channel manager's lock: no channel commands here) -------------------

    def htlc_resolved(self, mc: ManagedChannel, event: HtlcFulfilled | HtlcFailed) -> None:
        attempt = self.store.attempt_for_htlc(event.channel_id, event.htlc_id)
        if attempt is None or attempt.status is not AttemptStatus.IN_FLIGHT:
            return  # not ours (a forward) or a retransmission after a reconnection
        now = self._now_ns()
        if isinstance(event, HtlcFulfilled):
            if sha256(event.payment_preimage) != attempt.payment_hash:  # the channel checked it already
                log.error("preimage for HTLC %d does not match its payment hash", event.htlc_id)
                return
            payment = self.store.settle_attempt(attempt.attempt_id, event.payment_preimage, now)
            log.info("payment %s succeeded", attempt.payment_hash.hex())
        else:
            failure = decode_htlc_failure(attempt, event)
            self.store.fail_attempt(attempt.attempt_id, failure, now)
            payment = self.store.fail_payment(attempt.payment_hash, failure_reason_for(failure))
            log.info("payment %s failed: %s (from hop %d)", attempt.payment_hash.hex(), failure.message or failure.code,
                     failure.source_index)
        self._publish(payment)

    def reconcile(self) -> None:
        """At start: settle the books of IN_FLIGHT payments whose HTLC is no longer (or never was) in a channel.

        A fulfilled HTLC is always recorded before the channel can drop it (``htlc_resolved`` runs
        before the next peer message), so an HTLC that is gone without a recorded preimage failed.
        """
        for payment in self.store.in_flight():
            self._settle_books(payment, "the HTLC left the channel while the node was down (no preimage)")

    def _settle_books(self, payment: Payment, why: str) -> None:
        """Fail the IN_FLIGHT attempts whose HTLC is not in its channel; the payment too if none is left."""
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
        if not pending:
            self.store.fail_payment(payment.payment_hash, FailureReason.ERROR)
            log.info("payment %s marked FAILED: no HTLC in flight (%s)", payment.payment_hash.hex(), why)

