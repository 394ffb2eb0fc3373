"""Script numbers (Core's CScriptNum): little-endian sign-magnitude integers on the stack.

Operands of numeric opcodes are at most 4 bytes (5 for CHECKLOCKTIMEVERIFY and
CHECKSEQUENCEVERIFY); results may be longer and are only rejected when they are
used as operands again.
"""

from __future__ import annotations

from typing import Final

from .errors import ScriptError

__all__ = ["DEFAULT_MAX_NUM_SIZE", "LOCKTIME_MAX_NUM_SIZE", "decode_num", "encode_num", "is_minimal_num", "cast_to_bool"]

DEFAULT_MAX_NUM_SIZE: Final = 4
LOCKTIME_MAX_NUM_SIZE: Final = 5


def is_minimal_num(data: bytes) -> bool:
    """True if `data` is the shortest encoding of its value (negative zero is not)."""
    if not data:
        return True
    if data[-1] & 0x7F:
        return True
    # The top byte holds only the sign: legitimate only if the next byte needs its high bit.
    return len(data) > 1 and bool(data[-2] & 0x80)


def decode_num(data: bytes, require_minimal: bool, max_size: int = DEFAULT_MAX_NUM_SIZE) -> int:
    """The value of a stack element used as a number; ScriptError("SCRIPTNUM") if it is too
    long, or not minimal when `require_minimal` is set."""
    n = len(data)
    if n > max_size:
        raise ScriptError("SCRIPTNUM", f"{n}-byte number, at most {max_size} allowed")
    if n == 0:
        return 0
    if require_minimal and not is_minimal_num(data):
        raise ScriptError("SCRIPTNUM", f"non-minimally encoded number {data.hex()}")
    value = int.from_bytes(data, "little")
    top = 0x80 << (8 * (n - 1))
    if value & top:
        return -(value ^ top)
    return value


_SMALL: Final[dict[int, bytes]] = {}


def _encode(value: int) -> bytes:
    if value == 0:
        return b""
    negative = value < 0
    magnitude = -value if negative else value
    size = (magnitude.bit_length() + 7) // 8
    out = bytearray(magnitude.to_bytes(size, "little"))
    if out[-1] & 0x80:
        out.append(0x80 if negative else 0x00)
    elif negative:
        out[-1] |= 0x80
    return bytes(out)


for _v in range(-1, 1001):
    _SMALL[_v] = _encode(_v)


def encode_num(value: int) -> bytes:
    """The minimal script-number encoding of `value` (0 is the empty string)."""
    cached = _SMALL.get(value)
    if cached is not None:
        return cached
    return _encode(value)


def cast_to_bool(data: bytes) -> bool:
    """Core's CastToBool: false for empty, all zeros, or zeros ending in 0x80 (negative zero)."""
    if not data:
        return False
    if data[-1] & 0x7F:
        return True
    return any(data[:-1])
