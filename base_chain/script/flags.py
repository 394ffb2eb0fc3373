"""Script verification flags, named as in Bitcoin Core (``SCRIPT_VERIFY_<NAME>``).

Flags are passed around as sets of names (``frozenset({"P2SH", "WITNESS"})``); the
interpreter turns a set into a bit mask once (cached for frozensets, so pass a
frozenset on hot paths).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

__all__ = [
    "P2SH",
    "STRICTENC",
    "DERSIG",
    "LOW_S",
    "NULLDUMMY",
    "SIGPUSHONLY",
    "MINIMALDATA",
    "DISCOURAGE_UPGRADABLE_NOPS",
    "CLEANSTACK",
    "CHECKLOCKTIMEVERIFY",
    "CHECKSEQUENCEVERIFY",
    "WITNESS",
    "DISCOURAGE_UPGRADABLE_WITNESS_PROGRAM",
    "MINIMALIF",
    "NULLFAIL",
    "WITNESS_PUBKEYTYPE",
    "CONST_SCRIPTCODE",
    "TAPROOT",
    "DISCOURAGE_UPGRADABLE_TAPROOT_VERSION",
    "DISCOURAGE_OP_SUCCESS",
    "DISCOURAGE_UPGRADABLE_PUBKEYTYPE",
    "FLAG_BITS",
    "ALL_FLAGS",
    "MANDATORY_FLAGS",
    "STANDARD_FLAGS",
    "parse_flags",
    "format_flags",
    "flags_to_mask",
    "fill_flags",
    "trim_flags",
    "is_valid_flag_combination",
]

P2SH: Final = "P2SH"
STRICTENC: Final = "STRICTENC"
DERSIG: Final = "DERSIG"
LOW_S: Final = "LOW_S"
NULLDUMMY: Final = "NULLDUMMY"
SIGPUSHONLY: Final = "SIGPUSHONLY"
MINIMALDATA: Final = "MINIMALDATA"
DISCOURAGE_UPGRADABLE_NOPS: Final = "DISCOURAGE_UPGRADABLE_NOPS"
CLEANSTACK: Final = "CLEANSTACK"
CHECKLOCKTIMEVERIFY: Final = "CHECKLOCKTIMEVERIFY"
CHECKSEQUENCEVERIFY: Final = "CHECKSEQUENCEVERIFY"
WITNESS: Final = "WITNESS"
DISCOURAGE_UPGRADABLE_WITNESS_PROGRAM: Final = "DISCOURAGE_UPGRADABLE_WITNESS_PROGRAM"
MINIMALIF: Final = "MINIMALIF"
NULLFAIL: Final = "NULLFAIL"
WITNESS_PUBKEYTYPE: Final = "WITNESS_PUBKEYTYPE"
CONST_SCRIPTCODE: Final = "CONST_SCRIPTCODE"
TAPROOT: Final = "TAPROOT"
DISCOURAGE_UPGRADABLE_TAPROOT_VERSION: Final = "DISCOURAGE_UPGRADABLE_TAPROOT_VERSION"
DISCOURAGE_OP_SUCCESS: Final = "DISCOURAGE_OP_SUCCESS"
DISCOURAGE_UPGRADABLE_PUBKEYTYPE: Final = "DISCOURAGE_UPGRADABLE_PUBKEYTYPE"

#: Name -> Core's bit (SCRIPT_VERIFY_P2SH = 1 << 0, ...).
FLAG_BITS: Final[dict[str, int]] = {
    name: 1 << bit
    for bit, name in enumerate(
        (
            P2SH,
            STRICTENC,
            DERSIG,
            LOW_S,
            NULLDUMMY,
            SIGPUSHONLY,
            MINIMALDATA,
            DISCOURAGE_UPGRADABLE_NOPS,
            CLEANSTACK,
            CHECKLOCKTIMEVERIFY,
            CHECKSEQUENCEVERIFY,
            WITNESS,
            DISCOURAGE_UPGRADABLE_WITNESS_PROGRAM,
            MINIMALIF,
            NULLFAIL,
            WITNESS_PUBKEYTYPE,
            CONST_SCRIPTCODE,
            TAPROOT,
            DISCOURAGE_UPGRADABLE_TAPROOT_VERSION,
            DISCOURAGE_OP_SUCCESS,
            DISCOURAGE_UPGRADABLE_PUBKEYTYPE,
        )
    )
}

ALL_FLAGS: Final[frozenset[str]] = frozenset(FLAG_BITS)

#: Consensus rules a block may not break: Core's MANDATORY_SCRIPT_VERIFY_FLAGS without
#: TAPROOT. Canal's chains treat witness v1 as Core does without the TAPROOT flag (an
#: upgradable program, valid at consensus), exactly what validation.script_flags_at enforces.
MANDATORY_FLAGS: Final[frozenset[str]] = frozenset(
    {P2SH, DERSIG, NULLDUMMY, CHECKLOCKTIMEVERIFY, CHECKSEQUENCEVERIFY, WITNESS}
)

#: Relay policy (Core's STANDARD_SCRIPT_VERIFY_FLAGS): the mandatory flags plus the
#: malleability and upgrade-safety rules. SIGPUSHONLY is not among them: policy
#: enforces push-only scriptSigs in IsStandardTx instead. TAPROOT is policy-only here:
#: the mempool refuses witness v1 spends (the interpreter fails closed on them), so
#: no relayed transaction spends a P2TR output that consensus would not protect.
STANDARD_FLAGS: Final[frozenset[str]] = MANDATORY_FLAGS | frozenset(
    {
        TAPROOT,
        STRICTENC,
        MINIMALDATA,
        DISCOURAGE_UPGRADABLE_NOPS,
        CLEANSTACK,
        MINIMALIF,
        NULLFAIL,
        LOW_S,
        DISCOURAGE_UPGRADABLE_WITNESS_PROGRAM,
        WITNESS_PUBKEYTYPE,
        CONST_SCRIPTCODE,
        DISCOURAGE_UPGRADABLE_TAPROOT_VERSION,
        DISCOURAGE_OP_SUCCESS,
        DISCOURAGE_UPGRADABLE_PUBKEYTYPE,
    }
)


def parse_flags(text: str) -> frozenset[str]:
    """Parse "P2SH,STRICTENC" (Core's test format); "" and "NONE" are the empty set.

    Raises ValueError for a name that is not a flag.
    """
    if text in ("", "NONE"):
        return frozenset()
    names = text.split(",")
    unknown = [n for n in names if n not in FLAG_BITS]
    if unknown:
        raise ValueError(f"unknown script verification flag(s): {', '.join(unknown)}")
    return frozenset(names)


def format_flags(flags: Iterable[str]) -> str:
    """Comma-separated names in Core's bit order ("" for none)."""
    chosen = set(flags)
    return ",".join(name for name in FLAG_BITS if name in chosen)


def _mask(flags: Iterable[str]) -> int:
    mask = 0
    for name in flags:
        bit = FLAG_BITS.get(name)
        if bit is None:
            raise ValueError(f"unknown script verification flag {name!r}")
        mask |= bit
    return mask


_MASK_CACHE: dict[frozenset[str], int] = {}


def flags_to_mask(flags: Iterable[str]) -> int:
    """The bit mask of a set of flag names; ValueError for an unknown name.

    Masks of frozensets are remembered (a dict lookup on the set's cached hash)."""
    if type(flags) is frozenset:
        mask = _MASK_CACHE.get(flags)
        if mask is None:
            mask = _mask(flags)
            if len(_MASK_CACHE) < 1024:
                _MASK_CACHE[flags] = mask
        return mask
    return _mask(flags)


def fill_flags(flags: Iterable[str]) -> frozenset[str]:
    """Add the flags the given ones depend on (CLEANSTACK needs WITNESS, WITNESS needs P2SH)."""
    out = set(flags)
    if CLEANSTACK in out:
        out.add(WITNESS)
    if WITNESS in out:
        out.add(P2SH)
    return frozenset(out)


def trim_flags(flags: Iterable[str]) -> frozenset[str]:
    """Drop the flags whose dependencies are missing (the inverse of fill_flags)."""
    out = set(flags)
    if P2SH not in out:
        out.discard(WITNESS)
    if WITNESS not in out:
        out.discard(CLEANSTACK)
    return frozenset(out)


def is_valid_flag_combination(flags: Iterable[str]) -> bool:
    """Core refuses (asserts on) CLEANSTACK without WITNESS and WITNESS without P2SH."""
    s = set(flags)
    if CLEANSTACK in s and WITNESS not in s:
        return False
    return not (WITNESS in s and P2SH not in s)
