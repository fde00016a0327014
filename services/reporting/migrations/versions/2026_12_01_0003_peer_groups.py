"""peer groups: the unit registry's lists as learned from the stream

Revision ID: 2026_12_01_0003
Revises: 2026_11_24_0002
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "2026_12_01_0003"
down_revision = "2026_11_24_0002"
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


def downgrade() -> None:
    op.drop_table("peer_groups")
