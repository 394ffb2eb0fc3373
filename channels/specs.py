"""The state a commitment transaction commits to, and the parameters around it.

* :class:`PartyParams` / :class:`ChannelParams`: what ``open_channel`` /
  ``accept_channel`` and the funding outpoint fix for the channel's life.
* :class:`Spec`: one commitment's balances, HTLCs and feerate from its owner's
  point of view; :func:`reduce` applies ``update_*`` messages to it (BOLT 2
  "Normal operation"), :func:`commit_tx_fee_msat` is what the funder pays for it.
* Signature helpers between script signatures (DER || sighash type) and the
  wire's 64-byte compact form, with BOLT 2's LOW-S rule on verification.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from base_chain.crypto import N, PublicKey, encode_der, parse_der_lax
from base_chain.templates import p2wsh
from base_chain.tx import OutPoint

from .keys import ChannelKeys
from .messages import (
    UpdateAddHtlc,
    UpdateFailHtlc,
    UpdateFailMalformedHtlc,
    UpdateFee,
    UpdateFulfillHtlc,
    UpdateMessage,
)
from .transactions import (
    ANCHOR_OUTPUT_SAT,
    ChannelType,
    CommitmentHtlc,
    CommitmentParams,
    CommitmentSpec,
    HtlcDirection,
    commitment_fee_sat,
    commitment_number_obscure_factor,
    htlc_success_fee_sat,
    htlc_timeout_fee_sat,
)
from .wire import Message, decode_message

__all__ = [
    "PartyParams",
    "ChannelParams",
    "Htlc",
    "Spec",
    "reduce",
    "commit_tx_fee_msat",
    "initial_specs",
    "to_compact_signature",
    "from_compact_signature",
    "verify_compact_signature",
    "wire_hex",
]

_OFFERED = HtlcDirection.OFFERED
_RECEIVED = HtlcDirection.RECEIVED


# --- signatures ---------------------------------------------------------------------------


def to_compact_signature(der_with_hashtype: bytes) -> bytes:
    """A script signature (DER || sighash type) as the wire's 64-byte ``r || s``."""
    rs = parse_der_lax(der_with_hashtype[:-1])
    if rs is None:
        raise ValueError("not a DER signature")
    return rs[0].to_bytes(32, "big") + rs[1].to_bytes(32, "big")


def from_compact_signature(sig64: bytes, hash_type: int) -> bytes:
    """A wire signature as a script signature: DER || ``hash_type``."""
    return encode_der(int.from_bytes(sig64[:32], "big"), int.from_bytes(sig64[32:], "big")) + bytes([hash_type])


def verify_compact_signature(pubkey: PublicKey, sig64: bytes, digest: bytes) -> bool:
    """ECDSA check of a 64-byte signature that also enforces BOLT 2's LOW-S rule."""
    if len(sig64) != 64:
        return False
    r = int.from_bytes(sig64[:32], "big")
    s = int.from_bytes(sig64[32:], "big")
    if not (0 < r < N and 0 < s <= N // 2):
        return False
    return pubkey.verify(r, s, digest)


def _hex(b: bytes) -> str:
    return b.hex()


def wire_hex(msg: Message) -> str:
    """A message's wire encoding as hex, remembered for (frozen, hashable) messages: a channel
    snapshot holds each in-flight update_add_htlc several times and is written after every update."""
    try:
        return _wire_hex(msg)
    except TypeError:  # not hashable
        return msg.encode().hex()


@lru_cache(maxsize=4096)
def _wire_hex(msg: Message) -> str:
    return msg.encode().hex()


def _unhex(s: str) -> bytes:
    return bytes.fromhex(s)


def _point(s: str) -> PublicKey:
    return PublicKey.from_bytes(bytes.fromhex(s))


# --- parameters ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PartyParams:
    """One node's ``open_channel`` / ``accept_channel`` parameters, with BOLT 2's meaning.

    Most of them constrain the *other* node: ``channel_reserve_sat`` is what the
    other node must keep, ``htlc_minimum_msat`` / ``max_accepted_htlcs`` /
    ``max_htlc_value_in_flight_msat`` limit the HTLCs the other node offers, and
    ``to_self_delay`` delays the other node's own outputs. ``dust_limit_sat``
    applies to this node's own commitment.
    """

    dust_limit_sat: int
    max_htlc_value_in_flight_msat: int
    channel_reserve_sat: int
    htlc_minimum_msat: int
    to_self_delay: int
    max_accepted_htlcs: int
    keys: ChannelKeys
    upfront_shutdown_script: bytes = b""

    def to_dict(self) -> dict[str, Any]:
        k = self.keys
        return {
            "dust_limit_sat": self.dust_limit_sat,
            "max_htlc_value_in_flight_msat": self.max_htlc_value_in_flight_msat,
            "channel_reserve_sat": self.channel_reserve_sat,
            "htlc_minimum_msat": self.htlc_minimum_msat,
            "to_self_delay": self.to_self_delay,
            "max_accepted_htlcs": self.max_accepted_htlcs,
            "upfront_shutdown_script": _hex(self.upfront_shutdown_script),
            "keys": {
                "funding_pubkey": _hex(k.funding_pubkey.to_bytes()),
                "revocation_basepoint": _hex(k.revocation_basepoint.to_bytes()),
                "payment_basepoint": _hex(k.payment_basepoint.to_bytes()),
                "delayed_payment_basepoint": _hex(k.delayed_payment_basepoint.to_bytes()),
                "htlc_basepoint": _hex(k.htlc_basepoint.to_bytes()),
            },
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PartyParams:
        k = d["keys"]
        keys = ChannelKeys(
            funding_pubkey=_point(k["funding_pubkey"]),
            revocation_basepoint=_point(k["revocation_basepoint"]),
            payment_basepoint=_point(k["payment_basepoint"]),
            delayed_payment_basepoint=_point(k["delayed_payment_basepoint"]),
            htlc_basepoint=_point(k["htlc_basepoint"]),
        )
        return cls(
            dust_limit_sat=d["dust_limit_sat"],
            max_htlc_value_in_flight_msat=d["max_htlc_value_in_flight_msat"],
            channel_reserve_sat=d["channel_reserve_sat"],
            htlc_minimum_msat=d["htlc_minimum_msat"],
            to_self_delay=d["to_self_delay"],
            max_accepted_htlcs=d["max_accepted_htlcs"],
            keys=keys,
            upfront_shutdown_script=_unhex(d["upfront_shutdown_script"]),
        )


@dataclass(frozen=True, slots=True)
class ChannelParams:
    """What is fixed once the funding outpoint is known."""

    channel_id: bytes
    funding_outpoint: OutPoint
    funding_sat: int
    channel_type: ChannelType
    is_funder: bool
    local: PartyParams
    remote: PartyParams

    @property
    def obscure_factor(self) -> int:
        ours, theirs = self.local.keys.payment_basepoint, self.remote.keys.payment_basepoint
        return commitment_number_obscure_factor(*((ours, theirs) if self.is_funder else (theirs, ours)))

    def commitment_params(self, *, ours: bool) -> CommitmentParams:
        """BOLT 3 parameters of our commitment (``ours``) or of the peer's."""
        owner, other = (self.local, self.remote) if ours else (self.remote, self.local)
        return CommitmentParams(
            funding_outpoint=self.funding_outpoint,
            funding_sat=self.funding_sat,
            local_funding_pubkey=owner.keys.funding_pubkey,
            remote_funding_pubkey=other.keys.funding_pubkey,
            to_self_delay=other.to_self_delay,
            dust_limit_sat=owner.dust_limit_sat,
            local_is_opener=self.is_funder == ours,
            obscure_factor=self.obscure_factor,
        )

    @property
    def funding_script_pubkey(self) -> bytes:
        return p2wsh(self.commitment_params(ours=True).funding_script)

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel_id": _hex(self.channel_id),
            "funding_txid": _hex(self.funding_outpoint.txid),
            "funding_output_index": self.funding_outpoint.index,
            "funding_sat": self.funding_sat,
            "channel_type": self.channel_type.value,
            "is_funder": self.is_funder,
            "local": self.local.to_dict(),
            "remote": self.remote.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChannelParams:
        return cls(
            channel_id=_unhex(d["channel_id"]),
            funding_outpoint=OutPoint(_unhex(d["funding_txid"]), d["funding_output_index"]),
            funding_sat=d["funding_sat"],
            channel_type=ChannelType(d["channel_type"]),
            is_funder=d["is_funder"],
            local=PartyParams.from_dict(d["local"]),
            remote=PartyParams.from_dict(d["remote"]),
        )


# --- commitment specs ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Htlc:
    """An HTLC in a commitment; ``direction`` is seen from the commitment's owner."""

    direction: HtlcDirection
    add: UpdateAddHtlc

    @property
    def id(self) -> int:
        return self.add.id

    @property
    def amount_msat(self) -> int:
        return self.add.amount_msat

    def commitment_htlc(self) -> CommitmentHtlc:
        a = self.add
        return CommitmentHtlc(self.direction, a.amount_msat, a.payment_hash, a.cltv_expiry)


def _flip(direction: HtlcDirection) -> HtlcDirection:
    return _RECEIVED if direction is _OFFERED else _OFFERED


@dataclass(frozen=True, slots=True)
class Spec:
    """What one commitment transaction commits to, from its owner's point of view."""

    to_local_msat: int
    to_remote_msat: int
    feerate_per_kw: int
    htlcs: tuple[Htlc, ...] = ()

    def find(self, direction: HtlcDirection, htlc_id: int) -> Htlc | None:
        for h in self.htlcs:
            if h.direction is direction and h.add.id == htlc_id:
                return h
        return None

    def total_msat(self) -> int:
        return self.to_local_msat + self.to_remote_msat + sum(h.amount_msat for h in self.htlcs)

    def mirrored(self) -> Spec:
        """The same state seen by the other node."""
        htlcs = tuple(Htlc(_flip(h.direction), h.add) for h in self.htlcs)
        return Spec(self.to_remote_msat, self.to_local_msat, self.feerate_per_kw, _sorted(htlcs))

    def commitment_spec(self, channel_type: ChannelType) -> CommitmentSpec:
        return CommitmentSpec(
            to_local_msat=self.to_local_msat,
            to_remote_msat=self.to_remote_msat,
            htlcs=tuple(h.commitment_htlc() for h in self.htlcs),
            feerate_per_kw=self.feerate_per_kw,
            channel_type=channel_type,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "to_local_msat": self.to_local_msat,
            "to_remote_msat": self.to_remote_msat,
            "feerate_per_kw": self.feerate_per_kw,
            "htlcs": [[h.direction.value, wire_hex(h.add)] for h in self.htlcs],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Spec:
        htlcs = []
        for direction, raw in d["htlcs"]:
            add = decode_message(_unhex(raw))
            if not isinstance(add, UpdateAddHtlc):
                raise ValueError("snapshot: an HTLC is not an update_add_htlc")
            htlcs.append(Htlc(HtlcDirection(direction), add))
        return cls(d["to_local_msat"], d["to_remote_msat"], d["feerate_per_kw"], tuple(htlcs))


def _sorted(htlcs: Iterable[Htlc]) -> tuple[Htlc, ...]:
    return tuple(sorted(htlcs, key=lambda h: (h.direction is _RECEIVED, h.add.id)))


def reduce(spec: Spec, owner_changes: Sequence[UpdateMessage], other_changes: Sequence[UpdateMessage]) -> Spec:
    """Apply updates to a commitment spec: adds first, then removals, then the fee.

    ``owner_changes`` were sent by the commitment's owner (its adds are OFFERED,
    its removals settle HTLCs the other side offered), ``other_changes`` by the
    other node. Raises KeyError for an update naming an HTLC not in the spec
    (the receive_* checks make that a bug).
    """
    if not owner_changes and not other_changes:
        return spec
    to_local, to_remote, feerate = spec.to_local_msat, spec.to_remote_msat, spec.feerate_per_kw
    htlcs = {(h.direction, h.add.id): h for h in spec.htlcs}
    for changes, direction in ((owner_changes, _OFFERED), (other_changes, _RECEIVED)):
        for u in changes:
            if isinstance(u, UpdateAddHtlc):
                htlcs[(direction, u.id)] = Htlc(direction, u)
                if direction is _OFFERED:
                    to_local -= u.amount_msat
                else:
                    to_remote -= u.amount_msat
    for changes, removed in ((owner_changes, _RECEIVED), (other_changes, _OFFERED)):
        for u in changes:
            if isinstance(u, UpdateFulfillHtlc):
                h = htlcs.pop((removed, u.id))
                # the HTLC goes to the node that was offered it
                if removed is _RECEIVED:
                    to_local += h.amount_msat
                else:
                    to_remote += h.amount_msat
            elif isinstance(u, (UpdateFailHtlc, UpdateFailMalformedHtlc)):
                h = htlcs.pop((removed, u.id))
                # back to the node that offered it
                if removed is _RECEIVED:
                    to_remote += h.amount_msat
                else:
                    to_local += h.amount_msat
    for u in (*owner_changes, *other_changes):
        if isinstance(u, UpdateFee):
            feerate = u.feerate_per_kw
    return Spec(to_local, to_remote, feerate, _sorted(htlcs.values()))


def _untrimmed(spec: Spec, feerate: int, dust_limit_sat: int, channel_type: ChannelType) -> int:
    """How many HTLCs of ``spec`` get an output (``htlc_is_trimmed`` false), one threshold per direction."""
    if not spec.htlcs:
        return 0
    # amount_msat // 1000 < n  <=>  amount_msat < n * 1000
    offered_min = (dust_limit_sat + htlc_timeout_fee_sat(feerate, channel_type)) * 1000
    received_min = (dust_limit_sat + htlc_success_fee_sat(feerate, channel_type)) * 1000
    return sum(1 for h in spec.htlcs
               if h.add.amount_msat >= (offered_min if h.direction is _OFFERED else received_min))


def commit_tx_fee_msat(
    spec: Spec, dust_limit_sat: int, channel_type: ChannelType, *, feerate: int | None = None, extra_htlcs: int = 0
) -> int:
    """What the funder pays for this commitment: the base fee plus both anchors (BOLT 3 "Fee Payment")."""
    rate = spec.feerate_per_kw if feerate is None else feerate
    count = _untrimmed(spec, rate, dust_limit_sat, channel_type) + extra_htlcs
    anchors = 2 * ANCHOR_OUTPUT_SAT if channel_type.anchors else 0
    return (commitment_fee_sat(rate, count, channel_type) + anchors) * 1000


def initial_specs(funding_sat: int, push_msat: int, feerate_per_kw: int, is_funder: bool) -> tuple[Spec, Spec]:
    """(our spec, the peer's spec) of commitment 0."""
    funder, fundee = funding_sat * 1000 - push_msat, push_msat
    ours = Spec(funder, fundee, feerate_per_kw) if is_funder else Spec(fundee, funder, feerate_per_kw)
    return ours, ours.mirrored()
