"""The SPV header chain (relay/spv.py): header validation with Core's reasons, most-work
selection through reorgs, bounded stale branches, transaction proofs and their pitfalls,
persistence. Sans-IO: headers are mined here with base_chain's miner, no daemons."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from base_chain.block import Block, BlockHeader
from base_chain.hashes import hash256
from base_chain.merkle import MerkleBlock, PartialMerkleTree, merkle_root
from base_chain.miner import BLOCK_VERSION, assemble_block
from base_chain.miner import mine_block as base_mine_block
from base_chain.params import get_params
from base_chain.pow import bits_to_target, block_work, mine_header, target_to_bits
from base_chain.tx import OutPoint, Transaction, TxIn, TxOut
from base_chain.validation import MAX_FUTURE_BLOCK_TIME
from relay.spv import (
    Checkpoint,
    HeaderChain,
    HeaderRef,
    HeaderStore,
    HeaderUpdate,
    ProofRejected,
    PROOF_REASONS,
    verify_tx_proof,
)

BETA = get_params("beta")
# A retargeting chain: 8-block periods, so difficulty changes inside small tests.
RETARGET = dataclasses.replace(
    get_params("regtest"), name="retarget", pow_no_retargeting=False, pow_allow_min_difficulty_blocks=False,
    target_spacing_s=150, target_timespan_s=150 * 8,
)
FAST_RETARGET = dataclasses.replace(RETARGET, name="fast-retarget", target_timespan_s=150 * 3)
NOW = BETA.genesis.header.time + 10_000_000
_tags = itertools.count()


def make_header(chain: HeaderChain, parent: bytes, *, dt: int = 150, time: int | None = None,
                bits: int | None = None, merkle_root: bytes | None = None) -> BlockHeader:
    """A mined header on ``parent`` (which ``chain`` knows), with the bits the chain expects."""
    p = chain.get(parent)
    assert p is not None
    t = p.header.time + dt if time is None else time
    b = chain.expected_bits(parent, t) if bits is None else bits
    root = merkle_root if merkle_root is not None else hash256(b"tag%d" % next(_tags))
    return mine_header(BlockHeader(BLOCK_VERSION, parent, root, t, b, 0), chain.params)


def extend(chain: HeaderChain, parent: bytes, n: int, *, dt: int = 150) -> list[BlockHeader]:
    """Mine ``n`` headers on ``parent`` and add them to ``chain`` one by one."""
    out: list[BlockHeader] = []
    for _ in range(n):
        h = make_header(chain, parent, dt=dt)
        update = chain.add_headers([h], NOW)
        assert update.rejected is None, update.rejected
        out.append(h)
        parent = h.hash
    return out


def heights(refs: tuple[HeaderRef, ...]) -> list[int]:
    return [r.height for r in refs]


def mine_block(chain: HeaderChain, parent: bytes, txs: list[Transaction], *, dt: int = 150) -> Block:
    """A full block on ``parent`` (known to ``chain``) holding ``txs`` after its coinbase; not added."""
    p = chain.get(parent)
    assert p is not None
    t = p.header.time + dt
    block = assemble_block(parent, p.height + 1, t, chain.expected_bits(parent, t), b"\x51", 50 * 10**8, txs,
                           extra_nonce=next(_tags))
    return base_mine_block(block, chain.params)


def payment(n: int = 0, script: bytes = b"\x00\x14" + b"\x11" * 20) -> Transaction:
    return Transaction(2, [TxIn(OutPoint(hash256(b"coin%d" % n), 0), b"", 0xFFFFFFFD)],
                       [TxOut(10_000 + n, script)], 0)


# --- the best chain and reorgs ---------------------------------------------------------


def test_starts_at_genesis_and_follows_a_chain() -> None:
    chain = HeaderChain(BETA)
    assert chain.tip.hash == BETA.genesis_hash and chain.height == 0
    assert chain.tip.chain_work == block_work(BETA.genesis.header.bits)
    never_added = make_header(chain, BETA.genesis_hash)
    builder = HeaderChain(BETA)
    hs = extend(builder, BETA.genesis_hash, 10)
    update = chain.add_headers(hs, NOW)
    assert update.rejected is None and update.reorg_depth == 0
    assert heights(update.connected) == list(range(1, 11)) and len(update.accepted) == 10
    assert chain.tip.hash == hs[-1].hash and chain.height == 10
    assert chain.tip.chain_work == 11 * block_work(BETA.pow_limit_bits)
    assert chain.at_height(5) is not None and chain.at_height(5).hash == hs[4].hash  # type: ignore[union-attr]
    assert chain.depth(hs[4].hash) == 6 and chain.depth(never_added.hash) == 0
    # Known headers are skipped, not refused.
    again = chain.add_headers(hs, NOW)
    assert again.accepted == () and again.rejected is None and not again.changed


def test_reorg_to_a_longer_branch_and_back() -> None:
    chain = HeaderChain(BETA)
    main = extend(chain, BETA.genesis_hash, 6)
    fork_point = main[2].hash  # height 3
    # A side branch of equal length does not win: the first seen stays.
    side = extend(chain, fork_point, 3)
    assert chain.tip.hash == main[-1].hash and chain.stale_count == 3
    # One more block on the side branch: a reorg of depth 3.
    more = make_header(chain, side[-1].hash)
    update = chain.add_headers([more], NOW)
    assert chain.tip.hash == more.hash and chain.height == 7
    assert heights(update.disconnected) == [6, 5, 4]
    assert [r.hash for r in update.disconnected] == [main[5].hash, main[4].hash, main[3].hash]
    assert heights(update.connected) == [4, 5, 6, 7]
    assert [r.hash for r in update.connected] == [side[0].hash, side[1].hash, side[2].hash, more.hash]
    assert not chain.in_best_chain(main[4].hash) and chain.in_best_chain(side[1].hash)
    # And back: the old branch grows by two, past the side branch's work.
    back = [make_header(chain, main[-1].hash)]
    back.append(make_header_after(chain, back[0]))
    update = chain.add_headers(back, NOW)
    assert chain.tip.hash == back[-1].hash and chain.height == 8
    assert heights(update.disconnected) == [7, 6, 5, 4]
    assert heights(update.connected) == [4, 5, 6, 7, 8]
    assert chain.in_best_chain(main[4].hash) and not chain.in_best_chain(side[1].hash)


def make_header_after(chain: HeaderChain, parent: BlockHeader, dt: int = 150) -> BlockHeader:
    """A header on ``parent``, which the chain need not know yet (same bits: no retarget on beta)."""
    t = parent.time + dt
    return mine_header(BlockHeader(BLOCK_VERSION, parent.hash, hash256(b"tag%d" % next(_tags)), t,
                                   parent.bits, 0), chain.params)


def test_a_reorg_of_any_depth_delivered_in_one_batch() -> None:
    chain = HeaderChain(BETA, max_stale_headers=5)
    main = extend(chain, BETA.genesis_hash, 30)
    builder = HeaderChain(BETA)
    branch = extend(builder, BETA.genesis_hash, 31, dt=149)
    update = chain.add_headers(branch, NOW)
    assert chain.tip.hash == branch[-1].hash
    assert update.reorg_depth == 30 and heights(update.connected) == list(range(1, 32))
    # The old chain is now stale; only 5 of its headers are kept, from the fork upward.
    assert chain.stale_count == 5 and len(update.evicted) == 25
    assert all(h.hash in chain for h in main[:5]) and all(h.hash not in chain for h in main[5:])


def test_stale_branches_are_bounded_least_work_first() -> None:
    chain = HeaderChain(BETA, max_stale_headers=4)
    main = extend(chain, BETA.genesis_hash, 10)
    low = extend(chain, main[0].hash, 2)  # forks at 1: tips at height 3
    high = extend(chain, main[5].hash, 2)  # forks at 6: tips at height 8 (more work)
    assert chain.stale_count == 4
    update = chain.add_headers([make_header(chain, main[6].hash)], NOW)  # a 5th stale header
    assert update.evicted == (low[1].hash,)
    assert chain.stale_count == 4 and all(h.hash in chain for h in high) and low[0].hash in chain
    # A child of an evicted header is refused as an orphan: the branch must be resent.
    orphan = make_header_after(chain, low[1])
    assert chain.add_headers([orphan], NOW).rejected.reason == "prev-blk-not-found"  # type: ignore[union-attr]
    assert chain.tip.hash == main[-1].hash


# --- refusals, with Core's reasons --------------------------------------------------------


def test_refusals_with_core_reasons() -> None:
    chain = HeaderChain(BETA)
    main = extend(chain, BETA.genesis_hash, 12)
    tip = main[-1]

    def reason(header: BlockHeader) -> str:
        update = chain.add_headers([header], NOW)
        assert update.rejected is not None and update.accepted == ()
        assert update.rejected.block_hash == header.hash
        return update.rejected.reason

    good = make_header(chain, tip.hash)
    nonce = good.nonce + 1
    while True:  # a nonce whose hash misses the target
        bad = dataclasses.replace(good, nonce=nonce)
        if int.from_bytes(bad.hash, "little") > bits_to_target(bad.bits):
            break
        nonce += 1
    assert reason(bad) == "high-hash"
    assert reason(make_header(chain, tip.hash, bits=target_to_bits(BETA.pow_limit // 2))) == "bad-diffbits"
    assert reason(dataclasses.replace(good, bits=0x21010000)) == "bad-diffbits"  # overflows: easier than the limit
    mtp = chain.median_time_past(tip.hash)
    assert reason(make_header(chain, tip.hash, time=mtp)) == "time-too-old"
    assert reason(make_header(chain, tip.hash, time=NOW + MAX_FUTURE_BLOCK_TIME + 1)) == "time-too-new"
    stranger = dataclasses.replace(good, prev_block=hash256(b"nobody"), nonce=0)
    assert reason(mine_header(stranger, BETA)) == "prev-blk-not-found"
    # Exactly at the limits is fine.
    assert chain.add_headers([make_header(chain, tip.hash, time=mtp + 1)], NOW).rejected is None
    assert chain.add_headers([make_header(chain, tip.hash, time=NOW + MAX_FUTURE_BLOCK_TIME)], NOW).rejected is None
    # A bad header stops the batch; those before it stay.
    a = make_header(chain, chain.tip.hash)
    b = make_header_after(chain, a, dt=-10**6)
    update = chain.add_headers([a, b, make_header_after(chain, b)], NOW)
    assert [r.hash for r in update.accepted] == [a.hash] and update.rejected.reason == "time-too-old"  # type: ignore[union-attr]
    assert chain.tip.hash == a.hash


def test_retargets_are_enforced() -> None:
    chain = HeaderChain(RETARGET)
    extend(chain, RETARGET.genesis_hash, 7, dt=1)  # a fast period: the difficulty must rise at height 8
    parent = chain.tip
    expected = chain.expected_bits(parent.hash, parent.header.time + 1)
    assert expected == target_to_bits(bits_to_target(RETARGET.pow_limit_bits) // 4)  # clamped to 4x harder
    stale_bits = make_header(chain, parent.hash, dt=1, bits=parent.header.bits)
    assert chain.add_headers([stale_bits], NOW).rejected.reason == "bad-diffbits"  # type: ignore[union-attr]
    extend(chain, parent.hash, 8, dt=1)
    assert chain.height == 15 and chain.tip.header.bits == expected
    assert chain.tip.chain_work == 8 * block_work(RETARGET.pow_limit_bits) + 8 * block_work(expected)


def test_more_work_beats_more_blocks() -> None:
    chain = HeaderChain(RETARGET)
    common = extend(chain, RETARGET.genesis_hash, 5, dt=1)
    slow = extend(chain, common[-1].hash, 6, dt=600)  # heights 6..11, no harder at the retarget
    assert chain.tip.hash == slow[-1].hash
    fast = extend(chain, common[-1].hash, 4, dt=1)  # heights 6..9: 8 and 9 carry 4x the work
    assert chain.tip.hash == fast[-1].hash and chain.height == 9
    assert chain.tip.chain_work > chain.get(slow[-1].hash).chain_work  # type: ignore[union-attr]


def test_min_difficulty_walk_matches_next_work_required() -> None:
    """The memoized walk over min-difficulty blocks gives what Core's loop gives."""
    from base_chain.pow import next_work_required

    params = dataclasses.replace(RETARGET, name="mindiff", pow_allow_min_difficulty_blocks=True)
    chain = HeaderChain(params)
    hs = extend(chain, params.genesis_hash, 6, dt=1)
    # A slow block may use the pow limit; the next (fast) one must return to the period's bits.
    for dt in (1, 10_000, 1, 1, 10_000, 1, 1):
        tip = chain.tip
        height = tip.height + 1
        by_height = {h: chain.at_height(h).header for h in range(height)}  # type: ignore[union-attr]
        want = next_work_required(height, tip.header.bits, tip.header.time, params,
                                  first_time=by_height[height - 8].time if height % 8 == 0 else None,
                                  new_time=tip.header.time + dt, bits_at=lambda h: by_height[h].bits)
        assert chain.expected_bits(tip.hash, tip.header.time + dt) == want
        hs += extend(chain, tip.hash, 1, dt=dt)
    assert len({h.bits for h in hs}) > 1


def test_checkpoint_start_and_forks_below_it() -> None:
    full = HeaderChain(RETARGET)
    hs = extend(full, RETARGET.genesis_hash, 20, dt=100)
    span = Checkpoint.span(RETARGET, 13)
    assert span == 11  # 11 headers for the median time past reach further back than the period start (8)
    cp_headers = tuple(hs[13 - span: 13])  # hs[i] is at height i + 1
    with pytest.raises(ValueError, match="needs the"):
        HeaderChain(RETARGET, Checkpoint(13, cp_headers[1:]))
    with pytest.raises(ValueError, match="link"):
        HeaderChain(RETARGET, Checkpoint(13, cp_headers[:-2] + cp_headers[-1:] + cp_headers[-2:-1]))
    work = full.at_height(13).chain_work  # type: ignore[union-attr]
    chain = HeaderChain(RETARGET, Checkpoint(13, cp_headers, work))
    assert chain.tip.hash == hs[12].hash and chain.height == 13 and chain.tip.chain_work == work
    update = chain.add_headers(hs[13:], NOW)  # crosses the retarget at height 16
    assert update.rejected is None and chain.tip.hash == hs[-1].hash
    assert chain.tip.chain_work == full.tip.chain_work
    # A fork from below the checkpoint is refused, though its parent is known context.
    fork = make_header(full, hs[10].hash, dt=50)
    assert chain.add_headers([fork], NOW).rejected.reason == "bad-fork-prior-to-checkpoint"  # type: ignore[union-attr]
    assert Checkpoint.span(BETA, 5000) == 5000 - 4032 + 1  # min-difficulty walk: back to the period start


# --- transaction proofs -------------------------------------------------------------------


def block_chain_with(txs: list[Transaction], after: int = 3) -> tuple[HeaderChain, Block]:
    """A chain with a block holding ``txs`` at height 4, and ``after`` blocks on it."""
    chain = HeaderChain(BETA)
    extend(chain, BETA.genesis_hash, 3)
    block = mine_block(chain, chain.tip.hash, txs)
    assert chain.add_headers([block.header], NOW).rejected is None
    extend(chain, block.hash, after - 1)
    return chain, block


def test_a_real_proof_verifies_at_depth_k_and_not_beyond() -> None:
    tx, other = payment(1), payment(2)
    chain, block = block_chain_with([tx, other, payment(3)], after=3)
    proof = MerkleBlock.from_block(block, [tx.txid]).to_bytes()
    v = chain.verify_tx_proof(proof, tx.to_bytes(), min_depth=3)
    assert (v.txid, v.block_hash, v.height, v.depth, v.tx_index) == (tx.txid, block.hash, 4, 3, 1)
    assert v.txid_hex() == tx.txid_hex()
    with pytest.raises(ProofRejected) as e:
        chain.verify_tx_proof(proof, tx.to_bytes(), min_depth=4)
    assert e.value.reason == "insufficient-depth"
    extend(chain, chain.tip.hash, 1)
    assert chain.verify_tx_proof(proof, tx.to_bytes(), min_depth=4).depth == 4
    # A proof of several txids proves each; the coinbase is at index 0.
    multi = MerkleBlock.from_block(block, [tx.txid, other.txid, block.transactions[0].txid]).to_bytes()
    assert chain.verify_tx_proof(multi, other.to_bytes()).tx_index == 2
    assert chain.verify_tx_proof(multi, block.transactions[0].to_bytes()).tx_index == 0


def refusal(chain: HeaderChain, proof: bytes, raw_tx: bytes, min_depth: int = 1) -> str:
    with pytest.raises(ProofRejected) as e:
        chain.verify_tx_proof(proof, raw_tx, min_depth)
    assert e.value.reason in PROOF_REASONS
    return e.value.reason


def test_a_64_byte_transaction_is_refused() -> None:
    tx64 = Transaction(2, [TxIn(OutPoint(hash256(b"x"), 0), b"", 0xFFFFFFFF)], [TxOut(1000, b"\x51\x51\x51\x51")], 0)
    assert len(tx64.to_bytes()) == 64
    chain, block = block_chain_with([tx64, payment(1)])
    proof = MerkleBlock.from_block(block, [tx64.txid]).to_bytes()
    assert refusal(chain, proof, tx64.to_bytes()) == "tx-size-64"
    # The inner-node form of the attack: the 64 bytes of two child hashes "proven" as a transaction.
    left, right = block.transactions[0].txid, block.transactions[1].txid
    assert refusal(chain, proof, left + right) in ("tx-size-64", "bad-tx-encoding")


def test_a_duplicated_leaf_mutation_is_refused() -> None:
    a, b = payment(1), payment(2)
    chain, block = block_chain_with([a, b])  # three transactions: the last is duplicated in the root
    txids = [t.txid for t in block.transactions]
    assert merkle_root(txids + [b.txid])[0] == block.header.merkle_root  # CVE-2012-2459
    tree = PartialMerkleTree.build(txids + [b.txid], [False, False, False, True])
    proof = MerkleBlock(block.header, tree).to_bytes()
    assert refusal(chain, proof, b.to_bytes()) == "bad-proof-mutated"
    # The honest proof of the same transaction is fine.
    assert chain.verify_tx_proof(MerkleBlock.from_block(block, [b.txid]).to_bytes(), b.to_bytes()).tx_index == 2


def test_malformed_and_mismatched_proofs_are_refused() -> None:
    tx = payment(1)
    chain, block = block_chain_with([tx, payment(2)])
    good = MerkleBlock.from_block(block, [tx.txid])
    raw = tx.to_bytes()
    assert refusal(chain, good.to_bytes()[:-1], raw) == "bad-proof-encoding"
    assert refusal(chain, b"", raw) == "bad-proof-encoding"
    assert refusal(chain, good.to_bytes(), raw[:-1]) == "bad-tx-encoding"
    # A tree with an unused hash (Core's ExtractMatches refuses it).
    extra = PartialMerkleTree(good.tree.num_transactions, good.tree.hashes + (hash256(b"x"),), good.tree.flags)
    assert refusal(chain, MerkleBlock(block.header, extra).to_bytes(), raw) == "bad-proof"
    # A proof whose root is another block's.
    other = mine_block(chain, block.header.prev_block, [tx])
    wrong_root = MerkleBlock(block.header, MerkleBlock.from_block(other, [tx.txid]).tree)
    assert refusal(chain, wrong_root.to_bytes(), raw) == "bad-proof-merkleroot"
    # The proof is genuine but for another transaction (the txid comes from the raw bytes).
    assert refusal(chain, good.to_bytes(), payment(2).to_bytes()) == "tx-not-in-proof"
    # A proof for a header we never saw.
    unknown = mine_block(chain, chain.tip.hash, [tx])
    assert refusal(chain, MerkleBlock.from_block(unknown, [tx.txid]).to_bytes(), raw) == "unknown-block"


def test_a_proof_of_a_reorged_out_block_is_refused() -> None:
    tx = payment(7)
    chain, block = block_chain_with([tx], after=2)
    proof = MerkleBlock.from_block(block, [tx.txid]).to_bytes()
    assert chain.verify_tx_proof(proof, tx.to_bytes(), 2).height == 4
    # A longer branch from height 3 replaces the block.
    builder = HeaderChain(BETA)
    builder.add_headers([chain.at_height(h).header for h in range(1, 4)], NOW)  # type: ignore[union-attr]
    branch = extend(builder, chain.at_height(3).hash, 3)  # type: ignore[union-attr]
    update = chain.add_headers(branch, NOW)
    assert update.reorg_depth == 2 and block.hash in chain and not chain.in_best_chain(block.hash)
    assert refusal(chain, proof, tx.to_bytes()) == "block-not-in-best-chain"


def test_depth_zero_and_negative() -> None:
    tx = payment(1)
    chain, block = block_chain_with([tx], after=1)
    proof = MerkleBlock.from_block(block, [tx.txid]).to_bytes()
    assert chain.verify_tx_proof(proof, tx.to_bytes(), 0).depth == 1
    with pytest.raises(ValueError):
        chain.verify_tx_proof(proof, tx.to_bytes(), -1)


# --- persistence ---------------------------------------------------------------------------


def test_store_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "headers.sqlite"
    chain = HeaderChain(BETA, max_stale_headers=3)
    store = HeaderStore(path)
    assert store.is_empty()
    store.save(chain)
    assert not store.is_empty() and store.tip == chain.tip
    tx = payment(1)
    builder = HeaderChain(BETA)
    main = extend(builder, BETA.genesis_hash, 3)
    block = mine_block(builder, main[-1].hash, [tx])
    builder.add_headers([block.header], NOW)
    side_a = extend(builder, main[0].hash, 2)
    side_b = extend(builder, main[1].hash, 5)
    updates = []
    for batch in ([*main, block.header], side_a, side_b):
        updates.append(chain.add_headers(batch, NOW))
        store.apply(updates[-1], {"note": "x"})
    assert chain.tip.hash == side_b[-1].hash and chain.tip.height == 7
    assert updates[-1].evicted == (side_a[-1].hash,) and updates[-1].reorg_depth == 2
    proof = MerkleBlock.from_block(block, [tx.txid]).to_bytes()
    store.close()

    with HeaderStore(path) as again:
        assert again.get_meta("note") == "x" and again.count() == len(chain)
        assert again.tip == chain.tip and again.at_height(3) == chain.at_height(3)
        loaded = again.load(BETA, max_stale_headers=3)
        assert sorted(r.hash for r in loaded.headers()) == sorted(r.hash for r in chain.headers())
        assert [loaded.at_height(h) for h in range(8)] == [chain.at_height(h) for h in range(8)]
        assert loaded.stale_count == chain.stale_count == 3
        # The block with the transaction was reorged out: every view refuses its proof alike.
        for view in (loaded, again, chain):
            with pytest.raises(ProofRejected) as e:
                verify_tx_proof(view, proof, tx.to_bytes())
            assert e.value.reason == "block-not-in-best-chain"
        # The loaded chain goes on validating.
        extend(loaded, loaded.tip.hash, 2)
        assert loaded.height == 9
        with pytest.raises(ValueError, match="not 'alpha'"):
            again.load(get_params("alpha"))


def test_store_keeps_the_checkpoint_and_equal_work_tip(tmp_path: Path) -> None:
    full = HeaderChain(BETA)
    hs = extend(full, BETA.genesis_hash, 15)
    by_height = [BETA.genesis.header, *hs]
    span = Checkpoint.span(BETA, 12)
    assert span == 13  # beta allows min-difficulty blocks: back to the period start, genesis
    cp = Checkpoint(12, tuple(by_height[13 - span:13]), full.at_height(12).chain_work)  # type: ignore[union-attr]
    chain = HeaderChain(BETA, cp)
    store = HeaderStore(tmp_path / "h.sqlite")
    store.save(chain)
    # Two equal-work tips: the first seen is best and stays best after a reload.
    a, b = make_header(chain, hs[11].hash), make_header(chain, hs[11].hash)
    store.apply(chain.add_headers([a], NOW))
    store.apply(chain.add_headers([b], NOW))
    assert chain.tip.hash == a.hash
    loaded = store.load(BETA)
    assert loaded.tip.hash == a.hash and loaded.checkpoint == cp and loaded.tip.chain_work == chain.tip.chain_work
    assert loaded.add_headers([make_header(full, hs[5].hash)], NOW).rejected.reason == "bad-fork-prior-to-checkpoint"  # type: ignore[union-attr]
    store.close()


# --- property: the best tip is always the most-work header --------------------------------


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.lists(st.tuples(st.one_of(st.integers(0, 2), st.integers(0, 10**6)), st.sampled_from([1, 1, 150, 600])),
                   min_size=1, max_size=48),
    batches=st.lists(st.integers(1, 6), min_size=1, max_size=24),
    max_stale=st.sampled_from([0, 3, 1000]),
)
def test_random_fork_trees_follow_the_most_work(shape: list[tuple[int, int]], batches: list[int],
                                                max_stale: int) -> None:
    # Build a random tree on a retargeting chain (so more blocks need not mean more work).
    builder = HeaderChain(FAST_RETARGET)
    nodes = [FAST_RETARGET.genesis_hash]
    order: list[BlockHeader] = []
    for back, dt in shape:  # mostly extend one of the newest headers, sometimes fork anywhere
        parent = nodes[-1 - back % len(nodes)]
        parent_time = builder.get(parent).header.time  # type: ignore[union-attr]
        if bits_to_target(builder.expected_bits(parent, parent_time + dt)) < FAST_RETARGET.pow_limit >> 8:
            dt = 600  # slow down before mining gets expensive
        header = make_header(builder, parent, dt=dt)
        builder.add_headers([header], NOW)
        nodes.append(header.hash)
        order.append(header)
    # Feed it in batches (parents always first), mirroring the reported changes.
    chain = HeaderChain(FAST_RETARGET, max_stale_headers=max_stale)
    mirror = [FAST_RETARGET.genesis_hash]
    seen: list[HeaderRef] = [chain.tip]
    sizes = itertools.cycle(batches)
    i = 0
    while i < len(order):
        batch = order[i:i + next(sizes)]
        i += len(batch)
        update = chain.add_headers(batch, NOW)
        if update.rejected is not None:
            # Its branch was pruned (a stale leaf with little work): resend the branch from the fork.
            assert update.rejected.reason == "prev-blk-not-found" and max_stale < 1000
            refused = builder.get(update.rejected.block_hash)
            assert refused is not None
            resend = [refused.header]
            while resend[-1].prev_block not in chain:
                ancestor = builder.get(resend[-1].prev_block)
                assert ancestor is not None
                resend.append(ancestor.header)
            i = order.index(refused.header) + 1
            again = chain.add_headers(resend[::-1], NOW)
            assert again.rejected is None
            update = _merge(update, again)
            event("a pruned branch was resent")
        if update.reorg_depth:
            event("reorg")
        seen += update.accepted
        for r in update.disconnected:
            assert mirror[-1] == r.hash
            mirror.pop()
        for r in update.connected:
            assert len(mirror) == r.height
            mirror.append(r.hash)
        assert chain.stale_count <= max_stale
        best_work = max(r.chain_work for r in seen)
        assert chain.tip.chain_work == best_work
        # Among equal-work tips the first seen wins.
        assert chain.tip.hash == next(r.hash for r in seen if r.chain_work == best_work)
        assert mirror == [chain.at_height(h).hash for h in range(chain.height + 1)]  # type: ignore[union-attr]
    assert chain.tip.chain_work == max(builder.get(h).chain_work for h in nodes)  # type: ignore[union-attr]
    if chain.height < max(builder.get(h).height for h in nodes):  # type: ignore[union-attr]
        event("the most-work tip is not the highest")


def _merge(a: HeaderUpdate, b: HeaderUpdate) -> HeaderUpdate:
    """Two successive updates as one (for the mirror): b's disconnections may undo a's connections."""
    connected = list(a.connected)
    disconnected = list(a.disconnected)
    for r in b.disconnected:
        if connected and connected[-1].hash == r.hash:
            connected.pop()
        else:
            disconnected.append(r)
    connected += b.connected
    return HeaderUpdate(a.accepted + b.accepted, tuple(disconnected), tuple(connected), a.evicted + b.evicted,
                        None, b.tip)
