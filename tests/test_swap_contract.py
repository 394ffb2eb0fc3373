"""relay.contract: the decred-style swap contract as P2WSH, its spends, and locktimes in heights."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from base_chain.crypto import PrivateKey
from base_chain.hashes import hash160, sha256
from base_chain.locks import is_final_tx
from base_chain.params import get_params
from base_chain.policy import check_standard_tx, dust_threshold, fee_for, is_witness_standard
from base_chain.script import STANDARD_FLAGS, ScriptError, parse_asm, to_asm, verify_script
from base_chain.signing import segwit_signature
from base_chain.templates import p2wpkh, p2wsh
from base_chain.tx import OutPoint, Transaction, TxIn, TxOut
from relay.contract import (
    INITIATOR_LOCK_S,
    PARTICIPANT_LOCK_S,
    SPEND_SEQUENCE,
    ContractError,
    ContractInfo,
    blocks_for_duration,
    blocks_until_refundable,
    build_contract,
    contract_address,
    contract_script_pubkey,
    duration_of_blocks,
    extract_secret,
    find_contract_output,
    is_redeem_witness,
    is_refund_witness,
    locktime_after,
    p2wpkh_address,
    parse_contract,
    pkh_from_address,
    redeem_tx,
    redeem_witness,
    refund_tx,
    refund_witness,
)

SECRET = bytes(range(32))
SECRET_HASH = sha256(SECRET)
RECIPIENT = PrivateKey(0x1111)
AUTHOR = PrivateKey(0x2222)
OTHER = PrivateKey(0x3333)
RECIPIENT_PKH = hash160(RECIPIENT.public_key().to_bytes())
REFUND_PKH = hash160(AUTHOR.public_key().to_bytes())
LOCKTIME = 389
AMOUNT = 100_000_000
OUTPOINT = OutPoint(bytes.fromhex("ab" * 32), 1)
DEST = p2wpkh(OTHER.public_key().to_bytes())
RATE = 2000  # sat/kvB


def contract(locktime: int = LOCKTIME) -> bytes:
    return build_contract(SECRET_HASH, RECIPIENT_PKH, REFUND_PKH, locktime)


def verify(tx: Transaction, script: bytes | None = None) -> None:
    c = script if script is not None else contract()
    verify_script(b"", p2wsh(c), tx.inputs[0].witness, STANDARD_FLAGS, tx, 0, AMOUNT)


# --- the script ----------------------------------------------------------------------------------


def test_contract_script_is_exactly_decreds_template() -> None:
    c = contract()
    expected = (
        "63" "82" "0120" "88"
        "a8" "20" + SECRET_HASH.hex() + "88"
        "76" "a9" "14" + RECIPIENT_PKH.hex() +
        "67" "028501" "b1" "75"
        "76" "a9" "14" + REFUND_PKH.hex() +
        "68" "88" "ac"
    )  # fmt: skip
    assert c.hex() == expected
    assert to_asm(c) == (
        f"OP_IF OP_SIZE 32 OP_EQUALVERIFY OP_SHA256 {SECRET_HASH.hex()} OP_EQUALVERIFY "
        f"OP_DUP OP_HASH160 {RECIPIENT_PKH.hex()} OP_ELSE 389 OP_CHECKLOCKTIMEVERIFY OP_DROP "
        f"OP_DUP OP_HASH160 {REFUND_PKH.hex()} OP_ENDIF OP_EQUALVERIFY OP_CHECKSIG"
    )
    assert len(c) == 95
    assert contract_script_pubkey(c) == b"\x00\x20" + hashlib.sha256(c).digest()
    addr = contract_address(c, get_params("alpha").address_prefixes)
    assert addr.startswith("alpha1q") and len(addr) == len("alpha1") + 59
    assert parse_contract(c) == ContractInfo(SECRET_HASH, RECIPIENT_PKH, REFUND_PKH, LOCKTIME)
    assert ContractInfo(SECRET_HASH, RECIPIENT_PKH, REFUND_PKH, LOCKTIME).script() == c


@pytest.mark.parametrize("locktime", [1, 16, 17, 127, 128, 32767, 32768, 8_388_607, 8_388_608, 499_999_999])
def test_locktime_pushes_are_minimal_numbers(locktime: int) -> None:
    c = contract(locktime)
    assert parse_contract(c).locktime == locktime
    assert f" {locktime} OP_CHECKLOCKTIMEVERIFY" in to_asm(c)


def _asm_variant(**changes: str) -> bytes:
    parts = {
        "size": "32", "hash": "0x20 0x" + SECRET_HASH.hex(), "recipient": "0x14 0x" + RECIPIENT_PKH.hex(),
        "locktime": str(LOCKTIME), "refund": "0x14 0x" + REFUND_PKH.hex(), "tail": "",
    }  # fmt: skip
    parts.update(changes)
    return parse_asm(
        f"IF SIZE {parts['size']} EQUALVERIFY SHA256 {parts['hash']} EQUALVERIFY DUP HASH160 {parts['recipient']} "
        f"ELSE {parts['locktime']} CHECKLOCKTIMEVERIFY DROP DUP HASH160 {parts['refund']} ENDIF EQUALVERIFY "
        f"CHECKSIG {parts['tail']}"
    )


def test_asm_variant_helper_builds_the_contract() -> None:
    assert _asm_variant() == contract()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"size": "20"}, "strange secret size 20"),
        ({"size": "16"}, "strange secret size 16"),
        ({"size": "0x02 0x2000"}, "not a minimally encoded number"),
        ({"hash": "0x14 0x" + "11" * 20}, "bad secret_hash"),
        ({"recipient": "0x20 0x" + "11" * 32}, "bad recipient_pkh"),
        ({"refund": "0x21 0x02" + "11" * 32}, "bad refund_pkh"),
        ({"locktime": "0x03 0x850100"}, "not a minimally encoded number"),
        ({"locktime": "0x01 0x05"}, "canonical form"),  # 5 must be OP_5
        ({"locktime": "500000000"}, "not a block height"),
        ({"locktime": "0"}, "not a block height"),
        ({"locktime": "-1"}, "not a number"),
        ({"tail": "NOP"}, "not an atomic swap script"),
        ({"tail": "0x01"}, "not a valid script"),
    ],
)
def test_parse_refuses_everything_but_the_template(changes: dict[str, str], message: str) -> None:
    with pytest.raises(ContractError, match=message):
        parse_contract(_asm_variant(**changes))


@pytest.mark.parametrize(
    "script",
    [
        b"",
        p2wpkh(RECIPIENT.public_key().to_bytes()),
        contract()[:-1],
        contract().replace(b"\xa8", b"\xa9", 1),  # OP_HASH160 instead of OP_SHA256
        contract().replace(b"\x67", b"\x64", 1),  # OP_NOTIF
    ],
)
def test_parse_refuses_other_scripts(script: bytes) -> None:
    with pytest.raises(ContractError):
        parse_contract(script)


def test_build_refuses_bad_terms() -> None:
    with pytest.raises(ContractError, match="secret hash"):
        build_contract(b"\x00" * 20, RECIPIENT_PKH, REFUND_PKH, 10)
    with pytest.raises(ContractError, match="recipient"):
        build_contract(SECRET_HASH, b"\x00" * 32, REFUND_PKH, 10)
    with pytest.raises(ContractError, match="block height"):
        build_contract(SECRET_HASH, RECIPIENT_PKH, REFUND_PKH, 1_700_000_000)
    with pytest.raises(ContractError, match="block height"):
        build_contract(SECRET_HASH, RECIPIENT_PKH, REFUND_PKH, 0)


@settings(max_examples=200, deadline=None)
@given(
    secret_hash=st.binary(min_size=32, max_size=32),
    recipient=st.binary(min_size=20, max_size=20),
    refund=st.binary(min_size=20, max_size=20),
    locktime=st.integers(min_value=1, max_value=499_999_999),
)
def test_parse_build_round_trip(secret_hash: bytes, recipient: bytes, refund: bytes, locktime: int) -> None:
    info = ContractInfo(secret_hash, recipient, refund, locktime)
    script = build_contract(secret_hash, recipient, refund, locktime)
    assert parse_contract(script) == info
    assert parse_contract(script).script() == script


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_parse_arbitrary_bytes_only_raises_contract_error(data: bytes) -> None:
    try:
        info = parse_contract(data)
    except ContractError:
        return
    assert info.script() == data


@settings(max_examples=100, deadline=None)
@given(position=st.integers(min_value=0, max_value=94), value=st.integers(min_value=0, max_value=255))
def test_any_byte_change_is_refused_or_changes_the_terms(position: int, value: int) -> None:
    original = contract()
    mutated = bytearray(original)
    mutated[position] = value
    try:
        info = parse_contract(bytes(mutated))
    except ContractError:
        return
    assert bytes(mutated) == original or info != parse_contract(original)


# --- redeem ----------------------------------------------------------------------------------------


def test_redeem_with_the_secret_verifies() -> None:
    tx = redeem_tx(contract(), OUTPOINT, AMOUNT, SECRET, RECIPIENT, DEST, RATE)
    verify(tx)
    assert tx.locktime == 0 and tx.version == 2
    assert tx.inputs[0].prevout == OUTPOINT and tx.inputs[0].sequence == SPEND_SEQUENCE
    assert tx.inputs[0].script_sig == b""
    w = tx.inputs[0].witness
    assert w[1:] == [RECIPIENT.public_key().to_bytes(), SECRET, b"\x01", contract()]
    assert is_redeem_witness(w, contract()) and not is_refund_witness(w, contract())
    fee = AMOUNT - tx.outputs[0].amount_sat
    assert fee >= fee_for(RATE, tx.vsize) and fee <= fee_for(RATE, tx.vsize + 1)
    assert [o.script_pubkey for o in tx.outputs] == [DEST]
    check_standard_tx(tx)
    assert is_witness_standard(tx, [TxOut(AMOUNT, p2wsh(contract()))])
    assert redeem_witness(w[0], w[1], SECRET, contract()) == w


def _resign(tx: Transaction, key: PrivateKey, witness_items: list[bytes]) -> Transaction:
    """`tx` with a fresh signature by `key` placed before `witness_items`."""
    tx = tx.copy()
    sig = segwit_signature(tx, 0, key, contract(), AMOUNT)
    tx.inputs[0].witness = [sig] + witness_items
    return tx


def test_redeem_with_a_wrong_secret_fails() -> None:
    good = redeem_tx(contract(), OUTPOINT, AMOUNT, SECRET, RECIPIENT, DEST, RATE)
    pub = RECIPIENT.public_key().to_bytes()
    wrong = _resign(good, RECIPIENT, [pub, b"\x42" * 32, b"\x01", contract()])
    with pytest.raises(ScriptError) as e:
        verify(wrong)
    assert e.value.code == "EQUALVERIFY"


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_redeem_with_a_wrong_size_secret_fails_the_size_check(size: int) -> None:
    # Even a preimage of the right hash would fail: the size check comes first. Make one whose hash matches.
    secret = bytes(size)
    c = build_contract(sha256(secret), RECIPIENT_PKH, REFUND_PKH, LOCKTIME)
    tx = Transaction(2, [TxIn(OUTPOINT, b"", SPEND_SEQUENCE)], [TxOut(AMOUNT - 1000, DEST)], 0)
    sig = segwit_signature(tx, 0, RECIPIENT, c, AMOUNT)
    tx.inputs[0].witness = [sig, RECIPIENT.public_key().to_bytes(), secret, b"\x01", c]
    with pytest.raises(ScriptError) as e:
        verify(tx, c)
    assert e.value.code == "EQUALVERIFY"
    with pytest.raises(ContractError, match="secret must be 32 bytes"):
        redeem_tx(c, OUTPOINT, AMOUNT, secret, RECIPIENT, DEST, RATE)


def test_redeem_with_a_wrong_key_fails() -> None:
    good = redeem_tx(contract(), OUTPOINT, AMOUNT, SECRET, RECIPIENT, DEST, RATE)
    # The other key's signature and pubkey: the pubkey hash check fails.
    other = _resign(good, OTHER, [OTHER.public_key().to_bytes(), SECRET, b"\x01", contract()])
    with pytest.raises(ScriptError) as e:
        verify(other)
    assert e.value.code == "EQUALVERIFY"
    # The refund key cannot take the redeem branch either.
    author = _resign(good, AUTHOR, [AUTHOR.public_key().to_bytes(), SECRET, b"\x01", contract()])
    with pytest.raises(ScriptError):
        verify(author)
    # The recipient's pubkey with someone else's signature fails the signature check.
    forged = _resign(good, OTHER, [RECIPIENT.public_key().to_bytes(), SECRET, b"\x01", contract()])
    with pytest.raises(ScriptError) as e:
        verify(forged)
    assert e.value.code in ("NULLFAIL", "EVAL_FALSE")


def test_redeem_builder_refuses_bad_input() -> None:
    with pytest.raises(ContractError, match="does not match"):
        redeem_tx(contract(), OUTPOINT, AMOUNT, b"\x42" * 32, RECIPIENT, DEST, RATE)
    with pytest.raises(ContractError, match="recipient key"):
        redeem_tx(contract(), OUTPOINT, AMOUNT, SECRET, AUTHOR, DEST, RATE)
    with pytest.raises(ContractError, match="dust"):
        redeem_tx(contract(), OUTPOINT, 500, SECRET, RECIPIENT, DEST, RATE)
    with pytest.raises(ContractError, match="not an atomic swap"):
        redeem_tx(b"\x51", OUTPOINT, AMOUNT, SECRET, RECIPIENT, DEST, RATE)


def test_minimalif_requires_exactly_0x01_for_the_redeem_branch() -> None:
    good = redeem_tx(contract(), OUTPOINT, AMOUNT, SECRET, RECIPIENT, DEST, RATE)
    pub = RECIPIENT.public_key().to_bytes()
    bad = _resign(good, RECIPIENT, [pub, SECRET, b"\x02", contract()])
    with pytest.raises(ScriptError) as e:
        verify(bad)
    assert e.value.code == "MINIMALIF"


# --- refund ----------------------------------------------------------------------------------------


def test_refund_after_the_locktime_verifies_and_is_final_from_the_next_block() -> None:
    tx = refund_tx(contract(), OUTPOINT, AMOUNT, AUTHOR, DEST, RATE)
    verify(tx)
    assert tx.locktime == LOCKTIME and tx.inputs[0].sequence == SPEND_SEQUENCE
    assert is_refund_witness(tx.inputs[0].witness, contract())
    assert tx.inputs[0].witness[1:] == [AUTHOR.public_key().to_bytes(), b"", contract()]
    assert refund_witness(tx.inputs[0].witness[0], AUTHOR.public_key().to_bytes(), contract()) == tx.inputs[0].witness
    check_standard_tx(tx)
    # A block at height h may hold it iff locktime < h: the chain's tip must have reached the locktime.
    assert not is_final_tx(tx, LOCKTIME, 0)
    assert is_final_tx(tx, LOCKTIME + 1, 0)
    assert blocks_until_refundable(LOCKTIME, LOCKTIME - 1) == 1
    assert blocks_until_refundable(LOCKTIME, LOCKTIME) == 0


def test_refund_before_the_locktime_fails() -> None:
    good = refund_tx(contract(), OUTPOINT, AMOUNT, AUTHOR, DEST, RATE)
    early = good.copy()
    early.locktime = LOCKTIME - 1
    early = _resign(early, AUTHOR, [AUTHOR.public_key().to_bytes(), b"", contract()])
    with pytest.raises(ScriptError) as e:
        verify(early)
    assert e.value.code == "UNSATISFIED_LOCKTIME"
    # A final sequence disables nLockTime, so CLTV refuses it too.
    final = good.copy()
    final.inputs[0].sequence = 0xFFFFFFFF
    final = _resign(final, AUTHOR, [AUTHOR.public_key().to_bytes(), b"", contract()])
    with pytest.raises(ScriptError) as e:
        verify(final)
    assert e.value.code == "UNSATISFIED_LOCKTIME"
    # A UNIX-time nLockTime is the wrong kind of lock for a height contract.
    timed = good.copy()
    timed.locktime = 1_700_000_000
    timed = _resign(timed, AUTHOR, [AUTHOR.public_key().to_bytes(), b"", contract()])
    with pytest.raises(ScriptError) as e:
        verify(timed)
    assert e.value.code == "UNSATISFIED_LOCKTIME"
    with pytest.raises(ContractError, match="final sequence"):
        refund_tx(contract(), OUTPOINT, AMOUNT, AUTHOR, DEST, RATE, sequence=0xFFFFFFFF)


def test_refund_with_the_wrong_key_fails() -> None:
    good = refund_tx(contract(), OUTPOINT, AMOUNT, AUTHOR, DEST, RATE)
    stolen = _resign(good, RECIPIENT, [RECIPIENT.public_key().to_bytes(), b"", contract()])
    with pytest.raises(ScriptError) as e:
        verify(stolen)
    assert e.value.code == "EQUALVERIFY"
    with pytest.raises(ContractError, match="refund key"):
        refund_tx(contract(), OUTPOINT, AMOUNT, RECIPIENT, DEST, RATE)


def test_fees_follow_the_rate_and_outputs_stay_above_dust() -> None:
    low = refund_tx(contract(), OUTPOINT, AMOUNT, AUTHOR, DEST, 1000)
    high = refund_tx(contract(), OUTPOINT, AMOUNT, AUTHOR, DEST, 10_000)
    fee_low, fee_high = AMOUNT - low.outputs[0].amount_sat, AMOUNT - high.outputs[0].amount_sat
    assert 100 < fee_low < 200
    assert fee_high in (fee_for(10_000, high.vsize), fee_for(10_000, high.vsize + 1))  # worst-case signature size
    assert fee_high > 9 * fee_low
    # The smallest contract that can be refunded at 1 sat/vB: fee + dust threshold.
    threshold = dust_threshold(TxOut(0, DEST))
    refund_tx(contract(), OUTPOINT, fee_low + threshold, AUTHOR, DEST, 1000)
    with pytest.raises(ContractError, match="dust"):
        refund_tx(contract(), OUTPOINT, fee_low + threshold - 1, AUTHOR, DEST, 1000)


# --- secrets, outputs, addresses ---------------------------------------------------------------------


def test_extract_secret_from_a_redeem() -> None:
    tx = redeem_tx(contract(), OUTPOINT, AMOUNT, SECRET, RECIPIENT, DEST, RATE)
    round_tripped = Transaction.from_hex(tx.hex())
    assert extract_secret(round_tripped, SECRET_HASH) == SECRET
    refund = refund_tx(contract(), OUTPOINT, AMOUNT, AUTHOR, DEST, RATE)
    with pytest.raises(ContractError, match="does not contain the secret"):
        extract_secret(refund, SECRET_HASH)
    with pytest.raises(ContractError, match="wrong size"):
        extract_secret(tx, SECRET_HASH[:20])
    # A P2SH-style redeem (decred's original form) carries the secret in the scriptSig: found too.
    legacy = Transaction(2, [TxIn(OUTPOINT, bytes([32]) + SECRET + b"\x51")], [TxOut(1, DEST)], 0)
    assert extract_secret(legacy, SECRET_HASH) == SECRET


def test_find_contract_output() -> None:
    c = contract()
    tx = Transaction(2, [TxIn(OUTPOINT)], [TxOut(5000, DEST), TxOut(AMOUNT, p2wsh(c))], 0)
    assert find_contract_output(c, tx) == 1
    with pytest.raises(ContractError, match="does not contain the contract output"):
        find_contract_output(contract(LOCKTIME + 1), tx)


def test_p2wpkh_address_helpers() -> None:
    alpha = get_params("alpha").address_prefixes
    beta = get_params("beta").address_prefixes
    addr = p2wpkh_address(RECIPIENT_PKH, alpha)
    assert addr.startswith("alpha1q")
    assert pkh_from_address(addr, alpha) == RECIPIENT_PKH
    with pytest.raises(ContractError, match="wrong network"):
        pkh_from_address(addr, beta)
    with pytest.raises(ContractError, match="not a P2WPKH"):
        pkh_from_address(contract_address(contract(), alpha), alpha)
    with pytest.raises(ContractError, match="invalid address"):
        pkh_from_address("nonsense", alpha)


# --- locktimes -------------------------------------------------------------------------------------


def test_durations_convert_with_each_chains_block_interval() -> None:
    alpha, beta = get_params("alpha").target_spacing_s, get_params("beta").target_spacing_s
    assert (alpha, beta) == (600, 150)
    assert blocks_for_duration(INITIATOR_LOCK_S, alpha) == 288
    assert blocks_for_duration(PARTICIPANT_LOCK_S, beta) == 576
    assert blocks_for_duration(INITIATOR_LOCK_S, beta) == 1152
    assert blocks_for_duration(1, alpha) == 1 and blocks_for_duration(601, alpha) == 2
    assert duration_of_blocks(288, alpha) == INITIATOR_LOCK_S == 2 * PARTICIPANT_LOCK_S
    assert locktime_after(101, INITIATOR_LOCK_S, alpha) == 389
    with pytest.raises(ContractError):
        blocks_for_duration(0, alpha)
    with pytest.raises(ContractError):
        blocks_for_duration(10, 0)
