"""channels.store: snapshots stored in parts (JSON + each long string once), joined back on load."""

from __future__ import annotations

import json
from pathlib import Path

from test_channel_state import ONION, Pair, payment_hash, preimage

from channels.effects import Persist
from channels.state import Channel
from channels.store import ChannelStore

PEER = b"\x02" * 33


def blob_rows(store: ChannelStore, channel_id: bytes) -> int:
    return int(store.conn.execute("SELECT COUNT(*) FROM channel_blobs WHERE channel_id = ?", (channel_id,)).fetchone()[0])


def save(store: ChannelStore, persist: Persist) -> None:
    state, blobs = persist.parts
    store.save_channel(persist.channel_id, PEER, 0, state, blobs=blobs)


def test_parts_are_joined_on_load_and_blobs_live_as_long_as_their_htlcs(tmp_path: Path) -> None:
    pair = Pair()
    for n in range(3):
        pair.pay(pair.a, 1_000_000 + n, n)
    effects = pair.a.channel.sign()
    persist = effects[0]
    assert isinstance(persist, Persist)
    cid = persist.channel_id
    store = ChannelStore(tmp_path / "channels.sqlite")
    save(store, persist)
    body, blobs = persist.parts
    assert sum(ONION.hex() in v for v in blobs.values()) == 3  # the three adds (and the commitment_signed)
    assert ONION.hex() not in body.decode()
    [stored] = list(store.channels())
    assert json.loads(stored.state) == pair.a.channel.to_dict()
    restored = Channel.from_bytes(stored.state, pair.a.secrets)
    assert restored.to_dict()["commitments"] == pair.a.channel.to_dict()["commitments"]
    assert blob_rows(store, cid) == len(blobs)

    # the same HTLCs again: nothing new to store; after they are resolved their blobs go
    pair.run(pair.a, effects)
    pair.finish({payment_hash(n): preimage(n) for n in range(3)})
    state, blobs = pair.a.channel.snapshot_parts()
    store.save_channel(cid, PEER, 0, state, blobs=blobs)
    assert blobs == {} and blob_rows(store, cid) == 0
    [stored] = list(ChannelStore(tmp_path / "channels.sqlite").channels())  # a restarted node reads the same
    assert {**json.loads(stored.state), "blobs": {}} == pair.a.channel.to_dict()


def test_a_whole_snapshot_replaces_parts_and_old_snapshots_load(tmp_path: Path) -> None:
    pair = Pair()
    pair.pay(pair.a, 2_000_000, 1)
    store = ChannelStore(tmp_path / "channels.sqlite")
    state, blobs = pair.a.channel.snapshot_parts()
    cid = pair.a.channel.channel_id
    store.save_channel(cid, PEER, 0, state, blobs=blobs)
    assert blob_rows(store, cid) == 1
    whole = pair.a.channel.to_bytes()  # blobs inside (as bench scripts and older nodes write it)
    store.save_channel(cid, PEER, 0, whole)
    assert blob_rows(store, cid) == 0
    [stored] = list(store.channels())
    assert stored.state == whole
    # a snapshot from before content keys: blobs a list, "@<n>" references
    d = json.loads(whole)
    keys = list(d["blobs"])
    d["blobs"] = [d["blobs"][k] for k in keys]
    text = json.dumps(d["commitments"])
    for n, k in enumerate(keys):
        text = text.replace(f'"@{k}"', f'"@{n}"')
    d["commitments"] = json.loads(text)
    old = Channel.from_dict(d, pair.a.secrets)
    assert old.to_dict() == pair.a.channel.to_dict()
