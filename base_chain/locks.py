"""Time locks: transaction finality (nLockTime) and BIP68 relative lock-times (nSequence)."""

from __future__ import annotations

from collections.abc import Sequence

from .tx import SEQUENCE_FINAL, Transaction

__all__ = [
    "LOCKTIME_THRESHOLD",
    "SEQUENCE_LOCKTIME_DISABLE_FLAG",
    "SEQUENCE_LOCKTIME_TYPE_FLAG",
    "SEQUENCE_LOCKTIME_MASK",
    "is_final_tx",
    "calculate_sequence_locks",
    "evaluate_sequence_locks",
]

LOCKTIME_THRESHOLD = 500_000_000  # below: a block height; at or above: a UNIX time
SEQUENCE_LOCKTIME_DISABLE_FLAG = 1 << 31
SEQUENCE_LOCKTIME_TYPE_FLAG = 1 << 22
SEQUENCE_LOCKTIME_MASK = 0x0000FFFF
SEQUENCE_LOCKTIME_GRANULARITY = 9  # time locks count in units of 512 seconds


def is_final_tx(tx: Transaction, block_height: int, block_time: int) -> bool:
    """Core's IsFinalTx: may tx be included in a block at this height and (median) time?"""
    if tx.locktime == 0:
        return True
    limit = block_height if tx.locktime < LOCKTIME_THRESHOLD else block_time
    if tx.locktime < limit:
        return True
    return all(txin.sequence == SEQUENCE_FINAL for txin in tx.inputs)


def calculate_sequence_locks(
    tx: Transaction,
    enforce_bip68: bool,
    prev_heights: Sequence[int],
    mtp_before_height: Sequence[int],
) -> tuple[int, int]:
    """Core's CalculateSequenceLocks.

    prev_heights[i] is the height of the block that created input i's coin (the
    mempool uses tip+1 for unconfirmed ones); mtp_before_height[i] is the median time
    past of the block *before* prev_heights[i] (Core's GetAncestor(max(h-1,0))->GetMedianTimePast()).
    Returns (min_height, min_time): the tx is valid in a block of greater height and
    with previous-block MTP greater than min_time. -1 means no constraint.
    """
    min_height = -1
    min_time = -1
    if not enforce_bip68 or (tx.version & 0xFFFFFFFF) < 2:
        return min_height, min_time
    for i, txin in enumerate(tx.inputs):
        seq = txin.sequence
        if seq & SEQUENCE_LOCKTIME_DISABLE_FLAG:
            continue
        coin_height = prev_heights[i]
        if seq & SEQUENCE_LOCKTIME_TYPE_FLAG:
            coin_time = mtp_before_height[i]
            lock = (seq & SEQUENCE_LOCKTIME_MASK) << SEQUENCE_LOCKTIME_GRANULARITY
            min_time = max(min_time, coin_time + lock - 1)
        else:
            min_height = max(min_height, coin_height + (seq & SEQUENCE_LOCKTIME_MASK) - 1)
    return min_height, min_time


def evaluate_sequence_locks(block_height: int, prev_block_mtp: int, locks: tuple[int, int]) -> bool:
    """True if a block at block_height, whose parent has median time prev_block_mtp, satisfies the locks."""
    min_height, min_time = locks
    return not (min_height >= block_height or min_time >= prev_block_mtp)
