"""The wallet core driven by an in-memory regtest chain (tests/chainutil.Harness)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from base_chain.address import address_to_script, script_to_address
from base_chain.block import Block
from base_chain.chainstate import BlockConnected, BlockDisconnected, ChainEvent, block_subsidy
from base_chain.checks import verify_input_scripts
from base_chain.keychain import CHANGE, RECEIVE, Keychain
from base_chain.miner import assemble_block, mine_block
from base_chain.params import get_params
from base_chain.script import STANDARD_FLAGS
from base_chain.signing import sign_p2wpkh
from base_chain.templates import p2wpkh
from base_chain.tx import COIN, OutPoint, Transaction, TxIn, TxOut
from base_chain.wallet import (
    ABANDONED,
    CONFIRMED,
    GAP_LIMIT,
    INACTIVE,
    MEMPOOL,
    REPLACED,
    SEQUENCE_NO_RBF,
    SEQUENCE_RBF,
    Balances,
    ChainSyncError,
    Wallet,
    WalletError,
    _bnb,
    _Coin,
)
from chainutil import KEY, SPK, Harness

SUBSIDY = 50 * COIN
OTHER_SPK = p2wpkh(bytes.fromhex("02" + "11" * 32))


class Env:
    """A regtest chain plus wallets that see every chain event."""

    def __init__(self, tmp_path: Path, chain: str = "regtest", wallets: int = 1) -> None:
        self.tmp_path = tmp_path
        self.h = Harness(chain)
        self.params = self.h.params
        self.wallets = [Wallet.open(tmp_path / f"w{i}.db", self.params) for i in range(wallets)]
        self.blocks: dict[int, Block] = {}
        self.extra = 10_000

    @property
    def w(self) -> Wallet:
        return self.wallets[0]

    @property
    def tip(self) -> int:
        return self.h.chain.height

    def feed(self, events: Sequence[ChainEvent]) -> None:
        for ev in events:
            for wallet in self.wallets:
                if isinstance(ev, BlockConnected):
                    wallet.block_connected(ev.block, ev.index.height)
                else:
                    assert isinstance(ev, BlockDisconnected)
                    wallet.block_disconnected(ev.block, ev.index.height)
            if isinstance(ev, BlockConnected):
                self.blocks[ev.index.height] = ev.block

    def mine(self, n: int = 1, spk: bytes = SPK, txs: Sequence[Transaction] = ()) -> list[Block]:
        out = []
        for i in range(n):
            prev = self.h.chain.tip
            height = prev.height + 1
            self.extra += 1
            time = prev.header.time + 600
            block = assemble_block(
                prev.hash, height, time, self.h.chain.next_expected_bits(prev, time), spk,
                block_subsidy(height, self.params), txs if i == 0 else (), extra_nonce=self.extra,
            )
            block = mine_block(block, self.params)
            self.feed(self.h.chain.accept_block(block, now=time))
            out.append(block)
        return out

    def fund(self, wallet: Wallet | None = None, coins: int = 1) -> None:
        """Mine `coins` blocks paying the wallet, then 100 more so they are spendable."""
        wallet = wallet or self.w
        for _ in range(coins):
            self.mine(1, _spk(wallet))
        self.mine(100)

    def spent_outputs(self, tx: Transaction) -> list[TxOut]:
        outs = []
        for txin in tx.inputs:
            coin = self.h.chain.get_coin(txin.prevout)
            assert coin is not None, f"{txin.prevout} is not in the UTXO set"
            outs.append(coin.output)
        return outs

    def verify(self, tx: Transaction) -> int:
        """Scripts check under standard flags; returns the fee."""
        spent = self.spent_outputs(tx)
        verify_input_scripts(tx, spent, STANDARD_FLAGS)
        return sum(o.amount_sat for o in spent) - sum(o.amount_sat for o in tx.outputs)


def _spk(wallet: Wallet) -> bytes:
    return address_to_script(wallet.get_new_address(), wallet.params.address_prefixes)


def _addr(spk: bytes, env: Env) -> str:
    addr = script_to_address(spk, env.params.address_prefixes)
    assert addr is not None
    return addr


def _mature_harness_coin(env: Env) -> OutPoint:
    """A spendable coinbase output of the harness key (KEY / SPK)."""
    for height in range(1, env.tip - 98):  # spendable in the next block
        cb = env.blocks[height].transactions[0]
        op = OutPoint(cb.txid, 0)
        coin = env.h.chain.get_coin(op)
        if coin is not None and coin.output.script_pubkey == SPK:
            return op
    raise AssertionError("no mature harness coin")


def _pay_from_harness(env: Env, outputs: list[TxOut]) -> Transaction:
    op = _mature_harness_coin(env)
    coin = env.h.chain.get_coin(op)
    assert coin is not None
    change = coin.output.amount_sat - sum(o.amount_sat for o in outputs) - 1000
    tx = Transaction(2, [TxIn(op, b"", SEQUENCE_RBF)], [*outputs, TxOut(change, SPK)], 0)
    sign_p2wpkh(tx, 0, KEY, coin.output.amount_sat)
    return tx


# --- addresses ------------------------------------------------------------------------------------


def test_new_addresses_are_bech32_for_the_chain_and_unique_across_reopen(tmp_path: Path) -> None:
    regtest = Wallet.open(tmp_path / "r.db", get_params("regtest"))
    alpha = Wallet.open(tmp_path / "a.db", get_params("alpha"))
    seen = {regtest.get_new_address() for _ in range(5)}
    assert len(seen) == 5 and all(a.startswith("bcrt1q") for a in seen)
    assert alpha.get_new_address().startswith("alpha1q")
    # No close(): a crash right after the address was handed out.
    again = Wallet.open(tmp_path / "r.db", get_params("regtest"))
    assert again.seed_hex() == regtest.seed_hex()
    more = {again.get_new_address() for _ in range(5)}
    assert not more & seen
    with pytest.raises(WalletError, match="belongs to chain 'regtest'"):
        Wallet.open(tmp_path / "r.db", get_params("alpha"))
    with pytest.raises(WalletError, match="different seed"):
        Wallet.open(tmp_path / "r.db", get_params("regtest"), seed=b"\x01" * 32)
    assert "seed" not in repr(regtest).replace("<secret>", "") and regtest.seed_hex() not in repr(regtest)


def test_addresses_follow_bip84_and_change_scripts_are_mine(tmp_path: Path) -> None:
    env = Env(tmp_path)
    keychain = Keychain(bytes.fromhex(env.w.seed_hex()), 1)
    assert env.w.get_new_address() == _addr(keychain.script_pubkey(RECEIVE, 0), env)
    change = env.w.get_change_script()
    assert change == keychain.script_pubkey(CHANGE, 0)
    assert env.w.is_mine(change) and not env.w.is_mine(SPK)
    assert env.w.is_mine(keychain.script_pubkey(RECEIVE, GAP_LIMIT))  # lookahead
    assert env.w.get_change_script() != change


# --- receiving and maturity --------------------------------------------------------------------------


def test_coinbase_is_immature_for_100_blocks_then_confirmed(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.mine(1, _spk(env.w))
    assert env.w.balances(env.tip) == Balances(0, 0, SUBSIDY, 0)
    assert env.w.transactions()[0].category == "immature"
    assert env.w.list_unspent(env.tip) == []
    env.mine(99)
    assert env.w.balances(env.tip).immature_sat == SUBSIDY
    with pytest.raises(WalletError, match="Insufficient funds"):
        env.w.send_to_address(_addr(SPK, env), COIN, 1.0, env.tip)
    env.mine(1)
    assert env.w.balances(env.tip) == Balances(SUBSIDY, 0, 0, 0)
    [coin] = env.w.list_unspent(env.tip)
    assert coin.confirmations == 101 and coin.spendable and coin.solvable and coin.safe
    assert coin.address is not None and coin.address.startswith("bcrt1")
    [entry] = env.w.transactions()
    assert entry.category == "generate" and entry.amount_sat == SUBSIDY and entry.height == 1
    assert env.w.best_block() == (env.h.chain.tip.hash, env.tip)


# --- sending -------------------------------------------------------------------------------------------


def test_send_to_address_builds_a_valid_transaction_that_a_block_accepts(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.fund()
    tip = env.tip
    tx = env.w.send_to_address(_addr(OTHER_SPK, env), COIN, 2.0, tip)
    fee = env.verify(tx)
    assert tx.locktime == tip and all(i.sequence == SEQUENCE_RBF for i in tx.inputs)
    assert 2 * tx.vsize <= fee <= 2 * (tx.vsize + len(tx.inputs))  # the witness was estimated at worst case
    paid = [o for o in tx.outputs if o.script_pubkey == OTHER_SPK]
    change = [o for o in tx.outputs if env.w.is_mine(o.script_pubkey)]
    assert [o.amount_sat for o in paid] == [COIN]
    assert [o.amount_sat for o in change] == [SUBSIDY - COIN - fee]
    # Nothing is recorded before commit.
    assert env.w.balances(tip) == Balances(SUBSIDY, 0, 0, 0)
    env.w.commit(tx)
    assert env.w.balances(tip) == Balances(0, SUBSIDY - COIN - fee, 0, 0)
    assert env.w.unconfirmed_transactions() == [tx]
    [unconf] = env.w.list_unspent(tip, min_conf=0)
    assert unconf.confirmations == 0 and unconf.safe
    env.mine(1, txs=[tx])
    assert env.h.chain.tip.height == tip + 1  # the chain accepted it
    assert env.w.balances(env.tip) == Balances(SUBSIDY - COIN - fee, 0, 0, 0)
    sent = env.w.transactions()[-1]
    assert sent.txid == tx.txid and sent.category == "send" and sent.state == CONFIRMED
    assert sent.amount_sat == -(COIN + fee) and sent.fee_sat == fee and sent.confirmations == 1


def test_change_is_spendable_and_coin_selection_prefers_confirmed(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.fund(coins=2)
    first = env.w.send_to_address(_addr(OTHER_SPK, env), COIN, 1.0, env.tip)
    env.w.commit(first)
    # The second payment takes the other confirmed coin, not the fresh change.
    second = env.w.send_to_address(_addr(OTHER_SPK, env), COIN, 1.0, env.tip)
    assert not {i.prevout.txid for i in second.inputs} & {first.txid}
    env.w.commit(second)
    # Now only unconfirmed change is left: our own, so it may be spent.
    third = env.w.send_to_address(_addr(OTHER_SPK, env), COIN, 1.0, env.tip)
    assert third.inputs[0].prevout.txid in (first.txid, second.txid)
    env.w.commit(third)
    env.mine(1, txs=[first, second, third])
    assert env.w.balances(env.tip).confirmed_sat == 2 * SUBSIDY - 3 * COIN - sum(
        t.fee_sat or 0 for t in env.w.transactions() if t.category == "send"
    )


def test_dust_change_goes_to_the_fee(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.fund()
    rate = 1.0
    vsize_no_change = 110  # 1 P2WPKH input, 1 P2WPKH output, 72-byte signature estimate
    amount = SUBSIDY - vsize_no_change - 200  # the 200 left over is below the dust threshold
    tx = env.w.send_to_address(_addr(OTHER_SPK, env), amount, rate, env.tip)
    assert len(tx.outputs) == 1 and tx.outputs[0].amount_sat == amount
    assert env.verify(tx) == vsize_no_change + 200


def test_subtract_fee_from_outputs(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.fund()
    tx = env.w.send_to_address(_addr(OTHER_SPK, env), SUBSIDY, 3.0, env.tip, subtract_fee=True)
    fee = env.verify(tx)
    assert len(tx.outputs) == 1 and tx.outputs[0].amount_sat == SUBSIDY - fee
    assert fee >= 3 * tx.vsize
    tx2 = env.w.send_to_address(_addr(OTHER_SPK, env), 10 * COIN, 3.0, env.tip, subtract_fee=True)
    fee2 = env.verify(tx2)
    assert sorted(o.amount_sat for o in tx2.outputs) == sorted([10 * COIN - fee2, 40 * COIN])


def test_create_transaction_with_several_outputs_and_no_rbf(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.fund(coins=3)
    outputs = [TxOut(60 * COIN, OTHER_SPK), TxOut(5000, SPK)]
    tx = env.w.create_transaction(outputs, 1.5, env.tip, replaceable=False, locktime=7)
    assert len(tx.inputs) == 2 and tx.locktime == 7
    assert all(i.sequence == SEQUENCE_NO_RBF for i in tx.inputs)
    env.verify(tx)
    env.w.commit(tx)
    env.mine(1, txs=[tx])
    assert env.h.chain.height == env.tip and env.w.best_block() == (env.h.chain.tip.hash, env.tip)


def test_spending_errors_use_bitcoind_wording(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.fund()
    w, tip = env.w, env.tip
    with pytest.raises(WalletError, match="Insufficient funds"):
        w.send_to_address(_addr(OTHER_SPK, env), SUBSIDY, 1.0, tip)
    with pytest.raises(WalletError, match="Insufficient funds"):
        w.send_to_address(_addr(OTHER_SPK, env), 51 * COIN, 1.0, tip)
    with pytest.raises(WalletError, match="Invalid address: wrong network"):
        w.send_to_address("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", COIN, 1.0, tip)
    alpha_addr = script_to_address(OTHER_SPK, get_params("alpha").address_prefixes)
    assert alpha_addr is not None
    with pytest.raises(WalletError, match="Invalid address: wrong network"):
        w.send_to_address(alpha_addr, COIN, 1.0, tip)
    with pytest.raises(WalletError, match="Invalid address"):
        w.send_to_address("bcrt1qnotanaddress", COIN, 1.0, tip)
    with pytest.raises(WalletError, match="Invalid amount"):
        w.send_to_address(_addr(OTHER_SPK, env), 0, 1.0, tip)
    with pytest.raises(WalletError, match="Invalid amount"):
        w.send_to_address(_addr(OTHER_SPK, env), -5, 1.0, tip)
    with pytest.raises(WalletError, match="Transaction amount too small"):
        w.send_to_address(_addr(OTHER_SPK, env), 293, 1.0, tip)
    env.verify(w.send_to_address(_addr(OTHER_SPK, env), 294, 1.0, tip))
    with pytest.raises(WalletError, match="too small to send after the fee has been deducted"):
        w.send_to_address(_addr(OTHER_SPK, env), 400, 1.0, tip, subtract_fee=True)
    with pytest.raises(WalletError, match="lower than the minimum fee rate"):
        w.send_to_address(_addr(OTHER_SPK, env), COIN, 0.5, tip)
    with pytest.raises(WalletError, match=r"Fee exceeds maximum configured by user \(e.g. -maxtxfee, maxfeerate\)"):
        w.send_to_address(_addr(OTHER_SPK, env), COIN, 100_000.0, tip)
    with pytest.raises(WalletError, match="at least one recipient"):
        w.create_transaction([], 1.0, tip)
    assert w.balances(tip) == Balances(SUBSIDY, 0, 0, 0)


# --- bumpfee --------------------------------------------------------------------------------------------


def test_bump_fee_replaces_with_same_inputs_and_higher_fee(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.fund()
    tip = env.tip
    tx = env.w.send_to_address(_addr(OTHER_SPK, env), COIN, 2.0, tip)
    old_fee = env.verify(tx)
    env.w.commit(tx)
    with pytest.raises(WalletError, match="Insufficient total fee"):
        env.w.bump_fee(tx.txid, 2.5, tip)
    bumped = env.w.bump_fee(tx.txid, 10.0, tip)
    new_fee = env.verify(bumped)
    assert [i.prevout for i in bumped.inputs] == [i.prevout for i in tx.inputs]
    assert all(i.sequence == SEQUENCE_RBF for i in bumped.inputs) and bumped.locktime == tx.locktime
    assert [o for o in bumped.outputs if o.script_pubkey == OTHER_SPK] == [TxOut(COIN, OTHER_SPK)]
    assert new_fee >= 10 * bumped.vsize and new_fee >= old_fee + bumped.vsize
    old_change = next(o for o in tx.outputs if env.w.is_mine(o.script_pubkey))
    new_change = next(o for o in bumped.outputs if env.w.is_mine(o.script_pubkey))
    assert new_change.script_pubkey == old_change.script_pubkey
    assert new_change.amount_sat == old_change.amount_sat - (new_fee - old_fee)
    # The node's mempool takes the replacement and drops the original.
    env.w.commit(bumped)
    env.w.mempool_removed(tx.txid)
    states = {t.txid: t for t in env.w.transactions()}
    assert states[tx.txid].state == REPLACED and states[tx.txid].replaced_by == bumped.txid
    assert states[bumped.txid].replaces == tx.txid
    assert env.w.balances(tip) == Balances(0, new_change.amount_sat, 0, 0)
    with pytest.raises(WalletError, match="which was already bumped by transaction " + bumped.txid_hex()):
        env.w.bump_fee(tx.txid, 20.0, tip)
    env.mine(1, txs=[bumped])
    assert env.w.balances(env.tip) == Balances(new_change.amount_sat, 0, 0, 0)
    with pytest.raises(WalletError, match="Transaction has been mined, or is conflicted with a mined transaction"):
        env.w.bump_fee(bumped.txid, 20.0, env.tip)
    with pytest.raises(WalletError, match="Invalid or non-wallet transaction id"):
        env.w.bump_fee(b"\x42" * 32, 20.0, env.tip)


def test_bump_fee_adds_inputs_when_there_is_no_change(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.fund(coins=2)
    tx = env.w.send_to_address(_addr(OTHER_SPK, env), SUBSIDY, 1.0, env.tip, subtract_fee=True)
    assert len(tx.inputs) == 1 and len(tx.outputs) == 1
    env.w.commit(tx)
    bumped = env.w.bump_fee(tx.txid, 5.0, env.tip)
    fee = env.verify(bumped)
    assert bumped.inputs[0].prevout == tx.inputs[0].prevout and len(bumped.inputs) == 2
    assert bumped.outputs[[o.script_pubkey for o in bumped.outputs].index(OTHER_SPK)] == tx.outputs[0]
    assert fee >= 5 * bumped.vsize


def test_bump_fee_refusals(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.fund()
    final = env.w.create_transaction([TxOut(COIN, OTHER_SPK)], 1.0, env.tip, replaceable=False)
    env.w.commit(final)
    with pytest.raises(WalletError, match="Transaction is not BIP 125 replaceable"):
        env.w.bump_fee(final.txid, 5.0, env.tip)
    child = env.w.send_to_address(_addr(OTHER_SPK, env), 2 * COIN, 1.0, env.tip)
    assert [i.prevout.txid for i in child.inputs] == [final.txid]  # the only coin left is its change
    env.w.commit(child)
    with pytest.raises(WalletError, match="Transaction has descendants in the wallet"):
        env.w.bump_fee(final.txid, 5.0, env.tip)
    incoming = _pay_from_harness(env, [TxOut(COIN, _spk(env.w))])
    env.w.mempool_added(incoming)
    with pytest.raises(WalletError, match="Transaction contains inputs that don't belong to this wallet"):
        env.w.bump_fee(incoming.txid, 5.0, env.tip)


# --- mempool events, abandon -------------------------------------------------------------------------


def test_incoming_payment_through_the_mempool(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.mine(101)
    spk = _spk(env.w)
    tx = _pay_from_harness(env, [TxOut(3 * COIN, spk)])
    env.w.mempool_added(tx)
    assert env.w.balances(env.tip) == Balances(0, 3 * COIN, 0, 0)
    [coin] = env.w.list_unspent(env.tip, min_conf=0)
    assert coin.confirmations == 0 and not coin.safe  # someone else's unconfirmed transaction
    with pytest.raises(WalletError, match="Insufficient funds"):
        env.w.send_to_address(_addr(OTHER_SPK, env), COIN, 1.0, env.tip)  # not safe to spend
    env.w.mempool_removed(tx.txid)
    assert env.w.balances(env.tip) == Balances(0, 0, 0, 0)
    assert env.w.transactions()[0].state == INACTIVE
    env.w.mempool_added(tx)
    env.mine(1, txs=[tx])
    assert env.w.balances(env.tip) == Balances(3 * COIN, 0, 0, 0)
    entry = env.w.transactions()[0]
    assert entry.category == "receive" and entry.amount_sat == 3 * COIN and entry.fee_sat is None


def test_abandon_releases_inputs(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.fund()
    tx = env.w.send_to_address(_addr(OTHER_SPK, env), COIN, 1.0, env.tip)
    env.w.commit(tx)
    child = env.w.send_to_address(_addr(OTHER_SPK, env), COIN, 1.0, env.tip)
    env.w.commit(child)
    env.w.mempool_removed(tx.txid)
    env.w.mempool_removed(child.txid)
    # Evicted transactions keep their inputs reserved ...
    with pytest.raises(WalletError, match="Insufficient funds"):
        env.w.send_to_address(_addr(OTHER_SPK, env), COIN, 1.0, env.tip)
    # ... until abandoned (with their descendants).
    env.w.abandon(tx.txid)
    states = {t.txid: t.state for t in env.w.transactions()}
    assert states[tx.txid] == ABANDONED and states[child.txid] == ABANDONED
    assert env.w.balances(env.tip) == Balances(SUBSIDY, 0, 0, 0)
    assert env.w.unconfirmed_transactions() == []
    with pytest.raises(WalletError, match="Invalid or non-wallet transaction id"):
        env.w.abandon(b"\x00" * 32)
    # If it confirms anyway, the block wins.
    env.mine(1, txs=[tx])
    assert {t.txid: t.state for t in env.w.transactions()}[tx.txid] == CONFIRMED
    with pytest.raises(WalletError, match="Transaction not eligible for abandonment"):
        env.w.abandon(tx.txid)


# --- reorgs -------------------------------------------------------------------------------------------


def test_reorg_unconfirms_payment_and_drops_coinbase(tmp_path: Path) -> None:
    env = Env(tmp_path, wallets=2)
    payer, payee = env.wallets
    env.fund(payer)
    tx = payer.send_to_address(payee.get_new_address(), 7 * COIN, 1.0, env.tip)
    payer.commit(tx)
    payee.mempool_added(tx)
    [block] = env.mine(1, spk=_spk(payee), txs=[tx])
    assert payee.balances(env.tip) == Balances(7 * COIN, 0, SUBSIDY, 0)
    # The block is disconnected (invalidateblock); no other branch yet.
    env.feed(env.h.chain.invalidate_block(block.hash))
    assert payee.best_block() == (block.header.prev_block, env.tip)
    assert payee.balances(env.tip) == Balances(0, 7 * COIN, 0, 0)
    states = {t.txid: t for t in payee.transactions()}
    assert states[tx.txid].state == MEMPOOL and states[tx.txid].height is None
    assert states[block.transactions[0].txid].category == "orphan"
    assert {t.txid: t.state for t in payer.transactions()}[tx.txid] == MEMPOOL
    # The payment confirms again on the new branch.
    env.mine(1, txs=[tx])
    assert payee.balances(env.tip) == Balances(7 * COIN, 0, 0, 0)
    assert payer.best_block() == payee.best_block() == (env.h.chain.tip.hash, env.tip)


def test_reorg_to_a_longer_branch(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.fund()
    fork = env.h.chain.tip
    tx = env.w.send_to_address(_addr(OTHER_SPK, env), COIN, 1.0, env.tip)
    env.w.commit(tx)
    env.mine(1, txs=[tx])
    assert env.w.transactions()[-1].state == CONFIRMED
    # A competing branch of two blocks without the payment.
    b1 = env.h.block_on(fork, dt=601)
    env.feed(env.h.chain.accept_block(b1, now=b1.header.time))
    b2 = env.h.block_on(env.h.chain.index[b1.hash], dt=601)
    env.feed(env.h.chain.accept_block(b2, now=b2.header.time))
    assert env.h.chain.tip.hash == b2.hash
    assert env.w.best_block() == (b2.hash, fork.height + 2)
    assert env.w.transactions()[-1].state == MEMPOOL


def test_events_must_follow_the_best_block(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.mine(3)
    with pytest.raises(ChainSyncError):
        env.w.block_connected(env.blocks[2], 2)
    with pytest.raises(ChainSyncError):
        env.w.block_disconnected(env.blocks[2], 2)
    env.w.block_connected(env.blocks[3], 3)  # the best block again: ignored


# --- crash safety and restore ----------------------------------------------------------------------------


def _snapshot(w: Wallet, tip: int) -> tuple[object, ...]:
    return (w.best_block(), w.balances(tip), w.list_unspent(tip, min_conf=0), w.transactions(tip))


def test_reopen_gives_the_same_state(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.fund(coins=2)
    tx = env.w.send_to_address(_addr(OTHER_SPK, env), COIN, 1.0, env.tip)
    env.w.commit(tx)
    env.mine(1, txs=[tx])
    tx2 = env.w.send_to_address(_addr(OTHER_SPK, env), COIN, 1.0, env.tip)
    env.w.commit(tx2)
    before = _snapshot(env.w, env.tip)
    reopened = Wallet.open(tmp_path / "w0.db", env.params)  # no close(): as after a kill
    assert _snapshot(reopened, env.tip) == before
    assert reopened.unconfirmed_transactions() == [tx2]


def test_a_failure_inside_a_block_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = Env(tmp_path)
    env.fund()
    tx = env.w.send_to_address(_addr(OTHER_SPK, env), COIN, 1.0, env.tip)
    env.w.commit(tx)
    before = _snapshot(env.w, env.tip)
    [block] = env.mine(1, spk=OTHER_SPK, txs=[tx])  # the wallet saw it; now replay on a fresh copy
    fresh = Wallet.open(tmp_path / "copy.db", env.params, seed=bytes.fromhex(env.w.seed_hex()))
    calls = 0
    real_record = Wallet._record

    def flaky(self: Wallet, *args: object) -> bool:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("disk on fire")
        return real_record(self, *args)  # type: ignore[arg-type]

    for height in range(1, env.tip):
        fresh.block_connected(env.blocks[height], height)
    fresh.commit(tx)
    assert _snapshot(fresh, env.tip - 1) == before
    monkeypatch.setattr(Wallet, "_record", flaky)
    with pytest.raises(OSError):
        fresh.block_connected(block, env.tip)
    monkeypatch.undo()
    assert _snapshot(fresh, env.tip - 1) == before
    assert _snapshot(Wallet.open(tmp_path / "copy.db", env.params), env.tip - 1) == before
    fresh.block_connected(block, env.tip)
    assert _snapshot(fresh, env.tip) == _snapshot(env.w, env.tip)


def test_restore_from_seed_finds_coins_beyond_the_first_addresses(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.fund()
    addresses = [env.w.get_new_address() for _ in range(GAP_LIMIT + 10)]
    # One transaction pays index ~30 first, then index ~10: the restored wallet must find both.
    far, near = addresses[-1], addresses[9]
    tx = env.w.create_transaction(
        [TxOut(2 * COIN, _spk_of(far, env)), TxOut(3 * COIN, _spk_of(near, env))], 1.0, env.tip
    )
    env.w.commit(tx)
    env.mine(1, txs=[tx])
    env.mine(1, spk=_spk_of(addresses[3], env))
    expected = env.w.balances(env.tip)
    restored = Wallet.open(tmp_path / "restored.db", env.params, seed=bytes.fromhex(env.w.seed_hex()))
    assert restored.best_block() is None
    for height in range(0, env.tip + 1):
        block = env.blocks.get(height, env.params.genesis)
        restored.block_connected(block, height)
    assert restored.balances(env.tip) == expected
    assert restored.list_unspent(env.tip) == env.w.list_unspent(env.tip)
    assert restored.get_new_address() not in addresses[: GAP_LIMIT + 10]


def _spk_of(address: str, env: Env) -> bytes:
    return address_to_script(address, env.params.address_prefixes)


# --- watches -------------------------------------------------------------------------------------------


def test_watch_script_tracks_watch_only_coins(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.fund()
    env.w.watch_script(OTHER_SPK, "funding")
    tx = env.w.send_to_address(_addr(OTHER_SPK, env), 4 * COIN, 1.0, env.tip)
    env.w.commit(tx)
    assert env.w.balances(env.tip).watch_only_sat == 4 * COIN
    env.mine(1, txs=[tx])
    bal = env.w.balances(env.tip)
    assert bal.watch_only_sat == 4 * COIN and bal.total_sat == bal.confirmed_sat
    watched = [c for c in env.w.list_unspent(env.tip) if not c.spendable]
    assert len(watched) == 1
    [coin] = watched
    assert coin.script_pubkey == OTHER_SPK and coin.amount_sat == 4 * COIN and not coin.solvable
    assert coin.label == "funding"
    # Watch-only coins are never selected.
    everything = bal.confirmed_sat
    with pytest.raises(WalletError, match="Insufficient funds"):
        env.w.send_to_address(_addr(SPK, env), everything, 1.0, env.tip)
    assert any(t.watch_only for t in env.w.transactions() if t.txid == tx.txid)


def test_watch_outpoint_reports_its_spender(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.mine(102)
    op = _mature_harness_coin(env)
    env.w.watch_outpoint(op)
    assert env.w.spender_of(op) is None
    spend = _pay_from_harness(env, [TxOut(COIN, OTHER_SPK)])
    assert spend.inputs[0].prevout == op
    env.w.mempool_added(spend)
    assert env.w.spender_of(op) == (spend.txid, None)
    env.w.mempool_removed(spend.txid)
    assert env.w.spender_of(op) is None
    [block] = env.mine(1, txs=[spend])
    assert env.w.spender_of(op) == (spend.txid, env.tip)
    assert env.w.get_transaction(spend.txid) == spend
    env.feed(env.h.chain.invalidate_block(block.hash))
    assert env.w.spender_of(op) == (spend.txid, None)
    # A double-spend confirmed on the other branch takes its place.
    coin = env.h.chain.get_coin(op)
    assert coin is not None
    rival = Transaction(2, [TxIn(op, b"", 0xFFFFFFFF)], [TxOut(coin.output.amount_sat - 5000, SPK)], 0)
    sign_p2wpkh(rival, 0, KEY, coin.output.amount_sat)
    env.mine(1, txs=[rival])
    assert env.w.spender_of(op) == (rival.txid, env.tip)
    assert {t.txid: t.state for t in env.w.transactions()}[spend.txid] == "conflicted"


def test_watch_outpoint_finds_an_earlier_spend(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.fund()
    tx = env.w.send_to_address(_addr(OTHER_SPK, env), COIN, 1.0, env.tip)
    env.w.commit(tx)
    env.mine(1, txs=[tx])
    op = tx.inputs[0].prevout
    assert env.w.spender_of(op) == (tx.txid, env.tip)  # one of our own coins
    other = OutPoint(b"\x07" * 32, 1)
    env.w.watch_outpoint(other)
    assert env.w.spender_of(other) is None


# --- coin selection ------------------------------------------------------------------------------------


def _coin(i: int, value: int) -> tuple[int, _Coin]:
    return value, _Coin(OutPoint(i.to_bytes(32, "big"), 0), b"", value, RECEIVE, i, 1, False, False)


def test_bnb_finds_an_exact_match() -> None:
    pool = sorted((_coin(i, v) for i, v in enumerate([1000, 2000, 3000, 5000, 8000])), key=lambda p: -p[0])
    found = _bnb(pool, 10_000, 10)
    assert found is not None and sum(c.amount_sat for c in found) == 10_000
    assert _bnb(pool, 19_001, 10) is None and _bnb(pool, 30_000, 10) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 10**6), min_size=1, max_size=12), st.integers(1, 3 * 10**6), st.integers(0, 5000))
def test_bnb_result_is_within_the_window(values: list[int], target: int, cost_of_change: int) -> None:
    pool = sorted((_coin(i, v) for i, v in enumerate(values)), key=lambda p: -p[0])
    found = _bnb(pool, target, cost_of_change)
    if found is not None:
        total = sum(c.amount_sat for c in found)
        assert target <= total <= target + cost_of_change
        assert len({c.outpoint for c in found}) == len(found)


def test_mempool_removal_takes_unconfirmed_descendants_along(tmp_path: Path) -> None:
    env = Env(tmp_path)
    env.fund()
    parent = env.w.send_to_address(_addr(OTHER_SPK, env), COIN, 1.0, env.tip)
    env.w.commit(parent)
    child = env.w.send_to_address(_addr(OTHER_SPK, env), COIN, 1.0, env.tip)
    env.w.commit(child)
    env.w.mempool_removed(parent.txid)
    states = {t.txid: t.state for t in env.w.transactions()}
    assert states[parent.txid] == states[child.txid] == INACTIVE
    assert env.w.balances(env.tip) == Balances(0, 0, 0, 0)
    assert env.w.unconfirmed_transactions() == [parent, child]  # to rebroadcast, parents first
    env.w.mempool_added(parent)
    env.w.mempool_added(child)
    assert env.w.balances(env.tip).unconfirmed_sat > 0
