"""A Lightning peer connection on trio: BOLT 8 handshake and encryption, BOLT 1 init, ping and errors.

The cryptographic handshake and the message framing are the sans-IO cores in
`transport` and `wire`; this module only moves their bytes over a TCP stream,
applies timeouts, exchanges `init`, answers `ping`, and turns every malformed
message into a closed connection (`PeerLinkError`), never a crashed daemon.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable

import trio

from base_chain.crypto import PrivateKey, PublicKey

from .features import Feature, Features
from .transport import ACT_ONE_SIZE, ACT_THREE_SIZE, ACT_TWO_SIZE, Handshake, TransportError
from .wire import (
    ErrorMessage,
    Init,
    Message,
    Ping,
    Pong,
    UnknownMessage,
    WarningMessage,
    WireError,
    decode_message,
    encode_message,
)

__all__ = ["PeerLink", "PeerLinkError", "connect", "accept", "parse_node_uri", "DEFAULT_FEATURES"]

log = logging.getLogger("canal.peer")
HANDSHAKE_TIMEOUT_S = 15.0

#: What Canal's channel node supports and advertises in `init`.
DEFAULT_FEATURES = Features.of(
    required=[Feature.var_onion_optin, Feature.option_static_remotekey, Feature.payment_secret],
    optional=[
        Feature.option_data_loss_protect,
        Feature.option_upfront_shutdown_script,
        Feature.gossip_queries,
        Feature.basic_mpp,
        Feature.option_anchors_zero_fee_htlc_tx,
        Feature.option_shutdown_anysegwit,
        Feature.option_channel_type,
    ],
)


class PeerLinkError(Exception):
    """The connection must be closed; `reason` says why (whose fault it was is in the text)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_node_uri(uri: str) -> tuple[PublicKey, str, int]:
    """`node_id@host:port` → (node key, host, port); ValueError with a reason otherwise."""
    node_hex, sep, addr = uri.partition("@")
    if not sep:
        raise ValueError("expected node_id@host:port")
    try:
        key = PublicKey.from_bytes(bytes.fromhex(node_hex))
    except ValueError:
        raise ValueError(f"invalid node id '{node_hex}'") from None
    host, _, port_s = addr.rpartition(":")
    if not host or not port_s.isdigit() or not 0 < int(port_s) < 65536:
        raise ValueError(f"invalid address '{addr}' (HOST:PORT)")
    return key, host.strip("[]"), int(port_s)


async def _read_exact(stream: trio.abc.ReceiveStream, n: int, buf: bytearray) -> bytes:
    while len(buf) < n:
        data = await stream.receive_some(max(n - len(buf), 4096))
        if not data:
            raise PeerLinkError("connection closed during handshake")
        buf += data
    out = bytes(buf[:n])
    del buf[:n]
    return out


class PeerLink:
    """An encrypted, authenticated connection to one peer, after `init` was exchanged both ways."""

    def __init__(self, stream: trio.abc.Stream, handshake: Handshake, leftover: bytes) -> None:
        remote = handshake.remote_static
        assert remote is not None
        self.stream = stream
        self.remote_node_id: PublicKey = remote
        self.transport = handshake.transport()
        self.their_init: Init | None = None
        self._inbox: deque[bytes] = deque()
        self._send_lock = trio.Lock()
        self._closed = False
        if leftover:
            self._ingest(leftover)

    @property
    def remote_id_hex(self) -> str:
        return self.remote_node_id.to_bytes().hex()

    def _ingest(self, data: bytes) -> None:
        try:
            self._inbox.extend(self.transport.feed(data))
        except TransportError as e:
            raise PeerLinkError(f"peer sent an undecryptable message: {e}") from e

    async def send(self, msg: Message) -> None:
        if self._closed:
            raise PeerLinkError("connection is closed")
        data = self.transport.encrypt(encode_message(msg))
        async with self._send_lock:
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
                raise PeerLinkError(f"connection lost: {e}") from e

    async def _next_raw(self) -> bytes:
        while not self._inbox:
            try:
                data = await self.stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
                raise PeerLinkError(f"connection lost: {e}") from e
            if not data:
                raise PeerLinkError("peer closed the connection")
            self._ingest(bytes(data))
        return self._inbox.popleft()

    async def receive(self) -> Message:
        """The next application message. Pings are answered here; unknown odd messages are skipped."""
        while True:
            raw = await self._next_raw()
            try:
                msg = decode_message(raw)
            except WireError as e:
                await self._send_error_quietly(f"malformed message: {e.reason}")
                raise PeerLinkError(f"peer sent a malformed message: {e.reason}") from e
            if isinstance(msg, UnknownMessage):
                continue  # "it's OK to be odd"
            if isinstance(msg, Ping):
                pong = msg.response()
                if pong is not None:
                    await self.send(pong)
                continue
            if isinstance(msg, Pong):
                continue
            return msg

    async def _send_error_quietly(self, text: str, channel_id: bytes = bytes(32)) -> None:
        try:
            with trio.move_on_after(1):
                await self.send(ErrorMessage(channel_id, text.encode()[:1000]))
        except PeerLinkError:
            pass

    async def send_error(self, text: str, channel_id: bytes = bytes(32)) -> None:
        await self.send(ErrorMessage(channel_id, text.encode()[:1000]))

    async def send_warning(self, text: str, channel_id: bytes = bytes(32)) -> None:
        await self.send(WarningMessage(channel_id, text.encode()[:1000]))

    async def aclose(self) -> None:
        self._closed = True
        with trio.CancelScope(shield=True):
            await self.stream.aclose()

    async def _exchange_init(self, features: Features, chain_hash: bytes, known: Iterable[Feature]) -> None:
        await self.send(Init(Features(), features, networks=(chain_hash,)))
        with trio.move_on_after(HANDSHAKE_TIMEOUT_S) as scope:
            while True:
                raw = await self._next_raw()
                try:
                    first = decode_message(raw)
                except WireError as e:
                    raise PeerLinkError(f"malformed init: {e.reason}") from e
                if isinstance(first, UnknownMessage):
                    continue
                break
        if scope.cancelled_caught:
            raise PeerLinkError("no init from peer in time")
        if not isinstance(first, Init):
            raise PeerLinkError(f"expected init, got {getattr(first, 'NAME', type(first).__name__)}")
        unknown = first.all_features.unknown_required(list(known))
        if unknown:
            await self._send_error_quietly(f"unknown required feature bits {unknown}")
            raise PeerLinkError(f"peer requires features we do not know: {unknown}")
        if first.networks is not None and chain_hash not in first.networks:
            await self._send_error_quietly("no common chain")
            raise PeerLinkError("peer is on another chain (no common network in init)")
        self.their_init = first


def _known(features: Features) -> list[Feature]:
    return [f for f in Feature if features.has(f)]


async def connect(
    host: str, port: int, local_key: PrivateKey, remote: PublicKey, chain_hash: bytes,
    features: Features = DEFAULT_FEATURES,
) -> PeerLink:
    """Dial a peer (BOLT 8 initiator) and exchange init."""
    with trio.fail_after(HANDSHAKE_TIMEOUT_S):
        stream = await trio.open_tcp_stream(host, port)

    async def handshake() -> PeerLink:
        hs = Handshake.initiator(local_key, remote)
        buf = bytearray()
        await stream.send_all(hs.act_one())
        act_three = hs.receive_act(await _read_exact(stream, ACT_TWO_SIZE, buf))
        await stream.send_all(act_three)
        return PeerLink(stream, hs, bytes(buf))

    return await _establish(stream, handshake, features, chain_hash)


async def accept(
    stream: trio.abc.Stream, local_key: PrivateKey, chain_hash: bytes, features: Features = DEFAULT_FEATURES,
) -> PeerLink:
    """Answer an inbound connection (BOLT 8 responder) and exchange init."""

    async def handshake() -> PeerLink:
        hs = Handshake.responder(local_key)
        buf = bytearray()
        await stream.send_all(hs.receive_act(await _read_exact(stream, ACT_ONE_SIZE, buf)))
        hs.receive_act(await _read_exact(stream, ACT_THREE_SIZE, buf))
        return PeerLink(stream, hs, bytes(buf))

    return await _establish(stream, handshake, features, chain_hash)


async def _establish(
    stream: trio.abc.Stream, handshake: Callable[[], Awaitable[PeerLink]], features: Features, chain_hash: bytes,
) -> PeerLink:
    """Run a BOLT 8 handshake then the init exchange under one timeout; close the stream on any failure."""
    try:
        with trio.fail_after(HANDSHAKE_TIMEOUT_S):
            link = await handshake()
            await link._exchange_init(features, chain_hash, _known(features))
            return link
    except TransportError as e:
        await stream.aclose()
        raise PeerLinkError(f"handshake failed: {e}") from e
    except trio.TooSlowError:
        await stream.aclose()
        raise PeerLinkError("handshake timed out") from None
    except BaseException:
        await stream.aclose()
        raise
