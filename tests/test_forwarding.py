"""htlc.forwarding: the forwarding decision, circuits, downstream outcomes, deadlines and the forwarding log.

A 3-hop route origin -> A -> B (us) -> C -> D over test keys, with real
onions: the origin builds the onion with `create_onion`, A's hop is simulated
by processing the origin's onion with A's key, and every failure we send back
is wrapped by A too before the origin decodes it with `decode_failure`.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from base_chain.crypto import PrivateKey
from base_chain.hashes import sha256
from channels.effects import HtlcFailed, HtlcFulfilled, IncomingHtlc
from htlc.failure import FailureCode, FailureMessage, create_failure, decode_failure, wrap_failure
from htlc.forwarding import (
    AlreadyForwarded,
    ChannelPolicy,
    CircuitState,
    FailBack,
    Forward,
    Forwarder,
    ForwardingConfig,
    GoOnChain,
    HtlcRef,
    NotForwarding,
    OutgoingChannel,
    Settle,
    peel_onion,
)
from htlc.onion import HopPayload, OnionError, PaymentData, ProcessedOnion, create_onion, process_onion

KEY_A, KEY_B, KEY_C, KEY_D = (PrivateKey(bytes([i]) * 32) for i in (0x41, 0x42, 0x43, 0x44))
ROUTE = [KEY_A.public_key(), KEY_B.public_key(), KEY_C.public_key(), KEY_D.public_key()]
SESSION = PrivateKey(bytes([0x5E]) * 32)
PREIMAGE = bytes(range(32))
PAYMENT_HASH = sha256(PREIMAGE)
HEIGHT = 800_000

SCID_AB = (700_000 << 40) | (1 << 16) | 0  # the incoming channel (A -> us)
SCID_BC = (700_001 << 40) | (2 << 16) | 1  # the channel the onion names (us -> C)
SCID_BC2 = (700_002 << 40) | (3 << 16) | 0  # a second channel to C (non-strict forwarding)
CHAN_AB, CHAN_BC, CHAN_BC2 = b"\xab" * 32, b"\xbc" * 32, b"\xbd" * 32
UPDATE = b"\x01\x02" + b"channel_update bytes"

POLICY = ChannelPolicy(fee_base_msat=1_000, fee_proportional_millionths=100, cltv_expiry_delta=40,
                       htlc_minimum_msat=1_000, htlc_maximum_msat=500_000_000)

AMT_OUT = 10_000_000  # what C must get (amt_to_forward in our payload)
FEE = POLICY.fee_msat(AMT_OUT)  # 1_000 + 1_000 = 2_000
AMT_IN = AMT_OUT + FEE
CLTV_OUT = HEIGHT + 100
CLTV_IN = CLTV_OUT + POLICY.cltv_expiry_delta


def _channels(*, bc: dict[str, object] | None = None, policy: ChannelPolicy = POLICY,
              extra: list[OutgoingChannel] | None = None) -> list[OutgoingChannel]:
    ab = OutgoingChannel(SCID_AB, CHAN_AB, KEY_A.public_key().to_bytes(), True, 50_000_000, POLICY)
    bc_chan = OutgoingChannel(SCID_BC, CHAN_BC, KEY_C.public_key().to_bytes(), True, 50_000_000, policy, UPDATE)
    if bc:
        bc_chan = replace(bc_chan, **bc)  # type: ignore[arg-type]
    return [ab, bc_chan, *(extra or [])]


def _route(*, amt_out: int = AMT_OUT, cltv_out: int = CLTV_OUT, scid: int = SCID_BC,
           b_payload: bytes | None = None) -> tuple[bytes, int, int]:
    """The onion A receives, and the amount / cltv the origin asks A to forward to us."""
    amt_c_to_d = amt_out - 500  # C charges 500 msat
    hops = [
        (ROUTE[0], HopPayload(amt_to_forward=AMT_IN, outgoing_cltv_value=CLTV_IN, short_channel_id=SCID_AB).encode()),
        (ROUTE[1], b_payload or HopPayload(amt_to_forward=amt_out, outgoing_cltv_value=cltv_out,
                                           short_channel_id=scid).encode()),
        (ROUTE[2], HopPayload(amt_to_forward=amt_c_to_d, outgoing_cltv_value=cltv_out - 40,
                              short_channel_id=(1 << 40)).encode()),
        (ROUTE[3], HopPayload(amt_to_forward=amt_c_to_d, outgoing_cltv_value=cltv_out - 40,
                              payment_data=PaymentData(b"\x77" * 32, amt_c_to_d)).encode()),
    ]
    onion_for_a = create_onion(SESSION, hops, PAYMENT_HASH)
    return onion_for_a, AMT_IN, CLTV_IN


def _incoming(*, amount: int = AMT_IN, cltv: int = CLTV_IN, htlc_id: int = 7, onion: bytes | None = None,
              path_key: bytes | None = None, **route: object) -> tuple[IncomingHtlc, ProcessedOnion | OnionError]:
    """The HTLC A offers us (A peeled its own layer), and our processed onion."""
    onion_for_a, _, _ = _route(**route)  # type: ignore[arg-type]
    at_a = process_onion(KEY_A, onion_for_a, PAYMENT_HASH)
    assert at_a.next_onion is not None
    htlc = IncomingHtlc(CHAN_AB, htlc_id, amount, PAYMENT_HASH, cltv, onion or at_a.next_onion, path_key)
    return htlc, peel_onion(KEY_B, htlc)


def _a_shared_secret() -> bytes:
    return process_onion(KEY_A, _route()[0], PAYMENT_HASH).shared_secret


def _at_origin(fail: FailBack) -> tuple[int, FailureMessage]:
    """A wraps our reason with its secret; the origin attributes and decodes it."""
    assert not fail.is_malformed, fail
    return decode_failure(SESSION, ROUTE, wrap_failure(_a_shared_secret(), fail.reason))


def _forward(fw: Forwarder, htlc_id: int = 7, out_htlc_id: int = 3) -> tuple[Forward, HtlcRef]:
    htlc, processed = _incoming(htlc_id=htlc_id)
    decision = fw.on_incoming(htlc, processed, HEIGHT, _channels())
    assert isinstance(decision, Forward), decision
    fw.on_forward_added(decision.incoming, out_htlc_id)
    return decision, HtlcRef(decision.channel_id, out_htlc_id)


# --- forwarding ------------------------------------------------------------------------------------------


def test_a_correct_htlc_is_forwarded_with_the_right_amount_cltv_and_onion() -> None:
    fw = Forwarder()
    htlc, processed = _incoming()
    decision = fw.on_incoming(htlc, processed, HEIGHT, _channels())
    assert isinstance(decision, Forward)
    assert decision.incoming == HtlcRef(CHAN_AB, 7)
    assert (decision.channel_id, decision.short_channel_id) == (CHAN_BC, SCID_BC)
    assert decision.amount_msat == AMT_OUT and decision.cltv_expiry == CLTV_OUT and decision.fee_msat == FEE
    assert decision.payment_hash == PAYMENT_HASH
    # the next onion is C's: C peels it and finds its own payload
    at_c = process_onion(KEY_C, decision.onion_routing_packet, PAYMENT_HASH)
    assert not at_c.is_final and at_c.decode_payload().amt_to_forward == AMT_OUT - 500
    at_d = process_onion(KEY_D, at_c.next_onion or b"", PAYMENT_HASH)
    assert at_d.is_final
    circuit = fw.circuit(decision.incoming)
    assert circuit is not None and circuit.state is CircuitState.PENDING_ADD
    assert fw.pending_adds() == [decision]
    fw.on_forward_added(decision.incoming, 3)
    circuit = fw.circuit(decision.incoming)
    assert circuit is not None and circuit.state is CircuitState.FORWARDED and circuit.next_onion is None
    assert circuit.outgoing == HtlcRef(CHAN_BC, 3) and fw.circuit_for_outgoing(HtlcRef(CHAN_BC, 3)) == circuit
    assert fw.pending_adds() == []


def test_exact_fee_and_cltv_delta_are_enough() -> None:
    htlc, processed = _incoming(amount=AMT_IN, cltv=CLTV_IN)
    assert isinstance(Forwarder().on_incoming(htlc, processed, HEIGHT, _channels()), Forward)


def test_final_hop_is_not_ours() -> None:
    payload = HopPayload(amt_to_forward=1000, outgoing_cltv_value=HEIGHT + 40,
                         payment_data=PaymentData(bytes(32), 1000))
    onion = create_onion(SESSION, [(ROUTE[1], payload.encode())], PAYMENT_HASH)
    htlc = IncomingHtlc(CHAN_AB, 1, 1000, PAYMENT_HASH, HEIGHT + 40, onion, None)
    fw = Forwarder()
    assert fw.on_incoming(htlc, peel_onion(KEY_B, htlc), HEIGHT, _channels()) == NotForwarding(HtlcRef(CHAN_AB, 1))
    assert fw.circuits() == []


@pytest.mark.parametrize("corrupt, code", [
    (lambda o: b"\x01" + o[1:], FailureCode.INVALID_ONION_VERSION),
    (lambda o: o[:-1] + bytes([o[-1] ^ 1]), FailureCode.INVALID_ONION_HMAC),
    (lambda o: o[:1] + b"\x04" + o[2:], FailureCode.INVALID_ONION_KEY),
    (lambda o: o[:100], FailureCode.INVALID_ONION_VERSION),
])
def test_malformed_onion_is_failed_malformed(corrupt: object, code: FailureCode) -> None:
    good, _ = _incoming()
    bad = corrupt(good.onion_routing_packet)  # type: ignore[operator]
    htlc = replace(good, onion_routing_packet=bad)
    decision = Forwarder().on_incoming(htlc, peel_onion(KEY_B, htlc), HEIGHT, _channels())
    assert isinstance(decision, FailBack) and decision.is_malformed
    assert decision.failure_code == code and decision.sha256_of_onion == sha256(bad)


def test_invalid_payload_is_an_authenticated_failure() -> None:
    # a forwarding payload without short_channel_id
    htlc, processed = _incoming(b_payload=HopPayload(amt_to_forward=AMT_OUT, outgoing_cltv_value=CLTV_OUT).encode())
    decision = Forwarder().on_incoming(htlc, processed, HEIGHT, _channels())
    assert isinstance(decision, FailBack)
    index, msg = _at_origin(decision)
    assert index == 1 and msg.code == FailureCode.INVALID_ONION_PAYLOAD and msg.tlv_type == 6


def test_blinded_htlcs_are_not_relayed() -> None:
    htlc, _ = _incoming()
    blinded = replace(htlc, path_key=KEY_D.public_key().to_bytes())
    decision = Forwarder().on_incoming(blinded, peel_onion(KEY_B, htlc), HEIGHT, _channels())
    assert isinstance(decision, FailBack) and decision.failure_code == FailureCode.INVALID_ONION_BLINDING
    assert decision.sha256_of_onion == sha256(htlc.onion_routing_packet)


def _fail_case(name: str) -> tuple[IncomingHtlc, ProcessedOnion | OnionError, list[OutgoingChannel]]:
    chans = _channels()
    if name == "unknown_next_peer":
        return (*_incoming(scid=12345), chans)
    if name == "channel_disabled":
        return (*_incoming(), _channels(policy=replace(POLICY, disabled=True)))
    if name == "peer_offline":
        return (*_incoming(), _channels(bc={"is_active": False}))
    if name == "amount_below_minimum":
        return (*_incoming(amt_out=999, amount=999 + 2_000), chans)
    if name == "above_maximum":
        return (*_incoming(amt_out=500_000_001, amount=600_000_000), _channels(bc={"available_msat": 10**12}))
    if name == "fee_insufficient":
        return (*_incoming(amount=AMT_IN - 1), chans)
    if name == "incorrect_cltv_expiry":
        return (*_incoming(cltv=CLTV_IN - 1), chans)
    if name == "incoming_too_soon":
        thin = replace(POLICY, cltv_expiry_delta=4)
        return (*_incoming(cltv_out=HEIGHT + 14, cltv=HEIGHT + 18), _channels(policy=thin))
    if name == "outgoing_too_soon":
        return (*_incoming(cltv_out=HEIGHT + 13, cltv=HEIGHT + 13 + 40), chans)
    if name == "expiry_too_far":
        return (*_incoming(cltv_out=HEIGHT + 2017, cltv=HEIGHT + 2017 + 40), chans)
    if name == "insufficient_balance":
        return (*_incoming(), _channels(bc={"available_msat": AMT_OUT - 1}))
    raise AssertionError(name)


@pytest.mark.parametrize("name, code, fields", [
    ("unknown_next_peer", FailureCode.UNKNOWN_NEXT_PEER, {}),
    ("channel_disabled", FailureCode.CHANNEL_DISABLED, {"disabled_flags": 0, "channel_update": UPDATE}),
    ("peer_offline", FailureCode.TEMPORARY_CHANNEL_FAILURE, {"channel_update": UPDATE}),
    ("amount_below_minimum", FailureCode.AMOUNT_BELOW_MINIMUM, {"htlc_msat": 999, "channel_update": UPDATE}),
    ("above_maximum", FailureCode.TEMPORARY_CHANNEL_FAILURE, {"channel_update": UPDATE}),
    ("fee_insufficient", FailureCode.FEE_INSUFFICIENT, {"htlc_msat": AMT_IN - 1, "channel_update": UPDATE}),
    ("incorrect_cltv_expiry", FailureCode.INCORRECT_CLTV_EXPIRY, {"cltv_expiry": CLTV_OUT, "channel_update": UPDATE}),
    ("incoming_too_soon", FailureCode.EXPIRY_TOO_SOON, {"channel_update": UPDATE}),
    ("outgoing_too_soon", FailureCode.EXPIRY_TOO_SOON, {"channel_update": UPDATE}),
    ("expiry_too_far", FailureCode.EXPIRY_TOO_FAR, {}),
    ("insufficient_balance", FailureCode.TEMPORARY_CHANNEL_FAILURE, {"channel_update": UPDATE}),
])
def test_each_failure_decodes_at_the_origin_as_ours(name: str, code: FailureCode, fields: dict[str, object]) -> None:
    htlc, processed, chans = _fail_case(name)
    fw = Forwarder()
    decision = fw.on_incoming(htlc, processed, HEIGHT, chans)
    assert isinstance(decision, FailBack), decision
    assert decision.failure is not None and decision.failure.code == code and decision.why
    index, msg = _at_origin(decision)
    assert index == 1 and msg.code == code, (msg, decision.why)
    for field_name, value in fields.items():
        assert getattr(msg, field_name) == value, field_name
    assert fw.circuits() == []  # a failed HTLC leaves no circuit


def test_failures_carry_an_empty_channel_update_until_gossip_exists() -> None:
    htlc, processed = _incoming(amount=AMT_IN - 1)
    chans = _channels(bc={"channel_update": b""})
    decision = Forwarder().on_incoming(htlc, processed, HEIGHT, chans)
    assert isinstance(decision, FailBack)
    _, msg = _at_origin(decision)
    assert msg.code == FailureCode.FEE_INSUFFICIENT and msg.channel_update == b""


def test_checks_come_in_order() -> None:
    # both the fee and the cltv are wrong: the fee is reported (checked first)
    htlc, processed = _incoming(amount=AMT_IN - 1, cltv=CLTV_IN - 1)
    decision = Forwarder().on_incoming(htlc, processed, HEIGHT, _channels())
    assert isinstance(decision, FailBack) and decision.failure is not None
    assert decision.failure.code == FailureCode.FEE_INSUFFICIENT
    # disabled beats a fee problem
    decision = Forwarder().on_incoming(htlc, processed, HEIGHT, _channels(policy=replace(POLICY, disabled=True)))
    assert isinstance(decision, FailBack) and decision.failure is not None
    assert decision.failure.code == FailureCode.CHANNEL_DISABLED


def test_non_strict_forwarding_uses_another_channel_to_the_same_peer() -> None:
    sibling = OutgoingChannel(SCID_BC2, CHAN_BC2, KEY_C.public_key().to_bytes(), True, 80_000_000, POLICY)
    htlc, processed = _incoming()
    fw = Forwarder()
    decision = fw.on_incoming(htlc, processed, HEIGHT, _channels(bc={"available_msat": 0}, extra=[sibling]))
    assert isinstance(decision, Forward)
    assert (decision.short_channel_id, decision.channel_id) == (SCID_BC2, CHAN_BC2)
    assert decision.requested_short_channel_id == SCID_BC
    # the named channel offline, the sibling up: still forwarded
    htlc2, processed2 = _incoming(htlc_id=8)
    decision = fw.on_incoming(htlc2, processed2, HEIGHT, _channels(bc={"is_active": False}, extra=[sibling]))
    assert isinstance(decision, Forward) and decision.short_channel_id == SCID_BC2


# --- circuits ------------------------------------------------------------------------------------------------


def test_a_re_reported_htlc_is_never_forwarded_twice() -> None:
    fw = Forwarder()
    htlc, processed = _incoming()
    first = fw.on_incoming(htlc, processed, HEIGHT, _channels())
    assert isinstance(first, Forward)
    assert fw.on_incoming(htlc, processed, HEIGHT, _channels()) == AlreadyForwarded(first.incoming, None)
    fw.on_forward_added(first.incoming, 3)
    assert fw.on_incoming(htlc, processed, HEIGHT, _channels()) == AlreadyForwarded(first.incoming, HtlcRef(CHAN_BC, 3))
    with pytest.raises(ValueError):
        fw.on_forward_added(first.incoming, 4)  # no longer pending


def test_downstream_fulfill_settles_upstream_and_logs_the_forward() -> None:
    fw = Forwarder()
    fwd, out = _forward(fw)
    settle = fw.on_downstream_fulfilled(out, PREIMAGE, now=1_700_000_000)
    assert settle == Settle(fwd.incoming, PREIMAGE)
    # replayed (e.g. re-reported after a restart) without a second log entry
    assert fw.on_downstream_fulfilled(out, PREIMAGE, now=1_700_000_050) == settle
    htlc, processed = _incoming()
    assert fw.on_incoming(htlc, processed, HEIGHT, _channels()) == settle
    page = fw.forwarding_history()
    assert len(page.forwarding_events) == 1 and page.last_offset_index == 1
    ev = page.forwarding_events[0]
    assert (ev.timestamp, ev.chan_id_in, ev.chan_id_out) == (1_700_000_000, SCID_AB, SCID_BC)
    assert (ev.amt_in_msat, ev.amt_out_msat, ev.fee_msat) == (AMT_IN, AMT_OUT, FEE)
    assert (ev.incoming_htlc_id, ev.outgoing_htlc_id) == (7, 3)
    fw.upstream_resolved(fwd.incoming)
    assert fw.circuits() == [] and fw.circuit_for_outgoing(out) is None
    assert len(fw.forwarding_history().forwarding_events) == 1  # the log outlives the circuit


def test_wrong_preimage_and_unknown_outgoing() -> None:
    fw = Forwarder()
    _, out = _forward(fw)
    with pytest.raises(ValueError):
        fw.on_downstream_fulfilled(out, bytes(32), now=0)
    assert fw.on_downstream_fulfilled(HtlcRef(CHAN_BC, 99), PREIMAGE, now=0) is None  # our own payment, say
    assert fw.on_downstream_failed(HtlcRef(CHAN_BC, 99), b"x" * 292) is None


def test_downstream_failure_is_wrapped_and_attributed_to_the_downstream_hop() -> None:
    fw = Forwarder()
    fwd, out = _forward(fw)
    # C fails with temporary_channel_failure: C creates and wraps with its secret
    at_c = process_onion(KEY_C, fwd.onion_routing_packet, PAYMENT_HASH)
    ss_c = at_c.shared_secret
    c_failure = FailureMessage(FailureCode.TEMPORARY_CHANNEL_FAILURE, channel_update=b"")
    reason_from_c = wrap_failure(ss_c, create_failure(ss_c, c_failure))
    fail = fw.on_downstream_resolved(HtlcFailed(CHAN_BC, 3, PAYMENT_HASH, reason_from_c), now=0)
    assert isinstance(fail, FailBack) and fail.incoming == fwd.incoming and fail.failure is None
    index, msg = _at_origin(fail)
    assert index == 2 and msg == c_failure
    # replayed after a restart
    htlc, processed = _incoming()
    assert fw.on_incoming(htlc, processed, HEIGHT, _channels()) == fail
    assert fw.on_downstream_failed(out, reason_from_c) == fail


def test_failure_from_further_downstream_keeps_its_hop() -> None:
    fw = Forwarder()
    fwd, out = _forward(fw)
    at_c = process_onion(KEY_C, fwd.onion_routing_packet, PAYMENT_HASH)
    at_d = process_onion(KEY_D, at_c.next_onion or b"", PAYMENT_HASH)
    d_failure = FailureMessage(FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, htlc_msat=1, height=HEIGHT)
    reason = wrap_failure(at_d.shared_secret, create_failure(at_d.shared_secret, d_failure))
    reason = wrap_failure(at_c.shared_secret, reason)
    fail = fw.on_downstream_failed(out, reason)
    assert fail is not None
    assert _at_origin(fail) == (3, d_failure)


@pytest.mark.parametrize("sha_kind", ["ours", "zero", "other"])
def test_downstream_malformed_becomes_our_error_onion(sha_kind: str) -> None:
    fw = Forwarder()
    fwd, out = _forward(fw)
    ours = sha256(fwd.onion_routing_packet)
    sent = {"ours": ours, "zero": bytes(32), "other": b"\x99" * 32}[sha_kind]
    event = HtlcFailed(CHAN_BC, 3, PAYMENT_HASH, b"", FailureCode.INVALID_ONION_HMAC, sent)
    fail = fw.on_downstream_resolved(event, now=0)
    assert isinstance(fail, FailBack) and not fail.is_malformed
    index, msg = _at_origin(fail)
    # we are the erring node: our hop index, the downstream's code and the sha256
    assert index == 1 and msg.code == FailureCode.INVALID_ONION_HMAC
    assert msg.sha256_of_onion == (bytes(32) if sha_kind == "zero" else ours)


def test_downstream_malformed_without_badonion_becomes_temporary_channel_failure() -> None:
    fw = Forwarder()
    _, out = _forward(fw)
    fail = fw.on_downstream_failed(out, failure_code=FailureCode.TEMPORARY_CHANNEL_FAILURE, sha256_of_onion=bytes(32))
    assert fail is not None
    assert _at_origin(fail)[1].code == FailureCode.TEMPORARY_CHANNEL_FAILURE


def test_add_refused_and_on_chain_timeout_fail_upstream_with_our_failure() -> None:
    fw = Forwarder()
    htlc, processed = _incoming()
    fwd = fw.on_incoming(htlc, processed, HEIGHT, _channels())
    assert isinstance(fwd, Forward)
    fail = fw.on_add_failed(fwd.incoming, "peer disconnected", channel_update=UPDATE)
    assert _at_origin(fail) == (1, FailureMessage(FailureCode.TEMPORARY_CHANNEL_FAILURE, channel_update=UPDATE))
    fw.upstream_resolved(fwd.incoming)

    _, out = _forward(fw, htlc_id=9, out_htlc_id=5)
    timed_out = fw.on_downstream_timed_out(out)
    assert timed_out is not None
    assert _at_origin(timed_out) == (1, FailureMessage(FailureCode.PERMANENT_CHANNEL_FAILURE))
    with pytest.raises(ValueError):
        fw.on_downstream_fulfilled(out, PREIMAGE, now=0)  # a failed HTLC cannot be fulfilled later


def test_a_forward_whose_add_was_lost_in_a_crash_fails_back() -> None:
    fw = Forwarder()
    fwd, out = _forward(fw)  # circuit written with outgoing id 3; the channel's add was not persisted
    restored = Forwarder.from_dict(fw.to_dict())
    fail = restored.on_add_failed(fwd.incoming, "outgoing HTLC 3 not in the channel after restart")
    assert _at_origin(fail)[1].code == FailureCode.TEMPORARY_CHANNEL_FAILURE
    assert restored.circuit_for_outgoing(out) is None  # the id is free for the channel's next add
    assert restored.on_downstream_fulfilled(out, PREIMAGE, now=0) is None
    with pytest.raises(ValueError):
        restored.on_add_failed(fwd.incoming, "twice")


def test_upstream_resolved_refuses_an_open_circuit() -> None:
    fw = Forwarder()
    fwd, _ = _forward(fw)
    with pytest.raises(ValueError):
        fw.upstream_resolved(fwd.incoming)


def test_circuits_survive_a_restart() -> None:
    fw = Forwarder()
    # one pending add, one forwarded, one settled, one failed
    htlc_p, processed_p = _incoming(htlc_id=1)
    pending = fw.on_incoming(htlc_p, processed_p, HEIGHT, _channels())
    assert isinstance(pending, Forward)
    _, out_f = _forward(fw, htlc_id=2, out_htlc_id=20)
    _, out_s = _forward(fw, htlc_id=3, out_htlc_id=30)
    settle = fw.on_downstream_fulfilled(out_s, PREIMAGE, now=1_000)
    _, out_x = _forward(fw, htlc_id=4, out_htlc_id=40)
    failed = fw.on_downstream_failed(out_x, failure_code=FailureCode.INVALID_ONION_KEY,
                                     sha256_of_onion=bytes(32))

    restored = Forwarder.from_bytes(fw.to_bytes())
    assert restored.to_dict() == fw.to_dict()
    assert restored.circuits() == fw.circuits()
    assert restored.pending_adds() == [pending]
    # nothing is forwarded twice
    for htlc_id, expected in [(1, AlreadyForwarded(pending.incoming, None)),
                              (2, AlreadyForwarded(HtlcRef(CHAN_AB, 2), out_f)),
                              (3, settle), (4, failed)]:
        htlc, processed = _incoming(htlc_id=htlc_id)
        assert restored.on_incoming(htlc, processed, HEIGHT, _channels()) == expected
    # nothing is lost: the forwarded one still settles, with its shared secret
    assert restored.on_downstream_fulfilled(out_f, PREIMAGE, now=2_000) == Settle(HtlcRef(CHAN_AB, 2), PREIMAGE)
    assert len(restored.forwarding_history().forwarding_events) == 2
    restored.on_forward_added(pending.incoming, 50)
    assert restored.circuit_for_outgoing(HtlcRef(CHAN_BC, 50)) is not None
    with pytest.raises(ValueError):
        Forwarder.from_dict({"version": 2, "circuits": [], "history": []})


def test_a_failed_downstream_restored_decodes_at_the_origin() -> None:
    fw = Forwarder()
    _, out = _forward(fw)
    restored = Forwarder.from_dict(fw.to_dict())
    fail = restored.on_downstream_timed_out(out)
    assert fail is not None and _at_origin(fail)[0] == 1


# --- deadlines ------------------------------------------------------------------------------------------------


def test_on_height_goes_on_chain_before_the_upstream_deadline() -> None:
    cfg = ForwardingConfig(incoming_htlc_claim_buffer=18, outgoing_htlc_grace_blocks=3)
    fw = Forwarder(cfg)
    _, out1 = _forward(fw, htlc_id=1, out_htlc_id=10)
    _, out2 = _forward(fw, htlc_id=2, out_htlc_id=11)
    # the timeout deadline of the HTLCs we offered: CLTV_OUT + 3 (before CLTV_IN - 18 = CLTV_OUT + 22)
    assert fw.on_height(CLTV_OUT + 2) == []
    actions = fw.on_height(CLTV_OUT + 3)
    assert len(actions) == 1 and isinstance(actions[0], GoOnChain)
    assert (actions[0].channel_id, actions[0].short_channel_id) == (CHAN_BC, SCID_BC)
    assert actions[0].incoming == (HtlcRef(CHAN_AB, 1), HtlcRef(CHAN_AB, 2)) and actions[0].reason
    assert CLTV_OUT + 3 < CLTV_IN - cfg.incoming_htlc_claim_buffer <= CLTV_IN
    # once resolved downstream, no more deadline
    fw.on_downstream_fulfilled(out1, PREIMAGE, now=0)
    fw.on_downstream_timed_out(out2)
    assert fw.on_height(CLTV_OUT + 10) == []


def test_on_height_upstream_margin_when_our_delta_is_thin() -> None:
    # a long grace: the incoming HTLC's fulfillment deadline comes first
    fw = Forwarder(ForwardingConfig(incoming_htlc_claim_buffer=18, outgoing_htlc_grace_blocks=100))
    _forward(fw)
    deadline = CLTV_IN - 18
    assert fw.on_height(deadline - 1) == []
    assert [g.channel_id for g in fw.on_height(deadline)] == [CHAN_BC]
    assert fw.on_height(deadline + 5)  # repeated while it holds


def test_pending_adds_are_not_on_chain_candidates() -> None:
    fw = Forwarder()
    htlc, processed = _incoming()
    assert isinstance(fw.on_incoming(htlc, processed, HEIGHT, _channels()), Forward)
    assert fw.on_height(CLTV_IN) == []


# --- the forwarding log ----------------------------------------------------------------------------------------


def test_forwarding_history_paging_and_fee_report() -> None:
    fw = Forwarder()
    day = 24 * 3600
    now = 100 * day
    times = [now - 40 * day, now - 10 * day, now - 3 * day, now - 3600, now - 60]
    for i, t in enumerate(times):
        _, out = _forward(fw, htlc_id=100 + i, out_htlc_id=200 + i)
        fw.on_downstream_fulfilled(out, PREIMAGE, now=t)
    page = fw.forwarding_history(start_time=now - 31 * day, end_time=now, index_offset=0, num_max_events=2)
    assert [e.timestamp for e in page.forwarding_events] == times[1:3] and page.last_offset_index == 2
    page = fw.forwarding_history(start_time=now - 31 * day, end_time=now, index_offset=2, num_max_events=2)
    assert [e.timestamp for e in page.forwarding_events] == times[3:5] and page.last_offset_index == 4
    page = fw.forwarding_history(start_time=now - 31 * day, end_time=now, index_offset=4)
    assert page.forwarding_events == () and page.last_offset_index == 4
    assert all(e.fee_msat == FEE for e in fw.forwarding_history().forwarding_events)
    sums = fw.fee_report(now)
    assert (sums.day_fee_sum_msat, sums.week_fee_sum_msat, sums.month_fee_sum_msat) == (2 * FEE, 3 * FEE, 4 * FEE)
    assert fw.prune_history(now - 30 * day) == 1
    assert len(fw.forwarding_history().forwarding_events) == 4
    assert Forwarder.from_dict(fw.to_dict()).fee_report(now) == sums


def test_fee_is_bolt7_rounded_down() -> None:
    policy = ChannelPolicy(fee_base_msat=1, fee_proportional_millionths=1, cltv_expiry_delta=40,
                           htlc_minimum_msat=1, htlc_maximum_msat=10**12)
    assert policy.fee_msat(999_999) == 1 and policy.fee_msat(1_000_000) == 2
    # forwarding 1_999_999 msat needs 1 + 1 = 2 msat of fee
    htlc, processed = _incoming(amt_out=1_999_999, amount=1_999_999 + 2)
    assert isinstance(Forwarder().on_incoming(htlc, processed, HEIGHT, _channels(policy=policy)), Forward)
    htlc, processed = _incoming(amt_out=1_999_999, amount=1_999_999 + 1)
    assert isinstance(Forwarder().on_incoming(htlc, processed, HEIGHT, _channels(policy=policy)), FailBack)


def test_config_rejects_negative_margins() -> None:
    with pytest.raises(ValueError):
        ForwardingConfig(outgoing_cltv_reject_delta=-1)


def test_htlc_fulfilled_effect_settles() -> None:
    fw = Forwarder()
    fwd, _ = _forward(fw)
    settle = fw.on_downstream_resolved(HtlcFulfilled(CHAN_BC, 3, PAYMENT_HASH, PREIMAGE), now=5)
    assert settle == Settle(fwd.incoming, PREIMAGE)


def test_on_chain_outcomes_settle_or_fail_upstream() -> None:
    """The channel manager's on_htlc_onchain: a preimage seen on chain settles, a timeout fails with ours."""
    fw = Forwarder()
    fwd, _ = _forward(fw, htlc_id=1, out_htlc_id=3)
    settle = fw.on_downstream_resolved_on_chain(HtlcFulfilled(CHAN_BC, 3, PAYMENT_HASH, PREIMAGE), now=5)
    assert settle == Settle(fwd.incoming, PREIMAGE)
    fwd2, _ = _forward(fw, htlc_id=2, out_htlc_id=4)
    fail = fw.on_downstream_resolved_on_chain(HtlcFailed(CHAN_BC, 4, PAYMENT_HASH, b""), now=6)
    assert isinstance(fail, FailBack) and fail.incoming == fwd2.incoming
    assert _at_origin(fail) == (1, FailureMessage(FailureCode.PERMANENT_CHANNEL_FAILURE))
    # reported again (after a restart): the same decision, no double settlement
    assert fw.on_downstream_resolved_on_chain(HtlcFailed(CHAN_BC, 4, PAYMENT_HASH, b""), now=7) == fail
    assert fw.on_downstream_resolved_on_chain(HtlcFulfilled(CHAN_BC, 9, PAYMENT_HASH, PREIMAGE), now=7) is None


@settings(max_examples=40, deadline=None)
@given(base=st.integers(0, 5_000), prop=st.integers(0, 5_000), amt=st.integers(1_000, 400_000_000),
       slack=st.integers(-3, 3))
def test_fee_rule_property(base: int, prop: int, amt: int, slack: int) -> None:
    """Forwarded iff amount_msat - amt_to_forward >= the BOLT 7 fee; a forward never pays out more than it gets."""
    policy = replace(POLICY, fee_base_msat=base, fee_proportional_millionths=prop)
    fee = policy.fee_msat(amt)
    htlc, processed = _incoming(amt_out=amt, amount=amt + fee + slack)
    decision = Forwarder().on_incoming(htlc, processed, HEIGHT, _channels(policy=policy, bc={"available_msat": 10**12}))
    if fee + slack >= fee:
        assert isinstance(decision, Forward) and decision.amount_msat == amt
        assert decision.fee_msat == fee + slack and decision.amount_msat <= htlc.amount_msat
    else:
        assert isinstance(decision, FailBack) and decision.failure is not None
        assert decision.failure.code == FailureCode.FEE_INSUFFICIENT
