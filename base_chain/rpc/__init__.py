"""gRPC plumbing shared by the daemons: TLS cert, macaroons, the authenticating server and the client channel."""

from .client import channel_for, credentials_for, read_rpc_endpoint, write_rpc_endpoint
from .macaroons import (
    ADMIN_MACAROON_FILE,
    READONLY_MACAROON_FILE,
    ROOT_KEY_FILE,
    InsufficientPermissions,
    InvalidMacaroon,
    MacaroonError,
    bake,
    constrain,
    ensure_macaroons,
    ensure_root_key,
    permissions_caveat,
    time_before_caveat,
    verify,
)
from .server import MacaroonInterceptor, PermissionMap, default_macaroon_permissions, make_server
from .tls import TLS_CERT_FILE, TLS_KEY_FILE, ensure_tls

__all__ = [
    "ADMIN_MACAROON_FILE",
    "READONLY_MACAROON_FILE",
    "ROOT_KEY_FILE",
    "TLS_CERT_FILE",
    "TLS_KEY_FILE",
    "InsufficientPermissions",
    "InvalidMacaroon",
    "MacaroonError",
    "MacaroonInterceptor",
    "PermissionMap",
    "bake",
    "channel_for",
    "constrain",
    "credentials_for",
    "default_macaroon_permissions",
    "ensure_macaroons",
    "ensure_root_key",
    "ensure_tls",
    "make_server",
    "permissions_caveat",
    "read_rpc_endpoint",
    "time_before_caveat",
    "verify",
    "write_rpc_endpoint",
]
