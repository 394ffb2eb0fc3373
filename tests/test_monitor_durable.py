"""Anchors fee inputs (CPFP through our anchor) and monitors that survive a restart (channels/monitor_store.py).

A channel pair is driven in memory (tests/test_channel_state.py's harness) to HTLCs
both ways; the monitor host runs with a sqlite MonitorStore. A host rebuilt from the
database halfway through the resolution must produce the same claims as one that never
stopped; a CPFP child built with a real wallet must verify and lift the package fee rate.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_channel_state import SEED_A, payment_hash, preimage
from test_ln_htlc_onchain import (
    CLOSE_HEIGHT,
    CLTV,
    DEST,
    _force_close,
    _outputs,
    _pair,
    _verify,
    _wallet,
)

from base_chain.tx import Transaction
from channels.fee_inputs import ANCHOR_SAT, cpfp_child, fund_htlc_tx
from channels.keys import derive_channel_keys
from channels.monitor_host import (
    BroadcastTx,
    FundHtlcTx,
    HostAction,
    MonitorHost,
    OutgoingHtlcOnChain,
    monitor_data_for_channel,
)
from channels.monitor_store import MonitorStore
from channels.store import ChannelStore
from channels.watcher import ChannelMonitor, CloseKind, NeedFeeBump


def test_cpfp_child_through_our_anchor(tmp_path: Path) -> None:
    pair = _pair(True)
    a = pair.a
    data = monitor_data_for_channel(a.channel, DEST)
    monitor = ChannelMonitor(data, tip_height=CLOSE_HEIGHT)
    monitor.start()
    effects = monitor.force_close("test")
    (need,) = [e for e in effects if isinstance(e, NeedFeeBump)]
    commitment = monitor.local_commitment_tx()
    assert need.txid == commitment.txid
    wallet, coins = _wallet(tmp_path)
    child = cpfp_child(need, wallet, monitor.sign_anchor_input, CLOSE_HEIGHT)
    known = {**_outputs(commitment), **coins}
    _verify(child, known)  # the anchor (our funding key) and the wallet input
    assert child.inputs[0].prevout == need.anchor_outpoint and known[need.anchor_outpoint].amount_sat == ANCHOR_SAT
    child_fee = sum(known[i.prevout].amount_sat for i in child.inputs) - sum(o.amount_sat for o in child.outputs)
    package_rate = (child_fee + need.parent_fee_sat) * 1000 / (child.weight + need.parent_weight)
    assert need.target_feerate_per_kw <= package_rate < need.target_feerate_per_kw * 1.1
    assert all(wallet.is_mine(o.script_pubkey) for o in child.outputs)


def _drive(host: MonitorHost, cid: bytes, actions: list[HostAction], wallet: object, height: int,
           seen: dict[bytes, Transaction], reports: list[OutgoingHtlcOnChain]) -> None:
    for act in actions:
        if isinstance(act, BroadcastTx):
            seen.setdefault(act.tx.txid, act.tx)
        elif isinstance(act, FundHtlcTx):
            _drive(host, cid, host.complete_htlc_tx(cid, fund_htlc_tx(act.need, wallet, height)),  # type: ignore[arg-type]
                   wallet, height, seen, reports)
        elif isinstance(act, OutgoingHtlcOnChain):
            reports.append(act)


@pytest.mark.parametrize("anchors", [False, True], ids=["static_remotekey", "anchors"])
def test_monitor_restored_from_the_database(tmp_path: Path, anchors: bool) -> None:
    """Two hosts on the same close, one restarted (from sqlite) halfway: the same claims, confirmed the same way."""
    pair = _pair(anchors)
    a = pair.a
    cid = a.channel.channel_id
    closing = _force_close(a.channel)
    wallet, _ = _wallet(tmp_path)
    preimages = {payment_hash(2): preimage(2)}
    results = []
    for restart in (False, True):
        store = MonitorStore(ChannelStore(tmp_path / f"ch-{restart}.sqlite").conn)
        host = MonitorHost(store)
        data = monitor_data_for_channel(a.channel, DEST, preimages=preimages)
        seen: dict[bytes, Transaction] = {}
        reports: list[OutgoingHtlcOnChain] = []
        _drive(host, cid, host.adopt(cid, data, closing, CLOSE_HEIGHT, channel_index=0), wallet, CLOSE_HEIGHT,
               seen, reports)
        confirmed: set[bytes] = set()
        for height in range(CLOSE_HEIGHT + 1, CLTV + 170):  # past to_self_delay (144) after the HTLC txs
            if restart and height == CLTV - 5:
                (stored,) = store.monitors()
                assert "secrets" not in stored.state["data"]  # re-derived from the seed
                host = MonitorHost(store)
                _drive(host, cid, host.restore(cid, 0, stored.state, derive_channel_keys(SEED_A, 0)), wallet,
                       height - 1, seen, reports)
                monitor = host.monitor(cid)
                assert monitor is not None and monitor.close_kind is CloseKind.LOCAL
            # "mine" every claim broadcast so far that spends the close or an output of one we mined
            block = [tx for txid, tx in seen.items() if txid not in confirmed and any(
                i.prevout.txid in confirmed | {closing.txid} for i in tx.inputs)]
            confirmed |= {tx.txid for tx in block}
            for got, act in host.block_connected(height, block):
                assert got == cid
                _drive(host, cid, [act], wallet, height, seen, reports)
        results.append((sorted(confirmed), sorted((r.htlc_id, r.preimage is None) for r in reports)))
        assert not len(host)  # every output resolved: the monitor is retired, in the database too
        assert store.monitors() == []
    assert results[0] == results[1]
    confirmed_txids, reports = results[0]
    assert len(confirmed_txids) >= 4  # both HTLC txs, to_local, the second-stage outputs
    assert (0, True) in reports  # our outgoing HTLC 0 timed out on chain: the payment layer is told


def test_sweeps_and_scanned_height_persist(tmp_path: Path) -> None:
    conn = ChannelStore(tmp_path / "c.sqlite").conn
    store = MonitorStore(conn)
    pair = _pair(False)
    closing = _force_close(pair.a.channel)
    store.add_sweep(b"c" * 32, 120, closing)
    store.add_sweep(b"c" * 32, 120, closing)  # idempotent (a block handled twice)
    assert [(s.channel_id, s.valid_from, s.tx.txid) for s in store.pending_sweeps()] == [(b"c" * 32, 120, closing.txid)]
    store.sweep_done(closing.txid)
    assert store.pending_sweeps() == []
    assert store.scanned() is None
    store.set_scanned(7, b"\x01" * 32)
    again = MonitorStore(ChannelStore(tmp_path / "c.sqlite").conn)
    assert again.scanned() == (7, b"\x01" * 32)
    again.add_preimage(b"c" * 32, payment_hash(3), preimage(3))
    assert store.preimages(b"c" * 32) == {payment_hash(3): preimage(3)}


# --- the manager across restarts (fake daemon): a missed close block, then the restored sweep ---------------


class _Chain:
    def __init__(self) -> None:
        self.blocks: dict[int, object] = {}

    async def estimate_fee_sat_kvb(self, blocks: int) -> int:
        return 10_000

    async def block_hash(self, height: int) -> str:
        return str(height)

    async def block(self, block_hash: str) -> object:
        return self.blocks[int(block_hash)]


class _Wallet:
    def get_change_script(self) -> bytes:
        return DEST


class _Daemon:
    def __init__(self, chain: _Chain) -> None:
        self.chain = chain
        self.wallet = _Wallet()
        self.peers: dict[str, object] = {}
        self.tip_height = 0
        self.sent: list[Transaction] = []

    async def broadcast(self, tx: Transaction) -> str:
        self.sent.append(tx)
        return tx.txid_hex()


def test_manager_restarts_find_a_missed_close_and_keep_its_sweep(tmp_path: Path) -> None:
    import trio
    from test_ln_htlc_onchain import _block

    from channels.effects import Broadcast as ChannelBroadcast
    from channels.manager import ChannelManager

    pair = _pair_without_htlcs()
    a = pair.a
    cid = a.channel.channel_id
    commitment = next(e.tx for e in a.channel.force_close() if isinstance(e, ChannelBroadcast))
    db = tmp_path / "channels.sqlite"
    store = ChannelStore(db)
    store.save_channel(cid, b"\x02" * 33, 0, a.channel.to_bytes())
    store.close()
    chain = _Chain()
    h = CLOSE_HEIGHT
    for height in range(h - 3, h + 150):
        chain.blocks[height] = _block([commitment] if height == h else [])

    def manager() -> tuple[ChannelManager, _Daemon]:
        daemon = _Daemon(chain)
        m = ChannelManager(daemon, ChannelStore(db), SEED_A)  # type: ignore[arg-type]
        m.load()
        return m, daemon

    async def main() -> None:
        # 1: handles the block before the close, then is killed (the wallet had already taken block h)
        m1, _ = manager()
        await m1.block_changed(chain.blocks[h - 1], h - 1, True)  # type: ignore[arg-type]
        # 2: at start, catches up on block h: the close and its delayed to_local sweep (durable)
        m2, d2 = manager()
        d2.tip_height = h
        await m2.resume()
        mc = m2.find(cid)
        assert mc is not None and mc.closing_txid == commitment.txid and len(mc.sweeps) == 1
        sweep = mc.sweeps[0][1]
        assert mc.sweeps[0][0] == h + 144 and d2.sent == []  # not valid before to_self_delay
        # 3: another restart; the sweep comes back from the database and goes out once valid
        m3, d3 = manager()
        mc3 = m3.find(cid)
        assert mc3 is not None and [tx.txid for _, tx in mc3.sweeps] == [sweep.txid]
        assert mc3.watch is not None and mc3.watch.spent_by == commitment.txid  # the close is not handled twice
        await m3.block_changed(chain.blocks[h + 143], h + 143, True)  # type: ignore[arg-type]  # catches up first
        assert {tx.txid for tx in d3.sent} == {sweep.txid}
        _verify(sweep, _outputs(commitment))
        # mined: done, and no longer restored
        await m3.block_changed(_block([sweep]), h + 144, True)
        m4, _ = manager()
        mc4 = m4.find(cid)
        assert mc4 is not None and mc4.sweeps == []

    trio.run(main)


def _pair_without_htlcs() -> object:
    from test_channel_state import FEATURES_NO_ANCHORS, Pair

    pair = Pair(features_a=FEATURES_NO_ANCHORS, features_b=FEATURES_NO_ANCHORS)
    pair.pay(pair.a, 20_000_000, 7)
    pair.commit(pair.a)
    pair.settle()
    pair.do(pair.b, pair.b.channel.fulfill_htlc(0, preimage(7)))
    pair.commit(pair.b)
    pair.settle()
    c = pair.a.channel.commitments
    assert c is not None and not c.local_commit.spec.htlcs
    return pair


def test_preimage_claimed_on_chain_reaches_the_payment_hook(tmp_path: Path) -> None:
    """a's outgoing HTLC is claimed by b with the preimage from a's force-closed commitment: a's manager
    tells its payment layer at once (HtlcFulfilled), once. (A timeout: tests/test_ln_htlc_onchain.py.)"""
    import trio
    from test_ln_htlc_onchain import _block

    from channels.effects import Broadcast as ChannelBroadcast
    from channels.effects import HtlcFailed, HtlcFulfilled, LocalCommitmentPublished
    from channels.manager import ChannelManager

    pair = _pair(False)  # a offered HTLC 0 (hash 1) to b; b offered HTLC 0 (hash 2) to a
    a, b = pair.a, pair.b
    cid = a.channel.channel_id
    effects = a.channel.force_close()
    commitment = next(e.tx for e in effects if isinstance(e, ChannelBroadcast))
    published = next(e for e in effects if isinstance(e, LocalCommitmentPublished))
    # b's monitor claims a's HTLC 0 with its preimage, straight from a's commitment
    b_host = MonitorHost()
    b_data = monitor_data_for_channel(b.channel, DEST, preimages={payment_hash(1): preimage(1)})
    claims = [act.tx for act in b_host.adopt(b.channel.channel_id, b_data, commitment, CLOSE_HEIGHT)
              if isinstance(act, BroadcastTx) and any(preimage(1) in i.witness for i in act.tx.inputs)]
    assert len(claims) == 1
    store = ChannelStore(tmp_path / "channels.sqlite")
    store.save_channel(cid, b"\x02" * 33, 0, a.channel.to_bytes())
    events: list[HtlcFulfilled | HtlcFailed] = []

    async def hook(mc: object, event: HtlcFulfilled | HtlcFailed) -> None:
        events.append(event)

    async def main() -> None:
        m = ChannelManager(_Daemon(_Chain()), store, SEED_A)  # type: ignore[arg-type]
        m.load()
        m.on_htlc_onchain = hook
        mc = m.find(cid)
        assert mc is not None and mc.watch is not None
        mc.published = published
        await m.block_changed(_block([commitment]), CLOSE_HEIGHT, True)
        assert cid in m.monitors
        await m.block_changed(_block(claims), CLOSE_HEIGHT + 1, True)
        assert events == [HtlcFulfilled(cid, 0, payment_hash(1), preimage(1))]  # at once, before 6 blocks
        for height in range(CLOSE_HEIGHT + 2, CLOSE_HEIGHT + 12):
            await m.block_changed(_block([]), height, True)
        assert len(events) == 1  # reported once

    trio.run(main)


def test_force_close_cpfps_an_underpaying_anchors_commitment(tmp_path: Path) -> None:
    """Fees rose above the commitment's agreed rate: channeld's force close adds a CPFP child through
    our anchor and a wallet coin, so the package pays the current estimate."""
    import trio

    from channels.manager import ChannelManager

    pair = _pair(True)
    a = pair.a
    cid = a.channel.channel_id
    c = a.channel.commitments
    assert c is not None and c.local_commit.spec.feerate_per_kw < 5000
    wallet, coins = _wallet(tmp_path)

    class HighFees(_Chain):
        async def estimate_fee_sat_kvb(self, blocks: int) -> int:
            return 20_000  # 20 sat/vB = 5000 sat/kw

    daemon = _Daemon(HighFees())
    daemon.wallet = wallet  # type: ignore[assignment]
    daemon.tip_height = CLOSE_HEIGHT
    store = ChannelStore(tmp_path / "channels.sqlite")
    store.save_channel(cid, b"\x02" * 33, 0, a.channel.to_bytes())

    async def main() -> None:
        m = ChannelManager(daemon, store, SEED_A)  # type: ignore[arg-type]
        m.load()
        mc = m.find(cid)
        assert mc is not None
        await m.command(mc, lambda ch: ch.force_close())

    trio.run(main)
    commitment, child = daemon.sent[0], daemon.sent[1]
    assert len(daemon.sent) == 2 and child.inputs[0].prevout.txid == commitment.txid
    known = {**_outputs(commitment), **coins}
    _verify(child, known)
    parent_fee = c.params.funding_sat - sum(o.amount_sat for o in commitment.outputs)
    child_fee = sum(known[i.prevout].amount_sat for i in child.inputs) - sum(o.amount_sat for o in child.outputs)
    rate = (parent_fee + child_fee) * 1000 / (commitment.weight + child.weight)
    assert 5000 <= rate < 5500


def test_force_close_goes_on_when_the_fee_estimate_is_unavailable(tmp_path: Path) -> None:
    """The chain node cannot estimate fees (unreachable): the CPFP is skipped, but the force close itself
    is carried out to the end (the commitment broadcast, the effects after it) and raises nothing."""
    import trio

    from channels.chainclient import ChainUnavailable
    from channels.manager import ChannelManager

    pair = _pair(True)
    a = pair.a
    cid = a.channel.channel_id
    wallet, _ = _wallet(tmp_path)

    class NoEstimate(_Chain):
        async def estimate_fee_sat_kvb(self, blocks: int) -> int:
            raise ChainUnavailable("connection refused")

    daemon = _Daemon(NoEstimate())
    daemon.wallet = wallet  # type: ignore[assignment]
    daemon.tip_height = CLOSE_HEIGHT
    store = ChannelStore(tmp_path / "channels.sqlite")
    store.save_channel(cid, b"\x02" * 33, 0, a.channel.to_bytes())

    async def main() -> None:
        m = ChannelManager(daemon, store, SEED_A)  # type: ignore[arg-type]
        m.load()
        mc = m.find(cid)
        assert mc is not None
        await m.command(mc, lambda ch: ch.force_close())
        assert mc.published is not None  # LocalCommitmentPublished, after the Broadcast, was carried out

    trio.run(main)
    assert len(daemon.sent) == 1
