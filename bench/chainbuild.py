"""Build a regtest chain with P2WPKH transactions in every block (shared by the chain benchmarks)."""

from __future__ import annotations

from base_chain.chainstate import ChainState, block_subsidy
from base_chain.crypto import PrivateKey
from base_chain.miner import assemble_block, mine_block
from base_chain.signing import sign_p2wpkh
from base_chain.templates import p2wpkh
from base_chain.tx import OutPoint, Transaction, TxIn, TxOut

KEY = PrivateKey(0xBE4C4)
SPK = p2wpkh(KEY.public_key().to_bytes())


def build_chain(chain: ChainState, blocks: int, txs_per_block: int = 3, fanout: int = 2) -> None:
    """Mine `blocks` blocks; once coinbases mature, each block carries P2WPKH spends."""
    params = chain.params
    spendable: list[tuple[OutPoint, int]] = []
    for _ in range(blocks):
        tip = chain.tip
        height = tip.height + 1
        txs: list[Transaction] = []
        fees = 0
        if height > 100:
            # The coinbase of block height-100 just matured.
            cb_block = chain.get_block(chain.active[height - 100].hash)
            assert cb_block is not None
            cb = cb_block.transactions[0]
            spendable.append((OutPoint(cb.txid, 0), cb.outputs[0].amount_sat))
            for _ in range(txs_per_block):
                if not spendable:
                    break
                outpoint, amount = spendable.pop(0)
                fee = 1_000
                part = (amount - fee) // fanout
                if part < 10_000:
                    continue
                tx = Transaction(2, [TxIn(outpoint, sequence=0xFFFFFFFE)], [TxOut(part, SPK) for _ in range(fanout)])
                sign_p2wpkh(tx, 0, KEY, amount)
                txs.append(tx)
                fees += fee
                spendable.extend((OutPoint(tx.txid, i), part) for i in range(fanout))
        time = tip.header.time + 600
        block = assemble_block(tip.hash, height, time, chain.next_expected_bits(tip, time), SPK,
                               block_subsidy(height, params) + fees, txs, extra_nonce=height)
        chain.accept_block(mine_block(block, params), now=time)
