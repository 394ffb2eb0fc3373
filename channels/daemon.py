"""`canal channeld`: the Lightning node's trio shell (lnd's role).

It owns the node's HD wallet (its own UTXOs fund channels), follows a `canal
chaind` for blocks and broadcasts, accepts and dials BOLT 8 peers, and serves
lnd's `lnrpc.Lightning` API over gRPC. Protocol decisions live in the sans-IO
cores; this module moves bytes and carries out their effects.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from base_chain.crypto import PrivateKey
from base_chain.params import ChainParams
from base_chain.rpc import make_server, write_rpc_endpoint
from base_chain.tx import Transaction
from base_chain.wallet import Wallet
from proto import lightning_pb2_grpc as ln_grpc

from .chainclient import ChainClient, ChainUnavailable
from .features import Features
from .peer import DEFAULT_FEATURES, PeerLink, PeerLinkError, accept, connect
from .wire import ErrorMessage, Message, WarningMessage
from base_chain.process import stop_on_signals, write_node_info

__all__ = ["LightningDaemon", "PeerState", "node_key_from_seed", "VERSION"]

log = logging.getLogger("canal.channeld")
VERSION = "0.1.0-canal"
SIMULTANEOUS_CONNECT_S = 5.0
#: gRPC worker threads: every open stream (SendPaymentV2, SubscribeInvoices, ...) holds one while it
#: lasts, so this bounds the payments a client can follow at once (lnd, in Go, has no such bound).
RPC_WORKERS = 256


async def _notify(handlers: list[Callable[..., Any]], *args: Any) -> None:
    """Call each hook of a layer in turn; a hook may be a plain function or a coroutine function."""
    for handler in handlers:
        result = handler(*args)
        if hasattr(result, "__await__"):
            await result


def node_key_from_seed(seed: bytes) -> PrivateKey:
    """The node's identity key, derived from the wallet seed (restoring the seed restores the node id)."""
    return PrivateKey(hmac.new(seed, b"canal/node-identity/v1", hashlib.sha256).digest())


@dataclass(eq=False)
class PeerState:
    link: PeerLink
    address: str
    inbound: bool
    connected_at: float
    cancel: trio.CancelScope = field(default_factory=trio.CancelScope)
    errors: list[str] = field(default_factory=list)

    @property
    def pubkey_hex(self) -> str:
        return self.link.remote_id_hex


class LightningDaemon:
    def __init__(
        self,
        params: ChainParams,
        datadir: Path,
        chain_datadir: Path,
        chain_rpc: tuple[str, int] | None = None,
        listen_port: int = 0,
        rpc_port: int = 0,
        alias: str = "",
        clock: Callable[[], float] = time.time,
        restore_seed: bytes | None = None,
    ) -> None:
        self.restore_seed = restore_seed
        self.params = params
        self.datadir = datadir
        self.chain_datadir = chain_datadir
        self.chain_rpc = chain_rpc
        self.want_listen_port = listen_port
        self.want_rpc_port = rpc_port
        self.clock = clock
        self.wallet: Wallet
        self.node_key: PrivateKey
        self.alias = alias
        self.chain: ChainClient
        self.trio_token: trio.lowlevel.TrioToken
        self.peers: dict[str, PeerState] = {}
        self.features: Features = DEFAULT_FEATURES
        self.listen_port = 0
        self.rpc_port = 0
        self.tip_height = 0
        self.tip_hash = ""
        self.tip_time = 0
        self.synced = False
        self._stop = trio.Event()
        self._nursery: trio.Nursery
        self._sync_lock = trio.Lock()
        #: Hooks for the channel layer: called on the trio thread.
        self.message_handlers: list[Callable[[PeerState, Message], Any]] = []
        self.block_handlers: list[Callable[[Any, int, bool], Any]] = []
        self.peer_handlers: list[Callable[[PeerState, bool], Any]] = []

    @property
    def identity_pubkey(self) -> str:
        return self.node_key.public_key().to_bytes().hex()

    def now(self) -> int:
        return int(self.clock())

    # --- lifecycle --------------------------------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.trio_token = trio.lowlevel.current_trio_token()
        self.wallet = Wallet.open(self.datadir / "wallet.sqlite", self.params, seed=self.restore_seed)
        self.node_key = node_key_from_seed(bytes.fromhex(self.wallet.seed_hex()))
        if not self.alias:
            self.alias = self.identity_pubkey[:20]
        host, port = self.chain_rpc if self.chain_rpc else ("127.0.0.1", None)
        self.chain = ChainClient(self.chain_datadir, host=host, port=port)
        info = await self.chain.info()
        if info.chain != self.params.name:
            raise RuntimeError(f"chain node at {host}:{port} is on '{info.chain}', this node on '{self.params.name}'")
        self.setup()
        server = None
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await self.sync_chain()
                listeners = await trio.open_tcp_listeners(self.want_listen_port, host="127.0.0.1")
                self.listen_port = listeners[0].socket.getsockname()[1]
                nursery.start_soon(trio.serve_listeners, self._serve_inbound, listeners)
                server, self.rpc_port = make_server(self.datadir, self.want_rpc_port, [], self.permissions(),
                                                    max_workers=RPC_WORKERS)
                ln_grpc.add_LightningServicer_to_server(self.servicer_class()(self), server)
                self.register_services(server)
                server.start()
                write_rpc_endpoint(self.datadir, self.rpc_port)
                write_node_info(self.datadir, chain=self.params.name, identity_pubkey=self.identity_pubkey,
                                listen_port=self.listen_port, rpc_port=self.rpc_port)
                nursery.start_soon(self._follow_chain)
                nursery.start_soon(stop_on_signals, self.request_stop)
                nursery.start_soon(self.started)
                log.info("lightning node %s (%s) on %s: peers 127.0.0.1:%d, rpc 127.0.0.1:%d",
                         self.identity_pubkey, self.alias, self.params.name, self.listen_port, self.rpc_port)
                task_status.started(self)
                await self._stop.wait()
                nursery.cancel_scope.cancel()
        finally:
            if server is not None:
                srv = server
                await trio.to_thread.run_sync(lambda: srv.stop(grace=0.5).wait())
            self.chain.close()
            self.wallet.close()
            log.info("stopped")

    def servicer_class(self) -> type[Any]:
        from .service import LightningServicer

        return LightningServicer

    def setup(self) -> None:
        """Extension point: attach layers (channels, payments) once the wallet and chain client exist."""

    async def started(self) -> None:
        """Extension point: runs once the node serves (e.g. reconnect to channel peers)."""

    def register_services(self, server: Any) -> None:
        """Extension point: more gRPC services (Router, Invoices) register here."""

    def permissions(self) -> dict[str, set[str]]:
        """Extension point: the macaroon permissions of every gRPC method served (a layer adds its own)."""
        from .service import LN_PERMISSIONS

        return dict(LN_PERMISSIONS)

    def spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run a background task in the daemon's nursery."""
        self._nursery.start_soon(fn, *args)

    def request_stop(self) -> None:
        self._stop.set()



    # --- following the chain ----------------------------------------------------------------------------

    async def _follow_chain(self) -> None:
        while True:
            send, recv = trio.open_memory_channel[Any](1000)
            try:
                self.chain.subscribe_blocks(send, self.trio_token)
                await self.sync_chain()
                async for _event in recv:
                    await self.sync_chain()
            except ChainUnavailable as e:
                log.warning("chain node unavailable: %s", e)
            self.synced = False
            await trio.sleep(1.0)

    async def sync_chain(self) -> None:
        """Bring the wallet (and the channel layer) to the chain node's tip, undoing reorged blocks."""
        async with self._sync_lock:
            tip = await self.chain.height()
            best = self.wallet.best_block()
            if best is None:
                # A new wallet has no history before now: start at the tip (lnd's wallet birthday).
                block = await self.chain.block(await self.chain.block_hash(tip))
                self.wallet.block_connected(block, tip)
                await self._on_block(block, tip, True)
                best = self.wallet.best_block()
                assert best is not None
            best_hash, best_height = best
            # Undo our blocks that are no longer on the chain node's active chain.
            while best_height > 0 and (best_height > tip or await self.chain.block_hash(best_height) != best_hash[::-1].hex()):
                block = await self.chain.block(best_hash[::-1].hex())
                self.wallet.block_disconnected(block, best_height)
                await self._on_block(block, best_height, False)
                best_hash, best_height = block.header.prev_block, best_height - 1
            for height in range(best_height + 1, tip + 1):
                block = await self.chain.block(await self.chain.block_hash(height))
                self.wallet.block_connected(block, height)
                await self._on_block(block, height, True)
            self.tip_height = tip
            self.tip_hash = await self.chain.block_hash(tip)
            header_block = await self.chain.block(self.tip_hash)
            self.tip_time = header_block.header.time
            self.synced = True

    async def _on_block(self, block: Any, height: int, connected: bool) -> None:
        await _notify(self.block_handlers, block, height, connected)

    async def broadcast(self, tx: Transaction) -> str:
        txid = await self.chain.broadcast(tx)
        try:
            self.wallet.commit(tx)
        except Exception as e:  # not every broadcast concerns the wallet (e.g. a justice tx pays elsewhere)
            log.debug("wallet does not track %s: %s", tx.txid_hex(), e)
        return txid

    # --- peers ----------------------------------------------------------------------------------------------------

    async def _serve_inbound(self, stream: trio.SocketStream) -> None:
        try:
            host, port = stream.socket.getpeername()[:2]
            link = await accept(stream, self.node_key, self.params.genesis_hash, self.features)
        except (PeerLinkError, OSError) as e:
            log.info("inbound connection refused: %s", e)
            return
        await self._run_peer(link, f"{host}:{port}", inbound=True)

    async def connect_peer(self, pubkey_hex: str, host: str, port: int) -> None:
        from base_chain.crypto import PublicKey

        if pubkey_hex == self.identity_pubkey:
            raise PeerLinkError("cannot make connection to self")
        if pubkey_hex in self.peers:
            raise PeerLinkError(f"already connected to peer: {pubkey_hex}@{host}:{port}")
        remote = PublicKey.from_bytes(bytes.fromhex(pubkey_hex))
        link = await connect(host, port, self.node_key, remote, self.params.genesis_hash, self.features)
        started = trio.Event()
        self._nursery.start_soon(functools.partial(self._run_peer, link, f"{host}:{port}", False, started))
        await started.wait()

    async def disconnect_peer(self, pubkey_hex: str) -> None:
        state = self.peers.get(pubkey_hex)
        if state is None:
            raise PeerLinkError(f"peer {pubkey_hex} is not connected")
        state.cancel.cancel()

    def _keep_new(self, key: str, inbound: bool) -> bool:
        """Of two simultaneous connections, keep the one initiated by the node with the smaller id."""
        they_initiated = inbound
        initiator = key if they_initiated else self.identity_pubkey
        other = self.identity_pubkey if they_initiated else key
        return initiator < other

    async def _run_peer(self, link: PeerLink, address: str, inbound: bool, started: trio.Event | None = None) -> None:
        key = link.remote_id_hex
        old = self.peers.get(key)
        if old is not None:
            if self.clock() - old.connected_at < SIMULTANEOUS_CONNECT_S and not self._keep_new(key, inbound):
                # Both sides dialed at once: keep the connection the smaller node id initiated, on both sides.
                log.info("peer %s: dropping the duplicate connection", key)
                if started is not None:
                    started.set()
                await link.aclose()
                return
            old.cancel.cancel()  # a reconnect replaces the old connection
        state = PeerState(link, address, inbound, self.clock())
        self.peers[key] = state
        log.info("peer %s connected (%s %s)", key, "from" if inbound else "to", address)
        if started is not None:
            started.set()
        try:
            await _notify(self.peer_handlers, state, True)
            with state.cancel:
                while True:
                    msg = await link.receive()
                    if isinstance(msg, (ErrorMessage, WarningMessage)):
                        text = msg.printable_data()
                        state.errors.append(text)
                        log.warning("peer %s sent %s: %s", key, msg.NAME, text)
                    await _notify(self.message_handlers, state, msg)
        except PeerLinkError as e:
            log.info("peer %s: %s", key, e.reason)
        finally:
            current = self.peers.get(key) is state
            if current:
                del self.peers[key]
            await link.aclose()
            # A connection replaced by a newer one says nothing: the channels already moved to the new one.
            if current:
                with trio.CancelScope(shield=True):
                    try:
                        await _notify(self.peer_handlers, state, False)
                    except Exception:  # a failing handler must not keep a dead peer around
                        log.exception("peer handler failed")
            log.info("peer %s disconnected", key)
