"""The gossip node: BOLT 7 between `canal channeld` daemons (the trio layer around :class:`GossipStore`).

It registers on the daemon's hooks and drives the sans-IO store:

* ``message_handlers``: each gossip message from a peer is validated and applied
  by :meth:`GossipStore.handle` (a ``channel_announcement``'s funding output is
  fetched from the chain node first: the store's lookup is synchronous); what
  the result says is carried out in order: rows written to ``graph.sqlite``,
  a ``warning`` for bad signatures or malformed content, replies to queries,
  and the ``forward`` list queued for the staggered broadcast. Malformed bytes
  never get here: the peer link closes that connection (BOLT 1).
* the staggered broadcast: every ``trickle_s`` seconds the queued gossip goes to
  every other peer that asked for it (a ``gossip_timestamp_filter``; a peer
  without ``gossip_queries`` gets everything), never back to where it came from.
* ``peer_handlers``: on connect (peer with ``gossip_queries``) we sync as lnd
  does: ``query_channel_range`` over all blocks, then ``query_short_channel_ids``
  (with per-channel query flags under ``gossip_queries_ex``) for what the replies
  name that we lack or hold older, one query at a time; and a
  ``gossip_timestamp_filter`` for the gossip made from now (from an hour ago
  with a peer without ``gossip_queries_ex``, whose replies carry no timestamps).
  We also re-send the ``announcement_signatures`` of our public channels
  (BOLT 7 / BOLT 2 reestablish).
* ``block_handlers``: a spent funding output takes the channel out of the graph
  at once (the store forgets it 72 blocks later); our public channels that
  reached 6 confirmations exchange ``announcement_signatures``; with the peer's
  signatures (kept in ``graph.sqlite``) we build the ``channel_announcement``,
  our ``channel_update`` (from our :class:`htlc.policy.PolicyBook`) and our
  ``node_announcement`` and feed them to the store like any peer's gossip.

``UpdateChannelPolicy`` calls :meth:`GossipNode.update_policy`: the forwarder
reads the same :attr:`policies`, and a new ``channel_update`` is gossiped.

Channel status (lnd's channel status manager, :mod:`htlc.chan_status`): peers
going up and down are fed to :attr:`GossipNode.status`; every sample interval it
is ticked with the clock and the channels it names get a fresh ``channel_update``
with the ``disable`` bit set or cleared. ``UpdateChanStatus`` calls
:meth:`GossipNode.update_chan_status`; a manual disable is kept in ``graph.sqlite``.

We advertise ``gossip_queries_ex`` (BOLT 9 bits 10/11) in ``init`` and in our
``node_announcement``: with a peer that has it too, our ``query_channel_range``
asks for timestamps and checksums, and only what is newer there is queried.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc
import trio

from base_chain.crypto import PrivateKey, PublicKey
from base_chain.tx import OutPoint
from channels.chainclient import ChainUnavailable
from channels.features import Feature
from channels.manager import ManagedChannel
from channels.peer import PeerLinkError
from channels.state import ChannelState
from channels.wire import Message

from .chan_status import Announce, ChanStatusAction, ChanStatusConfig, ChanStatusManager
from .gossip import (
    QUERY_OPTION_CHECKSUMS,
    QUERY_OPTION_TIMESTAMPS,
    AnnouncementSignatures,
    ChannelAnnouncement,
    ChannelUpdate,
    GossipError,
    NodeAddress,
    NodeAnnouncement,
    QueryChannelRange,
    QueryShortChannelIds,
    ReplyChannelRange,
    ReplyShortChannelIdsEnd,
    add_announcement_signatures,
    encode_addresses,
    make_announcement_signatures,
    sign_channel_update,
    sign_node_announcement,
)
from .gossip_queries import GossipTimestampFilter
from .gossip_sync import GossipResult, GossipStore
from .graph import ChannelGraph, format_short_channel_id, short_channel_id_parts
from .graph_store import GraphStore
from .policy import ForwardingPolicy, PolicyBook, channel_point_of

if TYPE_CHECKING:
    from channels.daemon import PeerState
    from channels.node import ChannelNode

__all__ = ["ANNOUNCE_DEPTH", "DEFAULT_TRICKLE_S", "GossipNode", "node_color"]

log = logging.getLogger("canal.gossip")

ANNOUNCE_DEPTH = 6
"""BOLT 7: announcement_signatures only once the funding transaction has 6 confirmations."""
DEFAULT_TRICKLE_S = 2.0
"""Seconds between two rounds of the staggered broadcast (lnd's trickledelay, short for a small network)."""
_ALL_TIME = 0xFFFFFFFF
FILTER_SLACK_S = 3600
MAX_PENDING_QUERIES = 64
"""``query_short_channel_ids`` waiting per peer (each up to ~8,000 channels): more replies are dropped, so a
peer sending reply_channel_range without end cannot grow our memory."""
"""Our gossip_timestamp_filter starts this long before the connection (the range queries cover older gossip)."""
REFRESH_AFTER_S = 13 * 24 * 3600
"""Our channel_update is made again when older than this (BOLT 7: others forget channels after two weeks)."""

_FROM_PEERS = (ChannelAnnouncement, ChannelUpdate, NodeAnnouncement, QueryChannelRange, QueryShortChannelIds,
               GossipTimestampFilter)
_HANDLED = (*_FROM_PEERS, AnnouncementSignatures, ReplyChannelRange, ReplyShortChannelIdsEnd)

FundingOutput = tuple[bytes, int, OutPoint]
"""``(script_pubkey, amount_sat, outpoint)`` of an unspent funding output."""


def node_color(pubkey: bytes) -> bytes:
    """The node's color: the three bytes after the key's prefix, as GetInfo shows it."""
    return pubkey[1:4]


def _timestamp(msg: Message) -> int | None:
    return msg.timestamp if isinstance(msg, (ChannelUpdate, NodeAnnouncement)) else None


class GossipNode:
    """BOLT 7 gossip for one node (see the module docstring)."""

    def __init__(self, node: ChannelNode, graph: ChannelGraph, trickle_s: float = DEFAULT_TRICKLE_S,
                 status: ChanStatusConfig | None = None) -> None:
        self.node = node
        if node.features.has(Feature.gossip_queries):  # the extended queries are ours: say so in init and
            node.features = node.features.set_optional(Feature.gossip_queries_ex)  # node_announcement
        self.chain_hash = node.params.genesis_hash
        self.trickle_s = trickle_s
        self.db = GraphStore(node.datadir / "graph.sqlite")
        try:
            self.store = GossipStore.from_rows(self.db.rows(), self.chain_hash, graph)
        except GossipError as e:  # a damaged table: start from an empty graph, peers resend everything
            log.error("cannot rebuild the graph from graph.sqlite (%s): starting empty", e.reason)
            self.store = GossipStore(self.chain_hash, graph)
        self.funding: dict[int, OutPoint] = self.db.fundings()
        self._by_outpoint = {op: scid for scid, op in self.funding.items()}
        self.policies: PolicyBook = self.db.policies()
        self.status = ChanStatusManager(status)
        self._manually_disabled = self.db.manually_disabled()
        self._queue: list[tuple[Message, str | None]] = []
        self._filters: dict[str, GossipTimestampFilter] = {}
        self._sigs_sent: set[tuple[str, bytes]] = set()
        self._queries: dict[str, list[QueryShortChannelIds]] = {}
        """Per peer: our query_short_channel_ids not yet sent, behind the one in flight (BOLT 7: one at a time)."""
        self._node_announced = False
        self._lock = trio.Lock()
        node.message_handlers.append(self.on_message)
        node.peer_handlers.append(self.on_peer)
        node.block_handlers.append(self.on_block)
        log.info("graph: %d channels, %d nodes from graph.sqlite", len(self.store.short_channel_ids()),
                 len(self.store.graph.nodes()))

    @property
    def graph(self) -> ChannelGraph:
        return self.store.graph

    @property
    def node_id(self) -> bytes:
        return self.node.node_key.public_key().to_bytes()

    async def run(self) -> None:
        """The staggered broadcast (runs until the node stops); announces what the chain allows at start."""
        await self._announce_channels(self.node.tip_height)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._status_ticks)
            while True:
                await trio.sleep(self.trickle_s)
                await self.flush()

    async def _status_ticks(self) -> None:
        while True:
            await trio.sleep(self.status.config.sample_interval_s)
            try:
                async with self._lock:
                    await self._announce_status(self.status.tick(self.node.clock()), "detected")
            except Exception:  # a bug must cost this round, not the daemon
                log.exception("channel status round failed")

    # --- peers' messages ------------------------------------------------------------------------------------

    async def on_message(self, peer: PeerState, msg: Message) -> None:
        if not isinstance(msg, _HANDLED):
            return
        try:
            async with self._lock:
                await self._dispatch(peer, msg)
        except PeerLinkError:
            raise  # the link is gone: the daemon ends this peer
        except Exception as e:  # a bug must cost this message, not the daemon
            log.exception("peer %s: %s not handled", peer.pubkey_hex, msg.NAME)
            await peer.link.send_warning(f"{msg.NAME}: not processed ({type(e).__name__})")

    async def _dispatch(self, peer: PeerState, msg: Message) -> None:
        if isinstance(msg, AnnouncementSignatures):
            await self._on_announcement_signatures(peer, msg)
            return
        if isinstance(msg, ReplyChannelRange):
            if msg.chain_hash not in self.chain_hashes:
                return
            query = self.store.query_for_reply(msg, with_flags=self._supports(peer, Feature.gossip_queries_ex))
            log.info("peer %s: reply_channel_range of %d channels, %d to query", peer.pubkey_hex[:16],
                     len(msg.short_channel_ids), 0 if query is None else len(query.short_channel_ids))
            if query is not None:
                waiting = self._queries.setdefault(peer.pubkey_hex, [])
                if len(waiting) >= MAX_PENDING_QUERIES:
                    log.info("peer %s: reply_channel_range dropped (%d queries waiting)", peer.pubkey_hex[:16],
                             len(waiting))
                    return
                waiting.append(query)
                if len(waiting) == 1:
                    await peer.link.send(query)
            return
        if isinstance(msg, ReplyShortChannelIdsEnd):
            waiting = self._queries.get(peer.pubkey_hex, [])
            if waiting:
                waiting.pop(0)
            if waiting:
                await peer.link.send(waiting[0])
            return
        assert isinstance(msg, _FROM_PEERS)
        if isinstance(msg, GossipTimestampFilter) and msg.chain_hash in self.chain_hashes:
            self._filters[peer.pubkey_hex] = msg
        found: FundingOutput | None = None
        funding = None
        if isinstance(msg, ChannelAnnouncement) and msg.short_channel_id not in self.store:
            found = await self.funding_output(msg.short_channel_id)
            funding = None if found is None else (msg.short_channel_id, found[2])
        result = self.store.handle(msg, self.node.now(), _lookup(found))
        await self._carry_out(result, peer, funding)

    @property
    def chain_hashes(self) -> frozenset[bytes]:
        return self.store.chain_hashes

    async def _carry_out(self, result: GossipResult, peer: PeerState | None,
                         funding: tuple[int, OutPoint] | None = None) -> None:
        """Persist, then answer the peer, then queue the forwards (in that order)."""
        fundings = [funding] if funding is not None and result.accepted else []
        self.db.apply(result, fundings)
        for scid, op in fundings:
            self.funding[scid] = op
            self._by_outpoint[op] = scid
        self._forgotten(result)
        who = "ours" if peer is None else peer.pubkey_hex[:16]
        if not result.accepted:
            level = logging.WARNING if peer is None else logging.INFO if result.warning else logging.DEBUG
            log.log(level, "gossip (%s) not taken: %s", who, result.reason)
        if peer is not None:
            if result.warning:
                await peer.link.send_warning(result.reason)
            for reply in result.reply:
                await peer.link.send(reply)
        origin = None if peer is None else peer.pubkey_hex
        self._queue.extend((m, origin) for m in result.forward)

    def _forgotten(self, result: GossipResult) -> None:
        for kind, key in result.forget:
            if kind == "channel_announcement":
                op = self.funding.pop(int.from_bytes(key, "big"), None)
                if op is not None:
                    self._by_outpoint.pop(op, None)

    def _supports(self, peer: PeerState, feature: Feature) -> bool:
        their = peer.link.their_init
        return their is not None and their.all_features.has(feature) and self.node.features.has(feature)

    async def funding_output(self, short_channel_id: int) -> FundingOutput | None:
        """The unspent output ``short_channel_id`` names, read from the chain node (None if there is none)."""
        height, tx_index, vout = short_channel_id_parts(short_channel_id)
        chain = self.node.chain
        try:
            if height > await chain.height():
                return None
            block = await chain.block(await chain.block_hash(height))
            if tx_index >= len(block.transactions) or vout >= len(block.transactions[tx_index].outputs):
                return None
            tx = block.transactions[tx_index]
            outpoint = OutPoint(tx.txid, vout)
            info = await chain.get_txout(outpoint, include_mempool=False)
        except (ChainUnavailable, grpc.RpcError, ValueError) as e:  # chain node away or refusing: unknown output
            log.info("funding lookup of %s failed: %s", format_short_channel_id(short_channel_id), e)
            return None
        if not info.found:
            return None
        out = tx.outputs[vout]
        return out.script_pubkey, out.amount_sat, outpoint

    # --- the staggered broadcast ------------------------------------------------------------------------------

    async def flush(self) -> None:
        """Send the queued gossip to every peer that wants it, except the one it came from."""
        batch, self._queue = self._queue, []
        if not batch:
            return
        for key, peer in list(self.node.peers.items()):
            wants = self._filters.get(key)
            if wants is None and self._supports(peer, Feature.gossip_queries):
                continue  # BOLT 7: no gossip before the peer's gossip_timestamp_filter
            out = [m for m, origin in batch if origin != key and (
                wants is None or (ts := _timestamp(m)) is None or wants.matches(ts))]
            try:
                for m in out:
                    await peer.link.send(m)
            except PeerLinkError as e:
                log.info("gossip to %s stopped: %s", key[:16], e.reason)

    # --- connections --------------------------------------------------------------------------------------

    async def on_peer(self, peer: PeerState, connected: bool) -> None:
        key = peer.pubkey_hex
        self.status.peer_changed(key, connected, self.node.clock())
        if not connected:
            self._filters.pop(key, None)
            self._queries.pop(key, None)
            self._sigs_sent = {s for s in self._sigs_sent if s[0] != key}
            return
        try:
            if self._supports(peer, Feature.gossip_queries):
                ex = self._supports(peer, Feature.gossip_queries_ex)
                log.info("peer %s: graph sync%s", key[:16], " with timestamps and checksums (gossip_queries_ex)" if ex
                         else "")
                await peer.link.send(QueryChannelRange(self.chain_hash, 0, _ALL_TIME,
                                                       QUERY_OPTION_TIMESTAMPS | QUERY_OPTION_CHECKSUMS if ex else None))
                # Under gossip_queries_ex the range replies' timestamps name whatever changed while we were
                # away: gossip from now on is enough (as lnd's active sync). Without, an hour of slack.
                since = max(self.node.now() - (0 if ex else FILTER_SLACK_S), 0)
                await peer.link.send(GossipTimestampFilter(self.chain_hash, since, _ALL_TIME - since))
            async with self._lock:
                await self._announce_channels(self.node.tip_height)
        except PeerLinkError as e:
            log.info("gossip to %s on connect failed: %s", key[:16], e.reason)

    # --- our channels ---------------------------------------------------------------------------------------

    async def on_block(self, block: Any, height: int, connected: bool) -> None:
        if not connected:
            return
        async with self._lock:
            for tx in block.transactions:
                for txin in tx.inputs:
                    scid = self._by_outpoint.get(txin.prevout)
                    if scid is not None and not self.store.is_spent(scid):
                        log.info("channel %s closed (funding spent by %s): out of the graph",
                                 format_short_channel_id(scid), tx.txid_hex())
                        self.db.apply(self.store.funding_spent(scid, height))
                        self.graph.remove_channel(scid)
            for result in (self.store.block_connected(height), self.store.prune_stale(self.node.now())):
                self.db.apply(result)
                self._forgotten(result)
            await self._announce_channels(height)

    def _public_ready(self, height: int) -> list[ManagedChannel]:
        out = []
        for mc in self.node.channels.channels.values():
            w = mc.watch
            if (mc.channel.config.announce_channel and mc.channel.state is ChannelState.NORMAL
                    and mc.channel.short_channel_id and w is not None and w.confirmed_height is not None
                    and w.spent_by is None and height - w.confirmed_height + 1 >= ANNOUNCE_DEPTH):
                out.append(mc)
        return out

    def _unsigned_announcement(self, mc: ManagedChannel) -> ChannelAnnouncement:
        c = mc.channel.commitments
        assert c is not None and mc.channel.short_channel_id is not None
        return ChannelAnnouncement.create(
            self.chain_hash, mc.channel.short_channel_id, self.node.node_key.public_key(),
            PublicKey.from_bytes(mc.peer), c.params.local.keys.funding_pubkey, c.params.remote.keys.funding_pubkey)

    def _funding_key(self, mc: ManagedChannel) -> PrivateKey:
        return self.node.channels.secrets(mc.index).funding_privkey

    async def _announce_channels(self, height: int) -> None:
        """Announce what is deep enough: signatures to the peer, and with theirs the announcement itself."""
        ready = self._public_ready(height)
        for cp in set(self.status.channel_points()) - {channel_point_of(mc) for mc in ready}:
            self.status.forget(cp)  # closing or closed: no more status updates
        for mc in ready:
            scid = mc.channel.short_channel_id
            assert scid is not None
            if scid not in self.store:
                theirs = self.db.peer_signatures(mc.channel_id)
                if theirs is not None and theirs.short_channel_id == scid:
                    await self._complete(mc, theirs)
            peer = self.node.peers.get(mc.peer.hex())
            if peer is not None and (mc.peer.hex(), mc.channel_id) not in self._sigs_sent:
                unsigned = self._unsigned_announcement(mc)
                ours = make_announcement_signatures(unsigned, mc.channel_id, self.node.node_key, self._funding_key(mc))
                try:
                    await peer.link.send(ours)
                    self._sigs_sent.add((mc.peer.hex(), mc.channel_id))
                except PeerLinkError as e:
                    log.info("announcement_signatures to %s failed: %s", mc.peer.hex()[:16], e.reason)
            if scid in self.store:
                self._track(mc)
                if not self._update_current(mc):
                    await self.send_channel_update(mc)  # first one, or a policy change a crash kept from going out
        if not self._node_announced and self.node.listen_port and any(
                s in self.store for s in (mc.channel.short_channel_id for mc in self._public_ready(height))):
            await self._announce_node()

    async def _on_announcement_signatures(self, peer: PeerState, msg: AnnouncementSignatures) -> None:
        mc = self.node.channels.find(msg.channel_id)
        if mc is None or mc.peer.hex() != peer.pubkey_hex or not mc.channel.config.announce_channel:
            await peer.link.send_warning("announcement_signatures: unknown or unannounced channel")
            return
        if mc.channel.short_channel_id != msg.short_channel_id:
            if mc.channel.short_channel_id is None:  # not as deep here yet: keep them for later (BOLT 7 MAY queue)
                self.db.save_peer_signatures(msg)
                return
            await peer.link.send_warning("announcement_signatures: short_channel_id does not match the channel")
            return
        try:
            ann = add_announcement_signatures(self._unsigned_announcement(mc), msg)
        except GossipError as e:
            await peer.link.send_warning(e.reason)
            return
        theirs_side = ann.node_signature_1 if ann.node_id_1.to_bytes() == mc.peer else ann.node_signature_2
        if theirs_side != msg.node_signature:  # our own signatures sent back to us
            await peer.link.send_warning("announcement_signatures: not signed by the peer's keys")
            return
        self.db.save_peer_signatures(msg)  # durable: a restart re-announces without asking again
        await self._announce_channels(self.node.tip_height)

    async def _complete(self, mc: ManagedChannel, theirs: AnnouncementSignatures) -> None:
        unsigned = self._unsigned_announcement(mc)
        ours = make_announcement_signatures(unsigned, mc.channel_id, self.node.node_key, self._funding_key(mc))
        try:
            ann = add_announcement_signatures(add_announcement_signatures(unsigned, theirs), ours)
        except GossipError as e:
            log.warning("cannot build the announcement of %s: %s", mc.channel_id.hex(), e.reason)
            return
        found = await self.funding_output(ann.short_channel_id)
        result = self.store.handle(ann, self.node.now(), _lookup(found))
        await self._carry_out(result, None, None if found is None else (ann.short_channel_id, found[2]))
        if result.accepted:
            log.info("channel %s announced", format_short_channel_id(ann.short_channel_id))

    def _direction(self, mc: ManagedChannel) -> int:
        return 0 if self.node_id < mc.peer else 1

    def _update_current(self, mc: ManagedChannel) -> bool:
        """Our latest channel_update of ``mc`` says what the policy book says."""
        c, scid = mc.channel.commitments, mc.channel.short_channel_id
        assert c is not None and scid is not None
        u = self.store.channel_update(scid, self._direction(mc))
        if u is None or u.timestamp < self.node.now() - REFRESH_AFTER_S:
            return False
        view = self.policies.policy(channel_point_of(mc)).for_capacity(c.params.funding_sat)
        return (u.fee_base_msat, u.fee_proportional_millionths, u.cltv_expiry_delta, u.htlc_minimum_msat,
                u.htlc_maximum_msat, u.disabled) == (view.fee_base_msat, view.fee_proportional_millionths,
                                                     view.cltv_expiry_delta, view.htlc_minimum_msat,
                                                     view.htlc_maximum_msat,
                                                     self.status.announced_disabled(channel_point_of(mc)))

    def _our_update(self, mc: ManagedChannel, policy: ForwardingPolicy) -> ChannelUpdate:
        c = mc.channel.commitments
        assert c is not None and mc.channel.short_channel_id is not None
        scid = mc.channel.short_channel_id
        direction = self._direction(mc)
        last = self.store.channel_update(scid, direction)
        now = self.node.now()
        view = policy.for_capacity(c.params.funding_sat)
        disable = 2 if self.status.announced_disabled(channel_point_of(mc)) else 0  # BOLT 7 channel_flags bit 1
        update = ChannelUpdate(
            chain_hash=self.chain_hash, short_channel_id=scid,
            timestamp=now if last is None else max(now, last.timestamp + 1),
            message_flags=1, channel_flags=direction | disable,
            cltv_expiry_delta=view.cltv_expiry_delta,
            htlc_minimum_msat=view.htlc_minimum_msat, fee_base_msat=view.fee_base_msat,
            fee_proportional_millionths=view.fee_proportional_millionths, htlc_maximum_msat=view.htlc_maximum_msat,
        )
        return sign_channel_update(update, self.node.node_key)

    async def send_channel_update(self, mc: ManagedChannel) -> bool:
        """Make, apply and queue our channel_update of an announced channel (False: not announced)."""
        scid = mc.channel.short_channel_id
        if scid is None or scid not in self.store or self.store.is_spent(scid):
            return False
        update = self._our_update(mc, self.policies.policy(channel_point_of(mc)))
        result = self.store.handle(update, self.node.now(), _lookup(None))
        await self._carry_out(result, None)
        if result.accepted and not result.forward:
            # The announcement went out before: the peer must still learn our update directly (BOLT 7).
            peer = self.node.peers.get(mc.peer.hex())
            if peer is not None:
                await peer.link.send(update)
        return result.accepted

    async def _announce_node(self) -> None:
        last = self.store.node_announcement(self.node_id)
        now = self.node.now()
        alias = self.node.alias.encode()[:32]
        ann = NodeAnnouncement(
            features=self.node.features.to_bytes(), timestamp=now if last is None else max(now, last.timestamp + 1),
            node_id=self.node.node_key.public_key(), rgb_color=node_color(self.node_id),
            alias=alias + bytes(32 - len(alias)),
            addresses=encode_addresses([NodeAddress(1, socket.inet_aton("127.0.0.1"), self.node.listen_port)]),
        )
        result = self.store.handle(sign_node_announcement(ann, self.node.node_key), now, _lookup(None))
        await self._carry_out(result, None)
        self._node_announced = result.accepted
        if result.accepted and not result.forward:
            self._queue.append((self.store.node_announcement(self.node_id) or ann, None))

    # --- policy -------------------------------------------------------------------------------------------

    async def update_policy(self, channel_points: list[str] | None,
                            change: Callable[[ForwardingPolicy], ForwardingPolicy]) -> tuple[list[str], dict[str, str]]:
        """Change our policy (all channels and the default when ``channel_points`` is None); gossip it.

        Returns the channel points whose policy changed, and those refused with the reason (as lnd:
        a maximum HTLC above the capacity, a minimum below what the peer accepts). Raises
        :class:`htlc.policy.PolicyError` (nothing changed) for a policy lnd refuses outright.
        """
        everything = channel_points is None
        mine = {channel_point_of(mc): mc for mc in self.node.channels.channels.values()
                if mc.channel.state is ChannelState.NORMAL and mc.channel.commitments is not None}
        refused: dict[str, str] = {}
        for cp in list(mine) if channel_points is None else channel_points:
            c = mine[cp].channel.commitments if cp in mine else None
            if c is None:
                continue
            new = change(self.policies.policy(cp))
            if new.max_htlc_msat is not None and new.max_htlc_msat > c.params.funding_sat * 1000:
                refused[cp] = (f"max htlc size of {new.max_htlc_msat} msat exceeds the channel capacity of "
                               f"{c.params.funding_sat * 1000} msat")
            elif new.min_htlc_msat < c.params.remote.htlc_minimum_msat:
                refused[cp] = (f"min htlc amount of {new.min_htlc_msat} msat is below the peer's minimum of "
                               f"{c.params.remote.htlc_minimum_msat} msat")
        points = [cp for cp in (list(mine) if channel_points is None else channel_points) if cp not in refused]
        async with self._lock:
            # A refused channel keeps the policy it has, also when that is the default being changed.
            pinned = {cp: self.policies.policy(cp) for cp in refused if everything and cp not in self.policies.channels}
            changed = self.policies.update(points, change, everything)
            self.policies.channels.update(pinned)
            self.db.save_policies({**changed, **pinned}, self.policies.default if everything else None)
            for cp in changed:
                mc = mine.get(cp)
                if mc is not None:
                    await self.send_channel_update(mc)
        return list(changed), refused

    # --- channel status -----------------------------------------------------------------------------------

    def _track(self, mc: ManagedChannel) -> None:
        """Follow the status of an announced channel of ours, from what its latest channel_update says."""
        cp = channel_point_of(mc)
        if cp in self.status:
            return
        scid = mc.channel.short_channel_id
        assert scid is not None
        u = self.store.channel_update(scid, self._direction(mc))
        self.status.track(cp, mc.peer.hex(), u is not None and u.disabled, self.node.clock(),
                          manually_disabled=cp in self._manually_disabled)

    async def _announce_status(self, announces: list[Announce], why: str) -> None:
        mine = {channel_point_of(mc): mc for mc in self.node.channels.channels.values()}
        for a in announces:
            mc = mine.get(a.channel_point)
            if mc is None:
                continue
            log.info("announcing channel %s %s [%s]", a.channel_point, "disabled" if a.disabled else "enabled", why)
            try:
                await self.send_channel_update(mc)
            except PeerLinkError as e:  # it is applied and queued; only the direct copy to the peer was lost
                log.info("channel_update of %s to its peer failed: %s", a.channel_point, e.reason)

    async def update_chan_status(self, channel_point: str, action: ChanStatusAction) -> None:
        """``UpdateChanStatus``: enable, disable (sticks until enable or auto) or auto; raises ChanStatusError."""
        async with self._lock:
            announces = self.status.request(channel_point, action, self.node.clock())
            manual = action is ChanStatusAction.DISABLE
            if manual != (channel_point in self._manually_disabled):  # durable before it is announced
                self.db.save_manually_disabled(channel_point, manual)
                (self._manually_disabled.add if manual else self._manually_disabled.discard)(channel_point)
            await self._announce_status(announces, "requested")

    def channel_update_bytes(self, short_channel_id: int) -> bytes:
        """Our latest channel_update of a channel, for failure messages (empty when not announced)."""
        for d in (0, 1):
            u = self.store.channel_update(short_channel_id, d)
            if u is not None and u.direction == d:
                ann = self.store.channel_announcement(short_channel_id)
                if ann is not None and (ann.node_id_1 if d == 0 else ann.node_id_2).to_bytes() == self.node_id:
                    return u.encode()  # with its type prefix, as lnd sends it in failures (BOLT 4)
        return b""

    def close(self) -> None:
        self.db.close()


def _lookup(found: FundingOutput | None) -> Callable[[int], tuple[bytes, int] | None]:
    return lambda _scid: None if found is None else (found[0], found[1])

