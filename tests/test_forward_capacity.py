"""The forwarder's view of an outgoing channel (htlc.policy.outgoing_channels) is the channel's own check.

``Commitments.add_refusal`` runs ``send_add``'s checks without adding: a forward
the channel would refuse (commitment fee with the new HTLC, the peer's
max_accepted_htlcs / max_htlc_value_in_flight_msat, dust exposure) is refused up
front with ``temporary_channel_failure`` carrying our channel_update, never
attempted. Real channels (two cores back to back), real onions.
"""

from __future__ import annotations

import pytest
from test_channel_state import ONION, Pair, payment_hash
from test_forwarding import HEIGHT, KEY_C, _at_origin, _incoming

from channels import dust
from channels.effects import ChannelError
from channels.manager import ManagedChannel
from channels.opening import ChannelConfig
from htlc.failure import FailureCode, FailureMessage
from htlc.forwarding import FailBack, Forward, Forwarder, OutgoingChannel
from htlc.policy import default_policy, outgoing_channels

PEER = KEY_C.public_key().to_bytes()
UPDATE = b"\x01\x02our channel_update"
CLTV_OUT = HEIGHT + 100


def _view(pair: Pair) -> list[OutgoingChannel]:
    mc = ManagedChannel(channel=pair.a.channel, peer=PEER, index=0)
    return outgoing_channels([mc], {PEER.hex()}, channel_update=lambda scid: UPDATE)


def _decide(pair: Pair, amt: int, view: list[OutgoingChannel] | None = None) -> object:
    view = _view(pair) if view is None else view
    scid = view[0].short_channel_id
    fee = default_policy(1).fee_msat(amt)
    htlc, processed = _incoming(amount=amt + fee, cltv=CLTV_OUT + 80, amt_out=amt, cltv_out=CLTV_OUT, scid=scid)
    return Forwarder().on_incoming(htlc, processed, HEIGHT, view)


def _assert_refused_up_front(pair: Pair, amt: int, why: str) -> None:
    decision = _decide(pair, amt)
    assert isinstance(decision, FailBack), decision
    assert why in decision.why
    assert _at_origin(decision) == (1, FailureMessage(FailureCode.TEMPORARY_CHANNEL_FAILURE, channel_update=UPDATE))
    with pytest.raises(ChannelError, match=why):  # the channel would have refused it too
        pair.a.channel.add_htlc(amt, payment_hash(99), CLTV_OUT, ONION)


def _balance_less_reserve(pair: Pair) -> int:
    c = pair.a.channel.commitments
    assert c is not None
    return pair.a.channel.local_balance_msat - c.params.remote.channel_reserve_sat * 1000


def test_commitment_fee_of_the_new_htlc_is_counted() -> None:
    pair = Pair()  # a funds: it pays the commitment fee and keeps the fee spike buffer
    amt = _balance_less_reserve(pair)  # what "balance minus reserve" said could go
    _assert_refused_up_front(pair, amt, "insufficient balance")
    view = _view(pair)
    assert view[0].available_msat < amt
    fits = view[0].available_msat
    assert view[0].refusal(fits) is None
    assert isinstance(_decide(pair, fits, view), Forward)
    pair.a.channel.add_htlc(fits, payment_hash(1), CLTV_OUT, ONION)  # and the channel takes it


def test_peer_slot_limit_is_counted() -> None:
    pair = Pair(config_b=ChannelConfig(max_accepted_htlcs=2))
    for n in range(2):
        pair.pay(pair.a, 5_000_000, n)
    _assert_refused_up_front(pair, 5_000_000, "accepts at most 2 HTLCs")


def test_peer_in_flight_limit_is_counted() -> None:
    pair = Pair(config_b=ChannelConfig(max_htlc_value_in_flight_msat=20_000_000))
    pair.pay(pair.a, 15_000_000, 0)
    _assert_refused_up_front(pair, 6_000_000, "max_htlc_value_in_flight_msat")
    assert isinstance(_decide(pair, 5_000_000), Forward)


def test_dust_exposure_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    pair = Pair()
    c = pair.a.channel.commitments
    assert c is not None
    small = (max(c.params.local.dust_limit_sat, c.params.remote.dust_limit_sat) - 1) * 1000  # trimmed everywhere
    monkeypatch.setattr(dust, "MAX_DUST_HTLC_EXPOSURE_MSAT", 2 * small)
    for n in range(2):
        pair.pay(pair.a, small, n)
    _assert_refused_up_front(pair, small, "dust HTLC exposure")
    assert isinstance(_decide(pair, 50_000_000), Forward)  # an HTLC with an output adds no dust


def test_refusal_agrees_with_send_add() -> None:
    pair = Pair(config_b=ChannelConfig(max_htlc_value_in_flight_msat=400_000_000))
    c = pair.a.channel.commitments
    assert c is not None
    edge = c.sendable_msat()
    for amt in (0, 1, 1_000, edge - 1, edge, edge + 1, _balance_less_reserve(pair), 400_000_001, 1 << 64):
        refusal = c.add_refusal(amt)
        try:
            c.send_add(amt, payment_hash(7), CLTV_OUT, ONION)
        except ChannelError as e:
            assert refusal == e.reason, amt
        else:
            assert refusal is None, amt
            c.local_changes.proposed.pop()  # undo the probe add
            c.local_next_htlc_id -= 1


def test_shutting_down_or_unlinked_channel_is_inactive() -> None:
    pair = Pair()
    pair.a.channel.connected = False
    decision = _decide(pair, 1_000_000)
    assert isinstance(decision, FailBack) and "cannot take HTLCs now" in decision.why
