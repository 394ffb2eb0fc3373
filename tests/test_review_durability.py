"""Windows where a skipped write could let a promise out before it is on disk (found in review, now closed).

The Pair harness carries out effects as ``ChannelManager._apply`` does (``persist_to_write``); the last
tests drive a real ``ChannelManager`` and record the order of its writes, syncs and sends.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from test_channel_state import ONION, Crash, Pair, payment_hash, preimage

import base_chain.store
from base_chain.crypto import PrivateKey
from base_chain.hashes import sha256
from base_chain.params import get_params
from channels import messages as m
from channels.effects import SendMessage
from channels.manager import ChannelManager, ManagedChannel
from channels.store import ChannelStore
from htlc.forwarding import Circuit, CircuitState, Forwarder, HtlcRef
from htlc.invoice import invoice_prefix
from htlc.invoices import InvoiceHtlc, InvoiceRegistry, InvoiceState
from htlc.send import htlc_pending

PEER = b"\x02" * 33
NODE_KEY = PrivateKey(hashlib.sha256(b"review").digest())
PREFIX = invoice_prefix(get_params("regtest"))


def _circuit(n: int, outgoing_channel_id: bytes) -> Circuit:
    return Circuit(
        incoming=HtlcRef(b"\x11" * 32, n), incoming_short_channel_id=1, payment_hash=payment_hash(n),
        incoming_amount_msat=1_001_000, incoming_cltv_expiry=600_100, shared_secret=bytes(32),
        outgoing_channel_id=outgoing_channel_id, outgoing_short_channel_id=2, requested_short_channel_id=2,
        outgoing_amount_msat=1_000_000, outgoing_cltv_expiry=600_000, sha256_of_next_onion=sha256(ONION),
        next_onion=ONION,
    )


def _forward(pair: Pair, fwd: Forwarder, n: int) -> tuple[list[object], bytes]:
    """``PaymentNode._add_downstream``'s ``add``: the add, the circuit FORWARDED and forwarding.bin written, sign."""
    ch = pair.a.channel
    circuit = _circuit(n, ch.channel_id)
    fwd._circuits[circuit.incoming] = circuit  # as on_incoming leaves it (PENDING_ADD), saved before the add
    effects: list[object] = list(ch.add_htlc(circuit.outgoing_amount_msat, circuit.payment_hash,
                                             circuit.outgoing_cltv_expiry, ONION))
    add = next(e.message for e in effects if isinstance(e, SendMessage))
    assert isinstance(add, m.UpdateAddHtlc)
    fwd.on_forward_added(circuit.incoming, add.id)
    saved = fwd.to_bytes()  # _save_forwarder(): durable (write_atomic) before the channel's effects
    return [*effects, *ch.sign()], saved


def test_forwarded_add_survives_a_kill_after_it_is_sent() -> None:
    pair = Pair()
    fwd = Forwarder()
    effects, saved = _forward(pair, fwd, 1)
    kinds = [type(e).__name__ for e in effects]
    assert kinds == ["Persist", "SendMessage", "Persist", "SendMessage"]
    # SIGKILL right after the update_add_htlc was handed to the transport (CANAL_CRASH_AT=send:update_add_htlc)
    pair.crash_at = pair.effect_count + 2
    with pytest.raises(Crash):
        pair.run(pair.a, effects)  # type: ignore[arg-type]
    pair.restore()
    fwd = Forwarder.from_bytes(saved)
    [circuit] = fwd.circuits()
    assert circuit.state is CircuitState.FORWARDED and circuit.outgoing is not None
    problems = []
    if not htlc_pending(pair.a.channel, circuit.outgoing.htlc_id):
        problems.append(f"the channel does not hold HTLC {circuit.outgoing.htlc_id} of the FORWARDED circuit "
                        f"(next id {pair.a.channel._c.local_next_htlc_id})")
    try:  # the next forward on the same channel
        _forward(pair, fwd, 2)
    except ValueError as e:
        problems.append(f"next forward: {e}")
    assert not problems, "; ".join(problems)


def _disk_model(monkeypatch: pytest.MonkeyPatch, disk: Path) -> None:
    """What survives a power cut: the database files as of the last fsync of the WAL (GroupCommit's)."""
    disk.mkdir()

    def fsync_wal(db_path: Path | str) -> None:
        src = Path(db_path)
        for suffix in ("", "-wal"):
            f = Path(f"{src}{suffix}")
            if f.exists():
                shutil.copyfile(f, disk / (src.name + suffix))

    monkeypatch.setattr(base_chain.store, "fsync_wal", fsync_wal)


def _state_on_disk(disk: Path, payment_hash_: bytes) -> InvoiceState:
    copy = disk.parent / "after_power_cut"
    shutil.copytree(disk, copy, dirs_exist_ok=True)
    conn = sqlite3.connect(str(copy / "invoices.sqlite"))
    try:
        row = conn.execute("SELECT state FROM invoices WHERE payment_hash = ?", (payment_hash_,)).fetchone()
    finally:
        conn.close()
    return InvoiceState(row[0])


class _Link:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def send(self, msg: m.Message) -> None:
        self.log.append(f"send {msg.NAME}")


class _Peer:
    def __init__(self, log: list[str]) -> None:
        self.link = _Link(log)


def _manager(tmp_path: Path, log: list[str], registry: InvoiceRegistry | None = None) -> ChannelManager:
    """A ChannelManager over a real store whose peer link and before_write hook only record what happens."""
    daemon = SimpleNamespace(peers={PEER.hex(): _Peer(log)})
    manager = ChannelManager(daemon, ChannelStore(tmp_path / "channels.sqlite"), bytes(32))  # type: ignore[arg-type]
    manager.before_write.append(lambda: log.append("sync"))
    if registry is not None:
        manager.before_write.append(registry.sync)
    original = manager.store.save_channel

    def save_channel(*args: Any, **kw: Any) -> None:
        log.append("write")
        original(*args, **kw)

    manager.store.save_channel = save_channel  # type: ignore[method-assign]
    return manager


async def test_a_forwarded_add_leaves_after_the_state_that_signs_it(tmp_path: Path) -> None:
    pair = Pair()
    log: list[str] = []
    manager = _manager(tmp_path, log)
    mc = ManagedChannel(pair.a.channel, PEER, 0)
    manager.channels[mc.channel_id] = mc
    await manager.command(mc, lambda ch: [*ch.add_htlc(1_000_000, payment_hash(1), 600_000, ONION), *ch.sign()])
    assert log == ["sync", "write", "send update_add_htlc", "send commitment_signed"]


async def test_a_preimage_leaves_after_its_settled_invoice_is_durable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    disk = tmp_path / "disk"
    _disk_model(monkeypatch, disk)
    registry = InvoiceRegistry(tmp_path / "invoices.sqlite", NODE_KEY, PREFIX)
    invoice = registry.add(now=1_000, value_msat=1_000_000, preimage=preimage(1))
    pair = Pair()
    pair.pay(pair.a, 1_000_000, 1)
    pair.commit(pair.a)
    pair.settle()
    [htlc] = pair.b.channel.unresolved_incoming_htlcs()
    log: list[str] = []
    manager = _manager(tmp_path, log, registry)
    mc = ManagedChannel(pair.b.channel, PEER, 0)
    manager.channels[mc.channel_id] = mc
    # PaymentNode._resolve: the invoice is settled (committed, not fsync'd), then fulfill (+ sign), the
    # fulfill alone need not be written (own_updates_recoverable); here sign() has nothing to sign yet
    registry.settle(invoice.payment_hash, InvoiceHtlc(
        channel_id=mc.channel_id, short_channel_id=1, htlc_id=htlc.id, amount_msat=htlc.amount_msat,
        accept_height=100, accept_time=1_001, expiry_height=htlc.cltv_expiry, resolve_time=1_001), 1_001)
    assert _state_on_disk(disk, invoice.payment_hash) is InvoiceState.OPEN
    await manager.command(mc, lambda ch: ch.fulfill_htlc(htlc.id, preimage(1)), own_updates_recoverable=True)
    assert log == ["sync", "send update_fulfill_htlc"]  # nothing written for the channel, the invoice synced
    assert _state_on_disk(disk, invoice.payment_hash) is InvoiceState.SETTLED
    registry.close()


def test_forwards_whose_add_was_lost_fail_back_at_start() -> None:
    """PaymentNode._fail_lost_adds: a PENDING_ADD circuit, or a FORWARDED one whose outgoing id the channel
    never gave out, is failed back (the requeued incoming HTLC replays the FailBack); a FORWARDED one whose
    HTLC the channel did give out is kept (the downstream could still claim it)."""
    from htlc.node import PaymentNode

    pair = Pair()
    ch = pair.a.channel
    pair.pay(pair.a, 1_000_000, 10)  # the channel has given out id 0
    fwd = Forwarder()
    kept, lost, undecided = (_circuit(n, ch.channel_id) for n in (1, 2, 3))
    for circuit in (kept, lost, undecided):
        fwd._circuits[circuit.incoming] = circuit
    fwd.on_forward_added(kept.incoming, 0)
    fwd.on_forward_added(lost.incoming, 1)  # written to forwarding.bin, the add itself lost in a kill
    saves: list[bytes] = []
    host = SimpleNamespace(forwarder=fwd, channels=SimpleNamespace(find=lambda cid: SimpleNamespace(channel=ch)),
                           _save_forwarder=lambda: saves.append(fwd.to_bytes()))
    PaymentNode._fail_lost_adds(host)  # type: ignore[arg-type]
    states = {c.incoming: c.state for c in fwd.circuits()}
    assert states == {kept.incoming: CircuitState.FORWARDED, lost.incoming: CircuitState.FAILED,
                      undecided.incoming: CircuitState.FAILED}
    assert len(saves) == 1
    # a replay of the lost forward's incoming HTLC now fails it back; the next add may take id 1 again
    fwd.on_forward_added(_adopt(fwd, _circuit(4, ch.channel_id)), 1)


def _adopt(fwd: Forwarder, circuit: Circuit) -> HtlcRef:
    fwd._circuits[circuit.incoming] = circuit
    return circuit.incoming
