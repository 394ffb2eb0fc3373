"""Relay policy (base_chain.policy): Core's IsStandardTx, IsDust, AreInputsStandard, IsWitnessStandard."""

from __future__ import annotations

import pytest

from base_chain.checks import TxCheckError
from base_chain.policy import (
    MAX_STANDARD_TX_SIGOPS_COST,
    are_inputs_standard,
    check_inputs_standard,
    check_min_relay_fee,
    check_min_tx_size,
    check_sigops,
    check_standard_tx,
    dust_threshold,
    fee_for,
    fee_rate,
    format_fee_rate,
    format_money,
    is_dust,
    is_standard,
    is_witness_standard,
    output_type,
    virtual_size,
)
from base_chain.templates import multisig, p2pkh, p2sh, p2wpkh, p2wsh, push_data
from base_chain.tx import OutPoint, Transaction, TxIn, TxOut

PUB = bytes.fromhex("02" + "11" * 32)
PUB65 = bytes.fromhex("04" + "22" * 64)
P2PKH = p2pkh(PUB)
P2WPKH = p2wpkh(PUB)
P2SH = p2sh(b"\x51")
P2WSH = p2wsh(b"\x51")
P2TR = b"\x51\x20" + b"\x33" * 32
P2A = bytes.fromhex("51024e73")
OP_RETURN = b"\x6a"


def reason(fn: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(TxCheckError) as info:
        fn(*args, **kwargs)  # type: ignore[operator]
    return info.value.reason


def make_tx(outputs: list[TxOut], script_sig: bytes = b"", version: int = 2, n_inputs: int = 1) -> Transaction:
    inputs = [TxIn(OutPoint(bytes([i + 1]) * 32, 0), script_sig, 0xFFFFFFFD) for i in range(n_inputs)]
    return Transaction(version, inputs, outputs, 0)


# --- fee rates ----------------------------------------------------------------------------------


def test_fee_for_rounds_up_and_charges_at_least_one_satoshi() -> None:
    assert fee_for(1000, 110) == 110
    assert fee_for(1500, 3) == 5  # 4.5 rounds up
    assert fee_for(1, 1) == 1  # 0.001 rounds up to the 1-satoshi minimum
    assert fee_for(0, 500) == 0
    assert fee_for(1000, 0) == 0


def test_fee_rate_truncates_like_cfeerate() -> None:
    assert fee_rate(110, 110) == 1000
    assert fee_rate(1, 3) == 333
    assert fee_rate(5, 0) == 0


def test_format_money_and_fee_rate() -> None:
    assert format_money(1000) == "0.00001000"
    assert format_money(123_456_789) == "1.23456789"
    assert format_money(-5) == "-0.00000005"
    assert format_fee_rate(1000) == "0.00001000 BTC/kvB"


def test_virtual_size_counts_sigops_at_20_bytes() -> None:
    assert virtual_size(401) == 101
    assert virtual_size(400, sigop_cost=80) == 400  # 80 * 20 = 1600 weight
    assert virtual_size(4000, sigop_cost=80) == 1000


# --- output scripts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "kind"),
    [
        (P2PKH, "pubkeyhash"),
        (P2SH, "scripthash"),
        (P2WPKH, "witness_v0_keyhash"),
        (P2WSH, "witness_v0_scripthash"),
        (P2TR, "witness_v1_taproot"),
        (P2A, "anchor"),
        (b"\x52\x04" + b"\x00" * 4, "witness_unknown"),
        (b"\x00\x10" + b"\x00" * 16, "nonstandard"),  # v0 program of neither 20 nor 32 bytes
        (OP_RETURN, "nulldata"),
        (OP_RETURN + push_data(b"hello"), "nulldata"),
        (OP_RETURN + b"\x75", "nonstandard"),  # OP_RETURN OP_DROP: not push-only
        (push_data(PUB) + b"\xac", "pubkey"),
        (push_data(PUB65) + b"\xac", "pubkey"),
        (push_data(b"\x05" + PUB[1:]) + b"\xac", "nonstandard"),  # not a valid key prefix
        (multisig(1, [PUB, PUB65]), "multisig"),
        (b"\x51" + push_data(PUB) + b"\x52\xae", "nonstandard"),  # n does not match the keys
        (b"\x52" + push_data(PUB) + b"\x51\xae", "nonstandard"),  # m > n
        (b"\x01\x11" + push_data(PUB) * 17 + b"\x01\x11\xae", "multisig"),  # 17-of-17: pushed numbers
        (b"\x01\x01" + push_data(PUB) + b"\x51\xae", "nonstandard"),  # 1 as a push is not minimal
        (b"\x51" + push_data(PUB) * 21 + b"\x01\x15\xae", "nonstandard"),  # more than 20 keys
        (b"\xae", "nonstandard"),
        (b"", "nonstandard"),
        (b"\x76\xa9", "nonstandard"),
    ],
)
def test_output_type(script: bytes, kind: str) -> None:
    assert output_type(script) == kind


def test_is_standard_limits_multisig_and_op_return() -> None:
    assert is_standard(multisig(1, [PUB] * 3))
    assert is_standard(multisig(3, [PUB] * 3))
    assert not is_standard(multisig(1, [PUB] * 4))
    assert not is_standard(b"\x01\x11" + push_data(PUB) * 17 + b"\x01\x11\xae")
    assert is_standard(OP_RETURN + push_data(b"\x00" * 80))  # 83 bytes
    assert not is_standard(OP_RETURN + push_data(b"\x00" * 81))  # 84 bytes
    assert is_standard(OP_RETURN + push_data(b"\x00" * 81), max_datacarrier_bytes=100)
    assert not is_standard(OP_RETURN, max_datacarrier_bytes=None)
    assert is_standard(b"\x52\x04" + b"\x00" * 4)  # witness_unknown outputs may be created
    assert not is_standard(b"\x00\x10" + b"\x00" * 16)


@pytest.mark.parametrize(
    ("script", "threshold"),
    [(P2PKH, 546), (P2WPKH, 294), (P2SH, 540), (P2WSH, 330), (P2TR, 330), (P2A, 240), (OP_RETURN, 0)],
)
def test_dust_threshold_at_3000_sat_per_kvb(script: bytes, threshold: int) -> None:
    assert dust_threshold(TxOut(0, script)) == threshold
    if threshold:
        assert is_dust(TxOut(threshold - 1, script))
    assert not is_dust(TxOut(threshold, script))


def test_dust_threshold_follows_the_rate() -> None:
    assert dust_threshold(TxOut(0, P2WPKH), 1000) == 98
    assert dust_threshold(TxOut(0, P2PKH), 1000) == 182


# --- IsStandardTx -------------------------------------------------------------------------------


def test_standard_tx_passes() -> None:
    check_standard_tx(make_tx([TxOut(10_000, P2WPKH), TxOut(0, OP_RETURN + push_data(b"x"))]))


def test_version() -> None:
    assert reason(check_standard_tx, make_tx([TxOut(10_000, P2WPKH)], version=0)) == "version"
    assert reason(check_standard_tx, make_tx([TxOut(10_000, P2WPKH)], version=3)) == "version"
    check_standard_tx(make_tx([TxOut(10_000, P2WPKH)], version=1))


def test_tx_size() -> None:
    big = make_tx([TxOut(10_000, b"\x00" * 100_001)])
    assert big.weight > 400_000
    assert reason(check_standard_tx, big) == "tx-size"  # before the output is even looked at


def test_scriptsig_rules() -> None:
    too_big = push_data(b"\x00" * 1647)
    assert len(too_big) == 1650
    check_standard_tx(make_tx([TxOut(10_000, P2WPKH)], script_sig=too_big))
    bigger = push_data(b"\x00" * 1648)
    assert reason(check_standard_tx, make_tx([TxOut(10_000, P2WPKH)], script_sig=bigger)) == "scriptsig-size"
    not_push = b"\x51\x75"  # OP_1 OP_DROP
    assert reason(check_standard_tx, make_tx([TxOut(10_000, P2WPKH)], script_sig=not_push)) == "scriptsig-not-pushonly"


def test_output_rules() -> None:
    assert reason(check_standard_tx, make_tx([TxOut(10_000, b"\x76\xa9")])) == "scriptpubkey"
    bare = make_tx([TxOut(10_000, multisig(1, [PUB, PUB]))])
    check_standard_tx(bare)
    assert reason(check_standard_tx, bare, permit_bare_multisig=False) == "bare-multisig"
    assert reason(check_standard_tx, make_tx([TxOut(293, P2WPKH)])) == "dust"
    check_standard_tx(make_tx([TxOut(293, P2WPKH)]), dust_relay_fee=1000)
    two = make_tx([TxOut(0, OP_RETURN), TxOut(0, OP_RETURN + push_data(b"a"))])
    assert reason(check_standard_tx, two) == "multi-op-return"
    big_data = make_tx([TxOut(0, OP_RETURN + push_data(b"\x00" * 81))])
    assert reason(check_standard_tx, big_data) == "scriptpubkey"
    check_standard_tx(big_data, max_datacarrier_bytes=84)


def test_tx_size_small() -> None:
    small = make_tx([TxOut(0, OP_RETURN)])
    assert len(small.to_bytes(include_witness=False)) == 61
    assert reason(check_min_tx_size, small) == "tx-size-small"
    check_min_tx_size(make_tx([TxOut(0, OP_RETURN + push_data(b"\x00" * 3))]))  # 65 bytes


# --- inputs -------------------------------------------------------------------------------------


def test_inputs_standard_by_spent_type() -> None:
    tx = make_tx([TxOut(10_000, P2WPKH)])
    for spk in (P2PKH, P2WPKH, P2WSH, P2TR, P2A, push_data(PUB) + b"\xac", multisig(1, [PUB])):
        assert are_inputs_standard(tx, [TxOut(1, spk)]), spk.hex()
    assert not are_inputs_standard(tx, [TxOut(1, b"\x76\xa9")])
    assert not are_inputs_standard(tx, [TxOut(1, b"\x52\x04" + b"\x00" * 4)])  # witness_unknown
    assert reason(check_inputs_standard, tx, [TxOut(1, b"\x76")]) == "bad-txns-nonstandard-inputs"


def test_p2sh_redeem_script_sigops_limit() -> None:
    ok_redeem = b"\xac" * 15
    bad_redeem = b"\xac" * 16
    for redeem, expected in ((ok_redeem, True), (bad_redeem, False)):
        tx = make_tx([TxOut(10_000, P2WPKH)], script_sig=push_data(redeem))
        assert are_inputs_standard(tx, [TxOut(1, p2sh(redeem))]) is expected
    # a multisig redeem script counts its keys accurately
    ms = multisig(2, [PUB] * 16)
    tx = make_tx([TxOut(10_000, P2WPKH)], script_sig=b"\x00" + push_data(ms))
    assert not are_inputs_standard(tx, [TxOut(1, p2sh(ms))])
    # a scriptSig that fails to run, or leaves nothing, is not standard
    assert not are_inputs_standard(make_tx([TxOut(1, P2WPKH)], script_sig=b"\x6a"), [TxOut(1, P2SH)])
    assert not are_inputs_standard(make_tx([TxOut(1, P2WPKH)], script_sig=b""), [TxOut(1, P2SH)])


def with_witness(witness: list[bytes], script_sig: bytes = b"") -> Transaction:
    tx = make_tx([TxOut(10_000, P2WPKH)], script_sig=script_sig)
    tx.inputs[0].witness = witness
    return tx


def test_witness_standard() -> None:
    assert is_witness_standard(with_witness([b"\x01" * 72, PUB]), [TxOut(1, P2WPKH)])
    assert is_witness_standard(make_tx([TxOut(1, P2WPKH)]), [TxOut(1, P2PKH)])  # no witness: fine
    assert not is_witness_standard(with_witness([b"\x01"]), [TxOut(1, P2PKH)])  # witness on non-program
    assert not is_witness_standard(with_witness([b"\x01"]), [TxOut(1, P2A)])
    ws = b"\x51"
    assert is_witness_standard(with_witness([b"\x00" * 80] * 100 + [ws]), [TxOut(1, p2wsh(ws))])
    assert not is_witness_standard(with_witness([b"\x00"] * 101 + [ws]), [TxOut(1, p2wsh(ws))])
    assert not is_witness_standard(with_witness([b"\x00" * 81, ws]), [TxOut(1, p2wsh(ws))])
    big_ws = b"\x51" * 3601
    assert not is_witness_standard(with_witness([big_ws]), [TxOut(1, p2wsh(big_ws))])
    # P2SH-wrapped P2WSH: the program comes from the scriptSig
    program = p2wsh(ws)
    wrapped = with_witness([b"\x00" * 81, ws], script_sig=push_data(program))
    assert not is_witness_standard(wrapped, [TxOut(1, p2sh(program))])
    assert reason(check_inputs_standard, wrapped, [TxOut(1, p2sh(program))]) == "bad-witness-nonstandard"


def test_taproot_witness_policy() -> None:
    prev = [TxOut(1, P2TR)]
    assert is_witness_standard(with_witness([b"\x01" * 64]), prev)  # key path
    assert not is_witness_standard(with_witness([b"\x01" * 64, b"\x50annex"]), prev)  # annex
    control = b"\xc0" + b"\x00" * 32
    assert is_witness_standard(with_witness([b"\x00" * 80, b"\x51", control]), prev)
    assert not is_witness_standard(with_witness([b"\x00" * 81, b"\x51", control]), prev)
    other_leaf = b"\xc2" + b"\x00" * 32
    assert is_witness_standard(with_witness([b"\x00" * 81, b"\x51", other_leaf]), prev)
    assert not is_witness_standard(with_witness([b"\x00", b"\x51", b""]), prev)  # empty control block


def test_sigops_and_min_relay_fee() -> None:
    check_sigops(MAX_STANDARD_TX_SIGOPS_COST)
    assert reason(check_sigops, MAX_STANDARD_TX_SIGOPS_COST + 1) == "bad-txns-too-many-sigops"
    check_min_relay_fee(110, 110)
    with pytest.raises(TxCheckError) as info:
        check_min_relay_fee(109, 110)
    assert (info.value.reason, info.value.debug) == ("min relay fee not met", "109 < 110")
