"""`canal chaind`: the chain node's trio shell around the sans-IO cores.

One trio loop owns all node state. It runs the P2P listener and outbound
connections (one task per peer, each with a PeerProtocol for the connection
rules and the SyncManager for blocks and transactions), the gRPC server
(grpcio's thread pool, entering the loop with trio.from_thread), and the
notification fan-out to streaming subscribers.
"""

from __future__ import annotations

import itertools
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import trio

from proto import chain_pb2 as pb
from proto import chain_pb2_grpc as pb_grpc

from .chainstate import BlockConnected, BlockDisconnected
from .netsync import Punish, Send, SyncAction, SyncManager
from .node import ChainNode, NodeUpdate
from .notify import ConfNote, Note, SpendNote
from .p2p.messages import NODE_NETWORK, NODE_WITNESS, NetAddr, TimestampedAddr
from .p2p.protocol import Deliver, Disconnect, HandshakeComplete, PeerProtocol, SendBytes
from .params import ChainParams
from .rpc import make_server, write_rpc_endpoint
from .service import PERMISSIONS, ChainServicer, RpcError
from .tx import OutPoint, Transaction
from .process import NODE_INFO_FILE, stop_on_signals, write_node_info

__all__ = ["ChainDaemon", "NODE_INFO_FILE", "read_node_info"]

log = logging.getLogger("canal.chaind")
TICK_S = 5.0


@dataclass(eq=False)
class PeerConn:
    peer_id: int
    addr: str
    inbound: bool
    protocol: PeerProtocol
    outbox: trio.MemorySendChannel[bytes]
    cancel: trio.CancelScope
    conntime: int
    handshake: HandshakeComplete | None = None
    bytes_sent: int = 0
    bytes_recv: int = 0
    misbehavior: int = 0
    closed: bool = False


@dataclass(eq=False)
class _Subscriptions:
    blocks: set[trio.MemorySendChannel[Any]] = field(default_factory=set)
    mempool: set[trio.MemorySendChannel[Any]] = field(default_factory=set)
    notes: dict[int, trio.MemorySendChannel[Any]] = field(default_factory=dict)


def read_node_info(datadir: Path) -> dict[str, Any]:
    """What a running node wrote about itself (chain, ports, pid) in its data dir."""
    data: dict[str, Any] = json.loads((datadir / NODE_INFO_FILE).read_text())
    return data


class ChainDaemon:
    def __init__(
        self,
        params: ChainParams,
        datadir: Path,
        p2p_port: int | None = None,
        rpc_port: int | None = None,
        connect: list[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.params = params
        self.datadir = datadir
        self.want_p2p_port = params.default_p2p_port if p2p_port is None else p2p_port
        self.want_rpc_port = params.default_rpc_port if rpc_port is None else rpc_port
        self.connect = list(connect or [])
        self.clock = clock
        self.node: ChainNode
        self.sync: SyncManager
        self.trio_token: trio.lowlevel.TrioToken
        self.conns: dict[int, PeerConn] = {}
        self.subs = _Subscriptions()
        self.p2p_port = 0
        self.rpc_port = 0
        self._ids = itertools.count(1)
        self._nonce = secrets.randbits(64)
        self._stop = trio.Event()
        self._nursery: trio.Nursery
        self._persistent: dict[str, trio.CancelScope] = {}

    def now(self) -> int:
        return int(self.clock())

    # --- lifecycle -------------------------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.node = ChainNode(self.params, self.datadir)
        self.sync = SyncManager(self.node)
        self.trio_token = trio.lowlevel.current_trio_token()
        server = None
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                listeners = await trio.open_tcp_listeners(self.want_p2p_port, host="127.0.0.1")
                self.p2p_port = listeners[0].socket.getsockname()[1]
                nursery.start_soon(trio.serve_listeners, self._serve_inbound, listeners)
                server, self.rpc_port = make_server(self.datadir, self.want_rpc_port, [], PERMISSIONS, max_workers=32)
                pb_grpc.add_ChainServiceServicer_to_server(ChainServicer(self), server)
                server.start()
                write_rpc_endpoint(self.datadir, self.rpc_port)
                write_node_info(self.datadir, chain=self.params.name, p2p_port=self.p2p_port, rpc_port=self.rpc_port)
                for target in self.connect:
                    self.add_node(target, "add")
                nursery.start_soon(self._tick_loop)
                nursery.start_soon(stop_on_signals, self.request_stop, log)
                log.info("%s node at height %d: p2p 127.0.0.1:%d, rpc 127.0.0.1:%d, datadir %s",
                         self.params.name, self.node.chain.height, self.p2p_port, self.rpc_port, self.datadir)
                task_status.started(self)
                await self._stop.wait()
                nursery.cancel_scope.cancel()
        finally:
            if server is not None:
                await trio.to_thread.run_sync(lambda: server.stop(grace=0.5).wait())
            self.node.close()
            log.info("stopped")

    def request_stop(self) -> None:
        self._stop.set()



    def size_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.datadir.glob("chain.sqlite*"))

    async def _tick_loop(self) -> None:
        while True:
            await trio.sleep(TICK_S)
            now = self.now()
            for conn in list(self.conns.values()):
                self._carry_out(conn, conn.protocol.tick(now))

    # --- peers -----------------------------------------------------------------------------------------

    def add_node(self, target: str, command: str) -> None:
        host, _, port_s = target.rpartition(":")
        if not host or not port_s.isdigit():
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"Error: invalid node address '{target}' (HOST:PORT)")
        if command == "remove":
            scope = self._persistent.pop(target, None)
            if scope is not None:
                scope.cancel()
            for conn in self.conns.values():
                if conn.addr == target and not conn.inbound:
                    conn.cancel.cancel()
            return
        if target in self._persistent:
            return
        scope = trio.CancelScope()
        if command == "add":
            self._persistent[target] = scope
        self._nursery.start_soon(self._outbound, host, int(port_s), scope, command == "add")

    async def _outbound(self, host: str, port: int, scope: trio.CancelScope, persistent: bool) -> None:
        delay = 0.5
        with scope:
            while True:
                try:
                    stream = await trio.open_tcp_stream(host, port)
                except OSError as e:
                    log.debug("connect %s:%d failed: %s", host, port, e)
                else:
                    delay = 0.5
                    await self._run_peer(stream, f"{host}:{port}", inbound=False)
                if not persistent:
                    return
                await trio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _serve_inbound(self, stream: trio.SocketStream) -> None:
        try:
            host, port = stream.socket.getpeername()[:2]
        except OSError:
            return
        await self._run_peer(stream, f"{host}:{port}", inbound=True)

    async def _run_peer(self, stream: trio.abc.Stream, addr: str, inbound: bool) -> None:
        peer_id = next(self._ids)
        send, recv = trio.open_memory_channel[bytes](1000)
        now = self.now()
        protocol = PeerProtocol(self.params.magic, self._nonce, self.node.chain.height, not inbound)
        conn = PeerConn(peer_id, addr, inbound, protocol, send, trio.CancelScope(), now)
        self.conns[peer_id] = conn
        log.info("peer %d %s %s", peer_id, "from" if inbound else "to", addr)
        try:
            with conn.cancel:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._writer, conn, stream, recv)
                    self._carry_out(conn, protocol.start(now))
                    while not conn.closed:
                        data = await stream.receive_some(65536)
                        if not data:
                            break
                        conn.bytes_recv += len(data)
                        self._carry_out(conn, protocol.receive_bytes(bytes(data), self.now()))
                    nursery.cancel_scope.cancel()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
            log.info("peer %d connection lost: %s", peer_id, e)
        finally:
            conn.closed = True
            self.conns.pop(peer_id, None)
            with trio.CancelScope(shield=True):
                await stream.aclose()
            if conn.handshake is not None:
                self._dispatch(self.sync.peer_disconnected(peer_id))
            log.info("peer %d disconnected", peer_id)

    async def _writer(self, conn: PeerConn, stream: trio.abc.Stream, recv: trio.MemoryReceiveChannel[bytes]) -> None:
        async for data in recv:
            await stream.send_all(data)
            conn.bytes_sent += len(data)

    def _carry_out(self, conn: PeerConn, actions: list[Any]) -> None:
        for action in actions:
            if conn.closed:
                return
            if isinstance(action, SendBytes):
                try:
                    conn.outbox.send_nowait(action.data)
                except trio.WouldBlock:
                    log.warning("peer %d is not reading; disconnecting", conn.peer_id)
                    self._close(conn)
            elif isinstance(action, Deliver):
                sync_actions, update = self.sync.receive(conn.peer_id, action.message, self.now())
                self._dispatch(sync_actions)
                self.publish(update)
            elif isinstance(action, HandshakeComplete):
                conn.handshake = action
                log.info("peer %d handshake: %s version %d height %d", conn.peer_id, action.user_agent,
                         action.peer_version, action.peer_height)
                self._dispatch(self.sync.peer_connected(conn.peer_id, conn.inbound, action.peer_height))
                if not conn.inbound:
                    host, _, port = conn.addr.rpartition(":")
                    self.sync.known_addrs[(host, int(port))] = TimestampedAddr(
                        self.now(), NetAddr.from_host(host, int(port), NODE_NETWORK | NODE_WITNESS))
            elif isinstance(action, Disconnect):
                log.info("peer %d: disconnecting: %s", conn.peer_id, action.reason)
                self._close(conn)

    def _close(self, conn: PeerConn) -> None:
        conn.closed = True
        conn.cancel.cancel()

    def _dispatch(self, actions: list[SyncAction]) -> None:
        for action in actions:
            conn = self.conns.get(action.peer_id)
            if conn is None or conn.closed:
                continue
            if isinstance(action, Send):
                self._carry_out(conn, conn.protocol.send(action.message))
            elif isinstance(action, Punish):
                conn.misbehavior += action.score
                log.warning("peer %d misbehaving (+%d): %s", conn.peer_id, action.score, action.reason)
                self._carry_out(conn, conn.protocol.misbehaving(action.score, action.reason))

    def peer_info(self) -> list[dict[str, Any]]:
        out = []
        for c in self.conns.values():
            st = self.sync.peers.get(c.peer_id)
            hs = c.handshake
            out.append(dict(
                id=c.peer_id, addr=c.addr, inbound=c.inbound,
                version=hs.peer_version if hs else 0, subver=hs.user_agent if hs else "",
                startingheight=hs.peer_height if hs else -1,
                synced_headers=st.synced_headers if st else -1, synced_blocks=st.synced_blocks if st else -1,
                conntime=c.conntime, bytessent=c.bytes_sent, bytesrecv=c.bytes_recv, misbehavior=c.misbehavior,
            ))
        return out

    # --- node operations (called on the trio thread) -------------------------------------------------

    def submit_tx(self, tx: Transaction) -> None:
        update = self.node.submit_tx(tx, self.now())
        self._dispatch(self.sync.relay(update))
        self.publish(update)

    def generate(self, n: int, script_pubkey: bytes) -> list[bytes]:
        hashes, update = self.node.generate(n, script_pubkey, self.now())
        self._dispatch(self.sync.relay(update))
        self.publish(update)
        return hashes

    # --- notifications -------------------------------------------------------------------------------------

    def publish(self, update: NodeUpdate) -> None:
        for ev in update.chain_events:
            connected = isinstance(ev, BlockConnected)
            assert isinstance(ev, (BlockConnected, BlockDisconnected))
            log.info("%s best=%s height=%d txs=%d", "UpdateTip:" if connected else "DisconnectTip:",
                     ev.index.hash_hex(), ev.index.height, len(ev.block.transactions))
            msg = pb.BlockEvent(connected=connected, hash=ev.index.hash_hex(), height=ev.index.height,
                                header_hex=ev.index.header.hex(), txids=[t.txid_hex() for t in ev.block.transactions])
            self._fan_out(self.subs.blocks, msg)
        for tx in update.mempool_added:
            self._fan_out(self.subs.mempool, pb.MempoolEvent(txid=tx.txid_hex(), raw_tx=tx.hex(), added=True))
        for txid, reason in update.mempool_removed:
            self._fan_out(self.subs.mempool, pb.MempoolEvent(txid=txid[::-1].hex(), added=False, reason=reason))
        self._route_notes(update.notes)

    def _fan_out(self, subs: set[trio.MemorySendChannel[Any]], msg: Any) -> None:
        for ch in list(subs):
            try:
                ch.send_nowait(msg)
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                subs.discard(ch)
                ch.close()

    def _route_notes(self, notes: list[Note]) -> None:
        for note in notes:
            ch = self.subs.notes.get(note.reg_id)
            if ch is None:
                continue
            try:
                ch.send_nowait(_note_to_pb(note))
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                self.subs.notes.pop(note.reg_id, None)
                self.node.notifier.cancel(note.reg_id)

    def subscribe_blocks(self) -> trio.MemoryReceiveChannel[Any]:
        send, recv = trio.open_memory_channel[Any](10_000)
        self.subs.blocks.add(send)
        return recv

    def subscribe_mempool(self) -> trio.MemoryReceiveChannel[Any]:
        send, recv = trio.open_memory_channel[Any](10_000)
        self.subs.mempool.add(send)
        return recv

    def register_confirmations(self, txid: bytes | None, num_confs: int, script: bytes | None,
                               height_hint: int) -> trio.MemoryReceiveChannel[Any]:
        node = self.node
        reg_id = node.notifier.register_confirmations(txid, num_confs, script)
        send, recv = trio.open_memory_channel[Any](1000)
        self.subs.notes[reg_id] = send
        # Historical dispatch: the transaction may already be in the chain.
        heights: range | list[int]
        if txid is not None:
            block_hash = node.store.find_tx_block(txid)
            idx = node.chain.index.get(block_hash) if block_hash else None
            heights = [idx.height] if idx is not None and node.chain.in_active_chain(idx) else []
        else:
            heights = range(max(height_hint, 1), node.chain.height + 1)
        self._replay(reg_id, heights)
        return recv

    def register_spend(self, outpoint: OutPoint, include_mempool: bool, height_hint: int) -> trio.MemoryReceiveChannel[Any]:
        node = self.node
        reg_id = node.notifier.register_spend(outpoint, include_mempool)
        send, recv = trio.open_memory_channel[Any](1000)
        self.subs.notes[reg_id] = send
        if node.chain.get_coin(outpoint) is None:
            # Already spent (or not yet created): look through the chain from the hint.
            start = height_hint
            if not start:
                block_hash = node.store.find_tx_block(outpoint.txid)
                idx = node.chain.index.get(block_hash) if block_hash else None
                start = idx.height if idx is not None else node.chain.height + 1
            self._replay(reg_id, range(max(start, 1), node.chain.height + 1))
        if include_mempool:
            spender = node.mempool.spends(outpoint)
            if spender is not None:
                entry = node.mempool.get(spender)
                if entry is not None:
                    self._route_notes(node.notifier.mempool_tx(entry.tx))
        return recv

    def _replay(self, reg_id: int, heights: Any) -> None:
        chain = self.node.chain
        for h in heights:
            block = chain.get_block(chain.active[h].hash)
            if block is not None:
                self._route_notes(self.node.notifier.block_connected(block, h, tip_height=chain.height, only=reg_id))


def _note_to_pb(note: Note) -> Any:
    if isinstance(note, ConfNote):
        return pb.ConfirmationEvent(
            kind=pb.ConfirmationEvent.Kind.Name(note.kind.value), txid=note.txid[::-1].hex(), block_hash=note.block_hash[::-1].hex(),
            block_height=note.block_height, tx_index=note.tx_index,
            raw_tx=note.tx.hex() if note.tx is not None else "", num_confs=note.num_confs,
        )
    assert isinstance(note, SpendNote)
    tx = note.spending_tx
    return pb.SpendEvent(
        kind=pb.SpendEvent.Kind.Name(note.kind.value), spending_txid=tx.txid_hex() if tx else "", spending_input_index=note.input_index,
        spending_tx=tx.hex() if tx else "", spending_height=note.height,
    )
