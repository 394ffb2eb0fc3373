"""The chain state: block index, most-work chain selection, UTXO set, block connection and reorgs.

A synchronous core with no clock and no sockets: callers pass the current time
in, and get back the list of chain events (blocks connected / disconnected) to
act on. Durable state lives in an injected `ChainStore`; every block connection
or disconnection is one store transaction, so the state on disk is always a
consistent chain, whatever instant the process dies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntFlag

from .block import Block, BlockHeader
from .checks import TxCheckError, verify_input_scripts
from .coins import Coin, check_tx_inputs
from .locks import calculate_sequence_locks, evaluate_sequence_locks
from .params import ChainParams
from .pow import block_work, median_time_past, next_work_required
from .serialize import ByteReader, compact_size
from .sigops import MAX_BLOCK_SIGOPS_COST, transaction_sigop_cost
from .store import ChainStore, StoredIndexEntry
from .tx import OutPoint, TxOut
from .validation import (
    BlockValidationError,
    HeaderContext,
    check_block,
    check_block_header,
    contextual_check_block,
    contextual_check_header,
    script_flags_at,
)

__all__ = [
    "BlockStatus",
    "BlockIndex",
    "BlockConnected",
    "BlockDisconnected",
    "ChainEvent",
    "ChainState",
    "block_subsidy",
]

MAX_SCRIPT_SIZE = 10_000
OP_RETURN = 0x6A


class BlockStatus(IntFlag):
    HEADER_VALID = 1
    HAVE_DATA = 2
    CONNECTED_ONCE = 4  # scripts and inputs fully validated at least once
    FAILED = 8
    FAILED_CHILD = 16


@dataclass(eq=False, slots=True)
class BlockIndex:
    """One header in the block tree, with its cumulative work."""

    hash: bytes
    header: BlockHeader
    height: int
    chain_work: int
    status: int
    prev: BlockIndex | None
    sequence: int = 0  # arrival order: the first of equal-work tips wins
    _mtp: int = -1

    @property
    def failed(self) -> bool:
        return bool(self.status & (BlockStatus.FAILED | BlockStatus.FAILED_CHILD))

    @property
    def have_data(self) -> bool:
        return bool(self.status & BlockStatus.HAVE_DATA)

    def median_time_past(self) -> int:
        if self._mtp < 0:
            times = []
            node: BlockIndex | None = self
            for _ in range(11):
                if node is None:
                    break
                times.append(node.header.time)
                node = node.prev
            self._mtp = median_time_past(times)
        return self._mtp

    def ancestor(self, height: int) -> BlockIndex:
        if height > self.height or height < 0:
            raise ValueError(f"no ancestor at height {height}")
        node = self
        while node.height > height:
            assert node.prev is not None
            node = node.prev
        return node

    def hash_hex(self) -> str:
        return self.hash[::-1].hex()


@dataclass(frozen=True, slots=True)
class BlockConnected:
    index: BlockIndex
    block: Block


@dataclass(frozen=True, slots=True)
class BlockDisconnected:
    index: BlockIndex
    block: Block


ChainEvent = BlockConnected | BlockDisconnected


def block_subsidy(height: int, params: ChainParams) -> int:
    halvings = height // params.subsidy_halving_interval
    if halvings >= 64:
        return 0
    return params.initial_subsidy_sat >> halvings


def outpoint_key(outpoint: OutPoint) -> bytes:
    return outpoint.to_bytes()


def _is_unspendable(script_pubkey: bytes) -> bool:
    return (len(script_pubkey) > 0 and script_pubkey[0] == OP_RETURN) or len(script_pubkey) > MAX_SCRIPT_SIZE


def _encode_undo(spent: list[Coin]) -> bytes:
    return compact_size(len(spent)) + b"".join(c.to_bytes() for c in spent)


def _decode_undo(data: bytes) -> list[Coin]:
    r = ByteReader(data)
    coins = [Coin.read(r) for _ in range(r.compact_size())]
    r.expect_end()
    return coins


class ChainState:
    def __init__(self, params: ChainParams, store: ChainStore) -> None:
        self.params = params
        self.store = store
        self.index: dict[bytes, BlockIndex] = {}
        self.active: list[BlockIndex] = []
        self._sequence = 0
        self.best_header: BlockIndex
        self._pending: dict[bytes, Block] = {}  # blocks accepted but maybe not yet connected
        self._load()

    # --- loading ---------------------------------------------------------------------

    def _load(self) -> None:
        entries = self.store.load_index()
        if not entries:
            genesis = self.params.genesis
            entry = StoredIndexEntry(
                genesis.hash,
                0,
                genesis.header.to_bytes(),
                block_work(genesis.header.bits),
                BlockStatus.HEADER_VALID | BlockStatus.HAVE_DATA | BlockStatus.CONNECTED_ONCE,
            )
            with self.store.transaction():
                self.store.put_index(entry)
                self.store.put_block(genesis.hash, genesis.to_bytes())
                self.store.set_active(0, genesis.hash)
            entries = [entry]
        elif entries[0].hash != self.params.genesis.hash:
            raise RuntimeError(
                f"data directory belongs to another chain (genesis {entries[0].hash[::-1].hex()}, "
                f"expected {self.params.name} genesis {self.params.genesis.hash[::-1].hex()})"
            )
        for e in entries:
            header = BlockHeader.from_bytes(e.header)
            prev = self.index.get(header.prev_block) if e.height else None
            self._sequence += 1
            self.index[e.hash] = BlockIndex(e.hash, header, e.height, e.chain_work, e.status, prev, self._sequence)
        self.active = [self.index[h] for h in self.store.load_active()]
        # Core's SEQ_ID_BEST_CHAIN_FROM_DISK: the tip we shut down on beats any equal-work
        # rival after a restart (the load order above is not the original arrival order).
        self.active[-1].sequence = 0
        self.best_header = max(
            (i for i in self.index.values() if not i.failed), key=lambda i: (i.chain_work, -i.sequence)
        )

    # --- queries ---------------------------------------------------------------------

    @property
    def tip(self) -> BlockIndex:
        return self.active[-1]

    @property
    def height(self) -> int:
        return len(self.active) - 1

    def in_active_chain(self, index: BlockIndex) -> bool:
        return index.height < len(self.active) and self.active[index.height] is index

    def get_block(self, block_hash: bytes) -> Block | None:
        pending = self._pending.get(block_hash)
        if pending is not None:
            return pending
        data = self.store.get_block(block_hash)
        return None if data is None else Block.from_bytes(data)

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        data = self.store.get_coin(outpoint_key(outpoint))
        return None if data is None else Coin.from_bytes(data)

    def locator(self, index: BlockIndex | None = None) -> list[bytes]:
        """A block locator: dense near the tip, exponentially sparser back to genesis."""
        node = index or self.tip
        out: list[bytes] = []
        step = 1
        while True:
            out.append(node.hash)
            if node.height == 0:
                break
            height = max(node.height - step, 0)
            node = node.ancestor(height) if not self.in_active_chain(node) else self.active[height]
            if len(out) > 10:
                step *= 2
        return out

    def find_fork(self, locator: Iterable[bytes]) -> BlockIndex:
        """The last block of the locator that is in our active chain (genesis if none)."""
        for h in locator:
            idx = self.index.get(h)
            if idx is not None and self.in_active_chain(idx):
                return idx
        return self.active[0]

    def next_expected_bits(self, prev: BlockIndex, new_time: int) -> int:
        """The bits a block on top of `prev` with timestamp `new_time` must carry."""
        params = self.params
        height = prev.height + 1
        first_time = None
        if height % params.retarget_interval == 0 and not params.pow_no_retargeting:
            first_time = prev.ancestor(max(height - params.retarget_interval, 0)).header.time
        cursor = prev

        def bits_at(h: int) -> int:
            # Asked for decreasing heights: walk on from the last answer, O(k) in all, not O(k^2).
            nonlocal cursor
            cursor = (cursor if h <= cursor.height else prev).ancestor(h)
            return cursor.header.bits

        return next_work_required(
            height, prev.header.bits, prev.header.time, params,
            first_time=first_time, new_time=new_time, bits_at=bits_at,
        )

    def missing_blocks(self, limit: int = 128) -> list[BlockIndex]:
        """Blocks on the best header chain whose data we do not have, oldest first."""
        path: list[BlockIndex] = []
        node: BlockIndex | None = self.best_header
        while node is not None and not self.in_active_chain(node):
            if not node.have_data:
                path.append(node)
            node = node.prev
        path.reverse()
        return path[:limit]

    # --- accepting headers and blocks ---------------------------------------------------

    def accept_header(self, header: BlockHeader, now: int) -> BlockIndex:
        """Validate a header against its parent and add it to the block tree."""
        h = header.hash
        existing = self.index.get(h)
        if existing is not None:
            if existing.failed:
                raise BlockValidationError("duplicate-invalid", "block is marked invalid")
            return existing
        check_block_header(header, self.params)
        prev = self.index.get(header.prev_block)
        if prev is None:
            raise BlockValidationError("prev-blk-not-found", f"parent {header.prev_block[::-1].hex()} unknown")
        if prev.failed:
            raise BlockValidationError("bad-prevblk", "previous block is invalid")
        ctx = HeaderContext(prev.height + 1, prev.median_time_past(), self.next_expected_bits(prev, header.time))
        contextual_check_header(header, ctx, self.params, now)
        self._sequence += 1
        idx = BlockIndex(
            h, header, prev.height + 1, prev.chain_work + block_work(header.bits),
            int(BlockStatus.HEADER_VALID), prev, self._sequence,
        )
        self.store.put_index(self._stored(idx))
        self.index[h] = idx
        if idx.chain_work > self.best_header.chain_work:
            self.best_header = idx
        return idx

    def accept_block(self, block: Block, now: int) -> list[ChainEvent]:
        """Validate a block, store it, and move the active chain to the most-work valid tip.

        Raises BlockValidationError when this block itself is invalid; returns the
        chain events (in order) otherwise.
        """
        idx = self.accept_header(block.header, now)
        if not idx.have_data:
            assert idx.prev is not None
            ctx = HeaderContext(idx.height, idx.prev.median_time_past(), idx.header.bits)
            try:
                check_block(block, self.params)
                contextual_check_block(block, ctx, self.params)
            except BlockValidationError as e:
                if e.reason not in ("bad-txnmrklroot", "bad-txns-duplicate", "bad-witness-merkle-match",
                                    "bad-witness-nonce-size", "unexpected-witness"):
                    # The header commits to this content: the block itself is invalid.
                    self._mark_failed(idx)
                raise
            with self.store.transaction():
                self.store.put_block(idx.hash, block.to_bytes())
                idx.status |= BlockStatus.HAVE_DATA
                self.store.set_status(idx.hash, idx.status)
            # Core's nSequenceId: equal-work tips are ordered by when their *data* arrived, so a
            # header announced early (headers-first) does not beat a block received before it.
            self._sequence += 1
            idx.sequence = self._sequence
            # Only a block that has just passed the checks may stand in for the stored bytes: an
            # unchecked (e.g. witness-stripped) copy of a block we already have must never be connected.
            self._pending[idx.hash] = block
        try:
            events, error = self.activate_best_chain()
        finally:
            self._pending.clear()
        if error is not None and error[0] is idx:
            raise error[1]
        return events

    def _stored(self, idx: BlockIndex) -> StoredIndexEntry:
        return StoredIndexEntry(idx.hash, idx.height, idx.header.to_bytes(), idx.chain_work, idx.status)

    def _mark_failed(self, idx: BlockIndex) -> None:
        with self.store.transaction():
            idx.status |= BlockStatus.FAILED
            self.store.set_status(idx.hash, idx.status)
            for other in self.index.values():
                if other is not idx and not other.failed and other.height > idx.height:
                    if other.ancestor(idx.height) is idx:
                        other.status |= BlockStatus.FAILED_CHILD
                        self.store.set_status(other.hash, other.status)
        if self.best_header.failed:
            self.best_header = max(
                (i for i in self.index.values() if not i.failed), key=lambda i: (i.chain_work, -i.sequence)
            )

    # --- chain selection ---------------------------------------------------------------------

    def _connectable(self, idx: BlockIndex) -> bool:
        node: BlockIndex | None = idx
        while node is not None and not self.in_active_chain(node):
            if node.failed or not node.have_data:
                return False
            node = node.prev
        return True

    def _best_candidate(self) -> BlockIndex:
        best = self.tip
        for idx in self.index.values():
            if idx.chain_work < best.chain_work or idx.failed or not idx.have_data:
                continue
            if idx.chain_work == best.chain_work and idx.sequence >= best.sequence:
                continue
            if self._connectable(idx):
                best = idx
        return best

    def activate_best_chain(self) -> tuple[list[ChainEvent], tuple[BlockIndex, BlockValidationError] | None]:
        """Reorganize to the most-work valid chain we have data for.

        Returns the events and, if a block failed to connect, that block and its error.
        """
        events: list[ChainEvent] = []
        first_error: tuple[BlockIndex, BlockValidationError] | None = None
        while True:
            target = self._best_candidate()
            if target is self.tip:
                return events, first_error
            fork = target
            while not self.in_active_chain(fork):
                assert fork.prev is not None
                fork = fork.prev
            while self.tip is not fork:
                events.append(self._disconnect_tip())
            path = []
            node: BlockIndex | None = target
            while node is not fork:
                assert node is not None
                path.append(node)
                node = node.prev
            for idx in reversed(path):
                block = self.get_block(idx.hash)
                assert block is not None
                try:
                    events.append(self._connect(idx, block))
                except BlockValidationError as e:
                    self._mark_failed(idx)
                    if first_error is None:
                        first_error = (idx, e)
                    break

    # --- connecting and disconnecting ------------------------------------------------------------

    def _connect(self, idx: BlockIndex, block: Block) -> BlockConnected:
        assert idx.prev is self.tip
        params = self.params
        height = idx.height
        flags = script_flags_at(height, params)
        enforce_bip68 = height >= params.csv_height
        prev_mtp = idx.prev.median_time_past()
        created: dict[OutPoint, Coin] = {}
        spent_keys: list[bytes] = []
        undo: list[Coin] = []
        fees = 0
        sigop_cost = 0
        for tx in block.transactions:
            if tx.is_coinbase():
                spent_outputs: list[TxOut] = []
            else:
                view = _OverlayView(self, created, spent_keys)
                try:
                    fees += check_tx_inputs(tx, view, height, params.coinbase_maturity)
                except TxCheckError as e:
                    raise BlockValidationError(e.reason, e.debug) from e
                coins = [view.get_coin(txin.prevout) for txin in tx.inputs]
                spent_coins = [c for c in coins if c is not None]
                spent_outputs = [c.output for c in spent_coins]
                if enforce_bip68 and (tx.version & 0xFFFFFFFF) >= 2:  # Core compares it as uint32
                    prev_heights = [c.height for c in spent_coins]
                    mtps = [self._mtp_before(idx.prev, h) for h in prev_heights]
                    locks = calculate_sequence_locks(tx, True, prev_heights, mtps)
                    if not evaluate_sequence_locks(height, prev_mtp, locks):
                        raise BlockValidationError("bad-txns-nonfinal", "contains a non-BIP68-final transaction")
            sigop_cost += transaction_sigop_cost(tx, spent_outputs, "P2SH" in flags, "WITNESS" in flags)
            if sigop_cost > MAX_BLOCK_SIGOPS_COST:
                raise BlockValidationError("bad-blk-sigops", "too many sigops")
            if not tx.is_coinbase():
                try:
                    verify_input_scripts(tx, spent_outputs, flags)
                except TxCheckError as e:
                    raise BlockValidationError(e.reason, f"{e.debug} of {tx.txid_hex()}") from e
                for txin, coin in zip(tx.inputs, spent_coins):
                    undo.append(coin)
                    if txin.prevout in created:
                        del created[txin.prevout]
                    else:
                        spent_keys.append(outpoint_key(txin.prevout))
            txid = tx.txid
            is_cb = tx.is_coinbase()
            for n, out in enumerate(tx.outputs):
                if not _is_unspendable(out.script_pubkey):
                    created[OutPoint(txid, n)] = Coin(out, height, is_cb)
        coinbase_out = sum(o.amount_sat for o in block.transactions[0].outputs)
        limit = fees + block_subsidy(height, params)
        if coinbase_out > limit:
            raise BlockValidationError("bad-cb-amount", f"coinbase pays too much (actual={coinbase_out} vs limit={limit})")
        with self.store.transaction():
            self.store.remove_coins(spent_keys)
            self.store.add_coins((outpoint_key(op), c.to_bytes()) for op, c in created.items())
            self.store.put_undo(idx.hash, _encode_undo(undo))
            self.store.set_active(height, idx.hash)
            self.store.index_txids(idx.hash, (tx.txid for tx in block.transactions))
            idx.status |= BlockStatus.CONNECTED_ONCE
            self.store.set_status(idx.hash, idx.status)
        self.active.append(idx)
        return BlockConnected(idx, block)

    def _mtp_before(self, prev: BlockIndex, coin_height: int) -> int:
        # prev is the active tip here (see _connect), so its ancestors are the active chain: O(1).
        height = max(coin_height - 1, 0)
        node = self.active[height] if self.in_active_chain(prev) else prev.ancestor(height)
        return node.median_time_past()

    def _disconnect_tip(self) -> BlockDisconnected:
        idx = self.tip
        if idx.height == 0:
            raise RuntimeError("cannot disconnect the genesis block")
        block = self.get_block(idx.hash)
        undo_data = self.store.get_undo(idx.hash)
        if block is None or undo_data is None:
            raise RuntimeError(f"missing block or undo data for {idx.hash_hex()}")
        undo = _decode_undo(undo_data)
        removed: list[bytes] = []
        # Undo in reverse order, as Core's DisconnectBlock: a coin created and spent inside this
        # block is restored by the later tx's undo, then removed with the earlier tx's outputs.
        restored: dict[bytes, bytes] = {}
        pos = len(undo)
        for tx in reversed(block.transactions):
            txid = tx.txid
            for n in range(len(tx.outputs)):
                key = outpoint_key(OutPoint(txid, n))
                removed.append(key)
                restored.pop(key, None)
            if tx.is_coinbase():
                continue
            pos -= len(tx.inputs)
            for txin, coin in zip(tx.inputs, undo[pos : pos + len(tx.inputs)]):
                restored[outpoint_key(txin.prevout)] = coin.to_bytes()
        if pos != 0:
            raise RuntimeError(f"undo data of {idx.hash_hex()} does not match the block")
        with self.store.transaction():
            self.store.remove_coins(removed)
            self.store.add_coins(restored.items())
            self.store.truncate_active(idx.height - 1)
            self.store.unindex_txids(tx.txid for tx in block.transactions)
        self.active.pop()
        return BlockDisconnected(idx, block)

    # --- operator actions ----------------------------------------------------------------------------

    def invalidate_block(self, block_hash: bytes) -> list[ChainEvent]:
        """Like bitcoin-cli invalidateblock: mark a block invalid and reorganize away from it."""
        idx = self.index.get(block_hash)
        if idx is None:
            raise KeyError("Block not found")
        if idx.height == 0:
            raise ValueError("cannot invalidate the genesis block")
        events: list[ChainEvent] = []
        while self.in_active_chain(idx):
            events.append(self._disconnect_tip())
        self._mark_failed(idx)
        more, _ = self.activate_best_chain()
        return events + more


class _OverlayView:
    """Coins as seen in the middle of a block: the store, plus this block's outputs, minus its spends."""

    def __init__(self, chain: ChainState, created: dict[OutPoint, Coin], spent_keys: list[bytes]) -> None:
        self.chain = chain
        self.created = created
        self.spent = set(spent_keys)
        self._seen: dict[OutPoint, Coin | None] = {}

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        coin = self.created.get(outpoint)
        if coin is not None:
            return coin
        if outpoint_key(outpoint) in self.spent:
            return None
        if outpoint in self._seen:
            return self._seen[outpoint]
        coin = self.chain.get_coin(outpoint)
        self._seen[outpoint] = coin
        return coin
