"""Signature-operation counting for the block sigop limit (Core's GetTransactionSigOpCost)."""

from __future__ import annotations

from collections.abc import Sequence

from .sighash import get_op
from .tx import Transaction, TxOut

__all__ = ["script_sigop_count", "legacy_sigop_count", "transaction_sigop_cost", "MAX_BLOCK_SIGOPS_COST"]

MAX_BLOCK_SIGOPS_COST = 80_000
WITNESS_SCALE_FACTOR = 4
MAX_PUBKEYS_PER_MULTISIG = 20

OP_0 = 0x00
OP_1 = 0x51
OP_16 = 0x60
OP_CHECKSIG = 0xAC
OP_CHECKSIGVERIFY = 0xAD
OP_CHECKMULTISIG = 0xAE
OP_CHECKMULTISIGVERIFY = 0xAF
OP_HASH160 = 0xA9
OP_EQUAL = 0x87


def script_sigop_count(script: bytes, accurate: bool) -> int:
    """Core's CScript::GetSigOpCount(fAccurate)."""
    n = 0
    pc = 0
    last = -1
    while pc < len(script):
        ok, opcode, _, pc = get_op(script, pc)
        if not ok:
            break
        if opcode in (OP_CHECKSIG, OP_CHECKSIGVERIFY):
            n += 1
        elif opcode in (OP_CHECKMULTISIG, OP_CHECKMULTISIGVERIFY):
            if accurate and OP_1 <= last <= OP_16:
                n += last - OP_1 + 1
            else:
                n += MAX_PUBKEYS_PER_MULTISIG
        last = opcode
    return n


def _pushes(script: bytes) -> list[bytes] | None:
    """The data pushed by a push-only script, or None if it is not push-only or malformed."""
    out: list[bytes] = []
    pc = 0
    while pc < len(script):
        ok, opcode, start, pc = get_op(script, pc)
        if not ok or opcode > OP_16:
            return None
        if opcode <= 0x4E:
            out.append(script[start:pc])
        else:
            out.append(b"")  # OP_1NEGATE / OP_n: content irrelevant for counting
    return out


def _is_p2sh(spk: bytes) -> bool:
    return len(spk) == 23 and spk[0] == OP_HASH160 and spk[1] == 20 and spk[22] == OP_EQUAL


def _witness_program(spk: bytes) -> tuple[int, bytes] | None:
    if not 4 <= len(spk) <= 42:
        return None
    if spk[0] != OP_0 and not OP_1 <= spk[0] <= OP_16:
        return None
    if spk[1] + 2 != len(spk):
        return None
    return (0 if spk[0] == OP_0 else spk[0] - OP_1 + 1), spk[2:]


def _p2sh_sigops(script_sig: bytes) -> int:
    """Core's GetSigOpCount(scriptSig) for a P2SH output: count in the pushed redeem script."""
    pc = 0
    last_data = b""
    while pc < len(script_sig):
        ok, opcode, start, pc = get_op(script_sig, pc)
        if not ok or opcode > OP_16:
            return 0
        last_data = script_sig[start:pc] if opcode <= 0x4E else b""
    return script_sigop_count(last_data, True)


def _witness_sigops(script_sig: bytes, spk: bytes, witness: Sequence[bytes], p2sh: bool) -> int:
    program = _witness_program(spk)
    if program is None and p2sh and _is_p2sh(spk):
        pushes = _pushes(script_sig)
        if pushes:
            program = _witness_program(pushes[-1])
    if program is None:
        return 0
    version, prog = program
    if version == 0:
        if len(prog) == 20:
            return 1
        if len(prog) == 32 and witness:
            return script_sigop_count(witness[-1], True)
    return 0


def legacy_sigop_count(tx: Transaction) -> int:
    return sum(script_sigop_count(i.script_sig, False) for i in tx.inputs) + sum(
        script_sigop_count(o.script_pubkey, False) for o in tx.outputs
    )


def transaction_sigop_cost(tx: Transaction, spent: Sequence[TxOut], p2sh: bool, witness: bool) -> int:
    """Core's GetTransactionSigOpCost; `spent` holds the outputs the inputs spend."""
    cost = legacy_sigop_count(tx) * WITNESS_SCALE_FACTOR
    if tx.is_coinbase():
        return cost
    if p2sh:
        for txin, prev in zip(tx.inputs, spent):
            if _is_p2sh(prev.script_pubkey):
                cost += _p2sh_sigops(txin.script_sig) * WITNESS_SCALE_FACTOR
    if witness:
        for txin, prev in zip(tx.inputs, spent):
            cost += _witness_sigops(txin.script_sig, prev.script_pubkey, txin.witness, p2sh)
    return cost
