"""Forwarding HTLCs: a sans-IO switch (BOLT 4 "Accepting and Forwarding a Payment", BOLT 2 "Forwarding HTLCs").

A :class:`Forwarder` decides what to do with an HTLC a peer offered us when
the onion names a next hop, keeps the *circuit* joining that incoming HTLC to
the HTLC we offer downstream, and turns the downstream outcome into the
upstream one. It does no I/O and reads no clock: the chain height, the time
and a view of our channels (:class:`OutgoingChannel`) are arguments; what it
returns says what to do (lnd's htlcswitch + circuit map; LDK's
``ChannelManager`` forwarding).

Incoming HTLC (irrevocably committed; the host has peeled the onion, e.g.
with :func:`peel_onion`): :meth:`Forwarder.on_incoming` returns

- :class:`NotForwarding`: we are the final node; ``htlc.receive`` decides;
- :class:`Forward`: offer ``update_add_htlc`` on ``channel_id``;
- :class:`FailBack`: fail the incoming HTLC (``update_fail_htlc`` with
  ``reason``, already wrapped with our shared secret, or
  ``update_fail_malformed_htlc`` when ``is_malformed``);
- :class:`AlreadyForwarded` / a replayed :class:`Settle` or :class:`FailBack`:
  the HTLC has a circuit already (it was re-reported after a restart); it is
  never forwarded twice.

Checks, in this order (the first that fails names the failure):

1. the onion: malformed -> ``update_fail_malformed_htlc``; an authenticated
   but invalid payload -> ``invalid_onion_payload``; blinded routes are not
   relayed (``invalid_onion_blinding``, as BOLT 2 asks);
2. the final hop -> :class:`NotForwarding`; the incoming HTLC pushes the
   incoming channel's dust exposure over the limit (``incoming_refusal``)
   -> ``temporary_channel_failure``;
3. ``short_channel_id`` is none of ours -> ``unknown_next_peer``;
4. the channel is disabled -> ``channel_disabled``; no channel to that peer
   can carry HTLCs now (peer offline, not NORMAL) -> ``temporary_channel_failure``;
5. ``amt_to_forward`` below ``htlc_minimum_msat`` -> ``amount_below_minimum``
   (the outgoing amount); above ``htlc_maximum_msat`` -> ``temporary_channel_failure``;
6. ``amount_msat - amt_to_forward < fee_base_msat + amt_to_forward *
   fee_proportional_millionths / 1e6`` (BOLT 7) -> ``fee_insufficient`` (the
   incoming amount);
7. ``cltv_expiry - outgoing_cltv_value < cltv_expiry_delta`` ->
   ``incorrect_cltv_expiry`` (reporting the outgoing HTLC's ``cltv_expiry``,
   as BOLT 4 words it; lnd reports the incoming one);
8. the incoming ``cltv_expiry`` at or within ``incoming_htlc_claim_buffer``
   blocks of the tip (BOLT 2: never forward past the fulfillment deadline),
   or ``outgoing_cltv_value <= height + outgoing_cltv_reject_delta`` ->
   ``expiry_too_soon``;
9. ``outgoing_cltv_value > height + max_htlc_cltv`` (2016) -> ``expiry_too_far``;
10. no active channel to the peer can take the HTLC now (balance, reserve,
    commitment fee, the peer's slot and in-flight limits, dust exposure:
    :meth:`OutgoingChannel.refusal`) -> ``temporary_channel_failure``.

Non-strict forwarding (BOLT 4): the fee and CLTV rules are those of the
channel the onion names, but the HTLC goes over whichever active channel to
the same peer can carry it (the named one first).

Failures that carry a ``channel_update`` carry
:attr:`OutgoingChannel.channel_update` (empty until gossip exists, which
BOLT 4 now allows).

The circuit of an HTLC goes PENDING_ADD (decided, not yet offered) ->
FORWARDED (:meth:`Forwarder.on_forward_added` gave the outgoing ``htlc_id``)
-> SETTLED or FAILED (the downstream outcome, replayed until the host says
the upstream removal is durable: :meth:`Forwarder.upstream_resolved`).
:meth:`Forwarder.to_dict` / :meth:`Forwarder.from_dict` persist the circuits
and the forwarding history: write them before carrying out any decision that
changed them, so a restart neither forwards an HTLC twice nor loses one.

:meth:`Forwarder.on_height` applies BOLT 2's deadlines to forwarded HTLCs
whose downstream is unresolved: :class:`GoOnChain` for the downstream channel
once the HTLC we offered is ``outgoing_htlc_grace_blocks`` past its expiry,
or the incoming HTLC is within ``incoming_htlc_claim_buffer`` blocks of its
own.

Settled forwards are logged (:class:`ForwardingEvent`) for lnd's
``ForwardingHistory`` and ``FeeReport``.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from base_chain.crypto import PrivateKey
from base_chain.hashes import sha256
from channels.effects import HtlcFailed, HtlcFulfilled, IncomingHtlc

from .failure import FailureCode, FailureMessage, create_failure, wrap_failure
from .onion import OnionError, ProcessedOnion, process_onion

__all__ = [
    "MAX_HTLC_CLTV",
    "ForwardingConfig",
    "ChannelPolicy",
    "OutgoingChannel",
    "HtlcRef",
    "Forward",
    "FailBack",
    "Settle",
    "NotForwarding",
    "AlreadyForwarded",
    "GoOnChain",
    "Decision",
    "CircuitState",
    "Circuit",
    "ForwardingEvent",
    "ForwardingHistoryPage",
    "FeeSums",
    "Forwarder",
    "peel_onion",
]

MAX_HTLC_CLTV = 2016
"""BOLT 4 ``max_htlc_cltv``: an outgoing HTLC may expire at most this many blocks ahead."""

_U16 = 0xFFFF
_DAY = 24 * 3600
_MALFORMED_CODES = frozenset({FailureCode.INVALID_ONION_VERSION, FailureCode.INVALID_ONION_HMAC,
                              FailureCode.INVALID_ONION_KEY, FailureCode.INVALID_ONION_BLINDING})


# ---------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ForwardingConfig:
    """Safety margins, in blocks.

    * ``outgoing_cltv_reject_delta``: refuse (``expiry_too_soon``) to offer an
      HTLC expiring within this many blocks (lnd's ``OutgoingCltvRejectDelta``, 13).
    * ``max_htlc_cltv``: refuse (``expiry_too_far``) an outgoing HTLC expiring
      further ahead (BOLT 4, 2016).
    * ``incoming_htlc_claim_buffer``: the fulfillment deadline of BOLT 2
      (``2R+G+S``, 18): do not forward an HTLC that expires this close, and go
      on chain downstream when a forwarded one gets this close unresolved.
    * ``outgoing_htlc_grace_blocks``: the timeout deadline of BOLT 2 (``G``):
      go on chain when an HTLC we offered is this far past its expiry (LDK: 3).
    """

    outgoing_cltv_reject_delta: int = 13
    max_htlc_cltv: int = MAX_HTLC_CLTV
    incoming_htlc_claim_buffer: int = 18
    outgoing_htlc_grace_blocks: int = 3

    def __post_init__(self) -> None:
        for name in ("outgoing_cltv_reject_delta", "max_htlc_cltv", "incoming_htlc_claim_buffer",
                     "outgoing_htlc_grace_blocks"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")


@dataclass(frozen=True)
class ChannelPolicy:
    """Our forwarding policy for one channel, the one we announce in our ``channel_update`` (BOLT 7).

    Not :class:`htlc.graph.ChannelPolicy`, the graph's view of any node's channel.
    """

    fee_base_msat: int
    fee_proportional_millionths: int
    cltv_expiry_delta: int
    htlc_minimum_msat: int
    htlc_maximum_msat: int
    disabled: bool = False

    def fee_msat(self, amount_to_forward_msat: int) -> int:
        """BOLT 7 "HTLC Fees": fee_base_msat + amount_to_forward * fee_proportional_millionths / 1e6."""
        return self.fee_base_msat + amount_to_forward_msat * self.fee_proportional_millionths // 1_000_000


@dataclass(frozen=True)
class OutgoingChannel:
    """One of our channels as the forwarder sees it when an HTLC arrives.

    ``is_active``: NORMAL, not shutting down, peer connected (it can take an
    ``update_add_htlc`` now). ``available_msat``: what we can still offer on it
    (our balance less reserve, fees and in-flight HTLCs). ``add_refusal``: when
    given, the channel's exact check of an HTLC of that amount (why it would
    refuse it, None if it would take it: ``Commitments.add_refusal``), which
    then decides instead of ``available_msat``. ``channel_update``: the raw
    ``channel_update`` for failures that carry one (may be empty).
    """

    short_channel_id: int
    channel_id: bytes
    node_id: bytes
    is_active: bool
    available_msat: int
    policy: ChannelPolicy
    channel_update: bytes = b""
    add_refusal: Callable[[int], str | None] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if len(self.channel_update) > _U16:
            raise ValueError("channel_update longer than 65535 bytes")

    def refusal(self, amount_msat: int) -> str | None:
        """Why this channel cannot take an HTLC of ``amount_msat`` now; None when it can."""
        if self.add_refusal is not None:
            return self.add_refusal(amount_msat)
        return None if amount_msat <= self.available_msat else f"only {self.available_msat} msat available"


def peel_onion(node_key: PrivateKey, htlc: IncomingHtlc) -> ProcessedOnion | OnionError:
    """``process_onion`` with the payment hash as associated data; a wrong-length onion is ``invalid_onion_version``."""
    onion = htlc.onion_routing_packet
    try:
        return process_onion(node_key, onion, htlc.payment_hash, path_key=htlc.path_key)
    except OnionError as e:
        return e
    except ValueError as e:  # the wire format fixes 1366 bytes: unparsable
        return OnionError(FailureMessage(FailureCode.INVALID_ONION_VERSION, sha256_of_onion=sha256(onion)), str(e))


# ---------------------------------------------------------------------------
# decisions
# ---------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class HtlcRef:
    """An HTLC on one of our channels: its ``channel_id`` and the ``id`` of its ``update_add_htlc``."""

    channel_id: bytes
    htlc_id: int

    def __str__(self) -> str:
        return f"{self.channel_id.hex()}:{self.htlc_id}"


@dataclass(frozen=True)
class Forward:
    """Offer ``update_add_htlc`` on ``channel_id``, then report its id with ``Forwarder.on_forward_added``.

    ``short_channel_id`` is the channel chosen; ``requested_short_channel_id``
    the one the onion named (they differ under non-strict forwarding).
    """

    incoming: HtlcRef
    channel_id: bytes
    short_channel_id: int
    amount_msat: int
    cltv_expiry: int
    payment_hash: bytes
    onion_routing_packet: bytes
    fee_msat: int
    requested_short_channel_id: int


@dataclass(frozen=True)
class FailBack:
    """Fail the incoming HTLC.

    ``update_fail_htlc`` with ``reason`` (an error onion, already wrapped with
    our shared secret), or, when ``is_malformed``, ``update_fail_malformed_htlc``
    with ``sha256_of_onion`` and ``failure_code``. ``failure`` is the message we
    made (None when we relay a downstream node's); ``why`` is for logs.
    """

    incoming: HtlcRef
    reason: bytes = b""
    failure_code: int | None = None
    sha256_of_onion: bytes | None = None
    failure: FailureMessage | None = None
    why: str = ""

    @property
    def is_malformed(self) -> bool:
        return self.failure_code is not None


@dataclass(frozen=True)
class Settle:
    """Fulfill the incoming HTLC with ``payment_preimage`` (``update_fulfill_htlc``, or on chain if it went there)."""

    incoming: HtlcRef
    payment_preimage: bytes


@dataclass(frozen=True)
class NotForwarding:
    """We are the final node: ``htlc.receive.decide`` handles this HTLC."""

    incoming: HtlcRef


@dataclass(frozen=True)
class AlreadyForwarded:
    """The HTLC has an open circuit (``outgoing`` None: decided but its add is not confirmed yet). Nothing to do."""

    incoming: HtlcRef
    outgoing: HtlcRef | None


@dataclass(frozen=True)
class GoOnChain:
    """Fail ``channel_id`` and publish our commitment: forwarded HTLCs on it are past a BOLT 2 deadline."""

    channel_id: bytes
    short_channel_id: int
    reason: str
    incoming: tuple[HtlcRef, ...]


Decision = Forward | FailBack | Settle | NotForwarding | AlreadyForwarded
"""What ``Forwarder.on_incoming`` returns."""


# ---------------------------------------------------------------------------
# circuits and the forwarding log
# ---------------------------------------------------------------------------


class CircuitState(enum.Enum):
    PENDING_ADD = "pending_add"  # Forward returned; the outgoing add is not confirmed
    FORWARDED = "forwarded"  # the outgoing HTLC exists (outgoing_htlc_id set)
    SETTLED = "settled"  # downstream fulfilled: Settle upstream (preimage kept)
    FAILED = "failed"  # downstream failed: FailBack upstream (reason kept)


@dataclass(frozen=True)
class Circuit:
    """An incoming HTLC and the outgoing HTLC we offered for it."""

    incoming: HtlcRef
    incoming_short_channel_id: int
    payment_hash: bytes
    incoming_amount_msat: int
    incoming_cltv_expiry: int
    shared_secret: bytes
    outgoing_channel_id: bytes
    outgoing_short_channel_id: int
    requested_short_channel_id: int
    outgoing_amount_msat: int
    outgoing_cltv_expiry: int
    sha256_of_next_onion: bytes
    state: CircuitState = CircuitState.PENDING_ADD
    next_onion: bytes | None = None  # kept until the add is confirmed (to re-offer it after a restart)
    outgoing_htlc_id: int | None = None
    payment_preimage: bytes | None = None
    fail_back: FailBack | None = None

    @property
    def outgoing(self) -> HtlcRef | None:
        return None if self.outgoing_htlc_id is None else HtlcRef(self.outgoing_channel_id, self.outgoing_htlc_id)

    @property
    def fee_msat(self) -> int:
        return self.incoming_amount_msat - self.outgoing_amount_msat

    def forward(self) -> Forward:
        assert self.next_onion is not None
        return Forward(self.incoming, self.outgoing_channel_id, self.outgoing_short_channel_id,
                       self.outgoing_amount_msat, self.outgoing_cltv_expiry, self.payment_hash, self.next_onion,
                       self.fee_msat, self.requested_short_channel_id)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, HtlcRef):
                v = _ref_dict(v)
            elif isinstance(v, CircuitState):
                v = v.value
            elif isinstance(v, FailBack):
                v = {"reason": v.reason.hex(), "failure_code": v.failure_code, "why": v.why,
                     "sha256_of_onion": _opt_hex(v.sha256_of_onion),
                     "failure": None if v.failure is None else v.failure.encode().hex()}
            elif isinstance(v, bytes):
                v = v.hex()
            d[f.name] = v
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Circuit:
        values: dict[str, Any] = {}
        for f in fields(cls):
            v = d[f.name]
            if f.name in _CIRCUIT_BYTES:
                v = None if v is None else bytes.fromhex(v)
            elif f.name == "incoming":
                v = _ref_from(v)
            elif f.name == "state":
                v = CircuitState(v)
            elif f.name == "fail_back" and v is not None:
                failure = None if v["failure"] is None else FailureMessage.decode(bytes.fromhex(v["failure"]))
                v = FailBack(_ref_from(d["incoming"]), bytes.fromhex(v["reason"]), v["failure_code"],
                             _opt_bytes(v["sha256_of_onion"]), failure, v["why"])
            elif v is not None and f.name != "fail_back":
                v = int(v)
            values[f.name] = v
        return cls(**values)


_CIRCUIT_BYTES = frozenset({"payment_hash", "shared_secret", "outgoing_channel_id", "sha256_of_next_onion",
                            "next_onion", "payment_preimage"})


@dataclass(frozen=True)
class ForwardingEvent:
    """A settled forward, as lnd's ``ForwardingEvent`` (``chan_id_in`` / ``chan_id_out`` are short channel ids)."""

    timestamp: int
    chan_id_in: int
    chan_id_out: int
    amt_in_msat: int
    amt_out_msat: int
    incoming_htlc_id: int
    outgoing_htlc_id: int

    @property
    def fee_msat(self) -> int:
        return self.amt_in_msat - self.amt_out_msat

    def to_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ForwardingEvent:
        return cls(**{f.name: int(d[f.name]) for f in fields(cls)})


@dataclass(frozen=True)
class ForwardingHistoryPage:
    """lnd's ``ForwardingHistoryResponse``: the events and the offset to ask from next."""

    forwarding_events: tuple[ForwardingEvent, ...]
    last_offset_index: int


@dataclass(frozen=True)
class FeeSums:
    """The fee earned over the last day, week and month (lnd's ``FeeReport`` sums, in msat)."""

    day_fee_sum_msat: int
    week_fee_sum_msat: int
    month_fee_sum_msat: int


def _ref_dict(ref: HtlcRef) -> dict[str, Any]:
    return {"channel_id": ref.channel_id.hex(), "htlc_id": ref.htlc_id}


def _ref_from(d: dict[str, Any]) -> HtlcRef:
    return HtlcRef(bytes.fromhex(d["channel_id"]), int(d["htlc_id"]))


def _opt_bytes(v: str | None) -> bytes | None:
    return None if v is None else bytes.fromhex(v)


def _opt_hex(v: bytes | None) -> str | None:
    return None if v is None else v.hex()


def _error_onion(incoming: HtlcRef, shared_secret: bytes, failure: FailureMessage, why: str) -> FailBack:
    """Our own failure, as the erring node: create_failure then wrap_failure with our shared secret."""
    reason = wrap_failure(shared_secret, create_failure(shared_secret, failure))
    return FailBack(incoming, reason=reason, failure=failure, why=why)


def _malformed(incoming: HtlcRef, code: int, sha256_of_onion: bytes, why: str) -> FailBack:
    return FailBack(incoming, failure_code=code, sha256_of_onion=sha256_of_onion, why=why)


# ---------------------------------------------------------------------------
# the forwarder
# ---------------------------------------------------------------------------


class Forwarder:
    """The forwarding core: decisions, circuits and the forwarding log (see the module docstring).

    Every method that returns a decision or changes a circuit changes
    :meth:`to_dict`: persist it before carrying the decision out.
    """

    def __init__(self, config: ForwardingConfig | None = None) -> None:
        self.config = config or ForwardingConfig()
        self._circuits: dict[HtlcRef, Circuit] = {}
        self._by_outgoing: dict[HtlcRef, HtlcRef] = {}
        self._history: list[ForwardingEvent] = []

    # --- reading ----------------------------------------------------------------------------------

    def circuits(self) -> list[Circuit]:
        return sorted(self._circuits.values(), key=lambda c: c.incoming)

    def circuit(self, incoming: HtlcRef) -> Circuit | None:
        return self._circuits.get(incoming)

    def circuit_for_outgoing(self, outgoing: HtlcRef) -> Circuit | None:
        ref = self._by_outgoing.get(outgoing)
        return None if ref is None else self._circuits[ref]

    def pending_adds(self) -> list[Forward]:
        """Forwards decided but whose outgoing add was never confirmed (ask after a restart).

        For each, the host looks in ``channel_id`` for an HTLC it offered with
        this payment hash, amount, expiry and onion that no circuit claims: if
        there is one, :meth:`on_forward_added` with its id; otherwise it offers
        the HTLC again, or, if it cannot, calls :meth:`on_add_failed`.
        """
        return [c.forward() for c in self.circuits() if c.state is CircuitState.PENDING_ADD]

    # --- an incoming HTLC -------------------------------------------------------------------------

    def on_incoming(
        self,
        htlc: IncomingHtlc,
        processed: ProcessedOnion | OnionError,
        height: int,
        channels: Iterable[OutgoingChannel],
        incoming_refusal: str | None = None,
    ) -> Decision:
        """Forward, fail or hand over an irrevocably committed incoming HTLC (checks in the module docstring).

        ``incoming_refusal``: why the incoming channel cannot keep this HTLC (its dust exposure:
        ``channels.dust.incoming_dust_refusal``): a forward fails back with ``temporary_channel_failure``.
        """
        ref = HtlcRef(htlc.channel_id, htlc.htlc_id)
        existing = self._circuits.get(ref)
        if existing is not None:
            return self._replay(existing)
        onion = htlc.onion_routing_packet

        if htlc.path_key is not None:  # inside a blinded route: BOLT 2 wants invalid_onion_blinding, malformed
            if isinstance(processed, ProcessedOnion) and processed.is_final:
                return NotForwarding(ref)
            return _malformed(ref, FailureCode.INVALID_ONION_BLINDING, sha256(onion),
                              "update_add_htlc has a path_key: relaying in blinded routes is not supported")
        if isinstance(processed, OnionError):
            if processed.is_malformed:
                sha = processed.failure.sha256_of_onion or sha256(onion)
                return _malformed(ref, processed.failure.code, sha, processed.reason)
            if processed.shared_secret is None:  # cannot happen: payload errors come after the HMAC checked out
                return _malformed(ref, FailureCode.INVALID_ONION_HMAC, sha256(onion), processed.reason)
            return _error_onion(ref, processed.shared_secret, processed.failure, processed.reason)
        if processed.is_final:
            return NotForwarding(ref)

        ss = processed.shared_secret
        if incoming_refusal is not None:  # lnd's link: failed back, the channel stays up
            return _error_onion(ref, ss, FailureMessage(FailureCode.TEMPORARY_CHANNEL_FAILURE, channel_update=b""),
                                incoming_refusal)
        try:
            payload = processed.decode_payload()
        except OnionError as e:
            return _error_onion(ref, ss, e.failure, e.reason)
        if payload.encrypted_recipient_data is not None:  # we would be the introduction point
            blinding = FailureMessage(FailureCode.INVALID_ONION_BLINDING, sha256_of_onion=sha256(onion))
            return _error_onion(ref, ss, blinding, "relaying in blinded routes is not supported")
        amt, out_cltv, scid = payload.amt_to_forward, payload.outgoing_cltv_value, payload.short_channel_id
        assert amt is not None and out_cltv is not None and scid is not None  # the reader rules of a forwarding node

        def fail(failure: FailureMessage, why: str) -> FailBack:
            return _error_onion(ref, ss, failure, why)

        view = list(channels)
        requested = next((c for c in view if c.short_channel_id == scid), None)
        if requested is None:
            return fail(FailureMessage(FailureCode.UNKNOWN_NEXT_PEER), f"no channel {_scid(scid)}")
        policy, upd = requested.policy, requested.channel_update
        if policy.disabled:
            return fail(FailureMessage(FailureCode.CHANNEL_DISABLED, disabled_flags=0, channel_update=upd),
                        f"channel {_scid(scid)} is disabled")
        siblings = [c for c in view if c.node_id == requested.node_id and c is not requested
                    and c.is_active and not c.policy.disabled]
        if not requested.is_active and not siblings:
            return fail(FailureMessage(FailureCode.TEMPORARY_CHANNEL_FAILURE, channel_update=upd),
                        f"channel {_scid(scid)} cannot take HTLCs now (peer offline or channel not open)")
        if amt < policy.htlc_minimum_msat:
            return fail(FailureMessage(FailureCode.AMOUNT_BELOW_MINIMUM, htlc_msat=amt, channel_update=upd),
                        f"amt_to_forward {amt} below htlc_minimum_msat {policy.htlc_minimum_msat}")
        if amt > policy.htlc_maximum_msat:
            return fail(FailureMessage(FailureCode.TEMPORARY_CHANNEL_FAILURE, channel_update=upd),
                        f"amt_to_forward {amt} above htlc_maximum_msat {policy.htlc_maximum_msat}")
        fee = policy.fee_msat(amt)
        if htlc.amount_msat - amt < fee:
            return fail(FailureMessage(FailureCode.FEE_INSUFFICIENT, htlc_msat=htlc.amount_msat, channel_update=upd),
                        f"fee {htlc.amount_msat - amt} msat below {fee} for forwarding {amt}")
        if htlc.cltv_expiry - out_cltv < policy.cltv_expiry_delta:
            return fail(FailureMessage(FailureCode.INCORRECT_CLTV_EXPIRY, cltv_expiry=out_cltv, channel_update=upd),
                        f"cltv_expiry {htlc.cltv_expiry} - outgoing_cltv_value {out_cltv} "
                        f"below cltv_expiry_delta {policy.cltv_expiry_delta}")
        cfg = self.config
        if htlc.cltv_expiry <= height + cfg.incoming_htlc_claim_buffer:
            return fail(FailureMessage(FailureCode.EXPIRY_TOO_SOON, channel_update=upd),
                        f"incoming cltv_expiry {htlc.cltv_expiry} within {cfg.incoming_htlc_claim_buffer} "
                        f"blocks of height {height}")
        if out_cltv <= height + cfg.outgoing_cltv_reject_delta:
            return fail(FailureMessage(FailureCode.EXPIRY_TOO_SOON, channel_update=upd),
                        f"outgoing_cltv_value {out_cltv} within {cfg.outgoing_cltv_reject_delta} blocks "
                        f"of height {height}")
        if out_cltv > height + cfg.max_htlc_cltv:
            return fail(FailureMessage(FailureCode.EXPIRY_TOO_FAR),
                        f"outgoing_cltv_value {out_cltv} more than {cfg.max_htlc_cltv} blocks past height {height}")

        candidates = ([requested] if requested.is_active else []) + sorted(
            (c for c in siblings if c.policy.htlc_minimum_msat <= amt <= c.policy.htlc_maximum_msat),
            key=lambda c: -c.available_msat)
        chosen = next((c for c in candidates if c.refusal(amt) is None), None)
        if chosen is None:
            why = requested.refusal(amt) if requested.is_active else "inactive"
            return fail(FailureMessage(FailureCode.TEMPORARY_CHANNEL_FAILURE, channel_update=upd),
                        f"no channel to the peer of {_scid(scid)} can carry {amt} msat ({_scid(scid)}: {why})")

        assert processed.next_onion is not None
        incoming_scid = next((c.short_channel_id for c in view if c.channel_id == htlc.channel_id), 0)
        circuit = Circuit(
            incoming=ref, incoming_short_channel_id=incoming_scid, payment_hash=htlc.payment_hash,
            incoming_amount_msat=htlc.amount_msat, incoming_cltv_expiry=htlc.cltv_expiry, shared_secret=ss,
            outgoing_channel_id=chosen.channel_id, outgoing_short_channel_id=chosen.short_channel_id,
            requested_short_channel_id=scid, outgoing_amount_msat=amt, outgoing_cltv_expiry=out_cltv,
            sha256_of_next_onion=sha256(processed.next_onion), next_onion=processed.next_onion,
        )
        self._circuits[ref] = circuit
        return circuit.forward()

    def _replay(self, circuit: Circuit) -> Decision:
        if circuit.state is CircuitState.SETTLED:
            assert circuit.payment_preimage is not None
            return Settle(circuit.incoming, circuit.payment_preimage)
        if circuit.state is CircuitState.FAILED:
            assert circuit.fail_back is not None
            return circuit.fail_back
        return AlreadyForwarded(circuit.incoming, circuit.outgoing)

    # --- the outgoing add ---------------------------------------------------------------------------

    def on_forward_added(self, incoming: HtlcRef, outgoing_htlc_id: int) -> None:
        """The ``update_add_htlc`` of a :class:`Forward` was offered with this ``id``: the circuit is open."""
        circuit = self._circuits.get(incoming)
        if circuit is None or circuit.state is not CircuitState.PENDING_ADD:
            raise ValueError(f"no forward of {incoming} awaits its outgoing add")
        outgoing = HtlcRef(circuit.outgoing_channel_id, outgoing_htlc_id)
        if outgoing in self._by_outgoing:
            raise ValueError(f"outgoing HTLC {outgoing} already belongs to a circuit")
        self._circuits[incoming] = replace(circuit, state=CircuitState.FORWARDED, outgoing_htlc_id=outgoing_htlc_id,
                                           next_onion=None)
        self._by_outgoing[outgoing] = incoming

    def on_add_failed(self, incoming: HtlcRef, why: str, channel_update: bytes = b"") -> FailBack:
        """The outgoing add did not happen: fail upstream with ``temporary_channel_failure``.

        For a PENDING_ADD circuit whose ``Channel.add_htlc`` raised
        ``ChannelError`` (or cannot be retried after a restart), and for a
        FORWARDED one whose outgoing HTLC the channel does not hold after a
        restart (the circuit was written, the channel's add was not). Never for
        an outgoing HTLC that may exist: the downstream could still claim it.
        """
        circuit = self._circuits.get(incoming)
        if circuit is None or circuit.state not in (CircuitState.PENDING_ADD, CircuitState.FORWARDED):
            raise ValueError(f"no open forward of {incoming}")
        if circuit.outgoing is not None:
            del self._by_outgoing[circuit.outgoing]
        failure = FailureMessage(FailureCode.TEMPORARY_CHANNEL_FAILURE, channel_update=channel_update)
        return self._resolve_failed(replace(circuit, outgoing_htlc_id=None),
                                    _error_onion(incoming, circuit.shared_secret, failure, why))

    # --- the downstream outcome ---------------------------------------------------------------------

    def on_downstream_fulfilled(self, outgoing: HtlcRef, payment_preimage: bytes, now: int) -> Settle | None:
        """The preimage of an HTLC we forwarded (``update_fulfill_htlc`` or on chain); None if not a forward of ours.

        Logs a :class:`ForwardingEvent` at ``now`` (seconds) the first time.
        """
        circuit = self.circuit_for_outgoing(outgoing)
        if circuit is None:
            return None
        if sha256(payment_preimage) != circuit.payment_hash:
            raise ValueError(f"preimage of {outgoing} does not hash to its payment_hash")
        if circuit.state is CircuitState.SETTLED:
            return Settle(circuit.incoming, payment_preimage)
        if circuit.state is not CircuitState.FORWARDED:
            raise ValueError(f"outgoing HTLC {outgoing} fulfilled after it {circuit.state.value}")
        self._circuits[circuit.incoming] = replace(circuit, state=CircuitState.SETTLED,
                                                   payment_preimage=payment_preimage)
        assert circuit.outgoing_htlc_id is not None
        self._history.append(ForwardingEvent(
            now, circuit.incoming_short_channel_id, circuit.outgoing_short_channel_id, circuit.incoming_amount_msat,
            circuit.outgoing_amount_msat, circuit.incoming.htlc_id, circuit.outgoing_htlc_id))
        return Settle(circuit.incoming, payment_preimage)

    def on_downstream_failed(
        self,
        outgoing: HtlcRef,
        reason: bytes = b"",
        *,
        failure_code: int | None = None,
        sha256_of_onion: bytes | None = None,
    ) -> FailBack | None:
        """The HTLC we forwarded failed irrevocably; None if not a forward of ours.

        ``update_fail_htlc``: its ``reason`` gets our ``ammag`` layer. For
        ``update_fail_malformed_htlc`` (``failure_code`` set) we make the error
        onion ourselves from ``failure_code`` and ``sha256_of_onion`` (BOLT 2);
        a ``sha256_of_onion`` that is neither the hash of the onion we sent nor
        all zeros is replaced by ours; a code that is not a known BADONION one
        becomes ``temporary_channel_failure`` (as lnd does).
        """
        circuit = self._failing(outgoing)
        if not isinstance(circuit, Circuit):
            return circuit
        ss = circuit.shared_secret
        if failure_code is None:
            fb = FailBack(circuit.incoming, reason=wrap_failure(ss, reason), why=f"downstream failed {outgoing}")
            return self._resolve_failed(circuit, fb)
        if failure_code in _MALFORMED_CODES:
            sha = sha256_of_onion if sha256_of_onion in (circuit.sha256_of_next_onion, bytes(32)) else None
            failure = FailureMessage.from_malformed(failure_code, sha or circuit.sha256_of_next_onion)
        else:
            failure = FailureMessage(FailureCode.TEMPORARY_CHANNEL_FAILURE, channel_update=b"")
        why = f"downstream could not parse the onion ({failure_code:#06x})"
        return self._resolve_failed(circuit, _error_onion(circuit.incoming, ss, failure, why))

    def on_downstream_timed_out(self, outgoing: HtlcRef, why: str = "timed out on chain") -> FailBack | None:
        """The HTLC we forwarded is gone without a preimage (timed out on chain, or trimmed in a closed channel).

        We fail upstream with our own ``permanent_channel_failure`` (as lnd's
        timeout resolver does). Only once the timeout is final (deep enough).
        """
        circuit = self._failing(outgoing)
        if not isinstance(circuit, Circuit):
            return circuit
        failure = FailureMessage(FailureCode.PERMANENT_CHANNEL_FAILURE)
        return self._resolve_failed(circuit, _error_onion(circuit.incoming, circuit.shared_secret, failure, why))

    def on_downstream_resolved(self, event: HtlcFulfilled | HtlcFailed, now: int) -> Settle | FailBack | None:
        """``on_downstream_fulfilled`` / ``on_downstream_failed`` for the channel's own effect."""
        outgoing = HtlcRef(event.channel_id, event.htlc_id)
        if isinstance(event, HtlcFulfilled):
            return self.on_downstream_fulfilled(outgoing, event.payment_preimage, now)
        return self.on_downstream_failed(outgoing, event.reason, failure_code=event.failure_code,
                                         sha256_of_onion=event.sha256_of_onion)

    def on_downstream_resolved_on_chain(self, event: HtlcFulfilled | HtlcFailed, now: int) -> Settle | FailBack | None:
        """The outgoing HTLC was settled on chain after its channel force-closed (the channel manager's
        ``on_htlc_onchain``): a preimage seen on chain settles upstream; a failure (timed out, or not in
        the commitment that confirmed) fails upstream with our ``permanent_channel_failure``."""
        outgoing = HtlcRef(event.channel_id, event.htlc_id)
        if isinstance(event, HtlcFulfilled):
            return self.on_downstream_fulfilled(outgoing, event.payment_preimage, now)
        return self.on_downstream_timed_out(outgoing)

    def _failing(self, outgoing: HtlcRef) -> Circuit | FailBack | None:
        """The open circuit of ``outgoing``; its FailBack if already failed; None if it is not a forward."""
        circuit = self.circuit_for_outgoing(outgoing)
        if circuit is None or circuit.state is CircuitState.FAILED:
            return None if circuit is None else circuit.fail_back
        if circuit.state is not CircuitState.FORWARDED:
            raise ValueError(f"outgoing HTLC {outgoing} failed after it was {circuit.state.value}")
        return circuit

    def _resolve_failed(self, circuit: Circuit, fail_back: FailBack) -> FailBack:
        self._circuits[circuit.incoming] = replace(circuit, state=CircuitState.FAILED, fail_back=fail_back,
                                                   next_onion=None)
        return fail_back

    def upstream_resolved(self, incoming: HtlcRef) -> None:
        """The fulfill or fail of ``incoming`` is durable in its channel (or on chain): forget the circuit."""
        circuit = self._circuits.get(incoming)
        if circuit is None:
            return
        if circuit.state not in (CircuitState.SETTLED, CircuitState.FAILED):
            raise ValueError(f"circuit of {incoming} is still {circuit.state.value}")
        del self._circuits[incoming]
        if circuit.outgoing is not None:
            self._by_outgoing.pop(circuit.outgoing, None)

    # --- deadlines ------------------------------------------------------------------------------------

    def on_height(self, height: int) -> list[GoOnChain]:
        """BOLT 2 deadlines of forwarded HTLCs still unresolved downstream: one GoOnChain per downstream channel.

        Past ``outgoing_cltv_expiry + outgoing_htlc_grace_blocks`` (the timeout
        deadline) or at ``incoming_cltv_expiry - incoming_htlc_claim_buffer``
        (the upstream's fulfillment deadline, whichever comes first), the
        downstream channel must go on chain. Repeated at every height while it
        holds; the host ignores a channel already closing.
        """
        cfg = self.config
        late: dict[bytes, list[Circuit]] = {}
        for c in self.circuits():
            if c.state is not CircuitState.FORWARDED:
                continue
            deadline = min(c.outgoing_cltv_expiry + cfg.outgoing_htlc_grace_blocks,
                           c.incoming_cltv_expiry - cfg.incoming_htlc_claim_buffer)
            if height >= deadline:
                late.setdefault(c.outgoing_channel_id, []).append(c)
        out = []
        for channel_id, group in late.items():
            first = group[0]
            reason = (f"forwarded HTLC {first.outgoing} unresolved at height {height}: it expires at "
                      f"{first.outgoing_cltv_expiry}, the incoming {first.incoming} at {first.incoming_cltv_expiry}")
            out.append(GoOnChain(channel_id, first.outgoing_short_channel_id, reason,
                                 tuple(c.incoming for c in group)))
        return out

    # --- the forwarding log ---------------------------------------------------------------------------

    def forwarding_history(
        self,
        start_time: int = 0,
        end_time: int | None = None,
        index_offset: int = 0,
        num_max_events: int = 100,
    ) -> ForwardingHistoryPage:
        """lnd's ``ForwardingHistory``: events with ``start_time <= timestamp <= end_time``, in time order, paged."""
        matching = [e for e in self._history
                    if e.timestamp >= start_time and (end_time is None or e.timestamp <= end_time)]
        matching.sort(key=lambda e: e.timestamp)
        page = tuple(matching[index_offset : index_offset + max(num_max_events, 0)])
        return ForwardingHistoryPage(page, index_offset + len(page))

    def fee_report(self, now: int) -> FeeSums:
        """Fees earned in the 1, 7 and 30 days up to ``now`` (lnd's ``FeeReport``)."""

        def since(days: int) -> int:
            return sum(e.fee_msat for e in self._history if now - days * _DAY <= e.timestamp <= now)

        return FeeSums(since(1), since(7), since(30))

    def prune_history(self, before: int) -> int:
        """Drop events older than ``before``; how many were dropped."""
        kept = [e for e in self._history if e.timestamp >= before]
        dropped = len(self._history) - len(kept)
        self._history = kept
        return dropped

    # --- persistence ----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "circuits": [c.to_dict() for c in self.circuits()],
            "history": [e.to_dict() for e in self._history],
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True).encode()

    @classmethod
    def from_dict(cls, d: dict[str, Any], config: ForwardingConfig | None = None) -> Forwarder:
        if d.get("version") != 1:
            raise ValueError(f"unknown forwarder state version {d.get('version')!r}")
        fw = cls(config)
        for cd in d["circuits"]:
            circuit = Circuit.from_dict(cd)
            fw._circuits[circuit.incoming] = circuit
            if circuit.outgoing is not None:
                fw._by_outgoing[circuit.outgoing] = circuit.incoming
        fw._history = [ForwardingEvent.from_dict(e) for e in d["history"]]
        return fw

    @classmethod
    def from_bytes(cls, data: bytes, config: ForwardingConfig | None = None) -> Forwarder:
        return cls.from_dict(json.loads(data), config)


def _scid(scid: int) -> str:
    return f"{scid >> 40}x{(scid >> 16) & 0xFFFFFF}x{scid & 0xFFFF}"
