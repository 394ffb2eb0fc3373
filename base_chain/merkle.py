"""Merkle trees of blocks: the transaction and witness roots, the BIP141 witness
commitment, and SPV proofs in Bitcoin Core's CPartialMerkleTree / CMerkleBlock
format (what ``gettxoutproof`` returns and ``verifytxoutproof`` accepts).

All hashes are bytes in internal order. Roots are computed exactly as Core's
ComputeMerkleRoot: an odd level duplicates its last hash, and a level holding two
identical adjacent hashes is reported as *mutated* (CVE-2012-2459: such a tree has
the same root as one with the duplicated transactions removed, so a block that
fails validation could be made to look like another).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .block import NULL_HASH, Block, BlockHeader
from .hashes import hash256
from .serialize import ByteReader, DeserializationError, compact_size, u32
from .tx import Transaction

__all__ = [
    "MerkleProofError",
    "merkle_root",
    "block_merkle_root",
    "witness_merkle_root",
    "WITNESS_COMMITMENT_HEADER",
    "MINIMUM_WITNESS_COMMITMENT",
    "witness_commitment",
    "witness_commitment_script",
    "find_witness_commitment",
    "MAX_PROOF_TRANSACTIONS",
    "ProofMatches",
    "PartialMerkleTree",
    "MerkleBlock",
]

WITNESS_COMMITMENT_HEADER = bytes.fromhex("aa21a9ed")
"""The 4 bytes after ``OP_RETURN OP_PUSHBYTES_36`` that mark a BIP141 commitment."""
_COMMITMENT_PREFIX = bytes([0x6A, 0x24]) + WITNESS_COMMITMENT_HEADER
MINIMUM_WITNESS_COMMITMENT = 38
"""Core's MINIMUM_WITNESS_COMMITMENT: 2 + 4 + 32 bytes of script."""

MAX_PROOF_TRANSACTIONS = 4_000_000 // 240
"""Core's bound in ExtractMatches: MAX_BLOCK_WEIGHT / MIN_TRANSACTION_WEIGHT (16,666)."""


class MerkleProofError(ValueError):
    """A merkle proof is malformed or does not prove what it claims; the message says why."""


# --------------------------------------------------------------------------
# roots
# --------------------------------------------------------------------------


def merkle_root(hashes: Sequence[bytes]) -> tuple[bytes, bool]:
    """Core's ComputeMerkleRoot: (root, mutated).

    ``mutated`` is True when some level has two identical hashes in a pair
    position (the CVE-2012-2459 duplicate-pair pattern). The root of no hashes is
    32 zero bytes.
    """
    level = list(hashes)
    mutated = False
    while len(level) > 1:
        for pos in range(0, len(level) - 1, 2):
            if level[pos] == level[pos + 1]:
                mutated = True
        if len(level) & 1:
            level.append(level[-1])
        level = [hash256(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    if not level:
        return NULL_HASH, mutated
    return level[0], mutated


def block_merkle_root(block: Block) -> tuple[bytes, bool]:
    """Core's BlockMerkleRoot: the root of the txids, and whether the tree is mutated."""
    return merkle_root([tx.txid for tx in block.transactions])


def witness_merkle_root(block: Block) -> tuple[bytes, bool]:
    """Core's BlockWitnessMerkleRoot: the root of the wtxids, the coinbase's taken as zero."""
    leaves = [tx.wtxid for tx in block.transactions]
    if leaves:
        leaves[0] = NULL_HASH
    return merkle_root(leaves)


# --------------------------------------------------------------------------
# BIP141 witness commitment
# --------------------------------------------------------------------------


def witness_commitment(witness_root: bytes, reserved: bytes = NULL_HASH) -> bytes:
    """The 32-byte commitment: hash256(witness root || witness reserved value)."""
    if len(witness_root) != 32 or len(reserved) != 32:
        raise ValueError("witness root and reserved value must be 32 bytes each")
    return hash256(witness_root + reserved)


def witness_commitment_script(witness_root: bytes, reserved: bytes = NULL_HASH) -> bytes:
    """The coinbase output script ``6a24aa21a9ed`` + commitment (38 bytes).

    ``reserved`` is the witness reserved value: the single 32-byte item of the
    coinbase input's witness (Core's miner uses 32 zero bytes).
    """
    return _COMMITMENT_PREFIX + witness_commitment(witness_root, reserved)


def find_witness_commitment(coinbase: Transaction) -> int | None:
    """Core's GetWitnessCommitmentIndex: the index of the *last* coinbase output
    whose script starts with ``6a24aa21a9ed`` and is at least 38 bytes long, or None."""
    found: int | None = None
    for i, txout in enumerate(coinbase.outputs):
        spk = txout.script_pubkey
        if len(spk) >= MINIMUM_WITNESS_COMMITMENT and spk[:6] == _COMMITMENT_PREFIX:
            found = i
    return found


# --------------------------------------------------------------------------
# partial merkle trees (BIP37 merkleblock / gettxoutproof)
# --------------------------------------------------------------------------


def _tree_width(num_transactions: int, height: int) -> int:
    """Core's CalcTreeWidth: the number of nodes at ``height`` (0 = the txids)."""
    return (num_transactions + (1 << height) - 1) >> height


def _tree_height(num_transactions: int) -> int:
    height = 0
    while _tree_width(num_transactions, height) > 1:
        height += 1
    return height


@dataclass(frozen=True, slots=True)
class ProofMatches:
    """What a valid proof shows: the merkle root it commits to, and the matched
    txids (internal order) with their positions in the block, in block order."""

    root: bytes
    txids: tuple[bytes, ...]
    indexes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PartialMerkleTree:
    """Core's CPartialMerkleTree: a depth-first walk of the merkle tree that keeps
    only the hashes needed to recompute the root from a set of matched txids.

    ``flags`` are Core's vBits: one bit per visited node, True when the node is
    an ancestor of (or is) a matched txid, then zero padding up to a whole byte
    (parsed and built trees both carry it, so they compare equal).
    """

    num_transactions: int
    hashes: tuple[bytes, ...]
    flags: tuple[bool, ...]

    def __post_init__(self) -> None:
        if not 0 <= self.num_transactions <= 0xFFFFFFFF:
            raise ValueError(f"num_transactions out of uint32 range: {self.num_transactions}")
        for h in self.hashes:
            if len(h) != 32:
                raise ValueError(f"merkle proof hashes must be 32 bytes, got {len(h)}")

    # --- building ----------------------------------------------------------------

    @classmethod
    def build(cls, txids: Sequence[bytes], matches: Sequence[bool]) -> PartialMerkleTree:
        """Core's CPartialMerkleTree(vTxid, vMatch): a proof for the txids whose
        ``matches`` entry is True (possibly none: then the proof shows only the root)."""
        n = len(txids)
        if n == 0:
            raise ValueError("a partial merkle tree needs at least one transaction")
        if len(matches) != n:
            raise ValueError(f"{n} txids but {len(matches)} match flags")
        # levels[h][pos] is Core's CalcHash(h, pos): odd levels duplicate their last node.
        levels: list[list[bytes]] = [list(txids)]
        while len(levels[-1]) > 1:
            prev = levels[-1]
            levels.append(
                [
                    hash256(prev[i] + (prev[i + 1] if i + 1 < len(prev) else prev[i]))
                    for i in range(0, len(prev), 2)
                ]
            )
        # matched_before[i] = number of matches among txids[:i], to test subtrees in O(1).
        matched_before = [0]
        for m in matches:
            matched_before.append(matched_before[-1] + (1 if m else 0))

        hashes: list[bytes] = []
        flags: list[bool] = []

        def traverse(height: int, pos: int) -> None:
            lo = pos << height
            hi = min((pos + 1) << height, n)
            parent_of_match = matched_before[hi] > matched_before[lo]
            flags.append(parent_of_match)
            if height == 0 or not parent_of_match:
                hashes.append(levels[height][pos])
                return
            traverse(height - 1, pos * 2)
            if pos * 2 + 1 < _tree_width(n, height - 1):
                traverse(height - 1, pos * 2 + 1)

        traverse(len(levels) - 1, 0)
        # Pad to whole bytes, as serialization does, so built and parsed trees compare equal.
        flags += [False] * (-len(flags) % 8)
        return cls(n, tuple(hashes), tuple(flags))

    # --- serialization -----------------------------------------------------------

    def to_bytes(self) -> bytes:
        packed = bytearray((len(self.flags) + 7) // 8)
        for i, bit in enumerate(self.flags):
            if bit:
                packed[i // 8] |= 1 << (i % 8)
        return b"".join(
            (
                u32(self.num_transactions),
                compact_size(len(self.hashes)),
                *self.hashes,
                compact_size(len(packed)),
                bytes(packed),
            )
        )

    @classmethod
    def read(cls, r: ByteReader) -> PartialMerkleTree:
        num_transactions = r.u32()
        num_hashes = r.compact_size()
        if num_hashes * 32 > r.remaining():
            raise DeserializationError(
                f"truncated: {num_hashes} hashes announced, {r.remaining()} bytes left"
            )
        hashes = tuple(r.read(32) for _ in range(num_hashes))
        packed = r.var_bytes()
        flags = tuple(bool(byte >> bit & 1) for byte in packed for bit in range(8))
        return cls(num_transactions, hashes, flags)

    @classmethod
    def from_bytes(cls, raw: bytes) -> PartialMerkleTree:
        r = ByteReader(raw)
        tree = cls.read(r)
        r.expect_end()
        return tree

    # --- extraction --------------------------------------------------------------

    def extract_matches(self) -> ProofMatches:
        """Core's ExtractMatches: recompute the root and collect the matched txids.

        Raises :class:`MerkleProofError` wherever Core would return a null hash:
        no transactions, too many transactions, more hashes than transactions,
        fewer flag bits than hashes, running out of bits or hashes, identical
        left and right branches (the duplicate-pair mutation), or flag bits /
        hashes left unused.
        """
        n = self.num_transactions
        hashes, flags = self.hashes, self.flags
        if n == 0:
            raise MerkleProofError("bad merkle proof: no transactions")
        if n > MAX_PROOF_TRANSACTIONS:
            raise MerkleProofError(
                f"bad merkle proof: {n} transactions, more than a block can hold ({MAX_PROOF_TRANSACTIONS})"
            )
        if len(hashes) > n:
            raise MerkleProofError(
                f"bad merkle proof: {len(hashes)} hashes for {n} transactions"
            )
        if len(flags) < len(hashes):
            raise MerkleProofError(
                f"bad merkle proof: {len(flags)} flag bits for {len(hashes)} hashes"
            )

        bits_used = 0
        hashes_used = 0
        txids: list[bytes] = []
        indexes: list[int] = []

        def traverse(height: int, pos: int) -> bytes:
            nonlocal bits_used, hashes_used
            if bits_used >= len(flags):
                raise MerkleProofError("bad merkle proof: ran out of flag bits")
            parent_of_match = flags[bits_used]
            bits_used += 1
            if height == 0 or not parent_of_match:
                if hashes_used >= len(hashes):
                    raise MerkleProofError("bad merkle proof: ran out of hashes")
                h = hashes[hashes_used]
                hashes_used += 1
                if height == 0 and parent_of_match:
                    txids.append(h)
                    indexes.append(pos)
                return h
            left = traverse(height - 1, pos * 2)
            if pos * 2 + 1 < _tree_width(n, height - 1):
                right = traverse(height - 1, pos * 2 + 1)
                if right == left:
                    raise MerkleProofError(
                        "bad merkle proof: identical left and right branches "
                        "(duplicate-pair mutation, CVE-2012-2459)"
                    )
            else:
                right = left
            return hash256(left + right)

        root = traverse(_tree_height(n), 0)
        if (bits_used + 7) // 8 != (len(flags) + 7) // 8:
            raise MerkleProofError(
                f"bad merkle proof: {len(flags) - bits_used} flag bits not consumed"
            )
        if hashes_used != len(hashes):
            raise MerkleProofError(
                f"bad merkle proof: {len(hashes) - hashes_used} hashes not consumed"
            )
        return ProofMatches(root, tuple(txids), tuple(indexes))


@dataclass(frozen=True, slots=True)
class MerkleBlock:
    """Core's CMerkleBlock: a block header and a partial merkle tree of its txids.

    Its serialization is the hex that ``gettxoutproof`` prints.
    """

    header: BlockHeader
    tree: PartialMerkleTree

    @classmethod
    def from_block(cls, block: Block, txids: Iterable[bytes]) -> MerkleBlock:
        """A proof that the given txids (internal order) are in ``block``.

        Raises ValueError naming a txid that the block does not contain.
        """
        wanted = set(txids)
        block_txids = [tx.txid for tx in block.transactions]
        missing = wanted.difference(block_txids)
        if missing:
            shown = ", ".join(sorted(t[::-1].hex() for t in missing))
            raise ValueError(f"transaction not in block {block.hash_hex()}: {shown}")
        matches = [t in wanted for t in block_txids]
        return cls(block.header, PartialMerkleTree.build(block_txids, matches))

    # --- serialization -----------------------------------------------------------

    def to_bytes(self) -> bytes:
        return self.header.to_bytes() + self.tree.to_bytes()

    @classmethod
    def read(cls, r: ByteReader) -> MerkleBlock:
        header = BlockHeader.read(r)
        return cls(header, PartialMerkleTree.read(r))

    @classmethod
    def from_bytes(cls, raw: bytes) -> MerkleBlock:
        r = ByteReader(raw)
        proof = cls.read(r)
        r.expect_end()
        return proof

    @classmethod
    def from_hex(cls, s: str) -> MerkleBlock:
        try:
            raw = bytes.fromhex(s)
        except ValueError as e:
            raise DeserializationError("merkle proof decode failed: not hex") from e
        return cls.from_bytes(raw)

    def hex(self) -> str:
        return self.to_bytes().hex()

    # --- checking ----------------------------------------------------------------

    def extract(self) -> ProofMatches:
        """The root the tree commits to and the matched txids (not yet compared
        with the header; see :meth:`verify`)."""
        return self.tree.extract_matches()

    def verify(self) -> ProofMatches:
        """Extract the matches and check the root against ``header.merkle_root``
        (what ``verifytxoutproof`` does before it looks the block up).

        The caller still has to check that the header is on its best chain.
        """
        result = self.extract()
        if result.root != self.header.merkle_root:
            raise MerkleProofError(
                f"bad merkle proof: root {result.root[::-1].hex()} does not match "
                f"block {self.header.hash_hex()}'s merkle root {self.header.merkle_root[::-1].hex()}"
            )
        return result
