"""Ingest's tables: the append-only event log, its sequence counter, the outbox (and the events it
withheld), catalogue versions."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
)

from kpi_common.auth import api_key_table
from kpi_common.db import new_metadata

metadata = new_metadata()
api_keys = api_key_table(metadata)

events = Table(
    "events",
    metadata,
    Column("sequence", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("type", String(100), nullable=False),
    # in code-point order on PostgreSQL too (its "C" collation), so `subject_under` is a range of the index
    Column("subject", String(300).with_variant(String(300, collation="C"), "postgresql"), nullable=False, index=True),
    Column("catalogue_id", String(100), nullable=True, index=True),
    Column("unit_id", String(100), nullable=True, index=True),
    Column("recorded_at", String(32), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("idempotency_key", String(200), nullable=True),
    Column("request_sha256", String(64), nullable=True),
    Column("envelope", Text, nullable=False),
    Column("event_sha256", String(64), nullable=True),
    Column("chain_sha256", String(64), nullable=True),
    UniqueConstraint("actor", "idempotency_key", name="uq_events_actor_idempotency_key"),
)

# One row: the last sequence handed out. Taking it with UPDATE ... RETURNING locks the row until
# the transaction ends, so sequences commit in order and a rolled-back append leaves no gap.
event_counter = Table(
    "event_counter",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_sequence", BigInteger, nullable=False),
    Column("last_chain_sha256", String(64), nullable=False, server_default="0" * 64),
)

outbox = Table(
    "outbox",
    metadata,
    Column(
        "sequence",
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("events.sequence"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("nats_subject", String(300), nullable=False),
)

# Events the relay could not publish at all (over a transport limit no retry changes): each is in the
# log, and a placeholder stands in its place on the stream. Written before the placeholder is published.
withheld_events = Table(
    "withheld_events",
    metadata,
    Column(
        "sequence",
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("events.sequence"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("event_id", String(36), nullable=False),
    Column("type", String(100), nullable=False),
    Column("nats_subject", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("event_sha256", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("withheld_at", String(32), nullable=False),
)

catalogue_versions = Table(
    "catalogue_versions",
    metadata,
    Column("catalogue_id", String(100), primary_key=True),
    Column("version", String(50), primary_key=True),
    Column("content_sha256", String(64), nullable=False),
    Column("sequence", BigInteger, ForeignKey("events.sequence"), nullable=False),
)

# Where submissions stand, kept in the same transaction as the events that change it.
closed_periods = Table(
    "closed_periods",
    metadata,
    Column("catalogue_id", String(100), primary_key=True),
    Column("version", String(50), primary_key=True),
    Column("period", Integer, primary_key=True, autoincrement=False),
    Column("sequence", BigInteger, ForeignKey("events.sequence"), nullable=False),
)

reopened_units = Table(
    "reopened_units",
    metadata,
    Column("catalogue_id", String(100), primary_key=True),
    Column("version", String(50), primary_key=True),
    Column("period", Integer, primary_key=True, autoincrement=False),
    Column("unit_id", String(100), primary_key=True),
    Column("sequence", BigInteger, ForeignKey("events.sequence"), nullable=False),
)

# Every registered version of a peer group's unit list; the latest sequence of a group is in force.
peer_group_versions = Table(
    "peer_group_versions",
    metadata,
    Column("peer_group_id", String(100), primary_key=True),
    Column("version", String(50), primary_key=True),
    Column("content_sha256", String(64), nullable=False),
    Column("sequence", BigInteger, ForeignKey("events.sequence"), nullable=False),
)

# Each measurement set that stored something, under its Idempotency-Key: what a repeated request answers.
measurement_sets = Table(
    "measurement_sets",
    metadata,
    Column("set_id", String(36), primary_key=True),
    Column("actor", String(100), nullable=False),
    Column("idempotency_key", String(200), nullable=False),
    Column("request_sha256", String(64), nullable=False),
    Column("first_sequence", BigInteger, ForeignKey("events.sequence"), nullable=False),
    Column("last_sequence", BigInteger, ForeignKey("events.sequence"), nullable=False),
    Column("summary", Text, nullable=False),
    UniqueConstraint("actor", "idempotency_key", name="uq_measurement_sets_actor_idempotency_key"),
)


def subject_under(prefix: str) -> ColumnElement[bool]:
    """Events whose subject starts with `prefix`, as a range of the subject index: subjects are
    ordered by their characters' code points (SQLite's default; on PostgreSQL the column's "C"
    collation, since migration 0009), where the strings starting with `prefix` are exactly those
    from `prefix` up to `prefix` with its last character one higher. A `LIKE 'prefix%'` reads no
    index (SQLite's LIKE ignores case; PostgreSQL's default collation orders otherwise): it read
    every event of the catalogue, or of the unit, to find one period's."""
    if not prefix:
        raise ValueError("an empty prefix is every subject")
    following = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return and_(events.c.subject >= prefix, events.c.subject < following)
