"""Hold invoices (lnd's invoicesrpc AddHoldInvoice / SettleInvoice / CancelInvoice).

Unit tests of the registry and the receive decision, then two real `canal channeld`
over one channel: a held payment stays IN_FLIGHT until the receiver settles or
cancels it, and a held HTLC survives a SIGKILL of the receiver.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import grpc
import pytest
from daemons import ChainProcess, LightningProcess, wait_for

from base_chain.crypto import PrivateKey
from base_chain.params import get_params
from channels.effects import IncomingHtlc
from htlc.failure import FailureCode, decode_failure
from htlc.invoice import decode_invoice, invoice_prefix
from htlc.invoices import (
    HOLD_EXPIRY_DELTA,
    InvoiceHtlc,
    InvoiceHtlcState,
    InvoiceRecord,
    InvoiceRegistry,
    InvoiceRegistryError,
    InvoiceState,
)
from htlc.onion import HopPayload, PaymentData, create_onion
from htlc.receive import Fail, Fulfill, Hold, decide
from proto import chain_pb2 as pb
from proto import invoices_pb2 as inv_pb
from proto import invoices_pb2_grpc as inv_grpc
from proto import lightning_pb2 as ln
from proto import router_pb2 as router_pb
from proto import router_pb2_grpc as router_grpc

NODE_KEY = PrivateKey(hashlib.sha256(b"holder").digest())
NODE_PUB = NODE_KEY.public_key().to_bytes()
PREFIX = invoice_prefix(get_params("regtest"))
NOW = 1_700_000_000
HEIGHT = 500
CHANNEL_ID = bytes(range(32))


def _sha(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


@pytest.fixture
def registry(tmp_path: Path):
    reg = InvoiceRegistry(tmp_path / "invoices.sqlite", NODE_KEY, PREFIX)
    yield reg
    reg.close()


def _pay(rec: InvoiceRecord, amount_msat: int, total_msat: int, htlc_id: int = 0,
         cltv: int = HEIGHT + 100) -> tuple[IncomingHtlc, PrivateKey]:
    payload = HopPayload(amt_to_forward=amount_msat, outgoing_cltv_value=cltv,
                         payment_data=PaymentData(rec.payment_secret, total_msat))
    session = PrivateKey.generate()
    onion = create_onion(session, [(NODE_PUB, payload.encode())], rec.payment_hash)
    return IncomingHtlc(CHANNEL_ID, htlc_id, amount_msat, rec.payment_hash, cltv, onion, None), session


def _decide(registry: InvoiceRegistry, htlc: IncomingHtlc, height: int = HEIGHT) -> object:
    return decide(htlc, node_key=NODE_KEY, height=height, now=NOW, lookup=registry.lookup)


def _accept(registry: InvoiceRegistry, htlc: IncomingHtlc, decision: object) -> InvoiceRecord:
    assert isinstance(decision, Hold) and not decision.replay, decision
    return registry.accept_htlc(htlc.payment_hash, InvoiceHtlc(
        CHANNEL_ID, 1 << 40, htlc.htlc_id, htlc.amount_msat, HEIGHT, NOW, htlc.cltv_expiry,
        mpp_total_msat=decision.mpp_total_msat))


def _details(decision: object, session: PrivateKey) -> str:
    assert isinstance(decision, Fail), decision
    _, msg = decode_failure(session, [NODE_PUB], decision.reason)
    assert FailureCode(msg.code) is FailureCode.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS
    return decision.why


# --- unit: registry and decision -------------------------------------------------------------------------------


def test_hold_invoice_has_no_preimage_and_offers_mpp(registry: InvoiceRegistry) -> None:
    preimage = os.urandom(32)
    rec = registry.add_hold(now=NOW, payment_hash=_sha(preimage), value_msat=5_000_000, memo="held")
    assert rec.is_hold and rec.preimage is None and rec.state is InvoiceState.OPEN
    inv = decode_invoice(rec.payment_request, PREFIX)
    assert inv.payment_hash == _sha(preimage) and inv.amount_msat == 5_000_000 and inv.features >> 17 & 1
    with pytest.raises(InvoiceRegistryError, match="already exists"):
        registry.add_hold(now=NOW, payment_hash=_sha(preimage))
    with pytest.raises(InvoiceRegistryError, match="32 bytes"):
        registry.add_hold(now=NOW, payment_hash=b"\1" * 31)
    with pytest.raises(InvoiceRegistryError, match="still open"):
        registry.settle_hold(preimage, NOW)


def test_multi_part_set_is_held_until_complete_then_settled(tmp_path: Path) -> None:
    registry = InvoiceRegistry(tmp_path / "inv.sqlite", NODE_KEY, PREFIX)
    preimage = os.urandom(32)
    rec = registry.add_hold(now=NOW, payment_hash=_sha(preimage), value_msat=9_000_000)
    seen: list[InvoiceState] = []
    registry.listeners.append(lambda r: seen.append(r.state))
    a, _ = _pay(rec, 4_000_000, 9_000_000, htlc_id=0)
    rec = _accept(registry, a, _decide(registry, a))
    assert rec.state is InvoiceState.OPEN and rec.held_msat == 4_000_000
    too_much, s = _pay(rec, 6_000_000, 9_000_000, htlc_id=1)
    assert "overpays" in _details(_decide(registry, too_much), s)
    b, _ = _pay(rec, 5_000_000, 9_000_000, htlc_id=2)
    rec = _accept(registry, b, _decide(registry, b))
    assert rec.state is InvoiceState.ACCEPTED and rec.amt_paid_msat == 9_000_000
    assert [h.state for h in rec.htlcs] == [InvoiceHtlcState.ACCEPTED] * 2
    late, s = _pay(rec, 1_000_000, 9_000_000, htlc_id=3)
    assert "accepted" in _details(_decide(registry, late), s)
    assert [(h.htlc_id, h.expiry_height) for h in registry.held_htlcs()] == [(0, HEIGHT + 100), (2, HEIGHT + 100)]
    assert seen == [InvoiceState.OPEN, InvoiceState.ACCEPTED]  # SubscribeSingleInvoice hears each part
    registry.close()

    registry = InvoiceRegistry(tmp_path / "inv.sqlite", NODE_KEY, PREFIX)  # a restart: still held, a replay
    registry.listeners.append(lambda r: seen.append(r.state))
    replay = _decide(registry, a)
    assert isinstance(replay, Hold) and replay.replay
    with pytest.raises(InvoiceRegistryError, match="32 bytes"):
        registry.settle_hold(preimage[:31], NOW)
    settled = registry.settle_hold(preimage, NOW + 5)
    assert settled.state is InvoiceState.SETTLED and settled.preimage == preimage and settled.settle_index == 1
    assert [h.state for h in settled.htlcs] == [InvoiceHtlcState.SETTLED] * 2
    assert registry.settle_hold(preimage, NOW + 6).settle_date == NOW + 5  # settling twice succeeds, changes nothing
    assert registry.held_htlcs() == []
    for htlc in (a, b):
        d = _decide(registry, htlc)
        assert isinstance(d, Fulfill) and d.replay and d.payment_preimage == preimage
    with pytest.raises(InvoiceRegistryError, match="settled"):
        registry.cancel(rec.payment_hash)
    assert seen == [InvoiceState.OPEN, InvoiceState.ACCEPTED, InvoiceState.SETTLED]  # the second settle: silent
    registry.close()


def test_canceled_hold_invoice_fails_its_held_htlcs(registry: InvoiceRegistry) -> None:
    preimage = os.urandom(32)
    rec = registry.add_hold(now=NOW, payment_hash=_sha(preimage), value_msat=1_000_000)
    htlc, session = _pay(rec, 1_000_000, 1_000_000)
    _accept(registry, htlc, _decide(registry, htlc))
    canceled = registry.cancel(rec.payment_hash, NOW + 1)
    assert canceled.state is InvoiceState.CANCELED and canceled.htlcs[0].state is InvoiceHtlcState.CANCELED
    assert canceled.htlcs[0].resolve_time == NOW + 1 and registry.held_htlcs() == []
    assert "canceled" in _details(_decide(registry, htlc), session)
    with pytest.raises(InvoiceRegistryError, match="canceled"):
        registry.settle_hold(preimage, NOW)


def test_hold_refuses_underpaying_sets_and_short_cltv(registry: InvoiceRegistry) -> None:
    rec = registry.add_hold(now=NOW, payment_hash=_sha(b"y"), value_msat=2_000_000, cltv_expiry=18)
    small, s = _pay(rec, 1_000_000, 1_000_000)
    assert "below the invoice" in _details(_decide(registry, small), s)
    soon, s = _pay(rec, 2_000_000, 2_000_000, cltv=HEIGHT + 18)
    assert isinstance(_decide(registry, soon), Hold)
    assert "min_final_cltv" in _details(_decide(registry, soon, height=HEIGHT + 1), s)
    assert 18 > HOLD_EXPIRY_DELTA  # so an HTLC is never accepted already inside the auto-cancel margin


def _code(decision: object, session: PrivateKey) -> FailureCode:
    assert isinstance(decision, Fail), decision
    index, msg = decode_failure(session, [NODE_PUB], decision.reason)
    assert index == 0
    return FailureCode(msg.code)


def test_incomplete_hold_set_times_out_like_a_regular_one(tmp_path: Path) -> None:
    registry = InvoiceRegistry(tmp_path / "inv.sqlite", NODE_KEY, PREFIX)
    preimage = os.urandom(32)
    rec = registry.add_hold(now=NOW, payment_hash=_sha(preimage), value_msat=9_000_000)
    parts = [_pay(rec, 3_000_000, 9_000_000, htlc_id=i) for i in range(2)]
    for htlc, _ in parts:
        _accept(registry, htlc, _decide(registry, htlc))
    assert registry.expire_mpp_sets(NOW + 120) == []
    assert registry.expire_mpp_sets(NOW + 121) == [rec.payment_hash]  # lnd's 120 s, as for a regular invoice
    registry.close()
    registry = InvoiceRegistry(tmp_path / "inv.sqlite", NODE_KEY, PREFIX)  # durable: a restart fails them too
    after = registry.lookup(rec.payment_hash)
    assert after is not None and after.state is InvoiceState.OPEN and after.held_msat == 0
    assert [h.state for h in after.htlcs] == [InvoiceHtlcState.CANCELED] * 2 and registry.held_htlcs() == []
    for htlc, session in parts:
        assert _code(_decide(registry, htlc), session) is FailureCode.MPP_TIMEOUT
    # The invoice stays open: a complete set is then held (ACCEPTED), and the MPP timeout leaves it alone.
    whole, _ = _pay(rec, 9_000_000, 9_000_000, htlc_id=5)
    assert _accept(registry, whole, _decide(registry, whole)).state is InvoiceState.ACCEPTED
    assert registry.expire_mpp_sets(NOW + 10_000) == []
    assert isinstance(replay := _decide(registry, whole), Hold) and replay.replay
    assert registry.settle_hold(preimage, NOW + 10_001).state is InvoiceState.SETTLED
    registry.close()


def test_hold_deadlines_decision() -> None:
    from htlc.invoices import HeldHtlc, hold_deadlines

    a, b = _sha(b"a"), _sha(b"b")
    held = [HeldHtlc(a, CHANNEL_ID, 0, 600), HeldHtlc(b, CHANNEL_ID, 1, 650), HeldHtlc(a, CHANNEL_ID, 2, 640)]
    assert HOLD_EXPIRY_DELTA == 12  # lnd's DefaultHoldInvoiceExpiryDelta
    assert hold_deadlines(held, 587) == []
    assert hold_deadlines(held, 588) == [a]  # height + 12 >= expiry, as lnd
    assert hold_deadlines(held, 700, delta=0) == [a, b]
    assert hold_deadlines(held, 640, delta=0) == [a]


def test_held_htlcs_near_their_expiry_are_failed_back(tmp_path: Path) -> None:
    registry = InvoiceRegistry(tmp_path / "inv.sqlite", NODE_KEY, PREFIX)
    seen: list[InvoiceState] = []
    registry.listeners.append(lambda r: seen.append(r.state))
    complete = registry.add_hold(now=NOW, payment_hash=_sha(b"complete"), value_msat=2_000_000)
    partial = registry.add_hold(now=NOW, payment_hash=_sha(b"partial"), value_msat=2_000_000)
    c, cs = _pay(complete, 2_000_000, 2_000_000, htlc_id=0, cltv=HEIGHT + 100)
    p, ps = _pay(partial, 1_000_000, 2_000_000, htlc_id=1, cltv=HEIGHT + 90)
    _accept(registry, c, _decide(registry, c))
    _accept(registry, p, _decide(registry, p))
    assert registry.expire_held_htlcs(HEIGHT + 77, now=NOW) == []  # 90 - 12 = 78: not yet
    assert registry.expire_held_htlcs(HEIGHT + 78, now=NOW + 1) == [partial.payment_hash]
    after = registry.lookup(partial.payment_hash)
    assert after is not None and after.state is InvoiceState.OPEN and after.htlcs[0].state is InvoiceHtlcState.CANCELED
    assert _code(_decide(registry, p, HEIGHT + 78), ps) is FailureCode.MPP_TIMEOUT  # the set never completed
    assert registry.lookup(complete.payment_hash).state is InvoiceState.ACCEPTED  # type: ignore[union-attr]
    assert registry.expire_held_htlcs(HEIGHT + 87, delta=12, now=NOW + 2) == []
    assert registry.expire_held_htlcs(HEIGHT + 88, delta=12, now=NOW + 3) == []  # canceled: the listeners hear it
    assert seen[-1] is InvoiceState.CANCELED
    registry.close()
    registry = InvoiceRegistry(tmp_path / "inv.sqlite", NODE_KEY, PREFIX)  # durable
    gone = registry.lookup(complete.payment_hash)
    assert gone is not None and gone.state is InvoiceState.CANCELED and gone.htlcs[0].resolve_time == NOW + 3
    assert "canceled" in _details(_decide(registry, c, HEIGHT + 88), cs)
    assert registry.held_htlcs() == [] and registry.expire_held_htlcs(HEIGHT + 200) == []
    registry.close()


# --- integration: two channelds ---------------------------------------------------------------------------------

IN_FLIGHT, SUCCEEDED, FAILED = ln.Payment.IN_FLIGHT, ln.Payment.SUCCEEDED, ln.Payment.FAILED
BOB_DUST_THRESHOLD_SAT = 400
"""bob fails back an incoming dust HTLC above this exposure (alice, at lnd's 500,000 sat, offers it)."""


class Node:
    def __init__(self, proc: LightningProcess) -> None:
        self.proc = proc
        self._channel: grpc.Channel | None = None

    @property
    def rpc(self) -> Any:
        return self.proc.rpc

    def _ch(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = self.proc.channel()
        return self._channel

    @property
    def router(self) -> router_grpc.RouterStub:
        return router_grpc.RouterStub(self._ch())

    @property
    def invoices(self) -> inv_grpc.InvoicesStub:
        return inv_grpc.InvoicesStub(self._ch())

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def invoice(self, payment_hash: bytes) -> ln.Invoice:
        return self.invoices.LookupInvoiceV2(inv_pb.LookupInvoiceMsg(payment_hash=payment_hash))

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "canal", "ln", "--datadir", str(self.proc.datadir), "--json",
                               *args], capture_output=True, text=True, timeout=60)


class Payment:
    """SendPaymentV2 in a thread: ``updates`` fills as the payer's stream reports."""

    def __init__(self, payer: Node, payment_request: str) -> None:
        self.updates: list[ln.Payment] = []
        self.error: Exception | None = None
        req = router_pb.SendPaymentRequest(payment_request=payment_request, timeout_seconds=60)
        stream = payer.router.SendPaymentV2(req, timeout=120)

        def run() -> None:
            try:
                for u in stream:
                    self.updates.append(u)
            except grpc.RpcError as e:
                self.error = e

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def final(self) -> ln.Payment:
        self.thread.join(60)
        assert self.error is None, self.error
        assert self.updates and self.updates[-1].status in (SUCCEEDED, FAILED), self.updates
        return self.updates[-1]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("hold")
    chain = ChainProcess(tmp / "chain").start()
    chain.generate(101)
    alice_p = LightningProcess(tmp / "alice", chain).start()
    bob_p = LightningProcess(tmp / "bob", chain, extra_args=["--dust-threshold", str(BOB_DUST_THRESHOLD_SAT)]).start()
    alice, bob = Node(alice_p), Node(bob_p)
    try:
        addr = alice.rpc.NewAddress(ln.NewAddressRequest()).address
        chain.rpc.SendToAddress(pb.SendToAddressRequest(address=addr, amount_sat=100_000_000, fee_rate_sat_vb=2))
        chain.generate(1)
        wait_for(lambda: alice.rpc.WalletBalance(ln.WalletBalanceRequest()).confirmed_balance > 0, 30, "funded")
        alice.rpc.ConnectPeer(ln.ConnectPeerRequest(addr=ln.LightningAddress(
            pubkey=bob_p.pubkey, host=f"127.0.0.1:{bob_p.info['listen_port']}")))
        wait_for(lambda: bob.rpc.ListPeers(ln.ListPeersRequest()).peers, 20, "connected")
        alice.rpc.OpenChannelSync(ln.OpenChannelRequest(node_pubkey=bytes.fromhex(bob_p.pubkey),
                                                        local_funding_amount=1_000_000, sat_per_vbyte=2))
        chain.generate(3)
        for n in (alice, bob):
            wait_for(lambda n=n: len(n.rpc.ListChannels(ln.ListChannelsRequest(active_only=True)).channels) == 1,
                     30, "channel active")
        yield chain, alice, bob
    finally:
        for n in (alice, bob):
            n.close()
        for p in (alice_p, bob_p, chain):
            p.stop()


def _wait_state(node: Node, payment_hash: bytes, state: int, what: str) -> ln.Invoice:
    return wait_for(lambda: (inv := node.invoice(payment_hash)).state == state and inv, 30, what)


def _local_msat(node: Node) -> int:
    return int(node.rpc.ChannelBalance(ln.ChannelBalanceRequest()).local_balance.msat)


def test_held_payment_settles_when_the_preimage_comes(pair) -> None:
    _chain, alice, bob = pair
    preimage = os.urandom(32)
    payment_hash = _sha(preimage)
    out = bob.cli("addholdinvoice", payment_hash.hex(), "--amt", "20000", "--memo", "held")
    assert out.returncode == 0, out.stderr
    added = json.loads(out.stdout)
    assert set(added) == {"payment_request", "add_index", "payment_addr"} and len(added["payment_addr"]) == 64
    states: list[int] = []
    stream = bob.invoices.SubscribeSingleInvoice(inv_pb.SubscribeSingleInvoiceRequest(r_hash=payment_hash), timeout=60)

    def follow() -> None:
        for inv in stream:
            if not states or states[-1] != inv.state:
                states.append(inv.state)

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    bob_before = _local_msat(bob)
    payment = Payment(alice, added["payment_request"])
    held = _wait_state(bob, payment_hash, ln.Invoice.ACCEPTED, "invoice ACCEPTED")
    assert held.htlcs[0].state == ln.InvoiceHTLCState.Value("ACCEPTED") and held.amt_paid_sat == 20_000
    assert not held.r_preimage
    assert payment.updates and all(u.status == IN_FLIGHT for u in payment.updates)
    assert _local_msat(bob) == bob_before  # held, not settled

    wrong = bob.invoices.SettleInvoice
    with pytest.raises(grpc.RpcError) as e:
        wrong(inv_pb.SettleInvoiceMsg(preimage=os.urandom(32)))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    out = bob.cli("settleinvoice", preimage.hex())
    assert out.returncode == 0, out.stderr
    final = payment.final()
    assert final.status == SUCCEEDED and final.payment_preimage == preimage.hex()
    follower.join(30)
    assert states == [ln.Invoice.OPEN, ln.Invoice.ACCEPTED, ln.Invoice.SETTLED]
    settled = bob.invoice(payment_hash)
    assert settled.r_preimage == preimage and settled.htlcs[0].state == ln.InvoiceHTLCState.Value("SETTLED")
    wait_for(lambda: _local_msat(bob) == bob_before + 20_000_000, 20, "bob's balance")
    bob.invoices.SettleInvoice(inv_pb.SettleInvoiceMsg(preimage=preimage))  # as lnd: settling again succeeds


def test_canceled_hold_invoice_fails_the_payment(pair) -> None:
    _chain, alice, bob = pair
    payment_hash = _sha(os.urandom(32))
    added = bob.invoices.AddHoldInvoice(inv_pb.AddHoldInvoiceRequest(hash=payment_hash, value=15_000))
    with pytest.raises(grpc.RpcError) as e:
        bob.invoices.AddHoldInvoice(inv_pb.AddHoldInvoiceRequest(hash=payment_hash[:20], value=15_000))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "hash length" in (e.value.details() or "")
    alice_before = _local_msat(alice)
    payment = Payment(alice, added.payment_request)
    _wait_state(bob, payment_hash, ln.Invoice.ACCEPTED, "invoice ACCEPTED")
    out = bob.cli("cancelinvoice", payment_hash.hex())
    assert out.returncode == 0, out.stderr
    final = payment.final()
    assert final.status == FAILED and final.failure_reason == ln.FAILURE_REASON_INCORRECT_PAYMENT_DETAILS
    assert final.htlcs[-1].failure.code == ln.Failure.INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS
    canceled = bob.invoice(payment_hash)
    assert canceled.state == ln.Invoice.CANCELED and canceled.htlcs[0].state == ln.InvoiceHTLCState.Value("CANCELED")
    wait_for(lambda: _local_msat(alice) == alice_before, 20, "alice's balance back")


def test_held_htlc_survives_sigkill_and_expiry_cancels(pair) -> None:
    chain, alice, bob = pair
    preimage = os.urandom(32)
    payment_hash = _sha(preimage)
    added = bob.invoices.AddHoldInvoice(inv_pb.AddHoldInvoiceRequest(hash=payment_hash, value=9_000))
    payment = Payment(alice, added.payment_request)
    _wait_state(bob, payment_hash, ln.Invoice.ACCEPTED, "invoice ACCEPTED")
    bob.close()
    bob.proc.kill()
    bob.proc.start()
    wait_for(lambda: len(bob.rpc.ListChannels(ln.ListChannelsRequest(active_only=True)).channels) == 1, 30,
             "channel active again")
    assert bob.invoice(payment_hash).state == ln.Invoice.ACCEPTED
    assert all(u.status == IN_FLIGHT for u in payment.updates)
    bob.invoices.SettleInvoice(inv_pb.SettleInvoiceMsg(preimage=preimage))
    tracked = list(alice.router.TrackPaymentV2(router_pb.TrackPaymentRequest(payment_hash=payment_hash), timeout=30))
    assert tracked[-1].status == SUCCEEDED and tracked[-1].payment_preimage == preimage.hex()

    # a held HTLC about to expire is failed back before the channel would have to close
    payment_hash = _sha(os.urandom(32))
    added = bob.invoices.AddHoldInvoice(inv_pb.AddHoldInvoiceRequest(hash=payment_hash, value=8_000, cltv_expiry=18))
    payment = Payment(alice, added.payment_request)
    held = _wait_state(bob, payment_hash, ln.Invoice.ACCEPTED, "invoice ACCEPTED")
    expiry, height = held.htlcs[0].expiry_height, chain.height()
    chain.generate(expiry - HOLD_EXPIRY_DELTA - height - 1)
    wait_for(lambda: bob.rpc.GetInfo(ln.GetInfoRequest()).block_height == expiry - HOLD_EXPIRY_DELTA - 1, 20, "synced")
    assert bob.invoice(payment_hash).state == ln.Invoice.ACCEPTED  # one block early: still held
    chain.generate(1)
    _wait_state(bob, payment_hash, ln.Invoice.CANCELED, "invoice canceled before expiry")
    final = payment.final()
    assert final.status == FAILED and final.failure_reason == ln.FAILURE_REASON_INCORRECT_PAYMENT_DETAILS
    assert len(bob.rpc.ListChannels(ln.ListChannelsRequest(active_only=True)).channels) == 1


def test_incoming_dust_over_the_receivers_threshold_is_failed_back(pair) -> None:
    _chain, alice, bob = pair
    added = bob.rpc.AddInvoice(ln.Invoice(value=BOB_DUST_THRESHOLD_SAT + 100))  # trimmed: below the 546 sat dust limit
    final = Payment(alice, added.payment_request).final()
    assert final.status == FAILED
    assert final.htlcs[-1].failure.code == ln.Failure.TEMPORARY_CHANNEL_FAILURE
    assert final.htlcs[-1].failure.failure_source_index == 1  # bob, the final hop, failed it back
    assert bob.invoice(added.r_hash).state == ln.Invoice.OPEN
    assert len(bob.rpc.ListChannels(ln.ListChannelsRequest(active_only=True)).channels) == 1  # the channel stays up
