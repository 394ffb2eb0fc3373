"""What the channel core asks its host to do, and the errors it reports.

The core (:class:`channels.state.Channel`) never does I/O. Every call returns a
list of *effects*, frozen dataclasses that the host (the trio peer layer)
carries out **in order**:

* a :class:`Persist` must be durable (fsync'd) before any effect after it is
  carried out: this is how "persist before you promise" is kept. The core
  always places a ``Persist`` before the ``SendMessage`` / ``Broadcast`` that
  depend on the state it records (a received commitment before the
  ``revoke_and_ack`` that revokes the previous one; an offered HTLC before the
  ``update_add_htlc``; a revocation secret before anything that follows it).
  Its :class:`Durability` says when writing it may be left out: a state that
  differs from the last one written only by uncommitted updates (BOLT 2: the
  peer's are retransmitted after a reconnection, ours re-offered or failed by
  the payment layer) need not be on disk on its own.
* :class:`SendMessage` goes to the peer on the channel's connection.
* :class:`Broadcast` hands a transaction to the chain backend.
* :class:`WatchOutpoint` asks the chain watcher to report confirmations of the
  funding output's transaction (``funding_confirmed``) and any spend of it.
* :class:`FailChannel` says the channel is failed; ``broadcast`` tells the host
  to call ``Channel.force_close()`` (False when nothing is on chain yet, or when
  we have fallen behind and must *not* broadcast).
* :class:`Disconnect` asks the host to close the connection (after a warning).
* The rest are notifications for the payment layer and the watcher.

Errors, by whose fault they are (as LDK classifies them):

* :class:`ChannelError` (raised): our own API misuse -- adding an HTLC over
  capacity, closing twice, force-closing a channel we must not broadcast.
  The channel state is unchanged.
* :class:`PeerViolation` and its subclasses are *internal*: the core raises
  them while handling a peer message and turns them into effects before
  returning, so they never reach the host: :class:`IgnoreMessage` (drop the
  message), :class:`WarnPeer` (send ``warning``, maybe disconnect; the channel
  lives on), :class:`CloseChannel` (send ``error`` and fail the channel).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from base_chain.tx import OutPoint, Transaction

from .wire import Message

__all__ = [
    "ChannelError",
    "PeerViolation",
    "IgnoreMessage",
    "WarnPeer",
    "CloseChannel",
    "SendMessage",
    "Persist",
    "Durability",
    "persist_to_write",
    "join_snapshot",
    "Broadcast",
    "WatchOutpoint",
    "FailChannel",
    "Disconnect",
    "FundingGenerationReady",
    "ChannelReady",
    "IncomingHtlc",
    "HtlcFulfilled",
    "HtlcFailed",
    "ChannelClosed",
    "RevokedHtlcOutput",
    "RevokedCommitment",
    "CommitmentHtlcInfo",
    "CommitmentInfo",
    "HtlcResolution",
    "LocalCommitmentPublished",
    "Effect",
]


# ---------------------------------------------------------------------------
# errors


class ChannelError(Exception):
    """Our own misuse of the channel API; ``reason`` says what was refused. State is unchanged."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PeerViolation(Exception):
    """The peer broke the protocol (internal to the core; see the subclasses for the consequence)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class IgnoreMessage(PeerViolation):
    """Harmless: drop the message and carry on."""


class WarnPeer(PeerViolation):
    """Send a ``warning``; the channel lives on. ``disconnect``: also close the connection."""

    def __init__(self, reason: str, *, disconnect: bool = True) -> None:
        super().__init__(reason)
        self.disconnect = disconnect


class CloseChannel(PeerViolation):
    """Send an ``error`` and fail the channel.

    ``broadcast`` False: do not publish our commitment (we have fallen behind,
    or there is nothing on chain yet).
    """

    def __init__(self, reason: str, *, broadcast: bool = True) -> None:
        super().__init__(reason)
        self.broadcast = broadcast


# ---------------------------------------------------------------------------
# effects the host carries out


@dataclass(frozen=True)
class SendMessage:
    message: Message


class Durability(enum.IntEnum):
    """How much a :class:`Persist` matters on its own (the host may skip writing the lesser ones)."""

    #: Durable before any later effect (commitments, revocations, closing, everything but the below).
    REQUIRED = 0
    #: Only uncommitted updates *we* proposed changed (``update_add_htlc``, ``update_fulfill_htlc``,
    #: ``update_fail_htlc``...): a later REQUIRED Persist of the channel in the same list of effects is
    #: written in its place (:func:`persist_to_write`). Without one it is written, unless the caller
    #: can lose the update (a payer re-offers or fails an HTLC missing after a restart).
    SUPERSEDED = 1
    #: Only uncommitted updates the *peer* proposed changed: after a restart that lost them the peer
    #: retransmits them (BOLT 2 ``channel_reestablish``), so this state need not be written at all.
    OPTIONAL = 2


@dataclass(frozen=True)
class Persist:
    """Write the channel's snapshot durably before carrying out any later effect.

    ``state`` is ``Channel.to_bytes()`` (UTF-8 JSON of ``Channel.to_dict()``):
    replace the stored snapshot of ``channel_id`` with it. For the watcher,
    in the same durable step: ``commitments`` are the commitments that became
    current or were signed since the last Persist (ours when we accepted a
    ``commitment_signed``, the peer's when we are about to send one), in order;
    ``revoked`` is set when the peer has just revoked a commitment (append-only
    data to punish a broadcast of it).

    A channel node stores ``parts``: the snapshot without its ``blobs`` (the long strings,
    onions mostly), and the blobs by key, each stored once while the snapshot refers to it
    (channels/snapshot.py). ``durability`` below REQUIRED: see :func:`persist_to_write`; the
    snapshot of such a Persist is only serialised if the host reads it (when it writes it).
    """

    channel_id: bytes
    snapshot: Callable[[], tuple[bytes, dict[str, str]]] = field(repr=False, compare=False)
    revoked: RevokedCommitment | None = None
    commitments: tuple[CommitmentInfo, ...] = ()
    durability: Durability = Durability.REQUIRED

    @cached_property
    def parts(self) -> tuple[bytes, dict[str, str]]:
        return self.snapshot()

    @property
    def state(self) -> bytes:
        """The whole snapshot in one piece (``Channel.to_bytes()``'s form)."""
        body, blobs = self.parts
        return join_snapshot(body, blobs)


def join_snapshot(body: bytes, blobs: Mapping[str, str]) -> bytes:
    """A snapshot stored in parts (:attr:`Persist.parts`) in one piece, as ``Channel.from_bytes`` reads it."""
    d = json.loads(body)
    d["blobs"] = dict(blobs)
    return json.dumps(d, separators=(",", ":"), sort_keys=True).encode()


def persist_to_write(persist: Persist, rest: list[Any], own_updates_recoverable: bool = False) -> Persist | None:
    """What a host writes where ``persist`` stands, ``rest`` being the effects after it (in order).

    REQUIRED: ``persist`` itself. OPTIONAL: nothing. SUPERSEDED (only our uncommitted updates changed):
    the next REQUIRED Persist of the channel in ``rest`` when there is one, taken out of ``rest`` and
    written now, before the messages in between (so the ``update_*`` never leaves before the state that
    signs for it is on disk, and a crash right after it restarts with the signed state); otherwise
    nothing if the caller copes with losing its updates (``own_updates_recoverable``: a payer fails or
    re-offers an attempt whose HTLC id is at or past the channel's next one), else ``persist`` itself.
    """
    if persist.durability is Durability.REQUIRED:
        return persist
    if persist.durability is Durability.OPTIONAL:
        return None
    for i, e in enumerate(rest):
        if isinstance(e, Persist) and e.channel_id == persist.channel_id:
            if e.durability is Durability.REQUIRED:
                del rest[i]
                return e
            break
    return None if own_updates_recoverable else persist


@dataclass(frozen=True)
class Broadcast:
    """Publish ``tx``; ``label`` is ``"funding"``, ``"closing"`` or ``"commitment"``."""

    tx: Transaction
    label: str


@dataclass(frozen=True)
class WatchOutpoint:
    """Watch the funding output: report its depth once >= ``min_depth`` and any spend of it."""

    channel_id: bytes
    outpoint: OutPoint
    script_pubkey: bytes
    min_depth: int


@dataclass(frozen=True)
class FailChannel:
    """The channel has failed. ``broadcast``: call ``force_close()`` and publish our commitment."""

    channel_id: bytes
    reason: str
    broadcast: bool


@dataclass(frozen=True)
class Disconnect:
    """Close the connection to the peer (the channel lives on; reconnect later)."""

    reason: str


# ---------------------------------------------------------------------------
# notifications


@dataclass(frozen=True)
class FundingGenerationReady:
    """The funder's wallet must build (not broadcast) a transaction paying ``funding_sat`` to ``script_pubkey``,
    then pass it to ``Channel.funding_transaction_generated``."""

    temporary_channel_id: bytes
    funding_sat: int
    script_pubkey: bytes


@dataclass(frozen=True)
class ChannelReady:
    """Both ``channel_ready`` are exchanged: the channel can carry HTLCs."""

    channel_id: bytes
    short_channel_id: int | None
    remote_alias: int | None


@dataclass(frozen=True)
class IncomingHtlc:
    """An HTLC offered by the peer is irrevocably committed: forward it, fulfill it or fail it."""

    channel_id: bytes
    htlc_id: int
    amount_msat: int
    payment_hash: bytes
    cltv_expiry: int
    onion_routing_packet: bytes
    path_key: bytes | None


@dataclass(frozen=True)
class HtlcFulfilled:
    """The peer revealed the preimage of an HTLC we offered (usable at once, e.g. upstream)."""

    channel_id: bytes
    htlc_id: int
    payment_hash: bytes
    payment_preimage: bytes


@dataclass(frozen=True)
class HtlcFailed:
    """An HTLC we offered is irrevocably failed by the peer.

    ``reason`` is the encrypted failure of ``update_fail_htlc``; for
    ``update_fail_malformed_htlc`` it is empty and ``failure_code`` /
    ``sha256_of_onion`` are set.
    """

    channel_id: bytes
    htlc_id: int
    payment_hash: bytes
    reason: bytes
    failure_code: int | None = None
    sha256_of_onion: bytes | None = None


@dataclass(frozen=True)
class ChannelClosed:
    """Mutual close agreed; ``closing_tx`` has been broadcast."""

    channel_id: bytes
    closing_tx: Transaction
    fee_sat: int


# ---------------------------------------------------------------------------
# watcher data


@dataclass(frozen=True)
class RevokedHtlcOutput:
    """An HTLC output of a revoked commitment (claimable with the revocation key)."""

    output_index: int
    amount_sat: int
    witness_script: bytes
    payment_hash: bytes
    cltv_expiry: int
    offered: bool  # offered by the commitment's owner (the peer)


@dataclass(frozen=True)
class RevokedCommitment:
    """Everything a watcher needs to punish the broadcast of one revoked peer commitment.

    With our ``revocation_basepoint_secret`` and ``per_commitment_secret`` the
    watcher derives the revocation private key
    (``keys.derive_revocation_privkey``) and spends ``to_local`` and every HTLC
    output, or the outputs of the second-stage transactions (which pay the
    ``to_local`` script with the same ``revocation_pubkey`` and
    ``delayed_pubkey``).
    """

    channel_id: bytes
    commitment_number: int
    commitment_txid: bytes
    per_commitment_secret: bytes
    revocation_pubkey: bytes
    delayed_pubkey: bytes  # the owner's local_delayedpubkey
    to_self_delay: int
    to_local_output_index: int | None
    to_local_amount_sat: int
    to_local_witness_script: bytes
    htlc_outputs: tuple[RevokedHtlcOutput, ...]


@dataclass(frozen=True)
class CommitmentHtlcInfo:
    """An HTLC of a commitment, seen from us: ``outgoing`` when we sent its ``update_add_htlc``."""

    htlc_id: int
    outgoing: bool
    amount_msat: int
    payment_hash: bytes
    cltv_expiry: int


@dataclass(frozen=True)
class CommitmentInfo:
    """A commitment as a watcher tracks it (balances and directions from our point of view).

    ``ours``: our commitment (with the peer's compact signatures, which make it
    broadcastable) or the peer's (with its ``per_commitment_point``).
    """

    ours: bool
    commitment_number: int
    txid: bytes
    per_commitment_point: bytes
    our_balance_msat: int
    their_balance_msat: int
    feerate_per_kw: int
    htlcs: tuple[CommitmentHtlcInfo, ...]
    remote_signature: bytes | None = None
    remote_htlc_signatures: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class HtlcResolution:
    """One HTLC output of our published commitment and its second-stage transaction.

    ``htlc_tx`` is fully signed: the HTLC-timeout transaction (valid from
    ``cltv_expiry``) for an HTLC we offered; the HTLC-success transaction for
    one we received when we know the preimage, else None (finish it with
    ``transactions.finalize_htlc_tx`` and the two signatures once the preimage
    is known). With anchors, add a fee input/output (the remote signature is
    SIGHASH_SINGLE|ANYONECANPAY).
    """

    htlc_id: int
    offered: bool
    amount_msat: int
    payment_hash: bytes
    cltv_expiry: int
    output_index: int
    witness_script: bytes
    unsigned_htlc_tx: Transaction
    remote_signature: bytes  # DER || sighash type
    local_signature: bytes  # DER || SIGHASH_ALL
    htlc_tx: Transaction | None
    payment_preimage: bytes | None


@dataclass(frozen=True)
class LocalCommitmentPublished:
    """What the watcher needs after ``force_close()``: our outputs and how to sweep them."""

    channel_id: bytes
    commitment_tx: Transaction
    commitment_number: int
    to_self_delay: int
    to_local_output_index: int | None
    to_local_witness_script: bytes
    delayed_pubkey: bytes
    per_commitment_point: bytes
    htlcs: tuple[HtlcResolution, ...]


Effect = (
    SendMessage
    | Persist
    | Broadcast
    | WatchOutpoint
    | FailChannel
    | Disconnect
    | FundingGenerationReady
    | ChannelReady
    | IncomingHtlc
    | HtlcFulfilled
    | HtlcFailed
    | ChannelClosed
    | LocalCommitmentPublished
)
"""Anything a channel call can return."""
