"""The script opcode table, opcode names as Core prints them, and a script iterator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from .errors import ScriptError

__all__ = [
    "OPCODE_NAMES",
    "NAME_TO_OPCODE",
    "MAX_OPCODE",
    "op_name",
    "iter_script",
    "push_bytes",
    "is_push_only",
    "is_p2sh",
    "witness_program",
    "decode_small_int",
    "OP_0",
    "OP_FALSE",
    "OP_PUSHDATA1",
    "OP_PUSHDATA2",
    "OP_PUSHDATA4",
    "OP_1NEGATE",
    "OP_RESERVED",
    "OP_1",
    "OP_TRUE",
    "OP_2",
    "OP_3",
    "OP_4",
    "OP_5",
    "OP_6",
    "OP_7",
    "OP_8",
    "OP_9",
    "OP_10",
    "OP_11",
    "OP_12",
    "OP_13",
    "OP_14",
    "OP_15",
    "OP_16",
    "OP_NOP",
    "OP_VER",
    "OP_IF",
    "OP_NOTIF",
    "OP_VERIF",
    "OP_VERNOTIF",
    "OP_ELSE",
    "OP_ENDIF",
    "OP_VERIFY",
    "OP_RETURN",
    "OP_TOALTSTACK",
    "OP_FROMALTSTACK",
    "OP_2DROP",
    "OP_2DUP",
    "OP_3DUP",
    "OP_2OVER",
    "OP_2ROT",
    "OP_2SWAP",
    "OP_IFDUP",
    "OP_DEPTH",
    "OP_DROP",
    "OP_DUP",
    "OP_NIP",
    "OP_OVER",
    "OP_PICK",
    "OP_ROLL",
    "OP_ROT",
    "OP_SWAP",
    "OP_TUCK",
    "OP_CAT",
    "OP_SUBSTR",
    "OP_LEFT",
    "OP_RIGHT",
    "OP_SIZE",
    "OP_INVERT",
    "OP_AND",
    "OP_OR",
    "OP_XOR",
    "OP_EQUAL",
    "OP_EQUALVERIFY",
    "OP_RESERVED1",
    "OP_RESERVED2",
    "OP_1ADD",
    "OP_1SUB",
    "OP_2MUL",
    "OP_2DIV",
    "OP_NEGATE",
    "OP_ABS",
    "OP_NOT",
    "OP_0NOTEQUAL",
    "OP_ADD",
    "OP_SUB",
    "OP_MUL",
    "OP_DIV",
    "OP_MOD",
    "OP_LSHIFT",
    "OP_RSHIFT",
    "OP_BOOLAND",
    "OP_BOOLOR",
    "OP_NUMEQUAL",
    "OP_NUMEQUALVERIFY",
    "OP_NUMNOTEQUAL",
    "OP_LESSTHAN",
    "OP_GREATERTHAN",
    "OP_LESSTHANOREQUAL",
    "OP_GREATERTHANOREQUAL",
    "OP_MIN",
    "OP_MAX",
    "OP_WITHIN",
    "OP_RIPEMD160",
    "OP_SHA1",
    "OP_SHA256",
    "OP_HASH160",
    "OP_HASH256",
    "OP_CODESEPARATOR",
    "OP_CHECKSIG",
    "OP_CHECKSIGVERIFY",
    "OP_CHECKMULTISIG",
    "OP_CHECKMULTISIGVERIFY",
    "OP_NOP1",
    "OP_CHECKLOCKTIMEVERIFY",
    "OP_NOP2",
    "OP_CHECKSEQUENCEVERIFY",
    "OP_NOP3",
    "OP_NOP4",
    "OP_NOP5",
    "OP_NOP6",
    "OP_NOP7",
    "OP_NOP8",
    "OP_NOP9",
    "OP_NOP10",
    "OP_CHECKSIGADD",
    "OP_INVALIDOPCODE",
]

# --- push value --------------------------------------------------------------
OP_0: Final = 0x00
OP_FALSE: Final = OP_0
OP_PUSHDATA1: Final = 0x4C
OP_PUSHDATA2: Final = 0x4D
OP_PUSHDATA4: Final = 0x4E
OP_1NEGATE: Final = 0x4F
OP_RESERVED: Final = 0x50
OP_1: Final = 0x51
OP_TRUE: Final = OP_1
OP_2: Final = 0x52
OP_3: Final = 0x53
OP_4: Final = 0x54
OP_5: Final = 0x55
OP_6: Final = 0x56
OP_7: Final = 0x57
OP_8: Final = 0x58
OP_9: Final = 0x59
OP_10: Final = 0x5A
OP_11: Final = 0x5B
OP_12: Final = 0x5C
OP_13: Final = 0x5D
OP_14: Final = 0x5E
OP_15: Final = 0x5F
OP_16: Final = 0x60

# --- control -------------------------------------------------------------------
OP_NOP: Final = 0x61
OP_VER: Final = 0x62
OP_IF: Final = 0x63
OP_NOTIF: Final = 0x64
OP_VERIF: Final = 0x65
OP_VERNOTIF: Final = 0x66
OP_ELSE: Final = 0x67
OP_ENDIF: Final = 0x68
OP_VERIFY: Final = 0x69
OP_RETURN: Final = 0x6A

# --- stack -----------------------------------------------------------------------
OP_TOALTSTACK: Final = 0x6B
OP_FROMALTSTACK: Final = 0x6C
OP_2DROP: Final = 0x6D
OP_2DUP: Final = 0x6E
OP_3DUP: Final = 0x6F
OP_2OVER: Final = 0x70
OP_2ROT: Final = 0x71
OP_2SWAP: Final = 0x72
OP_IFDUP: Final = 0x73
OP_DEPTH: Final = 0x74
OP_DROP: Final = 0x75
OP_DUP: Final = 0x76
OP_NIP: Final = 0x77
OP_OVER: Final = 0x78
OP_PICK: Final = 0x79
OP_ROLL: Final = 0x7A
OP_ROT: Final = 0x7B
OP_SWAP: Final = 0x7C
OP_TUCK: Final = 0x7D

# --- splice ------------------------------------------------------------------------
OP_CAT: Final = 0x7E
OP_SUBSTR: Final = 0x7F
OP_LEFT: Final = 0x80
OP_RIGHT: Final = 0x81
OP_SIZE: Final = 0x82

# --- bit logic -------------------------------------------------------------------
OP_INVERT: Final = 0x83
OP_AND: Final = 0x84
OP_OR: Final = 0x85
OP_XOR: Final = 0x86
OP_EQUAL: Final = 0x87
OP_EQUALVERIFY: Final = 0x88
OP_RESERVED1: Final = 0x89
OP_RESERVED2: Final = 0x8A

# --- numeric ----------------------------------------------------------------------
OP_1ADD: Final = 0x8B
OP_1SUB: Final = 0x8C
OP_2MUL: Final = 0x8D
OP_2DIV: Final = 0x8E
OP_NEGATE: Final = 0x8F
OP_ABS: Final = 0x90
OP_NOT: Final = 0x91
OP_0NOTEQUAL: Final = 0x92
OP_ADD: Final = 0x93
OP_SUB: Final = 0x94
OP_MUL: Final = 0x95
OP_DIV: Final = 0x96
OP_MOD: Final = 0x97
OP_LSHIFT: Final = 0x98
OP_RSHIFT: Final = 0x99
OP_BOOLAND: Final = 0x9A
OP_BOOLOR: Final = 0x9B
OP_NUMEQUAL: Final = 0x9C
OP_NUMEQUALVERIFY: Final = 0x9D
OP_NUMNOTEQUAL: Final = 0x9E
OP_LESSTHAN: Final = 0x9F
OP_GREATERTHAN: Final = 0xA0
OP_LESSTHANOREQUAL: Final = 0xA1
OP_GREATERTHANOREQUAL: Final = 0xA2
OP_MIN: Final = 0xA3
OP_MAX: Final = 0xA4
OP_WITHIN: Final = 0xA5

# --- crypto -------------------------------------------------------------------------
OP_RIPEMD160: Final = 0xA6
OP_SHA1: Final = 0xA7
OP_SHA256: Final = 0xA8
OP_HASH160: Final = 0xA9
OP_HASH256: Final = 0xAA
OP_CODESEPARATOR: Final = 0xAB
OP_CHECKSIG: Final = 0xAC
OP_CHECKSIGVERIFY: Final = 0xAD
OP_CHECKMULTISIG: Final = 0xAE
OP_CHECKMULTISIGVERIFY: Final = 0xAF

# --- expansion ------------------------------------------------------------------------
OP_NOP1: Final = 0xB0
OP_CHECKLOCKTIMEVERIFY: Final = 0xB1
OP_NOP2: Final = OP_CHECKLOCKTIMEVERIFY
OP_CHECKSEQUENCEVERIFY: Final = 0xB2
OP_NOP3: Final = OP_CHECKSEQUENCEVERIFY
OP_NOP4: Final = 0xB3
OP_NOP5: Final = 0xB4
OP_NOP6: Final = 0xB5
OP_NOP7: Final = 0xB6
OP_NOP8: Final = 0xB7
OP_NOP9: Final = 0xB8
OP_NOP10: Final = 0xB9

# --- tapscript only (BIP342); a bad opcode in legacy and segwit v0 scripts ------------------
OP_CHECKSIGADD: Final = 0xBA

MAX_OPCODE: Final = OP_CHECKSIGADD
OP_INVALIDOPCODE: Final = 0xFF


def _build_names() -> list[str]:
    names = ["OP_UNKNOWN"] * 256
    names[OP_0] = "0"
    for op in range(1, OP_PUSHDATA1):
        names[op] = "OP_UNKNOWN"  # direct pushes have no name; Core's GetOpName has none either
    names[OP_PUSHDATA1] = "OP_PUSHDATA1"
    names[OP_PUSHDATA2] = "OP_PUSHDATA2"
    names[OP_PUSHDATA4] = "OP_PUSHDATA4"
    names[OP_1NEGATE] = "-1"
    names[OP_RESERVED] = "OP_RESERVED"
    for n in range(1, 17):
        names[OP_1 + n - 1] = str(n)
    for name, value in globals().items():
        if not name.startswith("OP_") or not isinstance(value, int) or value <= OP_16:
            continue
        if name in ("OP_NOP2", "OP_NOP3", "OP_INVALIDOPCODE", "OP_TRUE", "OP_FALSE"):
            continue  # aliases; Core prints OP_CHECKLOCKTIMEVERIFY / OP_CHECKSEQUENCEVERIFY
        names[value] = name
    names[OP_INVALIDOPCODE] = "OP_INVALIDOPCODE"
    return names


#: Opcode -> name as Core's GetOpName prints it ("0", "-1", "1".."16", "OP_DUP", "OP_UNKNOWN").
OPCODE_NAMES: Final[tuple[str, ...]] = tuple(_build_names())


def _build_parse_names() -> dict[str, int]:
    """The names the ASM parser accepts: Core's set, with and without OP_, plus aliases."""
    table: dict[str, int] = {}
    for op in range(MAX_OPCODE + 1):
        if op < OP_NOP and op != OP_RESERVED:
            continue
        name = OPCODE_NAMES[op]
        if name == "OP_UNKNOWN":
            continue
        table[name] = op
        table[name[3:]] = op
    # Aliases Core's parser does not know but which people write.
    for alias, op in (("OP_NOP2", OP_NOP2), ("OP_NOP3", OP_NOP3)):
        table[alias] = op
        table[alias[3:]] = op
    table["OP_0"] = table["OP_FALSE"] = OP_0
    table["OP_TRUE"] = OP_1
    table["OP_1NEGATE"] = OP_1NEGATE
    for n in range(1, 17):
        table[f"OP_{n}"] = OP_1 + n - 1
    return table


#: Name -> opcode for the ASM parser ("OP_ADD" and "ADD"; "NOP2" and "CHECKLOCKTIMEVERIFY").
NAME_TO_OPCODE: Final[dict[str, int]] = _build_parse_names()


def op_name(opcode: int) -> str:
    return OPCODE_NAMES[opcode]


def iter_script(script: bytes) -> Iterator[tuple[int, bytes | None, int]]:
    """Yield (opcode, pushed data or None, position of the opcode) for each operation.

    A push that runs past the end of the script raises ScriptError("BAD_OPCODE") when
    the iterator reaches it, after every operation before it has been yielded.
    """
    end = len(script)
    pc = 0
    while pc < end:
        start = pc
        op = script[pc]
        pc += 1
        if op > OP_PUSHDATA4:
            yield op, None, start
            continue
        if op < OP_PUSHDATA1:
            size = op
        else:
            width = 1 if op == OP_PUSHDATA1 else 2 if op == OP_PUSHDATA2 else 4
            if end - pc < width:
                raise ScriptError("BAD_OPCODE", f"truncated push length at position {start}")
            size = int.from_bytes(script[pc : pc + width], "little")
            pc += width
        if end - pc < size:
            raise ScriptError("BAD_OPCODE", f"push of {size} bytes at position {start} runs past the end")
        yield op, script[pc : pc + size], start
        pc += size


def push_bytes(data: bytes) -> bytes:
    """`data` as Core's ``CScript() << data`` writes it (shortest length prefix, no OP_n)."""
    n = len(data)
    if n < OP_PUSHDATA1:
        return bytes((n,)) + data
    if n <= 0xFF:
        return bytes((OP_PUSHDATA1, n)) + data
    if n <= 0xFFFF:
        return bytes((OP_PUSHDATA2,)) + n.to_bytes(2, "little") + data
    return bytes((OP_PUSHDATA4,)) + n.to_bytes(4, "little") + data


def is_push_only(script: bytes) -> bool:
    """True if every operation is a push or OP_1NEGATE..OP_16 (OP_RESERVED counts, as in Core)."""
    try:
        for op, _, _ in iter_script(script):
            if op > OP_16:
                return False
    except ScriptError:
        return False
    return True


def is_p2sh(script: bytes) -> bool:
    """The exact 23-byte pattern HASH160 <20 bytes> EQUAL."""
    return len(script) == 23 and script[0] == OP_HASH160 and script[1] == 0x14 and script[22] == OP_EQUAL


def witness_program(script: bytes) -> tuple[int, bytes] | None:
    """(version, program) if the script is a witness program (BIP141), else None."""
    n = len(script)
    if n < 4 or n > 42:
        return None
    first = script[0]
    if first != OP_0 and not OP_1 <= first <= OP_16:
        return None
    if script[1] + 2 != n:
        return None
    return (0 if first == OP_0 else first - (OP_1 - 1)), script[2:]


def decode_small_int(opcode: int) -> int:
    """OP_0 -> 0, OP_1..OP_16 -> 1..16."""
    if opcode == OP_0:
        return 0
    if not OP_1 <= opcode <= OP_16:
        raise ValueError(f"opcode {opcode:#x} is not a small integer")
    return opcode - (OP_1 - 1)
