"""Reporting's tables: catalogues it has seen and every measurement event, kept in order.

Rankings and scorecards are computed from this history with the pure scoring core, so any
past state (by sequence) is reproducible from the same rows.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from kpi_common.auth import api_key_table
from kpi_common.catalogue_store import catalogue_table, peer_group_table
from kpi_common.db import new_metadata
from kpi_common.tracking import tracking_tables

metadata = new_metadata()
catalogues = catalogue_table(metadata)
peer_groups = peer_group_table(metadata)
api_keys = api_key_table(metadata)
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
    Column("decision", String(20), nullable=True),
    Column("reason", Text, nullable=True),
    Column("verifies_event_id", String(36), nullable=True),
    Column("responds_to", String(36), nullable=True),
    Index("ix_measurement_history_scope", "catalogue_id", "version", "period", "stage"),
)

# Every other workflow event of a scope, in order: evidence requests, closing and reopening,
# general information, publications (the published ranking is served from here, as published).
timeline = Table(
    "timeline",
    metadata,
    Column("sequence", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("event_id", String(36), nullable=False),
    Column("type", String(100), nullable=False),
    Column("recorded_at", String(32), nullable=False),
    Column("catalogue_id", String(100), nullable=False),
    Column("version", String(50), nullable=False),
    Column("period", Integer, nullable=False),
    Column("unit_id", String(100), nullable=True),
    Column("indicator", String(50), nullable=True),
    Column("actor", String(100), nullable=False),
    Column("data", Text, nullable=False),
    Index("ix_timeline_scope", "catalogue_id", "version", "period", "type"),
)
