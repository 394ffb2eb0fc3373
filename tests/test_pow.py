"""Proof of work: compact bits, the PoW check, work, retargeting and median time past,
checked against Bitcoin Core's arith_uint256_tests and pow_tests cases."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from base_chain.block import BlockHeader
from base_chain.params import SATOSHI_GENESIS_MESSAGE, ChainParams, get_params, make_genesis_block
from base_chain.pow import (
    PowError,
    block_work,
    bits_to_target,
    calculate_next_work_required,
    check_proof_of_work,
    decode_compact,
    difficulty,
    median_time_past,
    mine_header,
    next_work_required,
    target_to_bits,
)

MAIN_POW_LIMIT = (1 << 224) - 1  # 00000000ffff...ff


def main_like() -> ChainParams:
    """Mainnet's proof-of-work rules (on top of regtest's other values)."""
    genesis = make_genesis_block(SATOSHI_GENESIS_MESSAGE, 1231006505, 2083236893, 0x1D00FFFF)
    return dataclasses.replace(
        get_params("regtest"),
        name="main-like",
        genesis=genesis,
        genesis_hash=genesis.hash,
        pow_limit=MAIN_POW_LIMIT,
        pow_no_retargeting=False,
        pow_allow_min_difficulty_blocks=False,
    )


def min_difficulty_params() -> ChainParams:
    return dataclasses.replace(main_like(), name="testnet-like", pow_allow_min_difficulty_blocks=True)


# --- compact encoding (arith_uint256_tests: bignum_SetCompact) --------------------

# bits, target, negative, overflow, GetCompact(negative) (None: not checked)
SET_COMPACT_CASES = [
    (0x00000000, 0, False, False, 0),
    (0x00123456, 0, False, False, 0),
    (0x01003456, 0, False, False, 0),
    (0x02000056, 0, False, False, 0),
    (0x03000000, 0, False, False, 0),
    (0x04000000, 0, False, False, 0),
    (0x00923456, 0, False, False, 0),
    (0x01803456, 0, False, False, 0),
    (0x02800056, 0, False, False, 0),
    (0x03800000, 0, False, False, 0),
    (0x04800000, 0, False, False, 0),
    (0x01123456, 0x12, False, False, 0x01120000),
    (0x01FEDCBA, 0x7E, True, False, 0x01FE0000),
    (0x02123456, 0x1234, False, False, 0x02123400),
    (0x03123456, 0x123456, False, False, 0x03123456),
    (0x04123456, 0x12345600, False, False, 0x04123456),
    (0x04923456, 0x12345600, True, False, 0x04923456),
    (0x05009234, 0x92340000, False, False, 0x05009234),
    (0x20123456, 0x123456 << 232, False, False, 0x20123456),
    (0xFF123456, None, False, True, None),
]


@pytest.mark.parametrize("bits,target,negative,overflow,compact", SET_COMPACT_CASES)
def test_set_compact_cases(
    bits: int, target: int | None, negative: bool, overflow: bool, compact: int | None
) -> None:
    got, got_negative, got_overflow = decode_compact(bits)
    assert (got_negative, got_overflow) == (negative, overflow)
    if target is not None:
        assert got == target
    if compact is not None:
        assert target is not None
        assert target_to_bits(target, negative=negative) == compact
    if negative or overflow:
        with pytest.raises(PowError) as err:
            bits_to_target(bits)
        assert err.value.reason == "bad-diffbits"
    else:
        assert bits_to_target(bits) == target


def test_get_compact_never_sets_the_sign_bit() -> None:
    assert target_to_bits(0x80) == 0x02008000
    assert target_to_bits(0) == 0
    assert target_to_bits(MAIN_POW_LIMIT) == 0x1D00FFFF
    assert target_to_bits((1 << 255) - 1) == 0x207FFFFF
    with pytest.raises(ValueError):
        target_to_bits(1 << 256)
    with pytest.raises(ValueError):
        target_to_bits(-1)


def test_well_known_bits() -> None:
    assert bits_to_target(0x1D00FFFF) == 0xFFFF << 208
    assert bits_to_target(0x207FFFFF) == 0x7FFFFF << 232
    assert bits_to_target(0x1B04864C) == 0x04864C << 192  # block 100000


@given(st.integers(min_value=0, max_value=(1 << 256) - 1))
def test_target_to_bits_rounds_down_and_round_trips(target: int) -> None:
    bits = target_to_bits(target)
    assert bits & 0x00800000 == 0
    decoded = bits_to_target(bits)
    assert decoded <= target
    # Three significant bytes survive (at least 15 bits of precision).
    assert target - decoded < max(1, target >> 15)
    assert target_to_bits(decoded) == bits


# --- the proof-of-work check (pow_tests: CheckProofOfWork_test_*) ------------------


def test_check_proof_of_work_genesis_blocks() -> None:
    main = main_like()
    check_proof_of_work(main.genesis.hash, main.genesis.header.bits, main)
    regtest = get_params("regtest")
    check_proof_of_work(regtest.genesis_hash, 0x207FFFFF, regtest)


def _hash_of(n: int) -> bytes:
    return n.to_bytes(32, "little")


@pytest.mark.parametrize(
    "bits",
    [
        0x1D80FFFF,  # negative target (pow limit's compact with the sign bit)
        0xFF7FFFFF,  # ~0x00800000: overflow
        target_to_bits(MAIN_POW_LIMIT * 2),  # easier than the pow limit
        0,  # zero target
        0x01803456,  # decodes to zero
    ],
)
def test_check_proof_of_work_bad_diffbits(bits: int) -> None:
    with pytest.raises(PowError) as err:
        check_proof_of_work(_hash_of(1), bits, main_like())
    assert err.value.reason == "bad-diffbits"


def test_check_proof_of_work_high_hash() -> None:
    params = main_like()
    with pytest.raises(PowError) as err:
        check_proof_of_work(_hash_of(MAIN_POW_LIMIT * 2), 0x1D00FFFF, params)
    assert err.value.reason == "high-hash"
    target = bits_to_target(0x1D00FFFF)
    check_proof_of_work(_hash_of(target), 0x1D00FFFF, params)  # equal to the target passes
    with pytest.raises(PowError, match="high-hash"):
        check_proof_of_work(_hash_of(target + 1), 0x1D00FFFF, params)


def test_check_proof_of_work_real_headers() -> None:
    # Mainnet block 100000's header.
    header = BlockHeader.from_hex(
        "0100000050120119172a610421a6c3011dd330d9df07b63616c2cc1f1cd00200000000006657a9252aacd5c0b2940996ecff952228c3067cc38d4885efb5a4ac4247e9f337221b4d4c86041b0f2b5710"
    )
    assert header.hash_hex() == "000000000003ba27aa200b1cecaad478d2b00432346c3f1f3986da1afd33e506"
    check_proof_of_work(header.hash, header.bits, main_like())
    with pytest.raises(PowError, match="high-hash"):
        check_proof_of_work(dataclasses.replace(header, nonce=header.nonce + 1).hash, header.bits, main_like())


# --- work and difficulty -----------------------------------------------------------


def test_block_work() -> None:
    assert block_work(0x1D00FFFF) == 0x100010001  # mainnet genesis chainwork
    assert block_work(0x207FFFFF) == 2  # regtest: chainwork grows by 2 a block
    assert block_work(0) == 0
    assert block_work(0x04923456) == 0  # negative
    assert block_work(0xFF123456) == 0  # overflow
    assert block_work(0x03000001) == (1 << 256) // 2
    for bits in (0x1B04864C, 0x1C05A3F4, 0x207FFFFF):
        assert block_work(bits) == (1 << 256) // (bits_to_target(bits) + 1)


def test_difficulty() -> None:
    assert difficulty(0x1D00FFFF) == 1.0
    assert difficulty(0x207FFFFF) == pytest.approx(4.656542373906925e-10, rel=1e-15)
    assert difficulty(0x1B04864C) == pytest.approx(14484.1623612254, rel=1e-12)


# --- retargeting (pow_tests: get_next_work*) ---------------------------------------


@pytest.mark.parametrize(
    "first_time,last_time,last_bits,expected",
    [
        (1261130161, 1262152739, 0x1D00FFFF, 0x1D00D86A),  # blocks 30240..32255, no clamp
        (1231006505, 1233061996, 0x1D00FFFF, 0x1D00FFFF),  # blocks 0..2015: pow limit
        (1279008237, 1279297671, 0x1C05A3F4, 0x1C0168FD),  # lower clamp (timespan / 4)
        (1263163443, 1269211443, 0x1C387F6F, 0x1D00E1FD),  # upper clamp (timespan * 4)
    ],
)
def test_calculate_next_work_required_core_cases(
    first_time: int, last_time: int, last_bits: int, expected: int
) -> None:
    assert calculate_next_work_required(last_bits, last_time, first_time, main_like()) == expected


def test_retarget_clamps() -> None:
    params = main_like()
    span = params.target_timespan_s
    bits = 0x1C05A3F4
    target = bits_to_target(bits)
    fast = calculate_next_work_required(bits, 1_000_000 + 1, 1_000_000, params)
    assert bits_to_target(fast) == target_to_bits_roundtrip(target * (span // 4) // span)
    assert calculate_next_work_required(bits, 1_000_000 + span // 8, 1_000_000, params) == fast
    slow = calculate_next_work_required(bits, 1_000_000 + span * 10, 1_000_000, params)
    assert bits_to_target(slow) == target_to_bits_roundtrip(target * 4)
    assert calculate_next_work_required(bits, 1_000_000 + span * 4, 1_000_000, params) == slow
    exact = calculate_next_work_required(bits, 1_000_000 + span, 1_000_000, params)
    assert exact == bits
    # Time running backwards clamps to the fastest adjustment.
    assert calculate_next_work_required(bits, 1_000_000 - 5, 1_000_000, params) == fast


def target_to_bits_roundtrip(target: int) -> int:
    return bits_to_target(target_to_bits(target))


def test_no_retargeting_keeps_bits() -> None:
    regtest = get_params("regtest")
    assert calculate_next_work_required(0x1D00FFFF, 10, 5, regtest) == 0x1D00FFFF
    for height in (1, 2015, 2016, 4032, 4033):
        assert (
            next_work_required(height, 0x207FFFFF, 1000, regtest, new_time=1001, bits_at=lambda h: 0x207FFFFF)
            == 0x207FFFFF
        )
    # At a retarget height without retargeting, first_time is not needed.
    assert next_work_required(2016, 0x207FFFFF, 1000, regtest) == 0x207FFFFF


def test_retargeting_with_regtest_pow_limit_does_not_wrap() -> None:
    # Core forbids this combination (its 256-bit product would wrap); ours clamps.
    params = dataclasses.replace(get_params("alpha"), pow_no_retargeting=False)
    slow = calculate_next_work_required(0x207FFFFF, 10 * params.target_timespan_s, 0, params)
    assert slow == 0x207FFFFF
    fast = calculate_next_work_required(0x207FFFFF, 1, 0, params)
    assert bits_to_target(fast) == target_to_bits_roundtrip(params.pow_limit // 4)


def test_next_work_required_main_rules() -> None:
    params = main_like()
    # Between retargets the bits carry over.
    assert next_work_required(32255, 0x1D00FFFF, 1262152000, params) == 0x1D00FFFF
    # At a retarget height: Core's get_next_work case through the full rule.
    assert (
        next_work_required(32256, 0x1D00FFFF, 1262152739, params, first_time=1261130161) == 0x1D00D86A
    )
    with pytest.raises(ValueError, match="first_time"):
        next_work_required(32256, 0x1D00FFFF, 1262152739, params)
    with pytest.raises(ValueError, match="genesis"):
        next_work_required(0, 0x1D00FFFF, 0, params)


def test_next_work_required_min_difficulty_rule() -> None:
    params = min_difficulty_params()
    limit = params.pow_limit_bits
    assert limit == 0x1D00FFFF
    spacing = params.target_spacing_s
    real_bits = 0x1C05A3F4
    # A block more than 2 * spacing after its parent may use the pow limit.
    assert next_work_required(5000, real_bits, 100, params, new_time=100 + 2 * spacing + 1) == limit
    # Otherwise: the parent's bits if it is not a min-difficulty block ...
    assert next_work_required(5000, real_bits, 100, params, new_time=100 + 2 * spacing) == real_bits
    # ... or walk back to the last block that is not one.
    chain_bits = {h: real_bits for h in range(4032, 4990)}
    chain_bits.update({h: limit for h in range(4990, 5000)})
    walked: list[int] = []

    def bits_at(h: int) -> int:
        walked.append(h)
        return chain_bits[h]

    assert next_work_required(5000, limit, 100, params, new_time=101, bits_at=bits_at) == real_bits
    assert walked == list(range(4998, 4988, -1))
    # The walk stops at a retarget boundary even if that block has the limit bits.
    chain_bits.update({h: limit for h in range(4032, 5000)})
    assert next_work_required(5000, limit, 100, params, new_time=101, bits_at=bits_at) == limit
    assert walked[-1] == 4032
    with pytest.raises(ValueError, match="bits_at"):
        next_work_required(5000, limit, 100, params, new_time=101)
    with pytest.raises(ValueError, match="new_time"):
        next_work_required(5000, limit, 100, params)


# --- mining ------------------------------------------------------------------------


def test_mine_header() -> None:
    params = get_params("regtest")
    start = BlockHeader(0x20000000, params.genesis_hash, b"\x11" * 32, 1296688700, 0x207FFFFF, 0)
    mined = mine_header(start, params)
    check_proof_of_work(mined.hash, mined.bits, params)
    assert dataclasses.replace(mined, nonce=0) == start
    assert mined.nonce >= 0
    # Continuing past a found nonce finds the next one.
    again = mine_header(dataclasses.replace(mined, nonce=mined.nonce + 1), params)
    assert again.nonce > mined.nonce


def test_mine_header_errors() -> None:
    params = get_params("regtest")
    hard = BlockHeader(1, b"\x00" * 32, b"\x00" * 32, 0, 0x03000001, 0)  # target 1
    with pytest.raises(ValueError, match="exhausted"):
        mine_header(hard, params, max_nonce=50)
    too_easy = dataclasses.replace(hard, bits=0x2100FFFF)
    with pytest.raises(PowError, match="bad-diffbits"):
        mine_header(too_easy, params)


# --- median time past --------------------------------------------------------------


def test_median_time_past() -> None:
    assert median_time_past([5]) == 5
    assert median_time_past([1, 2]) == 2  # Core takes the upper middle of an even count
    assert median_time_past(list(range(1, 12))) == 6
    assert median_time_past([11, 1, 10, 2, 9, 3, 8, 4, 7, 5, 6]) == 6
    # Only the last 11 count.
    assert median_time_past([1000] * 5 + list(range(1, 12))) == 6
    assert median_time_past(list(range(100, 120))) == 114
    with pytest.raises(ValueError):
        median_time_past([])


@given(st.lists(st.integers(min_value=0, max_value=2**32 - 1), min_size=1, max_size=30))
def test_median_time_past_property(times: list[int]) -> None:
    window = times[-11:]
    mtp = median_time_past(times)
    assert mtp in window
    assert sum(t < mtp for t in window) <= len(window) // 2
    assert sum(t > mtp for t in window) <= (len(window) - 1) // 2
