"""Integration: a real `canal relayd` following real `canal chaind --chain beta` processes, queried with
`canal relay`: sync, transaction proofs at depth k, a reorg on the chain node, SIGKILL and restart,
a checkpoint start, and refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from base_chain.block import BlockHeader
from base_chain.hashes import hash256
from base_chain.miner import BLOCK_VERSION
from base_chain.params import get_params
from base_chain.pow import mine_header
from daemons import ChainProcess, wait_for
from proto import chain_pb2 as pb
from relay.relayd import RelayDaemon
from relay.spv import HeaderChain, HeaderStore

CLI_TIMEOUT_S = 60


class RelayProcess:
    """One `canal relayd` subprocess following a ChainProcess."""

    def __init__(self, datadir: Path, chain: ChainProcess, *extra: str) -> None:
        self.datadir = datadir
        self.chain = chain
        self.extra = list(extra)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> RelayProcess:
        self.datadir.mkdir(parents=True, exist_ok=True)
        info = self.datadir / "relay.json"
        if info.exists():
            info.unlink()
        args = [sys.executable, "-m", "canal", "relayd", "--chain", self.chain.chain,
                "--chain-datadir", str(self.chain.datadir), "--datadir", str(self.datadir),
                "--poll-interval", "1", *self.extra]
        with open(self.datadir / "stderr.log", "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"relayd exited with {self.proc.returncode}: {self.stderr()[-3000:]}")
            return info.exists() and json.loads(info.read_text())["pid"] == self.proc.pid

        wait_for(ready, timeout, "relayd to start")
        return self

    def stderr(self) -> str:
        p = self.datadir / "stderr.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def tip(self) -> tuple[int, str]:
        """(height, best hash) as stored, read directly (cheaper than the CLI, for waiting)."""
        with HeaderStore(self.datadir / "relay.sqlite") as store:
            if store.is_empty():
                return -1, ""
            tip = store.tip
            return tip.height, tip.hash_hex()

    def wait_tip(self, best: str, timeout: float = 60.0) -> None:
        wait_for(lambda: self.tip()[1] == best, timeout, f"relay at {best}")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "canal", "relay", "--datadir", str(self.datadir), "--json", *args],
                              capture_output=True, text=True, timeout=CLI_TIMEOUT_S)

    def cli_json(self, *args: str) -> Any:
        r = self.cli(*args)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[list[Any]]:
    started: list[Any] = []
    yield started
    for p in reversed(started):
        p.stop()


def _no_peers(*nodes: ChainProcess) -> bool:
    return all(not n.rpc.GetPeerInfo(pb.GetPeerInfoRequest()).peers for n in nodes)


@pytest.mark.slow
def test_relay_follows_the_node_verifies_proofs_and_follows_a_reorg(tmp_path: Path, procs: list[Any]) -> None:
    a = ChainProcess(tmp_path / "a", "beta").start()
    procs.append(a)
    b = ChainProcess(tmp_path / "b", "beta", connect=[a.p2p_addr]).start()
    procs.append(b)
    relay = RelayProcess(tmp_path / "relay", a).start()
    procs.append(relay)

    a.generate(101)
    wait_for(lambda: b.best() == a.best(), 60, "b synced with a")
    relay.wait_tip(a.best())
    status = relay.cli_json("status")
    assert status["chain"] == "beta" and status["blocks"] == 101 and status["bestblockhash"] == a.best()
    assert status["headers_stored"] == 102 and status["stale_headers"] == 0
    assert status["relayd"].startswith("running") and status["last_update"]
    assert int(status["chainwork"], 16) == int(a.rpc.GetBlockchainInfo(pb.GetBlockchainInfoRequest()).chainwork, 16)
    wait_for(lambda: relay.cli_json("status")["synced"], 30, "relay to report synced")
    header = relay.cli_json("getheader", "101")
    assert header["hash"] == a.best() and header["confirmations"] == 1
    assert relay.cli_json("getheader", header["previousblockhash"])["height"] == 100
    node_header = a.rpc.GetBlockHeader(pb.GetBlockHeaderRequest(blockhash=a.best(), verbose=True))
    assert header["hex"] == node_header.hex and header["merkleroot"] == node_header.merkleroot

    # Partition b from a.
    b.rpc.AddNode(pb.AddNodeRequest(node=a.p2p_addr, command="remove"))
    wait_for(lambda: _no_peers(a, b), 30, "a and b disconnected")

    # A payment on a, k = 3 blocks: the relay accepts its proof at depth 3, refuses it at depth 4.
    k = 3
    address = a.rpc.GetNewAddress(pb.GetNewAddressRequest()).address
    txid = a.rpc.SendToAddress(pb.SendToAddressRequest(address=address, amount_sat=100_000_000)).txid
    a.generate(k)
    proof = a.rpc.GetTxOutProof(pb.GetTxOutProofRequest(txids=[txid])).proof
    raw_tx = a.rpc.GetRawTransaction(pb.GetRawTransactionRequest(txid=txid)).hex
    relay.wait_tip(a.best())
    verified = relay.cli_json("verifytxproof", proof, raw_tx, "--min-depth", str(k))
    assert verified["txid"] == txid and verified["height"] == 102 and verified["depth"] == k
    old_block = verified["blockhash"]
    refused = relay.cli("verifytxproof", proof, raw_tx, "--min-depth", str(k + 1))
    assert refused.returncode == 1 and "insufficient-depth" in refused.stderr and refused.stdout == ""

    # b mines a longer branch; reconnected, a reorganizes onto it and the relay follows.
    b.generate(k + 2)
    b.rpc.AddNode(pb.AddNodeRequest(node=a.p2p_addr, command="add"))
    wait_for(lambda: a.best() == b.best(), 60, "a reorganized onto b's branch")
    relay.wait_tip(a.best())
    status = relay.cli_json("status")
    assert status["blocks"] == 101 + k + 2 and status["reorgs"] == 1 and status["last_reorg_depth"] == k
    assert status["stale_headers"] == k
    assert relay.cli_json("getheader", old_block)["confirmations"] == -1
    refused = relay.cli("verifytxproof", proof, raw_tx)
    assert refused.returncode == 1 and "block-not-in-best-chain" in refused.stderr

    # The payment went back to a's mempool; mined again, its new proof verifies.
    wait_for(lambda: txid in a.rpc.GetRawMempool(pb.GetRawMempoolRequest()).txids, 30, "payment back in the mempool")
    a.generate(1)
    relay.wait_tip(a.best())
    proof2 = a.rpc.GetTxOutProof(pb.GetTxOutProofRequest(txids=[txid])).proof
    again = relay.cli_json("verifytxproof", proof2, raw_tx)
    assert again["depth"] == 1 and again["height"] == 101 + k + 3 and again["blockhash"] != old_block

    # SIGKILL the relay, let the chain move on, restart: it resumes from its data dir.
    relay.kill()
    assert relay.cli_json("status")["relayd"] == "not running"
    a.generate(2)
    relay.start()
    relay.wait_tip(a.best())
    assert relay.cli_json("status")["headers_stored"] == 101 + k + 5 + 1 + k


def test_relay_from_a_checkpoint_and_refusals(tmp_path: Path, procs: list[Any]) -> None:
    a = ChainProcess(tmp_path / "a", "beta").start()
    procs.append(a)
    a.generate(30)
    at_20 = a.rpc.GetBlockHash(pb.GetBlockHashRequest(height=20)).hash
    relay = RelayProcess(tmp_path / "relay", a, "--checkpoint", f"20:{at_20}").start()
    procs.append(relay)
    relay.wait_tip(a.best())
    status = relay.cli_json("status")
    assert status["checkpoint"] == f"20:{at_20}" and status["blocks"] == 30
    # Beta allows min-difficulty blocks: the checkpoint carries its difficulty period from genesis.
    assert status["headers_stored"] == 31
    a.generate(3)
    relay.wait_tip(a.best())

    # Refusals and bad input: a reason on stderr, exit 1.
    r = relay.cli("getheader", "999")
    assert r.returncode == 1 and "Block height out of range" in r.stderr
    r = relay.cli("getheader", "00" * 32)
    assert r.returncode == 1 and "Block not found" in r.stderr
    txid = a.rpc.GetBlock(pb.GetBlockRequest(blockhash=a.best(), verbosity=1)).tx[0]
    coinbase = a.rpc.GetRawTransaction(pb.GetRawTransactionRequest(txid=txid, blockhash=a.best())).hex
    proof = a.rpc.GetTxOutProof(pb.GetTxOutProofRequest(txids=[txid])).proof
    assert relay.cli_json("verifytxproof", proof, coinbase)["index"] == 0
    for args, reason in (
        ((proof[:-2], coinbase), "bad-proof-encoding"),
        ((proof, coinbase[:-2]), "bad-tx-encoding"),
        ((proof, coinbase, "--min-depth", "2"), "insufficient-depth"),
    ):
        r = relay.cli("verifytxproof", *args)
        assert r.returncode == 1 and reason in r.stderr, (reason, r.stderr)
    r = relay.cli("verifytxproof", "zz", coinbase)
    assert r.returncode == 1 and "hexadecimal" in r.stderr

    # A data dir of another chain, or another checkpoint, is refused at start.
    relay.stop()
    for extra in (["--chain", "alpha"], ["--chain", "beta", "--checkpoint", f"21:{a.best()}"]):
        command = [sys.executable, "-m", "canal", "relayd", *extra, "--chain-datadir", str(a.datadir),
                "--datadir", str(relay.datadir)]
        r = subprocess.run(command, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
        assert r.returncode == 1, r.stderr
        assert "not 'alpha'" in r.stderr or "was started from checkpoint 20" in r.stderr


def test_relay_cli_without_a_relay(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "canal", "relay", "--datadir", str(tmp_path), "status"],
                       capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    assert r.returncode == 1 and "not found" in r.stderr
    assert not (tmp_path / "relay.sqlite").exists()


# --- the catch-up logic against a fake node (no processes) --------------------------------------


class FakeNode:
    """A chain node's best chain as NodeClient serves it, switchable to another branch."""

    def __init__(self, best: list[BlockHeader]) -> None:
        self.best = best
        self.calls = 0

    def height(self) -> int:
        return len(self.best) - 1

    def hash_at(self, height: int) -> bytes | None:
        self.calls += 1
        return self.best[height].hash if 0 <= height < len(self.best) else None

    def header(self, block_hash: bytes) -> BlockHeader:
        return next(h for h in self.best if h.hash == block_hash)

    def headers(self, start: int, stop: int) -> list[BlockHeader]:
        return self.best[start:stop + 1]


def _grow(headers: list[BlockHeader], n: int, salt: bytes, time_step: int = 150) -> list[BlockHeader]:
    params = get_params("beta")
    out = list(headers)
    for i in range(n):
        prev = out[-1]
        header = BlockHeader(BLOCK_VERSION, prev.hash, hash256(salt + b"%d" % i), prev.time + time_step, prev.bits, 0)
        out.append(mine_header(header, params))
    return out


async def test_catch_up_follows_reorgs_of_any_depth_with_few_calls(tmp_path: Path) -> None:
    params = get_params("beta")
    now = [params.genesis.header.time + 10**6]
    daemon = RelayDaemon(params, tmp_path, tmp_path / "no-node", clock=lambda: now[0])
    daemon.store = HeaderStore(tmp_path / "relay.sqlite")
    daemon.chain = HeaderChain(params)
    daemon.store.save(daemon.chain)
    main = _grow([params.genesis.header], 300, b"main")
    node = FakeNode(main)
    await daemon._catch_up(node)  # type: ignore[arg-type]
    assert daemon.chain.tip.hash == main[-1].hash and daemon.store.get_meta("synced") == "1"

    # A branch from height 20, 290 headers deeper than the relay's tip: found in O(log n) calls.
    branch = _grow(main[:21], 290, b"branch", time_step=151)
    node.best, node.calls = branch, 0
    await daemon._catch_up(node)  # type: ignore[arg-type]
    assert daemon.chain.tip.hash == branch[-1].hash and daemon.chain.height == 310
    assert daemon.store.get_meta("last_reorg_depth") == "280"
    assert node.calls < 40 + 290  # 290 downloaded headers, and a few dozen to find the fork

    # Back to the first chain, now longer.
    main = _grow(main, 20, b"more")
    node.best = main
    await daemon._catch_up(node)  # type: ignore[arg-type]
    assert daemon.chain.tip.hash == main[-1].hash and daemon.store.get_meta("reorgs") == "2"
    assert daemon.store.load(params).tip == daemon.chain.tip

    # A header from too far in the future: kept out, reported, accepted once its time has come.
    future = _grow(main, 1, b"future", time_step=10**6)
    node.best = future
    await daemon._catch_up(node)  # type: ignore[arg-type]
    assert daemon.chain.tip.hash == main[-1].hash
    assert "time-too-new" in (daemon.store.get_meta("last_error") or "")
    now[0] += 10**6
    await daemon._catch_up(node)  # type: ignore[arg-type]
    assert daemon.chain.tip.hash == future[-1].hash and daemon.store.get_meta("last_error") == ""

    # A node of another chain is told apart at the genesis.
    node.best = _grow([get_params("alpha").genesis.header], 3, b"alpha")
    with pytest.raises(ValueError, match="genesis"):
        await daemon._catch_up(node)  # type: ignore[arg-type]
    daemon.store.close()
