"""The daemons' gRPC server: TLS on 127.0.0.1 and a macaroon check in front of every method (as lnd does).

Every call must carry one macaroon, hex-encoded, in the ``macaroon``
metadata key.  The interceptor looks up the method's required permissions in
a map; a method missing from the map is refused (fail closed), so adding a
service without adding its permissions cannot open it up.

Status codes, with lnd's wording where lnd has one:

- method not in the map: ``PERMISSION_DENIED`` "<method>: unknown permissions required for method"
- no / several macaroons: ``UNAUTHENTICATED`` "expected 1 macaroon, got N"
- not hex, malformed, bad signature, expired, unknown caveat: ``UNAUTHENTICATED`` with the reason
- genuine but lacking a permission: ``PERMISSION_DENIED`` "permission denied"
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Set
from concurrent import futures
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import grpc

from .macaroons import InsufficientPermissions, MacaroonError, ensure_macaroons, verify
from .tls import ensure_tls

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")

MACAROON_METADATA_KEY = "macaroon"
RPC_HOST = "127.0.0.1"

#: Map of full method name ("/pkg.Service/Method") to the permissions it requires.
PermissionMap = Mapping[str, Iterable[str]]


def _deny(code: grpc.StatusCode, details: str) -> grpc.RpcMethodHandler[Any, Any]:
    # A request-streaming handler aborts without waiting for (or decoding) any
    # request message, whatever the real method's shape; on the wire a unary
    # call and a streaming one look the same to it.
    def behavior(_requests: Iterator[bytes], context: grpc.ServicerContext) -> NoReturn:
        context.abort(code, details)

    return grpc.stream_unary_rpc_method_handler(behavior)


class MacaroonInterceptor(grpc.ServerInterceptor):
    """Refuses every call whose macaroon does not grant the method's permissions."""

    def __init__(self, root_key: bytes, permissions: PermissionMap) -> None:
        self._root_key = root_key
        self._permissions: dict[str, frozenset[str]] = {
            method: frozenset(perms) for method, perms in permissions.items()
        }

    def check(self, method: str, metadata: Iterable[tuple[str, str | bytes]]) -> tuple[grpc.StatusCode, str] | None:
        """``None`` if the call may proceed, else the status code and message to refuse it with."""
        required = self._permissions.get(method)
        if required is None:
            return grpc.StatusCode.PERMISSION_DENIED, f"{method}: unknown permissions required for method"
        values = [value for key, value in metadata if key == MACAROON_METADATA_KEY]
        if len(values) != 1:
            return grpc.StatusCode.UNAUTHENTICATED, f"expected 1 macaroon, got {len(values)}"
        value = values[0]
        try:
            text = value.decode("ascii") if isinstance(value, bytes) else value
            raw = bytes.fromhex(text)
        except ValueError:  # includes UnicodeDecodeError
            return grpc.StatusCode.UNAUTHENTICATED, "macaroon is not valid hex"
        try:
            verify(self._root_key, raw, required, uri=method)
        except InsufficientPermissions:
            return grpc.StatusCode.PERMISSION_DENIED, "permission denied"
        except MacaroonError as exc:
            return grpc.StatusCode.UNAUTHENTICATED, f"invalid macaroon: {exc}"
        return None

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[_Req, _Resp] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[_Req, _Resp] | None:
        refusal = self.check(handler_call_details.method, handler_call_details.invocation_metadata or ())
        if refusal is not None:
            return _deny(*refusal)
        return continuation(handler_call_details)


def default_macaroon_permissions(permissions: PermissionMap) -> tuple[set[str], set[str]]:
    """``(admin, readonly)`` for a permission map: admin gets every permission the map uses,
    readonly every ``*:read`` one (lnd's split)."""
    every: set[str] = set()
    for perms in permissions.values():
        every.update(perms)
    return every, {perm for perm in every if perm.endswith(":read")}


def make_server(
    datadir: Path,
    bind_port: int,
    handlers: Iterable[grpc.GenericRpcHandler],
    permissions: PermissionMap,
    *,
    max_workers: int = 8,
    admin_permissions: Set[str] | None = None,
    readonly_permissions: Set[str] | None = None,
) -> tuple[grpc.Server, int]:
    """A TLS gRPC server on 127.0.0.1 guarded by a ``MacaroonInterceptor``; returns ``(server, port)``.

    Makes ``tls.cert``/``tls.key``, the root key and ``admin.macaroon``/
    ``readonly.macaroon`` in ``datadir`` if needed (their permissions default
    to ``default_macaroon_permissions(permissions)``).  ``bind_port`` 0 picks
    a free port; the port actually bound is returned.  The server is not
    started: register any generated servicers (``add_XServicer_to_server``),
    then call ``server.start()``.
    """
    cert_pem, key_pem = ensure_tls(datadir)
    default_admin, default_readonly = default_macaroon_permissions(permissions)
    root_key = ensure_macaroons(
        datadir,
        admin_permissions if admin_permissions is not None else default_admin,
        readonly_permissions if readonly_permissions is not None else default_readonly,
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        interceptors=[MacaroonInterceptor(root_key, permissions)],
        # gRPC sets SO_REUSEPORT by default, which would let two daemons share a port unnoticed.
        options=[("grpc.so_reuseport", 0)],
    )
    server.add_generic_rpc_handlers(list(handlers))
    address = f"{RPC_HOST}:{bind_port}"
    try:
        port = server.add_secure_port(address, grpc.ssl_server_credentials([(key_pem, cert_pem)]))
    except RuntimeError as exc:  # recent grpcio raises; older ones return 0
        raise OSError(f"cannot listen on {address}: {exc}") from exc
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return server, port
