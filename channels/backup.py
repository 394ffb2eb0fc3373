"""Static channel backups: what a node restored from its seed needs to get its channel funds back.

Like lnd's SCB: one encrypted blob per channel (and a multi-channel blob) that
never changes while the channel lives. It holds the peer, where to reach it,
the funding outpoint, the key-derivation index and the channel type; the
secrets come from the seed. After a restore the node asks each peer to force-
close (an `error` for the channel) and sweeps its `to_remote` output, which
pays to a key derived from the seed.

Encryption: ChaCha20-Poly1305 (from `cryptography`) with a key derived from the
seed by HMAC-SHA256, a random 12-byte nonce in front of each blob.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import asdict, dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from base_chain.tx import OutPoint

__all__ = ["ChannelBackupRecord", "BackupError", "encrypt_backups", "decrypt_backups"]

_VERSION = 1


class BackupError(ValueError):
    """A backup blob that cannot be read with this node's seed (wrong seed, corrupted, or another format)."""


@dataclass(frozen=True)
class ChannelBackupRecord:
    chain_hash: str
    funding_txid: str  # display order
    output_index: int
    remote_pubkey: str
    remote_address: str
    channel_index: int
    is_funder: bool
    capacity_sat: int
    anchors: bool

    @property
    def outpoint(self) -> OutPoint:
        return OutPoint(bytes.fromhex(self.funding_txid)[::-1], self.output_index)

    @property
    def channel_point(self) -> str:
        return f"{self.funding_txid}:{self.output_index}"


def _key(seed: bytes) -> bytes:
    return hmac.new(seed, b"canal/static-channel-backup/v1", hashlib.sha256).digest()


def encrypt_backups(seed: bytes, records: list[ChannelBackupRecord]) -> bytes:
    plain = json.dumps({"version": _VERSION, "channels": [asdict(r) for r in records]}, sort_keys=True).encode()
    nonce = os.urandom(12)
    return nonce + ChaCha20Poly1305(_key(seed)).encrypt(nonce, plain, b"canal-scb")


def decrypt_backups(seed: bytes, blob: bytes) -> list[ChannelBackupRecord]:
    if len(blob) < 12 + 16:
        raise BackupError("backup too short")
    try:
        plain = ChaCha20Poly1305(_key(seed)).decrypt(blob[:12], blob[12:], b"canal-scb")
    except InvalidTag:
        raise BackupError("cannot decrypt backup: wrong seed or corrupted data") from None
    try:
        doc = json.loads(plain)
        if doc.get("version") != _VERSION:
            raise BackupError(f"unknown backup version {doc.get('version')}")
        return [ChannelBackupRecord(**r) for r in doc["channels"]]
    except (ValueError, TypeError, KeyError) as e:
        raise BackupError(f"malformed backup: {e}") from None
