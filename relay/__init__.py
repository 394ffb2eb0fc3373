"""The cross-chain layer: HTLC atomic swaps, an SPV header relay and an M-of-N notary committee."""
