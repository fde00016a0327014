"""peer group versions: the unit registry's lists, each registered as an event

Revision ID: 2026_12_01_0004
Revises: 2026_11_24_0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "2026_12_01_0004"
down_revision = "2026_11_24_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "peer_group_versions",
        sa.Column("peer_group_id", sa.String(length=100), nullable=False),
        sa.Column("version", sa.String(length=50), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["sequence"], ["events.sequence"], name="fk_peer_group_versions_sequence_events"),
        sa.PrimaryKeyConstraint("peer_group_id", "version", name="pk_peer_group_versions"),
    )


def downgrade() -> None:
    op.drop_table("peer_group_versions")
