"""max_dust_htlc_exposure_msat (channels/dust.py): an add that would put too much in trimmed HTLCs is refused."""

from __future__ import annotations

import pytest
from test_channel_state import FEATURES, FEATURES_NO_ANCHORS, Pair

from channels import dust
from channels.effects import ChannelError


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
