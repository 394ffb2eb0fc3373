"""Chain parameters: what makes one chain instance differ from another.

``regtest`` is Bitcoin Core's regtest exactly (genesis, magic, prefixes, ports,
rules). ``alpha`` and ``beta`` are two independent Canal chains for the
cross-chain layer: same consensus code, their own genesis, network magic,
address and invoice prefixes, ports and block interval (alpha 600 s, beta 150 s,
so CLTV deltas must be converted between them).

Look them up with :func:`get_params`. For a variant (say a test with
retargeting on) use :func:`dataclasses.replace` on a built-in set; a new genesis
can be made with :func:`make_genesis_block`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .address import AddressPrefixes
from .block import NULL_HASH, Block, BlockHeader
from .merkle import merkle_root
from .pow import target_to_bits
from .tx import COIN, OutPoint, Transaction, TxIn, TxOut

__all__ = [
    "ChainParams",
    "get_params",
    "chain_names",
    "make_genesis_block",
    "GENESIS_OUTPUT_SCRIPT",
    "SATOSHI_GENESIS_MESSAGE",
    "REGTEST_POW_LIMIT",
]

SATOSHI_GENESIS_MESSAGE = "The Times 03/Jan/2009 Chancellor on brink of second bailout for banks"

GENESIS_OUTPUT_SCRIPT = (
    b"\x41"
    + bytes.fromhex(
        "04678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb6"
        "49f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5f"
    )
    + b"\xac"
)
"""<Satoshi's 65-byte public key> OP_CHECKSIG, the genesis coinbase output of every Bitcoin network."""

REGTEST_POW_LIMIT = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF
"""Core's regtest powLimit; its compact form is 0x207fffff."""

_TWO_WEEKS_S = 14 * 24 * 60 * 60


def _push_bytes(data: bytes) -> bytes:
    """A literal data push, as Core's ``CScript << std::vector`` (never OP_n)."""
    n = len(data)
    if n < 0x4C:
        return bytes([n]) + data
    if n <= 0xFF:
        return bytes([0x4C, n]) + data
    if n <= 0xFFFF:
        return b"\x4d" + n.to_bytes(2, "little") + data
    return b"\x4e" + n.to_bytes(4, "little") + data


def make_genesis_block(
    message: str | bytes,
    time: int,
    nonce: int,
    bits: int,
    version: int = 1,
    reward_sat: int = 50 * COIN,
    output_script: bytes = GENESIS_OUTPUT_SCRIPT,
) -> Block:
    """Core's CreateGenesisBlock.

    The coinbase's scriptSig is ``<486604799> <4> <message>`` (486604799 is
    0x1d00ffff, pushed as the 4-byte script number ``ffff001d``; the 4 as a
    one-byte push), one output of ``reward_sat`` to ``output_script``, version 1,
    locktime 0. The header has a null previous block and the coinbase's txid as
    its merkle root.
    """
    msg = message.encode() if isinstance(message, str) else message
    script_sig = _push_bytes(bytes.fromhex("ffff001d")) + _push_bytes(b"\x04") + _push_bytes(msg)
    coinbase = Transaction(
        version=1,
        inputs=[TxIn(OutPoint.null(), script_sig)],
        outputs=[TxOut(reward_sat, output_script)],
        locktime=0,
    )
    root, _ = merkle_root([coinbase.txid])
    header = BlockHeader(version, NULL_HASH, root, time, bits, nonce)
    return Block(header, [coinbase])


@dataclass(frozen=True, slots=True)
class ChainParams:
    """The parameters of one chain instance (Core's CChainParams + Consensus::Params).

    ``genesis`` is shared by everyone holding these parameters: do not mutate it.
    Equality and hashing ignore it (``genesis_hash`` stands for it).
    """

    name: str
    magic: bytes
    """The 4 bytes that start every P2P message, as on the wire (pchMessageStart)."""
    genesis: Block = field(compare=False, repr=False)
    genesis_hash: bytes
    """Internal byte order; checked against ``genesis`` on construction."""
    address_prefixes: AddressPrefixes
    bolt11_prefix: str
    """BOLT11 currency prefix: invoices start with "ln" + this."""
    default_p2p_port: int
    default_rpc_port: int
    pow_limit: int
    pow_no_retargeting: bool
    pow_allow_min_difficulty_blocks: bool
    target_spacing_s: int
    target_timespan_s: int
    coinbase_maturity: int
    subsidy_halving_interval: int
    initial_subsidy_sat: int
    bip34_height: int
    bip65_height: int
    bip66_height: int
    csv_height: int
    segwit_height: int

    def __post_init__(self) -> None:
        if len(self.magic) != 4:
            raise ValueError(f"{self.name}: network magic must be 4 bytes, got {len(self.magic)}")
        if len(self.genesis_hash) != 32:
            raise ValueError(f"{self.name}: genesis_hash must be 32 bytes")
        if self.genesis.hash != self.genesis_hash:
            raise ValueError(
                f"{self.name}: genesis block hashes to {self.genesis.hash_hex()}, "
                f"expected {self.genesis_hash[::-1].hex()}"
            )
        if not 0 < self.pow_limit < 1 << 256:
            raise ValueError(f"{self.name}: pow_limit must be in 1 .. 2**256-1")
        if self.target_spacing_s <= 0 or self.target_timespan_s < self.target_spacing_s:
            raise ValueError(f"{self.name}: need 0 < target_spacing_s <= target_timespan_s")
        if self.subsidy_halving_interval <= 0:
            raise ValueError(f"{self.name}: subsidy_halving_interval must be positive")
        if self.coinbase_maturity < 0 or self.initial_subsidy_sat < 0:
            raise ValueError(f"{self.name}: coinbase_maturity and initial_subsidy_sat must be >= 0")

    def __repr__(self) -> str:
        return (
            f"ChainParams(name={self.name!r}, genesis={self.genesis_hash_hex()}, "
            f"magic={self.magic.hex()}, hrp={self.address_prefixes.hrp!r})"
        )

    @property
    def retarget_interval(self) -> int:
        """Core's DifficultyAdjustmentInterval: blocks between retargets."""
        return self.target_timespan_s // self.target_spacing_s

    @property
    def pow_limit_bits(self) -> int:
        """pow_limit in compact form (0x207fffff for regtest, alpha and beta)."""
        return target_to_bits(self.pow_limit)

    @property
    def hrp(self) -> str:
        """The bech32 human-readable part of this chain's segwit addresses."""
        return self.address_prefixes.hrp

    def genesis_hash_hex(self) -> str:
        return self.genesis_hash[::-1].hex()

    def block_subsidy(self, height: int) -> int:
        """Core's GetBlockSubsidy: the new coins a block at ``height`` may create."""
        halvings = height // self.subsidy_halving_interval
        if halvings >= 64:
            return 0
        return self.initial_subsidy_sat >> halvings


def _chain(
    *,
    name: str,
    magic: str,
    genesis: Block,
    genesis_hash_hex: str,
    prefixes: AddressPrefixes,
    bolt11_prefix: str,
    p2p_port: int,
    rpc_port: int,
    target_spacing_s: int,
    target_timespan_s: int,
) -> ChainParams:
    # Every built-in chain is regtest-easy with all soft forks active from the start.
    return ChainParams(
        name=name,
        magic=bytes.fromhex(magic),
        genesis=genesis,
        genesis_hash=bytes.fromhex(genesis_hash_hex)[::-1],
        address_prefixes=prefixes,
        bolt11_prefix=bolt11_prefix,
        default_p2p_port=p2p_port,
        default_rpc_port=rpc_port,
        pow_limit=REGTEST_POW_LIMIT,
        pow_no_retargeting=True,
        pow_allow_min_difficulty_blocks=True,
        target_spacing_s=target_spacing_s,
        target_timespan_s=target_timespan_s,
        coinbase_maturity=100,
        subsidy_halving_interval=150,
        initial_subsidy_sat=50 * COIN,
        bip34_height=1,
        bip65_height=1,
        bip66_height=1,
        csv_height=1,
        segwit_height=0,
    )


_REGTEST = _chain(
    name="regtest",
    magic="fabfb5da",
    genesis=make_genesis_block(SATOSHI_GENESIS_MESSAGE, 1296688602, 2, 0x207FFFFF),
    genesis_hash_hex="0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",
    prefixes=AddressPrefixes("bcrt", 111, 196),
    bolt11_prefix="bcrt",
    p2p_port=18444,
    rpc_port=18443,
    target_spacing_s=600,
    target_timespan_s=_TWO_WEEKS_S,
)

# alpha and beta (time 2025-01-01T00:00:00Z): nonces found once with
# pow.mine_header and fixed here, with the expected hashes, so a change to how
# genesis blocks are built is caught at import (as Core asserts).
_ALPHA = _chain(
    name="alpha",
    magic="fa1fa0a1",
    genesis=make_genesis_block("Canal alpha genesis", 1735689600, 0, 0x207FFFFF),
    genesis_hash_hex="2c5959e3f594f7e1dc721b2952bdec3b26aca57e5e04cc373043f741fbfafff6",
    prefixes=AddressPrefixes("alpha", 23, 83),  # base58 addresses start with A / a
    bolt11_prefix="alpha",
    p2p_port=19444,
    rpc_port=19443,
    target_spacing_s=600,
    target_timespan_s=2016 * 600,
)

_BETA = _chain(
    name="beta",
    magic="fab0be7a",
    genesis=make_genesis_block("Canal beta genesis", 1735689600, 0, 0x207FFFFF),
    genesis_hash_hex="7f3f7a746009610af7669914d2e5617ba13391be69f17d975ecbde4524e76928",
    prefixes=AddressPrefixes("beta", 25, 85),  # base58 addresses start with B / b
    bolt11_prefix="beta",
    p2p_port=20444,
    rpc_port=20443,
    target_spacing_s=150,
    target_timespan_s=2016 * 150,
)

_CHAINS: Mapping[str, ChainParams] = MappingProxyType(
    {p.name: p for p in (_REGTEST, _ALPHA, _BETA)}
)


def chain_names() -> list[str]:
    """The names :func:`get_params` knows."""
    return list(_CHAINS)


def get_params(name: str) -> ChainParams:
    """The built-in parameters of chain ``name`` ("regtest", "alpha", "beta")."""
    try:
        return _CHAINS[name]
    except KeyError:
        known = ", ".join(repr(n) for n in _CHAINS)
        raise ValueError(f"unknown chain {name!r}: known chains are {known}") from None
