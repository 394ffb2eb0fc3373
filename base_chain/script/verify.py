"""Input verification (Core's VerifyScript): scriptSig, scriptPubKey, P2SH and segwit v0.

Witness v1 and later are handled as Core handles them when its TAPROOT flag is not
set: a spend of an unknown witness program succeeds, unless
DISCOURAGE_UPGRADABLE_WITNESS_PROGRAM is set. This module does not implement
BIP341/342, so a taproot spend verified *with* the TAPROOT flag raises
ScriptError(TAPROOT_UNSUPPORTED) rather than pretending either way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence, Set
from typing import Final

from ..sighash import Bip143Cache
from ..tx import Transaction
from .checker import SIGVERSION_BASE, SIGVERSION_WITNESS_V0, SignatureChecker, TransactionChecker
from .errors import TAPROOT_UNSUPPORTED, ScriptError
from .flags import FLAG_BITS, flags_to_mask
from .interpreter import MAX_SCRIPT_ELEMENT_SIZE, MAX_STACK_SIZE, eval_script_mask, hash160_fast
from .num import cast_to_bool, encode_num
from .opcodes import is_p2sh, is_push_only, push_bytes, witness_program
from .sigcheck import eval_checksig

__all__ = ["verify_script", "verify_script_with_checker", "p2wpkh_script_code"]

_P2SH: Final = FLAG_BITS["P2SH"]
_WITNESS: Final = FLAG_BITS["WITNESS"]
_CLEANSTACK: Final = FLAG_BITS["CLEANSTACK"]
_SIGPUSHONLY: Final = FLAG_BITS["SIGPUSHONLY"]
_TAPROOT: Final = FLAG_BITS["TAPROOT"]
_DISCOURAGE_WITNESS: Final = FLAG_BITS["DISCOURAGE_UPGRADABLE_WITNESS_PROGRAM"]

_P2A_PROGRAM: Final = b"\x4e\x73"  # pay-to-anchor: OP_1 <0x4e73>


def verify_script(
    script_sig: bytes,
    script_pubkey: bytes,
    witness: Sequence[bytes],
    flags: Set[str],
    tx: Transaction,
    input_index: int,
    amount_sat: int,
    cache: Bip143Cache | None = None,
) -> None:
    """Verify input `input_index` of `tx`, which spends `script_pubkey` worth `amount_sat`.

    `flags` are Core's verification flag names (a frozenset is fastest: its bit mask
    is cached). `cache` shares BIP143 midstate hashes between the inputs of one
    transaction. Raises ScriptError on failure; ValueError for an unknown flag or a
    combination Core refuses (CLEANSTACK without WITNESS, WITNESS without P2SH).
    """
    checker = TransactionChecker(tx, input_index, amount_sat, cache)
    verify_script_with_checker(script_sig, script_pubkey, witness, flags_to_mask(flags), checker)


def verify_script_with_checker(
    script_sig: bytes,
    script_pubkey: bytes,
    witness: Sequence[bytes],
    flags: int,
    checker: SignatureChecker,
) -> None:
    """verify_script with the flags as a bit mask and any signature checker."""
    if flags & _CLEANSTACK and not flags & _WITNESS:
        raise ValueError("the CLEANSTACK flag requires WITNESS (and P2SH)")
    if flags & _WITNESS and not flags & _P2SH:
        raise ValueError("the WITNESS flag requires P2SH")

    if not script_sig and flags & _WITNESS and len(script_pubkey) == 22 and script_pubkey[:2] == b"\x00\x14":
        # Native P2WPKH, the most common spend: the general path below does exactly this
        # (the program must be true on the stack, then the witness runs), minus its set-up.
        keyhash = script_pubkey[2:]
        if not cast_to_bool(keyhash):
            raise ScriptError("EVAL_FALSE")
        if len(witness) != 2:
            raise ScriptError("WITNESS_PROGRAM_MISMATCH", f"P2WPKH needs 2 witness items, got {len(witness)}")
        _verify_p2wpkh(witness[0], witness[1], keyhash, flags, checker)
        return

    if flags & _SIGPUSHONLY and not is_push_only(script_sig):
        raise ScriptError("SIG_PUSHONLY")

    # scriptSig and scriptPubKey run one after the other on one stack, never concatenated.
    stack: list[bytes] = []
    if script_sig:
        eval_script_mask(stack, script_sig, flags, checker, SIGVERSION_BASE)
    pay_to_script_hash = bool(flags & _P2SH) and is_p2sh(script_pubkey)
    saved = stack[:] if pay_to_script_hash else stack
    program = witness_program(script_pubkey)
    if program is None:
        eval_script_mask(stack, script_pubkey, flags, checker, SIGVERSION_BASE)
    else:
        # What evaluating "OP_n <program>" does, without the interpreter loop.
        stack.append(encode_num(program[0]))
        stack.append(program[1])
        if len(stack) > MAX_STACK_SIZE:
            raise ScriptError("STACK_SIZE")
    if not stack or not cast_to_bool(stack[-1]):
        raise ScriptError("EVAL_FALSE")

    had_witness = False
    if flags & _WITNESS:
        if program is not None:
            had_witness = True
            if script_sig:
                raise ScriptError("WITNESS_MALLEATED")
            _verify_witness_program(witness, program[0], program[1], flags, checker, False)
            del stack[1:]  # the witness ran on its own stack; skip CLEANSTACK for this one

    if pay_to_script_hash:
        if not is_push_only(script_sig):
            raise ScriptError("SIG_PUSHONLY", "P2SH scriptSig must only push")
        stack = saved  # cannot be empty: HASH160 on an empty stack fails above
        redeem_script = stack.pop()
        eval_script_mask(stack, redeem_script, flags, checker, SIGVERSION_BASE)
        if not stack or not cast_to_bool(stack[-1]):
            raise ScriptError("EVAL_FALSE", "redeem script")
        if flags & _WITNESS:
            program = witness_program(redeem_script)
            if program is not None:
                had_witness = True
                if script_sig != push_bytes(redeem_script):
                    raise ScriptError("WITNESS_MALLEATED_P2SH")
                _verify_witness_program(witness, program[0], program[1], flags, checker, True)
                del stack[1:]

    if flags & _CLEANSTACK and len(stack) != 1:
        raise ScriptError("CLEANSTACK", f"{len(stack)} items left")

    if flags & _WITNESS and not had_witness and witness:
        raise ScriptError("WITNESS_UNEXPECTED")


def _verify_witness_program(
    witness: Sequence[bytes],
    version: int,
    program: bytes,
    flags: int,
    checker: SignatureChecker,
    is_p2sh: bool,
) -> None:
    if version == 0:
        if len(program) == 32:  # P2WSH: the last witness item is the script, SHA256 = program
            if not witness:
                raise ScriptError("WITNESS_PROGRAM_WITNESS_EMPTY")
            witness_script = witness[-1]
            if hashlib.sha256(witness_script).digest() != program:
                raise ScriptError("WITNESS_PROGRAM_MISMATCH")
            _execute_witness_script(list(witness[:-1]), witness_script, flags, checker)
        elif len(program) == 20:  # P2WPKH: exactly [signature, pubkey] for an implied P2PKH
            if len(witness) != 2:
                raise ScriptError("WITNESS_PROGRAM_MISMATCH", f"P2WPKH needs 2 witness items, got {len(witness)}")
            _verify_p2wpkh(witness[0], witness[1], program, flags, checker)
        else:
            raise ScriptError("WITNESS_PROGRAM_WRONG_LENGTH", f"{len(program)}-byte v0 program")
    elif version == 1 and len(program) == 32 and not is_p2sh:
        if flags & _TAPROOT:
            raise ScriptError(TAPROOT_UNSUPPORTED)
        # Before taproot's rules apply, a v1 32-byte program is anyone-can-spend.
    elif version == 1 and program == _P2A_PROGRAM and not is_p2sh:
        pass  # pay-to-anchor: spendable by anyone, never discouraged
    elif flags & _DISCOURAGE_WITNESS:
        raise ScriptError("DISCOURAGE_UPGRADABLE_WITNESS_PROGRAM", f"witness v{version}")
    # Other versions, lengths and P2SH-wrapped programs stay valid for future soft forks.


def _execute_witness_script(
    stack: list[bytes], script: bytes, flags: int, checker: SignatureChecker
) -> None:
    for item in stack:
        if len(item) > MAX_SCRIPT_ELEMENT_SIZE:
            raise ScriptError("PUSH_SIZE", "witness item")
    eval_script_mask(stack, script, flags, checker, SIGVERSION_WITNESS_V0)
    # Witness scripts must leave exactly one true element.
    if len(stack) != 1:
        raise ScriptError("CLEANSTACK", f"witness script left {len(stack)} items")
    if not cast_to_bool(stack[-1]):
        raise ScriptError("EVAL_FALSE", "witness script")


def p2wpkh_script_code(program: bytes) -> bytes:
    """The script a P2WPKH spend runs: DUP HASH160 <program> EQUALVERIFY CHECKSIG."""
    return b"\x76\xa9\x14" + program + b"\x88\xac"


def _verify_p2wpkh(
    sig: bytes, pubkey: bytes, program: bytes, flags: int, checker: SignatureChecker
) -> None:
    """Run DUP HASH160 <program> EQUALVERIFY CHECKSIG on [sig, pubkey], step for step what
    the interpreter does with that script (same checks, same order, same errors) without
    its dispatch loop: this is the most common spend by far.

    (tests/test_script_props.py checks it against _execute_witness_script.)
    """
    if len(sig) > MAX_SCRIPT_ELEMENT_SIZE or len(pubkey) > MAX_SCRIPT_ELEMENT_SIZE:
        raise ScriptError("PUSH_SIZE", "witness item")
    # DUP HASH160 <program> EQUALVERIFY: the stack never nears its limits here.
    if hash160_fast(pubkey) != program:
        raise ScriptError("EQUALVERIFY")
    # CHECKSIG leaves one element, so the clean-stack rule holds; it must be true.
    if not eval_checksig(sig, pubkey, p2wpkh_script_code(program), flags, checker, SIGVERSION_WITNESS_V0):
        raise ScriptError("EVAL_FALSE", "witness script")
