"""BOLT 2 "Normal operation": the update log and the two commitment chains.

Each side's updates (``update_add_htlc``, ``update_fulfill_htlc``,
``update_fail_htlc``, ``update_fail_malformed_htlc``, ``update_fee``) move
through the states BOLT 2 lists, kept here as lists of the wire messages
themselves (so retransmission resends exactly what was sent)::

    ours:   proposed --(we send commitment_signed)--> signed --(they revoke)--> acked
            --(their commitment_signed puts it in our commitment)--> done
    theirs: proposed --(their commitment_signed; we revoke)--> acked
            --(we send commitment_signed)--> signed --(they revoke)--> done

A commitment's :class:`~channels.specs.Spec` is its predecessor's spec with the
owner's and the other side's updates applied (:func:`~channels.specs.reduce`):
our next commitment is ``reduce(local_commit, our acked, their proposed)`` and
theirs is ``reduce(remote_commit, their acked, our proposed)``. A peer update
whose ``signed`` stage ends (the peer revoked) is *irrevocably committed*.

:class:`Commitments` holds all of it: the parameters, our current commitment
(with the peer's signatures, ready to broadcast), the peer's current one and
the next one we signed while waiting for its revocation, the update lists,
HTLC id counters and the peer's revealed secrets (shachain). Its ``send_*``
methods raise :class:`ChannelError` (our misuse); its ``receive_*`` methods
raise :class:`CloseChannel` for a peer violation. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from base_chain.crypto import PrivateKey, PublicKey
from base_chain.sighash import SIGHASH_ALL
from base_chain.tx import Transaction

from .dust import check_dust_exposure
from .effects import (
    ChannelError,
    CloseChannel,
    CommitmentHtlcInfo,
    CommitmentInfo,
    HtlcResolution,
    LocalCommitmentPublished,
    RevokedCommitment,
    RevokedHtlcOutput,
)
from .keys import (
    ChannelSecrets,
    derive_commitment_keys,
    derive_privkey,
    per_commitment_index,
)
from .messages import (
    BADONION,
    CommitmentSigned,
    RevokeAndAck,
    UpdateAddHtlc,
    UpdateFailHtlc,
    UpdateFailMalformedHtlc,
    UpdateFee,
    UpdateFulfillHtlc,
    UpdateMessage,
)
from .shachain import ShachainError, ShachainStore
from .specs import (  # the hex helpers are the snapshot format's, shared
    ChannelParams,
    _hex,
    _point,
    _unhex,
    Htlc,
    Spec,
    commit_tx_fee_msat,
    from_compact_signature,
    reduce,
    to_compact_signature,
    verify_compact_signature,
    wire_hex,
)
from .transactions import (
    ChannelType,
    CommitmentTx,
    HtlcDirection,
    build_commitment_tx,
    build_htlc_tx,
    commitment_sighash,
    finalize_commitment,
    finalize_htlc_tx,
    htlc_sighash,
    remote_htlc_sighash_type,
    sign_commitment,
    sign_htlc_tx,
)
from .wire import decode_message

__all__ = [
    "MAX_CLTV_EXPIRY",
    "LocalCommit",
    "RemoteCommit",
    "NextRemoteCommit",
    "UpdateLog",
    "Commitments",
]

MAX_CLTV_EXPIRY = 500_000_000
"""``cltv_expiry`` must be below this (above it would be a timestamp)."""

_OFFERED = HtlcDirection.OFFERED
_RECEIVED = HtlcDirection.RECEIVED
_FEE_SPIKE_MULTIPLE = 2  # BOLT 2's recommended "fee spike buffer": twice the feerate
_PROBE_ONION = bytes(1366)  # add_refusal's stand-in onion (the checks do not read it)


# --- commitments ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LocalCommit:
    """Our current commitment, with the peer's signatures (compact) so we can broadcast it."""

    index: int
    spec: Spec
    signature: bytes
    htlc_signatures: tuple[bytes, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "spec": self.spec.to_dict(),
            "signature": _hex(self.signature),
            "htlc_signatures": [_hex(s) for s in self.htlc_signatures],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LocalCommit:
        sigs = tuple(_unhex(s) for s in d["htlc_signatures"])
        return cls(d["index"], Spec.from_dict(d["spec"]), _unhex(d["signature"]), sigs)


@dataclass(frozen=True, slots=True)
class RemoteCommit:
    """A commitment of the peer that we signed (spec in the peer's view)."""

    index: int
    spec: Spec
    txid: bytes
    per_commitment_point: PublicKey

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "spec": self.spec.to_dict(),
            "txid": _hex(self.txid),
            "per_commitment_point": _hex(self.per_commitment_point.to_bytes()),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RemoteCommit:
        return cls(d["index"], Spec.from_dict(d["spec"]), _unhex(d["txid"]), _point(d["per_commitment_point"]))


@dataclass(frozen=True, slots=True)
class NextRemoteCommit:
    """The peer commitment we signed and whose predecessor's revocation we await, and the message we sent."""

    commit: RemoteCommit
    sent: CommitmentSigned


@dataclass
class UpdateLog:
    """One side's updates by stage (see the module docstring)."""

    proposed: list[UpdateMessage] = field(default_factory=list)
    signed: list[UpdateMessage] = field(default_factory=list)
    acked: list[UpdateMessage] = field(default_factory=list)

    def all(self) -> list[UpdateMessage]:
        return [*self.proposed, *self.signed, *self.acked]

    def to_dict(self) -> dict[str, list[str]]:
        return {k: [wire_hex(u) for u in v] for k, v in self._lists()}

    def _lists(self) -> list[tuple[str, list[UpdateMessage]]]:
        return [("proposed", self.proposed), ("signed", self.signed), ("acked", self.acked)]

    @classmethod
    def from_dict(cls, d: dict[str, list[str]]) -> UpdateLog:
        def load(items: list[str]) -> list[UpdateMessage]:
            out: list[UpdateMessage] = []
            for raw in items:
                msg = decode_message(_unhex(raw))
                if not isinstance(
                    msg, (UpdateAddHtlc, UpdateFulfillHtlc, UpdateFailHtlc, UpdateFailMalformedHtlc, UpdateFee)
                ):
                    raise ValueError(f"snapshot: {type(msg).__name__} is not an update message")
                out.append(msg)
            return out

        return cls(load(d["proposed"]), load(d["signed"]), load(d["acked"]))


def _removes(u: UpdateMessage, htlc_id: int) -> bool:
    return isinstance(u, (UpdateFulfillHtlc, UpdateFailHtlc, UpdateFailMalformedHtlc)) and u.id == htlc_id


class Commitments:
    """Both commitment chains of an open channel and the updates between them (see the module docstring)."""

    def __init__(
        self,
        params: ChannelParams,
        secrets: ChannelSecrets,
        local_commit: LocalCommit,
        remote_commit: RemoteCommit,
        *,
        next_remote: NextRemoteCommit | None = None,
        remote_next_point: PublicKey | None = None,
        local_changes: UpdateLog | None = None,
        remote_changes: UpdateLog | None = None,
        local_next_htlc_id: int = 0,
        remote_next_htlc_id: int = 0,
        remote_secrets: ShachainStore | None = None,
        last_sent: str | None = None,
    ) -> None:
        self.params = params
        self.secrets = secrets
        self.local_commit = local_commit
        self.remote_commit = remote_commit
        self.next_remote = next_remote
        #: The peer's point for commitment ``remote_commit.index + 1`` (None until channel_ready).
        self.remote_next_point = remote_next_point
        #: ``proposed`` / ``signed`` / ``acked``: see the module docstring. For the peer's
        #: updates ``signed`` means "in the peer commitment we signed, awaiting its revocation".
        self.local_changes = local_changes or UpdateLog()
        self.remote_changes = remote_changes or UpdateLog()
        self.local_next_htlc_id = local_next_htlc_id
        self.remote_next_htlc_id = remote_next_htlc_id
        self.remote_secrets = remote_secrets or ShachainStore()
        #: Which of commitment_signed / revoke_and_ack we sent last ("commit", "revoke"):
        #: the order to keep if both must be retransmitted.
        self.last_sent = last_sent
        #: New commitments for the watcher since the host last took them (not persisted here).
        self.watch_updates: list[CommitmentInfo] = []

    # --- views -------------------------------------------------------------------------

    @property
    def channel_id(self) -> bytes:
        return self.params.channel_id

    @property
    def _channel_type(self) -> ChannelType:
        return self.params.channel_type

    def latest_remote_spec(self) -> Spec:
        """The newest peer commitment we signed (the pending one if any)."""
        return self.next_remote.commit.spec if self.next_remote else self.remote_commit.spec

    def _remote_view(self, *extra: UpdateMessage) -> Spec:
        """The peer's next commitment if we signed everything now, plus ``extra`` of ours."""
        return reduce(self.latest_remote_spec(), self.remote_changes.acked, [*self.local_changes.proposed, *extra])

    def _local_view(self, *extra: UpdateMessage) -> Spec:
        """Our next commitment once the peer signs what we received, plus ``extra`` of theirs."""
        return reduce(self.local_commit.spec, self.local_changes.acked, [*self.remote_changes.proposed, *extra])

    def has_changes_to_sign(self) -> bool:
        return bool(self.local_changes.proposed or self.remote_changes.acked)

    def can_sign(self) -> bool:
        return self.next_remote is None and self.remote_next_point is not None

    def has_pending_htlcs(self) -> bool:
        return bool(
            self.local_commit.spec.htlcs
            or self.remote_commit.spec.htlcs
            or (self.next_remote is not None and self.next_remote.commit.spec.htlcs)
            or any(isinstance(u, UpdateAddHtlc) for u in (*self.local_changes.all(), *self.remote_changes.all()))
        )

    def is_quiescent(self) -> bool:
        """No HTLC anywhere, no update in flight, no revocation owed: ready for closing_signed."""
        return not (
            self.has_pending_htlcs()
            or self.next_remote is not None
            or self.local_changes.all()
            or self.remote_changes.all()
        )

    def unresolved_incoming_htlcs(self) -> list[UpdateAddHtlc]:
        """Peer HTLCs irrevocably committed that we have not yet fulfilled or failed."""
        removing = {u.id for u in self.local_changes.all() if not isinstance(u, (UpdateAddHtlc, UpdateFee))}
        return [
            h.add
            for h in self.local_commit.spec.htlcs
            if h.direction is _RECEIVED
            and h.add.id not in removing
            and self.remote_commit.spec.find(_OFFERED, h.add.id) is not None
        ]

    def sendable_msat(self) -> int:
        """The largest HTLC :meth:`send_add` would take now: our balance in the peer's next commitment
        (HTLCs we proposed but did not sign yet counted) less the reserve and, when we fund the channel, the
        commitment fee with one more HTLC at the fee spike multiple of the feerate (BOLT 2's buffer)."""
        p = self.params
        view = self._remote_view()
        need = p.remote.channel_reserve_sat * 1000
        if p.is_funder:
            fee = commit_tx_fee_msat(view, p.remote.dust_limit_sat, self._channel_type, extra_htlcs=1)
            buffer = commit_tx_fee_msat(view, p.remote.dust_limit_sat, self._channel_type,
                                        feerate=view.feerate_per_kw * _FEE_SPIKE_MULTIPLE,
                                        extra_htlcs=2)  # the new HTLC and one more, as send_add counts them
            need += max(fee, buffer)
        return max(view.to_remote_msat - need, 0)

    # --- our updates (raise ChannelError) ------------------------------------------------

    def send_add(
        self,
        amount_msat: int,
        payment_hash: bytes,
        cltv_expiry: int,
        onion: bytes,
        path_key: PublicKey | None = None,
    ) -> UpdateAddHtlc:
        if amount_msat <= 0:
            raise ChannelError("HTLC amount must be positive")
        if not 0 <= cltv_expiry < MAX_CLTV_EXPIRY:
            raise ChannelError(f"cltv_expiry {cltv_expiry} must be a block height below {MAX_CLTV_EXPIRY}")
        try:
            add = UpdateAddHtlc(
                self.channel_id, self.local_next_htlc_id, amount_msat, payment_hash, cltv_expiry, onion, path_key
            )
        except ValueError as e:
            raise ChannelError(str(e)) from None
        self._check_add(add)
        self.local_changes.proposed.append(add)
        self.local_next_htlc_id += 1
        return add

    def add_refusal(self, amount_msat: int) -> str | None:
        """Why :meth:`send_add` would refuse an HTLC of ``amount_msat`` now (its exact checks: minimum, slots,
        in flight, dust exposure, reserve and fees); None when it would take it. For the forwarder."""
        if amount_msat <= 0:
            return "HTLC amount must be positive"
        try:
            self._check_add(UpdateAddHtlc(self.channel_id, self.local_next_htlc_id, amount_msat, bytes(32), 0,
                                          _PROBE_ONION))
        except ChannelError as e:
            return e.reason
        except ValueError as e:  # not a u64
            return str(e)
        return None

    def _check_add(self, add: UpdateAddHtlc) -> None:
        """send_add's checks of ``add`` against the peer's limits and our balance (ChannelError)."""
        p = self.params
        amount_msat = add.amount_msat
        if amount_msat < p.remote.htlc_minimum_msat:
            raise ChannelError(f"{amount_msat} msat is below the peer's htlc_minimum_msat {p.remote.htlc_minimum_msat}")
        reduced = self._remote_view(add)  # the peer's commitment: our HTLCs are RECEIVED there
        ours = [h for h in reduced.htlcs if h.direction is _RECEIVED]
        if len(ours) > p.remote.max_accepted_htlcs:
            raise ChannelError(f"the peer accepts at most {p.remote.max_accepted_htlcs} HTLCs from us")
        in_flight = sum(h.amount_msat for h in ours)
        if in_flight > p.remote.max_htlc_value_in_flight_msat:
            raise ChannelError(
                f"{in_flight} msat in flight would exceed the peer's max_htlc_value_in_flight_msat "
                f"{p.remote.max_htlc_value_in_flight_msat}"
            )
        dust = check_dust_exposure(self._local_view(), p.local.dust_limit_sat, reduced, p.remote.dust_limit_sat,
                                   self._channel_type, local_extra=(Htlc(_OFFERED, add),))
        if dust is not None:
            raise ChannelError(dust)
        fee = commit_tx_fee_msat(reduced, p.remote.dust_limit_sat, self._channel_type)
        reserve = p.remote.channel_reserve_sat * 1000
        if p.is_funder:
            buffer = commit_tx_fee_msat(
                reduced,
                p.remote.dust_limit_sat,
                self._channel_type,
                feerate=reduced.feerate_per_kw * _FEE_SPIKE_MULTIPLE,
                extra_htlcs=1,
            )
            need = reserve + max(fee, buffer)
        else:
            need = reserve
        if reduced.to_remote_msat < need:
            raise ChannelError(
                f"insufficient balance: {reduced.to_remote_msat} msat left, "
                f"{need} msat needed for the reserve{' and commitment fees' if p.is_funder else ''}"
            )
        if not p.is_funder and reduced.to_local_msat < fee:
            raise ChannelError("the peer (funder) could not pay the commitment fee with another HTLC")

    def _incoming_for_removal(self, htlc_id: int) -> Htlc:
        h = self.local_commit.spec.find(_RECEIVED, htlc_id)
        if h is None or self.remote_commit.spec.find(_OFFERED, htlc_id) is None:
            raise ChannelError(f"no irrevocably committed incoming HTLC {htlc_id}")
        if any(_removes(u, htlc_id) for u in self.local_changes.all()):
            raise ChannelError(f"HTLC {htlc_id} is already being removed")
        return h

    def send_fulfill(self, htlc_id: int, payment_preimage: bytes) -> UpdateFulfillHtlc:
        h = self._incoming_for_removal(htlc_id)
        if hashlib.sha256(payment_preimage).digest() != h.add.payment_hash:
            raise ChannelError(f"the preimage does not match HTLC {htlc_id}'s payment_hash")
        msg = UpdateFulfillHtlc(self.channel_id, htlc_id, payment_preimage)
        self.local_changes.proposed.append(msg)
        return msg

    def send_fail(self, htlc_id: int, reason: bytes) -> UpdateFailHtlc:
        self._incoming_for_removal(htlc_id)
        try:
            msg = UpdateFailHtlc(self.channel_id, htlc_id, reason)
        except ValueError as e:
            raise ChannelError(str(e)) from None
        self.local_changes.proposed.append(msg)
        return msg

    def send_fail_malformed(self, htlc_id: int, sha256_of_onion: bytes, failure_code: int) -> UpdateFailMalformedHtlc:
        self._incoming_for_removal(htlc_id)
        if not failure_code & BADONION:
            raise ChannelError("update_fail_malformed_htlc needs a failure_code with the BADONION bit")
        try:
            msg = UpdateFailMalformedHtlc(self.channel_id, htlc_id, sha256_of_onion, failure_code)
        except ValueError as e:
            raise ChannelError(str(e)) from None
        self.local_changes.proposed.append(msg)
        return msg

    def send_fee(self, feerate_per_kw: int) -> UpdateFee:
        p = self.params
        if not p.is_funder:
            raise ChannelError("only the funder sends update_fee")
        msg = UpdateFee(self.channel_id, feerate_per_kw)
        reduced = self._remote_view(msg)
        fee = commit_tx_fee_msat(reduced, p.remote.dust_limit_sat, self._channel_type)
        if reduced.to_remote_msat < p.remote.channel_reserve_sat * 1000 + fee:
            raise ChannelError(f"cannot afford feerate {feerate_per_kw} with our reserve")
        self.local_changes.proposed.append(msg)
        return msg

    # --- the peer's updates (raise CloseChannel) -----------------------------------------

    def receive_add(self, msg: UpdateAddHtlc) -> None:
        p = self.params
        if msg.id != self.remote_next_htlc_id:
            raise CloseChannel(f"update_add_htlc id {msg.id}, expected {self.remote_next_htlc_id}")
        if msg.amount_msat == 0 or msg.amount_msat < p.local.htlc_minimum_msat:
            raise CloseChannel(
                f"HTLC of {msg.amount_msat} msat is below our htlc_minimum_msat {p.local.htlc_minimum_msat}"
            )
        if msg.cltv_expiry >= MAX_CLTV_EXPIRY:
            raise CloseChannel(f"cltv_expiry {msg.cltv_expiry} is not a block height")
        reduced = self._local_view(msg)
        theirs = [h for h in reduced.htlcs if h.direction is _RECEIVED]
        if len(theirs) > p.local.max_accepted_htlcs:
            raise CloseChannel(f"more than our max_accepted_htlcs ({p.local.max_accepted_htlcs}) HTLCs offered")
        in_flight = sum(h.amount_msat for h in theirs)
        if in_flight > p.local.max_htlc_value_in_flight_msat:
            raise CloseChannel(f"{in_flight} msat offered exceeds our max_htlc_value_in_flight_msat")
        fee = commit_tx_fee_msat(reduced, p.local.dust_limit_sat, self._channel_type)
        need = p.local.channel_reserve_sat * 1000 + (0 if p.is_funder else fee)
        if reduced.to_remote_msat < need:
            raise CloseChannel(
                f"peer cannot afford HTLC: {reduced.to_remote_msat} msat left, reserve and fees need {need}"
            )
        if p.is_funder and reduced.to_local_msat < fee:
            raise CloseChannel("HTLC would leave us (funder) unable to pay the commitment fee")
        self.remote_changes.proposed.append(msg)
        self.remote_next_htlc_id += 1

    def _outgoing_for_removal(self, htlc_id: int) -> Htlc:
        h = self.local_commit.spec.find(_OFFERED, htlc_id)
        if h is None or self.remote_commit.spec.find(_RECEIVED, htlc_id) is None:
            raise CloseChannel(f"no committed HTLC {htlc_id} of ours to remove")
        if any(_removes(u, htlc_id) for u in self.remote_changes.all()):
            raise CloseChannel(f"HTLC {htlc_id} removed twice")
        return h

    def receive_fulfill(self, msg: UpdateFulfillHtlc) -> Htlc:
        h = self._outgoing_for_removal(msg.id)
        if hashlib.sha256(msg.payment_preimage).digest() != h.add.payment_hash:
            raise CloseChannel(f"update_fulfill_htlc preimage does not match HTLC {msg.id}")
        self.remote_changes.proposed.append(msg)
        return h

    def receive_fail(self, msg: UpdateFailHtlc | UpdateFailMalformedHtlc) -> Htlc:
        h = self._outgoing_for_removal(msg.id)
        if isinstance(msg, UpdateFailMalformedHtlc) and not msg.failure_code & BADONION:
            raise CloseChannel(f"update_fail_malformed_htlc failure_code 0x{msg.failure_code:04x} lacks BADONION")
        self.remote_changes.proposed.append(msg)
        return h

    def receive_fee(self, msg: UpdateFee) -> None:
        p = self.params
        if p.is_funder:
            raise CloseChannel("update_fee from the non-funder")
        reduced = self._local_view(msg)
        fee = commit_tx_fee_msat(reduced, p.local.dust_limit_sat, self._channel_type)
        if reduced.to_remote_msat < p.local.channel_reserve_sat * 1000 + fee:
            raise CloseChannel(f"funder cannot afford feerate {msg.feerate_per_kw}")
        self.remote_changes.proposed.append(msg)

    # --- commitment_signed / revoke_and_ack ----------------------------------------------

    def _info(
        self, spec: Spec, ours: bool, index: int, txid: bytes, point: PublicKey, sigs: tuple[bytes, ...] = ()
    ) -> CommitmentInfo:
        """``spec`` (its owner's view) as the watcher wants it: from our point of view."""
        htlcs = tuple(
            CommitmentHtlcInfo(
                h.id, (h.direction is _OFFERED) == ours, h.amount_msat, h.add.payment_hash, h.add.cltv_expiry
            )
            for h in spec.htlcs
        )
        mine, theirs = (spec.to_local_msat, spec.to_remote_msat) if ours else (spec.to_remote_msat, spec.to_local_msat)
        return CommitmentInfo(
            ours=ours,
            commitment_number=index,
            txid=txid,
            per_commitment_point=point.to_bytes(),
            our_balance_msat=mine,
            their_balance_msat=theirs,
            feerate_per_kw=spec.feerate_per_kw,
            htlcs=htlcs,
            remote_signature=sigs[0] if ours else None,
            remote_htlc_signatures=sigs[1:] if ours else (),
        )

    def accept_first_commitment(self, signature: bytes) -> None:
        """Check the peer's signature of our commitment 0 (funding_created / funding_signed) and keep it."""
        spec = self.local_commit.spec
        commitment = self.build_local(spec, 0)
        self.verify_local(commitment, signature, ())
        self.local_commit = LocalCommit(0, spec, signature, ())
        rc = self.remote_commit
        self.watch_updates += [
            self._info(spec, True, 0, commitment.txid, commitment.keys.per_commitment_point, (signature,)),
            self._info(rc.spec, False, 0, rc.txid, rc.per_commitment_point),
        ]

    def build_local(self, spec: Spec, index: int) -> CommitmentTx:
        point = self.secrets.per_commitment_point(index)
        keys = derive_commitment_keys(point, self.params.local.keys, self.params.remote.keys)
        params = self.params.commitment_params(ours=True)
        return build_commitment_tx(spec.commitment_spec(self._channel_type), params, keys, index)

    def build_remote(self, spec: Spec, index: int, point: PublicKey) -> CommitmentTx:
        keys = derive_commitment_keys(point, self.params.remote.keys, self.params.local.keys)
        params = self.params.commitment_params(ours=False)
        return build_commitment_tx(spec.commitment_spec(self._channel_type), params, keys, index)

    def sign_remote(self, commitment: CommitmentTx) -> tuple[bytes, tuple[bytes, ...]]:
        """Our compact signature of a peer commitment and of its HTLC transactions (output order)."""
        sig = to_compact_signature(sign_commitment(commitment, self.secrets.funding_privkey))
        htlc_key = derive_privkey(self.secrets.htlc_basepoint_secret, commitment.keys.per_commitment_point)
        hash_type = remote_htlc_sighash_type(self._channel_type)
        htlc_sigs = tuple(
            to_compact_signature(sign_htlc_tx(build_htlc_tx(commitment, out), out, htlc_key, hash_type))
            for out in commitment.htlc_outputs
        )
        return sig, htlc_sigs

    def verify_local(self, commitment: CommitmentTx, signature: bytes, htlc_signatures: Sequence[bytes]) -> None:
        """Check the peer's signatures of our commitment; CloseChannel if any is wrong."""
        if not verify_compact_signature(
            self.params.remote.keys.funding_pubkey, signature, commitment_sighash(commitment)
        ):
            raise CloseChannel(f"invalid commitment signature for commitment {commitment.commitment_number}")
        if len(htlc_signatures) != len(commitment.htlc_outputs):
            raise CloseChannel(
                f"{len(htlc_signatures)} HTLC signatures for {len(commitment.htlc_outputs)} HTLC outputs"
            )
        hash_type = remote_htlc_sighash_type(self._channel_type)
        for out, sig in zip(commitment.htlc_outputs, htlc_signatures, strict=True):
            digest = htlc_sighash(build_htlc_tx(commitment, out), out, hash_type)
            if not verify_compact_signature(commitment.keys.remote_htlc_pubkey, sig, digest):
                raise CloseChannel(f"invalid HTLC signature for output {out.output_index}")

    def send_commit(self) -> CommitmentSigned:
        """Sign the peer's next commitment (call only when :meth:`can_sign`)."""
        assert self.can_sign() and self.remote_next_point is not None
        spec = reduce(self.remote_commit.spec, self.remote_changes.acked, self.local_changes.proposed)
        index = self.remote_commit.index + 1
        commitment = self.build_remote(spec, index, self.remote_next_point)
        sig, htlc_sigs = self.sign_remote(commitment)
        msg = CommitmentSigned(self.channel_id, sig, htlc_sigs, self.params.funding_outpoint.txid)
        self.next_remote = NextRemoteCommit(RemoteCommit(index, spec, commitment.txid, self.remote_next_point), msg)
        self.watch_updates.append(self._info(spec, False, index, commitment.txid, self.remote_next_point))
        self.local_changes.signed, self.local_changes.proposed = self.local_changes.proposed, []
        self.remote_changes.signed, self.remote_changes.acked = self.remote_changes.acked, []
        self.last_sent = "commit"
        return msg

    def receive_commit(self, msg: CommitmentSigned) -> RevokeAndAck:
        if not (self.remote_changes.proposed or self.local_changes.acked):
            raise CloseChannel("commitment_signed without any update")
        spec = self._local_view()
        index = self.local_commit.index + 1
        commitment = self.build_local(spec, index)
        self.verify_local(commitment, msg.signature, msg.htlc_signatures)
        self.local_commit = LocalCommit(index, spec, msg.signature, tuple(msg.htlc_signatures))
        point = commitment.keys.per_commitment_point
        self.watch_updates.append(
            self._info(spec, True, index, commitment.txid, point, (msg.signature, *msg.htlc_signatures))
        )
        self.local_changes.acked = []
        self.remote_changes.acked += self.remote_changes.proposed
        self.remote_changes.proposed = []
        self.last_sent = "revoke"
        return self.last_revocation()

    def last_revocation(self) -> RevokeAndAck:
        """The revoke_and_ack of our previous commitment (what we sent, or would resend)."""
        index = self.local_commit.index
        return RevokeAndAck(
            self.channel_id,
            self.secrets.per_commitment_secret(index - 1),
            self.secrets.per_commitment_point(index + 1),
        )

    def receive_revocation(self, msg: RevokeAndAck) -> tuple[RemoteCommit, list[UpdateMessage]]:
        """Advance the peer's chain; returns the revoked commitment and the peer updates now irrevocable."""
        if self.next_remote is None:
            raise CloseChannel("revoke_and_ack without a commitment awaiting revocation")
        try:
            point = PrivateKey(msg.per_commitment_secret).public_key()
        except ValueError:
            raise CloseChannel("per_commitment_secret is not a valid secret key") from None
        if point != self.remote_commit.per_commitment_point:
            raise CloseChannel(f"per_commitment_secret does not match commitment {self.remote_commit.index}")
        try:
            self.remote_secrets.insert_secret(msg.per_commitment_secret, per_commitment_index(self.remote_commit.index))
        except ShachainError as e:
            raise CloseChannel(f"per_commitment_secret not from the peer's shachain: {e}") from None
        revoked = self.remote_commit
        self.remote_commit = self.next_remote.commit
        self.next_remote = None
        self.remote_next_point = msg.next_per_commitment_point
        self.local_changes.acked += self.local_changes.signed
        self.local_changes.signed = []
        done, self.remote_changes.signed = self.remote_changes.signed, []
        return revoked, done

    def drop_uncommitted_remote_changes(self) -> None:
        """BOLT 2 on disconnection: forget peer updates no commitment_signed covered."""
        dropped = self.remote_changes.proposed
        self.remote_next_htlc_id -= sum(isinstance(u, UpdateAddHtlc) for u in dropped)
        self.remote_changes.proposed = []

    # --- watcher data ----------------------------------------------------------------------

    def revoked_commitment(self, revoked: RemoteCommit) -> RevokedCommitment:
        commitment = self.build_remote(revoked.spec, revoked.index, revoked.per_commitment_point)
        secret = self.remote_secrets.derive_old_secret(per_commitment_index(revoked.index))
        to_local = commitment.to_local_index
        return RevokedCommitment(
            channel_id=self.channel_id,
            commitment_number=revoked.index,
            commitment_txid=commitment.txid,
            per_commitment_secret=secret,
            revocation_pubkey=commitment.keys.revocation_pubkey.to_bytes(),
            delayed_pubkey=commitment.keys.local_delayed_pubkey.to_bytes(),
            to_self_delay=commitment.params.to_self_delay,
            to_local_output_index=to_local,
            to_local_amount_sat=0 if to_local is None else commitment.tx.outputs[to_local].amount_sat,
            to_local_witness_script=commitment.to_local_witness_script,
            htlc_outputs=tuple(
                RevokedHtlcOutput(
                    o.output_index,
                    o.amount_sat,
                    o.witness_script,
                    o.htlc.payment_hash,
                    o.htlc.cltv_expiry,
                    o.htlc.offered,
                )
                for o in commitment.htlc_outputs
            ),
        )

    def signed_local_commitment(self) -> tuple[CommitmentTx, Transaction]:
        """Our current commitment and the fully signed transaction."""
        lc = self.local_commit
        commitment = self.build_local(lc.spec, lc.index)
        ours = sign_commitment(commitment, self.secrets.funding_privkey)
        theirs = from_compact_signature(lc.signature, SIGHASH_ALL)
        return commitment, finalize_commitment(commitment, ours, theirs)

    def local_commitment_published(self) -> tuple[Transaction, LocalCommitmentPublished]:
        commitment, tx = self.signed_local_commitment()
        preimages = {u.id: u.payment_preimage for u in self.local_changes.all() if isinstance(u, UpdateFulfillHtlc)}
        htlc_key = derive_privkey(self.secrets.htlc_basepoint_secret, commitment.keys.per_commitment_point)
        remote_type = remote_htlc_sighash_type(self._channel_type)
        by_index = {i: h for i, h in enumerate(self.local_commit.spec.htlcs)}
        resolutions = []
        for out, sig64 in zip(commitment.htlc_outputs, self.local_commit.htlc_signatures, strict=True):
            htlc = by_index[out.htlc_index]
            unsigned = build_htlc_tx(commitment, out)
            remote_sig = from_compact_signature(sig64, remote_type)
            local_sig = sign_htlc_tx(unsigned, out, htlc_key, SIGHASH_ALL)
            preimage = None if out.htlc.offered else preimages.get(htlc.id)
            signed: Transaction | None
            if out.htlc.offered:
                signed = finalize_htlc_tx(unsigned, out, remote_sig, local_sig)
            elif preimage is not None:
                signed = finalize_htlc_tx(unsigned, out, remote_sig, local_sig, preimage)
            else:
                signed = None
            resolutions.append(
                HtlcResolution(
                    htlc_id=htlc.id,
                    offered=out.htlc.offered,
                    amount_msat=out.htlc.amount_msat,
                    payment_hash=out.htlc.payment_hash,
                    cltv_expiry=out.htlc.cltv_expiry,
                    output_index=out.output_index,
                    witness_script=out.witness_script,
                    unsigned_htlc_tx=unsigned,
                    remote_signature=remote_sig,
                    local_signature=local_sig,
                    htlc_tx=signed,
                    payment_preimage=preimage,
                )
            )
        info = LocalCommitmentPublished(
            channel_id=self.channel_id,
            commitment_tx=tx,
            commitment_number=self.local_commit.index,
            to_self_delay=commitment.params.to_self_delay,
            to_local_output_index=commitment.to_local_index,
            to_local_witness_script=commitment.to_local_witness_script,
            delayed_pubkey=commitment.keys.local_delayed_pubkey.to_bytes(),
            per_commitment_point=commitment.keys.per_commitment_point.to_bytes(),
            htlcs=tuple(resolutions),
        )
        return tx, info

    # --- persistence -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        nr = self.next_remote
        return {
            "params": self.params.to_dict(),
            "local_commit": self.local_commit.to_dict(),
            "remote_commit": self.remote_commit.to_dict(),
            "next_remote": None if nr is None else {"commit": nr.commit.to_dict(), "sent": _hex(nr.sent.encode())},
            "remote_next_point": None if self.remote_next_point is None else _hex(self.remote_next_point.to_bytes()),
            "local_changes": self.local_changes.to_dict(),
            "remote_changes": self.remote_changes.to_dict(),
            "local_next_htlc_id": self.local_next_htlc_id,
            "remote_next_htlc_id": self.remote_next_htlc_id,
            "remote_secrets": _hex(self.remote_secrets.to_bytes()),
            "last_sent": self.last_sent,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], secrets: ChannelSecrets) -> Commitments:
        params = ChannelParams.from_dict(d["params"])
        if secrets.channel_keys() != params.local.keys:
            raise ValueError("these secrets do not belong to this channel")
        nr = d["next_remote"]
        next_remote = None
        if nr is not None:
            sent = decode_message(_unhex(nr["sent"]))
            if not isinstance(sent, CommitmentSigned):
                raise ValueError("snapshot: next_remote.sent is not a commitment_signed")
            next_remote = NextRemoteCommit(RemoteCommit.from_dict(nr["commit"]), sent)
        point = d["remote_next_point"]
        return cls(
            params,
            secrets,
            LocalCommit.from_dict(d["local_commit"]),
            RemoteCommit.from_dict(d["remote_commit"]),
            next_remote=next_remote,
            remote_next_point=None if point is None else _point(point),
            local_changes=UpdateLog.from_dict(d["local_changes"]),
            remote_changes=UpdateLog.from_dict(d["remote_changes"]),
            local_next_htlc_id=d["local_next_htlc_id"],
            remote_next_htlc_id=d["remote_next_htlc_id"],
            remote_secrets=ShachainStore.from_bytes(_unhex(d["remote_secrets"])),
            last_sent=d["last_sent"],
        )
