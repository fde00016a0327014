"""Reporting's tables: catalogues and unit lists it has seen, every measurement and workflow event
in order, and every score the scoring service computed (from the score stream), in order.

Reporting does not score: rankings and scorecards are read from the score lines, so any past
state (by log sequence) is the latest line of each score up to that sequence.
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
    # how many evidence documents the measurement carries; null if projected before it was kept (a rebuild fills it)
    Column("evidence_count", Integer, nullable=True),
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


def _score_columns(history: bool) -> list[Column[object]]:
    key = ["catalogue_id", "version", "period", "stage", "unit_id", "code"]
    sizes = {"catalogue_id": 100, "version": 50, "stage": 30, "unit_id": 100, "code": 50}
    columns: list[Column[object]] = [
        Column(name, Integer if name == "period" else String(sizes[name]), primary_key=True) for name in key
    ]
    columns.append(Column("sequence", BigInteger, primary_key=history, nullable=False, autoincrement=False))
    return [
        *columns,
        Column("recorded_at", String(32), nullable=False),
        Column("status", String(20), nullable=False),
        Column("points", String(100), nullable=True),
        Column("max_points", String(40), nullable=True),
        Column("event_id", String(36), nullable=True),
        Column("detail", Text, nullable=False),  # value, formula, inputs, peer, previous period: the explanation
    ]


# Every score line of the score stream: a score as it stood after the log event `sequence`.
score_lines = Table(
    "score_lines",
    metadata,
    *_score_columns(history=True),
    # a ranking at a past moment reads only the totals and pillars: by code first, then unit and time
    Index("ix_score_lines_by_code", "catalogue_id", "version", "period", "stage", "code", "unit_id", "sequence"),
)
# The latest line of each score: what rankings and scorecards read now. By code too: a ranking
# (now or at a past moment) reads the totals and pillars of every unit, and a past moment starts
# from these keys (`kpi_reporting.score_reading`)
current_scores = Table(
    "current_scores",
    metadata,
    *_score_columns(history=False),
    Index("ix_current_scores_by_code", "catalogue_id", "version", "period", "stage", "code", "unit_id"),
)

# The first score line of each unit that comes from a measurement of its own: a unit has reported
# at a moment when this line is at or before it (a ranking marks the units that never reported).
first_reports = Table(
    "first_reports",
    metadata,
    Column("catalogue_id", String(100), primary_key=True),
    Column("version", String(50), primary_key=True),
    Column("period", Integer, primary_key=True),
    Column("stage", String(30), primary_key=True),
    Column("unit_id", String(100), primary_key=True),
    Column("sequence", BigInteger, nullable=False),
    Column("recorded_at", String(32), nullable=False),
)

# How far the scores answer: every log event up to `answers_through` is reflected in the lines.
scores_answered = Table(
    "scores_answered",
    metadata,
    Column("stream", String(30), primary_key=True),
    Column("answers_through", BigInteger, nullable=False),
)

# The rankings publications froze (scoring froze them at each publication's cut).
frozen_results = Table(
    "frozen_results",
    metadata,
    Column("publication_id", String(36), primary_key=True),
    Column("catalogue_id", String(100), nullable=False),
    Column("version", String(50), nullable=False),
    Column("period", Integer, nullable=False),
    Column("as_of_sequence", BigInteger, nullable=False),
    Column("ranking", Text, nullable=False),
    Column("moved", Text, nullable=False),
)
