"""Bitcoin script: opcodes, script numbers, ASM text, the interpreter and input verification.

The entry point for validating an input is :func:`verify_script`; failures raise
:class:`ScriptError` whose ``code`` is Bitcoin Core's error name.
"""

from __future__ import annotations

from .asm import AsmError, parse_asm, push_int, to_asm, to_test_asm
from .checker import SIGVERSION_BASE, SIGVERSION_WITNESS_V0, SignatureChecker, TransactionChecker
from .errors import ERROR_MESSAGES, TAPROOT_UNSUPPORTED, ScriptError
from .flags import (
    ALL_FLAGS,
    FLAG_BITS,
    MANDATORY_FLAGS,
    STANDARD_FLAGS,
    fill_flags,
    flags_to_mask,
    format_flags,
    is_valid_flag_combination,
    parse_flags,
    trim_flags,
)
from .interpreter import (
    MAX_OPS_PER_SCRIPT,
    MAX_SCRIPT_ELEMENT_SIZE,
    MAX_SCRIPT_SIZE,
    MAX_STACK_SIZE,
    eval_script,
)
from .num import cast_to_bool, decode_num, encode_num
from .opcodes import *  # noqa: F403  (the OP_* constants)
from .opcodes import (
    NAME_TO_OPCODE,
    OPCODE_NAMES,
    is_p2sh,
    is_push_only,
    iter_script,
    op_name,
    push_bytes,
    witness_program,
)
from .opcodes import __all__ as _opcode_names
from .verify import verify_script, verify_script_with_checker

__all__ = [
    "verify_script",
    "verify_script_with_checker",
    "ScriptError",
    "ERROR_MESSAGES",
    "TAPROOT_UNSUPPORTED",
    "eval_script",
    "SignatureChecker",
    "TransactionChecker",
    "SIGVERSION_BASE",
    "SIGVERSION_WITNESS_V0",
    "MAX_SCRIPT_SIZE",
    "MAX_SCRIPT_ELEMENT_SIZE",
    "MAX_OPS_PER_SCRIPT",
    "MAX_STACK_SIZE",
    "ALL_FLAGS",
    "FLAG_BITS",
    "MANDATORY_FLAGS",
    "STANDARD_FLAGS",
    "parse_flags",
    "format_flags",
    "flags_to_mask",
    "fill_flags",
    "trim_flags",
    "is_valid_flag_combination",
    "AsmError",
    "parse_asm",
    "push_int",
    "to_asm",
    "to_test_asm",
    "decode_num",
    "encode_num",
    "cast_to_bool",
    "NAME_TO_OPCODE",
    "OPCODE_NAMES",
    "op_name",
    "iter_script",
    "push_bytes",
    "is_push_only",
    "is_p2sh",
    "witness_program",
]
__all__ += [name for name in _opcode_names if name.startswith("OP_")]
