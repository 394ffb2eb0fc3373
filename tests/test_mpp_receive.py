"""Unit (sans-IO): multi-part payments to regular invoices, receiver side (BOLT 4 basic MPP, lnd's registry).

decide() + InvoiceRegistry on a real sqlite file, with real onions; time is passed in (no clock).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from base_chain.crypto import PrivateKey
from base_chain.params import get_params
from channels.effects import IncomingHtlc
from htlc.failure import FailureCode, decode_failure
from htlc.invoice import decode_invoice, invoice_prefix
from htlc.invoices import (
    DEFAULT_MPP_TIMEOUT_S,
    InvoiceHtlc,
    InvoiceHtlcState,
    InvoiceRecord,
    InvoiceRegistry,
    InvoiceState,
)
from htlc.onion import HopPayload, PaymentData, create_onion
from htlc.receive import Fail, Fulfill, Hold, decide

NODE_KEY = PrivateKey(hashlib.sha256(b"mpp receiver").digest())
NODE_PUB = NODE_KEY.public_key().to_bytes()
PREFIX = invoice_prefix(get_params("regtest"))
NOW = 1_700_000_000
HEIGHT = 700
CHAN_A = bytes([1]) * 32
CHAN_B = bytes([2]) * 32


@pytest.fixture
def registry(tmp_path: Path):
    reg = InvoiceRegistry(tmp_path / "invoices.sqlite", NODE_KEY, PREFIX)
    yield reg
    reg.close()


def _part(rec: InvoiceRecord, amount_msat: int, total_msat: int, htlc_id: int, channel_id: bytes = CHAN_A,
          secret: bytes | None = None) -> tuple[IncomingHtlc, PrivateKey]:
    cltv = HEIGHT + 100
    payload = HopPayload(amt_to_forward=amount_msat, outgoing_cltv_value=cltv,
                         payment_data=PaymentData(secret or rec.payment_secret, total_msat))
    session = PrivateKey.generate()
    onion = create_onion(session, [(NODE_PUB, payload.encode())], rec.payment_hash)
    return IncomingHtlc(channel_id, htlc_id, amount_msat, rec.payment_hash, cltv, onion, None), session


def _decide(registry: InvoiceRegistry, htlc: IncomingHtlc, now: int = NOW) -> object:
    return decide(htlc, node_key=NODE_KEY, height=HEIGHT, now=now, lookup=registry.lookup)


def _accept(registry: InvoiceRegistry, htlc: IncomingHtlc, now: int = NOW) -> InvoiceRecord:
    """What the node does with a Hold: record the part durably."""
    d = _decide(registry, htlc, now)
    assert isinstance(d, Hold) and not d.replay, d
    return registry.accept_htlc(htlc.payment_hash, InvoiceHtlc(
        htlc.channel_id, 1 << 40, htlc.htlc_id, htlc.amount_msat, HEIGHT, now, htlc.cltv_expiry,
        mpp_total_msat=d.mpp_total_msat), now)


def _code(decision: object, session: PrivateKey) -> tuple[FailureCode, str]:
    assert isinstance(decision, Fail), decision
    index, msg = decode_failure(session, [NODE_PUB], decision.reason)
    assert index == 0
    return FailureCode(msg.code), decision.why


def _details(decision: object, session: PrivateKey) -> str:
    code, why = _code(decision, session)
    assert code is FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, why
    return why


def test_regular_invoices_offer_basic_mpp_like_lnd(registry: InvoiceRegistry) -> None:
    rec = registry.add(now=NOW, value_msat=9_000_000)
    features = decode_invoice(rec.payment_request, PREFIX).features
    assert rec.features == features
    assert features >> 17 & 1 and not features >> 16 & 1  # basic_mpp optional
    assert features >> 8 & 1 and features >> 14 & 1  # var_onion_optin, payment_secret: required


def test_parts_are_held_until_they_add_up_then_all_settle(registry: InvoiceRegistry) -> None:
    rec = registry.add(now=NOW, value_msat=9_000_000)
    seen: list[InvoiceState] = []
    registry.listeners.append(lambda r: seen.append(r.state))
    a, _ = _part(rec, 4_000_000, 9_000_000, htlc_id=0)
    held = _accept(registry, a)
    assert held.state is InvoiceState.OPEN and held.held_msat == 4_000_000 and held.preimage == rec.preimage
    assert isinstance(replay := _decide(registry, a), Hold) and replay.replay  # asked again: still held
    # Parts that do not belong to the set: incorrect_or_unknown_payment_details, nothing recorded.
    other_total, s = _part(rec, 5_000_000, 10_000_000, htlc_id=1)
    assert "differs from the held parts" in _details(_decide(registry, other_total), s)
    wrong_secret, s = _part(rec, 5_000_000, 9_000_000, htlc_id=2, secret=os.urandom(32))
    assert "payment_secret" in _details(_decide(registry, wrong_secret), s)
    overpay, s = _part(rec, 6_000_000, 9_000_000, htlc_id=3)
    assert "overpays" in _details(_decide(registry, overpay), s)
    whole, s = _part(rec, 9_000_000, 9_000_000, htlc_id=4)  # a single-part payment while a set is held
    assert "overpays" in _details(_decide(registry, whole), s)
    below, s = _part(rec, 1_000_000, 8_000_000, htlc_id=5)
    assert "below the invoice" in _details(_decide(registry, below), s)
    assert len(registry.lookup(rec.payment_hash).htlcs) == 1  # type: ignore[union-attr]
    # The part that completes the set settles the invoice and every part, in one transaction.
    b, _ = _part(rec, 5_000_000, 9_000_000, htlc_id=0, channel_id=CHAN_B)
    settled = _accept(registry, b, NOW + 3)
    assert settled.state is InvoiceState.SETTLED and settled.amt_paid_msat == 9_000_000
    assert settled.settle_index == 1 and settled.settle_date == NOW + 3
    assert [(h.state, h.resolve_time) for h in settled.htlcs] == [(InvoiceHtlcState.SETTLED, NOW + 3)] * 2
    assert seen == [InvoiceState.OPEN, InvoiceState.SETTLED]
    for htlc in (a, b):  # the node decides every part again: each is fulfilled with the preimage
        d = _decide(registry, htlc)
        assert isinstance(d, Fulfill) and d.replay and d.payment_preimage == rec.preimage
    late, s = _part(rec, 1_000_000, 9_000_000, htlc_id=9)
    assert "settled" in _details(_decide(registry, late), s)
    assert registry.expire_mpp_sets(NOW + 10_000) == []


def test_single_part_payment_still_settles_at_once(registry: InvoiceRegistry) -> None:
    rec = registry.add(now=NOW, value_msat=9_000_000)
    htlc, _ = _part(rec, 9_000_000, 9_000_000, htlc_id=0)
    d = _decide(registry, htlc)
    assert isinstance(d, Fulfill) and not d.replay and d.payment_preimage == rec.preimage


def test_incomplete_set_times_out_with_mpp_timeout(registry: InvoiceRegistry) -> None:
    assert DEFAULT_MPP_TIMEOUT_S == 120  # lnd's
    rec = registry.add(now=NOW, value_msat=9_000_000)
    a, sa = _part(rec, 3_000_000, 9_000_000, htlc_id=0)
    b, sb = _part(rec, 3_000_000, 9_000_000, htlc_id=1)
    _accept(registry, a)
    _accept(registry, b, NOW + 100)
    assert registry.expire_mpp_sets(NOW + 120) == []  # the set's clock starts at its first part
    assert registry.expire_mpp_sets(NOW + 121) == [rec.payment_hash]  # more than 120 s (whole seconds) later
    after = registry.lookup(rec.payment_hash)
    assert after is not None and after.state is InvoiceState.OPEN and after.held_msat == 0
    assert [h.state for h in after.htlcs] == [InvoiceHtlcState.CANCELED] * 2
    for htlc, session in ((a, sa), (b, sb)):
        code, _ = _code(_decide(registry, htlc, NOW + 122), session)
        assert code is FailureCode.MPP_TIMEOUT
    assert registry.expire_mpp_sets(NOW + 500) == []
    # The invoice stays open: a new attempt (here one part) pays it.
    c, _ = _part(rec, 9_000_000, 9_000_000, htlc_id=2)
    assert isinstance(_decide(registry, c, NOW + 130), Fulfill)


def test_configured_timeout_applies_to_hold_invoices_incomplete_sets_too(registry: InvoiceRegistry) -> None:
    rec = registry.add(now=NOW, value_msat=9_000_000)
    hold = registry.add_hold(now=NOW, payment_hash=os.urandom(32), value_msat=9_000_000)
    _accept(registry, _part(rec, 3_000_000, 9_000_000, htlc_id=0)[0])
    _accept(registry, _part(hold, 3_000_000, 9_000_000, htlc_id=1)[0])
    assert [h.htlc_id for h in registry.held_htlcs()] == [1]  # only hold invoices auto-cancel near expiry
    assert registry.expire_mpp_sets(NOW + 5, timeout_s=5) == []
    assert registry.expire_mpp_sets(NOW + 6, timeout_s=5) == [rec.payment_hash, hold.payment_hash]


def test_canceled_invoice_fails_held_parts_as_unknown_not_timeout(registry: InvoiceRegistry) -> None:
    rec = registry.add(now=NOW, value_msat=9_000_000)
    a, s = _part(rec, 3_000_000, 9_000_000, htlc_id=0)
    _accept(registry, a)
    canceled = registry.cancel(rec.payment_hash, NOW + 1)
    assert canceled.htlcs[0].state is InvoiceHtlcState.CANCELED
    assert "canceled" in _details(_decide(registry, a), s)


def test_held_parts_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "inv.sqlite"
    reg = InvoiceRegistry(path, NODE_KEY, PREFIX)
    done = reg.add(now=NOW, value_msat=9_000_000)
    stale = reg.add(now=NOW, value_msat=9_000_000)
    a, _ = _part(done, 4_000_000, 9_000_000, htlc_id=0)
    x, sx = _part(stale, 4_000_000, 9_000_000, htlc_id=1)
    _accept(reg, a)
    _accept(reg, x)
    reg.close()  # the process dies here

    reg = InvoiceRegistry(path, NODE_KEY, PREFIX)
    for htlc in (a, x):  # re-decided at start: still held
        d = _decide(reg, htlc)
        assert isinstance(d, Hold) and d.replay
    b, _ = _part(done, 5_000_000, 9_000_000, htlc_id=2)
    assert _accept(reg, b, NOW + 30).state is InvoiceState.SETTLED  # still completable
    assert reg.expire_mpp_sets(NOW + 121) == [stale.payment_hash]  # the other one times out
    assert _code(_decide(reg, x, NOW + 122), sx)[0] is FailureCode.MPP_TIMEOUT
    d = _decide(reg, a)
    assert isinstance(d, Fulfill) and d.replay
    reg.close()
