"""The states of a channel (BOLT 2) and the groups of them the state machine reasons about."""

from __future__ import annotations

import enum

__all__ = ["ChannelState", "PRE_FUNDING", "ON_CHAIN_OR_DEAD"]


class ChannelState(enum.Enum):
    # funder
    WAIT_FOR_ACCEPT_CHANNEL = "wait_for_accept_channel"  # open_channel sent
    WAIT_FOR_FUNDING_TX = "wait_for_funding_tx"  # the host's wallet builds the funding tx
    WAIT_FOR_FUNDING_SIGNED = "wait_for_funding_signed"  # funding_created sent
    # fundee
    WAIT_FOR_OPEN_CHANNEL = "wait_for_open_channel"
    WAIT_FOR_FUNDING_CREATED = "wait_for_funding_created"  # accept_channel sent
    # both
    AWAITING_CHANNEL_READY = "awaiting_channel_ready"  # commitment 0 signed; depth and channel_ready pending
    NORMAL = "normal"
    SHUTDOWN = "shutdown"  # shutdown sent or received: no new HTLCs, the others drain
    NEGOTIATING = "negotiating"  # closing_signed exchange
    CLOSING = "closing"  # mutual close signed and broadcast
    FORCE_CLOSING = "force_closing"  # our commitment broadcast
    FAILED = "failed"  # error sent or received: the host force-closes
    DATA_LOSS = "data_loss"  # we are behind: never broadcast, the peer must close
    ABANDONED = "abandoned"  # failed before the funding: nothing on chain


S = ChannelState
PRE_FUNDING = frozenset(
    {
        S.WAIT_FOR_OPEN_CHANNEL,
        S.WAIT_FOR_ACCEPT_CHANNEL,
        S.WAIT_FOR_FUNDING_TX,
        S.WAIT_FOR_FUNDING_CREATED,
        S.WAIT_FOR_FUNDING_SIGNED,
    }
)
ON_CHAIN_OR_DEAD = frozenset({S.FORCE_CLOSING, S.FAILED, S.DATA_LOSS, S.ABANDONED})
