"""secp256k1 through the pure-Python `ecdsa` package (which uses gmpy2 when it is installed)."""

from __future__ import annotations

import hashlib
from typing import Any

from ecdsa import SECP256k1, ecdsa as _ecdsa, ellipticcurve, rfc6979
from ecdsa.ecdh import ECDH  # noqa: F401  (kept importable: the package's ECDH is the reference)

from .backend import Point
from .curve import N, decode_point, encode_point

_G = SECP256k1.generator
_CURVE = SECP256k1.curve


def _to_jacobi(point: Point) -> ellipticcurve.PointJacobi:
    return ellipticcurve.PointJacobi(_CURVE, point[0], point[1], 1, N)


def _affine(p: Any) -> Point:
    if p == ellipticcurve.INFINITY or p.x() is None:
        raise ValueError("point at infinity")
    return int(p.x()), int(p.y())


class EcdsaBackend:
    name = "ecdsa"

    def pubkey(self, secret: int) -> Point:
        return _affine(_G * secret)

    def decode(self, sec: bytes) -> Point:
        return decode_point(sec)

    def load(self, point: Point) -> Any:
        pt = _to_jacobi(point)
        return _ecdsa.Public_key(_G, pt, verify=False)

    def sign(self, secret: int, msg32: bytes) -> tuple[int, int]:
        e = int.from_bytes(msg32, "big")
        priv = _ecdsa.Private_key(_ecdsa.Public_key(_G, _G * secret, verify=False), secret)
        retry = 0
        while True:
            k = rfc6979.generate_k(N, secret, hashlib.sha256, msg32, retry_gen=retry)
            sig = priv.sign(e, k)
            r, s = int(sig.r), int(sig.s)
            if r and s:
                break
            retry += 1
        if s > N // 2:
            s = N - s
        return r, s

    def sign_recoverable(self, secret: int, msg32: bytes) -> tuple[int, int, int]:
        r, s = self.sign(secret, msg32)
        ours = self.pubkey(secret)
        for recid in (0, 1):
            if self.recover(r, s, recid, msg32) == ours:
                return r, s, recid
        raise ValueError("recovery id not found (R.x overflowed the group order)")

    def recover(self, r: int, s: int, recid: int, msg32: bytes) -> Point:
        if not (0 < r < N and 0 < s < N) or recid not in (0, 1, 2, 3):
            raise ValueError("invalid signature for recovery")
        if recid >= 2:
            raise ValueError("recovery ids 2 and 3 are not supported by the ecdsa backend")
        keys = _ecdsa.Signature(r, s).recover_public_keys(int.from_bytes(msg32, "big"), _G)
        return _affine(keys[recid].point)

    def verify(self, handle: Any, msg32: bytes, r: int, s: int) -> bool:
        if not (0 < r < N and 0 < s < N):
            return False
        return bool(handle.verifies(int.from_bytes(msg32, "big"), _ecdsa.Signature(r, s)))

    def ecdh(self, secret: int, point: Point) -> bytes:
        shared = _affine(_to_jacobi(point) * secret)
        return hashlib.sha256(encode_point(*shared)).digest()

    def add(self, a: Point, b: Point) -> Point:
        return _affine(_to_jacobi(a) + _to_jacobi(b))

    def mul(self, point: Point, scalar: int) -> Point:
        return _affine(_to_jacobi(point) * scalar)
