"""Reporting's tables: catalogues it has seen and every measurement event, kept in order.

Rankings and scorecards are computed from this history with the pure scoring core, so any
past state (by sequence) is reproducible from the same rows.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from kpi_common.catalogue_store import catalogue_table
from kpi_common.db import new_metadata
from kpi_common.tracking import tracking_tables

metadata = new_metadata()
catalogues = catalogue_table(metadata)
consumer_positions, dead_letters = tracking_tables(metadata)

measurement_history = Table(
    "measurement_history",
    metadata,
    Column("sequence", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("event_id", String(36), nullable=False),
    Column("recorded_at", String(32), nullable=False),
    Column("catalogue_id", String(100), nullable=False),
    Column("version", String(50), nullable=False),
    Column("period", Integer, nullable=False),
    Column("stage", String(30), nullable=False),
    Column("unit_id", String(100), nullable=False),
    Column("indicator", String(50), nullable=False),
    Column("inputs", Text, nullable=False),
    Column("not_applicable_reason", Text, nullable=True),
    Column("submitted_by", String(100), nullable=False),
    Index("ix_measurement_history_scope", "catalogue_id", "version", "period", "stage"),
)
