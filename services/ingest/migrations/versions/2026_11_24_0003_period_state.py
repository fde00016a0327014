"""closed periods and reopened units

Revision ID: 2026_11_24_0003
Revises: 2026_11_24_0002
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "2026_11_24_0003"
down_revision = "2026_11_24_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "closed_periods",
        sa.Column("catalogue_id", sa.String(100), nullable=False),
        sa.Column("version", sa.String(50), nullable=False),
        sa.Column("period", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("catalogue_id", "version", "period", name="pk_closed_periods"),
        sa.ForeignKeyConstraint(["sequence"], ["events.sequence"], name="fk_closed_periods_sequence_events"),
    )
    op.create_table(
        "reopened_units",
        sa.Column("catalogue_id", sa.String(100), nullable=False),
        sa.Column("version", sa.String(50), nullable=False),
        sa.Column("period", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("unit_id", sa.String(100), nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("catalogue_id", "version", "period", "unit_id", name="pk_reopened_units"),
        sa.ForeignKeyConstraint(["sequence"], ["events.sequence"], name="fk_reopened_units_sequence_events"),
    )


def downgrade() -> None:
    op.drop_table("reopened_units")
    op.drop_table("closed_periods")
