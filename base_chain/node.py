"""The chain node's core: chain state, mempool, wallet and notifier kept in step.

Synchronous and clock-free: the trio daemon passes the time in and carries out
what comes back (relay to peers, notifications to subscribers). Every change to
the chain goes through `submit_block`, every new transaction through
`submit_tx`, so the mempool, the wallet and the notifier see the same sequence
of events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .block import Block
from .chainstate import BlockConnected, BlockDisconnected, ChainEvent, ChainState, block_subsidy
from .mempool import Mempool, MempoolReject
from .miner import assemble_block, mine_block
from .notify import ChainNotifier, Note
from .params import ChainParams
from .store import ChainStore
from .tx import Transaction
from .validation import BlockValidationError
from .wallet import Wallet

__all__ = ["NodeUpdate", "ChainNode"]


@dataclass(slots=True)
class NodeUpdate:
    """What changed after one operation: for relaying and for subscribers."""

    chain_events: list[ChainEvent] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    mempool_added: list[Transaction] = field(default_factory=list)
    mempool_removed: list[tuple[bytes, str]] = field(default_factory=list)  # (txid, reason)

    def extend(self, other: NodeUpdate) -> None:
        self.chain_events += other.chain_events
        self.notes += other.notes
        self.mempool_added += other.mempool_added
        self.mempool_removed += other.mempool_removed


class ChainNode:
    def __init__(self, params: ChainParams, datadir: Path) -> None:
        self.params = params
        self.datadir = datadir
        datadir.mkdir(parents=True, exist_ok=True)
        self.store = ChainStore(datadir / "chain.sqlite")
        self.chain = ChainState(params, self.store)
        self.mempool = Mempool(self.chain)
        self.wallet = Wallet.open(datadir / "wallet.sqlite", params)
        self.notifier = ChainNotifier()
        # A block stored but not connected before a crash is connected now, as Core does at startup.
        self.chain.activate_best_chain()
        self._catch_up_wallet()

    def close(self) -> None:
        self.store.close()
        self.wallet.close()

    # --- keeping the wallet in step after a restart ------------------------------------------------

    def _catch_up_wallet(self) -> None:
        """Replay blocks the wallet has not seen (a crash between the chain and wallet writes)."""
        best = self.wallet.best_block()
        chain = self.chain
        if best is not None:
            wallet_hash, wallet_height = best
            idx = chain.index.get(wallet_hash)
            # Walk the wallet back to the active chain: undo blocks that were reorged out.
            while idx is not None and not chain.in_active_chain(idx):
                block = chain.get_block(idx.hash)
                if block is None:
                    break
                self.wallet.block_disconnected(block, idx.height)
                idx = idx.prev
            start = (idx.height + 1) if idx is not None else 0
        else:
            start = 0
        for height in range(max(start, 1), chain.height + 1):
            block = chain.get_block(chain.active[height].hash)
            assert block is not None
            self.wallet.block_connected(block, height)

    # --- blocks ----------------------------------------------------------------------------------------

    def _apply_chain_events(self, events: list[ChainEvent], now: int) -> NodeUpdate:
        update = NodeUpdate(chain_events=list(events))
        before = set(self.mempool.txids())
        conflicted = self.mempool.on_chain_events(events, now)
        for ev in events:
            if isinstance(ev, BlockDisconnected):
                self.wallet.block_disconnected(ev.block, ev.index.height)
                update.notes += self.notifier.block_disconnected(ev.block, ev.index.height)
            elif isinstance(ev, BlockConnected):
                self.wallet.block_connected(ev.block, ev.index.height)
                update.notes += self.notifier.block_connected(ev.block, ev.index.height)
        after = set(self.mempool.txids())
        for txid in conflicted:
            update.mempool_removed.append((txid, "conflict"))
            self.wallet.mempool_removed(txid)
        for txid in before - after - set(conflicted):
            update.mempool_removed.append((txid, "block"))
        # Transactions of disconnected blocks that went back to the mempool.
        for txid in after - before:
            entry = self.mempool.get(txid)
            if entry is not None:
                self.wallet.mempool_added(entry.tx)
        return update

    def fee_of(self, txid: bytes) -> int:
        entry = self.mempool.get(txid)
        return entry.fee if entry is not None else 0

    def submit_block(self, block: Block, now: int) -> NodeUpdate:
        """Validate and connect a block; raises BlockValidationError with Core's reason."""
        events = self.chain.accept_block(block, now)
        return self._apply_chain_events(events, now)

    def generate(self, n: int, script_pubkey: bytes, now: int) -> tuple[list[bytes], NodeUpdate]:
        """Mine n blocks on the tip with the mempool's best transactions (generatetoaddress)."""
        hashes: list[bytes] = []
        update = NodeUpdate()
        for _ in range(n):
            tip = self.chain.tip
            height = tip.height + 1
            time = max(now, tip.median_time_past() + 1)
            txs = self.mempool.block_template(3_996_000)
            fees = sum(self.fee_of(tx.txid) for tx in txs)
            block = assemble_block(
                tip.hash, height, time, self.chain.next_expected_bits(tip, time), script_pubkey,
                block_subsidy(height, self.params) + fees, txs, extra_nonce=len(hashes),
                segwit=height >= self.params.segwit_height,
            )
            block = mine_block(block, self.params)
            update.extend(self.submit_block(block, now))
            hashes.append(block.hash)
        return hashes, update

    # --- transactions ----------------------------------------------------------------------------------

    def submit_tx(self, tx: Transaction, now: int) -> NodeUpdate:
        """Accept a transaction into the mempool; raises MempoolReject with Core's reason."""
        before = set(self.mempool.txids())
        self.mempool.accept(tx, now)
        update = NodeUpdate(mempool_added=[tx])
        for txid in before - set(self.mempool.txids()):
            update.mempool_removed.append((txid, "replaced"))
            self.wallet.mempool_removed(txid)
        self.wallet.mempool_added(tx)
        update.notes += self.notifier.mempool_tx(tx)
        return update

    def find_transaction(self, txid: bytes) -> tuple[Transaction, bytes | None] | None:
        """A transaction from the mempool or the chain's tx index: (tx, block hash or None)."""
        entry = self.mempool.get(txid)
        if entry is not None:
            return entry.tx, None
        block_hash = self.store.find_tx_block(txid)
        if block_hash is None:
            return None
        block = self.chain.get_block(block_hash)
        if block is None:
            return None
        for tx in block.transactions:
            if tx.txid == txid:
                return tx, block_hash
        return None


__all__ += ["BlockValidationError", "MempoolReject"]
