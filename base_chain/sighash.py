"""Signature hashes: legacy (pre-segwit, with its quirks) and BIP143 for segwit v0."""

from __future__ import annotations

import hashlib
import struct

from .hashes import hash256
from .serialize import compact_size, i32, i64, ser_bytes, u32
from .tx import Transaction

__all__ = [
    "SIGHASH_ALL",
    "SIGHASH_NONE",
    "SIGHASH_SINGLE",
    "SIGHASH_ANYONECANPAY",
    "get_op",
    "find_and_delete",
    "legacy_sighash",
    "bip143_sighash",
    "Bip143Cache",
]

SIGHASH_ALL = 1
SIGHASH_NONE = 2
SIGHASH_SINGLE = 3
SIGHASH_ANYONECANPAY = 0x80

OP_PUSHDATA1 = 0x4C
OP_PUSHDATA2 = 0x4D
OP_PUSHDATA4 = 0x4E
OP_CODESEPARATOR = 0xAB

# The "hash" legacy signing returns for an input or SINGLE output that does not exist.
_ONE = (1).to_bytes(32, "little")


def get_op(script: bytes, pc: int) -> tuple[bool, int, int, int]:
    """Read one operation at pc as Core's GetScriptOp does.

    Returns (ok, opcode, data_start, next_pc). When ok is False, next_pc is where Core's
    iterator stops, which matters for the byte-exact quirks of legacy signature hashing.
    """
    end = len(script)
    if pc >= end:
        return False, -1, pc, pc
    opcode = script[pc]
    pc += 1
    if opcode > OP_PUSHDATA4:
        return True, opcode, pc, pc
    if opcode < OP_PUSHDATA1:
        size = opcode
    elif opcode == OP_PUSHDATA1:
        if end - pc < 1:
            return False, opcode, pc, pc
        size = script[pc]
        pc += 1
    elif opcode == OP_PUSHDATA2:
        if end - pc < 2:
            return False, opcode, pc, pc
        size = int.from_bytes(script[pc : pc + 2], "little")
        pc += 2
    else:
        if end - pc < 4:
            return False, opcode, pc, pc
        size = int.from_bytes(script[pc : pc + 4], "little")
        pc += 4
    if end - pc < size:
        return False, opcode, pc, pc
    return True, opcode, pc, pc + size


def find_and_delete(script: bytes, pattern: bytes) -> bytes:
    """Remove every op-aligned occurrence of pattern (Core's FindAndDelete)."""
    if not pattern or pattern not in script:
        return script
    result = bytearray()
    found = 0
    pc = pc2 = 0
    end = len(script)
    plen = len(pattern)
    while True:
        result += script[pc2:pc]
        while end - pc >= plen and script[pc : pc + plen] == pattern:
            pc += plen
            found += 1
        pc2 = pc
        ok, _, _, pc = get_op(script, pc)
        if not ok:
            break
    if not found:
        return script
    result += script[pc2:]
    return bytes(result)


def _script_code_without_separators(script_code: bytes) -> bytes:
    """Core's SerializeScriptCode: OP_CODESEPARATORs dropped, length prefix included."""
    if OP_CODESEPARATOR not in script_code:
        return ser_bytes(script_code)
    separators = 0
    pc = 0
    while True:
        ok, opcode, _, pc = get_op(script_code, pc)
        if not ok:
            break
        if opcode == OP_CODESEPARATOR:
            separators += 1
    out = bytearray(compact_size(len(script_code) - separators))
    begin = pc = 0
    while True:
        ok, opcode, _, nxt = get_op(script_code, pc)
        pc = nxt
        if not ok:
            break
        if opcode == OP_CODESEPARATOR:
            out += script_code[begin : pc - 1]
            begin = pc
    if begin != len(script_code):
        out += script_code[begin:pc]
    return bytes(out)


def legacy_sighash(script_code: bytes, tx: Transaction, input_index: int, hash_type: int) -> bytes:
    """The original signature hash, byte for byte as Core's SignatureHash (SIGVERSION_BASE).

    The caller has already removed the signature itself from script_code (FindAndDelete).
    """
    if input_index >= len(tx.inputs):
        return _ONE
    base_type = hash_type & 0x1F
    anyone_can_pay = bool(hash_type & SIGHASH_ANYONECANPAY)
    if base_type == SIGHASH_SINGLE and input_index >= len(tx.outputs):
        return _ONE
    parts = [i32(tx.version)]
    indices = [input_index] if anyone_can_pay else range(len(tx.inputs))
    parts.append(compact_size(len(indices)))
    for i in indices:
        txin = tx.inputs[i]
        parts.append(txin.prevout.to_bytes())
        parts.append(_script_code_without_separators(script_code) if i == input_index else b"\x00")
        if i != input_index and base_type in (SIGHASH_SINGLE, SIGHASH_NONE):
            parts.append(u32(0))
        else:
            parts.append(u32(txin.sequence))
    if base_type == SIGHASH_NONE:
        parts.append(compact_size(0))
    elif base_type == SIGHASH_SINGLE:
        parts.append(compact_size(input_index + 1))
        parts += [i64(-1) + b"\x00"] * input_index
        parts.append(tx.outputs[input_index].to_bytes())
    else:
        parts.append(compact_size(len(tx.outputs)))
        parts += [o.to_bytes() for o in tx.outputs]
    parts.append(u32(tx.locktime))
    parts.append(u32(hash_type & 0xFFFFFFFF))
    return hash256(b"".join(parts))


class Bip143Cache:
    """hashPrevouts, hashSequence and hashOutputs of one transaction, computed once.

    It also keeps the SIGHASH_ALL preimage's parts that are the same for every input
    (version + hashPrevouts + hashSequence before the input, hashOutputs + locktime +
    hash type after it), for the version and locktime the transaction had then.
    """

    __slots__ = ("hash_prevouts", "hash_sequence", "hash_outputs", "version", "locktime", "head", "tail_all")

    def __init__(self, tx: Transaction) -> None:
        inputs = tx.inputs
        self.hash_prevouts = hash256(
            b"".join(i.prevout.txid + i.prevout.index.to_bytes(4, "little") for i in inputs)
        )
        self.hash_sequence = hash256(b"".join(i.sequence.to_bytes(4, "little") for i in inputs))
        self.hash_outputs = hash256(
            b"".join(
                o.amount_sat.to_bytes(8, "little", signed=True) + compact_size(len(o.script_pubkey)) + o.script_pubkey
                for o in tx.outputs
            )
        )
        self.version = tx.version
        self.locktime = tx.locktime
        self.head = i32(tx.version) + self.hash_prevouts + self.hash_sequence
        self.tail_all = self.hash_outputs + u32(tx.locktime) + u32(SIGHASH_ALL)


_ZERO32 = b"\x00" * 32
_sha256 = hashlib.sha256
_pack_u32 = struct.Struct("<I").pack
_pack_amount_sequence = struct.Struct("<qI").pack


def bip143_sighash(
    script_code: bytes,
    tx: Transaction,
    input_index: int,
    hash_type: int,
    amount_sat: int,
    cache: Bip143Cache | None = None,
) -> bytes:
    """The segwit v0 signature hash of BIP143."""
    if cache is None:
        cache = Bip143Cache(tx)
    if hash_type == SIGHASH_ALL and tx.version == cache.version and tx.locktime == cache.locktime:
        # The common case in one join: only the outpoint, script code, amount and sequence vary.
        txin = tx.inputs[input_index]
        prevout = txin.prevout
        n = len(script_code)
        return _sha256(_sha256(b"".join((
            cache.head,
            prevout.txid,
            _pack_u32(prevout.index),
            bytes((n,)) if n < 0xFD else compact_size(n),
            script_code,
            _pack_amount_sequence(amount_sat, txin.sequence),
            cache.tail_all,
        ))).digest()).digest()
    base_type = hash_type & 0x1F
    anyone_can_pay = bool(hash_type & SIGHASH_ANYONECANPAY)
    hash_prevouts = _ZERO32 if anyone_can_pay else cache.hash_prevouts
    if anyone_can_pay or base_type in (SIGHASH_SINGLE, SIGHASH_NONE):
        hash_sequence = _ZERO32
    else:
        hash_sequence = cache.hash_sequence
    if base_type not in (SIGHASH_SINGLE, SIGHASH_NONE):
        hash_outputs = cache.hash_outputs
    elif base_type == SIGHASH_SINGLE and input_index < len(tx.outputs):
        hash_outputs = hash256(tx.outputs[input_index].to_bytes())
    else:
        hash_outputs = _ZERO32
    txin = tx.inputs[input_index]
    preimage = b"".join(
        (
            i32(tx.version),
            hash_prevouts,
            hash_sequence,
            txin.prevout.to_bytes(),
            ser_bytes(script_code),
            i64(amount_sat),
            u32(txin.sequence),
            hash_outputs,
            u32(tx.locktime),
            u32(hash_type & 0xFFFFFFFF),
        )
    )
    return hash256(preimage)
