"""The P2P message frame: Bitcoin's 24-byte header and a sans-IO stream decoder.

A frame is ``magic (4) | command (12, NUL-padded ASCII) | payload length (u32) |
checksum (first 4 bytes of hash256(payload)) | payload``.

:class:`FrameDecoder` takes bytes as they arrive from a socket, in any pieces,
and returns whole frames or decoded messages. Any error in the framing itself
(wrong magic, bad command string, oversize length, bad checksum) leaves the
stream unusable: the decoder raises :class:`ProtocolViolation` for it and
again on every later call, and the connection must be closed. Frames completed
earlier in the same call are discarded with it, as Core never processes the
messages of a peer it is disconnecting.

Scores (see :class:`ProtocolViolation`): "wrong network magic" earns 0 -- it is
a peer of another chain, not a misbehaving one; every other framing error 100.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..hashes import hash256
from ..serialize import u32
from .messages import Message, ProtocolViolation, decode_payload, encode_payload

__all__ = [
    "HEADER_SIZE",
    "COMMAND_SIZE",
    "MAX_PROTOCOL_MESSAGE_LENGTH",
    "MAX_PAYLOAD",
    "MessageHeader",
    "Frame",
    "FrameDecoder",
    "checksum",
    "frame",
    "frame_raw",
]

HEADER_SIZE = 24
COMMAND_SIZE = 12
MAX_PROTOCOL_MESSAGE_LENGTH = 4_000_000  # Core's limit
MAX_PAYLOAD = MAX_PROTOCOL_MESSAGE_LENGTH + 1_000  # FrameDecoder's default: a little slack
_FRAMING_SCORE = 100


def checksum(payload: bytes) -> bytes:
    """The first 4 bytes of hash256(payload)."""
    return hash256(payload)[:4]


def _encode_command(command: str) -> bytes:
    if len(command) > COMMAND_SIZE or any(not 0x20 <= ord(c) <= 0x7E for c in command):
        raise ValueError(f"invalid command {command!r}: at most 12 printable ASCII characters")
    return command.encode("ascii").ljust(COMMAND_SIZE, b"\x00")


def _decode_command(raw: bytes) -> str:
    """Core's IsCommandValid: printable ASCII, then only NUL padding."""
    name, _, padding = raw.partition(b"\x00")
    if padding.strip(b"\x00"):
        raise ProtocolViolation(f"malformed command {raw!r}: data after NUL", _FRAMING_SCORE)
    if any(not 0x20 <= c <= 0x7E for c in name):
        raise ProtocolViolation(f"malformed command {raw!r}: not printable", _FRAMING_SCORE)
    return name.decode("ascii")


@dataclass(frozen=True, slots=True)
class MessageHeader:
    """The 24-byte frame header (Core's CMessageHeader)."""

    magic: bytes
    command: str
    length: int
    checksum: bytes

    def to_bytes(self) -> bytes:
        return self.magic + _encode_command(self.command) + u32(self.length) + self.checksum

    @classmethod
    def parse(cls, raw: bytes) -> MessageHeader:
        """Parse 24 bytes; a malformed command string raises :class:`ProtocolViolation`."""
        if len(raw) != HEADER_SIZE:
            raise ValueError(f"a message header is {HEADER_SIZE} bytes, got {len(raw)}")
        return cls(
            raw[0:4],
            _decode_command(raw[4:16]),
            int.from_bytes(raw[16:20], "little"),
            raw[20:24],
        )


@dataclass(frozen=True, slots=True)
class Frame:
    """One framed message whose payload is not decoded yet."""

    command: str
    payload: bytes


def frame_raw(magic: bytes, command: str, payload: bytes) -> bytes:
    """Frame an arbitrary command and payload."""
    if len(magic) != 4:
        raise ValueError(f"network magic must be 4 bytes, got {len(magic)}")
    header = MessageHeader(magic, command, len(payload), checksum(payload))
    return header.to_bytes() + payload


def frame(magic: bytes, msg: Message) -> bytes:
    """The bytes to put on the wire for ``msg`` on the network with ``magic``."""
    return frame_raw(magic, msg.command, encode_payload(msg))


class FrameDecoder:
    """Splits a byte stream into frames; sans-IO, buffers partial frames."""

    __slots__ = ("magic", "max_payload", "_buf", "_header", "_error")

    def __init__(self, magic: bytes, max_payload: int = MAX_PAYLOAD) -> None:
        if len(magic) != 4:
            raise ValueError(f"network magic must be 4 bytes, got {len(magic)}")
        self.magic = magic
        self.max_payload = max_payload
        self._buf = bytearray()
        self._header: MessageHeader | None = None  # parsed header of the frame in progress
        self._error: ProtocolViolation | None = None

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as part of a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Message]:
        """Add received bytes; return the messages completed by them, decoded.

        A malformed payload raises :class:`ProtocolViolation` and the other
        messages of this call are lost; to treat payload errors one message at
        a time (as :class:`~base_chain.p2p.protocol.PeerProtocol` does), use
        :meth:`feed_frames` and :func:`~base_chain.p2p.messages.decode_payload`.
        """
        return [decode_payload(f.command, f.payload) for f in self.feed_frames(data)]

    def feed_frames(self, data: bytes) -> list[Frame]:
        """Add received bytes; return the frames completed by them."""
        if self._error is not None:
            raise self._error
        self._buf += data
        try:
            return self._split()
        except ProtocolViolation as e:
            self._error = e
            self._buf.clear()
            raise

    def _split(self) -> list[Frame]:
        frames: list[Frame] = []
        buf = self._buf
        pos = 0
        while True:
            if self._header is None:
                if len(buf) - pos >= 4 and buf[pos : pos + 4] != self.magic:
                    raise ProtocolViolation("wrong network magic", 0)
                if len(buf) - pos < HEADER_SIZE:
                    break
                header = MessageHeader.parse(bytes(buf[pos : pos + HEADER_SIZE]))
                if header.length > self.max_payload:
                    raise ProtocolViolation(
                        f"oversized message: {header.command} of {header.length} bytes",
                        _FRAMING_SCORE,
                    )
                self._header = header
                pos += HEADER_SIZE
            header = self._header
            if len(buf) - pos < header.length:
                break
            payload = bytes(buf[pos : pos + header.length])
            pos += header.length
            if checksum(payload) != header.checksum:
                raise ProtocolViolation(f"bad checksum in {header.command} message", _FRAMING_SCORE)
            frames.append(Frame(header.command, payload))
            self._header = None
        del buf[:pos]
        return frames
