"""A sans-IO gossip store: validate BOLT 7 gossip, apply it to a ChannelGraph, answer gossip queries.

:class:`GossipStore` takes one received message at a time and returns a
:class:`GossipResult`: whether it was accepted (else the ``reason``, and
whether BOLT 7 says to send a ``warning``), what to ``forward`` to the other
peers (the staggered broadcast), what to ``reply`` to this peer (query
answers), and which rows to ``persist`` or ``forget``. No I/O, no clock: the
caller passes ``now`` (UNIX seconds) and a ``funding_lookup(short_channel_id)``
that reads the chain synchronously and returns ``(script_pubkey, amount_sat)``
of the unspent funding output, or None.

    store = GossipStore(params.genesis_hash)
    result = store.handle(msg, now, funding_lookup)
    if result.warning: peer.send(WarningMessage(data=result.reason.encode()))
    for m in result.reply: peer.send(m)
    for m in result.forward: broadcast_queue.add(m)

What is checked (BOLT 7 "The receiving node"):

* ``channel_announcement``: known ``chain_hash``; ``node_id_1`` < ``node_id_2``;
  not yet announced; the funding output exists, is unspent and pays
  P2WSH(``funding_script(bitcoin_key_1, bitcoin_key_2)``); all four signatures.
  It is forwarded together with its first ``channel_update`` (a channel
  announcement is never relayed without one). Unknown even ``features`` bits:
  kept and relayed, but the channel is disabled in the graph.
* ``channel_update``: known chain and channel; newer than the last update of
  its direction (an equal timestamp is a duplicate); not too far in the future
  nor older than two weeks; within the per-direction rate limit; once the
  funding output is spent only a disabling update is taken; the signature of
  the direction's node. An update with ``htlc_maximum_msat`` above the
  capacity or below ``htlc_minimum_msat`` is kept but disabled in the graph;
  ``dont_forward`` updates are applied but never forwarded.
* ``node_announcement``: the node is in a stored channel announcement; newer
  than its last one; rate limit; well-formed addresses; the signature. It is
  not forwarded before one of the node's channels is, nor with more than one
  DNS hostname.

Spent funding outputs: :meth:`GossipStore.funding_spent` marks the channel,
:meth:`GossipStore.block_connected` forgets it 72 blocks later (BOLT 7's delay
for splices), or at once when no height is given. Queries
(``query_channel_range``, ``query_short_channel_ids``,
``gossip_timestamp_filter``) are answered from the store. :meth:`to_rows` /
:meth:`from_rows` persist the accepted raw messages so the graph is rebuilt on
start.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

from base_chain.templates import p2wsh
from channels.scripts import funding_script
from channels.wire import MAX_MESSAGE_SIZE, Message, decode_message

from .gossip import (
    QUERY_FLAG_CHANNEL_ANNOUNCEMENT,
    QUERY_FLAG_CHANNEL_UPDATE_1,
    QUERY_FLAG_CHANNEL_UPDATE_2,
    QUERY_FLAG_NODE_ANNOUNCEMENT_1,
    QUERY_FLAG_NODE_ANNOUNCEMENT_2,
    QUERY_FLAGS_ALL,
    ChannelAnnouncement,
    ChannelUpdate,
    ChannelUpdateChecksums,
    ChannelUpdateTimestamps,
    EncodedShortIds,
    EncodedTimestamps,
    GossipError,
    GossipMessage,
    GossipTimestampFilter,
    NodeAnnouncement,
    QueryChannelRange,
    QueryShortChannelIds,
    ReplyChannelRange,
    ReplyShortChannelIdsEnd,
    channel_update_checksum,
    verify_channel_announcement,
    verify_channel_update,
    verify_node_announcement,
)
from .graph import ChannelGraph, GraphError, format_short_channel_id

__all__ = [
    "SPENT_CHANNEL_DELAY",
    "STALE_AFTER_S",
    "FundingLookup",
    "GossipConfig",
    "GossipResult",
    "GossipRow",
    "GossipStore",
]

SPENT_CHANNEL_DELAY = 72
"""BOLT 7: forget a channel this many blocks after its funding output is spent."""

STALE_AFTER_S = 14 * 24 * 3600
"""BOLT 7: a channel whose latest update is older than two weeks may be pruned."""

_DAY_S = 24 * 3600
_REPLY_OVERHEAD = 2 + 44 + 5 + 4
"""A reply_channel_range's bytes besides its ids: type, fixed fields (with the ids' length and
encoding byte), the timestamps TLV's type, length and encoding byte, the checksums TLV's type and length."""

FundingLookup = Callable[[int], tuple[bytes, int] | None]
"""``short_channel_id -> (script_pubkey, amount_sat)`` of the unspent output it names, or None."""


@dataclass(frozen=True)
class GossipConfig:
    """Limits of a :class:`GossipStore` (rate limits count by the ``now`` given to ``handle``)."""

    max_channel_updates_per_day: int = 48
    """Per channel direction (that is, per node per channel)."""
    max_node_announcements_per_day: int = 24
    max_future_s: int = 3600
    """A timestamp further ahead of ``now`` is "unreasonably far in the future"."""
    stale_after_s: int | None = STALE_AFTER_S
    """Channel updates older than this are ignored (None: never)."""
    max_ids_per_reply: int | None = None
    """Short channel ids per ``reply_channel_range`` (None: as many as fit in a message)."""


@dataclass(frozen=True)
class GossipResult:
    """What to do after a message (or a chain event) was handled."""

    accepted: bool
    reason: str = ""
    """Why it was not accepted (empty when it was)."""
    warning: bool = False
    """BOLT 7 says SHOULD send a ``warning`` (a bad signature or malformed content)."""
    forward: tuple[Message, ...] = ()
    """Gossip to relay to the other peers, in this order."""
    reply: tuple[Message, ...] = ()
    """Messages to send back to the peer that sent this one."""
    persist: tuple[GossipRow, ...] = ()
    """Rows to insert or replace (by ``kind`` and ``key``)."""
    forget: tuple[tuple[str, bytes], ...] = ()
    """``(kind, key)`` rows to delete."""


class GossipRow(NamedTuple):
    """One stored row: ``kind`` is a message name or ``"spent"``; ``key`` names the row within its kind.

    * ``channel_announcement``: key = short_channel_id (8 bytes), ``value`` = capacity_sat
    * ``channel_update``: key = short_channel_id + direction byte
    * ``node_announcement``: key = node_id (33 bytes)
    * ``spent``: key = short_channel_id, ``message`` empty, ``value`` = height of the spend
    """

    kind: str
    key: bytes
    message: bytes
    value: int = 0


def _reject(reason: str, warning: bool = False) -> GossipResult:
    return GossipResult(False, reason, warning)


def _scid_key(scid: int) -> bytes:
    return scid.to_bytes(8, "big")


@dataclass
class _Channel:
    announcement: ChannelAnnouncement
    capacity_sat: int
    updates: list[ChannelUpdate | None] = field(default_factory=lambda: [None, None])
    spent_height: int | None = None
    forwarded: bool = False

    @property
    def node_ids(self) -> tuple[bytes, bytes]:
        return self.announcement.node_id_1.to_bytes(), self.announcement.node_id_2.to_bytes()

    @property
    def routable(self) -> bool:
        """No unknown even feature bit (BOLT 9 assigns none to channel_announcement)."""
        return not self.announcement.feature_vector.unknown_required(())


class GossipStore:
    """The gossip of one or more chains, applied to :attr:`graph`."""

    def __init__(
        self,
        chain_hashes: bytes | Iterable[bytes],
        graph: ChannelGraph | None = None,
        config: GossipConfig | None = None,
    ) -> None:
        self.chain_hashes = frozenset([chain_hashes] if isinstance(chain_hashes, bytes) else chain_hashes)
        self.graph = ChannelGraph() if graph is None else graph
        self.config = GossipConfig() if config is None else config
        self._channels: dict[int, _Channel] = {}
        self._nodes: dict[bytes, NodeAnnouncement] = {}
        self._node_channels: dict[bytes, set[int]] = {}
        self._recent: dict[tuple[object, ...], deque[int]] = {}  # rate-limit key -> accept times in the last day

    # -- reads -----------------------------------------------------------------

    def __contains__(self, short_channel_id: object) -> bool:
        return short_channel_id in self._channels

    def short_channel_ids(self) -> list[int]:
        return sorted(self._channels)

    def channel_announcement(self, short_channel_id: int) -> ChannelAnnouncement | None:
        ch = self._channels.get(short_channel_id)
        return None if ch is None else ch.announcement

    def channel_update(self, short_channel_id: int, direction: int) -> ChannelUpdate | None:
        ch = self._channels.get(short_channel_id)
        return None if ch is None else ch.updates[direction]

    def node_announcement(self, node_id: bytes) -> NodeAnnouncement | None:
        return self._nodes.get(node_id)

    def capacity_sat(self, short_channel_id: int) -> int | None:
        """The funding output's amount, as found when the announcement was checked."""
        ch = self._channels.get(short_channel_id)
        return None if ch is None else ch.capacity_sat

    def is_spent(self, short_channel_id: int) -> bool:
        ch = self._channels.get(short_channel_id)
        return ch is not None and ch.spent_height is not None

    # -- receiving -------------------------------------------------------------

    def handle(self, msg: Message, now: int, funding_lookup: FundingLookup) -> GossipResult:
        """Validate and apply one message from a peer (``now``: UNIX seconds)."""
        if isinstance(msg, ChannelAnnouncement):
            return self._channel_announcement(msg, funding_lookup)
        if isinstance(msg, ChannelUpdate):
            return self._channel_update(msg, now)
        if isinstance(msg, NodeAnnouncement):
            return self._node_announcement(msg, now)
        if isinstance(msg, QueryChannelRange):
            return self._query_channel_range(msg)
        if isinstance(msg, QueryShortChannelIds):
            return self._query_short_channel_ids(msg)
        if isinstance(msg, GossipTimestampFilter):
            if msg.chain_hash not in self.chain_hashes:
                return _reject("gossip_timestamp_filter: unknown chain_hash")
            return GossipResult(True, reply=tuple(self.messages_in_range(msg.first_timestamp, msg.timestamp_range)))
        return _reject(f"{msg.NAME} is not handled by the gossip store")

    def _channel_announcement(self, msg: ChannelAnnouncement, funding_lookup: FundingLookup) -> GossipResult:
        scid = format_short_channel_id(msg.short_channel_id)
        if msg.chain_hash not in self.chain_hashes:
            return _reject("channel_announcement: unknown chain_hash")
        if msg.node_id_1.to_bytes() >= msg.node_id_2.to_bytes():
            return _reject("channel_announcement: node_id_1 is not the lesser node id", warning=True)
        known = self._channels.get(msg.short_channel_id)
        if known is not None:
            old = known.announcement
            same = (old.node_id_1, old.node_id_2, old.bitcoin_key_1, old.bitcoin_key_2) == (
                msg.node_id_1, msg.node_id_2, msg.bitcoin_key_1, msg.bitcoin_key_2,
            )  # fmt: skip
            what = "duplicate" if same else "conflicting"
            return _reject(f"channel_announcement: {what} announcement of {scid}")
        output = funding_lookup(msg.short_channel_id)
        if output is None:
            return _reject(f"channel_announcement: funding output of {scid} is missing or spent")
        script_pubkey, amount_sat = output
        expected = p2wsh(funding_script(msg.bitcoin_key_1.to_bytes(), msg.bitcoin_key_2.to_bytes()))
        if script_pubkey != expected:
            return _reject(
                f"channel_announcement: funding output of {scid} does not pay "
                "P2WSH(2-of-2 of bitcoin_key_1, bitcoin_key_2)"
            )
        try:
            verify_channel_announcement(msg)
        except GossipError as e:
            return _reject(e.reason, warning=True)
        self._add_channel(msg, amount_sat)
        return GossipResult(True, persist=(self._announcement_row(msg.short_channel_id),))

    def _channel_update(self, msg: ChannelUpdate, now: int) -> GossipResult:
        scid = format_short_channel_id(msg.short_channel_id)
        if msg.chain_hash not in self.chain_hashes:
            return _reject("channel_update: unknown chain_hash")
        ch = self._channels.get(msg.short_channel_id)
        if ch is None:
            return _reject(f"channel_update: unknown channel {scid} (no channel_announcement)")
        if ch.spent_height is not None and not msg.disabled:
            return _reject(f"channel_update: funding output of {scid} is spent (only a disabling update is taken)")
        last = ch.updates[msg.direction]
        if last is not None and msg.timestamp <= last.timestamp:
            if msg.timestamp < last.timestamp:
                return _reject("channel_update: stale (older than the last update of this direction)")
            same = channel_update_checksum(msg) == channel_update_checksum(last)
            return _reject("channel_update: duplicate" if same else "channel_update: same timestamp, different fields")
        stale = self._check_time("channel_update", msg.timestamp, now)
        if stale:
            return _reject(stale)
        rate_key = ("channel_update", msg.short_channel_id, msg.direction)
        limited = self._rate_limited(rate_key, now, self.config.max_channel_updates_per_day)
        if limited:
            return _reject(limited)
        try:
            verify_channel_update(msg, ch.announcement.node_id_1, ch.announcement.node_id_2)
        except GossipError as e:
            return _reject(e.reason, warning=True)
        try:
            self._apply_update(ch, msg)
        except GraphError as e:
            return _reject(f"channel_update: {e}")
        self._window(rate_key, now).append(now)
        forward: list[Message] = []
        if not msg.dont_forward and not (ch.spent_height is not None and not ch.forwarded):
            if ch.forwarded:
                forward.append(msg)
            else:  # the announcement goes out with its first relayable update(s), then node announcements
                forward.append(ch.announcement)
                forward.extend(u for u in ch.updates if u is not None and not u.dont_forward)
                forward.extend(self._first_forward(ch))
        return GossipResult(True, forward=tuple(forward), persist=(self._update_row(msg),))

    def _node_announcement(self, msg: NodeAnnouncement, now: int) -> GossipResult:
        node_id = msg.node_id.to_bytes()
        if not self._node_channels.get(node_id):
            return _reject("node_announcement: unknown node (no channel_announcement names it)")
        last = self._nodes.get(node_id)
        if last is not None and msg.timestamp <= last.timestamp:
            return _reject("node_announcement: stale (not newer than the last one)")
        stale = self._check_time("node_announcement", msg.timestamp, now, stale_after=False)
        if stale:
            return _reject(stale)
        rate_key = ("node_announcement", node_id)
        limited = self._rate_limited(rate_key, now, self.config.max_node_announcements_per_day)
        if limited:
            return _reject(limited)
        try:
            addresses = msg.address_descriptors()
        except GossipError as e:
            return _reject(f"node_announcement: {e.reason}", warning=True)
        try:
            verify_node_announcement(msg)
        except GossipError as e:
            return _reject(e.reason, warning=True)
        self._nodes[node_id] = msg
        self._window(rate_key, now).append(now)
        visible = any(self._channels[s].forwarded for s in self._node_channels[node_id])
        relay = visible and sum(1 for a in addresses if a.type == 5) <= 1
        return GossipResult(True, forward=(msg,) if relay else (), persist=(self._node_row(msg),))

    # -- checks ----------------------------------------------------------------

    def _check_time(self, what: str, timestamp: int, now: int, stale_after: bool = True) -> str:
        if timestamp > now + self.config.max_future_s:
            return f"{what}: timestamp too far in the future"
        if stale_after and self.config.stale_after_s is not None and timestamp < now - self.config.stale_after_s:
            return f"{what}: stale (timestamp older than two weeks)"
        return ""

    def _window(self, key: tuple[object, ...], now: int) -> deque[int]:
        """The accept times of ``key`` in the day before ``now`` (older ones dropped)."""
        times = self._recent.setdefault(key, deque())
        while times and times[0] <= now - _DAY_S:
            times.popleft()
        return times

    def _rate_limited(self, key: tuple[object, ...], now: int, limit: int) -> str:
        if len(self._window(key, now)) >= limit:
            return f"{key[0]}: rate limited (at most {limit} a day)"
        return ""

    # -- applying --------------------------------------------------------------

    def _add_channel(self, msg: ChannelAnnouncement, capacity_sat: int) -> _Channel:
        ch = _Channel(msg, capacity_sat)
        self._channels[msg.short_channel_id] = ch
        for node_id in ch.node_ids:
            self._node_channels.setdefault(node_id, set()).add(msg.short_channel_id)
        return ch

    def _apply_update(self, ch: _Channel, msg: ChannelUpdate) -> None:
        source, target = ch.node_ids if msg.direction == 0 else ch.node_ids[::-1]
        usable = (
            ch.routable
            and not msg.disabled
            and msg.htlc_minimum_msat <= msg.htlc_maximum_msat <= ch.capacity_sat * 1000
        )
        self.graph.add_channel(
            source,
            target,
            msg.short_channel_id,
            capacity_sat=ch.capacity_sat,
            fee_base_msat=msg.fee_base_msat,
            fee_proportional_millionths=msg.fee_proportional_millionths,
            cltv_expiry_delta=msg.cltv_expiry_delta,
            htlc_minimum_msat=msg.htlc_minimum_msat,
            htlc_maximum_msat=msg.htlc_maximum_msat,
            disabled=not usable,
            last_update=msg.timestamp,
        )
        ch.updates[msg.direction] = msg

    def _first_forward(self, ch: _Channel) -> list[Message]:
        """The node announcements to relay now that ``ch`` is relayed for the first time."""
        out: list[Message] = []
        for node_id in ch.node_ids:
            ann = self._nodes.get(node_id)
            seen = any(self._channels[s].forwarded for s in self._node_channels[node_id])
            if ann is not None and not seen and sum(1 for a in ann.address_descriptors() if a.type == 5) <= 1:
                out.append(ann)
        ch.forwarded = True
        return out

    # -- chain events and pruning ----------------------------------------------

    def funding_spent(self, short_channel_id: int, height: int | None = None) -> GossipResult:
        """The funding output was spent at ``height``: forget the channel 72 blocks later (now if None)."""
        ch = self._channels.get(short_channel_id)
        if ch is None:
            return _reject(f"unknown channel {format_short_channel_id(short_channel_id)}")
        if height is None:
            return self.forget_channel(short_channel_id)
        ch.spent_height = height if ch.spent_height is None else min(ch.spent_height, height)
        return GossipResult(True, persist=(GossipRow("spent", _scid_key(short_channel_id), b"", ch.spent_height),))

    def block_connected(self, height: int) -> GossipResult:
        """Forget the channels spent at least :data:`SPENT_CHANNEL_DELAY` blocks before ``height``."""
        due = [
            s
            for s, ch in self._channels.items()
            if ch.spent_height is not None and height - ch.spent_height >= SPENT_CHANNEL_DELAY
        ]
        return self._forget_all(due)

    def prune_stale(self, now: int) -> GossipResult:
        """Forget channels whose latest update in some direction is older than two weeks (BOLT 7: MAY)."""
        cutoff = now - STALE_AFTER_S
        due = [s for s, ch in self._channels.items() if any(u is not None and u.timestamp < cutoff for u in ch.updates)]
        return self._forget_all(due)

    def forget_channel(self, short_channel_id: int) -> GossipResult:
        """Drop a channel, its updates, and the announcements of nodes left without channels."""
        ch = self._channels.pop(short_channel_id, None)
        if ch is None:
            return _reject(f"unknown channel {format_short_channel_id(short_channel_id)}")
        self.graph.remove_channel(short_channel_id)
        key = _scid_key(short_channel_id)
        forget = [("channel_announcement", key), ("spent", key)]
        forget += [("channel_update", key + bytes([d])) for d in (0, 1) if ch.updates[d] is not None]
        for node_id in ch.node_ids:
            channels = self._node_channels.get(node_id, set())
            channels.discard(short_channel_id)
            if not channels:
                self._node_channels.pop(node_id, None)
                if self._nodes.pop(node_id, None) is not None:
                    forget.append(("node_announcement", node_id))
        for d in (0, 1):
            self._recent.pop(("channel_update", short_channel_id, d), None)
        return GossipResult(True, forget=tuple(forget))

    def _forget_all(self, scids: list[int]) -> GossipResult:
        forget: list[tuple[str, bytes]] = []
        for scid in scids:
            forget.extend(self.forget_channel(scid).forget)
        return GossipResult(True, forget=tuple(forget))

    # -- queries ---------------------------------------------------------------

    def _live(self, scid: int) -> _Channel | None:
        ch = self._channels.get(scid)
        return None if ch is None or ch.spent_height is not None else ch

    def _query_channel_range(self, q: QueryChannelRange) -> GossipResult:
        if q.chain_hash not in self.chain_hashes:
            # As lnd: one empty reply with sync_complete 0 says "not my chain".
            empty = ReplyChannelRange(q.chain_hash, q.first_blocknum, q.number_of_blocks, 0, EncodedShortIds())
            return GossipResult(False, "query_channel_range: unknown chain_hash", reply=(empty,))
        if q.number_of_blocks == 0:
            return _reject("query_channel_range: number_of_blocks is 0", warning=True)
        return GossipResult(True, reply=tuple(self.reply_channel_range(q)))

    def reply_channel_range(self, q: QueryChannelRange) -> list[ReplyChannelRange]:
        """The ``reply_channel_range`` messages answering ``q``, in order.

        Replies cover the queried range without gaps, each starting at the block
        after the previous one ends, or at the same block when a block's channels
        are split over two replies; only the last has ``sync_complete`` set.
        """
        first, end = q.first_blocknum, min(q.end_blocknum, 1 << 32)
        by_block: dict[int, list[int]] = {}
        for scid in sorted(s for s in self._channels if first <= s >> 40 < end and self._live(s)):
            by_block.setdefault(scid >> 40, []).append(scid)
        per_id = 8 + 8 * q.wants_timestamps + 8 * q.wants_checksums
        limit = self.config.max_ids_per_reply or (MAX_MESSAGE_SIZE - _REPLY_OVERHEAD) // per_id
        replies: list[ReplyChannelRange] = []
        chunk: list[int] = []
        start = first
        for block, scids in by_block.items():
            if chunk and len(chunk) + len(scids) > limit:
                replies.append(self._range_reply(q, start, block, chunk, False))
                chunk, start = [], block
            while len(chunk) + len(scids) > limit:  # one block holds more than a reply: split it
                take = limit - len(chunk)
                replies.append(self._range_reply(q, start, block + 1, chunk + scids[:take], False))
                chunk, scids, start = [], scids[take:], block
            chunk += scids
        replies.append(self._range_reply(q, start, end, chunk, True))
        return replies

    def _range_reply(
        self, q: QueryChannelRange, start: int, end: int, scids: list[int], final: bool
    ) -> ReplyChannelRange:
        timestamps = checksums = None
        if q.wants_timestamps:
            timestamps = EncodedTimestamps(tuple(ChannelUpdateTimestamps(*self._per_direction(s, True)) for s in scids))
        if q.wants_checksums:
            checksums = tuple(ChannelUpdateChecksums(*self._per_direction(s, False)) for s in scids)
        return ReplyChannelRange(
            q.chain_hash, start, end - start, int(final), EncodedShortIds(tuple(scids)), timestamps, checksums
        )

    def _per_direction(self, scid: int, timestamps: bool) -> tuple[int, int]:
        u1, u2 = self._channels[scid].updates
        if timestamps:
            return (0 if u1 is None else u1.timestamp, 0 if u2 is None else u2.timestamp)
        return (0 if u1 is None else channel_update_checksum(u1), 0 if u2 is None else channel_update_checksum(u2))

    def _query_short_channel_ids(self, q: QueryShortChannelIds) -> GossipResult:
        if q.chain_hash not in self.chain_hashes:
            end = ReplyShortChannelIdsEnd(q.chain_hash, full_information=0)
            return GossipResult(False, "query_short_channel_ids: unknown chain_hash", reply=(end,))
        return GossipResult(True, reply=tuple(self.reply_short_channel_ids(q)))

    def reply_short_channel_ids(self, q: QueryShortChannelIds) -> list[Message]:
        """The announcements and updates asked for, then ``reply_short_channel_ids_end``.

        Unknown or spent channels are skipped; each ``node_announcement`` is sent once.
        """
        out: list[Message] = []
        sent_nodes: set[bytes] = set()
        for i, scid in enumerate(q.short_channel_ids):
            ch = self._live(scid)
            if ch is None:
                continue
            flags = q.flags_of(i)
            if flags & QUERY_FLAG_CHANNEL_ANNOUNCEMENT:
                out.append(ch.announcement)
            for d, bit in ((0, QUERY_FLAG_CHANNEL_UPDATE_1), (1, QUERY_FLAG_CHANNEL_UPDATE_2)):
                update = ch.updates[d]
                if flags & bit and update is not None:
                    out.append(update)
            for node_id, bit in zip(ch.node_ids, (QUERY_FLAG_NODE_ANNOUNCEMENT_1, QUERY_FLAG_NODE_ANNOUNCEMENT_2)):
                ann = self._nodes.get(node_id)
                if flags & bit and ann is not None and node_id not in sent_nodes:
                    sent_nodes.add(node_id)
                    out.append(ann)
        out.append(ReplyShortChannelIdsEnd(q.chain_hash, full_information=1))
        return out

    def messages_in_range(self, first_timestamp: int, timestamp_range: int) -> list[GossipMessage]:
        """Stored gossip with ``first_timestamp <= timestamp < first_timestamp + timestamp_range``.

        For a ``gossip_timestamp_filter``: a channel announcement counts with the
        timestamp of any of its updates and comes before them; node announcements
        come last; ``dont_forward`` updates and spent channels are left out.
        """
        end = first_timestamp + timestamp_range
        out: list[GossipMessage] = []
        nodes: list[GossipMessage] = []
        for scid in sorted(self._channels):
            ch = self._live(scid)
            if ch is None:
                continue
            updates = [
                u for u in ch.updates if u is not None and not u.dont_forward and first_timestamp <= u.timestamp < end
            ]
            if updates:
                out.append(ch.announcement)
                out.extend(updates)
        for node_id in sorted(self._nodes):
            ann = self._nodes[node_id]
            if first_timestamp <= ann.timestamp < end:
                nodes.append(ann)
        return out + nodes

    def query_for_reply(self, reply: ReplyChannelRange, with_flags: bool = True) -> QueryShortChannelIds | None:
        """The ``query_short_channel_ids`` for what a peer's reply has that we lack, or None.

        With ``with_flags`` (the peer offers ``gossip_queries_ex``) known channels
        are asked for the directions whose update is newer there (and differs, by
        checksum, when checksums came); without it only unknown channels are asked for.
        """
        scids: list[int] = []
        flags: list[int] = []
        for i, scid in enumerate(reply.short_channel_ids):
            ch = self._channels.get(scid)
            if ch is None:
                want = QUERY_FLAGS_ALL
            elif ch.spent_height is not None or not with_flags:
                continue
            else:
                want = 0
                for d, bit in ((0, QUERY_FLAG_CHANNEL_UPDATE_1), (1, QUERY_FLAG_CHANNEL_UPDATE_2)):
                    ours = ch.updates[d]
                    theirs = None if reply.timestamps is None else reply.timestamps.values[i][d]
                    if theirs is None:
                        newer = ours is None
                    else:
                        newer = theirs > (0 if ours is None else ours.timestamp)
                    if newer and ours is not None and reply.checksums is not None:
                        newer = reply.checksums[i][d] != channel_update_checksum(ours)
                    want |= bit if newer else 0
                if not want:
                    continue
            scids.append(scid)
            flags.append(want)
        if not scids:
            return None
        return QueryShortChannelIds.create(reply.chain_hash, scids, flags if with_flags else None)

    # -- persistence -----------------------------------------------------------

    def _announcement_row(self, scid: int) -> GossipRow:
        ch = self._channels[scid]
        return GossipRow("channel_announcement", _scid_key(scid), ch.announcement.encode(), ch.capacity_sat)

    @staticmethod
    def _update_row(msg: ChannelUpdate) -> GossipRow:
        return GossipRow("channel_update", _scid_key(msg.short_channel_id) + bytes([msg.direction]), msg.encode())

    @staticmethod
    def _node_row(msg: NodeAnnouncement) -> GossipRow:
        return GossipRow("node_announcement", msg.node_id.to_bytes(), msg.encode())

    def to_rows(self) -> list[GossipRow]:
        """Every accepted message (and spent mark), announcements first, for a sqlite table."""
        rows = [self._announcement_row(scid) for scid in sorted(self._channels)]
        for scid in sorted(self._channels):
            ch = self._channels[scid]
            if ch.spent_height is not None:
                rows.append(GossipRow("spent", _scid_key(scid), b"", ch.spent_height))
            rows.extend(self._update_row(u) for u in ch.updates if u is not None)
        rows.extend(self._node_row(self._nodes[n]) for n in sorted(self._nodes))
        return rows

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[GossipRow | tuple[str, bytes, bytes, int]],
        chain_hashes: bytes | Iterable[bytes],
        graph: ChannelGraph | None = None,
        config: GossipConfig | None = None,
    ) -> GossipStore:
        """Rebuild a store (and its graph) from :meth:`to_rows`' rows, in any order.

        The rows were checked when first accepted: signatures and the chain are
        not checked again. A row that does not decode raises :class:`GossipError`.
        """
        store = cls(chain_hashes, graph, config)
        by_kind: dict[str, list[GossipRow]] = {}
        for row in rows:
            r = GossipRow(*row)
            by_kind.setdefault(r.kind, []).append(r)
        for r in by_kind.pop("channel_announcement", []):
            store._add_channel(_decode_row(r, ChannelAnnouncement), r.value)
        for r in by_kind.pop("spent", []):
            ch = store._channels.get(int.from_bytes(r.key, "big"))
            if ch is not None:
                ch.spent_height = r.value
        for r in sorted(by_kind.pop("channel_update", []), key=lambda r: r.key):
            update = _decode_row(r, ChannelUpdate)
            ch = store._channels.get(update.short_channel_id)
            if ch is not None:
                store._apply_update(ch, update)
                ch.forwarded = ch.forwarded or not update.dont_forward
        for r in by_kind.pop("node_announcement", []):
            ann = _decode_row(r, NodeAnnouncement)
            if store._node_channels.get(ann.node_id.to_bytes()):
                store._nodes[ann.node_id.to_bytes()] = ann
        if by_kind:
            raise GossipError(f"unknown gossip row kind {min(by_kind)!r}")
        return store


M = TypeVar("M", bound=Message)


def _decode_row(row: GossipRow, cls: type[M]) -> M:
    try:
        msg = decode_message(row.message)
    except ValueError as e:
        raise GossipError(f"stored {row.kind} does not decode: {e}") from None
    if not isinstance(msg, cls):
        raise GossipError(f"stored {row.kind} row holds a {type(msg).__name__}")
    return msg
