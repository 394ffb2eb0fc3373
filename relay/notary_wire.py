"""The notary's gRPC messages (proto/notary.proto) to and from the core's dataclasses.

Both sides use it: ``canal notaryd`` (requests in, signatures out) and the peg
coordinator (requests out, signatures in). A malformed message raises
:class:`WireError` with the field at fault; the daemon answers it with
INVALID_ARGUMENT.
"""

from __future__ import annotations

from collections.abc import Sequence

from base_chain.serialize import DeserializationError
from base_chain.tx import OutPoint, Transaction
from proto import notary_pb2 as npb

from .attestation import Attestation, NotarySignature, PegClaim, SweepSignature
from .committee import SweepRequest
from .notary import Refusal, ReleaseRequest

__all__ = [
    "TxWithProof",
    "WireError",
    "parse_txid",
    "refusal_to_pb",
    "request_from_pb",
    "request_to_pb",
    "signature_from_pb",
    "signature_to_pb",
    "sweep_request_from_pb",
    "sweep_request_to_pb",
    "sweep_signature_from_pb",
    "sweep_signature_to_pb",
]


class WireError(ValueError):
    """A message field that does not parse; the message names it."""


TxWithProof = tuple[Transaction, bytes]
"""A transaction and the merkle proof (Core's gettxoutproof bytes) of its inclusion."""


def parse_txid(s: str, what: str = "txid") -> bytes:
    """A display-order hex txid to internal order."""
    try:
        b = bytes.fromhex(s)
    except ValueError:
        raise WireError(f"{what} is not hex: {s!r}") from None
    if len(b) != 32:
        raise WireError(f"{what} must be 32 bytes, got {len(b)}")
    return b[::-1]


def _tx(hex_: str, what: str) -> Transaction:
    try:
        return Transaction.from_hex(hex_)
    except (ValueError, DeserializationError) as e:
        raise WireError(f"{what} does not parse: {e}") from None


def request_to_pb(request: ReleaseRequest, proofs: list[TxWithProof]) -> npb.SignReleaseRequest:
    return npb.SignReleaseRequest(
        source_chain=request.source_chain,
        deposit_txid=request.deposit.txid[::-1].hex(),
        deposit_vout=request.deposit.index,
        amount_sat=request.amount_sat,
        destination_chain=request.destination_chain,
        destination_address=request.destination_address,
        fee_sat=request.fee_sat,
        epoch=request.epoch,
        release_tx=request.release.hex(),
        proofs=[npb.TxProof(raw_tx=tx.hex(), proof=proof.hex()) for tx, proof in proofs],
    )


def _proofs_from_pb(ps: Sequence[npb.TxProof]) -> list[tuple[bytes, bytes]]:
    proofs = []
    for i, p in enumerate(ps):
        try:
            proofs.append((bytes.fromhex(p.raw_tx), bytes.fromhex(p.proof)))
        except ValueError:
            raise WireError(f"proofs[{i}] is not hex") from None
    return proofs


def request_from_pb(m: npb.SignReleaseRequest) -> tuple[ReleaseRequest, list[tuple[bytes, bytes]]]:
    """The request and its proofs as (raw transaction, proof) bytes (the SPV view checks them)."""
    proofs = _proofs_from_pb(m.proofs)
    request = ReleaseRequest(
        source_chain=m.source_chain,
        deposit=OutPoint(parse_txid(m.deposit_txid, "deposit_txid"), m.deposit_vout),
        amount_sat=m.amount_sat,
        destination_chain=m.destination_chain,
        destination_address=m.destination_address,
        fee_sat=m.fee_sat,
        epoch=m.epoch,
        release=_tx(m.release_tx, "release_tx"),
    )
    return request, proofs


def _claim_to_pb(c: PegClaim) -> npb.PegClaim:
    return npb.PegClaim(
        source_chain=c.source_chain,
        deposit_txid=c.deposit.txid[::-1].hex(),
        deposit_vout=c.deposit.index,
        amount_sat=c.amount_sat,
        destination_chain=c.destination_chain,
        destination_script=c.destination_script,
        fee_sat=c.fee_sat,
        epoch=c.epoch,
    )


def _claim_from_pb(m: npb.PegClaim) -> PegClaim:
    return PegClaim(
        m.source_chain,
        OutPoint(parse_txid(m.deposit_txid, "claim.deposit_txid"), m.deposit_vout),
        m.amount_sat,
        m.destination_chain,
        bytes(m.destination_script),
        m.fee_sat,
        m.epoch,
    )


def signature_to_pb(s: NotarySignature) -> npb.NotarySignature:
    a = s.attestation
    return npb.NotarySignature(
        notary_pubkey=s.notary_pubkey,
        attestation=npb.Attestation(
            claim=_claim_to_pb(a.claim),
            committee_id=a.committee_id,
            release_txid=a.release_txid[::-1].hex(),
            release_sighashes=list(a.release_sighashes),
        ),
        input_signatures=list(s.input_signatures),
        attestation_signature=s.attestation_signature,
    )


def signature_from_pb(m: npb.NotarySignature) -> NotarySignature:
    a = m.attestation
    return NotarySignature(
        bytes(m.notary_pubkey),
        Attestation(
            _claim_from_pb(a.claim),
            bytes(a.committee_id),
            parse_txid(a.release_txid, "attestation.release_txid"),
            tuple(bytes(h) for h in a.release_sighashes),
        ),
        tuple(bytes(x) for x in m.input_signatures),
        bytes(m.attestation_signature),
    )


def refusal_to_pb(r: Refusal) -> npb.Refusal:
    return npb.Refusal(reason=r.reason, detail=r.detail)


def sweep_request_to_pb(r: SweepRequest, proofs: list[TxWithProof]) -> npb.SignSweepRequest:
    return npb.SignSweepRequest(
        chain=r.chain, from_epoch=r.from_epoch, to_epoch=r.to_epoch, sweep_tx=r.tx.hex(),
        witness_scripts=list(r.witness_scripts),
        proofs=[npb.TxProof(raw_tx=tx.hex(), proof=proof.hex()) for tx, proof in proofs],
    )


def sweep_request_from_pb(m: npb.SignSweepRequest) -> tuple[SweepRequest, list[tuple[bytes, bytes]]]:
    request = SweepRequest(m.chain, m.from_epoch, m.to_epoch, _tx(m.sweep_tx, "sweep_tx"),
                           tuple(bytes(w) for w in m.witness_scripts))
    return request, _proofs_from_pb(m.proofs)


def sweep_signature_to_pb(s: SweepSignature) -> npb.SweepSignature:
    return npb.SweepSignature(
        notary_pubkey=s.notary_pubkey, chain=s.chain, from_epoch=s.from_epoch, to_epoch=s.to_epoch,
        sweep_txid=s.sweep_txid[::-1].hex(), input_signatures=list(s.input_signatures),
    )


def sweep_signature_from_pb(m: npb.SweepSignature) -> SweepSignature:
    return SweepSignature(bytes(m.notary_pubkey), m.chain, m.from_epoch, m.to_epoch,
                          parse_txid(m.sweep_txid, "sweep_txid"), tuple(bytes(x) for x in m.input_signatures))
