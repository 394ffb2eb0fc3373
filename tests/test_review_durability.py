"""Review of today's durability changes: windows where a skipped write lets a promise out before it is on disk.

Both tests model the channel node as ``ChannelManager._apply`` carries out effects: a Persist is written
only if ``channels.effects.must_write`` says so, and the ``before_write`` hooks (``InvoiceRegistry.sync``,
``PaymentStore.sync``) run just before a written one. They fail today (strict xfail) and say why.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest
from test_channel_state import ONION, Crash, Pair, payment_hash, preimage

import base_chain.store
from base_chain.crypto import PrivateKey
from base_chain.hashes import sha256
from base_chain.params import get_params
from channels import messages as m
from channels.effects import Persist, SendMessage, must_write
from htlc.forwarding import Circuit, CircuitState, Forwarder, HtlcRef
from htlc.invoice import invoice_prefix
from htlc.invoices import InvoiceHtlc, InvoiceRegistry, InvoiceState
from htlc.send import htlc_pending

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


@pytest.mark.xfail(strict=True, reason=(
    "A forward's update_add_htlc goes out before any channel state is written: the add's SUPERSEDED Persist is "
    "skipped because sign()'s Persist follows, but the SendMessage(update_add_htlc) sits between the two. A kill "
    "after the send loses the add while forwarding.bin (written first) says the circuit is FORWARDED with that "
    "HTLC id: after the restart the incoming HTLC replays as AlreadyForwarded (stuck until the deadline "
    "force-closes the outgoing channel), and the next add on the channel reuses the id, so on_forward_added "
    "raises ValueError (uncaught in _resolve_incoming) or another HTLC's outcome is taken for the stale circuit."))
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


@pytest.mark.xfail(strict=True, reason=(
    "The final hop's update_fulfill_htlc (the preimage) goes out before the settled invoice is fsync'd: "
    "InvoiceRegistry.settle is lazy, the fulfill's Persist is skipped (own_updates_recoverable and a later "
    "Persist), and the before_write hook (InvoiceRegistry.sync) runs only at sign()'s Persist, after the send "
    "(or, when sign() has nothing to sign, at some later channel write). A power cut in between leaves the "
    "invoice OPEN while the payer holds the preimage; the replay at start re-decides the HTLC (rule 5 of "
    "htlc.receive: not expired, cltv far enough), and a Fail then gives the payer a proof of payment for nothing."))
def test_preimage_is_not_released_before_the_settled_invoice_is_durable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    disk = tmp_path / "disk"
    _disk_model(monkeypatch, disk)
    registry = InvoiceRegistry(tmp_path / "invoices.sqlite", NODE_KEY, PREFIX)
    invoice = registry.add(now=1_000, value_msat=1_000_000, preimage=preimage(1))
    assert _state_on_disk(disk, invoice.payment_hash) is InvoiceState.OPEN
    pair = Pair()
    pair.pay(pair.a, 1_000_000, 1)
    pair.commit(pair.a)
    pair.settle()
    [htlc] = pair.b.channel.unresolved_incoming_htlcs()
    # PaymentNode._resolve: the invoice is settled (lazily), then fulfill + sign, own_updates_recoverable=True
    registry.settle(invoice.payment_hash, InvoiceHtlc(
        channel_id=pair.b.channel.channel_id, short_channel_id=1, htlc_id=htlc.id, amount_msat=htlc.amount_msat,
        accept_height=100, accept_time=1_001, expiry_height=htlc.cltv_expiry, resolve_time=1_001), 1_001)
    effects = [*pair.b.channel.fulfill_htlc(htlc.id, preimage(1)), *pair.b.channel.sign()]
    on_disk_when_sent = None
    for i, e in enumerate(effects):
        if isinstance(e, Persist) and must_write(e, effects[i + 1:], own_updates_recoverable=True):
            registry.sync()  # ChannelManager.before_write
        elif isinstance(e, SendMessage) and isinstance(e.message, m.UpdateFulfillHtlc):
            on_disk_when_sent = _state_on_disk(disk, invoice.payment_hash)
    registry.close()
    assert on_disk_when_sent is InvoiceState.SETTLED
