"""Integration: real `canal chaind` processes on loopback, driven over gRPC and the CLI."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

from base_chain.params import get_params
from daemons import ChainProcess, wait_for
from proto import chain_pb2 as pb
from proto import chain_pb2_grpc as pb_grpc


@pytest.fixture
def nodes(tmp_path: Path):
    started: list[ChainProcess] = []

    def start(name: str, chain: str = "regtest", connect: list[str] | None = None) -> ChainProcess:
        n = ChainProcess(tmp_path / name, chain, connect).start()
        started.append(n)
        return n

    yield start
    for n in started:
        n.stop()


def _synced(nodes: list[ChainProcess], height: int) -> bool:
    return all(n.height() == height for n in nodes) and len({n.best() for n in nodes}) == 1


def test_three_nodes_sync_200_blocks_and_reorg_10(nodes) -> None:
    a = nodes("a")
    a.generate(200)
    b = nodes("b", connect=[a.p2p_addr])
    c = nodes("c", connect=[b.p2p_addr])
    wait_for(lambda: _synced([a, b, c], 200), 60, "three nodes at height 200")
    peers = b.rpc.GetPeerInfo(pb.GetPeerInfoRequest()).peers
    assert len(peers) == 2 and all(p.version == 70016 for p in peers)

    # Partition c, let both sides mine, then heal: a and b reorganize 10 blocks onto c's longer branch.
    c.rpc.AddNode(pb.AddNodeRequest(node=b.p2p_addr, command="remove"))
    wait_for(lambda: not c.rpc.GetPeerInfo(pb.GetPeerInfoRequest()).peers, 20, "c disconnected")
    a.generate(10)
    c.generate(11)
    wait_for(lambda: _synced([a, b], 210), 30, "a and b at 210")
    old_tip = a.best()
    c.rpc.AddNode(pb.AddNodeRequest(node=b.p2p_addr, command="add"))
    wait_for(lambda: _synced([a, b, c], 211), 60, "reorg to c's branch")
    assert a.best() == c.best() != old_tip
    # The old branch's blocks are no longer in the active chain.
    header = a.rpc.GetBlockHeader(pb.GetBlockHeaderRequest(blockhash=old_tip, verbose=True))
    assert header.confirmations == -1


def test_alpha_and_beta_refuse_each_other(nodes) -> None:
    alpha = nodes("alpha", chain="alpha")
    beta = nodes("beta", chain="beta", connect=[alpha.p2p_addr])
    wait_for(lambda: "wrong network magic" in (alpha.stderr() + beta.stderr()), 20, "magic mismatch logged")
    for n in (alpha, beta):
        assert all(p.version == 0 for p in n.rpc.GetPeerInfo(pb.GetPeerInfoRequest()).peers)
    info = alpha.rpc.GetBlockchainInfo(pb.GetBlockchainInfoRequest())
    assert info.chain == "alpha" and info.bestblockhash == get_params("alpha").genesis_hash_hex()
    beta_addr = beta.rpc.GetNewAddress(pb.GetNewAddressRequest()).address
    assert beta_addr.startswith("beta1")
    with pytest.raises(grpc.RpcError) as err:
        alpha.generate(1, beta_addr)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "wrong network" in err.value.details()


def test_bad_rpc_input_gets_invalid_argument(nodes) -> None:
    n = nodes("n")
    rpc = n.rpc
    n.generate(101)
    cases = [
        lambda: rpc.SendRawTransaction(pb.SendRawTransactionRequest(hexstring="zz-not-hex")),
        lambda: rpc.SendRawTransaction(pb.SendRawTransactionRequest(hexstring="0200000001")),
        lambda: rpc.DecodeRawTransaction(pb.DecodeRawTransactionRequest(hexstring="00")),
        lambda: rpc.GenerateToAddress(pb.GenerateToAddressRequest(nblocks=1, address="notanaddress")),
        lambda: rpc.SendToAddress(pb.SendToAddressRequest(address="bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", amount_sat=1000)),
        lambda: rpc.SendToAddress(pb.SendToAddressRequest(address=n.rpc.GetNewAddress(pb.GetNewAddressRequest()).address, amount_sat=-5)),
        lambda: rpc.GetBlockHash(pb.GetBlockHashRequest(height=10_000)),
        lambda: rpc.GetBlock(pb.GetBlockRequest(blockhash="12ab")),
    ]
    for i, call in enumerate(cases):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (i, err.value.details())
        assert err.value.details(), i
    with pytest.raises(grpc.RpcError) as err:
        rpc.GetBlock(pb.GetBlockRequest(blockhash="00" * 32))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert n.alive() and n.height() == 101


def test_readonly_macaroon_cannot_spend_or_mine(nodes) -> None:
    n = nodes("n")
    with n.channel("readonly") as ch:
        ro = pb_grpc.ChainServiceStub(ch)
        assert ro.GetBlockCount(pb.GetBlockCountRequest()).count == 0
        for call in (
            lambda: ro.GenerateToAddress(pb.GenerateToAddressRequest(nblocks=1, address="x")),
            lambda: ro.SendToAddress(pb.SendToAddressRequest(address="x", amount_sat=1)),
            lambda: ro.GetNewAddress(pb.GetNewAddressRequest()),
        ):
            with pytest.raises(grpc.RpcError) as err:
                call()
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_send_confirm_and_notifications(nodes) -> None:
    a = nodes("a")
    b = nodes("b", connect=[a.p2p_addr])
    a.generate(101)
    wait_for(lambda: _synced([a, b], 101), 30, "sync")
    dest = b.rpc.GetNewAddress(pb.GetNewAddressRequest()).address
    blocks = a.rpc.SubscribeBlocks(pb.SubscribeBlocksRequest())
    sent = a.rpc.SendToAddress(pb.SendToAddressRequest(address=dest, amount_sat=150_000_000, fee_rate_sat_vb=2))
    # Relayed to b's mempool.
    wait_for(lambda: sent.txid in b.rpc.GetRawMempool(pb.GetRawMempoolRequest()).txids, 20, "tx relay")
    confs = b.rpc.RegisterConfirmations(pb.ConfirmationRequest(txid=sent.txid, num_confs=2))
    a.generate(2)
    event = next(iter(confs))
    assert event.kind == pb.ConfirmationEvent.CONFIRMED and event.txid == sent.txid and event.num_confs >= 2
    confs.cancel()
    seen = [next(blocks) for _ in range(2)]
    assert all(e.connected for e in seen) and seen[-1].height == 103
    blocks.cancel()
    wait_for(lambda: b.height() == 103, 20, "b at 103")
    bal = b.rpc.GetBalance(pb.GetBalanceRequest())
    assert bal.confirmed_sat == 150_000_000
    proof = a.rpc.GetTxOutProof(pb.GetTxOutProofRequest(txids=[sent.txid])).proof
    assert len(proof) > 160


def test_sigkill_while_connecting_blocks_then_restart(nodes, tmp_path: Path) -> None:
    n = nodes("k")
    n.generate(5)
    done = threading.Event()

    def mine() -> None:
        try:
            while not done.is_set():
                n.generate(50)
        except grpc.RpcError:
            pass

    t = threading.Thread(target=mine, daemon=True)
    t.start()
    time.sleep(2.0)
    n.kill()
    done.set()
    t.join(10)
    n.start()
    height = n.height()
    assert height >= 5
    # The chain and the wallet agree: every coinbase since genesis paid this wallet.
    params = get_params("regtest")
    expected = sum(params.block_subsidy(h) for h in range(1, height + 1))
    bal = n.rpc.GetBalance(pb.GetBalanceRequest())
    assert bal.confirmed_sat + bal.immature_sat == expected
    n.generate(1)
    assert n.height() == height + 1


def test_cli_speaks_bitcoin_cli(nodes) -> None:
    n = nodes("cli")
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "canal", "chain", "--datadir", str(n.datadir), *args],
        capture_output=True, text=True, timeout=60,
    )
    r = run("generate", "3")
    assert r.returncode == 0, r.stderr
    r = run("getblockcount")
    assert r.returncode == 0 and r.stdout.strip() == "3"
    r = run("--json", "getblockchaininfo")
    assert r.returncode == 0 and '"blocks": 3' in r.stdout
    r = run("getblockhash", "99")
    assert r.returncode != 0 and "out of range" in r.stderr and r.stderr.count("\n") == 1
    r = run("sendtoaddress", "bcrt1qnotanaddress", "-1")
    assert r.returncode != 0 and r.stderr.startswith("error:")
