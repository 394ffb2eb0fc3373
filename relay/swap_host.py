"""The swap daemon's link to one chain node (`canal chaind`): what the swap effects need of a chain.

:class:`ChainLink` funds contracts from the node's wallet (``SendToAddress``),
looks for an earlier payment to a contract before paying again (blocks from a
height, then the mempool: ``FundContract`` is not idempotent), broadcasts
redeems and refunds, and turns the node's notification streams
(``RegisterConfirmations``, ``RegisterSpend`` with the mempool, ``SubscribeBlocks``)
into the events of :mod:`relay.swap_types`. Heights are also polled, so a
dropped stream or a restarted node delays an event, never loses it; a watch
whose stream ends is registered again (the node replays history from the
height hint).

grpcio is blocking: unary calls run in worker threads, and each stream is
read by a thread that hands its items to the trio loop.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import trio

from base_chain.address import address_to_script, script_to_address
from base_chain.params import ChainParams, get_params
from base_chain.tx import OutPoint, Transaction
from channels.chainclient import BroadcastRejected, ChainClient, ChainUnavailable, forward_stream
from proto import chain_pb2 as pb

from .swap_types import Event, SpendObserved, SpendReorged, TxConfirmed, TxReorged

__all__ = ["ChainLink", "ChainSettings", "BroadcastRejected", "ChainUnavailable", "RETRY_S"]

log = logging.getLogger("canal.swapd.chain")
RETRY_S = 1.0
"""Pause before a failed call or a dropped stream is tried again."""


@dataclass(frozen=True, slots=True)
class ChainSettings:
    """How to reach one chain node."""

    name: str
    datadir: Path
    host: str | None = None
    port: int | None = None
    min_conf: int = 1


class ChainLink:
    def __init__(self, settings: ChainSettings) -> None:
        self.settings = settings
        self.params: ChainParams = get_params(settings.name)
        host = settings.host if settings.host is not None else "127.0.0.1"
        self.client = ChainClient(settings.datadir, host=host, port=settings.port)
        self.height = -1
        """The tip last seen (-1: not yet)."""
        self._calls: list[Any] = []

    @property
    def name(self) -> str:
        return self.settings.name

    def close(self) -> None:
        for call in self._calls:
            call.cancel()
        self.client.close()

    async def check(self) -> None:
        """The node must be on this chain; raises ValueError if not, ChainUnavailable if unreachable."""
        info = await self.client.info()
        if info.chain != self.name:
            raise ValueError(f"the node at {self.settings.datadir} is on chain {info.chain!r}, not {self.name!r}")
        self.height = int(info.blocks)

    async def poll_height(self) -> int:
        self.height = await self.client.height()
        return self.height

    async def new_script(self, label: str) -> bytes:
        """A fresh address of the node's wallet, as an output script."""
        r = await self.client._call(lambda: self.client.stub.GetNewAddress(pb.GetNewAddressRequest(label=label),
                                                                           timeout=10))
        return address_to_script(r.address, self.params.address_prefixes)

    async def balance(self) -> int:
        """The node wallet's confirmed balance in sat."""
        r = await self.client._call(lambda: self.client.stub.GetBalance(pb.GetBalanceRequest(), timeout=10))
        return int(r.confirmed_sat)

    async def fee_rate(self) -> int:
        return await self.client.estimate_fee_sat_kvb(6)

    # --- funding -----------------------------------------------------------------------------------

    async def find_payment(self, script_pubkey: bytes, amount_sat: int, from_height: int) -> Transaction | None:
        """A transaction paying exactly `amount_sat` to `script_pubkey`: in a block from `from_height`
        up, or in the mempool; None if there is none."""
        def pays(tx: Transaction) -> bool:
            return any(o.script_pubkey == script_pubkey and o.amount_sat == amount_sat for o in tx.outputs)

        # The mempool first, then the blocks up to the tip read after it: a payment mined meanwhile is in those.
        mempool = await self.client._call(lambda: self.client.stub.GetRawMempool(pb.GetRawMempoolRequest(),
                                                                                  timeout=10))
        for txid in mempool.txids:
            found = await self.client.get_tx(txid)
            if found is not None and pays(found[0]):
                return found[0]
        tip = await self.client.height()
        for height in range(max(0, from_height), tip + 1):
            block = await self.client.block(await self.client.block_hash(height))
            for tx in block.transactions:
                if pays(tx):
                    return tx
        return None

    async def pay(self, script_pubkey: bytes, amount_sat: int) -> Transaction:
        """Pay `amount_sat` to `script_pubkey` from the node's wallet (signed and published by the node)."""
        address = script_to_address(script_pubkey, self.params.address_prefixes)
        if address is None:
            raise ValueError("the contract's script has no address")
        sent = await self.client._call(lambda: self.client.stub.SendToAddress(
            pb.SendToAddressRequest(address=address, amount_sat=amount_sat), timeout=30))
        found = await self.client.get_tx(sent.txid)
        if found is None:
            raise ChainUnavailable(f"the node does not know the transaction {sent.txid} it just sent")
        return found[0]

    async def broadcast(self, tx: Transaction) -> str:
        return await self.client.broadcast(tx)

    # --- notifications -----------------------------------------------------------------------------

    async def _stream(self, open_call: Callable[[], Any]) -> AsyncIterator[Any]:
        """The items of one server stream; ends when the stream does (the caller registers again)."""
        send, recv = trio.open_memory_channel[Any](1000)
        token = trio.lowlevel.current_trio_token()
        call = await trio.to_thread.run_sync(open_call)
        self._calls.append(call)

        forward_stream(call, send, token, self.name)
        try:
            async with recv:
                async for item in recv:
                    yield item
        finally:
            call.cancel()
            if call in self._calls:
                self._calls.remove(call)

    async def blocks(self) -> AsyncIterator[None]:
        """Yields whenever the node reports a block (connected or disconnected); reconnects forever."""
        while True:
            try:
                async for _ in self._stream(lambda: self.client.stub.SubscribeBlocks(pb.SubscribeBlocksRequest())):
                    yield None
            except grpc.RpcError as e:
                log.info("%s: cannot subscribe to blocks: %s", self.name, e.details())
            await trio.sleep(RETRY_S)

    async def confirmations(self, txid: bytes, script_pubkey: bytes, height_hint: int) -> AsyncIterator[Event]:
        """TxConfirmed (as soon as mined: the swap core counts the depth) and TxReorged for `txid`."""
        req = pb.ConfirmationRequest(txid=txid[::-1].hex(), script_pub_key=script_pubkey.hex(), num_confs=1,
                                     height_hint=height_hint)
        while True:
            try:
                async for ev in self._stream(lambda: self.client.stub.RegisterConfirmations(req)):
                    if ev.kind == pb.ConfirmationEvent.CONFIRMED:
                        yield TxConfirmed(self.name, txid, int(ev.block_height))
                    elif ev.kind == pb.ConfirmationEvent.REORGED:
                        log.info("%s: %s reorged out of block %d", self.name, txid[::-1].hex(), ev.block_height)
                        yield TxReorged(self.name, txid)
            except grpc.RpcError as e:
                log.info("%s: cannot watch %s: %s", self.name, txid[::-1].hex(), e.details())
            await trio.sleep(RETRY_S)

    async def spends(self, outpoint: OutPoint, script_pubkey: bytes, height_hint: int) -> AsyncIterator[Event]:
        """SpendObserved (mempool: block_height None) and SpendReorged for `outpoint`."""
        req = pb.SpendRequest(txid=outpoint.txid[::-1].hex(), vout=outpoint.index,
                              script_pub_key=script_pubkey.hex(), height_hint=height_hint, include_mempool=True)
        while True:
            try:
                async for ev in self._stream(lambda: self.client.stub.RegisterSpend(req)):
                    if ev.kind == pb.SpendEvent.REORGED:
                        log.info("%s: the spend of %s reorged out", self.name, outpoint)
                        yield SpendReorged(self.name, outpoint)
                        continue
                    tx = Transaction.from_hex(ev.spending_tx)
                    height = int(ev.spending_height) if ev.kind == pb.SpendEvent.SPENT else None
                    yield SpendObserved(self.name, outpoint, tx, height)
            except grpc.RpcError as e:
                log.info("%s: cannot watch the spend of %s: %s", self.name, outpoint, e.details())
            await trio.sleep(RETRY_S)
