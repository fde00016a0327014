"""Scoring's tables: catalogues and unit lists it has seen, the latest inputs per indicator, the
scores, and its own log of what it published on the score stream."""

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


def unit_scope() -> list[Column[object]]:
    """The key every scoring table starts with: catalogue version, period, stage, unit."""
    return [
        Column("catalogue_id", String(100), primary_key=True),
        Column("version", String(50), primary_key=True),
        Column("period", Integer, primary_key=True),
        Column("stage", String(30), primary_key=True),
        Column("unit_id", String(100), primary_key=True),
    ]


measurements = Table(
    "measurements",
    metadata,
    *unit_scope(),
    Column("indicator", String(50), primary_key=True),
    Column("inputs", Text, nullable=False),
    Column("not_applicable_reason", Text, nullable=True),
    Column("event_id", String(36), nullable=False),
    Column("sequence", BigInteger, nullable=False),
)

# One row per unit and node (leaves, pillars, groups) plus code "*" for the unit's total.
scores = Table(
    "scores",
    metadata,
    *unit_scope(),
    Column("code", String(50), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("points_exact", String(100), nullable=True),
    Column("points", String(40), nullable=True),
    Column("max_points", String(40), nullable=True),
    Column("explanation", Text, nullable=False),
    Column("sequence", BigInteger, nullable=False),
)

# Lineage: every change of a score, with the event that caused it (an event links to every score it affected).
# Written with the score log, in the same transaction: the score log's lines, queryable. Like the
# score log it is scoring's record of what it published, so a rebuild keeps it (a replay of
# published events re-derives the scores, not the lines).
score_changes = Table(
    "score_changes",
    metadata,
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    *unit_scope(),
    Column("code", String(50), primary_key=True),
    Column("points_before", String(100), nullable=True),
    Column("points_after", String(100), nullable=True),
    Column("recorded_at", String(32), nullable=False),
    Column("status", String(20), nullable=False),
    Column("max_points", String(40), nullable=True),
    Column("explanation", Text, nullable=False),
    info={"kept_on_rebuild": True},
)

# The rankings publications froze (from the log's older publications, or computed here at the cut).
frozen_results = Table(
    "frozen_results",
    metadata,
    Column("publication_id", String(36), primary_key=True),
    Column("catalogue_id", String(100), nullable=False),
    Column("version", String(50), nullable=False),
    Column("period", Integer, nullable=False),
    Column("publication_sequence", BigInteger, nullable=False),
    Column("ranking", Text, nullable=False),
)

# The score stream as this service wrote it: numbered from 1, never emptied by a rebuild (what was
# published keeps its sequence; a replay re-derives the same scores and publishes nothing twice).
score_log = Table(
    "score_log",
    metadata,
    Column("sequence", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("event_id", String(36), nullable=False),
    Column("type", String(100), nullable=False),
    Column("answers_through", BigInteger, nullable=False),
    Column("envelope", Text, nullable=False),
    Index("ix_score_log_answers_through", "answers_through"),
    info={"kept_on_rebuild": True},
)

# Score events not yet acknowledged by the score stream.
score_outbox = Table(
    "score_outbox",
    metadata,
    Column("sequence", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("nats_subject", String(200), nullable=False),
    info={"kept_on_rebuild": True},
)
