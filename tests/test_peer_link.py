"""BOLT 8 + BOLT 1 over real TCP on 127.0.0.1: handshake, init, ping, and bad peers."""

from __future__ import annotations

import functools

import pytest
import trio

from base_chain.crypto import PrivateKey
from base_chain.params import get_params
from channels.features import Features
from channels.peer import PeerLink, PeerLinkError, accept, connect, parse_node_uri
from channels.wire import Ping, WarningMessage

CHAIN = get_params("regtest").genesis_hash
ALPHA = get_params("alpha").genesis_hash


async def _serve(key: PrivateKey, chain: bytes, results: list, nursery: trio.Nursery) -> int:
    async def handler(stream: trio.SocketStream) -> None:
        try:
            link = await accept(stream, key, chain)
        except PeerLinkError as e:
            results.append(e)
            return
        results.append(link)
        try:
            while True:
                msg = await link.receive()
                results.append(msg)
        except PeerLinkError as e:
            results.append(e)

    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return listeners[0].socket.getsockname()[1]  # type: ignore[no-any-return]


async def test_handshake_init_and_messages() -> None:
    server_key, client_key = PrivateKey(11), PrivateKey(22)
    results: list = []
    async with trio.open_nursery() as nursery:
        port = await _serve(server_key, CHAIN, results, nursery)
        link = await connect("127.0.0.1", port, client_key, server_key.public_key(), CHAIN)
        assert link.remote_node_id == server_key.public_key()
        assert link.their_init is not None and link.their_init.networks == (CHAIN,)
        await link.send(Ping.create(4))  # answered inside the server's receive loop
        await link.send(WarningMessage(data=b"just saying"))
        with trio.fail_after(5):
            while not any(isinstance(r, WarningMessage) for r in results):
                await trio.sleep(0.01)
        server_link = next(r for r in results if isinstance(r, PeerLink))
        assert server_link.remote_node_id == client_key.public_key()
        # A malformed message closes that connection with an error, not the server.
        await link.stream.send_all(link.transport.encrypt(b"\x00\x10\xff"))  # a truncated init
        with trio.fail_after(5):
            while not any(isinstance(r, PeerLinkError) for r in results):
                await trio.sleep(0.01)
        again = await connect("127.0.0.1", port, PrivateKey(33), server_key.public_key(), CHAIN)
        await again.aclose()
        await link.aclose()
        nursery.cancel_scope.cancel()


async def test_wrong_node_id_fails_handshake() -> None:
    results: list = []
    async with trio.open_nursery() as nursery:
        port = await _serve(PrivateKey(11), CHAIN, results, nursery)
        with pytest.raises(PeerLinkError, match="handshake"):
            await connect("127.0.0.1", port, PrivateKey(22), PrivateKey(99).public_key(), CHAIN)
        nursery.cancel_scope.cancel()


async def test_other_chain_is_refused() -> None:
    results: list = []
    async with trio.open_nursery() as nursery:
        port = await _serve(PrivateKey(11), ALPHA, results, nursery)
        with pytest.raises(PeerLinkError):
            link = await connect("127.0.0.1", port, PrivateKey(22), PrivateKey(11).public_key(), CHAIN)
            await link.receive()
        nursery.cancel_scope.cancel()


async def test_unknown_required_feature_is_refused() -> None:
    results: list = []
    async with trio.open_nursery() as nursery:
        port = await _serve(PrivateKey(11), CHAIN, results, nursery)
        weird = Features.from_bits([100])
        with pytest.raises(PeerLinkError):
            link = await connect("127.0.0.1", port, PrivateKey(22), PrivateKey(11).public_key(), CHAIN, weird)
            await link.receive()
        nursery.cancel_scope.cancel()


def test_parse_node_uri() -> None:
    key = PrivateKey(5).public_key()
    node, host, port = parse_node_uri(f"{key.to_bytes().hex()}@127.0.0.1:9735")
    assert node == key and host == "127.0.0.1" and port == 9735
    for bad in ("nope", f"{key.to_bytes().hex()}@127.0.0.1", "00@127.0.0.1:1"):
        with pytest.raises(ValueError):
            parse_node_uri(bad)
