"""Script failures: one exception type whose `code` is Bitcoin Core's error name.

The codes are the names Core's script tests use (``EVAL_FALSE``, ``SIG_DER``,
``NULLFAIL`` ...), so a vector's expected error can be compared with ``err.code``
directly. The message is for people and may change; the code may not.
"""

from __future__ import annotations

from typing import Final

__all__ = ["ScriptError", "ERROR_MESSAGES", "TAPROOT_UNSUPPORTED"]

#: Canal's own code (not Core's): a witness v1 (taproot) spend was evaluated with the
#: TAPROOT flag set, and this interpreter does not implement BIP341/342.
TAPROOT_UNSUPPORTED: Final = "TAPROOT_UNSUPPORTED"

#: Every code a ScriptError can carry, with a short explanation.
ERROR_MESSAGES: Final[dict[str, str]] = {
    # The texts are Core's ScriptErrorString, because node reject reasons quote them
    # ("mandatory-script-verify-flag-failed (<text>)").
    "OK": "No error",
    "UNKNOWN_ERROR": "unknown error",
    "EVAL_FALSE": "Script evaluated without error but finished with a false/empty top stack element",
    "OP_RETURN": "OP_RETURN was encountered",
    # limits
    "SCRIPT_SIZE": "Script is too big",
    "PUSH_SIZE": "Push value size limit exceeded",
    "OP_COUNT": "Operation limit exceeded",
    "STACK_SIZE": "Stack size limit exceeded",
    "SIG_COUNT": "Signature count negative or greater than pubkey count",
    "PUBKEY_COUNT": "Pubkey count negative or limit exceeded",
    # failed VERIFY operations
    "VERIFY": "Script failed an OP_VERIFY operation",
    "EQUALVERIFY": "Script failed an OP_EQUALVERIFY operation",
    "CHECKMULTISIGVERIFY": "Script failed an OP_CHECKMULTISIGVERIFY operation",
    "CHECKSIGVERIFY": "Script failed an OP_CHECKSIGVERIFY operation",
    "NUMEQUALVERIFY": "Script failed an OP_NUMEQUALVERIFY operation",
    # logical and structural errors
    "BAD_OPCODE": "Opcode missing or not understood",
    "DISABLED_OPCODE": "Attempted to use a disabled opcode",
    "INVALID_STACK_OPERATION": "Operation not valid with the current stack size",
    "INVALID_ALTSTACK_OPERATION": "Operation not valid with the current altstack size",
    "UNBALANCED_CONDITIONAL": "Invalid OP_IF construction",
    "SCRIPTNUM": "Script number overflowed or is non-minimally encoded",
    # CHECKLOCKTIMEVERIFY / CHECKSEQUENCEVERIFY
    "NEGATIVE_LOCKTIME": "Negative locktime",
    "UNSATISFIED_LOCKTIME": "Locktime requirement not satisfied",
    # malleability and policy
    "SIG_HASHTYPE": "Signature hash type missing or not understood",
    "SIG_DER": "Non-canonical DER signature",
    "MINIMALDATA": "Data push larger than necessary",
    "SIG_PUSHONLY": "Only push operators allowed in signatures",
    "SIG_HIGH_S": "Non-canonical signature: S value is unnecessarily high",
    "SIG_NULLDUMMY": "Dummy CHECKMULTISIG argument must be zero",
    "PUBKEYTYPE": "Public key is neither compressed or uncompressed",
    "CLEANSTACK": "Stack size must be exactly one after execution",
    "MINIMALIF": "OP_IF/NOTIF argument must be minimal",
    "NULLFAIL": "Signature must be zero for failed CHECK(MULTI)SIG operation",
    "DISCOURAGE_UPGRADABLE_NOPS": "NOPx reserved for soft-fork upgrades",
    "DISCOURAGE_UPGRADABLE_WITNESS_PROGRAM": "Witness version reserved for soft-fork upgrades",
    "DISCOURAGE_UPGRADABLE_TAPROOT_VERSION": "Taproot version reserved for soft-fork upgrades",
    "DISCOURAGE_OP_SUCCESS": "OP_SUCCESSx reserved for soft-fork upgrades",
    "DISCOURAGE_UPGRADABLE_PUBKEYTYPE": "Public key version reserved for soft-fork upgrades",
    # segregated witness
    "WITNESS_PROGRAM_WRONG_LENGTH": "Witness program has incorrect length",
    "WITNESS_PROGRAM_WITNESS_EMPTY": "Witness program was passed an empty witness",
    "WITNESS_PROGRAM_MISMATCH": "Witness program hash mismatch",
    "WITNESS_MALLEATED": "Witness requires empty scriptSig",
    "WITNESS_MALLEATED_P2SH": "Witness requires only-redeemscript scriptSig",
    "WITNESS_UNEXPECTED": "Witness provided for non-witness script",
    "WITNESS_PUBKEYTYPE": "Using non-compressed keys in segwit",
    # taproot (recognised by name; this interpreter does not evaluate taproot spends)
    "SCHNORR_SIG_SIZE": "Invalid Schnorr signature size",
    "SCHNORR_SIG_HASHTYPE": "Invalid Schnorr signature hash type",
    "SCHNORR_SIG": "Invalid Schnorr signature",
    "TAPROOT_WRONG_CONTROL_SIZE": "Invalid Taproot control block size",
    "TAPSCRIPT_VALIDATION_WEIGHT": "Too much signature validation relative to witness weight",
    "TAPSCRIPT_CHECKMULTISIG": "OP_CHECKMULTISIG(VERIFY) is not available in tapscript",
    "TAPSCRIPT_MINIMALIF": "OP_IF/NOTIF argument must be minimal in tapscript",
    "TAPSCRIPT_EMPTY_PUBKEY": "Empty public key in tapscript",
    # constant script code
    "OP_CODESEPARATOR": "Using OP_CODESEPARATOR in non-witness script",
    "SIG_FINDANDDELETE": "Signature is found in scriptCode",
    TAPROOT_UNSUPPORTED: "Taproot (witness v1) spending is not implemented",
}


class ScriptError(Exception):
    """A script failed to verify.

    `code` is Core's error name (``"EVAL_FALSE"``); ``str(err)`` is Core's text for it,
    so reject reasons read as Core's do; `detail` optionally says where it happened.
    """

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail

    @property
    def message(self) -> str:
        return ERROR_MESSAGES.get(self.code, self.code)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        extra = f", {self.detail!r}" if self.detail else ""
        return f"ScriptError({self.code!r}{extra})"
