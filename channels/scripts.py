"""BOLT 3 output scripts and the witnesses that spend them.

Every function here works on bytes: public keys are 33-byte compressed SEC
encodings, signatures are DER with the sighash-type byte appended (as they
appear on a witness stack), scripts are raw script bytes. A *witness script*
is the script a P2WSH output commits to; :func:`base_chain.templates.p2wsh`
turns it into the output's ``script_pubkey``.

"local" and "remote" are relative to the owner of the commitment transaction.
"""

from __future__ import annotations

from base_chain.hashes import hash160, ripemd160
from base_chain.script.opcodes import (
    OP_1,
    OP_16,
    OP_2,
    OP_CHECKLOCKTIMEVERIFY,
    OP_CHECKMULTISIG,
    OP_CHECKSEQUENCEVERIFY,
    OP_CHECKSIG,
    OP_CHECKSIGVERIFY,
    OP_DROP,
    OP_DUP,
    OP_ELSE,
    OP_ENDIF,
    OP_EQUAL,
    OP_EQUALVERIFY,
    OP_HASH160,
    OP_IF,
    OP_IFDUP,
    OP_NOTIF,
    OP_SIZE,
    OP_SWAP,
)
from base_chain.templates import p2wpkh, p2wsh, push_data, push_int

__all__ = [
    "ANCHOR_OUTPUT_SAT",
    "funding_script",
    "sort_funding_pubkeys",
    "to_local_script",
    "to_remote_anchor_script",
    "to_remote_script_pubkey",
    "anchor_script",
    "offered_htlc_script",
    "received_htlc_script",
    "htlc_tx_output_script",
    "funding_witness",
    "to_local_delayed_witness",
    "to_local_revocation_witness",
    "to_remote_witness",
    "anchor_witness",
    "anchor_sweep_witness",
    "htlc_timeout_witness",
    "htlc_success_witness",
    "offered_htlc_preimage_witness",
    "received_htlc_timeout_witness",
    "htlc_revocation_witness",
]

#: The value of each anchor output (the P2WSH dust limit).
ANCHOR_OUTPUT_SAT = 330


def _key(pubkey: bytes) -> bytes:
    if len(pubkey) != 33 or pubkey[0] not in (2, 3):
        raise ValueError("expected a 33-byte compressed public key")
    return push_data(pubkey)


def _ops(*ops: int) -> bytes:
    return bytes(ops)


# --- funding -------------------------------------------------------------------------


def sort_funding_pubkeys(pubkey_a: bytes, pubkey_b: bytes) -> tuple[bytes, bytes]:
    """(pubkey1, pubkey2): the lexicographically lesser compressed key first."""
    return (pubkey_a, pubkey_b) if pubkey_a <= pubkey_b else (pubkey_b, pubkey_a)


def funding_script(pubkey_a: bytes, pubkey_b: bytes) -> bytes:
    """``2 <pubkey1> <pubkey2> 2 OP_CHECKMULTISIG``, keys sorted lexicographically."""
    pubkey1, pubkey2 = sort_funding_pubkeys(pubkey_a, pubkey_b)
    return bytes([OP_2]) + _key(pubkey1) + _key(pubkey2) + _ops(OP_2, OP_CHECKMULTISIG)


# --- commitment outputs --------------------------------------------------------------


def to_local_script(revocation_pubkey: bytes, to_self_delay: int, local_delayed_pubkey: bytes) -> bytes:
    """``OP_IF <revocationpubkey> OP_ELSE to_self_delay OP_CSV OP_DROP <local_delayedpubkey> OP_ENDIF OP_CHECKSIG``.

    Also the output script of HTLC-timeout and HTLC-success transactions.
    """
    if not 0 <= to_self_delay <= 0xFFFF:
        raise ValueError("to_self_delay must fit in 16 bits")
    return (
        bytes([OP_IF])
        + _key(revocation_pubkey)
        + bytes([OP_ELSE])
        + push_int(to_self_delay)
        + _ops(OP_CHECKSEQUENCEVERIFY, OP_DROP)
        + _key(local_delayed_pubkey)
        + _ops(OP_ENDIF, OP_CHECKSIG)
    )


#: The second-stage (HTLC-timeout / HTLC-success) output has the to_local form.
htlc_tx_output_script = to_local_script


def to_remote_anchor_script(remote_pubkey: bytes) -> bytes:
    """``<remotepubkey> OP_CHECKSIGVERIFY 1 OP_CHECKSEQUENCEVERIFY`` (option_anchors)."""
    return _key(remote_pubkey) + _ops(OP_CHECKSIGVERIFY, OP_1, OP_CHECKSEQUENCEVERIFY)


def to_remote_script_pubkey(remote_pubkey: bytes, anchors: bool) -> bytes:
    """The ``to_remote`` output script: P2WSH of the 1-CSV script with anchors, else P2WPKH."""
    if anchors:
        return p2wsh(to_remote_anchor_script(remote_pubkey))
    _key(remote_pubkey)
    return p2wpkh(remote_pubkey)


def anchor_script(funding_pubkey: bytes) -> bytes:
    """``<funding_pubkey> OP_CHECKSIG OP_IFDUP OP_NOTIF OP_16 OP_CSV OP_ENDIF``."""
    return _key(funding_pubkey) + _ops(OP_CHECKSIG, OP_IFDUP, OP_NOTIF, OP_16, OP_CHECKSEQUENCEVERIFY, OP_ENDIF)


def _revocation_prefix(revocation_pubkey: bytes, remote_htlc_pubkey: bytes) -> bytes:
    # OP_DUP OP_HASH160 <RIPEMD160(SHA256(revocationpubkey))> OP_EQUAL
    # OP_IF OP_CHECKSIG OP_ELSE <remote_htlcpubkey> OP_SWAP OP_SIZE 32 OP_EQUAL
    _key(revocation_pubkey)
    return (
        _ops(OP_DUP, OP_HASH160)
        + push_data(hash160(revocation_pubkey))
        + _ops(OP_EQUAL, OP_IF, OP_CHECKSIG, OP_ELSE)
        + _key(remote_htlc_pubkey)
        + _ops(OP_SWAP, OP_SIZE)
        + push_int(32)
        + bytes([OP_EQUAL])
    )


def _payment_hash_check(payment_hash: bytes) -> bytes:
    if len(payment_hash) != 32:
        raise ValueError("payment_hash must be 32 bytes")
    return bytes([OP_HASH160]) + push_data(ripemd160(payment_hash)) + bytes([OP_EQUALVERIFY])


def _anchor_csv(anchors: bool) -> bytes:
    return _ops(OP_1, OP_CHECKSEQUENCEVERIFY, OP_DROP) if anchors else b""


def offered_htlc_script(
    revocation_pubkey: bytes,
    local_htlc_pubkey: bytes,
    remote_htlc_pubkey: bytes,
    payment_hash: bytes,
    anchors: bool,
) -> bytes:
    """The witness script of an HTLC offered by the commitment owner.

    Paths: revocation (remote), HTLC-timeout via 2-of-2 (local, timelocked by the
    HTLC-timeout transaction), preimage (remote). With `anchors` the non-revocation
    paths also need ``1 OP_CHECKSEQUENCEVERIFY``.
    """
    return (
        _revocation_prefix(revocation_pubkey, remote_htlc_pubkey)
        + bytes([OP_NOTIF, OP_DROP, OP_2, OP_SWAP])
        + _key(local_htlc_pubkey)
        + _ops(OP_2, OP_CHECKMULTISIG, OP_ELSE)
        + _payment_hash_check(payment_hash)
        + _ops(OP_CHECKSIG, OP_ENDIF)
        + _anchor_csv(anchors)
        + bytes([OP_ENDIF])
    )


def received_htlc_script(
    revocation_pubkey: bytes,
    local_htlc_pubkey: bytes,
    remote_htlc_pubkey: bytes,
    payment_hash: bytes,
    cltv_expiry: int,
    anchors: bool,
) -> bytes:
    """The witness script of an HTLC received by the commitment owner.

    Paths: revocation (remote), HTLC-success via preimage and 2-of-2 (local),
    timeout after `cltv_expiry` (remote). With `anchors` the non-revocation paths
    also need ``1 OP_CHECKSEQUENCEVERIFY``.
    """
    if not 0 <= cltv_expiry <= 0xFFFFFFFF:
        raise ValueError("cltv_expiry must fit in 32 bits")
    return (
        _revocation_prefix(revocation_pubkey, remote_htlc_pubkey)
        + bytes([OP_IF])
        + _payment_hash_check(payment_hash)
        + _ops(OP_2, OP_SWAP)
        + _key(local_htlc_pubkey)
        + _ops(OP_2, OP_CHECKMULTISIG, OP_ELSE, OP_DROP)
        + push_int(cltv_expiry)
        + _ops(OP_CHECKLOCKTIMEVERIFY, OP_DROP, OP_CHECKSIG, OP_ENDIF)
        + _anchor_csv(anchors)
        + bytes([OP_ENDIF])
    )


# --- witnesses -----------------------------------------------------------------------


def funding_witness(
    local_sig: bytes, remote_sig: bytes, local_funding_pubkey: bytes, remote_funding_pubkey: bytes
) -> list[bytes]:
    """``0 <signature_for_pubkey1> <signature_for_pubkey2> <funding_script>`` (commitment, closing)."""
    script = funding_script(local_funding_pubkey, remote_funding_pubkey)
    if local_funding_pubkey <= remote_funding_pubkey:
        return [b"", local_sig, remote_sig, script]
    return [b"", remote_sig, local_sig, script]


def to_local_delayed_witness(local_delayed_sig: bytes, witness_script: bytes) -> list[bytes]:
    """``<local_delayedsig> <>``: the owner's sweep after ``to_self_delay`` (input nSequence = to_self_delay).

    Spends ``to_local`` and the output of an HTLC-timeout / HTLC-success transaction.
    """
    return [local_delayed_sig, b"", witness_script]


def to_local_revocation_witness(revocation_sig: bytes, witness_script: bytes) -> list[bytes]:
    """``<revocation_sig> 1``: the penalty spend of a revoked ``to_local`` or second-stage output."""
    return [revocation_sig, b"\x01", witness_script]


def to_remote_witness(remote_sig: bytes, remote_pubkey: bytes, anchors: bool) -> list[bytes]:
    """Spend ``to_remote``: ``<sig> <pubkey>`` (P2WPKH), or ``<sig> <script>`` with anchors (nSequence 1)."""
    if anchors:
        return [remote_sig, to_remote_anchor_script(remote_pubkey)]
    return [remote_sig, remote_pubkey]


def anchor_witness(funding_sig: bytes, funding_pubkey: bytes) -> list[bytes]:
    """``<local_sig/remote_sig>``: the anchor owner's (CPFP) spend."""
    return [funding_sig, anchor_script(funding_pubkey)]


def anchor_sweep_witness(funding_pubkey: bytes) -> list[bytes]:
    """``<>``: anyone's sweep of an anchor, 16 blocks after the commitment confirmed."""
    return [b"", anchor_script(funding_pubkey)]


def htlc_timeout_witness(remote_htlc_sig: bytes, local_htlc_sig: bytes, offered_script: bytes) -> list[bytes]:
    """``0 <remotehtlcsig> <localhtlcsig> <>``: the input of an HTLC-timeout transaction."""
    return [b"", remote_htlc_sig, local_htlc_sig, b"", offered_script]


def htlc_success_witness(
    remote_htlc_sig: bytes, local_htlc_sig: bytes, payment_preimage: bytes, received_script: bytes
) -> list[bytes]:
    """``0 <remotehtlcsig> <localhtlcsig> <payment_preimage>``: the input of an HTLC-success transaction."""
    if len(payment_preimage) != 32:
        raise ValueError("payment_preimage must be 32 bytes")
    return [b"", remote_htlc_sig, local_htlc_sig, payment_preimage, received_script]


def offered_htlc_preimage_witness(
    remote_htlc_sig: bytes, payment_preimage: bytes, offered_script: bytes
) -> list[bytes]:
    """``<remotehtlcsig> <payment_preimage>``: the remote node claims an offered HTLC (nSequence 1 with anchors)."""
    if len(payment_preimage) != 32:
        raise ValueError("payment_preimage must be 32 bytes")
    return [remote_htlc_sig, payment_preimage, offered_script]


def received_htlc_timeout_witness(remote_htlc_sig: bytes, received_script: bytes) -> list[bytes]:
    """``<remotehtlcsig> <>``: the remote node times out a received HTLC (nLockTime >= cltv_expiry)."""
    return [remote_htlc_sig, b"", received_script]


def htlc_revocation_witness(revocation_sig: bytes, revocation_pubkey: bytes, htlc_script: bytes) -> list[bytes]:
    """``<revocation_sig> <revocationpubkey>``: the penalty spend of either HTLC output of a revoked commitment."""
    return [revocation_sig, revocation_pubkey, htlc_script]
