"""BOLT 4: Sphinx onion packets, hop payloads, failure messages and the error onion."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import vectors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from base_chain import crypto
from base_chain.crypto import PrivateKey, PublicKey
from base_chain.hashes import sha256
from htlc.failure import (
    BADONION,
    NODE,
    PERM,
    UPDATE,
    FailureCode,
    FailureDecodeError,
    FailureMessage,
    create_failure,
    decode_failure,
    wrap_failure,
)
from htlc.onion import (
    HMAC_LEN,
    HOP_PAYLOADS_LEN,
    KEY_AMMAG,
    KEY_MU,
    KEY_PAD,
    KEY_RHO,
    KEY_UM,
    ONION_PACKET_LEN,
    HopPayload,
    HopPayloadType,
    OnionError,
    PaymentData,
    ProcessedOnion,
    blinded_node_privkey,
    create_onion,
    generate_cipher_stream,
    generate_key,
    process_onion,
    route_shared_secrets,
)

BACKENDS = crypto.available_backends()


@contextmanager
def using(name: str) -> Iterator[None]:
    """Switch the crypto backend for the duration, then restore the previous one."""
    previous = crypto.get_backend().name
    crypto.set_backend(name)
    try:
        yield
    finally:
        crypto.set_backend(previous)


def h(s: str) -> bytes:
    return bytes.fromhex(s)


def read_bigsize(data: bytes) -> tuple[int, int]:
    """(value, its encoded size): test-side reader, to strip the vectors' length prefixes."""
    first = data[0]
    if first < 0xFD:
        return first, 1
    width = {0xFD: 2, 0xFE: 4, 0xFF: 8}[first]
    return int.from_bytes(data[1 : 1 + width], "big"), 1 + width


def strip_length(prefixed: bytes) -> bytes:
    """The vectors' hop payloads carry their bigsize length; create_onion takes the bare payload."""
    length, size = read_bigsize(prefixed)
    assert len(prefixed) == size + length
    return prefixed[size:]


def tlv(t: int, value: bytes) -> bytes:
    def bigsize(n: int) -> bytes:
        if n < 0xFD:
            return bytes([n])
        if n <= 0xFFFF:
            return b"\xfd" + n.to_bytes(2, "big")
        if n <= 0xFFFFFFFF:
            return b"\xfe" + n.to_bytes(4, "big")
        return b"\xff" + n.to_bytes(8, "big")

    return bigsize(t) + bigsize(len(value)) + value


# ---------------------------------------------------------------------------
# onion-test.json: the 5-hop packet with variable-length payloads
# ---------------------------------------------------------------------------

ONION = vectors.load_json("bolts", "bolt04", "onion-test.json")


def _onion_vector_hops() -> list[tuple[bytes, bytes]]:
    return [(h(hop["pubkey"]), strip_length(h(hop["payload"]))) for hop in ONION["generate"]["hops"]]


def check_onion_vector() -> None:
    gen = ONION["generate"]
    session_key, associated_data = h(gen["session_key"]), h(gen["associated_data"])
    hops = _onion_vector_hops()
    onion = create_onion(session_key, hops, associated_data)
    assert len(onion) == ONION_PACKET_LEN
    assert onion.hex() == ONION["onion"]

    packet = h(ONION["onion"])
    assert len(ONION["decode"]) == len(hops)
    for i, privkey in enumerate(ONION["decode"]):
        assert PrivateKey(h(privkey)).public_key().to_bytes() == hops[i][0]
        result = process_onion(h(privkey), packet, associated_data)
        assert result.payload == hops[i][1], f"hop {i}"
        if i < len(hops) - 1:
            assert not result.is_final and result.next_onion is not None
            assert len(result.next_onion) == ONION_PACKET_LEN
            packet = result.next_onion
        else:
            assert result.is_final and result.next_onion is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_onion_vector(backend: str) -> None:
    with using(backend):
        check_onion_vector()


def test_onion_vector_payloads_decode() -> None:
    gen = ONION["generate"]
    packet, ad = h(ONION["onion"]), h(gen["associated_data"])
    payloads = []
    for privkey in ONION["decode"]:
        result = process_onion(h(privkey), packet, ad)
        payloads.append(result.decode_payload())
        packet = result.next_onion or b""
    # Every payload re-encodes to the same bytes (unknown odd records kept).
    for payload, (_, raw) in zip(payloads, _onion_vector_hops()):
        assert payload.encode() == raw
    for p in payloads[:-1]:
        assert p.short_channel_id is not None and p.amt_to_forward is not None and p.outgoing_cltv_value is not None
        assert p.payment_data is None
    assert [p.short_channel_id for p in payloads[:-1]] == [1, 2, 3, 4]
    # hop 1 carries an unknown odd record (type 513), which a reader ignores.
    assert [t for t, _ in payloads[1].custom_records] == [513]
    final = payloads[-1]
    assert final.short_channel_id is None
    assert final.payment_data is not None and len(final.payment_data.payment_secret) == 32
    assert final.payment_data.total_msat == final.amt_to_forward
    assert [t for t, _ in final.custom_records] == [301]


def test_onion_vector_shared_secrets_match_error_vector() -> None:
    """The two JSON vectors share keys: the hop secrets of the forward onion are the error vector's."""
    errors = vectors.load_json("bolts", "bolt04", "onion-error-test.json")["generate"]
    secrets = route_shared_secrets(h(ONION["generate"]["session_key"]), [pk for pk, _ in _onion_vector_hops()])
    assert [s.hex() for s in secrets] == [hop["hop_shared_secret"] for hop in errors["hops"]]
    # And a hop derives the same secret from its side.
    result = process_onion(h(ONION["decode"][0]), h(ONION["onion"]), h(ONION["generate"]["associated_data"]))
    assert result.shared_secret == secrets[0]


# ---------------------------------------------------------------------------
# onion-error-test.json: temporary_node_failure from hops[4]
# ---------------------------------------------------------------------------

ERRORS = vectors.load_json("bolts", "bolt04", "onion-error-test.json")


def check_error_vector() -> None:
    gen = ERRORS["generate"]
    hops = gen["hops"]
    session_key = h(gen["session_key"])
    pubkeys = [h(hop["pubkey"]) for hop in hops]
    secrets = route_shared_secrets(session_key, pubkeys)
    for i, hop in enumerate(hops):
        assert hop["version"] == 0
        assert secrets[i].hex() == hop["hop_shared_secret"], f"hop {i}"
        assert generate_key(KEY_AMMAG, secrets[i]).hex() == hop["ammag_key"], f"hop {i}"
        if "um_key" in hop:
            assert generate_key(KEY_UM, secrets[i]).hex() == hop["um_key"]

    erring = len(hops) - 1
    failure = FailureMessage.decode(h(gen["failure_message"]))
    assert failure.code == FailureCode.TEMPORARY_NODE_FAILURE and failure.name == "temporary_node_failure"
    assert failure.encode() == h(gen["failure_message"])

    raw = create_failure(secrets[erring], failure)
    assert raw[HMAC_LEN:].hex() == hops[erring]["payload"]  # the payload omits the HMAC
    packet = raw
    for i in reversed(range(len(hops))):
        packet = wrap_failure(secrets[i], packet)
    assert packet.hex() == ERRORS["errorpacket"]

    index, decoded = decode_failure(session_key, pubkeys, h(ERRORS["errorpacket"]))
    assert index == erring
    assert decoded == failure


@pytest.mark.parametrize("backend", BACKENDS)
def test_error_vector(backend: str) -> None:
    with using(backend):
        check_error_vector()


# ---------------------------------------------------------------------------
# bolt04-vectors.md: the spec's trace (incorrect_or_unknown_payment_details
# with a TLV extension, padded to 1024), every intermediate value
# ---------------------------------------------------------------------------


def _md_section() -> str:
    text = vectors.text("bolts", "bolt04-vectors.md")
    start = text.index("## Returning Errors")
    end = text.index("## Returning success", start)
    return text[start:end]


def _md_values(section: str) -> list[tuple[str, str]]:
    """Every `name = hex` / `name: hex` line with a value of at least 32 bytes, in order."""
    out = []
    for m in re.finditer(r"^[ \t]*([A-Za-z_][\w \[\]]*?)\s*[=:]\s*(?:0x)?([0-9a-f]{64,})[ \t]*$", section, re.M):
        out.append((m.group(1).strip(), m.group(2)))
    return out


def test_error_trace_from_spec_markdown() -> None:
    section = _md_section()
    values = _md_values(section)
    pubkeys = [h(v) for k, v in values if re.fullmatch(r"pubkey\[\d+\]", k)]
    session_key = h(next(v for k, v in values if k == "sessionkey"))
    erring = int(re.search(r"failure_source\s*=\s*node (\d+)", section).group(1))  # type: ignore[union-attr]
    assert len(pubkeys) == 5 and erring == 4
    secrets = route_shared_secrets(session_key, pubkeys)

    # The failure message the trace describes, rebuilt from its parameters.
    htlc_msat = int(re.search(r"htlc_msat\s*=\s*(\d+)", section).group(1))  # type: ignore[union-attr]
    height = int(re.search(r"height\s*=\s*(\d+)", section).group(1))  # type: ignore[union-attr]
    tlv_type = int(re.search(r"type\s*=\s*(\d+)", section).group(1))  # type: ignore[union-attr]
    fill = re.search(r"value\s*=\s*\[(\d+),.*\((\d+) bytes\)", section)
    assert fill is not None
    tlv_value = bytes([int(fill.group(1))]) * int(fill.group(2))
    failure = FailureMessage(
        FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, htlc_msat=htlc_msat, height=height, extra=tlv(tlv_type, tlv_value)
    )

    trace = [(k, v) for k, v in values if not re.fullmatch(r"pubkey\[\d+\]|sessionkey", k)]
    trace = [(k, v) for k, v in trace if not k.startswith("attribution data")]  # attribution_data: not implemented
    it = iter(trace)

    def take(name: str) -> bytes:
        key, value = next(it)
        assert key == name, (key, name)
        return h(value)

    # Creating the error message at the erring node.
    encoded = take("encoded_failure_message")  # failuremsg || pad_len || pad, as the trace prints it
    assert take("shared_secret") == secrets[erring]
    payload = take("payload")  # failure_len || the above
    assert payload[2:] == encoded
    failure_len = int.from_bytes(payload[:2], "big")
    assert payload[2 : 2 + failure_len] == failure.encode()
    decoded = FailureMessage.decode(payload[2 : 2 + failure_len])
    assert decoded == failure and decoded.tlv_records() == [(tlv_type, tlv_value)]
    assert take("um_key") == generate_key(KEY_UM, secrets[erring])
    pad_to = len(payload) - 4  # failure_len + pad_len of this trace
    raw = create_failure(secrets[erring], failure, pad_to=pad_to)
    assert take("raw_error_packet") == raw
    assert raw[HMAC_LEN:] == payload

    # Obfuscation at the erring node, then at each hop back to the origin.
    packet = raw
    hops_seen = []
    for node in reversed(range(len(pubkeys))):
        secret = take("shared_secret")
        assert secret == secrets[node]
        ammag = take("ammag_key")
        assert ammag == generate_key(KEY_AMMAG, secret)
        stream = take("stream")
        assert stream == generate_cipher_stream(ammag, len(stream))
        packet = wrap_failure(secret, packet)
        assert take(f"error packet for node {node}") == packet
        hops_seen.append(node)
    assert hops_seen == [4, 3, 2, 1, 0]
    assert next(it, None) is None

    index, got = decode_failure(session_key, pubkeys, packet)
    assert (index, got) == (erring, failure)


def test_markdown_uses_the_json_keys() -> None:
    """bolt04-vectors.md and onion-error-test.json describe the same route and session key."""
    values = dict(_md_values(_md_section()))
    gen = ERRORS["generate"]
    assert values["sessionkey"] == gen["session_key"]
    assert [values[f"pubkey[{i}]"] for i in range(5)] == [hop["pubkey"] for hop in gen["hops"]]


# ---------------------------------------------------------------------------
# blinded-payment-onion-test.json / route-blinding-test.json
# ---------------------------------------------------------------------------

BLINDED = vectors.load_json("bolts", "bolt04", "blinded-payment-onion-test.json")


def test_blinded_payment_onion() -> None:
    gen = BLINDED["generate"]
    ad = h(gen["associated_data"])
    route = gen["full_route"]["hops"]
    hops = [(h(hop["pubkey"]), strip_length(h(hop["payload"]))) for hop in route]
    onion = create_onion(h(gen["session_key"]), hops, ad)
    assert onion.hex() == gen["onion"]

    decrypt = BLINDED["decrypt"]["hops"]
    assert decrypt[0]["onion"] == gen["onion"]
    intro = next(i for i, hop in enumerate(route) if "current_path_key" in hop["tlvs"])
    path_key: bytes | None = None
    for i, hop in enumerate(decrypt):
        result = process_onion(h(hop["node_privkey"]), h(hop["onion"]), ad, path_key=path_key)
        assert result.payload == hops[i][1], hop["alias"]
        payload = result.decode_payload(path_key_in_update=path_key is not None)
        tlvs = route[i]["tlvs"]
        if i < len(decrypt) - 1:
            assert result.next_onion is not None and result.next_onion.hex() == decrypt[i + 1]["onion"], hop["alias"]
        else:
            assert result.is_final
        if "encrypted_recipient_data" in tlvs:
            assert payload.encrypted_recipient_data is not None
            assert payload.encrypted_recipient_data.hex() == gen["blinded_route"]["hops"][i - intro]["encrypted_data"]
        if "current_path_key" in tlvs:
            assert payload.current_path_key is not None and payload.current_path_key.hex() == tlvs["current_path_key"]
            assert tlvs["current_path_key"] == gen["blinded_route"]["first_path_key"]
        for name in ("amt_to_forward", "outgoing_cltv_value", "total_amount_msat"):
            assert getattr(payload, name) == tlvs.get(name), (hop["alias"], name)
        if "outgoing_channel_id" in tlvs:
            block, tx, out = (int(x) for x in tlvs["outgoing_channel_id"].split("x"))
            assert payload.short_channel_id == block << 40 | tx << 16 | out
        assert payload.encode() == hops[i][1]
        # Inside the blinded route the next node is told the path key by update_add_htlc.
        path_key = h(hop["next_path_key"]) if "next_path_key" in hop else None


def test_route_blinding_unblind_privkeys() -> None:
    """Parse-only use of route-blinding-test.json: the blinded private key each node derives."""
    data = vectors.load_json("bolts", "bolt04", "route-blinding-test.json")
    route = {hop["blinded_node_id"] for hop in data["route"]["hops"]}
    unblind = data["unblind"]["hops"]
    assert unblind
    for hop in unblind:
        blinded = blinded_node_privkey(h(hop["node_privkey"]), h(hop["path_key"]))
        assert blinded.to_bytes().hex() == hop["blinded_privkey"], hop["alias"]
        assert blinded.public_key().to_bytes().hex() in route


# ---------------------------------------------------------------------------
# malformed onions: the BADONION failures
# ---------------------------------------------------------------------------

ALICE = PrivateKey(h(ONION["decode"][0]))
AD = h(ONION["generate"]["associated_data"])
GOOD = h(ONION["onion"])


def expect_onion_error(onion: bytes, code: FailureCode, *, key: PrivateKey = ALICE, ad: bytes = AD) -> OnionError:
    with pytest.raises(OnionError) as info:
        process_onion(key, onion, ad)
    err = info.value
    assert err.failure.code == code, str(err)
    return err


def test_bad_version() -> None:
    bad = b"\x01" + GOOD[1:]
    err = expect_onion_error(bad, FailureCode.INVALID_ONION_VERSION)
    assert err.is_malformed and err.failure.is_badonion and err.failure.is_permanent
    assert err.failure.sha256_of_onion == sha256(bad)
    assert err.failure.code == BADONION | PERM | 4
    assert "version" in err.reason


def _x_not_on_curve() -> bytes:
    x = 5
    while True:
        candidate = b"\x02" + x.to_bytes(32, "big")
        try:
            PublicKey.from_bytes(candidate)
        except ValueError:
            return candidate
        x += 1


@pytest.mark.parametrize(
    "key",
    [
        _x_not_on_curve(),
        b"\x04" + GOOD[2:34],  # an uncompressed prefix on 33 bytes
        bytes(33),
        b"\x02" + b"\xff" * 32,  # x >= p
    ],
)
def test_bad_key(key: bytes) -> None:
    bad = GOOD[:1] + key + GOOD[34:]
    err = expect_onion_error(bad, FailureCode.INVALID_ONION_KEY)
    assert err.is_malformed and err.failure.sha256_of_onion == sha256(bad)
    assert err.shared_secret is None


@pytest.mark.parametrize("position", [34, 700, ONION_PACKET_LEN - 33, ONION_PACKET_LEN - 1])
def test_tampered_hmac(position: int) -> None:
    bad = bytearray(GOOD)
    bad[position] ^= 0x01
    err = expect_onion_error(bytes(bad), FailureCode.INVALID_ONION_HMAC)
    assert err.is_malformed and err.failure.sha256_of_onion == sha256(bytes(bad))
    assert err.failure.code == 0xC005


def test_wrong_associated_data_or_node() -> None:
    expect_onion_error(GOOD, FailureCode.INVALID_ONION_HMAC, ad=bytes(32))
    expect_onion_error(GOOD, FailureCode.INVALID_ONION_HMAC, key=PrivateKey(h(ONION["decode"][1])))


def test_wrong_length_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="1366"):
        process_onion(ALICE, GOOD[:-1], AD)


def test_bad_path_key() -> None:
    with pytest.raises(OnionError) as info:
        process_onion(ALICE, GOOD, AD, path_key=_x_not_on_curve())
    assert info.value.failure.code == FailureCode.INVALID_ONION_BLINDING and info.value.is_malformed
    # A valid but wrong path key makes the node derive the wrong secret: the HMAC fails.
    with pytest.raises(OnionError) as info2:
        process_onion(ALICE, GOOD, AD, path_key=PrivateKey(7).public_key())
    assert info2.value.failure.code == FailureCode.INVALID_ONION_HMAC


def _single_hop_onion(node: PublicKey, frame: bytes, ad: bytes) -> bytes:
    """A one-hop onion around an arbitrary first frame, built from the public primitives."""
    session = PrivateKey(0x1234)
    secret = route_shared_secrets(session, [node])[0]
    mix = generate_cipher_stream(generate_key(KEY_PAD, session.to_bytes()), HOP_PAYLOADS_LEN)
    mix = (frame + mix)[:HOP_PAYLOADS_LEN]
    stream = generate_cipher_stream(generate_key(KEY_RHO, secret), HOP_PAYLOADS_LEN)
    mix = bytes(a ^ b for a, b in zip(mix, stream))
    import hashlib
    import hmac

    mac = hmac.new(generate_key(KEY_MU, secret), mix + ad, hashlib.sha256).digest()
    return b"\x00" + session.public_key().to_bytes() + mix + mac


@pytest.mark.parametrize(
    "frame",
    [
        b"\x00" + bytes(32),  # length 0: the legacy format
        b"\x01\x02" + bytes(32),  # length 1: reserved
        b"\xfd\x00\x10",  # a non-minimal bigsize
        b"\xfd\x05\x00",  # 1280 bytes + 32-byte hmac overrun the 1300
    ],
)
def test_authentic_but_unframeable_payload(frame: bytes) -> None:
    onion = _single_hop_onion(ALICE.public_key(), frame, AD)
    with pytest.raises(OnionError) as info:
        process_onion(ALICE, onion, AD)
    err = info.value
    assert err.failure.code == FailureCode.INVALID_ONION_PAYLOAD and not err.is_malformed
    assert err.shared_secret == route_shared_secrets(PrivateKey(0x1234), [ALICE.public_key()])[0]


def test_create_onion_rejects_bad_routes() -> None:
    pk = ALICE.public_key()
    with pytest.raises(ValueError):
        create_onion(PrivateKey(3), [], AD)
    with pytest.raises(ValueError, match="reserved"):
        create_onion(PrivateKey(3), [(pk, b"\x01")], AD)
    with pytest.raises(ValueError, match="1300"):
        create_onion(PrivateKey(3), [(pk, bytes(400))] * 4, AD)
    # Exactly full is fine: 1300 = 3 + 1265 + 32.
    onion = create_onion(PrivateKey(3), [(pk, bytes(1265))], AD)
    assert process_onion(ALICE, onion, AD).payload == bytes(1265)


# ---------------------------------------------------------------------------
# hop payloads: encode/decode and the reader rules
# ---------------------------------------------------------------------------

SECRET = bytes(range(32))
T = HopPayloadType


def forward_payload() -> bytes:
    return HopPayload(amt_to_forward=1000, outgoing_cltv_value=500, short_channel_id=42).encode()


def payload_error(data: bytes, **kw: Any) -> FailureMessage:
    with pytest.raises(OnionError) as info:
        HopPayload.decode(data, **kw)
    failure = info.value.failure
    assert failure.code == FailureCode.INVALID_ONION_PAYLOAD
    return failure


def test_payload_encoding_is_the_tlv_stream() -> None:
    data = forward_payload()
    assert data == tlv(2, (1000).to_bytes(2, "big")) + tlv(4, (500).to_bytes(2, "big")) + tlv(6, (42).to_bytes(8, "big"))
    assert HopPayload.decode(data, is_final=False) == HopPayload(amt_to_forward=1000, outgoing_cltv_value=500, short_channel_id=42)
    assert HopPayload(amt_to_forward=0, outgoing_cltv_value=0).encode() == tlv(2, b"") + tlv(4, b"")


def test_keysend_and_custom_records() -> None:
    preimage = bytes(range(100, 132))
    p = HopPayload(
        amt_to_forward=5,
        outgoing_cltv_value=6,
        payment_data=PaymentData(SECRET, 5),
        payment_metadata=b"meta",
        keysend_preimage=preimage,
        custom_records=((65537, b"x"), (65539, b"")),
    )
    data = p.encode()
    assert data.endswith(tlv(5482373484, preimage))
    assert b"\xff\x00\x00\x00\x01\x46\xc6\x61\x6c\x20" + preimage in data
    assert HopPayload.decode(data, is_final=True) == p
    with pytest.raises(ValueError):
        HopPayload(custom_records=((2, b""),)).encode()
    with pytest.raises(ValueError):
        HopPayload(custom_records=((65537, b""), (65537, b""))).encode()


def test_missing_required_fields() -> None:
    only_cltv = tlv(4, b"\x01\xf4") + tlv(6, bytes(8))
    f = payload_error(only_cltv, is_final=False)
    assert (f.tlv_type, f.offset) == (2, 0)  # where amt_to_forward belongs
    only_amt = tlv(2, b"\x03\xe8") + tlv(6, bytes(8))
    f = payload_error(only_amt, is_final=False)
    assert (f.tlv_type, f.offset) == (4, 4)
    no_scid = tlv(2, b"\x03\xe8") + tlv(4, b"\x01\xf4") + tlv(8, SECRET)
    f = payload_error(no_scid, is_final=False)
    assert (f.tlv_type, f.offset) == (6, 8)
    # Without scid it is a fine final payload.
    assert HopPayload.decode(no_scid, is_final=True).payment_data == PaymentData(SECRET, 0)


def test_fields_in_the_wrong_place() -> None:
    f = payload_error(forward_payload(), is_final=True)
    assert (f.tlv_type, f.offset) == (6, 8)
    with_payment_data = forward_payload() + tlv(8, SECRET + b"\x01")
    f = payload_error(with_payment_data, is_final=False)
    assert (f.tlv_type, f.offset) == (8, len(forward_payload()))
    path_key = PrivateKey(9).public_key().to_bytes()
    f = payload_error(forward_payload() + tlv(12, path_key), is_final=False)
    assert f.tlv_type == 12
    f = payload_error(forward_payload(), is_final=False, path_key_in_update=True)
    assert f.tlv_type == 10


def test_tlv_stream_errors() -> None:
    base = forward_payload()
    f = payload_error(base + tlv(20, b"\x00"), is_final=False)  # unknown even type
    assert (f.tlv_type, f.offset) == (20, len(base))
    assert HopPayload.decode(base + tlv(21, b"\x00"), is_final=False).custom_records == ((21, b"\x00"),)
    f = payload_error(tlv(4, b"\x01") + tlv(2, b"\x01") + tlv(6, bytes(8)), is_final=False)
    assert (f.tlv_type, f.offset) == (2, 3)  # out of order
    f = payload_error(tlv(2, b"\x01") + tlv(2, b"\x02"), is_final=True)
    assert (f.tlv_type, f.offset) == (2, 3)  # duplicate
    f = payload_error(tlv(2, b"\x00\x01") + tlv(4, b"\x01"), is_final=True)
    assert (f.tlv_type, f.offset) == (2, 0)  # tu64 not minimal
    f = payload_error(tlv(2, bytes([1] * 9)) + tlv(4, b"\x01"), is_final=True)
    assert f.tlv_type == 2  # tu64 longer than 8
    f = payload_error(tlv(2, b"\x01") + tlv(4, b"\x01\x02\x03\x04\x05"), is_final=True)
    assert (f.tlv_type, f.offset) == (4, 3)  # tu32 longer than 4
    f = payload_error(tlv(2, b"\x01") + b"\x04\x05\x01", is_final=True)
    assert (f.tlv_type, f.offset) == (4, 3)  # truncated value
    f = payload_error(tlv(2, b"\x01") + tlv(4, b"\x01") + tlv(6, bytes(7)), is_final=False)
    assert (f.tlv_type, f.offset) == (6, 6)  # short_channel_id of 7 bytes
    f = payload_error(tlv(2, b"\x01") + tlv(4, b"\x01") + tlv(8, SECRET[:31]), is_final=True)
    assert f.tlv_type == 8
    f = payload_error(tlv(2, b"\x01") + b"\xfd\x00\x04\x01\x00", is_final=True)
    assert f.offset == 3  # non-minimal bigsize type


def test_blinded_reader_rules() -> None:
    path_key = PrivateKey(11).public_key().to_bytes()
    intro = tlv(10, b"opaque") + tlv(12, path_key)
    assert HopPayload.decode(intro, is_final=False).current_path_key == path_key
    inner = tlv(10, b"opaque")
    assert HopPayload.decode(inner, is_final=False, path_key_in_update=True).encrypted_recipient_data == b"opaque"
    f = payload_error(inner, is_final=False)
    assert (f.tlv_type, f.offset) == (12, len(inner))
    f = payload_error(intro, is_final=False, path_key_in_update=True)
    assert f.tlv_type == 12
    f = payload_error(tlv(2, b"\x01") + inner, is_final=False, path_key_in_update=True)
    assert (f.tlv_type, f.offset) == (2, 0)
    final = tlv(2, b"\x01") + tlv(4, b"\x01") + inner + tlv(18, b"\x02")
    assert HopPayload.decode(final, is_final=True, path_key_in_update=True).total_amount_msat == 2
    f = payload_error(final[: -len(tlv(18, b"\x02"))], is_final=True, path_key_in_update=True)
    assert f.tlv_type == 18
    f = payload_error(tlv(10, b"x") + tlv(12, b"\x02" + bytes(32)), is_final=False)
    assert (f.tlv_type, f.offset) == (12, 3)  # not a point


def test_processed_onion_payload_errors_carry_the_secret() -> None:
    result = process_onion(ALICE, GOOD, AD)
    with pytest.raises(OnionError) as info:
        ProcessedOnion(result.payload, result.shared_secret, None).decode_payload()  # as if it were final
    assert info.value.shared_secret == result.shared_secret
    assert info.value.failure.tlv_type == 6


# ---------------------------------------------------------------------------
# failure messages
# ---------------------------------------------------------------------------

# BOLT 4 "Failure Messages": name -> (code, data fields in wire order).
SPEC_FAILURES: dict[str, tuple[int, tuple[str, ...]]] = {
    "invalid_realm": (PERM | 1, ()),
    "temporary_node_failure": (NODE | 2, ()),
    "permanent_node_failure": (PERM | NODE | 2, ()),
    "required_node_feature_missing": (PERM | NODE | 3, ()),
    "invalid_onion_version": (BADONION | PERM | 4, ("sha256_of_onion",)),
    "invalid_onion_hmac": (BADONION | PERM | 5, ("sha256_of_onion",)),
    "invalid_onion_key": (BADONION | PERM | 6, ("sha256_of_onion",)),
    "temporary_channel_failure": (UPDATE | 7, ("channel_update",)),
    "permanent_channel_failure": (PERM | 8, ()),
    "required_channel_feature_missing": (PERM | 9, ()),
    "unknown_next_peer": (PERM | 10, ()),
    "amount_below_minimum": (UPDATE | 11, ("htlc_msat", "channel_update")),
    "fee_insufficient": (UPDATE | 12, ("htlc_msat", "channel_update")),
    "incorrect_cltv_expiry": (UPDATE | 13, ("cltv_expiry", "channel_update")),
    "expiry_too_soon": (UPDATE | 14, ("channel_update",)),
    "incorrect_or_unknown_payment_details": (PERM | 15, ("htlc_msat", "height")),
    "final_incorrect_cltv_expiry": (18, ("cltv_expiry",)),
    "final_incorrect_htlc_amount": (19, ("incoming_htlc_amt",)),
    "channel_disabled": (UPDATE | 20, ("disabled_flags", "channel_update")),
    "expiry_too_far": (21, ()),
    "invalid_onion_payload": (PERM | 22, ("tlv_type", "offset")),
    "mpp_timeout": (23, ()),
    "invalid_onion_blinding": (BADONION | PERM | 24, ("sha256_of_onion",)),
}

FIELD_VALUES: dict[str, Any] = {
    "sha256_of_onion": st.binary(min_size=32, max_size=32),
    "htlc_msat": st.integers(0, 2**64 - 1),
    "cltv_expiry": st.integers(0, 2**32 - 1),
    "height": st.integers(0, 2**32 - 1),
    "incoming_htlc_amt": st.integers(0, 2**64 - 1),
    "disabled_flags": st.integers(0, 0xFFFF),
    "channel_update": st.binary(max_size=300),
    "tlv_type": st.integers(0, 2**64 - 1),
    "offset": st.integers(0, 0xFFFF),
}


def test_every_failure_code() -> None:
    assert {c.bolt_name for c in FailureCode} == set(SPEC_FAILURES)
    for name, (code, _) in SPEC_FAILURES.items():
        assert FailureCode[name.upper()] == code
        assert FailureMessage(code).name == name
    assert FailureMessage(0x1234).name == "unknown_0x1234"


@st.composite
def failure_messages(draw: st.DrawFn) -> FailureMessage:
    name = draw(st.sampled_from(sorted(SPEC_FAILURES)))
    code, names = SPEC_FAILURES[name]
    values = {n: draw(FIELD_VALUES[n]) for n in names}
    extra = draw(st.one_of(st.just(b""), st.builds(tlv, st.integers(1, 2**20).map(lambda t: t | 1), st.binary(max_size=40))))
    return FailureMessage(code, extra=extra, **values)


@given(failure_messages())
def test_failure_message_round_trip(failure: FailureMessage) -> None:
    data = failure.encode()
    assert FailureMessage.decode(data) == failure
    assert data[:2] == failure.code.to_bytes(2, "big")
    if failure.extra:
        assert len(failure.tlv_records()) == 1


def test_failure_field_encodings() -> None:
    f = FailureMessage(FailureCode.AMOUNT_BELOW_MINIMUM, htlc_msat=1000, channel_update=b"\xab\xcd")
    assert f.encode() == b"\x10\x0b" + (1000).to_bytes(8, "big") + b"\x00\x02\xab\xcd"
    f = FailureMessage(FailureCode.INVALID_ONION_PAYLOAD, tlv_type=5482373484, offset=7)
    assert f.encode() == b"\x40\x16" + b"\xff" + (5482373484).to_bytes(8, "big") + b"\x00\x07"
    f = FailureMessage(FailureCode.CHANNEL_DISABLED, disabled_flags=0, channel_update=b"")
    assert f.encode() == b"\x10\x14\x00\x00\x00\x00"
    assert str(FailureMessage(FailureCode.INCORRECT_CLTV_EXPIRY, cltv_expiry=9, channel_update=b"")) == (
        "incorrect_cltv_expiry(cltv_expiry=9, channel_update=)"
    )


def test_failure_encode_rejects_wrong_fields() -> None:
    with pytest.raises(ValueError, match="needs channel_update"):
        FailureMessage(FailureCode.TEMPORARY_CHANNEL_FAILURE).encode()
    with pytest.raises(ValueError, match="no field htlc_msat"):
        FailureMessage(FailureCode.MPP_TIMEOUT, htlc_msat=1).encode()
    with pytest.raises(ValueError):
        FailureMessage(FailureCode.INVALID_ONION_HMAC, sha256_of_onion=b"short").encode()
    with pytest.raises(ValueError):
        FailureMessage(FailureCode.FINAL_INCORRECT_CLTV_EXPIRY, cltv_expiry=2**32).encode()
    with pytest.raises(ValueError):
        FailureMessage(FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS, height=5).encode()


def test_failure_decode_errors_and_legacy_forms() -> None:
    with pytest.raises(FailureDecodeError):
        FailureMessage.decode(b"\x40")
    with pytest.raises(FailureDecodeError, match="sha256_of_onion"):
        FailureMessage.decode(b"\xc0\x05" + bytes(31))
    with pytest.raises(FailureDecodeError, match="channel_update"):
        FailureMessage.decode(b"\x10\x07\x00\x05abc")
    # incorrect_or_unknown_payment_details as older nodes send it.
    assert FailureMessage.decode(b"\x40\x0f") == FailureMessage(FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS)
    old = FailureMessage.decode(b"\x40\x0f" + (77).to_bytes(8, "big"))
    assert old.htlc_msat == 77 and old.height is None
    assert old.encode() == b"\x40\x0f" + (77).to_bytes(8, "big")
    # An unknown code keeps its data; extra bytes after known fields are kept too.
    unknown = FailureMessage.decode(b"\x12\x34data")
    assert unknown.code == 0x1234 and unknown.extra == b"data" and unknown.encode() == b"\x12\x34data"
    with pytest.raises(FailureDecodeError):
        FailureMessage.decode(b"\x20\x02\x05").tlv_records()


def test_from_malformed() -> None:
    f = FailureMessage.from_malformed(0xC005, bytes(32))
    assert f == FailureMessage(FailureCode.INVALID_ONION_HMAC, sha256_of_onion=bytes(32))
    with pytest.raises(ValueError):
        FailureMessage.from_malformed(FailureCode.TEMPORARY_NODE_FAILURE, bytes(32))


# ---------------------------------------------------------------------------
# the error onion
# ---------------------------------------------------------------------------

ERR_SESSION = h(ERRORS["generate"]["session_key"])
ERR_PUBKEYS = [h(hop["pubkey"]) for hop in ERRORS["generate"]["hops"]]


def test_create_failure_padding() -> None:
    secret = bytes(32)
    assert len(create_failure(secret, FailureMessage(FailureCode.MPP_TIMEOUT))) == 32 + 2 + 2 + 2 + 254
    big = FailureMessage(FailureCode.TEMPORARY_CHANNEL_FAILURE, channel_update=bytes(300))
    packet = create_failure(secret, big)
    assert len(packet) == 32 + 2 + len(big.encode()) + 2  # over 256: no pad
    with pytest.raises(ValueError):
        create_failure(secret, big, pad_to=100)
    with pytest.raises(ValueError):
        create_failure(bytes(31), big)


def test_decode_failure_errors() -> None:
    secrets = route_shared_secrets(ERR_SESSION, ERR_PUBKEYS)
    packet = wrap_failure(secrets[0], create_failure(secrets[0], FailureMessage(FailureCode.UNKNOWN_NEXT_PEER)))
    assert decode_failure(ERR_SESSION, ERR_PUBKEYS, packet) == (0, FailureMessage(FailureCode.UNKNOWN_NEXT_PEER))
    with pytest.raises(FailureDecodeError) as info:
        decode_failure(PrivateKey(99), ERR_PUBKEYS, packet)
    assert info.value.hop_index is None
    with pytest.raises(FailureDecodeError):
        decode_failure(ERR_SESSION, ERR_PUBKEYS, packet[:20])
    tampered = bytearray(packet)
    tampered[100] ^= 1
    with pytest.raises(FailureDecodeError):
        decode_failure(ERR_SESSION, ERR_PUBKEYS, bytes(tampered))

    # Authentic (the HMAC matches hop 2) but the failuremsg inside is broken: blame hop 2.
    import hashlib
    import hmac

    for body in (b"\x01\x00" + b"\x20\x02", b"\x00\x03" + b"\x10\x07\x00" + b"\x00\x00"):
        mac = hmac.new(generate_key(KEY_UM, secrets[2]), body, hashlib.sha256).digest()
        packet = wrap_failure(secrets[2], mac + body)
        for i in reversed(range(2)):
            packet = wrap_failure(secrets[i], packet)
        with pytest.raises(FailureDecodeError) as info:
            decode_failure(ERR_SESSION, ERR_PUBKEYS, packet)
        assert info.value.hop_index == 2


def test_malformed_htlc_becomes_an_error_onion_upstream() -> None:
    """Hop 2 answers update_fail_malformed_htlc; hop 1 wraps it into an error onion for the origin."""
    gen = ONION["generate"]
    packet = h(ONION["onion"])
    results = []
    for privkey in ONION["decode"][:2]:
        results.append(process_onion(h(privkey), packet, h(gen["associated_data"])))
        packet = results[-1].next_onion or b""
    bad = bytearray(packet)
    bad[500] ^= 0xFF
    with pytest.raises(OnionError) as info:
        process_onion(h(ONION["decode"][2]), bytes(bad), h(gen["associated_data"]))
    err = info.value
    assert err.is_malformed
    assert err.failure.sha256_of_onion is not None
    failure = FailureMessage.from_malformed(err.failure.code, err.failure.sha256_of_onion)
    reason = wrap_failure(results[1].shared_secret, create_failure(results[1].shared_secret, failure))
    reason = wrap_failure(results[0].shared_secret, reason)
    pubkeys = [pk for pk, _ in _onion_vector_hops()]
    index, got = decode_failure(h(gen["session_key"]), pubkeys, reason)
    assert index == 1 and got.code == FailureCode.INVALID_ONION_HMAC and got.sha256_of_onion == sha256(bytes(bad))


# ---------------------------------------------------------------------------
# property tests: random routes
# ---------------------------------------------------------------------------

privkeys = st.integers(1, crypto.N - 1)


@st.composite
def routes(draw: st.DrawFn) -> tuple[int, list[int], list[bytes], bytes]:
    """(session key, hop private keys, payloads that fit in 1300 bytes, associated data)."""
    n = draw(st.integers(1, 20))
    keys = draw(st.lists(privkeys, min_size=n, max_size=n))
    payloads = []
    budget = HOP_PAYLOADS_LEN
    for i in range(n):
        reserve = 35 * (n - i - 1)  # the smallest frame (2-byte payload) for each later hop
        max_len = max(2, min(400, budget - reserve - 35))
        payload = draw(st.binary(min_size=2, max_size=max_len))
        budget -= (1 if len(payload) < 0xFD else 3) + len(payload) + 32
        payloads.append(payload)
    assert budget >= 0
    return draw(privkeys), keys, payloads, draw(st.binary(max_size=64))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(routes())
def test_onion_round_trip(route: tuple[int, list[int], list[bytes], bytes]) -> None:
    session, keys, payloads, ad = route
    nodes = [PrivateKey(k) for k in keys]
    onion = create_onion(PrivateKey(session), [(k.public_key(), p) for k, p in zip(nodes, payloads)], ad)
    secrets = route_shared_secrets(session.to_bytes(32, "big"), [k.public_key().to_bytes() for k in nodes])
    packet: bytes | None = onion
    for i, (node, payload) in enumerate(zip(nodes, payloads)):
        assert packet is not None and len(packet) == ONION_PACKET_LEN
        result = process_onion(node, packet, ad)
        assert result.payload == payload
        assert result.shared_secret == secrets[i]
        assert result.is_final == (i == len(nodes) - 1)
        packet = result.next_onion
    assert packet is None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.lists(privkeys, min_size=1, max_size=20), privkeys, failure_messages())
def test_error_onion_round_trip(data: st.DataObject, keys: list[int], session: int, failure: FailureMessage) -> None:
    pubkeys = [PrivateKey(k).public_key() for k in keys]
    secrets = route_shared_secrets(PrivateKey(session), pubkeys)
    erring = data.draw(st.integers(0, len(keys) - 1))
    pad_to = data.draw(st.sampled_from([256, 512, 1024]))
    packet = wrap_failure(secrets[erring], create_failure(secrets[erring], failure, pad_to=pad_to))
    for i in reversed(range(erring)):
        packet = wrap_failure(secrets[i], packet)
    assert decode_failure(PrivateKey(session), pubkeys, packet) == (erring, failure)


@st.composite
def hop_payloads(draw: st.DrawFn) -> HopPayload:
    def maybe(strategy: Any) -> Any:
        return draw(st.one_of(st.none(), strategy))

    custom = draw(st.lists(st.integers(65536, 2**64 - 1), unique=True, max_size=3))
    return HopPayload(
        amt_to_forward=maybe(st.integers(0, 2**64 - 1)),
        outgoing_cltv_value=maybe(st.integers(0, 2**32 - 1)),
        short_channel_id=maybe(st.integers(0, 2**64 - 1)),
        payment_data=maybe(st.builds(PaymentData, st.binary(min_size=32, max_size=32), st.integers(0, 2**64 - 1))),
        encrypted_recipient_data=maybe(st.binary(max_size=80)),
        current_path_key=maybe(privkeys.map(lambda k: PrivateKey(k).public_key().to_bytes())),
        payment_metadata=maybe(st.binary(max_size=80)),
        total_amount_msat=maybe(st.integers(0, 2**64 - 1)),
        keysend_preimage=maybe(st.binary(min_size=32, max_size=32)),
        custom_records=tuple(sorted((t | 1, draw(st.binary(max_size=20))) for t in {t | 1 for t in custom})),
    )


@settings(max_examples=200, deadline=None)
@given(hop_payloads())
def test_hop_payload_round_trip(payload: HopPayload) -> None:
    data = payload.encode()
    assert HopPayload.parse(data) == payload


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_hop_payload_decode_never_crashes(data: bytes) -> None:
    for is_final in (False, True):
        try:
            HopPayload.decode(data, is_final=is_final)
        except OnionError as e:
            assert e.failure.code == FailureCode.INVALID_ONION_PAYLOAD
            assert e.failure.offset is not None and e.failure.offset <= len(data)
