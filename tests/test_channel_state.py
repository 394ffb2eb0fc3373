"""The BOLT 2 channel core: messages, and two Channels wired back to back in memory.

`Pair` is the harness (also used by test_channel_props.py): it carries out each
side's effects in order, routes SendMessage through the wire encoding to the
other side's queue, keeps the last Persist snapshot of each side, records
every other effect, and checks on the way that every commitment_signed a side
accepts is the exact BOLT 3 transaction, validly signed (and, when asked,
that the finished transaction passes the script interpreter). A `crash_at`
counter stops it between two effects to simulate a crash.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from base_chain import crypto
from base_chain.script import STANDARD_FLAGS, verify_script
from base_chain.templates import p2wsh
from base_chain.tx import OutPoint, Transaction, TxIn, TxOut
from channels import messages as m
from channels.closing import (
    CloseAgreed,
    CloseCounter,
    FeeNegotiation,
    is_valid_shutdown_script,
)
from channels.effects import (
    Broadcast,
    ChannelClosed,
    ChannelError,
    ChannelReady,
    Disconnect,
    Durability,
    Effect,
    FailChannel,
    FundingGenerationReady,
    HtlcFailed,
    HtlcFulfilled,
    IncomingHtlc,
    LocalCommitmentPublished,
    Persist,
    SendMessage,
    WatchOutpoint,
    persist_to_write,
)
from channels.features import Feature, Features
from channels.keys import ChannelSecrets, derive_channel_keys, derive_commitment_keys
from channels.specs import verify_compact_signature
from channels.state import Channel, ChannelConfig, ChannelState, channel_id_from_funding
from channels.tlv import TlvRecord
from channels.transactions import (
    ChannelType,
    CommitmentParams,
    build_commitment_tx,
    commitment_number_obscure_factor,
    commitment_sighash,
)
from channels.wire import ErrorMessage, Message, WarningMessage, decode_message

CHAIN = bytes.fromhex("06226e46111a0b59caaf126043eb5bbf28c34f3a5e332a1fc7b2b73cf188910f")
BASE_FEATURES = [
    Feature.option_data_loss_protect,
    Feature.option_upfront_shutdown_script,
    Feature.option_static_remotekey,
    Feature.option_channel_type,
    Feature.option_shutdown_anysegwit,
]
FEATURES = Features.of(optional=[*BASE_FEATURES, Feature.option_anchors_zero_fee_htlc_tx])
FEATURES_NO_ANCHORS = Features.of(optional=BASE_FEATURES)
SCRIPT_A = bytes([0, 20]) + b"\xaa" * 20
SCRIPT_B = bytes([0, 32]) + b"\xbb" * 32
ONION = bytes(range(256)) * 5 + bytes(86)
SEED_A = b"\x01" * 32
SEED_B = b"\x02" * 32


@pytest.fixture(autouse=True, scope="module")
def _coincurve() -> Iterator[None]:
    previous = crypto.get_backend().name
    crypto.set_backend("coincurve")
    try:
        yield
    finally:
        crypto.set_backend(previous)


def preimage(n: int) -> bytes:
    return hashlib.sha256(b"preimage %d" % n).digest()


def payment_hash(n: int) -> bytes:
    return hashlib.sha256(preimage(n)).digest()


# =====================================================================================
# messages


POINT = derive_channel_keys(SEED_A, 9).funding_privkey.public_key()
CID = bytes(range(32))


def _all_messages() -> list[Message]:
    k = derive_channel_keys(SEED_A, 1).channel_keys()
    anchors = Features.of(required=[Feature.option_static_remotekey, Feature.option_anchors_zero_fee_htlc_tx])
    return [
        m.OpenChannel(
            CHAIN,
            CID,
            1_000_000,
            5000,
            546,
            10**9,
            10_000,
            1,
            2500,
            144,
            30,
            k.funding_pubkey,
            k.revocation_basepoint,
            k.payment_basepoint,
            k.delayed_payment_basepoint,
            k.htlc_basepoint,
            POINT,
            1,
            SCRIPT_A,
            anchors,
        ),
        m.OpenChannel(
            CHAIN,
            CID,
            1,
            0,
            546,
            1,
            0,
            1,
            253,
            6,
            1,
            k.funding_pubkey,
            k.revocation_basepoint,
            k.payment_basepoint,
            k.delayed_payment_basepoint,
            k.htlc_basepoint,
            POINT,
        ),
        m.AcceptChannel(
            CID,
            546,
            10**9,
            10_000,
            1,
            3,
            144,
            30,
            k.funding_pubkey,
            k.revocation_basepoint,
            k.payment_basepoint,
            k.delayed_payment_basepoint,
            k.htlc_basepoint,
            POINT,
            b"",
            anchors,
            (TlvRecord(7, b"\x01"),),
        ),
        m.FundingCreated(CID, b"\x22" * 32, 1, b"\x33" * 64),
        m.FundingSigned(CID, b"\x44" * 64),
        m.ChannelReady(CID, POINT),
        m.ChannelReady(CID, POINT, short_channel_id=(700_000 << 40) | (5 << 16) | 1),
        m.Shutdown(CID, SCRIPT_B),
        m.ClosingSigned(CID, 1234, b"\x55" * 64),
        m.ClosingSigned(CID, 1234, b"\x55" * 64, fee_range=(600, 2400)),
        m.UpdateAddHtlc(CID, 7, 123_456, payment_hash(1), 800_000, ONION),
        m.UpdateAddHtlc(CID, 8, 1, payment_hash(2), 1, ONION, path_key=POINT),
        m.UpdateFulfillHtlc(CID, 7, preimage(1)),
        m.UpdateFulfillHtlc(CID, 7, preimage(1), attribution_data=bytes(m.ATTRIBUTION_DATA_LEN)),
        m.UpdateFailHtlc(CID, 8, b"\x99" * 300),
        m.UpdateFailMalformedHtlc(CID, 9, b"\x66" * 32, 0x8000 | 0x4000 | 5),
        m.CommitmentSigned(CID, b"\x77" * 64),
        m.CommitmentSigned(CID, b"\x77" * 64, tuple(bytes([i]) * 64 for i in range(5)), funding_txid=b"\x22" * 32),
        m.RevokeAndAck(CID, b"\x88" * 32, POINT),
        m.UpdateFee(CID, 253),
        m.ChannelReestablish(CID, 5, 4, b"\x12" * 32, POINT),
        m.ChannelReestablish(CID, 1, 0, bytes(32), POINT, next_funding=(b"\x01" * 32, 1)),
    ]


@pytest.mark.parametrize("msg", _all_messages(), ids=lambda x: type(x).__name__)
def test_message_round_trip(msg: Message) -> None:
    data = msg.encode()
    assert int.from_bytes(data[:2], "big") == msg.TYPE
    back = decode_message(data)
    assert type(back) is type(msg) and back == msg
    assert back.encode() == data
    assert m.channel_id_of(back) == CID


def test_message_types_registered() -> None:
    types = {cls.NAME: cls.TYPE for cls in m.BOLT2_MESSAGES}
    assert types == {
        "open_channel": 32, "accept_channel": 33, "funding_created": 34, "funding_signed": 35,
        "channel_ready": 36, "shutdown": 38, "closing_signed": 39, "update_add_htlc": 128,
        "update_fulfill_htlc": 130, "update_fail_htlc": 131, "commitment_signed": 132,
        "revoke_and_ack": 133, "update_fee": 134, "update_fail_malformed_htlc": 135,
        "channel_reestablish": 136,
    }  # fmt: skip


def test_message_layouts() -> None:
    assert m.UpdateFee(CID, 0x01020304).encode() == bytes.fromhex("0086") + CID + bytes.fromhex("01020304")
    closing = m.ClosingSigned(CID, 1, b"\x00" * 64, fee_range=(2, 3)).encode()
    assert closing.endswith(bytes.fromhex("011000000000000000020000000000000003"))
    ready = m.ChannelReady(CID, POINT, short_channel_id=42).encode()
    assert ready.endswith(bytes.fromhex("0108000000000000002a"))
    add = m.UpdateAddHtlc(CID, 0, 1, bytes(32), 2, ONION, path_key=POINT).encode()
    assert len(add) == 2 + 32 + 8 + 8 + 32 + 4 + 1366 + 2 + 33
    reestablish = m.ChannelReestablish(CID, 1, 0, bytes(32), POINT)
    assert len(reestablish.encode()) == 2 + 32 + 8 + 8 + 32 + 33 and not reestablish.has_last_secret
    sig = m.CommitmentSigned(CID, b"\x01" * 64, (b"\x02" * 64,)).encode()
    assert sig[2 + 32 + 64 : 2 + 32 + 64 + 2] == b"\x00\x01"


def test_message_malformed() -> None:
    from channels.wire import WireError

    good = m.UpdateAddHtlc(CID, 1, 1000, payment_hash(1), 10, ONION).encode()
    with pytest.raises(WireError, match="update_add_htlc"):
        decode_message(good[:-1])  # onion cut short
    with pytest.raises(WireError):
        decode_message(good + bytes.fromhex("0201ff"))  # unknown even TLV
    assert decode_message(good + bytes.fromhex("0301ff")).encode() == good + bytes.fromhex("0301ff")
    bad_point = bytearray(m.RevokeAndAck(CID, bytes(32), POINT).encode())
    bad_point[2 + 64] = 0x05
    with pytest.raises(WireError, match="point"):
        decode_message(bytes(bad_point))
    with pytest.raises(ValueError):
        m.UpdateAddHtlc(CID, 1, 1000, payment_hash(1), 10, ONION[:-1])
    with pytest.raises(ValueError):
        m.FundingSigned(CID, b"\x00" * 63)


# =====================================================================================
# the harness


class Crash(Exception):
    """Raised by the harness when the effect counter reaches crash_at."""


def funding_tx_for(ev: FundingGenerationReady) -> Transaction:
    return Transaction(
        2,
        [TxIn(OutPoint(hashlib.sha256(ev.temporary_channel_id).digest(), 1))],
        [TxOut(50_000, SCRIPT_A), TxOut(ev.funding_sat, ev.script_pubkey)],
        0,
    )


@dataclass
class Side:
    name: str
    secrets: ChannelSecrets
    channel: Channel
    inbox: deque[Message] = field(default_factory=deque)
    snapshot: bytes | None = None
    events: list[Effect] = field(default_factory=list)
    sent: list[Message] = field(default_factory=list)
    broadcasts: list[Broadcast] = field(default_factory=list)


class Pair:
    """Two channels (a = funder, b = fundee) back to back."""

    def __init__(
        self,
        *,
        funding_sat: int = 1_000_000,
        push_msat: int = 300_000_000,
        feerate_per_kw: int = 2500,
        features_a: Features = FEATURES,
        features_b: Features = FEATURES,
        config_a: ChannelConfig | None = None,
        config_b: ChannelConfig | None = None,
        verify_scripts: bool = True,
        ready: bool = True,
    ) -> None:
        self.verify_scripts = verify_scripts
        self.effect_count = 0
        self.crash_at: int | None = None
        self.warnings: list[tuple[str, Message]] = []
        #: (signer, commitment number) -> txid, as the receiver accepted it and as the signer sent it
        self.signed: dict[tuple[str, int], bytes] = {}
        sa, sb = derive_channel_keys(SEED_A, 0), derive_channel_keys(SEED_B, 0)
        a, effects = Channel.open(
            secrets=sa, keys_id=0, chain_hash=CHAIN, temporary_channel_id=b"\x07" * 32,
            funding_sat=funding_sat, feerate_per_kw=feerate_per_kw, push_msat=push_msat,
            local_features=features_a, remote_features=features_b, shutdown_scriptpubkey=SCRIPT_A,
            config=config_a,
        )  # fmt: skip
        b = Channel.inbound(
            secrets=sb, keys_id=0, chain_hash=CHAIN, local_features=features_b, remote_features=features_a,
            shutdown_scriptpubkey=SCRIPT_B, config=config_b,
        )  # fmt: skip
        self.a, self.b = Side("a", sa, a), Side("b", sb, b)
        self.run(self.a, effects)
        if ready:
            self.fund()
            self.confirm()

    # --- plumbing -------------------------------------------------------------------

    def other(self, side: Side) -> Side:
        return self.b if side is self.a else self.a

    def run(self, side: Side, effects: list[Effect], own_updates_recoverable: bool = False) -> None:
        queue = list(effects)
        while queue:
            e = queue.pop(0)
            if self.crash_at is not None and self.effect_count >= self.crash_at:
                raise Crash
            self.effect_count += 1
            if isinstance(e, SendMessage):
                msg = decode_message(e.message.encode())
                assert isinstance(msg, Message)
                side.sent.append(msg)
                if isinstance(msg, (ErrorMessage, WarningMessage)):
                    self.warnings.append((side.name, msg))
                if isinstance(msg, m.CommitmentSigned):  # the signer's view: one txid per number, ever
                    pending = side.channel._c.next_remote
                    assert pending is not None and pending.sent == msg
                    key = ("sent by " + side.name, pending.commit.index)
                    assert self.signed.setdefault(key, pending.commit.txid) == pending.commit.txid, key
                self.other(side).inbox.append(msg)
            elif isinstance(e, Persist):  # written as a channel node writes it (ChannelManager._apply)
                assert e.channel_id == side.channel.channel_id
                written = persist_to_write(e, queue, own_updates_recoverable)
                if written is not None:
                    side.snapshot = written.state
            elif isinstance(e, Broadcast):
                side.broadcasts.append(e)
                side.events.append(e)
            else:
                side.events.append(e)

    def deliver(self, side: Side) -> list[Effect]:
        msg = side.inbox.popleft()
        effects = side.channel.receive(msg)
        if isinstance(msg, m.CommitmentSigned) and not any(isinstance(e, FailChannel) for e in effects):
            self.check_local_commitment(side, msg)
        self.run(side, effects)
        return effects

    def settle(self, limit: int = 10_000) -> None:
        for _ in range(limit):
            if not (self.a.inbox or self.b.inbox):
                return
            for side in (self.a, self.b):
                if side.inbox:
                    self.deliver(side)
        raise AssertionError("messages never settled")

    def do(self, side: Side, effects: list[Effect]) -> list[Effect]:
        self.run(side, effects)
        return effects

    # --- opening ----------------------------------------------------------------------

    def fund(self) -> None:
        self.settle()
        ev = next(e for e in self.a.events if isinstance(e, FundingGenerationReady))
        self.do(self.a, self.a.channel.funding_transaction_generated(funding_tx_for(ev)))
        self.settle()

    def confirm(self, depth: int = 3) -> None:
        scid = (800_000 << 40) | (1 << 16) | 1
        self.do(self.a, self.a.channel.funding_confirmed(depth, scid))
        self.do(self.b, self.b.channel.funding_confirmed(depth, scid))
        self.settle()

    # --- checks ------------------------------------------------------------------------

    def check_local_commitment(self, side: Side, msg: m.CommitmentSigned) -> None:
        """The commitment `side` just accepted is BOLT 3's, signed by the other side's funding key."""
        ch, other = side.channel, self.other(side).channel
        c = ch._c
        p = c.params
        lc = c.local_commit
        expected = expected_commitment(side.secrets, ch, lc.index)
        assert verify_compact_signature(p.remote.keys.funding_pubkey, msg.signature, commitment_sighash(expected))
        key = (self.other(side).name, lc.index)
        assert self.signed.setdefault(key, expected.txid) == expected.txid, f"{key} signed twice"
        signed_tx = ch.local_commitment_tx()
        assert signed_tx.txid == expected.txid
        assert other._c.params.funding_outpoint == p.funding_outpoint
        if self.verify_scripts:
            spk = p2wsh(expected.params.funding_script)
            verify_script(b"", spk, signed_tx.inputs[0].witness, STANDARD_FLAGS, signed_tx, 0, p.funding_sat)
        assert sum(o.amount_sat for o in signed_tx.outputs) + expected.fee_sat == p.funding_sat

    def errors(self) -> list[tuple[str, str]]:
        return [(s, w.printable_data()) for s, w in self.warnings]

    # --- payments ------------------------------------------------------------------------

    def pay(self, side: Side, amount_msat: int, n: int, cltv: int = 600_000) -> int:
        effects = side.channel.add_htlc(amount_msat, payment_hash(n), cltv, ONION)
        add = next(e.message for e in effects if isinstance(e, SendMessage))
        assert isinstance(add, m.UpdateAddHtlc)
        self.do(side, effects)
        return add.id

    def commit(self, side: Side) -> None:
        self.do(side, side.channel.sign())

    def resolve_all(self, side: Side, preimages: dict[bytes, bytes]) -> int:
        """Fulfill (known preimage) or fail every unresolved incoming HTLC of `side`."""
        n = 0
        for add in side.channel.unresolved_incoming_htlcs():
            if add.payment_hash in preimages:
                self.do(side, side.channel.fulfill_htlc(add.id, preimages[add.payment_hash]))
            else:
                self.do(side, side.channel.fail_htlc(add.id, b"no thanks"))
            n += 1
        return n

    def finish(self, preimages: dict[bytes, bytes]) -> None:
        """Drive both sides until no HTLC and no update is left anywhere."""
        for _ in range(50):
            for side in (self.a, self.b):
                self.resolve_all(side, preimages)
            for side in (self.a, self.b):
                if side.channel.state in (ChannelState.NORMAL, ChannelState.SHUTDOWN):
                    self.commit(side)
            self.settle()
            if self.a.channel._c.is_quiescent() and self.b.channel._c.is_quiescent():
                return
        raise AssertionError("channel never became quiescent")

    def assert_agree(self) -> None:
        a, b = self.a.channel._c, self.b.channel._c
        assert a.local_commit.spec == b.remote_commit.spec
        assert b.local_commit.spec == a.remote_commit.spec
        assert a.local_commit.spec.mirrored() == b.local_commit.spec
        assert a.local_commit.spec.total_msat() == a.params.funding_sat * 1000

    def restore(self) -> None:
        """Both sides restart from their last snapshot; everything in flight is lost."""
        for side in (self.a, self.b):
            assert side.snapshot is not None
            side.channel = Channel.from_bytes(side.snapshot, side.secrets)
            side.inbox.clear()
        self.crash_at = None
        self.reconnect()

    def reconnect(self) -> None:
        for side in (self.a, self.b):
            side.inbox.clear()
        for side in (self.a, self.b):
            side.channel.disconnected()
        for side in (self.a, self.b):
            self.do(side, side.channel.reconnected())
        self.settle()


def expected_commitment(secrets: ChannelSecrets, ch: Channel, index: int) -> Any:
    """Our commitment `index` rebuilt from scratch: the spec, BOLT 3 and the raw parameters."""
    c = ch._c
    p = c.params
    local, remote = p.local, p.remote
    funder_basepoint, fundee_basepoint = (
        (local.keys.payment_basepoint, remote.keys.payment_basepoint)
        if p.is_funder
        else (remote.keys.payment_basepoint, local.keys.payment_basepoint)
    )
    params = CommitmentParams(
        funding_outpoint=p.funding_outpoint,
        funding_sat=p.funding_sat,
        local_funding_pubkey=secrets.funding_privkey.public_key(),
        remote_funding_pubkey=remote.keys.funding_pubkey,
        to_self_delay=remote.to_self_delay,
        dust_limit_sat=local.dust_limit_sat,
        local_is_opener=p.is_funder,
        obscure_factor=commitment_number_obscure_factor(funder_basepoint, fundee_basepoint),
    )
    keys = derive_commitment_keys(secrets.per_commitment_point(index), secrets.channel_keys(), remote.keys)
    spec = c.local_commit.spec.commitment_spec(p.channel_type)
    return build_commitment_tx(spec, params, keys, index)


# =====================================================================================
# opening


def test_open_funded_ready_effects() -> None:
    pair = Pair(ready=False)
    a, b = pair.a, pair.b
    opens = [x for x in a.sent if isinstance(x, m.OpenChannel)]
    assert len(opens) == 1 and opens[0].channel_type is not None
    assert opens[0].upfront_shutdown_script == SCRIPT_A
    pair.settle()
    assert a.channel.state is ChannelState.WAIT_FOR_FUNDING_TX
    ev = next(e for e in a.events if isinstance(e, FundingGenerationReady))
    tx = funding_tx_for(ev)
    effects = a.channel.funding_transaction_generated(tx)
    assert [type(e) for e in effects] == [SendMessage]  # nothing persisted before funding_signed
    pair.run(a, effects)
    fundee = b.channel.receive(b.inbox.popleft())
    assert [type(e) for e in fundee] == [Persist, SendMessage, WatchOutpoint]
    assert isinstance(fundee[1], SendMessage) and isinstance(fundee[1].message, m.FundingSigned)
    pair.run(b, fundee)
    funder = a.channel.receive(a.inbox.popleft())
    assert [type(e) for e in funder] == [Persist, Broadcast, WatchOutpoint]
    assert isinstance(funder[1], Broadcast) and funder[1].tx is tx and funder[1].label == "funding"
    assert isinstance(funder[2], WatchOutpoint) and funder[2].min_depth == 3
    assert funder[2].outpoint == OutPoint(tx.txid, 1)
    pair.run(a, funder)
    cid = channel_id_from_funding(tx.txid, 1)
    assert a.channel.channel_id == b.channel.channel_id == cid
    assert a.channel.state is b.channel.state is ChannelState.AWAITING_CHANNEL_READY
    # not deep enough yet
    shallow = a.channel.funding_confirmed(1, 5)
    assert not any(isinstance(e, SendMessage) for e in shallow)
    assert a.channel.state is ChannelState.AWAITING_CHANNEL_READY
    pair.confirm()
    assert a.channel.state is b.channel.state is ChannelState.NORMAL
    assert any(isinstance(e, ChannelReady) for e in a.events) and any(isinstance(e, ChannelReady) for e in b.events)
    assert a.channel.local_balance_msat == 700_000_000 and b.channel.local_balance_msat == 300_000_000
    assert a.channel.channel_type is ChannelType.ANCHORS
    assert not pair.warnings
    # commitment 0 of each side is signed by the other and spends the funding output
    for side in (a, b):
        tx0 = side.channel.local_commitment_tx()
        spk = p2wsh(side.channel._c.params.commitment_params(ours=True).funding_script)
        verify_script(b"", spk, tx0.inputs[0].witness, STANDARD_FLAGS, tx0, 0, 1_000_000)
        assert tx0.txid == expected_commitment(side.secrets, side.channel, 0).txid


def test_channel_type_negotiation() -> None:
    assert Pair(features_b=FEATURES_NO_ANCHORS).b.channel.channel_type is ChannelType.STATIC_REMOTEKEY
    pair = Pair(features_a=FEATURES_NO_ANCHORS)
    assert pair.a.channel.channel_type is pair.b.channel.channel_type is ChannelType.STATIC_REMOTEKEY
    # a static_remotekey channel carries HTLCs as well
    pair.pay(pair.a, 50_000_000, 1)
    pair.commit(pair.a)
    pair.settle()
    pair.finish({payment_hash(1): preimage(1)})
    assert pair.b.channel.local_balance_msat == 350_000_000
    with pytest.raises(ChannelError, match="static_remotekey"):
        Channel.open(
            secrets=derive_channel_keys(SEED_A, 3), keys_id=3, chain_hash=CHAIN, temporary_channel_id=bytes(32),
            funding_sat=100_000, feerate_per_kw=253, local_features=FEATURES,
            remote_features=Features.of(optional=[Feature.option_data_loss_protect]), shutdown_scriptpubkey=SCRIPT_A,
        )  # fmt: skip


def _fundee_reply(mutate: Any) -> list[Effect]:
    pair = Pair(ready=False)
    msg = pair.b.inbox.popleft()
    assert isinstance(msg, m.OpenChannel)
    return pair.b.channel.receive(mutate(msg))


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda o: replace(o, channel_type=None), "without channel_type"),
        (lambda o: replace(o, chain_hash=bytes(32)), "chain_hash"),
        (lambda o: replace(o, push_msat=o.funding_satoshis * 1000 + 1), "push_msat"),
        (lambda o: replace(o, to_self_delay=5000), "to_self_delay"),
        (lambda o: replace(o, max_accepted_htlcs=484), "max_accepted_htlcs"),
        (lambda o: replace(o, dust_limit_satoshis=353), "dust_limit"),
        (lambda o: replace(o, dust_limit_satoshis=20_000), "dust_limit"),
        (lambda o: replace(o, feerate_per_kw=100), "feerate"),
        (lambda o: replace(o, channel_type=Features.of(required=[Feature.option_zeroconf])), "channel_type"),
    ],
)
def test_fundee_refuses_bad_open_channel(mutate: Any, reason: str) -> None:
    effects = _fundee_reply(mutate)
    errors = [e.message for e in effects if isinstance(e, SendMessage) and isinstance(e.message, ErrorMessage)]
    assert len(errors) == 1 and reason in errors[0].printable_data()
    fail = [e for e in effects if isinstance(e, FailChannel)]
    assert fail and not fail[0].broadcast
    assert not any(isinstance(e, Persist) for e in effects)


def test_funder_refuses_bad_accept_and_bad_funding_signature() -> None:
    pair = Pair(ready=False)
    pair.deliver(pair.b)
    accept = pair.a.inbox.popleft()
    assert isinstance(accept, m.AcceptChannel)
    effects = pair.a.channel.receive(
        replace(accept, channel_type=Features.of(required=[Feature.option_static_remotekey]))
    )
    assert any(isinstance(e, FailChannel) for e in effects)
    assert pair.a.channel.state is ChannelState.ABANDONED
    # a bad signature in funding_signed
    pair = Pair(ready=False)
    pair.settle()
    ev = next(e for e in pair.a.events if isinstance(e, FundingGenerationReady))
    pair.do(pair.a, pair.a.channel.funding_transaction_generated(funding_tx_for(ev)))
    pair.deliver(pair.b)
    signed = pair.a.inbox.popleft()
    assert isinstance(signed, m.FundingSigned)
    effects = pair.a.channel.receive(replace(signed, signature=b"\x01" * 64))
    assert not any(isinstance(e, Broadcast) for e in effects)
    assert any(isinstance(e, FailChannel) and not e.broadcast for e in effects)
    with pytest.raises(ChannelError):
        pair.a.channel.funding_transaction_generated(funding_tx_for(ev))


def test_disconnect_before_funding_forgets_the_channel() -> None:
    pair = Pair(ready=False)
    effects = pair.a.channel.disconnected()
    assert [type(e) for e in effects] == [FailChannel] and pair.a.channel.state is ChannelState.ABANDONED
    with pytest.raises(ChannelError):
        pair.a.channel.to_dict()


# =====================================================================================
# normal operation


def test_many_htlcs_both_ways_several_per_commitment() -> None:
    pair = Pair()
    a, b = pair.a, pair.b
    preimages = {payment_hash(n): preimage(n) for n in range(20)}
    ids_a = [pair.pay(a, 10_000_000 + n, n) for n in range(4)]
    ids_b = [pair.pay(b, 2_000_000 + n, 10 + n) for n in range(3)]
    assert ids_a == [0, 1, 2, 3] and ids_b == [0, 1, 2]
    pair.commit(a)
    pair.commit(b)
    pair.settle()
    incoming_b = [e for e in b.events if isinstance(e, IncomingHtlc)]
    incoming_a = [e for e in a.events if isinstance(e, IncomingHtlc)]
    assert [e.htlc_id for e in incoming_b] == ids_a and [e.htlc_id for e in incoming_a] == ids_b
    assert incoming_b[0].onion_routing_packet == ONION and incoming_b[0].payment_hash == payment_hash(0)
    pair.assert_agree()
    assert len(a.channel._c.local_commit.spec.htlcs) == 7
    # b fulfills two, fails one, fail-malformed one; a fulfills all of b's
    pair.do(b, b.channel.fulfill_htlc(0, preimage(0)))
    pair.do(b, b.channel.fulfill_htlc(2, preimage(2)))
    pair.do(b, b.channel.fail_htlc(1, b"\x01" * 100))
    pair.do(b, b.channel.fail_malformed_htlc(3, b"\x02" * 32, 0x8000 | 0x4000 | 6))
    for i in ids_b:
        pair.do(a, a.channel.fulfill_htlc(i, preimage(10 + i)))
    pair.commit(b)
    pair.commit(a)
    pair.settle()
    pair.finish(preimages)
    pair.assert_agree()
    fulfilled = [e for e in a.events if isinstance(e, HtlcFulfilled)]
    failed = [e for e in a.events if isinstance(e, HtlcFailed)]
    assert sorted(e.htlc_id for e in fulfilled) == [0, 2] and fulfilled[0].payment_preimage == preimage(0)
    assert {(e.htlc_id, e.failure_code) for e in failed} == {(1, None), (3, 0x8000 | 0x4000 | 6)}
    assert next(e for e in failed if e.htlc_id == 1).reason == b"\x01" * 100
    sent = 10_000_000 + 10_000_002
    received = sum(2_000_000 + n for n in range(3))
    assert a.channel.local_balance_msat == 700_000_000 - sent + received
    assert b.channel.local_balance_msat == 300_000_000 + sent - received
    assert not a.channel._c.local_commit.spec.htlcs and not pair.warnings


def test_commitment_dance_interleaved_and_dust_htlcs() -> None:
    pair = Pair(verify_scripts=True)
    a, b = pair.a, pair.b
    preimages = {payment_hash(n): preimage(n) for n in range(10)}
    pair.pay(a, 5_000_000, 0)
    pair.commit(a)  # commitment_signed in flight
    pair.pay(b, 400_000, 1)  # dust (trimmed) HTLC, concurrently
    pair.pay(b, 2_000, 2)  # tiny
    pair.commit(b)
    pair.pay(a, 1_000_000, 3)
    pair.settle()
    pair.commit(a)
    pair.settle()
    pair.assert_agree()
    spec = a.channel._c.local_commit.spec
    assert len(spec.htlcs) == 4
    tx = a.channel.local_commitment_tx()
    assert len(tx.outputs) < 4 + 4  # the dust HTLCs are trimmed
    pair.finish(preimages)
    pair.assert_agree()
    assert not pair.warnings


def test_update_fee() -> None:
    pair = Pair()
    a, b = pair.a, pair.b
    with pytest.raises(ChannelError, match="funder"):
        b.channel.update_fee(3000)
    pair.pay(b, 50_000_000, 1)
    pair.do(a, a.channel.update_fee(7500))
    pair.commit(a)
    pair.commit(b)
    pair.settle()
    pair.assert_agree()
    assert a.channel._c.local_commit.spec.feerate_per_kw == b.channel._c.local_commit.spec.feerate_per_kw == 7500
    with pytest.raises(ChannelError, match="afford"):
        Pair(push_msat=800_000_000).a.channel.update_fee(200_000)
    # a second fee update with an HTLC in flight
    pair.do(a, a.channel.update_fee(1000))
    pair.commit(a)
    pair.settle()
    assert b.channel._c.local_commit.spec.feerate_per_kw == 1000
    pair.finish({payment_hash(1): preimage(1)})
    assert not pair.warnings


def test_api_misuse_raises_channel_error_and_changes_nothing() -> None:
    pair = Pair(config_b=ChannelConfig(htlc_minimum_msat=5000, max_accepted_htlcs=3))
    a = pair.a
    before = a.channel.to_dict()
    with pytest.raises(ChannelError, match="htlc_minimum"):
        a.channel.add_htlc(4999, payment_hash(1), 100, ONION)
    with pytest.raises(ChannelError, match="balance"):
        a.channel.add_htlc(700_000_000, payment_hash(1), 100, ONION)
    with pytest.raises(ChannelError, match="cltv"):
        a.channel.add_htlc(10_000, payment_hash(1), 500_000_000, ONION)
    with pytest.raises(ChannelError):
        a.channel.fulfill_htlc(0, preimage(0))
    assert a.channel.to_dict() == before
    for n in range(3):
        pair.pay(a, 10_000, n)
    with pytest.raises(ChannelError, match="at most 3"):
        a.channel.add_htlc(10_000, payment_hash(9), 100, ONION)
    pair.commit(a)
    pair.settle()
    with pytest.raises(ChannelError, match="preimage"):
        pair.b.channel.fulfill_htlc(0, preimage(5))
    pair.do(pair.b, pair.b.channel.fulfill_htlc(0, preimage(0)))
    with pytest.raises(ChannelError, match="already"):
        pair.b.channel.fail_htlc(0, b"")
    with pytest.raises(ChannelError, match="BADONION"):
        pair.b.channel.fail_malformed_htlc(1, bytes(32), 0x4000)
    assert pair.b.channel.sign() != []  # the fulfill
    assert pair.b.channel.sign() == []  # waiting for revoke_and_ack
    assert not pair.warnings


# =====================================================================================
# protocol violations: error / warning effects, never an exception


def _violation(pair: Pair, side: Side, msg: Message) -> tuple[list[Effect], str]:
    effects = side.channel.receive(msg)
    texts = [
        e.message.printable_data()
        for e in effects
        if isinstance(e, SendMessage) and isinstance(e.message, ErrorMessage)
    ]
    assert len(texts) == 1, effects
    assert any(isinstance(e, FailChannel) and e.broadcast for e in effects)
    assert side.channel.state is ChannelState.FAILED
    persist = [i for i, e in enumerate(effects) if isinstance(e, Persist)]
    assert persist and persist[0] < next(i for i, e in enumerate(effects) if isinstance(e, SendMessage))
    return effects, texts[0]


def _add(pair: Pair, side: Side, **kw: Any) -> m.UpdateAddHtlc:
    c = pair.other(side).channel._c
    fields: dict[str, Any] = dict(
        channel_id=c.channel_id, id=c.local_next_htlc_id, amount_msat=1_000_000,
        payment_hash=payment_hash(1), cltv_expiry=600, onion_routing_packet=ONION,
    )  # fmt: skip
    fields.update(kw)
    return m.UpdateAddHtlc(**fields)


def test_violation_htlc_below_minimum() -> None:
    pair = Pair(config_b=ChannelConfig(htlc_minimum_msat=10_000))
    _, text = _violation(pair, pair.b, _add(pair, pair.b, amount_msat=9_999))
    assert "htlc_minimum_msat" in text
    pair = Pair()
    _, text = _violation(pair, pair.b, _add(pair, pair.b, amount_msat=0))
    assert "minimum" in text


def test_violation_over_max_accepted_htlcs() -> None:
    pair = Pair(config_b=ChannelConfig(max_accepted_htlcs=2))
    for n in range(2):
        assert pair.b.channel.receive(_add(pair, pair.b, id=n)) == []
    _, text = _violation(pair, pair.b, _add(pair, pair.b, id=2))
    assert "max_accepted_htlcs" in text


def test_violation_spending_into_the_reserve() -> None:
    pair = Pair(push_msat=20_000_000)  # b has 20_000 sat; a asks a reserve of 10_000 sat
    _, text = _violation(pair, pair.a, _add(pair, pair.a, amount_msat=10_000_001))
    assert "cannot afford" in text
    pair = Pair(push_msat=20_000_000)
    assert pair.a.channel.receive(_add(pair, pair.a, amount_msat=10_000_000)) == []
    with pytest.raises(ChannelError, match="reserve"):
        pair.b.channel.add_htlc(10_000_001, payment_hash(1), 100, ONION)


def test_violation_over_max_htlc_value_in_flight_and_bad_ids() -> None:
    pair = Pair(config_b=ChannelConfig(max_htlc_value_in_flight_msat=1_500_000))
    assert pair.b.channel.receive(_add(pair, pair.b)) == []
    _, text = _violation(pair, pair.b, _add(pair, pair.b, id=1))
    assert "max_htlc_value_in_flight" in text
    pair = Pair()
    _, text = _violation(pair, pair.b, _add(pair, pair.b, id=5))
    assert "id 5" in text
    pair = Pair()
    _, text = _violation(pair, pair.b, _add(pair, pair.b, cltv_expiry=500_000_000))
    assert "cltv_expiry" in text


def test_violation_bad_commitment_signature() -> None:
    pair = Pair()
    pair.pay(pair.a, 1_000_000, 1)
    pair.commit(pair.a)
    pair.deliver(pair.b)  # the add
    sig = pair.b.inbox.popleft()
    assert isinstance(sig, m.CommitmentSigned)
    before = pair.b.channel._c.local_commit
    effects, text = _violation(
        pair, pair.b, replace(sig, signature=sig.signature[:-1] + bytes([sig.signature[-1] ^ 1]))
    )
    assert "invalid commitment signature" in text
    assert not any(isinstance(e, SendMessage) and isinstance(e.message, m.RevokeAndAck) for e in effects)
    assert pair.b.channel._c.local_commit == before
    # a wrong number of HTLC signatures, a bad HTLC signature, a high-S signature
    for mutate, reason in [
        (lambda s: replace(s, htlc_signatures=()), "HTLC signatures"),
        (lambda s: replace(s, htlc_signatures=(b"\x01" * 64,)), "HTLC signature"),
        (lambda s: replace(s, signature=_high_s(s.signature)), "invalid commitment signature"),
    ]:
        pair = Pair()
        pair.pay(pair.a, 1_000_000, 1)
        pair.commit(pair.a)
        pair.deliver(pair.b)
        sig = pair.b.inbox.popleft()
        assert isinstance(sig, m.CommitmentSigned)
        _, text = _violation(pair, pair.b, mutate(sig))
        assert reason in text


def _high_s(sig: bytes) -> bytes:
    s = int.from_bytes(sig[32:], "big")
    return sig[:32] + (crypto.N - s).to_bytes(32, "big")


def test_violation_revoke_and_ack_with_wrong_secret() -> None:
    pair = Pair()
    pair.pay(pair.a, 1_000_000, 1)
    pair.commit(pair.a)
    pair.deliver(pair.b)
    pair.deliver(pair.b)  # commitment_signed -> revoke_and_ack (+ b's commitment_signed)
    raa = pair.a.inbox.popleft()
    assert isinstance(raa, m.RevokeAndAck)
    _, text = _violation(pair, pair.a, replace(raa, per_commitment_secret=b"\x42" * 32))
    assert "per_commitment_secret" in text
    pair = Pair()
    pair.pay(pair.a, 1_000_000, 1)
    pair.commit(pair.a)
    pair.deliver(pair.b)
    pair.deliver(pair.b)
    raa = pair.a.inbox.popleft()
    assert isinstance(raa, m.RevokeAndAck)
    _, text = _violation(pair, pair.a, replace(raa, per_commitment_secret=bytes(32)))
    assert "not a valid secret" in text


def test_violation_out_of_order_messages() -> None:
    pair = Pair()
    cid = pair.a.channel.channel_id
    point = pair.b.secrets.per_commitment_point(5)
    _, text = _violation(pair, pair.a, m.RevokeAndAck(cid, b"\x01" * 32, point))
    assert "revoke_and_ack" in text
    pair = Pair()
    _, text = _violation(pair, pair.a, m.CommitmentSigned(cid, b"\x01" * 64))
    assert "without any update" in text
    pair = Pair()
    _, text = _violation(pair, pair.b, m.FundingCreated(pair.b.channel.temporary_channel_id, bytes(32), 0, bytes(64)))
    assert "unexpected funding_created" in text
    pair = Pair()
    _, text = _violation(pair, pair.a, m.UpdateFee(cid, 3000))
    assert "non-funder" in text
    pair = Pair()
    _, text = _violation(pair, pair.a, m.UpdateFulfillHtlc(cid, 0, preimage(0)))
    assert "HTLC 0" in text
    # before channel_ready: updates are out of order
    pair = Pair(ready=False)
    pair.fund()
    _, text = _violation(pair, pair.b, _add(pair, pair.b))
    assert "unexpected update_add_htlc" in text
    # after a reconnection, anything before channel_reestablish
    pair = Pair()
    pair.b.channel.disconnected()
    pair.do(pair.b, pair.b.channel.reconnected())
    _, text = _violation(pair, pair.b, _add(pair, pair.b))
    assert "before channel_reestablish" in text


def test_violation_fulfill_with_wrong_preimage_and_malformed_without_badonion() -> None:
    for bad in (
        lambda cid: m.UpdateFulfillHtlc(cid, 0, preimage(2)),
        lambda cid: m.UpdateFailMalformedHtlc(cid, 0, bytes(32), 0x4000 | 2),
    ):
        pair = Pair()
        pair.pay(pair.a, 1_000_000, 1)
        pair.commit(pair.a)
        pair.settle()
        _, text = _violation(pair, pair.a, bad(pair.a.channel.channel_id))
        assert "preimage" in text or "BADONION" in text


def test_warnings_keep_the_channel() -> None:
    pair = Pair()
    cid = pair.a.channel.channel_id
    effects = pair.a.channel.receive(m.Shutdown(cid, b"\x6a\x01\x00"))  # OP_RETURN: not allowed here
    assert isinstance(effects[0], SendMessage) and isinstance(effects[0].message, WarningMessage)
    assert any(isinstance(e, Disconnect) for e in effects)
    assert pair.a.channel.state is ChannelState.NORMAL
    effects = pair.a.channel.receive(m.UpdateFee(bytes(32), 3000))
    assert isinstance(effects[0], SendMessage) and isinstance(effects[0].message, WarningMessage)
    assert pair.a.channel.receive(WarningMessage(cid, b"hello")) == []
    assert pair.a.channel.state is ChannelState.NORMAL


def test_peer_error_fails_the_channel_and_force_close() -> None:
    pair = Pair()
    a, b = pair.a, pair.b
    pair.pay(a, 20_000_000, 1)
    pair.pay(b, 30_000_000, 2)
    pair.commit(a)
    pair.settle()
    pair.do(b, b.channel.fulfill_htlc(0, preimage(1)))
    effects = b.channel.receive(ErrorMessage(b.channel.channel_id, b"bye"))
    assert [type(e) for e in effects] == [Persist, FailChannel]
    assert isinstance(effects[1], FailChannel) and effects[1].broadcast and "bye" in effects[1].reason
    effects = b.channel.force_close()
    assert [type(e) for e in effects] == [Persist, Broadcast, LocalCommitmentPublished]
    bc, info = effects[1], effects[2]
    assert isinstance(bc, Broadcast) and isinstance(info, LocalCommitmentPublished)
    tx = bc.tx
    p = b.channel._c.params
    verify_script(b"", p.funding_script_pubkey, tx.inputs[0].witness, STANDARD_FLAGS, tx, 0, p.funding_sat)
    assert len(info.htlcs) == 2
    for h in info.htlcs:
        out = tx.outputs[h.output_index]
        assert h.unsigned_htlc_tx.inputs[0].prevout == OutPoint(tx.txid, h.output_index)
        assert h.htlc_tx is not None  # offered: HTLC-timeout; received with a known preimage: HTLC-success
        assert h.payment_preimage == (None if h.offered else preimage(1))
        verify_script(b"", out.script_pubkey, h.htlc_tx.inputs[0].witness, STANDARD_FLAGS, h.htlc_tx, 0, out.amount_sat)
    assert b.channel.state is ChannelState.FORCE_CLOSING
    assert b.channel.receive(m.UpdateFee(b.channel.channel_id, 3000)) == []
    # a force close while connected tells the peer
    effects = a.channel.force_close()
    assert isinstance(effects[1], SendMessage) and isinstance(effects[1].message, ErrorMessage)


# =====================================================================================
# closing


def _close(pair: Pair, initiator: Side, **kw: Any) -> Transaction:
    pair.do(initiator, initiator.channel.shutdown(**kw))
    pair.settle()
    for side in (pair.a, pair.b):
        assert side.channel.state is ChannelState.CLOSING, side.channel.state
    ta, tb = pair.a.channel.closing_tx, pair.b.channel.closing_tx
    assert ta is not None and tb is not None and ta.txid == tb.txid and ta.wtxid == tb.wtxid
    p = pair.a.channel._c.params
    verify_script(b"", p.funding_script_pubkey, ta.inputs[0].witness, STANDARD_FLAGS, ta, 0, p.funding_sat)
    for side in (pair.a, pair.b):
        closes = [e for e in side.events if isinstance(e, ChannelClosed)]
        assert len(closes) == 1 and [b.label for b in side.broadcasts][-1] == "closing"
    return ta


def test_cooperative_close_after_payments() -> None:
    pair = Pair()
    pair.pay(pair.a, 100_000_000, 1)
    pair.commit(pair.a)
    pair.settle()
    # b starts the close while the HTLC is still pending: it drains first
    pair.do(pair.b, pair.b.channel.shutdown())
    pair.settle()
    assert pair.a.channel.state is pair.b.channel.state is ChannelState.SHUTDOWN
    with pytest.raises(ChannelError, match="shutting down"):
        pair.a.channel.add_htlc(1000, payment_hash(3), 100, ONION)
    pair.finish({payment_hash(1): preimage(1)})
    tx = pair.a.channel.closing_tx
    assert tx is not None
    fee = pair.a.channel.config.closing_feerate_per_kw
    assert fee is None
    amounts = sorted((o.amount_sat, o.script_pubkey) for o in tx.outputs)
    assert (400_000, SCRIPT_B) in amounts  # fundee: 300_000 + 100_000, no fee
    a_out = next(amt for amt, s in amounts if s == SCRIPT_A)
    assert a_out == 600_000 - (1_000_000 - sum(o.amount_sat for o in tx.outputs))
    p = pair.a.channel._c.params
    verify_script(b"", p.funding_script_pubkey, tx.inputs[0].witness, STANDARD_FLAGS, tx, 0, p.funding_sat)
    assert not pair.warnings


def test_cooperative_close_fee_negotiation_three_messages() -> None:
    # b (fundee) wants a much higher fee than a offers: b picks within the overlap, a echoes it
    pair = Pair(config_b=ChannelConfig(closing_feerate_per_kw=5_000))
    tx = _close(pair, pair.a, closing_feerate_per_kw=2_000)
    closing = [x for x in pair.a.sent + pair.b.sent if isinstance(x, m.ClosingSigned)]
    assert len(closing) == 3
    a_first, b_reply, a_echo = (
        [x for x in pair.a.sent if isinstance(x, m.ClosingSigned)][0],
        [x for x in pair.b.sent if isinstance(x, m.ClosingSigned)][0],
        [x for x in pair.a.sent if isinstance(x, m.ClosingSigned)][1],
    )
    assert b_reply.fee_satoshis != a_first.fee_satoshis and a_echo.fee_satoshis == b_reply.fee_satoshis
    assert a_first.fee_range is not None and b_reply.fee_satoshis <= a_first.fee_range[1]
    assert 1_000_000 - sum(o.amount_sat for o in tx.outputs) == b_reply.fee_satoshis
    # the fundee agreeing at once takes two messages
    pair = Pair()
    _close(pair, pair.b)
    assert len([x for x in pair.a.sent + pair.b.sent if isinstance(x, m.ClosingSigned)]) == 2


def test_closing_trims_dust_output() -> None:
    pair = Pair(push_msat=500_000)  # b has 500 sat: below the dust limit (546)
    tx = _close(pair, pair.a)
    assert [o.script_pubkey for o in tx.outputs] == [SCRIPT_A]


def test_shutdown_rules() -> None:
    pair = Pair()
    with pytest.raises(ChannelError, match="upfront"):
        pair.a.channel.shutdown(SCRIPT_B)  # a committed to SCRIPT_A in open_channel
    effects = pair.a.channel.receive(m.Shutdown(pair.a.channel.channel_id, bytes([0, 20]) + b"\x01" * 20))
    assert isinstance(effects[0], SendMessage) and isinstance(effects[0].message, WarningMessage)
    assert "upfront" in effects[0].message.printable_data()
    assert is_valid_shutdown_script(bytes([0x51, 32]) + bytes(32), anysegwit=True)
    assert not is_valid_shutdown_script(bytes([0x51, 32]) + bytes(32), anysegwit=False)
    assert not is_valid_shutdown_script(bytes([0x51, 41]) + bytes(41), anysegwit=True)
    # the peer adds an HTLC and sends shutdown before signing it
    pair = Pair()
    cid = pair.b.channel.channel_id
    assert pair.b.channel.receive(_add(pair, pair.b)) == []
    _, text = _violation(pair, pair.b, m.Shutdown(cid, SCRIPT_A))
    assert "unsigned HTLCs" in text


def test_fee_negotiation_rules() -> None:
    funder = FeeNegotiation.start(True, 1000, 50_000, 100_000)
    assert funder.fee_range == (500, 2000)
    funder.sent(funder.first_proposal())
    assert funder.on_proposal(1500, (100, 1600)) == CloseAgreed(1500, reply=True)
    fundee = FeeNegotiation.start(False, 3000, 50_000, 100_000)
    assert fundee.on_proposal(1000, (500, 2000)) == CloseCounter(2000)
    fundee = FeeNegotiation.start(False, 800, 50_000, 100_000)
    assert fundee.on_proposal(1000, (500, 2000)) == CloseAgreed(1000, reply=True)
    from channels.effects import CloseChannel, WarnPeer

    with pytest.raises(WarnPeer):
        FeeNegotiation.start(False, 10_000, 50_000, 100_000).on_proposal(1000, (500, 2000))
    with pytest.raises(CloseChannel, match="overlap"):
        funder.on_proposal(2500, (1500, 4000))
    with pytest.raises(WarnPeer, match="no overlap"):
        funder.on_proposal(3000, (2500, 4000))
    # legacy: no fee_range, each proposal strictly between the previous two
    legacy = FeeNegotiation(True, 1000, 900, 1100)
    legacy.sent(1000)
    out = legacy.on_proposal(3000, None)
    assert isinstance(out, CloseCounter) and 1000 < out.fee_sat < 3000
    with pytest.raises(CloseChannel, match="strictly between"):
        legacy.on_proposal(5000, None)


# =====================================================================================
# persistence, reestablish, crashes


def test_snapshot_round_trip() -> None:
    pair = Pair()
    pair.pay(pair.a, 1_000_000, 1)
    pair.pay(pair.b, 2_000_000, 2)
    pair.commit(pair.a)
    pair.deliver(pair.b)
    pair.deliver(pair.b)
    for side in (pair.a, pair.b):
        d = side.channel.to_dict()
        assert json.loads(json.dumps(d)) == d
        restored = Channel.from_dict(d, side.secrets)
        restored.connected, restored.awaiting_reestablish = side.channel.connected, side.channel.awaiting_reestablish
        assert restored.to_dict()["commitments"]["local_commit"] == d["commitments"]["local_commit"]
        assert restored.state is side.channel.state
    with pytest.raises(ValueError, match="secrets"):
        Channel.from_dict(pair.a.channel.to_dict(), pair.b.secrets)
    persisted = json.loads(pair.a.snapshot or b"")
    assert persisted["version"] == 1 and "per_commitment_seed" not in json.dumps(persisted)


def test_persist_comes_before_revoke_and_ack() -> None:
    pair = Pair()
    pair.pay(pair.a, 1_000_000, 1)
    pair.commit(pair.a)
    pair.deliver(pair.b)
    effects = pair.b.channel.receive(pair.b.inbox.popleft())
    kinds = [type(e) for e in effects]
    assert kinds[0] is Persist and SendMessage in kinds
    assert isinstance(effects[1], SendMessage) and isinstance(effects[1].message, m.RevokeAndAck)
    saved = json.loads(effects[0].state)  # type: ignore[union-attr]
    assert saved["commitments"]["local_commit"]["index"] == 1
    pair.run(pair.b, effects)
    effects = pair.a.channel.receive(pair.a.inbox.popleft())  # the revoke_and_ack
    assert isinstance(effects[0], Persist) and effects[0].revoked is not None
    revoked = effects[0].revoked
    assert revoked.commitment_number == 0
    assert revoked.per_commitment_secret == pair.b.secrets.per_commitment_secret(0)


def test_uncommitted_updates_are_not_written_alone() -> None:
    """Only updates changed: a later Persist covers ours, the peer retransmits its own (BOLT 2)."""
    pair = Pair()
    add = pair.a.channel.add_htlc(1_000_000, payment_hash(1), 600_000, ONION)
    assert isinstance(add[0], Persist) and add[0].durability is Durability.SUPERSEDED
    assert persist_to_write(add[0], add[1:]) is add[0]  # no later Persist: written as it is
    assert persist_to_write(add[0], add[1:], own_updates_recoverable=True) is None
    signed = add + pair.a.channel.sign()
    assert [type(e) for e in signed] == [Persist, SendMessage, Persist, SendMessage]
    assert isinstance(signed[2], Persist) and signed[2].durability is Durability.REQUIRED
    rest = signed[1:]  # the signed state is written in the add's place, before the update_add_htlc leaves
    assert persist_to_write(signed[0], rest) is signed[2] and [type(e) for e in rest] == [SendMessage, SendMessage]
    pair.run(pair.a, signed)
    assert pair.b.channel.receive(pair.b.inbox.popleft()) == []  # the update_add_htlc: nothing to write
    # b dies before the commitment_signed, without the add on disk: a retransmits both
    pair.restore()
    pair.settle()
    [htlc] = pair.b.channel.unresolved_incoming_htlcs()
    pair.run(pair.b, pair.b.channel.fulfill_htlc(htlc.id, preimage(1)))
    received = pair.a.channel.receive(pair.a.inbox.popleft())  # the update_fulfill_htlc
    assert [type(e) for e in received] == [Persist, HtlcFulfilled]
    assert isinstance(received[0], Persist) and received[0].durability is Durability.OPTIONAL
    assert persist_to_write(received[0], received[1:]) is None
    before = pair.a.snapshot
    pair.run(pair.a, received)
    assert pair.a.snapshot == before
    # a dies with the fulfill only in memory: b sends it again
    pair.restore()
    pair.finish({})
    pair.assert_agree()
    assert pair.a.channel.local_balance_msat == 700_000_000 - 1_000_000


def test_reestablish_retransmits_lost_messages() -> None:
    for drop in range(1, 6):
        pair = Pair()
        preimages = {payment_hash(n): preimage(n) for n in range(5)}
        pair.pay(pair.a, 5_000_000, 1)
        pair.pay(pair.b, 3_000_000, 2)
        pair.commit(pair.a)
        pair.commit(pair.b)
        for _ in range(drop):  # deliver a few messages, then the connection drops
            for side in (pair.a, pair.b):
                if side.inbox:
                    pair.deliver(side)
        pair.reconnect()
        pair.finish(preimages)
        pair.assert_agree()
        assert pair.a.channel.local_balance_msat == 700_000_000 - 5_000_000 + 3_000_000
        assert not pair.warnings, pair.errors()


def test_reestablish_channel_ready_retransmitted() -> None:
    pair = Pair(ready=False)
    pair.fund()
    pair.do(pair.a, pair.a.channel.funding_confirmed(3, 1))
    pair.do(pair.b, pair.b.channel.funding_confirmed(3, 1))
    pair.a.inbox.clear()
    pair.b.inbox.clear()  # both channel_ready lost
    pair.reconnect()
    assert pair.a.channel.state is pair.b.channel.state is ChannelState.NORMAL
    pair.reconnect()  # a redundant channel_ready is ignored
    assert not pair.warnings


def test_queued_fulfill_while_disconnected() -> None:
    pair = Pair()
    pair.pay(pair.a, 5_000_000, 1)
    pair.commit(pair.a)
    pair.settle()
    pair.b.channel.disconnected()
    pair.a.channel.disconnected()
    effects = pair.b.channel.fulfill_htlc(0, preimage(1))
    assert [type(e) for e in effects] == [Persist]
    pair.run(pair.b, effects)
    with pytest.raises(ChannelError, match="connected"):
        pair.b.channel.add_htlc(1000, payment_hash(2), 100, ONION)
    for side in (pair.a, pair.b):
        pair.do(side, side.channel.reconnected())
    pair.settle()
    pair.finish({})
    assert pair.b.channel.local_balance_msat == 305_000_000


def _scenario(pair: Pair) -> None:
    """A script of operations from both sides (HTLCs, fee, dances) that crashes can interrupt."""
    a, b = pair.a, pair.b
    pair.pay(a, 11_000_000, 1)
    pair.pay(a, 12_000_000, 2)
    pair.pay(b, 21_000_000, 3)
    pair.commit(a)
    pair.deliver(b)
    pair.deliver(b)
    pair.do(a, a.channel.update_fee(3000))
    pair.commit(b)
    pair.settle()
    pair.pay(a, 13_000_000, 4)
    pair.do(b, b.channel.fulfill_htlc(0, preimage(1)))
    pair.commit(b)
    pair.commit(a)
    pair.settle()
    pair.resolve_all(a, PREIMAGES)
    pair.resolve_all(b, PREIMAGES)
    pair.commit(a)
    pair.commit(b)
    pair.settle()


PREIMAGES = {payment_hash(n): preimage(n) for n in range(10)}
AMOUNTS = {("a", 0): 11_000_000, ("a", 1): 12_000_000, ("a", 2): 13_000_000, ("b", 0): 21_000_000}


def _scenario_effect_count() -> int:
    pair = Pair(verify_scripts=False)
    start = pair.effect_count
    _scenario(pair)
    pair.finish(PREIMAGES)
    return pair.effect_count - start


def test_crash_between_any_two_effects() -> None:
    total = _scenario_effect_count()
    assert total > 40
    for crash_at in range(total + 1):
        pair = Pair(verify_scripts=False)
        pair.crash_at = pair.effect_count + crash_at
        try:
            _scenario(pair)
            pair.finish(PREIMAGES)
        except Crash:
            pass
        snapshots = {s.name: json.loads(s.snapshot or b"") for s in (pair.a, pair.b)}
        pair.restore()
        pair.finish(PREIMAGES)
        assert not pair.warnings, (crash_at, pair.errors())
        pair.assert_agree()
        # every HTLC its sender had persisted was delivered and settled; nothing else moved
        persisted = {name: snapshots[name]["commitments"]["local_next_htlc_id"] for name in "ab"}
        paid = {name: sum(AMOUNTS[(name, i)] for i in range(persisted[name])) for name in "ab"}
        assert pair.a.channel.local_balance_msat == 700_000_000 - paid["a"] + paid["b"], crash_at
        assert pair.a.channel._c.local_next_htlc_id == persisted["a"]


def test_data_loss_detected_and_no_broadcast() -> None:
    pair = Pair()
    old = pair.b.snapshot
    assert old is not None
    for n in range(3):
        pair.pay(pair.a, 1_000_000, n)
        pair.commit(pair.a)
        pair.settle()
    pair.finish(PREIMAGES)
    # b restarts from an old backup
    pair.b.snapshot = old
    pair.restore()
    assert pair.b.channel.state is ChannelState.DATA_LOSS
    fail_b = [e for e in pair.b.events if isinstance(e, FailChannel)]
    assert fail_b and not fail_b[-1].broadcast
    with pytest.raises(ChannelError, match="fallen behind"):
        pair.b.channel.force_close()
    # a learns b is behind from b's error and must publish its own (latest) commitment
    fail_a = [e for e in pair.a.events if isinstance(e, FailChannel)]
    assert fail_a and fail_a[-1].broadcast
    assert pair.a.channel.state is ChannelState.FAILED
    assert any(s == "b" and "fallen behind" in w.printable_data() for s, w in pair.warnings)


def test_peer_lost_data_we_fail_and_broadcast() -> None:
    pair = Pair()
    pair.pay(pair.a, 1_000_000, 0)
    pair.commit(pair.a)
    pair.settle()
    pair.finish(PREIMAGES)
    a_channel = pair.a.channel
    msg = m.ChannelReestablish(a_channel.channel_id, 1, 0, bytes(32), pair.b.secrets.per_commitment_point(0))
    a_channel.disconnected()
    a_channel.reconnected()
    effects = a_channel.receive(msg)
    assert any(isinstance(e, FailChannel) and e.broadcast for e in effects)
    assert a_channel.state is ChannelState.FAILED
    assert len(a_channel.force_close()) == 3


def test_closing_survives_reconnection() -> None:
    pair = Pair()
    pair.do(pair.a, pair.a.channel.shutdown())
    pair.deliver(pair.b)  # b replies shutdown
    pair.deliver(pair.a)  # a: negotiating, sends closing_signed
    assert pair.a.channel.state is ChannelState.NEGOTIATING
    pair.reconnect()  # the closing_signed is lost
    assert pair.a.channel.state is pair.b.channel.state is ChannelState.CLOSING
    assert not pair.warnings


def test_persist_carries_watcher_data() -> None:
    pair = Pair()
    a, b = pair.a, pair.b
    first = json.loads(b.snapshot or b"")
    assert first["commitments"]["local_commit"]["index"] == 0
    path_key = derive_channel_keys(SEED_A, 7).funding_privkey.public_key()
    add_effects = a.channel.add_htlc(40_000_000, payment_hash(1), 600_123, ONION, path_key)
    pair.run(a, add_effects)
    sign = a.channel.sign()
    persist = sign[0]
    assert isinstance(persist, Persist) and isinstance(sign[1], SendMessage)
    (theirs,) = persist.commitments  # the peer commitment we are about to sign
    assert not theirs.ours and theirs.commitment_number == 1
    assert theirs.per_commitment_point == b.secrets.per_commitment_point(1).to_bytes()
    assert [(h.htlc_id, h.outgoing, h.amount_msat) for h in theirs.htlcs] == [(0, True, 40_000_000)]
    assert theirs.our_balance_msat == 700_000_000 - 40_000_000
    pair.run(a, sign)
    pair.deliver(b)
    effects = b.channel.receive(b.inbox.popleft())  # commitment_signed
    persist = effects[0]
    assert isinstance(persist, Persist)
    ours, next_theirs = persist.commitments
    assert ours.ours and ours.commitment_number == 1 and ours.remote_signature is not None
    assert ours.htlcs[0].outgoing is False and ours.htlcs[0].cltv_expiry == 600_123
    assert ours.txid == b.channel.local_commitment_tx().txid
    assert not next_theirs.ours and next_theirs.commitment_number == 1
    pair.run(b, effects)
    pair.settle()
    incoming = next(e for e in b.events if isinstance(e, IncomingHtlc))
    assert incoming.path_key == path_key.to_bytes() and incoming.cltv_expiry == 600_123
    pair.do(b, b.channel.fail_htlc(0, b"reason"))
    pair.commit(b)
    pair.settle()
    failed = next(e for e in a.events if isinstance(e, HtlcFailed))
    assert failed.payment_hash == payment_hash(1) and failed.reason == b"reason"
    assert a.channel.local_balance_msat == 700_000_000


def test_fulfill_preimage_reported_at_once() -> None:
    pair = Pair()
    pair.pay(pair.a, 3_000_000, 4)
    pair.commit(pair.a)
    pair.settle()
    pair.do(pair.b, pair.b.channel.fulfill_htlc(0, preimage(4)))
    effects = pair.a.channel.receive(pair.a.inbox.popleft())
    assert [type(e) for e in effects] == [Persist, HtlcFulfilled]  # before any commitment_signed
    fulfilled = effects[1]
    assert isinstance(fulfilled, HtlcFulfilled) and fulfilled.payment_preimage == preimage(4)
