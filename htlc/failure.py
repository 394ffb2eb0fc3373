"""BOLT 4 failure messages and the error onion that carries them back to the origin.

A node that cannot forward or accept an HTLC answers with a `failuremsg`: a
2-byte `failure_code` (flags BADONION, PERM, NODE, UPDATE in the top byte), the
data fields that code defines, and an optional TLV stream. This module knows
every failure code of BOLT 4, encodes and decodes their data, and builds the
return packet:

    erring node:        reason = wrap_failure(ss, create_failure(ss, failure))
    each hop back:      reason = wrap_failure(ss, reason)
    origin:             hop_index, failure = decode_failure(session_key, route_pubkeys, reason)

`ss` is the shared secret the hop derived when it processed the forward onion
(`ProcessedOnion.shared_secret` in `htlc.onion`).

BADONION failures (`invalid_onion_version`, `invalid_onion_hmac`,
`invalid_onion_key`, `invalid_onion_blinding`) are not put in an error onion by
the node that detects them: it returns `update_fail_malformed_htlc` carrying
`sha256_of_onion` and `failure_code`, and its upstream peer turns that into an
error onion (`FailureMessage.from_malformed`).

The optional `attribution_data` (attributable failures) is not implemented.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import IntEnum
from hashlib import sha256 as _sha256
from typing import Sequence

from base_chain.crypto import PrivateKey, PublicKey

# htlc.onion imports this module (OnionError carries a FailureMessage), so the Sphinx
# helpers this module borrows from it (keys, ChaCha20 stream, BigSize/TLV) are
# imported inside the functions that use them, keeping the import graph one-way.

__all__ = [
    "BADONION",
    "PERM",
    "NODE",
    "UPDATE",
    "FailureCode",
    "FailureMessage",
    "FailureDecodeError",
    "MIN_FAILURE_PAD_TO",
    "create_failure",
    "wrap_failure",
    "decode_failure",
]

BADONION = 0x8000
"""Unparsable onion encrypted by the sending peer."""
PERM = 0x4000
"""Permanent failure (otherwise transient)."""
NODE = 0x2000
"""Node failure (otherwise channel)."""
UPDATE = 0x1000
"""A channel forwarding parameter was violated."""

MIN_FAILURE_PAD_TO = 256
"""BOLT 4: `failure_len` plus `pad_len` MUST be at least 256 (and SHOULD equal 256)."""

_HMAC_LEN = 32


class FailureCode(IntEnum):
    """Every `failure_code` of BOLT 4; `.bolt_name` is the spec's name."""

    INVALID_REALM = PERM | 1  # legacy (realm byte of the old fixed-size hop data)
    TEMPORARY_NODE_FAILURE = NODE | 2
    PERMANENT_NODE_FAILURE = PERM | NODE | 2
    REQUIRED_NODE_FEATURE_MISSING = PERM | NODE | 3
    INVALID_ONION_VERSION = BADONION | PERM | 4
    INVALID_ONION_HMAC = BADONION | PERM | 5
    INVALID_ONION_KEY = BADONION | PERM | 6
    TEMPORARY_CHANNEL_FAILURE = UPDATE | 7
    PERMANENT_CHANNEL_FAILURE = PERM | 8
    REQUIRED_CHANNEL_FEATURE_MISSING = PERM | 9
    UNKNOWN_NEXT_PEER = PERM | 10
    AMOUNT_BELOW_MINIMUM = UPDATE | 11
    FEE_INSUFFICIENT = UPDATE | 12
    INCORRECT_CLTV_EXPIRY = UPDATE | 13
    EXPIRY_TOO_SOON = UPDATE | 14
    INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS = PERM | 15
    FINAL_INCORRECT_CLTV_EXPIRY = 18
    FINAL_INCORRECT_HTLC_AMOUNT = 19
    CHANNEL_DISABLED = UPDATE | 20
    EXPIRY_TOO_FAR = 21
    INVALID_ONION_PAYLOAD = PERM | 22
    MPP_TIMEOUT = 23
    INVALID_ONION_BLINDING = BADONION | PERM | 24

    @property
    def bolt_name(self) -> str:
        return self.name.lower()


class FailureDecodeError(ValueError):
    """A failure message or error onion could not be decoded.

    `hop_index` is the route position whose HMAC matched when the packet was
    attributed but its content is malformed (blame that hop), or None when no
    hop could be identified.
    """

    def __init__(self, reason: str, hop_index: int | None = None) -> None:
        super().__init__(reason if hop_index is None else f"hop {hop_index}: {reason}")
        self.reason = reason
        self.hop_index = hop_index


# ---------------------------------------------------------------------------
# failure message data fields
# ---------------------------------------------------------------------------

# Wire type of each data field: "u16", "u32", "u64", "sha256", "bigsize", or
# "u16_bytes" (a u16 length followed by that many bytes, for channel_update).
_FIELD_TYPES: dict[str, str] = {
    "sha256_of_onion": "sha256",
    "htlc_msat": "u64",
    "cltv_expiry": "u32",
    "height": "u32",
    "incoming_htlc_amt": "u64",
    "disabled_flags": "u16",
    "channel_update": "u16_bytes",
    "tlv_type": "bigsize",
    "offset": "u16",
}

# The data fields of each code, in wire order (BOLT 4 "Failure Messages").
_FIELDS: dict[int, tuple[str, ...]] = {
    FailureCode.INVALID_ONION_VERSION: ("sha256_of_onion",),
    FailureCode.INVALID_ONION_HMAC: ("sha256_of_onion",),
    FailureCode.INVALID_ONION_KEY: ("sha256_of_onion",),
    FailureCode.TEMPORARY_CHANNEL_FAILURE: ("channel_update",),
    FailureCode.AMOUNT_BELOW_MINIMUM: ("htlc_msat", "channel_update"),
    FailureCode.FEE_INSUFFICIENT: ("htlc_msat", "channel_update"),
    FailureCode.INCORRECT_CLTV_EXPIRY: ("cltv_expiry", "channel_update"),
    FailureCode.EXPIRY_TOO_SOON: ("channel_update",),
    FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS: ("htlc_msat", "height"),
    FailureCode.FINAL_INCORRECT_CLTV_EXPIRY: ("cltv_expiry",),
    FailureCode.FINAL_INCORRECT_HTLC_AMOUNT: ("incoming_htlc_amt",),
    FailureCode.CHANNEL_DISABLED: ("disabled_flags", "channel_update"),
    FailureCode.INVALID_ONION_PAYLOAD: ("tlv_type", "offset"),
    FailureCode.INVALID_ONION_BLINDING: ("sha256_of_onion",),
}

# Codes whose trailing fields older nodes leave out: `incorrect_or_unknown_payment_details`
# was once sent with no data, then with `htlc_msat` only, before `height` was added.
_TRAILING_FIELDS_OPTIONAL = frozenset({FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS})

_DATA_FIELD_NAMES = tuple(_FIELD_TYPES)


@dataclass(frozen=True)
class FailureMessage:
    """A BOLT 4 `failuremsg`: `code`, the data fields that code defines, and `extra`.

    Fields the code does not define stay None. `tlv_type` and `offset` are the
    spec's `type` and `offset` of `invalid_onion_payload`. `extra` holds the
    bytes after the code's fields: the optional TLV stream (see
    `tlv_records`), or, for a code Canal does not know, its whole data.
    `channel_update` is the raw bytes the failure carries (empty when the
    erring node sends none, as BOLT 4 now recommends).
    """

    code: int
    sha256_of_onion: bytes | None = None
    htlc_msat: int | None = None
    cltv_expiry: int | None = None
    height: int | None = None
    incoming_htlc_amt: int | None = None
    disabled_flags: int | None = None
    channel_update: bytes | None = None
    tlv_type: int | None = None
    offset: int | None = None
    extra: bytes = b""

    # -- classification -----------------------------------------------------

    @property
    def name(self) -> str:
        """The BOLT name (`temporary_channel_failure`), or `unknown_0x....`."""
        try:
            return FailureCode(self.code).bolt_name
        except ValueError:
            return f"unknown_{self.code:#06x}"

    @property
    def is_badonion(self) -> bool:
        return bool(self.code & BADONION)

    @property
    def is_permanent(self) -> bool:
        return bool(self.code & PERM)

    @property
    def is_node_failure(self) -> bool:
        return bool(self.code & NODE)

    @property
    def is_update(self) -> bool:
        return bool(self.code & UPDATE)

    def __str__(self) -> str:
        shown = [f"{name}={_show(getattr(self, name))}" for name in self._defined_fields() if getattr(self, name) is not None]
        return f"{self.name}({', '.join(shown)})" if shown else self.name

    # -- construction helpers ----------------------------------------------

    @classmethod
    def from_malformed(cls, failure_code: int, sha256_of_onion: bytes) -> FailureMessage:
        """The failure an upstream node wraps for a received `update_fail_malformed_htlc`."""
        if not failure_code & BADONION:
            raise ValueError(f"update_fail_malformed_htlc failure_code {failure_code:#06x} lacks the BADONION bit")
        if failure_code in _FIELDS and _FIELDS[failure_code] != ("sha256_of_onion",):
            raise ValueError(f"failure code {failure_code:#06x} does not carry sha256_of_onion")
        return cls(failure_code, sha256_of_onion=sha256_of_onion)

    # -- encoding ---------------------------------------------------------------

    def _defined_fields(self) -> tuple[str, ...]:
        return _FIELDS.get(self.code, ())

    def encode(self) -> bytes:
        """The `failuremsg` bytes; ValueError if a field is missing, foreign to the code, or out of range."""
        if not 0 <= self.code <= 0xFFFF:
            raise ValueError(f"failure_code {self.code} does not fit in a u16")
        defined = self._defined_fields()
        for name in _DATA_FIELD_NAMES:
            if name not in defined and getattr(self, name) is not None:
                raise ValueError(f"{self.name} has no field {name}")
        out = [self.code.to_bytes(2, "big")]
        absent_from: str | None = None
        for name in defined:
            value = getattr(self, name)
            if value is None:
                if self.code not in _TRAILING_FIELDS_OPTIONAL:
                    raise ValueError(f"{self.name} needs {name}")
                absent_from = absent_from or name
                continue
            if absent_from is not None:
                raise ValueError(f"{self.name}: {name} given but the earlier field {absent_from} is missing")
            out.append(_encode_field(name, value))
        if self.extra and absent_from is not None:
            raise ValueError(f"{self.name}: extra bytes need every data field present")
        out.append(bytes(self.extra))
        return b"".join(out)

    @classmethod
    def decode(cls, data: bytes) -> FailureMessage:
        """Parse a `failuremsg`; FailureDecodeError if a data field is truncated or invalid."""
        if len(data) < 2:
            raise FailureDecodeError(f"failure message of {len(data)} bytes has no failure_code")
        code = int.from_bytes(data[:2], "big")
        pos = 2
        values: dict[str, int | bytes] = {}
        for name in _FIELDS.get(code, ()):
            if pos == len(data) and code in _TRAILING_FIELDS_OPTIONAL:
                break
            value, pos = _decode_field(name, data, pos, code)
            values[name] = value
        return cls(code, extra=bytes(data[pos:]), **values)  # type: ignore[arg-type]

    def tlv_records(self) -> list[tuple[int, bytes]]:
        """The optional TLV stream in `extra` as (type, value) pairs; FailureDecodeError if invalid."""
        from .onion import _read_tlv_stream, _TlvError  # local: see the note on imports at the top

        try:
            return [(t, v) for t, _off, v in _read_tlv_stream(self.extra)]
        except _TlvError as e:
            raise FailureDecodeError(f"invalid TLV stream after {self.name}: {e.reason}") from None


def _show(value: object) -> str:
    return value.hex() if isinstance(value, bytes) else str(value)


def _encode_field(name: str, value: object) -> bytes:
    kind = _FIELD_TYPES[name]
    if kind == "sha256":
        if not isinstance(value, bytes) or len(value) != 32:
            raise ValueError(f"{name} must be 32 bytes")
        return value
    if kind == "u16_bytes":
        if not isinstance(value, bytes) or len(value) > 0xFFFF:
            raise ValueError(f"{name} must be bytes of at most 65535")
        return len(value).to_bytes(2, "big") + value
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an integer")
    if kind == "bigsize":
        from .onion import _encode_bigsize

        if not 0 <= value < 1 << 64:
            raise ValueError(f"{name} {value} does not fit in a bigsize")
        return _encode_bigsize(value)
    width = {"u16": 2, "u32": 4, "u64": 8}[kind]
    if not 0 <= value < 1 << (8 * width):
        raise ValueError(f"{name} {value} does not fit in a {kind}")
    return value.to_bytes(width, "big")


def _decode_field(name: str, data: bytes, pos: int, code: int) -> tuple[int | bytes, int]:
    kind = _FIELD_TYPES[name]
    label = FailureMessage(code).name

    def take(n: int) -> bytes:
        if pos + n > len(data):
            raise FailureDecodeError(f"{label}: {name} truncated (need {n} bytes at offset {pos}, have {len(data) - pos})")
        return data[pos : pos + n]

    if kind == "sha256":
        return take(32), pos + 32
    if kind == "u16_bytes":
        length = int.from_bytes(take(2), "big")
        pos += 2
        return take(length), pos + length
    if kind == "bigsize":
        from .onion import _read_bigsize, _TlvError

        try:
            return _read_bigsize(data, pos)
        except _TlvError as e:
            raise FailureDecodeError(f"{label}: {name}: {e.reason}") from None
    width = {"u16": 2, "u32": 4, "u64": 8}[kind]
    return int.from_bytes(take(width), "big"), pos + width


# ---------------------------------------------------------------------------
# the error onion (keys and stream are Sphinx's, from htlc.onion)
# ---------------------------------------------------------------------------


def create_failure(
    shared_secret: bytes,
    failure_message: FailureMessage | bytes,
    *,
    pad_to: int = MIN_FAILURE_PAD_TO,
) -> bytes:
    """The erring node's return packet before obfuscation: hmac || u16 failure_len || failuremsg || u16 pad_len || pad.

    `pad` (zeros) brings failure_len + pad_len up to `pad_to` (BOLT 4: at least
    256, SHOULD be 256); a longer failuremsg gets no pad. `hmac` is
    HMAC-SHA256 keyed with `um` over the rest. The erring node then obfuscates
    the result with `wrap_failure(shared_secret, ...)` like every hop after it.
    """
    from .onion import KEY_UM, generate_key

    _check_secret(shared_secret)
    if pad_to < MIN_FAILURE_PAD_TO or pad_to > 0xFFFF:
        raise ValueError(f"pad_to must be between {MIN_FAILURE_PAD_TO} and 65535")
    msg = failure_message.encode() if isinstance(failure_message, FailureMessage) else bytes(failure_message)
    if len(msg) < 2 or len(msg) > 0xFFFF:
        raise ValueError(f"failure message of {len(msg)} bytes: must be 2..65535")
    pad_len = max(pad_to - len(msg), 0)
    body = len(msg).to_bytes(2, "big") + msg + pad_len.to_bytes(2, "big") + bytes(pad_len)
    um = generate_key(KEY_UM, shared_secret)
    return hmac.digest(um, body, _sha256) + body


def wrap_failure(shared_secret: bytes, packet: bytes) -> bytes:
    """XOR the packet with the `ammag` stream of this hop's shared secret.

    The erring node applies it to its `create_failure` packet, each hop back
    applies it again with its own secret, and the origin peels the layers off
    with the same operation (`decode_failure`).
    """
    from .onion import KEY_AMMAG, _xor, generate_cipher_stream, generate_key

    _check_secret(shared_secret)
    return _xor(packet, generate_cipher_stream(generate_key(KEY_AMMAG, shared_secret), len(packet)))


def decode_failure(
    session_key: PrivateKey | bytes,
    route_pubkeys: Sequence[PublicKey | bytes],
    packet: bytes,
) -> tuple[int, FailureMessage]:
    """At the origin: which hop of the route failed (0 = first hop), and its failure message.

    Peels one `ammag` layer per hop and checks the `um` HMAC at each; keeps
    peeling to the end of the route after a match so the time taken does not
    reveal the failing hop's position. FailureDecodeError when no hop's HMAC
    matches (`hop_index` None) or when the matching hop's message is malformed.
    """
    from .onion import KEY_UM, generate_key, route_shared_secrets

    if len(packet) < _HMAC_LEN + 4:
        raise FailureDecodeError(f"error packet of {len(packet)} bytes is too short (at least {_HMAC_LEN + 4})")
    found: tuple[int, bytes] | None = None
    for index, secret in enumerate(route_shared_secrets(session_key, route_pubkeys)):
        packet = wrap_failure(secret, packet)
        expected = hmac.digest(generate_key(KEY_UM, secret), packet[_HMAC_LEN:], _sha256)
        if hmac.compare_digest(expected, packet[:_HMAC_LEN]) and found is None:
            found = (index, packet)
    if found is None:
        raise FailureDecodeError(f"no hop of the {len(route_pubkeys)}-hop route authenticated the error packet")
    index, plain = found
    body = plain[_HMAC_LEN:]
    failure_len = int.from_bytes(body[:2], "big")
    if 2 + failure_len > len(body):
        raise FailureDecodeError(f"failure_len {failure_len} overruns the {len(body)}-byte packet body", index)
    # The pad after failuremsg is covered by the HMAC; its length is not checked.
    try:
        return index, FailureMessage.decode(body[2 : 2 + failure_len])
    except FailureDecodeError as e:
        raise FailureDecodeError(e.reason, index) from None


def _check_secret(shared_secret: bytes) -> None:
    if len(shared_secret) != 32:
        raise ValueError("shared_secret must be 32 bytes")

