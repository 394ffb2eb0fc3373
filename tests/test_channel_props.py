"""Property test of the channel core: random interleavings of both sides' operations.

A hypothesis RuleBasedStateMachine drives two `Channel`s through the in-memory
`Pair` harness of test_channel_state.py: HTLC adds, fulfills and fails from
both sides, fee updates by the funder, commitment_signed / revoke_and_ack
dances delivered one message at a time in any interleaving, lost connections
(reestablish and retransmission) and crashes (both sides restart from their
last Persist snapshot). Invariants:

* conservation: every commitment (ours, the peer's, the one awaiting
  revocation) holds to_local + to_remote + HTLCs == the funding, and every
  commitment transaction a side accepts has outputs + fee == the funding;
* no side ever signs two different commitments with the same number (checked
  by the harness on every commitment_signed sent and accepted);
* honest peers never see an error or a warning;
* once quiescent, both sides agree on both commitments and on the balances,
  and every HTLC whose sender persisted it was settled.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from test_channel_state import Pair, Side, payment_hash, preimage

from base_chain import crypto
from channels.effects import ChannelError
from channels.state import ChannelState

FUNDING_SAT = 1_000_000
PUSH_MSAT = 400_000_000
SIDES = st.sampled_from(["a", "b"])


@pytest.fixture(autouse=True, scope="module")
def _coincurve() -> Iterator[None]:
    previous = crypto.get_backend().name
    crypto.set_backend("coincurve")
    try:
        yield
    finally:
        crypto.set_backend(previous)


class ChannelMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.pair = Pair(funding_sat=FUNDING_SAT, push_msat=PUSH_MSAT, verify_scripts=False)
        self.preimages: dict[bytes, bytes] = {}
        self.amounts: dict[tuple[str, int], int] = {}
        self.next_payment = 0
        self.started = {"a": 0, "b": 0}  # HTLC ids offered so far (the persisted ones count)

    def side(self, name: str) -> Side:
        return self.pair.a if name == "a" else self.pair.b

    # --- operations -----------------------------------------------------------------

    @rule(name=SIDES, amount=st.one_of(st.integers(1, 600_000), st.integers(600_000, 60_000_000)), known=st.booleans())
    def add_htlc(self, name: str, amount: int, known: bool) -> None:
        side = self.side(name)
        n = self.next_payment
        self.next_payment += 1
        try:
            htlc_id = self.pair.pay(side, amount, n, cltv=700_000 + n)
        except ChannelError:
            return
        self.amounts[(name, htlc_id)] = amount
        if known:
            self.preimages[payment_hash(n)] = preimage(n)

    @rule(name=SIDES, data=st.data(), fulfill=st.booleans())
    def settle_one(self, name: str, data: st.DataObject, fulfill: bool) -> None:
        side = self.side(name)
        pending = side.channel.unresolved_incoming_htlcs()
        if not pending or not side.channel.connected:
            return
        add = data.draw(st.sampled_from(pending))
        if fulfill and add.payment_hash in self.preimages:
            self.pair.do(side, side.channel.fulfill_htlc(add.id, self.preimages[add.payment_hash]))
        elif data.draw(st.booleans()):
            self.pair.do(side, side.channel.fail_htlc(add.id, b"\x13" * 40))
        else:
            self.pair.do(side, side.channel.fail_malformed_htlc(add.id, bytes(32), 0x8000 | 0x4000 | 5))

    @rule(feerate=st.integers(253, 15_000))
    def update_fee(self, feerate: int) -> None:
        try:
            self.pair.do(self.pair.a, self.pair.a.channel.update_fee(feerate))
        except ChannelError:
            pass

    @rule(name=SIDES)
    def sign(self, name: str) -> None:
        side = self.side(name)
        self.pair.do(side, side.channel.sign())

    @rule(name=SIDES, count=st.integers(1, 3))
    def deliver(self, name: str, count: int) -> None:
        side = self.side(name)
        for _ in range(count):
            if side.inbox:
                self.pair.deliver(side)

    @rule()
    def deliver_all(self) -> None:
        self.pair.settle()

    def busy(self) -> bool:
        """Messages in flight or a commitment awaiting revocation: where lost state hurts."""
        pair = self.pair
        return bool(
            pair.a.inbox
            or pair.b.inbox
            or pair.a.channel._c.next_remote is not None
            or pair.b.channel._c.next_remote is not None
        )

    @precondition(busy)
    @rule()
    def reconnect(self) -> None:
        """The connection drops (messages in flight are lost) and comes back."""
        self.pair.reconnect()

    @precondition(busy)
    @rule()
    def crash(self) -> None:
        """Both nodes die and restart from their last snapshot."""
        self.pair.restore()

    @rule()
    def quiesce(self) -> None:
        self.pair.finish(self.preimages)
        self.check_agreement()

    # --- invariants -------------------------------------------------------------------

    @invariant()
    def conserved(self) -> None:
        for side in (self.pair.a, self.pair.b):
            c = side.channel._c
            specs = [c.local_commit.spec, c.remote_commit.spec]
            if c.next_remote is not None:
                specs.append(c.next_remote.commit.spec)
            for spec in specs:
                assert spec.total_msat() == FUNDING_SAT * 1000
                assert spec.to_local_msat >= 0 and spec.to_remote_msat >= 0

    @invariant()
    def no_errors(self) -> None:
        assert not self.pair.warnings, self.pair.errors()
        for side in (self.pair.a, self.pair.b):
            assert side.channel.state is ChannelState.NORMAL

    def check_agreement(self) -> None:
        self.pair.assert_agree()
        a = self.pair.a.channel
        assert not a._c.local_commit.spec.htlcs
        assert a.local_balance_msat + a.remote_balance_msat == FUNDING_SAT * 1000

    def teardown(self) -> None:
        self.pair.finish(self.preimages)
        self.check_agreement()


ChannelMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestChannelMachine = ChannelMachine.TestCase
