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
