"""Address encodings: bech32 / bech32m (BIP173, BIP350), Base58Check, and the
mapping between addresses and output scripts.

Everything here is pure: strings and bytes in, strings and bytes out. Every
rejection raises :class:`AddressError` whose message starts with the reason
("invalid checksum", "mixed case", "wrong network", ...).

Network prefixes are parameters (:class:`AddressPrefixes`); the chain
parameters module supplies one per chain instance.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "AddressError",
    "AddressPrefixes",
    "Encoding",
    "MAINNET",
    "REGTEST",
    "TESTNET",
    "address_to_script",
    "b58check_decode",
    "b58check_encode",
    "b58decode",
    "b58encode",
    "bech32_decode",
    "bech32_encode",
    "convertbits",
    "decode_segwit_address",
    "encode_segwit_address",
    "p2pkh_script",
    "p2sh_script",
    "script_to_address",
    "witness_script",
]


class AddressError(ValueError):
    """An address or encoded string was rejected; the message names the reason."""


# --------------------------------------------------------------------------
# bech32 / bech32m
# --------------------------------------------------------------------------


class Encoding(enum.Enum):
    """Checksum variant; the value is the constant the polymod must equal."""

    BECH32 = 1
    BECH32M = 0x2BC830A3


BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARSET_INDEX: dict[str, int] = {c: i for i, c in enumerate(BECH32_CHARSET)}
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
BECH32_MAX_LENGTH = 90
_CHECKSUM_LENGTH = 6


def _polymod(values: Iterable[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = ((chk & 0x1FFFFFF) << 5) ^ value
        for bit, gen in enumerate(_GENERATOR):
            if (top >> bit) & 1:
                chk ^= gen
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    codes = [ord(c) for c in hrp]
    return [c >> 5 for c in codes] + [0] + [c & 31 for c in codes]


def _checksum(hrp: str, data5: Sequence[int], spec: Encoding) -> list[int]:
    pm = _polymod(_hrp_expand(hrp) + list(data5) + [0] * _CHECKSUM_LENGTH) ^ spec.value
    return [(pm >> (5 * (5 - i))) & 31 for i in range(_CHECKSUM_LENGTH)]


def bech32_encode(
    hrp: str,
    data5: list[int],
    spec: Encoding,
    *,
    max_length: int | None = BECH32_MAX_LENGTH,
) -> str:
    """Encode 5-bit ``data5`` under ``hrp`` with a bech32 or bech32m checksum.

    The result is lowercase. ``max_length=None`` lifts the 90-character limit
    (BOLT11 invoices are longer).
    """
    if not hrp:
        raise AddressError("empty hrp")
    for ch in hrp:
        if not 33 <= ord(ch) <= 126:
            raise AddressError(f"hrp out of range: character {ch!r}")
    if any(not 0 <= v < 32 for v in data5):
        raise AddressError("invalid data value: 5-bit groups must be 0..31")
    hrp = hrp.lower()
    out = hrp + "1" + "".join(BECH32_CHARSET[v] for v in data5 + _checksum(hrp, data5, spec))
    if max_length is not None and len(out) > max_length:
        raise AddressError(f"too long: {len(out)} characters, at most {max_length}")
    return out


def bech32_decode(
    s: str, *, max_length: int | None = BECH32_MAX_LENGTH
) -> tuple[str, list[int], Encoding]:
    """Decode a bech32 or bech32m string into (lowercase hrp, 5-bit data, encoding).

    The returned data excludes the checksum.
    """
    sep = s.rfind("1")
    for i, ch in enumerate(s):
        if not 33 <= ord(ch) <= 126:
            if i < sep:
                raise AddressError(f"hrp out of range: character {ch!r} at {i}")
            raise AddressError(f"invalid character {ch!r} at {i}")
    if s.lower() != s and s.upper() != s:
        raise AddressError("mixed case")
    if max_length is not None and len(s) > max_length:
        raise AddressError(f"too long: {len(s)} characters, at most {max_length}")
    if sep == -1:
        raise AddressError("invalid separator position: no separator '1'")
    if sep == 0:
        raise AddressError("invalid separator position: empty hrp")
    if sep + 1 + _CHECKSUM_LENGTH > len(s):
        raise AddressError("invalid separator position: checksum too short")
    s = s.lower()
    hrp = s[:sep]
    data: list[int] = []
    for i, ch in enumerate(s[sep + 1 :], start=sep + 1):
        value = _CHARSET_INDEX.get(ch)
        if value is None:
            raise AddressError(f"invalid character {ch!r} at {i}")
        data.append(value)
    const = _polymod(_hrp_expand(hrp) + data)
    for spec in Encoding:
        if const == spec.value:
            return hrp, data[:-_CHECKSUM_LENGTH], spec
    raise AddressError("invalid checksum")


def convertbits(
    data: Iterable[int], frombits: int, tobits: int, pad: bool = True
) -> list[int]:
    """Regroup a sequence of ``frombits``-bit values into ``tobits``-bit values.

    With ``pad`` the last group is zero-filled; without it, leftover bits must
    be fewer than ``frombits`` and all zero (the BIP173 decoding rule).
    """
    acc = 0
    bits = 0
    out: list[int] = []
    maxv = (1 << tobits) - 1
    for value in data:
        if value < 0 or value >> frombits:
            raise AddressError(f"invalid value {value} for {frombits}-bit group")
        acc = ((acc << frombits) | value) & ((1 << (frombits + tobits)) - 1)
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (tobits - bits)) & maxv)
    elif bits >= frombits:
        raise AddressError(f"invalid padding: {bits} bits of padding, at most {frombits - 1}")
    elif (acc << (tobits - bits)) & maxv:
        raise AddressError("invalid padding: non-zero padding bits")
    return out


# --------------------------------------------------------------------------
# segwit addresses
# --------------------------------------------------------------------------


def _check_witness(witver: int, program: bytes) -> None:
    if not 0 <= witver <= 16:
        raise AddressError(f"invalid witness version {witver}")
    if not 2 <= len(program) <= 40:
        raise AddressError(f"invalid program length {len(program)}: must be 2..40 bytes")
    if witver == 0 and len(program) not in (20, 32):
        raise AddressError(
            f"invalid program length {len(program)} for witness version 0: must be 20 or 32"
        )


def encode_segwit_address(hrp: str, witver: int, program: bytes) -> str:
    """Encode a witness program (bech32 for v0, bech32m for v1..16)."""
    _check_witness(witver, program)
    spec = Encoding.BECH32 if witver == 0 else Encoding.BECH32M
    return bech32_encode(hrp, [witver] + convertbits(program, 8, 5), spec)


def decode_segwit_address(hrp: str, addr: str) -> tuple[int, bytes]:
    """Decode a segwit address for the network ``hrp`` into (version, program)."""
    got_hrp, data, spec = bech32_decode(addr)
    if got_hrp != hrp.lower():
        raise AddressError(f"wrong network: hrp {got_hrp!r}, expected {hrp.lower()!r}")
    if not data:
        raise AddressError("empty data section")
    witver = data[0]
    if witver > 16:
        raise AddressError(f"invalid witness version {witver}")
    program = bytes(convertbits(data[1:], 5, 8, pad=False))
    _check_witness(witver, program)
    if witver == 0 and spec is not Encoding.BECH32:
        raise AddressError("invalid checksum: witness version 0 requires bech32")
    if witver != 0 and spec is not Encoding.BECH32M:
        raise AddressError(f"invalid checksum: witness version {witver} requires bech32m")
    return witver, program


# --------------------------------------------------------------------------
# Base58 / Base58Check
# --------------------------------------------------------------------------

B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX: dict[str, int] = {c: i for i, c in enumerate(B58_ALPHABET)}


def b58encode(data: bytes) -> str:
    """Base58 (Bitcoin alphabet); each leading zero byte becomes a '1'."""
    zeros = len(data) - len(data.lstrip(b"\x00"))
    n = int.from_bytes(data, "big")
    digits: list[str] = []
    while n:
        n, rem = divmod(n, 58)
        digits.append(B58_ALPHABET[rem])
    return "1" * zeros + "".join(reversed(digits))


def b58decode(s: str) -> bytes:
    """Inverse of :func:`b58encode`."""
    n = 0
    for i, ch in enumerate(s):
        digit = _B58_INDEX.get(ch)
        if digit is None:
            raise AddressError(f"invalid base58 character {ch!r} at {i}")
        n = n * 58 + digit
    zeros = len(s) - len(s.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return b"\x00" * zeros + body


def _check4(payload: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]


def b58check_encode(payload: bytes) -> str:
    """Base58 of ``payload`` followed by the first 4 bytes of its double SHA-256."""
    return b58encode(payload + _check4(payload))


def b58check_decode(s: str) -> bytes:
    """Decode Base58Check and verify its checksum; returns the payload."""
    raw = b58decode(s)
    if len(raw) < 4:
        raise AddressError("too short: base58check needs a 4-byte checksum")
    payload, check = raw[:-4], raw[-4:]
    if _check4(payload) != check:
        raise AddressError("invalid checksum")
    return payload


# --------------------------------------------------------------------------
# addresses <-> scriptPubKey
# --------------------------------------------------------------------------

OP_0 = 0x00
OP_1 = 0x51
OP_16 = 0x60
OP_DUP = 0x76
OP_HASH160 = 0xA9
OP_EQUAL = 0x87
OP_EQUALVERIFY = 0x88
OP_CHECKSIG = 0xAC


@dataclass(frozen=True, slots=True)
class AddressPrefixes:
    """What tells one network's addresses apart."""

    hrp: str
    p2pkh: int
    p2sh: int


MAINNET = AddressPrefixes("bc", 0x00, 0x05)
TESTNET = AddressPrefixes("tb", 0x6F, 0xC4)
REGTEST = AddressPrefixes("bcrt", 0x6F, 0xC4)


def p2pkh_script(pubkey_hash: bytes) -> bytes:
    """OP_DUP OP_HASH160 <20 bytes> OP_EQUALVERIFY OP_CHECKSIG."""
    if len(pubkey_hash) != 20:
        raise AddressError("invalid hash length: P2PKH needs 20 bytes")
    return bytes([OP_DUP, OP_HASH160, 20]) + pubkey_hash + bytes([OP_EQUALVERIFY, OP_CHECKSIG])


def p2sh_script(script_hash: bytes) -> bytes:
    """OP_HASH160 <20 bytes> OP_EQUAL."""
    if len(script_hash) != 20:
        raise AddressError("invalid hash length: P2SH needs 20 bytes")
    return bytes([OP_HASH160, 20]) + script_hash + bytes([OP_EQUAL])


def witness_script(witver: int, program: bytes) -> bytes:
    """OP_n followed by a direct push of the witness program."""
    _check_witness(witver, program)
    opcode = OP_0 if witver == 0 else OP_1 + witver - 1
    return bytes([opcode, len(program)]) + program


def _parse_witness(script: bytes) -> tuple[int, bytes] | None:
    if not 4 <= len(script) <= 42 or script[1] != len(script) - 2:
        return None
    op = script[0]
    if op == OP_0:
        witver = 0
    elif OP_1 <= op <= OP_16:
        witver = op - OP_1 + 1
    else:
        return None
    program = script[2:]
    if witver == 0 and len(program) not in (20, 32):
        return None
    return witver, program


def script_to_address(script_pubkey: bytes, prefixes: AddressPrefixes) -> str | None:
    """The address paying to ``script_pubkey``, or None if it has no address form."""
    s = script_pubkey
    if (
        len(s) == 25
        and s[:3] == bytes([OP_DUP, OP_HASH160, 20])
        and s[23:] == bytes([OP_EQUALVERIFY, OP_CHECKSIG])
    ):
        return b58check_encode(bytes([prefixes.p2pkh]) + s[3:23])
    if len(s) == 23 and s[:2] == bytes([OP_HASH160, 20]) and s[22] == OP_EQUAL:
        return b58check_encode(bytes([prefixes.p2sh]) + s[2:22])
    witness = _parse_witness(s)
    if witness is not None:
        return encode_segwit_address(prefixes.hrp, *witness)
    return None


def _looks_like_bech32(addr: str) -> bool:
    hrp, sep, rest = addr.rpartition("1")
    return bool(sep and hrp and hrp.isascii() and hrp.isalpha() and len(rest) >= 6)


def address_to_script(addr: str, prefixes: AddressPrefixes) -> bytes:
    """The scriptPubKey an address on the network ``prefixes`` pays to."""
    hrp, sep, _ = addr.lower().rpartition("1")
    if sep and hrp == prefixes.hrp.lower():
        return witness_script(*decode_segwit_address(prefixes.hrp, addr))
    try:
        payload = b58check_decode(addr)
    except AddressError as b58_error:
        if not _looks_like_bech32(addr):
            raise
        try:
            other_hrp, _, _ = bech32_decode(addr)
        except AddressError as bech32_error:
            raise bech32_error from b58_error
        raise AddressError(
            f"wrong network: hrp {other_hrp!r}, expected {prefixes.hrp.lower()!r}"
        ) from None
    if len(payload) != 21:
        raise AddressError(f"invalid address length: {len(payload)}-byte payload, expected 21")
    version, body = payload[0], payload[1:]
    if version == prefixes.p2pkh:
        return p2pkh_script(body)
    if version == prefixes.p2sh:
        return p2sh_script(body)
    raise AddressError(f"wrong network: version byte 0x{version:02x}")
