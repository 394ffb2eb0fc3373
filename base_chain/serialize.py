"""Bitcoin's wire encodings: CompactSize, fixed-width integers and a bounds-checked reader."""

from __future__ import annotations

import struct

__all__ = [
    "DeserializationError",
    "ByteReader",
    "compact_size",
    "ser_bytes",
    "u8",
    "u16",
    "u32",
    "i32",
    "u64",
    "i64",
]

MAX_SIZE = 0x02000000  # Core's MAX_SIZE: largest CompactSize accepted when reading


class DeserializationError(ValueError):
    """Malformed bytes: truncated data, non-canonical CompactSize, trailing garbage."""


def compact_size(n: int) -> bytes:
    if n < 0:
        raise ValueError("CompactSize cannot be negative")
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    if n <= 0xFFFFFFFF:
        return b"\xfe" + n.to_bytes(4, "little")
    return b"\xff" + n.to_bytes(8, "little")


def ser_bytes(b: bytes) -> bytes:
    """A CompactSize length followed by the bytes."""
    return compact_size(len(b)) + b


def u8(n: int) -> bytes:
    return struct.pack("<B", n)


def u16(n: int) -> bytes:
    return struct.pack("<H", n)


def u32(n: int) -> bytes:
    return struct.pack("<I", n)


def i32(n: int) -> bytes:
    return struct.pack("<i", n)


def u64(n: int) -> bytes:
    return struct.pack("<Q", n)


def i64(n: int) -> bytes:
    return struct.pack("<q", n)


class ByteReader:
    """Reads Bitcoin-encoded values from a buffer; every read is bounds-checked."""

    __slots__ = ("_buf", "_pos")

    def __init__(self, data: bytes) -> None:
        self._buf = memoryview(data)
        self._pos = 0

    @property
    def pos(self) -> int:
        return self._pos

    def remaining(self) -> int:
        return len(self._buf) - self._pos

    def read(self, n: int) -> bytes:
        if n < 0 or self._pos + n > len(self._buf):
            raise DeserializationError(f"truncated: wanted {n} bytes, {self.remaining()} left")
        out = bytes(self._buf[self._pos : self._pos + n])
        self._pos += n
        return out

    def peek(self, n: int = 1) -> bytes:
        if self._pos + n > len(self._buf):
            raise DeserializationError("truncated")
        return bytes(self._buf[self._pos : self._pos + n])

    def u8(self) -> int:
        return self.read(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.read(2), "little")

    def u32(self) -> int:
        return int.from_bytes(self.read(4), "little")

    def i32(self) -> int:
        return int.from_bytes(self.read(4), "little", signed=True)

    def u64(self) -> int:
        return int.from_bytes(self.read(8), "little")

    def i64(self) -> int:
        return int.from_bytes(self.read(8), "little", signed=True)

    def compact_size(self, limit: int = MAX_SIZE) -> int:
        first = self.u8()
        if first < 0xFD:
            n = first
        elif first == 0xFD:
            n = self.u16()
            if n < 0xFD:
                raise DeserializationError("non-canonical ReadCompactSize()")
        elif first == 0xFE:
            n = self.u32()
            if n < 0x10000:
                raise DeserializationError("non-canonical ReadCompactSize()")
        else:
            n = self.u64()
            if n < 0x100000000:
                raise DeserializationError("non-canonical ReadCompactSize()")
        if n > limit:
            raise DeserializationError("ReadCompactSize(): size too large")
        return n

    def var_bytes(self) -> bytes:
        n = self.compact_size()
        return self.read(n)

    def expect_end(self) -> None:
        if self.remaining():
            raise DeserializationError(f"{self.remaining()} trailing bytes")
