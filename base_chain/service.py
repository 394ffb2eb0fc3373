"""The chain node's gRPC service (ChainService): bitcoind's RPCs, typed, plus notifications.

grpcio runs handlers on its thread pool; each handler enters the daemon's trio
loop with `trio.from_thread.run_sync`, so every read and write of node state
happens on the trio thread, one at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import trio

from proto import chain_pb2 as pb
from proto import chain_pb2_grpc as pb_grpc

from .address import AddressError, address_to_script, script_to_address
from .block import Block
from .checks import TxCheckError
from .chainstate import BlockIndex
from .describe import decode_transaction
from .mempool import MempoolReject
from .merkle import MerkleBlock
from .pow import difficulty
from .serialize import DeserializationError
from .templates import classify
from .tx import OutPoint, Transaction
from .validation import BlockValidationError
from .wallet import WalletError

if TYPE_CHECKING:
    from .daemon import ChainDaemon

__all__ = ["ChainServicer", "PERMISSIONS", "RpcError"]

T = TypeVar("T")

_SVC = "/chainrpc.ChainService/"
PERMISSIONS: dict[str, set[str]] = {
    _SVC + name: perms
    for name, perms in {
        "GetBlockchainInfo": {"info:read"},
        "GetBlockCount": {"info:read"},
        "GetBestBlockHash": {"info:read"},
        "GetBlockHash": {"onchain:read"},
        "GetBlock": {"onchain:read"},
        "GetBlockHeader": {"onchain:read"},
        "GetRawTransaction": {"onchain:read"},
        "DecodeRawTransaction": {"onchain:read"},
        "SendRawTransaction": {"onchain:write"},
        "TestMempoolAccept": {"onchain:read"},
        "GetMempoolInfo": {"onchain:read"},
        "GetRawMempool": {"onchain:read"},
        "GetNewAddress": {"address:write"},
        "GetBalance": {"onchain:read"},
        "ListUnspent": {"onchain:read"},
        "SendToAddress": {"onchain:write"},
        "BumpFee": {"onchain:write"},
        "GenerateToAddress": {"mining:write"},
        "EstimateFee": {"onchain:read"},
        "AddNode": {"peers:write"},
        "GetPeerInfo": {"peers:read"},
        "GetTxOutProof": {"onchain:read"},
        "GetTxOut": {"onchain:read"},
        "Stop": {"info:write"},
        "SubscribeBlocks": {"onchain:read"},
        "RegisterConfirmations": {"onchain:read"},
        "RegisterSpend": {"onchain:read"},
        "SubscribeMempool": {"onchain:read"},
    }.items()
}


class RpcError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _invalid(message: str) -> RpcError:
    return RpcError(grpc.StatusCode.INVALID_ARGUMENT, message)


def parse_hash(s: str, what: str = "hash") -> bytes:
    """A 64-hex-digit hash in display order → internal bytes; INVALID_ARGUMENT otherwise."""
    if len(s) != 64:
        raise _invalid(f"{what} must be of length 64 (not {len(s)}, for '{s}')")
    try:
        return bytes.fromhex(s)[::-1]
    except ValueError:
        raise _invalid(f"{what} must be hexadecimal string (not '{s}')") from None


def parse_tx_hex(s: str) -> Transaction:
    try:
        return Transaction.from_hex(s)
    except (DeserializationError, ValueError) as e:
        raise _invalid(f"TX decode failed: {e}") from None


def _header_info(svc: ChainServicer, idx: BlockIndex, n_tx: int) -> pb.BlockHeaderInfo:
    chain = svc.node.chain
    h = idx.header
    nxt = chain.active[idx.height + 1].hash_hex() if chain.in_active_chain(idx) and idx.height < chain.height else ""
    return pb.BlockHeaderInfo(
        hash=idx.hash_hex(),
        confirmations=(chain.height - idx.height + 1) if chain.in_active_chain(idx) else -1,
        height=idx.height,
        version=h.version,
        merkleroot=h.merkle_root[::-1].hex(),
        time=h.time,
        mediantime=idx.median_time_past(),
        nonce=h.nonce,
        bits=f"{h.bits:08x}",
        difficulty=difficulty(h.bits),
        chainwork=f"{idx.chain_work:064x}",
        n_tx=n_tx,
        previousblockhash=h.prev_block[::-1].hex() if idx.height else "",
        nextblockhash=nxt,
    )


def _decoded(d: dict[str, Any]) -> pb.DecodedTransaction:
    vin = []
    for i in d["vin"]:
        if "coinbase" in i:
            vin.append(pb.TxInput(coinbase=i["coinbase"], txinwitness=i.get("txinwitness", []), sequence=i["sequence"]))
        else:
            vin.append(pb.TxInput(
                txid=i["txid"], vout=i["vout"],
                script_sig=pb.ScriptSig(asm=i["scriptSig"]["asm"], hex=i["scriptSig"]["hex"]),
                txinwitness=i.get("txinwitness", []), sequence=i["sequence"],
            ))
    vout = []
    for o in d["vout"]:
        spk = o["scriptPubKey"]
        vout.append(pb.TxOutput(
            value_sat=int(o["value"] * 100_000_000), n=o["n"],
            script_pub_key=pb.ScriptPubKey(asm=spk["asm"], hex=spk["hex"], address=spk.get("address", ""), type=spk["type"]),
        ))
    return pb.DecodedTransaction(
        txid=d["txid"], hash=d["hash"], version=d["version"], size=d["size"], vsize=d["vsize"],
        weight=d["weight"], locktime=d["locktime"], vin=vin, vout=vout,
    )


class ChainServicer(pb_grpc.ChainServiceServicer):
    def __init__(self, daemon: ChainDaemon) -> None:
        self.daemon = daemon

    @property
    def node(self) -> Any:
        return self.daemon.node

    # --- plumbing --------------------------------------------------------------------------------------

    def _run(self, context: grpc.ServicerContext, fn: Callable[[], T]) -> T:
        try:
            return trio.from_thread.run_sync(fn, trio_token=self.daemon.trio_token)
        except RpcError as e:
            context.abort(e.code, e.message)
        except (MempoolReject, TxCheckError) as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except BlockValidationError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except AddressError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid address: {e}")
        except WalletError as e:
            code = grpc.StatusCode.FAILED_PRECONDITION if "Insufficient funds" in str(e) else grpc.StatusCode.INVALID_ARGUMENT
            context.abort(code, str(e))
        except trio.RunFinishedError:
            context.abort(grpc.StatusCode.UNAVAILABLE, "node is shutting down")
        raise AssertionError("unreachable")

    def _stream(self, context: grpc.ServicerContext, open_sub: Callable[[], trio.MemoryReceiveChannel[T]]) -> Iterator[T]:
        recv = self._run(context, open_sub)
        token = self.daemon.trio_token

        async def next_item() -> T | None:
            with trio.move_on_after(0.5):
                try:
                    return await recv.receive()
                except trio.EndOfChannel:
                    raise StopAsyncIteration from None
            return None

        try:
            while context.is_active():
                try:
                    item = trio.from_thread.run(next_item, trio_token=token)
                except (StopAsyncIteration, trio.RunFinishedError):
                    return
                if item is not None:
                    yield item
        finally:
            try:
                trio.from_thread.run_sync(recv.close, trio_token=token)
            except trio.RunFinishedError:
                pass

    def _block_index(self, hash_hex: str) -> BlockIndex:
        idx = self.node.chain.index.get(parse_hash(hash_hex, "blockhash"))
        if idx is None:
            raise RpcError(grpc.StatusCode.NOT_FOUND, "Block not found")
        return idx  # type: ignore[no-any-return]

    # --- blockchain --------------------------------------------------------------------------------------

    def GetBlockchainInfo(self, request: pb.GetBlockchainInfoRequest, context: grpc.ServicerContext) -> pb.BlockchainInfo:
        def fn() -> pb.BlockchainInfo:
            chain = self.node.chain
            tip = chain.tip
            ibd = chain.best_header.height > chain.height or tip.header.time < self.daemon.now() - 24 * 3600
            return pb.BlockchainInfo(
                chain=self.node.params.name, blocks=chain.height, headers=chain.best_header.height,
                bestblockhash=tip.hash_hex(), difficulty=difficulty(tip.header.bits), time=tip.header.time,
                mediantime=tip.median_time_past(),
                verificationprogress=1.0 if chain.best_header.height == 0 else chain.height / chain.best_header.height,
                initialblockdownload=ibd, chainwork=f"{tip.chain_work:064x}",
                size_on_disk=self.daemon.size_on_disk(), pruned=False,
            )
        return self._run(context, fn)

    def GetBlockCount(self, request: pb.GetBlockCountRequest, context: grpc.ServicerContext) -> pb.BlockCount:
        return self._run(context, lambda: pb.BlockCount(count=self.node.chain.height))

    def GetBestBlockHash(self, request: pb.GetBestBlockHashRequest, context: grpc.ServicerContext) -> pb.BlockHash:
        return self._run(context, lambda: pb.BlockHash(hash=self.node.chain.tip.hash_hex()))

    def GetBlockHash(self, request: pb.GetBlockHashRequest, context: grpc.ServicerContext) -> pb.BlockHash:
        def fn() -> pb.BlockHash:
            chain = self.node.chain
            if not 0 <= request.height <= chain.height:
                raise _invalid("Block height out of range")
            return pb.BlockHash(hash=chain.active[request.height].hash_hex())
        return self._run(context, fn)

    def GetBlockHeader(self, request: pb.GetBlockHeaderRequest, context: grpc.ServicerContext) -> pb.BlockHeaderInfo:
        def fn() -> pb.BlockHeaderInfo:
            idx = self._block_index(request.blockhash)
            block = self.node.chain.get_block(idx.hash)
            info = _header_info(self, idx, len(block.transactions) if block else 0)
            info.hex = idx.header.hex()
            return info
        return self._run(context, fn)

    def GetBlock(self, request: pb.GetBlockRequest, context: grpc.ServicerContext) -> pb.BlockInfo:
        def fn() -> pb.BlockInfo:
            idx = self._block_index(request.blockhash)
            block: Block | None = self.node.chain.get_block(idx.hash)
            if block is None:
                raise RpcError(grpc.StatusCode.NOT_FOUND, "Block not available (not fully downloaded)")
            if request.verbosity == 0:
                return pb.BlockInfo(hex=block.hex())
            info = pb.BlockInfo(
                header=_header_info(self, idx, len(block.transactions)),
                size=block.size, strippedsize=block.stripped_size, weight=block.weight,
                tx=[tx.txid_hex() for tx in block.transactions],
            )
            if request.verbosity >= 2:
                prefixes = self.node.params.address_prefixes
                info.transactions.extend(_decoded(decode_transaction(tx, prefixes)) for tx in block.transactions)
            return info
        return self._run(context, fn)

    def GetRawTransaction(self, request: pb.GetRawTransactionRequest, context: grpc.ServicerContext) -> pb.RawTransaction:
        txid = parse_hash(request.txid, "txid") if len(request.txid) == 64 else None

        def fn() -> pb.RawTransaction:
            if txid is None:
                raise _invalid(f"txid must be of length 64 (not {len(request.txid)}, for '{request.txid}')")
            found = self.node.find_transaction(txid)
            if found is None:
                raise RpcError(grpc.StatusCode.NOT_FOUND,
                               "No such mempool or blockchain transaction. Use gettransaction for wallet transactions.")
            tx, block_hash = found
            out = pb.RawTransaction(hex=tx.hex(), in_mempool=block_hash is None)
            if block_hash is not None:
                idx = self.node.chain.index[block_hash]
                out.blockhash = idx.hash_hex()
                out.confirmations = self.node.chain.height - idx.height + 1
                out.blocktime = idx.header.time
            if request.verbose:
                out.decoded.CopyFrom(_decoded(decode_transaction(tx, self.node.params.address_prefixes)))
            return out
        return self._run(context, fn)

    def DecodeRawTransaction(self, request: pb.DecodeRawTransactionRequest, context: grpc.ServicerContext) -> pb.DecodedTransaction:
        def fn() -> pb.DecodedTransaction:
            tx = parse_tx_hex(request.hexstring)
            return _decoded(decode_transaction(tx, self.node.params.address_prefixes))
        return self._run(context, fn)

    def GetTxOutProof(self, request: pb.GetTxOutProofRequest, context: grpc.ServicerContext) -> pb.TxOutProof:
        def fn() -> pb.TxOutProof:
            if not request.txids:
                raise _invalid("Parameter 'txids' cannot be empty")
            txids = [parse_hash(t, "txid") for t in request.txids]
            if request.blockhash:
                block_hash: bytes | None = self._block_index(request.blockhash).hash
            else:
                block_hash = self.node.store.find_tx_block(txids[0])
            if block_hash is None:
                raise RpcError(grpc.StatusCode.NOT_FOUND, "Transaction not yet in block")
            block = self.node.chain.get_block(block_hash)
            assert block is not None
            present = {tx.txid for tx in block.transactions}
            if any(t not in present for t in txids):
                raise RpcError(grpc.StatusCode.NOT_FOUND, "Not all transactions found in specified or retrieved block")
            return pb.TxOutProof(proof=MerkleBlock.from_block(block, set(txids)).to_bytes().hex())
        return self._run(context, fn)

    def GetTxOut(self, request: pb.GetTxOutRequest, context: grpc.ServicerContext) -> pb.TxOutInfo:
        def fn() -> pb.TxOutInfo:
            outpoint = OutPoint(parse_hash(request.txid, "txid"), request.n)
            node = self.node
            if request.include_mempool and node.mempool.spends(outpoint) is not None:
                return pb.TxOutInfo(found=False)
            coin = node.chain.get_coin(outpoint)
            confirmations = 0
            if coin is None and request.include_mempool:
                entry = node.mempool.get(outpoint.txid)
                if entry is not None and outpoint.index < len(entry.tx.outputs):
                    out = entry.tx.outputs[outpoint.index]
                    return pb.TxOutInfo(found=True, bestblock=node.chain.tip.hash_hex(), confirmations=0,
                                        value_sat=out.amount_sat, script_pub_key=self._spk(out.script_pubkey))
            if coin is None:
                return pb.TxOutInfo(found=False)
            confirmations = node.chain.height - coin.height + 1
            return pb.TxOutInfo(found=True, bestblock=node.chain.tip.hash_hex(), confirmations=confirmations,
                                value_sat=coin.output.amount_sat, script_pub_key=self._spk(coin.output.script_pubkey),
                                coinbase=coin.is_coinbase)
        return self._run(context, fn)

    def _spk(self, spk: bytes) -> pb.ScriptPubKey:
        from .script import to_asm

        return pb.ScriptPubKey(asm=to_asm(spk), hex=spk.hex(),
                               address=script_to_address(spk, self.node.params.address_prefixes) or "",
                               type=classify(spk))

    # --- mempool ----------------------------------------------------------------------------------------------

    def SendRawTransaction(self, request: pb.SendRawTransactionRequest, context: grpc.ServicerContext) -> pb.SendRawTransactionResponse:
        def fn() -> pb.SendRawTransactionResponse:
            tx = parse_tx_hex(request.hexstring)
            if self.node.mempool.get(tx.txid) is not None:
                return pb.SendRawTransactionResponse(txid=tx.txid_hex())
            self.daemon.submit_tx(tx)
            return pb.SendRawTransactionResponse(txid=tx.txid_hex())
        return self._run(context, fn)

    def TestMempoolAccept(self, request: pb.TestMempoolAcceptRequest, context: grpc.ServicerContext) -> pb.TestMempoolAcceptResponse:
        def fn() -> pb.TestMempoolAcceptResponse:
            results = []
            for raw in request.rawtxs:
                tx = parse_tx_hex(raw)
                r = pb.MempoolAcceptResult(txid=tx.txid_hex(), wtxid=tx.wtxid[::-1].hex())
                try:
                    entry = self.node.mempool.test_accept(tx, self.daemon.now())
                except MempoolReject as e:
                    r.allowed = False
                    r.reject_reason = e.reason
                else:
                    r.allowed = True
                    r.vsize = tx.vsize
                    r.fee_sat = entry.fee
                results.append(r)
            return pb.TestMempoolAcceptResponse(results=results)
        return self._run(context, fn)

    def GetMempoolInfo(self, request: pb.GetMempoolInfoRequest, context: grpc.ServicerContext) -> pb.MempoolInfo:
        def fn() -> pb.MempoolInfo:
            info = self.node.mempool.info()
            return pb.MempoolInfo(loaded=True, size=info.size, bytes=info.bytes, usage=info.usage,
                                  total_fee_sat=info.total_fee, maxmempool=info.max_bytes,
                                  mempoolminfee_sat_kvb=info.min_fee_rate, minrelaytxfee_sat_kvb=1000)
        return self._run(context, fn)

    def GetRawMempool(self, request: pb.GetRawMempoolRequest, context: grpc.ServicerContext) -> pb.RawMempool:
        return self._run(context, lambda: pb.RawMempool(txids=[t[::-1].hex() for t in self.node.mempool.txids()]))

    def EstimateFee(self, request: pb.EstimateFeeRequest, context: grpc.ServicerContext) -> pb.EstimateFeeResponse:
        def fn() -> pb.EstimateFeeResponse:
            target = request.conf_target or 6
            if not 1 <= target <= 1008:
                raise _invalid("Invalid conf_target, must be between 1 and 1008")
            rate_kvb = self.node.mempool.estimate_fee(target)
            return pb.EstimateFeeResponse(feerate_sat_vb=rate_kvb / 1000, blocks=target)
        return self._run(context, fn)

    # --- wallet ----------------------------------------------------------------------------------------------

    def GetNewAddress(self, request: pb.GetNewAddressRequest, context: grpc.ServicerContext) -> pb.NewAddress:
        return self._run(context, lambda: pb.NewAddress(address=self.node.wallet.get_new_address()))

    def GetBalance(self, request: pb.GetBalanceRequest, context: grpc.ServicerContext) -> pb.Balance:
        def fn() -> pb.Balance:
            b = self.node.wallet.balances(self.node.chain.height)
            return pb.Balance(confirmed_sat=b.confirmed_sat, unconfirmed_sat=b.unconfirmed_sat,
                              immature_sat=b.immature_sat, watch_only_sat=b.watch_only_sat)
        return self._run(context, fn)

    def ListUnspent(self, request: pb.ListUnspentRequest, context: grpc.ServicerContext) -> pb.ListUnspentResponse:
        def fn() -> pb.ListUnspentResponse:
            minconf = request.minconf if request.minconf or request.maxconf else 1
            maxconf = request.maxconf or 9_999_999
            if minconf < 0 or maxconf < minconf:
                raise _invalid("Invalid minconf/maxconf")
            wanted = set(request.addresses)
            for a in wanted:
                address_to_script(a, self.node.params.address_prefixes)
            out = []
            for c in self.node.wallet.list_unspent(self.node.chain.height, minconf, maxconf):
                if wanted and c.address not in wanted:
                    continue
                out.append(pb.Unspent(txid=c.txid[::-1].hex(), vout=c.vout, address=c.address or "",
                                      script_pub_key=c.script_pubkey.hex(), amount_sat=c.amount_sat,
                                      confirmations=c.confirmations, spendable=c.spendable,
                                      solvable=c.solvable, safe=c.safe))
            return pb.ListUnspentResponse(unspent=out)
        return self._run(context, fn)

    def _fee_rate(self, requested: float) -> float:
        if requested < 0 or math.isnan(requested):
            raise _invalid("Invalid fee_rate (must be non-negative)")
        if requested:
            return requested
        return max(self.node.mempool.estimate_fee(6) / 1000, 1.0)  # type: ignore[no-any-return]

    def SendToAddress(self, request: pb.SendToAddressRequest, context: grpc.ServicerContext) -> pb.SendToAddressResponse:
        def fn() -> pb.SendToAddressResponse:
            if request.amount_sat <= 0:
                raise _invalid("Invalid amount for send")
            spk = address_to_script(request.address, self.node.params.address_prefixes)
            if classify(spk) in ("witness_v1_taproot", "witness_unknown"):
                raise _invalid("Invalid address: witness v1+ outputs are not protected on Canal chains "
                               "(taproot is not implemented); refusing to send")
            rate = self._fee_rate(request.fee_rate_sat_vb)
            wallet = self.node.wallet
            tx = wallet.send_to_address(request.address, request.amount_sat, rate, self.node.chain.height,
                                        subtract_fee=request.subtractfeefromamount)
            self.daemon.submit_tx(tx)
            wallet.commit(tx)
            fee = self.node.fee_of(tx.txid)
            return pb.SendToAddressResponse(txid=tx.txid_hex(), fee_sat=fee)
        return self._run(context, fn)

    def BumpFee(self, request: pb.BumpFeeRequest, context: grpc.ServicerContext) -> pb.BumpFeeResponse:
        def fn() -> pb.BumpFeeResponse:
            txid = parse_hash(request.txid, "txid")
            node = self.node
            old_fee = node.fee_of(txid) if node.mempool.get(txid) is not None else 0
            rate = request.fee_rate_sat_vb
            if not rate:
                entry = node.mempool.get(txid)
                old_rate = old_fee / entry.tx.vsize if entry is not None else 1.0
                rate = max(old_rate + 1.0, self._fee_rate(0))
            tx = node.wallet.bump_fee(txid, rate, node.chain.height)
            self.daemon.submit_tx(tx)
            node.wallet.commit(tx)
            return pb.BumpFeeResponse(txid=tx.txid_hex(), origfee_sat=old_fee, fee_sat=node.fee_of(tx.txid))
        return self._run(context, fn)

    # --- mining and peers -----------------------------------------------------------------------------------

    def GenerateToAddress(self, request: pb.GenerateToAddressRequest, context: grpc.ServicerContext) -> pb.GenerateResponse:
        def fn() -> pb.GenerateResponse:
            if not 0 <= request.nblocks <= 10_000:
                raise _invalid("nblocks must be between 0 and 10000")
            try:
                spk = address_to_script(request.address, self.node.params.address_prefixes)
            except AddressError as e:
                raise _invalid(f"Error: Invalid address: {e}") from None
            hashes = self.daemon.generate(request.nblocks, spk)
            return pb.GenerateResponse(blockhashes=[h[::-1].hex() for h in hashes])
        return self._run(context, fn)

    def AddNode(self, request: pb.AddNodeRequest, context: grpc.ServicerContext) -> pb.AddNodeResponse:
        def fn() -> pb.AddNodeResponse:
            command = request.command or "add"
            if command not in ("add", "onetry", "remove"):
                raise _invalid("Error: Command must be one of 'add', 'remove' or 'onetry'")
            self.daemon.add_node(request.node, command)
            return pb.AddNodeResponse()
        return self._run(context, fn)

    def GetPeerInfo(self, request: pb.GetPeerInfoRequest, context: grpc.ServicerContext) -> pb.PeerInfoResponse:
        return self._run(context, lambda: pb.PeerInfoResponse(peers=[pb.PeerInfo(**p) for p in self.daemon.peer_info()]))

    def Stop(self, request: pb.StopRequest, context: grpc.ServicerContext) -> pb.StopResponse:
        self._run(context, self.daemon.request_stop)
        return pb.StopResponse(message="Canal chain node stopping")

    # --- notifications ------------------------------------------------------------------------------------------

    def SubscribeBlocks(self, request: pb.SubscribeBlocksRequest, context: grpc.ServicerContext) -> Iterator[pb.BlockEvent]:
        yield from self._stream(context, self.daemon.subscribe_blocks)

    def SubscribeMempool(self, request: pb.SubscribeMempoolRequest, context: grpc.ServicerContext) -> Iterator[pb.MempoolEvent]:
        yield from self._stream(context, self.daemon.subscribe_mempool)

    def RegisterConfirmations(self, request: pb.ConfirmationRequest, context: grpc.ServicerContext) -> Iterator[pb.ConfirmationEvent]:
        txid = parse_hash(request.txid, "txid") if request.txid else None
        try:
            script = bytes.fromhex(request.script_pub_key) if request.script_pub_key else None
        except ValueError:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "script_pub_key must be hex")
        if txid is None and script is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "need a txid or a script_pub_key")
        confs = max(request.num_confs, 1)
        yield from self._stream(context, lambda: self.daemon.register_confirmations(txid, confs, script, request.height_hint))

    def RegisterSpend(self, request: pb.SpendRequest, context: grpc.ServicerContext) -> Iterator[pb.SpendEvent]:
        try:
            outpoint = OutPoint(parse_hash(request.txid, "txid"), request.vout)
        except RpcError as e:
            context.abort(e.code, e.message)
        yield from self._stream(
            context, lambda: self.daemon.register_spend(outpoint, request.include_mempool, request.height_hint)
        )
