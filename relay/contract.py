"""The atomic-swap HTLC contract (decred atomicswap's script, paid to as P2WSH).

The contract is decred atomicswap's ``atomicSwapContract`` byte for byte, used as
a segwit v0 witness script instead of a P2SH redeem script::

    OP_IF
        OP_SIZE 32 OP_EQUALVERIFY                  (32 is pushed as the 1-byte number 0x20)
        OP_SHA256 <secret_hash (32 bytes)> OP_EQUALVERIFY
        OP_DUP OP_HASH160 <recipient_pkh (20 bytes)>
    OP_ELSE
        <locktime> OP_CHECKLOCKTIMEVERIFY OP_DROP  (a minimal script number)
        OP_DUP OP_HASH160 <refund_pkh (20 bytes)>
    OP_ENDIF
    OP_EQUALVERIFY OP_CHECKSIG

in hex ``63 82 0120 88 a8 20<secret_hash> 88 76 a9 14<recipient_pkh> 67
<locktime push> b1 75 76 a9 14<refund_pkh> 68 88 ac``. The two public-key-hash
checks share the trailing ``OP_EQUALVERIFY OP_CHECKSIG``, as decred's do. The
output paying to it is ``OP_0 <sha256(contract)>`` (P2WSH); its address is the
chain's bech32 P2WSH address.

Spending it (witness stacks, bottom first; the last item is the contract):

* redeem, by the recipient with the secret: ``<sig> <pubkey> <secret> 0x01 <contract>``
* refund, by the author after the locktime: ``<sig> <pubkey> <> <contract>``

The secret is exactly :data:`SECRET_SIZE` (32) bytes: the ``OP_SIZE`` check
stops a secret that one chain accepts and the other cannot (decred's reason).

**Locktimes are block heights of the chain the contract is on** (never UNIX
times): a refund is valid in the block after the chain's tip reaches the
locktime, i.e. once ``tip_height >= locktime`` (nLockTime = locktime, a
non-final sequence). Chains have different block intervals (alpha 600 s, beta
150 s), so durations are converted per chain with :func:`blocks_for_duration`.
Following decred, the initiator locks for :data:`INITIATOR_LOCK_S` (48 h) and
the participant for :data:`PARTICIPANT_LOCK_S` (24 h), half as long.

Everything here is pure: bytes and numbers in, bytes and transactions out.
Every rejection raises :class:`ContractError` naming its reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from base_chain.address import AddressError, AddressPrefixes, address_to_script, script_to_address
from base_chain.crypto import PrivateKey
from base_chain.hashes import hash160, sha256
from base_chain.locks import LOCKTIME_THRESHOLD
from base_chain.policy import DUST_RELAY_TX_FEE, dust_threshold, fee_for
from base_chain.script import STANDARD_FLAGS, ScriptError, iter_script, push_bytes, push_int, verify_script
from base_chain.script.num import decode_num
from base_chain.signing import segwit_signature
from base_chain.templates import p2wsh
from base_chain.tx import OutPoint, Transaction, TxIn, TxOut

__all__ = [
    "SECRET_SIZE",
    "INITIATOR_LOCK_S",
    "PARTICIPANT_LOCK_S",
    "SPEND_SEQUENCE",
    "ContractError",
    "ContractInfo",
    "build_contract",
    "parse_contract",
    "contract_script_pubkey",
    "contract_address",
    "find_contract_output",
    "redeem_witness",
    "refund_witness",
    "redeem_tx",
    "refund_tx",
    "is_redeem_witness",
    "is_refund_witness",
    "extract_secret",
    "pkh_from_address",
    "p2wpkh_address",
    "blocks_for_duration",
    "duration_of_blocks",
    "locktime_after",
    "blocks_until_refundable",
]

SECRET_SIZE: Final = 32
"""Bytes in a swap secret; the contract enforces it with OP_SIZE."""
INITIATOR_LOCK_S: Final = 48 * 60 * 60
"""How long the initiator's contract locks its coins (decred: 48 hours)."""
PARTICIPANT_LOCK_S: Final = 24 * 60 * 60
"""How long the participant's contract locks its coins (decred: 24 hours, half the initiator's)."""
SPEND_SEQUENCE: Final = 0xFFFFFFFD
"""nSequence of redeem and refund inputs: not final, so nLockTime (and CLTV) is enforced, and
BIP125-signalling, so a stuck redeem or refund can be replaced by one paying a higher fee."""

OP_0: Final = 0x00
OP_1: Final = 0x51
OP_16: Final = 0x60
OP_IF: Final = 0x63
OP_ELSE: Final = 0x67
OP_ENDIF: Final = 0x68
OP_DROP: Final = 0x75
OP_DUP: Final = 0x76
OP_EQUALVERIFY: Final = 0x88
OP_SIZE: Final = 0x82
OP_SHA256: Final = 0xA8
OP_HASH160: Final = 0xA9
OP_CHECKSIG: Final = 0xAC
OP_CHECKLOCKTIMEVERIFY: Final = 0xB1

_MAX_SIG_SIZE: Final = 73  # 72-byte DER signature + sighash byte (worst case, for fee estimates)
_PUBKEY_SIZE: Final = 33


class ContractError(ValueError):
    """A contract, transaction or argument was refused; the message names the reason."""


@dataclass(frozen=True, slots=True)
class ContractInfo:
    """What a swap contract commits to."""

    secret_hash: bytes
    """sha256 of the secret (32 bytes)."""
    recipient_pkh: bytes
    """hash160 of the compressed public key that may redeem with the secret (20 bytes)."""
    refund_pkh: bytes
    """hash160 of the author's compressed public key that may refund after the locktime (20 bytes)."""
    locktime: int
    """Block height of the contract's chain from which the refund is valid (see the module doc)."""

    def __post_init__(self) -> None:
        if len(self.secret_hash) != 32:
            raise ContractError(f"secret hash must be 32 bytes, got {len(self.secret_hash)}")
        if len(self.recipient_pkh) != 20:
            raise ContractError(f"recipient public key hash must be 20 bytes, got {len(self.recipient_pkh)}")
        if len(self.refund_pkh) != 20:
            raise ContractError(f"refund public key hash must be 20 bytes, got {len(self.refund_pkh)}")
        if not 0 < self.locktime < LOCKTIME_THRESHOLD:
            raise ContractError(
                f"locktime {self.locktime} is not a block height (1 .. {LOCKTIME_THRESHOLD - 1}); "
                "Canal's swap contracts lock by block height"
            )

    def script(self) -> bytes:
        """The contract (witness script) for these terms."""
        return build_contract(self.secret_hash, self.recipient_pkh, self.refund_pkh, self.locktime)


def build_contract(secret_hash: bytes, recipient_pkh: bytes, refund_pkh: bytes, locktime: int) -> bytes:
    """The contract script (see the module doc for its exact form)."""
    ContractInfo(secret_hash, recipient_pkh, refund_pkh, locktime)  # validates the arguments
    return b"".join(
        [
            bytes([OP_IF, OP_SIZE]),
            push_int(SECRET_SIZE),
            bytes([OP_EQUALVERIFY, OP_SHA256]),
            push_bytes(secret_hash),
            bytes([OP_EQUALVERIFY, OP_DUP, OP_HASH160]),
            push_bytes(recipient_pkh),
            bytes([OP_ELSE]),
            push_int(locktime),
            bytes([OP_CHECKLOCKTIMEVERIFY, OP_DROP, OP_DUP, OP_HASH160]),
            push_bytes(refund_pkh),
            bytes([OP_ENDIF, OP_EQUALVERIFY, OP_CHECKSIG]),
        ]
    )


# The template, one entry per operation: an opcode, or a named push (with its size when fixed).
_Slot = int | tuple[str, int]
_TEMPLATE: Final[tuple[_Slot, ...]] = (
    OP_IF, OP_SIZE, ("secret_size", 0), OP_EQUALVERIFY,
    OP_SHA256, ("secret_hash", 32), OP_EQUALVERIFY,
    OP_DUP, OP_HASH160, ("recipient_pkh", 20),
    OP_ELSE, ("locktime", 0), OP_CHECKLOCKTIMEVERIFY, OP_DROP,
    OP_DUP, OP_HASH160, ("refund_pkh", 20),
    OP_ENDIF, OP_EQUALVERIFY, OP_CHECKSIG,
)  # fmt: skip


def _number(op: int, data: bytes | None, what: str) -> int:
    if data is None:
        if OP_1 <= op <= OP_16:
            return op - OP_1 + 1
        raise ContractError(f"contract is not an atomic swap script recognized by this tool: {what} is not a number")
    try:
        return decode_num(data, True, 5)
    except ScriptError:
        raise ContractError(f"contract {what} is not a minimally encoded number") from None


def parse_contract(script: bytes) -> ContractInfo:
    """The terms of a contract, which must be exactly :func:`build_contract`'s output.

    Anything else -- another template, a different secret size, non-minimal pushes,
    a UNIX-time locktime, trailing bytes -- raises :class:`ContractError`.
    """
    try:
        ops = [(op, data) for op, data, _ in iter_script(script)]
    except ScriptError:
        raise ContractError("contract is not a valid script (a push runs past the end)") from None
    if len(ops) != len(_TEMPLATE):
        raise ContractError("contract is not an atomic swap script recognized by this tool")
    fields: dict[str, int | bytes] = {}
    for (op, data), slot in zip(ops, _TEMPLATE):
        if isinstance(slot, int):
            if op != slot or data is not None:
                raise ContractError("contract is not an atomic swap script recognized by this tool")
            continue
        name, size = slot
        if size:
            if data is None or len(data) != size:
                raise ContractError(f"contract is not an atomic swap script recognized by this tool: bad {name}")
            fields[name] = data
        else:
            fields[name] = _number(op, data, name)
    secret_size, locktime = fields["secret_size"], fields["locktime"]
    assert isinstance(secret_size, int) and isinstance(locktime, int)
    if secret_size != SECRET_SIZE:
        raise ContractError(f"contract specifies strange secret size {secret_size}")
    if not 0 < locktime < LOCKTIME_THRESHOLD:
        raise ContractError(f"contract locktime {locktime} is not a block height; Canal contracts lock by height")
    secret_hash, recipient, refund = fields["secret_hash"], fields["recipient_pkh"], fields["refund_pkh"]
    assert isinstance(secret_hash, bytes) and isinstance(recipient, bytes) and isinstance(refund, bytes)
    info = ContractInfo(secret_hash, recipient, refund, locktime)
    if info.script() != script:
        raise ContractError("contract is not in canonical form (non-minimal pushes)")
    return info


def contract_script_pubkey(contract: bytes) -> bytes:
    """The P2WSH output script paying to the contract: ``OP_0 <sha256(contract)>``."""
    return p2wsh(contract)


def contract_address(contract: bytes, prefixes: AddressPrefixes) -> str:
    """The contract's bech32 P2WSH address on the chain with these prefixes."""
    address = script_to_address(contract_script_pubkey(contract), prefixes)
    assert address is not None
    return address


def find_contract_output(contract: bytes, tx: Transaction) -> int:
    """The index of `tx`'s (first) output paying to the contract's P2WSH script."""
    spk = contract_script_pubkey(contract)
    for i, out in enumerate(tx.outputs):
        if out.script_pubkey == spk:
            return i
    raise ContractError("transaction does not contain the contract output")


def pkh_from_address(address: str, prefixes: AddressPrefixes) -> bytes:
    """The 20-byte key hash of a P2WPKH address of this chain (the only kind a contract can pay to)."""
    try:
        spk = address_to_script(address, prefixes)
    except AddressError as e:
        raise ContractError(f"invalid address {address!r}: {e}") from None
    if len(spk) != 22 or spk[:2] != bytes([OP_0, 20]):
        raise ContractError(f"address {address!r} is not a P2WPKH address")
    return spk[2:]


def p2wpkh_address(pkh: bytes, prefixes: AddressPrefixes) -> str:
    """The P2WPKH address of a 20-byte key hash."""
    if len(pkh) != 20:
        raise ContractError("a public key hash is 20 bytes")
    address = script_to_address(bytes([OP_0, 20]) + pkh, prefixes)
    assert address is not None
    return address


# --- spending -------------------------------------------------------------------------------------


def redeem_witness(sig: bytes, pubkey: bytes, secret: bytes, contract: bytes) -> list[bytes]:
    """The witness that redeems the contract: ``<sig> <pubkey> <secret> 0x01 <contract>``."""
    return [sig, pubkey, secret, b"\x01", contract]


def refund_witness(sig: bytes, pubkey: bytes, contract: bytes) -> list[bytes]:
    """The witness that refunds the contract: ``<sig> <pubkey> <empty> <contract>``."""
    return [sig, pubkey, b"", contract]


def is_redeem_witness(witness: Sequence[bytes], contract: bytes) -> bool:
    """Does this input witness take the contract's redeem branch?"""
    return len(witness) == 5 and witness[3] == b"\x01" and witness[4] == contract


def is_refund_witness(witness: Sequence[bytes], contract: bytes) -> bool:
    """Does this input witness take the contract's refund branch?"""
    return len(witness) == 4 and witness[2] == b"" and witness[3] == contract


def _spend(
    contract: bytes,
    contract_outpoint: OutPoint,
    contract_amount_sat: int,
    key: PrivateKey,
    destination_script: bytes,
    fee_rate_sat_kvb: int,
    locktime: int,
    sequence: int,
    witness_for: tuple[str, bytes | None],
    dust_relay_fee: int,
) -> Transaction:
    kind, secret = witness_for
    if fee_rate_sat_kvb < 0:
        raise ContractError("fee rate must not be negative")
    if contract_amount_sat <= 0:
        raise ContractError("contract amount must be positive")
    pub = key.public_key().to_bytes()
    tx = Transaction(
        version=2,
        inputs=[TxIn(contract_outpoint, b"", sequence)],
        outputs=[TxOut(0, destination_script)],
        locktime=locktime,
    )

    def witness(sig: bytes) -> list[bytes]:
        if kind == "redeem":
            assert secret is not None
            return redeem_witness(sig, pub, secret, contract)
        return refund_witness(sig, pub, contract)

    # Worst-case size (a 73-byte signature), as decred estimates: the fee does not depend on the signature.
    tx.inputs[0].witness = witness(b"\x00" * _MAX_SIG_SIZE)
    fee = fee_for(fee_rate_sat_kvb, tx.vsize)
    value = contract_amount_sat - fee
    tx.outputs[0].amount_sat = value
    if value < dust_threshold(tx.outputs[0], dust_relay_fee):
        raise ContractError(
            f"{kind} output value of {max(value, 0)} sat is dust (contract {contract_amount_sat} sat, fee {fee} sat)"
        )
    sig = segwit_signature(tx, 0, key, contract, contract_amount_sat)
    tx.inputs[0].witness = witness(sig)
    try:
        verify_script(b"", contract_script_pubkey(contract), tx.inputs[0].witness, STANDARD_FLAGS, tx, 0,
                      contract_amount_sat)
    except ScriptError as e:  # pragma: no cover - a bug here, not bad input: the checks above cover that
        raise ContractError(f"the {kind} transaction does not verify: {e}") from e
    return tx


def redeem_tx(
    contract: bytes,
    contract_outpoint: OutPoint,
    contract_amount_sat: int,
    secret: bytes,
    key: PrivateKey,
    destination_script: bytes,
    fee_rate_sat_kvb: int,
    *,
    sequence: int = SPEND_SEQUENCE,
    dust_relay_fee: int = DUST_RELAY_TX_FEE,
) -> Transaction:
    """A fully signed transaction redeeming the contract output to `destination_script`.

    One input (the contract output, worth `contract_amount_sat`), one output; the
    fee is `fee_rate_sat_kvb` (sat per 1000 vbytes) times the worst-case vsize.
    nLockTime is 0. Raises :class:`ContractError` if `key` is not the recipient's,
    the secret does not match or is not 32 bytes, or the output would be dust.
    """
    info = parse_contract(contract)
    if len(secret) != SECRET_SIZE:
        raise ContractError(f"secret must be {SECRET_SIZE} bytes, got {len(secret)}")
    if sha256(secret) != info.secret_hash:
        raise ContractError("secret does not match the contract's secret hash")
    if hash160(key.public_key().to_bytes()) != info.recipient_pkh:
        raise ContractError("key is not the contract's recipient key")
    return _spend(contract, contract_outpoint, contract_amount_sat, key, destination_script, fee_rate_sat_kvb,
                  0, sequence, ("redeem", secret), dust_relay_fee)


def refund_tx(
    contract: bytes,
    contract_outpoint: OutPoint,
    contract_amount_sat: int,
    key: PrivateKey,
    destination_script: bytes,
    fee_rate_sat_kvb: int,
    *,
    sequence: int = SPEND_SEQUENCE,
    dust_relay_fee: int = DUST_RELAY_TX_FEE,
) -> Transaction:
    """A fully signed transaction refunding the contract output to `destination_script`.

    nLockTime is the contract's locktime and the input's sequence is not final, so
    CHECKLOCKTIMEVERIFY passes and the chain accepts it once ``tip >= locktime``
    (see :func:`blocks_until_refundable`). Fees and errors as :func:`redeem_tx`.
    """
    info = parse_contract(contract)
    if sequence == 0xFFFFFFFF:
        raise ContractError("a refund input must not have a final sequence (CLTV would fail)")
    if hash160(key.public_key().to_bytes()) != info.refund_pkh:
        raise ContractError("key is not the contract's refund key")
    return _spend(contract, contract_outpoint, contract_amount_sat, key, destination_script, fee_rate_sat_kvb,
                  info.locktime, sequence, ("refund", None), dust_relay_fee)


def extract_secret(redemption_tx: Transaction, secret_hash: bytes) -> bytes:
    """The secret revealed by a transaction: any witness item or scriptSig push hashing to `secret_hash`.

    Every input and every pushed item is searched (as decred does), so a redeem
    made by another tool or with another script form is found too.
    """
    if len(secret_hash) != 32:
        raise ContractError("secret hash has wrong size")
    for txin in redemption_tx.inputs:
        candidates = list(txin.witness)
        try:
            candidates += [data for _, data, _ in iter_script(txin.script_sig) if data is not None]
        except ScriptError:
            pass
        for item in candidates:
            if sha256(item) == secret_hash:
                return item
    raise ContractError("transaction does not contain the secret")


# --- locktimes ------------------------------------------------------------------------------------


def blocks_for_duration(duration_s: int, target_spacing_s: int) -> int:
    """Blocks expected in `duration_s` on a chain with this block interval (rounded up, at least 1)."""
    if duration_s <= 0:
        raise ContractError("a lock duration must be positive")
    if target_spacing_s <= 0:
        raise ContractError("a chain's block interval must be positive")
    return max(1, -(-duration_s // target_spacing_s))


def duration_of_blocks(blocks: int, target_spacing_s: int) -> int:
    """Expected seconds for `blocks` blocks on a chain with this block interval."""
    return blocks * target_spacing_s


def locktime_after(tip_height: int, duration_s: int, target_spacing_s: int) -> int:
    """The locktime making a contract refundable about `duration_s` from now, with the chain at `tip_height`."""
    if tip_height < 0:
        raise ContractError("tip height must not be negative")
    return tip_height + blocks_for_duration(duration_s, target_spacing_s)


def blocks_until_refundable(locktime: int, tip_height: int) -> int:
    """Blocks still to be mined before a refund is accepted (0: it can be published now)."""
    return max(0, locktime - tip_height)
