"""The connection-level P2P protocol as a sans-IO state machine: handshake, ping, misbehaviour.

A :class:`PeerProtocol` is one side of one connection. It knows nothing of
chains, only of the protocol that every connection speaks: the version/verack
handshake, keep-alive pings, timeouts and the misbehaviour score. It never
touches a socket or a clock: the caller passes bytes and the current time in
(``now``, integer seconds) and carries out the returned :data:`Action` list in
order -- write :class:`SendBytes`, hand :class:`Deliver` messages to the node,
close the connection on :class:`Disconnect` (and refuse the address for a while
if ``ban``).

The handshake (as Bitcoin Core does it)::

    initiator                          responder
    start()   -- version -->
                                       receive version: <-- version, verack --
    receive version: -- verack -->
    receive verack:  HandshakeComplete
                                       receive verack:  HandshakeComplete

Canal sends neither ``wtxidrelay`` nor ``sendaddrv2`` (it announces by txid and
speaks addr v1); it accepts both from the peer between version and verack and
records them (``peer_wtxidrelay``, ``peer_sendaddrv2``).

Misbehaviour follows Core's old DoS-score model: each offence adds to
``misbehavior_score``; at :data:`DISCOURAGEMENT_THRESHOLD` (100) the peer is
disconnected with ``ban=True``. A message other than version before the
peer's version, or other than verack / wtxidrelay / sendaddrv2 (or an unknown
command, ignored as later negotiation messages are) before its verack, scores 1
and is dropped, as does a second version. A payload that fails to decode
scores what its :class:`ProtocolViolation` says (100 for malformed, 20 for an
over-long list). A broken frame (wrong magic, bad checksum, oversize, garbage
command) always disconnects; it bans unless it is "wrong network magic".

Canal's minimum peer version is :data:`MIN_PEER_PROTO_VERSION` (70001); an
older peer is disconnected with "obsolete version N".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..hashes import hash256
from ..serialize import u64
from .framing import MAX_PAYLOAD, FrameDecoder, frame
from .messages import (
    MIN_PEER_PROTO_VERSION,
    NODE_NETWORK,
    NODE_WITNESS,
    PROTOCOL_VERSION,
    USER_AGENT,
    Message,
    MsgPing,
    MsgPong,
    MsgSendAddrV2,
    MsgUnknown,
    MsgVerack,
    MsgVersion,
    MsgWtxidRelay,
    NetAddr,
    ProtocolViolation,
    decode_payload,
)

__all__ = [
    "PeerProtocol",
    "State",
    "LocalProtocolError",
    "Action",
    "SendBytes",
    "Deliver",
    "HandshakeComplete",
    "Disconnect",
    "HANDSHAKE_TIMEOUT",
    "PING_INTERVAL",
    "TIMEOUT_INTERVAL",
    "DISCOURAGEMENT_THRESHOLD",
]

HANDSHAKE_TIMEOUT = 60  # seconds from start() to the peer's verack (Core's -peertimeout)
PING_INTERVAL = 2 * 60  # seconds between pings
TIMEOUT_INTERVAL = 20 * 60  # seconds to wait for a pong
DISCOURAGEMENT_THRESHOLD = 100  # misbehaviour score at which a peer is disconnected and banned
_EARLY_SCORE = 1  # Core's old Misbehaving(pfrom, 1) for out-of-order handshake messages


# --- actions ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendBytes:
    """Write these bytes to the peer."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Deliver:
    """An application-level message from the peer, for the node (only after the handshake)."""

    message: Message


@dataclass(frozen=True, slots=True)
class HandshakeComplete:
    """Both sides have exchanged version and verack; the full version is ``peer_version_message``."""

    peer_version: int
    peer_height: int
    user_agent: str
    services: int


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Close the connection; ``ban``: the peer reached the misbehaviour threshold."""

    reason: str
    ban: bool = False


Action = SendBytes | Deliver | HandshakeComplete | Disconnect


class LocalProtocolError(Exception):
    """Our own side used PeerProtocol wrongly (a bug in the caller, not the peer's fault)."""


# --- the state table ------------------------------------------------------------


@enum.unique
class State(enum.Enum):
    START = "start"  # constructed; start() not called yet
    AWAIT_VERSION = "await version"  # waiting for the peer's version (the initiator has sent its own)
    AWAIT_VERACK = "await verack"  # versions exchanged, our verack sent; waiting for the peer's
    READY = "ready"  # handshake complete
    CLOSED = "closed"  # a Disconnect was returned; everything else is ignored


@enum.unique
class _Kind(enum.Enum):
    """What an incoming message is, as far as the connection protocol cares."""

    VERSION = "version"
    VERACK = "verack"
    NEGOTIATION = "wtxidrelay/sendaddrv2"
    PING = "ping"
    PONG = "pong"
    UNKNOWN = "unknown command"
    APPLICATION = "anything else"


@enum.unique
class _Step(enum.Enum):
    """What to do with an incoming message."""

    ACCEPT_VERSION = "check the version; reply (responder: version +) verack"
    COMPLETE = "handshake complete"
    NOTE_FEATURE = "record the peer's feature"
    ANSWER_PING = "send pong"
    CHECK_PONG = "match the outstanding ping"
    DELIVER = "hand to the node"
    IGNORE = "drop"
    EARLY = "misbehaving 1 (too early), drop"
    REDUNDANT = "misbehaving 1 (second version), drop"
    LATE_FEATURE = "disconnect"


def _row(*steps: _Step) -> dict[_Kind, _Step]:
    return dict(zip(_Kind, steps, strict=True))


_A, _S = _Step, State
# fmt: off
TRANSITIONS: dict[State, dict[_Kind, _Step]] = {
    #                   version            verack       wtxidrelay/sendaddrv2  ping            pong           unknown    anything else
    _S.AWAIT_VERSION: _row(_A.ACCEPT_VERSION, _A.EARLY,    _A.EARLY,           _A.EARLY,       _A.EARLY,      _A.EARLY,  _A.EARLY),
    _S.AWAIT_VERACK:  _row(_A.REDUNDANT,      _A.COMPLETE, _A.NOTE_FEATURE,    _A.EARLY,       _A.EARLY,      _A.IGNORE, _A.EARLY),
    _S.READY:         _row(_A.REDUNDANT,      _A.IGNORE,   _A.LATE_FEATURE,    _A.ANSWER_PING, _A.CHECK_PONG, _A.IGNORE, _A.DELIVER),
}
# fmt: on
"""For each handshake state, what each kind of incoming message does."""


def _kind(msg: Message) -> _Kind:
    match msg:
        case MsgVersion():
            return _Kind.VERSION
        case MsgVerack():
            return _Kind.VERACK
        case MsgWtxidRelay() | MsgSendAddrV2():
            return _Kind.NEGOTIATION
        case MsgPing():
            return _Kind.PING
        case MsgPong():
            return _Kind.PONG
        case MsgUnknown():
            return _Kind.UNKNOWN
        case _:
            return _Kind.APPLICATION


# Messages only PeerProtocol itself sends.
_PROTOCOL_OWNED = (MsgVersion, MsgVerack, MsgWtxidRelay, MsgSendAddrV2, MsgPing, MsgPong)


# --- the protocol ---------------------------------------------------------------


class PeerProtocol:
    """One side of one P2P connection, sans-IO.

    ``nonce`` is the random, non-zero u64 sent in our version; a node that
    uses one nonce for all its connections (or remembers those of its outbound
    ones) detects connecting to itself. ``best_height`` is our version's
    ``start_height`` and may be updated until the version is sent.
    """

    def __init__(
        self,
        magic: bytes,
        nonce: int,
        best_height: int,
        initiator: bool,
        *,
        services: int = NODE_NETWORK | NODE_WITNESS,
        user_agent: str = USER_AGENT,
        relay: bool = True,
        peer_addr: NetAddr | None = None,
        max_payload: int = MAX_PAYLOAD,
    ) -> None:
        if not 0 <= nonce < 2**64:
            raise ValueError(f"nonce must be a u64, got {nonce}")
        self.magic = magic
        self.nonce = nonce
        self.best_height = best_height
        self.initiator = initiator
        self.services = services
        self.user_agent = user_agent
        self.relay = relay
        self.peer_addr = peer_addr if peer_addr is not None else NetAddr()

        self.state = State.START
        self.misbehavior_score = 0
        self.disconnect_reason: str | None = None
        self.peer_version_message: MsgVersion | None = None
        self.peer_wtxidrelay = False
        self.peer_sendaddrv2 = False
        self.last_ping_latency: int | None = None  # seconds, from the last answered ping

        self._decoder = FrameDecoder(magic, max_payload)
        self._started_at = 0
        self._ping_nonce: int | None = None  # the outstanding ping, if any
        self._ping_sent_at = 0
        self._next_ping_at = 0
        self._pings_sent = 0

    # --- state ------------------------------------------------------------------

    @property
    def handshake_complete(self) -> bool:
        return self.state is State.READY

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    @property
    def common_version(self) -> int:
        """min(ours, the peer's) protocol version; ours before the peer's version arrives."""
        if self.peer_version_message is None:
            return PROTOCOL_VERSION
        return min(PROTOCOL_VERSION, self.peer_version_message.version)

    # --- inputs -----------------------------------------------------------------

    def start(self, now: int) -> list[Action]:
        """The connection is open: the initiator sends its version; starts the handshake timer."""
        if self.state is not State.START:
            raise LocalProtocolError("start() called twice")
        self._started_at = now
        self.state = State.AWAIT_VERSION
        return [self._send(self._our_version(now))] if self.initiator else []

    def receive_bytes(self, data: bytes, now: int) -> list[Action]:
        """Bytes from the peer, in any pieces."""
        if self.state is State.START:
            raise LocalProtocolError("receive_bytes() before start()")
        if self.state is State.CLOSED:
            return []
        try:
            frames = self._decoder.feed_frames(data)
        except ProtocolViolation as e:  # the stream is unusable
            self.misbehavior_score += e.score
            return self._close(e.reason, ban=self.misbehavior_score >= DISCOURAGEMENT_THRESHOLD)
        actions: list[Action] = []
        for f in frames:
            if self.closed:  # an earlier message of this batch closed the connection
                break
            try:
                msg = decode_payload(f.command, f.payload)
            except ProtocolViolation as e:
                actions += self.misbehaving(e.score, e.reason)
                continue
            actions += self._receive(msg, now)
        return actions

    def send(self, msg: Message) -> list[Action]:
        """Frame an application message for the peer (after the handshake; a no-op once closed)."""
        if self.state is State.CLOSED:
            return []
        if isinstance(msg, _PROTOCOL_OWNED):
            raise LocalProtocolError(f"{msg.command} is sent by PeerProtocol itself")
        if self.state is not State.READY:
            raise LocalProtocolError(f"cannot send {msg.command} before the handshake completes")
        return [self._send(msg)]

    def tick(self, now: int) -> list[Action]:
        """Timers: the handshake timeout, sending pings, the ping timeout. Call every few seconds."""
        match self.state:
            case State.AWAIT_VERSION | State.AWAIT_VERACK:
                if now > self._started_at + HANDSHAKE_TIMEOUT:
                    return self._close("version handshake timeout")
            case State.READY:
                if self._ping_nonce is not None:
                    if now > self._ping_sent_at + TIMEOUT_INTERVAL:
                        return self._close(f"ping timeout: {now - self._ping_sent_at}s")
                elif now >= self._next_ping_at:
                    return self._send_ping(now)
        return []

    def misbehaving(self, score: int, reason: str) -> list[Action]:
        """Add to the peer's misbehaviour score (e.g. for an invalid block); 100 disconnects and bans."""
        if score < 0:
            raise ValueError("misbehaviour score cannot be negative")
        if self.state is State.CLOSED:
            return []
        self.misbehavior_score += score
        if self.misbehavior_score >= DISCOURAGEMENT_THRESHOLD:
            return self._close(reason, ban=True)
        return []

    def disconnect(self, reason: str) -> list[Action]:
        """Close the connection for the node's own reasons (e.g. missing services)."""
        if self.state is State.CLOSED:
            return []
        return self._close(reason)

    # --- one incoming message ---------------------------------------------------

    def _receive(self, msg: Message, now: int) -> list[Action]:
        if self.state not in TRANSITIONS:  # pragma: no cover - START and CLOSED never get here
            return []
        step = TRANSITIONS[self.state][_kind(msg)]
        match step:
            case _Step.ACCEPT_VERSION:
                assert isinstance(msg, MsgVersion)
                return self._accept_version(msg, now)
            case _Step.COMPLETE:
                return self._complete(now)
            case _Step.NOTE_FEATURE:
                if isinstance(msg, MsgWtxidRelay):
                    self.peer_wtxidrelay = True
                else:
                    self.peer_sendaddrv2 = True
                return []
            case _Step.ANSWER_PING:
                assert isinstance(msg, MsgPing)
                return [self._send(MsgPong(msg.nonce))]
            case _Step.CHECK_PONG:
                assert isinstance(msg, MsgPong)
                return self._check_pong(msg, now)
            case _Step.DELIVER:
                return [Deliver(msg)]
            case _Step.IGNORE:
                return []
            case _Step.EARLY:
                if self.state is State.AWAIT_VERSION:
                    reason = f"non-version message before version handshake: {msg.command}"
                else:
                    reason = f"{msg.command} message before verack"
                return self.misbehaving(_EARLY_SCORE, reason)
            case _Step.REDUNDANT:
                return self.misbehaving(_EARLY_SCORE, "redundant version message")
            case _Step.LATE_FEATURE:
                return self._close(f"{msg.command} received after verack")

    def _accept_version(self, version: MsgVersion, now: int) -> list[Action]:
        if self.nonce != 0 and version.nonce == self.nonce:
            return self._close("connected to self")
        if version.version < MIN_PEER_PROTO_VERSION:
            return self._close(f"obsolete version {version.version}")
        self.peer_version_message = version
        self.state = State.AWAIT_VERACK
        actions: list[Action] = []
        if not self.initiator:
            actions.append(self._send(self._our_version(now)))
        actions.append(self._send(MsgVerack()))
        return actions

    def _complete(self, now: int) -> list[Action]:
        version = self.peer_version_message
        assert version is not None
        self.state = State.READY
        self._next_ping_at = now  # the first ping goes out on the next tick
        return [
            HandshakeComplete(
                version.version, version.start_height, version.user_agent, version.services
            )
        ]

    def _check_pong(self, pong: MsgPong, now: int) -> list[Action]:
        if self._ping_nonce is None:
            return []  # unsolicited: ignored
        if pong.nonce == self._ping_nonce:
            self.last_ping_latency = now - self._ping_sent_at
            self._ping_nonce = None
        elif pong.nonce == 0:
            self._ping_nonce = None  # Core: "Nonce zero" cancels the ping
        return []  # any other nonce: overlapping pings, ignored

    # --- output -----------------------------------------------------------------

    def _send(self, msg: Message) -> SendBytes:
        return SendBytes(frame(self.magic, msg))

    def _our_version(self, now: int) -> MsgVersion:
        return MsgVersion(
            version=PROTOCOL_VERSION,
            services=self.services,
            timestamp=now,
            addr_recv=self.peer_addr,
            addr_from=NetAddr(self.services),
            nonce=self.nonce,
            user_agent=self.user_agent,
            start_height=self.best_height,
            relay=self.relay,
        )

    def _send_ping(self, now: int) -> list[Action]:
        nonce = 0
        while nonce == 0:  # deterministic, distinct per ping, never zero
            self._pings_sent += 1
            seed = hash256(u64(self.nonce) + u64(self._pings_sent))
            nonce = int.from_bytes(seed[:8], "little")
        self._ping_nonce = nonce
        self._ping_sent_at = now
        self._next_ping_at = now + PING_INTERVAL
        return [self._send(MsgPing(nonce))]

    def _close(self, reason: str, ban: bool = False) -> list[Action]:
        self.state = State.CLOSED
        self.disconnect_reason = reason
        return [Disconnect(reason, ban)]
