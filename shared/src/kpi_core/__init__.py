"""kpi-ledger domain core: pure functions and value types, no I/O."""
