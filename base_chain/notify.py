"""Chain notifications for the layers above (as lnd's chainntnfs): confirmations and spends.

A sans-IO registry: the node feeds it connected / disconnected blocks and new
mempool transactions; it returns the notifications due. Registrations that
reach their target stay armed so that a reorg can be reported (REORGED) and
the confirmation re-sent later, as lnd does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from .block import Block
from .tx import OutPoint, Transaction

__all__ = ["ConfKind", "SpendKind", "ConfNote", "SpendNote", "Note", "ChainNotifier"]


class ConfKind(Enum):
    CONFIRMED = 0
    REORGED = 1
    UPDATE = 2


class SpendKind(Enum):
    SPENT = 0
    REORGED = 1
    MEMPOOL = 2


@dataclass(frozen=True, slots=True)
class ConfNote:
    reg_id: int
    kind: ConfKind
    txid: bytes
    block_hash: bytes
    block_height: int
    tx_index: int
    tx: Transaction | None
    num_confs: int


@dataclass(frozen=True, slots=True)
class SpendNote:
    reg_id: int
    kind: SpendKind
    outpoint: OutPoint
    spending_tx: Transaction | None
    input_index: int
    height: int


Note = ConfNote | SpendNote


@dataclass(slots=True)
class _ConfReg:
    txid: bytes | None
    script_pubkey: bytes | None
    num_confs: int
    found: tuple[bytes, int, int, Transaction] | None = None  # block hash, height, index, tx
    dispatched: bool = False


@dataclass(slots=True)
class _SpendReg:
    outpoint: OutPoint
    include_mempool: bool
    spent: tuple[Transaction, int, int] | None = None  # tx, input index, height
    mempool_seen: set[bytes] = field(default_factory=set)


class ChainNotifier:
    def __init__(self) -> None:
        self._next = 1
        self._confs: dict[int, _ConfReg] = {}
        self._spends: dict[int, _SpendReg] = {}

    def register_confirmations(self, txid: bytes | None, num_confs: int, script_pubkey: bytes | None = None) -> int:
        """Watch for `txid` (or, without one, any tx paying `script_pubkey`) reaching num_confs."""
        if txid is None and script_pubkey is None:
            raise ValueError("need a txid or a script")
        if num_confs < 1:
            raise ValueError("num_confs must be at least 1")
        reg_id = self._next
        self._next += 1
        self._confs[reg_id] = _ConfReg(txid, script_pubkey, num_confs)
        return reg_id

    def register_spend(self, outpoint: OutPoint, include_mempool: bool = False) -> int:
        reg_id = self._next
        self._next += 1
        self._spends[reg_id] = _SpendReg(outpoint, include_mempool)
        return reg_id

    def cancel(self, reg_id: int) -> None:
        self._confs.pop(reg_id, None)
        self._spends.pop(reg_id, None)

    @property
    def active_registrations(self) -> int:
        return len(self._confs) + len(self._spends)

    def _conf_matches(self, reg: _ConfReg, tx: Transaction, txid: bytes) -> bool:
        if reg.txid is not None:
            return reg.txid == txid
        return any(o.script_pubkey == reg.script_pubkey for o in tx.outputs)

    def block_connected(self, block: Block, height: int, tip_height: int | None = None,
                        only: int | None = None) -> list[Note]:
        """Feed a newly connected block (or, with `only`, replay a past one for one registration)."""
        tip = height if tip_height is None else tip_height
        notes: list[Note] = []
        confs = self._confs if only is None else {k: v for k, v in self._confs.items() if k == only}
        spends = self._spends if only is None else {k: v for k, v in self._spends.items() if k == only}
        if confs:
            pending = [(k, r) for k, r in confs.items() if r.found is None]
            if pending:
                for index, tx in enumerate(block.transactions):
                    txid = tx.txid
                    for reg_id, reg in pending:
                        if reg.found is None and self._conf_matches(reg, tx, txid):
                            reg.found = (block.hash, height, index, tx)
        for reg_id, reg in confs.items():
            if reg.found is not None and not reg.dispatched:
                depth = tip - reg.found[1] + 1
                if depth >= reg.num_confs:
                    reg.dispatched = True
                    bh, fh, idx, tx = reg.found
                    notes.append(ConfNote(reg_id, ConfKind.CONFIRMED, tx.txid, bh, fh, idx, tx, depth))
        if spends:
            by_outpoint = {r.outpoint: (k, r) for k, r in spends.items() if r.spent is None}
            if by_outpoint:
                for tx in block.transactions:
                    for i, txin in enumerate(tx.inputs):
                        hit = by_outpoint.get(txin.prevout)
                        if hit is not None:
                            reg_id, sreg = hit
                            sreg.spent = (tx, i, height)
                            notes.append(SpendNote(reg_id, SpendKind.SPENT, sreg.outpoint, tx, i, height))
        return notes

    def block_disconnected(self, block: Block, height: int) -> list[Note]:
        notes: list[Note] = []
        for reg_id, reg in self._confs.items():
            if reg.found is not None and reg.found[1] == height:
                bh, fh, idx, tx = reg.found
                if reg.dispatched:
                    notes.append(ConfNote(reg_id, ConfKind.REORGED, tx.txid, bh, fh, idx, tx, 0))
                reg.found = None
                reg.dispatched = False
        for reg_id, sreg in self._spends.items():
            if sreg.spent is not None and sreg.spent[2] == height:
                tx, i, h = sreg.spent
                notes.append(SpendNote(reg_id, SpendKind.REORGED, sreg.outpoint, tx, i, h))
                sreg.spent = None
        return notes

    def mempool_tx(self, tx: Transaction) -> list[Note]:
        notes: list[Note] = []
        for reg_id, sreg in self._spends.items():
            if not sreg.include_mempool or sreg.spent is not None:
                continue
            for i, txin in enumerate(tx.inputs):
                if txin.prevout == sreg.outpoint and tx.txid not in sreg.mempool_seen:
                    sreg.mempool_seen.add(tx.txid)
                    notes.append(SpendNote(reg_id, SpendKind.MEMPOOL, sreg.outpoint, tx, i, 0))
        return notes
