"""`canal swapd`: the swap daemon of one party -- automatic cross-chain atomic swaps, crash-safe.

A trio shell around :class:`relay.swap.Swap`, one per swap. For each swap a
runner feeds the core chain events and carries out the effects it returns, in
order, one event at a time:

* ``Persist`` -- the swap's record is written to ``swapd.sqlite`` (one
  transaction, WAL, synchronous=FULL) before any later effect happens.
* ``FundContract`` -- the chain node's wallet pays the contract
  (``SendToAddress``). Not idempotent: the height is stored before paying, and
  after a restart in ``FUNDING`` the chain (from that height) and the mempool are
  searched for the earlier payment before paying again.
* ``ShareContract`` -- queued in the store's outbox in the same transaction as
  the record, and sent to the peer until acknowledged (:mod:`relay.swap_peer`).
* ``Broadcast`` / ``WatchConfirmation`` / ``WatchSpend`` -- against the chain node
  (:mod:`relay.swap_host`); watches are notification streams that are
  registered again whenever they end; heights are polled (and the block stream
  wakes the poller).

Offers: the initiator's daemon proposes the terms to the participant's daemon
(``SwapPeer.ProposeSwap``, retried until answered). The participant accepts
at once when the amount it would lock is within ``--auto-accept-max`` for that
chain, else holds the offer until its user runs ``accept``. Either side may be
down for a while; everything resumes from the store.

A participant abandons an accepted swap whose initiator has not locked its
contract within ``--counter-contract-timeout`` (nothing of its own is locked
before that contract is deep enough).

Fault injection for tests: ``CANAL_SWAPD_CRASH_AT=STATE`` (or ``ROLE:STATE``, or
``paid``: right after the wallet paid a contract) makes the daemon SIGKILL
itself right after persisting that state.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import secrets
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import trio

from base_chain.crypto import PrivateKey
from base_chain.hashes import hash160, sha256
from base_chain.logs import setup_logging
from base_chain.rpc import make_server, write_rpc_endpoint
from base_chain.tx import Transaction
from proto import swap_pb2 as spb
from proto import swap_pb2_grpc as spb_grpc

from .contract import INITIATOR_LOCK_S, PARTICIPANT_LOCK_S, blocks_for_duration
from .swap import (
    Aborted, Broadcast, ChainConfig, ContractFunded, CounterContractReceived, Done, Effect, Event, Failed,
    FeeRateObserved, FundContract, HeightObserved, Persist, Refunded, Refused, Role, ShareContract, Swap,
    SwapError, SwapState, SwapTerms, WatchConfirmation, WatchSpend,
)
from .swap_host import RETRY_S, BroadcastRejected, ChainLink, ChainSettings, ChainUnavailable
from .swap_peer import OutboxSender, PeerError, Peers, PeerServicer, make_peer_server, parse_hostport
from .swap_service import PERMISSIONS, ClientServicer, ServiceError
from .swap_store import SWAP_DB_FILE, SwapRow, SwapStore
from .swap_types import MIN_AMOUNT_SAT
from base_chain.process import NODE_INFO_FILE, stop_on_signals, write_node_info

__all__ = ["SwapDaemon", "Policy", "main", "NODE_INFO_FILE", "CRASH_ENV"]

log = logging.getLogger("canal.swapd")
CRASH_ENV = "CANAL_SWAPD_CRASH_AT"
POLL_S = 0.5


@dataclass(frozen=True, slots=True)
class Policy:
    """This party's rules for its swaps."""

    auto_accept_max_sat: dict[str, int] = field(default_factory=dict)
    """Per chain: offers that make us lock at most this much there are accepted without asking."""
    safety_margin_s: int = 6 * 60 * 60
    redeem_window_s: int = 2 * 60 * 60
    counter_contract_timeout_s: int = 2 * 60 * 60
    """Participant: an accepted swap whose initiator has not locked its contract by then (in the
    initiator chain's blocks) is abandoned; nothing of ours is locked before that contract."""


@dataclass(eq=False)
class _Runner:
    row: SwapRow
    swap: Swap
    lock: trio.Lock = field(default_factory=trio.Lock)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    nursery: trio.Nursery | None = None
    watches: set[tuple[Any, ...]] = field(default_factory=set)
    inbox: trio.MemorySendChannel[Event] | None = None
    """Heights for this swap, fed in order by its own task (a slow swap never holds up the others)."""


class SwapDaemon:
    def __init__(self, datadir: Path, chains: list[ChainSettings], listen_port: int = 0, rpc_port: int = 0,
                 policy: Policy | None = None) -> None:
        self.datadir = datadir
        self.links = {c.name: ChainLink(c) for c in chains}
        self.want_listen_port = listen_port
        self.want_rpc_port = rpc_port
        self.policy = policy or Policy()
        self.store: SwapStore
        self.peers = Peers()
        self.sender: OutboxSender
        self.runners: dict[str, _Runner] = {}
        self.listen_port = 0
        self.rpc_port = 0
        self.token: trio.lowlevel.TrioToken
        self._nursery: trio.Nursery
        self._stop = trio.Event()
        self._crash_at = os.environ.get(CRASH_ENV, "")
        self._accepting: set[str] = set()

    @property
    def peer_address(self) -> str:
        return f"127.0.0.1:{self.listen_port}"

    # --- lifecycle -------------------------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.token = trio.lowlevel.current_trio_token()
        for link in self.links.values():
            await link.check()
        self.store = SwapStore(self.datadir / SWAP_DB_FILE)
        self.sender = OutboxSender(self.store, self.peers)
        servers: list[grpc.Server] = []
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                peer_server, self.listen_port = make_peer_server(self.datadir, self.want_listen_port,
                                                                 PeerServicer(self, self.token))
                servers.append(peer_server)
                rpc_server, self.rpc_port = make_server(self.datadir, self.want_rpc_port, [], PERMISSIONS)
                spb_grpc.add_SwapClientServicer_to_server(ClientServicer(self), rpc_server)  # type: ignore[no-untyped-call]
                servers.append(rpc_server)
                peer_server.start()
                rpc_server.start()
                for link in self.links.values():
                    nursery.start_soon(self._follow_heights, link)
                nursery.start_soon(self.sender.run)
                for row in self.store.all():
                    self._resume(row)
                write_rpc_endpoint(self.datadir, self.rpc_port)
                write_node_info(self.datadir, rpc_port=self.rpc_port, listen_port=self.listen_port, chains=sorted(self.links))
                nursery.start_soon(stop_on_signals, self.request_stop, log)
                log.info("swapd: peers at %s, rpc 127.0.0.1:%d, chains %s, datadir %s", self.peer_address,
                         self.rpc_port, ", ".join(f"{n}@{l.height}" for n, l in self.links.items()), self.datadir)
                task_status.started(self)
                await self._stop.wait()
                nursery.cancel_scope.cancel()
        finally:
            for server in servers:
                await trio.to_thread.run_sync(_stop_server, server)
            self.peers.close()
            for link in self.links.values():
                link.close()
            self.store.close()
            log.info("stopped")

    def request_stop(self) -> None:
        self._stop.set()



    def _maybe_crash(self, point: str, role: str) -> None:
        if self._crash_at and self._crash_at in (point, f"{role}:{point}"):
            log.warning("fault injection: SIGKILL at %s", point)
            os.kill(os.getpid(), signal.SIGKILL)

    @staticmethod
    def now() -> int:
        return int(time.time())

    # --- chains ----------------------------------------------------------------------------------------

    async def _follow_heights(self, link: ChainLink) -> None:
        """Feed every swap on `link`'s chain the node's tip whenever it changes (polled; blocks wake us)."""
        wake = trio.Event()

        async def on_blocks() -> None:
            nonlocal wake
            async for _ in link.blocks():
                wake.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(on_blocks)
            last = -1
            while True:
                wake = trio.Event()
                try:
                    height = await link.poll_height()
                except (ChainUnavailable, grpc.RpcError) as e:
                    log.info("%s node unreachable: %s", link.name, e)
                    height = last
                if height != last and height >= 0:
                    last = height
                    for runner in list(self.runners.values()):
                        if not runner.swap.is_finished() and runner.inbox is not None:
                            runner.inbox.send_nowait(HeightObserved(link.name, height))
                with trio.move_on_after(POLL_S):
                    await wake.wait()

    def _chain_config(self, name: str) -> ChainConfig:
        link = self._link(name)
        return ChainConfig(name, link.params.target_spacing_s, link.settings.min_conf)

    def _link(self, name: str) -> ChainLink:
        link = self.links.get(name)
        if link is None:
            raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"unknown chain {name!r}: this daemon has {', '.join(sorted(self.links))}")
        return link

    # --- runners ---------------------------------------------------------------------------------------

    def _resume(self, row: SwapRow) -> None:
        if row.record is not None:
            try:
                swap = Swap.from_dict(row.record)
            except SwapError as e:
                log.error("swap %s: cannot be loaded: %s", row.swap_id, e)
                return
            self._start_runner(row, swap)
        elif row.status == "proposed":
            self._nursery.start_soon(self._propose, row)

    def _start_runner(self, row: SwapRow, swap: Swap) -> None:
        runner = _Runner(row, swap)
        self.runners[row.swap_id] = runner
        if not swap.is_finished():
            self._nursery.start_soon(self._run_swap, runner)

    async def _run_swap(self, runner: _Runner) -> None:
        send, receive = trio.open_memory_channel[Event](math.inf)
        runner.inbox = send
        with runner.scope:
            async with trio.open_nursery() as nursery:
                runner.nursery = nursery
                async with runner.lock:
                    swap = runner.swap
                    try:
                        for name in (swap.terms.our_chain.name, swap.terms.their_chain.name):
                            link = self._link(name)
                            if link.height >= 0:
                                await self._carry_out(runner, swap.handle(HeightObserved(name, link.height)))
                            try:
                                rate = await link.fee_rate()
                                swap.handle(FeeRateObserved(name, rate))
                            except (ChainUnavailable, grpc.RpcError, SwapError):
                                pass
                        await self._carry_out(runner, swap.resume())
                    except SwapError as e:
                        log.error("swap %s: cannot resume: %s", runner.row.swap_id, e)
                async for event in receive:
                    await self._feed(runner, event)
                    if isinstance(event, HeightObserved):
                        await self._rebroadcast(runner, event.chain)
                        await self._maybe_abandon(runner, event)

    async def _feed(self, runner: _Runner, event: Event) -> None:
        async with runner.lock:
            if runner.swap.is_finished():
                return
            try:
                effects = runner.swap.handle(event)
            except SwapError as e:
                log.warning("swap %s: %s ignored: %s", runner.row.swap_id, type(event).__name__, e)
                return
            await self._carry_out(runner, effects)

    def _persist(self, runner: _Runner, outbox: list[tuple[str, dict[str, Any]]] | None = None) -> None:
        row, swap = runner.row, runner.swap
        row.record = swap.to_dict()
        row.status = swap.state.value
        self.store.update(row, self.now(), outbox)

    async def _carry_out(self, runner: _Runner, effects: list[Effect]) -> None:
        """Carry out the core's effects in order (the runner's lock is held)."""
        swap, row = runner.swap, runner.row
        sid = row.swap_id
        for effect in effects:
            if isinstance(effect, Persist):
                self._persist(runner)
                self._maybe_crash(swap.state.value, swap.role.value)
            elif isinstance(effect, FundContract):
                tx = await self._fund(runner, effect)
                try:
                    funded = swap.handle(ContractFunded(tx))
                except SwapError as e:  # a bug (the payment was checked), never a reason to stop the daemon
                    log.error("swap %s: funding %s not accepted: %s", sid, tx.txid_hex(), e)
                    continue
                await self._carry_out(runner, funded)
            elif isinstance(effect, ShareContract):
                self._persist(runner, [("contract", {"contract": effect.contract.hex(),
                                                     "contract_tx": effect.contract_tx.hex()})])
                self.sender.wake()
            elif isinstance(effect, Broadcast):
                await self._broadcast(sid, effect)
            elif isinstance(effect, WatchConfirmation):
                self._watch(runner, ("conf", effect.chain, effect.txid), self._link(effect.chain).confirmations(
                    effect.txid, effect.script_pubkey, effect.height_hint))
            elif isinstance(effect, WatchSpend):
                self._watch(runner, ("spend", effect.chain, effect.outpoint), self._link(effect.chain).spends(
                    effect.outpoint, effect.script_pubkey, effect.height_hint))
            elif isinstance(effect, Refused):
                log.warning("swap %s: refused: %s", sid, effect.reason)
            elif isinstance(effect, (Aborted, Failed)):
                log.warning("swap %s: %s: %s", sid, type(effect).__name__.lower(), effect.reason)
            elif isinstance(effect, Done):
                row.notes["redeem_txid"] = effect.redeem_txid[::-1].hex()
                self._persist(runner)
                log.info("swap %s: done, redeemed in %s", sid, row.notes["redeem_txid"])
            elif isinstance(effect, Refunded):
                row.notes["refund_txid"] = effect.refund_txid[::-1].hex()
                self._persist(runner)
                log.info("swap %s: refunded in %s", sid, row.notes["refund_txid"])
        if swap.is_finished():
            runner.scope.cancel()

    async def _fund(self, runner: _Runner, effect: FundContract) -> Any:
        """Pay the contract once: look for an earlier payment first (a crash may have come after it)."""
        row = runner.row
        link = self._link(effect.chain)
        while True:
            try:
                since = row.notes.get("fund_from")
                if since is not None:
                    earlier = await link.find_payment(effect.script_pubkey, effect.amount_sat, int(since))
                    if earlier is not None:
                        log.info("swap %s: contract already paid by %s", row.swap_id, earlier.txid_hex())
                        return earlier
                else:
                    row.notes["fund_from"] = max(0, await link.poll_height())
                    self._persist(runner)
                tx = await link.pay(effect.script_pubkey, effect.amount_sat)
                log.info("swap %s: contract funded by %s on %s", row.swap_id, tx.txid_hex(), effect.chain)
                self._maybe_crash("paid", runner.swap.role.value)
                return tx
            except (ChainUnavailable, grpc.RpcError) as e:
                details = e.details() if isinstance(e, grpc.RpcError) else str(e)
                log.warning("swap %s: cannot fund the contract yet (%s), retrying", row.swap_id, details)
            await trio.sleep(RETRY_S * 5)

    async def _maybe_abandon(self, runner: _Runner, event: HeightObserved) -> None:
        """Participant: no contract from the initiator within the timeout -> abandon (nothing is locked)."""
        swap, since = runner.swap, runner.row.notes.get("accepted_height")
        if (swap.role is not Role.PARTICIPANT or swap.state is not SwapState.AWAITING_COUNTER_CONTRACT
                or since is None or event.chain != swap.terms.their_chain.name):
            return
        blocks = blocks_for_duration(self.policy.counter_contract_timeout_s, swap.terms.their_chain.target_spacing_s)
        if event.height - int(since) < blocks:
            return
        async with runner.lock:
            if swap.state is not SwapState.AWAITING_COUNTER_CONTRACT:  # the contract came while we waited
                return
            try:
                effects = swap.abandon(f"no contract from the initiator within {blocks} {event.chain} blocks")
            except SwapError:
                return
            await self._carry_out(runner, effects)

    async def _rebroadcast(self, runner: _Runner, chain: str) -> None:
        """Our redeem or refund, unmined, is sent again on every block of its chain (a node that restarted
        or dropped it from its mempool gets it back; a node that has it answers "already known")."""
        pending = (runner.row.record or {}).get("pending")
        tx = runner.swap.pending_tx
        if (pending is None or tx is None or pending.get("chain") != chain or pending.get("mined_height") is not None
                or runner.swap.is_finished()):
            return
        await self._broadcast(runner.row.swap_id, Broadcast(chain, tx, str(pending.get("kind", ""))), quiet=True)

    async def _broadcast(self, sid: str, effect: Broadcast, quiet: bool = False) -> None:
        try:
            txid = await self._link(effect.chain).broadcast(effect.tx)
            if not quiet:
                log.info("swap %s: %s %s broadcast on %s", sid, effect.kind, txid, effect.chain)
        except BroadcastRejected as e:
            (log.debug if quiet else log.warning)("swap %s: %s %s rejected by %s: %s", sid, effect.kind, effect.tx.txid_hex(), effect.chain,
                        e.reason)
        except (ChainUnavailable, grpc.RpcError) as e:
            log.warning("swap %s: %s not broadcast (%s): the core sends it again", sid, effect.kind, e)

    def _watch(self, runner: _Runner, key: tuple[Any, ...], events: Any) -> None:
        if key in runner.watches or runner.nursery is None:
            return
        runner.watches.add(key)

        async def pump() -> None:
            async for event in events:
                await self._feed(runner, event)

        runner.nursery.start_soon(pump)

    # --- offers ----------------------------------------------------------------------------------------

    async def initiate(self, req: spb.InitiateSwapRequest) -> SwapRow:
        send, receive = self._link(req.send_chain), self._link(req.receive_chain)
        if send is receive:
            raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, "send and receive chains must differ")
        try:
            parse_hostport(req.peer)
        except ValueError as e:
            raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, f"peer: {e}") from None
        for what, amount in (("send", req.send_amount_sat), ("receive", req.receive_amount_sat)):
            if amount < MIN_AMOUNT_SAT:
                raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"{what} amount must be at least {MIN_AMOUNT_SAT} sat, got {amount}")
        init_lock = req.initiator_lock_s or INITIATOR_LOCK_S
        part_lock = req.participant_lock_s or PARTICIPANT_LOCK_S
        if init_lock - part_lock < self.policy.safety_margin_s:
            raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"the initiator's lock ({init_lock} s) must exceed the participant's "
                               f"({part_lock} s) by the safety margin ({self.policy.safety_margin_s} s)")
        await self._check_balance(send, req.send_amount_sat)
        secret = secrets.token_bytes(32)
        key = PrivateKey.generate()
        swap_id = secrets.token_hex(16)
        offer: dict[str, Any] = {
            "swap_id": swap_id, "initiator_chain": send.name,
            "initiator_amount_sat": req.send_amount_sat, "participant_chain": receive.name,
            "participant_amount_sat": req.receive_amount_sat, "secret_hash": sha256(secret).hex(),
            "initiator_pkh": hash160(key.public_key().to_bytes()).hex(), "initiator_lock_s": init_lock,
            "participant_lock_s": part_lock, "safety_margin_s": self.policy.safety_margin_s,
            "reply_to": self.peer_address,
        }
        now = self.now()
        row = SwapRow(swap_id, Role.INITIATOR.value, req.peer, "proposed", offer, None,
                      {"key": key.to_bytes().hex(), "secret": secret.hex()}, now, now)
        self.store.insert(row)
        self._nursery.start_soon(self._propose, row)
        return row

    async def _check_balance(self, link: ChainLink, amount_sat: int) -> None:
        balance = await link.balance()
        if balance < amount_sat:
            raise ServiceError(grpc.StatusCode.FAILED_PRECONDITION,
                               f"insufficient funds on {link.name}: {balance} sat confirmed, "
                               f"{amount_sat} sat needed")

    async def _propose(self, row: SwapRow) -> None:
        offer = spb.SwapOffer(**row.offer)
        level = logging.INFO  # the first failure; the retries at debug level
        while True:
            try:
                reply = await self.peers.call(row.peer, lambda c: c.propose(offer))
            except grpc.RpcError as e:
                log.log(level, "swap %s: offer not delivered (%s: %s), will retry", row.swap_id, e.code().name,
                        e.details())
                level = logging.DEBUG
                if e.code() == grpc.StatusCode.INVALID_ARGUMENT:
                    row.status, row.notes["reason"] = "rejected", str(e.details())
                    self.store.update(row, self.now())
                    return
            except OSError as e:
                log.log(level, "swap %s: peer %s unreachable (%s), will retry", row.swap_id, row.peer, e)
                level = logging.DEBUG
            else:
                if reply.decision == spb.OfferReply.ACCEPTED:
                    try:
                        pkh = bytes.fromhex(reply.participant_pkh)
                    except ValueError:
                        pkh = b""
                    if len(pkh) != 20:
                        row.status, row.notes["reason"] = "rejected", "the participant answered with a bad key hash"
                        self.store.update(row, self.now())
                        log.warning("swap %s: %s", row.swap_id, row.notes["reason"])
                        return
                    try:
                        await self._activate_initiator(row, pkh)
                        return
                    except (ChainUnavailable, grpc.RpcError, ValueError, SwapError) as e:
                        log.warning("swap %s: accepted, but cannot start yet (%s): will ask again", row.swap_id, e)
                if reply.decision == spb.OfferReply.REJECTED:
                    row.status, row.notes["reason"] = "rejected", reply.reason
                    self.store.update(row, self.now())
                    log.info("swap %s: offer rejected: %s", row.swap_id, reply.reason)
                    return
            await trio.sleep(RETRY_S)

    def _terms(self, role: Role, offer: dict[str, Any], counterparty_pkh: bytes) -> SwapTerms:
        ini = role is Role.INITIATOR
        ours, theirs = ("initiator", "participant") if ini else ("participant", "initiator")
        return SwapTerms(
            role=role,
            our_chain=self._chain_config(offer[f"{ours}_chain"]),
            their_chain=self._chain_config(offer[f"{theirs}_chain"]),
            our_amount_sat=int(offer[f"{ours}_amount_sat"]),
            their_amount_sat=int(offer[f"{theirs}_amount_sat"]),
            secret_hash=bytes.fromhex(offer["secret_hash"]),
            counterparty_pkh=counterparty_pkh,
            our_lock_s=int(offer[f"{ours}_lock_s"]),
            safety_margin_s=self.policy.safety_margin_s,
            redeem_window_s=self.policy.redeem_window_s,
        )

    async def _activate_initiator(self, row: SwapRow, participant_pkh: bytes) -> None:
        offer = row.offer
        terms = self._terms(Role.INITIATOR, offer, participant_pkh)
        redeem = await self._link(offer["participant_chain"]).new_script("swap redeem")
        refund = await self._link(offer["initiator_chain"]).new_script("swap refund")
        swap = Swap(terms, PrivateKey(bytes.fromhex(row.notes["key"])), redeem, refund,
                    bytes.fromhex(row.notes["secret"]))
        row.record, row.status = swap.to_dict(), swap.state.value
        self.store.update(row, self.now())
        log.info("swap %s: accepted by %s", row.swap_id, row.peer)
        self._start_runner(row, swap)

    async def on_offer(self, offer: spb.SwapOffer) -> spb.OfferReply:
        """SwapPeer.ProposeSwap: answer (idempotently) an initiator's offer."""
        existing = self.store.get(offer.swap_id)
        if existing is not None:
            return self._reply(existing)
        try:
            parse_hostport(offer.reply_to)
            if len(bytes.fromhex(offer.secret_hash)) != 32 or len(bytes.fromhex(offer.initiator_pkh)) != 20:
                raise ValueError("secret_hash must be 32 bytes and initiator_pkh 20")
            if not offer.swap_id or len(offer.swap_id) > 64:
                raise ValueError("bad swap_id")
            fields = {f: getattr(offer, f) for f in ("swap_id", "initiator_chain", "initiator_amount_sat",
                                                     "participant_chain", "participant_amount_sat", "secret_hash",
                                                     "initiator_pkh", "initiator_lock_s", "participant_lock_s",
                                                     "safety_margin_s", "reply_to")}
            terms = self._terms(Role.PARTICIPANT, fields, bytes.fromhex(offer.initiator_pkh))
        except (ValueError, SwapError, ServiceError) as e:
            raise PeerError(grpc.StatusCode.INVALID_ARGUMENT, f"bad offer: {e}") from None
        now = self.now()
        row = SwapRow(offer.swap_id, Role.PARTICIPANT.value, offer.reply_to, "pending_accept", fields, None, {}, now,
                      now)
        gap = offer.initiator_lock_s - offer.participant_lock_s
        reason = ""
        if gap < self.policy.safety_margin_s:
            reason = (f"the initiator's lock must exceed ours by at least {self.policy.safety_margin_s} s "
                      f"(offered {gap} s)")
        elif offer.participant_lock_s <= 0:
            reason = "the participant's lock must be positive"
        if reason:
            row.status, row.notes["reason"] = "rejected", reason
            self.store.insert(row)
            return self._reply(row)
        self.store.insert(row)
        limit = self.policy.auto_accept_max_sat.get(terms.our_chain.name, 0)
        if offer.participant_amount_sat <= limit:
            try:
                await self.accept(row.swap_id)
            except (ServiceError, ChainUnavailable, grpc.RpcError) as e:
                log.warning("swap %s: not accepted automatically (%s): waiting for `accept`", row.swap_id, e)
            row = self.store.get(row.swap_id) or row
        else:
            log.info("swap %s: offer waiting for `accept`: %d sat of ours on %s for %d sat on %s", row.swap_id,
                     offer.participant_amount_sat, offer.participant_chain, offer.initiator_amount_sat,
                     offer.initiator_chain)
        return self._reply(row)

    def _reply(self, row: SwapRow) -> spb.OfferReply:
        if row.status == "pending_accept":
            return spb.OfferReply(decision=spb.OfferReply.PENDING)
        if row.status == "rejected":
            return spb.OfferReply(decision=spb.OfferReply.REJECTED, reason=str(row.notes.get("reason", "")))
        runner = self.runners.get(row.swap_id)
        if runner is not None:
            pkh = runner.swap.our_pkh
        elif row.record is not None:
            pkh = Swap.from_dict(row.record).our_pkh
        else:
            raise PeerError(grpc.StatusCode.UNAVAILABLE, f"swap {row.swap_id} is being set up")
        return spb.OfferReply(decision=spb.OfferReply.ACCEPTED, participant_pkh=pkh.hex())

    async def accept(self, swap_id: str) -> SwapRow:
        """Accept an offer held for the user (the participant's side)."""
        row = self.store.get(swap_id)
        if row is None:
            raise ServiceError(grpc.StatusCode.NOT_FOUND, f"no swap {swap_id}")
        if row.status != "pending_accept" or swap_id in self._accepting:
            raise ServiceError(grpc.StatusCode.FAILED_PRECONDITION, f"swap {swap_id} is {row.status}, not waiting "
                               "for acceptance")
        self._accepting.add(swap_id)
        try:
            return await self._accept(row)
        finally:
            self._accepting.discard(swap_id)

    async def _accept(self, row: SwapRow) -> SwapRow:
        swap_id = row.swap_id
        offer = row.offer
        terms = self._terms(Role.PARTICIPANT, offer, bytes.fromhex(offer["initiator_pkh"]))
        await self._check_balance(self._link(terms.our_chain.name), terms.our_amount_sat)
        redeem = await self._link(terms.their_chain.name).new_script("swap redeem")
        refund = await self._link(terms.our_chain.name).new_script("swap refund")
        swap = Swap(terms, PrivateKey.generate(), redeem, refund)
        row.record, row.status = swap.to_dict(), swap.state.value
        row.notes["accepted_height"] = await self._link(terms.their_chain.name).poll_height()
        self.store.update(row, self.now())
        log.info("swap %s: accepted offer of %s", swap_id, row.peer)
        self._start_runner(row, swap)
        return row

    async def on_contract(self, message: spb.ContractMessage) -> None:
        """SwapPeer.ShareContract: hand the counterparty's contract to the core; acknowledged once persisted."""
        runner = self.runners.get(message.swap_id)
        if runner is None:
            row = self.store.get(message.swap_id)
            if row is None:
                raise PeerError(grpc.StatusCode.NOT_FOUND, f"no swap {message.swap_id}")
            if row.status == "rejected":
                raise PeerError(grpc.StatusCode.FAILED_PRECONDITION, f"swap {message.swap_id} was rejected")
            raise PeerError(grpc.StatusCode.UNAVAILABLE, f"swap {message.swap_id} is not running yet")
        try:
            event = CounterContractReceived(bytes.fromhex(message.contract),
                                            Transaction.from_hex(message.contract_tx))
        except Exception as e:  # noqa: BLE001 - any decoding failure is the sender's
            raise PeerError(grpc.StatusCode.INVALID_ARGUMENT, f"bad contract message: {e}") from None
        async with runner.lock:
            if runner.swap.is_finished():
                return
            try:
                effects = runner.swap.handle(event)
            except SwapError as e:
                raise PeerError(grpc.StatusCode.UNAVAILABLE, f"not now: {e}") from None
            await self._carry_out(runner, effects)


def _stop_server(server: grpc.Server) -> None:
    server.stop(grace=0.5).wait()


# --- command line --------------------------------------------------------------------------------------


def _pairs(text: str, what: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in filter(None, text.split(",")):
        name, sep, value = part.partition("=")
        if not sep or not value.strip().isdigit():
            raise argparse.ArgumentTypeError(f"{what}: expected NAME=N[,NAME=N], got {text!r}")
        out[name.strip()] = int(value)
    return out


def _settings(name: str, datadir: Path | None, rpc: str | None, min_conf: dict[str, int]) -> ChainSettings | None:
    if datadir is None:
        return None
    host: str | None = None
    port: int | None = None
    if rpc:
        host, port = parse_hostport(rpc)
    return ChainSettings(name, datadir, host, port, max(1, min_conf.get(name, 1)))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="canal swapd", description="Run a swap daemon: automatic atomic swaps.")
    ap.add_argument("--datadir", type=Path, required=True)
    for chain in ("alpha", "beta"):
        ap.add_argument(f"--{chain}-datadir", type=Path, help=f"the {chain} chain node's data dir (credentials)")
        ap.add_argument(f"--{chain}-rpc", metavar="HOST:PORT", help=f"the {chain} node's RPC (default: its rpc.json)")
    ap.add_argument("--listen", type=int, default=0, help="port for other swap daemons on 127.0.0.1 (0: any)")
    ap.add_argument("--rpcport", type=int, default=0, help="gRPC port for clients on 127.0.0.1 (0: any)")
    ap.add_argument("--min-conf", default="", help="confirmations per chain, e.g. alpha=1,beta=3 (default 1)")
    ap.add_argument("--auto-accept-max", default="",
                    help="accept offers without asking when we lock at most this many sat, e.g. alpha=100000000")
    ap.add_argument("--safety-margin", type=int, default=6 * 3600, help="seconds between the two locks (6 h)")
    ap.add_argument("--redeem-window", type=int, default=2 * 3600,
                    help="initiator: least seconds left on the counter-contract to redeem it (2 h)")
    ap.add_argument("--counter-contract-timeout", type=int, default=2 * 3600,
                    help="participant: abandon an accepted swap whose initiator has not locked by then (2 h)")
    ap.add_argument("--debug", action="store_true")
    ns = ap.parse_args(argv)
    try:
        min_conf = _pairs(ns.min_conf, "--min-conf")
        auto = _pairs(ns.auto_accept_max, "--auto-accept-max")
        chains = [s for s in (_settings("alpha", ns.alpha_datadir, ns.alpha_rpc, min_conf),
                              _settings("beta", ns.beta_datadir, ns.beta_rpc, min_conf)) if s is not None]
    except (argparse.ArgumentTypeError, ValueError) as e:
        ap.error(str(e))
    if len(chains) < 2:
        ap.error("both --alpha-datadir and --beta-datadir are required")
    setup_logging(ns.datadir, "canal.swapd", ns.debug)
    daemon = SwapDaemon(ns.datadir, chains, ns.listen, ns.rpcport,
                        Policy(auto, ns.safety_margin, ns.redeem_window, ns.counter_contract_timeout))
    try:
        trio.run(daemon.run)
    except (OSError, ValueError, ChainUnavailable) as e:
        log.error("cannot start: %s", e)
        return 1
    return 0
