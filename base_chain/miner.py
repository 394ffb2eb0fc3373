"""Block assembly and mining: coinbase with BIP34 height and witness commitment, then the nonce grind."""

from __future__ import annotations

from collections.abc import Sequence

from .block import NULL_HASH, Block, BlockHeader
from .merkle import merkle_root, witness_commitment_script
from .params import ChainParams
from .pow import mine_header
from .templates import push_data, push_int
from .tx import OutPoint, Transaction, TxIn, TxOut

__all__ = ["make_coinbase", "assemble_block", "mine_block", "BLOCK_VERSION"]

BLOCK_VERSION = 0x20000000  # BIP9 top bits, as Core's miner sets them


def make_coinbase(
    height: int, script_pubkey: bytes, amount_sat: int, extra_nonce: int = 0, witness: bool = True
) -> Transaction:
    """A coinbase paying `amount_sat` to `script_pubkey`; its scriptSig starts with the BIP34 height."""
    script_sig = push_int(height) + push_data(extra_nonce.to_bytes(4, "little")) + push_data(b"/canal/")
    txin = TxIn(OutPoint.null(), script_sig, 0xFFFFFFFF, [NULL_HASH] if witness else [])
    return Transaction(2, [txin], [TxOut(amount_sat, script_pubkey)], 0)


def assemble_block(
    prev_hash: bytes,
    height: int,
    time: int,
    bits: int,
    coinbase_script: bytes,
    coinbase_value_sat: int,
    transactions: Sequence[Transaction] = (),
    extra_nonce: int = 0,
    segwit: bool = True,
) -> Block:
    """An unmined block: coinbase first (with the witness commitment when segwit is active)."""
    coinbase = make_coinbase(height, coinbase_script, coinbase_value_sat, extra_nonce, witness=segwit)
    txs = [coinbase, *transactions]
    if segwit:
        wtxids = [NULL_HASH] + [tx.wtxid for tx in transactions]
        wroot, _ = merkle_root(wtxids)
        coinbase.outputs.append(TxOut(0, witness_commitment_script(wroot)))
    root, _ = merkle_root([tx.txid for tx in txs])
    header = BlockHeader(BLOCK_VERSION, prev_hash, root, time, bits, 0)
    return Block(header, txs)


def mine_block(block: Block, params: ChainParams) -> Block:
    """Grind the nonce until the header meets its target (instant at regtest difficulty)."""
    return Block(mine_header(block.header, params), block.transactions)
