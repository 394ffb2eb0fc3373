"""Signature verification cost: raw ECDSA verifies/s against P2WPKH inputs verified through the interpreter.

    python bench/verify.py [--n 2000] [--rounds 5]

For each installed crypto backend it prints raw verifications per second, P2WPKH
input verifications per second (sighash + interpreter + signature), and the
interpreter's overhead over the raw signature check, each the best of several
alternating rounds (the machine is shared; the best round is the least disturbed).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402

from base_chain import crypto  # noqa: E402
from base_chain.script import STANDARD_FLAGS, verify_script  # noqa: E402
from base_chain.sighash import Bip143Cache, bip143_sighash  # noqa: E402
from base_chain.signing import sign_p2wpkh  # noqa: E402
from base_chain.templates import p2wpkh, p2wpkh_script_code  # noqa: E402
from base_chain.tx import OutPoint, Transaction, TxIn, TxOut  # noqa: E402


def build(n: int) -> tuple[Transaction, list[TxOut], list[crypto.PrivateKey]]:
    keys = [crypto.PrivateKey(i + 1000) for i in range(n)]
    prevouts = [TxOut(100_000 + i, p2wpkh(k.public_key().to_bytes())) for i, k in enumerate(keys)]
    tx = Transaction(
        2,
        [TxIn(OutPoint(i.to_bytes(32, "little"), 0)) for i in range(n)],
        [TxOut(sum(p.amount_sat for p in prevouts) - 10_000, prevouts[0].script_pubkey)],
    )
    for i, k in enumerate(keys):
        sign_p2wpkh(tx, i, k, prevouts[i].amount_sat)
    return tx, prevouts, keys


def run(backend: str, n: int, rounds: int) -> tuple[float, float, float]:
    """Best-of-`rounds` rates (the machine is shared: the best round is the least disturbed);
    the three measurements alternate inside each round so that noise hits them alike."""
    crypto.set_backend(backend)
    tx, prevouts, keys = build(n)
    # Raw: the same signatures and digests, verified without the interpreter.
    cache = Bip143Cache(tx)
    work = []
    for i, txin in enumerate(tx.inputs):
        pub = crypto.PublicKey.from_bytes(txin.witness[1])
        digest = bip143_sighash(p2wpkh_script_code(txin.witness[1]), tx, i, 1, prevouts[i].amount_sat, cache)
        rs = crypto.parse_der_lax(txin.witness[0][:-1])
        assert rs is not None
        work.append((pub, rs[0], rs[1], digest, txin.witness[0][:-1]))
    best_raw = best_der = best_full = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        for pub, r, s, digest, _ in work:
            if not pub.verify(r, s, digest):
                raise SystemExit("raw verification failed")
        best_raw = max(best_raw, n / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for pub, _, _, digest, der in work:
            if not pub.verify_der(der, digest):
                raise SystemExit("raw DER verification failed")
        best_der = max(best_der, n / (time.perf_counter() - t0))
        # Full: a fresh sighash cache, then every input through verify_script.
        t0 = time.perf_counter()
        cache = Bip143Cache(tx)
        for i, txin in enumerate(tx.inputs):
            verify_script(txin.script_sig, prevouts[i].script_pubkey, txin.witness, STANDARD_FLAGS, tx, i,
                          prevouts[i].amount_sat, cache)
        best_full = max(best_full, n / (time.perf_counter() - t0))
    return best_raw, best_der, best_full


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=2000, help="signatures per backend")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds; the best of each is shown")
    args = ap.parse_args()
    print(f"machine: {describe()}")
    print(f"{'backend':<10} {'verify (r,s)/s':>15} {'verify DER/s':>13} {'P2WPKH input/s':>15} "
          f"{'overhead vs (r,s)':>18} {'vs DER':>8}")
    for backend in crypto.available_backends():
        raw, raw_der, full = run(backend, args.n, args.rounds)
        print(f"{backend:<10} {raw:>15,.0f} {raw_der:>13,.0f} {full:>15,.0f} {raw / full - 1:>18.1%} "
              f"{raw_der / full - 1:>8.1%}")
    print("P2WPKH input = BIP143 sighash (cached midstate) + the interpreter + the DER signature check.")


if __name__ == "__main__":
    main()
