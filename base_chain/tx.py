"""Transactions: outpoints, inputs, outputs, witnesses and BIP144 (segwit) serialization."""

from __future__ import annotations

from dataclasses import dataclass, field

from .hashes import hash256
from .serialize import ByteReader, DeserializationError, compact_size, i32, i64, ser_bytes, u32

__all__ = ["OutPoint", "TxIn", "TxOut", "Transaction", "SEQUENCE_FINAL", "COIN"]

SEQUENCE_FINAL = 0xFFFFFFFF
COIN = 100_000_000
NULL_TXID = b"\x00" * 32


@dataclass(frozen=True, slots=True)
class OutPoint:
    """A reference to an output: txid in internal byte order and the output index."""

    txid: bytes
    index: int

    def to_bytes(self) -> bytes:
        return self.txid + u32(self.index)

    def is_null(self) -> bool:
        return self.txid == NULL_TXID and self.index == 0xFFFFFFFF

    def __str__(self) -> str:
        return f"{self.txid[::-1].hex()}:{self.index}"

    @classmethod
    def null(cls) -> OutPoint:
        return cls(NULL_TXID, 0xFFFFFFFF)


@dataclass(slots=True)
class TxIn:
    prevout: OutPoint
    script_sig: bytes = b""
    sequence: int = SEQUENCE_FINAL
    witness: list[bytes] = field(default_factory=list)


@dataclass(slots=True)
class TxOut:
    amount_sat: int
    script_pubkey: bytes

    def to_bytes(self) -> bytes:
        return i64(self.amount_sat) + ser_bytes(self.script_pubkey)


@dataclass(slots=True)
class Transaction:
    version: int = 2
    inputs: list[TxIn] = field(default_factory=list)
    outputs: list[TxOut] = field(default_factory=list)
    locktime: int = 0

    # --- serialization ---------------------------------------------------------

    def has_witness(self) -> bool:
        return any(txin.witness for txin in self.inputs)

    def to_bytes(self, include_witness: bool = True) -> bytes:
        witness = include_witness and self.has_witness()
        parts = [i32(self.version)]
        if witness:
            parts.append(b"\x00\x01")
        parts.append(compact_size(len(self.inputs)))
        for txin in self.inputs:
            parts += [txin.prevout.to_bytes(), ser_bytes(txin.script_sig), u32(txin.sequence)]
        parts.append(compact_size(len(self.outputs)))
        parts += [txout.to_bytes() for txout in self.outputs]
        if witness:
            for txin in self.inputs:
                parts.append(compact_size(len(txin.witness)))
                parts += [ser_bytes(item) for item in txin.witness]
        parts.append(u32(self.locktime))
        return b"".join(parts)

    @classmethod
    def read(cls, r: ByteReader) -> Transaction:
        """Parse one transaction the way Core's UnserializeTransaction does."""
        version = r.i32()
        inputs = _read_inputs(r)
        flags = 0
        if not inputs:
            flags = r.u8()
            if flags != 0:
                inputs = _read_inputs(r)
                outputs = _read_outputs(r)
            else:
                outputs = []
        else:
            outputs = _read_outputs(r)
        if flags & 1:
            flags ^= 1
            for txin in inputs:
                n = r.compact_size()
                txin.witness = [r.var_bytes() for _ in range(n)]
            if not any(txin.witness for txin in inputs):
                raise DeserializationError("Superfluous witness record")
        if flags:
            raise DeserializationError("Unknown transaction optional data")
        locktime = r.u32()
        return cls(version, inputs, outputs, locktime)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Transaction:
        r = ByteReader(raw)
        tx = cls.read(r)
        r.expect_end()
        return tx

    @classmethod
    def from_hex(cls, s: str) -> Transaction:
        try:
            raw = bytes.fromhex(s)
        except ValueError as e:
            raise DeserializationError("TX decode failed: not hex") from e
        return cls.from_bytes(raw)

    def hex(self) -> str:
        return self.to_bytes().hex()

    # --- identity and size -----------------------------------------------------

    @property
    def txid(self) -> bytes:
        """Hash of the serialization without witness, internal byte order."""
        return hash256(self.to_bytes(include_witness=False))

    @property
    def wtxid(self) -> bytes:
        return hash256(self.to_bytes())

    def txid_hex(self) -> str:
        """The txid as people see it (reversed byte order)."""
        return self.txid[::-1].hex()

    @property
    def weight(self) -> int:
        base = len(self.to_bytes(include_witness=False))
        total = len(self.to_bytes())
        return base * 3 + total

    @property
    def vsize(self) -> int:
        return (self.weight + 3) // 4

    def is_coinbase(self) -> bool:
        return len(self.inputs) == 1 and self.inputs[0].prevout.is_null()

    def copy(self) -> Transaction:
        return Transaction(
            self.version,
            [TxIn(i.prevout, i.script_sig, i.sequence, list(i.witness)) for i in self.inputs],
            [TxOut(o.amount_sat, o.script_pubkey) for o in self.outputs],
            self.locktime,
        )


def _read_inputs(r: ByteReader) -> list[TxIn]:
    n = r.compact_size()
    out = []
    for _ in range(n):
        prevout = OutPoint(r.read(32), r.u32())
        script_sig = r.var_bytes()
        sequence = r.u32()
        out.append(TxIn(prevout, script_sig, sequence))
    return out


def _read_outputs(r: ByteReader) -> list[TxOut]:
    n = r.compact_size()
    return [TxOut(r.i64(), r.var_bytes()) for _ in range(n)]
