"""The peg coordinator: hands out deposit addresses, asks the notaries, assembles and broadcasts releases.

The coordinator holds no key and is trusted with nothing: every notary checks
every request against its own view of both chains, and a release needs M
notaries' signatures under the committee's script. What it keeps in its peg dir
is bookkeeping any party could redo:

``peg.json``
    where the committee file, the chain nodes and each epoch's notaries' data dirs are;
``committee.json``
    the committee file (:mod:`relay.peg_config`) the notaries are started with;
``reserves.json``
    per committee epoch and chain, its reserve coins (funding outputs, release
    change, rotation sweeps) and the deposits it has released (its coins too,
    moved to the successor at a rotation: :mod:`relay.peg_rotation`);
``deposits.json``
    the deposit addresses handed out, the destination each one commits to
    (the deposit script holds only its hash) and the epoch it belongs to.

A claim (:meth:`PegCoordinator.claim`): read the deposit from the source chain
node (its transaction and merkle proof), pick reserve coins on the destination
chain, build the one release every notary would build
(:func:`relay.notary.propose_release`), ask each notary (``SignRelease``), keep
the first M valid signatures (:func:`relay.attestation.assemble_release`, which
ignores forgeries with a reason), record the change as a reserve coin and
broadcast. Peg-in (alpha -> beta) and peg-out (beta -> alpha) are the same code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import grpc

from base_chain.address import address_to_script, script_to_address
from base_chain.params import get_params
from base_chain.policy import dust_threshold
from base_chain.rpc import channel_for
from base_chain.rpc.tls import write_atomic
from base_chain.tx import OutPoint, Transaction, TxOut
from proto import chain_pb2 as pb
from proto import chain_pb2_grpc as pb_grpc
from proto import notary_pb2 as npb
from proto import notary_pb2_grpc as npb_grpc

from .attestation import (
    Assembly,
    AssemblyError,
    NotarySignature,
    ReleaseError,
    assemble_release,
)
from .committee import Committee, CommitteeError, ReserveCoin
from .notary import PegPolicy, Refusal, ReleaseRequest, propose_release
from .notary_wire import (
    TxWithProof,
    WireError,
    parse_txid,
    request_to_pb,
    signature_from_pb,
)
from .peg_config import PegConfig, load_peg_config, write_peg_config

__all__ = ["CHAINS", "ClaimResult", "NotaryAnswer", "PegCoordinator", "PegError", "rpc_details", "setup_peg", "write_json"]

CHAINS = ("alpha", "beta")
RPC_TIMEOUT_S = 30.0
PEG_FILE = "peg.json"
COMMITTEE_FILE = "committee.json"
RESERVES_FILE = "reserves.json"
DEPOSITS_FILE = "deposits.json"


class PegError(Exception):
    """A peg operation that cannot go on; ``reason`` is a short code, the message says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def other_chain(chain: str) -> str:
    if chain not in CHAINS:
        raise PegError("peg-unknown-chain", f"{chain!r} is not one of {', '.join(CHAINS)}")
    return CHAINS[1 - CHAINS.index(chain)]


def write_json(path: Path, value: Any) -> None:
    write_atomic(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode(), 0o644)


def _parse_outpoint(s: str) -> OutPoint:
    txid, _, n = s.partition(":")
    return OutPoint(parse_txid(txid), int(n))


def rpc_details(e: grpc.RpcError) -> str:
    code = e.code() if hasattr(e, "code") else None
    details = e.details() if hasattr(e, "details") else str(e)
    return f"{code.name if code is not None else 'error'}: {details}"


class ChainClient:
    """A chain node's gRPC (admin macaroon: the coordinator broadcasts and funds)."""

    def __init__(self, chain: str, datadir: Path) -> None:
        self.chain = chain
        self.params = get_params(chain)
        self._channel = channel_for(datadir)
        self.stub = pb_grpc.ChainServiceStub(self._channel)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self._channel.close()

    def height(self) -> int:
        return int(self.stub.GetBlockCount(pb.GetBlockCountRequest(), timeout=RPC_TIMEOUT_S).count)

    def raw_tx(self, txid: bytes) -> tuple[Transaction, int] | None:
        """(transaction, confirmations: 0 in the mempool) or None if the node does not know it."""
        try:
            r = self.stub.GetRawTransaction(pb.GetRawTransactionRequest(txid=txid[::-1].hex()), timeout=RPC_TIMEOUT_S)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return Transaction.from_hex(r.hex), 0 if r.in_mempool else int(r.confirmations)

    def proof(self, txid: bytes) -> bytes:
        return bytes.fromhex(self.stub.GetTxOutProof(pb.GetTxOutProofRequest(txids=[txid[::-1].hex()]),
                                                     timeout=RPC_TIMEOUT_S).proof)

    def utxo_confirmations(self, op: OutPoint, include_mempool: bool = True) -> int | None:
        """Confirmations of an unspent output, None if spent or unknown (with ``include_mempool``, a spend
        in the mempool counts and an output of a mempool transaction has 0)."""
        r = self.stub.GetTxOut(pb.GetTxOutRequest(txid=op.txid[::-1].hex(), n=op.index,
                                                  include_mempool=include_mempool), timeout=RPC_TIMEOUT_S)
        return int(r.confirmations) if r.found else None

    def confirmations(self, txid: bytes) -> int:
        """Of a transaction: 0 if in the mempool or unknown."""
        found = self.raw_tx(txid)
        return 0 if found is None else found[1]

    def send_raw(self, tx: Transaction) -> str:
        return str(self.stub.SendRawTransaction(pb.SendRawTransactionRequest(hexstring=tx.hex()),
                                                timeout=RPC_TIMEOUT_S).txid)

    def send_to_address(self, address: str, amount_sat: int) -> bytes:
        r = self.stub.SendToAddress(pb.SendToAddressRequest(address=address, amount_sat=amount_sat),
                                    timeout=RPC_TIMEOUT_S)
        return parse_txid(r.txid)


@dataclass(frozen=True)
class NotaryAnswer:
    """What one notary said: a signature, a refusal, or nothing (unreachable)."""

    notary: str
    """Its data dir's name."""
    signature: NotarySignature | None = None
    refusal: Refusal | None = None
    error: str | None = None


@dataclass
class ClaimResult:
    request: ReleaseRequest
    answers: list[NotaryAnswer]
    assembly: Assembly | None = None
    txid: str | None = None
    error: AssemblyError | None = None

    def to_dict(self, committee: Committee) -> dict[str, Any]:
        r = self.request
        index = {pk: i for i, pk in enumerate(committee.pubkeys)}
        out: dict[str, Any] = {
            "source_chain": r.source_chain,
            "deposit": str(r.deposit),
            "destination_chain": r.destination_chain,
            "destination_address": r.destination_address,
            "amount_sat": r.amount_sat,
            "fee_sat": r.fee_sat,
            "payout_sat": r.amount_sat - r.fee_sat,
            "epoch": r.epoch,
            "release_txid": self.txid,
            "signed": [{"notary": a.notary, "key_index": index.get(a.signature.notary_pubkey, -1)}
                       for a in self.answers if a.signature is not None],
            "refused": [{"notary": a.notary, "reason": a.refusal.reason, "detail": a.refusal.detail}
                        for a in self.answers if a.refusal is not None],
            "unreachable": [{"notary": a.notary, "error": a.error} for a in self.answers if a.error is not None],
        }
        if self.assembly is not None:
            out["signers"] = [index[pk] for pk in self.assembly.signers]
            out["ignored"] = [{"key_index": index.get(x.notary_pubkey, -1), "reason": x.reason}
                              for x in self.assembly.ignored]
        if self.error is not None:
            out["error"] = {"reason": self.error.reason, "detail": self.error.detail}
            out["ignored"] = [{"key_index": index.get(x.notary_pubkey, -1), "reason": x.reason}
                              for x in self.error.ignored]
        return out


def setup_peg(
    pegdir: Path,
    notary_datadirs: Sequence[Path],
    threshold: int,
    chain_datadirs: Mapping[str, Path],
    min_confirmations: Mapping[str, int],
    release_fee_sat: Mapping[str, int],
    *,
    epoch: int = 0,
) -> PegConfig:
    """Make each notary's key (if it has none), write the committee file and peg.json.

    The committee is active from each chain's current height (asked of its node).
    """
    from .notaryd import ensure_notary_key

    pegdir.mkdir(parents=True, exist_ok=True)
    pubkeys = [ensure_notary_key(d).public_key().to_bytes() for d in notary_datadirs]
    heights = {}
    for chain in CHAINS:
        client = ChainClient(chain, chain_datadirs[chain])
        try:
            heights[chain] = client.height()
        finally:
            client.close()
    committee = Committee.create(epoch, pubkeys, threshold, heights)
    config = write_peg_config(pegdir / COMMITTEE_FILE, [committee],
                              PegPolicy(dict(min_confirmations), dict(release_fee_sat)))
    write_json(pegdir / PEG_FILE, {
        "committee_file": COMMITTEE_FILE,
        "chains": {c: str(Path(chain_datadirs[c]).resolve()) for c in CHAINS},
        "notaries": {str(epoch): [str(Path(d).resolve()) for d in notary_datadirs]},
    })
    return config


class PegCoordinator:
    def __init__(self, pegdir: Path) -> None:
        self.pegdir = pegdir
        try:
            peg = json.loads((pegdir / PEG_FILE).read_text())
        except (OSError, ValueError) as e:
            raise PegError("peg-no-setup", f"{pegdir / PEG_FILE}: {e} (run `canal peg setup` first)") from None
        self.committee_file = pegdir / peg["committee_file"]
        self.config = load_peg_config(self.committee_file)
        self.chain_datadirs = {c: Path(p) for c, p in peg["chains"].items()}
        self.notaries_by_epoch = {int(e): [Path(p) for p in dirs] for e, dirs in peg["notaries"].items()}
        self._clients: dict[str, ChainClient] = {}

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def committee(self) -> Committee:
        return self.config.current

    @property
    def notaries(self) -> list[Path]:
        """Every notary's data dir, of every epoch, once."""
        return list(dict.fromkeys(d for e in sorted(self.notaries_by_epoch) for d in self.notaries_by_epoch[e]))

    def committee_of(self, epoch: int) -> Committee:
        c = self.config.committee(epoch)
        if c is None:
            raise PegError("peg-unknown-committee", f"no committee epoch {epoch} is configured")
        return c

    def save_peg_file(self) -> None:
        write_json(self.pegdir / PEG_FILE, {
            "committee_file": self.committee_file.name,
            "chains": {c: str(p) for c, p in self.chain_datadirs.items()},
            "notaries": {str(e): [str(d) for d in dirs] for e, dirs in sorted(self.notaries_by_epoch.items())},
        })

    def chain(self, chain: str) -> ChainClient:
        if chain not in self._clients:
            if chain not in self.chain_datadirs:
                raise PegError("peg-unknown-chain", f"no node of {chain!r} is configured")
            self._clients[chain] = ChainClient(chain, self.chain_datadirs[chain])
        return self._clients[chain]

    # --- bookkeeping -------------------------------------------------------------------------

    def _read(self, name: str) -> dict[str, Any]:
        path = self.pegdir / name
        if not path.exists():
            return {}
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def _coins(self, epoch: int) -> dict[str, Any]:
        entry: dict[str, Any] = self._read(RESERVES_FILE).get(str(epoch), {})
        return entry

    def _set_coins(self, epoch: int, kind: str, chain: str, value: Any) -> None:
        data = self._read(RESERVES_FILE)
        data.setdefault(str(epoch), {}).setdefault(kind, {})[chain] = value
        write_json(self.pegdir / RESERVES_FILE, data)

    def reserve_outpoints(self, chain: str, epoch: int | None = None) -> list[OutPoint]:
        e = self.committee.epoch if epoch is None else epoch
        return [_parse_outpoint(s) for s in self._coins(e).get("reserve", {}).get(chain, [])]

    def set_reserves(self, chain: str, coins: Iterable[OutPoint], epoch: int | None = None) -> None:
        e = self.committee.epoch if epoch is None else epoch
        self._set_coins(e, "reserve", chain, sorted({str(op) for op in coins}))

    def released_deposits(self, chain: str, epoch: int) -> list[tuple[OutPoint, bytes]]:
        """Deposits on ``chain`` to epoch ``epoch``'s addresses whose release was broadcast (the committee's now)."""
        return [(_parse_outpoint(d["outpoint"]), bytes.fromhex(d["witness_script"]))
                for d in self._coins(epoch).get("released_deposits", {}).get(chain, [])]

    def set_released_deposits(self, chain: str, epoch: int, deposits: Iterable[tuple[OutPoint, bytes]]) -> None:
        self._set_coins(epoch, "released_deposits", chain,
                        [{"outpoint": str(op), "witness_script": ws.hex()} for op, ws in deposits])

    def reserve_coins(
        self, chain: str, min_confirmations: int = 1, epoch: int | None = None
    ) -> list[tuple[ReserveCoin, int]]:
        """The committee's unspent reserve coins on ``chain`` with their confirmations."""
        committee = self.committee if epoch is None else self.committee_of(epoch)
        client = self.chain(chain)
        ws = committee.reserve_witness_script(chain)
        spk = committee.reserve_script_pubkey(chain)
        out = []
        listed = self.reserve_outpoints(chain, committee.epoch)
        gone = []
        for op in listed:
            confs = client.utxo_confirmations(op)
            if confs is None:
                if client.utxo_confirmations(op, include_mempool=False) is None and client.confirmations(op.txid):
                    gone.append(op)  # created in a block and spent in one since
                continue
            found = client.raw_tx(op.txid)
            if confs < min_confirmations or found is None or found[0].outputs[op.index].script_pubkey != spk:
                continue
            out.append((ReserveCoin(op, found[0].outputs[op.index], ws), confs))
        if gone:
            self.set_reserves(chain, [op for op in listed if op not in gone], committee.epoch)
        return out

    # --- addresses and funding ---------------------------------------------------------------

    def deposit_address(self, destination_chain: str, destination_address: str) -> str:
        """The address on the other chain that pays ``destination_address`` on ``destination_chain``."""
        source = other_chain(destination_chain)
        try:
            address = self.committee.deposit_address(source, destination_chain, destination_address)
        except (ValueError, CommitteeError) as e:
            raise PegError("peg-bad-destination", f"{destination_address!r} on {destination_chain}: {e}") from None
        deposits = self._read(DEPOSITS_FILE)
        deposits[address] = {"source_chain": source, "destination_chain": destination_chain,
                             "destination_address": destination_address, "epoch": self.committee.epoch}
        write_json(self.pegdir / DEPOSITS_FILE, deposits)
        return address

    def fund_reserve(self, chain: str, amount_sat: int) -> OutPoint:
        """Pay ``amount_sat`` from the chain node's wallet to the committee's reserve; record the coin."""
        client = self.chain(chain)
        spk = self.committee.reserve_script_pubkey(chain)
        txid = client.send_to_address(self.committee.reserve_address(chain), amount_sat)
        found = client.raw_tx(txid)
        assert found is not None
        index = next(i for i, o in enumerate(found[0].outputs) if o.script_pubkey == spk)
        op = OutPoint(txid, index)
        self.set_reserves(chain, [*self.reserve_outpoints(chain), op])
        return op

    # --- claims ------------------------------------------------------------------------------

    def prepare_claim(
        self, source_chain: str, txid: bytes, vout: int, destination_address: str | None = None
    ) -> tuple[ReleaseRequest, list[ReserveCoin], list[TxWithProof]]:
        """The release request for a deposit, the reserve coins it spends and the proofs SPV notaries need."""
        dest = other_chain(source_chain)
        src_client = self.chain(source_chain)
        found = src_client.raw_tx(txid)
        if found is None:
            raise PegError("peg-deposit-missing", f"{source_chain} node does not know transaction {txid[::-1].hex()}")
        tx, confirmations = found
        if vout >= len(tx.outputs):
            raise PegError("peg-deposit-missing", f"{txid[::-1].hex()} has no output {vout}")
        deposit_out = tx.outputs[vout]
        address = script_to_address(deposit_out.script_pubkey, get_params(source_chain).address_prefixes)
        record = self._read(DEPOSITS_FILE).get(address or "")
        if destination_address is None:
            if record is None or record["destination_chain"] != dest:
                raise PegError("peg-unknown-deposit-address",
                               f"output {vout} pays {address}, not a deposit address handed out for {dest}: "
                               "give the destination with --dest")
            destination_address = str(record["destination_address"])
        committee = self._committee_paid(source_chain, deposit_out, destination_address, record)
        proofs: list[TxWithProof] = []
        if confirmations > 0:
            proofs.append((tx, src_client.proof(txid)))
        fee = self.config.policy.release_fee_sat.get(dest)
        if fee is None:
            raise PegError("peg-no-fee-published", f"no release fee is published for {dest}")
        coins = self._pick_reserves(dest, deposit_out.amount_sat, committee.epoch)
        dest_client = self.chain(dest)
        for c in coins:
            created = dest_client.raw_tx(c.outpoint.txid)
            assert created is not None
            proofs.append((created[0], dest_client.proof(c.outpoint.txid)))
        try:
            request = propose_release(
                committee, source_chain=source_chain, deposit=OutPoint(txid, vout),
                amount_sat=deposit_out.amount_sat, destination_chain=dest, destination_address=destination_address,
                fee_sat=fee, coins=coins)
        except ReleaseError as e:
            raise PegError(e.reason, e.detail) from None
        except ValueError as e:
            raise PegError("peg-bad-destination", str(e)) from None
        return request, coins, proofs

    def _committee_paid(
        self, source_chain: str, out: TxOut, destination_address: str, record: Mapping[str, Any] | None
    ) -> Committee:
        """The committee whose deposit script ``out`` pays (the one that may release it); else the current one
        (whose notaries then refuse it as peg-deposit-wrong-script)."""
        if record is not None and record.get("destination_address") == destination_address:
            found = self.config.committee(int(record["epoch"]))
            if found is not None:
                return found
        dest = other_chain(source_chain)
        try:
            dest_script = address_to_script(destination_address, get_params(dest).address_prefixes)
        except ValueError as e:
            raise PegError("peg-bad-destination", f"{destination_address!r} on {dest}: {e}") from None
        for c in sorted(self.config.committees, key=lambda c: -c.epoch):
            if c.deposit_script_pubkey(source_chain, dest, dest_script) == out.script_pubkey:
                return c
        return self.committee

    def _pick_reserves(self, chain: str, amount_sat: int, epoch: int) -> list[ReserveCoin]:
        """Largest coins first until they cover the amount with no dust change (deterministic)."""
        available = sorted((c for c, _ in self.reserve_coins(chain, epoch=epoch)),
                           key=lambda c: (-c.txout.amount_sat, c.outpoint.txid, c.outpoint.index))
        dust = dust_threshold(TxOut(0, self.committee_of(epoch).reserve_script_pubkey(chain)))
        picked: list[ReserveCoin] = []
        total = 0
        for c in available:
            picked.append(c)
            total += c.txout.amount_sat
            if total == amount_sat or total >= amount_sat + dust:
                return picked
        raise PegError("peg-reserve-insufficient",
                       f"committee epoch {epoch}'s confirmed reserve on {chain} holds {total} sat, "
                       f"the claim needs {amount_sat}")

    def _notary_stub(self, datadir: Path) -> tuple[grpc.Channel, Any]:
        channel = channel_for(datadir)
        return channel, npb_grpc.NotaryStub(channel)  # type: ignore[no-untyped-call]

    def notary_status(self, datadir: Path) -> npb.StatusResponse:
        channel, stub = self._notary_stub(datadir)
        try:
            return stub.Status(npb.StatusRequest(), timeout=RPC_TIMEOUT_S)  # type: ignore[no-any-return]
        finally:
            channel.close()

    def wait_synced(self, datadir: Path, heights: Mapping[str, int], timeout: float) -> None:
        """Give a notary up to ``timeout`` seconds to see the chains at ``heights`` (its SPV view lags)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                st = self.notary_status(datadir)
                if all(c.height >= heights.get(c.chain, 0) for c in st.chains):
                    return
            except (grpc.RpcError, OSError, ValueError):
                return  # unreachable: SignRelease will say so
            if time.monotonic() > deadline:
                return
            time.sleep(0.1)

    def ask(self, request: ReleaseRequest, proofs: list[TxWithProof], *, sync_timeout: float = 15.0) -> list[NotaryAnswer]:
        """Ask every notary to sign; each answer is a signature, a refusal or an error."""
        heights = {c: self.chain(c).height() for c in (request.source_chain, request.destination_chain)}
        message = request_to_pb(request, proofs)
        answers = []
        for datadir in self.notaries_by_epoch.get(request.epoch, []):
            name = datadir.name
            try:
                self.wait_synced(datadir, heights, sync_timeout)
                channel, stub = self._notary_stub(datadir)
            except (OSError, ValueError) as e:
                answers.append(NotaryAnswer(name, error=str(e)))
                continue
            try:
                r = stub.SignRelease(message, timeout=RPC_TIMEOUT_S)
                if r.HasField("signature"):
                    answers.append(NotaryAnswer(name, signature=signature_from_pb(r.signature)))
                else:
                    answers.append(NotaryAnswer(name, refusal=Refusal(r.refusal.reason, r.refusal.detail)))
            except grpc.RpcError as e:
                answers.append(NotaryAnswer(name, error=rpc_details(e)))
            except WireError as e:
                answers.append(NotaryAnswer(name, error=f"malformed answer: {e}"))
            finally:
                channel.close()
        return answers

    def assemble(
        self, request: ReleaseRequest, coins: Sequence[ReserveCoin], signatures: Iterable[NotarySignature]
    ) -> Assembly:
        dest = request.destination_chain
        committee = self.config.committee(request.epoch)
        if committee is None:
            raise AssemblyError("peg-unknown-committee", f"no committee epoch {request.epoch} is configured")
        dest_script = address_to_script(request.destination_address, get_params(dest).address_prefixes)
        return assemble_release(committee, request.claim(dest_script), request.release, coins, signatures,
                                destination_height=self.chain(dest).height())

    def broadcast(self, request: ReleaseRequest, assembly: Assembly) -> str:
        """Record the release's change as a reserve coin, broadcast, then count the deposit as the committee's.

        In that order a crash or a rejected broadcast leaves at worst a change coin
        that does not exist (reserve_coins skips it) and never an unreleased deposit
        marked released (a rotation would sweep it). The spent reserve coins stay
        listed until a block spends them.
        """
        dest, epoch = request.destination_chain, request.epoch
        committee = self.committee_of(epoch)
        tx = assembly.tx
        spk = committee.reserve_script_pubkey(dest)
        coins = self.reserve_outpoints(dest, epoch)
        coins += [OutPoint(tx.txid, i) for i, o in enumerate(tx.outputs) if o.script_pubkey == spk]
        self.set_reserves(dest, coins, epoch)
        txid = self.chain(dest).send_raw(tx)
        src = request.source_chain
        deposits = dict(self.released_deposits(src, epoch))
        dest_script = address_to_script(request.destination_address, get_params(dest).address_prefixes)
        deposits[request.deposit] = committee.deposit_witness_script(src, dest, dest_script)
        self.set_released_deposits(src, epoch, deposits.items())
        return txid

    def claim(self, source_chain: str, txid: bytes, vout: int, destination_address: str | None = None) -> ClaimResult:
        """Ask the notaries to release a deposit; broadcast the release if M of them signed."""
        request, coins, proofs = self.prepare_claim(source_chain, txid, vout, destination_address)
        answers = self.ask(request, proofs)
        result = ClaimResult(request, answers)
        signatures = [a.signature for a in answers if a.signature is not None]
        try:
            result.assembly = self.assemble(request, coins, signatures)
        except AssemblyError as e:
            result.error = e
            return result
        try:
            result.txid = self.broadcast(request, result.assembly)
        except grpc.RpcError as e:
            result.error = AssemblyError("peg-broadcast-rejected", rpc_details(e))
        return result

    # --- status ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        c = self.committee
        chains: dict[str, Any] = {}
        for chain in CHAINS:
            try:
                coins = self.reserve_coins(chain, min_confirmations=0)
                chains[chain] = {
                    "height": self.chain(chain).height(),
                    "status": c.status(chain, self.chain(chain).height()).value,
                    "reserve_address": c.reserve_address(chain),
                    "reserve_sat": sum(coin.txout.amount_sat for coin, _ in coins),
                    "reserve_coins": [{"outpoint": str(coin.outpoint), "amount_sat": coin.txout.amount_sat,
                                       "confirmations": confs} for coin, confs in coins],
                    "min_confirmations": self.config.policy.min_confirmations.get(chain),
                    "release_fee_sat": self.config.policy.release_fee_sat.get(chain),
                }
            except grpc.RpcError as e:
                chains[chain] = {"error": rpc_details(e)}
        notaries = []
        for d in self.notaries:
            try:
                st = self.notary_status(d)
                notaries.append({
                    "notary": d.name, "pubkey": bytes(st.pubkey).hex(), "key_index": st.key_index,
                    "redeemed": st.redeemed,
                    "chains": [{"chain": ch.chain, "mode": ch.mode, "height": ch.height, "synced": ch.synced,
                                **({"last_error": ch.last_error} if ch.last_error else {})} for ch in st.chains],
                })
            except (grpc.RpcError, OSError, ValueError) as e:
                notaries.append({"notary": d.name, "error": rpc_details(e) if isinstance(e, grpc.RpcError) else str(e)})
        return {
            "epoch": c.epoch, "threshold": c.threshold, "n": len(c.pubkeys),
            "committee_id": c.committee_id.hex(), "pubkeys": [pk.hex() for pk in c.pubkeys],
            "chains": chains, "notaries": notaries,
        }
