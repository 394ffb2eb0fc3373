"""The on-chain watcher of one channel (BOLT 5): a sans-IO ``ChannelMonitor``.

The monitor is told about the chain explicitly — ``block_connected``,
``block_disconnected``, ``spend_detected`` — and about the channel by the state
machine's host — ``update_commitment``, ``provide_secret``,
``provide_preimage`` — and answers each call with a list of effects for the
host to carry out (:data:`Effect`). It never reads a clock or a socket: heights
are inputs.

What it does, by how the funding output was spent:

* **cooperative close** (no commitment number in locktime / sequence): nothing.
* **our commitment** (current or previous): sweep ``to_local`` once
  ``to_self_delay`` has passed; HTLC-timeout transactions at ``cltv_expiry`` for
  HTLCs we offered, HTLC-success transactions for HTLCs we received and hold the
  preimage of, and then each of their outputs after ``to_self_delay``.
* **the peer's commitment** (current or next): sweep ``to_remote`` (after one
  block with anchors), claim the HTLCs it offered with the preimage and take
  back ours after ``cltv_expiry``, straight from its commitment.
* **a revoked commitment of the peer**: one justice transaction spending every
  revoked output through the revocation key; when the cheater gets an
  HTLC-timeout / HTLC-success transaction in first, its output joins the next
  justice transaction.
* **a commitment of the peer newer than we know** (we lost data): sweep
  ``to_remote``, which needs no per-commitment point.

Preimages seen in any HTLC spend (on chain, or in the mempool via
``spend_detected(..., height=None)``) are reported (:class:`PreimageLearned`);
every HTLC's final outcome is reported once it is ``reorg_safety_depth`` deep
(:class:`HtlcResolved`).

Reorgs: every confirmed transaction that matters is kept in a log with its
height, and all resolution state is a replay of that log, so disconnecting a
block simply forgets its transactions and replays. Claims are rebroadcast every
block until they confirm. The host persists :meth:`ChannelMonitor.to_dict`
after every call, and must persist a commitment update before sending the
message that depends on it.

Around it: :mod:`channels.monitor_data` (the input record),
:mod:`channels.monitor_effects` (the effects), :mod:`channels.onchain`
(recognising commitments and our outputs in them) and :mod:`channels.sweep`
(building and signing the spends).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from base_chain.sighash import SIGHASH_ALL
from base_chain.tx import OutPoint, Transaction

from .keys import ChannelSecrets, derive_privkey, per_commitment_index, per_commitment_point
from .monitor_data import (
    LocalCommitment,
    MonitorData,
    MonitorHtlc,
    MonitorPolicy,
    RemoteCommitment,
    outpoint_from_str,
    outpoint_to_str,
)
from .monitor_effects import (
    Broadcast,
    ChannelClosedOnChain,
    ChannelCloseReorged,
    ChannelFullyResolved,
    CloseKind,
    Effect,
    HtlcResolved,
    NeedFeeBump,
    NeedHtlcTxFunding,
    PreimageLearned,
    WatchConfirmations,
    WatchOutpoint,
)
from .onchain import ChainView, OutputKind, TrackedOutput
from .shachain import ShachainError
from .sweep import (
    SweepInput,
    build_sweep_tx,
    delayed_input,
    htlc_preimage_input,
    htlc_timeout_input,
    preimage_in_witness,
    revoked_htlc_input,
    revoked_to_local_input,
    sign_anchor_input,
    to_remote_input,
)
from .transactions import build_htlc_tx, finalize_htlc_tx, funding_script_pubkey, sign_htlc_tx

__all__ = [
    "ChannelMonitor",
    "MonitorError",
    # re-exported: the monitor's inputs and outputs in one place
    "MonitorData",
    "MonitorHtlc",
    "LocalCommitment",
    "RemoteCommitment",
    "MonitorPolicy",
    "OutputKind",
    "TrackedOutput",
    "CloseKind",
    "Effect",
    "Broadcast",
    "WatchOutpoint",
    "WatchConfirmations",
    "NeedFeeBump",
    "NeedHtlcTxFunding",
    "ChannelClosedOnChain",
    "ChannelCloseReorged",
    "HtlcResolved",
    "PreimageLearned",
    "ChannelFullyResolved",
]

_STATE_VERSION = 1
#: The smallest fee-rate step of a replacement (Core's incremental relay fee, 1 sat/vB).
_RBF_STEP_PER_KW = 253
_DUMMY_SIG = b"\x30" + b"\x00" * 71 + bytes([SIGHASH_ALL])


class MonitorError(ValueError):
    """An update the monitor refuses: out of order, inconsistent, or after the channel closed on chain."""


@dataclass(slots=True)
class _Closing:
    kind: CloseKind
    txid: bytes
    height: int
    commitment_number: int | None
    htlcs: tuple[MonitorHtlc, ...]


@dataclass(slots=True)
class _Outcome:
    htlc: MonitorHtlc
    height: int
    preimage: bytes | None


@dataclass(slots=True)
class _Claim:
    tx: Transaction
    feerate_per_kw: int


class ChannelMonitor:
    """Watches one channel's funding output and resolves whatever spends it.

    Create it with the channel's :class:`MonitorData` and the current tip height
    (our latest commitment's signatures are checked), call :meth:`start`, and
    feed it blocks. Restore with :meth:`from_dict`, then :meth:`start` again.
    """

    def __init__(self, data: MonitorData, tip_height: int = 0, *, _verify: bool = True) -> None:
        self.data = data
        self.tip_height = tip_height
        self._view = ChainView(data)
        # Persistent (to_dict).
        self._log: list[tuple[int, Transaction]] = []
        self._force_close_reason: str | None = None
        self._claims: dict[tuple[OutPoint, ...], _Claim] = {}
        self._funded_htlc_txs: dict[OutPoint, Transaction] = {}
        self._closes_reported: dict[bytes, CloseKind] = {}
        self._htlcs_reported: set[tuple[bool, int]] = set()
        self._fully_resolved = False
        # Derived from data + log by _replay.
        self._closing: _Closing | None = None
        self._outputs: dict[OutPoint, TrackedOutput] = {}
        self._outcomes: dict[tuple[bool, int], _Outcome] = {}
        self._learned: list[tuple[bytes, bytes]] = []
        # What this session told the host (start() repeats it all after a restart).
        self._watched: set[OutPoint] = set()
        self._conf_watched: set[bytes] = set()
        self._sent_at: dict[tuple[str, bytes], int] = {}
        if _verify:
            problem = self._view.verify_local_commitment(data.local_commitment)
            if problem is not None:
                raise MonitorError(problem)

    # --- inspection ---------------------------------------------------------------------------

    @property
    def close_kind(self) -> CloseKind | None:
        return None if self._closing is None else self._closing.kind

    @property
    def closing_txid(self) -> bytes | None:
        return None if self._closing is None else self._closing.txid

    @property
    def is_fully_resolved(self) -> bool:
        return self._fully_resolved

    @property
    def outputs(self) -> tuple[TrackedOutput, ...]:
        """The outputs being resolved (derived state; do not modify)."""
        return tuple(self._outputs.values())

    def settled_outgoing(self) -> list[tuple[MonitorHtlc, bytes | None]]:
        """Outgoing HTLCs whose on-chain fate is known: reported ones (final), and those whose
        preimage is known (fulfilling upstream is safe at once). A restarted host tells its
        payment layer again (it ignores what it already knows)."""
        out: dict[tuple[bool, int], tuple[MonitorHtlc, bytes | None]] = {}
        for key, outcome in self._outcomes.items():
            if key[0] and key in self._htlcs_reported:
                out[key] = (outcome.htlc, outcome.preimage)
        for key, htlc in self._reportable_htlcs().items():
            preimage = self.data.preimages.get(htlc.payment_hash)
            if key[0] and preimage is not None:
                out[key] = (htlc, preimage)
        return [out[k] for k in sorted(out)]

    @property
    def _policy(self) -> MonitorPolicy:
        return self.data.policy

    # --- host interface: setup and chain events ------------------------------------------------

    def start(self) -> list[Effect]:
        """Every watch to register and what to (re)broadcast: after construction and after a restart."""
        self._watched.clear()
        self._conf_watched.clear()
        self._sent_at.clear()
        view = self._view
        funding_spk = funding_script_pubkey(view.local_keys.funding_pubkey, self.data.remote_keys.funding_pubkey)
        effects: list[Effect] = [WatchOutpoint(self.data.funding_outpoint, funding_spk)]
        return effects + self._tick()

    def block_connected(self, height: int, txs: Iterable[Transaction] = ()) -> list[Effect]:
        """The block at `height` joined the best chain; `txs` are those of its transactions
        that spend watched outpoints, in block order. A `height` at or below the tip means
        the blocks from `height` on were disconnected first."""
        if height <= self.tip_height:
            self._disconnect_from(height)
        self.tip_height = height
        for tx in txs:
            self._record(tx, height)
        return self._tick()

    def block_disconnected(self, height: int) -> list[Effect]:
        """The block at `height` left the best chain; the tip is now `height - 1`."""
        self._disconnect_from(height)
        self.tip_height = height - 1
        return self._tick()

    def spend_detected(self, outpoint: OutPoint, spending_tx: Transaction, height: int | None) -> list[Effect]:
        """`spending_tx` spends the watched `outpoint`: confirmed at `height`, or seen in the
        mempool when `height` is None (then only its preimages are used)."""
        if not any(txin.prevout == outpoint for txin in spending_tx.inputs):
            raise MonitorError(f"the transaction does not spend {outpoint}")
        if height is None:
            self._learn_from_mempool(spending_tx)
            return self._report_preimages()
        self._record(spending_tx, height)
        return self._tick()

    # --- host interface: channel updates ---------------------------------------------------------

    def update_commitment(self, commitment: LocalCommitment | RemoteCommitment) -> list[Effect]:
        """A new commitment: ours (we received ``commitment_signed``: the peer's signatures are
        checked) or the peer's (we are about to sign it). Persist before sending what depends on it."""
        if self._closing is not None:
            raise MonitorError("the funding output is already spent on chain")
        data = self.data
        if isinstance(commitment, LocalCommitment):
            expected = data.local_commitment.commitment_number + 1
            if commitment.commitment_number != expected:
                raise MonitorError(f"expected our commitment number {expected}, got {commitment.commitment_number}")
            problem = self._view.verify_local_commitment(commitment)
            if problem is not None:
                raise MonitorError(problem)
            if data.previous_local_commitment is not None:
                self._view.forget(data.previous_local_commitment)
            data.previous_local_commitment = data.local_commitment
            data.local_commitment = commitment
        else:
            if data.remote_next_commitment is not None:
                raise MonitorError("the peer has not revoked its previous commitment yet")
            expected = data.remote_commitment.commitment_number + 1
            if commitment.commitment_number != expected:
                raise MonitorError(
                    f"expected the peer's commitment number {expected}, got {commitment.commitment_number}"
                )
            data.remote_next_commitment = commitment
        return self._tick()

    def provide_secret(self, commitment_number: int, secret: bytes) -> list[Effect]:
        """The peer revoked its commitment `commitment_number` (``revoke_and_ack``): keep the
        secret and that commitment's HTLCs; its next commitment becomes its current one."""
        data = self.data
        current = data.remote_commitment
        index = per_commitment_index(commitment_number)
        if commitment_number < current.commitment_number:
            try:
                if data.remote_secrets.derive_old_secret(index) == secret:
                    return []  # a retransmission
            except ShachainError:
                pass
            raise MonitorError(f"commitment {commitment_number} is not the peer's current one")
        if commitment_number != current.commitment_number:
            raise MonitorError(f"the peer's current commitment is {current.commitment_number}")
        if data.remote_next_commitment is None:
            raise MonitorError("a revocation before we signed the peer's next commitment")
        if per_commitment_point(secret) != current.per_commitment_point:
            raise MonitorError("the secret does not match the commitment's per_commitment_point")
        try:
            data.remote_secrets.insert_secret(secret, index)
        except ShachainError as e:
            raise MonitorError(str(e)) from e
        if current.htlcs:
            data.revoked_htlcs[commitment_number] = current.htlcs
        data.remote_commitment = data.remote_next_commitment
        data.remote_next_commitment = None
        self._replay()  # a commitment already on chain may just have become a revoked one
        return self._tick()

    def provide_preimage(self, preimage: bytes) -> list[Effect]:
        """A payment preimage: HTLCs we received with it get claimed (on chain once closed)."""
        if len(preimage) != 32:
            raise MonitorError("a payment preimage is 32 bytes")
        self.data.preimages[hashlib.sha256(preimage).digest()] = preimage
        self._replay()
        return self._tick()

    def update_policy(self, policy: MonitorPolicy) -> list[Effect]:
        """New fee rates or margins; pending sweeps are replaced when the fee rates rose."""
        self.data.policy = policy
        self._sent_at.clear()
        return self._tick()

    def force_close(self, reason: str = "force close requested") -> list[Effect]:
        """Broadcast our latest commitment, every block (with a CPFP request for anchors)
        until something spends the funding output."""
        if self._closing is None and self._force_close_reason is None:
            self._force_close_reason = reason
        return self._tick()

    # --- host interface: fee inputs -----------------------------------------------------------------

    def local_commitment_tx(self) -> Transaction:
        """Our latest commitment, fully signed."""
        return self._view.signed_local_commitment(self.data.local_commitment)

    def sign_anchor_input(self, tx: Transaction, input_index: int) -> Transaction:
        """A copy of the host's CPFP child `tx` whose input `input_index` (our anchor of one of
        our commitments) is signed. SIGHASH_ALL: the child must be otherwise final."""
        prevout = tx.inputs[input_index].prevout
        if prevout not in self._view.our_anchor_outpoints():
            raise MonitorError(f"{prevout} is not the anchor of one of our commitments")
        signed = tx.copy()
        sign_anchor_input(signed, input_index, self.data.secrets.funding_privkey)
        return signed

    def complete_htlc_tx(self, tx: Transaction) -> list[Effect]:
        """Sign input 0 of the HTLC transaction of a :class:`NeedHtlcTxFunding` once the host
        has added its fee inputs (and change); it is then broadcast until it confirms."""
        if not tx.inputs or not tx.outputs:
            raise MonitorError("not an HTLC transaction")
        out = self._outputs.get(tx.inputs[0].prevout)
        if out is None or out.kind not in (OutputKind.LOCAL_OFFERED_HTLC, OutputKind.LOCAL_RECEIVED_HTLC):
            raise MonitorError("input 0 does not spend an HTLC output of our commitment")
        if out.spent_txid is not None:
            raise MonitorError("that HTLC output is already spent")
        assert out.commitment is not None and out.htlc_output is not None and out.htlc is not None
        template = build_htlc_tx(out.commitment, out.htlc_output)
        if (
            tx.version != template.version
            or tx.locktime != template.locktime
            or tx.inputs[0].sequence != template.inputs[0].sequence
            or tx.outputs[0] != template.outputs[0]
        ):
            raise MonitorError("input 0, output 0, version or locktime differ from the HTLC transaction")
        preimage = None
        if not out.htlc.outgoing:
            preimage = self.data.preimages.get(out.htlc.payment_hash)
            if preimage is None:
                raise MonitorError("no preimage for this HTLC")
        self._funded_htlc_txs[out.outpoint] = self._finalize_local_htlc_tx(out, tx, preimage)
        self._sent_at.pop(("broadcast", self._funded_htlc_txs[out.outpoint].txid), None)
        return self._tick()

    # --- serialization ----------------------------------------------------------------------------

    def to_dict(self, *, include_secrets: bool = True) -> dict[str, Any]:
        """JSON-ready state (derived state is rebuilt from it on load)."""
        return {
            "version": _STATE_VERSION,
            "data": self.data.to_dict(include_secrets=include_secrets),
            "tip_height": self.tip_height,
            "log": [[height, tx.hex()] for height, tx in self._log],
            "force_close_reason": self._force_close_reason,
            "claims": [
                {
                    "inputs": [outpoint_to_str(op) for op in key],
                    "feerate_per_kw": claim.feerate_per_kw,
                    "tx": claim.tx.hex(),
                }
                for key, claim in self._claims.items()
            ],
            "funded_htlc_txs": {outpoint_to_str(op): tx.hex() for op, tx in self._funded_htlc_txs.items()},
            "closes_reported": {txid.hex(): kind.value for txid, kind in self._closes_reported.items()},
            "htlcs_reported": sorted([outgoing, htlc_id] for outgoing, htlc_id in self._htlcs_reported),
            "fully_resolved": self._fully_resolved,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, secrets: ChannelSecrets | None = None) -> ChannelMonitor:
        """Restore a monitor; call :meth:`start` next. `secrets`: see :meth:`MonitorData.from_dict`."""
        if d.get("version") != _STATE_VERSION:
            raise ValueError(f"unknown ChannelMonitor version {d.get('version')!r}")
        monitor = cls(MonitorData.from_dict(d["data"], secrets=secrets), int(d["tip_height"]), _verify=False)
        monitor._log = [(int(h), Transaction.from_hex(raw)) for h, raw in d["log"]]
        monitor._force_close_reason = d["force_close_reason"]
        for c in d["claims"]:
            key = tuple(outpoint_from_str(s) for s in c["inputs"])
            monitor._claims[key] = _Claim(Transaction.from_hex(c["tx"]), int(c["feerate_per_kw"]))
        monitor._funded_htlc_txs = {
            outpoint_from_str(op): Transaction.from_hex(raw) for op, raw in d["funded_htlc_txs"].items()
        }
        monitor._closes_reported = {bytes.fromhex(t): CloseKind(k) for t, k in d["closes_reported"].items()}
        monitor._htlcs_reported = {(bool(o), int(i)) for o, i in d["htlcs_reported"]}
        monitor._fully_resolved = bool(d["fully_resolved"])
        monitor._replay()
        monitor._learned.clear()
        return monitor

    # --- the chain log and its replay -------------------------------------------------------------

    def _disconnect_from(self, height: int) -> None:
        """Forget every transaction confirmed at `height` or above, and replay the rest."""
        if any(h >= height for h, _ in self._log):
            self._log = [(h, tx) for h, tx in self._log if h < height]
            self._replay()
        self._sent_at.clear()

    def _record(self, tx: Transaction, height: int) -> None:
        """Apply a confirmed transaction, and log it if it spent something we watch."""
        txid = tx.txid
        if any(logged.txid == txid for _, logged in self._log):
            return
        if self._apply(tx, txid, height):
            self._log.append((height, tx))

    def _replay(self) -> None:
        self._closing = None
        self._outputs = {}
        self._outcomes = {}
        for height, tx in self._log:
            self._apply(tx, tx.txid, height)

    def _apply(self, tx: Transaction, txid: bytes, height: int) -> bool:
        if self._closing is None:
            if any(txin.prevout == self.data.funding_outpoint for txin in tx.inputs):
                self._on_closing(tx, txid, height)
                return True
            return False
        relevant = False
        for index, txin in enumerate(tx.inputs):
            out = self._outputs.get(txin.prevout)
            if out is None or out.spent_txid is not None:
                continue
            relevant = True
            out.spent_txid = txid
            out.spent_height = height
            if out.kind.is_commitment_htlc:
                self._on_htlc_spend(out, tx, txid, index, height)
        return relevant

    def _on_closing(self, tx: Transaction, txid: bytes, height: int) -> None:
        found = self._view.classify(tx, txid, height)
        self._closing = _Closing(found.kind, txid, height, found.commitment_number, found.htlcs)
        for out in found.outputs:
            self._outputs[out.outpoint] = out
        # HTLCs without an output in the commitment that confirmed fail with it (BOLT 5).
        matched = {o.htlc.key for o in found.outputs if o.htlc is not None}
        for key, htlc in self._reportable_htlcs().items():
            if key not in matched:
                preimage = self.data.preimages.get(htlc.payment_hash) if htlc.outgoing else None
                self._outcomes[key] = _Outcome(htlc, height, preimage)

    def _on_htlc_spend(self, out: TrackedOutput, tx: Transaction, txid: bytes, index: int, height: int) -> None:
        htlc = out.htlc
        assert htlc is not None
        preimage = preimage_in_witness(tx.inputs[index].witness, htlc.payment_hash)
        if preimage is not None:
            self._learn(htlc.payment_hash, preimage)
        if htlc.key in self._reportable_htlcs() and htlc.key not in self._outcomes:
            self._outcomes[htlc.key] = _Outcome(htlc, height, preimage)
        second = self._view.second_stage_output(out, tx, txid, index, height)
        if second is not None:
            self._outputs[second.outpoint] = second

    def _learn(self, payment_hash: bytes, preimage: bytes) -> None:
        if payment_hash not in self.data.preimages:
            self.data.preimages[payment_hash] = preimage
            self._learned.append((payment_hash, preimage))

    def _learn_from_mempool(self, tx: Transaction) -> None:
        for txin in tx.inputs:
            out = self._outputs.get(txin.prevout)
            if out is not None and out.htlc is not None and out.kind.is_commitment_htlc:
                preimage = preimage_in_witness(txin.witness, out.htlc.payment_hash)
                if preimage is not None:
                    self._learn(out.htlc.payment_hash, preimage)

    def _reportable_htlcs(self) -> dict[tuple[bool, int], MonitorHtlc]:
        """The HTLCs whose on-chain fate we report: every one not yet settled off chain (in our
        latest commitment or the peer's unrevoked ones), and those of the commitment that
        confirmed — unless it is a revoked one, whose own HTLCs were settled long ago."""
        closing = self._closing
        if closing is None or closing.kind not in (CloseKind.LOCAL, CloseKind.REMOTE, CloseKind.REVOKED):
            return {}
        data = self.data
        htlcs: dict[tuple[bool, int], MonitorHtlc] = {}
        for c in (data.local_commitment, data.remote_commitment, data.remote_next_commitment):
            if c is not None:
                htlcs.update((h.key, h) for h in c.htlcs)
        if closing.kind is not CloseKind.REVOKED:
            htlcs.update((h.key, h) for h in closing.htlcs)
        return htlcs

    # --- effects --------------------------------------------------------------------------------

    def _depth(self, height: int) -> int:
        return self.tip_height - height + 1

    def _report_preimages(self) -> list[Effect]:
        effects: list[Effect] = [PreimageLearned(h, p) for h, p in self._learned]
        self._learned.clear()
        return effects

    def _tick(self) -> list[Effect]:
        """Everything the current state calls for, each thing once per block."""
        effects: list[Effect] = []
        closing = self._closing
        for txid in [t for t in self._closes_reported if closing is None or t != closing.txid]:
            del self._closes_reported[txid]
            effects.append(ChannelCloseReorged(txid))
        if closing is not None and self._closes_reported.get(closing.txid) is not closing.kind:
            self._closes_reported[closing.txid] = closing.kind
            effects.append(ChannelClosedOnChain(closing.kind, closing.txid, closing.height, closing.commitment_number))
        effects += self._report_preimages()
        for out in self._outputs.values():
            if out.outpoint not in self._watched:
                self._watched.add(out.outpoint)
                effects.append(WatchOutpoint(out.outpoint, out.script_pubkey))
        safe = self._policy.reorg_safety_depth
        for key, outcome in sorted(self._outcomes.items()):
            if key not in self._htlcs_reported and self._depth(outcome.height) >= safe:
                self._htlcs_reported.add(key)
                h = outcome.htlc
                effects.append(HtlcResolved(h.payment_hash, outcome.preimage, h.amount_msat, h.htlc_id, h.outgoing))
        if closing is None:
            self._check_deadlines()
            if self._force_close_reason is not None:
                effects += self._commitment_effects(self._force_close_reason)
            return effects
        uneconomic: set[OutPoint] = set()
        effects += self._claim_effects(uneconomic)
        if not self._fully_resolved and self._all_resolved(uneconomic):
            self._fully_resolved = True
            self._claims.clear()
            self._funded_htlc_txs.clear()
            effects.append(ChannelFullyResolved(closing.txid))
        return effects

    def _check_deadlines(self) -> None:
        """Go on chain while an HTLC of our commitment can still be enforced there (as LDK does)."""
        policy = self._policy
        if not policy.auto_force_close or self._force_close_reason is not None:
            return
        lc = self.data.local_commitment
        tip = self.tip_height
        for ho in self._view.local_ctx(lc).htlc_outputs:
            htlc = lc.htlcs[ho.htlc_index]
            if htlc.outgoing and tip >= htlc.cltv_expiry + policy.outgoing_htlc_grace_blocks:
                self._force_close_reason = f"outgoing HTLC {htlc.htlc_id} expired at {htlc.cltv_expiry}"
                return
            if (
                not htlc.outgoing
                and htlc.payment_hash in self.data.preimages
                and tip + policy.incoming_htlc_claim_buffer >= htlc.cltv_expiry
            ):
                self._force_close_reason = f"incoming HTLC {htlc.htlc_id} expires at {htlc.cltv_expiry}"
                return

    def _once_per_block(self, tag: str, ident: bytes) -> bool:
        if self._sent_at.get((tag, ident)) == self.tip_height:
            return False
        self._sent_at[(tag, ident)] = self.tip_height
        return True

    def _broadcast(self, tx: Transaction, reason: str) -> list[Effect]:
        txid = tx.txid
        effects: list[Effect] = []
        if self._once_per_block("broadcast", txid):
            effects.append(Broadcast(tx.copy(), reason))
        if txid not in self._conf_watched:
            self._conf_watched.add(txid)
            effects.append(WatchConfirmations(txid, self._policy.reorg_safety_depth))
        return effects

    def _commitment_effects(self, reason: str) -> list[Effect]:
        lc = self.data.local_commitment
        ctx = self._view.local_ctx(lc)
        tx = self._view.signed_local_commitment(lc)
        effects = self._broadcast(tx, f"our commitment {lc.commitment_number}: {reason}")
        target = self._policy.urgent_feerate_per_kw
        anchors = [op for op, c in self._view.our_anchor_outpoints().items() if c is ctx]
        if anchors and ctx.fee_sat * 1000 < target * tx.weight and self._once_per_block("bump", ctx.txid):
            effects.append(NeedFeeBump(ctx.txid, anchors[0], target, tx.weight, ctx.fee_sat))
        return effects

    def _claim_effects(self, uneconomic: set[OutPoint]) -> list[Effect]:
        """Sweeps for every unspent output we can spend now; one justice tx for all revoked ones."""
        data, policy, tip = self.data, self._policy, self.tip_height
        secrets, anchors = data.secrets, data.channel_type.anchors
        effects: list[Effect] = []
        justice: list[SweepInput] = []
        for out in sorted(self._outputs.values(), key=lambda o: (o.outpoint.txid, o.outpoint.index)):
            if out.spent_txid is not None:
                continue
            kind, htlc, point = out.kind, out.htlc, out.point
            op, amount, ws = out.outpoint, out.amount_sat, out.witness_script
            if kind.is_revoked:
                assert out.revoked_number is not None
                key = self._view.revocation_privkey(out.revoked_number)
                make = revoked_htlc_input if kind is OutputKind.REVOKED_HTLC else revoked_to_local_input
                justice.append(make(op, amount, ws, key))
                continue
            if kind in (OutputKind.LOCAL_OFFERED_HTLC, OutputKind.LOCAL_RECEIVED_HTLC):
                effects += self._local_htlc_effects(out)
                continue
            sweep: SweepInput | None = None
            feerate = policy.urgent_feerate_per_kw
            if kind in (OutputKind.LOCAL_TO_LOCAL, OutputKind.LOCAL_HTLC_TX_OUTPUT):
                delay = data.local_to_self_delay
                if tip + 1 >= out.height + delay:  # BIP68: the next block may include it
                    assert point is not None
                    key = derive_privkey(secrets.delayed_payment_basepoint_secret, point)
                    sweep, feerate = delayed_input(op, amount, ws, key, delay), policy.sweep_feerate_per_kw
            elif kind is OutputKind.REMOTE_TO_REMOTE:  # anchors: 1-CSV, met once confirmed
                sweep = to_remote_input(op, amount, secrets.payment_basepoint_secret, anchors)
                feerate = policy.sweep_feerate_per_kw
            elif kind is OutputKind.REMOTE_OFFERED_HTLC:
                assert htlc is not None and point is not None
                preimage = data.preimages.get(htlc.payment_hash)
                if preimage is not None:
                    key = derive_privkey(secrets.htlc_basepoint_secret, point)
                    sweep = htlc_preimage_input(op, amount, ws, key, preimage, anchors)
            elif kind is OutputKind.REMOTE_RECEIVED_HTLC:
                assert htlc is not None and point is not None
                if tip >= htlc.cltv_expiry:  # nLockTime cltv_expiry is final in the next block
                    key = derive_privkey(secrets.htlc_basepoint_secret, point)
                    sweep = htlc_timeout_input(op, amount, ws, key, htlc.cltv_expiry, anchors)
            if sweep is not None:
                effects += self._sweep_effects([sweep], feerate, kind.value, uneconomic)
        if justice:
            effects += self._sweep_effects(justice, policy.urgent_feerate_per_kw, "justice", uneconomic)
        return effects

    def _sweep_effects(self, inputs: list[SweepInput], feerate: int, what: str, uneconomic: set[OutPoint]) -> list[Effect]:
        """Broadcast the sweep of `inputs`: the same transaction again, or a replacement paying
        at least one relay-fee step more when the fee rate went up."""
        key = tuple(i.outpoint for i in inputs)
        claim = self._claims.get(key)
        if claim is None or claim.feerate_per_kw < feerate:
            if claim is not None:
                feerate = max(feerate, claim.feerate_per_kw + _RBF_STEP_PER_KW)
            tx = build_sweep_tx(inputs, self.data.destination_script, feerate)
            if tx is None:
                if claim is None:
                    uneconomic.update(key)
                    return []
            else:
                claim = _Claim(tx, feerate)
                self._claims[key] = claim
        return self._broadcast(claim.tx, f"{what}: {len(inputs)} output(s) to our destination")

    def _local_htlc_effects(self, out: TrackedOutput) -> list[Effect]:
        """HTLC-timeout / HTLC-success of our commitment: pre-signed by the peer. With anchors
        they pay no fee, so the host adds inputs first (:class:`NeedHtlcTxFunding`)."""
        htlc = out.htlc
        assert htlc is not None and out.commitment is not None and out.htlc_output is not None
        preimage: bytes | None = None
        if htlc.outgoing:
            if self.tip_height < htlc.cltv_expiry:
                return []
            what = f"HTLC-timeout of outgoing HTLC {htlc.htlc_id}"
        else:
            preimage = self.data.preimages.get(htlc.payment_hash)
            if preimage is None:
                return []
            what = f"HTLC-success of incoming HTLC {htlc.htlc_id}"
        if not self.data.channel_type.anchors:
            key = (out.outpoint,)
            claim = self._claims.get(key)
            if claim is None:
                tx = build_htlc_tx(out.commitment, out.htlc_output)
                claim = _Claim(self._finalize_local_htlc_tx(out, tx, preimage), 0)
                self._claims[key] = claim
            return self._broadcast(claim.tx, what)
        funded = self._funded_htlc_txs.get(out.outpoint)
        if funded is not None:
            return self._broadcast(funded, what)
        if not self._once_per_block("fund", out.outpoint.to_bytes()):
            return []
        template = build_htlc_tx(out.commitment, out.htlc_output)
        weight = finalize_htlc_tx(template, out.htlc_output, _DUMMY_SIG, _DUMMY_SIG, preimage).weight
        return [NeedHtlcTxFunding(out.outpoint, template, weight, self._policy.urgent_feerate_per_kw)]

    def _finalize_local_htlc_tx(self, out: TrackedOutput, tx: Transaction, preimage: bytes | None) -> Transaction:
        assert out.point is not None and out.htlc_output is not None
        key = derive_privkey(self.data.secrets.htlc_basepoint_secret, out.point)
        our_sig = sign_htlc_tx(tx, out.htlc_output, key)
        return finalize_htlc_tx(tx, out.htlc_output, out.remote_htlc_sig, our_sig, preimage)

    def _all_resolved(self, uneconomic: set[OutPoint]) -> bool:
        """BOLT 5 "irrevocably resolved": every output spent that deep, not worth spending, or an
        HTLC we cannot claim that expired; and every HTLC outcome reported."""
        closing = self._closing
        safe = self._policy.reorg_safety_depth
        if closing is None or self._depth(closing.height) < safe:
            return False
        for out in self._outputs.values():
            if out.spent_txid is not None:
                if self._depth(out.spent_height) < safe:
                    return False
                continue
            if out.outpoint in uneconomic:
                continue
            htlc = out.htlc
            peer_may_take = out.kind in (OutputKind.REMOTE_OFFERED_HTLC, OutputKind.LOCAL_RECEIVED_HTLC)
            if (
                peer_may_take
                and htlc is not None
                and htlc.payment_hash not in self.data.preimages
                and self.tip_height >= htlc.cltv_expiry + safe
            ):
                continue
            return False
        return all(key in self._htlcs_reported for key in self._outcomes)
