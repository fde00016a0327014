"""Plumbing shared by the kpi-ledger services (I/O lives here and in the services, never in kpi_core)."""
