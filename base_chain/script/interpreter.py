"""The script evaluator (Core's EvalScript) for legacy and segwit v0 scripts.

One loop decodes and runs the operations in place: pushes are sliced straight out
of the script, opcodes are grouped by range so each needs only a few comparisons,
and stack elements are immutable ``bytes`` so nothing is copied. Failures raise
:class:`ScriptError` with Core's error code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Set
from typing import Final

from ..hashes import hash256, sha1
from .checker import SIGVERSION_BASE, SIGVERSION_WITNESS_V0, SEQUENCE_LOCKTIME_DISABLE_FLAG, SignatureChecker
from .errors import ScriptError
from .flags import FLAG_BITS, flags_to_mask
from .num import LOCKTIME_MAX_NUM_SIZE, cast_to_bool, decode_num, encode_num
from .opcodes import (
    OP_0,
    OP_16,
    OP_CHECKLOCKTIMEVERIFY,
    OP_CHECKMULTISIG,
    OP_CHECKSEQUENCEVERIFY,
    OP_CHECKSIG,
    OP_CHECKSIGVERIFY,
    OP_CODESEPARATOR,
    OP_ELSE,
    OP_ENDIF,
    OP_IF,
    OP_NOP10,
    OP_NOTIF,
    OP_PUSHDATA1,
    OP_PUSHDATA2,
    OP_PUSHDATA4,
)
from .sigcheck import MAX_OPS_PER_SCRIPT, eval_checkmultisig, eval_checksig

__all__ = [
    "MAX_SCRIPT_SIZE",
    "MAX_SCRIPT_ELEMENT_SIZE",
    "MAX_OPS_PER_SCRIPT",
    "MAX_STACK_SIZE",
    "SIGVERSION_BASE",
    "SIGVERSION_WITNESS_V0",
    "eval_script",
    "eval_script_mask",
    "hash160_fast",
]

MAX_SCRIPT_SIZE: Final = 10_000
MAX_SCRIPT_ELEMENT_SIZE: Final = 520
MAX_STACK_SIZE: Final = 1000

_MINIMALDATA: Final = FLAG_BITS["MINIMALDATA"]
_MINIMALIF: Final = FLAG_BITS["MINIMALIF"]
_CONST_SCRIPTCODE: Final = FLAG_BITS["CONST_SCRIPTCODE"]
_DISCOURAGE_NOPS: Final = FLAG_BITS["DISCOURAGE_UPGRADABLE_NOPS"]
_CLTV: Final = FLAG_BITS["CHECKLOCKTIMEVERIFY"]
_CSV: Final = FLAG_BITS["CHECKSEQUENCEVERIFY"]

_TRUE: Final = b"\x01"
_FALSE: Final = b""

_RIPEMD160: Final = hashlib.new("ripemd160")  # copied per use: much cheaper than hashlib.new
_sha256: Final = hashlib.sha256


def _ripemd160(data: bytes) -> bytes:
    h = _RIPEMD160.copy()
    h.update(data)
    return h.digest()


def hash160_fast(data: bytes) -> bytes:
    """RIPEMD160(SHA256(data)), as base_chain.hashes.hash160 but without hashlib.new's lookup."""
    h = _RIPEMD160.copy()
    h.update(_sha256(data).digest())
    return h.digest()


#: Opcodes that fail a script wherever they appear, executed or not.
_DISABLED: Final = frozenset(
    (0x7E, 0x7F, 0x80, 0x81, 0x83, 0x84, 0x85, 0x86, 0x8D, 0x8E, 0x95, 0x96, 0x97, 0x98, 0x99)
)
#: What OP_1NEGATE, OP_RESERVED(unused) and OP_1..OP_16 push, indexed by opcode - 0x4F.
_SMALL_INTS: Final = tuple(encode_num(op - 0x50) for op in range(0x4F, 0x61))


def _minimal_push(data: bytes, opcode: int) -> bool:
    """Was `data` pushed with the shortest possible push operation? (`opcode` is a data push.)"""
    n = len(data)
    if n == 0:
        return opcode == OP_0
    if n == 1 and (1 <= data[0] <= 16 or data[0] == 0x81):
        return False  # OP_1..OP_16 / OP_1NEGATE would have done
    if n <= 75:
        return opcode == n
    if n <= 255:
        return opcode == OP_PUSHDATA1
    if n <= 65535:
        return opcode == OP_PUSHDATA2
    return True


def eval_script(
    stack: list[bytes],
    script: bytes,
    flags: Set[str],
    checker: SignatureChecker | None = None,
    sigversion: int = SIGVERSION_BASE,
) -> None:
    """Run `script` on `stack` (modified in place) under the named verification flags.

    Raises ScriptError on failure. Without a checker, signature and lock-time checks fail.
    """
    eval_script_mask(stack, script, flags_to_mask(flags), checker or SignatureChecker(), sigversion)


def eval_script_mask(
    stack: list[bytes], script: bytes, flags: int, checker: SignatureChecker, sigversion: int
) -> None:
    """eval_script with the flags already as a bit mask (see flags.flags_to_mask)."""
    end = len(script)
    if end > MAX_SCRIPT_SIZE:
        raise ScriptError("SCRIPT_SIZE", f"{end} bytes")
    minimal = bool(flags & _MINIMALDATA)
    exec_stack: list[bool] = []
    false_count = 0  # how many entries of exec_stack are False; executing iff 0
    altstack: list[bytes] = []
    op_count = 0
    code_start = 0  # where the script code for signature hashes begins (after OP_CODESEPARATOR)
    pc = 0
    push = stack.append
    pop = stack.pop

    while pc < end:
        start = pc
        op = script[pc]
        pc += 1

        # ---- data pushes -----------------------------------------------------------
        if op <= OP_PUSHDATA4:
            if op < OP_PUSHDATA1:
                size = op
            elif op == OP_PUSHDATA1:
                if pc >= end:
                    raise ScriptError("BAD_OPCODE", f"truncated push length at {start}")
                size = script[pc]
                pc += 1
            else:
                width = 2 if op == OP_PUSHDATA2 else 4
                if end - pc < width:
                    raise ScriptError("BAD_OPCODE", f"truncated push length at {start}")
                size = int.from_bytes(script[pc : pc + width], "little")
                pc += width
            if end - pc < size:
                raise ScriptError("BAD_OPCODE", f"push at {start} runs past the end of the script")
            if size > MAX_SCRIPT_ELEMENT_SIZE:
                raise ScriptError("PUSH_SIZE", f"{size}-byte push at {start}")
            if not false_count:
                data = script[pc : pc + size]
                if minimal and not _minimal_push(data, op):
                    raise ScriptError("MINIMALDATA", f"non-minimal push at {start}")
                push(data)
                if len(stack) + len(altstack) > MAX_STACK_SIZE:
                    raise ScriptError("STACK_SIZE")
            pc += size
            continue

        if op > OP_16:
            op_count += 1
            if op_count > MAX_OPS_PER_SCRIPT:
                raise ScriptError("OP_COUNT")
            if op in _DISABLED:
                raise ScriptError("DISABLED_OPCODE", f"opcode {op:#04x}")
            if op == OP_CODESEPARATOR and sigversion == SIGVERSION_BASE and flags & _CONST_SCRIPTCODE:
                raise ScriptError("OP_CODESEPARATOR")

        if false_count and not OP_IF <= op <= OP_ENDIF:
            continue

        # ---- OP_1NEGATE, OP_RESERVED, OP_1..OP_16 ------------------------------------
        if op <= OP_16:
            if op == 0x50:
                raise ScriptError("BAD_OPCODE", "OP_RESERVED executed")
            push(_SMALL_INTS[op - 0x4F])

        # ---- flow control (0x61..0x6a) -------------------------------------------------
        elif op <= 0x6A:
            if op == 0x61:  # OP_NOP
                pass
            elif op == OP_IF or op == OP_NOTIF:
                value = False
                if not false_count:
                    if not stack:
                        raise ScriptError("INVALID_STACK_OPERATION", "IF/NOTIF on an empty stack")
                    top = stack[-1]
                    if sigversion == SIGVERSION_WITNESS_V0 and flags & _MINIMALIF:
                        if len(top) > 1 or (len(top) == 1 and top[0] != 1):
                            raise ScriptError("MINIMALIF")
                    value = cast_to_bool(top)
                    if op == OP_NOTIF:
                        value = not value
                    pop()
                exec_stack.append(value)
                if not value:
                    false_count += 1
            elif op == OP_ELSE:
                if not exec_stack:
                    raise ScriptError("UNBALANCED_CONDITIONAL", "ELSE without IF")
                if exec_stack[-1]:
                    exec_stack[-1] = False
                    false_count += 1
                else:
                    exec_stack[-1] = True
                    false_count -= 1
            elif op == OP_ENDIF:
                if not exec_stack:
                    raise ScriptError("UNBALANCED_CONDITIONAL", "ENDIF without IF")
                if not exec_stack.pop():
                    false_count -= 1
            elif op == 0x69:  # OP_VERIFY
                if not stack:
                    raise ScriptError("INVALID_STACK_OPERATION", "OP_VERIFY")
                if not cast_to_bool(stack[-1]):
                    raise ScriptError("VERIFY")
                pop()
            elif op == 0x6A:  # OP_RETURN
                raise ScriptError("OP_RETURN")
            else:  # OP_VER, and OP_VERIF / OP_VERNOTIF even when not executed
                raise ScriptError("BAD_OPCODE", f"opcode {op:#04x}")

        # ---- stack operations (0x6b..0x7d) ------------------------------------------------
        elif op <= 0x7D:
            _stack_op(op, stack, altstack, minimal)

        # ---- OP_SIZE, OP_EQUAL, OP_EQUALVERIFY, reserved (0x82..0x8a) ------------------------
        elif op <= 0x8A:
            if op == 0x87 or op == 0x88:  # OP_EQUAL / OP_EQUALVERIFY
                if len(stack) < 2:
                    raise ScriptError("INVALID_STACK_OPERATION", "OP_EQUAL")
                equal = pop() == pop()
                if op == 0x88:
                    if not equal:
                        raise ScriptError("EQUALVERIFY")
                else:
                    push(_TRUE if equal else _FALSE)
            elif op == 0x82:  # OP_SIZE
                if not stack:
                    raise ScriptError("INVALID_STACK_OPERATION", "OP_SIZE")
                push(encode_num(len(stack[-1])))
            else:  # OP_RESERVED1, OP_RESERVED2
                raise ScriptError("BAD_OPCODE", f"opcode {op:#04x}")

        # ---- numeric (0x8b..0xa5) ----------------------------------------------------------
        elif op <= 0xA5:
            _numeric_op(op, stack, minimal)

        # ---- crypto (0xa6..0xaf) -----------------------------------------------------------
        elif op <= 0xAF:
            if op <= 0xAA:
                if not stack:
                    raise ScriptError("INVALID_STACK_OPERATION", "hash of an empty stack")
                item = pop()
                if op == 0xA9:
                    push(hash160_fast(item))
                elif op == 0xA8:
                    push(_sha256(item).digest())
                elif op == 0xAA:
                    push(hash256(item))
                elif op == 0xA6:
                    push(_ripemd160(item))
                else:
                    push(sha1(item))
            elif op == OP_CHECKSIG or op == OP_CHECKSIGVERIFY:
                if len(stack) < 2:
                    raise ScriptError("INVALID_STACK_OPERATION", "OP_CHECKSIG")
                pubkey = stack[-1]
                sig = stack[-2]
                ok = eval_checksig(sig, pubkey, script[code_start:], flags, checker, sigversion)
                del stack[-2:]
                if op == OP_CHECKSIGVERIFY:
                    if not ok:
                        raise ScriptError("CHECKSIGVERIFY")
                else:
                    push(_TRUE if ok else _FALSE)
            elif op == OP_CODESEPARATOR:
                code_start = pc
            else:  # OP_CHECKMULTISIG / OP_CHECKMULTISIGVERIFY
                ok, op_count = eval_checkmultisig(
                    stack, script[code_start:], flags, checker, sigversion, op_count
                )
                if op != OP_CHECKMULTISIG:
                    if not ok:
                        raise ScriptError("CHECKMULTISIGVERIFY")
                    pop()

        # ---- expansion: NOP1, CLTV, CSV, NOP4..NOP10 (0xb0..0xb9) ---------------------------
        elif op <= OP_NOP10:
            if op == OP_CHECKLOCKTIMEVERIFY:
                if not flags & _CLTV:
                    pass  # not enabled: a NOP2, never discouraged (dropping a flag must not fail)
                elif not stack:
                    raise ScriptError("INVALID_STACK_OPERATION", "OP_CHECKLOCKTIMEVERIFY")
                else:
                    # Five bytes, so that lock times up to 2**39-1 (beyond the uint32 field) fit.
                    locktime = decode_num(stack[-1], minimal, LOCKTIME_MAX_NUM_SIZE)
                    if locktime < 0:
                        raise ScriptError("NEGATIVE_LOCKTIME")
                    if not checker.check_locktime(locktime):
                        raise ScriptError("UNSATISFIED_LOCKTIME")
            elif op == OP_CHECKSEQUENCEVERIFY:
                if not flags & _CSV:
                    pass  # not enabled: a NOP3, never discouraged
                elif not stack:
                    raise ScriptError("INVALID_STACK_OPERATION", "OP_CHECKSEQUENCEVERIFY")
                else:
                    sequence = decode_num(stack[-1], minimal, LOCKTIME_MAX_NUM_SIZE)
                    if sequence < 0:
                        raise ScriptError("NEGATIVE_LOCKTIME")
                    # With the disable bit set the operand means nothing yet: a NOP (for soft forks).
                    if not sequence & SEQUENCE_LOCKTIME_DISABLE_FLAG and not checker.check_sequence(sequence):
                        raise ScriptError("UNSATISFIED_LOCKTIME")
            elif flags & _DISCOURAGE_NOPS:
                raise ScriptError("DISCOURAGE_UPGRADABLE_NOPS", f"opcode {op:#04x}")

        else:  # OP_CHECKSIGADD (tapscript only) and undefined opcodes
            raise ScriptError("BAD_OPCODE", f"opcode {op:#04x}")

        if len(stack) + len(altstack) > MAX_STACK_SIZE:
            raise ScriptError("STACK_SIZE")

    if exec_stack:
        raise ScriptError("UNBALANCED_CONDITIONAL", "IF without ENDIF")


def _stack_op(op: int, stack: list[bytes], altstack: list[bytes], minimal: bool) -> None:
    """OP_TOALTSTACK .. OP_TUCK (0x6b..0x7d)."""
    depth = len(stack)
    if op == 0x76:  # OP_DUP
        if depth < 1:
            raise ScriptError("INVALID_STACK_OPERATION", "OP_DUP")
        stack.append(stack[-1])
    elif op == 0x75:  # OP_DROP
        if depth < 1:
            raise ScriptError("INVALID_STACK_OPERATION", "OP_DROP")
        stack.pop()
    elif op == 0x6B:  # OP_TOALTSTACK
        if depth < 1:
            raise ScriptError("INVALID_STACK_OPERATION", "OP_TOALTSTACK")
        altstack.append(stack.pop())
    elif op == 0x6C:  # OP_FROMALTSTACK
        if not altstack:
            raise ScriptError("INVALID_ALTSTACK_OPERATION", "OP_FROMALTSTACK")
        stack.append(altstack.pop())
    elif op == 0x6D:  # OP_2DROP
        if depth < 2:
            raise ScriptError("INVALID_STACK_OPERATION", "OP_2DROP")
        del stack[-2:]
    elif op == 0x6E:  # OP_2DUP
        if depth < 2:
            raise ScriptError("INVALID_STACK_OPERATION", "OP_2DUP")
        stack.extend(stack[-2:])
    elif op == 0x6F:  # OP_3DUP
        if depth < 3:
            raise ScriptError("INVALID_STACK_OPERATION", "OP_3DUP")
        stack.extend(stack[-3:])
    elif op == 0x70:  # OP_2OVER
        if depth < 4:
            raise ScriptError("INVALID_STACK_OPERATION", "OP_2OVER")
        stack.extend(stack[-4:-2])
    elif op == 0x71:  # OP_2ROT
        if depth < 6:
            raise ScriptError("INVALID_STACK_OPERATION", "OP_2ROT")
        moved = stack[-6:-4]
        del stack[-6:-4]
        stack.extend(moved)
    elif op == 0x72:  # OP_2SWAP
        if depth < 4:
            raise ScriptError("INVALID_STACK_OPERATION", "OP_2SWAP")
        stack[-4:] = stack[-2:] + stack[-4:-2]
    elif op == 0x73:  # OP_IFDUP
        if depth < 1:
            raise ScriptError("INVALID_STACK_OPERATION", "OP_IFDUP")
        if cast_to_bool(stack[-1]):
            stack.append(stack[-1])
    elif op == 0x74:  # OP_DEPTH
        stack.append(encode_num(depth))
    elif op == 0x77:  # OP_NIP
        if depth < 2:
            raise ScriptError("INVALID_STACK_OPERATION", "OP_NIP")
        del stack[-2]
    elif op == 0x78:  # OP_OVER
        if depth < 2:
            raise ScriptError("INVALID_STACK_OPERATION", "OP_OVER")
        stack.append(stack[-2])
    elif op == 0x79 or op == 0x7A:  # OP_PICK / OP_ROLL
        if depth < 2:
            raise ScriptError("INVALID_STACK_OPERATION", "OP_PICK/OP_ROLL")
        n = decode_num(stack[-1], minimal)
        stack.pop()
        if n < 0 or n >= len(stack):
            raise ScriptError("INVALID_STACK_OPERATION", f"OP_PICK/OP_ROLL of item {n}")
        item = stack[-n - 1]
        if op == 0x7A:
            del stack[-n - 1]
        stack.append(item)
    elif op == 0x7B:  # OP_ROT
        if depth < 3:
            raise ScriptError("INVALID_STACK_OPERATION", "OP_ROT")
        stack[-3], stack[-2], stack[-1] = stack[-2], stack[-1], stack[-3]
    elif op == 0x7C:  # OP_SWAP
        if depth < 2:
            raise ScriptError("INVALID_STACK_OPERATION", "OP_SWAP")
        stack[-2], stack[-1] = stack[-1], stack[-2]
    else:  # 0x7D OP_TUCK
        if depth < 2:
            raise ScriptError("INVALID_STACK_OPERATION", "OP_TUCK")
        stack.insert(-2, stack[-1])


def _numeric_op(op: int, stack: list[bytes], minimal: bool) -> None:
    """OP_1ADD .. OP_WITHIN (0x8b..0xa5); operands are 4-byte script numbers."""
    if op <= 0x92:  # unary: 1ADD 1SUB (2MUL 2DIV disabled) NEGATE ABS NOT 0NOTEQUAL
        if not stack:
            raise ScriptError("INVALID_STACK_OPERATION", "unary numeric operation")
        a = decode_num(stack[-1], minimal)
        if op == 0x8B:
            r = a + 1
        elif op == 0x8C:
            r = a - 1
        elif op == 0x8F:
            r = -a
        elif op == 0x90:
            r = abs(a)
        elif op == 0x91:
            r = int(a == 0)
        else:  # 0x92 OP_0NOTEQUAL
            r = int(a != 0)
        stack[-1] = encode_num(r)
        return
    if op == 0xA5:  # OP_WITHIN: x min max -> min <= x < max
        if len(stack) < 3:
            raise ScriptError("INVALID_STACK_OPERATION", "OP_WITHIN")
        x = decode_num(stack[-3], minimal)
        lo = decode_num(stack[-2], minimal)
        hi = decode_num(stack[-1], minimal)
        del stack[-3:]
        stack.append(_TRUE if lo <= x < hi else _FALSE)
        return
    # binary: ADD SUB (MUL DIV MOD LSHIFT RSHIFT disabled) BOOLAND .. MAX
    if len(stack) < 2:
        raise ScriptError("INVALID_STACK_OPERATION", "binary numeric operation")
    a = decode_num(stack[-2], minimal)
    b = decode_num(stack[-1], minimal)
    if op == 0x93:
        r = a + b
    elif op == 0x94:
        r = a - b
    elif op == 0x9A:
        r = int(a != 0 and b != 0)
    elif op == 0x9B:
        r = int(a != 0 or b != 0)
    elif op == 0x9C or op == 0x9D:
        r = int(a == b)
    elif op == 0x9E:
        r = int(a != b)
    elif op == 0x9F:
        r = int(a < b)
    elif op == 0xA0:
        r = int(a > b)
    elif op == 0xA1:
        r = int(a <= b)
    elif op == 0xA2:
        r = int(a >= b)
    elif op == 0xA3:
        r = min(a, b)
    else:  # 0xA4 OP_MAX
        r = max(a, b)
    del stack[-2:]
    if op == 0x9D:  # OP_NUMEQUALVERIFY
        if not r:
            raise ScriptError("NUMEQUALVERIFY")
        return
    stack.append(encode_num(r))
