"""BOLT 8 Appendix A vectors (initiator, responder, message encryption), parsed from
../shared/vectors/bolts/bolt08-vectors.md at test time, plus an in-memory link test."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

import pytest

import vectors
from base_chain.crypto import PrivateKey, PublicKey
from channels.transport import (
    ACT_ONE_SIZE,
    ACT_THREE_SIZE,
    ACT_TWO_SIZE,
    MAX_MESSAGE_SIZE,
    Handshake,
    HandshakeError,
    HandshakeFailure,
    Transport,
    TransportError,
)

TEXT = vectors.text("bolts", "bolt08-vectors.md")


def _section(title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", TEXT, flags=re.M | re.S)
    assert m is not None, title
    return m.group(1)


def _hex(s: str) -> bytes:
    s = s.strip()
    return bytes.fromhex(s[2:] if s.startswith("0x") else s)


# ---------------------------------------------------------------------------
# Handshake vectors


@dataclass
class Step:
    kind: str  # "input", "output", "error", "keys"
    data: bytes = b""
    error: str = ""
    keys: dict[str, bytes] = field(default_factory=dict)
    h: bytes | None = None  # the last "# h=" comment before this step
    ck: bytes | None = None  # the last "# ck,temp_k=" comment before this step


@dataclass
class HandshakeVector:
    name: str
    initiator: bool
    params: dict[str, bytes] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)


def _handshake_vectors(section: str, initiator: bool) -> list[HandshakeVector]:
    out: list[HandshakeVector] = []
    h: bytes | None = None
    ck: bytes | None = None
    for raw in _section(section).splitlines():
        line = raw.strip()
        if line.startswith("name:"):
            out.append(HandshakeVector(line.split(":", 1)[1].strip(), initiator))
            h = ck = None
            continue
        if not out or not line or line.startswith("```"):
            continue
        v = out[-1]
        if m := re.fullmatch(r"(rs\.pub|ls\.priv|ls\.pub|e\.priv|e\.pub)\s*[:=]\s*(\S+)", line):
            v.params[m.group(1)] = _hex(m.group(2))
        elif m := re.fullmatch(r"# h=(0x[0-9a-f]+)", line):
            h = _hex(m.group(1))
        elif m := re.fullmatch(r"# ck,temp_k\d=(0x[0-9a-f]+),(0x[0-9a-f]+)", line):
            ck = _hex(m.group(1))
        elif m := re.fullmatch(r"input: (0x[0-9a-f]+)", line):
            v.steps.append(Step("input", _hex(m.group(1))))
        elif m := re.fullmatch(r"output: ERROR \((\w+)[^)]*\)", line):
            v.steps.append(Step("error", error=m.group(1)))
        elif m := re.fullmatch(r"output: (\w+),(\w+)=(0x[0-9a-f]+),(0x[0-9a-f]+)", line):
            keys = {m.group(1): _hex(m.group(3)), m.group(2): _hex(m.group(4))}
            v.steps.append(Step("keys", keys=keys, h=h, ck=ck))
        elif m := re.fullmatch(r"output: (0x[0-9a-f]+)", line):
            v.steps.append(Step("output", _hex(m.group(1)), h=h, ck=ck))
        else:
            assert line.startswith("#"), f"unparsed vector line: {line!r}"
    return out


INITIATOR = _handshake_vectors("Initiator Tests", True)
RESPONDER = _handshake_vectors("Responder Tests", False)
HANDSHAKES = INITIATOR + RESPONDER


def test_handshake_vector_counts() -> None:
    assert len(INITIATOR) == 5
    assert len(RESPONDER) == 10
    errors = [s.error for v in HANDSHAKES for s in v.steps if s.kind == "error"]
    assert len(errors) == 13
    assert set(errors) <= {f.name for f in HandshakeFailure}
    for v in HANDSHAKES:
        assert {"ls.priv", "ls.pub", "e.priv", "e.pub"} <= v.params.keys(), v.name
        assert ("rs.pub" in v.params) == v.initiator
        assert v.steps[-1].kind in ("error", "keys"), v.name


@pytest.mark.parametrize("vector", HANDSHAKES, ids=lambda v: v.name)
def test_handshake_vector(vector: HandshakeVector) -> None:
    p = vector.params
    ls, e = PrivateKey(p["ls.priv"]), PrivateKey(p["e.priv"])
    assert ls.public_key().to_bytes() == p["ls.pub"]
    assert e.public_key().to_bytes() == p["e.pub"]
    if vector.initiator:
        hs = Handshake.initiator(ls, PublicKey.from_bytes(p["rs.pub"]), ephemeral=e)
        produced = hs.act_one()
    else:
        hs = Handshake.responder(ls, ephemeral=e)
        produced = b""
    error: HandshakeError | None = None
    for step in vector.steps:
        if step.kind == "input":
            assert error is None
            try:
                produced = hs.receive_act(step.data)
            except HandshakeError as err:
                error = err
        elif step.kind == "error":
            assert error is not None, f"expected {step.error}, handshake went on"
            assert error.failure.name == step.error
            assert hs.failed and not hs.complete
            with pytest.raises(RuntimeError):
                hs.receive_act(step.data)
            return
        else:
            assert error is None, error
            # The intermediate state the vector's comments show, where they show it.
            if step.h is not None:
                assert hs.handshake_hash == step.h
            if step.ck is not None:
                assert hs.chaining_key == step.ck
            if step.kind == "output":
                assert produced == step.data
                assert len(produced) in (ACT_ONE_SIZE, ACT_TWO_SIZE, ACT_THREE_SIZE)
            else:
                assert hs.complete
                t = hs.transport()
                assert t.sk == step.keys["sk"]
                assert t.rk == step.keys["rk"]
                assert t.sender.chaining_key == t.receiver.chaining_key == hs.chaining_key
                if not vector.initiator:
                    assert hs.remote_static == PublicKey.from_bytes(INITIATOR[0].params["ls.pub"])
    assert vector.steps[-1].kind == "keys"


def test_handshake_misuse_is_a_local_error() -> None:
    hs = Handshake.responder(PrivateKey(1))
    with pytest.raises(RuntimeError):
        hs.act_one()
    with pytest.raises(RuntimeError):
        hs.transport()
    ini = Handshake.initiator(PrivateKey(2), PrivateKey(1).public_key())
    with pytest.raises(RuntimeError):
        ini.receive_act(bytes(ACT_TWO_SIZE))  # act one not sent yet
    with pytest.raises(ValueError):
        Handshake(initiator=True, local_static=PrivateKey(2), remote_static=None)


def test_transport_is_taken_once() -> None:
    ini = Handshake.initiator(PrivateKey(11), PrivateKey(21).public_key())
    res = Handshake.responder(PrivateKey(21))
    res.receive_act(ini.receive_act(res.receive_act(ini.act_one())))
    ini.transport()
    with pytest.raises(RuntimeError, match="already taken"):
        ini.transport()  # a second Transport on the same keys would reuse nonces
    res.transport()
    with pytest.raises(RuntimeError):
        res.feed(b"late bytes")


@pytest.mark.parametrize("failure_act", [1, 2, 3])
def test_handshake_random_corruption_is_a_handshake_error(failure_act: int) -> None:
    rng = random.Random(failure_act)
    for _ in range(20):
        ini = Handshake.initiator(PrivateKey(11), PrivateKey(21).public_key(), ephemeral=PrivateKey(12))
        res = Handshake.responder(PrivateKey(21), ephemeral=PrivateKey(22))
        acts = [ini.act_one()]
        acts.append(res.receive_act(acts[0]))
        acts.append(ini.receive_act(acts[1]))
        ini = Handshake.initiator(PrivateKey(11), PrivateKey(21).public_key(), ephemeral=PrivateKey(12))
        res = Handshake.responder(PrivateKey(21), ephemeral=PrivateKey(22))
        ini.act_one()
        bad = bytearray(acts[failure_act - 1])
        i = rng.randrange(len(bad))
        bad[i] ^= 1 << rng.randrange(8)
        with pytest.raises(HandshakeError) as err:
            if failure_act == 1:
                res.receive_act(bytes(bad))
            elif failure_act == 2:
                ini.receive_act(bytes(bad))
            else:
                res.receive_act(acts[0])
                res.receive_act(bytes(bad))
        assert err.value.failure.name.startswith(f"ACT{failure_act}_")


# ---------------------------------------------------------------------------
# Message encryption vector


@dataclass
class MessageVector:
    ck: bytes
    sk: bytes
    rk: bytes
    plaintext: bytes
    outputs: dict[int, bytes]
    parts: list[tuple[str, bytes, bytes, bytes]]  # (l|m, sn, sk, ciphertext) from the "# encrypt" comments
    rotations: list[tuple[bytes, bytes, bytes, bytes]]  # (new ck, new k, old ck, old k)


def _message_vector() -> MessageVector:
    text = _section("Message Encryption Tests")
    keys: dict[str, bytes] = {}
    outputs: dict[int, bytes] = {}
    parts: list[tuple[str, bytes, bytes, bytes]] = []
    rotations: list[tuple[bytes, bytes, bytes, bytes]] = []
    plaintexts: set[bytes] = set()
    hexv = r"(0x[0-9a-f]+)"
    for raw in text.splitlines():
        line = raw.strip()
        if m := re.fullmatch(rf"(ck|sk|rk)={hexv}", line):
            keys[m.group(1)] = _hex(m.group(2))
        elif m := re.fullmatch(rf"output (\d+): {hexv}", line):
            outputs[int(m.group(1))] = _hex(m.group(2))
        elif m := re.fullmatch(
            rf"# encrypt ([lm]): cleartext={hexv}, AD=NULL, sn={hexv}, sk={hexv} => {hexv}", line
        ):
            parts.append((m.group(1), _hex(m.group(3)), _hex(m.group(4)), _hex(m.group(5))))
            if m.group(1) == "m":
                plaintexts.add(_hex(m.group(2)))
        elif m := re.fullmatch(rf"# {hexv}, {hexv} = HKDF\({hexv}, {hexv}\)", line):
            rotation = (_hex(m.group(1)), _hex(m.group(2)), _hex(m.group(3)), _hex(m.group(4)))
            if rotation not in rotations:  # each rotation is listed twice
                rotations.append(rotation)
    assert len(plaintexts) == 1
    return MessageVector(keys["ck"], keys["sk"], keys["rk"], plaintexts.pop(), outputs, parts, rotations)


MESSAGES = _message_vector()


def test_message_vector_counts() -> None:
    assert sorted(MESSAGES.outputs) == [0, 1, 500, 501, 1000, 1001]
    assert len(MESSAGES.parts) == 4
    assert len(MESSAGES.rotations) == 2
    assert MESSAGES.plaintext == b"hello"


def test_message_vector_follows_the_handshake() -> None:
    """The message test starts from the handshake vectors' final ck/sk/rk."""
    final = INITIATOR[0].steps[-1].keys
    assert (MESSAGES.sk, MESSAGES.rk) == (final["sk"], final["rk"])
    assert MESSAGES.ck == INITIATOR[0].steps[-2].ck


def test_message_encryption_vector() -> None:
    v = MESSAGES
    sender = Transport(v.ck, v.sk, v.rk)
    receiver = Transport(v.ck, v.rk, v.sk)
    states = [(sender.sender.chaining_key, sender.sender.key)]
    parts = iter(v.parts)
    stream = bytearray()
    for i in range(max(v.outputs) + 1):
        if i < 2:
            # "# encrypt l:" and "# encrypt m:" give the key and nonce used for each half.
            kind_l, sn_l, sk_l, c_l = next(parts)
            kind_m, sn_m, sk_m, c_m = next(parts)
            assert (kind_l, kind_m) == ("l", "m")
            assert sender.sk == sk_l == sk_m
            assert sn_l == bytes(4) + sender.sender.nonce.to_bytes(8, "little")
            assert sn_m == bytes(4) + (sender.sender.nonce + 1).to_bytes(8, "little")
        c = sender.encrypt(v.plaintext)
        if i < 2:
            assert c == c_l + c_m
        if i in v.outputs:
            assert c == v.outputs[i], f"message {i}"
        if (sender.sender.chaining_key, sender.sender.key) != states[-1]:
            states.append((sender.sender.chaining_key, sender.sender.key))
        stream += c
    # Key rotation: after 1000 encryptions (messages 0..499), then again after 999.
    assert len(states) == 3
    for (new_ck, new_k, old_ck, old_k), before, after in zip(v.rotations, states, states[1:]):
        assert (old_ck, old_k) == before
        assert (new_ck, new_k) == after
    # The receiving side decrypts all of it, in one go.
    assert receiver.feed(bytes(stream)) == [v.plaintext] * (max(v.outputs) + 1)
    assert receiver.buffered == 0
    assert (receiver.receiver.chaining_key, receiver.receiver.key) == states[-1]


# ---------------------------------------------------------------------------
# Transport behaviour


def _pair() -> tuple[Transport, Transport]:
    v = MESSAGES
    return Transport(v.ck, v.sk, v.rk), Transport(v.ck, v.rk, v.sk)


def test_transport_rejects_bad_mac_and_stays_failed() -> None:
    a, b = _pair()
    c = bytearray(a.encrypt(b"hello"))
    c[20] ^= 1  # in the body
    with pytest.raises(TransportError, match="body"):
        b.feed(bytes(c))
    with pytest.raises(TransportError, match="already failed"):
        b.feed(b"")
    a, b = _pair()
    c = bytearray(a.encrypt(b"hello"))
    c[0] ^= 1  # in the length
    with pytest.raises(TransportError, match="length"):
        b.feed(bytes(c))


def test_transport_message_size_limit() -> None:
    a, b = _pair()
    biggest = bytes(range(256)) * 255 + bytes(MAX_MESSAGE_SIZE - 255 * 256)
    assert len(biggest) == MAX_MESSAGE_SIZE
    assert b.feed(a.encrypt(biggest)) == [biggest]
    with pytest.raises(ValueError):
        a.encrypt(bytes(MAX_MESSAGE_SIZE + 1))
    assert b.feed(a.encrypt(b"")) == [b""]


def _chunks(rng: random.Random, data: bytes) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        n = rng.choice([1, 2, 17, 18, 19, 50, 1000, rng.randrange(1, 70000)])
        out.append(data[i : i + n])
        i += n
    return out


def test_two_handshakes_in_memory_then_2500_messages_each_way() -> None:
    rng = random.Random(8)
    alice_key, bob_key = PrivateKey.generate(), PrivateKey.generate()
    alice = Handshake.initiator(alice_key, bob_key.public_key())  # random ephemeral keys
    bob = Handshake.responder(bob_key)

    # The handshake through feed(), one byte at a time where it matters.
    act_one = alice.act_one()
    out = b""
    for byte in act_one:
        assert bob.expected_length == ACT_ONE_SIZE
        out += bob.feed(bytes([byte]))
    assert len(out) == ACT_TWO_SIZE
    act_three = b"".join(alice.feed(chunk) for chunk in _chunks(rng, out))
    assert alice.complete and len(act_three) == ACT_THREE_SIZE
    a_link = alice.transport()
    first = a_link.encrypt(b"init goes right after act three")
    assert bob.feed(act_three + first[:5]) == b""  # act three plus part of the first message
    assert bob.complete and bob.remote_static == alice_key.public_key()
    b_link = bob.transport()
    assert b_link.feed(b"") == []
    assert b_link.feed(first[5:]) == [b"init goes right after act three"]
    assert (a_link.sk, a_link.rk) == (b_link.rk, b_link.sk)

    def message(i: int) -> bytes:
        size = rng.choice([0, 1, 2, 100, 1000, rng.randrange(0, 5000), MAX_MESSAGE_SIZE if i % 997 == 0 else 3])
        return i.to_bytes(4, "big") + rng.randbytes(max(0, size - 4))

    sent = {"a": [message(i) for i in range(2500)], "b": [message(i) for i in range(2500)]}
    received: dict[str, list[bytes]] = {"a": [], "b": []}
    pending = {"a": bytearray(), "b": bytearray()}  # bytes in flight towards a / b
    links = {"a": a_link, "b": b_link}
    cursor = {"a": 0, "b": 0}
    while cursor["a"] < 2500 or cursor["b"] < 2500 or pending["a"] or pending["b"]:
        who = rng.choice("ab")
        other = "b" if who == "a" else "a"
        if cursor[who] < 2500 and rng.random() < 0.6:
            for _ in range(rng.randrange(1, 20)):
                if cursor[who] < 2500:
                    pending[other] += links[who].encrypt(sent[who][cursor[who]])
                    cursor[who] += 1
        if pending[who]:
            n = min(len(pending[who]), rng.choice([1, 7, 18, 40, 500, 5000, 80000]))
            received[who] += links[who].feed(bytes(pending[who][:n]))
            del pending[who][:n]
    assert received["b"] == sent["a"]
    assert received["a"] == sent["b"]
    # Two encryptions per message, a new key every 1000: both ends rotated in step.
    assert a_link.sender.key == b_link.receiver.key and a_link.receiver.key == b_link.sender.key
    assert a_link.sender.nonce == b_link.receiver.nonce == (2 * 2501) % 1000
    assert b_link.sender.nonce == a_link.receiver.nonce == (2 * 2500) % 1000
    assert a_link.buffered == b_link.buffered == 0
