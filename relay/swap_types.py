"""The inputs, outputs and settings of the swap state machine (relay.swap): chains and terms,
the events a host feeds in, and the effects it carries out."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Union

from base_chain.policy import DEFAULT_MIN_RELAY_TX_FEE
from base_chain.tx import OutPoint, Transaction

from .contract import INITIATOR_LOCK_S, PARTICIPANT_LOCK_S

class SwapError(Exception):
    """The host misused the core (an event that cannot happen now, unknown chain, bad terms or
    data); the swap's state is unchanged. Counterparty misbehaviour is never raised: it is a
    :class:`Refused` effect."""


class Role(enum.Enum):
    INITIATOR = "initiator"
    PARTICIPANT = "participant"


# --- configuration ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainConfig:
    """One chain as the swap sees it."""

    name: str
    target_spacing_s: int
    """The chain's block interval (ChainParams.target_spacing_s): converts durations to heights."""
    min_conf: int = 1
    """Depth at which a contract (or a redeem/refund) on this chain counts."""
    fee_rate_sat_kvb: int = DEFAULT_MIN_RELAY_TX_FEE
    """Fee rate for our redeem/refund on this chain (updated by FeeRateObserved)."""

    def __post_init__(self) -> None:
        if not self.name:
            raise SwapError("a chain needs a name")
        if self.target_spacing_s <= 0:
            raise SwapError(f"{self.name}: target_spacing_s must be positive")
        if self.min_conf < 1:
            raise SwapError(f"{self.name}: min_conf must be at least 1")
        if self.fee_rate_sat_kvb < DEFAULT_MIN_RELAY_TX_FEE:
            raise SwapError(f"{self.name}: fee rate below the minimum relay fee ({DEFAULT_MIN_RELAY_TX_FEE} sat/kvB)")


MIN_AMOUNT_SAT: Final = 1000


@dataclass(frozen=True, slots=True)
class SwapTerms:
    """What the two parties agreed, from our side."""

    role: Role
    our_chain: ChainConfig
    """Where we lock ``our_amount_sat``."""
    their_chain: ChainConfig
    """Where they lock ``their_amount_sat`` for us."""
    our_amount_sat: int
    their_amount_sat: int
    secret_hash: bytes
    counterparty_pkh: bytes
    """hash160 of the counterparty's swap key: the recipient of our contract and the refund key of theirs."""
    our_lock_s: int = 0
    """How long our contract locks; 0: 48 h for the initiator, 24 h for the participant (decred's)."""
    safety_margin_s: int = 6 * 60 * 60
    """The participant's lock must end at least this long before the initiator's."""
    redeem_window_s: int = 2 * 60 * 60
    """Initiator: the least time left on the counter-contract when revealing the secret."""
    bump_after_s: int = 30 * 60
    """A redeem or refund unconfirmed this long (in the chain's blocks) is replaced with a higher fee."""
    max_fee_rate_sat_kvb: int = 500_000

    def __post_init__(self) -> None:
        if self.our_chain.name == self.their_chain.name:
            raise SwapError("the two sides of a swap must be on different chains")
        for what, amount in (("our_amount_sat", self.our_amount_sat), ("their_amount_sat", self.their_amount_sat)):
            if amount < MIN_AMOUNT_SAT:
                raise SwapError(f"{what} must be at least {MIN_AMOUNT_SAT} sat, got {amount}")
        if len(self.secret_hash) != 32:
            raise SwapError("secret hash must be 32 bytes")
        if len(self.counterparty_pkh) != 20:
            raise SwapError("counterparty public key hash must be 20 bytes")
        if self.our_lock_s < 0 or self.safety_margin_s < 0 or self.redeem_window_s < 0 or self.bump_after_s <= 0:
            raise SwapError("durations must not be negative (bump_after_s positive)")
        if self.max_fee_rate_sat_kvb < DEFAULT_MIN_RELAY_TX_FEE:
            raise SwapError("max_fee_rate_sat_kvb is below the minimum relay fee")

    @property
    def lock_s(self) -> int:
        if self.our_lock_s:
            return self.our_lock_s
        return INITIATOR_LOCK_S if self.role is Role.INITIATOR else PARTICIPANT_LOCK_S


# --- events --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeightObserved:
    """`chain`'s tip is now at `height` (also after a reorg, when it may go down)."""

    chain: str
    height: int


@dataclass(frozen=True, slots=True)
class ContractFunded:
    """The host carried out FundContract: `tx` pays to our contract (broadcast already)."""

    tx: Transaction


@dataclass(frozen=True, slots=True)
class CounterContractReceived:
    """The counterparty sent its contract and contract transaction."""

    contract: bytes
    tx: Transaction


@dataclass(frozen=True, slots=True)
class TxConfirmed:
    """A watched transaction was mined in the block at `block_height`."""

    chain: str
    txid: bytes
    block_height: int


@dataclass(frozen=True, slots=True)
class TxReorged:
    """The block that mined a watched transaction was disconnected."""

    chain: str
    txid: bytes


@dataclass(frozen=True, slots=True)
class SpendObserved:
    """`spending_tx` spends watched `outpoint`: in a block at `block_height`, or in the mempool (None)."""

    chain: str
    outpoint: OutPoint
    spending_tx: Transaction
    block_height: int | None = None


@dataclass(frozen=True, slots=True)
class SpendReorged:
    """The block with the spend of `outpoint` was disconnected."""

    chain: str
    outpoint: OutPoint


@dataclass(frozen=True, slots=True)
class FeeRateObserved:
    """The fee rate to use for new redeem/refund transactions on `chain`."""

    chain: str
    fee_rate_sat_kvb: int


Event = Union[
    HeightObserved, ContractFunded, CounterContractReceived, TxConfirmed, TxReorged,
    SpendObserved, SpendReorged, FeeRateObserved,
]  # fmt: skip


# --- effects -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Persist:
    """Store Swap.to_dict() durably before carrying out the effects that follow."""


@dataclass(frozen=True, slots=True)
class FundContract:
    chain: str
    contract: bytes
    script_pubkey: bytes
    amount_sat: int


@dataclass(frozen=True, slots=True)
class ShareContract:
    contract: bytes
    contract_tx: Transaction


@dataclass(frozen=True, slots=True)
class Broadcast:
    chain: str
    tx: Transaction
    kind: str
    """"redeem" or "refund"."""
    replaces: bytes | None = None
    """txid of the transaction this one replaces (a fee bump), if any."""


@dataclass(frozen=True, slots=True)
class WatchConfirmation:
    chain: str
    txid: bytes
    script_pubkey: bytes
    num_confs: int
    height_hint: int


@dataclass(frozen=True, slots=True)
class WatchSpend:
    chain: str
    outpoint: OutPoint
    script_pubkey: bytes
    height_hint: int


@dataclass(frozen=True, slots=True)
class Refused:
    """The counter-contract (or going on with the swap) was refused; why."""

    reason: str


@dataclass(frozen=True, slots=True)
class Done:
    """We redeemed the counterparty's contract: the swap succeeded."""

    redeem_txid: bytes


@dataclass(frozen=True, slots=True)
class Refunded:
    refund_txid: bytes


@dataclass(frozen=True, slots=True)
class Aborted:
    """The swap ended before anything of ours was locked."""

    reason: str


@dataclass(frozen=True, slots=True)
class Failed:
    reason: str


Effect = Union[
    Persist, FundContract, ShareContract, Broadcast, WatchConfirmation, WatchSpend,
    Refused, Done, Refunded, Aborted, Failed,
]  # fmt: skip


