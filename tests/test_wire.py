"""BOLT 1 messages (init, error, warning, ping, pong), the odd/even rule, and BOLT 9 features."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels.features import DEPENDENCIES, Feature, Features
from channels.tlv import Reader, TlvRecord, encode_bigsize, encode_u16
from channels.wire import (
    ALL_CHANNELS,
    MAX_MESSAGE_SIZE,
    MESSAGES,
    ErrorMessage,
    Init,
    Message,
    Ping,
    Pong,
    UnknownEvenMessage,
    UnknownMessage,
    WarningMessage,
    WireError,
    decode_message,
    encode_message,
)

CHAIN = bytes.fromhex("06226e46111a0b59caaf126043eb5bbf28c34f3a5e332a1fc7b2b73cf188910f")  # regtest genesis


def _tlv(t: int, value: bytes) -> bytes:
    return encode_bigsize(t) + encode_bigsize(len(value)) + value


def _round_trip(msg: Message) -> bytes:
    data = msg.encode()
    assert encode_message(msg) == data
    back = decode_message(data)
    assert back == msg
    assert type(back) is type(msg)
    assert back.encode() == data
    return data


# ---------------------------------------------------------------------------
# init


def test_init_layout() -> None:
    # type 16, gflen 0, flen 0, no extension
    assert Init().encode() == bytes.fromhex("0010" "0000" "0000")
    msg = Init(features=Features.of(optional=[Feature.var_onion_optin, Feature.option_static_remotekey]))
    assert msg.encode() == bytes.fromhex("0010" "0000" "0002" "2200")  # bits 9 and 13


def test_init_round_trips() -> None:
    _round_trip(Init())
    _round_trip(
        Init(
            globalfeatures=Features.of(optional=[Feature.option_data_loss_protect]),
            features=Features.of(
                required=[Feature.option_static_remotekey, Feature.payment_secret],
                optional=[Feature.basic_mpp, Feature.option_anchors_zero_fee_htlc_tx, Feature.option_zeroconf],
            ),
            networks=(CHAIN, bytes(32)),
            remote_addr=bytes([1, 127, 0, 0, 1]) + encode_u16(9735),
            unknown_tlvs=(TlvRecord(5, b"odd"), TlvRecord(0xFFFF_FFFF_FFFF, b"")),
        )
    )
    _round_trip(Init(networks=()))  # present but empty differs from absent
    assert Init(networks=()).encode() != Init().encode()


def test_init_extension_rules() -> None:
    base = Init().encode()
    # Unknown odd records: accepted, kept, re-encoded byte for byte.
    data = base + _tlv(0xC9, b"\x2a") + _tlv(0xCB, b"\x04")
    msg = decode_message(data)
    assert isinstance(msg, Init)
    assert msg.unknown_tlvs == (TlvRecord(0xC9, b"\x2a"), TlvRecord(0xCB, b"\x04"))
    assert msg.encode() == data
    # Truncated extension, unknown even record, duplicate record: the message is invalid.
    for bad, reason in [
        (base + b"\x01", "length truncated"),
        (base + _tlv(0xCA, b"\x2a"), "unknown even tlv type 202"),
        (base + _tlv(0xC9, b"\x01") + _tlv(0xC9, b"\x02"), "duplicate"),
        (base + _tlv(3, b"") + _tlv(1, CHAIN), "not strictly increasing"),
        (base + _tlv(1, CHAIN[:31]), "multiple of 32"),
    ]:
        with pytest.raises(WireError) as err:
            decode_message(bad)
        assert reason in err.value.reason
        assert err.value.msg_type == Init.TYPE
        assert "init" in str(err.value)


def test_init_networks_and_remote_addr() -> None:
    msg = decode_message(Init().encode() + _tlv(1, CHAIN + bytes(32)) + _tlv(3, b"\x01\x7f\x00\x00\x01\x26\x07"))
    assert isinstance(msg, Init)
    assert msg.networks == (CHAIN, bytes(32))
    assert msg.remote_addr == b"\x01\x7f\x00\x00\x01\x26\x07"


def test_init_features_are_combined() -> None:
    msg = Init(
        globalfeatures=Features.of(optional=[Feature.option_data_loss_protect]),
        features=Features.of(required=[Feature.option_static_remotekey]),
    )
    back = decode_message(msg.encode())
    assert isinstance(back, Init)
    assert back.all_features.has(Feature.option_data_loss_protect)
    assert back.all_features.is_required(Feature.option_static_remotekey)
    # An unknown even bit in either map must fail the connection (the caller's check).
    weird = Init(globalfeatures=Features.from_bits([100]), features=Features.from_bits([13, 101]))
    assert weird.all_features.unknown_required(Feature) == [100]


def test_init_feature_field_with_leading_zeros_decodes() -> None:
    data = bytes.fromhex("0010" "0000" "0003" "000200")  # bit 9, padded to three bytes
    msg = decode_message(data)
    assert isinstance(msg, Init)
    assert msg.features.is_optional(Feature.var_onion_optin)
    assert msg.encode() == bytes.fromhex("0010" "0000" "0002" "0200")  # we send the minimal form


# ---------------------------------------------------------------------------
# error and warning


@pytest.mark.parametrize("cls", [ErrorMessage, WarningMessage])
def test_error_and_warning_round_trips(cls: type[ErrorMessage] | type[WarningMessage]) -> None:
    data = _round_trip(cls(channel_id=bytes(range(32)), data=b"something went wrong"))
    assert data[:2] == encode_u16(cls.TYPE)
    assert data[2:34] == bytes(range(32))
    assert data[34:36] == encode_u16(20)
    _round_trip(cls())
    _round_trip(cls(data=bytes(65535 - 2 - 32 - 2)))  # the largest that fits
    _round_trip(cls(channel_id=b"\x01" * 32, data=b"x", unknown_tlvs=(TlvRecord(1, b"?"),)))
    assert cls().applies_to_all_channels and cls().channel_id == ALL_CHANNELS
    assert not cls(channel_id=b"\x01" * 32).applies_to_all_channels


def test_error_and_warning_types() -> None:
    assert (ErrorMessage.TYPE, ErrorMessage.NAME) == (17, "error")
    assert (WarningMessage.TYPE, WarningMessage.NAME) == (1, "warning")
    assert isinstance(decode_message(WarningMessage(data=b"w").encode()), WarningMessage)


def test_error_data_printing() -> None:
    assert ErrorMessage(data=b"funding tx rejected").printable_data() == "funding tx rejected"
    assert ErrorMessage(data=b"\x1b[31mred").printable_data() == "0x1b5b33316d726564"  # not verbatim
    assert ErrorMessage(data=b"abc").len == 3


def test_error_construction_checks() -> None:
    with pytest.raises(ValueError):
        ErrorMessage(channel_id=b"short")
    with pytest.raises(ValueError):
        ErrorMessage(data=bytes(70000))
    with pytest.raises(ValueError):  # fits the u16, not the message
        ErrorMessage(data=bytes(65535)).encode()


# ---------------------------------------------------------------------------
# ping and pong


def test_ping_pong_round_trips() -> None:
    data = _round_trip(Ping(num_pong_bytes=4, ignored=b"\x00\x00\x00"))
    assert data == bytes.fromhex("0012" "0004" "0003" "000000")
    assert _round_trip(Pong(ignored=bytes(4))) == bytes.fromhex("0013" "0004" "00000000")
    _round_trip(Ping())
    _round_trip(Pong())
    ping = Ping.create(10, byteslen=7)
    assert ping.byteslen == 7 and ping.ignored == bytes(7)


def test_ping_response_rule() -> None:
    pong = Ping(num_pong_bytes=65531).response()
    assert pong is not None and pong.byteslen == 65531
    assert len(pong.encode()) == MAX_MESSAGE_SIZE  # the largest pong fits exactly
    assert Ping(num_pong_bytes=65532).response() is None  # MUST ignore
    assert Ping(num_pong_bytes=65535).response() is None
    assert Ping(num_pong_bytes=0).response() == Pong()


def test_ping_construction_checks() -> None:
    with pytest.raises(ValueError):
        Ping(num_pong_bytes=65536)
    with pytest.raises(ValueError):
        Ping(num_pong_bytes=-1)
    with pytest.raises(ValueError):
        Ping(ignored=bytes(65532)).encode()  # 2 + 2 + 2 + 65532 > 65535


# ---------------------------------------------------------------------------
# framing, the odd/even rule, malformed messages


def test_unknown_odd_message_is_ignored() -> None:
    msg = decode_message(encode_u16(32769) + b"custom stuff")
    assert msg == UnknownMessage(32769, b"custom stuff")
    assert isinstance(msg, UnknownMessage) and msg.encode() == encode_u16(32769) + b"custom stuff"
    assert decode_message(encode_u16(3)) == UnknownMessage(3, b"")


@pytest.mark.parametrize("msg_type", [0, 2, 30, 144, 1000, 32768, 65534])  # types no BOLT defines
def test_unknown_even_message_is_an_error(msg_type: int) -> None:
    with pytest.raises(UnknownEvenMessage) as err:
        decode_message(encode_u16(msg_type) + b"payload")
    assert err.value.msg_type == msg_type
    assert isinstance(err.value, WireError)


@pytest.mark.parametrize("data", [b"", b"\x00"])
def test_message_without_type(data: bytes) -> None:
    with pytest.raises(WireError, match="no 2-byte type"):
        decode_message(data)


def test_oversized_message() -> None:
    with pytest.raises(WireError, match="exceeds"):
        decode_message(encode_u16(19) + bytes(MAX_MESSAGE_SIZE))


KNOWN = [
    Init(features=Features.of(optional=[Feature.var_onion_optin])),
    ErrorMessage(channel_id=b"\x07" * 32, data=b"err"),
    WarningMessage(channel_id=b"\x07" * 32, data=b"warn"),
    Ping(num_pong_bytes=8, ignored=bytes(5)),
    Pong(ignored=bytes(6)),
]


@pytest.mark.parametrize("msg", KNOWN, ids=lambda m: m.NAME)
def test_every_truncation_is_a_wire_error(msg: Message) -> None:
    data = msg.encode()
    for n in range(2, len(data)):
        with pytest.raises(WireError) as err:
            decode_message(data[:n])
        assert err.value.msg_type == msg.TYPE
        assert "shorter than its encoding" in err.value.reason


@pytest.mark.parametrize("msg", KNOWN, ids=lambda m: m.NAME)
def test_trailing_garbage_is_a_wire_error(msg: Message) -> None:
    data = msg.encode()
    # a type with no length, an unknown even record, a non-minimal type, a truncated value
    for junk in [b"\x00", b"\x02\x00", b"\xfd\x00\x01\x00", b"\x03\x05ab"]:
        with pytest.raises(WireError):
            decode_message(data + junk)
    assert decode_message(data + b"\x03\x01a") != msg  # an odd record is kept, so not equal
    assert decode_message(data + b"\x03\x01a").encode() == data + b"\x03\x01a"


def test_registry_registration() -> None:
    @dataclass(frozen=True)
    class Custom(Message):
        TYPE: ClassVar[int] = 32770
        NAME: ClassVar[str] = "custom"
        value: int = 0

        def encode_payload(self) -> bytes:
            return encode_u16(self.value)

        @classmethod
        def decode_payload(cls, payload: bytes) -> Self:
            r = Reader(payload)
            value = r.u16()
            r.finish()
            if value == 0xFFFF:
                raise ValueError("value 65535 is reserved")
            return cls(value)

    registry = MESSAGES.copy()
    assert registry.register(Custom) is Custom
    assert registry.register(Custom) is Custom  # idempotent
    assert 32770 in registry and 32770 not in MESSAGES
    assert decode_message(Custom(5).encode(), registry) == Custom(5)
    with pytest.raises(UnknownEvenMessage):
        decode_message(Custom(5).encode())  # the default registry does not know it
    with pytest.raises(WireError, match="custom: value 65535 is reserved"):
        decode_message(Custom(0xFFFF).encode(), registry)
    with pytest.raises(WireError, match="custom: longer than its encoding"):
        decode_message(Custom(1).encode() + b"x", registry)

    @dataclass(frozen=True)
    class Clash(Custom):
        NAME: ClassVar[str] = "clash"

    with pytest.raises(ValueError, match="already registered"):
        registry.register(Clash)
    assert MESSAGES.lookup(16) is Init


# ---------------------------------------------------------------------------
# Property tests

_records = st.dictionaries(
    st.integers(min_value=0, max_value=2**64 - 1).map(lambda t: t | 1), st.binary(max_size=40), max_size=4
).map(lambda d: tuple(TlvRecord(t, v) for t, v in sorted(d.items())))
_features = st.frozensets(st.integers(min_value=0, max_value=300), max_size=12).map(Features.from_bits)

_messages = st.one_of(
    st.builds(
        Init,
        globalfeatures=_features,
        features=_features,
        networks=st.none() | st.lists(st.binary(min_size=32, max_size=32), max_size=3).map(tuple),
        remote_addr=st.none() | st.binary(max_size=20),
        unknown_tlvs=_records.map(lambda rs: tuple(r for r in rs if r.type not in (1, 3))),
    ),
    st.builds(ErrorMessage, channel_id=st.binary(min_size=32, max_size=32), data=st.binary(max_size=300), unknown_tlvs=_records),
    st.builds(WarningMessage, channel_id=st.binary(min_size=32, max_size=32), data=st.binary(max_size=300), unknown_tlvs=_records),
    st.builds(Ping, num_pong_bytes=st.integers(0, 65535), ignored=st.binary(max_size=300), unknown_tlvs=_records),
    st.builds(Pong, ignored=st.binary(max_size=300), unknown_tlvs=_records),
)


@given(_messages)
def test_message_round_trip(msg: Message) -> None:
    _round_trip(msg)


@given(st.binary(max_size=80))
def test_decode_never_crashes(data: bytes) -> None:
    for prefix in (b"", encode_u16(16), encode_u16(17), encode_u16(18), encode_u16(19), encode_u16(1)):
        try:
            msg = decode_message(prefix + data)
        except WireError:
            continue
        assert msg.encode() == prefix + data or isinstance(msg, Init)  # init may re-encode features minimally


# ---------------------------------------------------------------------------
# BOLT 9 features


def test_feature_bit_numbering() -> None:
    f = Features.of(required=[Feature.option_data_loss_protect])
    assert f.to_bytes() == b"\x01"  # bit 0 is the LSB of the last byte
    f = Features.of(optional=[Feature.option_static_remotekey])
    assert f.to_bytes() == b"\x20\x00"  # bit 13
    assert Features.from_bytes(b"\x20\x00").set_bits() == [13]
    assert Features().to_bytes() == b""
    assert Features.from_bytes(b"\x00\x00\x01") == Features.from_bits([0])


def test_feature_names_and_bits() -> None:
    expected = {
        "option_data_loss_protect": 0,
        "option_upfront_shutdown_script": 4,
        "gossip_queries": 6,
        "var_onion_optin": 8,
        "gossip_queries_ex": 10,
        "option_static_remotekey": 12,
        "payment_secret": 14,
        "basic_mpp": 16,
        "option_support_large_channel": 18,
        "option_anchors_zero_fee_htlc_tx": 22,
        "option_route_blinding": 24,
        "option_shutdown_anysegwit": 26,
        "option_channel_type": 44,
        "option_scid_alias": 46,
        "option_payment_metadata": 48,
        "option_zeroconf": 50,
    }
    for name, bit in expected.items():
        assert Feature[name].required_bit == bit and Feature[name].optional_bit == bit + 1
    assert Feature["option_anchors"] is Feature.option_anchors_zero_fee_htlc_tx  # BOLT 9 renamed 22/23
    # initial_routing_sync is the lone odd bit 3.
    f = Features().set_optional("initial_routing_sync")
    assert f.set_bits() == [3]
    with pytest.raises(ValueError):
        Features().set_required(Feature.initial_routing_sync)


def test_feature_set_has_required_optional() -> None:
    f = Features().set_optional(Feature.basic_mpp)
    assert f.has(Feature.basic_mpp) and f.is_optional("basic_mpp") and not f.is_required(16)
    f = f.set_required(Feature.basic_mpp)
    assert f.set_bits() == [16]  # never both bits
    assert f.is_required(17) and not f.is_optional(Feature.basic_mpp)
    assert not f.unset(Feature.basic_mpp).has(Feature.basic_mpp)
    both = Features.from_bits([16, 17])  # a peer setting both: treat as required
    assert both.is_required(Feature.basic_mpp) and not both.is_optional(Feature.basic_mpp)
    assert str(f) == "basic_mpp(required)"
    assert "unknown_100/101(optional)" in str(Features.from_bits([101]))
    with pytest.raises(ValueError):
        f.has("no_such_feature")


def test_unknown_required() -> None:
    peer = Features.from_bits([1, 12, 17, 101, 200])
    known = [Feature.option_data_loss_protect, Feature.option_static_remotekey, Feature.basic_mpp]
    assert peer.unknown_required(known) == [200]  # 101 is odd: ignored
    assert peer.unknown_optional(known) == [101]
    assert peer.unknown_required(known + [200]) == []
    assert peer.unknown_required(Features.of(optional=known + [201])) == []  # known given as a vector
    assert Features.from_bits([12]).unknown_required([13]) == []  # either bit names the pair


def test_missing_dependencies() -> None:
    assert Features.of(optional=[Feature.basic_mpp]).missing_dependencies() == [
        (Feature.basic_mpp, Feature.payment_secret)
    ]
    assert Features.of(optional=[Feature.basic_mpp, Feature.payment_secret]).missing_dependencies() == []
    assert Features.of(required=[Feature.option_zeroconf]).missing_dependencies() == [
        (Feature.option_zeroconf, Feature.option_scid_alias)
    ]
    assert all(isinstance(dep, Feature) for deps in DEPENDENCIES.values() for dep in deps)


@given(st.binary(max_size=40))
def test_features_bytes_round_trip(data: bytes) -> None:
    f = Features.from_bytes(data)
    assert f.to_bytes() == data.lstrip(b"\x00")
    assert Features.from_bytes(f.to_bytes()) == f
    assert Features.from_bits(f.set_bits()) == f
