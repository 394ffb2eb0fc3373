"""Real Canal daemons as child processes on 127.0.0.1 with ephemeral ports (the demo and the tests use them)."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from base_chain.rpc import channel_for
from proto import chain_pb2 as pb
from proto import chain_pb2_grpc as pb_grpc

__all__ = ["wait_for", "in_parallel", "DaemonProcess", "ChainProcess", "LightningProcess", "NotaryProcess", "SwapProcess",
           "BridgeProcess"]


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)



def in_parallel(fns: list[Callable[[], Any]]) -> None:
    """Run ``fns`` side by side in threads (daemons start and channels open at once); re-raise the first error."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, len(fns))) as pool:
        futures = [pool.submit(fn) for fn in fns]
    for f in futures:
        f.result()

class DaemonProcess(ABC):
    """A `canal <daemon>` child process that writes node.json into its data dir once it serves."""

    kind = "daemon"

    def __init__(self, datadir: Path) -> None:
        self.datadir = datadir
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}
        self._channel: grpc.Channel | None = None
        self._stub: Any = None

    @abstractmethod
    def command(self) -> list[str]:
        """The `canal` sub-command and arguments that start this daemon."""

    def start(self, timeout: float = 60.0) -> Any:
        self.datadir.mkdir(parents=True, exist_ok=True)
        info_file = self.datadir / "node.json"
        if info_file.exists():
            info_file.unlink()
        log = open(self.datadir / "stderr.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "canal", *self.command()], stdout=log, stderr=log,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}: {self.stderr()[-3000:]}")
            return info_file.exists()

        wait_for(ready, timeout, f"{self.kind} to start")
        self.info = json.loads(info_file.read_text())
        self._close_channel()
        return self

    def stderr(self) -> str:
        p = self.datadir / "stderr.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def channel(self, macaroon: str = "admin") -> grpc.Channel:
        return channel_for(self.datadir, port=self.info["rpc_port"], macaroon=macaroon)  # type: ignore[arg-type]

    def _stub_for(self, make: Callable[[grpc.Channel], Any]) -> Any:
        if self._stub is None:
            self._channel = self.channel()
            self._stub = make(self._channel)
        return self._stub

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to clean up."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._close_channel()

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._close_channel()

    def _close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = None
        self._stub = None


class ChainProcess(DaemonProcess):
    """One `canal chaind`."""

    kind = "chaind"

    def __init__(self, datadir: Path, chain: str = "regtest", connect: list[str] | None = None) -> None:
        super().__init__(datadir)
        self.chain = chain
        self.connect = list(connect or [])

    def command(self) -> list[str]:
        args = ["chaind", "--chain", self.chain, "--datadir", str(self.datadir), "--p2pport", "0", "--rpcport", "0"]
        for c in self.connect:
            args += ["--connect", c]
        return args

    @property
    def p2p_addr(self) -> str:
        return f"127.0.0.1:{self.info['p2p_port']}"

    @property
    def rpc(self) -> pb_grpc.ChainServiceStub:
        return self._stub_for(pb_grpc.ChainServiceStub)  # type: ignore[no-any-return]

    def height(self) -> int:
        return int(self.rpc.GetBlockCount(pb.GetBlockCountRequest()).count)

    def best(self) -> str:
        return str(self.rpc.GetBestBlockHash(pb.GetBestBlockHashRequest()).hash)

    def generate(self, n: int, address: str | None = None) -> list[str]:
        addr = address or self.rpc.GetNewAddress(pb.GetNewAddressRequest()).address
        return list(self.rpc.GenerateToAddress(pb.GenerateToAddressRequest(nblocks=n, address=addr)).blockhashes)


class LightningProcess(DaemonProcess):
    """One `canal channeld` attached to a ChainProcess (it keeps its peer port across restarts)."""

    kind = "channeld"

    def __init__(self, datadir: Path, chain: ChainProcess, alias: str = "", extra_args: list[str] | None = None) -> None:
        super().__init__(datadir)
        self.chain = chain
        self.alias = alias or datadir.name
        self.extra_args = list(extra_args or [])

    def command(self) -> list[str]:
        args = ["channeld", "--chain", self.chain.chain, "--datadir", str(self.datadir),
                "--chain-datadir", str(self.chain.datadir), "--chain-rpc", f"127.0.0.1:{self.chain.info['rpc_port']}",
                "--alias", self.alias]
        if self.info.get("listen_port"):
            args += ["--listen", str(self.info["listen_port"])]
        return args + self.extra_args

    @property
    def pubkey(self) -> str:
        return str(self.info["identity_pubkey"])

    @property
    def uri(self) -> str:
        return f"{self.pubkey}@127.0.0.1:{self.info['listen_port']}"

    @property
    def rpc(self) -> Any:
        from proto import lightning_pb2_grpc as ln_grpc

        return self._stub_for(ln_grpc.LightningStub)

    @property
    def router(self) -> Any:
        """lnd's routerrpc.Router on the same connection."""
        from proto import router_pb2_grpc

        self.rpc  # opens the channel
        return router_pb2_grpc.RouterStub(self._channel)


class NotaryProcess(DaemonProcess):
    """One `canal notaryd` of the peg committee (keeps its gRPC port across restarts)."""

    kind = "notaryd"

    def __init__(self, datadir: Path, committee_file: Path, alpha: ChainProcess, beta: ChainProcess,
                 spv: str | None = None) -> None:
        super().__init__(datadir)
        self.committee_file = committee_file
        self.alpha = alpha
        self.beta = beta
        self.spv = spv

    def command(self) -> list[str]:
        args = ["notaryd", "--datadir", str(self.datadir), "--committee", str(self.committee_file),
                "--alpha-datadir", str(self.alpha.datadir), "--beta-datadir", str(self.beta.datadir)]
        if self.spv:
            args += ["--spv", self.spv]
        if self.info.get("rpc_port"):
            args += ["--rpcport", str(self.info["rpc_port"])]
        return args

    @property
    def rpc(self) -> Any:
        from proto import notary_pb2_grpc

        return self._stub_for(notary_pb2_grpc.NotaryStub)


class SwapProcess(DaemonProcess):
    """One `canal swapd` using two chain nodes (alpha and beta); it keeps its peer port across restarts.

    `env` is added to the daemon's environment on the next start only (e.g. the fault injection
    CANAL_SWAPD_CRASH_AT=<state>)."""

    kind = "swapd"

    def __init__(self, datadir: Path, alpha: ChainProcess, beta: ChainProcess, extra_args: list[str] | None = None) -> None:
        super().__init__(datadir)
        self.alpha = alpha
        self.beta = beta
        self.extra_args = list(extra_args or [])
        self.env: dict[str, str] = {}

    def command(self) -> list[str]:
        args = ["swapd", "--datadir", str(self.datadir),
                "--alpha-datadir", str(self.alpha.datadir), "--alpha-rpc", f"127.0.0.1:{self.alpha.info['rpc_port']}",
                "--beta-datadir", str(self.beta.datadir), "--beta-rpc", f"127.0.0.1:{self.beta.info['rpc_port']}"]
        if self.info.get("listen_port"):
            args += ["--listen", str(self.info["listen_port"])]
        return args + self.extra_args

    def start(self, timeout: float = 60.0) -> Any:
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            return super().start(timeout)
        finally:
            self.env = {}
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    @property
    def peer_addr(self) -> str:
        return f"127.0.0.1:{self.info['listen_port']}"

    @property
    def rpc(self) -> Any:
        from proto import swap_pb2_grpc

        return self._stub_for(swap_pb2_grpc.SwapClientStub)


class BridgeProcess(DaemonProcess):
    """One `canal bridged` between a LightningProcess on alpha and one on beta."""

    kind = "bridged"

    def __init__(self, datadir: Path, alpha: LightningProcess, beta: LightningProcess,
                 extra_args: list[str] | None = None) -> None:
        super().__init__(datadir)
        self.alpha = alpha
        self.beta = beta
        self.extra_args = list(extra_args or [])

    def command(self) -> list[str]:
        return ["bridged", "--datadir", str(self.datadir), "--alpha-node", str(self.alpha.datadir),
                "--beta-node", str(self.beta.datadir), "--alpha-chain", self.alpha.chain.chain,
                "--beta-chain", self.beta.chain.chain, *self.extra_args]

    @property
    def rpc(self) -> Any:
        """The canalbridge.Bridge stub."""
        from proto import bridge_pb2_grpc

        return self._stub_for(bridge_pb2_grpc.BridgeStub)
