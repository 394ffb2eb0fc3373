"""Integration: the peg with real processes -- alpha and beta `canal chaind`, three `canal notaryd`
(2-of-3; two of them follow one chain by SPV headers only) and the `canal peg` coordinator.

Peg-in and peg-out end to end with exact balances, replays refused (also by a notary
SIGKILLed and restarted), deposits not deep enough or to the wrong script refused with
their reasons, fewer than M notaries unable to release, forged attestations ignored.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from daemons import ChainProcess, wait_for

from base_chain.crypto import PrivateKey
from canal.cli import main as canal_main
from canal.procs import NotaryProcess
from proto import chain_pb2 as pb
from proto import notary_pb2 as npb
from relay.attestation import InsufficientSignatures
from relay.notary_wire import request_to_pb
from relay.peg import PegCoordinator

CONFIRMATIONS = {"alpha": 3, "beta": 4}
FEES = {"alpha": 2_000, "beta": 1_000}
COIN = 100_000_000


@dataclass
class Net:
    root: Path
    alpha: ChainProcess
    beta: ChainProcess
    pegdir: Path
    notaries: list[NotaryProcess]

    def chain(self, name: str) -> ChainProcess:
        return self.alpha if name == "alpha" else self.beta


def in_parallel(fn: Callable[[Any], Any], procs: Sequence[Any]) -> None:
    """Start or stop processes side by side (each start waits for the daemon to serve)."""
    with ThreadPoolExecutor(max_workers=max(1, len(procs))) as pool:
        list(pool.map(fn, procs))


def peg(net: Net, *args: str) -> tuple[int, Any]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = canal_main(["peg", "--pegdir", str(net.pegdir), *args])
    text = out.getvalue()
    return rc, (json.loads(text) if text.strip() else err.getvalue())  # JSON, or the error message


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    root = tmp_path_factory.mktemp("peg")
    alpha = ChainProcess(root / "alpha", "alpha")
    beta = ChainProcess(root / "beta", "beta")
    n = Net(root, alpha, beta, root / "peg", [])
    try:
        alpha.start()
        beta.start()
        alpha.generate(101)
        beta.generate(101)
        dirs = [root / f"notary{i}" for i in range(3)]
        setup = ["setup", "--threshold", "2", "--alpha-datadir", str(alpha.datadir), "--beta-datadir", str(beta.datadir)]
        for d in dirs:
            setup += ["--notary-datadir", str(d)]
        for c in ("alpha", "beta"):
            setup += ["--confirmations", f"{c}={CONFIRMATIONS[c]}", "--fee", f"{c}={FEES[c]}"]
        rc, out = peg(n, *setup)
        assert rc == 0, out
        assert out["threshold"] == 2 and len(out["pubkeys"]) == 3
        for d, spv in zip(dirs, ["beta", "alpha", None]):
            n.notaries.append(NotaryProcess(d, n.pegdir / "committee.json", alpha, beta, spv))
        in_parallel(NotaryProcess.start, n.notaries)
        for c in ("alpha", "beta"):
            rc, out = peg(n, "fundreserve", "--chain", c, "--amount", "20")
            assert rc == 0, out
            n.chain(c).generate(1)
        yield n
    finally:
        in_parallel(NotaryProcess.stop, n.notaries)
        beta.stop()
        alpha.stop()


def new_address(node: ChainProcess) -> str:
    return str(node.rpc.GetNewAddress(pb.GetNewAddressRequest()).address)


def received(node: ChainProcess, address: str) -> list[int]:
    r = node.rpc.ListUnspent(pb.ListUnspentRequest(minconf=1, addresses=[address]))
    return sorted(u.amount_sat for u in r.unspent)


def deposit(net: Net, source: str, address: str, amount_sat: int, blocks: int) -> tuple[str, int]:
    node = net.chain(source)
    txid = node.rpc.SendToAddress(pb.SendToAddressRequest(address=address, amount_sat=amount_sat)).txid
    tx = node.rpc.GetRawTransaction(pb.GetRawTransactionRequest(txid=txid, verbose=True))
    vout = next(o.n for o in tx.decoded.vout if o.script_pub_key.address == address)
    if blocks:
        node.generate(blocks)
    return txid, vout


def reserve_sat(net: Net, chain: str) -> int:
    rc, st = peg(net, "status")
    assert rc == 0, st
    return int(st["chains"][chain]["reserve_sat"])


def claim(net: Net, source: str, txid: str, vout: int, *extra: str) -> tuple[int, Any]:
    return peg(net, "claim", "--from", source, "--txid", txid, "--vout", str(vout), *extra)


def peg_across(net: Net, source: str, amount_sat: int) -> tuple[str, str, dict[str, Any]]:
    """Deposit on ``source`` k deep and claim: (destination address, deposit txid, claim output)."""
    dest = "beta" if source == "alpha" else "alpha"
    user = new_address(net.chain(dest))
    rc, out = peg(net, "depositaddress", "--to", dest, "--dest", user)
    assert rc == 0, out
    txid, vout = deposit(net, source, out["deposit_address"], amount_sat, CONFIRMATIONS[source])
    rc, out = claim(net, source, txid, vout)
    assert rc == 0, out
    return user, txid, out


def test_peg_in_depth_then_release_then_replays_refused(net: Net) -> None:
    user = new_address(net.beta)
    rc, out = peg(net, "depositaddress", "--to", "beta", "--dest", user)
    assert rc == 0, out
    assert out["deposit_address"].startswith("alpha1") and out["fee_sat"] == FEES["beta"]
    amount = 150_000_000
    txid, vout = deposit(net, "alpha", out["deposit_address"], amount, 1)

    # One confirmation of three: every notary refuses, with the reason; nothing is released.
    rc, out = claim(net, "alpha", txid, vout)
    assert rc == 1
    assert out["error"]["reason"] == "peg-insufficient-signatures"
    assert [r["reason"] for r in out["refused"]] == ["peg-deposit-unconfirmed"] * 3, out
    assert "1 confirmations on alpha, needs 3" in out["refused"][0]["detail"]

    before = reserve_sat(net, "beta")
    net.alpha.generate(CONFIRMATIONS["alpha"] - 1)
    rc, out = claim(net, "alpha", txid, vout)
    assert rc == 0, out
    assert len(out["signers"]) == 2 and not out["refused"] and not out["unreachable"]
    assert out["payout_sat"] == amount - FEES["beta"]
    net.beta.generate(1)
    assert received(net.beta, user) == [amount - FEES["beta"]]
    assert before - reserve_sat(net, "beta") == amount  # payout + the published fee, nothing more
    release = net.beta.rpc.GetRawTransaction(pb.GetRawTransactionRequest(txid=out["release_txid"], verbose=True))
    assert release.confirmations == 1

    # The same deposit again: each notary remembers it attested that deposit.
    rc, again = claim(net, "alpha", txid, vout)
    assert rc == 1
    assert [r["reason"] for r in again["refused"]] == ["peg-already-redeemed"] * 3, again

    # ... also after a SIGKILL and a restart (its state was on disk before it signed).
    net.notaries[0].kill()
    net.notaries[0].start()
    rc, again = claim(net, "alpha", txid, vout)
    assert rc == 1
    assert {r["notary"]: r["reason"] for r in again["refused"]}["notary0"] == "peg-already-redeemed"

    # A notary that lost its state altogether reads the release from the chain (it spends the reserve).
    lost = net.notaries[2]
    lost.kill()
    for f in lost.datadir.glob("notary.sqlite*"):
        f.unlink()
    lost.start()
    wait_for(lambda: lost.rpc.Status(npb.StatusRequest()).redeemed >= 1, 30, "notary2 to rescan beta")
    rc, again = claim(net, "alpha", txid, vout)
    assert rc == 1
    assert {r["notary"]: r["reason"] for r in again["refused"]}["notary2"] == "peg-already-redeemed", again
    assert received(net.beta, user) == [amount - FEES["beta"]]


def test_a_notary_killed_after_persisting_remembers_its_attestation(net: Net) -> None:
    user = new_address(net.beta)
    rc, out = peg(net, "depositaddress", "--to", "beta", "--dest", user)
    txid, vout = deposit(net, "alpha", out["deposit_address"], 60_000_000, CONFIRMATIONS["alpha"])
    crashing = net.notaries[0]  # follows beta by SPV only: it cannot learn the release from beta's blocks
    crashing.stop()
    os.environ["CANAL_CRASH_AT"] = "persist:attestation"
    try:
        crashing.start()
    finally:
        del os.environ["CANAL_CRASH_AT"]
    rc, out = claim(net, "alpha", txid, vout)
    assert rc == 0, out  # notary1 and notary2 suffice
    assert [u["notary"] for u in out["unreachable"]] == ["notary0"]
    assert not crashing.alive()
    net.beta.generate(1)
    assert received(net.beta, user) == [60_000_000 - FEES["beta"]]
    crashing.start()
    rc, again = claim(net, "alpha", txid, vout)
    assert rc == 1
    assert {r["notary"]: r["reason"] for r in again["refused"]}["notary0"] == "peg-already-redeemed", again


def test_peg_out_end_to_end(net: Net) -> None:
    before = reserve_sat(net, "alpha")
    amount = 70_000_000
    user, _, out = peg_across(net, "beta", amount)
    assert out["destination_chain"] == "alpha" and out["fee_sat"] == FEES["alpha"]
    net.alpha.generate(1)
    assert received(net.alpha, user) == [amount - FEES["alpha"]]
    assert before - reserve_sat(net, "alpha") == amount


def test_deposit_to_a_wrong_script_is_refused(net: Net) -> None:
    intended, other = new_address(net.beta), new_address(net.beta)
    rc, out = peg(net, "depositaddress", "--to", "beta", "--dest", intended)
    txid, vout = deposit(net, "alpha", out["deposit_address"], 50_000_000, CONFIRMATIONS["alpha"])
    # Claimed for another destination than the deposit script commits to.
    rc, out = claim(net, "alpha", txid, vout, "--dest", other)
    assert rc == 1
    assert [r["reason"] for r in out["refused"]] == ["peg-deposit-wrong-script"] * 3, out
    # Coins paid to the committee's reserve are not a deposit either.
    rc, st = peg(net, "status")
    txid, vout = deposit(net, "alpha", st["chains"]["alpha"]["reserve_address"], 50_000_000, CONFIRMATIONS["alpha"])
    rc, out = claim(net, "alpha", txid, vout, "--dest", other)
    assert rc == 1
    assert [r["reason"] for r in out["refused"]] == ["peg-deposit-wrong-script"] * 3, out
    assert received(net.beta, other) == []


def test_fewer_than_m_notaries_cannot_release(net: Net) -> None:
    user = new_address(net.beta)
    rc, out = peg(net, "depositaddress", "--to", "beta", "--dest", user)
    txid, vout = deposit(net, "alpha", out["deposit_address"], 40_000_000, CONFIRMATIONS["alpha"])
    down, killed = net.notaries[2], net.notaries[1]
    down.stop()
    killed.kill()
    try:
        rc, out = claim(net, "alpha", txid, vout)
        assert rc == 1
        assert out["error"]["reason"] == "peg-insufficient-signatures"
        assert [s["notary"] for s in out["signed"]] == ["notary0"]
        assert sorted(u["notary"] for u in out["unreachable"]) == ["notary1", "notary2"]
        assert out["release_txid"] is None
    finally:
        in_parallel(NotaryProcess.start, [down, killed])
    # Back to three: the same release (notary0 signs the identical bytes again) goes through.
    rc, out = claim(net, "alpha", txid, vout)
    assert rc == 0, out
    net.beta.generate(1)
    assert received(net.beta, user) == [40_000_000 - FEES["beta"]]


def test_forged_attestations_are_ignored_with_a_reason(net: Net) -> None:
    user = new_address(net.alpha)
    with PegCoordinator(net.pegdir) as coordinator:
        address = coordinator.deposit_address("alpha", user)
        txid, vout = deposit(net, "beta", address, 30_000_000, CONFIRMATIONS["beta"])
        request, coins, proofs = coordinator.prepare_claim("beta", bytes.fromhex(txid)[::-1], vout)

        # notary0 follows beta by headers only: no proof, no deposit; a doctored proof is refused with its reason.
        spv = net.notaries[0].rpc
        r = spv.SignRelease(request_to_pb(request, proofs[1:]))
        assert r.refusal.reason == "peg-deposit-missing"
        assert "SPV view of beta" in r.refusal.detail and "no merkle proof" in r.refusal.detail
        tx, proof = proofs[0]
        doctored = bytearray(proof)
        doctored[100] ^= 1  # inside the header or the hashes: the root or the header no longer matches
        r = spv.SignRelease(request_to_pb(request, [(tx, bytes(doctored)), *proofs[1:]]))
        assert r.refusal.reason == "peg-deposit-missing" and "merkle proof refused" in r.refusal.detail, r
        answers = coordinator.ask(request, proofs)
        sigs = [a.signature for a in answers if a.signature is not None]
        assert len(sigs) == 3, answers
        a0 = sigs[0].attestation
        altered = replace(sigs[0], attestation=replace(a0, claim=replace(a0.claim, amount_sat=a0.claim.amount_sat * 2)))
        outsider = PrivateKey.generate()
        forged = replace(sigs[1], attestation_signature=outsider.sign_der(a0.digest))
        with pytest.raises(InsufficientSignatures) as e:
            coordinator.assemble(request, coins, [altered, forged])
        reasons = sorted(x.reason for x in e.value.ignored)
        assert reasons[0].startswith("attestation signature does not verify")
        assert reasons[1].startswith("attests a different claim: amount_sat")
        # With an honest signature besides them, the forgeries are ignored and the release is made.
        assembly = coordinator.assemble(request, coins, [altered, forged, sigs[2], sigs[1]])
        assert len(assembly.ignored) == 2
        txid_out = coordinator.broadcast(request, assembly)
    net.alpha.generate(1)
    assert net.alpha.rpc.GetRawTransaction(pb.GetRawTransactionRequest(txid=txid_out)).confirmations == 1
    assert received(net.alpha, user) == [30_000_000 - FEES["alpha"]]


# Not marked slow (~20 s): it builds on the peg-ins and peg-outs of the tests above, so it runs with them.
def test_rotation_sweeps_to_the_next_committee_and_the_old_keys_expire(net: Net) -> None:
    # Two deposits to epoch 0's addresses, deep enough, not claimed before the rotation.
    users = [new_address(net.beta) for _ in range(2)]
    early, late = [
        deposit(net, "alpha", peg(net, "depositaddress", "--to", "beta", "--dest", u)[1]["deposit_address"],
                30_000_000, 0)
        for u in users
    ]
    net.alpha.generate(CONFIRMATIONS["alpha"])

    new_dirs = [net.root / f"notary{i}" for i in (3, 4, 5)]
    args = ["rotate", "--threshold", "2", "--grace", "alpha=2", "--grace", "beta=6",
            "--keep-reserve", f"beta={COIN}"]
    for d in new_dirs:
        args += ["--new-notary-datadir", str(d)]
    rc, plan = peg(net, *args)
    assert rc == 0, plan
    assert (plan["old_epoch"], plan["new_epoch"]) == (0, 1) and set(plan["sweeps"]) == {"alpha", "beta"}
    # alpha: the reserve and the deposits already released (peg-ins); beta: the released deposits only.
    assert plan["sweeps"]["alpha"]["inputs"] > 1

    # The operators restart the old notaries with the new committee file and start the new ones.
    in_parallel(NotaryProcess.stop, net.notaries)
    for d, spv in zip(new_dirs, ["alpha", None, "beta"]):
        net.notaries.append(NotaryProcess(d, net.pegdir / "committee.json", net.alpha, net.beta, spv))
    in_parallel(NotaryProcess.start, net.notaries)
    for chain in ("alpha", "beta"):
        rc, out = peg(net, "sweep", "--chain", chain)
        assert rc == 0, out
        assert out["sweep_txid"] == plan["sweeps"][chain]["txid"] and len(out["signed"]) == 3
        net.chain(chain).generate(1)
        assert reserve_sat(net, chain) == plan["sweeps"][chain]["amount_sat"]  # epoch 1's reserve: the sweep
    rc, out = peg(net, "sweep", "--chain", "beta")
    assert rc == 1 and "peg-committee-in-grace" in out  # what epoch 0 kept stays until it expires

    # In its grace period the old key set still releases a deposit to its address, from what it kept.
    rc, out = claim(net, "alpha", *early)
    assert rc == 0, out
    assert out["epoch"] == 0 and {s["notary"] for s in out["signed"]} <= {"notary0", "notary1", "notary2"}
    net.beta.generate(1)
    assert received(net.beta, users[0]) == [30_000_000 - FEES["beta"]]

    # New deposit addresses are epoch 1's; the new notaries release them.
    user2, _, out = peg_across(net, "alpha", 20_000_000)
    assert out["epoch"] == 1 and {s["notary"] for s in out["signed"]} <= {"notary3", "notary4", "notary5"}
    net.beta.generate(1)
    assert received(net.beta, user2) == [20_000_000 - FEES["beta"]]

    # Past its grace period the old key set signs no release.
    net.beta.generate(max(0, plan["expiry_heights"]["beta"] - net.beta.height()))
    rc, out = claim(net, "alpha", *late)
    assert rc == 1
    assert [r["reason"] for r in out["refused"]] == ["peg-committee-expired"] * 3, out
    assert received(net.beta, users[1]) == []

    # ... but it moves what it kept to its successor.
    before = reserve_sat(net, "beta")
    rc, out = peg(net, "sweep", "--chain", "beta")
    assert rc == 0, out
    assert out["from_epoch"] == 0 and out["inputs"] == 1 and len(out["signed"]) == 3
    net.beta.generate(1)
    assert reserve_sat(net, "beta") == before + out["amount_sat"]
