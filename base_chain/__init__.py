"""A Bitcoin-compatible UTXO chain: transactions, script, signature hashing, blocks and the chain node."""
