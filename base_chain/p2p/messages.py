"""Bitcoin P2P messages: one frozen dataclass per command, and their payload encodings.

Each message class is named after its command (``MsgVersion`` is "version",
``MsgGetHeaders`` is "getheaders") and carries that command as the class
attribute ``command``. :func:`encode_payload` and :func:`decode_payload` convert
between a message and its payload (the bytes after the 24-byte frame header,
see :mod:`base_chain.p2p.framing`).

A payload that cannot be decoded raises :class:`ProtocolViolation`, whose
``score`` is the misbehaviour it earns under Bitcoin Core's old DoS-score model
(100 = disconnect and ban):

* a malformed payload (truncated, trailing bytes, non-canonical CompactSize,
  over-long string, bad field) -> 100;
* an ``inv`` / ``getdata`` / ``notfound`` / ``headers`` / ``addr`` with more
  entries than allowed -> 20, as Core's ``Misbehaving(pfrom, 20, ...)``;
* a block locator longer than 101 hashes -> 100 (Core disconnects).

Commands Canal does not know decode to :class:`MsgUnknown`; Core ignores them.

Two leniencies follow Core: a ``version`` payload may end after ``start_height``
(``relay`` then defaults to True) and may carry bytes after ``relay`` (later
protocol extensions; ignored), and any non-zero ``relay`` byte means True.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Self

from ..block import Block, BlockHeader
from ..serialize import ByteReader, DeserializationError, compact_size, i32, i64, ser_bytes, u32, u64
from ..tx import Transaction

__all__ = [
    "ProtocolViolation",
    # constants
    "PROTOCOL_VERSION",
    "MIN_PEER_PROTO_VERSION",
    "USER_AGENT",
    "NODE_NONE",
    "NODE_NETWORK",
    "NODE_BLOOM",
    "NODE_WITNESS",
    "NODE_NETWORK_LIMITED",
    "MSG_TX",
    "MSG_BLOCK",
    "MSG_FILTERED_BLOCK",
    "MSG_CMPCT_BLOCK",
    "MSG_WTX",
    "MSG_WITNESS_FLAG",
    "MSG_WITNESS_TX",
    "MSG_WITNESS_BLOCK",
    "MAX_INV_SZ",
    "MAX_LOCATOR_SZ",
    "MAX_HEADERS_RESULTS",
    "MAX_ADDR_TO_SEND",
    "MAX_SUBVERSION_LENGTH",
    "MAX_REJECT_MESSAGE_LENGTH",
    "MALFORMED_SCORE",
    "OVERSIZED_LIST_SCORE",
    # building blocks
    "NetAddr",
    "TimestampedAddr",
    "InvVector",
    # messages
    "MsgVersion",
    "MsgVerack",
    "MsgPing",
    "MsgPong",
    "MsgInv",
    "MsgGetData",
    "MsgNotFound",
    "MsgGetHeaders",
    "MsgGetBlocks",
    "MsgHeaders",
    "MsgBlock",
    "MsgTx",
    "MsgAddr",
    "MsgGetAddr",
    "MsgSendHeaders",
    "MsgWtxidRelay",
    "MsgSendAddrV2",
    "MsgFeeFilter",
    "MsgMempool",
    "MsgReject",
    "MsgUnknown",
    "Message",
    "MESSAGE_TYPES",
    "encode_payload",
    "decode_payload",
]

# --- constants (Core's names) -------------------------------------------------

PROTOCOL_VERSION = 70016  # wtxidrelay (BIP339)
MIN_PEER_PROTO_VERSION = 70001  # Canal's minimum: "relay" in version (BIP37), BIP31 ping nonces
USER_AGENT = "/Canal:0.1.0/"

NODE_NONE = 0
NODE_NETWORK = 1 << 0
NODE_BLOOM = 1 << 2
NODE_WITNESS = 1 << 3
NODE_NETWORK_LIMITED = 1 << 10

MSG_TX = 1
MSG_BLOCK = 2
MSG_FILTERED_BLOCK = 3
MSG_CMPCT_BLOCK = 4
MSG_WTX = 5
MSG_WITNESS_FLAG = 1 << 30
MSG_WITNESS_TX = MSG_TX | MSG_WITNESS_FLAG  # 0x40000001
MSG_WITNESS_BLOCK = MSG_BLOCK | MSG_WITNESS_FLAG  # 0x40000002

MAX_INV_SZ = 50_000
MAX_LOCATOR_SZ = 101
MAX_HEADERS_RESULTS = 2_000
MAX_ADDR_TO_SEND = 1_000
MAX_SUBVERSION_LENGTH = 256
MAX_REJECT_MESSAGE_LENGTH = 111
_COMMAND_SIZE = 12

MALFORMED_SCORE = 100
OVERSIZED_LIST_SCORE = 20

_U16_MAX = 2**16 - 1
_U32_MAX = 2**32 - 1
_U64_MAX = 2**64 - 1
_I32 = (-(2**31), 2**31 - 1)
_I64 = (-(2**63), 2**63 - 1)
_IPV4_MAPPED_PREFIX = b"\x00" * 10 + b"\xff\xff"


class ProtocolViolation(Exception):
    """The peer broke the P2P protocol.

    ``reason`` says how (Core's log wording where there is one); ``score`` is the
    misbehaviour it earns (Core's old DoS score: 100 = disconnect and ban).
    """

    def __init__(self, reason: str, score: int = MALFORMED_SCORE) -> None:
        super().__init__(reason)
        self.reason = reason
        self.score = score

    def __repr__(self) -> str:
        return f"ProtocolViolation({self.reason!r}, score={self.score})"


def _check_range(name: str, value: int, lo: int, hi: int) -> None:
    if not lo <= value <= hi:
        raise ValueError(f"{name} out of range: {value}")


def _check_hash(name: str, value: bytes) -> None:
    if len(value) != 32:
        raise ValueError(f"{name} must be 32 bytes, got {len(value)}")


def _read_string(r: ByteReader, limit: int) -> str:
    """Core's LIMITED_STRING: a CompactSize length, at most ``limit`` bytes."""
    n = r.compact_size()
    if n > limit:
        raise DeserializationError("String length limit exceeded")
    return r.read(n).decode("utf-8", "replace")


def _ser_string(s: str) -> bytes:
    return ser_bytes(s.encode("utf-8"))


def _read_count(r: ByteReader, limit: int, command: str, score: int = OVERSIZED_LIST_SCORE) -> int:
    n = r.compact_size()
    if n > limit:
        raise ProtocolViolation(f"{command} message size = {n}", score)
    return n


# --- building blocks ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NetAddr:
    """A network address as in ``version`` (Core's CAddress without time).

    ``ip`` is 16 bytes, IPv6 or IPv4-mapped (::ffff:a.b.c.d); ``port`` is sent
    big-endian, unlike every other integer in the protocol.
    """

    services: int = NODE_NONE
    ip: bytes = b"\x00" * 16
    port: int = 0

    def __post_init__(self) -> None:
        _check_range("services", self.services, 0, _U64_MAX)
        if len(self.ip) != 16:
            raise ValueError(f"ip must be 16 bytes, got {len(self.ip)}")
        _check_range("port", self.port, 0, _U16_MAX)

    @classmethod
    def from_host(cls, host: str, port: int, services: int = NODE_NONE) -> NetAddr:
        """From a literal IPv4 or IPv6 address, e.g. ``NetAddr.from_host("127.0.0.1", 8333)``."""
        ip = ipaddress.ip_address(host)
        raw = _IPV4_MAPPED_PREFIX + ip.packed if ip.version == 4 else ip.packed
        return cls(services, raw, port)

    @property
    def host(self) -> str:
        """The address as text: dotted quad for IPv4-mapped addresses."""
        if self.ip.startswith(_IPV4_MAPPED_PREFIX):
            return str(ipaddress.IPv4Address(self.ip[12:]))
        return str(ipaddress.IPv6Address(self.ip))

    def to_bytes(self) -> bytes:
        return u64(self.services) + self.ip + self.port.to_bytes(2, "big")

    @classmethod
    def read(cls, r: ByteReader) -> NetAddr:
        services = r.u64()
        ip = r.read(16)
        port = int.from_bytes(r.read(2), "big")
        return cls(services, ip, port)


@dataclass(frozen=True, slots=True)
class TimestampedAddr:
    """An ``addr`` entry: last-seen time (u32 seconds) and the address."""

    time: int
    addr: NetAddr

    def __post_init__(self) -> None:
        _check_range("time", self.time, 0, _U32_MAX)

    def to_bytes(self) -> bytes:
        return u32(self.time) + self.addr.to_bytes()

    @classmethod
    def read(cls, r: ByteReader) -> TimestampedAddr:
        return cls(r.u32(), NetAddr.read(r))


@dataclass(frozen=True, slots=True)
class InvVector:
    """Core's CInv: an object type (``MSG_*``; unknown types are kept) and its hash."""

    type: int
    hash: bytes

    def __post_init__(self) -> None:
        _check_range("inv type", self.type, 0, _U32_MAX)
        _check_hash("inv hash", self.hash)

    def to_bytes(self) -> bytes:
        return u32(self.type) + self.hash

    @classmethod
    def read(cls, r: ByteReader) -> InvVector:
        return cls(r.u32(), r.read(32))


# --- handshake and keep-alive ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class MsgVersion:
    """The first message each side sends."""

    command: ClassVar[str] = "version"

    version: int = PROTOCOL_VERSION
    services: int = NODE_NETWORK | NODE_WITNESS
    timestamp: int = 0
    addr_recv: NetAddr = field(default_factory=NetAddr)
    addr_from: NetAddr = field(default_factory=NetAddr)
    nonce: int = 0
    user_agent: str = USER_AGENT
    start_height: int = 0
    relay: bool = True

    def __post_init__(self) -> None:
        _check_range("version", self.version, *_I32)
        _check_range("services", self.services, 0, _U64_MAX)
        _check_range("timestamp", self.timestamp, *_I64)
        _check_range("nonce", self.nonce, 0, _U64_MAX)
        _check_range("start_height", self.start_height, *_I32)

    def to_payload(self) -> bytes:
        return b"".join(
            (
                i32(self.version),
                u64(self.services),
                i64(self.timestamp),
                self.addr_recv.to_bytes(),
                self.addr_from.to_bytes(),
                u64(self.nonce),
                _ser_string(self.user_agent),
                i32(self.start_height),
                b"\x01" if self.relay else b"\x00",
            )
        )

    @classmethod
    def read(cls, r: ByteReader) -> Self:
        version = r.i32()
        services = r.u64()
        timestamp = r.i64()
        addr_recv = NetAddr.read(r)
        addr_from = NetAddr.read(r)
        nonce = r.u64()
        user_agent = _read_string(r, MAX_SUBVERSION_LENGTH)
        start_height = r.i32()
        relay = r.u8() != 0 if r.remaining() else True
        r.read(r.remaining())  # later extensions, ignored as Core does
        return cls(
            version, services, timestamp, addr_recv, addr_from, nonce, user_agent, start_height, relay
        )


@dataclass(frozen=True, slots=True)
class _Empty:
    """A message without payload."""

    def to_payload(self) -> bytes:
        return b""

    @classmethod
    def read(cls, r: ByteReader) -> Self:
        return cls()


@dataclass(frozen=True, slots=True)
class MsgVerack(_Empty):
    """Acknowledges the peer's version."""

    command: ClassVar[str] = "verack"


@dataclass(frozen=True, slots=True)
class _Nonce:
    nonce: int

    def __post_init__(self) -> None:
        _check_range("nonce", self.nonce, 0, _U64_MAX)

    def to_payload(self) -> bytes:
        return u64(self.nonce)

    @classmethod
    def read(cls, r: ByteReader) -> Self:
        return cls(r.u64())


@dataclass(frozen=True, slots=True)
class MsgPing(_Nonce):
    """Keep-alive; answered with a pong carrying the same nonce (BIP31)."""

    command: ClassVar[str] = "ping"


@dataclass(frozen=True, slots=True)
class MsgPong(_Nonce):
    """The answer to a ping."""

    command: ClassVar[str] = "pong"


# --- inventory ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Inventory:
    inventory: tuple[InvVector, ...] = ()

    command: ClassVar[str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "inventory", tuple(self.inventory))
        if len(self.inventory) > MAX_INV_SZ:
            raise ValueError(f"{self.command}: {len(self.inventory)} entries > {MAX_INV_SZ}")

    def to_payload(self) -> bytes:
        return compact_size(len(self.inventory)) + b"".join(i.to_bytes() for i in self.inventory)

    @classmethod
    def read(cls, r: ByteReader) -> Self:
        n = _read_count(r, MAX_INV_SZ, cls.command)
        return cls(tuple(InvVector.read(r) for _ in range(n)))


@dataclass(frozen=True, slots=True)
class MsgInv(_Inventory):
    """Announces transactions or blocks."""

    command: ClassVar[str] = "inv"


@dataclass(frozen=True, slots=True)
class MsgGetData(_Inventory):
    """Requests transactions or blocks by inventory."""

    command: ClassVar[str] = "getdata"


@dataclass(frozen=True, slots=True)
class MsgNotFound(_Inventory):
    """Answers a getdata for objects the peer does not have."""

    command: ClassVar[str] = "notfound"


# --- headers and blocks ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Locator:
    """A block locator (newest first) and the hash to stop at (zero: as many as allowed)."""

    locator: tuple[bytes, ...] = ()
    hash_stop: bytes = b"\x00" * 32
    version: int = PROTOCOL_VERSION

    command: ClassVar[str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "locator", tuple(self.locator))
        if len(self.locator) > MAX_LOCATOR_SZ:
            raise ValueError(f"{self.command}: locator of {len(self.locator)} > {MAX_LOCATOR_SZ}")
        for h in self.locator:
            _check_hash("locator hash", h)
        _check_hash("hash_stop", self.hash_stop)
        _check_range("version", self.version, *_I32)

    def to_payload(self) -> bytes:
        parts = [i32(self.version), compact_size(len(self.locator)), *self.locator, self.hash_stop]
        return b"".join(parts)

    @classmethod
    def read(cls, r: ByteReader) -> Self:
        version = r.i32()
        n = r.compact_size()
        if n > MAX_LOCATOR_SZ:
            raise ProtocolViolation(
                f"{cls.command} locator size {n} > {MAX_LOCATOR_SZ}", MALFORMED_SCORE
            )
        locator = tuple(r.read(32) for _ in range(n))
        return cls(locator, r.read(32), version)


@dataclass(frozen=True, slots=True)
class MsgGetHeaders(_Locator):
    """Requests up to 2,000 headers after the first locator hash on the peer's chain."""

    command: ClassVar[str] = "getheaders"


@dataclass(frozen=True, slots=True)
class MsgGetBlocks(_Locator):
    """Requests an inv of up to 500 blocks after the locator (legacy block sync)."""

    command: ClassVar[str] = "getblocks"


@dataclass(frozen=True, slots=True)
class MsgHeaders:
    """Block headers, each followed by a zero transaction count."""

    command: ClassVar[str] = "headers"

    headers: tuple[BlockHeader, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", tuple(self.headers))
        if len(self.headers) > MAX_HEADERS_RESULTS:
            raise ValueError(f"headers: {len(self.headers)} > {MAX_HEADERS_RESULTS}")

    def to_payload(self) -> bytes:
        parts = [compact_size(len(self.headers))]
        for header in self.headers:
            parts += [header.to_bytes(), b"\x00"]
        return b"".join(parts)

    @classmethod
    def read(cls, r: ByteReader) -> Self:
        n = _read_count(r, MAX_HEADERS_RESULTS, cls.command)
        headers = []
        for _ in range(n):
            headers.append(BlockHeader.read(r))
            if r.compact_size() != 0:
                raise DeserializationError("header with non-zero transaction count")
        return cls(tuple(headers))


@dataclass(frozen=True, slots=True)
class MsgBlock:
    """A full block, transactions in witness serialization."""

    command: ClassVar[str] = "block"

    block: Block

    def to_payload(self) -> bytes:
        return self.block.to_bytes()

    @classmethod
    def read(cls, r: ByteReader) -> Self:
        return cls(Block.read(r))


@dataclass(frozen=True, slots=True)
class MsgTx:
    """A transaction in witness serialization."""

    command: ClassVar[str] = "tx"

    tx: Transaction

    def to_payload(self) -> bytes:
        return self.tx.to_bytes()

    @classmethod
    def read(cls, r: ByteReader) -> Self:
        return cls(Transaction.read(r))


# --- addresses ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MsgAddr:
    """Known peer addresses, with last-seen times."""

    command: ClassVar[str] = "addr"

    addresses: tuple[TimestampedAddr, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "addresses", tuple(self.addresses))
        if len(self.addresses) > MAX_ADDR_TO_SEND:
            raise ValueError(f"addr: {len(self.addresses)} > {MAX_ADDR_TO_SEND}")

    def to_payload(self) -> bytes:
        return compact_size(len(self.addresses)) + b"".join(a.to_bytes() for a in self.addresses)

    @classmethod
    def read(cls, r: ByteReader) -> Self:
        n = _read_count(r, MAX_ADDR_TO_SEND, cls.command)
        return cls(tuple(TimestampedAddr.read(r) for _ in range(n)))


@dataclass(frozen=True, slots=True)
class MsgGetAddr(_Empty):
    """Asks for an addr message."""

    command: ClassVar[str] = "getaddr"


# --- feature negotiation and relay policy ---------------------------------------


@dataclass(frozen=True, slots=True)
class MsgSendHeaders(_Empty):
    """Asks the peer to announce new blocks with headers instead of inv (BIP130)."""

    command: ClassVar[str] = "sendheaders"


@dataclass(frozen=True, slots=True)
class MsgWtxidRelay(_Empty):
    """Offers transaction announcement by wtxid (BIP339); only between version and verack."""

    command: ClassVar[str] = "wtxidrelay"


@dataclass(frozen=True, slots=True)
class MsgSendAddrV2(_Empty):
    """Offers addrv2 (BIP155); Canal accepts it and does not use addrv2."""

    command: ClassVar[str] = "sendaddrv2"


@dataclass(frozen=True, slots=True)
class MsgFeeFilter:
    """The lowest fee rate (satoshis per 1,000 vbytes) of transactions to announce (BIP133)."""

    command: ClassVar[str] = "feefilter"

    feerate_sat_per_kvb: int

    def __post_init__(self) -> None:
        _check_range("feerate", self.feerate_sat_per_kvb, *_I64)

    def to_payload(self) -> bytes:
        return i64(self.feerate_sat_per_kvb)

    @classmethod
    def read(cls, r: ByteReader) -> Self:
        return cls(r.i64())


@dataclass(frozen=True, slots=True)
class MsgMempool(_Empty):
    """Asks for an inv of the peer's mempool (BIP35)."""

    command: ClassVar[str] = "mempool"


@dataclass(frozen=True, slots=True)
class MsgReject:
    """Legacy (BIP61, removed from Core in 0.20): why a message was rejected.

    ``data`` is whatever follows ``reason``: usually the 32-byte hash of the
    rejected transaction or block, or nothing.
    """

    command: ClassVar[str] = "reject"

    message: str
    code: int
    reason: str
    data: bytes = b""

    def __post_init__(self) -> None:
        _check_range("code", self.code, 0, 0xFF)

    def to_payload(self) -> bytes:
        return _ser_string(self.message) + bytes([self.code]) + _ser_string(self.reason) + self.data

    @classmethod
    def read(cls, r: ByteReader) -> Self:
        message = _read_string(r, _COMMAND_SIZE)
        code = r.u8()
        reason = _read_string(r, MAX_REJECT_MESSAGE_LENGTH)
        return cls(message, code, reason, r.read(r.remaining()))


@dataclass(frozen=True, slots=True)
class MsgUnknown:
    """A message with a command Canal does not know; its payload is kept as is."""

    command: str
    payload: bytes = b""

    def to_payload(self) -> bytes:
        return self.payload


Message = (
    MsgVersion
    | MsgVerack
    | MsgPing
    | MsgPong
    | MsgInv
    | MsgGetData
    | MsgNotFound
    | MsgGetHeaders
    | MsgGetBlocks
    | MsgHeaders
    | MsgBlock
    | MsgTx
    | MsgAddr
    | MsgGetAddr
    | MsgSendHeaders
    | MsgWtxidRelay
    | MsgSendAddrV2
    | MsgFeeFilter
    | MsgMempool
    | MsgReject
    | MsgUnknown
)

_Decoder = Callable[[ByteReader], Message]

_DECODERS: dict[str, _Decoder] = {
    MsgVersion.command: MsgVersion.read,
    MsgVerack.command: MsgVerack.read,
    MsgPing.command: MsgPing.read,
    MsgPong.command: MsgPong.read,
    MsgInv.command: MsgInv.read,
    MsgGetData.command: MsgGetData.read,
    MsgNotFound.command: MsgNotFound.read,
    MsgGetHeaders.command: MsgGetHeaders.read,
    MsgGetBlocks.command: MsgGetBlocks.read,
    MsgHeaders.command: MsgHeaders.read,
    MsgBlock.command: MsgBlock.read,
    MsgTx.command: MsgTx.read,
    MsgAddr.command: MsgAddr.read,
    MsgGetAddr.command: MsgGetAddr.read,
    MsgSendHeaders.command: MsgSendHeaders.read,
    MsgWtxidRelay.command: MsgWtxidRelay.read,
    MsgSendAddrV2.command: MsgSendAddrV2.read,
    MsgFeeFilter.command: MsgFeeFilter.read,
    MsgMempool.command: MsgMempool.read,
    MsgReject.command: MsgReject.read,
}

MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.command: cls
    for cls in (
        MsgVersion, MsgVerack, MsgPing, MsgPong, MsgInv, MsgGetData, MsgNotFound,
        MsgGetHeaders, MsgGetBlocks, MsgHeaders, MsgBlock, MsgTx, MsgAddr, MsgGetAddr,
        MsgSendHeaders, MsgWtxidRelay, MsgSendAddrV2, MsgFeeFilter, MsgMempool, MsgReject,
    )
}  # fmt: skip
"""The message class of every command Canal knows."""


def encode_payload(msg: Message) -> bytes:
    """The payload bytes of ``msg`` (without the frame header)."""
    return msg.to_payload()


def decode_payload(command: str, payload: bytes) -> Message:
    """Decode the payload of a ``command`` message.

    Raises :class:`ProtocolViolation` for a malformed payload; an unknown
    command gives :class:`MsgUnknown`.
    """
    decoder = _DECODERS.get(command)
    if decoder is None:
        return MsgUnknown(command, payload)
    r = ByteReader(payload)
    try:
        msg = decoder(r)
        r.expect_end()
    except ValueError as e:  # DeserializationError, or a field out of range
        raise ProtocolViolation(f"malformed {command} message: {e}", MALFORMED_SCORE) from e
    return msg
