"""HTLC events as lnd's ``routerrpc.SubscribeHtlcEvents`` streams them: forwards, sends, their outcomes.

Best effort, as in lnd: events are not persisted, a subscriber that falls behind is dropped. What
happens to an HTLC at this node becomes one :class:`HtlcEvent`:

* ``forward``: an HTLC left on its outgoing channel: a FORWARD (from the forwarder's circuit: both
  channels, both HTLC ids, amounts and time locks) or a SEND (one of our payment attempts: only
  the outgoing side);
* ``settle``: its preimage came back (``preimage``); ``forward_fail``: the downstream failed it;
* ``link_fail``: this node refused it (the forwarder's decision, or the outgoing channel refused
  the add): ``wire_failure`` is the BOLT 4 code sent back, ``failure_string`` why;
* RECEIVE events for HTLCs paying us: ``settle`` when fulfilled, ``link_fail`` when failed back.

The daemon publishes (:class:`HtlcEventHub`, on the trio thread); the service turns events into
``routerrpc.HtlcEvent`` messages. No clock here: times are passed in.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import trio

from channels.effects import IncomingHtlc

from .forwarding import Circuit, FailBack

__all__ = ["EventType", "HtlcEvent", "HtlcEventHub"]


class EventType(enum.IntEnum):
    """lnd's ``HtlcEvent.EventType``."""

    UNKNOWN = 0
    SEND = 1
    RECEIVE = 2
    FORWARD = 3


@dataclass(frozen=True)
class HtlcEvent:
    event_type: EventType
    kind: str
    """``forward``, ``forward_fail``, ``settle`` or ``link_fail`` (the ``event`` oneof of lnd's message)."""
    timestamp_ns: int
    incoming_channel_id: int = 0
    outgoing_channel_id: int = 0
    incoming_htlc_id: int = 0
    outgoing_htlc_id: int = 0
    incoming_timelock: int = 0
    outgoing_timelock: int = 0
    incoming_amt_msat: int = 0
    outgoing_amt_msat: int = 0
    preimage: bytes = b""
    wire_failure: int = 0
    failure_string: str = ""


class HtlcEventHub:
    """Subscribers of HTLC events, and the events the daemon's layers report."""

    def __init__(self, buffer: int = 1000) -> None:
        self.buffer = buffer
        self._subs: list[trio.MemorySendChannel[HtlcEvent]] = []

    def subscribe(self) -> trio.MemoryReceiveChannel[HtlcEvent]:
        send, recv = trio.open_memory_channel[HtlcEvent](self.buffer)
        self._subs.append(send)
        return recv

    def publish(self, event: HtlcEvent) -> None:
        for ch in list(self._subs):
            try:
                ch.send_nowait(event)
            except trio.WouldBlock:  # too far behind: dropped, as lnd drops a slow subscriber
                ch.close()
                self._subs.remove(ch)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subs.remove(ch)

    # --- forwards (from the forwarder's circuits) ------------------------------------------------------

    @staticmethod
    def _circuit(c: Circuit, kind: str, now_ns: int, preimage: bytes = b"") -> HtlcEvent:
        return HtlcEvent(
            EventType.FORWARD, kind, now_ns, incoming_channel_id=c.incoming_short_channel_id,
            outgoing_channel_id=c.outgoing_short_channel_id, incoming_htlc_id=c.incoming.htlc_id,
            outgoing_htlc_id=c.outgoing_htlc_id or 0, incoming_timelock=c.incoming_cltv_expiry,
            outgoing_timelock=c.outgoing_cltv_expiry, incoming_amt_msat=c.incoming_amount_msat,
            outgoing_amt_msat=c.outgoing_amount_msat, preimage=preimage)

    def forwarded(self, circuit: Circuit | None, now_ns: int) -> None:
        if circuit is not None:
            self.publish(self._circuit(circuit, "forward", now_ns))

    def forward_resolved(self, circuit: Circuit | None, preimage: bytes | None, now_ns: int) -> None:
        """The downstream settled (``preimage``) or failed a forward."""
        if circuit is None:
            return
        if preimage is not None:
            self.publish(self._circuit(circuit, "settle", now_ns, preimage=preimage))
        else:
            self.publish(self._circuit(circuit, "forward_fail", now_ns))

    def link_failed(self, incoming_scid: int, incoming_htlc_id: int, amount_msat: int, cltv_expiry: int,
                    fail: FailBack, now_ns: int, circuit: Circuit | None = None) -> None:
        """We refused an incoming HTLC (the forwarder's checks, or the outgoing channel's add failed)."""
        code = fail.failure.code if fail.failure is not None else fail.failure_code or 0
        self.publish(HtlcEvent(
            EventType.FORWARD, "link_fail", now_ns, incoming_channel_id=incoming_scid,
            outgoing_channel_id=circuit.outgoing_short_channel_id if circuit else 0, incoming_htlc_id=incoming_htlc_id,
            incoming_timelock=cltv_expiry, outgoing_timelock=circuit.outgoing_cltv_expiry if circuit else 0,
            incoming_amt_msat=amount_msat, outgoing_amt_msat=circuit.outgoing_amount_msat if circuit else 0,
            wire_failure=code, failure_string=fail.why))

    # --- payments to us ---------------------------------------------------------------------------------

    def received(self, scid: int, htlc: IncomingHtlc, preimage: bytes | None, wire_failure: int, why: str,
                 now_ns: int) -> None:
        """An HTLC paying us was fulfilled (``preimage``) or failed back (``wire_failure``, ``why``)."""
        kind = "settle" if preimage is not None else "link_fail"
        self.publish(HtlcEvent(
            EventType.RECEIVE, kind, now_ns, incoming_channel_id=scid, incoming_htlc_id=htlc.htlc_id,
            incoming_timelock=htlc.cltv_expiry, incoming_amt_msat=htlc.amount_msat, preimage=preimage or b"",
            wire_failure=wire_failure, failure_string=why))

    # --- our own payments ------------------------------------------------------------------------------

    def sent(self, scid: int, htlc_id: int, amount_msat: int, cltv_expiry: int, now_ns: int) -> None:
        self.publish(HtlcEvent(EventType.SEND, "forward", now_ns, outgoing_channel_id=scid, outgoing_htlc_id=htlc_id,
                               outgoing_timelock=cltv_expiry, outgoing_amt_msat=amount_msat))

    def send_resolved(self, scid: int, htlc_id: int, preimage: bytes | None, now_ns: int) -> None:
        kind = "settle" if preimage is not None else "forward_fail"
        self.publish(HtlcEvent(EventType.SEND, kind, now_ns, outgoing_channel_id=scid, outgoing_htlc_id=htlc_id,
                               preimage=preimage or b""))
