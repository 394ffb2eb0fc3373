"""UpdateChannelPolicy runs one call at a time (htlc.graph_service): the channels refused an update are computed
under the same lock as the change, so two concurrent calls can never report refusals computed before the other
call changed the policies. The servicer's trio half is driven directly, with a gossip node that yields between
computing its refusals and applying the change (as GossipNode.update_policy does while it waits for its lock)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import trio

from htlc.graph_service import GraphLightningMixin
from htlc.policy import PolicyBook
from proto import lightning_pb2 as ln


class YieldingGossip:
    """Computes the refusals from the book, yields, then applies: what a concurrent call could slip into."""

    def __init__(self) -> None:
        self.policies = PolicyBook()
        self.events: list[tuple[str, int]] = []

    async def update_policy(self, points: list[str] | None, change: Any) -> tuple[list[str], dict[str, str]]:
        new = change(self.policies.default)
        refused = {"x:0": "max above capacity"} if (new.max_htlc_msat or 0) > 1_000_000 else {}
        self.events.append(("refusals", new.fee_base_msat))
        await trio.sleep(0)
        await trio.sleep(0)
        self.policies.update([], change, everything=True)
        self.events.append(("applied", new.fee_base_msat))
        return [], refused


def _servicer(gossip: YieldingGossip) -> GraphLightningMixin:
    servicer = object.__new__(GraphLightningMixin)
    servicer.d = SimpleNamespace(gossip=gossip, channels=SimpleNamespace(channels={}))  # type: ignore[assignment]
    return servicer


async def test_concurrent_updates_are_serialized() -> None:
    gossip = YieldingGossip()
    servicer = _servicer(gossip)
    results: dict[int, ln.PolicyUpdateResponse] = {}

    async def update(fee: int, max_htlc: int) -> None:
        request = ln.PolicyUpdateRequest(base_fee_msat=fee, time_lock_delta=40, max_htlc_msat=max_htlc,
                                         **{"global": True})
        results[fee] = await servicer.update_channel_policy(request)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(update, 5, 2_000_000)
        nursery.start_soon(update, 7, 500_000)
    assert gossip.events in ([("refusals", 5), ("applied", 5), ("refusals", 7), ("applied", 7)],
                             [("refusals", 7), ("applied", 7), ("refusals", 5), ("applied", 5)])
    assert [f.update_error for f in results[5].failed_updates] == ["max above capacity"]
    assert not results[7].failed_updates
    assert gossip.policies.default.fee_base_msat in (5, 7)
    assert gossip.policies.default.time_lock_delta == 40


async def test_a_refused_request_releases_the_lock() -> None:
    servicer = _servicer(YieldingGossip())
    from channels.service import LnRpcError

    try:
        await servicer.update_channel_policy(ln.PolicyUpdateRequest())  # no scope
    except LnRpcError as e:
        assert "scope" in e.message
    else:
        raise AssertionError("no scope accepted")
    with trio.fail_after(5):
        assert not (await servicer.update_channel_policy(ln.PolicyUpdateRequest(time_lock_delta=40, **{"global": True}))).failed_updates
