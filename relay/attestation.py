"""Peg attestations: what a notary signs for a release, and how M signatures become a witness.

The binding
-----------
A deposit on the source chain is released on the destination chain by a
*release transaction* that spends the committee's reserve there. Its outputs are
fixed by the claim and nothing else (:func:`build_release`)::

    0: amount - fee            -> the destination script
    1: inputs - amount         -> back to the committee's reserve script (omitted when 0)
    2: 0 sat, OP_RETURN <"CPG1" || claim_id || deposit txid || deposit index>

``claim_id`` is ``tagged_hash("canal/peg-claim/v1", ...)`` over the source chain
(its genesis hash), the deposit's txid and output index, the amount, the
destination chain, the destination script, the fee and the committee epoch (the
committee whose deposit address was paid: it alone may release the deposit, from
its own reserve, so two committees can never each release it). The miner fee is
``fee`` exactly, so the reserve on the destination chain shrinks by the
deposited amount, no more.

What the notaries put on chain are ordinary BIP143 SIGHASH_ALL signatures of
the reserve inputs, checked by the committee's M-of-N script. Each signature
covers every output, hence the OP_RETURN, hence the claim: the on-chain
signature itself cannot be moved to another deposit, amount, destination, fee or
committee. The committee's scripts carry the chain's genesis hash (see
:mod:`relay.committee`), so it cannot be moved to the other chain either; and
the claim_id in the OP_RETURN lets anyone audit a release against its deposit.

Next to the input signatures each notary signs an :class:`Attestation` off
chain: ``tagged_hash("canal/peg-attestation/v1", claim_id || committee_id ||
release_txid || the per-input BIP143 sighashes)``. The claim cannot commit to
the sighashes (they hash the OP_RETURN that holds the claim_id), so the
attestation is the outer layer that ties both together. It gives the assembler a
precise reason when a notary attests something else, and it is evidence, signed
by the notary's key, of exactly what it vouched for (for audits and any future
slashing).

Assembly (:func:`assemble_release`) checks everything again, keeps the first M
valid notaries in key order (the order CHECKMULTISIG needs), and ignores -- with
a reason -- strangers, duplicates, signatures of another claim and forgeries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Final, Protocol

from base_chain.checks import MAX_MONEY
from base_chain.crypto import PrivateKey, PublicKey, is_low_s, is_valid_signature_encoding, parse_der_lax
from base_chain.hashes import tagged_hash
from base_chain.policy import dust_threshold
from base_chain.script import STANDARD_FLAGS, ScriptError, verify_script
from base_chain.serialize import compact_size, i64, ser_bytes, u32
from base_chain.sighash import SIGHASH_ALL, Bip143Cache, bip143_sighash
from base_chain.templates import push_data
from base_chain.tx import SEQUENCE_FINAL, OutPoint, Transaction, TxIn, TxOut

from .committee import Committee, ReserveCoin, chain_id

__all__ = [
    "RELEASE_MARKER",
    "ReleaseError",
    "PegClaim",
    "Attestation",
    "NotarySignature",
    "SweepSignature",
    "IgnoredSignature",
    "Assembly",
    "AssemblyError",
    "InsufficientSignatures",
    "binding_script",
    "claim_of_release",
    "release_binding",
    "build_release",
    "sighashes",
    "sign_inputs",
    "check_input_signature",
    "assemble_release",
    "assemble_sweep",
]

RELEASE_MARKER: Final = b"CPG1"
"""Prefix of the OP_RETURN data of every release: 4 + 32 (claim_id) + 36 (deposit outpoint) = 72 bytes."""

OP_RETURN: Final = 0x6A
_TAG_CLAIM: Final = "canal/peg-claim/v1"
_TAG_ATTESTATION: Final = "canal/peg-attestation/v1"


class ReleaseError(ValueError):
    """A release cannot be built as asked; ``reason`` is a short code, the message says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# --- the claim --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PegClaim:
    """One deposit on ``source_chain`` to be paid out on ``destination_chain``."""

    source_chain: str
    deposit: OutPoint
    amount_sat: int
    """The deposit output's value."""
    destination_chain: str
    destination_script: bytes
    fee_sat: int
    """The published fee: the release's miner fee, paid out of the deposit."""
    epoch: int
    """The committee whose deposit script the deposit pays: the only one that may release it,
    from its own reserve on the destination chain."""

    @property
    def payout_sat(self) -> int:
        return self.amount_sat - self.fee_sat

    @property
    def claim_id(self) -> bytes:
        data = b"".join(
            (
                chain_id(self.source_chain),
                self.deposit.txid,
                u32(self.deposit.index),
                i64(self.amount_sat),
                chain_id(self.destination_chain),
                ser_bytes(self.destination_script),
                i64(self.fee_sat),
                u32(self.epoch),
            )
        )
        return tagged_hash(_TAG_CLAIM, data)

    @property
    def redeem_key(self) -> tuple[str, OutPoint]:
        """What the redeemed set is keyed by: a deposit is released once, whatever else differs.

        The chain is part of the key: identical outpoints can exist on both chains.
        """
        return (self.source_chain, self.deposit)

    def differences(self, other: PegClaim) -> list[str]:
        """Human-readable field differences (for refusals)."""
        out = []
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if a != b:
                show = (lambda v: v.hex()) if isinstance(a, bytes) else str
                out.append(f"{f.name} {show(a)} != {show(b)}")
        return out


def binding_script(claim: PegClaim) -> bytes:
    """OP_RETURN <RELEASE_MARKER || claim_id || deposit outpoint>: binds a release to its claim.

    The deposit outpoint is there in the clear so that anyone watching the
    committee's reserve -- a notary rebuilding its redeemed set, an auditor --
    can tell which deposit a release paid without any off-chain data.
    """
    return bytes([OP_RETURN]) + push_data(RELEASE_MARKER + claim.claim_id + claim.deposit.to_bytes())


_BINDING_LEN: Final = len(RELEASE_MARKER) + 32 + 36


def release_binding(tx: Transaction) -> tuple[bytes, OutPoint] | None:
    """(claim_id, deposit outpoint) of the binding a transaction carries, or None."""
    for out in tx.outputs:
        s = out.script_pubkey
        if len(s) == 2 + _BINDING_LEN and s[0] == OP_RETURN and s[1] == _BINDING_LEN:
            data = s[2:]
            if data.startswith(RELEASE_MARKER):
                body = data[len(RELEASE_MARKER) :]
                return body[:32], OutPoint(body[32:64], int.from_bytes(body[64:68], "little"))
    return None


def claim_of_release(tx: Transaction) -> bytes | None:
    """The claim_id a release transaction commits to, or None if it carries no binding."""
    binding = release_binding(tx)
    return None if binding is None else binding[0]


def build_release(committee: Committee, claim: PegClaim, coins: Sequence[ReserveCoin]) -> Transaction:
    """The one release transaction every notary would build for ``claim`` from ``coins``.

    ``coins`` are reserve coins of ``committee`` on the destination chain (who
    picks them is up to the coordinator; each notary checks them against its own
    view). Inputs go in (txid, index) order with final sequences; version 2,
    locktime 0; outputs as the module docstring shows. Raises ReleaseError.
    """
    dest = claim.destination_chain
    if claim.epoch != committee.epoch:
        raise ReleaseError("peg-wrong-committee", f"claim is for epoch {claim.epoch}, committee is {committee.epoch}")
    if claim.source_chain == dest:
        raise ReleaseError("peg-same-chain", f"source and destination are both {dest}")
    if not 0 < claim.amount_sat <= MAX_MONEY or not 0 <= claim.fee_sat <= MAX_MONEY:
        raise ReleaseError("peg-amount-out-of-range", f"amount {claim.amount_sat}, fee {claim.fee_sat}")
    payout = TxOut(claim.payout_sat, claim.destination_script)
    dust = dust_threshold(payout)
    if claim.payout_sat < max(dust, 1):
        raise ReleaseError(
            "peg-amount-too-small",
            f"amount {claim.amount_sat} sat < fee {claim.fee_sat} + dust {dust} on {dest}",
        )
    if not coins:
        raise ReleaseError("peg-reserve-missing", "a release needs at least one reserve input")
    ordered = sorted(coins, key=lambda c: (c.outpoint.txid, c.outpoint.index))
    if len({c.outpoint for c in ordered}) != len(ordered):
        raise ReleaseError("peg-release-duplicate-input", "a reserve coin is listed twice")
    reserve_ws = committee.reserve_witness_script(dest)
    reserve_spk = committee.reserve_script_pubkey(dest)
    for c in ordered:
        if c.txout.script_pubkey != reserve_spk or c.witness_script != reserve_ws:
            raise ReleaseError(
                "peg-reserve-wrong-script",
                f"{c.outpoint} is not in committee epoch {committee.epoch}'s reserve on {dest}",
            )
    total = sum(c.txout.amount_sat for c in ordered)
    if total < claim.amount_sat:
        raise ReleaseError("peg-reserve-insufficient", f"reserve inputs hold {total} sat < amount {claim.amount_sat}")
    change = total - claim.amount_sat
    outputs = [payout]
    if change:
        change_out = TxOut(change, reserve_spk)
        if change < dust_threshold(change_out):
            raise ReleaseError("peg-reserve-change-dust", f"change {change} sat is dust; pick other reserve coins")
        outputs.append(change_out)
    outputs.append(TxOut(0, binding_script(claim)))
    return Transaction(
        version=2,
        inputs=[TxIn(c.outpoint, b"", SEQUENCE_FINAL) for c in ordered],
        outputs=outputs,
        locktime=0,
    )


# --- signing ----------------------------------------------------------------------------------


def sighashes(tx: Transaction, witness_scripts: Sequence[bytes], amounts: Sequence[int]) -> tuple[bytes, ...]:
    """The BIP143 SIGHASH_ALL digest of every input of ``tx``."""
    cache = Bip143Cache(tx)
    return tuple(
        bip143_sighash(ws, tx, i, SIGHASH_ALL, amount, cache)
        for i, (ws, amount) in enumerate(zip(witness_scripts, amounts, strict=True))
    )


def sign_inputs(key: PrivateKey, digests: Sequence[bytes]) -> tuple[bytes, ...]:
    """DER + SIGHASH_ALL signatures (RFC 6979, low s) of each digest."""
    return tuple(key.sign_der(d) + bytes([SIGHASH_ALL]) for d in digests)


def check_input_signature(sig: bytes, pubkey: bytes, digest: bytes) -> str | None:
    """None if ``sig`` is a standard SIGHASH_ALL signature of ``digest`` by ``pubkey``, else why not."""
    if not sig or sig[-1] != SIGHASH_ALL:
        return "sighash type is not SIGHASH_ALL"
    if not is_valid_signature_encoding(sig):
        return "not strict DER"
    rs = parse_der_lax(sig[:-1])
    if rs is None or not is_low_s(rs[1]):
        return "high-s signature"
    try:
        ok = PublicKey.from_bytes(pubkey).verify_der(sig[:-1], digest)
    except ValueError:
        return "invalid public key"
    return None if ok else "does not verify"


@dataclass(frozen=True, slots=True)
class Attestation:
    """What a notary vouches for: this claim, paid by this committee, by exactly this release."""

    claim: PegClaim
    committee_id: bytes
    release_txid: bytes
    release_sighashes: tuple[bytes, ...]

    @property
    def digest(self) -> bytes:
        data = b"".join(
            (
                self.claim.claim_id,
                self.committee_id,
                self.release_txid,
                compact_size(len(self.release_sighashes)),
                *self.release_sighashes,
            )
        )
        return tagged_hash(_TAG_ATTESTATION, data)


@dataclass(frozen=True, slots=True)
class NotarySignature:
    """One notary's answer to a release request it approved."""

    notary_pubkey: bytes
    attestation: Attestation
    input_signatures: tuple[bytes, ...]
    """DER + SIGHASH_ALL, one per release input, in input order."""
    attestation_signature: bytes
    """DER signature of ``attestation.digest``."""


@dataclass(frozen=True, slots=True)
class SweepSignature:
    """One notary's signatures of a sweep (rotation) transaction."""

    notary_pubkey: bytes
    chain: str
    from_epoch: int
    to_epoch: int
    sweep_txid: bytes
    input_signatures: tuple[bytes, ...]


# --- assembly ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IgnoredSignature:
    notary_pubkey: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class Assembly:
    tx: Transaction
    """Fully signed; every input passes verify_script with STANDARD_FLAGS."""
    signers: tuple[bytes, ...]
    """The M public keys whose signatures are in the witnesses, in key order."""
    ignored: tuple[IgnoredSignature, ...]


class AssemblyError(ValueError):
    """The signatures cannot be assembled; ``reason`` is a short code."""

    def __init__(self, reason: str, detail: str, ignored: Sequence[IgnoredSignature] = ()) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.ignored = tuple(ignored)


class InsufficientSignatures(AssemblyError):
    """Fewer than M notaries gave valid signatures."""


class _Signed(Protocol):
    @property
    def notary_pubkey(self) -> bytes: ...
    @property
    def input_signatures(self) -> tuple[bytes, ...]: ...


def _check_member(committee: Committee, pk: bytes, accepted: dict[bytes, tuple[bytes, ...]]) -> str | None:
    if committee.index_of(pk) is None:
        return f"not a member of committee epoch {committee.epoch}"
    if pk in accepted:
        return "duplicate: this notary already signed"
    return None


def _check_inputs(sig: _Signed, digests: Sequence[bytes]) -> str | None:
    if len(sig.input_signatures) != len(digests):
        return f"{len(sig.input_signatures)} input signatures for {len(digests)} inputs"
    for i, (s, d) in enumerate(zip(sig.input_signatures, digests, strict=True)):
        why = check_input_signature(s, sig.notary_pubkey, d)
        if why is not None:
            return f"input {i}: signature {why} against this transaction"
    return None


def _finish(
    committee: Committee,
    tx: Transaction,
    witness_scripts: Sequence[bytes],
    spent: Sequence[TxOut],
    accepted: dict[bytes, tuple[bytes, ...]],
    ignored: list[IgnoredSignature],
) -> Assembly:
    m = committee.threshold
    if len(accepted) < m:
        reasons = "; ".join(f"{x.notary_pubkey.hex()[:16]}: {x.reason}" for x in ignored) or "none offered"
        raise InsufficientSignatures(
            "peg-insufficient-signatures",
            f"{len(accepted)} valid of {m} needed (committee epoch {committee.epoch}); ignored: {reasons}",
            ignored,
        )
    signers = sorted(accepted, key=lambda pk: committee.pubkeys.index(pk))[:m]
    out = tx.copy()
    for i, txin in enumerate(out.inputs):
        txin.script_sig = b""
        txin.witness = [b""] + [accepted[pk][i] for pk in signers] + [witness_scripts[i]]
    cache = Bip143Cache(out)
    for i, (txin, prev) in enumerate(zip(out.inputs, spent, strict=True)):
        try:
            verify_script(b"", prev.script_pubkey, txin.witness, STANDARD_FLAGS, out, i, prev.amount_sat, cache)
        except ScriptError as e:  # every signature was checked: this is a bug, not bad input
            raise AssemblyError("peg-witness-invalid", f"input {i}: {e}", ignored) from e
    return Assembly(out, tuple(signers), tuple(ignored))


def assemble_release(
    committee: Committee,
    claim: PegClaim,
    release: Transaction,
    coins: Sequence[ReserveCoin],
    signatures: Iterable[NotarySignature],
    *,
    destination_height: int,
) -> Assembly:
    """Combine notary signatures into the signed release of ``claim``.

    ``coins`` are the reserve coins ``release`` spends (their amounts enter the
    sighashes). ``destination_height`` is the destination chain's tip: a key set
    that is expired (or not yet active) there cannot release. Raises
    AssemblyError when the release is not the claim's, InsufficientSignatures
    (listing each ignored signature's reason) when fewer than M are valid.
    """
    dest = claim.destination_chain
    status = committee.status(dest, destination_height)
    if not status.may_sign:
        raise AssemblyError(
            "peg-committee-expired" if status.name == "EXPIRED" else "peg-committee-inactive",
            f"committee epoch {committee.epoch} is {status.value} on {dest} at height {destination_height}",
        )
    try:
        expected_tx = build_release(committee, claim, coins)
    except ReleaseError as e:
        raise AssemblyError(e.reason, e.detail) from e
    if release.to_bytes() != expected_tx.to_bytes():
        raise AssemblyError("peg-release-mismatch", "the release is not the one the claim and coins determine")
    by_outpoint = {c.outpoint: c for c in coins}
    ordered = [by_outpoint[txin.prevout] for txin in release.inputs]
    scripts = [c.witness_script for c in ordered]
    digests = sighashes(release, scripts, [c.txout.amount_sat for c in ordered])
    expected = Attestation(claim, committee.committee_id, release.txid, digests)
    accepted: dict[bytes, tuple[bytes, ...]] = {}
    ignored: list[IgnoredSignature] = []
    for sig in signatures:
        why = _check_member(committee, sig.notary_pubkey, accepted)
        if why is None and sig.attestation != expected:
            diffs = expected.claim.differences(sig.attestation.claim)
            if diffs:
                why = "attests a different claim: " + ", ".join(diffs)
            elif sig.attestation.committee_id != expected.committee_id:
                why = "attests for a different committee"
            else:
                why = "attests a different release transaction"
        if why is None:
            try:
                ok = PublicKey.from_bytes(sig.notary_pubkey).verify_der(sig.attestation_signature, expected.digest)
            except ValueError:
                ok = False
            if not ok:
                why = "attestation signature does not verify"
        if why is None:
            why = _check_inputs(sig, digests)
        if why is None:
            accepted[sig.notary_pubkey] = sig.input_signatures
        else:
            ignored.append(IgnoredSignature(sig.notary_pubkey, why))
    return _finish(committee, release, scripts, [c.txout for c in ordered], accepted, ignored)


def assemble_sweep(
    old: Committee,
    sweep_tx: Transaction,
    coins: Sequence[ReserveCoin],
    signatures: Iterable[SweepSignature],
) -> Assembly:
    """Combine M of ``old``'s signatures into the signed sweep (rotation) transaction.

    ``coins`` are the coins ``sweep_tx`` spends, with their witness scripts.
    """
    by_outpoint = {c.outpoint: c for c in coins}
    try:
        ordered = [by_outpoint[txin.prevout] for txin in sweep_tx.inputs]
    except KeyError as e:
        raise AssemblyError("peg-sweep-mismatch", f"no coin given for input {e.args[0]}") from e
    scripts = [c.witness_script for c in ordered]
    digests = sighashes(sweep_tx, scripts, [c.txout.amount_sat for c in ordered])
    txid = sweep_tx.txid
    accepted: dict[bytes, tuple[bytes, ...]] = {}
    ignored: list[IgnoredSignature] = []
    for sig in signatures:
        why = _check_member(old, sig.notary_pubkey, accepted)
        if why is None and (sig.sweep_txid != txid or sig.from_epoch != old.epoch):
            why = "signs a different sweep"
        if why is None:
            why = _check_inputs(sig, digests)
        if why is None:
            accepted[sig.notary_pubkey] = sig.input_signatures
        else:
            ignored.append(IgnoredSignature(sig.notary_pubkey, why))
    return _finish(old, sweep_tx, scripts, [c.txout for c in ordered], accepted, ignored)
