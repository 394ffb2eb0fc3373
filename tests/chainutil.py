"""Helpers for chain-state tests: a chain, a key, and blocks mined on demand."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from base_chain.block import Block
from base_chain.chainstate import BlockIndex, ChainEvent, ChainState, block_subsidy
from base_chain.coins import Coin
from base_chain.crypto import PrivateKey
from base_chain.merkle import block_merkle_root, find_witness_commitment, witness_commitment_script, witness_merkle_root
from base_chain.miner import assemble_block, mine_block
from base_chain.params import ChainParams, get_params
from base_chain.pow import bits_to_target
from base_chain.signing import sign_p2wpkh
from base_chain.store import ChainStore
from base_chain.templates import p2wpkh
from base_chain.tx import SEQUENCE_FINAL, OutPoint, Transaction, TxIn, TxOut

KEY = PrivateKey(0xC0FFEE)
SPK = p2wpkh(KEY.public_key().to_bytes())

REGTEST = get_params("regtest")


class Harness:
    def __init__(self, chain: str = "regtest", path: str = ":memory:") -> None:
        self.params = get_params(chain)
        self.store = ChainStore(path)
        self.chain = ChainState(self.params, self.store)
        self.extra = 0

    def block_on(
        self, prev: BlockIndex, txs: Sequence[Transaction] = (), fees: int = 0, dt: int = 600,
        coinbase_value: int | None = None,
        *,
        time: int | None = None,
        version: int | None = None,
        bits: int | None = None,
        height: int | None = None,
        segwit: bool = True,
    ) -> Block:
        """A mined block on `prev`; the keyword arguments override what a correct miner would put."""
        real_height = prev.height + 1
        self.extra += 1
        value = block_subsidy(real_height, self.params) + fees if coinbase_value is None else coinbase_value
        t = prev.header.time + dt if time is None else time
        block = assemble_block(
            prev.hash, real_height if height is None else height, t,
            self.chain.next_expected_bits(prev, t) if bits is None else bits,
            SPK, value, txs, extra_nonce=self.extra, segwit=segwit,
        )
        if version is not None:
            block = Block(replace(block.header, version=version), block.transactions)
        return mine_block(block, self.params)

    def mine(self, n: int = 1, prev: BlockIndex | None = None) -> list[ChainEvent]:
        events: list[ChainEvent] = []
        for _ in range(n):
            base = prev or self.chain.tip
            block = self.block_on(base)
            events += self.chain.accept_block(block, now=block.header.time)
            prev = self.chain.index[block.hash] if prev is not None else None
        return events

    # --- more helpers ------------------------------------------------------------------------

    def submit(self, block: Block, now: int | None = None) -> list[ChainEvent]:
        """accept_block with `now` = the block's own time unless given."""
        return self.chain.accept_block(block, now=block.header.time if now is None else now)

    def extend(
        self, prev: BlockIndex, n: int, txs: Sequence[Sequence[Transaction]] | None = None
    ) -> tuple[list[Block], list[ChainEvent]]:
        """Mine and submit n blocks in a row on `prev` (txs[i] go in the i-th); blocks and all events."""
        blocks: list[Block] = []
        events: list[ChainEvent] = []
        for i in range(n):
            block_txs = txs[i] if txs is not None else ()
            block = self.block_on(prev, block_txs, fees=fees_of(self, block_txs))
            events += self.submit(block)
            blocks.append(block)
            prev = self.chain.index[block.hash]
        return blocks, events

    def feed(self, blocks: Sequence[Block]) -> None:
        for b in blocks:
            self.submit(b)

    def block_at(self, height: int) -> Block:
        block = self.chain.get_block(self.chain.active[height].hash)
        assert block is not None
        return block

    def coinbase_outpoint(self, height: int) -> tuple[OutPoint, int]:
        """The spendable output of the active chain's coinbase at `height`, and its amount."""
        cb = self.block_at(height).transactions[0]
        return OutPoint(cb.txid, 0), cb.outputs[0].amount_sat

    def utxo(self) -> dict[bytes, bytes]:
        return dict(self.store.iter_coins())

    def active_blocks(self) -> list[Block]:
        """The active chain's blocks above genesis, oldest first."""
        return [self.block_at(h) for h in range(1, self.chain.height + 1)]

    def index_of(self, block: Block) -> BlockIndex:
        return self.chain.index[block.hash]


def fees_of(h: Harness, txs: Sequence[Transaction]) -> int:
    """Fees of txs whose inputs are in the active UTXO set or created earlier in txs (best effort: 0 if unknown)."""
    created: dict[OutPoint, int] = {}
    total = 0
    for tx in txs:
        value_in = 0
        for txin in tx.inputs:
            if txin.prevout in created:
                value_in += created[txin.prevout]
                continue
            coin = h.chain.get_coin(txin.prevout)
            if coin is None:
                return 0
            value_in += coin.output.amount_sat
        for n, out in enumerate(tx.outputs):
            created[OutPoint(tx.txid, n)] = out.amount_sat
        total += value_in - sum(o.amount_sat for o in tx.outputs)
    return max(total, 0)


def spend(
    prevouts: Sequence[tuple[OutPoint, int]],
    amounts: Sequence[int] | None = None,
    *,
    fee: int = 1000,
    script_pubkey: bytes = SPK,
    version: int = 2,
    locktime: int = 0,
    sequence: int = SEQUENCE_FINAL,
    key: PrivateKey = KEY,
) -> Transaction:
    """A signed transaction spending P2WPKH(KEY) outputs; by default one output of inputs - fee."""
    total = sum(a for _, a in prevouts)
    outs = [total - fee] if amounts is None else list(amounts)
    tx = Transaction(
        version,
        [TxIn(op, b"", sequence) for op, _ in prevouts],
        [TxOut(a, script_pubkey) for a in outs],
        locktime,
    )
    for i, (_, amount) in enumerate(prevouts):
        sign_p2wpkh(tx, i, key, amount)
    return tx


def seal(block: Block, params: ChainParams = REGTEST, *, merkle_root: bytes | None = None) -> Block:
    """Recompute the witness commitment (if the coinbase has one) and the merkle root, then re-mine."""
    txs = block.transactions
    if txs and txs[0].inputs:
        pos = find_witness_commitment(txs[0])
        if pos is not None and len(txs[0].inputs[0].witness) == 1:
            wroot, _ = witness_merkle_root(block)
            txs[0].outputs[pos] = TxOut(0, witness_commitment_script(wroot, txs[0].inputs[0].witness[0]))
    root = block_merkle_root(block)[0] if merkle_root is None else merkle_root
    header = replace(block.header, merkle_root=root, nonce=0)
    return mine_block(Block(header, txs), params)


def with_bad_pow(block: Block, params: ChainParams = REGTEST) -> Block:
    """The same block with a nonce whose hash misses the target."""
    target = bits_to_target(block.header.bits)
    nonce = block.header.nonce
    while True:
        nonce = (nonce + 1) & 0xFFFFFFFF
        header = replace(block.header, nonce=nonce)
        if int.from_bytes(header.hash, "little") > target:
            return Block(header, block.transactions)


def utxo_of_branch(blocks: Sequence[Block], chain: str = "regtest") -> dict[bytes, bytes]:
    """The UTXO set of a fresh store that connected exactly `blocks` (from genesis)."""
    h = Harness(chain)
    h.feed(blocks)
    assert h.chain.tip.hash == (blocks[-1].hash if blocks else h.params.genesis.hash)
    return h.utxo()


def decode_coins(utxo: dict[bytes, bytes]) -> dict[OutPoint, Coin]:
    return {OutPoint(k[:32], int.from_bytes(k[32:], "little")): Coin.from_bytes(v) for k, v in utxo.items()}
