"""score stream: the unit registry, frozen rankings, and scoring's own log and outbox of score events

Revision ID: 2026_12_01_0004
Revises: 2026_12_01_0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "2026_12_01_0004"
down_revision = "2026_12_01_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "peer_groups",
        sa.Column("peer_group_id", sa.String(length=100), nullable=False),
        sa.Column("version", sa.String(length=50), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("peer_group_id", "version", name="pk_peer_groups"),
    )
    op.create_table(
        "frozen_results",
        sa.Column("publication_id", sa.String(length=36), nullable=False),
        sa.Column("catalogue_id", sa.String(length=100), nullable=False),
        sa.Column("version", sa.String(length=50), nullable=False),
        sa.Column("period", sa.Integer(), nullable=False),
        sa.Column("publication_sequence", sa.BigInteger(), nullable=False),
        sa.Column("ranking", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("publication_id", name="pk_frozen_results"),
    )
    op.create_table(
        "score_log",
        sa.Column(
            "sequence", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False, nullable=False
        ),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("answers_through", sa.BigInteger(), nullable=False),
        sa.Column("envelope", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("sequence", name="pk_score_log"),
    )
    op.create_index("ix_score_log_answers_through", "score_log", ["answers_through"])
    op.create_table(
        "score_outbox",
        sa.Column(
            "sequence", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False, nullable=False
        ),
        sa.Column("nats_subject", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("sequence", name="pk_score_outbox"),
    )


def downgrade() -> None:
    op.drop_table("score_outbox")
    op.drop_index("ix_score_log_answers_through", table_name="score_log")
    op.drop_table("score_log")
    op.drop_table("frozen_results")
    op.drop_table("peer_groups")
