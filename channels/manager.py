"""The host of the sans-IO channels: it routes peer messages to them and carries out their effects.

Effects are carried out strictly in order; a `Persist` is written to sqlite
(synchronous=FULL) before any later effect, so nothing is promised to the peer
that a crash could take back. Channels are restored from their last snapshot on
start and reestablished when their peer reconnects.

After a close, the on-chain monitors, the resolver's sweeps and the last block
handled are durable too (:mod:`channels.monitor_store`): :meth:`ChannelManager.resume`
handles the blocks missed before a restart and carries out what the restored
monitors ask. ``CANAL_CRASH_AT`` (:mod:`channels.faults`) kills the process at a
named step of the effects, for crash tests.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from base_chain.block import Block
from base_chain.tx import OutPoint, Transaction, TxOut
from base_chain.wallet import WalletError

from .backup import ChannelBackupRecord
from .chainclient import ChainUnavailable
from .effects import (
    Broadcast,
    ChannelClosed,
    ChannelError,
    ChannelReady,
    Disconnect,
    Effect,
    FailChannel,
    FundingGenerationReady,
    HtlcFailed,
    HtlcFulfilled,
    IncomingHtlc,
    LocalCommitmentPublished,
    Persist,
    SendMessage,
    WatchOutpoint,
    persist_to_write,
)
from .keys import ChannelSecrets, derive_channel_keys
from .messages import ChannelMessage, OpenChannel, UpdateFulfillHtlc
from .opening import ChannelConfig
from .faults import CrashPoint
from .fee_inputs import commitment_fee_bump, cpfp_child, fund_htlc_tx
from .monitor_host import (  # monitor_host bridge
    BroadcastTx,
    BumpCommitment,
    FundHtlcTx,
    HostAction,
    MonitorHost,
    OutgoingHtlcOnChain,
    channel_has_htlcs,
    monitor_data_for_channel,
)
from .monitor_store import RECOVERY, MonitorStore
from .state import Channel, ChannelState
from .resolver import delayed_sweep, justice_transaction, matching_revoked, to_remote_sweep
from .store import ChannelStore
from .transactions import ChannelType
from .watcher import CloseKind, MonitorError  # monitor_host bridge
from .wire import ErrorMessage, Message

if TYPE_CHECKING:
    from .daemon import LightningDaemon, PeerState

__all__ = ["ChannelManager", "ManagedChannel", "FundingWatch", "short_channel_id"]

log = logging.getLogger("canal.channels")


def _channel_id(outpoint: OutPoint) -> bytes:
    """BOLT 2: the funding txid with its last two bytes XORed with the output index."""
    cid = bytearray(outpoint.txid)
    cid[30] ^= outpoint.index >> 8
    cid[31] ^= outpoint.index & 0xFF
    return bytes(cid)


def short_channel_id(height: int, tx_index: int, output_index: int) -> int:
    return (height << 40) | (tx_index << 16) | output_index


@dataclass(eq=False)
class FundingWatch:
    outpoint: OutPoint
    script_pubkey: bytes
    min_depth: int
    confirmed_height: int | None = None
    tx_index: int | None = None
    spent_by: bytes | None = None


@dataclass(eq=False)
class ManagedChannel:
    channel: Channel
    peer: bytes
    index: int
    watch: FundingWatch | None = None
    #: OpenChannel stream subscribers and CloseChannel waiters get these events.
    listeners: list[trio.MemorySendChannel[Any]] = field(default_factory=list)
    published: LocalCommitmentPublished | None = None
    closing_txid: bytes | None = None
    #: Sweeps still to confirm: (valid from height, transaction); rebroadcast every block until mined.
    sweeps: list[tuple[int, Transaction]] = field(default_factory=list)

    @property
    def channel_id(self) -> bytes:
        return self.channel.channel_id

    def notify(self, event: Any) -> None:
        for ch in list(self.listeners):
            try:
                ch.send_nowait(event)
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                self.listeners.remove(ch)


class ChannelManager:
    def __init__(self, daemon: LightningDaemon, store: ChannelStore, seed: bytes) -> None:
        self.d = daemon
        self.store = store
        self._seed = seed
        self.channels: dict[bytes, ManagedChannel] = {}
        self._lock = trio.Lock()
        #: The payment layer's hooks (invoices, forwarding): called on the trio thread.
        self.on_incoming_htlc: Callable[[ManagedChannel, IncomingHtlc], Awaitable[None]] | None = None
        self.on_htlc_settled: Callable[[ManagedChannel, HtlcFulfilled | HtlcFailed], Awaitable[None]] | None = None
        #: An HTLC we offered, settled on chain after a force close: HtlcFulfilled (preimage seen on chain)
        #: or HtlcFailed with an empty ``reason`` and no ``failure_code`` (timed out / not in the commitment).
        self.on_htlc_onchain: Callable[[ManagedChannel, HtlcFulfilled | HtlcFailed], Awaitable[None]] | None = None
        self.event_subscribers: list[trio.MemorySendChannel[Any]] = []
        self._recovery_sweeps: list[tuple[int, Transaction]] = []
        #: monitor_host bridge: BOLT 5 monitors of force-closed channels with HTLCs (they own every output).
        self.monitor_store = MonitorStore(store.conn)
        self.monitors = MonitorHost(self.monitor_store)
        #: Monitor actions of the restored monitors, carried out by :meth:`resume`.
        self._restored_actions: list[tuple[bytes, HostAction]] = []
        self.crash = CrashPoint.from_env()
        self._trigger = "command"
        #: Called before any channel state is written, a preimage is sent or a monitor adopts a close:
        #: stores whose lazily committed writes those depend on make them durable (PaymentStore.sync,
        #: InvoiceRegistry.sync).
        self.before_write: list[Callable[[], None]] = []
        #: How many HTLCs we let the peer of a new channel have pending on our commitment (the node's
        #: --default-remote-max-htlcs, as lnd's; BOLT 2 caps it at 483).
        self.max_accepted_htlcs = ChannelConfig().max_accepted_htlcs

    # --- lifecycle --------------------------------------------------------------------------------------

    def secrets(self, index: int) -> ChannelSecrets:
        return derive_channel_keys(self._seed, index)

    def load(self) -> None:
        for stored in self.store.channels():
            try:
                channel = Channel.from_bytes(stored.state, self.secrets(stored.channel_index))
            except (ValueError, KeyError) as e:
                log.error("cannot restore channel %s: %s", stored.channel_id.hex(), e)
                continue
            mc = ManagedChannel(channel, stored.peer, stored.channel_index)
            c = channel.commitments
            if c is not None and channel.state not in (ChannelState.ABANDONED,):
                p = c.params
                mc.watch = FundingWatch(p.funding_outpoint, p.funding_script_pubkey, channel.minimum_depth)
            self.channels[channel.channel_id] = mc
        for closed in self.store.closed_channels():
            done = self.channels.get(closed.channel_id)
            txid_hex = closed.summary.get("closing_tx_hash")
            if done is not None and txid_hex:
                done.closing_txid = bytes.fromhex(txid_hex)[::-1]
                if done.watch is not None:
                    done.watch.spent_by = done.closing_txid
        for sw in self.monitor_store.pending_sweeps():
            target = self.channels.get(sw.channel_id)
            if target is not None:
                target.sweeps.append((sw.valid_from, sw.tx))
            else:
                self._recovery_sweeps.append((sw.valid_from, sw.tx))
        for sm in self.monitor_store.monitors():
            try:
                actions = self.monitors.restore(sm.channel_id, sm.channel_index, sm.state, self.secrets(sm.channel_index))
            except (ValueError, KeyError) as e:
                log.error("cannot restore the on-chain monitor of %s: %s", sm.channel_id.hex(), e)
                continue
            self._restored_actions += [(sm.channel_id, a) for a in actions]
        log.info("restored %d channels, %d on-chain monitors", len(self.channels), len(self.monitors))

    async def resume(self) -> None:
        """After a restart: handle the blocks the channel layer missed (killed between the wallet's
        block write and ours), then carry out what the restored monitors asked for."""
        async with self._lock:
            try:
                await self._catch_up(self.d.tip_height + 1)
            except Exception as e:  # noqa: BLE001 -- the next block's handler catches up again
                log.error("cannot handle the blocks missed before the restart yet: %s", e)
            actions, self._restored_actions = self._restored_actions, []
            for cid, act in actions:
                await self._monitor_action(cid, act)
            pending = [*self._recovery_sweeps, *(sw for mc in self.channels.values() for sw in mc.sweeps)]
            for valid_from, sweep in pending:  # restored sweeps go out now, not at the next block
                if self.d.tip_height + 1 >= valid_from:
                    await self._monitor_broadcast(sweep, "restored sweep")

    # --- static channel backups ------------------------------------------------------------------

    def backup_records(self) -> list[ChannelBackupRecord]:
        known = self.store.peers()
        out = []
        for mc in self.channels.values():
            c = mc.channel.commitments
            if c is None or mc.closing_txid is not None or mc.channel.state is ChannelState.ABANDONED:
                continue
            op = c.params.funding_outpoint
            out.append(ChannelBackupRecord(
                chain_hash=self.d.params.genesis_hash.hex(), funding_txid=op.txid[::-1].hex(), output_index=op.index,
                remote_pubkey=mc.peer.hex(), remote_address=known.get(mc.peer, ""), channel_index=mc.index,
                is_funder=mc.channel.is_funder, capacity_sat=c.params.funding_sat,
                anchors=mc.channel.channel_type is ChannelType.ANCHORS,
            ))
        return out

    async def restore(self, records: list[ChannelBackupRecord]) -> int:
        """Remember each backed-up channel, then ask its peer to force-close so we can sweep our output."""
        restored = 0
        if records:
            self.store.reserve_indices_through(max(r.channel_index for r in records))
        for r in records:
            if r.chain_hash != self.d.params.genesis_hash.hex():
                raise ChannelError(f"backup of {r.channel_point} is for another chain")
            if self.find(_channel_id(r.outpoint)) is not None:
                continue
            if self.store.add_recovery(r.channel_point, asdict(r)):
                restored += 1
            self.d.spawn(self._ask_force_close, r)
        return restored

    async def _ask_force_close(self, r: ChannelBackupRecord) -> None:
        host, _, port = r.remote_address.rpartition(":")
        for _ in range(30):
            peer = self.d.peers.get(r.remote_pubkey)
            if peer is None and host:
                try:
                    await self.d.connect_peer(r.remote_pubkey, host, int(port))
                except Exception as e:  # the peer may be offline: keep trying for a while
                    log.info("restore: cannot reach %s yet: %s", r.remote_pubkey, e)
                peer = self.d.peers.get(r.remote_pubkey)
            if peer is not None:
                text = b"restored from a static channel backup: please force-close"
                await peer.link.send(ErrorMessage(_channel_id(r.outpoint), text))
                log.info("restore: asked %s to force-close %s", r.remote_pubkey, r.channel_point)
                return
            await trio.sleep(2)

    async def _check_recoveries(self, block: Block, height: int) -> None:
        pending = [(ChannelBackupRecord(**rec), swept) for rec, swept in self.store.recoveries() if swept is None]
        if not pending:
            return
        for tx in block.transactions:
            for r, _ in pending:
                if any(txin.prevout == r.outpoint for txin in tx.inputs):
                    feerate = max(await self.d.chain.estimate_fee_sat_kvb(2) // 4, 253)
                    sweep = to_remote_sweep(tx, self.secrets(r.channel_index), r.anchors,
                                            self.d.wallet.get_change_script(), feerate)
                    if sweep is None:
                        self.store.recovery_swept(r.channel_point, "nothing-to-sweep")
                        continue
                    log.info("restore: %s closed by %s; sweeping our output with %s", r.channel_point, tx.txid_hex(),
                             sweep.txid_hex())
                    self.monitor_store.add_sweep(RECOVERY, height + (1 if r.anchors else 0), sweep)
                    self.store.recovery_swept(r.channel_point, sweep.txid_hex())
                    self._recovery_sweeps.append((height + (1 if r.anchors else 0), sweep))

    def for_peer(self, peer: bytes) -> list[ManagedChannel]:
        return [mc for mc in self.channels.values() if mc.peer == peer]

    def find(self, channel_id: bytes) -> ManagedChannel | None:
        mc = self.channels.get(channel_id)
        if mc is not None:
            return mc
        for mc in self.channels.values():
            if channel_id in (mc.channel.channel_id, mc.channel.temporary_channel_id):
                return mc
        return None

    # --- peers ------------------------------------------------------------------------------------------

    async def peer_changed(self, peer: PeerState, connected: bool) -> None:
        key = peer.link.remote_node_id.to_bytes()
        async with self._lock:
            if connected and not peer.inbound:
                self.store.remember_peer(key, peer.address)  # an inbound peer's source port is not its address
            for mc in self.for_peer(key):
                try:
                    effects = mc.channel.reconnected() if connected else mc.channel.disconnected()
                except ChannelError:
                    continue
                await self._apply(mc, effects)

    async def peer_message(self, peer: PeerState, msg: Message) -> None:
        key = peer.link.remote_node_id.to_bytes()
        if isinstance(msg, ErrorMessage):
            async with self._lock:
                targets = self.for_peer(key) if msg.channel_id == bytes(32) else [
                    mc for mc in [self.find(msg.channel_id)] if mc is not None and mc.peer == key]
                for mc in targets:
                    await self._apply(mc, mc.channel.receive(msg))
            return
        if not isinstance(msg, ChannelMessage):
            return  # gossip and the rest belong to other layers
        async with self._lock:
            if isinstance(msg, OpenChannel):
                await self._inbound_open(peer, key, msg)
                return
            target = self.find(msg.target_channel_id)
            if target is None or target.peer != key:
                await peer.link.send(ErrorMessage(msg.target_channel_id, b"unknown channel"))
                return
            self._trigger = msg.NAME
            try:
                await self._apply(target, target.channel.receive(msg))
            finally:
                self._trigger = "command"

    async def _inbound_open(self, peer: PeerState, key: bytes, msg: OpenChannel) -> None:
        if self.find(msg.temporary_channel_id) is not None:
            await peer.link.send(ErrorMessage(msg.temporary_channel_id, b"temporary_channel_id already in use"))
            return
        their = peer.link.their_init
        index = self.store.next_channel_index()
        channel = Channel.inbound(
            secrets=self.secrets(index), keys_id=index, chain_hash=self.d.params.genesis_hash,
            local_features=self.d.features, remote_features=their.all_features if their else self.d.features,
            shutdown_scriptpubkey=self.d.wallet.get_change_script(),
            # the funder's channel_flags decide whether it is announced
            config=ChannelConfig(announce_channel=msg.announce_channel, max_accepted_htlcs=self.max_accepted_htlcs),
        )
        mc = ManagedChannel(channel, key, index)
        self.channels[msg.temporary_channel_id] = mc
        await self._apply(mc, channel.receive(msg))

    # --- our commands --------------------------------------------------------------------------------

    async def open_channel(self, peer_key: bytes, funding_sat: int, push_msat: int, feerate_per_kw: int,
                           announce: bool = False) -> ManagedChannel:
        peer = self.d.peers.get(peer_key.hex())
        if peer is None:
            raise ChannelError(f"peer {peer_key.hex()} is not online")
        async with self._lock:
            index = self.store.next_channel_index()
            their = peer.link.their_init
            channel, effects = Channel.open(
                secrets=self.secrets(index), keys_id=index, chain_hash=self.d.params.genesis_hash,
                temporary_channel_id=os.urandom(32), funding_sat=funding_sat, feerate_per_kw=feerate_per_kw,
                local_features=self.d.features, remote_features=their.all_features if their else self.d.features,
                shutdown_scriptpubkey=self.d.wallet.get_change_script(), push_msat=push_msat,
                config=ChannelConfig(announce_channel=announce, max_accepted_htlcs=self.max_accepted_htlcs),
            )
            mc = ManagedChannel(channel, peer_key, index)
            self.channels[channel.channel_id] = mc
            await self._apply(mc, effects)
            return mc

    async def command(self, mc: ManagedChannel, fn: Callable[[Channel], list[Effect]],
                      own_updates_recoverable: bool = False) -> None:
        """Run a channel API call (add_htlc, sign, shutdown, ...) and carry out its effects.

        ``own_updates_recoverable``: the caller copes with a crash losing the updates it proposed
        before they are signed (:func:`channels.effects.persist_to_write`), so they are not written alone.

        ChannelError once the funding output is spent on chain: the channel state machine does not
        know of a close the peer published, and an HTLC settled in it would reach nobody (a preimage
        goes to the on-chain monitor instead: :meth:`claim_onchain`)."""
        async with self._lock:
            if mc.watch is not None and mc.watch.spent_by is not None:
                raise ChannelError(f"channel closed on chain by {mc.watch.spent_by[::-1].hex()}")
            await self._apply(mc, fn(mc.channel), own_updates_recoverable)

    # --- the chain ---------------------------------------------------------------------------------------

    async def block_changed(self, block: Block, height: int, connected: bool) -> None:
        async with self._lock:
            if connected:
                await self._catch_up(height)
            await self._block_changed(block, height, connected)
            if connected:
                self.monitor_store.set_scanned(height, block.header.hash)
            else:
                self.monitor_store.set_scanned(height - 1, block.header.prev_block)

    async def _catch_up(self, height: int) -> None:
        """Handle the blocks between the last one we handled and `height` (exclusive)."""
        scanned = self.monitor_store.scanned()
        if scanned is None:
            return
        for h in range(scanned[0] + 1, height):
            block = await self.d.chain.block(await self.d.chain.block_hash(h))
            log.info("handling block %d again (missed before a restart)", h)
            await self._block_changed(block, h, True)
            self.monitor_store.set_scanned(h, block.header.hash)

    async def _block_changed(self, block: Block, height: int, connected: bool) -> None:
        # monitor_host bridge: feed live monitors first (a monitor adopted below already saw this block)
        if connected:
            for cid, act in self.monitors.block_connected(height, block.transactions):
                await self._monitor_action(cid, act)
        else:
            self.monitors.block_disconnected(height)
        if connected:
            if self._recovery_sweeps:
                self._recovery_sweeps = await self._broadcast_sweeps(self._recovery_sweeps, block, height)
            await self._check_recoveries(block, height)
        for mc in list(self.channels.values()):
            w = mc.watch
            if w is None:
                continue
            if not connected:
                if w.confirmed_height == height:
                    w.confirmed_height, w.tx_index = None, None
                continue
            if mc.sweeps:
                mc.sweeps = await self._broadcast_sweeps(mc.sweeps, block, height)
            for i, tx in enumerate(block.transactions):
                if w.confirmed_height is None and tx.txid == w.outpoint.txid:
                    w.confirmed_height, w.tx_index = height, i
                if w.spent_by is None and any(txin.prevout == w.outpoint for txin in tx.inputs):
                    w.spent_by = tx.txid
                    await self._funding_spent(mc, tx, height)
            if mc.sweeps and w.spent_by is not None:
                mc.sweeps = await self._broadcast_sweeps(mc.sweeps, Block(block.header, []), height)
            if w.confirmed_height is not None and w.tx_index is not None and w.spent_by is None:
                depth = height - w.confirmed_height + 1
                scid = short_channel_id(w.confirmed_height, w.tx_index, w.outpoint.index)
                try:
                    effects = mc.channel.funding_confirmed(depth, scid)
                except ChannelError:
                    continue
                await self._apply(mc, effects)

    async def _funding_spent(self, mc: ManagedChannel, tx: Transaction, height: int) -> None:
        """The funding output was spent: a mutual close, our commitment, or theirs (maybe revoked: punish)."""
        secrets = self.secrets(mc.index)
        dest = self.d.wallet.get_change_script()
        feerate = max(await self.d.chain.estimate_fee_sat_kvb(2) // 4, 253)
        anchors = mc.channel.channel_type is ChannelType.ANCHORS
        if mc.published is None and mc.channel.state is ChannelState.FORCE_CLOSING and mc.channel.commitments:
            _, mc.published = mc.channel.commitments.local_commitment_published()
        if mc.channel.closing_tx is not None and tx.txid == mc.channel.closing_tx.txid or (
            mc.closing_txid == tx.txid and mc.published is None
        ):
            kind = "COOPERATIVE_CLOSE"
        elif mc.published is not None and tx.txid == mc.published.commitment_tx.txid:
            kind = "LOCAL_FORCE_CLOSE"
            sweep = None if await self._monitor_close(mc, tx, height, CloseKind.LOCAL, dest) else (
                delayed_sweep(mc.published, secrets, dest, feerate))  # monitor_host bridge
            if sweep is not None:
                self._add_sweep(mc, height + mc.published.to_self_delay, sweep)
        else:
            record = matching_revoked(self.store.revoked(mc.channel_id), tx)
            if record is not None:
                kind = "BREACH_CLOSE"
                justice = justice_transaction(record, tx, secrets, dest, feerate)
                if justice is not None:
                    log.warning("channel %s: revoked commitment %s broadcast by the peer; justice tx %s",
                                mc.channel_id.hex(), tx.txid_hex(), justice.txid_hex())
                    self._add_sweep(mc, height, justice)
            else:
                kind = "REMOTE_FORCE_CLOSE"
            monitored = kind == "REMOTE_FORCE_CLOSE" and await self._monitor_close(
                mc, tx, height, CloseKind.REMOTE, dest)  # monitor_host bridge
            sweep = None if monitored else to_remote_sweep(tx, secrets, anchors, dest, feerate)
            if sweep is not None:
                self._add_sweep(mc, height + (1 if anchors else 0), sweep)
        mc.closing_txid = tx.txid
        summary = self.summary(mc)
        summary.update(closing_tx_hash=tx.txid_hex(), close_height=height, close_type=kind)
        self.store.record_closed(mc.channel_id, summary)
        mc.notify(("closed", tx.txid, kind))
        self._publish(("closed", mc.channel_id, kind))
        log.info("channel %s closed on chain by %s (%s)", mc.channel_id.hex(), tx.txid_hex(), kind)

    def _add_sweep(self, mc: ManagedChannel, valid_from: int, tx: Transaction) -> None:
        """Durable before it is broadcast (a restart after the close still sweeps)."""
        self.monitor_store.add_sweep(mc.channel_id, valid_from, tx)
        mc.sweeps.append((valid_from, tx))

    # --- monitor_host bridge -------------------------------------------------------------------------------

    async def claim_onchain(self, channel_id: bytes, preimage: bytes) -> None:
        """A preimage for an HTLC we received on a channel that can no longer settle it off chain
        (force-closing or closed): the on-chain monitor claims the HTLC output with it."""
        payment_hash = hashlib.sha256(preimage).digest()
        async with self._lock:
            self.monitor_store.add_preimage(channel_id, payment_hash, preimage)
            for act in self.monitors.provide_preimage(channel_id, preimage):
                await self._monitor_action(channel_id, act)

    async def _monitor_action(self, channel_id: bytes, act: HostAction) -> None:
        if isinstance(act, BroadcastTx):
            await self._monitor_broadcast(act.tx, act.reason)
        elif isinstance(act, OutgoingHtlcOnChain):
            mc = self.find(channel_id)
            event: HtlcFulfilled | HtlcFailed
            if act.preimage is not None:
                event = HtlcFulfilled(channel_id, act.htlc_id, act.payment_hash, act.preimage)
            else:
                event = HtlcFailed(channel_id, act.htlc_id, act.payment_hash, b"")
            if mc is not None and self.on_htlc_onchain is not None:
                await self.on_htlc_onchain(mc, event)
        elif isinstance(act, FundHtlcTx):
            try:
                funded = fund_htlc_tx(act.need, self.d.wallet, self.d.tip_height)
                actions = self.monitors.complete_htlc_tx(channel_id, funded)
            except (MonitorError, WalletError) as e:
                log.warning("channel %s: cannot fund the HTLC tx of %s: %s", channel_id.hex(), act.need.htlc_outpoint, e)
                return
            for a in actions:
                await self._monitor_action(channel_id, a)
        elif isinstance(act, BumpCommitment):
            try:
                child = cpfp_child(act.need, self.d.wallet,
                                   lambda tx, i: self.monitors.sign_anchor_input(channel_id, tx, i), self.d.tip_height)
            except (MonitorError, WalletError, KeyError) as e:
                log.warning("channel %s: cannot CPFP our commitment: %s", channel_id.hex(), e)
                return
            await self._monitor_broadcast(child, "CPFP of our commitment through our anchor")

    async def _monitor_close(self, mc: ManagedChannel, tx: Transaction, height: int, expect: CloseKind,
                             dest: bytes) -> bool:
        """Hand a force close of a channel with HTLCs to a BOLT 5 monitor (channels/monitor_host.py).

        True: the monitor owns every output of `tx` (the resolver must not sweep it). False: no HTLCs, or
        the monitor could not be built / placed `tx` differently; the resolver paths keep the close."""
        if not channel_has_htlcs(mc.channel):
            return False
        try:
            data = monitor_data_for_channel(mc.channel, dest, preimages=self.monitor_store.preimages(mc.channel_id))
            self._sync_dependencies()  # the monitor keeps preimages of settled invoices: those on disk first
            actions = self.monitors.adopt(mc.channel_id, data, tx, height, mc.index)
        except (MonitorError, ValueError) as e:
            log.warning("channel %s: no on-chain monitor (%s); HTLC outputs are not resolved", mc.channel_id.hex(), e)
            return False
        monitor = self.monitors.monitor(mc.channel_id)
        kind = None if monitor is None else monitor.close_kind
        if kind is not expect:
            log.warning("channel %s: monitor saw %s, expected %s; leaving the close to the resolver",
                        mc.channel_id.hex(), kind, expect)
            self.monitors.drop(mc.channel_id)
            return False
        for act in actions:
            await self._monitor_action(mc.channel_id, act)
        return True

    async def _monitor_broadcast(self, tx: Transaction, reason: str) -> None:
        try:
            await self.d.broadcast(tx)
            log.info("broadcast %s (%s)", tx.txid_hex(), reason)
        except Exception as e:  # noqa: BLE001 -- repeated every block until it confirms; may not be valid yet
            log.info("%s not accepted yet (%s): %s", tx.txid_hex(), reason, e)

    async def _broadcast_sweeps(
        self, sweeps: list[tuple[int, Transaction]], block: Block, height: int
    ) -> list[tuple[int, Transaction]]:
        """Broadcast the sweeps that are valid by the next block; return those not yet confirmed."""
        mined = {tx.txid for tx in block.transactions}
        spent = {txin.prevout for tx in block.transactions for txin in tx.inputs}
        remaining = []
        for valid_from, sweep in sweeps:
            if sweep.txid in mined or any(txin.prevout in spent for txin in sweep.inputs):
                self.monitor_store.sweep_done(sweep.txid)
                continue  # confirmed (or its input was taken by someone else)
            remaining.append((valid_from, sweep))
            if height + 1 >= valid_from:
                try:
                    await self.d.broadcast(sweep)
                    log.info("broadcast sweep %s", sweep.txid_hex())
                except Exception as e:
                    log.info("sweep %s not accepted yet: %s", sweep.txid_hex(), e)
        return remaining

    # --- carrying out effects ---------------------------------------------------------------------------

    async def _apply(self, mc: ManagedChannel, effects: list[Effect], own_updates_recoverable: bool = False) -> None:
        queue = list(effects)
        while queue:
            eff = queue.pop(0)
            if isinstance(eff, Persist):
                written = persist_to_write(eff, queue, own_updates_recoverable)
                if written is None:
                    continue
                eff = written
                old = mc.channel.temporary_channel_id
                revoked = None if eff.revoked is None else (eff.revoked.commitment_number, _revoked_dict(eff.revoked))
                self._sync_dependencies()
                state, blobs = eff.parts
                self.store.save_channel(eff.channel_id, mc.peer, mc.index, state,
                                        old_id=old if old in self.channels else None, revoked=revoked, blobs=blobs)
                if eff.channel_id != old and old in self.channels:
                    del self.channels[old]
                self.channels[eff.channel_id] = mc
                if self.crash.step is not None:
                    self.crash.reached(_persist_step(queue, self._trigger))
            elif isinstance(eff, SendMessage):
                if isinstance(eff.message, UpdateFulfillHtlc):  # the preimage leaves: its invoice on disk first
                    self._sync_dependencies()
                peer = self.d.peers.get(mc.peer.hex())
                if peer is not None:
                    try:
                        await peer.link.send(eff.message)
                    except Exception as e:  # the channel retransmits on reestablish
                        log.info("send to %s failed: %s", mc.peer.hex(), e)
                    if self.crash.step is not None:
                        self.crash.reached(f"send:{eff.message.NAME}")
            elif isinstance(eff, Broadcast) and eff.label == "commitment" and mc.watch is not None and (
                    mc.watch.spent_by is not None):  # e.g. the peer's error after its own close confirmed
                log.info("channel %s already closed on chain: our commitment is not broadcast", mc.channel_id.hex())
            elif isinstance(eff, Broadcast):
                try:
                    await self.d.broadcast(eff.tx)
                    log.info("broadcast %s %s", eff.label, eff.tx.txid_hex())
                except Exception as e:
                    log.warning("broadcast of %s %s failed: %s", eff.label, eff.tx.txid_hex(), e)
                if eff.label == "closing":
                    mc.closing_txid = eff.tx.txid
                elif eff.label == "commitment" and mc.channel.channel_type is ChannelType.ANCHORS:
                    await self._bump_commitment(mc, eff.tx)
            elif isinstance(eff, WatchOutpoint):
                mc.watch = FundingWatch(eff.outpoint, eff.script_pubkey, eff.min_depth)
                mc.notify(("pending", eff.outpoint))
                await self._check_funding_now(mc)
            elif isinstance(eff, FundingGenerationReady):
                queue[0:0] = await self._fund(mc, eff)
            elif isinstance(eff, ChannelReady):
                mc.notify(("open", mc.channel_id))
                self._publish(("open", mc.channel_id))
            elif isinstance(eff, FailChannel):
                log.warning("channel %s failed: %s", eff.channel_id.hex(), eff.reason)
                mc.notify(("failed", eff.reason))
                if eff.broadcast:
                    try:
                        queue[0:0] = mc.channel.force_close()
                    except ChannelError as e:
                        log.warning("cannot force-close %s: %s", eff.channel_id.hex(), e)
                elif mc.channel.state is ChannelState.ABANDONED:
                    self.channels.pop(eff.channel_id, None)
                    self.store.delete_channel(eff.channel_id)
            elif isinstance(eff, LocalCommitmentPublished):
                mc.published = eff
                mc.notify(("force_closing", eff.commitment_tx.txid))
            elif isinstance(eff, Disconnect):
                peer = self.d.peers.get(mc.peer.hex())
                if peer is not None:
                    peer.cancel.cancel()
            elif isinstance(eff, IncomingHtlc):
                if self.on_incoming_htlc is not None:
                    await self.on_incoming_htlc(mc, eff)
                else:
                    queue += mc.channel.fail_htlc(eff.htlc_id, b"") + mc.channel.sign()
            elif isinstance(eff, (HtlcFulfilled, HtlcFailed)):
                if self.on_htlc_settled is not None:
                    await self.on_htlc_settled(mc, eff)
            elif isinstance(eff, ChannelClosed):
                mc.closing_txid = eff.closing_tx.txid
                mc.notify(("closing", eff.closing_tx.txid))

    def _sync_dependencies(self) -> None:
        """Make the records a channel write or a revealed preimage depends on durable (``before_write``)."""
        for hook in self.before_write:
            hook()

    async def _bump_commitment(self, mc: ManagedChannel, commitment: Transaction) -> None:
        """Our anchors commitment pays the fee rate agreed with the peer: when fees rose above it,
        CPFP it through our anchor with a wallet input (channels/fee_inputs.py)."""
        c = mc.channel.commitments
        if c is None:
            return
        try:
            target = max(await self.d.chain.estimate_fee_sat_kvb(2) // 4, 253)
            if target <= c.local_commit.spec.feerate_per_kw:
                return
            child = commitment_fee_bump(commitment, c.params.funding_sat, self.secrets(mc.index).funding_privkey,
                                        target, self.d.wallet, self.d.tip_height)
        except (WalletError, ValueError, ChainUnavailable) as e:  # the fee estimate too: the close goes on
            log.warning("channel %s: cannot CPFP our commitment: %s", mc.channel_id.hex(), e)
            return
        if child is not None:
            await self._monitor_broadcast(child, f"CPFP of our commitment to {target} sat/kw through our anchor")

    async def _check_funding_now(self, mc: ManagedChannel) -> None:
        """After a restart the funding may already be deep: look it up instead of waiting for a block."""
        w = mc.watch
        if w is None:
            return
        found = await self.d.chain.get_tx(w.outpoint.txid[::-1].hex())
        if found is None or found[1] <= 0:
            return
        height = self.d.tip_height - found[1] + 1
        block = await self.d.chain.block(await self.d.chain.block_hash(height))
        for i, tx in enumerate(block.transactions):
            if tx.txid == w.outpoint.txid:
                w.confirmed_height, w.tx_index = height, i

    async def _fund(self, mc: ManagedChannel, eff: FundingGenerationReady) -> list[Effect]:
        rate = max((await self.d.chain.estimate_fee_sat_kvb(6)) / 1000, 1.0)
        tx = self.d.wallet.create_transaction([TxOut(eff.funding_sat, eff.script_pubkey)], rate, self.d.tip_height)
        self.d.wallet.commit(tx)  # reserve its coins now; it is broadcast after funding_signed
        return mc.channel.funding_transaction_generated(tx)

    # --- views ---------------------------------------------------------------------------------------------

    def _publish(self, event: Any) -> None:
        for ch in list(self.event_subscribers):
            try:
                ch.send_nowait(event)
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                self.event_subscribers.remove(ch)

    def summary(self, mc: ManagedChannel) -> dict[str, Any]:
        ch = mc.channel
        out: dict[str, Any] = {"channel_id": mc.channel_id.hex(), "remote_pubkey": mc.peer.hex(),
                               "initiator": ch.is_funder, "state": ch.state.value}
        c = ch.commitments
        if c is not None:
            p = c.params
            out.update(
                channel_point=f"{p.funding_outpoint.txid[::-1].hex()}:{p.funding_outpoint.index}",
                capacity=p.funding_sat, chan_id=ch.short_channel_id or 0,
                local_balance=c.local_commit.spec.to_local_msat // 1000,
                remote_balance=c.local_commit.spec.to_remote_msat // 1000,
            )
        return out


def _persist_step(rest: list[Effect], trigger: str) -> str:
    """The fault-injection name of a Persist (channels/faults.py): by the next message it precedes."""
    for eff in rest:
        if isinstance(eff, Persist):
            break
        if isinstance(eff, SendMessage):
            return f"persist:{eff.message.NAME}"
    return f"persist:on_{trigger}"


def _revoked_dict(r: Any) -> dict[str, Any]:
    def plain(v: Any) -> Any:
        if isinstance(v, bytes):
            return v.hex()
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return {k: plain(v) for k, v in asdict(r).items()}
