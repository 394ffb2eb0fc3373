"""BOLT 7: gossip messages and extended queries (htlc.gossip), and the gossip store (htlc.gossip_sync).

The extended-query encodings of ../shared/vectors/bolts/bolt07/extended-queries.json
are checked byte for byte in both directions; signatures are made with real keys.
"""

from __future__ import annotations

import itertools
import sqlite3
import zlib
from dataclasses import replace
from functools import cache
from typing import Any

import pytest
import vectors
from hypothesis import given
from hypothesis import strategies as st

from base_chain.crypto import N, PrivateKey, PublicKey
from base_chain.hashes import hash256
from base_chain.params import get_params
from base_chain.templates import p2wsh
from channels.features import Features
from channels.scripts import funding_script
from channels.tlv import encode_bigsize
from channels.wire import MESSAGES, Message, WireError, decode_message
from htlc.gossip import (
    ENCODING_UNCOMPRESSED,
    ENCODING_ZLIB,
    MAX_INFLATED_BYTES,
    QUERY_FLAG_CHANNEL_ANNOUNCEMENT,
    QUERY_FLAG_CHANNEL_UPDATE_1,
    QUERY_FLAG_CHANNEL_UPDATE_2,
    QUERY_FLAG_NODE_ANNOUNCEMENT_2,
    QUERY_FLAGS_ALL,
    QUERY_OPTION_CHECKSUMS,
    QUERY_OPTION_TIMESTAMPS,
    AnnouncementSignatures,
    ChannelAnnouncement,
    ChannelUpdate,
    ChannelUpdateChecksums,
    ChannelUpdateTimestamps,
    EncodedQueryFlags,
    EncodedShortIds,
    EncodedTimestamps,
    GossipError,
    GossipTimestampFilter,
    InvalidSignature,
    NodeAddress,
    NodeAnnouncement,
    QueryChannelRange,
    QueryShortChannelIds,
    ReplyChannelRange,
    ReplyShortChannelIdsEnd,
    add_announcement_signatures,
    channel_announcement_hash,
    channel_update_checksum,
    channel_update_hash,
    crc32c,
    decode_addresses,
    encode_addresses,
    make_announcement_signatures,
    node_announcement_hash,
    sign_channel_announcement,
    sign_channel_update,
    sign_node_announcement,
    verify_channel_announcement,
    verify_channel_update,
    verify_node_announcement,
)
from htlc.gossip_sync import SPENT_CHANNEL_DELAY, GossipConfig, GossipRow, GossipStore
from htlc.graph import parse_short_channel_id, short_channel_id_from_parts

CHAIN = get_params("regtest").genesis_hash  # internal byte order, as BOLT 7's chain_hash
OTHER_CHAIN = get_params("alpha").genesis_hash
NOW = 1_700_000_000
DAY = 86_400

VECTORS: list[dict[str, Any]] = vectors.load_json("bolts", "bolt07", "extended-queries.json")


# ---------------------------------------------------------------------------
# the extended-queries vectors


def _ids(spec: dict[str, Any]) -> EncodedShortIds:
    values = tuple(parse_short_channel_id(s) for s in spec["array"])
    ids: EncodedShortIds = _encoded(EncodedShortIds, values, spec["encoding"])
    return ids


def _encoded(cls: Any, values: tuple[Any, ...], encoding: str) -> Any:
    """The array as the vector encodes it; zlib data is made here (the library never compresses)."""
    if encoding == "UNCOMPRESSED":
        return cls(values)
    assert encoding == "COMPRESSED_ZLIB"
    return cls(values, zlib.compress(cls(values).encode()[1:]))


def _query_option(records: list[Any]) -> int | None:
    if not records:
        return None
    (record,) = records
    bits = {"WANT_TIMESTAMPS": QUERY_OPTION_TIMESTAMPS, "WANT_CHECKSUMS": QUERY_OPTION_CHECKSUMS}
    return sum(bits[name.strip()] for name in record.split("|"))


def _expected(msg: dict[str, Any]) -> Message:
    chain = bytes.fromhex(msg["chainHash"])
    kind = msg["type"]
    if kind == "QueryChannelRange":
        assert msg["tlvStream"]["unknown"] == []
        return QueryChannelRange(
            chain, msg["firstBlockNum"], msg["numberOfBlocks"], _query_option(msg["tlvStream"]["records"])
        )
    if kind == "ReplyChannelRange":
        timestamps = checksums = None
        if "timestamps" in msg:
            stamps = msg["timestamps"]["timestamps"]
            pairs = tuple(ChannelUpdateTimestamps(t["timestamp1"], t["timestamp2"]) for t in stamps)
            timestamps = _encoded(EncodedTimestamps, pairs, msg["timestamps"]["encoding"])
        if "checksums" in msg:
            checksums = tuple(
                ChannelUpdateChecksums(c["checksum1"], c["checksum2"]) for c in msg["checksums"]["checksums"]
            )
        return ReplyChannelRange(
            chain,
            msg["firstBlockNum"],
            msg["numberOfBlocks"],
            msg["complete"],
            _ids(msg["shortChannelIds"]),
            timestamps,
            checksums,
        )
    assert kind == "QueryShortChannelIds"
    assert msg["tlvStream"]["unknown"] == []
    flags = None
    if msg["tlvStream"]["records"]:
        (record,) = msg["tlvStream"]["records"]
        flags = _encoded(EncodedQueryFlags, tuple(record["array"]), record["encoding"])
    return QueryShortChannelIds(chain, _ids(msg["shortChannelIds"]), flags)


def test_vector_file_shape() -> None:
    kinds = [v["msg"]["type"] for v in VECTORS]
    assert len(VECTORS) == 10
    assert kinds.count("QueryChannelRange") == 2
    assert kinds.count("ReplyChannelRange") == 4
    assert kinds.count("QueryShortChannelIds") == 4


@pytest.mark.parametrize("case", VECTORS, ids=[f"{i}-{v['msg']['type']}" for i, v in enumerate(VECTORS)])
def test_extended_queries_vector(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["hex"])
    expected = _expected(case["msg"])
    assert expected.encode() == data  # encode, byte exact
    decoded = decode_message(data)
    assert decoded == expected  # decode
    assert isinstance(decoded, Message) and decoded.encode() == data  # and re-encode what was received


@pytest.mark.parametrize("case", [v for v in VECTORS if "COMPRESSED_ZLIB" in str(v["msg"])])
def test_zlib_vectors_decode_to_the_same_values_and_we_answer_uncompressed(case: dict[str, Any]) -> None:
    decoded = decode_message(bytes.fromhex(case["hex"]))
    assert isinstance(decoded, (ReplyChannelRange, QueryShortChannelIds))
    ids = decoded.encoded_short_ids
    if case["msg"]["shortChannelIds"]["encoding"] == "COMPRESSED_ZLIB":
        assert ids.encoding_type == ENCODING_ZLIB
    plain = EncodedShortIds(ids.values)
    assert plain.encoding_type == ENCODING_UNCOMPRESSED
    assert plain.encode() == b"\x00" + b"".join(v.to_bytes(8, "big") for v in ids.values)
    assert ids.values == tuple(parse_short_channel_id(t) for t in case["msg"]["shortChannelIds"]["array"])


# ---------------------------------------------------------------------------
# keys and messages


@cache
def key(i: int) -> PrivateKey:
    return PrivateKey(0x1000 + i)


def pub(i: int) -> PublicKey:
    return key(i).public_key()


SCID = short_channel_id_from_parts(103, 1, 0)
CAPACITY = 1_000_000


def ordered_nodes(a: int = 1, b: int = 2) -> tuple[int, int]:
    """The two node key indices in BOLT 7 order (node_id_1 first)."""
    return (a, b) if pub(a).to_bytes() < pub(b).to_bytes() else (b, a)


def announcement(scid: int = SCID, a: int = 1, b: int = 2, chain: bytes = CHAIN) -> ChannelAnnouncement:
    """A signed announcement between nodes a and b; node n's funding key is key(n + 100)."""
    n1, n2 = ordered_nodes(a, b)
    ann = ChannelAnnouncement.create(chain, scid, pub(a), pub(b), pub(a + 100), pub(b + 100))
    assert ann.node_id_1 == pub(n1) and ann.bitcoin_key_1 == pub(n1 + 100)
    return sign_channel_announcement(ann, key(n1), key(n2), key(n1 + 100), key(n2 + 100))


def funding_output(a: int = 1, b: int = 2, amount: int = CAPACITY) -> tuple[bytes, int]:
    return p2wsh(funding_script(pub(a + 100).to_bytes(), pub(b + 100).to_bytes())), amount


def update(
    direction: int = 0, timestamp: int = NOW, scid: int = SCID, a: int = 1, b: int = 2, **fields: Any
) -> ChannelUpdate:
    n1, n2 = ordered_nodes(a, b)
    values: dict[str, Any] = {
        "chain_hash": CHAIN,
        "short_channel_id": scid,
        "timestamp": timestamp,
        "channel_flags": direction,
        "cltv_expiry_delta": 40,
        "htlc_minimum_msat": 1000,
        "fee_base_msat": 1000,
        "fee_proportional_millionths": 100,
        "htlc_maximum_msat": CAPACITY * 500,
    }
    values.update(fields)
    return sign_channel_update(ChannelUpdate(**values), key(n2 if direction else n1))


def node_ann(i: int, timestamp: int = NOW, **fields: Any) -> NodeAnnouncement:
    values: dict[str, Any] = {
        "timestamp": timestamp,
        "node_id": pub(i),
        "rgb_color": b"\x01\x02\x03",
        "alias": b"canal".ljust(32, b"\x00"),
        "addresses": encode_addresses([NodeAddress(1, bytes([127, 0, 0, 1]), 9735)]),
    }
    values.update(fields)
    return sign_node_announcement(NodeAnnouncement(**values), key(i))


# ---------------------------------------------------------------------------
# messages: registration, round trips, malformed input


def test_every_bolt7_type_is_registered() -> None:
    for cls in (
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
        assert MESSAGES.lookup(cls.TYPE) is cls
    assert [c.TYPE for c in (ChannelAnnouncement, NodeAnnouncement, ChannelUpdate, AnnouncementSignatures)] == [
        256,
        257,
        258,
        259,
    ]
    assert [c.TYPE for c in (QueryShortChannelIds, ReplyShortChannelIdsEnd, QueryChannelRange)] == [261, 262, 263]
    assert [c.TYPE for c in (ReplyChannelRange, GossipTimestampFilter)] == [264, 265]


def _examples() -> list[Message]:
    ann = announcement()
    return [
        ann,
        replace(ann, excess_data=b"\x01\x02future"),
        node_ann(1),
        replace(node_ann(2), features=b"\x00\x02", excess_data=b"\xff"),
        update(),
        update(1, message_flags=3, channel_flags=3),
        AnnouncementSignatures(bytes(range(32)), SCID, b"\x11" * 64, b"\x22" * 64),
        QueryShortChannelIds.create(CHAIN, [SCID, SCID + 1]),
        QueryShortChannelIds.create(CHAIN, [SCID, SCID + 1], [QUERY_FLAGS_ALL, 300]),
        ReplyShortChannelIdsEnd(CHAIN, 1),
        ReplyShortChannelIdsEnd(CHAIN, 0),
        QueryChannelRange(CHAIN, 0, 0xFFFFFFFF),
        QueryChannelRange(CHAIN, 100, 10, QUERY_OPTION_TIMESTAMPS | QUERY_OPTION_CHECKSUMS),
        ReplyChannelRange(CHAIN, 100, 10, 1, EncodedShortIds()),
        ReplyChannelRange(
            CHAIN,
            100,
            10,
            0,
            EncodedShortIds((SCID,)),
            EncodedTimestamps((ChannelUpdateTimestamps(1, 2),)),
            (ChannelUpdateChecksums(3, 4),),
        ),
        GossipTimestampFilter(CHAIN, NOW, DAY),
    ]


@pytest.mark.parametrize("msg", _examples(), ids=lambda m: m.NAME)
def test_round_trip(msg: Message) -> None:
    data = msg.encode()
    assert int.from_bytes(data[:2], "big") == msg.TYPE
    assert decode_message(data) == msg
    assert decode_message(data).encode() == data


def test_unknown_odd_tlvs_are_kept() -> None:
    extra = encode_bigsize(7) + encode_bigsize(2) + b"hi"
    data = GossipTimestampFilter(CHAIN, 1, 2).encode() + extra
    msg = decode_message(data)
    assert isinstance(msg, GossipTimestampFilter) and msg.unknown_tlvs[0].type == 7
    assert msg.encode() == data


@given(
    st.lists(st.integers(0, 2**64 - 1), max_size=50),
    st.booleans(),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
)
def test_reply_channel_range_round_trip_property(ids: list[int], extras: bool, first: int, span: int) -> None:
    n = len(ids)
    msg = ReplyChannelRange(
        CHAIN,
        first,
        span,
        1,
        EncodedShortIds(tuple(ids)),
        EncodedTimestamps(tuple(ChannelUpdateTimestamps(i, i + 1) for i in range(n))) if extras else None,
        tuple(ChannelUpdateChecksums(i, 2 * i) for i in range(n)) if extras else None,
    )
    assert decode_message(msg.encode()) == msg


@given(st.lists(st.integers(0, 2**64 - 1), max_size=40))
def test_query_flags_round_trip_property(flags: list[int]) -> None:
    msg = QueryShortChannelIds.create(CHAIN, list(range(len(flags))), flags)
    assert decode_message(msg.encode()) == msg


_ONE_ID_REPLY = ReplyChannelRange(CHAIN, 1, 1, 1, EncodedShortIds((1,))).encode()


def _qsci(ids: bytes, tlvs: bytes = b"") -> bytes:
    return (261).to_bytes(2, "big") + CHAIN + len(ids).to_bytes(2, "big") + ids + tlvs


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_qsci(b"\x02" + bytes(8)), "unknown encoding type 2"),
        (_qsci(b"\x00" + bytes(7)), "does not decode into a whole number of short_channel_id"),
        (_qsci(b""), "encoded_short_ids is empty"),
        (_qsci(b"\x01not zlib"), "invalid zlib data"),
        (_qsci(b"\x01" + zlib.compress(bytes(8))[:-3]), "truncated zlib data"),
        (_qsci(b"\x01" + zlib.compress(bytes(2 * MAX_INFLATED_BYTES))), "inflates to more than"),
        (_qsci(b"\x00" + bytes(24), b"\x01\x03\x00\x01\x02"), "exactly one flag per short_channel_id"),
        (_qsci(b"\x00" + bytes(8), b"\x01\x02\x00\xfd"), "shorter than its encoding"),
        (_qsci(b"\x00" + bytes(8), b"\x01\x04\x00\xfd\x00\x01"), "not canonical"),
        (_qsci(b"\x00" + bytes(8), b"\x02\x00"), "unknown even tlv type 2"),
        (_ONE_ID_REPLY + b"\x01\x11\x00" + bytes(16), "2 timestamps for 1"),
        (_ONE_ID_REPLY + b"\x03\x07" + bytes(7), "whole number"),
        (announcement().encode()[:-1], "shorter than its encoding"),
        (update().encode()[:-8], "shorter than its encoding"),  # no htlc_maximum_msat: required now
        (node_ann(1).encode()[:100], "shorter than its encoding"),
    ],
    ids=lambda v: v if isinstance(v, str) else "data",
)
def test_malformed_messages_raise_wire_error(data: bytes, reason: str) -> None:
    with pytest.raises(WireError) as e:
        decode_message(data)
    assert reason in e.value.reason


def test_field_range_checks() -> None:
    with pytest.raises(ValueError, match="fee_base_msat"):
        replace(update(), fee_base_msat=2**32)
    with pytest.raises(ValueError, match="signature is 64 bytes"):
        replace(update(), signature=b"\x00")
    with pytest.raises(ValueError, match="exactly one flag"):
        QueryShortChannelIds.create(CHAIN, [1, 2], [1])
    with pytest.raises(ValueError, match="zlib_data does not hold"):
        EncodedShortIds((1,), zlib.compress(bytes(8)))
    with pytest.raises(ValueError, match="checksums for"):
        ReplyChannelRange(CHAIN, 1, 1, 1, EncodedShortIds((1, 2)), checksums=(ChannelUpdateChecksums(0, 0),))


def test_channel_update_flags() -> None:
    u = update(1, message_flags=3, channel_flags=3)
    assert u.direction == 1 and u.disabled and u.dont_forward
    assert not update().disabled and update().direction == 0 and not update().dont_forward


def test_node_addresses() -> None:
    onion = bytes(range(35))
    addrs = [
        NodeAddress(5, b"node.example.com", 9735),
        NodeAddress(1, bytes([10, 0, 0, 1]), 9735),
        NodeAddress(2, bytes(15) + b"\x01", 9736),
        NodeAddress(4, onion, 9737),
    ]
    raw = encode_addresses(addrs)
    decoded = decode_addresses(raw)
    assert [a.type for a in decoded] == [1, 2, 4, 5]  # ascending, as BOLT 7 wants
    assert [a.host for a in decoded[:2]] == ["10.0.0.1", "::1"]
    assert decoded[2].host.endswith(".onion") and decoded[3].host == "node.example.com"
    assert decode_addresses(raw + b"\x09whatever") == decoded  # stops at the first unknown type
    with pytest.raises(GossipError, match="addrlen is insufficient"):
        decode_addresses(raw[:-1])
    assert node_ann(1, alias=b"\xe2\x9a\xa1 canal".ljust(32, b"\x00")).alias_text == "\u26a1 canal"


# ---------------------------------------------------------------------------
# CRC32C and the channel_update checksum


@pytest.mark.parametrize(
    ("data", "crc"),
    [
        (b"123456789", 0xE3069283),
        (bytes(32), 0x8A9136AA),  # RFC 3720 B.4
        (b"\xff" * 32, 0x62A8AB43),
        (bytes(range(32)), 0x46DD794E),
        (bytes(range(31, -1, -1)), 0x113FDB5C),
        (b"", 0),
    ],
)
def test_crc32c(data: bytes, crc: int) -> None:
    assert crc32c(data) == crc
    assert crc32c(data[5:], crc32c(data[:5])) == crc  # continues like Core Lightning's crc32c(sum, ...)


def test_channel_update_checksum_leaves_out_signature_and_timestamp() -> None:
    u = update()
    payload = u.encode_payload()
    assert channel_update_checksum(u) == crc32c(payload[64 : 64 + 40] + payload[64 + 44 :])
    assert channel_update_checksum(update(timestamp=NOW + 5)) == channel_update_checksum(u)
    assert channel_update_checksum(replace(u, signature=b"\x01" * 64)) == channel_update_checksum(u)
    assert channel_update_checksum(update(fee_base_msat=1)) != channel_update_checksum(u)
    assert channel_update_checksum(replace(u, excess_data=b"x")) != channel_update_checksum(u)


# ---------------------------------------------------------------------------
# signatures


def test_signed_hashes_start_at_the_right_offset() -> None:
    ann, u, na = announcement(), update(), node_ann(1)
    assert channel_announcement_hash(ann) == hash256(ann.encode()[2 + 256 :])
    assert channel_update_hash(u) == hash256(u.encode()[2 + 64 :])
    assert node_announcement_hash(na) == hash256(na.encode()[2 + 64 :])


def test_channel_announcement_signs_and_verifies() -> None:
    ann = announcement()
    verify_channel_announcement(ann)
    verify_channel_announcement(decode_message(ann.encode()))  # type: ignore[arg-type]
    assert ann.node_id_1.to_bytes() < ann.node_id_2.to_bytes()


@pytest.mark.parametrize(
    "field", ["node_signature_1", "node_signature_2", "bitcoin_signature_1", "bitcoin_signature_2"]
)
def test_channel_announcement_bad_signature_is_named(field: str) -> None:
    ann = announcement()
    other = getattr(ann, "bitcoin_signature_2" if field != "bitcoin_signature_2" else "node_signature_1")
    with pytest.raises(InvalidSignature) as e:
        verify_channel_announcement(replace(ann, **{field: other}))
    assert field in e.value.reason


@pytest.mark.parametrize(
    "change",
    [
        {"short_channel_id": SCID + 1},
        {"chain_hash": OTHER_CHAIN},
        {"features": b"\x01"},
        {"excess_data": b"appended"},
    ],
)
def test_tampered_channel_announcement_fails(change: dict[str, Any]) -> None:
    with pytest.raises(InvalidSignature, match="node_signature_1 is not a valid signature by node_id_1"):
        verify_channel_announcement(replace(announcement(), **change))


def test_out_of_range_signature_values_do_not_verify() -> None:
    ann = announcement()
    for sig in (bytes(64), b"\xff" * 64):
        with pytest.raises(InvalidSignature):
            verify_channel_announcement(replace(ann, node_signature_1=sig))


def test_high_s_signature_still_verifies() -> None:
    u = update()
    r, s = int.from_bytes(u.signature[:32], "big"), int.from_bytes(u.signature[32:], "big")
    flipped = replace(u, signature=u.signature[:32] + (N - s).to_bytes(32, "big"))
    ann = announcement()
    verify_channel_update(flipped, ann.node_id_1, ann.node_id_2)  # a relay may flip s
    assert channel_update_checksum(flipped) == channel_update_checksum(u) and r


def test_sign_checks_the_keys_match() -> None:
    n1, n2 = ordered_nodes()
    ann = ChannelAnnouncement.create(CHAIN, SCID, pub(1), pub(2), pub(101), pub(102))
    with pytest.raises(ValueError, match="node_id_1"):
        sign_channel_announcement(ann, key(n2), key(n1), key(n1 + 100), key(n2 + 100))
    with pytest.raises(ValueError, match="node_id"):
        sign_node_announcement(node_ann(1), key(2))


def test_announcement_signatures_build_the_announcement() -> None:
    unsigned = ChannelAnnouncement.create(CHAIN, SCID, pub(1), pub(2), pub(101), pub(102))
    channel_id = bytes(range(32))
    ours = make_announcement_signatures(unsigned, channel_id, key(1), key(101))
    theirs = make_announcement_signatures(unsigned, channel_id, key(2), key(102))
    assert decode_message(ours.encode()) == ours
    ann = add_announcement_signatures(add_announcement_signatures(unsigned, theirs), ours)
    verify_channel_announcement(ann)
    assert ann == announcement()  # RFC 6979: the same signatures either way
    forged = replace(theirs, bitcoin_signature=ours.bitcoin_signature)
    with pytest.raises(InvalidSignature, match="announcement_signatures"):
        add_announcement_signatures(unsigned, forged)
    with pytest.raises(GossipError, match="short_channel_id"):
        add_announcement_signatures(unsigned, replace(ours, short_channel_id=SCID + 1))
    with pytest.raises(ValueError, match="neither"):
        make_announcement_signatures(unsigned, channel_id, key(3), key(103))


def test_node_announcement_signs_and_verifies() -> None:
    na = node_ann(1)
    verify_node_announcement(na)
    for tampered in (
        replace(na, timestamp=na.timestamp + 1),
        replace(na, alias=b"evil".ljust(32, b"\x00")),
        replace(na, excess_data=b"\x00"),
        replace(na, node_id=pub(2)),
    ):
        with pytest.raises(InvalidSignature, match="node_announcement: signature is not a valid signature by node_id"):
            verify_node_announcement(tampered)


def test_channel_update_verifies_by_the_node_of_its_direction() -> None:
    ann = announcement()
    for direction in (0, 1):
        u = update(direction)
        verify_channel_update(u, ann.node_id_1, ann.node_id_2)
        with pytest.raises(InvalidSignature, match=f"node_id_{2 - direction}"):
            verify_channel_update(replace(u, channel_flags=1 - direction), ann.node_id_1, ann.node_id_2)
        with pytest.raises(InvalidSignature, match=f"node_id_{direction + 1}"):
            verify_channel_update(replace(u, fee_base_msat=0), ann.node_id_1, ann.node_id_2)


# ---------------------------------------------------------------------------
# the gossip store


class Chain:
    """Funding outputs by short_channel_id, as funding_lookup reads them."""

    def __init__(self) -> None:
        self.outputs: dict[int, tuple[bytes, int]] = {SCID: funding_output()}

    def __call__(self, scid: int) -> tuple[bytes, int] | None:
        return self.outputs.get(scid)


@pytest.fixture
def chain() -> Chain:
    return Chain()


@pytest.fixture
def store(chain: Chain) -> GossipStore:
    s = GossipStore(CHAIN)
    assert s.handle(announcement(), NOW, chain).accepted
    return s


def test_valid_announcement_with_its_funding_output_enters_the_store(chain: Chain) -> None:
    s = GossipStore(CHAIN)
    ann = announcement()
    r = s.handle(ann, NOW, chain)
    assert r.accepted and r.reason == "" and not r.warning
    assert r.forward == ()  # relayed with its first channel_update
    assert r.persist == (GossipRow("channel_announcement", SCID.to_bytes(8, "big"), ann.encode(), CAPACITY),)
    assert SCID in s and s.channel_announcement(SCID) == ann
    r = s.handle(update(0), NOW, chain)
    assert r.accepted and r.forward == (ann, update(0))
    policy = s.graph.policy(SCID, ann.node_id_1.to_bytes())
    assert policy is not None and policy.target == ann.node_id_2.to_bytes()
    assert (policy.capacity_sat, policy.fee_base_msat, policy.fee_proportional_millionths) == (CAPACITY, 1000, 100)
    assert (policy.cltv_expiry_delta, policy.last_update, policy.disabled) == (40, NOW, False)
    r = s.handle(update(1), NOW, chain)
    assert r.accepted and r.forward == (update(1),)
    assert s.graph.channel_count == 1 and s.graph.edge_count == 2


@pytest.mark.parametrize(
    ("outputs", "reason"),
    [
        ({}, "funding output of 103x1x0 is missing or spent"),
        ({SCID: funding_output(1, 3)}, "does not pay P2WSH(2-of-2 of bitcoin_key_1, bitcoin_key_2)"),
        ({SCID: (funding_script(pub(101).to_bytes(), pub(102).to_bytes()), CAPACITY)}, "does not pay P2WSH"),
    ],
)
def test_announcement_without_its_funding_output_is_refused(outputs: dict[int, Any], reason: str) -> None:
    s = GossipStore(CHAIN)
    r = s.handle(announcement(), NOW, outputs.get)
    assert not r.accepted and reason in r.reason and not r.warning
    assert SCID not in s


def test_announcement_refusals(store: GossipStore, chain: Chain) -> None:
    s = GossipStore(CHAIN)
    bad = replace(announcement(), bitcoin_signature_2=announcement().bitcoin_signature_1)
    r = s.handle(bad, NOW, chain)
    assert not r.accepted and r.warning and "bitcoin_signature_2" in r.reason and SCID not in s
    r = s.handle(announcement(chain=OTHER_CHAIN), NOW, chain)
    assert not r.accepted and "unknown chain_hash" in r.reason
    swapped = replace(announcement(), node_id_1=announcement().node_id_2, node_id_2=announcement().node_id_1)
    r = s.handle(swapped, NOW, chain)
    assert not r.accepted and "lesser" in r.reason
    r = store.handle(announcement(), NOW, chain)
    assert not r.accepted and "duplicate" in r.reason
    chain.outputs[SCID] = funding_output(1, 3)
    r = store.handle(announcement(a=1, b=3), NOW, chain)
    assert not r.accepted and "conflicting" in r.reason


def test_updates_applied_and_stale_ones_ignored(store: GossipStore, chain: Chain) -> None:
    n1 = store.channel_announcement(SCID).node_id_1.to_bytes()  # type: ignore[union-attr]
    assert store.handle(update(0, NOW), NOW, chain).accepted
    r = store.handle(update(0, NOW + 10, fee_base_msat=5), NOW + 10, chain)
    assert r.accepted and r.forward == (update(0, NOW + 10, fee_base_msat=5),)
    assert store.graph.policy(SCID, n1).fee_base_msat == 5  # type: ignore[union-attr]
    for msg, reason in (
        (update(0, NOW + 5), "stale"),
        (update(0, NOW + 10, fee_base_msat=5), "duplicate"),
        (update(0, NOW + 10, fee_base_msat=6), "same timestamp, different fields"),
        (update(0, NOW + 10 + 2 * 3600), "too far in the future"),
        (update(1, NOW - 15 * DAY), "older than two weeks"),
        (update(0, NOW + 20, scid=SCID + 1), "unknown channel 103x1x1"),
        (replace(update(0, NOW + 20), chain_hash=OTHER_CHAIN), "unknown chain_hash"),
    ):
        r = store.handle(msg, NOW + 10, chain)
        assert not r.accepted and reason in r.reason, (reason, r.reason)
        assert not r.warning
    assert store.graph.policy(SCID, n1).fee_base_msat == 5  # type: ignore[union-attr]
    forged = replace(update(0, NOW + 20), fee_base_msat=0)
    r = store.handle(forged, NOW + 20, chain)
    assert not r.accepted and r.warning and "signature" in r.reason
    wrong_node = sign_channel_update(replace(update(1, NOW + 20), signature=bytes(64)), key(ordered_nodes()[0]))
    r = store.handle(wrong_node, NOW + 20, chain)
    assert not r.accepted and r.warning and "node_id_2" in r.reason


def test_policy_the_graph_should_not_route_is_kept_disabled(store: GossipStore, chain: Chain) -> None:
    n1 = store.channel_announcement(SCID).node_id_1.to_bytes()  # type: ignore[union-attr]
    r = store.handle(update(0, htlc_maximum_msat=CAPACITY * 1000 + 1), NOW, chain)
    assert r.accepted and store.graph.policy(SCID, n1).disabled  # type: ignore[union-attr]
    assert store.handle(update(0, NOW + 1), NOW, chain).accepted
    assert not store.graph.policy(SCID, n1).disabled  # type: ignore[union-attr]
    assert store.handle(update(0, NOW + 2, channel_flags=2), NOW, chain).accepted
    assert store.graph.policy(SCID, n1).disabled  # type: ignore[union-attr]


def test_flipped_s_is_a_duplicate_not_an_offence(store: GossipStore, chain: Chain) -> None:
    u = update()
    assert store.handle(u, NOW, chain).accepted
    s = int.from_bytes(u.signature[32:], "big")
    r = store.handle(replace(u, signature=u.signature[:32] + (N - s).to_bytes(32, "big")), NOW, chain)
    assert not r.accepted and not r.warning and "duplicate" in r.reason


def test_unknown_even_channel_feature_keeps_the_channel_out_of_routes(chain: Chain) -> None:
    n1, n2 = ordered_nodes()
    unsigned = ChannelAnnouncement.create(CHAIN, SCID, pub(1), pub(2), pub(101), pub(102), Features(1 << 8))
    assert unsigned.features == b"\x01\x00"
    ann = sign_channel_announcement(unsigned, key(n1), key(n2), key(n1 + 100), key(n2 + 100))
    s = GossipStore(CHAIN)
    assert s.handle(ann, NOW, chain).accepted
    r = s.handle(update(0), NOW, chain)
    assert r.accepted and r.forward[0] == ann  # still relayed
    assert s.graph.policy(SCID, pub(n1).to_bytes()).disabled  # type: ignore[union-attr]


def test_dont_forward_update_is_applied_but_not_relayed(store: GossipStore, chain: Chain) -> None:
    r = store.handle(update(0, message_flags=3), NOW, chain)
    assert r.accepted and r.forward == ()
    r = store.handle(update(1), NOW, chain)
    assert r.forward == (store.channel_announcement(SCID), update(1))


def test_rate_limit_per_channel_direction(chain: Chain) -> None:
    s = GossipStore(CHAIN, config=GossipConfig(max_channel_updates_per_day=3))
    s.handle(announcement(), NOW, chain)
    for i in range(3):
        assert s.handle(update(0, NOW + i), NOW + i, chain).accepted
    r = s.handle(update(0, NOW + 3), NOW + 3, chain)
    assert not r.accepted and "rate limited" in r.reason
    assert s.handle(update(1, NOW + 3), NOW + 3, chain).accepted  # the other direction has its own budget
    assert s.handle(update(0, NOW + DAY), NOW + DAY, chain).accepted  # a day later


def test_node_announcement(store: GossipStore, chain: Chain) -> None:
    r = store.handle(node_ann(3), NOW, chain)
    assert not r.accepted and "unknown node" in r.reason
    r = store.handle(node_ann(1), NOW, chain)
    assert r.accepted and r.forward == ()  # held: its channel is not relayed yet
    r = store.handle(update(0), NOW, chain)
    assert r.forward == (store.channel_announcement(SCID), update(0), node_ann(1))
    r = store.handle(node_ann(2, NOW + 1), NOW + 1, chain)
    assert r.accepted and r.forward == (node_ann(2, NOW + 1),)
    assert not store.handle(node_ann(2, NOW + 1), NOW + 1, chain).accepted  # not newer
    r = store.handle(replace(node_ann(2, NOW + 2), alias=bytes(32)), NOW + 2, chain)
    assert not r.accepted and r.warning
    r = store.handle(node_ann(2, NOW + 3, addresses=b"\x01\x7f\x00"), NOW + 3, chain)
    assert not r.accepted and r.warning and "addrlen" in r.reason
    two_dns = encode_addresses([NodeAddress(5, b"a.example", 1), NodeAddress(5, b"b.example", 1)])
    r = store.handle(node_ann(2, NOW + 4, addresses=two_dns), NOW + 4, chain)
    assert r.accepted and r.forward == ()  # MUST not forward with more than one DNS hostname


def test_pruning_on_spend(store: GossipStore, chain: Chain) -> None:
    store.handle(update(0), NOW, chain)
    store.handle(node_ann(1), NOW, chain)
    r = store.funding_spent(SCID, 200)
    assert r.accepted and r.persist == (GossipRow("spent", SCID.to_bytes(8, "big"), b"", 200),)
    assert store.is_spent(SCID)
    r = store.handle(update(1, NOW + 1), NOW + 1, chain)
    assert not r.accepted and "spent" in r.reason
    r = store.handle(update(0, NOW + 1, channel_flags=2), NOW + 1, chain)
    assert r.accepted and r.forward == (update(0, NOW + 1, channel_flags=2),)
    assert store.block_connected(200 + SPENT_CHANNEL_DELAY - 1).forget == ()
    assert SCID in store and store.graph.channel_count == 1
    r = store.block_connected(200 + SPENT_CHANNEL_DELAY)
    key = SCID.to_bytes(8, "big")
    assert set(r.forget) == {
        ("channel_announcement", key),
        ("spent", key),
        ("channel_update", key + b"\x00"),
        ("node_announcement", pub(1).to_bytes()),
    }
    assert SCID not in store and store.graph.channel_count == 0
    assert store.node_announcement(pub(1).to_bytes()) is None
    r = store.handle(announcement(), NOW, lambda scid: None)  # the output is gone on chain
    assert not r.accepted


def test_spend_without_height_forgets_at_once(store: GossipStore, chain: Chain) -> None:
    store.handle(update(0), NOW, chain)
    assert store.funding_spent(SCID).accepted
    assert SCID not in store and store.graph.edge_count == 0
    assert not store.funding_spent(SCID).accepted


def test_prune_stale(store: GossipStore, chain: Chain) -> None:
    store.handle(update(0), NOW, chain)
    assert store.prune_stale(NOW + 13 * DAY).forget == ()
    assert ("channel_announcement", SCID.to_bytes(8, "big")) in store.prune_stale(NOW + 15 * DAY).forget


# ---------------------------------------------------------------------------
# queries


def _network(n: int, config: GossipConfig | None = None) -> GossipStore:
    """Channels i = 0..n-1 in block 100 + i // 2 between nodes i+1 and i+2, both directions updated."""
    s = GossipStore(CHAIN, config=config)
    for i in range(n):
        scid = short_channel_id_from_parts(100 + i // 2, i, 0)
        a, b = i + 1, i + 2
        outputs = {scid: funding_output(a, b)}
        assert s.handle(announcement(scid, a, b), NOW, outputs.get).accepted
        for d in (0, 1):
            assert s.handle(update(d, NOW + i, scid, a, b), NOW, outputs.get).accepted
    return s


@pytest.fixture(scope="module")
def network() -> GossipStore:
    return _network(6)


def test_query_channel_range(network: GossipStore) -> None:
    q = QueryChannelRange(CHAIN, 101, 2, QUERY_OPTION_TIMESTAMPS | QUERY_OPTION_CHECKSUMS)
    r = network.handle(q, NOW, lambda s: None)
    assert r.accepted
    (reply,) = r.reply
    assert isinstance(reply, ReplyChannelRange)
    assert (reply.first_blocknum, reply.number_of_blocks, reply.sync_complete) == (101, 2, 1)
    scids = network.short_channel_ids()
    assert reply.short_channel_ids == tuple(scids[2:6])
    assert reply.timestamps is not None and reply.timestamps.values[0] == (NOW + 2, NOW + 2)
    u = network.channel_update(scids[2], 1)
    assert reply.checksums is not None and reply.checksums[0][1] == channel_update_checksum(u)  # type: ignore[arg-type]
    plain = network.reply_channel_range(QueryChannelRange(CHAIN, 0, 1000))
    assert len(plain) == 1 and plain[0].timestamps is None and plain[0].checksums is None
    assert plain[0].short_channel_ids == tuple(scids)
    assert decode_message(plain[0].encode()) == plain[0]


@pytest.mark.parametrize("limit", [1, 2, 3, 5])
def test_query_channel_range_split_over_replies(limit: int) -> None:
    s = _network(6, GossipConfig(max_ids_per_reply=limit))
    q = QueryChannelRange(CHAIN, 50, 100)
    replies = s.reply_channel_range(q)
    got = [scid for r in replies for scid in r.short_channel_ids]
    assert got == s.short_channel_ids()
    assert all(len(r.short_channel_ids) <= limit for r in replies)
    assert [r.sync_complete for r in replies] == [0] * (len(replies) - 1) + [1]
    assert replies[0].first_blocknum <= q.first_blocknum < replies[0].end_blocknum
    assert replies[-1].end_blocknum >= q.end_blocknum
    for prev, cur in itertools.pairwise(replies):
        # as lnd checks: start at the previous reply's last block, or the block after it
        assert cur.first_blocknum in (prev.end_blocknum - 1, prev.end_blocknum)
    for r in replies:
        assert all(r.first_blocknum <= scid >> 40 < r.end_blocknum for scid in r.short_channel_ids)


def test_query_channel_range_refusals(network: GossipStore) -> None:
    r = network.handle(QueryChannelRange(OTHER_CHAIN, 0, 10), NOW, lambda s: None)
    assert not r.accepted and r.reply == (ReplyChannelRange(OTHER_CHAIN, 0, 10, 0, EncodedShortIds()),)
    r = network.handle(QueryChannelRange(CHAIN, 0, 0), NOW, lambda s: None)
    assert not r.accepted and "number_of_blocks is 0" in r.reason
    (empty,) = network.reply_channel_range(QueryChannelRange(CHAIN, 5000, 10))
    assert empty.short_channel_ids == () and empty.sync_complete == 1


def test_query_short_channel_ids(network: GossipStore, chain: Chain) -> None:
    s = network
    scids = s.short_channel_ids()
    ann0 = s.channel_announcement(scids[0])
    assert ann0 is not None
    s.handle(node_ann(2), NOW, chain)  # node 2 is in channels 0 and 1
    r = s.handle(QueryShortChannelIds.create(CHAIN, [scids[0], 12345, scids[1]]), NOW, chain)
    assert r.accepted
    names = [m.NAME for m in r.reply]
    assert names == [
        "channel_announcement",
        "channel_update",
        "channel_update",
        "node_announcement",  # node 2, sent once
        "channel_announcement",
        "channel_update",
        "channel_update",
        "reply_short_channel_ids_end",
    ]
    assert r.reply[0] == ann0 and r.reply[-1] == ReplyShortChannelIdsEnd(CHAIN, 1)
    flags = [QUERY_FLAG_CHANNEL_UPDATE_2, QUERY_FLAG_CHANNEL_ANNOUNCEMENT]
    r = s.handle(QueryShortChannelIds.create(CHAIN, scids[:2], flags), NOW, chain)
    assert r.reply == (s.channel_update(scids[0], 1), s.channel_announcement(scids[1]), ReplyShortChannelIdsEnd(CHAIN))
    r = s.handle(QueryShortChannelIds.create(OTHER_CHAIN, scids[:1]), NOW, chain)
    assert not r.accepted and r.reply == (ReplyShortChannelIdsEnd(OTHER_CHAIN, 0),)
    n2_is_second = ann0.node_id_2 == pub(2)
    r = s.handle(QueryShortChannelIds.create(CHAIN, scids[:1], [QUERY_FLAG_NODE_ANNOUNCEMENT_2]), NOW, chain)
    assert (len(r.reply) == 2) == n2_is_second


def test_gossip_timestamp_filter(network: GossipStore) -> None:
    r = network.handle(GossipTimestampFilter(CHAIN, NOW + 4, 2), NOW, lambda s: None)
    scids = network.short_channel_ids()
    assert r.accepted
    assert r.reply == (
        network.channel_announcement(scids[4]),
        network.channel_update(scids[4], 0),
        network.channel_update(scids[4], 1),
        network.channel_announcement(scids[5]),
        network.channel_update(scids[5], 0),
        network.channel_update(scids[5], 1),
    )
    assert network.handle(GossipTimestampFilter(CHAIN, 0xFFFFFFFF, 0), NOW, lambda s: None).reply == ()


def test_query_for_reply(network: GossipStore) -> None:
    scids = network.short_channel_ids()
    ours = [network.channel_update(scids[0], d) for d in (0, 1)]
    assert ours[0] is not None and ours[1] is not None
    ts = EncodedTimestamps((ChannelUpdateTimestamps(NOW + 100, ours[1].timestamp), ChannelUpdateTimestamps(1, 1)))
    reply = ReplyChannelRange(CHAIN, 0, 1000, 1, EncodedShortIds((scids[0], 999)), ts)
    q = network.query_for_reply(reply)
    assert q is not None and q.short_channel_ids == (scids[0], 999)
    assert q.query_flags is not None and q.query_flags.values == (QUERY_FLAG_CHANNEL_UPDATE_1, QUERY_FLAGS_ALL)
    same = (ChannelUpdateChecksums(channel_update_checksum(ours[0]), 0), ChannelUpdateChecksums(0, 0))
    with_same = network.query_for_reply(replace(reply, checksums=same))
    assert with_same is not None and with_same.short_channel_ids == (999,)  # newer but the same content
    plain = network.query_for_reply(reply, with_flags=False)
    assert plain is not None and plain.short_channel_ids == (999,) and plain.query_flags is None
    known_only = ReplyChannelRange(CHAIN, 0, 1000, 1, EncodedShortIds(tuple(scids)))
    assert network.query_for_reply(known_only) is None


def test_other_messages_are_not_handled(network: GossipStore) -> None:
    r = network.handle(AnnouncementSignatures(bytes(32), SCID, bytes(64), bytes(64)), NOW, lambda s: None)
    assert not r.accepted and "announcement_signatures" in r.reason


# ---------------------------------------------------------------------------
# persistence


def test_rows_rebuild_the_store_through_sqlite(chain: Chain) -> None:
    s = _network(4)
    s.handle(node_ann(2), NOW, chain)
    s.funding_spent(s.short_channel_ids()[3], 500)
    rows = s.to_rows()
    assert {r.kind for r in rows} == {"channel_announcement", "channel_update", "node_announcement", "spent"}
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE gossip (kind TEXT, key BLOB, message BLOB, value INTEGER, PRIMARY KEY (kind, key))")
    db.executemany("INSERT OR REPLACE INTO gossip VALUES (?, ?, ?, ?)", rows)
    loaded = [GossipRow(*row) for row in db.execute("SELECT kind, key, message, value FROM gossip ORDER BY random()")]
    t = GossipStore.from_rows(loaded, CHAIN)
    assert t.to_rows() == rows
    assert sorted(t.graph, key=lambda p: (p.short_channel_id, p.direction)) == sorted(
        s.graph, key=lambda p: (p.short_channel_id, p.direction)
    )
    assert t.is_spent(s.short_channel_ids()[3]) and t.node_announcement(pub(2).to_bytes()) == node_ann(2)
    # the rebuilt store goes on validating: stale updates still refused, new ones relayed
    scid0 = t.short_channel_ids()[0]
    u = t.channel_update(scid0, 0)
    assert u is not None and not t.handle(u, NOW, chain).accepted
    a, b = 1, 2
    r = t.handle(update(0, NOW + 50, scid0, a, b), NOW + 50, chain)
    assert r.accepted and r.forward == (update(0, NOW + 50, scid0, a, b),)


def test_incremental_persist_matches_to_rows(chain: Chain) -> None:
    s = GossipStore(CHAIN)
    table: dict[tuple[str, bytes], GossipRow] = {}
    for msg in (announcement(), update(0), update(1), node_ann(1), update(0, NOW + 1)):
        r = s.handle(msg, NOW + 1, chain)
        assert r.accepted
        table.update({(row.kind, row.key): row for row in r.persist})
    assert sorted(table.values()) == sorted(s.to_rows())
    for kind_key in s.funding_spent(SCID).forget:
        table.pop(kind_key, None)
    assert table == {} and s.to_rows() == []


def test_bad_rows_raise() -> None:
    with pytest.raises(GossipError, match="does not decode"):
        GossipStore.from_rows([GossipRow("channel_update", b"k", b"\x01\x02\x03")], CHAIN)
    with pytest.raises(GossipError, match="holds a NodeAnnouncement"):
        GossipStore.from_rows([GossipRow("channel_update", b"k", node_ann(1).encode())], CHAIN)
    with pytest.raises(GossipError, match="unknown gossip row kind"):
        GossipStore.from_rows([GossipRow("mystery", b"k", b"")], CHAIN)
