"""Address encodings against the BIP173 / BIP350 test vectors (read at run time
from ../shared/vectors/bips), plus Base58Check and property tests."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from base_chain.address import (
    MAINNET,
    REGTEST,
    TESTNET,
    AddressError,
    AddressPrefixes,
    Encoding,
    address_to_script,
    b58check_decode,
    b58check_encode,
    b58decode,
    b58encode,
    bech32_decode,
    bech32_encode,
    convertbits,
    decode_segwit_address,
    encode_segwit_address,
    script_to_address,
    witness_script,
)

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors" / "bips"


# --------------------------------------------------------------------------
# vector file parsing
# --------------------------------------------------------------------------


@dataclass
class BipVectors:
    valid_strings: list[str] = field(default_factory=list)
    invalid_strings: list[tuple[str, str]] = field(default_factory=list)
    valid_addresses: list[tuple[str, str]] = field(default_factory=list)
    invalid_addresses: list[tuple[str, str]] = field(default_factory=list)


# "* [0xNN + ]<tt>X</tt>[ + 0xNN][: <tt>Y</tt> | : reason]"
_BULLET = re.compile(
    r"^\* (?:0x(?P<pre>[0-9A-Fa-f]{2}) \+ )?<tt>(?P<tt>[^<]*)</tt>"
    r"(?: \+ 0x(?P<post>[0-9A-Fa-f]{2}))?"
    r"(?::\s*(?:<tt>(?P<hex>[0-9a-f]*)</tt>|(?P<reason>.+)))?"
)


def _section(line: str) -> str | None:
    if not line.startswith("The following"):
        return None
    if "segwit addresses" in line:
        return "invalid_addresses" if "invalid segwit" in line else "valid_addresses"
    if re.search(r"not valid Bech32m?\b", line):
        return "invalid_strings"
    if re.search(r"are valid Bech32m?:", line):
        return "valid_strings"
    raise AssertionError(f"unrecognised section header: {line!r}")


def load_vectors(name: str) -> BipVectors:
    text = (VECTORS / name).read_text(encoding="utf-8")  # missing file -> test fails
    vectors = BipVectors()
    section: str | None = None
    for line in text.splitlines():
        section = _section(line) or section
        if section is None or not line.startswith("* "):
            continue
        m = _BULLET.match(line)
        assert m, f"unparsed vector line in {name}: {line!r}"
        s = m["tt"]
        if m["pre"]:
            s = chr(int(m["pre"], 16)) + s
        if m["post"]:
            s = s + chr(int(m["post"], 16))
        if section == "valid_strings":
            vectors.valid_strings.append(s)
        elif section == "valid_addresses":
            assert m["hex"] is not None, line
            vectors.valid_addresses.append((s, m["hex"]))
        else:
            assert m["reason"] is not None, line
            getattr(vectors, section).append((s, m["reason"].strip()))
    return vectors


BIP173 = load_vectors("bip173-vectors.txt")
BIP350 = load_vectors("bip350-vectors.txt")


def _counts(v: BipVectors) -> tuple[int, int, int, int]:
    return (
        len(v.valid_strings),
        len(v.invalid_strings),
        len(v.valid_addresses),
        len(v.invalid_addresses),
    )


def test_vector_files_fully_parsed() -> None:
    # Counts as published in the BIPs: guards the parser, not the data.
    counts = _counts
    assert counts(BIP173) == (7, 12, 6, 10)
    assert counts(BIP350) == (7, 14, 8, 15)


# BIP reason text (lowercase prefix) -> substring our error message must contain
_REASONS = [
    ("hrp character out of range", "hrp out of range"),
    ("overall max length exceeded", "too long"),
    ("no separator character", "no separator"),
    ("empty hrp", "empty hrp"),
    ("invalid data character", "invalid character"),
    ("invalid character in checksum", "invalid character"),
    ("too short checksum", "checksum too short"),
    ("checksum calculated with uppercase form of hrp", "invalid checksum"),
    ("invalid human-readable part", "wrong network"),
    ("invalid checksum", "invalid checksum"),
    ("invalid witness version", "invalid witness version"),
    ("invalid program length for witness version 0", "for witness version 0"),
    ("invalid program length", "invalid program length"),
    ("mixed case", "mixed case"),
    ("zero padding of more than 4 bits", "invalid padding"),
    ("non-zero padding", "invalid padding"),
    ("empty data section", "empty data section"),
]


def _expected_reason(bip_reason: str) -> str:
    low = bip_reason.lower()
    for prefix, ours in _REASONS:
        if low.startswith(prefix):
            return ours
    raise AssertionError(f"no expected message for BIP reason {bip_reason!r}")


def _ids(items: list[tuple[str, str]]) -> list[str]:
    return [ascii(s) for s, _ in items]


# --------------------------------------------------------------------------
# bech32 / bech32m strings
# --------------------------------------------------------------------------

_VALID_STRINGS = [(s, Encoding.BECH32) for s in BIP173.valid_strings] + [
    (s, Encoding.BECH32M) for s in BIP350.valid_strings
]
_INVALID_STRINGS = BIP173.invalid_strings + BIP350.invalid_strings


@pytest.mark.parametrize(("s", "spec"), _VALID_STRINGS, ids=[ascii(s) for s, _ in _VALID_STRINGS])
def test_valid_bech32_strings(s: str, spec: Encoding) -> None:
    hrp, data, got_spec = bech32_decode(s)
    assert got_spec is spec
    assert bech32_encode(hrp, data, got_spec) == s.lower()


@pytest.mark.parametrize(("s", "reason"), _INVALID_STRINGS, ids=_ids(_INVALID_STRINGS))
def test_invalid_bech32_strings(s: str, reason: str) -> None:
    with pytest.raises(AddressError) as exc:
        bech32_decode(s)
    assert _expected_reason(reason) in str(exc.value)


# --------------------------------------------------------------------------
# segwit addresses
# --------------------------------------------------------------------------

_VALID_ADDRESSES = BIP173.valid_addresses + BIP350.valid_addresses
# BIP173's v1+ vectors predate bech32m: BIP350 supersedes them with new strings,
# so under BIP350 rules the BIP173 v1+ strings are invalid (bech32 for v1+).
_VALID_NOW = [(a, h) for a, h in _VALID_ADDRESSES if a in dict(BIP350.valid_addresses)]
_SUPERSEDED = [(a, h) for a, h in _VALID_ADDRESSES if a not in dict(BIP350.valid_addresses)]
_INVALID_ADDRESSES = BIP173.invalid_addresses + BIP350.invalid_addresses


def _hrp_of(addr: str) -> str:
    return addr.lower().rpartition("1")[0]


_NETWORKS = {"bc": MAINNET, "tb": TESTNET, "bcrt": REGTEST}


@pytest.mark.parametrize(("addr", "script_hex"), _VALID_NOW, ids=_ids(_VALID_NOW))
def test_valid_segwit_addresses(addr: str, script_hex: str) -> None:
    hrp = _hrp_of(addr)
    witver, program = decode_segwit_address(hrp, addr)
    script = bytes.fromhex(script_hex)
    assert witness_script(witver, program) == script
    assert encode_segwit_address(hrp, witver, program) == addr.lower()
    prefixes = _NETWORKS[hrp]
    assert address_to_script(addr, prefixes) == script
    assert script_to_address(script, prefixes) == addr.lower()
    # the same address is foreign to every other network
    for other in _NETWORKS.values():
        if other is not prefixes:
            with pytest.raises(AddressError, match="wrong network"):
                decode_segwit_address(other.hrp, addr)
            with pytest.raises(AddressError, match="wrong network"):
                address_to_script(addr, other)


@pytest.mark.parametrize(("addr", "script_hex"), _SUPERSEDED, ids=_ids(_SUPERSEDED))
def test_bip173_v1plus_bech32_addresses_rejected_after_bip350(addr: str, script_hex: str) -> None:
    script = bytes.fromhex(script_hex)
    assert script[0] != 0  # only v1+ vectors were superseded
    # still a valid bech32 string carrying the stated witness program ...
    hrp, data, spec = bech32_decode(addr)
    assert spec is Encoding.BECH32
    assert witness_script(data[0], bytes(convertbits(data[1:], 5, 8, pad=False))) == script
    # ... but v1+ must now use bech32m
    with pytest.raises(AddressError, match="invalid checksum"):
        decode_segwit_address(hrp, addr)
    with pytest.raises(AddressError, match="invalid checksum"):
        address_to_script(addr, _NETWORKS[hrp])


@pytest.mark.parametrize(("addr", "reason"), _INVALID_ADDRESSES, ids=_ids(_INVALID_ADDRESSES))
def test_invalid_segwit_addresses(addr: str, reason: str) -> None:
    for hrp in ("bc", "tb"):
        with pytest.raises(AddressError):
            decode_segwit_address(hrp, addr)
    for prefixes in (MAINNET, TESTNET):
        with pytest.raises(AddressError):
            address_to_script(addr, prefixes)
    # with the network the address claims (or the nearest one), the reason is the BIP's
    hrp = "bc" if _hrp_of(addr) == "bc" else "tb"
    with pytest.raises(AddressError) as exc:
        decode_segwit_address(hrp, addr)
    assert _expected_reason(reason) in str(exc.value)


# --------------------------------------------------------------------------
# Base58 / Base58Check
# --------------------------------------------------------------------------

# Well-known example addresses (bitcoin wiki "Address") and the scriptPubKeys
# Bitcoin Core's validateaddress reports for them.
_KNOWN_P2PKH = "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2"
_KNOWN_HASH160 = "77bff20c60e522dfaa3350c39b030a5d004e839a"
_KNOWN_P2SH = "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy"
_KNOWN_P2SH_SCRIPT = "a914b472a266d0bd89c13706a4132ccfb16f7c3b9fcb87"


def test_known_p2pkh_address() -> None:
    h160 = bytes.fromhex(_KNOWN_HASH160)
    script = bytes.fromhex("76a914") + h160 + bytes.fromhex("88ac")
    assert b58check_decode(_KNOWN_P2PKH) == b"\x00" + h160
    assert address_to_script(_KNOWN_P2PKH, MAINNET) == script
    assert script_to_address(script, MAINNET) == _KNOWN_P2PKH
    with pytest.raises(AddressError, match="wrong network"):
        address_to_script(_KNOWN_P2PKH, TESTNET)


def test_known_p2sh_address() -> None:
    script = bytes.fromhex(_KNOWN_P2SH_SCRIPT)
    assert address_to_script(_KNOWN_P2SH, MAINNET) == script
    assert script_to_address(script, MAINNET) == _KNOWN_P2SH
    with pytest.raises(AddressError, match="wrong network"):
        address_to_script(_KNOWN_P2SH, REGTEST)


def test_p2sh_round_trip() -> None:
    h160 = bytes(range(20))
    script = bytes([0xA9, 0x14]) + h160 + bytes([0x87])
    for prefixes, lead in ((MAINNET, "3"), (TESTNET, "2")):
        addr = script_to_address(script, prefixes)
        assert addr is not None and addr.startswith(lead)
        assert address_to_script(addr, prefixes) == script


def test_base58check_bad_checksum_rejected() -> None:
    # change one character, keeping it in the alphabet
    last = _KNOWN_P2PKH[-1]
    tampered = _KNOWN_P2PKH[:-1] + ("3" if last != "3" else "4")
    with pytest.raises(AddressError, match="invalid checksum"):
        b58check_decode(tampered)
    with pytest.raises(AddressError, match="invalid checksum"):
        address_to_script(tampered, MAINNET)


def test_base58_rejects_bad_characters_and_short_input() -> None:
    for bad in ("0", "O", "I", "l", "1BvBMSEY+"):
        with pytest.raises(AddressError, match="invalid base58 character"):
            b58decode(bad)
    with pytest.raises(AddressError, match="too short"):
        b58check_decode("111")


def test_base58_leading_zeros() -> None:
    assert b58encode(b"") == ""
    assert b58encode(b"\x00\x00\x01") == "112"
    assert b58decode("112") == b"\x00\x00\x01"


def test_script_without_address_form() -> None:
    assert script_to_address(b"\x6a\x04abcd", MAINNET) is None  # OP_RETURN
    assert script_to_address(bytes([0x00, 0x10]) + bytes(16), MAINNET) is None  # v0, 16 bytes
    assert script_to_address(bytes([0x51, 0x01, 0x00]), MAINNET) is None  # v1, 1 byte


def test_convertbits_rejects_out_of_range_values() -> None:
    with pytest.raises(AddressError):
        convertbits([32], 5, 8)
    with pytest.raises(AddressError):
        convertbits([-1], 8, 5)


def test_encode_rejects_invalid_witness() -> None:
    with pytest.raises(AddressError, match="invalid witness version"):
        encode_segwit_address("bc", 17, bytes(20))
    with pytest.raises(AddressError, match="for witness version 0"):
        encode_segwit_address("bc", 0, bytes(21))
    with pytest.raises(AddressError, match="invalid program length"):
        encode_segwit_address("bc", 1, bytes(41))


# --------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------


@given(st.binary(max_size=100))
def test_b58check_round_trip(payload: bytes) -> None:
    assert b58check_decode(b58check_encode(payload)) == payload


@given(st.binary(max_size=100))
def test_b58_round_trip(data: bytes) -> None:
    assert b58decode(b58encode(data)) == data


_HRP_CHARS = "".join(chr(c) for c in range(33, 127) if not "A" <= chr(c) <= "Z")


@st.composite
def _witness(draw: st.DrawFn) -> tuple[int, bytes]:
    witver = draw(st.integers(0, 16))
    if witver == 0:
        size = draw(st.sampled_from([20, 32]))
    else:
        size = draw(st.integers(2, 40))
    return witver, draw(st.binary(min_size=size, max_size=size))


@given(
    st.one_of(st.sampled_from(["bc", "tb", "bcrt"]), st.text(_HRP_CHARS, min_size=1, max_size=18)),
    _witness(),
)
def test_segwit_round_trip(hrp: str, witness: tuple[int, bytes]) -> None:
    witver, program = witness
    addr = encode_segwit_address(hrp, witver, program)
    assert decode_segwit_address(hrp, addr) == (witver, program)
    assert decode_segwit_address(hrp, addr.upper()) == (witver, program)


@given(st.sampled_from([MAINNET, TESTNET, REGTEST]), _witness())
def test_script_address_round_trip(prefixes: AddressPrefixes, witness: tuple[int, bytes]) -> None:
    script = witness_script(*witness)
    addr = script_to_address(script, prefixes)
    assert addr is not None
    assert address_to_script(addr, prefixes) == script


@given(st.sampled_from([MAINNET, TESTNET]), st.binary(min_size=20, max_size=20), st.booleans())
def test_base58_script_round_trip(prefixes: AddressPrefixes, h160: bytes, p2sh: bool) -> None:
    if p2sh:
        script = bytes([0xA9, 0x14]) + h160 + bytes([0x87])
    else:
        script = bytes([0x76, 0xA9, 0x14]) + h160 + bytes([0x88, 0xAC])
    addr = script_to_address(script, prefixes)
    assert addr is not None
    assert address_to_script(addr, prefixes) == script


@given(st.text(max_size=100))
def test_bech32_decode_never_crashes(s: str) -> None:
    try:
        bech32_decode(s)
    except AddressError:
        pass
