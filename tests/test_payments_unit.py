"""Unit tests of the payment layer's cores: the invoice registry, the receive decision, the payments store."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
import trio

from base_chain.crypto import PrivateKey
from base_chain.params import get_params
from channels.effects import HtlcFailed, IncomingHtlc
from htlc.failure import FailureCode, decode_failure
from htlc.invoice import decode_invoice, invoice_prefix
from htlc.invoices import (
    DEFAULT_CLTV_EXPIRY_DELTA,
    DEFAULT_INVOICE_EXPIRY,
    DuplicateInvoice,
    InvoiceHtlc,
    InvoiceNotFound,
    InvoiceRecord,
    InvoiceRegistry,
    InvoiceRegistryError,
    InvoiceState,
)
from htlc.onion import HopPayload, PaymentData, create_onion
from htlc.payments import (
    AttemptFailure,
    AttemptStatus,
    FailureReason,
    PaymentExists,
    PaymentStatus,
    PaymentStore,
    Route,
    RouteHop,
)
from htlc.receive import Fail, FailMalformed, Fulfill, decide
from htlc.send import (
    KEYSEND_RECORD,
    PaymentIntent,
    decode_htlc_failure,
    failure_reason_for,
    final_hop_payload,
)

NODE_KEY = PrivateKey(hashlib.sha256(b"bob").digest())
NODE_PUB = NODE_KEY.public_key().to_bytes()
PREFIX = invoice_prefix(get_params("regtest"))
NOW = 1_700_000_000
HEIGHT = 500
CHANNEL_ID = bytes(range(32))


def _sha(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


@pytest.fixture
def registry(tmp_path: Path):
    reg = InvoiceRegistry(tmp_path / "invoices.sqlite", NODE_KEY, PREFIX)
    yield reg
    reg.close()


def _htlc_record(htlc_id: int = 0, amount_msat: int = 10_000_000) -> InvoiceHtlc:
    return InvoiceHtlc(CHANNEL_ID, 123 << 40, htlc_id, amount_msat, HEIGHT, NOW, HEIGHT + 100)


# --- the invoice registry ------------------------------------------------------------------------------------


def test_add_writes_a_signed_bolt11_invoice(registry: InvoiceRegistry) -> None:
    rec = registry.add(now=NOW, value_msat=10_000_000, memo="coffee")
    assert rec.state is InvoiceState.OPEN and rec.add_index == 1 and rec.preimage is not None
    assert _sha(rec.preimage) == rec.payment_hash and len(rec.payment_secret) == 32
    inv = decode_invoice(rec.payment_request, PREFIX)
    assert inv.payee == NODE_PUB and inv.amount_msat == 10_000_000 and inv.description == "coffee"
    assert inv.payment_hash == rec.payment_hash and inv.payment_secret == rec.payment_secret
    assert inv.expiry == DEFAULT_INVOICE_EXPIRY and inv.min_final_cltv_expiry_delta == DEFAULT_CLTV_EXPIRY_DELTA
    assert inv.feature_bits == (8, 14, 17) and inv.timestamp == NOW  # basic_mpp optional, as lnd
    any_amount = registry.add(now=NOW, memo="tip jar", expiry=60, cltv_expiry=40)
    inv = decode_invoice(any_amount.payment_request, PREFIX)
    assert inv.amount_msat is None and inv.expiry == 60 and inv.min_final_cltv_expiry_delta == 40
    assert any_amount.add_index == 2


def test_add_refuses_bad_arguments(registry: InvoiceRegistry) -> None:
    with pytest.raises(InvoiceRegistryError, match="memo too large"):
        registry.add(now=NOW, memo="x" * 640)
    with pytest.raises(InvoiceRegistryError, match="minimum of 18"):
        registry.add(now=NOW, cltv_expiry=10)
    with pytest.raises(InvoiceRegistryError, match="negative"):
        registry.add(now=NOW, value_msat=-1)
    preimage = os.urandom(32)
    registry.add(now=NOW, preimage=preimage)
    with pytest.raises(DuplicateInvoice, match="already exists"):
        registry.add(now=NOW, preimage=preimage)
    rec = registry.add(now=NOW, description_hash=_sha(b"a long description"))
    assert decode_invoice(rec.payment_request, PREFIX).description_hash == _sha(b"a long description")


def test_registry_persists_and_settles_atomically(tmp_path: Path) -> None:
    path = tmp_path / "invoices.sqlite"
    reg = InvoiceRegistry(path, NODE_KEY, PREFIX)
    seen: list[InvoiceRecord] = []
    reg.listeners.append(seen.append)
    a = reg.add(now=NOW, value_msat=1_000_000, memo="a")
    b = reg.add(now=NOW, value_msat=2_000_000, memo="b")
    settled = reg.settle(b.payment_hash, _htlc_record(7, 2_000_000), NOW + 5)
    assert settled.state is InvoiceState.SETTLED and settled.settle_index == 1 and settled.amt_paid_msat == 2_000_000
    assert settled.paid_by(CHANNEL_ID, 7) and not settled.paid_by(CHANNEL_ID, 8)
    with pytest.raises(InvoiceRegistryError, match="settled"):
        reg.settle(b.payment_hash, _htlc_record(8), NOW)
    with pytest.raises(InvoiceNotFound):
        reg.settle(os.urandom(32), _htlc_record(9), NOW)
    assert [r.state for r in seen] == [InvoiceState.OPEN, InvoiceState.OPEN, InvoiceState.SETTLED]
    reg.close()

    again = InvoiceRegistry(path, NODE_KEY, PREFIX)  # a restart
    try:
        got = again.lookup(b.payment_hash)
        assert got == settled and got is not None and got.htlcs[0].htlc_id == 7
        assert again.lookup(a.payment_hash) == a
        assert again.lookup_by_payment_addr(a.payment_secret) == a
        assert again.settle(a.payment_hash, _htlc_record(1, 1_000_000), NOW).settle_index == 2
        assert [r.add_index for r in again.settled_since(1)] == [1]
        assert [r.add_index for r in again.added_since(1)] == [2]
    finally:
        again.close()


def test_cancel_and_listing(registry: InvoiceRegistry) -> None:
    recs = [registry.add(now=NOW + i, value_msat=1000 * (i + 1)) for i in range(6)]
    assert registry.cancel(recs[1].payment_hash).state is InvoiceState.CANCELED
    assert registry.cancel(recs[1].payment_hash).state is InvoiceState.CANCELED  # idempotent, as lnd
    registry.settle(recs[2].payment_hash, _htlc_record(), NOW)
    with pytest.raises(InvoiceRegistryError, match="already settled"):
        registry.cancel(recs[2].payment_hash)
    with pytest.raises(InvoiceNotFound):
        registry.cancel(os.urandom(32))
    idx = [r.add_index for r in registry.list_invoices()]
    assert idx == [1, 2, 3, 4, 5, 6]
    assert [r.add_index for r in registry.list_invoices(pending_only=True)] == [1, 4, 5, 6]
    assert [r.add_index for r in registry.list_invoices(index_offset=2, max_invoices=2)] == [3, 4]
    assert [r.add_index for r in registry.list_invoices(reversed=True, max_invoices=2)] == [5, 6]
    assert [r.add_index for r in registry.list_invoices(reversed=True, index_offset=4, max_invoices=2)] == [2, 3]
    assert [r.add_index for r in registry.list_invoices(creation_date_start=NOW + 4)] == [5, 6]


def test_keysend_record(registry: InvoiceRegistry) -> None:
    preimage = os.urandom(32)
    rec = registry.add_keysend(preimage, _htlc_record(3, 5_000), NOW)
    assert rec.is_keysend and rec.state is InvoiceState.SETTLED and rec.payment_hash == _sha(preimage)
    assert rec.amt_paid_msat == 5_000 and rec.payment_request == "" and rec.settle_index == 1
    with pytest.raises(DuplicateInvoice):
        registry.add_keysend(preimage, _htlc_record(4, 5_000), NOW)


# --- the receive decision ---------------------------------------------------------------------------------


def _onion(payload: HopPayload, payment_hash: bytes, session: PrivateKey | None = None,
           extra_hop: bool = False) -> tuple[bytes, PrivateKey]:
    session = session or PrivateKey.generate()
    hops = [(NODE_PUB, payload.encode())]
    if extra_hop:
        hops = [(NODE_PUB, HopPayload(amt_to_forward=1000, outgoing_cltv_value=HEIGHT + 50,
                                      short_channel_id=1 << 40).encode()),
                (PrivateKey.generate().public_key().to_bytes(), payload.encode())]
    return create_onion(session, hops, payment_hash), session


def _incoming(onion: bytes, payment_hash: bytes, amount_msat: int, cltv: int, htlc_id: int = 0) -> IncomingHtlc:
    return IncomingHtlc(CHANNEL_ID, htlc_id, amount_msat, payment_hash, cltv, onion, None)


def _pay(rec: InvoiceRecord, amount_msat: int | None = None, secret: bytes | None = None,
         cltv: int = HEIGHT + 83, total_msat: int | None = None) -> tuple[IncomingHtlc, PrivateKey]:
    amount = rec.value_msat if amount_msat is None else amount_msat
    payload = HopPayload(amt_to_forward=amount, outgoing_cltv_value=cltv,
                         payment_data=PaymentData(secret or rec.payment_secret,
                                                  amount if total_msat is None else total_msat))
    onion, session = _onion(payload, rec.payment_hash)
    return _incoming(onion, rec.payment_hash, amount, cltv), session


def _decide(registry: InvoiceRegistry, htlc: IncomingHtlc, now: int = NOW, height: int = HEIGHT) -> object:
    return decide(htlc, node_key=NODE_KEY, height=height, now=now, lookup=registry.lookup)


def _failure_of(decision: object, session: PrivateKey) -> tuple[int, FailureCode, object]:
    assert isinstance(decision, Fail), decision
    index, msg = decode_failure(session, [NODE_PUB], decision.reason)
    return index, FailureCode(msg.code), msg


def _assert_details(decision: object, session: PrivateKey, htlc_msat: int) -> None:
    index, code, msg = _failure_of(decision, session)
    assert index == 0 and code is FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS
    assert msg.htlc_msat == htlc_msat and msg.height == HEIGHT  # type: ignore[attr-defined]


def test_valid_payment_is_fulfilled(registry: InvoiceRegistry) -> None:
    rec = registry.add(now=NOW, value_msat=10_000_000)
    htlc, _ = _pay(rec)
    decision = _decide(registry, htlc)
    assert isinstance(decision, Fulfill) and decision.payment_preimage == rec.preimage and not decision.keysend
    overpaid, _ = _pay(rec, amount_msat=12_000_000)
    assert isinstance(_decide(registry, overpaid), Fulfill)
    any_amount = registry.add(now=NOW)
    htlc, _ = _pay(any_amount, amount_msat=1)
    assert isinstance(_decide(registry, htlc), Fulfill)


@pytest.mark.parametrize("case", ["wrong_secret", "underpaid", "expired", "unknown_hash", "canceled", "settled",
                                  "cltv_too_soon", "multi_part", "no_secret"])
def test_bad_payments_get_incorrect_or_unknown_payment_details(registry: InvoiceRegistry, case: str) -> None:
    rec = registry.add(now=NOW, value_msat=10_000_000, expiry=3600)
    now = NOW
    if case == "wrong_secret":
        htlc, session = _pay(rec, secret=os.urandom(32))
    elif case == "underpaid":
        htlc, session = _pay(rec, amount_msat=9_999_999)
    elif case == "expired":
        htlc, session = _pay(rec)
        now = NOW + 3601
    elif case == "unknown_hash":
        other = replace(rec, payment_hash=os.urandom(32))
        htlc, session = _pay(other)
    elif case == "canceled":
        registry.cancel(rec.payment_hash)
        htlc, session = _pay(rec)
    elif case == "settled":
        registry.settle(rec.payment_hash, _htlc_record(99), NOW)
        htlc, session = _pay(rec)
    elif case == "cltv_too_soon":
        htlc, session = _pay(rec, cltv=HEIGHT + DEFAULT_CLTV_EXPIRY_DELTA - 1)
    elif case == "multi_part":  # a part of a set whose total_msat is below the invoice's amount
        htlc, session = _pay(rec, amount_msat=5_000_000, total_msat=9_000_000)
    else:
        payload = HopPayload(amt_to_forward=10_000_000, outgoing_cltv_value=HEIGHT + 90)
        onion, session = _onion(payload, rec.payment_hash)
        htlc = _incoming(onion, rec.payment_hash, 10_000_000, HEIGHT + 90)
    _assert_details(_decide(registry, htlc, now=now), session, htlc.amount_msat)


def test_final_hop_amount_and_cltv_checks(registry: InvoiceRegistry) -> None:
    rec = registry.add(now=NOW, value_msat=10_000_000)
    payload = HopPayload(amt_to_forward=10_000_000, outgoing_cltv_value=HEIGHT + 90,
                         payment_data=PaymentData(rec.payment_secret, 10_000_000))
    onion, session = _onion(payload, rec.payment_hash)
    _, code, msg = _failure_of(_decide(registry, _incoming(onion, rec.payment_hash, 9_000_000, HEIGHT + 90)), session)
    assert code is FailureCode.FINAL_INCORRECT_HTLC_AMOUNT and msg.incoming_htlc_amt == 9_000_000  # type: ignore[attr-defined]
    _, code, msg = _failure_of(_decide(registry, _incoming(onion, rec.payment_hash, 10_000_000, HEIGHT + 89)), session)
    assert code is FailureCode.FINAL_INCORRECT_CLTV_EXPIRY and msg.cltv_expiry == HEIGHT + 89  # type: ignore[attr-defined]


def test_keysend_is_accepted_once(registry: InvoiceRegistry) -> None:
    preimage = os.urandom(32)
    payload = HopPayload(amt_to_forward=5_000, outgoing_cltv_value=HEIGHT + 83, keysend_preimage=preimage,
                         custom_records=((70_001, b"hi"),))
    onion, session = _onion(payload, _sha(preimage))
    htlc = _incoming(onion, _sha(preimage), 5_000, HEIGHT + 83, htlc_id=4)
    decision = _decide(registry, htlc)
    assert isinstance(decision, Fulfill) and decision.keysend and decision.payment_preimage == preimage
    assert decision.custom_records == ((70_001, b"hi"),)
    registry.add_keysend(preimage, _htlc_record(4, 5_000), NOW)
    replay = _decide(registry, htlc)  # the same HTLC after a restart: fulfilled again, nothing new recorded
    assert isinstance(replay, Fulfill) and replay.replay and replay.keysend
    again = _incoming(onion, _sha(preimage), 5_000, HEIGHT + 83, htlc_id=5)
    _assert_details(_decide(registry, again), session, 5_000)
    # A preimage that does not hash to the payment hash.
    wrong = os.urandom(32)
    onion, session = _onion(replace(payload, keysend_preimage=wrong), _sha(preimage))
    _assert_details(_decide(registry, _incoming(onion, _sha(preimage), 5_000, HEIGHT + 83, 6)), session, 5_000)


def test_replayed_settled_htlc_is_fulfilled_again(registry: InvoiceRegistry) -> None:
    rec = registry.add(now=NOW, value_msat=10_000_000)
    htlc, _ = _pay(rec)
    registry.settle(rec.payment_hash, _htlc_record(htlc.htlc_id), NOW)
    decision = _decide(registry, htlc, now=NOW + 10 * 86400)  # even once the invoice has expired
    assert isinstance(decision, Fulfill) and decision.replay and decision.payment_preimage == rec.preimage


def test_bad_onions_are_malformed(registry: InvoiceRegistry) -> None:
    rec = registry.add(now=NOW, value_msat=10_000_000)
    htlc, _ = _pay(rec)
    onion = bytearray(htlc.onion_routing_packet)
    onion[100] ^= 1
    decision = _decide(registry, replace(htlc, onion_routing_packet=bytes(onion)))
    assert isinstance(decision, FailMalformed) and decision.failure_code == FailureCode.INVALID_ONION_HMAC
    assert decision.sha256_of_onion == _sha(bytes(onion))
    onion = bytearray(htlc.onion_routing_packet)
    onion[0] = 1
    decision = _decide(registry, replace(htlc, onion_routing_packet=bytes(onion)))
    assert isinstance(decision, FailMalformed) and decision.failure_code == FailureCode.INVALID_ONION_VERSION
    onion = bytearray(htlc.onion_routing_packet)
    onion[1] = 7
    decision = _decide(registry, replace(htlc, onion_routing_packet=bytes(onion)))
    assert isinstance(decision, FailMalformed) and decision.failure_code == FailureCode.INVALID_ONION_KEY
    # Another payment hash as associated data: the HMAC does not match either.
    decision = _decide(registry, replace(htlc, payment_hash=os.urandom(32)))
    assert isinstance(decision, FailMalformed) and decision.failure_code == FailureCode.INVALID_ONION_HMAC


def test_forwarding_is_refused_with_unknown_next_peer(registry: InvoiceRegistry) -> None:
    rec = registry.add(now=NOW, value_msat=10_000)
    payload = HopPayload(amt_to_forward=10_000, outgoing_cltv_value=HEIGHT + 90,
                         payment_data=PaymentData(rec.payment_secret, 10_000))
    onion, session = _onion(payload, rec.payment_hash, extra_hop=True)
    decision = _decide(registry, _incoming(onion, rec.payment_hash, 11_000, HEIGHT + 140))
    index, code, _ = _failure_of(decision, session)
    assert index == 0 and code is FailureCode.UNKNOWN_NEXT_PEER


def test_invalid_payload_is_an_authenticated_failure(registry: InvoiceRegistry) -> None:
    rec = registry.add(now=NOW, value_msat=10_000)
    payload = HopPayload(outgoing_cltv_value=HEIGHT + 90)  # amt_to_forward missing
    onion, session = _onion(payload, rec.payment_hash)
    _, code, msg = _failure_of(_decide(registry, _incoming(onion, rec.payment_hash, 10_000, HEIGHT + 90)), session)
    assert code is FailureCode.INVALID_ONION_PAYLOAD and msg.tlv_type == 2  # type: ignore[attr-defined]


# --- sending: payload, failure decoding (a sans-IO round trip with the receiver) ----------------------------------


def test_sender_payload_and_failure_round_trip(registry: InvoiceRegistry, tmp_path: Path) -> None:
    rec = registry.add(now=NOW, value_msat=10_000_000)
    intent = PaymentIntent(NODE_PUB, 10_000_000, rec.payment_hash, payment_secret=os.urandom(32))  # wrong secret
    cltv = HEIGHT + 83
    session = PrivateKey.generate()
    onion = create_onion(session, [(NODE_PUB, final_hop_payload(intent, cltv).encode())], rec.payment_hash)
    decision = _decide(registry, _incoming(onion, rec.payment_hash, 10_000_000, cltv, htlc_id=3))
    assert isinstance(decision, Fail)

    store = PaymentStore(tmp_path / "payments.sqlite")
    try:
        store.init_payment(rec.payment_hash, 10_000_000, NODE_PUB, "", 1)
        route = Route(cltv, 10_000_000, 0, (RouteHop(NODE_PUB, 1 << 40, 10_000_000, 0, cltv),))
        attempt = store.add_attempt(rec.payment_hash, route, session.to_bytes(), CHANNEL_ID, 3, 2)
        failure = decode_htlc_failure(attempt, HtlcFailed(CHANNEL_ID, 3, rec.payment_hash, decision.reason))
        assert failure.code == FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS and failure.source_index == 1
        assert failure.htlc_msat == 10_000_000 and failure.height == HEIGHT
        assert failure_reason_for(failure) is FailureReason.INCORRECT_PAYMENT_DETAILS
        malformed = decode_htlc_failure(attempt, HtlcFailed(CHANNEL_ID, 3, rec.payment_hash, b"",
                                                            FailureCode.INVALID_ONION_HMAC, bytes(32)))
        assert malformed.code == FailureCode.INVALID_ONION_HMAC and failure_reason_for(malformed) is \
            FailureReason.NO_ROUTE
        garbage = decode_htlc_failure(attempt, HtlcFailed(CHANNEL_ID, 3, rec.payment_hash, os.urandom(292)))
        assert garbage.code == -1 and garbage.source_index == 0
    finally:
        store.close()
    keysend = PaymentIntent(NODE_PUB, 5_000, _sha(b"k" * 32), keysend_preimage=b"k" * 32)
    payload = HopPayload.decode(final_hop_payload(keysend, cltv).encode(), is_final=True)
    assert payload.keysend_preimage == b"k" * 32 and payload.payment_data is None and KEYSEND_RECORD == 5482373484


# --- the payments store ---------------------------------------------------------------------------------------


def test_payment_store_pays_a_hash_once_and_persists(tmp_path: Path) -> None:
    path = tmp_path / "payments.sqlite"
    store = PaymentStore(path)
    h = os.urandom(32)
    p = store.init_payment(h, 5_000, NODE_PUB, "lnbcrt...", 1_000)
    assert p.status is PaymentStatus.IN_FLIGHT and p.payment_index == 1 and p.attempts == ()
    with pytest.raises(PaymentExists, match="in transition"):
        store.init_payment(h, 5_000, NODE_PUB, "", 1_001)
    route = Route(600, 5_000, 0, (RouteHop(NODE_PUB, 42, 5_000, 0, 600, payment_addr=b"s" * 32, total_msat=5_000,
                                           custom_records=((70_000, b"x"),)),))
    attempt = store.add_attempt(h, route, b"k" * 32, CHANNEL_ID, 0, 1_002)
    assert store.attempt_for_htlc(CHANNEL_ID, 0) == attempt and attempt.route == route
    store.close()

    store = PaymentStore(path)  # a restart: the attempt is there before any HTLC outcome
    try:
        assert [x.htlc_id for x in store.in_flight()[0].attempts] == [0]
        done = store.settle_attempt(attempt.attempt_id, b"p" * 32, 1_003)
        assert done.status is PaymentStatus.SUCCEEDED and done.preimage == b"p" * 32
        assert done.attempts[0].status is AttemptStatus.SUCCEEDED and done.attempts[0].resolve_time_ns == 1_003
        assert store.fail_payment(h, FailureReason.ERROR).status is PaymentStatus.SUCCEEDED  # a preimage wins
        with pytest.raises(PaymentExists, match="already paid"):
            store.init_payment(h, 5_000, NODE_PUB, "", 1_004)
        # A failed payment may be tried again; its old attempts go.
        h2 = os.urandom(32)
        store.init_payment(h2, 1_000, NODE_PUB, "", 2_000)
        a2 = store.add_attempt(h2, route, b"k" * 32, CHANNEL_ID, 1, 2_001)
        store.fail_attempt(a2.attempt_id, AttemptFailure(0x400F, 1, "details", htlc_msat=1_000), 2_002)
        failed = store.fail_payment(h2, FailureReason.INCORRECT_PAYMENT_DETAILS)
        assert failed.status is PaymentStatus.FAILED and failed.attempts[0].failure is not None
        assert failed.attempts[0].failure.htlc_msat == 1_000
        retried = store.init_payment(h2, 1_000, NODE_PUB, "", 3_000)
        assert retried.status is PaymentStatus.IN_FLIGHT and retried.attempts == ()
        assert [p.payment_hash for p in store.list_payments()] == [h]
        assert len(store.list_payments(include_incomplete=True)) == 2 and store.count() == 2
        assert [p.payment_hash for p in store.list_payments(include_incomplete=True, reversed=True,
                                                            max_payments=1)] == [h2]
    finally:
        store.close()


def test_an_htlc_id_that_never_reached_the_channel_is_offered_again(tmp_path: Path) -> None:
    """A crash between writing the attempt and the channel's Persist: the channel gives the id out again."""
    store = PaymentStore(tmp_path / "payments.sqlite")
    try:
        route = Route(600, 5_000, 0, (RouteHop(NODE_PUB, 42, 5_000, 0, 600),))
        h1, h2 = os.urandom(32), os.urandom(32)
        store.init_payment(h1, 5_000, NODE_PUB, "", 1)
        lost = store.add_attempt(h1, route, b"k" * 32, CHANNEL_ID, 7, 2)
        with pytest.raises(sqlite3.IntegrityError):  # while it may be in flight, the id is taken
            store.add_attempt(h1, route, b"k" * 32, CHANNEL_ID, 7, 3)
        store.fail_attempt(lost.attempt_id, AttemptFailure(-1, 0, "never reached the channel"), 4)  # reconcile
        store.fail_payment(h1, FailureReason.ERROR)
        store.init_payment(h2, 5_000, NODE_PUB, "", 5)
        real = store.add_attempt(h2, route, b"j" * 32, CHANNEL_ID, 7, 6)
        assert store.attempt_for_htlc(CHANNEL_ID, 7) == real
    finally:
        store.close()


def test_mpp_payment_succeeds_once_no_part_is_in_flight(tmp_path: Path) -> None:
    from htlc.payments import AttemptStatus as S

    path = tmp_path / "payments.sqlite"
    store = PaymentStore(path)
    h = _sha(b"mpp")
    store.init_payment(h, 30_000, NODE_PUB, "", 1)

    def route(amount: int, fee: int) -> Route:
        return Route(100, amount + fee, fee, (RouteHop(NODE_PUB, 1, amount, fee, 100),))

    a1 = store.add_attempt(h, route(10_000, 5), b"k" * 32, CHANNEL_ID, 0, 2)
    a2 = store.add_attempt(h, route(20_000, 7), b"k" * 32, CHANNEL_ID, 1, 2)
    a3 = store.add_attempt(h, route(20_000, 9), b"k" * 32, CHANNEL_ID, 2, 2)
    store.fail_attempt(a3.attempt_id, AttemptFailure(FailureCode.TEMPORARY_CHANNEL_FAILURE, 1), 3)
    p = store.settle_attempt(a1.attempt_id, b"\x01" * 32, 4)
    assert p.status is PaymentStatus.IN_FLIGHT and p.preimage == b"\x01" * 32  # a2 is still out
    p = PaymentStore(path).fail_payment(h, FailureReason.ERROR)  # a preimage wins, even after a restart
    assert p.status is PaymentStatus.IN_FLIGHT
    p = store.settle_attempt(a2.attempt_id, b"\x01" * 32, 5)
    assert p.status is PaymentStatus.SUCCEEDED and p.fee_msat == 5 + 7  # the failed part paid nothing
    assert [a.status for a in p.attempts] == [S.SUCCEEDED, S.SUCCEEDED, S.FAILED]
    with pytest.raises(PaymentExists):
        store.init_payment(h, 30_000, NODE_PUB, "", 6)


def test_failure_channel_update_is_taken_only_from_its_signer() -> None:
    from htlc.gossip import ChannelUpdate
    from htlc.gossip_sign import sign_channel_update
    from htlc.payments import AttemptFailure as AF
    from htlc.send import failure_channel_update

    key = PrivateKey(_sha(b"erring"))
    upd = sign_channel_update(ChannelUpdate(chain_hash=bytes(32), short_channel_id=42, timestamp=77, channel_flags=1,
                                            cltv_expiry_delta=40, htlc_minimum_msat=1, fee_base_msat=2000,
                                            fee_proportional_millionths=10, htlc_maximum_msat=5_000_000), key)
    erring = key.public_key().to_bytes()
    for raw in (upd.encode(), upd.encode_payload()):  # with or without the type prefix
        policy = failure_channel_update(raw, erring)
        assert policy is not None and (policy.short_channel_id, policy.direction, policy.fee_base_msat,
                                       policy.timestamp, policy.disabled) == (42, 1, 2000, 77, False)
    assert failure_channel_update(upd.encode(), NODE_PUB) is None  # signed by someone else
    assert failure_channel_update(b"\x01\x02garbage", erring) is None
    assert failure_channel_update(b"", erring) is None
    stored = AF(FailureCode.FEE_INSUFFICIENT, 2, channel_update=upd.encode())
    assert AF.from_json(stored.to_json()) == stored


def test_sendable_msat_is_exactly_what_the_channel_takes() -> None:
    from channels.effects import ChannelError
    from test_channel_state import ONION, Pair, payment_hash

    pair = Pair()
    a = pair.a.channel
    room = a._c.sendable_msat()
    assert 0 < room < a.local_balance_msat
    with pytest.raises(ChannelError, match="insufficient balance"):
        a.add_htlc(room + 1, payment_hash(1), 500, ONION)
    a.add_htlc(room, payment_hash(1), 500, ONION)  # proposed, not signed yet: counted already
    assert a._c.sendable_msat() == 0
    b = pair.b.channel  # the fundee pays no commitment fee: its balance less the reserve
    assert b._c.sendable_msat() == b.local_balance_msat - b._c.params.remote.channel_reserve_sat * 1000


def test_attempts_and_preimages_are_synced_in_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """add_attempt / settle_attempt commit without an fsync; sync() makes all of them durable with one
    (the channel node calls it before writing channel state); the rarer writes are durable at once."""
    import base_chain.store

    synced: list[object] = []
    monkeypatch.setattr(base_chain.store, "fsync_wal", lambda path: synced.append(path))
    path = tmp_path / "payments.sqlite"
    store = PaymentStore(path)
    synced.clear()  # (a new database is migrated, durably, when opened)
    route = Route(600, 1_000, 0, (RouteHop(NODE_PUB, 1 << 40, 1_000, 0, 600),))
    attempts = []
    for n in range(3):
        h = _sha(bytes([n]) * 32)
        store.init_payment(h, 1_000, NODE_PUB, "", n)
        attempts.append(store.add_attempt(h, route, bytes(32), CHANNEL_ID, n, n))
    assert synced == []
    store.sync()
    assert synced == [path]
    store.sync()  # nothing new
    assert synced == [path]
    store.settle_attempt(attempts[0].attempt_id, bytes([0]) * 32, 10)
    store.settle_attempt(attempts[1].attempt_id, bytes([1]) * 32, 11)
    store.sync()
    assert synced == [path, path]
    store.fail_payment(_sha(bytes([2]) * 32), FailureReason.ERROR)  # durable on return
    assert synced == [path, path, path]
    store.close()
    again = PaymentStore(path)  # committed all along: a process crash loses none of it
    assert [again.get(_sha(bytes([n]) * 32)).status for n in range(3)] == [  # type: ignore[union-attr]
        PaymentStatus.SUCCEEDED, PaymentStatus.SUCCEEDED, PaymentStatus.FAILED]


def test_a_success_is_announced_once_its_preimage_is_durable(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Payer: SendPaymentV2 / TrackPaymentV2 hear SUCCEEDED after the fsync that makes the preimage durable
    (the channel node's before_write hook, or a fallback task), never before."""
    from types import SimpleNamespace

    import base_chain.store
    from htlc.send import Payer

    synced: list[object] = []
    monkeypatch.setattr(base_chain.store, "fsync_wal", lambda path: synced.append(path))
    store = PaymentStore(tmp_path / "payments.sqlite")
    spawned: list[object] = []
    payer = Payer(SimpleNamespace(datadir=tmp_path, spawn=lambda fn, *a: spawned.append(fn)), store)  # type: ignore[arg-type]
    h = _sha(b"\x07" * 32)
    updates = payer.updates.subscribe(h)
    store.init_payment(h, 1_000, NODE_PUB, "", 1)
    route = Route(600, 1_000, 0, (RouteHop(NODE_PUB, 1 << 40, 1_000, 0, 600),))
    attempt = store.add_attempt(h, route, bytes(32), CHANNEL_ID, 0, 2)
    synced.clear()
    payer._publish_when_durable(store.settle_attempt(attempt.attempt_id, b"\x07" * 32, 3))
    assert len(spawned) == 1 and synced == []  # a fallback is scheduled; nothing said yet
    with pytest.raises(trio.WouldBlock):
        updates.receive_nowait()
    payer.sync()
    assert synced and updates.receive_nowait().status is PaymentStatus.SUCCEEDED
    store.close()
