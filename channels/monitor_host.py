"""The bridge between ``canal channeld``'s channel manager and the BOLT 5 watcher.

:func:`monitor_data_for_channel` turns a :class:`channels.state.Channel` (its
:class:`channels.htlcs.Commitments`) into the :class:`MonitorData` the
:class:`channels.watcher.ChannelMonitor` needs. :class:`MonitorHost` keeps one
monitor per force-closed channel, feeds it blocks and turns its effects into
:class:`HostAction` values the manager carries out.

Ownership (no double sweeps): when the manager hands a close to the host, the
monitor owns *every* output of that commitment (to_local / to_remote / HTLCs)
and the manager queues no resolver sweep for that channel. Channels without
HTLCs, cooperative closes and breaches stay with :mod:`channels.resolver`; so
does a channel whose monitor cannot be built (the manager falls back).

Durability: with a store (:class:`channels.monitor_store.MonitorStore`) each
monitor's state is written after every call that may change it, before its
actions go back to the manager; :meth:`MonitorHost.restore` brings them back
after a restart and reports again the outgoing HTLCs already settled on chain
(the payment layer ignores what it already knows).

Actions (:data:`HostAction`): :class:`BroadcastTx`; :class:`FundHtlcTx` (a
zero-fee HTLC transaction of our anchors commitment: the manager adds wallet
inputs, :mod:`channels.fee_inputs`, then :meth:`MonitorHost.complete_htlc_tx`);
:class:`BumpCommitment` (CPFP through our anchor); :class:`OutgoingHtlcOnChain`
(an HTLC we offered fulfilled on chain — at once when its preimage shows up —
or failed once final: the manager's ``on_htlc_onchain`` hook tells the payment
layer).

The manager adopts a monitor only once the close has confirmed, so
:class:`NeedFeeBump` (asked while our commitment is unconfirmed) does not arise
in ``canal channeld``: its own force close of an anchors channel is CPFPed
directly when fees rose above the commitment's rate
(:func:`channels.fee_inputs.commitment_fee_bump`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, Union

from base_chain.sighash import SIGHASH_ALL
from base_chain.tx import OutPoint, Transaction

from .htlcs import Commitments
from .keys import ChannelSecrets
from .messages import UpdateFulfillHtlc
from .monitor_data import (
    LocalCommitment,
    MonitorData,
    MonitorHtlc,
    MonitorPolicy,
    RemoteCommitment,
)
from .monitor_effects import (
    Broadcast,
    ChannelFullyResolved,
    Effect,
    HtlcResolved,
    NeedFeeBump,
    NeedHtlcTxFunding,
    PreimageLearned,
    WatchOutpoint,
)
from .shachain import ShachainStore
from .specs import Spec, from_compact_signature
from .state import Channel
from .transactions import HtlcDirection, remote_htlc_sighash_type
from .watcher import ChannelMonitor

__all__ = [
    "BroadcastTx",
    "BumpCommitment",
    "FundHtlcTx",
    "HostAction",
    "OutgoingHtlcOnChain",
    "MonitorHost",
    "channel_has_htlcs",
    "known_preimages",
    "monitor_data_for_channel",
]

log = logging.getLogger("canal.channels.monitor")


def _htlcs(spec: Spec, ours: bool) -> tuple[MonitorHtlc, ...]:
    """`spec`'s HTLCs (its owner's view) seen from us; the spec's order is kept (BOLT 3 sorts outputs)."""
    return tuple(
        MonitorHtlc(
            htlc_id=h.id,
            outgoing=(h.direction is HtlcDirection.OFFERED) == ours,
            amount_msat=h.amount_msat,
            payment_hash=h.add.payment_hash,
            cltv_expiry=h.add.cltv_expiry,
        )
        for h in spec.htlcs
    )


def channel_has_htlcs(channel: Channel) -> bool:
    """Any HTLC in our current commitment or in the peer's current / next one."""
    c = channel.commitments
    if c is None:
        return False
    specs = [c.local_commit.spec, c.remote_commit.spec]
    if c.next_remote is not None:
        specs.append(c.next_remote.commit.spec)
    return any(s.htlcs for s in specs)


def known_preimages(c: Commitments) -> dict[bytes, bytes]:
    """Preimages in the update logs (fulfills we sent or received), keyed by payment hash."""
    out: dict[bytes, bytes] = {}
    for log_ in (c.local_changes, c.remote_changes):
        for u in log_.all():
            if isinstance(u, UpdateFulfillHtlc):
                out[hashlib.sha256(u.payment_preimage).digest()] = u.payment_preimage
    return out


def monitor_data_for_channel(
    channel: Channel,
    destination_script: bytes,
    *,
    preimages: Mapping[bytes, bytes] | None = None,
    policy: MonitorPolicy | None = None,
) -> MonitorData:
    """The watcher's view of `channel`'s current state (raises ValueError before funding)."""
    c = channel.commitments
    if c is None:
        raise ValueError("the channel has no commitments yet")
    p = c.params
    lc, rc = c.local_commit, c.remote_commit
    htlc_hash_type = remote_htlc_sighash_type(p.channel_type)
    local = LocalCommitment(
        commitment_number=lc.index,
        our_balance_msat=lc.spec.to_local_msat,
        their_balance_msat=lc.spec.to_remote_msat,
        feerate_per_kw=lc.spec.feerate_per_kw,
        htlcs=_htlcs(lc.spec, True),
        remote_commitment_sig=from_compact_signature(lc.signature, SIGHASH_ALL),
        remote_htlc_sigs=tuple(from_compact_signature(s, htlc_hash_type) for s in lc.htlc_signatures),
    )
    remote = RemoteCommitment(rc.index, rc.per_commitment_point, _htlcs(rc.spec, False))
    nxt = None
    if c.next_remote is not None:
        n = c.next_remote.commit
        nxt = RemoteCommitment(n.index, n.per_commitment_point, _htlcs(n.spec, False))
    known = known_preimages(c)
    for payment_hash, preimage in (preimages or {}).items():
        if hashlib.sha256(preimage).digest() == payment_hash:
            known[payment_hash] = preimage
    return MonitorData(
        funding_outpoint=p.funding_outpoint,
        funding_sat=p.funding_sat,
        channel_type=p.channel_type,
        local_is_opener=p.is_funder,
        secrets=c.secrets,
        remote_keys=p.remote.keys,
        local_to_self_delay=p.remote.to_self_delay,  # the peer asks for the delay on our outputs
        remote_to_self_delay=p.local.to_self_delay,
        local_dust_limit_sat=p.local.dust_limit_sat,
        remote_dust_limit_sat=p.remote.dust_limit_sat,
        obscure_factor=p.obscure_factor,
        local_commitment=local,
        remote_commitment=remote,
        destination_script=destination_script,
        remote_next_commitment=nxt,
        remote_secrets=ShachainStore.from_bytes(c.remote_secrets.to_bytes()),
        preimages=known,
        policy=policy or MonitorPolicy(),
    )


# --- actions for the manager -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BroadcastTx:
    """Send `tx` (the monitor repeats it every block until it confirms)."""

    tx: Transaction
    reason: str


@dataclass(frozen=True, slots=True)
class OutgoingHtlcOnChain:
    """An HTLC we offered was settled on chain: fulfilled (`preimage`) or failed (None: timed out,
    trimmed, or absent from the commitment that confirmed). Tell the payment layer (forward or payment)."""

    htlc_id: int
    payment_hash: bytes
    amount_msat: int
    preimage: bytes | None


@dataclass(frozen=True, slots=True)
class FundHtlcTx:
    """Add wallet inputs to a zero-fee HTLC transaction, then :meth:`MonitorHost.complete_htlc_tx`."""

    need: NeedHtlcTxFunding


@dataclass(frozen=True, slots=True)
class BumpCommitment:
    """CPFP our commitment through our anchor (sign it with :meth:`MonitorHost.sign_anchor_input`)."""

    need: NeedFeeBump


HostAction = Union[BroadcastTx, OutgoingHtlcOnChain, FundHtlcTx, BumpCommitment]


class MonitorStoreLike(Protocol):
    def save_monitor(self, channel_id: bytes, channel_index: int, state: dict[str, Any],
                     retired: bool = False) -> None: ...


@dataclass(eq=False)
class _Live:
    monitor: ChannelMonitor
    watched: set[OutPoint]
    channel_index: int = 0
    #: Outgoing HTLCs already reported fulfilled (a PreimageLearned, then HtlcResolved later).
    reported: set[int] = field(default_factory=set)


class MonitorHost:
    """One :class:`ChannelMonitor` per closed channel (keyed by channel id), fed with blocks.

    With a `store` every monitor is written (:meth:`ChannelMonitor.to_dict`, without the channel
    secrets) after each call that may have changed it, before its actions are returned: the host
    carries out nothing the database does not hold. :meth:`restore` brings them back after a restart.
    """

    def __init__(self, store: MonitorStoreLike | None = None) -> None:
        self._live: dict[bytes, _Live] = {}
        self._store = store

    def __contains__(self, channel_id: object) -> bool:
        return channel_id in self._live

    def __len__(self) -> int:
        return len(self._live)

    def drop(self, channel_id: bytes) -> None:
        live = self._live.pop(channel_id, None)
        if live is not None and self._store is not None:
            self._store.save_monitor(channel_id, live.channel_index, live.monitor.to_dict(include_secrets=False),
                                     retired=True)

    def monitor(self, channel_id: bytes) -> ChannelMonitor | None:
        live = self._live.get(channel_id)
        return None if live is None else live.monitor

    def adopt(
        self, channel_id: bytes, data: MonitorData, closing_tx: Transaction, height: int, channel_index: int = 0,
    ) -> list[HostAction]:
        """Start watching a channel whose funding output `closing_tx` spent at `height`.

        Raises :class:`channels.watcher.MonitorError` (a ValueError) when the data
        does not match (our commitment's signatures are checked)."""
        monitor = ChannelMonitor(data, tip_height=height - 1)
        live = _Live(monitor, set(), channel_index)
        # start() registers the watches; what it would (re)broadcast for a funding output it still thinks
        # unspent (our commitment and its CPFP child, e.g. for an expired HTLC) is moot: `closing_tx` is
        # in a block already, and a CPFP child would only tie up the wallet coin the HTLC txs need.
        live.watched.update(e.outpoint for e in monitor.start() if isinstance(e, WatchOutpoint))
        actions = self._handle(channel_id, live, monitor.block_connected(height, [closing_tx]))
        self._live[channel_id] = live
        self._save(channel_id, live)
        log.info("channel %s: on-chain monitor took over the close %s (%s)", channel_id.hex(),
                 closing_tx.txid_hex(), monitor.close_kind)
        return actions

    def restore(self, channel_id: bytes, channel_index: int, state: dict[str, Any],
                secrets: ChannelSecrets) -> list[HostAction]:
        """A monitor written before a restart (what to watch and rebroadcast is in the actions)."""
        monitor = ChannelMonitor.from_dict(state, secrets=secrets)
        live = _Live(monitor, set(), channel_index)
        self._live[channel_id] = live
        actions = self._handle(channel_id, live, monitor.start())
        for htlc, preimage in monitor.settled_outgoing():  # maybe not delivered before the restart
            live.reported.add(htlc.htlc_id)
            actions.append(OutgoingHtlcOnChain(htlc.htlc_id, htlc.payment_hash, htlc.amount_msat, preimage))
        self._save(channel_id, live)
        log.info("channel %s: on-chain monitor restored at height %d (%s)", channel_id.hex(), monitor.tip_height,
                 monitor.close_kind)
        return actions

    def tip_height(self, channel_id: bytes) -> int | None:
        live = self._live.get(channel_id)
        return None if live is None else live.monitor.tip_height

    def block_connected(self, height: int, txs: Iterable[Transaction]) -> list[tuple[bytes, HostAction]]:
        """Feed the block at `height` (all its transactions) to every live monitor."""
        txs = list(txs)
        out: list[tuple[bytes, HostAction]] = []
        for channel_id, live in list(self._live.items()):
            relevant = [tx for tx in txs if any(txin.prevout in live.watched for txin in tx.inputs)]
            actions = self._handle(channel_id, live, live.monitor.block_connected(height, relevant))
            self._save(channel_id, live)
            out += [(channel_id, a) for a in actions]
        return out

    def block_disconnected(self, height: int) -> None:
        for channel_id, live in list(self._live.items()):
            self._handle(channel_id, live, live.monitor.block_disconnected(height))
            self._save(channel_id, live)

    # --- host inputs to a monitor --------------------------------------------------------------------

    def provide_preimage(self, channel_id: bytes, preimage: bytes) -> list[HostAction]:
        live = self._live.get(channel_id)
        if live is None:
            return []
        actions = self._handle(channel_id, live, live.monitor.provide_preimage(preimage))
        self._save(channel_id, live)
        return actions

    def complete_htlc_tx(self, channel_id: bytes, tx: Transaction) -> list[HostAction]:
        """The funded HTLC transaction of a :class:`FundHtlcTx` (raises MonitorError when it does not fit)."""
        live = self._live.get(channel_id)
        if live is None:
            return []
        actions = self._handle(channel_id, live, live.monitor.complete_htlc_tx(tx))
        self._save(channel_id, live)
        return actions

    def sign_anchor_input(self, channel_id: bytes, tx: Transaction, input_index: int) -> Transaction:
        live = self._live.get(channel_id)
        if live is None:
            raise KeyError(channel_id.hex())
        return live.monitor.sign_anchor_input(tx, input_index)

    # --- effects to actions ----------------------------------------------------------------------------

    def _save(self, channel_id: bytes, live: _Live) -> None:
        if self._store is not None:
            self._store.save_monitor(channel_id, live.channel_index, live.monitor.to_dict(include_secrets=False),
                                     retired=live.monitor.is_fully_resolved)

    def _outgoing_with_hash(self, live: _Live, payment_hash: bytes) -> list[MonitorHtlc]:
        data = live.monitor.data
        found: dict[int, MonitorHtlc] = {}
        for c in (data.local_commitment, data.remote_commitment, data.remote_next_commitment):
            if c is not None:
                found.update((h.htlc_id, h) for h in c.htlcs if h.outgoing and h.payment_hash == payment_hash)
        return list(found.values())

    def _handle(self, channel_id: bytes, live: _Live, effects: list[Effect]) -> list[HostAction]:
        cid = channel_id.hex()
        actions: list[HostAction] = []
        for eff in effects:
            if isinstance(eff, Broadcast):
                actions.append(BroadcastTx(eff.tx, eff.reason))
            elif isinstance(eff, WatchOutpoint):
                live.watched.add(eff.outpoint)
            elif isinstance(eff, NeedHtlcTxFunding):
                log.info("channel %s: zero-fee HTLC tx for %s needs wallet inputs", cid, eff.htlc_outpoint)
                actions.append(FundHtlcTx(eff))
            elif isinstance(eff, NeedFeeBump):
                log.info("channel %s: commitment %s needs a CPFP fee bump", cid, eff.txid[::-1].hex())
                actions.append(BumpCommitment(eff))
            elif isinstance(eff, HtlcResolved):
                log.info("channel %s: HTLC %s %d resolved on chain (%s)", cid,
                         "out" if eff.outgoing else "in", eff.htlc_id,
                         "fulfilled" if eff.preimage is not None else "failed")
                if eff.outgoing and eff.htlc_id not in live.reported:
                    live.reported.add(eff.htlc_id)
                    actions.append(OutgoingHtlcOnChain(eff.htlc_id, eff.payment_hash, eff.amount_msat, eff.preimage))
            elif isinstance(eff, PreimageLearned):
                log.info("channel %s: learned preimage of %s on chain", cid, eff.payment_hash.hex())
                for h in self._outgoing_with_hash(live, eff.payment_hash):
                    if h.htlc_id not in live.reported:  # fulfilling upstream is safe at once
                        live.reported.add(h.htlc_id)
                        actions.append(OutgoingHtlcOnChain(h.htlc_id, h.payment_hash, h.amount_msat, eff.preimage))
            elif isinstance(eff, ChannelFullyResolved):
                log.info("channel %s: every output resolved; monitor retired", cid)
                self._live.pop(channel_id, None)
            else:
                log.debug("channel %s: monitor effect %s", cid, eff)
        return actions
