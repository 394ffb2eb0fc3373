"""BOLT 3 test vectors (Appendices B-G), parsed from the spec text at test time.

Every Appendix C and F commitment transaction and HTLC transaction is rebuilt
from balances and keys, signed by our signer (with each crypto backend) and
compared byte for byte; the signed transactions also go through the script
interpreter against the outputs they spend.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vectors
from base_chain import crypto
from base_chain.crypto import PrivateKey, PublicKey
from base_chain.hashes import sha256
from base_chain.script import STANDARD_FLAGS, ScriptError, verify_script
from base_chain.signing import segwit_signature, sign_p2pkh
from base_chain.templates import p2pkh, p2wpkh, p2wpkh_script_code, p2wsh
from base_chain.tx import OutPoint, Transaction, TxIn, TxOut
from channels import scripts
from channels.keys import (
    ChannelKeys,
    CommitmentKeys,
    derive_channel_keys,
    derive_commitment_keys,
    derive_privkey,
    derive_pubkey,
    derive_revocation_privkey,
    derive_revocation_pubkey,
    generate_from_seed,
    per_commitment_index,
    per_commitment_point,
)
from channels.shachain import MAX_INDEX, ShachainError, ShachainStore, where_to_put_secret
from channels.transactions import (
    ChannelType,
    CommitmentHtlc,
    CommitmentParams,
    CommitmentSpec,
    CommitmentTx,
    FundingInput,
    HtlcDirection,
    build_commitment_tx,
    build_funding_tx,
    build_htlc_tx,
    build_htlc_txs,
    commitment_number_from_tx,
    commitment_number_obscure_factor,
    commitment_sighash,
    finalize_commitment,
    finalize_htlc_tx,
    htlc_sighash,
    remote_htlc_sighash_type,
    sign_commitment,
    sign_htlc_tx,
)

TEXT = vectors.text("bolts", "bolt03-vectors.md")
BACKENDS = crypto.available_backends()


# --- parsing -----------------------------------------------------------------------------


def _appendices(text: str) -> dict[str, str]:
    parts = re.split(r"^# Appendix ([A-Z]):.*$", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


APPENDIX = _appendices(TEXT)

# "key: value" / "key = value", optionally commented out ("# ") or "INTERNAL: "-prefixed.
_FIELD = re.compile(r"^\s*(?:#\s*)?(?:INTERNAL:\s*)?([A-Za-z_][A-Za-z0-9_ ]*?)\s*(?::|=)\s*(\S.*?)\s*$")


def _fields(block: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in block.splitlines():
        m = _FIELD.match(line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def _split_named(block: str) -> list[str]:
    """The parts of `block` that start with a "name:" line."""
    return re.split(r"^\s*name:", block, flags=re.M)[1:]


def _h(s: str) -> bytes:
    return bytes.fromhex(s[2:] if s.startswith("0x") else s)


def _privkey(s: str) -> PrivateKey:
    raw = _h(s)
    assert len(raw) == 33 and raw[32] == 1, "Bitcoin-style compressed private key (32 bytes + 01)"
    return PrivateKey(raw[:32])


def _pub(s: str) -> PublicKey:
    return PublicKey.from_bytes(_h(s))


@dataclass
class HtlcTxVector:
    output_index: int
    kind: str  # "timeout" / "success"
    htlc_number: int
    remote_sig: bytes  # DER, no sighash byte
    local_sig: bytes | None  # DER (Appendix C lists it; F only inside the tx)
    tx_hex: str


@dataclass
class CommitmentVector:
    name: str
    to_local_msat: int
    to_remote_msat: int
    feerate_per_kw: int
    dust_limit_sat: int
    htlc_numbers: list[int]
    remote_sig: bytes
    local_sig: bytes | None
    tx_hex: str
    htlc_txs: list[HtlcTxVector]
    base_fee_sat: int | None = None
    actual_fee_sat: int | None = None
    output_wscripts: dict[str, bytes] = field(default_factory=dict)  # "HTLC #2" / "to_local" -> script


C_PREAMBLE, *_ = re.split(r"^\s*name:", APPENDIX["C"], maxsplit=1, flags=re.M)
C = _fields(C_PREAMBLE)
FUNDING_SAT = int(C["funding_amount_satoshi"])


@dataclass(frozen=True)
class VectorHtlc:
    direction: HtlcDirection
    amount_msat: int
    cltv_expiry: int
    payment_preimage: bytes


def _test_htlcs() -> dict[int, VectorHtlc]:
    out = {}
    for n in range(10):
        if f"htlc {n} direction" not in C:
            continue
        # Directions are "local->remote" (offered by local) or "remote->local" (received).
        direction = HtlcDirection.OFFERED if C[f"htlc {n} direction"] == "local->remote" else HtlcDirection.RECEIVED
        out[n] = VectorHtlc(
            direction,
            int(C[f"htlc {n} amount_msat"]),
            int(C[f"htlc {n} expiry"]),
            _h(C[f"htlc {n} payment_preimage"]),
        )
    return out


TEST_HTLCS = _test_htlcs()

_HTLC_TX = re.compile(
    r"# signature for output #(\d+) \(htlc-(timeout|success) for htlc #(\d+)\)\s*\n"
    r"\s*remote_htlc_signature = ([0-9a-f]+)\s*\n"
    r"\s*# local_htlc_signature = ([0-9a-f]+)\s*\n"
    r"\s*htlc_(timeout|success)_tx \(htlc #(\d+)\): ([0-9a-f]+)"
)
_WSCRIPT = re.compile(r"# (HTLC #\d+|to_local) (?:offered |received )?amount \d+ wscript ([0-9a-f]+)")
_HTLC_COMMENT = re.compile(r"# HTLC #(\d+) ")


def _htlc_numbers(name: str, to_local_msat: int, to_remote_msat: int, case_text: str) -> list[int]:
    """The HTLCs a case commits to.

    Appendix C: "HTLCs 5 and 6 are only used in the 'same amount and preimage'
    test" (which names its HTLCs in comments); the others use HTLCs 0-4, unless
    the balances alone hold the whole channel (the no-HTLC case).
    """
    if to_local_msat + to_remote_msat == FUNDING_SAT * 1000:
        return []
    if "same amount and preimage" in name:
        numbers = sorted({int(n) for n in _HTLC_COMMENT.findall(case_text)})
    else:
        numbers = [0, 1, 2, 3, 4]
    total = to_local_msat + to_remote_msat + sum(TEST_HTLCS[n].amount_msat for n in numbers)
    assert total == FUNDING_SAT * 1000, f"{name}: balances and HTLCs do not add up to the channel"
    return numbers


def _appendix_c_cases() -> list[CommitmentVector]:
    cases = []
    for chunk in _split_named(APPENDIX["C"]):
        name = chunk.splitlines()[0].strip()
        f = _fields(chunk)
        htlc_txs = [
            HtlcTxVector(int(m[0]), m[1], int(m[2]), _h(m[3]), _h(m[4]), m[7])
            for m in _HTLC_TX.findall(chunk)
        ]
        assert all(m[1] == m[5] and m[2] == m[6] for m in _HTLC_TX.findall(chunk))
        assert len(htlc_txs) == chunk.count("_tx (htlc #") == int(f["num_htlcs"]), name
        to_local, to_remote = int(f["to_local_msat"]), int(f["to_remote_msat"])
        cases.append(
            CommitmentVector(
                name=name,
                to_local_msat=to_local,
                to_remote_msat=to_remote,
                feerate_per_kw=int(f["local_feerate_per_kw"]),
                dust_limit_sat=int(C["local_dust_limit_satoshi"]),
                htlc_numbers=_htlc_numbers(name, to_local, to_remote, chunk),
                remote_sig=_h(f["remote_signature"]),
                local_sig=_h(f["local_signature"]),
                tx_hex=f["output commit_tx"],
                htlc_txs=htlc_txs,
                base_fee_sat=int(f["base commitment transaction fee"]) if "base commitment transaction fee" in f else None,
                actual_fee_sat=(
                    int(f["actual commitment transaction fee"]) if "actual commitment transaction fee" in f else None
                ),
                output_wscripts={k: _h(v) for k, v in _WSCRIPT.findall(chunk)},
            )
        )
    return cases


def _appendix_f_cases() -> list[CommitmentVector]:
    m = re.search(r"```yaml\n(.*?)\n```", APPENDIX["F"], flags=re.S)
    assert m is not None
    by_name = {c.name: c for c in C_CASES}
    cases = []
    for d in json.loads(m.group(1)):
        name = d["Name"]
        if not d["UseTestHtlcs"]:
            numbers: list[int] = []
        elif "same amount and preimage" in name:
            numbers = by_name[name].htlc_numbers  # the Appendix C case of the same name
        else:
            numbers = [0, 1, 2, 3, 4]
        total = d["LocalBalance"] + d["RemoteBalance"] + sum(TEST_HTLCS[n].amount_msat for n in numbers)
        assert total == FUNDING_SAT * 1000, name
        cases.append(
            CommitmentVector(
                name=name,
                to_local_msat=d["LocalBalance"],
                to_remote_msat=d["RemoteBalance"],
                feerate_per_kw=d["FeePerKw"],
                dust_limit_sat=d["DustLimitSatoshis"],
                htlc_numbers=numbers,
                remote_sig=_h(d["RemoteSigHex"]),
                local_sig=None,
                tx_hex=d["ExpectedCommitmentTxHex"],
                htlc_txs=[
                    HtlcTxVector(-1, "", -1, _h(h["RemoteSigHex"]), None, h["ResolutionTxHex"]) for h in d["HtlcDescs"]
                ],
            )
        )
    return cases


C_CASES = _appendix_c_cases()
F_CASES = _appendix_f_cases()


@dataclass
class GenerationVector:
    name: str
    seed: bytes
    index: int
    output: bytes


@dataclass
class StorageVector:
    name: str
    inserts: list[tuple[int, bytes, bool]]  # (index, secret, expected OK)


def _appendix_d() -> tuple[list[GenerationVector], list[StorageVector]]:
    gen_text, storage_text = APPENDIX["D"].split("## Storage Tests")
    generation = []
    for chunk in _split_named(gen_text):
        f = _fields(chunk)
        generation.append(GenerationVector(chunk.splitlines()[0].strip(), _h(f["seed"]), int(f["I"], 0), _h(f["output"])))
    storage = []
    for chunk in _split_named(storage_text):
        steps = re.findall(r"I: (\S+)\s*\n\s*secret: (\S+)\s*\n\s*output: (OK|ERROR)", chunk)
        assert len(steps) == chunk.count("I:")
        storage.append(
            StorageVector(chunk.splitlines()[0].strip(), [(int(i, 0), _h(s), out == "OK") for i, s, out in steps])
        )
    return generation, storage


D_GENERATION, D_STORAGE = _appendix_d()
E = _fields(APPENDIX["E"])
E_CASES = _split_named(APPENDIX["E"])


def test_vector_counts() -> None:
    """A parser slip must not drop vectors silently."""
    assert len(C_CASES) == 16
    assert sum(len(c.htlc_txs) for c in C_CASES) == 33 == TEXT.count("_tx (htlc #")
    assert sum(len(c.output_wscripts) for c in C_CASES) == APPENDIX["C"].count(" wscript ") - C_PREAMBLE.count(" wscript ")
    assert sum(c.base_fee_sat is not None for c in C_CASES) == 15  # the last case lists no fees
    assert len(D_GENERATION) == 5
    assert len(D_STORAGE) == 9
    assert sum(not ok for v in D_STORAGE for _, _, ok in v.inserts) == 8  # one failing insert per invalid case
    assert len(E_CASES) == 4
    assert len(F_CASES) == 9
    assert sum(len(c.htlc_txs) for c in F_CASES) == 15 == TEXT.count('"ResolutionTxHex"')
    assert len(C_CASES) + len(D_GENERATION) + len(D_STORAGE) + len(E_CASES) == TEXT.count("name:")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    previous = crypto.get_backend().name
    crypto.set_backend(request.param)
    try:
        yield request.param
    finally:
        crypto.set_backend(previous)


# --- Appendix B: funding transaction ---------------------------------------------------------

B = _fields(APPENDIX["B"])


def test_appendix_b_funding_tx() -> None:
    coinbase = Transaction.from_hex(B["Block 1 coinbase transaction"])
    key = _privkey(B["Block 1 coinbase privkey"])
    assert coinbase.outputs[0].script_pubkey == p2pkh(key.public_key().to_bytes())
    prevout = OutPoint(_h(B["input txid"])[::-1], int(B["input index"]))
    assert prevout.txid == coinbase.txid
    local, remote = _pub(B["local_funding_pubkey"]), _pub(B["remote_funding_pubkey"])
    assert scripts.funding_script(local.to_bytes(), remote.to_bytes()) == _h(B["funding witness script"])
    assert scripts.funding_script(remote.to_bytes(), local.to_bytes()) == _h(B["funding witness script"])

    funding = build_funding_tx(
        # A P2PKH scriptSig: push of a 72-byte signature (with sighash byte) and a 33-byte key.
        [FundingInput(prevout, int(B["input satoshis"]), script_sig_size=1 + 72 + 1 + 33)],
        int(B["funding satoshis"]),
        local,
        remote,
        p2wpkh(key.public_key().to_bytes()),
        int(B["feerate_per_kw"]),
    )
    assert funding.funding_output_index == int(B["funding output"])
    assert funding.change_sat == int(B["change satoshis"])
    tx = funding.tx
    sign_p2pkh(tx, 0, key)
    assert tx.hex() == B["funding tx"]
    assert tx.txid_hex() == B["txid"]
    verify_script(tx.inputs[0].script_sig, coinbase.outputs[0].script_pubkey, [], STANDARD_FLAGS, tx, 0, 0)


def test_funding_tx_change_dust_and_insufficient() -> None:
    local, remote = _pub(B["local_funding_pubkey"]), _pub(B["remote_funding_pubkey"])
    inp = FundingInput(OutPoint(b"\x11" * 32, 1), 100_000, witness_size=108)
    f = build_funding_tx([inp], 99_000, local, remote, p2wpkh(local.to_bytes()), 1000)
    assert f.change_sat == 0 and len(f.tx.outputs) == 1 and f.fee_sat == 1000
    with pytest.raises(ValueError):
        build_funding_tx([inp], 99_900, local, remote, p2wpkh(local.to_bytes()), 1000)


# --- Appendix C / F: commitment and HTLC transactions ----------------------------------------


@dataclass(frozen=True)
class VectorKeys:
    local_funding_privkey: PrivateKey
    remote_funding_privkey: PrivateKey
    local_htlc_privkey: PrivateKey
    remote_htlc_privkey: PrivateKey
    local_delayed_privkey: PrivateKey
    remote_payment_privkey: PrivateKey
    revocation_privkey: PrivateKey
    commitment_keys: CommitmentKeys
    params: CommitmentParams
    commitment_number: int


def _vector_keys() -> VectorKeys:
    local_funding = _privkey(C["local_funding_privkey"])
    assert local_funding.public_key() == _pub(C["local_funding_pubkey"])
    point = _pub(C["local_per_commitment_point"])
    keys = CommitmentKeys(
        per_commitment_point=point,
        revocation_pubkey=_pub(C["local_revocation_pubkey"]),
        local_delayed_pubkey=_pub(C["local_delayedpubkey"]),
        local_htlc_pubkey=_pub(C["local_htlcpubkey"]),
        remote_htlc_pubkey=_pub(C["remote_htlcpubkey"]),
        remote_pubkey=_pub(C["remote_payment_basepoint"]),  # option_static_remotekey
    )
    params = CommitmentParams(
        funding_outpoint=OutPoint(_h(C["funding_tx_id"])[::-1], int(C["funding_output_index"])),
        funding_sat=FUNDING_SAT,
        local_funding_pubkey=local_funding.public_key(),
        remote_funding_pubkey=_pub(C["remote_funding_pubkey"]),
        to_self_delay=int(C["local_delay"]),
        dust_limit_sat=int(C["local_dust_limit_satoshi"]),
        local_is_opener=True,
        obscure_factor=commitment_number_obscure_factor(
            _pub(C["local_payment_basepoint"]), _pub(C["remote_payment_basepoint"])
        ),
    )
    # The secrets behind the vectors (the spec's INTERNAL comment) let us sign for both sides.
    return VectorKeys(
        local_funding_privkey=local_funding,
        remote_funding_privkey=_privkey(C["remote_funding_privkey"]),
        local_htlc_privkey=_privkey(C["local_privkey"]),
        remote_htlc_privkey=_privkey(C["remote_privkey"]),
        local_delayed_privkey=_privkey(C["local_delayed_privkey"]),
        remote_payment_privkey=_privkey(C["remote_payment_basepoint_secret"]),
        revocation_privkey=derive_revocation_privkey(
            _privkey(C["remote_revocation_basepoint_secret"]), _privkey(C["x_local_per_commitment_secret"])
        ),
        commitment_keys=keys,
        params=params,
        commitment_number=int(C["commitment_number"]),
    )


VK = _vector_keys()


def test_appendix_c_keys(backend: str) -> None:
    """The listed keys follow from the basepoints and the per-commitment point (BOLT 3 derivation)."""
    obscured_text = C["obscured commitment number"]  # "0x2bb038521914 ^ 42"
    assert VK.params.obscure_factor == int(obscured_text.split("^")[0], 16)
    assert VK.params.funding_script == _h(C["funding wscript"])
    secret = _privkey(C["x_local_per_commitment_secret"])
    point = per_commitment_point(secret)
    assert point == VK.commitment_keys.per_commitment_point
    local = ChannelKeys(
        funding_pubkey=VK.params.local_funding_pubkey,
        revocation_basepoint=_pub(C["local_payment_basepoint"]),  # not used by the local commitment
        payment_basepoint=_pub(C["local_payment_basepoint"]),
        delayed_payment_basepoint=_pub(C["local_delayed_payment_basepoint"]),
        htlc_basepoint=_pub(C["local_htlc_basepoint"]),
    )
    remote = ChannelKeys(
        funding_pubkey=VK.params.remote_funding_pubkey,
        revocation_basepoint=_pub(C["remote_revocation_basepoint"]),
        payment_basepoint=_pub(C["remote_payment_basepoint"]),
        delayed_payment_basepoint=_pub(C["remote_payment_basepoint"]),
        htlc_basepoint=_pub(C["remote_htlc_basepoint"]),
    )
    assert derive_commitment_keys(point, local, remote) == VK.commitment_keys
    assert _privkey(C["local_delayed_payment_basepoint_secret"]).public_key() == local.delayed_payment_basepoint
    assert _privkey(C["remote_revocation_basepoint_secret"]).public_key() == remote.revocation_basepoint
    assert _privkey(C["local_payment_basepoint_secret"]).public_key() == local.payment_basepoint
    assert _privkey(C["remote_payment_basepoint_secret"]).public_key() == remote.payment_basepoint
    # The private keys of the derived keys.
    local_delayed = derive_privkey(_privkey(C["local_delayed_payment_basepoint_secret"]), point)
    assert local_delayed.secret == VK.local_delayed_privkey.secret
    local_htlc = derive_privkey(_privkey(C["local_payment_basepoint_secret"]), point)
    assert local_htlc.secret == VK.local_htlc_privkey.secret
    assert VK.local_htlc_privkey.public_key() == VK.commitment_keys.local_htlc_pubkey
    remote_htlc = derive_privkey(_privkey(C["remote_payment_basepoint_secret"]), point)
    assert remote_htlc.secret == VK.remote_htlc_privkey.secret
    assert VK.remote_htlc_privkey.public_key() == VK.commitment_keys.remote_htlc_pubkey
    assert VK.revocation_privkey.public_key() == VK.commitment_keys.revocation_pubkey
    assert VK.remote_funding_privkey.public_key() == VK.params.remote_funding_pubkey


def _spec(case: CommitmentVector, channel_type: ChannelType) -> CommitmentSpec:
    htlcs = tuple(
        CommitmentHtlc(t.direction, t.amount_msat, sha256(t.payment_preimage), t.cltv_expiry)
        for t in (TEST_HTLCS[n] for n in case.htlc_numbers)
    )
    return CommitmentSpec(case.to_local_msat, case.to_remote_msat, htlcs, case.feerate_per_kw, channel_type)


def _build(case: CommitmentVector, channel_type: ChannelType) -> CommitmentTx:
    params = VK.params
    if case.dust_limit_sat != params.dust_limit_sat:  # Appendix F varies the dust limit
        params = replace(params, dust_limit_sat=case.dust_limit_sat)
    return build_commitment_tx(_spec(case, channel_type), params, VK.commitment_keys, VK.commitment_number)


def _preimage(spec_index: int, case: CommitmentVector) -> bytes:
    return TEST_HTLCS[case.htlc_numbers[spec_index]].payment_preimage


def _check_case(case: CommitmentVector, channel_type: ChannelType) -> None:
    commitment = _build(case, channel_type)
    expected = Transaction.from_hex(case.tx_hex)

    # The unsigned transaction and its accounting.
    assert commitment.tx.to_bytes(include_witness=False) == expected.to_bytes(include_witness=False)
    assert commitment_number_from_tx(expected, VK.params.obscure_factor) == VK.commitment_number
    if case.base_fee_sat is not None:
        assert commitment.base_fee_sat == case.base_fee_sat
    if case.actual_fee_sat is not None:
        assert commitment.fee_sat == case.actual_fee_sat
    for label, wscript in case.output_wscripts.items():
        if label == "to_local":
            assert commitment.to_local_witness_script == wscript
        else:
            number = int(label.split("#")[1])
            (out,) = [h for h in commitment.htlc_outputs if case.htlc_numbers[h.htlc_index] == number]
            assert out.witness_script == wscript

    # Signatures: ours equal the listed ones; the remote's verify, and we reproduce them too.
    digest = commitment_sighash(commitment)
    assert VK.params.remote_funding_pubkey.verify_der(case.remote_sig, digest)
    local_sig = sign_commitment(commitment, VK.local_funding_privkey)
    if case.local_sig is not None:
        assert local_sig == case.local_sig + b"\x01"
    remote_sig = sign_commitment(commitment, VK.remote_funding_privkey)
    assert remote_sig == case.remote_sig + b"\x01"
    signed = finalize_commitment(commitment, local_sig, remote_sig)
    assert signed.hex() == case.tx_hex

    # HTLC-timeout / HTLC-success transactions, in output order.
    assert len(commitment.htlc_outputs) == len(case.htlc_txs)
    remote_hash_type = remote_htlc_sighash_type(channel_type)
    for out, htlc_tx, vec in zip(commitment.htlc_outputs, build_htlc_txs(commitment), case.htlc_txs, strict=True):
        if vec.output_index >= 0:  # Appendix C says which output and HTLC each one is
            assert out.output_index == vec.output_index
            assert case.htlc_numbers[out.htlc_index] == vec.htlc_number
            assert ("timeout" if out.htlc.offered else "success") == vec.kind
        assert htlc_tx.to_bytes() == Transaction.from_hex(vec.tx_hex).to_bytes(include_witness=False)
        assert VK.commitment_keys.remote_htlc_pubkey.verify_der(
            vec.remote_sig, htlc_sighash(htlc_tx, out, remote_hash_type)
        )
        remote_htlc_sig = sign_htlc_tx(htlc_tx, out, VK.remote_htlc_privkey, remote_hash_type)
        assert remote_htlc_sig == vec.remote_sig + bytes([remote_hash_type])
        local_htlc_sig = sign_htlc_tx(htlc_tx, out, VK.local_htlc_privkey)
        if vec.local_sig is not None:
            assert local_htlc_sig == vec.local_sig + b"\x01"
        preimage = None if out.htlc.offered else _preimage(out.htlc_index, case)
        final = finalize_htlc_tx(htlc_tx, out, vec.remote_sig + bytes([remote_hash_type]), local_htlc_sig, preimage)
        assert final.hex() == vec.tx_hex


def _verify_case_scripts(case: CommitmentVector, channel_type: ChannelType) -> None:
    commitment = _build(case, channel_type)
    signed = Transaction.from_hex(case.tx_hex)
    funding_spk = p2wsh(VK.params.funding_script)
    verify_script(b"", funding_spk, signed.inputs[0].witness, STANDARD_FLAGS, signed, 0, FUNDING_SAT)
    for out, vec in zip(commitment.htlc_outputs, case.htlc_txs, strict=True):
        htlc_tx = Transaction.from_hex(vec.tx_hex)
        spent = signed.outputs[out.output_index]
        verify_script(b"", spent.script_pubkey, htlc_tx.inputs[0].witness, STANDARD_FLAGS, htlc_tx, 0, spent.amount_sat)
    # A tampered signature must fail.
    bad = signed.copy()
    bad.outputs[0].amount_sat -= 1
    with pytest.raises(ScriptError):
        verify_script(b"", funding_spk, bad.inputs[0].witness, STANDARD_FLAGS, bad, 0, FUNDING_SAT)


@pytest.mark.parametrize("case", C_CASES, ids=[c.name for c in C_CASES])
def test_appendix_c(case: CommitmentVector, backend: str) -> None:
    _check_case(case, ChannelType.STATIC_REMOTEKEY)


@pytest.mark.parametrize("case", C_CASES, ids=[c.name for c in C_CASES])
def test_appendix_c_scripts_verify(case: CommitmentVector) -> None:
    _verify_case_scripts(case, ChannelType.STATIC_REMOTEKEY)


@pytest.mark.parametrize("case", F_CASES, ids=[c.name for c in F_CASES])
def test_appendix_f(case: CommitmentVector, backend: str) -> None:
    _check_case(case, ChannelType.ANCHORS)


@pytest.mark.parametrize("case", F_CASES, ids=[c.name for c in F_CASES])
def test_appendix_f_scripts_verify(case: CommitmentVector) -> None:
    _verify_case_scripts(case, ChannelType.ANCHORS)


def test_commitment_rejects_unbalanced_spec() -> None:
    case = C_CASES[0]
    spec = CommitmentSpec(case.to_local_msat, case.to_remote_msat - 1, (), 15000)
    with pytest.raises(ValueError):
        build_commitment_tx(spec, VK.params, VK.commitment_keys, 42)


def test_single_anchor_when_remote_has_no_output() -> None:
    (case,) = [c for c in F_CASES if "single anchor" in c.name]
    commitment = _build(case, ChannelType.ANCHORS)
    anchors = [o for o in commitment.tx.outputs if o.amount_sat == scripts.ANCHOR_OUTPUT_SAT]
    assert len(anchors) == 1 and commitment.to_remote_index is None
    assert anchors[0].script_pubkey == p2wsh(scripts.anchor_script(VK.params.local_funding_pubkey.to_bytes()))


# --- every spending path, through the interpreter ----------------------------------------------


def _spend(prev: Transaction, index: int, *, sequence: int = 0xFFFFFFFF, locktime: int = 0) -> Transaction:
    out = prev.outputs[index]
    return Transaction(
        2, [TxIn(OutPoint(prev.txid, index), b"", sequence)], [TxOut(out.amount_sat - 500, p2wpkh(b"\x02" * 33))], locktime
    )


def _sig(tx: Transaction, key: PrivateKey, script_code: bytes, amount_sat: int) -> bytes:
    return segwit_signature(tx, 0, key, script_code, amount_sat)


def _ok(tx: Transaction, prev: Transaction, index: int) -> None:
    out = prev.outputs[index]
    verify_script(b"", out.script_pubkey, tx.inputs[0].witness, STANDARD_FLAGS, tx, 0, out.amount_sat)


def _fails(tx: Transaction, prev: Transaction, index: int) -> None:
    with pytest.raises(ScriptError):
        _ok(tx, prev, index)


@pytest.mark.parametrize("channel_type", list(ChannelType), ids=lambda t: t.value)
def test_spending_paths(channel_type: ChannelType) -> None:
    anchors = channel_type.anchors
    (case,) = [c for c in C_CASES if c.name.startswith("commitment tx with all five HTLCs untrimmed")]
    commitment = _build(case, channel_type)
    ck = VK.commitment_keys
    local_sig = sign_commitment(commitment, VK.local_funding_privkey)
    remote_sig = sign_commitment(commitment, VK.remote_funding_privkey)
    ctx = finalize_commitment(commitment, local_sig, remote_sig)
    delay = VK.params.to_self_delay

    # to_local: delayed sweep by the owner, and the penalty with the revocation key.
    i = commitment.to_local_index
    assert i is not None
    wscript = commitment.to_local_witness_script
    amount = ctx.outputs[i].amount_sat
    tx = _spend(ctx, i, sequence=delay)
    tx.inputs[0].witness = scripts.to_local_delayed_witness(_sig(tx, VK.local_delayed_privkey, wscript, amount), wscript)
    _ok(tx, ctx, i)
    early = _spend(ctx, i, sequence=delay - 1)
    early.inputs[0].witness = scripts.to_local_delayed_witness(
        _sig(early, VK.local_delayed_privkey, wscript, amount), wscript
    )
    _fails(early, ctx, i)
    tx = _spend(ctx, i)
    tx.inputs[0].witness = scripts.to_local_revocation_witness(_sig(tx, VK.revocation_privkey, wscript, amount), wscript)
    _ok(tx, ctx, i)

    # to_remote: P2WPKH, or the 1-CSV script with anchors.
    i = commitment.to_remote_index
    assert i is not None
    remote_pub = ck.remote_pubkey.to_bytes()
    amount = ctx.outputs[i].amount_sat
    tx = _spend(ctx, i, sequence=1)
    code = scripts.to_remote_anchor_script(remote_pub) if anchors else p2wpkh_script_code(remote_pub)
    tx.inputs[0].witness = scripts.to_remote_witness(_sig(tx, VK.remote_payment_privkey, code, amount), remote_pub, anchors)
    _ok(tx, ctx, i)
    if anchors:
        tx.inputs[0].sequence = 0
        tx.inputs[0].witness = scripts.to_remote_witness(
            _sig(tx, VK.remote_payment_privkey, code, amount), remote_pub, anchors
        )
        _fails(tx, ctx, i)

    # Anchors: the owner with its funding key at once; anyone after 16 blocks.
    if anchors:
        for funding_key in (VK.local_funding_privkey, VK.remote_funding_privkey):
            fpub = funding_key.public_key().to_bytes()
            spk = p2wsh(scripts.anchor_script(fpub))
            (i,) = [n for n, o in enumerate(ctx.outputs) if o.script_pubkey == spk]
            tx = _spend(ctx, i)
            tx.outputs[0].amount_sat = 0
            tx.outputs[0].script_pubkey = b"\x6a"
            tx.inputs[0].witness = scripts.anchor_witness(_sig(tx, funding_key, scripts.anchor_script(fpub), 330), fpub)
            _ok(tx, ctx, i)
            tx.inputs[0].witness = scripts.anchor_sweep_witness(fpub)
            _fails(tx, ctx, i)
            tx.inputs[0].sequence = 16
            _ok(tx, ctx, i)

    # HTLC outputs: the remote node's preimage / timeout claims and the revocation penalty.
    csv = 1 if anchors else 0xFFFFFFFE
    for out in commitment.htlc_outputs:
        i, ws, amount = out.output_index, out.witness_script, out.amount_sat
        preimage = _preimage(out.htlc_index, case)
        if out.htlc.offered:
            tx = _spend(ctx, i, sequence=csv)
            tx.inputs[0].witness = scripts.offered_htlc_preimage_witness(
                _sig(tx, VK.remote_htlc_privkey, ws, amount), preimage, ws
            )
            _ok(tx, ctx, i)
            tx.inputs[0].witness = scripts.offered_htlc_preimage_witness(
                _sig(tx, VK.remote_htlc_privkey, ws, amount), b"\x42" * 32, ws
            )
            _fails(tx, ctx, i)
        else:
            tx = _spend(ctx, i, sequence=csv, locktime=out.htlc.cltv_expiry)
            tx.inputs[0].witness = scripts.received_htlc_timeout_witness(_sig(tx, VK.remote_htlc_privkey, ws, amount), ws)
            _ok(tx, ctx, i)
            tx = _spend(ctx, i, sequence=csv, locktime=out.htlc.cltv_expiry - 1)
            tx.inputs[0].witness = scripts.received_htlc_timeout_witness(_sig(tx, VK.remote_htlc_privkey, ws, amount), ws)
            _fails(tx, ctx, i)
        tx = _spend(ctx, i)
        tx.inputs[0].witness = scripts.htlc_revocation_witness(
            _sig(tx, VK.revocation_privkey, ws, amount), ck.revocation_pubkey.to_bytes(), ws
        )
        _ok(tx, ctx, i)

        # The second stage: HTLC-timeout / -success, then its to_local-form output.
        htlc_tx = build_htlc_tx(commitment, out)
        hash_type = remote_htlc_sighash_type(channel_type)
        final = finalize_htlc_tx(
            htlc_tx,
            out,
            sign_htlc_tx(htlc_tx, out, VK.remote_htlc_privkey, hash_type),
            sign_htlc_tx(htlc_tx, out, VK.local_htlc_privkey),
            None if out.htlc.offered else preimage,
        )
        _ok(final, ctx, i)
        second = scripts.htlc_tx_output_script(ck.revocation_pubkey.to_bytes(), delay, ck.local_delayed_pubkey.to_bytes())
        amount2 = final.outputs[0].amount_sat
        sweep = _spend(final, 0, sequence=delay)
        sweep.inputs[0].witness = scripts.to_local_delayed_witness(
            _sig(sweep, VK.local_delayed_privkey, second, amount2), second
        )
        _ok(sweep, final, 0)
        penalty = _spend(final, 0)
        penalty.inputs[0].witness = scripts.to_local_revocation_witness(
            _sig(penalty, VK.revocation_privkey, second, amount2), second
        )
        _ok(penalty, final, 0)

    received = next(o for o in commitment.htlc_outputs if not o.htlc.offered)
    offered = next(o for o in commitment.htlc_outputs if o.htlc.offered)
    with pytest.raises(ValueError):
        finalize_htlc_tx(build_htlc_tx(commitment, received), received, b"", b"", b"\x42" * 32)
    with pytest.raises(ValueError):
        finalize_htlc_tx(build_htlc_tx(commitment, received), received, b"", b"")
    with pytest.raises(ValueError):
        finalize_htlc_tx(build_htlc_tx(commitment, offered), offered, b"", b"", preimage)


# --- Appendix D: per-commitment secrets and their storage -----------------------------------------


@pytest.mark.parametrize("vec", D_GENERATION, ids=[v.name for v in D_GENERATION])
def test_appendix_d_generation(vec: GenerationVector) -> None:
    assert generate_from_seed(vec.seed, vec.index) == vec.output


@pytest.mark.parametrize("vec", D_STORAGE, ids=[v.name for v in D_STORAGE])
def test_appendix_d_storage(vec: StorageVector) -> None:
    store = ShachainStore()
    inserted: list[tuple[int, bytes]] = []
    for n, (index, secret, ok) in enumerate(vec.inserts):
        if ok:
            store.insert_secret(secret, index)
            inserted.append((index, secret))
            for old_index, old_secret in inserted:
                assert store.derive_old_secret(old_index) == old_secret
            assert ShachainStore.from_bytes(store.to_bytes()) == store
        else:
            before = store.to_bytes()
            with pytest.raises(ShachainError):
                store.insert_secret(secret, index)
            assert store.to_bytes() == before
            assert n == len(vec.inserts) - 1
    assert len(store) == len(inserted)


def test_shachain_order_and_retransmission() -> None:
    seed = b"\xff" * 32
    store = ShachainStore()
    with pytest.raises(ShachainError):
        store.insert_secret(generate_from_seed(seed, MAX_INDEX - 1), MAX_INDEX - 1)  # not the first index
    for n in range(5):
        store.insert_secret(generate_from_seed(seed, MAX_INDEX - n), MAX_INDEX - n)
    assert store.next_index == MAX_INDEX - 5
    store.insert_secret(generate_from_seed(seed, MAX_INDEX - 2), MAX_INDEX - 2)  # retransmitted: no-op
    with pytest.raises(ShachainError):
        store.insert_secret(b"\x00" * 32, MAX_INDEX - 2)
    with pytest.raises(ShachainError):
        store.insert_secret(generate_from_seed(seed, MAX_INDEX - 7), MAX_INDEX - 7)  # skips one
    with pytest.raises(ShachainError):
        store.derive_old_secret(MAX_INDEX - 5)  # not received yet
    with pytest.raises(ShachainError):
        ShachainStore.from_bytes(store.to_bytes()[:-1])
    with pytest.raises(ShachainError):
        ShachainStore.from_bytes(b"\x01\x01" + (4).to_bytes(8, "big") + b"\x00" * 32)  # 4 belongs in bucket 2
    assert where_to_put_secret(0) == 48 and where_to_put_secret(MAX_INDEX) == 0


@settings(max_examples=25, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), count=st.integers(min_value=1, max_value=300))
def test_shachain_property(seed: bytes, count: int) -> None:
    store = ShachainStore()
    for n in range(count):
        store.insert_secret(generate_from_seed(seed, per_commitment_index(n)), per_commitment_index(n))
    assert len(store.to_bytes()) <= 2 + 49 * 40
    restored = ShachainStore.from_bytes(store.to_bytes())
    for n in {0, count // 3, count // 2, count - 1}:
        assert restored.derive_old_secret(per_commitment_index(n)) == generate_from_seed(seed, per_commitment_index(n))


# --- Appendix E: key derivation ---------------------------------------------------------------------


def test_appendix_e(backend: str) -> None:
    base_secret, commitment_secret = _h(E["base_secret"]), _h(E["per_commitment_secret"])
    base_point, point = _pub(E["base_point"]), _pub(E["per_commitment_point"])
    assert PrivateKey(base_secret).public_key() == base_point
    assert per_commitment_point(commitment_secret) == point
    checked = 0
    for chunk in E_CASES:
        f = _fields(chunk)
        if "localpubkey" in f:
            assert derive_pubkey(base_point, point).to_bytes() == _h(f["localpubkey"])
            assert derive_pubkey(base_point.to_bytes(), point.to_bytes()).to_bytes() == _h(f["localpubkey"])
        elif "localprivkey" in f:
            assert derive_privkey(base_secret, point).to_bytes() == _h(f["localprivkey"])
        elif "revocationpubkey" in f:
            assert derive_revocation_pubkey(base_point, point).to_bytes() == _h(f["revocationpubkey"])
        elif "revocationprivkey" in f:
            priv = derive_revocation_privkey(base_secret, commitment_secret)
            assert priv.to_bytes() == _h(f["revocationprivkey"])
            assert priv.public_key() == derive_revocation_pubkey(base_point, point)
        else:
            raise AssertionError(f"unrecognized Appendix E case: {chunk.splitlines()[0]}")
        checked += 1
    assert checked == 4


def test_derive_channel_keys() -> None:
    seed = bytes(range(32))
    a, b, other = derive_channel_keys(seed, 0), derive_channel_keys(seed, 0), derive_channel_keys(seed, 1)
    assert a.channel_keys() == b.channel_keys() and a.per_commitment_seed == b.per_commitment_seed
    assert a.channel_keys() != other.channel_keys() and a.per_commitment_seed != other.per_commitment_seed
    ka = a.channel_keys()
    points = {ka.funding_pubkey, ka.revocation_basepoint, ka.payment_basepoint, ka.delayed_payment_basepoint, ka.htlc_basepoint}
    assert len(points) == 5
    assert a.per_commitment_secret(0) == generate_from_seed(a.per_commitment_seed, MAX_INDEX)
    assert a.per_commitment_point(3) == per_commitment_point(generate_from_seed(a.per_commitment_seed, MAX_INDEX - 3))
    assert "per_commitment_seed" not in repr(a)
    with pytest.raises(ValueError):
        derive_channel_keys(b"short", 0)


# --- Appendix G: dual-funded transaction (the parts BOLT 3 defines) --------------------------------


def test_appendix_g_funding_output() -> None:
    g = APPENDIX["G"]
    f = _fields(g[g.index("# the 2-of-2s") :].split("```")[0])
    pubkey1, pubkey2 = _h(f["pubkey1"]), _h(f["pubkey2"])
    assert scripts.funding_script(pubkey2, pubkey1) == _h(f["script"])
    spk = p2wsh(_h(f["script"]))
    assert spk.hex() == f["scriptPubKey"] == p2wsh(scripts.funding_script(pubkey1, pubkey2)).hex()

    parent_hex = re.search(r"Parent transaction.*?\n([0-9a-f]+)\n", g)
    signed_hex = re.search(r"#### Signed Funding Transaction:.*?```\n([0-9a-f]+)\n```", g, flags=re.S)
    txid = re.search(r'txid: "([0-9a-f]+)"', g)
    assert parent_hex and signed_hex and txid
    parent = Transaction.from_hex(parent_hex.group(1))
    signed = Transaction.from_hex(signed_hex.group(1))
    assert signed.txid_hex() == txid.group(1)
    assert any(o.script_pubkey == spk and o.amount_sat == 400_000_000 for o in signed.outputs)
    for n, txin in enumerate(signed.inputs):
        assert txin.prevout.txid == parent.txid
        spent = parent.outputs[txin.prevout.index]
        verify_script(txin.script_sig, spent.script_pubkey, txin.witness, STANDARD_FLAGS, signed, n, spent.amount_sat)
