"""BOLT 9 feature bits.

A feature is a pair of bits: the even bit means "required" (compulsory), the
odd bit "optional" (supported). Bit 0 is the least significant bit of the
*last* byte of the serialized field. :class:`Feature` names the pairs BOLT 9
assigns (its value is the pair's even bit); :class:`Features` is an immutable
feature vector.

BOLT 1's rule for a received ``init``: OR ``globalfeatures`` and ``features``
together, then fail the connection if any *even* bit is set that this node
does not know (:meth:`Features.unknown_required`) or if a known feature is set
without a feature it depends on (:meth:`Features.missing_dependencies`).
Unknown odd bits are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "Feature",
    "FeatureLike",
    "Features",
    "DEPENDENCIES",
    "feature_pair",
]


class Feature(IntEnum):
    """BOLT 9 features by name; the value is the pair's even (required) bit."""

    option_data_loss_protect = 0
    initial_routing_sync = 2  # only the odd bit 3 exists (a request, never required)
    option_upfront_shutdown_script = 4
    gossip_queries = 6
    var_onion_optin = 8
    gossip_queries_ex = 10
    option_static_remotekey = 12
    payment_secret = 14
    basic_mpp = 16
    option_support_large_channel = 18
    option_anchor_outputs = 20  # superseded by 22/23; still seen on the network
    option_anchors_zero_fee_htlc_tx = 22
    option_anchors = 22  # BOLT 9's current name for 22/23 (an alias)
    option_route_blinding = 24
    option_shutdown_anysegwit = 26
    option_dual_fund = 28
    option_quiesce = 34
    option_attribution_data = 36
    option_onion_messages = 38
    option_provide_storage = 42
    option_channel_type = 44
    option_scid_alias = 46
    option_payment_metadata = 48
    option_zeroconf = 50
    option_simple_close = 60
    option_splice = 62

    @property
    def required_bit(self) -> int:
        return int(self.value)

    @property
    def optional_bit(self) -> int:
        return int(self.value) + 1


FeatureLike = Feature | int | str
"""A feature named by :class:`Feature`, by its BOLT name, or by either bit of its pair."""

# BOLT 9's "Dependencies" column: setting the key requires setting each value.
DEPENDENCIES: dict[Feature, tuple[Feature, ...]] = {
    Feature.gossip_queries_ex: (Feature.gossip_queries,),
    Feature.basic_mpp: (Feature.payment_secret,),
    Feature.option_zeroconf: (Feature.option_scid_alias,),
    Feature.option_simple_close: (Feature.option_shutdown_anysegwit,),
}

_ODD_ONLY = frozenset({int(Feature.initial_routing_sync)})


def feature_pair(feature: FeatureLike) -> int:
    """The even bit of the pair ``feature`` names."""
    if isinstance(feature, str):
        try:
            return int(Feature[feature])
        except KeyError:
            raise ValueError(f"unknown feature name {feature!r}") from None
    bit = int(feature)
    if bit < 0:
        raise ValueError(f"negative feature bit {bit}")
    return bit & ~1


def _name(pair: int) -> str:
    try:
        return Feature(pair).name
    except ValueError:
        return f"unknown_{pair}/{pair + 1}"


@dataclass(frozen=True)
class Features:
    """An immutable feature vector (``bits`` is the field as an integer, bit 0 = LSB)."""

    bits: int = 0

    def __post_init__(self) -> None:
        if self.bits < 0:
            raise ValueError("feature bits cannot be negative")

    # -- construction and serialization

    @classmethod
    def of(cls, *, required: Iterable[FeatureLike] = (), optional: Iterable[FeatureLike] = ()) -> Features:
        f = cls()
        for x in required:
            f = f.set_required(x)
        for x in optional:
            f = f.set_optional(x)
        return f

    @classmethod
    def from_bits(cls, bits: Iterable[int]) -> Features:
        value = 0
        for b in bits:
            if b < 0:
                raise ValueError(f"negative feature bit {b}")
            value |= 1 << b
        return cls(value)

    @classmethod
    def from_bytes(cls, data: bytes) -> Features:
        """Parse a BOLT feature field (big-endian; leading zero bytes allowed)."""
        return cls(int.from_bytes(data, "big"))

    def to_bytes(self) -> bytes:
        """The minimal-length field (SHOULD use the minimum length; empty if no bits)."""
        return self.bits.to_bytes((self.bits.bit_length() + 7) // 8, "big")

    # -- editing (each returns a new vector)

    def set_required(self, feature: FeatureLike) -> Features:
        """Set the even bit (and clear the odd one: never both)."""
        pair = feature_pair(feature)
        if pair in _ODD_ONLY:
            raise ValueError(f"{_name(pair)} has only an optional bit")
        return Features((self.bits | 1 << pair) & ~(1 << (pair + 1)))

    def set_optional(self, feature: FeatureLike) -> Features:
        """Set the odd bit (and clear the even one)."""
        pair = feature_pair(feature)
        return Features((self.bits | 1 << (pair + 1)) & ~(1 << pair))

    def unset(self, feature: FeatureLike) -> Features:
        pair = feature_pair(feature)
        return Features(self.bits & ~(3 << pair))

    def __or__(self, other: Features) -> Features:
        """BOLT 1: ``globalfeatures | features`` is the peer's logical feature map."""
        if not isinstance(other, Features):
            return NotImplemented
        return Features(self.bits | other.bits)

    # -- queries

    def has(self, feature: FeatureLike) -> bool:
        """Offered at all (either bit of the pair)."""
        return bool(self.bits >> feature_pair(feature) & 3)

    def is_required(self, feature: FeatureLike) -> bool:
        """The even bit is set (if both are set, the feature is treated as required)."""
        return bool(self.bits >> feature_pair(feature) & 1)

    def is_optional(self, feature: FeatureLike) -> bool:
        """Only the odd bit is set."""
        return self.bits >> feature_pair(feature) & 3 == 2

    def has_bit(self, bit: int) -> bool:
        return bit >= 0 and bool(self.bits >> bit & 1)

    def set_bits(self) -> list[int]:
        return [i for i in range(self.bits.bit_length()) if self.bits >> i & 1]

    def __iter__(self) -> Iterator[int]:
        return iter(self.set_bits())

    def __bool__(self) -> bool:
        return self.bits != 0

    def unknown_required(self, known: Iterable[FeatureLike] | Features) -> list[int]:
        """The even bits set here whose feature is not in ``known``.

        Any of them means BOLT 1's "unknown even feature bit": close the
        connection (or refuse the invoice / channel type). ``known`` is what this
        node understands: features, names or bits (a :class:`Features` counts
        every pair it has a bit in).
        """
        pairs = {b & ~1 for b in known} if isinstance(known, Features) else {feature_pair(k) for k in known}
        return [b for b in self.set_bits() if b % 2 == 0 and b not in pairs]

    def unknown_optional(self, known: Iterable[FeatureLike] | Features) -> list[int]:
        """The odd bits set here whose feature is not known (to be ignored)."""
        pairs = {b & ~1 for b in known} if isinstance(known, Features) else {feature_pair(k) for k in known}
        return [b for b in self.set_bits() if b % 2 == 1 and (b & ~1) not in pairs]

    def missing_dependencies(self) -> list[tuple[Feature, Feature]]:
        """(feature, dependency) for each set feature whose BOLT 9 dependency is not set."""
        return [
            (feature, dep)
            for feature, deps in DEPENDENCIES.items()
            if self.has(feature)
            for dep in deps
            if not self.has(dep)
        ]

    def __str__(self) -> str:
        parts = []
        for pair in sorted({b & ~1 for b in self.set_bits()}):
            kind = "required" if self.is_required(pair) else "optional"
            parts.append(f"{_name(pair)}({kind})")
        return ", ".join(parts) if parts else "(none)"

    def __repr__(self) -> str:
        return f"Features(0x{self.to_bytes().hex()})" if self.bits else "Features()"
