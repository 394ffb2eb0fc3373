"""The on-chain watcher (BOLT 5): real commitments for a channel with HTLCs both ways, both
channel types; every transaction the monitor produces goes through the script interpreter
against the outputs it spends."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import pytest

from base_chain import crypto
from base_chain.crypto import PrivateKey
from base_chain.locks import calculate_sequence_locks, evaluate_sequence_locks, is_final_tx
from base_chain.script import STANDARD_FLAGS, verify_script
from base_chain.signing import sign_p2wpkh
from base_chain.templates import p2wpkh
from base_chain.tx import OutPoint, Transaction, TxIn, TxOut
from channels import sweep
from channels.keys import ChannelSecrets, derive_channel_keys, derive_commitment_keys, derive_privkey
from channels.transactions import (
    ChannelType,
    CommitmentParams,
    CommitmentSpec,
    CommitmentTx,
    build_commitment_tx,
    build_htlc_tx,
    commitment_number_from_tx,
    commitment_number_obscure_factor,
    finalize_commitment,
    finalize_htlc_tx,
    funding_script_pubkey,
    remote_htlc_sighash_type,
    sign_commitment,
    sign_htlc_tx,
)
from channels.watcher import (
    Broadcast,
    ChannelClosedOnChain,
    ChannelCloseReorged,
    ChannelFullyResolved,
    ChannelMonitor,
    CloseKind,
    Effect,
    HtlcResolved,
    LocalCommitment,
    MonitorData,
    MonitorError,
    MonitorHtlc,
    MonitorPolicy,
    NeedFeeBump,
    NeedHtlcTxFunding,
    OutputKind,
    PreimageLearned,
    RemoteCommitment,
    WatchConfirmations,
    WatchOutpoint,
)

TYPES = list(ChannelType)
IDS = [t.value for t in TYPES]

FUNDING_SAT = 1_000_000
FUNDING_OUTPOINT = OutPoint(hashlib.sha256(b"funding tx").digest(), 1)
A_DELAY = 10  # on A's (our) outputs, asked for by B
B_DELAY = 12  # on B's outputs
A_DUST = 546
B_DUST = 354
FEERATE = 2000
SAFE = 6

A: ChannelSecrets = derive_channel_keys(b"\x01" * 32, 0)  # us: the watcher's node, the opener
B: ChannelSecrets = derive_channel_keys(b"\x02" * 32, 0)  # the peer
OBSCURE = commitment_number_obscure_factor(A.payment_basepoint_secret.public_key(), B.payment_basepoint_secret.public_key())
DEST = p2wpkh(PrivateKey(b"\x33" * 32).public_key().to_bytes())
WALLET_KEY = PrivateKey(b"\x44" * 32)
WALLET_SPK = p2wpkh(WALLET_KEY.public_key().to_bytes())


def _preimage(i: int) -> bytes:
    return hashlib.sha256(b"preimage %d" % i).digest()


def _hash(i: int) -> bytes:
    return hashlib.sha256(_preimage(i)).digest()


# HTLCs, seen from A. h0 and h4 are settled off chain between states 1 and 2.
H0 = MonitorHtlc(0, True, 5_000_000, _hash(0), 1020)  # A offered; B will know the preimage
H1 = MonitorHtlc(1, True, 7_000_000, _hash(1), 1030)  # A offered; times out
H2 = MonitorHtlc(0, False, 6_000_000, _hash(2), 1040)  # B offered; A has the preimage
H3 = MonitorHtlc(1, False, 4_000_000, _hash(3), 1050)  # B offered; nobody reveals it
H4 = MonitorHtlc(2, True, 300_000, _hash(4), 1025)  # A offered; dust: trimmed
H5 = MonitorHtlc(3, True, 8_000_000, _hash(5), 1035)  # A offered in state 3 only


@dataclass(frozen=True)
class State:
    a_msat: int
    b_msat: int
    htlcs: tuple[MonitorHtlc, ...]


STATES = [
    State(600_000_000, 400_000_000, ()),
    State(587_700_000, 390_000_000, (H0, H1, H2, H3, H4)),
    State(588_000_000, 395_000_000, (H1, H2, H3)),
    State(580_000_000, 395_000_000, (H1, H2, H3, H5)),
]
for _s in STATES:
    assert _s.a_msat + _s.b_msat + sum(h.amount_msat for h in _s.htlcs) == FUNDING_SAT * 1000


@pytest.fixture(autouse=True, scope="module")
def fast_crypto() -> Iterator[None]:
    previous = crypto.get_backend().name
    if "coincurve" in crypto.available_backends():
        crypto.set_backend("coincurve")
    try:
        yield
    finally:
        crypto.set_backend(previous)


# --- both sides' commitments -----------------------------------------------------------------


def _owner(owner_is_a: bool) -> tuple[ChannelSecrets, ChannelSecrets]:
    return (A, B) if owner_is_a else (B, A)


def build(ct: ChannelType, owner_is_a: bool, n: int, state: State) -> CommitmentTx:
    owner, other = _owner(owner_is_a)
    params = CommitmentParams(
        funding_outpoint=FUNDING_OUTPOINT,
        funding_sat=FUNDING_SAT,
        local_funding_pubkey=owner.funding_privkey.public_key(),
        remote_funding_pubkey=other.funding_privkey.public_key(),
        to_self_delay=A_DELAY if owner_is_a else B_DELAY,
        dust_limit_sat=A_DUST if owner_is_a else B_DUST,
        local_is_opener=owner_is_a,
        obscure_factor=OBSCURE,
    )
    mine, theirs = (state.a_msat, state.b_msat) if owner_is_a else (state.b_msat, state.a_msat)
    spec = CommitmentSpec(mine, theirs, tuple(h.commitment_htlc(owner_is_a) for h in state.htlcs), FEERATE, ct)
    keys = derive_commitment_keys(owner.per_commitment_point(n), owner.channel_keys(), other.channel_keys())
    return build_commitment_tx(spec, params, keys, n)


def signed(ctx: CommitmentTx, owner_is_a: bool) -> Transaction:
    owner, other = _owner(owner_is_a)
    return finalize_commitment(ctx, sign_commitment(ctx, owner.funding_privkey), sign_commitment(ctx, other.funding_privkey))


def counter_htlc_sigs(ctx: CommitmentTx, owner_is_a: bool) -> tuple[bytes, ...]:
    """The non-owner's signatures of the owner's HTLC transactions (commitment_signed)."""
    _, other = _owner(owner_is_a)
    key = derive_privkey(other.htlc_basepoint_secret, ctx.keys.per_commitment_point)
    hash_type = remote_htlc_sighash_type(ctx.spec.channel_type)
    return tuple(sign_htlc_tx(build_htlc_tx(ctx, ho), ho, key, hash_type) for ho in ctx.htlc_outputs)


def local_commitment(ct: ChannelType, n: int) -> LocalCommitment:
    state = STATES[n]
    ctx = build(ct, True, n, state)
    return LocalCommitment(
        n, state.a_msat, state.b_msat, FEERATE, state.htlcs,
        sign_commitment(ctx, B.funding_privkey), counter_htlc_sigs(ctx, True),
    )  # fmt: skip


def remote_commitment(n: int, state: State | None = None) -> RemoteCommitment:
    return RemoteCommitment(n, B.per_commitment_point(n), (state or STATES[n]).htlcs)


def peer_htlc_tx(ct: ChannelType, n: int, htlc: MonitorHtlc, preimage: bytes | None = None) -> Transaction:
    """B's own HTLC-timeout / HTLC-success transaction on its commitment `n`."""
    ctx = build(ct, False, n, STATES[n])
    (ho,) = [o for o in ctx.htlc_outputs if ctx.spec.htlcs[o.htlc_index] == htlc.commitment_htlc(False)]
    tx = build_htlc_tx(ctx, ho)
    a_sig = counter_htlc_sigs(ctx, False)[ctx.htlc_outputs.index(ho)]
    b_sig = sign_htlc_tx(tx, ho, derive_privkey(B.htlc_basepoint_secret, ctx.keys.per_commitment_point))
    return finalize_htlc_tx(tx, ho, a_sig, b_sig, preimage)


def new_monitor(ct: ChannelType, upto: int = 1, *, next_state: int | None = None, tip: int = 990, **policy: int) -> ChannelMonitor:
    """A's monitor after the channel went through states 0..`upto` (and optionally B's next)."""
    data = MonitorData(
        funding_outpoint=FUNDING_OUTPOINT,
        funding_sat=FUNDING_SAT,
        channel_type=ct,
        local_is_opener=True,
        secrets=A,
        remote_keys=B.channel_keys(),
        local_to_self_delay=A_DELAY,
        remote_to_self_delay=B_DELAY,
        local_dust_limit_sat=A_DUST,
        remote_dust_limit_sat=B_DUST,
        obscure_factor=OBSCURE,
        local_commitment=local_commitment(ct, 0),
        remote_commitment=remote_commitment(0),
        destination_script=DEST,
        policy=MonitorPolicy(reorg_safety_depth=SAFE, **policy),  # type: ignore[arg-type]
    )
    m = ChannelMonitor(data, tip)
    m.provide_preimage(_preimage(2))
    for n in range(1, upto + 1):
        assert m.update_commitment(remote_commitment(n)) == []
        assert m.provide_secret(n - 1, B.per_commitment_secret(n - 1)) == []
        assert m.update_commitment(local_commitment(ct, n)) == []
    if next_state is not None:
        m.update_commitment(remote_commitment(upto + 1, STATES[next_state]))
    return m


# --- a tiny chain: the outputs every transaction spends, and script checks ------------------------


@dataclass
class Utxos:
    outs: dict[OutPoint, TxOut] = field(default_factory=dict)

    def add(self, *txs: Transaction) -> None:
        for tx in txs:
            for i, o in enumerate(tx.outputs):
                self.outs[OutPoint(tx.txid, i)] = o

    def verify(self, tx: Transaction) -> int:
        """Every input verifies against the output it spends; returns the fee."""
        total = 0
        for i, txin in enumerate(tx.inputs):
            prev = self.outs[txin.prevout]
            verify_script(b"", prev.script_pubkey, txin.witness, STANDARD_FLAGS, tx, i, prev.amount_sat)
            total += prev.amount_sat
        fee = total - sum(o.amount_sat for o in tx.outputs)
        assert fee >= 0
        return fee


def funding_utxos() -> Utxos:
    u = Utxos()
    spk = funding_script_pubkey(A.funding_privkey.public_key(), B.funding_privkey.public_key())
    u.outs[FUNDING_OUTPOINT] = TxOut(FUNDING_SAT, spk)
    for coin in range(4):
        u.outs[OutPoint(b"\x55" * 32, coin)] = TxOut(100_000, WALLET_SPK)
    return u


def of(effects: Sequence[Effect], kind: type) -> list:  # type: ignore[type-arg]
    return [e for e in effects if isinstance(e, kind)]


def broadcasts(effects: Sequence[Effect]) -> list[Transaction]:
    return [e.tx for e in of(effects, Broadcast)]


def spends(tx: Transaction, outpoint: OutPoint) -> bool:
    return any(i.prevout == outpoint for i in tx.inputs)


def only_sweep(effects: Sequence[Effect], utxos: Utxos, feerate: int) -> Transaction:
    (tx,) = broadcasts(effects)
    check_sweep(tx, utxos, feerate)
    return tx


def check_sweep(tx: Transaction, utxos: Utxos, feerate: int) -> None:
    fee = utxos.verify(tx)
    assert [o.script_pubkey for o in tx.outputs] == [DEST]
    assert fee * 1000 >= feerate * tx.weight  # pays at least the fee rate
    assert fee * 1000 <= feerate * (tx.weight + 8 * len(tx.inputs)) + 1000  # and not much more


def fund_htlc_tx(request: NeedHtlcTxFunding, coin: int = 0) -> Transaction:
    """What the host's wallet does with a zero-fee HTLC transaction: add a coin and change."""
    tx = request.tx.copy()
    tx.inputs.append(TxIn(OutPoint(b"\x55" * 32, coin), b"", 0xFFFFFFFD))
    fee = request.target_feerate_per_kw * (request.weight + 272 + 124) // 1000
    tx.outputs.append(TxOut(100_000 - fee, WALLET_SPK))
    sign_p2wpkh(tx, 1, WALLET_KEY, 100_000)
    return tx


# --- classification --------------------------------------------------------------------------------


@pytest.mark.parametrize("ct", TYPES, ids=IDS)
def test_classification(ct: ChannelType) -> None:
    base = new_monitor(ct, upto=2, next_state=3)
    snapshot = json.dumps(base.to_dict())
    coop = Transaction(2, [TxIn(FUNDING_OUTPOINT)], [TxOut(500_000, DEST), TxOut(490_000, WALLET_SPK)], 0)
    future = signed(build(ct, False, 5, STATES[2]), False)
    cases = [
        (coop, CloseKind.COOPERATIVE, None),
        (signed(build(ct, True, 2, STATES[2]), True), CloseKind.LOCAL, 2),
        (signed(build(ct, True, 1, STATES[1]), True), CloseKind.LOCAL, 1),
        (signed(build(ct, True, 0, STATES[0]), True), CloseKind.LOCAL_REVOKED, 0),
        (signed(build(ct, False, 2, STATES[2]), False), CloseKind.REMOTE, 2),
        (signed(build(ct, False, 3, STATES[3]), False), CloseKind.REMOTE, 3),
        (signed(build(ct, False, 1, STATES[1]), False), CloseKind.REVOKED, 1),
        (signed(build(ct, False, 0, STATES[0]), False), CloseKind.REVOKED, 0),
        (future, CloseKind.REMOTE_FUTURE, 5),
    ]
    for tx, kind, number in cases:
        assert commitment_number_from_tx(tx, OBSCURE) == number
        m = ChannelMonitor.from_dict(json.loads(snapshot))
        m.start()
        effects = m.block_connected(1000, [tx])
        assert of(effects, ChannelClosedOnChain) == [ChannelClosedOnChain(kind, tx.txid, 1000, number)]
        assert m.close_kind is kind
    # The next commitment is matched with its own HTLC set (H5 only exists there).
    m = ChannelMonitor.from_dict(json.loads(snapshot))
    m.block_connected(1000, [signed(build(ct, False, 3, STATES[3]), False)])
    assert {o.htlc for o in m.outputs if o.htlc} == {H1, H2, H3, H5}
    # A commitment from the future: only our to_remote can be found, and it is swept.
    m = ChannelMonitor.from_dict(json.loads(snapshot))
    effects = m.block_connected(1000, [future])
    assert [o.kind for o in m.outputs] == [OutputKind.REMOTE_TO_REMOTE]
    u = funding_utxos()
    u.add(future)
    only_sweep(effects, u, m.data.policy.sweep_feerate_per_kw)


# --- our unilateral close ---------------------------------------------------------------------------


@pytest.mark.parametrize("ct", TYPES, ids=IDS)
def test_local_close(ct: ChannelType) -> None:
    anchors = ct.anchors
    m = new_monitor(ct, upto=1)
    u = funding_utxos()
    commitment = m.local_commitment_tx()
    u.verify(commitment)
    u.add(commitment)
    ctx = build(ct, True, 1, STATES[1])
    assert commitment.txid == ctx.txid
    urgent, slow = m.data.policy.urgent_feerate_per_kw, m.data.policy.sweep_feerate_per_kw

    H = 1000
    seen: list[Effect] = []

    def block(height: int, txs: Sequence[Transaction] = ()) -> list[Effect]:
        out = m.block_connected(height, txs)
        seen.extend(out)
        return out

    effects = block(H, [commitment])
    assert of(effects, ChannelClosedOnChain) == [ChannelClosedOnChain(CloseKind.LOCAL, ctx.txid, H, 1)]
    to_local = OutPoint(ctx.txid, ctx.to_local_index or 0)
    htlc_ops = {ctx.spec.htlcs[o.htlc_index]: OutPoint(ctx.txid, o.output_index) for o in ctx.htlc_outputs}
    assert len(htlc_ops) == 4  # H4 is trimmed
    assert {e.outpoint for e in of(effects, WatchOutpoint)} == {to_local, *htlc_ops.values()}

    # H2 (received, preimage known): HTLC-success at once.
    success_op = htlc_ops[H2.commitment_htlc(True)]
    if anchors:
        (request,) = of(effects, NeedHtlcTxFunding)
        assert request.htlc_outpoint == success_op and broadcasts(effects) == []
        assert request.tx.inputs[0].sequence == 1 and request.tx.locktime == 0
        effects = m.complete_htlc_tx(fund_htlc_tx(request))
    success = only_sweep_htlc(effects, u)
    assert spends(success, success_op) and success.locktime == 0
    assert success.inputs[0].witness[3] == _preimage(2)

    # to_local: BIP68 lets the sweep into block H + A_DELAY, so it goes out when the tip is one below.
    for height in range(H + 1, H + A_DELAY - 1):
        effects = block(height)
        assert all(not spends(tx, to_local) for tx in broadcasts(effects))
        assert success in broadcasts(effects)  # rebroadcast every block until confirmed
    effects = block(H + A_DELAY - 1)
    (sweep_tx,) = [tx for tx in broadcasts(effects) if spends(tx, to_local)]
    check_sweep(sweep_tx, u, slow)
    assert sweep_tx.inputs[0].sequence == A_DELAY
    locks = calculate_sequence_locks(sweep_tx, True, [H], [0])  # the chain's own BIP68 rule
    assert evaluate_sequence_locks(H + A_DELAY, 1 << 31, locks)
    assert not evaluate_sequence_locks(H + A_DELAY - 1, 1 << 31, locks)
    assert of(effects, WatchConfirmations) == [WatchConfirmations(sweep_tx.txid, SAFE)]

    # The HTLC-success confirms: its output is ours after the delay too.
    effects = block(H + A_DELAY, [success])
    u.add(success)
    second = OutPoint(success.txid, 0)
    assert WatchOutpoint(second, success.outputs[0].script_pubkey) in effects
    assert success not in broadcasts(effects)
    assert any(o.kind is OutputKind.LOCAL_HTLC_TX_OUTPUT for o in m.outputs)

    # H1 (offered, cltv 1030): the HTLC-timeout only once the tip reaches cltv_expiry.
    timeout_op = htlc_ops[H1.commitment_htlc(True)]
    for height in range(H + A_DELAY + 1, H1.cltv_expiry):
        effects = block(height)
        assert not any(spends(tx, timeout_op) for tx in broadcasts(effects))
        assert all(r.htlc_outpoint != timeout_op for r in of(effects, NeedHtlcTxFunding))
    effects = block(H1.cltv_expiry)
    if anchors:
        requests = [r for r in of(effects, NeedHtlcTxFunding) if r.htlc_outpoint == timeout_op]
        effects = effects + m.complete_htlc_tx(fund_htlc_tx(requests[0], coin=1))
    (timeout,) = [tx for tx in broadcasts(effects) if spends(tx, timeout_op)]
    u.verify(timeout)
    assert timeout.locktime == H1.cltv_expiry and timeout.inputs[0].sequence == (1 if anchors else 0)
    assert is_final_tx(timeout, H1.cltv_expiry + 1, 0) and not is_final_tx(timeout, H1.cltv_expiry, 0)

    # The second-stage sweep is due A_DELAY blocks after the HTLC-success confirmed.
    (late_sweep,) = [tx for tx in broadcasts(effects) if spends(tx, second)]
    check_sweep(late_sweep, u, slow)
    assert late_sweep.inputs[0].sequence == A_DELAY

    # Outcomes, each once it is SAFE deep: trimmed H4 failed with the commitment, H2 fulfilled
    # by our HTLC-success; H1 fails once the HTLC-timeout is deep.
    block(H1.cltv_expiry + 1, [timeout, sweep_tx])
    for height in range(H1.cltv_expiry + 2, H1.cltv_expiry + SAFE + 1):
        block(height)
    assert [(e.htlc_id, e.outgoing, e.preimage) for e in of(seen, HtlcResolved)] == [
        (2, True, None),  # at depth SAFE of the commitment
        (0, False, _preimage(2)),
        (1, True, None),
    ]
    assert of(seen, HtlcResolved)[0] == HtlcResolved(_hash(4), None, H4.amount_msat, 2, True)
    assert urgent > 0


@pytest.mark.parametrize("ct", TYPES, ids=IDS)
def test_preimage_from_the_peers_claim_on_our_commitment(ct: ChannelType) -> None:
    m = new_monitor(ct, upto=1)
    commitment = m.local_commitment_tx()
    m.block_connected(1000, [commitment])
    (out,) = [o for o in m.outputs if o.htlc == H0]
    assert out.kind is OutputKind.LOCAL_OFFERED_HTLC
    # B claims H0 on our commitment with the preimage (the offered HTLC's remote path).
    b_key = derive_privkey(B.htlc_basepoint_secret, A.per_commitment_point(1))
    claim = sweep.build_sweep_tx(
        [sweep.htlc_preimage_input(out.outpoint, out.amount_sat, out.witness_script, b_key, _preimage(0), ct.anchors)],
        WALLET_SPK,
        1000,
    )
    assert claim is not None
    u = funding_utxos()
    u.add(commitment)
    u.verify(claim)
    effects = m.block_connected(1001, [claim])
    assert PreimageLearned(_hash(0), _preimage(0)) in effects
    assert not [o for o in m.outputs if o.kind is OutputKind.LOCAL_HTLC_TX_OUTPUT]
    seen = []
    for height in range(1002, 1001 + SAFE):
        seen += of(m.block_connected(height), HtlcResolved)
    assert HtlcResolved(_hash(0), _preimage(0), H0.amount_msat, 0, True) in seen
    assert not any(spends(tx, out.outpoint) for tx in broadcasts(m.block_connected(H0.cltv_expiry)))


def only_sweep_htlc(effects: Sequence[Effect], u: Utxos) -> Transaction:
    (tx,) = broadcasts(effects)
    u.verify(tx)
    return tx


# --- their unilateral close ---------------------------------------------------------------------------


@pytest.mark.parametrize("ct", TYPES, ids=IDS)
def test_remote_close(ct: ChannelType) -> None:
    anchors = ct.anchors
    m = new_monitor(ct, upto=1)
    u = funding_utxos()
    commitment = signed(build(ct, False, 1, STATES[1]), False)
    u.verify(commitment)
    u.add(commitment)
    urgent, slow = m.data.policy.urgent_feerate_per_kw, m.data.policy.sweep_feerate_per_kw
    H = 1000
    effects = m.block_connected(H, [commitment])
    kinds = {o.kind: o for o in m.outputs}
    assert set(kinds) == {OutputKind.REMOTE_TO_REMOTE, OutputKind.REMOTE_OFFERED_HTLC, OutputKind.REMOTE_RECEIVED_HTLC}
    by_htlc = {o.htlc: o.outpoint for o in m.outputs if o.htlc}
    assert set(by_htlc) == {H0, H1, H2, H3}
    to_remote = kinds[OutputKind.REMOTE_TO_REMOTE].outpoint

    txs = broadcasts(effects)
    (main,) = [tx for tx in txs if spends(tx, to_remote)]
    check_sweep(main, u, slow)
    assert main.inputs[0].sequence == (1 if anchors else sweep.RBF_SEQUENCE)
    (claim,) = [tx for tx in txs if spends(tx, by_htlc[H2])]  # B offered H2; we have the preimage
    check_sweep(claim, u, urgent)
    assert claim.inputs[0].witness[1] == _preimage(2)
    assert claim.inputs[0].sequence == (1 if anchors else sweep.RBF_SEQUENCE)
    assert len(txs) == 2  # nothing for H3 (no preimage), H0 / H1 not expired

    # B fulfills H0 with its HTLC-success transaction: we learn the preimage (fulfill upstream).
    b_success = peer_htlc_tx(ct, 1, H0, _preimage(0))
    effects = m.spend_detected(by_htlc[H0], b_success, None)  # seen in the mempool first
    assert effects == [PreimageLearned(_hash(0), _preimage(0))]
    effects = m.block_connected(H + 1, [b_success, main, claim])
    assert not of(effects, PreimageLearned) and not broadcasts(effects)

    # H1 times out: we take it back straight from their commitment at cltv_expiry.
    for height in range(H + 2, H1.cltv_expiry):
        effects = m.block_connected(height)
        assert not broadcasts(effects)
        if height == H + SAFE:
            assert HtlcResolved(_hash(0), _preimage(0), H0.amount_msat, 0, True) in effects
            assert HtlcResolved(_hash(2), _preimage(2), H2.amount_msat, 0, False) in effects
    effects = m.block_connected(H1.cltv_expiry)
    (timeout,) = broadcasts(effects)
    check_sweep(timeout, u, urgent)
    assert spends(timeout, by_htlc[H1]) and timeout.locktime == H1.cltv_expiry
    assert is_final_tx(timeout, H1.cltv_expiry + 1, 0) and not is_final_tx(timeout, H1.cltv_expiry, 0)
    assert timeout.inputs[0].sequence == (1 if anchors else sweep.RBF_SEQUENCE)

    # Once it is deep: H1 failed, reported once; H3 expires unclaimed, then all is resolved.
    m.block_connected(H1.cltv_expiry + 1, [timeout])
    reported = []
    for height in range(H1.cltv_expiry + 2, H3.cltv_expiry + SAFE + 1):
        reported += m.block_connected(height)
    assert of(reported, HtlcResolved) == [HtlcResolved(_hash(1), None, H1.amount_msat, 1, True)]
    assert of(reported, ChannelFullyResolved) == [ChannelFullyResolved(commitment.txid)]
    assert m.is_fully_resolved


# --- a revoked commitment: justice --------------------------------------------------------------------


@pytest.mark.parametrize("ct", TYPES, ids=IDS)
def test_justice_sweeps_every_revoked_output(ct: ChannelType) -> None:
    m = new_monitor(ct, upto=2)
    u = funding_utxos()
    ctx = build(ct, False, 1, STATES[1])
    revoked = signed(ctx, False)
    u.add(revoked)
    effects = m.block_connected(1000, [revoked])
    assert m.close_kind is CloseKind.REVOKED
    revocable = {OutPoint(revoked.txid, o.output_index) for o in ctx.htlc_outputs}
    revocable.add(OutPoint(revoked.txid, ctx.to_local_index or 0))
    assert {o.outpoint for o in m.outputs if o.kind.is_revoked} == revocable
    (justice,) = [tx for tx in broadcasts(effects) if len(tx.inputs) > 1]
    check_sweep(justice, u, m.data.policy.urgent_feerate_per_kw)
    assert {i.prevout for i in justice.inputs} == revocable  # all at once
    assert all(i.sequence == sweep.RBF_SEQUENCE for i in justice.inputs) and justice.locktime == 0
    # ... and our own output separately (it is not revoked).
    (main,) = [tx for tx in broadcasts(effects) if tx is not justice]
    check_sweep(main, u, m.data.policy.sweep_feerate_per_kw)
    assert [o.kind for o in m.outputs if o.outpoint == main.inputs[0].prevout] == [OutputKind.REMOTE_TO_REMOTE]

    # Justice confirms: its HTLCs fail (only those still live are reported: H1, H2, H3).
    m.block_connected(1001, [justice, main])
    resolved = []
    for height in range(1002, 1001 + SAFE):
        resolved += m.block_connected(height)
    assert {(e.outgoing, e.htlc_id, e.preimage) for e in of(resolved, HtlcResolved)} == {
        (True, 1, None),
        (False, 0, None),
        (False, 1, None),
    }
    assert of(resolved, ChannelFullyResolved)


@pytest.mark.parametrize("ct", TYPES, ids=IDS)
def test_justice_after_the_cheater_spends_htlc_outputs(ct: ChannelType) -> None:
    m = new_monitor(ct, upto=2)
    u = funding_utxos()
    revoked = signed(build(ct, False, 1, STATES[1]), False)
    u.add(revoked)
    m.block_connected(1000, [revoked])
    by_htlc = {o.htlc: o.outpoint for o in m.outputs if o.htlc}

    # The cheater gets in first: HTLC-success on H0 (revealing its preimage), HTLC-timeout on H3.
    b_success = peer_htlc_tx(ct, 1, H0, _preimage(0))
    b_timeout = peer_htlc_tx(ct, 1, H3)
    u.add(b_success, b_timeout)
    effects = m.block_connected(1001, [b_success, b_timeout])
    assert PreimageLearned(_hash(0), _preimage(0)) in effects
    (justice,) = [tx for tx in broadcasts(effects) if len(tx.inputs) > 1]
    check_sweep(justice, u, m.data.policy.urgent_feerate_per_kw)
    inputs = {i.prevout for i in justice.inputs}
    assert by_htlc[H0] not in inputs and by_htlc[H3] not in inputs
    assert {OutPoint(b_success.txid, 0), OutPoint(b_timeout.txid, 0)} <= inputs
    assert {by_htlc[H1], by_htlc[H2]} <= inputs
    second = [o for o in m.outputs if o.kind is OutputKind.REVOKED_HTLC_TX_OUTPUT]
    assert len(second) == 2

    # The preimage of H0 is ours to use upstream even though H0 was long settled: the learned
    # preimage is reported, but no HtlcResolved for H0 (not live any more).
    m.block_connected(1002, [justice])
    resolved = []
    for height in range(1003, 1010):
        resolved += m.block_connected(height)
    assert {(e.outgoing, e.htlc_id) for e in of(resolved, HtlcResolved)} == {(True, 1), (False, 0), (False, 1)}


@pytest.mark.parametrize("ct", TYPES, ids=IDS)
def test_revocation_after_the_commitment_confirmed(ct: ChannelType) -> None:
    """The peer broadcasts its current commitment and then revokes it: it becomes a breach."""
    m = new_monitor(ct, upto=1, next_state=2)
    current = signed(build(ct, False, 1, STATES[1]), False)
    effects = m.block_connected(1000, [current])
    assert m.close_kind is CloseKind.REMOTE
    effects = m.provide_secret(1, B.per_commitment_secret(1))
    assert of(effects, ChannelClosedOnChain) == [ChannelClosedOnChain(CloseKind.REVOKED, current.txid, 1000, 1)]
    u = funding_utxos()
    u.add(current)
    (justice,) = [tx for tx in broadcasts(effects) if len(tx.inputs) > 1]
    assert len(justice.inputs) == 5  # to_local and four HTLC outputs
    check_sweep(justice, u, m.data.policy.urgent_feerate_per_kw)


# --- anchors: CPFP of our commitment ------------------------------------------------------------------


@pytest.mark.parametrize("ct", TYPES, ids=IDS)
def test_force_close_and_fee_bump(ct: ChannelType) -> None:
    m = new_monitor(ct, upto=1)
    m.start()
    effects = m.force_close("test")
    (commitment,) = broadcasts(effects)
    u = funding_utxos()
    u.verify(commitment)
    assert commitment.txid == build(ct, True, 1, STATES[1]).txid
    bumps = of(effects, NeedFeeBump)
    if not ct.anchors:
        assert bumps == []
    else:
        (bump,) = bumps
        assert bump.txid == commitment.txid and bump.target_feerate_per_kw == m.data.policy.urgent_feerate_per_kw
        assert bump.parent_weight == commitment.weight
        u.add(commitment)
        assert u.outs[bump.anchor_outpoint].amount_sat == 330
        child = Transaction(
            2,
            [TxIn(bump.anchor_outpoint, b"", 0xFFFFFFFD), TxIn(OutPoint(b"\x55" * 32, 0), b"", 0xFFFFFFFD)],
            [TxOut(95_000, WALLET_SPK)],
        )
        sign_p2wpkh(child, 1, WALLET_KEY, 100_000)
        child = m.sign_anchor_input(child, 0)
        u.verify(child)
        with pytest.raises(MonitorError):
            m.sign_anchor_input(child, 1)
    # Rebroadcast (and bump request) every block until the funding output is spent.
    again = m.block_connected(991)
    assert broadcasts(again) == [commitment] and len(of(again, NeedFeeBump)) == len(bumps)
    assert m.force_close("again") == []  # within one block, nothing twice
    m.block_connected(992, [commitment])
    assert m.close_kind is CloseKind.LOCAL
    assert all(not spends(tx, FUNDING_OUTPOINT) for tx in broadcasts(m.block_connected(993)))


@pytest.mark.parametrize("ct", TYPES, ids=IDS)
def test_auto_force_close_on_htlc_deadlines(ct: ChannelType) -> None:
    m = new_monitor(ct, upto=1, tip=1000)
    assert broadcasts(m.block_connected(1001)) == []
    # H2: we hold the preimage and it expires at 1040: go on chain 18 blocks before.
    effects = m.block_connected(1040 - 18)
    assert broadcasts(effects) == [m.local_commitment_tx()]
    m2 = new_monitor(ct, upto=1, tip=1000, incoming_htlc_claim_buffer=0)
    assert broadcasts(m2.block_connected(H0.cltv_expiry + 2)) == []
    assert broadcasts(m2.block_connected(H0.cltv_expiry + 3)) == [m2.local_commitment_tx()]


# --- reorgs --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ct", TYPES, ids=IDS)
def test_reorgs(ct: ChannelType) -> None:
    m = new_monitor(ct, upto=1)
    commitment = signed(build(ct, False, 1, STATES[1]), False)
    effects = m.block_connected(1000, [commitment])
    (main, claim) = sorted(broadcasts(effects), key=lambda tx: len(tx.inputs[0].witness))
    # The commitment is reorged out: the channel is open again, nothing to sweep.
    effects = m.block_disconnected(1000)
    assert effects == [ChannelCloseReorged(commitment.txid)]
    assert m.close_kind is None and m.outputs == ()
    assert m.block_connected(1000) == []
    # It confirms again, with our sweeps; they resolve, then a reorg undoes the sweeps only.
    effects = m.block_connected(1001, [commitment])
    assert of(effects, ChannelClosedOnChain) and set(map(Transaction.hex, broadcasts(effects))) == {main.hex(), claim.hex()}
    assert broadcasts(m.block_connected(1002, [main, claim])) == []
    m.block_connected(1003)
    effects = m.block_disconnected(1003)
    assert broadcasts(effects) == []
    effects = m.block_disconnected(1002)
    assert {tx.txid for tx in broadcasts(effects)} == {main.txid, claim.txid}  # rebroadcast at once
    assert not of(effects, ChannelClosedOnChain)
    # Nothing was reported upstream: H2's outcome waits for reorg_safety_depth.
    effects = m.block_connected(1002)  # a different block 1002 without our sweeps
    assert {tx.txid for tx in broadcasts(effects)} == {main.txid, claim.txid}
    reported: dict[int, list[HtlcResolved]] = {}
    reported[1003] = of(m.block_connected(1003, [claim]), HtlcResolved)
    for height in range(1004, 1003 + SAFE + 2):
        reported[height] = of(m.block_connected(height), HtlcResolved)
    h4_failed = HtlcResolved(_hash(4), None, H4.amount_msat, 2, True)  # trimmed: fails with the commitment
    h2_paid = HtlcResolved(_hash(2), _preimage(2), H2.amount_msat, 0, False)
    assert {h: r for h, r in reported.items() if r} == {1001 + SAFE - 1: [h4_failed], 1003 + SAFE - 1: [h2_paid]}
    # Same height again without a disconnect call: treated as a reorg of that block.
    effects = m.block_connected(1003)
    assert claim in broadcasts(effects)


# --- persistence ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("ct", TYPES, ids=IDS)
def test_round_trip_mid_resolution(ct: ChannelType) -> None:
    m = new_monitor(ct, upto=1)
    commitment = m.local_commitment_tx()
    m.block_connected(1000, [commitment])
    effects = m.block_connected(1001)
    if ct.anchors:
        effects = m.complete_htlc_tx(fund_htlc_tx(of(effects, NeedHtlcTxFunding)[0]))
    (success,) = [tx for tx in broadcasts(effects)]
    m.block_connected(1002, [success])
    m.block_connected(1003)

    stored = json.dumps(m.to_dict())
    copy = ChannelMonitor.from_dict(json.loads(stored))
    assert json.dumps(copy.to_dict()) == stored
    restarted = copy.start()
    assert WatchOutpoint(FUNDING_OUTPOINT, funding_utxos().outs[FUNDING_OUTPOINT].script_pubkey) in restarted
    assert {e.outpoint for e in of(restarted, WatchOutpoint)} >= {o.outpoint for o in m.outputs}
    assert copy.close_kind is CloseKind.LOCAL
    assert [(o.outpoint, o.kind, o.spent_txid) for o in copy.outputs] == [
        (o.outpoint, o.kind, o.spent_txid) for o in m.outputs
    ]
    for height in range(1004, 1045):
        assert copy.block_connected(height) == m.block_connected(height)
    assert json.dumps(copy.to_dict()) == json.dumps(m.to_dict())

    # Without secrets in the record, they are passed back in.
    bare = m.to_dict(include_secrets=False)
    assert "secrets" not in bare["data"]
    with pytest.raises(ValueError):
        ChannelMonitor.from_dict(bare)
    assert ChannelMonitor.from_dict(bare, secrets=A).to_dict() == m.to_dict()


# --- updates that must be refused -----------------------------------------------------------------------


def test_updates_are_checked() -> None:
    ct = ChannelType.STATIC_REMOTEKEY
    m = new_monitor(ct, upto=1)
    good = local_commitment(ct, 2)
    with pytest.raises(MonitorError, match="commitment signature"):
        m.update_commitment(replace(good, remote_commitment_sig=local_commitment(ct, 1).remote_commitment_sig))
    with pytest.raises(MonitorError, match="HTLC"):
        m.update_commitment(replace(good, remote_htlc_sigs=good.remote_htlc_sigs[::-1]))
    with pytest.raises(MonitorError, match="number"):
        m.update_commitment(replace(good, commitment_number=3))
    with pytest.raises(MonitorError, match="before we signed"):
        m.provide_secret(1, B.per_commitment_secret(1))
    m.update_commitment(remote_commitment(2))
    with pytest.raises(MonitorError, match="not revoked"):
        m.update_commitment(remote_commitment(3))
    with pytest.raises(MonitorError, match="does not match"):
        m.provide_secret(1, B.per_commitment_secret(2))
    assert m.provide_secret(0, B.per_commitment_secret(0)) == []  # retransmission
    with pytest.raises(MonitorError):
        m.provide_secret(0, B.per_commitment_secret(1))
    m.provide_secret(1, B.per_commitment_secret(1))
    assert m.data.revoked_htlcs[1] == STATES[1].htlcs
    m.block_connected(1000, [signed(build(ct, False, 2, STATES[2]), False)])
    with pytest.raises(MonitorError, match="already spent"):
        m.update_commitment(good)


def test_sweep_dust_and_weights() -> None:
    key = PrivateKey(b"\x07" * 32)
    small = sweep.to_remote_input(OutPoint(b"\x01" * 32, 0), 600, key, anchors=False)
    assert sweep.build_sweep_tx([small], DEST, 253) is not None
    assert sweep.build_sweep_tx([small], DEST, 5000) is None  # what is left would be dust
    big = sweep.to_remote_input(OutPoint(b"\x01" * 32, 0), 100_000, key, anchors=True)
    tx = sweep.build_sweep_tx([big], DEST, 1000)
    assert tx is not None
    assert tx.weight <= sweep.sweep_weight([big], DEST)  # estimate counts 73-byte signatures
