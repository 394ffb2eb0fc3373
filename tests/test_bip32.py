"""BIP32 extended keys and the BIP84 keychain.

Known-answer values are copied from the BIP texts (bitcoin/bips
bip-0032.mediawiki "Test Vectors" 1-5 and bip-0084.mediawiki "Test vectors");
they are not in ../shared/vectors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings, strategies as st

from base_chain import bip32, crypto
from base_chain.address import MAINNET, REGTEST, b58check_decode, b58check_encode, script_to_address
from base_chain.bip32 import (
    BIP32_MAINNET,
    BIP32_TESTNET,
    BIP84_MAINNET,
    BIP84_TESTNET,
    HARDENED,
    TPRV,
    TPUB,
    VPRV,
    VPUB,
    XPRV,
    XPUB,
    ZPRV,
    ZPUB,
    ExtendedKeyVersions,
    ExtendedPrivateKey,
    ExtendedPublicKey,
    format_path,
    hardened,
    is_hardened,
    parse_extended_key,
    parse_path,
)
from base_chain.hashes import hash160
from base_chain.keychain import CHANGE, RECEIVE, Keychain
from base_chain.templates import p2wpkh

BACKENDS = crypto.available_backends()


@contextmanager
def using(name: str) -> Iterator[None]:
    """Switch the crypto backend for the duration, then restore the previous one."""
    previous = crypto.get_backend().name
    crypto.set_backend(name)
    try:
        yield
    finally:
        crypto.set_backend(previous)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    with using(request.param):
        yield request.param


# --------------------------------------------------------------------------
# BIP32 test vectors 1-4: (seed hex, [(path, ext pub, ext prv), ...])
# --------------------------------------------------------------------------

VECTORS = [
    # Test vector 1
    (
        "000102030405060708090a0b0c0d0e0f",
        [
            (
                "m",
                "xpub661MyMwAqRbcFtXgS5sYJABqqG9YLmC4Q1Rdap9gSE8NqtwybGhePY2gZ29ESFjqJoCu1Rupje8YtGqsefD265TMg7usUDFdp6W1EGMcet8",
                "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHi",
            ),
            (
                "m/0'",
                "xpub68Gmy5EdvgibQVfPdqkBBCHxA5htiqg55crXYuXoQRKfDBFA1WEjWgP6LHhwBZeNK1VTsfTFUHCdrfp1bgwQ9xv5ski8PX9rL2dZXvgGDnw",
                "xprv9uHRZZhk6KAJC1avXpDAp4MDc3sQKNxDiPvvkX8Br5ngLNv1TxvUxt4cV1rGL5hj6KCesnDYUhd7oWgT11eZG7XnxHrnYeSvkzY7d2bhkJ7",
            ),
            (
                "m/0'/1",
                "xpub6ASuArnXKPbfEwhqN6e3mwBcDTgzisQN1wXN9BJcM47sSikHjJf3UFHKkNAWbWMiGj7Wf5uMash7SyYq527Hqck2AxYysAA7xmALppuCkwQ",
                "xprv9wTYmMFdV23N2TdNG573QoEsfRrWKQgWeibmLntzniatZvR9BmLnvSxqu53Kw1UmYPxLgboyZQaXwTCg8MSY3H2EU4pWcQDnRnrVA1xe8fs",
            ),
            (
                "m/0'/1/2'",
                "xpub6D4BDPcP2GT577Vvch3R8wDkScZWzQzMMUm3PWbmWvVJrZwQY4VUNgqFJPMM3No2dFDFGTsxxpG5uJh7n7epu4trkrX7x7DogT5Uv6fcLW5",
                "xprv9z4pot5VBttmtdRTWfWQmoH1taj2axGVzFqSb8C9xaxKymcFzXBDptWmT7FwuEzG3ryjH4ktypQSAewRiNMjANTtpgP4mLTj34bhnZX7UiM",
            ),
            (
                "m/0'/1/2'/2",
                "xpub6FHa3pjLCk84BayeJxFW2SP4XRrFd1JYnxeLeU8EqN3vDfZmbqBqaGJAyiLjTAwm6ZLRQUMv1ZACTj37sR62cfN7fe5JnJ7dh8zL4fiyLHV",
                "xprvA2JDeKCSNNZky6uBCviVfJSKyQ1mDYahRjijr5idH2WwLsEd4Hsb2Tyh8RfQMuPh7f7RtyzTtdrbdqqsunu5Mm3wDvUAKRHSC34sJ7in334",
            ),
            (
                "m/0'/1/2'/2/1000000000",
                "xpub6H1LXWLaKsWFhvm6RVpEL9P4KfRZSW7abD2ttkWP3SSQvnyA8FSVqNTEcYFgJS2UaFcxupHiYkro49S8yGasTvXEYBVPamhGW6cFJodrTHy",
                "xprvA41z7zogVVwxVSgdKUHDy1SKmdb533PjDz7J6N6mV6uS3ze1ai8FHa8kmHScGpWmj4WggLyQjgPie1rFSruoUihUZREPSL39UNdE3BBDu76",
            ),
        ],
    ),
    # Test vector 2
    (
        "fffcf9f6f3f0edeae7e4e1dedbd8d5d2cfccc9c6c3c0bdbab7b4b1aeaba8a5a29f9c999693908d8a8784817e7b7875726f6c696663605d5a5754514e4b484542",
        [
            (
                "m",
                "xpub661MyMwAqRbcFW31YEwpkMuc5THy2PSt5bDMsktWQcFF8syAmRUapSCGu8ED9W6oDMSgv6Zz8idoc4a6mr8BDzTJY47LJhkJ8UB7WEGuduB",
                "xprv9s21ZrQH143K31xYSDQpPDxsXRTUcvj2iNHm5NUtrGiGG5e2DtALGdso3pGz6ssrdK4PFmM8NSpSBHNqPqm55Qn3LqFtT2emdEXVYsCzC2U",
            ),
            (
                "m/0",
                "xpub69H7F5d8KSRgmmdJg2KhpAK8SR3DjMwAdkxj3ZuxV27CprR9LgpeyGmXUbC6wb7ERfvrnKZjXoUmmDznezpbZb7ap6r1D3tgFxHmwMkQTPH",
                "xprv9vHkqa6EV4sPZHYqZznhT2NPtPCjKuDKGY38FBWLvgaDx45zo9WQRUT3dKYnjwih2yJD9mkrocEZXo1ex8G81dwSM1fwqWpWkeS3v86pgKt",
            ),
            (
                "m/0/2147483647'",
                "xpub6ASAVgeehLbnwdqV6UKMHVzgqAG8Gr6riv3Fxxpj8ksbH9ebxaEyBLZ85ySDhKiLDBrQSARLq1uNRts8RuJiHjaDMBU4Zn9h8LZNnBC5y4a",
                "xprv9wSp6B7kry3Vj9m1zSnLvN3xH8RdsPP1Mh7fAaR7aRLcQMKTR2vidYEeEg2mUCTAwCd6vnxVrcjfy2kRgVsFawNzmjuHc2YmYRmagcEPdU9",
            ),
            (
                "m/0/2147483647'/1",
                "xpub6DF8uhdarytz3FWdA8TvFSvvAh8dP3283MY7p2V4SeE2wyWmG5mg5EwVvmdMVCQcoNJxGoWaU9DCWh89LojfZ537wTfunKau47EL2dhHKon",
                "xprv9zFnWC6h2cLgpmSA46vutJzBcfJ8yaJGg8cX1e5StJh45BBciYTRXSd25UEPVuesF9yog62tGAQtHjXajPPdbRCHuWS6T8XA2ECKADdw4Ef",
            ),
            (
                "m/0/2147483647'/1/2147483646'",
                "xpub6ERApfZwUNrhLCkDtcHTcxd75RbzS1ed54G1LkBUHQVHQKqhMkhgbmJbZRkrgZw4koxb5JaHWkY4ALHY2grBGRjaDMzQLcgJvLJuZZvRcEL",
                "xprvA1RpRA33e1JQ7ifknakTFpgNXPmW2YvmhqLQYMmrj4xJXXWYpDPS3xz7iAxn8L39njGVyuoseXzU6rcxFLJ8HFsTjSyQbLYnMpCqE2VbFWc",
            ),
            (
                "m/0/2147483647'/1/2147483646'/2",
                "xpub6FnCn6nSzZAw5Tw7cgR9bi15UV96gLZhjDstkXXxvCLsUXBGXPdSnLFbdpq8p9HmGsApME5hQTZ3emM2rnY5agb9rXpVGyy3bdW6EEgAtqt",
                "xprvA2nrNbFZABcdryreWet9Ea4LvTJcGsqrMzxHx98MMrotbir7yrKCEXw7nadnHM8Dq38EGfSh6dqA9QWTyefMLEcBYJUuekgW4BYPJcr9E7j",
            ),
        ],
    ),
    # Test vector 3 (retention of leading zeros)
    (
        "4b381541583be4423346c643850da4b320e46a87ae3d2a4e6da11eba819cd4acba45d239319ac14f863b8d5ab5a0d0c64d2e8a1e7d1457df2e5a3c51c73235be",
        [
            (
                "m",
                "xpub661MyMwAqRbcEZVB4dScxMAdx6d4nFc9nvyvH3v4gJL378CSRZiYmhRoP7mBy6gSPSCYk6SzXPTf3ND1cZAceL7SfJ1Z3GC8vBgp2epUt13",
                "xprv9s21ZrQH143K25QhxbucbDDuQ4naNntJRi4KUfWT7xo4EKsHt2QJDu7KXp1A3u7Bi1j8ph3EGsZ9Xvz9dGuVrtHHs7pXeTzjuxBrCmmhgC6",
            ),
            (
                "m/0'",
                "xpub68NZiKmJWnxxS6aaHmn81bvJeTESw724CRDs6HbuccFQN9Ku14VQrADWgqbhhTHBaohPX4CjNLf9fq9MYo6oDaPPLPxSb7gwQN3ih19Zm4Y",
                "xprv9uPDJpEQgRQfDcW7BkF7eTya6RPxXeJCqCJGHuCJ4GiRVLzkTXBAJMu2qaMWPrS7AANYqdq6vcBcBUdJCVVFceUvJFjaPdGZ2y9WACViL4L",
            ),
        ],
    ),
    # Test vector 4 (retention of leading zeros, btcsuite/btcutil#172)
    (
        "3ddd5602285899a946114506157c7997e5444528f3003f6134712147db19b678",
        [
            (
                "m",
                "xpub661MyMwAqRbcGczjuMoRm6dXaLDEhW1u34gKenbeYqAix21mdUKJyuyu5F1rzYGVxyL6tmgBUAEPrEz92mBXjByMRiJdba9wpnN37RLLAXa",
                "xprv9s21ZrQH143K48vGoLGRPxgo2JNkJ3J3fqkirQC2zVdk5Dgd5w14S7fRDyHH4dWNHUgkvsvNDCkvAwcSHNAQwhwgNMgZhLtQC63zxwhQmRv",
            ),
            (
                "m/0'",
                "xpub69AUMk3qDBi3uW1sXgjCmVjJ2G6WQoYSnNHyzkmdCHEhSZ4tBok37xfFEqHd2AddP56Tqp4o56AePAgCjYdvpW2PU2jbUPFKsav5ut6Ch1m",
                "xprv9vB7xEWwNp9kh1wQRfCCQMnZUEG21LpbR9NPCNN1dwhiZkjjeGRnaALmPXCX7SgjFTiCTT6bXes17boXtjq3xLpcDjzEuGLQBM5ohqkao9G",
            ),
            (
                "m/0'/1'",
                "xpub6BJA1jSqiukeaesWfxe6sNK9CCGaujFFSJLomWHprUL9DePQ4JDkM5d88n49sMGJxrhpjazuXYWdMf17C9T5XnxkopaeS7jGk1GyyVziaMt",
                "xprv9xJocDuwtYCMNAo3Zw76WENQeAS6WGXQ55RCy7tDJ8oALr4FWkuVoHJeHVAcAqiZLE7Je3vZJHxspZdFHfnBEjHqU5hG1Jaj32dVoS6XLT1",
            ),
        ],
    ),
]

# (vector number, seed hex, path, ext pub, ext prv), one per chain
CHAINS = [
    pytest.param(seed, path, xpub, xprv, id=f"v{n}-{path}")
    for n, (seed, chains) in enumerate(VECTORS, start=1)
    for path, xpub, xprv in chains
]

# BIP32 test vector 5: (key, the BIP's reason, the reason our message gives)
INVALID_KEYS = [
    (
        "xpub661MyMwAqRbcEYS8w7XLSVeEsBXy79zSzH1J8vCdxAZningWLdN3zgtU6LBpB85b3D2yc8sfvZU521AAwdZafEz7mnzBBsz4wKY5fTtTQBm",
        "pubkey version / prvkey mismatch",
        "invalid public key prefix 0x00",
    ),
    (
        "xprv9s21ZrQH143K24Mfq5zL5MhWK9hUhhGbd45hLXo2Pq2oqzMMo63oStZzFGTQQD3dC4H2D5GBj7vWvSQaaBv5cxi9gafk7NF3pnBju6dwKvH",
        "prvkey version / pubkey mismatch",
        "private key data must start with 0x00, not 0x03",
    ),
    (
        "xpub661MyMwAqRbcEYS8w7XLSVeEsBXy79zSzH1J8vCdxAZningWLdN3zgtU6Txnt3siSujt9RCVYsx4qHZGc62TG4McvMGcAUjeuwZdduYEvFn",
        "invalid pubkey prefix 04",
        "invalid public key prefix 0x04",
    ),
    (
        "xprv9s21ZrQH143K24Mfq5zL5MhWK9hUhhGbd45hLXo2Pq2oqzMMo63oStZzFGpWnsj83BHtEy5Zt8CcDr1UiRXuWCmTQLxEK9vbz5gPstX92JQ",
        "invalid prvkey prefix 04",
        "private key data must start with 0x00, not 0x04",
    ),
    (
        "xpub661MyMwAqRbcEYS8w7XLSVeEsBXy79zSzH1J8vCdxAZningWLdN3zgtU6N8ZMMXctdiCjxTNq964yKkwrkBJJwpzZS4HS2fxvyYUA4q2Xe4",
        "invalid pubkey prefix 01",
        "invalid public key prefix 0x01",
    ),
    (
        "xprv9s21ZrQH143K24Mfq5zL5MhWK9hUhhGbd45hLXo2Pq2oqzMMo63oStZzFAzHGBP2UuGCqWLTAPLcMtD9y5gkZ6Eq3Rjuahrv17fEQ3Qen6J",
        "invalid prvkey prefix 01",
        "private key data must start with 0x00, not 0x01",
    ),
    (
        "xprv9s2SPatNQ9Vc6GTbVMFPFo7jsaZySyzk7L8n2uqKXJen3KUmvQNTuLh3fhZMBoG3G4ZW1N2kZuHEPY53qmbZzCHshoQnNf4GvELZfqTUrcv",
        "zero depth with non-zero parent fingerprint",
        "zero depth with non-zero parent fingerprint",
    ),
    (
        "xpub661no6RGEX3uJkY4bNnPcw4URcQTrSibUZ4NqJEw5eBkv7ovTwgiT91XX27VbEXGENhYRCf7hyEbWrR3FewATdCEebj6znwMfQkhRYHRLpJ",
        "zero depth with non-zero parent fingerprint",
        "zero depth with non-zero parent fingerprint",
    ),
    (
        "xprv9s21ZrQH4r4TsiLvyLXqM9P7k1K3EYhA1kkD6xuquB5i39AU8KF42acDyL3qsDbU9NmZn6MsGSUYZEsuoePmjzsB3eFKSUEh3Gu1N3cqVUN",
        "zero depth with non-zero index",
        "zero depth with non-zero child number",
    ),
    (
        "xpub661MyMwAuDcm6CRQ5N4qiHKrJ39Xe1R1NyfouMKTTWcguwVcfrZJaNvhpebzGerh7gucBvzEQWRugZDuDXjNDRmXzSZe4c7mnTK97pTvGS8",
        "zero depth with non-zero index",
        "zero depth with non-zero child number",
    ),
    (
        "DMwo58pR1QLEFihHiXPVykYB6fJmsTeHvyTp7hRThAtCX8CvYzgPcn8XnmdfHGMQzT7ayAmfo4z3gY5KfbrZWZ6St24UVf2Qgo6oujFktLHdHY4",
        "unknown extended key version",
        "unknown version 0x01010101",
    ),
    (
        "DMwo58pR1QLEFihHiXPVykYB6fJmsTeHvyTp7hRThAtCX8CvYzgPcn8XnmdfHPmHJiEDXkTiJTVV9rHEBUem2mwVbbNfvT2MTcAqj3nesx8uBf9",
        "unknown extended key version",
        "unknown version 0x01010101",
    ),
    (
        "xprv9s21ZrQH143K24Mfq5zL5MhWK9hUhhGbd45hLXo2Pq2oqzMMo63oStZzF93Y5wvzdUayhgkkFoicQZcP3y52uPPxFnfoLZB21Teqt1VvEHx",
        "private key 0 not in 1..n-1",
        "private key not in 1..n-1",
    ),
    (
        "xprv9s21ZrQH143K24Mfq5zL5MhWK9hUhhGbd45hLXo2Pq2oqzMMo63oStZzFAzHGBP2UuGCqWLTAPLcMtD5SDKr24z3aiUvKr9bJpdrcLg1y3G",
        "private key n not in 1..n-1",
        "private key not in 1..n-1",
    ),
    (
        "xpub661MyMwAqRbcEYS8w7XLSVeEsBXy79zSzH1J8vCdxAZningWLdN3zgtU6Q5JXayek4PRsn35jii4veMimro1xefsM58PgBMrvdYre8QyULY",
        "invalid pubkey 020000000000000000000000000000000000000000000000000000000000000007",
        "invalid public key",
    ),
    (
        "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHL",
        "invalid checksum",
        "invalid checksum",
    ),
]


@pytest.mark.parametrize(("seed", "path", "xpub", "xprv"), CHAINS)
def test_vector_derivation(backend: str, seed: str, path: str, xpub: str, xprv: str) -> None:
    master = ExtendedPrivateKey.from_seed(bytes.fromhex(seed))
    key = master.derive_path(path)
    assert key.to_string() == xprv
    assert key.neuter().to_string() == xpub
    assert key.depth == len(parse_path(path))


@pytest.mark.parametrize(("seed", "path", "xpub", "xprv"), CHAINS)
def test_vector_public_derivation(backend: str, seed: str, path: str, xpub: str, xprv: str) -> None:
    """CKDpub from the xpub of the deepest hardened ancestor reaches the same xpub."""
    indices = parse_path(path)
    cut = max((i + 1 for i, index in enumerate(indices) if is_hardened(index)), default=0)
    master = ExtendedPrivateKey.from_seed(bytes.fromhex(seed))
    ancestor = ExtendedPublicKey.from_string(master.derive_path(indices[:cut]).neuter().to_string())
    assert ancestor.derive_path(indices[cut:]).to_string() == xpub


@pytest.mark.parametrize(("seed", "path", "xpub", "xprv"), CHAINS)
def test_vector_parse_round_trip(backend: str, seed: str, path: str, xpub: str, xprv: str) -> None:
    private = ExtendedPrivateKey.from_string(xprv)
    public = ExtendedPublicKey.from_string(xpub)
    assert private.to_string() == xprv
    assert public.to_string() == xpub
    assert private.neuter() == public
    assert private.fingerprint == public.fingerprint == public.identifier[:4]
    assert public.identifier == hash160(public.key.to_bytes())
    assert parse_extended_key(xprv) == private
    assert parse_extended_key(xpub) == public
    # the serialization keeps every field
    assert private.depth == public.depth == len(parse_path(path))


def test_vector_1_fields() -> None:
    master = ExtendedPrivateKey.from_seed(bytes.fromhex(VECTORS[0][0]))
    child = master.derive(hardened(0))
    assert master.fingerprint.hex() == "3442193e"
    assert master.identifier.hex() == "3442193e1bb70916e914552172cd4e2dbc9df811"
    assert child.parent_fingerprint == master.fingerprint
    assert child.child_number == HARDENED
    assert child.depth == 1
    assert master.chain_code.hex() == (
        "873dff81c02f525623fd1fe5167eac3a55a049de3d314bb42ee227ffed37d508"
    )
    assert master.key.to_bytes().hex() == (
        "e8f32e723decf4051aefac8e2c93c9c5b214313817cdb01a1494b917c8436b35"
    )


@pytest.mark.parametrize(("text", "bip_reason", "message"), INVALID_KEYS, ids=lambda v: v[:12])
def test_vector_5_invalid_keys(backend: str, text: str, bip_reason: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^invalid extended key: {message}"):
        parse_extended_key(text)
    # the single-kind parsers reject them too
    for parse in (ExtendedPrivateKey.from_string, ExtendedPublicKey.from_string):
        with pytest.raises(ValueError, match="^invalid extended key: "):
            parse(text)


# --------------------------------------------------------------------------
# BIP84 test vector
# --------------------------------------------------------------------------

BIP84_MNEMONIC = " ".join(["abandon"] * 11 + ["about"])
BIP84_ROOT_PRV = "zprvAWgYBBk7JR8Gjrh4UJQ2uJdG1r3WNRRfURiABBE3RvMXYSrRJL62XuezvGdPvG6GFBZduosCc1YP5wixPox7zhZLfiUm8aunE96BBa4Kei5"
BIP84_ROOT_PUB = "zpub6jftahH18ngZxLmXaKw3GSZzZsszmt9WqedkyZdezFtWRFBZqsQH5hyUmb4pCEeZGmVfQuP5bedXTB8is6fTv19U1GQRyQUKQGUTzyHACMF"
BIP84_ACCOUNT_PRV = "zprvAdG4iTXWBoARxkkzNpNh8r6Qag3irQB8PzEMkAFeTRXxHpbF9z4QgEvBRmfvqWvGp42t42nvgGpNgYSJA9iefm1yYNZKEm7z6qUWCroSQnE"
BIP84_ACCOUNT_PUB = "zpub6rFR7y4Q2AijBEqTUquhVz398htDFrtymD9xYYfG1m4wAcvPhXNfE3EfH1r1ADqtfSdVCToUG868RvUUkgDKf31mGDtKsAYz2oz2AGutZYs"
# (path, WIF private key, compressed public key, address)
BIP84_ADDRESSES = [
    (
        "m/84'/0'/0'/0/0",
        "KyZpNDKnfs94vbrwhJneDi77V6jF64PWPF8x5cdJb8ifgg2DUc9d",
        "0330d54fd0dd420a6e5f8d3624f5f3482cae350f79d5f0753bf5beef9c2d91af3c",
        "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu",
    ),
    (
        "m/84'/0'/0'/0/1",
        "Kxpf5b8p3qX56DKEe5NqWbNUP9MnqoRFzZwHRtsFqhzuvUJsYZCy",
        "03e775fd51f0dfb8cd865d9ff1cca2a158cf651fe997fdc9fee9c1d3b5e995ea77",
        "bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g",
    ),
    (
        "m/84'/0'/0'/1/0",
        "KxuoxufJL5csa1Wieb2kp29VNdn92Us8CoaUG3aGtPtcF3AzeXvF",
        "03025324888e429ab8e3dbaf1f7802648b9cd01e9b418485c5fa4c1b9b5700e1a6",
        "bc1q8c6fshw2dlwun7ekn9qwf37cu2rn755upcp6el",
    ),
]


def bip84_seed() -> bytes:
    """BIP39 seed of the mnemonic with an empty passphrase."""
    return hashlib.pbkdf2_hmac("sha512", BIP84_MNEMONIC.encode(), b"mnemonic", 2048)


def wif_secret(wif: str) -> bytes:
    payload = b58check_decode(wif)
    assert payload[0] == 0x80 and len(payload) == 34 and payload[33] == 0x01
    return payload[1:33]


def test_bip84_root_and_account(backend: str) -> None:
    master = ExtendedPrivateKey.from_seed(bip84_seed())
    assert master.to_string(ZPRV) == BIP84_ROOT_PRV
    assert master.neuter().to_string(ZPUB) == BIP84_ROOT_PUB
    account = master.derive_path("m/84'/0'/0'")
    assert account.to_string(ZPRV) == BIP84_ACCOUNT_PRV
    assert account.neuter().to_string(ZPUB) == BIP84_ACCOUNT_PUB
    assert ExtendedPrivateKey.from_string(BIP84_ACCOUNT_PRV, ZPRV) == account
    assert parse_extended_key(BIP84_ACCOUNT_PUB, BIP84_MAINNET) == account.neuter()


@pytest.mark.parametrize(("path", "wif", "pubkey", "address"), BIP84_ADDRESSES)
def test_bip84_addresses(backend: str, path: str, wif: str, pubkey: str, address: str) -> None:
    key = ExtendedPrivateKey.from_seed(bip84_seed()).derive_path(path)
    assert key.key.to_bytes() == wif_secret(wif)
    assert key.key.public_key().to_bytes().hex() == pubkey
    assert script_to_address(p2wpkh(bytes.fromhex(pubkey)), MAINNET) == address
    # and from the account xpub alone (watch-only)
    account_pub = ExtendedPublicKey.from_string(BIP84_ACCOUNT_PUB, ZPUB)
    assert account_pub.derive_path(parse_path(path)[3:]).key.to_bytes().hex() == pubkey


def test_bip84_keychain(backend: str) -> None:
    keychain = Keychain(bip84_seed(), coin_type=0)
    assert keychain.account_key.to_string(ZPRV) == BIP84_ACCOUNT_PRV
    assert keychain.account_xpub.to_string(ZPUB) == BIP84_ACCOUNT_PUB
    receive0, receive1, change0 = BIP84_ADDRESSES
    assert keychain.receive_key(0).to_bytes() == wif_secret(receive0[1])
    assert keychain.receive_key(1).to_bytes() == wif_secret(receive1[1])
    assert keychain.change_key(0).to_bytes() == wif_secret(change0[1])
    assert script_to_address(keychain.script_pubkey(RECEIVE, 0), MAINNET) == receive0[3]
    assert script_to_address(keychain.script_pubkey(RECEIVE, 1), MAINNET) == receive1[3]
    assert script_to_address(keychain.script_pubkey(CHANGE, 0), MAINNET) == change0[3]
    assert keychain.path(RECEIVE, 1) == receive1[0]
    assert keychain.path(CHANGE, 0) == change0[0]


# --------------------------------------------------------------------------
# the keychain
# --------------------------------------------------------------------------


def test_keychain_test_chains_use_coin_type_1() -> None:
    seed = bytes(range(32))
    keychain = Keychain(seed, coin_type=1, account=2)
    master = ExtendedPrivateKey.from_seed(seed)
    for change in (RECEIVE, CHANGE):
        for i in (0, 1, 7):
            path = keychain.path(change, i)
            assert path == f"m/84'/1'/2'/{change}/{i}"
            expected = master.derive_path(path).key
            assert keychain.key(change, i).secret == expected.secret
            assert keychain.script_pubkey(change, i) == p2wpkh(expected.public_key().to_bytes())
    address = script_to_address(keychain.script_pubkey(RECEIVE, 0), REGTEST)
    assert address is not None and address.startswith("bcrt1q")
    assert keychain.account_xpub.to_string(VPUB).startswith("vpub")
    assert keychain.account_key.to_string(VPRV).startswith("vprv")
    assert "secret" in repr(keychain) and seed.hex() not in repr(keychain)


def test_keychain_cache_and_lookahead() -> None:
    keychain = Keychain(bytes(range(16)), coin_type=1)
    assert keychain.receive_key(5) is keychain.receive_key(5)
    assert keychain.script_pubkey(CHANGE, 5) is keychain.script_pubkey(True, 5)
    assert keychain.receive_key(5).secret != keychain.change_key(5).secret
    scripts = keychain.lookahead(RECEIVE, 10, 20)
    assert len(scripts) == 20 and len(set(scripts)) == 20
    assert scripts == [keychain.script_pubkey(RECEIVE, i) for i in range(10, 30)]
    for i, script in enumerate(scripts, start=10):
        assert keychain.index_of(script) == (RECEIVE, i)
    assert keychain.index_of(keychain.script_pubkey(CHANGE, 5)) == (CHANGE, 5)
    assert keychain.index_of(keychain.script_pubkey(CHANGE, 6)) == (CHANGE, 6)
    assert keychain.index_of(p2wpkh(b"\x02" + bytes(32))) is None
    assert keychain.lookahead(CHANGE, 0, 0) == []
    assert set(keychain.lookahead(CHANGE, 0, 5)).isdisjoint(keychain.lookahead(RECEIVE, 0, 5))


def test_keychain_many_keys(backend: str) -> None:
    """1,000 children of one chain (a wallet's gap-limit scan); not timed, see the report."""
    keychain = Keychain(bytes(range(32)), coin_type=1)
    scripts = keychain.lookahead(RECEIVE, 0, 1000)
    assert len(set(scripts)) == 1000
    assert keychain.lookahead(RECEIVE, 0, 1000) == scripts


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((RECEIVE, -1), "index out of range"),
        ((RECEIVE, HARDENED), "index out of range"),
        ((2, 0), "change must be 0"),
        ((-1, 0), "change must be 0"),
    ],
)
def test_keychain_rejects(args: tuple[int, int], message: str) -> None:
    keychain = Keychain(bytes(range(16)), coin_type=1)
    with pytest.raises(ValueError, match=message):
        keychain.key(*args)
    with pytest.raises(ValueError, match=message):
        keychain.script_pubkey(*args)
    with pytest.raises(ValueError, match=message):
        keychain.path(*args)


def test_keychain_rejects_bad_parameters() -> None:
    keychain = Keychain(bytes(range(16)), coin_type=1)
    with pytest.raises(ValueError, match="index out of range"):
        keychain.lookahead(RECEIVE, HARDENED - 2, 3)
    with pytest.raises(ValueError, match="non-negative"):
        keychain.lookahead(RECEIVE, 0, -1)
    with pytest.raises(ValueError, match="coin type"):
        Keychain(bytes(16), coin_type=HARDENED)
    with pytest.raises(ValueError, match="account"):
        Keychain(bytes(16), coin_type=1, account=-1)
    with pytest.raises(ValueError, match="seed must be"):
        Keychain(bytes(15), coin_type=1)


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------

SEED = bytes(range(32))


def test_hardened_derivation_from_public_key() -> None:
    xpub = ExtendedPrivateKey.from_seed(SEED).neuter()
    with pytest.raises(ValueError, match="cannot derive hardened child"):
        xpub.derive(HARDENED)
    with pytest.raises(ValueError, match="cannot derive hardened child"):
        xpub.derive_path("m/0/1'")


@pytest.mark.parametrize("index", [-1, 2**32, 2**40])
def test_index_out_of_range(index: int) -> None:
    xprv = ExtendedPrivateKey.from_seed(SEED)
    for key in (xprv, xprv.neuter()):
        with pytest.raises(ValueError, match="index out of range"):
            key.derive(index)
        with pytest.raises(ValueError, match="index out of range"):
            key.derive_path([0, index])
    with pytest.raises(ValueError, match="index out of range"):
        format_path([index])


@pytest.mark.parametrize(
    "path",
    [
        "",
        "m/",
        "m//1",
        "m/1/",
        "/1",
        "M/1",
        "m/1''",
        "m/-1",
        "m/+1",
        "m/ 1",
        "m/1 ",
        "m/0x10",
        "m/a",
        "m/1/m",
        "m/2147483648",
        "m/2147483648'",
        "m/\u0661",
        "n/1",
    ],
)
def test_invalid_paths(path: str) -> None:
    with pytest.raises(ValueError, match="invalid path"):
        parse_path(path)
    with pytest.raises(ValueError, match="invalid path"):
        ExtendedPrivateKey.from_seed(SEED).derive_path(path)


def test_path_syntax() -> None:
    assert parse_path("m") == ()
    assert parse_path("m/84'/1h/0H/0/5") == (hardened(84), hardened(1), hardened(0), 0, 5)
    assert parse_path("0/5") == (0, 5)
    assert parse_path("m/2147483647'") == (2**32 - 1,)
    assert parse_path("m/007") == (7,)
    assert format_path(parse_path("m/84'/1h/0H/0/5")) == "m/84'/1'/0'/0/5"
    assert format_path((0, 5), absolute=False) == "0/5"
    assert format_path(()) == "m"
    with pytest.raises(ValueError, match="index out of range"):
        hardened(HARDENED)


def test_absolute_path_needs_master_key() -> None:
    master = ExtendedPrivateKey.from_seed(SEED)
    account = master.derive_path("m/84'/1'/0'")
    with pytest.raises(ValueError, match="depth 3"):
        account.derive_path("m/0/1")
    with pytest.raises(ValueError, match="depth 3"):
        account.neuter().derive_path("m/0/1")
    assert account.derive_path("0/1") == master.derive_path("m/84'/1'/0'/0/1")
    assert account.derive_path("m/0/1".removeprefix("m/")) == account.derive(0).derive(1)
    assert master.derive_path("m") is master


def test_seed_length() -> None:
    for length in (0, 15, 65):
        with pytest.raises(ValueError, match="seed must be 16..64 bytes"):
            ExtendedPrivateKey.from_seed(bytes(length))
    ExtendedPrivateKey.from_seed(bytes(16))
    ExtendedPrivateKey.from_seed(bytes(64))


def test_depth_limit() -> None:
    master = ExtendedPrivateKey.from_seed(SEED)
    deep = ExtendedPrivateKey(
        master.key, master.chain_code, depth=255, parent_fingerprint=b"\x01\x02\x03\x04"
    )
    parsed = ExtendedPrivateKey.from_string(deep.to_string())
    assert parsed == deep and parsed.depth == 255
    for key in (deep, deep.neuter()):
        with pytest.raises(ValueError, match="depth 255"):
            key.derive(0)


def test_parse_rejects_wrong_kind_and_length() -> None:
    master = ExtendedPrivateKey.from_seed(SEED)
    xprv, xpub = master.to_string(), master.neuter().to_string()
    with pytest.raises(ValueError, match="version 0x0488b21e, expected 0x0488ade4"):
        ExtendedPrivateKey.from_string(xpub)
    with pytest.raises(ValueError, match="version 0x0488ade4, expected 0x0488b21e"):
        ExtendedPublicKey.from_string(xprv)
    with pytest.raises(ValueError, match="unknown version"):
        parse_extended_key(xprv, BIP32_TESTNET)
    for data in (master.to_bytes()[:-1], master.to_bytes() + b"\x00"):
        with pytest.raises(ValueError, match="length"):
            parse_extended_key(b58check_encode(data))
        with pytest.raises(ValueError, match="length"):
            ExtendedPrivateKey.from_bytes(data)
    with pytest.raises(ValueError, match="invalid extended key: invalid base58 character"):
        parse_extended_key(xprv.replace(xprv[5], "0"))
    with pytest.raises(ValueError, match="invalid extended key"):
        parse_extended_key("")


def test_repr_hides_the_secret() -> None:
    master = ExtendedPrivateKey.from_seed(SEED)
    assert master.key.to_bytes().hex() not in repr(master)
    assert master.to_string() not in repr(master)
    assert master.neuter().to_string() in repr(master.neuter())


# --------------------------------------------------------------------------
# invalid children (probability < 2**-127, so forced by replacing the HMAC)
# --------------------------------------------------------------------------


def _forcing(index: int, make_tweak: Callable[[], bytes]) -> Callable[[bytes, bytes], bytes]:
    """An HMAC-SHA512 whose I_L is replaced for the derivation of child ``index``."""
    real = bip32._hmac_sha512

    def fake(key: bytes, data: bytes) -> bytes:
        digest = real(key, data)
        if data[-4:] == index.to_bytes(4, "big"):
            return make_tweak() + digest[32:]
        return digest

    return fake


@pytest.mark.parametrize("index", [5, HARDENED + 5])
def test_tweak_not_below_n_skips_to_next_index(
    backend: str, index: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    master = ExtendedPrivateKey.from_seed(SEED)
    expected = master.derive(index + 1)
    monkeypatch.setattr(bip32, "_hmac_sha512", _forcing(index, lambda: crypto.N.to_bytes(32, "big")))
    child = master.derive(index)
    assert child.child_number == index + 1
    assert child == expected
    if index < HARDENED:
        assert master.neuter().derive(index) == expected.neuter()


def test_zero_child_key_and_infinity_skip(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    master = ExtendedPrivateKey.from_seed(SEED)
    expected = master.derive(8)
    tweak = (crypto.N - master.key.secret).to_bytes(32, "big")
    monkeypatch.setattr(bip32, "_hmac_sha512", _forcing(7, lambda: tweak))
    assert master.derive(7) == expected  # k_i = 0
    assert master.neuter().derive(7) == expected.neuter()  # K_i = infinity


@pytest.mark.parametrize("index", [HARDENED - 1, 2**32 - 1])
def test_no_next_index_in_range(index: int, monkeypatch: pytest.MonkeyPatch) -> None:
    master = ExtendedPrivateKey.from_seed(SEED)
    monkeypatch.setattr(bip32, "_hmac_sha512", _forcing(index, lambda: crypto.N.to_bytes(32, "big")))
    with pytest.raises(ValueError, match="invalid child key"):
        master.derive(index)
    if index < HARDENED:
        with pytest.raises(ValueError, match="invalid child key"):
            master.neuter().derive(index)


def test_zero_tweak_public_child(monkeypatch: pytest.MonkeyPatch) -> None:
    master = ExtendedPrivateKey.from_seed(SEED)
    monkeypatch.setattr(bip32, "_hmac_sha512", _forcing(3, lambda: bytes(32)))
    assert master.derive(3).neuter() == master.neuter().derive(3)
    assert master.derive(3).key.secret == master.key.secret


@pytest.mark.parametrize("master_key", [bytes(32), crypto.N.to_bytes(32, "big"), b"\xff" * 32])
def test_invalid_master_key(master_key: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bip32, "_hmac_sha512", lambda key, data: master_key + bytes(32))
    with pytest.raises(ValueError, match="invalid master key"):
        ExtendedPrivateKey.from_seed(SEED)


# --------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------

seeds = st.binary(min_size=16, max_size=64)
normal_indices = st.one_of(st.integers(0, 20), st.integers(0, HARDENED - 1))
any_indices = st.one_of(normal_indices, st.integers(HARDENED, 2**32 - 1))
VERSION_PAIRS = [BIP32_MAINNET, BIP32_TESTNET, BIP84_MAINNET, BIP84_TESTNET]


@pytest.mark.parametrize("name", BACKENDS)
@settings(max_examples=40, deadline=None)
@given(
    seed=seeds,
    prefix=st.lists(any_indices, max_size=2),
    tail=st.lists(normal_indices, min_size=1, max_size=3),
)
def test_neuter_commutes_with_derivation(
    name: str, seed: bytes, prefix: list[int], tail: list[int]
) -> None:
    with using(name):
        parent = ExtendedPrivateKey.from_seed(seed).derive_path(prefix)
        assert parent.derive_path(tail).neuter() == parent.neuter().derive_path(tail)


@settings(max_examples=60, deadline=None)
@given(
    seed=seeds,
    path=st.lists(any_indices, max_size=3),
    versions=st.sampled_from(VERSION_PAIRS),
)
def test_string_round_trip(seed: bytes, path: list[int], versions: ExtendedKeyVersions) -> None:
    xprv = ExtendedPrivateKey.from_seed(seed).derive_path(path)
    xpub = xprv.neuter()
    prv_text, pub_text = xprv.to_string(versions.private), xpub.to_string(versions.public)
    assert ExtendedPrivateKey.from_string(prv_text, versions.private) == xprv
    assert ExtendedPublicKey.from_string(pub_text, versions.public) == xpub
    assert parse_extended_key(prv_text, versions) == xprv
    assert parse_extended_key(pub_text, versions) == xpub
    assert ExtendedPrivateKey.from_bytes(xprv.to_bytes(versions.private), versions.private) == xprv
    assert len(xprv.to_bytes()) == len(xpub.to_bytes()) == 78
    assert prv_text[1:4] == "prv" and pub_text[1:4] == "pub"
    assert prv_text[0] == {XPRV: "x", TPRV: "t", ZPRV: "z", VPRV: "v"}[versions.private]
    assert pub_text[0] == {XPUB: "x", TPUB: "t", ZPUB: "z", VPUB: "v"}[versions.public]
    assert xprv.depth == xpub.depth == len(path)
    if path:
        assert xprv.child_number == path[-1]


@settings(max_examples=200)
@given(st.lists(any_indices, max_size=6))
def test_path_round_trip(indices: list[int]) -> None:
    assert parse_path(format_path(indices)) == tuple(indices)
    assert parse_path(format_path(indices, absolute=False) or "m") == tuple(indices)


@settings(max_examples=300)
@given(st.binary(min_size=78, max_size=78), st.sampled_from([XPRV, XPUB]))
def test_parse_arbitrary_bytes_never_crashes(data: bytes, version: int) -> None:
    data = version.to_bytes(4, "big") + data[4:]
    try:
        key = parse_extended_key(b58check_encode(data))
    except ValueError:
        return
    assert key.to_bytes(version) == data


@settings(max_examples=300)
@given(st.text(max_size=120))
def test_parse_arbitrary_text_never_crashes(text: str) -> None:
    with pytest.raises(ValueError):
        parse_extended_key(text)
