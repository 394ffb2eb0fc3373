"""A peg notary: one committee member's sans-IO core.

A :class:`Notary` holds its key, the committees it knows (configuration, set by
its operator: a peer can never tell it who the committee is), the published
:class:`PegPolicy`, and a persistent :class:`NotaryState` -- the deposits it has
already attested. It answers two questions and does nothing else:

* :meth:`Notary.review_deposit`: should I sign this release? Either a
  :class:`~relay.attestation.NotarySignature` or a :class:`Refusal` whose
  ``reason`` names the rule that failed (``peg-deposit-unconfirmed``,
  ``peg-already-redeemed``, ...).
* :meth:`Notary.review_sweep`: should I sign this transaction moving a retiring
  committee's coins to its successor?

Peg-in (alpha -> beta) and peg-out (beta -> alpha) are the same code with the
chains swapped. The notary reads the chains only through :class:`ChainView`
objects its host gives it (a full node client, or the SPV header relay), and the
chain tips as explicit heights: no sockets, no clock.

Persist before you promise: ``review_deposit`` records the deposit in
``notary.state`` *before* it returns a signature, and the host must write
``notary.state.to_dict()`` durably before the signature leaves the process. A
notary that signed but forgot could later sign a second, different release of
the same deposit. Asked again for the identical release (the coordinator lost
the answer), it signs the same bytes again (RFC 6979), unless that release is
already confirmed.

What this core does not protect against, by design: a reorganisation deeper than
``min_confirmations`` of the source chain after a release (the peg is then short
by that deposit: choose the depth per chain accordingly), and M colluding or
compromised notaries (the trust assumption of any federation: Ronin lost 5 of 9
keys, Harmony 2 of 5). Keys are per notary, never held together. Between those:
a second release of one deposit needs 2M - N notaries to sign twice -- with
2-of-3, one compromised notary plus a coordinator that shops the two honest ones
separately, before the first release confirms. :meth:`Notary.observe_release`
shuts that window once it confirms; a wider committee (Liquid: 11-of-15, 2M - N
= 7) widens the margin.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from base_chain.address import AddressError, address_to_script
from base_chain.crypto import PrivateKey
from base_chain.params import get_params
from base_chain.policy import DEFAULT_MIN_RELAY_TX_FEE, fee_for
from base_chain.templates import p2wsh
from base_chain.tx import OutPoint, Transaction, TxOut

from .attestation import (
    Attestation,
    NotarySignature,
    PegClaim,
    ReleaseError,
    SweepSignature,
    build_release,
    release_binding,
    sighashes,
    sign_inputs,
)
from .committee import (
    Committee,
    CommitteeError,
    CommitteeStatus,
    ReserveCoin,
    RotationPlan,
    SweepRequest,
    estimate_multisig_vsize,
)

__all__ = [
    "ViewOutput",
    "ChainView",
    "PegPolicy",
    "Refusal",
    "ReleaseRequest",
    "RedeemedRecord",
    "NotaryState",
    "NotaryStateError",
    "Notary",
    "propose_release",
]

STATE_VERSION: Final = 1


# --- what the notary reads ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ViewOutput:
    """An output as a chain view knows it."""

    txout: TxOut
    confirmations: int
    """Of the transaction that created it: 0 in the mempool, 1 in the tip block, ..."""
    spent: bool | None = None
    """Whether the best chain has spent it; None when the view cannot tell (SPV)."""


class ChainView(Protocol):
    """One chain as the notary's host sees it: a full node's RPC, or the SPV relay
    (``relay.spv``: a merkle proof of the creating transaction checked against a
    header chain gives the output and its depth, not whether it is spent).

    Only the host decides which views to trust; the notary never asks a peer.
    """

    def get_output(self, outpoint: OutPoint) -> ViewOutput | None:
        """The output as created in the best chain, spent since or not (a deposit
        stays a deposit once the committee sweeps it), or None if the creating
        transaction is unknown: never mined, or reorganised out."""
        ...

    def confirmations(self, txid: bytes) -> int | None:
        """Depth of a transaction in the best chain (0 = mempool), None if unknown."""
        ...


@dataclass(frozen=True)
class PegPolicy:
    """The rules every notary of a committee publishes and applies alike."""

    min_confirmations: Mapping[str, int]
    """Per source chain: the depth a deposit needs (equal wall-clock time: alpha 6, beta 24)."""
    release_fee_sat: Mapping[str, int]
    """Per destination chain: the published fee, the release's miner fee, paid from the deposit."""
    reserve_min_confirmations: int = 1
    max_release_inputs: int = 20
    min_relay_fee_rate: int = DEFAULT_MIN_RELAY_TX_FEE
    """sat/kvB: a release or sweep must pay at least this (or no node would relay it)."""
    max_sweep_fee_rate: int = 100_000
    """sat/kvB: a sweep paying more is refused (fees are a way to hand reserves to a miner)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request the notary will not sign: ``reason`` is a stable code, ``detail`` says why."""

    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


@dataclass(frozen=True, slots=True)
class ReleaseRequest:
    """A coordinator's request: release this deposit with this transaction."""

    source_chain: str
    deposit: OutPoint
    amount_sat: int
    destination_chain: str
    destination_address: str
    fee_sat: int
    epoch: int
    """The committee whose deposit address was paid, and which is asked to sign."""
    release: Transaction
    """Unsigned; it must be exactly what :func:`relay.attestation.build_release` makes."""

    def claim(self, destination_script: bytes) -> PegClaim:
        return PegClaim(
            self.source_chain,
            self.deposit,
            self.amount_sat,
            self.destination_chain,
            destination_script,
            self.fee_sat,
            self.epoch,
        )


def propose_release(
    committee: Committee,
    *,
    source_chain: str,
    deposit: OutPoint,
    amount_sat: int,
    destination_chain: str,
    destination_address: str,
    fee_sat: int,
    coins: Iterable[ReserveCoin],
) -> ReleaseRequest:
    """What a coordinator sends every notary: the request with the release built from ``coins``.

    Raises ReleaseError or AddressError if no notary would accept it anyway.
    """
    dest_script = address_to_script(destination_address, get_params(destination_chain).address_prefixes)
    request = ReleaseRequest(
        source_chain, deposit, amount_sat, destination_chain, destination_address,
        fee_sat, committee.epoch, Transaction(),
    )
    release = build_release(committee, request.claim(dest_script), list(coins))
    return ReleaseRequest(
        source_chain, deposit, amount_sat, destination_chain, destination_address,
        fee_sat, committee.epoch, release,
    )


# --- what the notary remembers -----------------------------------------------------------------


class NotaryStateError(ValueError):
    """A persisted notary state cannot be read; the message names the field."""


@dataclass(frozen=True, slots=True)
class RedeemedRecord:
    """A deposit this notary attested, and the one release it attested it with."""

    claim_id: bytes
    release_txid: bytes
    attestation_digest: bytes | None
    """None when learned from the chain (:meth:`Notary.observe_release`) rather than signed here."""
    reserve_coins: tuple[OutPoint, ...]
    """The destination-chain coins that release spends."""


@dataclass
class NotaryState:
    """The notary's durable memory. Lose it and the notary may sign a deposit twice."""

    redeemed: dict[tuple[str, OutPoint], RedeemedRecord] = field(default_factory=dict)
    """(source chain, deposit outpoint) -> the release attested."""
    committed: dict[tuple[str, OutPoint], bytes] = field(default_factory=dict)
    """(destination chain, reserve coin) -> the claim_id of the release that spends it."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "redeemed": [
                {
                    "chain": chain,
                    "deposit": str(op),
                    "claim_id": r.claim_id.hex(),
                    "release_txid": r.release_txid[::-1].hex(),
                    "attestation": None if r.attestation_digest is None else r.attestation_digest.hex(),
                    "reserve_coins": [str(c) for c in r.reserve_coins],
                }
                for (chain, op), r in sorted(self.redeemed.items(), key=lambda kv: (kv[0][0], str(kv[0][1])))
            ],
            "committed": [
                {"chain": chain, "coin": str(op), "claim_id": claim_id.hex()}
                for (chain, op), claim_id in sorted(self.committed.items(), key=lambda kv: (kv[0][0], str(kv[0][1])))
            ],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NotaryState:
        if d.get("version") != STATE_VERSION:
            raise NotaryStateError(f"unsupported notary state version {d.get('version')!r}")
        state = cls()
        try:
            for r in d["redeemed"]:
                key = (str(r["chain"]), _parse_outpoint(r["deposit"]))
                if key in state.redeemed:
                    raise NotaryStateError(f"deposit {r['deposit']} on {r['chain']} recorded twice")
                state.redeemed[key] = RedeemedRecord(
                    _hex32(r["claim_id"]),
                    _hex32(r["release_txid"])[::-1],
                    None if r["attestation"] is None else _hex32(r["attestation"]),
                    tuple(_parse_outpoint(c) for c in r["reserve_coins"]),
                )
            for c in d["committed"]:
                state.committed[(str(c["chain"]), _parse_outpoint(c["coin"]))] = _hex32(c["claim_id"])
        except (KeyError, TypeError) as e:
            raise NotaryStateError(f"malformed notary state: missing or bad field {e}") from e
        return state


def _hex32(s: Any) -> bytes:
    try:
        b = bytes.fromhex(s)
    except (TypeError, ValueError) as e:
        raise NotaryStateError(f"not hex: {s!r}") from e
    if len(b) != 32:
        raise NotaryStateError(f"expected 32 bytes, got {len(b)}: {s!r}")
    return b


def _parse_outpoint(s: Any) -> OutPoint:
    if not isinstance(s, str) or s.count(":") != 1:
        raise NotaryStateError(f"not an outpoint 'txid:index': {s!r}")
    txid, index = s.split(":")
    if not index.isdigit() or int(index) > 0xFFFFFFFF:
        raise NotaryStateError(f"bad output index in {s!r}")
    return OutPoint(_hex32(txid)[::-1], int(index))


# --- the notary --------------------------------------------------------------------------------


class Notary:
    """One committee member. Sans-IO: views and heights in, signatures or refusals out."""

    def __init__(
        self,
        key: PrivateKey,
        committees: Iterable[Committee],
        policy: PegPolicy,
        state: NotaryState | None = None,
    ) -> None:
        self._key = key
        self.pubkey = key.public_key().to_bytes()
        self.policy = policy
        self.state = state if state is not None else NotaryState()
        self.committees: dict[int, Committee] = {}
        for c in committees:
            if c.epoch in self.committees:
                raise CommitteeError(f"two committees for epoch {c.epoch}")
            self.committees[c.epoch] = c

    def adopt_rotation(self, plan: RotationPlan) -> None:
        """Install a rotation its operator approved: the old committee gets its expiry, the new one is known.

        Never call this on a peer's say-so: a notary that accepts a committee from
        the network can be talked into signing reserves over to an attacker.
        """
        known = self.committees.get(plan.old.epoch)
        if known is None or known.committee_id != plan.old.committee_id:
            raise CommitteeError(f"the plan's old committee is not this notary's epoch {plan.old.epoch}")
        for w in known.windows:
            w2 = plan.old.window(w.chain)
            if w2 is None or w2.activation_height != w.activation_height:
                raise CommitteeError(f"the plan changes epoch {known.epoch}'s activation on {w.chain}")
        if plan.new.epoch != plan.old.epoch + 1:
            raise CommitteeError("the new committee must be the next epoch")
        existing = self.committees.get(plan.new.epoch)
        if existing is not None and existing.committee_id != plan.new.committee_id:
            raise CommitteeError(f"a different committee is already known for epoch {plan.new.epoch}")
        self.committees[plan.old.epoch] = plan.old
        self.committees[plan.new.epoch] = plan.new

    # --- releases ----------------------------------------------------------------------------

    def review_deposit(
        self,
        request: ReleaseRequest,
        views: Mapping[str, ChainView],
        tip_heights: Mapping[str, int],
    ) -> NotarySignature | Refusal:
        """Check a release request against this notary's own view of both chains; sign it or say why not.

        On success the deposit is recorded in ``self.state``: persist it before
        the signature leaves the process.
        """
        src, dest = request.source_chain, request.destination_chain
        for chain in (src, dest):
            try:
                get_params(chain)
            except ValueError as e:
                return Refusal("peg-unknown-chain", str(e))
            if chain not in views or chain not in tip_heights:
                return Refusal("peg-no-view", f"this notary has no view of {chain}")
        if src == dest:
            return Refusal("peg-same-chain", f"source and destination are both {src}")

        # Who signs: a committee this notary knows and belongs to, in force on the destination chain.
        committee = self.committees.get(request.epoch)
        if committee is None:
            return Refusal("peg-unknown-committee", f"no committee epoch {request.epoch} is known")
        if committee.index_of(self.pubkey) is None:
            return Refusal("peg-not-a-member", f"this notary is not in committee epoch {request.epoch}")
        status = committee.status(dest, tip_heights[dest])
        if not status.may_sign:
            code = "peg-committee-expired" if status is CommitteeStatus.EXPIRED else "peg-committee-inactive"
            return Refusal(code, f"committee epoch {committee.epoch} is {status.value} on {dest} at height {tip_heights[dest]}")

        # What is claimed: a valid destination, at the published fee.
        try:
            dest_script = address_to_script(request.destination_address, get_params(dest).address_prefixes)
        except AddressError as e:
            return Refusal("peg-bad-destination", f"{request.destination_address!r} on {dest}: {e}")
        published = self.policy.release_fee_sat.get(dest)
        if published is None:
            return Refusal("peg-no-fee-published", f"no release fee is published for {dest}")
        if request.fee_sat != published:
            return Refusal("peg-fee-mismatch", f"fee {request.fee_sat} sat, published fee on {dest} is {published}")
        claim = request.claim(dest_script)

        # Once only.
        record = self.state.redeemed.get(claim.redeem_key)
        if record is not None:
            if request.release.txid != record.release_txid:
                return Refusal(
                    "peg-already-redeemed",
                    f"deposit {request.deposit} on {src} was attested for release {record.release_txid[::-1].hex()}",
                )
            depth = views[dest].confirmations(record.release_txid)
            if depth is not None and depth > 0:
                return Refusal("peg-already-redeemed", f"release {record.release_txid[::-1].hex()} is confirmed ({depth})")

        refusal = self._check_deposit(committee, request, claim, views[src], tip_heights[src])
        if refusal is not None:
            return refusal

        coins_or_refusal = self._reserve_coins(committee, claim, request.release, views[dest], record)
        if isinstance(coins_or_refusal, Refusal):
            return coins_or_refusal
        coins = coins_or_refusal

        try:
            expected = build_release(committee, claim, coins)
        except ReleaseError as e:
            return Refusal(e.reason, e.detail)
        if request.release.to_bytes() != expected.to_bytes():
            return Refusal("peg-release-mismatch", _describe_mismatch(request.release, expected))
        scripts = [c.witness_script for c in coins]
        vsize = estimate_multisig_vsize(expected, scripts, committee.threshold)
        floor = fee_for(self.policy.min_relay_fee_rate, vsize)
        if claim.fee_sat < floor:
            return Refusal("peg-fee-too-low", f"fee {claim.fee_sat} sat < {floor} sat for a {vsize} vB release")

        digests = sighashes(expected, scripts, [c.txout.amount_sat for c in coins])
        attestation = Attestation(claim, committee.committee_id, expected.txid, digests)
        if record is not None and record.attestation_digest not in (None, attestation.digest):
            return Refusal("peg-already-redeemed", "this deposit was attested with a different attestation")

        # Record first, then sign: the caller persists self.state before sending the signature.
        self.state.redeemed[claim.redeem_key] = RedeemedRecord(
            claim.claim_id, expected.txid, attestation.digest, tuple(c.outpoint for c in coins)
        )
        for c in coins:
            self.state.committed[(dest, c.outpoint)] = claim.claim_id
        return NotarySignature(
            self.pubkey,
            attestation,
            sign_inputs(self._key, digests),
            self._key.sign_der(attestation.digest),
        )

    def _check_deposit(
        self, committee: Committee, request: ReleaseRequest, claim: PegClaim, view: ChainView, tip_height: int
    ) -> Refusal | None:
        src = request.source_chain
        out = view.get_output(request.deposit)
        if out is None:
            return Refusal(
                "peg-deposit-missing",
                f"deposit {request.deposit} is not in the best {src} chain (never mined, or reorganised out)",
            )
        need = self.policy.min_confirmations.get(src)
        if need is None:
            return Refusal("peg-no-depth-published", f"no confirmation depth is published for {src}")
        if out.confirmations < max(need, 1):
            return Refusal("peg-deposit-unconfirmed", f"deposit has {out.confirmations} confirmations on {src}, needs {need}")
        if out.confirmations > tip_height + 1:
            return Refusal("peg-view-inconsistent", f"{out.confirmations} confirmations above {src} height {tip_height}")
        expected_spk = committee.deposit_script_pubkey(src, claim.destination_chain, claim.destination_script)
        if out.txout.script_pubkey != expected_spk:
            return Refusal(
                "peg-deposit-wrong-script",
                f"{request.deposit} does not pay committee epoch {committee.epoch}'s deposit script "
                f"for {request.destination_address} on {claim.destination_chain}",
            )
        confirmed_at = tip_height - out.confirmations + 1
        status = committee.status(src, confirmed_at)
        if status in (CommitteeStatus.EXPIRED, CommitteeStatus.ABSENT):
            return Refusal(
                "peg-deposit-after-expiry",
                f"deposit confirmed at {src} height {confirmed_at}, when committee epoch "
                f"{committee.epoch}'s address was {status.value}",
            )
        if out.txout.amount_sat != request.amount_sat:
            return Refusal("peg-amount-mismatch", f"deposit holds {out.txout.amount_sat} sat, request says {request.amount_sat}")
        return None

    def _reserve_coins(
        self,
        committee: Committee,
        claim: PegClaim,
        release: Transaction,
        view: ChainView,
        record: RedeemedRecord | None,
    ) -> list[ReserveCoin] | Refusal:
        dest = claim.destination_chain
        if not 1 <= len(release.inputs) <= self.policy.max_release_inputs:
            return Refusal(
                "peg-release-inputs",
                f"{len(release.inputs)} inputs; a release spends 1..{self.policy.max_release_inputs} reserve coins",
            )
        reserve_ws = committee.reserve_witness_script(dest)
        reserve_spk = p2wsh(reserve_ws)
        coins = []
        for txin in release.inputs:
            op = txin.prevout
            out = view.get_output(op)
            if out is None:
                return Refusal("peg-reserve-missing", f"reserve coin {op} is not in the best {dest} chain")
            if out.spent:
                return Refusal("peg-reserve-spent", f"reserve coin {op} is already spent on {dest}")
            if out.confirmations < self.policy.reserve_min_confirmations:
                return Refusal("peg-reserve-unconfirmed", f"reserve coin {op} has {out.confirmations} confirmations")
            if out.txout.script_pubkey != reserve_spk:
                return Refusal(
                    "peg-reserve-wrong-script", f"{op} is not in committee epoch {committee.epoch}'s reserve on {dest}"
                )
            owner = self.state.committed.get((dest, op))
            if owner is not None and (record is None or owner != record.claim_id):
                return Refusal("peg-reserve-committed", f"reserve coin {op} is already spent by another attested release")
            coins.append(ReserveCoin(op, out.txout, reserve_ws))
        return coins

    def observe_release(self, source_chain: str, destination_chain: str, tx: Transaction) -> bool:
        """Learn of a release confirmed on ``destination_chain``: its deposit is redeemed.

        The host calls this for every confirmed transaction spending a committee
        reserve (the committee's own coins: easy to watch), including releases this
        notary never signed. That narrows the window in which a coordinator could
        get a second release of one deposit signed, and lets a notary that lost its
        state rebuild its redeemed set from the chain. Only a transaction whose every
        input spends a known committee's reserve script counts (consensus checked its
        M signatures), so nobody can mark a deposit redeemed with a fake binding.
        Returns whether ``tx`` was recognised as a release.
        """
        binding = release_binding(tx)
        if binding is None or not tx.inputs:
            return False
        reserves = {
            c.reserve_witness_script(destination_chain)
            for c in self.committees.values()
            if c.window(destination_chain) is not None
        }
        if not all(txin.witness and txin.witness[-1] in reserves for txin in tx.inputs):
            return False
        claim_id, deposit = binding
        key = (source_chain, deposit)
        if key not in self.state.redeemed:
            self.state.redeemed[key] = RedeemedRecord(claim_id, tx.txid, None, tuple(i.prevout for i in tx.inputs))
        return True

    # --- rotation ----------------------------------------------------------------------------

    def review_sweep(
        self,
        request: SweepRequest,
        views: Mapping[str, ChainView],
        tip_heights: Mapping[str, int],
    ) -> SweepSignature | Refusal:
        """Sign the move of a retiring committee's coins on one chain to its successor, or say why not.

        Allowed at any time after the rotation was adopted, even once the old key set
        has expired: moving coins to the configured successor is the one thing an
        expired key set should still do (the sooner its coins leave, the less a
        later leak of old keys is worth).
        """
        chain = request.chain
        if chain not in views or chain not in tip_heights:
            return Refusal("peg-no-view", f"this notary has no view of {chain}")
        old = self.committees.get(request.from_epoch)
        new = self.committees.get(request.to_epoch)
        if old is None:
            return Refusal("peg-unknown-committee", f"no committee epoch {request.from_epoch} is known")
        if old.index_of(self.pubkey) is None:
            return Refusal("peg-not-a-member", f"this notary is not in committee epoch {old.epoch}")
        window = old.window(chain)
        if new is None or new.epoch != old.epoch + 1 or window is None or window.retire_height is None:
            return Refusal(
                "peg-sweep-unknown-successor",
                f"epoch {request.to_epoch} is not the adopted successor of epoch {old.epoch} on {chain}",
            )
        if not new.status(chain, tip_heights[chain]).may_sign:
            return Refusal("peg-committee-inactive", f"successor epoch {new.epoch} is not active on {chain}")
        tx = request.tx
        if tx.version != 2 or tx.locktime != 0 or any(i.witness or i.script_sig for i in tx.inputs):
            return Refusal("peg-sweep-malformed", "a sweep is unsigned, version 2, locktime 0")
        if len(tx.outputs) != 1 or tx.outputs[0].script_pubkey != new.reserve_script_pubkey(chain):
            return Refusal("peg-sweep-wrong-destination", f"a sweep pays epoch {new.epoch}'s reserve on {chain}, only")
        if not tx.inputs or len(request.witness_scripts) != len(tx.inputs):
            return Refusal("peg-sweep-malformed", "one witness script per input")
        if len({i.prevout for i in tx.inputs}) != len(tx.inputs):
            return Refusal("peg-sweep-malformed", "an input is spent twice")
        amounts = []
        for txin, ws in zip(tx.inputs, request.witness_scripts, strict=True):
            op = txin.prevout
            out = views[chain].get_output(op)
            if out is None:
                return Refusal("peg-reserve-missing", f"coin {op} is not in the best {chain} chain")
            if out.spent:
                return Refusal("peg-reserve-spent", f"coin {op} is already spent on {chain}")
            if out.confirmations < self.policy.reserve_min_confirmations:
                return Refusal("peg-reserve-unconfirmed", f"coin {op} has {out.confirmations} confirmations")
            if not old.controls(ws) or out.txout.script_pubkey != p2wsh(ws):
                return Refusal("peg-reserve-wrong-script", f"coin {op} is not held by committee epoch {old.epoch}")
            if (chain, op) in self.state.committed:
                return Refusal("peg-reserve-committed", f"coin {op} is spent by an attested release")
            amounts.append(out.txout.amount_sat)
        fee = sum(amounts) - tx.outputs[0].amount_sat
        vsize = estimate_multisig_vsize(tx, request.witness_scripts, old.threshold)
        low, high = fee_for(self.policy.min_relay_fee_rate, vsize), fee_for(self.policy.max_sweep_fee_rate, vsize)
        if not low <= fee <= high:
            return Refusal("peg-sweep-fee", f"fee {fee} sat outside {low}..{high} for {vsize} vB")
        digests = sighashes(tx, request.witness_scripts, amounts)
        return SweepSignature(
            self.pubkey, chain, old.epoch, new.epoch, tx.txid, sign_inputs(self._key, digests)
        )


def _describe_mismatch(got: Transaction, want: Transaction) -> str:
    if got.has_witness() or any(i.script_sig for i in got.inputs):
        return "the release must be unsigned"
    if (got.version, got.locktime) != (want.version, want.locktime):
        return f"version/locktime {got.version}/{got.locktime}, expected {want.version}/{want.locktime}"
    if [i.prevout for i in got.inputs] != [i.prevout for i in want.inputs]:
        return "inputs are not the reserve coins in (txid, index) order"
    if [i.sequence for i in got.inputs] != [i.sequence for i in want.inputs]:
        return "input sequences differ"
    for n, (a, b) in enumerate(zip(got.outputs, want.outputs)):
        if a != b:
            return f"output {n} is {a.amount_sat} sat to {a.script_pubkey.hex()}, expected {b.amount_sat} sat to {b.script_pubkey.hex()}"
    return f"{len(got.outputs)} outputs, expected {len(want.outputs)}"
