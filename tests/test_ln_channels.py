"""Integration: two `canal channeld` on one `canal chaind` open, use and close a channel (lnd's API)."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemons import ChainProcess, LightningProcess, wait_for
from proto import chain_pb2 as pb
from proto import lightning_pb2 as ln


@pytest.fixture
def pair(tmp_path: Path):
    chain = ChainProcess(tmp_path / "chain").start()
    chain.generate(101)
    alice = LightningProcess(tmp_path / "alice", chain).start()
    bob = LightningProcess(tmp_path / "bob", chain).start()
    addr = alice.rpc.NewAddress(ln.NewAddressRequest()).address
    chain.rpc.SendToAddress(pb.SendToAddressRequest(address=addr, amount_sat=5 * 100_000_000, fee_rate_sat_vb=2))
    chain.generate(1)
    wait_for(lambda: alice.rpc.WalletBalance(ln.WalletBalanceRequest()).confirmed_balance > 0, 30, "funded")
    alice.rpc.ConnectPeer(ln.ConnectPeerRequest(addr=ln.LightningAddress(
        pubkey=bob.pubkey, host=f"127.0.0.1:{bob.info['listen_port']}")))
    wait_for(lambda: bob.rpc.ListPeers(ln.ListPeersRequest()).peers, 20, "connected")
    yield chain, alice, bob
    for p in (alice, bob, chain):
        p.stop()


def _open(chain: ChainProcess, alice: LightningProcess, bob: LightningProcess, amount: int = 1_000_000,
          push: int = 100_000) -> ln.ChannelPoint:
    cp = alice.rpc.OpenChannelSync(ln.OpenChannelRequest(node_pubkey=bytes.fromhex(bob.pubkey),
                                                         local_funding_amount=amount, push_sat=push, sat_per_vbyte=2))
    txid = bytes(cp.funding_txid_bytes)[::-1].hex()
    assert txid in chain.rpc.GetRawMempool(pb.GetRawMempoolRequest()).txids
    pending = alice.rpc.PendingChannels(ln.PendingChannelsRequest()).pending_open_channels
    assert len(pending) == 1 and pending[0].channel.capacity == amount
    chain.generate(3)
    for n in (alice, bob):
        wait_for(lambda n=n: len(n.rpc.ListChannels(ln.ListChannelsRequest(active_only=True)).channels) == 1, 30,
                 "channel active")
    return cp


def test_open_and_cooperative_close(pair) -> None:
    chain, alice, bob = pair
    cp = _open(chain, alice, bob)
    ch = alice.rpc.ListChannels(ln.ListChannelsRequest()).channels[0]
    assert ch.remote_pubkey == bob.pubkey and ch.capacity == 1_000_000 and ch.initiator and ch.chan_id > 0
    assert ch.remote_balance == 100_000 and ch.local_balance < 900_000
    bob_ch = bob.rpc.ListChannels(ln.ListChannelsRequest()).channels[0]
    assert bob_ch.local_balance == 100_000 and bob_ch.channel_point == ch.channel_point
    assert bob.rpc.ChannelBalance(ln.ChannelBalanceRequest()).local_balance.sat == 100_000
    assert alice.rpc.GetInfo(ln.GetInfoRequest()).num_active_channels == 1

    stream = alice.rpc.CloseChannel(ln.CloseChannelRequest(channel_point=cp))
    first = next(stream)
    assert first.HasField("close_pending")
    closing = bytes(first.close_pending.txid)[::-1].hex()
    wait_for(lambda: closing in chain.rpc.GetRawMempool(pb.GetRawMempoolRequest()).txids, 30, "closing tx")
    chain.generate(1)
    done = next(stream)
    assert done.HasField("chan_close") and done.chan_close.success
    for n in (alice, bob):
        wait_for(lambda n=n: n.rpc.ClosedChannels(ln.ClosedChannelsRequest()).channels, 30, "closed")
        summary = n.rpc.ClosedChannels(ln.ClosedChannelsRequest()).channels[0]
        assert summary.close_type == ln.ChannelCloseSummary.COOPERATIVE_CLOSE and summary.closing_tx_hash == closing
    wait_for(lambda: bob.rpc.WalletBalance(ln.WalletBalanceRequest()).confirmed_balance >= 99_000, 30, "bob's coins")


def test_force_close(pair) -> None:
    chain, alice, bob = pair
    cp = _open(chain, alice, bob)
    stream = alice.rpc.CloseChannel(ln.CloseChannelRequest(channel_point=cp, force=True))
    first = next(stream)
    commitment = bytes(first.close_pending.txid)[::-1].hex()
    wait_for(lambda: commitment in chain.rpc.GetRawMempool(pb.GetRawMempoolRequest()).txids, 30, "commitment")
    chain.generate(1)
    wait_for(lambda: bob.rpc.ClosedChannels(ln.ClosedChannelsRequest()).channels, 30, "bob sees the close")
    assert bob.rpc.ClosedChannels(ln.ClosedChannelsRequest()).channels[0].close_type == \
        ln.ChannelCloseSummary.REMOTE_FORCE_CLOSE
    assert alice.rpc.ClosedChannels(ln.ClosedChannelsRequest()).channels[0].close_type == \
        ln.ChannelCloseSummary.LOCAL_FORCE_CLOSE
    # Bob's to_remote output is his at once (after 1 block with anchors): swept to his wallet.
    chain.generate(2)
    wait_for(lambda: bob.rpc.WalletBalance(ln.WalletBalanceRequest()).total_balance > 90_000, 30, "bob swept")
    # Alice's to_local waits for to_self_delay (144 blocks) after the commitment confirms, then she sweeps it.
    before = alice.rpc.WalletBalance(ln.WalletBalanceRequest()).confirmed_balance
    chain.generate(140)
    wait_for(lambda: alice.rpc.GetInfo(ln.GetInfoRequest()).block_height == chain.height(), 30, "alice synced")
    assert alice.rpc.WalletBalance(ln.WalletBalanceRequest()).total_balance == before  # still locked
    chain.generate(5)
    wait_for(lambda: chain.rpc.GetRawMempool(pb.GetRawMempoolRequest()).txids, 30, "alice's sweep broadcast")
    chain.generate(1)
    wait_for(lambda: alice.rpc.WalletBalance(ln.WalletBalanceRequest()).confirmed_balance > before + 800_000, 30,
             "alice swept her to_local")


def test_static_backup_restore_recovers_funds(pair, tmp_path: Path) -> None:
    import shutil

    from base_chain.params import get_params
    from base_chain.wallet import Wallet

    chain, alice, bob = pair
    _open(chain, alice, bob, push=150_000)
    snap = bob.rpc.ExportAllChannelBackups(ln.ChanBackupExportRequest())
    blob = bytes(snap.multi_chan_backup.multi_chan_backup)
    assert len(snap.multi_chan_backup.chan_points) == 1
    bob.rpc.VerifyChanBackup(snap)
    # Bob loses his data directory; he kept his seed and the backup.
    bob.stop()
    wallet = Wallet.open(bob.datadir / "wallet.sqlite", get_params("regtest"))
    seed = wallet.seed_hex()
    wallet.close()
    shutil.rmtree(bob.datadir)
    fresh = LightningProcess(tmp_path / "bob-restored", chain, alias="bob", extra_args=["--restore-seed", seed]).start()
    try:
        assert fresh.pubkey == bob.pubkey  # the node id comes from the seed
        restored = fresh.rpc.RestoreChannelBackups(ln.RestoreChanBackupRequest(multi_chan_backup=blob))
        assert restored.num_restored == 1
        fresh.rpc.ConnectPeer(ln.ConnectPeerRequest(addr=ln.LightningAddress(
            pubkey=alice.pubkey, host=f"127.0.0.1:{alice.info['listen_port']}")))
        # Alice force-closes on bob's request; bob sweeps his to_remote output with a key from his seed.
        wait_for(lambda: len(chain.rpc.GetRawMempool(pb.GetRawMempoolRequest()).txids) >= 1, 30, "alice's commitment")
        chain.generate(1)
        chain.generate(1)
        wait_for(lambda: len(chain.rpc.GetRawMempool(pb.GetRawMempoolRequest()).txids) >= 1, 30, "bob's sweep")
        chain.generate(1)
        wait_for(lambda: fresh.rpc.WalletBalance(ln.WalletBalanceRequest()).confirmed_balance > 140_000, 30,
                 "bob recovered his balance")
    finally:
        fresh.stop()


def test_bad_peer_gets_errors_and_the_node_keeps_working(pair) -> None:
    import trio

    from base_chain.crypto import PrivateKey, PublicKey
    from base_chain.params import get_params
    from channels.messages import UpdateAddHtlc
    from channels.peer import PeerLinkError, connect
    from channels.wire import ErrorMessage

    chain, alice, bob = pair
    _open(chain, alice, bob)
    genesis = get_params("regtest").genesis_hash

    async def misbehave() -> list[str]:
        seen: list[str] = []
        link = await connect("127.0.0.1", alice.info["listen_port"], PrivateKey.generate(),
                             PublicKey.from_bytes(bytes.fromhex(alice.pubkey)), genesis)
        # An HTLC for a channel that does not exist: an error for that channel, the connection lives.
        await link.send(UpdateAddHtlc(bytes(32), 0, 1000, bytes(32), 500, bytes(1366)))
        with trio.fail_after(10):
            msg = await link.receive()
            while not isinstance(msg, ErrorMessage):  # e.g. the node's gossip_timestamp_filter (BOLT 7) comes first
                msg = await link.receive()
        seen.append(msg.printable_data())
        # Garbage inside a valid encrypted frame: the connection is closed.
        await link.stream.send_all(link.transport.encrypt(b"\x00\x20\x01\x02"))
        try:
            with trio.fail_after(10):
                while True:
                    await link.receive()
        except PeerLinkError as e:
            seen.append(e.reason)
        return seen

    seen = trio.run(misbehave)
    assert "unknown channel" in seen[0]
    assert alice.rpc.GetInfo(ln.GetInfoRequest()).num_active_channels == 1
    chans = alice.rpc.ListChannels(ln.ListChannelsRequest(active_only=True)).channels
    assert len(chans) == 1 and chans[0].remote_pubkey == bob.pubkey
