"""BOLT 3 transactions: funding, commitment, HTLC-timeout and HTLC-success.

Everything is computed, nothing is sent: these functions take balances, keys
and parameters and return unsigned transactions, signature hashes, signatures
and finished witnesses. "local" and "remote" are relative to the *owner* of a
commitment transaction (the node that can broadcast it): build our own
commitment with our view, and the one we sign for the peer with the peer's
view (directions of HTLCs flipped, balances swapped, its keys and point).

Signatures handled here are script signatures: DER plus the sighash-type byte.
The 64-byte compact form of the wire messages is converted elsewhere.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from base_chain.crypto import PrivateKey, PublicKey
from base_chain.sighash import SIGHASH_ALL, SIGHASH_ANYONECANPAY, SIGHASH_SINGLE, bip143_sighash
from base_chain.templates import p2wsh
from base_chain.tx import OutPoint, Transaction, TxIn, TxOut

from . import scripts
from .keys import CommitmentKeys

__all__ = [
    "COMMITMENT_BASE_WEIGHT",
    "ANCHOR_COMMITMENT_BASE_WEIGHT",
    "HTLC_OUTPUT_WEIGHT",
    "HTLC_TIMEOUT_WEIGHT",
    "HTLC_SUCCESS_WEIGHT",
    "ANCHOR_OUTPUT_SAT",
    "ChannelType",
    "HtlcDirection",
    "CommitmentHtlc",
    "CommitmentSpec",
    "CommitmentParams",
    "HtlcOutput",
    "CommitmentTx",
    "FundingInput",
    "FundingTx",
    "funding_script_pubkey",
    "build_funding_tx",
    "commitment_number_obscure_factor",
    "obscured_commitment_number",
    "commitment_locktime_and_sequence",
    "commitment_number_from_tx",
    "commitment_weight",
    "commitment_fee_sat",
    "htlc_timeout_fee_sat",
    "htlc_success_fee_sat",
    "htlc_is_trimmed",
    "build_commitment_tx",
    "commitment_sighash",
    "sign_commitment",
    "finalize_commitment",
    "build_htlc_tx",
    "build_htlc_txs",
    "remote_htlc_sighash_type",
    "htlc_sighash",
    "sign_htlc_tx",
    "finalize_htlc_tx",
]

#: Expected weights (BOLT 3 "Fee Calculation").
COMMITMENT_BASE_WEIGHT = 724
ANCHOR_COMMITMENT_BASE_WEIGHT = 1124
HTLC_OUTPUT_WEIGHT = 172
HTLC_TIMEOUT_WEIGHT = 663
HTLC_SUCCESS_WEIGHT = 703
ANCHOR_OUTPUT_SAT = scripts.ANCHOR_OUTPUT_SAT

_MAX_COMMITMENT_NUMBER = (1 << 48) - 1


class ChannelType(enum.Enum):
    """The commitment formats Canal builds. Both have ``option_static_remotekey``."""

    STATIC_REMOTEKEY = "static_remotekey"
    #: ``option_anchors`` (zero-fee HTLC transactions): anchor outputs, 1-CSV on
    #: to_remote and HTLC paths, HTLC transactions without fee signed by the
    #: remote node with SIGHASH_SINGLE|SIGHASH_ANYONECANPAY.
    ANCHORS = "anchors_zero_fee_htlc_tx"

    @property
    def anchors(self) -> bool:
        return self is ChannelType.ANCHORS


class HtlcDirection(enum.Enum):
    """Seen from the commitment owner: OFFERED = local->remote, RECEIVED = remote->local."""

    OFFERED = "offered"
    RECEIVED = "received"


@dataclass(frozen=True, slots=True)
class CommitmentHtlc:
    direction: HtlcDirection
    amount_msat: int
    payment_hash: bytes
    cltv_expiry: int

    def __post_init__(self) -> None:
        if self.amount_msat < 0:
            raise ValueError("HTLC amount_msat must not be negative")
        if len(self.payment_hash) != 32:
            raise ValueError("payment_hash must be 32 bytes")
        if not 0 <= self.cltv_expiry <= 0xFFFFFFFF:
            raise ValueError("cltv_expiry must fit in 32 bits")

    @property
    def offered(self) -> bool:
        return self.direction is HtlcDirection.OFFERED


@dataclass(frozen=True, slots=True)
class CommitmentSpec:
    """The state one commitment transaction commits to, seen from its owner."""

    to_local_msat: int
    to_remote_msat: int
    htlcs: tuple[CommitmentHtlc, ...]
    feerate_per_kw: int
    channel_type: ChannelType = ChannelType.STATIC_REMOTEKEY

    def __post_init__(self) -> None:
        if self.to_local_msat < 0 or self.to_remote_msat < 0:
            raise ValueError("balances must not be negative")
        if self.feerate_per_kw < 0:
            raise ValueError("feerate_per_kw must not be negative")


@dataclass(frozen=True, slots=True)
class CommitmentParams:
    """What stays fixed across one owner's commitment transactions.

    `to_self_delay` delays the owner's outputs (it is the value the *other* node
    asked for); `dust_limit_sat` is the owner's ``dust_limit_satoshis``;
    `obscure_factor` is :func:`commitment_number_obscure_factor` of the channel.
    """

    funding_outpoint: OutPoint
    funding_sat: int
    local_funding_pubkey: PublicKey
    remote_funding_pubkey: PublicKey
    to_self_delay: int
    dust_limit_sat: int
    local_is_opener: bool
    obscure_factor: int

    @property
    def funding_script(self) -> bytes:
        return scripts.funding_script(self.local_funding_pubkey.to_bytes(), self.remote_funding_pubkey.to_bytes())


@dataclass(frozen=True, slots=True)
class HtlcOutput:
    """An untrimmed HTLC and where it is in the commitment transaction."""

    htlc: CommitmentHtlc
    htlc_index: int  # position in CommitmentSpec.htlcs
    output_index: int
    amount_sat: int
    witness_script: bytes


@dataclass(frozen=True, slots=True)
class CommitmentTx:
    """An unsigned commitment transaction and what is needed to sign and spend it."""

    tx: Transaction
    commitment_number: int
    spec: CommitmentSpec
    params: CommitmentParams
    keys: CommitmentKeys
    #: HTLC outputs in output order: the order of ``commitment_signed.htlc_signatures``.
    htlc_outputs: tuple[HtlcOutput, ...]
    to_local_index: int | None
    to_remote_index: int | None
    to_local_witness_script: bytes
    base_fee_sat: int

    @property
    def fee_sat(self) -> int:
        """The actual fee: the base fee plus trimmed amounts (and anchors that were not added)."""
        return self.params.funding_sat - sum(o.amount_sat for o in self.tx.outputs)

    @property
    def txid(self) -> bytes:
        return self.tx.txid


# --- funding -------------------------------------------------------------------------


def funding_script_pubkey(pubkey_a: PublicKey, pubkey_b: PublicKey) -> bytes:
    """P2WSH of the 2-of-2 funding script."""
    return p2wsh(scripts.funding_script(pubkey_a.to_bytes(), pubkey_b.to_bytes()))


@dataclass(frozen=True, slots=True)
class FundingInput:
    """A coin the funding transaction spends, with the size its signature data will have.

    `script_sig_size` is the length of the final scriptSig (107 for P2PKH with a
    72-byte signature, 0 for segwit); `witness_size` is the serialized witness
    of the input including its item count (e.g. 108 for P2WPKH), 0 for none.
    """

    prevout: OutPoint
    amount_sat: int
    script_sig_size: int = 0
    witness_size: int = 0
    sequence: int = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class FundingTx:
    tx: Transaction  # unsigned: the caller's wallet signs the inputs
    funding_output_index: int
    fee_sat: int
    change_sat: int  # 0 when the change was dust and left out


def build_funding_tx(
    inputs: Sequence[FundingInput],
    funding_sat: int,
    local_funding_pubkey: PublicKey,
    remote_funding_pubkey: PublicKey,
    change_script_pubkey: bytes,
    feerate_per_kw: int,
    *,
    dust_limit_sat: int = 546,
    locktime: int = 0,
) -> FundingTx:
    """A version-2 funding transaction paying `funding_sat` to the 2-of-2, with change.

    The fee is `feerate_per_kw` times the weight the transaction will have once
    signed (from the inputs' declared sizes), rounded down. Inputs and outputs
    are in BIP69 order. Change below `dust_limit_sat` is left to the fee.
    """
    if not inputs:
        raise ValueError("a funding transaction needs at least one input")
    if funding_sat <= 0:
        raise ValueError("funding_sat must be positive")
    ordered = sorted(inputs, key=lambda i: (i.prevout.txid[::-1], i.prevout.index))
    funding_out = TxOut(funding_sat, funding_script_pubkey(local_funding_pubkey, remote_funding_pubkey))
    total_in = sum(i.amount_sat for i in ordered)

    def assemble(with_change: int | None) -> Transaction:
        outs = [funding_out]
        if with_change is not None:
            outs.append(TxOut(with_change, change_script_pubkey))
        outs.sort(key=lambda o: (o.amount_sat, o.script_pubkey))
        return Transaction(2, [TxIn(i.prevout, b"", i.sequence) for i in ordered], outs, locktime)

    def fee_for(tx: Transaction) -> int:
        base = len(tx.to_bytes(include_witness=False))
        base += sum(_compact_size_len(i.script_sig_size) - 1 + i.script_sig_size for i in ordered)
        weight = 4 * base
        if any(i.witness_size for i in ordered):
            weight += 2 + sum(i.witness_size or 1 for i in ordered)
        return feerate_per_kw * weight // 1000

    fee = fee_for(assemble(0))
    change = total_in - funding_sat - fee
    if change >= dust_limit_sat:
        tx = assemble(change)
    else:
        fee = fee_for(assemble(None))
        if total_in - funding_sat < fee:
            raise ValueError(f"inputs of {total_in} sat cannot pay {funding_sat} sat plus a fee of {fee} sat")
        change = 0
        tx = assemble(None)
        fee = total_in - funding_sat
    index = next(i for i, o in enumerate(tx.outputs) if o is funding_out)
    return FundingTx(tx, index, fee, change)


def _compact_size_len(n: int) -> int:
    return 1 if n < 0xFD else 3 if n <= 0xFFFF else 5


# --- commitment number ------------------------------------------------------------------


def commitment_number_obscure_factor(
    opener_payment_basepoint: PublicKey, accepter_payment_basepoint: PublicKey
) -> int:
    """The lower 48 bits of ``SHA256(opener payment_basepoint || accepter payment_basepoint)``."""
    digest = hashlib.sha256(opener_payment_basepoint.to_bytes() + accepter_payment_basepoint.to_bytes()).digest()
    return int.from_bytes(digest[-6:], "big")


def obscured_commitment_number(commitment_number: int, obscure_factor: int) -> int:
    if not 0 <= commitment_number <= _MAX_COMMITMENT_NUMBER:
        raise ValueError("commitment number outside 0..2^48-1")
    return commitment_number ^ obscure_factor


def commitment_locktime_and_sequence(commitment_number: int, obscure_factor: int) -> tuple[int, int]:
    """(locktime, input sequence): 0x20 || lower 24 bits, 0x80 || upper 24 bits of the obscured number."""
    obscured = obscured_commitment_number(commitment_number, obscure_factor)
    return 0x20000000 | (obscured & 0xFFFFFF), 0x80000000 | (obscured >> 24)


def commitment_number_from_tx(tx: Transaction, obscure_factor: int) -> int | None:
    """The commitment number a transaction spending the funding output encodes, or None if it is not one."""
    if len(tx.inputs) != 1 or tx.locktime >> 24 != 0x20 or tx.inputs[0].sequence >> 24 != 0x80:
        return None
    obscured = ((tx.inputs[0].sequence & 0xFFFFFF) << 24) | (tx.locktime & 0xFFFFFF)
    return obscured ^ obscure_factor


# --- fees and trimming --------------------------------------------------------------------


def commitment_weight(num_untrimmed_htlcs: int, channel_type: ChannelType) -> int:
    base = ANCHOR_COMMITMENT_BASE_WEIGHT if channel_type.anchors else COMMITMENT_BASE_WEIGHT
    return base + HTLC_OUTPUT_WEIGHT * num_untrimmed_htlcs


def commitment_fee_sat(feerate_per_kw: int, num_untrimmed_htlcs: int, channel_type: ChannelType) -> int:
    """The base commitment fee, paid by the opener (anchors not included)."""
    return feerate_per_kw * commitment_weight(num_untrimmed_htlcs, channel_type) // 1000


def htlc_timeout_fee_sat(feerate_per_kw: int, channel_type: ChannelType) -> int:
    return 0 if channel_type.anchors else feerate_per_kw * HTLC_TIMEOUT_WEIGHT // 1000


def htlc_success_fee_sat(feerate_per_kw: int, channel_type: ChannelType) -> int:
    return 0 if channel_type.anchors else feerate_per_kw * HTLC_SUCCESS_WEIGHT // 1000


def _second_stage_fee_sat(htlc: CommitmentHtlc, feerate_per_kw: int, channel_type: ChannelType) -> int:
    if htlc.offered:
        return htlc_timeout_fee_sat(feerate_per_kw, channel_type)
    return htlc_success_fee_sat(feerate_per_kw, channel_type)


def htlc_is_trimmed(
    htlc: CommitmentHtlc, feerate_per_kw: int, dust_limit_sat: int, channel_type: ChannelType
) -> bool:
    """True if the HTLC amount minus its second-stage fee is below the owner's dust limit."""
    return htlc.amount_msat // 1000 < dust_limit_sat + _second_stage_fee_sat(htlc, feerate_per_kw, channel_type)


# --- commitment transaction -----------------------------------------------------------------


def _htlc_script(htlc: CommitmentHtlc, keys: CommitmentKeys, anchors: bool) -> bytes:
    revocation = keys.revocation_pubkey.to_bytes()
    local_htlc = keys.local_htlc_pubkey.to_bytes()
    remote_htlc = keys.remote_htlc_pubkey.to_bytes()
    if htlc.offered:
        return scripts.offered_htlc_script(revocation, local_htlc, remote_htlc, htlc.payment_hash, anchors)
    return scripts.received_htlc_script(
        revocation, local_htlc, remote_htlc, htlc.payment_hash, htlc.cltv_expiry, anchors
    )


def build_commitment_tx(
    spec: CommitmentSpec, params: CommitmentParams, keys: CommitmentKeys, commitment_number: int
) -> CommitmentTx:
    """The unsigned commitment transaction, following BOLT 3 "Commitment Transaction Construction".

    Trims HTLCs below the dust limit (second-stage fee counted), takes the base
    fee (and 2 x 330 sat for anchors) from the opener's balance, leaves out
    ``to_local`` / ``to_remote`` below the dust limit, adds each anchor only when
    its side has an output or any HTLC is untrimmed, and sorts the outputs by
    amount, script_pubkey and, for HTLCs, cltv_expiry.
    """
    channel_type = spec.channel_type
    anchors = channel_type.anchors
    committed_msat = spec.to_local_msat + spec.to_remote_msat + sum(h.amount_msat for h in spec.htlcs)
    if committed_msat != params.funding_sat * 1000:
        raise ValueError(
            f"balances and HTLCs add up to {committed_msat} msat, the channel holds {params.funding_sat * 1000} msat"
        )
    dust_limit = params.dust_limit_sat
    untrimmed = [
        (i, h)
        for i, h in enumerate(spec.htlcs)
        if not htlc_is_trimmed(h, spec.feerate_per_kw, dust_limit, channel_type)
    ]
    base_fee = commitment_fee_sat(spec.feerate_per_kw, len(untrimmed), channel_type)
    opener_cost = base_fee + (2 * ANCHOR_OUTPUT_SAT if anchors else 0)
    to_local_sat = spec.to_local_msat // 1000
    to_remote_sat = spec.to_remote_msat // 1000
    if params.local_is_opener:
        to_local_sat = max(0, to_local_sat - opener_cost)
    else:
        to_remote_sat = max(0, to_remote_sat - opener_cost)

    # (txout, cltv_expiry tiebreak, what it is); "what" is an index into `untrimmed` or a tag.
    entries: list[tuple[TxOut, int, int | str]] = []
    htlc_scripts = [_htlc_script(htlc, keys, anchors) for _, htlc in untrimmed]
    for n, (_, htlc) in enumerate(untrimmed):
        entries.append((TxOut(htlc.amount_msat // 1000, p2wsh(htlc_scripts[n])), htlc.cltv_expiry, n))
    to_local_script = scripts.to_local_script(
        keys.revocation_pubkey.to_bytes(), params.to_self_delay, keys.local_delayed_pubkey.to_bytes()
    )
    has_to_local = to_local_sat >= dust_limit
    has_to_remote = to_remote_sat >= dust_limit
    if has_to_local:
        entries.append((TxOut(to_local_sat, p2wsh(to_local_script)), 0, "to_local"))
    if has_to_remote:
        remote_spk = scripts.to_remote_script_pubkey(keys.remote_pubkey.to_bytes(), anchors)
        entries.append((TxOut(to_remote_sat, remote_spk), 0, "to_remote"))
    if anchors:
        if has_to_local or untrimmed:
            spk = p2wsh(scripts.anchor_script(params.local_funding_pubkey.to_bytes()))
            entries.append((TxOut(ANCHOR_OUTPUT_SAT, spk), 0, "local_anchor"))
        if has_to_remote or untrimmed:
            spk = p2wsh(scripts.anchor_script(params.remote_funding_pubkey.to_bytes()))
            entries.append((TxOut(ANCHOR_OUTPUT_SAT, spk), 0, "remote_anchor"))
    entries.sort(key=lambda e: (e[0].amount_sat, e[0].script_pubkey, e[1]))

    locktime, sequence = commitment_locktime_and_sequence(commitment_number, params.obscure_factor)
    tx = Transaction(2, [TxIn(params.funding_outpoint, b"", sequence)], [e[0] for e in entries], locktime)

    htlc_outputs: list[HtlcOutput] = []
    to_local_index = to_remote_index = None
    for output_index, (txout, _, what) in enumerate(entries):
        if isinstance(what, int):
            spec_index, htlc = untrimmed[what]
            htlc_outputs.append(
                HtlcOutput(htlc, spec_index, output_index, txout.amount_sat, htlc_scripts[what])
            )
        elif what == "to_local":
            to_local_index = output_index
        elif what == "to_remote":
            to_remote_index = output_index
    return CommitmentTx(
        tx=tx,
        commitment_number=commitment_number,
        spec=spec,
        params=params,
        keys=keys,
        htlc_outputs=tuple(htlc_outputs),
        to_local_index=to_local_index,
        to_remote_index=to_remote_index,
        to_local_witness_script=to_local_script,
        base_fee_sat=base_fee,
    )


def commitment_sighash(commitment: CommitmentTx) -> bytes:
    """The SIGHASH_ALL digest both funding keys sign."""
    params = commitment.params
    return bip143_sighash(params.funding_script, commitment.tx, 0, SIGHASH_ALL, params.funding_sat)


def sign_commitment(commitment: CommitmentTx, funding_privkey: PrivateKey) -> bytes:
    """A funding-key signature of the commitment: DER || SIGHASH_ALL."""
    return funding_privkey.sign_der(commitment_sighash(commitment)) + bytes([SIGHASH_ALL])


def finalize_commitment(commitment: CommitmentTx, local_sig: bytes, remote_sig: bytes) -> Transaction:
    """A copy of the commitment with its witness ``0 <sig1> <sig2> <funding_script>`` (funding-key order)."""
    params = commitment.params
    tx = commitment.tx.copy()
    tx.inputs[0].witness = scripts.funding_witness(
        local_sig, remote_sig, params.local_funding_pubkey.to_bytes(), params.remote_funding_pubkey.to_bytes()
    )
    return tx


# --- HTLC-timeout and HTLC-success transactions ----------------------------------------------


def build_htlc_tx(commitment: CommitmentTx, htlc_output: HtlcOutput) -> Transaction:
    """The unsigned HTLC-timeout (offered HTLC) or HTLC-success (received HTLC) transaction."""
    spec, params, keys = commitment.spec, commitment.params, commitment.keys
    htlc = htlc_output.htlc
    anchors = spec.channel_type.anchors
    fee = _second_stage_fee_sat(htlc, spec.feerate_per_kw, spec.channel_type)
    script = scripts.htlc_tx_output_script(
        keys.revocation_pubkey.to_bytes(), params.to_self_delay, keys.local_delayed_pubkey.to_bytes()
    )
    txin = TxIn(OutPoint(commitment.tx.txid, htlc_output.output_index), b"", 1 if anchors else 0)
    locktime = htlc.cltv_expiry if htlc.offered else 0
    return Transaction(2, [txin], [TxOut(htlc_output.amount_sat - fee, p2wsh(script))], locktime)


def build_htlc_txs(commitment: CommitmentTx) -> list[Transaction]:
    """Every HTLC transaction of the commitment, in output order (the order of ``htlc_signatures``)."""
    return [build_htlc_tx(commitment, h) for h in commitment.htlc_outputs]


def remote_htlc_sighash_type(channel_type: ChannelType) -> int:
    """The sighash type of the remote node's HTLC signatures; the owner always signs SIGHASH_ALL."""
    return SIGHASH_SINGLE | SIGHASH_ANYONECANPAY if channel_type.anchors else SIGHASH_ALL


def htlc_sighash(htlc_tx: Transaction, htlc_output: HtlcOutput, hash_type: int) -> bytes:
    return bip143_sighash(htlc_output.witness_script, htlc_tx, 0, hash_type, htlc_output.amount_sat)


def sign_htlc_tx(
    htlc_tx: Transaction, htlc_output: HtlcOutput, htlc_privkey: PrivateKey, hash_type: int = SIGHASH_ALL
) -> bytes:
    """An HTLC-key signature of an HTLC transaction: DER || hash_type.

    The owner signs with its ``local_htlcpubkey`` secret and SIGHASH_ALL; the remote
    node with its ``remote_htlcpubkey`` secret and :func:`remote_htlc_sighash_type`.
    """
    return htlc_privkey.sign_der(htlc_sighash(htlc_tx, htlc_output, hash_type)) + bytes([hash_type])


def finalize_htlc_tx(
    htlc_tx: Transaction,
    htlc_output: HtlcOutput,
    remote_sig: bytes,
    local_sig: bytes,
    payment_preimage: bytes | None = None,
) -> Transaction:
    """A copy of the HTLC transaction with its witness (the preimage is required for HTLC-success)."""
    tx = htlc_tx.copy()
    if htlc_output.htlc.offered:
        if payment_preimage is not None:
            raise ValueError("an HTLC-timeout transaction takes no preimage")
        tx.inputs[0].witness = scripts.htlc_timeout_witness(remote_sig, local_sig, htlc_output.witness_script)
    else:
        if payment_preimage is None:
            raise ValueError("an HTLC-success transaction needs the payment preimage")
        if hashlib.sha256(payment_preimage).digest() != htlc_output.htlc.payment_hash:
            raise ValueError("the preimage does not match the HTLC's payment_hash")
        tx.inputs[0].witness = scripts.htlc_success_witness(
            remote_sig, local_sig, payment_preimage, htlc_output.witness_script
        )
    return tx
