"""Unit tests of the gossip node's parts without daemons: the policy book, graph.sqlite, and GossipNode
driven by a fake daemon (fake chain, fake peers) — relay, warnings, pruning on spend, reload."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from test_bolt7 import CAPACITY, NOW, SCID, announcement, funding_output, node_ann, pub, update

from base_chain.crypto import PrivateKey
from base_chain.params import get_params
from base_chain.templates import p2wsh
from base_chain.tx import OutPoint, Transaction, TxIn, TxOut
from channels.features import Features
from channels.scripts import funding_script
from channels.wire import Message, WarningMessage
from htlc.gossip import GossipTimestampFilter
from htlc.gossip_node import GossipNode
from htlc.gossip_sync import GossipResult, GossipRow
from htlc.graph import ChannelGraph
from htlc.graph_service import _diameter
from htlc.graph_store import GraphStore
from htlc.policy import ForwardingPolicy, PolicyBook, PolicyError, replace_fields

# --- the policy book ---------------------------------------------------------------------------------------


def test_policy_defaults_are_lnds_and_the_maximum_is_capped_at_the_capacity() -> None:
    view = ForwardingPolicy().for_capacity(CAPACITY)
    assert (view.fee_base_msat, view.fee_proportional_millionths, view.cltv_expiry_delta) == (1000, 1, 80)
    assert view.htlc_maximum_msat == CAPACITY * 1000
    assert ForwardingPolicy(max_htlc_msat=10**15).for_capacity(CAPACITY).htlc_maximum_msat == CAPACITY * 1000
    assert ForwardingPolicy(max_htlc_msat=5000).for_capacity(CAPACITY).htlc_maximum_msat == 5000


def test_policy_book_global_and_per_channel_updates() -> None:
    book = PolicyBook()
    changed = book.update(["a:0", "b:1"], lambda p: replace_fields(p, fee_base_msat=5, fee_rate_ppm=7), True)
    assert set(changed) == {"a:0", "b:1"} and book.default.fee_base_msat == 5
    book.update(["a:0"], lambda p: replace_fields(p, time_lock_delta=40, max_htlc_msat=None))
    assert book.policy("a:0").time_lock_delta == 40 and book.policy("a:0").fee_base_msat == 5
    assert book.policy("b:1").time_lock_delta == 80 and book.policy("new:0").fee_rate_ppm == 7


@pytest.mark.parametrize("fields, reason", [
    ({"time_lock_delta": 17}, "too small"),
    ({"min_htlc_msat": 10, "max_htlc_msat": 5}, "below min_htlc_msat"),
    ({"fee_base_msat": -1}, "out of range"),
    ({"min_htlc_msat": 1 << 63}, "out of range"),  # graph.sqlite could not store it (OverflowError)
    ({"max_htlc_msat": 1 << 63}, "out of range"),
])
def test_a_refused_policy_changes_nothing(fields: dict[str, int], reason: str) -> None:
    book = PolicyBook()
    with pytest.raises(PolicyError, match=reason):
        book.update(["a:0"], lambda p: replace_fields(p, **fields), True)
    assert book.default == ForwardingPolicy() and not book.channels


# --- graph.sqlite ---------------------------------------------------------------------------------------------


def test_graph_store_round_trip(tmp_path: Path) -> None:
    db = GraphStore(tmp_path / "graph.sqlite")
    big_scid = (1 << 64) - 2  # above i64: stored as two's complement
    op = OutPoint(b"\x11" * 32, 3)
    rows = (GossipRow("channel_announcement", big_scid.to_bytes(8, "big"), b"ann", CAPACITY),
            GossipRow("channel_update", big_scid.to_bytes(8, "big") + b"\x00", b"upd"))
    db.apply(GossipResult(True, persist=rows), [(big_scid, op)])
    db.save_policies({"a:0": ForwardingPolicy(fee_base_msat=9)}, ForwardingPolicy(time_lock_delta=99))
    db.close()
    db = GraphStore(tmp_path / "graph.sqlite")
    assert sorted(db.rows()) == sorted(rows) and db.fundings() == {big_scid: op}
    book = db.policies()
    assert book.policy("a:0").fee_base_msat == 9 and book.default.time_lock_delta == 99
    db.apply(GossipResult(True, forget=(("channel_announcement", big_scid.to_bytes(8, "big")),)))
    assert [r.kind for r in db.rows()] == ["channel_update"] and db.fundings() == {}


def test_diameter() -> None:
    line = {b"a": {b"b"}, b"b": {b"a", b"c"}, b"c": {b"b", b"d"}, b"d": {b"c"}}
    assert _diameter(line) == 3 and _diameter({}) == 0


# --- GossipNode with a fake daemon ------------------------------------------------------------------------


FUNDING_TX = Transaction(version=2, inputs=[TxIn(OutPoint(b"\x22" * 32, 0), b"", 0xFFFFFFFF)],
                         outputs=[TxOut(CAPACITY, funding_output()[0]), TxOut(1, b"\x51")], locktime=0)  # SCID's output 0
SCID_HEIGHT, SCID_TX, SCID_OUT = SCID >> 40, (SCID >> 16) & 0xFFFFFF, SCID & 0xFFFF


class FakeChain:
    def __init__(self) -> None:
        self.spent: set[OutPoint] = set()

    async def height(self) -> int:
        return 200

    async def block_hash(self, height: int) -> str:
        return str(height)

    async def block(self, block_hash: str) -> Any:
        txs: list[Any] = [FUNDING_TX] * (SCID_TX + 1) if int(block_hash) == SCID_HEIGHT else []
        return SimpleNamespace(transactions=txs)

    async def get_txout(self, outpoint: OutPoint, include_mempool: bool = True) -> Any:
        return SimpleNamespace(found=outpoint not in self.spent)


@dataclass
class FakeLink:
    sent: list[Message] = field(default_factory=list)
    their_init: Any = None

    async def send(self, msg: Message) -> None:
        self.sent.append(msg)

    async def send_warning(self, text: str) -> None:
        self.sent.append(WarningMessage(bytes(32), text.encode()))


@dataclass
class FakePeer:
    pubkey_hex: str
    link: FakeLink = field(default_factory=FakeLink)


class FakeDaemon:
    def __init__(self, datadir: Path) -> None:
        self.params = get_params("regtest")
        self.datadir = datadir
        self.message_handlers: list[Any] = []
        self.peer_handlers: list[Any] = []
        self.block_handlers: list[Any] = []
        self.chain = FakeChain()
        self.peers: dict[str, FakePeer] = {}
        self.node_key = PrivateKey(0x5000)
        self.features = Features()
        self.channels = SimpleNamespace(channels={})
        self.alias, self.listen_port, self.tip_height = "fake", 0, 200
        self.time = NOW + 10

    def now(self) -> int:
        return self.time

    def clock(self) -> float:
        return float(self.time)


def _gossip(tmp_path: Path) -> tuple[FakeDaemon, GossipNode, FakePeer, FakePeer]:
    d = FakeDaemon(tmp_path)
    g = GossipNode(d, ChannelGraph(), trickle_s=0.01)  # type: ignore[arg-type]
    p1, p2 = FakePeer("01" * 33), FakePeer("02" * 33)
    d.peers = {p1.pubkey_hex: p1, p2.pubkey_hex: p2}
    return d, g, p1, p2


async def test_gossip_is_applied_persisted_and_relayed_to_the_other_peers(tmp_path: Path) -> None:
    d, g, p1, p2 = _gossip(tmp_path)
    await g.on_message(p2, GossipTimestampFilter(d.params.genesis_hash, 0, 0xFFFFFFFF))  # type: ignore[arg-type]
    for msg in (announcement(), update(0), update(1), node_ann(1)):
        await g.on_message(p1, msg)  # type: ignore[arg-type]
    assert not p1.link.sent  # nothing wrong, nothing to answer
    assert len(g.graph.policies(SCID)) == 2 and g.funding[SCID].txid == FUNDING_TX.txid
    await g.flush()
    assert [m.NAME for m in p2.link.sent] == ["channel_announcement", "channel_update", "channel_update",
                                              "node_announcement"]
    assert not p1.link.sent  # never back to where it came from

    # A restart rebuilds the graph from graph.sqlite.
    g.close()
    d2 = FakeDaemon(tmp_path)
    g2 = GossipNode(d2, ChannelGraph())  # type: ignore[arg-type]
    assert len(g2.graph.policies(SCID)) == 2 and g2.funding == g.funding
    assert g2.store.node_announcement(pub(1).to_bytes()) is not None


async def test_bad_signature_gets_a_warning_and_changes_nothing(tmp_path: Path) -> None:
    d, g, p1, p2 = _gossip(tmp_path)
    await g.on_message(p1, announcement())  # type: ignore[arg-type]
    forged = replace(update(0), fee_base_msat=0)  # the signature no longer covers these fields
    await g.on_message(p1, forged)  # type: ignore[arg-type]
    assert isinstance(p1.link.sent[-1], WarningMessage) and b"signature" in p1.link.sent[-1].data
    assert g.graph.policies(SCID) == []


async def test_missing_funding_output_is_refused_quietly(tmp_path: Path) -> None:
    d, g, p1, p2 = _gossip(tmp_path)
    d.chain.spent.add(OutPoint(FUNDING_TX.txid, SCID_OUT))
    await g.on_message(p1, announcement())  # type: ignore[arg-type]
    assert SCID not in g.store and not p1.link.sent


async def test_a_spent_funding_output_takes_the_channel_out_of_the_graph(tmp_path: Path) -> None:
    d, g, p1, p2 = _gossip(tmp_path)
    for msg in (announcement(), update(0), update(1)):
        await g.on_message(p1, msg)  # type: ignore[arg-type]
    spend = Transaction(version=2, inputs=[TxIn(OutPoint(FUNDING_TX.txid, SCID_OUT), b"", 0xFFFFFFFF)],
                        outputs=[TxOut(CAPACITY - 500, b"\x51")], locktime=0)
    await g.on_block(SimpleNamespace(transactions=[spend]), 300, True)
    assert g.graph.policies(SCID) == [] and g.store.is_spent(SCID)
    await g.on_block(SimpleNamespace(transactions=[]), 300 + 72, True)
    assert SCID not in g.store and SCID not in g.funding
    assert GraphStore(tmp_path / "graph.sqlite").rows() == []


async def test_a_new_peer_syncs_the_graph_with_channel_range_queries(tmp_path: Path) -> None:
    """Y (empty) connects to X (knows a channel): query_channel_range, reply, query_short_channel_ids, the gossip."""
    from channels.peer import DEFAULT_FEATURES

    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    dx, x, p1, _ = _gossip(tmp_path / "x")
    for msg in (announcement(), update(0), update(1), node_ann(1), node_ann(2)):
        await x.on_message(p1, msg)  # type: ignore[arg-type]
    dy, y, _, _ = _gossip(tmp_path / "y")
    for d in (dx, dy):
        d.features = DEFAULT_FEATURES
    init = SimpleNamespace(all_features=DEFAULT_FEATURES)
    y_at_x, x_at_y = FakePeer("0y" * 33, FakeLink(their_init=init)), FakePeer("0x" * 33, FakeLink(their_init=init))
    await y.on_peer(x_at_y, True)  # type: ignore[arg-type]
    names = []
    for _ in range(6):  # carry messages both ways until quiet
        to_x, x_at_y.link.sent = x_at_y.link.sent, []
        for m in to_x:
            names.append(m.NAME)
            await x.on_message(y_at_x, m)  # type: ignore[arg-type]
        to_y, y_at_x.link.sent = y_at_x.link.sent, []
        for m in to_y:
            names.append(m.NAME)
            await y.on_message(x_at_y, m)  # type: ignore[arg-type]
    assert names[:2] == ["query_channel_range", "gossip_timestamp_filter"]
    assert "reply_channel_range" in names and "query_short_channel_ids" in names
    assert names[-1] == "reply_short_channel_ids_end" and "warning" not in names
    assert len(y.graph.policies(SCID)) == 2 and y.store.node_announcement(pub(2).to_bytes()) is not None


def test_the_forwarder_sees_the_policy_book() -> None:
    """outgoing_channels (what the forwarder decides with) takes each channel's policy from the book."""
    from channels.state import ChannelState
    from htlc.policy import outgoing_channels

    def channel(txid: bytes) -> Any:
        params = SimpleNamespace(funding_outpoint=OutPoint(txid, 0), funding_sat=CAPACITY,
                                 remote=SimpleNamespace(channel_reserve_sat=1000))
        commitments = SimpleNamespace(params=params, sendable_msat=lambda: 499_000_000, add_refusal=None)
        ch = SimpleNamespace(state=ChannelState.NORMAL, commitments=commitments, short_channel_id=SCID + txid[0],
                             local_shutdown_script=None, remote_shutdown_script=None, connected=True,
                             awaiting_reestablish=False)
        return SimpleNamespace(channel=ch, channel_id=txid, peer=pub(2).to_bytes())

    a, b = channel(b"\x01" * 32), channel(b"\x02" * 32)
    book = PolicyBook()
    book.update([f"{'01' * 32}:0"], lambda p: replace_fields(p, fee_base_msat=7000, fee_rate_ppm=300,
                                                              time_lock_delta=144, max_htlc_msat=20_000))
    view = outgoing_channels([a, b], set(), book, lambda scid: b"upd%d" % scid)
    assert (view[0].policy.fee_base_msat, view[0].policy.fee_proportional_millionths,
            view[0].policy.cltv_expiry_delta, view[0].policy.htlc_maximum_msat) == (7000, 300, 144, 20_000)
    assert view[1].policy == ForwardingPolicy().for_capacity(CAPACITY)
    assert view[0].channel_update == b"upd%d" % (SCID + 1) and view[0].available_msat == 499_000_000


def test_route_hints_carry_the_policy_the_peer_announced() -> None:
    from channels.state import ChannelState
    from htlc.policy import route_hints_to_us

    peer = pub(2).to_bytes()
    ch = SimpleNamespace(state=ChannelState.NORMAL, commitments=object(), short_channel_id=SCID)
    mc = SimpleNamespace(channel=ch, peer=peer)
    default = route_hints_to_us([mc])[0][0]  # type: ignore[list-item]
    assert (default.fee_base_msat, default.fee_proportional_millionths, default.cltv_expiry_delta) == (1000, 1, 80)
    graph = ChannelGraph()
    graph.add_channel(peer, pub(1).to_bytes(), SCID, capacity_sat=CAPACITY, fee_base_msat=4000,
                      fee_proportional_millionths=25, cltv_expiry_delta=60)
    hint = route_hints_to_us([mc], graph)[0][0]  # type: ignore[list-item]
    assert (hint.pubkey, hint.fee_base_msat, hint.fee_proportional_millionths, hint.cltv_expiry_delta) == (
        peer, 4000, 25, 60)


def _our_channel(d: FakeDaemon, peer_key: PrivateKey, local_funding: PrivateKey, remote_funding: PrivateKey) -> Any:
    """A public channel of ``d`` at SCID, 97 blocks deep, as the gossip node reads ManagedChannel."""
    from channels.state import ChannelState

    keys = lambda k: SimpleNamespace(keys=SimpleNamespace(funding_pubkey=k.public_key()))
    params = SimpleNamespace(funding_outpoint=OutPoint(PAIR_TX.txid, 0), funding_sat=CAPACITY,
                             local=keys(local_funding), remote=keys(remote_funding))
    ch = SimpleNamespace(state=ChannelState.NORMAL, commitments=SimpleNamespace(params=params), short_channel_id=SCID,
                         config=SimpleNamespace(announce_channel=True))
    mc = SimpleNamespace(channel=ch, channel_id=b"\x07" * 32, peer=peer_key.public_key().to_bytes(), index=0,
                         watch=SimpleNamespace(confirmed_height=SCID_HEIGHT, spent_by=None))
    d.channels = SimpleNamespace(channels={mc.channel_id: mc}, find=lambda cid: mc if cid == mc.channel_id else None,
                                 secrets=lambda index: SimpleNamespace(funding_privkey=local_funding))
    return mc


KX, KY, FX, FY = PrivateKey(0x6001), PrivateKey(0x6002), PrivateKey(0x6101), PrivateKey(0x6102)
PAIR_TX = Transaction(version=2, inputs=[TxIn(OutPoint(b"\x33" * 32, 0), b"", 0xFFFFFFFF)], locktime=0, outputs=[
    TxOut(CAPACITY, p2wsh(funding_script(FX.public_key().to_bytes(), FY.public_key().to_bytes())))])


async def _exchange(x: GossipNode, y: GossipNode, y_at_x: FakePeer, x_at_y: FakePeer) -> None:
    for _ in range(4):
        await x.flush()
        await y.flush()
        for src, dst, peer in ((x_at_y, x, y_at_x), (y_at_x, y, x_at_y)):  # what Y sent to X goes to X
            msgs, src.link.sent = src.link.sent, []
            for m in msgs:
                await dst.on_message(peer, m)  # type: ignore[arg-type]


async def _pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...]:
    """Two gossip nodes X and Y with a public channel between them, connected and announced."""
    monkeypatch.setattr(FakeChain, "block", lambda self, h: _block_with(PAIR_TX, int(h)))
    nodes = []
    for name, key, peer_key, mine, theirs in (("x", KX, KY, FX, FY), ("y", KY, KX, FY, FX)):
        (tmp_path / name).mkdir()
        d = FakeDaemon(tmp_path / name)
        d.node_key, d.alias, d.listen_port = key, name, 9735
        _our_channel(d, peer_key, mine, theirs)
        nodes.append((d, GossipNode(d, ChannelGraph())))  # type: ignore[arg-type]
    (dx, x), (dy, y) = nodes
    y_at_x, x_at_y = FakePeer(KY.public_key().to_bytes().hex()), FakePeer(KX.public_key().to_bytes().hex())
    dx.peers, dy.peers = {y_at_x.pubkey_hex: y_at_x}, {x_at_y.pubkey_hex: x_at_y}
    await x.on_peer(y_at_x, True)  # type: ignore[arg-type]
    await y.on_peer(x_at_y, True)  # type: ignore[arg-type]
    assert [m.NAME for m in y_at_x.link.sent] == ["announcement_signatures"]
    await _exchange(x, y, y_at_x, x_at_y)
    return dx, x, dy, y, y_at_x, x_at_y


async def test_our_public_channel_is_announced_and_a_lost_policy_update_goes_out_after_restart(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dx, x, dy, y, y_at_x, x_at_y = await _pair(tmp_path, monkeypatch)
    for g in (x, y):
        assert len(g.graph.policies(SCID)) == 2
        assert {n.alias_text for n in (g.store.node_announcement(k.public_key().to_bytes()) for k in (KX, KY))
                if n is not None} == {"x", "y"}
    # X's policy changes, and X dies before its channel_update goes out: the restart sends it.
    x.policies.update([f"{PAIR_TX.txid[::-1].hex()}:0"], lambda p: replace_fields(p, fee_base_msat=4321))
    x.db.save_policies(x.policies.channels)
    x.close()
    dx.message_handlers.clear()
    x2 = GossipNode(dx, ChannelGraph())  # type: ignore[arg-type]
    await x2._announce_channels(dx.tip_height)
    await _exchange(x2, y, y_at_x, x_at_y)
    assert y.graph.policy(SCID, KX.public_key().to_bytes()).fee_base_msat == 4321  # type: ignore[union-attr]


async def _block_with(tx: Transaction, height: int) -> Any:
    return SimpleNamespace(transactions=[tx] * (SCID_TX + 1) if height == SCID_HEIGHT else [])


async def test_our_update_is_refreshed_before_others_forget_it_and_stale_channels_are_pruned(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dx, x, dy, y, y_at_x, x_at_y = await _pair(tmp_path, monkeypatch)
    first = y.store.channel_update(SCID, x._direction(next(iter(dx.channels.channels.values()))))
    assert first is not None
    for d in (dx, dy):
        d.time += 13 * 24 * 3600 + 60
    await x.on_block(SimpleNamespace(transactions=[]), 201, True)  # X refreshes, Y does not (its node is "down")
    await _exchange(x, y, y_at_x, x_at_y)
    refreshed = y.store.channel_update(SCID, first.direction)
    assert refreshed is not None and refreshed.timestamp > first.timestamp
    dx.time += 2 * 24 * 3600  # Y's own direction is now older than two weeks at X: X forgets the channel
    x.policies = PolicyBook()
    dx.channels.channels.clear()  # (and X's channel is gone, so X does not announce it again)
    await x.on_block(SimpleNamespace(transactions=[]), 202, True)
    assert SCID not in x.store and x.graph.policies(SCID) == []


async def test_replies_without_end_do_not_grow_the_query_queue(tmp_path: Path) -> None:
    """A peer flooding reply_channel_range (unknown channels) gets at most MAX_PENDING_QUERIES queries queued."""
    from htlc.gossip import EncodedShortIds
    from htlc.gossip_node import MAX_PENDING_QUERIES
    from htlc.gossip_queries import ReplyChannelRange

    d, g, p1, _ = _gossip(tmp_path)
    for i in range(MAX_PENDING_QUERIES + 50):
        reply = ReplyChannelRange(d.params.genesis_hash, 0, 1000, 1, EncodedShortIds((SCID + 1 + i,)))
        await g.on_message(p1, reply)  # type: ignore[arg-type]
    assert len(g._queries[p1.pubkey_hex]) == MAX_PENDING_QUERIES
    assert [m.NAME for m in p1.link.sent] == ["query_short_channel_ids"]  # one at a time


async def test_a_channel_refused_by_a_global_policy_update_keeps_its_policy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """lnd: a global update refused for one channel (max HTLC above its capacity) leaves that channel as it was;
    the new default must not reach it silently (no channel_update for it went out)."""
    dx, x, *_ = await _pair(tmp_path, monkeypatch)
    cp = f"{PAIR_TX.txid[::-1].hex()}:0"
    dx.channels.channels[b"\x07" * 32].channel.commitments.params.remote.htlc_minimum_msat = 1
    changed, refused = await x.update_policy(
        None, lambda p: replace_fields(p, fee_base_msat=5000, max_htlc_msat=CAPACITY * 1000 + 1))
    assert changed == [] and cp in refused
    assert x.policies.default.fee_base_msat == 5000
    assert x.policies.policy(cp) == ForwardingPolicy()
    assert GraphStore(tmp_path / "x" / "graph.sqlite").policies().policy(cp) == ForwardingPolicy()


@pytest.mark.parametrize("rate", [float("nan"), float("inf"), -0.5])
def test_update_channel_policy_refuses_a_fee_rate_that_is_not_a_number(rate: float) -> None:
    """A NaN or infinite fee_rate is INVALID_ARGUMENT, not an exception out of round() (UNKNOWN)."""
    import grpc
    import trio

    from channels.service import LnRpcError
    from htlc.graph_service import GraphLightningMixin
    from proto import lightning_pb2 as ln

    class Servicer(GraphLightningMixin):
        def run(self, context: Any, fn: Any) -> Any:
            try:
                return trio.run(fn)
            except LnRpcError as e:
                return e

    answer = Servicer(SimpleNamespace()).UpdateChannelPolicy(ln.PolicyUpdateRequest(fee_rate=rate, **{"global": True}), None)
    assert isinstance(answer, LnRpcError) and answer.code is grpc.StatusCode.INVALID_ARGUMENT
