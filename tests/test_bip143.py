"""BIP143 examples: every signature hash, every signature (both crypto backends) and every signed transaction."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

import pytest

import vectors
from base_chain import crypto
from base_chain.hashes import hash256
from base_chain.serialize import ByteReader
from base_chain.sighash import bip143_sighash
from base_chain.tx import OutPoint, Transaction

CONSENSUS_FLAGS = {"P2SH", "DERSIG", "CHECKLOCKTIMEVERIFY", "CHECKSEQUENCEVERIFY", "WITNESS", "NULLDUMMY"}


@dataclass
class Section:
    name: str
    txs: list[Transaction] = field(default_factory=list)  # unsigned and signed, in order
    signed: list[Transaction] = field(default_factory=list)
    unsigned: list[Transaction] = field(default_factory=list)
    prevouts: list[tuple[bytes, int]] = field(default_factory=list)  # (script_pubkey, amount_sat)
    preimages: list[tuple[bytes, bytes]] = field(default_factory=list)  # (preimage, sighash)
    signatures: list[tuple[bytes, bytes, bytes]] = field(default_factory=list)  # (sighash, key, sig)


HEX_TX = re.compile(r"^\s*([0-9a-f]{80,})\s*$")


def parse() -> list[Section]:
    sections: list[Section] = []
    lines = vectors.text("bips", "bip143-vectors.txt").splitlines()
    want_tx: str | None = None
    sighash = key = None
    for line in lines:
        if m := re.match(r"^=== (.+) ===$", line):
            sections.append(Section(m.group(1)))
            continue
        if not sections:
            continue
        sec = sections[-1]
        if want_tx and (m := HEX_TX.match(line)):
            tx = Transaction.from_hex(m.group(1))
            sec.txs.append(tx)
            (sec.signed if want_tx == "signed" else sec.unsigned).append(tx)
            want_tx = None
            continue
        if m := re.search(r"(unsigned transaction|signed transaction is|version of the .* examples|still valid when .*swapped):\s*([0-9a-f]*)", line):
            kind = "unsigned" if m.group(1) == "unsigned transaction" else "signed"
            if m.group(2):
                tx = Transaction.from_hex(m.group(2))
                sec.txs.append(tx)
                (sec.signed if kind == "signed" else sec.unsigned).append(tx)
            else:
                want_tx = kind
            continue
        if m := re.search(r"scriptPubKey\s*:\s*([0-9a-f]+),?\s+value:\s*([\d.]+)", line):
            amount = int(Decimal(m.group(2)) * 100_000_000)
            sec.prevouts.append((bytes.fromhex(m.group(1)), amount))
        elif m := re.search(r"preimage(?: for [^:]+)?:\s+([0-9a-f]+)\s*$", line):
            sec.preimages.append((bytes.fromhex(m.group(1)), b""))
        elif m := re.search(r"sig[hH]ash:\s+([0-9a-f]{64})", line):
            sighash = bytes.fromhex(m.group(1))
            pre, _ = sec.preimages[-1]
            sec.preimages[-1] = (pre, sighash)
        elif m := re.search(r"private key\s*:\s*([0-9a-f]{64})", line):
            key = bytes.fromhex(m.group(1))
        elif m := re.search(r"signature:\s+([0-9a-f ]+?)\s*(\(|$)", line):
            if sighash is not None and key is not None:
                sec.signatures.append((sighash, key, bytes.fromhex(m.group(1).replace(" ", ""))))
            sighash = key = None
    return sections


SECTIONS = parse()


def test_all_five_examples_parsed() -> None:
    names = [s.name for s in SECTIONS]
    assert names == ["Native P2WPKH", "P2SH-P2WPKH", "Native P2WSH", "P2SH-P2WSH", "No FindAndDelete"]
    assert sum(len(s.preimages) for s in SECTIONS) == 1 + 1 + 2 + 2 + 6 + 2
    assert sum(len(s.signatures) for s in SECTIONS) == 1 + 1 + 2 + 2 + 6
    assert all(sh for s in SECTIONS for _, sh in s.preimages)


def _split_preimage(pre: bytes) -> tuple[OutPoint, bytes, int, int]:
    r = ByteReader(pre)
    r.read(4 + 32 + 32)
    outpoint = OutPoint(r.read(32), r.u32())
    script_code = r.var_bytes()
    amount = r.i64()
    r.read(4 + 32 + 4)
    hash_type = r.u32()
    r.expect_end()
    return outpoint, script_code, amount, hash_type


@pytest.mark.parametrize("sec", SECTIONS, ids=[s.name for s in SECTIONS])
def test_sighashes(sec: Section) -> None:
    for pre, expected in sec.preimages:
        assert hash256(pre) == expected
        outpoint, script_code, amount, hash_type = _split_preimage(pre)
        tx, index = next(
            (tx, i) for tx in sec.txs for i, txin in enumerate(tx.inputs) if txin.prevout == outpoint
        )
        assert bip143_sighash(script_code, tx, index, hash_type, amount) == expected


@pytest.mark.parametrize("backend", crypto.available_backends())
@pytest.mark.parametrize("sec", SECTIONS[:4], ids=[s.name for s in SECTIONS[:4]])
def test_signatures(sec: Section, backend: str) -> None:
    previous = crypto.get_backend().name
    crypto.set_backend(backend)
    try:
        for sighash, key, sig in sec.signatures:
            priv = crypto.PrivateKey(key)
            assert priv.sign_der(sighash) + sig[-1:] == sig
            assert priv.public_key().verify_der(sig[:-1], sighash)
    finally:
        crypto.set_backend(previous)


@pytest.mark.parametrize("sec", SECTIONS, ids=[s.name for s in SECTIONS])
def test_signed_transactions_verify(sec: Section) -> None:
    from base_chain.script import verify_script

    inputs = [txin for tx in sec.unsigned for txin in tx.inputs]
    assert len(inputs) == len(sec.prevouts)
    known = {txin.prevout: po for txin, po in zip(inputs, sec.prevouts)}
    checked = 0
    for tx in sec.signed:
        if not all(txin.prevout in known for txin in tx.inputs):
            continue  # the CHECKMULTISIGVERIFY variant spends an output the text does not list
        for i, txin in enumerate(tx.inputs):
            spk, amount = known[txin.prevout]
            verify_script(txin.script_sig, spk, txin.witness, CONSENSUS_FLAGS, tx, i, amount)
            checked += 1
    assert checked >= 1
