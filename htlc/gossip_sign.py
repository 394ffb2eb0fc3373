"""BOLT 7 signatures and checksums: the digests each gossip message is signed over, signing and
verification (all four signatures of a channel_announcement), and channel_update's CRC32C.

Split from `htlc.gossip` (which re-exports everything here).
"""

from __future__ import annotations

from dataclasses import replace
from base_chain.crypto import N, PrivateKey, PublicKey
from base_chain.hashes import hash256

from .gossip import (
    AnnouncementSignatures,
    ChannelAnnouncement,
    ChannelUpdate,
    GossipError,
    InvalidSignature,
    NodeAnnouncement,
)


# ---------------------------------------------------------------------------
# signatures


def channel_announcement_hash(ann: ChannelAnnouncement) -> bytes:
    """BOLT 7 ``h``: double-SHA256 of the payload from offset 256 (after the four signatures)."""
    return hash256(ann.encode_payload()[ChannelAnnouncement.SIGNED_OFFSET :])


def node_announcement_hash(ann: NodeAnnouncement) -> bytes:
    """Double-SHA256 of everything after ``signature``."""
    return hash256(ann.encode_payload()[NodeAnnouncement.SIGNED_OFFSET :])


def channel_update_hash(update: ChannelUpdate) -> bytes:
    """Double-SHA256 of everything after ``signature``."""
    return hash256(update.encode_payload()[ChannelUpdate.SIGNED_OFFSET :])


def _sign(key: PrivateKey, digest: bytes) -> bytes:
    r, s = key.sign(digest)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _verifies(key: PublicKey, signature: bytes, digest: bytes) -> bool:
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    return 0 < r < N and 0 < s < N and key.verify(r, s, digest)


def _key_matches(name: str, key: PrivateKey, expected: PublicKey) -> None:
    if key.public_key() != expected:
        raise ValueError(f"the private key given for {name} does not match it")


def sign_channel_announcement(
    ann: ChannelAnnouncement,
    node_key_1: PrivateKey,
    node_key_2: PrivateKey,
    bitcoin_key_1: PrivateKey,
    bitcoin_key_2: PrivateKey,
) -> ChannelAnnouncement:
    """``ann`` with all four signatures (each key must match its field)."""
    for name, key, pub in (
        ("node_id_1", node_key_1, ann.node_id_1),
        ("node_id_2", node_key_2, ann.node_id_2),
        ("bitcoin_key_1", bitcoin_key_1, ann.bitcoin_key_1),
        ("bitcoin_key_2", bitcoin_key_2, ann.bitcoin_key_2),
    ):
        _key_matches(name, key, pub)
    h = channel_announcement_hash(ann)
    return replace(
        ann,
        node_signature_1=_sign(node_key_1, h),
        node_signature_2=_sign(node_key_2, h),
        bitcoin_signature_1=_sign(bitcoin_key_1, h),
        bitcoin_signature_2=_sign(bitcoin_key_2, h),
    )


def verify_channel_announcement(ann: ChannelAnnouncement) -> None:
    """Check the four signatures; :class:`InvalidSignature` names the first that fails."""
    h = channel_announcement_hash(ann)
    for sig_name, sig, key_name, key in (
        ("node_signature_1", ann.node_signature_1, "node_id_1", ann.node_id_1),
        ("node_signature_2", ann.node_signature_2, "node_id_2", ann.node_id_2),
        ("bitcoin_signature_1", ann.bitcoin_signature_1, "bitcoin_key_1", ann.bitcoin_key_1),
        ("bitcoin_signature_2", ann.bitcoin_signature_2, "bitcoin_key_2", ann.bitcoin_key_2),
    ):
        if not _verifies(key, sig, h):
            raise InvalidSignature(f"channel_announcement: {sig_name} is not a valid signature by {key_name}")


def make_announcement_signatures(
    ann: ChannelAnnouncement, channel_id: bytes, node_key: PrivateKey, bitcoin_key: PrivateKey
) -> AnnouncementSignatures:
    """Our ``announcement_signatures`` for ``ann`` (we are whichever node ``node_key`` is)."""
    pub = node_key.public_key()
    if pub == ann.node_id_1:
        _key_matches("bitcoin_key_1", bitcoin_key, ann.bitcoin_key_1)
    elif pub == ann.node_id_2:
        _key_matches("bitcoin_key_2", bitcoin_key, ann.bitcoin_key_2)
    else:
        raise ValueError("node_key is neither node_id_1 nor node_id_2 of the announcement")
    h = channel_announcement_hash(ann)
    return AnnouncementSignatures(channel_id, ann.short_channel_id, _sign(node_key, h), _sign(bitcoin_key, h))


def add_announcement_signatures(ann: ChannelAnnouncement, sigs: AnnouncementSignatures) -> ChannelAnnouncement:
    """Put a peer's (or our) ``announcement_signatures`` on the side whose keys they verify with."""
    if sigs.short_channel_id != ann.short_channel_id:
        raise GossipError("announcement_signatures: short_channel_id does not match the channel")
    h = channel_announcement_hash(ann)
    if _verifies(ann.node_id_1, sigs.node_signature, h) and _verifies(ann.bitcoin_key_1, sigs.bitcoin_signature, h):
        return replace(ann, node_signature_1=sigs.node_signature, bitcoin_signature_1=sigs.bitcoin_signature)
    if _verifies(ann.node_id_2, sigs.node_signature, h) and _verifies(ann.bitcoin_key_2, sigs.bitcoin_signature, h):
        return replace(ann, node_signature_2=sigs.node_signature, bitcoin_signature_2=sigs.bitcoin_signature)
    raise InvalidSignature("announcement_signatures: node_signature or bitcoin_signature is not correct")


def sign_node_announcement(ann: NodeAnnouncement, node_key: PrivateKey) -> NodeAnnouncement:
    _key_matches("node_id", node_key, ann.node_id)
    return replace(ann, signature=_sign(node_key, node_announcement_hash(ann)))


def verify_node_announcement(ann: NodeAnnouncement) -> None:
    if not _verifies(ann.node_id, ann.signature, node_announcement_hash(ann)):
        raise InvalidSignature("node_announcement: signature is not a valid signature by node_id")


def sign_channel_update(update: ChannelUpdate, node_key: PrivateKey) -> ChannelUpdate:
    """``update`` signed by ``node_key``, which must be the node of its direction (not checked here)."""
    return replace(update, signature=_sign(node_key, channel_update_hash(update)))


def verify_channel_update(update: ChannelUpdate, node_id_1: PublicKey, node_id_2: PublicKey) -> None:
    """Check the signature by ``node_id_1`` (direction 0) or ``node_id_2`` (direction 1)."""
    key, name = (node_id_2, "node_id_2") if update.direction else (node_id_1, "node_id_1")
    if not _verifies(key, update.signature, channel_update_hash(update)):
        raise InvalidSignature(f"channel_update: signature is not a valid signature by {name}")


# ---------------------------------------------------------------------------
# CRC32C (RFC 3720 appendix B.4; Castagnoli polynomial, reflected 0x82F63B78)


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC32C of ``data``; pass a previous result as ``crc`` to continue it over more bytes."""
    table = _CRC32C_TABLE
    c = crc ^ 0xFFFFFFFF
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


_TIMESTAMP_AT = 32 + 8  # offset of timestamp in the signed part of a channel_update


def channel_update_checksum(update: ChannelUpdate) -> int:
    """BOLT 7: the CRC32C of the ``channel_update`` without its ``signature`` and ``timestamp``.

    Everything after ``timestamp`` counts, ``excess_data`` included (as Core Lightning does).
    """
    signed = update.encode_payload()[ChannelUpdate.SIGNED_OFFSET :]
    return crc32c(signed[_TIMESTAMP_AT + 4 :], crc32c(signed[:_TIMESTAMP_AT]))
