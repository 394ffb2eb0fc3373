"""secp256k1 through `coincurve` (libsecp256k1); optional, installed with the `fast` extra."""

from __future__ import annotations

from typing import Any

import coincurve

from .backend import Point
from .curve import N, encode_point
from .der import encode_der


def _pub(point: Point) -> coincurve.PublicKey:
    return coincurve.PublicKey(encode_point(*point, compressed=True))


def _point(pub: coincurve.PublicKey) -> Point:
    raw = pub.format(compressed=False)
    return int.from_bytes(raw[1:33], "big"), int.from_bytes(raw[33:], "big")


def _scalar(k: int) -> bytes:
    return k.to_bytes(32, "big")


class CoincurveBackend:
    name = "coincurve"

    def pubkey(self, secret: int) -> Point:
        return _point(coincurve.PrivateKey(_scalar(secret)).public_key)

    def decode(self, sec: bytes) -> Point:
        if len(sec) not in (33, 65):  # libsecp256k1 parses exactly these lengths; keep the message ours
            raise ValueError("invalid public key encoding")
        try:
            return _point(coincurve.PublicKey(sec))
        except (ValueError, TypeError) as e:
            raise ValueError(f"invalid public key: {e}") from None

    def load(self, point: Point) -> Any:
        return _pub(point)

    def sign(self, secret: int, msg32: bytes) -> tuple[int, int]:
        sig = coincurve.PrivateKey(_scalar(secret)).sign(msg32, hasher=None)
        # libsecp256k1 always signs with low s; decode its DER output.
        len_r = sig[3]
        r = int.from_bytes(sig[4 : 4 + len_r], "big")
        s = int.from_bytes(sig[6 + len_r :], "big")
        return r, s

    def sign_recoverable(self, secret: int, msg32: bytes) -> tuple[int, int, int]:
        sig = coincurve.PrivateKey(_scalar(secret)).sign_recoverable(msg32, hasher=None)
        return int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]

    def recover(self, r: int, s: int, recid: int, msg32: bytes) -> Point:
        if not (0 < r < N and 0 < s < N) or recid not in (0, 1, 2, 3):
            raise ValueError("invalid signature for recovery")
        sig = _scalar(r) + _scalar(s) + bytes([recid])
        try:
            return _point(coincurve.PublicKey.from_signature_and_message(sig, msg32, hasher=None))
        except Exception as e:  # coincurve raises a bare Exception on failure
            raise ValueError(f"cannot recover public key: {e}") from e

    def verify(self, handle: Any, msg32: bytes, r: int, s: int) -> bool:
        if not (0 < r < N and 0 < s < N):
            return False
        return bool(handle.verify(encode_der(r, s), msg32, hasher=None))

    def verify_der(self, handle: Any, der: bytes, msg32: bytes) -> bool:
        """Verify an already strict-DER, low-s signature as it is: no decode and re-encode in Python."""
        return bool(handle.verify(der, msg32, hasher=None))

    def ecdh(self, secret: int, point: Point) -> bytes:
        return bytes(coincurve.PrivateKey(_scalar(secret)).ecdh(encode_point(*point)))

    def add(self, a: Point, b: Point) -> Point:
        try:
            return _point(coincurve.PublicKey.combine_keys([_pub(a), _pub(b)]))
        except ValueError as e:
            raise ValueError("point at infinity") from e

    def mul(self, point: Point, scalar: int) -> Point:
        return _point(_pub(point).multiply(_scalar(scalar)))
