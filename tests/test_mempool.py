"""The mempool (base_chain.mempool) against a regtest chain: acceptance, Core's reject reasons,
BIP125 replacement, package limits, CPFP block templates, blocks and reorgs."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from chainutil import KEY, SPK, Harness

from base_chain.block import Block
from base_chain.crypto import N, encode_der, parse_der_lax
from base_chain.mempool import FALLBACK_FEE, Mempool, MempoolLimits, MempoolReject
from base_chain.signing import sign_p2wpkh
from base_chain.templates import multisig, p2pkh, push_data
from base_chain.tx import COIN, OutPoint, Transaction, TxIn, TxOut

RBF = 0xFFFFFFFD  # signals BIP125
FINAL_NO_RBF = 0xFFFFFFFE  # lets nLockTime count, does not signal
Coin = tuple[OutPoint, int]  # an outpoint paying to SPK, and its amount


class Env:
    """A regtest chain with mature coinbases paying to KEY, and a mempool on it."""

    def __init__(self, blocks: int = 130, **mempool_options: object) -> None:
        self.h = Harness()
        self.h.mine(blocks)
        self.chain = self.h.chain
        self.pool = Mempool(self.chain, **mempool_options)  # type: ignore[arg-type]

    @property
    def now(self) -> int:
        return self.chain.tip.header.time + 60

    def coinbase(self, height: int) -> Coin:
        block = self.chain.get_block(self.chain.active[height].hash)
        assert block is not None
        cb = block.transactions[0]
        return OutPoint(cb.txid, 0), cb.outputs[0].amount_sat

    def accept(self, tx: Transaction) -> None:
        self.pool.accept(tx, self.now)

    def reject(self, tx: Transaction) -> MempoolReject:
        with pytest.raises(MempoolReject) as info:
            self.pool.accept(tx, self.now)
        return info.value

    def mine(self, txs: Sequence[Transaction]) -> Block:
        """Mine a block with `txs` on the tip and tell the mempool."""
        fees = sum(self.fee_of(tx) for tx in txs)
        block = self.h.block_on(self.chain.tip, txs, fees)
        events = self.chain.accept_block(block, now=block.header.time)
        self.pool.on_chain_events(events, now=block.header.time)
        return block

    def fee_of(self, tx: Transaction) -> int:
        entry = self.pool.get(tx.txid)
        assert entry is not None
        return entry.fee


def spend(
    coins: Sequence[Coin],
    amounts: Sequence[int] = (),
    *,
    fee: int = 1000,
    sequence: int = RBF,
    locktime: int = 0,
    outputs: Sequence[TxOut] | None = None,
) -> Transaction:
    """A signed spend of P2WPKH coins of KEY; by default one output of everything less `fee`."""
    total = sum(amount for _, amount in coins)
    if outputs is None:
        outs = [TxOut(a, SPK) for a in amounts] or [TxOut(total - fee, SPK)]
    else:
        outs = list(outputs)
    tx = Transaction(2, [TxIn(op, b"", sequence) for op, _ in coins], outs, locktime)
    for i, (_, amount) in enumerate(coins):
        sign_p2wpkh(tx, i, KEY, amount)
    return tx


def out(tx: Transaction, n: int = 0) -> Coin:
    return OutPoint(tx.txid, n), tx.outputs[n].amount_sat


@pytest.fixture
def env() -> Env:
    return Env()


# --- acceptance -----------------------------------------------------------------------------------


def test_accepts_a_p2wpkh_spend_of_a_mature_coinbase(env: Env) -> None:
    coin = env.coinbase(1)
    tx = spend([coin], fee=1000)
    entry = env.pool.accept(tx, env.now)
    assert entry.txid == tx.txid and entry.fee == 1000
    assert entry.vsize == tx.vsize == 110
    assert entry.height == env.chain.height and entry.time == env.now
    assert env.pool.txids() == [tx.txid]
    assert env.pool.spends(coin[0]) == tx.txid
    assert env.pool.spends(OutPoint(tx.txid, 0)) is None
    info = env.pool.info()
    assert (info.size, info.bytes, info.total_fee) == (1, 110, 1000)
    assert info.usage > 0 and info.min_fee_rate == 1000


def test_test_accept_changes_nothing(env: Env) -> None:
    tx = spend([env.coinbase(1)])
    entry = env.pool.test_accept(tx, env.now)
    assert entry.fee == 1000 and len(env.pool) == 0
    env.accept(tx)
    with pytest.raises(MempoolReject, match="txn-already-in-mempool"):
        env.pool.test_accept(tx, env.now)


def test_duplicate(env: Env) -> None:
    tx = spend([env.coinbase(1)])
    env.accept(tx)
    assert env.reject(tx).reason == "txn-already-in-mempool"
    same_txid = tx.copy()
    same_txid.inputs[0].witness = [tx.inputs[0].witness[0][:-1] + b"\x81", tx.inputs[0].witness[1]]
    assert env.reject(same_txid).reason == "txn-same-nonwitness-data-in-mempool"


def test_double_spend_without_signalling(env: Env) -> None:
    coin = env.coinbase(1)
    env.accept(spend([coin], fee=1000, sequence=FINAL_NO_RBF))
    assert env.reject(spend([coin], fee=50_000)).reason == "txn-mempool-conflict"


def test_missing_and_already_known(env: Env) -> None:
    missing = spend([(OutPoint(b"\x42" * 32, 0), 10 * COIN)])
    err = env.reject(missing)
    assert err.reason == "bad-txns-inputs-missingorspent"
    tx = spend([env.coinbase(1)])
    env.accept(tx)
    env.mine([tx])
    assert env.reject(tx).reason == "txn-already-known"


def test_immature_coinbase(env: Env) -> None:
    young = env.coinbase(env.chain.height - 5)
    assert env.reject(spend([young])).reason == "bad-txns-premature-spend-of-coinbase"
    # the youngest coinbase the next block may spend: depth 100 at height tip+1
    env.accept(spend([env.coinbase(env.chain.height + 1 - 100)]))


def test_coinbase_rejected(env: Env) -> None:
    block = env.chain.get_block(env.chain.tip.hash)
    assert block is not None
    assert env.reject(block.transactions[0]).reason == "coinbase"


def test_fee_below_one_sat_per_vbyte(env: Env) -> None:
    err = env.reject(spend([env.coinbase(1)], fee=109))
    assert (err.reason, err.debug) == ("min relay fee not met", "109 < 110")
    env.accept(spend([env.coinbase(1)], fee=110))


def test_dust_output(env: Env) -> None:
    coin = env.coinbase(1)
    assert env.reject(spend([coin], [293, coin[1] - 10_000])).reason == "dust"
    env.accept(spend([coin], [294, coin[1] - 10_000]))


def test_nonstandard_outputs(env: Env) -> None:
    coin = env.coinbase(1)
    bad = spend([coin], outputs=[TxOut(coin[1] - 1000, b"\x76\xa9")])
    assert env.reject(bad).reason == "scriptpubkey"
    data = [TxOut(0, b"\x6a" + push_data(b"a")), TxOut(0, b"\x6a"), TxOut(coin[1] - 1000, SPK)]
    assert env.reject(spend([coin], outputs=data)).reason == "multi-op-return"
    small = spend([coin], outputs=[TxOut(0, b"\x6a")])
    assert env.reject(small).reason == "tx-size-small"


def test_oversize(env: Env) -> None:
    coin = env.coinbase(1)
    big = spend([coin], outputs=[TxOut(coin[1] - 500_000, p2pkh(b"\x02" * 33)), TxOut(0, b"\x6a" * 100_001)])
    assert big.weight > 400_000
    assert env.reject(big).reason == "tx-size"
    huge = spend([coin], outputs=[TxOut(coin[1] - 500_000, b"\x6a" * 1_000_001)])
    assert env.reject(huge).reason == "bad-txns-oversize"


def test_too_many_sigops(env: Env) -> None:
    coin = env.coinbase(1)
    bare = multisig(1, [b"\x02" + bytes([i]) * 32 for i in range(1, 4)])
    outs = [TxOut(1000, bare)] * 200  # 200 * 20 sigops * 4 + 1 (the P2WPKH input) > 16000
    outs.append(TxOut(coin[1] - 1_000_000, SPK))
    err = env.reject(spend([coin], outputs=outs))
    assert (err.reason, err.debug) == ("bad-txns-too-many-sigops", "16001")
    entry = env.pool.accept(spend([coin], outputs=outs[1:]), env.now)
    assert entry.sigop_cost == 15921
    assert entry.vsize == (15921 * 20 + 3) // 4 > entry.tx.vsize  # priced by its sigops


def test_non_final_locktime(env: Env) -> None:
    height = env.chain.height
    err = env.reject(spend([env.coinbase(1)], locktime=height + 1, sequence=FINAL_NO_RBF))
    assert err.reason == "non-final"
    env.accept(spend([env.coinbase(1)], locktime=height, sequence=FINAL_NO_RBF))
    # a locktime does not bind when every input is final
    env.accept(spend([env.coinbase(2)], locktime=height + 50, sequence=0xFFFFFFFF))
    # time locks compare with the tip's median time past
    mtp = env.chain.tip.median_time_past()
    env.accept(spend([env.coinbase(3)], locktime=mtp - 1, sequence=FINAL_NO_RBF))
    assert env.reject(spend([env.coinbase(4)], locktime=mtp, sequence=FINAL_NO_RBF)).reason == "non-final"


def test_non_bip68_final(env: Env) -> None:
    coin = env.coinbase(1)  # next block is at height tip+1; the coin is (tip+1-1) deep
    depth = env.chain.height + 1 - 1
    assert env.reject(spend([coin], sequence=depth + 1)).reason == "non-BIP68-final"
    env.accept(spend([coin], sequence=depth))
    # a relative lock on an unconfirmed parent can never be met in the next block
    parent = spend([env.coinbase(2)])
    env.accept(parent)
    assert env.reject(spend([out(parent)], sequence=1)).reason == "non-BIP68-final"
    env.accept(spend([out(parent)], sequence=0))


def test_bad_signature(env: Env) -> None:
    coin = env.coinbase(1)
    tx = spend([coin])
    tx.outputs[0].amount_sat -= 1  # invalidates the signature
    err = env.reject(tx)
    assert err.reason == "mandatory-script-verify-flag-failed (Signature must be zero for failed CHECK(MULTI)SIG operation)"
    assert len(env.pool) == 0


def test_non_mandatory_script_failure(env: Env) -> None:
    tx = spend([env.coinbase(1)])
    sig, pub = tx.inputs[0].witness
    parsed = parse_der_lax(sig[:-1])
    assert parsed is not None
    r, s = parsed
    tx.inputs[0].witness = [encode_der(r, N - s) + sig[-1:], pub]  # high S: valid, but not LOW_S
    err = env.reject(tx)
    assert err.reason == "non-mandatory-script-verify-flag (Non-canonical signature: S value is unnecessarily high)"


# --- replace-by-fee -------------------------------------------------------------------------------


def test_rbf_replacement(env: Env) -> None:
    coin = env.coinbase(1)
    first = spend([coin], fee=1000)
    env.accept(first)
    child = spend([out(first)], fee=1000)
    env.accept(child)
    # rule 6: the feerate must rise; rule 3: fees must cover everything replaced (2000)
    assert env.reject(spend([coin], fee=999)).reason == "insufficient fee"
    low = env.reject(spend([coin], fee=1500))
    assert low.reason == "insufficient fee" and "less fees than conflicting txs" in low.debug
    # rule 4: plus the replacement's own relay fee (110 sat for 110 vB)
    thin = env.reject(spend([coin], fee=2109))
    assert thin.reason == "insufficient fee" and "not enough additional fees to relay" in thin.debug
    better = spend([coin], fee=2110)
    entry = env.pool.accept(better, env.now)
    assert set(entry.replaced) == {first.txid, child.txid}
    assert env.pool.txids() == [better.txid]
    assert env.pool.spends(coin[0]) == better.txid


def test_rbf_signalling_inherited_from_an_unconfirmed_ancestor(env: Env) -> None:
    parent = spend([env.coinbase(1)], fee=1000, sequence=RBF)
    env.accept(parent)
    child = spend([out(parent)], fee=1000, sequence=FINAL_NO_RBF)
    env.accept(child)
    assert env.pool.is_replaceable(child.txid)
    env.accept(spend([out(parent)], fee=3000, sequence=FINAL_NO_RBF))
    assert child.txid not in env.pool


def test_full_rbf_option() -> None:
    env = Env(full_rbf=True)
    coin = env.coinbase(1)
    env.accept(spend([coin], fee=1000, sequence=FINAL_NO_RBF))
    env.accept(spend([coin], fee=3000, sequence=FINAL_NO_RBF))


def test_replacement_may_not_add_unconfirmed_inputs(env: Env) -> None:
    coin = env.coinbase(1)
    env.accept(spend([coin], fee=1000))
    other = spend([env.coinbase(2)])
    env.accept(other)
    err = env.reject(spend([coin, out(other)], fee=50_000))
    assert err.reason == "replacement-adds-unconfirmed"


def test_replacement_may_not_spend_what_it_replaces(env: Env) -> None:
    parent = spend([env.coinbase(1)], amounts=[10 * COIN, 39 * COIN])
    env.accept(parent)
    child = spend([out(parent, 0)])
    env.accept(child)
    # spends parent:1 and conflicts with ... parent itself (via the coinbase)
    bad = spend([env.coinbase(1), out(parent, 1)], fee=100_000)
    assert env.reject(bad).reason == "bad-txns-spends-conflicting-tx"


def test_too_many_replacements(env: Env) -> None:
    coins = [env.coinbase(h) for h in range(1, 6)]
    for coin in coins:  # 5 roots, each with 4 chains of 5 below it: 105 transactions in all
        root = spend([coin], amounts=[COIN] * 3 + [coin[1] - 3 * COIN - 1000])
        env.accept(root)
        for n in range(4):
            prev = out(root, n)
            for _ in range(5):
                tx = spend([prev], fee=1000)
                env.accept(tx)
                prev = out(tx)
    assert len(env.pool) == 105
    err = env.reject(spend(coins, fee=10 * COIN))
    assert err.reason == "too many potential replacements"
    assert err.debug.endswith("(105 > 100)")
    env.accept(spend(coins[:4], fee=10 * COIN))  # 84 is fine
    assert len(env.pool) == 21 + 1


# --- packages -------------------------------------------------------------------------------------


def test_chain_of_26_is_too_long(env: Env) -> None:
    prev = env.coinbase(1)
    for i in range(25):
        tx = spend([prev], fee=1000)
        env.accept(tx)
        prev = out(tx)
    entry = env.pool.get(tx.txid)
    assert entry is not None and entry.ancestor_count == 25
    err = env.reject(spend([prev], fee=1000))
    assert err.reason == "too-long-mempool-chain"
    assert err.debug == "too many unconfirmed ancestors [limit: 25]"


def test_descendant_limit(env: Env) -> None:
    root = spend([env.coinbase(1)], amounts=[COIN] * 25)
    env.accept(root)
    for n in range(24):
        env.accept(spend([out(root, n)]))
    err = env.reject(spend([out(root, 24)]))
    assert err.reason == "too-long-mempool-chain" and err.debug.startswith("too many descendants for tx")


def test_size_limits_are_configurable() -> None:
    env = Env(limits=MempoolLimits(ancestor_size_vbytes=250))
    a = spend([env.coinbase(1)])
    env.accept(a)
    b = spend([out(a)])
    env.accept(b)  # 220 vB with its ancestor
    err = env.reject(spend([out(b)]))
    assert err.debug == "exceeds ancestor size limit [limit: 250]"


def test_ancestor_and_descendant_aggregates(env: Env) -> None:
    a = spend([env.coinbase(1)], fee=1000)
    env.accept(a)
    b = spend([out(a)], fee=3000)
    env.accept(b)
    ea, eb = env.pool.get(a.txid), env.pool.get(b.txid)
    assert ea is not None and eb is not None
    assert (ea.descendant_count, ea.descendant_fees, ea.descendant_size) == (2, 4000, 220)
    assert (eb.ancestor_count, eb.ancestor_fees, eb.ancestor_size) == (2, 4000, 220)
    assert eb.parents == {a.txid} and ea.children == {b.txid}
    assert env.pool.ancestors(b.txid) == {a.txid} and env.pool.descendants(a.txid) == {b.txid}


def test_cpfp_template_puts_parent_first(env: Env) -> None:
    parent = spend([env.coinbase(1)], fee=110)  # 1 sat/vB
    env.accept(parent)
    other = spend([env.coinbase(2)], fee=110 * 5)  # 5 sat/vB
    env.accept(other)
    child = spend([out(parent)], fee=110 * 20)  # package: 21 * 110 / 220 = 10.5 sat/vB
    env.accept(child)
    template = env.pool.block_template()
    assert [tx.txid for tx in template] == [parent.txid, child.txid, other.txid]
    # room for one package only: the CPFP package wins over the 5 sat/vB transaction
    small = env.pool.block_template(max_weight=4000 + parent.weight + child.weight + 1)
    assert [tx.txid for tx in small] == [parent.txid, child.txid]
    # a floor above the parent's own rate still takes it, through its child
    assert len(env.pool.block_template(min_fee_rate=5000)) == 3


def test_block_removes_confirmed_and_conflicts(env: Env) -> None:
    parent = spend([env.coinbase(1)], fee=110)
    child = spend([out(parent)], fee=2200)
    env.accept(parent)
    env.accept(child)
    coin = env.coinbase(2)
    loser = spend([coin], fee=1000)
    env.accept(loser)
    loser_child = spend([out(loser)], fee=1000)
    env.accept(loser_child)
    winner = spend([coin], fee=500, sequence=FINAL_NO_RBF)  # confirmed elsewhere
    template = env.pool.block_template()
    block = env.h.block_on(env.chain.tip, [parent, child, winner], 110 + 2200 + 500)
    events = env.chain.accept_block(block, now=block.header.time)
    removed = env.pool.on_chain_events(events)
    assert removed == sorted([loser.txid, loser_child.txid])
    assert len(env.pool) == 0
    assert len(template) == 4


def test_mined_template_is_a_valid_block(env: Env) -> None:
    parent = spend([env.coinbase(1)], fee=110)
    env.accept(parent)
    env.accept(spend([out(parent)], fee=5000))
    env.accept(spend([env.coinbase(2)], fee=700))
    block = env.mine(env.pool.block_template())
    assert len(block.transactions) == 4
    assert len(env.pool) == 0
    assert env.chain.tip.hash == block.hash


def test_children_stay_when_parent_confirms(env: Env) -> None:
    parent = spend([env.coinbase(1)])
    env.accept(parent)
    child = spend([out(parent)])
    env.accept(child)
    env.mine([parent])
    entry = env.pool.get(child.txid)
    assert entry is not None and entry.parents == set() and entry.ancestor_count == 1


# --- reorgs ---------------------------------------------------------------------------------------


def test_readd_after_reorg(env: Env) -> None:
    fork_point = env.chain.tip
    a = spend([env.coinbase(1)], fee=1000)
    b = spend([env.coinbase(2)], fee=1000)
    env.accept(a)
    env.accept(b)
    mined = env.mine([a, b])
    later = spend([out(a)], fee=1000)  # spends a confirmed output, stays in the mempool
    env.accept(later)
    # a longer competing chain without a or b
    c1 = env.h.block_on(fork_point, dt=601)
    env.chain.accept_block(c1, now=c1.header.time)
    c2 = env.h.block_on(env.chain.index[c1.hash])
    events = env.chain.accept_block(c2, now=c2.header.time)
    assert [type(e).__name__ for e in events] == ["BlockDisconnected", "BlockConnected", "BlockConnected"]
    assert events[0].block.hash == mined.hash
    env.pool.on_chain_events(events)
    assert set(env.pool.txids()) == {a.txid, b.txid, later.txid}
    entry = env.pool.get(later.txid)
    assert entry is not None and entry.parents == {a.txid} and entry.ancestor_count == 2
    ea = env.pool.get(a.txid)
    assert ea is not None and ea.descendant_count == 2 and ea.children == {later.txid}


def test_readd_one_block_at_a_time(env: Env) -> None:
    parent = spend([env.coinbase(1)])
    env.accept(parent)
    first = env.mine([parent])
    child = spend([out(parent)])
    env.accept(child)
    second = env.mine([child])
    events = env.chain.invalidate_block(first.hash)
    assert [e.block.hash for e in events] == [second.hash, first.hash]
    # hand the blocks back tip first, one call each: the child waits for its parent
    env.pool.readd_disconnected(events[0].block)
    assert len(env.pool) == 0
    env.pool.readd_disconnected(events[1].block)
    assert env.pool.txids() == [parent.txid, child.txid]
    entry = env.pool.get(child.txid)
    assert entry is not None and entry.ancestor_count == 2


def reorg_to(env: Env, fork_point: object, txs: Sequence[Transaction] = (), length: int = 2) -> None:
    """Mine `length` blocks from `fork_point` (the first holding `txs`) and tell the mempool."""
    prev = fork_point
    events = []
    for i in range(length):
        b = env.h.block_on(prev, txs if i == 0 else (), dt=601 if i == 0 else 600)  # type: ignore[arg-type]
        events += env.chain.accept_block(b, now=b.header.time)
        prev = env.chain.index[b.hash]
    assert env.chain.tip is prev
    env.pool.on_chain_events(events)


def test_readd_skips_fee_floors_and_drops_double_spends(env: Env) -> None:
    fork_point = env.chain.tip
    free = spend([env.coinbase(1)], fee=0)  # never relayed, but mined
    assert env.reject(free).reason == "min relay fee not met"
    a = spend([env.coinbase(2)], fee=1000)
    env.accept(a)
    block = env.h.block_on(env.chain.tip, [free, a], 1000)
    env.pool.on_chain_events(env.chain.accept_block(block, now=block.header.time))
    child = spend([out(a)])
    env.accept(child)
    # the new chain confirms a double spend of a's input
    double = spend([env.coinbase(2)], fee=5000, sequence=FINAL_NO_RBF)
    reorg_to(env, fork_point, [double])
    assert env.pool.txids() == [free.txid]  # a is gone, and its child with it


def test_reorg_drops_what_became_invalid(env: Env) -> None:
    fork_point = env.chain.tip
    # a spend of the coinbase of a block that the reorg removes
    block = env.mine([])
    cb = block.transactions[0]
    env.h.mine(99)
    env.pool = Mempool(env.chain)
    spend_cb = spend([(OutPoint(cb.txid, 0), cb.outputs[0].amount_sat)])
    env.accept(spend_cb)
    grandchild = spend([out(spend_cb)])
    env.accept(grandchild)
    reorg_to(env, fork_point, length=101)  # a competing chain from before that block, one longer
    assert len(env.pool) == 0


# --- limits and estimates -------------------------------------------------------------------------


def test_trim_raises_the_minimum_fee() -> None:
    env = Env(max_bytes=3 * 700)  # room for about three small transactions
    cheap = spend([env.coinbase(1)], fee=200)
    env.accept(cheap)
    for height, fee in ((2, 5000), (3, 6000)):
        env.accept(spend([env.coinbase(height)], fee=fee))
    env.accept(spend([env.coinbase(4)], fee=7000))
    assert cheap.txid not in env.pool and len(env.pool) == 3
    floor = env.pool.min_fee(env.now)
    assert floor == 1818 + 1000  # the evicted rate (200 sat / 110 vB) plus the incremental fee
    err = env.reject(spend([env.coinbase(5)], fee=300))
    assert err.reason == "mempool min fee not met"
    assert env.reject(spend([env.coinbase(5)], fee=320)).reason == "mempool full"
    assert env.pool.info(env.now).min_fee_rate == 2909 + 1000  # it was added, then evicted


def test_minimum_fee_decays_after_a_block() -> None:
    env = Env(max_bytes=700)
    env.accept(spend([env.coinbase(1)], fee=500))
    env.accept(spend([env.coinbase(2)], fee=5000))
    floor = env.pool.min_fee(env.now)
    assert floor > 1000
    assert env.pool.min_fee(env.now + 100_000) == floor  # no block yet: no decay
    block = env.mine(env.pool.block_template())
    t = block.header.time
    assert env.pool.min_fee(t + 10) == floor
    assert env.pool.min_fee(t + 3 * 3600) == (floor + 1) // 2  # empty mempool: a 3-hour half-life
    assert env.pool.min_fee(t + 48 * 3600) == 0


def test_expiry() -> None:
    env = Env(expiry_s=3600)
    old = spend([env.coinbase(1)])
    env.pool.accept(old, env.now)
    env.pool.accept(spend([env.coinbase(2)]), env.now + 3601)
    assert old.txid not in env.pool and len(env.pool) == 1


def test_estimate_fee(env: Env) -> None:
    assert env.pool.estimate_fee(1) == FALLBACK_FEE
    txs = [spend([env.coinbase(h)], fee=110 * rate) for h, rate in ((1, 2), (2, 10), (3, 20), (4, 30))]
    for tx in txs:
        env.accept(tx)
    # a block with room for the two best only, then one that takes the rest
    first = env.pool.block_template(max_weight=4000 + txs[2].weight + txs[3].weight + 1)
    env.mine(first)
    assert env.pool.estimate_fee(1) == 20_000
    env.mine(env.pool.block_template())
    assert env.pool.estimate_fee(1) == 20_000  # must clear every recent block
    assert env.pool.estimate_fee(2) == 1000  # clears one block in two


def check_invariants(pool: Mempool) -> None:
    """Every cached aggregate equals a recount from the links, and the links match the inputs."""
    for txid in pool.txids():
        e = pool.get(txid)
        assert e is not None
        assert e.parents == {i.prevout.txid for i in e.tx.inputs if i.prevout.txid in pool}
        assert all(txid in (pool.get(c) or e).parents for c in e.children)
        assert all(pool.spends(i.prevout) == txid for i in e.tx.inputs)
        anc = [pool.get(a) for a in pool.ancestors(txid)]
        desc = [pool.get(d) for d in pool.descendants(txid)]
        assert e.ancestor_count == 1 + len(anc)
        assert e.ancestor_size == e.vsize + sum(a.vsize for a in anc if a)
        assert e.ancestor_fees == e.fee + sum(a.fee for a in anc if a)
        assert e.ancestor_sigops == e.sigop_cost + sum(a.sigop_cost for a in anc if a)
        assert e.descendant_count == 1 + len(desc)
        assert e.descendant_size == e.vsize + sum(d.vsize for d in desc if d)
        assert e.descendant_fees == e.fee + sum(d.fee for d in desc if d)


def test_aggregates_stay_consistent(env: Env) -> None:
    fork_point = env.chain.tip
    roots = [spend([env.coinbase(h)], amounts=[COIN, COIN, env.coinbase(h)[1] - 2 * COIN - 1000]) for h in (1, 2)]
    for r in roots:
        env.accept(r)
    a = spend([out(roots[0], 0), out(roots[1], 0)], fee=2000)  # two parents
    env.accept(a)
    b = spend([out(a)], amounts=[COIN // 2, COIN + COIN // 2 - 5000])
    env.accept(b)
    c = spend([out(b, 0), out(roots[0], 1)], fee=3000)
    env.accept(c)
    d = spend([out(b, 1)], fee=4000)
    env.accept(d)
    check_invariants(env.pool)
    # replace b (and with it c and d)
    b2 = spend([out(a)], fee=20_000)
    env.accept(b2)
    assert c.txid not in env.pool and d.txid not in env.pool
    check_invariants(env.pool)
    # confirm the first root only; then reorg it out again
    env.mine([roots[0]])
    check_invariants(env.pool)
    reorg_to(env, fork_point, length=3)
    assert set(env.pool.txids()) == {roots[0].txid, roots[1].txid, a.txid, b2.txid}
    check_invariants(env.pool)
    env.mine(env.pool.block_template())
    assert len(env.pool) == 0
