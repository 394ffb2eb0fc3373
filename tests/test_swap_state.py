"""relay.swap: the sans-IO swap state machine, driven by hand and against two simulated chains."""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pytest

from base_chain.crypto import PrivateKey
from base_chain.hashes import hash160, sha256
from base_chain.locks import is_final_tx
from base_chain.script import STANDARD_FLAGS, verify_script
from base_chain.templates import p2wpkh, p2wsh
from base_chain.tx import OutPoint, Transaction, TxIn, TxOut
from relay.contract import build_contract, extract_secret, redeem_tx, refund_tx
from relay.swap import (
    TERMINAL_STATES,
    TRANSITIONS,
    Aborted,
    Broadcast,
    ChainConfig,
    ContractFunded,
    CounterContractReceived,
    Done,
    Effect,
    Event,
    Failed,
    FeeRateObserved,
    FundContract,
    HeightObserved,
    Persist,
    Refunded,
    Refused,
    Role,
    ShareContract,
    SpendObserved,
    SpendReorged,
    Swap,
    SwapError,
    SwapState,
    SwapTerms,
    TxConfirmed,
    TxReorged,
    WatchConfirmation,
    WatchSpend,
)

ALPHA = ChainConfig("alpha", 600, min_conf=2)
BETA = ChainConfig("beta", 150, min_conf=3)
SECRET = bytes(range(100, 132))
SECRET_HASH = sha256(SECRET)
ALICE = PrivateKey(0xA11CE)  # initiator: locks on alpha, redeems on beta
BOB = PrivateKey(0xB0B)  # participant: locks on beta, redeems on alpha
ALICE_PKH = hash160(ALICE.public_key().to_bytes())
BOB_PKH = hash160(BOB.public_key().to_bytes())
ALICE_ALPHA_WALLET = p2wpkh(PrivateKey(1001).public_key().to_bytes())
ALICE_BETA_WALLET = p2wpkh(PrivateKey(1002).public_key().to_bytes())
BOB_ALPHA_WALLET = p2wpkh(PrivateKey(2001).public_key().to_bytes())
BOB_BETA_WALLET = p2wpkh(PrivateKey(2002).public_key().to_bytes())
ALPHA_AMOUNT = 100_000_000  # Alice's coins
BETA_AMOUNT = 250_000_000  # Bob's coins


def initiator(**changes: Any) -> Swap:
    terms = SwapTerms(Role.INITIATOR, ALPHA, BETA, ALPHA_AMOUNT, BETA_AMOUNT, SECRET_HASH, BOB_PKH, **changes)
    return Swap(terms, ALICE, ALICE_BETA_WALLET, ALICE_ALPHA_WALLET, SECRET)


def participant(**changes: Any) -> Swap:
    terms = SwapTerms(Role.PARTICIPANT, BETA, ALPHA, BETA_AMOUNT, ALPHA_AMOUNT, SECRET_HASH, ALICE_PKH, **changes)
    return Swap(terms, BOB, BOB_ALPHA_WALLET, BOB_BETA_WALLET)


_nonce = 0


def funding_tx(script_pubkey: bytes, amount: int) -> Transaction:
    """A wallet payment to `script_pubkey` (its input is a made-up coin)."""
    global _nonce
    _nonce += 1
    return Transaction(2, [TxIn(OutPoint(_nonce.to_bytes(32, "big"), 0))],
                       [TxOut(7_000, p2wpkh(PrivateKey(99).public_key().to_bytes())), TxOut(amount, script_pubkey)], 0)


def contract_with_tx(
    *, locktime: int, amount: int, secret_hash: bytes = SECRET_HASH, recipient: bytes, refund: bytes
) -> tuple[bytes, Transaction]:
    script = build_contract(secret_hash, recipient, refund, locktime)
    return script, funding_tx(p2wsh(script), amount)


def of(effects: list[Effect], kind: type) -> list[Any]:
    return [e for e in effects if isinstance(e, kind)]


# --- configuration ---------------------------------------------------------------------------------


def test_transition_table_is_closed_and_terminal_states_have_no_exit() -> None:
    assert set(TRANSITIONS) == set(SwapState)
    for targets in TRANSITIONS.values():
        assert targets <= set(SwapState)
    assert TERMINAL_STATES == {SwapState.REDEEMED, SwapState.REFUNDED, SwapState.ABORTED, SwapState.FAILED}


def test_bad_terms_are_refused() -> None:
    with pytest.raises(SwapError, match="different chains"):
        SwapTerms(Role.INITIATOR, ALPHA, ALPHA, 10_000, 10_000, SECRET_HASH, BOB_PKH)
    with pytest.raises(SwapError, match="our_amount_sat"):
        SwapTerms(Role.INITIATOR, ALPHA, BETA, 10, 10_000, SECRET_HASH, BOB_PKH)
    with pytest.raises(SwapError, match="secret hash"):
        SwapTerms(Role.INITIATOR, ALPHA, BETA, 10_000, 10_000, b"x", BOB_PKH)
    with pytest.raises(SwapError, match="min_conf"):
        ChainConfig("alpha", 600, min_conf=0)
    terms = SwapTerms(Role.INITIATOR, ALPHA, BETA, 10_000, 10_000, SECRET_HASH, BOB_PKH)
    with pytest.raises(SwapError, match="secret"):
        Swap(terms, ALICE, ALICE_BETA_WALLET, ALICE_ALPHA_WALLET, b"\x00" * 32)
    pterms = SwapTerms(Role.PARTICIPANT, BETA, ALPHA, 10_000, 10_000, SECRET_HASH, ALICE_PKH)
    with pytest.raises(SwapError, match="does not know the secret"):
        Swap(pterms, BOB, BOB_ALPHA_WALLET, BOB_BETA_WALLET, SECRET)


def test_host_misuse_raises_swap_error_and_changes_nothing() -> None:
    a = initiator()
    with pytest.raises(SwapError, match="no height observed"):
        a.start()
    assert a.state is SwapState.CREATED
    with pytest.raises(SwapError, match="unknown chain"):
        a.handle(HeightObserved("gamma", 5))
    with pytest.raises(SwapError, match="ContractFunded in state created"):
        a.handle(ContractFunded(funding_tx(b"\x51", 1)))
    a.handle(HeightObserved("alpha", 100))
    fund = of(a.start(), FundContract)[0]
    with pytest.raises(SwapError, match="does not pay to our contract"):
        a.handle(ContractFunded(funding_tx(b"\x51", ALPHA_AMOUNT)))
    with pytest.raises(SwapError, match="not 100000000"):
        a.handle(ContractFunded(funding_tx(fund.script_pubkey, ALPHA_AMOUNT - 1)))
    assert a.state is SwapState.FUNDING
    with pytest.raises(SwapError, match="already funding"):
        a.start()
    with pytest.raises(SwapError, match="minimum relay fee"):
        a.handle(FeeRateObserved("alpha", 10))


# --- the participant's audit ---------------------------------------------------------------------------


def audited_participant(**changes: Any) -> tuple[Swap, list[Effect]]:
    """A participant (beta at 1000, alpha at 100) shown the initiator's contract, changed by `changes`."""
    p = participant()
    assert p.start() == [Persist()]
    assert p.state is SwapState.AWAITING_COUNTER_CONTRACT
    p.handle(HeightObserved("alpha", 100))
    p.handle(HeightObserved("beta", 1000))
    args: dict[str, Any] = dict(locktime=100 + 288, amount=ALPHA_AMOUNT, recipient=BOB_PKH, refund=ALICE_PKH)
    args.update(changes)
    script, tx = contract_with_tx(**args)
    return p, p.handle(CounterContractReceived(script, tx))


def test_participant_accepts_a_good_contract_and_funds_at_depth() -> None:
    p, effects = audited_participant()
    assert p.state is SwapState.COUNTER_CONTRACT_SEEN
    assert effects[0] == Persist()
    (wc,) = of(effects, WatchConfirmation)
    (ws,) = of(effects, WatchSpend)
    assert (wc.chain, wc.num_confs, ws.chain) == ("alpha", 2, "alpha")
    assert not of(effects, FundContract)
    # One confirmation is not enough on alpha (min_conf 2).
    assert not of(p.handle(TxConfirmed("alpha", wc.txid, 101)), FundContract)
    effects = p.handle(HeightObserved("alpha", 102))
    (fund,) = of(effects, FundContract)
    assert effects.index(Persist()) < effects.index(fund)
    assert p.state is SwapState.FUNDING
    assert (fund.chain, fund.amount_sat) == ("beta", BETA_AMOUNT)
    assert fund.script_pubkey == p2wsh(fund.contract)
    # 24 hours of beta blocks (150 s) from beta's tip; pays Alice, refunds to Bob.
    assert p.our_locktime == 1000 + 576
    assert fund.contract == build_contract(SECRET_HASH, ALICE_PKH, BOB_PKH, 1576)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"amount": ALPHA_AMOUNT - 1}, "amount 99999999 sat differs from the agreed 100000000 sat"),
        ({"amount": ALPHA_AMOUNT + 1}, "amount"),
        ({"secret_hash": sha256(b"other")}, "secret hash differs"),
        ({"recipient": ALICE_PKH}, "does not pay to our key"),
        ({"refund": BOB_PKH}, "refunds to a key other than"),
        ({"locktime": 100 + 144}, "lock expires too close to ours"),  # 24 h: no margin over our 24 h
        ({"locktime": 100 + 170}, "need a margin of 21600 s"),  # < 24 h + 6 h
    ],
)
def test_participant_refuses_a_contract_that_differs(changes: dict[str, Any], reason: str) -> None:
    p, effects = audited_participant(**changes)
    assert p.state is SwapState.ABORTED
    (refused,) = of(effects, Refused)
    assert reason in refused.reason
    assert of(effects, Aborted) == [Aborted(refused.reason)]
    assert not of(effects, FundContract) and p.is_finished()


def test_participant_refuses_a_script_or_transaction_that_differs() -> None:
    p = participant()
    p.start()
    p.handle(HeightObserved("alpha", 100))
    p.handle(HeightObserved("beta", 1000))
    script, tx = contract_with_tx(locktime=388, amount=ALPHA_AMOUNT, recipient=BOB_PKH, refund=ALICE_PKH)
    effects = p.handle(CounterContractReceived(script + b"\x75", tx))  # not the template
    assert "not a swap contract" in of(effects, Refused)[0].reason and p.state is SwapState.ABORTED

    p = participant()
    p.start()
    p.handle(HeightObserved("alpha", 100))
    p.handle(HeightObserved("beta", 1000))
    other, _ = contract_with_tx(locktime=389, amount=ALPHA_AMOUNT, recipient=BOB_PKH, refund=ALICE_PKH)
    effects = p.handle(CounterContractReceived(other, tx))  # tx pays to a different script
    assert "does not pay to the counter-contract" in of(effects, Refused)[0].reason


def test_participant_refuses_a_contract_confirmed_too_late() -> None:
    p, effects = audited_participant()
    (wc,) = of(effects, WatchConfirmation)
    # Mined at alpha 250: then only (388 - 251) * 600 s remain, less than our 24 h + 6 h margin.
    effects = p.handle(TxConfirmed("alpha", wc.txid, 250)) + p.handle(HeightObserved("alpha", 251))
    assert p.state is SwapState.ABORTED
    assert "confirmed too late" in of(effects, Refused)[0].reason
    assert not of(effects, FundContract)


def test_participant_gives_up_on_a_contract_that_does_not_confirm_in_time() -> None:
    p, _ = audited_participant()
    assert not p.handle(HeightObserved("alpha", 200))  # (388-200)*600 = 112800 >= 86400 + 21600
    effects = p.handle(HeightObserved("alpha", 210))
    assert p.state is SwapState.ABORTED
    assert "not confirmed in time" in of(effects, Refused)[0].reason


def test_participant_aborts_if_the_initiator_refunds_before_it_funds() -> None:
    p, effects = audited_participant()
    (ws,) = of(effects, WatchSpend)
    script = p.their_contract
    assert script is not None
    refund = refund_tx(script, ws.outpoint, ALPHA_AMOUNT, ALICE, ALICE_ALPHA_WALLET, 1000)
    effects = p.handle(SpendObserved("alpha", ws.outpoint, refund, None))
    assert p.state is SwapState.ABORTED and of(effects, Aborted)


def test_a_reorg_takes_back_depth_and_a_second_contract_is_ignored() -> None:
    p, effects = audited_participant()
    (wc,) = of(effects, WatchConfirmation)
    p.handle(TxConfirmed("alpha", wc.txid, 101))
    p.handle(TxReorged("alpha", wc.txid))
    assert not of(p.handle(HeightObserved("alpha", 102)), FundContract)  # no longer mined: depth 0
    assert p.state is SwapState.COUNTER_CONTRACT_SEEN
    other, other_tx = contract_with_tx(locktime=400, amount=ALPHA_AMOUNT, recipient=BOB_PKH, refund=ALICE_PKH)
    effects = p.handle(CounterContractReceived(other, other_tx))
    assert effects == [Refused("a counter-contract was ignored: the swap is counter_contract_seen")]
    assert p.their_contract != other
    p.handle(TxConfirmed("alpha", wc.txid, 102))
    assert of(p.handle(HeightObserved("alpha", 103)), FundContract)


def test_resume_sets_up_the_watches_again() -> None:
    p, effects = audited_participant()
    restored = Swap.from_dict(json.loads(json.dumps(p.to_dict())))
    resumed = restored.resume()
    assert of(resumed, WatchConfirmation) == of(effects, WatchConfirmation)
    assert of(resumed, WatchSpend) == of(effects, WatchSpend)
    assert not of(resumed, ShareContract)  # nothing of ours to share yet
    p2, _, our_tx = funded_participant()
    resumed = Swap.from_dict(p2.to_dict()).resume()
    assert [e.chain for e in of(resumed, WatchSpend)] == ["beta", "alpha"]
    assert of(resumed, ShareContract)[0].contract_tx == our_tx
    (refund,) = of(p2.handle(HeightObserved("beta", 1576)), Broadcast)
    assert of(Swap.from_dict(p2.to_dict()).resume(), Broadcast) == [Broadcast("beta", refund.tx, "refund")]


# --- the initiator -------------------------------------------------------------------------------------


def funded_initiator(**changes: Any) -> tuple[Swap, Transaction]:
    a = initiator(**changes)
    a.handle(HeightObserved("alpha", 100))
    a.handle(HeightObserved("beta", 1000))
    effects = a.start()
    assert effects[0] == Persist()
    (fund,) = of(effects, FundContract)
    assert (fund.chain, fund.amount_sat) == ("alpha", ALPHA_AMOUNT)
    assert a.our_locktime == 100 + 288
    assert fund.contract == build_contract(SECRET_HASH, BOB_PKH, ALICE_PKH, 388)
    tx = funding_tx(fund.script_pubkey, ALPHA_AMOUNT)
    effects = a.handle(ContractFunded(tx))
    assert a.state is SwapState.AWAITING_COUNTER_CONTRACT
    assert of(effects, ShareContract) == [ShareContract(fund.contract, tx)]
    assert [w.chain for w in of(effects, WatchSpend)] == ["alpha"]
    assert a.handle(ContractFunded(tx)) == []  # a duplicate report is harmless
    return a, tx


def bob_contract(locktime: int = 1000 + 576, amount: int = BETA_AMOUNT, **kw: Any) -> tuple[bytes, Transaction]:
    args: dict[str, Any] = dict(recipient=ALICE_PKH, refund=BOB_PKH)
    args.update(kw)
    return contract_with_tx(locktime=locktime, amount=amount, **args)


def test_initiator_redeems_a_good_counter_contract_at_depth() -> None:
    a, _ = funded_initiator()
    script, tx = bob_contract()
    effects = a.handle(CounterContractReceived(script, tx))
    assert a.state is SwapState.COUNTER_CONTRACT_SEEN
    (wc,) = of(effects, WatchConfirmation)
    assert (wc.chain, wc.num_confs) == ("beta", 3)
    a.handle(TxConfirmed("beta", tx.txid, 1001))
    assert not of(a.handle(HeightObserved("beta", 1002)), Broadcast)
    effects = a.handle(HeightObserved("beta", 1003))
    (b,) = of(effects, Broadcast)
    assert (b.chain, b.kind, a.state) == ("beta", "redeem", SwapState.REDEEMING)
    assert extract_secret(b.tx, SECRET_HASH) == SECRET
    verify_script(b"", p2wsh(script), b.tx.inputs[0].witness, STANDARD_FLAGS, b.tx, 0, BETA_AMOUNT)
    assert b.tx.outputs[0].script_pubkey == ALICE_BETA_WALLET
    # Done once the redeem is 3 deep on beta.
    a.handle(SpendObserved("beta", b.tx.inputs[0].prevout, b.tx, 1004))
    assert a.state is SwapState.REDEEMING
    effects = a.handle(HeightObserved("beta", 1006))
    assert a.state is SwapState.REDEEMED and of(effects, Done) == [Done(b.tx.txid)]
    assert a.handle(CounterContractReceived(script, tx)) == []  # duplicates after the fact are ignored


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"amount": BETA_AMOUNT - 1}, "differs from the agreed"),
        ({"secret_hash": sha256(b"x")}, "secret hash differs"),
        ({"recipient": BOB_PKH}, "does not pay to our key"),
        ({"refund": ALICE_PKH}, "refunds to a key other than"),
        ({"locktime": 1000 + 1152}, "lock expires too close to ours"),  # 48 h: as long as ours
        ({"locktime": 1000 + 1030}, "need a margin"),  # 42.9 h: ends 5.1 h before ours, under 6 h
    ],
)
def test_initiator_refuses_a_bad_counter_contract_and_refunds_only_when_final(
    changes: dict[str, Any], reason: str
) -> None:
    a, funding = funded_initiator()
    script, tx = bob_contract(**changes)
    effects = a.handle(CounterContractReceived(script, tx))
    assert a.state is SwapState.AWAITING_REFUND
    assert reason in of(effects, Refused)[0].reason
    assert not of(effects, Broadcast)
    assert not of(a.handle(HeightObserved("alpha", 387)), Broadcast)  # locktime 388 not reached
    effects = a.handle(HeightObserved("alpha", 388))
    (b,) = of(effects, Broadcast)
    assert (b.chain, b.kind, a.state) == ("alpha", "refund", SwapState.REFUNDING)
    assert b.tx.locktime == 388 and is_final_tx(b.tx, 389, 0) and not is_final_tx(b.tx, 388, 0)
    contract = a.our_contract
    assert contract is not None
    verify_script(b"", p2wsh(contract), b.tx.inputs[0].witness, STANDARD_FLAGS, b.tx, 0, ALPHA_AMOUNT)
    assert b.tx.outputs[0].script_pubkey == ALICE_ALPHA_WALLET


def test_initiator_refuses_to_reveal_the_secret_too_close_to_the_counter_contracts_expiry() -> None:
    # A short participant lock (20 h) that passes the margin check at first, then confirms late.
    a, _ = funded_initiator(safety_margin_s=3600, redeem_window_s=4 * 3600)
    script, tx = bob_contract(locktime=1000 + 480)
    assert of(a.handle(CounterContractReceived(script, tx)), WatchConfirmation)
    a.handle(HeightObserved("alpha", 100 + 120))  # alpha moves on: 20 h pass
    a.handle(TxConfirmed("beta", tx.txid, 1400))
    effects = a.handle(HeightObserved("beta", 1402))  # (1480 - 1402) * 150 s = 3.25 h left < 4 h
    assert a.state is SwapState.AWAITING_REFUND
    assert "confirmed too late" in of(effects, Refused)[0].reason
    assert not of(effects, Broadcast)


def test_initiator_refunds_when_no_counter_contract_comes() -> None:
    a, funding = funded_initiator()
    assert not of(a.handle(HeightObserved("alpha", 387)), Broadcast)
    (b,) = of(a.handle(HeightObserved("alpha", 388)), Broadcast)
    assert b.kind == "refund" and a.state is SwapState.REFUNDING
    a.handle(SpendObserved("alpha", b.tx.inputs[0].prevout, b.tx, 389))
    effects = a.handle(HeightObserved("alpha", 390))
    assert a.state is SwapState.REFUNDED and of(effects, Refunded) == [Refunded(b.tx.txid)]


def test_a_stuck_refund_is_bumped_and_a_reorged_one_rebroadcast() -> None:
    a, _ = funded_initiator()
    (first,) = of(a.handle(HeightObserved("alpha", 388)), Broadcast)
    assert not of(a.handle(HeightObserved("alpha", 390)), Broadcast)  # 30 min = 3 alpha blocks
    effects = a.handle(HeightObserved("alpha", 391))
    (bump,) = of(effects, Broadcast)
    assert bump.replaces == first.tx.txid and bump.kind == "refund"
    assert bump.tx.inputs[0].prevout == first.tx.inputs[0].prevout
    assert bump.tx.outputs[0].amount_sat < first.tx.outputs[0].amount_sat
    fee1 = ALPHA_AMOUNT - first.tx.outputs[0].amount_sat
    fee2 = ALPHA_AMOUNT - bump.tx.outputs[0].amount_sat
    assert fee2 - fee1 >= bump.tx.vsize  # BIP125: pays for its own relay at the incremental rate
    a.handle(FeeRateObserved("alpha", 50_000))
    (bump2,) = of(a.handle(HeightObserved("alpha", 394)), Broadcast)
    assert ALPHA_AMOUNT - bump2.tx.outputs[0].amount_sat >= 50 * bump2.tx.vsize - 100
    # The first version gets mined after all: that is the refund, then a reorg takes it out.
    outpoint = first.tx.inputs[0].prevout
    a.handle(SpendObserved("alpha", outpoint, first.tx, 395))
    assert a.pending_tx == first.tx
    a.handle(SpendReorged("alpha", outpoint))
    assert a.state is SwapState.REFUNDING
    (again,) = of(a.handle(HeightObserved("alpha", 398)), Broadcast)
    assert again.tx.inputs[0].prevout == outpoint
    a.handle(SpendObserved("alpha", outpoint, again.tx, 399))
    assert of(a.handle(HeightObserved("alpha", 400)), Refunded)


def test_bump_is_capped_by_the_maximum_fee_rate() -> None:
    a, _ = funded_initiator(max_fee_rate_sat_kvb=1500)
    (first,) = of(a.handle(HeightObserved("alpha", 388)), Broadcast)
    (bump,) = of(a.handle(HeightObserved("alpha", 391)), Broadcast)
    (same,) = of(a.handle(HeightObserved("alpha", 394)), Broadcast)  # at the cap: sent again unchanged
    assert bump.replaces == first.tx.txid and same.replaces is None and same.tx == bump.tx


# --- races ---------------------------------------------------------------------------------------------


def funded_participant() -> tuple[Swap, bytes, Transaction]:
    """A participant whose contract is out: (swap, the initiator's contract, our funding tx)."""
    p, effects = audited_participant()
    (wc,) = of(effects, WatchConfirmation)
    p.handle(TxConfirmed("alpha", wc.txid, 101))
    (fund,) = of(p.handle(HeightObserved("alpha", 102)), FundContract)
    our_tx = funding_tx(fund.script_pubkey, BETA_AMOUNT)
    effects = p.handle(ContractFunded(our_tx))
    assert p.state is SwapState.AWAITING_SECRET
    assert of(effects, ShareContract) == [ShareContract(fund.contract, our_tx)]
    script = p.their_contract
    assert script is not None
    return p, script, our_tx


def test_participant_redeems_as_soon_as_the_secret_shows_in_the_mempool() -> None:
    p, their_script, our_tx = funded_participant()
    our_contract = p.our_contract
    assert our_contract is not None
    alice_redeem = redeem_tx(our_contract, OutPoint(our_tx.txid, 1), BETA_AMOUNT, SECRET, ALICE, ALICE_BETA_WALLET,
                             1000)
    effects = p.handle(SpendObserved("beta", OutPoint(our_tx.txid, 1), alice_redeem, None))
    (b,) = of(effects, Broadcast)
    assert effects.index(Persist()) < effects.index(b)
    assert (b.chain, b.kind, p.state, p.secret) == ("alpha", "redeem", SwapState.REDEEMING, SECRET)
    verify_script(b"", p2wsh(their_script), b.tx.inputs[0].witness, STANDARD_FLAGS, b.tx, 0, ALPHA_AMOUNT)
    assert b.tx.outputs[0].script_pubkey == BOB_ALPHA_WALLET
    p.handle(TxConfirmed("alpha", b.tx.txid, 110))
    assert of(p.handle(HeightObserved("alpha", 111)), Done) == [Done(b.tx.txid)]


def test_participant_refunds_at_its_locktime_and_switches_to_redeem_if_the_secret_wins() -> None:
    p, their_script, our_tx = funded_participant()
    assert not of(p.handle(HeightObserved("beta", 1575)), Broadcast)
    (refund,) = of(p.handle(HeightObserved("beta", 1576)), Broadcast)
    assert refund.kind == "refund" and p.state is SwapState.REFUNDING and refund.tx.locktime == 1576
    # Alice's redeem of Bob's contract confirms instead of Bob's refund: Bob learns the secret and redeems.
    our_contract = p.our_contract
    assert our_contract is not None
    outpoint = OutPoint(our_tx.txid, 1)
    alice_redeem = redeem_tx(our_contract, outpoint, BETA_AMOUNT, SECRET, ALICE, ALICE_BETA_WALLET, 1000)
    effects = p.handle(SpendObserved("beta", outpoint, alice_redeem, 1577))
    (redeem,) = of(effects, Broadcast)
    assert redeem.kind == "redeem" and p.state is SwapState.REDEEMING


def test_participant_refund_confirms() -> None:
    p, _, our_tx = funded_participant()
    (refund,) = of(p.handle(HeightObserved("beta", 1576)), Broadcast)
    p.handle(SpendObserved("beta", OutPoint(our_tx.txid, 1), refund.tx, 1577))
    assert p.state is SwapState.REFUNDING  # 1 of 3 confirmations
    effects = p.handle(HeightObserved("beta", 1579))
    assert p.state is SwapState.REFUNDED and of(effects, Refunded)


def test_initiator_whose_redeem_loses_to_a_refund_falls_back_to_refunding_or_fails() -> None:
    a, funding = funded_initiator()
    script, tx = bob_contract()
    a.handle(CounterContractReceived(script, tx))
    a.handle(TxConfirmed("beta", tx.txid, 1001))
    (redeem,) = of(a.handle(HeightObserved("beta", 1003)), Broadcast)
    bob_refund = refund_tx(script, redeem.tx.inputs[0].prevout, BETA_AMOUNT, BOB, BOB_BETA_WALLET, 1000)
    effects = a.handle(SpendObserved("beta", redeem.tx.inputs[0].prevout, bob_refund, 1576))
    assert a.state is SwapState.AWAITING_REFUND and of(effects, Refused)
    # Bob saw the secret in Alice's redeem and takes Alice's coins too: the swap failed.
    our_contract = a.our_contract
    assert our_contract is not None
    outpoint = OutPoint(funding.txid, 1)
    bob_redeem = redeem_tx(our_contract, outpoint, ALPHA_AMOUNT, SECRET, BOB, BOB_ALPHA_WALLET, 1000)
    effects = a.handle(SpendObserved("alpha", outpoint, bob_redeem, 300))
    assert a.state is SwapState.FAILED and of(effects, Failed)


def test_participant_that_loses_the_redeem_race_fails() -> None:
    p, their_script, our_tx = funded_participant()
    our_contract = p.our_contract
    assert our_contract is not None
    outpoint = OutPoint(our_tx.txid, 1)
    alice_redeem = redeem_tx(our_contract, outpoint, BETA_AMOUNT, SECRET, ALICE, ALICE_BETA_WALLET, 1000)
    (redeem,) = of(p.handle(SpendObserved("beta", outpoint, alice_redeem, 1100)), Broadcast)
    alice_refund = refund_tx(their_script, redeem.tx.inputs[0].prevout, ALPHA_AMOUNT, ALICE, ALICE_ALPHA_WALLET, 1000)
    effects = p.handle(SpendObserved("alpha", redeem.tx.inputs[0].prevout, alice_refund, 400))
    assert p.state is SwapState.FAILED and of(effects, Failed)


# --- persistence ---------------------------------------------------------------------------------------


def test_to_dict_from_dict_round_trip_in_every_state_of_the_happy_path() -> None:
    world = World()
    seen: set[SwapState] = set()

    def check(host: Host) -> None:
        saved = json.loads(json.dumps(host.swap.to_dict()))
        restored = Swap.from_dict(saved)
        assert restored.to_dict() == host.swap.to_dict()
        assert restored.state is host.swap.state
        seen.add(host.swap.state)

    world.after_event = check
    world.run_swap()
    assert {SwapState.FUNDING, SwapState.AWAITING_COUNTER_CONTRACT, SwapState.COUNTER_CONTRACT_SEEN,
            SwapState.AWAITING_SECRET, SwapState.REDEEMING, SwapState.REDEEMED} <= seen


def test_from_dict_refuses_garbage() -> None:
    good = initiator().to_dict()
    with pytest.raises(SwapError, match="not a swap record"):
        Swap.from_dict({})
    with pytest.raises(SwapError, match="version"):
        Swap.from_dict({**good, "version": 99})
    with pytest.raises(SwapError, match="not a swap record"):
        Swap.from_dict({**good, "state": "dancing"})
    with pytest.raises(SwapError, match="not a swap record"):
        Swap.from_dict({**good, "key": "zz"})
    with pytest.raises(SwapError, match="not a swap record"):
        Swap.from_dict({**good, "ours": {"script": "51", "txid": None, "vout": None, "amount_sat": 0,
                                         "mined_height": None, "tx": ""}})


# --- two swaps against two simulated chains -------------------------------------------------------------


class FakeChain:
    """A chain for the tests: a mempool, blocks, and script checks on contract spends."""

    def __init__(self, name: str, height: int) -> None:
        self.name = name
        self.tip = height
        self.mempool: dict[bytes, Transaction] = {}
        self.mined: dict[bytes, int] = {}
        self.outputs: dict[OutPoint, TxOut] = {}
        self.spent: dict[OutPoint, tuple[Transaction, int | None]] = {}
        self.rejected: list[str] = []

    def submit(self, tx: Transaction) -> bool:
        if tx.txid in self.mempool or tx.txid in self.mined:
            return False  # known already: nothing new to announce
        if not is_final_tx(tx, self.tip + 1, 0):
            self.rejected.append("non-final")
            return False
        for i, txin in enumerate(tx.inputs):
            prev = self.outputs.get(txin.prevout)
            if prev is not None:  # a contract spend: check its script; wallet coins are made up
                verify_script(txin.script_sig, prev.script_pubkey, txin.witness, STANDARD_FLAGS, tx, i,
                              prev.amount_sat)
            spender = self.spent.get(txin.prevout)
            if spender is not None:
                if spender[1] is not None:
                    self.rejected.append("already spent")
                    return False
                self.mempool.pop(spender[0].txid, None)  # a replacement
        self.mempool[tx.txid] = tx
        for txin in tx.inputs:
            self.spent[txin.prevout] = (tx, None)
        for i, out in enumerate(tx.outputs):
            self.outputs[OutPoint(tx.txid, i)] = out
        return True

    def mine(self) -> list[Transaction]:
        self.tip += 1
        block = list(self.mempool.values())
        self.mempool.clear()
        for tx in block:
            self.mined[tx.txid] = self.tip
            for txin in tx.inputs:
                self.spent[txin.prevout] = (tx, self.tip)
        return block


@dataclass
class Host:
    """What a swap daemon does with the effects: the fake wallet, the watches and the disk."""

    name: str
    swap: Swap
    disk: dict[str, Any] = field(default_factory=dict)
    watch_txids: set[tuple[str, bytes]] = field(default_factory=set)
    watch_outpoints: set[tuple[str, OutPoint]] = field(default_factory=set)
    funded: dict[bytes, Transaction] = field(default_factory=dict)
    outcome: list[Effect] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


class World:
    def __init__(self, crash_at: int | None = None) -> None:
        self.chains = {"alpha": FakeChain("alpha", 100), "beta": FakeChain("beta", 1000)}
        self.alice = Host("alice", initiator())
        self.bob = Host("bob", participant())
        for h in (self.alice, self.bob):
            h.disk = h.swap.to_dict()
        self.queue: deque[tuple[Host, Event]] = deque()
        self.steps = 0
        self.crash_at = crash_at
        self.crashes = 0
        self.after_event: Any = None
        self.dead: set[str] = set()

    def other(self, host: Host) -> Host:
        return self.bob if host is self.alice else self.alice

    def heights(self, host: Host) -> None:
        for name, chain in self.chains.items():
            self.queue.append((host, HeightObserved(name, chain.tip)))

    def execute(self, host: Host, effects: list[Effect]) -> None:
        for effect in effects:
            self.steps += 1
            if self.crash_at is not None and self.steps == self.crash_at:
                self.crash(host)
                return
            self.carry_out(host, effect)

    def crash(self, host: Host) -> None:
        """The host dies (before `effect`): restart from disk; the counterparty re-sends its contract."""
        self.crashes += 1
        self.queue = deque((h, e) for h, e in self.queue if h is not host)
        host.watch_txids.clear()
        host.watch_outpoints.clear()
        host.swap = Swap.from_dict(host.disk)
        for name, chain in self.chains.items():
            self.execute(host, host.swap.handle(HeightObserved(name, chain.tip)))
        self.execute(host, host.swap.resume())
        other = self.other(host)
        self.execute(other, [e for e in other.swap.resume() if isinstance(e, ShareContract)])

    def carry_out(self, host: Host, effect: Effect) -> None:
        if isinstance(effect, Persist):
            host.disk = json.loads(json.dumps(host.swap.to_dict()))
        elif isinstance(effect, FundContract):
            tx = host.funded.get(effect.script_pubkey)  # FundContract is not idempotent: the host checks
            if tx is None:
                tx = funding_tx(effect.script_pubkey, effect.amount_sat)
                assert self.chains[effect.chain].submit(tx)
                host.funded[effect.script_pubkey] = tx
            self.queue.append((host, ContractFunded(tx)))
        elif isinstance(effect, ShareContract):
            self.queue.append((self.other(host), CounterContractReceived(effect.contract, effect.contract_tx)))
        elif isinstance(effect, Broadcast):
            chain = self.chains[effect.chain]
            if chain.submit(effect.tx):
                for h in (self.alice, self.bob):
                    for txin in effect.tx.inputs:
                        if (effect.chain, txin.prevout) in h.watch_outpoints:
                            self.queue.append((h, SpendObserved(effect.chain, txin.prevout, effect.tx, None)))
        elif isinstance(effect, WatchConfirmation):
            host.watch_txids.add((effect.chain, effect.txid))
            chain = self.chains[effect.chain]
            if effect.txid in chain.mined:  # as RegisterConfirmations with a height hint does
                self.queue.append((host, TxConfirmed(effect.chain, effect.txid, chain.mined[effect.txid])))
        elif isinstance(effect, WatchSpend):
            host.watch_outpoints.add((effect.chain, effect.outpoint))
            spent = self.chains[effect.chain].spent.get(effect.outpoint)
            if spent is not None:
                self.queue.append((host, SpendObserved(effect.chain, effect.outpoint, spent[0], spent[1])))
        elif isinstance(effect, Refused):
            host.refused.append(effect.reason)
        else:
            host.outcome.append(effect)

    def pump(self) -> None:
        while self.queue:
            host, event = self.queue.popleft()
            if host.name in self.dead:
                continue
            effects = host.swap.handle(event)
            if self.after_event is not None:
                self.after_event(host)
            self.execute(host, effects)

    def mine(self, name: str, n: int = 1) -> None:
        chain = self.chains[name]
        for _ in range(n):
            block = chain.mine()
            for h in (self.alice, self.bob):
                for tx in block:
                    if (name, tx.txid) in h.watch_txids:
                        self.queue.append((h, TxConfirmed(name, tx.txid, chain.tip)))
                    for txin in tx.inputs:
                        if (name, txin.prevout) in h.watch_outpoints:
                            self.queue.append((h, SpendObserved(name, txin.prevout, tx, chain.tip)))
                self.queue.append((h, HeightObserved(name, chain.tip)))
            self.pump()

    def start(self) -> None:
        for h in (self.alice, self.bob):
            self.heights(h)
        self.pump()
        for h in (self.alice, self.bob):
            if h.swap.state is SwapState.CREATED:  # a crash may have restarted (and so started) it already
                self.execute(h, h.swap.start())
        self.pump()

    def run_swap(self, max_rounds: int = 60) -> None:
        """Mine on both chains (4 beta blocks per alpha block) until both swaps finish."""
        self.start()
        for _ in range(max_rounds):
            if self.alice.swap.is_finished() and self.bob.swap.is_finished():
                return
            self.mine("alpha")
            self.mine("beta", 4)
        raise AssertionError(f"swap did not finish: {self.alice.swap.state}, {self.bob.swap.state}")


def test_happy_path_between_two_simulated_chains() -> None:
    w = World()
    w.run_swap()
    assert w.alice.swap.state is SwapState.REDEEMED and w.bob.swap.state is SwapState.REDEEMED
    assert of(w.alice.outcome, Done) and of(w.bob.outcome, Done)
    assert not w.alice.refused and not w.bob.refused
    # Alice has Bob's beta coins, Bob has Alice's alpha coins (less fees).
    alpha_paid = [o for tx_id, h in w.chains["alpha"].mined.items()
                  for o in _tx(w, "alpha", tx_id).outputs if o.script_pubkey == BOB_ALPHA_WALLET]
    beta_paid = [o for tx_id, h in w.chains["beta"].mined.items()
                 for o in _tx(w, "beta", tx_id).outputs if o.script_pubkey == ALICE_BETA_WALLET]
    assert len(alpha_paid) == 1 and ALPHA_AMOUNT - 1000 < alpha_paid[0].amount_sat < ALPHA_AMOUNT
    assert len(beta_paid) == 1 and BETA_AMOUNT - 1000 < beta_paid[0].amount_sat < BETA_AMOUNT
    assert w.chains["alpha"].rejected == [] and w.chains["beta"].rejected == []


def _tx(w: World, chain: str, txid: bytes) -> Transaction:
    for tx, _ in w.chains[chain].spent.values():
        if tx.txid == txid:
            return tx
    return Transaction()  # a funding tx's outputs are not what we look for


def test_participant_refunds_when_the_initiator_vanishes_after_it_funded() -> None:
    w = World()
    w.start()
    w.mine("alpha", 2)  # Alice's contract is 2 deep: Bob funds his
    assert w.bob.swap.state is SwapState.AWAITING_SECRET
    w.dead.add("alice")
    w.mine("beta", 575)
    assert w.bob.swap.state is SwapState.AWAITING_SECRET  # locktime 1000 + 576 not reached
    w.mine("beta", 1)
    assert w.bob.swap.state is SwapState.REFUNDING
    w.mine("beta", 3)
    assert w.bob.swap.state is SwapState.REFUNDED and of(w.bob.outcome, Refunded)
    assert w.chains["beta"].rejected == []


def test_initiator_refunds_when_the_participant_vanishes() -> None:
    w = World()
    w.dead.add("bob")
    w.start()
    w.mine("alpha", 287)
    assert w.alice.swap.state is SwapState.AWAITING_COUNTER_CONTRACT
    w.mine("alpha", 1)  # tip 388 = locktime: the refund can go in the next block
    assert w.alice.swap.state is SwapState.REFUNDING
    w.mine("alpha", 2)
    assert w.alice.swap.state is SwapState.REFUNDED and of(w.alice.outcome, Refunded)
    assert w.chains["alpha"].rejected == []


def test_kill_at_every_step_and_continue_from_disk() -> None:
    total = World()
    total.run_swap()
    n = total.steps
    assert n > 20
    for k in range(1, n + 1):
        w = World(crash_at=k)
        w.run_swap()
        assert w.crashes == 1, k
        assert w.alice.swap.state is SwapState.REDEEMED, (k, w.alice.swap.state)
        assert w.bob.swap.state is SwapState.REDEEMED, (k, w.bob.swap.state)
        # Never funded twice: one payment to a contract (the only P2WSH outputs) per chain.
        for chain in w.chains.values():
            assert sum(len(o.script_pubkey) == 34 for o in chain.outputs.values()) == 1, k
