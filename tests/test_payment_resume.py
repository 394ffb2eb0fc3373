"""Payments go on after a restart (their settings are stored with them), and circular self-payments.

Unit: the stored intent round-trips; an old ``payments.sqlite`` gets the settings column; a lifecycle
rebuilt from stored attempts keeps its exclusions, counts the parts in flight, and its original deadline.

Integration (real daemons, a diamond; C charges more, so routes prefer B)::

        ┌── B ──┐
    A ──┤       ├── D          B–D drained by B first: A's first route through B fails at B
        └── C ──┘

A is SIGKILLed right after its first HTLC left (``CANAL_CRASH_AT=send:commitment_signed``), restarted,
and the payment is resumed from its stored settings: B's failure arrives, the retry goes through C
and succeeds, with exactly two attempts (no duplicate HTLC). Then A pays its own invoice with
``canal ln payinvoice --allow_self_payment`` (out one channel, back through another); without the
flag it is refused as lnd refuses it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from daemons import ChainProcess, LightningProcess, fund_node, graph_complete, in_parallel, wait_for
from htlc.failure import FailureCode
from htlc.graph import channel_direction
from htlc.invoice import RouteHintHop
from htlc.lifecycle import ChannelPolicyUpdate, Finished, PaymentIntent, PaymentLifecycle, Shard
from htlc.payments import _SCHEMA, UNREADABLE_FAILURE, Attempt, AttemptFailure, PaymentStore
from htlc.scoring import Scorer
from htlc.send import stored_route
from proto import lightning_pb2 as ln
from proto import router_pb2 as router
from test_payment_lifecycle import A, B, C, D, FIRST, HASH, HEIGHT, NAMES, SECRET, T0, intent, network

# --- unit ------------------------------------------------------------------------------------------------


def test_intent_settings_round_trip() -> None:
    full = PaymentIntent(
        destination=B, amount_msat=12_345, payment_hash=HASH, final_cltv_delta=44, payment_secret=SECRET,
        keysend_preimage=b"\x07" * 32, payment_request="lnbcrt1x", custom_records=((65537, b"hi"), (65539, b"")),
        outgoing_chan_ids=(7, 9), cltv_limit=500, route_hints=((RouteHintHop(C, 11, 1000, 2, 40),
                                                                RouteHintHop(D, 12, 0, 0, 18)),),
        fee_limit_msat=99, timeout_s=12.5, max_parts=3, last_hop=D, max_shard_msat=5000, allow_self_payment=True)
    assert PaymentIntent.from_json(full.to_json()) == full
    bare = PaymentIntent(destination=B, amount_msat=1, payment_hash=HASH)
    assert PaymentIntent.from_json(bare.to_json()) == bare
    # a field this version does not know is ignored; one it lacks gets its default
    d = json.loads(bare.to_json())
    d["from_the_future"] = 1
    del d["max_parts"]
    assert PaymentIntent.from_json(json.dumps(d)) == bare


def test_an_old_payments_file_gets_the_settings_column(tmp_path: Path) -> None:
    path = tmp_path / "payments.sqlite"
    old = sqlite3.connect(path)
    old.executescript(_SCHEMA)  # the schema before settings were stored
    old.execute("INSERT INTO payments (payment_hash, value_msat, status, creation_time_ns, payment_request,"
                " destination) VALUES (?,?,?,?,?,?)", (b"\x01" * 32, 1000, 1, 5, "", B))
    old.commit()
    old.close()
    store = PaymentStore(path)
    assert store.settings(b"\x01" * 32) is None  # followed to the end as before, no retries
    [payment] = store.in_flight()
    assert payment.value_msat == 1000
    store.init_payment(HASH, 2000, B, "", 6, intent().to_json())
    store.close()
    again = PaymentStore(path)  # reopening migrates nothing twice
    settings = again.settings(HASH)
    assert settings is not None and PaymentIntent.from_json(settings) == intent()
    again.close()


def _path(shard: Shard) -> str:
    return "".join(NAMES[h.node_id] for h in shard.route.hops)


def _stored(tmp_path: Path, what: PaymentIntent) -> tuple[PaymentStore, PaymentLifecycle]:
    store = PaymentStore(tmp_path / "payments.sqlite")
    store.init_payment(what.payment_hash, what.amount_msat, what.destination, "", int(T0 * 1e9), what.to_json())
    return store, PaymentLifecycle(what, A, network(), Scorer(), T0)


def _launch(store: PaymentStore, lc: PaymentLifecycle, now: float, htlc_id: int) -> tuple[Shard, int]:
    [shard] = lc.step(now, HEIGHT, FIRST)  # type: ignore[misc]
    attempt = store.add_attempt(lc.intent.payment_hash, stored_route(shard.route, lc.intent), b"\x01" * 32,
                                b"\x02" * 32, htlc_id, int(now * 1e9))
    return shard, attempt.attempt_id


def _resume(store: PaymentStore, what: PaymentIntent) -> tuple[PaymentLifecycle, dict[int, int]]:
    payment = store.get(what.payment_hash)
    settings = store.settings(what.payment_hash)
    assert payment is not None and settings is not None
    return PaymentLifecycle.resume(PaymentIntent.from_json(settings), A, network(), Scorer(),
                                   payment.creation_time_ns / 1e9, payment.attempts)


def test_resumed_lifecycle_keeps_what_the_failures_taught(tmp_path: Path) -> None:
    what = intent()
    store, lc = _stored(tmp_path, what)
    shard, attempt_id = _launch(store, lc, T0, 0)
    assert _path(shard) == "BCDE"
    store.fail_attempt(attempt_id, AttemptFailure(FailureCode.TEMPORARY_CHANNEL_FAILURE, 2, "C–D"), int((T0 + 1) * 1e9))
    # the payer stops here; after the restart:
    resumed, in_flight = _resume(store, what)
    assert in_flight == {} and resumed.s.attempts == 1 and resumed.deadline == T0 + 60
    assert (3, channel_direction(C, D)) in resumed.s.excluded
    [retry] = resumed.step(T0 + 2, HEIGHT, FIRST)  # type: ignore[misc]
    assert _path(retry) == "BFDE" and retry.shard_id == 2
    assert retry.route.source == A and retry.payloads[-1].payment_data is not None
    # its scorer learnt the failure again (at the time it happened)
    assert resumed.scorer.known_channels()
    store.close()


def test_a_replayed_failure_applies_its_channel_update(tmp_path: Path) -> None:
    what = intent()
    store, lc = _stored(tmp_path, what)
    _, attempt_id = _launch(store, lc, T0, 0)
    store.fail_attempt(attempt_id, AttemptFailure(FailureCode.FEE_INSUFFICIENT, 2, channel_update=b"signed"), 1)
    payment = store.get(what.payment_hash)
    assert payment is not None
    update = ChannelPolicyUpdate(3, channel_direction(C, D), 100, fee_base_msat=5000, fee_proportional_millionths=1,
                                 cltv_expiry_delta=40, htlc_minimum_msat=0, htlc_maximum_msat=1_000_000_000,
                                 disabled=False)
    seen: list[bytes] = []

    def checked(a: Attempt) -> ChannelPolicyUpdate | None:
        assert a.failure is not None
        seen.append(a.failure.channel_update)
        return update

    g = network()
    resumed, _ = PaymentLifecycle.resume(what, A, g, Scorer(), T0, payment.attempts, checked)
    assert seen == [b"signed"]
    policy = g.policy(3, C)
    assert policy is not None and policy.fee_base_msat == 5000  # applied: C–D is not excluded, only repriced
    assert (3, channel_direction(C, D)) not in resumed.s.excluded
    # without it (an update that does not check out), that direction is out for this payment
    plain, _ = PaymentLifecycle.resume(what, A, network(), Scorer(), T0, payment.attempts)
    assert (3, channel_direction(C, D)) in plain.s.excluded
    store.close()


def test_resumed_parts_in_flight_count_and_are_followed(tmp_path: Path) -> None:
    what = intent()
    store, lc = _stored(tmp_path, what)
    shard, attempt_id = _launch(store, lc, T0, 0)
    resumed, in_flight = _resume(store, what)
    assert list(in_flight) == [attempt_id] and resumed.in_flight_msat == what.amount_msat
    assert resumed.step(T0 + 1, HEIGHT, FIRST) is None  # never paid twice: the whole amount is out
    again = resumed.s.in_flight[in_flight[attempt_id]]
    assert again.route.hops == shard.route.hops and again.payloads == shard.payloads  # rebuilt exactly
    resumed.shard_failed(in_flight[attempt_id], 2, FailureCode.TEMPORARY_CHANNEL_FAILURE, T0 + 2)
    [retry] = resumed.step(T0 + 2, HEIGHT, FIRST)  # type: ignore[misc]
    assert _path(retry) == "BFDE"
    resumed.shard_succeeded(retry.shard_id, b"\x09" * 32, T0 + 3)
    done = resumed.step(T0 + 3, HEIGHT, FIRST)
    assert isinstance(done, Finished) and done.preimage == b"\x09" * 32
    store.close()


def test_resumed_deadline_stays_the_original_one(tmp_path: Path) -> None:
    what = intent(timeout_s=30)
    store, lc = _stored(tmp_path, what)
    _, attempt_id = _launch(store, lc, T0, 0)
    store.fail_attempt(attempt_id, AttemptFailure(FailureCode.TEMPORARY_CHANNEL_FAILURE, 2), int((T0 + 1) * 1e9))
    resumed, _ = _resume(store, what)
    done = resumed.step(T0 + 31, HEIGHT, FIRST)  # restarted after the deadline: no new attempt
    assert isinstance(done, Finished) and done.reason.name == "TIMEOUT" and "temporary_channel_failure" in done.message
    store.close()


def test_an_attempt_that_never_left_excludes_nothing_and_a_settled_one_wins(tmp_path: Path) -> None:
    what = intent()
    store, lc = _stored(tmp_path, what)
    _, lost = _launch(store, lc, T0, 0)
    # failed at start by the payer itself (its HTLC never reached the channel)
    store.fail_attempt(lost, AttemptFailure(UNREADABLE_FAILURE, 0, "the HTLC never reached the channel"), 1)
    resumed, _ = _resume(store, what)
    assert not resumed.s.excluded and not resumed.scorer.known_channels()
    [retry] = resumed.step(T0 + 1, HEIGHT, FIRST)  # type: ignore[misc]
    assert _path(retry) == "BCDE"
    # an attempt settled before the stop: the payment is decided
    lc2 = PaymentLifecycle(what, A, network(), Scorer(), T0)
    _, won = _launch(store, lc2, T0, 1)
    store.settle_attempt(won, b"\x05" * 32, 2)
    decided, _ = _resume(store, what)
    done = decided.step(T0 + 1, HEIGHT, FIRST)
    assert isinstance(done, Finished) and done.preimage == b"\x05" * 32
    store.close()


# --- integration -----------------------------------------------------------------------------------------

C_BASE_FEE_MSAT = 5_000


def _open(a: LightningProcess, b: LightningProcess, sat: int, push: int = 0) -> None:
    a.rpc.ConnectPeer(ln.ConnectPeerRequest(addr=ln.LightningAddress(
        pubkey=b.pubkey, host=f"127.0.0.1:{b.info['listen_port']}")))
    wait_for(lambda: any(p.pub_key == a.pubkey for p in b.rpc.ListPeers(ln.ListPeersRequest()).peers), 20, "peer")
    a.rpc.OpenChannelSync(ln.OpenChannelRequest(node_pubkey=bytes.fromhex(b.pubkey), local_funding_amount=sat,
                                                push_sat=push, sat_per_vbyte=2))


@pytest.fixture(scope="module")
def diamond(tmp_path_factory: pytest.TempPathFactory):
    tmp: Path = tmp_path_factory.mktemp("resume")
    old = os.environ.get("CANAL_GOSSIP_TRICKLE_S")
    os.environ["CANAL_GOSSIP_TRICKLE_S"] = "0.3"
    chain = ChainProcess(tmp / "chain").start()
    nodes = [LightningProcess(tmp / n, chain, alias=n) for n in "ABCD"]
    try:
        in_parallel([n.start for n in nodes])
        a, b, c, d = nodes
        chain.generate(101)
        for n in (a, b, c):
            fund_node(chain, n, 5_000_000)
        chain.generate(1)
        for n in (a, b, c):
            wait_for(lambda n=n: n.rpc.WalletBalance(ln.WalletBalanceRequest()).confirmed_balance > 0, 30, "funded")
        c.rpc.UpdateChannelPolicy(ln.PolicyUpdateRequest(**{"global": True}, base_fee_msat=C_BASE_FEE_MSAT,
                                                         fee_rate_ppm=1, time_lock_delta=40))
        in_parallel([lambda: (_open(a, b, 1_000_000, 400_000), _open(a, c, 1_000_000, 400_000)),
                   lambda: _open(b, d, 1_000_000), lambda: _open(c, d, 1_000_000, 400_000)])
        chain.generate(6)  # public channels are announced at 6 confirmations
        for n, count in ((a, 2), (b, 2), (c, 2), (d, 2)):
            wait_for(lambda n=n, count=count: len(n.rpc.ListChannels(
                ln.ListChannelsRequest(active_only=True)).channels) == count, 30, "channels active")
        wait_for(lambda: graph_complete(a, 4) and graph_complete(b, 4), 60,
                 "the graph has all four channels and both policies")
        yield chain, a, b, c, d
    finally:
        for n in nodes:
            n.stop()
        chain.stop()
        if old is None:
            os.environ.pop("CANAL_GOSSIP_TRICKLE_S", None)
        else:
            os.environ["CANAL_GOSSIP_TRICKLE_S"] = old


def _start_with(node: LightningProcess, crash_at: str) -> None:
    old = os.environ.get("CANAL_CRASH_AT")
    os.environ["CANAL_CRASH_AT"] = crash_at
    try:
        node.start()
    finally:
        if old is None:
            os.environ.pop("CANAL_CRASH_AT", None)
        else:
            os.environ["CANAL_CRASH_AT"] = old


def test_payment_resumes_after_the_payer_is_killed(diamond) -> None:
    chain, a, b, c, d = diamond
    [bd] = b.rpc.ListChannels(ln.ListChannelsRequest(peer=bytes.fromhex(d.pubkey))).channels
    drain = d.rpc.AddInvoice(ln.Invoice(value=bd.local_balance - bd.local_constraints.chan_reserve_sat - 20_000))
    paid = list(b.router.SendPaymentV2(router.SendPaymentRequest(payment_request=drain.payment_request,
                                                                 timeout_seconds=30)))
    assert paid[-1].status == ln.Payment.SUCCEEDED

    inv = d.rpc.AddInvoice(ln.Invoice(value=100_000, memo="resumed"))
    a.stop()
    _start_with(a, "send:commitment_signed")  # A dies as its first HTLC of the payment leaves
    wait_for(lambda: len(a.rpc.ListChannels(ln.ListChannelsRequest(active_only=True)).channels) == 2, 30, "A back")
    with pytest.raises(grpc.RpcError):
        list(a.router.SendPaymentV2(router.SendPaymentRequest(payment_request=inv.payment_request,
                                                              timeout_seconds=60, fee_limit_sat=1_000)))
    wait_for(lambda: not a.alive(), 10, "A killed by its crash point")
    a.start()
    tracked = a.router.TrackPaymentV2(router.TrackPaymentRequest(payment_hash=inv.r_hash))
    final = list(tracked)[-1]
    assert final.status == ln.Payment.SUCCEEDED, ln.PaymentFailureReason.Name(final.failure_reason)
    first, second = final.htlcs  # exactly two attempts: the one in flight at the kill, the retry
    assert first.status == ln.HTLCAttempt.FAILED and second.status == ln.HTLCAttempt.SUCCEEDED
    assert [h.pub_key for h in first.route.hops] == [b.pubkey, d.pubkey]
    assert first.failure.code == ln.Failure.TEMPORARY_CHANNEL_FAILURE and first.failure.failure_source_index == 1
    assert [h.pub_key for h in second.route.hops] == [c.pubkey, d.pubkey]
    assert final.value_sat == 100_000 and final.fee_msat == second.route.total_fees_msat == C_BASE_FEE_MSAT + 100
    assert d.rpc.LookupInvoice(ln.PaymentHash(r_hash=inv.r_hash)).amt_paid_msat == 100_000_000  # paid once
    # B's channel from A carries nothing: the failed HTLC is gone, no second one was sent over it
    [ab] = a.rpc.ListChannels(ln.ListChannelsRequest(peer=bytes.fromhex(b.pubkey))).channels
    assert not ab.pending_htlcs


def _lncli(node: LightningProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "canal", "ln", "--datadir", str(node.datadir), "--json", *args],
                          capture_output=True, text=True, timeout=120)


def test_self_payment_is_circular_and_needs_the_flag(diamond) -> None:
    chain, a, b, c, d = diamond
    inv = a.rpc.AddInvoice(ln.Invoice(value=20_000, memo="rebalance"))
    with pytest.raises(grpc.RpcError) as err:
        list(a.router.SendPaymentV2(router.SendPaymentRequest(payment_request=inv.payment_request,
                                                              timeout_seconds=30)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "self-payments not allowed" in (
        err.value.details() or "")
    out = _lncli(a, "payinvoice", inv.payment_request, "--allow_self_payment", "--timeout", "30s",
                 "--fee_limit", "1000")
    assert out.returncode == 0, out.stderr
    paid = json.loads(out.stdout)
    assert paid["status"] == "SUCCEEDED"
    hops = paid["htlcs"][-1]["route"]["hops"]
    assert hops[-1]["pub_key"] == a.pubkey and len(hops) == 4 and hops[0]["chan_id"] != hops[-1]["chan_id"]
    assert a.rpc.LookupInvoice(ln.PaymentHash(r_hash=inv.r_hash)).state == ln.Invoice.SETTLED
