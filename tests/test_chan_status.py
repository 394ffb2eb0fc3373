"""The sans-IO channel status manager (htlc.chan_status): lnd's disable / enable timing, manual overrides.

Plus the gossip node carrying its decisions out (a channel_update with the disable bit, newer than the
last one; a manual disable kept in graph.sqlite), and the forwarder refusing a channel whose peer is away
with temporary_channel_failure carrying that disabled update.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_forwarding import HEIGHT, _at_origin, _channels, _incoming
from test_gossip_node import PAIR_TX, SCID, _exchange, _pair

from channels.wire import decode_message
from htlc.chan_status import (
    Announce,
    ChanStatus,
    ChanStatusAction,
    ChanStatusConfig,
    ChanStatusError,
    ChanStatusManager,
    NotTracked,
    parse_duration,
)
from htlc.failure import FailureCode
from htlc.forwarding import FailBack, Forwarder
from htlc.gossip import ChannelUpdate
from htlc.graph_store import GraphStore

CP, CP2 = "aa" * 32 + ":0", "bb" * 32 + ":1"
PEER, OTHER = "02" + "11" * 32, "03" + "22" * 32
CFG = ChanStatusConfig(disable_timeout_s=20, enable_timeout_s=19, sample_interval_s=1)


def manager(connected: bool = True, announced_disabled: bool = False) -> ChanStatusManager:
    m = ChanStatusManager(CFG)
    if connected:
        m.peer_changed(PEER, True, 0)
    m.track(CP, PEER, announced_disabled, 0)
    return m


def test_lnds_defaults_and_the_timeout_constraints() -> None:
    c = ChanStatusConfig()
    assert (c.disable_timeout_s, c.enable_timeout_s, c.sample_interval_s) == (1200, 1140, 60)
    for bad in ((10, 10, 1), (0, 0, 0), (20, -1, 1), (20, 19, 0)):
        with pytest.raises(ChanStatusError, match="chan-disable-timeout"):
            ChanStatusConfig(*bad)


def test_a_peer_away_for_the_disable_timeout_gets_its_channel_disabled_once() -> None:
    m = manager()
    assert m.peer_changed(PEER, False, 100) == []
    assert m.status(CP) is ChanStatus.PENDING_DISABLED
    assert m.tick(119.9) == []
    assert m.tick(120) == [Announce(CP, True)]
    assert m.tick(500) == [] and m.announced_disabled(CP)


def test_a_peer_back_before_the_disable_timeout_changes_nothing() -> None:
    m = manager()
    m.peer_changed(PEER, False, 100)
    m.peer_changed(PEER, True, 110)
    assert m.tick(1000) == [] and m.status(CP) is ChanStatus.ENABLED


def test_a_peer_back_is_enabled_after_staying_for_the_enable_timeout() -> None:
    m = manager()
    m.peer_changed(PEER, False, 0)
    assert m.tick(20) == [Announce(CP, True)]
    m.peer_changed(PEER, True, 30)
    assert m.tick(48) == []
    m.peer_changed(PEER, False, 48)  # flapping: gone again before the enable was due
    m.peer_changed(PEER, True, 50)
    assert m.tick(60) == [] and m.tick(68.9) == []
    assert m.tick(69) == [Announce(CP, False)] and m.status(CP) is ChanStatus.ENABLED


def test_only_the_peers_channels_are_touched() -> None:
    m = manager()
    m.peer_changed(OTHER, True, 0)
    m.track(CP2, OTHER, False, 0)
    m.peer_changed(OTHER, False, 5)
    assert m.tick(25) == [Announce(CP2, True)] and m.status(CP) is ChanStatus.ENABLED


def test_tracking_after_a_restart_starts_from_what_was_announced() -> None:
    m = ChanStatusManager(CFG)
    m.track(CP, PEER, announced_disabled=False, now=0)  # enabled, and the peer not (yet) connected
    assert m.status(CP) is ChanStatus.PENDING_DISABLED and m.tick(20) == [Announce(CP, True)]
    m2 = ChanStatusManager(CFG)
    m2.peer_changed(PEER, True, 0)
    m2.track(CP, PEER, announced_disabled=True, now=5)  # disabled, peer here since 0: enable at 19
    assert m2.tick(18) == [] and m2.tick(19) == [Announce(CP, False)]
    m3 = ChanStatusManager(CFG)
    m3.peer_changed(PEER, True, 0)
    m3.track(CP, PEER, announced_disabled=True, now=5, manually_disabled=True)
    assert m3.tick(1000) == [] and m3.status(CP) is ChanStatus.MANUALLY_DISABLED


def test_a_manual_disable_sticks_until_enable_or_auto() -> None:
    m = manager()
    assert m.request(CP, ChanStatusAction.DISABLE, 10) == [Announce(CP, True)]
    assert m.request(CP, ChanStatusAction.DISABLE, 11) == []  # already disabled: nothing new to announce
    m.peer_changed(PEER, False, 20)
    m.peer_changed(PEER, True, 30)
    assert m.tick(1000) == [] and m.status(CP) is ChanStatus.MANUALLY_DISABLED
    assert m.request(CP, ChanStatusAction.AUTO, 1000) == []  # back to automatic: the peer has been here long enough
    assert m.status(CP) is ChanStatus.DISABLED and m.tick(1000) == [Announce(CP, False)]
    assert m.request(CP, ChanStatusAction.AUTO, 1001) == []  # a no-op when not manually disabled
    m.request(CP, ChanStatusAction.DISABLE, 1002)
    assert m.request(CP, ChanStatusAction.ENABLE, 1003) == [Announce(CP, False)]
    assert m.request(CP, ChanStatusAction.ENABLE, 1004) == []


def test_a_manual_enable_needs_the_peer_and_a_known_channel() -> None:
    m = manager(connected=False, announced_disabled=True)
    with pytest.raises(ChanStatusError, match="not currently active"):
        m.request(CP, ChanStatusAction.ENABLE, 0)
    with pytest.raises(NotTracked):
        m.request(CP2, ChanStatusAction.DISABLE, 0)
    m.forget(CP)
    assert CP not in m and m.channel_points() == []


def test_a_manual_enable_of_a_pending_disable_cancels_it() -> None:
    m = manager()
    m.request(CP, ChanStatusAction.ENABLE, 0)
    m.peer_changed(PEER, False, 1)
    m.peer_changed(PEER, True, 2)
    assert m.request(CP, ChanStatusAction.ENABLE, 3) == [] and m.tick(100) == []


@pytest.mark.parametrize("text, seconds", [("20m", 1200), ("19m", 1140), ("1m30s", 90), ("500ms", 0.5),
                                           ("2", 2), ("1.5s", 1.5), ("1h", 3600)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "5 m", "1d", "nan", "inf", "1m 30s"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


# --- the gossip node carrying it out ------------------------------------------------------------------------


def _latest(g: Any, node_key_pub: bytes) -> ChannelUpdate:
    ann = g.store.channel_announcement(SCID)
    d = 0 if ann.node_id_1.to_bytes() == node_key_pub else 1
    u = g.store.channel_update(SCID, d)
    assert u is not None
    return u


async def test_the_gossip_node_disables_and_enables_with_fresh_updates(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from htlc.gossip_node import GossipNode
    from htlc.graph import ChannelGraph

    dx, x, _, y, y_at_x, x_at_y = await _pair(tmp_path, monkeypatch)
    x.status = ChanStatusManager(CFG)  # seconds-scale, as `canal channeld --chan-disable-timeout 20s` would
    await x._announce_channels(dx.tip_height)
    xid = dx.node_key.public_key().to_bytes()
    before = _latest(y, xid)
    assert not before.disabled
    await x.on_peer(y_at_x, True)  # type: ignore[arg-type]
    await x.on_peer(y_at_x, False)  # type: ignore[arg-type]
    dx.time += 20
    await x._announce_status(x.status.tick(dx.clock()), "detected")
    disabled = _latest(x, xid)
    assert disabled.disabled and disabled.timestamp > before.timestamp
    # The forwarder with the peer away (the channel inactive): our disabled update in its failure
    # (channel_update_bytes is what the payment node gives htlc.policy.outgoing_channels).
    ours = x.channel_update_bytes(SCID)
    assert ours == disabled.encode()
    htlc, processed = _incoming()
    fail = Forwarder().on_incoming(htlc, processed, HEIGHT, _channels(bc={"is_active": False, "channel_update": ours}))
    assert isinstance(fail, FailBack)
    _, failure = _at_origin(fail)
    assert failure.code == FailureCode.TEMPORARY_CHANNEL_FAILURE
    sent = decode_message(failure.channel_update)
    assert isinstance(sent, ChannelUpdate) and sent.disabled and sent.short_channel_id == SCID
    # Back for the enable timeout: enabled again, and Y learns both.
    dx.peers[y_at_x.pubkey_hex] = y_at_x
    await x.on_peer(y_at_x, True)  # type: ignore[arg-type]
    dx.time += 19
    await x._announce_status(x.status.tick(dx.clock()), "detected")
    await _exchange(x, y, y_at_x, x_at_y)
    enabled = _latest(y, xid)
    assert not enabled.disabled and enabled.timestamp > disabled.timestamp
    # A manual disable is durable: a restarted node keeps the channel disabled with its peer back.
    cp = f"{PAIR_TX.txid[::-1].hex()}:0"
    await x.update_chan_status(cp, ChanStatusAction.DISABLE)
    assert _latest(x, xid).disabled and GraphStore(tmp_path / "x" / "graph.sqlite").manually_disabled() == {cp}
    x.close()
    dx.message_handlers.clear()
    x2 = GossipNode(dx, ChannelGraph(), status=CFG)  # type: ignore[arg-type]
    await x2.on_peer(y_at_x, True)  # type: ignore[arg-type]
    dx.time += 100
    await x2._announce_status(x2.status.tick(dx.clock()), "detected")
    assert x2.status.status(cp) is ChanStatus.MANUALLY_DISABLED and _latest(x2, xid).disabled
    await x2.update_chan_status(cp, ChanStatusAction.AUTO)
    await x2._announce_status(x2.status.tick(dx.clock()), "detected")
    assert not _latest(x2, xid).disabled and x2.db.manually_disabled() == set()
    with pytest.raises(NotTracked):
        await x2.update_chan_status("cc" * 32 + ":0", ChanStatusAction.DISABLE)
    # a policy change keeps the status: the new update of a disabled channel is disabled too
    await x2.update_chan_status(cp, ChanStatusAction.DISABLE)
    from dataclasses import replace

    dx.channels.channels[b"\x07" * 32].channel.commitments.params.remote.htlc_minimum_msat = 1

    await x2.update_policy([cp], lambda p: replace(p, fee_base_msat=7))
    assert _latest(x2, xid).disabled and _latest(x2, xid).fee_base_msat == 7

