"""BOLT 1 message framing and the setup/control messages.

A Lightning message (after BOLT 8 decryption) is a 2-byte big-endian ``type``,
the ``payload`` for that type, and an optional TLV ``extension``; the whole
message is at most 65535 bytes.

* :class:`Message` is the base of every known message: a frozen dataclass with
  class attributes ``TYPE`` and ``NAME`` (the BOLT name), ``encode_payload()``
  and ``decode_payload(payload)``. Messages keep the unknown odd records of
  their extension (``unknown_tlvs``) so they re-encode byte for byte.
* A :class:`MessageRegistry` maps types to classes. :data:`MESSAGES` is the
  default one; the BOLT 2 and BOLT 7 modules add their messages with
  ``@register_message``, so the peer layer must import them before decoding.
* :func:`decode_message` applies BOLT 1's receiving rules: a known message
  that is malformed (too short, bad field, invalid extension) raises
  :class:`WireError`; an unknown *even* type raises :class:`UnknownEvenMessage`
  (close the connection); an unknown *odd* type returns an
  :class:`UnknownMessage`, which the caller ignores.

Messages here: ``init`` (16), ``error`` (17), ``warning`` (1), ``ping`` (18),
``pong`` (19).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Self, TypeVar

from .features import Features
from .tlv import (
    Reader,
    TlvError,
    TlvNamespace,
    TlvRecord,
    TlvRecordType,
    TlvStream,
    encode_u16,
)

__all__ = [
    "MAX_MESSAGE_SIZE",
    "MAX_PONG_BYTES",
    "WireError",
    "UnknownEvenMessage",
    "Message",
    "UnknownMessage",
    "MessageRegistry",
    "MESSAGES",
    "register_message",
    "encode_message",
    "decode_message",
    "decode_extension",
    "encode_extension",
    "Init",
    "ErrorMessage",
    "WarningMessage",
    "Ping",
    "Pong",
    "INIT_TLVS",
    "NETWORKS",
    "REMOTE_ADDR",
    "ALL_CHANNELS",
]

MAX_MESSAGE_SIZE = 65535
"""BOLT 1/8: a message (type included) fits a 2-byte length."""

MAX_PONG_BYTES = 65531
"""The largest ``pong`` ``byteslen`` that fits a message; ``num_pong_bytes`` above it asks for no reply."""

ALL_CHANNELS = bytes(32)
"""The ``channel_id`` of an ``error``/``warning`` that concerns every channel with the peer."""


class WireError(ValueError):
    """A malformed message from the peer: BOLT 1 says close the connection.

    ``reason`` says what was wrong; ``msg_type`` is the message type when known.
    """

    def __init__(self, reason: str, msg_type: int | None = None) -> None:
        super().__init__(reason if msg_type is None else f"message type {msg_type}: {reason}")
        self.reason = reason
        self.msg_type = msg_type


class UnknownEvenMessage(WireError):
    """A message of an unknown *even* type: BOLT 1 says close the connection."""

    def __init__(self, msg_type: int) -> None:
        super().__init__("unknown even message type (it's not OK to be even)", msg_type)


class Message(ABC):
    """A known Lightning message. Subclasses are frozen dataclasses."""

    TYPE: ClassVar[int]
    NAME: ClassVar[str]

    @abstractmethod
    def encode_payload(self) -> bytes:
        """The bytes after the 2-byte type: the payload and its extension."""

    @classmethod
    @abstractmethod
    def decode_payload(cls, payload: bytes) -> Self:
        """Parse a payload; raise TlvError or WireError (any ValueError) if malformed."""

    def encode(self) -> bytes:
        return encode_message(self)


@dataclass(frozen=True)
class UnknownMessage:
    """A message of an unknown *odd* type: BOLT 1 says ignore it (it is still encodable)."""

    type: int
    payload: bytes

    def __post_init__(self) -> None:
        _check_type(self.type)

    def encode(self) -> bytes:
        return encode_message(self)


def _check_type(msg_type: int) -> None:
    if not 0 <= msg_type <= 0xFFFF:
        raise ValueError(f"message type out of range: {msg_type}")


def encode_message(msg: Message | UnknownMessage) -> bytes:
    """``type`` + payload (+ extension); ValueError if over 65535 bytes."""
    if isinstance(msg, UnknownMessage):
        msg_type, payload = msg.type, msg.payload
    else:
        msg_type, payload = msg.TYPE, msg.encode_payload()
    data = encode_u16(msg_type) + payload
    if len(data) > MAX_MESSAGE_SIZE:
        raise ValueError(f"{len(data)}-byte message exceeds {MAX_MESSAGE_SIZE} bytes")
    return data


M = TypeVar("M", bound=type[Message])


class MessageRegistry:
    """Which message types this node knows, and their classes."""

    __slots__ = ("_classes",)

    def __init__(self, *classes: type[Message]) -> None:
        self._classes: dict[int, type[Message]] = {}
        for cls in classes:
            self.register(cls)

    def register(self, cls: M) -> M:
        """Add a message class (usable as a class decorator)."""
        _check_type(cls.TYPE)
        existing = self._classes.get(cls.TYPE)
        if existing is not None and existing is not cls:
            raise ValueError(f"message type {cls.TYPE} already registered as {existing.NAME}")
        self._classes[cls.TYPE] = cls
        return cls

    def lookup(self, msg_type: int) -> type[Message] | None:
        return self._classes.get(msg_type)

    def __contains__(self, msg_type: object) -> bool:
        return msg_type in self._classes

    def copy(self) -> MessageRegistry:
        return MessageRegistry(*self._classes.values())

    def decode(self, data: bytes) -> Message | UnknownMessage:
        """Decode one message, applying BOLT 1's odd/even rule (see :func:`decode_message`)."""
        data = bytes(data)
        if len(data) < 2:
            raise WireError(f"message of {len(data)} bytes has no 2-byte type")
        if len(data) > MAX_MESSAGE_SIZE:
            raise WireError(f"{len(data)}-byte message exceeds {MAX_MESSAGE_SIZE} bytes")
        msg_type = int.from_bytes(data[:2], "big")
        cls = self._classes.get(msg_type)
        if cls is None:
            if msg_type % 2 == 0:
                raise UnknownEvenMessage(msg_type)
            return UnknownMessage(msg_type, data[2:])
        try:
            return cls.decode_payload(data[2:])
        except WireError as e:
            raise WireError(f"{cls.NAME}: {e.reason}", msg_type) from None
        except ValueError as e:  # TlvError and any other decoding failure
            reason = e.reason if isinstance(e, TlvError) else str(e)
            raise WireError(f"{cls.NAME}: {reason}", msg_type) from None


MESSAGES = MessageRegistry()
"""The default registry; BOLT 2/7 modules add to it with :func:`register_message`."""


def register_message(cls: M) -> M:
    """Class decorator: add a message class to :data:`MESSAGES`."""
    return MESSAGES.register(cls)


def decode_message(data: bytes, registry: MessageRegistry | None = None) -> Message | UnknownMessage:
    """Decode a decrypted message.

    Returns the known message, or an :class:`UnknownMessage` for an unknown odd
    type (ignore it). Raises :class:`UnknownEvenMessage` for an unknown even
    type and :class:`WireError` for a malformed known one: either way the
    connection must be closed.
    """
    return (registry or MESSAGES).decode(data)


# ---------------------------------------------------------------------------
# Extension helpers for message implementations


def decode_extension(r: Reader, namespace: TlvNamespace) -> TlvStream:
    """Read the rest of a payload as the message's TLV extension (TlvError if invalid)."""
    return namespace.decode(r.rest())


def encode_extension(stream: TlvStream) -> bytes:
    return stream.encode()


def _unknown_stream(records: tuple[TlvRecord, ...]) -> TlvStream:
    return TlvStream(records)


def _check_len(name: str, value: bytes, limit: int = 0xFFFF) -> None:
    if len(value) > limit:
        raise ValueError(f"{name} is {len(value)} bytes; at most {limit} fit")


# ---------------------------------------------------------------------------
# init


def _read_chains(r: Reader) -> tuple[bytes, ...]:
    raw = r.rest()
    if len(raw) % 32:
        raise TlvError(f"chains is {len(raw)} bytes, not a multiple of 32")
    return tuple(raw[i : i + 32] for i in range(0, len(raw), 32))


def _write_chains(chains: tuple[bytes, ...]) -> bytes:
    return b"".join(chains)


def _read_rest(r: Reader) -> bytes:
    return r.rest()


def _write_raw(value: bytes) -> bytes:
    return value


NETWORKS: TlvRecordType[tuple[bytes, ...]] = TlvRecordType(1, "networks", _read_chains, _write_chains)
REMOTE_ADDR: TlvRecordType[bytes] = TlvRecordType(3, "remote_addr", _read_rest, _write_raw)
INIT_TLVS = TlvNamespace("init_tlvs", NETWORKS, REMOTE_ADDR)


@dataclass(frozen=True)
class Init(Message):
    """``init``: the first message on every connection.

    ``networks`` are chain hashes (``None``: the TLV is absent); ``remote_addr``
    is a BOLT 7 address descriptor kept as raw bytes. The logical feature map is
    :attr:`all_features` (``globalfeatures | features``).
    """

    TYPE: ClassVar[int] = 16
    NAME: ClassVar[str] = "init"

    globalfeatures: Features = Features()
    features: Features = Features()
    networks: tuple[bytes, ...] | None = None
    remote_addr: bytes | None = None
    unknown_tlvs: tuple[TlvRecord, ...] = ()

    def __post_init__(self) -> None:
        if self.networks is not None:
            for chain in self.networks:
                if len(chain) != 32:
                    raise ValueError("a chain_hash is 32 bytes")
        _check_len("globalfeatures", self.globalfeatures.to_bytes())
        _check_len("features", self.features.to_bytes())

    @property
    def all_features(self) -> Features:
        return self.globalfeatures | self.features

    def tlvs(self) -> TlvStream:
        stream = _unknown_stream(self.unknown_tlvs)
        if self.networks is not None:
            stream = stream.set(NETWORKS, tuple(self.networks))
        if self.remote_addr is not None:
            stream = stream.set(REMOTE_ADDR, self.remote_addr)
        return stream

    def encode_payload(self) -> bytes:
        gf = self.globalfeatures.to_bytes()
        f = self.features.to_bytes()
        return encode_u16(len(gf)) + gf + encode_u16(len(f)) + f + self.tlvs().encode()

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        r = Reader(payload)
        gf = r.read(r.u16())
        f = r.read(r.u16())
        tlvs = decode_extension(r, INIT_TLVS)
        return cls(
            globalfeatures=Features.from_bytes(gf),
            features=Features.from_bytes(f),
            networks=tlvs.get(NETWORKS),
            remote_addr=tlvs.get(REMOTE_ADDR),
            unknown_tlvs=tlvs.unknown,
        )


# ---------------------------------------------------------------------------
# error and warning

_ERROR_TLVS = TlvNamespace("error_tlvs")
_WARNING_TLVS = TlvNamespace("warning_tlvs")
_PING_TLVS = TlvNamespace("ping_tlvs")
_PONG_TLVS = TlvNamespace("pong_tlvs")


def _printable(data: bytes) -> str:
    """``data`` as text if it is all printable ASCII (BOLT 1: else don't print it verbatim)."""
    if all(32 <= b <= 126 for b in data):
        return data.decode("ascii")
    return "0x" + data.hex()


@dataclass(frozen=True)
class _ChannelNotice(Message):
    """The shared shape of ``error`` and ``warning``."""

    TLVS: ClassVar[TlvNamespace]

    channel_id: bytes = ALL_CHANNELS
    data: bytes = b""
    unknown_tlvs: tuple[TlvRecord, ...] = ()

    def __post_init__(self) -> None:
        if len(self.channel_id) != 32:
            raise ValueError("channel_id is 32 bytes")
        _check_len("data", self.data)

    @property
    def len(self) -> int:
        return len(self.data)

    @property
    def applies_to_all_channels(self) -> bool:
        return self.channel_id == ALL_CHANNELS

    def printable_data(self) -> str:
        return _printable(self.data)

    def encode_payload(self) -> bytes:
        return self.channel_id + encode_u16(len(self.data)) + self.data + _unknown_stream(self.unknown_tlvs).encode()

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        r = Reader(payload)
        channel_id = r.read(32)
        data = r.read(r.u16())
        tlvs = decode_extension(r, cls.TLVS)
        return cls(channel_id=channel_id, data=data, unknown_tlvs=tlvs.unknown)


@dataclass(frozen=True)
class ErrorMessage(_ChannelNotice):
    """``error``: fail the channel ``channel_id`` (all channels if it is all zero)."""

    TYPE: ClassVar[int] = 17
    NAME: ClassVar[str] = "error"
    TLVS: ClassVar[TlvNamespace] = _ERROR_TLVS


@dataclass(frozen=True)
class WarningMessage(_ChannelNotice):
    """``warning``: something is wrong but the channel need not fail; log it."""

    TYPE: ClassVar[int] = 1
    NAME: ClassVar[str] = "warning"
    TLVS: ClassVar[TlvNamespace] = _WARNING_TLVS


# ---------------------------------------------------------------------------
# ping and pong


@dataclass(frozen=True)
class Ping(Message):
    """``ping``: asks for a ``pong`` of ``num_pong_bytes`` ignored bytes."""

    TYPE: ClassVar[int] = 18
    NAME: ClassVar[str] = "ping"

    num_pong_bytes: int = 0
    ignored: bytes = b""
    unknown_tlvs: tuple[TlvRecord, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.num_pong_bytes <= 0xFFFF:
            raise ValueError(f"num_pong_bytes out of range: {self.num_pong_bytes}")
        _check_len("ignored", self.ignored)

    @classmethod
    def create(cls, num_pong_bytes: int, byteslen: int = 0) -> Ping:
        """A ping whose ``ignored`` is ``byteslen`` zero bytes (BOLT 1: SHOULD be 0s)."""
        return cls(num_pong_bytes, bytes(byteslen))

    @property
    def byteslen(self) -> int:
        return len(self.ignored)

    @property
    def wants_pong(self) -> bool:
        """BOLT 1: reply only if ``num_pong_bytes`` < 65532."""
        return self.num_pong_bytes <= MAX_PONG_BYTES

    def response(self) -> Pong | None:
        """The ``pong`` to send back, or None if this ping must be ignored."""
        return Pong(bytes(self.num_pong_bytes)) if self.wants_pong else None

    def encode_payload(self) -> bytes:
        return (
            encode_u16(self.num_pong_bytes)
            + encode_u16(len(self.ignored))
            + self.ignored
            + _unknown_stream(self.unknown_tlvs).encode()
        )

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        r = Reader(payload)
        num_pong_bytes = r.u16()
        ignored = r.read(r.u16())
        tlvs = decode_extension(r, _PING_TLVS)
        return cls(num_pong_bytes, ignored, tlvs.unknown)


@dataclass(frozen=True)
class Pong(Message):
    """``pong``: the reply to a ``ping``; ``byteslen`` should match its ``num_pong_bytes``."""

    TYPE: ClassVar[int] = 19
    NAME: ClassVar[str] = "pong"

    ignored: bytes = b""
    unknown_tlvs: tuple[TlvRecord, ...] = ()

    def __post_init__(self) -> None:
        _check_len("ignored", self.ignored)

    @property
    def byteslen(self) -> int:
        return len(self.ignored)

    def encode_payload(self) -> bytes:
        return encode_u16(len(self.ignored)) + self.ignored + _unknown_stream(self.unknown_tlvs).encode()

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        r = Reader(payload)
        ignored = r.read(r.u16())
        tlvs = decode_extension(r, _PONG_TLVS)
        return cls(ignored, tlvs.unknown)


for _cls in (Init, ErrorMessage, WarningMessage, Ping, Pong):
    register_message(_cls)
del _cls
