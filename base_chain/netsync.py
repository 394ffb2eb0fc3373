"""Headers-first block sync and transaction relay between peers, as a sans-IO core.

The daemon hands it application messages from peers whose handshake is complete
and the node updates it caused; it answers with messages to send and peers to
punish. It never touches a socket or a clock (time is passed in).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from .block import BlockHeader
from .mempool import MempoolReject
from .node import ChainNode, NodeUpdate
from .chainstate import BlockConnected, BlockIndex
from .p2p.messages import (
    MSG_BLOCK,
    MSG_TX,
    MSG_WITNESS_BLOCK,
    MSG_WITNESS_TX,
    MSG_WTX,
    InvVector,
    Message,
    MsgAddr,
    MsgBlock,
    MsgGetAddr,
    MsgGetData,
    MsgGetHeaders,
    MsgHeaders,
    MsgInv,
    MsgMempool,
    MsgNotFound,
    MsgSendHeaders,
    MsgTx,
    TimestampedAddr,
)
from .validation import BlockValidationError

__all__ = ["Send", "Punish", "SyncAction", "PeerSyncState", "SyncManager"]

MAX_BLOCKS_IN_FLIGHT = 16
MAX_HEADERS = 2000
# Block failures that do not prove the peer sent a consensus-invalid block
# (a mutated copy of a valid block, or a block we cannot place yet).
_NOT_PEER_FAULT = {"prev-blk-not-found", "bad-txnmrklroot", "bad-txns-duplicate", "bad-witness-merkle-match",
                   "bad-witness-nonce-size", "unexpected-witness", "time-too-new"}


@dataclass(frozen=True, slots=True)
class Send:
    peer_id: int
    message: Message


@dataclass(frozen=True, slots=True)
class Punish:
    peer_id: int
    score: int
    reason: str


SyncAction = Send | Punish


@dataclass(slots=True)
class PeerSyncState:
    peer_id: int
    inbound: bool
    prefers_headers: bool = False
    in_flight: set[bytes] = field(default_factory=set)
    best_known_height: int = 0
    best_known: BlockIndex | None = None  # the most-work block we know the peer has
    synced_headers: int = -1
    synced_blocks: int = -1
    listen_addr: TimestampedAddr | None = None


class SyncManager:
    def __init__(self, node: ChainNode) -> None:
        self.node = node
        self.peers: dict[int, PeerSyncState] = {}
        self._rejected: OrderedDict[bytes, None] = OrderedDict()  # recently rejected txids
        self.known_addrs: dict[tuple[str, int], TimestampedAddr] = {}

    # --- peer lifecycle -----------------------------------------------------------------------

    def peer_connected(self, peer_id: int, inbound: bool, start_height: int) -> list[SyncAction]:
        self.peers[peer_id] = PeerSyncState(peer_id, inbound, best_known_height=start_height)
        chain = self.node.chain
        return [
            Send(peer_id, MsgSendHeaders()),
            Send(peer_id, MsgGetHeaders(tuple(chain.locator(chain.best_header)))),
            Send(peer_id, MsgGetAddr()),
        ]

    def peer_disconnected(self, peer_id: int) -> list[SyncAction]:
        state = self.peers.pop(peer_id, None)
        if state is None or not state.in_flight:
            return []
        # Ask someone else for the blocks this peer was sending.
        return self._request_blocks()

    # --- incoming messages -----------------------------------------------------------------------

    def receive(self, peer_id: int, msg: Message, now: int) -> tuple[list[SyncAction], NodeUpdate]:
        state = self.peers.get(peer_id)
        update = NodeUpdate()
        if state is None:
            return [], update
        if isinstance(msg, MsgHeaders):
            return self._on_headers(state, msg.headers, now), update
        if isinstance(msg, MsgBlock):
            return self._on_block(state, msg, now)
        if isinstance(msg, MsgTx):
            return self._on_tx(state, msg, now)
        if isinstance(msg, MsgInv):
            return self._on_inv(state, msg.inventory), update
        if isinstance(msg, MsgGetHeaders):
            return self._on_getheaders(state, msg), update
        if isinstance(msg, MsgGetData):
            return self._on_getdata(state, msg.inventory), update
        if isinstance(msg, MsgNotFound):
            for inv in msg.inventory:
                state.in_flight.discard(inv.hash)
            return self._request_blocks(), update
        if isinstance(msg, MsgSendHeaders):
            state.prefers_headers = True
        elif isinstance(msg, MsgGetAddr):
            addrs = tuple(list(self.known_addrs.values())[:1000])
            return ([Send(peer_id, MsgAddr(addrs))] if addrs else []), update
        elif isinstance(msg, MsgAddr):
            for a in msg.addresses[:1000]:
                self.known_addrs[(a.addr.host, a.addr.port)] = a
        elif isinstance(msg, MsgMempool):
            announce = tuple(InvVector(MSG_TX, t) for t in self.node.mempool.txids())
            return ([Send(peer_id, MsgInv(announce[:50_000]))] if announce else []), update
        return [], update

    def _on_headers(self, state: PeerSyncState, headers: tuple[BlockHeader, ...], now: int) -> list[SyncAction]:
        chain = self.node.chain
        out: list[SyncAction] = []
        if not headers:
            return self._request_blocks()
        if len(headers) > MAX_HEADERS:
            return [Punish(state.peer_id, 20, "headers message size")]
        for i, header in enumerate(headers):
            if i and header.prev_block != headers[i - 1].hash:
                return [Punish(state.peer_id, 20, "non-continuous headers sequence")]
            try:
                idx = chain.accept_header(header, now)
            except BlockValidationError as e:
                if e.reason == "prev-blk-not-found" and i == 0:
                    # A new tip we cannot connect yet: ask for the path to it.
                    return [Send(state.peer_id, MsgGetHeaders(tuple(chain.locator(chain.best_header))))]
                return [Punish(state.peer_id, 100, f"invalid header received: {e.reason}")]
            state.synced_headers = max(state.synced_headers, idx.height)
            self._peer_has(state, idx)
        if len(headers) == MAX_HEADERS:
            last = chain.index[headers[-1].hash]
            out.append(Send(state.peer_id, MsgGetHeaders(tuple(chain.locator(last)))))
        return out + self._request_blocks()

    @staticmethod
    def _peer_has(state: PeerSyncState, idx: BlockIndex) -> None:
        state.best_known_height = max(state.best_known_height, idx.height)
        if state.best_known is None or idx.chain_work > state.best_known.chain_work:
            state.best_known = idx

    @staticmethod
    def _can_serve(state: PeerSyncState, idx: BlockIndex) -> bool:
        known = state.best_known
        return known is not None and known.height >= idx.height and known.ancestor(idx.height) is idx

    def _request_blocks(self) -> list[SyncAction]:
        """Spread the downloads of missing blocks over peers that have them."""
        in_flight = {h for p in self.peers.values() for h in p.in_flight}
        wanted = [i for i in self.node.chain.missing_blocks(256) if i.hash not in in_flight]
        out: list[SyncAction] = []
        requests: dict[int, list[InvVector]] = {}
        for idx in wanted:
            candidates = [p for p in self.peers.values()
                          if self._can_serve(p, idx) and len(p.in_flight) < MAX_BLOCKS_IN_FLIGHT]
            if not candidates:
                break
            peer = min(candidates, key=lambda p: len(p.in_flight))
            peer.in_flight.add(idx.hash)
            requests.setdefault(peer.peer_id, []).append(InvVector(MSG_WITNESS_BLOCK, idx.hash))
        for peer_id, inv in requests.items():
            out.append(Send(peer_id, MsgGetData(tuple(inv))))
        return out

    def _on_block(self, state: PeerSyncState, msg: MsgBlock, now: int) -> tuple[list[SyncAction], NodeUpdate]:
        block = msg.block
        state.in_flight.discard(block.hash)
        try:
            update = self.node.submit_block(block, now)
        except BlockValidationError as e:
            if e.reason == "prev-blk-not-found":
                chain = self.node.chain
                return [Send(state.peer_id, MsgGetHeaders(tuple(chain.locator(chain.best_header))))], NodeUpdate()
            if e.reason in _NOT_PEER_FAULT:
                return self._request_blocks(), NodeUpdate()
            return [Punish(state.peer_id, 100, f"invalid block: {e.reason}")], NodeUpdate()
        idx = self.node.chain.index.get(block.hash)
        if idx is not None:
            state.synced_blocks = max(state.synced_blocks, idx.height)
            self._peer_has(state, idx)
        return self.relay(update, source=state.peer_id) + self._request_blocks(), update

    def _on_tx(self, state: PeerSyncState, msg: MsgTx, now: int) -> tuple[list[SyncAction], NodeUpdate]:
        tx = msg.tx
        txid = tx.txid
        if self.node.mempool.get(txid) is not None or txid in self._rejected:
            return [], NodeUpdate()
        try:
            update = self.node.submit_tx(tx, now)
        except MempoolReject:
            self._rejected[txid] = None
            while len(self._rejected) > 10_000:
                self._rejected.popitem(last=False)
            return [], NodeUpdate()
        return self.relay(update, source=state.peer_id), update

    def _on_inv(self, state: PeerSyncState, inventory: tuple[InvVector, ...]) -> list[SyncAction]:
        chain = self.node.chain
        want_tx: list[InvVector] = []
        out: list[SyncAction] = []
        for inv in inventory:
            kind = inv.type & ~(1 << 30)
            if kind == MSG_BLOCK:
                if inv.hash not in chain.index:
                    out.append(Send(state.peer_id, MsgGetHeaders(tuple(chain.locator(chain.best_header)), inv.hash)))
            elif kind in (MSG_TX, MSG_WTX):
                if self.node.mempool.get(inv.hash) is None and inv.hash not in self._rejected:
                    want_tx.append(InvVector(MSG_WITNESS_TX, inv.hash))
        if want_tx:
            out.append(Send(state.peer_id, MsgGetData(tuple(want_tx))))
        return out

    def _on_getheaders(self, state: PeerSyncState, msg: MsgGetHeaders) -> list[SyncAction]:
        chain = self.node.chain
        fork = chain.find_fork(msg.locator)
        headers: list[BlockHeader] = []
        for height in range(fork.height + 1, min(chain.height, fork.height + MAX_HEADERS) + 1):
            idx = chain.active[height]
            headers.append(idx.header)
            if idx.hash == msg.hash_stop:
                break
        return [Send(state.peer_id, MsgHeaders(tuple(headers)))]

    def _on_getdata(self, state: PeerSyncState, inventory: tuple[InvVector, ...]) -> list[SyncAction]:
        out: list[SyncAction] = []
        missing: list[InvVector] = []
        for inv in inventory:
            kind = inv.type & ~(1 << 30)
            if kind == MSG_BLOCK:
                block = self.node.chain.get_block(inv.hash)
                if block is None:
                    missing.append(inv)
                else:
                    out.append(Send(state.peer_id, MsgBlock(block)))
            elif kind in (MSG_TX, MSG_WTX):
                entry = self.node.mempool.get(inv.hash)
                if entry is None:
                    missing.append(inv)
                else:
                    out.append(Send(state.peer_id, MsgTx(entry.tx)))
        if missing:
            out.append(Send(state.peer_id, MsgNotFound(tuple(missing))))
        return out

    # --- announcing our own news -------------------------------------------------------------------------

    def relay(self, update: NodeUpdate, source: int | None = None) -> list[SyncAction]:
        """Announce new blocks (headers or inv) and new transactions (inv) to the other peers."""
        out: list[SyncAction] = []
        connected = [ev for ev in update.chain_events if isinstance(ev, BlockConnected)]
        if connected:
            headers = tuple(ev.index.header for ev in connected[-MAX_HEADERS:])
            tip = connected[-1].index
            for peer in self.peers.values():
                if peer.peer_id == source or peer.best_known_height >= tip.height and peer.synced_blocks >= tip.height:
                    continue
                if peer.prefers_headers:
                    out.append(Send(peer.peer_id, MsgHeaders(headers)))
                else:
                    out.append(Send(peer.peer_id, MsgInv((InvVector(MSG_BLOCK, tip.hash),))))
        if update.mempool_added:
            inv = tuple(InvVector(MSG_TX, tx.txid) for tx in update.mempool_added)
            for peer in self.peers.values():
                if peer.peer_id != source:
                    out.append(Send(peer.peer_id, MsgInv(inv)))
        return out
