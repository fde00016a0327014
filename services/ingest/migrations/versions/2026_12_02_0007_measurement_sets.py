"""measurement sets: each set that stored something, under its Idempotency-Key, with its import summary

The events of a set are ordinary measurement events (each its own sequence, hash and chain link);
this table only lets a repeated request answer what the first one stored.

Revision ID: 2026_12_02_0007
Revises: 2026_12_01_0006
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "2026_12_02_0007"
down_revision = "2026_12_01_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "measurement_sets",
        sa.Column("set_id", sa.String(length=36), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("first_sequence", sa.BigInteger(), nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["first_sequence"], ["events.sequence"], name="fk_measurement_sets_first_sequence_events"
        ),
        sa.ForeignKeyConstraint(
            ["last_sequence"], ["events.sequence"], name="fk_measurement_sets_last_sequence_events"
        ),
        sa.PrimaryKeyConstraint("set_id", name="pk_measurement_sets"),
        sa.UniqueConstraint("actor", "idempotency_key", name="uq_measurement_sets_actor_idempotency_key"),
    )


def downgrade() -> None:
    op.drop_table("measurement_sets")
