"""max_dust_htlc_exposure_msat (channels/dust.py): an add that would put too much in trimmed HTLCs is refused;
an incoming one is failed back with temporary_channel_failure (lnd's link)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_channel_state import FEATURES, FEATURES_NO_ANCHORS, Pair
from test_forwarding import HEIGHT, _at_origin, _channels, _incoming
from test_hold_invoices import NODE_KEY, NODE_PUB, NOW, PREFIX, _accept, _decide, _pay

from channels import dust
from channels.effects import ChannelError
from channels.messages import UpdateAddHtlc
from channels.specs import Htlc, Spec, commit_tx_fee_msat
from channels.transactions import (
    ANCHOR_OUTPUT_SAT,
    ChannelType,
    HtlcDirection,
    commitment_fee_sat,
    htlc_is_trimmed,
    htlc_success_fee_sat,
    htlc_timeout_fee_sat,
)
from htlc.failure import FailureCode, FailureMessage, decode_failure
from htlc.forwarding import FailBack, Forward, Forwarder
from htlc.invoices import InvoiceRegistry
from htlc.receive import Fail, Hold, decide


@pytest.mark.parametrize("features", [FEATURES, FEATURES_NO_ANCHORS], ids=["anchors", "static_remotekey"])
def test_dust_adds_refused_over_the_limit(monkeypatch: pytest.MonkeyPatch, features: object) -> None:
    pair = Pair(features_a=features, features_b=features)
    a = pair.a
    c = a.channel.commitments
    assert c is not None
    dust_limit = max(c.params.local.dust_limit_sat, c.params.remote.dust_limit_sat)
    small = (dust_limit - 1) * 1000  # trimmed in both commitments, whatever the second-stage fee
    monkeypatch.setattr(dust, "MAX_DUST_HTLC_EXPOSURE_MSAT", 3 * small)
    for n in range(3):
        pair.pay(a, small, n)
    with pytest.raises(ChannelError, match="dust HTLC exposure"):
        a.channel.add_htlc(small, bytes([9]) * 32, 600_000, bytes(1366))
    # a big HTLC has an output: no dust, no limit
    pair.pay(a, 100_000_000, 4)
    pair.commit(a)
    pair.settle()
    spec = c.local_commit.spec
    assert dust.dust_exposure_msat(spec, c.params.local.dust_limit_sat, a.channel.channel_type) == 3 * small
    assert dust.check_dust_exposure(spec, c.params.local.dust_limit_sat, spec, c.params.local.dust_limit_sat,
                                    a.channel.channel_type, limit_msat=3 * small) is None
    assert "over max_dust_htlc_exposure_msat" in (dust.check_dust_exposure(
        spec, c.params.local.dust_limit_sat, spec, c.params.local.dust_limit_sat, a.channel.channel_type,
        limit_msat=3 * small - 1) or "")


def test_lnd_default() -> None:
    assert dust.DEFAULT_MAX_DUST_HTLC_EXPOSURE_MSAT == 500_000 * 1000  # lnd's dust-threshold, 500,000 sat


# --- dust exposure of HTLCs we receive (lnd's link fails them back) -----------------------------------------------


def _dust_pair(monkeypatch: pytest.MonkeyPatch, n: int) -> tuple[Pair, int]:
    """a offers b `n` dust HTLCs (a's own limit lets them through), committed both ways; the dust amount."""
    pair = Pair()
    c = pair.a.channel.commitments
    assert c is not None
    small = (max(c.params.local.dust_limit_sat, c.params.remote.dust_limit_sat) - 1) * 1000
    monkeypatch.setattr(dust, "MAX_DUST_HTLC_EXPOSURE_MSAT", 10 * small)
    for i in range(n):
        pair.pay(pair.a, small, i)
    pair.pay(pair.a, 100_000_000, n)  # an HTLC with an output: never dust
    pair.commit(pair.a)
    pair.settle()
    assert [h.id for h in pair.b.channel.unresolved_incoming_htlcs()] == list(range(n + 1))
    return pair, small


def test_incoming_dust_over_the_limit_is_refused_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    pair, small = _dust_pair(monkeypatch, 3)
    cb = pair.b.channel.commitments
    assert cb is not None
    refusals = [dust.incoming_dust_refusal(cb, i, limit_msat=2 * small) for i in range(4)]
    assert refusals[:2] == [None, None]  # the first two fit (later ones are judged in their turn)
    assert "incoming HTLC 2" in (refusals[2] or "") and "over max_dust_htlc_exposure_msat" in (refusals[2] or "")
    assert refusals[3] is None  # not dust: no limit
    assert dust.incoming_dust_refusal(cb, 2, limit_msat=3 * small) is None
    monkeypatch.setattr(dust, "MAX_DUST_HTLC_EXPOSURE_MSAT", 2 * small)  # the node-wide default applies
    assert dust.incoming_dust_refusal(cb, 2) == refusals[2]
    # failing one back makes room for the next (it is leaving), and the channel stays open
    pair.do(pair.b, pair.b.channel.fail_htlc(0, b"dust"))
    assert dust.incoming_dust_refusal(cb, 2) is None
    assert pair.errors() == []


def test_refused_incoming_dust_fails_back_with_temporary_channel_failure() -> None:
    htlc, processed = _incoming()
    refused = Forwarder().on_incoming(htlc, processed, HEIGHT, _channels(), incoming_refusal="dust exposure")
    assert isinstance(refused, FailBack) and refused.why == "dust exposure"
    assert _at_origin(refused) == (1, FailureMessage(FailureCode.TEMPORARY_CHANNEL_FAILURE, channel_update=b""))
    assert isinstance(Forwarder().on_incoming(htlc, processed, HEIGHT, _channels()), Forward)


def test_refused_incoming_dust_payment_fails_but_replays_do_not(tmp_path: Path) -> None:
    registry = InvoiceRegistry(tmp_path / "inv.sqlite", NODE_KEY, PREFIX)
    rec = registry.add(now=NOW, value_msat=500_000)
    htlc, session = _pay(rec, 500_000, 500_000)
    d = decide(htlc, node_key=NODE_KEY, height=500, now=NOW, lookup=registry.lookup, incoming_refusal="dust")
    assert isinstance(d, Fail) and d.why == "dust"
    index, msg = decode_failure(session, [NODE_PUB], d.reason)
    assert (index, FailureCode(msg.code)) == (0, FailureCode.TEMPORARY_CHANNEL_FAILURE)
    # a part already held is held again: the refusal only ever applies to an HTLC not yet decided
    part, _ = _pay(rec, 200_000, 500_000, htlc_id=1)
    _accept(registry, part, _decide(registry, part))
    again = decide(part, node_key=NODE_KEY, height=500, now=NOW, lookup=registry.lookup, incoming_refusal="dust")
    assert isinstance(again, Hold) and again.replay
    registry.close()


@pytest.mark.parametrize("channel_type", [ChannelType.STATIC_REMOTEKEY, ChannelType.ANCHORS])
def test_trimmed_thresholds_agree_with_htlc_is_trimmed(channel_type: ChannelType) -> None:
    """dust_exposure_msat and the commitment fee's HTLC count compare against one threshold per direction:
    the same HTLCs as BOLT 3's per-HTLC rule, at every amount around the thresholds."""
    feerate, dust_limit = 2_531, 546
    amounts = [a for base in (dust_limit, dust_limit + htlc_timeout_fee_sat(feerate, channel_type),
                              dust_limit + htlc_success_fee_sat(feerate, channel_type))
               for a in range(base * 1000 - 1001, base * 1000 + 1002, 250)]
    htlcs = tuple(Htlc(direction, UpdateAddHtlc(bytes(32), n, amount, bytes(32), 500_000, bytes(1366)))
                  for n, amount in enumerate(amounts) for direction in HtlcDirection)
    spec = Spec(10**9, 10**9, feerate, htlcs)
    trimmed = [h for h in htlcs if htlc_is_trimmed(h.commitment_htlc(), feerate, dust_limit, channel_type)]
    assert 0 < len(trimmed) < len(htlcs)
    assert dust.dust_exposure_msat(spec, dust_limit, channel_type) == sum(h.amount_msat for h in trimmed)
    untrimmed = len(htlcs) - len(trimmed)
    anchors = 2 * ANCHOR_OUTPUT_SAT if channel_type.anchors else 0
    assert commit_tx_fee_msat(spec, dust_limit, channel_type) == (
        commitment_fee_sat(feerate, untrimmed, channel_type) + anchors) * 1000
