"""`canal swap`: decred atomicswap's command-line tool for Canal chains (manual cross-chain swaps).

Same commands, argument order and printouts as ``btcatomicswap``::

    initiate <participant address> <amount>
    participate <initiator address> <amount> <secret hash>
    redeem <contract> <contract transaction> <secret>
    refund <contract> <contract transaction>
    extractsecret <redemption transaction> <secret hash>
    auditcontract <contract> <contract transaction>

and one command of Canal's own, ``getnewaddress``, explained below. Amounts are
in coins. The contract is :mod:`relay.contract`'s (decred's script, paid to as
P2WSH); locktimes are block heights of the chain: 48 hours of that chain's
blocks for the initiator, 24 hours for the participant.

Differences from atomicswap, and why:

* **Swap keys.** A Canal chain wallet never hands out private keys (there is no
  ``dumpprivkey``), so the tool keeps its own: ``getnewaddress`` makes a key in
  the swap dir and prints its P2WPKH address. That address is what you give the
  other party as *your* address for ``initiate`` / ``participate``; ``redeem``
  finds the key in the swap dir by the public key hash in the contract. The
  refund key of a contract you create is made the same way, automatically.
  Redeems and refunds pay to a fresh address of the chain node's wallet.
* **Funding.** The node's wallet funds the contract with ``SendToAddress`` to the
  contract's P2WSH address, which signs *and publishes* in one call. So the
  publish prompt comes before the contract transaction exists: the secret and the
  contract are printed (and saved in the swap dir) first, then, once confirmed,
  the contract transaction, its fee and the refund transaction are printed.
* Everything made -- keys, secrets, contracts, contract and refund transactions
  -- is saved in the swap dir (default ``<chain datadir>/swap``) before anything
  is published, so a crash never loses the means to redeem or refund.

``--yes`` publishes without asking (for scripts).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import grpc

from base_chain.address import AddressPrefixes, address_to_script, witness_script
from base_chain.crypto import PrivateKey
from base_chain.hashes import hash160, sha256
from base_chain.params import ChainParams, get_params
from base_chain.policy import DEFAULT_MIN_RELAY_TX_FEE, format_money
from base_chain.rpc import channel_for
from base_chain.rpc.tls import write_atomic
from base_chain.serialize import DeserializationError
from base_chain.tx import OutPoint, Transaction
from proto import chain_pb2 as pb
from proto import chain_pb2_grpc as pb_grpc
from relay.contract import (
    INITIATOR_LOCK_S,
    PARTICIPANT_LOCK_S,
    ContractError,
    ContractInfo,
    blocks_until_refundable,
    contract_address,
    extract_secret,
    find_contract_output,
    locktime_after,
    p2wpkh_address,
    parse_contract,
    pkh_from_address,
    redeem_tx,
    refund_tx,
)

__all__ = ["main", "COMMANDS"]

USAGE = """usage: canal swap --chain {alpha,beta,regtest} --chain-datadir DIR [--swapdir DIR] [--yes] COMMAND [ARGS]

decred atomicswap for Canal chains.

commands:
  initiate <participant address> <amount>
  participate <initiator address> <amount> <secret hash>
  redeem <contract> <contract transaction> <secret>
  refund <contract> <contract transaction>
  extractsecret <redemption transaction> <secret hash>
  auditcontract <contract> <contract transaction>
  getnewaddress                      (Canal's) a new swap key; its P2WPKH address is yours in a swap

options:
  --chain NAME         the chain the command works on (alpha, beta or regtest)
  --chain-datadir DIR  the data dir of that chain's node (its wallet funds and receives)
  --rpcport PORT       the node's RPC port (default: found in the data dir)
  --swapdir DIR        where swap keys and contracts are kept (default: <chain-datadir>/swap)
  --yes                publish without asking
"""

COMMANDS: dict[str, int] = {
    "initiate": 2,
    "participate": 3,
    "redeem": 3,
    "refund": 2,
    "extractsecret": 2,
    "auditcontract": 2,
    "getnewaddress": 0,
}
"""Each command and its number of arguments."""

_OFFLINE = {"extractsecret", "getnewaddress"}
_COIN = Decimal(100_000_000)


class SwapCliError(Exception):
    """A failure to report as ``error: <message>`` (exit status 1)."""


# --- small helpers ------------------------------------------------------------------------------------


def _amount(text: str) -> int:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise SwapCliError(f"failed to decode amount: {text!r}") from None
    sat = value * _COIN
    if not value.is_finite() or sat != sat.to_integral_value():
        raise SwapCliError("failed to decode amount: more than 8 decimal places")
    if sat <= 0:
        raise SwapCliError("amount must be positive")
    return int(sat)


def _hex(text: str, what: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise SwapCliError(f"failed to decode {what}: not hex") from None


def _tx(text: str, what: str) -> Transaction:
    try:
        return Transaction.from_bytes(_hex(text, what))
    except DeserializationError as e:
        raise SwapCliError(f"failed to decode {what}: {e}") from None


def _secret_hash(text: str) -> bytes:
    try:
        h = bytes.fromhex(text)
    except ValueError:
        raise SwapCliError("secret hash must be hex encoded") from None
    if len(h) != 32:
        raise SwapCliError("secret hash has wrong size")
    return h


def _duration(seconds: int) -> str:
    """Go's time.Duration format, as atomicswap prints it: 47h59m30s."""
    h, rest = divmod(max(0, seconds), 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m}m{s}s"
    if m:
        return f"{m}m{s}s"
    return f"{s}s"


class _Chain:
    """The chain a command works on: its parameters and (for online commands) its node."""

    def __init__(self, params: ChainParams, stub: pb_grpc.ChainServiceStub | None) -> None:
        self.params = params
        self._stub = stub
        self.unit = "BTC" if params.name == "regtest" else params.name.upper()

    @property
    def prefixes(self) -> AddressPrefixes:
        return self.params.address_prefixes

    @property
    def rpc(self) -> pb_grpc.ChainServiceStub:
        if self._stub is None:
            raise SwapCliError("this command needs the chain node: pass --chain-datadir")
        return self._stub

    def coins(self, sat: int) -> str:
        return f"{format_money(sat)} {self.unit}"

    def fee_line(self, fee_sat: int, vsize: int) -> str:
        per_kb = fee_sat * 1000 // max(vsize, 1)
        return f"{self.coins(fee_sat)} ({format_money(per_kb)} {self.unit}/kB)"

    def height(self) -> int:
        return int(self.rpc.GetBlockCount(pb.GetBlockCountRequest()).count)

    def fee_rate(self) -> int:
        """sat/kvB for redeems and refunds: the node's 6-block estimate, never below its relay minimum."""
        info = self.rpc.GetMempoolInfo(pb.GetMempoolInfoRequest())
        floor = max(DEFAULT_MIN_RELAY_TX_FEE, int(info.minrelaytxfee_sat_kvb), int(info.mempoolminfee_sat_kvb))
        estimate = self.rpc.EstimateFee(pb.EstimateFeeRequest(conf_target=6))
        rate = int(round(estimate.feerate_sat_vb * 1000))
        if rate <= 0:
            print("warning: falling back to mempool relay fee policy")
            return floor
        return max(rate, floor)

    def wallet_script(self) -> bytes:
        """A fresh address of the node's wallet, as an output script (where redeems and refunds go)."""
        address = self.rpc.GetNewAddress(pb.GetNewAddressRequest(label="swap")).address
        return address_to_script(address, self.prefixes)

    def publish(self, tx: Transaction) -> str:
        return str(self.rpc.SendRawTransaction(pb.SendRawTransactionRequest(hexstring=tx.hex())).txid)


class SwapDir:
    """Keys and contracts on disk: ``keys/<pkh>.json`` (mode 0600) and ``contracts/<address>.json``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _write(self, sub: str, name: str, record: dict[str, Any]) -> Path:
        folder = self.path / sub
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = folder / f"{name}.json"
        write_atomic(target, (json.dumps(record, indent=2) + "\n").encode(), 0o600)
        return target

    def new_key(self, chain: _Chain, purpose: str) -> tuple[PrivateKey, str]:
        key = PrivateKey.generate()
        pkh = hash160(key.public_key().to_bytes())
        address = p2wpkh_address(pkh, chain.prefixes)
        self._write("keys", pkh.hex(), {
            "private_key": key.to_bytes().hex(), "pubkey_hash": pkh.hex(), "chain": chain.params.name,
            "address": address, "purpose": purpose, "created": int(time.time()),
        })
        return key, address

    def key_for(self, pkh: bytes, chain: _Chain, role: str) -> PrivateKey:
        path = self.path / "keys" / f"{pkh.hex()}.json"
        try:
            record = json.loads(path.read_text())
            return PrivateKey(bytes.fromhex(record["private_key"]))
        except FileNotFoundError:
            address = p2wpkh_address(pkh, chain.prefixes)
            raise SwapCliError(
                f"no swap key for the contract's {role} address {address} in {self.path} "
                "(keys are made by `canal swap getnewaddress` or `initiate`/`participate` with this --swapdir)"
            ) from None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise SwapCliError(f"cannot read swap key {path}: {e}") from None

    def save_contract(self, address: str, record: dict[str, Any]) -> Path:
        path = self.path / "contracts" / f"{address}.json"
        old: dict[str, Any] = {}
        if path.exists():
            try:
                old = json.loads(path.read_text())
            except (OSError, ValueError):
                old = {}
        return self._write("contracts", address, {**old, **record})


def _confirm(name: str, assume_yes: bool) -> bool:
    """atomicswap's promptPublishTx question; EOF is a no."""
    if assume_yes:
        return True
    while True:
        print(f"Publish {name} transaction? [y/N] ", end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            print()
            return False
        answer = line.strip().lower()
        if answer in ("y", "yes"):
            return True
        if answer in ("n", "no", ""):
            return False
        print("please answer y or n")


# --- commands -----------------------------------------------------------------------------------------


def _getnewaddress(chain: _Chain, swapdir: SwapDir, args: list[str], yes: bool) -> int:
    _, address = swapdir.new_key(chain, "receive")
    print(address)
    return 0


def _build_and_fund(
    chain: _Chain, swapdir: SwapDir, them: str, amount_sat: int, secret_hash: bytes, lock_s: int,
    yes: bool, secret: bytes | None,
) -> int:
    """initiate and participate: a contract paying `them`, refundable to a new swap key of ours."""
    try:
        them_pkh = pkh_from_address(them, chain.prefixes)
    except ContractError as e:
        raise SwapCliError(f"failed to decode {'participant' if secret else 'initiator'} address: {e}") from None
    height = chain.height()
    locktime = locktime_after(height, lock_s, chain.params.target_spacing_s)
    refund_key, refund_address = swapdir.new_key(chain, "refund")
    refund_pkh = pkh_from_address(refund_address, chain.prefixes)
    info = ContractInfo(secret_hash, them_pkh, refund_pkh, locktime)
    contract = info.script()
    fee_rate = chain.fee_rate()
    try:  # never lock coins that could not be refunded: the refund must leave more than dust
        refund_tx(contract, OutPoint(b"\x00" * 32, 0), amount_sat, refund_key, witness_script(0, refund_pkh),
                  fee_rate)
    except ContractError as e:
        raise SwapCliError(f"amount too small to be refunded: {e}") from None
    address = contract_address(contract, chain.prefixes)
    swapdir.save_contract(address, {
        "chain": chain.params.name, "role": "initiator" if secret else "participant",
        "contract": contract.hex(), "contract_address": address, "amount_sat": amount_sat,
        "secret_hash": secret_hash.hex(), "secret": secret.hex() if secret else None,
        "recipient_address": them, "refund_address": refund_address, "locktime": locktime,
    })

    if secret is not None:
        print(f"Secret:      {secret.hex()}")
        print(f"Secret hash: {secret_hash.hex()}\n")
    print(f"Contract ({address}):")
    print(f"{contract.hex()}\n")
    print(f"Contract value: {chain.coins(amount_sat)}")
    print(f"Locktime:       block {locktime} (chain at {height}: about "
          f"{_duration((locktime - height) * chain.params.target_spacing_s)} from now)\n")

    if not _confirm("contract", yes):
        return 0
    sent = chain.rpc.SendToAddress(pb.SendToAddressRequest(address=address, amount_sat=amount_sat))
    contract_tx = Transaction.from_hex(chain.rpc.GetRawTransaction(pb.GetRawTransactionRequest(txid=sent.txid)).hex)
    index = find_contract_output(contract, contract_tx)
    swapdir.save_contract(address, {"contract_txid": sent.txid, "contract_tx": contract_tx.hex()})
    print(f"Published contract transaction ({sent.txid})\n")

    refund = refund_tx(contract, OutPoint(contract_tx.txid, index), amount_sat, refund_key, chain.wallet_script(),
                       fee_rate)
    swapdir.save_contract(address, {"refund_txid": refund.txid_hex(), "refund_tx": refund.hex()})
    refund_fee = amount_sat - refund.outputs[0].amount_sat
    print(f"Contract fee: {chain.fee_line(sent.fee_sat, contract_tx.vsize)}")
    print(f"Refund fee:   {chain.fee_line(refund_fee, refund.vsize)}\n")
    print(f"Contract transaction ({sent.txid}):")
    print(f"{contract_tx.hex()}\n")
    print(f"Refund transaction ({refund.txid_hex()}):")
    print(f"{refund.hex()}\n")
    return 0


def _initiate(chain: _Chain, swapdir: SwapDir, args: list[str], yes: bool) -> int:
    amount = _amount(args[1])
    secret = secrets.token_bytes(32)
    return _build_and_fund(chain, swapdir, args[0], amount, sha256(secret), INITIATOR_LOCK_S, yes, secret)


def _participate(chain: _Chain, swapdir: SwapDir, args: list[str], yes: bool) -> int:
    amount = _amount(args[1])
    secret_hash = _secret_hash(args[2])
    return _build_and_fund(chain, swapdir, args[0], amount, secret_hash, PARTICIPANT_LOCK_S, yes, None)


def _contract_args(args: list[str]) -> tuple[bytes, ContractInfo, Transaction, int]:
    contract = _hex(args[0], "contract")
    contract_tx = _tx(args[1], "contract transaction")
    info = parse_contract(contract)
    return contract, info, contract_tx, find_contract_output(contract, contract_tx)


def _redeem(chain: _Chain, swapdir: SwapDir, args: list[str], yes: bool) -> int:
    contract, info, contract_tx, index = _contract_args(args)
    secret = _hex(args[2], "secret")
    key = swapdir.key_for(info.recipient_pkh, chain, "recipient")
    amount = contract_tx.outputs[index].amount_sat
    tx = redeem_tx(contract, OutPoint(contract_tx.txid, index), amount, secret, key, chain.wallet_script(),
                   chain.fee_rate())
    print(f"Redeem fee: {chain.fee_line(amount - tx.outputs[0].amount_sat, tx.vsize)}\n")
    print(f"Redeem transaction ({tx.txid_hex()}):")
    print(f"{tx.hex()}\n")
    if _confirm("redeem", yes):
        print(f"Published redeem transaction ({chain.publish(tx)})")
    return 0


def _refund(chain: _Chain, swapdir: SwapDir, args: list[str], yes: bool) -> int:
    contract, info, contract_tx, index = _contract_args(args)
    key = swapdir.key_for(info.refund_pkh, chain, "refund")
    amount = contract_tx.outputs[index].amount_sat
    tx = refund_tx(contract, OutPoint(contract_tx.txid, index), amount, key, chain.wallet_script(),
                   chain.fee_rate())
    print(f"Refund fee: {chain.fee_line(amount - tx.outputs[0].amount_sat, tx.vsize)}\n")
    print(f"Refund transaction ({tx.txid_hex()}):")
    print(f"{tx.hex()}\n")
    height = chain.height()
    wait = blocks_until_refundable(info.locktime, height)
    if wait:
        raise SwapCliError(
            f"contract locktime not reached: the refund is valid once the chain reaches block {info.locktime} "
            f"(now {height}, {wait} blocks, about {_duration(wait * chain.params.target_spacing_s)}); "
            "publish it then"
        )
    if _confirm("refund", yes):
        print(f"Published refund transaction ({chain.publish(tx)})")
    return 0


def _extractsecret(chain: _Chain, swapdir: SwapDir, args: list[str], yes: bool) -> int:
    tx = _tx(args[0], "redemption transaction")
    secret = extract_secret(tx, _secret_hash(args[1]))
    print(f"Secret: {secret.hex()}")
    return 0


def _auditcontract(chain: _Chain, swapdir: SwapDir, args: list[str], yes: bool) -> int:
    contract = _hex(args[0], "contract")
    contract_tx = _tx(args[1], "contract transaction")
    info = parse_contract(contract)
    index = find_contract_output(contract, contract_tx)
    print(f"Contract address:        {contract_address(contract, chain.prefixes)}")
    print(f"Contract value:          {chain.coins(contract_tx.outputs[index].amount_sat)}")
    print(f"Recipient address:       {p2wpkh_address(info.recipient_pkh, chain.prefixes)}")
    print(f"Author's refund address: {p2wpkh_address(info.refund_pkh, chain.prefixes)}\n")
    print(f"Secret hash: {info.secret_hash.hex()}\n")
    print(f"Locktime: block {info.locktime}")
    try:
        height = chain.height()
    except (SwapCliError, grpc.RpcError):
        return 0  # offline: the locktime is all we can say
    wait = blocks_until_refundable(info.locktime, height)
    if wait:
        print(f"Locktime reached in {wait} blocks (about {_duration(wait * chain.params.target_spacing_s)})")
    else:
        print("Contract refund time lock has expired")
    return 0


_HANDLERS = {
    "initiate": _initiate,
    "participate": _participate,
    "redeem": _redeem,
    "refund": _refund,
    "extractsecret": _extractsecret,
    "auditcontract": _auditcontract,
    "getnewaddress": _getnewaddress,
}


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="canal swap", add_help=False, usage=argparse.SUPPRESS)
    ap.add_argument("-h", "--help", action="store_true")
    ap.add_argument("--chain", choices=["alpha", "beta", "regtest"])
    ap.add_argument("--chain-datadir", type=Path)
    ap.add_argument("--rpcport", type=int)
    ap.add_argument("--swapdir", type=Path)
    ap.add_argument("--yes", "-y", action="store_true")
    ap.add_argument("command", nargs="?")
    ap.add_argument("args", nargs="*")
    return ap


def _usage_error(message: str) -> int:
    print(f"{message}\n", file=sys.stderr)
    print(USAGE, end="", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        ns = _parser().parse_intermixed_args(args)
    except SystemExit as e:  # argparse already printed why
        return int(e.code or 0) if isinstance(e.code, int) else 2
    if ns.help or ns.command is None:
        print(USAGE, end="")
        return 0 if ns.help else 2
    nargs = COMMANDS.get(ns.command)
    if nargs is None:
        return _usage_error(f"unknown command {ns.command}")
    if len(ns.args) < nargs:
        return _usage_error(f"{ns.command}: too few arguments")
    if len(ns.args) > nargs:
        return _usage_error(f"unexpected argument: {ns.args[nargs]}")
    if ns.chain is None:
        return _usage_error("--chain is required")
    online = ns.command not in _OFFLINE
    if online and ns.chain_datadir is None and ns.command != "auditcontract":
        return _usage_error(f"{ns.command}: --chain-datadir is required")
    if ns.command == "getnewaddress" and ns.swapdir is None and ns.chain_datadir is None:
        return _usage_error("getnewaddress: --swapdir or --chain-datadir is required")
    swapdir = SwapDir(ns.swapdir if ns.swapdir is not None else (ns.chain_datadir or Path(".")) / "swap")

    channel: grpc.Channel | None = None
    try:
        params = get_params(ns.chain)
        stub = None
        if online and ns.chain_datadir is not None:
            try:
                channel = channel_for(ns.chain_datadir, port=ns.rpcport)
            except (OSError, ValueError) as e:
                raise SwapCliError(f"cannot find a node in {ns.chain_datadir}: {e}") from None
            stub = pb_grpc.ChainServiceStub(channel)  # type: ignore[no-untyped-call]
            node_chain = stub.GetBlockchainInfo(pb.GetBlockchainInfoRequest()).chain
            if node_chain != params.name:
                raise SwapCliError(f"the node in {ns.chain_datadir} is on chain {node_chain!r}, not {params.name!r}")
        return _HANDLERS[ns.command](_Chain(params, stub), swapdir, list(ns.args), ns.yes)
    except (SwapCliError, ContractError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except grpc.RpcError as e:
        print(f"error: {e.details()} ({e.code().name})", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        if channel is not None:
            channel.close()


if __name__ == "__main__":
    sys.exit(main())
