"""What the interpreter asks of the transaction: signature, lock-time and sequence checks.

:class:`SignatureChecker` has no transaction and fails every check (for evaluating
scripts on their own); :class:`TransactionChecker` checks against one input of a
transaction, like Core's TransactionSignatureChecker.
"""

from __future__ import annotations

from typing import Final

from ..crypto import N, PublicKey, is_valid_signature_encoding, parse_der_lax
from ..sighash import Bip143Cache, bip143_sighash, legacy_sighash
from ..tx import SEQUENCE_FINAL, Transaction

__all__ = [
    "SIGVERSION_BASE",
    "SIGVERSION_WITNESS_V0",
    "LOCKTIME_THRESHOLD",
    "SEQUENCE_LOCKTIME_DISABLE_FLAG",
    "SEQUENCE_LOCKTIME_TYPE_FLAG",
    "SEQUENCE_LOCKTIME_MASK",
    "SignatureChecker",
    "TransactionChecker",
    "parse_signature",
    "strict_der_values",
]

#: Which signature hash and rules apply: legacy scripts (and P2SH) or segwit v0 scripts.
SIGVERSION_BASE: Final = 0
SIGVERSION_WITNESS_V0: Final = 1

LOCKTIME_THRESHOLD: Final = 500_000_000  # below: a block height; from here on: a UNIX time
SEQUENCE_LOCKTIME_DISABLE_FLAG: Final = 1 << 31
SEQUENCE_LOCKTIME_TYPE_FLAG: Final = 1 << 22
SEQUENCE_LOCKTIME_MASK: Final = 0x0000FFFF


def strict_der_values(sig: bytes) -> tuple[int, int]:
    """(r, s) of a signature that passed the strict DER check, read as Core's lax parser
    reads it: a value that does not fit below N makes the whole signature (0, 0)."""
    len_r = sig[3]
    r = int.from_bytes(sig[4 : 4 + len_r], "big")
    s = int.from_bytes(sig[6 + len_r : -1], "big")
    if r >= N or s >= N:
        return 0, 0
    return r, s


def parse_signature(sig: bytes) -> tuple[int, int] | None:
    """(r, s) of a DER signature followed by its hash-type byte, parsed as Core's lax
    parser does (None if it cannot be parsed); strictly encoded ones take a shortcut."""
    if is_valid_signature_encoding(sig):
        return strict_der_values(sig)
    return parse_der_lax(sig[:-1])


class SignatureChecker:
    """No transaction context: every signature, lock-time and sequence check fails."""

    __slots__ = ()

    def check_ecdsa(
        self,
        sig: bytes,
        pubkey: bytes,
        script_code: bytes,
        sigversion: int,
        rs: tuple[int, int] | None = None,
    ) -> bool:
        """Does `sig` (DER plus hash-type byte) sign this input under `pubkey`?

        `rs` may carry (r, s) when the caller has already checked that the signature is
        strict DER and parsed it (check_signature_encoding's result).
        """
        return False

    def check_locktime(self, locktime: int) -> bool:
        """CHECKLOCKTIMEVERIFY's comparison of a (non-negative) operand with the transaction."""
        return False

    def check_sequence(self, sequence: int) -> bool:
        """CHECKSEQUENCEVERIFY's comparison of a (non-negative) operand with the input."""
        return False


class TransactionChecker(SignatureChecker):
    """Checks against input `input_index` of `tx`, which spends `amount_sat`."""

    __slots__ = ("tx", "input_index", "amount_sat", "cache")

    def __init__(
        self, tx: Transaction, input_index: int, amount_sat: int, cache: Bip143Cache | None = None
    ) -> None:
        if not 0 <= input_index < len(tx.inputs):
            raise IndexError(f"input index {input_index} out of range")
        self.tx = tx
        self.input_index = input_index
        self.amount_sat = amount_sat
        self.cache = cache

    def check_ecdsa(
        self,
        sig: bytes,
        pubkey: bytes,
        script_code: bytes,
        sigversion: int,
        rs: tuple[int, int] | None = None,
    ) -> bool:
        if not sig:
            return False
        try:
            key = PublicKey.from_bytes(pubkey)
        except ValueError:
            return False
        if rs is None:
            strict = is_valid_signature_encoding(sig)
            rs = strict_der_values(sig) if strict else parse_der_lax(sig[:-1])
            if rs is None:
                return False
        else:
            strict = True
        hash_type = sig[-1]
        if sigversion == SIGVERSION_WITNESS_V0:
            if self.cache is None:
                self.cache = Bip143Cache(self.tx)
            digest = bip143_sighash(
                script_code, self.tx, self.input_index, hash_type, self.amount_sat, self.cache
            )
        else:
            digest = legacy_sighash(script_code, self.tx, self.input_index, hash_type)
        return key.verify(rs[0], rs[1], digest, der=sig[:-1] if strict else None)

    def check_locktime(self, locktime: int) -> bool:
        tx_locktime = self.tx.locktime
        # Only compare heights with heights and times with times.
        if (tx_locktime < LOCKTIME_THRESHOLD) != (locktime < LOCKTIME_THRESHOLD):
            return False
        if locktime > tx_locktime:
            return False
        # A final input makes the transaction's lock time ineffective, and with it the check.
        return self.tx.inputs[self.input_index].sequence != SEQUENCE_FINAL

    def check_sequence(self, sequence: int) -> bool:
        tx_sequence = self.tx.inputs[self.input_index].sequence
        # BIP68 applies from version 2 on; the version is compared as an unsigned number.
        if self.tx.version & 0xFFFFFFFF < 2:
            return False
        if tx_sequence & SEQUENCE_LOCKTIME_DISABLE_FLAG:
            return False
        mask = SEQUENCE_LOCKTIME_TYPE_FLAG | SEQUENCE_LOCKTIME_MASK
        tx_masked = tx_sequence & mask
        wanted = sequence & mask
        if (tx_masked < SEQUENCE_LOCKTIME_TYPE_FLAG) != (wanted < SEQUENCE_LOCKTIME_TYPE_FLAG):
            return False
        return wanted <= tx_masked
