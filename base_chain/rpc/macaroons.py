"""Macaroon credentials for the gRPC API: a root key in the data dir, baked admin and read-only macaroons.

A macaroon is a bearer token signed with an HMAC chain from a root key that
only the daemon knows (``macaroons.key``, 32 random bytes).  Anyone holding
one may *add* first-party caveats (restricting it further), never remove
them.  So every caveat here is a restriction, and a macaroon authorises a
call only when every caveat holds:

``permissions <entity:action> ...``
    the call's required permissions are all in the list (lnd's entity/action
    pairs, e.g. ``onchain:read``, ``offchain:write``, ``info:read``), or the
    list holds ``uri:<full method name>`` for the method being called (lnd's
    per-method ops).  Two such caveats intersect.  A macaroon must carry at
    least one.
``time-before <RFC 3339 time>``
    the call happens before that time (lnd's and the bakery's caveat).

Any other first-party caveat, and any third-party caveat, makes the macaroon
invalid: we fail closed.  Unlike lnd, which keeps its ops in the macaroon
identifier, the permissions are a caveat, so ``readonly.macaroon`` carries
``permissions info:read onchain:read ...`` in the clear and can be inspected
with any macaroon tool.  Files are binary v2 macaroons, as lnd stores them;
on the wire they travel hex-encoded.
"""

from __future__ import annotations

import datetime
import hmac
import secrets
from collections.abc import Iterable, Set
from pathlib import Path
from typing import Any

from pymacaroons import Macaroon, Verifier  # type: ignore[import-untyped]
from pymacaroons.serializers.binary_serializer import BinarySerializer  # type: ignore[import-untyped]

from .tls import write_atomic

ROOT_KEY_FILE = "macaroons.key"
ADMIN_MACAROON_FILE = "admin.macaroon"
READONLY_MACAROON_FILE = "readonly.macaroon"
ROOT_KEY_LEN = 32
#: Identifiers are ``<root key id>:<nonce hex>``; there is one root key, id "0" (lnd's DefaultRootKeyID).
ROOT_KEY_ID = "0"
DEFAULT_LOCATION = "canal"

PERMISSIONS_CAVEAT = "permissions"
TIME_BEFORE_CAVEAT = "time-before"

_MACAROON_V2 = 2


class MacaroonError(PermissionError):
    """A macaroon did not authorise a call; ``str(exc)`` says why."""


class InvalidMacaroon(MacaroonError):
    """Malformed, not signed by our root key, expired, or carrying a caveat we do not know."""


class InsufficientPermissions(MacaroonError):
    """A genuine macaroon that does not grant what the call requires."""


# --- the root key -----------------------------------------------------------


def ensure_root_key(datadir: Path) -> bytes:
    """The root key in ``datadir``, made (32 random bytes, mode 0600) on first start."""
    datadir.mkdir(parents=True, exist_ok=True)
    path = datadir / ROOT_KEY_FILE
    if path.exists():
        key = path.read_bytes()
        if len(key) != ROOT_KEY_LEN:
            raise ValueError(
                f"{path} holds {len(key)} bytes, expected {ROOT_KEY_LEN}; delete it and the "
                "macaroons to make new ones"
            )
        return key
    key = secrets.token_bytes(ROOT_KEY_LEN)
    write_atomic(path, key, 0o600)
    return key


# --- caveats ----------------------------------------------------------------


def _check_permission_name(perm: str) -> None:
    entity, sep, action = perm.partition(":")
    if not sep or not entity or not action or any(c.isspace() for c in perm):
        raise ValueError(f"permission must look like 'entity:action', got {perm!r}")


def permissions_caveat(permissions: Iterable[str]) -> str:
    """``permissions a:read b:write ...`` (sorted), the caveat that limits a macaroon to those permissions."""
    perms = sorted(set(permissions))
    if not perms:
        raise ValueError("a macaroon needs at least one permission")
    for perm in perms:
        _check_permission_name(perm)
    return " ".join([PERMISSIONS_CAVEAT, *perms])


def time_before_caveat(deadline: datetime.datetime) -> str:
    """``time-before 2026-01-02T03:04:05Z``: the macaroon stops working at ``deadline``."""
    if deadline.tzinfo is None:
        raise ValueError("deadline must be timezone-aware")
    utc = deadline.astimezone(datetime.timezone.utc)
    return f"{TIME_BEFORE_CAVEAT} {utc.isoformat().replace('+00:00', 'Z')}"


# --- baking -----------------------------------------------------------------


def _serialize(mac: Any) -> bytes:
    return bytes(BinarySerializer().serialize_raw(mac))


def bake(root_key: bytes, permissions: Set[str], location: str = DEFAULT_LOCATION) -> bytes:
    """A new macaroon (binary v2) granting exactly ``permissions``."""
    identifier = f"{ROOT_KEY_ID}:{secrets.token_hex(16)}".encode()
    mac = Macaroon(location=location, identifier=identifier, key=root_key, version=_MACAROON_V2)
    mac.add_first_party_caveat(permissions_caveat(permissions))
    return _serialize(mac)


def constrain(macaroon: bytes, caveats: Iterable[str]) -> bytes:
    """``macaroon`` with more first-party caveats (no root key needed; can only narrow it).

    E.g. ``constrain(admin, [permissions_caveat({"info:read"}), time_before_caveat(t)])``.
    """
    mac = _parse(macaroon)
    for caveat in caveats:
        mac.add_first_party_caveat(caveat)
    return _serialize(mac)


def ensure_macaroons(
    datadir: Path,
    admin_perms: Set[str],
    readonly_perms: Set[str],
    *,
    location: str = DEFAULT_LOCATION,
) -> bytes:
    """Make sure ``datadir`` holds a root key, ``admin.macaroon`` and ``readonly.macaroon``; return the root key.

    Existing macaroon files are kept byte for byte when they are signed by the
    root key and grant exactly the requested permissions; otherwise (first
    start, root key replaced, permission set changed) they are baked anew.
    ``admin.macaroon`` is written 0600, ``readonly.macaroon`` 0644 (as lnd).
    """
    root_key = ensure_root_key(datadir)
    for name, perms, mode in (
        (ADMIN_MACAROON_FILE, admin_perms, 0o600),
        (READONLY_MACAROON_FILE, readonly_perms, 0o644),
    ):
        path = datadir / name
        if path.exists() and _is_current(root_key, path.read_bytes(), perms):
            continue
        write_atomic(path, bake(root_key, perms, location), mode)
    return root_key


def _is_current(root_key: bytes, macaroon: bytes, perms: Set[str]) -> bool:
    try:
        mac = _authentic(root_key, macaroon)
        return _caveats(mac) == [permissions_caveat(perms)]
    except (MacaroonError, ValueError):
        return False


# --- verifying --------------------------------------------------------------


def _parse(macaroon: bytes) -> Any:
    if not macaroon or macaroon[0] != _MACAROON_V2:
        raise InvalidMacaroon("not a version 2 binary macaroon")
    try:
        return BinarySerializer().deserialize_raw(macaroon)
    except Exception as exc:  # pymacaroons raises anything from struct.error to bare Exception
        raise InvalidMacaroon(f"malformed macaroon: {exc}") from exc


def _caveats(mac: Any) -> list[str]:
    if mac.third_party_caveats():
        raise InvalidMacaroon("third-party caveats are not supported")
    out = []
    for caveat in mac.first_party_caveats():
        try:
            out.append(bytes(caveat.caveat_id_bytes).decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise InvalidMacaroon("caveat is not UTF-8") from exc
    return out


def _authentic(root_key: bytes, macaroon: bytes) -> Any:
    """The parsed macaroon, once its identifier and signature chain check out against ``root_key``."""
    mac = _parse(macaroon)
    key_id, sep, nonce = bytes(mac.identifier_bytes).partition(b":")
    if not sep or not nonce or not hmac.compare_digest(key_id, ROOT_KEY_ID.encode()):
        raise InvalidMacaroon("unknown root key id")
    _caveats(mac)  # reject third-party / non-UTF-8 caveats before the HMAC check
    verifier = Verifier()
    verifier.satisfy_general(lambda _predicate: True)  # caveats are judged afterwards, with reasons
    try:
        verifier.verify(mac, root_key)
    except Exception as exc:
        raise InvalidMacaroon("invalid signature") from exc
    return mac


def verify(
    root_key: bytes,
    macaroon: bytes,
    required: Set[str],
    *,
    uri: str | None = None,
    now: datetime.datetime | None = None,
) -> None:
    """Check that ``macaroon`` authorises a call needing ``required`` (to method ``uri``, if given).

    Raises ``InvalidMacaroon`` (bad encoding, bad signature, unknown or
    unsatisfied caveat such as an expired ``time-before``) or
    ``InsufficientPermissions`` (genuine but lacking a permission); both are
    ``PermissionError``.
    """
    mac = _authentic(root_key, macaroon)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    seen_permissions = False
    for caveat in _caveats(mac):
        kind, _, arg = caveat.partition(" ")
        if kind == PERMISSIONS_CAVEAT:
            seen_permissions = True
            _check_permissions(arg, required, uri)
        elif kind == TIME_BEFORE_CAVEAT:
            _check_time_before(arg, now)
        else:
            raise InvalidMacaroon(f"unknown caveat {caveat[:64]!r}")
    if not seen_permissions:
        raise InvalidMacaroon("macaroon carries no permissions caveat")


def _check_permissions(arg: str, required: Set[str], uri: str | None) -> None:
    allowed = set(arg.split())
    if not allowed:
        raise InvalidMacaroon("empty permissions caveat")
    if uri is not None and f"uri:{uri}" in allowed:
        return
    missing = set(required) - allowed
    if missing:
        raise InsufficientPermissions(f"missing permission {', '.join(sorted(missing))}")


def _check_time_before(arg: str, now: datetime.datetime) -> None:
    try:
        deadline = datetime.datetime.fromisoformat(arg)
    except ValueError as exc:
        raise InvalidMacaroon(f"malformed time-before caveat {arg[:40]!r}") from exc
    if deadline.tzinfo is None:
        raise InvalidMacaroon("time-before caveat without a timezone")
    if now >= deadline:
        raise InvalidMacaroon("macaroon has expired")
