"""Property tests for the script package: arbitrary input never breaks the interpreter,
script text round-trips, numbers round-trip, and the P2WPKH shortcut agrees with the
general interpreter."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from base_chain.crypto import N, PrivateKey, encode_der
from base_chain.hashes import hash160
from base_chain.script import (
    ALL_FLAGS,
    NAME_TO_OPCODE,
    OPCODE_NAMES,
    ScriptError,
    SignatureChecker,
    TransactionChecker,
    decode_num,
    encode_num,
    eval_script,
    fill_flags,
    flags_to_mask,
    iter_script,
    parse_asm,
    push_bytes,
    push_int,
    to_asm,
    to_test_asm,
    verify_script,
)
from base_chain.script.num import is_minimal_num
from base_chain.script.verify import _execute_witness_script, _verify_p2wpkh, p2wpkh_script_code
from base_chain.sighash import bip143_sighash
from base_chain.tx import OutPoint, Transaction, TxIn, TxOut

FLAG_NAMES = sorted(ALL_FLAGS)  # TAPROOT included: a v1 spend then raises ScriptError(TAPROOT_UNSUPPORTED)

PROPS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _tx() -> Transaction:
    return Transaction(
        version=2,
        inputs=[TxIn(OutPoint(b"\x01" * 32, 0), b"", 0xFFFFFFFE), TxIn(OutPoint(b"\x02" * 32, 7), b"", 5)],
        outputs=[TxOut(1000, b"\x51"), TxOut(2000, b"")],
        locktime=600_000,
    )


flag_sets = st.sets(st.sampled_from(FLAG_NAMES)).map(lambda s: fill_flags(s))

# Scripts that are mostly made of real operations, with odd bytes mixed in.
interesting_ops = st.sampled_from(
    [bytes([op]) for op in range(0x4F, 0xBB)] + [b"\x00", b"\x01\x01", b"\x02\xff\x7f", b"\x01\x81", b"\x4c"]
)
small_pushes = st.binary(max_size=80).map(push_bytes)
script_parts = st.one_of(interesting_ops, small_pushes, st.binary(min_size=1, max_size=3))
scripts = st.one_of(st.lists(script_parts, max_size=40).map(b"".join), st.binary(max_size=200))
push_only_scripts = st.lists(small_pushes, max_size=8).map(b"".join)
witnesses = st.lists(st.binary(max_size=80), max_size=5)


@PROPS
@given(script_sig=st.one_of(push_only_scripts, scripts), script_pubkey=scripts, witness=witnesses, flags=flag_sets)
@example(b"", b"\x63", [], frozenset())  # IF on an empty stack
@example(b"\x00", b"\xae", [], frozenset())  # CHECKMULTISIG with too little
def test_verify_script_only_raises_script_error(
    script_sig: bytes, script_pubkey: bytes, witness: list[bytes], flags: frozenset[str]
) -> None:
    tx = _tx()
    tx.inputs[0].script_sig = script_sig
    tx.inputs[0].witness = witness
    try:
        verify_script(script_sig, script_pubkey, witness, flags, tx, 0, 1000)
    except ScriptError as err:
        assert err.code and str(err)


@PROPS
@given(redeem=scripts, pushes=st.lists(st.binary(max_size=40), max_size=5), witness=witnesses, flags=flag_sets)
def test_p2sh_spends_only_raise_script_error(
    redeem: bytes, pushes: list[bytes], witness: list[bytes], flags: frozenset[str]
) -> None:
    assume(len(redeem) <= 520)
    script_sig = b"".join(push_bytes(p) for p in pushes) + push_bytes(redeem)
    script_pubkey = b"\xa9\x14" + hash160(redeem) + b"\x87"
    tx = _tx()
    try:
        verify_script(script_sig, script_pubkey, witness, flags, tx, 1, 5000)
    except ScriptError:
        pass


@PROPS
@given(witness=witnesses, witness_script=scripts, flags=flag_sets)
def test_p2wsh_spends_only_raise_script_error(
    witness: list[bytes], witness_script: bytes, flags: frozenset[str]
) -> None:
    script_pubkey = b"\x00\x20" + hashlib.sha256(witness_script).digest()
    tx = _tx()
    try:
        verify_script(b"", script_pubkey, witness + [witness_script], flags, tx, 0, 1000)
    except ScriptError:
        pass


@PROPS
@given(
    script=scripts,
    stack=st.lists(st.binary(max_size=8), max_size=6),
    flags=flag_sets,
    with_tx=st.booleans(),
    segwit=st.booleans(),
)
def test_eval_script_only_raises_script_error(
    script: bytes, stack: list[bytes], flags: frozenset[str], with_tx: bool, segwit: bool
) -> None:
    checker = TransactionChecker(_tx(), 0, 1000) if with_tx else SignatureChecker()
    try:
        eval_script(list(stack), script, flags, checker, 1 if segwit else 0)
    except ScriptError:
        pass


# --- text ------------------------------------------------------------------------------


@PROPS
@given(script=scripts)
def test_test_asm_round_trips(script: bytes) -> None:
    assert parse_asm(to_test_asm(script)) == script


@PROPS
@given(script=scripts, decode=st.booleans())
def test_to_asm_never_fails(script: bytes, decode: bool) -> None:
    text = to_asm(script, decode)
    assert isinstance(text, str)


named_ops = sorted(
    op for op in range(0x61, 0xBB) if NAME_TO_OPCODE.get(OPCODE_NAMES[op]) == op
) + [0x50]
asm_friendly = st.lists(
    st.one_of(
        st.sampled_from(named_ops).map(lambda op: bytes([op])),
        st.integers(-(2**31) + 1, 2**31 - 1).map(push_int),
    ),
    max_size=30,
).map(b"".join)


@PROPS
@given(script=asm_friendly)
def test_core_asm_round_trips_where_it_can(script: bytes) -> None:
    """Core's display ASM parses back for scripts of named opcodes and number pushes."""
    assert parse_asm(to_asm(script)) == script


def test_asm_examples() -> None:
    text = "0 -1 1 16 17 -2 0x4c 0x01 0x07 'Az' ADD OP_ADD NOP2 CHECKLOCKTIMEVERIFY"
    assert parse_asm(text) == bytes.fromhex("004f5160011101824c010702417a9393b1b1")
    assert to_asm(bytes.fromhex("76a914" + "11" * 20 + "88ac")) == f"OP_DUP OP_HASH160 {'11' * 20} OP_EQUALVERIFY OP_CHECKSIG"
    assert to_asm(b"\xb1\xb2\xba\xff\x01") == "OP_CHECKLOCKTIMEVERIFY OP_CHECKSEQUENCEVERIFY OP_CHECKSIGADD OP_INVALIDOPCODE [error]"
    sig = encode_der(1, 2) + b"\x81"
    assert to_asm(push_bytes(sig), True) == encode_der(1, 2).hex() + "[ALL|ANYONECANPAY]"
    assert to_asm(push_bytes(sig), False) == sig.hex()
    with pytest.raises(ValueError):
        parse_asm("NOTANOPCODE")
    with pytest.raises(ValueError):
        parse_asm("4294967296")


def test_iter_script_reports_bad_push_last() -> None:
    seen = []
    with pytest.raises(ScriptError) as err:
        for op, data, pos in iter_script(b"\x51\x02\xaa\xbb\x4d\x01"):
            seen.append((op, data, pos))
    assert err.value.code == "BAD_OPCODE"
    assert seen == [(0x51, None, 0), (0x02, b"\xaa\xbb", 1)]


# --- numbers ---------------------------------------------------------------------------


@PROPS
@given(n=st.integers(-(2**39) + 1, 2**39 - 1))
def test_script_numbers_round_trip(n: int) -> None:
    data = encode_num(n)
    assert is_minimal_num(data)
    assert decode_num(data, True, 5) == n


@PROPS
@given(data=st.binary(max_size=5))
def test_non_minimal_numbers_are_rejected_only_when_required(data: bytes) -> None:
    value = decode_num(data, False, 5)
    if encode_num(value) == data:
        assert decode_num(data, True, 5) == value
    else:
        with pytest.raises(ScriptError) as err:
            decode_num(data, True, 5)
        assert err.value.code == "SCRIPTNUM"


# --- the P2WPKH shortcut agrees with the interpreter ----------------------------------------

_KEY = PrivateKey(0x5EED)


def _outcome(fn: object, *args: object) -> str:
    try:
        fn(*args)  # type: ignore[operator]
    except ScriptError as err:
        return err.code
    return "OK"


@PROPS
@given(
    uncompressed=st.booleans(),
    mutation=st.sampled_from(["none", "high_s", "hashtype", "flip", "empty", "lax", "other_key", "big"]),
    hash_type=st.sampled_from([1, 2, 3, 0x81, 0x82, 0x83, 0, 4]),
    flags=flag_sets,
)
def test_p2wpkh_shortcut_matches_interpreter(
    uncompressed: bool, mutation: str, hash_type: int, flags: frozenset[str]
) -> None:
    pub = _KEY.public_key().to_bytes(compressed=not uncompressed)
    program = hash160(pub)
    tx = _tx()
    code = p2wpkh_script_code(program)
    r, s = _KEY.sign(bip143_sighash(code, tx, 0, hash_type, 1000))
    sig = encode_der(r, s) + bytes([hash_type])
    if mutation == "high_s":
        sig = encode_der(r, N - s) + bytes([hash_type])
    elif mutation == "hashtype":
        sig = sig[:-1] + bytes([(hash_type + 1) & 0xFF])
    elif mutation == "flip":
        sig = sig[:10] + bytes([sig[10] ^ 1]) + sig[11:]
    elif mutation == "empty":
        sig = b""
    elif mutation == "lax":
        sig = b"\x30\x81" + sig[1:]  # a long-form length: not strict DER, fine for the lax parser
    elif mutation == "other_key":
        pub = PrivateKey(7).public_key().to_bytes()
    elif mutation == "big":
        pub = pub + b"\x00" * 500
    mask = flags_to_mask(flags)
    fast = _outcome(_verify_p2wpkh, sig, pub, program, mask, TransactionChecker(tx, 0, 1000))
    slow = _outcome(_execute_witness_script, [sig, pub], code, mask, TransactionChecker(tx, 0, 1000))
    assert fast == slow
    if mutation == "none" and not flags & {"WITNESS_PUBKEYTYPE"} and hash_type in (1, 2, 3, 0x81, 0x82, 0x83):
        assert fast == "OK"
