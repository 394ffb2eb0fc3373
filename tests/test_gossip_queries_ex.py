"""gossip_queries_ex between two gossip nodes (htlc.gossip_node over htlc.gossip_sync), no sockets.

The node advertises bits 10/11 (init and node_announcement); on connect it asks for timestamps and
checksums, and a node whose graph is up to date queries nothing; one changed update is asked for by
itself (the per-channel query flag of its direction). Without the peer's gossip_queries_ex: plain queries.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import vectors
from test_bolt7 import NOW, SCID, announcement, funding_output, node_ann, update
from test_gossip_node import FakeDaemon, FakeLink, FakePeer

from channels.features import Feature, Features
from channels.peer import DEFAULT_FEATURES
from channels.wire import decode_message
from htlc.gossip import (
    QUERY_FLAG_CHANNEL_UPDATE_2,
    QUERY_FLAGS_ALL,
    QUERY_OPTION_CHECKSUMS,
    QUERY_OPTION_TIMESTAMPS,
    QueryChannelRange,
    QueryShortChannelIds,
    ReplyChannelRange,
    ReplyShortChannelIdsEnd,
    channel_update_checksum,
)
from htlc.gossip_node import FILTER_SLACK_S, GossipNode
from htlc.gossip_queries import GossipTimestampFilter
from htlc.gossip_sync import GossipConfig, GossipStore
from htlc.graph import ChannelGraph, short_channel_id_from_parts

SCID2 = SCID - (1 << 16)  # the block's transaction before: the fake chain has the same funding output there


def _gossip(tmp_path: Path) -> tuple[Any, GossipNode, FakePeer, FakePeer]:
    """A gossip node on a daemon with Canal's default features (as channels.peer gives them)."""
    d = FakeDaemon(tmp_path)
    d.features = DEFAULT_FEATURES
    g = GossipNode(d, ChannelGraph(), trickle_s=0.01)  # type: ignore[arg-type]
    p1, p2 = FakePeer("01" * 33), FakePeer("02" * 33)
    d.peers = {p1.pubkey_hex: p1, p2.pubkey_hex: p2}
    return d, g, p1, p2


async def _two(tmp_path: Path, *, their_ex: bool = True) -> tuple[Any, ...]:
    """X knows two channels; Y knows the same (or less); both with Canal's features (+ what the gossip adds)."""
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    dx, x, p1, _ = _gossip(tmp_path / "x")
    dy, y, q1, _ = _gossip(tmp_path / "y")
    assert dx.features.has(Feature.gossip_queries_ex)  # the gossip node added it to the node's features
    theirs = DEFAULT_FEATURES.set_optional(Feature.gossip_queries_ex) if their_ex else DEFAULT_FEATURES
    y_at_x = FakePeer("0y" * 33, FakeLink(their_init=SimpleNamespace(all_features=theirs)))
    x_at_y = FakePeer("0x" * 33, FakeLink(their_init=SimpleNamespace(all_features=theirs)))
    return dx, x, p1, dy, y, q1, y_at_x, x_at_y


async def _feed(node: Any, peer: Any, msgs: list[Any]) -> None:
    for m in msgs:
        await node.on_message(peer, m)


async def _sync(x: Any, y: Any, y_at_x: Any, x_at_y: Any) -> list[Any]:
    """Y connects to X; carry messages both ways until quiet; every message, in order."""
    seen: list[Any] = []
    await y.on_peer(x_at_y, True)
    for _ in range(6):
        to_x, x_at_y.link.sent = x_at_y.link.sent, []
        seen += to_x
        await _feed(x, y_at_x, to_x)
        to_y, y_at_x.link.sent = y_at_x.link.sent, []
        seen += to_y
        await _feed(y, x_at_y, to_y)
    return seen


GRAPH = [announcement(), update(0), update(1), announcement(SCID2), update(0, scid=SCID2), update(1, scid=SCID2),
         node_ann(1), node_ann(2)]


async def test_an_up_to_date_node_asks_for_nothing(tmp_path: Path) -> None:
    _, x, p1, dy, y, q1, y_at_x, x_at_y = await _two(tmp_path)
    await _feed(x, p1, GRAPH)
    await _feed(y, q1, GRAPH)
    seen = await _sync(x, y, y_at_x, x_at_y)
    query = next(m for m in seen if isinstance(m, QueryChannelRange))
    assert query.query_option_flags == QUERY_OPTION_TIMESTAMPS | QUERY_OPTION_CHECKSUMS
    reply = next(m for m in seen if isinstance(m, ReplyChannelRange))
    assert reply.short_channel_ids == (SCID2, SCID) and reply.timestamps is not None and reply.checksums is not None
    assert not any(isinstance(m, QueryShortChannelIds) for m in seen)
    filt = next(m for m in seen if isinstance(m, GossipTimestampFilter))
    assert filt.first_timestamp == dy.now()  # the range replies covered the past: gossip from now on
    assert [m.NAME for m in seen if m.NAME in ("channel_update", "channel_announcement")] == []


async def test_one_changed_update_is_asked_for_alone(tmp_path: Path) -> None:
    _, x, p1, _, y, q1, y_at_x, x_at_y = await _two(tmp_path)
    await _feed(x, p1, GRAPH)
    await _feed(y, q1, GRAPH)
    newer = update(1, scid=SCID2, timestamp=GRAPH[5].timestamp + 5, fee_base_msat=7)
    await _feed(x, p1, [newer])  # Y was away when this came
    seen = await _sync(x, y, y_at_x, x_at_y)
    queries = [m for m in seen if isinstance(m, QueryShortChannelIds)]
    assert len(queries) == 1 and queries[0].short_channel_ids == (SCID2,)
    assert queries[0].query_flags is not None and queries[0].query_flags.values == (QUERY_FLAG_CHANNEL_UPDATE_2,)
    answers = [m for m in seen if m.NAME in ("channel_announcement", "channel_update", "node_announcement")]
    assert answers == [newer]
    assert y.store.channel_update(SCID2, 1) == newer


async def test_a_re_signed_update_with_the_same_content_is_not_fetched(tmp_path: Path) -> None:
    """A newer timestamp with an equal checksum (a keep-alive refresh) is not worth a query (BOLT 7 SHOULD)."""
    _, x, p1, _, y, q1, y_at_x, x_at_y = await _two(tmp_path)
    await _feed(x, p1, GRAPH)
    await _feed(y, q1, GRAPH)
    await _feed(x, p1, [update(0, timestamp=GRAPH[1].timestamp + 60)])
    seen = await _sync(x, y, y_at_x, x_at_y)
    assert not any(isinstance(m, QueryShortChannelIds) for m in seen)


async def test_without_the_peers_gossip_queries_ex_plain_queries(tmp_path: Path) -> None:
    _, x, p1, dy, y, q1, y_at_x, x_at_y = await _two(tmp_path, their_ex=False)
    await _feed(x, p1, GRAPH)
    await _feed(y, q1, GRAPH[:3])  # Y lacks SCID2
    seen = await _sync(x, y, y_at_x, x_at_y)
    query = next(m for m in seen if isinstance(m, QueryChannelRange))
    assert query.query_option_flags is None
    queries = [m for m in seen if isinstance(m, QueryShortChannelIds)]
    assert [q.short_channel_ids for q in queries] == [(SCID2,)] and queries[0].query_flags is None
    filt = next(m for m in seen if isinstance(m, GossipTimestampFilter))
    assert filt.first_timestamp == dy.now() - FILTER_SLACK_S
    assert len(y.graph.policies(SCID2)) == 2


async def test_our_node_announcement_advertises_gossip_queries_ex(tmp_path: Path) -> None:
    d, _, _, _ = _gossip(tmp_path)
    assert d.features.is_optional(Feature.gossip_queries_ex) and d.features.has(Feature.gossip_queries)
    assert Features.from_bytes(d.features.to_bytes()).has(Feature.gossip_queries_ex)
    assert not DEFAULT_FEATURES.set_optional(Feature.gossip_queries_ex).missing_dependencies()
    assert Features.of(optional=[Feature.gossip_queries_ex]).missing_dependencies()  # BOLT 9: needs gossip_queries
    bare = FakeDaemon(tmp_path)
    GossipNode(bare, ChannelGraph())  # type: ignore[arg-type]
    assert not bare.features  # no gossip_queries here: no gossip_queries_ex either


# --- the store answering (and asking with) the extended-queries vectors' messages ------------------------------

VECTORS: list[dict[str, Any]] = vectors.load_json("bolts", "bolt07", "extended-queries.json")


def _vector(index: int) -> Any:
    return decode_message(bytes.fromhex(VECTORS[index]["hex"]))


VECTOR_CHAIN = bytes.fromhex(VECTORS[0]["msg"]["chainHash"])
"""The vectors' chain_hash: regtest's genesis hash in display order (BOLT 7 wants the internal order)."""


def _store_with(*channels: tuple[int, int, int]) -> GossipStore:
    """A store of the vectors' chain holding ``(short_channel_id, timestamp_1, timestamp_2)`` channels
    (0: no update that way)."""
    store = GossipStore(VECTOR_CHAIN, config=GossipConfig(stale_after_s=None))
    for scid, t1, t2 in channels:
        assert store.handle(announcement(scid, chain=VECTOR_CHAIN), NOW, lambda _s: funding_output()).accepted
        for d, t in ((0, t1), (1, t2)):
            if t:
                u = update(d, timestamp=t, scid=scid, chain_hash=VECTOR_CHAIN)
                assert store.handle(u, t, lambda _s: None).accepted
    return store


def test_the_vectors_query_channel_range_gets_timestamps_and_checksums() -> None:
    query = _vector(1)  # blocks 35000..35099, WANT_TIMESTAMPS | WANT_CHECKSUMS
    assert isinstance(query, QueryChannelRange) and query.wants_timestamps and query.wants_checksums
    inside, outside = short_channel_id_from_parts(35050, 3, 0), short_channel_id_from_parts(35100, 0, 0)
    store = _store_with((inside, NOW, 0), (outside, NOW, NOW))
    result = store.handle(query, NOW, lambda _s: None)
    (reply,) = result.reply
    assert isinstance(reply, ReplyChannelRange) and reply.short_channel_ids == (inside,)
    assert reply.timestamps is not None and reply.timestamps.values == ((NOW, 0),)
    mine = store.channel_update(inside, 0)
    assert mine is not None and reply.checksums == ((channel_update_checksum(mine), 0),)
    assert decode_message(reply.encode()) == reply


def test_the_vectors_query_short_channel_ids_flags_are_honoured() -> None:
    for index in (8, 9):  # flags [1, 2, 4]: only the third id is ours, and it asks for channel_update 2 alone
        query = _vector(index)
        assert isinstance(query, QueryShortChannelIds)
        ours = query.short_channel_ids[2]
        store = _store_with((ours, NOW, NOW + 1))
        reply = store.handle(query, NOW + 1, lambda _s: None).reply
        assert reply == (store.channel_update(ours, 1), ReplyShortChannelIdsEnd(VECTOR_CHAIN, 1))


def test_the_vectors_reply_channel_range_makes_us_ask_for_what_is_newer_there() -> None:
    reply = _vector(4)  # three ids with timestamps and checksums
    assert isinstance(reply, ReplyChannelRange) and reply.timestamps is not None
    same_or_older, mixed, unknown = reply.short_channel_ids
    (t1a, t2a), (t1b, t2b), _ = reply.timestamps.values
    store = _store_with((same_or_older, t1a + 10, t2a), (mixed, t1b, t2b - 10))
    query = store.query_for_reply(reply, with_flags=True)
    assert query is not None and query.short_channel_ids == (mixed, unknown)
    assert query.query_flags is not None and query.query_flags.values == (QUERY_FLAG_CHANNEL_UPDATE_2, QUERY_FLAGS_ALL)
    plain = store.query_for_reply(reply, with_flags=False)
    assert plain is not None and plain.short_channel_ids == (unknown,) and plain.query_flags is None
