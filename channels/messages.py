"""BOLT 2 peer messages: channel establishment (v1), normal operation, close and reestablish.

Every message is a frozen dataclass registered in :data:`channels.wire.MESSAGES`
(importing this module registers them), with the BOLT field names. Points are
:class:`base_chain.crypto.PublicKey` values (decoding checks they are on the
curve); ``signature`` fields are the wire's 64-byte compact ``r || s``;
``sha256`` / ``32*byte`` fields are raw 32-byte values (``funding_txid`` in
the transaction's internal byte order, as in an outpoint). Unknown odd TLV
records are kept in ``unknown_tlvs`` so a message re-encodes byte for byte.

Messages: ``open_channel`` (32), ``accept_channel`` (33), ``funding_created``
(34), ``funding_signed`` (35), ``channel_ready`` (36), ``shutdown`` (38),
``closing_signed`` (39), ``update_add_htlc`` (128), ``update_fulfill_htlc``
(130), ``update_fail_htlc`` (131), ``commitment_signed`` (132),
``revoke_and_ack`` (133), ``update_fee`` (134), ``update_fail_malformed_htlc``
(135), ``channel_reestablish`` (136).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Self

from base_chain.crypto import PublicKey

from .features import Features
from .tlv import (
    Reader,
    TlvNamespace,
    TlvRecord,
    TlvRecordType,
    TlvStream,
    encode_point,
    encode_u16,
    encode_u32,
    encode_u64,
)
from .wire import (
    Message,
    decode_extension,
)

__all__ = [
    "check_bytes",
    "check_uint",
    "check_var",
    "ONION_PACKET_LEN",
    "MAX_HTLC_SIGNATURES",
    "ATTRIBUTION_DATA_LEN",
    "BADONION",
    "ChannelMessage",
    "OpenChannel",
    "AcceptChannel",
    "FundingCreated",
    "FundingSigned",
    "ChannelReady",
    "Shutdown",
    "ClosingSigned",
    "UpdateAddHtlc",
    "UpdateFulfillHtlc",
    "UpdateFailHtlc",
    "UpdateFailMalformedHtlc",
    "CommitmentSigned",
    "RevokeAndAck",
    "UpdateFee",
    "ChannelReestablish",
    "UpdateMessage",
    "UPDATE_MESSAGES",
    "BOLT2_MESSAGES",
    "channel_id_of",
]

ONION_PACKET_LEN = 1366
"""BOLT 4: the ``onion_routing_packet`` of ``update_add_htlc``."""

MAX_HTLC_SIGNATURES = 2 * 483
"""Both sides' ``max_accepted_htlcs`` at most: the ``htlc_signature`` count a commitment can need."""

ATTRIBUTION_DATA_LEN = 20 * 4 + 210 * 4
"""``attribution_data``: 20 ``u32`` hold times and 210 truncated 4-byte HMACs."""

BADONION = 0x8000
"""The BOLT 4 failure-code bit ``update_fail_malformed_htlc`` must carry."""

_ZERO32 = bytes(32)


# ---------------------------------------------------------------------------
# field helpers


def check_bytes(name: str, value: bytes, length: int) -> None:
    if len(value) != length:
        raise ValueError(f"{name} is {length} bytes, not {len(value)}")


def check_uint(name: str, value: int, bits: int) -> None:
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{name} out of range for u{bits}: {value}")


def check_var(name: str, value: bytes) -> None:
    if len(value) > 0xFFFF:
        raise ValueError(f"{name} is {len(value)} bytes; a u16 length allows at most 65535")


def _read_raw(r: Reader) -> bytes:
    return r.rest()


def _write_raw(value: bytes) -> bytes:
    return value


def _read_features(r: Reader) -> Features:
    return Features.from_bytes(r.rest())


def _write_features(value: Features) -> bytes:
    return value.to_bytes()


def _read_u64(r: Reader) -> int:
    return r.u64()


def _read_point(r: Reader) -> PublicKey:
    return r.point()


def _read_fee_range(r: Reader) -> tuple[int, int]:
    return r.u64(), r.u64()


def _write_fee_range(value: tuple[int, int]) -> bytes:
    return encode_u64(value[0]) + encode_u64(value[1])


def _read_sha256(r: Reader) -> bytes:
    return r.read(32)


def _read_txid_flags(r: Reader) -> tuple[bytes, int]:
    return r.read(32), r.u8()


def _write_txid_flags(value: tuple[bytes, int]) -> bytes:
    check_bytes("txid", value[0], 32)
    check_uint("retransmit_flags", value[1], 8)
    return value[0] + bytes([value[1]])


def _read_attribution(r: Reader) -> bytes:
    return r.read(ATTRIBUTION_DATA_LEN)


UPFRONT_SHUTDOWN_SCRIPT: TlvRecordType[bytes] = TlvRecordType(0, "upfront_shutdown_script", _read_raw, _write_raw)
CHANNEL_TYPE: TlvRecordType[Features] = TlvRecordType(1, "channel_type", _read_features, _write_features)
OPEN_CHANNEL_TLVS = TlvNamespace("open_channel_tlvs", UPFRONT_SHUTDOWN_SCRIPT, CHANNEL_TYPE)
ACCEPT_CHANNEL_TLVS = TlvNamespace("accept_channel_tlvs", UPFRONT_SHUTDOWN_SCRIPT, CHANNEL_TYPE)

SHORT_CHANNEL_ID_ALIAS: TlvRecordType[int] = TlvRecordType(1, "short_channel_id", _read_u64, encode_u64)
CHANNEL_READY_TLVS = TlvNamespace("channel_ready_tlvs", SHORT_CHANNEL_ID_ALIAS)

FEE_RANGE: TlvRecordType[tuple[int, int]] = TlvRecordType(1, "fee_range", _read_fee_range, _write_fee_range)
CLOSING_SIGNED_TLVS = TlvNamespace("closing_signed_tlvs", FEE_RANGE)

BLINDED_PATH: TlvRecordType[PublicKey] = TlvRecordType(0, "blinded_path", _read_point, encode_point)
UPDATE_ADD_HTLC_TLVS = TlvNamespace("update_add_htlc_tlvs", BLINDED_PATH)

ATTRIBUTION_DATA: TlvRecordType[bytes] = TlvRecordType(1, "attribution_data", _read_attribution, _write_raw)
UPDATE_FULFILL_HTLC_TLVS = TlvNamespace("update_fulfill_htlc_tlvs", ATTRIBUTION_DATA)
UPDATE_FAIL_HTLC_TLVS = TlvNamespace("update_fail_htlc_tlvs", ATTRIBUTION_DATA)

COMMITMENT_FUNDING_TXID: TlvRecordType[bytes] = TlvRecordType(1, "funding_txid", _read_sha256, _write_raw)
COMMITMENT_SIGNED_TLVS = TlvNamespace("commitment_signed_tlvs", COMMITMENT_FUNDING_TXID)

NEXT_FUNDING: TlvRecordType[tuple[bytes, int]] = TlvRecordType(1, "next_funding", _read_txid_flags, _write_txid_flags)
MY_CURRENT_FUNDING_LOCKED: TlvRecordType[tuple[bytes, int]] = TlvRecordType(
    5, "my_current_funding_locked", _read_txid_flags, _write_txid_flags
)
CHANNEL_REESTABLISH_TLVS = TlvNamespace("channel_reestablish_tlvs", NEXT_FUNDING, MY_CURRENT_FUNDING_LOCKED)

_FUNDING_CREATED_TLVS = TlvNamespace("funding_created_tlvs")
_FUNDING_SIGNED_TLVS = TlvNamespace("funding_signed_tlvs")
_SHUTDOWN_TLVS = TlvNamespace("shutdown_tlvs")
_REVOKE_AND_ACK_TLVS = TlvNamespace("revoke_and_ack_tlvs")
_UPDATE_FEE_TLVS = TlvNamespace("update_fee_tlvs")
_UPDATE_FAIL_MALFORMED_TLVS = TlvNamespace("update_fail_malformed_htlc_tlvs")


def _stream(unknown: tuple[TlvRecord, ...]) -> TlvStream:
    return TlvStream(unknown)


# ---------------------------------------------------------------------------
# channel establishment


@dataclass(frozen=True)
class ChannelMessage(Message):
    """A BOLT 2 message about one channel (``channel_id`` or ``temporary_channel_id``)."""

    @property
    @abstractmethod
    def target_channel_id(self) -> bytes:
        """The id this message is addressed to (the temporary one during opening)."""


@dataclass(frozen=True)
class _OpenAcceptCommon(ChannelMessage):
    """Checks shared by ``open_channel`` and ``accept_channel``."""

    def _check_common(
        self,
        temporary_channel_id: bytes,
        upfront_shutdown_script: bytes | None,
        **ints: tuple[int, int],
    ) -> None:
        check_bytes("temporary_channel_id", temporary_channel_id, 32)
        for name, (value, bits) in ints.items():
            check_uint(name, value, bits)
        if upfront_shutdown_script is not None:
            check_var("upfront_shutdown_script", upfront_shutdown_script)


@dataclass(frozen=True)
class OpenChannel(_OpenAcceptCommon):
    """``open_channel``: the funder proposes a channel and its parameters."""

    TYPE: ClassVar[int] = 32
    NAME: ClassVar[str] = "open_channel"

    chain_hash: bytes
    temporary_channel_id: bytes
    funding_satoshis: int
    push_msat: int
    dust_limit_satoshis: int
    max_htlc_value_in_flight_msat: int
    channel_reserve_satoshis: int
    htlc_minimum_msat: int
    feerate_per_kw: int
    to_self_delay: int
    max_accepted_htlcs: int
    funding_pubkey: PublicKey
    revocation_basepoint: PublicKey
    payment_basepoint: PublicKey
    delayed_payment_basepoint: PublicKey
    htlc_basepoint: PublicKey
    first_per_commitment_point: PublicKey
    channel_flags: int = 0
    #: ``None``: the TLV is absent; ``b""``: present with a zero-length script.
    upfront_shutdown_script: bytes | None = None
    channel_type: Features | None = None
    unknown_tlvs: tuple[TlvRecord, ...] = ()

    def __post_init__(self) -> None:
        check_bytes("chain_hash", self.chain_hash, 32)
        self._check_common(
            self.temporary_channel_id,
            self.upfront_shutdown_script,
            funding_satoshis=(self.funding_satoshis, 64),
            push_msat=(self.push_msat, 64),
            dust_limit_satoshis=(self.dust_limit_satoshis, 64),
            max_htlc_value_in_flight_msat=(self.max_htlc_value_in_flight_msat, 64),
            channel_reserve_satoshis=(self.channel_reserve_satoshis, 64),
            htlc_minimum_msat=(self.htlc_minimum_msat, 64),
            feerate_per_kw=(self.feerate_per_kw, 32),
            to_self_delay=(self.to_self_delay, 16),
            max_accepted_htlcs=(self.max_accepted_htlcs, 16),
            channel_flags=(self.channel_flags, 8),
        )

    @property
    def target_channel_id(self) -> bytes:
        return self.temporary_channel_id

    @property
    def announce_channel(self) -> bool:
        return bool(self.channel_flags & 1)

    def encode_payload(self) -> bytes:
        stream = _stream(self.unknown_tlvs)
        if self.upfront_shutdown_script is not None:
            stream = stream.set(UPFRONT_SHUTDOWN_SCRIPT, self.upfront_shutdown_script)
        if self.channel_type is not None:
            stream = stream.set(CHANNEL_TYPE, self.channel_type)
        return (
            self.chain_hash
            + self.temporary_channel_id
            + encode_u64(self.funding_satoshis)
            + encode_u64(self.push_msat)
            + encode_u64(self.dust_limit_satoshis)
            + encode_u64(self.max_htlc_value_in_flight_msat)
            + encode_u64(self.channel_reserve_satoshis)
            + encode_u64(self.htlc_minimum_msat)
            + encode_u32(self.feerate_per_kw)
            + encode_u16(self.to_self_delay)
            + encode_u16(self.max_accepted_htlcs)
            + encode_point(self.funding_pubkey)
            + encode_point(self.revocation_basepoint)
            + encode_point(self.payment_basepoint)
            + encode_point(self.delayed_payment_basepoint)
            + encode_point(self.htlc_basepoint)
            + encode_point(self.first_per_commitment_point)
            + bytes([self.channel_flags])
            + stream.encode()
        )

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        r = Reader(payload)
        chain_hash = r.read(32)
        temporary_channel_id = r.read(32)
        funding, push, dust, max_in_flight, reserve, htlc_min = (r.u64() for _ in range(6))
        feerate = r.u32()
        to_self_delay = r.u16()
        max_accepted = r.u16()
        funding_pk, revocation, payment, delayed, htlc, first_point = (r.point() for _ in range(6))
        flags = r.u8()
        tlvs = decode_extension(r, OPEN_CHANNEL_TLVS)
        return cls(
            chain_hash=chain_hash,
            temporary_channel_id=temporary_channel_id,
            funding_satoshis=funding,
            push_msat=push,
            dust_limit_satoshis=dust,
            max_htlc_value_in_flight_msat=max_in_flight,
            channel_reserve_satoshis=reserve,
            htlc_minimum_msat=htlc_min,
            feerate_per_kw=feerate,
            to_self_delay=to_self_delay,
            max_accepted_htlcs=max_accepted,
            funding_pubkey=funding_pk,
            revocation_basepoint=revocation,
            payment_basepoint=payment,
            delayed_payment_basepoint=delayed,
            htlc_basepoint=htlc,
            first_per_commitment_point=first_point,
            channel_flags=flags,
            upfront_shutdown_script=tlvs.get(UPFRONT_SHUTDOWN_SCRIPT),
            channel_type=tlvs.get(CHANNEL_TYPE),
            unknown_tlvs=tlvs.unknown,
        )


@dataclass(frozen=True)
class AcceptChannel(_OpenAcceptCommon):
    """``accept_channel``: the fundee's parameters and keys."""

    TYPE: ClassVar[int] = 33
    NAME: ClassVar[str] = "accept_channel"

    temporary_channel_id: bytes
    dust_limit_satoshis: int
    max_htlc_value_in_flight_msat: int
    channel_reserve_satoshis: int
    htlc_minimum_msat: int
    minimum_depth: int
    to_self_delay: int
    max_accepted_htlcs: int
    funding_pubkey: PublicKey
    revocation_basepoint: PublicKey
    payment_basepoint: PublicKey
    delayed_payment_basepoint: PublicKey
    htlc_basepoint: PublicKey
    first_per_commitment_point: PublicKey
    upfront_shutdown_script: bytes | None = None
    channel_type: Features | None = None
    unknown_tlvs: tuple[TlvRecord, ...] = ()

    def __post_init__(self) -> None:
        self._check_common(
            self.temporary_channel_id,
            self.upfront_shutdown_script,
            dust_limit_satoshis=(self.dust_limit_satoshis, 64),
            max_htlc_value_in_flight_msat=(self.max_htlc_value_in_flight_msat, 64),
            channel_reserve_satoshis=(self.channel_reserve_satoshis, 64),
            htlc_minimum_msat=(self.htlc_minimum_msat, 64),
            minimum_depth=(self.minimum_depth, 32),
            to_self_delay=(self.to_self_delay, 16),
            max_accepted_htlcs=(self.max_accepted_htlcs, 16),
        )

    @property
    def target_channel_id(self) -> bytes:
        return self.temporary_channel_id

    def encode_payload(self) -> bytes:
        stream = _stream(self.unknown_tlvs)
        if self.upfront_shutdown_script is not None:
            stream = stream.set(UPFRONT_SHUTDOWN_SCRIPT, self.upfront_shutdown_script)
        if self.channel_type is not None:
            stream = stream.set(CHANNEL_TYPE, self.channel_type)
        return (
            self.temporary_channel_id
            + encode_u64(self.dust_limit_satoshis)
            + encode_u64(self.max_htlc_value_in_flight_msat)
            + encode_u64(self.channel_reserve_satoshis)
            + encode_u64(self.htlc_minimum_msat)
            + encode_u32(self.minimum_depth)
            + encode_u16(self.to_self_delay)
            + encode_u16(self.max_accepted_htlcs)
            + encode_point(self.funding_pubkey)
            + encode_point(self.revocation_basepoint)
            + encode_point(self.payment_basepoint)
            + encode_point(self.delayed_payment_basepoint)
            + encode_point(self.htlc_basepoint)
            + encode_point(self.first_per_commitment_point)
            + stream.encode()
        )

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        r = Reader(payload)
        temporary_channel_id = r.read(32)
        dust, max_in_flight, reserve, htlc_min = (r.u64() for _ in range(4))
        minimum_depth = r.u32()
        to_self_delay = r.u16()
        max_accepted = r.u16()
        funding_pk, revocation, payment, delayed, htlc, first_point = (r.point() for _ in range(6))
        tlvs = decode_extension(r, ACCEPT_CHANNEL_TLVS)
        return cls(
            temporary_channel_id=temporary_channel_id,
            dust_limit_satoshis=dust,
            max_htlc_value_in_flight_msat=max_in_flight,
            channel_reserve_satoshis=reserve,
            htlc_minimum_msat=htlc_min,
            minimum_depth=minimum_depth,
            to_self_delay=to_self_delay,
            max_accepted_htlcs=max_accepted,
            funding_pubkey=funding_pk,
            revocation_basepoint=revocation,
            payment_basepoint=payment,
            delayed_payment_basepoint=delayed,
            htlc_basepoint=htlc,
            first_per_commitment_point=first_point,
            upfront_shutdown_script=tlvs.get(UPFRONT_SHUTDOWN_SCRIPT),
            channel_type=tlvs.get(CHANNEL_TYPE),
            unknown_tlvs=tlvs.unknown,
        )


@dataclass(frozen=True)
class FundingCreated(ChannelMessage):
    """``funding_created``: the funding outpoint and the funder's signature of the fundee's commitment 0."""

    TYPE: ClassVar[int] = 34
    NAME: ClassVar[str] = "funding_created"

    temporary_channel_id: bytes
    funding_txid: bytes
    funding_output_index: int
    signature: bytes
    unknown_tlvs: tuple[TlvRecord, ...] = ()

    def __post_init__(self) -> None:
        check_bytes("temporary_channel_id", self.temporary_channel_id, 32)
        check_bytes("funding_txid", self.funding_txid, 32)
        check_uint("funding_output_index", self.funding_output_index, 16)
        check_bytes("signature", self.signature, 64)

    @property
    def target_channel_id(self) -> bytes:
        return self.temporary_channel_id

    def encode_payload(self) -> bytes:
        return (
            self.temporary_channel_id
            + self.funding_txid
            + encode_u16(self.funding_output_index)
            + self.signature
            + _stream(self.unknown_tlvs).encode()
        )

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        r = Reader(payload)
        temp, txid, index, sig = r.read(32), r.read(32), r.u16(), r.read(64)
        tlvs = decode_extension(r, _FUNDING_CREATED_TLVS)
        return cls(temp, txid, index, sig, tlvs.unknown)


@dataclass(frozen=True)
class _IdAndSignature(ChannelMessage):
    channel_id: bytes
    signature: bytes
    unknown_tlvs: tuple[TlvRecord, ...] = ()

    TLVS: ClassVar[TlvNamespace]

    def __post_init__(self) -> None:
        check_bytes("channel_id", self.channel_id, 32)
        check_bytes("signature", self.signature, 64)

    @property
    def target_channel_id(self) -> bytes:
        return self.channel_id

    def encode_payload(self) -> bytes:
        return self.channel_id + self.signature + _stream(self.unknown_tlvs).encode()

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        r = Reader(payload)
        channel_id, sig = r.read(32), r.read(64)
        tlvs = decode_extension(r, cls.TLVS)
        return cls(channel_id, sig, tlvs.unknown)


@dataclass(frozen=True)
class FundingSigned(_IdAndSignature):
    """``funding_signed``: the fundee's signature of the funder's commitment 0; introduces ``channel_id``."""

    TYPE: ClassVar[int] = 35
    NAME: ClassVar[str] = "funding_signed"
    TLVS: ClassVar[TlvNamespace] = _FUNDING_SIGNED_TLVS


@dataclass(frozen=True)
class ChannelReady(ChannelMessage):
    """``channel_ready``: the funding reached depth; carries the point of commitment 1 and an optional alias."""

    TYPE: ClassVar[int] = 36
    NAME: ClassVar[str] = "channel_ready"

    channel_id: bytes
    second_per_commitment_point: PublicKey
    short_channel_id: int | None = None  # the `alias` TLV
    unknown_tlvs: tuple[TlvRecord, ...] = ()

    def __post_init__(self) -> None:
        check_bytes("channel_id", self.channel_id, 32)
        if self.short_channel_id is not None:
            check_uint("short_channel_id", self.short_channel_id, 64)

    @property
    def target_channel_id(self) -> bytes:
        return self.channel_id

    def encode_payload(self) -> bytes:
        stream = _stream(self.unknown_tlvs)
        if self.short_channel_id is not None:
            stream = stream.set(SHORT_CHANNEL_ID_ALIAS, self.short_channel_id)
        return self.channel_id + encode_point(self.second_per_commitment_point) + stream.encode()

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        r = Reader(payload)
        channel_id, point = r.read(32), r.point()
        tlvs = decode_extension(r, CHANNEL_READY_TLVS)
        return cls(channel_id, point, tlvs.get(SHORT_CHANNEL_ID_ALIAS), tlvs.unknown)


# The running-channel messages live in their own module; import them from here as before.
from .messages_normal import (  # noqa: E402
    Shutdown,
    ClosingSigned,
    UpdateAddHtlc,
    UpdateFulfillHtlc,
    UpdateFailHtlc,
    UpdateFailMalformedHtlc,
    CommitmentSigned,
    RevokeAndAck,
    UpdateFee,
    ChannelReestablish,
    UpdateMessage,
    UPDATE_MESSAGES,
    BOLT2_MESSAGES,
    channel_id_of,
)
