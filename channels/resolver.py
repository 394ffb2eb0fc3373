"""Spending a closed channel's outputs: justice for a revoked commitment, our delayed sweep.

Pure functions over the watcher data the channel core hands out
(`RevokedCommitment` records and `LocalCommitmentPublished`): they return fully
signed transactions paying to our wallet, or None when there is nothing (or
nothing above dust) to take.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from base_chain.crypto import PublicKey
from base_chain.tx import OutPoint, Transaction

from .effects import LocalCommitmentPublished
from .keys import ChannelSecrets, derive_privkey, derive_revocation_privkey
from .scripts import to_remote_script_pubkey
from .sweep import (
    SweepInput,
    build_sweep_tx,
    delayed_input,
    revoked_htlc_input,
    revoked_to_local_input,
    to_remote_input,
)

__all__ = ["justice_transaction", "delayed_sweep", "matching_revoked", "to_remote_sweep"]


def matching_revoked(records: Sequence[Mapping[str, Any]], commitment: Transaction) -> Mapping[str, Any] | None:
    """The stored revoked-commitment record (see `channels.manager`) whose txid is this transaction's."""
    txid = commitment.txid.hex()
    for r in records:
        if r.get("commitment_txid") == txid:
            return r
    return None


def justice_transaction(
    record: Mapping[str, Any],
    commitment: Transaction,
    secrets: ChannelSecrets,
    destination_script: bytes,
    feerate_per_kw: int,
    second_stage: Mapping[int, Transaction] | None = None,
) -> Transaction | None:
    """Take every output of a revoked commitment the cheater could claim: to_local and all HTLC outputs.

    `second_stage` maps a commitment output index to an HTLC transaction the cheater already
    confirmed for it: its output (the to_local-shaped script, same revocation key) is taken instead.
    """
    revocation_key = derive_revocation_privkey(
        secrets.revocation_basepoint_secret, bytes.fromhex(record["per_commitment_secret"])
    )
    txid = commitment.txid
    inputs: list[SweepInput] = []
    index = record.get("to_local_output_index")
    if index is not None:
        inputs.append(revoked_to_local_input(
            OutPoint(txid, index), commitment.outputs[index].amount_sat,
            bytes.fromhex(record["to_local_witness_script"]), revocation_key,
        ))
    for htlc in record.get("htlc_outputs", []):
        i = htlc["output_index"]
        stage = (second_stage or {}).get(i)
        if stage is not None:
            # A second-stage HTLC output has the to_local script (same keys, same delay).
            inputs.append(revoked_to_local_input(
                OutPoint(stage.txid, 0), stage.outputs[0].amount_sat, bytes.fromhex(record["to_local_witness_script"]),
                revocation_key,
            ))
            continue
        inputs.append(revoked_htlc_input(
            OutPoint(txid, i), commitment.outputs[i].amount_sat, bytes.fromhex(htlc["witness_script"]),
            revocation_key,
        ))
    if not inputs:
        return None
    return build_sweep_tx(inputs, destination_script, feerate_per_kw)


def delayed_sweep(
    published: LocalCommitmentPublished,
    secrets: ChannelSecrets,
    destination_script: bytes,
    feerate_per_kw: int,
) -> Transaction | None:
    """Sweep our to_local output of our own commitment (valid to_self_delay blocks after it confirms)."""
    index = published.to_local_output_index
    if index is None:
        return None
    point = PublicKey.from_bytes(published.per_commitment_point)
    key = derive_privkey(secrets.delayed_payment_basepoint_secret, point)
    commitment = published.commitment_tx
    sweep_input = delayed_input(
        OutPoint(commitment.txid, index), commitment.outputs[index].amount_sat,
        published.to_local_witness_script, key, published.to_self_delay,
    )
    return build_sweep_tx([sweep_input], destination_script, feerate_per_kw)


def to_remote_sweep(
    commitment: Transaction, secrets: ChannelSecrets, anchors: bool, destination_script: bytes, feerate_per_kw: int,
) -> Transaction | None:
    """Take our to_remote output of the peer's commitment (static_remotekey: our payment basepoint)."""
    key = secrets.payment_basepoint_secret
    script = to_remote_script_pubkey(key.public_key().to_bytes(), anchors)
    for index, out in enumerate(commitment.outputs):
        if out.script_pubkey == script:
            return build_sweep_tx([to_remote_input(OutPoint(commitment.txid, index), out.amount_sat, key, anchors)],
                                  destination_script, feerate_per_kw)
    return None
