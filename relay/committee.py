"""The notary committee of the alpha <-> beta peg: an M-of-N key set, its scripts and its lifetime.

A :class:`Committee` is an epoch number, N compressed public keys (sorted, as
BIP67 sorts them, so every party derives byte-identical scripts) and a threshold
M. It controls coins on both chains through P2WSH outputs whose witness script is

    <32-byte tag> OP_DROP <M> <pubkey_1> ... <pubkey_N> <N> OP_CHECKMULTISIG

The tag is a tagged hash that makes each script unique to its purpose:

* the **reserve** script of chain C: ``tagged_hash("canal/peg-reserve/v1",
  committee_id || genesis(C))``. The committee's float on C; releases are paid
  from it and their change returns to it.
* a **deposit** script: ``tagged_hash("canal/peg-deposit/v1", committee_id ||
  genesis(source) || genesis(destination) || destination_script)``. A depositor
  pays here to move coins from ``source`` to ``destination_script`` on
  ``destination`` (as Liquid's peg-in address commits to its claim script).

Why a tag at all, rather than the bare multisig:

1. A deposit is bound to its destination when it is made. Without that, anyone
   who sees a deposit could ask for it to be released to *their* address, and
   the first request to collect M signatures would win.
2. Reserve and deposit scripts never coincide, so the change a release sends
   back to the reserve (or the reserves a rotation moves) can never be passed off
   as a new deposit.
3. The chain's genesis hash is in every script, hence in every BIP143 scriptCode
   the committee signs: a signature made on one chain cannot be replayed on the
   other, even for a transaction whose outpoints exist on both (two chains can
   share identical coinbase transactions).

Committee ids commit to the epoch, M and the keys, so two key sets that claim the
same epoch never share a script. M must be a majority of N: any two sets of M
notaries then share at least 2M - N members, so -- an honest notary attesting a
deposit only once -- a second release of one deposit needs 2M - N notaries to
sign twice.

A committee's lifetime is a :class:`ValidityWindow` per chain, in that chain's
heights (alpha and beta have different block intervals): it is *pending* before
``activation_height``, *active* until ``retire_height`` (the height its successor
activates at), then in its *grace* period until ``expiry_height``, then *expired*.
An expired key set signs nothing but the sweep of what it still holds to its
successor.

:func:`rotate` makes the plan of a rotation: the successor, the retiring
committee with its expiry, and per chain the transaction moving the reserves from
the old scripts to the new reserve script (to be signed by M of the old keys).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from base_chain.address import address_to_script, script_to_address
from base_chain.hashes import tagged_hash
from base_chain.params import get_params
from base_chain.policy import fee_for
from base_chain.serialize import ser_bytes, u8, u32
from base_chain.templates import multisig, p2wsh, push_data
from base_chain.tx import SEQUENCE_FINAL, OutPoint, Transaction, TxIn, TxOut

__all__ = [
    "CommitteeError",
    "CommitteeStatus",
    "ValidityWindow",
    "Committee",
    "ReserveCoin",
    "SweepRequest",
    "RotationPlan",
    "chain_id",
    "rotate",
    "build_sweep",
    "estimate_multisig_vsize",
    "blocks_for_duration",
    "MAX_COMMITTEE_SIZE",
]

MAX_COMMITTEE_SIZE: Final = 15
"""CHECKMULTISIG allows 20 keys, but P2WSH policy (and our witness estimate) is sized for 15."""

OP_DROP: Final = 0x75

_TAG_COMMITTEE: Final = "canal/peg-committee/v1"
_TAG_RESERVE: Final = "canal/peg-reserve/v1"
_TAG_DEPOSIT: Final = "canal/peg-deposit/v1"


class CommitteeError(ValueError):
    """A committee, window or rotation is malformed; the message names the reason."""


def chain_id(chain: str) -> bytes:
    """The identity of a chain in every commitment: its genesis hash (internal order).

    A name is a label; two chains with one name but different genesis blocks are
    different chains. Raises ValueError for an unknown chain.
    """
    return get_params(chain).genesis_hash


def blocks_for_duration(chain: str, seconds: int) -> int:
    """The number of blocks of ``chain`` expected in ``seconds`` (rounded up).

    Use it to give a grace period of one wall-clock length on both chains
    (alpha: 600 s blocks, beta: 150 s).
    """
    spacing = get_params(chain).target_spacing_s
    return -(-seconds // spacing)


class CommitteeStatus(enum.Enum):
    PENDING = "pending"
    ACTIVE = "active"
    GRACE = "grace"
    EXPIRED = "expired"
    ABSENT = "absent"
    """The committee has no window on that chain at all."""

    @property
    def may_sign(self) -> bool:
        """Whether a key set in this state may attest releases."""
        return self in (CommitteeStatus.ACTIVE, CommitteeStatus.GRACE)


@dataclass(frozen=True, slots=True)
class ValidityWindow:
    """When a committee serves on one chain, in that chain's block heights."""

    chain: str
    activation_height: int
    retire_height: int | None = None
    """The height its successor activates at; None while it has none."""
    expiry_height: int | None = None
    """retire_height + the grace period; None while it has no successor."""

    def __post_init__(self) -> None:
        if self.activation_height < 0:
            raise CommitteeError(f"{self.chain}: activation height must be >= 0")
        if (self.retire_height is None) != (self.expiry_height is None):
            raise CommitteeError(f"{self.chain}: retire and expiry heights go together")
        if self.retire_height is not None and self.expiry_height is not None:
            if not self.activation_height <= self.retire_height <= self.expiry_height:
                raise CommitteeError(
                    f"{self.chain}: need activation ({self.activation_height}) <= retire "
                    f"({self.retire_height}) <= expiry ({self.expiry_height})"
                )

    def status(self, height: int) -> CommitteeStatus:
        if height < self.activation_height:
            return CommitteeStatus.PENDING
        if self.retire_height is None or height < self.retire_height:
            return CommitteeStatus.ACTIVE
        if self.expiry_height is not None and height < self.expiry_height:
            return CommitteeStatus.GRACE
        return CommitteeStatus.EXPIRED


@dataclass(frozen=True, slots=True)
class Committee:
    """An M-of-N key set of one epoch, and where and when it serves."""

    epoch: int
    pubkeys: tuple[bytes, ...]
    """Compressed SEC keys, sorted ascending (construct with :meth:`create` to sort)."""
    threshold: int
    windows: tuple[ValidityWindow, ...] = field(default=())

    def __post_init__(self) -> None:
        n = len(self.pubkeys)
        if self.epoch < 0 or self.epoch > 0xFFFFFFFF:
            raise CommitteeError(f"epoch {self.epoch} out of range")
        if not 1 <= n <= MAX_COMMITTEE_SIZE:
            raise CommitteeError(f"a committee has 1..{MAX_COMMITTEE_SIZE} keys, got {n}")
        if not n // 2 < self.threshold <= n:
            # Any two M-sets must share a member, or two disjoint sets of honest notaries
            # could each release the same deposit once.
            raise CommitteeError(f"threshold {self.threshold} must be a majority of {n}: {n // 2 + 1}..{n}")
        for pk in self.pubkeys:
            if len(pk) != 33 or pk[0] not in (2, 3):
                raise CommitteeError(f"not a compressed public key: {pk.hex()}")
        if list(self.pubkeys) != sorted(set(self.pubkeys)):
            raise CommitteeError("public keys must be distinct and sorted (use Committee.create)")
        chains = [w.chain for w in self.windows]
        if len(chains) != len(set(chains)):
            raise CommitteeError("one validity window per chain")
        for name in chains:
            chain_id(name)  # ValueError for an unknown chain

    @classmethod
    def create(
        cls,
        epoch: int,
        pubkeys: Iterable[bytes],
        threshold: int,
        activation_heights: Mapping[str, int],
    ) -> Committee:
        """A committee with its keys sorted, active from ``activation_heights[chain]`` on each chain."""
        keys = [bytes(pk) for pk in pubkeys]
        if len(keys) != len(set(keys)):
            raise CommitteeError("duplicate public key in committee")
        windows = tuple(ValidityWindow(c, h) for c, h in sorted(activation_heights.items()))
        return cls(epoch, tuple(sorted(keys)), threshold, windows)

    # --- identity and scripts ----------------------------------------------------------------

    @property
    def committee_id(self) -> bytes:
        """Commits to epoch, M and the keys (not to the windows, which a rotation changes)."""
        data = u32(self.epoch) + u8(self.threshold) + u8(len(self.pubkeys)) + b"".join(self.pubkeys)
        return tagged_hash(_TAG_COMMITTEE, data)

    @property
    def multisig_script(self) -> bytes:
        """<M> <keys...> <N> OP_CHECKMULTISIG: the part of every committee script that checks signatures."""
        return multisig(self.threshold, self.pubkeys)

    def _tagged_script(self, tag: bytes) -> bytes:
        return push_data(tag) + bytes([OP_DROP]) + self.multisig_script

    def reserve_witness_script(self, chain: str) -> bytes:
        return self._tagged_script(tagged_hash(_TAG_RESERVE, self.committee_id + chain_id(chain)))

    def reserve_script_pubkey(self, chain: str) -> bytes:
        return p2wsh(self.reserve_witness_script(chain))

    def reserve_address(self, chain: str) -> str:
        return _address(self.reserve_script_pubkey(chain), chain)

    def deposit_witness_script(
        self, source_chain: str, destination_chain: str, destination_script: bytes
    ) -> bytes:
        data = (
            self.committee_id
            + chain_id(source_chain)
            + chain_id(destination_chain)
            + ser_bytes(destination_script)
        )
        return self._tagged_script(tagged_hash(_TAG_DEPOSIT, data))

    def deposit_script_pubkey(
        self, source_chain: str, destination_chain: str, destination_script: bytes
    ) -> bytes:
        return p2wsh(self.deposit_witness_script(source_chain, destination_chain, destination_script))

    def deposit_address(self, source_chain: str, destination_chain: str, destination_address: str) -> str:
        """The address on ``source_chain`` to pay for coins at ``destination_address`` on ``destination_chain``."""
        dest_script = address_to_script(destination_address, get_params(destination_chain).address_prefixes)
        return _address(self.deposit_script_pubkey(source_chain, destination_chain, dest_script), source_chain)

    def controls(self, witness_script: bytes) -> bool:
        """Whether ``witness_script`` is one of this committee's tagged scripts (reserve or deposit)."""
        return (
            len(witness_script) == 34 + len(self.multisig_script)
            and witness_script[0] == 32
            and witness_script[33] == OP_DROP
            and witness_script[34:] == self.multisig_script
        )

    def index_of(self, pubkey: bytes) -> int | None:
        try:
            return self.pubkeys.index(pubkey)
        except ValueError:
            return None

    # --- lifetime ----------------------------------------------------------------------------

    def window(self, chain: str) -> ValidityWindow | None:
        for w in self.windows:
            if w.chain == chain:
                return w
        return None

    def status(self, chain: str, height: int) -> CommitteeStatus:
        w = self.window(chain)
        return CommitteeStatus.ABSENT if w is None else w.status(height)

    def retiring(self, retire_heights: Mapping[str, int], grace_blocks: Mapping[str, int]) -> Committee:
        """This committee with a successor from ``retire_heights`` and an expiry ``grace_blocks`` later."""
        windows = []
        for w in self.windows:
            if w.chain not in retire_heights or w.chain not in grace_blocks:
                raise CommitteeError(f"rotation gives no retire height and grace period for {w.chain}")
            if grace_blocks[w.chain] < 0:
                raise CommitteeError(f"{w.chain}: grace period must be >= 0 blocks")
            retire = retire_heights[w.chain]
            windows.append(replace(w, retire_height=retire, expiry_height=retire + grace_blocks[w.chain]))
        return replace(self, windows=tuple(windows))

    # --- configuration files -----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "threshold": self.threshold,
            "pubkeys": [pk.hex() for pk in self.pubkeys],
            "windows": [
                {
                    "chain": w.chain,
                    "activation_height": w.activation_height,
                    "retire_height": w.retire_height,
                    "expiry_height": w.expiry_height,
                }
                for w in self.windows
            ],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Committee:
        try:
            windows = tuple(
                ValidityWindow(
                    str(w["chain"]),
                    int(w["activation_height"]),
                    None if w.get("retire_height") is None else int(w["retire_height"]),
                    None if w.get("expiry_height") is None else int(w["expiry_height"]),
                )
                for w in d["windows"]
            )
            return cls(
                int(d["epoch"]),
                tuple(bytes.fromhex(pk) for pk in d["pubkeys"]),
                int(d["threshold"]),
                windows,
            )
        except (KeyError, TypeError) as e:
            raise CommitteeError(f"malformed committee record: {e!r}") from e


def _address(script_pubkey: bytes, chain: str) -> str:
    addr = script_to_address(script_pubkey, get_params(chain).address_prefixes)
    assert addr is not None  # P2WSH always has an address
    return addr


# --- rotation ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReserveCoin:
    """A coin the committee controls: where it is, what it holds, and the witness script that spends it."""

    outpoint: OutPoint
    txout: TxOut
    witness_script: bytes


@dataclass(frozen=True, slots=True)
class SweepRequest:
    """What a notary is asked to sign to move a retiring committee's coins on one chain to its successor."""

    chain: str
    from_epoch: int
    to_epoch: int
    tx: Transaction
    witness_scripts: tuple[bytes, ...]
    """One per input of ``tx``, in input order."""


@dataclass(frozen=True, slots=True)
class RotationPlan:
    old: Committee
    """The retiring committee, with retire and expiry heights set on every chain."""
    new: Committee
    sweeps: tuple[SweepRequest, ...]
    """Per chain that had reserves, the transaction moving them to ``new``'s reserve script."""

    def sweep_for(self, chain: str) -> SweepRequest | None:
        for s in self.sweeps:
            if s.chain == chain:
                return s
        return None


def estimate_multisig_vsize(tx: Transaction, witness_scripts: Sequence[bytes], threshold: int) -> int:
    """The vsize ``tx`` will have once each input carries a threshold-of-N witness (73-byte signatures)."""
    est = tx.copy()
    for txin, ws in zip(est.inputs, witness_scripts, strict=True):
        txin.witness = [b""] + [b"\x00" * 73] * threshold + [ws]
    return est.vsize


def build_sweep(
    old: Committee,
    new: Committee,
    chain: str,
    coins: Sequence[ReserveCoin],
    fee_rate_sat_per_kvb: int,
) -> SweepRequest:
    """The transaction moving ``coins`` (controlled by ``old``) to ``new``'s reserve on ``chain``.

    Deterministic: inputs in (txid, index) order, one output, the fee for the
    signed size at ``fee_rate_sat_per_kvb``, version 2, locktime 0.
    """
    if not coins:
        raise CommitteeError(f"{chain}: nothing to sweep")
    ordered = sorted(coins, key=lambda c: (c.outpoint.txid, c.outpoint.index))
    if len({c.outpoint for c in ordered}) != len(ordered):
        raise CommitteeError(f"{chain}: a coin is listed twice")
    for c in ordered:
        if not old.controls(c.witness_script) or p2wsh(c.witness_script) != c.txout.script_pubkey:
            raise CommitteeError(f"{chain}: coin {c.outpoint} is not held by committee epoch {old.epoch}")
    total = sum(c.txout.amount_sat for c in ordered)
    out_spk = new.reserve_script_pubkey(chain)
    tx = Transaction(
        version=2,
        inputs=[TxIn(c.outpoint, b"", SEQUENCE_FINAL) for c in ordered],
        outputs=[TxOut(total, out_spk)],
        locktime=0,
    )
    scripts = tuple(c.witness_script for c in ordered)
    fee = fee_for(fee_rate_sat_per_kvb, estimate_multisig_vsize(tx, scripts, old.threshold))
    if fee >= total:
        raise CommitteeError(f"{chain}: fee {fee} sat would consume the {total} sat swept")
    tx.outputs[0] = TxOut(total - fee, out_spk)
    return SweepRequest(chain, old.epoch, new.epoch, tx, scripts)


def rotate(
    old: Committee,
    new_pubkeys: Iterable[bytes],
    new_threshold: int,
    rotation_heights: Mapping[str, int],
    grace_blocks: Mapping[str, int],
    reserves: Mapping[str, Sequence[ReserveCoin]],
    fee_rate_sat_per_kvb: int = 1000,
) -> RotationPlan:
    """Plan the hand-over from ``old`` to a committee of ``new_pubkeys`` (epoch + 1).

    The successor activates at ``rotation_heights[chain]`` on each chain; ``old``
    retires there and expires ``grace_blocks[chain]`` blocks later. A deposit is
    released only by the committee whose deposit address it paid (so no two
    committees can each release it once), so during the grace period the old key
    set still releases deposits made to its addresses; after it, it releases
    nothing.

    ``reserves[chain]`` are the coins to move now (reserve coins and deposit
    outputs alike); the plan carries, per chain, the sweep moving them to the new
    reserve script, which M of the old notaries sign (Notary.review_sweep). Leave
    the old committee enough reserve on each chain for the deposits still in
    flight, and sweep the rest at expiry with :func:`build_sweep`.
    """
    for w in old.windows:
        if w.retire_height is not None:
            raise CommitteeError(f"committee epoch {old.epoch} already has a successor on {w.chain}")
        if w.chain not in rotation_heights:
            raise CommitteeError(f"no rotation height for {w.chain}")
        if rotation_heights[w.chain] < w.activation_height:
            raise CommitteeError(f"{w.chain}: rotation height precedes epoch {old.epoch}'s activation")
    new = Committee.create(old.epoch + 1, new_pubkeys, new_threshold, rotation_heights)
    if new.pubkeys == old.pubkeys and new.threshold == old.threshold:
        raise CommitteeError("the new committee has the same keys and threshold as the old one")
    retiring = old.retiring(rotation_heights, grace_blocks)
    sweeps = tuple(
        build_sweep(old, new, chain, coins, fee_rate_sat_per_kvb)
        for chain, coins in sorted(reserves.items())
        if coins
    )
    return RotationPlan(retiring, new, sweeps)

