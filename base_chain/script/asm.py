"""Script text: the ASM dialect of Core's test vectors, and Core's display ASM.

Three functions:

* :func:`parse_asm` reads the dialect of ``script_tests.json`` / ``tx_valid.json``
  (Core's ParseScript): decimal numbers become minimal number pushes, ``0x..`` is
  raw bytes inserted as they are (not pushed), ``'text'`` is pushed as data, and
  opcode names are accepted with or without ``OP_``.
* :func:`to_asm` renders a script the way Core's ScriptToAsmStr does (what
  ``decoderawtransaction`` shows); it is for people and does not always parse back.
* :func:`to_test_asm` renders in the parseable dialect, so that
  ``parse_asm(to_test_asm(s)) == s`` for every byte string ``s``.
"""

from __future__ import annotations

import re
from typing import Final

from ..crypto import is_valid_signature_encoding
from .errors import ScriptError
from .num import decode_num, encode_num
from .opcodes import (
    NAME_TO_OPCODE,
    OP_0,
    OP_1,
    OP_1NEGATE,
    OP_16,
    OP_PUSHDATA4,
    OP_RETURN,
    OPCODE_NAMES,
    iter_script,
    push_bytes,
)

__all__ = ["AsmError", "parse_asm", "push_int", "to_asm", "to_test_asm"]

MAX_SCRIPT_SIZE: Final = 10_000
_MAX_ASM_NUMBER: Final = 0xFFFFFFFF

_SEPARATORS: Final = re.compile(r"[ \t\n]")
_DECIMAL: Final = re.compile(r"-?[0-9]+")
_HEX: Final = re.compile(r"(?:[0-9a-fA-F]{2})+")

_SIGHASH_NAMES: Final[dict[int, str]] = {
    0x01: "ALL",
    0x81: "ALL|ANYONECANPAY",
    0x02: "NONE",
    0x82: "NONE|ANYONECANPAY",
    0x03: "SINGLE",
    0x83: "SINGLE|ANYONECANPAY",
}


class AsmError(ValueError):
    """Text that is not a script in the test-vector dialect."""


def push_int(n: int) -> bytes:
    """A number as Core's ``CScript() << n`` pushes it: OP_0, OP_1NEGATE, OP_1..OP_16 or data."""
    if n == 0:
        return bytes((OP_0,))
    if n == -1 or 1 <= n <= 16:
        return bytes((OP_1 - 1 + n,))
    return push_bytes(encode_num(n))


def parse_asm(text: str) -> bytes:
    """Parse the test-vector dialect into script bytes; AsmError if a word is not understood."""
    out = bytearray()
    for word in _SEPARATORS.split(text):
        if not word:
            continue
        if _DECIMAL.fullmatch(word):
            n = int(word)
            if not -_MAX_ASM_NUMBER <= n <= _MAX_ASM_NUMBER:
                raise AsmError(f"decimal number out of range -0xFFFFFFFF..0xFFFFFFFF: {word}")
            out += push_int(n)
        elif word.startswith("0x") and _HEX.fullmatch(word, 2):
            out += bytes.fromhex(word[2:])
        elif len(word) >= 2 and word[0] == "'" and word[-1] == "'":
            out += push_bytes(word[1:-1].encode("utf-8"))
        else:
            opcode = NAME_TO_OPCODE.get(word)
            if opcode is None:
                raise AsmError(f"unknown opcode {word!r}")
            out.append(opcode)
    return bytes(out)


def _sighash_suffix(data: bytes) -> str | None:
    """"[ALL]" etc. if `data` looks like a strictly encoded signature with a defined hash type."""
    if not is_valid_signature_encoding(data):
        return None
    return _SIGHASH_NAMES.get(data[-1])


def to_asm(script: bytes, attempt_sighash_decode: bool = False) -> str:
    """Core's ScriptToAsmStr: pushes of up to 4 bytes as numbers, longer ones as hex
    (with a ``[ALL]``-style suffix for signatures when `attempt_sighash_decode`),
    opcodes by name, and ``[error]`` where a push runs past the end."""
    words: list[str] = []
    decode = (
        attempt_sighash_decode
        and not (script and script[0] == OP_RETURN)
        and len(script) <= MAX_SCRIPT_SIZE
    )
    try:
        for opcode, data, _ in iter_script(script):
            if data is None:
                words.append(OPCODE_NAMES[opcode])
            elif len(data) <= 4:
                words.append(str(decode_num(data, False)))
            elif decode and (suffix := _sighash_suffix(data)) is not None:
                words.append(data[:-1].hex() + f"[{suffix}]")
            else:
                words.append(data.hex())
    except ScriptError:
        words.append("[error]")
    return " ".join(words)


def to_test_asm(script: bytes) -> str:
    """Render in the dialect parse_asm reads; parse_asm(to_test_asm(s)) == s for any s."""
    words: list[str] = []
    pos = 0  # end of the last operation rendered
    try:
        for opcode, data, start in iter_script(script):
            if data is None:
                pos = start + 1
                name = OPCODE_NAMES[opcode]
                if NAME_TO_OPCODE.get(name) == opcode or opcode == OP_1NEGATE or OP_1 <= opcode <= OP_16:
                    words.append(name)  # "-1" and "1".."16" parse back to the same opcode
                else:
                    words.append(f"0x{opcode:02x}")
                continue
            pos = start + _prefix_len(opcode) + len(data)
            chunk = script[start:pos]
            if len(data) <= 5:
                n = decode_num(data, False, 5)
                if abs(n) <= _MAX_ASM_NUMBER and push_int(n) == chunk:
                    words.append(str(n))
                    continue
            words.append("0x" + chunk.hex())
    except ScriptError:
        pass
    if pos < len(script):
        words.append("0x" + script[pos:].hex())
    return " ".join(words)


def _prefix_len(opcode: int) -> int:
    if opcode < 0x4C:
        return 1
    return {0x4C: 2, 0x4D: 3, OP_PUSHDATA4: 5}[opcode]
