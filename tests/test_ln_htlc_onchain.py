"""HTLC outputs resolved on chain through channels.monitor_host (BOLT 5 via ChannelMonitor).

A channel pair is driven in memory (tests/test_channel_state.py's harness) until
both commitments carry one HTLC each way; then one side force-closes and the
MonitorData built from the live Channel by ``monitor_data_for_channel`` must make
the monitor claim the HTLC outputs with transactions that pass the script
interpreter. With anchors our own HTLC transactions get wallet inputs (FundHtlcTx).
The process-level test runs two ``canal channeld``: an outgoing HTLC of a force-closed
anchors channel comes back by timeout on chain across SIGKILLs of its owner.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from test_channel_state import (
    FEATURES,
    FEATURES_NO_ANCHORS,
    SEED_A,
    Pair,
    payment_hash,
    preimage,
)

from base_chain import crypto
from base_chain.block import Block, BlockHeader
from base_chain.script import STANDARD_FLAGS, verify_script
from base_chain.tx import OutPoint, Transaction, TxIn, TxOut
from channels.effects import Broadcast as ChannelBroadcast
from channels.effects import LocalCommitmentPublished
from channels.manager import ChannelManager, FundingWatch, ManagedChannel
from base_chain.params import get_params
from daemons import wait_for
from base_chain.wallet import Wallet
from channels.fee_inputs import fund_htlc_tx
from channels.monitor_host import (
    BroadcastTx,
    FundHtlcTx,
    HostAction,
    MonitorHost,
    channel_has_htlcs,
    monitor_data_for_channel,
)
from channels.store import ChannelStore
from channels.transactions import ChannelType
from channels.watcher import CloseKind

DEST = bytes([0, 20]) + b"\xdd" * 20
CLTV = 600_000
CLOSE_HEIGHT = CLTV - 50


@pytest.fixture(autouse=True, scope="module")
def _coincurve() -> Iterator[None]:
    previous = crypto.get_backend().name
    if "coincurve" in crypto.available_backends():
        crypto.set_backend("coincurve")
    try:
        yield
    finally:
        crypto.set_backend(previous)


def _pair(anchors: bool) -> Pair:
    features = FEATURES if anchors else FEATURES_NO_ANCHORS
    pair = Pair(features_a=features, features_b=features)
    a, b = pair.a, pair.b
    assert a.channel.channel_type is (ChannelType.ANCHORS if anchors else ChannelType.STATIC_REMOTEKEY)
    pair.pay(a, 20_000_000, 1, cltv=CLTV)  # a -> b: a's outgoing HTLC, b learns nothing
    pair.pay(b, 30_000_000, 2, cltv=CLTV + 10)  # b -> a: a will know the preimage
    pair.commit(a)
    pair.settle()
    pair.commit(b)
    pair.settle()
    for side in (a, b):
        c = side.channel.commitments
        assert c is not None and len(c.local_commit.spec.htlcs) == 2 and len(c.remote_commit.spec.htlcs) == 2
    return pair


def _force_close(side_channel: object) -> Transaction:
    effects = side_channel.force_close()  # type: ignore[attr-defined]
    return next(e.tx for e in effects if isinstance(e, ChannelBroadcast) and e.label == "commitment")


def _verify(tx: Transaction, known: dict[OutPoint, TxOut]) -> None:
    for i, txin in enumerate(tx.inputs):
        prev = known[txin.prevout]
        verify_script(b"", prev.script_pubkey, txin.witness, STANDARD_FLAGS, tx, i, prev.amount_sat)


def _outputs(tx: Transaction) -> dict[OutPoint, TxOut]:
    return {OutPoint(tx.txid, i): o for i, o in enumerate(tx.outputs)}


def _run(host: MonitorHost, cid: bytes, data_pair: tuple[object, Transaction], wallet: Wallet | None = None
         ) -> list[Transaction]:
    """Adopt the close at CLOSE_HEIGHT, then mine empty blocks past the CLTVs; every broadcast, once.

    Zero-fee HTLC transactions (anchors) get inputs from `wallet` when there is one."""
    data, closing = data_pair
    seen: dict[bytes, Transaction] = {}

    def take(actions: list[HostAction], height: int) -> None:
        for act in actions:
            if isinstance(act, BroadcastTx):
                seen.setdefault(act.tx.txid, act.tx)
            elif isinstance(act, FundHtlcTx) and wallet is not None:
                take(host.complete_htlc_tx(cid, fund_htlc_tx(act.need, wallet, height)), height)

    take(host.adopt(cid, data, closing, CLOSE_HEIGHT), CLOSE_HEIGHT)  # type: ignore[arg-type]
    for height in range(CLOSE_HEIGHT + 1, CLTV + 12):
        for got_cid, act in host.block_connected(height, []):
            assert got_cid == cid
            take([act], height)
    return list(seen.values())


def _wallet(tmp_path: Path) -> tuple[Wallet, dict[OutPoint, TxOut]]:
    """A regtest wallet holding two confirmed coins (0.5 and 0.25 BTC) at CLOSE_HEIGHT - 10."""
    wallet = Wallet.open(tmp_path / "wallet.sqlite", get_params("regtest"), seed=bytes(range(32)))
    script = wallet.get_change_script()
    funding = Transaction(2, [TxIn(OutPoint(b"\x77" * 32, 0), b"", 0xFFFFFFFF, [b"\x01"])],
                          [TxOut(50_000_000, script), TxOut(25_000_000, script)], 0)
    wallet.block_connected(_block([funding]), CLOSE_HEIGHT - 10)
    return wallet, _outputs(funding)


def _htlc_spends(txs: list[Transaction], closing: Transaction) -> list[Transaction]:
    return [tx for tx in txs if any(txin.prevout.txid == closing.txid for txin in tx.inputs)]


@pytest.mark.parametrize("anchors", [False, True], ids=["static_remotekey", "anchors"])
def test_remote_force_close_htlcs_claimed(anchors: bool) -> None:
    """b broadcasts its commitment: a claims b's HTLC with the preimage and takes its own back after the CLTV."""
    pair = _pair(anchors)
    a, b = pair.a, pair.b
    assert channel_has_htlcs(a.channel)
    data = monitor_data_for_channel(a.channel, DEST, preimages={payment_hash(2): preimage(2)})
    closing = _force_close(b.channel)
    host = MonitorHost()
    cid = a.channel.channel_id
    txs = _run(host, cid, (data, closing))
    monitor = host.monitor(cid)
    assert monitor is not None and monitor.close_kind is CloseKind.REMOTE
    known = _outputs(closing)
    spends = _htlc_spends(txs, closing)
    htlc_outputs = {o.outpoint for o in monitor.outputs if o.htlc is not None}
    assert len(htlc_outputs) == 2
    claimed = {txin.prevout for tx in spends for txin in tx.inputs}
    assert htlc_outputs <= claimed
    for tx in spends:
        assert all(o.script_pubkey == DEST for o in tx.outputs)
        _verify(tx, known)
    success = [tx for tx in spends if any(preimage(2) in txin.witness for txin in tx.inputs)]
    assert success, "no preimage claim of b's HTLC"


@pytest.mark.parametrize("anchors", [False, True], ids=["static_remotekey", "anchors"])
def test_local_force_close_htlc_transactions(tmp_path: Path, anchors: bool) -> None:
    """a broadcasts its commitment: HTLC-success at once (preimage known), HTLC-timeout at the CLTV.

    With anchors those are zero-fee transactions: the host adds wallet inputs and a change
    output (FundHtlcTx), and the result pays the monitor's urgent fee rate."""
    pair = _pair(anchors)
    a = pair.a
    data = monitor_data_for_channel(a.channel, DEST, preimages={payment_hash(2): preimage(2)})
    closing = _force_close(a.channel)
    host = MonitorHost()
    cid = a.channel.channel_id
    wallet, coins = _wallet(tmp_path)
    txs = _run(host, cid, (data, closing), wallet)
    monitor = host.monitor(cid)
    assert monitor is not None and monitor.close_kind is CloseKind.LOCAL
    spends = _htlc_spends(txs, closing)
    htlc_outputs = {o.outpoint for o in monitor.outputs if o.htlc is not None}
    assert len(htlc_outputs) == 2
    htlc_txs = [tx for tx in spends if any(txin.prevout in htlc_outputs for txin in tx.inputs)]
    assert len(htlc_txs) == 2
    known = {**_outputs(closing), **coins}
    for tx in htlc_txs:
        _verify(tx, known)
        fee = sum(known[i.prevout].amount_sat for i in tx.inputs) - sum(o.amount_sat for o in tx.outputs)
        if anchors:  # wallet inputs after input 0, change last: at least the urgent rate for the whole weight
            assert len(tx.inputs) >= 2 and len(tx.outputs) == 2 and wallet.is_mine(tx.outputs[1].script_pubkey)
            assert fee * 1000 >= 5000 * tx.weight and fee * 1000 < 5000 * tx.weight * 1.1
        else:
            assert len(tx.inputs) == 1 and fee > 0
    success = [tx for tx in htlc_txs if preimage(2) in tx.inputs[0].witness]
    timeout = [tx for tx in htlc_txs if tx not in success]
    assert len(success) == 1 and len(timeout) == 1
    assert timeout[0].locktime == CLTV


def test_preimages_from_the_update_log_and_no_htlcs() -> None:
    pair = Pair(features_a=FEATURES_NO_ANCHORS, features_b=FEATURES_NO_ANCHORS)
    assert not channel_has_htlcs(pair.a.channel)
    pair.pay(pair.a, 20_000_000, 7)
    pair.commit(pair.a)
    pair.settle()
    pair.do(pair.b, pair.b.channel.fulfill_htlc(0, preimage(7)))
    data = monitor_data_for_channel(pair.b.channel, DEST)
    assert data.preimages == {payment_hash(7): preimage(7)}
    assert hashlib.sha256(preimage(7)).digest() == payment_hash(7)
    assert channel_has_htlcs(pair.b.channel)


# --- the manager hook (ChannelManager._funding_spent / block_changed) with a fake daemon ---------------------


class _FakeChain:
    async def estimate_fee_sat_kvb(self, blocks: int) -> int:
        return 10_000


class _FakeWallet:
    def get_change_script(self) -> bytes:
        return DEST


class _FakeDaemon:
    def __init__(self) -> None:
        self.chain = _FakeChain()
        self.wallet = _FakeWallet()
        self.sent: list[Transaction] = []

    async def broadcast(self, tx: Transaction) -> str:
        self.sent.append(tx)
        return tx.txid_hex()


def _block(txs: list[Transaction]) -> Block:
    return Block(BlockHeader(1, bytes(32), bytes(32), 0, 0, 0), txs)


@pytest.mark.parametrize(
    "local,anchors",
    [(True, False), (False, False), (False, True)],
    ids=["local-static_remotekey", "remote-static_remotekey", "remote-anchors"],
)
def test_manager_hands_force_close_with_htlcs_to_monitor(tmp_path: Path, local: bool, anchors: bool) -> None:
    pair = _pair(anchors)
    a, b = pair.a, pair.b
    # a settles b's HTLC off chain (the preimage is only in its update log), then the channel closes
    pair.do(a, a.channel.fulfill_htlc(0, preimage(2)))
    daemon = _FakeDaemon()
    c = a.channel.commitments
    assert c is not None

    async def main() -> None:
        manager = ChannelManager(daemon, ChannelStore(tmp_path / "channels.sqlite"), SEED_A)  # type: ignore[arg-type]
        mc = ManagedChannel(a.channel, b"\x02" * 33, 0)
        mc.watch = FundingWatch(c.params.funding_outpoint, c.params.funding_script_pubkey, 3, CLOSE_HEIGHT - 10, 1)
        manager.channels[mc.channel_id] = mc
        if local:
            effects = a.channel.force_close()
            mc.published = next(e for e in effects if isinstance(e, LocalCommitmentPublished))
            closing = mc.published.commitment_tx
        else:
            closing = _force_close(b.channel)
        await manager.block_changed(_block([closing]), CLOSE_HEIGHT, True)
        assert mc.channel_id in manager.monitors and mc.sweeps == []  # the monitor owns the close
        for height in range(CLOSE_HEIGHT + 1, CLTV + 3):
            await manager.block_changed(_block([]), height, True)
        closings.append(closing)

    closings: list[Transaction] = []
    trio.run(main)
    closing = closings[0]
    spends = {tx.txid: tx for tx in daemon.sent if any(txin.prevout.txid == closing.txid for txin in tx.inputs)}
    known = _outputs(closing)
    for tx in spends.values():
        _verify(tx, known)
    htlc_indexes = {i for i, o in enumerate(closing.outputs) if o.amount_sat in (20_000, 30_000)}
    assert len(htlc_indexes) == 2
    claimed = {txin.prevout.index for tx in spends.values() for txin in tx.inputs}
    assert htlc_indexes <= claimed
    assert any(preimage(2) in txin.witness for tx in spends.values() for txin in tx.inputs)


# --- process level: two `canal channeld`, an anchors channel, our outgoing HTLC back by timeout -------------


def _restart(proc: object) -> None:
    """Start again; a kept peer port another process took meanwhile (a shared machine) is given up."""
    try:
        proc.start()  # type: ignore[attr-defined]
    except RuntimeError as e:
        if "Address already in use" not in str(e):
            raise
        proc.info.pop("listen_port", None)  # type: ignore[attr-defined]
        proc.start()  # type: ignore[attr-defined]


def _wait_log(proc: object, text: str, what: str) -> None:
    wait_for(lambda: text in proc.stderr(), 60, what)  # type: ignore[attr-defined]


def test_force_closed_anchors_htlc_times_out_across_kills(tmp_path: Path) -> None:
    """alice pays bob, bob dies holding the HTLC (CANAL_CRASH_AT), alice force-closes her anchors
    commitment. SIGKILLed after the close and again after her HTLC-timeout confirmed, alice still
    funds that zero-fee HTLC-timeout from her wallet at the CLTV, the payment becomes FAILED,
    and her to_local and the HTLC's second-stage output come back to her wallet."""
    import os

    from daemons import ChainProcess, LightningProcess

    from proto import chain_pb2 as pb
    from proto import lightning_pb2 as ln
    from proto import router_pb2 as router

    chain = ChainProcess(tmp_path / "chain").start()
    alice = LightningProcess(tmp_path / "alice", chain)
    bob = LightningProcess(tmp_path / "bob", chain)
    try:
        chain.generate(101)
        alice.start()
        os.environ["CANAL_CRASH_AT"] = "persist:on_revoke_and_ack"  # bob: the HTLC is irrevocably his
        try:
            bob.start()
        finally:
            del os.environ["CANAL_CRASH_AT"]
        addr = alice.rpc.NewAddress(ln.NewAddressRequest()).address
        chain.rpc.SendToAddress(pb.SendToAddressRequest(address=addr, amount_sat=100_000_000, fee_rate_sat_vb=2))
        chain.generate(1)
        wait_for(lambda: alice.rpc.WalletBalance(ln.WalletBalanceRequest()).confirmed_balance > 0, 30, "funded")
        alice.rpc.ConnectPeer(ln.ConnectPeerRequest(addr=ln.LightningAddress(
            pubkey=bob.pubkey, host=f"127.0.0.1:{bob.info['listen_port']}")))
        wait_for(lambda: bob.rpc.ListPeers(ln.ListPeersRequest()).peers, 20, "connected")
        alice.rpc.OpenChannelSync(ln.OpenChannelRequest(node_pubkey=bytes.fromhex(bob.pubkey),
                                                        local_funding_amount=1_000_000, sat_per_vbyte=2))
        chain.generate(3)
        wait_for(lambda: alice.rpc.ListChannels(ln.ListChannelsRequest(active_only=True)).channels, 30, "active")
        invoice = bob.rpc.AddInvoice(ln.Invoice(value=50_000, memo="held by a dead node"))
        try:
            for _ in alice.router.SendPaymentV2(router.SendPaymentRequest(
                    payment_request=invoice.payment_request, timeout_seconds=60), timeout=3):
                pass
        except Exception:  # noqa: BLE001 -- the stream outlives our 3 s: the payment stays in flight
            pass
        assert bob.proc is not None and bob.proc.wait(30) == -9  # bob died with the HTLC
        chan = wait_for(lambda: [c for c in alice.rpc.ListChannels(ln.ListChannelsRequest()).channels
                                 if c.pending_htlcs], 30, "alice's commitment holds the HTLC")[0]
        expiry = chan.pending_htlcs[0].expiration_height
        assert chan.commitment_type == ln.CommitmentType.ANCHORS
        wallet_before = alice.rpc.WalletBalance(ln.WalletBalanceRequest()).total_balance
        local = chan.local_balance
        txid, _, index = chan.channel_point.partition(":")
        close = alice.rpc.CloseChannel(ln.CloseChannelRequest(
            channel_point=ln.ChannelPoint(funding_txid_str=txid, output_index=int(index)), force=True))
        next(iter(close))
        chain.generate(1)
        _wait_log(alice, "on-chain monitor took over", "alice's monitor adopts the close")
        alice.kill()  # 1: right after the close; blocks pass while alice is down
        chain.generate(3)
        _restart(alice)
        _wait_log(alice, "on-chain monitor restored", "alice restores her monitor")
        height = chain.height()
        chain.generate(expiry - height)  # the CLTV: the HTLC-timeout may go in the next block
        _wait_log(alice, "zero-fee HTLC tx for", "alice funds the HTLC-timeout from her wallet")
        wait_for(lambda: len(chain.rpc.GetRawMempool(pb.GetRawMempoolRequest()).txids) >= 1, 30, "HTLC-timeout")
        chain.generate(1)
        alice.kill()  # 2: HTLC-timeout confirmed, its output still locked for to_self_delay
        chain.generate(2)
        _restart(alice)
        chain.generate(6)  # reorg_safety_depth: the timeout is final, the payment fails

        def failed() -> bool:
            payments = alice.rpc.ListPayments(ln.ListPaymentsRequest(include_incomplete=True)).payments
            return any(p.payment_hash == invoice.r_hash.hex() and p.status == ln.Payment.FAILED for p in payments)

        # (a resumed payment waits up to htlc.send.RESUME_GRACE_S for its channels before its next step)
        wait_for(failed, 90, "the payment fails once the HTLC timed out on chain")
        chain.generate(150)  # to_self_delay (144) on to_local and on the HTLC-timeout's output
        # everything back but fees: the channel balance and the HTLC's 50,000 sat (two sweeps, maybe a block apart)
        target = wallet_before + local + 50_000 - 15_000
        for _ in range(4):
            wait_for(lambda: chain.rpc.GetRawMempool(pb.GetRawMempoolRequest()).txids, 60, "a sweep")
            chain.generate(1)
            tip = chain.height()
            wait_for(lambda: alice.rpc.GetInfo(ln.GetInfoRequest()).block_height == tip, 30, "alice at the tip")
            if alice.rpc.WalletBalance(ln.WalletBalanceRequest()).confirmed_balance > target:
                break
        balance = alice.rpc.WalletBalance(ln.WalletBalanceRequest())
        assert balance.confirmed_balance > target and balance.unconfirmed_balance == 0, (wallet_before, local, balance)
    finally:
        for p in (alice, bob, chain):
            p.stop()
