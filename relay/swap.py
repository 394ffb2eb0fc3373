"""The automatic atomic-swap state machine (sans-IO): one party's side of one swap.

Two parties swap coins on two chains with the contract of :mod:`relay.contract`.
The *initiator* knows the secret and locks first, for twice as long; the
*participant* locks the same secret hash on the other chain once the initiator's
contract is deep enough. The initiator redeems the participant's contract,
revealing the secret on that chain; the participant reads it from the redeem
and redeems the initiator's contract. Either side refunds its own contract
after its locktime if the swap stalls.

:class:`Swap` does no I/O and reads no clock: the host feeds it events (heights
and confirmations observed on both chains, spends of the contract outputs, the
counterparty's contract) and carries out the effects it returns, in order:

* :class:`Persist` -- store :meth:`Swap.to_dict` durably before the effects after it.
* :class:`FundContract` -- pay ``amount_sat`` to ``script_pubkey`` (the P2WSH of
  ``contract``) from the wallet of ``chain``, then report it with
  :class:`ContractFunded`. It is not idempotent: after a crash in ``FUNDING`` the
  host must look for its earlier payment to ``script_pubkey`` before paying again.
* :class:`ShareContract` -- send the contract and its transaction to the counterparty.
* :class:`Broadcast` -- publish a redeem or refund (``replaces``: a fee bump of that txid).
* :class:`WatchConfirmation` / :class:`WatchSpend` -- report :class:`TxConfirmed` /
  :class:`TxReorged` for a contract transaction and :class:`SpendObserved` /
  :class:`SpendReorged` for a contract output (mempool spends included).
* :class:`Refused`, :class:`Done`, :class:`Refunded`, :class:`Aborted`,
  :class:`Failed` -- what happened, for the user.

Safety checks, all in the core: a counter-contract counts only at its chain's
``min_conf`` depth; it is refused if its script, secret hash, recipient, refund
key or amount differ from the terms, if its lock does not end at least
``safety_margin_s`` before the initiator's (durations converted with each
chain's block interval), or if it reached depth too late for that to hold. The
initiator does not reveal the secret with less than ``redeem_window_s`` left on
the counter-contract. A refund is built only once final (``tip >= locktime``);
a redeem or refund unconfirmed for ``bump_after_s`` is replaced with a higher fee.

States and transitions (:data:`TRANSITIONS`)::

    initiator:   CREATED -> FUNDING -> AWAITING_COUNTER_CONTRACT -> COUNTER_CONTRACT_SEEN -> REDEEMING -> REDEEMED
    participant: CREATED -> AWAITING_COUNTER_CONTRACT -> COUNTER_CONTRACT_SEEN -> FUNDING -> AWAITING_SECRET
                 -> REDEEMING -> REDEEMED
    refusals:    participant (nothing locked) -> ABORTED; initiator -> AWAITING_REFUND
    refunds:     (our contract on chain) -> REFUNDING -> REFUNDED
    lost races:  -> FAILED
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final

from base_chain.crypto import PrivateKey
from base_chain.hashes import hash160, sha256
from base_chain.policy import DEFAULT_MIN_RELAY_TX_FEE
from base_chain.tx import OutPoint, Transaction

from .swap_types import (
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
    SwapError,
    SwapTerms,
    TxConfirmed,
    TxReorged,
    WatchConfirmation,
    WatchSpend,
)
from .contract import (
    SECRET_SIZE,
    ContractError,
    ContractInfo,
    blocks_for_duration,
    contract_script_pubkey,
    extract_secret,
    find_contract_output,
    is_redeem_witness,
    is_refund_witness,
    parse_contract,
    redeem_tx,
    refund_tx,
)

__all__ = [
    "SwapError", "Role", "SwapState", "TRANSITIONS", "TERMINAL_STATES", "ChainConfig", "SwapTerms", "Swap",
    # events
    "Event", "HeightObserved", "ContractFunded", "CounterContractReceived", "TxConfirmed", "TxReorged",
    "SpendObserved", "SpendReorged", "FeeRateObserved",
    # effects
    "Effect", "Persist", "FundContract", "ShareContract", "Broadcast", "WatchConfirmation", "WatchSpend",
    "Refused", "Done", "Refunded", "Aborted", "Failed",
]

_FORMAT_VERSION: Final = 1






class SwapState(enum.Enum):
    CREATED = "created"
    FUNDING = "funding"
    """FundContract was emitted; waiting for ContractFunded."""
    AWAITING_COUNTER_CONTRACT = "awaiting_counter_contract"
    COUNTER_CONTRACT_SEEN = "counter_contract_seen"
    """The counter-contract passed the audit; waiting for it to reach depth."""
    AWAITING_SECRET = "awaiting_secret"
    """Participant: our contract is out; waiting for the initiator's redeem to reveal the secret."""
    REDEEMING = "redeeming"
    AWAITING_REFUND = "awaiting_refund"
    """Initiator: the swap was refused or lost; our contract is refunded once its locktime is reached."""
    REFUNDING = "refunding"
    REDEEMED = "redeemed"
    REFUNDED = "refunded"
    ABORTED = "aborted"
    """Nothing of ours was ever locked."""
    FAILED = "failed"
    """A race was lost: the counterparty has both sides."""


S = SwapState
TRANSITIONS: Final[Mapping[SwapState, frozenset[SwapState]]] = {
    S.CREATED: frozenset({S.FUNDING, S.AWAITING_COUNTER_CONTRACT}),
    S.FUNDING: frozenset({S.AWAITING_COUNTER_CONTRACT, S.AWAITING_SECRET}),
    S.AWAITING_COUNTER_CONTRACT: frozenset({S.COUNTER_CONTRACT_SEEN, S.AWAITING_REFUND, S.ABORTED, S.REFUNDING}),
    S.COUNTER_CONTRACT_SEEN: frozenset({S.FUNDING, S.REDEEMING, S.AWAITING_REFUND, S.ABORTED, S.REFUNDING}),
    S.AWAITING_SECRET: frozenset({S.REDEEMING, S.REFUNDING}),
    S.REDEEMING: frozenset({S.REDEEMED, S.AWAITING_REFUND, S.FAILED}),
    S.AWAITING_REFUND: frozenset({S.REFUNDING, S.FAILED}),
    S.REFUNDING: frozenset({S.REFUNDED, S.REDEEMING, S.FAILED}),
    S.REDEEMED: frozenset(),
    S.REFUNDED: frozenset(),
    S.ABORTED: frozenset(),
    S.FAILED: frozenset(),
}
"""Every state a state may move to; anything else is a bug and raises SwapError."""
TERMINAL_STATES: Final = frozenset(s for s, targets in TRANSITIONS.items() if not targets)
del S


# --- the machine ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Contract:
    """A contract on chain: ours or theirs."""

    script: bytes
    info: ContractInfo
    txid: bytes | None = None
    outpoint: OutPoint | None = None
    amount_sat: int = 0
    mined_height: int | None = None
    tx_hex: str = ""


@dataclass(slots=True)
class _Pending:
    """Our redeem or refund, until it is deep enough."""

    kind: str
    chain: str
    tx: Transaction
    fee_rate_sat_kvb: int
    broadcast_tip: int
    mined_height: int | None = None


@dataclass(slots=True)
class _Data:
    state: SwapState = SwapState.CREATED
    tips: dict[str, int] = field(default_factory=dict)
    fee_rates: dict[str, int] = field(default_factory=dict)
    secret: bytes | None = None
    ours: _Contract | None = None
    theirs: _Contract | None = None
    pending: _Pending | None = None
    secret_revealed: bool = False
    reason: str = ""


class Swap:
    """One party's side of one atomic swap."""

    def __init__(
        self,
        terms: SwapTerms,
        key: PrivateKey,
        redeem_script_pubkey: bytes,
        refund_script_pubkey: bytes,
        secret: bytes | None = None,
    ) -> None:
        """`key` is our swap key (its hash160 is our contract's refund key and the recipient of
        theirs); redeems pay to `redeem_script_pubkey` on their chain, refunds to
        `refund_script_pubkey` on ours. The initiator passes the `secret`, the participant not."""
        if terms.role is Role.INITIATOR:
            if secret is None or len(secret) != SECRET_SIZE or sha256(secret) != terms.secret_hash:
                raise SwapError("the initiator needs the 32-byte secret matching the secret hash")
        elif secret is not None:
            raise SwapError("the participant does not know the secret")
        if not redeem_script_pubkey or not refund_script_pubkey:
            raise SwapError("redeem and refund destinations are required")
        self.terms = terms
        self._key = key
        self.our_pkh = hash160(key.public_key().to_bytes())
        self._redeem_spk = redeem_script_pubkey
        self._refund_spk = refund_script_pubkey
        self._d = _Data(secret=secret)
        self._d.fee_rates = {terms.our_chain.name: terms.our_chain.fee_rate_sat_kvb,
                             terms.their_chain.name: terms.their_chain.fee_rate_sat_kvb}

    # --- read-only views ---------------------------------------------------------------------------

    @property
    def state(self) -> SwapState:
        return self._d.state

    @property
    def role(self) -> Role:
        return self.terms.role

    @property
    def secret(self) -> bytes | None:
        return self._d.secret

    @property
    def reason(self) -> str:
        """Why the swap was refused, aborted or failed ("" otherwise)."""
        return self._d.reason

    @property
    def our_contract(self) -> bytes | None:
        return self._d.ours.script if self._d.ours else None

    @property
    def our_locktime(self) -> int | None:
        return self._d.ours.info.locktime if self._d.ours else None

    @property
    def our_contract_outpoint(self) -> OutPoint | None:
        return self._d.ours.outpoint if self._d.ours else None

    @property
    def their_contract(self) -> bytes | None:
        return self._d.theirs.script if self._d.theirs else None

    @property
    def pending_tx(self) -> Transaction | None:
        """Our redeem or refund in flight."""
        return self._d.pending.tx if self._d.pending else None

    def is_finished(self) -> bool:
        return self._d.state in TERMINAL_STATES

    # --- entry points ------------------------------------------------------------------------------

    def start(self) -> list[Effect]:
        """Begin: the initiator funds its contract (its chain's height must be known); the participant waits."""
        if self._d.state is not SwapState.CREATED:
            raise SwapError(f"start: the swap is already {self._d.state.value}")
        if self.role is Role.PARTICIPANT:
            self._goto(SwapState.AWAITING_COUNTER_CONTRACT)
            return [Persist()]
        return self._fund()

    def handle(self, event: Event) -> list[Effect]:
        """Feed one event; returns the effects to carry out in order."""
        if isinstance(event, HeightObserved):
            self._chain(event.chain)
            if event.height < 0:
                raise SwapError("height must not be negative")
            self._d.tips[event.chain] = event.height
            return self._tick()
        if isinstance(event, FeeRateObserved):
            self._chain(event.chain)
            if event.fee_rate_sat_kvb < DEFAULT_MIN_RELAY_TX_FEE:
                raise SwapError(f"fee rate below the minimum relay fee ({DEFAULT_MIN_RELAY_TX_FEE} sat/kvB)")
            self._d.fee_rates[event.chain] = min(event.fee_rate_sat_kvb, self.terms.max_fee_rate_sat_kvb)
            return []
        if isinstance(event, ContractFunded):
            return self._on_funded(event.tx)
        if isinstance(event, CounterContractReceived):
            return self._on_counter_contract(event.contract, event.tx)
        if isinstance(event, TxConfirmed):
            return self._on_confirmed(event.chain, event.txid, event.block_height)
        if isinstance(event, TxReorged):
            return self._on_confirmed(event.chain, event.txid, None)
        if isinstance(event, SpendObserved):
            return self._on_spend(event.chain, event.outpoint, event.spending_tx, event.block_height)
        if isinstance(event, SpendReorged):
            self._chain(event.chain)
            p = self._d.pending
            if p is not None and p.chain == event.chain and p.tx.inputs[0].prevout == event.outpoint:
                p.mined_height = None
                return [Persist()]
            return []
        raise SwapError(f"unknown event {event!r}")

    def abandon(self, reason: str) -> list[Effect]:
        """Give up a swap where nothing of ours is locked yet (the participant still waiting for the
        initiator's contract): ABORTED. SwapError once our contract exists (then only a refund ends it)."""
        d = self._d
        if d.state not in (SwapState.AWAITING_COUNTER_CONTRACT, SwapState.COUNTER_CONTRACT_SEEN):
            raise SwapError(f"abandon: the swap is {d.state.value}")
        if d.ours is not None:
            raise SwapError("abandon: our contract exists; it can only be refunded")
        d.reason = reason
        self._goto(SwapState.ABORTED)
        return [Persist(), Aborted(reason)]

    def resume(self) -> list[Effect]:
        """After a restart from :meth:`from_dict`: the watches, shares and broadcasts to set up again.

        Feed the chains' current heights (HeightObserved) first: a swap saved before it
        started is started here, and the initiator's locktime needs its chain's height.
        """
        d = self._d
        if d.state in TERMINAL_STATES:
            return []
        if d.state is SwapState.CREATED:
            return self.start()
        out: list[Effect] = []
        if d.state is SwapState.FUNDING and d.ours is not None:
            out.append(self._fund_effect())
        for contract, chain in ((d.ours, self.terms.our_chain.name), (d.theirs, self.terms.their_chain.name)):
            if contract is not None and contract.txid is not None:
                out += self._watches(contract, chain)
        sharing = (SwapState.AWAITING_COUNTER_CONTRACT, SwapState.COUNTER_CONTRACT_SEEN, SwapState.AWAITING_SECRET)
        if d.state in sharing and d.ours is not None and d.ours.txid is not None:
            out.append(ShareContract(d.ours.script, Transaction.from_hex(d.ours.tx_hex)))
        if d.pending is not None and d.pending.mined_height is None:
            out.append(Broadcast(d.pending.chain, d.pending.tx, d.pending.kind))
        return out

    # --- helpers -------------------------------------------------------------------------------------

    def _chain(self, name: str) -> None:
        if name not in (self.terms.our_chain.name, self.terms.their_chain.name):
            raise SwapError(f"unknown chain {name!r}: this swap is on {self.terms.our_chain.name!r} "
                            f"and {self.terms.their_chain.name!r}")

    def _tip(self, chain: str) -> int:
        try:
            return self._d.tips[chain]
        except KeyError:
            raise SwapError(f"no height observed for chain {chain!r} yet") from None

    def _spacing(self, chain: str) -> int:
        t = self.terms
        return t.our_chain.target_spacing_s if chain == t.our_chain.name else t.their_chain.target_spacing_s

    def _min_conf(self, chain: str) -> int:
        t = self.terms
        return t.our_chain.min_conf if chain == t.our_chain.name else t.their_chain.min_conf

    def _depth(self, chain: str, mined_height: int | None) -> int:
        if mined_height is None:
            return 0
        return max(0, self._d.tips.get(chain, mined_height) - mined_height + 1)

    def _time_left_s(self, contract: _Contract, chain: str) -> int:
        """Expected seconds until `contract` becomes refundable."""
        return (contract.info.locktime - self._tip(chain)) * self._spacing(chain)

    def _goto(self, state: SwapState) -> None:
        if state not in TRANSITIONS[self._d.state]:
            raise SwapError(f"illegal transition {self._d.state.value} -> {state.value}")
        self._d.state = state

    def _watches(self, contract: _Contract, chain: str) -> list[Effect]:
        assert contract.txid is not None and contract.outpoint is not None
        spk = contract_script_pubkey(contract.script)
        hint = contract.mined_height if contract.mined_height is not None else self._d.tips.get(chain, 0)
        return [WatchConfirmation(chain, contract.txid, spk, self._min_conf(chain), hint),
                WatchSpend(chain, contract.outpoint, spk, hint)]

    def _fund_effect(self) -> FundContract:
        ours = self._d.ours
        assert ours is not None
        return FundContract(self.terms.our_chain.name, ours.script, contract_script_pubkey(ours.script),
                            self.terms.our_amount_sat)

    def _fund(self) -> list[Effect]:
        """Build our contract (locktime from our chain's tip) and ask the host to fund it."""
        chain = self.terms.our_chain
        locktime = self._tip(chain.name) + blocks_for_duration(self.terms.lock_s, chain.target_spacing_s)
        info = ContractInfo(self.terms.secret_hash, self.terms.counterparty_pkh, self.our_pkh, locktime)
        self._d.ours = _Contract(info.script(), info)
        self._goto(SwapState.FUNDING)
        return [Persist(), self._fund_effect()]

    def _refuse(self, reason: str) -> list[Effect]:
        """The counter-contract is unacceptable: abort if nothing is locked, else wait to refund."""
        self._d.reason = reason
        if self._d.ours is None or self._d.ours.txid is None:
            self._goto(SwapState.ABORTED)
            return [Persist(), Refused(reason), Aborted(reason)]
        self._goto(SwapState.AWAITING_REFUND)
        return [Persist(), Refused(reason)]

    def _lock_gap_problem(self, theirs: _Contract) -> str | None:
        """None if the counter-contract's lock ends early enough relative to ours, else why not."""
        t = self.terms
        their_left = self._time_left_s(theirs, t.their_chain.name)
        if self.role is Role.INITIATOR:
            ours = self._d.ours
            assert ours is not None
            our_left = self._time_left_s(ours, t.our_chain.name)
            if our_left - their_left < t.safety_margin_s:
                return (f"counter-contract lock expires too close to ours: {their_left} s left on theirs, "
                        f"{our_left} s on ours, need a margin of {t.safety_margin_s} s")
            return None
        our_lock = blocks_for_duration(t.lock_s, t.our_chain.target_spacing_s) * t.our_chain.target_spacing_s
        if their_left - our_lock < t.safety_margin_s:
            return (f"counter-contract lock expires too close to ours: {their_left} s left on theirs, "
                    f"ours would lock {our_lock} s, need a margin of {t.safety_margin_s} s")
        return None

    # --- handlers --------------------------------------------------------------------------------------

    def _on_funded(self, tx: Transaction) -> list[Effect]:
        d = self._d
        if d.state is not SwapState.FUNDING or d.ours is None:
            if d.ours is not None and d.ours.txid == tx.txid:
                return []  # a duplicate report
            raise SwapError(f"ContractFunded in state {d.state.value}")
        try:
            index = find_contract_output(d.ours.script, tx)
        except ContractError:
            raise SwapError("the funding transaction does not pay to our contract") from None
        if tx.outputs[index].amount_sat != self.terms.our_amount_sat:
            raise SwapError(f"the funding transaction pays {tx.outputs[index].amount_sat} sat to our contract, "
                            f"not {self.terms.our_amount_sat}")
        d.ours.txid = tx.txid
        d.ours.outpoint = OutPoint(tx.txid, index)
        d.ours.amount_sat = tx.outputs[index].amount_sat
        d.ours.tx_hex = tx.hex()
        self._goto(SwapState.AWAITING_COUNTER_CONTRACT if self.role is Role.INITIATOR else SwapState.AWAITING_SECRET)
        out: list[Effect] = [Persist()]
        out += self._watches(d.ours, self.terms.our_chain.name)
        out.append(ShareContract(d.ours.script, tx))
        return out + self._tick()

    def _on_counter_contract(self, contract: bytes, tx: Transaction) -> list[Effect]:
        d = self._d
        if d.state is SwapState.CREATED:
            raise SwapError("start() the swap before feeding it events")
        if d.state is not SwapState.AWAITING_COUNTER_CONTRACT:
            if d.theirs is not None and d.theirs.script == contract and d.theirs.txid == tx.txid:
                return []  # a duplicate
            return [Refused(f"a counter-contract was ignored: the swap is {d.state.value}")]
        for chain in (self.terms.our_chain.name, self.terms.their_chain.name):
            self._tip(chain)  # both heights are needed to judge the locks
        return self._audit(contract, tx) + self._tick()

    def _audit(self, contract: bytes, tx: Transaction) -> list[Effect]:
        """Accept the counter-contract (COUNTER_CONTRACT_SEEN) or refuse it."""
        t = self.terms
        try:
            info = parse_contract(contract)
        except ContractError as e:
            return self._refuse(f"counter-contract is not a swap contract: {e}")
        if info.secret_hash != t.secret_hash:
            return self._refuse("counter-contract secret hash differs from the agreed one")
        if info.recipient_pkh != self.our_pkh:
            return self._refuse("counter-contract does not pay to our key")
        if info.refund_pkh != t.counterparty_pkh:
            return self._refuse("counter-contract refunds to a key other than the counterparty's agreed key")
        try:
            index = find_contract_output(contract, tx)
        except ContractError:
            return self._refuse("counter-contract transaction does not pay to the counter-contract's script")
        amount = tx.outputs[index].amount_sat
        if amount != t.their_amount_sat:
            return self._refuse(f"counter-contract amount {amount} sat differs from the agreed {t.their_amount_sat} sat")
        theirs = _Contract(contract, info, tx.txid, OutPoint(tx.txid, index), amount, None, tx.hex())
        problem = self._lock_gap_problem(theirs)
        if problem is not None:
            return self._refuse(problem)
        self._d.theirs = theirs
        self._goto(SwapState.COUNTER_CONTRACT_SEEN)
        return [Persist()] + self._watches(theirs, t.their_chain.name)

    def _on_confirmed(self, chain: str, txid: bytes, block_height: int | None) -> list[Effect]:
        self._chain(chain)
        d = self._d
        changed = False
        for contract, on in ((d.ours, self.terms.our_chain.name), (d.theirs, self.terms.their_chain.name)):
            if contract is not None and contract.txid == txid and on == chain:
                contract.mined_height = block_height
                changed = True
        if d.pending is not None and d.pending.chain == chain and d.pending.tx.txid == txid:
            d.pending.mined_height = block_height
            changed = True
        if block_height is not None and block_height > d.tips.get(chain, -1):
            d.tips[chain] = block_height
        return ([Persist()] if changed else []) + self._tick()

    def _on_spend(self, chain: str, outpoint: OutPoint, tx: Transaction, block_height: int | None) -> list[Effect]:
        self._chain(chain)
        d = self._d
        t = self.terms
        out: list[Effect] = []
        input_index = next((i for i, txin in enumerate(tx.inputs) if txin.prevout == outpoint), None)
        if input_index is None:
            raise SwapError("the spending transaction does not spend the outpoint")
        witness = tx.inputs[input_index].witness
        if d.ours is not None and chain == t.our_chain.name and outpoint == d.ours.outpoint:
            if is_refund_witness(witness, d.ours.script):
                out += self._our_spend_seen("refund", tx, block_height)
            elif is_redeem_witness(witness, d.ours.script):
                out += self._our_contract_redeemed(tx)
        elif d.theirs is not None and chain == t.their_chain.name and outpoint == d.theirs.outpoint:
            if is_redeem_witness(witness, d.theirs.script):
                out += self._our_spend_seen("redeem", tx, block_height)
            elif is_refund_witness(witness, d.theirs.script):
                out += self._their_contract_refunded()
        return out + self._tick()

    def _our_spend_seen(self, kind: str, tx: Transaction, block_height: int | None) -> list[Effect]:
        """Our redeem (their chain) or refund (our chain) is in the mempool or a block."""
        d = self._d
        chain = self.terms.their_chain.name if kind == "redeem" else self.terms.our_chain.name
        p = d.pending
        if p is None or p.kind != kind:
            return []
        if block_height is None and p.tx.txid == tx.txid:
            return []  # seen in the mempool (again): a block reported before stays until SpendReorged
        if p.tx.txid != tx.txid:  # an earlier (or later) version of ours won
            p.tx = tx
        p.mined_height = block_height
        if block_height is not None and block_height > d.tips.get(chain, -1):
            d.tips[chain] = block_height
        return [Persist()]

    def _our_contract_redeemed(self, tx: Transaction) -> list[Effect]:
        """The counterparty redeemed our contract, so the secret is public."""
        d = self._d
        if d.secret is None:
            d.secret = extract_secret(tx, self.terms.secret_hash)
        if self.role is Role.INITIATOR:
            if d.state in (SwapState.AWAITING_REFUND, SwapState.REFUNDING):
                return self._fail("the counterparty redeemed our contract while we could not redeem theirs")
            return []
        if d.state in (SwapState.AWAITING_SECRET, SwapState.REFUNDING):
            return self._redeem()
        return []

    def _their_contract_refunded(self) -> list[Effect]:
        d = self._d
        reason = "the counterparty refunded its contract"
        if d.state is SwapState.COUNTER_CONTRACT_SEEN:
            return self._refuse(reason + " before we acted on it")
        if d.state is SwapState.REDEEMING:
            d.pending = None
            if self.role is Role.INITIATOR:
                d.reason = reason + " before our redeem confirmed"
                self._goto(SwapState.AWAITING_REFUND)
                return [Persist(), Refused(d.reason)]
            return self._fail(reason + " before our redeem confirmed")
        return []

    def _fail(self, reason: str) -> list[Effect]:
        self._d.reason = reason
        self._d.pending = None
        self._goto(SwapState.FAILED)
        return [Persist(), Failed(reason)]

    def _counter_contract_deep(self) -> list[Effect]:
        d = self._d
        theirs = d.theirs
        assert theirs is not None
        problem = self._lock_gap_problem(theirs)
        if problem is not None:
            return self._refuse("counter-contract confirmed too late: " + problem)
        if self.role is Role.PARTICIPANT:
            return self._fund()
        left = self._time_left_s(theirs, self.terms.their_chain.name)
        if left < self.terms.redeem_window_s:
            return self._refuse(f"counter-contract confirmed too late: {left} s left before its refund, "
                                f"need {self.terms.redeem_window_s} s to redeem")
        return self._redeem()

    def _build(self, kind: str, fee_rate: int) -> Transaction:
        d = self._d
        if kind == "redeem":
            c = d.theirs
            assert c is not None and c.outpoint is not None and d.secret is not None
            return redeem_tx(c.script, c.outpoint, c.amount_sat, d.secret, self._key, self._redeem_spk, fee_rate)
        c = d.ours
        assert c is not None and c.outpoint is not None
        return refund_tx(c.script, c.outpoint, c.amount_sat, self._key, self._refund_spk, fee_rate)

    def _spend(self, kind: str, chain: str) -> Broadcast:
        rate = self._d.fee_rates[chain]
        try:
            tx = self._build(kind, rate)
        except ContractError:
            rate = DEFAULT_MIN_RELAY_TX_FEE  # the output would be dust at the current rate
            tx = self._build(kind, rate)
        self._d.pending = _Pending(kind, chain, tx, rate, self._d.tips.get(chain, 0))
        return Broadcast(chain, tx, kind)

    def _redeem(self) -> list[Effect]:
        self._goto(SwapState.REDEEMING)
        self._d.secret_revealed = True
        broadcast = self._spend("redeem", self.terms.their_chain.name)
        return [Persist(), broadcast]

    def _refund(self) -> list[Effect]:
        self._goto(SwapState.REFUNDING)
        broadcast = self._spend("refund", self.terms.our_chain.name)
        return [Persist(), broadcast]

    def _tick(self) -> list[Effect]:
        """What heights and confirmations now allow: depth reached, refunds due, bumps, completion."""
        d = self._d
        t = self.terms
        out: list[Effect] = []
        if d.state is SwapState.COUNTER_CONTRACT_SEEN and d.theirs is not None:
            if self._depth(t.their_chain.name, d.theirs.mined_height) >= t.their_chain.min_conf:
                out += self._counter_contract_deep()
            elif t.their_chain.name in d.tips and t.our_chain.name in d.tips:
                problem = self._lock_gap_problem(d.theirs)
                if problem is not None:
                    late = "confirmed too late" if d.theirs.mined_height is not None else "not confirmed in time"
                    out += self._refuse(f"counter-contract {late}: {problem}")
        refundable_states = (SwapState.AWAITING_COUNTER_CONTRACT, SwapState.COUNTER_CONTRACT_SEEN,
                             SwapState.AWAITING_SECRET, SwapState.AWAITING_REFUND)
        ours = d.ours
        if (d.state in refundable_states and ours is not None and ours.txid is not None
                and t.our_chain.name in d.tips and d.tips[t.our_chain.name] >= ours.info.locktime):
            out += self._refund()
        p = d.pending
        if p is not None and d.state in (SwapState.REDEEMING, SwapState.REFUNDING):
            if self._depth(p.chain, p.mined_height) >= self._min_conf(p.chain):
                txid = p.tx.txid
                if p.kind == "redeem":
                    self._goto(SwapState.REDEEMED)
                    out += [Persist(), Done(txid)]
                else:
                    self._goto(SwapState.REFUNDED)
                    out += [Persist(), Refunded(txid)]
            elif p.mined_height is None:
                out += self._maybe_bump(p)
        return out

    def _maybe_bump(self, p: _Pending) -> list[Effect]:
        tip = self._d.tips.get(p.chain, p.broadcast_tip)
        if tip - p.broadcast_tip < blocks_for_duration(self.terms.bump_after_s, self._spacing(p.chain)):
            return []
        old_txid = p.tx.txid
        new_rate = min(max(p.fee_rate_sat_kvb * 3 // 2, p.fee_rate_sat_kvb + DEFAULT_MIN_RELAY_TX_FEE,
                           self._d.fee_rates[p.chain]), self.terms.max_fee_rate_sat_kvb)
        p.broadcast_tip = tip
        if new_rate > p.fee_rate_sat_kvb:
            try:
                tx = self._build(p.kind, new_rate)
            except ContractError:
                tx = None  # no room for a higher fee: send the same one again
            if tx is not None:
                p.tx, p.fee_rate_sat_kvb = tx, new_rate
                return [Persist(), Broadcast(p.chain, tx, p.kind, replaces=old_txid)]
        return [Persist(), Broadcast(p.chain, p.tx, p.kind)]

    # --- persistence -----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to continue after a restart, as JSON-able values.

        It holds the swap's private key and (once known) the secret: store it like a wallet.
        """
        t, d = self.terms, self._d
        return {
            "version": _FORMAT_VERSION,
            "terms": {f.name: _plain(getattr(t, f.name)) for f in fields(t)},
            "key": self._key.to_bytes().hex(),
            "redeem_script_pubkey": self._redeem_spk.hex(),
            "refund_script_pubkey": self._refund_spk.hex(),
            "state": d.state.value,
            "tips": dict(d.tips),
            "fee_rates": dict(d.fee_rates),
            "secret": d.secret.hex() if d.secret is not None else None,
            "secret_revealed": d.secret_revealed,
            "reason": d.reason,
            "ours": _contract_to_dict(d.ours),
            "theirs": _contract_to_dict(d.theirs),
            "pending": None if d.pending is None else {
                "kind": d.pending.kind,
                "chain": d.pending.chain,
                "tx": d.pending.tx.hex(),
                "fee_rate_sat_kvb": d.pending.fee_rate_sat_kvb,
                "broadcast_tip": d.pending.broadcast_tip,
                "mined_height": d.pending.mined_height,
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Swap:
        """The swap :meth:`to_dict` saved; SwapError if `data` is not one."""
        try:
            if data["version"] != _FORMAT_VERSION:
                raise SwapError(f"unsupported swap record version {data['version']!r}")
            td = dict(data["terms"])
            terms = SwapTerms(
                role=Role(td.pop("role")),
                our_chain=ChainConfig(**td.pop("our_chain")),
                their_chain=ChainConfig(**td.pop("their_chain")),
                secret_hash=bytes.fromhex(td.pop("secret_hash")),
                counterparty_pkh=bytes.fromhex(td.pop("counterparty_pkh")),
                **{k: int(v) for k, v in td.items()},
            )
            secret = bytes.fromhex(data["secret"]) if data["secret"] is not None else None
            swap = cls(terms, PrivateKey(bytes.fromhex(data["key"])), bytes.fromhex(data["redeem_script_pubkey"]),
                       bytes.fromhex(data["refund_script_pubkey"]),
                       secret if terms.role is Role.INITIATOR else None)
            d = swap._d
            d.state = SwapState(data["state"])
            d.tips = {str(k): int(v) for k, v in data["tips"].items()}
            d.fee_rates = {str(k): int(v) for k, v in data["fee_rates"].items()}
            d.secret = secret
            d.secret_revealed = bool(data["secret_revealed"])
            d.reason = str(data["reason"])
            d.ours = _contract_from_dict(data["ours"])
            d.theirs = _contract_from_dict(data["theirs"])
            p = data["pending"]
            if p is not None:
                d.pending = _Pending(str(p["kind"]), str(p["chain"]), Transaction.from_hex(p["tx"]),
                                     int(p["fee_rate_sat_kvb"]), int(p["broadcast_tip"]),
                                     None if p["mined_height"] is None else int(p["mined_height"]))
        except SwapError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise SwapError(f"not a swap record: {type(e).__name__}: {e}") from None
        return swap


def _plain(value: Any) -> Any:
    """A terms field as JSON: enums by value, bytes as hex, a ChainConfig as a dict."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, ChainConfig):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    return value


def _contract_to_dict(c: _Contract | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {
        "script": c.script.hex(),
        "txid": c.txid.hex() if c.txid is not None else None,
        "vout": c.outpoint.index if c.outpoint is not None else None,
        "amount_sat": c.amount_sat,
        "mined_height": c.mined_height,
        "tx": c.tx_hex,
    }


def _contract_from_dict(d: Mapping[str, Any] | None) -> _Contract | None:
    if d is None:
        return None
    script = bytes.fromhex(d["script"])
    try:
        info = parse_contract(script)
    except ContractError as e:
        raise SwapError(f"not a swap record: {e}") from None
    txid = bytes.fromhex(d["txid"]) if d["txid"] is not None else None
    outpoint = OutPoint(txid, int(d["vout"])) if txid is not None else None
    mined = None if d["mined_height"] is None else int(d["mined_height"])
    return _Contract(script, info, txid, outpoint, int(d["amount_sat"]), mined, str(d["tx"]))
