"""SIGKILL at every step of the commitment dance (channels/faults.py, ``CANAL_CRASH_AT``), with real kills.

One chaind and two channelds (alice pays bob over one anchors channel) are shared
by the whole module. For each step of a payment on each side, the victim is
restarted with the crash point set, alice pays an invoice of bob's, the victim
SIGKILLs itself at that step, and is started again without it. Then, after
channel_reestablish: the payment ends (SUCCEEDED or FAILED, never stuck), bob's
invoice is settled exactly when the payment succeeded (never paid twice), alice's
balance moved by exactly the amount paid, and both sides' balances mirror each
other. At the end a cooperative close pays each side exactly its balance.

The steps (names from a ``CANAL_CRASH_AT=trace`` run): ``persist:X`` = the new
state is on disk, X not sent yet; ``send:X`` = X handed to the transport.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from daemons import ChainProcess, LightningProcess, wait_for

from base_chain.tx import Transaction
from proto import chain_pb2 as pb
from proto import lightning_pb2 as ln
from proto import router_pb2 as router

# No state is written for an update alone (channels.effects.Durability): alice's update_add_htlc goes out
# after the state that signs for it (written in its place), the fulfill she receives is written with the
# next commitment; bob writes his signed state before his update_fulfill_htlc, his invoice fsync'd before.
ALICE_STEPS = [
    "persist:update_add_htlc", "send:update_add_htlc", "send:commitment_signed",
    "persist:on_revoke_and_ack", "persist:revoke_and_ack", "send:revoke_and_ack",
    "persist:revoke_and_ack#2", "send:revoke_and_ack#2", "send:commitment_signed#2", "persist:on_revoke_and_ack#2",
]
BOB_STEPS = [
    "persist:revoke_and_ack", "send:revoke_and_ack", "send:commitment_signed", "persist:on_revoke_and_ack",
    "persist:update_fulfill_htlc", "send:update_fulfill_htlc",
    "send:commitment_signed#2", "persist:on_revoke_and_ack#2", "persist:revoke_and_ack#2", "send:revoke_and_ack#2",
]
#: A quick subset (one crash in each phase, both sides); the full matrix is marked slow.
QUICK = {("alice", "send:commitment_signed"), ("bob", "persist:revoke_and_ack"), ("bob", "send:update_fulfill_htlc")}
CAPACITY = 1_000_000
PUSH = 200_000


def _cases() -> Iterator[Any]:
    for side, steps in (("alice", ALICE_STEPS), ("bob", BOB_STEPS)):
        for step in steps:
            marks = [] if (side, step) in QUICK else [pytest.mark.slow]
            yield pytest.param(side, step, id=f"{side}-{step}", marks=marks)


@dataclass
class Net:
    chain: ChainProcess
    alice: LightningProcess
    bob: LightningProcess

    def node(self, name: str) -> LightningProcess:
        return self.alice if name == "alice" else self.bob

    def balances(self, node: LightningProcess) -> tuple[int, int, int] | None:
        """(local, remote, pending HTLCs) of the one active channel; None while it is not active."""
        try:
            chans = node.rpc.ListChannels(ln.ListChannelsRequest(active_only=True)).channels
        except grpc.RpcError:
            return None
        if len(chans) != 1:
            return None
        c = chans[0]
        return int(c.local_balance), int(c.remote_balance), len(c.pending_htlcs)

    def quiet(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """Both sides active, no HTLC pending, balances mirrored."""
        def settled() -> Any:
            a, b = self.balances(self.alice), self.balances(self.bob)
            if a is None or b is None or a[2] or b[2] or (a[0], a[1]) != (b[1], b[0]):
                return None
            return a, b
        return wait_for(settled, 60, "both sides active, settled and mirrored")  # type: ignore[no-any-return]


def _connect(n: Net) -> None:
    """alice dials bob now (bob cannot dial alice: it only remembers addresses it dialed itself)."""
    try:
        n.alice.rpc.ConnectPeer(ln.ConnectPeerRequest(addr=ln.LightningAddress(
            pubkey=n.bob.pubkey, host=f"127.0.0.1:{n.bob.info['listen_port']}")), timeout=10)
    except grpc.RpcError:
        pass  # already connected (or alice's own redial won the race)


def _start(proc: LightningProcess, crash_at: str | None) -> None:
    """Start `proc` with CANAL_CRASH_AT set (the child inherits the environment at Popen)."""
    old = os.environ.pop("CANAL_CRASH_AT", None)
    if crash_at is not None:
        os.environ["CANAL_CRASH_AT"] = crash_at
    try:
        try:
            proc.start()
        except RuntimeError as e:
            # the kept peer port was taken by another process meanwhile (a shared machine): take a new one
            if "Address already in use" not in str(e):
                raise
            proc.info.pop("listen_port", None)
            proc.start()
    finally:
        os.environ.pop("CANAL_CRASH_AT", None)
        if old is not None:
            os.environ["CANAL_CRASH_AT"] = old


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    tmp = tmp_path_factory.mktemp("crash")
    chain = ChainProcess(tmp / "chain").start()
    alice = LightningProcess(tmp / "alice", chain)
    bob = LightningProcess(tmp / "bob", chain)
    try:
        chain.generate(101)
        _start(alice, None)
        _start(bob, None)
        addr = alice.rpc.NewAddress(ln.NewAddressRequest()).address
        chain.rpc.SendToAddress(pb.SendToAddressRequest(address=addr, amount_sat=200_000_000, fee_rate_sat_vb=2))
        chain.generate(1)
        wait_for(lambda: alice.rpc.WalletBalance(ln.WalletBalanceRequest()).confirmed_balance > 0, 30, "funded")
        alice.rpc.ConnectPeer(ln.ConnectPeerRequest(addr=ln.LightningAddress(
            pubkey=bob.pubkey, host=f"127.0.0.1:{bob.info['listen_port']}")))
        wait_for(lambda: bob.rpc.ListPeers(ln.ListPeersRequest()).peers, 20, "connected")
        alice.rpc.OpenChannelSync(ln.OpenChannelRequest(node_pubkey=bytes.fromhex(bob.pubkey),
                                                        local_funding_amount=CAPACITY, push_sat=PUSH, sat_per_vbyte=2))
        chain.generate(3)
        n = Net(chain, alice, bob)
        n.quiet()
        yield n
    finally:
        for p in (alice, bob, chain):
            p.stop()


def _pay(alice: LightningProcess, payment_request: str) -> None:
    """Start the payment; the stream may break when alice dies mid-way (the outcome is read afterwards)."""
    try:
        for _ in alice.router.SendPaymentV2(router.SendPaymentRequest(payment_request=payment_request,
                                                                      timeout_seconds=20), timeout=5):
            pass
    except grpc.RpcError:
        pass


def _payment_status(alice: LightningProcess, r_hash: bytes) -> Any:
    try:
        payments = alice.rpc.ListPayments(ln.ListPaymentsRequest(include_incomplete=True)).payments
    except grpc.RpcError:
        return None
    for p in payments:
        if p.payment_hash == r_hash.hex():
            return p
    return None


@pytest.mark.parametrize("victim,step", list(_cases()))
def test_kill_at_step(net: Net, victim: str, step: str) -> None:
    (a_before, b_before) = net.quiet()
    proc = net.node(victim)
    marker = f"killing this process at {step.partition('#')[0]}"
    kills_before = proc.stderr().count(marker)
    proc.stop()
    _start(proc, step)
    _connect(net)
    a_now = net.quiet()[0]
    assert a_now == a_before  # a clean restart changes nothing
    amount = 1_000 + len(step)
    assert proc.proc is not None
    for attempt in range(3):
        invoice = net.bob.rpc.AddInvoice(ln.Invoice(value=amount, memo=f"crash at {step}"))
        _pay(net.alice, invoice.payment_request)
        try:
            proc.proc.wait(30)
            break
        except subprocess.TimeoutExpired:
            # The reconnection raced (two connections at once, the older one dropped just after both sides
            # looked active): the payment failed before it reached the step. Pay again once settled.
            status = _payment_status(net.alice, invoice.r_hash)
            if attempt == 2 or status is None or status.status != ln.Payment.FAILED:
                pytest.fail(f"{victim} did not die at {step}: {proc.stderr()[-2000:]}")
            net.quiet()
    assert proc.proc.returncode == -9, f"{victim} exited with {proc.proc.returncode}, not SIGKILL"
    assert proc.stderr().count(marker) == kills_before + 1  # killed by the crash point, at that step
    proc.kill()  # closes the stale gRPC channel
    _start(proc, None)
    _connect(net)
    final = wait_for(lambda: (p := _payment_status(net.alice, invoice.r_hash)) is not None
                     and p.status in (ln.Payment.SUCCEEDED, ln.Payment.FAILED) and p, 60,
                     f"payment to end after a crash at {victim} {step}")
    a_after, b_after = net.quiet()
    state = net.bob.rpc.LookupInvoice(ln.PaymentHash(r_hash=invoice.r_hash))
    if final.status == ln.Payment.SUCCEEDED:
        assert state.state == ln.Invoice.SETTLED and state.amt_paid_sat == amount
        assert a_after[0] == a_before[0] - amount and b_after[0] == b_before[0] + amount
    else:
        assert state.state != ln.Invoice.SETTLED and state.amt_paid_sat == 0
        assert a_after == a_before and b_after == b_before
    # the total in the channel never changes (no HTLC is pending now)
    assert a_after[0] + a_after[1] == a_before[0] + a_before[1]


def test_cooperative_close_pays_out_exactly(net: Net) -> None:
    (alice_local, alice_remote, _), (bob_local, _, _) = net.quiet()
    bob_wallet_before = net.bob.rpc.WalletBalance(ln.WalletBalanceRequest()).total_balance
    chan = net.alice.rpc.ListChannels(ln.ListChannelsRequest()).channels[0]
    txid, _, index = chan.channel_point.partition(":")
    stream = net.alice.rpc.CloseChannel(ln.CloseChannelRequest(
        channel_point=ln.ChannelPoint(funding_txid_str=txid, output_index=int(index)), sat_per_vbyte=2))
    update = next(iter(stream))
    closing_txid = update.close_pending.txid[::-1].hex()
    wait_for(lambda: closing_txid in net.chain.rpc.GetRawMempool(pb.GetRawMempoolRequest()).txids, 30, "closing tx")
    raw = net.chain.rpc.GetRawTransaction(pb.GetRawTransactionRequest(txid=closing_txid, verbose=True))
    amounts = sorted(o.amount_sat for o in Transaction.from_hex(raw.hex).outputs)
    net.chain.generate(1)
    # bob (not the funder) gets exactly his balance; alice hers, plus the commitment fee and anchors
    # she reserved as the funder (capacity - local - remote), less the closing fee
    wait_for(lambda: net.bob.rpc.WalletBalance(ln.WalletBalanceRequest()).total_balance == bob_wallet_before + bob_local,
             30, "bob paid his channel balance exactly")
    assert bob_local in amounts and len(amounts) == 2
    fee = CAPACITY - sum(amounts)
    assert 0 < fee < 2_000 and alice_local + (CAPACITY - alice_local - alice_remote) - fee in amounts
    assert alice_remote == bob_local
