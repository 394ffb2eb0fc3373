"""The two secp256k1 backends agree on keys, signatures, recovery, ECDH and point arithmetic."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from base_chain import crypto
from base_chain.crypto import PrivateKey, PublicKey

BACKENDS = crypto.available_backends()
secrets_st = st.integers(min_value=1, max_value=crypto.N - 1)
msgs = st.binary(min_size=1, max_size=64).map(lambda b: hashlib.sha256(b).digest())


@pytest.fixture
def restore_backend() -> Iterator[None]:
    name = crypto.get_backend().name
    yield
    crypto.set_backend(name)


def test_both_backends_installed() -> None:
    assert BACKENDS == ["ecdsa", "coincurve"]


def _with(backend: str, fn):  # type: ignore[no-untyped-def]
    crypto.set_backend(backend)
    return fn()


@settings(max_examples=30, deadline=None)
@given(secret=secrets_st, msg=msgs, other=secrets_st)
def test_backends_agree(secret: int, msg: bytes, other: int) -> None:
    results = []
    for backend in BACKENDS:
        crypto.set_backend(backend)
        k = PrivateKey(secret)
        pub = k.public_key()
        der = k.sign_der(msg)
        sig64, recid = k.sign_recoverable(msg)
        results.append((
            pub.to_bytes(), pub.to_bytes(compressed=False), der, sig64, recid,
            k.ecdh(PrivateKey(other).public_key()),
            pub.tweak_add(other).to_bytes(), pub.multiply(other).to_bytes(),
        ))
        assert PublicKey.from_bytes(pub.to_bytes()).verify_der(der, msg)
        assert PublicKey.recover(sig64, recid, msg) == pub
        assert not pub.verify_der(der, hashlib.sha256(msg).digest())
    crypto.set_backend("ecdsa")
    assert all(r == results[0] for r in results)


def test_signatures_are_low_s_and_high_s_still_verifies(restore_backend: None) -> None:
    msg = hashlib.sha256(b"low s").digest()
    for backend in BACKENDS:
        crypto.set_backend(backend)
        k = PrivateKey(12345)
        r, s = k.sign(msg)
        assert crypto.is_low_s(s)
        # Core's verification normalizes s, so the malleated twin verifies too.
        assert k.public_key().verify(r, crypto.N - s, msg)
        assert not k.public_key().verify(r, s + 1, msg)


def test_invalid_keys_rejected() -> None:
    for bad in (b"", b"\x02" + b"\x00" * 32, b"\x04" + b"\x01" * 64, b"\x05" + b"\x00" * 32):
        with pytest.raises(ValueError):
            PublicKey.from_bytes(bad)
    for secret in (0, crypto.N, crypto.N + 1):
        with pytest.raises(ValueError):
            PrivateKey(secret)


def test_unknown_backend_is_a_clear_error(restore_backend: None) -> None:
    with pytest.raises(ValueError, match="unknown crypto backend"):
        crypto.set_backend("openssl")


@settings(max_examples=40, deadline=None)
@given(secret=secrets_st, noise=st.binary(min_size=0, max_size=66))
def test_backends_parse_keys_alike(secret: int, noise: bytes) -> None:
    """Every SEC encoding (compressed, uncompressed, hybrid) parses to the same point on both backends,
    and everything else is a ValueError on both (PublicKey.from_bytes goes through the backend)."""
    pub = PrivateKey(secret).public_key()
    full = pub.to_bytes(compressed=False)
    odd = full[-1] & 1
    flipped = bytearray(full)
    flipped[-1] ^= 1
    cases = [pub.to_bytes(), full, bytes([6 + odd]) + full[1:], bytes([7 - odd]) + full[1:], bytes(flipped),
             b"\x02" + (2**256 - 1).to_bytes(32, "big"), b"\x03" + bytes(32), b"\x05" + full[1:33], noise,
             bytes([2 + (noise[:1] or b"\0")[0] % 2]) + noise[1:33].rjust(32, b"\1")]
    outcomes: dict[str, list[object]] = {}
    for backend in BACKENDS:
        crypto.set_backend(backend)
        impl = crypto.get_backend()
        outcomes[backend] = []
        for sec in cases:
            try:
                outcomes[backend].append(impl.decode(sec))
            except ValueError:
                outcomes[backend].append(ValueError)
    crypto.set_backend("ecdsa")
    assert outcomes["ecdsa"] == outcomes["coincurve"]
    assert outcomes["ecdsa"][:3] == [pub.point] * 3 and outcomes["ecdsa"][3:5] == [ValueError] * 2
