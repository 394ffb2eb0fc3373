"""BOLT 7 gossip messages, their signatures and the ``channel_update`` checksum.

Every message is a frozen dataclass registered in :data:`channels.wire.MESSAGES`
(importing this module registers them), with the BOLT field names:

* ``channel_announcement`` (256), ``node_announcement`` (257) and
  ``channel_update`` (258) are *signed*: a signature covers the rest of the
  message, including fields appended in the future. So these keep their
  ``features`` as the raw bytes received and everything after the last known
  field as ``excess_data``, and they re-encode byte for byte.
* ``announcement_signatures`` (259) is the direct message two channel peers
  swap to build a ``channel_announcement``.
* The queries: ``query_short_channel_ids`` (261), ``reply_short_channel_ids_end``
  (262), ``query_channel_range`` (263), ``reply_channel_range`` (264),
  ``gossip_timestamp_filter`` (265), with the extended-query TLVs
  (``query_flags``, ``query_option``, ``timestamps_tlv``, ``checksums_tlv``).

The ``encoded_`` arrays (:class:`EncodedShortIds`, :class:`EncodedQueryFlags`,
:class:`EncodedTimestamps`) start with an encoding type. Type 0 (uncompressed)
is the only one produced. Type 1 (zlib) is deprecated ("MUST NOT be used"): it
is decoded when a peer still sends it, and the compressed bytes are kept
(``zlib_data``) only so that the message re-encodes as received.

Short channel ids are 64-bit ints (see :mod:`htlc.graph`); points are
:class:`PublicKey`; ``signature`` fields are the 64-byte compact ``r || s``;
``chain_hash`` is the genesis block hash in internal byte order
(:attr:`base_chain.params.ChainParams.genesis_hash`).

Signing and checking: :func:`sign_channel_announcement`,
:func:`verify_channel_announcement` (all four signatures),
:func:`make_announcement_signatures` / :func:`add_announcement_signatures`,
:func:`sign_node_announcement` / :func:`verify_node_announcement`,
:func:`sign_channel_update` / :func:`verify_channel_update` (by the node id of
the update's direction). A failed check raises :class:`InvalidSignature`,
whose ``reason`` names the signature. Signing gives low-s signatures; a high s
is accepted on receipt (BOLT 7: a relay may flip ``s`` to ``-s``).

:func:`channel_update_checksum` is the CRC32C of BOLT 7's extended queries
(neither the stdlib nor ``cryptography`` provides CRC32C: :func:`crc32c` is a
small table-driven one).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import ipaddress
import zlib
from base64 import b32encode
from dataclasses import dataclass
from typing import ClassVar, Generic, NamedTuple, Self, TypeVar

from base_chain.crypto import PublicKey
from channels.features import Features
from channels.messages import check_bytes, check_uint, check_var
from channels.tlv import (
    Reader,
    TlvError,
    TlvNamespace,
    TlvRecord,
    TlvRecordType,
    TlvStream,
    encode_bigsize,
    encode_point,
    encode_u16,
    encode_u32,
    encode_u64,
)
from channels.wire import Message, decode_extension

__all__ = [
    "ENCODING_UNCOMPRESSED", "ENCODING_ZLIB", "MAX_INFLATED_BYTES",
    "QUERY_FLAGS_ALL", "QUERY_OPTION_TIMESTAMPS", "QUERY_OPTION_CHECKSUMS",
    "QUERY_FLAG_CHANNEL_ANNOUNCEMENT", "QUERY_FLAG_CHANNEL_UPDATE_1", "QUERY_FLAG_CHANNEL_UPDATE_2",
    "QUERY_FLAG_NODE_ANNOUNCEMENT_1", "QUERY_FLAG_NODE_ANNOUNCEMENT_2", "GossipError", "InvalidSignature",
    "EncodedShortIds", "EncodedQueryFlags", "EncodedTimestamps", "ChannelUpdateTimestamps", "ChannelUpdateChecksums",
    "NodeAddress", "decode_addresses", "encode_addresses", "GossipMessage",
    "ChannelAnnouncement", "NodeAnnouncement", "ChannelUpdate", "AnnouncementSignatures",
    "QueryShortChannelIds", "ReplyShortChannelIdsEnd", "QueryChannelRange", "ReplyChannelRange",
    "GossipTimestampFilter",
    "channel_announcement_hash", "node_announcement_hash", "channel_update_hash", "crc32c", "channel_update_checksum",
    "sign_channel_announcement", "verify_channel_announcement", "make_announcement_signatures",
    "add_announcement_signatures", "sign_node_announcement", "verify_node_announcement",
    "sign_channel_update", "verify_channel_update",
]

ENCODING_UNCOMPRESSED = 0
ENCODING_ZLIB = 1
"""Deprecated: decoded if received, never produced."""

MAX_INFLATED_BYTES = 1 << 20
"""The most a zlib ``encoded_`` array may inflate to (a bound against zlib bombs)."""

QUERY_FLAG_CHANNEL_ANNOUNCEMENT = 1
QUERY_FLAG_CHANNEL_UPDATE_1 = 2
QUERY_FLAG_CHANNEL_UPDATE_2 = 4
QUERY_FLAG_NODE_ANNOUNCEMENT_1 = 8
QUERY_FLAG_NODE_ANNOUNCEMENT_2 = 16
QUERY_FLAGS_ALL = 31

QUERY_OPTION_TIMESTAMPS = 1
QUERY_OPTION_CHECKSUMS = 2

_SIG_LEN = 64
_ZERO_SIG = bytes(_SIG_LEN)


class GossipError(ValueError):
    """A gossip message that cannot be accepted; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidSignature(GossipError):
    """A signature of a gossip message that does not verify (BOLT 7: SHOULD send a ``warning``)."""


# ---------------------------------------------------------------------------
# field helpers


def _stream(unknown: tuple[TlvRecord, ...]) -> TlvStream:
    return TlvStream(unknown)


def _inflate(data: bytes, name: str) -> bytes:
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, MAX_INFLATED_BYTES)
    except zlib.error as e:
        raise TlvError(f"{name}: invalid zlib data ({e})") from None
    if d.unconsumed_tail:
        raise TlvError(f"{name}: zlib data inflates to more than {MAX_INFLATED_BYTES} bytes")
    if not d.eof:
        raise TlvError(f"{name}: truncated zlib data")
    if d.unused_data:
        raise TlvError(f"{name}: {len(d.unused_data)} bytes after the zlib data")
    return out


# ---------------------------------------------------------------------------
# encoded arrays

E = TypeVar("E")


class ChannelUpdateTimestamps(NamedTuple):
    """``channel_update_timestamps``: the timestamp of each direction's update (0: none)."""

    timestamp_node_id_1: int
    timestamp_node_id_2: int


class ChannelUpdateChecksums(NamedTuple):
    """``channel_update_checksums``: the :func:`channel_update_checksum` of each direction (0: none)."""

    checksum_node_id_1: int
    checksum_node_id_2: int


@dataclass(frozen=True)
class _EncodedArray(ABC, Generic[E]):
    """An ``encoded_`` array: ``values``, written with encoding type 0.

    ``zlib_data`` is set only by :meth:`decode` for a received type 1 array
    (the deflate stream as received, checked to hold ``values``).
    """

    NAME: ClassVar[str] = ""

    values: tuple[E, ...] = ()
    zlib_data: bytes | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))
        self._pack(self.values)  # range checks
        if self.zlib_data is not None and self._unpack(_inflate(self.zlib_data, self.NAME)) != self.values:
            raise ValueError(f"{self.NAME}: zlib_data does not hold these values")

    @classmethod
    @abstractmethod
    def _pack(cls, values: tuple[E, ...]) -> bytes:
        """The values, packed as encoding type 0 (each subclass knows its item layout)."""

    @classmethod
    @abstractmethod
    def _unpack(cls, data: bytes) -> tuple[E, ...]:
        """The inverse of `_pack`; GossipError for a length that is not whole items."""

    @property
    def encoding_type(self) -> int:
        return ENCODING_UNCOMPRESSED if self.zlib_data is None else ENCODING_ZLIB

    def __len__(self) -> int:
        return len(self.values)

    def encode(self) -> bytes:
        if self.zlib_data is not None:
            return bytes([ENCODING_ZLIB]) + self.zlib_data
        return bytes([ENCODING_UNCOMPRESSED]) + self._pack(self.values)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        if not data:
            raise TlvError(f"{cls.NAME} is empty (no encoding type)")
        encoding, body = data[0], bytes(data[1:])
        if encoding == ENCODING_UNCOMPRESSED:
            return cls(cls._unpack(body))
        if encoding == ENCODING_ZLIB:
            return cls(cls._unpack(_inflate(body, cls.NAME)), body)
        raise TlvError(f"{cls.NAME}: unknown encoding type {encoding}")


def _whole(name: str, data: bytes, item: str) -> None:
    if len(data) % 8:
        raise TlvError(f"{name} does not decode into a whole number of {item} ({len(data)} bytes)")


P = TypeVar("P", ChannelUpdateTimestamps, ChannelUpdateChecksums)


def _pack_pairs(values: tuple[tuple[int, int], ...]) -> bytes:
    return b"".join(encode_u32(a) + encode_u32(b) for a, b in values)


def _unpack_pairs(data: bytes, pair: type[P], name: str, item: str) -> tuple[P, ...]:
    _whole(name, data, item)
    u32s = [int.from_bytes(data[i : i + 4], "big") for i in range(0, len(data), 4)]
    return tuple(pair(u32s[i], u32s[i + 1]) for i in range(0, len(u32s), 2))


@dataclass(frozen=True)
class EncodedShortIds(_EncodedArray[int]):
    """``encoded_short_ids``: short channel ids (a sender puts them in ascending order)."""

    NAME: ClassVar[str] = "encoded_short_ids"

    @classmethod
    def _pack(cls, values: tuple[int, ...]) -> bytes:
        return b"".join(encode_u64(v) for v in values)

    @classmethod
    def _unpack(cls, data: bytes) -> tuple[int, ...]:
        _whole(cls.NAME, data, "short_channel_id")
        return tuple(int.from_bytes(data[i : i + 8], "big") for i in range(0, len(data), 8))


@dataclass(frozen=True)
class EncodedQueryFlags(_EncodedArray[int]):
    """``encoded_query_flags``: one minimal bigsize bitfield per queried short channel id."""

    NAME: ClassVar[str] = "encoded_query_flags"

    @classmethod
    def _pack(cls, values: tuple[int, ...]) -> bytes:
        return b"".join(encode_bigsize(v) for v in values)

    @classmethod
    def _unpack(cls, data: bytes) -> tuple[int, ...]:
        r = Reader(data)
        out: list[int] = []
        while not r.at_end():
            out.append(r.bigsize())
        return tuple(out)


@dataclass(frozen=True)
class EncodedTimestamps(_EncodedArray[ChannelUpdateTimestamps]):
    """``encoded_timestamps``: a :class:`ChannelUpdateTimestamps` per short channel id."""

    NAME: ClassVar[str] = "encoded_timestamps"

    @classmethod
    def _pack(cls, values: tuple[ChannelUpdateTimestamps, ...]) -> bytes:
        return _pack_pairs(values)

    @classmethod
    def _unpack(cls, data: bytes) -> tuple[ChannelUpdateTimestamps, ...]:
        return _unpack_pairs(data, ChannelUpdateTimestamps, cls.NAME, "channel_update_timestamps")


def _read_checksums(r: Reader) -> tuple[ChannelUpdateChecksums, ...]:
    return _unpack_pairs(r.rest(), ChannelUpdateChecksums, "checksums", "channel_update_checksums")


def _write_checksums(values: tuple[ChannelUpdateChecksums, ...]) -> bytes:
    return _pack_pairs(values)


def _read_query_flags(r: Reader) -> EncodedQueryFlags:
    return EncodedQueryFlags.decode(r.rest())


def _read_timestamps(r: Reader) -> EncodedTimestamps:
    return EncodedTimestamps.decode(r.rest())


def _write_encoded(value: _EncodedArray[int] | _EncodedArray[ChannelUpdateTimestamps]) -> bytes:
    return value.encode()


def _read_bigsize(r: Reader) -> int:
    return r.bigsize()


QUERY_FLAGS: TlvRecordType[EncodedQueryFlags] = TlvRecordType(1, "query_flags", _read_query_flags, _write_encoded)
QUERY_SHORT_CHANNEL_IDS_TLVS = TlvNamespace("query_short_channel_ids_tlvs", QUERY_FLAGS)
QUERY_OPTION: TlvRecordType[int] = TlvRecordType(1, "query_option", _read_bigsize, encode_bigsize)
QUERY_CHANNEL_RANGE_TLVS = TlvNamespace("query_channel_range_tlvs", QUERY_OPTION)
TIMESTAMPS_TLV: TlvRecordType[EncodedTimestamps] = TlvRecordType(1, "timestamps_tlv", _read_timestamps, _write_encoded)
CHECKSUMS_TLV: TlvRecordType[tuple[ChannelUpdateChecksums, ...]] = TlvRecordType(
    3, "checksums_tlv", _read_checksums, _write_checksums
)
REPLY_CHANNEL_RANGE_TLVS = TlvNamespace("reply_channel_range_tlvs", TIMESTAMPS_TLV, CHECKSUMS_TLV)
_ANNOUNCEMENT_SIGNATURES_TLVS = TlvNamespace("announcement_signatures_tlvs")
_REPLY_SHORT_CHANNEL_IDS_END_TLVS = TlvNamespace("reply_short_channel_ids_end_tlvs")
_GOSSIP_TIMESTAMP_FILTER_TLVS = TlvNamespace("gossip_timestamp_filter_tlvs")


# ---------------------------------------------------------------------------
# node addresses

_ADDRESS_LENGTHS = {1: 4, 2: 16, 3: 10, 4: 35}


@dataclass(frozen=True)
class NodeAddress:
    """An ``address descriptor``: ``type`` 1 ipv4, 2 ipv6, 3 Tor v2 (deprecated), 4 Tor v3, 5 DNS hostname."""

    type: int
    address: bytes
    port: int

    def __post_init__(self) -> None:
        length = _ADDRESS_LENGTHS.get(self.type)
        if self.type == 5:
            if not 0 < len(self.address) < 256 or not self.address.isascii():
                raise ValueError("a hostname is 1 to 255 ASCII bytes")
        elif length is None:
            raise ValueError(f"unknown address descriptor type {self.type}")
        elif len(self.address) != length:
            raise ValueError(f"an address of type {self.type} is {length} bytes")
        check_uint("port", self.port, 16)

    @property
    def host(self) -> str:
        if self.type == 1:
            return str(ipaddress.IPv4Address(self.address))
        if self.type == 2:
            return str(ipaddress.IPv6Address(self.address))
        if self.type in (3, 4):
            return b32encode(self.address).decode("ascii").lower() + ".onion"
        return self.address.decode("ascii")

    def encode(self) -> bytes:
        size = bytes([len(self.address)]) if self.type == 5 else b""
        return bytes([self.type]) + size + self.address + encode_u16(self.port)


def decode_addresses(data: bytes) -> tuple[NodeAddress, ...]:
    """The address descriptors of a ``node_announcement``, up to the first of an unknown type.

    BOLT 7: a receiver ignores everything from the first unknown type (its
    length is unknown); a known type cut short raises :class:`GossipError`.
    """
    r = Reader(data)
    out: list[NodeAddress] = []
    try:
        while not r.at_end():
            kind = r.u8()
            if kind == 5:
                address = r.read(r.u8())
            elif kind in _ADDRESS_LENGTHS:
                address = r.read(_ADDRESS_LENGTHS[kind])
            else:
                break
            out.append(NodeAddress(kind, address, r.u16()))
    except TlvError:
        raise GossipError("addrlen is insufficient to hold the address descriptors") from None
    except ValueError as e:
        raise GossipError(f"invalid address descriptor: {e}") from None
    return tuple(out)


def encode_addresses(addresses: tuple[NodeAddress, ...] | list[NodeAddress]) -> bytes:
    """``addresses`` in ascending type order, as BOLT 7 requires of the origin."""
    return b"".join(a.encode() for a in sorted(addresses, key=lambda a: a.type))


# ---------------------------------------------------------------------------
# signed gossip


@dataclass(frozen=True, kw_only=True)
class ChannelAnnouncement(Message):
    """``channel_announcement``: ties two nodes and their funding keys to a funding output.

    ``node_id_1`` must be the lesser compressed key; build one with :meth:`create`.
    """

    TYPE: ClassVar[int] = 256
    NAME: ClassVar[str] = "channel_announcement"
    SIGNED_OFFSET: ClassVar[int] = 4 * _SIG_LEN

    node_signature_1: bytes = _ZERO_SIG
    node_signature_2: bytes = _ZERO_SIG
    bitcoin_signature_1: bytes = _ZERO_SIG
    bitcoin_signature_2: bytes = _ZERO_SIG
    features: bytes = b""
    chain_hash: bytes
    short_channel_id: int
    node_id_1: PublicKey
    node_id_2: PublicKey
    bitcoin_key_1: PublicKey
    bitcoin_key_2: PublicKey
    excess_data: bytes = b""

    def __post_init__(self) -> None:
        for name in ("node_signature_1", "node_signature_2", "bitcoin_signature_1", "bitcoin_signature_2"):
            check_bytes(name, getattr(self, name), _SIG_LEN)
        check_var("features", self.features)
        check_bytes("chain_hash", self.chain_hash, 32)
        check_uint("short_channel_id", self.short_channel_id, 64)

    @classmethod
    def create(
        cls,
        chain_hash: bytes,
        short_channel_id: int,
        node_id_a: PublicKey,
        node_id_b: PublicKey,
        bitcoin_key_a: PublicKey,
        bitcoin_key_b: PublicKey,
        features: Features | None = None,
    ) -> ChannelAnnouncement:
        """An unsigned announcement, the nodes in BOLT 7's order (each keeps its own funding key)."""
        if node_id_b.to_bytes() < node_id_a.to_bytes():
            node_id_a, node_id_b, bitcoin_key_a, bitcoin_key_b = node_id_b, node_id_a, bitcoin_key_b, bitcoin_key_a
        return cls(
            features=b"" if features is None else features.to_bytes(),
            chain_hash=chain_hash,
            short_channel_id=short_channel_id,
            node_id_1=node_id_a,
            node_id_2=node_id_b,
            bitcoin_key_1=bitcoin_key_a,
            bitcoin_key_2=bitcoin_key_b,
        )

    @property
    def feature_vector(self) -> Features:
        return Features.from_bytes(self.features)

    def encode_payload(self) -> bytes:
        return (
            self.node_signature_1
            + self.node_signature_2
            + self.bitcoin_signature_1
            + self.bitcoin_signature_2
            + encode_u16(len(self.features))
            + self.features
            + self.chain_hash
            + encode_u64(self.short_channel_id)
            + encode_point(self.node_id_1)
            + encode_point(self.node_id_2)
            + encode_point(self.bitcoin_key_1)
            + encode_point(self.bitcoin_key_2)
            + self.excess_data
        )

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        r = Reader(payload)
        sig_n1, sig_n2, sig_b1, sig_b2 = (r.read(_SIG_LEN) for _ in range(4))
        features = r.read(r.u16())
        chain_hash, scid = r.read(32), r.u64()
        n1, n2, b1, b2 = (r.point() for _ in range(4))
        return cls(
            node_signature_1=sig_n1,
            node_signature_2=sig_n2,
            bitcoin_signature_1=sig_b1,
            bitcoin_signature_2=sig_b2,
            features=features,
            chain_hash=chain_hash,
            short_channel_id=scid,
            node_id_1=n1,
            node_id_2=n2,
            bitcoin_key_1=b1,
            bitcoin_key_2=b2,
            excess_data=r.rest(),
        )


@dataclass(frozen=True, kw_only=True)
class NodeAnnouncement(Message):
    """``node_announcement``: a node's features, alias, color and addresses (raw descriptors)."""

    TYPE: ClassVar[int] = 257
    NAME: ClassVar[str] = "node_announcement"
    SIGNED_OFFSET: ClassVar[int] = _SIG_LEN

    signature: bytes = _ZERO_SIG
    features: bytes = b""
    timestamp: int
    node_id: PublicKey
    rgb_color: bytes = bytes(3)
    alias: bytes = bytes(32)
    addresses: bytes = b""
    excess_data: bytes = b""

    def __post_init__(self) -> None:
        check_bytes("signature", self.signature, _SIG_LEN)
        check_var("features", self.features)
        check_uint("timestamp", self.timestamp, 32)
        check_bytes("rgb_color", self.rgb_color, 3)
        check_bytes("alias", self.alias, 32)
        check_var("addresses", self.addresses)

    @property
    def feature_vector(self) -> Features:
        return Features.from_bytes(self.features)

    @property
    def alias_text(self) -> str:
        """The alias without its trailing zero bytes (invalid UTF-8 replaced; escape it to display)."""
        return self.alias.rstrip(b"\x00").decode("utf-8", errors="replace")

    def address_descriptors(self) -> tuple[NodeAddress, ...]:
        return decode_addresses(self.addresses)

    def encode_payload(self) -> bytes:
        return (
            self.signature
            + encode_u16(len(self.features))
            + self.features
            + encode_u32(self.timestamp)
            + encode_point(self.node_id)
            + self.rgb_color
            + self.alias
            + encode_u16(len(self.addresses))
            + self.addresses
            + self.excess_data
        )

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        r = Reader(payload)
        signature = r.read(_SIG_LEN)
        features = r.read(r.u16())
        timestamp, node_id = r.u32(), r.point()
        rgb_color, alias = r.read(3), r.read(32)
        addresses = r.read(r.u16())
        return cls(
            signature=signature,
            features=features,
            timestamp=timestamp,
            node_id=node_id,
            rgb_color=rgb_color,
            alias=alias,
            addresses=addresses,
            excess_data=r.rest(),
        )


@dataclass(frozen=True, kw_only=True)
class ChannelUpdate(Message):
    """``channel_update``: one direction's forwarding policy, signed by that direction's node."""

    TYPE: ClassVar[int] = 258
    NAME: ClassVar[str] = "channel_update"
    SIGNED_OFFSET: ClassVar[int] = _SIG_LEN

    signature: bytes = _ZERO_SIG
    chain_hash: bytes
    short_channel_id: int
    timestamp: int
    message_flags: int = 1  # must_be_one
    channel_flags: int = 0
    cltv_expiry_delta: int
    htlc_minimum_msat: int
    fee_base_msat: int
    fee_proportional_millionths: int
    htlc_maximum_msat: int
    excess_data: bytes = b""

    def __post_init__(self) -> None:
        check_bytes("signature", self.signature, _SIG_LEN)
        check_bytes("chain_hash", self.chain_hash, 32)
        for name, bits in (
            ("short_channel_id", 64),
            ("timestamp", 32),
            ("message_flags", 8),
            ("channel_flags", 8),
            ("cltv_expiry_delta", 16),
            ("htlc_minimum_msat", 64),
            ("fee_base_msat", 32),
            ("fee_proportional_millionths", 32),
            ("htlc_maximum_msat", 64),
        ):
            check_uint(name, getattr(self, name), bits)

    @property
    def direction(self) -> int:
        """0: from ``node_id_1``; 1: from ``node_id_2``."""
        return self.channel_flags & 1

    @property
    def disabled(self) -> bool:
        return bool(self.channel_flags & 2)

    @property
    def dont_forward(self) -> bool:
        return bool(self.message_flags & 2)

    def encode_payload(self) -> bytes:
        return (
            self.signature
            + self.chain_hash
            + encode_u64(self.short_channel_id)
            + encode_u32(self.timestamp)
            + bytes([self.message_flags, self.channel_flags])
            + encode_u16(self.cltv_expiry_delta)
            + encode_u64(self.htlc_minimum_msat)
            + encode_u32(self.fee_base_msat)
            + encode_u32(self.fee_proportional_millionths)
            + encode_u64(self.htlc_maximum_msat)
            + self.excess_data
        )

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        r = Reader(payload)
        signature, chain_hash, scid, timestamp = r.read(_SIG_LEN), r.read(32), r.u64(), r.u32()
        message_flags, channel_flags, cltv = r.u8(), r.u8(), r.u16()
        htlc_min, fee_base, fee_prop, htlc_max = r.u64(), r.u32(), r.u32(), r.u64()
        return cls(
            signature=signature,
            chain_hash=chain_hash,
            short_channel_id=scid,
            timestamp=timestamp,
            message_flags=message_flags,
            channel_flags=channel_flags,
            cltv_expiry_delta=cltv,
            htlc_minimum_msat=htlc_min,
            fee_base_msat=fee_base,
            fee_proportional_millionths=fee_prop,
            htlc_maximum_msat=htlc_max,
            excess_data=r.rest(),
        )


GossipMessage = ChannelAnnouncement | NodeAnnouncement | ChannelUpdate
"""The three messages that are stored and relayed."""


@dataclass(frozen=True)
class AnnouncementSignatures(Message):
    """``announcement_signatures``: the sender's two signatures for the channel's announcement."""

    TYPE: ClassVar[int] = 259
    NAME: ClassVar[str] = "announcement_signatures"

    channel_id: bytes
    short_channel_id: int
    node_signature: bytes
    bitcoin_signature: bytes
    unknown_tlvs: tuple[TlvRecord, ...] = ()

    def __post_init__(self) -> None:
        check_bytes("channel_id", self.channel_id, 32)
        check_uint("short_channel_id", self.short_channel_id, 64)
        check_bytes("node_signature", self.node_signature, _SIG_LEN)
        check_bytes("bitcoin_signature", self.bitcoin_signature, _SIG_LEN)

    def encode_payload(self) -> bytes:
        return (
            self.channel_id
            + encode_u64(self.short_channel_id)
            + self.node_signature
            + self.bitcoin_signature
            + _stream(self.unknown_tlvs).encode()
        )

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        r = Reader(payload)
        channel_id, scid, node_sig, bitcoin_sig = r.read(32), r.u64(), r.read(_SIG_LEN), r.read(_SIG_LEN)
        tlvs = decode_extension(r, _ANNOUNCEMENT_SIGNATURES_TLVS)
        return cls(channel_id, scid, node_sig, bitcoin_sig, tlvs.unknown)


# The query messages live in their own module; import them from here as before.
from .gossip_queries import (  # noqa: E402
    QueryShortChannelIds,
    ReplyShortChannelIdsEnd,
    QueryChannelRange,
    ReplyChannelRange,
    GossipTimestampFilter,
)
# Signing and checksums live in their own module; import them from here as before.
from .gossip_sign import (  # noqa: E402
    channel_announcement_hash,
    node_announcement_hash,
    channel_update_hash,
    sign_channel_announcement,
    verify_channel_announcement,
    make_announcement_signatures,
    add_announcement_signatures,
    sign_node_announcement,
    verify_node_announcement,
    sign_channel_update,
    verify_channel_update,
    crc32c,
    channel_update_checksum,
)
