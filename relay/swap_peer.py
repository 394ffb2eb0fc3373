"""Party to party: the ``canalswap.SwapPeer`` gRPC service between two swap daemons, over TLS on 127.0.0.1.

What crosses it is never secret: the offer (terms, the secret's hash, the
initiator's swap key hash) and its answer, then each side's contract with its
funding transaction. The participant trusts only what it sees on chain: a
contract received here is audited by the swap core against the agreed terms and
counts only once it is deep enough on its chain.

Delivery is at-least-once. The sender keeps each message in the store's outbox
until the peer acknowledges it and retries forever (the peer may be down for a
while); every message is idempotent. The receiver persists what it got (the
swap core's Persist) before it acknowledges, and answers ``UNAVAILABLE`` when it
cannot take a message yet (the sender retries) or ``INVALID_ARGUMENT`` /
``NOT_FOUND`` with the reason.

Peers authenticate by TLS certificate on first use: the first connection to an
address fetches the peer's self-signed certificate and pins it for the
daemon's lifetime.
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import Awaitable, Callable
from concurrent import futures
from pathlib import Path
from typing import Any, Protocol

import grpc
import trio

from base_chain.rpc import ensure_tls
from proto import swap_pb2 as spb
from proto import swap_pb2_grpc as spb_grpc

from .swap_store import SwapStore

__all__ = ["PeerError", "PeerHandler", "PeerServicer", "PeerClient", "make_peer_server", "OutboxSender",
           "parse_hostport"]

log = logging.getLogger("canal.swapd.peer")
PEER_TIMEOUT_S = 10.0


class PeerError(Exception):
    """A message refused by this daemon: `code` tells the sender whether to retry (UNAVAILABLE) or not."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class PeerHandler(Protocol):
    async def on_offer(self, offer: spb.SwapOffer) -> spb.OfferReply: ...

    async def on_contract(self, message: spb.ContractMessage) -> None: ...


def parse_hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not HOST:PORT: {text!r}")
    return host, int(port)


class PeerServicer(spb_grpc.SwapPeerServicer):
    """Runs each call on the daemon's trio loop."""

    def __init__(self, handler: PeerHandler, token: trio.lowlevel.TrioToken) -> None:
        self._handler = handler
        self._token = token

    def _run(self, context: grpc.ServicerContext, fn: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return trio.from_thread.run(fn, trio_token=self._token)
        except PeerError as e:
            context.abort(e.code, e.message)
        except trio.RunFinishedError:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the swap daemon is stopping")

    def ProposeSwap(self, request: spb.SwapOffer, context: grpc.ServicerContext) -> spb.OfferReply:
        return self._run(context, lambda: self._handler.on_offer(request))  # type: ignore[no-any-return]

    def ShareContract(self, request: spb.ContractMessage, context: grpc.ServicerContext) -> spb.Ack:
        self._run(context, lambda: self._handler.on_contract(request))
        return spb.Ack()


def make_peer_server(datadir: Path, port: int, servicer: PeerServicer) -> tuple[grpc.Server, int]:
    """The peer-to-peer TLS server on 127.0.0.1 (the daemon's certificate; no macaroon: peers have none)."""
    cert_pem, key_pem = ensure_tls(datadir)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="peer"),
                         options=[("grpc.so_reuseport", 0)])
    spb_grpc.add_SwapPeerServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    address = f"127.0.0.1:{port}"
    try:
        bound = server.add_secure_port(address, grpc.ssl_server_credentials([(key_pem, cert_pem)]))
    except RuntimeError as e:
        raise OSError(f"cannot listen on {address}: {e}") from e
    if bound == 0:
        raise OSError(f"cannot listen on {address}")
    return server, bound


class PeerClient:
    """A connection to another swap daemon (blocking calls: run them in a thread)."""

    def __init__(self, address: str) -> None:
        host, port = parse_hostport(address)
        cert = ssl.get_server_certificate((host, port), timeout=PEER_TIMEOUT_S).encode()
        self._channel = grpc.secure_channel(
            f"{host}:{port}", grpc.ssl_channel_credentials(root_certificates=cert),
            options=[("grpc.ssl_target_name_override", "localhost")])
        self.stub = spb_grpc.SwapPeerStub(self._channel)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self._channel.close()

    def propose(self, offer: spb.SwapOffer) -> spb.OfferReply:
        return self.stub.ProposeSwap(offer, timeout=PEER_TIMEOUT_S)  # type: ignore[no-any-return]

    def share_contract(self, message: spb.ContractMessage) -> None:
        self.stub.ShareContract(message, timeout=PEER_TIMEOUT_S)


class Peers:
    """One pinned connection per peer address, dropped on failure (made again on the next try)."""

    def __init__(self) -> None:
        self._clients: dict[str, PeerClient] = {}

    async def call(self, address: str, fn: Callable[[PeerClient], Any]) -> Any:
        client = self._clients.get(address)
        if client is None:
            client = await trio.to_thread.run_sync(PeerClient, address)
            self._clients[address] = client
        try:
            return await trio.to_thread.run_sync(fn, client)
        except grpc.RpcError as e:
            if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                self._clients.pop(address, None)
                client.close()
            raise

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()


class OutboxSender:
    """Sends the store's outbox to the peers until each message is acknowledged."""

    def __init__(self, store: SwapStore, peers: Peers, retry_s: float = 1.0) -> None:
        self._store = store
        self._peers = peers
        self._retry_s = retry_s
        self._wake = trio.Event()
        self._failing: set[int] = set()
        """Messages whose delivery failed already (later failures are logged at debug level)."""

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake = trio.Event()
            for message in self._store.outbox():
                try:
                    if message.kind == "contract":
                        msg = spb.ContractMessage(swap_id=message.swap_id, **message.payload)
                        await self._peers.call(message.peer, functools.partial(PeerClient.share_contract, message=msg))
                    else:
                        log.error("dropping an outbox message of unknown kind %r", message.kind)
                    self._store.acknowledged(message.id)
                    self._failing.discard(message.id)
                    log.info("swap %s: %s delivered to %s", message.swap_id, message.kind, message.peer)
                except (grpc.RpcError, OSError) as e:
                    why = f"{e.code().name}: {e.details()}" if isinstance(e, grpc.RpcError) else str(e)
                    level = logging.DEBUG if message.id in self._failing else logging.INFO
                    self._failing.add(message.id)
                    log.log(level, "swap %s: %s to %s not delivered (%s), will retry", message.swap_id,
                            message.kind, message.peer, why)
            with trio.move_on_after(self._retry_s):
                await self._wake.wait()
