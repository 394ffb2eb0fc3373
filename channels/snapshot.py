"""The persisted form of a :class:`channels.state.Channel`: JSON types only, versioned.

``Channel.to_dict()`` / ``Channel.from_dict(d, secrets)`` use these functions.
The snapshot holds the whole state except secrets: the host derives them
again from its node seed and ``keys_id`` (``keys.derive_channel_keys``), and
``from_dict`` checks they match the stored basepoints. Layout (``version`` 1)::

    version, state, keys_id, is_funder, chain_hash, temporary_channel_id,
    local_features / remote_features (hex feature bits), config (ChannelConfig),
    channel_type, minimum_depth, funding_tx (hex, funder only),
    channel_ready_sent, remote_channel_ready, short_channel_id, remote_alias,
    shutdown_scriptpubkey, local_shutdown_script, shutdown_sent,
    remote_shutdown_script, closing_feerate_per_kw, closing_signed_sent
    (our last closing_signed, wire hex), closing_tx (hex), last_error,
    commitments: {
        params: {channel_id, funding_txid, funding_output_index, funding_sat,
                 channel_type, is_funder, local: PartyParams, remote: PartyParams},
        local_commit: {index, spec, signature, htlc_signatures},   # the peer's, compact
        remote_commit: {index, spec, txid, per_commitment_point},
        next_remote: null | {commit: remote_commit, sent: commitment_signed wire hex},
        remote_next_point, local_changes / remote_changes: {proposed, signed, acked}
        (update_* messages as wire hex), local_next_htlc_id, remote_next_htlc_id,
        remote_secrets (the peer's revealed secrets: ShachainStore.to_bytes hex), last_sent
    }

A spec is ``{to_local_msat, to_remote_msat, feerate_per_kw, htlcs: [[direction,
update_add_htlc wire hex], ...]}`` from its commitment owner's point of view.
Bytes are hex; amounts are integers (msat in channels, sat on chain).

Long strings are stored once: the same update_add_htlc (with its 1,366-byte onion)
is in up to four specs and an update log, so inside ``commitments`` every string of
``_INTERN_MIN`` characters or more (and any string starting with ``@``) is replaced
by ``"@<key>"``, ``key`` being the first 12 bytes of the string's SHA-256 in hex, and
the top-level ``blobs`` maps keys to strings. :func:`channel_snapshot` returns the
two apart, so the host can store each string once for as long as the channel
refers to it (a node with hundreds of HTLCs in flight writes a few kilobytes per
update, not the onions of all of them). Snapshots written before: ``blobs`` a list
(``"@<n>"`` an index into it), or absent (no references); both load as they are.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from base_chain.tx import Transaction

from .features import Features
from .htlcs import Commitments
from .keys import ChannelSecrets
from .messages import ClosingSigned
from .opening import ChannelConfig
from .transactions import ChannelType
from .wire import decode_message

if TYPE_CHECKING:
    from .state import Channel

__all__ = ["SNAPSHOT_VERSION", "channel_to_dict", "channel_snapshot", "channel_from_dict"]

SNAPSHOT_VERSION = 1
_INTERN_MIN = 200  # characters: anything shorter costs more as a reference than as itself

# Attributes stored as they are (JSON types), and as hex (bytes | None).
_PLAIN = (
    "keys_id",
    "is_funder",
    "minimum_depth",
    "channel_ready_sent",
    "remote_channel_ready",
    "short_channel_id",
    "remote_alias",
    "shutdown_sent",
    "closing_feerate_per_kw",
    "last_error",
)
_HEX = (
    "chain_hash",
    "temporary_channel_id",
    "shutdown_scriptpubkey",
    "local_shutdown_script",
    "remote_shutdown_script",
)


def _hx(b: bytes | None) -> str | None:
    return None if b is None else b.hex()


def _uhx(s: str | None) -> bytes | None:
    return None if s is None else bytes.fromhex(s)


def channel_to_dict(ch: Channel) -> dict[str, Any]:
    """The whole snapshot, ``blobs`` included."""
    body, blobs = channel_snapshot(ch, {})
    body["blobs"] = blobs
    return body


def channel_snapshot(ch: Channel, keys: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The snapshot without its ``blobs``, and the blobs it refers to (key -> string).

    ``keys`` (string -> key) remembers the keys of the last call's strings: pass the same dict
    every time; it is replaced in place by this call's.
    """
    assert ch.commitments is not None
    d: dict[str, Any] = {name: getattr(ch, name) for name in _PLAIN}
    d.update({name: _hx(getattr(ch, name)) for name in _HEX})
    sent, tx, funding = ch.closing_signed_sent, ch.closing_tx, ch.funding_tx
    d.update(
        version=SNAPSHOT_VERSION,
        state=ch.state.value,
        local_features=ch.local_features.to_bytes().hex(),
        remote_features=ch.remote_features.to_bytes().hex(),
        config=ch.config.to_dict(),
        channel_type=None if ch.channel_type is None else ch.channel_type.value,
        funding_tx=None if funding is None else funding.hex(),
        closing_signed_sent=None if sent is None else sent.encode().hex(),
        closing_tx=None if tx is None else tx.hex(),
    )
    blobs: dict[str, str] = {}
    used: dict[str, str] = {}
    d["commitments"] = _intern(ch.commitments.to_dict(), blobs, keys, used)
    keys.clear()
    keys.update(used)
    return d, blobs


def _intern(value: Any, blobs: dict[str, str], known: dict[str, str], used: dict[str, str]) -> Any:
    if isinstance(value, str):
        if len(value) < _INTERN_MIN and not value.startswith("@"):
            return value
        key = used.get(value)
        if key is None:
            key = known.get(value)
            if key is None:
                key = hashlib.sha256(value.encode()).hexdigest()[:24]
            used[value] = key
            blobs[key] = value
        return f"@{key}"
    if isinstance(value, list):
        return [_intern(v, blobs, known, used) for v in value]
    if isinstance(value, dict):
        return {k: _intern(v, blobs, known, used) for k, v in value.items()}
    return value


def _resolve(value: Any, blobs: list[str] | dict[str, str]) -> Any:
    if isinstance(value, str):
        if not value.startswith("@"):
            return value
        try:
            return blobs[value[1:]] if isinstance(blobs, dict) else blobs[int(value[1:])]
        except (ValueError, IndexError, KeyError):
            raise ValueError(f"snapshot: bad blob reference {value[:20]!r}") from None
    if isinstance(value, list):
        return [_resolve(v, blobs) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, blobs) for k, v in value.items()}
    return value


def channel_from_dict(cls: type[Channel], d: dict[str, Any], secrets: ChannelSecrets) -> Channel:
    """The channel a snapshot describes (the caller marks it disconnected)."""
    from .state import ChannelState  # the state module imports this one

    if d.get("version") != SNAPSHOT_VERSION:
        raise ValueError(f"unknown channel snapshot version {d.get('version')}")
    blobs = d.get("blobs")
    commitments = d["commitments"] if blobs is None else _resolve(d["commitments"], blobs)
    ch = cls(
        state=ChannelState(d["state"]),
        secrets=secrets,
        keys_id=d["keys_id"],
        chain_hash=bytes.fromhex(d["chain_hash"]),
        is_funder=d["is_funder"],
        local_features=Features.from_bytes(bytes.fromhex(d["local_features"])),
        remote_features=Features.from_bytes(bytes.fromhex(d["remote_features"])),
        shutdown_scriptpubkey=bytes.fromhex(d["shutdown_scriptpubkey"]),
        config=ChannelConfig.from_dict(d["config"]),
        temporary_channel_id=bytes.fromhex(d["temporary_channel_id"]),
    )
    for name in _PLAIN:
        setattr(ch, name, d[name])
    for name in _HEX:
        setattr(ch, name, _uhx(d[name]))
    ch.channel_type = None if d["channel_type"] is None else ChannelType(d["channel_type"])
    ch.commitments = Commitments.from_dict(commitments, secrets)
    ch.funding_tx = None if d["funding_tx"] is None else Transaction.from_hex(d["funding_tx"])
    ch.closing_tx = None if d["closing_tx"] is None else Transaction.from_hex(d["closing_tx"])
    if d["closing_signed_sent"] is not None:
        sent = decode_message(bytes.fromhex(d["closing_signed_sent"]))
        if not isinstance(sent, ClosingSigned):
            raise ValueError("snapshot: closing_signed_sent is not a closing_signed")
        ch.closing_signed_sent = sent
    return ch
