"""What a channel looks like on chain: its commitment transactions, and our outputs in them.

:class:`ChainView` answers, for one channel's :class:`MonitorData`, the
questions the watcher asks of a transaction — is this a commitment, whose,
which one, and which of its outputs must we resolve (:class:`TrackedOutput`) —
plus the keys and signed transactions that go with them. It derives, never
stores: its memos only cache pure computations (EC operations, commitment
building), keyed by immutable values, so it stays correct as the data changes.

Recognition (BOLT 5, BOLT 3):

* no commitment number in nLockTime / nSequence: a closing transaction;
* exactly our current or previous commitment (same txid): ours;
* an output only our commitment can have (our ``to_local`` for that number,
  or the peer's ``to_remote``): an older commitment of ours;
* the peer's current or next commitment number: the peer's, outputs matched by
  script with its ``per_commitment_point``;
* a lower number whose secret we hold: revoked — its point comes from the
  secret, its HTLCs from ``MonitorData.revoked_htlcs``;
* a higher number: the peer's, from a state we lost. Only ``to_remote`` can be
  found (static_remotekey: it pays our payment basepoint).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from base_chain.crypto import PrivateKey, PublicKey
from base_chain.sighash import SIGHASH_ALL
from base_chain.templates import p2wsh
from base_chain.tx import OutPoint, Transaction

from . import scripts
from .keys import (
    CommitmentKeys,
    derive_commitment_keys,
    derive_revocation_privkey,
    per_commitment_index,
    per_commitment_point,
)
from .monitor_data import LocalCommitment, MonitorData, MonitorHtlc
from .monitor_effects import CloseKind
from .shachain import ShachainError
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
    htlc_sighash,
    remote_htlc_sighash_type,
    sign_commitment,
)

__all__ = ["OutputKind", "TrackedOutput", "Classification", "ChainView", "is_htlc_tx_witness"]


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

    @property
    def is_commitment_htlc(self) -> bool:
        """An HTLC output of a commitment transaction (not of a second-stage transaction)."""
        return self in _COMMITMENT_HTLC_KINDS

    @property
    def is_revoked(self) -> bool:
        return self in _REVOKED_KINDS


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
    """An output the watcher resolves. Derived state: rebuilt from the chain, never stored."""

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


@dataclass(frozen=True, slots=True)
class Classification:
    kind: CloseKind
    commitment_number: int | None
    #: The HTLCs of the commitment that confirmed, when known.
    htlcs: tuple[MonitorHtlc, ...]
    outputs: tuple[TrackedOutput, ...]


def is_htlc_tx_witness(witness: list[bytes]) -> bool:
    """``0 <remotehtlcsig> <localhtlcsig> <preimage or empty> <script>``: a second-stage HTLC tx input."""
    return len(witness) == 5 and witness[0] == b""


class ChainView:
    """Derivations for one channel. Reads `data` live; caches only pure results."""

    def __init__(self, data: MonitorData) -> None:
        self.data = data
        self.local_keys = data.secrets.channel_keys()
        self._keys_memo: dict[tuple[bool, bytes], CommitmentKeys] = {}
        self._our_points: dict[int, PublicKey] = {}
        self._local_ctx_memo: dict[LocalCommitment, CommitmentTx] = {}
        self._signed_memo: dict[LocalCommitment, Transaction] = {}
        self._revocation_memo: dict[int, PrivateKey] = {}

    @property
    def anchors(self) -> bool:
        return self.data.channel_type.anchors

    # --- keys ---------------------------------------------------------------------------------

    def commitment_keys(self, point: PublicKey, owner_is_us: bool) -> CommitmentKeys:
        memo_key = (owner_is_us, point.to_bytes())
        keys = self._keys_memo.get(memo_key)
        if keys is None:
            ours, theirs = self.local_keys, self.data.remote_keys
            local, remote = (ours, theirs) if owner_is_us else (theirs, ours)
            keys = derive_commitment_keys(point, local, remote)
            self._keys_memo[memo_key] = keys
        return keys

    def our_point(self, commitment_number: int) -> PublicKey:
        point = self._our_points.get(commitment_number)
        if point is None:
            point = self.data.secrets.per_commitment_point(commitment_number)
            self._our_points[commitment_number] = point
        return point

    def revocation_privkey(self, commitment_number: int) -> PrivateKey:
        """The revocation key of the peer's revoked commitment (ShachainError if not revoked)."""
        key = self._revocation_memo.get(commitment_number)
        if key is None:
            secret = self.data.remote_secrets.derive_old_secret(per_commitment_index(commitment_number))
            key = derive_revocation_privkey(self.data.secrets.revocation_basepoint_secret, secret)
            self._revocation_memo[commitment_number] = key
        return key

    # --- our commitments ----------------------------------------------------------------------

    def local_ctx(self, lc: LocalCommitment) -> CommitmentTx:
        ctx = self._local_ctx_memo.get(lc)
        if ctx is None:
            data = self.data
            params = CommitmentParams(
                funding_outpoint=data.funding_outpoint,
                funding_sat=data.funding_sat,
                local_funding_pubkey=self.local_keys.funding_pubkey,
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
            keys = self.commitment_keys(self.our_point(lc.commitment_number), owner_is_us=True)
            ctx = build_commitment_tx(spec, params, keys, lc.commitment_number)
            self._local_ctx_memo[lc] = ctx
        return ctx

    def forget(self, lc: LocalCommitment) -> None:
        """Drop the memos of a commitment of ours that can no longer confirm as ours."""
        self._local_ctx_memo.pop(lc, None)
        self._signed_memo.pop(lc, None)

    def verify_local_commitment(self, lc: LocalCommitment) -> str | None:
        """Why the peer's signatures do not make `lc` (and each HTLC tx) broadcastable, or None."""
        try:
            ctx = self.local_ctx(lc)
        except ValueError as e:
            return f"cannot build our commitment: {e}"
        sig = lc.remote_commitment_sig
        funding_key = self.data.remote_keys.funding_pubkey
        if not sig or sig[-1] != SIGHASH_ALL or not funding_key.verify_der(sig[:-1], commitment_sighash(ctx)):
            return "the peer's commitment signature is not valid"
        if len(lc.remote_htlc_sigs) != len(ctx.htlc_outputs):
            return f"{len(lc.remote_htlc_sigs)} HTLC signatures for {len(ctx.htlc_outputs)} HTLC outputs"
        hash_type = remote_htlc_sighash_type(self.data.channel_type)
        htlc_key = ctx.keys.remote_htlc_pubkey
        for ho, htlc_sig in zip(ctx.htlc_outputs, lc.remote_htlc_sigs):
            digest = htlc_sighash(build_htlc_tx(ctx, ho), ho, hash_type)
            if not htlc_sig or htlc_sig[-1] != hash_type or not htlc_key.verify_der(htlc_sig[:-1], digest):
                return f"the peer's signature for HTLC output {ho.output_index} is not valid"
        return None

    def signed_local_commitment(self, lc: LocalCommitment) -> Transaction:
        tx = self._signed_memo.get(lc)
        if tx is None:
            ctx = self.local_ctx(lc)
            ours = sign_commitment(ctx, self.data.secrets.funding_privkey)
            tx = finalize_commitment(ctx, ours, lc.remote_commitment_sig)
            self._signed_memo[lc] = tx
        return tx.copy()

    def our_anchor_outpoints(self) -> dict[OutPoint, CommitmentTx]:
        """Our anchor in each of our commitments that can still confirm."""
        if not self.anchors:
            return {}
        spk = p2wsh(scripts.anchor_script(self.local_keys.funding_pubkey.to_bytes()))
        found: dict[OutPoint, CommitmentTx] = {}
        for lc in (self.data.local_commitment, self.data.previous_local_commitment):
            if lc is None:
                continue
            ctx = self.local_ctx(lc)
            for n, out in enumerate(ctx.tx.outputs):
                if out.script_pubkey == spk:
                    found[OutPoint(ctx.txid, n)] = ctx
        return found

    # --- classification -----------------------------------------------------------------------

    def classify(self, tx: Transaction, txid: bytes, height: int) -> Classification:
        """What kind of close `tx` (which spends the funding output) is, and our outputs in it."""
        data = self.data
        number = commitment_number_from_tx(tx, data.obscure_factor)
        if number is None:
            return Classification(CloseKind.COOPERATIVE, None, (), ())
        for lc in (data.local_commitment, data.previous_local_commitment):
            if lc is not None and lc.commitment_number == number and self.local_ctx(lc).txid == txid:
                return Classification(CloseKind.LOCAL, number, lc.htlcs, self._local_outputs(lc, height))
        if self._looks_like_ours(tx, number):
            return Classification(CloseKind.LOCAL_REVOKED, number, (), ())
        for rc in (data.remote_commitment, data.remote_next_commitment):
            if rc is not None and rc.commitment_number == number:
                outs = self._remote_outputs(tx, txid, height, rc.per_commitment_point, rc.htlcs, None)
                return Classification(CloseKind.REMOTE, number, rc.htlcs, outs)
        if number < data.remote_commitment.commitment_number:
            try:
                secret = data.remote_secrets.derive_old_secret(per_commitment_index(number))
            except ShachainError:
                outs = self._remote_outputs(tx, txid, height, None, (), None)
                return Classification(CloseKind.UNKNOWN, number, (), outs)
            htlcs = data.revoked_htlcs.get(number, ())
            outs = self._remote_outputs(tx, txid, height, per_commitment_point(secret), htlcs, number)
            return Classification(CloseKind.REVOKED, number, htlcs, outs)
        outs = self._remote_outputs(tx, txid, height, None, (), None)
        return Classification(CloseKind.REMOTE_FUTURE, number, (), outs)

    def second_stage_output(
        self, out: TrackedOutput, tx: Transaction, txid: bytes, index: int, height: int
    ) -> TrackedOutput | None:
        """The output of an HTLC-timeout / HTLC-success transaction (input `index` spends the
        HTLC output `out`) if it is ours to resolve: ours after the delay, or a cheater's."""
        if not is_htlc_tx_witness(tx.inputs[index].witness) or index >= len(tx.outputs):
            return None
        assert out.point is not None
        if out.kind in (OutputKind.LOCAL_OFFERED_HTLC, OutputKind.LOCAL_RECEIVED_HTLC):
            kind, delay = OutputKind.LOCAL_HTLC_TX_OUTPUT, self.data.local_to_self_delay
            keys = self.commitment_keys(out.point, owner_is_us=True)
        elif out.kind is OutputKind.REVOKED_HTLC:
            kind, delay = OutputKind.REVOKED_HTLC_TX_OUTPUT, self.data.remote_to_self_delay
            keys = self.commitment_keys(out.point, owner_is_us=False)
        else:
            return None  # the peer's HTLC tx on its own (valid) commitment: the output is the peer's
        ws = scripts.htlc_tx_output_script(
            keys.revocation_pubkey.to_bytes(), delay, keys.local_delayed_pubkey.to_bytes()
        )
        txout = tx.outputs[index]
        if txout.script_pubkey != p2wsh(ws):
            return None
        return TrackedOutput(
            OutPoint(txid, index), kind, txout.amount_sat, txout.script_pubkey, height, ws,
            point=out.point, revoked_number=out.revoked_number, htlc=out.htlc,
        )  # fmt: skip

    def _looks_like_ours(self, tx: Transaction, number: int) -> bool:
        """An output only our commitment `number` can have: our to_local, or the peer's to_remote."""
        keys = self.commitment_keys(self.our_point(number), owner_is_us=True)
        to_local = p2wsh(
            scripts.to_local_script(
                keys.revocation_pubkey.to_bytes(),
                self.data.local_to_self_delay,
                keys.local_delayed_pubkey.to_bytes(),
            )
        )
        their_main = scripts.to_remote_script_pubkey(self.data.remote_keys.payment_basepoint.to_bytes(), self.anchors)
        return any(o.script_pubkey in (to_local, their_main) for o in tx.outputs)

    def _local_outputs(self, lc: LocalCommitment, height: int) -> tuple[TrackedOutput, ...]:
        ctx = self.local_ctx(lc)
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
        return tuple(outs)

    def _remote_outputs(
        self,
        tx: Transaction,
        txid: bytes,
        height: int,
        point: PublicKey | None,
        htlcs: tuple[MonitorHtlc, ...],
        revoked_number: int | None,
    ) -> tuple[TrackedOutput, ...]:
        """Match the peer's commitment outputs by script: our to_remote always (static key);
        with the point, its HTLCs and (if revoked) its to_local."""
        anchors = self.anchors
        candidates: dict[bytes, list[tuple[OutputKind, bytes, MonitorHtlc | None]]] = {}

        def expect(spk: bytes, kind: OutputKind, ws: bytes, htlc: MonitorHtlc | None) -> None:
            candidates.setdefault(spk, []).append((kind, ws, htlc))

        our_payment = self.local_keys.payment_basepoint.to_bytes()
        remote_ws = scripts.to_remote_anchor_script(our_payment) if anchors else b""
        expect(scripts.to_remote_script_pubkey(our_payment, anchors), OutputKind.REMOTE_TO_REMOTE, remote_ws, None)
        if point is not None:
            keys = self.commitment_keys(point, owner_is_us=False)
            rev = keys.revocation_pubkey.to_bytes()
            owner_htlc, our_htlc = keys.local_htlc_pubkey.to_bytes(), keys.remote_htlc_pubkey.to_bytes()
            if revoked_number is not None:
                ws = scripts.to_local_script(rev, self.data.remote_to_self_delay, keys.local_delayed_pubkey.to_bytes())
                expect(p2wsh(ws), OutputKind.REVOKED_TO_LOCAL, ws, None)
            for h in htlcs:
                if h.commitment_htlc(owner_is_us=False).offered:
                    ws = scripts.offered_htlc_script(rev, owner_htlc, our_htlc, h.payment_hash, anchors)
                    kind = OutputKind.REMOTE_OFFERED_HTLC
                else:
                    ws = scripts.received_htlc_script(rev, owner_htlc, our_htlc, h.payment_hash, h.cltv_expiry, anchors)
                    kind = OutputKind.REMOTE_RECEIVED_HTLC
                expect(p2wsh(ws), OutputKind.REVOKED_HTLC if revoked_number is not None else kind, ws, h)
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
            kind, ws, matched = pick
            outs.append(
                TrackedOutput(
                    OutPoint(txid, i), kind, txout.amount_sat, txout.script_pubkey, height, ws,
                    point=point, revoked_number=revoked_number, htlc=matched,
                )  # fmt: skip
            )
        return tuple(outs)
