"""Two-party payment channels: BOLT 2/3/5 state machine, transactions and the BOLT 8 peer link."""
