"""lnd's `lnrpc.Lightning` service, served by `canal channeld` (wire-compatible with lnd's clients).

Each handler enters the daemon's trio loop with `trio.from_thread.run`; errors
come back as gRPC status codes with a message, as lnd's do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import trio

from base_chain.address import AddressError, address_to_script, script_to_address
from base_chain.templates import classify
from base_chain.wallet import WalletError
from proto import lightning_pb2 as ln
from proto import lightning_pb2_grpc as ln_grpc

from .features import Feature
from .peer import PeerLinkError, parse_node_uri

if TYPE_CHECKING:
    from .daemon import LightningDaemon

__all__ = ["LightningServicer", "LN_PERMISSIONS", "LnRpcError"]

T = TypeVar("T")

_LN = "/lnrpc.Lightning/"
LN_PERMISSIONS: dict[str, set[str]] = {
    _LN + "GetInfo": {"info:read"},
    _LN + "NewAddress": {"address:write"},
    _LN + "WalletBalance": {"onchain:read"},
    _LN + "ChannelBalance": {"offchain:read"},
    _LN + "SendCoins": {"onchain:write"},
    _LN + "ListUnspent": {"onchain:read"},
    _LN + "ConnectPeer": {"peers:write"},
    _LN + "DisconnectPeer": {"peers:write"},
    _LN + "ListPeers": {"peers:read"},
    _LN + "OpenChannel": {"onchain:write", "offchain:write"},
    _LN + "OpenChannelSync": {"onchain:write", "offchain:write"},
    _LN + "PendingChannels": {"offchain:read"},
    _LN + "ListChannels": {"offchain:read"},
    _LN + "ClosedChannels": {"offchain:read"},
    _LN + "CloseChannel": {"onchain:write", "offchain:write"},
    _LN + "SubscribeChannelEvents": {"offchain:read"},
    _LN + "ExportAllChannelBackups": {"offchain:read"},
    _LN + "VerifyChanBackup": {"offchain:read"},
    _LN + "RestoreChannelBackups": {"offchain:write"},
}


class LnRpcError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> LnRpcError:
    return LnRpcError(grpc.StatusCode.INVALID_ARGUMENT, message)


FEATURE_NAMES = {
    Feature.option_data_loss_protect: "data-loss-protect",
    Feature.option_upfront_shutdown_script: "upfront-shutdown-script",
    Feature.gossip_queries: "gossip-queries",
    Feature.var_onion_optin: "tlv-onion",
    Feature.option_static_remotekey: "static-remote-key",
    Feature.payment_secret: "payment-addr",
    Feature.basic_mpp: "multi-path-payments",
    Feature.option_anchors_zero_fee_htlc_tx: "anchors-zero-fee-htlc-tx",
    Feature.option_shutdown_anysegwit: "shutdown-any-segwit",
    Feature.option_channel_type: "explicit-commitment-type",
}


def feature_map(features: Any) -> dict[int, ln.Feature]:
    out: dict[int, ln.Feature] = {}
    for feature, name in FEATURE_NAMES.items():
        if features.is_required(feature):
            out[int(feature)] = ln.Feature(name=name, is_required=True, is_known=True)
        elif features.is_optional(feature):
            out[int(feature) + 1] = ln.Feature(name=name, is_required=False, is_known=True)
    return out


class LightningServicer(ln_grpc.LightningServicer):
    def __init__(self, daemon: LightningDaemon) -> None:
        self.d = daemon

    # --- plumbing ---------------------------------------------------------------------------------------

    def run(self, context: grpc.ServicerContext, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return trio.from_thread.run(fn, trio_token=self.d.trio_token)
        except LnRpcError as e:
            context.abort(e.code, e.message)
        except WalletError as e:
            code = grpc.StatusCode.FAILED_PRECONDITION if "Insufficient funds" in str(e) else grpc.StatusCode.INVALID_ARGUMENT
            context.abort(code, str(e))
        except AddressError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid address: {e}")
        except PeerLinkError as e:
            context.abort(grpc.StatusCode.UNAVAILABLE, e.reason)
        except trio.RunFinishedError:
            context.abort(grpc.StatusCode.UNAVAILABLE, "node is shutting down")
        raise AssertionError("unreachable")

    # --- node and wallet ---------------------------------------------------------------------------------

    def GetInfo(self, request: ln.GetInfoRequest, context: grpc.ServicerContext) -> ln.GetInfoResponse:
        async def fn() -> ln.GetInfoResponse:
            d = self.d
            counts = d.channel_counts() if hasattr(d, "channel_counts") else (0, 0, 0)
            return ln.GetInfoResponse(
                version=d_version(), commit_hash="", identity_pubkey=d.identity_pubkey, alias=d.alias,
                color="#" + d.identity_pubkey[2:8], num_pending_channels=counts[0], num_active_channels=counts[1],
                num_inactive_channels=counts[2], num_peers=len(d.peers), block_height=d.tip_height,
                block_hash=d.tip_hash, best_header_timestamp=d.tip_time, synced_to_chain=d.synced,
                synced_to_graph=True, testnet=False,
                chains=[ln.Chain(chain="bitcoin", network=d.params.name)],
                uris=[f"{d.identity_pubkey}@127.0.0.1:{d.listen_port}"],
                features=feature_map(d.features), wallet_synced=d.synced,
            )
        return self.run(context, fn)

    def NewAddress(self, request: ln.NewAddressRequest, context: grpc.ServicerContext) -> ln.NewAddressResponse:
        async def fn() -> ln.NewAddressResponse:
            if request.type not in (ln.WITNESS_PUBKEY_HASH, ln.UNUSED_WITNESS_PUBKEY_HASH):
                raise LnRpcError(grpc.StatusCode.UNIMPLEMENTED,
                                 f"address type {ln.AddressType.Name(request.type)} is not supported (use p2wkh)")
            if request.account and request.account != "default":
                raise invalid(f"account '{request.account}' not found")
            return ln.NewAddressResponse(address=self.d.wallet.get_new_address())
        return self.run(context, fn)

    def WalletBalance(self, request: ln.WalletBalanceRequest, context: grpc.ServicerContext) -> ln.WalletBalanceResponse:
        async def fn() -> ln.WalletBalanceResponse:
            b = self.d.wallet.balances(self.d.tip_height)
            confirmed = b.confirmed_sat
            unconfirmed = b.unconfirmed_sat
            total = confirmed + unconfirmed
            return ln.WalletBalanceResponse(
                total_balance=total, confirmed_balance=confirmed, unconfirmed_balance=unconfirmed,
                locked_balance=0, reserved_balance_anchor_chan=0,
                account_balance={"default": ln.WalletAccountBalance(confirmed_balance=confirmed,
                                                                    unconfirmed_balance=unconfirmed)},
            )
        return self.run(context, fn)

    def SendCoins(self, request: ln.SendCoinsRequest, context: grpc.ServicerContext) -> ln.SendCoinsResponse:
        async def fn() -> ln.SendCoinsResponse:
            d = self.d
            if not request.addr:
                raise invalid("invalid address: address is empty")
            spk = address_to_script(request.addr, d.params.address_prefixes)
            if classify(spk) in ("witness_v1_taproot", "witness_unknown"):
                raise invalid("invalid address: witness v1+ outputs are not supported on Canal chains")
            if request.send_all:
                raise LnRpcError(grpc.StatusCode.UNIMPLEMENTED, "send_all is not supported yet")
            if request.amount <= 0:
                raise invalid("amount must be positive")
            rate = float(request.sat_per_vbyte) if request.sat_per_vbyte else (await d.chain.estimate_fee_sat_kvb(
                request.target_conf or 6)) / 1000
            tx = d.wallet.send_to_address(request.addr, request.amount, rate, d.tip_height)
            txid = await d.broadcast(tx)
            return ln.SendCoinsResponse(txid=txid)
        return self.run(context, fn)

    def ListUnspent(self, request: ln.ListUnspentRequest, context: grpc.ServicerContext) -> ln.ListUnspentResponse:
        async def fn() -> ln.ListUnspentResponse:
            d = self.d
            max_confs = request.max_confs or 9_999_999
            utxos = []
            for c in d.wallet.list_unspent(d.tip_height, request.min_confs, max_confs):
                utxos.append(ln.Utxo(
                    address_type=ln.WITNESS_PUBKEY_HASH,
                    address=c.address or script_to_address(c.script_pubkey, d.params.address_prefixes) or "",
                    amount_sat=c.amount_sat, pk_script=c.script_pubkey.hex(),
                    outpoint=ln.OutPoint(txid_bytes=c.txid, txid_str=c.txid[::-1].hex(), output_index=c.vout),
                    confirmations=c.confirmations,
                ))
            return ln.ListUnspentResponse(utxos=utxos)
        return self.run(context, fn)

    # --- peers -------------------------------------------------------------------------------------------------

    def ConnectPeer(self, request: ln.ConnectPeerRequest, context: grpc.ServicerContext) -> ln.ConnectPeerResponse:
        async def fn() -> ln.ConnectPeerResponse:
            if not request.addr.pubkey or not request.addr.host:
                raise invalid("need: lnrpc.LightningAddress with pubkey and host")
            try:
                key, host, port = parse_node_uri(f"{request.addr.pubkey}@{request.addr.host}")
            except ValueError as e:
                raise invalid(str(e)) from None
            if host not in ("127.0.0.1", "localhost", "::1"):
                raise invalid("Canal only connects to loopback addresses")
            timeout = request.timeout or 30
            with trio.fail_after(timeout):
                await self.d.connect_peer(key.to_bytes().hex(), host, port)
            return ln.ConnectPeerResponse(status=f"connection to {request.addr.pubkey}@{request.addr.host} initiated")
        return self.run(context, fn)

    def DisconnectPeer(self, request: ln.DisconnectPeerRequest, context: grpc.ServicerContext) -> ln.DisconnectPeerResponse:
        async def fn() -> ln.DisconnectPeerResponse:
            await self.d.disconnect_peer(request.pub_key)
            return ln.DisconnectPeerResponse(status="disconnect initiated")
        return self.run(context, fn)

    def ListPeers(self, request: ln.ListPeersRequest, context: grpc.ServicerContext) -> ln.ListPeersResponse:
        async def fn() -> ln.ListPeersResponse:
            peers = []
            for key, p in self.d.peers.items():
                their = p.link.their_init
                peers.append(ln.Peer(
                    pub_key=key, address=p.address, bytes_sent=0, bytes_recv=0, inbound=p.inbound,
                    ping_time=0, sync_type=ln.Peer.ACTIVE_SYNC,
                    features=feature_map(their.all_features) if their is not None else {},
                    errors=[ln.TimestampedError(error=e) for e in p.errors[-5:]] if request.latest_error else [],
                ))
            return ln.ListPeersResponse(peers=peers)
        return self.run(context, fn)


def d_version() -> str:
    from .daemon import VERSION

    return VERSION
