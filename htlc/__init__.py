"""Multi-hop hash time-locked contracts: BOLT 11 invoices, BOLT 4 onions, BOLT 7 gossip, pathfinding and payments."""
