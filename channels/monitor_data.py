"""What the on-chain watcher of one channel knows: :class:`MonitorData` and its parts.

The BOLT 2 state machine's host fills a :class:`MonitorData` when a channel is
funded and keeps it current through :class:`channels.watcher.ChannelMonitor`
(``update_commitment`` / ``provide_secret`` / ``provide_preimage``). Nothing
here depends on the state machine: these are plain values with a stable
``to_dict`` / ``from_dict`` form (JSON types only) for the database.

Directions are always seen from *us*: an HTLC is ``outgoing`` when we sent its
``update_add_htlc``; balances are ``our_balance_msat`` / ``their_balance_msat``
whoever owns the commitment. :meth:`MonitorHtlc.commitment_htlc` gives the
BOLT 3 view of the commitment owner.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from base_chain.crypto import PrivateKey, PublicKey
from base_chain.tx import OutPoint

from .keys import ChannelKeys, ChannelSecrets
from .shachain import ShachainStore
from .transactions import ChannelType, CommitmentHtlc, HtlcDirection

__all__ = [
    "MonitorHtlc",
    "LocalCommitment",
    "RemoteCommitment",
    "MonitorPolicy",
    "MonitorData",
    "outpoint_to_str",
    "outpoint_from_str",
]

_DATA_VERSION = 1


def outpoint_to_str(outpoint: OutPoint) -> str:
    """``<display txid>:<index>``, the form people and bitcoin-cli use."""
    return f"{outpoint.txid[::-1].hex()}:{outpoint.index}"


def outpoint_from_str(text: str) -> OutPoint:
    txid_hex, _, index = text.rpartition(":")
    txid = bytes.fromhex(txid_hex)[::-1]
    if len(txid) != 32 or not index.isdigit():
        raise ValueError(f"malformed outpoint {text!r}")
    return OutPoint(txid, int(index))


# --- HTLCs and commitments ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MonitorHtlc:
    """One HTLC of a commitment, seen from us.

    `htlc_id` is the BOLT 2 ``id`` (counted per direction), so ``(outgoing,
    htlc_id)`` names the HTLC uniquely in :class:`channels.watcher.HtlcResolved`.
    """

    htlc_id: int
    outgoing: bool
    amount_msat: int
    payment_hash: bytes
    cltv_expiry: int

    def __post_init__(self) -> None:
        if self.htlc_id < 0 or self.amount_msat < 0:
            raise ValueError("htlc_id and amount_msat must not be negative")
        if len(self.payment_hash) != 32:
            raise ValueError("payment_hash must be 32 bytes")
        if not 0 <= self.cltv_expiry <= 0xFFFFFFFF:
            raise ValueError("cltv_expiry must fit in 32 bits")

    @property
    def key(self) -> tuple[bool, int]:
        return (self.outgoing, self.htlc_id)

    def commitment_htlc(self, owner_is_us: bool) -> CommitmentHtlc:
        """The HTLC as the BOLT 3 builder sees it in a commitment owned by us or by the peer."""
        offered_by_owner = self.outgoing == owner_is_us
        direction = HtlcDirection.OFFERED if offered_by_owner else HtlcDirection.RECEIVED
        return CommitmentHtlc(direction, self.amount_msat, self.payment_hash, self.cltv_expiry)

    def to_dict(self) -> dict[str, Any]:
        return {
            "htlc_id": self.htlc_id,
            "outgoing": self.outgoing,
            "amount_msat": self.amount_msat,
            "payment_hash": self.payment_hash.hex(),
            "cltv_expiry": self.cltv_expiry,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MonitorHtlc:
        return cls(
            htlc_id=int(d["htlc_id"]),
            outgoing=bool(d["outgoing"]),
            amount_msat=int(d["amount_msat"]),
            payment_hash=bytes.fromhex(d["payment_hash"]),
            cltv_expiry=int(d["cltv_expiry"]),
        )


def _htlcs_to_list(htlcs: tuple[MonitorHtlc, ...]) -> list[dict[str, Any]]:
    return [h.to_dict() for h in htlcs]


def _htlcs_from_list(items: list[dict[str, Any]]) -> tuple[MonitorHtlc, ...]:
    return tuple(MonitorHtlc.from_dict(h) for h in items)


@dataclass(frozen=True, slots=True)
class LocalCommitment:
    """A commitment transaction of ours that we hold the peer's signatures for.

    The signatures are script signatures (DER plus the sighash-type byte), as
    :mod:`channels.transactions` uses them; `remote_htlc_sigs` are in the order
    of the untrimmed HTLC outputs (``commitment_signed.htlc_signatures``).
    Our per-commitment point is derived from our seed.
    """

    commitment_number: int
    our_balance_msat: int
    their_balance_msat: int
    feerate_per_kw: int
    htlcs: tuple[MonitorHtlc, ...]
    remote_commitment_sig: bytes
    remote_htlc_sigs: tuple[bytes, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "commitment_number": self.commitment_number,
            "our_balance_msat": self.our_balance_msat,
            "their_balance_msat": self.their_balance_msat,
            "feerate_per_kw": self.feerate_per_kw,
            "htlcs": _htlcs_to_list(self.htlcs),
            "remote_commitment_sig": self.remote_commitment_sig.hex(),
            "remote_htlc_sigs": [s.hex() for s in self.remote_htlc_sigs],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LocalCommitment:
        return cls(
            commitment_number=int(d["commitment_number"]),
            our_balance_msat=int(d["our_balance_msat"]),
            their_balance_msat=int(d["their_balance_msat"]),
            feerate_per_kw=int(d["feerate_per_kw"]),
            htlcs=_htlcs_from_list(d["htlcs"]),
            remote_commitment_sig=bytes.fromhex(d["remote_commitment_sig"]),
            remote_htlc_sigs=tuple(bytes.fromhex(s) for s in d["remote_htlc_sigs"]),
        )


@dataclass(frozen=True, slots=True)
class RemoteCommitment:
    """A commitment transaction of the peer that we signed and it has not revoked.

    The watcher recognises its outputs by their scripts, so it needs the peer's
    `per_commitment_point` for it and its HTLCs, not the balances.
    """

    commitment_number: int
    per_commitment_point: PublicKey
    htlcs: tuple[MonitorHtlc, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "commitment_number": self.commitment_number,
            "per_commitment_point": self.per_commitment_point.to_bytes().hex(),
            "htlcs": _htlcs_to_list(self.htlcs),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RemoteCommitment:
        return cls(
            commitment_number=int(d["commitment_number"]),
            per_commitment_point=PublicKey.from_bytes(bytes.fromhex(d["per_commitment_point"])),
            htlcs=_htlcs_from_list(d["htlcs"]),
        )


# --- policy ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MonitorPolicy:
    """Fee rates and safety margins, all in blocks or sat per 1000 weight units.

    * `sweep_feerate_per_kw`: sweeps that are not racing anyone (our delayed
      ``to_local`` and second-stage outputs, ``to_remote``).
    * `urgent_feerate_per_kw`: justice transactions, HTLC claims, and the
      target of a CPFP of our commitment (:class:`~channels.watcher.NeedFeeBump`).
    * `reorg_safety_depth`: confirmations after which a resolution is final
      (HTLCs are reported upstream only then; LDK's ``ANTI_REORG_DELAY``).
    * `outgoing_htlc_grace_blocks`: force-close when an HTLC we offered is
      still in our commitment this many blocks past its ``cltv_expiry``.
    * `incoming_htlc_claim_buffer`: force-close when we hold the preimage of an
      HTLC we received and its ``cltv_expiry`` is this close.
    * `auto_force_close`: apply the two rules above (else only :meth:`force_close` does).
    """

    sweep_feerate_per_kw: int = 2500
    urgent_feerate_per_kw: int = 5000
    reorg_safety_depth: int = 6
    outgoing_htlc_grace_blocks: int = 3
    incoming_htlc_claim_buffer: int = 18
    auto_force_close: bool = True

    def __post_init__(self) -> None:
        if self.sweep_feerate_per_kw < 253 or self.urgent_feerate_per_kw < 253:
            raise ValueError("fee rates below 253 sat/kw do not relay")
        if self.reorg_safety_depth < 1:
            raise ValueError("reorg_safety_depth must be at least 1")
        if self.outgoing_htlc_grace_blocks < 0 or self.incoming_htlc_claim_buffer < 0:
            raise ValueError("HTLC margins must not be negative")

    def to_dict(self) -> dict[str, Any]:
        return {
            "sweep_feerate_per_kw": self.sweep_feerate_per_kw,
            "urgent_feerate_per_kw": self.urgent_feerate_per_kw,
            "reorg_safety_depth": self.reorg_safety_depth,
            "outgoing_htlc_grace_blocks": self.outgoing_htlc_grace_blocks,
            "incoming_htlc_claim_buffer": self.incoming_htlc_claim_buffer,
            "auto_force_close": self.auto_force_close,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MonitorPolicy:
        return cls(
            sweep_feerate_per_kw=int(d["sweep_feerate_per_kw"]),
            urgent_feerate_per_kw=int(d["urgent_feerate_per_kw"]),
            reorg_safety_depth=int(d["reorg_safety_depth"]),
            outgoing_htlc_grace_blocks=int(d["outgoing_htlc_grace_blocks"]),
            incoming_htlc_claim_buffer=int(d["incoming_htlc_claim_buffer"]),
            auto_force_close=bool(d["auto_force_close"]),
        )


# --- the whole record ------------------------------------------------------------------------

_SECRET_FIELDS = (
    "funding_privkey",
    "revocation_basepoint_secret",
    "payment_basepoint_secret",
    "delayed_payment_basepoint_secret",
    "htlc_basepoint_secret",
)
_KEY_FIELDS = (
    "funding_pubkey",
    "revocation_basepoint",
    "payment_basepoint",
    "delayed_payment_basepoint",
    "htlc_basepoint",
)


def _secrets_to_dict(secrets: ChannelSecrets) -> dict[str, str]:
    out = {name: getattr(secrets, name).to_bytes().hex() for name in _SECRET_FIELDS}
    out["per_commitment_seed"] = secrets.per_commitment_seed.hex()
    return out


def _secrets_from_dict(d: dict[str, str]) -> ChannelSecrets:
    keys = {name: PrivateKey(bytes.fromhex(d[name])) for name in _SECRET_FIELDS}
    return ChannelSecrets(per_commitment_seed=bytes.fromhex(d["per_commitment_seed"]), **keys)


def _keys_to_dict(keys: ChannelKeys) -> dict[str, str]:
    return {name: getattr(keys, name).to_bytes().hex() for name in _KEY_FIELDS}


def _keys_from_dict(d: dict[str, str]) -> ChannelKeys:
    return ChannelKeys(**{name: PublicKey.from_bytes(bytes.fromhex(d[name])) for name in _KEY_FIELDS})


@dataclass(slots=True)
class MonitorData:
    """Everything one channel's watcher needs; owned (and updated) by its ChannelMonitor.

    * `local_to_self_delay` is the CSV delay on *our* outputs in *our* commitment
      (the ``to_self_delay`` the peer asked for); `remote_to_self_delay` the one
      on the peer's outputs in its commitment (the value we asked for).
    * `local_dust_limit_sat` builds our commitment; `remote_dust_limit_sat` is
      the peer's, kept with the channel parameters (the peer's commitments are
      recognised by script, so trimming there needs no recomputation).
    * `remote_commitment` is the peer's latest unrevoked commitment and
      `remote_next_commitment` the one we signed after it, until the peer revokes
      the former; its ``per_commitment_point`` is the peer's "next" point.
    * `revoked_htlcs` keeps, per revoked commitment number of the peer, the
      HTLCs it had: the justice transaction needs their scripts.
    * `preimages` maps payment hashes to preimages, given or learned on chain.
    """

    funding_outpoint: OutPoint
    funding_sat: int
    channel_type: ChannelType
    local_is_opener: bool
    secrets: ChannelSecrets
    remote_keys: ChannelKeys
    local_to_self_delay: int
    remote_to_self_delay: int
    local_dust_limit_sat: int
    remote_dust_limit_sat: int
    obscure_factor: int
    local_commitment: LocalCommitment
    remote_commitment: RemoteCommitment
    destination_script: bytes
    previous_local_commitment: LocalCommitment | None = None
    remote_next_commitment: RemoteCommitment | None = None
    remote_secrets: ShachainStore = field(default_factory=ShachainStore)
    revoked_htlcs: dict[int, tuple[MonitorHtlc, ...]] = field(default_factory=dict)
    preimages: dict[bytes, bytes] = field(default_factory=dict)
    policy: MonitorPolicy = field(default_factory=MonitorPolicy)

    def __post_init__(self) -> None:
        if self.funding_sat <= 0:
            raise ValueError("funding_sat must be positive")
        for delay in (self.local_to_self_delay, self.remote_to_self_delay):
            if not 0 <= delay <= 0xFFFF:
                raise ValueError("to_self_delay must fit in 16 bits")
        if not self.destination_script:
            raise ValueError("destination_script must not be empty")
        if not 0 <= self.obscure_factor < 1 << 48:
            raise ValueError("obscure_factor must fit in 48 bits")
        for preimage_hash, preimage in self.preimages.items():
            if hashlib.sha256(preimage).digest() != preimage_hash:
                raise ValueError("a preimage does not match its payment hash")

    @property
    def local_keys(self) -> ChannelKeys:
        return self.secrets.channel_keys()

    def to_dict(self, *, include_secrets: bool = True) -> dict[str, Any]:
        """JSON-ready form. Without `include_secrets` the channel secrets are left
        out; :meth:`from_dict` then needs them passed in (e.g. re-derived from the
        node seed with :func:`channels.keys.derive_channel_keys`)."""
        d: dict[str, Any] = {
            "version": _DATA_VERSION,
            "funding_outpoint": outpoint_to_str(self.funding_outpoint),
            "funding_sat": self.funding_sat,
            "channel_type": self.channel_type.value,
            "local_is_opener": self.local_is_opener,
            "remote_keys": _keys_to_dict(self.remote_keys),
            "local_to_self_delay": self.local_to_self_delay,
            "remote_to_self_delay": self.remote_to_self_delay,
            "local_dust_limit_sat": self.local_dust_limit_sat,
            "remote_dust_limit_sat": self.remote_dust_limit_sat,
            "obscure_factor": self.obscure_factor,
            "local_commitment": self.local_commitment.to_dict(),
            "previous_local_commitment": (
                None if self.previous_local_commitment is None else self.previous_local_commitment.to_dict()
            ),
            "remote_commitment": self.remote_commitment.to_dict(),
            "remote_next_commitment": (
                None if self.remote_next_commitment is None else self.remote_next_commitment.to_dict()
            ),
            "remote_secrets": self.remote_secrets.to_bytes().hex(),
            "revoked_htlcs": {str(n): _htlcs_to_list(h) for n, h in sorted(self.revoked_htlcs.items())},
            "preimages": sorted(p.hex() for p in self.preimages.values()),
            "destination_script": self.destination_script.hex(),
            "policy": self.policy.to_dict(),
        }
        if include_secrets:
            d["secrets"] = _secrets_to_dict(self.secrets)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, secrets: ChannelSecrets | None = None) -> MonitorData:
        if d.get("version") != _DATA_VERSION:
            raise ValueError(f"unknown MonitorData version {d.get('version')!r}")
        if secrets is None:
            if "secrets" not in d:
                raise ValueError("the record has no channel secrets: pass them in")
            secrets = _secrets_from_dict(d["secrets"])
        prev = d["previous_local_commitment"]
        nxt = d["remote_next_commitment"]
        preimages = [bytes.fromhex(p) for p in d["preimages"]]
        return cls(
            funding_outpoint=outpoint_from_str(d["funding_outpoint"]),
            funding_sat=int(d["funding_sat"]),
            channel_type=ChannelType(d["channel_type"]),
            local_is_opener=bool(d["local_is_opener"]),
            secrets=secrets,
            remote_keys=_keys_from_dict(d["remote_keys"]),
            local_to_self_delay=int(d["local_to_self_delay"]),
            remote_to_self_delay=int(d["remote_to_self_delay"]),
            local_dust_limit_sat=int(d["local_dust_limit_sat"]),
            remote_dust_limit_sat=int(d["remote_dust_limit_sat"]),
            obscure_factor=int(d["obscure_factor"]),
            local_commitment=LocalCommitment.from_dict(d["local_commitment"]),
            previous_local_commitment=None if prev is None else LocalCommitment.from_dict(prev),
            remote_commitment=RemoteCommitment.from_dict(d["remote_commitment"]),
            remote_next_commitment=None if nxt is None else RemoteCommitment.from_dict(nxt),
            remote_secrets=ShachainStore.from_bytes(bytes.fromhex(d["remote_secrets"])),
            revoked_htlcs={int(n): _htlcs_from_list(h) for n, h in d["revoked_htlcs"].items()},
            preimages={hashlib.sha256(p).digest(): p for p in preimages},
            destination_script=bytes.fromhex(d["destination_script"]),
            policy=MonitorPolicy.from_dict(d["policy"]),
        )
