"""first reports, current scores by code: a ranking at a past moment seeks each score's line from
its key and reads who had reported from one row per unit, instead of reading every line of the scope

Revision ID: 2026_12_03_0008
Revises: 2026_12_02_0007
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "2026_12_03_0008"
down_revision = "2026_12_02_0007"
branch_labels = None
depends_on = None

SCOPE = ["catalogue_id", "version", "period", "stage"]
BY_CODE = [*SCOPE, "code", "unit_id"]
KEY = [*SCOPE, "unit_id"]


def upgrade() -> None:
    op.create_index("ix_current_scores_by_code", "current_scores", BY_CODE)
    op.create_table(
        "first_reports",
        sa.Column("catalogue_id", sa.String(100), primary_key=True),
        sa.Column("version", sa.String(50), primary_key=True),
        sa.Column("period", sa.Integer(), primary_key=True),
        sa.Column("stage", sa.String(30), primary_key=True),
        sa.Column("unit_id", sa.String(100), primary_key=True),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("recorded_at", sa.String(32), nullable=False),
    )
    # the lines already projected: for each unit, the lowest sequence and the earliest time of a line
    # from a measurement of its own ("had reported by then", for a sequence and for a time)
    keys = ", ".join(KEY)
    op.execute(
        f"INSERT INTO first_reports ({keys}, sequence, recorded_at) "
        f"SELECT {keys}, MIN(sequence), MIN(recorded_at) FROM score_lines WHERE event_id IS NOT NULL GROUP BY {keys}"
    )


def downgrade() -> None:
    op.drop_table("first_reports")
    op.drop_index("ix_current_scores_by_code", table_name="current_scores")
