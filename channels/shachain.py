"""Per-commitment secrets: the shachain tree and its compact storage (BOLT 3).

The sender of a channel derives every ``per_commitment_secret`` from one seed
(``channels.keys.generate_from_seed``); the secret for index ``I`` is reached
from the seed by flipping and hashing, for each set bit of ``I`` from bit 47
down to bit 0. A secret whose index ends in ``b`` zero bits therefore derives
all secrets whose index shares its upper ``48 - b`` bits, and the receiver can
keep every revealed secret in 49 buckets ("Efficient Per-commitment Secret
Storage"): bucket ``b`` holds the latest secret whose index has exactly ``b``
trailing zeros.

:class:`ShachainStore` is that receiver-side store. It is a plain value: no
I/O; ``to_bytes`` / ``from_bytes`` give a stable encoding for the database.
"""

from __future__ import annotations

import hashlib

__all__ = [
    "MAX_INDEX",
    "NUM_BUCKETS",
    "ShachainError",
    "ShachainStore",
    "derive_secret",
    "where_to_put_secret",
]

#: The first (highest) index of a channel's per-commitment secrets: 2^48 - 1.
MAX_INDEX = (1 << 48) - 1
#: One bucket per possible count of trailing zeros, 0..48.
NUM_BUCKETS = 49

_SERIAL_VERSION = 1
_ENTRY_LEN = 8 + 32


class ShachainError(ValueError):
    """A secret that does not belong to the chain, an out-of-order insert, an
    unknown index, or a malformed serialization."""


def _check_index(index: int) -> None:
    if not 0 <= index <= MAX_INDEX:
        raise ShachainError(f"per-commitment index {index} outside 0..2^48-1")


def _check_secret(secret: bytes) -> None:
    if len(secret) != 32:
        raise ShachainError(f"per-commitment secret must be 32 bytes, not {len(secret)}")


def derive_secret(base: bytes, bits: int, index: int) -> bytes:
    """The secret for `index` from `base`, whose index agrees with `index` above bit `bits`.

    For each bit B from ``bits - 1`` down to 0 that is set in `index`: flip bit
    ``B mod 8`` of byte ``B div 8`` of the value, then SHA-256 it (BOLT 3
    ``derive_secret``; ``generate_from_seed`` is the case ``bits == 48``).
    """
    value = bytearray(base)
    for b in range(bits - 1, -1, -1):
        if (index >> b) & 1:
            value[b // 8] ^= 1 << (b % 8)
            value[:] = hashlib.sha256(value).digest()
    return bytes(value)


def where_to_put_secret(index: int) -> int:
    """The bucket of `index`: its number of trailing zero bits (48 for index 0)."""
    _check_index(index)
    if index == 0:
        return 48
    return (index & -index).bit_length() - 1


class ShachainStore:
    """The received per-commitment secrets of one channel, in at most 49 buckets.

    Secrets must arrive in the order they are revealed: index ``2^48 - 1`` first,
    then each next lower index. :meth:`insert_secret` checks that the new secret
    derives every stored one that it covers and raises :class:`ShachainError`
    otherwise (the peer revealed a secret not generated from its seed). Inserting
    an already-received index again with the same secret is a no-op, so a
    retransmitted ``revoke_and_ack`` is harmless.
    """

    __slots__ = ("_known",)

    def __init__(self) -> None:
        # _known[b] = (index, secret): the latest secret whose index has b trailing zeros.
        self._known: list[tuple[int, bytes]] = []

    # --- queries ----------------------------------------------------------------

    @property
    def next_index(self) -> int | None:
        """The index the next secret must have; None once index 0 has been received."""
        if not self._known:
            return MAX_INDEX
        lowest = min(index for index, _ in self._known)
        return lowest - 1 if lowest > 0 else None

    def __len__(self) -> int:
        """How many secrets have been received (all of them can be derived)."""
        if not self._known:
            return 0
        return MAX_INDEX - min(index for index, _ in self._known) + 1

    def derive_old_secret(self, index: int) -> bytes:
        """The secret for an already-received `index`; ShachainError if it was not received."""
        _check_index(index)
        for b, (known_index, known_secret) in enumerate(self._known):
            # The index in bucket b has b trailing zeros: it is a prefix of `index` if the
            # two agree once the lower b bits of `index` are masked off.
            if index & ~((1 << b) - 1) == known_index:
                return derive_secret(known_secret, b, index)
        raise ShachainError(f"per-commitment secret {index} has not been received")

    # --- updates ----------------------------------------------------------------

    def insert_secret(self, secret: bytes, index: int) -> None:
        """Store the secret for `index`, the next index in descending order."""
        _check_secret(secret)
        _check_index(index)
        expected = self.next_index
        if index != expected:
            if expected is None or index > expected:
                # Already received: accept an identical retransmission, reject a different secret.
                if self.derive_old_secret(index) == bytes(secret):
                    return
                raise ShachainError(f"secret for index {index} differs from the one received before")
            raise ShachainError(f"expected the secret for index {expected}, got index {index}")
        bucket = where_to_put_secret(index)
        for b in range(min(bucket, len(self._known))):
            known_index, known_secret = self._known[b]
            if derive_secret(secret, bucket, known_index) != known_secret:
                raise ShachainError(
                    f"secret for index {index} does not derive the secret for index {known_index}"
                )
        entry = (index, bytes(secret))
        if bucket == len(self._known):
            self._known.append(entry)
        else:
            self._known[bucket] = entry

    # --- serialization ----------------------------------------------------------

    def to_bytes(self) -> bytes:
        """version (1 byte) || bucket count (1 byte) || per bucket: index (u64 BE) || secret (32)."""
        out = bytearray([_SERIAL_VERSION, len(self._known)])
        for index, secret in self._known:
            out += index.to_bytes(8, "big") + secret
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes) -> ShachainStore:
        if len(data) < 2:
            raise ShachainError("shachain serialization too short")
        if data[0] != _SERIAL_VERSION:
            raise ShachainError(f"unknown shachain serialization version {data[0]}")
        count = data[1]
        if count > NUM_BUCKETS:
            raise ShachainError(f"shachain serialization has {count} buckets (at most 49)")
        if len(data) != 2 + count * _ENTRY_LEN:
            raise ShachainError("shachain serialization has the wrong length")
        store = cls()
        for b in range(count):
            off = 2 + b * _ENTRY_LEN
            index = int.from_bytes(data[off : off + 8], "big")
            if index > MAX_INDEX or where_to_put_secret(index) != b:
                raise ShachainError(f"index {index} does not belong in bucket {b}")
            store._known.append((index, bytes(data[off + 8 : off + _ENTRY_LEN])))
        return store

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ShachainStore) and other._known == self._known

    def __repr__(self) -> str:
        return f"ShachainStore(received={len(self)}, next_index={self.next_index})"
