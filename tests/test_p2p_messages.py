"""P2P messages and framing: encodings, limits, the frame decoder, and garbage in."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from base_chain.block import Block, BlockHeader
from base_chain.hashes import hash256
from base_chain.p2p import (
    MSG_BLOCK,
    MSG_TX,
    MSG_WITNESS_BLOCK,
    MSG_WITNESS_TX,
    NODE_NETWORK,
    NODE_WITNESS,
    FrameDecoder,
    InvVector,
    Message,
    MsgAddr,
    MsgBlock,
    MsgFeeFilter,
    MsgGetAddr,
    MsgGetBlocks,
    MsgGetData,
    MsgGetHeaders,
    MsgHeaders,
    MsgInv,
    MsgMempool,
    MsgNotFound,
    MsgPing,
    MsgPong,
    MsgReject,
    MsgSendAddrV2,
    MsgSendHeaders,
    MsgTx,
    MsgUnknown,
    MsgVerack,
    MsgVersion,
    MsgWtxidRelay,
    NetAddr,
    ProtocolViolation,
    TimestampedAddr,
    decode_payload,
    encode_payload,
    frame,
    frame_raw,
)
from base_chain.p2p.messages import MESSAGE_TYPES
from base_chain.serialize import compact_size
from base_chain.tx import OutPoint, Transaction, TxIn, TxOut

MAGIC = bytes.fromhex("fabfb5da")  # regtest-like
OTHER_MAGIC = bytes.fromhex("f9beb4d9")


def roundtrip(msg: Message) -> Message:
    return decode_payload(msg.command, encode_payload(msg))


# --- strategies -----------------------------------------------------------------

hashes = st.binary(min_size=32, max_size=32)
u32s = st.integers(0, 2**32 - 1)
u64s = st.integers(0, 2**64 - 1)
i32s = st.integers(-(2**31), 2**31 - 1)
i64s = st.integers(-(2**63), 2**63 - 1)

inv_vectors = st.builds(
    InvVector,
    st.one_of(st.sampled_from([MSG_TX, MSG_BLOCK, MSG_WITNESS_TX, MSG_WITNESS_BLOCK]), u32s),
    hashes,
)
net_addrs = st.builds(
    NetAddr, u64s, st.binary(min_size=16, max_size=16), st.integers(0, 65535)
)
timestamped_addrs = st.builds(TimestampedAddr, u32s, net_addrs)
headers = st.builds(BlockHeader, i32s, hashes, hashes, u32s, u32s, u32s)
user_agents = st.text(max_size=64).filter(lambda s: len(s.encode()) <= 256)
versions = st.builds(
    MsgVersion, i32s, u64s, i64s, net_addrs, net_addrs, u64s, user_agents, i32s, st.booleans()
)


def sample_tx() -> Transaction:
    txin = TxIn(OutPoint(b"\x11" * 32, 1), b"", 0xFFFFFFFD, [b"\x30" * 71, b"\x02" * 33])
    return Transaction(2, [txin], [TxOut(50_000, b"\x00\x14" + b"\x22" * 20)], 0)


def sample_block() -> Block:
    coinbase = Transaction(
        1, [TxIn(OutPoint.null(), b"\x01\x01", 0xFFFFFFFF)], [TxOut(5_000_000_000, b"\x51")], 0
    )
    header = BlockHeader(0x20000000, b"\x00" * 32, b"\x33" * 32, 1_700_000_000, 0x207FFFFF, 7)
    return Block(header, [coinbase, sample_tx()])


H = bytes(range(32))
SAMPLES: list[Message] = [
    MsgVersion(nonce=42, start_height=7, addr_recv=NetAddr.from_host("10.0.0.1", 18444)),
    MsgVerack(),
    MsgPing(0x0102030405060708),
    MsgPong(2**64 - 1),
    MsgInv((InvVector(MSG_WITNESS_TX, H), InvVector(MSG_BLOCK, H[::-1]))),
    MsgGetData((InvVector(MSG_WITNESS_BLOCK, H),)),
    MsgNotFound((InvVector(MSG_TX, H),)),
    MsgGetHeaders((H, H[::-1]), b"\x00" * 32),
    MsgGetBlocks((H,), H),
    MsgHeaders((sample_block().header,) * 3),
    MsgBlock(sample_block()),
    MsgTx(sample_tx()),
    MsgAddr((TimestampedAddr(1_700_000_000, NetAddr.from_host("::1", 8333, NODE_NETWORK)),)),
    MsgGetAddr(),
    MsgSendHeaders(),
    MsgWtxidRelay(),
    MsgSendAddrV2(),
    MsgFeeFilter(1_000),
    MsgMempool(),
    MsgReject("tx", 0x10, "bad-txns-inputs-missingorspent", H),
]


def test_samples_cover_every_known_command() -> None:
    assert {m.command for m in SAMPLES} == set(MESSAGE_TYPES)


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: m.command)
def test_roundtrip_every_message(msg: Message) -> None:
    assert roundtrip(msg) == msg
    framed = frame(MAGIC, msg)
    assert FrameDecoder(MAGIC).feed(framed) == [msg]


def test_unknown_command_is_kept() -> None:
    msg = decode_payload("sendcmpct", b"\x00\x02\x00\x00\x00\x00\x00\x00\x00")
    assert msg == MsgUnknown("sendcmpct", b"\x00\x02\x00\x00\x00\x00\x00\x00\x00")
    assert encode_payload(msg) == msg.payload
    assert FrameDecoder(MAGIC).feed(frame(MAGIC, msg)) == [msg]


@given(st.lists(inv_vectors, max_size=40))
def test_inv_roundtrip(items: list[InvVector]) -> None:
    for cls in (MsgInv, MsgGetData, MsgNotFound):
        msg = cls(tuple(items))
        assert roundtrip(msg) == msg


@given(st.lists(headers, max_size=30))
def test_headers_roundtrip(items: list[BlockHeader]) -> None:
    msg = MsgHeaders(tuple(items))
    payload = encode_payload(msg)
    assert len(payload) == len(compact_size(len(items))) + 81 * len(items)
    assert roundtrip(msg) == msg


@given(st.lists(timestamped_addrs, max_size=30))
def test_addr_roundtrip(items: list[TimestampedAddr]) -> None:
    msg = MsgAddr(tuple(items))
    assert roundtrip(msg) == msg


@given(versions)
def test_version_roundtrip(msg: MsgVersion) -> None:
    assert roundtrip(msg) == msg


@given(st.lists(hashes, max_size=101), hashes, i32s)
def test_locator_roundtrip(locator: list[bytes], stop: bytes, version: int) -> None:
    for cls in (MsgGetHeaders, MsgGetBlocks):
        msg = cls(tuple(locator), stop, version)
        assert roundtrip(msg) == msg


# --- a version message against its byte layout ------------------------------------


def test_version_byte_layout() -> None:
    msg = MsgVersion(
        version=70016,
        services=NODE_NETWORK | NODE_WITNESS,
        timestamp=1_700_000_000,
        addr_recv=NetAddr.from_host("127.0.0.1", 8333),
        addr_from=NetAddr(NODE_NETWORK | NODE_WITNESS),
        nonce=0x0102030405060708,
        user_agent="/Canal:0.1.0/",
        start_height=123,
        relay=True,
    )
    expected = bytes.fromhex(
        "".join(
            [
                "80110100",  # version 70016 = 0x00011180, int32 LE
                "0900000000000000",  # services NODE_NETWORK | NODE_WITNESS, uint64 LE
                "00f1536500000000",  # timestamp 1700000000 = 0x6553f100, int64 LE
                "0000000000000000",  # addr_recv.services
                "00000000000000000000ffff7f000001",  # addr_recv.ip ::ffff:127.0.0.1
                "208d",  # addr_recv.port 8333, big-endian
                "0900000000000000",  # addr_from.services
                "00000000000000000000000000000000",  # addr_from.ip ::
                "0000",  # addr_from.port
                "0807060504030201",  # nonce, uint64 LE
                "0d",  # user agent length 13
                "2f43616e616c3a302e312e302f",  # "/Canal:0.1.0/"
                "7b000000",  # start_height 123
                "01",  # relay
            ]
        )
    )
    assert encode_payload(msg) == expected
    assert decode_payload("version", expected) == msg
    assert msg.addr_recv.host == "127.0.0.1"


def test_version_leniencies() -> None:
    full = encode_payload(MsgVersion(nonce=9, relay=False))
    without_relay = decode_payload("version", full[:-1])
    assert isinstance(without_relay, MsgVersion) and without_relay.relay is True
    extended = decode_payload("version", full + b"\x01\x02\x03")  # a later extension
    assert extended == MsgVersion(nonce=9, relay=False)
    nonzero_relay = decode_payload("version", full[:-1] + b"\x02")
    assert isinstance(nonzero_relay, MsgVersion) and nonzero_relay.relay is True


def test_verack_frame_known_bytes() -> None:
    # The well-known mainnet verack: checksum of the empty payload is 5df6e0e2.
    assert frame(OTHER_MAGIC, MsgVerack()) == bytes.fromhex(
        "f9beb4d9" "76657261636b000000000000" "00000000" "5df6e0e2"
    )


# --- payload errors ---------------------------------------------------------------


def violation(command: str, payload: bytes) -> ProtocolViolation:
    with pytest.raises(ProtocolViolation) as info:
        decode_payload(command, payload)
    return info.value


@pytest.mark.parametrize(
    "command,max_count,entry",
    [
        ("inv", 50_000, b"\x01\x00\x00\x00" + H),
        ("getdata", 50_000, b"\x01\x00\x00\x00" + H),
        ("notfound", 50_000, b"\x01\x00\x00\x00" + H),
        ("headers", 2_000, sample_block().header.to_bytes() + b"\x00"),
        ("addr", 1_000, TimestampedAddr(1, NetAddr()).to_bytes()),
    ],
)
def test_list_limits(command: str, max_count: int, entry: bytes) -> None:
    at_limit = decode_payload(command, compact_size(max_count) + entry * max_count)
    assert at_limit.command == command
    e = violation(command, compact_size(max_count + 1) + entry * (max_count + 1))
    assert e.reason == f"{command} message size = {max_count + 1}"
    assert e.score == 20


def test_locator_limit() -> None:
    payload = b"\x80\x11\x01\x00" + compact_size(102) + H * 102 + H
    e = violation("getheaders", payload)
    assert e.reason == "getheaders locator size 102 > 101" and e.score == 100


def test_constructor_limits() -> None:
    with pytest.raises(ValueError):
        MsgInv((InvVector(MSG_TX, H),) * 50_001)
    with pytest.raises(ValueError):
        MsgHeaders((sample_block().header,) * 2_001)
    with pytest.raises(ValueError):
        InvVector(MSG_TX, b"short")
    with pytest.raises(ValueError):
        MsgPing(-1)


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: m.command)
def test_trailing_bytes_rejected(msg: Message) -> None:
    if msg.command in ("version", "reject"):  # both end in "whatever follows" by design
        return
    e = violation(msg.command, encode_payload(msg) + b"\x00")
    assert "trailing" in e.reason and e.score == 100


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: m.command)
def test_truncated_payload_rejected(msg: Message) -> None:
    payload = encode_payload(msg)
    if payload and msg.command != "reject":  # reject's "data" is whatever follows
        e = violation(msg.command, payload[:-2] if msg.command == "version" else payload[:-1])
        assert e.reason.startswith(f"malformed {msg.command} message")


def test_bad_encodings() -> None:
    # non-canonical CompactSize count
    assert "non-canonical" in violation("inv", b"\xfd\x01\x00" + b"\x01\x00\x00\x00" + H).reason
    # a header followed by a non-zero transaction count
    assert "transaction count" in violation(
        "headers", b"\x01" + sample_block().header.to_bytes() + b"\x01"
    ).reason
    # an over-long user agent
    ua = "x" * 257
    payload = encode_payload(MsgVersion(user_agent=ua))
    assert "String length limit exceeded" in violation("version", payload).reason
    # an empty ping (pre-BIP31)
    assert violation("ping", b"").score == 100


# --- framing ------------------------------------------------------------------------


STREAM_MSGS: list[Message] = [
    MsgVersion(nonce=1),
    MsgVerack(),
    MsgPing(7),
    MsgInv((InvVector(MSG_TX, H),)),
    MsgGetAddr(),
    MsgTx(sample_tx()),
]
STREAM = b"".join(frame(MAGIC, m) for m in STREAM_MSGS)


def test_split_stream_at_every_boundary() -> None:
    for cut in range(len(STREAM) + 1):
        decoder = FrameDecoder(MAGIC)
        got = decoder.feed(STREAM[:cut]) + decoder.feed(STREAM[cut:])
        assert got == STREAM_MSGS, cut
        assert decoder.buffered == 0


def test_stream_byte_by_byte() -> None:
    decoder = FrameDecoder(MAGIC)
    got: list[Message] = []
    for i in range(len(STREAM)):
        got += decoder.feed(STREAM[i : i + 1])
    assert got == STREAM_MSGS


@given(st.lists(st.integers(0, len(STREAM)), max_size=8))
def test_stream_random_cuts(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(STREAM)]
    decoder = FrameDecoder(MAGIC)
    got: list[Message] = []
    for a, b in zip(points, points[1:]):
        got += decoder.feed(STREAM[a:b])
    assert got == STREAM_MSGS


def framing_violation(data: bytes, max_payload: int = 4_001_000) -> ProtocolViolation:
    decoder = FrameDecoder(MAGIC, max_payload)
    with pytest.raises(ProtocolViolation) as info:
        decoder.feed(data)
    with pytest.raises(ProtocolViolation):  # the decoder stays broken
        decoder.feed(frame(MAGIC, MsgVerack()))
    return info.value


def test_wrong_magic() -> None:
    e = framing_violation(frame(OTHER_MAGIC, MsgVerack()))
    assert e.reason == "wrong network magic" and e.score == 0
    # detected as soon as the magic has arrived, after good frames too
    decoder = FrameDecoder(MAGIC)
    assert decoder.feed(frame(MAGIC, MsgVerack())) == [MsgVerack()]
    with pytest.raises(ProtocolViolation, match="wrong network magic"):
        decoder.feed(OTHER_MAGIC)


def test_bad_checksum() -> None:
    raw = bytearray(frame(MAGIC, MsgPing(5)))
    raw[20] ^= 1
    e = framing_violation(bytes(raw))
    assert e.reason == "bad checksum in ping message" and e.score == 100


def test_oversize_payload_rejected_from_header_alone() -> None:
    header = frame_raw(MAGIC, "block", b"")[:16] + (4_001_001).to_bytes(4, "little") + b"\x00" * 4
    e = framing_violation(header)
    assert e.reason.startswith("oversized message") and e.score == 100
    e = framing_violation(frame(MAGIC, MsgPing(1)), max_payload=7)
    assert e.reason.startswith("oversized message")


@pytest.mark.parametrize(
    "command",
    [b"ping\x00x\x00\x00\x00\x00\x00\x00", b"pi\nng\x00\x00\x00\x00\x00\x00\x00", b"\xff" * 12],
)
def test_garbage_command(command: bytes) -> None:
    good = frame(MAGIC, MsgPing(1))
    e = framing_violation(good[:4] + command + good[16:])
    assert e.reason.startswith("malformed command") and e.score == 100


def test_frame_raw_refuses_bad_commands() -> None:
    for bad in ("thirteen_char", "tab\there", "é"):
        with pytest.raises(ValueError):
            frame_raw(MAGIC, bad, b"")


def test_malformed_payload_in_good_frame() -> None:
    with pytest.raises(ProtocolViolation, match="malformed ping"):
        FrameDecoder(MAGIC).feed(frame_raw(MAGIC, "ping", b"\x01\x02"))


# --- garbage never raises anything but ProtocolViolation -------------------------


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(MESSAGE_TYPES)), st.binary(max_size=300))
def test_random_payloads(command: str, payload: bytes) -> None:
    try:
        msg = decode_payload(command, payload)
    except ProtocolViolation:
        return
    assert msg.command == command
    # whatever decodes re-encodes to something that decodes to the same message
    assert roundtrip(msg) == msg


@settings(max_examples=300)
@given(st.binary(max_size=300), st.booleans())
def test_random_stream(data: bytes, with_magic: bool) -> None:
    decoder = FrameDecoder(MAGIC)
    try:
        decoder.feed((MAGIC if with_magic else b"") + data)
    except ProtocolViolation:
        pass


@settings(max_examples=300)
@given(st.sampled_from(sorted(MESSAGE_TYPES)), st.binary(max_size=300))
def test_random_payloads_in_valid_frames(command: str, payload: bytes) -> None:
    try:
        FrameDecoder(MAGIC).feed(frame_raw(MAGIC, command, payload))
    except ProtocolViolation:
        pass


def test_payload_checksum_is_hash256_prefix() -> None:
    payload = encode_payload(MsgPing(99))
    assert frame(MAGIC, MsgPing(99))[20:24] == hash256(payload)[:4]
