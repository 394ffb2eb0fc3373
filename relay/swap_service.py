"""The swap daemon's client API, ``canalswap.SwapClient`` (TLS + macaroon, as Lightning Loop's looprpc):
initiate and accept swaps, list them, and show one (state, both contracts, heights, time to refund)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
import trio

from base_chain.params import get_params
from proto import swap_pb2 as spb
from proto import swap_pb2_grpc as spb_grpc

from .contract import ContractError, contract_address, parse_contract
from .swap_host import ChainUnavailable
from .swap_store import SwapRow

if TYPE_CHECKING:
    from .swapd import SwapDaemon

__all__ = ["PERMISSIONS", "ServiceError", "ClientServicer", "swap_status"]

VERSION = "0.1.0"
_SERVICE = "/canalswap.SwapClient/"
PERMISSIONS: dict[str, set[str]] = {
    _SERVICE + "GetInfo": {"info:read"},
    _SERVICE + "InitiateSwap": {"swap:execute"},
    _SERVICE + "AcceptSwap": {"swap:execute"},
    _SERVICE + "ListSwaps": {"swap:read"},
    _SERVICE + "SwapInfo": {"swap:read"},
}


class ServiceError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _contract_status(chain: str, c: dict[str, Any] | None, tips: dict[str, int]) -> spb.ContractStatus | None:
    if c is None:
        return None
    script = bytes.fromhex(c["script"])
    params = get_params(chain)
    try:
        locktime = parse_contract(script).locktime
    except ContractError:
        locktime = 0
    tip = int(tips.get(chain, 0))
    return spb.ContractStatus(
        chain=chain, contract=script.hex(), address=contract_address(script, params.address_prefixes),
        txid=bytes.fromhex(c["txid"])[::-1].hex() if c.get("txid") else "", vout=int(c.get("vout") or 0),
        amount_sat=int(c.get("amount_sat") or 0), locktime=locktime, mined_height=int(c.get("mined_height") or 0),
        blocks_to_refund=locktime - tip, seconds_to_refund=(locktime - tip) * params.target_spacing_s,
    )


def swap_status(row: SwapRow, live_tips: dict[str, int] | None = None) -> spb.SwapStatus:
    """The swap as stored; `live_tips` (the daemon's current heights) for the heights and refund countdowns."""
    offer = row.offer
    initiator = row.role == "initiator"
    ours, theirs = ("initiator", "participant") if initiator else ("participant", "initiator")
    status = spb.SwapStatus(
        swap_id=row.swap_id, role=row.role, state=row.status, peer=row.peer,
        send_chain=offer[f"{ours}_chain"], send_amount_sat=int(offer[f"{ours}_amount_sat"]),
        receive_chain=offer[f"{theirs}_chain"], receive_amount_sat=int(offer[f"{theirs}_amount_sat"]),
        secret_hash=offer["secret_hash"], reason=str(row.notes.get("reason", "")),
        redeem_txid=str(row.notes.get("redeem_txid", "")), refund_txid=str(row.notes.get("refund_txid", "")),
        created=row.created, updated=row.updated, finished=row.status in ("redeemed", "refunded", "aborted", "failed",
                                                                          "rejected"),
    )
    record = row.record
    if record is not None:
        tips = {str(k): int(v) for k, v in record.get("tips", {}).items()}
        tips.update({k: v for k, v in (live_tips or {}).items() if k in tips and v >= 0})
        status.heights.update(tips)
        if record.get("reason"):
            status.reason = str(record["reason"])
        mine = _contract_status(offer[f"{ours}_chain"], record.get("ours"), tips)
        if mine is not None:
            status.our_contract.CopyFrom(mine)
        other = _contract_status(offer[f"{theirs}_chain"], record.get("theirs"), tips)
        if other is not None:
            status.their_contract.CopyFrom(other)
    return status


class ClientServicer(spb_grpc.SwapClientServicer):
    def __init__(self, daemon: SwapDaemon) -> None:
        self.daemon = daemon

    def _run(self, context: grpc.ServicerContext, fn: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return trio.from_thread.run(fn, trio_token=self.daemon.token)
        except ServiceError as e:
            context.abort(e.code, e.message)
        except (ChainUnavailable, grpc.RpcError) as e:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"chain node unavailable: {e}")
        except trio.RunFinishedError:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the swap daemon is stopping")

    def _tips(self) -> dict[str, int]:
        return {name: link.height for name, link in self.daemon.links.items()}

    def _row(self, swap_id: str) -> SwapRow:
        row = self.daemon.store.get(swap_id)
        if row is None:
            raise ServiceError(grpc.StatusCode.NOT_FOUND, f"swap {swap_id!r} not found")
        return row

    def GetInfo(self, request: spb.GetInfoRequest, context: grpc.ServicerContext) -> spb.GetInfoResponse:
        async def info() -> spb.GetInfoResponse:
            d = self.daemon
            rows = d.store.all()
            active = sum(1 for r in rows if not swap_status(r).finished)
            return spb.GetInfoResponse(
                version=VERSION, peer_address=d.peer_address, active_swaps=active, total_swaps=len(rows),
                chains=[spb.ChainInfo(chain=n, height=link.height, min_conf=link.settings.min_conf)
                        for n, link in sorted(d.links.items())])
        return self._run(context, info)  # type: ignore[no-any-return]

    def InitiateSwap(self, request: spb.InitiateSwapRequest, context: grpc.ServicerContext) -> spb.SwapStatus:
        async def initiate() -> spb.SwapStatus:
            return swap_status(await self.daemon.initiate(request), self._tips())
        return self._run(context, initiate)  # type: ignore[no-any-return]

    def AcceptSwap(self, request: spb.AcceptSwapRequest, context: grpc.ServicerContext) -> spb.SwapStatus:
        async def accept() -> spb.SwapStatus:
            return swap_status(await self.daemon.accept(request.swap_id), self._tips())
        return self._run(context, accept)  # type: ignore[no-any-return]

    def ListSwaps(self, request: spb.ListSwapsRequest, context: grpc.ServicerContext) -> spb.ListSwapsResponse:
        async def list_swaps() -> spb.ListSwapsResponse:
            return spb.ListSwapsResponse(swaps=[swap_status(r, self._tips()) for r in self.daemon.store.all()])
        return self._run(context, list_swaps)  # type: ignore[no-any-return]

    def SwapInfo(self, request: spb.SwapInfoRequest, context: grpc.ServicerContext) -> spb.SwapStatus:
        async def info() -> spb.SwapStatus:
            return swap_status(self._row(request.swap_id), self._tips())
        return self._run(context, info)  # type: ignore[no-any-return]
