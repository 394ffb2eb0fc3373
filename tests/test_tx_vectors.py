"""Bitcoin Core's tx_valid.json and tx_invalid.json, with the semantics of Core's
transaction_tests.cpp at the vectors' version (e32bc7f817e7):

tx_valid: the third field lists the flags to *exclude*. The transaction must pass
CheckTransaction and every input must verify with all flags but those. Then, as
Core checks: removing any one more flag keeps it valid, and the exclusions are
needed: putting back any single excluded flag (trimmed to a valid combination)
makes some input fail.

tx_invalid: the third field lists the flags to *apply*, or BADTX when the
transaction must already fail CheckTransaction. Otherwise CheckTransaction passes and
some input must fail with those flags; adding any flag keeps it invalid, and the
flags are needed: dropping any single one makes every input pass.

"All flags" is every flag Core's tests know, TAPROOT included; no vector here spends a
witness v1 output, which is asserted, so nothing needs the taproot rules.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from base_chain.checks import TxCheckError, check_transaction
from base_chain.script import (
    ALL_FLAGS,
    ScriptError,
    TransactionChecker,
    fill_flags,
    flags_to_mask,
    parse_asm,
    parse_flags,
    trim_flags,
    verify_script,
    verify_script_with_checker,
    witness_program,
)
from base_chain.sighash import Bip143Cache
from base_chain.tx import OutPoint, Transaction

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors" / "bitcoin"


class Prevout(NamedTuple):
    script_pubkey: bytes
    amount_sat: int


class TxCase(NamedTuple):
    entry: int
    raw: list[Any]
    prevouts: dict[OutPoint, Prevout]
    tx_hex: str
    flags: str


def _load(name: str) -> list[TxCase]:
    # A missing file must fail the run, not skip it: this raises at collection.
    tests = json.loads((VECTORS / name).read_text())
    cases = []
    for index, test in enumerate(tests):
        if isinstance(test[0], str):
            continue  # a comment
        assert len(test) == 3, f"malformed {name} entry #{index}"
        prevouts = {}
        for entry in test[0]:
            txid = bytes.fromhex(entry[0])[::-1]  # shown in display order
            outpoint = OutPoint(txid, entry[1] & 0xFFFFFFFF)  # -1 means 0xffffffff
            amount = entry[3] if len(entry) > 3 else 0
            prevouts[outpoint] = Prevout(parse_asm(entry[2]), amount)
        cases.append(TxCase(index, test, prevouts, test[1], test[2]))
    return cases


VALID = _load("tx_valid.json")
INVALID = _load("tx_invalid.json")


class _MemoChecker(TransactionChecker):
    """Remembers signature results: they do not depend on the flags, which is all that
    changes between the runs of one case (Core's signature cache does the same)."""

    __slots__ = ("memo",)

    def __init__(self, tx: Transaction, index: int, amount: int, cache: Bip143Cache, memo: dict[Any, bool]):
        super().__init__(tx, index, amount, cache)
        self.memo = memo

    def check_ecdsa(
        self, sig: bytes, pubkey: bytes, script_code: bytes, sigversion: int, rs: tuple[int, int] | None = None
    ) -> bool:
        key = (sig, pubkey, script_code, sigversion)
        if key not in self.memo:
            self.memo[key] = super().check_ecdsa(sig, pubkey, script_code, sigversion, rs)
        return self.memo[key]


class Runner:
    """One vector's transaction and spent outputs; runs all inputs under given flags."""

    def __init__(self, case: TxCase) -> None:
        self.case = case
        self.tx = Transaction.from_hex(case.tx_hex)
        self.cache = Bip143Cache(self.tx)
        self.memos: list[dict[Any, bool]] = [{} for _ in self.tx.inputs]

    def spent(self, i: int) -> Prevout:
        outpoint = self.tx.inputs[i].prevout
        assert outpoint in self.case.prevouts, f"bad test: input {i} spends unknown {outpoint}"
        return self.case.prevouts[outpoint]

    def first_failure(self, flags: frozenset[str], public_api: bool = False) -> tuple[int, str] | None:
        """(input, error code) of the first input that fails, or None if all verify."""
        for i, txin in enumerate(self.tx.inputs):
            prev = self.spent(i)
            try:
                if public_api:
                    verify_script(
                        txin.script_sig, prev.script_pubkey, txin.witness, flags, self.tx, i,
                        prev.amount_sat, self.cache,
                    )
                else:
                    checker = _MemoChecker(self.tx, i, prev.amount_sat, self.cache, self.memos[i])
                    verify_script_with_checker(
                        txin.script_sig, prev.script_pubkey, txin.witness, flags_to_mask(flags), checker
                    )
            except ScriptError as err:
                return i, err.code
        return None

    def spends_witness_v1(self) -> bool:
        for i in range(len(self.tx.inputs)):
            spk = self.spent(i).script_pubkey
            prog = witness_program(spk)
            if prog is None and len(spk) == 23 and spk[0] == 0xA9:
                prog = witness_program(self.tx.inputs[i].script_sig[1:])  # P2SH-wrapped
            if prog is not None and prog[0] == 1 and len(prog[1]) == 32:
                return True
        return False


def exclude_individual_flags(flags: frozenset[str]) -> set[frozenset[str]]:
    """Core's ExcludeIndividualFlags: each flag removed in turn (then trimmed), if it changes anything."""
    out = set()
    for name in ALL_FLAGS:
        fewer = trim_flags(flags - {name})
        if fewer != flags:
            out.add(fewer)
    return out


def _describe(case: TxCase, kind: str) -> str:
    return f"{kind} entry #{case.entry}: {json.dumps(case.raw)[:400]}"


def _fmt(flags: Iterable[str]) -> str:
    return ",".join(sorted(flags)) or "NONE"


@pytest.mark.parametrize("case", VALID, ids=lambda c: f"valid#{c.entry:03d}")
def test_tx_valid(case: TxCase) -> None:
    where = _describe(case, "tx_valid.json")
    run = Runner(case)
    check_transaction(run.tx)  # must not raise
    excluded = parse_flags(case.flags)
    flags = ALL_FLAGS - excluded
    assert fill_flags(flags) == flags, f"bad test flags: {where}"
    assert not run.spends_witness_v1(), f"unexpected taproot spend: {where}"

    failure = run.first_failure(flags, public_api=True)
    assert failure is None, f"input {failure and failure[0]} failed with {failure and failure[1]}: {where}"

    # Removing any flag, or a random set of flags, must not invalidate a valid transaction.
    rng = random.Random(case.entry)
    for name in sorted(ALL_FLAGS):
        fewer = trim_flags(ALL_FLAGS - (excluded | {name}))
        failure = run.first_failure(fewer)
        assert failure is None, f"fails ({failure}) with {name} also unset: {where}"
        dropped = frozenset(n for n in sorted(ALL_FLAGS) if rng.random() < 0.5)
        fewer = trim_flags(ALL_FLAGS - (excluded | dropped))
        failure = run.first_failure(fewer)
        assert failure is None, f"fails ({failure}) with {_fmt(dropped)} also unset: {where}"

    # The exclusions are needed: each excluded flag put back alone must break it.
    for excluded_fewer in exclude_individual_flags(excluded):
        more = ALL_FLAGS - excluded_fewer
        assert run.first_failure(more) is not None, (
            f"too many flags unset: still valid with {_fmt(excluded - excluded_fewer)} set: {where}"
        )


@pytest.mark.parametrize("case", INVALID, ids=lambda c: f"invalid#{c.entry:03d}")
def test_tx_invalid(case: TxCase) -> None:
    where = _describe(case, "tx_invalid.json")
    run = Runner(case)
    try:
        check_transaction(run.tx)
    except TxCheckError as err:
        assert case.flags == "BADTX", f"CheckTransaction failed ({err.reason}) for a non-BADTX case: {where}"
        return
    assert case.flags != "BADTX", f"BADTX case passed CheckTransaction: {where}"
    assert not run.spends_witness_v1(), f"unexpected taproot spend: {where}"

    flags = parse_flags(case.flags)
    assert fill_flags(flags) == flags, f"bad test flags: {where}"
    assert run.first_failure(flags, public_api=True) is not None, f"transaction unexpectedly valid: {where}"

    # Adding any flag, or a random set of flags, must not make an invalid transaction valid.
    rng = random.Random(case.entry)
    for name in sorted(ALL_FLAGS):
        more = fill_flags(flags | {name})
        assert run.first_failure(more) is not None, f"valid once {name} is added: {where}"
        added = frozenset(n for n in sorted(ALL_FLAGS) if rng.random() < 0.5)
        more = fill_flags(flags | added)
        assert run.first_failure(more) is not None, f"valid once {_fmt(added)} are added: {where}"

    # The flags are needed: dropping any single one must make it valid.
    for fewer in exclude_individual_flags(flags):
        failure = run.first_failure(fewer)
        assert failure is None, (
            f"too many flags set: still fails ({failure}) without {_fmt(flags - fewer)}: {where}"
        )


def test_vector_counts() -> None:
    print(f"\ntx_valid.json: {len(VALID)} cases; tx_invalid.json: {len(INVALID)} cases")
    assert len(VALID) == 121
    assert len(INVALID) == 93
