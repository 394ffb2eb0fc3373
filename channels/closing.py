"""Mutual close: ``shutdown`` scripts, the (legacy) closing transaction and ``closing_signed`` fee negotiation.

Pure functions and a small negotiation object; the state machine
(:mod:`channels.state`) decides when to use them.

* :func:`is_valid_shutdown_script`: BOLT 2's allowed ``scriptpubkey`` forms.
* :func:`build_closing_tx`: BOLT 3 "Legacy Closing Transaction": one input
  spending the funding output (sequence 0xFFFFFFFF, locktime 0, version 2),
  each side's balance rounded down to whole satoshis paid to its ``shutdown``
  script, the fee taken from the funder's output, outputs below the dust limit
  left out, BIP69 output order. Both sides trim with the larger of the two
  ``dust_limit_satoshis`` so they build the same transaction.
* :class:`FeeNegotiation`: BOLT 2 ``closing_signed`` rules, with ``fee_range``
  (the funder proposes, the fundee picks a fee in the overlap, the funder
  echoes it) and the legacy "strictly between" exchange when the peer sends no
  range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from base_chain.crypto import N, PrivateKey, PublicKey, encode_der, parse_der_lax
from base_chain.sighash import SIGHASH_ALL, bip143_sighash
from base_chain.tx import OutPoint, Transaction, TxIn, TxOut

from . import scripts
from .effects import CloseChannel, WarnPeer
from .messages import ClosingSigned
from .specs import ChannelParams, Spec

__all__ = [
    "is_valid_shutdown_script",
    "ClosingInputs",
    "build_closing_tx",
    "closing_sighash",
    "closing_fee_sat",
    "CloseAgreed",
    "CloseCounter",
    "FeeNegotiation",
    "ClosingSession",
]

_OP_0 = 0x00
_OP_1 = 0x51
_OP_16 = 0x60
_DUMMY_SIG = bytes(73)


def is_valid_shutdown_script(script: bytes, *, anysegwit: bool) -> bool:
    """P2WPKH, P2WSH, or (with ``option_shutdown_anysegwit``) a witness v1..16 program of 2..40 bytes."""
    if len(script) == 22 and script[0] == _OP_0 and script[1] == 20:
        return True
    if len(script) == 34 and script[0] == _OP_0 and script[1] == 32:
        return True
    if anysegwit and 4 <= len(script) <= 42 and _OP_1 <= script[0] <= _OP_16:
        return script[1] == len(script) - 2 and 2 <= script[1] <= 40
    return False


@dataclass(frozen=True, slots=True)
class ClosingInputs:
    """What a closing transaction is made of (amounts from our final commitment)."""

    funding_outpoint: OutPoint
    funding_sat: int
    local_funding_pubkey: bytes
    remote_funding_pubkey: bytes
    local_msat: int
    remote_msat: int
    local_script: bytes
    remote_script: bytes
    local_is_funder: bool
    dust_limit_sat: int

    @classmethod
    def of(cls, params: ChannelParams, spec: Spec, local_script: bytes, remote_script: bytes) -> ClosingInputs:
        """From the channel and our final commitment's spec; both sides trim with the larger dust limit."""
        return cls(
            funding_outpoint=params.funding_outpoint,
            funding_sat=params.funding_sat,
            local_funding_pubkey=params.local.keys.funding_pubkey.to_bytes(),
            remote_funding_pubkey=params.remote.keys.funding_pubkey.to_bytes(),
            local_msat=spec.to_local_msat,
            remote_msat=spec.to_remote_msat,
            local_script=local_script,
            remote_script=remote_script,
            local_is_funder=params.is_funder,
            dust_limit_sat=max(params.local.dust_limit_sat, params.remote.dust_limit_sat),
        )

    @property
    def funding_script(self) -> bytes:
        return scripts.funding_script(self.local_funding_pubkey, self.remote_funding_pubkey)

    @property
    def funder_sat(self) -> int:
        return (self.local_msat if self.local_is_funder else self.remote_msat) // 1000


def build_closing_tx(inputs: ClosingInputs, fee_sat: int, *, without_remote_output: bool = False) -> Transaction:
    """The closing transaction paying ``fee_sat`` (the variant without the peer's output if asked)."""
    local = inputs.local_msat // 1000
    remote = inputs.remote_msat // 1000
    if inputs.local_is_funder:
        local -= fee_sat
    else:
        remote -= fee_sat
    if min(local, remote) < 0:
        raise ValueError(f"the funder cannot pay a closing fee of {fee_sat} sat")
    outputs = []
    if local >= inputs.dust_limit_sat:
        outputs.append(TxOut(local, inputs.local_script))
    if remote >= inputs.dust_limit_sat and not without_remote_output:
        outputs.append(TxOut(remote, inputs.remote_script))
    outputs.sort(key=lambda o: (o.amount_sat, o.script_pubkey))
    return Transaction(2, [TxIn(inputs.funding_outpoint, b"", 0xFFFFFFFF)], outputs, 0)


def closing_sighash(inputs: ClosingInputs, tx: Transaction) -> bytes:
    return bip143_sighash(inputs.funding_script, tx, 0, SIGHASH_ALL, inputs.funding_sat)


def closing_fee_sat(inputs: ClosingInputs, feerate_per_kw: int) -> int:
    """The fee at ``feerate_per_kw`` for the signed closing transaction (both outputs present)."""
    tx = build_closing_tx(inputs, 0)
    tx.inputs[0].witness = [b"", _DUMMY_SIG, _DUMMY_SIG, inputs.funding_script]
    return feerate_per_kw * tx.weight // 1000


@dataclass(frozen=True, slots=True)
class CloseAgreed:
    """Sign and broadcast the closing transaction with ``fee_sat``; ``reply``: send that fee back first."""

    fee_sat: int
    reply: bool


@dataclass(frozen=True, slots=True)
class CloseCounter:
    """Propose ``fee_sat`` in a new ``closing_signed``."""

    fee_sat: int


@dataclass
class FeeNegotiation:
    """One side's state in a ``closing_signed`` exchange (restarted on every reconnection)."""

    is_funder: bool
    target_fee_sat: int
    min_fee_sat: int
    max_fee_sat: int
    last_sent_fee: int | None = None
    last_received_fee: int | None = None

    @classmethod
    def start(cls, is_funder: bool, target_fee_sat: int, funder_balance_sat: int, funding_sat: int) -> FeeNegotiation:
        """Our range: from half the target to twice it (capped by what the funder has) if we pay;
        anything from half the target up if we don't."""
        target = max(1, min(target_fee_sat, funder_balance_sat))
        lo = max(1, target // 2)
        hi = min(2 * target, funder_balance_sat) if is_funder else funding_sat
        return cls(is_funder, target, min(lo, hi), max(lo, hi))

    @property
    def fee_range(self) -> tuple[int, int]:
        return self.min_fee_sat, self.max_fee_sat

    def first_proposal(self) -> int:
        return self.target_fee_sat

    def on_proposal(self, fee_sat: int, their_range: tuple[int, int] | None) -> CloseAgreed | CloseCounter:
        """Decide how to answer the peer's ``closing_signed`` (raises WarnPeer / CloseChannel)."""
        previous_received, self.last_received_fee = self.last_received_fee, fee_sat
        if fee_sat == self.last_sent_fee:
            return CloseAgreed(fee_sat, reply=False)
        mine_ok = self.min_fee_sat <= fee_sat <= self.max_fee_sat
        if their_range is not None:
            their_lo, their_hi = their_range
            if their_lo > their_hi or not their_lo <= fee_sat <= their_hi:
                raise CloseChannel(f"closing fee {fee_sat} outside its own fee_range {their_range}")
            lo, hi = max(self.min_fee_sat, their_lo), min(self.max_fee_sat, their_hi)
            if lo > hi:
                raise WarnPeer(f"no overlap between fee ranges {self.fee_range} and {their_range}", disconnect=False)
            if self.is_funder:
                if not lo <= fee_sat <= hi:
                    raise CloseChannel(f"closing fee {fee_sat} outside the overlap [{lo}, {hi}]")
                return CloseAgreed(fee_sat, reply=True)
            if self.last_sent_fee is not None:
                raise CloseChannel(f"closing fee {fee_sat} differs from our {self.last_sent_fee}")
            if mine_ok:
                return CloseAgreed(fee_sat, reply=True)
            return self._counter(min(max(self.target_fee_sat, lo), hi))
        # legacy negotiation: each new proposal strictly between the last two
        if self.last_sent_fee is not None and previous_received is not None:
            a, b = sorted((self.last_sent_fee, previous_received))
            if not a < fee_sat < b:
                raise CloseChannel(f"closing fee {fee_sat} not strictly between {a} and {b}")
        if mine_ok:
            return CloseAgreed(fee_sat, reply=True)
        anchor = self.last_sent_fee if self.last_sent_fee is not None else self.target_fee_sat
        anchor = min(max(anchor, self.min_fee_sat), self.max_fee_sat)
        middle = (anchor + fee_sat) // 2
        if middle in (fee_sat, anchor) and self.last_sent_fee is not None:
            return CloseAgreed(fee_sat, reply=True)
        return self._counter(middle if self.last_sent_fee is not None else anchor)

    def _counter(self, fee_sat: int) -> CloseCounter:
        self.last_sent_fee = fee_sat
        return CloseCounter(fee_sat)

    def sent(self, fee_sat: int) -> None:
        self.last_sent_fee = fee_sat

    def to_dict(self) -> dict[str, Any]:
        return {
            "is_funder": self.is_funder,
            "target_fee_sat": self.target_fee_sat,
            "min_fee_sat": self.min_fee_sat,
            "max_fee_sat": self.max_fee_sat,
            "last_sent_fee": self.last_sent_fee,
            "last_received_fee": self.last_received_fee,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeeNegotiation:
        return cls(**d)


def _compact(der: bytes) -> bytes:
    rs = parse_der_lax(der)
    assert rs is not None
    return rs[0].to_bytes(32, "big") + rs[1].to_bytes(32, "big")


def _valid(pubkey: PublicKey, sig64: bytes, digest: bytes) -> bool:
    r, s = int.from_bytes(sig64[:32], "big"), int.from_bytes(sig64[32:], "big")
    return 0 < r < N and 0 < s <= N // 2 and pubkey.verify(r, s, digest)


@dataclass
class ClosingSession:
    """Signs our ``closing_signed`` proposals and checks the peer's, for one negotiation."""

    channel_id: bytes
    inputs: ClosingInputs
    negotiation: FeeNegotiation
    funding_privkey: PrivateKey
    remote_funding_pubkey: PublicKey

    def _sign(self, tx: Transaction) -> bytes:
        return self.funding_privkey.sign_der(closing_sighash(self.inputs, tx))

    def propose(self, fee_sat: int, *, without_remote_output: bool = False) -> ClosingSigned:
        """Our ``closing_signed`` for ``fee_sat`` (recorded as our last proposal)."""
        tx = build_closing_tx(self.inputs, fee_sat, without_remote_output=without_remote_output)
        self.negotiation.sent(fee_sat)
        return ClosingSigned(self.channel_id, fee_sat, _compact(self._sign(tx)), self.negotiation.fee_range)

    def receive(self, msg: ClosingSigned) -> tuple[ClosingSigned | None, Transaction | None]:
        """(what to send back, the fully signed closing transaction once agreed); raises CloseChannel / WarnPeer.

        The peer's signature must be valid for the closing transaction or for
        its variant without the peer's own output (BOLT 3: it may drop it).
        """
        fee = msg.fee_satoshis
        try:
            variants = [
                (drop, build_closing_tx(self.inputs, fee, without_remote_output=drop)) for drop in (False, True)
            ]
        except ValueError as e:
            raise CloseChannel(f"closing fee {fee}: {e}") from None
        valid = [
            (drop, tx)
            for drop, tx in variants
            if _valid(self.remote_funding_pubkey, msg.signature, closing_sighash(self.inputs, tx))
        ]
        if not valid:
            raise CloseChannel(f"invalid closing_signed signature for fee {fee}")
        drop, tx = valid[0]
        outcome = self.negotiation.on_proposal(fee, msg.fee_range)
        if isinstance(outcome, CloseCounter):
            return self.propose(outcome.fee_sat), None
        reply = self.propose(fee, without_remote_output=drop) if outcome.reply else None
        ours = self._sign(tx) + bytes([SIGHASH_ALL])
        r, s = int.from_bytes(msg.signature[:32], "big"), int.from_bytes(msg.signature[32:], "big")
        theirs = encode_der(r, s) + bytes([SIGHASH_ALL])
        tx.inputs[0].witness = scripts.funding_witness(
            ours, theirs, self.inputs.local_funding_pubkey, self.inputs.remote_funding_pubkey
        )
        return reply, tx
