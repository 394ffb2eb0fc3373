"""A BIP84 keychain: the P2WPKH keys of one account, m/84'/coin_type'/account'/change/index.

A pure class: a seed in, keys and output scripts out. Derived keys and scripts
are cached, so asking for index i twice costs a dictionary lookup, and every
script handed out can be mapped back to its (change, index) with
:meth:`Keychain.index_of`.

Coin type 0 is Bitcoin; every test chain (regtest, alpha, beta) uses 1, as
Bitcoin Core does for regtest.
"""

from __future__ import annotations

from .bip32 import HARDENED, ExtendedPrivateKey, ExtendedPublicKey, format_path, hardened
from .crypto import PrivateKey
from .templates import p2wpkh

__all__ = ["Keychain", "BIP84_PURPOSE", "COIN_TYPE_BITCOIN", "COIN_TYPE_TEST", "RECEIVE", "CHANGE"]

BIP84_PURPOSE = 84
COIN_TYPE_BITCOIN = 0
COIN_TYPE_TEST = 1
RECEIVE = 0
"""The external chain: addresses handed out to payers."""
CHANGE = 1
"""The internal chain: change outputs."""


def _check_chain(change: int) -> int:
    if change not in (RECEIVE, CHANGE):
        raise ValueError(f"change must be 0 (receive) or 1 (change), got {change!r}")
    return int(change)


def _check_index(index: int) -> None:
    if not 0 <= index < HARDENED:
        raise ValueError(f"index out of range: {index} (BIP84 address indices are 0..2**31-1)")


class Keychain:
    """The keys of the BIP84 account m/84'/coin_type'/account'."""

    __slots__ = ("coin_type", "account", "_account_key", "_chains", "_keys", "_scripts", "_index")

    def __init__(self, seed: bytes, coin_type: int, account: int = 0) -> None:
        if not 0 <= coin_type < HARDENED:
            raise ValueError(f"coin type out of range: {coin_type}")
        if not 0 <= account < HARDENED:
            raise ValueError(f"account out of range: {account}")
        self.coin_type = coin_type
        self.account = account
        master = ExtendedPrivateKey.from_seed(seed)
        self._account_key = master.derive_path(
            (hardened(BIP84_PURPOSE), hardened(coin_type), hardened(account))
        )
        self._chains = (self._account_key.derive(RECEIVE), self._account_key.derive(CHANGE))
        self._keys: tuple[dict[int, PrivateKey], dict[int, PrivateKey]] = ({}, {})
        self._scripts: tuple[dict[int, bytes], dict[int, bytes]] = ({}, {})
        self._index: dict[bytes, tuple[int, int]] = {}

    @property
    def account_key(self) -> ExtendedPrivateKey:
        """The extended private key of m/84'/coin_type'/account'."""
        return self._account_key

    @property
    def account_xpub(self) -> ExtendedPublicKey:
        """The account's extended public key (serialize with ZPUB or VPUB for BIP84 wallets)."""
        return self._account_key.neuter()

    def path(self, change: int, index: int) -> str:
        """The full derivation path, e.g. "m/84'/1'/0'/0/5"."""
        chain = _check_chain(change)
        _check_index(index)
        return format_path(
            (
                hardened(BIP84_PURPOSE),
                hardened(self.coin_type),
                hardened(self.account),
                chain,
                index,
            )
        )

    def key(self, change: int, index: int) -> PrivateKey:
        """The private key at change/index (cached)."""
        chain = _check_chain(change)
        keys = self._keys[chain]
        found = keys.get(index)
        if found is None:
            _check_index(index)
            found = keys[index] = self._chains[chain].derive(index).key
        return found

    def receive_key(self, index: int) -> PrivateKey:
        return self.key(RECEIVE, index)

    def change_key(self, index: int) -> PrivateKey:
        return self.key(CHANGE, index)

    def script_pubkey(self, change: int, index: int) -> bytes:
        """The P2WPKH output script of the key at change/index (cached)."""
        chain = _check_chain(change)
        scripts = self._scripts[chain]
        found = scripts.get(index)
        if found is None:
            found = p2wpkh(self.key(chain, index).public_key().to_bytes())
            scripts[index] = found
            self._index.setdefault(found, (chain, index))
        return found

    def lookahead(self, change: int, start: int, n: int) -> list[bytes]:
        """The scripts of indices start .. start+n-1 on one chain, for a gap-limit scan."""
        chain = _check_chain(change)
        if n < 0:
            raise ValueError(f"lookahead count must be non-negative, got {n}")
        _check_index(start)
        if n:
            _check_index(start + n - 1)
        return [self.script_pubkey(chain, i) for i in range(start, start + n)]

    def index_of(self, script_pubkey: bytes) -> tuple[int, int] | None:
        """(change, index) of a script this keychain has handed out, else None."""
        return self._index.get(bytes(script_pubkey))

    def __repr__(self) -> str:
        return f"Keychain(m/84'/{self.coin_type}'/{self.account}', <secret>)"
