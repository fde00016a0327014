"""event log, sequence counter, outbox, catalogue versions; append-only triggers

Revision ID: 2026_11_24_0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "2026_11_24_0001"
down_revision = None
branch_labels = None
depends_on = None

SEQUENCE = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("sequence", SEQUENCE, primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("catalogue_id", sa.String(100), nullable=True),
        sa.Column("unit_id", sa.String(100), nullable=True),
        sa.Column("recorded_at", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("request_sha256", sa.String(64), nullable=True),
        sa.Column("envelope", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("sequence", name="pk_events"),
        sa.UniqueConstraint("event_id", name="uq_events_event_id"),
        sa.UniqueConstraint("actor", "idempotency_key", name="uq_events_actor_idempotency_key"),
    )
    op.create_index("ix_events_subject", "events", ["subject"])
    op.create_index("ix_events_catalogue_id", "events", ["catalogue_id"])
    op.create_index("ix_events_unit_id", "events", ["unit_id"])
    op.create_table(
        "event_counter",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("last_sequence", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_event_counter"),
    )
    op.execute("INSERT INTO event_counter (id, last_sequence) VALUES (1, 0)")
    op.create_table(
        "outbox",
        sa.Column("sequence", SEQUENCE, primary_key=True, autoincrement=False),
        sa.Column("nats_subject", sa.String(300), nullable=False),
        sa.PrimaryKeyConstraint("sequence", name="pk_outbox"),
        sa.ForeignKeyConstraint(["sequence"], ["events.sequence"], name="fk_outbox_sequence_events"),
    )
    op.create_table(
        "catalogue_versions",
        sa.Column("catalogue_id", sa.String(100), nullable=False),
        sa.Column("version", sa.String(50), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("catalogue_id", "version", name="pk_catalogue_versions"),
        sa.ForeignKeyConstraint(["sequence"], ["events.sequence"], name="fk_catalogue_versions_sequence_events"),
    )
    if op.get_bind().dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER events_append_only_{action.lower()} BEFORE {action} ON events "
                "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END"
            )
    else:
        op.execute(
            "CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'events are append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER events_append_only_row BEFORE UPDATE OR DELETE ON events "
            "FOR EACH ROW EXECUTE FUNCTION events_append_only()"
        )
        op.execute(
            "CREATE TRIGGER events_append_only_truncate BEFORE TRUNCATE ON events "
            "FOR EACH STATEMENT EXECUTE FUNCTION events_append_only()"
        )


def downgrade() -> None:
    raise NotImplementedError("the event log is never dropped by a migration")
