"""BOLT 2 "Channel Establishment v1": parameters, checks and messages of the opening handshake.

Pure helpers for :mod:`channels.state`: :class:`ChannelConfig` (our parameters
and what we accept from peers), ``channel_type`` negotiation, the receiver
checks of ``open_channel`` / ``accept_channel`` (raising
:class:`~channels.effects.CloseChannel`), and :class:`Opening`, what the
handshake settles until commitment 0 exists.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from base_chain.crypto import PublicKey
from base_chain.tx import OutPoint

from .closing import is_valid_shutdown_script
from .effects import CloseChannel
from .features import Feature, Features
from .htlcs import Commitments, LocalCommit, RemoteCommit
from .keys import ChannelKeys, ChannelSecrets
from .messages import AcceptChannel, OpenChannel
from .specs import ChannelParams, PartyParams, commit_tx_fee_msat, initial_specs
from .transactions import ChannelType, funding_script_pubkey

__all__ = [
    "MAX_ACCEPTED_HTLCS_LIMIT",
    "MIN_DUST_LIMIT_SAT",
    "LARGE_CHANNEL_SAT",
    "ChannelConfig",
    "channel_type_features",
    "channel_type_from_features",
    "negotiate_channel_type",
    "channel_id_from_funding",
    "Opening",
    "local_party",
    "remote_party",
    "check_open_channel",
    "check_accept_channel",
]

MAX_ACCEPTED_HTLCS_LIMIT = 483
MIN_DUST_LIMIT_SAT = 354  # BOLT 2: a smaller dust_limit_satoshis is refused
LARGE_CHANNEL_SAT = 1 << 24


@dataclass(frozen=True)
class ChannelConfig:
    """Our parameters for new channels and the limits we accept from peers."""

    dust_limit_sat: int = 546
    #: None: the whole channel.
    max_htlc_value_in_flight_msat: int | None = None
    #: The reserve we ask of the peer, per mille of the funding (BOLT 2 suggests 1%).
    channel_reserve_permille: int = 10
    htlc_minimum_msat: int = 1
    to_self_delay: int = 144
    max_accepted_htlcs: int = 30
    #: What the fundee asks in accept_channel.
    minimum_depth: int = 3
    announce_channel: bool = False
    #: Commit to the shutdown script in open/accept when both sides have option_upfront_shutdown_script.
    commit_upfront_shutdown_script: bool = True
    # --- limits on what the peer asks
    max_to_self_delay: int = 2016
    max_minimum_depth: int = 144
    min_funding_sat: int = 1000
    max_dust_limit_sat: int = 20_000
    max_channel_reserve_permille: int = 200
    min_feerate_per_kw: int = 253
    max_feerate_per_kw: int = 200_000
    #: Closing feerate when the peer starts the close (None: the commitment feerate).
    closing_feerate_per_kw: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChannelConfig:
        return cls(**d)


def channel_type_features(channel_type: ChannelType) -> Features:
    """The ``channel_type`` TLV of a channel type (the smallest bitmap: even bits)."""
    required = [Feature.option_static_remotekey]
    if channel_type.anchors:
        required.append(Feature.option_anchors_zero_fee_htlc_tx)
    return Features.of(required=required)


def channel_type_from_features(features: Features) -> ChannelType | None:
    """The channel type a ``channel_type`` TLV names exactly, or None (unknown, or variations we lack)."""
    for t in ChannelType:
        if channel_type_features(t) == features:
            return t
    return None


def negotiate_channel_type(local: Features, remote: Features) -> ChannelType | None:
    """Anchors when both nodes support them, else static_remotekey, else nothing we can open."""
    both = [
        f
        for f in (Feature.option_static_remotekey, Feature.option_anchors_zero_fee_htlc_tx)
        if local.has(f) and remote.has(f)
    ]
    if Feature.option_static_remotekey not in both:
        return None
    return ChannelType.ANCHORS if len(both) == 2 else ChannelType.STATIC_REMOTEKEY


def channel_id_from_funding(funding_txid: bytes, output_index: int) -> bytes:
    """BOLT 2: ``funding_txid`` XOR ``funding_output_index`` (big-endian, in the last two bytes)."""
    return bytes(a ^ b for a, b in zip(funding_txid, output_index.to_bytes(32, "big"), strict=True))


def local_party(
    config: ChannelConfig, keys: ChannelKeys, funding_sat: int, remote_dust_sat: int, upfront_script: bytes
) -> PartyParams:
    """Our parameters for a channel of ``funding_sat`` (the reserve covers both dust limits)."""
    reserve = max(funding_sat * config.channel_reserve_permille // 1000, config.dust_limit_sat, remote_dust_sat)
    return PartyParams(
        dust_limit_sat=config.dust_limit_sat,
        max_htlc_value_in_flight_msat=config.max_htlc_value_in_flight_msat or funding_sat * 1000,
        channel_reserve_sat=reserve,
        htlc_minimum_msat=max(1, config.htlc_minimum_msat),
        to_self_delay=config.to_self_delay,
        max_accepted_htlcs=min(config.max_accepted_htlcs, MAX_ACCEPTED_HTLCS_LIMIT),
        keys=keys,
        upfront_shutdown_script=upfront_script,
    )


def remote_party(msg: OpenChannel | AcceptChannel, upfront_negotiated: bool) -> PartyParams:
    keys = ChannelKeys(
        msg.funding_pubkey,
        msg.revocation_basepoint,
        msg.payment_basepoint,
        msg.delayed_payment_basepoint,
        msg.htlc_basepoint,
    )
    return PartyParams(
        dust_limit_sat=msg.dust_limit_satoshis,
        max_htlc_value_in_flight_msat=msg.max_htlc_value_in_flight_msat,
        channel_reserve_sat=msg.channel_reserve_satoshis,
        htlc_minimum_msat=msg.htlc_minimum_msat,
        to_self_delay=msg.to_self_delay,
        max_accepted_htlcs=msg.max_accepted_htlcs,
        keys=keys,
        upfront_shutdown_script=(msg.upfront_shutdown_script or b"") if upfront_negotiated else b"",
    )


def _check_party(msg: OpenChannel | AcceptChannel, funding_sat: int, config: ChannelConfig, anysegwit: bool) -> None:
    """Checks shared by open_channel and accept_channel."""
    if msg.to_self_delay > config.max_to_self_delay:
        raise CloseChannel(f"to_self_delay {msg.to_self_delay} is unreasonably large")
    if not 1 <= msg.max_accepted_htlcs <= MAX_ACCEPTED_HTLCS_LIMIT:
        raise CloseChannel(f"max_accepted_htlcs {msg.max_accepted_htlcs} outside 1..{MAX_ACCEPTED_HTLCS_LIMIT}")
    if not MIN_DUST_LIMIT_SAT <= msg.dust_limit_satoshis <= config.max_dust_limit_sat:
        raise CloseChannel(
            f"dust_limit_satoshis {msg.dust_limit_satoshis} outside {MIN_DUST_LIMIT_SAT}..{config.max_dust_limit_sat}"
        )
    if msg.channel_reserve_satoshis * 1000 > funding_sat * config.max_channel_reserve_permille:
        raise CloseChannel(f"channel_reserve_satoshis {msg.channel_reserve_satoshis} is too large")
    if msg.htlc_minimum_msat > funding_sat * 1000 // 10:
        raise CloseChannel(f"htlc_minimum_msat {msg.htlc_minimum_msat} is too large")
    if msg.channel_type is None:
        raise CloseChannel(f"{msg.NAME} without channel_type")
    script = msg.upfront_shutdown_script or b""
    if script and not is_valid_shutdown_script(script, anysegwit=anysegwit):
        raise CloseChannel("invalid upfront_shutdown_script")


def check_open_channel(
    msg: OpenChannel, config: ChannelConfig, chain_hash: bytes, local_features: Features, anysegwit: bool
) -> ChannelType:
    """The fundee's checks of ``open_channel`` (message fields only); returns the channel type."""
    if msg.chain_hash != chain_hash:
        raise CloseChannel(f"unknown chain_hash {msg.chain_hash.hex()}")
    funding = msg.funding_satoshis
    if funding < config.min_funding_sat:
        raise CloseChannel(f"funding_satoshis {funding} is too small")
    if funding >= LARGE_CHANNEL_SAT and not local_features.has(Feature.option_support_large_channel):
        raise CloseChannel("funding_satoshis >= 2^24 without option_support_large_channel")
    if msg.push_msat > funding * 1000:
        raise CloseChannel("push_msat exceeds funding_satoshis * 1000")
    if not config.min_feerate_per_kw <= msg.feerate_per_kw <= config.max_feerate_per_kw:
        raise CloseChannel(
            f"feerate_per_kw {msg.feerate_per_kw} outside {config.min_feerate_per_kw}..{config.max_feerate_per_kw}"
        )
    _check_party(msg, funding, config, anysegwit)
    if msg.dust_limit_satoshis > msg.channel_reserve_satoshis:
        raise CloseChannel("dust_limit_satoshis exceeds channel_reserve_satoshis")
    if config.dust_limit_sat > msg.channel_reserve_satoshis:
        raise CloseChannel("channel_reserve_satoshis is below our dust limit")
    wanted = msg.channel_type or Features()
    channel_type = channel_type_from_features(wanted)
    if channel_type is None or not all(local_features.has(bit) for bit in wanted):
        raise CloseChannel(f"channel_type {wanted} is not suitable")
    return channel_type


def check_accept_channel(
    msg: AcceptChannel, opening: Opening, channel_type: ChannelType, config: ChannelConfig, anysegwit: bool
) -> None:
    """The funder's checks of ``accept_channel``."""
    if msg.channel_type != channel_type_features(channel_type):
        raise CloseChannel(f"channel_type {msg.channel_type} differs from the one we asked")
    if msg.minimum_depth > config.max_minimum_depth:
        raise CloseChannel(f"minimum_depth {msg.minimum_depth} is unreasonably large")
    _check_party(msg, opening.funding_sat, config, anysegwit)
    if msg.channel_reserve_satoshis < opening.local.dust_limit_sat:
        raise CloseChannel("channel_reserve_satoshis is below our dust_limit_satoshis")
    if opening.local.channel_reserve_sat < msg.dust_limit_satoshis:
        raise CloseChannel("dust_limit_satoshis is above the channel_reserve_satoshis we asked")


@dataclass
class Opening:
    """What the open_channel / accept_channel exchange settles, until commitment 0 exists."""

    funding_sat: int
    push_msat: int
    feerate_per_kw: int
    channel_type: ChannelType
    is_funder: bool
    local: PartyParams
    remote: PartyParams | None = None
    remote_first_point: PublicKey | None = None

    def funder_can_pay_first_fee(self) -> bool:
        """The funder's balance in commitment 0 covers its fee (anchors included), in both commitments."""
        ours, theirs = initial_specs(self.funding_sat, self.push_msat, self.feerate_per_kw, self.is_funder)
        funder_spec, dust = (
            (ours, self.local.dust_limit_sat) if self.is_funder else (theirs, self._remote().dust_limit_sat)
        )
        return funder_spec.to_local_msat >= commit_tx_fee_msat(funder_spec, dust, self.channel_type)

    def check_fundee_balances(self) -> None:
        """BOLT 2: the funder pays the first fee, and some side is above its reserve."""
        if not self.funder_can_pay_first_fee():
            raise CloseChannel("the funder cannot pay the fee of the first commitment")
        ours, _ = initial_specs(self.funding_sat, self.push_msat, self.feerate_per_kw, False)
        remote = self._remote()
        fee = commit_tx_fee_msat(ours.mirrored(), remote.dust_limit_sat, self.channel_type)
        if (
            ours.to_local_msat <= remote.channel_reserve_sat * 1000
            and ours.to_remote_msat - fee <= self.local.channel_reserve_sat * 1000
        ):
            raise CloseChannel("both initial balances are at or below the channel reserve")

    def _remote(self) -> PartyParams:
        assert self.remote is not None, "accept_channel / open_channel not received yet"
        return self.remote

    def funding_script_pubkey(self) -> bytes:
        return funding_script_pubkey(self.local.keys.funding_pubkey, self._remote().keys.funding_pubkey)

    def commitments(self, secrets: ChannelSecrets, funding_txid: bytes, output_index: int) -> Commitments:
        """Both commitments 0 for this funding outpoint (ours still without the peer's signature)."""
        assert self.remote_first_point is not None
        params = ChannelParams(
            channel_id=channel_id_from_funding(funding_txid, output_index),
            funding_outpoint=OutPoint(funding_txid, output_index),
            funding_sat=self.funding_sat,
            channel_type=self.channel_type,
            is_funder=self.is_funder,
            local=self.local,
            remote=self._remote(),
        )
        ours, theirs = initial_specs(self.funding_sat, self.push_msat, self.feerate_per_kw, self.is_funder)
        point = self.remote_first_point
        c = Commitments(params, secrets, LocalCommit(0, ours, bytes(64), ()), RemoteCommit(0, theirs, bytes(32), point))
        c.remote_commit = RemoteCommit(0, theirs, c.build_remote(theirs, 0, point).txid, point)
        return c

    def open_channel(
        self, chain_hash: bytes, temporary_channel_id: bytes, first_point: PublicKey, announce: bool
    ) -> OpenChannel:
        k = self.local.keys
        return OpenChannel(
            chain_hash=chain_hash,
            temporary_channel_id=temporary_channel_id,
            funding_satoshis=self.funding_sat,
            push_msat=self.push_msat,
            dust_limit_satoshis=self.local.dust_limit_sat,
            max_htlc_value_in_flight_msat=self.local.max_htlc_value_in_flight_msat,
            channel_reserve_satoshis=self.local.channel_reserve_sat,
            htlc_minimum_msat=self.local.htlc_minimum_msat,
            feerate_per_kw=self.feerate_per_kw,
            to_self_delay=self.local.to_self_delay,
            max_accepted_htlcs=self.local.max_accepted_htlcs,
            funding_pubkey=k.funding_pubkey,
            revocation_basepoint=k.revocation_basepoint,
            payment_basepoint=k.payment_basepoint,
            delayed_payment_basepoint=k.delayed_payment_basepoint,
            htlc_basepoint=k.htlc_basepoint,
            first_per_commitment_point=first_point,
            channel_flags=1 if announce else 0,
            upfront_shutdown_script=self.local.upfront_shutdown_script,
            channel_type=channel_type_features(self.channel_type),
        )

    def accept_channel(self, temporary_channel_id: bytes, minimum_depth: int, first_point: PublicKey) -> AcceptChannel:
        k = self.local.keys
        return AcceptChannel(
            temporary_channel_id=temporary_channel_id,
            dust_limit_satoshis=self.local.dust_limit_sat,
            max_htlc_value_in_flight_msat=self.local.max_htlc_value_in_flight_msat,
            channel_reserve_satoshis=self.local.channel_reserve_sat,
            htlc_minimum_msat=self.local.htlc_minimum_msat,
            minimum_depth=minimum_depth,
            to_self_delay=self.local.to_self_delay,
            max_accepted_htlcs=self.local.max_accepted_htlcs,
            funding_pubkey=k.funding_pubkey,
            revocation_basepoint=k.revocation_basepoint,
            payment_basepoint=k.payment_basepoint,
            delayed_payment_basepoint=k.delayed_payment_basepoint,
            htlc_basepoint=k.htlc_basepoint,
            first_per_commitment_point=first_point,
            upfront_shutdown_script=self.local.upfront_shutdown_script,
            channel_type=channel_type_features(self.channel_type),
        )
