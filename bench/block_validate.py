"""Validating a block of 1,000 P2WPKH inputs, per crypto backend, beside the raw signature checks.

    python bench/block_validate.py [--inputs 1000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chainbuild import KEY, SPK  # noqa: E402
from machine import describe  # noqa: E402

from base_chain import crypto  # noqa: E402
from base_chain.chainstate import ChainState, block_subsidy  # noqa: E402
from base_chain.miner import assemble_block, mine_block  # noqa: E402
from base_chain.params import get_params  # noqa: E402
from base_chain.sighash import Bip143Cache, bip143_sighash  # noqa: E402
from base_chain.signing import sign_p2wpkh  # noqa: E402
from base_chain.store import ChainStore  # noqa: E402
from base_chain.templates import p2wpkh_script_code  # noqa: E402
from base_chain.tx import OutPoint, Transaction, TxIn, TxOut  # noqa: E402


def setup(n_inputs: int) -> tuple[ChainState, list[Transaction], list[int]]:
    params = get_params("regtest")
    chain = ChainState(params, ChainStore(":memory:"))

    def mine(txs: list[Transaction], fees: int = 0) -> None:
        tip = chain.tip
        t = tip.header.time + 600
        b = assemble_block(tip.hash, tip.height + 1, t, chain.next_expected_bits(tip, t), SPK,
                           block_subsidy(tip.height + 1, params) + fees, txs, extra_nonce=tip.height)
        chain.accept_block(mine_block(b, params), now=t)

    for _ in range(101):
        mine([])
    cb = chain.get_block(chain.active[1].hash)
    assert cb is not None
    coin = cb.transactions[0]
    amount = coin.outputs[0].amount_sat
    part = (amount - 100_000) // n_inputs
    fan = Transaction(2, [TxIn(OutPoint(coin.txid, 0))], [TxOut(part, SPK) for _ in range(n_inputs)])
    sign_p2wpkh(fan, 0, KEY, amount)
    mine([fan], amount - part * n_inputs)
    # Spend them in 10 transactions of n/10 inputs each.
    per = max(n_inputs // 10, 1)
    spends: list[Transaction] = []
    amounts: list[int] = []
    for start in range(0, n_inputs, per):
        idx = range(start, min(start + per, n_inputs))
        tx = Transaction(2, [TxIn(OutPoint(fan.txid, i)) for i in idx], [TxOut(part * len(idx) - 5_000, SPK)])
        for j in range(len(idx)):
            sign_p2wpkh(tx, j, KEY, part)
        spends.append(tx)
        amounts.append(part)
    return chain, spends, amounts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--inputs", type=int, default=1000)
    args = ap.parse_args()
    print(f"machine: {describe()}")
    print(f"block of {args.inputs} P2WPKH inputs (10 transactions)")
    print(f"{'backend':<10} {'validate+connect':>17} {'raw verify only':>16} {'overhead':>9}")
    for backend in crypto.available_backends():
        crypto.set_backend(backend)
        chain, spends, amounts = setup(args.inputs)
        params = chain.params
        tip = chain.tip
        t = tip.header.time + 600
        block = mine_block(assemble_block(tip.hash, tip.height + 1, t, chain.next_expected_bits(tip, t), SPK,
                                          block_subsidy(tip.height + 1, params) + 5_000 * len(spends), spends), params)
        # Raw: the same signatures checked directly.
        work = []
        for tx, part in zip(spends, amounts):
            cache = Bip143Cache(tx)
            for i, txin in enumerate(tx.inputs):
                pub = crypto.PublicKey.from_bytes(txin.witness[1])
                digest = bip143_sighash(p2wpkh_script_code(txin.witness[1]), tx, i, 1, part, cache)
                rs = crypto.parse_der_lax(txin.witness[0][:-1])
                assert rs is not None
                work.append((pub, rs, digest))
        t0 = time.perf_counter()
        for pub, (r, s), digest in work:
            assert pub.verify(r, s, digest)
        raw = time.perf_counter() - t0
        t0 = time.perf_counter()
        chain.accept_block(block, now=t)
        full = time.perf_counter() - t0
        assert chain.tip.hash == block.hash
        print(f"{backend:<10} {full * 1000:>14.0f} ms {raw * 1000:>13.0f} ms {full / raw - 1:>8.0%}")


if __name__ == "__main__":
    main()
