"""Chain parameters: regtest is Bitcoin Core's regtest; alpha and beta are distinct chains."""

from __future__ import annotations

import dataclasses

import pytest

from base_chain.address import encode_segwit_address, p2pkh_script, p2sh_script, script_to_address
from base_chain.block import NULL_HASH
from base_chain.merkle import block_merkle_root
from base_chain.params import (
    GENESIS_OUTPUT_SCRIPT,
    SATOSHI_GENESIS_MESSAGE,
    chain_names,
    get_params,
    make_genesis_block,
)
from base_chain.pow import check_proof_of_work
from base_chain.tx import COIN

BITCOIN_MAGICS = {
    bytes.fromhex("f9beb4d9"),  # main
    bytes.fromhex("0b110907"),  # testnet3
    bytes.fromhex("1c163f28"),  # testnet4
    bytes.fromhex("0a03cf40"),  # default signet
    bytes.fromhex("fabfb5da"),  # regtest
}
BITCOIN_BASE58_VERSIONS = {0, 5, 111, 196}

# Core's regtest genesis, from its serialization (chainparams.cpp's CreateGenesisBlock).
REGTEST_GENESIS_HEADER_HEX = (
    "01000000" + "00" * 32
    + "3ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a"
    + "dae5494d" + "ffff7f20" + "02000000"
)
GENESIS_COINBASE_HEX = (
    "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04ffff001d"
    "0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f"
    "66207365636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0"
    "fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c38"
    "4df7ba0b8d578a4c702b6bf11d5fac00000000"
)


def test_regtest_genesis_is_cores() -> None:
    p = get_params("regtest")
    g = p.genesis
    assert p.genesis_hash_hex() == "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
    assert g.hash_hex() == p.genesis_hash_hex()
    assert g.header.merkle_root[::-1].hex() == (
        "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
    )
    assert g.header.hex() == REGTEST_GENESIS_HEADER_HEX
    assert len(g.transactions) == 1
    assert g.transactions[0].to_bytes().hex() == GENESIS_COINBASE_HEX
    assert g.transactions[0].is_coinbase()
    assert block_merkle_root(g) == (g.header.merkle_root, False)
    assert (g.header.version, g.header.time, g.header.nonce, g.header.bits) == (1, 1296688602, 2, 0x207FFFFF)
    assert g.header.prev_block == NULL_HASH
    check_proof_of_work(g.hash, g.header.bits, p)


def test_mainnet_and_testnet_genesis_from_parts() -> None:
    # The same construction gives Core's mainnet and testnet3 genesis blocks.
    main = make_genesis_block(SATOSHI_GENESIS_MESSAGE, 1231006505, 2083236893, 0x1D00FFFF)
    assert main.hash_hex() == "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
    test3 = make_genesis_block(SATOSHI_GENESIS_MESSAGE, 1296688602, 414098458, 0x1D00FFFF)
    assert test3.hash_hex() == "000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943"
    assert main.header.merkle_root == test3.header.merkle_root


def test_regtest_values_are_cores() -> None:
    p = get_params("regtest")
    assert p.name == "regtest"
    assert p.magic == bytes.fromhex("fabfb5da")
    assert (p.address_prefixes.hrp, p.address_prefixes.p2pkh, p.address_prefixes.p2sh) == ("bcrt", 111, 196)
    assert p.hrp == "bcrt"
    assert p.bolt11_prefix == "bcrt"
    assert (p.default_p2p_port, p.default_rpc_port) == (18444, 18443)
    assert p.pow_limit == (1 << 255) - 1
    assert p.pow_limit_bits == 0x207FFFFF
    assert p.pow_no_retargeting and p.pow_allow_min_difficulty_blocks
    assert (p.target_spacing_s, p.target_timespan_s, p.retarget_interval) == (600, 14 * 24 * 3600, 2016)
    assert p.coinbase_maturity == 100
    assert p.subsidy_halving_interval == 150
    assert p.initial_subsidy_sat == 50 * COIN
    assert (p.bip34_height, p.bip65_height, p.bip66_height, p.csv_height, p.segwit_height) == (1, 1, 1, 1, 0)


@pytest.mark.parametrize("name", ["alpha", "beta"])
def test_alpha_beta_genesis(name: str) -> None:
    p = get_params(name)
    g = p.genesis
    assert g.hash == p.genesis_hash
    check_proof_of_work(g.hash, g.header.bits, p)
    assert g.header.bits == 0x207FFFFF
    assert g.header.prev_block == NULL_HASH
    assert block_merkle_root(g) == (g.header.merkle_root, False)
    coinbase = g.transactions[0]
    assert coinbase.is_coinbase()
    assert f"Canal {name} genesis".encode() in coinbase.inputs[0].script_sig
    assert coinbase.inputs[0].script_sig.startswith(bytes.fromhex("04ffff001d0104"))
    assert coinbase.outputs[0].amount_sat == 50 * COIN
    assert coinbase.outputs[0].script_pubkey == GENESIS_OUTPUT_SCRIPT
    # The genesis rebuilt from its parts is the same block.
    again = make_genesis_block(f"Canal {name} genesis", g.header.time, g.header.nonce, g.header.bits)
    assert again == g


def test_alpha_beta_are_distinct_chains() -> None:
    chains = [get_params(n) for n in ("regtest", "alpha", "beta")]
    assert len({c.genesis_hash for c in chains}) == 3
    assert len({c.magic for c in chains}) == 3
    assert len({c.hrp for c in chains}) == 3
    assert len({c.bolt11_prefix for c in chains}) == 3
    ports = [port for c in chains for port in (c.default_p2p_port, c.default_rpc_port)]
    assert len(set(ports)) == len(ports)
    alpha, beta = chains[1], chains[2]
    for c in (alpha, beta):
        assert c.magic not in BITCOIN_MAGICS
        assert c.address_prefixes.p2pkh not in BITCOIN_BASE58_VERSIONS
        assert c.address_prefixes.p2sh not in BITCOIN_BASE58_VERSIONS
        assert c.address_prefixes.p2pkh != c.address_prefixes.p2sh
    assert {alpha.address_prefixes.p2pkh, alpha.address_prefixes.p2sh}.isdisjoint(
        {beta.address_prefixes.p2pkh, beta.address_prefixes.p2sh}
    )
    assert (alpha.hrp, alpha.bolt11_prefix) == ("alpha", "alpha")
    assert (beta.hrp, beta.bolt11_prefix) == ("beta", "beta")
    assert (alpha.default_p2p_port, alpha.default_rpc_port) == (19444, 19443)
    assert (beta.default_p2p_port, beta.default_rpc_port) == (20444, 20443)
    assert (alpha.target_spacing_s, beta.target_spacing_s) == (600, 150)
    for c in (alpha, beta):
        assert c.pow_limit == get_params("regtest").pow_limit
        assert c.pow_no_retargeting
        assert c.coinbase_maturity == 100
        assert c.subsidy_halving_interval == 150
        assert c.initial_subsidy_sat == 50 * COIN
        assert c.retarget_interval == 2016


def test_addresses_carry_the_chain() -> None:
    program = bytes(range(20))
    assert encode_segwit_address(get_params("alpha").hrp, 0, program).startswith("alpha1q")
    assert encode_segwit_address(get_params("beta").hrp, 0, program).startswith("beta1q")
    assert encode_segwit_address(get_params("regtest").hrp, 0, program).startswith("bcrt1q")
    alpha = get_params("alpha").address_prefixes
    beta = get_params("beta").address_prefixes
    assert (script_to_address(p2pkh_script(program), alpha) or "").startswith("A")
    assert (script_to_address(p2sh_script(program), alpha) or "").startswith("a")
    assert (script_to_address(p2pkh_script(program), beta) or "").startswith("B")
    assert (script_to_address(p2sh_script(program), beta) or "").startswith("b")


def test_get_params_unknown_name_lists_known() -> None:
    assert chain_names() == ["regtest", "alpha", "beta"]
    with pytest.raises(ValueError) as err:
        get_params("mainnet")
    msg = str(err.value)
    assert "'mainnet'" in msg
    for name in ("regtest", "alpha", "beta"):
        assert name in msg
    assert get_params("alpha") is get_params("alpha")


def test_params_are_frozen_hashable_and_checked() -> None:
    p = get_params("regtest")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.name = "other"  # type: ignore[misc]
    assert {p: 1}[get_params("regtest")] == 1
    assert p != get_params("alpha")
    with pytest.raises(ValueError, match="genesis block hashes to"):
        dataclasses.replace(p, genesis_hash=get_params("alpha").genesis_hash)
    with pytest.raises(ValueError, match="magic"):
        dataclasses.replace(p, magic=b"\x01\x02\x03")
    with pytest.raises(ValueError):
        dataclasses.replace(p, target_spacing_s=0)
    variant = dataclasses.replace(p, name="regtest-retarget", pow_no_retargeting=False)
    assert variant.genesis is p.genesis and not variant.pow_no_retargeting


def test_block_subsidy_halves_every_150_blocks() -> None:
    p = get_params("regtest")
    assert p.block_subsidy(0) == 50 * COIN
    assert p.block_subsidy(149) == 50 * COIN
    assert p.block_subsidy(150) == 25 * COIN
    assert p.block_subsidy(300) == 1_250_000_000
    assert p.block_subsidy(150 * 33) == (50 * COIN) >> 33
    assert p.block_subsidy(150 * 63) == 0  # 5e9 >> 63
    assert p.block_subsidy(150 * 64) == 0
    assert p.block_subsidy(150 * 1000) == 0
