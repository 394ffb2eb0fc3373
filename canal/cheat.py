"""A cheating harness (for the demo and the tests): rebuild a node's *old*, revoked commitment.

A cheater keeps a copy of its channel store, pays on (so the copy becomes a revoked
state), then broadcasts the commitment signed in the copy. This module does the
rebuilding offline from the copy and the node's seed, exactly what a cheater could do.
"""

from __future__ import annotations

from pathlib import Path

from base_chain.params import ChainParams
from base_chain.tx import Transaction
from base_chain.wallet import Wallet
from channels.keys import derive_channel_keys
from channels.state import Channel
from channels.store import ChannelStore

__all__ = ["old_commitment"]


def old_commitment(datadir: Path, old_store: Path, params: ChainParams) -> Transaction:
    """The fully signed commitment of the first channel in `old_store` (a copy of `datadir`'s channels.sqlite)."""
    wallet = Wallet.open(datadir / "wallet.sqlite", params)
    seed = bytes.fromhex(wallet.seed_hex())
    wallet.close()
    store = ChannelStore(old_store)
    try:
        stored = next(iter(store.channels()))
    finally:
        store.close()
    channel = Channel.from_bytes(stored.state, derive_channel_keys(seed, stored.channel_index))
    return channel.local_commitment_tx()
