"""Integration: `canal channeld` processes on a `canal chaind`, driven with lnd's gRPC API and `canal ln`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from daemons import ChainProcess, LightningProcess, wait_for
from proto import chain_pb2 as pb
from proto import lightning_pb2 as ln


@pytest.fixture
def net(tmp_path: Path):
    procs: list = []

    def chain(name: str = "chain") -> ChainProcess:
        c = ChainProcess(tmp_path / name).start()
        procs.append(c)
        return c

    def lightning(name: str, c: ChainProcess) -> LightningProcess:
        n = LightningProcess(tmp_path / name, c).start()
        procs.append(n)
        return n

    yield chain, lightning
    for p in reversed(procs):
        p.stop()


def test_getinfo_wallet_and_peers(net) -> None:
    chain, lightning = net
    c = chain()
    c.generate(1)
    alice, bob = lightning("alice", c), lightning("bob", c)
    info = alice.rpc.GetInfo(ln.GetInfoRequest())
    assert info.identity_pubkey == alice.pubkey and len(info.identity_pubkey) == 66
    assert info.alias == "alice" and info.color.startswith("#")
    assert info.chains[0].network == "regtest" and info.block_height == 1 and info.synced_to_chain
    assert info.uris == [alice.uri] and info.version.endswith("canal")
    assert 15 in info.features or 14 in info.features  # payment_addr

    addr = alice.rpc.NewAddress(ln.NewAddressRequest(type=ln.WITNESS_PUBKEY_HASH)).address
    assert addr.startswith("bcrt1q")
    c.generate(101, addr)
    wait_for(lambda: alice.rpc.WalletBalance(ln.WalletBalanceRequest()).confirmed_balance > 0, 30, "alice funded")
    bal = alice.rpc.WalletBalance(ln.WalletBalanceRequest())
    assert bal.confirmed_balance == 50 * 100_000_000

    bob_addr = bob.rpc.NewAddress(ln.NewAddressRequest()).address
    txid = alice.rpc.SendCoins(ln.SendCoinsRequest(addr=bob_addr, amount=2_000_000, sat_per_vbyte=2)).txid
    assert txid in c.rpc.GetRawMempool(pb.GetRawMempoolRequest()).txids
    c.generate(1)
    wait_for(lambda: bob.rpc.WalletBalance(ln.WalletBalanceRequest()).confirmed_balance == 2_000_000, 30, "bob paid")

    alice.rpc.ConnectPeer(ln.ConnectPeerRequest(addr=ln.LightningAddress(pubkey=bob.pubkey,
                                                                        host=f"127.0.0.1:{bob.info['listen_port']}")))
    wait_for(lambda: len(bob.rpc.ListPeers(ln.ListPeersRequest()).peers) == 1, 20, "bob sees alice")
    peers = alice.rpc.ListPeers(ln.ListPeersRequest()).peers
    assert peers[0].pub_key == bob.pubkey and not peers[0].inbound
    assert bob.rpc.ListPeers(ln.ListPeersRequest()).peers[0].inbound

    for bad in (
        lambda: alice.rpc.SendCoins(ln.SendCoinsRequest(addr="alpha1qxyz", amount=1000)),
        lambda: alice.rpc.SendCoins(ln.SendCoinsRequest(addr=bob_addr, amount=-5)),
        lambda: alice.rpc.ConnectPeer(ln.ConnectPeerRequest(addr=ln.LightningAddress(pubkey="02ab", host="127.0.0.1:1"))),
    ):
        with pytest.raises(grpc.RpcError) as err:
            bad()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()

    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "canal", "ln", "--datadir", str(alice.datadir), "--json", *args],
        capture_output=True, text=True, timeout=60)
    r = run("getinfo")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["identity_pubkey"] == alice.pubkey and doc["num_peers"] == 1
    r = run("walletbalance")
    assert json.loads(r.stdout)["confirmed_balance"].isdigit()  # lncli prints int64 as strings
    r = run("disconnect", bob.pubkey)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: not alice.rpc.ListPeers(ln.ListPeersRequest()).peers, 20, "disconnected")
    r = run("connect", "nonsense")
    assert r.returncode != 0
