"""BOLT 4 Sphinx onion packets and the TLV hop payloads they carry.

An `onion_routing_packet` (1366 bytes) is

    version (0) || public_key (33) || hop_payloads (1300) || hmac (32)

The origin builds it with `create_onion` from a session key and, for each hop,
the hop's node id and its `payload`. Each hop calls `process_onion` with its
node private key: it gets its own payload, the shared secret (kept to wrap a
failure later, see `htlc.failure`) and either the onion for the next peer or,
when the next HMAC is all zeros, the news that it is the final node. A packet
the node cannot use raises `OnionError` carrying the BOLT 4 failure to return.

`HopPayload` is the TLV `payload` (amt_to_forward, outgoing_cltv_value,
short_channel_id, payment_data, ...) with BOLT 4's reader rules.

Everything here is pure computation: no I/O, no clock.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import IntEnum
from hashlib import sha256 as _sha256
from typing import Sequence

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from base_chain.crypto import PrivateKey, PublicKey
from base_chain.hashes import sha256

from .failure import FailureCode, FailureMessage

__all__ = [
    "ONION_VERSION",
    "HOP_PAYLOADS_LEN",
    "HMAC_LEN",
    "ONION_PACKET_LEN",
    "KEY_RHO",
    "KEY_MU",
    "KEY_UM",
    "KEY_PAD",
    "KEY_AMMAG",
    "generate_key",
    "generate_cipher_stream",
    "route_shared_secrets",
    "blinded_node_privkey",
    "create_onion",
    "process_onion",
    "ProcessedOnion",
    "OnionError",
    "HopPayloadType",
    "PaymentData",
    "HopPayload",
]

ONION_VERSION = 0
HOP_PAYLOADS_LEN = 1300
HMAC_LEN = 32
_PUBKEY_LEN = 33
ONION_PACKET_LEN = 1 + _PUBKEY_LEN + HOP_PAYLOADS_LEN + HMAC_LEN  # 1366

# Key types of BOLT 4 "Key Generation" (HMAC keys, no terminating NUL).
KEY_RHO = b"rho"
KEY_MU = b"mu"
KEY_UM = b"um"
KEY_PAD = b"pad"
KEY_AMMAG = b"ammag"
_KEY_BLINDED_NODE_ID = b"blinded_node_id"

_ZERO_HMAC = bytes(HMAC_LEN)
# ChaCha20 as `cryptography` takes it: 4-byte little-endian counter || 12-byte nonce, all zero.
_CHACHA_NONCE = bytes(16)


# ---------------------------------------------------------------------------
# keys and streams
# ---------------------------------------------------------------------------


def generate_key(key_type: bytes, secret: bytes) -> bytes:
    """HMAC-SHA256 keyed with the key type (`rho`, `mu`, `um`, `pad`, `ammag`) over a 32-byte secret."""
    return hmac.digest(key_type, secret, _sha256)


def generate_cipher_stream(key: bytes, length: int) -> bytes:
    """`length` bytes of ChaCha20 keystream under `key` with the all-zero nonce."""
    encryptor = Cipher(algorithms.ChaCha20(key, _CHACHA_NONCE), mode=None).encryptor()
    return encryptor.update(bytes(length))


def _xor(a: bytes, b: bytes) -> bytes:
    """a XOR b over len(a) bytes (b at least as long)."""
    n = len(a)
    return (int.from_bytes(a, "big") ^ int.from_bytes(b[:n], "big")).to_bytes(n, "big")


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, _sha256)


def _as_privkey(key: PrivateKey | bytes) -> PrivateKey:
    return key if isinstance(key, PrivateKey) else PrivateKey(bytes(key))


def _as_pubkey(key: PublicKey | bytes) -> PublicKey:
    return key if isinstance(key, PublicKey) else PublicKey.from_bytes(bytes(key))


def _route_keys(session_key: PrivateKey, pubkeys: Sequence[PublicKey]) -> list[tuple[PublicKey, bytes]]:
    """(ephemeral public key, shared secret) for each hop (BOLT 4 "Packet Construction").

    ss_i = ECDH(e_i, node_i); b_i = SHA256(E_i || ss_i); e_{i+1} = e_i * b_i.
    """
    out = []
    ephemeral = session_key
    for i, node in enumerate(pubkeys):
        ephemeral_pub = ephemeral.public_key()
        secret = ephemeral.ecdh(node)
        out.append((ephemeral_pub, secret))
        if i + 1 < len(pubkeys):
            ephemeral = ephemeral.tweak_mul(sha256(ephemeral_pub.to_bytes() + secret))
    return out


def route_shared_secrets(session_key: PrivateKey | bytes, pubkeys: Sequence[PublicKey | bytes]) -> list[bytes]:
    """The shared secret the origin shares with each hop of the route."""
    return [s for _, s in _route_keys(_as_privkey(session_key), [_as_pubkey(p) for p in pubkeys])]


def blinded_node_privkey(node_privkey: PrivateKey | bytes, path_key: PublicKey | bytes) -> PrivateKey:
    """The private key of this node's blinded id in a blinded route (route blinding, reader side).

    b_i = HMAC256("blinded_node_id", ECDH(k_i, path_key)) * k_i
    """
    priv = _as_privkey(node_privkey)
    blinding_ss = priv.ecdh(_as_pubkey(path_key))
    return priv.tweak_mul(generate_key(_KEY_BLINDED_NODE_ID, blinding_ss))


# ---------------------------------------------------------------------------
# packet construction
# ---------------------------------------------------------------------------


def _frame_len(payload: bytes) -> int:
    """shift_size of BOLT 4: bigsize(length) || payload || hmac."""
    return len(_encode_bigsize(len(payload))) + len(payload) + HMAC_LEN


def _generate_filler(secrets: Sequence[bytes], frame_lens: Sequence[int]) -> bytes:
    """The bytes hops 0..n-2 will append and obfuscate, which the last hop's HMAC must cover.

    At hop i the filler so far occupies the tail of `hop_payloads`; the hop
    appends `frame_lens[i]` zero bytes, XORs the 2 x 1300-byte buffer with its
    rho stream and shifts left by `frame_lens[i]`.
    """
    filler = b""
    for secret, frame_len in zip(secrets, frame_lens):
        filler += bytes(frame_len)
        end = HOP_PAYLOADS_LEN + frame_len
        stream = generate_cipher_stream(generate_key(KEY_RHO, secret), end)
        filler = _xor(filler, stream[end - len(filler) :])
    return filler


def create_onion(
    session_key: PrivateKey | bytes,
    hops: Sequence[tuple[PublicKey | bytes, bytes]],
    associated_data: bytes,
) -> bytes:
    """The 1366-byte onion for a route of (node id, payload) hops, first hop first.

    Each payload is the hop's TLV `payload` without its length prefix (e.g.
    `HopPayload.encode()`); the bigsize length is added here. For payments
    `associated_data` is the `payment_hash`. ValueError if the route is empty,
    a payload is shorter than 2 bytes, or the payloads do not fit in 1300 bytes.
    """
    if not hops:
        raise ValueError("an onion needs at least one hop")
    pubkeys = [_as_pubkey(pk) for pk, _ in hops]
    payloads = [bytes(p) for _, p in hops]
    for i, payload in enumerate(payloads):
        if len(payload) < 2:
            raise ValueError(f"hop {i}: a payload of {len(payload)} bytes is reserved (at least 2)")
    frame_lens = [_frame_len(p) for p in payloads]
    if sum(frame_lens) > HOP_PAYLOADS_LEN:
        raise ValueError(f"the {len(hops)} hop payloads need {sum(frame_lens)} bytes; hop_payloads holds {HOP_PAYLOADS_LEN}")

    session = _as_privkey(session_key)
    route = _route_keys(session, pubkeys)
    secrets = [s for _, s in route]
    filler = _generate_filler(secrets[:-1], frame_lens[:-1])

    mix_header = generate_cipher_stream(generate_key(KEY_PAD, session.to_bytes()), HOP_PAYLOADS_LEN)
    next_hmac = _ZERO_HMAC
    for i in reversed(range(len(hops))):
        frame = _encode_bigsize(len(payloads[i])) + payloads[i] + next_hmac
        mix_header = (frame + mix_header)[:HOP_PAYLOADS_LEN]
        mix_header = _xor(mix_header, generate_cipher_stream(generate_key(KEY_RHO, secrets[i]), HOP_PAYLOADS_LEN))
        if i == len(hops) - 1 and filler:
            mix_header = mix_header[: HOP_PAYLOADS_LEN - len(filler)] + filler
        next_hmac = _hmac(generate_key(KEY_MU, secrets[i]), mix_header + associated_data)
    return bytes([ONION_VERSION]) + route[0][0].to_bytes() + mix_header + next_hmac


# ---------------------------------------------------------------------------
# packet processing
# ---------------------------------------------------------------------------


class OnionError(Exception):
    """This node cannot use the onion (or its payload); `failure` is what it must return.

    When `is_malformed` (a BADONION failure: `invalid_onion_version`,
    `invalid_onion_hmac`, `invalid_onion_key`, `invalid_onion_blinding`) the
    node answers `update_fail_malformed_htlc` with `failure.sha256_of_onion`
    and `failure.code`. Otherwise the onion was authentic: `shared_secret` is
    set when known, and the node returns an error onion
    (`htlc.failure.create_failure` then `wrap_failure`).
    """

    def __init__(self, failure: FailureMessage, reason: str, shared_secret: bytes | None = None) -> None:
        super().__init__(f"{failure.name}: {reason}")
        self.failure = failure
        self.reason = reason
        self.shared_secret = shared_secret

    @property
    def is_malformed(self) -> bool:
        return self.failure.is_badonion


def _bad_onion(code: FailureCode, onion: bytes, reason: str) -> OnionError:
    return OnionError(FailureMessage(code, sha256_of_onion=sha256(onion)), reason)


def _bad_payload(tlv_type: int, offset: int, reason: str, shared_secret: bytes | None = None) -> OnionError:
    failure = FailureMessage(FailureCode.INVALID_ONION_PAYLOAD, tlv_type=tlv_type, offset=min(offset, 0xFFFF))
    return OnionError(failure, reason, shared_secret)


@dataclass(frozen=True)
class ProcessedOnion:
    """What a hop learns from its onion.

    `payload` is its TLV `payload` (without length prefix); `next_onion` is the
    1366-byte packet for the next peer, or None at the final node.
    """

    payload: bytes
    shared_secret: bytes
    next_onion: bytes | None

    @property
    def is_final(self) -> bool:
        return self.next_onion is None

    def decode_payload(self, *, path_key_in_update: bool = False) -> HopPayload:
        """`HopPayload.decode` of the payload for this hop's position; OnionError carries the shared secret."""
        try:
            return HopPayload.decode(self.payload, is_final=self.is_final, path_key_in_update=path_key_in_update)
        except OnionError as e:
            raise OnionError(e.failure, e.reason, self.shared_secret) from None


def process_onion(
    node_privkey: PrivateKey | bytes,
    onion: bytes,
    associated_data: bytes,
    *,
    path_key: PublicKey | bytes | None = None,
) -> ProcessedOnion:
    """Peel this node's layer off an `onion_routing_packet` (BOLT 4 "Onion Decryption").

    `path_key` is the one `update_add_htlc` carried, for a node inside a
    blinded route. Raises OnionError: `invalid_onion_version`,
    `invalid_onion_key`, `invalid_onion_hmac` (BADONION, with sha256(onion)),
    `invalid_onion_blinding` for an unusable `path_key`, or
    `invalid_onion_payload` when the authenticated hop_payloads cannot be
    framed. ValueError if `onion` is not 1366 bytes (the wire format fixes it).
    """
    onion = bytes(onion)
    if len(onion) != ONION_PACKET_LEN:
        raise ValueError(f"onion_routing_packet must be {ONION_PACKET_LEN} bytes, got {len(onion)}")
    if onion[0] != ONION_VERSION:
        raise _bad_onion(FailureCode.INVALID_ONION_VERSION, onion, f"unknown onion version {onion[0]}")
    key_bytes = onion[1 : 1 + _PUBKEY_LEN]
    try:
        if key_bytes[0] not in (2, 3):
            raise ValueError("not a compressed point")
        ephemeral = PublicKey.from_bytes(key_bytes)
    except ValueError:
        raise _bad_onion(FailureCode.INVALID_ONION_KEY, onion, f"public_key {key_bytes.hex()} is not a valid point") from None

    priv = _as_privkey(node_privkey)
    if path_key is not None:
        try:
            priv = blinded_node_privkey(priv, path_key)
        except ValueError:
            raise _bad_onion(FailureCode.INVALID_ONION_BLINDING, onion, "path_key is not a usable point") from None
    shared_secret = priv.ecdh(ephemeral)

    hop_payloads = onion[1 + _PUBKEY_LEN : 1 + _PUBKEY_LEN + HOP_PAYLOADS_LEN]
    expected = _hmac(generate_key(KEY_MU, shared_secret), hop_payloads + associated_data)
    if not hmac.compare_digest(expected, onion[-HMAC_LEN:]):
        raise _bad_onion(FailureCode.INVALID_ONION_HMAC, onion, "hmac does not match hop_payloads and associated data")

    stream = generate_cipher_stream(generate_key(KEY_RHO, shared_secret), 2 * HOP_PAYLOADS_LEN)
    unwrapped = _xor(hop_payloads + bytes(HOP_PAYLOADS_LEN), stream)
    try:
        length, pos = _read_bigsize(unwrapped, 0)
    except _TlvError as e:
        raise _bad_payload(0, 0, f"payload length: {e.reason}", shared_secret) from None
    if length < 2:
        raise _bad_payload(0, 0, f"payload length {length} is reserved", shared_secret)
    if pos + length + HMAC_LEN > HOP_PAYLOADS_LEN:
        raise _bad_payload(0, 0, f"payload length {length} overruns hop_payloads", shared_secret)
    payload = unwrapped[pos : pos + length]
    pos += length
    next_hmac = unwrapped[pos : pos + HMAC_LEN]
    pos += HMAC_LEN
    if next_hmac == _ZERO_HMAC:
        return ProcessedOnion(payload, shared_secret, None)

    blinding = sha256(ephemeral.to_bytes() + shared_secret)
    try:
        next_key = ephemeral.multiply(blinding)
    except ValueError:  # a blinding factor >= N: a 2^-128 event, not a malicious one
        raise _bad_onion(FailureCode.INVALID_ONION_KEY, onion, "cannot blind the ephemeral key") from None
    next_onion = bytes([ONION_VERSION]) + next_key.to_bytes() + unwrapped[pos : pos + HOP_PAYLOADS_LEN] + next_hmac
    return ProcessedOnion(payload, shared_secret, next_onion)


# ---------------------------------------------------------------------------
# the TLV hop payload
# ---------------------------------------------------------------------------


class HopPayloadType(IntEnum):
    """TLV types of the `payload` stream (BOLT 4), plus keysend's custom record."""

    AMT_TO_FORWARD = 2
    OUTGOING_CLTV_VALUE = 4
    SHORT_CHANNEL_ID = 6
    PAYMENT_DATA = 8
    ENCRYPTED_RECIPIENT_DATA = 10
    CURRENT_PATH_KEY = 12
    PAYMENT_METADATA = 16
    TOTAL_AMOUNT_MSAT = 18
    KEYSEND_PREIMAGE = 5482373484  # lnd's spontaneous-payment record (an even type)


_T = HopPayloadType


@dataclass(frozen=True)
class PaymentData:
    """`payment_data` (type 8): the invoice's `payment_secret` and the payment's `total_msat`."""

    payment_secret: bytes
    total_msat: int


@dataclass(frozen=True)
class HopPayload:
    """A hop's TLV `payload`.

    `short_channel_id` is the u64 form (block << 40 | tx << 16 | output).
    `custom_records` holds the (type, value) records this class does not
    interpret: unknown odd types when decoding, custom records (types >= 65536)
    when sending; sorted by type.
    """

    amt_to_forward: int | None = None
    outgoing_cltv_value: int | None = None
    short_channel_id: int | None = None
    payment_data: PaymentData | None = None
    encrypted_recipient_data: bytes | None = None
    current_path_key: bytes | None = None
    payment_metadata: bytes | None = None
    total_amount_msat: int | None = None
    keysend_preimage: bytes | None = None
    custom_records: tuple[tuple[int, bytes], ...] = ()

    # -- encoding ---------------------------------------------------------------

    def encode(self) -> bytes:
        """The TLV stream (no length prefix); ValueError for out-of-range or clashing fields."""
        records: list[tuple[int, bytes]] = []
        if self.amt_to_forward is not None:
            records.append((_T.AMT_TO_FORWARD, _encode_tu(self.amt_to_forward, 8, "amt_to_forward")))
        if self.outgoing_cltv_value is not None:
            records.append((_T.OUTGOING_CLTV_VALUE, _encode_tu(self.outgoing_cltv_value, 4, "outgoing_cltv_value")))
        if self.short_channel_id is not None:
            records.append((_T.SHORT_CHANNEL_ID, _encode_fixed(self.short_channel_id, 8, "short_channel_id")))
        if self.payment_data is not None:
            secret = _check_len(self.payment_data.payment_secret, 32, "payment_secret")
            records.append((_T.PAYMENT_DATA, secret + _encode_tu(self.payment_data.total_msat, 8, "total_msat")))
        if self.encrypted_recipient_data is not None:
            records.append((_T.ENCRYPTED_RECIPIENT_DATA, bytes(self.encrypted_recipient_data)))
        if self.current_path_key is not None:
            records.append((_T.CURRENT_PATH_KEY, _check_len(self.current_path_key, _PUBKEY_LEN, "current_path_key")))
        if self.payment_metadata is not None:
            records.append((_T.PAYMENT_METADATA, bytes(self.payment_metadata)))
        if self.total_amount_msat is not None:
            records.append((_T.TOTAL_AMOUNT_MSAT, _encode_tu(self.total_amount_msat, 8, "total_amount_msat")))
        if self.keysend_preimage is not None:
            records.append((_T.KEYSEND_PREIMAGE, _check_len(self.keysend_preimage, 32, "keysend_preimage")))
        seen: set[int] = set()
        for t, v in self.custom_records:
            if not 0 <= t < 1 << 64:
                raise ValueError(f"custom record type {t} does not fit in a bigsize")
            if t in _KNOWN_TYPES or t in seen:
                raise ValueError(f"custom record type {t} clashes with a field or another record")
            seen.add(t)
            records.append((t, bytes(v)))
        records.sort(key=lambda r: r[0])
        return b"".join(_encode_bigsize(t) + _encode_bigsize(len(v)) + v for t, v in records)

    # -- decoding ---------------------------------------------------------------

    @classmethod
    def parse(cls, data: bytes) -> HopPayload:
        """The TLV stream rules only (BOLT 1): ordering, lengths, value encodings, unknown even types."""
        return cls._parse(bytes(data))[0]

    @classmethod
    def decode(cls, data: bytes, *, is_final: bool, path_key_in_update: bool = False) -> HopPayload:
        """Parse and apply BOLT 4's reader rules for a final or forwarding node.

        `path_key_in_update` says whether `update_add_htlc` carried a
        `path_key`. Failures raise OnionError with `invalid_onion_payload`:
        `tlv_type` is the offending type and `offset` the byte offset of its
        record in the payload (after the length prefix); for a missing record,
        the offset where it belongs. Inside a blinded route BOLT 4 asks the
        node to return `invalid_onion_blinding` instead: that translation is the
        forwarding layer's, which knows the onion.
        """
        data = bytes(data)
        payload, offsets = cls._parse(data)
        payload._check_reader_rules(offsets, len(data), is_final, path_key_in_update)
        return payload

    @classmethod
    def _parse(cls, data: bytes) -> tuple[HopPayload, dict[int, int]]:
        try:
            records = _read_tlv_stream(data)
        except _TlvError as e:
            raise _bad_payload(e.tlv_type, e.offset, e.reason) from None
        fields: dict[str, object] = {}
        custom: list[tuple[int, bytes]] = []
        offsets: dict[int, int] = {}
        for t, offset, value in records:
            offsets[t] = offset
            try:
                if t == _T.AMT_TO_FORWARD:
                    fields["amt_to_forward"] = _decode_tu(value, 8)
                elif t == _T.OUTGOING_CLTV_VALUE:
                    fields["outgoing_cltv_value"] = _decode_tu(value, 4)
                elif t == _T.SHORT_CHANNEL_ID:
                    fields["short_channel_id"] = int.from_bytes(_need_len(value, 8), "big")
                elif t == _T.PAYMENT_DATA:
                    if len(value) < 32:
                        raise ValueError(f"{len(value)} bytes, need a 32-byte payment_secret")
                    fields["payment_data"] = PaymentData(value[:32], _decode_tu(value[32:], 8))
                elif t == _T.ENCRYPTED_RECIPIENT_DATA:
                    fields["encrypted_recipient_data"] = value
                elif t == _T.CURRENT_PATH_KEY:
                    _need_len(value, _PUBKEY_LEN)
                    if value[0] not in (2, 3):
                        raise ValueError("not a compressed point")
                    PublicKey.from_bytes(value)
                    fields["current_path_key"] = value
                elif t == _T.PAYMENT_METADATA:
                    fields["payment_metadata"] = value
                elif t == _T.TOTAL_AMOUNT_MSAT:
                    fields["total_amount_msat"] = _decode_tu(value, 8)
                elif t == _T.KEYSEND_PREIMAGE:
                    fields["keysend_preimage"] = _need_len(value, 32)
                elif t % 2 == 0:
                    raise ValueError("unknown even type")
                else:
                    custom.append((t, value))
            except ValueError as e:
                raise _bad_payload(t, offset, f"type {t}: {e}") from None
        return cls(custom_records=tuple(custom), **fields), offsets  # type: ignore[arg-type]

    def _check_reader_rules(self, offsets: dict[int, int], length: int, is_final: bool, path_key_in_update: bool) -> None:
        def present(t: int) -> bool:
            return t in offsets

        def fail_present(t: int, why: str) -> OnionError:
            return _bad_payload(t, offsets[t], f"type {t}: {why}")

        def fail_missing(t: int, why: str) -> OnionError:
            after = [off for typ, off in offsets.items() if typ > t]
            return _bad_payload(t, min(after, default=length), f"type {t} missing: {why}")

        if present(_T.ENCRYPTED_RECIPIENT_DATA):
            if path_key_in_update and present(_T.CURRENT_PATH_KEY):
                raise fail_present(_T.CURRENT_PATH_KEY, "current_path_key given but update_add_htlc has a path_key")
            if not path_key_in_update and not present(_T.CURRENT_PATH_KEY):
                raise fail_missing(_T.CURRENT_PATH_KEY, "blinded payload without a path_key")
            allowed: set[int] = {_T.ENCRYPTED_RECIPIENT_DATA, _T.CURRENT_PATH_KEY}
            if is_final:
                allowed |= {_T.AMT_TO_FORWARD, _T.OUTGOING_CLTV_VALUE, _T.TOTAL_AMOUNT_MSAT}
                for required in (_T.AMT_TO_FORWARD, _T.OUTGOING_CLTV_VALUE, _T.TOTAL_AMOUNT_MSAT):
                    if not present(required):
                        raise fail_missing(required, "required at the final node of a blinded route")
            for t in sorted(offsets):
                if t in _KNOWN_TYPES and t not in allowed:
                    raise fail_present(t, "not allowed in a blinded route's payload")
            return

        if path_key_in_update:
            raise fail_missing(_T.ENCRYPTED_RECIPIENT_DATA, "update_add_htlc has a path_key")
        if present(_T.CURRENT_PATH_KEY):
            raise fail_present(_T.CURRENT_PATH_KEY, "current_path_key without encrypted_recipient_data")
        if not present(_T.AMT_TO_FORWARD):
            raise fail_missing(_T.AMT_TO_FORWARD, "amt_to_forward is required")
        if not present(_T.OUTGOING_CLTV_VALUE):
            raise fail_missing(_T.OUTGOING_CLTV_VALUE, "outgoing_cltv_value is required")
        if is_final:
            if present(_T.SHORT_CHANNEL_ID):
                raise fail_present(_T.SHORT_CHANNEL_ID, "short_channel_id at the final node")
        else:
            if not present(_T.SHORT_CHANNEL_ID):
                raise fail_missing(_T.SHORT_CHANNEL_ID, "a forwarding node needs short_channel_id")
            if present(_T.PAYMENT_DATA):
                raise fail_present(_T.PAYMENT_DATA, "payment_data at a forwarding node")


_KNOWN_TYPES = frozenset(int(t) for t in HopPayloadType)


def _check_len(value: bytes, n: int, name: str) -> bytes:
    if len(value) != n:
        raise ValueError(f"{name} must be {n} bytes, got {len(value)}")
    return bytes(value)


def _need_len(value: bytes, n: int) -> bytes:
    if len(value) != n:
        raise ValueError(f"length {len(value)}, expected {n}")
    return value


def _encode_fixed(value: int, width: int, name: str) -> bytes:
    if not 0 <= value < 1 << (8 * width):
        raise ValueError(f"{name} {value} does not fit in {width} bytes")
    return value.to_bytes(width, "big")


def _encode_tu(value: int, max_len: int, name: str) -> bytes:
    """A truncated unsigned integer: big-endian without leading zero bytes (0 is empty)."""
    if not 0 <= value < 1 << (8 * max_len):
        raise ValueError(f"{name} {value} does not fit in a tu{8 * max_len}")
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _decode_tu(value: bytes, max_len: int) -> int:
    if len(value) > max_len:
        raise ValueError(f"tu{8 * max_len} of {len(value)} bytes")
    if value[:1] == b"\x00":
        raise ValueError(f"tu{8 * max_len} is not minimally encoded")
    return int.from_bytes(value, "big")


# ---------------------------------------------------------------------------
# BigSize and TLV streams (BOLT 1) -- a private stopgap until channels/tlv.py
# lands; htlc.failure borrows these too.
# ---------------------------------------------------------------------------


class _TlvError(Exception):
    def __init__(self, reason: str, tlv_type: int = 0, offset: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.tlv_type = tlv_type
        self.offset = offset


def _encode_bigsize(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "big")
    if n <= 0xFFFFFFFF:
        return b"\xfe" + n.to_bytes(4, "big")
    return b"\xff" + n.to_bytes(8, "big")


_BIGSIZE_WIDTH = {0xFD: (2, 0xFD), 0xFE: (4, 0x10000), 0xFF: (8, 0x100000000)}


def _read_bigsize(data: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it); _TlvError if truncated or not minimally encoded."""
    if pos >= len(data):
        raise _TlvError("bigsize truncated", offset=pos)
    first = data[pos]
    if first < 0xFD:
        return first, pos + 1
    width, minimum = _BIGSIZE_WIDTH[first]
    if pos + 1 + width > len(data):
        raise _TlvError("bigsize truncated", offset=pos)
    value = int.from_bytes(data[pos + 1 : pos + 1 + width], "big")
    if value < minimum:
        raise _TlvError("bigsize not minimally encoded", offset=pos)
    return value, pos + 1 + width


def _read_tlv_stream(data: bytes) -> list[tuple[int, int, bytes]]:
    """(type, offset of the record, value) for each record; types must strictly increase."""
    records: list[tuple[int, int, bytes]] = []
    pos = 0
    previous = -1
    while pos < len(data):
        start = pos
        t, pos = _read_bigsize(data, pos)
        if t <= previous:
            raise _TlvError(f"type {t} after type {previous}: not strictly increasing", t, start)
        try:
            length, pos = _read_bigsize(data, pos)
        except _TlvError as e:
            raise _TlvError(f"type {t}: length {e.reason}", t, start) from None
        if pos + length > len(data):
            raise _TlvError(f"type {t}: length {length} overruns the stream", t, start)
        records.append((t, start, data[pos : pos + length]))
        pos += length
        previous = t
    return records

