"""lnd's graph RPCs on `canal channeld`: DescribeGraph, GetChanInfo, GetNodeInfo, GetNetworkInfo and
UpdateChannelPolicy (a mixin composed onto the node's ``lnrpc.Lightning`` servicer: :func:`graph_servicer_class`).

The graph is what gossip gave us (:class:`htlc.gossip_sync.GossipStore`), as lnd
shows it: node1/node2 in BOLT 7 order, a direction's policy only once its
``channel_update`` arrived, channels whose funding output is spent left out.
"""

from __future__ import annotations

import math
from collections import deque
from functools import partial
from statistics import median
from typing import TYPE_CHECKING, Any

import grpc
import trio

from base_chain.crypto.der import encode_der
from channels.service import LightningServicer, LnRpcError, invalid
from channels.state import ChannelState
from proto import lightning_pb2 as ln

from .gossip import ChannelUpdate, NodeAnnouncement
from .policy import ForwardingPolicy, PolicyError, channel_point_of, replace_fields
from .service import feature_bits_to_pb

if TYPE_CHECKING:
    from .gossip_node import GossipNode
    from .node import PaymentNode

__all__ = ["GRAPH_PERMISSIONS", "GraphLightningMixin", "graph_servicer_class"]

_LN = "/lnrpc.Lightning/"
GRAPH_PERMISSIONS: dict[str, set[str]] = {
    _LN + "DescribeGraph": {"info:read"},
    _LN + "GetChanInfo": {"info:read"},
    _LN + "GetNodeInfo": {"info:read"},
    _LN + "GetNetworkInfo": {"info:read"},
    _LN + "UpdateChannelPolicy": {"offchain:write"},
}
"""lnd's permissions for these methods."""

MAX_DIAMETER_NODES = 500
"""GetNetworkInfo computes the graph diameter (a BFS per node) only up to this many nodes."""
_NETWORKS = {1: "tcp", 2: "tcp", 3: "onion", 4: "onion", 5: "dns"}


def _sig_der(compact: bytes) -> bytes:
    return encode_der(int.from_bytes(compact[:32], "big"), int.from_bytes(compact[32:], "big"))


def routing_policy_to_pb(u: ChannelUpdate) -> ln.RoutingPolicy:
    return ln.RoutingPolicy(
        time_lock_delta=u.cltv_expiry_delta, min_htlc=u.htlc_minimum_msat, fee_base_msat=u.fee_base_msat,
        fee_rate_milli_msat=u.fee_proportional_millionths, disabled=u.disabled, max_htlc_msat=u.htlc_maximum_msat,
        last_update=u.timestamp,
    )


def node_to_pb(pub: bytes, ann: NodeAnnouncement | None) -> ln.LightningNode:
    if ann is None:
        return ln.LightningNode(pub_key=pub.hex())
    try:
        addresses = [ln.NodeAddress(network=_NETWORKS.get(a.type, "tcp"), addr=f"{a.host}:{a.port}"
                                    if a.type != 2 else f"[{a.host}]:{a.port}") for a in ann.address_descriptors()]
    except ValueError:
        addresses = []
    return ln.LightningNode(
        last_update=ann.timestamp, pub_key=pub.hex(), alias=ann.alias_text, addresses=addresses,
        color="#" + ann.rgb_color.hex(), features=feature_bits_to_pb(int.from_bytes(ann.features, "big")),
    )


class GraphLightningMixin(LightningServicer):
    """lnd's graph RPCs of ``lnrpc.Lightning``."""

    d: PaymentNode
    _policy_update_lock: trio.Lock | None = None

    @property
    def _gossip(self) -> GossipNode:
        return self.d.gossip

    def _policy_lock(self) -> trio.Lock:
        """Serializes UpdateChannelPolicy (made in the trio thread, on first use)."""
        if self._policy_update_lock is None:
            self._policy_update_lock = trio.Lock()
        return self._policy_update_lock

    # --- views ------------------------------------------------------------------------------------------------

    def _live_channels(self) -> list[int]:
        store = self._gossip.store
        return [s for s in store.short_channel_ids() if not store.is_spent(s)]

    def _edge(self, scid: int, auth_proof: bool) -> ln.ChannelEdge:
        g = self._gossip
        ann = g.store.channel_announcement(scid)
        assert ann is not None
        updates = [g.store.channel_update(scid, d) for d in (0, 1)]
        op = g.funding.get(scid)
        edge = ln.ChannelEdge(
            channel_id=scid, chan_point="" if op is None else f"{op.txid[::-1].hex()}:{op.index}",
            last_update=max((u.timestamp for u in updates if u is not None), default=0),
            node1_pub=ann.node_id_1.to_bytes().hex(), node2_pub=ann.node_id_2.to_bytes().hex(),
            capacity=self._capacity(scid),
        )
        if updates[0] is not None:
            edge.node1_policy.CopyFrom(routing_policy_to_pb(updates[0]))
        if updates[1] is not None:
            edge.node2_policy.CopyFrom(routing_policy_to_pb(updates[1]))
        if auth_proof:
            edge.auth_proof.CopyFrom(ln.ChannelAuthProof(
                node_sig1=_sig_der(ann.node_signature_1), bitcoin_sig1=_sig_der(ann.bitcoin_signature_1),
                node_sig2=_sig_der(ann.node_signature_2), bitcoin_sig2=_sig_der(ann.bitcoin_signature_2)))
        return edge

    def _capacity(self, scid: int) -> int:
        return self._gossip.store.capacity_sat(scid) or 0

    def _unannounced_edges(self) -> list[ln.ChannelEdge]:
        """Our open channels that are not (yet) in the public graph, with our policy (include_unannounced)."""
        out = []
        me = self._gossip.node_id
        for mc in self.d.channels.channels.values():
            c, scid = mc.channel.commitments, mc.channel.short_channel_id
            if mc.channel.state is not ChannelState.NORMAL or c is None or not scid or scid in self._gossip.store:
                continue
            view = self._gossip.policies.policy(channel_point_of(mc)).for_capacity(c.params.funding_sat)
            policy = ln.RoutingPolicy(time_lock_delta=view.cltv_expiry_delta, min_htlc=view.htlc_minimum_msat,
                                      fee_base_msat=view.fee_base_msat,
                                      fee_rate_milli_msat=view.fee_proportional_millionths,
                                      max_htlc_msat=view.htlc_maximum_msat)
            first = me < mc.peer
            edge = ln.ChannelEdge(channel_id=scid, chan_point=channel_point_of(mc), capacity=c.params.funding_sat,
                                  node1_pub=(me if first else mc.peer).hex(), node2_pub=(mc.peer if first else me).hex())
            (edge.node1_policy if first else edge.node2_policy).CopyFrom(policy)
            out.append(edge)
        return out

    def _nodes(self, scids: list[int]) -> list[bytes]:
        seen: dict[bytes, None] = {}
        for scid in scids:
            ann = self._gossip.store.channel_announcement(scid)
            if ann is not None:
                seen.setdefault(ann.node_id_1.to_bytes())
                seen.setdefault(ann.node_id_2.to_bytes())
        return list(seen)

    def _node_pb(self, pub: bytes) -> ln.LightningNode:
        return node_to_pb(pub, self._gossip.store.node_announcement(pub))

    def _find_scid(self, chan_id: int, chan_point: str) -> int:
        g = self._gossip
        if chan_id:
            if chan_id in g.store and not g.store.is_spent(chan_id):
                return chan_id
            raise LnRpcError(grpc.StatusCode.NOT_FOUND, "edge not found")
        if chan_point:
            txid_hex, sep, index = chan_point.partition(":")
            if not sep or not index.isdigit() or len(txid_hex) != 64:
                raise invalid(f"invalid channel point {chan_point!r}: expected txid:index")
            for scid, op in g.funding.items():
                if op.txid[::-1].hex() == txid_hex.lower() and op.index == int(index) and not g.store.is_spent(scid):
                    return scid
            raise LnRpcError(grpc.StatusCode.NOT_FOUND, "edge not found")
        raise invalid("chan_id or chan_point is required")

    # --- RPCs -------------------------------------------------------------------------------------------------

    def DescribeGraph(self, request: ln.ChannelGraphRequest, context: grpc.ServicerContext) -> ln.ChannelGraph:
        async def fn() -> ln.ChannelGraph:
            scids = self._live_channels()
            edges = [self._edge(s, request.include_auth_proof) for s in scids]
            nodes = self._nodes(scids)
            if request.include_unannounced:
                extra = self._unannounced_edges()
                edges += extra
                for e in extra:
                    for pub in (bytes.fromhex(e.node1_pub), bytes.fromhex(e.node2_pub)):
                        if pub not in nodes:
                            nodes.append(pub)
            return ln.ChannelGraph(nodes=[self._node_pb(n) for n in nodes], edges=edges)
        return self.run(context, fn)

    def GetChanInfo(self, request: ln.ChanInfoRequest, context: grpc.ServicerContext) -> ln.ChannelEdge:
        async def fn() -> ln.ChannelEdge:
            return self._edge(self._find_scid(request.chan_id, request.chan_point), request.include_auth_proof)
        return self.run(context, fn)

    def GetNodeInfo(self, request: ln.NodeInfoRequest, context: grpc.ServicerContext) -> ln.NodeInfo:
        async def fn() -> ln.NodeInfo:
            try:
                pub = bytes.fromhex(request.pub_key)
            except ValueError:
                raise invalid("unable to decode pub_key: not hex") from None
            if len(pub) != 33:
                raise invalid("pub_key must be a 33-byte compressed public key")
            scids = [s for s in self._live_channels() if pub in self._nodes([s])]
            if pub == self._gossip.node_id and self._gossip.store.node_announcement(pub) is None:
                d = self.d  # as lnd: our own node is always in the graph, announced or not
                node = ln.LightningNode(pub_key=pub.hex(), alias=d.alias, color="#" + pub[1:4].hex())
                return ln.NodeInfo(node=node, num_channels=len(scids),
                                   total_capacity=sum(self._capacity(s) for s in scids))
            if not scids and self._gossip.store.node_announcement(pub) is None:
                raise LnRpcError(grpc.StatusCode.NOT_FOUND, "unable to find node")
            channels = [self._edge(s, request.include_auth_proof) for s in scids] if request.include_channels else []
            return ln.NodeInfo(node=self._node_pb(pub), num_channels=len(scids),
                               total_capacity=sum(self._capacity(s) for s in scids), channels=channels)
        return self.run(context, fn)

    def GetNetworkInfo(self, request: ln.NetworkInfoRequest, context: grpc.ServicerContext) -> ln.NetworkInfo:
        async def fn() -> ln.NetworkInfo:
            scids = self._live_channels()
            nodes = self._nodes(scids)
            sizes = [self._capacity(s) for s in scids]
            adjacency: dict[bytes, set[bytes]] = {n: set() for n in nodes}
            degree: dict[bytes, int] = dict.fromkeys(nodes, 0)
            for s in scids:
                ann = self._gossip.store.channel_announcement(s)
                assert ann is not None
                a, b = ann.node_id_1.to_bytes(), ann.node_id_2.to_bytes()
                adjacency[a].add(b)
                adjacency[b].add(a)
                degree[a] += 1
                degree[b] += 1
            return ln.NetworkInfo(
                graph_diameter=_diameter(adjacency) if len(nodes) <= MAX_DIAMETER_NODES else 0,
                avg_out_degree=2 * len(scids) / len(nodes) if nodes else 0.0,
                max_out_degree=max(degree.values(), default=0), num_nodes=len(nodes), num_channels=len(scids),
                total_network_capacity=sum(sizes), avg_channel_size=sum(sizes) / len(sizes) if sizes else 0.0,
                min_channel_size=min(sizes, default=0), max_channel_size=max(sizes, default=0),
                median_channel_size_sat=int(median(sizes)) if sizes else 0, num_zombie_chans=0,
            )
        return self.run(context, fn)

    def UpdateChannelPolicy(self, request: ln.PolicyUpdateRequest,
                            context: grpc.ServicerContext) -> ln.PolicyUpdateResponse:
        return self.run(context, partial(self.update_channel_policy, request))

    async def update_channel_policy(self, request: ln.PolicyUpdateRequest) -> ln.PolicyUpdateResponse:
        """UpdateChannelPolicy in the node's trio loop, one call at a time: the channels refused the update (and
        the chan_point looked up) are computed under the same lock as the change, so a concurrent update can
        neither slip in between nor make the refusals reported stale."""
        async with self._policy_lock():
            scope = request.WhichOneof("scope")
            if scope is None:
                raise invalid("unknown scope: global or chan_point is required")
            if request.fee_rate and request.fee_rate_ppm:
                raise invalid("fee_rate and fee_rate_ppm are mutually exclusive")
            if not math.isfinite(request.fee_rate) or request.fee_rate < 0:
                raise invalid("fee rate must be a non-negative number")
            ppm = request.fee_rate_ppm if request.fee_rate_ppm else round(request.fee_rate * 1_000_000)
            if request.fee_rate and ppm < 1:
                raise invalid(f"fee rate of {request.fee_rate} is too small, min fee rate is 1e-06")
            fields: dict[str, int | None] = {
                "fee_base_msat": request.base_fee_msat, "fee_rate_ppm": ppm, "time_lock_delta": request.time_lock_delta,
                "min_htlc_msat": request.min_htlc_msat if request.min_htlc_msat_specified else None,
                "max_htlc_msat": request.max_htlc_msat or None,  # lnd: 0 leaves the maximum unchanged
            }

            def change(p: ForwardingPolicy) -> ForwardingPolicy:
                return replace_fields(p, **fields)

            failed: list[ln.FailedUpdate] = []
            points: list[str] | None = None
            if scope == "chan_point":
                cp = request.chan_point
                txid = bytes(cp.funding_txid_bytes)[::-1].hex() if cp.funding_txid_bytes else cp.funding_txid_str
                point = f"{txid}:{cp.output_index}"
                ours = {channel_point_of(mc) for mc in self.d.channels.channels.values()
                        if mc.channel.state is ChannelState.NORMAL}
                if point not in ours:
                    failed.append(ln.FailedUpdate(outpoint=_outpoint_pb(txid, cp.output_index),
                                                  reason=ln.UPDATE_FAILURE_NOT_FOUND, update_error="not found"))
                    return ln.PolicyUpdateResponse(failed_updates=failed)
                points = [point]
            try:
                _, refused = await self._gossip.update_policy(points, change)
            except PolicyError as e:
                raise invalid(str(e)) from None
            for point, why in refused.items():
                txid, _, index = point.partition(":")
                failed.append(ln.FailedUpdate(outpoint=_outpoint_pb(txid, int(index)),
                                              reason=ln.UPDATE_FAILURE_INVALID_PARAMETER, update_error=why))
            return ln.PolicyUpdateResponse(failed_updates=failed)


def _outpoint_pb(txid_hex: str, index: int) -> ln.OutPoint:
    try:
        raw = bytes.fromhex(txid_hex)[::-1]
    except ValueError:
        raw = b""
    return ln.OutPoint(txid_bytes=raw, txid_str=txid_hex, output_index=index)


def _diameter(adjacency: dict[bytes, set[bytes]]) -> int:
    """The longest shortest path (in hops) between two connected nodes."""
    best = 0
    for start in adjacency:
        seen = {start: 0}
        queue = deque([start])
        while queue:
            n = queue.popleft()
            for m in adjacency[n]:
                if m not in seen:
                    seen[m] = seen[n] + 1
                    best = max(best, seen[m])
                    queue.append(m)
    return best


def graph_servicer_class(base: type[Any]) -> type[Any]:
    """``base`` (the node's ``lnrpc.Lightning`` servicer) with the graph RPCs added."""
    return type("GraphLightningServicer", (GraphLightningMixin, base), {})
