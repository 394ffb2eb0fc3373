"""Block headers and blocks: Bitcoin's 80-byte header and the block serialization (BIP144 aware).

Hashes are bytes in internal order (as hashed and serialized); ``hash_hex()`` gives
the reversed, human-facing form that block explorers and bitcoin-cli print.

A :class:`BlockHeader` is immutable, so its hash is computed once and cached. A
:class:`Block` is a plain mutable container (a header and its transactions);
changing its transactions does not update ``header.merkle_root`` -- rebuild the
header with :func:`dataclasses.replace` (see ``base_chain.merkle.block_merkle_root``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .hashes import hash256
from .serialize import ByteReader, DeserializationError, compact_size, i32, u32
from .tx import Transaction

__all__ = ["BlockHeader", "Block", "HEADER_SIZE", "NULL_HASH"]

HEADER_SIZE = 80
NULL_HASH = b"\x00" * 32
WITNESS_SCALE_FACTOR = 4

_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1
_U32_MAX = 2**32 - 1


def _from_hex(s: str, what: str) -> bytes:
    try:
        return bytes.fromhex(s)
    except ValueError as e:
        raise DeserializationError(f"{what} decode failed: not hex") from e


@dataclass(frozen=True, slots=True)
class BlockHeader:
    """The 80-byte block header (Core's CBlockHeader).

    ``prev_block`` and ``merkle_root`` are 32 bytes in internal order.
    """

    version: int
    prev_block: bytes
    merkle_root: bytes
    time: int
    bits: int
    nonce: int
    _hash: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.prev_block) != 32:
            raise ValueError(f"prev_block must be 32 bytes, got {len(self.prev_block)}")
        if len(self.merkle_root) != 32:
            raise ValueError(f"merkle_root must be 32 bytes, got {len(self.merkle_root)}")
        if not _I32_MIN <= self.version <= _I32_MAX:
            raise ValueError(f"version out of int32 range: {self.version}")
        for name in ("time", "bits", "nonce"):
            value = getattr(self, name)
            if not 0 <= value <= _U32_MAX:
                raise ValueError(f"{name} out of uint32 range: {value}")

    # --- serialization ---------------------------------------------------------

    def to_bytes(self) -> bytes:
        return b"".join(
            (
                i32(self.version),
                self.prev_block,
                self.merkle_root,
                u32(self.time),
                u32(self.bits),
                u32(self.nonce),
            )
        )

    @classmethod
    def read(cls, r: ByteReader) -> BlockHeader:
        return cls(r.i32(), r.read(32), r.read(32), r.u32(), r.u32(), r.u32())

    @classmethod
    def from_bytes(cls, raw: bytes) -> BlockHeader:
        r = ByteReader(raw)
        header = cls.read(r)
        r.expect_end()
        return header

    @classmethod
    def from_hex(cls, s: str) -> BlockHeader:
        return cls.from_bytes(_from_hex(s, "header"))

    def hex(self) -> str:
        return self.to_bytes().hex()

    # --- identity --------------------------------------------------------------

    @property
    def hash(self) -> bytes:
        """Double SHA-256 of the 80 bytes, internal byte order (cached)."""
        h = self._hash
        if h is None:
            h = hash256(self.to_bytes())
            object.__setattr__(self, "_hash", h)
        return h

    def hash_hex(self) -> str:
        """The block hash as people see it (reversed byte order)."""
        return self.hash[::-1].hex()

    def prev_block_hex(self) -> str:
        return self.prev_block[::-1].hex()


@dataclass(slots=True)
class Block:
    """A header and its transactions, the coinbase first (Core's CBlock)."""

    header: BlockHeader
    transactions: list[Transaction] = field(default_factory=list)

    # --- serialization ---------------------------------------------------------

    def to_bytes(self, include_witness: bool = True) -> bytes:
        parts = [self.header.to_bytes(), compact_size(len(self.transactions))]
        parts += [tx.to_bytes(include_witness) for tx in self.transactions]
        return b"".join(parts)

    @classmethod
    def read(cls, r: ByteReader) -> Block:
        header = BlockHeader.read(r)
        n = r.compact_size()
        return cls(header, [Transaction.read(r) for _ in range(n)])

    @classmethod
    def from_bytes(cls, raw: bytes) -> Block:
        r = ByteReader(raw)
        block = cls.read(r)
        r.expect_end()
        return block

    @classmethod
    def from_hex(cls, s: str) -> Block:
        return cls.from_bytes(_from_hex(s, "Block"))

    def hex(self) -> str:
        return self.to_bytes().hex()

    # --- identity and size -----------------------------------------------------

    @property
    def hash(self) -> bytes:
        return self.header.hash

    def hash_hex(self) -> str:
        return self.header.hash_hex()

    @property
    def size(self) -> int:
        """Serialized size with witness data (getblock's "size")."""
        return len(self.to_bytes())

    @property
    def stripped_size(self) -> int:
        """Serialized size without witness data (getblock's "strippedsize")."""
        return len(self.to_bytes(include_witness=False))

    @property
    def weight(self) -> int:
        """Core's GetBlockWeight: stripped size * 3 + total size."""
        return self.stripped_size * (WITNESS_SCALE_FACTOR - 1) + self.size
