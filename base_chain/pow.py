"""Proof of work: compact targets ("bits"), the proof-of-work check, chain work,
difficulty retargeting and median time past -- Bitcoin Core's pow.cpp and
arith_uint256's compact encoding.

Everything takes its inputs explicitly (heights, times, bits, parameters); nothing
here walks a chain or reads a clock.

Targets are Python ints. Core computes the retarget in 256-bit arithmetic, which
would wrap for a pow_limit near 2**255 with retargeting on; Core forbids such
parameters (its chainparams sanity test), Python ints do not wrap, so here the
result is simply the exact one, clamped to pow_limit.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from .block import BlockHeader
from .hashes import hash256

if TYPE_CHECKING:
    from .params import ChainParams

__all__ = [
    "PowError",
    "decode_compact",
    "bits_to_target",
    "target_to_bits",
    "check_proof_of_work",
    "block_work",
    "difficulty",
    "next_work_required",
    "calculate_next_work_required",
    "mine_header",
    "median_time_past",
    "MEDIAN_TIME_SPAN",
]

MEDIAN_TIME_SPAN = 11
"""Core's CBlockIndex::nMedianTimeSpan: MTP is the median of this many block times."""

_U256 = 1 << 256


class PowError(ValueError):
    """Proof of work rejected; ``reason`` is Bitcoin Core's reject string."""

    def __init__(self, reason: str, debug: str = "") -> None:
        super().__init__(f"{reason} ({debug})" if debug else reason)
        self.reason = reason
        self.debug = debug


# --------------------------------------------------------------------------
# compact targets
# --------------------------------------------------------------------------


def decode_compact(bits: int) -> tuple[int, bool, bool]:
    """Core's arith_uint256::SetCompact: (target, negative, overflow).

    The target is what Core's 256-bit integer holds (an overflowing value is
    truncated to 256 bits, as there); the flags tell whether the encoding is
    negative or too large.
    """
    if not 0 <= bits <= 0xFFFFFFFF:
        raise ValueError(f"bits out of uint32 range: {bits}")
    size = bits >> 24
    word = bits & 0x007FFFFF
    if size <= 3:
        word >>= 8 * (3 - size)
        target = word
    else:
        target = (word << (8 * (size - 3))) % _U256
    negative = word != 0 and (bits & 0x00800000) != 0
    overflow = word != 0 and (
        size > 34 or (word > 0xFF and size > 33) or (word > 0xFFFF and size > 32)
    )
    return target, negative, overflow


def bits_to_target(bits: int) -> int:
    """The target a compact ``bits`` value encodes.

    Raises :class:`PowError` ("bad-diffbits") for a negative or overflowing
    encoding. A zero target is returned as 0 (it is only invalid as a PoW target).
    """
    target, negative, overflow = decode_compact(bits)
    if negative:
        raise PowError("bad-diffbits", f"negative target in bits 0x{bits:08x}")
    if overflow:
        raise PowError("bad-diffbits", f"target overflows 256 bits in bits 0x{bits:08x}")
    return target


def target_to_bits(target: int, negative: bool = False) -> int:
    """Core's arith_uint256::GetCompact: the compact form of ``target`` (rounded down).

    ``negative`` sets the sign bit (only for a nonzero mantissa), as Core's
    GetCompact(true) does; chain code never needs it.
    """
    if not 0 <= target < _U256:
        raise ValueError("target must be in 0 .. 2**256-1")
    size = (target.bit_length() + 7) // 8
    if size <= 3:
        compact = target << (8 * (3 - size))
    else:
        compact = target >> (8 * (size - 3))
    # The 0x00800000 bit is the sign: if the mantissa would set it, shift one more byte.
    if compact & 0x00800000:
        compact >>= 8
        size += 1
    compact |= size << 24
    if negative and compact & 0x007FFFFF:
        compact |= 0x00800000
    return compact


# --------------------------------------------------------------------------
# the proof-of-work check and chain work
# --------------------------------------------------------------------------


def check_proof_of_work(block_hash: bytes, bits: int, params: ChainParams) -> None:
    """Core's CheckProofOfWork, raising instead of returning False.

    "bad-diffbits" when ``bits`` is negative, zero, overflowing or easier than
    ``params.pow_limit``; "high-hash" when the hash (internal byte order, read as
    a little-endian number) is above the target.

    (Core's CheckBlockHeader reports both failures as "high-hash"; its contextual
    check says "bad-diffbits" when bits differ from next_work_required.)
    """
    if len(block_hash) != 32:
        raise ValueError(f"block hash must be 32 bytes, got {len(block_hash)}")
    target, negative, overflow = decode_compact(bits)
    if negative or overflow or target == 0 or target > params.pow_limit:
        raise PowError(
            "bad-diffbits", f"invalid target in bits 0x{bits:08x} (pow limit {params.pow_limit:064x})"
        )
    if int.from_bytes(block_hash, "little") > target:
        raise PowError("high-hash", "proof of work failed")


def block_work(bits: int) -> int:
    """Core's GetBlockProof: the expected number of hashes for a block at ``bits``,
    2**256 // (target + 1); 0 for a negative, overflowing or zero target."""
    target, negative, overflow = decode_compact(bits)
    if negative or overflow or target == 0:
        return 0
    return _U256 // (target + 1)


def difficulty(bits: int) -> float:
    """Core's GetDifficulty: how many times harder than the 0x1d00ffff target
    (as ``getblockchaininfo`` and ``getblock`` print it)."""
    shift = (bits >> 24) & 0xFF
    mantissa = bits & 0x00FFFFFF
    if mantissa == 0:
        raise ValueError(f"bits 0x{bits:08x} have a zero mantissa")
    diff = 0x0000FFFF / mantissa
    while shift < 29:
        diff *= 256.0
        shift += 1
    while shift > 29:
        diff /= 256.0
        shift -= 1
    return diff


# --------------------------------------------------------------------------
# retargeting
# --------------------------------------------------------------------------


def calculate_next_work_required(
    last_bits: int, last_time: int, first_time: int, params: ChainParams
) -> int:
    """Core's CalculateNextWorkRequired: the bits after a retarget.

    ``last_time`` is the time of the period's last block, ``first_time`` that of
    its first (the block ``retarget_interval - 1`` before it). The measured
    timespan is clamped to ``target_timespan_s / 4 .. * 4`` and the new target to
    ``pow_limit``. With ``pow_no_retargeting`` the bits stay ``last_bits``.
    """
    if params.pow_no_retargeting:
        return last_bits
    timespan = params.target_timespan_s
    actual = last_time - first_time
    actual = max(timespan // 4, min(actual, timespan * 4))
    new_target = bits_to_target(last_bits) * actual // timespan
    return target_to_bits(min(new_target, params.pow_limit))


def next_work_required(
    height: int,
    last_bits: int,
    last_time: int,
    params: ChainParams,
    *,
    first_time: int | None = None,
    new_time: int | None = None,
    bits_at: Callable[[int], int] | None = None,
) -> int:
    """Core's GetNextWorkRequired: the bits the block at ``height`` must carry.

    ``last_bits`` / ``last_time`` are those of its parent (height - 1).

    - At a retarget height (``height % params.retarget_interval == 0``) pass
      ``first_time``, the time of the block at ``height - retarget_interval``
      (not needed with ``pow_no_retargeting``).
    - With ``pow_allow_min_difficulty_blocks`` (testnet, regtest) pass
      ``new_time``, the new block's timestamp: more than twice the target spacing
      after its parent, the block may use ``pow_limit``. Otherwise the bits are
      those of the last block that was not such a min-difficulty exception;
      finding it walks back through ancestors, so pass ``bits_at(h)`` giving the
      bits of this chain's block at height h (it is called only when the parent
      itself carries the minimum difficulty).
    """
    if height < 1:
        raise ValueError("the genesis block has no predecessor to derive its bits from")
    interval = params.retarget_interval
    limit_bits = params.pow_limit_bits
    if height % interval != 0:
        if not params.pow_allow_min_difficulty_blocks:
            return last_bits
        if new_time is None:
            raise ValueError("new_time is needed where min-difficulty blocks are allowed")
        if new_time > last_time + params.target_spacing_s * 2:
            return limit_bits
        # Return the bits of the last block that is not a min-difficulty exception.
        h, bits = height - 1, last_bits
        while h > 0 and h % interval != 0 and bits == limit_bits:
            if bits_at is None:
                raise ValueError("bits_at is needed to walk back past min-difficulty blocks")
            h -= 1
            bits = bits_at(h)
        return bits
    if params.pow_no_retargeting:
        return last_bits
    if first_time is None:
        raise ValueError(f"first_time is needed at retarget height {height}")
    return calculate_next_work_required(last_bits, last_time, first_time, params)


# --------------------------------------------------------------------------
# mining and time
# --------------------------------------------------------------------------


def mine_header(
    header: BlockHeader, params: ChainParams, *, max_nonce: int = 0xFFFFFFFF
) -> BlockHeader:
    """Grind the nonce upward from ``header.nonce`` until the PoW check passes.

    Raises :class:`PowError` ("bad-diffbits") for bits the chain does not allow,
    and ValueError when the nonce range is exhausted (change the time or the
    coinbase's extra nonce and try again). With regtest's 0x207fffff about one
    try in two succeeds.
    """
    target, negative, overflow = decode_compact(header.bits)
    if negative or overflow or target == 0 or target > params.pow_limit:
        raise PowError("bad-diffbits", f"cannot mine to bits 0x{header.bits:08x}")
    prefix = header.to_bytes()[:76]
    pack = struct.Struct("<I").pack
    for nonce in range(header.nonce, max_nonce + 1):
        if int.from_bytes(hash256(prefix + pack(nonce)), "little") <= target:
            return replace(header, nonce=nonce)
    raise ValueError(
        f"nonce range {header.nonce}..{max_nonce} exhausted; change the time or extra nonce"
    )


def median_time_past(times: Sequence[int]) -> int:
    """Core's GetMedianTimePast: the median of the last 11 block times.

    ``times`` are in chain order, ending with the block whose MTP is wanted;
    near genesis fewer than 11 are used (the upper median of what there is).
    """
    if not times:
        raise ValueError("median time past of no blocks")
    window = sorted(times[-MEDIAN_TIME_SPAN:])
    return window[len(window) // 2]
