"""OP_CHECKSIG and OP_CHECKMULTISIG for legacy and segwit v0 scripts, with the
encoding rules the verification flags add (DER, LOW_S, STRICTENC, NULLFAIL, ...)."""

from __future__ import annotations

from typing import Final

from ..crypto import N, is_valid_signature_encoding
from ..sighash import find_and_delete
from .checker import SIGVERSION_BASE, SIGVERSION_WITNESS_V0, SignatureChecker, strict_der_values
from .errors import ScriptError
from .flags import FLAG_BITS
from .num import decode_num
from .opcodes import push_bytes

__all__ = [
    "MAX_PUBKEYS_PER_MULTISIG",
    "MAX_OPS_PER_SCRIPT",
    "check_signature_encoding",
    "check_pubkey_encoding",
    "eval_checksig",
    "eval_checkmultisig",
]

MAX_PUBKEYS_PER_MULTISIG: Final = 20
MAX_OPS_PER_SCRIPT: Final = 201

_DERSIG: Final = FLAG_BITS["DERSIG"]
_LOW_S: Final = FLAG_BITS["LOW_S"]
_STRICTENC: Final = FLAG_BITS["STRICTENC"]
_ANY_DER: Final = _DERSIG | _LOW_S | _STRICTENC
_NULLFAIL: Final = FLAG_BITS["NULLFAIL"]
_NULLDUMMY: Final = FLAG_BITS["NULLDUMMY"]
_MINIMALDATA: Final = FLAG_BITS["MINIMALDATA"]
_WITNESS_PUBKEYTYPE: Final = FLAG_BITS["WITNESS_PUBKEYTYPE"]
_CONST_SCRIPTCODE: Final = FLAG_BITS["CONST_SCRIPTCODE"]

_HALF_N: Final = N // 2

_TRUE: Final = b"\x01"
_FALSE: Final = b""


def check_signature_encoding(sig: bytes, flags: int) -> tuple[int, int] | None:
    """The flag-dependent rules for a signature (with hash-type byte); empty is always fine.

    Returns (r, s) when the flags made it parse the signature strictly, else None.
    """
    if not sig or not flags & _ANY_DER:
        return None
    if not is_valid_signature_encoding(sig):
        raise ScriptError("SIG_DER")
    rs = strict_der_values(sig)
    # libsecp256k1's normalize test, on the signature as parsed (out of range = (0, 0), low).
    if flags & _LOW_S and rs[1] > _HALF_N:
        raise ScriptError("SIG_HIGH_S")
    if flags & _STRICTENC and (sig[-1] & 0x7F) not in (1, 2, 3):
        raise ScriptError("SIG_HASHTYPE")
    return rs


def check_pubkey_encoding(pubkey: bytes, flags: int, sigversion: int) -> None:
    """STRICTENC: compressed or uncompressed SEC; WITNESS_PUBKEYTYPE: compressed in segwit v0."""
    if flags & _STRICTENC:
        n = len(pubkey)
        if not (
            (n == 33 and pubkey[0] in (2, 3)) or (n == 65 and pubkey[0] == 4)
        ):
            raise ScriptError("PUBKEYTYPE")
    if (
        flags & _WITNESS_PUBKEYTYPE
        and sigversion == SIGVERSION_WITNESS_V0
        and not (len(pubkey) == 33 and pubkey[0] in (2, 3))
    ):
        raise ScriptError("WITNESS_PUBKEYTYPE")


def _without_signature(script_code: bytes, sig: bytes, flags: int) -> bytes:
    """Legacy scripts cannot sign their own signature: remove its pushes from the code."""
    pattern = push_bytes(sig)
    if pattern not in script_code:
        return script_code
    stripped = find_and_delete(script_code, pattern)
    if len(stripped) != len(script_code) and flags & _CONST_SCRIPTCODE:
        raise ScriptError("SIG_FINDANDDELETE")
    return stripped


def eval_checksig(
    sig: bytes,
    pubkey: bytes,
    script_code: bytes,
    flags: int,
    checker: SignatureChecker,
    sigversion: int,
) -> bool:
    """One signature check; raises for encoding violations, returns whether it verified."""
    if sigversion == SIGVERSION_BASE:
        script_code = _without_signature(script_code, sig, flags)
    rs = check_signature_encoding(sig, flags)
    check_pubkey_encoding(pubkey, flags, sigversion)
    ok = checker.check_ecdsa(sig, pubkey, script_code, sigversion, rs)
    if not ok and sig and flags & _NULLFAIL:
        raise ScriptError("NULLFAIL")
    return ok


def eval_checkmultisig(
    stack: list[bytes],
    script_code: bytes,
    flags: int,
    checker: SignatureChecker,
    sigversion: int,
    op_count: int,
) -> tuple[bool, int]:
    """Consume ``dummy sig... m key... n`` from the stack; return (success, new op count).

    Keys are tried in order and each signature must match a later key than the one
    before; the check stops as soon as too few keys remain for the signatures left.
    """
    minimal = bool(flags & _MINIMALDATA)
    depth = len(stack)
    i = 1
    if depth < i:
        raise ScriptError("INVALID_STACK_OPERATION")
    n_keys = decode_num(stack[-i], minimal)
    if n_keys < 0 or n_keys > MAX_PUBKEYS_PER_MULTISIG:
        raise ScriptError("PUBKEY_COUNT")
    op_count += n_keys
    if op_count > MAX_OPS_PER_SCRIPT:
        raise ScriptError("OP_COUNT")
    i += 1
    ikey = i
    # Position of the deepest key: items above and including it are not signatures.
    ikey2 = n_keys + 2
    i += n_keys
    if depth < i:
        raise ScriptError("INVALID_STACK_OPERATION")
    n_sigs = decode_num(stack[-i], minimal)
    if n_sigs < 0 or n_sigs > n_keys:
        raise ScriptError("SIG_COUNT")
    i += 1
    isig = i
    i += n_sigs
    if depth < i:
        raise ScriptError("INVALID_STACK_OPERATION")

    if sigversion == SIGVERSION_BASE:
        for k in range(n_sigs):
            script_code = _without_signature(script_code, stack[-isig - k], flags)

    success = True
    while success and n_sigs > 0:
        sig = stack[-isig]
        pubkey = stack[-ikey]
        # Encoding is checked pair by pair, so with STRICTENC the order of evaluation shows.
        rs = check_signature_encoding(sig, flags)
        check_pubkey_encoding(pubkey, flags, sigversion)
        if checker.check_ecdsa(sig, pubkey, script_code, sigversion, rs):
            isig += 1
            n_sigs -= 1
        ikey += 1
        n_keys -= 1
        if n_sigs > n_keys:
            success = False

    # Pop the arguments; with NULLFAIL a failed check requires every signature to be empty.
    while i > 1:
        i -= 1
        if not success and flags & _NULLFAIL and not ikey2 and stack[-1]:
            raise ScriptError("NULLFAIL")
        if ikey2 > 0:
            ikey2 -= 1
        stack.pop()

    # The historical extra argument; NULLDUMMY requires it to be empty.
    if not stack:
        raise ScriptError("INVALID_STACK_OPERATION")
    if flags & _NULLDUMMY and stack[-1]:
        raise ScriptError("SIG_NULLDUMMY")
    stack.pop()
    stack.append(_TRUE if success else _FALSE)
    return success, op_count
