"""The daemons' gRPC guard: TLS on 127.0.0.1, admin / read-only macaroons checked by an interceptor."""

from __future__ import annotations

import datetime
import ipaddress
import stat
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from base_chain.rpc import (
    ADMIN_MACAROON_FILE,
    READONLY_MACAROON_FILE,
    ROOT_KEY_FILE,
    TLS_CERT_FILE,
    TLS_KEY_FILE,
    InsufficientPermissions,
    InvalidMacaroon,
    bake,
    channel_for,
    constrain,
    ensure_macaroons,
    ensure_tls,
    make_server,
    permissions_caveat,
    read_rpc_endpoint,
    time_before_caveat,
    verify,
    write_rpc_endpoint,
)

SERVICE = "canal.test.Test"
READ = f"/{SERVICE}/Read"
WRITE = f"/{SERVICE}/Write"
UNMAPPED = f"/{SERVICE}/Unmapped"
STREAM_READ = f"/{SERVICE}/StreamRead"
STREAM_MINE = f"/{SERVICE}/StreamMine"
PERMISSIONS = {
    READ: {"info:read"},
    WRITE: {"onchain:write"},
    STREAM_READ: {"info:read"},
    STREAM_MINE: {"onchain:write"},
}
TIMEOUT = 5.0


def _handlers() -> grpc.GenericRpcHandler:
    def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        return b"ok:" + request

    def stream_read(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        yield b"one"
        yield b"two"

    def stream_mine(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for r in requests:
            yield b"mined:" + r

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Read": grpc.unary_unary_rpc_method_handler(echo),
            "Write": grpc.unary_unary_rpc_method_handler(echo),
            "Unmapped": grpc.unary_unary_rpc_method_handler(echo),
            "StreamRead": grpc.unary_stream_rpc_method_handler(stream_read),
            "StreamMine": grpc.stream_stream_rpc_method_handler(stream_mine),
        },
    )


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    datadir = tmp_path_factory.mktemp("daemon")
    server, port = make_server(datadir, 0, [_handlers()], PERMISSIONS, max_workers=4)
    server.start()
    write_rpc_endpoint(datadir, port)
    try:
        yield datadir, port
    finally:
        server.stop(None)


def _call(channel: grpc.Channel, method: str, metadata: tuple[tuple[str, str], ...] | None = None) -> bytes:
    call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method)
    return call(b"x", timeout=TIMEOUT, metadata=metadata)


def _stream_read(channel: grpc.Channel) -> list[bytes]:
    call: grpc.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(STREAM_READ)
    return list(call(b"", timeout=TIMEOUT))


def _stream_mine(channel: grpc.Channel, requests: Iterator[bytes]) -> list[bytes]:
    call: grpc.StreamStreamMultiCallable[bytes, bytes] = channel.stream_stream(STREAM_MINE)
    return list(call(requests, timeout=TIMEOUT))


def _code_of(channel: grpc.Channel, method: str, metadata: tuple[tuple[str, str], ...] | None = None) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        _call(channel, method, metadata)
    return info.value


def _tls_only(datadir: Path, port: int) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(root_certificates=(datadir / TLS_CERT_FILE).read_bytes())
    return grpc.secure_channel(
        f"127.0.0.1:{port}", creds, options=[("grpc.ssl_target_name_override", "localhost")]
    )


# --- through a real server --------------------------------------------------


def test_admin_can_read_and_write(daemon: tuple[Path, int]) -> None:
    datadir, port = daemon
    with channel_for(datadir, port=port, macaroon="admin") as ch:
        assert _call(ch, WRITE) == b"ok:x"
        assert _call(ch, READ) == b"ok:x"
        assert _stream_read(ch) == [b"one", b"two"]
        assert _stream_mine(ch, iter([b"a", b"b"])) == [b"mined:a", b"mined:b"]


def test_readonly_reads_but_cannot_write(daemon: tuple[Path, int]) -> None:
    datadir, port = daemon
    with channel_for(datadir, port=port, macaroon="readonly") as ch:
        assert _call(ch, READ) == b"ok:x"
        assert _stream_read(ch) == [b"one", b"two"]
        err = _code_of(ch, WRITE)
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        assert err.details() == "permission denied"
        # A streaming write is refused at once, without the server waiting for requests.
        never_ending = iter(lambda: b"block", None)
        with pytest.raises(grpc.RpcError) as info:
            _stream_mine(ch, never_ending)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_channel_finds_daemon_through_rpc_json(daemon: tuple[Path, int]) -> None:
    datadir, port = daemon
    assert read_rpc_endpoint(datadir) == ("127.0.0.1", port)
    with channel_for(datadir) as ch:
        assert _call(ch, READ) == b"ok:x"


def test_no_macaroon_is_unauthenticated(daemon: tuple[Path, int]) -> None:
    datadir, port = daemon
    with _tls_only(datadir, port) as ch:
        err = _code_of(ch, READ)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert err.details() == "expected 1 macaroon, got 0"
        err = _code_of(ch, READ, (("macaroon", "zz"),))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "hex" in (err.details() or "")


def test_two_macaroons_are_refused(daemon: tuple[Path, int]) -> None:
    datadir, port = daemon
    extra = (("macaroon", (datadir / READONLY_MACAROON_FILE).read_bytes().hex()),)
    with channel_for(datadir, port=port) as ch:
        err = _code_of(ch, READ, extra)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert err.details() == "expected 1 macaroon, got 2"


def test_tampered_macaroon_is_unauthenticated(daemon: tuple[Path, int]) -> None:
    datadir, port = daemon
    mac = bytearray((datadir / READONLY_MACAROON_FILE).read_bytes())
    # Widen the permissions caveat in place ("read" -> "writ"-ish bytes) and flip a signature bit.
    for tampered in (bytes(mac[:-1]) + bytes([mac[-1] ^ 1]), bytes(mac).replace(b"info:read", b"info:reae")):
        assert tampered != bytes(mac)
        with _tls_only(datadir, port) as ch:
            err = _code_of(ch, READ, (("macaroon", tampered.hex()),))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "invalid signature" in (err.details() or "")


def test_macaroon_from_another_root_key_is_unauthenticated(daemon: tuple[Path, int], tmp_path: Path) -> None:
    datadir, port = daemon
    ensure_macaroons(tmp_path, {"info:read", "onchain:write"}, {"info:read"})
    with channel_for(datadir, port=port, macaroon=tmp_path / ADMIN_MACAROON_FILE) as ch:
        err = _code_of(ch, READ)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


def test_method_missing_from_permission_map_is_denied(daemon: tuple[Path, int]) -> None:
    datadir, port = daemon
    with channel_for(datadir, port=port, macaroon="admin") as ch:
        for method in (UNMAPPED, f"/{SERVICE}/NoSuchMethod"):
            err = _code_of(ch, method)
            assert err.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "unknown permissions" in (err.details() or "")


def test_attenuated_macaroons_over_the_wire(daemon: tuple[Path, int], tmp_path: Path) -> None:
    datadir, port = daemon
    admin = (datadir / ADMIN_MACAROON_FILE).read_bytes()
    readonly = (datadir / READONLY_MACAROON_FILE).read_bytes()
    # Adding a caveat can only narrow: readonly + "permissions onchain:write" grants nothing new ...
    widened = constrain(readonly, [permissions_caveat({"onchain:write", "info:read"})])
    # ... and admin narrowed to info:read loses write.
    narrowed = constrain(admin, [permissions_caveat({"info:read"})])
    (tmp_path / "widened.macaroon").write_bytes(widened)
    (tmp_path / "narrowed.macaroon").write_bytes(narrowed)
    for name in ("widened.macaroon", "narrowed.macaroon"):
        with channel_for(datadir, port=port, macaroon=tmp_path / name) as ch:
            assert _call(ch, READ) == b"ok:x"
            assert _code_of(ch, WRITE).code() == grpc.StatusCode.PERMISSION_DENIED


def test_plaintext_client_fails(daemon: tuple[Path, int]) -> None:
    datadir, port = daemon
    mac = (datadir / ADMIN_MACAROON_FILE).read_bytes().hex()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        err = _code_of(ch, READ, (("macaroon", mac),))
    assert err.code() == grpc.StatusCode.UNAVAILABLE


def test_client_rejects_a_server_with_another_certificate(daemon: tuple[Path, int], tmp_path: Path) -> None:
    datadir, port = daemon
    ensure_tls(tmp_path)
    ensure_macaroons(tmp_path, {"info:read"}, {"info:read"})
    with channel_for(tmp_path, port=port) as ch:  # pins tmp_path's cert, dials the daemon
        assert _code_of(ch, READ).code() == grpc.StatusCode.UNAVAILABLE


# --- files in the data dir --------------------------------------------------


def test_credentials_made_once_and_reused(tmp_path: Path) -> None:
    names = (TLS_CERT_FILE, TLS_KEY_FILE, ROOT_KEY_FILE, ADMIN_MACAROON_FILE, READONLY_MACAROON_FILE)
    server, _ = make_server(tmp_path, 0, [_handlers()], PERMISSIONS, max_workers=1)
    server.stop(None)
    first = {n: (tmp_path / n).read_bytes() for n in names}
    server, _ = make_server(tmp_path, 0, [_handlers()], PERMISSIONS, max_workers=1)
    server.stop(None)
    assert {n: (tmp_path / n).read_bytes() for n in names} == first
    for secret in (TLS_KEY_FILE, ROOT_KEY_FILE, ADMIN_MACAROON_FILE):
        assert stat.S_IMODE((tmp_path / secret).stat().st_mode) == 0o600, secret
    assert len(first[ROOT_KEY_FILE]) == 32
    assert first[ADMIN_MACAROON_FILE][0] == 2  # binary v2 macaroon, as lnd stores it


def test_macaroons_rebaked_when_root_key_replaced(tmp_path: Path) -> None:
    root1 = ensure_macaroons(tmp_path, {"a:read", "a:write"}, {"a:read"})
    admin1 = (tmp_path / ADMIN_MACAROON_FILE).read_bytes()
    (tmp_path / ROOT_KEY_FILE).unlink()
    root2 = ensure_macaroons(tmp_path, {"a:read", "a:write"}, {"a:read"})
    admin2 = (tmp_path / ADMIN_MACAROON_FILE).read_bytes()
    assert root1 != root2 and admin1 != admin2
    verify(root2, admin2, {"a:write"})
    with pytest.raises(InvalidMacaroon):
        verify(root2, admin1, {"a:read"})


def test_certificate_shape(tmp_path: Path) -> None:
    cert_pem, key_pem = ensure_tls(tmp_path)
    assert b"PRIVATE KEY" in key_pem
    cert = x509.load_pem_x509_certificate(cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    ips = san.get_values_for_type(x509.IPAddress)
    assert ipaddress.ip_address("127.0.0.1") in ips and ipaddress.ip_address("::1") in ips
    pub = cert.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey) and pub.curve.name == "secp256r1"
    lifetime = cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)
    assert datetime.timedelta(days=400) < lifetime <= datetime.timedelta(days=420)
    assert stat.S_IMODE((tmp_path / TLS_KEY_FILE).stat().st_mode) == 0o600


def test_expired_certificate_is_replaced(tmp_path: Path) -> None:
    cert1, _ = ensure_tls(tmp_path)
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=500)
    cert2, _ = ensure_tls(tmp_path, now=later)
    assert cert1 != cert2


def test_corrupt_tls_files_are_an_error(tmp_path: Path) -> None:
    ensure_tls(tmp_path)
    (tmp_path / TLS_KEY_FILE).write_bytes(b"garbage")
    with pytest.raises(ValueError, match="delete"):
        ensure_tls(tmp_path)


# --- the macaroon rules, without a server -----------------------------------


def test_verify_rules() -> None:
    root = bytes(range(32))
    mac = bake(root, {"onchain:read", "info:read"})
    verify(root, mac, {"info:read"})
    verify(root, mac, set())
    with pytest.raises(InsufficientPermissions, match="onchain:write"):
        verify(root, mac, {"onchain:write"})
    # lnd's per-method "uri:" permission
    by_uri = bake(root, {f"uri:{WRITE}"})
    verify(root, by_uri, {"onchain:write"}, uri=WRITE)
    with pytest.raises(InsufficientPermissions):
        verify(root, by_uri, {"onchain:write"}, uri=READ)
    with pytest.raises(InvalidMacaroon, match="signature"):
        verify(bytes(32), mac, {"info:read"})
    with pytest.raises(InvalidMacaroon):
        verify(root, b"", set())
    with pytest.raises(InvalidMacaroon):
        verify(root, mac[: len(mac) // 2], set())
    with pytest.raises(PermissionError):  # both kinds are PermissionError
        verify(root, b"\x02garbage", set())


def test_time_before_caveat() -> None:
    root = bytes(range(32))
    now = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    mac = constrain(bake(root, {"info:read"}), [time_before_caveat(now + datetime.timedelta(minutes=5))])
    verify(root, mac, {"info:read"}, now=now)
    with pytest.raises(InvalidMacaroon, match="expired"):
        verify(root, mac, {"info:read"}, now=now + datetime.timedelta(minutes=5))


def test_unknown_caveat_fails_closed() -> None:
    root = bytes(range(32))
    mac = constrain(bake(root, {"info:read"}), ["ipaddr 10.0.0.1"])
    with pytest.raises(InvalidMacaroon, match="unknown caveat"):
        verify(root, mac, {"info:read"})


def test_port_in_use_is_an_error(daemon: tuple[Path, int], tmp_path: Path) -> None:
    _, port = daemon
    with pytest.raises(OSError, match="cannot listen"):
        make_server(tmp_path, port, [_handlers()], PERMISSIONS, max_workers=1)
