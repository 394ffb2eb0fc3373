"""BOLT 7 gossip queries: query_short_channel_ids, reply_short_channel_ids_end,
query_channel_range, reply_channel_range and gossip_timestamp_filter.

Split from `htlc.gossip` (which re-exports everything here).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Self
from channels.tlv import Reader, TlvRecord, encode_u16, encode_u32
from channels.wire import Message, decode_extension, register_message

from channels.messages import check_bytes, check_uint, check_var

from .gossip import (
    AnnouncementSignatures,
    CHECKSUMS_TLV,
    ChannelAnnouncement,
    ChannelUpdate,
    ChannelUpdateChecksums,
    EncodedQueryFlags,
    EncodedShortIds,
    EncodedTimestamps,
    NodeAnnouncement,
    QUERY_CHANNEL_RANGE_TLVS,
    QUERY_FLAGS,
    QUERY_FLAGS_ALL,
    QUERY_OPTION,
    QUERY_OPTION_CHECKSUMS,
    QUERY_OPTION_TIMESTAMPS,
    QUERY_SHORT_CHANNEL_IDS_TLVS,
    REPLY_CHANNEL_RANGE_TLVS,
    TIMESTAMPS_TLV,
    _GOSSIP_TIMESTAMP_FILTER_TLVS,
    _REPLY_SHORT_CHANNEL_IDS_END_TLVS,
    _stream,
    _write_checksums,
)


# ---------------------------------------------------------------------------
# queries


def _encode_short_ids(ids: EncodedShortIds) -> bytes:
    data = ids.encode()
    check_var("encoded_short_ids", data)
    return encode_u16(len(data)) + data


@dataclass(frozen=True)
class QueryShortChannelIds(Message):
    """``query_short_channel_ids``: ask for the announcements and updates of these channels."""

    TYPE: ClassVar[int] = 261
    NAME: ClassVar[str] = "query_short_channel_ids"

    chain_hash: bytes
    encoded_short_ids: EncodedShortIds
    query_flags: EncodedQueryFlags | None = None
    unknown_tlvs: tuple[TlvRecord, ...] = ()

    def __post_init__(self) -> None:
        check_bytes("chain_hash", self.chain_hash, 32)
        if self.query_flags is not None and len(self.query_flags) != len(self.encoded_short_ids):
            raise ValueError("encoded_query_flags does not decode to exactly one flag per short_channel_id")

    @classmethod
    def create(
        cls, chain_hash: bytes, short_channel_ids: Sequence[int], query_flags: Sequence[int] | None = None
    ) -> QueryShortChannelIds:
        flags = None if query_flags is None else EncodedQueryFlags(tuple(query_flags))
        return cls(chain_hash, EncodedShortIds(tuple(short_channel_ids)), flags)

    @property
    def short_channel_ids(self) -> tuple[int, ...]:
        return self.encoded_short_ids.values

    def flags_of(self, index: int) -> int:
        """The query flag of the ``index``-th id (everything when there are no ``query_flags``)."""
        return QUERY_FLAGS_ALL if self.query_flags is None else self.query_flags.values[index]

    def encode_payload(self) -> bytes:
        stream = _stream(self.unknown_tlvs)
        if self.query_flags is not None:
            stream = stream.set(QUERY_FLAGS, self.query_flags)
        return self.chain_hash + _encode_short_ids(self.encoded_short_ids) + stream.encode()

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        r = Reader(payload)
        chain_hash = r.read(32)
        ids = EncodedShortIds.decode(r.read(r.u16()))
        tlvs = decode_extension(r, QUERY_SHORT_CHANNEL_IDS_TLVS)
        return cls(chain_hash, ids, tlvs.get(QUERY_FLAGS), tlvs.unknown)


@dataclass(frozen=True)
class ReplyShortChannelIdsEnd(Message):
    """``reply_short_channel_ids_end``: the end of the answer to a ``query_short_channel_ids``."""

    TYPE: ClassVar[int] = 262
    NAME: ClassVar[str] = "reply_short_channel_ids_end"

    chain_hash: bytes
    full_information: int = 1
    unknown_tlvs: tuple[TlvRecord, ...] = ()

    def __post_init__(self) -> None:
        check_bytes("chain_hash", self.chain_hash, 32)
        check_uint("full_information", self.full_information, 8)

    def encode_payload(self) -> bytes:
        return self.chain_hash + bytes([self.full_information]) + _stream(self.unknown_tlvs).encode()

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        r = Reader(payload)
        chain_hash, full = r.read(32), r.u8()
        tlvs = decode_extension(r, _REPLY_SHORT_CHANNEL_IDS_END_TLVS)
        return cls(chain_hash, full, tlvs.unknown)


@dataclass(frozen=True)
class QueryChannelRange(Message):
    """``query_channel_range``: ask for the channels of blocks ``[first_blocknum, +number_of_blocks)``."""

    TYPE: ClassVar[int] = 263
    NAME: ClassVar[str] = "query_channel_range"

    chain_hash: bytes
    first_blocknum: int
    number_of_blocks: int
    query_option_flags: int | None = None
    unknown_tlvs: tuple[TlvRecord, ...] = ()

    def __post_init__(self) -> None:
        check_bytes("chain_hash", self.chain_hash, 32)
        check_uint("first_blocknum", self.first_blocknum, 32)
        check_uint("number_of_blocks", self.number_of_blocks, 32)
        if self.query_option_flags is not None:
            check_uint("query_option_flags", self.query_option_flags, 64)

    @property
    def end_blocknum(self) -> int:
        """One past the last block asked for (may pass 2**32)."""
        return self.first_blocknum + self.number_of_blocks

    @property
    def wants_timestamps(self) -> bool:
        return bool((self.query_option_flags or 0) & QUERY_OPTION_TIMESTAMPS)

    @property
    def wants_checksums(self) -> bool:
        return bool((self.query_option_flags or 0) & QUERY_OPTION_CHECKSUMS)

    def encode_payload(self) -> bytes:
        stream = _stream(self.unknown_tlvs)
        if self.query_option_flags is not None:
            stream = stream.set(QUERY_OPTION, self.query_option_flags)
        return self.chain_hash + encode_u32(self.first_blocknum) + encode_u32(self.number_of_blocks) + stream.encode()

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        r = Reader(payload)
        chain_hash, first, number = r.read(32), r.u32(), r.u32()
        tlvs = decode_extension(r, QUERY_CHANNEL_RANGE_TLVS)
        return cls(chain_hash, first, number, tlvs.get(QUERY_OPTION), tlvs.unknown)


@dataclass(frozen=True)
class ReplyChannelRange(Message):
    """``reply_channel_range``: channels of a block range, with optional timestamps and checksums."""

    TYPE: ClassVar[int] = 264
    NAME: ClassVar[str] = "reply_channel_range"

    chain_hash: bytes
    first_blocknum: int
    number_of_blocks: int
    sync_complete: int
    encoded_short_ids: EncodedShortIds
    timestamps: EncodedTimestamps | None = None
    checksums: tuple[ChannelUpdateChecksums, ...] | None = None
    unknown_tlvs: tuple[TlvRecord, ...] = ()

    def __post_init__(self) -> None:
        check_bytes("chain_hash", self.chain_hash, 32)
        check_uint("first_blocknum", self.first_blocknum, 32)
        check_uint("number_of_blocks", self.number_of_blocks, 32)
        check_uint("sync_complete", self.sync_complete, 8)
        count = len(self.encoded_short_ids)
        if self.timestamps is not None and len(self.timestamps) != count:
            raise ValueError(f"{len(self.timestamps)} timestamps for {count} short_channel_ids")
        if self.checksums is not None:
            object.__setattr__(self, "checksums", tuple(ChannelUpdateChecksums(*c) for c in self.checksums))
            _write_checksums(self.checksums)  # range checks
            if len(self.checksums) != count:
                raise ValueError(f"{len(self.checksums)} checksums for {count} short_channel_ids")

    @property
    def short_channel_ids(self) -> tuple[int, ...]:
        return self.encoded_short_ids.values

    @property
    def end_blocknum(self) -> int:
        return self.first_blocknum + self.number_of_blocks

    def encode_payload(self) -> bytes:
        stream = _stream(self.unknown_tlvs)
        if self.timestamps is not None:
            stream = stream.set(TIMESTAMPS_TLV, self.timestamps)
        if self.checksums is not None:
            stream = stream.set(CHECKSUMS_TLV, self.checksums)
        return (
            self.chain_hash
            + encode_u32(self.first_blocknum)
            + encode_u32(self.number_of_blocks)
            + bytes([self.sync_complete])
            + _encode_short_ids(self.encoded_short_ids)
            + stream.encode()
        )

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        r = Reader(payload)
        chain_hash, first, number, complete = r.read(32), r.u32(), r.u32(), r.u8()
        ids = EncodedShortIds.decode(r.read(r.u16()))
        tlvs = decode_extension(r, REPLY_CHANNEL_RANGE_TLVS)
        timestamps, checksums = tlvs.get(TIMESTAMPS_TLV), tlvs.get(CHECKSUMS_TLV)
        return cls(chain_hash, first, number, complete, ids, timestamps, checksums, tlvs.unknown)


@dataclass(frozen=True)
class GossipTimestampFilter(Message):
    """``gossip_timestamp_filter``: send me gossip with ``first_timestamp <= timestamp < first + range``."""

    TYPE: ClassVar[int] = 265
    NAME: ClassVar[str] = "gossip_timestamp_filter"

    chain_hash: bytes
    first_timestamp: int
    timestamp_range: int
    unknown_tlvs: tuple[TlvRecord, ...] = ()

    def __post_init__(self) -> None:
        check_bytes("chain_hash", self.chain_hash, 32)
        check_uint("first_timestamp", self.first_timestamp, 32)
        check_uint("timestamp_range", self.timestamp_range, 32)

    def matches(self, timestamp: int) -> bool:
        return self.first_timestamp <= timestamp < self.first_timestamp + self.timestamp_range

    def encode_payload(self) -> bytes:
        return (
            self.chain_hash
            + encode_u32(self.first_timestamp)
            + encode_u32(self.timestamp_range)
            + _stream(self.unknown_tlvs).encode()
        )

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        r = Reader(payload)
        chain_hash, first, span = r.read(32), r.u32(), r.u32()
        tlvs = decode_extension(r, _GOSSIP_TIMESTAMP_FILTER_TLVS)
        return cls(chain_hash, first, span, tlvs.unknown)


for _cls in (
    ChannelAnnouncement,
    NodeAnnouncement,
    ChannelUpdate,
    AnnouncementSignatures,
    QueryShortChannelIds,
    ReplyShortChannelIdsEnd,
    QueryChannelRange,
    ReplyChannelRange,
    GossipTimestampFilter,
):
    register_message(_cls)
del _cls
