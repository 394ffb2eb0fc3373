"""Start real Canal daemons on 127.0.0.1 with ephemeral ports (shared with `canal demo`), and the
steps the Lightning integration tests share."""

from __future__ import annotations

from canal.procs import ChainProcess, LightningProcess, in_parallel, wait_for
from proto import chain_pb2 as pb
from proto import lightning_pb2 as ln

__all__ = ["ChainProcess", "LightningProcess", "connect_nodes", "fund_node", "graph_complete", "in_parallel",
           "wait_for"]


def fund_node(chain: ChainProcess, node: LightningProcess, sat: int) -> None:
    """Pay ``sat`` from the chain node's wallet to a new address of the Lightning node's wallet."""
    addr = node.rpc.NewAddress(ln.NewAddressRequest()).address
    chain.rpc.SendToAddress(pb.SendToAddressRequest(address=addr, amount_sat=sat, fee_rate_sat_vb=2))


def connect_nodes(a: LightningProcess, b: LightningProcess) -> None:
    """``a`` connects to ``b``; returns once ``b`` lists ``a`` as a peer."""
    a.rpc.ConnectPeer(ln.ConnectPeerRequest(addr=ln.LightningAddress(
        pubkey=b.pubkey, host=f"127.0.0.1:{b.info['listen_port']}")))
    wait_for(lambda: any(p.pub_key == a.pubkey for p in b.rpc.ListPeers(ln.ListPeersRequest()).peers), 20, "peer")


def graph_complete(node: LightningProcess, channels: int) -> bool:
    """``node``'s graph (DescribeGraph) has ``channels`` channels, each with both directions' policies."""
    g = node.rpc.DescribeGraph(ln.ChannelGraphRequest())
    return len(g.edges) == channels and all(e.HasField("node1_policy") and e.HasField("node2_policy") for e in g.edges)
