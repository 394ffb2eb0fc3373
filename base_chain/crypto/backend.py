"""The interface every secp256k1 backend implements; points are affine (x, y) integer pairs."""

from __future__ import annotations

from typing import Any, Protocol

Point = tuple[int, int]

__all__ = ["Backend", "Point"]


class Backend(Protocol):
    name: str

    def pubkey(self, secret: int) -> Point:
        """secret * G."""

    def load(self, point: Point) -> Any:
        """A backend handle for a point, cached by PublicKey to make repeated verifies cheap."""

    def decode(self, sec: bytes) -> Point:
        """Parse a compressed, uncompressed or hybrid SEC key (ValueError if it is not a point on the curve)."""

    def sign(self, secret: int, msg32: bytes) -> tuple[int, int]:
        """RFC 6979 deterministic ECDSA over a 32-byte digest; returns (r, s) with low s."""

    def sign_recoverable(self, secret: int, msg32: bytes) -> tuple[int, int, int]:
        """Like sign, plus the recovery id (0..3) of the low-s signature."""

    def recover(self, r: int, s: int, recid: int, msg32: bytes) -> Point:
        """The public key that made (r, s) with this recovery id; ValueError if none."""

    def verify(self, handle: Any, msg32: bytes, r: int, s: int) -> bool:
        """ECDSA verification of a low-s signature (the caller normalizes s)."""

    def ecdh(self, secret: int, point: Point) -> bytes:
        """SHA-256 of the compressed shared point (libsecp256k1's and BOLT 8's definition)."""

    def add(self, a: Point, b: Point) -> Point:
        """Point addition; raises ValueError if the result is the point at infinity."""

    def mul(self, point: Point, scalar: int) -> Point:
        """Scalar multiplication by 1 <= scalar < N."""
