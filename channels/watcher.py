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
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Union

from base_chain.crypto import PrivateKey, PublicKey
from base_chain.sighash import SIGHASH_ALL
from base_chain.templates import p2wsh
from base_chain.tx import OutPoint, Transaction

from . import scripts
from .keys import (
    ChannelKeys,
    CommitmentKeys,
    derive_commitment_keys,
    derive_privkey,
    derive_revocation_privkey,
    per_commitment_index,
    per_commitment_point,
)
from .monitor_data import (
    LocalCommitment,
    MonitorData,
    MonitorHtlc,
    MonitorPolicy,
    RemoteCommitment,
    outpoint_from_str,
    outpoint_to_str,
)
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
from .transactions import (
    CommitmentParams,
    CommitmentSpec,
    CommitmentTx,
    HtlcOutput,
    build_commitment_tx,
    build_htlc_tx,
    commitment_number_from_tx,
    commitment_sighash,
    finalize_commitment,
    finalize_htlc_tx,
    funding_script_pubkey,
    htlc_sighash,
    remote_htlc_sighash_type,
    sign_commitment,
    sign_htlc_tx,
)

__all__ = [
    "ChannelMonitor",
    "MonitorError",
    "CloseKind",
    "OutputKind",
    "TrackedOutput",
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
#: The smallest fee-rate step a replacement adds (Core's incremental relay fee, 1 sat/vB).
_RBF_STEP_PER_KW = 253


class MonitorError(ValueError):
    """An update the monitor refuses: out of order, inconsistent, or after the channel closed on chain."""


# --- effects ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send `tx` to the network (again: it is repeated every block until it confirms)."""

    tx: Transaction
    reason: str


@dataclass(frozen=True, slots=True)
class WatchOutpoint:
    """Report transactions that spend `outpoint` (``block_connected`` / ``spend_detected``)."""

    outpoint: OutPoint
    script_pubkey: bytes


@dataclass(frozen=True, slots=True)
class WatchConfirmations:
    """We broadcast `txid`; it matters until it is `depth` blocks deep."""

    txid: bytes
    depth: int


@dataclass(frozen=True, slots=True)
class NeedFeeBump:
    """Our commitment `txid` pays too little: CPFP it through our anchor `anchor_outpoint`.

    The host's wallet builds a child spending the anchor (330 sat) and its own
    coins, so that parent and child together pay `target_feerate_per_kw`
    (the parent has `parent_weight` and pays `parent_fee_sat`), signs its own
    inputs, and gets the anchor input signed by :meth:`ChannelMonitor.sign_anchor_input`.
    """

    txid: bytes
    anchor_outpoint: OutPoint
    target_feerate_per_kw: int
    parent_weight: int
    parent_fee_sat: int


@dataclass(frozen=True, slots=True)
class NeedHtlcTxFunding:
    """A zero-fee (anchors) HTLC transaction that needs fee inputs before it can go out.

    `tx` is the HTLC-timeout / HTLC-success transaction spending `htlc_outpoint`
    (input 0, output 0; `weight` once signed). The host appends wallet inputs
    and a change output (keeping input 0 and output 0 in place), signs its own
    inputs and passes the result to :meth:`ChannelMonitor.complete_htlc_tx`.
    """

    htlc_outpoint: OutPoint
    tx: Transaction
    weight: int
    target_feerate_per_kw: int


class CloseKind(enum.Enum):
    COOPERATIVE = "cooperative"
    LOCAL = "local"  # our current or previous commitment
    LOCAL_REVOKED = "local_revoked"  # an older commitment of ours: the peer may take everything
    REMOTE = "remote"  # the peer's current or next commitment
    REVOKED = "revoked"  # a revoked commitment of the peer: justice
    REMOTE_FUTURE = "remote_future"  # a commitment of the peer newer than we know (data loss)
    UNKNOWN = "unknown"  # a commitment we cannot place (lost funds warning)


@dataclass(frozen=True, slots=True)
class ChannelClosedOnChain:
    """The funding output was spent by `txid`, confirmed at `height`."""

    kind: CloseKind
    txid: bytes
    height: int
    commitment_number: int | None


@dataclass(frozen=True, slots=True)
class ChannelCloseReorged:
    """The closing transaction `txid` is no longer in the best chain."""

    txid: bytes


@dataclass(frozen=True, slots=True)
class HtlcResolved:
    """The HTLC ``(outgoing, htlc_id)`` is settled on chain, irreversibly (``reorg_safety_depth``).

    `preimage` set: it was fulfilled (an outgoing one: fulfill the incoming HTLC
    upstream). None: it failed — timed out, never made it on chain (trimmed, or
    not in the commitment that confirmed), or was taken by a justice
    transaction. The first resolution of an HTLC wins: the payment layer ignores
    this for an HTLC it already settled off chain.
    """

    payment_hash: bytes
    preimage: bytes | None
    amount_msat: int
    htlc_id: int
    outgoing: bool


@dataclass(frozen=True, slots=True)
class PreimageLearned:
    """A preimage seen on chain or in the mempool (fulfilling upstream is safe at once)."""

    payment_hash: bytes
    preimage: bytes


@dataclass(frozen=True, slots=True)
class ChannelFullyResolved:
    """Every output is irrevocably resolved: the monitor can be archived."""

    closing_txid: bytes


Effect = Union[
    Broadcast,
    WatchOutpoint,
    WatchConfirmations,
    NeedFeeBump,
    NeedHtlcTxFunding,
    ChannelClosedOnChain,
    ChannelCloseReorged,
    HtlcResolved,
    PreimageLearned,
    ChannelFullyResolved,
]


# --- what the monitor tracks after a close ----------------------------------------------------------


class OutputKind(enum.Enum):
    LOCAL_TO_LOCAL = "local_to_local"
    LOCAL_OFFERED_HTLC = "local_offered_htlc"  # ours, we offered: HTLC-timeout
    LOCAL_RECEIVED_HTLC = "local_received_htlc"  # ours, we received: HTLC-success
    LOCAL_HTLC_TX_OUTPUT = "local_htlc_tx_output"  # output of our HTLC tx: delayed sweep
    REMOTE_TO_REMOTE = "remote_to_remote"  # our output in the peer's commitment
    REMOTE_OFFERED_HTLC = "remote_offered_htlc"  # the peer's, it offered: preimage claim
    REMOTE_RECEIVED_HTLC = "remote_received_htlc"  # the peer's, we offered: timeout claim
    REVOKED_TO_LOCAL = "revoked_to_local"
    REVOKED_HTLC = "revoked_htlc"
    REVOKED_HTLC_TX_OUTPUT = "revoked_htlc_tx_output"


_COMMITMENT_HTLC_KINDS = frozenset(
    {
        OutputKind.LOCAL_OFFERED_HTLC,
        OutputKind.LOCAL_RECEIVED_HTLC,
        OutputKind.REMOTE_OFFERED_HTLC,
        OutputKind.REMOTE_RECEIVED_HTLC,
        OutputKind.REVOKED_HTLC,
    }
)
_REVOKED_KINDS = frozenset(
    {OutputKind.REVOKED_TO_LOCAL, OutputKind.REVOKED_HTLC, OutputKind.REVOKED_HTLC_TX_OUTPUT}
)


@dataclass(slots=True)
class TrackedOutput:
    """An output the monitor resolves. Derived state: rebuilt from the chain log, never stored."""

    outpoint: OutPoint
    kind: OutputKind
    amount_sat: int
    script_pubkey: bytes
    height: int  # confirmation height of the transaction that created it
    witness_script: bytes = b""
    point: PublicKey | None = None  # the commitment owner's per_commitment_point
    revoked_number: int | None = None
    htlc: MonitorHtlc | None = None
    commitment: CommitmentTx | None = None  # our commitment (for HTLC transactions)
    htlc_output: HtlcOutput | None = None
    remote_htlc_sig: bytes = b""
    spent_txid: bytes | None = None
    spent_height: int = 0


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


def _is_htlc_tx_witness(witness: Sequence[bytes]) -> bool:
    """``0 <remotehtlcsig> <localhtlcsig> <preimage or empty> <script>``: a second-stage HTLC tx."""
    return len(witness) == 5 and witness[0] == b""


# --- the monitor ------------------------------------------------------------------------------------------


class ChannelMonitor:
    """Watches one channel's funding output and resolves whatever spends it."""

    def __init__(self, data: MonitorData, tip_height: int = 0, *, _verify: bool = True) -> None:
        self.data = data
        self.tip_height = tip_height
        # Persistent state.
        self._log: list[tuple[int, Transaction]] = []
        self._force_close_reason: str | None = None
        self._claims: dict[tuple[OutPoint, ...], _Claim] = {}
        self._funded_htlc_txs: dict[OutPoint, Transaction] = {}
        self._closes_reported: dict[bytes, CloseKind] = {}
        self._htlcs_reported: set[tuple[bool, int]] = set()
        self._fully_resolved = False
        # Derived from data + log (see _replay).
        self._closing: _Closing | None = None
        self._outputs: dict[OutPoint, TrackedOutput] = {}
        self._outcomes: dict[tuple[bool, int], _Outcome] = {}
        self._learned: list[tuple[bytes, bytes]] = []
        # Per-session: what was announced to the host (re-announced by start()).
        self._watched: set[OutPoint] = set()
        self._conf_watched: set[bytes] = set()
        self._sent_at: dict[tuple[str, bytes], int] = {}
        # Memos of pure computations.
        self._local_keys = data.secrets.channel_keys()
        self._keys_memo: dict[tuple[bool, bytes], CommitmentKeys] = {}
        self._local_ctx_memo: dict[LocalCommitment, CommitmentTx] = {}
        self._revocation_key_memo: dict[int, PrivateKey] = {}
        if _verify:
            self._verify_local_commitment(data.local_commitment)

    # --- properties ---------------------------------------------------------------------------------

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
        return tuple(self._outputs.values())

    @property
    def _anchors(self) -> bool:
        return self.data.channel_type.anchors

    @property
    def _policy(self) -> MonitorPolicy:
        return self.data.policy

    # --- host interface: setup ---------------------------------------------------------------------

    def start(self) -> list[Effect]:
        """The watches to register and what to (re)broadcast: call after construction and after restart."""
        self._watched.clear()
        self._conf_watched.clear()
        self._sent_at.clear()
        funding_spk = funding_script_pubkey(
            self._local_keys.funding_pubkey, self.data.remote_keys.funding_pubkey
        )
        effects: list[Effect] = [WatchOutpoint(self.data.funding_outpoint, funding_spk)]
        return effects + self._tick()

    # --- host interface: chain events --------------------------------------------------------------

    def block_connected(self, height: int, txs: Iterable[Transaction] = ()) -> list[Effect]:
        """A block at `height` joined the best chain; `txs` are its transactions that spend
        watched outpoints, in block order. A height at or below the tip implies that the
        blocks from `height` on were disconnected first."""
        if height <= self.tip_height and self._log:
            self._forget_from(height)
            self._replay()
            self._sent_at.clear()
        self.tip_height = height
        for tx in txs:
            self._record(tx, height)
        return self._tick()

    def block_disconnected(self, height: int) -> list[Effect]:
        """The block at `height` (the tip) left the best chain; the tip is now `height - 1`."""
        self._forget_from(height)
        self.tip_height = height - 1
        self._replay()
        self._sent_at.clear()
        return self._tick()

    def spend_detected(self, outpoint: OutPoint, spending_tx: Transaction, height: int | None) -> list[Effect]:
        """`spending_tx` spends the watched `outpoint`: confirmed at `height`, or in the
        mempool when `height` is None (then only preimages are taken from it)."""
        if not any(txin.prevout == outpoint for txin in spending_tx.inputs):
            raise MonitorError(f"the transaction does not spend {outpoint}")
        if height is None:
            self._learn_from_mempool(spending_tx)
            return self._report_preimages()
        self._record(spending_tx, height)
        return self._tick()

    # --- host interface: channel updates ------------------------------------------------------------

    def update_commitment(self, commitment: LocalCommitment | RemoteCommitment) -> list[Effect]:
        """A new commitment: ours (we received ``commitment_signed``) or the peer's (we are
        about to send ``commitment_signed``). Persist before sending what depends on it."""
        if self._closing is not None:
            raise MonitorError("the funding output is already spent on chain")
        data = self.data
        if isinstance(commitment, LocalCommitment):
            expected = data.local_commitment.commitment_number + 1
            if commitment.commitment_number != expected:
                raise MonitorError(f"expected our commitment number {expected}, got {commitment.commitment_number}")
            self._verify_local_commitment(commitment)
            self._local_ctx_memo.pop(data.previous_local_commitment, None) if data.previous_local_commitment else None
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
        """The peer revoked its commitment `commitment_number` (``revoke_and_ack``)."""
        data = self.data
        current = data.remote_commitment
        index = per_commitment_index(commitment_number)
        if commitment_number < current.commitment_number:
            try:
                if data.remote_secrets.derive_old_secret(index) == secret:
                    return []  # a retransmission
            except ShachainError:
                pass
            raise MonitorError(f"commitment {commitment_number} was revoked with a different secret")
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
        if self._log:
            self._replay()  # the commitment on chain may just have become a revoked one
        return self._tick()

    def provide_preimage(self, preimage: bytes) -> list[Effect]:
        """A payment preimage (claims HTLCs we received, on chain if the channel closed)."""
        if len(preimage) != 32:
            raise MonitorError("a payment preimage is 32 bytes")
        self.data.preimages[hashlib.sha256(preimage).digest()] = preimage
        if self._log:
            self._replay()
        return self._tick()

    def update_policy(self, policy: MonitorPolicy) -> list[Effect]:
        """New fee rates or margins; pending claims are replaced if the fee rates rose."""
        self.data.policy = policy
        self._sent_at.clear()
        return self._tick()

    def force_close(self, reason: str = "force close requested") -> list[Effect]:
        """Broadcast our latest commitment (every block, with a CPFP request for anchors,
        until something spends the funding output)."""
        if self._closing is None and self._force_close_reason is None:
            self._force_close_reason = reason
        return self._tick()

    # --- host interface: fee inputs ------------------------------------------------------------------

    def local_commitment_tx(self) -> Transaction:
        """Our latest commitment, fully signed."""
        return self._signed_local_commitment(self.data.local_commitment)

    def sign_anchor_input(self, tx: Transaction, input_index: int) -> Transaction:
        """A copy of the host's CPFP child `tx` with its input `input_index`, which spends our
        anchor of one of our commitments, signed (SIGHASH_ALL: the child must be final)."""
        prevout = tx.inputs[input_index].prevout
        if prevout not in self._our_anchor_outpoints():
            raise MonitorError(f"{prevout} is not an anchor of our commitments")
        signed = tx.copy()
        sign_anchor_input(signed, input_index, self.data.secrets.funding_privkey)
        return signed

    def complete_htlc_tx(self, tx: Transaction) -> list[Effect]:
        """Sign the HTLC transaction of a :class:`NeedHtlcTxFunding` once the host added fee inputs."""
        if not tx.inputs or not tx.outputs:
            raise MonitorError("not an HTLC transaction")
        out = self._outputs.get(tx.inputs[0].prevout)
        if out is None or out.kind not in (OutputKind.LOCAL_OFFERED_HTLC, OutputKind.LOCAL_RECEIVED_HTLC):
            raise MonitorError("input 0 does not spend an HTLC output of our commitment")
        if out.spent_txid is not None:
            raise MonitorError("that HTLC output is already spent")
        assert out.commitment is not None and out.htlc_output is not None and out.htlc is not None
        template = build_htlc_tx(out.commitment, out.htlc_output)
        same = (
            tx.version == template.version
            and tx.locktime == template.locktime
            and tx.inputs[0].sequence == template.inputs[0].sequence
            and tx.outputs[0] == template.outputs[0]
        )
        if not same:
            raise MonitorError("input 0 / output 0 / version / locktime differ from the HTLC transaction")
        preimage = None
        if not out.htlc.outgoing:
            preimage = self.data.preimages.get(out.htlc.payment_hash)
            if preimage is None:
                raise MonitorError("no preimage for this HTLC")
        final = self._finalize_local_htlc_tx(out, tx, preimage)
        self._funded_htlc_txs[out.outpoint] = final
        return self._tick()

    # --- serialization ------------------------------------------------------------------------------

    def to_dict(self, *, include_secrets: bool = True) -> dict[str, Any]:
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
    def from_dict(cls, d: dict[str, Any], *, secrets: Any = None) -> ChannelMonitor:
        """Restore a monitor (call :meth:`start` next). `secrets`: see :meth:`MonitorData.from_dict`."""
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

    # --- keys and our commitments --------------------------------------------------------------------

    def _commitment_keys(self, point: PublicKey, owner_is_us: bool) -> CommitmentKeys:
        memo_key = (owner_is_us, point.to_bytes())
        keys = self._keys_memo.get(memo_key)
        if keys is None:
            ours: ChannelKeys = self._local_keys
            theirs = self.data.remote_keys
            local, remote = (ours, theirs) if owner_is_us else (theirs, ours)
            keys = derive_commitment_keys(point, local, remote)
            self._keys_memo[memo_key] = keys
        return keys

    def _revocation_privkey(self, commitment_number: int) -> PrivateKey:
        key = self._revocation_key_memo.get(commitment_number)
        if key is None:
            secret = self.data.remote_secrets.derive_old_secret(per_commitment_index(commitment_number))
            key = derive_revocation_privkey(self.data.secrets.revocation_basepoint_secret, secret)
            self._revocation_key_memo[commitment_number] = key
        return key

    def _local_ctx(self, lc: LocalCommitment) -> CommitmentTx:
        ctx = self._local_ctx_memo.get(lc)
        if ctx is None:
            data = self.data
            params = CommitmentParams(
                funding_outpoint=data.funding_outpoint,
                funding_sat=data.funding_sat,
                local_funding_pubkey=self._local_keys.funding_pubkey,
                remote_funding_pubkey=data.remote_keys.funding_pubkey,
                to_self_delay=data.local_to_self_delay,
                dust_limit_sat=data.local_dust_limit_sat,
                local_is_opener=data.local_is_opener,
                obscure_factor=data.obscure_factor,
            )
            spec = CommitmentSpec(
                to_local_msat=lc.our_balance_msat,
                to_remote_msat=lc.their_balance_msat,
                htlcs=tuple(h.commitment_htlc(owner_is_us=True) for h in lc.htlcs),
                feerate_per_kw=lc.feerate_per_kw,
                channel_type=data.channel_type,
            )
            point = data.secrets.per_commitment_point(lc.commitment_number)
            keys = self._commitment_keys(point, owner_is_us=True)
            ctx = build_commitment_tx(spec, params, keys, lc.commitment_number)
            self._local_ctx_memo[lc] = ctx
        return ctx

    def _verify_local_commitment(self, lc: LocalCommitment) -> None:
        """The peer's signatures must make our commitment (and each HTLC tx) broadcastable."""
        try:
            ctx = self._local_ctx(lc)
        except ValueError as e:
            raise MonitorError(f"cannot build our commitment: {e}") from e
        sig = lc.remote_commitment_sig
        funding_key = self.data.remote_keys.funding_pubkey
        if not sig or sig[-1] != SIGHASH_ALL or not funding_key.verify_der(sig[:-1], commitment_sighash(ctx)):
            raise MonitorError("the peer's commitment signature is not valid")
        if len(lc.remote_htlc_sigs) != len(ctx.htlc_outputs):
            raise MonitorError(
                f"{len(lc.remote_htlc_sigs)} HTLC signatures for {len(ctx.htlc_outputs)} HTLC outputs"
            )
        hash_type = remote_htlc_sighash_type(self.data.channel_type)
        for ho, htlc_sig in zip(ctx.htlc_outputs, lc.remote_htlc_sigs):
            digest = htlc_sighash(build_htlc_tx(ctx, ho), ho, hash_type)
            if not htlc_sig or htlc_sig[-1] != hash_type or not ctx.keys.remote_htlc_pubkey.verify_der(
                htlc_sig[:-1], digest
            ):
                raise MonitorError(f"the peer's signature for HTLC output {ho.output_index} is not valid")

    def _signed_local_commitment(self, lc: LocalCommitment) -> Transaction:
        ctx = self._local_ctx(lc)
        ours = sign_commitment(ctx, self.data.secrets.funding_privkey)
        return finalize_commitment(ctx, ours, lc.remote_commitment_sig)

    def _our_anchor_outpoints(self) -> dict[OutPoint, CommitmentTx]:
        if not self._anchors:
            return {}
        spk = p2wsh(scripts.anchor_script(self._local_keys.funding_pubkey.to_bytes()))
        found: dict[OutPoint, CommitmentTx] = {}
        for lc in (self.data.local_commitment, self.data.previous_local_commitment):
            if lc is None:
                continue
            ctx = self._local_ctx(lc)
            for n, out in enumerate(ctx.tx.outputs):
                if out.script_pubkey == spk:
                    found[OutPoint(ctx.txid, n)] = ctx
        return found

    # --- the chain log and its replay ----------------------------------------------------------------

    def _forget_from(self, height: int) -> None:
        self._log = [(h, tx) for h, tx in self._log if h < height]

    def _record(self, tx: Transaction, height: int) -> None:
        """Apply a confirmed transaction if it spends something we watch, and log it."""
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
            self._on_spend(out, tx, txid, index, height)
        return relevant

    def _on_spend(self, out: TrackedOutput, tx: Transaction, txid: bytes, index: int, height: int) -> None:
        if out.kind not in _COMMITMENT_HTLC_KINDS:
            return
        assert out.htlc is not None and out.point is not None
        witness = tx.inputs[index].witness
        preimage = preimage_in_witness(witness, out.htlc.payment_hash)
        if preimage is not None:
            self._learn(out.htlc.payment_hash, preimage)
        self._set_outcome(out.htlc, height, preimage)
        if not _is_htlc_tx_witness(witness) or index >= len(tx.outputs):
            return
        # A second-stage HTLC transaction: its output `index` has the to_local form.
        if out.kind in (OutputKind.LOCAL_OFFERED_HTLC, OutputKind.LOCAL_RECEIVED_HTLC):
            kind, delay = OutputKind.LOCAL_HTLC_TX_OUTPUT, self.data.local_to_self_delay
            keys = self._commitment_keys(out.point, owner_is_us=True)
        elif out.kind is OutputKind.REVOKED_HTLC:
            kind, delay = OutputKind.REVOKED_HTLC_TX_OUTPUT, self.data.remote_to_self_delay
            keys = self._commitment_keys(out.point, owner_is_us=False)
        else:
            return  # the peer's HTLC tx on its own commitment: its output is the peer's
        ws = scripts.htlc_tx_output_script(
            keys.revocation_pubkey.to_bytes(), delay, keys.local_delayed_pubkey.to_bytes()
        )
        txout = tx.outputs[index]
        if txout.script_pubkey != p2wsh(ws):
            return
        op = OutPoint(txid, index)
        self._outputs[op] = TrackedOutput(
            op, kind, txout.amount_sat, txout.script_pubkey, height, ws,
            point=out.point, revoked_number=out.revoked_number, htlc=out.htlc,
        )  # fmt: skip

    def _learn(self, payment_hash: bytes, preimage: bytes) -> None:
        if payment_hash not in self.data.preimages:
            self.data.preimages[payment_hash] = preimage
            self._learned.append((payment_hash, preimage))

    def _set_outcome(self, htlc: MonitorHtlc, height: int, preimage: bytes | None) -> None:
        if self._closing is None or htlc.key not in self._reportable_htlcs():
            return
        if htlc.key not in self._outcomes:
            self._outcomes[htlc.key] = _Outcome(htlc, height, preimage)

    def _live_htlcs(self) -> dict[tuple[bool, int], MonitorHtlc]:
        data = self.data
        live: dict[tuple[bool, int], MonitorHtlc] = {}
        for c in (data.local_commitment, data.remote_commitment, data.remote_next_commitment):
            if c is not None:
                live.update((h.key, h) for h in c.htlcs)
        return live

    def _reportable_htlcs(self) -> dict[tuple[bool, int], MonitorHtlc]:
        """The HTLCs whose on-chain fate we report: every unresolved one, and those of the
        commitment that confirmed (unless it is a revoked one: those are long settled)."""
        closing = self._closing
        if closing is None or closing.kind not in (CloseKind.LOCAL, CloseKind.REMOTE, CloseKind.REVOKED):
            return {}
        htlcs = self._live_htlcs()
        if closing.kind is not CloseKind.REVOKED:
            htlcs.update((h.key, h) for h in closing.htlcs)
        return htlcs

    # --- classification ---------------------------------------------------------------------------

    def _on_closing(self, tx: Transaction, txid: bytes, height: int) -> None:
        data = self.data
        number = commitment_number_from_tx(tx, data.obscure_factor)
        kind, htlcs, outputs = self._classify(tx, txid, height, number)
        self._closing = _Closing(kind, txid, height, number, htlcs)
        for out in outputs:
            self._outputs[out.outpoint] = out
        # HTLCs with no output in the commitment that confirmed fail with it.
        matched = {o.htlc.key for o in outputs if o.htlc is not None}
        for key, htlc in self._reportable_htlcs().items():
            if key not in matched:
                preimage = data.preimages.get(htlc.payment_hash) if htlc.outgoing else None
                self._outcomes[key] = _Outcome(htlc, height, preimage)

    def _classify(
        self, tx: Transaction, txid: bytes, height: int, number: int | None
    ) -> tuple[CloseKind, tuple[MonitorHtlc, ...], list[TrackedOutput]]:
        data = self.data
        if number is None:
            return CloseKind.COOPERATIVE, (), []
        for lc in (data.local_commitment, data.previous_local_commitment):
            if lc is not None and lc.commitment_number == number and self._local_ctx(lc).txid == txid:
                return CloseKind.LOCAL, lc.htlcs, self._local_outputs(lc, height)
        if self._looks_like_ours(tx, number):
            return CloseKind.LOCAL_REVOKED, (), []
        for rc in (data.remote_commitment, data.remote_next_commitment):
            if rc is not None and rc.commitment_number == number:
                outs = self._remote_outputs(tx, txid, height, rc.per_commitment_point, rc.htlcs, None)
                return CloseKind.REMOTE, rc.htlcs, outs
        if number < data.remote_commitment.commitment_number:
            try:
                secret = data.remote_secrets.derive_old_secret(per_commitment_index(number))
            except ShachainError:
                return CloseKind.UNKNOWN, (), self._remote_outputs(tx, txid, height, None, (), None)
            htlcs = data.revoked_htlcs.get(number, ())
            outs = self._remote_outputs(tx, txid, height, per_commitment_point(secret), htlcs, number)
            return CloseKind.REVOKED, htlcs, outs
        return CloseKind.REMOTE_FUTURE, (), self._remote_outputs(tx, txid, height, None, (), None)

    def _looks_like_ours(self, tx: Transaction, number: int) -> bool:
        """An output only our commitment `number` can have: our to_local, or the peer's to_remote."""
        keys = self._commitment_keys(self.data.secrets.per_commitment_point(number), owner_is_us=True)
        to_local = p2wsh(
            scripts.to_local_script(
                keys.revocation_pubkey.to_bytes(), self.data.local_to_self_delay, keys.local_delayed_pubkey.to_bytes()
            )
        )
        their_main = scripts.to_remote_script_pubkey(self.data.remote_keys.payment_basepoint.to_bytes(), self._anchors)
        return any(o.script_pubkey in (to_local, their_main) for o in tx.outputs)

    def _local_outputs(self, lc: LocalCommitment, height: int) -> list[TrackedOutput]:
        ctx = self._local_ctx(lc)
        point = ctx.keys.per_commitment_point
        outs: list[TrackedOutput] = []
        if ctx.to_local_index is not None:
            i = ctx.to_local_index
            txout = ctx.tx.outputs[i]
            outs.append(
                TrackedOutput(
                    OutPoint(ctx.txid, i), OutputKind.LOCAL_TO_LOCAL, txout.amount_sat, txout.script_pubkey,
                    height, ctx.to_local_witness_script, point=point,
                )  # fmt: skip
            )
        for k, ho in enumerate(ctx.htlc_outputs):
            htlc = lc.htlcs[ho.htlc_index]
            kind = OutputKind.LOCAL_OFFERED_HTLC if htlc.outgoing else OutputKind.LOCAL_RECEIVED_HTLC
            outs.append(
                TrackedOutput(
                    OutPoint(ctx.txid, ho.output_index), kind, ho.amount_sat,
                    ctx.tx.outputs[ho.output_index].script_pubkey, height, ho.witness_script,
                    point=point, htlc=htlc, commitment=ctx, htlc_output=ho,
                    remote_htlc_sig=lc.remote_htlc_sigs[k],
                )  # fmt: skip
            )
        return outs

    def _remote_outputs(
        self,
        tx: Transaction,
        txid: bytes,
        height: int,
        point: PublicKey | None,
        htlcs: tuple[MonitorHtlc, ...],
        revoked_number: int | None,
    ) -> list[TrackedOutput]:
        """Match the peer's commitment outputs by script: ours to_remote always (static key),
        and with the point its to_local (if revoked) and HTLCs."""
        anchors = self._anchors
        candidates: dict[bytes, list[tuple[OutputKind, bytes, MonitorHtlc | None]]] = {}

        def expect(spk: bytes, kind: OutputKind, ws: bytes, htlc: MonitorHtlc | None) -> None:
            candidates.setdefault(spk, []).append((kind, ws, htlc))

        our_payment = self._local_keys.payment_basepoint.to_bytes()
        remote_ws = scripts.to_remote_anchor_script(our_payment) if anchors else b""
        expect(scripts.to_remote_script_pubkey(our_payment, anchors), OutputKind.REMOTE_TO_REMOTE, remote_ws, None)
        if point is not None:
            keys = self._commitment_keys(point, owner_is_us=False)
            rev = keys.revocation_pubkey.to_bytes()
            if revoked_number is not None:
                ws = scripts.to_local_script(rev, self.data.remote_to_self_delay, keys.local_delayed_pubkey.to_bytes())
                expect(p2wsh(ws), OutputKind.REVOKED_TO_LOCAL, ws, None)
            for htlc in htlcs:
                ch = htlc.commitment_htlc(owner_is_us=False)
                owner_htlc, our_htlc = keys.local_htlc_pubkey.to_bytes(), keys.remote_htlc_pubkey.to_bytes()
                if ch.offered:
                    ws = scripts.offered_htlc_script(rev, owner_htlc, our_htlc, htlc.payment_hash, anchors)
                    kind = OutputKind.REMOTE_OFFERED_HTLC
                else:
                    ws = scripts.received_htlc_script(
                        rev, owner_htlc, our_htlc, htlc.payment_hash, htlc.cltv_expiry, anchors
                    )
                    kind = OutputKind.REMOTE_RECEIVED_HTLC
                if revoked_number is not None:
                    kind = OutputKind.REVOKED_HTLC
                expect(p2wsh(ws), kind, ws, htlc)
        outs: list[TrackedOutput] = []
        for i, txout in enumerate(tx.outputs):
            options = candidates.get(txout.script_pubkey)
            if not options:
                continue
            # Equal scripts (same hash, expiry and direction) are told apart by amount.
            pick = next(
                (o for o in options if o[2] is not None and o[2].amount_msat // 1000 == txout.amount_sat),
                options[0],
            )
            options.remove(pick)
            kind, ws, htlc = pick
            outs.append(
                TrackedOutput(
                    OutPoint(txid, i), kind, txout.amount_sat, txout.script_pubkey, height, ws,
                    point=point, revoked_number=revoked_number, htlc=htlc,
                )  # fmt: skip
            )
        return outs

    # --- effects -------------------------------------------------------------------------------------

    def _depth(self, height: int) -> int:
        return self.tip_height - height + 1

    def _report_preimages(self) -> list[Effect]:
        effects: list[Effect] = [PreimageLearned(h, p) for h, p in self._learned]
        self._learned.clear()
        return effects

    def _learn_from_mempool(self, tx: Transaction) -> None:
        for txin in tx.inputs:
            out = self._outputs.get(txin.prevout)
            if out is not None and out.htlc is not None and out.kind in _COMMITMENT_HTLC_KINDS:
                preimage = preimage_in_witness(txin.witness, out.htlc.payment_hash)
                if preimage is not None:
                    self._learn(out.htlc.payment_hash, preimage)

    def _tick(self) -> list[Effect]:
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
            effects.append(ChannelFullyResolved(closing.txid))
        return effects

    def _check_deadlines(self) -> None:
        """LDK's rule: go on chain while an HTLC can still be enforced there."""
        policy = self._policy
        if not policy.auto_force_close or self._force_close_reason is not None:
            return
        lc = self.data.local_commitment
        tip = self.tip_height
        for ho in self._local_ctx(lc).htlc_outputs:
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

    def _send(self, tag: str, txid: bytes) -> bool:
        """True once per block for each thing we (re)send."""
        if self._sent_at.get((tag, txid)) == self.tip_height:
            return False
        self._sent_at[(tag, txid)] = self.tip_height
        return True

    def _broadcast(self, tx: Transaction, reason: str) -> list[Effect]:
        txid = tx.txid
        effects: list[Effect] = []
        if self._send("broadcast", txid):
            effects.append(Broadcast(tx, reason))
        if txid not in self._conf_watched:
            self._conf_watched.add(txid)
            effects.append(WatchConfirmations(txid, self._policy.reorg_safety_depth))
        return effects

    def _commitment_effects(self, reason: str) -> list[Effect]:
        lc = self.data.local_commitment
        ctx = self._local_ctx(lc)
        tx = self._signed_local_commitment(lc)
        effects = self._broadcast(tx, f"our commitment {lc.commitment_number}: {reason}")
        target = self._policy.urgent_feerate_per_kw
        anchors = [op for op, c in self._our_anchor_outpoints().items() if c is ctx]
        if anchors and ctx.fee_sat * 1000 < target * tx.weight and self._send("bump", ctx.txid):
            effects.append(NeedFeeBump(ctx.txid, anchors[0], target, tx.weight, ctx.fee_sat))
        return effects

    def _claim_effects(self, uneconomic: set[OutPoint]) -> list[Effect]:
        data, policy, tip = self.data, self._policy, self.tip_height
        anchors = self._anchors
        effects: list[Effect] = []
        justice: list[SweepInput] = []
        for out in sorted(self._outputs.values(), key=lambda o: (o.outpoint.txid, o.outpoint.index)):
            if out.spent_txid is not None:
                continue
            kind, htlc = out.kind, out.htlc
            op, amount, ws = out.outpoint, out.amount_sat, out.witness_script
            if kind in _REVOKED_KINDS:
                assert out.revoked_number is not None
                key = self._revocation_privkey(out.revoked_number)
                make = revoked_htlc_input if kind is OutputKind.REVOKED_HTLC else revoked_to_local_input
                justice.append(make(op, amount, ws, key))
                continue
            sweep: SweepInput | None = None
            feerate = policy.urgent_feerate_per_kw
            if kind in (OutputKind.LOCAL_TO_LOCAL, OutputKind.LOCAL_HTLC_TX_OUTPUT):
                delay = data.local_to_self_delay
                if tip + 1 >= out.height + delay:  # BIP68: valid in the block after the tip
                    assert out.point is not None
                    key = derive_privkey(data.secrets.delayed_payment_basepoint_secret, out.point)
                    sweep, feerate = delayed_input(op, amount, ws, key, delay), policy.sweep_feerate_per_kw
            elif kind is OutputKind.REMOTE_TO_REMOTE:
                sweep = to_remote_input(op, amount, data.secrets.payment_basepoint_secret, anchors)
                feerate = policy.sweep_feerate_per_kw
            elif kind is OutputKind.REMOTE_OFFERED_HTLC:
                assert htlc is not None and out.point is not None
                preimage = data.preimages.get(htlc.payment_hash)
                if preimage is not None:
                    key = derive_privkey(data.secrets.htlc_basepoint_secret, out.point)
                    sweep = htlc_preimage_input(op, amount, ws, key, preimage, anchors)
            elif kind is OutputKind.REMOTE_RECEIVED_HTLC:
                assert htlc is not None and out.point is not None
                if tip >= htlc.cltv_expiry:  # nLockTime = cltv_expiry is final in the next block
                    key = derive_privkey(data.secrets.htlc_basepoint_secret, out.point)
                    sweep = htlc_timeout_input(op, amount, ws, key, htlc.cltv_expiry, anchors)
            else:  # our commitment's HTLCs: second-stage transactions
                effects += self._local_htlc_effects(out)
                continue
            if sweep is not None:
                effects += self._sweep_effects([sweep], feerate, kind.value, uneconomic)
        if justice:
            effects += self._sweep_effects(justice, policy.urgent_feerate_per_kw, "justice", uneconomic)
        return effects

    def _sweep_effects(
        self, inputs: list[SweepInput], feerate: int, what: str, uneconomic: set[OutPoint]
    ) -> list[Effect]:
        key = tuple(i.outpoint for i in inputs)
        claim = self._claims.get(key)
        if claim is None or claim.feerate_per_kw < feerate:
            if claim is not None:
                feerate = max(feerate, claim.feerate_per_kw + _RBF_STEP_PER_KW)
            tx = build_sweep_tx(inputs, self.data.destination_script, feerate)
            if tx is None:
                uneconomic.update(key)
                return []
            claim = _Claim(tx, feerate)
            self._claims[key] = claim
        return self._broadcast(claim.tx, f"{what}: sweep of {len(inputs)} output(s)")

    def _local_htlc_effects(self, out: TrackedOutput) -> list[Effect]:
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
        if not self._anchors:
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
        template = build_htlc_tx(out.commitment, out.htlc_output)
        if not self._send("fund", out.outpoint.to_bytes()):
            return []
        dummy = b"\x30" + b"\x00" * 71 + bytes([SIGHASH_ALL])
        weight = finalize_htlc_tx(template, out.htlc_output, dummy, dummy, preimage).weight
        return [NeedHtlcTxFunding(out.outpoint, template, weight, self._policy.urgent_feerate_per_kw)]

    def _finalize_local_htlc_tx(self, out: TrackedOutput, tx: Transaction, preimage: bytes | None) -> Transaction:
        assert out.point is not None and out.htlc_output is not None
        key = derive_privkey(self.data.secrets.htlc_basepoint_secret, out.point)
        our_sig = sign_htlc_tx(tx, out.htlc_output, key)
        return finalize_htlc_tx(tx, out.htlc_output, out.remote_htlc_sig, our_sig, preimage)

    def _all_resolved(self, uneconomic: set[OutPoint]) -> bool:
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
            waiting_for_peer = out.kind in (OutputKind.REMOTE_OFFERED_HTLC, OutputKind.LOCAL_RECEIVED_HTLC)
            if (
                waiting_for_peer
                and htlc is not None
                and htlc.payment_hash not in self.data.preimages
                and self.tip_height >= htlc.cltv_expiry + safe
            ):
                continue  # expired and we cannot claim it: resolved by expiry (BOLT 5)
            return False
        return all(key in self._htlcs_reported for key in self._outcomes)
