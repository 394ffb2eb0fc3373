"""The hash functions of Bitcoin: SHA-256, double SHA-256, RIPEMD-160, HASH160 and tagged hashes."""

from __future__ import annotations

import hashlib

__all__ = ["sha1", "sha256", "hash256", "ripemd160", "hash160", "tagged_hash"]


def sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def hash256(data: bytes) -> bytes:
    """SHA-256 applied twice (txids, block hashes, checksums)."""
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


_RIPEMD160 = hashlib.new("ripemd160")  # copied per use: much cheaper than hashlib.new each time


def ripemd160(data: bytes) -> bytes:
    h = _RIPEMD160.copy()
    h.update(data)
    return h.digest()


def hash160(data: bytes) -> bytes:
    """RIPEMD-160 of SHA-256 (P2PKH, P2WPKH, P2SH)."""
    return ripemd160(hashlib.sha256(data).digest())


def tagged_hash(tag: str, data: bytes) -> bytes:
    """BIP340 tagged hash: SHA-256(SHA-256(tag) || SHA-256(tag) || data)."""
    t = hashlib.sha256(tag.encode()).digest()
    return hashlib.sha256(t + t + data).digest()
