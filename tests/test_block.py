"""Headers, blocks, merkle roots, the witness commitment and partial merkle tree proofs."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from base_chain.block import HEADER_SIZE, NULL_HASH, Block, BlockHeader
from base_chain.hashes import hash256
from base_chain.merkle import (
    MAX_PROOF_TRANSACTIONS,
    MerkleBlock,
    MerkleProofError,
    PartialMerkleTree,
    block_merkle_root,
    find_witness_commitment,
    merkle_root,
    witness_commitment,
    witness_commitment_script,
    witness_merkle_root,
)
from base_chain.params import get_params
from base_chain.pow import check_proof_of_work, mine_header
from base_chain.serialize import DeserializationError
from base_chain.templates import p2wpkh, push_int
from base_chain.tx import COIN, OutPoint, Transaction, TxIn, TxOut

# Mainnet block 000000000000dab0130bbcc991d3d7ae6b81aa6f50a798888dfe62337458dc45 (one tx)
# and the merkleblock Core serializes for it (bloom_tests: merkle_block_3_and_serialize).
BLOCK_DAB0_HEX = (
    "0100000079cda856b143d9db2c1caff01d1aecc8630d30625d10e8b4b8b0000000000000b50cc069d6a3e33e3ff8"
    "4a5c41d9d3febe7c770fdcc96b2c3ff60abe184f196367291b4d4c86041b8fa45d630101000000010000000000000"
    "000000000000000000000000000000000000000000000000000ffffffff08044c86041b020a02ffffffff0100f205"
    "2a01000000434104ecd3229b0571c3be876feaac0442a9f13c5a572742927af1dc623353ecf8c202225f64868137a"
    "18cdd85cbbb4c74fbccfd4f49639cf1bdc94a5672bb15ad5d4cac00000000"
)
MERKLEBLOCK_DAB0_HEX = (
    "0100000079cda856b143d9db2c1caff01d1aecc8630d30625d10e8b4b8b0000000000000b50cc069d6a3e33e3ff8"
    "4a5c41d9d3febe7c770fdcc96b2c3ff60abe184f196367291b4d4c86041b8fa45d630100000001b50cc069d6a3e3"
    "3e3ff84a5c41d9d3febe7c770fdcc96b2c3ff60abe184f19630101"
)

# Mainnet blocks 100000 .. 100006 (headers) and the four txids of block 100000.
HEADERS_100000 = [
    "0100000050120119172a610421a6c3011dd330d9df07b63616c2cc1f1cd00200000000006657a9252aacd5c0b2940996ecff952228c3067cc38d4885efb5a4ac4247e9f337221b4d4c86041b0f2b5710",
    "0100000006e533fd1ada86391f3f6c343204b0d278d4aaec1c0b20aa27ba0300000000006abbb3eb3d733a9fe18967fd7d4c117e4ccbbac5bec4d910d900b3ae0793e77f54241b4d4c86041b4089cc9b",
    "0100000090f0a9f110702f808219ebea1173056042a714bad51b916cb6800000000000005275289558f51c9966699404ae2294730c3c9f9bda53523ce50e9b95e558da2fdb261b4d4c86041b1ab1bf93",
    "01000000aff7e0c7dc29d227480c2aa79521419640a161023b51cdb28a3b0100000000003779fc09d638c4c6da0840c41fa625a90b72b125015fd0273f706d61f3be175faa271b4d4c86041b142dca82",
    "01000000e1c5ba3a6817d53738409f5e7229ffd098d481147b002941a7a002000000000077ed2af87aa4f9f450f8dbd15284720c3fd96f565a13c9de42a3c1440b7fc6a50e281b4d4c86041b08aecda2",
    "0100000079cda856b143d9db2c1caff01d1aecc8630d30625d10e8b4b8b0000000000000b50cc069d6a3e33e3ff84a5c41d9d3febe7c770fdcc96b2c3ff60abe184f196367291b4d4c86041b8fa45d63",
    "0100000045dc58743362fe8d8898a7506faa816baed7d391c9bc0b13b0da00000000000021728a2f4f975cc801cb3c672747f1ead8a946b2702b7bd52f7b86dd1aa0c975c02a1b4d4c86041b7b47546d",
]
BLOCK_100000_TXIDS = [
    "8c14f0db3df150123e6f3dbbf30f8b955a8249b62ac1d1ff16284aefa3d06d87",
    "fff2525b8931402dd09222c50775608f75787bd2b87e56995a7bdd30f79702c4",
    "6359f0868171b1d194cbee1af2f16ea598ae8fad666d9b012c8ed2b79a236ec4",
    "e9a66845e05d5abc0ad04ec80f774a7e585c6e8db975962d069a522137b80c1d",
]
BLOCK_100000_ROOT = "f3e94742aca4b5ef85488dc37c06c3282295ffec960994b2c0d5ac2a25a95766"


def rev(hex_str: str) -> bytes:
    """Display-order hex to internal-order bytes."""
    return bytes.fromhex(hex_str)[::-1]


def fake_txids(n: int, seed: int = 0) -> list[bytes]:
    return [hash256(seed.to_bytes(8, "little") + i.to_bytes(8, "little")) for i in range(n)]


# --- headers -----------------------------------------------------------------------


def test_header_round_trip_and_hash() -> None:
    raw = bytes.fromhex(HEADERS_100000[0])
    header = BlockHeader.from_bytes(raw)
    assert header.to_bytes() == raw and len(raw) == HEADER_SIZE
    assert header.hex() == HEADERS_100000[0]
    assert header.version == 1
    assert header.time == 1293623863
    assert header.bits == 0x1B04864C
    assert header.nonce == 274148111
    assert header.merkle_root == rev(BLOCK_100000_ROOT)
    assert header.hash_hex() == "000000000003ba27aa200b1cecaad478d2b00432346c3f1f3986da1afd33e506"
    assert header.hash == hash256(raw)
    assert header.prev_block_hex() == "000000000002d01c1fccc21636b607dfd930d31d01c3a62104612a1719011250"


def test_header_chain_links_and_pow() -> None:
    main_pow = dataclasses.replace(get_params("regtest"), pow_limit=(1 << 224) - 1)
    headers = [BlockHeader.from_hex(h) for h in HEADERS_100000]
    for parent, child in zip(headers, headers[1:]):
        assert child.prev_block == parent.hash
    for header in headers:
        check_proof_of_work(header.hash, header.bits, main_pow)
    assert headers[5].hash_hex() == "000000000000dab0130bbcc991d3d7ae6b81aa6f50a798888dfe62337458dc45"


def test_header_is_immutable_and_hash_cached() -> None:
    header = get_params("regtest").genesis.header
    first = header.hash
    assert header.hash is first
    with pytest.raises(dataclasses.FrozenInstanceError):
        header.nonce = 3  # type: ignore[misc]
    other = dataclasses.replace(header, nonce=header.nonce + 1)
    assert other.hash != first
    assert other.hash == hash256(other.to_bytes())
    assert dataclasses.replace(other, nonce=header.nonce) == header
    assert hash(dataclasses.replace(other, nonce=header.nonce)) == hash(header)


def test_header_rejects_bad_fields_and_bytes() -> None:
    with pytest.raises(ValueError, match="prev_block"):
        BlockHeader(1, b"\x00" * 31, NULL_HASH, 0, 0, 0)
    with pytest.raises(ValueError, match="merkle_root"):
        BlockHeader(1, NULL_HASH, b"", 0, 0, 0)
    with pytest.raises(ValueError, match="version"):
        BlockHeader(2**31, NULL_HASH, NULL_HASH, 0, 0, 0)
    with pytest.raises(ValueError, match="time"):
        BlockHeader(1, NULL_HASH, NULL_HASH, 2**32, 0, 0)
    with pytest.raises(ValueError, match="nonce"):
        BlockHeader(1, NULL_HASH, NULL_HASH, 0, 0, -1)
    raw = bytes.fromhex(HEADERS_100000[0])
    with pytest.raises(DeserializationError):
        BlockHeader.from_bytes(raw[:79])
    with pytest.raises(DeserializationError):
        BlockHeader.from_bytes(raw + b"\x00")
    with pytest.raises(DeserializationError):
        BlockHeader.from_hex("zz")
    assert BlockHeader(-1, NULL_HASH, NULL_HASH, 0, 0, 0).to_bytes()[:4] == b"\xff\xff\xff\xff"


# --- blocks ------------------------------------------------------------------------


def test_real_block_round_trip() -> None:
    raw = bytes.fromhex(BLOCK_DAB0_HEX)
    block = Block.from_bytes(raw)
    assert block.to_bytes() == raw
    assert block.hex() == BLOCK_DAB0_HEX
    assert block.hash_hex() == "000000000000dab0130bbcc991d3d7ae6b81aa6f50a798888dfe62337458dc45"
    assert len(block.transactions) == 1
    assert block.transactions[0].txid_hex() == (
        "63194f18be0af63f2c6bc9dc0f777cbefed3d9415c4af83f3ee3a3d669c00cb5"
    )
    assert block_merkle_root(block) == (block.header.merkle_root, False)
    assert block.size == block.stripped_size == len(raw)
    assert block.weight == 4 * len(raw)
    with pytest.raises(DeserializationError):
        Block.from_bytes(raw + b"\x00")
    with pytest.raises(DeserializationError):
        Block.from_bytes(raw[:-1])
    with pytest.raises(DeserializationError):
        Block.from_hex("not hex")


def make_witness_block(params_name: str = "regtest", extra_txs: int = 2) -> Block:
    """A mined block: a coinbase with a witness commitment, and segwit spends."""
    params = get_params(params_name)
    pubkey = b"\x02" + b"\x11" * 32
    coinbase = Transaction(
        version=2,
        inputs=[TxIn(OutPoint.null(), push_int(1) + b"\x00", witness=[NULL_HASH])],
        outputs=[TxOut(50 * COIN, p2wpkh(pubkey))],
    )
    txs = [coinbase]
    for i in range(extra_txs):
        txs.append(
            Transaction(
                version=2,
                inputs=[TxIn(OutPoint(hash256(bytes([i])), i), b"", 0xFFFFFFFD, [b"\x30" * 71, pubkey])],
                outputs=[TxOut(COIN - 1000 * i, p2wpkh(pubkey))],
            )
        )
    block = Block(BlockHeader(0x20000000, params.genesis_hash, NULL_HASH, params.genesis.header.time + 600, 0x207FFFFF, 0), txs)
    wroot, mutated = witness_merkle_root(block)
    assert not mutated
    coinbase.outputs.append(TxOut(0, witness_commitment_script(wroot, NULL_HASH)))
    root, _ = block_merkle_root(block)
    block.header = mine_header(dataclasses.replace(block.header, merkle_root=root), params)
    return block


def test_witness_block_round_trip_and_weight() -> None:
    block = make_witness_block()
    raw = block.to_bytes()
    again = Block.from_bytes(raw)
    assert again == block
    assert again.to_bytes() == raw
    assert again.hash == block.hash
    stripped = block.to_bytes(include_witness=False)
    assert len(stripped) < len(raw)
    assert block.stripped_size == len(stripped)
    assert block.weight == 3 * len(stripped) + len(raw)
    assert block.weight == 80 * 4 + 4 * 1 + sum(tx.weight for tx in block.transactions)
    # The stripped form parses too, without witnesses and with the same txids.
    bare = Block.from_bytes(stripped)
    assert [tx.txid for tx in bare.transactions] == [tx.txid for tx in block.transactions]
    assert not any(tx.has_witness() for tx in bare.transactions)
    check_proof_of_work(block.hash, block.header.bits, get_params("regtest"))


# --- merkle roots ------------------------------------------------------------------


def test_merkle_root_small_cases() -> None:
    a, b, c = fake_txids(3)
    assert merkle_root([]) == (NULL_HASH, False)
    assert merkle_root([a]) == (a, False)
    assert merkle_root([a, b]) == (hash256(a + b), False)
    assert merkle_root([a, b, c]) == (hash256(hash256(a + b) + hash256(c + c)), False)


def test_block_100000_merkle_root() -> None:
    txids = [rev(t) for t in BLOCK_100000_TXIDS]
    root, mutated = merkle_root(txids)
    assert root == rev(BLOCK_100000_ROOT) and not mutated
    assert root == BlockHeader.from_hex(HEADERS_100000[0]).merkle_root


def test_merkle_root_detects_duplicate_pair_mutation() -> None:
    # CVE-2012-2459: [a b c] and [a b c c] have the same root; the latter is mutated.
    a, b, c = fake_txids(3)
    root3, mutated3 = merkle_root([a, b, c])
    root4, mutated4 = merkle_root([a, b, c, c])
    assert root3 == root4
    assert not mutated3 and mutated4
    # One level up: 6 txids and the same 6 with the last two repeated.
    six = fake_txids(6, seed=1)
    root6, mutated6 = merkle_root(six)
    root8, mutated8 = merkle_root(six + six[4:])
    assert root6 == root8
    assert not mutated6 and mutated8
    # A duplicate that is not in pair position is not this mutation.
    assert merkle_root([a, b, a])[1] is False
    assert merkle_root([a, a, b])[1] is True


def test_block_with_duplicated_transaction_is_flagged() -> None:
    block = make_witness_block(extra_txs=2)
    root, mutated = block_merkle_root(block)
    assert root == block.header.merkle_root and not mutated
    block.transactions.append(block.transactions[-1])
    root2, mutated2 = block_merkle_root(block)
    assert root2 == root and mutated2


# --- witness commitment ------------------------------------------------------------


def test_witness_merkle_root_and_commitment() -> None:
    block = make_witness_block(extra_txs=3)
    leaves = [NULL_HASH] + [tx.wtxid for tx in block.transactions[1:]]
    assert witness_merkle_root(block) == merkle_root(leaves)
    # The coinbase's wtxid does not count: only a coinbase means a zero root.
    only_coinbase = Block(block.header, block.transactions[:1])
    assert witness_merkle_root(only_coinbase) == (NULL_HASH, False)
    assert witness_merkle_root(Block(block.header, [])) == (NULL_HASH, False)

    coinbase = block.transactions[0]
    index = find_witness_commitment(coinbase)
    assert index == 1
    spk = coinbase.outputs[index].script_pubkey
    assert spk.hex().startswith("6a24aa21a9ed") and len(spk) == 38
    # The commitment covers the root of the wtxids *before* the output was added:
    # adding it changes only the coinbase, whose wtxid is taken as zero.
    wroot, _ = witness_merkle_root(block)
    reserved = coinbase.inputs[0].witness[0]
    assert spk[6:] == witness_commitment(wroot, reserved) == hash256(wroot + reserved)
    assert witness_commitment_script(wroot) == spk


def test_find_witness_commitment_takes_the_last_and_needs_38_bytes() -> None:
    commit = witness_commitment_script(b"\x01" * 32)
    coinbase = Transaction(
        inputs=[TxIn(OutPoint.null(), b"\x51\x00")],
        outputs=[
            TxOut(0, commit),
            TxOut(1, p2wpkh(b"\x02" * 33)),
            TxOut(0, commit + b"extra"),
            TxOut(0, commit[:37]),
        ],
    )
    assert find_witness_commitment(coinbase) == 2
    coinbase.outputs = coinbase.outputs[1:2] + coinbase.outputs[3:]
    assert find_witness_commitment(coinbase) is None
    with pytest.raises(ValueError):
        witness_commitment(b"\x00" * 31)


# --- partial merkle trees ----------------------------------------------------------


def test_core_merkleblock_vector() -> None:
    block = Block.from_hex(BLOCK_DAB0_HEX)
    txid = block.transactions[0].txid
    proof = MerkleBlock.from_block(block, [txid])
    assert proof.hex() == MERKLEBLOCK_DAB0_HEX
    parsed = MerkleBlock.from_hex(MERKLEBLOCK_DAB0_HEX)
    assert parsed == proof
    result = parsed.verify()
    assert result.txids == (txid,)
    assert result.indexes == (0,)
    assert result.root == block.header.merkle_root


def test_block_100000_proofs_for_each_subset() -> None:
    txids = [rev(t) for t in BLOCK_100000_TXIDS]
    header = BlockHeader.from_hex(HEADERS_100000[0])
    for mask in range(16):
        matches = [bool(mask >> i & 1) for i in range(4)]
        tree = PartialMerkleTree.build(txids, matches)
        proof = MerkleBlock.from_bytes(MerkleBlock(header, tree).to_bytes())
        result = proof.verify()
        assert list(result.txids) == [t for t, m in zip(txids, matches) if m]
        assert list(result.indexes) == [i for i, m in enumerate(matches) if m]


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_partial_merkle_tree_property(data: st.DataObject) -> None:
    n = data.draw(st.one_of(st.integers(1, 40), st.integers(41, 700)), label="n")
    txids = fake_txids(n, seed=data.draw(st.integers(0, 2**32), label="seed"))
    matches = data.draw(st.lists(st.booleans(), min_size=n, max_size=n), label="matches")
    root, _ = merkle_root(txids)

    tree = PartialMerkleTree.build(txids, matches)
    raw = tree.to_bytes()
    parsed = PartialMerkleTree.from_bytes(raw)
    assert parsed.to_bytes() == raw
    result = parsed.extract_matches()
    assert result.root == root
    assert list(result.txids) == [t for t, m in zip(txids, matches) if m]
    assert list(result.indexes) == [i for i, m in enumerate(matches) if m]
    assert len(tree.hashes) <= n

    # Damaging any hash breaks the proof: an error, another root or other matches.
    if parsed.hashes:
        i = data.draw(st.integers(0, len(parsed.hashes) - 1), label="damaged hash")
        bit = data.draw(st.integers(0, 255), label="bit")
        damaged_hash = bytearray(parsed.hashes[i])
        damaged_hash[bit // 8] ^= 1 << (bit % 8)
        hashes = parsed.hashes[:i] + (bytes(damaged_hash),) + parsed.hashes[i + 1 :]
        damaged = dataclasses.replace(parsed, hashes=hashes)
        try:
            bad = damaged.extract_matches()
        except MerkleProofError:
            pass
        else:
            assert (bad.root, bad.txids) != (result.root, result.txids)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 12), st.data())
def test_merkle_block_from_real_block(extra_txs: int, data: st.DataObject) -> None:
    block = make_witness_block(extra_txs=extra_txs)
    all_txids = [tx.txid for tx in block.transactions]
    wanted = data.draw(st.sets(st.sampled_from(all_txids)))
    proof = MerkleBlock.from_block(block, wanted)
    result = MerkleBlock.from_hex(proof.hex()).verify()
    assert set(result.txids) == wanted
    assert list(result.txids) == [t for t in all_txids if t in wanted]


def test_merkle_block_rejects_missing_txid_and_wrong_root() -> None:
    block = make_witness_block()
    with pytest.raises(ValueError, match="not in block"):
        MerkleBlock.from_block(block, [b"\x42" * 32])
    proof = MerkleBlock.from_block(block, [block.transactions[1].txid])
    other_header = dataclasses.replace(block.header, merkle_root=b"\x01" * 32)
    wrong = MerkleBlock(other_header, proof.tree)
    assert wrong.extract().txids == (block.transactions[1].txid,)
    with pytest.raises(MerkleProofError, match="does not match"):
        wrong.verify()


def _tree(n: int, hashes: list[bytes], flags: list[bool]) -> PartialMerkleTree:
    return PartialMerkleTree(n, tuple(hashes), tuple(flags))


def test_malformed_proofs_are_rejected() -> None:
    txids = fake_txids(5)
    good = PartialMerkleTree.build(txids, [False, True, False, False, True])
    good.extract_matches()
    cases: list[tuple[PartialMerkleTree, str]] = [
        (_tree(0, [], []), "no transactions"),
        (_tree(MAX_PROOF_TRANSACTIONS + 1, [txids[0]], [True]), "more than a block can hold"),
        (_tree(1, txids[:2], [False] * 8), "2 hashes for 1 transactions"),
        (_tree(5, txids[:3], [True, True]), "2 flag bits for 3 hashes"),
        # Flags run out before the walk is done.
        (_tree(5, list(good.hashes), list(good.flags[:4])), "flag bits|ran out of flag bits"),
        # A hash too few.
        (_tree(5, list(good.hashes[:-1]), list(good.flags)), "ran out of hashes"),
        # A hash too many.
        (_tree(5, list(good.hashes) + [txids[0]], list(good.flags)), "hashes not consumed"),
        # A whole extra byte of flag bits.
        (_tree(5, list(good.hashes), list(good.flags) + [False] * 16), "flag bits not consumed"),
    ]
    for tree, reason in cases:
        with pytest.raises(MerkleProofError, match=reason):
            tree.extract_matches()


def test_padding_bits_within_the_last_byte_are_tolerated() -> None:
    # Core only checks that the used bits fill the same number of bytes.
    txids = fake_txids(3)
    good = PartialMerkleTree.build(txids, [True, False, False])
    assert len(good.flags) == 8 and good == PartialMerkleTree.from_bytes(good.to_bytes())
    used = 5  # root, its left child, two leaves, its right child (pruned)
    assert not any(good.flags[used:])
    unpadded = dataclasses.replace(good, flags=good.flags[:used])
    assert unpadded.to_bytes() == good.to_bytes()
    assert unpadded.extract_matches() == good.extract_matches()
    set_padding = dataclasses.replace(good, flags=good.flags[:used] + (True, True))
    assert set_padding.extract_matches() == good.extract_matches()


def test_duplicate_pair_malleability_is_rejected() -> None:
    # Core's pmt_malleability: txids 1..10 then 9, 10 again; matching the 10th and 11th.
    txids = [i.to_bytes(32, "little") for i in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 9, 10]]
    matches = [False] * 9 + [True, True, False]
    tree = PartialMerkleTree.build(txids, matches)
    with pytest.raises(MerkleProofError, match="identical left and right"):
        tree.extract_matches()


def test_partial_merkle_tree_serialization_errors() -> None:
    good = PartialMerkleTree.build(fake_txids(4), [True, False, False, True]).to_bytes()
    with pytest.raises(DeserializationError):
        PartialMerkleTree.from_bytes(good[:-1])
    with pytest.raises(DeserializationError):
        PartialMerkleTree.from_bytes(good + b"\x00")
    # Announcing more hashes than the bytes hold fails before reading them.
    with pytest.raises(DeserializationError, match="hashes announced"):
        PartialMerkleTree.from_bytes(good[:4] + b"\xfe\x00\x00\x00\x01")
    with pytest.raises(DeserializationError):
        MerkleBlock.from_hex("00")
    with pytest.raises(DeserializationError):
        MerkleBlock.from_hex("xyz")
    with pytest.raises(ValueError):
        PartialMerkleTree.build([], [])
    with pytest.raises(ValueError):
        PartialMerkleTree.build(fake_txids(2), [True])
    with pytest.raises(ValueError):
        PartialMerkleTree(1, (b"\x00" * 31,), (True,))
