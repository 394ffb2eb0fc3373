"""Signing inputs of the standard kinds (P2WPKH, P2WSH, P2PKH)."""

from __future__ import annotations

from .crypto import PrivateKey
from .sighash import SIGHASH_ALL, Bip143Cache, bip143_sighash, legacy_sighash
from .templates import p2pkh, p2wpkh_script_code, push_data
from .tx import Transaction

__all__ = ["sign_p2wpkh", "sign_p2wsh", "sign_p2pkh", "segwit_signature"]


def segwit_signature(
    tx: Transaction,
    index: int,
    key: PrivateKey,
    script_code: bytes,
    amount_sat: int,
    hash_type: int = SIGHASH_ALL,
    cache: Bip143Cache | None = None,
) -> bytes:
    """A DER signature plus hash-type byte over the BIP143 hash of one input."""
    digest = bip143_sighash(script_code, tx, index, hash_type, amount_sat, cache)
    return key.sign_der(digest) + bytes([hash_type & 0xFF])


def sign_p2wpkh(
    tx: Transaction, index: int, key: PrivateKey, amount_sat: int, hash_type: int = SIGHASH_ALL
) -> None:
    """Fill in the witness of a P2WPKH input: [signature, pubkey]."""
    pub = key.public_key().to_bytes()
    sig = segwit_signature(tx, index, key, p2wpkh_script_code(pub), amount_sat, hash_type)
    tx.inputs[index].script_sig = b""
    tx.inputs[index].witness = [sig, pub]


def sign_p2wsh(
    tx: Transaction,
    index: int,
    key: PrivateKey,
    witness_script: bytes,
    amount_sat: int,
    hash_type: int = SIGHASH_ALL,
) -> bytes:
    """A signature for a P2WSH input; the caller assembles the witness stack."""
    return segwit_signature(tx, index, key, witness_script, amount_sat, hash_type)


def sign_p2pkh(tx: Transaction, index: int, key: PrivateKey, hash_type: int = SIGHASH_ALL) -> None:
    pub = key.public_key().to_bytes()
    digest = legacy_sighash(p2pkh(pub), tx, index, hash_type)
    sig = key.sign_der(digest) + bytes([hash_type & 0xFF])
    tx.inputs[index].script_sig = push_data(sig) + push_data(pub)
