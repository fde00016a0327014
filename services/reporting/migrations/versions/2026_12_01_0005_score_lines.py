"""score lines: the scores the scoring service computed, as reporting reads them from the score stream

Revision ID: 2026_12_01_0005
Revises: 2026_12_01_0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "2026_12_01_0005"
down_revision = "2026_12_01_0004"
branch_labels = None
depends_on = None


def _score_columns(history: bool) -> list[sa.Column]:  # type: ignore[type-arg]
    key = [
        sa.Column("catalogue_id", sa.String(length=100), nullable=False),
        sa.Column("version", sa.String(length=50), nullable=False),
        sa.Column("period", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=30), nullable=False),
        sa.Column("unit_id", sa.String(length=100), nullable=False),
        sa.Column("code", sa.String(length=50), nullable=False),
    ]
    return [
        *key,
        sa.Column("sequence", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("recorded_at", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("points", sa.String(length=100), nullable=True),
        sa.Column("max_points", sa.String(length=40), nullable=True),
        sa.Column("event_id", sa.String(length=36), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
    ]


KEY = ["catalogue_id", "version", "period", "stage", "unit_id", "code"]


def upgrade() -> None:
    op.create_table(
        "score_lines", *_score_columns(True), sa.PrimaryKeyConstraint(*KEY, "sequence", name="pk_score_lines")
    )
    op.create_table("current_scores", *_score_columns(False), sa.PrimaryKeyConstraint(*KEY, name="pk_current_scores"))
    op.create_table(
        "scores_answered",
        sa.Column("stream", sa.String(length=30), nullable=False),
        sa.Column("answers_through", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("stream", name="pk_scores_answered"),
    )
    op.create_table(
        "frozen_results",
        sa.Column("publication_id", sa.String(length=36), nullable=False),
        sa.Column("catalogue_id", sa.String(length=100), nullable=False),
        sa.Column("version", sa.String(length=50), nullable=False),
        sa.Column("period", sa.Integer(), nullable=False),
        sa.Column("as_of_sequence", sa.BigInteger(), nullable=False),
        sa.Column("ranking", sa.Text(), nullable=False),
        sa.Column("moved", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("publication_id", name="pk_frozen_results"),
    )


def downgrade() -> None:
    for table in ("frozen_results", "scores_answered", "current_scores", "score_lines"):
        op.drop_table(table)
