"""DER signature encodings: strict DER as BIP66 defines it, and Core's lax parser for old signatures."""

from __future__ import annotations

from .curve import N

__all__ = ["encode_der", "is_valid_signature_encoding", "parse_der_lax", "is_low_s"]


def _der_int(v: int) -> bytes:
    b = v.to_bytes((v.bit_length() + 7) // 8 or 1, "big")
    if b[0] & 0x80:
        b = b"\x00" + b
    return b"\x02" + bytes([len(b)]) + b


def encode_der(r: int, s: int) -> bytes:
    body = _der_int(r) + _der_int(s)
    return b"\x30" + bytes([len(body)]) + body


def is_valid_signature_encoding(sig: bytes) -> bool:
    """BIP66 strict DER check of a signature *with* its trailing sighash byte."""
    # Format: 0x30 [total-length] 0x02 [R-length] [R] 0x02 [S-length] [S] [sighash]
    n = len(sig)
    if n < 9 or n > 73:
        return False
    if sig[0] != 0x30 or sig[1] != n - 3:
        return False
    len_r = sig[3]
    if 5 + len_r >= n:
        return False
    len_s = sig[5 + len_r]
    if len_r + len_s + 7 != n:
        return False
    if sig[2] != 0x02 or len_r == 0 or sig[4] & 0x80:
        return False
    if len_r > 1 and sig[4] == 0x00 and not sig[5] & 0x80:
        return False
    if sig[len_r + 4] != 0x02 or len_s == 0 or sig[len_r + 6] & 0x80:
        return False
    if len_s > 1 and sig[len_r + 6] == 0x00 and not sig[len_r + 7] & 0x80:
        return False
    return True


def _read_len(data: bytes, pos: int) -> tuple[int, int] | None:
    """A DER length as the lax parser reads it; None on failure."""
    if pos == len(data):
        return None
    lenbyte = data[pos]
    pos += 1
    if not lenbyte & 0x80:
        return lenbyte, pos
    lenbyte -= 0x80
    if lenbyte > len(data) - pos:
        return None
    while lenbyte > 0 and data[pos] == 0:
        pos += 1
        lenbyte -= 1
    if lenbyte >= 4:
        return None
    value = 0
    while lenbyte > 0:
        value = (value << 8) + data[pos]
        pos += 1
        lenbyte -= 1
    return value, pos


def parse_der_lax(sig: bytes) -> tuple[int, int] | None:
    """Parse a DER-ish signature the permissive way Core does for pre-BIP66 signatures.

    Returns (r, s), or None when the bytes cannot be parsed at all. An r or s that
    overflows the group order parses as (0, 0), which never verifies.
    """
    n = len(sig)
    pos = 0
    if pos == n or sig[pos] != 0x30:
        return None
    pos += 1
    if pos == n:
        return None
    lenbyte = sig[pos]
    pos += 1
    if lenbyte & 0x80:
        lenbyte -= 0x80
        if lenbyte > n - pos:
            return None
        pos += lenbyte
    parts: list[tuple[int, int]] = []
    for _ in range(2):
        if pos == n or sig[pos] != 0x02:
            return None
        pos += 1
        got = _read_len(sig, pos)
        if got is None:
            return None
        length, pos = got
        if length > n - pos:
            return None
        parts.append((pos, length))
        pos += length
    values: list[int] = []
    overflow = False
    for start, length in parts:
        while length > 0 and sig[start] == 0:
            start += 1
            length -= 1
        if length > 32:
            overflow = True
            values.append(0)
        else:
            values.append(int.from_bytes(sig[start : start + length], "big"))
    r, s = values
    if overflow or r >= N or s >= N:
        return 0, 0
    return r, s


def is_low_s(s: int) -> bool:
    return 0 < s <= N // 2
