"""`canal notaryd`: one peg notary as a process, a trio shell around :class:`relay.notary.Notary`.

Each notary has its own key (``notary.key`` in its data dir, made on first
use), its operator's committee file (:mod:`relay.peg_config`) and its own view
of both chains: a full node client (a ``canal chaind``'s gRPC, read-only
macaroon) of one or both, and -- for the chain given as ``--spv`` -- an SPV
header chain that it follows itself (:meth:`relay.relayd.RelayDaemon.run_embedded`,
headers validated, never trusted). A deposit or reserve coin on the SPV chain is
believed only with a merkle proof (``GetTxOutProof`` bytes, sent by the
coordinator) checked against the notary's own headers; its depth is the depth
of the proven block in that header chain.

``SignRelease`` (``proto/notary.proto``): the handler reads what the core will
ask of the full nodes (tips, the deposit, the reserve coins, the release's
confirmations) on grpcio's thread, then enters the trio loop, where the core
reviews the request against those snapshots and the SPV chain, and -- if it signs --
the new record is committed to ``notary.sqlite`` (WAL, synchronous=FULL)
*before* the answer is returned. Requests are reviewed one at a time on the
trio thread, so two requests for one deposit cannot both be signed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import trio

from base_chain.block import Block
from base_chain.crypto import PrivateKey
from base_chain.params import get_params
from base_chain.rpc import channel_for, make_server, write_rpc_endpoint
from base_chain.rpc.tls import write_atomic
from base_chain.tx import OutPoint, Transaction
from channels.faults import CrashPoint
from proto import chain_pb2 as pb
from proto import chain_pb2_grpc as pb_grpc
from proto import notary_pb2 as npb
from proto import notary_pb2_grpc as npb_grpc

from .attestation import release_binding
from .committee import SweepRequest
from .notary import ChainView, Notary, Refusal, ReleaseRequest, ViewOutput
from .notary_store import STATE_DB_FILE, NotaryStore
from .notary_wire import (
    WireError,
    refusal_to_pb,
    request_from_pb,
    signature_to_pb,
    sweep_request_from_pb,
    sweep_signature_to_pb,
)
from .peg_config import PegConfig, load_peg_config
from .relayd import RelayDaemon
from .spv import HeaderChain, ProofRejected
from base_chain.process import NODE_INFO_FILE, stop_on_signals, write_node_info

__all__ = ["NODE_INFO_FILE", "NOTARY_KEY_FILE", "PERMISSIONS", "NotaryDaemon", "ensure_notary_key"]

log = logging.getLogger("canal.notaryd")
T = TypeVar("T")

NOTARY_KEY_FILE = "notary.key"
RPC_TIMEOUT_S = 20.0
REORG_RESCAN = 100
"""Blocks read again when the last block read was reorganised out."""
MAX_SWEEP_INPUTS = 500
"""Inputs of a sweep read from the node per request (a bigger sweep is refused as missing coins)."""
_SVC = "/canalnotary.Notary/"
PERMISSIONS: dict[str, set[str]] = {
    _SVC + "SignRelease": {"notary:write"},
    _SVC + "Status": {"info:read"},
    _SVC + "SignSweep": {"notary:write"},
}


def ensure_notary_key(datadir: Path) -> PrivateKey:
    """This notary's key, from ``datadir/notary.key`` (hex, mode 0600), made on first use."""
    datadir.mkdir(parents=True, exist_ok=True)
    path = datadir / NOTARY_KEY_FILE
    if not path.exists():
        write_atomic(path, (PrivateKey.generate().to_bytes().hex() + "\n").encode(), 0o600)
    try:
        return PrivateKey(bytes.fromhex(path.read_text().strip()))
    except ValueError as e:
        raise ValueError(f"{path} does not hold a private key: {e}") from None


# --- views of the chains ---------------------------------------------------------------------


class FullNodeReader:
    """Blocking reads from a chain node (run on grpcio's threads, never on the trio thread)."""

    def __init__(self, chain: str, chain_datadir: Path) -> None:
        self.chain = chain
        self.chain_datadir = chain_datadir
        self._channel = channel_for(chain_datadir, macaroon="readonly")
        self.stub = pb_grpc.ChainServiceStub(self._channel)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self._channel.close()

    def hash_at(self, height: int) -> str | None:
        """The best chain's block hash at ``height`` (display hex), None above the tip."""
        try:
            return str(self.stub.GetBlockHash(pb.GetBlockHashRequest(height=height), timeout=RPC_TIMEOUT_S).hash)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.INVALID_ARGUMENT:
                return None
            raise

    def block_at(self, height: int) -> Block | None:
        """The best chain's block at ``height``, None above the tip."""
        h = self.hash_at(height)
        if h is None:
            return None
        raw = self.stub.GetBlock(pb.GetBlockRequest(blockhash=h, verbosity=0), timeout=RPC_TIMEOUT_S).hex
        return Block.from_hex(raw)

    def tip(self) -> tuple[int, str]:
        info = self.stub.GetBlockchainInfo(pb.GetBlockchainInfoRequest(), timeout=RPC_TIMEOUT_S)
        return int(info.blocks), str(info.bestblockhash)

    def confirmations(self, txid: bytes) -> int | None:
        try:
            r = self.stub.GetRawTransaction(pb.GetRawTransactionRequest(txid=txid[::-1].hex()), timeout=RPC_TIMEOUT_S)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return 0 if r.in_mempool else int(r.confirmations)

    def output(self, op: OutPoint) -> ViewOutput | None:
        try:
            r = self.stub.GetRawTransaction(pb.GetRawTransactionRequest(txid=op.txid[::-1].hex()), timeout=RPC_TIMEOUT_S)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        tx = Transaction.from_hex(r.hex)
        if op.index >= len(tx.outputs):
            return None
        confirmations = 0 if r.in_mempool else int(r.confirmations)
        spent: bool | None = None
        if confirmations > 0:
            utxo = self.stub.GetTxOut(pb.GetTxOutRequest(txid=op.txid[::-1].hex(), n=op.index, include_mempool=False),
                                      timeout=RPC_TIMEOUT_S)
            spent = not utxo.found
        return ViewOutput(tx.outputs[op.index], confirmations, spent)


@dataclass
class SnapshotView:
    """A full node's answers, read before the review (the core never waits on a socket)."""

    outputs: dict[OutPoint, ViewOutput | None] = field(default_factory=dict)
    confs: dict[bytes, int | None] = field(default_factory=dict)

    def get_output(self, outpoint: OutPoint) -> ViewOutput | None:
        return self.outputs.get(outpoint)

    def confirmations(self, txid: bytes) -> int | None:
        return self.confs.get(txid)


class SpvView:
    """A chain known by its headers: a transaction exists if its merkle proof checks against them."""

    def __init__(self, chain: HeaderChain, proofs: list[tuple[bytes, bytes]]) -> None:
        self.chain = chain
        self.proofs: dict[bytes, tuple[bytes, bytes]] = {}
        self.errors: dict[bytes, str] = {}
        for raw, proof in proofs:
            try:
                txid = Transaction.from_bytes(raw).txid
            except ValueError:  # DeserializationError: a proof of nothing; its txid is unknown
                continue
            self.proofs[txid] = (raw, proof)

    def _verified(self, txid: bytes) -> tuple[Transaction, int] | None:
        entry = self.proofs.get(txid)
        if entry is None:
            self.errors[txid] = "no merkle proof of the transaction was given"
            return None
        raw, proof = entry
        try:
            v = self.chain.verify_tx_proof(proof, raw, min_depth=1)
        except ProofRejected as e:
            self.errors[txid] = f"merkle proof refused: {e.reason}" + (f" ({e.debug})" if e.debug else "")
            return None
        return Transaction.from_bytes(raw), v.depth

    def get_output(self, outpoint: OutPoint) -> ViewOutput | None:
        found = self._verified(outpoint.txid)
        if found is None:
            return None
        tx, depth = found
        if outpoint.index >= len(tx.outputs):
            self.errors[outpoint.txid] = f"the proven transaction has no output {outpoint.index}"
            return None
        return ViewOutput(tx.outputs[outpoint.index], depth, None)

    def confirmations(self, txid: bytes) -> int | None:
        if txid not in self.proofs:
            return None
        found = self._verified(txid)
        return None if found is None else found[1]


# --- the daemon ------------------------------------------------------------------------------


class NotaryDaemon:
    def __init__(
        self,
        datadir: Path,
        committee_file: Path,
        chain_datadirs: Mapping[str, Path],
        spv_chain: str | None = None,
        *,
        rpc_port: int = 0,
        poll_interval_s: float = 1.0,
    ) -> None:
        self.datadir = datadir
        self.committee_file = committee_file
        self.chain_datadirs = dict(chain_datadirs)
        self.spv_chain = spv_chain
        self.want_rpc_port = rpc_port
        self.poll_interval_s = poll_interval_s
        self.config: PegConfig
        self.notary: Notary
        self.store: NotaryStore
        self.readers: dict[str, FullNodeReader] = {}
        self.relay: RelayDaemon | None = None
        self.trio_token: trio.lowlevel.TrioToken
        self.rpc_port = 0
        self.crash = CrashPoint.from_env()
        self._stop = trio.Event()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        key = ensure_notary_key(self.datadir)
        self.config = load_peg_config(self.committee_file)
        self.store = NotaryStore(self.datadir / STATE_DB_FILE)
        self.notary = Notary(key, self.config.committees, self.config.policy, self.store.load())
        self.trio_token = trio.lowlevel.current_trio_token()
        server = None
        try:
            for chain, chain_dir in self.chain_datadirs.items():
                if chain != self.spv_chain:
                    self.readers[chain] = FullNodeReader(chain, chain_dir)
            async with trio.open_nursery() as nursery:
                if self.spv_chain is not None:
                    self.relay = RelayDaemon(get_params(self.spv_chain), self.datadir / f"spv-{self.spv_chain}",
                                             self.chain_datadirs[self.spv_chain], poll_interval_s=self.poll_interval_s)
                    await nursery.start(self.relay.run_embedded)
                server, self.rpc_port = make_server(self.datadir, self.want_rpc_port, [], PERMISSIONS)
                npb_grpc.add_NotaryServicer_to_server(NotaryServicer(self), server)  # type: ignore[no-untyped-call]
                server.start()
                write_rpc_endpoint(self.datadir, self.rpc_port)
                write_node_info(self.datadir, rpc_port=self.rpc_port, pubkey=self.notary.pubkey.hex(),
                                spv_chain=self.spv_chain)
                nursery.start_soon(stop_on_signals, self.request_stop, log)
                for chain in self.readers:
                    nursery.start_soon(self._watch_releases, chain)
                membership = [c.epoch for c in self.config.committees if c.index_of(self.notary.pubkey) is not None]
                log.info("notary %s: committees %s (member of %s), full views %s, spv view %s, rpc 127.0.0.1:%d",
                         self.notary.pubkey.hex(), [c.epoch for c in self.config.committees], membership,
                         sorted(self.readers), self.spv_chain, self.rpc_port)
                task_status.started(self)
                await self._stop.wait()
                nursery.cancel_scope.cancel()
        finally:
            if server is not None:
                await trio.to_thread.run_sync(lambda: server.stop(grace=0.5).wait())
            for r in self.readers.values():
                r.close()
            self.store.close()
            log.info("stopped")

    def request_stop(self) -> None:
        self._stop.set()


    async def _watch_releases(self, chain: str) -> None:
        """Read every block of a fully-viewed chain for releases spending a committee reserve
        (:meth:`Notary.observe_release`): deposits released with other notaries' signatures, or
        attested before this notary lost its state, are then refused as redeemed."""
        reader = self.readers[chain]
        source = "beta" if chain == "alpha" else "alpha"
        key = f"scanned:{chain}"
        starts = [w.activation_height for c in self.config.committees for w in c.windows if w.chain == chain]
        first = min(starts, default=0)
        while True:
            try:
                stored = self.store.get_meta(key)  # "height:hash" of the last block read
                next_height = first
                if stored is not None:
                    height_s, _, block_hash = stored.partition(":")
                    now_there = await trio.to_thread.run_sync(reader.hash_at, int(height_s), abandon_on_cancel=True)
                    # After a reorganisation, read the replaced blocks' successors again (observing twice is harmless).
                    next_height = int(height_s) + 1 if now_there == block_hash else max(first, int(height_s) - REORG_RESCAN)
                while True:
                    block = await trio.to_thread.run_sync(reader.block_at, next_height, abandon_on_cancel=True)
                    if block is None:
                        break
                    seen = [tx for tx in block.transactions if self.notary.observe_release(source, chain, tx)]
                    keys = []
                    for tx in seen:
                        binding = release_binding(tx)
                        if binding is not None:
                            keys.append((source, binding[1]))
                    if keys:
                        self.store.record(self.notary.state, keys)
                        log.info("%s block %d: %d release(s) seen", chain, next_height, len(keys))
                    self.store.set_meta(key, f"{next_height}:{block.header.hash_hex()}")
                    next_height += 1
            except (grpc.RpcError, ValueError) as e:
                log.warning("reading %s blocks: %s", chain, e)
            await trio.sleep(self.poll_interval_s)


    # --- the review (on the trio thread) ---------------------------------------------------------

    def _views(
        self, proofs: list[tuple[bytes, bytes]], snapshots: Mapping[str, tuple[int, SnapshotView]]
    ) -> tuple[dict[str, ChainView], dict[str, int], SpvView | None]:
        views: dict[str, ChainView] = {}
        tips: dict[str, int] = {}
        for chain, (height, snap) in snapshots.items():
            views[chain], tips[chain] = snap, height
        spv: SpvView | None = None
        if self.relay is not None and self.relay.chain is not None and self.spv_chain is not None:
            spv = SpvView(self.relay.chain, proofs)
            views[self.spv_chain], tips[self.spv_chain] = spv, self.relay.chain.height
        return views, tips, spv

    def review(
        self,
        request: ReleaseRequest,
        proofs: list[tuple[bytes, bytes]],
        snapshots: Mapping[str, tuple[int, SnapshotView]],
    ) -> npb.SignReleaseResponse:
        views, tips, spv = self._views(proofs, snapshots)
        result = self.notary.review_deposit(request, views, tips)
        if isinstance(result, Refusal):
            if spv is not None and result.reason in ("peg-deposit-missing", "peg-reserve-missing") and spv.errors:
                why = "; ".join(f"{t[::-1].hex()}: {e}" for t, e in spv.errors.items())
                result = Refusal(result.reason, f"{result.detail} [SPV view of {self.spv_chain}: {why}]")
            log.info("refused %s:%d on %s: %s", request.deposit.txid[::-1].hex(), request.deposit.index,
                     request.source_chain, result)
            return npb.SignReleaseResponse(refusal=refusal_to_pb(result))
        # Persist before you promise: the record is durable before the signature leaves.
        self.store.record(self.notary.state, [(request.source_chain, request.deposit)])
        self.crash.reached("persist:attestation")  # tests: CANAL_CRASH_AT dies here, the answer unsent
        log.info("signed release %s of deposit %s on %s", result.attestation.release_txid[::-1].hex(),
                 request.deposit, request.source_chain)
        return npb.SignReleaseResponse(signature=signature_to_pb(result))

    def review_sweep(
        self,
        request: SweepRequest,
        proofs: list[tuple[bytes, bytes]],
        snapshots: Mapping[str, tuple[int, SnapshotView]],
    ) -> npb.SignSweepResponse:
        views, tips, spv = self._views(proofs, snapshots)
        result = self.notary.review_sweep(request, views, tips)
        if isinstance(result, Refusal):
            if spv is not None and result.reason == "peg-reserve-missing" and spv.errors:
                why = "; ".join(f"{t[::-1].hex()}: {e}" for t, e in spv.errors.items())
                result = Refusal(result.reason, f"{result.detail} [SPV view of {self.spv_chain}: {why}]")
            log.info("refused sweep %s on %s: %s", request.tx.txid_hex(), request.chain, result)
            return npb.SignSweepResponse(refusal=refusal_to_pb(result))
        # Nothing to remember: a sweep pays the configured successor only, whichever copy confirms.
        log.info("signed sweep %s of epoch %d's coins on %s to epoch %d", request.tx.txid_hex(), request.from_epoch,
                 request.chain, request.to_epoch)
        return npb.SignSweepResponse(signature=sweep_signature_to_pb(result))

    def status(self, fulls: Mapping[str, npb.ChainStatus]) -> npb.StatusResponse:
        chains = [fulls[c] for c in sorted(fulls)]
        if self.relay is not None and self.spv_chain is not None:
            ch = self.relay.chain
            meta = self.relay.store.meta() if ch is not None else {}
            chains.append(npb.ChainStatus(
                chain=self.spv_chain, mode="spv", height=ch.height if ch is not None else -1,
                best_block_hash=ch.tip.hash_hex() if ch is not None else "",
                synced=meta.get("synced") == "1", last_error=meta.get("last_error", "")))
            chains.sort(key=lambda c: c.chain)
        newest = max((c for c in self.config.committees if c.index_of(self.notary.pubkey) is not None),
                     key=lambda c: c.epoch, default=None)
        index = newest.index_of(self.notary.pubkey) if newest is not None else None
        return npb.StatusResponse(
            pubkey=self.notary.pubkey, key_index=-1 if index is None else index,
            epochs=sorted(c.epoch for c in self.config.committees), chains=chains,
            redeemed=len(self.notary.state.redeemed), version="canal-notaryd/1")


class NotaryServicer(npb_grpc.NotaryServicer):
    def __init__(self, daemon: NotaryDaemon) -> None:
        self.d = daemon

    def _run(self, context: grpc.ServicerContext, fn: Callable[[], T]) -> T:
        try:
            return trio.from_thread.run_sync(fn, trio_token=self.d.trio_token)
        except trio.RunFinishedError:
            context.abort(grpc.StatusCode.UNAVAILABLE, "notaryd is shutting down")
        raise AssertionError("unreachable")

    def _read(self, context: grpc.ServicerContext, chain: str, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except grpc.RpcError as e:
            details = e.details() if hasattr(e, "details") else str(e)
            context.abort(grpc.StatusCode.UNAVAILABLE, f"the {chain} chain node does not answer: {details}")
        raise AssertionError("unreachable")

    def SignRelease(self, request: npb.SignReleaseRequest, context: grpc.ServicerContext) -> npb.SignReleaseResponse:
        if len(request.proofs) > self.d.config.policy.max_release_inputs + 1:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{len(request.proofs)} proofs: a release needs one for "
                          f"its deposit and one per reserve input ({self.d.config.policy.max_release_inputs} at most)")
        try:
            req, proofs = request_from_pb(request)
        except WireError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        snapshots: dict[str, tuple[int, SnapshotView]] = {}
        for chain, reader in self.d.readers.items():
            snap = SnapshotView()
            if chain == req.source_chain:
                snap.outputs[req.deposit] = self._read(context, chain, reader.output, req.deposit)
            if chain == req.destination_chain:
                for txin in req.release.inputs[: self.d.config.policy.max_release_inputs]:
                    op = txin.prevout
                    snap.outputs[op] = self._read(context, chain, reader.output, op)
                snap.confs[req.release.txid] = self._read(context, chain, reader.confirmations, req.release.txid)
            # The tip after the outputs: a block found meanwhile only makes the tip higher, never a
            # deposit deeper than the tip allows.
            height, _ = self._read(context, chain, reader.tip)
            snapshots[chain] = (height, snap)
        return self._run(context, lambda: self.d.review(req, proofs, snapshots))

    def SignSweep(self, request: npb.SignSweepRequest, context: grpc.ServicerContext) -> npb.SignSweepResponse:
        if len(request.proofs) > MAX_SWEEP_INPUTS:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{len(request.proofs)} proofs for a sweep of at most "
                          f"{MAX_SWEEP_INPUTS} inputs")
        try:
            req, proofs = sweep_request_from_pb(request)
        except WireError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        snapshots: dict[str, tuple[int, SnapshotView]] = {}
        reader = self.d.readers.get(req.chain)
        if reader is not None:
            snap = SnapshotView()
            for txin in req.tx.inputs[:MAX_SWEEP_INPUTS]:
                op = txin.prevout
                snap.outputs[op] = self._read(context, req.chain, reader.output, op)
            height, _ = self._read(context, req.chain, reader.tip)
            snapshots[req.chain] = (height, snap)
        return self._run(context, lambda: self.d.review_sweep(req, proofs, snapshots))

    def Status(self, request: npb.StatusRequest, context: grpc.ServicerContext) -> npb.StatusResponse:
        fulls: dict[str, npb.ChainStatus] = {}
        for chain, reader in self.d.readers.items():
            try:
                height, best = reader.tip()
                fulls[chain] = npb.ChainStatus(chain=chain, mode="full", height=height, best_block_hash=best,
                                               synced=True)
            except grpc.RpcError as e:
                details = e.details() if hasattr(e, "details") else str(e)
                fulls[chain] = npb.ChainStatus(chain=chain, mode="full", height=-1, synced=False, last_error=details)
        return self._run(context, lambda: self.d.status(fulls))
