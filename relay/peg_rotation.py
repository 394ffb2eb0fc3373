"""Committee rotation at process level: plan the next epoch, then sweep the old key set's coins to it.

Two steps, because the notaries' operators are in between:

1. :func:`plan_rotation` (``canal peg rotate``): the successor committee from the
   new notaries' keys, active from each chain's current height; the old one
   retires there and expires ``grace_blocks`` later (:func:`relay.committee.rotate`).
   The committee file gets both, ``peg.json`` the new notaries, and
   ``sweeps.json`` the transaction per chain moving the old committee's coins --
   its reserve and the deposits it has released -- to the new reserve. The
   operators then restart every ``canal notaryd`` with the new committee file
   (configuration from the operator, never from the network).
2. :func:`sweep` (``canal peg sweep``): ask the *old* notaries to sign a chain's
   sweep (``SignSweep``: each checks it pays the successor only, spends coins the
   old committee holds in its own view, at a sane fee), assemble M signatures
   (:func:`relay.attestation.assemble_sweep`), record the new reserve coin, broadcast.

From then on deposit addresses are the new committee's. During the grace period
the old key set still attests deposits made to its addresses, paid from the
reserve the rotation left it (``--keep-reserve``); after it, every notary
refuses it (``peg-committee-expired``), and ``canal peg sweep`` moves what it
kept to the successor (:func:`final_sweep`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from base_chain.rpc import channel_for
from base_chain.tx import OutPoint, Transaction
from proto import notary_pb2_grpc as npb_grpc

from .attestation import Assembly, AssemblyError, SweepSignature, assemble_sweep
from .committee import (
    CommitteeStatus,
    ReserveCoin,
    RotationPlan,
    SweepRequest,
    build_sweep,
    rotate,
)
from .notary import Refusal
from .notary_wire import (
    TxWithProof,
    WireError,
    sweep_request_to_pb,
    sweep_signature_from_pb,
)
from .peg import CHAINS, PegCoordinator, PegError, rpc_details, write_json
from .peg_config import write_peg_config

__all__ = ["SWEEPS_FILE", "SweepResult", "final_sweep", "pending_sweep", "plan_rotation", "sweep"]

SWEEPS_FILE = "sweeps.json"


def plan_rotation(
    peg: PegCoordinator,
    new_notary_datadirs: Sequence[Path],
    threshold: int,
    grace_blocks: Mapping[str, int],
    keep_reserve_sat: Mapping[str, int] | None = None,
    fee_rate_sat_per_kvb: int = 1000,
) -> RotationPlan:
    """Plan the hand-over to a committee of the notaries in ``new_notary_datadirs`` (keys made if needed).

    ``keep_reserve_sat[chain]``: leave at least this much of the old reserve on
    ``chain`` (its largest coins) for deposits to the old addresses still in
    flight; :func:`sweep` moves it once the old committee has expired there.
    """
    from .notaryd import ensure_notary_key

    old = peg.committee
    new_keys = [ensure_notary_key(d).public_key().to_bytes() for d in new_notary_datadirs]
    heights = {c: peg.chain(c).height() for c in CHAINS}
    reserves: dict[str, list[ReserveCoin]] = {}
    for chain in CHAINS:
        coins = sorted((c for c, _ in peg.reserve_coins(chain, epoch=old.epoch)),
                       key=lambda c: (-c.txout.amount_sat, c.outpoint.txid, c.outpoint.index))
        keep = (keep_reserve_sat or {}).get(chain, 0)
        kept = 0
        while coins and kept < keep:
            kept += coins.pop(0).txout.amount_sat
        client = peg.chain(chain)
        for op, ws in peg.released_deposits(chain, old.epoch):
            confs = client.utxo_confirmations(op)
            found = client.raw_tx(op.txid)
            if confs and found is not None:
                coins.append(ReserveCoin(op, found[0].outputs[op.index], ws))
        reserves[chain] = coins
    plan = rotate(old, new_keys, threshold, heights, grace_blocks, reserves, fee_rate_sat_per_kvb)
    committees = [c for c in peg.config.committees if c.epoch != old.epoch] + [plan.old, plan.new]
    peg.config = write_peg_config(peg.committee_file, committees, peg.config.policy)
    peg.notaries_by_epoch[plan.new.epoch] = [Path(d).resolve() for d in new_notary_datadirs]
    peg.save_peg_file()
    sweeps = _read_sweeps(peg)
    for s in plan.sweeps:
        sweeps[s.chain] = {"from_epoch": s.from_epoch, "to_epoch": s.to_epoch, "tx": s.tx.hex(),
                           "witness_scripts": [w.hex() for w in s.witness_scripts], "txid": None}
    write_json(peg.pegdir / SWEEPS_FILE, sweeps)
    return plan


def _read_sweeps(peg: PegCoordinator) -> dict[str, Any]:
    path = peg.pegdir / SWEEPS_FILE
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    return data


def pending_sweep(peg: PegCoordinator, chain: str) -> SweepRequest | None:
    entry = _read_sweeps(peg).get(chain)
    if entry is None or entry.get("txid"):
        return None
    return SweepRequest(chain, int(entry["from_epoch"]), int(entry["to_epoch"]), Transaction.from_hex(entry["tx"]),
                        tuple(bytes.fromhex(w) for w in entry["witness_scripts"]))


@dataclass
class SweepResult:
    request: SweepRequest
    signed: list[str]
    refused: list[tuple[str, Refusal]]
    unreachable: list[tuple[str, str]]
    assembly: Assembly | None = None
    txid: str | None = None
    error: AssemblyError | None = None

    def to_dict(self) -> dict[str, Any]:
        r = self.request
        out: dict[str, Any] = {
            "chain": r.chain, "from_epoch": r.from_epoch, "to_epoch": r.to_epoch,
            "inputs": len(r.tx.inputs), "amount_sat": r.tx.outputs[0].amount_sat, "sweep_txid": self.txid,
            "signed": self.signed,
            "refused": [{"notary": n, "reason": x.reason, "detail": x.detail} for n, x in self.refused],
            "unreachable": [{"notary": n, "error": e} for n, e in self.unreachable],
        }
        if self.error is not None:
            out["error"] = {"reason": self.error.reason, "detail": self.error.detail}
        return out


def final_sweep(peg: PegCoordinator, chain: str, fee_rate_sat_per_kvb: int = 1000) -> SweepRequest | None:
    """The sweep of what a retired committee still holds on ``chain`` once it has expired there, or None."""
    client = peg.chain(chain)
    height = client.height()
    for old in sorted(peg.config.committees, key=lambda c: c.epoch):
        new = peg.config.committee(old.epoch + 1)
        window = old.window(chain)
        if new is None or window is None or window.expiry_height is None:
            continue
        coins = [c for c, _ in peg.reserve_coins(chain, epoch=old.epoch)]
        for op, ws in peg.released_deposits(chain, old.epoch):
            found = client.raw_tx(op.txid)
            if client.utxo_confirmations(op) and found is not None:
                coins.append(ReserveCoin(op, found[0].outputs[op.index], ws))
        if not coins:
            continue
        if old.status(chain, height) is not CommitteeStatus.EXPIRED:
            raise PegError("peg-committee-in-grace",
                           f"committee epoch {old.epoch} still releases its deposits on {chain} until height "
                           f"{window.expiry_height} (now {height}); sweep its last coins after that")
        return build_sweep(old, new, chain, coins, fee_rate_sat_per_kvb)
    return None


def sweep(peg: PegCoordinator, chain: str) -> SweepResult:
    """Have M of the old notaries sign ``chain``'s pending sweep (or, once the old committee has expired
    there, the sweep of what it kept); broadcast it and record the new reserve."""
    request = pending_sweep(peg, chain) or final_sweep(peg, chain)
    if request is None:
        raise PegError("peg-no-sweep", f"nothing to sweep on {chain} (run `canal peg rotate` first)")
    client = peg.chain(chain)
    coins: list[ReserveCoin] = []
    proofs: dict[bytes, TxWithProof] = {}
    for txin, ws in zip(request.tx.inputs, request.witness_scripts, strict=True):
        op = txin.prevout
        found = client.raw_tx(op.txid)
        if found is None:
            raise PegError("peg-reserve-missing", f"{chain} node does not know {op}")
        coins.append(ReserveCoin(op, found[0].outputs[op.index], ws))
        if op.txid not in proofs and found[1] > 0:
            proofs[op.txid] = (found[0], client.proof(op.txid))
    message = sweep_request_to_pb(request, list(proofs.values()))
    result = SweepResult(request, [], [], [])
    signatures: list[SweepSignature] = []
    for datadir in peg.notaries_by_epoch.get(request.from_epoch, []):
        name = datadir.name
        try:
            channel = channel_for(datadir)
        except (OSError, ValueError) as e:
            result.unreachable.append((name, str(e)))
            continue
        try:
            r = npb_grpc.NotaryStub(channel).SignSweep(message, timeout=30)  # type: ignore[no-untyped-call]
            if r.HasField("signature"):
                signatures.append(sweep_signature_from_pb(r.signature))
                result.signed.append(name)
            else:
                result.refused.append((name, Refusal(r.refusal.reason, r.refusal.detail)))
        except grpc.RpcError as e:
            result.unreachable.append((name, rpc_details(e)))
        except WireError as e:
            result.unreachable.append((name, f"malformed answer: {e}"))
        finally:
            channel.close()
    try:
        result.assembly = assemble_sweep(peg.committee_of(request.from_epoch), request.tx, coins, signatures)
    except AssemblyError as e:
        result.error = e
        return result
    tx = result.assembly.tx
    # The new reserve coin first (harmless if the broadcast fails: it does not exist); the old coins stay
    # listed until a block spends them (PegCoordinator.reserve_coins drops them then).
    peg.set_reserves(chain, [*peg.reserve_outpoints(chain, request.to_epoch), OutPoint(tx.txid, 0)], request.to_epoch)
    try:
        result.txid = client.send_raw(tx)
    except grpc.RpcError as e:
        result.error = AssemblyError("peg-broadcast-rejected", rpc_details(e))
        return result
    swept = {i.prevout for i in tx.inputs}
    peg.set_released_deposits(chain, request.from_epoch,
                              [(op, ws) for op, ws in peg.released_deposits(chain, request.from_epoch)
                               if op not in swept])
    sweeps = _read_sweeps(peg)
    sweeps[chain] = {"from_epoch": request.from_epoch, "to_epoch": request.to_epoch, "tx": request.tx.hex(),
                     "witness_scripts": [w.hex() for w in request.witness_scripts], "txid": result.txid}
    write_json(peg.pegdir / SWEEPS_FILE, sweeps)
    return result
