"""BOLT 8: the encrypted, authenticated peer link (Noise_XK_secp256k1_ChaChaPoly_SHA256).

Sans-IO: nothing here reads a socket or a clock. The caller moves bytes.

Handshake (three acts; the initiator must know the responder's static key)::

    ini = Handshake.initiator(my_key, their_node_id)      # ephemeral=... in tests
    res = Handshake.responder(their_key)
    act_one = ini.act_one()                             # 50 bytes ->
    act_two = res.receive_act(act_one)                  # <- 50 bytes
    act_three = ini.receive_act(act_two)                # 66 bytes ->
    res.receive_act(act_three)                          # b"" (nothing to send)
    ini_link, res_link = ini.transport(), res.transport()
    res.remote_static                                   # the initiator's node id

``receive_act`` wants exactly one act. :meth:`Handshake.feed` instead takes
bytes as they arrive, buffers partial acts, and returns whatever is to be sent;
bytes that arrive after act three are handed to the :class:`Transport`, whose
next ``feed`` returns the messages they hold. Every way the peer can break the
handshake raises :class:`HandshakeError` with a ``reason`` and a ``failure``
code (:class:`HandshakeFailure`, named as in the BOLT 8 test vectors).

Transport: :meth:`Transport.encrypt` turns a message into
``encrypted length (2 + 16 bytes) || encrypted body (len + 16 bytes)``;
:meth:`Transport.feed` decrypts a byte stream given in any chunks. Each
direction has its own :class:`CipherState`, whose key is rotated after 1000
encryptions (500 messages) as BOLT 8 specifies: ``ck, k = HKDF(ck, k)``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from base_chain.crypto import PrivateKey, PublicKey
from base_chain.hashes import sha256

__all__ = [
    "PROTOCOL_NAME",
    "PROLOGUE",
    "ACT_ONE_SIZE",
    "ACT_TWO_SIZE",
    "ACT_THREE_SIZE",
    "MAC_SIZE",
    "LENGTH_HEADER_SIZE",
    "MAX_MESSAGE_SIZE",
    "KEY_ROTATION_INTERVAL",
    "TransportError",
    "HandshakeError",
    "HandshakeFailure",
    "Handshake",
    "CipherState",
    "Transport",
    "hkdf_two_keys",
]

PROTOCOL_NAME = b"Noise_XK_secp256k1_ChaChaPoly_SHA256"
PROLOGUE = b"lightning"
VERSION = 0
MAC_SIZE = 16
ACT_ONE_SIZE = 1 + 33 + MAC_SIZE
ACT_TWO_SIZE = 1 + 33 + MAC_SIZE
ACT_THREE_SIZE = 1 + 33 + MAC_SIZE + MAC_SIZE
LENGTH_HEADER_SIZE = 2 + MAC_SIZE
MAX_MESSAGE_SIZE = 65535
KEY_ROTATION_INTERVAL = 1000
"""Encryptions (or decryptions) per key; a message takes two (length and body)."""


class TransportError(ValueError):
    """The peer's bytes failed authentication or framing: drop the connection."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HandshakeFailure(enum.Enum):
    """Why a handshake failed (the names of the BOLT 8 test vectors' errors)."""

    ACT1_READ_FAILED = "act one has the wrong length"
    ACT1_BAD_VERSION = "act one has an unknown version"
    ACT1_BAD_PUBKEY = "act one's ephemeral key is not a valid point"
    ACT1_BAD_TAG = "act one's MAC does not verify"
    ACT2_READ_FAILED = "act two has the wrong length"
    ACT2_BAD_VERSION = "act two has an unknown version"
    ACT2_BAD_PUBKEY = "act two's ephemeral key is not a valid point"
    ACT2_BAD_TAG = "act two's MAC does not verify"
    ACT3_READ_FAILED = "act three has the wrong length"
    ACT3_BAD_VERSION = "act three has an unknown version"
    ACT3_BAD_CIPHERTEXT = "act three's encrypted static key does not verify"
    ACT3_BAD_PUBKEY = "act three's static key is not a valid point"
    ACT3_BAD_TAG = "act three's MAC does not verify"


class HandshakeError(TransportError):
    """The peer broke the handshake; ``failure`` says how."""

    def __init__(self, failure: HandshakeFailure, detail: str = "") -> None:
        super().__init__(failure.value + (f" ({detail})" if detail else ""))
        self.failure = failure


# ---------------------------------------------------------------------------
# Primitives (all from `cryptography`)


def hkdf_two_keys(salt: bytes, ikm: bytes) -> tuple[bytes, bytes]:
    """BOLT 8's ``HKDF(salt, ikm)``: RFC 5869 with SHA-256, empty info, split into two 32-byte keys."""
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=salt, info=b"").derive(ikm)
    return okm[:32], okm[32:]


def _nonce(n: int) -> bytes:
    """32 zero bits then the 64-bit little-endian counter."""
    return b"\x00\x00\x00\x00" + n.to_bytes(8, "little")


def _encrypt(key: bytes, n: int, ad: bytes, plaintext: bytes) -> bytes:
    return ChaCha20Poly1305(key).encrypt(_nonce(n), plaintext, ad)


def _decrypt(key: bytes, n: int, ad: bytes, ciphertext: bytes) -> bytes | None:
    """The plaintext, or None if the MAC does not verify."""
    try:
        return ChaCha20Poly1305(key).decrypt(_nonce(n), ciphertext, ad)
    except InvalidTag:
        return None


def _parse_point(raw: bytes) -> PublicKey | None:
    """A 33-byte compressed key, or None."""
    if len(raw) != 33 or raw[0] not in (2, 3):
        return None
    try:
        return PublicKey.from_bytes(raw)
    except ValueError:
        return None


# ---------------------------------------------------------------------------
# Handshake


class _State(enum.Enum):
    INITIATOR_START = "initiator: act one not yet sent"
    INITIATOR_AWAIT_ACT_TWO = "initiator: awaiting act two"
    RESPONDER_AWAIT_ACT_ONE = "responder: awaiting act one"
    RESPONDER_AWAIT_ACT_THREE = "responder: awaiting act three"
    DONE = "complete"
    FAILED = "failed"


class Handshake:
    """One side of the BOLT 8 handshake. Create with :meth:`initiator` or :meth:`responder`."""

    def __init__(
        self,
        *,
        initiator: bool,
        local_static: PrivateKey,
        remote_static: PublicKey | None,
        ephemeral: PrivateKey | None = None,
    ) -> None:
        self.is_initiator = initiator
        self._s = local_static
        self._e = ephemeral if ephemeral is not None else PrivateKey.generate()
        self._rs = remote_static
        self._re: PublicKey | None = None
        self._temp_k2 = b""
        self._sk = b""
        self._rk = b""
        self._buffer = bytearray()
        self._transport_taken = False
        # Handshake state initialization.
        self._h = sha256(PROTOCOL_NAME)
        self._ck = self._h
        self._h = sha256(self._h + PROLOGUE)
        responder_static = remote_static if initiator else local_static.public_key()
        if responder_static is None:
            raise ValueError("an initiator must know the responder's static key")
        self._mix_hash(responder_static.to_bytes())
        self._state = _State.INITIATOR_START if initiator else _State.RESPONDER_AWAIT_ACT_ONE

    @classmethod
    def initiator(
        cls, local_static: PrivateKey, remote_static: PublicKey, ephemeral: PrivateKey | None = None
    ) -> Handshake:
        """The connecting side; it must know the responder's node id ``remote_static``."""
        return cls(initiator=True, local_static=local_static, remote_static=remote_static, ephemeral=ephemeral)

    @classmethod
    def responder(cls, local_static: PrivateKey, ephemeral: PrivateKey | None = None) -> Handshake:
        """The listening side; it learns the initiator's node id in act three."""
        return cls(initiator=False, local_static=local_static, remote_static=None, ephemeral=ephemeral)

    # -- state

    @property
    def complete(self) -> bool:
        return self._state is _State.DONE

    @property
    def failed(self) -> bool:
        return self._state is _State.FAILED

    @property
    def expected_length(self) -> int:
        """The size of the act this side is waiting for (0 if none)."""
        return {
            _State.INITIATOR_AWAIT_ACT_TWO: ACT_TWO_SIZE,
            _State.RESPONDER_AWAIT_ACT_ONE: ACT_ONE_SIZE,
            _State.RESPONDER_AWAIT_ACT_THREE: ACT_THREE_SIZE,
        }.get(self._state, 0)

    @property
    def remote_static(self) -> PublicKey | None:
        """The peer's node id: given to an initiator, learned by a responder in act three."""
        return self._rs

    @property
    def local_ephemeral(self) -> PublicKey:
        return self._e.public_key()

    @property
    def handshake_hash(self) -> bytes:
        """``h``, the running hash of the handshake transcript."""
        return self._h

    @property
    def chaining_key(self) -> bytes:
        """``ck``, the running chaining key."""
        return self._ck

    def _mix_hash(self, data: bytes) -> None:
        self._h = sha256(self._h + data)

    def _mix_key(self, ikm: bytes) -> bytes:
        self._ck, temp_k = hkdf_two_keys(self._ck, ikm)
        return temp_k

    def _expect(self, state: _State, what: str) -> None:
        if self._state is not state:
            raise RuntimeError(f"cannot {what}: handshake is {self._state.value}")

    def _fail(self, failure: HandshakeFailure, detail: str = "") -> HandshakeError:
        self._state = _State.FAILED
        return HandshakeError(failure, detail)

    # -- the acts

    def act_one(self) -> bytes:
        """Initiator: the 50-byte act one."""
        self._expect(_State.INITIATOR_START, "send act one")
        assert self._rs is not None
        e_pub = self._e.public_key().to_bytes()
        self._mix_hash(e_pub)
        temp_k1 = self._mix_key(self._e.ecdh(self._rs))
        c = _encrypt(temp_k1, 0, self._h, b"")
        self._mix_hash(c)
        self._state = _State.INITIATOR_AWAIT_ACT_TWO
        return bytes([VERSION]) + e_pub + c

    def _read_ephemeral_act(
        self,
        data: bytes,
        size: int,
        failures: tuple[HandshakeFailure, HandshakeFailure, HandshakeFailure, HandshakeFailure],
        ecdh: Callable[[PublicKey], bytes],
    ) -> bytes:
        """Acts one and two have one shape: version || ephemeral key || MAC. Returns temp_k."""
        read_failed, bad_version, bad_pubkey, bad_tag = failures
        if len(data) != size:
            raise self._fail(read_failed, f"{len(data)} bytes, expected {size}")
        if data[0] != VERSION:
            raise self._fail(bad_version, f"version {data[0]}")
        re = _parse_point(data[1:34])
        if re is None:
            raise self._fail(bad_pubkey)
        c = data[34:]
        self._mix_hash(re.to_bytes())
        temp_k = self._mix_key(ecdh(re))
        if _decrypt(temp_k, 0, self._h, c) is None:
            raise self._fail(bad_tag)
        self._mix_hash(c)
        self._re = re
        return temp_k

    def read_act_one(self, data: bytes) -> bytes:
        """Responder: check act one, return the 50-byte act two."""
        self._expect(_State.RESPONDER_AWAIT_ACT_ONE, "read act one")
        F = HandshakeFailure
        self._read_ephemeral_act(
            bytes(data),
            ACT_ONE_SIZE,
            (F.ACT1_READ_FAILED, F.ACT1_BAD_VERSION, F.ACT1_BAD_PUBKEY, F.ACT1_BAD_TAG),
            self._s.ecdh,
        )
        assert self._re is not None
        # Act two: our ephemeral key, then ee.
        e_pub = self._e.public_key().to_bytes()
        self._mix_hash(e_pub)
        self._temp_k2 = self._mix_key(self._e.ecdh(self._re))
        c = _encrypt(self._temp_k2, 0, self._h, b"")
        self._mix_hash(c)
        self._state = _State.RESPONDER_AWAIT_ACT_THREE
        return bytes([VERSION]) + e_pub + c

    def read_act_two(self, data: bytes) -> bytes:
        """Initiator: check act two, return the 66-byte act three; the handshake is then complete."""
        self._expect(_State.INITIATOR_AWAIT_ACT_TWO, "read act two")
        F = HandshakeFailure
        self._temp_k2 = self._read_ephemeral_act(
            bytes(data),
            ACT_TWO_SIZE,
            (F.ACT2_READ_FAILED, F.ACT2_BAD_VERSION, F.ACT2_BAD_PUBKEY, F.ACT2_BAD_TAG),
            self._e.ecdh,
        )
        assert self._re is not None
        # Act three: our static key, encrypted, then se.
        c = _encrypt(self._temp_k2, 1, self._h, self._s.public_key().to_bytes())
        self._mix_hash(c)
        temp_k3 = self._mix_key(self._s.ecdh(self._re))
        t = _encrypt(temp_k3, 0, self._h, b"")
        self._sk, self._rk = hkdf_two_keys(self._ck, b"")
        self._state = _State.DONE
        return bytes([VERSION]) + c + t

    def read_act_three(self, data: bytes) -> None:
        """Responder: check act three; the handshake is then complete and :attr:`remote_static` known."""
        self._expect(_State.RESPONDER_AWAIT_ACT_THREE, "read act three")
        F = HandshakeFailure
        data = bytes(data)
        if len(data) != ACT_THREE_SIZE:
            raise self._fail(F.ACT3_READ_FAILED, f"{len(data)} bytes, expected {ACT_THREE_SIZE}")
        if data[0] != VERSION:
            raise self._fail(F.ACT3_BAD_VERSION, f"version {data[0]}")
        c, t = data[1:50], data[50:]
        rs_bytes = _decrypt(self._temp_k2, 1, self._h, c)
        if rs_bytes is None:
            raise self._fail(F.ACT3_BAD_CIPHERTEXT)
        rs = _parse_point(rs_bytes)
        if rs is None:
            raise self._fail(F.ACT3_BAD_PUBKEY)
        self._mix_hash(c)
        assert self._re is not None
        temp_k3 = self._mix_key(self._e.ecdh(rs))
        if _decrypt(temp_k3, 0, self._h, t) is None:
            raise self._fail(F.ACT3_BAD_TAG)
        self._rs = rs
        self._rk, self._sk = hkdf_two_keys(self._ck, b"")
        self._state = _State.DONE

    def receive_act(self, data: bytes) -> bytes:
        """Process exactly one act from the peer; return the act to send back (b"" if none)."""
        if self._state is _State.RESPONDER_AWAIT_ACT_ONE:
            return self.read_act_one(data)
        if self._state is _State.INITIATOR_AWAIT_ACT_TWO:
            return self.read_act_two(data)
        if self._state is _State.RESPONDER_AWAIT_ACT_THREE:
            self.read_act_three(data)
            return b""
        raise RuntimeError(f"not expecting an act: handshake is {self._state.value}")

    def feed(self, data: bytes) -> bytes:
        """Take bytes as they arrive; return the bytes to send (often b"").

        Partial acts are buffered. Bytes beyond the last act are kept for the
        :class:`Transport` (see :meth:`transport`).
        """
        if self._state is _State.FAILED:
            raise RuntimeError("handshake already failed")
        if self._transport_taken:
            raise RuntimeError("handshake is over: feed the Transport instead")
        self._buffer += data
        out = b""
        while (need := self.expected_length) and len(self._buffer) >= need:
            act = bytes(self._buffer[:need])
            del self._buffer[:need]
            out += self.receive_act(act)
        return out

    def transport(self) -> Transport:
        """The :class:`Transport` for the completed handshake (holding any bytes already fed past it).

        Callable once: a second Transport on the same keys would reuse nonces.
        """
        if self._state is not _State.DONE:
            raise RuntimeError(f"handshake is {self._state.value}, not complete")
        if self._transport_taken:
            raise RuntimeError("the transport was already taken (reusing its keys would reuse nonces)")
        self._transport_taken = True
        t = Transport(self._ck, self._sk, self._rk)
        t._buffer += self._buffer
        self._buffer.clear()
        return t


# ---------------------------------------------------------------------------
# Transport


class CipherState:
    """One direction's key, nonce and chaining key, with BOLT 8 key rotation."""

    __slots__ = ("_ck", "_k", "_n", "_aead")

    def __init__(self, chaining_key: bytes, key: bytes) -> None:
        if len(chaining_key) != 32 or len(key) != 32:
            raise ValueError("chaining key and key are 32 bytes")
        self._ck = bytes(chaining_key)
        self._k = bytes(key)
        self._n = 0
        self._aead = ChaCha20Poly1305(self._k)

    @property
    def key(self) -> bytes:
        return self._k

    @property
    def chaining_key(self) -> bytes:
        return self._ck

    @property
    def nonce(self) -> int:
        return self._n

    def _advance(self) -> None:
        self._n += 1
        if self._n == KEY_ROTATION_INTERVAL:
            self._ck, self._k = hkdf_two_keys(self._ck, self._k)
            self._n = 0
            self._aead = ChaCha20Poly1305(self._k)

    def encrypt(self, plaintext: bytes) -> bytes:
        """``encryptWithAD(k, n, "", plaintext)``, then advance the nonce (rotating at 1000)."""
        c = self._aead.encrypt(_nonce(self._n), plaintext, b"")
        self._advance()
        return c

    def decrypt(self, ciphertext: bytes) -> bytes | None:
        """The plaintext, or None if the MAC does not verify (the nonce then does not advance)."""
        try:
            p = self._aead.decrypt(_nonce(self._n), ciphertext, b"")
        except InvalidTag:
            return None
        self._advance()
        return p


class Transport:
    """The encrypted link after the handshake: :meth:`encrypt` outgoing, :meth:`feed` incoming."""

    __slots__ = ("sender", "receiver", "_buffer", "_pending_length", "_broken")

    def __init__(self, chaining_key: bytes, sk: bytes, rk: bytes) -> None:
        self.sender = CipherState(chaining_key, sk)
        self.receiver = CipherState(chaining_key, rk)
        self._buffer = bytearray()
        self._pending_length: int | None = None
        self._broken: str | None = None

    @property
    def sk(self) -> bytes:
        """The current sending key."""
        return self.sender.key

    @property
    def rk(self) -> bytes:
        """The current receiving key."""
        return self.receiver.key

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete message."""
        return len(self._buffer)

    def encrypt(self, message: bytes) -> bytes:
        """Frame one message: encrypted 2-byte length, then encrypted body."""
        if len(message) > MAX_MESSAGE_SIZE:
            raise ValueError(f"{len(message)}-byte message exceeds {MAX_MESSAGE_SIZE} bytes")
        header = self.sender.encrypt(len(message).to_bytes(2, "big"))
        return header + self.sender.encrypt(bytes(message))

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every message now complete, in order.

        Raises TransportError on a MAC failure; the transport is then unusable
        (every later call raises too), and the connection must be dropped.
        """
        if self._broken is not None:
            raise TransportError(f"transport already failed: {self._broken}")
        self._buffer += data
        out: list[bytes] = []
        while True:
            if self._pending_length is None:
                if len(self._buffer) < LENGTH_HEADER_SIZE:
                    break
                header = self.receiver.decrypt(bytes(self._buffer[:LENGTH_HEADER_SIZE]))
                if header is None:
                    raise self._break("bad MAC on message length")
                del self._buffer[:LENGTH_HEADER_SIZE]
                self._pending_length = int.from_bytes(header, "big")
            need = self._pending_length + MAC_SIZE
            if len(self._buffer) < need:
                break
            body = self.receiver.decrypt(bytes(self._buffer[:need]))
            if body is None:
                raise self._break("bad MAC on message body")
            del self._buffer[:need]
            self._pending_length = None
            out.append(body)
        return out

    def _break(self, reason: str) -> TransportError:
        self._broken = reason
        return TransportError(reason)
