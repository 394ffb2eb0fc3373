"""Witness v1 (taproot) is out of scope: consensus treats it as Core does without the TAPROOT
flag (an upgradable program), while relay policy refuses to spend it (fail closed)."""

from __future__ import annotations

import pytest

from base_chain.mempool import Mempool, MempoolReject
from base_chain.script import MANDATORY_FLAGS, STANDARD_FLAGS
from base_chain.tx import OutPoint, Transaction, TxIn, TxOut
from base_chain.validation import script_flags_at
from chainutil import SPK, Harness, spend

P2TR = bytes([0x51, 32]) + bytes(range(32))


def test_flag_sets() -> None:
    assert "TAPROOT" not in MANDATORY_FLAGS
    assert "TAPROOT" in STANDARD_FLAGS
    h = Harness()
    assert script_flags_at(h.chain.height + 1, h.params) <= MANDATORY_FLAGS


def test_v1_spend_is_consensus_valid_but_not_relayed() -> None:
    h = Harness()
    h.mine(101)
    outpoint, amount = h.coinbase_outpoint(1)
    fund = spend([(outpoint, amount)], [amount - 2000], script_pubkey=P2TR)
    h.submit(h.block_on(h.chain.tip, [fund], fees=2000))
    # Anyone could take it at consensus (no TAPROOT flag), so policy must refuse to relay such a spend.
    theft = Transaction(2, [TxIn(OutPoint(fund.txid, 0), b"", 0xFFFFFFFD, [b"\x01" * 64])],
                        [TxOut(amount - 5000, SPK)])
    with pytest.raises(MempoolReject) as err:
        Mempool(h.chain).accept(theft, h.chain.tip.header.time)
    assert err.value.reason.startswith("non-mandatory-script-verify-flag")
    assert h.submit(h.block_on(h.chain.tip, [theft], fees=3000))
