"""`canal swap` (decred atomicswap's commands) against real `canal chaind --chain alpha` and `--chain beta` nodes.

Alice (initiator) sells alpha for Bob's beta. Both use the same node per chain
(its wallet funds contracts and receives redeems/refunds); each keeps its swap
keys in its own swap dir. Set CANAL_SWAP_TRANSCRIPT=path to write the session out.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from base_chain.crypto import PrivateKey
from base_chain.hashes import hash160, sha256
from base_chain.params import get_params
from base_chain.tx import Transaction
from canal.cli import main as canal_main
from daemons import ChainProcess
from proto import chain_pb2 as pb
from relay.contract import find_contract_output, p2wpkh_address, parse_contract


@pytest.fixture(scope="module")
def chains(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ChainProcess, ChainProcess]]:
    """One alpha and one beta node for the whole module (each test uses fresh swap dirs)."""
    tmp_path = tmp_path_factory.mktemp("chains")
    alpha = ChainProcess(tmp_path / "alpha", "alpha")
    beta = ChainProcess(tmp_path / "beta", "beta")
    try:
        alpha.start()
        beta.start()
        alpha.generate(101)  # coinbase maturity: the wallets can spend one 50-coin output each
        beta.generate(101)
        yield alpha, beta
    finally:
        alpha.stop()
        beta.stop()


class Cli:
    """Runs `canal swap` in-process for one party, keeping a transcript."""

    transcript: list[str] = []

    def __init__(self, who: str, swapdir: Path, capsys: pytest.CaptureFixture[str],
                 monkeypatch: pytest.MonkeyPatch) -> None:
        self.who = who
        self.swapdir = swapdir
        self.capsys = capsys
        self.monkeypatch = monkeypatch

    def __call__(self, node: ChainProcess, *args: str, stdin: str = "", expect: int = 0) -> str:
        argv = ["swap", "--chain", node.chain, "--chain-datadir", str(node.datadir), "--swapdir",
                str(self.swapdir), *args]
        self.monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        self.capsys.readouterr()
        rc = canal_main(argv)
        out, err = self.capsys.readouterr()
        shown = " ".join(a if len(a) <= 40 else a[:16] + "…" for a in args)
        self.transcript.append(f"[{self.who}]$ canal swap --chain {node.chain} ... {shown}\n{out}{err}")
        assert rc == expect, f"rc {rc}: {out}\n{err}"
        return out + err


def _field(out: str, label: str) -> str:
    match = re.search(rf"^{re.escape(label)}\s*(\S+)", out, re.M)
    assert match, f"{label!r} not in:\n{out}"
    return match.group(1)


def _block(out: str, title: str) -> tuple[str, str]:
    """The (parenthesized value, hex on the next line) of a 'Title (x):' block."""
    match = re.search(rf"^{re.escape(title)} \((\w+)\):\n([0-9a-f]+)$", out, re.M)
    assert match, f"{title!r} block not in:\n{out}"
    return match.group(1), match.group(2)


def _txout_found(node: ChainProcess, txid: str, n: int) -> bool:
    return bool(node.rpc.GetTxOut(pb.GetTxOutRequest(txid=txid, n=n, include_mempool=True)).found)


def test_manual_swap_alpha_beta(chains: tuple[ChainProcess, ChainProcess], tmp_path: Path,
                                capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    alpha, beta = chains
    Cli.transcript = []
    alice = Cli("alice", tmp_path / "alice-swap", capsys, monkeypatch)
    bob = Cli("bob", tmp_path / "bob-swap", capsys, monkeypatch)

    # Each gives the other an address of a swap key of its own on the chain where it will receive.
    bob_alpha = bob(alpha, "getnewaddress").strip()
    alice_beta = alice(beta, "getnewaddress").strip()
    assert bob_alpha.startswith("alpha1q") and alice_beta.startswith("beta1q")

    # Alice initiates on alpha: 1.5 ALPHA to Bob, 48 h (288 alpha blocks) lock.
    alpha_start, beta_start = alpha.height(), beta.height()
    out = alice(alpha, "initiate", bob_alpha, "1.5", "--yes")
    secret, secret_hash = _field(out, "Secret:"), _field(out, "Secret hash:")
    assert sha256(bytes.fromhex(secret)).hex() == secret_hash
    contract_addr, contract_a = _block(out, "Contract")
    txid_a, contract_tx_a = _block(out, "Contract transaction")
    refund_txid_a, _ = _block(out, "Refund transaction")
    assert contract_addr.startswith("alpha1q") and len(contract_addr) == 65  # bech32 P2WSH
    assert re.search(r"^Contract fee: 0\.\d{8} ALPHA \(0\.\d{8} ALPHA/kB\)$", out, re.M)
    assert re.search(r"^Refund fee:   0\.\d{8} ALPHA \(0\.\d{8} ALPHA/kB\)$", out, re.M)
    assert f"Published contract transaction ({txid_a})" in out
    assert Transaction.from_hex(contract_tx_a).txid_hex() == txid_a != refund_txid_a
    info_a = parse_contract(bytes.fromhex(contract_a))
    assert info_a.locktime == alpha_start + 288
    assert (alice.swapdir / "contracts" / f"{contract_addr}.json").exists()  # secret kept before publishing
    alpha.generate(1)

    # Bob audits Alice's contract on alpha.
    out = bob(alpha, "auditcontract", contract_a, contract_tx_a)
    assert _field(out, "Contract address:") == contract_addr
    assert "Contract value:          1.50000000 ALPHA" in out
    assert _field(out, "Recipient address:") == bob_alpha
    assert _field(out, "Secret hash:") == secret_hash
    assert f"Locktime: block {alpha_start + 288}" in out
    assert "Locktime reached in 287 blocks (about 47h50m0s)" in out

    # Bob participates on beta, answering the publish prompt: 3 BETA to Alice, 24 h (576 beta blocks).
    out = bob(beta, "participate", alice_beta, "3", secret_hash, stdin="y\n")
    assert "Publish contract transaction? [y/N]" in out
    assert "Secret:" not in out
    _, contract_b = _block(out, "Contract")
    txid_b, contract_tx_b = _block(out, "Contract transaction")
    assert parse_contract(bytes.fromhex(contract_b)).locktime == beta_start + 576
    beta.generate(1)

    # Alice audits Bob's contract on beta and redeems it, revealing the secret.
    out = alice(beta, "auditcontract", contract_b, contract_tx_b)
    assert "Contract value:          3.00000000 BETA" in out
    assert _field(out, "Recipient address:") == alice_beta
    assert _field(out, "Secret hash:") == secret_hash
    assert "Locktime reached in 575 blocks (about 23h57m30s)" in out
    out = alice(beta, "redeem", contract_b, contract_tx_b, secret, "--yes")
    assert re.search(r"^Redeem fee: 0\.\d{8} BETA", out, re.M)
    redeem_txid_b, _ = _block(out, "Redeem transaction")
    assert f"Published redeem transaction ({redeem_txid_b})" in out
    beta.generate(1)
    index_b = find_contract_output(bytes.fromhex(contract_b), Transaction.from_hex(contract_tx_b))
    assert not _txout_found(beta, txid_b, index_b)

    # Bob finds the redemption on beta and extracts the secret.
    redemption = beta.rpc.GetRawTransaction(pb.GetRawTransactionRequest(txid=redeem_txid_b)).hex
    out = bob(beta, "extractsecret", redemption, secret_hash)
    assert out.strip() == f"Secret: {secret}"

    # Bob redeems Alice's contract on alpha with it.
    out = bob(alpha, "redeem", contract_a, contract_tx_a, secret, "--yes")
    redeem_txid_a, redeem_hex_a = _block(out, "Redeem transaction")
    assert f"Published redeem transaction ({redeem_txid_a})" in out
    alpha.generate(1)
    index_a = find_contract_output(bytes.fromhex(contract_a), Transaction.from_hex(contract_tx_a))
    assert not _txout_found(alpha, txid_a, index_a)
    redeem_a = Transaction.from_hex(redeem_hex_a)
    assert _txout_found(alpha, redeem_txid_a, 0)
    assert 150_000_000 - 1000 < redeem_a.outputs[0].amount_sat < 150_000_000

    # Replaying a redeem is refused by the node, with its reason.
    out = bob(alpha, "redeem", contract_a, contract_tx_a, secret, "--yes", expect=1)
    assert "error:" in out and "missingorspent" in out

    path = os.environ.get("CANAL_SWAP_TRANSCRIPT")
    if path:
        Path(path).write_text("\n".join(Cli.transcript))


def test_refund_after_the_locktime(chains: tuple[ChainProcess, ChainProcess], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    alpha, beta = chains
    alice = Cli("alice", tmp_path / "alice-swap", capsys, monkeypatch)
    bob = Cli("bob", tmp_path / "bob-swap", capsys, monkeypatch)
    bob_alpha = bob(alpha, "getnewaddress").strip()

    # Declining the prompt publishes nothing.
    mempool = set(alpha.rpc.GetRawMempool(pb.GetRawMempoolRequest()).txids)
    out = alice(alpha, "initiate", bob_alpha, "2", stdin="n\n")
    assert "Publish contract transaction? [y/N]" in out and "Contract transaction" not in out
    assert set(alpha.rpc.GetRawMempool(pb.GetRawMempoolRequest()).txids) == mempool

    start = alpha.height()
    out = alice(alpha, "initiate", bob_alpha, "2", "--yes")
    contract = _block(out, "Contract")[1]
    txid, contract_tx = _block(out, "Contract transaction")
    _, early_refund_hex = _block(out, "Refund transaction")
    locktime = parse_contract(bytes.fromhex(contract)).locktime
    assert locktime == start + 288
    alpha.generate(1)

    # Too early: the tool says so, and the node refuses the refund printed at initiate as non-final.
    out = alice(alpha, "refund", contract, contract_tx, "--yes", expect=1)
    assert "contract locktime not reached" in out and f"block {locktime}" in out
    with pytest.raises(grpc.RpcError) as e:
        alpha.rpc.SendRawTransaction(pb.SendRawTransactionRequest(hexstring=early_refund_hex))
    assert "non-final" in (e.value.details() or "")

    alpha.generate(locktime - 1 - alpha.height())
    assert "Locktime reached in 1 blocks" in alice(alpha, "auditcontract", contract, contract_tx)
    alice(alpha, "refund", contract, contract_tx, "--yes", expect=1)
    alpha.generate(1)  # the tip is at the locktime: a refund can go in the next block

    assert "Contract refund time lock has expired" in alice(alpha, "auditcontract", contract, contract_tx)
    # Bob cannot refund: the refund key is Alice's.
    out = bob(alpha, "refund", contract, contract_tx, "--yes", expect=1)
    assert "no swap key for the contract's refund address" in out
    out = alice(alpha, "refund", contract, contract_tx, "--yes")
    refund_txid, _ = _block(out, "Refund transaction")
    assert f"Published refund transaction ({refund_txid})" in out
    alpha.generate(1)
    index = find_contract_output(bytes.fromhex(contract), Transaction.from_hex(contract_tx))
    assert not _txout_found(alpha, txid, index)
    assert _txout_found(alpha, refund_txid, 0)


def test_bad_input_gets_clear_errors(chains: tuple[ChainProcess, ChainProcess], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    alpha, beta = chains
    alice = Cli("alice", tmp_path / "alice-swap", capsys, monkeypatch)
    mallory = Cli("mallory", tmp_path / "mallory-swap", capsys, monkeypatch)
    bob_alpha = mallory(alpha, "getnewaddress").strip()
    bob_beta = mallory(beta, "getnewaddress").strip()

    assert "wrong network" in alice(alpha, "initiate", bob_beta, "1", "--yes", expect=1)
    wallet_addr = alpha.rpc.GetNewAddress(pb.GetNewAddressRequest()).address
    assert alice(alpha, "initiate", "nonsense", "1", "--yes", expect=1).startswith("error: failed to decode")
    assert "failed to decode amount" in alice(alpha, "initiate", wallet_addr, "1.123456789", "--yes", expect=1)
    assert "amount must be positive" in alice(alpha, "initiate", wallet_addr, "0", "--yes", expect=1)
    assert "amount too small to be refunded" in alice(alpha, "initiate", wallet_addr, "0.000004", "--yes", expect=1)
    assert "secret hash has wrong size" in alice(beta, "participate", bob_beta, "1", "abcd", "--yes", expect=1)
    assert "secret hash must be hex" in alice(beta, "participate", bob_beta, "1", "zz" * 32, "--yes", expect=1)
    assert "too few arguments" in alice(alpha, "initiate", bob_alpha, expect=2)
    assert "unknown command" in alice(alpha, "frobnicate", expect=2)

    out = alice(alpha, "initiate", bob_alpha, "1", "--yes")
    secret = _field(out, "Secret:")
    contract = _block(out, "Contract")[1]
    _, contract_tx = _block(out, "Contract transaction")
    # A contract that is not the template, a transaction without the contract, a wrong secret, a missing key.
    assert "not an atomic swap script" in mallory(alpha, "auditcontract", contract + "51", contract_tx, expect=1)
    other_tx = alpha.rpc.GetRawTransaction(pb.GetRawTransactionRequest(
        txid=alpha.rpc.SendToAddress(pb.SendToAddressRequest(address=wallet_addr, amount_sat=10_000)).txid)).hex
    assert "does not contain the contract output" in mallory(alpha, "auditcontract", contract, other_tx, expect=1)
    assert "secret does not match" in mallory(alpha, "redeem", contract, contract_tx, "11" * 32, "--yes", expect=1)
    assert "no swap key for the contract's recipient" in alice(alpha, "redeem", contract, contract_tx, secret,
                                                               "--yes", expect=1)
    assert "failed to decode contract transaction" in mallory(alpha, "redeem", contract, "00ff", secret, expect=1)
    # The node of another chain is noticed.
    wrong = ["swap", "--chain", "beta", "--chain-datadir", str(alpha.datadir), "auditcontract", contract, contract_tx]
    assert canal_main(wrong) == 1
    assert "is on chain 'alpha', not 'beta'" in capsys.readouterr().err
    # The keys in a swap dir are private.
    for key_file in (tmp_path / "mallory-swap" / "keys").iterdir():
        assert key_file.stat().st_mode & 0o077 == 0
        pkh = bytes.fromhex(key_file.stem)
        key = PrivateKey(bytes.fromhex(json.loads(key_file.read_text())["private_key"]))
        assert hash160(key.public_key().to_bytes()) == pkh
    recipient = parse_contract(bytes.fromhex(contract)).recipient_pkh
    assert p2wpkh_address(recipient, get_params("alpha").address_prefixes) == bob_alpha


def test_registered_as_a_canal_command(tmp_path: Path) -> None:
    """`canal swap` through the real entry point: usage, and an offline command."""
    usage = subprocess.run([sys.executable, "-m", "canal", "swap"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "initiate <participant address> <amount>" in usage.stdout
    out = subprocess.run([sys.executable, "-m", "canal", "swap", "--chain", "alpha", "extractsecret",
                          "0200000000010000000000", "00" * 32], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and out.stderr.startswith("error: ")
