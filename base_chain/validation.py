"""Block validity rules as pure functions, each failure named with Bitcoin Core's reason.

Split as Core splits them: `check_block` needs nothing but the block;
`contextual_check_header` and `contextual_check_block` need the parent's context
(height, median time past, expected difficulty) passed in explicitly. Rules that
need the UTXO set live in the chain state's block connection.
"""

from __future__ import annotations

from dataclasses import dataclass

from .block import Block, BlockHeader
from .checks import MAX_BLOCK_WEIGHT, TxCheckError, check_transaction
from .locks import is_final_tx
from .merkle import block_merkle_root, find_witness_commitment, witness_merkle_root
from .hashes import hash256
from .params import ChainParams
from .pow import check_proof_of_work
from .sigops import MAX_BLOCK_SIGOPS_COST, legacy_sigop_count
from .templates import push_int

__all__ = [
    "BlockValidationError",
    "HeaderContext",
    "check_block_header",
    "check_block",
    "contextual_check_header",
    "contextual_check_block",
    "script_flags_at",
    "MAX_FUTURE_BLOCK_TIME",
]

MAX_FUTURE_BLOCK_TIME = 2 * 60 * 60
WITNESS_SCALE_FACTOR = 4


class BlockValidationError(ValueError):
    """A header or block was rejected; `reason` is Core's reject reason (e.g. "bad-txnmrklroot")."""

    def __init__(self, reason: str, debug: str = "") -> None:
        super().__init__(f"{reason} ({debug})" if debug else reason)
        self.reason = reason
        self.debug = debug


@dataclass(frozen=True, slots=True)
class HeaderContext:
    """What the rules need to know about the parent of a new header."""

    height: int  # height of the new block
    prev_median_time: int  # median time past of the parent
    expected_bits: int  # the difficulty the new block must carry


def script_flags_at(height: int, params: ChainParams) -> frozenset[str]:
    """The consensus script flags in force for a block at `height`."""
    flags = {"P2SH"}
    if height >= params.bip66_height:
        flags.add("DERSIG")
    if height >= params.bip65_height:
        flags.add("CHECKLOCKTIMEVERIFY")
    if height >= params.csv_height:
        flags.add("CHECKSEQUENCEVERIFY")
    if height >= params.segwit_height:
        flags.update(("WITNESS", "NULLDUMMY"))
    return frozenset(flags)


def check_block_header(header: BlockHeader, params: ChainParams) -> None:
    try:
        check_proof_of_work(header.hash, header.bits, params)
    except ValueError as e:
        raise BlockValidationError(getattr(e, "reason", str(e)), "proof of work failed") from e


def check_block(block: Block, params: ChainParams) -> None:
    """Core's CheckBlock: everything that can be checked without the chain."""
    check_block_header(block.header, params)
    root, mutated = block_merkle_root(block)
    if root != block.header.merkle_root:
        raise BlockValidationError("bad-txnmrklroot", "hashMerkleRoot mismatch")
    if mutated:
        raise BlockValidationError("bad-txns-duplicate", "duplicate transaction")
    txs = block.transactions
    stripped = len(block.to_bytes(include_witness=False))
    if not txs or len(txs) * WITNESS_SCALE_FACTOR > MAX_BLOCK_WEIGHT or stripped * WITNESS_SCALE_FACTOR > MAX_BLOCK_WEIGHT:
        raise BlockValidationError("bad-blk-length", "size limits failed")
    if not txs[0].is_coinbase():
        raise BlockValidationError("bad-cb-missing", "first tx is not coinbase")
    if any(tx.is_coinbase() for tx in txs[1:]):
        raise BlockValidationError("bad-cb-multiple", "more than one coinbase")
    for tx in txs:
        try:
            check_transaction(tx)
        except TxCheckError as e:
            raise BlockValidationError(e.reason, f"Transaction check failed (tx hash {tx.txid_hex()})") from e
    sigops = sum(legacy_sigop_count(tx) for tx in txs)
    if sigops * WITNESS_SCALE_FACTOR > MAX_BLOCK_SIGOPS_COST:
        raise BlockValidationError("bad-blk-sigops", "out-of-bounds SigOpCount")


def contextual_check_header(header: BlockHeader, ctx: HeaderContext, params: ChainParams, now: int) -> None:
    """Core's ContextualCheckBlockHeader; `now` is the node's adjusted time (seconds)."""
    if header.bits != ctx.expected_bits:
        raise BlockValidationError("bad-diffbits", "incorrect proof of work")
    if header.time <= ctx.prev_median_time:
        raise BlockValidationError("time-too-old", "block's timestamp is too early")
    if header.time > now + MAX_FUTURE_BLOCK_TIME:
        raise BlockValidationError("time-too-new", "block timestamp too far in the future")
    if (
        (header.version < 2 and ctx.height >= params.bip34_height)
        or (header.version < 3 and ctx.height >= params.bip66_height)
        or (header.version < 4 and ctx.height >= params.bip65_height)
    ):
        raise BlockValidationError(f"bad-version(0x{header.version & 0xFFFFFFFF:08x})", "rejected nVersion block")


def _bip34_prefix(height: int) -> bytes:
    return push_int(height)


def contextual_check_block(block: Block, ctx: HeaderContext, params: ChainParams) -> None:
    """Core's ContextualCheckBlock: finality, BIP34 height, witness commitment, weight."""
    lock_time_cutoff = ctx.prev_median_time if ctx.height >= params.csv_height else block.header.time
    for tx in block.transactions:
        if not is_final_tx(tx, ctx.height, lock_time_cutoff):
            raise BlockValidationError("bad-txns-nonfinal", "non-final transaction")
    coinbase = block.transactions[0]
    if ctx.height >= params.bip34_height:
        prefix = _bip34_prefix(ctx.height)
        if not coinbase.inputs[0].script_sig.startswith(prefix):
            raise BlockValidationError("bad-cb-height", "block height mismatch in coinbase")
    have_witness_commitment = False
    if ctx.height >= params.segwit_height:
        index = find_witness_commitment(coinbase)
        if index is not None:
            witness = coinbase.inputs[0].witness
            if len(witness) != 1 or len(witness[0]) != 32:
                raise BlockValidationError("bad-witness-nonce-size", "invalid witness reserved value size")
            root, _ = witness_merkle_root(block)
            commitment = hash256(root + witness[0])
            if coinbase.outputs[index].script_pubkey[6:38] != commitment:
                raise BlockValidationError("bad-witness-merkle-match", "witness merkle commitment mismatch")
            have_witness_commitment = True
    if not have_witness_commitment and any(tx.has_witness() for tx in block.transactions):
        raise BlockValidationError("unexpected-witness", "unexpected witness data found")
    if block.weight > MAX_BLOCK_WEIGHT:
        raise BlockValidationError("bad-blk-weight", "weight limit failed")
