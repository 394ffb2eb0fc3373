"""The channel node's view of the chain: a trio-friendly client of a `canal chaind` over gRPC.

grpcio is blocking, so unary calls run in worker threads (`trio.to_thread`) and
each server stream is read by a thread that hands items to the trio loop
through a memory channel.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
import trio

from base_chain.block import Block
from base_chain.rpc import channel_for
from base_chain.tx import OutPoint, Transaction
from proto import chain_pb2 as pb
from proto import chain_pb2_grpc as pb_grpc

__all__ = ["forward_stream", "ChainClient", "ChainUnavailable", "BroadcastRejected"]

log = logging.getLogger("canal.chainclient")
T = TypeVar("T")


class ChainUnavailable(Exception):
    """The chain node cannot be reached."""


class BroadcastRejected(Exception):
    """The chain node refused a transaction; `reason` is its (Core) reject reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason



def forward_stream(call: Any, send: trio.MemorySendChannel[Any], token: trio.lowlevel.TrioToken, name: str) -> None:
    """Read a gRPC server stream in a daemon thread, forwarding every item into ``send`` on the trio loop.

    ``send`` is closed when the stream ends (cancelled, failed, or the loop gone), so the reader's
    ``async for`` ends and it can register again.
    """

    def pump() -> None:
        try:
            for item in call:
                trio.from_thread.run(send.send, item, trio_token=token)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                log.warning("%s stream ended: %s", name, e.details())
        except (trio.RunFinishedError, trio.BrokenResourceError, trio.ClosedResourceError, trio.Cancelled):
            pass
        finally:
            try:
                trio.from_thread.run_sync(send.close, trio_token=token)
            except trio.RunFinishedError:
                pass

    threading.Thread(target=pump, name=f"{name}-stream", daemon=True).start()


class ChainClient:
    def __init__(self, datadir: Path, host: str = "127.0.0.1", port: int | None = None,
                 macaroon: str | Path = "admin") -> None:
        self._channel = channel_for(datadir, host=host, port=port, macaroon=macaroon)  # type: ignore[arg-type]
        self.stub = pb_grpc.ChainServiceStub(self._channel)
        self._streams: list[Any] = []

    def close(self) -> None:
        for call in self._streams:
            call.cancel()
        self._channel.close()

    async def _call(self, fn: Callable[[], T]) -> T:
        try:
            return await trio.to_thread.run_sync(fn)
        except grpc.RpcError as e:
            if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise ChainUnavailable(str(e.details())) from e
            raise

    async def info(self) -> Any:
        return await self._call(lambda: self.stub.GetBlockchainInfo(pb.GetBlockchainInfoRequest(), timeout=10))

    async def height(self) -> int:
        return int((await self._call(lambda: self.stub.GetBlockCount(pb.GetBlockCountRequest(), timeout=10))).count)

    async def block_hash(self, height: int) -> str:
        r = await self._call(lambda: self.stub.GetBlockHash(pb.GetBlockHashRequest(height=height), timeout=10))
        return str(r.hash)

    async def block(self, block_hash: str) -> Block:
        r = await self._call(lambda: self.stub.GetBlock(pb.GetBlockRequest(blockhash=block_hash, verbosity=0), timeout=30))
        return Block.from_hex(r.hex)

    async def broadcast(self, tx: Transaction) -> str:
        try:
            r = await self._call(
                lambda: self.stub.SendRawTransaction(pb.SendRawTransactionRequest(hexstring=tx.hex()), timeout=30)
            )
        except grpc.RpcError as e:
            details = str(e.details())
            if "txn-already-known" in details or "txn-already-in-mempool" in details:
                return tx.txid_hex()
            raise BroadcastRejected(details) from e
        return str(r.txid)

    async def get_tx(self, txid_hex: str) -> tuple[Transaction, int] | None:
        """A transaction and its confirmations (0 in the mempool), or None if unknown."""
        try:
            r = await self._call(
                lambda: self.stub.GetRawTransaction(pb.GetRawTransactionRequest(txid=txid_hex), timeout=10)
            )
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return Transaction.from_hex(r.hex), int(r.confirmations)

    async def get_txout(self, outpoint: OutPoint, include_mempool: bool = True) -> Any:
        req = pb.GetTxOutRequest(txid=outpoint.txid[::-1].hex(), n=outpoint.index, include_mempool=include_mempool)
        return await self._call(lambda: self.stub.GetTxOut(req, timeout=10))

    async def tx_proof(self, txid_hex: str) -> bytes:
        r = await self._call(lambda: self.stub.GetTxOutProof(pb.GetTxOutProofRequest(txids=[txid_hex]), timeout=10))
        return bytes.fromhex(r.proof)

    async def estimate_fee_sat_kvb(self, target: int = 6) -> int:
        r = await self._call(lambda: self.stub.EstimateFee(pb.EstimateFeeRequest(conf_target=target), timeout=10))
        return max(int(r.feerate_sat_vb * 1000), 1000)

    def stream(self, open_call: Callable[[], Any], send: trio.MemorySendChannel[Any],
               token: trio.lowlevel.TrioToken) -> None:
        """Read a server stream in a daemon thread, forwarding every item into `send` on the trio loop."""
        call = open_call()
        self._streams.append(call)

        forward_stream(call, send, token, "chain")

    def subscribe_blocks(self, send: trio.MemorySendChannel[Any], token: trio.lowlevel.TrioToken) -> None:
        self.stream(lambda: self.stub.SubscribeBlocks(pb.SubscribeBlocksRequest()), send, token)
