"""Relay policy (Bitcoin Core's policy/policy.cpp): which transactions a node relays and mines.

Standardness is not consensus. A block may hold a non-standard transaction; a node
only declines to relay one, or to put it in its mempool. Every rule here is a pure
function of its arguments, and each failure carries Core's reject reason (a
:class:`~base_chain.checks.TxCheckError`, whose ``reason`` is the string Core puts
in ``testmempoolaccept``'s ``reject-reason``).

Fee rates are integers in satoshis per 1000 virtual bytes (sat/kvB), as Core's
``CFeeRate`` holds them; :func:`fee_for` and :func:`fee_rate` convert with Core's
rounding. Defaults are Core's (v27/v28 era): min relay fee and incremental relay
fee 1000 sat/kvB, dust relay fee 3000 sat/kvB, 83-byte OP_RETURN outputs, one per
transaction. Transaction version 3 (TRUC, BIP431) is not standard here: Canal does
not implement TRUC's topology rules, so it does not relay what it cannot police.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from .checks import TxCheckError
from .script import ScriptError, eval_script, is_p2sh, is_push_only, iter_script, witness_program
from .serialize import compact_size
from .sigops import MAX_BLOCK_SIGOPS_COST, script_sigop_count
from .tx import COIN, Transaction, TxOut

__all__ = [
    "DEFAULT_MIN_RELAY_TX_FEE",
    "DEFAULT_INCREMENTAL_RELAY_FEE",
    "DUST_RELAY_TX_FEE",
    "MAX_STANDARD_TX_WEIGHT",
    "MIN_STANDARD_TX_NONWITNESS_SIZE",
    "MAX_STANDARD_SCRIPTSIG_SIZE",
    "MAX_STANDARD_TX_SIGOPS_COST",
    "MAX_P2SH_SIGOPS",
    "DEFAULT_BYTES_PER_SIGOP",
    "MAX_STANDARD_P2WSH_STACK_ITEMS",
    "MAX_STANDARD_P2WSH_STACK_ITEM_SIZE",
    "MAX_STANDARD_P2WSH_SCRIPT_SIZE",
    "MAX_STANDARD_TAPSCRIPT_STACK_ITEM_SIZE",
    "MAX_OP_RETURN_RELAY",
    "TX_MAX_STANDARD_VERSION",
    "DEFAULT_PERMIT_BAREMULTISIG",
    "fee_for",
    "fee_rate",
    "format_money",
    "format_fee_rate",
    "virtual_size",
    "output_type",
    "is_standard",
    "dust_threshold",
    "is_dust",
    "check_standard_tx",
    "check_min_tx_size",
    "are_inputs_standard",
    "is_witness_standard",
    "check_inputs_standard",
    "check_sigops",
    "check_min_relay_fee",
]

DEFAULT_MIN_RELAY_TX_FEE: Final = 1000
"""-minrelaytxfee (sat/kvB): below it a transaction is not relayed ("min relay fee not met")."""
DEFAULT_INCREMENTAL_RELAY_FEE: Final = 1000
"""-incrementalrelayfee (sat/kvB): what a replacement or a trimmed mempool's floor must add."""
DUST_RELAY_TX_FEE: Final = 3000
"""-dustrelayfee (sat/kvB): an output worth less than spending it costs at this rate is dust."""
MAX_STANDARD_TX_WEIGHT: Final = 400_000
MIN_STANDARD_TX_NONWITNESS_SIZE: Final = 65
"""Smaller non-witness serializations are refused (CVE-2017-12842: 64 bytes looks like a merkle node)."""
MAX_STANDARD_SCRIPTSIG_SIZE: Final = 1650
MAX_STANDARD_TX_SIGOPS_COST: Final = MAX_BLOCK_SIGOPS_COST // 5
MAX_P2SH_SIGOPS: Final = 15
DEFAULT_BYTES_PER_SIGOP: Final = 20
MAX_STANDARD_P2WSH_STACK_ITEMS: Final = 100
MAX_STANDARD_P2WSH_STACK_ITEM_SIZE: Final = 80
MAX_STANDARD_P2WSH_SCRIPT_SIZE: Final = 3600
MAX_STANDARD_TAPSCRIPT_STACK_ITEM_SIZE: Final = 80
MAX_OP_RETURN_RELAY: Final = 83
"""-datacarriersize: the largest standard OP_RETURN output script, in bytes (3 + 80 of data)."""
TX_MAX_STANDARD_VERSION: Final = 2
DEFAULT_PERMIT_BAREMULTISIG: Final = True

WITNESS_SCALE_FACTOR: Final = 4
MAX_SCRIPT_SIZE: Final = 10_000
ANNEX_TAG: Final = 0x50
TAPROOT_LEAF_MASK: Final = 0xFE
TAPROOT_LEAF_TAPSCRIPT: Final = 0xC0
_P2A_SCRIPT: Final = bytes.fromhex("51024e73")  # pay-to-anchor: OP_1 <0x4e73>
OP_0: Final = 0x00
OP_1: Final = 0x51
OP_16: Final = 0x60
OP_RETURN: Final = 0x6A
OP_CHECKSIG: Final = 0xAC
OP_CHECKMULTISIG: Final = 0xAE
_NO_FLAGS: Final[frozenset[str]] = frozenset()


# --- fee rates ------------------------------------------------------------------------------


def fee_for(rate_sat_per_kvb: int, vsize: int) -> int:
    """Core's CFeeRate::GetFee: the fee at this rate for `vsize` vbytes, rounded up.

    A positive rate never asks for less than 1 satoshi of a non-empty transaction.
    """
    fee = -((-rate_sat_per_kvb * vsize) // 1000)  # ceil for any sign
    if fee == 0 and vsize != 0 and rate_sat_per_kvb != 0:
        return 1 if rate_sat_per_kvb > 0 else -1
    return fee


def fee_rate(fee_sat: int, vsize: int) -> int:
    """Core's CFeeRate(fee, size): sat/kvB, truncated toward zero (0 for an empty size)."""
    if vsize <= 0:
        return 0
    q = abs(fee_sat) * 1000 // vsize
    return q if fee_sat >= 0 else -q


def format_money(amount_sat: int) -> str:
    """Core's FormatMoney: "0.00001000"."""
    sign = "-" if amount_sat < 0 else ""
    a = abs(amount_sat)
    return f"{sign}{a // COIN}.{a % COIN:08d}"


def format_fee_rate(rate_sat_per_kvb: int) -> str:
    """Core's CFeeRate::ToString: "0.00001000 BTC/kvB"."""
    return f"{format_money(rate_sat_per_kvb)} BTC/kvB"


def virtual_size(weight: int, sigop_cost: int = 0, bytes_per_sigop: int = DEFAULT_BYTES_PER_SIGOP) -> int:
    """Core's GetVirtualTransactionSize: weight/4 rounded up, but at least sigops * bytes_per_sigop / 4.

    The mempool sizes and prices transactions by this figure, so a transaction
    heavy in signature operations pays as if it were as large as their cost.
    """
    return (max(weight, sigop_cost * bytes_per_sigop) + WITNESS_SCALE_FACTOR - 1) // WITNESS_SCALE_FACTOR


# --- output scripts ---------------------------------------------------------------------------


def _valid_pubkey_size(data: bytes) -> bool:
    """Core's CPubKey::ValidSize: the length its first byte announces."""
    if not data:
        return False
    if data[0] in (2, 3):
        return len(data) == 33
    if data[0] in (4, 6, 7):
        return len(data) == 65
    return False


def _multisig_number(op: int, data: bytes | None, low: int) -> int | None:
    """Core's GetScriptNumber for MatchMultisig: OP_1..OP_16, or a minimal push of 17..20."""
    if OP_1 <= op <= OP_16:
        value = op - OP_1 + 1
    elif op == 1 and data is not None and 17 <= data[0] <= 20:
        value = data[0]
    else:
        return None
    return value if low <= value <= 20 else None


def _multisig_counts(script: bytes) -> tuple[int, int] | None:
    """(m, n) for OP_m <pubkey>... OP_n OP_CHECKMULTISIG with valid-size keys (Core's MatchMultisig)."""
    if len(script) < 1 or script[-1] != OP_CHECKMULTISIG:
        return None
    try:
        ops = [(op, data) for op, data, _ in iter_script(script[:-1])]
    except ScriptError:
        return None
    if len(ops) < 2:
        return None
    m = _multisig_number(*ops[0], 1)
    keys = ops[1:-1]
    if m is None or any(data is None or not _valid_pubkey_size(data) for _, data in keys):
        return None
    n = _multisig_number(*ops[-1], m)
    if n is None or n != len(keys):
        return None
    return m, n


def output_type(script_pubkey: bytes) -> str:
    """Core's Solver, by GetTxnOutputType name: "pubkeyhash", "scripthash", "witness_v0_keyhash",
    "witness_v0_scripthash", "witness_v1_taproot", "anchor", "witness_unknown", "nulldata",
    "pubkey", "multisig" or "nonstandard"."""
    s = script_pubkey
    if is_p2sh(s):
        return "scripthash"
    program = witness_program(s)
    if program is not None:
        version, prog = program
        if version == 0:
            if len(prog) == 20:
                return "witness_v0_keyhash"
            if len(prog) == 32:
                return "witness_v0_scripthash"
            return "nonstandard"
        if version == 1 and len(prog) == 32:
            return "witness_v1_taproot"
        if s == _P2A_SCRIPT:
            return "anchor"
        return "witness_unknown"
    if s[:1] == bytes([OP_RETURN]) and is_push_only(s[1:]):
        return "nulldata"
    if len(s) in (35, 67) and s[0] == len(s) - 2 and s[-1] == OP_CHECKSIG and _valid_pubkey_size(s[1:-1]):
        return "pubkey"
    if len(s) == 25 and s[:3] == b"\x76\xa9\x14" and s[23:] == b"\x88\xac":
        return "pubkeyhash"
    if _multisig_counts(s) is not None:
        return "multisig"
    return "nonstandard"


def is_standard(script_pubkey: bytes, max_datacarrier_bytes: int | None = MAX_OP_RETURN_RELAY) -> bool:
    """Core's IsStandard(scriptPubKey): a known type; multisig at most 3 keys; OP_RETURN size-capped.

    `max_datacarrier_bytes` None forbids OP_RETURN outputs (-datacarrier=0).
    """
    kind = output_type(script_pubkey)
    if kind == "nonstandard":
        return False
    if kind == "multisig":
        counts = _multisig_counts(script_pubkey)
        assert counts is not None
        m, n = counts
        return 1 <= n <= 3 and 1 <= m <= n
    if kind == "nulldata":
        return max_datacarrier_bytes is not None and len(script_pubkey) <= max_datacarrier_bytes
    return True


def _is_unspendable(script_pubkey: bytes) -> bool:
    return (len(script_pubkey) > 0 and script_pubkey[0] == OP_RETURN) or len(script_pubkey) > MAX_SCRIPT_SIZE


def dust_threshold(txout: TxOut, dust_relay_fee: int = DUST_RELAY_TX_FEE) -> int:
    """Core's GetDustThreshold: the cost, at `dust_relay_fee`, of the output plus an input spending it.

    The input is 32+4+1+107+4 = 148 bytes, or 32+4+1+107/4+4 = 67 vbytes for a
    witness program: 546 sat for P2PKH and 294 sat for P2WPKH at 3000 sat/kvB.
    Unspendable (OP_RETURN) outputs are never dust.
    """
    spk = txout.script_pubkey
    if _is_unspendable(spk):
        return 0
    size = 8 + len(compact_size(len(spk))) + len(spk)
    if witness_program(spk) is not None:
        size += 32 + 4 + 1 + 107 // WITNESS_SCALE_FACTOR + 4
    else:
        size += 32 + 4 + 1 + 107 + 4
    return fee_for(dust_relay_fee, size)


def is_dust(txout: TxOut, dust_relay_fee: int = DUST_RELAY_TX_FEE) -> bool:
    return txout.amount_sat < dust_threshold(txout, dust_relay_fee)


# --- whole transactions ------------------------------------------------------------------------


def check_standard_tx(
    tx: Transaction,
    *,
    permit_bare_multisig: bool = DEFAULT_PERMIT_BAREMULTISIG,
    dust_relay_fee: int = DUST_RELAY_TX_FEE,
    max_datacarrier_bytes: int | None = MAX_OP_RETURN_RELAY,
) -> None:
    """Core's IsStandardTx; raises TxCheckError with "version", "tx-size", "scriptsig-size",
    "scriptsig-not-pushonly", "scriptpubkey", "bare-multisig", "dust" or "multi-op-return"."""
    if not 1 <= tx.version <= TX_MAX_STANDARD_VERSION:
        raise TxCheckError("version")
    if tx.weight > MAX_STANDARD_TX_WEIGHT:
        raise TxCheckError("tx-size")
    for txin in tx.inputs:
        if len(txin.script_sig) > MAX_STANDARD_SCRIPTSIG_SIZE:
            raise TxCheckError("scriptsig-size")
        if not is_push_only(txin.script_sig):
            raise TxCheckError("scriptsig-not-pushonly")
    data_outputs = 0
    for txout in tx.outputs:
        if not is_standard(txout.script_pubkey, max_datacarrier_bytes):
            raise TxCheckError("scriptpubkey")
        kind = output_type(txout.script_pubkey)
        if kind == "nulldata":
            data_outputs += 1
        elif kind == "multisig" and not permit_bare_multisig:
            raise TxCheckError("bare-multisig")
        elif is_dust(txout, dust_relay_fee):
            raise TxCheckError("dust")
    if data_outputs > 1:
        raise TxCheckError("multi-op-return")


def check_min_tx_size(tx: Transaction) -> None:
    """Raises TxCheckError("tx-size-small") when the non-witness serialization is under 65 bytes."""
    if len(tx.to_bytes(include_witness=False)) < MIN_STANDARD_TX_NONWITNESS_SIZE:
        raise TxCheckError("tx-size-small")


def _p2sh_redeem_script(script_sig: bytes) -> bytes | None:
    """The last item a scriptSig leaves on the stack (Core runs it with no flags), or None."""
    stack: list[bytes] = []
    try:
        eval_script(stack, script_sig, _NO_FLAGS)
    except ScriptError:
        return None
    return stack[-1] if stack else None


def are_inputs_standard(tx: Transaction, spent_outputs: Sequence[TxOut]) -> bool:
    """Core's AreInputsStandard: every spent output is of a standard kind (not "nonstandard" nor
    "witness_unknown"), and a P2SH redeem script has at most 15 signature operations."""
    if tx.is_coinbase():
        return True
    for txin, prev in zip(tx.inputs, spent_outputs, strict=True):
        kind = output_type(prev.script_pubkey)
        if kind in ("nonstandard", "witness_unknown"):
            return False
        if kind == "scripthash":
            redeem = _p2sh_redeem_script(txin.script_sig)
            if redeem is None or script_sigop_count(redeem, True) > MAX_P2SH_SIGOPS:
                return False
    return True


def is_witness_standard(tx: Transaction, spent_outputs: Sequence[TxOut]) -> bool:
    """Core's IsWitnessStandard: witness data only where a witness program is spent, within the
    P2WSH limits (script 3600 bytes, 100 items of 80 bytes) and the taproot ones (no annex,
    tapscript items of 80 bytes); no witness on a pay-to-anchor spend."""
    if tx.is_coinbase():
        return True
    for txin, prev in zip(tx.inputs, spent_outputs, strict=True):
        witness = txin.witness
        if not witness:
            continue
        script = prev.script_pubkey
        if script == _P2A_SCRIPT:
            return False
        p2sh = False
        if is_p2sh(script):
            redeem = _p2sh_redeem_script(txin.script_sig)
            if redeem is None:
                return False
            script = redeem
            p2sh = True
        program = witness_program(script)
        if program is None:
            return False
        version, prog = program
        if version == 0 and len(prog) == 32:
            if len(witness[-1]) > MAX_STANDARD_P2WSH_SCRIPT_SIZE:
                return False
            items = witness[:-1]
            if len(items) > MAX_STANDARD_P2WSH_STACK_ITEMS:
                return False
            if any(len(item) > MAX_STANDARD_P2WSH_STACK_ITEM_SIZE for item in items):
                return False
        if version == 1 and len(prog) == 32 and not p2sh:
            stack = list(witness)
            if len(stack) >= 2 and stack[-1] and stack[-1][0] == ANNEX_TAG:
                return False
            if len(stack) >= 2:
                control = stack.pop()
                stack.pop()  # the script
                if not control:
                    return False
                if control[0] & TAPROOT_LEAF_MASK == TAPROOT_LEAF_TAPSCRIPT:
                    if any(len(item) > MAX_STANDARD_TAPSCRIPT_STACK_ITEM_SIZE for item in stack):
                        return False
            elif not stack:
                return False
    return True


def check_inputs_standard(tx: Transaction, spent_outputs: Sequence[TxOut]) -> None:
    """Both input rules, as the mempool applies them: "bad-txns-nonstandard-inputs", then
    (for a transaction with witness data) "bad-witness-nonstandard"."""
    if not are_inputs_standard(tx, spent_outputs):
        raise TxCheckError("bad-txns-nonstandard-inputs")
    if tx.has_witness() and not is_witness_standard(tx, spent_outputs):
        raise TxCheckError("bad-witness-nonstandard")


def check_sigops(sigop_cost: int) -> None:
    """Raises "bad-txns-too-many-sigops" above MAX_STANDARD_TX_SIGOPS_COST (16000)."""
    if sigop_cost > MAX_STANDARD_TX_SIGOPS_COST:
        raise TxCheckError("bad-txns-too-many-sigops", str(sigop_cost))


def check_min_relay_fee(fee_sat: int, vsize: int, min_relay_fee: int = DEFAULT_MIN_RELAY_TX_FEE) -> None:
    """Raises "min relay fee not met" when the fee is below `min_relay_fee` (sat/kvB) for `vsize`."""
    need = fee_for(min_relay_fee, vsize)
    if fee_sat < need:
        raise TxCheckError("min relay fee not met", f"{fee_sat} < {need}")
