"""secp256k1 keys, ECDSA signatures and ECDH behind one interface with two backends.

The backend is `ecdsa` (pure Python; it uses gmpy2 when installed) unless
`CANAL_CRYPTO=coincurve` selects libsecp256k1 through coincurve. Both produce
byte-identical RFC 6979 low-s signatures.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from typing import Any

from .backend import Backend, Point
from .curve import N, encode_point
from .der import encode_der, is_low_s, is_valid_signature_encoding, parse_der_lax

__all__ = [
    "PrivateKey",
    "PublicKey",
    "Backend",
    "available_backends",
    "get_backend",
    "set_backend",
    "encode_der",
    "parse_der_lax",
    "is_valid_signature_encoding",
    "is_low_s",
    "N",
]

_BACKENDS: dict[str, Backend] = {}
_HALF_N = N // 2


def _make(name: str) -> Backend:
    if name == "ecdsa":
        from ._ecdsa_backend import EcdsaBackend

        return EcdsaBackend()
    if name == "coincurve":
        from ._coincurve_backend import CoincurveBackend

        return CoincurveBackend()
    raise ValueError(f"unknown crypto backend {name!r} (expected 'ecdsa' or 'coincurve')")


def available_backends() -> list[str]:
    """The backends that can be loaded on this machine."""
    out = []
    for name in ("ecdsa", "coincurve"):
        try:
            _load(name)
        except ImportError:
            continue
        out.append(name)
    return out


def _load(name: str) -> Backend:
    if name not in _BACKENDS:
        _BACKENDS[name] = _make(name)
    return _BACKENDS[name]


_current: Backend = _load(os.environ.get("CANAL_CRYPTO", "ecdsa") or "ecdsa")


def get_backend() -> Backend:
    return _current


def set_backend(name: str) -> Backend:
    """Switch the process-wide backend (benchmarks and tests use this)."""
    global _current
    _current = _load(name)
    _pubkey_cache.cache_clear()
    return _current


class PublicKey:
    """A point on secp256k1. Parsed keys are cached, so verifying many signatures by one key is cheap."""

    __slots__ = ("point", "_handle", "_backend")

    def __init__(self, point: Point) -> None:
        self.point = point
        self._handle: Any = None
        self._backend: Backend | None = None

    @classmethod
    def from_bytes(cls, sec: bytes) -> PublicKey:
        """Parse a SEC encoding (compressed, uncompressed or hybrid); ValueError if invalid."""
        return _pubkey_cache(bytes(sec))

    def to_bytes(self, compressed: bool = True) -> bytes:
        return encode_point(*self.point, compressed=compressed)

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other.point == self.point

    def __hash__(self) -> int:
        return hash(self.point)

    def __repr__(self) -> str:
        return f"PublicKey({self.to_bytes().hex()})"

    def _backend_handle(self) -> tuple[Backend, Any]:
        backend = _current
        if self._backend is not backend:
            self._handle = backend.load(self.point)
            self._backend = backend
        return backend, self._handle

    def verify(self, r: int, s: int, msg32: bytes, der: bytes | None = None) -> bool:
        """ECDSA verify; a high-s signature is normalized first, as Core's CPubKey::Verify does.

        `der`: the same signature in strict DER, if the caller has it; a backend that takes DER
        (libsecp256k1) then verifies it as it is, without re-encoding.
        """
        backend = _current
        if self._backend is backend:
            handle = self._handle
        else:
            backend, handle = self._backend_handle()
        if s > _HALF_N:
            s = N - s
        elif der is not None and 0 < r < N and s > 0:
            verify_der = getattr(backend, "verify_der", None)
            if verify_der is not None:
                return bool(verify_der(handle, der, msg32))
        return backend.verify(handle, msg32, r, s)

    def verify_der(self, der: bytes, msg32: bytes) -> bool:
        """Verify a DER signature (without sighash byte) with Core's lax parser."""
        rs = parse_der_lax(der)
        if rs is None:
            return False
        return self.verify(rs[0], rs[1], msg32)

    @classmethod
    def recover(cls, sig64: bytes, recid: int, msg32: bytes) -> PublicKey:
        """The key that made a compact (r || s) signature with recovery id recid (BOLT 11, signmessage)."""
        if len(sig64) != 64 or len(msg32) != 32:
            raise ValueError("need a 64-byte signature and a 32-byte digest")
        r = int.from_bytes(sig64[:32], "big")
        s = int.from_bytes(sig64[32:], "big")
        return PublicKey(_current.recover(r, s, recid, msg32))

    def add(self, other: PublicKey) -> PublicKey:
        return PublicKey(_current.add(self.point, other.point))

    def multiply(self, scalar: int | bytes) -> PublicKey:
        k = scalar if isinstance(scalar, int) else int.from_bytes(scalar, "big")
        if not 0 < k < N:
            raise ValueError("scalar out of range")
        return PublicKey(_current.mul(self.point, k))

    def tweak_add(self, scalar: int | bytes) -> PublicKey:
        """self + scalar*G."""
        return self.add(PrivateKey(scalar).public_key())


@lru_cache(maxsize=4096)
def _pubkey_cache(sec: bytes) -> PublicKey:
    return PublicKey(_current.decode(sec))


class PrivateKey:
    """A secp256k1 secret scalar, 1 <= secret < N."""

    __slots__ = ("secret", "_pub")

    def __init__(self, secret: int | bytes) -> None:
        k = secret if isinstance(secret, int) else int.from_bytes(secret, "big")
        if isinstance(secret, bytes) and len(secret) != 32:
            raise ValueError("private key must be 32 bytes")
        if not 0 < k < N:
            raise ValueError("private key out of range")
        self.secret = k
        self._pub: PublicKey | None = None

    @classmethod
    def generate(cls) -> PrivateKey:
        return cls(secrets.randbelow(N - 1) + 1)

    def to_bytes(self) -> bytes:
        return self.secret.to_bytes(32, "big")

    def __repr__(self) -> str:
        return "PrivateKey(<secret>)"

    def public_key(self) -> PublicKey:
        if self._pub is None:
            self._pub = PublicKey(_current.pubkey(self.secret))
        return self._pub

    def sign(self, msg32: bytes) -> tuple[int, int]:
        """RFC 6979 ECDSA over a 32-byte digest; (r, s) with low s."""
        if len(msg32) != 32:
            raise ValueError("can only sign a 32-byte digest")
        return _current.sign(self.secret, msg32)

    def sign_recoverable(self, msg32: bytes) -> tuple[bytes, int]:
        """A compact 64-byte (r || s) low-s signature and its recovery id."""
        if len(msg32) != 32:
            raise ValueError("can only sign a 32-byte digest")
        r, s, recid = _current.sign_recoverable(self.secret, msg32)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big"), recid

    def sign_der(self, msg32: bytes) -> bytes:
        return encode_der(*self.sign(msg32))

    def ecdh(self, pub: PublicKey) -> bytes:
        """SHA-256 of the compressed shared point."""
        return _current.ecdh(self.secret, pub.point)

    def tweak_add(self, scalar: int | bytes) -> PrivateKey:
        k = scalar if isinstance(scalar, int) else int.from_bytes(scalar, "big")
        return PrivateKey((self.secret + k) % N)

    def tweak_mul(self, scalar: int | bytes) -> PrivateKey:
        k = scalar if isinstance(scalar, int) else int.from_bytes(scalar, "big")
        return PrivateKey((self.secret * k) % N)
