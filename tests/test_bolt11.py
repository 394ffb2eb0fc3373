"""BOLT 11 invoices against the spec's examples (read at run time from
../shared/vectors/bolts/bolt11-vectors.md), plus reader rules and round trips."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vectors
from base_chain import crypto
from base_chain.address import (
    MAINNET,
    REGTEST,
    TESTNET,
    Encoding,
    bech32_decode,
    bech32_encode,
    convertbits,
)
from base_chain.crypto import PrivateKey, PublicKey
from base_chain.params import get_params
from htlc.invoice import (
    CURRENCY_PREFIXES,
    DEFAULT_EXPIRY,
    DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA,
    KNOWN_FEATURES,
    MAX_AMOUNT_MSAT,
    Fallback,
    Invoice,
    InvoiceError,
    RouteHintHop,
    decode_amount,
    decode_invoice,
    description_matches,
    encode_amount,
    encode_invoice,
    format_short_channel_id,
    invoice_prefix,
    is_expired,
    parse_short_channel_id,
)

BACKENDS = crypto.available_backends()
CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


@contextmanager
def backend(name: str) -> Iterator[None]:
    previous = crypto.get_backend().name
    crypto.set_backend(name)
    try:
        yield
    finally:
        crypto.set_backend(previous)


# --------------------------------------------------------------------------
# vector file parsing
# --------------------------------------------------------------------------

TEXT = vectors.text("bolts", "bolt11-vectors.md")
_VALID_TEXT, _INVALID_TEXT = TEXT.split("\n# Examples of Invalid Invoices\n")


def _one(pattern: str, text: str) -> str:
    m = re.search(pattern, text)
    assert m is not None, f"vector file: {pattern!r} not found"
    return m.group(1)


PRIV_KEY = PrivateKey(bytes.fromhex(_one(r"`priv_key`=`([0-9a-f]{64})`", TEXT)))
DEFAULT_SECRET = bytes.fromhex(_one(r"`payment_secret`=`([0-9a-f]{64})`", TEXT))
UNITS_MSAT_NUM = {"milli": 10**8, "micro": 10**5, "nano": 10**2}  # pico: /10
NETWORKS = {"mainnet": MAINNET, "testnet": TESTNET}


@dataclass
class Case:
    title: str
    invoice: str
    body: str


def _cases(text: str) -> list[Case]:
    heads = list(re.finditer(r"^> #{1,3} (.+)$", text, re.M))
    out = []
    for i, h in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        body = text[h.end() : end]
        lines = [ln.removeprefix(">").strip() for ln in body.splitlines()]
        invoice = next(ln for ln in lines if ln)
        out.append(Case(h.group(1).strip(), invoice, body))
    return out


VALID = _cases(_VALID_TEXT)
INVALID = _cases(_INVALID_TEXT)


@dataclass
class Expected:
    prefix: str = ""
    network: str = ""
    amount_msat: int | None = None
    timestamp: int = -1
    payment_hash: bytes = b""
    payment_secret: bytes = b""
    description: str | None = None
    description_hash: bytes | None = None
    expiry: int = DEFAULT_EXPIRY
    min_final_cltv_expiry_delta: int = DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA
    fallback_addresses: list[str] = field(default_factory=list)
    route_hints: list[list[tuple[str, str, int, int, int]]] = field(default_factory=list)
    feature_bits: set[int] = field(default_factory=set)
    payment_metadata: bytes | None = None
    signature: bytes | None = None  # r || s || recovery flag, where stated
    sighash: bytes | None = None
    preimage: bytes | None = None


def _blocks(body: str) -> list[tuple[str, str, str]]:
    """Top-level breakdown bullets: (token, description, whole block text)."""
    out: list[tuple[str, str, str]] = []
    for m in re.finditer(r"^\* `([^`]+)`: (.*(?:\n(?!\* ).*)*)", body, re.M):
        first = m.group(2).split("\n", 1)[0]
        out.append((m.group(1), first, m.group(2)))
    return out


def _expected_cases() -> list[tuple[Case, Expected]]:
    out: list[tuple[Case, Expected]] = []
    last: dict[str, object] = {}  # "`p`: payment hash..." = the usual value, first stated
    for case in VALID:
        blocks = _blocks(case.body)
        if not blocks:  # "Same, but all upper case.": same as the previous example
            assert out, case.title
            out.append((case, out[-1][1]))
            continue
        e = Expected(payment_secret=DEFAULT_SECRET)
        for token, desc, block in blocks:
            if desc.startswith("prefix"):
                e.prefix = token
                e.network = _one(r"Lightning on [Bb]itcoin (\w+)", desc)
            elif desc.startswith("amount"):
                n, unit = _one(r"amount \((\d+ \w+)-bitcoin", desc).split()
                if unit == "pico":
                    assert int(n) % 10 == 0
                    e.amount_msat = int(n) // 10
                    assert e.amount_msat == int(_one(r"= (\d+) milli satoshi", desc))
                else:
                    e.amount_msat = int(n) * UNITS_MSAT_NUM[unit]
            elif desc.startswith("timestamp"):
                e.timestamp = int(_one(r"timestamp \((\d+)\)", desc))
            elif len(token) == 1 and token in CHARSET:
                if "(ignored)" in block or desc.startswith("unknown field"):
                    continue  # the reader skips these
                _field(token, block, case, e, last)
        sig = re.search(r"`([0-9a-f]{128})` hex of signature data", case.body)
        if sig:
            flag = int(_one(r"`(\d)` \(int\) recovery flag", case.body))
            e.signature = bytes.fromhex(sig.group(1)) + bytes([flag])
            e.preimage = bytes.fromhex(_one(r"`([0-9a-f]+)` hex of data for signing", case.body))
            e.sighash = bytes.fromhex(_one(r"`([0-9a-f]{64})` hex of SHA256", case.body))
        last["previous 9"] = e.feature_bits
        out.append((case, e))
    return out


def _field(letter: str, block: str, case: Case, e: Expected, last: dict[str, object]) -> None:
    hex64 = re.search(r"(?:0x)?\b([0-9a-f]{64})\b", block)
    if letter == "p":
        usual = last.get("p")
        e.payment_hash = bytes.fromhex(hex64.group(1)) if hex64 else usual  # type: ignore[assignment]
        last.setdefault("p", e.payment_hash)
    elif letter == "s":
        if hex64:
            e.payment_secret = bytes.fromhex(hex64.group(1))
    elif letter == "d":
        e.description = _one(r"'(.*)'", block).replace('\\"', '"')
    elif letter == "h":
        m = re.search(r"SHA256 of '(.*)'\s+\(SHA256 hex: `([0-9a-f]{64})`\)", block)
        if m:
            assert hashlib.sha256(m.group(1).encode()).hexdigest() == m.group(2)
            last.setdefault("h", bytes.fromhex(m.group(2)))
        e.description_hash = last["h"]  # type: ignore[assignment]
    elif letter == "x":
        e.expiry = int(_one(r"(\d+) seconds", block))
    elif letter == "c":
        e.min_final_cltv_expiry_delta = int(_one(r"min_final_cltv_expiry_delta = (\d+)", block))
    elif letter == "f":
        e.fallback_addresses.append(_one(r"address (\w+)", case.title))
    elif letter == "r":
        pubkeys = re.findall(r"pubkey:?\s*`?([0-9a-f]{66})", block)
        scids = re.findall(r"short_channel_id`?:?\s*(\d+x\d+x\d+)", block)
        base = re.findall(r"fee_base_msat`?\s*[:=]\s*(\d+)", block)
        prop = re.findall(r"fee_proportional_millionths`?\s*[:=]\s*(\d+)", block)
        cltv = re.findall(r"cltv_expiry_delta`?\s*[:=]\s*(\d+)", block)
        assert len(pubkeys) == len(scids) == len(base) == len(prop) == len(cltv) > 0
        e.route_hints.append(
            [(pk, sc, int(b), int(p), int(c))
             for pk, sc, b, p, c in zip(pubkeys, scids, base, prop, cltv)]
        )
    elif letter == "9":
        sums = re.search(r"= (\d+(?: \+ \d+)+)", block)
        binary = re.search(r": b([01]+)\s*$", block, re.M)
        listed = re.search(r"features ((?:\d+(?:, | and )?)+)", case.title)
        if sums:
            bits = {int(x) for x in sums.group(1).split(" + ")}
        elif binary:
            bits = {i for i, c in enumerate(reversed(binary.group(1))) if c == "1"}
        elif listed:
            bits = {int(x) for x in re.findall(r"\d+", listed.group(1))}
        elif case.title.startswith("Same") and "b" in block:
            bits = last["previous 9"]  # type: ignore[assignment]
        else:
            bits = last["9"]  # type: ignore[assignment]  # "`9`: features..." = the usual value
        words = re.search(r"^  \* `([a-z0-9]+)`: \[?b", block, re.M)
        if words:  # the field's own characters say the same as the prose
            value = 0
            for ch in words.group(1):
                value = value << 5 | CHARSET.index(ch)
            assert bits == {i for i in range(value.bit_length()) if value >> i & 1}, case.title
        e.feature_bits = set(bits)
        last.setdefault("9", e.feature_bits)
    elif letter == "m":
        e.payment_metadata = bytes.fromhex(_one(r"0x([0-9a-f]+)", block))
    else:
        raise AssertionError(f"{case.title}: unexpected field {letter!r} in the breakdown")


EXPECTED = _expected_cases()
PAYEE = bytes.fromhex(_one(r"to me @([0-9a-f]{66})", VALID[0].title))
HIGH_S = crypto.N // 2


def _is_high_s(e: Expected) -> bool:
    return e.signature is not None and int.from_bytes(e.signature[32:64], "big") > HIGH_S


# --------------------------------------------------------------------------
# the spec's examples
# --------------------------------------------------------------------------


def test_vector_counts() -> None:
    assert len(VALID) == 16
    assert len(INVALID) == 10
    assert PRIV_KEY.public_key().to_bytes() == PAYEE
    assert sum(1 for _, e in EXPECTED if e.signature is not None) == 11
    assert sum(1 for _, e in EXPECTED if _is_high_s(e)) == 1


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize(("case", "exp"), EXPECTED, ids=[c.title[:50] for c, _ in EXPECTED])
def test_valid_vector_decodes_to_the_stated_fields(case: Case, exp: Expected, name: str) -> None:
    with backend(name):
        inv = decode_invoice(case.invoice)
    assert inv.prefix == exp.prefix
    assert inv.amount_msat == exp.amount_msat
    assert inv.timestamp == exp.timestamp
    assert inv.payment_hash == exp.payment_hash
    assert inv.payment_secret == exp.payment_secret
    assert inv.description == exp.description
    assert inv.description_hash == exp.description_hash
    assert inv.expiry == exp.expiry
    assert inv.min_final_cltv_expiry_delta == exp.min_final_cltv_expiry_delta
    assert inv.fallback_addresses(NETWORKS[exp.network]) == exp.fallback_addresses
    assert inv.fallback_addresses() == exp.fallback_addresses  # the prefix's own network
    got_hints = [
        [(h.pubkey.hex(), h.short_channel_id_str, h.fee_base_msat,
          h.fee_proportional_millionths, h.cltv_expiry_delta) for h in hint]
        for hint in inv.route_hints
    ]
    assert got_hints == exp.route_hints
    for hint in inv.route_hints:
        for hop in hint:
            assert parse_short_channel_id(hop.short_channel_id_str) == hop.short_channel_id
    assert set(inv.feature_bits) == exp.feature_bits
    assert inv.payment_metadata == exp.payment_metadata
    assert not inv.explicit_payee
    if exp.signature is not None:
        assert exp.preimage is not None and exp.sighash is not None
        assert inv.signature == exp.signature
        assert hashlib.sha256(exp.preimage).digest() == exp.sighash
        # our own view of the signed data is the stated preimage
        hrp, words, _ = bech32_decode(case.invoice, max_length=None)
        assert hrp.encode() + bytes(convertbits(words[:-104], 5, 8)) == exp.preimage
        recovered = PublicKey.recover(exp.signature[:64], exp.signature[64], exp.sighash)
        assert inv.payee == recovered.to_bytes()
    if _is_high_s(exp):
        # The example negates s but keeps the recovery flag, so recovery (which
        # must accept high-S) yields another key than the examples' priv_key.
        assert inv.payee != PAYEE
    else:
        assert inv.payee == PAYEE


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize(("case", "exp"), EXPECTED, ids=[c.title[:50] for c, _ in EXPECTED])
def test_valid_vector_reencodes_identically(case: Case, exp: Expected, name: str) -> None:
    with backend(name):
        inv = decode_invoice(case.invoice)
        if _is_high_s(exp):
            # Our signer is RFC 6979 low-S: re-signing gives the low-S twin.
            again = encode_invoice(replace(inv, payee=None), PRIV_KEY)
            twin = decode_invoice(again)
            assert exp.signature is not None and twin.signature is not None
            assert twin.signature[:32] == exp.signature[:32]
            assert int.from_bytes(twin.signature[32:64], "big") == crypto.N - int.from_bytes(
                exp.signature[32:64], "big"
            )
            assert again in [c.invoice for c in VALID]
            return
        assert encode_invoice(inv, PRIV_KEY) == case.invoice.lower()


def _invalid_reason(title: str) -> str:
    reasons = {
        "invalid unknown feature 100": "unknown required feature bit 100",
        "checksum is invalid": "invalid checksum",
        "(no 1)": "no separator",
        "(mixed case)": "mixed case",
        "not recoverable": "signature is not recoverable",
        "too short": "too short",
        "Invalid multiplier": "invalid multiplier",
        "sub-millisatoshi precision": "sub-millisatoshi",
        "Missing required `s` field": "missing required 's' field",
        "(high-S) with 'n' field": "high-s",
    }
    hits = [reason for key, reason in reasons.items() if key in title]
    assert len(hits) == 1, f"no reason known for invalid example {title!r}"
    return hits[0]


def test_every_invalid_example_has_a_stated_reason() -> None:
    assert len({_invalid_reason(c.title) for c in INVALID}) == len(INVALID)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("case", INVALID, ids=[c.title[:50] for c in INVALID])
def test_invalid_vector_is_rejected_with_its_reason(case: Case, name: str) -> None:
    with backend(name), pytest.raises(InvoiceError) as info:
        decode_invoice(case.invoice)
    assert _invalid_reason(case.title) in info.value.reason.lower()


# --------------------------------------------------------------------------
# amounts, prefixes, helpers
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "msat"),
    [("1", 100_000_000_000), ("20m", 2_000_000_000), ("2500u", 250_000_000),
     ("10n", 1_000), ("9678785340p", 967_878_534), ("10p", 1), ("15u", 1_500_000)],
)
def test_amount_codec(text: str, msat: int) -> None:
    assert decode_amount(text) == msat
    assert encode_amount(msat) == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [("", "empty"), ("0", "leading zero"), ("010m", "leading zero"), ("0m", "leading zero"),
     ("m", "no digits"), ("25x", "invalid multiplier"), ("2.5m", "non-digit"), ("1a0m", "non-digit"),
     ("11p", "sub-millisatoshi"), ("184467440737095516160p", "overflow"),
     ("184467441", "overflow"), ("9" * 5000, "overflow"), ("١٢m", "non-digit")],
)
def test_amount_rejections(text: str, reason: str) -> None:
    with pytest.raises(InvoiceError, match=reason):
        decode_amount(text)


def test_amount_bounds() -> None:
    assert decode_amount("184467440737095516150p") == MAX_AMOUNT_MSAT
    assert encode_amount(MAX_AMOUNT_MSAT) == "184467440737095516150p"
    for bad in (0, -1, MAX_AMOUNT_MSAT + 1):
        with pytest.raises(InvoiceError):
            encode_amount(bad)


@given(st.integers(min_value=1, max_value=MAX_AMOUNT_MSAT))
def test_amount_round_trip(msat: int) -> None:
    assert decode_amount(encode_amount(msat)) == msat


def test_currency_prefixes_from_chain_params() -> None:
    assert invoice_prefix(get_params("regtest")) == "lnbcrt"
    assert invoice_prefix(get_params("alpha")) == "lnalpha"
    assert invoice_prefix(get_params("beta")) == "lnbeta"
    assert CURRENCY_PREFIXES["lnbc"] == MAINNET
    assert CURRENCY_PREFIXES["lntb"] == TESTNET
    assert CURRENCY_PREFIXES["lntbs"].hrp == "tb"
    assert CURRENCY_PREFIXES["lnbcrt"] == REGTEST
    assert CURRENCY_PREFIXES["lnalpha"] == get_params("alpha").address_prefixes


def test_short_channel_id_text() -> None:
    scid = parse_short_channel_id("589390x3312x1")
    assert scid == (589390 << 40) | (3312 << 16) | 1
    assert format_short_channel_id(scid) == "589390x3312x1"
    for bad in ("1x2", "1x2x3x4", "16777216x0x0", "0x0x65536", "ax1x1"):
        with pytest.raises(InvoiceError):
            parse_short_channel_id(bad)


# --------------------------------------------------------------------------
# writing and reading our own invoices
# --------------------------------------------------------------------------

KEY = PrivateKey(0x1234567890ABCDEF)
NODE = KEY.public_key().to_bytes()
HOP_KEYS = [PrivateKey(k).public_key().to_bytes() for k in (3, 5, 7)]


def _invoice(**kw: object) -> Invoice:
    base: dict[str, object] = dict(
        prefix="lnbcrt",
        amount_msat=123_456,
        timestamp=1_700_000_000,
        payment_hash=bytes(range(32)),
        payment_secret=b"\x11" * 32,
        description="coffee",
    )
    base.update(kw)
    return Invoice(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("chain", "start"), [("regtest", "lnbcrt"), ("alpha", "lnalpha"), ("beta", "lnbeta")]
)
def test_chain_invoices_use_their_prefix(chain: str, start: str) -> None:
    params = get_params(chain)
    inv = _invoice(prefix=invoice_prefix(params), amount_msat=None)
    s = encode_invoice(inv, KEY)
    assert s.startswith(start + "1")
    assert decode_invoice(s, expected_prefix=invoice_prefix(params)).prefix == start
    assert decode_invoice(s, expected_prefix=params.bolt11_prefix).prefix == start
    other = "lnbc" if chain != "regtest" else "lnalpha"
    with pytest.raises(InvoiceError, match="wrong currency prefix"):
        decode_invoice(s, expected_prefix=other)


def test_regtest_invoice_with_amount() -> None:
    s = encode_invoice(_invoice(amount_msat=2_500_000_000), KEY)
    assert s.startswith("lnbcrt25m1")
    # regtest is not mistaken for mainnet
    with pytest.raises(InvoiceError, match="wrong currency prefix"):
        decode_invoice(s, expected_prefix="lnbc")


def test_unknown_prefix_rejected() -> None:
    s = encode_invoice(_invoice(prefix="lnxyz"), KEY)
    with pytest.raises(InvoiceError, match="unknown currency prefix"):
        decode_invoice(s)
    assert decode_invoice(s, expected_prefix="lnxyz").prefix == "lnxyz"


def test_canonical_encoding_and_explicit_payee() -> None:
    inv = _invoice(
        description=None, description_hash=b"\x22" * 32, expiry=60, min_final_cltv_expiry_delta=40,
        fallbacks=(Fallback.from_address("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080", REGTEST),),
        route_hints=((RouteHintHop(HOP_KEYS[0], parse_short_channel_id("1x2x3"), 1000, 2500, 40),),),
        features=(1 << 8) | (1 << 14) | (1 << 17), payment_metadata=b"\x01\xfa", explicit_payee=True,
    )
    s = encode_invoice(inv, KEY)
    dec = decode_invoice(s)
    assert dec.explicit_payee and dec.payee == NODE
    assert dec == replace(inv, payee=NODE, signature=dec.signature)
    assert dec.fallback_addresses() == ["bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"]
    assert description_matches(_invoice(), "coffee") and not description_matches(_invoice(), "tea")
    assert not description_matches(dec, "anything")


def test_changed_invoice_is_written_canonically() -> None:
    high_s = next(c for c, e in EXPECTED if _is_high_s(e))
    dec = decode_invoice(high_s.invoice)  # recovered payee != PRIV_KEY
    s0 = encode_invoice(replace(dec, payee=None), PRIV_KEY)
    dec0 = decode_invoice(s0)
    changed = replace(dec0, amount_msat=5_000, expiry=99)
    s1 = encode_invoice(changed, PRIV_KEY)
    dec1 = decode_invoice(s1)
    assert dec1 == replace(changed, signature=dec1.signature)
    # an unknown field survives re-encoding only while the rest is unchanged
    ignored = decode_invoice(next(c.invoice for c in VALID if "must be ignored" in c.title))
    assert len(ignored.raw_fields) > 5
    stripped = encode_invoice(replace(ignored, description="other"), PRIV_KEY)
    assert [f.letter for f in decode_invoice(stripped).raw_fields] == ["p", "s", "d", "c", "9"]


def test_payee_must_match_signing_key() -> None:
    with pytest.raises(InvoiceError, match="payee does not match"):
        encode_invoice(_invoice(payee=HOP_KEYS[0]), KEY)


def test_is_expired() -> None:
    inv = _invoice(timestamp=1000, expiry=60)
    assert inv.expires_at == 1060
    assert not is_expired(inv, 1000)
    assert not is_expired(inv, 1060)
    assert is_expired(inv, 1061)
    assert is_expired(_invoice(timestamp=0), DEFAULT_EXPIRY + 1)


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        (dict(description=None), "exactly one of"),
        (dict(description_hash=b"\x00" * 32), "exactly one of"),
        (dict(payment_hash=b"\x00" * 31), "payment_hash"),
        (dict(amount_msat=0), "amount_msat"),
        (dict(timestamp=1 << 35), "timestamp"),
        (dict(description="x" * 640), "too long"),
        (dict(payee=b"\x02" + b"\x00" * 32), "not a point"),
        (dict(prefix="bc"), "invalid prefix"),
        (dict(route_hints=((),)), "hops"),
    ],
)
def test_invoice_construction_rejects(kw: dict[str, object], reason: str) -> None:
    with pytest.raises(InvoiceError, match=reason):
        _invoice(**kw)


# --------------------------------------------------------------------------
# reader rules on hand-built data parts
# --------------------------------------------------------------------------

P = ("p", tuple(convertbits(bytes(range(32)), 8, 5)))
S = ("s", tuple(convertbits(b"\x11" * 32, 8, 5)))
D = ("d", tuple(convertbits(b"coffee", 8, 5)))
H = ("h", tuple(convertbits(b"\x22" * 32, 8, 5)))


def _raw(fields: list[tuple[str, tuple[int, ...]]], *, key: PrivateKey = KEY, hrp: str = "lnbcrt",
         high_s: bool = False, spec: Encoding = Encoding.BECH32) -> str:
    """Sign arbitrary tagged fields (bypassing the encoder's checks)."""
    data = list(convertbits((1_700_000_000).to_bytes(5, "big"), 8, 5))[-7:]
    for letter, words in fields:
        data += [CHARSET.index(letter), len(words) >> 5, len(words) & 31, *words]
    msg = hashlib.sha256(hrp.encode() + bytes(convertbits(data, 5, 8))).digest()
    sig, recid = key.sign_recoverable(msg)
    if high_s:
        s = crypto.N - int.from_bytes(sig[32:], "big")
        sig, recid = sig[:32] + s.to_bytes(32, "big"), recid ^ 1
    data += convertbits(sig + bytes([recid]), 8, 5)
    return bech32_encode(hrp, data, spec, max_length=None)


def _words(n: int, length: int) -> tuple[int, ...]:
    return tuple((n >> (5 * i)) & 31 for i in reversed(range(length)))


def test_raw_helper_matches_encoder() -> None:
    ours = decode_invoice(encode_invoice(_invoice(amount_msat=None), KEY))
    hand = decode_invoice(_raw([P, S, D]))
    assert replace(hand, signature=None) == replace(ours, signature=None)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ([S, D], "missing required 'p'"),
        ([P, D], "missing required 's'"),
        ([P, S], "neither a 'd' nor an 'h'"),
        ([P, S, D, H], "both a 'd' and an 'h'"),
        ([P, S, D, ("x", (0, 1))], "non-minimal 'x'"),
        ([P, S, D, ("c", (0, 9))], "non-minimal 'c'"),
        ([P, S, D, ("9", (0, 16, 8, 0))], "non-minimal '9'"),
        ([P, S, D, ("9", _words(1 << 20, 5))], "unknown required feature bit 20"),
        ([P, S, D, ("9", _words((1 << 16) | (1 << 8), 4))], "missing feature dependency"),
        ([P, S, ("d", tuple(convertbits(b"\xff\xfe", 8, 5)))], "not valid utf-8"),
        ([P, S, D, ("r", tuple(convertbits(b"\x02" * 50, 8, 5)))], "multiple of 51"),
        ([P, S, D, ("f", (17, *convertbits(b"\x00" * 19, 8, 5)))], "20 bytes"),
        ([P, S, D, ("f", ())], "empty"),
        ([P, S, D, ("n", tuple(convertbits(b"\x05" * 33, 8, 5)))], "n field"),
        ([P, S, D, ("p", (1,) * 52)], "non-zero padding"),
    ],
)
def test_reader_rejects(fields: list[tuple[str, tuple[int, ...]]], reason: str) -> None:
    with pytest.raises(InvoiceError) as info:
        decode_invoice(_raw(fields))
    assert reason in info.value.reason.lower()


def test_reader_skips_unknown_and_wrong_length_fields() -> None:
    inv = decode_invoice(_raw([
        ("p", (0,) * 51), P, ("p", (3,) * 52 + (0,)), ("s", (0,) * 53), S, D,
        ("h", (0,) * 10), ("n", (0,) * 52), ("2", (1, 2, 3)), ("f", (19, 1, 2)),
        ("9", _words((1 << 101) | (1 << 14), 21)), P,
    ]))
    assert inv.payment_hash == bytes(range(32))  # the first p of the right length
    assert inv.description == "coffee" and inv.description_hash is None
    assert inv.fallbacks == () and not inv.explicit_payee and inv.payee == NODE
    assert inv.feature_bits == (14, 101)  # unknown odd bit ignored (kept)
    assert encode_invoice(inv, KEY) == _raw([
        ("p", (0,) * 51), P, ("p", (3,) * 52 + (0,)), ("s", (0,) * 53), S, D,
        ("h", (0,) * 10), ("n", (0,) * 52), ("2", (1, 2, 3)), ("f", (19, 1, 2)),
        ("9", _words((1 << 101) | (1 << 14), 21)), P,
    ])


def test_known_features_parameter() -> None:
    s = _raw([P, S, D, ("9", _words(1 << 20, 5))])
    assert decode_invoice(s, known_features=KNOWN_FEATURES | {21}).feature_bits == (20,)


def test_signature_rules() -> None:
    n_field = ("n", tuple(convertbits(NODE, 8, 5)))
    ok = decode_invoice(_raw([P, S, D, n_field]))
    assert ok.explicit_payee and ok.payee == NODE
    # recovery accepts high-S; an explicit n requires low-S
    assert decode_invoice(_raw([P, S, D], high_s=True)).payee == NODE
    with pytest.raises(InvoiceError, match="high-S"):
        decode_invoice(_raw([P, S, D, n_field], high_s=True))
    with pytest.raises(InvoiceError, match="does not verify"):
        decode_invoice(_raw([P, S, D, n_field], key=PrivateKey(99)))
    with pytest.raises(InvoiceError, match="bech32m"):
        decode_invoice(_raw([P, S, D], spec=Encoding.BECH32M))
    with pytest.raises(InvoiceError, match="does not start with 'ln'"):
        decode_invoice(_raw([P, S, D], hrp="bcrt"))
    with pytest.raises(InvoiceError, match="overruns"):
        s = _raw([P, S, D])
        hrp, words, _ = bech32_decode(s, max_length=None)
        bad = words[:7] + [1, 31, 31] + words[7:]  # a 'p' field claiming 1023 words
        decode_invoice(bech32_encode(hrp, bad, Encoding.BECH32, max_length=None))


# --------------------------------------------------------------------------
# property: random invoices round-trip, identically with both backends
# --------------------------------------------------------------------------

SIGNERS = [PrivateKey(k) for k in (1, 0xC0FFEE, crypto.N - 1)]
u32 = st.integers(0, 2**32 - 1)
hops = st.builds(
    RouteHintHop, pubkey=st.sampled_from(HOP_KEYS), short_channel_id=st.integers(0, 2**64 - 1),
    fee_base_msat=u32, fee_proportional_millionths=u32, cltv_expiry_delta=st.integers(0, 2**16 - 1),
)
fallbacks = st.one_of(
    st.builds(Fallback, st.sampled_from([17, 18]), st.binary(min_size=20, max_size=20)),
    st.builds(Fallback, st.just(0),
              st.sampled_from([20, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n))),
    st.builds(Fallback, st.integers(1, 16), st.binary(min_size=2, max_size=40)),
)


@st.composite
def features(draw: st.DrawFn) -> int:
    bits = 0
    for even in sorted(KNOWN_FEATURES):
        bits |= draw(st.sampled_from([0, 1, 2, 3])) << even
    if bits & (3 << 16):
        bits |= 1 << 15
    for odd in draw(st.lists(st.integers(0, 300).map(lambda i: 2 * i + 1), max_size=4)):
        if odd - 1 not in KNOWN_FEATURES:
            bits |= 1 << odd
    return bits


@st.composite
def invoices(draw: st.DrawFn) -> Invoice:
    text = st.text(st.characters(codec="utf-8"), max_size=60)
    desc, desc_hash = draw(st.one_of(text.map(lambda t: (t, None)),
                                     st.binary(min_size=32, max_size=32).map(lambda h: (None, h))))
    return Invoice(
        prefix=draw(st.sampled_from(sorted(CURRENCY_PREFIXES))),
        amount_msat=draw(st.one_of(st.none(), st.integers(1, MAX_AMOUNT_MSAT),
                                   st.integers(1, 10**6).map(lambda n: n * 100_000))),
        timestamp=draw(st.integers(0, 2**35 - 1)),
        payment_hash=draw(st.binary(min_size=32, max_size=32)),
        payment_secret=draw(st.binary(min_size=32, max_size=32)),
        description=desc,
        description_hash=desc_hash,
        expiry=draw(st.one_of(st.just(DEFAULT_EXPIRY), st.integers(0, 2**64 - 1))),
        min_final_cltv_expiry_delta=draw(st.integers(0, 2**32)),
        fallbacks=tuple(draw(st.lists(fallbacks, max_size=2))),
        route_hints=tuple(
            draw(st.lists(st.lists(hops, min_size=1, max_size=3).map(tuple), max_size=2))
        ),
        features=draw(features()),
        payment_metadata=draw(st.one_of(st.none(), st.binary(max_size=40))),
        explicit_payee=draw(st.booleans()),
    )


@settings(max_examples=60, deadline=None)
@given(inv=invoices(), key=st.sampled_from(SIGNERS))
def test_round_trip(inv: Invoice, key: PrivateKey) -> None:
    strings = set()
    for name in BACKENDS:
        with backend(name):
            s = encode_invoice(inv, key)
            dec = decode_invoice(s)
            assert dec == replace(inv, payee=key.public_key().to_bytes(), signature=dec.signature)
            assert encode_invoice(dec, key) == s
            assert decode_invoice(s.upper()) == dec
            strings.add(s)
    assert len(strings) == 1
