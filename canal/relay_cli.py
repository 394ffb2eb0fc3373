"""`canal relay`: ask an SPV relay (`canal relayd`) what it knows, and check transaction proofs with it.

It reads the relay's ``relay.sqlite`` in its data dir directly (a consistent
snapshot, while relayd goes on writing), so it works whether or not relayd is
running. Output is a table by default and JSON with --json; a refused proof
prints its reason on stderr and exits 1.

    canal relay --datadir DIR status
    canal relay --datadir DIR getheader <height|blockhash>
    canal relay --datadir DIR verifytxproof <proof hex> <raw tx hex> [--min-depth K]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from base_chain.pow import difficulty
from relay.relayd import RELAY_DB_FILE, RELAY_INFO_FILE
from relay.spv import HeaderRef, HeaderStore, ProofRejected

from .output import print_result

__all__ = ["main"]


class CliError(Exception):
    pass


def _iso(unix: str | None) -> str:
    if not unix:
        return ""
    return datetime.datetime.fromtimestamp(int(unix), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _relayd_state(datadir: Path) -> str:
    try:
        info = json.loads((datadir / RELAY_INFO_FILE).read_text())
        pid = int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return "not running"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "not running"
    except PermissionError:
        pass
    return f"running (pid {pid})"


def _status(store: HeaderStore, datadir: Path) -> dict[str, Any]:
    with store.transaction(write=False):
        meta = store.meta()
        if store.is_empty():
            return {"chain": meta.get("chain", ""), "initialized": False, "last_error": meta.get("last_error", ""),
                    "relayd": _relayd_state(datadir)}
        tip = store.tip
        count = store.count()
        stale = store.stale_count()
    node_height = meta.get("node_height")
    return {
        "chain": meta.get("chain", ""),
        "blocks": tip.height,
        "bestblockhash": tip.hash_hex(),
        "chainwork": f"{tip.chain_work:064x}",
        "time": tip.header.time,
        "headers_stored": count,
        "stale_headers": stale,
        "checkpoint": f"{meta.get('checkpoint_height', '0')}:{meta.get('checkpoint_hash', '')}",
        "node_blocks": int(node_height) if node_height else -1,
        "synced": meta.get("synced") == "1",
        "reorgs": int(meta.get("reorgs") or 0),
        "last_reorg_depth": int(meta.get("last_reorg_depth") or 0),
        "last_update": _iso(meta.get("last_update")),
        "last_poll": _iso(meta.get("last_poll")),
        "last_error": meta.get("last_error", ""),
        "relayd": _relayd_state(datadir),
    }


def _header_view(store: HeaderStore, ref: HeaderRef) -> dict[str, Any]:
    header = ref.header
    in_best = store.in_best_chain(ref.hash)
    tip = store.tip
    view: dict[str, Any] = {
        "hash": ref.hash_hex(),
        "confirmations": tip.height - ref.height + 1 if in_best else -1,
        "height": ref.height,
        "version": header.version,
        "versionHex": f"{header.version & 0xFFFFFFFF:08x}",
        "merkleroot": header.merkle_root[::-1].hex(),
        "time": header.time,
        "nonce": header.nonce,
        "bits": f"{header.bits:08x}",
        "difficulty": difficulty(header.bits),
        "chainwork": f"{ref.chain_work:064x}",
        "previousblockhash": header.prev_block_hex(),
    }
    if in_best:
        nxt = store.at_height(ref.height + 1)
        if nxt is not None:
            view["nextblockhash"] = nxt.hash_hex()
    view["hex"] = header.hex()
    return view


def _getheader(store: HeaderStore, which: str) -> dict[str, Any]:
    with store.transaction(write=False):
        if len(which) == 64:
            try:
                block_hash = bytes.fromhex(which)[::-1]
            except ValueError:
                raise CliError(f"blockhash must be hexadecimal string (not '{which}')") from None
            ref = store.get(block_hash)
            if ref is None:
                raise CliError("Block not found")
        else:
            try:
                height = int(which)
            except ValueError:
                raise CliError(f"expected a height or a 64-hex-digit block hash, got '{which}'") from None
            ref = store.at_height(height)
            if ref is None:
                raise CliError("Block height out of range")
        return _header_view(store, ref)


def _hex_arg(s: str, what: str) -> bytes:
    try:
        return bytes.fromhex(s)
    except ValueError:
        raise CliError(f"{what} must be hexadecimal") from None


def _verifytxproof(store: HeaderStore, proof_hex: str, raw_tx_hex: str, min_depth: int) -> dict[str, Any]:
    if min_depth < 0:
        raise CliError("--min-depth must be >= 0")
    verified = store.verify_tx_proof(_hex_arg(proof_hex, "proof"), _hex_arg(raw_tx_hex, "raw transaction"),
                                     min_depth)
    return {
        "txid": verified.txid_hex(),
        "blockhash": verified.block_hash_hex(),
        "height": verified.height,
        "depth": verified.depth,
        "index": verified.tx_index,
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="canal relay", description="Query an SPV relay and check transaction proofs.")
    ap.add_argument("--datadir", type=Path, required=True, help="the relay's data dir (canal relayd --datadir)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of tables")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("status", help="the relay's chain, best header, work and sync state")
    gh = sub.add_parser("getheader", help="a header of the best chain by height, or any known header by hash")
    gh.add_argument("block", metavar="HEIGHT|BLOCKHASH")
    vp = sub.add_parser("verifytxproof", help="check a gettxoutproof proof of a raw transaction")
    vp.add_argument("proof", metavar="PROOF_HEX", help="the proof, as gettxoutproof prints it")
    vp.add_argument("raw_tx", metavar="RAW_TX_HEX", help="the transaction (its txid is computed from these bytes)")
    vp.add_argument("--min-depth", type=int, default=1, metavar="K",
                    help="confirmations required (default 1: in a best-chain block)")
    ns = ap.parse_args(argv)

    db = ns.datadir / RELAY_DB_FILE
    if not db.exists():
        print(f"error: {db} not found: is canal relayd using this data dir?", file=sys.stderr)
        return 1
    store = HeaderStore(db)
    try:
        if ns.command == "status":
            result: Any = _status(store, ns.datadir)
        elif ns.command == "getheader":
            result = _getheader(store, ns.block)
        else:
            result = _verifytxproof(store, ns.proof, ns.raw_tx, ns.min_depth)
    except ProofRejected as e:
        print(f"error: {e.reason}" + (f": {e.debug}" if e.debug else ""), file=sys.stderr)
        return 1
    except (CliError, LookupError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print_result(result, as_json=ns.json)
    return 0
