"""Legacy signature hashes against Bitcoin Core's sighash.json (all 500 cases)."""

from __future__ import annotations

import pytest

import vectors
from base_chain.sighash import legacy_sighash
from base_chain.tx import Transaction

CASES = [c for c in vectors.load_json("bitcoin", "sighash.json") if len(c) == 5]


def test_vector_count() -> None:
    assert len(CASES) == 500


@pytest.mark.parametrize("case", CASES, ids=[f"sighash{i}" for i in range(len(CASES))])
def test_legacy_sighash(case: list) -> None:
    raw_tx, script_hex, index, hash_type, expected = case
    tx = Transaction.from_hex(raw_tx)
    assert tx.to_bytes().hex() == raw_tx
    got = legacy_sighash(bytes.fromhex(script_hex), tx, index, hash_type)
    # sighash.json shows the hash in uint256 display order (reversed).
    assert got[::-1].hex() == expected
