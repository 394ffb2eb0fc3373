"""BOLT 2 messages of a running channel: HTLC updates, commitment signatures, revocation,
fee updates, shutdown and closing negotiation, and channel_reestablish.

Split from `channels.messages` (which re-exports everything here) to keep each module one size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self
from base_chain.crypto import PublicKey
from .tlv import Reader, TlvRecord, encode_point, encode_u16, encode_u32, encode_u64
from .wire import ErrorMessage, Message, WarningMessage, decode_extension, register_message

from .messages import (
    ATTRIBUTION_DATA,
    BLINDED_PATH,
    COMMITMENT_FUNDING_TXID,
    FEE_RANGE,
    MY_CURRENT_FUNDING_LOCKED,
    NEXT_FUNDING,
    ATTRIBUTION_DATA_LEN,
    AcceptChannel,
    CHANNEL_REESTABLISH_TLVS,
    CLOSING_SIGNED_TLVS,
    COMMITMENT_SIGNED_TLVS,
    ChannelMessage,
    ChannelReady,
    FundingCreated,
    FundingSigned,
    ONION_PACKET_LEN,
    OpenChannel,
    UPDATE_ADD_HTLC_TLVS,
    UPDATE_FAIL_HTLC_TLVS,
    UPDATE_FULFILL_HTLC_TLVS,
    _REVOKE_AND_ACK_TLVS,
    _SHUTDOWN_TLVS,
    _UPDATE_FAIL_MALFORMED_TLVS,
    _UPDATE_FEE_TLVS,
    _ZERO32,
    check_bytes,
    check_uint,
    check_var,
    _stream,
)


# ---------------------------------------------------------------------------
# close


@dataclass(frozen=True)
class Shutdown(ChannelMessage):
    """``shutdown``: start closing; ``scriptpubkey`` is where this node's funds go."""

    TYPE: ClassVar[int] = 38
    NAME: ClassVar[str] = "shutdown"

    channel_id: bytes
    scriptpubkey: bytes
    unknown_tlvs: tuple[TlvRecord, ...] = ()

    def __post_init__(self) -> None:
        check_bytes("channel_id", self.channel_id, 32)
        check_var("scriptpubkey", self.scriptpubkey)

    @property
    def target_channel_id(self) -> bytes:
        return self.channel_id

    def encode_payload(self) -> bytes:
        return (
            self.channel_id
            + encode_u16(len(self.scriptpubkey))
            + self.scriptpubkey
            + _stream(self.unknown_tlvs).encode()
        )

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        r = Reader(payload)
        channel_id = r.read(32)
        script = r.read(r.u16())
        tlvs = decode_extension(r, _SHUTDOWN_TLVS)
        return cls(channel_id, script, tlvs.unknown)


@dataclass(frozen=True)
class ClosingSigned(ChannelMessage):
    """``closing_signed``: a proposed closing fee, its signature and (optionally) the acceptable range."""

    TYPE: ClassVar[int] = 39
    NAME: ClassVar[str] = "closing_signed"

    channel_id: bytes
    fee_satoshis: int
    signature: bytes
    fee_range: tuple[int, int] | None = None  # (min_fee_satoshis, max_fee_satoshis)
    unknown_tlvs: tuple[TlvRecord, ...] = ()

    def __post_init__(self) -> None:
        check_bytes("channel_id", self.channel_id, 32)
        check_uint("fee_satoshis", self.fee_satoshis, 64)
        check_bytes("signature", self.signature, 64)
        if self.fee_range is not None:
            lo, hi = self.fee_range
            check_uint("min_fee_satoshis", lo, 64)
            check_uint("max_fee_satoshis", hi, 64)

    @property
    def target_channel_id(self) -> bytes:
        return self.channel_id

    def encode_payload(self) -> bytes:
        stream = _stream(self.unknown_tlvs)
        if self.fee_range is not None:
            stream = stream.set(FEE_RANGE, self.fee_range)
        return self.channel_id + encode_u64(self.fee_satoshis) + self.signature + stream.encode()

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        r = Reader(payload)
        channel_id, fee, sig = r.read(32), r.u64(), r.read(64)
        tlvs = decode_extension(r, CLOSING_SIGNED_TLVS)
        return cls(channel_id, fee, sig, tlvs.get(FEE_RANGE), tlvs.unknown)


# ---------------------------------------------------------------------------
# normal operation


@dataclass(frozen=True)
class UpdateAddHtlc(ChannelMessage):
    """``update_add_htlc``: offer an HTLC. ``path_key`` is the ``blinded_path`` TLV (route blinding)."""

    TYPE: ClassVar[int] = 128
    NAME: ClassVar[str] = "update_add_htlc"

    channel_id: bytes
    id: int
    amount_msat: int
    payment_hash: bytes
    cltv_expiry: int
    onion_routing_packet: bytes
    path_key: PublicKey | None = None
    unknown_tlvs: tuple[TlvRecord, ...] = ()

    def __post_init__(self) -> None:
        check_bytes("channel_id", self.channel_id, 32)
        check_uint("id", self.id, 64)
        check_uint("amount_msat", self.amount_msat, 64)
        check_bytes("payment_hash", self.payment_hash, 32)
        check_uint("cltv_expiry", self.cltv_expiry, 32)
        check_bytes("onion_routing_packet", self.onion_routing_packet, ONION_PACKET_LEN)

    @property
    def target_channel_id(self) -> bytes:
        return self.channel_id

    def encode_payload(self) -> bytes:
        stream = _stream(self.unknown_tlvs)
        if self.path_key is not None:
            stream = stream.set(BLINDED_PATH, self.path_key)
        return (
            self.channel_id
            + encode_u64(self.id)
            + encode_u64(self.amount_msat)
            + self.payment_hash
            + encode_u32(self.cltv_expiry)
            + self.onion_routing_packet
            + stream.encode()
        )

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        r = Reader(payload)
        channel_id, htlc_id, amount = r.read(32), r.u64(), r.u64()
        payment_hash, cltv = r.read(32), r.u32()
        onion = r.read(ONION_PACKET_LEN)
        tlvs = decode_extension(r, UPDATE_ADD_HTLC_TLVS)
        return cls(channel_id, htlc_id, amount, payment_hash, cltv, onion, tlvs.get(BLINDED_PATH), tlvs.unknown)


@dataclass(frozen=True)
class UpdateFulfillHtlc(ChannelMessage):
    """``update_fulfill_htlc``: remove an HTLC by revealing its preimage."""

    TYPE: ClassVar[int] = 130
    NAME: ClassVar[str] = "update_fulfill_htlc"

    channel_id: bytes
    id: int
    payment_preimage: bytes
    attribution_data: bytes | None = None
    unknown_tlvs: tuple[TlvRecord, ...] = ()

    def __post_init__(self) -> None:
        check_bytes("channel_id", self.channel_id, 32)
        check_uint("id", self.id, 64)
        check_bytes("payment_preimage", self.payment_preimage, 32)
        if self.attribution_data is not None:
            check_bytes("attribution_data", self.attribution_data, ATTRIBUTION_DATA_LEN)

    @property
    def target_channel_id(self) -> bytes:
        return self.channel_id

    def encode_payload(self) -> bytes:
        stream = _stream(self.unknown_tlvs)
        if self.attribution_data is not None:
            stream = stream.set(ATTRIBUTION_DATA, self.attribution_data)
        return self.channel_id + encode_u64(self.id) + self.payment_preimage + stream.encode()

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        r = Reader(payload)
        channel_id, htlc_id, preimage = r.read(32), r.u64(), r.read(32)
        tlvs = decode_extension(r, UPDATE_FULFILL_HTLC_TLVS)
        return cls(channel_id, htlc_id, preimage, tlvs.get(ATTRIBUTION_DATA), tlvs.unknown)


@dataclass(frozen=True)
class UpdateFailHtlc(ChannelMessage):
    """``update_fail_htlc``: remove an HTLC; ``reason`` is the encrypted BOLT 4 failure."""

    TYPE: ClassVar[int] = 131
    NAME: ClassVar[str] = "update_fail_htlc"

    channel_id: bytes
    id: int
    reason: bytes
    attribution_data: bytes | None = None
    unknown_tlvs: tuple[TlvRecord, ...] = ()

    def __post_init__(self) -> None:
        check_bytes("channel_id", self.channel_id, 32)
        check_uint("id", self.id, 64)
        check_var("reason", self.reason)
        if self.attribution_data is not None:
            check_bytes("attribution_data", self.attribution_data, ATTRIBUTION_DATA_LEN)

    @property
    def target_channel_id(self) -> bytes:
        return self.channel_id

    def encode_payload(self) -> bytes:
        stream = _stream(self.unknown_tlvs)
        if self.attribution_data is not None:
            stream = stream.set(ATTRIBUTION_DATA, self.attribution_data)
        return self.channel_id + encode_u64(self.id) + encode_u16(len(self.reason)) + self.reason + stream.encode()

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        r = Reader(payload)
        channel_id, htlc_id = r.read(32), r.u64()
        reason = r.read(r.u16())
        tlvs = decode_extension(r, UPDATE_FAIL_HTLC_TLVS)
        return cls(channel_id, htlc_id, reason, tlvs.get(ATTRIBUTION_DATA), tlvs.unknown)


@dataclass(frozen=True)
class UpdateFailMalformedHtlc(ChannelMessage):
    """``update_fail_malformed_htlc``: remove an HTLC whose onion could not be parsed."""

    TYPE: ClassVar[int] = 135
    NAME: ClassVar[str] = "update_fail_malformed_htlc"

    channel_id: bytes
    id: int
    sha256_of_onion: bytes
    failure_code: int
    unknown_tlvs: tuple[TlvRecord, ...] = ()

    def __post_init__(self) -> None:
        check_bytes("channel_id", self.channel_id, 32)
        check_uint("id", self.id, 64)
        check_bytes("sha256_of_onion", self.sha256_of_onion, 32)
        check_uint("failure_code", self.failure_code, 16)

    @property
    def target_channel_id(self) -> bytes:
        return self.channel_id

    def encode_payload(self) -> bytes:
        return (
            self.channel_id
            + encode_u64(self.id)
            + self.sha256_of_onion
            + encode_u16(self.failure_code)
            + _stream(self.unknown_tlvs).encode()
        )

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        r = Reader(payload)
        channel_id, htlc_id, onion_hash, code = r.read(32), r.u64(), r.read(32), r.u16()
        tlvs = decode_extension(r, _UPDATE_FAIL_MALFORMED_TLVS)
        return cls(channel_id, htlc_id, onion_hash, code, tlvs.unknown)


@dataclass(frozen=True)
class CommitmentSigned(ChannelMessage):
    """``commitment_signed``: the signature of the receiver's next commitment and of its HTLC transactions.

    ``htlc_signatures`` follow the order of the HTLC outputs in that commitment.
    """

    TYPE: ClassVar[int] = 132
    NAME: ClassVar[str] = "commitment_signed"

    channel_id: bytes
    signature: bytes
    htlc_signatures: tuple[bytes, ...] = ()
    funding_txid: bytes | None = None
    unknown_tlvs: tuple[TlvRecord, ...] = ()

    def __post_init__(self) -> None:
        check_bytes("channel_id", self.channel_id, 32)
        check_bytes("signature", self.signature, 64)
        if len(self.htlc_signatures) > 0xFFFF:
            raise ValueError("num_htlcs does not fit a u16")
        for sig in self.htlc_signatures:
            check_bytes("htlc_signature", sig, 64)
        if self.funding_txid is not None:
            check_bytes("funding_txid", self.funding_txid, 32)

    @property
    def target_channel_id(self) -> bytes:
        return self.channel_id

    def encode_payload(self) -> bytes:
        stream = _stream(self.unknown_tlvs)
        if self.funding_txid is not None:
            stream = stream.set(COMMITMENT_FUNDING_TXID, self.funding_txid)
        return (
            self.channel_id
            + self.signature
            + encode_u16(len(self.htlc_signatures))
            + b"".join(self.htlc_signatures)
            + stream.encode()
        )

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        r = Reader(payload)
        channel_id, sig = r.read(32), r.read(64)
        htlc_sigs = tuple(r.read(64) for _ in range(r.u16()))
        tlvs = decode_extension(r, COMMITMENT_SIGNED_TLVS)
        return cls(channel_id, sig, htlc_sigs, tlvs.get(COMMITMENT_FUNDING_TXID), tlvs.unknown)


@dataclass(frozen=True)
class RevokeAndAck(ChannelMessage):
    """``revoke_and_ack``: the secret of the previous commitment and the point of the one after next."""

    TYPE: ClassVar[int] = 133
    NAME: ClassVar[str] = "revoke_and_ack"

    channel_id: bytes
    per_commitment_secret: bytes
    next_per_commitment_point: PublicKey
    unknown_tlvs: tuple[TlvRecord, ...] = ()

    def __post_init__(self) -> None:
        check_bytes("channel_id", self.channel_id, 32)
        check_bytes("per_commitment_secret", self.per_commitment_secret, 32)

    @property
    def target_channel_id(self) -> bytes:
        return self.channel_id

    def encode_payload(self) -> bytes:
        return (
            self.channel_id
            + self.per_commitment_secret
            + encode_point(self.next_per_commitment_point)
            + _stream(self.unknown_tlvs).encode()
        )

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        r = Reader(payload)
        channel_id, secret, point = r.read(32), r.read(32), r.point()
        tlvs = decode_extension(r, _REVOKE_AND_ACK_TLVS)
        return cls(channel_id, secret, point, tlvs.unknown)


@dataclass(frozen=True)
class UpdateFee(ChannelMessage):
    """``update_fee``: the funder changes the commitment ``feerate_per_kw``."""

    TYPE: ClassVar[int] = 134
    NAME: ClassVar[str] = "update_fee"

    channel_id: bytes
    feerate_per_kw: int
    unknown_tlvs: tuple[TlvRecord, ...] = ()

    def __post_init__(self) -> None:
        check_bytes("channel_id", self.channel_id, 32)
        check_uint("feerate_per_kw", self.feerate_per_kw, 32)

    @property
    def target_channel_id(self) -> bytes:
        return self.channel_id

    def encode_payload(self) -> bytes:
        return self.channel_id + encode_u32(self.feerate_per_kw) + _stream(self.unknown_tlvs).encode()

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        r = Reader(payload)
        channel_id, feerate = r.read(32), r.u32()
        tlvs = decode_extension(r, _UPDATE_FEE_TLVS)
        return cls(channel_id, feerate, tlvs.unknown)


# ---------------------------------------------------------------------------
# reestablish


@dataclass(frozen=True)
class ChannelReestablish(ChannelMessage):
    """``channel_reestablish``: where each side is, sent first on every reconnection.

    ``your_last_per_commitment_secret`` and ``my_current_per_commitment_point``
    are option_data_loss_protect's proof fields (all zero secret: none yet).
    """

    TYPE: ClassVar[int] = 136
    NAME: ClassVar[str] = "channel_reestablish"

    channel_id: bytes
    next_commitment_number: int
    next_revocation_number: int
    your_last_per_commitment_secret: bytes
    my_current_per_commitment_point: PublicKey
    next_funding: tuple[bytes, int] | None = None
    my_current_funding_locked: tuple[bytes, int] | None = None
    unknown_tlvs: tuple[TlvRecord, ...] = ()

    def __post_init__(self) -> None:
        check_bytes("channel_id", self.channel_id, 32)
        check_uint("next_commitment_number", self.next_commitment_number, 64)
        check_uint("next_revocation_number", self.next_revocation_number, 64)
        check_bytes("your_last_per_commitment_secret", self.your_last_per_commitment_secret, 32)
        for name, value in (
            ("next_funding", self.next_funding),
            ("my_current_funding_locked", self.my_current_funding_locked),
        ):
            if value is not None:
                check_bytes(f"{name} txid", value[0], 32)
                check_uint(f"{name} retransmit_flags", value[1], 8)

    @property
    def target_channel_id(self) -> bytes:
        return self.channel_id

    @property
    def has_last_secret(self) -> bool:
        return self.your_last_per_commitment_secret != _ZERO32

    def encode_payload(self) -> bytes:
        stream = _stream(self.unknown_tlvs)
        if self.next_funding is not None:
            stream = stream.set(NEXT_FUNDING, self.next_funding)
        if self.my_current_funding_locked is not None:
            stream = stream.set(MY_CURRENT_FUNDING_LOCKED, self.my_current_funding_locked)
        return (
            self.channel_id
            + encode_u64(self.next_commitment_number)
            + encode_u64(self.next_revocation_number)
            + self.your_last_per_commitment_secret
            + encode_point(self.my_current_per_commitment_point)
            + stream.encode()
        )

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        r = Reader(payload)
        channel_id, ncn, nrn = r.read(32), r.u64(), r.u64()
        secret, point = r.read(32), r.point()
        tlvs = decode_extension(r, CHANNEL_REESTABLISH_TLVS)
        return cls(
            channel_id,
            ncn,
            nrn,
            secret,
            point,
            tlvs.get(NEXT_FUNDING),
            tlvs.get(MY_CURRENT_FUNDING_LOCKED),
            tlvs.unknown,
        )


UpdateMessage = UpdateAddHtlc | UpdateFulfillHtlc | UpdateFailHtlc | UpdateFailMalformedHtlc | UpdateFee
"""The ``update_*`` messages: the changes a ``commitment_signed`` commits to."""

UPDATE_MESSAGES: tuple[type[ChannelMessage], ...] = (
    UpdateAddHtlc,
    UpdateFulfillHtlc,
    UpdateFailHtlc,
    UpdateFailMalformedHtlc,
    UpdateFee,
)

BOLT2_MESSAGES: tuple[type[ChannelMessage], ...] = (
    OpenChannel,
    AcceptChannel,
    FundingCreated,
    FundingSigned,
    ChannelReady,
    Shutdown,
    ClosingSigned,
    UpdateAddHtlc,
    UpdateFulfillHtlc,
    UpdateFailHtlc,
    CommitmentSigned,
    RevokeAndAck,
    UpdateFee,
    UpdateFailMalformedHtlc,
    ChannelReestablish,
)

for _cls in BOLT2_MESSAGES:
    register_message(_cls)
del _cls


def channel_id_of(msg: Message) -> bytes | None:
    """The channel a message is addressed to (temporary id while opening), or None if it is not a channel message."""
    if isinstance(msg, ChannelMessage):
        return msg.target_channel_id
    if isinstance(msg, (ErrorMessage, WarningMessage)):
        return msg.channel_id
    return None
