"""BOLT 11 payment requests (invoices): the :class:`Invoice` value, its encoder and its decoder.

Pure functions over strings and bytes: no clock (``now`` is a parameter of
:func:`is_expired`), no I/O. Every rejection raises :class:`InvoiceError`, whose
``reason`` says what is wrong.

An invoice is bech32 (without the 90-character limit): the hrp is the ``prefix``
(``"ln"`` + currency, e.g. ``lnbc``, ``lnbcrt``, ``lnalpha``) and an optional
amount; the data is a 35-bit timestamp, tagged fields (5-bit type, 10-bit length,
data) and a 65-byte recoverable signature of sha256(hrp || data before it).

Reader rules applied by :func:`decode_invoice` (BOLT 11 "A reader"):

- bech32 checksum (not bech32m), no mixed case, a known (or the expected) prefix;
- the amount: digits then an optional multiplier ``m u n p``, no leading zero, a
  ``p`` amount ending in 0 (no sub-millisatoshi), at most 2**64-1 msat;
- unknown tagged fields, ``f`` fields of unknown version (19..31), and ``p``,
  ``h``, ``s``, ``n`` fields whose length is not 52, 52, 52, 53 are skipped (the
  spec's "including fields which must be ignored" example; the spec text since
  2025 says to fail instead, lnd and LDK skip) -- they are kept in
  ``Invoice.raw_fields`` so re-encoding reproduces the string;
- exactly one of ``d`` / ``h``; a ``p`` and an ``s`` field are required; the
  first field of a kind wins;
- non-minimal ``x``, ``c`` and ``9`` fields (a leading zero word) are invalid;
- unknown even feature bits fail, unknown odd bits are ignored, and known
  dependencies (``basic_mpp`` needs ``payment_secret``) must be set;
- with an ``n`` field the signature must be low-S and verify against ``n``;
  without one the payee is recovered, accepting high-S and low-S.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from base_chain.address import (
    MAINNET,
    TESTNET,
    AddressError,
    AddressPrefixes,
    Encoding,
    address_to_script,
    bech32_decode,
    bech32_encode,
    convertbits,
    p2pkh_script,
    p2sh_script,
    script_to_address,
    witness_script,
)
from base_chain.crypto import N as SECP256K1_ORDER
from base_chain.crypto import PrivateKey, PublicKey
from base_chain.hashes import sha256
from base_chain.params import ChainParams, chain_names, get_params

__all__ = [
    "CURRENCY_PREFIXES",
    "DEFAULT_EXPIRY",
    "DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA",
    "KNOWN_FEATURES",
    "MAX_AMOUNT_MSAT",
    "Fallback",
    "Invoice",
    "InvoiceError",
    "RouteHintHop",
    "TaggedField",
    "decode_amount",
    "decode_invoice",
    "description_matches",
    "encode_amount",
    "encode_invoice",
    "format_short_channel_id",
    "invoice_prefix",
    "is_expired",
    "parse_short_channel_id",
]


class InvoiceError(ValueError):
    """A payment request was rejected (or cannot be written); ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------
# constants
# --------------------------------------------------------------------------

DEFAULT_EXPIRY = 3600
"""Seconds an invoice is valid when it has no ``x`` field."""
DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA = 18
"""The final CLTV delta a payer uses when the invoice has no ``c`` field."""
MAX_AMOUNT_MSAT = (1 << 64) - 1
"""Amounts are u64 millisatoshis on the wire; anything larger is an overflow."""
MAX_FIELD_VALUE = (1 << 64) - 1
"""Bound on ``x`` (expiry) and ``c`` (min_final_cltv_expiry_delta)."""

MSAT_PER_BTC = 100_000_000_000
_MULTIPLIER_MSAT = {"m": 100_000_000, "u": 100_000, "n": 100}  # 'p' is 1/10 msat

_MAX_FIELD_WORDS = 1023  # 10-bit data_length
_MAX_FIELD_BYTES = _MAX_FIELD_WORDS * 5 // 8  # 639
_TIMESTAMP_WORDS = 7  # 35 bits
_SIGNATURE_WORDS = 104  # 520 bits: r || s || recovery id
_HOP = struct.Struct(">QIIH")  # after the 33-byte pubkey
_HOP_BYTES = 33 + _HOP.size
_MAX_HOPS_PER_HINT = _MAX_FIELD_BYTES // _HOP_BYTES  # 12

# tagged field types (the bech32 character in the comment)
TYPE_PAYMENT_HASH = 1  # p
TYPE_ROUTE_HINT = 3  # r
TYPE_FEATURES = 5  # 9
TYPE_EXPIRY = 6  # x
TYPE_FALLBACK = 9  # f
TYPE_DESCRIPTION = 13  # d
TYPE_PAYMENT_SECRET = 16  # s
TYPE_PAYEE = 19  # n
TYPE_DESCRIPTION_HASH = 23  # h
TYPE_MIN_FINAL_CLTV_EXPIRY_DELTA = 24  # c
TYPE_METADATA = 27  # m

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

KNOWN_FEATURES: frozenset[int] = frozenset({8, 14, 16, 48})
"""Invoice feature pairs this module understands, by their even bit: var_onion_optin,
payment_secret, basic_mpp, option_payment_metadata (BOLT 9, context ``9``).
A decoder fails on any other even bit; pass ``known_features`` to widen it."""

_FEATURE_DEPENDENCIES = ((16, "basic_mpp", 14, "payment_secret"),)  # (bit, name, needs, name)

# Bitcoin's own networks; signet shares testnet's address prefixes.
_BITCOIN_PREFIXES = {"lnbc": MAINNET, "lntb": TESTNET, "lntbs": TESTNET}


def invoice_prefix(params: ChainParams) -> str:
    """The invoice prefix of a chain: ``"ln"`` + its BOLT 11 currency prefix."""
    return "ln" + params.bolt11_prefix


def _build_prefix_map() -> Mapping[str, AddressPrefixes]:
    prefixes = dict(_BITCOIN_PREFIXES)
    for name in chain_names():
        params = get_params(name)
        prefixes[invoice_prefix(params)] = params.address_prefixes
    return MappingProxyType(prefixes)


CURRENCY_PREFIXES: Mapping[str, AddressPrefixes] = _build_prefix_map()
"""Invoice prefix -> the address prefixes fallbacks are rendered with: ``lnbc``,
``lntb``, ``lntbs`` and one per built-in chain (``lnbcrt``, ``lnalpha``, ``lnbeta``)."""


# --------------------------------------------------------------------------
# amounts
# --------------------------------------------------------------------------


def encode_amount(amount_msat: int) -> str:
    """The hrp amount for ``amount_msat``: the shortest form (largest multiplier that is exact)."""
    if not 0 < amount_msat <= MAX_AMOUNT_MSAT:
        raise InvoiceError(f"amount out of range: {amount_msat} msat (1 .. 2**64-1)")
    if amount_msat % MSAT_PER_BTC == 0:
        return str(amount_msat // MSAT_PER_BTC)
    for multiplier, factor in _MULTIPLIER_MSAT.items():
        if amount_msat % factor == 0:
            return f"{amount_msat // factor}{multiplier}"
    return f"{amount_msat * 10}p"


def decode_amount(amount: str) -> int:
    """Millisatoshis from an hrp amount such as ``2500u``, ``20m``, ``9678785340p`` or ``1``."""
    if not amount:
        raise InvoiceError("invalid amount: empty")
    multiplier = "" if amount[-1] in "0123456789" else amount[-1]
    digits = amount[:-1] if multiplier else amount
    if multiplier and multiplier not in "munp":
        raise InvoiceError(f"invalid multiplier {multiplier!r}: expected one of m, u, n, p")
    if not digits:
        raise InvoiceError(f"invalid amount {amount!r}: no digits before the multiplier")
    if any(c not in "0123456789" for c in digits):
        raise InvoiceError(f"invalid amount {amount!r}: contains a non-digit")
    if digits[0] == "0":
        raise InvoiceError(f"invalid amount {amount!r}: leading zero (must be a positive integer)")
    if len(digits) > 25:
        raise InvoiceError(f"amount overflow: {amount!r} exceeds 2**64-1 msat")
    value = int(digits)
    if multiplier == "p":
        if value % 10:
            raise InvoiceError(
                f"invalid sub-millisatoshi precision: {amount!r} ('p' amounts must end in 0)"
            )
        msat = value // 10
    elif multiplier:
        msat = value * _MULTIPLIER_MSAT[multiplier]
    else:
        msat = value * MSAT_PER_BTC
    if msat > MAX_AMOUNT_MSAT:
        raise InvoiceError(f"amount overflow: {amount!r} exceeds 2**64-1 msat")
    return msat


# --------------------------------------------------------------------------
# short channel ids
# --------------------------------------------------------------------------


def format_short_channel_id(scid: int) -> str:
    """``BLOCKxTXxOUT`` (3 bytes block height, 3 bytes tx index, 2 bytes output index)."""
    if not 0 <= scid < 1 << 64:
        raise InvoiceError(f"short_channel_id out of range: {scid}")
    return f"{scid >> 40}x{(scid >> 16) & 0xFFFFFF}x{scid & 0xFFFF}"


def parse_short_channel_id(text: str) -> int:
    """The 64-bit short_channel_id of ``BLOCKxTXxOUT``."""
    m = re.fullmatch(r"([0-9]{1,8})x([0-9]{1,8})x([0-9]{1,5})", text)
    if m is None:
        raise InvoiceError(f"invalid short_channel_id {text!r}: expected BLOCKxTXxOUT")
    block, tx, out = (int(g) for g in m.groups())
    if block >= 1 << 24 or tx >= 1 << 24 or out >= 1 << 16:
        raise InvoiceError(f"invalid short_channel_id {text!r}: a part is out of range")
    return (block << 40) | (tx << 16) | out


# --------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------


def _check_pubkey(what: str, key: bytes) -> None:
    if len(key) != 33 or key[0] not in (2, 3):
        raise InvoiceError(f"invalid {what}: must be a 33-byte compressed public key")
    try:
        PublicKey.from_bytes(key)
    except ValueError:
        raise InvoiceError(f"invalid {what}: not a point on secp256k1") from None


@dataclass(frozen=True, slots=True)
class TaggedField:
    """One tagged field as written: its 5-bit ``type`` and its data as 5-bit words."""

    type: int
    data: tuple[int, ...]

    def __post_init__(self) -> None:
        if not 0 <= self.type < 32:
            raise InvoiceError(f"invalid tagged field type {self.type}")
        if len(self.data) > _MAX_FIELD_WORDS:
            raise InvoiceError(f"field {self.letter!r} too long: {len(self.data)} words (max 1023)")
        if any(not 0 <= w < 32 for w in self.data):
            raise InvoiceError("invalid tagged field data: words must be 0..31")

    @property
    def letter(self) -> str:
        """The bech32 character naming the field (``p``, ``s``, ``d``, ...)."""
        return _CHARSET[self.type]


@dataclass(frozen=True, slots=True)
class Fallback:
    """An on-chain fallback (``f`` field): witness version 0..16 and its program,
    17 and a P2PKH public key hash, or 18 and a P2SH script hash."""

    version: int
    program: bytes

    def __post_init__(self) -> None:
        v, n = self.version, len(self.program)
        if not 0 <= v <= 18:
            raise InvoiceError(f"invalid fallback: unknown version {v}")
        if v >= 17 and n != 20:
            kind = "P2PKH" if v == 17 else "P2SH"
            raise InvoiceError(f"invalid fallback: {kind} hash must be 20 bytes, got {n}")
        if v <= 16 and not (2 <= n <= 40 and (v != 0 or n in (20, 32))):
            raise InvoiceError(f"invalid fallback: witness v{v} program of {n} bytes")

    def script_pubkey(self) -> bytes:
        if self.version == 17:
            return p2pkh_script(self.program)
        if self.version == 18:
            return p2sh_script(self.program)
        return witness_script(self.version, self.program)

    def address(self, prefixes: AddressPrefixes) -> str:
        """The address on the network ``prefixes`` (e.g. ``CURRENCY_PREFIXES["lnbc"]``)."""
        addr = script_to_address(self.script_pubkey(), prefixes)
        assert addr is not None  # every valid fallback has an address form
        return addr

    @classmethod
    def from_address(cls, address: str, prefixes: AddressPrefixes) -> Fallback:
        """The fallback paying to ``address`` on the network ``prefixes``."""
        try:
            s = address_to_script(address, prefixes)
        except AddressError as e:
            raise InvoiceError(f"invalid fallback address: {e}") from None
        if len(s) == 25 and s[:3] == b"\x76\xa9\x14":
            return cls(17, s[3:23])
        if len(s) == 23 and s[:2] == b"\xa9\x14":
            return cls(18, s[2:22])
        return cls(0 if s[0] == 0 else s[0] - 0x50, s[2:])


@dataclass(frozen=True, slots=True)
class RouteHintHop:
    """One hop of an ``r`` field: the channel from ``pubkey`` towards the payee."""

    pubkey: bytes
    short_channel_id: int
    fee_base_msat: int
    fee_proportional_millionths: int
    cltv_expiry_delta: int

    def __post_init__(self) -> None:
        _check_pubkey("route hint pubkey", self.pubkey)
        if not 0 <= self.short_channel_id < 1 << 64:
            raise InvoiceError(f"route hint short_channel_id out of range: {self.short_channel_id}")
        for name in ("fee_base_msat", "fee_proportional_millionths"):
            if not 0 <= getattr(self, name) < 1 << 32:
                raise InvoiceError(f"route hint {name} out of range (u32)")
        if not 0 <= self.cltv_expiry_delta < 1 << 16:
            raise InvoiceError("route hint cltv_expiry_delta out of range (u16)")

    @property
    def short_channel_id_str(self) -> str:
        """The short_channel_id as ``BLOCKxTXxOUT``."""
        return format_short_channel_id(self.short_channel_id)

    def to_bytes(self) -> bytes:
        """The 51 bytes of the hop as the ``r`` field carries them (big-endian)."""
        return self.pubkey + _HOP.pack(
            self.short_channel_id,
            self.fee_base_msat,
            self.fee_proportional_millionths,
            self.cltv_expiry_delta,
        )

    @classmethod
    def from_bytes(cls, b: bytes) -> RouteHintHop:
        if len(b) != 33 + _HOP.size:
            raise InvoiceError(f"route hint hop must be {33 + _HOP.size} bytes")
        return cls(b[:33], *_HOP.unpack(b[33:]))


RouteHint = tuple[RouteHintHop, ...]


@dataclass(frozen=True, slots=True)
class Invoice:
    """A BOLT 11 payment request.

    ``prefix`` is the whole currency prefix (``lnbc``, ``lnbcrt``, ``lnalpha``).
    Exactly one of ``description`` / ``description_hash`` is set. ``features`` is
    the ``9`` field as an int bitfield (bit 0 = least significant). ``payee`` is
    the payee's 33-byte node id: from the ``n`` field when ``explicit_payee``,
    else recovered from the signature (``None`` on an invoice not yet signed).
    ``signature`` is the 65-byte r || s || recovery id of a decoded invoice.

    ``raw_fields`` holds a decoded invoice's tagged fields exactly as written
    (order, unknown and skipped fields). :func:`encode_invoice` writes them
    verbatim while they still say what the other attributes say, so re-signing
    reproduces the string; otherwise it writes the attributes canonically.
    """

    prefix: str
    amount_msat: int | None
    timestamp: int
    payment_hash: bytes
    payment_secret: bytes
    description: str | None = None
    description_hash: bytes | None = None
    expiry: int = DEFAULT_EXPIRY
    min_final_cltv_expiry_delta: int = DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA
    fallbacks: tuple[Fallback, ...] = ()
    route_hints: tuple[RouteHint, ...] = ()
    features: int = 0
    payment_metadata: bytes | None = None
    payee: bytes | None = None
    explicit_payee: bool = False
    signature: bytes | None = None
    raw_fields: tuple[TaggedField, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"ln[a-z]+", self.prefix):
            raise InvoiceError(f"invalid prefix {self.prefix!r}: 'ln' followed by letters")
        if self.amount_msat is not None and not 0 < self.amount_msat <= MAX_AMOUNT_MSAT:
            raise InvoiceError(f"amount_msat out of range: {self.amount_msat} (1 .. 2**64-1)")
        if not 0 <= self.timestamp < 1 << 35:
            raise InvoiceError(f"timestamp out of range: {self.timestamp} (35 bits)")
        if len(self.payment_hash) != 32:
            raise InvoiceError("payment_hash must be 32 bytes")
        if len(self.payment_secret) != 32:
            raise InvoiceError("payment_secret must be 32 bytes")
        if (self.description is None) == (self.description_hash is None):
            raise InvoiceError("exactly one of description and description_hash must be set")
        if self.description is not None:
            try:
                size = len(self.description.encode("utf-8"))
            except UnicodeEncodeError:
                raise InvoiceError("description is not encodable as UTF-8") from None
            if size > _MAX_FIELD_BYTES:
                raise InvoiceError(f"description too long: {size} bytes (max 639; use the hash)")
        if self.description_hash is not None and len(self.description_hash) != 32:
            raise InvoiceError("description_hash must be 32 bytes")
        if not 0 <= self.expiry <= MAX_FIELD_VALUE:
            raise InvoiceError(f"expiry out of range: {self.expiry}")
        if not 0 <= self.min_final_cltv_expiry_delta <= MAX_FIELD_VALUE:
            raise InvoiceError("min_final_cltv_expiry_delta out of range (0 .. 2**64-1)")
        for hint in self.route_hints:
            if not 1 <= len(hint) <= _MAX_HOPS_PER_HINT:
                raise InvoiceError(f"a route hint has {len(hint)} hops: must have 1..12")
        if self.features < 0 or self.features.bit_length() > _MAX_FIELD_WORDS * 5:
            raise InvoiceError("features out of range")
        if self.payment_metadata is not None and len(self.payment_metadata) > _MAX_FIELD_BYTES:
            raise InvoiceError(f"payment_metadata too long: at most {_MAX_FIELD_BYTES} bytes")
        if self.payee is not None:
            _check_pubkey("payee", self.payee)
        if self.signature is not None and len(self.signature) != 65:
            raise InvoiceError("signature must be 65 bytes (r || s || recovery id)")

    @property
    def expires_at(self) -> int:
        """``timestamp + expiry``: the invoice is expired once the time is past this."""
        return self.timestamp + self.expiry

    @property
    def feature_bits(self) -> tuple[int, ...]:
        """The set bits of ``features``, lowest first."""
        f = self.features
        return tuple(i for i in range(f.bit_length()) if (f >> i) & 1)

    def fallback_addresses(self, prefixes: AddressPrefixes | None = None) -> list[str]:
        """The fallbacks as addresses; ``prefixes`` defaults to the currency's own."""
        if prefixes is None:
            prefixes = CURRENCY_PREFIXES.get(self.prefix)
            if prefixes is None:
                raise InvoiceError(f"no address prefixes known for {self.prefix!r}: pass some")
        return [fb.address(prefixes) for fb in self.fallbacks]


def is_expired(invoice: Invoice, now: int) -> bool:
    """Whether ``timestamp + expiry`` has passed at unix time ``now``."""
    return now > invoice.timestamp + invoice.expiry


def description_matches(invoice: Invoice, description: str | bytes) -> bool:
    """Whether ``description`` is the invoice's (inline, or the preimage of its ``h`` field)."""
    raw = description.encode("utf-8") if isinstance(description, str) else description
    if invoice.description_hash is not None:
        return sha256(raw) == invoice.description_hash
    assert invoice.description is not None
    return invoice.description.encode("utf-8") == raw


# --------------------------------------------------------------------------
# 5-bit helpers
# --------------------------------------------------------------------------


def _words_to_int(words: Iterable[int]) -> int:
    return int("".join(f"{w:05b}" for w in words) or "0", 2)


def _int_to_words(n: int, length: int | None = None) -> tuple[int, ...]:
    """Big-endian 5-bit words; minimal (0 is no words) unless ``length`` is given."""
    out: list[int] = []
    while n:
        out.append(n & 31)
        n >>= 5
    if length is not None:
        out += [0] * (length - len(out))
    return tuple(reversed(out))


def _bytes_of(letter: str, words: Sequence[int]) -> bytes:
    try:
        return bytes(convertbits(words, 5, 8, pad=False))
    except AddressError as e:
        raise InvoiceError(f"invalid {letter!r} field: {e}") from None


def _words_of(data: bytes) -> tuple[int, ...]:
    return tuple(convertbits(data, 8, 5, pad=True))


# --------------------------------------------------------------------------
# tagged fields <-> attributes
# --------------------------------------------------------------------------


@dataclass(slots=True)
class _Fields:
    """What a list of tagged fields says (first field of a kind wins)."""

    payment_hash: bytes | None = None
    payment_secret: bytes | None = None
    description: str | None = None
    description_hash: bytes | None = None
    expiry: int | None = None
    min_final_cltv_expiry_delta: int | None = None
    fallbacks: list[Fallback] = field(default_factory=list)
    route_hints: list[RouteHint] = field(default_factory=list)
    features: int | None = None
    payment_metadata: bytes | None = None
    payee: bytes | None = None


def _minimal_int(letter: str, words: tuple[int, ...]) -> int:
    if words and words[0] == 0:
        raise InvoiceError(f"non-minimal {letter!r} field: leading zero word")
    return _words_to_int(words)


def _interpret(fields: Iterable[TaggedField]) -> _Fields:
    out = _Fields()
    for f in fields:
        t, d, letter = f.type, f.data, f.letter
        if t in (TYPE_PAYMENT_HASH, TYPE_PAYMENT_SECRET, TYPE_DESCRIPTION_HASH):
            if len(d) != 52:
                continue  # wrong length: skipped
            value = _bytes_of(letter, d)
            if t == TYPE_PAYMENT_HASH and out.payment_hash is None:
                out.payment_hash = value
            elif t == TYPE_PAYMENT_SECRET and out.payment_secret is None:
                out.payment_secret = value
            elif t == TYPE_DESCRIPTION_HASH and out.description_hash is None:
                out.description_hash = value
        elif t == TYPE_PAYEE:
            if len(d) != 53:
                continue
            key = _bytes_of(letter, d)
            _check_pubkey("n field (payee)", key)
            if out.payee is None:
                out.payee = key
        elif t == TYPE_DESCRIPTION:
            try:
                text = _bytes_of(letter, d).decode("utf-8")
            except UnicodeDecodeError:
                raise InvoiceError("invalid 'd' field: description is not valid UTF-8") from None
            if out.description is None:
                out.description = text
        elif t == TYPE_METADATA:
            metadata = _bytes_of(letter, d)
            if out.payment_metadata is None:
                out.payment_metadata = metadata
        elif t in (TYPE_EXPIRY, TYPE_MIN_FINAL_CLTV_EXPIRY_DELTA):
            n = _minimal_int(letter, d)
            if n > MAX_FIELD_VALUE:
                raise InvoiceError(f"invalid {letter!r} field: value exceeds 2**64-1")
            if t == TYPE_EXPIRY and out.expiry is None:
                out.expiry = n
            elif t == TYPE_MIN_FINAL_CLTV_EXPIRY_DELTA and out.min_final_cltv_expiry_delta is None:
                out.min_final_cltv_expiry_delta = n
        elif t == TYPE_FEATURES:
            bits = _minimal_int(letter, d)
            if out.features is None:
                out.features = bits
        elif t == TYPE_FALLBACK:
            if not d:
                raise InvoiceError("invalid 'f' field: empty (no version)")
            if d[0] > 18:
                continue  # unknown version: skipped
            out.fallbacks.append(Fallback(d[0], _bytes_of(letter, d[1:])))
        elif t == TYPE_ROUTE_HINT:
            raw = _bytes_of(letter, d)
            if not raw or len(raw) % _HOP_BYTES:
                raise InvoiceError(
                    f"invalid 'r' field: {len(raw)} bytes is not a positive multiple of {_HOP_BYTES}"
                )
            out.route_hints.append(
                tuple(
                    RouteHintHop.from_bytes(raw[i : i + _HOP_BYTES])
                    for i in range(0, len(raw), _HOP_BYTES)
                )
            )
        # any other type: unknown, skipped
    return out


def _canonical_fields(inv: Invoice, payee: bytes) -> list[TaggedField]:
    fields = [
        TaggedField(TYPE_PAYMENT_HASH, _words_of(inv.payment_hash)),
        TaggedField(TYPE_PAYMENT_SECRET, _words_of(inv.payment_secret)),
    ]
    if inv.description is not None:
        fields.append(TaggedField(TYPE_DESCRIPTION, _words_of(inv.description.encode("utf-8"))))
    if inv.description_hash is not None:
        fields.append(TaggedField(TYPE_DESCRIPTION_HASH, _words_of(inv.description_hash)))
    if inv.explicit_payee:
        fields.append(TaggedField(TYPE_PAYEE, _words_of(payee)))
    if inv.expiry != DEFAULT_EXPIRY:
        fields.append(TaggedField(TYPE_EXPIRY, _int_to_words(inv.expiry)))
    fields.append(
        TaggedField(TYPE_MIN_FINAL_CLTV_EXPIRY_DELTA, _int_to_words(inv.min_final_cltv_expiry_delta))
    )
    for fb in inv.fallbacks:
        fields.append(TaggedField(TYPE_FALLBACK, (fb.version,) + _words_of(fb.program)))
    for hint in inv.route_hints:
        fields.append(TaggedField(TYPE_ROUTE_HINT, _words_of(b"".join(h.to_bytes() for h in hint))))
    if inv.features:
        fields.append(TaggedField(TYPE_FEATURES, _int_to_words(inv.features)))
    if inv.payment_metadata is not None:
        fields.append(TaggedField(TYPE_METADATA, _words_of(inv.payment_metadata)))
    return fields


def _build(prefix: str, amount_msat: int | None, timestamp: int, got: _Fields) -> Invoice:
    """The unsigned invoice the fields describe; the reader's presence rules apply."""
    if got.payment_hash is None:
        raise InvoiceError("missing required 'p' field (payment_hash)")
    if got.payment_secret is None:
        raise InvoiceError("missing required 's' field (payment_secret)")
    if got.description is None and got.description_hash is None:
        raise InvoiceError("missing description: neither a 'd' nor an 'h' field")
    if got.description is not None and got.description_hash is not None:
        raise InvoiceError("both a 'd' and an 'h' field: exactly one is allowed")
    cltv = got.min_final_cltv_expiry_delta
    return Invoice(
        prefix=prefix,
        amount_msat=amount_msat,
        timestamp=timestamp,
        payment_hash=got.payment_hash,
        payment_secret=got.payment_secret,
        description=got.description,
        description_hash=got.description_hash,
        expiry=DEFAULT_EXPIRY if got.expiry is None else got.expiry,
        min_final_cltv_expiry_delta=DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA if cltv is None else cltv,
        fallbacks=tuple(got.fallbacks),
        route_hints=tuple(got.route_hints),
        features=got.features or 0,
        payment_metadata=got.payment_metadata,
        payee=got.payee,
        explicit_payee=got.payee is not None,
    )


def _raw_fields_match(inv: Invoice, payee: bytes) -> bool:
    """Whether ``inv.raw_fields`` say exactly what the invoice's attributes say."""
    try:
        built = _build(inv.prefix, inv.amount_msat, inv.timestamp, _interpret(inv.raw_fields))
    except InvoiceError:
        return False
    return built == replace(inv, payee=payee if inv.explicit_payee else None, signature=None)


def _hrp(inv: Invoice) -> str:
    return inv.prefix + ("" if inv.amount_msat is None else encode_amount(inv.amount_msat))


def _sighash(hrp: str, data: Sequence[int]) -> bytes:
    """SHA-256 of the hrp (UTF-8) and the data part before the signature, zero-padded to bytes."""
    return sha256(hrp.encode("utf-8") + bytes(convertbits(data, 5, 8, pad=True)))


# --------------------------------------------------------------------------
# encode
# --------------------------------------------------------------------------


def encode_invoice(invoice: Invoice, key: PrivateKey) -> str:
    """Sign ``invoice`` with the payee's node ``key`` and write it (lowercase bech32).

    ``invoice.payee``, if set, must be ``key``'s public key; ``explicit_payee``
    adds an ``n`` field. ``invoice.signature`` is ignored: the invoice is signed
    afresh (RFC 6979, low-S, so the result is deterministic).
    """
    payee = key.public_key().to_bytes()
    if invoice.payee is not None and invoice.payee != payee:
        raise InvoiceError("payee does not match the signing key")
    if invoice.raw_fields and _raw_fields_match(invoice, payee):
        fields = list(invoice.raw_fields)
    else:
        fields = _canonical_fields(invoice, payee)
    data: list[int] = list(_int_to_words(invoice.timestamp, _TIMESTAMP_WORDS))
    for f in fields:
        n = len(f.data)
        data += [f.type, n >> 5, n & 31, *f.data]
    hrp = _hrp(invoice)
    sig64, recid = key.sign_recoverable(_sighash(hrp, data))
    data += convertbits(sig64 + bytes([recid]), 8, 5, pad=True)
    return bech32_encode(hrp, data, Encoding.BECH32, max_length=None)


# --------------------------------------------------------------------------
# decode
# --------------------------------------------------------------------------


def _parse_hrp(hrp: str, expected_prefix: str | None) -> tuple[str, int | None]:
    m = re.fullmatch(r"(ln[a-z]+)(.*)", hrp)
    if m is None:
        raise InvoiceError(f"invalid prefix: hrp {hrp!r} does not start with 'ln' and a currency")
    prefix, amount = m.group(1), m.group(2)
    if expected_prefix is not None:
        expected = expected_prefix.lower()
        if not expected.startswith("ln"):
            expected = "ln" + expected
        if prefix != expected:
            raise InvoiceError(f"wrong currency prefix: invoice is {prefix!r}, expected {expected!r}")
    elif prefix not in CURRENCY_PREFIXES:
        raise InvoiceError(f"unknown currency prefix {prefix!r}")
    return prefix, (decode_amount(amount) if amount else None)


def _split_fields(words: Sequence[int]) -> list[TaggedField]:
    fields: list[TaggedField] = []
    i = 0
    while i < len(words):
        if len(words) - i < 3:
            raise InvoiceError("truncated tagged field: fewer than 3 words for type and length")
        n = words[i + 1] * 32 + words[i + 2]
        start = i + 3
        if start + n > len(words):
            raise InvoiceError(
                f"tagged field {_CHARSET[words[i]]!r} of {n} words overruns the data part"
            )
        fields.append(TaggedField(words[i], tuple(words[start : start + n])))
        i = start + n
    return fields


def _check_features(features: int, known_features: Collection[int]) -> None:
    known = {b & ~1 for b in known_features}
    for bit in range(0, features.bit_length(), 2):
        if (features >> bit) & 1 and bit not in known:
            raise InvoiceError(f"unknown required feature bit {bit} (even bits must be understood)")
    for bit, name, needs, needs_name in _FEATURE_DEPENDENCIES:
        if features & (3 << bit) and not features & (3 << needs):
            raise InvoiceError(
                f"missing feature dependency: {name} ({bit}/{bit + 1}) requires "
                f"{needs_name} ({needs}/{needs + 1})"
            )


def _payee_from_signature(sig: bytes, msg: bytes, explicit: bytes | None) -> bytes:
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:64], "big")
    recid = sig[64]
    if not (0 < r < SECP256K1_ORDER and 0 < s < SECP256K1_ORDER):
        raise InvoiceError("invalid signature: r or s out of range")
    if recid > 3:
        raise InvoiceError(f"invalid signature: recovery id {recid} (must be 0..3)")
    if explicit is not None:
        if s > SECP256K1_ORDER // 2:
            raise InvoiceError("non-canonical signature: high-S with an 'n' field (must be low-S)")
        if not PublicKey.from_bytes(explicit).verify(r, s, msg):
            raise InvoiceError("invalid signature: does not verify against the 'n' field")
        return explicit
    try:
        return PublicKey.recover(sig[:64], recid, msg).to_bytes()
    except ValueError as e:
        raise InvoiceError(f"signature is not recoverable: {e}") from None


def decode_invoice(
    s: str,
    expected_prefix: str | None = None,
    *,
    known_features: Collection[int] = KNOWN_FEATURES,
) -> Invoice:
    """Parse and verify a BOLT 11 invoice.

    ``expected_prefix`` (``"lnbcrt"``, or just the currency ``"bcrt"``) makes any
    other currency an error; without it the prefix must be in
    :data:`CURRENCY_PREFIXES`. ``known_features`` are the feature bits the caller
    understands (either bit of a pair); any other even bit is an error.
    """
    try:
        hrp, words, spec = bech32_decode(s, max_length=None)
    except AddressError as e:
        raise InvoiceError(f"invalid bech32: {e}") from None
    if spec is not Encoding.BECH32:
        raise InvoiceError("invalid checksum: bech32m (invoices use bech32)")
    prefix, amount_msat = _parse_hrp(hrp, expected_prefix)
    if len(words) < _TIMESTAMP_WORDS + _SIGNATURE_WORDS:
        raise InvoiceError(
            f"too short: {len(words)} data words, need at least "
            f"{_TIMESTAMP_WORDS + _SIGNATURE_WORDS} for timestamp and signature"
        )
    body, sig_words = words[:-_SIGNATURE_WORDS], words[-_SIGNATURE_WORDS:]
    timestamp = _words_to_int(body[:_TIMESTAMP_WORDS])
    raw_fields = _split_fields(body[_TIMESTAMP_WORDS:])
    got = _interpret(raw_fields)
    unsigned = _build(prefix, amount_msat, timestamp, got)
    _check_features(unsigned.features, known_features)
    signature = bytes(convertbits(sig_words, 5, 8, pad=False))
    payee = _payee_from_signature(signature, _sighash(hrp, body), got.payee)
    return replace(unsigned, payee=payee, signature=signature, raw_fields=tuple(raw_fields))
