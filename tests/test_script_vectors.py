"""Bitcoin Core's script_tests.json, every non-taproot case, with the exact expected error.

Each case is run the way Core's script_tests.cpp runs it: a crediting transaction
(version 1, one coinbase-like input with scriptSig ``0 0``, one output of the given
amount paying the case's scriptPubKey) and a spending transaction (version 1, one
input spending it with the case's scriptSig and witness, one empty-script output of
the same amount), then VerifyScript with the case's flags. As in Core's harness,
CLEANSTACK implies P2SH and WITNESS.

Taproot cases (flags with TAPROOT, or the ``#TAPROOTOUTPUT#`` placeholder that only
Core's taproot builder can fill in) are skipped and counted.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from base_chain.script import ScriptError, parse_asm, parse_flags, verify_script
from base_chain.tx import COIN, OutPoint, Transaction, TxIn, TxOut

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors" / "bitcoin"
SCRIPT_TESTS = VECTORS / "script_tests.json"

#: script_tests.json at Core e32bc7f817e7 has 5 tapscript cases, all with flag TAPROOT.
EXPECTED_TAPROOT_SKIPS = 5


class Case(NamedTuple):
    entry: int
    raw: list[Any]
    witness: list[str]
    amount_sat: int
    script_sig: str
    script_pubkey: str
    flags: str
    expected: str
    taproot: bool


def _load() -> list[Case]:
    # A missing file must fail the run, not skip it: this raises at collection.
    tests = json.loads(SCRIPT_TESTS.read_text(), parse_float=Decimal)
    cases = []
    for index, test in enumerate(tests):
        pos = 0
        witness: list[str] = []
        amount_sat = 0
        if test and isinstance(test[0], list):
            *witness, amount = test[0]
            amount_sat = int(Decimal(amount) * COIN)
            pos = 1
        if len(test) < pos + 4:
            assert len(test) == 1, f"malformed vector #{index}: {test}"
            continue  # a comment
        script_sig, script_pubkey, flags, expected = test[pos : pos + 4]
        taproot = "TAPROOT" in flags.split(",") or "#TAPROOTOUTPUT#" in script_pubkey
        cases.append(
            Case(index, test, witness, amount_sat, script_sig, script_pubkey, flags, expected, taproot)
        )
    return cases


CASES = _load()


def crediting_tx(script_pubkey: bytes, amount_sat: int) -> Transaction:
    return Transaction(
        version=1,
        inputs=[TxIn(OutPoint.null(), b"\x00\x00", 0xFFFFFFFF)],
        outputs=[TxOut(amount_sat, script_pubkey)],
        locktime=0,
    )


def spending_tx(script_sig: bytes, witness: list[bytes], credit: Transaction) -> Transaction:
    return Transaction(
        version=1,
        inputs=[TxIn(OutPoint(credit.txid, 0), script_sig, 0xFFFFFFFF, witness)],
        outputs=[TxOut(credit.outputs[0].amount_sat, b"")],
        locktime=0,
    )


def run_case(case: Case) -> str:
    """Run one vector; return "OK" or the ScriptError code."""
    script_sig = parse_asm(case.script_sig)
    script_pubkey = parse_asm(case.script_pubkey)
    witness = [bytes.fromhex(w) for w in case.witness]
    flags = set(parse_flags(case.flags))
    if "CLEANSTACK" in flags:
        flags |= {"P2SH", "WITNESS"}
    credit = crediting_tx(script_pubkey, case.amount_sat)
    spend = spending_tx(script_sig, witness, credit)
    try:
        verify_script(script_sig, script_pubkey, witness, frozenset(flags), spend, 0, case.amount_sat)
    except ScriptError as err:
        return err.code
    return "OK"


def _id(case: Case) -> str:
    return f"#{case.entry:04d}-{case.expected}"


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_script_vector(case: Case) -> None:
    if case.taproot:
        pytest.skip("taproot vector (Canal's interpreter does not implement BIP341/342)")
    got = run_case(case)
    assert got == case.expected, (
        f"script_tests.json entry #{case.entry}: expected {case.expected}, got {got}\n"
        f"  vector: {json.dumps(case.raw, default=str)}"
    )


def test_vector_counts() -> None:
    skipped = sum(case.taproot for case in CASES)
    run = len(CASES) - skipped
    print(f"\nscript_tests.json: {len(CASES)} cases, {run} run, {skipped} taproot skipped")
    assert skipped == EXPECTED_TAPROOT_SKIPS
    assert run > 1200
    # Every skipped case really needs taproot: none of them has a non-taproot expectation to check.
    assert all("TAPROOT" in c.flags for c in CASES if c.taproot)
