"""Context-free transaction checks (Core's CheckTransaction) and input script verification."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .tx import COIN, Transaction, TxOut

__all__ = [
    "MAX_MONEY",
    "MAX_BLOCK_WEIGHT",
    "TxCheckError",
    "check_transaction",
    "verify_input_scripts",
    "money_range",
]

MAX_MONEY = 21_000_000 * COIN
MAX_BLOCK_WEIGHT = 4_000_000
WITNESS_SCALE_FACTOR = 4


class TxCheckError(ValueError):
    """A transaction was rejected; `reason` is Bitcoin Core's reject string."""

    def __init__(self, reason: str, debug: str = "") -> None:
        super().__init__(f"{reason} ({debug})" if debug else reason)
        self.reason = reason
        self.debug = debug


def money_range(amount: int) -> bool:
    return 0 <= amount <= MAX_MONEY


def check_transaction(tx: Transaction) -> None:
    """Rules that need no chain context; raises TxCheckError with Core's reason."""
    if not tx.inputs:
        raise TxCheckError("bad-txns-vin-empty")
    if not tx.outputs:
        raise TxCheckError("bad-txns-vout-empty")
    if len(tx.to_bytes(include_witness=False)) * WITNESS_SCALE_FACTOR > MAX_BLOCK_WEIGHT:
        raise TxCheckError("bad-txns-oversize")
    total = 0
    for txout in tx.outputs:
        if txout.amount_sat < 0:
            raise TxCheckError("bad-txns-vout-negative")
        if txout.amount_sat > MAX_MONEY:
            raise TxCheckError("bad-txns-vout-toolarge")
        total += txout.amount_sat
        if not money_range(total):
            raise TxCheckError("bad-txns-txouttotal-toolarge")
    seen = set()
    for txin in tx.inputs:
        if txin.prevout in seen:
            raise TxCheckError("bad-txns-inputs-duplicate")
        seen.add(txin.prevout)
    if tx.is_coinbase():
        if not 2 <= len(tx.inputs[0].script_sig) <= 100:
            raise TxCheckError("bad-cb-length")
    else:
        if any(txin.prevout.is_null() for txin in tx.inputs):
            raise TxCheckError("bad-txns-prevout-null")


def verify_input_scripts(
    tx: Transaction,
    spent_outputs: Sequence[TxOut],
    flags: Iterable[str],
    mandatory_flags: Iterable[str] | None = None,
) -> None:
    """Run every input's scripts against the output it spends.

    A failure raises TxCheckError with Core's reason: "mandatory-script-verify-flag-failed (…)"
    when the input also fails under the consensus (mandatory) flags, otherwise
    "non-mandatory-script-verify-flag (…)" (a policy-only failure).
    """
    from .script import ScriptError, verify_script
    from .sighash import Bip143Cache

    if len(spent_outputs) != len(tx.inputs):
        raise ValueError("need exactly one spent output per input")
    flag_set = frozenset(flags)
    cache = Bip143Cache(tx) if tx.has_witness() else None
    for i, (txin, prev) in enumerate(zip(tx.inputs, spent_outputs)):
        try:
            verify_script(
                txin.script_sig, prev.script_pubkey, txin.witness, flag_set, tx, i, prev.amount_sat, cache
            )
        except ScriptError as err:
            if mandatory_flags is not None:
                mandatory = frozenset(mandatory_flags) & flag_set
                if mandatory != flag_set:
                    try:
                        verify_script(
                            txin.script_sig, prev.script_pubkey, txin.witness, mandatory, tx, i,
                            prev.amount_sat, cache,
                        )
                    except ScriptError:
                        pass
                    else:
                        raise TxCheckError(f"non-mandatory-script-verify-flag ({err})", f"input {i}") from err
            raise TxCheckError(f"mandatory-script-verify-flag-failed ({err})", f"input {i}") from err
