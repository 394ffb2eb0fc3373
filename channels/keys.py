"""BOLT 3 keys: per-commitment secrets, per-commitment key derivation and channel basepoints.

Names follow BOLT 3 "Keys". "local" and "remote" are relative to the *owner of
a commitment transaction* (the node that can broadcast it): in our own
commitment we are local; in the commitment we sign for the peer, the peer is.

Points are :class:`base_chain.crypto.PublicKey` values; a point argument may
also be given as its 33-byte SEC encoding, and a secret as 32 bytes.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from functools import lru_cache

from base_chain.crypto import N, PrivateKey, PublicKey

from .shachain import MAX_INDEX, derive_secret

__all__ = [
    "FIRST_PER_COMMITMENT_INDEX",
    "generate_from_seed",
    "per_commitment_index",
    "per_commitment_point",
    "derive_pubkey",
    "derive_privkey",
    "derive_revocation_pubkey",
    "derive_revocation_privkey",
    "ChannelKeys",
    "ChannelSecrets",
    "derive_channel_keys",
    "CommitmentKeys",
    "derive_commitment_keys",
]

#: The index of the first per-commitment secret (commitment number 0); indices count down.
FIRST_PER_COMMITMENT_INDEX = MAX_INDEX

PointLike = PublicKey | bytes
SecretLike = PrivateKey | bytes


def _point(p: PointLike) -> PublicKey:
    return p if isinstance(p, PublicKey) else PublicKey.from_bytes(p)


def _secret(s: SecretLike) -> PrivateKey:
    return s if isinstance(s, PrivateKey) else PrivateKey(s)


def _scalar(digest: bytes) -> int:
    k = int.from_bytes(digest, "big")
    if not 0 < k < N:  # probability ~2^-128; a key from such a tweak does not exist
        raise ValueError("hash does not give a valid secp256k1 scalar")
    return k


# --- per-commitment secrets ------------------------------------------------------


def generate_from_seed(seed: bytes, index: int) -> bytes:
    """The per-commitment secret with shachain index `index` (BOLT 3 ``generate_from_seed``).

    The first commitment (number 0) uses index ``2^48 - 1``; each next one the
    index below. See :func:`per_commitment_index`.
    """
    if len(seed) != 32:
        raise ValueError("the per-commitment seed must be 32 bytes")
    if not 0 <= index <= MAX_INDEX:
        raise ValueError(f"per-commitment index {index} outside 0..2^48-1")
    return derive_secret(seed, 48, index)


def per_commitment_index(commitment_number: int) -> int:
    """The shachain index of commitment number `commitment_number` (0, 1, 2, ...)."""
    if not 0 <= commitment_number <= MAX_INDEX:
        raise ValueError(f"commitment number {commitment_number} outside 0..2^48-1")
    return FIRST_PER_COMMITMENT_INDEX - commitment_number


def per_commitment_point(per_commitment_secret: SecretLike) -> PublicKey:
    """``per_commitment_point = per_commitment_secret * G``."""
    return _secret(per_commitment_secret).public_key()


# --- per-commitment keys -----------------------------------------------------------


def _tweak(per_commitment_point: PublicKey, basepoint: PublicKey) -> int:
    """``SHA256(per_commitment_point || basepoint)`` as a scalar."""
    return _scalar(hashlib.sha256(per_commitment_point.to_bytes() + basepoint.to_bytes()).digest())


def derive_pubkey(basepoint: PointLike, per_commitment_point: PointLike) -> PublicKey:
    """``basepoint + SHA256(per_commitment_point || basepoint) * G``.

    This gives ``localpubkey``, ``local_htlcpubkey``, ``remote_htlcpubkey``,
    ``local_delayedpubkey`` and ``remote_delayedpubkey`` from the matching basepoint.
    """
    base = _point(basepoint)
    return base.tweak_add(_tweak(_point(per_commitment_point), base))


def derive_privkey(basepoint_secret: SecretLike, per_commitment_point: PointLike) -> PrivateKey:
    """``basepoint_secret + SHA256(per_commitment_point || basepoint)``: the secret of :func:`derive_pubkey`."""
    secret = _secret(basepoint_secret)
    return secret.tweak_add(_tweak(_point(per_commitment_point), secret.public_key()))


def _revocation_tweaks(revocation_basepoint: PublicKey, per_commitment_point: PublicKey) -> tuple[int, int]:
    r = revocation_basepoint.to_bytes()
    p = per_commitment_point.to_bytes()
    return (
        _scalar(hashlib.sha256(r + p).digest()),  # SHA256(revocation_basepoint || per_commitment_point)
        _scalar(hashlib.sha256(p + r).digest()),  # SHA256(per_commitment_point || revocation_basepoint)
    )


def derive_revocation_pubkey(revocation_basepoint: PointLike, per_commitment_point: PointLike) -> PublicKey:
    """``revocation_basepoint * SHA256(revocation_basepoint || per_commitment_point)
    + per_commitment_point * SHA256(per_commitment_point || revocation_basepoint)``."""
    base = _point(revocation_basepoint)
    point = _point(per_commitment_point)
    t1, t2 = _revocation_tweaks(base, point)
    return base.multiply(t1).add(point.multiply(t2))


def derive_revocation_privkey(
    revocation_basepoint_secret: SecretLike, per_commitment_secret: SecretLike
) -> PrivateKey:
    """The secret of :func:`derive_revocation_pubkey`, known once the commitment is revoked."""
    base = _secret(revocation_basepoint_secret)
    commitment = _secret(per_commitment_secret)
    t1, t2 = _revocation_tweaks(base.public_key(), commitment.public_key())
    return PrivateKey((base.secret * t1 + commitment.secret * t2) % N)


# --- channel basepoints -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelKeys:
    """One node's public keys for a channel, as sent in ``open_channel`` / ``accept_channel``."""

    funding_pubkey: PublicKey
    revocation_basepoint: PublicKey
    payment_basepoint: PublicKey
    delayed_payment_basepoint: PublicKey
    htlc_basepoint: PublicKey


@dataclass(frozen=True, slots=True)
class ChannelSecrets:
    """Our secrets for one channel: the five basepoint secrets and the per-commitment seed."""

    funding_privkey: PrivateKey
    revocation_basepoint_secret: PrivateKey
    payment_basepoint_secret: PrivateKey
    delayed_payment_basepoint_secret: PrivateKey
    htlc_basepoint_secret: PrivateKey
    per_commitment_seed: bytes = field(repr=False)

    def channel_keys(self) -> ChannelKeys:
        """The public basepoints that go to the peer."""
        return ChannelKeys(
            funding_pubkey=self.funding_privkey.public_key(),
            revocation_basepoint=self.revocation_basepoint_secret.public_key(),
            payment_basepoint=self.payment_basepoint_secret.public_key(),
            delayed_payment_basepoint=self.delayed_payment_basepoint_secret.public_key(),
            htlc_basepoint=self.htlc_basepoint_secret.public_key(),
        )

    def per_commitment_secret(self, commitment_number: int) -> bytes:
        """The secret of our commitment number `commitment_number` (revealed when revoking it)."""
        return generate_from_seed(self.per_commitment_seed, per_commitment_index(commitment_number))

    def per_commitment_point(self, commitment_number: int) -> PublicKey:
        return _our_point(self.per_commitment_seed, commitment_number)


@lru_cache(maxsize=512)
def _our_point(per_commitment_seed: bytes, commitment_number: int) -> PublicKey:
    """Our per-commitment points, remembered: each is needed for several messages and transactions."""
    return per_commitment_point(generate_from_seed(per_commitment_seed, per_commitment_index(commitment_number)))


_CHANNEL_KEY_DOMAIN = b"canal/channel-keys/v1"
_KEY_LABELS = (
    b"funding",
    b"revocation_basepoint",
    b"payment_basepoint",
    b"delayed_payment_basepoint",
    b"htlc_basepoint",
)


def _derive_material(seed: bytes, channel_index: int, label: bytes, counter: int) -> bytes:
    msg = _CHANNEL_KEY_DOMAIN + channel_index.to_bytes(8, "big") + label + bytes([counter])
    return hmac.new(seed, msg, hashlib.sha256).digest()


def _derive_key(seed: bytes, channel_index: int, label: bytes) -> PrivateKey:
    for counter in range(256):
        k = int.from_bytes(_derive_material(seed, channel_index, label, counter), "big")
        if 0 < k < N:
            return PrivateKey(k)
    raise AssertionError("unreachable: 256 HMAC outputs all out of range")


def derive_channel_keys(seed: bytes, channel_index: int) -> ChannelSecrets:
    """All secrets of channel number `channel_index`, deterministically from a node seed.

    Scheme (Canal's own; the BOLTs leave it to the implementation):

    * ``material(label, c) = HMAC-SHA256(key=seed, msg="canal/channel-keys/v1"
      || u64be(channel_index) || label || u8(c))``
    * each of the five secrets (labels ``funding``, ``revocation_basepoint``,
      ``payment_basepoint``, ``delayed_payment_basepoint``, ``htlc_basepoint``)
      is ``material(label, c)`` as a big-endian integer for the smallest
      ``c = 0, 1, ...`` giving a valid scalar (``1 <= k < N``; c > 0 essentially
      never happens);
    * the per-commitment (shachain) seed is ``material("per_commitment_seed", 0)``.

    Distinct channel indices give independent keys, so a node needs to persist
    only its seed and each channel's index to recover every key.
    """
    if len(seed) < 32:
        raise ValueError("the node seed must have at least 32 bytes")
    if not 0 <= channel_index < 1 << 64:
        raise ValueError("channel_index must fit in 64 bits")
    keys = [_derive_key(seed, channel_index, label) for label in _KEY_LABELS]
    return ChannelSecrets(
        funding_privkey=keys[0],
        revocation_basepoint_secret=keys[1],
        payment_basepoint_secret=keys[2],
        delayed_payment_basepoint_secret=keys[3],
        htlc_basepoint_secret=keys[4],
        per_commitment_seed=_derive_material(seed, channel_index, b"per_commitment_seed", 0),
    )


# --- the keys of one commitment transaction -------------------------------------------


@dataclass(frozen=True, slots=True)
class CommitmentKeys:
    """The keys in the scripts of one commitment transaction, seen from its owner ("local").

    ``remote_pubkey`` (BOLT ``remotepubkey``, the ``to_remote`` key) is the
    remote ``payment_basepoint`` itself: Canal's channel types all have
    ``option_static_remotekey``.
    """

    per_commitment_point: PublicKey
    revocation_pubkey: PublicKey
    local_delayed_pubkey: PublicKey
    local_htlc_pubkey: PublicKey
    remote_htlc_pubkey: PublicKey
    remote_pubkey: PublicKey


def derive_commitment_keys(
    per_commitment_point: PointLike, local: ChannelKeys, remote: ChannelKeys
) -> CommitmentKeys:
    """The keys of the commitment owned by `local`, for the owner's `per_commitment_point`.

    For our own commitment pass (our point, our keys, their keys); for the
    commitment we sign for the peer pass (their point, their keys, our keys).
    Results are remembered: a commitment's keys are needed again to verify or
    rebuild it (e.g. the peer's revoked commitment, for the watcher).
    """
    return _commitment_keys(_point(per_commitment_point), local, remote)


@lru_cache(maxsize=1024)
def _commitment_keys(point: PublicKey, local: ChannelKeys, remote: ChannelKeys) -> CommitmentKeys:
    return CommitmentKeys(
        per_commitment_point=point,
        revocation_pubkey=derive_revocation_pubkey(remote.revocation_basepoint, point),
        local_delayed_pubkey=derive_pubkey(local.delayed_payment_basepoint, point),
        local_htlc_pubkey=derive_pubkey(local.htlc_basepoint, point),
        remote_htlc_pubkey=derive_pubkey(remote.htlc_basepoint, point),
        remote_pubkey=remote.payment_basepoint,
    )
