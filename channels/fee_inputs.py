"""Wallet inputs for the anchors channel type: zero-fee HTLC transactions and CPFP of our commitment.

With ``option_anchors_zero_fee_htlc_tx`` the peer signs our HTLC-timeout /
HTLC-success transactions with SIGHASH_SINGLE|ANYONECANPAY and they pay no fee:
we append wallet inputs and a change output (input 0 / output 0 stay in place)
before signing input 0 ourselves (:meth:`channels.watcher.ChannelMonitor.complete_htlc_tx`).
A commitment that pays too little is bumped by a child spending our anchor
output (330 sat) and wallet coins, paying for parent and child together.

Pure functions over a :class:`FeeWallet` (``base_chain.wallet.Wallet`` is one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from base_chain.crypto import PrivateKey
from base_chain.templates import p2wsh
from base_chain.tx import OutPoint, Transaction, TxIn

from . import scripts
from .monitor_effects import NeedFeeBump, NeedHtlcTxFunding
from .sweep import sign_anchor_input

__all__ = ["FeeWallet", "fund_htlc_tx", "cpfp_child", "commitment_fee_bump", "ANCHOR_SAT"]

#: BOLT 3: each anchor output is worth 330 sat.
ANCHOR_SAT = 330
_RBF = 0xFFFFFFFD


class FeeWallet(Protocol):
    def add_fee_inputs(
        self, tx: Transaction, foreign_weight: int, foreign_in_sat: int, fee_rate_sat_kw: int, tip_height: int,
        extra_fee_sat: int = 0,
    ) -> Transaction: ...


def fund_htlc_tx(need: NeedHtlcTxFunding, wallet: FeeWallet, tip_height: int) -> Transaction:
    """`need.tx` with our inputs and change appended, paying `need.target_feerate_per_kw` for the whole.

    Input 0 is left unsigned (the monitor signs it); a zero-fee HTLC transaction's input is
    worth exactly its output 0."""
    return wallet.add_fee_inputs(need.tx, need.weight, need.tx.outputs[0].amount_sat,
                                 need.target_feerate_per_kw, tip_height)


def cpfp_child(
    need: NeedFeeBump, wallet: FeeWallet, sign_anchor: Callable[[Transaction, int], Transaction], tip_height: int,
) -> Transaction:
    """A signed child of our commitment spending its anchor (input 0) and our coins, so that parent
    and child pay `need.target_feerate_per_kw` together (the parent's shortfall is the child's extra fee)."""
    bare = Transaction(2, [TxIn(need.anchor_outpoint, b"", _RBF)], [], 0)
    anchor_weight = sign_anchor(bare, 0).weight  # the anchor input signed (a 73-byte DER at most: close enough)
    shortfall = max(0, -(-need.target_feerate_per_kw * need.parent_weight // 1000) - need.parent_fee_sat)
    child = wallet.add_fee_inputs(bare, anchor_weight + 1, ANCHOR_SAT, need.target_feerate_per_kw, tip_height,
                                  extra_fee_sat=shortfall)
    return sign_anchor(child, 0)


def commitment_fee_bump(
    commitment: Transaction, funding_sat: int, funding_privkey: PrivateKey, target_feerate_per_kw: int,
    wallet: FeeWallet, tip_height: int,
) -> Transaction | None:
    """A CPFP child for our own `commitment` when it pays less than `target_feerate_per_kw`;
    None when it pays enough or has no anchor of ours."""
    fee = funding_sat - sum(o.amount_sat for o in commitment.outputs)
    if fee * 1000 >= target_feerate_per_kw * commitment.weight:
        return None
    spk = p2wsh(scripts.anchor_script(funding_privkey.public_key().to_bytes()))
    index = next((n for n, o in enumerate(commitment.outputs) if o.script_pubkey == spk), None)
    if index is None:
        return None
    need = NeedFeeBump(commitment.txid, OutPoint(commitment.txid, index), target_feerate_per_kw,
                       commitment.weight, fee)

    def sign(tx: Transaction, i: int) -> Transaction:
        signed = tx.copy()
        sign_anchor_input(signed, i, funding_privkey)
        return signed

    return cpfp_child(need, wallet, sign, tip_height)
