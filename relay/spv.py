"""An SPV light client of one chain: its header tree, most-work selection, and merkle proofs.

:class:`HeaderChain` is the header-only analogue of ``base_chain.chainstate``: a
sans-IO core (no sockets, no clock, no trio) that takes headers and the current
time, validates each one as Bitcoin Core's AcceptBlockHeader does (known parent,
proof of work, the expected bits including retargets, time above the median time
past, not too far in the future), tracks cumulative work and follows the
most-work branch through reorgs of any depth. It returns a :class:`HeaderUpdate`
saying what changed, for the shell to persist (:class:`HeaderStore`) and report.

:meth:`HeaderChain.verify_tx_proof` checks a transaction's inclusion proof (Core's
``gettxoutproof`` bytes) against the best chain and refuses the known SPV
pitfalls with a reason (see :data:`PROOF_REASONS`):

- a 64-byte transaction, which could be an inner merkle node (Sergio Demian
  Lerner's leaf-node weakness; BTC Relay's fix was to refuse exactly these);
- the CVE-2012-2459 duplicated-leaf mutation (identical sibling hashes);
- a proof whose root is not the header's merkle root, or that does not prove
  the given transaction (its txid is recomputed from the raw bytes, never taken
  from the prover);
- a block we do not know, a block that is not (or no longer) in the best chain,
  and too few confirmations.

Stale branches cost memory, so only ``max_stale_headers`` headers off the best
chain are kept; when there are more, the stale leaves with the least work go
first (the best chain is never pruned). A branch that needs a pruned header is
simply resent from its fork point.
"""

from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from base_chain.block import BlockHeader
from base_chain.merkle import MerkleBlock, MerkleProofError
from base_chain.params import ChainParams
from base_chain.pow import PowError, block_work, check_proof_of_work, median_time_past, next_work_required
from base_chain.serialize import DeserializationError
from base_chain.store import open_db
from base_chain.tx import Transaction
from base_chain.validation import BlockValidationError, HeaderContext, contextual_check_header

__all__ = [
    "SpvError",
    "HeaderRejected",
    "ProofRejected",
    "PROOF_REASONS",
    "Checkpoint",
    "HeaderRef",
    "HeaderUpdate",
    "VerifiedTx",
    "HeaderView",
    "HeaderChain",
    "HeaderStore",
    "verify_tx_proof",
    "DEFAULT_MAX_STALE_HEADERS",
    "MEDIAN_TIME_SPAN",
]

DEFAULT_MAX_STALE_HEADERS = 4032
"""Headers kept off the best chain (two retarget periods of Bitcoin)."""
MEDIAN_TIME_SPAN = 11

PROOF_REASONS = {
    "bad-tx-encoding": "the raw transaction does not parse",
    "tx-size-64": "the transaction is 64 bytes without witness: it could be an inner merkle node",
    "bad-proof-encoding": "the proof does not parse as Core's merkleblock",
    "bad-proof": "the partial merkle tree is malformed",
    "bad-proof-mutated": "the proof has identical sibling hashes (duplicated-leaf mutation, CVE-2012-2459)",
    "bad-proof-merkleroot": "the proof's root is not the header's merkle root",
    "tx-not-in-proof": "the proof does not prove this transaction's txid",
    "unknown-block": "the proof's block header is not one we know",
    "block-not-in-best-chain": "the proof's block is not in the best chain (orphaned or reorganized out)",
    "insufficient-depth": "the block has fewer confirmations than required",
}
"""Every reason :func:`verify_tx_proof` may refuse with, and what it means."""


# --------------------------------------------------------------------------
# errors and values
# --------------------------------------------------------------------------


class SpvError(ValueError):
    """Something an SPV client refuses; ``reason`` is a short stable string."""

    def __init__(self, reason: str, debug: str = "") -> None:
        super().__init__(f"{reason} ({debug})" if debug else reason)
        self.reason = reason
        self.debug = debug


class HeaderRejected(SpvError):
    """A header failed validation: ``reason`` is Core's reject reason ("high-hash", "bad-diffbits",
    "time-too-old", "time-too-new", "prev-blk-not-found", "bad-fork-prior-to-checkpoint", ...)."""

    def __init__(self, reason: str, debug: str = "", block_hash: bytes = b"") -> None:
        super().__init__(reason, debug)
        self.block_hash = block_hash


class ProofRejected(SpvError):
    """A transaction proof was refused; ``reason`` is one of :data:`PROOF_REASONS`."""


@dataclass(frozen=True, slots=True)
class HeaderRef:
    """One known header: its height, hash (internal order) and the cumulative work up to it."""

    height: int
    hash: bytes
    header: BlockHeader
    chain_work: int

    def hash_hex(self) -> str:
        return self.hash[::-1].hex()


@dataclass(frozen=True, slots=True)
class HeaderUpdate:
    """What one :meth:`HeaderChain.add_headers` call changed.

    ``accepted`` are the headers newly stored (on any branch), in order;
    ``disconnected`` the best-chain headers a reorg removed (old tip first) and
    ``connected`` those it added (lowest first) -- the net change of the whole
    batch; ``evicted`` the hashes of stale headers dropped to bound memory.
    ``rejected`` is the first invalid header's refusal: the headers before it
    were processed, those after it were not looked at.
    """

    accepted: tuple[HeaderRef, ...]
    disconnected: tuple[HeaderRef, ...]
    connected: tuple[HeaderRef, ...]
    evicted: tuple[bytes, ...]
    rejected: HeaderRejected | None
    tip: HeaderRef

    @property
    def reorg_depth(self) -> int:
        return len(self.disconnected)

    @property
    def changed(self) -> bool:
        return bool(self.accepted or self.evicted)


@dataclass(frozen=True, slots=True)
class VerifiedTx:
    """A transaction proven to be in the best chain: its block, height and depth (confirmations)."""

    txid: bytes
    block_hash: bytes
    height: int
    depth: int
    tx_index: int = 0
    """The transaction's position in its block (0 is the coinbase)."""

    def txid_hex(self) -> str:
        return self.txid[::-1].hex()

    def block_hash_hex(self) -> str:
        return self.block_hash[::-1].hex()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A trusted starting point: consecutive headers ending with the one at ``height``.

    Validating what follows needs context: the 11 headers before it for the
    median time past, and (on a retargeting chain) every header back to the start
    of its difficulty period -- as BTC Relay starts from a period's first block.
    :meth:`span` says how many that is. No branch may fork below ``height``.
    ``chain_work`` is the cumulative work at ``height`` if known (reported as is);
    otherwise work is counted from the first header given.
    """

    height: int
    headers: tuple[BlockHeader, ...]
    chain_work: int | None = None

    @classmethod
    def genesis(cls, params: ChainParams) -> Checkpoint:
        header = params.genesis.header
        return cls(0, (header,), block_work(header.bits))

    @staticmethod
    def span(params: ChainParams, height: int) -> int:
        """How many headers, ending at ``height``, a checkpoint there must carry."""
        first = max(0, height - (MEDIAN_TIME_SPAN - 1))
        if not params.pow_no_retargeting or params.pow_allow_min_difficulty_blocks:
            first = min(first, height - height % params.retarget_interval)
        return height - first + 1

    @property
    def hash(self) -> bytes:
        return self.headers[-1].hash

    def check(self, params: ChainParams) -> None:
        """Raise ValueError unless the headers link up and give enough context."""
        if self.height < 0 or not self.headers:
            raise ValueError("a checkpoint needs a height >= 0 and at least one header")
        need = self.span(params, self.height)
        if len(self.headers) < need:
            raise ValueError(f"a checkpoint at height {self.height} needs the {need} headers ending there, "
                             f"got {len(self.headers)}")
        first_height = self.height - len(self.headers) + 1
        if first_height < 0:
            raise ValueError(f"{len(self.headers)} headers cannot end at height {self.height}")
        if first_height == 0 and self.headers[0].hash != params.genesis_hash:
            raise ValueError(f"the header at height 0 is not {params.name}'s genesis")
        for parent, child in zip(self.headers, self.headers[1:]):
            if child.prev_block != parent.hash:
                raise ValueError(f"checkpoint headers do not link up at {child.hash_hex()}")


class HeaderView(Protocol):
    """What proof verification needs to know about a chain (a :class:`HeaderChain` or a :class:`HeaderStore`)."""

    @property
    def tip(self) -> HeaderRef: ...

    def get(self, block_hash: bytes) -> HeaderRef | None: ...

    def in_best_chain(self, block_hash: bytes) -> bool: ...


# --------------------------------------------------------------------------
# the header tree
# --------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Node:
    ref: HeaderRef
    prev: _Node | None
    sequence: int
    children: int = 0
    _mtp: int = field(default=-1)
    _regular_bits: int = field(default=-1)

    @property
    def height(self) -> int:
        return self.ref.height

    @property
    def work(self) -> int:
        return self.ref.chain_work

    def median_time_past(self) -> int:
        if self._mtp < 0:
            times: list[int] = []
            node: _Node | None = self
            while node is not None and len(times) < MEDIAN_TIME_SPAN:
                times.append(node.ref.header.time)
                node = node.prev
            self._mtp = median_time_past(times[::-1])
        return self._mtp

    def regular_bits(self, interval: int, limit_bits: int) -> int:
        """The bits of the last header at or before this one that is not a min-difficulty
        exception (Core's walk in GetNextWorkRequired), memoized: O(1) amortized, not O(interval)."""
        path: list[_Node] = []
        node = self
        while node._regular_bits < 0:
            header = node.ref.header
            if node.prev is None or node.height % interval == 0 or header.bits != limit_bits:
                node._regular_bits = header.bits
                break
            path.append(node)
            node = node.prev
        for n in path:
            n._regular_bits = node._regular_bits
        return node._regular_bits

    def ancestor(self, height: int) -> _Node:
        node = self
        while node.height > height:
            if node.prev is None:
                raise ValueError(f"no header at height {height} below {node.ref.hash_hex()}")
            node = node.prev
        if node.height != height:
            raise ValueError(f"no header at height {height}")
        return node


class HeaderChain:
    """The header tree of one chain, from a checkpoint, following the most-work branch."""

    def __init__(
        self,
        params: ChainParams,
        checkpoint: Checkpoint | None = None,
        *,
        max_stale_headers: int = DEFAULT_MAX_STALE_HEADERS,
    ) -> None:
        if max_stale_headers < 0:
            raise ValueError("max_stale_headers must be >= 0")
        self.params = params
        self.checkpoint = checkpoint or Checkpoint.genesis(params)
        self.checkpoint.check(params)
        self.max_stale_headers = max_stale_headers
        self._index: dict[bytes, _Node] = {}
        self._active: list[_Node] = []  # the best chain, from the first checkpoint header
        self._leaves: set[_Node] = set()
        self._sequence = 0
        headers = self.checkpoint.headers
        base_height = self.checkpoint.height - len(headers) + 1
        work = self.checkpoint.chain_work
        if work is not None:
            work -= sum(block_work(h.bits) for h in headers[1:])
        else:
            work = block_work(headers[0].bits)
        prev: _Node | None = None
        for i, header in enumerate(headers):
            if prev is not None:
                work = prev.work + block_work(header.bits)
            prev = self._insert(HeaderRef(base_height + i, header.hash, header, work), prev)
            self._active.append(prev)

    # --- queries ---------------------------------------------------------------------

    @property
    def tip(self) -> HeaderRef:
        return self._active[-1].ref

    @property
    def height(self) -> int:
        return self._active[-1].height

    @property
    def base_height(self) -> int:
        """The height of the lowest header kept (the start of the checkpoint's context)."""
        return self._active[0].height

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, block_hash: object) -> bool:
        return block_hash in self._index

    @property
    def stale_count(self) -> int:
        return len(self._index) - len(self._active)

    def get(self, block_hash: bytes) -> HeaderRef | None:
        node = self._index.get(block_hash)
        return None if node is None else node.ref

    def at_height(self, height: int) -> HeaderRef | None:
        """The best chain's header at ``height``, or None."""
        i = height - self.base_height
        return self._active[i].ref if 0 <= i < len(self._active) else None

    def in_best_chain(self, block_hash: bytes) -> bool:
        node = self._index.get(block_hash)
        return node is not None and self._on_active(node)

    def depth(self, block_hash: bytes) -> int:
        """Confirmations of a best-chain block (1 at the tip); 0 if it is not in the best chain."""
        node = self._index.get(block_hash)
        if node is None or not self._on_active(node):
            return 0
        return self.height - node.height + 1

    def headers(self) -> Iterator[HeaderRef]:
        """Every header kept, parents before children (the best chain first)."""
        yield from (n.ref for n in self._active)
        yield from (n.ref for n in sorted(self._index.values(), key=lambda n: (n.height, n.sequence))
                    if not self._on_active(n))

    def expected_bits(self, prev_hash: bytes, new_time: int) -> int:
        """The bits a header on top of ``prev_hash`` with timestamp ``new_time`` must carry."""
        prev = self._index.get(prev_hash)
        if prev is None:
            raise KeyError(f"unknown header {prev_hash[::-1].hex()}")
        return self._expected_bits(prev, new_time)

    def median_time_past(self, block_hash: bytes) -> int:
        node = self._index.get(block_hash)
        if node is None:
            raise KeyError(f"unknown header {block_hash[::-1].hex()}")
        return node.median_time_past()

    # --- adding headers ----------------------------------------------------------------

    def add_headers(self, headers: Iterable[BlockHeader], now: int) -> HeaderUpdate:
        """Validate and store ``headers`` (each after its parent), then follow the most work.

        ``now`` is the caller's (adjusted) time in seconds, for "time-too-new".
        Known headers are skipped. Processing stops at the first invalid header
        (``HeaderUpdate.rejected``); everything before it stands.
        """
        old_tip = self._active[-1]
        best = old_tip
        accepted: list[HeaderRef] = []
        rejected: HeaderRejected | None = None
        for header in headers:
            if header.hash in self._index:
                continue
            try:
                node = self._accept(header, now)
            except HeaderRejected as e:
                rejected = e
                break
            accepted.append(node.ref)
            if node.work > best.work:  # strictly more: the first seen of equal-work tips stays
                best = node
        disconnected, connected = self._switch_to(best) if best is not old_tip else ((), ())
        evicted = self._prune()
        return HeaderUpdate(tuple(accepted), disconnected, connected, evicted, rejected, self.tip)

    def _accept(self, header: BlockHeader, now: int) -> _Node:
        h = header.hash
        try:
            check_proof_of_work(h, header.bits, self.params)
        except PowError as e:
            raise HeaderRejected(e.reason, e.debug, h) from None
        prev = self._index.get(header.prev_block)
        if prev is None:
            raise HeaderRejected("prev-blk-not-found", f"parent {header.prev_block[::-1].hex()} unknown", h)
        if prev.height < self.checkpoint.height:
            raise HeaderRejected("bad-fork-prior-to-checkpoint",
                                 f"forks at height {prev.height}, below the checkpoint {self.checkpoint.height}", h)
        ctx = HeaderContext(prev.height + 1, prev.median_time_past(), self._expected_bits(prev, header.time))
        try:
            contextual_check_header(header, ctx, self.params, now)
        except BlockValidationError as e:
            raise HeaderRejected(e.reason, e.debug, h) from None
        ref = HeaderRef(prev.height + 1, h, header, prev.work + block_work(header.bits))
        return self._insert(ref, prev)

    def _insert(self, ref: HeaderRef, prev: _Node | None) -> _Node:
        self._sequence += 1
        node = _Node(ref, prev, self._sequence)
        self._index[ref.hash] = node
        self._leaves.add(node)
        if prev is not None:
            prev.children += 1
            self._leaves.discard(prev)
        return node

    def _expected_bits(self, prev: _Node, new_time: int) -> int:
        params = self.params
        height = prev.height + 1
        interval = params.retarget_interval
        header = prev.ref.header
        if (params.pow_allow_min_difficulty_blocks and height % interval != 0
                and new_time <= header.time + params.target_spacing_s * 2):
            # next_work_required would walk back through the min-difficulty blocks one by one.
            return prev.regular_bits(interval, params.pow_limit_bits)
        first_time = None
        if height % interval == 0 and not params.pow_no_retargeting:
            first_time = prev.ancestor(height - interval).ref.header.time
        return next_work_required(height, header.bits, header.time, params,
                                  first_time=first_time, new_time=new_time,
                                  bits_at=lambda h: prev.ancestor(h).ref.header.bits)

    def _on_active(self, node: _Node) -> bool:
        i = node.height - self.base_height
        return 0 <= i < len(self._active) and self._active[i] is node

    def _switch_to(self, tip: _Node) -> tuple[tuple[HeaderRef, ...], tuple[HeaderRef, ...]]:
        """Make ``tip`` the best chain's tip: (disconnected old tip first, connected lowest first)."""
        path: list[_Node] = []
        node: _Node | None = tip
        while node is not None and not self._on_active(node):
            path.append(node)
            node = node.prev
        if node is None:  # cannot happen: every header descends from the checkpoint
            raise AssertionError("header does not descend from the checkpoint")
        fork_i = node.height - self.base_height
        disconnected = tuple(n.ref for n in reversed(self._active[fork_i + 1:]))
        del self._active[fork_i + 1:]
        path.reverse()
        self._active.extend(path)
        return disconnected, tuple(n.ref for n in path)

    def _prune(self) -> tuple[bytes, ...]:
        """Drop stale leaves, least work first, until at most ``max_stale_headers`` are off the best chain."""
        excess = self.stale_count - self.max_stale_headers
        if excess <= 0:
            return ()
        heap = [(n.work, -n.sequence, n.sequence, n) for n in self._leaves if not self._on_active(n)]
        heapq.heapify(heap)
        evicted: list[bytes] = []
        while excess > 0 and heap:
            node = heapq.heappop(heap)[3]
            del self._index[node.ref.hash]
            self._leaves.discard(node)
            evicted.append(node.ref.hash)
            excess -= 1
            parent = node.prev
            if parent is not None:
                parent.children -= 1
                if parent.children == 0 and not self._on_active(parent):
                    self._leaves.add(parent)
                    heapq.heappush(heap, (parent.work, -parent.sequence, parent.sequence, parent))
        return tuple(evicted)

    # --- proofs ------------------------------------------------------------------------

    def verify_tx_proof(self, proof_bytes: bytes, raw_tx: bytes, min_depth: int = 1) -> VerifiedTx:
        """See :func:`verify_tx_proof`."""
        return verify_tx_proof(self, proof_bytes, raw_tx, min_depth)

    # --- restoring -----------------------------------------------------------------------

    @classmethod
    def restore(
        cls,
        params: ChainParams,
        checkpoint: Checkpoint,
        headers: Sequence[HeaderRef],
        best_hash: bytes,
        *,
        max_stale_headers: int = DEFAULT_MAX_STALE_HEADERS,
    ) -> HeaderChain:
        """Rebuild a chain from stored headers (parents first) without validating them again.

        ``best_hash`` is the tip it had: among equal-work tips it stays the best.
        """
        chain = cls(params, checkpoint, max_stale_headers=max_stale_headers)
        for ref in headers:
            if ref.hash in chain._index:
                continue
            prev = chain._index.get(ref.header.prev_block)
            if prev is None or prev.height + 1 != ref.height:
                raise ValueError(f"stored header {ref.hash_hex()} does not connect to the stored tree")
            chain._insert(ref, prev)
        tip = chain._index.get(best_hash)
        if tip is None:
            raise ValueError(f"stored best tip {best_hash[::-1].hex()} is not among the stored headers")
        best = max(chain._leaves, key=lambda n: (n.work, n is tip, -n.sequence))
        chain._switch_to(best)
        return chain


# --------------------------------------------------------------------------
# transaction proofs
# --------------------------------------------------------------------------


def verify_tx_proof(view: HeaderView, proof_bytes: bytes, raw_tx: bytes, min_depth: int = 1) -> VerifiedTx:
    """Check that ``raw_tx`` is in a best-chain block of ``view`` at depth >= ``min_depth``.

    ``proof_bytes`` is Core's merkleblock (``gettxoutproof``). The txid is
    recomputed from ``raw_tx``. Raises :class:`ProofRejected` naming the first
    check that fails (see :data:`PROOF_REASONS`).
    """
    if min_depth < 0:
        raise ValueError("min_depth must be >= 0")
    try:
        tx = Transaction.from_bytes(raw_tx)
    except (DeserializationError, ValueError) as e:
        raise ProofRejected("bad-tx-encoding", str(e)) from None
    stripped = tx.to_bytes(include_witness=False)
    if len(stripped) == 64:
        raise ProofRejected("tx-size-64", "a 64-byte transaction cannot be told apart from an inner merkle node")
    txid = tx.txid
    try:
        proof = MerkleBlock.from_bytes(proof_bytes)
    except (DeserializationError, ValueError) as e:
        raise ProofRejected("bad-proof-encoding", str(e)) from None
    try:
        matches = proof.extract()
    except MerkleProofError as e:
        # extract_matches says "identical left and right branches" for the CVE-2012-2459 pattern.
        reason = "bad-proof-mutated" if "identical left and right" in str(e) else "bad-proof"
        raise ProofRejected(reason, str(e)) from None
    block_hash = proof.header.hash
    if matches.root != proof.header.merkle_root:
        raise ProofRejected("bad-proof-merkleroot",
                            f"root {matches.root[::-1].hex()} is not block {proof.header.hash_hex()}'s merkle root")
    if txid not in matches.txids:
        raise ProofRejected("tx-not-in-proof", f"txid {txid[::-1].hex()} is not among the proven txids")
    tx_index = matches.indexes[matches.txids.index(txid)]
    ref = view.get(block_hash)
    if ref is None:
        raise ProofRejected("unknown-block", f"block {proof.header.hash_hex()} is not a header we know")
    if not view.in_best_chain(block_hash):
        raise ProofRejected("block-not-in-best-chain",
                            f"block {proof.header.hash_hex()} at height {ref.height} is not in the best chain")
    depth = view.tip.height - ref.height + 1
    if depth < min_depth:
        raise ProofRejected("insufficient-depth", f"block {proof.header.hash_hex()} has {depth} confirmations, "
                                                  f"{min_depth} required")
    return VerifiedTx(txid, block_hash, ref.height, depth, tx_index)


# --------------------------------------------------------------------------
# persistence
# --------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS headers (
    hash BLOB PRIMARY KEY,
    height INTEGER NOT NULL,
    header BLOB NOT NULL,
    chain_work BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS best_chain (height INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _ref_from_row(row: tuple[bytes, int, bytes, bytes]) -> HeaderRef:
    h, height, raw, work = row
    return HeaderRef(int(height), bytes(h), BlockHeader.from_bytes(bytes(raw)), int.from_bytes(bytes(work), "big"))


class HeaderStore:
    """A :class:`HeaderChain` in sqlite (WAL, synchronous=FULL): every update is one transaction.

    It also answers queries itself (a :class:`HeaderView`), so a reader such as
    the CLI can check a proof without loading the whole chain.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self.conn = open_db(self.path)
        self.conn.executescript(_SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> HeaderStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[None]:
        """Writes commit together; reads inside see one snapshot."""
        self.conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # --- writing -------------------------------------------------------------------

    def _put(self, refs: Iterable[HeaderRef]) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO headers VALUES (?, ?, ?, ?)",
            ((r.hash, r.height, r.header.to_bytes(), r.chain_work.to_bytes(32, "big")) for r in refs),
        )

    def save(self, chain: HeaderChain) -> None:
        """Write the whole chain, replacing what was stored."""
        cp = chain.checkpoint
        with self.transaction():
            self.conn.execute("DELETE FROM headers")
            self.conn.execute("DELETE FROM best_chain")
            self._put(chain.headers())
            self.conn.executemany("INSERT INTO best_chain VALUES (?, ?)",
                                  ((h, r.hash) for h in range(chain.base_height, chain.height + 1)
                                   if (r := chain.at_height(h)) is not None))
            self._set_meta_many({
                "chain": chain.params.name,
                "genesis": chain.params.genesis_hash_hex(),
                "checkpoint_height": str(cp.height),
                "checkpoint_hash": cp.hash[::-1].hex(),
                "checkpoint_chain_work": "" if cp.chain_work is None else str(cp.chain_work),
            })

    def apply(self, update: HeaderUpdate, meta: dict[str, str] | None = None) -> None:
        """Persist one :class:`HeaderUpdate` (and optional status values) atomically."""
        with self.transaction():
            self._put(update.accepted)
            self.conn.executemany("DELETE FROM headers WHERE hash = ?", ((h,) for h in update.evicted))
            self.conn.executemany("DELETE FROM best_chain WHERE height = ?", ((r.height,) for r in update.disconnected))
            self.conn.executemany("INSERT OR REPLACE INTO best_chain VALUES (?, ?)",
                                  ((r.height, r.hash) for r in update.connected))
            if meta:
                self._set_meta_many(meta)

    def _set_meta_many(self, values: dict[str, str]) -> None:
        self.conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", values.items())

    def set_meta(self, values: dict[str, str]) -> None:
        with self.transaction():
            self._set_meta_many(values)

    # --- reading --------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def meta(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self.conn.execute("SELECT key, value FROM meta")}

    def is_empty(self) -> bool:
        return self.conn.execute("SELECT 1 FROM best_chain LIMIT 1").fetchone() is None

    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM headers").fetchone()[0])

    def stale_count(self) -> int:
        """Headers kept off the best chain."""
        best = int(self.conn.execute("SELECT COUNT(*) FROM best_chain").fetchone()[0])
        return self.count() - best

    @property
    def tip(self) -> HeaderRef:
        row = self.conn.execute(
            "SELECT h.hash, h.height, h.header, h.chain_work FROM best_chain b JOIN headers h ON h.hash = b.hash "
            "ORDER BY b.height DESC LIMIT 1").fetchone()
        if row is None:
            raise LookupError("the header store is empty")
        return _ref_from_row(row)

    def get(self, block_hash: bytes) -> HeaderRef | None:
        row = self.conn.execute("SELECT hash, height, header, chain_work FROM headers WHERE hash = ?",
                                (block_hash,)).fetchone()
        return None if row is None else _ref_from_row(row)

    def at_height(self, height: int) -> HeaderRef | None:
        row = self.conn.execute(
            "SELECT h.hash, h.height, h.header, h.chain_work FROM best_chain b JOIN headers h ON h.hash = b.hash "
            "WHERE b.height = ?", (height,)).fetchone()
        return None if row is None else _ref_from_row(row)

    def in_best_chain(self, block_hash: bytes) -> bool:
        return self.conn.execute("SELECT 1 FROM best_chain WHERE hash = ?", (block_hash,)).fetchone() is not None

    def verify_tx_proof(self, proof_bytes: bytes, raw_tx: bytes, min_depth: int = 1) -> VerifiedTx:
        """:func:`verify_tx_proof` against the stored best chain, read as one snapshot."""
        with self.transaction(write=False):
            return verify_tx_proof(self, proof_bytes, raw_tx, min_depth)

    def load(self, params: ChainParams, *, max_stale_headers: int = DEFAULT_MAX_STALE_HEADERS) -> HeaderChain:
        """The stored chain; ValueError if the store is empty or belongs to another chain."""
        with self.transaction(write=False):
            meta = self.meta()
            if meta.get("chain") != params.name or meta.get("genesis") != params.genesis_hash_hex():
                raise ValueError(f"{self.path} holds headers of chain {meta.get('chain')!r} "
                                 f"(genesis {meta.get('genesis')}), not {params.name!r}")
            rows = self.conn.execute(
                "SELECT hash, height, header, chain_work FROM headers ORDER BY height, rowid").fetchall()
            refs = [_ref_from_row(r) for r in rows]
            tip = self.tip
        cp_height = int(meta["checkpoint_height"])
        cp_work = int(meta["checkpoint_chain_work"]) if meta.get("checkpoint_chain_work") else None
        span = Checkpoint.span(params, cp_height)
        by_hash = {r.hash: r for r in refs}
        cp_hash = bytes.fromhex(meta["checkpoint_hash"])[::-1]
        cp_refs: list[HeaderRef] = []
        cursor = by_hash.get(cp_hash)
        while cursor is not None and len(cp_refs) < span:
            cp_refs.append(cursor)
            cursor = by_hash.get(cursor.header.prev_block)
        checkpoint = Checkpoint(cp_height, tuple(r.header for r in reversed(cp_refs)), cp_work)
        return HeaderChain.restore(params, checkpoint, refs, tip.hash, max_stale_headers=max_stale_headers)
