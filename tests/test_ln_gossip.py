"""Integration: BOLT 7 gossip between three `canal channeld` in a line A–B–C (one regtest chaind).

Public channels are announced at 6 confirmations; A learns both channels, both directions' policies
and all three nodes; a policy change at C reaches A; A's graph survives SIGKILL; closing B–C prunes it;
a raw peer sending bad gossip gets a warning, malformed gossip gets disconnected, the daemon lives.

Channel status (seconds-scale --chan-disable-timeout / --chan-enable-timeout): C killed, B gossips B–C
disabled, A's pathfinding finds no route to C; C back, enabled, route found. `canal ln updatechanstatus`
disables by hand and it sticks until auto. A reconnecting to B with an up-to-date graph (gossip_queries_ex)
queries nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import grpc
import pytest
import trio
from daemons import ChainProcess, LightningProcess, connect_nodes, fund_node, wait_for

from base_chain.crypto import PrivateKey, PublicKey
from base_chain.params import get_params
from channels.peer import PeerLinkError, connect
from channels.wire import ErrorMessage, WarningMessage
from htlc.gossip import ChannelUpdate
from proto import chain_pb2 as pb
from proto import lightning_pb2 as ln
from proto import router_pb2 as router_pb

CAPACITY = 1_000_000
STATUS_ARGS = ["--chan-disable-timeout", "3s", "--chan-enable-timeout", "1s", "--chan-status-sample-interval", "0.5s"]


def _graph(node: LightningProcess) -> Any:
    return node.rpc.DescribeGraph(ln.ChannelGraphRequest())


def _until(get: Any, ok: Any, what: str) -> Any:
    """Poll ``get()`` until ``ok(value)``; return that value."""
    box: list[Any] = []

    def check() -> bool:
        box[:] = [get()]
        return bool(ok(box[0]))

    wait_for(check, 30, what)
    return box[0]


def _full(graph: Any, channels: int, nodes: int) -> bool:
    return (len(graph.edges) == channels and len(graph.nodes) == nodes
            and all(e.HasField("node1_policy") and e.HasField("node2_policy") for e in graph.edges)
            and all(n.alias for n in graph.nodes))


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("gossip")
    old = os.environ.get("CANAL_GOSSIP_TRICKLE_S")
    os.environ["CANAL_GOSSIP_TRICKLE_S"] = "0.3"
    chain = ChainProcess(tmp / "chain").start()
    nodes: list[LightningProcess] = []
    try:
        nodes += [LightningProcess(tmp / n, chain, alias=n, extra_args=STATUS_ARGS).start()
                  for n in ("alice", "bob", "carol")]
        chain.generate(101)
        alice, bob, carol = nodes
        fund_node(chain, alice, 10_000_000)
        fund_node(chain, bob, 10_000_000)
        chain.generate(1)
        for n in (alice, bob):
            wait_for(lambda n=n: n.rpc.WalletBalance(ln.WalletBalanceRequest()).confirmed_balance > 0, 30, "funded")
        connect_nodes(alice, bob)
        connect_nodes(bob, carol)
        ab = alice.rpc.OpenChannelSync(ln.OpenChannelRequest(node_pubkey=bytes.fromhex(bob.pubkey),
                                                             local_funding_amount=CAPACITY, sat_per_vbyte=2))
        bc = bob.rpc.OpenChannelSync(ln.OpenChannelRequest(node_pubkey=bytes.fromhex(carol.pubkey),
                                                           local_funding_amount=CAPACITY, sat_per_vbyte=2))
        chain.generate(6)
        wait_for(lambda: len(bob.rpc.ListChannels(ln.ListChannelsRequest(active_only=True)).channels) == 2, 30,
                 "both channels active")
        yield chain, alice, bob, carol, ab, bc
    finally:
        for p in [*nodes, chain]:
            p.stop()
        if old is None:
            os.environ.pop("CANAL_GOSSIP_TRICKLE_S", None)
        else:
            os.environ["CANAL_GOSSIP_TRICKLE_S"] = old


def test_public_channels_are_gossiped_to_the_far_end(line) -> None:
    chain, alice, bob, carol, ab, bc = line
    assert all(not c.private for c in bob.rpc.ListChannels(ln.ListChannelsRequest()).channels)
    graph = _until(lambda: _graph(alice), lambda g: _full(g, 2, 3), "alice's full graph")
    assert {n.pub_key: n.alias for n in graph.nodes} == {alice.pubkey: "alice", bob.pubkey: "bob",
                                                         carol.pubkey: "carol"}
    carol_node = next(n for n in graph.nodes if n.pub_key == carol.pubkey)
    assert carol_node.addresses[0].addr == f"127.0.0.1:{carol.info['listen_port']}"
    assert carol_node.color == "#" + carol.pubkey[2:8]
    for e in graph.edges:
        assert e.capacity == CAPACITY and e.node1_pub < e.node2_pub
        for p in (e.node1_policy, e.node2_policy):
            assert (p.fee_base_msat, p.fee_rate_milli_msat, p.time_lock_delta) == (1000, 1, 80)
            assert p.max_htlc_msat == CAPACITY * 1000 and not p.disabled
    bc_point = f"{bytes(bc.funding_txid_bytes)[::-1].hex()}:{bc.output_index}"
    bc_edge = next(e for e in graph.edges if e.chan_point == bc_point)
    assert {bc_edge.node1_pub, bc_edge.node2_pub} == {bob.pubkey, carol.pubkey}
    info = alice.rpc.GetChanInfo(ln.ChanInfoRequest(chan_id=bc_edge.channel_id, include_auth_proof=True))
    assert info.chan_point == bc_point and len(info.auth_proof.node_sig1) >= 8
    node = alice.rpc.GetNodeInfo(ln.NodeInfoRequest(pub_key=bob.pubkey, include_channels=True))
    assert node.num_channels == 2 and node.total_capacity == 2 * CAPACITY and len(node.channels) == 2
    net = alice.rpc.GetNetworkInfo(ln.NetworkInfoRequest())
    assert (net.num_nodes, net.num_channels, net.graph_diameter, net.max_out_degree) == (3, 2, 2, 2)
    assert net.total_network_capacity == 2 * CAPACITY and net.median_channel_size_sat == CAPACITY
    # lncli's JSON through `canal ln`, with the read-only macaroon (graph reads are info:read)
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "canal", "ln", "--datadir", str(alice.datadir), "--json",
                               *args], capture_output=True, text=True, timeout=30, check=False)

    out = cli("--readonly", "getchaninfo", "--chan_id", str(bc_edge.channel_id), "--include_auth_proof")
    assert out.returncode == 0, out.stderr
    edge = json.loads(out.stdout)
    assert edge["chan_point"] == bc_point and edge["auth_proof"]["bitcoin_sig2"].startswith("30")  # DER, in hex
    denied = cli("--readonly", "updatechanpolicy", "--base_fee_msat", "1", "--fee_rate_ppm", "1",
                 "--time_lock_delta", "40")
    assert denied.returncode == 1 and "PERMISSION_DENIED" in denied.stderr


def test_policy_update_reaches_alice(line) -> None:
    chain, alice, bob, carol, ab, bc = line
    req = ln.PolicyUpdateRequest(base_fee_msat=5000, fee_rate_ppm=250, time_lock_delta=40)
    setattr(req, "global", True)
    assert not carol.rpc.UpdateChannelPolicy(req).failed_updates
    fees = carol.rpc.FeeReport(ln.FeeReportRequest()).channel_fees
    assert [(f.base_fee_msat, f.fee_per_mil) for f in fees] == [(5000, 250)]

    def carols_policy() -> Any:
        for e in _graph(alice).edges:
            if carol.pubkey in (e.node1_pub, e.node2_pub):
                return e.node1_policy if e.node1_pub == carol.pubkey else e.node2_policy
        return None

    policy = _until(carols_policy, lambda p: p is not None and p.fee_base_msat == 5000, "carol's policy at alice")
    assert (policy.fee_rate_milli_msat, policy.time_lock_delta) == (250, 40)
    bad = ln.PolicyUpdateRequest(base_fee_msat=1, fee_rate_ppm=1, time_lock_delta=5)
    setattr(bad, "global", True)
    with pytest.raises(Exception, match="too small"):
        carol.rpc.UpdateChannelPolicy(bad)
    missing = ln.PolicyUpdateRequest(base_fee_msat=1, fee_rate_ppm=1, time_lock_delta=40,
                                     chan_point=ln.ChannelPoint(funding_txid_str="00" * 32, output_index=0))
    assert carol.rpc.UpdateChannelPolicy(missing).failed_updates[0].reason == ln.UPDATE_FAILURE_NOT_FOUND
    too_big = ln.PolicyUpdateRequest(base_fee_msat=1, fee_rate_ppm=1, time_lock_delta=40,
                                     max_htlc_msat=CAPACITY * 1000 + 1, chan_point=bc)
    failed = carol.rpc.UpdateChannelPolicy(too_big).failed_updates
    assert failed[0].reason == ln.UPDATE_FAILURE_INVALID_PARAMETER and "capacity" in failed[0].update_error
    assert carol.rpc.FeeReport(ln.FeeReportRequest()).channel_fees[0].base_fee_msat == 5000  # unchanged


def test_graph_survives_sigkill(line) -> None:
    chain, alice, bob, carol, ab, bc = line
    alice.kill()
    alice.start()
    graph = _graph(alice)  # read from graph.sqlite at start, before any peer could resend it
    assert len(graph.edges) == 2 and len(graph.nodes) == 3
    wait_for(lambda: alice.rpc.ListChannels(ln.ListChannelsRequest(active_only=True)).channels, 30, "reconnected")


async def _raw_peer(node: LightningProcess, scid: int) -> tuple[list[str], bool]:
    """A raw BOLT 8 peer: a badly signed channel_update, then a malformed one; what came back."""
    params = get_params("regtest")
    link = await connect("127.0.0.1", node.info["listen_port"], PrivateKey(os.urandom(32)),
                         PublicKey.from_bytes(bytes.fromhex(node.pubkey)), params.genesis_hash)
    warnings: list[str] = []
    try:
        bad = ChannelUpdate(chain_hash=params.genesis_hash, short_channel_id=scid, timestamp=int(time.time()) + 5,
                            cltv_expiry_delta=40, htlc_minimum_msat=1, fee_base_msat=0,
                            fee_proportional_millionths=0, htlc_maximum_msat=1000)
        await link.send(bad)
        with trio.fail_after(20):
            while not warnings:
                msg = await link.receive()
                if isinstance(msg, WarningMessage):
                    warnings.append(msg.printable_data())
        # Malformed: a channel_update cut short. The node closes the connection (BOLT 1).
        await link.stream.send_all(link.transport.encrypt(bytes.fromhex("0102") + b"\x00" * 10))
        closed = False
        with trio.fail_after(20):
            try:
                while True:
                    msg = await link.receive()
                    if isinstance(msg, ErrorMessage):
                        warnings.append("error: " + msg.printable_data())
            except PeerLinkError:
                closed = True
        return warnings, closed
    finally:
        await link.aclose()


def test_bad_gossip_from_a_raw_peer(line) -> None:
    chain, alice, bob, carol, ab, bc = line
    scid = _graph(bob).edges[0].channel_id
    warnings, closed = trio.run(_raw_peer, bob, scid)
    assert "channel_update" in warnings[0] and closed
    assert bob.alive() and bob.rpc.GetInfo(ln.GetInfoRequest()).identity_pubkey == bob.pubkey
    assert len(_graph(bob).edges) == 2


def _policy_of(graph: Any, chan_point: str, node: LightningProcess) -> Any:
    for e in graph.edges:
        if e.chan_point == chan_point:
            return e.node1_policy if e.node1_pub == node.pubkey else e.node2_policy
    return None


def _point(cp: Any) -> str:
    return f"{bytes(cp.funding_txid_bytes)[::-1].hex()}:{cp.output_index}"


def _route_to(node: LightningProcess, dest: LightningProcess) -> Any:
    try:
        return node.rpc.QueryRoutes(ln.QueryRoutesRequest(pub_key=dest.pubkey, amt=1000))
    except grpc.RpcError as e:
        return e


def test_a_peer_offline_gets_its_channel_disabled_and_enabled_when_back(line) -> None:
    chain, alice, bob, carol, ab, bc = line
    bc_point = _point(bc)
    _until(lambda: _graph(alice), lambda g: _full(g, 2, 3), "alice's full graph")
    before = _policy_of(_graph(alice), bc_point, bob)
    assert not before.disabled and len(_route_to(alice, carol).routes[0].hops) == 2
    carol.kill()
    off = _until(lambda: _policy_of(_graph(alice), bc_point, bob), lambda p: p.disabled, "B–C disabled at alice")
    assert off.last_update > before.last_update
    assert _policy_of(_graph(bob), bc_point, bob).disabled
    failed = _route_to(alice, carol)
    assert isinstance(failed, grpc.RpcError) and "unable to find a path" in (failed.details() or "")
    carol.start()
    on = _until(lambda: _policy_of(_graph(alice), bc_point, bob), lambda p: not p.disabled, "B–C enabled again")
    assert on.last_update > off.last_update
    route = _until(lambda: _route_to(alice, carol), lambda r: not isinstance(r, grpc.RpcError), "a route to carol")
    assert [h.pub_key for h in route.routes[0].hops] == [bob.pubkey, carol.pubkey]


def test_updatechanstatus_disables_by_hand_until_auto(line) -> None:
    chain, alice, bob, carol, ab, bc = line
    bc_point = _point(bc)
    wait_for(lambda: any(p.pub_key == carol.pubkey for p in bob.rpc.ListPeers(ln.ListPeersRequest()).peers), 30,
             "carol connected")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "canal", "ln", "--datadir", str(bob.datadir), "--json", *args],
                              capture_output=True, text=True, timeout=30, check=False)

    out = cli("updatechanstatus", "--chan_point", bc_point, "--action", "disable")
    assert out.returncode == 0 and json.loads(out.stdout) == {}, out.stderr
    off = _until(lambda: _policy_of(_graph(alice), bc_point, bob), lambda p: p.disabled, "manual disable at alice")
    # The peer has been connected for longer than the enable timeout: an automatic enable would be out after
    # one more sample interval. The manual disable holds.
    time.sleep(2.0)
    assert _policy_of(_graph(bob), bc_point, bob).last_update == off.last_update
    assert isinstance(_route_to(alice, carol), grpc.RpcError)
    txid, _, index = bc_point.partition(":")
    out = cli("updatechanstatus", txid, index, "auto")  # lncli's positional form
    assert out.returncode == 0, out.stderr
    _until(lambda: _policy_of(_graph(alice), bc_point, bob), lambda p: not p.disabled, "enabled after auto")
    missing = cli("updatechanstatus", "--chan_point", "00" * 32 + ":0", "--action", "enable")
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
    bad = cli("updatechanstatus", "--chan_point", bc_point, "--action", "off")
    assert bad.returncode == 1 and "action must be one of" in bad.stderr
    denied = cli("--readonly", "updatechanstatus", "--chan_point", bc_point, "--action", "disable")
    assert denied.returncode == 1 and "PERMISSION_DENIED" in denied.stderr
    with pytest.raises(grpc.RpcError) as e:
        alice.router.UpdateChanStatus(router_pb.UpdateChanStatusRequest(
            chan_point=ln.ChannelPoint(funding_txid_str="zz", output_index=0), action=router_pb.ENABLE))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_reconnecting_node_with_an_up_to_date_graph_queries_nothing(line) -> None:
    chain, alice, bob, carol, ab, bc = line
    _until(lambda: _graph(alice), lambda g: _full(g, 2, 3) and all(
        not p.disabled for e in g.edges for p in (e.node1_policy, e.node2_policy)), "alice's graph up to date")
    log = alice.datadir / "debug.log"
    seen = log.stat().st_size
    alice.rpc.DisconnectPeer(ln.DisconnectPeerRequest(pub_key=bob.pubkey))

    def synced() -> list[str]:
        with open(log, "rb") as f:
            f.seek(seen)
            return [line for line in f.read().decode(errors="replace").splitlines()
                    if bob.pubkey[:16] in line and ("graph sync" in line or "reply_channel_range" in line)]

    lines = _until(synced, lambda lines: len(lines) >= 2, "alice synced with bob again")
    assert lines[0].endswith("graph sync with timestamps and checksums (gossip_queries_ex)"), lines
    assert lines[1].endswith("reply_channel_range of 2 channels, 0 to query"), lines


def test_closing_prunes_the_channel(line) -> None:
    chain, alice, bob, carol, ab, bc = line
    for _ in bob.rpc.CloseChannel(ln.CloseChannelRequest(channel_point=bc, sat_per_vbyte=2)):
        break  # close_pending: the closing transaction is out
    wait_for(lambda: chain.rpc.GetRawMempool(pb.GetRawMempoolRequest()).txids, 30, "closing tx in the mempool")
    chain.generate(1)
    graph = _until(lambda: _graph(alice), lambda g: len(g.edges) == 1, "B–C pruned at alice")
    assert carol.pubkey not in {graph.edges[0].node1_pub, graph.edges[0].node2_pub}
    assert len(graph.nodes) == 2
