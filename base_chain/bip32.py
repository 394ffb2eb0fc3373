"""BIP32 hierarchical deterministic keys: extended private and public keys,
child key derivation (CKDpriv, CKDpub, neutering), derivation paths, and the
78-byte Base58Check serialization (xprv / xpub and the other version bytes).

Everything here is pure: seeds, keys and strings in, keys and strings out.
Every rejection raises :class:`ValueError` whose message names the reason.

Version bytes are parameters. The constants below are the ones BIP32 (xprv /
xpub, tprv / tpub) and BIP84 (zprv / zpub, vprv / vpub) define; a chain's
parameters pick the pair it uses (Bitcoin Core uses tprv / tpub on regtest).

Invalid children: where BIP32 says "proceed with the next value for i" (a
child whose I_L >= n, or whose key is zero or the point at infinity),
:meth:`ExtendedPrivateKey.derive` and :meth:`ExtendedPublicKey.derive` do
exactly that, and the returned key's ``child_number`` is the index actually
used. This has probability below 2**-127 per derivation. An invalid master
key (:meth:`ExtendedPrivateKey.from_seed`) is an error, as BIP32 says.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from .address import AddressError, b58check_decode, b58check_encode
from .crypto import N, PrivateKey, PublicKey
from .hashes import hash160

__all__ = [
    "HARDENED",
    "XPRV",
    "XPUB",
    "TPRV",
    "TPUB",
    "ZPRV",
    "ZPUB",
    "VPRV",
    "VPUB",
    "ExtendedKeyVersions",
    "BIP32_MAINNET",
    "BIP32_TESTNET",
    "BIP84_MAINNET",
    "BIP84_TESTNET",
    "ExtendedPrivateKey",
    "ExtendedPublicKey",
    "hardened",
    "is_hardened",
    "parse_path",
    "format_path",
    "parse_extended_key",
]

HARDENED = 0x80000000
"""The first hardened child index, 2**31 (written i' or iH in paths)."""

_MAX_INDEX = 0xFFFFFFFF
_MAX_DEPTH = 0xFF
_SERIALIZED_LENGTH = 78
_MASTER_HMAC_KEY = b"Bitcoin seed"
_MIN_SEED_LENGTH = 16
_MAX_SEED_LENGTH = 64
_NO_PARENT = b"\x00\x00\x00\x00"

# BIP32
XPRV = 0x0488ADE4
XPUB = 0x0488B21E
TPRV = 0x04358394
TPUB = 0x043587CF
# BIP84 (native segwit P2WPKH accounts)
ZPRV = 0x04B2430C
ZPUB = 0x04B24746
VPRV = 0x045F18BC
VPUB = 0x045F1CF6


@dataclass(frozen=True, slots=True)
class ExtendedKeyVersions:
    """A network's pair of version bytes for extended private and public keys."""

    private: int
    public: int


BIP32_MAINNET = ExtendedKeyVersions(XPRV, XPUB)
BIP32_TESTNET = ExtendedKeyVersions(TPRV, TPUB)
BIP84_MAINNET = ExtendedKeyVersions(ZPRV, ZPUB)
BIP84_TESTNET = ExtendedKeyVersions(VPRV, VPUB)


# --------------------------------------------------------------------------
# indices and paths
# --------------------------------------------------------------------------


def hardened(index: int) -> int:
    """The hardened index i + 2**31 for 0 <= i < 2**31."""
    if not 0 <= index < HARDENED:
        raise ValueError(f"index out of range: {index} (a hardened index needs 0..{HARDENED - 1})")
    return index | HARDENED


def is_hardened(index: int) -> bool:
    return index >= HARDENED


def _check_index(index: int) -> None:
    if not 0 <= index <= _MAX_INDEX:
        raise ValueError(f"index out of range: {index} (child numbers are 0..2**32-1)")


def _parse_component(component: str, path: str) -> int:
    body = component
    harden = False
    if body[-1:] in ("'", "h", "H"):
        body = body[:-1]
        harden = True
    if not body or not body.isascii() or not body.isdigit():
        raise ValueError(f"invalid path {path!r}: bad component {component!r}")
    value = int(body)
    if value >= HARDENED:
        raise ValueError(
            f"invalid path {path!r}: index out of range in {component!r} "
            f"(at most {HARDENED - 1}, mark hardened indices with ')"
        )
    return value | HARDENED if harden else value


def _split_path(path: str) -> tuple[bool, tuple[int, ...]]:
    """(starts at the master key 'm', indices)."""
    if not path:
        raise ValueError("invalid path '': empty")
    parts = path.split("/")
    absolute = parts[0] == "m"
    if absolute:
        parts = parts[1:]
        if not parts:
            return True, ()
    return absolute, tuple(_parse_component(part, path) for part in parts)


def parse_path(path: str) -> tuple[int, ...]:
    """The child numbers of a path such as "m/84'/1'/0'/0/5" (or relative "0/5").

    Hardened components are marked with ', h or H. "m" alone is the empty path.
    """
    return _split_path(path)[1]


def format_path(indices: Sequence[int], *, absolute: bool = True) -> str:
    """The inverse of :func:`parse_path`, with ' marking hardened indices."""
    parts = ["m"] if absolute else []
    for index in indices:
        _check_index(index)
        parts.append(f"{index - HARDENED}'" if is_hardened(index) else str(index))
    return "/".join(parts)


# --------------------------------------------------------------------------
# child key derivation
# --------------------------------------------------------------------------


def _hmac_sha512(key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, "sha512")


def _next_index(index: int) -> int:
    """The index BIP32 says to try after an invalid child, within the same half."""
    following = index + 1
    if following == HARDENED or following > _MAX_INDEX:
        raise ValueError(
            f"invalid child key at index {index} and no next index in the same range"
        )
    return following


def _serialize(
    version: int,
    depth: int,
    parent_fingerprint: bytes,
    child_number: int,
    chain_code: bytes,
    key_data: bytes,
) -> bytes:
    if not 0 <= version <= 0xFFFFFFFF:
        raise ValueError(f"version out of range: {version}")
    return (
        version.to_bytes(4, "big")
        + bytes([depth])
        + parent_fingerprint
        + child_number.to_bytes(4, "big")
        + chain_code
        + key_data
    )


def _check_fields(
    depth: int, parent_fingerprint: bytes, child_number: int, chain_code: bytes
) -> None:
    if not 0 <= depth <= _MAX_DEPTH:
        raise ValueError(f"depth out of range: {depth}")
    if len(parent_fingerprint) != 4:
        raise ValueError("parent fingerprint must be 4 bytes")
    _check_index(child_number)
    if len(chain_code) != 32:
        raise ValueError("chain code must be 32 bytes")
    if depth == 0 and parent_fingerprint != _NO_PARENT:
        raise ValueError("zero depth with non-zero parent fingerprint")
    if depth == 0 and child_number != 0:
        raise ValueError("zero depth with non-zero child number")


class ExtendedPrivateKey:
    """A BIP32 extended private key (k, c) with its place in the tree."""

    __slots__ = ("depth", "parent_fingerprint", "child_number", "chain_code", "key", "_sec", "_id")

    depth: int
    parent_fingerprint: bytes
    child_number: int
    chain_code: bytes
    key: PrivateKey

    def __init__(
        self,
        key: PrivateKey,
        chain_code: bytes,
        *,
        depth: int = 0,
        parent_fingerprint: bytes = _NO_PARENT,
        child_number: int = 0,
    ) -> None:
        _check_fields(depth, parent_fingerprint, child_number, chain_code)
        self.key = key
        self.chain_code = bytes(chain_code)
        self.depth = depth
        self.parent_fingerprint = bytes(parent_fingerprint)
        self.child_number = child_number
        self._sec: bytes | None = None
        self._id: bytes | None = None

    # -- construction ------------------------------------------------------

    @classmethod
    def from_seed(cls, seed: bytes) -> ExtendedPrivateKey:
        """The master key m of a 16..64-byte seed (HMAC-SHA512 keyed "Bitcoin seed")."""
        if not _MIN_SEED_LENGTH <= len(seed) <= _MAX_SEED_LENGTH:
            raise ValueError(
                f"seed must be {_MIN_SEED_LENGTH}..{_MAX_SEED_LENGTH} bytes, got {len(seed)}"
            )
        digest = _hmac_sha512(_MASTER_HMAC_KEY, bytes(seed))
        secret = int.from_bytes(digest[:32], "big")
        if not 0 < secret < N:
            raise ValueError("invalid master key: I_L is zero or not below n; use another seed")
        return cls(PrivateKey(secret), digest[32:])

    @classmethod
    def from_bytes(cls, data: bytes, version: int = XPRV) -> ExtendedPrivateKey:
        """Parse the 78-byte serialization; ``version`` is the expected version bytes."""
        got_version, depth, fingerprint, child_number, chain_code, key_data = _split(data)
        if got_version != version:
            raise ValueError(
                f"invalid extended key: version 0x{got_version:08x}, expected 0x{version:08x}"
            )
        return cls._from_fields(depth, fingerprint, child_number, chain_code, key_data)

    @classmethod
    def from_string(cls, text: str, version: int = XPRV) -> ExtendedPrivateKey:
        """Parse a Base58Check extended private key (xprv... by default)."""
        return cls.from_bytes(_b58_payload(text), version)

    @classmethod
    def _from_fields(
        cls, depth: int, fingerprint: bytes, child_number: int, chain_code: bytes, key_data: bytes
    ) -> ExtendedPrivateKey:
        _check_parsed(depth, fingerprint, child_number)
        if key_data[0] != 0:
            raise ValueError(
                f"invalid extended key: private key data must start with 0x00, not 0x{key_data[0]:02x}"
            )
        secret = int.from_bytes(key_data[1:], "big")
        if not 0 < secret < N:
            raise ValueError("invalid extended key: private key not in 1..n-1")
        return cls(
            PrivateKey(secret),
            chain_code,
            depth=depth,
            parent_fingerprint=fingerprint,
            child_number=child_number,
        )

    # -- identity ----------------------------------------------------------

    def _public_bytes(self) -> bytes:
        if self._sec is None:
            self._sec = self.key.public_key().to_bytes()
        return self._sec

    @property
    def identifier(self) -> bytes:
        """HASH160 of the compressed public key."""
        if self._id is None:
            self._id = hash160(self._public_bytes())
        return self._id

    @property
    def fingerprint(self) -> bytes:
        """The first 4 bytes of the identifier (a child's parent fingerprint)."""
        return self.identifier[:4]

    # -- derivation --------------------------------------------------------

    def derive(self, index: int) -> ExtendedPrivateKey:
        """CKDpriv: the child at ``index`` (hardened if index >= 2**31)."""
        _check_index(index)
        if self.depth == _MAX_DEPTH:
            raise ValueError(f"cannot derive below depth {_MAX_DEPTH}")
        secret = self.key.secret
        if index >= HARDENED:
            prefix = b"\x00" + secret.to_bytes(32, "big")
        else:
            prefix = self._public_bytes()
        while True:
            digest = _hmac_sha512(self.chain_code, prefix + index.to_bytes(4, "big"))
            tweak = int.from_bytes(digest[:32], "big")
            child = (tweak + secret) % N
            if tweak < N and child != 0:
                break
            index = _next_index(index)
        return ExtendedPrivateKey(
            PrivateKey(child),
            digest[32:],
            depth=self.depth + 1,
            parent_fingerprint=self.fingerprint,
            child_number=index,
        )

    def derive_path(self, path: str | Sequence[int]) -> ExtendedPrivateKey:
        """Derive along a path such as "m/84'/1'/0'/0/5" (from a master key) or "0/5"
        (relative to this key), or a sequence of child numbers."""
        indices = _path_indices(path, self.depth)
        key = self
        for index in indices:
            key = key.derive(index)
        return key

    def neuter(self) -> ExtendedPublicKey:
        """N((k, c)) = (point(k), c), keeping the place in the tree."""
        xpub = ExtendedPublicKey(
            self.key.public_key(),
            self.chain_code,
            depth=self.depth,
            parent_fingerprint=self.parent_fingerprint,
            child_number=self.child_number,
        )
        xpub._id = self._id
        return xpub

    # -- serialization -----------------------------------------------------

    def to_bytes(self, version: int = XPRV) -> bytes:
        """The 78-byte serialization with the given version bytes."""
        return _serialize(
            version,
            self.depth,
            self.parent_fingerprint,
            self.child_number,
            self.chain_code,
            b"\x00" + self.key.to_bytes(),
        )

    def to_string(self, version: int = XPRV) -> str:
        """Base58Check of :meth:`to_bytes` (xprv... by default)."""
        return b58check_encode(self.to_bytes(version))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExtendedPrivateKey) and self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def __repr__(self) -> str:
        return (
            f"ExtendedPrivateKey(depth={self.depth}, child_number={self.child_number}, "
            f"fingerprint={self.fingerprint.hex()}, <secret>)"
        )


class ExtendedPublicKey:
    """A BIP32 extended public key (K, c) with its place in the tree."""

    __slots__ = ("depth", "parent_fingerprint", "child_number", "chain_code", "key", "_id")

    depth: int
    parent_fingerprint: bytes
    child_number: int
    chain_code: bytes
    key: PublicKey

    def __init__(
        self,
        key: PublicKey,
        chain_code: bytes,
        *,
        depth: int = 0,
        parent_fingerprint: bytes = _NO_PARENT,
        child_number: int = 0,
    ) -> None:
        _check_fields(depth, parent_fingerprint, child_number, chain_code)
        self.key = key
        self.chain_code = bytes(chain_code)
        self.depth = depth
        self.parent_fingerprint = bytes(parent_fingerprint)
        self.child_number = child_number
        self._id: bytes | None = None

    @classmethod
    def from_bytes(cls, data: bytes, version: int = XPUB) -> ExtendedPublicKey:
        """Parse the 78-byte serialization; ``version`` is the expected version bytes."""
        got_version, depth, fingerprint, child_number, chain_code, key_data = _split(data)
        if got_version != version:
            raise ValueError(
                f"invalid extended key: version 0x{got_version:08x}, expected 0x{version:08x}"
            )
        return cls._from_fields(depth, fingerprint, child_number, chain_code, key_data)

    @classmethod
    def from_string(cls, text: str, version: int = XPUB) -> ExtendedPublicKey:
        """Parse a Base58Check extended public key (xpub... by default)."""
        return cls.from_bytes(_b58_payload(text), version)

    @classmethod
    def _from_fields(
        cls, depth: int, fingerprint: bytes, child_number: int, chain_code: bytes, key_data: bytes
    ) -> ExtendedPublicKey:
        _check_parsed(depth, fingerprint, child_number)
        if key_data[0] not in (2, 3):
            raise ValueError(
                f"invalid extended key: invalid public key prefix 0x{key_data[0]:02x}"
            )
        try:
            key = PublicKey.from_bytes(key_data)
        except ValueError as e:
            raise ValueError(f"invalid extended key: invalid public key ({e})") from None
        return cls(
            key, chain_code, depth=depth, parent_fingerprint=fingerprint, child_number=child_number
        )

    @property
    def identifier(self) -> bytes:
        """HASH160 of the compressed public key."""
        if self._id is None:
            self._id = hash160(self.key.to_bytes())
        return self._id

    @property
    def fingerprint(self) -> bytes:
        """The first 4 bytes of the identifier (a child's parent fingerprint)."""
        return self.identifier[:4]

    def derive(self, index: int) -> ExtendedPublicKey:
        """CKDpub: the non-hardened child at ``index``; hardened indices are a ValueError."""
        _check_index(index)
        if index >= HARDENED:
            raise ValueError(f"cannot derive hardened child {index} from a public key")
        if self.depth == _MAX_DEPTH:
            raise ValueError(f"cannot derive below depth {_MAX_DEPTH}")
        prefix = self.key.to_bytes()
        while True:
            digest = _hmac_sha512(self.chain_code, prefix + index.to_bytes(4, "big"))
            tweak = int.from_bytes(digest[:32], "big")
            if tweak < N:
                if tweak == 0:
                    child = self.key
                    break
                try:
                    child = self.key.tweak_add(tweak)
                except ValueError:  # the point at infinity
                    pass
                else:
                    break
            index = _next_index(index)
        return ExtendedPublicKey(
            child,
            digest[32:],
            depth=self.depth + 1,
            parent_fingerprint=self.fingerprint,
            child_number=index,
        )

    def derive_path(self, path: str | Sequence[int]) -> ExtendedPublicKey:
        """Derive along non-hardened path components ("m/0/5" from a master key, or "0/5")."""
        indices = _path_indices(path, self.depth)
        key = self
        for index in indices:
            key = key.derive(index)
        return key

    def to_bytes(self, version: int = XPUB) -> bytes:
        """The 78-byte serialization with the given version bytes."""
        return _serialize(
            version,
            self.depth,
            self.parent_fingerprint,
            self.child_number,
            self.chain_code,
            self.key.to_bytes(),
        )

    def to_string(self, version: int = XPUB) -> str:
        """Base58Check of :meth:`to_bytes` (xpub... by default)."""
        return b58check_encode(self.to_bytes(version))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExtendedPublicKey) and self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def __repr__(self) -> str:
        return f"ExtendedPublicKey({self.to_string()!r})"


# --------------------------------------------------------------------------
# parsing helpers
# --------------------------------------------------------------------------


def _path_indices(path: str | Sequence[int], depth: int) -> tuple[int, ...]:
    if isinstance(path, str):
        absolute, indices = _split_path(path)
        if absolute and depth != 0:
            raise ValueError(
                f"path {path!r} starts at the master key 'm' but this key has depth {depth}; "
                "give a relative path"
            )
        return indices
    for index in path:
        _check_index(index)
    return tuple(path)


def _b58_payload(text: str) -> bytes:
    try:
        return b58check_decode(text)
    except AddressError as e:
        raise ValueError(f"invalid extended key: {e}") from None


def _split(data: bytes) -> tuple[int, int, bytes, int, bytes, bytes]:
    if len(data) != _SERIALIZED_LENGTH:
        raise ValueError(
            f"invalid extended key: length {len(data)} bytes, expected {_SERIALIZED_LENGTH}"
        )
    return (
        int.from_bytes(data[0:4], "big"),
        data[4],
        bytes(data[5:9]),
        int.from_bytes(data[9:13], "big"),
        bytes(data[13:45]),
        bytes(data[45:78]),
    )


def _check_parsed(depth: int, fingerprint: bytes, child_number: int) -> None:
    if depth == 0 and fingerprint != _NO_PARENT:
        raise ValueError("invalid extended key: zero depth with non-zero parent fingerprint")
    if depth == 0 and child_number != 0:
        raise ValueError("invalid extended key: zero depth with non-zero child number")


def parse_extended_key(
    text: str, versions: ExtendedKeyVersions = BIP32_MAINNET
) -> ExtendedPrivateKey | ExtendedPublicKey:
    """Parse an extended private or public key, telling them apart by ``versions``."""
    data = _b58_payload(text)
    if len(data) != _SERIALIZED_LENGTH:
        raise ValueError(
            f"invalid extended key: length {len(data)} bytes, expected {_SERIALIZED_LENGTH}"
        )
    version = int.from_bytes(data[:4], "big")
    if version == versions.private:
        return ExtendedPrivateKey.from_bytes(data, version)
    if version == versions.public:
        return ExtendedPublicKey.from_bytes(data, version)
    raise ValueError(
        f"invalid extended key: unknown version 0x{version:08x} "
        f"(expected 0x{versions.private:08x} or 0x{versions.public:08x})"
    )
