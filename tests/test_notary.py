"""The peg notary committee (relay.committee, relay.attestation, relay.notary): pure and fast.

Deposits and reserves are real base_chain transactions in a small in-memory
chain (FakeChain, a ChainView) that can mine, hold a mempool and reorganise.
Every assembled transaction is checked with verify_script on every input.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from base_chain.address import address_to_script, script_to_address
from base_chain.crypto import PrivateKey
from base_chain.params import get_params
from base_chain.policy import check_standard_tx, is_witness_standard
from base_chain.script import STANDARD_FLAGS, verify_script
from base_chain.templates import multisig, p2wpkh, p2wsh
from base_chain.tx import OutPoint, Transaction, TxIn, TxOut
from relay.attestation import (
    Assembly,
    Attestation,
    ReleaseError,
    SweepSignature,
    AssemblyError,
    InsufficientSignatures,
    NotarySignature,
    PegClaim,
    assemble_release,
    assemble_sweep,
    build_release,
    claim_of_release,
    release_binding,
    sighashes,
    sign_inputs,
)
from relay.committee import (
    Committee,
    CommitteeError,
    CommitteeStatus,
    ReserveCoin,
    build_sweep,
    rotate,
)
from relay.notary import (
    Notary,
    NotaryState,
    NotaryStateError,
    PegPolicy,
    Refusal,
    ReleaseRequest,
    ViewOutput,
    propose_release,
)

ALPHA, BETA = "alpha", "beta"
KEYS = [PrivateKey(0x1001), PrivateKey(0x1002), PrivateKey(0x1003)]
NEW_KEYS = [PrivateKey(0x2001), PrivateKey(0x2002), PrivateKey(0x2003)]
OUTSIDER = PrivateKey(0x6666)
POLICY = PegPolicy(min_confirmations={ALPHA: 6, BETA: 24}, release_fee_sat={ALPHA: 2_000, BETA: 1_000})
USER_KEY = PrivateKey(0xA11CE)


def addr(chain: str, key: PrivateKey = USER_KEY) -> str:
    a = script_to_address(p2wpkh(key.public_key().to_bytes()), get_params(chain).address_prefixes)
    assert a is not None
    return a


def pubs(keys: Sequence[PrivateKey]) -> list[bytes]:
    return [k.public_key().to_bytes() for k in keys]


# --- an in-memory chain -----------------------------------------------------------------------

_counter = itertools.count(1)


class FakeChain:
    """Blocks of real transactions, a mempool, reorgs. Implements relay.notary.ChainView."""

    def __init__(self, name: str, base_height: int = 100) -> None:
        self.name = name
        self.base = base_height
        self.blocks: list[list[Transaction]] = []
        self.mempool: list[Transaction] = []

    @property
    def height(self) -> int:
        return self.base + len(self.blocks)

    def mine(self, n: int = 1) -> None:
        for _ in range(n):
            self.blocks.append(self.mempool)
            self.mempool = []

    def reorg(self, depth: int) -> None:
        """Drop the last ``depth`` blocks; their transactions are gone (double-spent on the new branch)."""
        del self.blocks[len(self.blocks) - depth :]

    def send(self, tx: Transaction) -> Transaction:
        self.mempool.append(tx)
        return tx

    def pay(self, script_pubkey: bytes, amount_sat: int) -> OutPoint:
        """A transaction from somebody's coin paying ``amount_sat`` to ``script_pubkey`` (plus change)."""
        n = next(_counter)
        tx = Transaction(
            inputs=[TxIn(OutPoint(n.to_bytes(32, "little"), 0))],
            outputs=[TxOut(amount_sat, script_pubkey), TxOut(10_000 + n, p2wpkh(USER_KEY.public_key().to_bytes()))],
        )
        self.send(tx)
        return OutPoint(tx.txid, 0)

    def _locate(self, txid: bytes) -> tuple[Transaction, int] | None:
        for h, block in enumerate(self.blocks, start=self.base + 1):
            for tx in block:
                if tx.txid == txid:
                    return tx, self.height - h + 1
        for tx in self.mempool:
            if tx.txid == txid:
                return tx, 0
        return None

    def get_output(self, outpoint: OutPoint) -> ViewOutput | None:
        found = self._locate(outpoint.txid)
        if found is None or outpoint.index >= len(found[0].outputs):
            return None
        tx, depth = found
        spent = any(
            txin.prevout == outpoint for b in [*self.blocks, self.mempool] for t in b for txin in t.inputs
        )
        return ViewOutput(tx.outputs[outpoint.index], depth, spent)

    def confirmations(self, txid: bytes) -> int | None:
        found = self._locate(txid)
        return None if found is None else found[1]

    def coin(self, outpoint: OutPoint, witness_script: bytes) -> ReserveCoin:
        out = self.get_output(outpoint)
        assert out is not None
        return ReserveCoin(outpoint, out.txout, witness_script)


class World:
    """Two chains, a 2-of-3 committee with reserves on both, and its three notaries."""

    def __init__(self) -> None:
        self.chains = {ALPHA: FakeChain(ALPHA), BETA: FakeChain(BETA, base_height=400)}
        self.committee = Committee.create(1, pubs(KEYS), 2, {ALPHA: 0, BETA: 0})
        self.notaries = [Notary(k, [self.committee], POLICY) for k in KEYS]
        self.reserve: dict[str, OutPoint] = {}
        for chain in (ALPHA, BETA):
            self.reserve[chain] = self.chains[chain].pay(self.committee.reserve_script_pubkey(chain), 5_000_000)
            self.chains[chain].mine(30)

    @property
    def tips(self) -> dict[str, int]:
        return {c: ch.height for c, ch in self.chains.items()}

    def deposit(self, src: str, dest: str, amount: int, committee: Committee | None = None, dest_addr: str | None = None) -> OutPoint:
        c = committee or self.committee
        dep_addr = c.deposit_address(src, dest, dest_addr or addr(dest))
        spk = address_to_script(dep_addr, get_params(src).address_prefixes)
        return self.chains[src].pay(spk, amount)

    def reserve_coin(self, chain: str, op: OutPoint | None = None, committee: Committee | None = None) -> ReserveCoin:
        c = committee or self.committee
        return self.chains[chain].coin(op or self.reserve[chain], c.reserve_witness_script(chain))

    def request(
        self, src: str, dest: str, dep: OutPoint, amount: int, coins: Sequence[ReserveCoin] | None = None,
        committee: Committee | None = None, dest_addr: str | None = None,
    ) -> ReleaseRequest:
        c = committee or self.committee
        return propose_release(
            c, source_chain=src, deposit=dep, amount_sat=amount, destination_chain=dest,
            destination_address=dest_addr or addr(dest), fee_sat=POLICY.release_fee_sat[dest],
            coins=coins if coins is not None else [self.reserve_coin(dest, committee=c)],
        )

    def review(self, i: int, req: ReleaseRequest) -> NotarySignature | Refusal:
        return self.notaries[i].review_deposit(req, self.chains, self.tips)


def signed(result: NotarySignature | Refusal) -> NotarySignature:
    assert isinstance(result, NotarySignature), result
    return result


def sweep_signed(result: SweepSignature | Refusal) -> SweepSignature:
    assert isinstance(result, SweepSignature), result
    return result


def refused(result: NotarySignature | SweepSignature | Refusal, reason: str) -> Refusal:
    assert isinstance(result, Refusal), f"expected refusal {reason}, got a signature"
    assert result.reason == reason, str(result)
    return result


def claim_of(req: ReleaseRequest) -> PegClaim:
    return req.claim(address_to_script(req.destination_address, get_params(req.destination_chain).address_prefixes))


def assemble(w: World, req: ReleaseRequest, sigs: Sequence[NotarySignature], committee: Committee | None = None) -> Assembly:
    c = committee or w.committee
    dest = req.destination_chain
    coins = [w.chains[dest].coin(i.prevout, c.reserve_witness_script(dest)) for i in req.release.inputs]
    return assemble_release(c, claim_of(req), req.release, coins, sigs, destination_height=w.tips[dest])


def assert_spends(w: World, chain: str, tx: Transaction) -> None:
    """Every input passes verify_script (STANDARD_FLAGS), and the transaction is standard."""
    for i, txin in enumerate(tx.inputs):
        prev = w.chains[chain].get_output(txin.prevout)
        assert prev is not None
        verify_script(txin.script_sig, prev.txout.script_pubkey, txin.witness, STANDARD_FLAGS, tx, i, prev.txout.amount_sat)
    check_standard_tx(tx)
    spent = [w.chains[chain].get_output(i.prevout) for i in tx.inputs]
    assert is_witness_standard(tx, [s.txout for s in spent if s is not None])


@pytest.fixture
def world() -> World:
    return World()


# --- the committee ----------------------------------------------------------------------------


def test_committee_scripts_are_sorted_tagged_and_distinct(world: World) -> None:
    c = world.committee
    assert list(c.pubkeys) == sorted(pubs(KEYS))
    assert Committee.create(1, reversed(pubs(KEYS)), 2, {ALPHA: 0, BETA: 0}) == c
    assert c.reserve_address(ALPHA).startswith("alpha1") and c.reserve_address(BETA).startswith("beta1")
    # The M-of-N check is the tail of every script; the tag makes each one unique.
    assert c.reserve_witness_script(ALPHA).endswith(multisig(2, sorted(pubs(KEYS))))
    scripts = {
        c.reserve_script_pubkey(ALPHA),
        c.reserve_script_pubkey(BETA),
        c.deposit_script_pubkey(ALPHA, BETA, p2wpkh(USER_KEY.public_key().to_bytes())),
        c.deposit_script_pubkey(ALPHA, BETA, p2wpkh(OUTSIDER.public_key().to_bytes())),
        c.deposit_script_pubkey(BETA, ALPHA, p2wpkh(USER_KEY.public_key().to_bytes())),
        p2wsh(c.multisig_script),
    }
    assert len(scripts) == 6
    other = Committee.create(2, pubs(KEYS), 2, {ALPHA: 0, BETA: 0})
    assert other.reserve_script_pubkey(ALPHA) != c.reserve_script_pubkey(ALPHA)  # same keys, other epoch
    assert Committee.from_dict(json.loads(json.dumps(c.to_dict()))) == c


def test_committee_rejects_bad_parameters() -> None:
    with pytest.raises(CommitteeError, match="threshold"):
        Committee.create(1, pubs(KEYS), 4, {ALPHA: 0})
    with pytest.raises(CommitteeError, match="duplicate"):
        Committee.create(1, pubs(KEYS) + pubs(KEYS[:1]), 2, {ALPHA: 0})
    with pytest.raises(CommitteeError, match="sorted"):
        Committee(1, tuple(reversed(sorted(pubs(KEYS)))), 2)
    with pytest.raises(ValueError, match="unknown chain"):
        Committee.create(1, pubs(KEYS), 2, {"gamma": 0})
    # 2-of-4: two disjoint honest pairs could each release the same deposit once.
    with pytest.raises(CommitteeError, match="majority"):
        Committee.create(1, pubs(KEYS + NEW_KEYS[:1]), 2, {ALPHA: 0})
    assert Committee.create(1, pubs(KEYS + NEW_KEYS[:1]), 3, {ALPHA: 0}).threshold == 3


# --- peg-in and peg-out -----------------------------------------------------------------------


def test_honest_peg_in_two_of_three_release_verifies(world: World) -> None:
    dep = world.deposit(ALPHA, BETA, 250_000)
    world.chains[ALPHA].mine(6)
    req = world.request(ALPHA, BETA, dep, 250_000)
    sigs = [signed(world.review(0, req)), signed(world.review(2, req))]
    result = assemble(world, req, sigs)
    tx = result.tx
    assert_spends(world, BETA, tx)
    assert len(result.signers) == 2 and not result.ignored
    # Outputs: amount - fee to the user, change to the reserve, the binding.
    user_spk = p2wpkh(USER_KEY.public_key().to_bytes())
    assert tx.outputs[0] == TxOut(250_000 - 1_000, user_spk)
    assert tx.outputs[1] == TxOut(5_000_000 - 250_000, world.committee.reserve_script_pubkey(BETA))
    assert claim_of_release(tx) == claim_of(req).claim_id
    assert tx.outputs[2].amount_sat == 0
    # Miner fee is exactly the published fee: the beta reserve shrinks by the amount, no more.
    assert 5_000_000 - sum(o.amount_sat for o in tx.outputs) == 1_000


def test_all_three_sign_assembly_uses_m_in_key_order(world: World) -> None:
    dep = world.deposit(ALPHA, BETA, 100_000)
    world.chains[ALPHA].mine(6)
    req = world.request(ALPHA, BETA, dep, 100_000)
    sigs = [signed(world.review(i, req)) for i in (2, 0, 1)]
    result = assemble(world, req, sigs)
    assert list(result.signers) == list(world.committee.pubkeys[:2])
    assert_spends(world, BETA, result.tx)


def test_peg_out_is_the_mirror_image(world: World) -> None:
    dep = world.deposit(BETA, ALPHA, 400_000)
    world.chains[BETA].mine(23)
    req = world.request(BETA, ALPHA, dep, 400_000)
    refused(world.review(0, req), "peg-deposit-unconfirmed")  # beta needs 24
    world.chains[BETA].mine(1)
    sigs = [signed(world.review(0, req)), signed(world.review(1, req))]
    tx = assemble(world, req, sigs).tx
    assert_spends(world, ALPHA, tx)
    assert tx.outputs[0].amount_sat == 400_000 - 2_000
    assert tx.outputs[1].script_pubkey == world.committee.reserve_script_pubkey(ALPHA)


def test_multi_input_release(world: World) -> None:
    extra = world.chains[BETA].pay(world.committee.reserve_script_pubkey(BETA), 300_000)
    world.chains[BETA].mine(1)
    dep = world.deposit(ALPHA, BETA, 5_200_000)
    world.chains[ALPHA].mine(6)
    coins = [world.reserve_coin(BETA), world.reserve_coin(BETA, extra)]
    req = world.request(ALPHA, BETA, dep, 5_200_000, coins=coins)
    sigs = [signed(world.review(0, req)), signed(world.review(1, req))]
    tx = assemble(world, req, sigs).tx
    assert len(tx.inputs) == 2
    assert_spends(world, BETA, tx)


# --- fewer than M, forgeries ------------------------------------------------------------------


def test_one_honest_and_one_forged_signature_cannot_release(world: World) -> None:
    dep = world.deposit(ALPHA, BETA, 250_000)
    world.chains[ALPHA].mine(6)
    req = world.request(ALPHA, BETA, dep, 250_000)
    honest = signed(world.review(0, req))
    # An attacker without notary 1's key signs in its name.
    forged = NotarySignature(
        world.notaries[1].pubkey,
        honest.attestation,
        sign_inputs(OUTSIDER, honest.attestation.release_sighashes),
        OUTSIDER.sign_der(honest.attestation.digest),
    )
    # An outsider signs as itself; and the honest signature is sent twice.
    stranger = NotarySignature(
        OUTSIDER.public_key().to_bytes(),
        honest.attestation,
        sign_inputs(OUTSIDER, honest.attestation.release_sighashes),
        OUTSIDER.sign_der(honest.attestation.digest),
    )
    with pytest.raises(InsufficientSignatures) as exc:
        assemble(world, req, [honest, forged, stranger, honest])
    reasons = [x.reason for x in exc.value.ignored]
    assert reasons == [
        "attestation signature does not verify",
        "not a member of committee epoch 1",
        "duplicate: this notary already signed",
    ]
    assert "1 valid of 2 needed" in str(exc.value)
    with pytest.raises(InsufficientSignatures, match="0 valid of 2"):
        assemble(world, req, [])


def test_input_signatures_from_another_release_are_refused(world: World) -> None:
    dep = world.deposit(ALPHA, BETA, 250_000)
    world.chains[ALPHA].mine(6)
    req = world.request(ALPHA, BETA, dep, 250_000)
    honest = signed(world.review(0, req))
    # Notary 1's key, correct attestation, but input signatures over a release paying someone else.
    key = KEYS[1]
    other_claim = replace(claim_of(req), destination_script=p2wpkh(OUTSIDER.public_key().to_bytes()))
    coin = world.reserve_coin(BETA)
    other_release = build_release(world.committee, other_claim, [coin])
    wrong_inputs = sign_inputs(key, sighashes(other_release, [coin.witness_script], [coin.txout.amount_sat]))
    mixed = NotarySignature(key.public_key().to_bytes(), honest.attestation, wrong_inputs, key.sign_der(honest.attestation.digest))
    with pytest.raises(InsufficientSignatures) as exc:
        assemble(world, req, [honest, mixed])
    assert exc.value.ignored[0].reason == "input 0: signature does not verify against this transaction"


@pytest.mark.parametrize(
    "change",
    [
        {"amount_sat": 260_000},
        {"destination_script": p2wpkh(OUTSIDER.public_key().to_bytes())},
        {"source_chain": BETA, "destination_chain": ALPHA},
        {"fee_sat": 500},
        {"deposit": OutPoint(b"\x11" * 32, 0)},
    ],
    ids=["amount", "destination", "chain", "fee", "deposit"],
)
def test_signature_over_a_different_claim_is_refused_at_assembly(world: World, change: dict[str, object]) -> None:
    """A notary's genuine signature of another claim (its own key, valid format) does not count."""
    dep = world.deposit(ALPHA, BETA, 250_000)
    world.chains[ALPHA].mine(6)
    req = world.request(ALPHA, BETA, dep, 250_000)
    honest = signed(world.review(0, req))
    key = KEYS[1]
    claim = claim_of(req)
    other = replace(claim, **change)  # type: ignore[arg-type]
    # A release for the other claim, from a reserve of the same committee on its destination chain.
    coin = world.reserve_coin(other.destination_chain)
    other_release = build_release(world.committee, other, [coin])
    digests = sighashes(other_release, [coin.witness_script], [coin.txout.amount_sat])
    att = replace(honest.attestation, claim=other, release_txid=other_release.txid, release_sighashes=digests)
    forged = NotarySignature(key.public_key().to_bytes(), att, sign_inputs(key, digests), key.sign_der(att.digest))
    with pytest.raises(InsufficientSignatures) as exc:
        assemble(world, req, [honest, forged])
    (ignored,) = exc.value.ignored
    assert ignored.reason.startswith("attests a different claim: ")
    assert next(iter(change)) in ignored.reason


def test_tampered_release_is_refused(world: World) -> None:
    dep = world.deposit(ALPHA, BETA, 250_000)
    world.chains[ALPHA].mine(6)
    req = world.request(ALPHA, BETA, dep, 250_000)
    tx = req.release.copy()
    tx.outputs[1] = TxOut(tx.outputs[1].amount_sat, p2wpkh(OUTSIDER.public_key().to_bytes()))  # steal the change
    bad = replace(req, release=tx)
    r = refused(world.review(0, bad), "peg-release-mismatch")
    assert "output 1" in r.detail
    sigs = [signed(world.review(i, req)) for i in (0, 1)]
    with pytest.raises(AssemblyError, match="peg-release-mismatch"):
        assemble(world, bad, sigs)


# --- deposits the notary refuses --------------------------------------------------------------


def test_replayed_deposit_is_refused(world: World) -> None:
    dep = world.deposit(ALPHA, BETA, 250_000)
    world.chains[ALPHA].mine(6)
    req = world.request(ALPHA, BETA, dep, 250_000)
    first = signed(world.review(0, req))
    # The coordinator lost the answer: the identical request gets the identical signature.
    assert world.review(0, req) == first
    # The same deposit paid again from another reserve coin: refused.
    extra = world.chains[BETA].pay(world.committee.reserve_script_pubkey(BETA), 1_000_000)
    world.chains[BETA].mine(1)
    again = world.request(ALPHA, BETA, dep, 250_000, coins=[world.reserve_coin(BETA, extra)])
    assert "was attested for release" in refused(world.review(0, again), "peg-already-redeemed").detail
    # Once the release confirms, even the identical request is refused.
    tx = assemble(world, req, [first, signed(world.review(1, req))]).tx
    world.chains[BETA].send(tx)
    world.chains[BETA].mine(1)
    assert "is confirmed" in refused(world.review(0, req), "peg-already-redeemed").detail


def test_a_confirmed_release_marks_the_deposit_redeemed_for_every_notary(world: World) -> None:
    dep = world.deposit(ALPHA, BETA, 250_000)
    world.chains[ALPHA].mine(6)
    req = world.request(ALPHA, BETA, dep, 250_000)
    tx = assemble(world, req, [signed(world.review(i, req)) for i in (0, 1)]).tx
    assert release_binding(tx) == (claim_of(req).claim_id, dep)
    world.chains[BETA].send(tx)
    world.chains[BETA].mine(1)
    extra = world.chains[BETA].pay(world.committee.reserve_script_pubkey(BETA), 1_000_000)
    world.chains[BETA].mine(1)
    again = world.request(ALPHA, BETA, dep, 250_000, coins=[world.reserve_coin(BETA, extra)])
    # Notary 2 never signed the first release: without watching the reserve it would sign a second.
    third = world.notaries[2]
    # A look-alike binding that does not spend the reserve (anyone can make one) is ignored.
    fake = Transaction(
        inputs=[TxIn(OutPoint(b"\x05" * 32, 0), witness=[b"\x01"])],
        outputs=[TxOut(0, tx.outputs[-1].script_pubkey)],
    )
    assert not third.observe_release(ALPHA, BETA, fake)
    assert not third.state.redeemed
    assert third.observe_release(ALPHA, BETA, tx)
    refused(third.review_deposit(again, world.chains, world.tips), "peg-already-redeemed")
    # A notary that lost its state rebuilds it from the chain; the record survives a restart.
    restored = NotaryState.from_dict(json.loads(json.dumps(third.state.to_dict())))
    assert restored == third.state
    assert restored.redeemed[(ALPHA, dep)].attestation_digest is None


def test_unconfirmed_deposit_is_refused(world: World) -> None:
    dep = world.deposit(ALPHA, BETA, 250_000)
    req = world.request(ALPHA, BETA, dep, 250_000)
    assert "0 confirmations" in refused(world.review(0, req), "peg-deposit-unconfirmed").detail
    world.chains[ALPHA].mine(5)
    assert "5 confirmations" in refused(world.review(0, req), "peg-deposit-unconfirmed").detail
    world.chains[ALPHA].mine(1)
    signed(world.review(0, req))


def test_reorged_out_deposit_is_refused(world: World) -> None:
    dep = world.deposit(ALPHA, BETA, 250_000)
    world.chains[ALPHA].mine(6)
    req = world.request(ALPHA, BETA, dep, 250_000)
    world.chains[ALPHA].reorg(6)
    world.chains[ALPHA].mine(7)  # a longer branch without the deposit
    assert "reorganised out" in refused(world.review(0, req), "peg-deposit-missing").detail
    # Nothing was recorded: the notary's state is untouched by a refusal.
    assert not world.notaries[0].state.redeemed


def test_deposit_to_a_wrong_script_is_refused(world: World) -> None:
    c = world.committee
    user_spk = p2wpkh(USER_KEY.public_key().to_bytes())
    for spk in (
        c.reserve_script_pubkey(ALPHA),  # the reserve itself (a release's change must never count as a deposit)
        p2wsh(c.multisig_script),  # the bare M-of-N
        c.deposit_script_pubkey(ALPHA, BETA, p2wpkh(OUTSIDER.public_key().to_bytes())),  # someone else's deposit
        c.deposit_script_pubkey(BETA, BETA, user_spk),  # a deposit address of another chain pair
        user_spk,
    ):
        dep = world.chains[ALPHA].pay(spk, 250_000)
        world.chains[ALPHA].mine(6)
        req = world.request(ALPHA, BETA, dep, 250_000)
        refused(world.review(0, req), "peg-deposit-wrong-script")


def test_front_running_a_deposit_with_another_destination_is_refused(world: World) -> None:
    dep = world.deposit(ALPHA, BETA, 250_000)  # the deposit address commits to USER's beta address
    world.chains[ALPHA].mine(6)
    thief = world.request(ALPHA, BETA, dep, 250_000, dest_addr=addr(BETA, OUTSIDER))
    refused(world.review(0, thief), "peg-deposit-wrong-script")
    signed(world.review(0, world.request(ALPHA, BETA, dep, 250_000)))


def test_other_refusals(world: World) -> None:
    dep = world.deposit(ALPHA, BETA, 250_000)
    world.chains[ALPHA].mine(6)
    req = world.request(ALPHA, BETA, dep, 250_000)
    n = world.notaries[0]
    tips = world.tips
    refused(n.review_deposit(replace(req, destination_address=addr(ALPHA)), world.chains, tips), "peg-bad-destination")
    refused(n.review_deposit(replace(req, fee_sat=1), world.chains, tips), "peg-fee-mismatch")
    refused(n.review_deposit(replace(req, amount_sat=249_999), world.chains, tips), "peg-amount-mismatch")
    refused(n.review_deposit(replace(req, epoch=7), world.chains, tips), "peg-unknown-committee")
    refused(n.review_deposit(replace(req, destination_chain=ALPHA), world.chains, tips), "peg-same-chain")
    refused(n.review_deposit(replace(req, source_chain="regtest"), {**world.chains}, tips), "peg-no-view")
    outsider = Notary(OUTSIDER, [world.committee], POLICY)
    refused(outsider.review_deposit(req, world.chains, tips), "peg-not-a-member")
    # A deposit amount the request misstates (its release built consistently for that amount).
    lie = world.request(ALPHA, BETA, dep, 240_000)
    refused(n.review_deposit(lie, world.chains, tips), "peg-amount-mismatch")
    # Too small to cover fee + dust.
    tiny = world.deposit(ALPHA, BETA, 1_200)
    world.chains[ALPHA].mine(6)
    tiny_req = replace(req, deposit=tiny, amount_sat=1_200)
    assert "dust" in refused(n.review_deposit(tiny_req, world.chains, world.tips), "peg-amount-too-small").detail
    # A deposit output used as if it were reserve: wrong script.
    dep_b = world.deposit(BETA, ALPHA, 900_000)
    world.chains[BETA].mine(1)
    fake_coin = ReserveCoin(dep_b, TxOut(900_000, world.committee.reserve_script_pubkey(BETA)), world.committee.reserve_witness_script(BETA))
    bad = world.request(ALPHA, BETA, dep, 250_000, coins=[fake_coin])
    refused(n.review_deposit(bad, world.chains, world.tips), "peg-reserve-wrong-script")
    assert not n.state.redeemed


def test_published_fee_must_pay_for_the_release(world: World) -> None:
    cheap = replace(POLICY, release_fee_sat={ALPHA: 2_000, BETA: 100})
    notary = Notary(KEYS[0], [world.committee], cheap)
    dep = world.deposit(ALPHA, BETA, 250_000)
    world.chains[ALPHA].mine(6)
    req = replace(world.request(ALPHA, BETA, dep, 250_000), fee_sat=100)
    req = replace(req, release=build_release(world.committee, claim_of(req), [world.reserve_coin(BETA)]))
    assert "vB release" in refused(notary.review_deposit(req, world.chains, world.tips), "peg-fee-too-low").detail


def test_sweep_fee_is_bounded(world: World) -> None:
    plan = rotate(world.committee, pubs(NEW_KEYS), 2, world.tips, {ALPHA: 1, BETA: 1}, {BETA: [world.reserve_coin(BETA)]},
                  fee_rate_sat_per_kvb=500_000)
    for n in world.notaries:
        n.adopt_rotation(plan)
    sweep = plan.sweep_for(BETA)
    assert sweep is not None
    refused(world.notaries[0].review_sweep(sweep, world.chains, world.tips), "peg-sweep-fee")


def test_reserve_coin_is_not_committed_to_two_releases(world: World) -> None:
    d1 = world.deposit(ALPHA, BETA, 100_000)
    d2 = world.deposit(ALPHA, BETA, 200_000, dest_addr=addr(BETA, OUTSIDER))
    world.chains[ALPHA].mine(6)
    signed(world.review(0, world.request(ALPHA, BETA, d1, 100_000)))
    r2 = world.request(ALPHA, BETA, d2, 200_000, dest_addr=addr(BETA, OUTSIDER))
    refused(world.review(0, r2), "peg-reserve-committed")
    signed(world.review(1, r2))  # another notary has not committed it (the coordinator's job to avoid)


def test_unspent_reserve_is_required_when_the_view_knows(world: World) -> None:
    dep = world.deposit(ALPHA, BETA, 100_000)
    world.chains[ALPHA].mine(6)
    req = world.request(ALPHA, BETA, dep, 100_000)
    spender = Transaction(inputs=[TxIn(world.reserve[BETA])], outputs=[TxOut(1, b"\x51")])
    world.chains[BETA].send(spender)
    refused(world.review(0, req), "peg-reserve-spent")


# --- committee lifetime and rotation ----------------------------------------------------------


def test_rotation_moves_reserves_and_expires_the_old_key_set(world: World) -> None:
    w = world
    old = w.committee
    user_spk = p2wpkh(USER_KEY.public_key().to_bytes())
    # What the old committee holds: its reserves, plus an old deposit (already released) on alpha.
    swept_dep = w.deposit(ALPHA, BETA, 50_000)
    kept = w.chains[BETA].pay(old.reserve_script_pubkey(BETA), 1_000_000)  # left for the grace period
    for ch in w.chains.values():
        ch.mine(1)
    to_move = {
        ALPHA: [w.reserve_coin(ALPHA), w.chains[ALPHA].coin(swept_dep, old.deposit_witness_script(ALPHA, BETA, user_spk))],
        BETA: [w.reserve_coin(BETA)],
    }
    rot = w.tips
    plan = rotate(old, pubs(NEW_KEYS), 2, rot, {ALPHA: 10, BETA: 40}, to_move)
    old, new = plan.old, plan.new
    window = old.window(BETA)
    assert window is not None and window.expiry_height == rot[BETA] + 40
    assert old.status(BETA, rot[BETA]) is CommitteeStatus.GRACE
    assert new.status(BETA, rot[BETA]) is CommitteeStatus.ACTIVE

    # A notary not told of the rotation will not sign a sweep to keys it has never heard of.
    sweep = plan.sweep_for(ALPHA)
    assert sweep is not None
    refused(w.notaries[0].review_sweep(sweep, w.chains, w.tips), "peg-sweep-unknown-successor")

    for n in w.notaries:
        n.adopt_rotation(plan)
    new_notaries = [Notary(k, [old, new], POLICY) for k in NEW_KEYS]

    # The reserves move to the new reserve script, signed by M of the OLD keys.
    for chain in (ALPHA, BETA):
        s = plan.sweep_for(chain)
        assert s is not None
        refused(new_notaries[0].review_sweep(s, w.chains, w.tips), "peg-not-a-member")
        evil = s.tx.copy()
        evil.outputs[0] = TxOut(evil.outputs[0].amount_sat, p2wpkh(OUTSIDER.public_key().to_bytes()))
        refused(w.notaries[0].review_sweep(replace(s, tx=evil), w.chains, w.tips), "peg-sweep-wrong-destination")
        sigs = [sweep_signed(w.notaries[i].review_sweep(s, w.chains, w.tips)) for i in (0, 2)]
        coins = [w.chains[chain].coin(i.prevout, ws) for i, ws in zip(s.tx.inputs, s.witness_scripts)]
        with pytest.raises(InsufficientSignatures):
            assemble_sweep(old, s.tx, coins, sigs[:1])
        result = assemble_sweep(old, s.tx, coins, sigs)
        assert_spends(w, chain, result.tx)
        assert [o.script_pubkey for o in result.tx.outputs] == [new.reserve_script_pubkey(chain)]
        w.chains[chain].send(result.tx)
        w.chains[chain].mine(1)
        w.reserve[chain] = OutPoint(result.tx.txid, 0)

    # Grace period: a deposit to the OLD address is released by the old key set, from what it kept...
    grace_dep = w.deposit(ALPHA, BETA, 80_000, committee=old)
    w.chains[ALPHA].mine(6)
    req = w.request(ALPHA, BETA, grace_dep, 80_000, committee=old, coins=[w.reserve_coin(BETA, kept, old)])
    tx = assemble(w, req, [signed(w.review(i, req)) for i in (1, 2)], committee=old).tx
    assert_spends(w, BETA, tx)
    w.chains[BETA].send(tx)
    w.chains[BETA].mine(1)
    # ... and only by it: the new committee cannot release it a second time.
    twice = w.request(ALPHA, BETA, grace_dep, 80_000, committee=new)
    refused(new_notaries[0].review_deposit(twice, w.chains, w.tips), "peg-deposit-wrong-script")
    # A deposit to the new address is released by the new committee, from the swept reserve.
    fresh = w.deposit(ALPHA, BETA, 90_000, committee=new)
    w.chains[ALPHA].mine(6)
    new_req = w.request(ALPHA, BETA, fresh, 90_000, committee=new)
    new_tx = assemble(w, new_req, [signed(new_notaries[i].review_deposit(new_req, w.chains, w.tips)) for i in (0, 2)], committee=new).tx
    assert_spends(w, BETA, new_tx)
    w.chains[BETA].send(new_tx)
    w.chains[BETA].mine(1)

    # A deposit in flight when the grace period ends.
    late = w.deposit(ALPHA, BETA, 70_000, committee=old)
    w.chains[ALPHA].mine(6)
    straggler = OutPoint(tx.txid, 1)  # the change of the grace release, still at the old reserve
    late_req = w.request(ALPHA, BETA, late, 70_000, committee=old, coins=[w.reserve_coin(BETA, straggler, old)])
    # alpha's grace (10 blocks) is over but beta's is not: a deposit confirmed on alpha after
    # the old address expired there is refused.
    after = w.deposit(ALPHA, BETA, 60_000, committee=old)
    w.chains[ALPHA].mine(6)
    assert old.status(ALPHA, w.tips[ALPHA]) is CommitteeStatus.EXPIRED
    assert old.status(BETA, w.tips[BETA]) is CommitteeStatus.GRACE
    after_req = w.request(ALPHA, BETA, after, 60_000, committee=old, coins=[w.reserve_coin(BETA, straggler, old)])
    refused(w.review(0, after_req), "peg-deposit-after-expiry")

    # After beta's grace period the old key set is refused, by the notaries and at assembly.
    w.chains[BETA].mine(40)
    r = refused(w.review(0, late_req), "peg-committee-expired")
    assert "expired on beta" in r.detail
    coin = w.reserve_coin(BETA, straggler, old)
    digests = sighashes(late_req.release, [coin.witness_script], [coin.txout.amount_sat])
    att = Attestation(claim_of(late_req), old.committee_id, late_req.release.txid, digests)
    leaked = [NotarySignature(k.public_key().to_bytes(), att, sign_inputs(k, digests), k.sign_der(att.digest)) for k in KEYS[:2]]
    with pytest.raises(AssemblyError, match="peg-committee-expired"):
        assemble(w, late_req, leaked, committee=old)
    # The new committee is still accepted.
    fresh2 = w.deposit(ALPHA, BETA, 75_000, committee=new)
    w.chains[ALPHA].mine(6)
    req2 = w.request(ALPHA, BETA, fresh2, 75_000, committee=new, coins=[w.reserve_coin(BETA, OutPoint(new_tx.txid, 1), new)])
    signed(new_notaries[1].review_deposit(req2, w.chains, w.tips))

    # The expired key set may still sweep what it holds to its successor, and only there.
    late_sweep = build_sweep(old, new, BETA, [coin], 1000)
    ssigs = [sweep_signed(w.notaries[i].review_sweep(late_sweep, w.chains, w.tips)) for i in (0, 1)]
    assert_spends(w, BETA, assemble_sweep(old, late_sweep.tx, [coin], ssigs).tx)


def test_rotation_plan_validation(world: World) -> None:
    c = world.committee
    with pytest.raises(CommitteeError, match="same keys"):
        rotate(c, pubs(KEYS), 2, world.tips, {ALPHA: 1, BETA: 1}, {})
    with pytest.raises(CommitteeError, match="grace"):
        rotate(c, pubs(NEW_KEYS), 2, world.tips, {ALPHA: 1}, {})
    plan = rotate(c, pubs(NEW_KEYS), 2, world.tips, {ALPHA: 1, BETA: 1}, {})
    with pytest.raises(CommitteeError, match="already has a successor"):
        rotate(plan.old, pubs(KEYS), 3, world.tips, {ALPHA: 1, BETA: 1}, {})
    stranger = Notary(OUTSIDER, [Committee.create(1, pubs(NEW_KEYS), 2, {ALPHA: 0})], POLICY)
    with pytest.raises(CommitteeError, match="not this notary's"):
        stranger.adopt_rotation(plan)


# --- persistence -------------------------------------------------------------------------------


def test_redeemed_set_survives_a_restart(world: World) -> None:
    dep = world.deposit(ALPHA, BETA, 250_000)
    world.chains[ALPHA].mine(6)
    req = world.request(ALPHA, BETA, dep, 250_000)
    first = signed(world.review(0, req))
    saved = json.dumps(world.notaries[0].state.to_dict())
    # Restart: a new process, the same key, the state read back.
    restored = NotaryState.from_dict(json.loads(saved))
    assert restored == world.notaries[0].state
    reborn = Notary(KEYS[0], [world.committee], POLICY, restored)
    extra = world.chains[BETA].pay(world.committee.reserve_script_pubkey(BETA), 1_000_000)
    world.chains[BETA].mine(1)
    again = world.request(ALPHA, BETA, dep, 250_000, coins=[world.reserve_coin(BETA, extra)])
    refused(reborn.review_deposit(again, world.chains, world.tips), "peg-already-redeemed")
    assert reborn.review_deposit(req, world.chains, world.tips) == first
    # Without the state, the same notary would sign the second release: that is why it is persisted.
    amnesiac = Notary(KEYS[0], [world.committee], POLICY)
    signed(amnesiac.review_deposit(again, world.chains, world.tips))


@pytest.mark.parametrize(
    "bad",
    [
        {"version": 2, "redeemed": [], "committed": []},
        {"version": 1, "redeemed": [{"chain": "alpha"}], "committed": []},
        {"version": 1, "redeemed": [], "committed": [{"chain": "beta", "coin": "zz:0", "claim_id": "00" * 32}]},
        {"version": 1, "redeemed": [], "committed": [{"chain": "beta", "coin": "00" * 32 + ":x", "claim_id": "00" * 32}]},
    ],
)
def test_malformed_state_is_rejected_with_a_reason(bad: dict[str, object]) -> None:
    with pytest.raises(NotaryStateError):
        NotaryState.from_dict(bad)


# --- properties --------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    amount=st.integers(min_value=2_000, max_value=4_000_000),
    reserve=st.integers(min_value=1, max_value=5_000_000),
    fee=st.integers(min_value=0, max_value=1_500),
)
def test_release_conserves_value(amount: int, reserve: int, fee: int) -> None:
    """Whatever the amounts: the reserve shrinks by exactly the amount, the miner gets exactly the fee."""
    c = Committee.create(1, pubs(KEYS), 2, {ALPHA: 0, BETA: 0})
    coin = ReserveCoin(OutPoint(b"\x01" * 32, 0), TxOut(reserve, c.reserve_script_pubkey(BETA)), c.reserve_witness_script(BETA))
    claim = PegClaim(ALPHA, OutPoint(b"\x02" * 32, 1), amount, BETA, p2wpkh(USER_KEY.public_key().to_bytes()), fee, 1)
    try:
        tx = build_release(c, claim, [coin])
    except ReleaseError as e:
        assert e.reason in ("peg-reserve-insufficient", "peg-reserve-change-dust", "peg-amount-too-small")
        return
    change = sum(o.amount_sat for o in tx.outputs if o.script_pubkey == c.reserve_script_pubkey(BETA))
    assert reserve - change == amount
    assert reserve - sum(o.amount_sat for o in tx.outputs) == fee
    assert claim_of_release(tx) == claim.claim_id
