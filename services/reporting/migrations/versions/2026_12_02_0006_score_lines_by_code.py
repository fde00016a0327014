"""score lines by code: a ranking at a past moment reads the totals and pillars only

Revision ID: 2026_12_02_0006
Revises: 2026_12_01_0005
Create Date: 2026-12-02
"""

from alembic import op

revision = "2026_12_02_0006"
down_revision = "2026_12_01_0005"
branch_labels = None
depends_on = None

COLUMNS = ["catalogue_id", "version", "period", "stage", "code", "unit_id", "sequence"]


def upgrade() -> None:
    op.create_index("ix_score_lines_by_code", "score_lines", COLUMNS)


def downgrade() -> None:
    op.drop_index("ix_score_lines_by_code", table_name="score_lines")
