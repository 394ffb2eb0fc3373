"""`canal swapd`: automatic atomic swaps between two real swap daemons on real alpha and beta nodes.

Alice and Bob each run their own alpha and beta node (the two alpha nodes peer, as
do the two beta nodes) and their own swapd on them, so wallet balances show
exactly what the swap moved. Blocks are mined to an address nobody owns, only when
a mempool holds a transaction (locks are short: 24 alpha blocks for the initiator,
48 beta blocks for the participant). The kill-at-each-step matrix (SIGKILL right
after each persisted state, on either side, then a restart) is marked slow.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from base_chain.crypto import PrivateKey
from base_chain.hashes import hash160, sha256
from base_chain.params import get_params
from base_chain.tx import Transaction
from canal.cli import main as canal_main
from canal.demo_swapd import (
    INITIATOR_LOCK_S,
    PARTICIPANT_LOCK_S,
    burn_address,
    mine_while_pending,
    start_swapd,
    swap_state,
    wait_swap,
)
from canal.procs import SwapProcess
from daemons import ChainProcess, wait_for
from proto import chain_pb2 as pb
from proto import swap_pb2 as spb
from relay.contract import ContractInfo, contract_address
from relay.swap_peer import PeerClient
from relay.swapd import CRASH_ENV

COIN = 100_000_000
MAX_FEE = 100_000


class Net:
    def __init__(self, root: Path) -> None:
        self.alice_alpha = ChainProcess(root / "alice-alpha", "alpha")
        self.alice_beta = ChainProcess(root / "alice-beta", "beta")
        self.bob_alpha: ChainProcess
        self.bob_beta: ChainProcess
        self.alice: SwapProcess
        self.bob: SwapProcess
        self.burn = {"alpha": burn_address("alpha"), "beta": burn_address("beta")}
        self.root = root

    @property
    def miners(self) -> list[ChainProcess]:
        return [self.alice_alpha, self.alice_beta]

    @property
    def nodes(self) -> list[ChainProcess]:
        return [self.alice_alpha, self.alice_beta, self.bob_alpha, self.bob_beta]

    def synced(self) -> None:
        wait_for(lambda: self.alice_alpha.best() == self.bob_alpha.best() and
                 self.alice_beta.best() == self.bob_beta.best(), 30, "the nodes to sync")

    def mine(self, node: ChainProcess, n: int) -> None:
        node.generate(n, self.burn[node.chain])
        self.synced()

    def balances(self) -> dict[str, int]:
        """Each wallet's mined coins, mature or not (later blocks go to nobody's address: only swaps move these)."""
        def mined(node: ChainProcess) -> int:
            b = node.rpc.GetBalance(pb.GetBalanceRequest(minconf=1))
            return int(b.confirmed_sat) + int(b.immature_sat)

        return {name: mined(node)
                for name, node in (("alice_alpha", self.alice_alpha), ("alice_beta", self.alice_beta),
                                   ("bob_alpha", self.bob_alpha), ("bob_beta", self.bob_beta))}

    def initiate(self, alpha_sat: int, beta_sat: int) -> str:
        status = self.alice.rpc.InitiateSwap(spb.InitiateSwapRequest(
            peer=self.bob.peer_addr, send_chain="alpha", send_amount_sat=alpha_sat, receive_chain="beta",
            receive_amount_sat=beta_sat, initiator_lock_s=INITIATOR_LOCK_S, participant_lock_s=PARTICIPANT_LOCK_S),
            timeout=60)
        return str(status.swap_id)

    def finish(self, swap_id: str, timeout: float = 120.0) -> list[str]:
        states = wait_swap(self.miners, self.burn, [self.alice, self.bob], swap_id, timeout)
        self.synced()
        return states


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    n = Net(tmp_path_factory.mktemp("swapd"))
    started: list[ChainProcess | SwapProcess] = []
    try:
        for node in (n.alice_alpha, n.alice_beta):
            node.start()
            started.append(node)
        n.bob_alpha = ChainProcess(n.root / "bob-alpha", "alpha", connect=[n.alice_alpha.p2p_addr])
        n.bob_beta = ChainProcess(n.root / "bob-beta", "beta", connect=[n.alice_beta.p2p_addr])
        for node in (n.bob_alpha, n.bob_beta):
            node.start()
            started.append(node)
        n.alice_alpha.generate(101)  # Alice's coins are on alpha, Bob's on beta
        n.bob_beta.generate(101)
        n.synced()
        n.alice = start_swapd(n.root / "alice-swapd", n.alice_alpha, n.alice_beta)
        started.append(n.alice)
        n.bob = start_swapd(n.root / "bob-swapd", n.bob_alpha, n.bob_beta,
                            auto_accept="alpha=0,beta=300000000")
        started.append(n.bob)
        yield n
    finally:
        for proc in reversed(started):
            proc.stop()


def test_full_swap_moves_coins_on_both_chains(net: Net, capsys: pytest.CaptureFixture[str]) -> None:
    before = net.balances()
    swap_id = net.initiate(COIN, 2 * COIN)
    assert net.finish(swap_id) == ["redeemed", "redeemed"]
    after = net.balances()
    assert 0 < before["alice_alpha"] - after["alice_alpha"] - COIN < MAX_FEE  # paid 1 alpha + the contract fee
    assert 0 < 2 * COIN - (after["alice_beta"] - before["alice_beta"]) < MAX_FEE  # got 2 beta - the redeem fee
    assert 0 < before["bob_beta"] - after["bob_beta"] - 2 * COIN < MAX_FEE
    assert 0 < COIN - (after["bob_alpha"] - before["bob_alpha"]) < MAX_FEE

    # The client CLI (lncli/loop style): status --json, list.
    capsys.readouterr()
    assert canal_main(["swapcli", "--datadir", str(net.alice.datadir), "--json", "status", swap_id]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "redeemed" and status["role"] == "initiator" and status["finished"]
    assert status["send_chain"] == "alpha" and int(status["send_amount_sat"]) == COIN
    ours, theirs = status["our_contract"], status["their_contract"]
    assert ours["address"].startswith("alpha1q") and theirs["address"].startswith("beta1q")
    assert int(ours["amount_sat"]) == COIN and int(theirs["amount_sat"]) == 2 * COIN
    assert int(ours["mined_height"]) > 0 and int(theirs["mined_height"]) > 0
    assert status["redeem_txid"] and set(status["heights"]) == {"alpha", "beta"}
    assert canal_main(["swapcli", "--datadir", str(net.bob.datadir), "list"]) == 0
    out = capsys.readouterr().out
    assert f"swap {swap_id}  participant  redeemed" in out and "locktime" in out
    assert canal_main(["swapcli", "--datadir", str(net.bob.datadir), "status", "nope"]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err


def test_offer_above_the_policy_waits_for_accept(net: Net, capsys: pytest.CaptureFixture[str]) -> None:
    swap_id = net.initiate(COIN, 4 * COIN)  # Bob auto-accepts up to 3 beta
    wait_for(lambda: swap_state(net.bob, swap_id) == "pending_accept", 30, "the offer to reach bob")
    assert swap_state(net.alice, swap_id) == "proposed"
    capsys.readouterr()
    assert canal_main(["swapcli", "--datadir", str(net.bob.datadir), "--json", "accept", swap_id]) == 0
    assert json.loads(capsys.readouterr().out)["state"] in ("created", "awaiting_counter_contract")
    assert canal_main(["swapcli", "--datadir", str(net.bob.datadir), "accept", swap_id]) == 1  # only once
    assert "FAILED_PRECONDITION" in capsys.readouterr().err
    assert net.finish(swap_id) == ["redeemed", "redeemed"]


def test_participant_refuses_a_counter_contract_with_wrong_terms(net: Net) -> None:
    """The test plays a dishonest initiator against Bob's swapd: its contract pays less than agreed."""
    key = PrivateKey.generate()
    secret_hash = sha256(secrets.token_bytes(32))
    swap_id = secrets.token_hex(16)
    offer = spb.SwapOffer(
        swap_id=swap_id, initiator_chain="alpha", initiator_amount_sat=COIN, participant_chain="beta",
        participant_amount_sat=COIN, secret_hash=secret_hash.hex(),
        initiator_pkh=hash160(key.public_key().to_bytes()).hex(), initiator_lock_s=INITIATOR_LOCK_S,
        participant_lock_s=PARTICIPANT_LOCK_S, safety_margin_s=3600, reply_to="127.0.0.1:9")
    peer = PeerClient(net.bob.peer_addr)
    try:
        reply = peer.propose(offer)
        assert reply.decision == spb.OfferReply.ACCEPTED and len(bytes.fromhex(reply.participant_pkh)) == 20
        assert peer.propose(offer).participant_pkh == reply.participant_pkh  # idempotent

        # An offer outside the policy is refused with its reason.
        bad = spb.SwapOffer()
        bad.CopyFrom(offer)
        bad.swap_id, bad.participant_lock_s = secrets.token_hex(16), INITIATOR_LOCK_S
        refused = peer.propose(bad)
        assert refused.decision == spb.OfferReply.REJECTED and "lock" in refused.reason

        with pytest.raises(grpc.RpcError) as e:
            peer.share_contract(spb.ContractMessage(swap_id=swap_id, contract="zz", contract_tx="00"))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        bob_beta = net.balances()["bob_beta"]
        params = get_params("alpha")
        info = ContractInfo(secret_hash, bytes.fromhex(reply.participant_pkh), hash160(key.public_key().to_bytes()),
                            net.alice_alpha.height() + 24)
        contract = info.script()
        sent = net.alice_alpha.rpc.SendToAddress(pb.SendToAddressRequest(
            address=contract_address(contract, params.address_prefixes), amount_sat=COIN - 1000))
        tx = Transaction.from_hex(net.alice_alpha.rpc.GetRawTransaction(pb.GetRawTransactionRequest(txid=sent.txid)).hex)
        peer.share_contract(spb.ContractMessage(swap_id=swap_id, contract=contract.hex(), contract_tx=tx.hex()))
        status = net.bob.rpc.SwapInfo(spb.SwapInfoRequest(swap_id=swap_id))
        assert status.state == "aborted" and "amount" in status.reason, status
        peer.share_contract(spb.ContractMessage(swap_id=swap_id, contract=contract.hex(), contract_tx=tx.hex()))
        net.mine(net.alice_alpha, 1)
        assert net.balances()["bob_beta"] == bob_beta  # Bob locked nothing
        assert not net.bob.rpc.GetInfo(spb.GetInfoRequest()).active_swaps
    finally:
        peer.close()


def test_participant_abandons_an_accepted_swap_the_initiator_never_locks(net: Net) -> None:
    """A (test-played) initiator whose offer Bob accepted never sends a contract: after 2 h of alpha blocks
    (12) Bob's daemon abandons the swap, having locked nothing."""
    key = PrivateKey.generate()
    swap_id = secrets.token_hex(16)
    offer = spb.SwapOffer(
        swap_id=swap_id, initiator_chain="alpha", initiator_amount_sat=COIN, participant_chain="beta",
        participant_amount_sat=COIN, secret_hash=sha256(secrets.token_bytes(32)).hex(),
        initiator_pkh=hash160(key.public_key().to_bytes()).hex(), initiator_lock_s=INITIATOR_LOCK_S,
        participant_lock_s=PARTICIPANT_LOCK_S, safety_margin_s=3600, reply_to="127.0.0.1:9")
    peer = PeerClient(net.bob.peer_addr)
    try:
        assert peer.propose(offer).decision == spb.OfferReply.ACCEPTED
    finally:
        peer.close()
    wait_for(lambda: swap_state(net.bob, swap_id) == "awaiting_counter_contract", 30, "bob to wait")
    net.mine(net.alice_alpha, 11)
    assert swap_state(net.bob, swap_id) == "awaiting_counter_contract"
    net.mine(net.alice_alpha, 1)
    wait_for(lambda: swap_state(net.bob, swap_id) == "aborted", 30, "bob to give up")
    assert "no contract from the initiator" in net.bob.rpc.SwapInfo(spb.SwapInfoRequest(swap_id=swap_id)).reason


def test_initiator_gone_both_refund_after_the_locktimes(net: Net) -> None:
    before = net.balances()
    net.alice.stop()
    net.alice.env = {CRASH_ENV: "initiator:counter_contract_seen"}
    net.alice.start()
    swap_id = net.initiate(COIN, COIN)
    # Alice dies once Bob's contract reached her (before it confirmed): she never redeems.
    mine_while_pending(net.miners, net.burn, lambda: not net.alice.alive(), 60)
    def bob_contract_mined() -> bool:
        s = net.bob.rpc.SwapInfo(spb.SwapInfoRequest(swap_id=swap_id))
        return s.state == "awaiting_secret" and s.our_contract.mined_height > 0

    mine_while_pending(net.miners, net.burn, bob_contract_mined, 60)
    status = net.bob.rpc.SwapInfo(spb.SwapInfoRequest(swap_id=swap_id))
    assert status.our_contract.blocks_to_refund > 0
    net.mine(net.alice_beta, status.our_contract.blocks_to_refund)  # Bob's lock ends
    mine_while_pending(net.miners, net.burn, lambda: swap_state(net.bob, swap_id) == "refunded", 60)

    net.alice.start()  # Alice comes back: too late to redeem; her refund once her lock ends
    wait_for(lambda: swap_state(net.alice, swap_id) == "awaiting_refund", 30, "alice to give up")
    mine = net.alice.rpc.SwapInfo(spb.SwapInfoRequest(swap_id=swap_id)).our_contract
    net.mine(net.alice_alpha, max(0, mine.blocks_to_refund))
    assert net.finish(swap_id) == ["refunded", "refunded"]
    after = net.balances()
    for who in ("alice_alpha", "bob_beta"):
        assert 0 < before[who] - after[who] < 2 * MAX_FEE  # only the contract and refund fees
    assert after["alice_beta"] == before["alice_beta"] and after["bob_alpha"] == before["bob_alpha"]


CRASH_POINTS = [("alice", s) for s in ("funding", "paid", "awaiting_counter_contract", "counter_contract_seen",
                                       "redeeming", "redeemed")] + \
               [("bob", s) for s in ("awaiting_counter_contract", "counter_contract_seen", "funding", "paid",
                                     "awaiting_secret", "redeeming", "redeemed")]


@pytest.mark.slow
@pytest.mark.parametrize("who,point", CRASH_POINTS, ids=[f"{w}-{p}" for w, p in CRASH_POINTS])
def test_sigkill_at_each_step_loses_nothing(net: Net, who: str, point: str) -> None:
    victim = net.alice if who == "alice" else net.bob
    role = "initiator" if who == "alice" else "participant"
    before = net.balances()
    victim.stop()
    victim.env = {CRASH_ENV: f"{role}:{point}"}
    victim.start()
    swap_id = net.initiate(COIN // 2, COIN // 2)
    mine_while_pending(net.miners, net.burn, lambda: not victim.alive(), 90)
    assert "fault injection: SIGKILL at " + point in (victim.datadir / "debug.log").read_text()
    victim.start()
    states = net.finish(swap_id)
    if point == "paid":  # paid, then killed before recording it: the restart finds the payment, never pays twice
        assert "contract already paid by" in (victim.datadir / "debug.log").read_text()
    assert states in (["redeemed", "redeemed"], ["refunded", "refunded"]), states
    after = net.balances()
    if states[0] == "redeemed":
        assert 0 < before["alice_alpha"] - after["alice_alpha"] - COIN // 2 < MAX_FEE
        assert 0 < COIN // 2 - (after["alice_beta"] - before["alice_beta"]) < MAX_FEE
        assert 0 < before["bob_beta"] - after["bob_beta"] - COIN // 2 < MAX_FEE
        assert 0 < COIN // 2 - (after["bob_alpha"] - before["bob_alpha"]) < MAX_FEE


@pytest.mark.slow
def test_counter_contract_reorged_out_and_back(net: Net) -> None:
    """Bob (min_conf 2 on alpha) sees Alice's contract mined in a block that a longer alpha chain replaces:
    TxReorged, then the contract confirmed again in the new chain, and the swap completes."""
    alice = start_swapd(net.root / "alice-reorg", net.alice_alpha, net.alice_beta, min_conf="alpha=2,beta=1")
    bob = start_swapd(net.root / "bob-reorg", net.bob_alpha, net.bob_beta, min_conf="alpha=2,beta=1",
                      auto_accept="alpha=0,beta=300000000")
    try:
        status = alice.rpc.InitiateSwap(spb.InitiateSwapRequest(
            peer=bob.peer_addr, send_chain="alpha", send_amount_sat=COIN, receive_chain="beta",
            receive_amount_sat=COIN, initiator_lock_s=INITIATOR_LOCK_S, participant_lock_s=PARTICIPANT_LOCK_S),
            timeout=60)
        swap_id = status.swap_id

        def contract_txid() -> str:
            return str(alice.rpc.SwapInfo(spb.SwapInfoRequest(swap_id=swap_id)).our_contract.txid)

        wait_for(contract_txid, 30, "alice's contract")
        txid = contract_txid()
        wait_for(lambda: txid in net.bob_alpha.rpc.GetRawMempool(pb.GetRawMempoolRequest()).txids, 30, "relay")
        net.bob_alpha.rpc.AddNode(pb.AddNodeRequest(node=net.alice_alpha.p2p_addr, command="remove"))
        wait_for(lambda: not net.bob_alpha.rpc.GetPeerInfo(pb.GetPeerInfoRequest()).peers, 30, "the partition")
        height = net.bob_alpha.height() + 1
        net.bob_alpha.generate(1, net.burn["alpha"])  # Bob's side: the contract at depth 1

        def bob_saw_it() -> bool:
            return bool(bob.rpc.SwapInfo(spb.SwapInfoRequest(swap_id=swap_id)).their_contract.mined_height == height)

        wait_for(bob_saw_it, 30, "bob to see the contract mined")
        net.alice_alpha.generate(2, burn_address("alpha"))  # a longer chain with other blocks
        net.bob_alpha.rpc.AddNode(pb.AddNodeRequest(node=net.alice_alpha.p2p_addr, command="add"))
        net.synced()

        def finished() -> bool:  # min_conf 2 on alpha: a block more there each round, whatever the mempool
            if all(swap_state(p, swap_id) in ("redeemed", "refunded", "failed") for p in (alice, bob)):
                return True
            net.alice_alpha.generate(1, net.burn["alpha"])
            return False

        mine_while_pending(net.miners, net.burn, finished, 120)
        assert [swap_state(alice, swap_id), swap_state(bob, swap_id)] == ["redeemed", "redeemed"]
        assert f"alpha: {txid} reorged out of block {height}" in (bob.datadir / "debug.log").read_text()
    finally:
        alice.stop()
        bob.stop()
        net.bob_alpha.rpc.AddNode(pb.AddNodeRequest(node=net.alice_alpha.p2p_addr, command="add"))


def test_core_abandon_only_while_nothing_of_ours_is_locked() -> None:
    from relay.swap import ChainConfig, HeightObserved, Role, Swap, SwapError, SwapTerms

    def make(role: Role) -> Swap:
        secret = secrets.token_bytes(32)
        ours, theirs = (ChainConfig("alpha", 600), ChainConfig("beta", 150))
        terms = SwapTerms(role, ours, theirs, COIN, COIN, sha256(secret), bytes(20))
        return Swap(terms, PrivateKey.generate(), b"\x00\x14" + bytes(20), b"\x00\x14" + bytes(20),
                    secret if role is Role.INITIATOR else None)

    participant = make(Role.PARTICIPANT)
    participant.start()
    effects = participant.abandon("bored")
    assert participant.state.value == "aborted" and participant.reason == "bored" and len(effects) == 2
    initiator = make(Role.INITIATOR)
    initiator.handle(HeightObserved("alpha", 100))
    initiator.start()  # FUNDING: our contract exists
    with pytest.raises(SwapError):
        initiator.abandon("bored")


async def test_participant_keeps_a_swap_whose_contract_arrives_while_the_abandon_waits(tmp_path: Path) -> None:
    """The timeout fires while another task (a ShareContract handler) holds the swap: once it has the swap,
    the counter-contract is there and the swap goes on (the state is read again under the lock)."""
    import trio
    import trio.testing
    from test_swap_state import ALICE_PKH, ALPHA_AMOUNT, BOB_PKH, contract_with_tx, participant

    from relay.swap import CounterContractReceived, HeightObserved, SwapState
    from relay.swap_store import SwapRow, SwapStore
    from relay.swapd import Policy, SwapDaemon, _Runner

    p = participant()
    p.start()
    p.handle(HeightObserved("alpha", 100))
    p.handle(HeightObserved("beta", 1000))
    daemon = SwapDaemon.__new__(SwapDaemon)
    daemon.policy = Policy(counter_contract_timeout_s=600)
    daemon.store = SwapStore(tmp_path / "swapd.sqlite")
    daemon._crash_at = ""
    row = SwapRow("s1", "participant", "127.0.0.1:1", p.state.value, {}, p.to_dict(), {"accepted_height": 100})
    daemon.store.insert(row)
    runner = _Runner(row, p)
    await runner.lock.acquire()  # the contract handler has the swap
    async with trio.open_nursery() as nursery:
        nursery.start_soon(daemon._maybe_abandon, runner, HeightObserved("alpha", 110))
        await trio.testing.wait_all_tasks_blocked()
        script, tx = contract_with_tx(locktime=100 + 288, amount=ALPHA_AMOUNT, recipient=BOB_PKH, refund=ALICE_PKH)
        p.handle(CounterContractReceived(script, tx))
        runner.lock.release()
    assert p.state is SwapState.COUNTER_CONTRACT_SEEN
    daemon.store.close()
