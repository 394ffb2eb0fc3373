"""`canal relayd`: the SPV relay of one chain, a trio shell around :class:`relay.spv.HeaderChain`.

It follows a chain node (`canal chaind`) over gRPC with the node's read-only
macaroon and keeps the node's headers -- validated, never trusted -- in
``relay.sqlite`` in its data dir. The design is deliberately simple:

- **The node's chain is polled, the block stream only wakes the poller.** A
  catch-up asks the node for its tip; if that is not a header we know, it finds
  the highest height where the node's chain meets ours (exponential steps back,
  then a binary search: O(log n) calls, for reorgs of any depth) and downloads
  the headers above it in batches of up to 2,000 (GetBlockHash + GetBlockHeader).
  ``SubscribeBlocks`` events trigger a catch-up at once; a poll every
  ``--poll-interval`` seconds catches anything a dropped stream missed. Nothing
  depends on the events' content, so lost, repeated or reordered events are
  harmless, and a node restart (new port, new stream) is just a reconnection.
- **Persist before reporting.** Every :class:`~relay.spv.HeaderUpdate` is
  written in one sqlite transaction (WAL, synchronous=FULL) together with the
  status values, so a relayd killed at any instant restarts on a consistent
  chain and resumes from it.
- **No server.** Clients (``canal relay``) read ``relay.sqlite`` directly --
  sqlite's WAL gives them a consistent snapshot while relayd writes -- and
  ``relay.json`` says which process owns the data dir.

The relay starts from the chain's genesis, or from a trusted checkpoint given as
``--checkpoint HEIGHT:HASH``: the node supplies the headers that end there, and
the hash chain pins every one of them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
import trio

from base_chain.logs import setup_logging
from base_chain.block import BlockHeader
from base_chain.params import ChainParams, chain_names, get_params
from base_chain.rpc import channel_for
from proto import chain_pb2 as pb
from proto import chain_pb2_grpc as pb_grpc

from .spv import DEFAULT_MAX_STALE_HEADERS, Checkpoint, HeaderChain, HeaderStore, HeaderUpdate
from base_chain.process import stop_on_signals

__all__ = [
    "RelayDaemon",
    "RelayError",
    "NodeClient",
    "RELAY_DB_FILE",
    "RELAY_INFO_FILE",
    "MAX_HEADERS_PER_BATCH",
    "main",
]

log = logging.getLogger("canal.relayd")
T = TypeVar("T")

RELAY_DB_FILE = "relay.sqlite"
RELAY_INFO_FILE = "relay.json"
MAX_HEADERS_PER_BATCH = 2000
"""Core's MAX_HEADERS_RESULTS: headers fetched and validated per step."""
RPC_TIMEOUT_S = 30.0


class RelayError(Exception):
    """A condition relayd cannot recover from by retrying (a data dir of another chain, a bad checkpoint)."""


class _Retry(Exception):
    """The node's chain moved while we read it: start the catch-up again."""


# --------------------------------------------------------------------------
# the chain node, blocking (run in worker threads)
# --------------------------------------------------------------------------


class NodeClient:
    """Blocking reads from a chain node's ChainService, with its read-only macaroon."""

    def __init__(self, chain_datadir: Path, host: str | None = None, port: int | None = None) -> None:
        self._channel = channel_for(chain_datadir, host=host, port=port, macaroon="readonly")
        self.stub = pb_grpc.ChainServiceStub(self._channel)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self._channel.close()

    def height(self) -> int:
        return int(self.stub.GetBlockCount(pb.GetBlockCountRequest(), timeout=RPC_TIMEOUT_S).count)

    def hash_at(self, height: int) -> bytes | None:
        """The node's best-chain hash at ``height`` (internal order), None above its tip."""
        try:
            r = self.stub.GetBlockHash(pb.GetBlockHashRequest(height=height), timeout=RPC_TIMEOUT_S)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.INVALID_ARGUMENT:  # "Block height out of range"
                return None
            raise
        return bytes.fromhex(r.hash)[::-1]

    def header(self, block_hash: bytes) -> BlockHeader:
        r = self.stub.GetBlockHeader(pb.GetBlockHeaderRequest(blockhash=block_hash[::-1].hex(), verbose=False),
                                     timeout=RPC_TIMEOUT_S)
        header = BlockHeader.from_hex(r.hex)
        if header.hash != block_hash:
            raise ValueError(f"the node answered block {block_hash[::-1].hex()} with header {header.hash_hex()}")
        return header

    def chain_work(self, block_hash: bytes) -> int:
        r = self.stub.GetBlockHeader(pb.GetBlockHeaderRequest(blockhash=block_hash[::-1].hex(), verbose=True),
                                     timeout=RPC_TIMEOUT_S)
        return int(r.chainwork, 16)

    def headers(self, start: int, stop: int) -> list[BlockHeader]:
        """The node's best-chain headers at heights ``start..stop`` (fewer if its tip is lower)."""
        out: list[BlockHeader] = []
        for height in range(start, stop + 1):
            block_hash = self.hash_at(height)
            if block_hash is None:
                break
            out.append(self.header(block_hash))
        return out

    def subscribe_blocks(self) -> Any:
        return self.stub.SubscribeBlocks(pb.SubscribeBlocksRequest())


# --------------------------------------------------------------------------
# the daemon
# --------------------------------------------------------------------------


class RelayDaemon:
    def __init__(
        self,
        params: ChainParams,
        datadir: Path,
        chain_datadir: Path,
        *,
        chain_host: str | None = None,
        chain_port: int | None = None,
        checkpoint: tuple[int, bytes] | None = None,
        poll_interval_s: float = 2.0,
        max_stale_headers: int = DEFAULT_MAX_STALE_HEADERS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.params = params
        self.datadir = datadir
        self.chain_datadir = chain_datadir
        self.chain_host = chain_host
        self.chain_port = chain_port
        self.checkpoint = checkpoint
        self.poll_interval_s = poll_interval_s
        self.max_stale_headers = max_stale_headers
        self.clock = clock
        self.store: HeaderStore
        self.chain: HeaderChain | None = None
        self._stop = trio.Event()
        self._error: RelayError | None = None

    def now(self) -> int:
        return int(self.clock())

    # --- lifecycle -----------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.store = HeaderStore(self.datadir / RELAY_DB_FILE)
        try:
            self._open_chain()
            self._write_info()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stop_on_signals, self.request_stop, log)
                nursery.start_soon(self._follow)
                log.info("%s relay at height %d, following the node of %s, datadir %s", self.params.name,
                         self.chain.height if self.chain else -1, self.chain_datadir, self.datadir)
                task_status.started(self)
                await self._stop.wait()
                nursery.cancel_scope.cancel()
        finally:
            self.store.close()
            log.info("stopped")
        if self._error is not None:
            raise self._error

    async def run_embedded(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Follow the node inside another daemon's trio loop (``canal notaryd``'s SPV view).

        As :meth:`run`, without the signal handling and ``relay.json`` (the host owns
        the process); ``self.chain`` is read by the host on the same trio thread.
        Cancel the host's scope, or call :meth:`request_stop`, to stop.
        """
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.store = HeaderStore(self.datadir / RELAY_DB_FILE)
        try:
            self._open_chain()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._follow)
                task_status.started(self)
                await self._stop.wait()
                nursery.cancel_scope.cancel()
        finally:
            self.store.close()
        if self._error is not None:
            raise self._error

    def request_stop(self) -> None:
        self._stop.set()

    def _fail(self, error: RelayError) -> None:
        log.error("%s", error)
        self._error = error
        self.request_stop()


    def _open_chain(self) -> None:
        if self.store.is_empty():
            if self.checkpoint is None:
                self._init_chain(HeaderChain(self.params, max_stale_headers=self.max_stale_headers))
            return  # a checkpoint's headers come from the node, once it answers
        try:
            self.chain = self.store.load(self.params, max_stale_headers=self.max_stale_headers)
        except ValueError as e:
            raise RelayError(str(e)) from None
        if self.checkpoint is not None:
            height, block_hash = self.checkpoint
            cp = self.chain.checkpoint
            if (cp.height, cp.hash) != (height, block_hash):
                raise RelayError(f"{self.datadir} was started from checkpoint {cp.height}:{cp.hash[::-1].hex()}, "
                                 f"not {height}:{block_hash[::-1].hex()}")

    def _init_chain(self, chain: HeaderChain) -> None:
        self.store.save(chain)
        self.store.set_meta({"created": str(self.now()), "last_update": str(self.now())})
        self.chain = chain

    def _write_info(self) -> None:
        info = {"chain": self.params.name, "pid": os.getpid(), "datadir": str(self.datadir),
                "chain_datadir": str(self.chain_datadir), "started": self.now()}
        tmp = self.datadir / (RELAY_INFO_FILE + ".tmp")
        tmp.write_text(json.dumps(info))
        tmp.replace(self.datadir / RELAY_INFO_FILE)

    # --- following the node ------------------------------------------------------------------

    async def _follow(self) -> None:
        backoff = 0.5
        while True:
            client: NodeClient | None = None
            try:
                client = NodeClient(self.chain_datadir, self.chain_host, self.chain_port)
                wake_send, wake_recv = trio.open_memory_channel[None](1)
                try:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._watch_blocks, client, wake_send)
                        while True:
                            await self._catch_up(client)
                            backoff = 0.5
                            with trio.move_on_after(self.poll_interval_s):
                                await wake_recv.receive()
                except BaseExceptionGroup as group:
                    raise _first_error(group) from None
            except RelayError as e:
                self._fail(e)
                return
            except (grpc.RpcError, OSError, ValueError, ConnectionError) as e:
                message = _describe(e)
                log.warning("chain node: %s; retrying in %.1fs", message, backoff)
                self._set_status({"last_error": message, "synced": "0"})
            finally:
                if client is not None:
                    client.close()
            await trio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    async def _watch_blocks(self, client: NodeClient, wake: trio.MemorySendChannel[None]) -> None:
        """Turn each SubscribeBlocks event into a wake-up (coalesced); raise when the stream ends."""
        token = trio.lowlevel.current_trio_token()
        call = client.subscribe_blocks()

        def poke() -> None:
            try:
                wake.send_nowait(None)
            except trio.WouldBlock:
                pass  # a catch-up is already due

        def pump() -> None:
            for _ in call:
                try:
                    trio.from_thread.run_sync(poke, trio_token=token)
                except trio.RunFinishedError:
                    return

        try:
            await trio.to_thread.run_sync(pump, abandon_on_cancel=True)
        finally:
            call.cancel()
        raise ConnectionError("the node's block stream ended")

    async def _rpc(self, fn: Callable[[], T]) -> T:
        # A blocking call may take up to RPC_TIMEOUT_S; on cancellation (stop) leave it to fail on the
        # closed channel rather than wait for it.
        return await trio.to_thread.run_sync(fn, abandon_on_cancel=True)

    async def _catch_up(self, client: NodeClient) -> None:
        """Bring the header chain to the node's tip (or as far as its headers are valid)."""
        if self.chain is None:
            await self._init_from_checkpoint(client)
            if self.chain is None:
                return
        retries = 0
        while True:
            chain = self.chain
            node_height = await self._rpc(client.height)
            node_tip = await self._rpc(lambda: client.hash_at(node_height))
            status = {"node_height": str(node_height), "last_poll": str(self.now())}
            if node_tip is not None:
                status["node_best"] = node_tip[::-1].hex()
            if node_tip is not None and node_tip in chain:
                # Either we are at its tip, or we know a chain with at least as much work.
                self._set_status({**status, "synced": "1" if node_tip == chain.tip.hash else "0", "last_error": ""})
                return
            try:
                if node_tip is None:
                    raise _Retry("the node's tip moved")
                fork = await self._find_fork(client, node_height)
                stop = min(node_height, fork + MAX_HEADERS_PER_BATCH)
                headers = await self._rpc(lambda: client.headers(fork + 1, stop))
                if not headers:
                    raise _Retry("the node's tip moved")
                update = chain.add_headers(headers, self.now())
                self._persist(update, status)
                self._log_update(update)
                if set(update.evicted).intersection(r.hash for r in update.accepted):
                    # The node's branch has less work than ours and more headers than we keep off the
                    # best chain: reading on would fetch the same headers again.
                    self._set_status({"synced": "0", "last_error": "the node follows a branch with less work"})
                    return
                if update.rejected is not None:
                    e = update.rejected
                    if e.reason != "prev-blk-not-found":
                        message = (f"the node's header {e.block_hash[::-1].hex()} is invalid: {e.reason}"
                                   + (f" ({e.debug})" if e.debug else ""))
                        log.warning("%s", message)
                        self._set_status({"last_error": message, "synced": "0"})
                        return  # try again at the next poll (a time-too-new header may become valid)
                    raise _Retry("the node's chain moved while we read it")
                retries = 0
            except _Retry as e:
                retries += 1
                log.info("%s; reading again", e)
                if retries > 20:
                    return
                await trio.sleep(0.05 * retries)

    async def _find_fork(self, client: NodeClient, node_height: int) -> int:
        """The highest height at which the node's best chain holds a header we know."""
        chain = self.chain
        assert chain is not None

        async def known(height: int) -> bool:
            block_hash = await self._rpc(lambda: client.hash_at(height))
            if block_hash is None:
                raise _Retry("the node's tip moved")
            return block_hash in chain

        floor = chain.checkpoint.height
        height = min(node_height, chain.height)
        unknown = height + 1
        step = 1
        while not await known(height):
            if height <= floor:
                raise ValueError(f"the node's chain does not contain our {'checkpoint' if floor else 'genesis'} "
                                 f"at height {floor}: is it a node of chain {self.params.name}?")
            unknown = height
            height = max(floor, height - step)
            step *= 2
        while unknown - height > 1:
            mid = (height + unknown) // 2
            if await known(mid):
                height = mid
            else:
                unknown = mid
        return height

    async def _init_from_checkpoint(self, client: NodeClient) -> None:
        assert self.checkpoint is not None
        height, block_hash = self.checkpoint
        span = Checkpoint.span(self.params, height)
        headers = await self._rpc(lambda: client.headers(height - span + 1, height))
        if len(headers) < span:
            self._set_status({"last_error": f"waiting for the node to reach the checkpoint height {height}"})
            return
        if headers[-1].hash != block_hash:
            self._set_status({"last_error": f"the node's block at height {height} is {headers[-1].hash_hex()}, "
                                            f"not the checkpoint {block_hash[::-1].hex()}"})
            return
        work = await self._rpc(lambda: client.chain_work(block_hash))
        try:
            chain = HeaderChain(self.params, Checkpoint(height, tuple(headers), work),
                                max_stale_headers=self.max_stale_headers)
        except ValueError as e:
            raise RelayError(f"bad checkpoint headers from the node: {e}") from None
        self._init_chain(chain)
        log.info("started from checkpoint %d:%s", height, block_hash[::-1].hex())

    # --- persistence and status ---------------------------------------------------------------

    def _persist(self, update: HeaderUpdate, status: dict[str, str]) -> None:
        meta = dict(status)
        if update.changed:
            meta["last_update"] = str(self.now())
        if update.reorg_depth:
            meta["last_reorg_depth"] = str(update.reorg_depth)
            meta["last_reorg_at"] = str(self.now())
            meta["reorgs"] = str(int(self.store.get_meta("reorgs") or 0) + 1)
        if update.rejected is None:
            meta["last_error"] = ""
        self.store.apply(update, meta)

    def _set_status(self, values: dict[str, str]) -> None:
        self.store.set_meta(values)

    def _log_update(self, update: HeaderUpdate) -> None:
        if update.reorg_depth:
            log.info("reorganized %d headers: %s .. %s replaced", update.reorg_depth,
                     update.disconnected[-1].hash_hex(), update.disconnected[0].hash_hex())
        if update.connected:
            log.info("UpdateTip: best=%s height=%d (%d new headers)", update.tip.hash_hex(), update.tip.height,
                     len(update.connected))
        if update.evicted:
            log.info("dropped %d stale headers", len(update.evicted))


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The exception to handle from a nursery's group: a RelayError first, else the first that is not
    a cancellation. A group of cancellations only is re-raised whole, for trio's cancel scopes."""
    rest = group.subgroup(lambda e: not isinstance(e, trio.Cancelled))
    if rest is None:
        return group
    leaves: list[BaseException] = []

    def collect(g: BaseExceptionGroup[BaseException]) -> None:
        for e in g.exceptions:
            if isinstance(e, BaseExceptionGroup):
                collect(e)
            else:
                leaves.append(e)

    collect(rest)
    return next((e for e in leaves if isinstance(e, RelayError)), leaves[0])


def _describe(e: BaseException) -> str:
    if isinstance(e, grpc.RpcError):
        code = e.code() if hasattr(e, "code") else None
        details = e.details() if hasattr(e, "details") else str(e)
        return f"{code.name if code is not None else 'error'}: {details}"
    return str(e) or type(e).__name__


# --------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------


def _parse_checkpoint(s: str) -> tuple[int, bytes]:
    height_s, _, hash_hex = s.partition(":")
    try:
        height = int(height_s)
        block_hash = bytes.fromhex(hash_hex)[::-1]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHT:BLOCKHASH, got {s!r}") from None
    if height < 0 or len(block_hash) != 32:
        raise argparse.ArgumentTypeError(f"expected HEIGHT:BLOCKHASH (64 hex digits), got {s!r}")
    return height, block_hash


def _parse_endpoint(s: str) -> tuple[str, int]:
    host, _, port_s = s.rpartition(":")
    if not host or not port_s.isdigit() or not 0 < int(port_s) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {s!r}")
    return host, int(port_s)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="canal relayd",
                                 description="Follow a chain node's headers as an SPV relay (BTC Relay's role).")
    ap.add_argument("--chain", choices=chain_names(), required=True, help="the chain whose headers are relayed")
    ap.add_argument("--chain-datadir", type=Path, required=True,
                    help="the chain node's data dir (its tls.cert, readonly.macaroon and rpc.json)")
    ap.add_argument("--chain-rpc", type=_parse_endpoint, metavar="HOST:PORT",
                    help="the chain node's gRPC address (default: from its rpc.json)")
    ap.add_argument("--datadir", type=Path, required=True, help="the relay's data dir")
    ap.add_argument("--checkpoint", type=_parse_checkpoint, metavar="HEIGHT:BLOCKHASH",
                    help="start from this trusted block instead of genesis (first start only)")
    ap.add_argument("--poll-interval", type=float, default=2.0, metavar="SECONDS",
                    help="ask the node for its tip at least this often (default 2)")
    ap.add_argument("--max-stale-headers", type=int, default=DEFAULT_MAX_STALE_HEADERS,
                    help=f"headers kept off the best chain (default {DEFAULT_MAX_STALE_HEADERS})")
    ap.add_argument("--debug", action="store_true")
    ns = ap.parse_args(argv)
    setup_logging(ns.datadir, "canal.relayd", ns.debug)
    host, port = ns.chain_rpc if ns.chain_rpc else (None, None)
    daemon = RelayDaemon(get_params(ns.chain), ns.datadir, ns.chain_datadir, chain_host=host, chain_port=port,
                         checkpoint=ns.checkpoint, poll_interval_s=ns.poll_interval,
                         max_stale_headers=ns.max_stale_headers)
    try:
        trio.run(daemon.run)
    except RelayError as e:
        log.error("%s", e)
        return 1
    return 0
