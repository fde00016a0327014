"""kpi-ledger launcher: the `kpi-ledger` command and the embedded system, over the registry of services."""
