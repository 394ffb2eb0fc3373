"""lnd's channel RPCs (OpenChannel, ListChannels, CloseChannel, ...) on `canal channeld`.

A mixin for `LightningServicer`: same service (`lnrpc.Lightning`), same names and
fields as lnd, backed by the `ChannelManager`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import grpc
import trio

from base_chain.address import address_to_script
from base_chain.tx import OutPoint
from proto import lightning_pb2 as ln

from .backup import BackupError, ChannelBackupRecord, decrypt_backups, encrypt_backups
from .effects import ChannelError
from .manager import ManagedChannel
from .service import LightningServicer, LnRpcError, invalid
from .state import ChannelState
from .scripts import ANCHOR_OUTPUT_SAT
from .transactions import ChannelType, HtlcDirection

if TYPE_CHECKING:
    from .node import ChannelNode

__all__ = ["ChannelLightningServicer", "BackupLightningServicer"]

S = ChannelState
_PENDING_OPEN = {S.WAIT_FOR_FUNDING_CREATED, S.WAIT_FOR_FUNDING_SIGNED, S.AWAITING_CHANNEL_READY}
_WAITING_CLOSE = {S.SHUTDOWN, S.NEGOTIATING, S.CLOSING}
OPEN_TIMEOUT_S = 60.0
MIN_FUNDING_SAT = 20_000


def _channel_point(mc: ManagedChannel) -> str:
    c = mc.channel.commitments
    if c is None:
        return ""
    op = c.params.funding_outpoint
    return f"{op.txid[::-1].hex()}:{op.index}"


def _parse_channel_point(cp: ln.ChannelPoint) -> OutPoint:
    if cp.HasField("funding_txid_bytes"):
        txid = bytes(cp.funding_txid_bytes)
    else:
        try:
            txid = bytes.fromhex(cp.funding_txid_str)[::-1]
        except ValueError:
            raise invalid("invalid channel point: funding_txid_str is not hex") from None
    if len(txid) != 32:
        raise invalid("invalid channel point: txid must be 32 bytes")
    return OutPoint(txid, cp.output_index)


def _commitment_type(mc: ManagedChannel) -> Any:
    return ln.ANCHORS if mc.channel.channel_type is ChannelType.ANCHORS else ln.STATIC_REMOTE_KEY


def _balances(mc: ManagedChannel) -> tuple[int, int, int, int]:
    """(local, remote, commit_fee, commit_weight) as lnd reports them: the funder's balance net of the
    commitment fee and the anchors it pays for."""
    ch = mc.channel
    c = ch.commitments
    assert c is not None
    spec = c.local_commit.spec
    local, remote = spec.to_local_msat // 1000, spec.to_remote_msat // 1000
    try:
        tx = ch.local_commitment_tx()
    except Exception:  # no signed commitment yet
        return local, remote, 0, 0
    fee = c.params.funding_sat - sum(o.amount_sat for o in tx.outputs)
    anchors = sum(o.amount_sat for o in tx.outputs if o.amount_sat == ANCHOR_OUTPUT_SAT)
    if ch.is_funder:
        local -= fee + anchors
    else:
        remote -= fee + anchors
    return local, remote, fee, tx.weight


class ChannelLightningServicer(LightningServicer):
    """The node-level Lightning servicer plus lnd's channel RPCs."""

    d: ChannelNode

    def _find(self, point: ln.ChannelPoint) -> ManagedChannel:
        outpoint = _parse_channel_point(point)
        for mc in self.d.channels.channels.values():
            c = mc.channel.commitments
            if c is not None and c.params.funding_outpoint == outpoint:
                return mc
        raise LnRpcError(grpc.StatusCode.NOT_FOUND, "unable to find channel")

    # --- opening --------------------------------------------------------------------------------------

    async def _open(self, request: ln.OpenChannelRequest) -> tuple[ManagedChannel, trio.MemoryReceiveChannel[Any]]:
        node = self.d
        pubkey = bytes(request.node_pubkey) if request.node_pubkey else b""
        if not pubkey and request.node_pubkey_string:
            try:
                pubkey = bytes.fromhex(request.node_pubkey_string)
            except ValueError:
                raise invalid("node_pubkey_string is not hex") from None
        if len(pubkey) != 33:
            raise invalid("invalid node pubkey: must be 33 bytes")
        if request.local_funding_amount < MIN_FUNDING_SAT:
            raise invalid(f"channel too small: local_funding_amount must be at least {MIN_FUNDING_SAT} sat")
        if request.push_sat < 0 or request.push_sat >= request.local_funding_amount:
            raise invalid("amount pushed to remote peer must be below the local funding amount")
        if request.close_address:
            address_to_script(request.close_address, node.params.address_prefixes)
        if pubkey.hex() not in node.peers:
            raise LnRpcError(grpc.StatusCode.FAILED_PRECONDITION, f"peer {pubkey.hex()} is not online")
        if request.sat_per_vbyte:
            feerate_per_kw = max(int(request.sat_per_vbyte) * 250, 253)
        else:
            feerate_per_kw = max(await node.chain.estimate_fee_sat_kvb(request.target_conf or 6) // 4, 253)
        try:
            mc = await node.channels.open_channel(pubkey, request.local_funding_amount, request.push_sat * 1000,
                                                  feerate_per_kw, announce=not request.private)
        except ChannelError as e:
            raise LnRpcError(grpc.StatusCode.FAILED_PRECONDITION, e.reason) from None
        send, recv = trio.open_memory_channel[Any](100)
        mc.listeners.append(send)
        return mc, recv

    async def _wait_event(self, recv: trio.MemoryReceiveChannel[Any], kinds: set[str], timeout: float) -> Any:
        with trio.move_on_after(timeout):
            async for event in recv:
                if event[0] == "failed":
                    raise LnRpcError(grpc.StatusCode.ABORTED, f"channel failed: {event[1]}")
                if event[0] in kinds:
                    return event
        raise LnRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, f"timed out waiting for {'/'.join(sorted(kinds))}")

    def OpenChannelSync(self, request: ln.OpenChannelRequest, context: grpc.ServicerContext) -> ln.ChannelPoint:
        async def fn() -> ln.ChannelPoint:
            mc, recv = await self._open(request)
            _, outpoint = await self._wait_event(recv, {"pending"}, OPEN_TIMEOUT_S)
            return ln.ChannelPoint(funding_txid_bytes=outpoint.txid, output_index=outpoint.index)
        return self.run(context, fn)

    def OpenChannel(self, request: ln.OpenChannelRequest, context: grpc.ServicerContext) -> Iterator[ln.OpenStatusUpdate]:
        mc, recv = self.run(context, lambda: self._open(request))
        _, outpoint = self.run(context, lambda: self._wait_event(recv, {"pending"}, OPEN_TIMEOUT_S))
        yield ln.OpenStatusUpdate(chan_pending=ln.PendingUpdate(txid=outpoint.txid, output_index=outpoint.index),
                                  pending_chan_id=mc.channel.temporary_channel_id)
        while context.is_active():
            try:
                self.run(context, lambda: self._wait_event(recv, {"open"}, 5.0))
            except Exception:
                if context.is_active() and mc.channel.state not in (S.FAILED, S.ABANDONED):
                    continue
                raise
            yield ln.OpenStatusUpdate(chan_open=ln.ChannelOpenUpdate(channel_point=ln.ChannelPoint(
                funding_txid_bytes=outpoint.txid, output_index=outpoint.index)))
            return

    # --- listing --------------------------------------------------------------------------------------

    def _pb_channel(self, mc: ManagedChannel) -> ln.Channel:
        ch = mc.channel
        c = ch.commitments
        assert c is not None
        spec = c.local_commit.spec
        p = c.params
        local, remote, fee, weight = _balances(mc)
        pending = [ln.HTLC(incoming=h.direction is HtlcDirection.RECEIVED, amount=h.add.amount_msat // 1000,
                           hash_lock=h.add.payment_hash, expiration_height=h.add.cltv_expiry, htlc_index=h.add.id)
                   for h in spec.htlcs]
        return ln.Channel(
            active=ch.state is S.NORMAL and mc.peer.hex() in self.d.peers,
            remote_pubkey=mc.peer.hex(), channel_point=_channel_point(mc), chan_id=ch.short_channel_id or 0,
            capacity=p.funding_sat, local_balance=local, remote_balance=remote, commit_fee=fee, commit_weight=weight,
            fee_per_kw=spec.feerate_per_kw, num_updates=c.local_commit.index, pending_htlcs=pending,
            csv_delay=p.remote.to_self_delay, private=not ch.config.announce_channel, initiator=ch.is_funder,
            chan_status_flags="ChanStatusDefault", local_chan_reserve_sat=p.remote.channel_reserve_sat,
            remote_chan_reserve_sat=p.local.channel_reserve_sat, static_remote_key=True,
            commitment_type=_commitment_type(mc),
            unsettled_balance=sum(h.add.amount_msat for h in spec.htlcs) // 1000,
        )

    def ListChannels(self, request: ln.ListChannelsRequest, context: grpc.ServicerContext) -> ln.ListChannelsResponse:
        async def fn() -> ln.ListChannelsResponse:
            out = []
            for mc in self.d.channels.channels.values():
                if mc.channel.state is not S.NORMAL or mc.channel.commitments is None:
                    continue
                channel = self._pb_channel(mc)
                if (request.active_only and not channel.active) or (request.inactive_only and channel.active):
                    continue
                if request.peer and bytes(request.peer) != mc.peer:
                    continue
                out.append(channel)
            return ln.ListChannelsResponse(channels=out)
        return self.run(context, fn)

    def _pending(self, mc: ManagedChannel) -> ln.PendingChannelsResponse.PendingChannel:
        c = mc.channel.commitments
        assert c is not None
        local, remote, _, _ = _balances(mc)
        return ln.PendingChannelsResponse.PendingChannel(
            remote_node_pub=mc.peer.hex(), channel_point=_channel_point(mc), capacity=c.params.funding_sat,
            local_balance=local, remote_balance=remote,
            initiator=ln.INITIATOR_LOCAL if mc.channel.is_funder else ln.INITIATOR_REMOTE,
            commitment_type=_commitment_type(mc), private=not mc.channel.config.announce_channel,
        )

    def PendingChannels(self, request: ln.PendingChannelsRequest, context: grpc.ServicerContext) -> ln.PendingChannelsResponse:
        async def fn() -> ln.PendingChannelsResponse:
            resp = ln.PendingChannelsResponse()
            for mc in self.d.channels.channels.values():
                state, c = mc.channel.state, mc.channel.commitments
                if c is None or mc.closing_txid is not None and mc.watch is not None and mc.watch.spent_by:
                    continue
                if state in _PENDING_OPEN:
                    w = mc.watch
                    confs = 0 if w is None or w.confirmed_height is None else self.d.tip_height - w.confirmed_height + 1
                    resp.pending_open_channels.append(ln.PendingChannelsResponse.PendingOpenChannel(
                        channel=self._pending(mc), fee_per_kw=c.local_commit.spec.feerate_per_kw,
                        confirmations_until_active=max(mc.channel.minimum_depth - confs, 0)))
                elif state in _WAITING_CLOSE:
                    resp.waiting_close_channels.append(ln.PendingChannelsResponse.WaitingCloseChannel(
                        channel=self._pending(mc), limbo_balance=c.local_commit.spec.to_local_msat // 1000,
                        closing_txid=mc.closing_txid[::-1].hex() if mc.closing_txid else ""))
                elif state is S.FORCE_CLOSING or state is S.FAILED:
                    pub = mc.published
                    resp.pending_force_closing_channels.append(ln.PendingChannelsResponse.ForceClosedChannel(
                        channel=self._pending(mc), closing_txid=pub.commitment_tx.txid_hex() if pub else "",
                        limbo_balance=c.local_commit.spec.to_local_msat // 1000))
            resp.total_limbo_balance = sum(x.limbo_balance for x in resp.waiting_close_channels) + sum(
                x.limbo_balance for x in resp.pending_force_closing_channels)
            return resp
        return self.run(context, fn)

    def ChannelBalance(self, request: ln.ChannelBalanceRequest, context: grpc.ServicerContext) -> ln.ChannelBalanceResponse:
        async def fn() -> ln.ChannelBalanceResponse:
            local = remote = pend_local = pend_remote = 0
            for mc in self.d.channels.channels.values():
                c = mc.channel.commitments
                if c is None:
                    continue
                spec = c.local_commit.spec
                if mc.channel.state is S.NORMAL:
                    local += spec.to_local_msat
                    remote += spec.to_remote_msat
                elif mc.channel.state in _PENDING_OPEN:
                    pend_local += spec.to_local_msat
                    pend_remote += spec.to_remote_msat
            return ln.ChannelBalanceResponse(
                balance=local // 1000, pending_open_balance=pend_local // 1000,
                local_balance=ln.Amount(sat=local // 1000, msat=local),
                remote_balance=ln.Amount(sat=remote // 1000, msat=remote),
                unsettled_local_balance=ln.Amount(), unsettled_remote_balance=ln.Amount(),
                pending_open_local_balance=ln.Amount(sat=pend_local // 1000, msat=pend_local),
                pending_open_remote_balance=ln.Amount(sat=pend_remote // 1000, msat=pend_remote),
            )
        return self.run(context, fn)

    # --- closing ------------------------------------------------------------------------------------------

    def CloseChannel(self, request: ln.CloseChannelRequest, context: grpc.ServicerContext) -> Iterator[ln.CloseStatusUpdate]:
        async def start() -> tuple[ManagedChannel, trio.MemoryReceiveChannel[Any], bytes]:
            mc = self._find(request.channel_point)
            send, recv = trio.open_memory_channel[Any](100)
            mc.listeners.append(send)
            manager = self.d.channels
            try:
                if request.force:
                    await manager.command(mc, lambda ch: ch.force_close())
                    assert mc.published is not None
                    return mc, recv, mc.published.commitment_tx.txid
                script = None
                if request.delivery_address:
                    script = address_to_script(request.delivery_address, self.d.params.address_prefixes)
                rate = int(request.sat_per_vbyte) * 250 if request.sat_per_vbyte else None
                await manager.command(mc, lambda ch: ch.shutdown(script, rate))
            except ChannelError as e:
                raise LnRpcError(grpc.StatusCode.FAILED_PRECONDITION, e.reason) from None
            _, txid = await self._wait_event(recv, {"closing"}, OPEN_TIMEOUT_S)
            return mc, recv, txid

        mc, recv, txid = self.run(context, start)
        yield ln.CloseStatusUpdate(close_pending=ln.PendingUpdate(txid=txid, output_index=0))
        if request.no_wait:
            return
        while context.is_active():
            try:
                event = self.run(context, lambda: self._wait_event(recv, {"closed"}, 5.0))
            except Exception:
                if context.is_active():
                    continue
                raise
            yield ln.CloseStatusUpdate(chan_close=ln.ChannelCloseUpdate(closing_txid=event[1], success=True))
            return

    def ClosedChannels(self, request: ln.ClosedChannelsRequest, context: grpc.ServicerContext) -> ln.ClosedChannelsResponse:
        async def fn() -> ln.ClosedChannelsResponse:
            wanted = {name for name, on in (("COOPERATIVE_CLOSE", request.cooperative),
                                            ("LOCAL_FORCE_CLOSE", request.local_force),
                                            ("REMOTE_FORCE_CLOSE", request.remote_force),
                                            ("BREACH_CLOSE", request.breach)) if on}
            out = []
            for closed in self.d.channel_store.closed_channels():
                s = closed.summary
                kind = s.get("close_type", "COOPERATIVE_CLOSE")
                if wanted and kind not in wanted:
                    continue
                out.append(ln.ChannelCloseSummary(
                    channel_point=s.get("channel_point", ""), chan_id=s.get("chan_id", 0),
                    chain_hash=self.d.params.genesis_hash[::-1].hex(), closing_tx_hash=s.get("closing_tx_hash", ""),
                    remote_pubkey=s.get("remote_pubkey", ""), capacity=s.get("capacity", 0),
                    close_height=s.get("close_height", 0), settled_balance=s.get("local_balance", 0),
                    close_type=ln.ChannelCloseSummary.ClosureType.Value(kind),
                    open_initiator=ln.INITIATOR_LOCAL if s.get("initiator") else ln.INITIATOR_REMOTE,
                ))
            return ln.ClosedChannelsResponse(channels=out)
        return self.run(context, fn)


class BackupLightningServicer(ChannelLightningServicer):
    """Static channel backups and channel events, as lnd serves them."""

    def _seed(self) -> bytes:
        return bytes.fromhex(self.d.wallet.seed_hex())

    def ExportAllChannelBackups(self, request: ln.ChanBackupExportRequest, context: grpc.ServicerContext) -> ln.ChanBackupSnapshot:
        async def fn() -> ln.ChanBackupSnapshot:
            records = self.d.channels.backup_records()
            seed = self._seed()
            singles = []
            points = []
            for r in records:
                point = ln.ChannelPoint(funding_txid_bytes=r.outpoint.txid, output_index=r.output_index)
                points.append(point)
                singles.append(ln.ChannelBackup(chan_point=point, chan_backup=encrypt_backups(seed, [r])))
            return ln.ChanBackupSnapshot(
                single_chan_backups=ln.ChannelBackups(chan_backups=singles),
                multi_chan_backup=ln.MultiChanBackup(chan_points=points, multi_chan_backup=encrypt_backups(seed, records)),
            )
        return self.run(context, fn)

    def _records(self, request: ln.RestoreChanBackupRequest) -> list[ChannelBackupRecord]:
        seed = self._seed()
        try:
            if request.HasField("multi_chan_backup"):
                return decrypt_backups(seed, bytes(request.multi_chan_backup))
            return [r for b in request.chan_backups.chan_backups for r in decrypt_backups(seed, bytes(b.chan_backup))]
        except BackupError as e:
            raise invalid(str(e)) from None

    def RestoreChannelBackups(self, request: ln.RestoreChanBackupRequest, context: grpc.ServicerContext) -> ln.RestoreBackupResponse:
        async def fn() -> ln.RestoreBackupResponse:
            records = self._records(request)
            if not records:
                raise invalid("no channel backups given")
            try:
                n = await self.d.channels.restore(records)
            except ChannelError as e:
                raise invalid(e.reason) from None
            return ln.RestoreBackupResponse(num_restored=n)
        return self.run(context, fn)

    def VerifyChanBackup(self, request: ln.ChanBackupSnapshot, context: grpc.ServicerContext) -> ln.VerifyChanBackupResponse:
        async def fn() -> ln.VerifyChanBackupResponse:
            seed = self._seed()
            try:
                if request.HasField("multi_chan_backup"):
                    decrypt_backups(seed, bytes(request.multi_chan_backup.multi_chan_backup))
                for b in request.single_chan_backups.chan_backups:
                    decrypt_backups(seed, bytes(b.chan_backup))
            except BackupError as e:
                raise invalid(str(e)) from None
            return ln.VerifyChanBackupResponse()
        return self.run(context, fn)

    def SubscribeChannelEvents(self, request: ln.ChannelEventSubscription, context: grpc.ServicerContext) -> Iterator[ln.ChannelEventUpdate]:
        async def subscribe() -> trio.MemoryReceiveChannel[Any]:
            send, recv = trio.open_memory_channel[Any](1000)
            self.d.channels.event_subscribers.append(send)
            return recv

        recv = self.run(context, subscribe)

        async def next_event() -> Any:
            with trio.move_on_after(1.0):
                return await recv.receive()
            return None

        while context.is_active():
            event = self.run(context, next_event)
            if event is None:
                continue
            update = self.run(context, functools.partial(self._event_update, event))
            if update is not None:
                yield update

    async def _event_update(self, event: Any) -> ln.ChannelEventUpdate | None:
        kind, channel_id = event[0], event[1]
        mc = self.d.channels.find(channel_id)
        if kind == "open" and mc is not None and mc.channel.commitments is not None:
            return ln.ChannelEventUpdate(type=ln.ChannelEventUpdate.OPEN_CHANNEL, open_channel=self._pb_channel(mc))
        if kind == "closed" and mc is not None:
            s = self.d.channels.summary(mc)
            return ln.ChannelEventUpdate(type=ln.ChannelEventUpdate.CLOSED_CHANNEL, closed_channel=ln.ChannelCloseSummary(
                channel_point=s.get("channel_point", ""), chan_id=s.get("chan_id", 0), remote_pubkey=s["remote_pubkey"],
                capacity=s.get("capacity", 0), close_type=ln.ChannelCloseSummary.ClosureType.Value(event[2])))
        return None
