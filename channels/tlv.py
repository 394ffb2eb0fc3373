"""BOLT 1 fundamental types, BigSize and TLV streams.

Everything here is pure: bytes in, values out (or the reverse). A malformed
input raises :class:`TlvError`, whose ``reason`` says what was wrong.

* **BigSize** (:func:`encode_bigsize`, :func:`decode_bigsize`): Bitcoin's
  CompactSize, big-endian, and always minimally encoded; a longer encoding than
  needed is rejected as ``"decoded bigsize is not canonical"``.
* **Fundamental types**: :class:`Reader` is a bounds-checked cursor with one
  method per BOLT type (``u16``, ``u64``, ``s32``, ``tu64``, ``point``, ...); the
  ``encode_*`` functions are the writers. Truncated integers (``tu16``,
  ``tu32``, ``tu64``) must be minimal (no leading zero byte) and are always the
  last field of a record, so they take the rest of the record.
* **TLV streams**: :func:`decode_tlv_records` checks the framing of a stream
  (minimal ``type`` and ``length``, strictly increasing types, lengths within the
  data). A :class:`TlvNamespace` declares the record types one message (or
  onion payload) knows, as typed :class:`TlvRecordType` values, and decodes a
  stream into a :class:`TlvStream`: known records are decoded (their length must
  match their encoding exactly), unknown *odd* records are kept raw so the
  stream re-encodes byte for byte, and an unknown *even* record fails the
  stream ("it's OK to be odd").

Declaring a namespace::

    AMOUNT = TlvRecordType(2, "amt_to_forward", Reader.tu64, encode_tu64)
    CLTV = TlvRecordType(4, "outgoing_cltv_value", Reader.tu32, encode_tu32)
    PAYLOAD_TLVS = TlvNamespace("payload", AMOUNT, CLTV)

    stream = PAYLOAD_TLVS.decode(data)
    amount: int | None = stream.get(AMOUNT)
    data = TlvStream().set(AMOUNT, 1000).set(CLTV, 144).encode()
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

from base_chain.crypto import PublicKey

__all__ = [
    "TlvError",
    "U64_MAX",
    # BigSize
    "encode_bigsize",
    "decode_bigsize",
    # fundamental types
    "Reader",
    "encode_u8",
    "encode_u16",
    "encode_u32",
    "encode_u64",
    "encode_signed",
    "decode_signed",
    "encode_tu16",
    "encode_tu32",
    "encode_tu64",
    "encode_point",
    # TLV
    "TlvRecord",
    "TlvRecordType",
    "TlvStream",
    "TlvNamespace",
    "decode_tlv_records",
    "encode_tlv_records",
]

T = TypeVar("T")

U64_MAX = 2**64 - 1

# lnd's reasons, which the BOLT 1 BigSize vectors quote.
_EOF = "EOF"
_UNEXPECTED_EOF = "unexpected EOF"
_NOT_CANONICAL = "decoded bigsize is not canonical"


class TlvError(ValueError):
    """Bytes that break BOLT 1's encoding rules; ``reason`` says which rule."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------------------
# BigSize


def encode_bigsize(value: int) -> bytes:
    """The minimal BigSize encoding of 0 <= value < 2**64."""
    if not 0 <= value <= U64_MAX:
        raise ValueError(f"bigsize out of range: {value}")
    if value < 0xFD:
        return bytes([value])
    if value <= 0xFFFF:
        return b"\xfd" + value.to_bytes(2, "big")
    if value <= 0xFFFFFFFF:
        return b"\xfe" + value.to_bytes(4, "big")
    return b"\xff" + value.to_bytes(8, "big")


def _read_bigsize(data: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it); TlvError "EOF", "unexpected EOF" or "... not canonical"."""
    if pos >= len(data):
        raise TlvError(_EOF)
    first = data[pos]
    if first < 0xFD:
        return first, pos + 1
    width, minimum = {0xFD: (2, 0xFD), 0xFE: (4, 0x10000), 0xFF: (8, 0x100000000)}[first]
    end = pos + 1 + width
    if end > len(data):
        raise TlvError(_UNEXPECTED_EOF)
    value = int.from_bytes(data[pos + 1 : end], "big")
    if value < minimum:
        raise TlvError(_NOT_CANONICAL)
    return value, end


def decode_bigsize(data: bytes) -> int:
    """Decode exactly one BigSize that fills ``data``."""
    value, end = _read_bigsize(bytes(data), 0)
    if end != len(data):
        raise TlvError(f"{len(data) - end} bytes after the bigsize")
    return value


# ---------------------------------------------------------------------------
# Fundamental types: writers


def _unsigned(value: int, width: int, name: str) -> bytes:
    if not 0 <= value < 1 << (8 * width):
        raise ValueError(f"{name} out of range: {value}")
    return value.to_bytes(width, "big")


def encode_u8(value: int) -> bytes:
    return _unsigned(value, 1, "u8")


def encode_u16(value: int) -> bytes:
    return _unsigned(value, 2, "u16")


def encode_u32(value: int) -> bytes:
    return _unsigned(value, 4, "u32")


def encode_u64(value: int) -> bytes:
    return _unsigned(value, 8, "u64")


def encode_signed(value: int, width: int) -> bytes:
    """``s8``/``s16``/``s32``/``s64`` (width 1, 2, 4, 8): big-endian two's complement."""
    if width not in (1, 2, 4, 8):
        raise ValueError(f"no s{8 * width} type")
    bound = 1 << (8 * width - 1)
    if not -bound <= value < bound:
        raise ValueError(f"s{8 * width} out of range: {value}")
    return value.to_bytes(width, "big", signed=True)


def decode_signed(data: bytes) -> int:
    """Decode an ``s8``/``s16``/``s32``/``s64`` whose width is ``len(data)``."""
    if len(data) not in (1, 2, 4, 8):
        raise TlvError(f"a signed integer is 1, 2, 4 or 8 bytes, not {len(data)}")
    return int.from_bytes(data, "big", signed=True)


def _truncated(value: int, width: int, name: str) -> bytes:
    return _unsigned(value, width, name).lstrip(b"\x00")


def encode_tu16(value: int) -> bytes:
    """A truncated u16: big-endian with leading zero bytes omitted (0 is empty)."""
    return _truncated(value, 2, "tu16")


def encode_tu32(value: int) -> bytes:
    return _truncated(value, 4, "tu32")


def encode_tu64(value: int) -> bytes:
    return _truncated(value, 8, "tu64")


def encode_point(key: PublicKey) -> bytes:
    """A ``point``: the 33-byte compressed SEC encoding."""
    return key.to_bytes(compressed=True)


# ---------------------------------------------------------------------------
# Fundamental types: reader


class Reader:
    """A bounds-checked cursor over one message or record value.

    Every read past the end raises TlvError("... shorter than its encoding ...");
    :meth:`finish` raises if bytes are left over.
    """

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._pos = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    @property
    def position(self) -> int:
        return self._pos

    def at_end(self) -> bool:
        return self._pos >= len(self._data)

    def finish(self) -> None:
        """Raise unless every byte has been read."""
        if self.remaining:
            raise TlvError(f"longer than its encoding ({self.remaining} bytes left over)")

    def read(self, n: int) -> bytes:
        if n < 0:
            raise ValueError("negative read")
        if n > self.remaining:
            raise TlvError(f"shorter than its encoding (needs {n} bytes, {self.remaining} left)")
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def rest(self) -> bytes:
        """Everything not yet read (for ``...*byte`` fields and TLV extensions)."""
        out = self._data[self._pos :]
        self._pos = len(self._data)
        return out

    def u8(self) -> int:
        return self.read(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.read(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self.read(4), "big")

    def u64(self) -> int:
        return int.from_bytes(self.read(8), "big")

    def s8(self) -> int:
        return decode_signed(self.read(1))

    def s16(self) -> int:
        return decode_signed(self.read(2))

    def s32(self) -> int:
        return decode_signed(self.read(4))

    def s64(self) -> int:
        return decode_signed(self.read(8))

    def bigsize(self) -> int:
        try:
            value, self._pos = _read_bigsize(self._data, self._pos)
        except TlvError as e:
            if e.reason == _NOT_CANONICAL:
                raise
            raise TlvError(f"shorter than its encoding (bigsize: {e.reason})") from None
        return value

    def _truncated(self, width: int, name: str) -> int:
        if self.remaining > width:
            raise TlvError(f"longer than its encoding ({name} is at most {width} bytes, got {self.remaining})")
        raw = self.rest()
        if raw[:1] == b"\x00":
            raise TlvError(f"{name} is not minimal (leading zero byte)")
        return int.from_bytes(raw, "big")

    def tu16(self) -> int:
        """A truncated u16 taking the rest of the value (must be minimal)."""
        return self._truncated(2, "tu16")

    def tu32(self) -> int:
        return self._truncated(4, "tu32")

    def tu64(self) -> int:
        return self._truncated(8, "tu64")

    def point(self) -> PublicKey:
        """A 33-byte compressed point, checked to be on the curve."""
        raw = self.read(33)
        if raw[0] not in (2, 3):
            raise TlvError(f"not a valid point (prefix 0x{raw[0]:02x})")
        try:
            return PublicKey.from_bytes(raw)
        except ValueError as e:
            raise TlvError(f"not a valid point ({e})") from None


# ---------------------------------------------------------------------------
# TLV records and streams


class TlvRecord(NamedTuple):
    """One raw record: its type and value bytes."""

    type: int
    value: bytes


def decode_tlv_records(data: bytes) -> list[TlvRecord]:
    """Split a TLV stream into raw records, enforcing BOLT 1's framing rules.

    Checks: minimal ``type`` and ``length``; strictly increasing types (so no
    duplicates); every ``length`` within the bytes left. It does not apply the
    odd/even rule, which needs to know the namespace (see :class:`TlvNamespace`).
    """
    data = bytes(data)
    records: list[TlvRecord] = []
    pos = 0
    prev: int | None = None
    while pos < len(data):
        try:
            t, pos = _read_bigsize(data, pos)
        except TlvError as e:
            if e.reason == _NOT_CANONICAL:
                raise TlvError(f"tlv type not minimally encoded ({e.reason})") from None
            raise TlvError(f"tlv type truncated ({e.reason})") from None
        if prev is not None and t <= prev:
            if t == prev:
                raise TlvError(f"duplicate tlv type {t}")
            raise TlvError(f"tlv types not strictly increasing: {t} after {prev}")
        try:
            length, pos = _read_bigsize(data, pos)
        except TlvError as e:
            if e.reason == _NOT_CANONICAL:
                raise TlvError(f"tlv length not minimally encoded for type {t} ({e.reason})") from None
            raise TlvError(f"tlv length truncated for type {t} ({e.reason})") from None
        if length > len(data) - pos:
            raise TlvError(f"tlv value truncated for type {t}: length {length}, {len(data) - pos} bytes left")
        records.append(TlvRecord(t, data[pos : pos + length]))
        pos += length
        prev = t
    return records


def encode_tlv_records(records: Iterable[TlvRecord]) -> bytes:
    """Serialize raw records, sorted by type; ValueError on a duplicate type."""
    out = bytearray()
    prev: int | None = None
    for t, value in sorted(records, key=lambda r: r.type):
        if t == prev:
            raise ValueError(f"duplicate tlv type {t}")
        out += encode_bigsize(t) + encode_bigsize(len(value)) + value
        prev = t
    return bytes(out)


@dataclass(frozen=True, eq=False)
class TlvRecordType(Generic[T]):
    """A known record: its ``type``, BOLT name, and how its value is read and written.

    ``read`` gets a :class:`Reader` over exactly the record's value; it must read
    all of it (leftover bytes fail the stream, as does running short).
    """

    type: int
    name: str
    read: Callable[[Reader], T]
    write: Callable[[T], bytes]

    def __post_init__(self) -> None:
        if not 0 <= self.type <= U64_MAX:
            raise ValueError(f"tlv type out of range: {self.type}")

    def decode_value(self, value: bytes) -> T:
        r = Reader(value)
        result = self.read(r)
        r.finish()
        return result

    def __repr__(self) -> str:
        return f"TlvRecordType({self.type}, {self.name!r})"


class TlvStream:
    """A decoded TLV stream: known records as values, unknown (odd) records raw.

    Immutable; :meth:`set` and :meth:`remove` return a new stream.
    :meth:`encode` writes all records in type order, so a decoded stream
    re-encodes to the same bytes (unknown odd records included).
    """

    __slots__ = ("_known", "_unknown")

    def __init__(self, unknown: Iterable[TlvRecord] = ()) -> None:
        self._known: dict[int, tuple[TlvRecordType[Any], Any]] = {}
        self._unknown: dict[int, bytes] = {}
        for t, value in unknown:
            if t in self._unknown:
                raise ValueError(f"duplicate tlv type {t}")
            self._unknown[t] = bytes(value)

    def _copy(self) -> TlvStream:
        new = TlvStream()
        new._known = dict(self._known)
        new._unknown = dict(self._unknown)
        return new

    def get(self, record: TlvRecordType[T]) -> T | None:
        entry = self._known.get(record.type)
        if entry is None:
            return None
        value: T = entry[1]
        return value

    def set(self, record: TlvRecordType[T], value: T) -> TlvStream:
        new = self._copy()
        new._unknown.pop(record.type, None)
        new._known[record.type] = (record, value)
        return new

    def remove(self, record_type: int) -> TlvStream:
        new = self._copy()
        new._known.pop(record_type, None)
        new._unknown.pop(record_type, None)
        return new

    def __contains__(self, record: object) -> bool:
        t = record.type if isinstance(record, TlvRecordType) else record
        return t in self._known or t in self._unknown

    @property
    def unknown(self) -> tuple[TlvRecord, ...]:
        """The records kept raw (unknown odd types), in type order."""
        return tuple(TlvRecord(t, v) for t, v in sorted(self._unknown.items()))

    def records(self) -> list[TlvRecord]:
        """Every record encoded, in type order."""
        out = [TlvRecord(t, rt.write(v)) for t, (rt, v) in self._known.items()]
        out.extend(TlvRecord(t, v) for t, v in self._unknown.items())
        out.sort(key=lambda r: r.type)
        return out

    def encode(self) -> bytes:
        return encode_tlv_records(self.records())

    def __iter__(self) -> Iterator[TlvRecord]:
        return iter(self.records())

    def __len__(self) -> int:
        return len(self._known) + len(self._unknown)

    def __bool__(self) -> bool:
        return bool(self._known or self._unknown)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TlvStream):
            return NotImplemented
        mine = {t: v for t, (_, v) in self._known.items()}
        theirs = {t: v for t, (_, v) in other._known.items()}
        return mine == theirs and self._unknown == other._unknown

    __hash__ = None  # type: ignore[assignment]  # mutable-looking contents; compare, don't hash

    def __repr__(self) -> str:
        parts = [f"{rt.name}={v!r}" for _, (rt, v) in sorted(self._known.items())]
        parts += [f"{t}=0x{v.hex()}" for t, v in sorted(self._unknown.items())]
        return f"TlvStream({', '.join(parts)})"


class TlvNamespace:
    """The record types one ``tlv_stream`` knows (BOLT: ``tlv_stream: name``)."""

    __slots__ = ("name", "_types")

    def __init__(self, name: str, *record_types: TlvRecordType[Any]) -> None:
        self.name = name
        self._types: dict[int, TlvRecordType[Any]] = {}
        for rt in record_types:
            if rt.type in self._types:
                raise ValueError(f"{name}: tlv type {rt.type} declared twice")
            self._types[rt.type] = rt

    @property
    def record_types(self) -> tuple[TlvRecordType[Any], ...]:
        return tuple(self._types[t] for t in sorted(self._types))

    def is_known(self, record_type: int) -> bool:
        return record_type in self._types

    def decode(self, data: bytes) -> TlvStream:
        """Decode a stream of this namespace; TlvError names the first rule broken."""
        stream = TlvStream()
        for t, value in decode_tlv_records(data):
            rt = self._types.get(t)
            if rt is None:
                if t % 2 == 0:
                    raise TlvError(f"unknown even tlv type {t} in {self.name}")
                stream._unknown[t] = value
                continue
            try:
                stream._known[t] = (rt, rt.decode_value(value))
            except TlvError as e:
                raise TlvError(f"{self.name}.{rt.name} (type {t}): {e.reason}") from None
        return stream

    def __repr__(self) -> str:
        return f"TlvNamespace({self.name!r}, {', '.join(rt.name for rt in self.record_types)})"
