"""The BOLT 2 channel state machine: a sans-IO core (no sockets, clock, trio or database).

A :class:`Channel` takes a peer message (:meth:`Channel.receive`), a chain event
(:meth:`~Channel.funding_confirmed`), a connection event
(:meth:`~Channel.disconnected` / :meth:`~Channel.reconnected`) or a command
(:meth:`~Channel.add_htlc`, :meth:`~Channel.fulfill_htlc`, :meth:`~Channel.sign`,
:meth:`~Channel.shutdown`, :meth:`~Channel.force_close`, ...) and returns a list
of :mod:`effects <channels.effects>` for the host to carry out in order. A
``Persist`` always comes before the ``SendMessage`` / ``Broadcast`` that depend
on the state it records.

States and the messages each accepts are in :data:`channels.channel_states.TRANSITIONS`
(the h11 way: one table to read at a glance). A message a state does not list is a protocol violation. Peer violations never raise: they
become a ``warning`` (the channel lives on) or an ``error`` plus
:class:`~channels.effects.FailChannel` (see :mod:`channels.effects`). Misuse of
the API raises :class:`~channels.effects.ChannelError` and changes nothing.

The update bookkeeping lives in :mod:`channels.htlcs`, the closing rules in :mod:`channels.closing`.
Persistence: :meth:`Channel.to_dict` is the whole state as JSON-compatible
values (bytes as hex, messages as their wire encoding in hex, ``"version": 1``);
:meth:`Channel.from_dict` restores it given the channel's secrets (derived
again by the host from its seed and ``keys_id``; secrets are never in the
snapshot). A restored channel is disconnected: call :meth:`Channel.reconnected`.
"""

from __future__ import annotations

import json
from typing import Any

from base_chain.crypto import PublicKey
from base_chain.tx import Transaction

from . import snapshot
from .channel_states import ON_CHAIN_OR_DEAD, PRE_FUNDING, TRANSITIONS, ChannelState
from .closing import (
    ClosingInputs,
    ClosingSession,
    FeeNegotiation,
    closing_fee_sat,
    is_valid_shutdown_script,
)
from .effects import (
    Broadcast,
    ChannelClosed,
    ChannelError,
    CloseChannel,
    Disconnect,
    Durability,
    Effect,
    FailChannel,
    FundingGenerationReady,
    HtlcFailed,
    HtlcFulfilled,
    IgnoreMessage,
    IncomingHtlc,
    PeerViolation,
    Persist,
    RevokedCommitment,
    SendMessage,
    WarnPeer,
    WatchOutpoint,
)
from .effects import (
    ChannelReady as ChannelReadyEvent,
)
from .features import Feature, Features
from .htlcs import Commitments, RemoteCommit
from .keys import ChannelSecrets
from .messages import (
    AcceptChannel,
    ChannelMessage,
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
from .opening import (
    LARGE_CHANNEL_SAT,
    ChannelConfig,
    Opening,
    channel_id_from_funding,
    channel_type_features,
    check_accept_channel,
    check_open_channel,
    local_party,
    negotiate_channel_type,
    remote_party,
)
from .reestablish import plan_retransmission, reestablish_message
from .specs import PartyParams
from .transactions import ChannelType, HtlcDirection
from .wire import ALL_CHANNELS, ErrorMessage, Message, WarningMessage

__all__ = [
    "ChannelState",
    "ChannelConfig",
    "Channel",
    "channel_id_from_funding",
    "channel_type_features",
]

#: Peer messages whose only change is an uncommitted update: the peer retransmits them after a
#: reconnection (BOLT 2), so the state they leave need not be written on its own (Durability.OPTIONAL).
_PEER_UPDATES = (UpdateAddHtlc, UpdateFulfillHtlc, UpdateFailHtlc, UpdateFailMalformedHtlc, UpdateFee)


S = ChannelState


class Channel:
    """One channel with one peer (see the module docstring)."""

    def __init__(
        self,
        *,
        state: ChannelState,
        secrets: ChannelSecrets,
        keys_id: int,
        chain_hash: bytes,
        is_funder: bool,
        local_features: Features,
        remote_features: Features,
        shutdown_scriptpubkey: bytes,
        config: ChannelConfig,
        temporary_channel_id: bytes,
    ) -> None:
        self.state = state
        self.secrets = secrets
        self.keys_id = keys_id
        self.chain_hash = chain_hash
        self.is_funder = is_funder
        self.local_features = local_features
        self.remote_features = remote_features
        self.shutdown_scriptpubkey = shutdown_scriptpubkey
        self.config = config
        self.temporary_channel_id = temporary_channel_id
        self.channel_type: ChannelType | None = None
        self.commitments: Commitments | None = None
        self.minimum_depth = config.minimum_depth
        self.funding_tx: Transaction | None = None
        self.channel_ready_sent = False
        self.remote_channel_ready = False
        self.short_channel_id: int | None = None
        self.remote_alias: int | None = None
        self.connected = True
        self.awaiting_reestablish = False
        self.local_shutdown_script: bytes | None = None
        self.shutdown_sent = False
        self.remote_shutdown_script: bytes | None = None
        self.closing_feerate_per_kw: int | None = None
        self.negotiation: FeeNegotiation | None = None
        self.closing_signed_sent: ClosingSigned | None = None
        self.closing_tx: Transaction | None = None
        self.last_error: str | None = None
        self._opening: Opening | None = None
        self._dirty = False
        self._revoked: RevokedCommitment | None = None
        self._blob_keys: dict[str, str] = {}  # snapshot strings -> their keys, from the last snapshot

    # ==================================================================================
    # construction

    @classmethod
    def open(
        cls,
        *,
        secrets: ChannelSecrets,
        keys_id: int,
        chain_hash: bytes,
        temporary_channel_id: bytes,
        funding_sat: int,
        feerate_per_kw: int,
        local_features: Features,
        remote_features: Features,
        shutdown_scriptpubkey: bytes,
        push_msat: int = 0,
        config: ChannelConfig | None = None,
    ) -> tuple[Channel, list[Effect]]:
        """Start an outbound channel: the new channel and its ``open_channel``."""
        config = config or ChannelConfig()
        ch = cls(
            state=S.WAIT_FOR_ACCEPT_CHANNEL,
            secrets=secrets,
            keys_id=keys_id,
            chain_hash=chain_hash,
            is_funder=True,
            local_features=local_features,
            remote_features=remote_features,
            shutdown_scriptpubkey=shutdown_scriptpubkey,
            config=config,
            temporary_channel_id=temporary_channel_id,
        )
        channel_type = negotiate_channel_type(local_features, remote_features)
        if channel_type is None:
            raise ChannelError("the peer does not support option_static_remotekey: no channel type to open")
        both = ch._both_support
        if not 0 < funding_sat < 1 << 64 or not 0 <= push_msat <= funding_sat * 1000:
            raise ChannelError("need 0 < funding_sat and 0 <= push_msat <= funding_sat * 1000")
        if funding_sat >= LARGE_CHANNEL_SAT and not both(Feature.option_support_large_channel):
            raise ChannelError("funding_sat >= 2^24 needs option_support_large_channel on both sides")
        if len(temporary_channel_id) != 32:
            raise ChannelError("temporary_channel_id must be 32 bytes")
        if not is_valid_shutdown_script(shutdown_scriptpubkey, anysegwit=both(Feature.option_shutdown_anysegwit)):
            raise ChannelError("shutdown_scriptpubkey is not a form BOLT 2 allows")
        ch.channel_type = channel_type
        local = ch._local_party(funding_sat, remote_dust_sat=0)
        ch._opening = Opening(funding_sat, push_msat, feerate_per_kw, channel_type, True, local)
        if not ch._opening.funder_can_pay_first_fee():
            raise ChannelError("the funding cannot pay the fee of the first commitment")
        msg = ch._opening.open_channel(
            chain_hash, temporary_channel_id, secrets.per_commitment_point(0), config.announce_channel
        )
        return ch, [SendMessage(msg)]

    @classmethod
    def inbound(
        cls,
        *,
        secrets: ChannelSecrets,
        keys_id: int,
        chain_hash: bytes,
        local_features: Features,
        remote_features: Features,
        shutdown_scriptpubkey: bytes,
        config: ChannelConfig | None = None,
    ) -> Channel:
        """A channel waiting for the peer's ``open_channel`` (pass it to :meth:`receive`)."""
        return cls(
            state=S.WAIT_FOR_OPEN_CHANNEL,
            secrets=secrets,
            keys_id=keys_id,
            chain_hash=chain_hash,
            is_funder=False,
            local_features=local_features,
            remote_features=remote_features,
            shutdown_scriptpubkey=shutdown_scriptpubkey,
            config=config or ChannelConfig(),
            temporary_channel_id=bytes(32),
        )

    def _both_support(self, feature: Feature) -> bool:
        return self.local_features.has(feature) and self.remote_features.has(feature)

    def _local_party(self, funding_sat: int, remote_dust_sat: int) -> PartyParams:
        upfront = b""
        if self.config.commit_upfront_shutdown_script and self._both_support(Feature.option_upfront_shutdown_script):
            upfront = self.shutdown_scriptpubkey
        return local_party(self.config, self.secrets.channel_keys(), funding_sat, remote_dust_sat, upfront)

    # ==================================================================================
    # queries

    @property
    def channel_id(self) -> bytes:
        return self.commitments.channel_id if self.commitments else self.temporary_channel_id

    @property
    def _c(self) -> Commitments:
        assert self.commitments is not None, "no commitments before the funding outpoint is known"
        return self.commitments

    @property
    def local_balance_msat(self) -> int:
        """Our balance in our current commitment (HTLCs and fees not counted)."""
        return self._c.local_commit.spec.to_local_msat

    @property
    def remote_balance_msat(self) -> int:
        return self._c.local_commit.spec.to_remote_msat

    @property
    def _can_send(self) -> bool:
        return self.connected and not self.awaiting_reestablish

    def unresolved_incoming_htlcs(self) -> list[UpdateAddHtlc]:
        """Irrevocably committed HTLCs from the peer we have not settled yet (ask after a restart)."""
        return self._c.unresolved_incoming_htlcs() if self.commitments else []

    def local_commitment_tx(self) -> Transaction:
        """Our current commitment transaction, fully signed."""
        return self._c.signed_local_commitment()[1]

    # ==================================================================================
    # effects plumbing

    def _persistable(self) -> bool:
        return self.commitments is not None and self.state not in PRE_FUNDING and self.state is not S.ABANDONED

    def _finish(self, effects: list[Effect], durability: Durability = Durability.REQUIRED) -> list[Effect]:
        """Put a Persist of the final state before everything the host will act on.

        ``durability`` below REQUIRED only when nothing but uncommitted updates changed since the
        last Persist (see :class:`Durability`); such a snapshot is serialised only if written.
        """
        revoked, self._revoked = self._revoked, None
        if self._persistable() and (self._dirty or revoked is not None or effects):
            assert self.commitments is not None
            updates, self.commitments.watch_updates = tuple(self.commitments.watch_updates), []
            if revoked is not None or updates:
                durability = Durability.REQUIRED
            if durability is Durability.REQUIRED:
                parts = self.snapshot_parts()
                effects.insert(0, Persist(self.channel_id, lambda: parts, revoked, updates))
            else:
                effects.insert(0, Persist(self.channel_id, self.snapshot_parts, None, (), durability))
        self._dirty = False
        return effects

    def _fail(self, reason: str, *, broadcast: bool, send_error: bool) -> list[Effect]:
        if self.state in PRE_FUNDING:
            self.state, broadcast = S.ABANDONED, False
        elif not broadcast:
            self.state = S.DATA_LOSS
        else:
            self.state = S.FAILED
        self.last_error = reason
        effects: list[Effect] = []
        if send_error and self.connected:
            effects.append(SendMessage(ErrorMessage(self.channel_id, reason.encode()[:60000])))
        effects.append(FailChannel(self.channel_id, reason, broadcast))
        self._dirty = True
        return self._finish(effects)

    def _violation(self, v: PeerViolation) -> list[Effect]:
        self._revoked = None
        if isinstance(v, IgnoreMessage):
            return []
        if isinstance(v, WarnPeer):
            out: list[Effect] = [SendMessage(WarningMessage(self.channel_id, v.reason.encode()[:60000]))]
            if v.disconnect:
                out.append(Disconnect(v.reason))
            return out
        assert isinstance(v, CloseChannel)
        return self._fail(v.reason, broadcast=v.broadcast, send_error=True)

    # ==================================================================================
    # receiving

    def receive(self, msg: Message) -> list[Effect]:
        """Handle one message from the peer; never raises for anything the peer sends."""
        try:
            return self._dispatch(msg)
        except PeerViolation as v:
            return self._violation(v)

    def _dispatch(self, msg: Message) -> list[Effect]:
        if isinstance(msg, ErrorMessage):
            return self._on_error(msg)
        if isinstance(msg, WarningMessage):
            return []
        if self.state in ON_CHAIN_OR_DEAD:
            if isinstance(msg, ChannelReestablish) and self.last_error is not None:
                return [SendMessage(ErrorMessage(self.channel_id, self.last_error.encode()[:60000]))]
            return []
        if isinstance(msg, ChannelMessage) and msg.target_channel_id not in (
            self.channel_id,
            self.temporary_channel_id,
        ):
            if self.state is not S.WAIT_FOR_OPEN_CHANNEL:
                raise WarnPeer(f"{msg.NAME} for another channel {msg.target_channel_id.hex()}", disconnect=False)
        if isinstance(msg, ChannelReestablish) != self.awaiting_reestablish:
            if self.awaiting_reestablish:
                raise CloseChannel(f"{msg.NAME} before channel_reestablish")
            raise WarnPeer("unexpected channel_reestablish", disconnect=True)
        entry = TRANSITIONS.get((self.state, type(msg)))
        if entry is None:
            raise CloseChannel(f"unexpected {msg.NAME} in state {self.state.value}")
        handler, allowed = entry
        effects: list[Effect] = getattr(self, handler)(msg)
        assert self.state in allowed, f"{msg.NAME} took {self.state} outside {allowed}"
        if isinstance(msg, _PEER_UPDATES) and self.state in (S.NORMAL, S.SHUTDOWN):
            return self._finish(effects, Durability.OPTIONAL)
        return self._finish(effects)

    def _on_error(self, msg: ErrorMessage) -> list[Effect]:
        if msg.channel_id not in (ALL_CHANNELS, self.channel_id, self.temporary_channel_id):
            return []
        if self.state in ON_CHAIN_OR_DEAD or self.state is S.CLOSING:
            return []
        return self._fail(f"peer error: {msg.printable_data()}", broadcast=True, send_error=False)

    # --- opening: fundee ----------------------------------------------------------------

    def _on_open_channel(self, msg: OpenChannel) -> list[Effect]:
        self.temporary_channel_id = msg.temporary_channel_id
        anysegwit = self._both_support(Feature.option_shutdown_anysegwit)
        channel_type = check_open_channel(msg, self.config, self.chain_hash, self.local_features, anysegwit)
        local = self._local_party(msg.funding_satoshis, msg.dust_limit_satoshis)
        remote = remote_party(msg, self._both_support(Feature.option_upfront_shutdown_script))
        opening = Opening(
            msg.funding_satoshis, msg.push_msat, msg.feerate_per_kw, channel_type, False, local, remote,
            msg.first_per_commitment_point,
        )  # fmt: skip
        opening.check_fundee_balances()
        self.channel_type, self._opening = channel_type, opening
        self.state = S.WAIT_FOR_FUNDING_CREATED
        return [
            SendMessage(
                opening.accept_channel(
                    msg.temporary_channel_id, self.minimum_depth, self.secrets.per_commitment_point(0)
                )
            )
        ]

    @property
    def _o(self) -> Opening:
        assert self._opening is not None, "not opening"
        return self._opening

    def _watch_funding(self) -> WatchOutpoint:
        p = self._c.params
        return WatchOutpoint(p.channel_id, p.funding_outpoint, p.funding_script_pubkey, self.minimum_depth)

    def _on_funding_created(self, msg: FundingCreated) -> list[Effect]:
        c = self._o.commitments(self.secrets, msg.funding_txid, msg.funding_output_index)
        c.accept_first_commitment(msg.signature)
        sig, _ = c.sign_remote(c.build_remote(c.remote_commit.spec, 0, c.remote_commit.per_commitment_point))
        self.commitments = c
        self.state = S.AWAITING_CHANNEL_READY
        return [SendMessage(FundingSigned(c.channel_id, sig)), self._watch_funding()]

    # --- opening: funder ----------------------------------------------------------------

    def _on_accept_channel(self, msg: AcceptChannel) -> list[Effect]:
        o = self._o
        check_accept_channel(msg, o, o.channel_type, self.config, self._both_support(Feature.option_shutdown_anysegwit))
        o.remote = remote_party(msg, self._both_support(Feature.option_upfront_shutdown_script))
        o.remote_first_point = msg.first_per_commitment_point
        self.minimum_depth = max(msg.minimum_depth, 1)
        self.state = S.WAIT_FOR_FUNDING_TX
        return [FundingGenerationReady(self.temporary_channel_id, o.funding_sat, o.funding_script_pubkey())]

    def funding_transaction_generated(self, funding_tx: Transaction) -> list[Effect]:
        """The funder's wallet built (and will broadcast only when told) the funding transaction."""
        if self.state is not S.WAIT_FOR_FUNDING_TX:
            raise ChannelError(f"not waiting for a funding transaction (state {self.state.value})")
        o = self._o
        script = o.funding_script_pubkey()
        matches = [
            i
            for i, out in enumerate(funding_tx.outputs)
            if out.script_pubkey == script and out.amount_sat == o.funding_sat
        ]
        if len(matches) != 1:
            raise ChannelError(f"the transaction must pay {o.funding_sat} sat to the funding script exactly once")
        if matches[0] > 0xFFFF:
            raise ChannelError("the funding output index must fit in 16 bits")
        c = o.commitments(self.secrets, funding_tx.txid, matches[0])
        sig, _ = c.sign_remote(c.build_remote(c.remote_commit.spec, 0, c.remote_commit.per_commitment_point))
        self.commitments = c
        self.funding_tx = funding_tx
        self.state = S.WAIT_FOR_FUNDING_SIGNED
        msg = FundingCreated(self.temporary_channel_id, funding_tx.txid, matches[0], sig)
        return [SendMessage(msg)]

    def _on_funding_signed(self, msg: FundingSigned) -> list[Effect]:
        c = self._c
        if msg.channel_id != c.channel_id:
            raise CloseChannel("funding_signed for another channel_id")
        c.accept_first_commitment(msg.signature)
        self.state = S.AWAITING_CHANNEL_READY
        assert self.funding_tx is not None
        return [Broadcast(self.funding_tx, "funding"), self._watch_funding()]

    # --- funding depth and channel_ready ------------------------------------------------

    def _channel_ready_msg(self) -> ChannelReady:
        return ChannelReady(self.channel_id, self.secrets.per_commitment_point(1), self.short_channel_id)

    def funding_confirmed(self, depth: int, short_channel_id: int) -> list[Effect]:
        """The chain watcher reports the funding transaction's depth (call on every new block)."""
        if self.state in PRE_FUNDING or self.commitments is None:
            raise ChannelError("the funding transaction is not signed yet")
        effects: list[Effect] = []
        if self.short_channel_id != short_channel_id:
            self.short_channel_id = short_channel_id
            self._dirty = True
        if self.state is S.AWAITING_CHANNEL_READY and depth >= self.minimum_depth and not self.channel_ready_sent:
            self.channel_ready_sent = True
            self._dirty = True
            if self._can_send:
                effects.append(SendMessage(self._channel_ready_msg()))
            self._maybe_ready(effects)
        return self._finish(effects)

    def _maybe_ready(self, effects: list[Effect]) -> None:
        if self.state is S.AWAITING_CHANNEL_READY and self.channel_ready_sent and self.remote_channel_ready:
            self.state = S.NORMAL
            effects.append(ChannelReadyEvent(self.channel_id, self.short_channel_id, self.remote_alias))

    def _on_channel_ready(self, msg: ChannelReady) -> list[Effect]:
        c = self._c
        if self.remote_channel_ready:  # redundant (after a reconnection): ignore, keep a new alias
            if msg.short_channel_id is not None:
                self.remote_alias = msg.short_channel_id
            return []
        if c.remote_commit.index != 0:
            raise CloseChannel("channel_ready after normal operation started")
        c.remote_next_point = msg.second_per_commitment_point
        self.remote_alias = msg.short_channel_id
        self.remote_channel_ready = True
        self._dirty = True
        effects: list[Effect] = []
        self._maybe_ready(effects)
        return effects

    # --- updates ------------------------------------------------------------------------

    def _on_update_add_htlc(self, msg: UpdateAddHtlc) -> list[Effect]:
        if self.remote_shutdown_script is not None:
            raise CloseChannel("update_add_htlc after the peer's shutdown")
        self._c.receive_add(msg)
        return []

    def _on_update_fulfill_htlc(self, msg: UpdateFulfillHtlc) -> list[Effect]:
        h = self._c.receive_fulfill(msg)
        return [HtlcFulfilled(self.channel_id, msg.id, h.add.payment_hash, msg.payment_preimage)]

    def _on_update_fail_htlc(self, msg: UpdateFailHtlc | UpdateFailMalformedHtlc) -> list[Effect]:
        self._c.receive_fail(msg)
        return []

    def _on_update_fee(self, msg: UpdateFee) -> list[Effect]:
        cfg = self.config
        if not cfg.min_feerate_per_kw <= msg.feerate_per_kw <= cfg.max_feerate_per_kw:
            raise CloseChannel(
                f"update_fee {msg.feerate_per_kw} outside {cfg.min_feerate_per_kw}..{cfg.max_feerate_per_kw}"
            )
        self._c.receive_fee(msg)
        return []

    def _on_commitment_signed(self, msg: CommitmentSigned) -> list[Effect]:
        revocation = self._c.receive_commit(msg)
        effects: list[Effect] = [SendMessage(revocation)]
        self._progress(effects)
        return effects

    def _on_revoke_and_ack(self, msg: RevokeAndAck) -> list[Effect]:
        c = self._c
        revoked, done = c.receive_revocation(msg)
        self._revoked = c.revoked_commitment(revoked)
        effects: list[Effect] = []
        for u in done:  # peer updates that are now irrevocably committed
            if isinstance(u, UpdateAddHtlc):
                path_key = None if u.path_key is None else u.path_key.to_bytes()
                effects.append(
                    IncomingHtlc(
                        self.channel_id,
                        u.id,
                        u.amount_msat,
                        u.payment_hash,
                        u.cltv_expiry,
                        u.onion_routing_packet,
                        path_key,
                    )
                )
            elif isinstance(u, UpdateFailHtlc):
                effects.append(HtlcFailed(self.channel_id, u.id, self._payment_hash(revoked, u.id), u.reason))
            elif isinstance(u, UpdateFailMalformedHtlc):
                effects.append(
                    HtlcFailed(
                        self.channel_id, u.id, self._payment_hash(revoked, u.id), b"", u.failure_code, u.sha256_of_onion
                    )
                )
        self._progress(effects)
        return effects

    @staticmethod
    def _payment_hash(revoked: RemoteCommit, htlc_id: int) -> bytes:
        h = revoked.spec.find(HtlcDirection.RECEIVED, htlc_id)
        return bytes(32) if h is None else h.add.payment_hash

    def _progress(self, effects: list[Effect]) -> None:
        """After any change: sign what is pending, send an owed shutdown, start closing when clean."""
        self._dirty = True
        c = self._c
        if self.state in (S.NORMAL, S.SHUTDOWN) and self._can_send and c.can_sign() and c.has_changes_to_sign():
            effects.append(SendMessage(c.send_commit()))
        if (
            self.local_shutdown_script is not None
            and not self.shutdown_sent
            and self._can_send
            and not c.local_changes.proposed
        ):
            effects.append(SendMessage(Shutdown(self.channel_id, self.local_shutdown_script)))
            self.shutdown_sent = True
        if (
            self.state is S.SHUTDOWN
            and self.shutdown_sent
            and self.remote_shutdown_script is not None
            and c.is_quiescent()
        ):
            self.state = S.NEGOTIATING
            self._start_negotiation(effects)

    # --- commands -------------------------------------------------------------------------

    def _require(self, *states: ChannelState) -> None:
        if self.state not in states:
            raise ChannelError(f"not possible in state {self.state.value}")

    def add_htlc(
        self,
        amount_msat: int,
        payment_hash: bytes,
        cltv_expiry: int,
        onion_routing_packet: bytes,
        path_key: PublicKey | None = None,
    ) -> list[Effect]:
        """Offer an HTLC (its id is the ``update_add_htlc``'s ``id``); call :meth:`sign` to commit it."""
        if (
            self.state is S.SHUTDOWN
            or self.local_shutdown_script is not None
            or self.remote_shutdown_script is not None
        ):
            raise ChannelError("the channel is shutting down: no new HTLCs")
        self._require(S.NORMAL)
        if not self._can_send:
            raise ChannelError("the peer is not connected")
        add = self._c.send_add(amount_msat, payment_hash, cltv_expiry, onion_routing_packet, path_key)
        return self._finish([SendMessage(add)], Durability.SUPERSEDED)

    def _removal(self, msg: Message) -> list[Effect]:
        self._dirty = True
        if not self._can_send:  # queued for the peer's return: on disk
            return self._finish([])
        return self._finish([SendMessage(msg)], Durability.SUPERSEDED)

    def fulfill_htlc(self, htlc_id: int, payment_preimage: bytes) -> list[Effect]:
        """Settle an incoming HTLC (queued and persisted if the peer is offline)."""
        self._require(S.NORMAL, S.SHUTDOWN)
        return self._removal(self._c.send_fulfill(htlc_id, payment_preimage))

    def fail_htlc(self, htlc_id: int, reason: bytes) -> list[Effect]:
        self._require(S.NORMAL, S.SHUTDOWN)
        return self._removal(self._c.send_fail(htlc_id, reason))

    def fail_malformed_htlc(self, htlc_id: int, sha256_of_onion: bytes, failure_code: int) -> list[Effect]:
        self._require(S.NORMAL, S.SHUTDOWN)
        return self._removal(self._c.send_fail_malformed(htlc_id, sha256_of_onion, failure_code))

    def update_fee(self, feerate_per_kw: int) -> list[Effect]:
        """Funder only: change the commitment feerate (committed by the next :meth:`sign`)."""
        self._require(S.NORMAL, S.SHUTDOWN)
        if not self._can_send:
            raise ChannelError("the peer is not connected")
        cfg = self.config
        if not cfg.min_feerate_per_kw <= feerate_per_kw <= cfg.max_feerate_per_kw:
            raise ChannelError(f"feerate {feerate_per_kw} outside {cfg.min_feerate_per_kw}..{cfg.max_feerate_per_kw}")
        return self._finish([SendMessage(self._c.send_fee(feerate_per_kw))])

    def sign(self) -> list[Effect]:
        """Send ``commitment_signed`` for everything pending (nothing if there is nothing or we must wait)."""
        self._require(S.NORMAL, S.SHUTDOWN)
        c = self._c
        if not (self._can_send and c.can_sign() and c.has_changes_to_sign()):
            return []
        effects: list[Effect] = []
        self._progress(effects)
        return self._finish(effects)

    def shutdown(self, scriptpubkey: bytes | None = None, closing_feerate_per_kw: int | None = None) -> list[Effect]:
        """Start a mutual close; funds go to ``scriptpubkey`` (default: the channel's shutdown script)."""
        self._require(S.AWAITING_CHANNEL_READY, S.NORMAL)
        if self.local_shutdown_script is not None:
            raise ChannelError("shutdown already started")
        c = self._c
        script = self.shutdown_scriptpubkey if scriptpubkey is None else scriptpubkey
        upfront = c.params.local.upfront_shutdown_script
        if upfront and script != upfront:
            raise ChannelError("we committed to an upfront_shutdown_script: closing must pay to it")
        if not is_valid_shutdown_script(script, anysegwit=self._both_support(Feature.option_shutdown_anysegwit)):
            raise ChannelError("scriptpubkey is not a form BOLT 2 allows")
        if any(isinstance(u, UpdateAddHtlc) for u in c.local_changes.proposed) and not c.can_sign():
            raise ChannelError("unsigned HTLCs are pending; retry after the next revoke_and_ack")
        self.local_shutdown_script = script
        self.closing_feerate_per_kw = closing_feerate_per_kw
        self.state = S.SHUTDOWN
        effects: list[Effect] = []
        self._progress(effects)
        return self._finish(effects)

    def force_close(self) -> list[Effect]:
        """Broadcast our latest commitment; the watcher gets what it needs to sweep it."""
        if self.state is S.DATA_LOSS:
            raise ChannelError("we have fallen behind: broadcasting our commitment would forfeit the channel")
        if self.state in PRE_FUNDING or self.state is S.ABANDONED or self.commitments is None:
            raise ChannelError("nothing to broadcast before the funding is signed")
        effects: list[Effect] = []
        if self.connected and self.state is not S.FAILED and self.state is not S.FORCE_CLOSING:
            effects.append(SendMessage(ErrorMessage(self.channel_id, b"channel force-closed")))
        self.state = S.FORCE_CLOSING
        self._dirty = True
        tx, info = self._c.local_commitment_published()
        effects += [Broadcast(tx, "commitment"), info]
        return self._finish(effects)

    # --- connection -------------------------------------------------------------------------

    def disconnected(self) -> list[Effect]:
        """The connection dropped: forget uncommitted peer updates (BOLT 2); forget unfunded channels."""
        self.connected = False
        self.awaiting_reestablish = False
        if self.state in PRE_FUNDING:
            self.state = S.ABANDONED
            return [FailChannel(self.channel_id, "disconnected before the funding was signed", False)]
        if self.commitments is not None:
            self.commitments.drop_uncommitted_remote_changes()
        if self.state is S.NEGOTIATING:
            self.negotiation = None
        return []

    def reconnected(self) -> list[Effect]:
        """A new connection to the peer: send ``channel_reestablish`` (or our error if the channel failed)."""
        if self.state in PRE_FUNDING or self.state is S.ABANDONED:
            raise ChannelError("an unfunded channel is not reestablished")
        if self.connected and not self.awaiting_reestablish:
            self.disconnected()
        self.connected = True
        if self.state in ON_CHAIN_OR_DEAD:
            return [SendMessage(ErrorMessage(self.channel_id, (self.last_error or "channel closed").encode()[:60000]))]
        self.awaiting_reestablish = True
        msg = reestablish_message(self._c, self.secrets)
        return [SendMessage(msg)]

    def _on_channel_reestablish(self, msg: ChannelReestablish) -> list[Effect]:
        c = self._c
        plan = plan_retransmission(c, self.secrets, msg)  # raises CloseChannel when a side is behind
        self.awaiting_reestablish = False
        effects: list[Effect] = []
        if c.local_commit.index == 0 and msg.next_commitment_number == 1 and self.channel_ready_sent:
            effects.append(SendMessage(self._channel_ready_msg()))
        effects += [SendMessage(m) for m in plan]
        if self.shutdown_sent and self.local_shutdown_script is not None:
            effects.append(SendMessage(Shutdown(self.channel_id, self.local_shutdown_script)))
        effects += [SendMessage(u) for u in c.local_changes.proposed]
        if self.state is S.NEGOTIATING:
            self._start_negotiation(effects)
        elif self.state is S.CLOSING and self.closing_signed_sent is not None:
            effects.append(SendMessage(self.closing_signed_sent))
        self._progress(effects)
        return effects

    # --- closing ------------------------------------------------------------------------------

    def _on_shutdown(self, msg: Shutdown) -> list[Effect]:
        c = self._c
        if self.remote_shutdown_script is not None:
            if msg.scriptpubkey != self.remote_shutdown_script:
                raise CloseChannel("a second shutdown with a different scriptpubkey")
            return []  # retransmitted after a reconnection
        if self.state in (S.NEGOTIATING, S.CLOSING):
            raise CloseChannel("shutdown during closing negotiation")
        if not is_valid_shutdown_script(
            msg.scriptpubkey, anysegwit=self._both_support(Feature.option_shutdown_anysegwit)
        ):
            raise WarnPeer(f"shutdown scriptpubkey {msg.scriptpubkey.hex()} is not an allowed form")
        upfront = c.params.remote.upfront_shutdown_script
        if upfront and msg.scriptpubkey != upfront:
            raise WarnPeer("shutdown scriptpubkey differs from its upfront_shutdown_script")
        if any(isinstance(u, UpdateAddHtlc) for u in c.remote_changes.proposed):
            raise CloseChannel("shutdown with unsigned HTLCs pending")
        self.remote_shutdown_script = msg.scriptpubkey
        if self.local_shutdown_script is None:
            self.local_shutdown_script = c.params.local.upfront_shutdown_script or self.shutdown_scriptpubkey
        self.state = S.SHUTDOWN
        effects: list[Effect] = []
        self._progress(effects)
        return effects

    def _closing_inputs(self) -> ClosingInputs:
        assert self.local_shutdown_script is not None and self.remote_shutdown_script is not None
        c = self._c
        return ClosingInputs.of(c.params, c.local_commit.spec, self.local_shutdown_script, self.remote_shutdown_script)

    def _start_negotiation(self, effects: list[Effect], *, propose: bool = True) -> None:
        """A fresh fee negotiation (BOLT 2: it restarts on every reconnection); the funder proposes first."""
        inputs = self._closing_inputs()
        feerate = (
            self.closing_feerate_per_kw
            or self.config.closing_feerate_per_kw
            or self._c.local_commit.spec.feerate_per_kw
        )
        target = closing_fee_sat(inputs, feerate)
        self.negotiation = FeeNegotiation.start(self.is_funder, target, inputs.funder_sat, inputs.funding_sat)
        if propose and self.is_funder and self._can_send:
            msg = self._closing_session().propose(self.negotiation.first_proposal())
            self.closing_signed_sent = msg
            effects.append(SendMessage(msg))

    def _closing_session(self) -> ClosingSession:
        assert self.negotiation is not None
        p = self._c.params
        return ClosingSession(
            self.channel_id,
            self._closing_inputs(),
            self.negotiation,
            self.secrets.funding_privkey,
            p.remote.keys.funding_pubkey,
        )

    def _on_closing_signed(self, msg: ClosingSigned) -> list[Effect]:
        if self.state is S.CLOSING:
            return []  # the funder's echo, or a proposal made before it saw our agreement
        if self.state is S.SHUTDOWN:
            if not (self.shutdown_sent and self.remote_shutdown_script is not None and self._c.is_quiescent()):
                raise CloseChannel("closing_signed before shutdown completed")
            self.state = S.NEGOTIATING
        if self.negotiation is None:
            self._start_negotiation([], propose=False)
        reply, tx = self._closing_session().receive(msg)
        effects: list[Effect] = []
        if reply is not None:
            self.closing_signed_sent = reply
            effects.append(SendMessage(reply))
        if tx is not None:
            self.closing_tx = tx
            self.state = S.CLOSING
            effects += [Broadcast(tx, "closing"), ChannelClosed(self.channel_id, tx, msg.fee_satoshis)]
        return effects

    # ==================================================================================
    # persistence (the format: channels.snapshot)

    def to_dict(self) -> dict[str, Any]:
        """The whole channel state as JSON-compatible values; ChannelError before the funding is signed."""
        if self.commitments is None or self.state in PRE_FUNDING:
            raise ChannelError("a channel is persisted only once its funding is signed (BOLT 2: forget it before)")
        return snapshot.channel_to_dict(self)

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True).encode()

    def snapshot_parts(self) -> tuple[bytes, dict[str, str]]:
        """The snapshot as stored by a channel node: the JSON without ``blobs``, and the blobs (see snapshot.py)."""
        body, blobs = snapshot.channel_snapshot(self, self._blob_keys)
        return json.dumps(body, separators=(",", ":"), sort_keys=True).encode(), blobs

    @classmethod
    def from_dict(cls, d: dict[str, Any], secrets: ChannelSecrets) -> Channel:
        """Restore a snapshot with the channel's secrets; the channel comes back disconnected."""
        ch = snapshot.channel_from_dict(cls, d, secrets)
        ch.disconnected()
        return ch

    @classmethod
    def from_bytes(cls, data: bytes, secrets: ChannelSecrets) -> Channel:
        return cls.from_dict(json.loads(data), secrets)
