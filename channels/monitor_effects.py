"""What the channel watcher asks its host to do: the effects of :class:`channels.watcher.ChannelMonitor`.

Frozen values; the host carries them out in order. ``Broadcast`` and the fee
requests repeat every block until what they are about is confirmed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Union

from base_chain.tx import OutPoint, Transaction

__all__ = [
    "Effect",
    "Broadcast",
    "WatchOutpoint",
    "WatchConfirmations",
    "NeedFeeBump",
    "NeedHtlcTxFunding",
    "CloseKind",
    "ChannelClosedOnChain",
    "ChannelCloseReorged",
    "HtlcResolved",
    "PreimageLearned",
    "ChannelFullyResolved",
]


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send `tx` to the network (again: it is repeated every block until it confirms)."""

    tx: Transaction
    reason: str


@dataclass(frozen=True, slots=True)
class WatchOutpoint:
    """Report transactions that spend `outpoint` (``block_connected`` / ``spend_detected``)."""

    outpoint: OutPoint
    script_pubkey: bytes


@dataclass(frozen=True, slots=True)
class WatchConfirmations:
    """We broadcast `txid`; it matters until it is `depth` blocks deep."""

    txid: bytes
    depth: int


@dataclass(frozen=True, slots=True)
class NeedFeeBump:
    """Our commitment `txid` pays too little: CPFP it through our anchor `anchor_outpoint`.

    The host's wallet builds a child spending the anchor (330 sat) and its own
    coins, so that parent and child together pay `target_feerate_per_kw`
    (the parent has `parent_weight` and pays `parent_fee_sat`), signs its own
    inputs, and gets the anchor input signed by :meth:`ChannelMonitor.sign_anchor_input`.
    """

    txid: bytes
    anchor_outpoint: OutPoint
    target_feerate_per_kw: int
    parent_weight: int
    parent_fee_sat: int


@dataclass(frozen=True, slots=True)
class NeedHtlcTxFunding:
    """A zero-fee (anchors) HTLC transaction that needs fee inputs before it can go out.

    `tx` is the HTLC-timeout / HTLC-success transaction spending `htlc_outpoint`
    (input 0, output 0; `weight` once signed). The host appends wallet inputs
    and a change output (keeping input 0 and output 0 in place), signs its own
    inputs and passes the result to :meth:`ChannelMonitor.complete_htlc_tx`.
    """

    htlc_outpoint: OutPoint
    tx: Transaction
    weight: int
    target_feerate_per_kw: int


class CloseKind(enum.Enum):
    """What spent the funding output."""

    COOPERATIVE = "cooperative"
    LOCAL = "local"  # our current or previous commitment
    LOCAL_REVOKED = "local_revoked"  # an older commitment of ours: the peer may take everything
    REMOTE = "remote"  # the peer's current or next commitment
    REVOKED = "revoked"  # a revoked commitment of the peer: justice
    REMOTE_FUTURE = "remote_future"  # a commitment of the peer newer than we know (data loss)
    UNKNOWN = "unknown"  # a commitment we cannot place (lost funds warning)


@dataclass(frozen=True, slots=True)
class ChannelClosedOnChain:
    """The funding output was spent by `txid`, confirmed at `height`."""

    kind: CloseKind
    txid: bytes
    height: int
    commitment_number: int | None


@dataclass(frozen=True, slots=True)
class ChannelCloseReorged:
    """The closing transaction `txid` is no longer in the best chain."""

    txid: bytes


@dataclass(frozen=True, slots=True)
class HtlcResolved:
    """The HTLC ``(outgoing, htlc_id)`` is settled on chain, irreversibly (``reorg_safety_depth``).

    `preimage` set: it was fulfilled (an outgoing one: fulfill the incoming HTLC
    upstream). None: it failed — timed out, never made it on chain (trimmed, or
    not in the commitment that confirmed), or was taken by a justice
    transaction. The first resolution of an HTLC wins: the payment layer ignores
    this for an HTLC it already settled off chain.
    """

    payment_hash: bytes
    preimage: bytes | None
    amount_msat: int
    htlc_id: int
    outgoing: bool


@dataclass(frozen=True, slots=True)
class PreimageLearned:
    """A preimage seen on chain or in the mempool (fulfilling upstream is safe at once)."""

    payment_hash: bytes
    preimage: bytes


@dataclass(frozen=True, slots=True)
class ChannelFullyResolved:
    """Every output is irrevocably resolved: the monitor can be archived."""

    closing_txid: bytes


Effect = Union[
    Broadcast,
    WatchOutpoint,
    WatchConfirmations,
    NeedFeeBump,
    NeedHtlcTxFunding,
    ChannelClosedOnChain,
    ChannelCloseReorged,
    HtlcResolved,
    PreimageLearned,
    ChannelFullyResolved,
]
