"""withheld events: those the relay could not publish at all, each replaced on the stream by a placeholder

An event over a transport limit no retry changes (the server's maximum payload) stays in the log; the
relay records it here before it publishes a placeholder in its place (GET /v1/admin/withheld).

Revision ID: 2026_12_02_0008
Revises: 2026_12_02_0007
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "2026_12_02_0008"
down_revision = "2026_12_02_0007"
branch_labels = None
depends_on = None

SEQUENCE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "withheld_events",
        sa.Column("sequence", SEQUENCE, autoincrement=False, nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("nats_subject", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("event_sha256", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("withheld_at", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["sequence"], ["events.sequence"], name="fk_withheld_events_sequence_events"),
        sa.PrimaryKeyConstraint("sequence", name="pk_withheld_events"),
    )


def downgrade() -> None:
    op.drop_table("withheld_events")
