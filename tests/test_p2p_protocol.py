"""PeerProtocol: two sans-IO connection cores wired together in memory."""

from __future__ import annotations

from collections import deque

import pytest

from base_chain.p2p import (
    MSG_TX,
    Action,
    Deliver,
    Disconnect,
    FrameDecoder,
    HandshakeComplete,
    InvVector,
    LocalProtocolError,
    Message,
    MsgFeeFilter,
    MsgInv,
    MsgPing,
    MsgPong,
    MsgSendAddrV2,
    MsgSendHeaders,
    MsgUnknown,
    MsgVerack,
    MsgVersion,
    MsgWtxidRelay,
    PeerProtocol,
    SendBytes,
    State,
    frame,
    frame_raw,
)
from base_chain.p2p.protocol import HANDSHAKE_TIMEOUT, PING_INTERVAL, TIMEOUT_INTERVAL
from base_chain.serialize import compact_size

MAGIC = bytes.fromhex("fabfb5da")
OTHER_MAGIC = bytes.fromhex("0b110907")
H = bytes(range(32))


class Link:
    """Two PeerProtocols joined by an in-memory wire; records what each side was told."""

    def __init__(self, a: PeerProtocol, b: PeerProtocol) -> None:
        self.a, self.b = a, b
        self.events: dict[int, list[Action]] = {id(a): [], id(b): []}
        self.sent: dict[int, list[Message]] = {id(a): [], id(b): []}
        self._sniff = {id(a): FrameDecoder(a.magic), id(b): FrameDecoder(b.magic)}
        self.now = 1_700_000_000
        self.chunk: int | None = None  # deliver bytes in pieces of this size

    def other(self, side: PeerProtocol) -> PeerProtocol:
        return self.b if side is self.a else self.a

    def run(self, side: PeerProtocol, actions: list[Action]) -> None:
        queue: deque[tuple[PeerProtocol, list[Action]]] = deque([(side, actions)])
        while queue:
            src, acts = queue.popleft()
            for act in acts:
                if not isinstance(act, SendBytes):
                    self.events[id(src)].append(act)
                    continue
                self.sent[id(src)] += self._sniff[id(src)].feed(act.data)
                dst = self.other(src)
                step = self.chunk or len(act.data)
                for i in range(0, len(act.data), step):
                    queue.append((dst, dst.receive_bytes(act.data[i : i + step], self.now)))

    def connect(self) -> None:
        started_b = self.b.start(self.now)  # the responder is listening before bytes arrive
        self.run(self.a, self.a.start(self.now))
        self.run(self.b, started_b)

    def of(self, side: PeerProtocol, kind: type) -> list[Action]:
        return [e for e in self.events[id(side)] if isinstance(e, kind)]


def pair(b_nonce: int = 222) -> Link:
    a = PeerProtocol(MAGIC, nonce=111, best_height=10, initiator=True)
    b = PeerProtocol(MAGIC, nonce=b_nonce, best_height=20, initiator=False)
    return Link(a, b)


def connected() -> Link:
    link = pair()
    link.connect()
    assert link.a.handshake_complete and link.b.handshake_complete
    return link


# --- the handshake -----------------------------------------------------------------


def test_handshake_completes() -> None:
    link = pair()
    link.connect()
    a, b = link.a, link.b
    assert a.state is State.READY and b.state is State.READY
    [done_a] = link.of(a, HandshakeComplete)
    [done_b] = link.of(b, HandshakeComplete)
    assert done_a == HandshakeComplete(70016, 20, "/Canal:0.1.0/", 9)
    assert done_b == HandshakeComplete(70016, 10, "/Canal:0.1.0/", 9)
    assert [m.command for m in link.sent[id(a)]] == ["version", "verack"]
    assert [m.command for m in link.sent[id(b)]] == ["version", "verack"]
    assert a.misbehavior_score == b.misbehavior_score == 0
    assert a.peer_version_message is not None and a.peer_version_message.nonce == 222
    assert a.common_version == 70016


def test_handshake_byte_by_byte() -> None:
    link = pair()
    link.chunk = 1
    link.connect()
    assert len(link.of(link.a, HandshakeComplete)) == 1
    assert len(link.of(link.b, HandshakeComplete)) == 1


def test_responder_sends_nothing_first() -> None:
    b = PeerProtocol(MAGIC, 2, 0, initiator=False)
    assert b.start(0) == []
    with pytest.raises(LocalProtocolError):
        b.start(0)


def test_application_messages_are_delivered_after_handshake() -> None:
    link = connected()
    inv = MsgInv((InvVector(MSG_TX, H),))
    link.run(link.a, link.a.send(inv))
    link.run(link.a, link.a.send(MsgSendHeaders()))
    link.run(link.b, link.b.send(MsgFeeFilter(1000)))
    assert link.of(link.b, Deliver) == [Deliver(inv), Deliver(MsgSendHeaders())]
    assert link.of(link.a, Deliver) == [Deliver(MsgFeeFilter(1000))]


def test_send_misuse() -> None:
    b = PeerProtocol(MAGIC, 2, 0, initiator=False)
    b.start(0)
    with pytest.raises(LocalProtocolError):
        b.send(MsgSendHeaders())  # before the handshake
    link = connected()
    for msg in (MsgVersion(), MsgVerack(), MsgPing(1), MsgPong(1), MsgWtxidRelay()):
        with pytest.raises(LocalProtocolError):
            link.a.send(msg)
    with pytest.raises(LocalProtocolError):
        PeerProtocol(MAGIC, 1, 0, True).receive_bytes(b"", 0)


def test_self_connection() -> None:
    link = pair(b_nonce=111)  # the same node on both ends
    link.connect()
    assert link.of(link.b, Disconnect) == [Disconnect("connected to self")]
    assert link.sent[id(link.b)] == []  # the responder never answered
    assert not link.of(link.a, HandshakeComplete)


def test_obsolete_peer() -> None:
    b = PeerProtocol(MAGIC, 2, 0, initiator=False)
    b.start(0)
    old = MsgVersion(version=60000, nonce=5)
    assert b.receive_bytes(frame(MAGIC, old), 0) == [Disconnect("obsolete version 60000")]
    assert b.closed


def test_handshake_timeout() -> None:
    a = PeerProtocol(MAGIC, 1, 0, initiator=True)
    a.start(100)
    assert a.tick(100 + HANDSHAKE_TIMEOUT) == []
    assert a.tick(100 + HANDSHAKE_TIMEOUT + 1) == [Disconnect("version handshake timeout")]
    assert a.tick(100 + HANDSHAKE_TIMEOUT + 2) == []  # closed: nothing more


def test_handshake_timeout_waiting_for_verack() -> None:
    b = PeerProtocol(MAGIC, 2, 0, initiator=False)
    b.start(0)
    b.receive_bytes(frame(MAGIC, MsgVersion(nonce=5)), 1)
    assert b.state is State.AWAIT_VERACK
    assert b.tick(61) == [Disconnect("version handshake timeout")]


# --- misbehaviour before and during the handshake -----------------------------------


def test_message_before_version_is_misbehaviour() -> None:
    b = PeerProtocol(MAGIC, 2, 0, initiator=False)
    b.start(0)
    inv = MsgInv((InvVector(MSG_TX, H),))
    assert b.receive_bytes(frame(MAGIC, inv), 0) == []  # dropped
    assert b.misbehavior_score == 1
    assert b.state is State.AWAIT_VERSION
    # verack and negotiation messages before version count too
    b.receive_bytes(frame(MAGIC, MsgVerack()) + frame(MAGIC, MsgWtxidRelay()), 0)
    assert b.misbehavior_score == 3
    # the handshake still works afterwards
    actions = b.receive_bytes(frame(MAGIC, MsgVersion(nonce=5)), 0)
    assert [type(x) for x in actions] == [SendBytes, SendBytes]
    actions = b.receive_bytes(frame(MAGIC, MsgVerack()), 0)
    assert isinstance(actions[0], HandshakeComplete)


def test_message_between_version_and_verack() -> None:
    b = PeerProtocol(MAGIC, 2, 0, initiator=False)
    b.start(0)
    b.receive_bytes(frame(MAGIC, MsgVersion(nonce=5)), 0)
    early = frame(MAGIC, MsgInv((InvVector(MSG_TX, H),))) + frame(MAGIC, MsgPing(3))
    assert b.receive_bytes(early, 0) == []
    assert b.misbehavior_score == 2
    # negotiation and unknown messages are fine here
    ok = frame(MAGIC, MsgWtxidRelay()) + frame(MAGIC, MsgSendAddrV2())
    ok += frame(MAGIC, MsgUnknown("sendtxrcncl", b"\x01\x00\x00\x00" + b"\x00" * 8))
    assert b.receive_bytes(ok, 0) == []
    assert b.misbehavior_score == 2
    assert b.peer_wtxidrelay and b.peer_sendaddrv2


def test_negotiation_after_verack_disconnects() -> None:
    link = connected()
    actions = link.a.receive_bytes(frame(MAGIC, MsgWtxidRelay()), link.now)
    assert actions == [Disconnect("wtxidrelay received after verack")]


def test_duplicate_version() -> None:
    link = connected()
    assert link.a.receive_bytes(frame(MAGIC, MsgVersion(nonce=9)), link.now) == []
    assert link.a.misbehavior_score == 1
    assert link.a.state is State.READY


def test_duplicate_version_reason() -> None:
    link = connected()
    link.a.misbehaving(99, "x")
    actions = link.a.receive_bytes(frame(MAGIC, MsgVersion(nonce=9)), link.now)
    assert actions == [Disconnect("redundant version message", ban=True)]


def test_misbehaviour_to_100_disconnects_and_bans() -> None:
    link = connected()
    a = link.a
    assert a.misbehaving(50, "invalid header") == []
    assert a.misbehaving(49, "invalid header") == []
    assert a.misbehaving(1, "bad block") == [Disconnect("bad block", ban=True)]
    assert a.closed and a.disconnect_reason == "bad block"
    # after closing, everything is ignored
    assert a.misbehaving(100, "again") == []
    assert a.receive_bytes(frame(MAGIC, MsgPing(1)), link.now) == []
    assert a.send(MsgSendHeaders()) == []
    assert a.tick(link.now + 10_000) == []


def test_repeated_early_messages_reach_the_threshold() -> None:
    b = PeerProtocol(MAGIC, 2, 0, initiator=False)
    b.start(0)
    actions = b.receive_bytes(frame(MAGIC, MsgSendHeaders()) * 120, 0)
    assert actions == [
        Disconnect("non-version message before version handshake: sendheaders", ban=True)
    ]
    assert b.misbehavior_score == 100  # processing stopped at the disconnect


def test_malformed_payload_bans() -> None:
    link = connected()
    actions = link.a.receive_bytes(frame_raw(MAGIC, "inv", b"\x01\x00"), link.now)
    assert len(actions) == 1 and isinstance(actions[0], Disconnect)
    assert actions[0].ban and actions[0].reason.startswith("malformed inv message")


def test_oversized_inv_scores_20() -> None:
    link = connected()
    payload = compact_size(50_001)
    assert link.a.receive_bytes(frame_raw(MAGIC, "inv", payload), link.now) == []
    assert link.a.misbehavior_score == 20


def test_unknown_message_after_handshake_is_ignored() -> None:
    link = connected()
    assert link.a.receive_bytes(frame(MAGIC, MsgUnknown("sendcmpct", b"\x00" * 9)), 0) == []
    assert link.a.misbehavior_score == 0


# --- framing errors ------------------------------------------------------------------


def test_other_chain_is_disconnected() -> None:
    a = PeerProtocol(OTHER_MAGIC, 1, 0, initiator=True)
    b = PeerProtocol(MAGIC, 2, 0, initiator=False)
    link = Link(a, b)
    link.connect()
    assert link.of(b, Disconnect) == [Disconnect("wrong network magic", ban=False)]
    assert not link.of(a, HandshakeComplete)


def test_bad_checksum_disconnects_and_bans() -> None:
    link = connected()
    raw = bytearray(frame(MAGIC, MsgPing(1)))
    raw[-1] ^= 0xFF
    [act] = link.a.receive_bytes(bytes(raw), link.now)
    assert act == Disconnect("bad checksum in ping message", ban=True)


# --- ping ----------------------------------------------------------------------------


def test_ping_pong() -> None:
    link = connected()
    a, b = link.a, link.b
    t0 = link.now
    link.now = t0 + 1
    link.run(a, a.tick(link.now))  # the first ping goes out right after the handshake
    pings = [m for m in link.sent[id(a)] if isinstance(m, MsgPing)]
    pongs = [m for m in link.sent[id(b)] if isinstance(m, MsgPong)]
    assert len(pings) == 1 and pongs == [MsgPong(pings[0].nonce)]
    assert a.last_ping_latency == 0
    # nothing until the interval has passed
    assert a.tick(t0 + 1 + PING_INTERVAL - 1) == []
    link.now = t0 + 1 + PING_INTERVAL
    link.run(a, a.tick(link.now))
    pings = [m for m in link.sent[id(a)] if isinstance(m, MsgPing)]
    assert len(pings) == 2 and pings[0].nonce != pings[1].nonce != 0
    assert not link.of(a, Disconnect) and not link.of(b, Disconnect)
    assert not link.of(a, Deliver) and not link.of(b, Deliver)  # pings stay inside


def test_ping_timeout() -> None:
    link = connected()
    a = link.a
    t = link.now
    [ping] = a.tick(t)  # not delivered: the peer never answers
    assert isinstance(ping, SendBytes)
    assert a.tick(t + PING_INTERVAL) == []  # no second ping while one is outstanding
    assert a.tick(t + TIMEOUT_INTERVAL) == []
    assert a.tick(t + TIMEOUT_INTERVAL + 1) == [Disconnect(f"ping timeout: {TIMEOUT_INTERVAL + 1}s")]


def test_wrong_or_unsolicited_pong_is_ignored() -> None:
    link = connected()
    a = link.a
    assert a.receive_bytes(frame(MAGIC, MsgPong(5)), link.now) == []  # unsolicited
    a.tick(link.now)
    assert a.receive_bytes(frame(MAGIC, MsgPong(5)), link.now) == []  # mismatched
    assert a.tick(link.now + TIMEOUT_INTERVAL + 1)[0] == Disconnect(
        f"ping timeout: {TIMEOUT_INTERVAL + 1}s"
    )
    assert a.misbehavior_score == 0


def test_ping_before_handshake_is_not_answered() -> None:
    b = PeerProtocol(MAGIC, 2, 0, initiator=False)
    b.start(0)
    assert b.receive_bytes(frame(MAGIC, MsgPing(1)), 0) == []
    assert b.misbehavior_score == 1
    assert b.tick(10) == []  # no pings before the handshake either
