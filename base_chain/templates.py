"""Standard output scripts (P2PKH, P2SH, P2WPKH, P2WSH, multisig) and minimal pushes."""

from __future__ import annotations

from collections.abc import Sequence

from .hashes import hash160, sha256

__all__ = [
    "push_data",
    "push_int",
    "p2pkh",
    "p2sh",
    "p2wpkh",
    "p2wsh",
    "multisig",
    "p2wpkh_script_code",
    "classify",
]

OP_0 = 0x00
OP_PUSHDATA1 = 0x4C
OP_PUSHDATA2 = 0x4D
OP_PUSHDATA4 = 0x4E
OP_1NEGATE = 0x4F
OP_1 = 0x51
OP_DUP = 0x76
OP_EQUAL = 0x87
OP_EQUALVERIFY = 0x88
OP_HASH160 = 0xA9
OP_CHECKSIG = 0xAC
OP_CHECKMULTISIG = 0xAE


def push_data(data: bytes) -> bytes:
    """The minimal push of `data` (small numbers as OP_n, as MINIMALDATA requires)."""
    n = len(data)
    if n == 0:
        return bytes([OP_0])
    if n == 1 and 1 <= data[0] <= 16:
        return bytes([OP_1 + data[0] - 1])
    if n == 1 and data[0] == 0x81:
        return bytes([OP_1NEGATE])
    if n < OP_PUSHDATA1:
        return bytes([n]) + data
    if n <= 0xFF:
        return bytes([OP_PUSHDATA1, n]) + data
    if n <= 0xFFFF:
        return bytes([OP_PUSHDATA2]) + n.to_bytes(2, "little") + data
    return bytes([OP_PUSHDATA4]) + n.to_bytes(4, "little") + data


def push_int(n: int) -> bytes:
    """Push a script number minimally (OP_0, OP_1NEGATE, OP_1..OP_16, or bytes)."""
    if n == 0:
        return bytes([OP_0])
    if n == -1:
        return bytes([OP_1NEGATE])
    if 1 <= n <= 16:
        return bytes([OP_1 + n - 1])
    neg = n < 0
    v = abs(n)
    out = bytearray()
    while v:
        out.append(v & 0xFF)
        v >>= 8
    if out[-1] & 0x80:
        out.append(0x80 if neg else 0)
    elif neg:
        out[-1] |= 0x80
    return push_data(bytes(out))


def p2pkh(pubkey: bytes) -> bytes:
    return bytes([OP_DUP, OP_HASH160, 20]) + hash160(pubkey) + bytes([OP_EQUALVERIFY, OP_CHECKSIG])


def p2sh(redeem_script: bytes) -> bytes:
    return bytes([OP_HASH160, 20]) + hash160(redeem_script) + bytes([OP_EQUAL])


def p2wpkh(pubkey: bytes) -> bytes:
    if len(pubkey) != 33:
        raise ValueError("P2WPKH needs a compressed public key")
    return bytes([OP_0, 20]) + hash160(pubkey)


def p2wsh(witness_script: bytes) -> bytes:
    return bytes([OP_0, 32]) + sha256(witness_script)


def p2wpkh_script_code(pubkey: bytes) -> bytes:
    """The BIP143 scriptCode of a P2WPKH input: the P2PKH script of the key."""
    return p2pkh(pubkey)


def multisig(m: int, pubkeys: Sequence[bytes]) -> bytes:
    if not 1 <= m <= len(pubkeys) <= 16:
        raise ValueError("multisig needs 1 <= m <= n <= 16")
    body = b"".join(push_data(pk) for pk in pubkeys)
    return push_int(m) + body + push_int(len(pubkeys)) + bytes([OP_CHECKMULTISIG])


def classify(script_pubkey: bytes) -> str:
    """Core's output type names: pubkeyhash, scripthash, witness_v0_keyhash, ..., nonstandard."""
    s = script_pubkey
    if len(s) == 25 and s[:3] == bytes([OP_DUP, OP_HASH160, 20]) and s[23:] == bytes([OP_EQUALVERIFY, OP_CHECKSIG]):
        return "pubkeyhash"
    if len(s) == 23 and s[:2] == bytes([OP_HASH160, 20]) and s[22] == OP_EQUAL:
        return "scripthash"
    if len(s) == 22 and s[:2] == bytes([OP_0, 20]):
        return "witness_v0_keyhash"
    if len(s) == 34 and s[:2] == bytes([OP_0, 32]):
        return "witness_v0_scripthash"
    if len(s) == 34 and s[:2] == bytes([OP_1, 32]):
        return "witness_v1_taproot"
    if 4 <= len(s) <= 42 and (s[0] == OP_0 or OP_1 <= s[0] <= OP_1 + 15) and s[1] == len(s) - 2:
        return "witness_unknown"
    if s[:1] == b"\x6a":
        return "nulldata"
    if len(s) in (35, 67) and s[0] == len(s) - 2 and s[-1] == OP_CHECKSIG:
        return "pubkey"
    if len(s) >= 3 and s[-1] == OP_CHECKMULTISIG:
        return "multisig"
    return "nonstandard"
