"""Sweep transactions: spend commitment and HTLC-transaction outputs to our own script (BOLT 5).

A :class:`SweepInput` says how one output is spent: which BOLT 3 path, with
which key, under which nSequence / nLockTime. :func:`build_sweep_tx` puts any
number of them into one version-2 transaction paying a single output to the
destination script, with the fee taken from a fee rate and the weight the
*signed* transaction will have (signatures counted at their 73-byte maximum),
and returns None when what is left would be dust.

The factory functions below fix the BOLT rules per path, so the caller only
chooses keys and amounts:

=========================  =========================================  ==================
path                       witness                                    nSequence / nLockTime
=========================  =========================================  ==================
``DELAYED``                ``<local_delayedsig> <>``                  to_self_delay / 0
``REVOKED_TO_LOCAL``       ``<revocation_sig> 1``                     RBF / 0
``REVOKED_HTLC``           ``<revocation_sig> <revocationpubkey>``    RBF / 0
``TO_REMOTE``              ``<sig> <pubkey>`` (P2WPKH)                RBF / 0
``TO_REMOTE_ANCHORS``      ``<sig>`` + 1-CSV script                   1 / 0
``HTLC_PREIMAGE``          ``<remotehtlcsig> <payment_preimage>``     RBF, or 1 (anchors) / 0
``HTLC_TIMEOUT``           ``<remotehtlcsig> <>``                     RBF, or 1 (anchors) / cltv_expiry
=========================  =========================================  ==================

(``HTLC_*`` are the non-owner's direct claims on the owner's commitment: we use
them on the peer's commitment.) The anchor output of a commitment is spent by
the host's CPFP child; :func:`sign_anchor_input` signs that one input.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from base_chain.crypto import PrivateKey
from base_chain.policy import dust_threshold
from base_chain.sighash import SIGHASH_ALL, Bip143Cache, bip143_sighash
from base_chain.templates import p2wpkh_script_code
from base_chain.tx import OutPoint, Transaction, TxIn, TxOut

from . import scripts

__all__ = [
    "RBF_SEQUENCE",
    "SpendPath",
    "SweepInput",
    "delayed_input",
    "revoked_to_local_input",
    "revoked_htlc_input",
    "to_remote_input",
    "htlc_preimage_input",
    "htlc_timeout_input",
    "sweep_weight",
    "sweep_fee_sat",
    "build_sweep_tx",
    "sign_anchor_input",
    "preimage_in_witness",
]

#: nSequence of inputs without a relative lock: not final (so nLockTime applies) and BIP125-replaceable.
RBF_SEQUENCE = 0xFFFFFFFD

#: A placeholder as long as the longest DER signature plus its sighash byte, for weight estimates.
_DUMMY_SIG = b"\x30" + b"\x00" * 71 + bytes([SIGHASH_ALL])


class SpendPath(enum.Enum):
    DELAYED = "delayed"
    REVOKED_TO_LOCAL = "revoked_to_local"
    REVOKED_HTLC = "revoked_htlc"
    TO_REMOTE = "to_remote"
    TO_REMOTE_ANCHORS = "to_remote_anchors"
    HTLC_PREIMAGE = "htlc_preimage"
    HTLC_TIMEOUT = "htlc_timeout"


@dataclass(frozen=True, slots=True)
class SweepInput:
    """One output to sweep and how. `witness_script` is the P2WSH script (empty for P2WPKH)."""

    outpoint: OutPoint
    amount_sat: int
    path: SpendPath
    key: PrivateKey = field(repr=False)
    witness_script: bytes
    sequence: int
    locktime: int = 0
    preimage: bytes | None = None

    def script_code(self) -> bytes:
        if self.path is SpendPath.TO_REMOTE:
            return p2wpkh_script_code(self.key.public_key().to_bytes())
        return self.witness_script

    def witness(self, sig: bytes) -> list[bytes]:
        path, ws = self.path, self.witness_script
        if path is SpendPath.DELAYED:
            return scripts.to_local_delayed_witness(sig, ws)
        if path is SpendPath.REVOKED_TO_LOCAL:
            return scripts.to_local_revocation_witness(sig, ws)
        if path is SpendPath.REVOKED_HTLC:
            return scripts.htlc_revocation_witness(sig, self.key.public_key().to_bytes(), ws)
        if path is SpendPath.TO_REMOTE:
            return scripts.to_remote_witness(sig, self.key.public_key().to_bytes(), anchors=False)
        if path is SpendPath.TO_REMOTE_ANCHORS:
            return scripts.to_remote_witness(sig, self.key.public_key().to_bytes(), anchors=True)
        if path is SpendPath.HTLC_PREIMAGE:
            assert self.preimage is not None
            return scripts.offered_htlc_preimage_witness(sig, self.preimage, ws)
        return scripts.received_htlc_timeout_witness(sig, ws)


# --- one factory per path ------------------------------------------------------------------------


def delayed_input(
    outpoint: OutPoint, amount_sat: int, witness_script: bytes, delayed_privkey: PrivateKey, to_self_delay: int
) -> SweepInput:
    """Our ``to_local`` (or HTLC-transaction output) after ``to_self_delay`` blocks."""
    return SweepInput(outpoint, amount_sat, SpendPath.DELAYED, delayed_privkey, witness_script, to_self_delay)


def revoked_to_local_input(
    outpoint: OutPoint, amount_sat: int, witness_script: bytes, revocation_privkey: PrivateKey
) -> SweepInput:
    """A revoked ``to_local`` or revoked HTLC-transaction output, with the revocation key."""
    return SweepInput(
        outpoint, amount_sat, SpendPath.REVOKED_TO_LOCAL, revocation_privkey, witness_script, RBF_SEQUENCE
    )


def revoked_htlc_input(
    outpoint: OutPoint, amount_sat: int, witness_script: bytes, revocation_privkey: PrivateKey
) -> SweepInput:
    """An HTLC output (offered or received) of a revoked commitment, with the revocation key."""
    return SweepInput(outpoint, amount_sat, SpendPath.REVOKED_HTLC, revocation_privkey, witness_script, RBF_SEQUENCE)


def to_remote_input(outpoint: OutPoint, amount_sat: int, payment_privkey: PrivateKey, anchors: bool) -> SweepInput:
    """Our ``to_remote`` output in the peer's commitment (static_remotekey: the payment basepoint secret)."""
    if anchors:
        ws = scripts.to_remote_anchor_script(payment_privkey.public_key().to_bytes())
        return SweepInput(outpoint, amount_sat, SpendPath.TO_REMOTE_ANCHORS, payment_privkey, ws, 1)
    return SweepInput(outpoint, amount_sat, SpendPath.TO_REMOTE, payment_privkey, b"", RBF_SEQUENCE)


def htlc_preimage_input(
    outpoint: OutPoint,
    amount_sat: int,
    witness_script: bytes,
    htlc_privkey: PrivateKey,
    preimage: bytes,
    anchors: bool,
) -> SweepInput:
    """An HTLC the peer offered in its own commitment, claimed with the preimage."""
    if len(preimage) != 32:
        raise ValueError("payment_preimage must be 32 bytes")
    return SweepInput(
        outpoint,
        amount_sat,
        SpendPath.HTLC_PREIMAGE,
        htlc_privkey,
        witness_script,
        1 if anchors else RBF_SEQUENCE,
        preimage=preimage,
    )


def htlc_timeout_input(
    outpoint: OutPoint,
    amount_sat: int,
    witness_script: bytes,
    htlc_privkey: PrivateKey,
    cltv_expiry: int,
    anchors: bool,
) -> SweepInput:
    """An HTLC we offered, in the peer's commitment, taken back once ``cltv_expiry`` is reached."""
    return SweepInput(
        outpoint,
        amount_sat,
        SpendPath.HTLC_TIMEOUT,
        htlc_privkey,
        witness_script,
        1 if anchors else RBF_SEQUENCE,
        locktime=cltv_expiry,
    )


# --- building ---------------------------------------------------------------------------------------


def _unsigned(inputs: Sequence[SweepInput], destination_script: bytes, amount_sat: int) -> Transaction:
    if not inputs:
        raise ValueError("a sweep needs at least one input")
    locktime = max(i.locktime for i in inputs)
    return Transaction(
        2,
        [TxIn(i.outpoint, b"", i.sequence) for i in inputs],
        [TxOut(amount_sat, destination_script)],
        locktime,
    )


def sweep_weight(inputs: Sequence[SweepInput], destination_script: bytes) -> int:
    """The weight of the signed sweep, with every signature at its maximum size."""
    tx = _unsigned(inputs, destination_script, 0)
    for txin, spend in zip(tx.inputs, inputs):
        txin.witness = spend.witness(_DUMMY_SIG)
    return tx.weight


def sweep_fee_sat(inputs: Sequence[SweepInput], destination_script: bytes, feerate_per_kw: int) -> int:
    """``feerate_per_kw * weight / 1000``, rounded up."""
    return -(-feerate_per_kw * sweep_weight(inputs, destination_script) // 1000)


def build_sweep_tx(
    inputs: Sequence[SweepInput], destination_script: bytes, feerate_per_kw: int
) -> Transaction | None:
    """The signed sweep of `inputs` to `destination_script`, or None if the output would be dust."""
    total = sum(i.amount_sat for i in inputs)
    value = total - sweep_fee_sat(inputs, destination_script, feerate_per_kw)
    if value <= 0 or value < dust_threshold(TxOut(value, destination_script)):
        return None
    tx = _unsigned(inputs, destination_script, value)
    cache = Bip143Cache(tx)
    for n, spend in enumerate(inputs):
        if spend.preimage is not None and len(spend.preimage) != 32:
            raise ValueError("payment_preimage must be 32 bytes")
        digest = bip143_sighash(spend.script_code(), tx, n, SIGHASH_ALL, spend.amount_sat, cache)
        tx.inputs[n].witness = spend.witness(spend.key.sign_der(digest) + bytes([SIGHASH_ALL]))
    return tx


def sign_anchor_input(tx: Transaction, input_index: int, funding_privkey: PrivateKey) -> None:
    """Fill in the witness of `tx`'s input that spends our anchor: ``<sig> <anchor_script>``.

    The rest of `tx` (the wallet's inputs and change) must be final: the
    signature is SIGHASH_ALL.
    """
    funding_pubkey = funding_privkey.public_key().to_bytes()
    script = scripts.anchor_script(funding_pubkey)
    digest = bip143_sighash(script, tx, input_index, SIGHASH_ALL, scripts.ANCHOR_OUTPUT_SAT)
    sig = funding_privkey.sign_der(digest) + bytes([SIGHASH_ALL])
    tx.inputs[input_index].witness = scripts.anchor_witness(sig, funding_pubkey)


def preimage_in_witness(witness: Sequence[bytes], payment_hash: bytes) -> bytes | None:
    """The witness item whose SHA256 is `payment_hash`, if there is one."""
    for item in witness:
        if len(item) == 32 and hashlib.sha256(item).digest() == payment_hash:
            return item
    return None
