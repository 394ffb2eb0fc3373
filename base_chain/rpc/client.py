"""Connecting to a daemon the way lncli connects to lnd: its tls.cert, a macaroon and rpc.json from its data dir."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import grpc

from .macaroons import ADMIN_MACAROON_FILE, READONLY_MACAROON_FILE
from .server import MACAROON_METADATA_KEY, RPC_HOST
from .tls import TLS_CERT_FILE, write_atomic

RPC_ENDPOINT_FILE = "rpc.json"
#: The certificate names "localhost" (and 127.0.0.1, ::1); verifying against it works for any host we dial.
_TLS_TARGET_NAME = "localhost"

MacaroonChoice = Literal["admin", "readonly"]


class _MacaroonCredentials(grpc.AuthMetadataPlugin):
    """Adds ``macaroon: <hex>`` to the metadata of every call."""

    def __init__(self, macaroon: bytes) -> None:
        self._metadata = ((MACAROON_METADATA_KEY, macaroon.hex()),)

    def __call__(self, context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback) -> None:
        callback(self._metadata, None)


def macaroon_path(datadir: Path, macaroon: MacaroonChoice | Path) -> Path:
    """The macaroon file for ``"admin"`` / ``"readonly"`` in ``datadir``, or ``macaroon`` itself if a path."""
    if isinstance(macaroon, Path):
        return macaroon
    if macaroon == "admin":
        return datadir / ADMIN_MACAROON_FILE
    if macaroon == "readonly":
        return datadir / READONLY_MACAROON_FILE
    raise ValueError(f"macaroon must be 'admin', 'readonly' or a Path, not {macaroon!r}")


def credentials_for(datadir: Path, macaroon: MacaroonChoice | Path = "admin") -> grpc.ChannelCredentials:
    """TLS pinned to ``datadir/tls.cert``, plus the macaroon on every call."""
    cert_pem = (datadir / TLS_CERT_FILE).read_bytes()
    mac = macaroon_path(datadir, macaroon).read_bytes()
    return grpc.composite_channel_credentials(
        grpc.ssl_channel_credentials(root_certificates=cert_pem),
        grpc.metadata_call_credentials(_MacaroonCredentials(mac), name="macaroon"),
    )


def channel_for(
    datadir: Path,
    *,
    host: str | None = None,
    port: int | None = None,
    macaroon: MacaroonChoice | Path = "admin",
) -> grpc.Channel:
    """A secure channel to the daemon whose data dir is ``datadir``.

    Without ``port``, the daemon's ``rpc.json`` says where it listens;
    otherwise ``host`` defaults to 127.0.0.1.  The channel pins the daemon's
    ``tls.cert`` and sends the chosen macaroon (hex, metadata key
    ``macaroon``) with every call.  Close it when done.
    """
    if port is None:
        found_host, port = read_rpc_endpoint(datadir)
        host = host if host is not None else found_host
    elif host is None:
        host = RPC_HOST
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return grpc.secure_channel(
        target,
        credentials_for(datadir, macaroon),
        options=[("grpc.ssl_target_name_override", _TLS_TARGET_NAME)],
    )


def write_rpc_endpoint(datadir: Path, port: int, host: str = RPC_HOST) -> None:
    """Record where the daemon listens (``rpc.json``: ``{"host": ..., "port": ...}``), for CLIs to find it."""
    data = json.dumps({"host": host, "port": port}, sort_keys=True).encode() + b"\n"
    write_atomic(datadir / RPC_ENDPOINT_FILE, data, 0o644)


def read_rpc_endpoint(datadir: Path) -> tuple[str, int]:
    """``(host, port)`` from ``datadir/rpc.json``."""
    path = datadir / RPC_ENDPOINT_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} not found: is the daemon running with this data dir?") from None
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    host = data.get("host") if isinstance(data, dict) else None
    port = data.get("port") if isinstance(data, dict) else None
    if not isinstance(host, str) or not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ValueError(f'{path} must hold {{"host": str, "port": int}}, got {data!r}')
    return host, port
