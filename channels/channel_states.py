"""The states of a channel (BOLT 2), the groups of them the state machine reasons about, and what each accepts."""

from __future__ import annotations

import enum

from .messages import (
    AcceptChannel,
    ChannelReady,
    ChannelReestablish,
    ClosingSigned,
    CommitmentSigned,
    FundingCreated,
    FundingSigned,
    OpenChannel,
    RevokeAndAck,
    Shutdown,
    UpdateAddHtlc,
    UpdateFailHtlc,
    UpdateFailMalformedHtlc,
    UpdateFee,
    UpdateFulfillHtlc,
)
from .wire import Message

__all__ = ["ChannelState", "PRE_FUNDING", "ON_CHAIN_OR_DEAD", "TRANSITIONS"]


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

NORMAL, SHUTDOWN, NEGOTIATING, CLOSING = S.NORMAL, S.SHUTDOWN, S.NEGOTIATING, S.CLOSING

# fmt: off
_TABLE: list[tuple[ChannelState, type[Message], str, set[ChannelState]]] = [
    # state                       message received      Channel's handler            -> may lead to
    # --- opening, fundee
    (S.WAIT_FOR_OPEN_CHANNEL,     OpenChannel,          "_on_open_channel",          {S.WAIT_FOR_FUNDING_CREATED}),
    (S.WAIT_FOR_FUNDING_CREATED,  FundingCreated,       "_on_funding_created",       {S.AWAITING_CHANNEL_READY}),
    # --- opening, funder (between the two: funding_transaction_generated())
    (S.WAIT_FOR_ACCEPT_CHANNEL,   AcceptChannel,        "_on_accept_channel",        {S.WAIT_FOR_FUNDING_TX}),
    (S.WAIT_FOR_FUNDING_SIGNED,   FundingSigned,        "_on_funding_signed",        {S.AWAITING_CHANNEL_READY}),
    # --- waiting for the funding depth (and funding_confirmed())
    (S.AWAITING_CHANNEL_READY,    ChannelReady,         "_on_channel_ready",        {S.AWAITING_CHANNEL_READY, NORMAL}),
    (S.AWAITING_CHANNEL_READY,    Shutdown,             "_on_shutdown",              {SHUTDOWN, NEGOTIATING}),
    # --- normal operation
    (NORMAL,                      ChannelReady,         "_on_channel_ready",         {NORMAL}),  # redundant
    (NORMAL,                      UpdateAddHtlc,        "_on_update_add_htlc",       {NORMAL}),
    (NORMAL,                      UpdateFulfillHtlc,    "_on_update_fulfill_htlc",   {NORMAL}),
    (NORMAL,                      UpdateFailHtlc,       "_on_update_fail_htlc",      {NORMAL}),
    (NORMAL,                      UpdateFailMalformedHtlc, "_on_update_fail_htlc",   {NORMAL}),
    (NORMAL,                      UpdateFee,            "_on_update_fee",            {NORMAL}),
    (NORMAL,                      CommitmentSigned,     "_on_commitment_signed",     {NORMAL}),
    (NORMAL,                      RevokeAndAck,         "_on_revoke_and_ack",        {NORMAL}),
    (NORMAL,                      Shutdown,             "_on_shutdown",              {SHUTDOWN, NEGOTIATING}),
    # --- shutdown sent or received: HTLCs drain (adds only from a peer that has not sent shutdown)
    (SHUTDOWN,                    ChannelReady,         "_on_channel_ready",         {SHUTDOWN}),
    (SHUTDOWN,                    UpdateAddHtlc,        "_on_update_add_htlc",       {SHUTDOWN}),
    (SHUTDOWN,                    UpdateFulfillHtlc,    "_on_update_fulfill_htlc",   {SHUTDOWN}),
    (SHUTDOWN,                    UpdateFailHtlc,       "_on_update_fail_htlc",      {SHUTDOWN}),
    (SHUTDOWN,                    UpdateFailMalformedHtlc, "_on_update_fail_htlc",   {SHUTDOWN}),
    (SHUTDOWN,                    UpdateFee,            "_on_update_fee",            {SHUTDOWN}),
    (SHUTDOWN,                    CommitmentSigned,     "_on_commitment_signed",     {SHUTDOWN, NEGOTIATING}),
    (SHUTDOWN,                    RevokeAndAck,         "_on_revoke_and_ack",        {SHUTDOWN, NEGOTIATING}),
    (SHUTDOWN,                    Shutdown,             "_on_shutdown",              {SHUTDOWN, NEGOTIATING}),
    (SHUTDOWN,                    ClosingSigned,        "_on_closing_signed",        {NEGOTIATING, CLOSING}),
    # --- both shutdowns, no HTLC left: closing_signed fee negotiation
    (NEGOTIATING,                 ClosingSigned,        "_on_closing_signed",        {NEGOTIATING, CLOSING}),
    (NEGOTIATING,                 Shutdown,             "_on_shutdown",              {NEGOTIATING}),  # resent
    (NEGOTIATING,                 ChannelReady,         "_on_channel_ready",         {NEGOTIATING}),  # redundant
    # --- mutual close signed and broadcast
    (CLOSING,                     ClosingSigned,        "_on_closing_signed",        {CLOSING}),  # echo: ignored
    (CLOSING,                     Shutdown,             "_on_shutdown",              {CLOSING}),  # resent
    (CLOSING,                     ChannelReady,         "_on_channel_ready",         {CLOSING}),  # redundant
    # --- reconnection: the first message in every state with a signed commitment
    (S.AWAITING_CHANNEL_READY,    ChannelReestablish,   "_on_channel_reestablish",   {S.AWAITING_CHANNEL_READY}),
    (NORMAL,                      ChannelReestablish,   "_on_channel_reestablish",   {NORMAL}),
    (SHUTDOWN,                    ChannelReestablish,   "_on_channel_reestablish",   {SHUTDOWN, NEGOTIATING}),
    (NEGOTIATING,                 ChannelReestablish,   "_on_channel_reestablish",   {NEGOTIATING}),
    (CLOSING,                     ChannelReestablish,   "_on_channel_reestablish",   {CLOSING}),
]
# fmt: on

TRANSITIONS: dict[tuple[ChannelState, type[Message]], tuple[str, frozenset[ChannelState]]] = {
    (state, message): (handler, frozenset(to)) for state, message, handler, to in _TABLE
}
"""What each state accepts (the name of ``channels.state.Channel``'s handler), and where it may lead.
Every other (state, message) is a protocol violation; ``error`` and ``warning`` are handled in every
state, before this table."""
assert len(TRANSITIONS) == len(_TABLE), "a (state, message) pair is listed twice"
