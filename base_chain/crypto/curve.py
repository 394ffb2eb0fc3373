"""secp256k1 domain parameters and SEC public-key encodings (arithmetic on field elements only)."""

from __future__ import annotations

__all__ = ["P", "N", "G", "decode_point", "encode_point", "is_on_curve"]

P = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
G = (
    0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798,
    0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8,
)


def is_on_curve(x: int, y: int) -> bool:
    return 0 <= x < P and 0 <= y < P and (y * y - x * x * x - 7) % P == 0


def decode_point(sec: bytes) -> tuple[int, int]:
    """Parse a compressed (33), uncompressed (65) or hybrid (65, 0x06/0x07) SEC key.

    Raises ValueError for anything that is not a point on the curve.
    """
    if len(sec) == 33 and sec[0] in (2, 3):
        x = int.from_bytes(sec[1:], "big")
        if x >= P:
            raise ValueError("public key x out of range")
        y2 = (pow(x, 3, P) + 7) % P
        y = pow(y2, (P + 1) // 4, P)
        if y * y % P != y2:
            raise ValueError("public key not on curve")
        if y & 1 != sec[0] & 1:
            y = P - y
        return x, y
    if len(sec) == 65 and sec[0] in (4, 6, 7):
        x = int.from_bytes(sec[1:33], "big")
        y = int.from_bytes(sec[33:], "big")
        if not is_on_curve(x, y):
            raise ValueError("public key not on curve")
        if sec[0] in (6, 7) and y & 1 != sec[0] & 1:
            raise ValueError("hybrid public key with wrong parity")
        return x, y
    raise ValueError("invalid public key encoding")


def encode_point(x: int, y: int, compressed: bool = True) -> bytes:
    if compressed:
        return bytes([2 + (y & 1)]) + x.to_bytes(32, "big")
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")
